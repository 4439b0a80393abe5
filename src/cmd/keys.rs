//! Generic key commands: DEL, UNLINK, EXISTS, TYPE, KEYS.

use bytes::Bytes;

use super::{CmdResult, Kind, Spec, glob};
use crate::kv::{ApplyCtx, KeyRead, WriteView};
use crate::resp::Reply;

pub const DEL: Spec = Spec {
    name: "del",
    arity: -2,
    kind: Kind::Write {
        prepare: Ok,
        apply: del,
    },
    flags: &[],
    keys: (1, -1, 1),
};

/// Deletion is synchronous in kvd, so UNLINK is DEL under another name.
pub const UNLINK: Spec = Spec {
    name: "unlink",
    flags: &["fast"],
    ..DEL
};

/// Removes each key; replies with how many existed (a key named twice counts once).
fn del(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for key in argv.iter().skip(1) {
        if w.delete(key)? {
            n += 1;
        }
    }
    Ok(Reply::Integer(n))
}

pub const EXISTS: Spec = Spec {
    name: "exists",
    arity: -2,
    kind: Kind::Read(exists),
    flags: &["fast"],
    keys: (1, -1, 1),
};

/// Counts the keys that exist; a key named twice counts twice, as in Redis.
fn exists(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for key in argv.iter().skip(1) {
        if r.exists(key)? {
            n += 1;
        }
    }
    Ok(Reply::Integer(n))
}

pub const TYPE: Spec = Spec {
    name: "type",
    arity: 2,
    kind: Kind::Read(|r, argv| {
        Ok(Reply::status(
            r.meta(&argv[1])?.map_or("none", |m| m.kind.name()),
        ))
    }),
    flags: &["fast"],
    keys: (1, 1, 1),
};

pub const KEYS: Spec = Spec {
    name: "keys",
    arity: 2,
    kind: Kind::Read(keys),
    flags: &[],
    keys: (0, 0, 0),
};

fn keys(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let pattern = &argv[1];
    let mut out = Vec::new();
    r.scan_keys(&mut |k, _| {
        if glob::matches(pattern, k, false) {
            out.push(Reply::Bulk(Bytes::copy_from_slice(k)));
        }
        true
    })?;
    Ok(Reply::Array(out))
}
