//! String commands: GET, SET, SETNX, GETSET, GETDEL, MGET, MSET, MSETNX, STRLEN, APPEND,
//! INCR, DECR, INCRBY, DECRBY.

use bytes::Bytes;

use super::{Kind, Spec, is, not_an_integer, parse_i64, syntax_error, wrong_arity};
use crate::kv::{ApplyCtx, ReadView, WriteView};
use crate::resp::Reply;
use crate::store::StoreError;

/// Largest string a write may produce (Redis's 512 MB). A constant, not a per-node setting:
/// `apply` must decide the same on every node.
const MAX_STRING: usize = 512 * 1024 * 1024;

pub const GET: Spec = Spec {
    name: "get",
    arity: 2,
    kind: Kind::Read(|r, argv| Ok(r.get(&argv[1])?.map(Reply::Bulk).unwrap_or(Reply::Nil))),
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

/// SET key value [NX|XX] [GET]: +OK, or nil when NX/XX prevented it; with GET, the old value.
fn set(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> Result<Reply, StoreError> {
    let o = match parse_set_options(&argv[3..]) {
        Ok(o) => o,
        Err(e) => return Ok(e),
    };
    let key = &argv[1];
    let old = if o.get || o.nx || o.xx {
        w.get(key)?
    } else {
        None
    };
    let blocked = (o.nx && old.is_some()) || (o.xx && old.is_none());
    if !blocked {
        w.set(key, &argv[2])?;
    }
    Ok(match (o.get, blocked) {
        (true, _) => old.map(Reply::Bulk).unwrap_or(Reply::Nil),
        (false, true) => Reply::Nil,
        (false, false) => Reply::ok(),
    })
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
            w.set(&argv[1], &argv[2])?;
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
            let old = w.get(&argv[1])?;
            w.set(&argv[1], &argv[2])?;
            Ok(old.map(Reply::Bulk).unwrap_or(Reply::Nil))
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
            let old = w.get(&argv[1])?;
            if old.is_some() {
                w.remove(&argv[1])?;
            }
            Ok(old.map(Reply::Bulk).unwrap_or(Reply::Nil))
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

fn mget(r: &ReadView, argv: &[Bytes]) -> Result<Reply, StoreError> {
    let mut out = Vec::with_capacity(argv.len() - 1);
    for key in &argv[1..] {
        out.push(r.get(key)?.map(Reply::Bulk).unwrap_or(Reply::Nil));
    }
    Ok(Reply::Array(out))
}

pub const MSET: Spec = Spec {
    name: "mset",
    arity: -3,
    kind: Kind::Write {
        prepare: |argv| pairs(argv, "mset"),
        apply: |w, _, argv| {
            for kv in argv[1..].chunks_exact(2) {
                w.set(&kv[0], &kv[1])?;
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
            for kv in argv[1..].chunks_exact(2) {
                if w.exists(&kv[0])? {
                    return Ok(Reply::Integer(0));
                }
            }
            for kv in argv[1..].chunks_exact(2) {
                w.set(&kv[0], &kv[1])?;
            }
            Ok(Reply::Integer(1))
        },
    },
    flags: &[],
    keys: (1, -1, 2),
};

/// MSET-style commands take key/value pairs; an odd count is an arity error in Redis.
fn pairs(argv: Vec<Bytes>, name: &str) -> Result<Vec<Bytes>, Reply> {
    if argv.len().is_multiple_of(2) {
        return Err(wrong_arity(name));
    }
    Ok(argv)
}

pub const STRLEN: Spec = Spec {
    name: "strlen",
    arity: 2,
    kind: Kind::Read(|r, argv| Ok(Reply::Integer(r.len_of(&argv[1])?.unwrap_or(0) as i64))),
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
fn append(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> Result<Reply, StoreError> {
    let old = w.get(&argv[1])?.unwrap_or_default();
    if old.len() + argv[2].len() > MAX_STRING {
        return Ok(Reply::error(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let mut v = Vec::with_capacity(old.len() + argv[2].len());
    v.extend_from_slice(&old);
    v.extend_from_slice(&argv[2]);
    w.set(&argv[1], &v)?;
    Ok(Reply::Integer(v.len() as i64))
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

fn incr_by(w: &mut WriteView, key: &[u8], by: i64) -> Result<Reply, StoreError> {
    let current = match w.get(key)? {
        None => 0,
        Some(v) => match parse_i64(&v) {
            Some(n) => n,
            None => return Ok(not_an_integer()),
        },
    };
    match current.checked_add(by) {
        Some(n) => {
            w.set(key, n.to_string().as_bytes())?;
            Ok(Reply::Integer(n))
        }
        None => Ok(Reply::error("ERR increment or decrement would overflow")),
    }
}
