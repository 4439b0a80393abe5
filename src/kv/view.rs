//! Typed access to the state machine's tables for commands.

use bytes::Bytes;
use raft::eraftpb::ConfState;
use redb::{ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table};

use crate::store::{Db, KV, MEMBERS, StoreError};

/// A consistent read-only view of the key-value table (one redb read transaction). Cheap enough
/// to open per batch of reads; every read in it sees the same applied state.
pub struct ReadView {
    kv: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl ReadView {
    pub fn open(db: &Db) -> Result<Self, StoreError> {
        let txn = db.begin_read()?;
        Ok(ReadView {
            kv: txn.open_table(KV)?,
        })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.kv.get(key)?.map(|v| Bytes::copy_from_slice(v.value())))
    }

    /// Length of a value without copying it.
    pub fn len_of(&self, key: &[u8]) -> Result<Option<usize>, StoreError> {
        Ok(self.kv.get(key)?.map(|v| v.value().len()))
    }

    pub fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.kv.get(key)?.is_some())
    }

    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self.kv.len()?)
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.kv.is_empty()?)
    }

    /// Visits every key in order with its value; `f` returns false to stop.
    pub fn scan(&self, mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
        for row in self.kv.iter()? {
            let (k, v) = row?;
            if !f(k.value(), v.value()) {
                break;
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

/// The state machine's tables inside the raft loop's apply transaction.
pub struct WriteView<'t> {
    kv: Table<'t, &'static [u8], &'static [u8]>,
    pub members: Table<'t, &'static str, &'static [u8]>,
}

impl<'t> WriteView<'t> {
    pub fn open(txn: &'t redb::WriteTransaction) -> Result<Self, StoreError> {
        Ok(WriteView {
            kv: txn.open_table(KV)?,
            members: txn.open_table(MEMBERS)?,
        })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.kv.get(key)?.map(|v| Bytes::copy_from_slice(v.value())))
    }

    pub fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.kv.get(key)?.is_some())
    }

    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.kv.insert(key, value)?;
        Ok(())
    }

    /// Removes a key; true if it existed.
    pub fn remove(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.kv.remove(key)?.is_some())
    }

    pub fn clear(&mut self) -> Result<(), StoreError> {
        self.kv.retain(|_, _| false)?;
        Ok(())
    }
}
