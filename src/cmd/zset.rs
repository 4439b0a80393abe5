//! Sorted set commands: ZADD, ZINCRBY, ZREM, ZCARD, ZSCORE, ZMSCORE, ZRANK, ZREVRANK, ZRANGE,
//! ZRANGESTORE, ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX, ZCOUNT,
//! ZLEXCOUNT, ZPOPMIN, ZPOPMAX, ZMPOP, BZPOPMIN, BZPOPMAX, BZMPOP (their applied form; the
//! waiting is `crate::blocking`'s), ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX,
//! ZUNION, ZUNIONSTORE, ZINTER, ZINTERSTORE, ZINTERCARD, ZDIFF, ZDIFFSTORE, ZRANDMEMBER, ZSCAN.
//!
//! A sorted set keeps two orders of rows (`kv::zset`): member → score, and (score, member).
//! Score ranges walk the second, lexicographic ranges the first (Redis defines them only for
//! members of equal score, where both orders agree), ranks walk the second from the nearer end.
//! Checks and replies follow redis-server 7.0's t_zset.c; scores are doubles (RESP3 `,1.5`,
//! RESP2 the `%.17g` text), pairs with scores are nested in RESP3 (`Reply::Pairs`).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::hash::{MAX_REPEATED_PICKS, parse_count, parse_cursor, parse_scan_options};
use super::list::parse_timeout;
use super::{
    CmdError, CmdResult, Kind, Spec, glob, is, not_an_integer, parse_i64, syntax_error, wrong_type,
};
use crate::kv::collection::{Collection, Rng, cursors};
use crate::kv::zset::{ScoreBound, ZSet};
use crate::kv::{ApplyCtx, KeyRead, KeyType, WriteView};
use crate::resp::Reply;

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

// ---- parsing ----

fn not_a_float() -> Reply {
    Reply::error("ERR value is not a valid float")
}

fn bad_range() -> Reply {
    Reply::error("ERR min or max is not a float")
}

fn bad_lex_range() -> Reply {
    Reply::error("ERR min or max not valid string range item")
}

fn nan_score() -> Reply {
    Reply::error("ERR resulting score is not a number (NaN)")
}

/// C's `strtod` on the longest prefix of `s` it accepts: (value, bytes used). Decimal and
/// hexadecimal numbers, `inf`/`infinity`, `nan`; leading white space skipped. Overflow gives
/// ±inf, underflow 0 (the callers decide whether those are errors).
pub(crate) fn strtod(s: &[u8]) -> (f64, usize) {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let start = i;
    let mut j = i;
    let negative = s.get(j) == Some(&b'-');
    if matches!(s.get(j), Some(b'+' | b'-')) {
        j += 1;
    }
    let rest = &s[j..];
    let lower = |n: usize| rest.get(..n).map(|p| p.to_ascii_lowercase());
    let sign = if negative { -1.0 } else { 1.0 };
    if lower(8).as_deref() == Some(b"infinity") {
        return (sign * f64::INFINITY, j + 8);
    }
    if lower(3).as_deref() == Some(b"inf") {
        return (sign * f64::INFINITY, j + 3);
    }
    if lower(3).as_deref() == Some(b"nan") {
        return (f64::NAN, j + 3);
    }
    if lower(2).as_deref() == Some(b"0x") {
        let (v, used) = hex_float(&rest[2..]);
        if used > 0 {
            return (sign * v, j + 2 + used);
        }
        // "0x" with nothing after: the "0" alone.
        return (0.0, j + 1);
    }
    // Decimal: digits [. digits] [e [sign] digits].
    let mut k = j;
    let digits = |k: &mut usize| {
        let from = *k;
        while *k < s.len() && s[*k].is_ascii_digit() {
            *k += 1;
        }
        *k - from
    };
    let mut mantissa = digits(&mut k);
    if s.get(k) == Some(&b'.') {
        let mut after = k + 1;
        let frac = digits(&mut after);
        if mantissa + frac > 0 {
            mantissa += frac;
            k = after;
        }
    }
    if mantissa == 0 {
        return (0.0, 0);
    }
    if matches!(s.get(k), Some(b'e' | b'E')) {
        let mut e = k + 1;
        if matches!(s.get(e), Some(b'+' | b'-')) {
            e += 1;
        }
        if digits(&mut e) > 0 {
            k = e;
        }
    }
    let text = std::str::from_utf8(&s[start..k]).unwrap_or("0");
    (text.parse::<f64>().unwrap_or(0.0), k)
}

/// The hexadecimal digits (and fraction, and `p` exponent) of a C hex float, after "0x".
fn hex_float(s: &[u8]) -> (f64, usize) {
    let mut v = 0f64;
    let mut i = 0;
    let mut any = false;
    while let Some(d) = s.get(i).and_then(|c| (*c as char).to_digit(16)) {
        v = v * 16.0 + f64::from(d);
        i += 1;
        any = true;
    }
    if s.get(i) == Some(&b'.') {
        let mut scale = 1.0 / 16.0;
        let mut k = i + 1;
        while let Some(d) = s.get(k).and_then(|c| (*c as char).to_digit(16)) {
            v += f64::from(d) * scale;
            scale /= 16.0;
            k += 1;
            any = true;
        }
        if any {
            i = k;
        }
    }
    if !any {
        return (0.0, 0);
    }
    if matches!(s.get(i), Some(b'p' | b'P')) {
        let mut k = i + 1;
        let neg = s.get(k) == Some(&b'-');
        if matches!(s.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        let from = k;
        let mut e: i32 = 0;
        while let Some(d) = s.get(k).filter(|c| c.is_ascii_digit()) {
            e = e.saturating_mul(10).saturating_add(i32::from(d - b'0'));
            k += 1;
        }
        if k > from {
            v *= 2f64.powi(if neg { -e } else { e });
            i = k;
        }
    }
    (v, i)
}

/// A score argument as Redis's `getDoubleFromObject` takes it: the whole text is a number,
/// no leading space, not NaN, no overflow to ±inf nor underflow to 0.
pub fn parse_score(b: &[u8]) -> Option<f64> {
    if b.is_empty() || b[0].is_ascii_whitespace() {
        return None;
    }
    let (v, used) = strtod(b);
    if used != b.len() || v.is_nan() {
        return None;
    }
    let lower = b.to_ascii_lowercase();
    if v.is_infinite() && !lower.windows(3).any(|w| w == b"inf") {
        return None;
    }
    if v == 0.0 {
        // Underflow: a mantissa with a non-zero digit that came out as zero.
        let mantissa = lower
            .split(|&c| c == b'e' || c == b'p')
            .next()
            .unwrap_or(&[]);
        let hex = mantissa.windows(2).any(|w| w == b"0x");
        let body = if hex { &mantissa[2..] } else { mantissa };
        if body
            .iter()
            .any(|c| c.is_ascii_alphanumeric() && *c != b'0' && *c != b'x')
        {
            return None;
        }
    }
    Some(v)
}

/// One end of a ZRANGEBYSCORE range: `[(]number`, parsed as Redis's `zslParseRange` does
/// (C `strtod`, so leading space and an empty number are accepted; NaN is not).
fn parse_score_bound(b: &[u8]) -> Option<ScoreBound> {
    let (exclusive, text) = match b.first() {
        Some(b'(') => (true, &b[1..]),
        _ => (false, b),
    };
    let (score, used) = strtod(text);
    if used != text.len() && !(used == 0 && text.is_empty()) {
        return None;
    }
    if score.is_nan() {
        return None;
    }
    Some(ScoreBound { score, exclusive })
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<(ScoreBound, ScoreBound), Reply> {
    match (parse_score_bound(min), parse_score_bound(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(bad_range()),
    }
}

/// One end of a lexicographic range: `-`, `+`, `[member` or `(member`.
#[derive(Clone, Debug, PartialEq)]
enum Lex {
    NegInf,
    PosInf,
    Incl(Bytes),
    Excl(Bytes),
}

fn parse_lex(b: &Bytes) -> Option<Lex> {
    match b.first() {
        Some(b'-') if b.len() == 1 => Some(Lex::NegInf),
        Some(b'+') if b.len() == 1 => Some(Lex::PosInf),
        Some(b'[') => Some(Lex::Incl(b.slice(1..))),
        Some(b'(') => Some(Lex::Excl(b.slice(1..))),
        _ => None,
    }
}

fn parse_lex_range(min: &Bytes, max: &Bytes) -> Result<(Lex, Lex), Reply> {
    match (parse_lex(min), parse_lex(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(bad_lex_range()),
    }
}

/// Whether `m` is at or above `min`.
fn lex_gte_min(m: &[u8], min: &Lex) -> bool {
    match min {
        Lex::NegInf => true,
        Lex::PosInf => false,
        Lex::Incl(x) => m >= &x[..],
        Lex::Excl(x) => m > &x[..],
    }
}

/// Whether `m` is at or below `max`.
fn lex_lte_max(m: &[u8], max: &Lex) -> bool {
    match max {
        Lex::NegInf => false,
        Lex::PosInf => true,
        Lex::Incl(x) => m <= &x[..],
        Lex::Excl(x) => m < &x[..],
    }
}

fn parse_long(b: &[u8]) -> Result<i64, Reply> {
    parse_i64(b).ok_or_else(not_an_integer)
}

// ---- opening ----

/// A live sorted set (`None`: no such key; WRONGTYPE for another type).
pub(crate) fn open(r: &dyn KeyRead, key: &[u8]) -> Result<Option<ZSet>, CmdError> {
    match r.meta(key)? {
        None => Ok(None),
        Some(m) if m.kind == KeyType::ZSet => Ok(Some(ZSet::from_meta(key, m)?)),
        Some(_) => Err(wrong_type().into()),
    }
}

/// Saves `z`, raising `event` if it changed and "del" if it went empty.
fn save(w: &mut WriteView, z: ZSet, changed: bool, event: &'static str) -> Result<(), CmdError> {
    let key = z.key().clone();
    let deleted = z.save(w)?;
    if changed {
        w.notify('z', event, &key);
    }
    if deleted {
        w.notify('g', "del", &key);
    }
    Ok(())
}

fn len_reply(n: u64) -> Reply {
    Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(b))
}

/// Members (with scores if asked) as Redis replies them.
fn members_reply(items: Vec<(Bytes, f64)>, withscores: bool) -> Reply {
    if withscores {
        Reply::Pairs(
            items
                .into_iter()
                .map(|(m, s)| (Reply::Bulk(m), Reply::Double(s)))
                .collect(),
        )
    } else {
        Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect())
    }
}

// ---- ZADD, ZINCRBY ----

write_spec!(ZADD, "zadd", -4, zadd, (1, 1, 1));

#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// What one zsetAdd did.
enum Added {
    Nop,
    New(f64),
    Updated(f64),
    Same(f64),
}

/// Redis's zsetAdd: the member's fate under the flags, NaN as an error.
fn zset_add(
    w: &mut WriteView,
    z: &mut ZSet,
    f: &AddFlags,
    score: f64,
    member: &[u8],
) -> Result<Added, CmdError> {
    // Redis stores -0 as 0.
    let mut score = if score == 0.0 { 0.0 } else { score };
    match z.score(w, member)? {
        Some(cur) => {
            if f.nx {
                return Ok(Added::Nop);
            }
            if f.incr {
                score += cur;
                if score.is_nan() {
                    return Err(nan_score().into());
                }
                if score == 0.0 {
                    score = 0.0;
                }
            }
            if (f.lt && score >= cur) || (f.gt && score <= cur) {
                return Ok(Added::Nop);
            }
            if score != cur {
                z.rescore(w, member, Some(cur), score);
                Ok(Added::Updated(score))
            } else {
                Ok(Added::Same(score))
            }
        }
        None => {
            if f.xx {
                return Ok(Added::Nop);
            }
            z.rescore(w, member, None, score);
            Ok(Added::New(score))
        }
    }
}

fn zadd(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let mut f = AddFlags::default();
    let mut i = 2;
    while i < argv.len() {
        let a = &argv[i];
        if is(a, "nx") {
            f.nx = true;
        } else if is(a, "xx") {
            f.xx = true;
        } else if is(a, "ch") {
            f.ch = true;
        } else if is(a, "incr") {
            f.incr = true;
        } else if is(a, "gt") {
            f.gt = true;
        } else if is(a, "lt") {
            f.lt = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &argv[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Ok(syntax_error());
    }
    if f.nx && f.xx {
        return Ok(Reply::error(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if ((f.gt || f.lt) && f.nx) || (f.gt && f.lt) {
        return Ok(Reply::error(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && rest.len() > 2 {
        return Ok(Reply::error(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks_exact(2) {
        pairs.push((parse_score(&p[0]).ok_or_else(not_a_float)?, &p[1]));
    }
    add_pairs(w, &argv[1], &f, &pairs)
}

/// GEOADD's ZADD: `pairs` added under NX/XX/CH as ZADD does it (reply, events).
pub(crate) fn add_scored(
    w: &mut WriteView,
    key: &[u8],
    (nx, xx, ch): (bool, bool, bool),
    pairs: &[(f64, &Bytes)],
) -> CmdResult {
    let f = AddFlags {
        nx,
        xx,
        ch,
        ..AddFlags::default()
    };
    add_pairs(w, key, &f, pairs)
}

fn add_pairs(w: &mut WriteView, key: &[u8], f: &AddFlags, pairs: &[(f64, &Bytes)]) -> CmdResult {
    let existing = open(w, key)?;
    let nothing = || {
        if f.incr {
            Reply::Nil
        } else {
            Reply::Integer(0)
        }
    };
    let mut z = match existing {
        Some(z) => z,
        None if f.xx => return Ok(nothing()),
        None => {
            let mut z = ZSet::create(w, key);
            if pairs
                .first()
                .is_some_and(|(_, m)| m.len() > crate::kv::zset::LISTPACK_VALUE)
            {
                z.set_skiplist();
            }
            z
        }
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    let mut failed = None;
    for (score, member) in pairs {
        match zset_add(w, &mut z, f, *score, member) {
            Ok(Added::Nop) => {}
            Ok(Added::New(s)) => (added, processed, last) = (added + 1, processed + 1, s),
            Ok(Added::Updated(s)) => (updated, processed, last) = (updated + 1, processed + 1, s),
            Ok(Added::Same(s)) => (processed, last) = (processed + 1, s),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let event = if f.incr { "zincr" } else { "zadd" };
    w.dirty((added + updated) as u64);
    save(w, z, added + updated > 0, event)?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(if f.incr {
        if processed > 0 {
            Reply::Double(last)
        } else {
            Reply::Nil
        }
    } else if f.ch {
        Reply::Integer(added + updated)
    } else {
        Reply::Integer(added)
    })
}

write_spec!(ZINCRBY, "zincrby", 4, zincrby, (1, 1, 1));

fn zincrby(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let by = parse_score(&argv[2]).ok_or_else(not_a_float)?;
    let f = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    add_pairs(w, &argv[1], &f, &[(by, &argv[3])])
}

// ---- ZREM, ZCARD, ZSCORE, ZMSCORE, ZRANK ----

write_spec!(ZREM, "zrem", -3, zrem, (1, 1, 1));

fn zrem(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let Some(mut z) = open(w, &argv[1])? else {
        return Ok(Reply::Integer(0));
    };
    let mut removed = 0;
    for m in &argv[2..] {
        removed += i64::from(z.remove(w, m)?.is_some());
        if z.is_empty() {
            break;
        }
    }
    w.dirty(removed as u64);
    save(w, z, removed > 0, "zrem")?;
    Ok(Reply::Integer(removed))
}

read_spec!(
    ZCARD,
    "zcard",
    2,
    |r, argv| Ok(len_reply(open(r, &argv[1])?.map_or(0, |z| z.len()))),
    (1, 1, 1)
);

read_spec!(
    ZSCORE,
    "zscore",
    3,
    |r, argv| {
        Ok(match open(r, &argv[1])? {
            Some(z) => z.score(r, &argv[2])?.map_or(Reply::Nil, Reply::Double),
            None => Reply::Nil,
        })
    },
    (1, 1, 1)
);

read_spec!(
    ZMSCORE,
    "zmscore",
    -3,
    |r, argv| {
        let z = open(r, &argv[1])?;
        let mut out = Vec::with_capacity(argv.len() - 2);
        for m in &argv[2..] {
            out.push(match &z {
                Some(z) => z.score(r, m)?.map_or(Reply::Nil, Reply::Double),
                None => Reply::Nil,
            });
        }
        Ok(Reply::Array(out))
    },
    (1, 1, 1)
);

fn zrank(r: &dyn KeyRead, argv: &[Bytes], rev: bool) -> CmdResult {
    let Some(z) = open(r, &argv[1])? else {
        return Ok(Reply::Nil);
    };
    Ok(match z.rank(r, &argv[2])? {
        Some(rank) if rev => len_reply(z.len().saturating_sub(rank + 1)),
        Some(rank) => len_reply(rank),
        None => Reply::Nil,
    })
}

read_spec!(
    ZRANK,
    "zrank",
    3,
    |r, argv| zrank(r, argv, false),
    (1, 1, 1)
);
read_spec!(
    ZREVRANK,
    "zrevrank",
    3,
    |r, argv| zrank(r, argv, true),
    (1, 1, 1)
);

// ---- ranges ----

/// What a range selects.
#[derive(Clone, Debug)]
enum Range {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(Lex, Lex),
}

/// A parsed ZRANGE-family request.
struct RangeReq {
    range: Range,
    rev: bool,
    /// LIMIT offset count (count < 0: no limit).
    offset: i64,
    count: i64,
    withscores: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum By {
    Auto,
    Rank,
    Score,
    Lex,
}

/// Parses `min max [options]` (`args`) as zrangeGenericCommand does; `by`/`rev` fixed by the legacy
/// commands, `store`: ZRANGESTORE (no WITHSCORES).
fn parse_range(args: &[Bytes], by: By, rev: Option<bool>, store: bool) -> Result<RangeReq, Reply> {
    let (mut by, mut dir) = (by, rev);
    let (mut withscores, mut offset, mut count, mut limited) = (false, 0i64, -1i64, false);
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if !store && is(a, "withscores") {
            withscores = true;
        } else if is(a, "limit") && left >= 2 {
            offset = parse_long(&args[j + 1])?;
            count = parse_long(&args[j + 2])?;
            limited = true;
            j += 2;
        } else if dir.is_none() && is(a, "rev") {
            dir = Some(true);
        } else if by == By::Auto && is(a, "bylex") {
            by = By::Lex;
        } else if by == By::Auto && is(a, "byscore") {
            by = By::Score;
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    let rev = dir.unwrap_or(false);
    if by == By::Auto {
        by = By::Rank;
    }
    if limited && by == By::Rank {
        return Err(Reply::error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && by == By::Lex {
        return Err(Reply::error(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (a, b) = if rev && by != By::Rank {
        (&args[1], &args[0])
    } else {
        (&args[0], &args[1])
    };
    let range = match by {
        By::Score => {
            let (min, max) = parse_score_range(a, b)?;
            Range::Score(min, max)
        }
        By::Lex => {
            let (min, max) = parse_lex_range(a, b)?;
            Range::Lex(min, max)
        }
        _ => Range::Rank(parse_long(a)?, parse_long(b)?),
    };
    Ok(RangeReq {
        range,
        rev,
        offset: if limited { offset } else { 0 },
        count,
        withscores,
    })
}

/// Clamps a rank range to a set of `len` members as Redis does; `None`: empty.
fn clamp_ranks(start: i64, end: i64, len: u64) -> Option<(u64, u64)> {
    let llen = i64::try_from(len).unwrap_or(i64::MAX);
    let mut start = if start < 0 { llen + start } else { start };
    let mut end = if end < 0 { llen + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen {
        return None;
    }
    if end >= llen {
        end = llen - 1;
    }
    Some((start as u64, end as u64))
}

/// The members a range selects, in the order it asks for.
fn select(r: &dyn KeyRead, z: &ZSet, q: &RangeReq) -> Result<Vec<(Bytes, f64)>, CmdError> {
    if let Range::Rank(start, end) = q.range {
        return Ok(match clamp_ranks(start, end, z.len()) {
            Some((s, e)) => z.by_rank(r, s, e, q.rev)?,
            None => Vec::new(),
        });
    }
    let mut out = Vec::new();
    if q.offset < 0 || (q.offset > 0 && q.offset as u64 >= z.len()) || q.count == 0 {
        return Ok(out);
    }
    let mut skip = q.offset as u64;
    visit(r, z, &q.range, q.rev, &mut |m, s| {
        if skip > 0 {
            skip -= 1;
            return true;
        }
        out.push((Bytes::copy_from_slice(m), s));
        q.count < 0 || (out.len() as i64) < q.count
    })?;
    Ok(out)
}

/// How many members a score or lexicographic range holds: one walk, nothing kept.
fn count_range(r: &dyn KeyRead, z: &ZSet, range: &Range) -> Result<i64, CmdError> {
    let mut n = 0i64;
    visit(r, z, range, false, &mut |_, _| {
        n += 1;
        true
    })?;
    Ok(n)
}

/// Visits the members of a score or lexicographic range in order (descending if `rev`);
/// `f` returns false to stop. One seek and one ordered scan.
fn visit(
    r: &dyn KeyRead,
    z: &ZSet,
    range: &Range,
    rev: bool,
    f: &mut dyn FnMut(&[u8], f64) -> bool,
) -> Result<(), CmdError> {
    match range {
        Range::Score(min, max) => {
            let start = if rev { max.score } else { min.score };
            z.scan_scores(r, Some(start), rev, &mut |s, m| {
                let (inside, past) = if rev {
                    (max.above(s), !min.below(s))
                } else {
                    (min.below(s), !max.above(s))
                };
                if past {
                    return false;
                }
                !inside || f(m, s)
            })?;
        }
        Range::Lex(min, max) => {
            if matches!(min, Lex::PosInf) || matches!(max, Lex::NegInf) {
                return Ok(());
            }
            let from = if rev {
                match max {
                    Lex::Incl(x) | Lex::Excl(x) => Some(&x[..]),
                    _ => None,
                }
            } else {
                match min {
                    Lex::Incl(x) | Lex::Excl(x) => Some(&x[..]),
                    _ => Some(&b""[..]),
                }
            };
            z.scan_members(r, from, rev, &mut |m, s| {
                let (inside, past) = if rev {
                    (lex_lte_max(m, max), !lex_gte_min(m, min))
                } else {
                    (lex_gte_min(m, min), !lex_lte_max(m, max))
                };
                if past {
                    return false;
                }
                !inside || f(m, s)
            })?;
        }
        Range::Rank(..) => {}
    }
    Ok(())
}

fn zrange_read(r: &dyn KeyRead, argv: &[Bytes], by: By, rev: Option<bool>) -> CmdResult {
    let q = parse_range(&argv[2..], by, rev, false)?;
    let Some(z) = open(r, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    Ok(members_reply(select(r, &z, &q)?, q.withscores))
}

read_spec!(
    ZRANGE,
    "zrange",
    -4,
    |r, argv| zrange_read(r, argv, By::Auto, None),
    (1, 1, 1)
);
read_spec!(
    ZREVRANGE,
    "zrevrange",
    -4,
    |r, argv| zrange_read(r, argv, By::Rank, Some(true)),
    (1, 1, 1)
);
read_spec!(
    ZRANGEBYSCORE,
    "zrangebyscore",
    -4,
    |r, argv| zrange_read(r, argv, By::Score, Some(false)),
    (1, 1, 1)
);
read_spec!(
    ZREVRANGEBYSCORE,
    "zrevrangebyscore",
    -4,
    |r, argv| zrange_read(r, argv, By::Score, Some(true)),
    (1, 1, 1)
);
read_spec!(
    ZRANGEBYLEX,
    "zrangebylex",
    -4,
    |r, argv| zrange_read(r, argv, By::Lex, Some(false)),
    (1, 1, 1)
);
read_spec!(
    ZREVRANGEBYLEX,
    "zrevrangebylex",
    -4,
    |r, argv| zrange_read(r, argv, By::Lex, Some(true)),
    (1, 1, 1)
);

write_spec!(ZRANGESTORE, "zrangestore", -5, zrangestore, (1, 2, 1));

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count].
fn zrangestore(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let q = parse_range(&argv[3..], By::Auto, None, true)?;
    let items = match open(w, &argv[2])? {
        Some(z) => select(w, &z, &q)?,
        None => Vec::new(),
    };
    store(w, &argv[1], items, "zrangestore")
}

/// Replaces `dst` with a new sorted set of `items` (deleting it if there are none); the count.
pub(crate) fn store(
    w: &mut WriteView,
    dst: &[u8],
    items: Vec<(Bytes, f64)>,
    event: &'static str,
) -> CmdResult {
    let existed = w.delete(dst)?;
    let n = items.len();
    if n == 0 {
        if existed {
            w.notify('g', "del", dst);
        }
        return Ok(Reply::Integer(0));
    }
    let mut z = ZSet::create(w, dst);
    let big = n as u64 > crate::kv::zset::LISTPACK_ENTRIES
        || items
            .iter()
            .any(|(m, _)| m.len() > crate::kv::zset::LISTPACK_VALUE);
    if big {
        z.set_skiplist();
    }
    for (m, s) in &items {
        z.insert(w, m, *s)?;
    }
    z.save(w)?;
    w.notify('z', event, dst);
    Ok(Reply::Integer(n as i64))
}

// ---- ZCOUNT, ZLEXCOUNT ----

read_spec!(
    ZCOUNT,
    "zcount",
    4,
    |r, argv| {
        let (min, max) = parse_score_range(&argv[2], &argv[3])?;
        let Some(z) = open(r, &argv[1])? else {
            return Ok(Reply::Integer(0));
        };
        Ok(Reply::Integer(count_range(r, &z, &Range::Score(min, max))?))
    },
    (1, 1, 1)
);

read_spec!(
    ZLEXCOUNT,
    "zlexcount",
    4,
    |r, argv| {
        let (min, max) = parse_lex_range(&argv[2], &argv[3])?;
        let Some(z) = open(r, &argv[1])? else {
            return Ok(Reply::Integer(0));
        };
        Ok(Reply::Integer(count_range(r, &z, &Range::Lex(min, max))?))
    },
    (1, 1, 1)
);

// ---- ZREMRANGEBY* ----

fn zremrange(w: &mut WriteView, argv: &[Bytes], by: By) -> CmdResult {
    let (range, event) = match by {
        By::Score => {
            let (a, b) = parse_score_range(&argv[2], &argv[3])?;
            (Range::Score(a, b), "zremrangebyscore")
        }
        By::Lex => {
            let (a, b) = parse_lex_range(&argv[2], &argv[3])?;
            (Range::Lex(a, b), "zremrangebylex")
        }
        _ => (
            Range::Rank(parse_long(&argv[2])?, parse_long(&argv[3])?),
            "zremrangebyrank",
        ),
    };
    let Some(mut z) = open(w, &argv[1])? else {
        return Ok(Reply::Integer(0));
    };
    let q = RangeReq {
        range,
        rev: false,
        offset: 0,
        count: -1,
        withscores: false,
    };
    let doomed = select(w, &z, &q)?;
    for (m, _) in &doomed {
        z.remove(w, m)?;
    }
    w.dirty(doomed.len() as u64);
    save(w, z, !doomed.is_empty(), event)?;
    Ok(Reply::Integer(doomed.len() as i64))
}

write_spec!(
    ZREMRANGEBYRANK,
    "zremrangebyrank",
    4,
    |w, _, argv| zremrange(w, argv, By::Rank),
    (1, 1, 1)
);
write_spec!(
    ZREMRANGEBYSCORE,
    "zremrangebyscore",
    4,
    |w, _, argv| zremrange(w, argv, By::Score),
    (1, 1, 1)
);
write_spec!(
    ZREMRANGEBYLEX,
    "zremrangebylex",
    4,
    |w, _, argv| zremrange(w, argv, By::Lex),
    (1, 1, 1)
);

// ---- ZPOPMIN, ZPOPMAX, ZMPOP ----

/// Pops up to `count` members from the low (`max` false) or high end of `z`.
fn pop(
    w: &mut WriteView,
    mut z: ZSet,
    count: u64,
    max: bool,
) -> Result<Vec<(Bytes, f64)>, CmdError> {
    let n = count.min(z.len());
    if n == 0 {
        return Ok(Vec::new());
    }
    let items = z.by_rank(w, 0, n - 1, max)?;
    for (m, _) in &items {
        z.remove(w, m)?;
    }
    w.dirty(items.len() as u64);
    save(w, z, true, if max { "zpopmax" } else { "zpopmin" })?;
    Ok(items)
}

fn out_of_range_positive() -> Reply {
    Reply::error("ERR value is out of range, must be positive")
}

fn zpop(w: &mut WriteView, argv: &[Bytes], max: bool) -> CmdResult {
    if argv.len() > 3 {
        return Ok(syntax_error());
    }
    let count = match argv.get(2) {
        Some(c) => match parse_i64(c) {
            Some(n) if n >= 0 => Some(n.unsigned_abs()),
            _ => return Ok(out_of_range_positive()),
        },
        None => None,
    };
    let Some(z) = open(w, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == Some(0) {
        return Ok(Reply::Array(Vec::new()));
    }
    let items = pop(w, z, count.unwrap_or(1), max)?;
    Ok(if count.is_some() {
        members_reply(items, true)
    } else {
        Reply::Array(
            items
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                .collect(),
        )
    })
}

write_spec!(
    ZPOPMIN,
    "zpopmin",
    -2,
    |w, _, argv| zpop(w, argv, false),
    (1, 1, 1)
);
write_spec!(
    ZPOPMAX,
    "zpopmax",
    -2,
    |w, _, argv| zpop(w, argv, true),
    (1, 1, 1)
);

write_spec!(ZMPOP, "zmpop", -4, zmpop, (0, 0, 0));

/// ZMPOP's (and BZMPOP's) arguments after the command name (and timeout): numkeys key...
/// MIN|MAX [COUNT count], checked in Redis's order; `(keys, max, count)`.
pub fn parse_zmpop(args: &[Bytes]) -> Result<(&[Bytes], bool, u64), Reply> {
    let Some(first) = args.first() else {
        return Err(syntax_error());
    };
    let numkeys = match parse_i64(first) {
        Some(n) if n >= 1 => n.unsigned_abs(),
        _ => return Err(Reply::error("ERR numkeys should be greater than 0")),
    };
    let where_at = match usize::try_from(numkeys).ok().and_then(|n| n.checked_add(1)) {
        Some(i) if i < args.len() => i,
        _ => return Err(syntax_error()),
    };
    let max = if is(&args[where_at], "min") {
        false
    } else if is(&args[where_at], "max") {
        true
    } else {
        return Err(syntax_error());
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && is(&args[j], "count") && j + 1 < args.len() {
            count = match parse_i64(&args[j + 1]) {
                Some(n) if n >= 1 => Some(n.unsigned_abs()),
                _ => return Err(Reply::error("ERR count should be greater than 0")),
            };
            j += 2;
        } else {
            return Err(syntax_error());
        }
    }
    Ok((&args[1..where_at], max, count.unwrap_or(1)))
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]: pops from the first non-empty key;
/// replies [key, [[member, score], ...]] (nested in both protocols), or a null array.
fn zmpop(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let (keys, max, count) = parse_zmpop(&argv[1..])?;
    mpop(w, keys, max, count)
}

fn mpop(w: &mut WriteView, keys: &[Bytes], max: bool, count: u64) -> CmdResult {
    for key in keys {
        let Some(z) = open(w, key)? else {
            continue;
        };
        let items = pop(w, z, count, max)?;
        let inner = items
            .into_iter()
            .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::Array(inner),
        ]));
    }
    Ok(Reply::NilArray)
}

// ---- BZPOPMIN, BZPOPMAX, BZMPOP: blocking pops, as one attempt ----

/// BZPOPMIN/BZPOPMAX key... timeout applied once: `[key, member, score]` from the first
/// non-empty sorted set, else the null array (the connection then waits, see
/// `crate::blocking`; inside MULTI that is the reply, as Redis's).
fn bzpop(w: &mut WriteView, argv: &[Bytes], max: bool) -> CmdResult {
    parse_timeout(&argv[argv.len() - 1])?;
    for key in &argv[1..argv.len() - 1] {
        let Some(z) = open(w, key)? else {
            continue;
        };
        if let Some((m, s)) = pop(w, z, 1, max)?.into_iter().next() {
            return Ok(Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Bulk(m),
                Reply::Double(s),
            ]));
        }
    }
    Ok(Reply::NilArray)
}

/// Checks a blocking pop's arguments as Redis does before it would block (on the client's
/// node, so a bad timeout is answered without a round through raft).
fn prepare_bzpop(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    if is(&argv[0], "bzmpop") {
        parse_zmpop(&argv[2..])?;
        parse_timeout(&argv[1])?;
    } else {
        parse_timeout(&argv[argv.len() - 1])?;
    }
    Ok(argv)
}

macro_rules! blocking_spec {
    ($const:ident, $name:literal, $arity:expr, $apply:expr, $keys:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Write {
                prepare: prepare_bzpop,
                apply: $apply,
            },
            flags: &["blocking"],
            keys: $keys,
        };
    };
}

blocking_spec!(
    BZPOPMIN,
    "bzpopmin",
    -3,
    |w, _, argv| bzpop(w, argv, false),
    (1, -2, 1)
);
blocking_spec!(
    BZPOPMAX,
    "bzpopmax",
    -3,
    |w, _, argv| bzpop(w, argv, true),
    (1, -2, 1)
);
blocking_spec!(
    BZMPOP,
    "bzmpop",
    -5,
    |w, _, argv| {
        let (keys, max, count) = parse_zmpop(&argv[2..])?;
        parse_timeout(&argv[1])?;
        mpop(w, keys, max, count)
    },
    (0, 0, 0)
);

/// The keys a blocking sorted-set pop waits on; `None` if `argv` is not one.
pub fn blocking_keys(argv: &[Bytes]) -> Option<Vec<Bytes>> {
    let name = argv.first()?;
    if is(name, "bzpopmin") || is(name, "bzpopmax") {
        Some(
            argv.get(1..argv.len().saturating_sub(1))
                .unwrap_or_default()
                .to_vec(),
        )
    } else if is(name, "bzmpop") {
        Some(
            parse_zmpop(argv.get(2..).unwrap_or_default())
                .map(|(keys, _, _)| keys.to_vec())
                .unwrap_or_default(),
        )
    } else {
        None
    }
}

// ---- ZUNION, ZINTER, ZDIFF (and STORE), ZINTERCARD ----

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// An input of the set operations: a sorted set, or a set whose members score 1.
enum Source {
    Missing,
    Zset(ZSet),
    Set(Collection),
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Missing => 0,
            Source::Zset(z) => z.len(),
            Source::Set(s) => s.len(),
        }
    }

    fn score(&self, r: &dyn KeyRead, m: &[u8]) -> Result<Option<f64>, CmdError> {
        Ok(match self {
            Source::Missing => None,
            Source::Zset(z) => z.score(r, m)?,
            Source::Set(s) => s.contains(r, m)?.then_some(1.0),
        })
    }

    fn all(&self, r: &dyn KeyRead) -> Result<Vec<(Bytes, f64)>, CmdError> {
        let mut out = Vec::new();
        match self {
            Source::Missing => {}
            Source::Zset(z) => z.scan_members(r, None, false, &mut |m, s| {
                out.push((Bytes::copy_from_slice(m), s));
                true
            })?,
            Source::Set(s) => s.scan(r, b"", &mut |m, _| {
                out.push((Bytes::copy_from_slice(m), 1.0));
                true
            })?,
        }
        Ok(out)
    }
}

fn open_source(r: &dyn KeyRead, key: &[u8]) -> Result<Source, CmdError> {
    match r.meta(key)? {
        None => Ok(Source::Missing),
        Some(m) if m.kind == KeyType::ZSet => Ok(Source::Zset(ZSet::from_meta(key, m)?)),
        Some(m) if m.kind == KeyType::Set => Ok(Source::Set(Collection::from_meta(key, m)?)),
        Some(_) => Err(wrong_type().into()),
    }
}

fn aggregate(a: Aggregate, acc: f64, v: f64) -> f64 {
    match a {
        Aggregate::Sum => {
            let s = acc + v;
            if s.is_nan() { 0.0 } else { s }
        }
        Aggregate::Min => acc.min(v),
        Aggregate::Max => acc.max(v),
    }
}

fn weighted(score: f64, weight: f64) -> f64 {
    let s = score * weight;
    if s.is_nan() { 0.0 } else { s }
}

/// The parsed request of a set operation.
struct SetOpReq {
    sources: Vec<Source>,
    weights: Vec<f64>,
    aggregate: Aggregate,
    withscores: bool,
    limit: u64,
}

/// Parses `numkeys key... [WEIGHTS w...] [AGGREGATE a] [WITHSCORES] [LIMIT n]` from
/// `args` (starting at numkeys) as zunionInterDiffGenericCommand does, keys' types first.
fn parse_setop(
    r: &dyn KeyRead,
    args: &[Bytes],
    op: SetOp,
    name: &str,
    store: bool,
    card: bool,
) -> Result<SetOpReq, CmdError> {
    let n = parse_long(&args[0])?;
    if n < 1 {
        return Err(Reply::error(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        ))
        .into());
    }
    if n as u64 > (args.len() - 1) as u64 {
        return Err(syntax_error().into());
    }
    let n = n as usize;
    let mut sources = Vec::with_capacity(n);
    for key in &args[1..=n] {
        sources.push(open_source(r, key)?);
    }
    let mut req = SetOpReq {
        sources,
        weights: vec![1.0; n],
        aggregate: Aggregate::Sum,
        withscores: false,
        limit: 0,
    };
    let mut j = n + 1;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != SetOp::Diff && !card && remaining > n && is(a, "weights") {
            for (i, w) in args[j + 1..=j + n].iter().enumerate() {
                req.weights[i] = parse_score(w)
                    .ok_or_else(|| Reply::error("ERR weight value is not a float"))?;
            }
            j += n + 1;
        } else if op != SetOp::Diff && !card && remaining >= 2 && is(a, "aggregate") {
            let v = &args[j + 1];
            req.aggregate = if is(v, "sum") {
                Aggregate::Sum
            } else if is(v, "min") {
                Aggregate::Min
            } else if is(v, "max") {
                Aggregate::Max
            } else {
                return Err(syntax_error().into());
            };
            j += 2;
        } else if !store && !card && is(a, "withscores") {
            req.withscores = true;
            j += 1;
        } else if card && remaining >= 2 && is(a, "limit") {
            req.limit = match parse_i64(&args[j + 1]) {
                Some(l) if l >= 0 => l.unsigned_abs(),
                _ => return Err(Reply::error("ERR LIMIT can't be negative").into()),
            };
            j += 2;
        } else {
            return Err(syntax_error().into());
        }
    }
    Ok(req)
}

/// The result of a set operation in (score, member) order; `limit` (> 0) stops an
/// intersection early (ZINTERCARD).
fn compute(r: &dyn KeyRead, req: &SetOpReq, op: SetOp) -> Result<Vec<(Bytes, f64)>, CmdError> {
    let mut out: Vec<(Bytes, f64)> = match op {
        SetOp::Union => {
            let mut acc: BTreeMap<Bytes, f64> = BTreeMap::new();
            for (src, w) in req.sources.iter().zip(&req.weights) {
                for (m, s) in src.all(r)? {
                    let v = weighted(s, *w);
                    acc.entry(m)
                        .and_modify(|a| *a = aggregate(req.aggregate, *a, v))
                        .or_insert(v);
                }
            }
            acc.into_iter().collect()
        }
        SetOp::Inter => {
            let mut order: Vec<usize> = (0..req.sources.len()).collect();
            order.sort_by_key(|&i| req.sources[i].len());
            let Some((&first, others)) = order.split_first() else {
                return Ok(Vec::new());
            };
            if req.sources[first].len() == 0 {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            'members: for (m, s) in req.sources[first].all(r)? {
                let mut acc = weighted(s, req.weights[first]);
                for &i in others {
                    match req.sources[i].score(r, &m)? {
                        // Redis turns only the first input's NaN products into 0.
                        Some(s) => acc = aggregate(req.aggregate, acc, s * req.weights[i]),
                        None => continue 'members,
                    }
                }
                out.push((m, acc));
                if req.limit > 0 && out.len() as u64 >= req.limit {
                    break;
                }
            }
            out
        }
        SetOp::Diff => {
            let Some((first, others)) = req.sources.split_first() else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            'diff: for (m, s) in first.all(r)? {
                for o in others {
                    if o.score(r, &m)?.is_some() {
                        continue 'diff;
                    }
                }
                out.push((m, s));
            }
            out
        }
    };
    out.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

fn setop_read(r: &dyn KeyRead, argv: &[Bytes], op: SetOp, name: &str) -> CmdResult {
    let req = parse_setop(r, &argv[1..], op, name, false, false)?;
    Ok(members_reply(compute(r, &req, op)?, req.withscores))
}

fn setop_store(w: &mut WriteView, argv: &[Bytes], op: SetOp, name: &'static str) -> CmdResult {
    let req = parse_setop(w, &argv[2..], op, name, true, false)?;
    let items = compute(w, &req, op)?;
    store(w, &argv[1], items, name)
}

read_spec!(
    ZUNION,
    "zunion",
    -3,
    |r, argv| setop_read(r, argv, SetOp::Union, "zunion"),
    (0, 0, 0)
);
read_spec!(
    ZINTER,
    "zinter",
    -3,
    |r, argv| setop_read(r, argv, SetOp::Inter, "zinter"),
    (0, 0, 0)
);
read_spec!(
    ZDIFF,
    "zdiff",
    -3,
    |r, argv| setop_read(r, argv, SetOp::Diff, "zdiff"),
    (0, 0, 0)
);
write_spec!(
    ZUNIONSTORE,
    "zunionstore",
    -4,
    |w, _, argv| setop_store(w, argv, SetOp::Union, "zunionstore"),
    (1, 1, 1)
);
write_spec!(
    ZINTERSTORE,
    "zinterstore",
    -4,
    |w, _, argv| setop_store(w, argv, SetOp::Inter, "zinterstore"),
    (1, 1, 1)
);
write_spec!(
    ZDIFFSTORE,
    "zdiffstore",
    -4,
    |w, _, argv| setop_store(w, argv, SetOp::Diff, "zdiffstore"),
    (1, 1, 1)
);

read_spec!(
    ZINTERCARD,
    "zintercard",
    -3,
    |r, argv| {
        let req = parse_setop(r, &argv[1..], SetOp::Inter, "zintercard", false, true)?;
        Ok(Reply::Integer(compute(r, &req, SetOp::Inter)?.len() as i64))
    },
    (0, 0, 0)
);

// ---- ZRANDMEMBER, ZSCAN ----

read_spec!(ZRANDMEMBER, "zrandmember", -2, zrandmember, (1, 1, 1));

/// The members at ascending ranks `positions` (sorted, distinct), one walk in score order.
fn at_ranks(r: &dyn KeyRead, z: &ZSet, positions: &[u64]) -> Result<Vec<(Bytes, f64)>, CmdError> {
    let mut out = Vec::with_capacity(positions.len());
    let mut next = 0;
    let mut rank = 0u64;
    if positions.is_empty() {
        return Ok(out);
    }
    z.scan_scores(r, None, false, &mut |s, m| {
        if positions.get(next) == Some(&rank) {
            out.push((Bytes::copy_from_slice(m), s));
            next += 1;
        }
        rank += 1;
        next < positions.len()
    })?;
    Ok(out)
}

/// ZRANDMEMBER key [count [WITHSCORES]]: local randomness on a connection, the entry's
/// inside apply (a transaction or script), as SRANDMEMBER.
fn zrandmember(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let count = match argv.get(2) {
        Some(c) => Some(parse_count(c)?),
        None => None,
    };
    let withscores = match argv.len() {
        2 | 3 => false,
        4 if is(&argv[3], "withscores") => true,
        _ => return Ok(syntax_error()),
    };
    if withscores && count.is_some_and(|n| !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n)) {
        return Ok(Reply::error("ERR value is out of range"));
    }
    let z = open(r, &argv[1])?;
    let Some(count) = count else {
        let Some(z) = z else {
            return Ok(Reply::Nil);
        };
        let pick = Rng::for_key(r, z.key()).below(z.len().max(1));
        return Ok(at_ranks(r, &z, &[pick])?
            .into_iter()
            .next()
            .map_or(Reply::Nil, |(m, _)| Reply::Bulk(m)));
    };
    let Some(z) = z else {
        return Ok(Reply::Array(Vec::new()));
    };
    let n = z.len();
    let mut rng = Rng::for_key(r, z.key());
    let items = if count >= 0 {
        let k = count.unsigned_abs();
        if k >= n {
            z.by_rank(r, 0, n.saturating_sub(1), false)?
        } else {
            at_ranks(r, &z, &rng.distinct(k, n))?
        }
    } else {
        let k = count.unsigned_abs();
        if k > MAX_REPEATED_PICKS {
            return Ok(Reply::error(format!(
                "ERR kvd returns at most {MAX_REPEATED_PICKS} random members with repeats"
            )));
        }
        let draws: Vec<u64> = (0..k).map(|_| rng.below(n)).collect();
        let mut sorted = draws.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let picked = at_ranks(r, &z, &sorted)?;
        draws
            .iter()
            .filter_map(|p| {
                sorted
                    .binary_search(p)
                    .ok()
                    .and_then(|i| picked.get(i).cloned())
            })
            .collect()
    };
    Ok(members_reply(items, withscores))
}

read_spec!(ZSCAN, "zscan", -3, zscan, (1, 1, 1));

/// ZSCAN key cursor [MATCH pattern] [COUNT n]: members in member order from the cursor's
/// member (see `collection::cursors`), scores as bulk strings (as Redis, in both protocols).
fn zscan(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&argv[2])?;
    let o = parse_scan_options(&argv[3..])?;
    let reply = |cursor: u64, items: Vec<Reply>| {
        Reply::Array(vec![Reply::bulk(cursor.to_string()), Reply::Array(items)])
    };
    let Some(z) = open(r, &argv[1])? else {
        return Ok(reply(0, Vec::new()));
    };
    let from = cursors::resume(cursor, r.db(), z.key(), z.version());
    let mut items = Vec::new();
    let mut seen = 0u64;
    let mut next: Option<Bytes> = None;
    z.scan_members(r, Some(&from), false, &mut |m, s| {
        if seen >= o.count {
            next = Some(Bytes::copy_from_slice(m));
            return false;
        }
        seen += 1;
        if o.pattern.is_none_or(|p| glob::matches(p, m, false)) {
            items.push(bulk(m));
            items.push(Reply::bulk(scan_score(s)));
        }
        true
    })?;
    let cursor = match next {
        Some(m) => cursors::save(r.db(), z.key(), z.version(), m),
        None => 0,
    };
    Ok(reply(cursor, items))
}

/// A score as ZSCAN prints it (Redis's `d2string`): an integral score that fits a 64-bit
/// integer in integer form, others as `%.17g`.
fn scan_score(s: f64) -> String {
    if s.fract() == 0.0 && s.abs() < 9.2e18 && s != 0.0 {
        return format!("{}", s as i64);
    }
    crate::resp::reply::format_double(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_as_redis() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b"1e3"), Some(1000.0));
        assert_eq!(parse_score(b"0"), Some(0.0));
        assert_eq!(parse_score(b"-0.0e5"), Some(0.0));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"abc",
            b"1e400",
            b"1e-400",
            b"1x",
            b"--1",
        ] {
            assert_eq!(parse_score(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn range_bounds_parse_as_strtod() {
        let b = |s: &[u8]| parse_score_bound(s).map(|b| (b.score, b.exclusive));
        assert_eq!(b(b"(1"), Some((1.0, true)));
        assert_eq!(b(b""), Some((0.0, false)));
        assert_eq!(b(b"("), Some((0.0, true)));
        assert_eq!(b(b" 1"), Some((1.0, false)));
        assert_eq!(b(b"1e400"), Some((f64::INFINITY, false)));
        assert_eq!(b(b"nan"), None);
        assert_eq!(b(b"1x"), None);
        assert_eq!(b(b" "), None);
    }

    #[test]
    fn rank_ranges_clamp_as_redis() {
        assert_eq!(clamp_ranks(0, -1, 5), Some((0, 4)));
        assert_eq!(clamp_ranks(-100, 100, 5), Some((0, 4)));
        assert_eq!(clamp_ranks(3, 1, 5), None);
        assert_eq!(clamp_ranks(5, 9, 5), None);
        assert_eq!(clamp_ranks(0, 0, 0), None);
        assert_eq!(clamp_ranks(-2, -1, 5), Some((3, 4)));
    }

    #[test]
    fn lex_bounds() {
        let p = |s: &str| parse_lex(&Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(p("-"), Some(Lex::NegInf));
        assert_eq!(p("+"), Some(Lex::PosInf));
        assert_eq!(p("[a"), Some(Lex::Incl(Bytes::from_static(b"a"))));
        assert_eq!(p("(a"), Some(Lex::Excl(Bytes::from_static(b"a"))));
        assert_eq!(p("a"), None);
        assert_eq!(p("-a"), None);
        assert!(lex_gte_min(b"b", &Lex::Excl(Bytes::from_static(b"a"))));
        assert!(!lex_lte_max(b"b", &Lex::Excl(Bytes::from_static(b"b"))));
    }
}
