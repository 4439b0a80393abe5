//! Streams as redis-server 7.0 serializes them (`RDB_TYPE_STREAM_LISTPACKS_2`): the entries
//! in listpack nodes keyed by their master ID, the stream's counters, then each consumer
//! group with its pending entries and consumers.
//!
//! A node is a listpack: a master entry (live count, deleted count, the master fields, a 0)
//! then per entry its flags, ID deltas from the master ID, its fields (unless they are the
//! master's: flag SAMEFIELDS), values, and its own element count. DUMP fills nodes as XADD
//! does with Redis's defaults (`stream-node-max-bytes 4096`, `stream-node-max-entries 100`),
//! so a stream built by XADD alone gets Redis's bytes; entries deleted by XDEL stay in Redis's
//! nodes flagged as deleted, and are simply absent from kvd's (the same stream, other bytes).

use bytes::Bytes;

use super::RdbError;
use super::length::{Cursor, read_count, read_length, write_length};
use super::listpack::{self, Builder};
use super::string::{read_string, write_string};

/// An entry ID: (milliseconds, sequence).
pub type Id = (u64, u64);

const NODE_MAX_BYTES: usize = 4096;
const NODE_MAX_ENTRIES: usize = 100;
const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamValue {
    /// Entries in ID order: the ID and its fields and values alternating.
    pub entries: Vec<(Id, Vec<Bytes>)>,
    pub length: u64,
    pub last_id: Id,
    pub first_id: Id,
    pub max_deleted: Id,
    pub entries_added: u64,
    /// Groups in name order.
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: Bytes,
    pub last_id: Id,
    /// -1: unknown.
    pub entries_read: i64,
    /// Pending entries in ID order: ID, delivery time (ms), delivery count.
    pub pel: Vec<(Id, i64, u64)>,
    /// Consumers in name order.
    pub consumers: Vec<Consumer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    pub name: Bytes,
    pub seen_time: i64,
    /// The IDs of the group's pending entries it owns, in order.
    pub pel: Vec<Id>,
}

fn id_bytes(id: Id) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.0.to_be_bytes());
    b[8..].copy_from_slice(&id.1.to_be_bytes());
    b
}

fn id_from(b: &[u8]) -> Result<Id, RdbError> {
    if b.len() != 16 {
        return Err(RdbError::Format("stream ID"));
    }
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&b[..8]);
    seq.copy_from_slice(&b[8..]);
    Ok((u64::from_be_bytes(ms), u64::from_be_bytes(seq)))
}

fn push_int(lp: &mut Builder, v: i64) {
    lp.push(v.to_string().as_bytes());
}

/// One node being filled: its master ID and fields, its listpack, its entry count.
struct Node {
    master: Id,
    fields: Vec<Bytes>,
    lp: Builder,
    count: usize,
}

impl Node {
    fn new(master: Id, pairs: &[Bytes]) -> Node {
        let fields: Vec<Bytes> = pairs.iter().step_by(2).cloned().collect();
        let mut lp = Builder::new();
        push_int(&mut lp, 1);
        push_int(&mut lp, 0);
        push_int(&mut lp, fields.len() as i64);
        for f in &fields {
            lp.push(f);
        }
        push_int(&mut lp, 0);
        Node {
            master,
            fields,
            lp,
            count: 0,
        }
    }

    fn append(&mut self, id: Id, pairs: &[Bytes]) {
        let n = pairs.len() / 2;
        let same = n == self.fields.len()
            && pairs
                .iter()
                .step_by(2)
                .zip(&self.fields)
                .all(|(a, b)| a == b);
        let flags = if same { FLAG_SAMEFIELDS } else { 0 };
        push_int(&mut self.lp, flags);
        push_int(&mut self.lp, id.0.wrapping_sub(self.master.0) as i64);
        push_int(&mut self.lp, id.1.wrapping_sub(self.master.1) as i64);
        if !same {
            push_int(&mut self.lp, n as i64);
        }
        for pair in pairs.chunks(2) {
            if !same {
                self.lp.push(&pair[0]);
            }
            if let Some(v) = pair.get(1) {
                self.lp.push(v);
            }
        }
        let elements = 3 + n + if same { 0 } else { n + 1 };
        push_int(&mut self.lp, elements as i64);
        self.count += 1;
    }

    /// The listpack, with the master entry's live count set to the entries appended.
    fn finish(self) -> (Id, Vec<u8>) {
        let mut lp = Builder::new();
        // Rebuilt with the final count (its encoding is one byte either way, so the sizes the
        // node-full checks saw are unchanged).
        let items = listpack::decode(&self.lp.finish()).unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            if i == 0 {
                push_int(&mut lp, self.count as i64);
            } else {
                lp.push(item);
            }
        }
        (self.master, lp.finish())
    }
}

pub fn dump(s: &StreamValue, out: &mut Vec<u8>) {
    let mut nodes = Vec::new();
    let mut node: Option<Node> = None;
    for (id, pairs) in &s.entries {
        let size: usize = pairs.iter().map(|p| p.len()).sum();
        if let Some(n) = &node
            && (n.lp.bytes() + size >= NODE_MAX_BYTES || n.count >= NODE_MAX_ENTRIES)
            && let Some(full) = node.take()
        {
            nodes.push(full.finish());
        }
        node.get_or_insert_with(|| Node::new(*id, pairs))
            .append(*id, pairs);
    }
    if let Some(n) = node {
        nodes.push(n.finish());
    }
    write_length(out, nodes.len() as u64);
    for (master, lp) in nodes {
        write_string(out, &id_bytes(master));
        write_string(out, &lp);
    }
    write_length(out, s.length);
    for v in [
        s.last_id.0,
        s.last_id.1,
        s.first_id.0,
        s.first_id.1,
        s.max_deleted.0,
        s.max_deleted.1,
        s.entries_added,
    ] {
        write_length(out, v);
    }
    write_length(out, s.groups.len() as u64);
    for g in &s.groups {
        write_string(out, &g.name);
        write_length(out, g.last_id.0);
        write_length(out, g.last_id.1);
        write_length(out, g.entries_read as u64);
        write_length(out, g.pel.len() as u64);
        for (id, time, count) in &g.pel {
            out.extend_from_slice(&id_bytes(*id));
            out.extend_from_slice(&time.to_le_bytes());
            write_length(out, *count);
        }
        write_length(out, g.consumers.len() as u64);
        for c in &g.consumers {
            write_string(out, &c.name);
            out.extend_from_slice(&c.seen_time.to_le_bytes());
            write_length(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id_bytes(*id));
            }
        }
    }
}

fn int(b: &Bytes) -> Result<i64, RdbError> {
    super::string::as_integer(b).ok_or(RdbError::Format("stream listpack integer"))
}

/// The live entries of one node.
fn node_entries(
    master: Id,
    items: &[Bytes],
    out: &mut Vec<(Id, Vec<Bytes>)>,
) -> Result<(), RdbError> {
    let bad = RdbError::Format("stream listpack");
    let mut it = items.iter();
    let mut next = || it.next().ok_or(bad.clone());
    let _count = int(next()?)?;
    let _deleted = int(next()?)?;
    let nfields = usize::try_from(int(next()?)?).map_err(|_| bad.clone())?;
    if nfields > items.len() {
        return Err(bad);
    }
    let mut fields = Vec::with_capacity(nfields);
    for _ in 0..nfields {
        fields.push(next()?.clone());
    }
    if int(next()?)? != 0 {
        return Err(bad);
    }
    let mut rest = items[4 + nfields..].iter();
    let mut seen = 0usize;
    while let Some(flags) = rest.next() {
        let flags = int(flags)?;
        let mut take = || rest.next().ok_or(RdbError::Format("stream listpack"));
        let ms = master.0.wrapping_add(int(take()?)? as u64);
        let seq = master.1.wrapping_add(int(take()?)? as u64);
        let mut pairs = Vec::new();
        if flags & FLAG_SAMEFIELDS != 0 {
            for f in &fields {
                pairs.push(f.clone());
                pairs.push(take()?.clone());
            }
        } else {
            let n =
                usize::try_from(int(take()?)?).map_err(|_| RdbError::Format("stream listpack"))?;
            if n > items.len() {
                return Err(RdbError::Format("stream listpack"));
            }
            for _ in 0..2 * n {
                pairs.push(take()?.clone());
            }
        }
        let _lp_count = int(take()?)?;
        seen += 1;
        if flags & FLAG_DELETED == 0 {
            out.push(((ms, seq), pairs));
        }
    }
    if seen == 0 {
        return Err(RdbError::Format("empty stream node"));
    }
    Ok(())
}

/// A legacy group's `entries-read`, estimated from its last delivered ID as Redis 7.0 does
/// when it loads a Redis 5/6 stream (`streamEstimateDistanceFromFirstEverEntry`; the legacy
/// form has no tombstones to account for): -1 where it cannot be known.
fn estimated_entries_read(s: &StreamValue, id: Id) -> i64 {
    let added = i64::try_from(s.entries_added).unwrap_or(i64::MAX);
    let len = i64::try_from(s.length).unwrap_or(i64::MAX);
    if added == 0 {
        return 0;
    }
    if (s.length == 0 && id <= s.last_id) || id == s.last_id {
        return added;
    }
    if id > s.last_id {
        return -1;
    }
    let none_deleted = s.max_deleted == (0, 0) || s.max_deleted < s.first_id;
    match id.cmp(&s.first_id) {
        std::cmp::Ordering::Less if none_deleted => added - len,
        std::cmp::Ordering::Equal if none_deleted => added - len + 1,
        _ => -1,
    }
}

/// Reads a stream; `v2` for `RDB_TYPE_STREAM_LISTPACKS_2` (Redis 7), else the Redis 5/6
/// form, whose missing counters are derived as Redis 7.0 derives them.
pub fn load(c: &mut Cursor, v2: bool) -> Result<StreamValue, RdbError> {
    let mut s = StreamValue::default();
    let nodes = read_count(c, 2)?;
    for _ in 0..nodes {
        let master = id_from(&read_string(c)?)?;
        let items = listpack::decode(&read_string(c)?)?;
        node_entries(master, &items, &mut s.entries)?;
    }
    if s.entries.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(RdbError::Format("stream entries out of order"));
    }
    s.length = read_length(c)?;
    s.last_id = (read_length(c)?, read_length(c)?);
    if v2 {
        s.first_id = (read_length(c)?, read_length(c)?);
        s.max_deleted = (read_length(c)?, read_length(c)?);
        s.entries_added = read_length(c)?;
    } else {
        s.first_id = s.entries.first().map_or((0, 0), |e| e.0);
        s.entries_added = s.length;
    }
    if s.length != s.entries.len() as u64 {
        return Err(RdbError::Format("stream length"));
    }
    let groups = read_count(c, 1)?;
    for _ in 0..groups {
        let name = read_string(c)?;
        let last_id = (read_length(c)?, read_length(c)?);
        let entries_read = if v2 {
            read_length(c)? as i64
        } else {
            estimated_entries_read(&s, last_id)
        };
        let n = read_count(c, 17)?;
        let mut pel = Vec::with_capacity(n);
        for _ in 0..n {
            let id = id_from(c.take(16)?)?;
            let time = i64::from_le_bytes(c.array()?);
            let count = read_length(c)?;
            pel.push((id, time, count));
        }
        if pel.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(RdbError::Format("stream PEL out of order"));
        }
        let n = read_count(c, 9)?;
        let mut consumers: Vec<Consumer> = Vec::with_capacity(n);
        let mut owned = 0usize;
        for _ in 0..n {
            let name = read_string(c)?;
            let seen_time = i64::from_le_bytes(c.array()?);
            let k = read_count(c, 16)?;
            let mut ids = Vec::with_capacity(k);
            for _ in 0..k {
                let id = id_from(c.take(16)?)?;
                if pel.binary_search_by(|p| p.0.cmp(&id)).is_err() {
                    return Err(RdbError::Format("consumer PEL entry not in the group's"));
                }
                ids.push(id);
            }
            owned += k;
            if consumers.iter().any(|o| o.name == name) {
                return Err(RdbError::Format("duplicate consumer"));
            }
            consumers.push(Consumer {
                name,
                seen_time,
                pel: ids,
            });
        }
        if owned != pel.len() {
            return Err(RdbError::Format("group PEL entry without a consumer"));
        }
        if s.groups.iter().any(|g: &Group| g.name == name) {
            return Err(RdbError::Format("duplicate group"));
        }
        s.groups.push(Group {
            name,
            last_id,
            entries_read,
            pel,
            consumers,
        });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_groups_get_redis_s_estimate_of_entries_read() {
        // Entries 5-0 and 6-0 left of 6 added (3-0 deleted, then trimmed to 2).
        let s = StreamValue {
            length: 2,
            entries_added: 2,
            first_id: (5, 0),
            last_id: (6, 0),
            ..StreamValue::default()
        };
        assert_eq!(estimated_entries_read(&s, (5, 0)), 1, "at the first entry");
        assert_eq!(estimated_entries_read(&s, (0, 0)), 0, "before it");
        assert_eq!(estimated_entries_read(&s, (6, 0)), 2, "at the last");
        assert_eq!(
            estimated_entries_read(&s, (5, 5)),
            -1,
            "in between: unknown"
        );
        assert_eq!(estimated_entries_read(&s, (7, 0)), -1, "past the last");
        let empty = StreamValue::default();
        assert_eq!(estimated_entries_read(&empty, (1, 0)), 0);
    }
}
