//! The per-type object encodings of a DUMP payload: what redis-server 7.0 writes for each
//! value (`dump_value`), and every encoding it can read back (`load_value`).
//!
//! Redis picks a value's encoding from its history; kvd keeps rows, so DUMP picks what
//! redis-server would have for the same value built by plain appends, with its default
//! limits: strings as `write_string`; lists as quicklist 2 (listpack nodes of at most 8 kB,
//! `list-max-listpack-size -2`, filled as RPUSH fills them); sets as an intset (all
//! integers, at most 512) or a plain set; hashes as a listpack (at most 128 fields, none
//! longer than 64 bytes) or a plain hash; sorted sets as a listpack or, once kvd's skiplist
//! flag is set, as ZSET_2 (members from the highest score down, as Redis walks its skiplist).
//! Where Redis's order is its hash table's (big hashes and sets) or insertion order (small
//! hashes), kvd writes members in byte order: the same value, other bytes.

use std::collections::HashSet;

use bytes::Bytes;

use super::length::{Cursor, read_count, write_length};
use super::stream::{self, StreamValue};
use super::string::{
    as_integer, read_binary_double, read_string, read_text_double, write_binary_double,
    write_string,
};
use super::{RdbError, intset, listpack, ziplist, zipmap};

pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_HASH_ZIPMAP: u8 = 9;
pub const TYPE_LIST_ZIPLIST: u8 = 10;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
pub const TYPE_HASH_ZIPLIST: u8 = 13;
pub const TYPE_LIST_QUICKLIST: u8 = 14;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;

/// Redis 7.0's defaults for the encodings DUMP imitates.
const LIST_NODE_BYTES: usize = 8192;
/// What `_quicklistNodeAllowInsert` adds to an element's length to estimate its entry.
const LIST_ENTRY_OVERHEAD: usize = 8;
const SET_MAX_INTSET_ENTRIES: usize = 512;
const HASH_MAX_LISTPACK_ENTRIES: usize = 128;
const HASH_MAX_LISTPACK_VALUE: usize = 64;

const QUICKLIST_NODE_PLAIN: u64 = 1;
const QUICKLIST_NODE_PACKED: u64 = 2;

/// A value as DUMP writes it and RESTORE reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(Bytes),
    /// Elements head to tail.
    List(Vec<Bytes>),
    Set(Vec<Bytes>),
    /// (field, value) pairs, no field twice.
    Hash(Vec<(Bytes, Bytes)>),
    /// Members in (score, member) order for DUMP (any order from RESTORE), no NaN;
    /// `skiplist`: Redis would hold it as a skiplist.
    ZSet {
        members: Vec<(Bytes, f64)>,
        skiplist: bool,
    },
    Stream(Box<StreamValue>),
}

/// The type byte and the serialized object (no footer).
pub fn dump_value(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match v {
        Value::String(s) => {
            out.push(TYPE_STRING);
            write_string(&mut out, s);
        }
        Value::List(items) => {
            out.push(TYPE_LIST_QUICKLIST_2);
            let nodes = list_nodes(items);
            write_length(&mut out, nodes.len() as u64);
            for node in nodes {
                write_length(&mut out, QUICKLIST_NODE_PACKED);
                write_string(&mut out, &node);
            }
        }
        Value::Set(members) => {
            let ints: Option<Vec<i64>> = members.iter().map(|m| as_integer(m)).collect();
            match ints {
                Some(mut ints) if ints.len() <= SET_MAX_INTSET_ENTRIES => {
                    ints.sort_unstable();
                    out.push(TYPE_SET_INTSET);
                    write_string(&mut out, &intset::encode(&ints));
                }
                _ => {
                    out.push(TYPE_SET);
                    write_length(&mut out, members.len() as u64);
                    for m in members {
                        write_string(&mut out, m);
                    }
                }
            }
        }
        Value::Hash(pairs) => {
            let small = pairs.len() <= HASH_MAX_LISTPACK_ENTRIES
                && pairs.iter().all(|(f, v)| {
                    f.len() <= HASH_MAX_LISTPACK_VALUE && v.len() <= HASH_MAX_LISTPACK_VALUE
                });
            if small {
                out.push(TYPE_HASH_LISTPACK);
                let mut lp = listpack::Builder::new();
                for (f, v) in pairs {
                    lp.push(f);
                    lp.push(v);
                }
                write_string(&mut out, &lp.finish());
            } else {
                out.push(TYPE_HASH);
                write_length(&mut out, pairs.len() as u64);
                for (f, v) in pairs {
                    write_string(&mut out, f);
                    write_string(&mut out, v);
                }
            }
        }
        Value::ZSet { members, skiplist } => {
            if *skiplist {
                out.push(TYPE_ZSET_2);
                write_length(&mut out, members.len() as u64);
                for (m, s) in members.iter().rev() {
                    write_string(&mut out, m);
                    write_binary_double(&mut out, *s);
                }
            } else {
                out.push(TYPE_ZSET_LISTPACK);
                let mut lp = listpack::Builder::new();
                for (m, s) in members {
                    lp.push(m);
                    lp.push(score_text(*s).as_bytes());
                }
                write_string(&mut out, &lp.finish());
            }
        }
        Value::Stream(s) => {
            out.push(TYPE_STREAM_LISTPACKS_2);
            stream::dump(s, &mut out);
        }
    }
    out
}

/// A score as a sorted-set listpack holds it (Redis's `d2string`): integers in
/// (-2^52, 2^52) in integer form, others as `%.17g`.
fn score_text(s: f64) -> String {
    const LIMIT: f64 = 4_503_599_627_370_496.0;
    if s.is_finite() && s != 0.0 && s > -LIMIT && s < LIMIT && s == s.trunc() {
        return format!("{}", s as i64);
    }
    crate::resp::reply::format_double(s)
}

/// The list's quicklist nodes (listpacks) as RPUSH fills them: a node takes an element while
/// its size plus the element plus the estimated overhead stays within 8 kB.
fn list_nodes(items: &[Bytes]) -> Vec<Vec<u8>> {
    let mut nodes = Vec::new();
    let mut node: Option<listpack::Builder> = None;
    for item in items {
        if let Some(n) = &node
            && n.bytes() + item.len() + LIST_ENTRY_OVERHEAD > LIST_NODE_BYTES
            && let Some(full) = node.take()
        {
            nodes.push(full.finish());
        }
        node.get_or_insert_with(listpack::Builder::new).push(item);
    }
    if let Some(n) = node {
        nodes.push(n.finish());
    }
    nodes
}

/// Reads an object of type `kind` (the byte before it), as redis-server 7.0 loads them;
/// an empty collection, a duplicate member or field, a NaN score are format errors, as there.
pub fn load_value(kind: u8, c: &mut Cursor) -> Result<Value, RdbError> {
    let value = match kind {
        TYPE_STRING => Value::String(read_string(c)?),
        TYPE_LIST => {
            let n = read_count(c, 1)?;
            Value::List((0..n).map(|_| read_string(c)).collect::<Result<_, _>>()?)
        }
        TYPE_SET => {
            let n = read_count(c, 1)?;
            Value::Set((0..n).map(|_| read_string(c)).collect::<Result<_, _>>()?)
        }
        TYPE_ZSET | TYPE_ZSET_2 => {
            let n = read_count(c, 2)?;
            let mut members = Vec::new();
            for _ in 0..n {
                let m = read_string(c)?;
                let s = if kind == TYPE_ZSET {
                    read_text_double(c)?
                } else {
                    read_binary_double(c)?
                };
                members.push((m, s));
            }
            Value::ZSet {
                members,
                skiplist: true,
            }
        }
        TYPE_HASH => {
            let n = read_count(c, 2)?;
            let mut pairs = Vec::new();
            for _ in 0..n {
                pairs.push((read_string(c)?, read_string(c)?));
            }
            Value::Hash(pairs)
        }
        TYPE_HASH_ZIPMAP => Value::Hash(zipmap::decode(&read_string(c)?)?),
        TYPE_LIST_ZIPLIST => Value::List(ziplist::decode(&read_string(c)?)?),
        TYPE_SET_INTSET => Value::Set(intset::decode(&read_string(c)?)?),
        TYPE_ZSET_ZIPLIST => zset_of(ziplist::decode(&read_string(c)?)?)?,
        TYPE_HASH_ZIPLIST => Value::Hash(pairs_of(ziplist::decode(&read_string(c)?)?)?),
        TYPE_HASH_LISTPACK => Value::Hash(pairs_of(listpack::decode(&read_string(c)?)?)?),
        TYPE_ZSET_LISTPACK => zset_of(listpack::decode(&read_string(c)?)?)?,
        TYPE_LIST_QUICKLIST => {
            let n = read_count(c, 1)?;
            let mut items = Vec::new();
            for _ in 0..n {
                items.extend(ziplist::decode(&read_string(c)?)?);
            }
            Value::List(items)
        }
        TYPE_LIST_QUICKLIST_2 => {
            let n = read_count(c, 2)?;
            let mut items = Vec::new();
            for _ in 0..n {
                let container = super::length::read_length(c)?;
                let node = read_string(c)?;
                match container {
                    QUICKLIST_NODE_PLAIN => items.push(node),
                    QUICKLIST_NODE_PACKED => items.extend(listpack::decode(&node)?),
                    _ => return Err(RdbError::Format("quicklist container")),
                }
            }
            Value::List(items)
        }
        TYPE_STREAM_LISTPACKS_2 => Value::Stream(Box::new(stream::load(c, true)?)),
        TYPE_STREAM_LISTPACKS => Value::Stream(Box::new(stream::load(c, false)?)),
        _ => return Err(RdbError::Format("unknown object type")),
    };
    check(&value)?;
    Ok(value)
}

fn pairs_of(items: Vec<Bytes>) -> Result<Vec<(Bytes, Bytes)>, RdbError> {
    if !items.len().is_multiple_of(2) {
        return Err(RdbError::Format("odd number of elements"));
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    Ok(out)
}

fn zset_of(items: Vec<Bytes>) -> Result<Value, RdbError> {
    let mut members = Vec::new();
    for (m, s) in pairs_of(items)? {
        let score = std::str::from_utf8(&s)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or(RdbError::Format("bad score"))?;
        members.push((m, score));
    }
    Ok(Value::ZSet {
        members,
        skiplist: false,
    })
}

/// What Redis refuses in any encoding: empty collections, duplicates, NaN scores.
fn check(v: &Value) -> Result<(), RdbError> {
    fn distinct<'a>(it: impl Iterator<Item = &'a Bytes>) -> bool {
        let mut seen = HashSet::new();
        it.into_iter().all(|m| seen.insert(m))
    }
    let ok = match v {
        Value::String(_) | Value::Stream(_) => true,
        Value::List(items) => !items.is_empty(),
        Value::Set(m) => !m.is_empty() && distinct(m.iter()),
        Value::Hash(p) => !p.is_empty() && distinct(p.iter().map(|(f, _)| f)),
        Value::ZSet { members, .. } => {
            !members.is_empty()
                && members.iter().all(|(_, s)| !s.is_nan())
                && distinct(members.iter().map(|(m, _)| m))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(RdbError::Format("empty, duplicate or NaN"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: Value) -> Value {
        let bytes = dump_value(&v);
        let mut c = Cursor::new(&bytes[1..]);
        let back = load_value(bytes[0], &mut c).expect("loads");
        assert!(c.is_empty());
        back
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn every_type_round_trips() {
        let list: Vec<Bytes> = (0..3000).map(|i| b(&format!("element-{i}"))).collect();
        assert_eq!(round_trip(Value::List(list.clone())), Value::List(list));
        let ints = Value::Set(vec![b("1"), b("-7"), b("300")]);
        let Value::Set(mut back) = round_trip(ints) else {
            panic!()
        };
        back.sort();
        assert_eq!(back, vec![b("-7"), b("1"), b("300")]);
        let big: Vec<(Bytes, Bytes)> = (0..200).map(|i| (b(&format!("f{i}")), b("v"))).collect();
        assert_eq!(round_trip(Value::Hash(big.clone())), Value::Hash(big));
        let z = vec![(b("a"), 1.5), (b("b"), 2.0), (b("c"), -0.0)];
        for skiplist in [false, true] {
            let Value::ZSet { members, .. } = round_trip(Value::ZSet {
                members: z.clone(),
                skiplist,
            }) else {
                panic!()
            };
            let mut members = members;
            members.sort_by(|x, y| x.0.cmp(&y.0));
            assert_eq!(members.len(), 3);
            assert_eq!(members[1].1, 2.0);
        }
    }

    #[test]
    fn score_texts() {
        assert_eq!(score_text(1.0), "1");
        assert_eq!(score_text(-3.0), "-3");
        assert_eq!(score_text(1.5), "1.5");
        assert_eq!(score_text(0.0), "0");
        assert_eq!(score_text(-0.0), "-0");
        assert_eq!(score_text(f64::INFINITY), "inf");
        assert_eq!(score_text(1e20), "1e+20");
    }

    #[test]
    fn refuses_empty_and_duplicates() {
        let mut dup = vec![TYPE_SET, 2];
        write_string(&mut dup, b"x");
        write_string(&mut dup, b"x");
        assert!(load_value(dup[0], &mut Cursor::new(&dup[1..])).is_err());
        assert!(load_value(TYPE_LIST, &mut Cursor::new(&[0])).is_err());
        assert!(load_value(200, &mut Cursor::new(&[0])).is_err());
    }
}
