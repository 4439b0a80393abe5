//! String commands on parts of a value and on floats: SETRANGE, GETRANGE, SUBSTR, INCRBYFLOAT,
//! LCS.
//!
//! Errors come in Redis's order (an argument checked before the key is looked up is checked
//! before WRONGTYPE); in-place changes keep the key's TTL, as Redis does.

use bytes::Bytes;

use super::long_double::{LongDouble, Parsed};
use super::strings::{MAX_STRING, string_meta, update_string};
use super::{CmdResult, Kind, Spec, get_string, is, not_an_integer, parse_i64, syntax_error};
use crate::kv::{ApplyCtx, KeyRead, KeyType, WriteView};
use crate::resp::Reply;

pub const SETRANGE: Spec = Spec {
    name: "setrange",
    arity: 4,
    kind: Kind::Write {
        prepare: |argv| {
            setrange_offset(&argv[2])?;
            Ok(argv)
        },
        apply: setrange,
    },
    flags: &[],
    keys: (1, 1, 1),
};

pub const GETRANGE: Spec = Spec {
    name: "getrange",
    arity: 4,
    kind: Kind::Read(getrange),
    flags: &[],
    keys: (1, 1, 1),
};

/// SUBSTR is GETRANGE's old name.
pub const SUBSTR: Spec = Spec {
    name: "substr",
    arity: 4,
    kind: Kind::Read(getrange),
    flags: &[],
    keys: (1, 1, 1),
};

pub const INCRBYFLOAT: Spec = Spec {
    name: "incrbyfloat",
    arity: 3,
    kind: Kind::Write {
        // Nothing to check first: WRONGTYPE and the stored value come before the increment.
        prepare: Ok,
        apply: incrbyfloat,
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

pub const LCS: Spec = Spec {
    name: "lcs",
    arity: -3,
    kind: Kind::Read(lcs),
    flags: &[],
    keys: (1, 2, 1),
};

/// The error Redis gives when a write would make a string longer than 512 MB.
pub(super) fn too_long() -> Reply {
    Reply::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

/// Whether a string of `offset + len` bytes would exceed the limit (Redis's
/// `checkStringLength`, with the constant limit every node shares).
fn exceeds_limit(offset: u64, len: usize) -> bool {
    offset.saturating_add(len as u64) > MAX_STRING as u64
}

/// An argument as C string functions see it: up to its first NUL byte. Redis compares
/// keywords with `strcasecmp`, so "GET\0x" is GET there; kept here to answer the same.
pub(super) fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter().position(|&b| b == 0).map_or(arg, |n| &arg[..n])
}

/// A C-string keyword comparison (see `c_str`).
pub(super) fn is_word(arg: &[u8], word: &str) -> bool {
    is(c_str(arg), word)
}

fn setrange_offset(arg: &[u8]) -> Result<u64, Reply> {
    let offset = parse_i64(arg).ok_or_else(not_an_integer)?;
    u64::try_from(offset).map_err(|_| Reply::error("ERR offset is out of range"))
}

/// SETRANGE key offset value: overwrites from `offset`, zero-padding a shorter value; replies
/// with the new length. An empty value changes nothing (and does not create the key).
fn setrange(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let offset = setrange_offset(&argv[2])?;
    let (key, value) = (&argv[1], &argv[3]);
    let meta = string_meta(w, key)?;
    let old_len = meta.as_ref().map_or(0, |m| m.body.len());
    if value.is_empty() {
        return Ok(Reply::Integer(old_len as i64));
    }
    if exceeds_limit(offset, value.len()) {
        return Ok(too_long());
    }
    // Within the limit, so `offset` fits in memory terms.
    let offset = offset as usize;
    let end = offset + value.len();
    let mut v = Vec::with_capacity(old_len.max(end));
    if let Some(m) = &meta {
        v.extend_from_slice(&m.body);
    }
    if v.len() < end {
        v.resize(end, 0);
    }
    v[offset..end].copy_from_slice(value);
    let len = v.len();
    update_string(w, key, meta, v.into())?;
    w.notify('$', "setrange", key);
    Ok(Reply::Integer(len as i64))
}

/// A `start..=end` range over `len` items as GETRANGE and BITCOUNT take it: negative
/// positions count from the end and are clamped; `None` when it selects nothing (including
/// both negative with start after end, which Redis checks before converting).
pub(super) fn range_bounds(start: i64, end: i64, len: u64) -> Option<(u64, u64)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    clamp_range(start, end, len)
}

/// Converts and clamps as `range_bounds`, without its early check (BITPOS's way).
pub(super) fn clamp_range(start: i64, end: i64, len: u64) -> Option<(u64, u64)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let from_end = |i: i64| if i < 0 { len.saturating_add(i) } else { i };
    let start = from_end(start).max(0);
    let end = from_end(end).max(0).min(len - 1);
    (len > 0 && start <= end).then_some((start as u64, end as u64))
}

/// GETRANGE key start end (and SUBSTR): the bytes in the range, inclusive; "" if none.
fn getrange(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let start = parse_i64(&argv[2]).ok_or_else(not_an_integer)?;
    let end = parse_i64(&argv[3]).ok_or_else(not_an_integer)?;
    let Some(v) = get_string(r, &argv[1])? else {
        return Ok(Reply::Bulk(Bytes::new()));
    };
    Ok(Reply::Bulk(
        match range_bounds(start, end, v.len() as u64) {
            Some((s, e)) => v.slice(s as usize..e as usize + 1),
            None => Bytes::new(),
        },
    ))
}

fn not_a_float() -> Reply {
    Reply::error("ERR value is not a valid float")
}

/// INCRBYFLOAT key increment: the stored value plus the increment in long double (see
/// `long_double`), stored and returned as Redis prints it. The TTL stays (Redis replicates
/// this as SET ... KEEPTTL). The result depends only on the stored bytes and the argument, so
/// every node stores the same.
fn incrbyfloat(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let meta = string_meta(w, key)?;
    let current = match &meta {
        None => Parsed::Finite(LongDouble::ZERO),
        Some(m) => LongDouble::parse(&m.body).ok_or_else(not_a_float)?,
    };
    let incr = LongDouble::parse(&argv[2]).ok_or_else(not_a_float)?;
    let sum = match (current, incr) {
        (Parsed::Finite(a), Parsed::Finite(b)) => a.checked_add(b),
        _ => None,
    };
    let Some(sum) = sum else {
        return Ok(Reply::error("ERR increment would produce NaN or Infinity"));
    };
    let text = Bytes::from(sum.to_redis_string());
    update_string(w, key, meta, text.clone())?;
    w.notify('$', "incrbyfloat", key);
    Ok(Reply::Bulk(text))
}

/// LCS's options.
#[derive(Default)]
struct LcsOptions {
    len: bool,
    idx: bool,
    with_match_len: bool,
    min_match_len: u64,
}

fn lcs_options(args: &[Bytes]) -> Result<LcsOptions, Reply> {
    let mut o = LcsOptions::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if is_word(a, "idx") {
            o.idx = true;
        } else if is_word(a, "len") {
            o.len = true;
        } else if is_word(a, "withmatchlen") {
            o.with_match_len = true;
        } else if is_word(a, "minmatchlen") && i + 1 < args.len() {
            let n = parse_i64(&args[i + 1]).ok_or_else(not_an_integer)?;
            o.min_match_len = n.max(0) as u64;
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    if o.idx && o.len {
        return Err(Reply::error(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    Ok(o)
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: the longest common subsequence
/// of two strings (missing keys are empty), its length, or the matching ranges, computed with
/// Redis's table and walked back the same way, so ties pick the same subsequence.
fn lcs(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let mut values = [Bytes::new(), Bytes::new()];
    for (slot, key) in values.iter_mut().zip(&argv[1..3]) {
        match r.meta(key)? {
            Some(m) if m.kind != KeyType::String => {
                return Ok(Reply::error(
                    "ERR The specified keys must contain string values",
                ));
            }
            Some(m) => *slot = m.body,
            None => {}
        }
    }
    let o = lcs_options(&argv[3..])?;
    let [a, b] = values;
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells.saturating_mul(4) > MAX_STRING as u64 {
        return Ok(Reply::error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let width = blen + 1;
    let mut table = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[alen * width + blen];
    if o.len && !o.idx {
        return Ok(Reply::Integer(i64::from(total)));
    }
    let mut result = vec![0u8; total as usize];
    let mut matches = Vec::new();
    let mut pos = total as usize;
    // The range being grown backwards: (a start, a end, b start, b end).
    let mut range: Option<(usize, usize, usize, usize)> = None;
    let (mut i, mut j) = (alen, blen);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[pos - 1] = a[i - 1];
            match &mut range {
                None => range = Some((i - 1, i - 1, j - 1, j - 1)),
                Some((a_start, _, b_start, _)) if *a_start == i && *b_start == j => {
                    *a_start -= 1;
                    *b_start -= 1;
                }
                Some(_) => emit = true,
            }
            if range.is_some_and(|(a_start, _, b_start, _)| a_start == 0 || b_start == 0) {
                emit = true;
            }
            pos -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = range.is_some();
        }
        if emit && let Some((a_start, a_end, b_start, b_end)) = range.take() {
            let match_len = (a_end - a_start + 1) as u64;
            if o.min_match_len == 0 || match_len >= o.min_match_len {
                let mut m = vec![
                    Reply::Array(vec![
                        Reply::Integer(a_start as i64),
                        Reply::Integer(a_end as i64),
                    ]),
                    Reply::Array(vec![
                        Reply::Integer(b_start as i64),
                        Reply::Integer(b_end as i64),
                    ]),
                ];
                if o.with_match_len {
                    m.push(Reply::Integer(match_len as i64));
                }
                matches.push(Reply::Array(m));
            }
        }
    }
    if o.idx {
        return Ok(Reply::Array(vec![
            Reply::bulk(Bytes::from_static(b"matches")),
            Reply::Array(matches),
            Reply::bulk(Bytes::from_static(b"len")),
            Reply::Integer(i64::from(total)),
        ]));
    }
    Ok(Reply::Bulk(result.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_clamp_as_redis() {
        // "foobar": the cases checked against redis-server's GETRANGE.
        assert_eq!(range_bounds(-5, -1, 6), Some((1, 5)));
        assert_eq!(range_bounds(0, -100, 6), Some((0, 0)));
        assert_eq!(range_bounds(-100, -200, 6), None);
        assert_eq!(range_bounds(-1, -5, 6), None);
        assert_eq!(range_bounds(5, 2, 6), None);
        assert_eq!(range_bounds(0, i64::MAX, 6), Some((0, 5)));
        assert_eq!(range_bounds(i64::MIN, i64::MAX, 6), Some((0, 5)));
        assert_eq!(range_bounds(0, -1, 0), None);
        // BITPOS converts without the early check.
        assert_eq!(clamp_range(-100, -200, 6), Some((0, 0)));
    }

    #[test]
    fn setrange_length_limit_is_the_512_mb_constant() {
        assert!(!exceeds_limit(536_870_911, 1));
        assert!(exceeds_limit(536_870_912, 1));
        assert!(exceeds_limit(i64::MAX as u64, 1));
    }

    #[test]
    fn keywords_compare_as_c_strings() {
        assert!(is_word(b"LEN", "len"));
        assert!(is_word(b"len\0junk", "len"));
        assert!(!is_word(b"lenx", "len"));
    }
}
