//! SLOWLOG GET / LEN / RESET / HELP over this node's slow log (`crate::slowlog`), with
//! redis-server 7.0's replies and error texts.

use bytes::Bytes;

use super::{Kind, Spec, is, lossy, parse_i64, wrong_arity};
use crate::resp::Reply;
use crate::session::Session;

pub const SLOWLOG: Spec = Spec {
    name: "slowlog",
    arity: -2,
    kind: Kind::Local(slowlog),
    flags: &[],
    keys: (0, 0, 0),
};

/// Subcommand name, and the arity Redis gives it (N exactly, -N at least N).
const ARITIES: &[(&str, i64)] = &[("get", -2), ("len", 2), ("reset", 2), ("help", 2)];

/// Entries SLOWLOG GET gives without a count.
const DEFAULT_COUNT: usize = 10;

fn slowlog(s: &mut Session, argv: &[Bytes]) -> Reply {
    let sub = &argv[1];
    let Some(&(name, arity)) = ARITIES.iter().find(|(n, _)| is(sub, n)) else {
        return Reply::error(format!(
            "ERR unknown subcommand '{}'. Try SLOWLOG HELP.",
            lossy(sub, 128)
        ));
    };
    let argc = argv.len() as i64;
    if (arity > 0 && argc != arity) || (arity < 0 && argc < -arity) {
        return wrong_arity(&format!("slowlog|{name}"));
    }
    if name == "get" && argc > 3 {
        return Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
            lossy(sub, 128)
        ));
    }
    let log = &s.shared.slowlog;
    match name {
        "get" => {
            let count = match argv.get(2).map(|a| parse_i64(a)) {
                None => Some(DEFAULT_COUNT),
                Some(Some(-1)) => None,
                Some(Some(n)) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                // Redis answers a count that is no integer with the same text.
                Some(_) => {
                    return Reply::error("ERR count should be greater than or equal to -1");
                }
            };
            log.get(count)
        }
        "len" => Reply::Integer(i64::try_from(log.len()).unwrap_or(i64::MAX)),
        "reset" => {
            log.reset();
            Reply::ok()
        }
        _ => help(),
    }
}

fn help() -> Reply {
    const LINES: &[&str] = &[
        "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET [<count>]",
        "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
        "    Entries are made of:",
        "    id, timestamp, time in microseconds, arguments array, client IP and port,",
        "    client name",
        "LEN",
        "    Return the length of the slowlog.",
        "RESET",
        "    Reset the slowlog.",
        "HELP",
        "    Prints this help.",
    ];
    Reply::Array(LINES.iter().map(|l| Reply::status(*l)).collect())
}
