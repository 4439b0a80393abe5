//! Collections on member rows: what hashes and sets (and later lists and sorted sets) share.
//!
//! A collection is a metadata row (`encoding::Meta`: its type, a `version` fresh for each
//! incarnation, `modified`, and a body holding the member count, u64 BE) and one row per member,
//! `encoding::member_key(db, key, version, member)` → the member's value (a hash field's value;
//! empty for a set). So:
//! - one member's read or write is one B-tree lookup, whatever the collection's size;
//! - the count is kept in the metadata on every change (HLEN/SCARD never scan);
//! - members come back in member-byte order, by one ordered scan that can resume from any
//!   member (HSCAN/SSCAN cursors); a hash also keeps its fields' insertion order (`Order`) for
//!   HGETALL and its kin, as a Redis listpack does;
//! - deleting or overwriting the key replaces only its metadata row: the old version's member
//!   rows are unreachable at once and `crate::reclaim` removes them later, in bounded batches.
//!
//! [`Collection`] is one collection being read or changed within one command: it carries the
//! metadata and count, and `save` writes the metadata back once (or deletes the key when its
//! last member went, as Redis does).

use bytes::{Bytes, BytesMut};

use super::encoding::{self, KeyType, Meta};
use super::view::{KeyRead, WriteView, wall_clock_ms};
use crate::store::StoreError;

/// A collection key within one command: its metadata, its member count, whether it changed.
#[derive(Clone, Debug)]
pub struct Collection {
    key: Bytes,
    meta: Meta,
    len: u64,
    /// A hash that keeps its fields' insertion order (see [`Order`]); `None` for sets and
    /// for hashes written before kvd kept it (member order, "hashtable").
    order: Option<Order>,
    /// The metadata row as it was (none: the key is being created).
    existed: bool,
    old_expiry: Option<i64>,
    changed: bool,
}

/// The count a collection's metadata body holds (its first 8 bytes).
pub fn count_of(meta: &Meta) -> Result<u64, StoreError> {
    let b: [u8; 8] = meta
        .body
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .filter(|_| matches!(meta.body.len(), 8 | ORDERED_BODY))
        .ok_or_else(|| StoreError::corrupt("collection count", "not 8 or 17 bytes"))?;
    Ok(u64::from_be_bytes(b))
}

/// An ordered hash's metadata body: count u64, next insertion number u64, flags u8.
const ORDERED_BODY: usize = 17;

/// Flag of an ordered hash: it has had more than `LISTPACK_ENTRIES` fields or a field or
/// value longer than `LISTPACK_VALUE` bytes, so OBJECT ENCODING says "hashtable" (for good,
/// as Redis never converts a hashtable back).
const FLAG_HASHTABLE: u8 = 1;

/// redis-server 7.0's defaults of `hash-max-listpack-entries` (512) / `-value` (64), as
/// CONFIG GET shows them: constants, not node settings, as the flag is replicated state.
const LISTPACK_ENTRIES: u64 = 512;
const LISTPACK_VALUE: usize = 64;

/// How a hash keeps its fields' insertion order, as a Redis listpack hash returns them: every
/// field row's value starts with the field's insertion number (u64 BE, then the value), the
/// metadata holds the next number. A new field takes the next number, a field set again
/// keeps its own, HDEL drops it. HGETALL/HKEYS/HVALS sort by it (one scan, then a sort of
/// what the reply holds anyway); single-field reads strip it.
#[derive(Clone, Copy, Debug)]
struct Order {
    next: u64,
    flags: u8,
}

/// Whether `meta` is a hash whose fields keep their insertion order and that Redis would
/// still hold as a listpack (OBJECT ENCODING).
pub fn is_listpack_hash(meta: &Meta) -> bool {
    meta.kind == KeyType::Hash
        && meta.body.len() == ORDERED_BODY
        && meta.body[16] & FLAG_HASHTABLE == 0
}

fn order_of(meta: &Meta) -> Option<Order> {
    if meta.kind != KeyType::Hash || meta.body.len() != ORDERED_BODY {
        return None;
    }
    let next = u64::from_be_bytes(meta.body[8..16].try_into().ok()?);
    Some(Order {
        next,
        flags: meta.body[16],
    })
}

/// A field row's value without its insertion number.
fn strip(row: &[u8]) -> Result<&[u8], StoreError> {
    row.get(8..)
        .ok_or_else(|| StoreError::corrupt("hash field", "no insertion number"))
}

fn seq_of(row: &[u8]) -> u64 {
    row.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(u64::MAX, u64::from_be_bytes)
}

fn count_body(n: u64) -> Bytes {
    Bytes::copy_from_slice(&n.to_be_bytes())
}

impl Collection {
    /// An existing collection, from its (live) metadata row; the caller has checked its type.
    pub fn from_meta(key: &[u8], meta: Meta) -> Result<Collection, StoreError> {
        Ok(Collection {
            key: Bytes::copy_from_slice(key),
            len: count_of(&meta)?,
            order: order_of(&meta),
            old_expiry: meta.expire_at,
            meta,
            existed: true,
            changed: false,
        })
    }

    /// A new, empty incarnation of `key` (a fresh version: no older member row can show
    /// through). Written only by `save`, and only if it got members.
    pub fn create(w: &mut WriteView, key: &[u8], kind: KeyType) -> Collection {
        let meta = Meta {
            kind,
            expire_at: None,
            version: w.new_version(),
            modified: w.index(),
            body: count_body(0),
        };
        Collection {
            key: Bytes::copy_from_slice(key),
            meta,
            len: 0,
            order: (kind == KeyType::Hash).then_some(Order { next: 0, flags: 0 }),
            existed: false,
            old_expiry: None,
            changed: false,
        }
    }

    pub fn key(&self) -> &Bytes {
        &self.key
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Whether the key existed when opened (false: this command creates it).
    pub fn existed(&self) -> bool {
        self.existed
    }

    /// Members now (as changed so far).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn row(&self, db: u8, member: &[u8]) -> Bytes {
        encoding::member_key(db, &self.key, self.meta.version, member)
    }

    /// One member's value (`None`: not a member). One lookup.
    pub fn get(&self, r: &dyn KeyRead, member: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let row = r.raw(&self.row(r.db(), member))?;
        match (row, self.order) {
            (Some(row), Some(_)) => {
                strip(&row)?;
                Ok(Some(row.slice(8..)))
            }
            (row, _) => Ok(row),
        }
    }

    pub fn contains(&self, r: &dyn KeyRead, member: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get(r, member)?.is_some())
    }

    /// Adds or replaces a member; true if it is new (the count grew).
    pub fn put(
        &mut self,
        w: &mut WriteView,
        member: &[u8],
        value: Bytes,
    ) -> Result<bool, StoreError> {
        let row = self.row(w.db(), member);
        let old = w.raw(&row)?;
        let new = old.is_none();
        self.len += u64::from(new);
        self.changed = true;
        let Some(order) = self.order.as_mut() else {
            w.put_raw(&row, value);
            return Ok(new);
        };
        let seq = match &old {
            Some(old) => seq_of(old),
            None => {
                order.next += 1;
                order.next - 1
            }
        };
        if self.len > LISTPACK_ENTRIES
            || member.len() > LISTPACK_VALUE
            || value.len() > LISTPACK_VALUE
        {
            order.flags |= FLAG_HASHTABLE;
        }
        let mut v = BytesMut::with_capacity(8 + value.len());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&value);
        w.put_raw(&row, v.freeze());
        Ok(new)
    }

    /// Removes a member; true if it was one.
    pub fn remove(&mut self, w: &mut WriteView, member: &[u8]) -> Result<bool, StoreError> {
        let row = self.row(w.db(), member);
        let gone = w.delete_raw(&row)?;
        if gone {
            self.len = self.len.saturating_sub(1);
            self.changed = true;
        }
        Ok(gone)
    }

    /// Writes the metadata back if anything changed: the new count and `modified` (WATCH sees
    /// every change), expiry kept. A collection left empty is deleted, as Redis does; one
    /// created and left empty is never written. True if the key was deleted.
    pub fn save(mut self, w: &mut WriteView) -> Result<bool, StoreError> {
        if !self.changed {
            return Ok(false);
        }
        if self.len == 0 {
            if self.existed {
                w.delete(&self.key)?;
            }
            return Ok(self.existed);
        }
        self.meta.body = match self.order {
            Some(o) => {
                let mut b = BytesMut::with_capacity(ORDERED_BODY);
                b.extend_from_slice(&self.len.to_be_bytes());
                b.extend_from_slice(&o.next.to_be_bytes());
                b.extend_from_slice(&[o.flags]);
                b.freeze()
            }
            None => count_body(self.len),
        };
        self.meta.modified = w.index();
        w.put_meta(&self.key, &self.meta, self.old_expiry)?;
        Ok(false)
    }

    /// Visits members from `from` (inclusive) in member-byte order with their values; `f`
    /// returns false to stop. One ordered scan of this incarnation's rows.
    pub fn scan(
        &self,
        r: &dyn KeyRead,
        from: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let prefix = encoding::member_prefix(r.db(), &self.key, self.meta.version);
        let hi = encoding::prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
        let skip = prefix.len();
        let mut lo = BytesMut::from(&prefix[..]);
        lo.extend_from_slice(from);
        if self.order.is_none() {
            return r.scan_raw(&lo, &hi, &mut |k, v| f(&k[skip..], v));
        }
        let mut bad = None;
        r.scan_raw(&lo, &hi, &mut |k, v| match strip(v) {
            Ok(v) => f(&k[skip..], v),
            Err(e) => {
                bad = Some(e);
                false
            }
        })?;
        bad.map_or(Ok(()), Err)
    }

    /// Every member and value in the order a client sees them whole (HGETALL, HKEYS, HVALS,
    /// DUMP): a hash's insertion order where it keeps one, else member order.
    pub fn in_order(&self, r: &dyn KeyRead) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        if self.order.is_none() {
            return self.all(r);
        }
        let prefix = encoding::member_prefix(r.db(), &self.key, self.meta.version);
        let hi = encoding::prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
        let skip = prefix.len();
        let mut rows = Vec::with_capacity(usize::try_from(self.len.min(1 << 20)).unwrap_or(0));
        let mut bad = None;
        r.scan_raw(&prefix, &hi, &mut |k, v| match strip(v) {
            Ok(value) => {
                let m = Bytes::copy_from_slice(&k[skip..]);
                rows.push((seq_of(v), m, Bytes::copy_from_slice(value)));
                true
            }
            Err(e) => {
                bad = Some(e);
                false
            }
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        rows.sort_unstable_by_key(|r| r.0);
        Ok(rows.into_iter().map(|(_, m, v)| (m, v)).collect())
    }

    /// Every member and value, in order (for HGETALL, SMEMBERS: the reply holds them anyway).
    pub fn all(&self, r: &dyn KeyRead) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        let mut out = Vec::with_capacity(usize::try_from(self.len.min(1 << 20)).unwrap_or(0));
        self.scan(r, b"", &mut |m, v| {
            out.push((Bytes::copy_from_slice(m), Bytes::copy_from_slice(v)));
            true
        })?;
        Ok(out)
    }

    /// The members at `positions` (0-based ranks in member order, sorted ascending, repeats
    /// allowed), one scan up to the last one. Positions past the end are skipped.
    pub fn at_positions(
        &self,
        r: &dyn KeyRead,
        positions: &[u64],
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        let mut out = Vec::with_capacity(positions.len());
        let mut next = 0;
        let mut rank = 0u64;
        self.scan(r, b"", &mut |m, v| {
            while next < positions.len() && positions[next] == rank {
                out.push((Bytes::copy_from_slice(m), Bytes::copy_from_slice(v)));
                next += 1;
            }
            rank += 1;
            next < positions.len()
        })?;
        Ok(out)
    }
}

/// A small PRNG (SplitMix64) for commands that pick members at random. Inside apply it is
/// seeded from the entry's index, the number of picks the entry made before, and the key, so
/// every node picks the same members and two picks in one entry (a MULTI or a script calling
/// SRANDMEMBER twice on an unchanged set) differ as in Redis; on a connection's view (a
/// read-only SRANDMEMBER), from local randomness.
pub struct Rng(u64);

thread_local! {
    /// The entry whose apply last picked at random on this thread, and how many picks it has
    /// made. An entry is applied on one thread, its commands in order, so the count is the
    /// same on every node.
    static PICKS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((u64::MAX, 0)) };
}

/// How many picks entry `index` made before this one (and counts this one).
fn pick_number(index: u64) -> u64 {
    PICKS.with(|p| {
        let (last, n) = p.get();
        let n = if last == index { n + 1 } else { 0 };
        p.set((index, n));
        n
    })
}

impl Rng {
    /// Seeded for `key` on view `r` from the entry and the key alone, as before picks were
    /// counted: for picks that change state (SPOP), so an entry in the log applies the same
    /// whichever kvd version applies it. (Counting does not matter there: the key changes with
    /// each pop.)
    pub fn for_write(r: &dyn KeyRead, key: &[u8]) -> Rng {
        match r.entry_index() {
            Some(index) => Rng::seeded(index, key),
            None => Rng::local(),
        }
    }

    /// Seeded for `key` on view `r` (see the type's docs): for picks that only shape a reply.
    pub fn for_key(r: &dyn KeyRead, key: &[u8]) -> Rng {
        match r.entry_index() {
            Some(index) => match pick_number(index) {
                0 => Rng::seeded(index, key),
                n => {
                    let mut h = crate::fnv::Fnv1a::new();
                    h.feed(&index.to_be_bytes());
                    h.feed(key);
                    h.feed(&n.to_be_bytes());
                    Rng(h.finish())
                }
            },
            None => Rng::local(),
        }
    }

    /// The same on every node for the same entry and key.
    pub fn seeded(index: u64, key: &[u8]) -> Rng {
        let mut h = crate::fnv::Fnv1a::new();
        h.feed(&index.to_be_bytes());
        h.feed(key);
        Rng(h.finish())
    }

    /// From this process's hasher keys and the clock: different on every call.
    pub fn local() -> Rng {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(wall_clock_ms());
        Rng(h.finish())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// `k` distinct positions out of `[0, n)`, sorted (k ≤ n), by Floyd's algorithm: k draws,
    /// whatever n.
    pub fn distinct(&mut self, k: u64, n: u64) -> Vec<u64> {
        let k = k.min(n);
        let mut chosen = std::collections::BTreeSet::new();
        for j in n - k..n {
            let t = self.below(j + 1);
            if !chosen.insert(t) {
                chosen.insert(j);
            }
        }
        chosen.into_iter().collect()
    }
}

/// HSCAN/SSCAN cursors. A cursor stands for "go on from member M of incarnation V of key K":
/// a member, not a rank, so a resumed scan costs one seek however far it got, and it survives
/// memtable flushes and any change to the collection (members added or removed meanwhile are
/// returned or not, members present throughout are returned once, as Redis guarantees).
/// Clients see a number: a 63-bit hash of (db, key, version, member), the same on every node,
/// mapped back to the member in this process's memory (bounded: the oldest go first). A
/// cursor this node does not know (evicted, from before a restart, from another node) starts
/// the scan over, which keeps the guarantee at the price of repeats.
pub mod cursors {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use bytes::Bytes;

    /// At most this many cursors, holding at most `MAX_BYTES` of keys and members.
    const MAX_CURSORS: usize = 65_536;
    const MAX_BYTES: usize = 64 << 20;

    struct Position {
        db: u8,
        key: Bytes,
        version: u64,
        member: Bytes,
    }

    #[derive(Default)]
    struct Registry {
        by_id: HashMap<u64, Position>,
        order: VecDeque<u64>,
        bytes: usize,
    }

    static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

    fn id(db: u8, key: &[u8], version: u64, member: &[u8]) -> u64 {
        let mut h = crate::fnv::Fnv1a::new();
        h.feed(&[db]);
        h.feed(&(key.len() as u64).to_be_bytes());
        h.feed(key);
        h.feed(&version.to_be_bytes());
        h.feed(member);
        // Never 0 (the end of a scan), and within i64 for clients that parse it so.
        (h.finish() >> 1).max(1)
    }

    /// Remembers where a scan goes on; returns its cursor.
    pub fn save(db: u8, key: &[u8], version: u64, member: Bytes) -> u64 {
        let id = id(db, key, version, &member);
        let Ok(mut guard) = REGISTRY.lock() else {
            return id;
        };
        let reg = guard.get_or_insert_with(Registry::default);
        if reg.by_id.contains_key(&id) {
            return id;
        }
        reg.bytes += key.len() + member.len();
        let position = Position {
            db,
            key: Bytes::copy_from_slice(key),
            version,
            member,
        };
        reg.by_id.insert(id, position);
        reg.order.push_back(id);
        while reg.by_id.len() > MAX_CURSORS || reg.bytes > MAX_BYTES {
            let Some(old) = reg.order.pop_front() else {
                break;
            };
            if let Some(p) = reg.by_id.remove(&old) {
                reg.bytes -= p.key.len() + p.member.len();
            }
        }
        id
    }

    /// The member a scan of this incarnation resumes from (empty: from the start).
    pub fn resume(cursor: u64, db: u8, key: &[u8], version: u64) -> Bytes {
        if cursor == 0 {
            return Bytes::new();
        }
        let Ok(guard) = REGISTRY.lock() else {
            return Bytes::new();
        };
        match guard.as_ref().and_then(|r| r.by_id.get(&cursor)) {
            Some(p) if p.db == db && p.key == key && p.version == version => p.member.clone(),
            _ => Bytes::new(),
        }
    }
}

/// The rows of one owned family (member rows, or sorted sets' score rows, as `from`'s first
/// byte says) that no live incarnation owns, from table key `from` on: the rows whose key has
/// no metadata row, or one of another version or type. Visits at most `budget` rows (a live
/// key's rows are skipped with one seek, costing one unit); returns the orphans found (at most
/// `max`) and where to go on (`None`: the end of the family's rows).
pub fn find_orphans(
    r: &dyn KeyRead,
    from: &[u8],
    max: usize,
    budget: usize,
) -> Result<(Vec<Bytes>, Option<Vec<u8>>), StoreError> {
    let family = from.first().copied().unwrap_or(encoding::FAMILY_MEMBER);
    let end = [family.saturating_add(1)];
    let mut orphans = Vec::new();
    let mut cursor = from.to_vec();
    let mut spent = 0;
    // The last incarnation looked up: (db, key, version).
    let mut last_dead: Option<(u8, Vec<u8>, u64)> = None;
    loop {
        // Where to go on after this scan stops: `None` if it reached the end.
        let mut next: Option<Vec<u8>> = None;
        let mut failed = None;
        r.scan_raw(&cursor, &end, &mut |k, _| {
            if spent >= budget || orphans.len() >= max {
                next = Some(k.to_vec());
                return false;
            }
            spent += 1;
            let Some((db, key, version)) = encoding::parse_owned_key(k) else {
                // Not a well-formed row of its family: not ours to judge.
                return true;
            };
            let dead =
                matches!(&last_dead, Some((d, k2, v)) if *d == db && k2 == key && *v == version);
            if !dead {
                match owner_version(r, db, key) {
                    Ok(owner) if owner == Some(version) => {
                        // A live incarnation: skip its rows in one seek.
                        let prefix = encoding::owned_prefix(family, db, key, version);
                        next = Some(encoding::prefix_end(&prefix).unwrap_or_else(|| end.to_vec()));
                        return false;
                    }
                    Ok(_) => last_dead = Some((db, key.to_vec(), version)),
                    Err(e) => {
                        failed = Some(e);
                        return false;
                    }
                }
            }
            orphans.push(Bytes::copy_from_slice(k));
            true
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        match next {
            Some(n) if spent < budget && orphans.len() < max => cursor = n,
            other => return Ok((orphans, other)),
        }
    }
}

/// The version of the collection incarnation that owns member rows of `key` in `db`: its
/// metadata row's, whether expired or not (an expired key's rows go once expiry removes it).
/// `None` for no key or a string.
pub fn owner_version(r: &dyn KeyRead, db: u8, key: &[u8]) -> Result<Option<u64>, StoreError> {
    let Some(raw) = r.raw(&encoding::meta_key(db, key))? else {
        return Ok(None);
    };
    let meta = Meta::decode(&raw).map_err(|e| StoreError::corrupt("key metadata", e))?;
    Ok((meta.kind != KeyType::String).then_some(meta.version))
}

/// Removes the member or score row `table_key` if no live incarnation owns it (re-checked
/// here, in apply, against the metadata as it is now). True if it was removed.
pub fn reap_orphan(w: &mut WriteView, table_key: &[u8]) -> Result<bool, StoreError> {
    let Some((db, key, version)) = encoding::parse_owned_key(table_key) else {
        return Ok(false);
    };
    if db >= encoding::DATABASES || owner_version(w, db, key)? == Some(version) {
        return Ok(false);
    }
    w.delete_raw(table_key)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kv::{Memtable, flush_into};
    use crate::store::{self, Db};

    fn setup() -> (tempfile::TempDir, Db, Arc<Memtable>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = store::open(&dir.path().join("d"), 1 << 20).expect("open");
        (dir, db, Arc::new(Memtable::new()))
    }

    /// Runs `f` as entry `index` of database 0, then flushes to the table if asked.
    fn write<R>(
        db: &Db,
        mem: &Memtable,
        index: u64,
        flush: bool,
        f: impl FnOnce(&mut WriteView) -> R,
    ) -> R {
        let txn = db.begin_write().expect("txn");
        let mut state = mem.write();
        let r = {
            let mut view = WriteView::open(&txn, &mut state).expect("view");
            view.begin_entry(0, 1000, index);
            f(&mut view)
        };
        if flush {
            flush_into(&txn, &state).expect("flush");
            txn.commit().expect("commit");
            state.flushed();
        } else {
            txn.commit().expect("commit");
        }
        r
    }

    fn open(w: &WriteView, key: &[u8]) -> Option<Collection> {
        w.meta(key)
            .unwrap()
            .map(|m| Collection::from_meta(key, m).unwrap())
    }

    fn members(w: &dyn KeyRead, c: &Collection, from: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        c.scan(w, from, &mut |m, _| {
            out.push(String::from_utf8_lossy(m).into_owned());
            true
        })
        .unwrap();
        out
    }

    fn pairs(v: Vec<(Bytes, Bytes)>) -> Vec<String> {
        v.into_iter()
            .map(|(m, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(&m),
                    String::from_utf8_lossy(&v)
                )
            })
            .collect()
    }

    #[test]
    fn hash_fields_keep_their_insertion_order_across_flushes_and_updates() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, true, |w| {
            let mut c = Collection::create(w, b"h", KeyType::Hash);
            for (f, v) in [("c", "1"), ("a", "2"), ("b", "3")] {
                c.put(w, f.as_bytes(), Bytes::copy_from_slice(v.as_bytes()))
                    .unwrap();
            }
            c.save(w).unwrap();
        });
        write(&db, &mem, 2, false, |w| {
            let mut c = open(w, b"h").unwrap();
            // Set again: keeps its place; removed and added back: goes last.
            c.put(w, b"a", Bytes::from_static(b"9")).unwrap();
            c.remove(w, b"c").unwrap();
            c.put(w, b"c", Bytes::from_static(b"4")).unwrap();
            c.put(w, b"0", Bytes::from_static(b"5")).unwrap();
            c.save(w).unwrap();
            let c = open(w, b"h").unwrap();
            assert_eq!(pairs(c.in_order(w).unwrap()), ["a=9", "b=3", "c=4", "0=5"]);
            // Member order for scans and picks, values without their numbers.
            assert_eq!(pairs(c.all(w).unwrap()), ["0=5", "a=9", "b=3", "c=4"]);
            assert_eq!(c.get(w, b"a").unwrap(), Some(Bytes::from_static(b"9")));
            assert_eq!(c.len(), 4);
            assert!(is_listpack_hash(c.meta()));
        });
    }

    #[test]
    fn a_hash_is_a_listpack_until_it_grows_past_redis_s_defaults_for_good() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, false, |w| {
            let mut c = Collection::create(w, b"big", KeyType::Hash);
            for i in 0..512 {
                c.put(w, format!("f{i}").as_bytes(), Bytes::from_static(b"v"))
                    .unwrap();
            }
            c.save(w).unwrap();
            assert!(is_listpack_hash(open(w, b"big").unwrap().meta()));
            let mut c = open(w, b"big").unwrap();
            c.put(w, b"one-more", Bytes::from_static(b"v")).unwrap();
            c.remove(w, b"one-more").unwrap();
            c.save(w).unwrap();
            assert!(
                !is_listpack_hash(open(w, b"big").unwrap().meta()),
                "stays a hashtable"
            );
            let mut c = Collection::create(w, b"long", KeyType::Hash);
            c.put(w, b"f", Bytes::from(vec![b'x'; 65])).unwrap();
            c.save(w).unwrap();
            assert!(!is_listpack_hash(open(w, b"long").unwrap().meta()));
        });
    }

    #[test]
    fn a_hash_written_before_insertion_order_still_reads_in_member_order() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, false, |w| {
            // The old layout: an 8-byte count, values as they are.
            let meta = Meta {
                kind: KeyType::Hash,
                expire_at: None,
                version: w.new_version(),
                modified: 1,
                body: count_body(2),
            };
            for (f, v) in [("b", "1"), ("a", "2")] {
                w.put_raw(
                    &encoding::member_key(0, b"old", meta.version, f.as_bytes()),
                    Bytes::copy_from_slice(v.as_bytes()),
                );
            }
            w.put_meta(b"old", &meta, None).unwrap();
            let mut c = open(w, b"old").unwrap();
            assert_eq!(pairs(c.in_order(w).unwrap()), ["a=2", "b=1"]);
            assert_eq!(c.get(w, b"b").unwrap(), Some(Bytes::from_static(b"1")));
            c.put(w, b"c", Bytes::from_static(b"3")).unwrap();
            c.save(w).unwrap();
            let c = open(w, b"old").unwrap();
            assert_eq!(pairs(c.in_order(w).unwrap()), ["a=2", "b=1", "c=3"]);
            assert!(!is_listpack_hash(c.meta()));
            assert_eq!(count_of(c.meta()).unwrap(), 3);
        });
    }

    #[test]
    fn the_count_follows_puts_and_removes_and_the_last_member_deletes_the_key() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, false, |w| {
            let mut c = Collection::create(w, b"h", KeyType::Hash);
            assert!(c.put(w, b"a", Bytes::from_static(b"1")).unwrap());
            assert!(c.put(w, b"b", Bytes::from_static(b"2")).unwrap());
            assert!(!c.put(w, b"a", Bytes::from_static(b"3")).unwrap());
            assert!(!c.remove(w, b"zz").unwrap());
            assert_eq!(c.len(), 2);
            c.save(w).unwrap();
            let m = w.meta(b"h").unwrap().unwrap();
            assert_eq!(
                (m.kind, count_of(&m).unwrap(), m.modified),
                (KeyType::Hash, 2, 1)
            );
            // A created collection that gets no member is never written.
            let c = Collection::create(w, b"empty", KeyType::Set);
            c.save(w).unwrap();
            assert!(!w.exists(b"empty").unwrap());
        });
        write(&db, &mem, 2, true, |w| {
            let mut c = open(w, b"h").unwrap();
            assert_eq!(c.get(w, b"a").unwrap().as_deref(), Some(&b"3"[..]));
            assert!(c.remove(w, b"a").unwrap());
            c.save(w).unwrap();
            assert_eq!(w.meta(b"h").unwrap().unwrap().modified, 2);
        });
        write(&db, &mem, 3, true, |w| {
            let mut c = open(w, b"h").unwrap();
            assert!(c.remove(w, b"b").unwrap());
            assert!(c.save(w).unwrap(), "the last member deletes the key");
            assert!(!w.exists(b"h").unwrap());
        });
    }

    #[test]
    fn versions_isolate_incarnations() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, true, |w| {
            let mut c = Collection::create(w, b"s", KeyType::Set);
            for m in ["x", "y", "z"] {
                c.put(w, m.as_bytes(), Bytes::new()).unwrap();
            }
            c.save(w).unwrap();
        });
        let orphan_rows = write(&db, &mem, 2, false, |w| {
            // DEL writes one row; the old members are unreachable from the new incarnation.
            assert!(w.delete(b"s").unwrap());
            let mut c = Collection::create(w, b"s", KeyType::Set);
            c.put(w, b"y", Bytes::new()).unwrap();
            c.save(w).unwrap();
            let c = open(w, b"s").unwrap();
            assert_eq!(members(w, &c, b""), ["y"]);
            assert!(!c.contains(w, b"x").unwrap());
            let (orphans, next) = find_orphans(w, &[encoding::FAMILY_MEMBER], 100, 100).unwrap();
            assert_eq!(next, None);
            orphans
        });
        assert_eq!(orphan_rows.len(), 3);
        write(&db, &mem, 3, true, |w| {
            for row in &orphan_rows {
                assert!(reap_orphan(w, row).unwrap());
            }
            // The live incarnation's row is never reaped, even if asked.
            let c = open(w, b"s").unwrap();
            let live = encoding::member_key(0, b"s", c.meta().version, b"y");
            assert!(!reap_orphan(w, &live).unwrap());
            let (orphans, _) = find_orphans(w, &[encoding::FAMILY_MEMBER], 100, 100).unwrap();
            assert!(orphans.is_empty());
        });
    }

    #[test]
    fn orphans_are_found_in_bounded_steps() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, true, |w| {
            for key in ["a", "b", "c"] {
                let mut c = Collection::create(w, key.as_bytes(), KeyType::Hash);
                for i in 0..50 {
                    c.put(w, format!("f{i:03}").as_bytes(), Bytes::new())
                        .unwrap();
                }
                c.save(w).unwrap();
            }
            w.delete(b"a").unwrap();
            w.set_string(b"c", Bytes::from_static(b"now a string"), None)
                .unwrap();
        });
        let mut r = crate::kv::Reader::new(&db, &mem);
        let mut from = vec![encoding::FAMILY_MEMBER];
        let mut found = 0;
        let mut rounds = 0;
        loop {
            let (orphans, next) = r.run(0, |v| find_orphans(v, &from, 7, 10)).unwrap();
            assert!(orphans.len() <= 7);
            found += orphans.len();
            rounds += 1;
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        assert_eq!(found, 100, "a's and c's rows, not b's");
        assert!(rounds >= 100 / 7);
    }

    #[test]
    fn scans_are_ordered_and_resume_from_any_member_across_flushes() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, true, |w| {
            let mut c = Collection::create(w, b"k", KeyType::Set);
            for m in ["d", "b", "a"] {
                c.put(w, m.as_bytes(), Bytes::new()).unwrap();
            }
            c.save(w).unwrap();
        });
        // Some members in the table, some in the memtable only.
        write(&db, &mem, 2, false, |w| {
            let mut c = open(w, b"k").unwrap();
            c.put(w, b"c", Bytes::new()).unwrap();
            c.put(w, b"e", Bytes::new()).unwrap();
            c.remove(w, b"b").unwrap();
            c.save(w).unwrap();
            let c = open(w, b"k").unwrap();
            assert_eq!(members(w, &c, b""), ["a", "c", "d", "e"]);
            assert_eq!(members(w, &c, b"c"), ["c", "d", "e"]);
            assert_eq!(members(w, &c, b"cc"), ["d", "e"]);
            assert_eq!(c.len(), 4);
            let picked = c.at_positions(w, &[0, 2, 2, 9]).unwrap();
            let names: Vec<_> = picked.iter().map(|(m, _)| m.clone()).collect();
            assert_eq!(names, ["a", "d", "d"]);
        });
    }

    #[test]
    fn seeded_picks_are_reproducible_and_distinct() {
        // Picks of one entry differ from each other; a new entry starts again.
        let firsts: Vec<u64> = (0..3).map(|_| pick_number(40)).collect();
        assert_eq!(firsts, vec![0, 1, 2]);
        assert_eq!(pick_number(41), 0);
        assert_eq!(pick_number(40), 0);
        let a = Rng::seeded(7, b"k").distinct(5, 10);
        assert_eq!(a, Rng::seeded(7, b"k").distinct(5, 10));
        assert_eq!(a.len(), 5);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.iter().all(|&p| p < 10));
        assert_eq!(
            Rng::seeded(1, b"k").distinct(10, 10),
            (0..10).collect::<Vec<_>>()
        );
        let mut r = Rng::seeded(3, b"x");
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
