//! A read view for readers that may run long (scripts on a connection): one consistent state,
//! as any view, that does not hold up writers.
//!
//! A view holds the memtable's read lock. A script may run for seconds, and while a writer
//! waits for that lock (apply in the raft loop, a flush) std's lock also queues every new
//! reader behind it: the node would stop applying, persisting and answering reads until the
//! script ends. So a [`LongRead`] starts under the lock like any view and, when the script
//! reaches a yield point ([`KeyRead::yield_to_writers`]: before each command it calls, and
//! every few thousand Lua instructions) while a writer waits, copies the memtable state it
//! holds ([`State::snapshot`]) and lets go of the lock. It keeps its table read transaction,
//! which redb keeps as of its start (flushes and snapshot installs after it commit new
//! versions), so the copy over that transaction is exactly the state the script started on:
//! the script still sees one state, as if it had run at once at its start, which is what a
//! read-only script is allowed to see in Redis (nothing runs during it there).
//!
//! The copy costs one clone of the memtable map (the values are shared `Bytes`; at most
//! `FLUSH_KEYS` keys: 3 to 12 ms for a full memtable of 50,000 keys on a 2-core test machine), so a script keeps the lock for its first
//! [`HOLD_AT_MOST`]: a short script that a write catches lets it in when it ends, sooner than a
//! copy would, and only a long one that a write catches pays for the copy.

use std::cell::RefCell;
use std::sync::{Arc, RwLockReadGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::encoding::DbMap;
use super::memtable::{KvTable, Memtable, State};
use super::view::{KeyRead, ReadView};
use crate::store::StoreError;

/// How long a view keeps the lock while a writer waits (see the module docs): the longest a
/// local script delays apply.
const HOLD_AT_MOST: Duration = Duration::from_millis(2);

/// What the view reads: the memtable's state under its lock, or a copy of it.
enum Held<'m> {
    Locked(RwLockReadGuard<'m, State>),
    Copied(Box<State>),
}

/// See the module docs; built by `Reader::run_long`.
pub struct LongRead<'m> {
    mem: &'m Memtable,
    held: RefCell<Held<'m>>,
    table: Arc<KvTable>,
    map: DbMap,
    logical: u8,
    now: i64,
    started: Instant,
}

impl<'m> LongRead<'m> {
    pub(super) fn new(
        mem: &'m Memtable,
        guard: RwLockReadGuard<'m, State>,
        table: Arc<KvTable>,
        map: DbMap,
        logical: u8,
        now: i64,
    ) -> Self {
        LongRead {
            mem,
            held: RefCell::new(Held::Locked(guard)),
            table,
            map,
            logical,
            now,
            started: Instant::now(),
        }
    }

    /// True once the view has let go of the lock.
    #[cfg(test)]
    fn copied(&self) -> bool {
        matches!(&*self.held.borrow(), Held::Copied(_))
    }

    fn with<R>(&self, f: impl FnOnce(&ReadView) -> R) -> R {
        let held = self.held.borrow();
        let state: &State = match &*held {
            Held::Locked(guard) => guard,
            Held::Copied(copy) => copy,
        };
        f(&ReadView::over(
            state,
            &self.table,
            self.map,
            self.logical,
            self.now,
        ))
    }
}

impl KeyRead for LongRead<'_> {
    fn saw_expired(&self, db: u8, key: &[u8], at: i64) {
        super::lazy_expiry::noticed(db, at, key);
    }

    fn yield_to_writers(&self) {
        if !self.mem.writer_waiting() || self.started.elapsed() < HOLD_AT_MOST {
            return;
        }
        // A read in progress (never the case at a yield point) keeps the lock a little longer.
        let Ok(mut held) = self.held.try_borrow_mut() else {
            return;
        };
        if let Held::Locked(guard) = &*held {
            let copy = Box::new(guard.snapshot());
            // Dropping the guard lets the writer in.
            *held = Held::Copied(copy);
        }
    }

    fn db(&self) -> u8 {
        self.map.physical(self.logical)
    }

    fn logical_db(&self) -> u8 {
        self.logical
    }

    fn now_ms(&self) -> i64 {
        self.now
    }

    fn raw(&self, table_key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.with(|v| v.raw(table_key))
    }

    fn scan_raw(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.with(|v| v.scan_raw(lo, hi, f))
    }

    fn scan_raw_rev(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.with(|v| v.scan_raw_rev(lo, hi, f))
    }

    fn key_count(&self, db: u8) -> Result<u64, StoreError> {
        self.with(|v| v.key_count(db))
    }

    fn expires_count(&self, db: u8) -> Result<u64, StoreError> {
        self.with(|v| v.expires_count(db))
    }

    fn recent_keys(&self, db: u8, f: &mut dyn FnMut(&[u8])) {
        self.with(|v| v.recent_keys(db, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Reader, WriteView, flush_into};
    use crate::store::{self, Db};

    fn setup() -> (tempfile::TempDir, Db, Arc<Memtable>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = store::open(&dir.path().join("d"), 1 << 20).expect("open");
        (dir, db, Arc::new(Memtable::new()))
    }

    /// Sets `pairs` in database 0 as one entry, flushing the memtable after it if asked.
    fn write(db: &Db, mem: &Memtable, flush: bool, pairs: &[(&str, &str)]) {
        let txn = db.begin_write().expect("txn");
        let mut state = mem.write();
        {
            let mut w = WriteView::open(&txn, &mut state).expect("view");
            w.begin_entry(0, 1000, 1);
            for (k, v) in pairs {
                w.set_string(k.as_bytes(), Bytes::copy_from_slice(v.as_bytes()), None)
                    .expect("set");
            }
        }
        if flush {
            flush_into(&txn, &state).expect("flush");
            txn.commit().expect("commit");
            state.flushed();
        } else {
            txn.abort().expect("abort");
        }
    }

    fn value(v: &dyn KeyRead, key: &str) -> Option<String> {
        v.meta(key.as_bytes())
            .expect("read")
            .map(|m| String::from_utf8_lossy(&m.body).into_owned())
    }

    #[test]
    fn a_waiting_writer_gets_in_and_the_long_reader_keeps_its_state() {
        let (_d, db, mem) = setup();
        write(&db, &mem, true, &[("flushed", "old")]);
        write(&db, &mem, false, &[("recent", "old")]);
        let mut reader = Reader::new(&db, &mem);
        let deadline = Instant::now() + Duration::from_secs(20);
        reader
            .run_long(0, |v| {
                // Nobody waits: the view keeps the lock.
                v.yield_to_writers();
                let writer = std::thread::spawn({
                    let (db, mem) = (db.clone(), mem.clone());
                    move || {
                        write(&db, &mem, false, &[("recent", "new"), ("flushed", "new")]);
                        write(&db, &mem, true, &[("added", "new")]);
                    }
                });
                while !mem.writer_waiting() {
                    assert!(Instant::now() < deadline, "the writer never waited");
                    std::thread::yield_now();
                }
                assert!(!writer.is_finished(), "the writer waits for this view");
                while !writer.is_finished() {
                    assert!(Instant::now() < deadline, "the writer never got in");
                    v.yield_to_writers();
                    std::thread::yield_now();
                }
                writer.join().expect("writer");
                // Both writes and a flush went in; this view still sees its state.
                assert_eq!(value(v, "recent").as_deref(), Some("old"));
                assert_eq!(value(v, "flushed").as_deref(), Some("old"));
                assert_eq!(value(v, "added"), None);
                assert_eq!(v.key_count(0)?, 2);
                Ok(())
            })
            .expect("long read");
        let now = Reader::new(&db, &mem)
            .run(0, |v| {
                Ok((
                    value(v, "recent"),
                    value(v, "flushed"),
                    value(v, "added"),
                    v.key_count(0)?,
                ))
            })
            .expect("read");
        assert_eq!(
            now,
            (
                Some("new".into()),
                Some("new".into()),
                Some("new".into()),
                3
            )
        );
    }

    #[test]
    fn a_long_read_without_writers_keeps_the_lock_and_copies_nothing() {
        let (_d, db, mem) = setup();
        write(&db, &mem, false, &[("k", "v")]);
        let view = LongRead::new(
            &mem,
            mem.read(),
            mem.read().table(&db).expect("table"),
            DbMap::IDENTITY,
            0,
            0,
        );
        view.yield_to_writers();
        assert!(!view.copied());
        assert_eq!(value(&view, "k").as_deref(), Some("v"));
    }
}
