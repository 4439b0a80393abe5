//! Typed access to the state machine's tables for commands.

use std::sync::Arc;

use bytes::Bytes;
use raft::eraftpb::ConfState;
use redb::{ReadableTable, ReadableTableMetadata, Table};

use super::memtable::{KvTable, Memtable, Slot, State};
use crate::store::{Db, KV, MEMBERS, StoreError};

/// A connection's way to read: runs each command on one consistent view of the applied state
/// (the memtable over a table read transaction of the same generation).
pub struct Reader {
    db: Db,
    mem: Arc<Memtable>,
    base: Option<(u64, Arc<KvTable>)>,
}

impl Reader {
    pub fn new(db: &Db, mem: &Arc<Memtable>) -> Self {
        Reader {
            db: db.clone(),
            mem: mem.clone(),
            base: None,
        }
    }

    /// Runs `f` on the state as it is now.
    pub fn run<R>(
        &mut self,
        f: impl FnOnce(&ReadView) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mem = self.mem.read();
        let kv = match &self.base {
            Some((generation, kv)) if *generation == mem.generation => kv,
            _ => {
                let kv = mem.table(&self.db)?;
                &self.base.insert((mem.generation, kv)).1
            }
        };
        f(&ReadView { mem: &mem, kv })
    }
}

/// A consistent read-only view of the key-value state: the memtable's recent writes over the
/// table. Every read in it sees the same applied state.
pub struct ReadView<'a> {
    mem: &'a State,
    kv: &'a KvTable,
}

impl ReadView<'_> {
    /// The memtable's word on a key, if it has one: `Some(None)` means deleted.
    fn recent(&self, key: &[u8]) -> Option<Option<&Bytes>> {
        match self.mem.map.get(key) {
            Some(slot) => Some(slot.value.as_ref()),
            None if self.mem.cleared => Some(None),
            None => None,
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        if let Some(v) = self.recent(key) {
            return Ok(v.cloned());
        }
        Ok(self.kv.get(key)?.map(|v| Bytes::copy_from_slice(v.value())))
    }

    /// Length of a value without copying it.
    pub fn len_of(&self, key: &[u8]) -> Result<Option<usize>, StoreError> {
        if let Some(v) = self.recent(key) {
            return Ok(v.map(Bytes::len));
        }
        Ok(self.kv.get(key)?.map(|v| v.value().len()))
    }

    pub fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        if let Some(v) = self.recent(key) {
            return Ok(v.is_some());
        }
        Ok(self.kv.get(key)?.is_some())
    }

    /// Number of keys: the table's, corrected for each key the memtable changed (looking up in
    /// the table those whose presence there is not known yet).
    pub fn len(&self) -> Result<u64, StoreError> {
        if self.mem.cleared {
            return Ok(self.mem.map.values().filter(|s| s.value.is_some()).count() as u64);
        }
        let mut len = self.kv.len()? as i64;
        for (k, slot) in &self.mem.map {
            let in_table = match slot.in_table {
                Some(b) => b,
                None => self.kv.get(k.as_ref())?.is_some(),
            };
            len += slot.value.is_some() as i64 - in_table as i64;
        }
        Ok(len.max(0) as u64)
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Visits every key in order with its value; `f` returns false to stop.
    pub fn scan(&self, mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
        let mut recent = self.mem.map.iter().peekable();
        if !self.mem.cleared {
            for row in self.kv.iter()? {
                let (k, v) = row?;
                let key = k.value();
                // Recent keys before this one, then this one unless the memtable has its own.
                while let Some((rk, slot)) = recent.next_if(|(rk, _)| rk.as_ref() <= key) {
                    let same = rk.as_ref() == key;
                    if let Some(rv) = &slot.value
                        && !f(rk, rv)
                    {
                        return Ok(());
                    }
                    if same {
                        break;
                    }
                }
                if self.mem.map.contains_key(key) {
                    continue;
                }
                if !f(key, v.value()) {
                    return Ok(());
                }
            }
        }
        for (rk, slot) in recent {
            if let Some(rv) = &slot.value
                && !f(rk, rv)
            {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Facts about the entry being applied, for commands whose effect depends on cluster state
/// (JOIN, LEAVE). Everything here is itself replicated state, so every node decides alike.
pub struct ApplyCtx<'a> {
    /// Index of the entry being applied.
    pub index: u64,
    /// The configuration in force before this entry.
    pub conf_state: &'a ConfState,
}

/// The state machine inside the raft loop's apply transaction: key-value writes go to the
/// memtable (over the table as of this transaction), member changes to their table directly.
pub struct WriteView<'t> {
    mem: &'t mut State,
    kv: Table<'t, &'static [u8], &'static [u8]>,
    pub members: Table<'t, &'static str, &'static [u8]>,
}

impl<'t> WriteView<'t> {
    pub fn open(txn: &'t redb::WriteTransaction, mem: &'t mut State) -> Result<Self, StoreError> {
        Ok(WriteView {
            mem,
            kv: txn.open_table(KV)?,
            members: txn.open_table(MEMBERS)?,
        })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        match self.mem.map.get(key) {
            Some(slot) => Ok(slot.value.clone()),
            None if self.mem.cleared => Ok(None),
            None => Ok(self.kv.get(key)?.map(|v| Bytes::copy_from_slice(v.value()))),
        }
    }

    pub fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        match self.mem.map.get(key) {
            Some(slot) => Ok(slot.value.is_some()),
            None if self.mem.cleared => Ok(false),
            None => Ok(self.kv.get(key)?.is_some()),
        }
    }

    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let value = Some(Bytes::copy_from_slice(value));
        match self.mem.map.get_mut(key) {
            Some(slot) => slot.value = value,
            None => {
                // Whether the table holds it matters only for counting keys: not looked up here.
                let in_table = self.mem.cleared.then_some(false);
                self.mem
                    .map
                    .insert(Bytes::copy_from_slice(key), Slot { value, in_table });
            }
        }
        Ok(())
    }

    /// Removes a key; true if it existed.
    pub fn remove(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        if let Some(slot) = self.mem.map.get_mut(key) {
            return Ok(slot.value.take().is_some());
        }
        if self.mem.cleared {
            return Ok(false);
        }
        let existed = self.kv.get(key)?.is_some();
        if existed {
            let slot = Slot {
                value: None,
                in_table: Some(true),
            };
            self.mem.map.insert(Bytes::copy_from_slice(key), slot);
        }
        Ok(existed)
    }

    pub fn clear(&mut self) -> Result<(), StoreError> {
        self.mem.map.clear();
        self.mem.cleared = true;
        Ok(())
    }
}

/// Writes the memtable's changes to the table, in `txn`. The caller records the applied index
/// in the same transaction and calls `State::flushed` once it has committed.
pub fn flush_into(txn: &redb::WriteTransaction, mem: &State) -> Result<(), StoreError> {
    let mut kv = txn.open_table(KV)?;
    if mem.cleared {
        kv.retain(|_, _| false)?;
    }
    for (k, slot) in &mem.map {
        match &slot.value {
            Some(v) => {
                kv.insert(k.as_ref(), v.as_ref())?;
            }
            None => {
                kv.remove(k.as_ref())?;
            }
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

    /// Applies `f` to the memtable in a write transaction; flushes (and commits) if asked.
    fn write(db: &Db, mem: &Memtable, flush: bool, f: impl FnOnce(&mut WriteView)) {
        let txn = db.begin_write().expect("txn");
        let mut state = mem.write();
        {
            let mut view = WriteView::open(&txn, &mut state).expect("view");
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

    fn all(db: &Db, mem: &Arc<Memtable>) -> (Vec<(String, String)>, u64) {
        let mut r = Reader::new(db, mem);
        r.run(|v| {
            let mut rows = Vec::new();
            v.scan(|k, val| {
                rows.push((
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(val).into_owned(),
                ));
                true
            })?;
            Ok((rows, v.len()?))
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
    fn recent_writes_override_the_table_in_order_and_count() {
        let (_d, db, mem) = setup();
        write(&db, &mem, true, |w| {
            for k in ["a", "c", "e", "g"] {
                w.set(k.as_bytes(), b"old").unwrap();
            }
        });
        write(&db, &mem, false, |w| {
            w.set(b"b", b"new").unwrap(); // new key between table keys
            w.set(b"c", b"new").unwrap(); // overrides a table key
            assert!(w.remove(b"e").unwrap()); // deletes a table key
            assert!(!w.remove(b"zz").unwrap()); // absent: no change
            w.set(b"h", b"new").unwrap(); // after the last table key
            assert_eq!(w.get(b"e").unwrap(), None);
            assert_eq!(w.get(b"g").unwrap().as_deref(), Some(&b"old"[..]));
        });
        let expect = rows(&[
            ("a", "old"),
            ("b", "new"),
            ("c", "new"),
            ("g", "old"),
            ("h", "new"),
        ]);
        assert_eq!(all(&db, &mem), (expect.clone(), 5));
        // Written to the table, the same state, now without the memtable.
        write(&db, &mem, true, |_| {});
        assert!(mem.read().map.is_empty());
        assert_eq!(all(&db, &mem), (expect, 5));
    }

    #[test]
    fn flushdb_hides_the_table_until_flushed() {
        let (_d, db, mem) = setup();
        write(&db, &mem, true, |w| {
            w.set(b"a", b"1").unwrap();
            w.set(b"b", b"2").unwrap();
        });
        write(&db, &mem, false, |w| {
            w.clear().unwrap();
            assert!(!w.exists(b"a").unwrap());
            w.set(b"b", b"3").unwrap();
            assert!(!w.remove(b"a").unwrap());
        });
        assert_eq!(all(&db, &mem), (rows(&[("b", "3")]), 1));
        write(&db, &mem, true, |_| {});
        assert_eq!(all(&db, &mem), (rows(&[("b", "3")]), 1));
    }

    #[test]
    fn a_reader_sees_flushed_writes_across_generations() {
        let (_d, db, mem) = setup();
        write(&db, &mem, false, |w| w.set(b"k", b"v1").unwrap());
        let mut r = Reader::new(&db, &mem);
        let get = |r: &mut Reader| r.run(|v| v.get(b"k")).unwrap();
        assert_eq!(get(&mut r).as_deref(), Some(&b"v1"[..]));
        // The flush empties the memtable; the reader's older table transaction must not be
        // used alone afterwards.
        write(&db, &mem, true, |_| {});
        assert_eq!(get(&mut r).as_deref(), Some(&b"v1"[..]));
        write(&db, &mem, false, |w| {
            w.remove(b"k").unwrap();
        });
        assert_eq!(get(&mut r), None);
        assert_eq!(r.run(|v| v.len()).unwrap(), 0);
    }
}
