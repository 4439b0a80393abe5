//! Connection commands: answered from the connection's own state, never through raft.

use bytes::Bytes;

use super::{Kind, Spec, is, lossy, parse_i64, syntax_error, wrong_arity};
use crate::config::ReadConsistency;
use crate::resp::{Protocol, Reply};
use crate::session::{DEFAULT_USER, Session};

pub const PING: Spec = Spec {
    name: "ping",
    arity: -1,
    kind: Kind::Local(ping),
    flags: &["fast", "stale"],
    keys: (0, 0, 0),
};

fn ping(s: &mut Session, argv: &[Bytes]) -> Reply {
    if argv.len() <= 2
        && let Some(reply) = super::pubsub::subscribed_ping(s, argv)
    {
        return reply;
    }
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

/// What Redis flags AUTH, HELLO, QUIT and RESET with: `no_auth` lets them run before the
/// connection has authenticated.
const NO_AUTH_FLAGS: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];

pub const QUIT: Spec = Spec {
    name: "quit",
    arity: -1,
    kind: Kind::Local(|s, _| {
        s.quit = true;
        Reply::ok()
    }),
    flags: NO_AUTH_FLAGS,
    keys: (0, 0, 0),
};

pub const RESET: Spec = Spec {
    name: "reset",
    arity: 1,
    kind: Kind::Local(|s, _| {
        s.reset();
        Reply::status("RESET")
    }),
    flags: NO_AUTH_FLAGS,
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
    flags: NO_AUTH_FLAGS,
    keys: (0, 0, 0),
};

/// `HELLO [protover [AUTH user pass] [SETNAME name]]` as redis-server 7.0 runs it: options are
/// applied left to right as they are read (an AUTH or SETNAME before a bad option stays done),
/// then the connection must be authenticated, then it switches protocol and gets the map.
fn hello(s: &mut Session, argv: &[Bytes]) -> Reply {
    let mut protocol = None;
    let mut i = 1;
    if argv.len() > 1 {
        protocol = match parse_i64(&argv[1]) {
            Some(2) => Some(Protocol::Resp2),
            Some(3) => Some(Protocol::Resp3),
            Some(_) => return Reply::error("NOPROTO unsupported protocol version"),
            None => {
                return Reply::error("ERR Protocol version is not an integer or out of range");
            }
        };
        i = 2;
    }
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if is(&argv[i], "auth") && more >= 2 {
            if !s.authenticate(&argv[i + 1], &argv[i + 2]) {
                return wrong_pass();
            }
            i += 3;
        } else if is(&argv[i], "setname") && more >= 1 {
            match super::client::check_name(&argv[i + 1]) {
                Ok(name) => s.set_name(name),
                Err(e) => return e,
            }
            i += 2;
        } else {
            return Reply::error(format!(
                "ERR Syntax error in HELLO option '{}'",
                lossy(&argv[i], 128)
            ));
        }
    }
    if s.needs_auth() {
        return Reply::error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO AUTH <user> <pass> option can be used to authenticate the client and select \
             the RESP protocol version at the same time",
        );
    }
    if let Some(p) = protocol {
        s.protocol = p;
    }
    let role = if s.shared.raft.status().is_leader() {
        "master"
    } else {
        "replica"
    };
    Reply::map([
        (Reply::bulk("server"), Reply::bulk("redis")),
        (
            Reply::bulk("version"),
            Reply::bulk(s.shared.config.redis_version.clone()),
        ),
        (Reply::bulk("proto"), Reply::Integer(s.protocol.version())),
        (Reply::bulk("id"), Reply::Integer(s.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk(role)),
        (Reply::bulk("modules"), Reply::Array(vec![])),
    ])
}

fn wrong_pass() -> Reply {
    Reply::error("WRONGPASS invalid username-password pair or user is disabled.")
}

pub const AUTH: Spec = Spec {
    name: "auth",
    arity: -2,
    kind: Kind::Local(auth),
    flags: NO_AUTH_FLAGS,
    keys: (0, 0, 0),
};

/// `AUTH password` (the default user) or `AUTH username password`, with Redis 7.0's errors.
fn auth(s: &mut Session, argv: &[Bytes]) -> Reply {
    let (user, password) = match argv {
        [_, password] => {
            let nopass =
                || crate::cmd::acl::current_user(&s.shared, DEFAULT_USER).is_none_or(|u| u.nopass);
            if !s.shared.requirepass.is_set() && nopass() {
                return Reply::error(
                    "ERR AUTH <password> called without any password configured for the \
                     default user. Are you sure your configuration is correct?",
                );
            }
            (DEFAULT_USER.as_bytes(), password)
        }
        [_, user, password] => (&user[..], password),
        _ => return syntax_error(),
    };
    if s.authenticate(user, password) {
        Reply::ok()
    } else {
        wrong_pass()
    }
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
