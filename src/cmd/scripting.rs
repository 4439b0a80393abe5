//! Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, as redis-server 7.0 has
//! them, on the engine in `crate::script`.
//!
//! **Where a script runs.** A script that may write is one raft entry, `eval <body> <numkeys>
//! <keys...> <args...>` (EVALSHA becomes the body in `prepare`, on the node the client talks
//! to: a miss there is NOSCRIPT), and runs inside apply on every node ([`apply_eval`]) against
//! the `WriteView`, its commands going through the registry as a transaction's do. There its
//! clock is the entry's (TIME, expiry, the TTLs its commands make absolute), `math.random` is
//! seeded from the entry, and the instruction budget stops a runaway at the same point on
//! every node. A script that does not write is served by the node the client talks to: the
//! connection first runs EVAL on its read view ([`run_local`]); the first write command aborts
//! that run and the script is proposed (and remembered as a writer, so its next EVAL is
//! proposed at once). EVAL_RO, EVALSHA_RO and `#!lua flags=no-writes` scripts always run on
//! the read view and refuse writes with Redis's error.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use bytes::Bytes;

use super::command_stats::{self, CallLog, Outcome as StatOutcome};
use super::transactions::refused_in_multi;
use super::{CmdResult, Kind, Spec, apply_counted, is, lookup, lossy, parse_i64, run_read};
use crate::kv::encoding::{self, DATABASES};
use crate::kv::{ApplyCtx, KeyRead, WriteView, with_fixed_clock};
use crate::resp::Reply;
use crate::script::{self, Host, Outcome, Script, Stop};
use crate::store::StoreError;

const FLAGS: &[&str] = &[
    "noscript",
    "skip_monitor",
    "may_replicate",
    "no_mandatory_keys",
    "stale",
];

pub const EVAL: Spec = Spec {
    name: "eval",
    arity: -3,
    kind: Kind::Write {
        prepare: |argv| prepare_eval(argv, false),
        apply: apply_eval,
    },
    flags: FLAGS,
    keys: (0, 0, 0),
};

pub const EVALSHA: Spec = Spec {
    name: "evalsha",
    kind: Kind::Write {
        prepare: |argv| prepare_eval(argv, true),
        apply: apply_eval,
    },
    ..EVAL
};

pub const EVAL_RO: Spec = Spec {
    name: "eval_ro",
    kind: Kind::Read(|r, argv| eval_read_only(r, argv, false)),
    flags: &["noscript", "skip_monitor", "no_mandatory_keys", "stale"],
    ..EVAL
};

pub const EVALSHA_RO: Spec = Spec {
    name: "evalsha_ro",
    kind: Kind::Read(|r, argv| eval_read_only(r, argv, true)),
    ..EVAL_RO
};

pub const SCRIPT: Spec = Spec {
    name: "script",
    arity: -2,
    kind: Kind::Write {
        prepare: prepare_script,
        apply: apply_script,
    },
    flags: &["noscript"],
    keys: (0, 0, 0),
};

/// Redis's BUSY: while a script this node serves from a connection has run longer than
/// `busy-reply-threshold` (`lua-time-limit`), other commands are refused, except those that
/// may stop it. `None` when `spec` may run.
pub fn busy_reply(settings: &crate::cmd::config::Settings, spec: &Spec) -> Option<Reply> {
    if spec.flags.contains(&"allow_busy") || matches!(spec.name, "script" | "function" | "shutdown")
    {
        return None;
    }
    busy_now(settings)
}

/// Redis's BUSY if a script this node serves from a connection has run past the threshold
/// (what SHUTDOWN without NOSAVE answers then).
pub fn busy_now(settings: &crate::cmd::config::Settings) -> Option<Reply> {
    let since = script::running_since()?;
    let limit = ["busy-reply-threshold", "lua-time-limit"]
        .iter()
        .filter_map(|name| settings.get(name).parse::<i64>().ok())
        .filter(|&ms| ms > 0)
        .min()?;
    if crate::kv::wall_clock_ms() - since < limit {
        return None;
    }
    Some(busy_error(running_function().is_some()))
}

/// Redis's BUSY for a script (`function` false) or a function.
fn busy_error(function: bool) -> Reply {
    Reply::error(if function {
        "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
    } else {
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    })
}

/// The function this node runs for a client now, for FUNCTION STATS and the kill commands:
/// its name, the command that called it and since when (unix ms).
type RunningFunction = (String, Vec<Bytes>, i64);

fn running() -> &'static Mutex<Option<RunningFunction>> {
    static RUNNING: OnceLock<Mutex<Option<RunningFunction>>> = OnceLock::new();
    RUNNING.get_or_init(|| Mutex::new(None))
}

fn running_function() -> Option<RunningFunction> {
    running()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Runs `f` as the function `name` called by `argv` (as FUNCTION STATS shows it).
fn as_running<R>(name: &str, argv: &[Bytes], f: impl FnOnce() -> R) -> R {
    let now = crate::kv::wall_clock_ms();
    *running().lock().unwrap_or_else(PoisonError::into_inner) =
        Some((name.to_string(), argv.to_vec(), now));
    let r = f();
    *running().lock().unwrap_or_else(PoisonError::into_inner) = None;
    r
}

/// SCRIPT KILL (`function` false) or FUNCTION KILL: each stops only its own kind, as Redis.
fn kill(function: bool) -> Reply {
    if script::running_since().is_none() {
        return Reply::error("NOTBUSY No scripts in execution right now.");
    }
    if running_function().is_some() != function {
        return busy_error(!function);
    }
    if script::kill() {
        Reply::ok()
    } else {
        Reply::error("NOTBUSY No scripts in execution right now.")
    }
}

/// True for the read-only script commands (they may run long: see `connection`).
pub fn is_script(spec: &Spec) -> bool {
    matches!(spec.name, "eval_ro" | "evalsha_ro" | "fcall_ro")
}

/// True for the commands the connection first tries on its read view (see the module docs).
pub fn runs_locally_first(spec: &Spec) -> bool {
    matches!(spec.name, "eval" | "evalsha" | "fcall")
}

fn noscript() -> Reply {
    Reply::error("NOSCRIPT No matching script. Please use EVAL.")
}

/// The number of keys, checked as Redis checks it (in this order).
fn numkeys(argv: &[Bytes]) -> Result<usize, Reply> {
    let n = parse_i64(&argv[2]).ok_or_else(super::not_an_integer)?;
    if n > argv.len() as i64 - 3 {
        return Err(Reply::error(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if n < 0 {
        return Err(Reply::error("ERR Number of keys can't be negative"));
    }
    Ok(n as usize)
}

/// The script an EVAL-family command names: its body, or the cached script of a SHA.
fn script_of(argv: &[Bytes], by_sha: bool) -> Result<Script, Reply> {
    if by_sha {
        return script::lookup(&argv[1]).ok_or_else(noscript);
    }
    let s = Script::new(argv[1].clone()).map_err(|e| Reply::error(format!("ERR {e}")))?;
    script::compile(&s).map_err(|e| Reply::error(format!("ERR {e}")))?;
    script::remember(&s);
    Ok(s)
}

fn prepare_eval(mut argv: Vec<Bytes>, by_sha: bool) -> Result<Vec<Bytes>, Reply> {
    numkeys(&argv)?;
    let s = script_of(&argv, by_sha)?;
    argv[0] = Bytes::from_static(b"eval");
    argv[1] = s.body;
    Ok(argv)
}

/// Applies a script entry (on every node alike).
fn apply_eval(w: &mut WriteView, ctx: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let n = numkeys(argv)?;
    let s = Script::new(argv[1].clone()).map_err(|e| Reply::error(format!("ERR {e}")))?;
    script::remember(&s);
    let mut host = ApplyHost {
        read_only: s.flags.no_writes,
        w,
        ctx,
        log: CallLog::default(),
    };
    let (keys, args) = argv[3..].split_at(n);
    let reply = match script::run(&s, keys, args, &mut host) {
        Outcome::Reply(r) => r,
        Outcome::Store(e) => return Err(e.into()),
        Outcome::NeedsWrite => Reply::error("ERR script stopped"),
    };
    if ctx.local {
        count_calls(host.log, &reply);
    }
    Ok(reply)
}

/// Writers seen on this node: their next EVAL is proposed without a local run first.
fn writers() -> &'static Mutex<HashSet<String>> {
    static WRITERS: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    WRITERS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Over `maxmemory` a script in the compatible mode runs here first even if it is known to
/// write: its first `denyoom` command is refused here (`cmd::maxmemory`).
fn runs_for_oom(s: &Script) -> bool {
    s.flags.compat && crate::memory::over_maxmemory()
}

fn known_writer(s: &Script) -> bool {
    writers()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&s.sha)
}

/// A prepared EVAL entry this node will propose without running it first (a script seen to
/// write, `run_local` would answer `None` at once): the connection need not wait for its
/// earlier writes before it, so a pipeline of such scripts is proposed together, as SETs are.
/// `short`: the node is short of good replicas (`min_replicas`), so a script runs here first
/// for its first write to be refused.
pub fn proposed_directly(argv: &[Bytes], short: bool) -> bool {
    if short || !argv.first().is_some_and(|n| is(n, "eval")) || numkeys(argv).is_err() {
        return false;
    }
    match Script::new(argv[1].clone()) {
        Ok(s) => known_writer(&s) && !runs_for_oom(&s),
        Err(_) => true,
    }
}

/// The script an EVAL/EVALSHA would run, as known before it starts (None for an unknown SHA, a
/// script that does not compile, or another command): its shebang flags decide refusals.
pub fn script_at_start(spec: &Spec, argv: &[Bytes]) -> Option<crate::script::Script> {
    match spec.name {
        "eval" => argv
            .get(1)
            .and_then(|body| crate::script::Script::new(body.clone()).ok()),
        "evalsha" => argv.get(1).and_then(|sha| crate::script::lookup(sha)),
        _ => None,
    }
}

/// A prepared EVAL entry run on a connection's read view: `Some(reply)` if it completed
/// without writing (the reply to send), `None` if it must be proposed. `short`: the node is
/// short of good replicas (`min_replicas`): the script's write commands are refused here.
pub fn run_local(
    view: &dyn KeyRead,
    argv: &[Bytes],
    short: bool,
) -> Result<Option<Reply>, StoreError> {
    if argv.first().is_some_and(|n| is(n, "fcall")) {
        return fcall_local(view, argv, short);
    }
    let Ok(n) = numkeys(argv) else {
        return Ok(None);
    };
    let Ok(s) = Script::new(argv[1].clone()) else {
        return Ok(None);
    };
    let oom = runs_for_oom(&s);
    if known_writer(&s) && !oom && !short {
        return Ok(None);
    }
    let mut host = ReadHost::new(view, s.flags.no_writes);
    host.oom = oom;
    host.noreplicas = short;
    let (keys, args) = argv[3..].split_at(n);
    let outcome = script::run(&s, keys, args, &mut host);
    match outcome {
        Outcome::Reply(r) => {
            show(&host.shown);
            count_calls(host.log, &r);
            Ok(Some(r))
        }
        Outcome::Store(e) => Err(e),
        Outcome::NeedsWrite => {
            let mut w = writers().lock().unwrap_or_else(PoisonError::into_inner);
            if w.len() > 100_000 {
                w.clear();
            }
            w.insert(s.sha);
            Ok(None)
        }
    }
}

/// EVAL_RO and EVALSHA_RO: on the view they are given, writes refused.
fn eval_read_only(view: &dyn KeyRead, argv: &[Bytes], by_sha: bool) -> CmdResult {
    let n = numkeys(argv)?;
    let s = script_of(argv, by_sha)?;
    let mut host = ReadHost::new(view, true);
    let (keys, args) = argv[3..].split_at(n);
    let outcome = script::run(&s, keys, args, &mut host);
    show(&host.shown);
    let reply = match outcome {
        Outcome::Reply(r) => r,
        Outcome::Store(e) => return Err(e.into()),
        Outcome::NeedsWrite => read_only_write(),
    };
    // Its calls count where its client is: not on the other nodes applying its transaction.
    if APPLYING_OTHERS.with(|a| !a.get()) {
        count_calls(host.log, &reply);
    }
    Ok(reply)
}

thread_local! {
    /// This thread is applying an entry another node proposed (`applying`).
    static APPLYING_OTHERS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (the apply of an entry; `local`: proposed by this node), so the reads it runs
/// (EVAL_RO inside a transaction) count their calls only on the proposer's node.
pub(super) fn applying<R>(local: bool, f: impl FnOnce() -> R) -> R {
    let before = APPLYING_OTHERS.with(|a| a.replace(!local));
    let r = f();
    APPLYING_OTHERS.with(|a| a.set(before));
    r
}

fn read_only_write() -> Reply {
    Reply::error("ERR Write commands are not allowed from read-only scripts.")
}

/// Commands Redis 7.0 flags `noscript`, and kvd's own that cannot run inside a script.
fn denied(name: &str) -> bool {
    matches!(
        name,
        "auth"
            | "blmove"
            | "blpop"
            | "brpop"
            | "brpoplpush"
            | "bzpopmax"
            | "bzpopmin"
            | "debug"
            | "discard"
            | "eval"
            | "eval_ro"
            | "evalsha"
            | "evalsha_ro"
            | "exec"
            | "fcall"
            | "fcall_ro"
            | "hello"
            | "monitor"
            | "multi"
            | "psubscribe"
            | "punsubscribe"
            | "quit"
            | "reset"
            | "role"
            | "script"
            | "subscribe"
            | "unsubscribe"
            | "unwatch"
            | "wait"
            | "watch"
            | "consistency"
    )
}

/// What every host checks before running a command (Redis's `scriptCall`): `Err` is the
/// refusal. `Ok` has the command, and the reply of those a script runs itself (PING, ECHO,
/// TIME); the others (SELECT aside) run through the table.
fn precheck(argv: &[Bytes], now_ms: i64) -> Result<(&'static Spec, Option<Reply>), Reply> {
    let Some(spec) = lookup(&argv[0]) else {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        // Redis's noscript commands kvd does not have (yet) are refused as Redis refuses them.
        if denied(&name) {
            return Err(Reply::error(
                "ERR This Redis command is not allowed from script",
            ));
        }
        return Err(Reply::error("ERR Unknown Redis command called from script"));
    };
    if spec.check_arity(argv.len()).is_err() {
        return Err(Reply::error(
            "ERR Wrong number of args calling Redis command from script",
        ));
    }
    if denied(spec.name) || refused_in_multi(spec) {
        return Err(Reply::error(
            "ERR This Redis command is not allowed from script",
        ));
    }
    if matches!(spec.name, "xread" | "xreadgroup") && blocks(argv) {
        return Err(Reply::error(format!(
            "ERR {} command is not allowed with BLOCK option from scripts",
            String::from_utf8_lossy(&argv[0])
        )));
    }
    // The calling user's permissions, on the node its client talks to (see `acl::as_user`).
    if let Some(user) = crate::acl::script_user()
        && let Err(d) = user.check(&super::acl::call(spec, argv))
    {
        return Err(Reply::error(d.script_message()));
    }
    let builtin = match spec.name {
        "ping" => Some(match argv.get(1) {
            None => Reply::status("PONG"),
            Some(m) if argv.len() == 2 => Reply::Bulk(m.clone()),
            Some(_) => super::wrong_arity("ping"),
        }),
        "echo" => Some(Reply::Bulk(argv[1].clone())),
        "time" => Some(Reply::Array(vec![
            Reply::bulk(now_ms.div_euclid(1000).to_string()),
            Reply::bulk((now_ms.rem_euclid(1000) * 1000).to_string()),
        ])),
        _ => None,
    };
    Ok((spec, builtin))
}

/// Adds what a script's commands did to this node's INFO counters (see `command_stats`):
/// only for a run on the node its client is on, and one that completed.
fn count_calls(log: CallLog, reply: &Reply) {
    if let Some(server) = SERVER.get().and_then(Weak::upgrade) {
        server.stats.commands.merge(log, reply);
    }
}

/// This node's server, for its monitors (set at start; tests without a server have none).
static SERVER: OnceLock<Weak<crate::server::Shared>> = OnceLock::new();

/// Lets scripts show their commands to the node's MONITOR connections.
pub fn set_server(shared: Weak<crate::server::Shared>) {
    let _ = SERVER.set(shared);
}

/// The node's server if a monitor is listening.
fn monitoring() -> Option<Arc<crate::server::Shared>> {
    SERVER
        .get()
        .and_then(Weak::upgrade)
        .filter(|s| s.pubsub.monitors.active())
}

/// Shows commands a script ran, as redis-server 7.0 does: `[<db> lua] "cmd" ...` after the
/// line of the EVAL or FCALL, each with the database it ran in (after it, for SELECT).
fn show(commands: &[(&'static Spec, u8, Vec<Bytes>)]) {
    if commands.is_empty() {
        return;
    }
    if let Some(server) = monitoring() {
        for (spec, db, argv) in commands {
            server.pubsub.monitors.feed_script(spec, *db, argv);
        }
    }
}

/// True if an XREAD / XREADGROUP names BLOCK (with a value) before STREAMS.
fn blocks(argv: &[Bytes]) -> bool {
    let options = argv[1..].iter().take_while(|a| !is(a, "streams")).count();
    argv[1..=options]
        .iter()
        .enumerate()
        .any(|(i, a)| is(a, "block") && i + 1 < argv.len() - 1)
}

fn select_target(argv: &[Bytes]) -> Result<u8, Reply> {
    let n = parse_i64(&argv[1]).ok_or_else(super::not_an_integer)?;
    u8::try_from(n)
        .ok()
        .filter(|&db| db < DATABASES)
        .ok_or_else(|| Reply::error("ERR DB index is out of range"))
}

/// Commands of a script applied on every node.
struct ApplyHost<'a, 'w> {
    w: &'a mut WriteView<'w>,
    ctx: &'a ApplyCtx<'a>,
    read_only: bool,
    /// What the calls did, for this node's counters if its client sent the script.
    log: CallLog,
}

impl ApplyHost<'_, '_> {
    /// One call, and whether it ran or was refused before running.
    fn dispatch(&mut self, argv: Vec<Bytes>) -> Result<(Reply, StatOutcome), Stop> {
        let now = self.w.now_ms();
        let (spec, builtin) = match precheck(&argv, now) {
            Ok(checked) => checked,
            Err(reply) => return Ok((reply, StatOutcome::Rejected)),
        };
        // A script that writes runs on every node: every node's monitors see its commands.
        let shown = |db: u8, argv: &[Bytes]| {
            if monitoring().is_some() {
                show(&[(spec, db, argv.to_vec())]);
            }
        };
        if let Some(reply) = builtin {
            shown(self.w.db(), &argv);
            return Ok((reply, StatOutcome::Ran));
        }
        if spec.name == "select" {
            let reply = match select_target(&argv) {
                Ok(db) => {
                    self.w.select_db(db);
                    Reply::ok()
                }
                Err(e) => e,
            };
            shown(self.w.db(), &argv);
            return Ok((reply, StatOutcome::Ran));
        }
        if !(self.read_only && matches!(spec.kind, Kind::Write { .. })) {
            shown(self.w.db(), &argv);
        }
        let ran = |r: Result<Reply, Stop>| r.map(|r| (r, StatOutcome::Ran));
        match spec.kind {
            Kind::Local(_) => Ok((
                Reply::error("ERR This Redis command is not allowed from script"),
                StatOutcome::Rejected,
            )),
            Kind::Read(f) => ran(run_read(f, &*self.w, &argv).map_err(Stop::Store)),
            Kind::Write { .. } if self.read_only => Ok((read_only_write(), StatOutcome::Rejected)),
            Kind::Write { prepare, apply } => match with_fixed_clock(now, || prepare(argv)) {
                Err(reply) => Ok((reply, StatOutcome::Ran)),
                Ok(argv) => {
                    // `prepare` may rewrite the command (EXPIRE into PEXPIREAT, ...): the
                    // rewritten one is applied, as an entry would be.
                    let apply = match argv.first().and_then(|n| lookup(n)).map(|s| s.kind) {
                        Some(Kind::Write { apply, .. }) => apply,
                        _ => apply,
                    };
                    ran(apply_counted(apply, self.w, self.ctx, &argv).map_err(Stop::Store))
                }
            },
        }
    }
}

impl Host for ApplyHost<'_, '_> {
    fn call(&mut self, argv: Vec<Bytes>) -> Result<Reply, Stop> {
        let key = lookup(&argv[0]).and_then(|spec| command_stats::key_of(spec, &argv));
        let (reply, outcome) = self.dispatch(argv)?;
        self.log.record(key, outcome, &reply);
        Ok(reply)
    }

    fn seed(&self) -> u64 {
        let index = self.ctx.index;
        let now = self.w.now_ms() as u64;
        index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ now.rotate_left(29)
    }
}

thread_local! {
    /// A script run on this thread's read view called a read command (see `take_read_called`).
    static READ_CALLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the script that ran last on this thread's read view (EVAL_RO and friends, or an
/// EVAL tried locally first) called a read command, clearing the mark. CLIENT TRACKING remembers
/// a script's declared keys only then, as Redis does. Call it before a run (to clear) and after.
pub fn take_read_called() -> bool {
    READ_CALLED.with(|c| c.replace(false))
}

/// The keys an EVAL/EVALSHA/FCALL family command declares (`numkeys` of them after it), for
/// CLIENT TRACKING; none if `numkeys` is not a valid count.
pub fn declared_keys(argv: &[Bytes]) -> Vec<Bytes> {
    if argv.len() < 3 {
        return Vec::new();
    }
    match numkeys(argv) {
        Ok(n) => argv[3..3 + n].to_vec(),
        Err(_) => Vec::new(),
    }
}

/// Commands of a script run on a connection's read view.
struct ReadHost<'a> {
    view: &'a dyn KeyRead,
    /// Writes are errors (EVAL_RO, `no-writes`); otherwise they stop the run to propose it.
    read_only: bool,
    /// The commands run, for the monitors: shown once the run completes (a run stopped to be
    /// proposed shows them when it is applied instead).
    shown: Vec<(&'static Spec, u8, Vec<Bytes>)>,
    /// What the calls did, for this node's counters once the run completes (likewise).
    log: CallLog,
    /// The node was over `maxmemory` when the script started: its `denyoom` commands are
    /// refused (Redis's `scriptVerifyOOM`; no write has happened before them in a local run).
    oom: bool,
    /// The node was short of good replicas when the script started (`min_replicas`): its
    /// write commands are refused.
    noreplicas: bool,
}

impl<'a> ReadHost<'a> {
    fn new(view: &'a dyn KeyRead, read_only: bool) -> ReadHost<'a> {
        ReadHost {
            view,
            read_only,
            shown: Vec::new(),
            log: CallLog::default(),
            oom: false,
            noreplicas: false,
        }
    }
}

impl ReadHost<'_> {
    /// One call, and whether it ran or was refused before running.
    fn dispatch(&mut self, argv: Vec<Bytes>) -> Result<(Reply, StatOutcome), Stop> {
        let (spec, builtin) = match precheck(&argv, self.view.now_ms()) {
            Ok(checked) => checked,
            Err(reply) => return Ok((reply, StatOutcome::Rejected)),
        };
        let db = self.view.db();
        let runs_here = !matches!(spec.kind, Kind::Write { .. }) && spec.name != "select";
        if runs_here && monitoring().is_some() && self.shown.len() < 100_000 {
            self.shown.push((spec, db, argv.clone()));
        }
        if let Some(reply) = builtin {
            return Ok((reply, StatOutcome::Ran));
        }
        if spec.name == "select" {
            if monitoring().is_some() && select_target(&argv).is_ok_and(|d| d == db) {
                self.shown.push((spec, db, argv.clone()));
            }
            let ran = match select_target(&argv) {
                Ok(db) if db == self.view.logical_db() => Ok(Reply::ok()),
                // Another database: only the applied run can switch (its view is the entry's).
                Ok(_) if !self.read_only => Err(Stop::NeedsWrite),
                Ok(_) => Ok(Reply::error(
                    "ERR kvd runs read-only scripts in one database: SELECT is not supported there",
                )),
                Err(e) => Ok(e),
            };
            return ran.map(|r| (r, StatOutcome::Ran));
        }
        match spec.kind {
            Kind::Local(_) => Ok((
                Reply::error("ERR This Redis command is not allowed from script"),
                StatOutcome::Rejected,
            )),
            Kind::Read(f) => {
                READ_CALLED.with(|c| c.set(true));
                let reply = run_read(f, self.view, &argv).map_err(Stop::Store)?;
                Ok((reply, StatOutcome::Ran))
            }
            Kind::Write { .. } if self.read_only => Ok((read_only_write(), StatOutcome::Rejected)),
            Kind::Write { .. } if self.oom && super::maxmemory::denyoom(spec, &argv) => {
                Ok((super::maxmemory::oom_error(), StatOutcome::Rejected))
            }
            Kind::Write { .. } if self.noreplicas && super::min_replicas::is_write(spec, &argv) => {
                Ok((
                    super::min_replicas::noreplicas_error(),
                    StatOutcome::Rejected,
                ))
            }
            Kind::Write { .. } => Err(Stop::NeedsWrite),
        }
    }
}

impl Host for ReadHost<'_> {
    fn call(&mut self, argv: Vec<Bytes>) -> Result<Reply, Stop> {
        self.view.yield_to_writers();
        let key = lookup(&argv[0]).and_then(|spec| command_stats::key_of(spec, &argv));
        let (reply, outcome) = self.dispatch(argv)?;
        self.log.record(key, outcome, &reply);
        Ok(reply)
    }

    fn seed(&self) -> u64 {
        crate::raft::identity::random_u64()
    }

    fn killable(&self) -> bool {
        true
    }

    fn yield_point(&mut self) {
        self.view.yield_to_writers();
    }
}

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

/// SCRIPT: LOAD and FLUSH are entries (every node caches or forgets alike); EXISTS, KILL and
/// HELP are answered here, on the node the client talks to (an `Err` is the reply).
fn prepare_script(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    super::transactions::check_subcommand(&SCRIPT, &argv)?;
    let sub = &argv[1];
    let argc = argv.len();
    if is(sub, "help") && argc == 2 {
        return Err(Reply::Array(
            SCRIPT_HELP.iter().map(|l| Reply::status(*l)).collect(),
        ));
    }
    if is(sub, "flush") {
        if argc == 2 || (argc == 3 && (is(&argv[2], "sync") || is(&argv[2], "async"))) {
            return Ok(vec![argv[0].clone(), Bytes::from_static(b"flush")]);
        }
        return Err(Reply::error(
            "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
        ));
    }
    if is(sub, "exists") {
        return Err(Reply::Array(
            argv[2..]
                .iter()
                .map(|sha| Reply::Integer(i64::from(script::exists(sha))))
                .collect(),
        ));
    }
    if is(sub, "load") && argc == 3 {
        let s = Script::new(argv[2].clone()).map_err(|e| Reply::error(format!("ERR {e}")))?;
        script::compile(&s).map_err(|e| Reply::error(format!("ERR {e}")))?;
        return Ok(vec![argv[0].clone(), Bytes::from_static(b"load"), s.body]);
    }
    if is(sub, "kill") && argc == 2 {
        return Err(kill(false));
    }
    if is(sub, "debug") && argc == 3 {
        return Err(Reply::error("ERR SCRIPT DEBUG is not supported by kvd"));
    }
    Err(Reply::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try SCRIPT HELP.",
        lossy(sub, 128)
    )))
}

fn apply_script(_: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    match (argv.get(1), argv.get(2)) {
        (Some(sub), Some(body)) if is(sub, "load") => {
            let s = Script::new(body.clone()).map_err(|e| Reply::error(format!("ERR {e}")))?;
            script::remember(&s);
            Ok(Reply::bulk(s.sha))
        }
        (Some(sub), None) if is(sub, "flush") => {
            script::flush();
            writers()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            Ok(Reply::ok())
        }
        _ => Ok(Reply::error("ERR invalid SCRIPT entry")),
    }
}

// Functions (FUNCTION LOAD, FCALL, ...): libraries are replicated state, rows of
// `encoding::FAMILY_FUNCTION` (so they are in snapshots and survive restarts). A library is
// loaded (its top level run, registering its functions) in the Lua state of the thread that
// needs it, cached by the SHA of its code.

pub const FCALL: Spec = Spec {
    name: "fcall",
    arity: -3,
    kind: Kind::Write {
        prepare: |argv| fcall_numkeys(&argv).map(|_| argv),
        apply: apply_fcall,
    },
    flags: FLAGS,
    keys: (0, 0, 0),
};

pub const FCALL_RO: Spec = Spec {
    name: "fcall_ro",
    kind: Kind::Read(fcall_read_only),
    flags: &["noscript", "skip_monitor", "no_mandatory_keys", "stale"],
    ..FCALL
};

pub const FUNCTION: Spec = Spec {
    name: "function",
    arity: -2,
    kind: Kind::Write {
        prepare: prepare_function,
        apply: apply_function,
    },
    flags: &["noscript"],
    keys: (0, 0, 0),
};

/// The row naming a function's library: function names are case-insensitive, as in Redis
/// (FUNCTION LIST shows them as registered).
pub(super) fn function_row(name: &[u8]) -> Vec<u8> {
    encoding::function_key(&name.to_ascii_lowercase())
}

/// A function's library code, from the replicated state (rows written before names were
/// folded to lower case are found by their exact name).
fn function_code(r: &dyn KeyRead, name: &[u8]) -> Result<Option<Bytes>, StoreError> {
    let lib = match r.raw(&function_row(name))? {
        Some(lib) => lib,
        None => match r.raw(&encoding::function_key(name))? {
            Some(lib) => lib,
            None => return Ok(None),
        },
    };
    r.raw(&encoding::library_key(&lib))
}

fn no_function() -> Reply {
    Reply::error("ERR Function not found")
}

fn outcome_reply(o: Outcome) -> CmdResult {
    match o {
        Outcome::Reply(r) => Ok(r),
        Outcome::Store(e) => Err(e.into()),
        Outcome::NeedsWrite => Ok(read_only_write()),
    }
}

fn function_flags(code: &[u8], name: &[u8]) -> Option<bool> {
    let name = String::from_utf8_lossy(name);
    script::load_library(code)
        .ok()?
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case(&name))
        .map(|f| f.no_writes)
}

/// FCALL's number of keys, checked as Redis checks it.
fn fcall_numkeys(argv: &[Bytes]) -> Result<usize, Reply> {
    if parse_i64(&argv[2]).is_none() {
        return Err(Reply::error("ERR Bad number of keys provided"));
    }
    numkeys(argv)
}

fn apply_fcall(w: &mut WriteView, ctx: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let n = fcall_numkeys(argv)?;
    let Some(code) = function_code(&*w, &argv[1])? else {
        return Ok(no_function());
    };
    let read_only = function_flags(&code, &argv[1]).unwrap_or(false);
    let name = String::from_utf8_lossy(&argv[1]).into_owned();
    let mut host = ApplyHost {
        read_only,
        w,
        ctx,
        log: CallLog::default(),
    };
    let (keys, args) = argv[3..].split_at(n);
    let reply = outcome_reply(script::run_function(&code, &name, keys, args, &mut host))?;
    if ctx.local {
        count_calls(host.log, &reply);
    }
    Ok(reply)
}

/// FCALL on a connection's read view first (see `run_local`).
fn fcall_local(
    view: &dyn KeyRead,
    argv: &[Bytes],
    short: bool,
) -> Result<Option<Reply>, StoreError> {
    let Ok(n) = numkeys(argv) else {
        return Ok(None);
    };
    let Some(code) = function_code(view, &argv[1])? else {
        return Ok(Some(no_function()));
    };
    let name = String::from_utf8_lossy(&argv[1]).into_owned();
    let key = format!(
        "fcall:{}:{}",
        script::sha1hex(&code),
        name.to_ascii_lowercase()
    );
    // A function that may write is refused at start while short of good replicas (Redis).
    if short && !function_flags(&code, &argv[1]).unwrap_or(false) {
        return Ok(Some(super::min_replicas::noreplicas_error()));
    }
    if writers()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&key)
    {
        return Ok(None);
    }
    let read_only = function_flags(&code, &argv[1]).unwrap_or(false);
    let mut host = ReadHost::new(view, read_only);
    let (keys, args) = argv[3..].split_at(n);
    let outcome = as_running(&name, argv, || {
        script::run_function(&code, &name, keys, args, &mut host)
    });
    match outcome {
        Outcome::Reply(r) => {
            show(&host.shown);
            count_calls(host.log, &r);
            Ok(Some(r))
        }
        Outcome::Store(e) => Err(e),
        Outcome::NeedsWrite => {
            writers()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key);
            Ok(None)
        }
    }
}

fn fcall_read_only(view: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let n = fcall_numkeys(argv)?;
    let Some(code) = function_code(view, &argv[1])? else {
        return Ok(no_function());
    };
    if function_flags(&code, &argv[1]) != Some(true) {
        return Ok(Reply::error(
            "ERR Can not execute a script with write flag using *_ro command.",
        ));
    }
    let name = String::from_utf8_lossy(&argv[1]).into_owned();
    let mut host = ReadHost::new(view, true);
    let (keys, args) = argv[3..].split_at(n);
    let outcome = as_running(&name, argv, || {
        script::run_function(&code, &name, keys, args, &mut host)
    });
    show(&host.shown);
    outcome_reply(outcome)
}

/// The library name a code's shebang gives (`#!lua name=<name>`), checked as Redis does: the
/// line is split into words as Redis splits arguments (quotes allowed), the first word names
/// the engine.
pub(super) fn library_name(code: &[u8]) -> Result<String, Reply> {
    if !code.starts_with(b"#!") {
        return Err(Reply::error("ERR Missing library metadata"));
    }
    let end = code.iter().position(|&b| b == b'\n').unwrap_or(code.len());
    let words = split_words(&code[..end])
        .filter(|w| !w.is_empty())
        .ok_or_else(|| Reply::error("ERR Invalid library metadata"))?;
    let engine = String::from_utf8_lossy(&words[0][2..]).into_owned();
    let mut name = None;
    for part in &words[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(Reply::error(
                    "ERR Invalid metadata value, name argument was given multiple times",
                ));
            }
            name = Some(String::from_utf8_lossy(&part[5..]).into_owned());
            continue;
        }
        return Err(Reply::error(format!(
            "ERR Invalid metadata value given: {}",
            String::from_utf8_lossy(part)
        )));
    }
    let name = name.ok_or_else(|| Reply::error("ERR Library name was not given"))?;
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(Reply::error(format!("ERR Engine '{engine}' not found")));
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Reply::error(
            "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        ));
    }
    Ok(name)
}

/// Words of a line as Redis splits command arguments: blanks separate words; `"..."` (with
/// `\n`, `\r`, `\t`, `\b`, `\a`, `\xHH` and `\<any>` escapes) and `'...'` (with `\'`) quote,
/// and a closing quote must end its word. `None` if a quote is unbalanced.
fn split_words(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let blank = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c);
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && blank(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(words);
        }
        let mut word = Vec::new();
        let mut quote = None;
        loop {
            let Some(&c) = line.get(i) else {
                if quote.is_some() {
                    return None;
                }
                break;
            };
            match quote {
                Some(b'"') => {
                    if c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x' {
                        let hex = |b: u8| (b as char).to_digit(16);
                        if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                            word.push((h * 16 + l) as u8);
                            i += 4;
                            continue;
                        }
                    }
                    if c == b'\\' && i + 1 < line.len() {
                        word.push(match line[i + 1] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 2;
                        continue;
                    }
                    if c == b'"' {
                        if line.get(i + 1).is_some_and(|&n| !blank(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    word.push(c);
                }
                Some(_) => {
                    if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                        word.push(b'\'');
                        i += 2;
                        continue;
                    }
                    if c == b'\'' {
                        if line.get(i + 1).is_some_and(|&n| !blank(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    word.push(c);
                }
                None if blank(c) => break,
                None if c == b'"' || c == b'\'' => quote = Some(c),
                None => word.push(c),
            }
            i += 1;
        }
        words.push(word);
    }
}

/// FUNCTION HELP, as redis-server 7.0 answers it.
const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];

fn prepare_function(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    super::transactions::check_subcommand(&FUNCTION, &argv)?;
    let sub = &argv[1];
    let argc = argv.len();
    if is(sub, "help") && argc == 2 {
        return Err(Reply::Array(
            FUNCTION_HELP.iter().map(|l| Reply::status(*l)).collect(),
        ));
    }
    if is(sub, "load") && argc >= 3 {
        let replace = argc == 4 && is(&argv[2], "replace");
        if argc > 4 || (argc == 4 && !replace) {
            return Err(Reply::error(format!(
                "ERR Unknown option given: {}",
                lossy(&argv[2], 128)
            )));
        }
        let code = argv[argc - 1].clone();
        // The code runs in apply, after the library-exists check, as Redis orders them.
        library_name(&code)?;
        let mode = if replace { "replace" } else { "noreplace" };
        return Ok(vec![
            argv[0].clone(),
            Bytes::from_static(b"load"),
            Bytes::from_static(mode.as_bytes()),
            code,
        ]);
    }
    if is(sub, "delete") && argc == 3 {
        return Ok(argv);
    }
    if is(sub, "flush") && argc <= 3 {
        if argc == 2 || is(&argv[2], "sync") || is(&argv[2], "async") {
            return Ok(vec![argv[0].clone(), Bytes::from_static(b"flush")]);
        }
        return Err(Reply::error(
            "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
        ));
    }
    if is(sub, "list") {
        list_options(&argv[2..])?;
        return Ok(argv);
    }
    if is(sub, "stats") && argc == 2 {
        // Answered from the replicated state, through the log (kvd has no local path for it);
        // the function this node is running (node-local) rides in the entry, so apply's reply
        // is the entry's alone: `function stats <name> <duration ms> <command...>`.
        let mut entry = argv;
        if let Some((name, command, since)) = running_function() {
            let ms = (crate::kv::wall_clock_ms() - since).max(0);
            entry.push(Bytes::from(name.into_bytes()));
            entry.push(Bytes::from(ms.to_string()));
            entry.extend(command);
        }
        return Ok(entry);
    }
    if is(sub, "kill") && argc == 2 {
        return Err(kill(true));
    }
    if (is(sub, "dump") && argc == 2) || (is(sub, "restore") && argc >= 3) {
        return super::function_dump::prepare(argv);
    }
    Err(Reply::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        lossy(sub, 128)
    )))
}

/// FUNCTION LIST's options (`WITHCODE`, `LIBRARYNAME pattern`, each at most once): whether
/// to show the code, and the pattern.
fn list_options(args: &[Bytes]) -> Result<(bool, Option<&Bytes>), Reply> {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if is(a, "withcode") && !with_code {
            with_code = true;
        } else if is(a, "libraryname") && pattern.is_none() {
            let p = args
                .get(i + 1)
                .ok_or_else(|| Reply::error("ERR library name argument was not given"))?;
            pattern = Some(p);
            i += 1;
        } else {
            return Err(Reply::error(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(a)
            )));
        }
        i += 1;
    }
    Ok((with_code, pattern))
}

/// Every library: (name, code).
pub(super) fn libraries(r: &dyn KeyRead) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
    let lo = [encoding::FAMILY_FUNCTION, b'L'];
    let hi = [encoding::FAMILY_FUNCTION, b'M'];
    let mut out = Vec::new();
    r.scan_raw(&lo, &hi, &mut |k, v| {
        out.push((Bytes::copy_from_slice(&k[2..]), Bytes::copy_from_slice(v)));
        true
    })?;
    Ok(out)
}

pub(super) fn remove_library(
    w: &mut WriteView,
    name: &[u8],
    code: &[u8],
) -> Result<(), StoreError> {
    for f in script::load_library(code).unwrap_or_default() {
        w.delete_raw(&function_row(f.name.as_bytes()))?;
        w.delete_raw(&encoding::function_key(f.name.as_bytes()))?;
    }
    w.delete_raw(&encoding::library_key(name))?;
    Ok(())
}

fn apply_function(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let sub = &argv[1];
    if (is(sub, "dump") && argv.len() == 2) || (is(sub, "restore") && argv.len() >= 3) {
        return super::function_dump::apply(w, argv);
    }
    if is(sub, "load") && argv.len() == 4 {
        let code = &argv[3];
        let name = library_name(code)?;
        let old = w.raw(&encoding::library_key(name.as_bytes()))?;
        if old.is_some() && !is(&argv[2], "replace") {
            return Ok(Reply::error(format!("ERR Library '{name}' already exists")));
        }
        let functions = script::load_library(code).map_err(|e| Reply::error(format!("ERR {e}")))?;
        for f in &functions {
            if let Some(owner) = w.raw(&function_row(f.name.as_bytes()))?
                && owner.as_ref() != name.as_bytes()
            {
                return Ok(Reply::error(format!(
                    "ERR Function {} already exists",
                    f.name
                )));
            }
        }
        if let Some(old) = old {
            remove_library(w, name.as_bytes(), &old)?;
        }
        w.put_raw(&encoding::library_key(name.as_bytes()), code.clone());
        for f in &functions {
            w.put_raw(
                &function_row(f.name.as_bytes()),
                Bytes::from(name.clone().into_bytes()),
            );
        }
        return Ok(Reply::bulk(name));
    }
    if is(sub, "delete") && argv.len() == 3 {
        let Some(code) = w.raw(&encoding::library_key(&argv[2]))? else {
            return Ok(Reply::error("ERR Library not found"));
        };
        remove_library(w, &argv[2], &code)?;
        return Ok(Reply::ok());
    }
    if is(sub, "flush") {
        for (name, code) in libraries(&*w)? {
            remove_library(w, &name, &code)?;
        }
        return Ok(Reply::ok());
    }
    if is(sub, "list") {
        let (with_code, pattern) = list_options(&argv[2..])?;
        let mut out = Vec::new();
        for (name, code) in libraries(&*w)? {
            if let Some(p) = pattern
                && !super::glob::matches(p, &name, false)
            {
                continue;
            }
            let functions = script::load_library(&code).unwrap_or_default();
            let mut entry = vec![
                (Reply::bulk("library_name"), Reply::Bulk(name)),
                (Reply::bulk("engine"), Reply::bulk("LUA")),
                (
                    Reply::bulk("functions"),
                    Reply::Array(
                        functions
                            .into_iter()
                            .map(|f| {
                                Reply::Map(vec![
                                    (Reply::bulk("name"), Reply::bulk(f.name)),
                                    (
                                        Reply::bulk("description"),
                                        f.description.map_or(Reply::Nil, Reply::bulk),
                                    ),
                                    (
                                        Reply::bulk("flags"),
                                        Reply::Set(f.flags.into_iter().map(Reply::bulk).collect()),
                                    ),
                                ])
                            })
                            .collect(),
                    ),
                ),
            ];
            if with_code {
                entry.push((Reply::bulk("library_code"), Reply::Bulk(code)));
            }
            out.push(Reply::Map(entry));
        }
        return Ok(Reply::Array(out));
    }
    if is(sub, "stats") {
        let libs = libraries(&*w)?;
        let functions: usize = libs
            .iter()
            .map(|(_, code)| script::load_library(code).map(|f| f.len()).unwrap_or(0))
            .sum();
        let running = match argv.get(2..) {
            Some([name, ms, command @ ..]) => Reply::Map(vec![
                (Reply::bulk("name"), Reply::Bulk(name.clone())),
                (
                    Reply::bulk("command"),
                    Reply::Array(command.iter().cloned().map(Reply::Bulk).collect()),
                ),
                (
                    Reply::bulk("duration_ms"),
                    Reply::Integer(parse_i64(ms).unwrap_or(0)),
                ),
            ]),
            _ => Reply::Nil,
        };
        return Ok(Reply::Map(vec![
            (Reply::bulk("running_script"), running),
            (
                Reply::bulk("engines"),
                Reply::Map(vec![(
                    Reply::bulk("LUA"),
                    Reply::Map(vec![
                        (
                            Reply::bulk("libraries_count"),
                            Reply::Integer(libs.len() as i64),
                        ),
                        (
                            Reply::bulk("functions_count"),
                            Reply::Integer(functions as i64),
                        ),
                    ]),
                )]),
            ),
        ]));
    }
    Ok(Reply::error("ERR invalid FUNCTION entry"))
}
