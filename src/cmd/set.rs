//! Set commands: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SPOP, SRANDMEMBER, SMOVE,
//! SINTER, SINTERCARD, SINTERSTORE, SUNION, SUNIONSTORE, SDIFF, SDIFFSTORE, SSCAN.
//!
//! A set is a collection on member rows (`kv::collection`) with empty values; its size is in
//! the key's metadata. Members come back in member-byte order. SPOP picks its members with a
//! PRNG seeded from the entry (its index and the key), so every node removes the same ones.

use bytes::Bytes;

use super::hash::{open, open_or_create, parse_count, random_members, scan_step};
use super::{CmdError, CmdResult, Kind, Spec, is, parse_i64, syntax_error};
use crate::kv::collection::{Collection, Rng};
use crate::kv::{ApplyCtx, KeyRead, KeyType, WriteView};
use crate::resp::Reply;

fn members_reply(members: impl IntoIterator<Item = Bytes>) -> Reply {
    Reply::Array(members.into_iter().map(Reply::Bulk).collect())
}

fn len_reply(n: u64) -> Reply {
    Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

macro_rules! write_spec {
    ($const:ident, $name:literal, $arity:expr, $apply:expr, $keys:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Write {
                prepare: Ok,
                apply: $apply,
            },
            flags: &[],
            keys: $keys,
        };
    };
}

macro_rules! read_spec {
    ($const:ident, $name:literal, $arity:expr, $read:expr, $keys:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Read($read),
            flags: &[],
            keys: $keys,
        };
    };
}

write_spec!(SADD, "sadd", -3, sadd, (1, 1, 1));

fn sadd(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let mut s = open_or_create(w, &argv[1], KeyType::Set)?;
    let mut added = 0;
    for m in &argv[2..] {
        added += i64::from(s.put(w, m, Bytes::new())?);
    }
    w.dirty(added as u64);
    let created = !s.existed();
    // Members already there change nothing: the key is not touched (WATCH does not see it).
    if added > 0 {
        s.save(w)?;
        if created {
            w.notify('n', "new", &argv[1]);
        }
        w.notify('s', "sadd", &argv[1]);
    }
    Ok(Reply::Integer(added))
}

write_spec!(SREM, "srem", -3, srem, (1, 1, 1));

fn srem(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let Some(mut s) = open(w, &argv[1], KeyType::Set)? else {
        return Ok(Reply::Integer(0));
    };
    let mut removed = 0;
    for m in &argv[2..] {
        removed += i64::from(s.remove(w, m)?);
    }
    w.dirty(removed as u64);
    let emptied = s.save(w)?;
    if removed > 0 {
        w.notify('s', "srem", &argv[1]);
        if emptied {
            w.notify('g', "del", &argv[1]);
        }
    }
    Ok(Reply::Integer(removed))
}

/// A set's members in order (empty for a missing key).
fn members_of(r: &dyn KeyRead, s: &Option<Collection>) -> Result<Vec<Bytes>, CmdError> {
    let Some(s) = s else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    s.scan(r, b"", &mut |m, _| {
        out.push(Bytes::copy_from_slice(m));
        true
    })?;
    Ok(out)
}

read_spec!(
    SMEMBERS,
    "smembers",
    2,
    |r, argv| {
        let s = open(r, &argv[1], KeyType::Set)?;
        Ok(members_reply(members_of(r, &s)?))
    },
    (1, 1, 1)
);

fn is_member(r: &dyn KeyRead, s: &Option<Collection>, m: &[u8]) -> Result<bool, CmdError> {
    Ok(match s {
        Some(s) => s.contains(r, m)?,
        None => false,
    })
}

read_spec!(
    SISMEMBER,
    "sismember",
    3,
    |r, argv| {
        let s = open(r, &argv[1], KeyType::Set)?;
        Ok(Reply::Integer(i64::from(is_member(r, &s, &argv[2])?)))
    },
    (1, 1, 1)
);

read_spec!(
    SMISMEMBER,
    "smismember",
    -3,
    |r, argv| {
        let s = open(r, &argv[1], KeyType::Set)?;
        let mut out = Vec::with_capacity(argv.len() - 2);
        for m in &argv[2..] {
            out.push(Reply::Integer(i64::from(is_member(r, &s, m)?)));
        }
        Ok(Reply::Array(out))
    },
    (1, 1, 1)
);

read_spec!(
    SCARD,
    "scard",
    2,
    |r, argv| Ok(len_reply(
        open(r, &argv[1], KeyType::Set)?.map_or(0, |s| s.len())
    )),
    (1, 1, 1)
);

write_spec!(SPOP, "spop", -2, spop, (1, 1, 1));

/// SPOP key [count]: members chosen by the entry's seeded PRNG, so every node pops the same.
fn spop(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let count = match argv.len() {
        2 => None,
        3 => match parse_i64(&argv[2]) {
            Some(n) if n >= 0 => Some(n.unsigned_abs()),
            _ => return Ok(Reply::error("ERR value is out of range, must be positive")),
        },
        _ => return Ok(syntax_error()),
    };
    let Some(mut s) = open(w, &argv[1], KeyType::Set)? else {
        return Ok(match count {
            None => Reply::Nil,
            Some(_) => Reply::Array(Vec::new()),
        });
    };
    let n = s.len();
    let k = count.unwrap_or(1).min(n);
    let picked = if k == n {
        s.all(w)?
    } else {
        let positions = Rng::for_write(w, s.key()).distinct(k, n);
        s.at_positions(w, &positions)?
    };
    for (m, _) in &picked {
        s.remove(w, m)?;
    }
    w.dirty(picked.len() as u64);
    let emptied = s.save(w)?;
    if !picked.is_empty() {
        w.notify('s', "spop", &argv[1]);
        if emptied {
            w.notify('g', "del", &argv[1]);
        }
    }
    let mut members = picked.into_iter().map(|(m, _)| m);
    Ok(match count {
        None => members.next().map_or(Reply::Nil, Reply::Bulk),
        Some(_) => members_reply(members),
    })
}

read_spec!(SRANDMEMBER, "srandmember", -2, srandmember, (1, 1, 1));

/// SRANDMEMBER key [count]: local randomness on a connection, the entry's inside apply.
fn srandmember(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let count = match argv.len() {
        2 => None,
        3 => Some(parse_count(&argv[2])?),
        _ => return Ok(syntax_error()),
    };
    let s = open(r, &argv[1], KeyType::Set)?;
    let Some(count) = count else {
        return Ok(match s {
            Some(s) => random_members(r, &s, 1)?
                .into_iter()
                .next()
                .map_or(Reply::Nil, |(m, _)| Reply::Bulk(m)),
            None => Reply::Nil,
        });
    };
    let Some(s) = s else {
        return Ok(Reply::Array(Vec::new()));
    };
    Ok(members_reply(
        random_members(r, &s, count)?.into_iter().map(|(m, _)| m),
    ))
}

write_spec!(SMOVE, "smove", 4, smove, (1, 2, 1));

/// SMOVE source destination member, with Redis's order of checks.
fn smove(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let (src, dst, member) = (&argv[1], &argv[2], &argv[3]);
    let src_meta = w.meta(src)?;
    let dst_meta = w.meta(dst)?;
    let Some(src_meta) = src_meta else {
        return Ok(Reply::Integer(0));
    };
    if src_meta.kind != KeyType::Set || dst_meta.as_ref().is_some_and(|m| m.kind != KeyType::Set) {
        return Err(super::wrong_type().into());
    }
    let mut from = Collection::from_meta(src, src_meta)?;
    if src == dst {
        return Ok(Reply::Integer(i64::from(from.contains(w, member)?)));
    }
    if !from.remove(w, member)? {
        return Ok(Reply::Integer(0));
    }
    let emptied = from.save(w)?;
    w.notify('s', "srem", src);
    if emptied {
        w.notify('g', "del", src);
    }
    // The destination changes only if the member is new there (WATCH does not see it else).
    let mut to = open_or_create(w, dst, KeyType::Set)?;
    if !to.contains(w, member)? {
        to.put(w, member, Bytes::new())?;
        w.notify('s', "sadd", dst);
        to.save(w)?;
    }
    Ok(Reply::Integer(1))
}

/// The sets named by `keys`, WRONGTYPE if any key holds another type (checked for all keys
/// before anything else, as Redis does); a missing key is an empty set (`None`).
fn open_all(r: &dyn KeyRead, keys: &[Bytes]) -> Result<Vec<Option<Collection>>, CmdError> {
    keys.iter().map(|k| open(r, k, KeyType::Set)).collect()
}

/// The intersection, in member order, stopping at `limit` members (0: no limit).
fn intersection(
    r: &dyn KeyRead,
    sets: &[Option<Collection>],
    limit: u64,
) -> Result<Vec<Bytes>, CmdError> {
    let mut live = Vec::with_capacity(sets.len());
    for s in sets {
        match s {
            Some(s) => live.push(s),
            None => return Ok(Vec::new()),
        }
    }
    // Walk the smallest set, look each member up in the others.
    live.sort_by_key(|s| s.len());
    let Some((smallest, others)) = live.split_first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut failed = None;
    smallest.scan(r, b"", &mut |m, _| {
        for o in others {
            match o.contains(r, m) {
                Ok(true) => {}
                Ok(false) => return true,
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            }
        }
        out.push(Bytes::copy_from_slice(m));
        limit == 0 || (out.len() as u64) < limit
    })?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(out),
    }
}

/// The union, in member order.
fn union(r: &dyn KeyRead, sets: &[Option<Collection>]) -> Result<Vec<Bytes>, CmdError> {
    let mut all = std::collections::BTreeSet::new();
    for s in sets {
        all.extend(members_of(r, s)?);
    }
    Ok(all.into_iter().collect())
}

/// The members of the first set in none of the others, in member order.
fn difference(r: &dyn KeyRead, sets: &[Option<Collection>]) -> Result<Vec<Bytes>, CmdError> {
    let Some((first, others)) = sets.split_first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    'members: for m in members_of(r, first)? {
        for o in others.iter().flatten() {
            if o.contains(r, &m)? {
                continue 'members;
            }
        }
        out.push(m);
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Op {
    Inter,
    Union,
    Diff,
}

fn combine(r: &dyn KeyRead, keys: &[Bytes], op: Op) -> Result<Vec<Bytes>, CmdError> {
    let sets = open_all(r, keys)?;
    match op {
        Op::Inter => intersection(r, &sets, 0),
        Op::Union => union(r, &sets),
        Op::Diff => difference(r, &sets),
    }
}

/// Replaces `dst` with a new set of `members` (deleting it if there are none); the count.
fn store(w: &mut WriteView, dst: &[u8], members: Vec<Bytes>, event: &'static str) -> CmdResult {
    let existed = w.delete(dst)?;
    let mut s = Collection::create(w, dst, KeyType::Set);
    for m in &members {
        s.put(w, m, Bytes::new())?;
    }
    s.save(w)?;
    if !members.is_empty() {
        w.notify('s', event, dst);
    } else if existed {
        w.notify('g', "del", dst);
    }
    Ok(Reply::Integer(members.len() as i64))
}

read_spec!(
    SINTER,
    "sinter",
    -2,
    |r, argv| Ok(members_reply(combine(r, &argv[1..], Op::Inter)?)),
    (1, -1, 1)
);
read_spec!(
    SUNION,
    "sunion",
    -2,
    |r, argv| Ok(members_reply(combine(r, &argv[1..], Op::Union)?)),
    (1, -1, 1)
);
read_spec!(
    SDIFF,
    "sdiff",
    -2,
    |r, argv| Ok(members_reply(combine(r, &argv[1..], Op::Diff)?)),
    (1, -1, 1)
);

write_spec!(
    SINTERSTORE,
    "sinterstore",
    -3,
    |w, _, argv| {
        let members = combine(w, &argv[2..], Op::Inter)?;
        store(w, &argv[1], members, "sinterstore")
    },
    (1, -1, 1)
);
write_spec!(
    SUNIONSTORE,
    "sunionstore",
    -3,
    |w, _, argv| {
        let members = combine(w, &argv[2..], Op::Union)?;
        store(w, &argv[1], members, "sunionstore")
    },
    (1, -1, 1)
);
write_spec!(
    SDIFFSTORE,
    "sdiffstore",
    -3,
    |w, _, argv| {
        let members = combine(w, &argv[2..], Op::Diff)?;
        store(w, &argv[1], members, "sdiffstore")
    },
    (1, -1, 1)
);

read_spec!(SINTERCARD, "sintercard", -3, sintercard, (0, 0, 0));

/// SINTERCARD numkeys key [key ...] [LIMIT limit].
fn sintercard(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let numkeys = match parse_i64(&argv[1]) {
        Some(n) if n >= 1 => n.unsigned_abs(),
        _ => return Ok(Reply::error("ERR numkeys should be greater than 0")),
    };
    let rest = &argv[2..];
    if numkeys > rest.len() as u64 {
        return Ok(Reply::error(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let (keys, options) = rest.split_at(numkeys as usize);
    let mut limit = 0;
    let mut i = 0;
    while i < options.len() {
        match options.get(i + 1) {
            Some(value) if is(&options[i], "limit") => {
                limit = match parse_i64(value) {
                    Some(n) if n >= 0 => n.unsigned_abs(),
                    _ => return Ok(Reply::error("ERR LIMIT can't be negative")),
                };
                i += 2;
            }
            _ => return Ok(syntax_error()),
        }
    }
    let sets = open_all(r, keys)?;
    Ok(Reply::Integer(intersection(r, &sets, limit)?.len() as i64))
}

read_spec!(
    SSCAN,
    "sscan",
    -3,
    |r, argv| scan_step(r, argv, KeyType::Set, false),
    (1, 1, 1)
);
