//! Hash commands: HSET, HSETNX, HGET, HMGET, HMSET, HGETALL, HDEL, HLEN, HSTRLEN, HEXISTS,
//! HINCRBY, HINCRBYFLOAT, HKEYS, HVALS, HSCAN, HRANDFIELD.
//!
//! A hash is a collection on member rows (`kv::collection`): one row per field holding its
//! value, the field count in the key's metadata. Fields come back in field-byte order.

use bytes::Bytes;

use super::{
    CmdError, CmdResult, Kind, Spec, glob, is, not_an_integer, parse_i64, syntax_error,
    wrong_arity, wrong_type,
};
use crate::kv::collection::{Collection, Rng, cursors};
use crate::kv::{ApplyCtx, KeyRead, KeyType, WriteView};
use crate::resp::Reply;

/// A live collection of type `kind` (`None`: no such key; WRONGTYPE for another type).
pub(super) fn open(
    r: &dyn KeyRead,
    key: &[u8],
    kind: KeyType,
) -> Result<Option<Collection>, CmdError> {
    match r.meta(key)? {
        None => Ok(None),
        Some(m) if m.kind == kind => Ok(Some(Collection::from_meta(key, m)?)),
        Some(_) => Err(wrong_type().into()),
    }
}

/// The collection to change: the live one, or a new incarnation (WRONGTYPE for another type).
pub(super) fn open_or_create(
    w: &mut WriteView,
    key: &[u8],
    kind: KeyType,
) -> Result<Collection, CmdError> {
    match open(w, key, kind)? {
        Some(c) => Ok(c),
        None => Ok(Collection::create(w, key, kind)),
    }
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(b))
}

macro_rules! write_spec {
    ($const:ident, $name:literal, $arity:expr, $apply:expr, $flags:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Write {
                prepare: Ok,
                apply: $apply,
            },
            flags: $flags,
            keys: (1, 1, 1),
        };
    };
}

macro_rules! read_spec {
    ($const:ident, $name:literal, $arity:expr, $read:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Read($read),
            flags: &["fast"],
            keys: (1, 1, 1),
        };
    };
}

write_spec!(
    HSET,
    "hset",
    -4,
    |w, _, argv| hset(w, argv, "hset"),
    &["fast"]
);
write_spec!(
    HMSET,
    "hmset",
    -4,
    |w, _, argv| hset(w, argv, "hmset"),
    &["fast"]
);

/// HSET replies with the number of new fields, HMSET with +OK.
fn hset(w: &mut WriteView, argv: &[Bytes], name: &str) -> CmdResult {
    if !argv.len().is_multiple_of(2) {
        return Ok(wrong_arity(name));
    }
    let mut h = open_or_create(w, &argv[1], KeyType::Hash)?;
    let mut added = 0;
    for pair in argv[2..].chunks_exact(2) {
        added += i64::from(h.put(w, &pair[0], pair[1].clone())?);
    }
    // Redis counts every field set, new or not.
    w.dirty((argv.len() as u64 - 2) / 2);
    let created = !h.existed();
    h.save(w)?;
    if created {
        w.notify('n', "new", &argv[1]);
    }
    w.notify('h', "hset", &argv[1]);
    Ok(if name == "hmset" {
        Reply::ok()
    } else {
        Reply::Integer(added)
    })
}

write_spec!(HSETNX, "hsetnx", 4, hsetnx, &["fast"]);

fn hsetnx(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let mut h = open_or_create(w, &argv[1], KeyType::Hash)?;
    if h.contains(w, &argv[2])? {
        return Ok(Reply::Integer(0));
    }
    h.put(w, &argv[2], argv[3].clone())?;
    h.save(w)?;
    w.notify('h', "hset", &argv[1]);
    Ok(Reply::Integer(1))
}

read_spec!(HGET, "hget", 3, |r, argv| {
    Ok(match open(r, &argv[1], KeyType::Hash)? {
        Some(h) => h.get(r, &argv[2])?.into(),
        None => Reply::Nil,
    })
});

read_spec!(HMGET, "hmget", -3, |r, argv| {
    let h = open(r, &argv[1], KeyType::Hash)?;
    let mut out = Vec::with_capacity(argv.len() - 2);
    for field in &argv[2..] {
        out.push(match &h {
            Some(h) => h.get(r, field)?.into(),
            None => Reply::Nil,
        });
    }
    Ok(Reply::Array(out))
});

/// Which parts of each field HGETALL, HKEYS and HVALS return.
#[derive(Clone, Copy)]
enum Parts {
    Both,
    Fields,
    Values,
}

fn hgetall(r: &dyn KeyRead, key: &[u8], parts: Parts) -> CmdResult {
    let both = matches!(parts, Parts::Both);
    let Some(h) = open(r, key, KeyType::Hash)? else {
        // HGETALL is a map in RESP3 (an empty one for a missing key), as Redis replies.
        return Ok(if both {
            Reply::Map(Vec::new())
        } else {
            Reply::Array(Vec::new())
        });
    };
    // Insertion order, as Redis's listpack hashes answer (see `kv::collection`).
    let fields = h.in_order(r)?;
    Ok(match parts {
        Parts::Both => Reply::Map(
            fields
                .into_iter()
                .map(|(f, v)| (Reply::Bulk(f), Reply::Bulk(v)))
                .collect(),
        ),
        Parts::Fields => Reply::Array(fields.into_iter().map(|(f, _)| Reply::Bulk(f)).collect()),
        Parts::Values => Reply::Array(fields.into_iter().map(|(_, v)| Reply::Bulk(v)).collect()),
    })
}

pub const HGETALL: Spec = Spec {
    name: "hgetall",
    arity: 2,
    kind: Kind::Read(|r, argv| hgetall(r, &argv[1], Parts::Both)),
    flags: &[],
    keys: (1, 1, 1),
};

pub const HKEYS: Spec = Spec {
    name: "hkeys",
    kind: Kind::Read(|r, argv| hgetall(r, &argv[1], Parts::Fields)),
    ..HGETALL
};

pub const HVALS: Spec = Spec {
    name: "hvals",
    kind: Kind::Read(|r, argv| hgetall(r, &argv[1], Parts::Values)),
    ..HGETALL
};

write_spec!(HDEL, "hdel", -3, hdel, &["fast"]);

fn hdel(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let Some(mut h) = open(w, &argv[1], KeyType::Hash)? else {
        return Ok(Reply::Integer(0));
    };
    let mut removed = 0;
    for field in &argv[2..] {
        removed += i64::from(h.remove(w, field)?);
    }
    w.dirty(removed as u64);
    let emptied = h.save(w)?;
    if removed > 0 {
        w.notify('h', "hdel", &argv[1]);
        if emptied {
            w.notify('g', "del", &argv[1]);
        }
    }
    Ok(Reply::Integer(removed))
}

read_spec!(HLEN, "hlen", 2, |r, argv| {
    let n = open(r, &argv[1], KeyType::Hash)?.map_or(0, |h| h.len());
    Ok(Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
});

read_spec!(HSTRLEN, "hstrlen", 3, |r, argv| {
    let len = match open(r, &argv[1], KeyType::Hash)? {
        Some(h) => h.get(r, &argv[2])?.map_or(0, |v| v.len()),
        None => 0,
    };
    Ok(Reply::Integer(len as i64))
});

read_spec!(HEXISTS, "hexists", 3, |r, argv| {
    let found = match open(r, &argv[1], KeyType::Hash)? {
        Some(h) => h.contains(r, &argv[2])?,
        None => false,
    };
    Ok(Reply::Integer(i64::from(found)))
});

write_spec!(HINCRBY, "hincrby", 4, hincrby, &["fast"]);

fn hincrby(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let by = parse_i64(&argv[3]).ok_or_else(not_an_integer)?;
    let mut h = open_or_create(w, &argv[1], KeyType::Hash)?;
    let current = match h.get(w, &argv[2])? {
        Some(v) => parse_i64(&v).ok_or_else(|| Reply::error("ERR hash value is not an integer"))?,
        None => 0,
    };
    let Some(n) = current.checked_add(by) else {
        return Ok(Reply::error("ERR increment or decrement would overflow"));
    };
    h.put(w, &argv[2], Bytes::from(n.to_string()))?;
    h.save(w)?;
    w.notify('h', "hincrby", &argv[1]);
    Ok(Reply::Integer(n))
}

write_spec!(HINCRBYFLOAT, "hincrbyfloat", 4, hincrbyfloat, &["fast"]);

/// Parses a float argument as Redis does (no spaces, no NaN); `None` if it is not one.
fn parse_float(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if lower.contains("nan") {
        return None;
    }
    lower.parse::<f64>().ok()
}

/// A float result as Redis prints it: plain decimal, no exponent, no trailing zeros. kvd
/// computes in f64 (Redis in long double) and rounds to 15 significant digits, which hides
/// f64's last-digit noise (0.1 + 0.2 prints 0.3, as in Redis).
pub(super) fn format_float(x: f64) -> String {
    let rounded: f64 = format!("{x:.14e}").parse().unwrap_or(x);
    let s = format!("{rounded}");
    if s == "-0" { "0".to_string() } else { s }
}

/// The sum of two integers written as integers, exactly (Redis's long double holds 64-bit
/// integers exactly, f64 does not).
fn exact_integer_sum(current: &Option<Bytes>, by: &[u8]) -> Option<String> {
    let a = match current {
        Some(v) => i128::from(parse_i64(v)?),
        None => 0,
    };
    let sum = a + i128::from(parse_i64(by)?);
    Some(sum.to_string())
}

/// Applies HINCRBYFLOAT with the f64 arithmetic every node does alike.
fn hincrbyfloat(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let by = parse_float(&argv[3]).ok_or_else(|| Reply::error("ERR value is not a valid float"))?;
    if by.is_infinite() {
        return Ok(Reply::error("ERR value is NaN or Infinity"));
    }
    let mut h = open_or_create(w, &argv[1], KeyType::Hash)?;
    let current = match h.get(w, &argv[2])? {
        Some(v) => parse_float(&v).ok_or_else(|| Reply::error("ERR hash value is not a float"))?,
        None => 0.0,
    };
    let n = current + by;
    if !n.is_finite() {
        return Ok(Reply::error("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(
        exact_integer_sum(&h.get(w, &argv[2])?, &argv[3]).unwrap_or_else(|| format_float(n)),
    );
    h.put(w, &argv[2], text.clone())?;
    h.save(w)?;
    w.notify('h', "hincrbyfloat", &argv[1]);
    Ok(Reply::Bulk(text))
}

/// A SCAN-family cursor as Redis parses it (an unsigned 64-bit integer; `-n` wraps).
pub(super) fn parse_cursor(b: &[u8]) -> Result<u64, Reply> {
    let invalid = || Reply::error("ERR invalid cursor");
    let s = std::str::from_utf8(b).map_err(|_| invalid())?;
    if s.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Err(invalid());
    }
    if let Some(neg) = s.strip_prefix('-') {
        return neg
            .parse::<u64>()
            .map(u64::wrapping_neg)
            .map_err(|_| invalid());
    }
    s.strip_prefix('+')
        .unwrap_or(s)
        .parse::<u64>()
        .map_err(|_| invalid())
}

/// HSCAN/SSCAN's options: MATCH pattern, COUNT n (Redis's checks and errors).
pub(super) struct ScanOptions<'a> {
    pub pattern: Option<&'a [u8]>,
    pub count: u64,
}

pub(super) fn parse_scan_options(args: &[Bytes]) -> Result<ScanOptions<'_>, Reply> {
    let mut o = ScanOptions {
        pattern: None,
        count: 10,
    };
    let mut i = 0;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Err(syntax_error());
        };
        if is(&args[i], "count") {
            let n = parse_i64(value).ok_or_else(not_an_integer)?;
            if n < 1 {
                return Err(syntax_error());
            }
            o.count = n as u64;
        } else if is(&args[i], "match") {
            o.pattern = Some(value).map(|v| &v[..]).filter(|p| *p != b"*");
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    Ok(o)
}

/// One HSCAN/SSCAN step: visits up to COUNT members from the cursor's position, in member
/// order, and replies `[next cursor, items]` (`with_values`: field, value pairs).
pub(super) fn scan_step(
    r: &dyn KeyRead,
    argv: &[Bytes],
    kind: KeyType,
    with_values: bool,
) -> CmdResult {
    let cursor = parse_cursor(&argv[2])?;
    let o = parse_scan_options(&argv[3..])?;
    let Some(c) = open(r, &argv[1], kind)? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let from = cursors::resume(cursor, r.db(), c.key(), c.meta().version);
    let mut items = Vec::new();
    let mut seen = 0u64;
    let mut next: Option<Bytes> = None;
    c.scan(r, &from, &mut |m, v| {
        if seen >= o.count {
            next = Some(Bytes::copy_from_slice(m));
            return false;
        }
        seen += 1;
        if o.pattern.is_none_or(|p| glob::matches(p, m, false)) {
            items.push(bulk(m));
            if with_values {
                items.push(bulk(v));
            }
        }
        true
    })?;
    let cursor = match next {
        Some(m) => cursors::save(r.db(), c.key(), c.meta().version, m),
        None => 0,
    };
    Ok(scan_reply(cursor, items))
}

fn scan_reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![Reply::bulk(cursor.to_string()), Reply::Array(items)])
}

read_spec!(HSCAN, "hscan", -3, |r, argv| scan_step(
    r,
    argv,
    KeyType::Hash,
    true
));

/// A count argument of SRANDMEMBER/HRANDFIELD (Redis's range: ±(2^63 - 1)).
pub(super) fn parse_count(b: &[u8]) -> Result<i64, Reply> {
    match parse_i64(b) {
        None => Err(not_an_integer()),
        Some(i64::MIN) => Err(Reply::error(
            "ERR value is out of range, value must between -9223372036854775807 and \
             9223372036854775807",
        )),
        Some(n) => Ok(n),
    }
}

/// The most members one random pick may return with repeats: kvd builds each reply in
/// memory, so a count that asks for more is refused instead of exhausting it.
pub(super) const MAX_REPEATED_PICKS: u64 = 1 << 24;

/// The members a random pick returns, as Redis chooses them: `count` ≥ 0 distinct members
/// (all if fewer; in member order), `count` < 0 that many with repeats (in draw order).
pub(super) fn random_members(
    r: &dyn KeyRead,
    c: &Collection,
    count: i64,
) -> Result<Vec<(Bytes, Bytes)>, CmdError> {
    let mut rng = Rng::for_key(r, c.key());
    let n = c.len();
    if n == 0 || count == 0 {
        return Ok(Vec::new());
    }
    if count > 0 {
        let k = count.unsigned_abs();
        if k >= n {
            return Ok(c.in_order(r)?);
        }
        return Ok(c.at_positions(r, &rng.distinct(k, n))?);
    }
    let k = count.unsigned_abs();
    if k > MAX_REPEATED_PICKS {
        return Err(Reply::error(format!(
            "ERR kvd returns at most {MAX_REPEATED_PICKS} random members with repeats"
        ))
        .into());
    }
    let draws: Vec<u64> = (0..k).map(|_| rng.below(n)).collect();
    let mut sorted = draws.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let picked = c.at_positions(r, &sorted)?;
    Ok(draws
        .iter()
        .filter_map(|p| {
            sorted
                .binary_search(p)
                .ok()
                .and_then(|i| picked.get(i).cloned())
        })
        .collect())
}

read_spec!(HRANDFIELD, "hrandfield", -2, hrandfield);

/// HRANDFIELD key [count [WITHVALUES]].
fn hrandfield(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let count = match argv.get(2) {
        Some(c) => Some(parse_count(c)?),
        None => None,
    };
    let with_values = match argv.len() {
        2 | 3 => false,
        4 if is(&argv[3], "withvalues") => true,
        _ => return Ok(syntax_error()),
    };
    if with_values && count.is_some_and(|n| !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n)) {
        return Ok(Reply::error("ERR value is out of range"));
    }
    let h = open(r, &argv[1], KeyType::Hash)?;
    let Some(count) = count else {
        return Ok(match h {
            Some(h) => random_members(r, &h, 1)?
                .into_iter()
                .next()
                .map_or(Reply::Nil, |(f, _)| Reply::Bulk(f)),
            None => Reply::Nil,
        });
    };
    let Some(h) = h else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picked = random_members(r, &h, count)?;
    if with_values {
        // Pairs in RESP3, a flat array in RESP2, as Redis 7 replies.
        return Ok(Reply::Pairs(
            picked
                .into_iter()
                .map(|(f, v)| (Reply::Bulk(f), Reply::Bulk(v)))
                .collect(),
        ));
    }
    Ok(Reply::Array(
        picked.into_iter().map(|(f, _)| Reply::Bulk(f)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_redis() {
        assert_eq!(format_float(0.1 + 0.2), "0.3");
        assert_eq!(format_float(10.5 + 0.1), "10.6");
        assert_eq!(format_float(1e20), "100000000000000000000");
        assert_eq!(format_float(5000.0), "5000");
        assert_eq!(format_float(-0.0), "0");
        assert_eq!(format_float(-1.5), "-1.5");
        assert_eq!(parse_float(b" 1"), None);
        assert_eq!(parse_float(b"nan"), None);
        assert_eq!(parse_float(b"1e3"), Some(1000.0));
        assert_eq!(parse_float(b"abc"), None);
    }

    #[test]
    fn cursors_parse_as_redis() {
        assert_eq!(parse_cursor(b"0"), Ok(0));
        assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        assert!(parse_cursor(b"18446744073709551616").is_err());
        assert!(parse_cursor(b"abc").is_err());
        assert!(parse_cursor(b"").is_err());
        assert!(parse_cursor(b" 0").is_err());
        assert_eq!(parse_cursor(b"+0"), Ok(0));
    }
}
