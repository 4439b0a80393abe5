//! String commands: GET, SET (with expiry), SETEX, PSETEX, GETEX, SETNX, GETSET, GETDEL, MGET,
//! MSET, MSETNX, STRLEN, APPEND, INCR, DECR, INCRBY, DECRBY.

use bytes::Bytes;

use super::expire::{self, Expiry, TimeArg};
use super::{
    CmdResult, Kind, Spec, get_string, is, not_an_integer, parse_i64, string_value, syntax_error,
    wrong_arity,
};
use crate::kv::{ApplyCtx, KeyRead, KeyType, Meta, WriteView, wall_clock_ms};
use crate::resp::Reply;
use crate::store::StoreError;

/// Largest string a write may produce (Redis's 512 MB). A constant, not a per-node setting:
/// `apply` must decide the same on every node.
pub(super) const MAX_STRING: usize = 512 * 1024 * 1024;

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

/// SET's options, parsed the same way before proposing (with this node's clock) and when
/// applying (with the entry's clock; a prepared SET carries only absolute times by then).
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    expiry: Expiry,
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`, in any order, with
/// Redis's rules: NX and XX exclude each other, one expiry option at most; the time as Redis
/// checks it (`expire::set_expiry`).
fn parse_set_options(args: &[Bytes], now_ms: i64) -> Result<SetOptions, Reply> {
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut expiry: Option<(&Bytes, TimeArg)> = None;
    let mut keep = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let next = args.get(i + 1);
        if is(a, "nx") && !xx {
            nx = true;
        } else if is(a, "xx") && !nx {
            xx = true;
        } else if is(a, "get") {
            get = true;
        } else if is(a, "keepttl") && expiry.is_none() {
            keep = true;
        } else if let (Some(unit), Some(value), None, false) =
            (TimeArg::parse(a), next, expiry.as_ref(), keep)
        {
            expiry = Some((value, unit));
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    let expiry = match expiry {
        Some((value, unit)) => Expiry::At(expire::set_expiry(value, unit, now_ms, "set")?),
        None if keep => Expiry::Keep,
        None => Expiry::None,
    };
    Ok(SetOptions {
        nx,
        xx,
        get,
        expiry,
    })
}

/// Relative times become absolute here, on the node the client talks to (design.md
/// "Determinism"): the entry carries `PXAT ms` or `KEEPTTL`.
fn prepare_set(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    let o = parse_set_options(&argv[3..], wall_clock_ms())?;
    let mut out = argv[..3].to_vec();
    for (on, word) in [(o.nx, "NX"), (o.xx, "XX"), (o.get, "GET")] {
        if on {
            out.push(Bytes::from_static(word.as_bytes()));
        }
    }
    match o.expiry {
        Expiry::None => {}
        Expiry::Keep => out.push(Bytes::from_static(b"KEEPTTL")),
        Expiry::At(at) => {
            out.push(Bytes::from_static(b"PXAT"));
            out.push(Bytes::from(at.to_string()));
        }
    }
    Ok(out)
}

/// SET: +OK, or nil when NX/XX prevented it; with GET, the old value (WRONGTYPE, and nothing
/// set, if the key holds another type).
fn set(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let o = parse_set_options(&argv[3..], w.now_ms())?;
    let key = &argv[1];
    let read_old = o.get || o.nx || o.xx || matches!(o.expiry, Expiry::Keep | Expiry::At(_));
    let old = if read_old { w.meta(key)? } else { None };
    let exists = old.is_some();
    // Only keyspace notifications ('n') need to know whether a plain SET creates the key.
    let created = w.collecting_events() && if read_old { !exists } else { !w.exists(key)? };
    let old_expiry = old.as_ref().and_then(|m| m.expire_at);
    let old_value = if o.get { string_value(old)? } else { None };
    let blocked = (o.nx && exists) || (o.xx && !exists);
    if !blocked {
        let mut meta = Meta::string(argv[2].clone(), w.new_version(), w.index());
        meta.expire_at = match o.expiry {
            Expiry::None => None,
            Expiry::Keep => old_expiry,
            Expiry::At(at) => Some(at),
        };
        w.put_meta(key, &meta, old_expiry)?;
        if created {
            w.notify('n', "new", key);
        }
        w.notify('$', "set", key);
        if let Expiry::At(_) = o.expiry {
            w.notify('g', "expire", key);
        }
    }
    Ok(match (o.get, blocked) {
        (true, _) => old_value.into(),
        (false, true) => Reply::Nil,
        (false, false) => Reply::ok(),
    })
}

/// SETEX key seconds value, PSETEX key ms value: proposed as SET with PXAT (their errors are
/// their own).
fn prepare_setex(argv: Vec<Bytes>, unit: TimeArg, name: &str) -> Result<Vec<Bytes>, Reply> {
    let at = expire::set_expiry(&argv[2], unit, wall_clock_ms(), name)?;
    Ok(vec![
        Bytes::from_static(b"SET"),
        argv[1].clone(),
        argv[3].clone(),
        Bytes::from_static(b"PXAT"),
        Bytes::from(at.to_string()),
    ])
}

/// Applies SETEX/PSETEX as proposed (a raw one, from a transaction or an old log, reads its
/// relative time against the entry's clock).
fn apply_setex(w: &mut WriteView, argv: &[Bytes], unit: TimeArg, name: &str) -> CmdResult {
    let at = expire::set_expiry(&argv[2], unit, w.now_ms(), name)?;
    let old = w.meta(&argv[1])?;
    let old_expiry = old.as_ref().and_then(|m| m.expire_at);
    let mut meta = Meta::string(argv[3].clone(), w.new_version(), w.index());
    meta.expire_at = Some(at);
    w.put_meta(&argv[1], &meta, old_expiry)?;
    if old.is_none() {
        w.notify('n', "new", &argv[1]);
    }
    w.notify('$', "set", &argv[1]);
    w.notify('g', "expire", &argv[1]);
    Ok(Reply::ok())
}

pub const SETEX: Spec = Spec {
    name: "setex",
    arity: 4,
    kind: Kind::Write {
        prepare: |argv| prepare_setex(argv, TimeArg::Ex, "setex"),
        apply: |w, _, argv| apply_setex(w, argv, TimeArg::Ex, "setex"),
    },
    flags: &[],
    keys: (1, 1, 1),
};

pub const PSETEX: Spec = Spec {
    name: "psetex",
    arity: 4,
    kind: Kind::Write {
        prepare: |argv| prepare_setex(argv, TimeArg::Px, "psetex"),
        apply: |w, _, argv| apply_setex(w, argv, TimeArg::Px, "psetex"),
    },
    flags: &[],
    keys: (1, 1, 1),
};

/// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]: the value, and a new expiry (or none).
pub const GETEX: Spec = Spec {
    name: "getex",
    arity: -2,
    kind: Kind::Write {
        prepare: |argv| {
            let change = parse_getex(&argv[2..], wall_clock_ms())?;
            let mut out = argv[..2].to_vec();
            match change {
                None => {}
                Some(None) => out.push(Bytes::from_static(b"PERSIST")),
                Some(Some(at)) => {
                    out.push(Bytes::from_static(b"PXAT"));
                    out.push(Bytes::from(at.to_string()));
                }
            }
            Ok(out)
        },
        apply: getex,
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

/// GETEX's option: `None` no change, `Some(None)` PERSIST, `Some(Some(at))` a new expiry.
fn parse_getex(args: &[Bytes], now_ms: i64) -> Result<Option<Option<i64>>, Reply> {
    match args {
        [] => Ok(None),
        [a] if is(a, "persist") => Ok(Some(None)),
        [a, value] => match TimeArg::parse(a) {
            Some(unit) => Ok(Some(Some(expire::set_expiry(
                value, unit, now_ms, "getex",
            )?))),
            None => Err(syntax_error()),
        },
        _ => Err(syntax_error()),
    }
}

fn getex(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let change = parse_getex(&argv[2..], w.now_ms())?;
    let Some(mut meta) = string_meta(w, &argv[1])? else {
        return Ok(Reply::Nil);
    };
    let value = meta.body.clone();
    if let Some(expire_at) = change {
        let old = meta.expire_at;
        if expire_at.is_some_and(|at| at <= w.now_ms()) {
            // An expiry already passed deletes the key, as Redis does.
            w.delete(&argv[1])?;
            w.notify('g', "del", &argv[1]);
        } else {
            // Redis counts a change for any expiry set, and for a PERSIST that removed one.
            w.dirty(u64::from(expire_at.is_some() || old.is_some()));
            if old != expire_at {
                meta.expire_at = expire_at;
                meta.modified = w.index();
                w.put_meta(&argv[1], &meta, old)?;
            }
            match expire_at {
                Some(_) => w.notify('g', "expire", &argv[1]),
                None if old.is_some() => w.notify('g', "persist", &argv[1]),
                None => {}
            }
        }
    }
    Ok(Reply::Bulk(value))
}

/// Replaces a string's value in place (APPEND, INCR): its expiry stays, as in Redis.
pub(super) fn update_string(
    w: &mut WriteView,
    key: &[u8],
    old: Option<Meta>,
    value: Bytes,
) -> Result<(), StoreError> {
    match old {
        Some(mut m) => {
            m.body = value;
            m.modified = w.index();
            let expiry = m.expire_at;
            w.put_meta(key, &m, expiry)
        }
        None => {
            w.set_string(key, value, None)?;
            w.notify('n', "new", key);
            Ok(())
        }
    }
}

/// A string key's metadata for an in-place change: WRONGTYPE for other types.
pub(super) fn string_meta(w: &WriteView, key: &[u8]) -> Result<Option<Meta>, super::CmdError> {
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
            w.set_string(&argv[1], argv[2].clone(), None)?;
            w.notify('n', "new", &argv[1]);
            w.notify('$', "set", &argv[1]);
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
            w.set_string(&argv[1], argv[2].clone(), None)?;
            if old.is_none() {
                w.notify('n', "new", &argv[1]);
            }
            w.notify('$', "set", &argv[1]);
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
                w.notify('g', "del", &argv[1]);
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
            w.dirty(argv.len() as u64 / 2);
            for kv in argv[1..].chunks_exact(2) {
                let created = w.collecting_events() && !w.exists(&kv[0])?;
                w.set_string(&kv[0], kv[1].clone(), None)?;
                if created {
                    w.notify('n', "new", &kv[0]);
                }
                w.notify('$', "set", &kv[0]);
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
            w.dirty(argv.len() as u64 / 2);
            for kv in argv[1..].chunks_exact(2) {
                let created = w.collecting_events() && !w.exists(&kv[0])?;
                w.set_string(&kv[0], kv[1].clone(), None)?;
                if created {
                    w.notify('n', "new", &kv[0]);
                }
                w.notify('$', "set", &kv[0]);
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
    update_string(w, &argv[1], meta, v.into())?;
    w.notify('$', "append", &argv[1]);
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
            update_string(w, key, meta, Bytes::from(n.to_string()))?;
            w.notify('$', "incrby", key);
            Ok(Reply::Integer(n))
        }
        None => Ok(Reply::error("ERR increment or decrement would overflow")),
    }
}
