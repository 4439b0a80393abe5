//! Generic key commands: DEL, UNLINK, EXISTS, TYPE, KEYS.

use bytes::Bytes;

use super::{Kind, Spec, glob};
use crate::kv::{ApplyCtx, ReadView, WriteView};
use crate::resp::Reply;
use crate::store::StoreError;

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
fn del(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> Result<Reply, StoreError> {
    let mut n = 0;
    for key in &argv[1..] {
        if w.remove(key)? {
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
fn exists(r: &ReadView, argv: &[Bytes]) -> Result<Reply, StoreError> {
    let mut n = 0;
    for key in &argv[1..] {
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
        Ok(Reply::status(if r.exists(&argv[1])? {
            "string"
        } else {
            "none"
        }))
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

fn keys(r: &ReadView, argv: &[Bytes]) -> Result<Reply, StoreError> {
    let pattern = &argv[1];
    let mut out = Vec::new();
    r.scan(|k, _| {
        if glob::matches(pattern, k, false) {
            out.push(Reply::Bulk(Bytes::copy_from_slice(k)));
        }
        true
    })?;
    Ok(Reply::Array(out))
}
