//! List commands: LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP, LLEN, LRANGE, LINDEX, LSET,
//! LINSERT, LREM, LTRIM, LPOS, LMOVE, RPOPLPUSH, LMPOP, and the applied form of the blocking
//! pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP: what one attempt does, see `crate::blocking`).
//!
//! A list is a row per element keyed by its position (`kv::list`): pushes and pops at either
//! end, LINDEX and LSET cost one B-tree operation, LRANGE one ordered scan. Each command checks
//! its arguments and the key's type in the order redis-server 7.0 does (t_list.c), so the
//! same mistakes give the same errors.

use bytes::Bytes;

use super::long_double::{LongDouble, Parsed};
use super::{
    CmdError, CmdResult, Kind, Spec, is, not_an_integer, parse_i64, syntax_error, wrong_arity,
    wrong_type,
};
use crate::kv::list::{End, List};
use crate::kv::{ApplyCtx, KeyRead, KeyType, WriteView};
use crate::resp::Reply;

macro_rules! write_spec {
    ($const:ident, $name:literal, $arity:expr, $apply:expr, $flags:expr, $keys:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Write {
                prepare: Ok,
                apply: $apply,
            },
            flags: $flags,
            keys: $keys,
        };
    };
}

macro_rules! read_spec {
    ($const:ident, $name:literal, $arity:expr, $read:expr, $flags:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Read($read),
            flags: $flags,
            keys: (1, 1, 1),
        };
    };
}

/// A live list (`None`: no such key; WRONGTYPE for another type).
fn open(r: &dyn KeyRead, key: &[u8]) -> Result<Option<List>, CmdError> {
    match r.meta(key)? {
        None => Ok(None),
        Some(m) if m.kind == KeyType::List => Ok(Some(List::from_meta(key, m)?)),
        Some(_) => Err(wrong_type().into()),
    }
}

/// The keyspace events of elements leaving `key` at `end`, as Redis's `listElementsRemoved`:
/// `lpop`/`rpop`, then `del` if the list went.
fn notify_removed(w: &mut WriteView, key: &[u8], end: End, deleted: bool) {
    w.notify('l', pop_event(end), key);
    if deleted {
        w.notify('g', "del", key);
    }
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

fn len_reply(n: u64) -> Reply {
    Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn list_full() -> Reply {
    Reply::error("ERR list has no room for more elements")
}

/// Redis's `getLongFromObjectOrReply` with its default message.
fn parse_long(b: &[u8]) -> Result<i64, Reply> {
    parse_i64(b).ok_or_else(not_an_integer)
}

/// Redis's `getPositiveLongFromObjectOrReply`: one message (`msg`, or Redis's default) for a
/// non-integer and a negative one alike.
fn parse_non_negative(b: &[u8], msg: Option<&'static str>) -> Result<i64, Reply> {
    match parse_i64(b) {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(Reply::error(
            msg.unwrap_or("ERR value is out of range, must be positive"),
        )),
    }
}

/// LEFT or RIGHT, as LMOVE and LMPOP take them.
fn parse_end(b: &[u8]) -> Result<End, Reply> {
    if is(b, "left") {
        Ok(End::Left)
    } else if is(b, "right") {
        Ok(End::Right)
    } else {
        Err(syntax_error())
    }
}

/// A blocking command's timeout in ms (0: wait forever), as Redis's
/// `getTimeoutFromObjectOrReply` reads seconds: a float (decimal or hex, as `strtold`), made
/// milliseconds by `ceill(t * 1000)`; an infinity or a value out of range comes out negative,
/// as on x86-64.
pub fn parse_timeout(b: &[u8]) -> Result<u64, Reply> {
    let ms = match LongDouble::parse(b) {
        None => return Err(Reply::error("ERR timeout is not a float or out of range")),
        Some(Parsed::Inf(_)) => i64::MIN,
        Some(Parsed::Finite(x)) => x.ceil_times_1000().unwrap_or(i64::MIN),
    };
    u64::try_from(ms).map_err(|_| Reply::error("ERR timeout is negative"))
}

// ---- pushes ----------------------------------------------------------------------------------

write_spec!(
    LPUSH,
    "lpush",
    -3,
    |w, _, argv| push(w, argv, End::Left, false),
    &["fast"],
    (1, 1, 1)
);
write_spec!(
    RPUSH,
    "rpush",
    -3,
    |w, _, argv| push(w, argv, End::Right, false),
    &["fast"],
    (1, 1, 1)
);
write_spec!(
    LPUSHX,
    "lpushx",
    -3,
    |w, _, argv| push(w, argv, End::Left, true),
    &["fast"],
    (1, 1, 1)
);
write_spec!(
    RPUSHX,
    "rpushx",
    -3,
    |w, _, argv| push(w, argv, End::Right, true),
    &["fast"],
    (1, 1, 1)
);

/// LPUSH/RPUSH/LPUSHX/RPUSHX key element...: the new length (0 for X on a missing key).
fn push(w: &mut WriteView, argv: &[Bytes], end: End, only_existing: bool) -> CmdResult {
    let mut list = match open(w, &argv[1])? {
        Some(l) => l,
        None if only_existing => return Ok(Reply::Integer(0)),
        None => List::create(w, &argv[1]),
    };
    if !list.has_room(end, (argv.len() - 2) as u64) {
        return Ok(list_full());
    }
    for v in &argv[2..] {
        list.push(w, end, v.clone())?;
    }
    w.dirty((argv.len() - 2) as u64);
    let n = list.len();
    list.save(w)?;
    w.notify('l', push_event(end), &argv[1]);
    Ok(len_reply(n))
}

// ---- pops --------------------------------------------------------------------------------------

write_spec!(
    LPOP,
    "lpop",
    -2,
    |w, _, argv| pop(w, argv, End::Left, "lpop"),
    &["fast"],
    (1, 1, 1)
);
write_spec!(
    RPOP,
    "rpop",
    -2,
    |w, _, argv| pop(w, argv, End::Right, "rpop"),
    &["fast"],
    (1, 1, 1)
);

/// LPOP/RPOP key [count]: one element as a bulk string, or with a count an array.
fn pop(w: &mut WriteView, argv: &[Bytes], end: End, name: &str) -> CmdResult {
    if argv.len() > 3 {
        return Ok(wrong_arity(name));
    }
    let count = match argv.get(2) {
        Some(c) => Some(parse_non_negative(c, None)?),
        None => None,
    };
    let Some(mut list) = open(w, &argv[1])? else {
        return Ok(if count.is_some() {
            Reply::NilArray
        } else {
            Reply::Nil
        });
    };
    let popped = match count {
        None => list.pop(w, end)?.into_iter().collect(),
        Some(n) => list.pop_many(w, end, n as u64)?,
    };
    w.dirty(popped.len() as u64);
    let deleted = list.save(w)?;
    if !popped.is_empty() {
        notify_removed(w, &argv[1], end, deleted);
    }
    Ok(match count {
        None => popped.into_iter().next().map_or(Reply::Nil, Reply::Bulk),
        Some(_) => Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
    })
}

write_spec!(LMPOP, "lmpop", -4, lmpop, &[], (0, 0, 0));

/// LMPOP's (and BLMPOP's) arguments after the command name (and timeout): numkeys key...
/// LEFT|RIGHT [COUNT n], checked as Redis does; returns (keys, end, count).
fn parse_mpop(args: &[Bytes]) -> Result<(&[Bytes], End, u64), Reply> {
    let numkeys_error = || Reply::error("ERR numkeys should be greater than 0");
    let numkeys = match args.first().and_then(|n| parse_i64(n)) {
        Some(n) if n >= 1 => n.unsigned_abs(),
        _ => return Err(numkeys_error()),
    };
    let where_at = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(1))
        .filter(|&i| i < args.len())
        .ok_or_else(syntax_error)?;
    let end = parse_end(&args[where_at])?;
    let mut count = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && is(&args[j], "count") && j + 1 < args.len() {
            j += 1;
            match parse_i64(&args[j]) {
                Some(n) if n >= 1 => count = Some(n.unsigned_abs()),
                _ => return Err(Reply::error("ERR count should be greater than 0")),
            }
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    Ok((&args[1..where_at], end, count.unwrap_or(1)))
}

/// LMPOP numkeys key... LEFT|RIGHT [COUNT n].
fn lmpop(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let (keys, end, count) = parse_mpop(&argv[1..])?;
    mpop(w, keys, end, count)
}

/// Pops up to `count` elements from the first non-empty list of `keys`: `[key, [elements]]`,
/// or the null array if every list is empty. WRONGTYPE stops at the first other key met.
fn mpop(w: &mut WriteView, keys: &[Bytes], end: End, count: u64) -> CmdResult {
    for key in keys {
        let Some(mut list) = open(w, key)? else {
            continue;
        };
        let items = list.pop_many(w, end, count)?;
        w.dirty(items.len() as u64);
        let deleted = list.save(w)?;
        notify_removed(w, key, end, deleted);
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::Array(items.into_iter().map(Reply::Bulk).collect()),
        ]));
    }
    Ok(Reply::NilArray)
}

// ---- reads -------------------------------------------------------------------------------------

read_spec!(
    LLEN,
    "llen",
    2,
    |r, argv| Ok(len_reply(open(r, &argv[1])?.map_or(0, |l| l.len()))),
    &["fast"]
);

/// Redis's index range for a list of `len`: `(first, count)` of the elements from `start` to
/// `stop` inclusive (negative counts from the end), `None` when empty.
fn index_range(start: i64, stop: i64, len: u64) -> Option<(u64, u64)> {
    let len = i128::from(len);
    let fix = |i: i64| {
        let i = i128::from(i);
        if i < 0 { len + i } else { i }
    };
    let (start, stop) = (fix(start).max(0), fix(stop));
    if start > stop || start >= len {
        return None;
    }
    let stop = stop.min(len - 1);
    Some((start as u64, (stop - start + 1) as u64))
}

read_spec!(LRANGE, "lrange", 4, lrange, &[]);

/// LRANGE key start stop: one ordered scan of the positions asked for.
fn lrange(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let start = parse_long(&argv[2])?;
    let stop = parse_long(&argv[3])?;
    let Some(list) = open(r, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let Some((first, count)) = index_range(start, stop, list.len()) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let lo = list.bounds().0.wrapping_add_unsigned(first);
    let hi = lo.wrapping_add_unsigned(count);
    let mut out = Vec::with_capacity(usize::try_from(count.min(1 << 16)).unwrap_or(0));
    list.scan(r, lo, hi, &mut |_, v| {
        out.push(Reply::Bulk(Bytes::copy_from_slice(v)));
        true
    })?;
    Ok(Reply::Array(out))
}

read_spec!(LINDEX, "lindex", 3, lindex, &[]);

/// LINDEX key index: the type is checked before the index, as Redis does.
fn lindex(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let Some(list) = open(r, &argv[1])? else {
        return Ok(Reply::Nil);
    };
    let index = parse_long(&argv[2])?;
    Ok(list.get(r, index)?.map_or(Reply::Nil, Reply::Bulk))
}

read_spec!(LPOS, "lpos", -3, lpos, &[]);

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len].
fn lpos(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let element = &argv[2];
    let (mut rank, mut count, mut maxlen) = (1i64, None::<i64>, 0i64);
    let mut j = 3;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        if is(&argv[j], "rank") && more {
            j += 1;
            rank = parse_long(&argv[j])?;
            if rank == 0 {
                return Err(Reply::error(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                     second ... or use negative to start from the end of the list",
                )
                .into());
            }
        } else if is(&argv[j], "count") && more {
            j += 1;
            count = Some(parse_non_negative(
                &argv[j],
                Some("ERR COUNT can't be negative"),
            )?);
        } else if is(&argv[j], "maxlen") && more {
            j += 1;
            maxlen = parse_non_negative(&argv[j], Some("ERR MAXLEN can't be negative"))?;
        } else {
            return Err(syntax_error().into());
        }
        j += 1;
    }
    // A negative rank searches from the tail (Redis negates it as a C long: i64::MIN stays).
    let from = if rank < 0 { End::Right } else { End::Left };
    let rank = rank.wrapping_abs();
    let Some(list) = open(r, &argv[1])? else {
        return Ok(if count.is_some() {
            Reply::Array(Vec::new())
        } else {
            Reply::Nil
        });
    };
    let head = list.bounds().0;
    let (mut index, mut matches) = (0i64, 0i64);
    let mut found = Vec::new();
    let mut first = None;
    list.walk(r, from, &mut |pos, v| {
        if maxlen != 0 && index >= maxlen {
            return false;
        }
        index += 1;
        if v != &element[..] {
            return true;
        }
        matches += 1;
        if matches < rank {
            return true;
        }
        let at = pos.wrapping_sub(head);
        match count {
            Some(c) => {
                found.push(Reply::Integer(at));
                c == 0 || matches.wrapping_sub(rank).wrapping_add(1) < c
            }
            None => {
                first = Some(at);
                false
            }
        }
    })?;
    Ok(match count {
        Some(_) => Reply::Array(found),
        None => first.map_or(Reply::Nil, Reply::Integer),
    })
}

// ---- changes in the middle ---------------------------------------------------------------------

write_spec!(LSET, "lset", 4, lset, &[], (1, 1, 1));

/// LSET key index element.
fn lset(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let Some(mut list) = open(w, &argv[1])? else {
        return Ok(Reply::error("ERR no such key"));
    };
    let index = parse_long(&argv[2])?;
    if !list.set(w, index, argv[3].clone()) {
        return Ok(Reply::error("ERR index out of range"));
    }
    list.save(w)?;
    w.notify('l', "lset", &argv[1]);
    Ok(Reply::ok())
}

write_spec!(LINSERT, "linsert", 5, linsert, &[], (1, 1, 1));

/// LINSERT key BEFORE|AFTER pivot element: the new length, -1 without the pivot, 0 without
/// the key. Finds the pivot by one scan from the head, then moves the shorter side.
fn linsert(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let after = if is(&argv[2], "after") {
        true
    } else if is(&argv[2], "before") {
        false
    } else {
        return Err(syntax_error().into());
    };
    let Some(mut list) = open(w, &argv[1])? else {
        return Ok(Reply::Integer(0));
    };
    let pivot = &argv[3];
    let mut at = None;
    list.walk(w, End::Left, &mut |pos, v| {
        if v == &pivot[..] {
            at = Some(pos);
            return false;
        }
        true
    })?;
    let Some(at) = at else {
        return Ok(Reply::Integer(-1));
    };
    let before = if after { at.wrapping_add(1) } else { at };
    if !list.insert(w, before, argv[4].clone())? {
        return Ok(list_full());
    }
    let n = list.len();
    list.save(w)?;
    w.notify('l', "linsert", &argv[1]);
    Ok(len_reply(n))
}

write_spec!(LREM, "lrem", 4, lrem, &[], (1, 1, 1));

/// LREM key count element: removes `count` matches from the head (negative: from the tail;
/// 0: all). One walk finds them, then the gaps close from the cheaper side.
fn lrem(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let count = parse_long(&argv[2])?;
    let Some(mut list) = open(w, &argv[1])? else {
        return Ok(Reply::Integer(0));
    };
    let from = if count < 0 { End::Right } else { End::Left };
    let limit = count.unsigned_abs();
    let element = &argv[3];
    let mut hits = Vec::new();
    list.walk(w, from, &mut |pos, v| {
        if v == &element[..] {
            hits.push(pos);
        }
        limit == 0 || (hits.len() as u64) < limit
    })?;
    list.remove_positions(w, &mut hits)?;
    w.dirty(hits.len() as u64);
    let deleted = list.save(w)?;
    if !hits.is_empty() {
        w.notify('l', "lrem", &argv[1]);
    }
    if deleted {
        w.notify('g', "del", &argv[1]);
    }
    Ok(len_reply(hits.len() as u64))
}

write_spec!(LTRIM, "ltrim", 4, ltrim, &[], (1, 1, 1));

/// LTRIM key start stop.
fn ltrim(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let start = parse_long(&argv[2])?;
    let stop = parse_long(&argv[3])?;
    let Some(mut list) = open(w, &argv[1])? else {
        return Ok(Reply::ok());
    };
    let len = list.len();
    let (left, right) = match index_range(start, stop, len) {
        None => (len, 0),
        Some((first, count)) => (first, len - first - count),
    };
    list.cut(w, left, right)?;
    w.dirty(left + right);
    let deleted = list.save(w)?;
    w.notify('l', "ltrim", &argv[1]);
    if deleted {
        w.notify('g', "del", &argv[1]);
    }
    Ok(Reply::ok())
}

// ---- moves -------------------------------------------------------------------------------------

write_spec!(LMOVE, "lmove", 5, lmove, &[], (1, 2, 1));

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT.
fn lmove(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let from = parse_end(&argv[3])?;
    let to = parse_end(&argv[4])?;
    move_one(w, &argv[1], &argv[2], from, to)
}

write_spec!(
    RPOPLPUSH,
    "rpoplpush",
    3,
    |w, _, argv| move_one(w, &argv[1], &argv[2], End::Right, End::Left),
    &[],
    (1, 2, 1)
);

/// Pops from `src` at `from` and pushes onto `dst` at `to` (the same list when the keys are
/// equal: a rotation): the element moved, or nil if `src` is absent. The destination's type is
/// checked only when there is something to move, as Redis does.
fn move_one(w: &mut WriteView, src: &Bytes, dst: &Bytes, from: End, to: End) -> CmdResult {
    let Some(mut source) = open(w, src)? else {
        return Ok(Reply::Nil);
    };
    if src == dst {
        if !source.has_room(to, 1) {
            return Ok(list_full());
        }
        let Some(v) = source.pop(w, from)? else {
            return Ok(Reply::Nil);
        };
        source.push(w, to, v.clone())?;
        source.save(w)?;
        w.notify('l', push_event(to), dst);
        w.notify('l', pop_event(from), src);
        return Ok(Reply::Bulk(v));
    }
    let mut target = match open(w, dst)? {
        Some(l) => l,
        None => List::create(w, dst),
    };
    if !target.has_room(to, 1) {
        return Ok(list_full());
    }
    let Some(v) = source.pop(w, from)? else {
        return Ok(Reply::Nil);
    };
    let deleted = source.save(w)?;
    target.push(w, to, v.clone())?;
    target.save(w)?;
    // Redis's order: the push, then the pop (and `del` if the source went).
    w.notify('l', push_event(to), dst);
    notify_removed(w, src, from, deleted);
    Ok(Reply::Bulk(v))
}

// ---- blocking pops, as one attempt ---------------------------------------------------------------

/// BLPOP/BRPOP key... timeout applied once: `[key, element]` from the first non-empty list,
/// else the null array (the connection then waits, see `crate::blocking`; inside MULTI that
/// is the reply, as Redis's).
fn bpop(w: &mut WriteView, argv: &[Bytes], end: End) -> CmdResult {
    let keys = &argv[1..argv.len() - 1];
    parse_timeout(&argv[argv.len() - 1])?;
    for key in keys {
        let Some(mut list) = open(w, key)? else {
            continue;
        };
        let Some(v) = list.pop(w, end)? else {
            continue;
        };
        let deleted = list.save(w)?;
        notify_removed(w, key, end, deleted);
        return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(v)]));
    }
    Ok(Reply::NilArray)
}

/// Checks a blocking command's arguments as Redis does before it would block (on the node the
/// client talks to, so a bad timeout is answered without a round through raft).
fn prepare_blocking(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    let name = argv[0].to_ascii_lowercase();
    match &name[..] {
        b"blpop" | b"brpop" | b"brpoplpush" => {
            parse_timeout(&argv[argv.len() - 1])?;
        }
        b"blmove" => {
            parse_end(&argv[3])?;
            parse_end(&argv[4])?;
            parse_timeout(&argv[5])?;
        }
        b"blmpop" => {
            parse_mpop(&argv[2..])?;
            parse_timeout(&argv[1])?;
        }
        _ => {}
    }
    Ok(argv)
}

macro_rules! blocking_spec {
    ($const:ident, $name:literal, $arity:expr, $apply:expr, $keys:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Write {
                prepare: prepare_blocking,
                apply: $apply,
            },
            flags: &["blocking"],
            keys: $keys,
        };
    };
}

blocking_spec!(
    BLPOP,
    "blpop",
    -3,
    |w, _, argv| bpop(w, argv, End::Left),
    (1, -2, 1)
);
blocking_spec!(
    BRPOP,
    "brpop",
    -3,
    |w, _, argv| bpop(w, argv, End::Right),
    (1, -2, 1)
);
blocking_spec!(
    BLMOVE,
    "blmove",
    6,
    |w, _, argv| {
        let from = parse_end(&argv[3])?;
        let to = parse_end(&argv[4])?;
        parse_timeout(&argv[5])?;
        move_one(w, &argv[1], &argv[2], from, to)
    },
    (1, 2, 1)
);
blocking_spec!(
    BRPOPLPUSH,
    "brpoplpush",
    4,
    |w, _, argv| {
        parse_timeout(&argv[3])?;
        move_one(w, &argv[1], &argv[2], End::Right, End::Left)
    },
    (1, 2, 1)
);
blocking_spec!(
    BLMPOP,
    "blmpop",
    -5,
    |w, _, argv| {
        let (keys, end, count) = parse_mpop(&argv[2..])?;
        parse_timeout(&argv[1])?;
        mpop(w, keys, end, count)
    },
    (0, 0, 0)
);

/// The keys a blocking command waits on (the lists it would pop from), for `crate::blocking`.
pub fn blocking_keys(argv: &[Bytes]) -> Vec<Bytes> {
    if let Some(keys) = super::zset::blocking_keys(argv) {
        return keys;
    }
    let name = argv
        .first()
        .map(|n| n.to_ascii_lowercase())
        .unwrap_or_default();
    match &name[..] {
        b"blpop" | b"brpop" if argv.len() >= 3 => argv[1..argv.len() - 1].to_vec(),
        b"blmove" | b"brpoplpush" if argv.len() >= 3 => vec![argv[1].clone()],
        b"blmpop" => parse_mpop(argv.get(2..).unwrap_or_default())
            .map(|(keys, _, _)| keys.to_vec())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The timeout argument of a blocking command, in ms (0: forever); `None` if it is not one.
pub fn blocking_timeout(argv: &[Bytes]) -> Option<u64> {
    let name = argv.first()?.to_ascii_lowercase();
    let arg = match &name[..] {
        b"blmpop" | b"bzmpop" => argv.get(1)?,
        _ => argv.last()?,
    };
    parse_timeout(arg).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ranges_follow_redis() {
        assert_eq!(index_range(0, -1, 5), Some((0, 5)));
        assert_eq!(index_range(-100, 100, 5), Some((0, 5)));
        assert_eq!(index_range(2, 1, 5), None);
        assert_eq!(index_range(5, 10, 5), None);
        assert_eq!(index_range(-2, -1, 5), Some((3, 2)));
        assert_eq!(index_range(0, -6, 5), None);
        assert_eq!(index_range(i64::MIN, i64::MAX, 3), Some((0, 3)));
        assert_eq!(index_range(0, 0, 0), None);
    }

    #[test]
    fn timeouts_parse_as_redis() {
        assert_eq!(parse_timeout(b"0"), Ok(0));
        assert_eq!(parse_timeout(b"0.1"), Ok(100));
        assert_eq!(parse_timeout(b"1.5"), Ok(1500));
        assert_eq!(parse_timeout(b"-0.0001"), Ok(0));
        let negative = Err(Reply::error("ERR timeout is negative"));
        assert_eq!(parse_timeout(b"-1"), negative);
        assert_eq!(parse_timeout(b"inf"), negative);
        assert_eq!(parse_timeout(b"1e300"), negative);
        let not_float = Err(Reply::error("ERR timeout is not a float or out of range"));
        for bad in [&b"abc"[..], b"", b" 1", b"1 ", b"nan", b"1e99999"] {
            assert_eq!(parse_timeout(bad), not_float, "{bad:?}");
        }
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn mpop_arguments_are_checked_in_redis_order() {
        let numkeys = Err(Reply::error("ERR numkeys should be greater than 0"));
        assert_eq!(parse_mpop(&args(&["0", "k", "left"])).map(|_| ()), numkeys);
        assert_eq!(parse_mpop(&args(&["x", "k", "left"])).map(|_| ()), numkeys);
        assert_eq!(
            parse_mpop(&args(&["3", "k", "left"])).map(|_| ()),
            Err(syntax_error())
        );
        assert_eq!(
            parse_mpop(&args(&["9223372036854775807", "k"])).map(|_| ()),
            Err(syntax_error())
        );
        assert_eq!(
            parse_mpop(&args(&["1", "k", "up"])).map(|_| ()),
            Err(syntax_error())
        );
        let count = Err(Reply::error("ERR count should be greater than 0"));
        assert_eq!(
            parse_mpop(&args(&["1", "k", "left", "count", "0"])).map(|_| ()),
            count
        );
        assert_eq!(
            parse_mpop(&args(&["1", "k", "left", "count", "1", "count", "2"])).map(|_| ()),
            Err(syntax_error())
        );
        let a = args(&["2", "a", "b", "RIGHT", "COUNT", "7"]);
        let (keys, end, n) = parse_mpop(&a).unwrap();
        assert_eq!((keys.len(), end, n), (2, End::Right, 7));
        assert_eq!(
            blocking_keys(&args(&["blmpop", "0", "2", "a", "b", "left"])),
            args(&["a", "b"])
        );
        assert_eq!(
            blocking_keys(&args(&["BLPOP", "a", "b", "0"])),
            args(&["a", "b"])
        );
        assert_eq!(
            blocking_timeout(&args(&["blmpop", "1.5", "1", "a", "left"])),
            Some(1500)
        );
    }
}
