//! Connection commands: answered from the connection's own state, never through raft.

use bytes::Bytes;

use super::{Kind, Spec, is, lossy, parse_i64, wrong_arity};
use crate::config::ReadConsistency;
use crate::resp::Reply;
use crate::session::Session;

pub const PING: Spec = Spec {
    name: "ping",
    arity: -1,
    kind: Kind::Local(ping),
    flags: &["fast", "stale"],
    keys: (0, 0, 0),
};

fn ping(_: &mut Session, argv: &[Bytes]) -> Reply {
    match argv.len() {
        1 => Reply::status("PONG"),
        2 => Reply::Bulk(argv[1].clone()),
        _ => wrong_arity("ping"),
    }
}

pub const ECHO: Spec = Spec {
    name: "echo",
    arity: 2,
    kind: Kind::Local(|_, argv| Reply::Bulk(argv[1].clone())),
    flags: &["fast", "stale"],
    keys: (0, 0, 0),
};

pub const QUIT: Spec = Spec {
    name: "quit",
    arity: -1,
    kind: Kind::Local(|s, _| {
        s.quit = true;
        Reply::ok()
    }),
    flags: &["fast", "stale", "noscript"],
    keys: (0, 0, 0),
};

pub const SELECT: Spec = Spec {
    name: "select",
    arity: 2,
    kind: Kind::Local(select),
    flags: &["fast", "stale"],
    keys: (0, 0, 0),
};

/// SELECT n: later commands of this connection address database n.
fn select(s: &mut Session, argv: &[Bytes]) -> Reply {
    match parse_i64(&argv[1]) {
        None => Reply::error("ERR value is not an integer or out of range"),
        Some(n) => match u8::try_from(n) {
            Ok(db) if db < crate::kv::encoding::DATABASES => {
                s.db = db;
                Reply::ok()
            }
            _ => Reply::error("ERR DB index is out of range"),
        },
    }
}

pub const HELLO: Spec = Spec {
    name: "hello",
    arity: -1,
    kind: Kind::Local(hello),
    flags: &["fast", "stale", "noscript"],
    keys: (0, 0, 0),
};

/// Only RESP2 is spoken; `HELLO 3` gets Redis's NOPROTO error so clients fall back.
fn hello(s: &mut Session, argv: &[Bytes]) -> Reply {
    let mut i = 1;
    if argv.len() > 1 {
        match parse_i64(&argv[1]) {
            Some(2) => {}
            Some(_) => return Reply::error("NOPROTO unsupported protocol version"),
            None => {
                return Reply::error("ERR Protocol version is not an integer or out of range");
            }
        }
        i = 2;
    }
    while i < argv.len() {
        if is(&argv[i], "setname") && i + 1 < argv.len() {
            if let Err(e) = set_name(s, &argv[i + 1]) {
                return e;
            }
            i += 2;
        } else if is(&argv[i], "auth") && i + 2 < argv.len() {
            return Reply::error("WRONGPASS invalid username-password pair or user is disabled.");
        } else {
            return Reply::error(format!(
                "ERR Syntax error in HELLO option '{}'",
                lossy(&argv[i], 128)
            ));
        }
    }
    Reply::Array(vec![
        Reply::bulk("server"),
        Reply::bulk("redis"),
        Reply::bulk("version"),
        Reply::bulk(crate::server::REDIS_VERSION),
        Reply::bulk("proto"),
        Reply::Integer(2),
        Reply::bulk("id"),
        Reply::Integer(s.id as i64),
        Reply::bulk("mode"),
        Reply::bulk("standalone"),
        Reply::bulk("role"),
        Reply::bulk(if s.shared.raft.status().is_leader() {
            "master"
        } else {
            "replica"
        }),
        Reply::bulk("modules"),
        Reply::Array(vec![]),
    ])
}

pub const CLIENT: Spec = Spec {
    name: "client",
    arity: -2,
    kind: Kind::Local(client),
    flags: &["stale", "noscript"],
    keys: (0, 0, 0),
};

fn client(s: &mut Session, argv: &[Bytes]) -> Reply {
    let sub = &argv[1];
    let n = argv.len();
    if is(sub, "setname") && n == 3 {
        return match set_name(s, &argv[2]) {
            Ok(()) => Reply::ok(),
            Err(e) => e,
        };
    }
    if is(sub, "getname") && n == 2 {
        return s.name.clone().map(Reply::Bulk).unwrap_or(Reply::Nil);
    }
    if is(sub, "id") && n == 2 {
        return Reply::Integer(s.id as i64);
    }
    if is(sub, "setinfo") && n == 4 {
        if is(&argv[2], "lib-name") || is(&argv[2], "lib-ver") {
            if argv[3].iter().any(|&b| b <= b' ' || b > b'~') {
                return Reply::error(format!(
                    "ERR {} cannot contain spaces, newlines or special characters.",
                    lossy(&argv[2], 32).to_ascii_uppercase()
                ));
            }
            return Reply::ok();
        }
        return Reply::error(format!(
            "ERR Unrecognized option '{}'",
            lossy(&argv[2], 128)
        ));
    }
    if is(sub, "info") && n == 2 {
        return Reply::bulk(format!(
            "id={} addr={} name={} db=0 cmd=client|info\n",
            s.id,
            s.peer,
            s.name.as_deref().map(|b| lossy(b, 128)).unwrap_or_default()
        ));
    }
    let known = ["setname", "getname", "id", "setinfo", "info"];
    if known.iter().any(|k| is(sub, k)) {
        return wrong_arity(&format!("client|{}", lossy(sub, 32).to_ascii_lowercase()));
    }
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try CLIENT HELP.",
        lossy(sub, 128)
    ))
}

fn set_name(s: &mut Session, name: &Bytes) -> Result<(), Reply> {
    if name.iter().any(|&b| b <= b' ' || b > b'~') {
        return Err(Reply::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    s.name = if name.is_empty() {
        None
    } else {
        Some(name.clone())
    };
    Ok(())
}

pub const CONSISTENCY: Spec = Spec {
    name: "consistency",
    arity: -1,
    kind: Kind::Local(consistency),
    flags: &["fast", "stale"],
    keys: (0, 0, 0),
};

/// kvd's own: `CONSISTENCY` shows (as a bulk string), `CONSISTENCY LOCAL|LINEARIZABLE` sets (+OK)
/// how this connection's reads are served.
fn consistency(s: &mut Session, argv: &[Bytes]) -> Reply {
    match argv.len() {
        1 => {}
        2 if is(&argv[1], "local") => {
            s.consistency = ReadConsistency::Local;
            return Reply::ok();
        }
        2 if is(&argv[1], "linearizable") => {
            s.consistency = ReadConsistency::Linearizable;
            return Reply::ok();
        }
        2 => return Reply::error("ERR CONSISTENCY takes LOCAL or LINEARIZABLE"),
        _ => return wrong_arity("consistency"),
    }
    Reply::bulk(match s.consistency {
        ReadConsistency::Local => "local",
        ReadConsistency::Linearizable => "linearizable",
    })
}
