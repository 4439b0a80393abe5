//! `maxmemory` with the `noeviction` policy: above the limit this node refuses the commands
//! Redis 7.0 flags `denyoom` (those that may grow the data set), before proposing them, with
//! Redis's `-OOM` error; everything else runs. kvd evicts nothing, so no other policy applies.
//!
//! The limit and the measure are node-local (`crate::memory`: the bytes jemalloc has allocated
//! in this process), so the check is made on the node the client is on, never in apply. Scripts
//! follow Redis's rules (`evalGetCommandFlags`, `scriptVerifyOOM`): a script with a shebang is
//! refused at start unless flagged `no-writes` or `allow-oom`; one without (the compatible
//! mode) starts, and its first `denyoom` command is refused inside it (see
//! `scripting::run_local`, which runs it on this node's view while the node is over the limit).

use bytes::Bytes;

use super::{Spec, is};
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
    DENYOOM.contains(&spec.name)
        || argv.get(1).is_some_and(|sub| {
            DENYOOM_SUBCOMMANDS
                .iter()
                .any(|(name, s)| *name == spec.name && is(sub, s))
        })
}

/// True if a script run by EVAL/EVALSHA with these arguments counts as `denyoom` at start: it
/// has a shebang without `no-writes` or `allow-oom` (an unknown SHA or a bad shebang is left
/// to the command's own error).
fn script_denyoom(spec: &Spec, argv: &[Bytes]) -> bool {
    let script = match spec.name {
        "eval" => argv
            .get(1)
            .and_then(|body| crate::script::Script::new(body.clone()).ok()),
        "evalsha" => argv.get(1).and_then(|sha| crate::script::lookup(sha)),
        _ => None,
    };
    script.is_some_and(|s| !s.flags.compat && !s.flags.no_writes && !s.flags.allow_oom)
}

/// The refusal of this command on this node now, if it is `denyoom` (EXEC: if any command it
/// queued is) and the node is over `maxmemory`. Inside MULTI every command but EXEC, DISCARD,
/// QUIT and RESET is refused so, as Redis refuses them (queueing takes memory too).
pub fn refusal(session: &Session, spec: &Spec, argv: &[Bytes]) -> Option<Reply> {
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
    (denied && crate::memory::over_maxmemory()).then(oom_error)
}
