//! Streams on rows: a stream is a metadata row (`KeyType::Stream`) whose body holds its
//! counters, one member row per entry, and rows of its own family (`FAMILY_STREAM`) for
//! consumer groups, consumers and pending entries. So:
//! - an entry is a member row whose member is its 16-byte big-endian ID (ms, seq): XRANGE and
//!   XREVRANGE are one ordered scan, XADD and XDEL one lookup and one write;
//! - a group, a consumer and a pending entry are one row each: XACK or XCLAIM of one entry is
//!   a few lookups whatever the size of the group's pending list, which is never one value;
//! - deleting or overwriting the key replaces its metadata row only (the version bump of every
//!   collection): entries and group rows of the old version go through `crate::reclaim`.
//!
//! Stream rows (`06 db len(key) key version kind ...`, see `encoding::stream_prefix`):
//!
//! | kind | rest of the table key | value |
//! |---|---|---|
//! | `01` group | name | last delivered ID (16), entries-read (i64, -1: unknown), PEL size (u64), consumers (u64) |
//! | `02` consumer | len(group) u32, group, name | seen-time (i64 ms), PEL size (u64) |
//! | `03` group PEL | len(group) u32, group, ID (16) | delivery time (i64 ms), delivery count (u64), consumer name |
//! | `04` consumer PEL | len(group) u32, group, len(consumer) u32, consumer, ID (16) | empty |
//!
//! Every time stored here (consumers' seen-time, delivery times) is the applying entry's time
//! (`WriteView::now_ms`), so every node stores the same bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::encoding::{self, KeyType, Meta};
use super::view::{KeyRead, WriteView};
use crate::store::StoreError;

/// A stream entry ID: milliseconds and sequence, ordered as (ms, seq).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// Its 16-byte big-endian form (the member of its row: rows sort as IDs do).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<StreamId> {
        let ms = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let seq = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
        Some(StreamId { ms, seq })
    }

    /// The next ID (`None` past the last possible one).
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous ID (`None` before 0-0).
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The counters a stream's metadata body holds (72 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted: StreamId,
    pub entries_added: u64,
    pub groups: u64,
}

const BODY_LEN: usize = 8 + 16 * 3 + 8 + 8;

impl Counters {
    fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(BODY_LEN);
        out.put_u64(self.length);
        out.put_slice(&self.last_id.to_bytes());
        out.put_slice(&self.first_id.to_bytes());
        out.put_slice(&self.max_deleted.to_bytes());
        out.put_u64(self.entries_added);
        out.put_u64(self.groups);
        out.freeze()
    }

    fn decode(b: &[u8]) -> Result<Counters, StoreError> {
        let bad = || StoreError::corrupt("stream metadata", "bad body");
        if b.len() != BODY_LEN {
            return Err(bad());
        }
        let u = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
        let id = |at: usize| StreamId::from_bytes(&b[at..at + 16]).ok_or_else(bad);
        Ok(Counters {
            length: u(0),
            last_id: id(8)?,
            first_id: id(24)?,
            max_deleted: id(40)?,
            entries_added: u(56),
            groups: u(64),
        })
    }
}

/// An entry's field/value pairs as its row's value: count (u32), then each string as
/// length (u32) and bytes.
pub fn encode_fields(pairs: &[Bytes]) -> Bytes {
    let size: usize = pairs.iter().map(|p| 4 + p.len()).sum();
    let mut out = BytesMut::with_capacity(4 + size);
    out.put_u32(u32::try_from(pairs.len() / 2).unwrap_or(u32::MAX));
    for p in pairs {
        out.put_u32(u32::try_from(p.len()).unwrap_or(u32::MAX));
        out.put_slice(p);
    }
    out.freeze()
}

/// The strings of an entry's value (fields and values alternating).
pub fn decode_fields(raw: &[u8]) -> Result<Vec<Bytes>, StoreError> {
    let bad = || StoreError::corrupt("stream entry", "truncated");
    let n = u32::from_be_bytes(
        raw.get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let mut out = Vec::with_capacity((n as usize).min(1 << 16) * 2);
    let mut at = 4;
    for _ in 0..u64::from(n) * 2 {
        let len = u32::from_be_bytes(
            raw.get(at..at + 4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ) as usize;
        at += 4;
        out.push(Bytes::copy_from_slice(
            raw.get(at..at + len).ok_or_else(bad)?,
        ));
        at += len;
    }
    Ok(out)
}

/// A consumer group, as its row holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: Bytes,
    pub last_id: StreamId,
    /// The logical read counter; -1 when unknown (Redis's `SCG_INVALID_ENTRIES_READ`).
    pub entries_read: i64,
    pub pel: u64,
    pub consumers: u64,
}

impl Group {
    fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(40);
        out.put_slice(&self.last_id.to_bytes());
        out.put_i64(self.entries_read);
        out.put_u64(self.pel);
        out.put_u64(self.consumers);
        out.freeze()
    }

    fn decode(name: &[u8], b: &[u8]) -> Result<Group, StoreError> {
        let bad = || StoreError::corrupt("stream group", "bad row");
        if b.len() != 40 {
            return Err(bad());
        }
        let u = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
        Ok(Group {
            name: Bytes::copy_from_slice(name),
            last_id: StreamId::from_bytes(b).ok_or_else(bad)?,
            entries_read: u(16) as i64,
            pel: u(24),
            consumers: u(32),
        })
    }
}

/// A consumer of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    pub name: Bytes,
    pub seen_time: i64,
    pub pel: u64,
}

impl Consumer {
    fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(16);
        out.put_i64(self.seen_time);
        out.put_u64(self.pel);
        out.freeze()
    }

    fn decode(name: &[u8], b: &[u8]) -> Result<Consumer, StoreError> {
        if b.len() != 16 {
            return Err(StoreError::corrupt("stream consumer", "bad row"));
        }
        Ok(Consumer {
            name: Bytes::copy_from_slice(name),
            seen_time: i64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8])),
            pel: u64::from_be_bytes(b[8..16].try_into().unwrap_or([0; 8])),
        })
    }
}

/// A pending entry of a group (Redis's NACK): who has it, when it was last delivered, how
/// many times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    pub delivery_time: i64,
    pub delivery_count: u64,
    pub consumer: Bytes,
}

impl Nack {
    fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(16 + self.consumer.len());
        out.put_i64(self.delivery_time);
        out.put_u64(self.delivery_count);
        out.put_slice(&self.consumer);
        out.freeze()
    }

    fn decode(b: &[u8]) -> Result<Nack, StoreError> {
        if b.len() < 16 {
            return Err(StoreError::corrupt("stream pending entry", "bad row"));
        }
        Ok(Nack {
            delivery_time: i64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8])),
            delivery_count: u64::from_be_bytes(b[8..16].try_into().unwrap_or([0; 8])),
            consumer: Bytes::copy_from_slice(&b[16..]),
        })
    }
}

const KIND_GROUP: u8 = 1;
const KIND_CONSUMER: u8 = 2;
const KIND_PEL: u8 = 3;
const KIND_CONSUMER_PEL: u8 = 4;

fn put_name(out: &mut BytesMut, name: &[u8]) {
    out.put_u32(u32::try_from(name.len()).unwrap_or(u32::MAX));
    out.put_slice(name);
}

/// One stream key within one command: its metadata and counters.
#[derive(Clone, Debug)]
pub struct Stream {
    key: Bytes,
    meta: Meta,
    pub c: Counters,
    old_expiry: Option<i64>,
}

impl Stream {
    /// The live stream at `key` (`Err(None)`-free: the caller checked the type).
    pub fn from_meta(key: &[u8], meta: Meta) -> Result<Stream, StoreError> {
        Ok(Stream {
            key: Bytes::copy_from_slice(key),
            c: Counters::decode(&meta.body)?,
            old_expiry: meta.expire_at,
            meta,
        })
    }

    /// A new, empty stream at `key` (written by `save`).
    pub fn create(w: &mut WriteView, key: &[u8]) -> Stream {
        Stream {
            key: Bytes::copy_from_slice(key),
            meta: Meta {
                kind: KeyType::Stream,
                expire_at: None,
                version: w.new_version(),
                modified: w.index(),
                body: Bytes::new(),
            },
            c: Counters::default(),
            old_expiry: None,
        }
    }

    pub fn key(&self) -> &Bytes {
        &self.key
    }

    /// Writes the metadata (counters, `modified`) back; an empty stream stays, as in Redis.
    pub fn save(&mut self, w: &mut WriteView) -> Result<(), StoreError> {
        self.meta.body = self.c.encode();
        self.meta.modified = w.index();
        w.put_meta(&self.key, &self.meta, self.old_expiry)?;
        self.old_expiry = self.meta.expire_at;
        Ok(())
    }

    fn entry_row(&self, db: u8, id: StreamId) -> Bytes {
        encoding::member_key(db, &self.key, self.meta.version, &id.to_bytes())
    }

    fn rows(&self, db: u8, kind: u8) -> BytesMut {
        let mut p = encoding::stream_prefix(db, &self.key, self.meta.version);
        p.put_u8(kind);
        p
    }

    /// An entry's raw value (`decode_fields`), if it exists.
    pub fn entry(&self, r: &dyn KeyRead, id: StreamId) -> Result<Option<Bytes>, StoreError> {
        r.raw(&self.entry_row(r.db(), id))
    }

    /// Adds an entry row (the caller keeps the counters).
    pub fn put_entry(&self, w: &mut WriteView, id: StreamId, value: Bytes) {
        let row = self.entry_row(w.db(), id);
        w.put_raw(&row, value);
    }

    /// Removes an entry row; true if it existed (the caller keeps the counters).
    pub fn delete_entry(&self, w: &mut WriteView, id: StreamId) -> Result<bool, StoreError> {
        let row = self.entry_row(w.db(), id);
        w.delete_raw(&row)
    }

    /// Visits entries with IDs in `[lo, hi]`, ascending (or descending if `rev`); `f` gets
    /// the ID and raw value and returns false to stop.
    pub fn range(
        &self,
        r: &dyn KeyRead,
        lo: StreamId,
        hi: StreamId,
        rev: bool,
        f: &mut dyn FnMut(StreamId, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if lo > hi {
            return Ok(());
        }
        let prefix = encoding::member_prefix(r.db(), &self.key, self.meta.version);
        let skip = prefix.len();
        let mut from = prefix.clone();
        from.put_slice(&lo.to_bytes());
        let to = match hi.next() {
            Some(n) => {
                let mut to = prefix.clone();
                to.put_slice(&n.to_bytes());
                to.to_vec()
            }
            None => encoding::prefix_end(&prefix).unwrap_or_else(|| vec![0xff; skip + 17]),
        };
        let mut visit = |k: &[u8], v: &[u8]| match StreamId::from_bytes(&k[skip..]) {
            Some(id) => f(id, v),
            None => true,
        };
        if rev {
            r.scan_raw_rev(&from, &to, &mut visit)
        } else {
            r.scan_raw(&from, &to, &mut visit)
        }
    }

    /// The first (or last, if `rev`) entry at or after `lo` (at or before `hi`).
    pub fn edge(
        &self,
        r: &dyn KeyRead,
        rev: bool,
    ) -> Result<Option<(StreamId, Bytes)>, StoreError> {
        let mut out = None;
        self.range(r, StreamId::MIN, StreamId::MAX, rev, &mut |id, v| {
            out = Some((id, Bytes::copy_from_slice(v)));
            false
        })?;
        Ok(out)
    }

    // Consumer groups.

    fn group_row(&self, db: u8, name: &[u8]) -> BytesMut {
        let mut k = self.rows(db, KIND_GROUP);
        k.put_slice(name);
        k
    }

    pub fn group(&self, r: &dyn KeyRead, name: &[u8]) -> Result<Option<Group>, StoreError> {
        match r.raw(&self.group_row(r.db(), name))? {
            Some(v) => Ok(Some(Group::decode(name, &v)?)),
            None => Ok(None),
        }
    }

    pub fn put_group(&self, w: &mut WriteView, g: &Group) {
        let row = self.group_row(w.db(), &g.name);
        w.put_raw(&row, g.encode());
    }

    /// Every group, in name order.
    pub fn groups(&self, r: &dyn KeyRead) -> Result<Vec<Group>, StoreError> {
        let prefix = self.rows(r.db(), KIND_GROUP);
        let mut out = Vec::new();
        let mut failed = None;
        scan_prefix(r, &prefix, &mut |rest, v| match Group::decode(rest, v) {
            Ok(g) => {
                out.push(g);
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        })?;
        failed.map_or(Ok(out), Err)
    }

    /// Removes a group with its consumers and pending entries.
    pub fn delete_group(&self, w: &mut WriteView, name: &[u8]) -> Result<(), StoreError> {
        let row = self.group_row(w.db(), name);
        w.delete_raw(&row)?;
        for kind in [KIND_CONSUMER, KIND_PEL, KIND_CONSUMER_PEL] {
            let mut prefix = self.rows(w.db(), kind);
            put_name(&mut prefix, name);
            let mut doomed = Vec::new();
            scan_prefix(w, &prefix, &mut |rest, _| {
                let mut k = prefix.clone();
                k.put_slice(rest);
                doomed.push(k);
                true
            })?;
            for k in doomed {
                w.delete_raw(&k)?;
            }
        }
        Ok(())
    }

    fn consumer_row(&self, db: u8, group: &[u8], name: &[u8]) -> BytesMut {
        let mut k = self.rows(db, KIND_CONSUMER);
        put_name(&mut k, group);
        k.put_slice(name);
        k
    }

    pub fn consumer(
        &self,
        r: &dyn KeyRead,
        group: &[u8],
        name: &[u8],
    ) -> Result<Option<Consumer>, StoreError> {
        match r.raw(&self.consumer_row(r.db(), group, name))? {
            Some(v) => Ok(Some(Consumer::decode(name, &v)?)),
            None => Ok(None),
        }
    }

    pub fn put_consumer(&self, w: &mut WriteView, group: &[u8], c: &Consumer) {
        let row = self.consumer_row(w.db(), group, &c.name);
        w.put_raw(&row, c.encode());
    }

    pub fn delete_consumer_row(
        &self,
        w: &mut WriteView,
        group: &[u8],
        name: &[u8],
    ) -> Result<(), StoreError> {
        let row = self.consumer_row(w.db(), group, name);
        w.delete_raw(&row)?;
        Ok(())
    }

    /// A group's consumers, in name order.
    pub fn consumers(&self, r: &dyn KeyRead, group: &[u8]) -> Result<Vec<Consumer>, StoreError> {
        let mut prefix = self.rows(r.db(), KIND_CONSUMER);
        put_name(&mut prefix, group);
        let mut out = Vec::new();
        let mut failed = None;
        scan_prefix(r, &prefix, &mut |rest, v| match Consumer::decode(rest, v) {
            Ok(c) => {
                out.push(c);
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        })?;
        failed.map_or(Ok(out), Err)
    }

    fn pel_row(&self, db: u8, group: &[u8], id: StreamId) -> BytesMut {
        let mut k = self.rows(db, KIND_PEL);
        put_name(&mut k, group);
        k.put_slice(&id.to_bytes());
        k
    }

    fn consumer_pel_prefix(&self, db: u8, group: &[u8], consumer: &[u8]) -> BytesMut {
        let mut k = self.rows(db, KIND_CONSUMER_PEL);
        put_name(&mut k, group);
        put_name(&mut k, consumer);
        k
    }

    pub fn nack(
        &self,
        r: &dyn KeyRead,
        group: &[u8],
        id: StreamId,
    ) -> Result<Option<Nack>, StoreError> {
        match r.raw(&self.pel_row(r.db(), group, id))? {
            Some(v) => Ok(Some(Nack::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Writes a pending entry in the group's list and its consumer's (the caller removes it
    /// from a previous consumer's list and keeps the counts).
    pub fn put_nack(&self, w: &mut WriteView, group: &[u8], id: StreamId, n: &Nack) {
        let row = self.pel_row(w.db(), group, id);
        w.put_raw(&row, n.encode());
        let mut c = self.consumer_pel_prefix(w.db(), group, &n.consumer);
        c.put_slice(&id.to_bytes());
        w.put_raw(&c, Bytes::new());
    }

    /// Removes a pending entry from the group's list and its consumer's (counts are the
    /// caller's).
    pub fn delete_nack(
        &self,
        w: &mut WriteView,
        group: &[u8],
        id: StreamId,
        consumer: &[u8],
    ) -> Result<(), StoreError> {
        let row = self.pel_row(w.db(), group, id);
        w.delete_raw(&row)?;
        self.delete_consumer_pel(w, group, id, consumer)
    }

    /// Removes an ID from one consumer's list only.
    pub fn delete_consumer_pel(
        &self,
        w: &mut WriteView,
        group: &[u8],
        id: StreamId,
        consumer: &[u8],
    ) -> Result<(), StoreError> {
        let mut c = self.consumer_pel_prefix(w.db(), group, consumer);
        c.put_slice(&id.to_bytes());
        w.delete_raw(&c)?;
        Ok(())
    }

    /// Visits a group's pending entries from `from` on, in ID order; `f` returns false to stop.
    pub fn pel_range(
        &self,
        r: &dyn KeyRead,
        group: &[u8],
        from: StreamId,
        f: &mut dyn FnMut(StreamId, Nack) -> bool,
    ) -> Result<(), StoreError> {
        let mut prefix = self.rows(r.db(), KIND_PEL);
        put_name(&mut prefix, group);
        let mut failed = None;
        scan_prefix_from(r, &prefix, &from.to_bytes(), &mut |rest, v| {
            let Some(id) = StreamId::from_bytes(rest) else {
                return true;
            };
            match Nack::decode(v) {
                Ok(n) => f(id, n),
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Visits the IDs a consumer has pending from `from` on, in order.
    pub fn consumer_pel_range(
        &self,
        r: &dyn KeyRead,
        group: &[u8],
        consumer: &[u8],
        from: StreamId,
        f: &mut dyn FnMut(StreamId) -> bool,
    ) -> Result<(), StoreError> {
        let prefix = self.consumer_pel_prefix(r.db(), group, consumer);
        scan_prefix_from(
            r,
            &prefix,
            &from.to_bytes(),
            &mut |rest, _| match StreamId::from_bytes(rest) {
                Some(id) => f(id),
                None => true,
            },
        )
    }

    /// The first and last pending IDs of a group.
    pub fn pel_edges(
        &self,
        r: &dyn KeyRead,
        group: &[u8],
    ) -> Result<Option<(StreamId, StreamId)>, StoreError> {
        let mut prefix = self.rows(r.db(), KIND_PEL);
        put_name(&mut prefix, group);
        let hi = encoding::prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
        let skip = prefix.len();
        let mut first = None;
        r.scan_raw(&prefix, &hi, &mut |k, _| {
            first = StreamId::from_bytes(&k[skip..]);
            false
        })?;
        let mut last = None;
        r.scan_raw_rev(&prefix, &hi, &mut |k, _| {
            last = StreamId::from_bytes(&k[skip..]);
            false
        })?;
        Ok(first.zip(last))
    }
}

fn scan_prefix(
    r: &dyn KeyRead,
    prefix: &[u8],
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), StoreError> {
    scan_prefix_from(r, prefix, b"", f)
}

/// Rows under `prefix` from `prefix + from` on; `f` gets the rest of the table key.
fn scan_prefix_from(
    r: &dyn KeyRead,
    prefix: &[u8],
    from: &[u8],
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), StoreError> {
    let hi = encoding::prefix_end(prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
    let mut lo = prefix.to_vec();
    lo.extend_from_slice(from);
    let skip = prefix.len();
    r.scan_raw(&lo, &hi, &mut |k, v| f(&k[skip..], v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_as_their_bytes_and_step() {
        let a = StreamId::new(1, u64::MAX);
        let b = StreamId::new(2, 0);
        assert!(a < b && a.to_bytes() < b.to_bytes());
        assert_eq!(a.next(), Some(b));
        assert_eq!(b.prev(), Some(a));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(StreamId::MIN.prev(), None);
        assert_eq!(StreamId::from_bytes(&b.to_bytes()), Some(b));
        assert_eq!(b.to_string(), "2-0");
    }

    #[test]
    fn fields_and_counters_roundtrip() {
        let pairs = vec![Bytes::from_static(b"f"), Bytes::from_static(b"")];
        assert_eq!(decode_fields(&encode_fields(&pairs)).unwrap(), pairs);
        assert!(decode_fields(&encode_fields(&pairs)[..6]).is_err());
        let c = Counters {
            length: 3,
            last_id: StreamId::new(5, 1),
            first_id: StreamId::new(1, 0),
            max_deleted: StreamId::new(2, 0),
            entries_added: 4,
            groups: 1,
        };
        assert_eq!(Counters::decode(&c.encode()).unwrap(), c);
        assert!(Counters::decode(&c.encode()[1..]).is_err());
    }
}
