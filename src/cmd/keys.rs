//! Generic key commands: DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN, RANDOMKEY, TOUCH, RENAME,
//! RENAMENX, COPY, MOVE, OBJECT.

use bytes::Bytes;

use super::{CmdResult, Kind, Spec, glob, is, not_an_integer, parse_i64, syntax_error};
use crate::kv::encoding::DATABASES;
use crate::kv::{ApplyCtx, KeyRead, KeyType, Meta, WriteView};
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
            w.notify('g', "del", key);
            n += 1;
        }
    }
    w.dirty(n as u64);
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

pub const SCAN: Spec = Spec {
    name: "scan",
    arity: -2,
    kind: Kind::Read(scan),
    flags: &[],
    keys: (0, 0, 0),
};

/// SCAN's cursor as Redis parses it (`strtoul`: a leading '-' wraps around).
fn parse_cursor(b: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(b).ok()?;
    if text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    match text.strip_prefix('-') {
        Some(digits) if !digits.starts_with('-') => {
            digits.parse::<u64>().ok().map(u64::wrapping_neg)
        }
        _ => text.strip_prefix('+').unwrap_or(text).parse().ok(),
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`: the cursor is a position in
/// `kv::encoding::scan_hash` order, the same on every node and across memtable flushes.
fn scan(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&argv[1]).ok_or_else(|| Reply::error("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut kind) = (None, 10usize, None);
    let mut i = 2;
    while i < argv.len() {
        let value = argv.get(i + 1).ok_or_else(syntax_error)?;
        if is(&argv[i], "match") {
            pattern = Some(value);
        } else if is(&argv[i], "count") {
            let n = parse_i64(value).ok_or_else(not_an_integer)?;
            if n < 1 {
                return Err(syntax_error().into());
            }
            count = usize::try_from(n).unwrap_or(usize::MAX).min(1 << 20);
        } else if is(&argv[i], "type") {
            kind = Some(value);
        } else {
            return Err(syntax_error().into());
        }
        i += 2;
    }
    let (next, keys) = r.scan_step(cursor, count)?;
    let keys = keys
        .into_iter()
        .filter(|(k, m)| {
            pattern.is_none_or(|p| glob::matches(p, k, false))
                && kind.is_none_or(|t| t.eq_ignore_ascii_case(m.kind.name().as_bytes()))
        })
        .map(|(k, _)| Reply::Bulk(k))
        .collect();
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(keys),
    ]))
}

pub const RANDOMKEY: Spec = Spec {
    name: "randomkey",
    arity: 1,
    kind: Kind::Read(randomkey),
    flags: &[],
    keys: (0, 0, 0),
};

/// A key at a random SCAN position: this node's randomness on a connection's view, the
/// entry's inside apply (a script that writes what it picked must pick alike on every node).
fn randomkey(r: &dyn KeyRead, _: &[Bytes]) -> CmdResult {
    for attempt in 0..8u64 {
        let from = match r.entry_index() {
            Some(index) => {
                crate::fnv::Fnv1a::hash(&[index.to_be_bytes(), attempt.to_be_bytes()].concat())
            }
            None => crate::raft::identity::random_u64(),
        };
        for cursor in [from, 0] {
            if let Some((k, _)) = r.scan_step(cursor, 1)?.1.into_iter().next() {
                return Ok(Reply::Bulk(k));
            }
        }
    }
    Ok(Reply::Nil)
}

pub const TOUCH: Spec = Spec {
    name: "touch",
    arity: -2,
    kind: Kind::Read(exists),
    flags: &["fast"],
    keys: (1, -1, 1),
};

pub const RENAME: Spec = Spec {
    name: "rename",
    arity: 3,
    kind: Kind::Write {
        prepare: Ok,
        apply: |w, _, argv| {
            rename(w, &argv[1], &argv[2], false)?;
            Ok(Reply::ok())
        },
    },
    flags: &[],
    keys: (1, 2, 1),
};

pub const RENAMENX: Spec = Spec {
    name: "renamenx",
    arity: 3,
    kind: Kind::Write {
        prepare: Ok,
        apply: |w, _, argv| Ok(Reply::Integer(rename(w, &argv[1], &argv[2], true)? as i64)),
    },
    flags: &["fast"],
    keys: (1, 2, 1),
};

/// Moves `src` (its expiry and members with it) to `dst`; false if NX and `dst` exists.
fn rename(w: &mut WriteView, src: &[u8], dst: &[u8], nx: bool) -> Result<bool, super::CmdError> {
    if !w.exists(src)? {
        return Err(Reply::error("ERR no such key").into());
    }
    if src == dst {
        return Ok(!nx);
    }
    if nx && w.exists(dst)? {
        return Ok(false);
    }
    w.copy_key(src, w.db(), dst)?;
    w.delete(src)?;
    w.notify('g', "rename_from", src);
    w.notify('g', "rename_to", dst);
    Ok(true)
}

pub const COPY: Spec = Spec {
    name: "copy",
    arity: -3,
    kind: Kind::Write {
        prepare: |argv| {
            parse_copy(&argv[3..], 0)?;
            Ok(argv)
        },
        apply: copy,
    },
    flags: &[],
    keys: (1, 2, 1),
};

/// COPY's options: (destination database, REPLACE).
fn parse_copy(args: &[Bytes], current: u8) -> Result<(u8, bool), Reply> {
    let (mut db, mut replace) = (current, false);
    let mut i = 0;
    while i < args.len() {
        if is(&args[i], "replace") {
            replace = true;
        } else if is(&args[i], "db") && i + 1 < args.len() {
            db = parse_db(&args[i + 1])?;
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    Ok((db, replace))
}

fn parse_db(b: &[u8]) -> Result<u8, Reply> {
    // Redis reads a database index as a C int.
    let n = parse_i64(b).ok_or_else(not_an_integer)?;
    if i32::try_from(n).is_err() {
        return Err(Reply::error(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    u8::try_from(n)
        .ok()
        .filter(|&d| d < DATABASES)
        .ok_or_else(|| Reply::error("ERR DB index is out of range"))
}

fn same_object() -> Reply {
    Reply::error("ERR source and destination objects are the same")
}

/// `COPY src dst [DB n] [REPLACE]`: 1 if copied, 0 if `src` is absent or `dst` exists. As
/// Redis 7.0, `copy_to` is raised for `dst` in the destination database.
fn copy(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let (logical, replace) = parse_copy(&argv[3..], w.logical_db())?;
    let (src, dst) = (&argv[1], &argv[2]);
    if logical == w.logical_db() && src == dst {
        return Err(same_object().into());
    }
    let db = w.physical_db(logical);
    if !w.exists(src)? || (!replace && w.meta_in(db, dst)?.is_some()) {
        return Ok(Reply::Integer(0));
    }
    let copied = w.copy_key(src, db, dst)?;
    if copied {
        w.notify_in(db, 'g', "copy_to", dst);
    }
    Ok(Reply::Integer(copied as i64))
}

pub const MOVE: Spec = Spec {
    name: "move",
    arity: 3,
    kind: Kind::Write {
        prepare: |argv| {
            parse_db(&argv[2])?;
            Ok(argv)
        },
        apply: |w, _, argv| {
            let logical = parse_db(&argv[2])?;
            if logical == w.logical_db() {
                return Err(same_object().into());
            }
            let db = w.physical_db(logical);
            let key = &argv[1];
            if !w.exists(key)? || w.meta_in(db, key)?.is_some() {
                return Ok(Reply::Integer(0));
            }
            w.copy_key(key, db, key)?;
            w.delete(key)?;
            // As Redis 7.0: `move_from` in the source database, `move_to` in the target.
            w.notify('g', "move_from", key);
            w.notify_in(db, 'g', "move_to", key);
            Ok(Reply::Integer(1))
        },
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

/// `SWAPDB index1 index2`: O(1), through the database map (`WriteView::swap_dbs`).
pub const SWAPDB: Spec = Spec {
    name: "swapdb",
    arity: 3,
    kind: Kind::Write {
        prepare: |argv| {
            swapdb_args(&argv)?;
            Ok(argv)
        },
        apply: |w, _, argv| {
            let (a, b) = swapdb_args(argv)?;
            w.swap_dbs(a, b);
            w.dirty(1);
            Ok(Reply::ok())
        },
    },
    flags: &["fast"],
    keys: (0, 0, 0),
};

/// SWAPDB's two databases, with Redis's errors: each index must be a C int, then both must
/// name a database.
fn swapdb_args(argv: &[Bytes]) -> Result<(u8, u8), Reply> {
    let index = |b: &[u8], which: &str| {
        parse_i64(b)
            .filter(|n| i32::try_from(*n).is_ok())
            .ok_or_else(|| Reply::error(format!("ERR invalid {which} DB index")))
    };
    let (a, b) = (index(&argv[1], "first")?, index(&argv[2], "second")?);
    let db = |n: i64| u8::try_from(n).ok().filter(|&d| d < DATABASES);
    match (db(a), db(b)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(Reply::error("ERR DB index is out of range")),
    }
}

pub const OBJECT: Spec = Spec {
    name: "object",
    arity: -2,
    kind: Kind::Read(object),
    flags: &[],
    keys: (2, 2, 1),
};

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// OBJECT ENCODING answers with the encoding redis-server would use for the value (kvd stores
/// every type as rows; tools and tests branch on these names). IDLETIME and FREQ are this
/// node's (`crate::access`), each refused under the other kind of policy, as in Redis;
/// REFCOUNT as Redis's shared integers.
fn object(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let sub = &argv[1];
    if is(sub, "help") && argv.len() == 2 {
        return Ok(Reply::Array(
            OBJECT_HELP.iter().map(|l| Reply::status(*l)).collect(),
        ));
    }
    let known = ["encoding", "freq", "idletime", "refcount"];
    if argv.len() != 3 || !known.iter().any(|k| is(sub, k)) {
        return Ok(Reply::error(format!(
            "ERR unknown subcommand '{}'. Try OBJECT HELP.",
            super::lossy(sub, 128)
        )));
    }
    let Some(meta) = r.meta(&argv[2])? else {
        return Ok(Reply::Nil);
    };
    let lfu = crate::evict::policy().lfu();
    Ok(if is(sub, "encoding") {
        Reply::bulk(encoding_name(&meta))
    } else if is(sub, "freq") && !lfu {
        Reply::error(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please \
             note that when switching between policies at runtime LRU and LFU data will take \
             some time to adjust.",
        )
    } else if is(sub, "freq") {
        Reply::Integer(crate::access::frequency(r.db(), &argv[2]).into())
    } else if is(sub, "idletime") && lfu {
        Reply::error(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that \
             when switching between policies at runtime LRU and LFU data will take some time to \
             adjust.",
        )
    } else if is(sub, "idletime") {
        Reply::Integer(crate::access::idle_secs(r.db(), &argv[2]) as i64)
    } else {
        let shared = meta.kind == KeyType::String
            && parse_i64(&meta.body).is_some_and(|n| (0..10_000).contains(&n));
        Reply::Integer(if shared { i32::MAX as i64 } else { 1 })
    })
}

fn encoding_name(meta: &Meta) -> &'static str {
    match meta.kind {
        KeyType::String if meta.body.len() <= 20 && parse_i64(&meta.body).is_some() => "int",
        KeyType::String if meta.body.len() <= 44 => "embstr",
        KeyType::String => "raw",
        KeyType::Hash if crate::kv::collection::is_listpack_hash(meta) => "listpack",
        KeyType::Hash => "hashtable",
        KeyType::List => "quicklist",
        KeyType::Set => "hashtable",
        KeyType::ZSet if crate::kv::zset::is_skiplist(meta) => "skiplist",
        KeyType::ZSet => "listpack",
        KeyType::Stream => "stream",
    }
}
