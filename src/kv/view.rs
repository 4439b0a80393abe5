//! Typed access to the keyspace for commands: [`KeyRead`] for every read (on any node, or
//! inside apply), [`WriteView`] for changes (only inside the raft loop's apply).
//!
//! Both see the memtable's recent writes over the `kv` table as one state (`Layers`), laid out
//! as `encoding` describes. A read view's "now" is this node's clock (lazy expiry: a key whose
//! expiry has passed is absent to readers before the leader reclaims it); a write view's "now"
//! is the state machine's clock, taken from the entries, so every node decides alike.

use std::collections::btree_map;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use raft::eraftpb::ConfState;
use redb::{AccessGuard, ReadableTable, StorageError, Table};

use super::dirty::{DirtyCount, EntryChanges};
use super::encoding::{
    self, CLOCK_KEY, DATABASES, DB_FAMILIES, DB_MAP_KEY, DbMap, FAMILY_META, Meta, db_range,
    meta_has_expiry, meta_key,
};
use super::long_read::LongRead;
use super::memtable::{Frozen, KvTable, Memtable, RowKey, Slot, State, cleared_in};
use crate::events::Event;
use crate::store::{Db, KV, MEMBERS, StoreError};

/// Reads of the keyspace, the same for a connection's view and for apply.
pub trait KeyRead {
    /// The physical database commands address (the rows of the connection's SELECT, or the
    /// entry's, through the database map: `encoding::DbMap`).
    fn db(&self) -> u8;
    /// The logical database commands address (the number the client SELECTed).
    fn logical_db(&self) -> u8;
    /// "Now" in unix ms for expiry decisions.
    fn now_ms(&self) -> i64;
    /// One table row (memtable over table).
    fn raw(&self, table_key: &[u8]) -> Result<Option<Bytes>, StoreError>;
    /// Rows in `[lo, hi)` in order; `f` returns false to stop.
    fn scan_raw(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    /// Rows in `[lo, hi)` in reverse order (highest first); `f` returns false to stop. The
    /// default collects the range forward (views override it with a reverse seek).
    fn scan_raw_rev(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let mut rows = Vec::new();
        self.scan_raw(lo, hi, &mut |k, v| {
            rows.push((k.to_vec(), v.to_vec()));
            true
        })?;
        for (k, v) in rows.iter().rev() {
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }
    /// Keys stored in `db`, expired ones not yet reclaimed included (as Redis's DBSIZE).
    fn key_count(&self, db: u8) -> Result<u64, StoreError>;
    /// Keys of `db` with an expiry (due or not: as Redis, until they are removed).
    fn expires_count(&self, db: u8) -> Result<u64, StoreError>;
    /// Visits the keys of `db` written (and not deleted) since the last memtable flush.
    fn recent_keys(&self, db: u8, f: &mut dyn FnMut(&[u8]));

    /// One step of SCAN over the current database from position `cursor` (see
    /// `encoding::scan_hash`): about `count` live keys in position order, and the cursor to go on
    /// from (0 when done). Flushed keys come from the SCAN-order rows, recent ones from the
    /// memtable, merged by position, so a key present for the whole iteration is returned at
    /// least once whenever a flush happens, on any node. The work is bounded by `count` rows
    /// and the memtable's keys of the database.
    fn scan_step(
        &self,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<(Bytes, Meta)>), StoreError> {
        let db = self.db();
        let count = count.max(1);
        let lo = encoding::scan_from(db, cursor);
        let (_, hi) = db_range(encoding::FAMILY_SCAN, db);
        let mut found: Vec<(u64, Bytes)> = Vec::new();
        let mut boundary: Option<u64> = None;
        self.scan_raw(&lo, &hi, &mut |k, _| {
            let Some((h, key)) = encoding::parse_scan_key(k) else {
                return true;
            };
            // Past `count`, go on only through keys at the same position (so a position is
            // never split between two steps).
            if found.len() >= count && found.last().is_some_and(|(last, _)| *last != h) {
                boundary = Some(h);
                return false;
            }
            found.push((h, Bytes::copy_from_slice(key)));
            true
        })?;
        self.recent_keys(db, &mut |key| {
            let h = encoding::scan_hash(key);
            if h >= cursor && boundary.is_none_or(|b| h < b) {
                found.push((h, Bytes::copy_from_slice(key)));
            }
        });
        found.sort();
        found.dedup();
        if found.len() > count {
            let cut_at = found[count].0;
            if found[count - 1].0 != cut_at {
                found.retain(|(h, _)| *h < cut_at);
                boundary = Some(cut_at);
            }
        }
        let mut out = Vec::with_capacity(found.len());
        for (_, key) in found {
            if let Some(meta) = self.meta(&key)? {
                out.push((key, meta));
            }
        }
        Ok((boundary.unwrap_or(0), out))
    }

    /// A reader that may run long (a script) calls this now and then: if a writer waits for
    /// the memtable, a view that can (`Reader::run_long`) lets go of it and goes on over a copy
    /// of the state it had. Other views do nothing.
    fn yield_to_writers(&self) {}

    /// The index of the entry being applied, inside apply; `None` on a connection's view. A
    /// command that picks at random seeds from it inside apply (so every node picks alike) and
    /// may use local randomness elsewhere.
    fn entry_index(&self) -> Option<u64> {
        None
    }

    /// A live key's metadata (`None` if absent or expired).
    fn meta(&self, key: &[u8]) -> Result<Option<Meta>, StoreError> {
        self.meta_in(self.db(), key)
    }

    /// A live key's metadata in database `db`.
    fn meta_in(&self, db: u8, key: &[u8]) -> Result<Option<Meta>, StoreError> {
        // The table key on the stack when it fits (every GET comes here).
        let mut buf = [0u8; 64];
        let found = match buf.get_mut(2..2 + key.len()) {
            Some(slot) => {
                slot.copy_from_slice(key);
                buf[0] = FAMILY_META;
                buf[1] = db;
                self.raw(&buf[..2 + key.len()])?
            }
            None => self.raw(&meta_key(db, key))?,
        };
        let Some(raw) = found else {
            return Ok(None);
        };
        let meta = decode_meta(&raw)?;
        if meta.expired(self.now_ms()) {
            if let Some(at) = meta.expire_at {
                self.saw_expired(db, key, at);
            }
            return Ok(None);
        }
        Ok(Some(meta))
    }

    /// A key of physical database `db` was found expired at `at`: a connection's view asks
    /// for it to be reaped (`lazy_expiry`), as Redis deletes a key a command finds expired.
    /// Apply's view does nothing: what it finds expired is for the leader's reaping to remove.
    fn saw_expired(&self, _db: u8, _key: &[u8], _at: i64) {}

    fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.meta(key)?.is_some())
    }

    /// Index of the last entry that removed a key of `db` or emptied it (0: none yet), for
    /// WATCH of an absent key (see `encoding`'s deleted row).
    fn last_deletion(&self, db: u8) -> Result<u64, StoreError> {
        match self.raw(&encoding::deleted_key(db))? {
            None => Ok(0),
            Some(raw) => {
                let b: [u8; 8] = raw
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::corrupt("last deletion index", "not 8 bytes"))?;
                Ok(u64::from_be_bytes(b))
            }
        }
    }

    /// Visits the live keys of the current database in order; `f` returns false to stop.
    fn scan_keys(&self, f: &mut dyn FnMut(&[u8], &Meta) -> bool) -> Result<(), StoreError> {
        let db = self.db();
        let now = self.now_ms();
        let (lo, hi) = db_range(FAMILY_META, db);
        let mut failed = None;
        self.scan_raw(&lo, &hi, &mut |k, v| {
            let Some(key) = encoding::user_key(db, k) else {
                return true;
            };
            match decode_meta(&Bytes::copy_from_slice(v)) {
                Ok(meta) if meta.expired(now) => {
                    // KEYS passes over it as Redis's deletes it: reaped like a read one.
                    if let Some(at) = meta.expire_at {
                        self.saw_expired(db, key, at);
                    }
                    true
                }
                Ok(meta) => f(key, &meta),
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        failed.map_or(Ok(()), Err)
    }
}

/// The first byte string after every one that starts with `prefix`.
fn end_of_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// `[lo, hi)` as a range over unsized byte strings (what `BTreeMap<Bytes, _>::range` takes).
fn between<'a>(lo: &'a [u8], hi: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (Bound::Included(lo), Bound::Excluded(hi))
}

fn decode_meta(raw: &Bytes) -> Result<Meta, StoreError> {
    Meta::decode(raw).map_err(|e| StoreError::corrupt("key metadata", e))
}

thread_local! {
    /// Set while a script runs inside apply: the commands it calls are prepared with the
    /// entry's clock, not this node's (see [`with_fixed_clock`]).
    static FIXED_CLOCK: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with [`wall_clock_ms`] answering `now` on this thread: a script's commands are
/// prepared inside apply (relative TTLs made absolute), and must use the entry's time there.
pub fn with_fixed_clock<R>(now: i64, f: impl FnOnce() -> R) -> R {
    let before = FIXED_CLOCK.with(|c| c.replace(Some(now)));
    let r = f();
    FIXED_CLOCK.with(|c| c.set(before));
    r
}

/// The node's wall clock in unix ms (reads only; apply never looks at it, except through
/// [`with_fixed_clock`]).
pub fn wall_clock_ms() -> i64 {
    if let Some(now) = FIXED_CLOCK.with(|c| c.get()) {
        return now;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The table under the memtable, whichever transaction it belongs to: a read transaction's
/// (readers, and apply while the flusher writes), or the apply write transaction's.
pub(super) trait Rows {
    fn row(&self, k: &[u8]) -> Result<Option<AccessGuard<'_, &'static [u8]>>, StorageError>;
    fn rows(&self, lo: &[u8], hi: &[u8]) -> Result<TableRange<'_>, StorageError>;
}

type TableRange<'a> = redb::Range<'a, &'static [u8], &'static [u8]>;

impl Rows for KvTable {
    fn row(&self, k: &[u8]) -> Result<Option<AccessGuard<'_, &'static [u8]>>, StorageError> {
        self.get(k)
    }
    fn rows(&self, lo: &[u8], hi: &[u8]) -> Result<TableRange<'_>, StorageError> {
        self.range::<&[u8]>(lo..hi)
    }
}

impl Rows for Table<'_, &'static [u8], &'static [u8]> {
    fn row(&self, k: &[u8]) -> Result<Option<AccessGuard<'_, &'static [u8]>>, StorageError> {
        self.get(k)
    }
    fn rows(&self, lo: &[u8], hi: &[u8]) -> Result<TableRange<'_>, StorageError> {
        self.range::<&[u8]>(lo..hi)
    }
}

/// The memtable over the frozen map (while one is being flushed) over a table, as one state.
struct Layers<'a> {
    mem: &'a State,
    table: &'a dyn Rows,
}

/// One row of the memtable layers in a range, in order: the map's, else the frozen map's
/// (unless a FLUSHDB since hid it). `None`: deleted.
type Recent<'a> = (&'a RowKey, Option<&'a Bytes>);

/// The memtable layers' rows of `[lo, hi)` merged in key order (`rev`: highest first), the
/// map's word winning over the frozen map's.
fn merged<'a>(
    mem: &'a State,
    lo: &'a [u8],
    hi: &'a [u8],
    rev: bool,
) -> Box<dyn Iterator<Item = Recent<'a>> + 'a> {
    let top = mem.map.range::<[u8], _>(between(lo, hi));
    let top: Box<dyn Iterator<Item = (&RowKey, &Slot)>> = if rev {
        Box::new(top.rev())
    } else {
        Box::new(top)
    };
    let top = top.map(|(k, s)| (k, s.value.as_ref()));
    let Some(frozen) = mem.frozen.as_deref() else {
        return Box::new(top);
    };
    let low = frozen.map.range::<[u8], _>(between(lo, hi));
    let low: Box<dyn Iterator<Item = (&RowKey, &Slot)>> = if rev {
        Box::new(low.rev())
    } else {
        Box::new(low)
    };
    let low = low
        .filter(move |(k, _)| !mem.cleared(k))
        .map(|(k, s)| (k, s.value.as_ref()));
    Box::new(Merge {
        top: top.peekable(),
        low: low.peekable(),
        rev,
    })
}

/// Two key-ordered runs as one, `top` winning on equal keys.
struct Merge<A: Iterator, B: Iterator> {
    top: std::iter::Peekable<A>,
    low: std::iter::Peekable<B>,
    rev: bool,
}

impl<'a, A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = Recent<'a>>,
    B: Iterator<Item = Recent<'a>>,
{
    type Item = Recent<'a>;

    fn next(&mut self) -> Option<Recent<'a>> {
        let order = match (self.top.peek(), self.low.peek()) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((a, _)), Some((b, _))) if self.rev => b.cmp(a),
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            std::cmp::Ordering::Less => self.top.next(),
            std::cmp::Ordering::Greater => self.low.next(),
            std::cmp::Ordering::Equal => {
                self.low.next();
                self.top.next()
            }
        }
    }
}

impl Layers<'_> {
    /// The memtable's word on a row, if it has one: `Some(None)` means deleted.
    fn recent(&self, k: &[u8]) -> Option<Option<&Bytes>> {
        match self.mem.map.get(k) {
            Some(slot) => return Some(slot.value.as_ref()),
            None if self.mem.cleared(k) => return Some(None),
            None => {}
        }
        let frozen = self.mem.frozen.as_deref()?;
        match frozen.map.get(k) {
            Some(slot) => Some(slot.value.as_ref()),
            None if frozen.cleared(k) => Some(None),
            None => None,
        }
    }

    /// True if rows of the table in `table_key`'s database are hidden by a FLUSHDB in either
    /// memtable layer.
    fn table_cleared(&self, table_key: &[u8]) -> bool {
        self.mem.cleared(table_key)
            || self
                .mem
                .frozen
                .as_deref()
                .is_some_and(|f| f.cleared(table_key))
    }

    /// The database map of this state (cached in the memtable's state, see `State::db_map`).
    fn db_map(&self) -> Result<DbMap, StoreError> {
        let cached = self.mem.db_map.load(Relaxed);
        if let Some(map) = DbMap::from_packed(cached) {
            return Ok(map);
        }
        let map = match self.get(&DB_MAP_KEY)? {
            None => DbMap::IDENTITY,
            Some(raw) => DbMap::decode(&raw)
                .ok_or_else(|| StoreError::corrupt("database map", "not a permutation"))?,
        };
        self.mem.db_map.store(map.packed(), Relaxed);
        Ok(map)
    }

    fn get(&self, k: &[u8]) -> Result<Option<Bytes>, StoreError> {
        if let Some(v) = self.recent(k) {
            return Ok(v.cloned());
        }
        Ok(self
            .table
            .row(k)?
            .map(|v| Bytes::copy_from_slice(v.value())))
    }

    /// Whether the layers below the map (the frozen map over the table) hold row `k`.
    fn below(&self, k: &[u8]) -> Result<Option<Bytes>, StoreError> {
        if self.mem.cleared(k) {
            return Ok(None);
        }
        if let Some(frozen) = self.mem.frozen.as_deref() {
            if let Some(slot) = frozen.map.get(k) {
                return Ok(slot.value.clone());
            }
            if frozen.cleared(k) {
                return Ok(None);
            }
        }
        Ok(self
            .table
            .row(k)?
            .map(|v| Bytes::copy_from_slice(v.value())))
    }

    fn scan(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_dir(lo, hi, false, f)
    }

    /// `scan` from the highest row down.
    fn scan_rev(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_dir(lo, hi, true, f)
    }

    fn scan_dir(
        &self,
        lo: &[u8],
        hi: &[u8],
        rev: bool,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if lo >= hi {
            return Ok(());
        }
        let mut recent = merged(self.mem, lo, hi, rev).peekable();
        // Rows of the memtable before `key` in scan order.
        let before = |rk: &[u8], key: &[u8]| if rev { rk > key } else { rk < key };
        let table = self.table.rows(lo, hi)?;
        let table: Box<dyn Iterator<Item = _>> = if rev {
            Box::new(table.rev())
        } else {
            Box::new(table)
        };
        for row in table {
            let (k, v) = row?;
            let key = k.value();
            // Recent rows before this one, then this one unless the memtable has its own word.
            while let Some((rk, value)) = recent.next_if(|(rk, _)| before(rk, key)) {
                if let Some(rv) = value
                    && !f(rk, rv)
                {
                    return Ok(());
                }
            }
            if let Some((_, value)) = recent.next_if(|(rk, _)| rk.as_ref() == key) {
                if let Some(rv) = value
                    && !f(key, rv)
                {
                    return Ok(());
                }
                continue;
            }
            if self.table_cleared(key) {
                continue;
            }
            if !f(key, v.value()) {
                return Ok(());
            }
        }
        for (rk, value) in recent {
            if let Some(rv) = value
                && !f(rk, rv)
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// A count of `db`'s keys as of now: `flushed` (the table's count row) corrected by each
    /// metadata row the memtable layers changed, `now` telling whether a row's value counts.
    /// A layer whose database was cleared counts from zero.
    fn count_live(
        &self,
        db: u8,
        flushed: u64,
        now: impl Fn(Option<&Bytes>) -> bool,
        hint: impl Fn(&Slot) -> Option<bool>,
    ) -> Result<u64, StoreError> {
        let (lo, hi) = db_range(FAMILY_META, db);
        let mut n = flushed as i64;
        if let Some(frozen) = self.mem.frozen.as_deref() {
            if frozen.cleared(&lo) {
                n = 0;
            }
            for (k, slot) in frozen.map.range::<[u8], _>(between(&lo, &hi)) {
                let was = if frozen.cleared(&lo) {
                    false
                } else {
                    match hint(slot) {
                        Some(b) => b,
                        None => now(self
                            .table
                            .row(k)?
                            .map(|v| Bytes::copy_from_slice(v.value()))
                            .as_ref()),
                    }
                };
                n += now(slot.value.as_ref()) as i64 - was as i64;
            }
        }
        if self.mem.cleared(&lo) {
            n = 0;
        }
        for (k, slot) in self.mem.map.range::<[u8], _>(between(&lo, &hi)) {
            let was = if self.mem.cleared(&lo) {
                false
            } else {
                match hint(slot) {
                    Some(b) => b,
                    None => now(self.below(k)?.as_ref()),
                }
            };
            n += now(slot.value.as_ref()) as i64 - was as i64;
        }
        Ok(n.max(0) as u64)
    }

    fn recent_keys(&self, db: u8, f: &mut dyn FnMut(&[u8])) {
        let (lo, hi) = db_range(FAMILY_META, db);
        for (k, value) in merged(self.mem, &lo, &hi, false) {
            if value.is_some() {
                f(&k[2..]);
            }
        }
    }

    /// The table's count for `db` as of the last flush, corrected for each key the memtable
    /// changed (looking up below those whose presence there is not known yet).
    fn key_count(&self, db: u8) -> Result<u64, StoreError> {
        let flushed = table_count(self.table, db)?;
        self.count_live(db, flushed, |v| v.is_some(), |slot| slot.in_table)
    }

    fn expires_count(&self, db: u8) -> Result<u64, StoreError> {
        let flushed = table_u64(self.table, &encoding::expires_key(db), "expires count")?;
        let has = |v: Option<&Bytes>| v.is_some_and(|v| meta_has_expiry(v));
        self.count_live(db, flushed, has, |_| None)
    }
}

/// The count row of `db` (0 if none yet).
fn table_count(table: &dyn Rows, db: u8) -> Result<u64, StoreError> {
    table_u64(table, &encoding::count_key(db), "key count")
}

/// A u64 system row (absent: 0).
fn table_u64(table: &dyn Rows, key: &[u8], what: &'static str) -> Result<u64, StoreError> {
    match table.row(key)? {
        None => Ok(0),
        Some(v) => {
            let b: [u8; 8] = v
                .value()
                .try_into()
                .map_err(|_| StoreError::corrupt(what, "not 8 bytes"))?;
            Ok(u64::from_be_bytes(b))
        }
    }
}

/// A connection's way to read: runs each command on one consistent view of the applied state
/// (the memtable over a table read transaction of the same generation).
pub struct Reader {
    db: Db,
    mem: Arc<Memtable>,
    base: Option<(u64, Arc<KvTable>)>,
    /// The applied index of the state the last command ran on (`State::seen`).
    seen: u64,
}

impl Reader {
    pub fn new(db: &Db, mem: &Arc<Memtable>) -> Self {
        Reader {
            db: db.clone(),
            mem: mem.clone(),
            base: None,
            seen: 0,
        }
    }

    /// The applied index of the state the last `run` or `run_long` read: CLIENT TRACKING
    /// tells which writes its reader saw by it.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Runs `f` on (logical) database `db` as it is now, with this node's clock.
    pub fn run<R>(
        &mut self,
        db: u8,
        f: impl FnOnce(&ReadView) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mem = self.mem.read();
        self.seen = mem.seen;
        let kv = match &self.base {
            Some((generation, kv)) if *generation == mem.generation => kv,
            _ => {
                let kv = mem.table(&self.db)?;
                &self.base.insert((mem.generation, kv)).1
            }
        };
        let layers = Layers {
            mem: &mem,
            table: &**kv,
        };
        let map = layers.db_map()?;
        f(&ReadView {
            layers,
            db: map.physical(db),
            logical: db,
            map,
            now: wall_clock_ms(),
        })
    }

    /// As [`Reader::run`], for a reader that may run long (a script): the view lets go of the
    /// memtable's lock when a writer waits, going on over a copy of the same state (see
    /// `long_read`), so what `f` sees is still one state, as of the call.
    pub fn run_long<R>(
        &mut self,
        db: u8,
        f: impl FnOnce(&dyn KeyRead) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mem = self.mem.read();
        self.seen = mem.seen;
        let kv = match &self.base {
            Some((generation, kv)) if *generation == mem.generation => kv.clone(),
            _ => {
                let kv = mem.table(&self.db)?;
                self.base = Some((mem.generation, kv.clone()));
                kv
            }
        };
        let map = Layers {
            mem: &mem,
            table: &*kv,
        }
        .db_map()?;
        let view = LongRead::new(&self.mem, mem, kv, map, db, wall_clock_ms());
        f(&view)
    }
}

/// A consistent read-only view of the keyspace at this node's applied state.
pub struct ReadView<'a> {
    layers: Layers<'a>,
    /// Physical, and the logical database it is.
    db: u8,
    logical: u8,
    map: DbMap,
    now: i64,
}

impl<'a> ReadView<'a> {
    /// The view of `mem` over `table` (for `long_read`, which builds one per read).
    pub(super) fn over(
        mem: &'a State,
        table: &'a KvTable,
        map: DbMap,
        logical: u8,
        now: i64,
    ) -> ReadView<'a> {
        ReadView {
            layers: Layers { mem, table },
            db: map.physical(logical),
            logical,
            map,
            now,
        }
    }

    /// The same view (same state, same clock) addressing (logical) database `db`: a read-only
    /// transaction whose commands SELECT another database stays on one consistent state.
    pub fn in_db(&self, db: u8) -> ReadView<'_> {
        ReadView {
            layers: Layers {
                mem: self.layers.mem,
                table: self.layers.table,
            },
            db: self.map.physical(db),
            logical: db,
            map: self.map,
            now: self.now,
        }
    }
}

impl KeyRead for ReadView<'_> {
    fn db(&self) -> u8 {
        self.db
    }

    fn saw_expired(&self, db: u8, key: &[u8], at: i64) {
        super::lazy_expiry::noticed(db, at, key);
    }

    fn logical_db(&self) -> u8 {
        self.logical
    }

    fn now_ms(&self) -> i64 {
        self.now
    }

    fn raw(&self, table_key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.layers.get(table_key)
    }

    fn scan_raw(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.layers.scan(lo, hi, f)
    }

    fn scan_raw_rev(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.layers.scan_rev(lo, hi, f)
    }

    fn key_count(&self, db: u8) -> Result<u64, StoreError> {
        self.layers.key_count(db)
    }

    fn expires_count(&self, db: u8) -> Result<u64, StoreError> {
        self.layers.expires_count(db)
    }

    fn recent_keys(&self, db: u8, f: &mut dyn FnMut(&[u8])) {
        self.layers.recent_keys(db, f)
    }
}

/// Facts about the entry being applied, for commands whose effect depends on cluster state
/// (JOIN, LEAVE). Everything here is itself replicated state, so every node decides alike.
pub struct ApplyCtx<'a> {
    /// Index of the entry being applied.
    pub index: u64,
    /// The configuration in force before this entry.
    pub conf_state: &'a ConfState,
    /// This node proposed the entry: for this node's INFO counters only (a script's commands
    /// count where its client is); what apply writes never depends on it.
    pub local: bool,
}

/// The state machine inside the raft loop's apply transaction: key-value writes go to the
/// memtable (over the table as of this transaction), member changes to their table directly.
pub struct WriteView<'t> {
    mem: &'t mut State,
    kv: Source<'t>,
    /// The member records, when applying in a write transaction (`open`): the entries that
    /// change them (`StateMachine::needs_members`) are applied only so.
    members: Option<Table<'t, &'static str, &'static [u8]>>,
    /// The entry being applied: its database (physical, and the logical one it is, through
    /// `map`), the clock, its index.
    db: u8,
    logical: u8,
    map: DbMap,
    clock: i64,
    index: u64,
    next_version: u64,
    /// Reused for building table keys, so a write allocates only what the memtable keeps.
    scratch: Vec<u8>,
    /// What the entries applied through this view did, for node-local listeners (see
    /// `crate::events`); `None` while no listener wants them.
    events: Option<Vec<Event>>,
    /// The connection the events being collected are attributed to (`writer`).
    last_writer: u64,
    /// Bit `d`: the entry being applied has recorded itself as physical database `d`'s last
    /// write (`encoding::written_key`), so its further writes there need not.
    written: u32,
    /// Redis's dirty count of the entry being applied (`super::dirty`).
    dirty: DirtyCount,
}

/// Where apply reads the table under the memtable.
enum Source<'t> {
    /// The apply write transaction's table.
    Write(Table<'t, &'static [u8], &'static [u8]>),
    /// The memtable generation's read transaction (apply needing no write transaction).
    Read(Arc<KvTable>),
}

impl<'t> WriteView<'t> {
    /// A view applying in `txn` (which may also change member records).
    pub fn open(txn: &'t redb::WriteTransaction, mem: &'t mut State) -> Result<Self, StoreError> {
        let kv = Source::Write(txn.open_table(KV)?);
        let members = Some(txn.open_table(MEMBERS)?);
        Self::with(kv, members, mem)
    }

    /// A view applying over the table as this memtable generation reads it, with no write
    /// transaction: nothing but the memtable changes (so a flush may run meanwhile).
    pub fn open_read(db: &Db, mem: &'t mut State) -> Result<Self, StoreError> {
        let kv = Source::Read(mem.table(db)?);
        Self::with(kv, None, mem)
    }

    /// The member records (only in a write transaction; see `members`).
    pub fn members(&mut self) -> Result<&mut Table<'t, &'static str, &'static [u8]>, StoreError> {
        self.members.as_mut().ok_or_else(|| {
            StoreError::corrupt(
                "apply",
                "member records changed outside a write transaction",
            )
        })
    }

    fn with(
        kv: Source<'t>,
        members: Option<Table<'t, &'static str, &'static [u8]>>,
        mem: &'t mut State,
    ) -> Result<Self, StoreError> {
        let mut view = WriteView {
            mem,
            kv,
            members,
            db: 0,
            logical: 0,
            map: DbMap::IDENTITY,
            clock: 0,
            index: 0,
            next_version: 0,
            scratch: Vec::new(),
            events: None,
            last_writer: 0,
            written: 0,
            dirty: DirtyCount::default(),
        };
        if let Some(raw) = view.layers().get(&CLOCK_KEY)? {
            let b: [u8; 8] = raw
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::corrupt("state machine clock", "not 8 bytes"))?;
            view.clock = i64::from_be_bytes(b);
        }
        view.map = view.layers().db_map()?;
        view.db = view.map.physical(0);
        Ok(view)
    }

    fn layers(&self) -> Layers<'_> {
        let table: &dyn Rows = match &self.kv {
            Source::Write(t) => t,
            Source::Read(t) => &**t,
        };
        Layers {
            mem: self.mem,
            table,
        }
    }

    /// Starts applying the entry at `index`, proposed at `time_ms` on its proposer's clock, for
    /// database `db` (checked by the caller). The state machine's clock never goes back: a
    /// proposer whose clock is behind another's cannot bring an expired key back to life.
    pub fn begin_entry(&mut self, db: u8, time_ms: i64, index: u64) {
        self.select_db(db);
        self.index = index;
        self.written = 0;
        self.dirty.begin_entry();
        self.next_version = encoding::first_version(index);
        if time_ms > self.clock {
            self.clock = time_ms;
            self.put_raw(&CLOCK_KEY, Bytes::copy_from_slice(&time_ms.to_be_bytes()));
        }
    }

    /// A command of the entry starts (`cmd::apply_counted`): its changes are counted from here.
    pub fn begin_command(&mut self) {
        self.dirty.begin_command();
    }

    /// Adds `n` to the changes the command being applied made, as Redis's `server.dirty += n`.
    /// A command that never calls it counts 1 if it wrote or removed any row (`super::dirty`).
    pub fn dirty(&mut self, n: u64) {
        self.dirty.state(n);
    }

    /// The command being applied is a FLUSHALL (see `dirty::EntryChanges::after_flushall`).
    pub fn dirty_flushall(&mut self) {
        self.dirty.flushed_all();
    }

    /// The command being applied is done: its changes join the entry's.
    pub fn end_command(&mut self) {
        self.dirty.end_command();
    }

    /// The changes of the entry applied last (`StateMachine` hands them to the node's counter).
    pub fn take_changes(&mut self) -> EntryChanges {
        self.dirty.take()
    }

    /// Starts collecting events (see `crate::events`) for the entries applied from now on.
    pub fn collect_events(&mut self) {
        self.events.get_or_insert_with(Vec::new);
    }

    /// Whether events are being collected (commands skip reads only events need otherwise).
    pub fn collecting_events(&self) -> bool {
        self.events.is_some()
    }

    /// The events collected so far (none unless `collect_events` was called).
    /// A batch ends attributed to nobody, so batches can be joined (`Summary::merge`).
    pub fn take_events(&mut self) -> Vec<Event> {
        self.writer(0);
        self.events.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Raises a keyspace notification for `key` in the current database, as Redis's
    /// `notifyKeyspaceEvent`: `class` is its flag character, `event` its event name.
    pub fn notify(&mut self, class: char, event: &'static str, key: &[u8]) {
        self.notify_in(self.db, class, event, key);
    }

    /// `notify` for a key of physical database `db` (active expiry reaps keys of every
    /// database); the event names the logical database it is now.
    pub fn notify_in(&mut self, db: u8, class: char, event: &'static str, key: &[u8]) {
        if let Some(events) = &mut self.events {
            events.push(Event::Notify {
                db: self.map.logical(db),
                class,
                event,
                key: Bytes::copy_from_slice(key),
            });
        }
    }

    /// Attributes the events that follow to connection `conn` of this node (see
    /// `Event::Writer`); recorded only when it changes, so a batch of one writer's entries (or
    /// of nobody's) costs nothing.
    pub fn writer(&mut self, conn: u64) {
        if let Some(events) = &mut self.events
            && self.last_writer != conn
        {
            self.last_writer = conn;
            events.push(Event::Writer { conn });
        }
    }

    /// Records that the metadata row `table_key` (`01 db key`) was written or removed.
    fn changed(&mut self, table_key: &[u8]) {
        self.dirty.row_changed();
        if let Some(events) = &mut self.events
            && let [FAMILY_META, db, key @ ..] = table_key
        {
            events.push(Event::Changed {
                db: self.map.logical(*db),
                key: Bytes::copy_from_slice(key),
            });
        }
    }

    /// Switches the database commands address within the entry being applied (a transaction's
    /// commands each carry theirs; the caller checks `db < DATABASES`). Unlike `begin_entry`, the
    /// version counter goes on: incarnations created by one entry stay unique.
    pub fn select_db(&mut self, db: u8) {
        self.logical = db;
        self.db = self.map.physical(db);
    }

    /// The physical database of logical database `db` (MOVE's and COPY's target).
    pub fn physical_db(&self, db: u8) -> u8 {
        self.map.physical(db)
    }

    /// SWAPDB: logical databases `a` and `b` (checked by the caller) exchange their data, by
    /// exchanging their physical databases in the map (O(1): no row moves). Watched keys of
    /// both abort (a present one changed `modified` unless one entry wrote both, an absent one
    /// sees its database's deletion index move, as after a FLUSHDB); clients blocked on keys
    /// of either database look again (`Event::Swapped`).
    pub fn swap_dbs(&mut self, a: u8, b: u8) {
        if a == b || a >= DATABASES || b >= DATABASES {
            return;
        }
        let (pa, pb) = (self.map.physical(a), self.map.physical(b));
        self.record_deletion(pa);
        self.record_deletion(pb);
        self.map = self.map.swapped(a, b);
        self.mem.db_map.store(self.map.packed(), Relaxed);
        self.put_raw(&DB_MAP_KEY, Bytes::copy_from_slice(&self.map.encode()));
        self.db = self.map.physical(self.logical);
        if let Some(events) = &mut self.events {
            events.push(Event::Swapped { a, b });
        }
    }

    /// Index of the entry being applied (what a key's `modified` records).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// A version no incarnation of any key has had (see `encoding`).
    pub fn new_version(&mut self) -> u64 {
        let v = self.next_version;
        self.next_version = self.next_version.saturating_add(1);
        v
    }

    /// Stores a key's metadata row and keeps the expiry index in step: `old_expiry` is the
    /// expiry the key had, if the caller read it (its index row is removed when it changes).
    /// Callers that do not read the old row (a plain SET) may leave a stale index row behind;
    /// active expiry drops it when its time comes (see `reap`).
    pub fn put_meta(
        &mut self,
        key: &[u8],
        meta: &Meta,
        old_expiry: Option<i64>,
    ) -> Result<(), StoreError> {
        self.put_meta_in(self.db, key, meta, old_expiry)
    }

    /// `put_meta` in database `db`.
    pub fn put_meta_in(
        &mut self,
        db: u8,
        key: &[u8],
        meta: &Meta,
        old_expiry: Option<i64>,
    ) -> Result<(), StoreError> {
        if let Some(old) = old_expiry
            && meta.expire_at != Some(old)
        {
            self.delete_raw(&encoding::expiry_key(db, old, key))?;
        }
        if let Some(at) = meta.expire_at
            && old_expiry != Some(at)
        {
            self.put_raw(&encoding::expiry_key(db, at, key), Bytes::new());
        }
        let mut k = std::mem::take(&mut self.scratch);
        k.clear();
        k.extend_from_slice(&[FAMILY_META, db]);
        k.extend_from_slice(key);
        self.put_raw(&k, meta.encode());
        self.scratch = k;
        Ok(())
    }

    /// Copies a live key (metadata, expiry, member rows) to `dst` in `dst_db` as a new
    /// incarnation, replacing whatever `dst` held. Returns false if `src` is absent.
    pub fn copy_key(&mut self, src: &[u8], dst_db: u8, dst: &[u8]) -> Result<bool, StoreError> {
        let Some(meta) = self.meta(src)? else {
            return Ok(false);
        };
        let old_expiry = self.meta_in(dst_db, dst)?.and_then(|m| m.expire_at);
        let version = self.new_version();
        let mut rows = Vec::new();
        // Member rows, and a sorted set's score rows: the same suffix under the new owner.
        for family in encoding::OWNED_FAMILIES {
            let prefix = encoding::owned_prefix(family, self.db, src, meta.version);
            let mut to = encoding::owned_prefix(family, dst_db, dst, version);
            let base = to.len();
            self.scan_raw(&prefix, &end_of_prefix(&prefix), &mut |k, v| {
                to.truncate(base);
                to.extend_from_slice(&k[prefix.len()..]);
                rows.push((Bytes::copy_from_slice(&to), Bytes::copy_from_slice(v)));
                true
            })?;
        }
        for (k, v) in rows {
            self.put_raw(&k, v);
        }
        let copy = Meta {
            version,
            modified: self.index,
            ..meta
        };
        self.put_meta_in(dst_db, dst, &copy, old_expiry)?;
        Ok(true)
    }

    /// Sets a string value: a new incarnation with the given expiry (none: as SET without
    /// KEEPTTL).
    pub fn set_string(
        &mut self,
        key: &[u8],
        value: Bytes,
        expire_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut meta = Meta::string(value, self.new_version(), self.index);
        meta.expire_at = expire_at;
        self.put_meta(key, &meta, None)
    }

    /// Removes a key (its member rows become unreachable with its version); true if it was live.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        self.delete_in(self.db, key)
    }

    /// `delete` in database `db`.
    pub fn delete_in(&mut self, db: u8, key: &[u8]) -> Result<bool, StoreError> {
        let k = meta_key(db, key);
        let Some(raw) = self.raw(&k)? else {
            return Ok(false);
        };
        let meta = decode_meta(&raw)?;
        if let Some(at) = meta.expire_at {
            self.delete_raw(&encoding::expiry_key(db, at, key))?;
        }
        self.delete_raw(&k)?;
        Ok(!meta.expired(self.clock))
    }

    /// Active expiry of one index row `(db, at, key)`: drops the row, and the key if its expiry
    /// is still `at` and due by the entry's clock (a key given a new TTL or rewritten since the
    /// row was read stays). True if a key was removed.
    pub fn reap(&mut self, db: u8, at: i64, key: &[u8]) -> Result<bool, StoreError> {
        self.delete_raw(&encoding::expiry_key(db, at, key))?;
        let k = meta_key(db, key);
        let Some(raw) = self.raw(&k)? else {
            return Ok(false);
        };
        let meta = decode_meta(&raw)?;
        if meta.expire_at == Some(at) && meta.expired(self.clock) {
            self.delete_raw(&k)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes one row. Writing a key's metadata row records this entry as its database's last
    /// write (once per entry and database), for FLUSHDB's deletion index.
    pub fn put_raw(&mut self, table_key: &[u8], value: Bytes) {
        if table_key.first() == Some(&FAMILY_META)
            && let Some(db) = encoding::db_of(table_key)
            && let Some(bit) = 1u32.checked_shl(db.into())
            && self.written & bit == 0
        {
            self.written |= bit;
            let index = Bytes::copy_from_slice(&self.index.to_be_bytes());
            self.put_raw(&encoding::written_key(db), index);
        }
        self.changed(table_key);
        let value = Some(value);
        // Whether the table holds it matters only for counting keys: not looked up here.
        let in_table = self.mem.cleared(table_key).then_some(false);
        // One search of the map (a copy of the key costs less than a second search).
        match self.mem.map.entry(RowKey::from_slice(table_key)) {
            btree_map::Entry::Occupied(mut slot) => slot.get_mut().value = value,
            btree_map::Entry::Vacant(slot) => {
                slot.insert(Slot { value, in_table });
            }
        }
    }

    /// Removes one row; true if it existed. Removing a key's metadata row (live or expired)
    /// records this entry as its database's last deletion, for WATCH.
    pub fn delete_raw(&mut self, table_key: &[u8]) -> Result<bool, StoreError> {
        let existed = if let Some(slot) = self.mem.map.get_mut(table_key) {
            slot.value.take().is_some()
        } else if self.mem.cleared(table_key) {
            false
        } else {
            let existed = self.layers().below(table_key)?.is_some();
            if existed {
                let slot = Slot {
                    value: None,
                    in_table: Some(true),
                };
                self.mem.map.insert(RowKey::from_slice(table_key), slot);
            }
            existed
        };
        if existed
            && table_key.first() == Some(&FAMILY_META)
            && let Some(db) = encoding::db_of(table_key)
        {
            self.changed(table_key);
            self.record_deletion(db);
        }
        Ok(existed)
    }

    /// Removes a member row (never a metadata row) known to exist, without looking below the
    /// memtable for it: a tombstone over a row that is in fact absent is harmless (the flush
    /// removes nothing), so this only saves the lookup `delete_raw` makes.
    pub fn delete_present(&mut self, table_key: &[u8]) {
        debug_assert_ne!(table_key.first(), Some(&FAMILY_META));
        self.mem
            .map
            .entry(RowKey::from_slice(table_key))
            .and_modify(|slot| slot.value = None)
            .or_insert(Slot {
                value: None,
                in_table: None,
            });
    }

    /// Records the entry being applied as `db`'s last deletion (see `KeyRead::last_deletion`).
    fn record_deletion(&mut self, db: u8) {
        self.record_deletion_at(db, self.index);
    }

    fn record_deletion_at(&mut self, db: u8, index: u64) {
        let index = Bytes::copy_from_slice(&index.to_be_bytes());
        self.put_raw(&encoding::deleted_key(db), index);
    }

    /// Empties database `db` (FLUSHDB). Its deletion index becomes its last write's (if later
    /// than the one it has): every key it removes was last changed then or before, so a key
    /// watched while absent since then was not among them and its WATCH holds, as in Redis,
    /// while one created after its WATCH (and removed here) aborts EXEC.
    pub fn clear_db(&mut self, db: u8) -> Result<(), StoreError> {
        let Some(bit) = 1u32.checked_shl(u32::from(db)) else {
            return Ok(());
        };
        let written = self.system_u64(&encoding::written_key(db), "last write index")?;
        if written > self.last_deletion(db)? {
            self.record_deletion_at(db, written);
        }
        self.mem.cleared |= bit;
        if let Some(events) = &mut self.events {
            events.push(Event::Flushed {
                db: self.map.logical(db),
            });
        }
        for family in DB_FAMILIES {
            let (lo, hi) = db_range(family, db);
            let doomed: Vec<RowKey> = self
                .mem
                .map
                .range::<[u8], _>(between(&lo, &hi))
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                self.mem.map.remove(&k);
            }
        }
        Ok(())
    }

    /// Empties every database (FLUSHALL).
    pub fn clear_all(&mut self) -> Result<(), StoreError> {
        for db in 0..DATABASES {
            self.clear_db(db)?;
        }
        Ok(())
    }

    /// A u64 system row (absent: 0).
    fn system_u64(&self, key: &[u8], what: &'static str) -> Result<u64, StoreError> {
        match self.raw(key)? {
            None => Ok(0),
            Some(raw) => {
                let b: [u8; 8] = raw
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::corrupt(what, "not 8 bytes"))?;
                Ok(u64::from_be_bytes(b))
            }
        }
    }
}

impl KeyRead for WriteView<'_> {
    fn db(&self) -> u8 {
        self.db
    }

    fn logical_db(&self) -> u8 {
        self.logical
    }

    fn entry_index(&self) -> Option<u64> {
        Some(self.index)
    }

    fn now_ms(&self) -> i64 {
        self.clock
    }

    fn raw(&self, table_key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.layers().get(table_key)
    }

    fn scan_raw(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.layers().scan(lo, hi, f)
    }

    fn scan_raw_rev(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.layers().scan_rev(lo, hi, f)
    }

    fn key_count(&self, db: u8) -> Result<u64, StoreError> {
        self.layers().key_count(db)
    }

    fn expires_count(&self, db: u8) -> Result<u64, StoreError> {
        self.layers().expires_count(db)
    }

    fn recent_keys(&self, db: u8, f: &mut dyn FnMut(&[u8])) {
        self.layers().recent_keys(db, f)
    }
}

/// Writes the memtable's changes to the table, in `txn`, keeping each database's key count row
/// exact. The caller records the applied index in the same transaction and calls
/// `State::flushed` once it has committed. A frozen map still unwritten must go first.
pub fn flush_into(txn: &redb::WriteTransaction, mem: &State) -> Result<(), StoreError> {
    if mem.frozen.is_some() {
        return Err(StoreError::corrupt(
            "memtable",
            "flush while a frozen map is being written",
        ));
    }
    flush_rows(txn, &mem.map, mem.cleared)
}

/// `flush_into` for a frozen map (the flusher's part): its rows over the table.
pub fn flush_frozen(txn: &redb::WriteTransaction, frozen: &Frozen) -> Result<(), StoreError> {
    flush_rows(txn, &frozen.map, frozen.cleared)
}

fn flush_rows(
    txn: &redb::WriteTransaction,
    map: &std::collections::BTreeMap<RowKey, Slot>,
    cleared: u32,
) -> Result<(), StoreError> {
    let mut kv = txn.open_table(KV)?;
    let mut counts = [0i64; DATABASES as usize];
    let mut expires = [0i64; DATABASES as usize];
    let mut touched = [false; DATABASES as usize];
    for db in 0..DATABASES {
        let (lo, _) = db_range(FAMILY_META, db);
        if cleared_in(cleared, &lo) {
            for family in DB_FAMILIES {
                let (lo, hi) = db_range(family, db);
                kv.retain_in::<&[u8], _>(&lo[..]..&hi[..], |_, _| false)?;
            }
            touched[db as usize] = true;
        } else {
            counts[db as usize] = table_count(&kv, db)? as i64;
            expires[db as usize] =
                table_u64(&kv, &encoding::expires_key(db), "expires count")? as i64;
        }
    }
    for (k, slot) in map {
        let (existed, expired_before) = {
            let old = match &slot.value {
                Some(v) => kv.insert(k.as_ref(), v.as_ref())?,
                None => kv.remove(k.as_ref())?,
            };
            (
                old.is_some(),
                old.is_some_and(|o| meta_has_expiry(o.value())),
            )
        };
        if k.first() == Some(&FAMILY_META)
            && let Some(db) = encoding::db_of(k).filter(|&d| d < DATABASES)
        {
            let expiring = slot.value.as_ref().is_some_and(|v| meta_has_expiry(v));
            let change = expiring as i64 - expired_before as i64;
            if change != 0 {
                expires[db as usize] += change;
                touched[db as usize] = true;
            }
            let delta = slot.value.is_some() as i64 - existed as i64;
            if delta != 0 {
                counts[db as usize] += delta;
                touched[db as usize] = true;
                // The key appeared in or left the table: so does its SCAN-order row.
                let user = &k[2..];
                let row = encoding::scan_key(db, user);
                if delta > 0 {
                    kv.insert(&row[..], &[][..])?;
                } else {
                    kv.remove(&row[..])?;
                }
            }
        }
    }
    for db in 0..DATABASES {
        if touched[db as usize] {
            let n = counts[db as usize].max(0) as u64;
            kv.insert(&encoding::count_key(db)[..], &n.to_be_bytes()[..])?;
            let e = expires[db as usize].max(0) as u64;
            kv.insert(&encoding::expires_key(db)[..], &e.to_be_bytes()[..])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store;

    fn setup() -> (tempfile::TempDir, Db, Arc<Memtable>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = store::open(&dir.path().join("d"), 1 << 20).expect("open");
        (dir, db, Arc::new(Memtable::new()))
    }

    /// Applies `f` to the memtable in a write transaction (as entry `index`, database 0, at
    /// time 1000); flushes (and commits) if asked.
    fn write(db: &Db, mem: &Memtable, flush: bool, f: impl FnOnce(&mut WriteView)) {
        let txn = db.begin_write().expect("txn");
        let mut state = mem.write();
        {
            let mut view = WriteView::open(&txn, &mut state).expect("view");
            view.begin_entry(0, 1000, 1);
            f(&mut view);
        }
        if flush {
            flush_into(&txn, &state).expect("flush");
            txn.commit().expect("commit");
            state.flushed();
        } else {
            txn.abort().expect("abort");
        }
    }

    fn set(w: &mut WriteView, k: &str, v: &str) {
        w.set_string(k.as_bytes(), Bytes::copy_from_slice(v.as_bytes()), None)
            .unwrap();
    }

    fn all(db: &Db, mem: &Arc<Memtable>, dbn: u8) -> (Vec<(String, String)>, u64) {
        let mut r = Reader::new(db, mem);
        r.run(dbn, |v| {
            let mut rows = Vec::new();
            v.scan_keys(&mut |k, meta| {
                rows.push((
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(&meta.body).into_owned(),
                ));
                true
            })?;
            Ok((rows, v.key_count(dbn)?))
        })
        .expect("read")
    }

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_with_an_expiry_are_counted_in_the_memtable_and_across_flushes() {
        let (_d, db, mem) = setup();
        let expiring = |w: &mut WriteView, k: &str, at: Option<i64>| {
            w.set_string(k.as_bytes(), Bytes::from_static(b"v"), at)
                .unwrap();
        };
        let count = |dbn: u8| {
            Reader::new(&db, &mem)
                .run(dbn, |v| v.expires_count(dbn))
                .expect("read")
        };
        write(&db, &mem, false, |w| {
            expiring(w, "a", Some(5000));
            expiring(w, "b", Some(6000));
            expiring(w, "c", None);
            assert_eq!(w.expires_count(0).unwrap(), 2, "memtable only");
        });
        assert_eq!(count(0), 2, "readers see the memtable");
        write(&db, &mem, true, |w| {
            expiring(w, "a", Some(5000));
            expiring(w, "b", Some(6000));
            expiring(w, "c", None);
            w.select_db(3);
            expiring(w, "d", Some(7000));
        });
        assert_eq!((count(0), count(3)), (2, 1), "flushed");
        write(&db, &mem, false, |w| {
            expiring(w, "a", None); // loses its expiry
            expiring(w, "c", Some(9000)); // gains one
            assert!(w.delete(b"b").unwrap());
            assert_eq!(w.expires_count(0).unwrap(), 1, "table + memtable");
        });
        write(&db, &mem, true, |w| w.clear_db(3).unwrap());
        assert_eq!((count(0), count(3)), (1, 0), "flushed again");
    }

    #[test]
    fn applied_writes_are_recorded_as_events_only_when_collected() {
        let (_d, db, mem) = setup();
        write(&db, &mem, true, |w| {
            set(w, "quiet", "x");
            assert!(w.take_events().is_empty(), "not collecting");
            w.collect_events();
            set(w, "a", "1");
            w.notify('$', "set", b"a");
            w.select_db(2);
            set(w, "b", "1");
            assert!(w.delete(b"b").unwrap());
            assert!(!w.delete(b"absent").unwrap(), "no row: no event");
            w.select_db(0);
            assert!(w.delete(b"quiet").unwrap());
            w.clear_db(5).unwrap();
            let changed = |db, k: &str| Event::Changed {
                db,
                key: Bytes::copy_from_slice(k.as_bytes()),
            };
            assert_eq!(
                w.take_events(),
                vec![
                    changed(0, "a"),
                    Event::Notify {
                        db: 0,
                        class: '$',
                        event: "set",
                        key: Bytes::from_static(b"a"),
                    },
                    changed(2, "b"),
                    changed(2, "b"),
                    changed(0, "quiet"),
                    Event::Flushed { db: 5 },
                ]
            );
            assert!(w.take_events().is_empty(), "taken");
        });
    }

    #[test]
    fn recent_writes_override_the_table_in_order_and_count() {
        let (_d, db, mem) = setup();
        write(&db, &mem, true, |w| {
            for k in ["a", "c", "e", "g"] {
                set(w, k, "old");
            }
        });
        write(&db, &mem, false, |w| {
            set(w, "b", "new"); // new key between table keys
            set(w, "c", "new"); // overrides a table key
            assert!(w.delete(b"e").unwrap()); // deletes a table key
            assert!(!w.delete(b"zz").unwrap()); // absent: no change
            set(w, "h", "new"); // after the last table key
            assert_eq!(w.meta(b"e").unwrap(), None);
            assert_eq!(&w.meta(b"g").unwrap().unwrap().body[..], b"old");
        });
        let expect = rows(&[
            ("a", "old"),
            ("b", "new"),
            ("c", "new"),
            ("g", "old"),
            ("h", "new"),
        ]);
        assert_eq!(all(&db, &mem, 0), (expect.clone(), 5));
        // Written to the table, the same state, now without the memtable; the count row agrees.
        write(&db, &mem, true, |_| {});
        assert!(mem.read().map.iter().all(|(k, _)| k[..] == CLOCK_KEY));
        assert_eq!(all(&db, &mem, 0), (expect, 5));
    }

    /// A random mix of writes, FLUSHDBs, freezes, frozen-map writes and flushes reads (forward,
    /// reverse, counts, in apply and in readers) exactly as a plain model of the keyspace.
    #[test]
    fn a_frozen_map_between_memtable_and_table_reads_as_one_state() {
        use std::collections::BTreeMap;
        let (_d, db, mem) = setup();
        let mut model: [BTreeMap<String, (String, bool)>; 2] = Default::default();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut index = 1;
        let mut frozen_steps = 0;
        for step in 0..3000 {
            let op = next(100);
            let dbn = next(2) as u8;
            let key = format!("k{}", next(40));
            let frozen = mem.read().frozen().is_some();
            frozen_steps += frozen as u32;
            if op < 85 {
                let mut state = mem.write();
                let txn = (!frozen).then(|| db.begin_write().expect("txn"));
                {
                    let mut w = match &txn {
                        Some(t) => WriteView::open(t, &mut state).expect("view"),
                        None => WriteView::open_read(&db, &mut state).expect("view"),
                    };
                    w.begin_entry(dbn, 1000, index);
                    let m = &mut model[dbn as usize];
                    if op < 55 {
                        let v = format!("v{step}");
                        let at = (op % 2 == 0).then_some(4_000_000_000_000);
                        w.set_string(key.as_bytes(), Bytes::from(v.clone()), at)
                            .unwrap();
                        m.insert(key.clone(), (v, at.is_some()));
                    } else if op < 83 {
                        assert_eq!(w.delete(key.as_bytes()).unwrap(), m.remove(&key).is_some());
                    } else {
                        w.clear_db(dbn).expect("clear");
                        m.clear();
                    }
                }
                state.set_applied(index, 1);
                index += 1;
                drop(state);
                if let Some(t) = txn {
                    t.abort().expect("abort");
                }
            } else if op < 92 {
                let _ = mem.write().freeze(&db).expect("freeze");
            } else if op < 97 {
                let frozen = mem.read().frozen().cloned();
                if let Some(fz) = frozen {
                    let txn = db.begin_write().expect("txn");
                    flush_frozen(&txn, &fz).expect("flush frozen");
                    txn.commit().expect("commit");
                    mem.write().thaw();
                }
            } else if !frozen {
                let txn = db.begin_write().expect("txn");
                let mut state = mem.write();
                flush_into(&txn, &state).expect("flush");
                txn.commit().expect("commit");
                state.flushed();
            }
            for d in 0..2u8 {
                let m = &model[d as usize];
                let want: Vec<(String, String)> =
                    m.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect();
                let (got, count) = all(&db, &mem, d);
                assert_eq!(got, want, "step {step} db {d}");
                assert_eq!(count, m.len() as u64, "key count, step {step} db {d}");
                let expiring = m.values().filter(|(_, e)| *e).count() as u64;
                let (rev, expires) = Reader::new(&db, &mem)
                    .run(d, |v| {
                        let (lo, hi) = db_range(FAMILY_META, d);
                        let mut keys = Vec::new();
                        v.scan_raw_rev(&lo, &hi, &mut |k, _| {
                            keys.push(String::from_utf8_lossy(&k[2..]).into_owned());
                            true
                        })?;
                        Ok((keys, v.expires_count(d)?))
                    })
                    .expect("read");
                let mut want_rev: Vec<String> = m.keys().cloned().collect();
                want_rev.reverse();
                assert_eq!(rev, want_rev, "reverse, step {step} db {d}");
                assert_eq!(expires, expiring, "expires count, step {step} db {d}");
            }
        }
        assert!(
            frozen_steps > 300,
            "frozen maps were read ({frozen_steps} steps)"
        );
    }

    #[test]
    fn flushdb_empties_one_database_only() {
        let (_d, db, mem) = setup();
        write(&db, &mem, true, |w| {
            set(w, "a", "1");
            set(w, "b", "2");
            w.begin_entry(1, 1000, 2);
            set(w, "other", "x");
        });
        write(&db, &mem, false, |w| {
            w.clear_db(0).unwrap();
            assert!(!w.exists(b"a").unwrap());
            set(w, "b", "3");
            assert!(!w.delete(b"a").unwrap());
        });
        assert_eq!(all(&db, &mem, 0), (rows(&[("b", "3")]), 1));
        write(&db, &mem, true, |_| {});
        assert_eq!(all(&db, &mem, 0), (rows(&[("b", "3")]), 1));
        assert_eq!(all(&db, &mem, 1), (rows(&[("other", "x")]), 1));
        write(&db, &mem, true, |w| w.clear_all().unwrap());
        assert_eq!(all(&db, &mem, 1), (vec![], 0));
    }

    #[test]
    fn expired_keys_are_absent_but_counted_until_removed() {
        let (_d, db, mem) = setup();
        write(&db, &mem, true, |w| {
            let mut m = Meta::string(Bytes::from_static(b"v"), w.new_version(), 1);
            m.expire_at = Some(1001);
            w.put_meta(b"soon", &m, None).unwrap();
            m.expire_at = Some(1);
            w.put_meta(b"gone", &m, None).unwrap();
            // The entry's clock (1000) decides in apply, not the node's.
            assert!(w.exists(b"soon").unwrap());
            assert!(!w.exists(b"gone").unwrap());
            w.begin_entry(0, 500, 2);
            assert_eq!(w.now_ms(), 1000, "the clock never goes back");
        });
        // The node's clock is far past both: readers see neither, DBSIZE counts both.
        assert_eq!(all(&db, &mem, 0), (vec![], 2));
    }

    /// The expiry index rows of database 0, as (at, key).
    fn index_rows(w: &WriteView) -> Vec<(i64, Vec<u8>)> {
        let (lo, hi) = encoding::expiry_range(0, i64::MAX);
        let mut rows = Vec::new();
        w.scan_raw(&lo, &hi, &mut |k, _| {
            let (_, at, key) = encoding::parse_expiry_key(k).unwrap();
            rows.push((at, key.to_vec()));
            true
        })
        .unwrap();
        rows
    }

    #[test]
    fn the_expiry_index_follows_ttls_and_reaping_rechecks_each_key() {
        let (_d, db, mem) = setup();
        write(&db, &mem, false, |w| {
            w.set_string(b"a", Bytes::from_static(b"1"), Some(2000))
                .unwrap();
            w.set_string(b"b", Bytes::from_static(b"2"), Some(1500))
                .unwrap();
            assert_eq!(
                index_rows(w),
                vec![(1500, b"b".to_vec()), (2000, b"a".to_vec())]
            );
            // A new TTL moves the row; DEL drops it.
            let mut m = w.meta(b"a").unwrap().unwrap();
            m.expire_at = Some(3000);
            w.put_meta(b"a", &m, Some(2000)).unwrap();
            assert!(w.delete(b"b").unwrap());
            assert_eq!(index_rows(w), vec![(3000, b"a".to_vec())]);
            // A plain SET over a key with a TTL leaves a stale row: reaping drops the row but
            // keeps the key, whose expiry is no longer that one.
            w.set_string(b"a", Bytes::from_static(b"new"), None)
                .unwrap();
            w.begin_entry(0, 5000, 2);
            assert!(!w.reap(0, 3000, b"a").unwrap());
            assert!(w.exists(b"a").unwrap());
            assert!(index_rows(w).is_empty());
            // A due key is removed; one not yet due by the entry's clock is not.
            w.set_string(b"c", Bytes::from_static(b"3"), Some(4000))
                .unwrap();
            w.set_string(b"d", Bytes::from_static(b"4"), Some(9000))
                .unwrap();
            assert!(w.reap(0, 4000, b"c").unwrap());
            assert!(!w.reap(0, 9000, b"d").unwrap());
            assert!(w.raw(&meta_key(0, b"c")).unwrap().is_none());
            assert!(w.raw(&meta_key(0, b"d")).unwrap().is_some());
        });
    }

    #[test]
    fn removing_keys_and_flushing_record_the_last_deletion_per_database() {
        let (_d, db, mem) = setup();
        let last = |db: &Db, dbn: u8| {
            Reader::new(db, &mem)
                .run(0, |v| v.last_deletion(dbn))
                .expect("read")
        };
        write(&db, &mem, true, |w| {
            set(w, "a", "1");
            set(w, "b", "1");
        });
        assert_eq!(last(&db, 0), 0);
        write(&db, &mem, true, |w| {
            w.begin_entry(0, 1000, 5);
            assert!(!w.delete(b"nothere").unwrap());
            assert_eq!(w.last_deletion(0).unwrap(), 0, "nothing removed");
            w.begin_entry(0, 1000, 6);
            assert!(w.delete(b"a").unwrap());
            // A flush records the last write of its database: nothing removed was newer.
            w.begin_entry(1, 1000, 7);
            set(w, "c", "1");
            w.begin_entry(1, 1000, 8);
            w.clear_db(1).unwrap();
            // Nothing was ever written in database 2: its flush removes nothing.
            w.begin_entry(2, 1000, 9);
            w.clear_db(2).unwrap();
        });
        assert_eq!((last(&db, 0), last(&db, 1), last(&db, 2)), (6, 7, 0));
        write(&db, &mem, false, |w| {
            w.begin_entry(3, 1000, 10);
            set(w, "d", "1");
            w.begin_entry(0, 1000, 11);
            w.clear_all().unwrap();
        });
        // Database 0 was last written at 1, before its deletion at 6.
        assert_eq!((last(&db, 0), last(&db, 3), last(&db, 15)), (6, 10, 0));
        // Not user data: it does not count as a key.
        assert_eq!(all(&db, &mem, 0), (vec![], 0));
    }

    #[test]
    fn versions_are_unique_within_and_across_entries() {
        let (_d, db, mem) = setup();
        write(&db, &mem, false, |w| {
            let a = w.new_version();
            let b = w.new_version();
            w.begin_entry(0, 0, 2);
            let c = w.new_version();
            assert!(a < b && b < c);
        });
    }

    #[test]
    fn a_reader_sees_flushed_writes_across_generations() {
        let (_d, db, mem) = setup();
        write(&db, &mem, false, |w| set(w, "k", "v1"));
        let mut r = Reader::new(&db, &mem);
        let get = |r: &mut Reader| r.run(0, |v| Ok(v.meta(b"k")?.map(|m| m.body))).unwrap();
        assert_eq!(get(&mut r).as_deref(), Some(&b"v1"[..]));
        // The flush empties the memtable; the reader's older table transaction must not be
        // used alone afterwards.
        write(&db, &mem, true, |_| {});
        assert_eq!(get(&mut r).as_deref(), Some(&b"v1"[..]));
        write(&db, &mem, false, |w| {
            w.delete(b"k").unwrap();
        });
        assert_eq!(get(&mut r), None);
        assert_eq!(r.run(0, |v| v.key_count(0)).unwrap(), 0);
    }
}
