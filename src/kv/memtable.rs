//! Applied writes not yet written to the `KV` table.
//!
//! Applying an entry changes this map, not redb: redb is a copy-on-write B-tree, and writing
//! every batch of applies into it would rewrite one leaf page per key at every fsync of the log.
//! Every so often (`FLUSH_INTERVAL`, `FLUSH_KEYS`) the map is written to the `KV` table together
//! with the applied index it covers, in one transaction, so the table and the applied index on
//! disk always agree; after a crash the entries past it are applied again from the raft log.
//!
//! Readers see the table and the map as one state. Each command runs under the read lock and
//! with a table read transaction opened in the same generation: a flush commits the table first
//! and empties the map (a new generation) only afterwards, so a reader sees the flushed writes in
//! the map, in the table, or in both, never in neither.
//!
//! A reader that may run long (a script) must not keep the lock while a writer waits: std's
//! lock queues new readers behind a waiting writer, so apply, the raft loop and every other
//! reader would stall behind it. Such a reader watches [`Memtable::writer_waiting`] and goes on
//! over [`State::snapshot`], a private copy of the state it holds (see `long_read`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{ReadOnlyTable, ReadableDatabase};

use crate::store::{Db, KV, StoreError};

/// Longest an applied write stays only in memory.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Most keys the map holds before it is flushed regardless of time.
const FLUSH_KEYS: usize = 50_000;

pub struct Memtable {
    state: RwLock<State>,
    /// Writers blocked in [`Memtable::write`] now.
    writers_waiting: AtomicUsize,
}

pub type KvTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

pub struct State {
    /// Keys changed since the last flush (or freeze). `Slot::in_table` of these is about the
    /// layers below: the frozen map over the table.
    pub(super) map: BTreeMap<RowKey, Slot>,
    /// The map taken out to be written to the table by the flusher (`freeze`), still read
    /// between `map` and the table until that commit is in (`thaw`).
    pub(super) frozen: Option<Arc<Frozen>>,
    /// Bit `d` set: database `d` was emptied (FLUSHDB, FLUSHALL) since the last flush, so the
    /// table's rows of it are all gone.
    pub(super) cleared: u32,
    /// Index and term of the last entry applied here and not yet flushed.
    pub(super) applied: Option<(u64, u64)>,
    /// Index of the last entry applied (or of the snapshot installed) since start: readers see
    /// the state as of it (`Reader::seen`). 0 before the first apply: the state on disk.
    pub(super) seen: u64,
    /// Bumped when a flush empties the map or a snapshot replaces the table.
    pub(super) generation: u64,
    /// A table read transaction of this generation, shared by readers; dropped with the
    /// generation so it does not keep old pages from being reused.
    base: Mutex<Option<(u64, Arc<KvTable>)>>,
    /// The database map (`encoding::DbMap`) as of this state, packed; `DB_MAP_UNKNOWN` until
    /// read (and again after a flush or a snapshot install). Readers fill it under the read
    /// lock, apply sets it under the write lock, so the two never race.
    pub(super) db_map: AtomicU64,
    last_flush: Instant,
    /// Keys written out by flushes ended since start (or dropped by snapshot installs): INFO
    /// persistence's `kvd_memtable_flushed_keys`. The allocator's count drops when a flush
    /// ends (the written map is freed: ~65 bytes a key beyond the key and value), so two
    /// readings of `used_memory` compare as the data set only if few keys were flushed between.
    flushed_keys: u64,
}

/// `State::db_map` not read yet (not a permutation, so never a real map).
pub(super) const DB_MAP_UNKNOWN: u64 = u64::MAX;

impl Memtable {
    pub fn new() -> Self {
        Memtable {
            state: RwLock::new(State {
                map: BTreeMap::new(),
                frozen: None,
                cleared: 0,
                applied: None,
                seen: 0,
                generation: 0,
                base: Mutex::new(None),
                db_map: AtomicU64::new(DB_MAP_UNKNOWN),
                last_flush: Instant::now(),
                flushed_keys: 0,
            }),
            writers_waiting: AtomicUsize::new(0),
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, State> {
        match self.state.try_write() {
            Ok(guard) => return guard,
            Err(TryLockError::Poisoned(e)) => return e.into_inner(),
            Err(TryLockError::WouldBlock) => {}
        }
        self.writers_waiting.fetch_add(1, Ordering::AcqRel);
        WRITERS_WAITING_ANYWHERE.fetch_add(1, Ordering::AcqRel);
        let guard = self.state.write().unwrap_or_else(PoisonError::into_inner);
        WRITERS_WAITING_ANYWHERE.fetch_sub(1, Ordering::AcqRel);
        self.writers_waiting.fetch_sub(1, Ordering::AcqRel);
        guard
    }

    /// True while a writer waits for the lock: a long reader should let go of it now (see
    /// `long_read`).
    pub fn writer_waiting(&self) -> bool {
        self.writers_waiting.load(Ordering::Acquire) != 0
    }
}

/// Writers blocked in [`Memtable::write`] of any memtable of this process (a node has one).
static WRITERS_WAITING_ANYWHERE: AtomicUsize = AtomicUsize::new(0);

/// True while a writer waits for some memtable's lock: one atomic load, cheap enough for a
/// script's instruction hook to ask every time before it looks further.
pub fn writer_waiting_anywhere() -> bool {
    WRITERS_WAITING_ANYWHERE.load(Ordering::Acquire) != 0
}

impl Default for Memtable {
    fn default() -> Self {
        Self::new()
    }
}

/// A memtable taken out of the way of applies to be written to the table off the apply path:
/// `map` and `cleared` as they were, covering the entries up to `applied`.
pub struct Frozen {
    pub(super) map: BTreeMap<RowKey, Slot>,
    pub(super) cleared: u32,
    pub applied: (u64, u64),
}

impl Frozen {
    /// True if the table's row `table_key` was emptied away by a FLUSHDB in this map's time.
    pub(super) fn cleared(&self, table_key: &[u8]) -> bool {
        cleared_in(self.cleared, table_key)
    }
}

pub(super) fn cleared_in(bits: u32, table_key: &[u8]) -> bool {
    super::encoding::db_of(table_key)
        .and_then(|db| 1u32.checked_shl(u32::from(db)))
        .is_some_and(|bit| bits & bit != 0)
}

/// A row key in the map. Kept inline up to 48 bytes (a member row of a 6-byte key and a 17-byte
/// member is 37 bytes, its score row 45), so a search compares bytes in the map's nodes rather
/// than following a pointer per comparison: a lookup in a 100k-row map costs about half as much
/// as with `Bytes` keys.
pub type RowKey = smallvec::SmallVec<[u8; 48]>;

/// A key changed since the last flush.
#[derive(Clone)]
pub struct Slot {
    /// Its value now, `None` if deleted.
    pub(super) value: Option<Bytes>,
    /// Whether the table holds it, if known (a SET does not look: counting keys finds out).
    pub(super) in_table: Option<bool>,
}

impl State {
    /// Time to write the map to the table.
    pub fn flush_due(&self) -> bool {
        self.applied.is_some()
            && (self.map.len() >= FLUSH_KEYS || self.last_flush.elapsed() >= FLUSH_INTERVAL)
    }

    /// The map has grown past what a flush in flight should let it reach: apply waits for the
    /// flusher before going on.
    pub fn overfull(&self) -> bool {
        self.frozen.is_some() && self.map.len() >= 4 * FLUSH_KEYS
    }

    /// The table as of this generation, shared by all its readers. The caller holds the lock
    /// this state is behind, so the generation cannot move while the transaction is opened.
    pub fn table(&self, db: &Db) -> Result<Arc<KvTable>, StoreError> {
        let mut base = self.base.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((generation, table)) = base.as_ref()
            && *generation == self.generation
        {
            return Ok(table.clone());
        }
        let table = Arc::new(db.begin_read()?.open_table(KV)?);
        *base = Some((self.generation, table.clone()));
        Ok(table)
    }

    /// True if the rows below the map (frozen map and table) of `table_key`'s database were
    /// emptied away by a FLUSHDB since the last freeze or flush.
    pub(super) fn cleared(&self, table_key: &[u8]) -> bool {
        cleared_in(self.cleared, table_key)
    }

    /// The frozen map being written to the table, if any.
    pub fn frozen(&self) -> Option<&Arc<Frozen>> {
        self.frozen.as_ref()
    }

    /// Takes the map out for the flusher (`None` if nothing was applied since the last
    /// freeze or flush, or a frozen map is still being written). Readers from now on see the
    /// new map over the frozen one over the table as it is now: a new generation whose table
    /// read transaction is opened here, before the flusher can commit, so no reader of it sees
    /// the frozen rows twice (in the map and in the table).
    pub fn freeze(&mut self, db: &Db) -> Result<Option<Arc<Frozen>>, StoreError> {
        if self.frozen.is_some() {
            return Ok(None);
        }
        let Some(applied) = self.applied else {
            return Ok(None);
        };
        let table = Arc::new(db.begin_read()?.open_table(KV)?);
        let frozen = Arc::new(Frozen {
            map: std::mem::take(&mut self.map),
            cleared: std::mem::take(&mut self.cleared),
            applied,
        });
        self.frozen = Some(frozen.clone());
        self.applied = None;
        self.generation += 1;
        *self.base.get_mut().unwrap_or_else(PoisonError::into_inner) =
            Some((self.generation, table));
        self.last_flush = Instant::now();
        Ok(Some(frozen))
    }

    /// The flusher's commit of the frozen map is in: read the table instead (a new generation,
    /// whose read transaction sees that commit). The database map is unchanged.
    pub fn thaw(&mut self) {
        let written = self.frozen.as_ref().map_or(0, |f| f.map.len());
        self.flushed_keys += written as u64;
        self.frozen = None;
        self.generation += 1;
        *self.base.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// A private copy of this state for a reader that goes on without the lock (`long_read`):
    /// the same rows and the same database map. It is never applied to nor flushed, and its
    /// reader keeps its own table transaction (never this copy's `table`).
    pub(super) fn snapshot(&self) -> State {
        State {
            map: self.map.clone(),
            frozen: self.frozen.clone(),
            cleared: self.cleared,
            applied: self.applied,
            seen: self.seen,
            generation: self.generation,
            base: Mutex::new(None),
            db_map: AtomicU64::new(self.db_map.load(Ordering::Relaxed)),
            last_flush: self.last_flush,
            flushed_keys: self.flushed_keys,
        }
    }

    /// Keys flushed so far (see the field).
    pub fn flushed_keys(&self) -> u64 {
        self.flushed_keys
    }

    pub fn applied(&self) -> Option<(u64, u64)> {
        self.applied
    }

    pub fn set_applied(&mut self, index: u64, term: u64) {
        self.applied = Some((index, term));
        self.seen = index;
    }

    /// A snapshot at `index` replaced the state (after `flushed`).
    pub fn replaced_at(&mut self, index: u64) {
        self.seen = index;
    }

    /// The flush of everything held here has committed, or a snapshot replaced the table and
    /// the applied index: start a new generation.
    pub fn flushed(&mut self) {
        self.flushed_keys += self.map.len() as u64;
        self.map.clear();
        self.frozen = None;
        self.cleared = 0;
        self.applied = None;
        self.generation += 1;
        *self.base.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
        *self.db_map.get_mut() = DB_MAP_UNKNOWN;
        self.last_flush = Instant::now();
    }
}
