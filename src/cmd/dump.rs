//! DUMP and RESTORE: a key's value in redis-server 7.0's serialization (`crate::rdb`).
//!
//! DUMP is a read: the payload redis-server would give for the same value (see
//! `rdb::object` for how its encoding is chosen, and where only the bytes can differ).
//! RESTORE is a write: `prepare` checks the options and turns a relative TTL into an absolute
//! one on this node's clock; apply (on every node) checks the key, the TTL and the payload
//! in Redis's order, parses it (a pure function of the entry, so every node gets the same
//! value or the same error) and writes the value as rows through the usual views, so
//! keyspace notifications, WATCH and blocked clients see it like any other write.

use bytes::Bytes;

use super::{CmdError, CmdResult, Kind, Spec, is, not_an_integer, parse_i64, syntax_error};
use crate::kv::collection::Collection;
use crate::kv::list::{End, List};
use crate::kv::stream::{
    Consumer, Counters, Group, Nack, Stream, StreamId, decode_fields, encode_fields,
};
use crate::kv::zset::{ZSet, is_skiplist};
use crate::kv::{ApplyCtx, KeyRead, KeyType, WriteView, wall_clock_ms};
use crate::rdb::{self, RdbError, StreamConsumer, StreamGroup, StreamValue, Value};
use crate::resp::Reply;

pub const DUMP: Spec = Spec {
    name: "dump",
    arity: 2,
    kind: Kind::Read(dump),
    flags: &["readonly"],
    keys: (1, 1, 1),
};

pub const RESTORE: Spec = Spec {
    name: "restore",
    arity: -4,
    kind: Kind::Write {
        prepare: prepare_restore,
        apply: restore,
    },
    flags: &["write", "denyoom"],
    keys: (1, 1, 1),
};

/// `DUMP key`: the serialized value, or nil if the key is absent.
fn dump(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(meta) = r.meta(key)? else {
        return Ok(Reply::Nil);
    };
    let value = match meta.kind {
        KeyType::String => Value::String(meta.body.clone()),
        KeyType::Hash => Value::Hash(
            Collection::from_meta(key, meta)?
                .in_order(r)?
                .into_iter()
                .collect(),
        ),
        KeyType::Set => Value::Set(
            Collection::from_meta(key, meta)?
                .all(r)?
                .into_iter()
                .map(|(m, _)| m)
                .collect(),
        ),
        KeyType::List => {
            let list = List::from_meta(key, meta)?;
            let (head, tail) = list.bounds();
            let mut items = Vec::new();
            list.scan(r, head, tail, &mut |_, v| {
                items.push(Bytes::copy_from_slice(v));
                true
            })?;
            Value::List(items)
        }
        KeyType::ZSet => {
            let skiplist = is_skiplist(&meta);
            let z = ZSet::from_meta(key, meta)?;
            let mut members = Vec::new();
            z.scan_scores(r, None, false, &mut |s, m| {
                members.push((Bytes::copy_from_slice(m), s));
                true
            })?;
            Value::ZSet { members, skiplist }
        }
        KeyType::Stream => Value::Stream(Box::new(stream_value(r, key, meta)?)),
    };
    Ok(Reply::Bulk(Bytes::from(rdb::dump(&value))))
}

fn id(i: StreamId) -> (u64, u64) {
    (i.ms, i.seq)
}

/// A stream's entries, counters, groups, pending entries and consumers, in Redis's orders.
fn stream_value(
    r: &dyn KeyRead,
    key: &[u8],
    meta: crate::kv::Meta,
) -> Result<StreamValue, CmdError> {
    let s = Stream::from_meta(key, meta)?;
    let mut entries = Vec::new();
    let mut failed = None;
    s.range(
        r,
        StreamId::MIN,
        StreamId::MAX,
        false,
        &mut |i, raw| match decode_fields(raw) {
            Ok(pairs) => {
                entries.push((id(i), pairs));
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        },
    )?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let mut groups = Vec::new();
    for g in s.groups(r)? {
        let mut pel = Vec::new();
        s.pel_range(r, &g.name, StreamId::MIN, &mut |i, n| {
            pel.push((id(i), n.delivery_time, n.delivery_count));
            true
        })?;
        let mut consumers = Vec::new();
        for c in s.consumers(r, &g.name)? {
            let mut ids = Vec::new();
            s.consumer_pel_range(r, &g.name, &c.name, StreamId::MIN, &mut |i| {
                ids.push(id(i));
                true
            })?;
            consumers.push(StreamConsumer {
                name: c.name,
                seen_time: c.seen_time,
                pel: ids,
            });
        }
        groups.push(StreamGroup {
            name: g.name,
            last_id: id(g.last_id),
            entries_read: g.entries_read,
            pel,
            consumers,
        });
    }
    Ok(StreamValue {
        entries,
        length: s.c.length,
        last_id: id(s.c.last_id),
        first_id: id(s.c.first_id),
        max_deleted: id(s.c.max_deleted),
        entries_added: s.c.entries_added,
        groups,
    })
}

/// Writes a restored stream: entries as rows, counters, groups with their rows.
fn write_stream(w: &mut WriteView, key: &[u8], v: StreamValue) -> Result<(), CmdError> {
    let sid = |i: (u64, u64)| StreamId::new(i.0, i.1);
    let mut s = Stream::create(w, key);
    for (i, pairs) in &v.entries {
        s.put_entry(w, sid(*i), encode_fields(pairs));
    }
    s.c = Counters {
        length: v.length,
        last_id: sid(v.last_id),
        first_id: sid(v.first_id),
        max_deleted: sid(v.max_deleted),
        entries_added: v.entries_added,
        groups: v.groups.len() as u64,
    };
    for g in v.groups {
        s.put_group(
            w,
            &Group {
                name: g.name.clone(),
                last_id: sid(g.last_id),
                entries_read: g.entries_read,
                pel: g.pel.len() as u64,
                consumers: g.consumers.len() as u64,
            },
        );
        for c in &g.consumers {
            for i in &c.pel {
                if let Ok(at) = g.pel.binary_search_by(|p| p.0.cmp(i)) {
                    let (_, time, count) = g.pel[at];
                    let nack = Nack {
                        delivery_time: time,
                        delivery_count: count,
                        consumer: c.name.clone(),
                    };
                    s.put_nack(w, &g.name, sid(*i), &nack);
                }
            }
            s.put_consumer(
                w,
                &g.name,
                &Consumer {
                    name: c.name.clone(),
                    seen_time: c.seen_time,
                    pel: c.pel.len() as u64,
                },
            );
        }
    }
    s.save(w)?;
    Ok(())
}

/// RESTORE's options after the payload, as Redis reads them.
#[derive(Default)]
struct Options {
    replace: bool,
    absttl: bool,
    /// IDLETIME and FREQ: node-local access data (`crate::access`), set on each node as it
    /// applies the entry.
    idle: Option<u64>,
    freq: Option<u8>,
}

fn parse_options(args: &[Bytes]) -> Result<Options, Reply> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let more = i + 1 < args.len();
        if is(&args[i], "replace") {
            o.replace = true;
        } else if is(&args[i], "absttl") {
            o.absttl = true;
        } else if is(&args[i], "idletime") && more && o.freq.is_none() {
            let n = parse_i64(&args[i + 1]).ok_or_else(not_an_integer)?;
            if n < 0 {
                return Err(Reply::error("ERR Invalid IDLETIME value, must be >= 0"));
            }
            o.idle = Some(n as u64);
            i += 1;
        } else if is(&args[i], "freq") && more && o.idle.is_none() {
            let n = parse_i64(&args[i + 1]).ok_or_else(not_an_integer)?;
            let Ok(n) = u8::try_from(n) else {
                return Err(Reply::error(
                    "ERR Invalid FREQ value, must be >= 0 and <= 255",
                ));
            };
            o.freq = Some(n);
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    Ok(o)
}

/// Checks the options; a relative TTL becomes absolute (`ABSTTL`) on this node's clock.
/// IDLETIME and FREQ go into the entry, for each node's access data (`crate::access`). With
/// REPLACE the TTL and the payload are checked here too (footer, then a full parse), so a bad
/// one never reaches the log; without it they are left for apply, whose BUSYKEY check comes
/// first in Redis's order.
fn prepare_restore(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    let o = parse_options(&argv[4..])?;
    if o.replace {
        checked_ttl(&argv[2])?;
        load_payload(&argv[3])?;
    }
    let mut ttl = argv[2].clone();
    if !o.absttl
        && let Some(n) = parse_i64(&argv[2])
        && n > 0
    {
        ttl = Bytes::from(n.saturating_add(wall_clock_ms()).to_string());
    }
    let mut out = vec![argv[0].clone(), argv[1].clone(), ttl, argv[3].clone()];
    if o.replace {
        out.push(Bytes::from_static(b"REPLACE"));
    }
    out.push(Bytes::from_static(b"ABSTTL"));
    if let Some(idle) = o.idle {
        out.push(Bytes::from_static(b"IDLETIME"));
        out.push(Bytes::from(idle.to_string()));
    }
    if let Some(freq) = o.freq {
        out.push(Bytes::from_static(b"FREQ"));
        out.push(Bytes::from(freq.to_string()));
    }
    Ok(out)
}

fn checked_ttl(raw: &[u8]) -> Result<i64, Reply> {
    let ttl = parse_i64(raw).ok_or_else(not_an_integer)?;
    if ttl < 0 {
        return Err(Reply::error("ERR Invalid TTL value, must be >= 0"));
    }
    Ok(ttl)
}

/// The payload's value, or RESTORE's error for it.
fn load_payload(payload: &[u8]) -> Result<Value, Reply> {
    rdb::load(payload).map_err(|e| match e {
        RdbError::Footer => Reply::error("ERR DUMP payload version or checksum are wrong"),
        _ => Reply::error("ERR Bad data format"),
    })
}

fn restore(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let o = parse_options(&argv[4..])?;
    let key = &argv[1];
    if !o.replace && w.exists(key)? {
        return Ok(Reply::error("BUSYKEY Target key name already exists."));
    }
    let ttl = checked_ttl(&argv[2])?;
    let value = load_payload(&argv[3])?;
    let deleted = o.replace && w.delete(key)?;
    let expire_at = match (ttl, o.absttl) {
        (0, _) => None,
        (t, true) => Some(t),
        (t, false) => Some(t.saturating_add(w.now_ms())),
    };
    if let Some(at) = expire_at
        && at <= w.now_ms()
    {
        if deleted {
            w.notify('g', "del", key);
        }
        return Ok(Reply::ok());
    }
    write_value(w, key, value)?;
    if let Some(at) = expire_at
        && let Some(mut meta) = w.meta(key)?
    {
        meta.expire_at = Some(at);
        w.put_meta(key, &meta, None)?;
    }
    // As Redis's `objectSetLRUOrLFU`: FREQ under an LFU policy, IDLETIME under any other.
    let lfu = crate::evict::policy().lfu();
    crate::access::restore(w.db(), key, o.idle.filter(|_| !lfu), o.freq.filter(|_| lfu));
    w.notify('g', "restore", key);
    Ok(Reply::ok())
}

/// Writes a parsed value as a new incarnation of `key` (absent by now), members as rows.
fn write_value(w: &mut WriteView, key: &[u8], value: Value) -> Result<(), CmdError> {
    match value {
        Value::String(s) => w.set_string(key, s, None)?,
        Value::Hash(pairs) => {
            let mut c = Collection::create(w, key, KeyType::Hash);
            for (f, v) in pairs {
                c.put(w, &f, v)?;
            }
            c.save(w)?;
        }
        Value::Set(members) => {
            let mut c = Collection::create(w, key, KeyType::Set);
            for m in members {
                c.put(w, &m, Bytes::new())?;
            }
            c.save(w)?;
        }
        Value::List(items) => {
            let mut l = List::create(w, key);
            for item in items {
                l.push(w, End::Right, item)?;
            }
            l.save(w)?;
        }
        Value::ZSet { members, .. } => {
            // The encoding flag follows the content, as Redis converts on load.
            let mut z = ZSet::create(w, key);
            for (m, s) in members {
                z.insert(w, &m, s)?;
            }
            z.save(w)?;
        }
        Value::Stream(s) => write_stream(w, key, *s)?,
    }
    Ok(())
}
