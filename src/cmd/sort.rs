//! SORT and SORT_RO over lists, sets and sorted sets, as redis-server 7.0's sort.c: BY (a
//! pattern naming other keys or hash fields, or one without `*` for no sorting), LIMIT, GET
//! (`#`, patterns, hash fields), ASC/DESC, ALPHA, STORE. SORT may STORE, so it is a write
//! (its BY/GET lookups read the replicated state inside apply); SORT_RO is a read.

use bytes::Bytes;

use super::zset::strtod;
use super::{
    CmdError, CmdResult, Kind, Spec, is, not_an_integer, parse_i64, syntax_error, wrong_type,
};
use crate::kv::collection::Collection;
use crate::kv::list::{End, List};
use crate::kv::zset::ZSet;
use crate::kv::{ApplyCtx, KeyRead, KeyType, WriteView};
use crate::resp::Reply;

struct Request {
    by: Option<Bytes>,
    dontsort: bool,
    limit: Option<(i64, i64)>,
    get: Vec<Bytes>,
    desc: bool,
    alpha: bool,
    store: Option<Bytes>,
}

fn parse(argv: &[Bytes], read_only: bool) -> Result<Request, Reply> {
    let mut q = Request {
        by: None,
        dontsort: false,
        limit: None,
        get: Vec::new(),
        desc: false,
        alpha: false,
        store: None,
    };
    let mut j = 2;
    while j < argv.len() {
        let a = &argv[j];
        let left = argv.len() - j - 1;
        if is(a, "asc") {
            q.desc = false;
        } else if is(a, "desc") {
            q.desc = true;
        } else if is(a, "alpha") {
            q.alpha = true;
        } else if is(a, "limit") && left >= 2 {
            let start = parse_i64(&argv[j + 1]).ok_or_else(not_an_integer)?;
            let count = parse_i64(&argv[j + 2]).ok_or_else(not_an_integer)?;
            q.limit = Some((start, count));
            j += 2;
        } else if is(a, "store") && left >= 1 && !read_only {
            q.store = Some(argv[j + 1].clone());
            j += 1;
        } else if is(a, "by") && left >= 1 {
            let p = argv[j + 1].clone();
            q.dontsort = !p.contains(&b'*');
            q.by = Some(p);
            j += 1;
        } else if is(a, "get") && left >= 1 {
            q.get.push(argv[j + 1].clone());
            j += 1;
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    Ok(q)
}

/// Redis's lookupKeyByPattern: `#` is the element itself; otherwise the first `*` is replaced
/// by the element and the key read as a string, or (after `->`) as a hash field. Missing keys
/// and keys of another type give `None`.
fn lookup(r: &dyn KeyRead, pattern: &[u8], elem: &[u8]) -> Result<Option<Bytes>, CmdError> {
    if pattern == b"#" {
        return Ok(Some(Bytes::copy_from_slice(elem)));
    }
    let Some(star) = pattern.iter().position(|&c| c == b'*') else {
        return Ok(None);
    };
    let after = &pattern[star + 1..];
    let (rest, field) = match after.windows(2).position(|w| w == b"->") {
        Some(f) if f + 2 < after.len() => (&after[..f], Some(&after[f + 2..])),
        _ => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(rest);
    let Some(meta) = r.meta(&key)? else {
        return Ok(None);
    };
    match field {
        None if meta.kind == KeyType::String => Ok(Some(meta.body)),
        Some(f) if meta.kind == KeyType::Hash => Ok(Collection::from_meta(&key, meta)?.get(r, f)?),
        _ => Ok(None),
    }
}

/// The elements of the key to sort, in its own order (`None`: WRONGTYPE).
fn elements(r: &dyn KeyRead, key: &[u8]) -> Result<Option<(KeyType, Vec<Bytes>)>, CmdError> {
    let Some(meta) = r.meta(key)? else {
        return Ok(Some((KeyType::List, Vec::new())));
    };
    let mut out = Vec::new();
    let kind = meta.kind;
    match kind {
        KeyType::List => {
            List::from_meta(key, meta)?.scan(r, i64::MIN, i64::MAX, &mut |_, v| {
                out.push(Bytes::copy_from_slice(v));
                true
            })?;
        }
        KeyType::Set => {
            out = Collection::from_meta(key, meta)?
                .all(r)?
                .into_iter()
                .map(|(m, _)| m)
                .collect();
        }
        KeyType::ZSet => {
            ZSet::from_meta(key, meta)?.scan_scores(r, None, false, &mut |_, m| {
                out.push(Bytes::copy_from_slice(m));
                true
            })?;
        }
        _ => return Ok(None),
    }
    Ok(Some((kind, out)))
}

/// A weight as sort.c reads it: `strtod` of the whole text (white space before it, an empty
/// text is 0); `None` if it is not a number.
fn weight(b: &[u8]) -> Option<f64> {
    let (v, used) = strtod(b);
    (used == b.len() && !v.is_nan()).then_some(v)
}

enum Outcome {
    Reply(Reply),
    Store(Bytes, Vec<Bytes>),
}

fn sort(r: &dyn KeyRead, argv: &[Bytes], read_only: bool) -> Result<Outcome, CmdError> {
    let mut q = parse(argv, read_only)?;
    let Some((kind, mut elems)) = elements(r, &argv[1])? else {
        return Err(wrong_type().into());
    };
    // A set has no order of its own in Redis: sorted for STORE, so the result is the same.
    if q.dontsort && kind == KeyType::Set && q.store.is_some() {
        q.dontsort = false;
        q.alpha = true;
        q.by = None;
    }
    if q.dontsort {
        if q.desc && kind != KeyType::Set {
            elems.reverse();
        }
    } else {
        // (element, numeric weight, alpha weight)
        let mut items: Vec<(Bytes, f64, Option<Bytes>)> = Vec::with_capacity(elems.len());
        for e in elems {
            let by = match &q.by {
                Some(p) => lookup(r, p, &e)?,
                None => Some(e.clone()),
            };
            let mut score = 0.0;
            if !q.alpha
                && let Some(v) = &by
            {
                score = weight(v).ok_or_else(|| {
                    Reply::error("ERR One or more scores can't be converted into double")
                })?;
            }
            items.push((e, score, by));
        }
        let alpha = q.alpha;
        let by_pattern = q.by.is_some();
        items.sort_by(|a, b| {
            let cmp = if !alpha {
                a.1.partial_cmp(&b.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.0.cmp(&b.0))
            } else if by_pattern {
                match (&a.2, &b.2) {
                    (Some(x), Some(y)) => c_str(x).cmp(c_str(y)),
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                }
            } else {
                a.0.cmp(&b.0)
            };
            if q.desc { cmp.reverse() } else { cmp }
        });
        elems = items.into_iter().map(|i| i.0).collect();
    }
    let len = elems.len() as i64;
    let (mut start, mut end) = match q.limit {
        Some((s, c)) => {
            let s = s.max(0);
            (
                s,
                if c < 0 {
                    len - 1
                } else {
                    s.saturating_add(c - 1)
                },
            )
        }
        None => (0, len - 1),
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    let picked: &[Bytes] = if start >= 0 && end >= start {
        &elems[start as usize..=end as usize]
    } else {
        &[]
    };
    let mut out: Vec<Option<Bytes>> = Vec::new();
    for e in picked {
        if q.get.is_empty() {
            out.push(Some(e.clone()));
        }
        for g in &q.get {
            out.push(lookup(r, g, e)?);
        }
    }
    Ok(match q.store {
        Some(dst) => Outcome::Store(
            dst,
            out.into_iter().map(Option::unwrap_or_default).collect(),
        ),
        None => Outcome::Reply(Reply::Array(
            out.into_iter()
                .map(|v| v.map_or(Reply::Nil, Reply::Bulk))
                .collect(),
        )),
    })
}

/// A string as `strcmp` sees it (up to its first NUL).
fn c_str(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

fn sort_write(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    match sort(w, argv, false)? {
        Outcome::Reply(reply) => Ok(reply),
        Outcome::Store(dst, values) => {
            let existed = w.delete(&dst)?;
            let n = values.len() as i64;
            if values.is_empty() {
                if existed {
                    w.notify('g', "del", &dst);
                }
                return Ok(Reply::Integer(0));
            }
            let mut list = List::create(w, &dst);
            for v in values {
                list.push(w, End::Right, v)?;
            }
            list.save(w)?;
            w.notify('l', "sortstore", &dst);
            Ok(Reply::Integer(n))
        }
    }
}

fn sort_ro(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    match sort(r, argv, true)? {
        Outcome::Reply(reply) => Ok(reply),
        Outcome::Store(..) => Ok(syntax_error()),
    }
}

pub const SORT: Spec = Spec {
    name: "sort",
    arity: -2,
    kind: Kind::Write {
        prepare: Ok,
        apply: sort_write,
    },
    flags: &[],
    keys: (1, 1, 1),
};

pub const SORT_RO: Spec = Spec {
    name: "sort_ro",
    arity: -2,
    kind: Kind::Read(sort_ro),
    flags: &[],
    keys: (1, 1, 1),
};
