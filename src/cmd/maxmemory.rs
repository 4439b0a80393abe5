//! `maxmemory`: above the limit this node first evicts as `maxmemory-policy` says
//! (`crate::evict`, which proposes this file's `evict` entries); if it is still over with
//! nothing evictable (always, under `noeviction`), it refuses the commands Redis 7.0 flags
//! `denyoom` (those that may grow the data set), before proposing them, with Redis's `-OOM`
//! error; everything else runs.
//!
//! The limit and the measure are node-local (`crate::memory`: the bytes jemalloc has allocated
//! in this process), so the check is made on the node the client is on, never in apply. Scripts
//! follow Redis's rules (`evalGetCommandFlags`, `scriptVerifyOOM`): a script with a shebang is
//! refused at start unless flagged `no-writes` or `allow-oom`; one without (the compatible
//! mode) starts, and its first `denyoom` command is refused inside it (see
//! `scripting::run_local`, which runs it on this node's view while the node is over the limit).

use bytes::Bytes;

use super::{CmdResult, Kind, Spec, parse_i64};
use crate::kv::encoding::DATABASES;
use crate::kv::{ApplyCtx, KeyRead, WriteView};
use crate::resp::Reply;
use crate::session::Session;

/// Redis 7.0's `denyoom` commands (COMMAND INFO), and the subcommands so flagged.
const DENYOOM: &[&str] = &[
    "append",
    "bitfield",
    "bitop",
    "blmove",
    "brpoplpush",
    "copy",
    "decr",
    "decrby",
    "geoadd",
    "georadius",
    "georadiusbymember",
    "geosearchstore",
    "getset",
    "hincrby",
    "hincrbyfloat",
    "hmset",
    "hset",
    "hsetnx",
    "incr",
    "incrby",
    "incrbyfloat",
    "linsert",
    "lmove",
    "lpush",
    "lpushx",
    "lset",
    "mset",
    "msetnx",
    "pfadd",
    "pfdebug",
    "pfmerge",
    "psetex",
    "restore",
    "restore-asking",
    "rpoplpush",
    "rpush",
    "rpushx",
    "sadd",
    "sdiffstore",
    "set",
    "setbit",
    "setex",
    "setnx",
    "setrange",
    "sinterstore",
    "sort",
    "sunionstore",
    "xadd",
    "xsetid",
    "zadd",
    "zdiffstore",
    "zincrby",
    "zinterstore",
    "zrangestore",
    "zunionstore",
];

const DENYOOM_SUBCOMMANDS: &[(&str, &str)] = &[
    ("function", "load"),
    ("function", "restore"),
    ("xgroup", "create"),
    ("xgroup", "createconsumer"),
];

/// Redis's reply to a `denyoom` command over the limit.
pub fn oom_error() -> Reply {
    Reply::error("OOM command not allowed when used memory > 'maxmemory'.")
}

/// True if Redis flags this command (with these arguments) `denyoom`.
pub fn denyoom(spec: &Spec, argv: &[Bytes]) -> bool {
    super::flagged(spec, argv, DENYOOM, DENYOOM_SUBCOMMANDS)
}

/// True if a script run by EVAL/EVALSHA with these arguments counts as `denyoom` at start: it
/// has a shebang without `no-writes` or `allow-oom` (an unknown SHA or a bad shebang is left
/// to the command's own error).
fn script_denyoom(spec: &Spec, argv: &[Bytes]) -> bool {
    super::scripting::script_at_start(spec, argv)
        .is_some_and(|s| !s.flags.compat && !s.flags.no_writes && !s.flags.allow_oom)
}

/// The refusal of this command on this node now, if it is `denyoom` (EXEC: if any command it
/// queued is) and the node is out of memory: `evicted` is what eviction before it found (see
/// `crate::evict::perform`), `None` when it did not run (then: over `maxmemory`, as under
/// `noeviction`). Inside MULTI every command but EXEC, DISCARD, QUIT and RESET is refused so,
/// as Redis refuses them (queueing takes memory too).
pub fn refusal(
    session: &Session,
    spec: &Spec,
    argv: &[Bytes],
    evicted: Option<crate::evict::Outcome>,
) -> Option<Reply> {
    // The common case first: no limit, nothing to look at.
    if crate::memory::maxmemory() == 0 {
        return None;
    }
    let queueing = |m: &super::transactions::Multi| match spec.name {
        "exec" => m.queued.iter().any(|(s, a)| denyoom(s, a)),
        "discard" | "quit" | "reset" => false,
        _ => true,
    };
    let denied = denyoom(spec, argv)
        || script_denyoom(spec, argv)
        || session.multi.as_ref().is_some_and(queueing);
    let out_of_memory = || match evicted {
        Some(outcome) => outcome == crate::evict::Outcome::OutOfMemory,
        None => crate::memory::over_maxmemory(),
    };
    (denied && out_of_memory()).then(oom_error)
}

/// `evict (db modified key)...`: the keys a node over its `maxmemory` chose to evict (see
/// `crate::evict`). Internal: in `cmd::INTERNAL`, which only apply looks up, so no client can
/// send it. Apply removes a key only if it is live and was last written by entry `modified`
/// (a key rewritten since it was sampled stays), raising Redis's `evicted` notification; the
/// deletion itself tells tracking clients. Replies with the number of keys removed.
pub const EVICT: Spec = Spec {
    name: "evict",
    arity: -1,
    kind: Kind::Write {
        prepare: |_| Err(Reply::error("ERR internal command")),
        apply: evict,
    },
    flags: &[],
    keys: (0, 0, 0),
};

/// An evict entry's arguments for `victims`.
pub fn evict_argv(victims: &[crate::evict::Victim]) -> Vec<Bytes> {
    let mut argv = Vec::with_capacity(1 + 3 * victims.len());
    argv.push(Bytes::from_static(EVICT.name.as_bytes()));
    for v in victims {
        argv.push(Bytes::from(v.db.to_string()));
        argv.push(Bytes::from(v.modified.to_string()));
        argv.push(v.key.clone());
    }
    argv
}

/// A malformed triple is skipped (every node alike).
fn evict(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    // Redis counts no change for the keys its eviction removes.
    w.dirty(0);
    let mut removed = 0;
    for t in argv[1..].chunks_exact(3) {
        let (Some(db), Some(modified)) = (
            parse_i64(&t[0]).and_then(|d| u8::try_from(d).ok()),
            parse_i64(&t[1]).and_then(|m| u64::try_from(m).ok()),
        ) else {
            continue;
        };
        if db >= DATABASES {
            continue;
        }
        let unchanged = w
            .meta_in(db, &t[2])?
            .is_some_and(|m| m.modified == modified);
        if unchanged && w.delete_in(db, &t[2])? {
            w.notify_in(db, 'e', "evicted", &t[2]);
            removed += 1;
        }
    }
    Ok(Reply::Integer(removed))
}
