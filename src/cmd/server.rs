//! Server commands: INFO, COMMAND, DBSIZE, FLUSHDB/FLUSHALL, TIME, DIGEST.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{Kind, Spec, TABLE, is, lookup, lossy, wrong_arity};
use crate::kv::encoding::{self, DATABASES};
use crate::kv::{ApplyCtx, KeyRead, Reader, WriteView};
use crate::resp::Reply;
use crate::session::Session;
use crate::store::StoreError;

pub const INFO: Spec = Spec {
    name: "info",
    arity: -1,
    kind: Kind::Local(info),
    flags: &["loading", "stale"],
    keys: (0, 0, 0),
};

/// Every section, in the order Redis prints them (kvd's `raft` last), and whether `INFO`
/// alone (`default`) includes it; `all` adds the others but `modules`, `everything` has all.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("cluster", true),
    ("keyspace", true),
    ("raft", true),
];

/// Redis-style INFO text: `# Section` headers, `key:value` lines, CRLF line ends. Several
/// sections may be named; each is printed once, in Redis's order.
fn info(s: &mut Session, argv: &[Bytes]) -> Reply {
    let mut wanted = vec![false; SECTIONS.len()];
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| lossy(a, 64).to_ascii_lowercase())
        .collect();
    for (i, &(name, default)) in SECTIONS.iter().enumerate() {
        wanted[i] = (args.is_empty() && default)
            || args.iter().any(|a| {
                a == name
                    || (a == "default" && default)
                    || (a == "all" && name != "modules")
                    || a == "everything"
            });
    }
    let mut out = String::new();
    for (i, &(section, _)) in SECTIONS.iter().enumerate() {
        if !wanted[i] {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        match info_section(s, section, &mut out) {
            Ok(()) => {}
            Err(e) => return storage_error(e),
        }
    }
    // Verbatim text in RESP3 (a bulk string in RESP2), as Redis sends INFO.
    Reply::verbatim_text(out)
}

/// User and system CPU time of this process and of its waited-for children, as Redis prints it.
fn cpu_lines(out: &mut String) {
    fn secs(t: libc::timeval) -> String {
        format!("{}.{:06}", t.tv_sec, t.tv_usec)
    }
    for (who, suffix) in [
        (libc::RUSAGE_SELF, ""),
        (libc::RUSAGE_CHILDREN, "_children"),
    ] {
        // SAFETY: getrusage only writes the struct we pass.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut ru) } != 0 {
            continue;
        }
        let _ = write!(
            out,
            "used_cpu_sys{suffix}:{}\r\nused_cpu_user{suffix}:{}\r\n",
            secs(ru.ru_stime),
            secs(ru.ru_utime)
        );
    }
}

fn info_section(s: &Session, section: &str, out: &mut String) -> Result<(), StoreError> {
    let shared = &s.shared;
    let cfg = &shared.config;
    let stats = &shared.stats;
    let raft = shared.raft.fresh_status();
    macro_rules! line {
        ($($arg:tt)*) => {{ let _ = write!(out, $($arg)*); out.push_str("\r\n"); }};
    }
    match section {
        "server" => {
            let up = shared.started.elapsed().as_secs();
            line!("# Server");
            line!("redis_version:{}", shared.config.redis_version);
            line!("kvd_version:{}", env!("CARGO_PKG_VERSION"));
            line!("redis_mode:standalone");
            line!("os:{} {}", std::env::consts::OS, std::env::consts::ARCH);
            line!("arch_bits:{}", usize::BITS);
            line!("process_id:{}", std::process::id());
            line!("tcp_port:{}", cfg.addr.port());
            line!("uptime_in_seconds:{up}");
            line!("uptime_in_days:{}", up / 86400);
        }
        "clients" => {
            line!("# Clients");
            line!("connected_clients:{}", shared.clients.connected());
            line!("maxclients:{}", shared.settings.maxclients.load(Relaxed));
            line!(
                "blocked_clients:{}",
                shared.blocking.blocked_clients() + super::wait::waiting_clients(shared)
            );
            line!("tracking_clients:{}", shared.pubsub.tracking.info().0);
        }
        "memory" => {
            use crate::memory::human;
            let rss = crate::server::rss_bytes().unwrap_or(0);
            let usage = crate::memory::usage();
            let used = usage.allocated;
            let peak = crate::memory::peak();
            let lua = crate::script::lua_memory() as u64;
            let maxmemory = crate::memory::maxmemory();
            line!("# Memory");
            line!("used_memory:{used}");
            line!("used_memory_human:{}", human(used));
            line!("used_memory_rss:{rss}");
            line!("used_memory_rss_human:{}", human(rss));
            line!("used_memory_peak:{peak}");
            line!("used_memory_peak_human:{}", human(peak));
            line!("allocator_allocated:{}", usage.allocated);
            line!("allocator_active:{}", usage.active);
            line!("allocator_resident:{}", usage.resident);
            line!("used_memory_lua:{lua}");
            line!("used_memory_lua_human:{}", human(lua));
            line!("number_of_cached_scripts:{}", crate::script::cached_count());
            line!("maxmemory:{maxmemory}");
            line!("maxmemory_human:{}", human(maxmemory));
            line!("maxmemory_policy:{}", crate::evict::policy().name());
            // The raft log's memory tail, as Redis leaves out its AOF and replication buffers.
            line!(
                "mem_not_counted_for_evict:{}",
                crate::memory::not_counted_for_evict()
            );
            line!("mem_allocator:{}", crate::memory::allocator_name());
            line!("lazyfree_pending_objects:{}", crate::reclaim::pending());
        }
        "persistence" => {
            let p = &shared.events.persistence;
            line!("# Persistence");
            line!("loading:0");
            line!("async_loading:0");
            line!("rdb_changes_since_last_save:{}", p.changes());
            line!("rdb_bgsave_in_progress:0");
            line!("rdb_last_save_time:{}", p.last_save());
            line!("rdb_last_bgsave_status:ok");
            line!("rdb_last_bgsave_time_sec:-1");
            line!("rdb_current_bgsave_time_sec:-1");
            line!("rdb_saves:{}", p.saves());
            line!("aof_enabled:0");
            line!("aof_rewrite_in_progress:0");
            line!("aof_rewrite_scheduled:0");
            line!("aof_last_bgrewrite_status:ok");
            line!("aof_last_write_status:ok");
            line!("kvd_fsync:every_raft_ready");
            line!(
                "kvd_memtable_flushed_keys:{}",
                shared.raft.memtable().read().flushed_keys()
            );
        }
        "stats" => {
            line!("# Stats");
            line!(
                "total_connections_received:{}",
                stats.connections_received.load(Relaxed)
            );
            line!(
                "total_commands_processed:{}",
                stats.commands_processed.load(Relaxed)
            );
            line!(
                "rejected_connections:{}",
                stats.rejected_connections.load(Relaxed)
            );
            line!(
                "total_writes_proposed:{}",
                stats.writes_proposed.load(Relaxed)
            );
            line!("evicted_keys:{}", crate::evict::evicted_keys());
            // kvd never closes clients to free memory (no maxmemory-clients eviction).
            line!("evicted_clients:0");
            let (_, keys, items, prefixes) = shared.pubsub.tracking.info();
            line!(
                "pubsub_channels:{}",
                shared.pubsub.channels(false, None).len()
            );
            line!("pubsub_patterns:{}", shared.pubsub.numpat());
            line!("tracking_total_keys:{keys}");
            line!("tracking_total_items:{items}");
            line!("tracking_total_prefixes:{prefixes}");
            // kvd has no MIGRATE, so no cached MIGRATE connections.
            line!("migrate_cached_sockets:0");
            line!("unexpected_error_replies:0");
            line!(
                "total_error_replies:{}",
                stats.commands.total_error_replies()
            );
        }
        "replication" => {
            line!("# Replication");
            line!("role:{}", if raft.is_leader() { "master" } else { "slave" });
            line!("connected_slaves:0");
            line!("master_failover_state:no-failover");
            line!("master_replid:{:040x}", 0);
            line!("master_replid2:{:040x}", 0);
            line!("master_repl_offset:0");
            line!("second_repl_offset:-1");
            line!("repl_backlog_active:0");
        }
        "cpu" => {
            line!("# CPU");
            cpu_lines(out);
        }
        "modules" => line!("# Modules"),
        "commandstats" => {
            line!("# Commandstats");
            stats.commands.commandstats_lines(out);
        }
        "errorstats" => {
            line!("# Errorstats");
            stats.commands.errorstats_lines(out);
        }
        "latencystats" => line!("# Latencystats"),
        "cluster" => {
            line!("# Cluster");
            line!("cluster_enabled:0");
        }
        "keyspace" => {
            line!("# Keyspace");
            let mut reader = Reader::new(&shared.db, shared.raft.memtable());
            for db in 0..DATABASES {
                let (keys, expires) =
                    reader.run(db, |v| Ok((v.key_count(v.db())?, v.expires_count(v.db())?)))?;
                if keys > 0 {
                    line!("db{db}:keys={keys},expires={expires},avg_ttl=0");
                }
            }
        }
        "raft" => {
            line!("# Raft");
            out.push_str(&raft.info_lines());
        }
        _ => {}
    }
    Ok(())
}

pub const COMMAND: Spec = Spec {
    name: "command",
    arity: -1,
    kind: Kind::Local(command),
    flags: &["loading", "stale"],
    keys: (0, 0, 0),
};

/// Enough of COMMAND for redis-cli and client libraries: the table, COUNT, INFO, LIST, and an
/// empty DOCS (redis-cli then uses its built-in help).
fn command(_: &mut Session, argv: &[Bytes]) -> Reply {
    if argv.len() == 1 {
        return Reply::Array(TABLE.iter().map(command_entry).collect());
    }
    let sub = &argv[1];
    if is(sub, "count") {
        if argv.len() != 2 {
            return wrong_arity("command|count");
        }
        return Reply::Integer(TABLE.len() as i64);
    }
    if is(sub, "docs") {
        return Reply::Map(vec![]);
    }
    if is(sub, "info") {
        // No names: every command, as Redis 7.0 does.
        if argv.len() == 2 {
            return Reply::Array(TABLE.iter().map(command_entry).collect());
        }
        return Reply::Array(
            argv[2..]
                .iter()
                .map(|n| lookup(n).map(command_entry).unwrap_or(Reply::Nil))
                .collect(),
        );
    }
    if is(sub, "list") {
        return command_list(&argv[2..]);
    }
    if is(sub, "getkeys") {
        if argv.len() < 4 {
            return wrong_arity("command|getkeys");
        }
        return getkeys(&argv[2..]);
    }
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try COMMAND HELP.",
        lossy(sub, 128)
    ))
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]: every command and,
/// as `container|sub`, the subcommands of its containers, with their Redis ACL categories (the
/// ACL table's, which names a container's subcommands as Redis 7.0 has them). kvd has no
/// modules.
fn command_list(args: &[Bytes]) -> Reply {
    let keep: Box<dyn Fn(&str) -> bool> = match args {
        [] => Box::new(|_| true),
        [f, by, value] if is(f, "filterby") => {
            if is(by, "module") {
                Box::new(|_| false)
            } else if is(by, "aclcat") {
                let Some(bit) = crate::acl::category::by_name(value) else {
                    return Reply::Array(vec![]);
                };
                Box::new(move |name: &str| {
                    crate::acl::command(name).is_some_and(|c| c.categories & bit != 0)
                })
            } else if is(by, "pattern") {
                let pattern = value.clone();
                Box::new(move |name: &str| super::glob::matches(&pattern, name.as_bytes(), true))
            } else {
                return Reply::error("ERR syntax error");
            }
        }
        _ => return Reply::error("ERR syntax error"),
    };
    let mut names = Vec::new();
    for spec in TABLE.iter() {
        names.push(spec.name);
        if crate::acl::command(spec.name).is_some_and(|c| c.container) {
            names.extend(crate::acl::commands().map(|c| c.name).filter(|n| {
                n.strip_prefix(spec.name)
                    .is_some_and(|rest| rest.starts_with('|'))
            }));
        }
    }
    Reply::Array(
        names
            .into_iter()
            .filter(|n| keep(n))
            .map(Reply::bulk)
            .collect(),
    )
}

/// The subcommands of container commands that take a key, as (container, subcommand, arity
/// of the subcommand, position of its key).
const KEYED_SUBCOMMANDS: &[(&str, &str, i32, usize)] = &[
    ("object", "encoding", 3, 2),
    ("object", "freq", 3, 2),
    ("object", "idletime", 3, 2),
    ("object", "refcount", 3, 2),
    ("memory", "usage", -3, 2),
    ("xinfo", "stream", -3, 2),
    ("xinfo", "groups", 3, 2),
    ("xinfo", "consumers", 4, 2),
    ("xgroup", "create", -5, 2),
    ("xgroup", "setid", -5, 2),
    ("xgroup", "destroy", 4, 2),
    ("xgroup", "createconsumer", 5, 2),
    ("xgroup", "delconsumer", 5, 2),
];

/// Containers whose subcommands take no keys (COMMAND GETKEYS answers so for any of them).
const KEYLESS_CONTAINERS: &[&str] = &[
    "acl", "client", "cluster", "command", "config", "function", "latency", "module", "pubsub",
    "script", "slowlog",
];

/// The keys of a command line, as the ACL checks see them: its movable keys when it has
/// some (scripts' declared keys, numkeys, STORE...), else its fixed positions.
pub(crate) fn keys_of(spec: &Spec, argv: &[Bytes]) -> Vec<Bytes> {
    if KEYLESS_CONTAINERS.contains(&spec.name) {
        return Vec::new();
    }
    match movable_keys(spec.name, argv) {
        Some(Ok(p)) => p.into_iter().filter_map(|i| argv.get(i).cloned()).collect(),
        Some(Err(())) => Vec::new(),
        None => spec.key_args(argv).cloned().collect(),
    }
}

/// COMMAND GETKEYS name arg...: the keys of a command line, as Redis finds them: its fixed key
/// positions, or for the commands with keys that move (numkeys, STORE, STREAMS) by parsing it,
/// with Redis's errors.
fn getkeys(argv: &[Bytes]) -> Reply {
    let invalid_args = || Reply::error("ERR Invalid number of arguments specified for command");
    let Some(spec) = lookup(&argv[0]) else {
        return Reply::error("ERR Invalid command specified");
    };
    let name = spec.name;
    if KEYLESS_CONTAINERS.contains(&name) {
        return Reply::error("ERR The command has no key arguments");
    }
    if KEYED_SUBCOMMANDS.iter().any(|(c, ..)| *c == name) {
        let found = KEYED_SUBCOMMANDS
            .iter()
            .find(|(c, sub, ..)| *c == name && argv.get(1).is_some_and(|a| is(a, sub)));
        let Some(&(_, _, arity, at)) = found else {
            let keyless = ["help", "doctor", "stats", "malloc-stats", "purge"];
            return if argv
                .get(1)
                .is_some_and(|a| keyless.iter().any(|k| is(a, k)))
            {
                Reply::error("ERR The command has no key arguments")
            } else {
                Reply::error("ERR Invalid command specified")
            };
        };
        let argc = argv.len() as i32;
        if (arity > 0 && argc != arity) || argc < -arity {
            return invalid_args();
        }
        return Reply::Array(vec![Reply::Bulk(argv[at].clone())]);
    }
    let movable = movable_keys(name, argv);
    if movable.is_none() && spec.keys.0 == 0 {
        return Reply::error("ERR The command has no key arguments");
    }
    if spec.check_arity(argv.len()).is_err() {
        return invalid_args();
    }
    let positions = match movable {
        Some(Ok(p)) => p,
        // Scripts and functions may name no keys: a line Redis cannot parse has none.
        Some(Err(()))
            if matches!(
                name,
                "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
            ) =>
        {
            Vec::new()
        }
        Some(Err(())) => return Reply::error("ERR Invalid arguments specified for command"),
        None => {
            return Reply::Array(spec.key_args(argv).cloned().map(Reply::Bulk).collect());
        }
    };
    Reply::Array(
        positions
            .into_iter()
            .filter_map(|i| argv.get(i).cloned())
            .map(Reply::Bulk)
            .collect(),
    )
}

/// The key positions of a command whose keys move (`None` for the others); `Err` when the
/// line cannot be parsed for them.
fn movable_keys(name: &str, argv: &[Bytes]) -> Option<Result<Vec<usize>, ()>> {
    // numkeys at `at`, the keys right after it, and `fixed` keys before.
    let numkeys = |at: usize, fixed: &[usize]| -> Result<Vec<usize>, ()> {
        let n: i64 = std::str::from_utf8(argv.get(at).ok_or(())?)
            .map_err(|_| ())?
            .parse()
            .map_err(|_| ())?;
        // Only scripts and functions may name no keys.
        let least = i64::from(!matches!(
            argv[0].to_ascii_lowercase().as_slice(),
            b"eval" | b"evalsha" | b"eval_ro" | b"evalsha_ro" | b"fcall" | b"fcall_ro"
        ));
        if n < least || (at + 1) as i64 + n > argv.len() as i64 {
            return Err(());
        }
        let mut out = fixed.to_vec();
        out.extend(at + 1..at + 1 + n as usize);
        Ok(out)
    };
    // The key at 1 and the last STORE's argument (`words` name the options to find).
    let with_store = |words: &[&str], skips: &[(&str, usize)]| -> Result<Vec<usize>, ()> {
        let mut out = vec![1];
        let mut store = None;
        let mut i = 2;
        while i < argv.len() {
            let a = &argv[i];
            if let Some((_, n)) = skips.iter().find(|(w, _)| is(a, w)) {
                i += n + 1;
                continue;
            }
            if words.iter().any(|w| is(a, w)) && i + 1 < argv.len() {
                store = Some(i + 1);
                i += 2;
                continue;
            }
            i += 1;
        }
        out.extend(store);
        Ok(out)
    };
    Some(match name {
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => numkeys(2, &[]),
        "zunionstore" | "zinterstore" | "zdiffstore" => numkeys(2, &[1]),
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => {
            numkeys(1, &[])
        }
        "blmpop" | "bzmpop" => numkeys(2, &[]),
        "sort" => with_store(&["store"], &[("limit", 2), ("get", 1), ("by", 1)]),
        "georadius" | "georadiusbymember" => with_store(&["store", "storedist"], &[]),
        "xread" | "xreadgroup" => {
            let mut i = 1;
            loop {
                let Some(a) = argv.get(i) else {
                    break Err(());
                };
                if is(a, "streams") {
                    // Half of what follows are keys (an odd one out is an ID).
                    let keys = (argv.len() - i - 1) / 2;
                    if keys == 0 {
                        break Err(());
                    }
                    break Ok((i + 1..i + 1 + keys).collect());
                }
                i += match () {
                    _ if is(a, "count") || is(a, "block") => 2,
                    _ if is(a, "group") => 3,
                    _ => 1,
                };
            }
        }
        _ => return None,
    })
}

/// One COMMAND entry in Redis 7's shape: name, arity, flags, first/last/step key, ACL
/// categories, tips, key specs, subcommands. In RESP3 Redis sends the flags, categories, tips
/// and (when there are none) the subcommands as sets, the key specs as an array.
fn command_entry(spec: &Spec) -> Reply {
    let mut flags: Vec<Reply> = spec.flags.iter().map(|f| Reply::status(*f)).collect();
    let category = match spec.kind {
        Kind::Write { .. } => {
            flags.insert(0, Reply::status("write"));
            "@write"
        }
        Kind::Read(_) => {
            flags.insert(0, Reply::status("readonly"));
            "@read"
        }
        Kind::Local(_) => "@connection",
    };
    // Last, as Redis adds it after the table's own flags.
    if super::footprint::MOVABLE_KEYS.contains(&spec.name) {
        flags.push(Reply::status("movablekeys"));
    }
    let (first, last, step) = spec.keys;
    Reply::Array(vec![
        Reply::bulk(spec.name),
        Reply::Integer(spec.arity as i64),
        Reply::Set(flags),
        Reply::Integer(first as i64),
        Reply::Integer(last as i64),
        Reply::Integer(step as i64),
        Reply::Set(vec![Reply::status(category)]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Set(vec![]),
    ])
}

pub const DBSIZE: Spec = Spec {
    name: "dbsize",
    arity: 1,
    kind: Kind::Read(|view, _| Ok(Reply::Integer(view.key_count(view.db())? as i64))),
    flags: &["fast"],
    keys: (0, 0, 0),
};

pub const FLUSHDB: Spec = Spec {
    name: "flushdb",
    arity: -1,
    kind: Kind::Write {
        prepare: prepare_flush,
        apply: apply_flush,
    },
    flags: &[],
    keys: (0, 0, 0),
};

pub const FLUSHALL: Spec = Spec {
    name: "flushall",
    kind: Kind::Write {
        prepare: prepare_flush,
        apply: |w, _, _| {
            // Redis counts the keys it removed, then saves if save points are configured.
            let mut keys = 0;
            for db in 0..DATABASES {
                keys += w.key_count(db)?;
            }
            w.clear_all()?;
            w.dirty(keys);
            w.dirty_flushall();
            Ok(Reply::ok())
        },
    },
    ..FLUSHDB
};

fn prepare_flush(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    match argv.len() {
        1 => Ok(argv),
        2 if is(&argv[1], "async") || is(&argv[1], "sync") => Ok(argv),
        _ => Err(super::syntax_error()),
    }
}

/// FLUSHDB empties the entry's database.
fn apply_flush(w: &mut WriteView, _: &ApplyCtx, _: &[Bytes]) -> super::CmdResult {
    let db = w.db();
    let keys = w.key_count(db)?;
    w.clear_db(db)?;
    w.dirty(keys);
    Ok(Reply::ok())
}

/// MEMORY USAGE/DOCTOR/PURGE/MALLOC-STATS/HELP. USAGE estimates a key's size from its rows:
/// the metadata row plus, for a collection, its member rows (all of them, or the average of
/// the first SAMPLES times the count, as Redis samples nested values).
pub const MEMORY: Spec = Spec {
    name: "memory",
    arity: -2,
    kind: Kind::Read(memory),
    flags: &["readonly"],
    keys: (2, 2, 1),
};

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];

fn memory(r: &dyn KeyRead, argv: &[Bytes]) -> super::CmdResult {
    let sub = &argv[1];
    if is(sub, "help") && argv.len() == 2 {
        return Ok(Reply::Array(
            MEMORY_HELP.iter().map(|l| Reply::status(*l)).collect(),
        ));
    }
    if is(sub, "doctor") && argv.len() == 2 {
        return Ok(Reply::bulk(
            "Sam, I detected no memory problems in this kvd node (its data lives in redb, \
             see INFO raft and the data dir's size).",
        ));
    }
    if is(sub, "purge") && argv.len() == 2 {
        return Ok(Reply::ok());
    }
    if is(sub, "malloc-stats") && argv.len() == 2 {
        return Ok(Reply::bulk("Stats not supported for the current allocator"));
    }
    if !is(sub, "usage") || argv.len() < 3 {
        return Ok(Reply::error(format!(
            "ERR unknown subcommand '{}'. Try MEMORY HELP.",
            lossy(sub, 128)
        )));
    }
    let mut samples: u64 = 5;
    let mut rest = argv[3..].iter();
    while let Some(opt) = rest.next() {
        match rest.next() {
            Some(n) if is(opt, "samples") => match super::parse_i64(n) {
                Some(n) if n >= 0 => samples = if n == 0 { u64::MAX } else { n as u64 },
                Some(_) => return Ok(Reply::error("ERR value is out of range, must be positive")),
                None => return Ok(super::not_an_integer()),
            },
            _ => return Ok(super::syntax_error()),
        }
    }
    let key = &argv[2];
    let Some(meta) = r.meta(key)? else {
        return Ok(Reply::Nil);
    };
    let mut total = (2 + key.len() + meta.encode().len()) as u64;
    if meta.kind != crate::kv::KeyType::String {
        use crate::kv::KeyType;
        // Collections whose metadata holds their size are sampled; others are walked whole.
        let count = match meta.kind {
            KeyType::Hash | KeyType::Set => crate::kv::collection::count_of(&meta).ok(),
            KeyType::ZSet => Some(crate::kv::zset::count_of(&meta)),
            _ => None,
        };
        let limit = if count.is_some() { samples } else { u64::MAX };
        let prefix = encoding::member_prefix(r.db(), key, meta.version);
        let end = encoding::prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
        let (mut seen, mut bytes) = (0u64, 0u64);
        r.scan_raw(&prefix, &end, &mut |k, v| {
            seen += 1;
            bytes += (k.len() + v.len()) as u64;
            seen < limit
        })?;
        total += match count {
            Some(n) if seen > 0 => bytes / seen * n.max(seen),
            _ => bytes,
        };
    }
    Ok(Reply::Integer(i64::try_from(total).unwrap_or(i64::MAX)))
}

/// MONITOR: this connection is shown every command this node's clients run from now on (see
/// `crate::monitor`), until RESET or it closes.
pub const MONITOR: Spec = Spec {
    name: "monitor",
    arity: 1,
    kind: Kind::Local(|s, _| {
        let hub = s.pubsub.hub().clone();
        hub.monitors.add(&s.pubsub.mailbox);
        Reply::ok()
    }),
    flags: &["admin", "noscript", "loading", "stale"],
    keys: (0, 0, 0),
};

/// SAVE: nothing to write, so `+OK` at once: every write kvd acknowledged is already durable
/// (in the raft log, fsynced on a quorum), and the state is rebuilt from it at start. It does
/// what a save means for INFO persistence on this node (the dirty counter starts again, the last
/// save time is now). Refused inside MULTI and scripts, as Redis refuses it.
pub const SAVE: Spec = Spec {
    name: "save",
    arity: 1,
    kind: Kind::Local(|s, _| {
        s.shared.events.persistence.saved();
        Reply::ok()
    }),
    flags: &["admin", "noscript", "no_async_loading", "no_multi"],
    keys: (0, 0, 0),
};

/// BGSAVE [SCHEDULE]: SAVE's effect (there is nothing to write), answered as Redis answers a
/// background save it starts.
pub const BGSAVE: Spec = Spec {
    name: "bgsave",
    arity: -1,
    kind: Kind::Local(|s, argv| {
        if argv.len() > 2 || (argv.len() == 2 && !is(&argv[1], "schedule")) {
            return super::syntax_error();
        }
        s.shared.events.persistence.saved();
        Reply::status("Background saving started")
    }),
    flags: &["admin", "noscript", "no_async_loading"],
    keys: (0, 0, 0),
};

/// LASTSAVE: the unix time of this node's last save (or of its start).
pub const LASTSAVE: Spec = Spec {
    name: "lastsave",
    arity: 1,
    kind: Kind::Local(|s, _| Reply::Integer(s.shared.events.persistence.last_save())),
    flags: &["loading", "stale", "fast"],
    keys: (0, 0, 0),
};

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: stops this node as SIGTERM does (the cluster
/// goes on without it); the client's connection closes without a reply, as Redis's does. The
/// options are checked as Redis checks them and change nothing else (kvd has nothing to save and
/// no replicas to wait for, so ABORT never finds a shutdown in progress). Without NOSAVE it is
/// refused with BUSY while a script is past the busy threshold; otherwise it stops that script.
pub const SHUTDOWN: Spec = Spec {
    name: "shutdown",
    arity: -1,
    kind: Kind::Local(shutdown),
    flags: &[
        "admin",
        "noscript",
        "loading",
        "stale",
        "no_multi",
        "allow_busy",
    ],
    keys: (0, 0, 0),
};

fn shutdown(s: &mut Session, argv: &[Bytes]) -> Reply {
    let (mut nosave, mut save, mut abort, mut other) = (false, false, false, false);
    for a in &argv[1..] {
        if is(a, "nosave") {
            nosave = true;
        } else if is(a, "save") {
            save = true;
        } else if is(a, "now") || is(a, "force") {
            other = true;
        } else if is(a, "abort") {
            abort = true;
        } else {
            return super::syntax_error();
        }
    }
    if (nosave && save) || (abort && (nosave || save || other)) {
        return super::syntax_error();
    }
    if abort {
        return Reply::error("ERR No shutdown in progress.");
    }
    if !nosave && let Some(busy) = super::scripting::busy_now(&s.shared.settings) {
        return busy;
    }
    slog::info!(s.shared.logger, "SHUTDOWN from a client"; "client" => s.id);
    crate::script::kill();
    s.shared.shutdown.notify_one();
    s.quit = true;
    s.skip_this_reply = true;
    Reply::ok()
}

pub const TIME: Spec = Spec {
    name: "time",
    arity: 1,
    kind: Kind::Local(|_, _| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Reply::Array(vec![
            Reply::bulk(now.as_secs().to_string()),
            Reply::bulk(now.subsec_micros().to_string()),
        ])
    }),
    flags: &["fast", "stale"],
    keys: (0, 0, 0),
};

pub const DIGEST: Spec = Spec {
    name: "digest",
    arity: 1,
    kind: Kind::Read(digest),
    flags: &[],
    keys: (0, 0, 0),
};

/// kvd's own: a digest of all user data of every database (FNV-1a over the length-prefixed
/// metadata, member and score rows as stored, in table order) and the number of keys, as
/// "<hex digest> <keys>". Equal digests on two nodes mean equal data (types, expiry times,
/// versions and members included); the fault tests use it to check that replicas converge.
fn digest(view: &dyn KeyRead, _: &[Bytes]) -> super::CmdResult {
    let mut h = crate::fnv::Fnv1a::new();
    let mut n = 0u64;
    let ranges = [
        (encoding::FAMILY_META, encoding::FAMILY_MEMBER + 1),
        (encoding::FAMILY_SCORE, encoding::FAMILY_SCORE + 1),
        (encoding::FAMILY_STREAM, encoding::FAMILY_STREAM + 1),
    ];
    for (lo, hi) in ranges {
        view.scan_raw(&[lo], &[hi], &mut |k, v| {
            h.feed(&(k.len() as u64).to_be_bytes());
            h.feed(k);
            h.feed(&(v.len() as u64).to_be_bytes());
            h.feed(v);
            n += u64::from(k[0] == encoding::FAMILY_META);
            true
        })?;
    }
    Ok(Reply::bulk(format!("{:016x} {n}", h.finish())))
}

/// `DEBUG PROPOSE command [arg ...]`, in debug builds only (the test suites run those): proposes
/// the given words as an entry exactly as they are, without the checks a client's command gets
/// first, so tests can show that apply is total (a short, unknown or malformed entry gives
/// every node the same error reply, never a crash).
#[cfg(debug_assertions)]
pub const DEBUG: Spec = Spec {
    name: "debug",
    arity: -2,
    kind: Kind::Write {
        prepare: |argv| {
            if argv.len() >= 2 && is(&argv[1], "propose") {
                Ok(argv[2..].to_vec())
            } else if argv.len() == 3 && is(&argv[1], "set-active-expire") {
                // This node's setting, answered here without a proposal. Redis reads the value
                // with atoi: leading digits, anything else 0 (off).
                let digits = argv[2].iter().skip_while(|c| **c == b'-' || **c == b'+');
                let on = digits
                    .take_while(|c| c.is_ascii_digit())
                    .any(|c| *c != b'0');
                crate::expiry::set_active(on);
                Err(Reply::ok())
            } else {
                Err(Reply::error(
                    "ERR DEBUG subcommands in kvd: PROPOSE command [arg ...], SET-ACTIVE-EXPIRE 0|1",
                ))
            }
        },
        apply: |_, _, _| Ok(Reply::error("ERR not a write command")),
    },
    flags: &["admin"],
    keys: (0, 0, 0),
};

/// Storage errors as a client sees them.
pub fn storage_error(e: StoreError) -> Reply {
    Reply::error(format!("ERR storage error: {e}"))
}
