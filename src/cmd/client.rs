//! CLIENT and its subcommands: this connection's name and id, the list of this node's
//! connections, killing them, pausing them, and suppressing replies, with redis-server 7.0's
//! replies and error texts.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Kind, Spec, is, lossy, parse_i64, syntax_error, wrong_arity};
use crate::pubsub::ClientFields;
use crate::resp::Reply;
use crate::session::{ClientInfo, DEFAULT_USER, Session};

pub const CLIENT: Spec = Spec {
    name: "client",
    arity: -2,
    kind: Kind::Local(client),
    flags: &["stale", "noscript"],
    keys: (0, 0, 0),
};

/// Subcommand name, and the arity Redis gives it (N exactly, -N at least N).
const ARITIES: &[(&str, i64)] = &[
    ("setname", 3),
    ("getname", 2),
    ("id", 2),
    ("setinfo", 4),
    ("info", 2),
    ("list", -2),
    ("kill", -3),
    ("no-evict", 3),
    ("no-touch", 3),
    ("reply", 3),
    ("pause", -3),
    ("unpause", 2),
    ("getredir", 2),
    ("unblock", -3),
    ("caching", 3),
    ("trackinginfo", 2),
    ("tracking", -3),
    ("help", 2),
];

fn client(s: &mut Session, argv: &[Bytes]) -> Reply {
    let sub = &argv[1];
    let Some(&(name, arity)) = ARITIES.iter().find(|(n, _)| is(sub, n)) else {
        return unknown_subcommand(sub);
    };
    let argc = argv.len() as i64;
    if (arity > 0 && argc != arity) || (arity < 0 && argc < -arity) {
        return wrong_arity(&format!("client|{name}"));
    }
    match name {
        "setname" => match check_name(&argv[2]) {
            Ok(n) => {
                s.set_name(n);
                Reply::ok()
            }
            Err(e) => e,
        },
        "getname" => s.name.clone().map(Reply::Bulk).unwrap_or(Reply::Nil),
        "id" => Reply::Integer(s.id as i64),
        "setinfo" => setinfo(argv),
        "info" => Reply::verbatim_text(own_line(s, argv)),
        "list" => list(s, argv),
        "kill" => kill(s, argv),
        "no-evict" | "no-touch" => {
            let flag = if name == "no-evict" {
                &s.info.no_evict
            } else {
                &s.info.no_touch
            };
            match on_off(&argv[2]) {
                Some(v) => {
                    flag.store(v, Relaxed);
                    Reply::ok()
                }
                None => syntax_error(),
            }
        }
        "reply" => {
            let mode = &argv[2];
            if is(mode, "on") {
                s.reply_off = false;
                s.skip_next_reply = false;
                s.skip_this_reply = false;
                Reply::ok()
            } else if is(mode, "off") {
                s.reply_off = true;
                Reply::ok()
            } else if is(mode, "skip") {
                s.skip_next_reply = true;
                Reply::ok()
            } else {
                syntax_error()
            }
        }
        "pause" => pause(s, argv),
        "unpause" => {
            s.shared.clients.unpause();
            Reply::ok()
        }
        "getredir" => super::tracking::getredir(s),
        "unblock" => unblock(s, argv),
        "caching" => super::tracking::caching(s, argv),
        "trackinginfo" => super::tracking::trackinginfo(s),
        "tracking" => super::tracking::tracking(s, argv),
        _ => help(),
    }
}

fn unknown_subcommand(sub: &[u8]) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try CLIENT HELP.",
        lossy(sub, 128)
    ))
}

fn on_off(arg: &[u8]) -> Option<bool> {
    if is(arg, "on") {
        Some(true)
    } else if is(arg, "off") {
        Some(false)
    } else {
        None
    }
}

/// A client name as CLIENT SETNAME and HELLO SETNAME accept it (empty clears it).
pub(super) fn check_name(name: &Bytes) -> Result<Option<Bytes>, Reply> {
    if name.iter().any(|&b| b <= b' ' || b > b'~') {
        return Err(Reply::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok((!name.is_empty()).then(|| name.clone()))
}

fn setinfo(argv: &[Bytes]) -> Reply {
    if is(&argv[2], "lib-name") || is(&argv[2], "lib-ver") {
        if argv[3].iter().any(|&b| b <= b' ' || b > b'~') {
            return Reply::error(format!(
                "ERR {} cannot contain spaces, newlines or special characters.",
                lossy(&argv[2], 32).to_ascii_uppercase()
            ));
        }
        return Reply::ok();
    }
    Reply::error(format!(
        "ERR Unrecognized option '{}'",
        lossy(&argv[2], 128)
    ))
}

/// One CLIENT LIST line in Redis 7.0's field order. kvd keeps no per-client buffer accounting,
/// so the buffer fields are 0.
fn line(
    out: &mut String,
    c: &ClientInfo,
    name: Option<&[u8]>,
    (db, resp, qbuf): (u8, u8, usize),
    cmd: &str,
    ps: ClientFields,
) {
    let mut flags = String::new();
    if ps.sub + ps.psub + ps.ssub > 0 {
        flags.push('P');
    }
    if ps.tracking {
        flags.push('t');
    }
    if ps.broken_redirect {
        flags.push('R');
    }
    if ps.bcast {
        flags.push('B');
    }
    if c.no_evict.load(Relaxed) {
        flags.push('e');
    }
    if c.no_touch.load(Relaxed) {
        flags.push('T');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let user = c.user.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let _ = writeln!(
        out,
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={flags} db={db} sub={} psub={} \
         ssub={} multi=-1 qbuf={qbuf} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
         omem=0 tot-mem=0 events=r cmd={cmd} user={user} redir={} resp={resp}",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        name.map(|n| lossy(n, 256)).unwrap_or_default(),
        c.created.elapsed().as_secs(),
        c.idle_secs(),
        ps.sub,
        ps.psub,
        ps.ssub,
        ps.redir,
    );
}

/// This connection's line, from its live session (the command running is this CLIENT one,
/// whose request is what its query buffer holds).
fn own_line(s: &Session, argv: &[Bytes]) -> String {
    let mut out = String::new();
    let cmd = s.info.cmd();
    let qbuf = request_len(argv);
    line(
        &mut out,
        &s.info,
        s.name.as_deref(),
        (s.db, s.protocol.version() as u8, qbuf),
        &cmd,
        s.shared.pubsub.client_fields(s.id),
    );
    out
}

/// Bytes of `argv` as a RESP request.
fn request_len(argv: &[Bytes]) -> usize {
    let header = |n: usize| 3 + n.to_string().len();
    header(argv.len())
        + argv
            .iter()
            .map(|a| header(a.len()) + a.len() + 2)
            .sum::<usize>()
}

fn client_line(s: &Session, argv: &[Bytes], c: &ClientInfo) -> String {
    if c.id == s.id {
        return own_line(s, argv);
    }
    let mut out = String::new();
    let name = c.name();
    line(
        &mut out,
        c,
        name.as_deref(),
        (c.db.load(Relaxed), c.resp.load(Relaxed), 0),
        &c.cmd(),
        s.shared.pubsub.client_fields(c.id),
    );
    out
}

/// A client type of Redis, as CLIENT LIST TYPE and CLIENT KILL TYPE name them. A kvd
/// connection is `pubsub` while it has a subscription (as Redis's CLIENT_PUBSUB flag), else
/// `normal`; none is a master or a replica.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    PubSub,
    Replication,
}

impl ClientType {
    fn of(s: &Session, c: &ClientInfo) -> ClientType {
        let f = s.shared.pubsub.client_fields(c.id);
        if f.sub + f.psub + f.ssub > 0 {
            ClientType::PubSub
        } else {
            ClientType::Normal
        }
    }
}

fn client_type(arg: &[u8]) -> Result<ClientType, Reply> {
    if is(arg, "normal") {
        Ok(ClientType::Normal)
    } else if is(arg, "pubsub") {
        Ok(ClientType::PubSub)
    } else if ["master", "replica", "slave"].iter().any(|t| is(arg, t)) {
        Ok(ClientType::Replication)
    } else {
        Err(Reply::error(format!(
            "ERR Unknown client type '{}'",
            lossy(arg, 128)
        )))
    }
}

/// `CLIENT LIST [TYPE type] [ID id ...]`.
fn list(s: &Session, argv: &[Bytes]) -> Reply {
    let clients = s.shared.clients.all();
    let mut out = String::new();
    if argv.len() == 2 {
        for c in &clients {
            out.push_str(&client_line(s, argv, c));
        }
    } else if argv.len() == 4 && is(&argv[2], "type") {
        match client_type(&argv[3]) {
            Ok(t) => clients
                .iter()
                .filter(|c| ClientType::of(s, c) == t)
                .for_each(|c| out.push_str(&client_line(s, argv, c))),
            Err(e) => return e,
        }
    } else if argv.len() >= 4 && is(&argv[2], "id") {
        let mut ids = Vec::new();
        for a in &argv[3..] {
            match parse_i64(a) {
                Some(id) if id > 0 => ids.push(id as u64),
                _ => return Reply::error("ERR Invalid client ID"),
            }
        }
        for c in clients.iter().filter(|c| ids.contains(&c.id)) {
            out.push_str(&client_line(s, argv, c));
        }
    } else {
        return syntax_error();
    }
    Reply::verbatim_text(out)
}

/// `CLIENT KILL addr:port` (the old form: +OK or an error) or `CLIENT KILL filter value ...`
/// (the count of connections killed; SKIPME defaults to yes).
fn kill(s: &Session, argv: &[Bytes]) -> Reply {
    let clients = s.shared.clients.all();
    if argv.len() == 3 {
        let addr = &argv[2];
        return match clients
            .iter()
            .find(|c| c.addr.to_string().as_bytes() == &addr[..])
        {
            Some(c) => {
                s.shared.clients.kill(c);
                Reply::ok()
            }
            None => Reply::error("ERR No such client"),
        };
    }
    if !argv.len().is_multiple_of(2) {
        return syntax_error();
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut kind = None;
    let mut skipme = true;
    for pair in argv[2..].chunks(2) {
        let (opt, v) = (&pair[0], &pair[1]);
        if is(opt, "id") {
            match parse_i64(v) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return Reply::error("ERR client-id should be greater than 0"),
            }
        } else if is(opt, "type") {
            match client_type(v) {
                Ok(t) => kind = Some(t),
                Err(e) => return e,
            }
        } else if is(opt, "addr") {
            addr = Some(v.clone());
        } else if is(opt, "laddr") {
            laddr = Some(v.clone());
        } else if is(opt, "user") {
            if &v[..] != DEFAULT_USER.as_bytes() {
                return Reply::error(format!("ERR No such user '{}'", lossy(v, 128)));
            }
        } else if is(opt, "skipme") {
            match (is(v, "yes"), is(v, "no")) {
                (true, _) => skipme = true,
                (_, true) => skipme = false,
                _ => return syntax_error(),
            }
        } else {
            return syntax_error();
        }
    }
    let mut killed = 0;
    for c in &clients {
        let hit = kind.is_none_or(|t| ClientType::of(s, c) == t)
            && id.is_none_or(|id| c.id == id)
            && addr
                .as_ref()
                .is_none_or(|a| c.addr.to_string().as_bytes() == &a[..])
            && laddr
                .as_ref()
                .is_none_or(|a| c.laddr.to_string().as_bytes() == &a[..])
            && !(skipme && c.id == s.id)
            // A connection already killed is on its way out (Redis frees it at once).
            && !c.killed.load(std::sync::atomic::Ordering::Relaxed);
        if hit {
            s.shared.clients.kill(c);
            killed += 1;
        }
    }
    Reply::Integer(killed)
}

/// `CLIENT PAUSE timeout-ms [WRITE|ALL]`: this node's clients' writes (or, with ALL, every
/// command) wait until the time passes or CLIENT UNPAUSE.
fn pause(s: &Session, argv: &[Bytes]) -> Reply {
    let ms = match parse_i64(&argv[2]) {
        Some(ms) if ms < 0 => return Reply::error("ERR timeout is negative"),
        Some(ms) => ms as u64,
        None => return Reply::error("ERR timeout is not an integer or out of range"),
    };
    let all = match argv.get(3) {
        None => true,
        Some(m) if is(m, "all") => true,
        Some(m) if is(m, "write") => false,
        Some(_) => return Reply::error("ERR CLIENT PAUSE mode must be WRITE or ALL"),
    };
    if argv.len() > 4 {
        return syntax_error();
    }
    let until = Instant::now() + Duration::from_millis(ms.min(u32::MAX as u64 * 1000));
    s.shared.clients.pause(until, all);
    Reply::ok()
}

/// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: ends a wait of a client blocked on this node (see
/// `crate::blocking`) or in WAIT (see `wait::unblock`); 1 if it was blocked.
fn unblock(s: &Session, argv: &[Bytes]) -> Reply {
    let Some(id) = parse_i64(&argv[2]) else {
        return Reply::error("ERR value is not an integer or out of range");
    };
    let error = match argv.get(3) {
        None => false,
        Some(r) if argv.len() == 4 && (is(r, "timeout") || is(r, "error")) => is(r, "error"),
        Some(_) => return Reply::error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let unblocked = u64::try_from(id).is_ok_and(|id| {
        s.shared.blocking.unblock(id, error) || super::wait::unblock(&s.shared, id, error)
    });
    Reply::Integer(i64::from(unblocked))
}

fn help() -> Reply {
    const LINES: &[&str] = &[
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CACHING (YES|NO)",
        "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
        "GETREDIR",
        "    Return the client ID we are redirecting to when tracking is enabled.",
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "KILL <ip:port>",
        "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are:",
        "    * ADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made from the specified address",
        "    * LADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made to specified local address",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Kill connections by type.",
        "    * USER <username>",
        "      Kill connections authenticated by <username>.",
        "    * SKIPME (YES|NO)",
        "      Skip killing current connection (default: yes).",
        "LIST [options ...]",
        "    Return information about client connections. Options:",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Return clients of specified type.",
        "UNPAUSE",
        "    Stop the current client pause, resuming traffic.",
        "PAUSE <timeout> [WRITE|ALL]",
        "    Suspend all, or just write, clients for <timeout> milliseconds.",
        "REPLY (ON|OFF|SKIP)",
        "    Control the replies sent to the current connection.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "UNBLOCK <clientid> [TIMEOUT|ERROR]",
        "    Unblock the specified blocked client.",
        "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
        "         [OPTIN] [OPTOUT] [NOLOOP]",
        "    Control server assisted client side caching.",
        "TRACKINGINFO",
        "    Report tracking status for the current connection.",
        "NO-EVICT (ON|OFF)",
        "    Protect current client connection from eviction.",
        "HELP",
        "    Prints this help.",
    ];
    Reply::Array(LINES.iter().map(|l| Reply::status(*l)).collect())
}
