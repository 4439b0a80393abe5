//! String commands: GET, SET, SETNX, GETSET, GETDEL, MGET, MSET, MSETNX, STRLEN, APPEND,
//! INCR, DECR, INCRBY, DECRBY.

use bytes::Bytes;

use super::{
    CmdResult, Kind, Spec, get_string, is, not_an_integer, parse_i64, string_value, syntax_error,
    wrong_arity,
};
use crate::kv::{ApplyCtx, KeyRead, KeyType, Meta, WriteView};
use crate::resp::Reply;

/// Largest string a write may produce (Redis's 512 MB). A constant, not a per-node setting:
/// `apply` must decide the same on every node.
const MAX_STRING: usize = 512 * 1024 * 1024;

pub const GET: Spec = Spec {
    name: "get",
    arity: 2,
    kind: Kind::Read(|r, argv| Ok(get_string(r, &argv[1])?.into())),
    flags: &["fast"],
    keys: (1, 1, 1),
};

pub const SET: Spec = Spec {
    name: "set",
    arity: -3,
    kind: Kind::Write {
        prepare: prepare_set,
        apply: set,
    },
    flags: &[],
    keys: (1, 1, 1),
};

/// Options SET understands, parsed the same way before proposing and when applying.
#[derive(Default)]
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
}

fn parse_set_options(args: &[Bytes]) -> Result<SetOptions, Reply> {
    let mut o = SetOptions::default();
    for a in args {
        if is(a, "nx") && !o.xx {
            o.nx = true;
        } else if is(a, "xx") && !o.nx {
            o.xx = true;
        } else if is(a, "get") {
            o.get = true;
        } else if ["ex", "px", "exat", "pxat", "keepttl"]
            .iter()
            .any(|w| is(a, w))
        {
            return Err(Reply::error(
                "ERR kvd does not support key expiry (EX, PX, EXAT, PXAT, KEEPTTL)",
            ));
        } else {
            return Err(syntax_error());
        }
    }
    Ok(o)
}

fn prepare_set(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    parse_set_options(&argv[3..])?;
    Ok(argv)
}

/// SET key value [NX|XX] [GET]: +OK, or nil when NX/XX prevented it; with GET, the old value
/// (WRONGTYPE, and nothing set, if the key holds another type).
fn set(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let o = parse_set_options(&argv[3..])?;
    let key = &argv[1];
    let old = if o.get || o.nx || o.xx {
        w.meta(key)?
    } else {
        None
    };
    let exists = old.is_some();
    let old_value = if o.get { string_value(old)? } else { None };
    let blocked = (o.nx && exists) || (o.xx && !exists);
    if !blocked {
        w.set_string(key, argv[2].clone());
    }
    Ok(match (o.get, blocked) {
        (true, _) => old_value.into(),
        (false, true) => Reply::Nil,
        (false, false) => Reply::ok(),
    })
}

/// Replaces a string's value in place (APPEND, INCR): its expiry stays, as in Redis.
fn update_string(w: &mut WriteView, key: &[u8], old: Option<Meta>, value: Bytes) {
    match old {
        Some(mut m) => {
            m.body = value;
            m.modified = w.index();
            w.put_meta(key, &m);
        }
        None => w.set_string(key, value),
    }
}

/// A string key's metadata for an in-place change: WRONGTYPE for other types.
fn string_meta(w: &WriteView, key: &[u8]) -> Result<Option<Meta>, super::CmdError> {
    match w.meta(key)? {
        Some(m) if m.kind != KeyType::String => Err(super::wrong_type().into()),
        m => Ok(m),
    }
}

pub const SETNX: Spec = Spec {
    name: "setnx",
    arity: 3,
    kind: Kind::Write {
        prepare: Ok,
        apply: |w, _, argv| {
            if w.exists(&argv[1])? {
                return Ok(Reply::Integer(0));
            }
            w.set_string(&argv[1], argv[2].clone());
            Ok(Reply::Integer(1))
        },
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

pub const GETSET: Spec = Spec {
    name: "getset",
    arity: 3,
    kind: Kind::Write {
        prepare: Ok,
        apply: |w, _, argv| {
            let old = get_string(w, &argv[1])?;
            w.set_string(&argv[1], argv[2].clone());
            Ok(old.into())
        },
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

pub const GETDEL: Spec = Spec {
    name: "getdel",
    arity: 2,
    kind: Kind::Write {
        prepare: Ok,
        apply: |w, _, argv| {
            let old = get_string(w, &argv[1])?;
            if old.is_some() {
                w.delete(&argv[1])?;
            }
            Ok(old.into())
        },
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

pub const MGET: Spec = Spec {
    name: "mget",
    arity: -2,
    kind: Kind::Read(mget),
    flags: &["fast"],
    keys: (1, -1, 1),
};

/// MGET: a key of another type reads as nil, as in Redis.
fn mget(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let mut out = Vec::with_capacity(argv.len().saturating_sub(1));
    for key in argv.iter().skip(1) {
        out.push(string_value(r.meta(key)?).unwrap_or(None).into());
    }
    Ok(Reply::Array(out))
}

pub const MSET: Spec = Spec {
    name: "mset",
    arity: -3,
    kind: Kind::Write {
        prepare: |argv| pairs(argv, "mset"),
        apply: |w, _, argv| {
            check_pairs(argv, "mset")?;
            for kv in argv[1..].chunks_exact(2) {
                w.set_string(&kv[0], kv[1].clone());
            }
            Ok(Reply::ok())
        },
    },
    flags: &[],
    keys: (1, -1, 2),
};

pub const MSETNX: Spec = Spec {
    name: "msetnx",
    arity: -3,
    kind: Kind::Write {
        prepare: |argv| pairs(argv, "msetnx"),
        apply: |w, _, argv| {
            check_pairs(argv, "msetnx")?;
            for kv in argv[1..].chunks_exact(2) {
                if w.exists(&kv[0])? {
                    return Ok(Reply::Integer(0));
                }
            }
            for kv in argv[1..].chunks_exact(2) {
                w.set_string(&kv[0], kv[1].clone());
            }
            Ok(Reply::Integer(1))
        },
    },
    flags: &[],
    keys: (1, -1, 2),
};

/// MSET-style commands take key/value pairs; an odd count is an arity error in Redis.
fn pairs(argv: Vec<Bytes>, name: &str) -> Result<Vec<Bytes>, Reply> {
    check_pairs(&argv, name)?;
    Ok(argv)
}

fn check_pairs(argv: &[Bytes], name: &str) -> Result<(), Reply> {
    if argv.len().is_multiple_of(2) {
        return Err(wrong_arity(name));
    }
    Ok(())
}

pub const STRLEN: Spec = Spec {
    name: "strlen",
    arity: 2,
    kind: Kind::Read(|r, argv| {
        let len = get_string(r, &argv[1])?.map_or(0, |v| v.len());
        Ok(Reply::Integer(len as i64))
    }),
    flags: &["fast"],
    keys: (1, 1, 1),
};

pub const APPEND: Spec = Spec {
    name: "append",
    arity: 3,
    kind: Kind::Write {
        prepare: Ok,
        apply: append,
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

/// Appends to the value (creating it), replying with the new length.
fn append(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let meta = string_meta(w, &argv[1])?;
    let old = meta.as_ref().map(|m| m.body.clone()).unwrap_or_default();
    if old.len() + argv[2].len() > MAX_STRING {
        return Ok(Reply::error(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let mut v = Vec::with_capacity(old.len() + argv[2].len());
    v.extend_from_slice(&old);
    v.extend_from_slice(&argv[2]);
    let len = v.len();
    update_string(w, &argv[1], meta, v.into());
    Ok(Reply::Integer(len as i64))
}

pub const INCR: Spec = Spec {
    name: "incr",
    arity: 2,
    kind: Kind::Write {
        prepare: Ok,
        apply: |w, _, argv| incr_by(w, &argv[1], 1),
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

pub const DECR: Spec = Spec {
    name: "decr",
    arity: 2,
    kind: Kind::Write {
        prepare: Ok,
        apply: |w, _, argv| incr_by(w, &argv[1], -1),
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

pub const INCRBY: Spec = Spec {
    name: "incrby",
    arity: 3,
    kind: Kind::Write {
        prepare: prepare_increment,
        apply: |w, _, argv| match parse_i64(&argv[2]) {
            Some(by) => incr_by(w, &argv[1], by),
            None => Ok(not_an_integer()),
        },
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

pub const DECRBY: Spec = Spec {
    name: "decrby",
    arity: 3,
    kind: Kind::Write {
        prepare: prepare_increment,
        apply: |w, _, argv| match parse_i64(&argv[2]).and_then(i64::checked_neg) {
            Some(by) => incr_by(w, &argv[1], by),
            None => Ok(Reply::error("ERR decrement would overflow")),
        },
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

fn prepare_increment(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    match parse_i64(&argv[2]) {
        Some(_) => Ok(argv),
        None => Err(not_an_integer()),
    }
}

fn incr_by(w: &mut WriteView, key: &[u8], by: i64) -> CmdResult {
    let meta = string_meta(w, key)?;
    let current = match &meta {
        None => 0,
        Some(m) => parse_i64(&m.body).ok_or_else(not_an_integer)?,
    };
    match current.checked_add(by) {
        Some(n) => {
            update_string(w, key, meta, Bytes::from(n.to_string()));
            Ok(Reply::Integer(n))
        }
        None => Ok(Reply::error("ERR increment or decrement would overflow")),
    }
}
