//! Pub/Sub commands (SUBSCRIBE family, PUBLISH, SPUBLISH, PUBSUB), answered by the connection
//! from `pubsub::Hub`, never through raft.
//!
//! The (un)subscribe commands answer with one push per channel, so the connection runs them
//! through [`subscription_frames`] (their table entries serve only inside MULTI, where the frames
//! go into EXEC's array). PUBLISH waits for the peers' counts, so the connection runs it through
//! [`publish`]; its table entry (inside MULTI) answers with this node's count alone.

use bytes::Bytes;

use super::{Kind, Spec, is, lossy};
use crate::pubsub::Kind as SubKind;
use crate::pubsub::links::Receivers;
use crate::resp::{Protocol, Reply};
use crate::session::Session;

const SUB_FLAGS: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const PUB_FLAGS: &[&str] = &["pubsub", "loading", "stale", "fast", "may_replicate"];

pub const SUBSCRIBE: Spec = Spec {
    name: "subscribe",
    arity: -2,
    kind: Kind::Local(in_multi),
    flags: SUB_FLAGS,
    keys: (0, 0, 0),
};

pub const UNSUBSCRIBE: Spec = Spec {
    name: "unsubscribe",
    arity: -1,
    ..SUBSCRIBE
};

pub const PSUBSCRIBE: Spec = Spec {
    name: "psubscribe",
    ..SUBSCRIBE
};

pub const PUNSUBSCRIBE: Spec = Spec {
    name: "punsubscribe",
    ..UNSUBSCRIBE
};

pub const SSUBSCRIBE: Spec = Spec {
    name: "ssubscribe",
    keys: (1, -1, 1),
    ..SUBSCRIBE
};

pub const SUNSUBSCRIBE: Spec = Spec {
    name: "sunsubscribe",
    keys: (1, -1, 1),
    ..UNSUBSCRIBE
};

pub const PUBLISH: Spec = Spec {
    name: "publish",
    arity: 3,
    kind: Kind::Local(publish_in_multi),
    flags: PUB_FLAGS,
    keys: (0, 0, 0),
};

pub const SPUBLISH: Spec = Spec {
    name: "spublish",
    keys: (1, 1, 1),
    ..PUBLISH
};

pub const PUBSUB: Spec = Spec {
    name: "pubsub",
    arity: -2,
    kind: Kind::Local(pubsub),
    flags: &["pubsub", "loading", "stale"],
    keys: (0, 0, 0),
};

/// True for the commands whose replies are pushes, one per channel.
pub fn is_subscription(spec: &Spec) -> bool {
    matches!(
        spec.name,
        "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "ssubscribe" | "sunsubscribe"
    )
}

pub fn is_publish(spec: &Spec) -> bool {
    matches!(spec.name, "publish" | "spublish")
}

/// What a RESP2 connection with subscriptions may still run.
pub fn allowed_when_subscribed(spec: &Spec) -> bool {
    is_subscription(spec) || matches!(spec.name, "ping" | "quit" | "reset")
}

/// Redis's refusal of any other command in that state; `fullname` is e.g. `get`, `client|list`.
pub fn refused_when_subscribed(fullname: &str) -> Reply {
    Reply::error(format!(
        "ERR Can't execute '{fullname}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

/// PING while subscribed in RESP2: `["pong", message or ""]`.
pub fn subscribed_ping(s: &Session, argv: &[Bytes]) -> Option<Reply> {
    if s.protocol != Protocol::Resp2 || !s.pubsub.active() {
        return None;
    }
    let msg = argv.get(1).cloned().unwrap_or_default();
    Some(Reply::Array(vec![
        Reply::bulk(Bytes::from_static(b"pong")),
        Reply::Bulk(msg),
    ]))
}

/// Inside MULTI: EXEC's array takes the frame in this command's place (as Redis writes it).
fn in_multi(s: &mut Session, argv: &[Bytes]) -> Reply {
    let mut frames = subscription_frames(s, argv);
    match frames.len() {
        1 => frames.remove(0),
        _ => Reply::Array(frames),
    }
}

/// Runs a (un)subscribe command; the replies in order, as Redis sends them.
pub fn subscription_frames(s: &mut Session, argv: &[Bytes]) -> Vec<Reply> {
    let name = argv[0].to_ascii_lowercase();
    let (kind, subscribing, word): (SubKind, bool, &'static [u8]) = match &name[..] {
        b"subscribe" => (SubKind::Channel, true, b"subscribe"),
        b"unsubscribe" => (SubKind::Channel, false, b"unsubscribe"),
        b"psubscribe" => (SubKind::Pattern, true, b"psubscribe"),
        b"punsubscribe" => (SubKind::Pattern, false, b"punsubscribe"),
        b"ssubscribe" => (SubKind::Shard, true, b"ssubscribe"),
        _ => (SubKind::Shard, false, b"sunsubscribe"),
    };
    let frame = |name: Reply, count: usize| {
        Reply::Push(vec![
            Reply::bulk(Bytes::from_static(word)),
            name,
            Reply::integer(count as i64),
        ])
    };
    let subs = &mut s.pubsub;
    let mut frames = Vec::new();
    if subscribing {
        for ch in &argv[1..] {
            subs.subscribe(kind, ch);
            frames.push(frame(Reply::Bulk(ch.clone()), subs.count(kind)));
        }
        return frames;
    }
    let names = if argv.len() > 1 {
        argv[1..].to_vec()
    } else {
        subs.names(kind)
    };
    for ch in names {
        subs.unsubscribe(kind, &ch);
        frames.push(frame(Reply::Bulk(ch), subs.count(kind)));
    }
    if frames.is_empty() {
        // Subscribed to nothing: still one reply, with a null name.
        frames.push(frame(Reply::Nil, subs.count(kind)));
    }
    frames
}

/// PUBLISH / SPUBLISH: this node's subscribers at once, the peers' through their links.
pub fn publish(s: &Session, argv: &[Bytes]) -> Receivers {
    let sharded = is(&argv[0], "spublish");
    s.shared
        .pubsub
        .publish(sharded, argv[1].clone(), argv[2].clone())
}

fn publish_in_multi(s: &mut Session, argv: &[Bytes]) -> Reply {
    let n = match publish(s, argv) {
        Receivers::Now(n) | Receivers::Later { here: n, .. } => n,
    };
    Reply::integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `PUBSUB <subcommand>`: what this node's subscribers are subscribed to.
fn pubsub(s: &mut Session, argv: &[Bytes]) -> Reply {
    let hub = &s.shared.pubsub;
    let sub = argv[1].to_ascii_lowercase();
    let n = argv.len();
    let arity = |name: &str| {
        Reply::error(format!(
            "ERR wrong number of arguments for 'pubsub|{name}' command"
        ))
    };
    let counts = |shard: bool| {
        Reply::Array(
            argv[2..]
                .iter()
                .flat_map(|ch| {
                    [
                        Reply::Bulk(ch.clone()),
                        Reply::integer(hub.numsub(shard, ch) as i64),
                    ]
                })
                .collect(),
        )
    };
    match &sub[..] {
        b"help" if n == 2 => help(),
        b"help" => arity("help"),
        b"channels" | b"shardchannels" if n <= 3 => {
            let shard = sub == b"shardchannels";
            let names = hub.channels(shard, argv.get(2).map(|p| &p[..]));
            Reply::Array(names.into_iter().map(Reply::Bulk).collect())
        }
        b"channels" | b"shardchannels" => Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            lossy(&argv[1], 128)
        )),
        b"numsub" => counts(false),
        b"shardnumsub" => counts(true),
        b"numpat" if n == 2 => Reply::integer(hub.numpat() as i64),
        b"numpat" => arity("numpat"),
        _ => Reply::error(format!(
            "ERR unknown subcommand '{}'. Try PUBSUB HELP.",
            lossy(&argv[1], 128)
        )),
    }
}

fn help() -> Reply {
    const LINES: &[&str] = &[
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
        "HELP",
        "    Prints this help.",
    ];
    Reply::Array(LINES.iter().map(|l| Reply::status(*l)).collect())
}
