//! `min-replicas-to-write` / `min-replicas-max-lag`: with N set, this node refuses the commands
//! Redis 7.0 flags `write` with Redis's `-NOREPLICAS` unless it sees N good replicas (peers
//! heard from within the lag, `RaftHandle::good_replicas`). Raft already commits a write only on
//! a quorum; this is the stricter rule some deployments add (e.g. all three of three up).
//!
//! The settings and the measure are node-local, so the check is made on the node the client is
//! on, before proposing, never in apply. As in Redis: a script with a shebang is refused at start
//! unless flagged `no-writes` (FCALL likewise by its function's flags); one without (the
//! compatible mode) starts, and its first write command fails inside it (`scripting::run_local`
//! runs it on this node's view then); inside MULTI a write is refused when queued, which aborts
//! the transaction, and EXEC is refused if a write is queued.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;

use super::Spec;
use crate::raft::RaftHandle;
use crate::resp::Reply;
use crate::session::Session;

static TO_WRITE: AtomicU64 = AtomicU64::new(0);
static MAX_LAG_S: AtomicU64 = AtomicU64::new(10);

/// CONFIG SET min-replicas-to-write.
pub fn set_to_write(n: u64) {
    TO_WRITE.store(n, Relaxed);
}

/// CONFIG SET min-replicas-max-lag.
pub fn set_max_lag(secs: u64) {
    MAX_LAG_S.store(secs, Relaxed);
}

/// Redis 7.0's `write` commands (COMMAND INFO).
const WRITE: &[&str] = &[
    "append",
    "bitfield",
    "bitop",
    "blmove",
    "blmpop",
    "blpop",
    "brpop",
    "brpoplpush",
    "bzmpop",
    "bzpopmax",
    "bzpopmin",
    "copy",
    "decr",
    "decrby",
    "del",
    "expire",
    "expireat",
    "flushall",
    "flushdb",
    "geoadd",
    "georadius",
    "georadiusbymember",
    "geosearchstore",
    "getdel",
    "getex",
    "getset",
    "hdel",
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
    "lmpop",
    "lpop",
    "lpush",
    "lpushx",
    "lrem",
    "lset",
    "ltrim",
    "migrate",
    "move",
    "mset",
    "msetnx",
    "persist",
    "pexpire",
    "pexpireat",
    "pfadd",
    "pfdebug",
    "pfmerge",
    "psetex",
    "rename",
    "renamenx",
    "restore",
    "restore-asking",
    "rpop",
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
    "smove",
    "sort",
    "spop",
    "srem",
    "sunionstore",
    "swapdb",
    "unlink",
    "xack",
    "xadd",
    "xautoclaim",
    "xclaim",
    "xdel",
    "xreadgroup",
    "xsetid",
    "xtrim",
    "zadd",
    "zdiffstore",
    "zincrby",
    "zinterstore",
    "zmpop",
    "zpopmax",
    "zpopmin",
    "zrangestore",
    "zrem",
    "zremrangebylex",
    "zremrangebyrank",
    "zremrangebyscore",
    "zunionstore",
];

const WRITE_SUBCOMMANDS: &[(&str, &str)] = &[
    ("function", "delete"),
    ("function", "flush"),
    ("function", "load"),
    ("function", "restore"),
    ("xgroup", "create"),
    ("xgroup", "createconsumer"),
    ("xgroup", "delconsumer"),
    ("xgroup", "destroy"),
    ("xgroup", "setid"),
];

/// Redis's reply to a write without enough good replicas.
pub fn noreplicas_error() -> Reply {
    Reply::error("NOREPLICAS Not enough good replicas to write.")
}

/// True if Redis flags this command (with these arguments) `write`.
pub fn is_write(spec: &Spec, argv: &[Bytes]) -> bool {
    super::flagged(spec, argv, WRITE, WRITE_SUBCOMMANDS)
}

/// True if an EVAL/EVALSHA script counts as a write at start: it has a shebang without
/// `no-writes` (an unknown SHA or a bad shebang is left to the command's own error).
fn script_writes(spec: &Spec, argv: &[Bytes]) -> bool {
    super::scripting::script_at_start(spec, argv)
        .is_some_and(|s| !s.flags.compat && !s.flags.no_writes)
}

/// True if the setting is on and this node sees fewer good replicas than it asks for.
pub fn short(raft: &RaftHandle) -> bool {
    let n = TO_WRITE.load(Relaxed);
    n != 0 && (raft.good_replicas(Duration::from_secs(MAX_LAG_S.load(Relaxed))) as u64) < n
}

/// The refusal of this command on this node now, if it writes (EXEC: if a write is queued) and
/// the node is short of good replicas.
pub fn refusal(session: &Session, spec: &Spec, argv: &[Bytes]) -> Option<Reply> {
    if TO_WRITE.load(Relaxed) == 0 {
        return None;
    }
    let queued_write = spec.name == "exec"
        && session
            .multi
            .as_ref()
            .is_some_and(|m| m.queued.iter().any(|(s, a)| is_write(s, a)));
    let writes = is_write(spec, argv) || script_writes(spec, argv) || queued_write;
    (writes && short(&session.shared.raft)).then(noreplicas_error)
}
