//! The node's two database files and the tables in them.
//!
//! `DATA_DIR/raft-log.redb` holds the raft log, the hard state and the node's identity: small
//! append-mostly commits, each fsynced before raft-rs may depend on it. `DATA_DIR/kvd.redb` holds
//! the replicated state (keyspace, members) with the applied index and conf state it covers, in
//! the same transaction as the writes they describe (design rule 2); it is written without fsync
//! and made durable at its own pace, so memtable flushes never ride a log fsync. The log is never
//! compacted past the state's durable applied index, so after a crash the state is rebuilt from
//! it (`raft::startup` reconciles the two). Only the raft loop and its persistence worker write;
//! client connections read the state through their own read transactions.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, TableDefinition};

/// Raft log (log database): index -> term ++ protobuf-encoded `Entry`.
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Raft bookkeeping, keyed by the `meta::*` names below (both databases have one; each key
/// lives in one of them, as documented there).
pub const RAFT_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_state");
/// The replicated keyspace: metadata and member rows (see `kv::encoding`).
pub const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// Cluster members: name -> encoded `Member` (replicated state, part of every snapshot).
pub const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("members");
/// A snapshot being received: filled chunk by chunk, then renamed over `KV` in one transaction.
pub const STAGED_KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("staged_kv");
/// Members of a snapshot being received.
pub const STAGED_MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("staged_members");

/// Keys of the `RAFT_STATE` table.
pub mod meta {
    /// `HardState` (term, vote, commit), protobuf. Log database.
    pub const HARD_STATE: &str = "hard_state";
    /// `ConfState` as of the applied index, protobuf; written with the apply that changed it.
    /// State database.
    pub const CONF_STATE: &str = "conf_state";
    /// Index and term (2 x u64 BE) of the last applied entry; same transaction as its effects.
    /// State database.
    pub const APPLIED: &str = "applied";
    /// Index and term (2 x u64 BE) of the entry just before the first one in the log: the point
    /// the log was compacted to, or the last snapshot installed. Log database.
    pub const TRUNCATED: &str = "truncated";
    /// This node's identity: the cluster it belongs to (see `raft::identity`). Log database.
    pub const IDENTITY: &str = "identity";
    /// Which snapshot the staged tables hold (snapshot index and term, 2 x u64 BE), once complete.
    pub const STAGED: &str = "staged";
    /// The keyspace format of this database (u64 BE, `kv::encoding::FORMAT`); absent in
    /// databases written by kvd 0.1 (format 0: raw values, migrated at open). State database.
    pub const FORMAT: &str = "format";
    /// Present in a state database whose raft log lives in its own file (`LOG_FILE`): that
    /// file missing then means the log is lost, not that it was never split off.
    pub const LOG_SPLIT: &str = "log_split";
    /// The number of the log database's last durable commit (u64 BE), mirrored in its seal
    /// file (`log_db`). Log database.
    pub const COMMIT_SEQ: &str = "commit_seq";
}

/// Errors of the storage layer. Anything here means the disk or the file is in trouble: the raft
/// loop stops the node rather than serve from a state it cannot trust.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The persistence worker thread is gone: nothing more can be made durable.
    #[error("the persistence worker stopped")]
    WorkerStopped,
    /// raft-rs refused to start on the state just written (adopting another cluster).
    #[error("cannot start raft: {0}")]
    RaftInit(#[source] raft::Error),
}

macro_rules! redb_error_into_store {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
redb_error_into_store!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl StoreError {
    pub fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}

/// The open database, shared by the raft loop (writer) and connections (readers).
pub type Db = Arc<Database>;

/// A file written next to the database when it is created: if the database later disappears
/// while this remains, the node refuses to start instead of silently bootstrapping a new cluster
/// (which could split the old one).
const MARKER: &str = "kvd.dir";

/// Path of the state database file inside a data dir.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("kvd.redb")
}

/// The log database's file name inside a data dir.
pub const LOG_FILE: &str = "raft-log.redb";

/// Path of the log database file inside a data dir.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOG_FILE)
}

/// Opens (or creates) the database, checking that the data dir is usable first so the error names
/// the real problem. Creates every table so readers never see "table does not exist".
pub fn open(data_dir: &Path, cache_bytes: usize) -> Result<Db, String> {
    fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data dir '{}': {e}", data_dir.display()))?;
    let probe = data_dir.join(".kvd-write-test");
    fs::write(&probe, b"ok")
        .map_err(|e| format!("data dir '{}' is not writable: {e}", data_dir.display()))?;
    let _ = fs::remove_file(&probe);

    let path = db_path(data_dir);
    let existed = path.exists();
    let marker = data_dir.join(MARKER);
    if !existed && marker.exists() {
        return Err(format!(
            "raft state missing: '{}' exists but '{}' does not; refusing to start as a new node \
             (restore the database, or empty the data dir to start afresh)",
            marker.display(),
            path.display()
        ));
    }
    if existed {
        let len = fs::metadata(&path)
            .map_err(|e| format!("cannot stat '{}': {e}", path.display()))?
            .len();
        if len == 0 {
            return Err(format!(
                "database '{}' is empty (truncated?): refusing to start; move it away to start afresh",
                path.display()
            ));
        }
    }
    let db = open_file(&path, existed, cache_bytes)?;
    create_tables(&db).map_err(|e| format!("cannot initialise '{}': {e}", path.display()))?;
    check_format(&db, existed).map_err(|e| format!("database '{}': {e}", path.display()))?;
    if !marker.exists() {
        fs::write(
            &marker,
            b"kvd data dir: kvd.redb and raft-log.redb hold this node's raft state; do not delete either alone\n",
        )
        .map_err(|e| format!("cannot write '{}': {e}", marker.display()))?;
    }
    Ok(Arc::new(db))
}

/// Opens (`existed`) or creates one redb file, every page's checksum verified on open: a
/// damaged file must be refused, not served.
fn open_file(path: &Path, existed: bool, cache_bytes: usize) -> Result<Database, String> {
    let mut builder = Database::builder();
    builder.set_cache_size(cache_bytes.max(1024 * 1024));
    builder.set_check_integrity_on_open(true);
    if existed {
        builder.open(path)
    } else {
        builder.create(path)
    }
    .map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            format!("database '{}' is in use by another process", path.display())
        }
        other => format!(
            "database '{}' is damaged or unreadable ({other}): refusing to start",
            path.display()
        ),
    })
}

fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(RAFT_STATE)?;
    open_replicated(&txn)?;
    txn.commit()?;
    Ok(())
}

/// The log database's page cache at most.
const LOG_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// The keys of a state database's `RAFT_STATE` that belong to the log database (kvd before
/// the split kept both in one file).
const LOG_KEYS: [&str; 3] = [meta::HARD_STATE, meta::TRUNCATED, meta::IDENTITY];

/// Opens (or creates) the log database next to the state database `state` (from `open`). A
/// data dir from before the split has its log, hard state and identity moved over: copied
/// into a new file that is renamed into place once durable, then removed from the state
/// database. A state database that had its log split off refuses to start without it.
pub fn open_log(data_dir: &Path, cache_bytes: usize, state: &Db) -> Result<Db, String> {
    // The log is written once and read back rarely (raft-rs reads the tail from memory), so
    // a cache as big as the state's would only hold pages written long ago.
    let cache_bytes = cache_bytes.min(LOG_CACHE_BYTES);
    let path = log_path(data_dir);
    let fail = |e: StoreError| format!("database '{}': {e}", path.display());
    let existed = path.exists();
    let split = {
        use redb::ReadableDatabase;
        let txn = state.begin_read().map_err(|e| fail(e.into()))?;
        let t = txn.open_table(RAFT_STATE).map_err(|e| fail(e.into()))?;
        t.get(meta::LOG_SPLIT)
            .map_err(|e| fail(e.into()))?
            .is_some()
    };
    if !existed && split {
        return Err(format!(
            "raft log missing: '{}' does not exist but '{}' was written with it; refusing to start \
             (restore the file, or empty the data dir to start afresh)",
            path.display(),
            db_path(data_dir).display()
        ));
    }
    if !existed {
        let tmp = data_dir.join(format!("{LOG_FILE}.new"));
        let _ = fs::remove_file(&tmp);
        let log = open_file(&tmp, false, cache_bytes)?;
        copy_log(state, &log).map_err(fail)?;
        drop(log);
        fs::rename(&tmp, &path).map_err(|e| format!("cannot rename '{}': {e}", tmp.display()))?;
        if let Ok(dir) = fs::File::open(data_dir) {
            let _ = dir.sync_all();
        }
    }
    let log = open_file(&path, true, cache_bytes)?;
    (|| -> Result<(), StoreError> {
        let txn = log.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(RAFT_STATE)?;
        txn.commit()?;
        // The copy in the state database is stale from here on: drop it, and say the log lives
        // apart, durably, before anything else is written.
        let txn = state.begin_write()?;
        {
            let mut t = txn.open_table(RAFT_STATE)?;
            for k in LOG_KEYS {
                t.remove(k)?;
            }
            t.insert(meta::LOG_SPLIT, &[1u8][..])?;
        }
        txn.delete_table(LOG)?;
        commit(txn, true)
    })()
    .map_err(fail)?;
    Ok(Arc::new(log))
}

/// Copies the log rows and the log's `RAFT_STATE` keys of a pre-split state database into a
/// new log database, durably.
fn copy_log(state: &Db, log: &Database) -> Result<(), StoreError> {
    use redb::{ReadableDatabase, ReadableTable};
    let read = state.begin_read()?;
    let txn = log.begin_write()?;
    {
        let mut to_state = txn.open_table(RAFT_STATE)?;
        let from_state = read.open_table(RAFT_STATE)?;
        for k in LOG_KEYS {
            if let Some(v) = from_state.get(k)? {
                to_state.insert(k, v.value())?;
            }
        }
        let mut to_log = txn.open_table(LOG)?;
        match read.open_table(LOG) {
            Ok(from_log) => {
                for row in from_log.iter()? {
                    let (k, v) = row?;
                    to_log.insert(k.value(), v.value())?;
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    commit(txn, true)
}

// The replicated tables, each with the staged twin a snapshot is received into: `KV` and
// `MEMBERS`. These functions are the one list of them, for creating, clearing and installing;
// the snapshot stream (`raft::snapshot`) sends and receives the same two.

/// Creates the replicated tables and their staged twins if missing.
fn open_replicated(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(KV)?;
    txn.open_table(MEMBERS)?;
    txn.open_table(STAGED_KV)?;
    txn.open_table(STAGED_MEMBERS)?;
    Ok(())
}

/// Empties the replicated tables.
pub fn clear_replicated(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(KV)?.retain(|_, _| false)?;
    txn.open_table(MEMBERS)?.retain(|_, _| false)?;
    Ok(())
}

/// Empties the staged tables (a snapshot transfer starts, or an old one is abandoned).
pub fn clear_staged(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(STAGED_KV)?.retain(|_, _| false)?;
    txn.open_table(STAGED_MEMBERS)?.retain(|_, _| false)?;
    Ok(())
}

/// Replaces each replicated table with its staged twin, which starts again empty.
pub fn swap_in_staged(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.delete_table(KV)?;
    txn.rename_table(STAGED_KV, KV)?;
    txn.delete_table(MEMBERS)?;
    txn.rename_table(STAGED_MEMBERS, MEMBERS)?;
    open_replicated(txn)
}

/// Records the keyspace format in a new database; in an existing one, refuses a newer format
/// and migrates kvd 0.1's (format 0: `KV` held raw string values) to the typed keyspace.
fn check_format(db: &Database, existed: bool) -> Result<(), String> {
    let current = crate::kv::encoding::FORMAT;
    use redb::ReadableTable;
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let found = {
        let state = txn.open_table(RAFT_STATE).map_err(|e| e.to_string())?;
        match state.get(meta::FORMAT).map_err(|e| e.to_string())? {
            None => None,
            Some(v) => Some(
                <[u8; 8]>::try_from(v.value())
                    .map(u64::from_be_bytes)
                    .map_err(|_| "unreadable format version".to_string())?,
            ),
        }
    };
    match found {
        Some(f) if f == current => return Ok(()),
        Some(1) => {
            migrate_format_1(&txn).map_err(|e| format!("migrating from keyspace format 1: {e}"))?
        }
        Some(f) if f > current => {
            return Err(format!(
                "keyspace format {f} is newer than this kvd's ({current}): refusing to start; run a newer kvd"
            ));
        }
        Some(f) => return Err(format!("unknown keyspace format {f}")),
        None if existed => {
            let n = migrate_format_0(&txn).map_err(|e| format!("migrating from kvd 0.1: {e}"))?;
            if n > 0 {
                eprintln!("kvd: migrated {n} keys from the kvd 0.1 format");
            }
        }
        None => {}
    }
    txn.open_table(RAFT_STATE)
        .map_err(|e| e.to_string())?
        .insert(meta::FORMAT, &current.to_be_bytes()[..])
        .map_err(|e| e.to_string())?;
    txn.commit().map_err(|e| e.to_string())
}

/// Format 0 stored each key's raw value under the key itself. Each becomes a string in
/// database 0 with version and last change 0 (the same on every node, whatever each had
/// applied when it was upgraded). Entries in the log keep their version-1 encoding, which apply
/// still reads. A half-received snapshot of the old format is dropped.
fn migrate_format_0(txn: &redb::WriteTransaction) -> Result<u64, StoreError> {
    use crate::kv::{Meta, encoding};
    use redb::ReadableTable;
    let mut kv = txn.open_table(KV)?;
    let mut rows = Vec::new();
    for row in kv.iter()? {
        let (k, v) = row?;
        rows.push((k.value().to_vec(), bytes::Bytes::copy_from_slice(v.value())));
    }
    kv.retain(|_, _| false)?;
    let n = rows.len() as u64;
    for (k, v) in rows {
        let meta = Meta::string(v, 0, 0);
        kv.insert(&encoding::meta_key(0, &k)[..], &meta.encode()[..])?;
        kv.insert(&encoding::scan_key(0, &k)[..], &[][..])?;
    }
    kv.insert(&encoding::count_key(0)[..], &n.to_be_bytes()[..])?;
    clear_staged(txn)?;
    txn.open_table(RAFT_STATE)?.remove(meta::STAGED)?;
    Ok(n)
}

/// Format 1 had no per-database count of keys with an expiry (format 2's `expires` rows, see
/// `kv::encoding`): count them once, from the metadata rows. The same on every node, since every
/// node counts the same rows.
fn migrate_format_1(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    use crate::kv::encoding::{self, DATABASES, FAMILY_META};
    use redb::ReadableTable;
    let mut kv = txn.open_table(KV)?;
    let mut counts = [0u64; DATABASES as usize];
    for row in kv.range::<&[u8]>(&[FAMILY_META][..]..&[FAMILY_META + 1][..])? {
        let (k, v) = row?;
        if let Some(db) = encoding::db_of(k.value()).filter(|&d| d < DATABASES)
            && encoding::meta_has_expiry(v.value())
        {
            counts[db as usize] += 1;
        }
    }
    for (db, n) in (0..DATABASES).zip(counts) {
        kv.insert(&encoding::expires_key(db)[..], &n.to_be_bytes()[..])?;
    }
    Ok(())
}

/// Durable commits use two phases unless `--one-phase-commit` (`set_one_phase`) says otherwise.
static ONE_PHASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Chooses one-phase durable commits for this process (`--one-phase-commit`), at start.
pub fn set_one_phase(on: bool) {
    ONE_PHASE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Commits a state database transaction (or a log one without fsync), fsynced (`durable`) or
/// not. A durable commit uses redb's two-phase commit: with one phase, redb takes a damaged
/// header slot for a torn commit and silently falls back to the previous one; with two, it
/// refuses the file instead. Costs a second fsync per durable commit (unless the operator chose
/// otherwise, `set_one_phase`). The log's durable commits go through `log_db::LogDb::commit`:
/// one phase, sealed.
pub fn commit(mut txn: redb::WriteTransaction, durable: bool) -> Result<(), StoreError> {
    txn.set_durability(if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    })?;
    txn.set_two_phase_commit(durable && !ONE_PHASE.load(std::sync::atomic::Ordering::Relaxed));
    txn.commit()?;
    Ok(())
}

/// Commits `txn` durably with one fsync (redb's one-phase commit): for the log database,
/// whose commits are sealed (`log_db`) so that a damaged last commit is still refused.
pub fn commit_one_phase(mut txn: redb::WriteTransaction) -> Result<(), StoreError> {
    txn.set_durability(redb::Durability::Immediate)?;
    txn.set_two_phase_commit(false);
    txn.commit()?;
    Ok(())
}

/// Encodes two u64s as 16 big-endian bytes (index/term pairs).
pub fn encode_pair(a: u64, b: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

/// Decodes `encode_pair`'s output; anything else is corruption.
pub fn decode_pair(what: &'static str, bytes: &[u8]) -> Result<(u64, u64), StoreError> {
    if bytes.len() != 16 {
        return Err(StoreError::corrupt(
            what,
            format!("expected 16 bytes, found {}", bytes.len()),
        ));
    }
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&bytes[..8]);
    b.copy_from_slice(&bytes[8..]);
    Ok((u64::from_be_bytes(a), u64::from_be_bytes(b)))
}

/// Reads an index/term pair from `RAFT_STATE` in any transaction kind.
pub fn read_pair(
    table: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    key: &'static str,
) -> Result<Option<(u64, u64)>, StoreError> {
    match table.get(key)? {
        Some(v) => Ok(Some(decode_pair(key, v.value())?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::KeyRead;
    use crate::kv::{Memtable, Reader, encoding};

    #[test]
    fn a_kvd_0_1_database_is_migrated_and_a_newer_format_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("d");
        let db = open(&data, 1 << 20).expect("create");
        {
            // What kvd 0.1 left: raw values under raw keys, no format record.
            let txn = db.begin_write().expect("txn");
            {
                let mut kv = txn.open_table(KV).expect("kv");
                kv.retain(|_, _| false).expect("clear");
                kv.insert(&b"greeting"[..], &b"hello"[..]).expect("insert");
                kv.insert(&b"n"[..], &b"42"[..]).expect("insert");
                txn.open_table(RAFT_STATE)
                    .expect("state")
                    .remove(meta::FORMAT)
                    .expect("remove");
            }
            txn.commit().expect("commit");
        }
        drop(db);
        let db = open(&data, 1 << 20).expect("reopen migrates");
        let mem = Arc::new(Memtable::new());
        let (value, count, kind) = Reader::new(&db, &mem)
            .run(0, |v| {
                let m = v.meta(b"greeting")?.expect("migrated key");
                Ok((m.body, v.key_count(0)?, m.kind))
            })
            .expect("read");
        assert_eq!(
            (&value[..], count, kind),
            (&b"hello"[..], 2, crate::kv::KeyType::String)
        );
        // A database from a newer kvd is refused with one line naming both formats.
        {
            let txn = db.begin_write().expect("txn");
            txn.open_table(RAFT_STATE)
                .expect("state")
                .insert(meta::FORMAT, &(encoding::FORMAT + 1).to_be_bytes()[..])
                .expect("insert");
            txn.commit().expect("commit");
        }
        drop(db);
        let err = open(&data, 1 << 20).expect_err("refused");
        assert!(
            err.contains("keyspace format 3 is newer than this kvd's (2)"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn a_single_file_data_dir_has_its_log_moved_out_and_a_lost_log_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("d");
        let db = open(&data, 1 << 20).expect("create");
        {
            // What kvd before the split left: the log and its keys in kvd.redb.
            let txn = db.begin_write().expect("txn");
            {
                let mut log = txn.open_table(LOG).expect("log");
                log.insert(7u64, &b"seven"[..]).expect("insert");
                log.insert(8u64, &b"eight"[..]).expect("insert");
                let mut state = txn.open_table(RAFT_STATE).expect("state");
                state.insert(meta::HARD_STATE, &b"hs"[..]).expect("insert");
                state
                    .insert(meta::TRUNCATED, &encode_pair(6, 2)[..])
                    .expect("insert");
                state.insert(meta::IDENTITY, &b"id"[..]).expect("insert");
                state
                    .insert(meta::APPLIED, &encode_pair(8, 2)[..])
                    .expect("insert");
            }
            txn.commit().expect("commit");
        }
        let log = open_log(&data, 1 << 20, &db).expect("split");
        {
            use redb::{ReadableDatabase, ReadableTable};
            let txn = log.begin_read().expect("read");
            let rows: Vec<u64> = txn
                .open_table(LOG)
                .expect("log")
                .iter()
                .expect("iter")
                .map(|r| r.expect("row").0.value())
                .collect();
            assert_eq!(rows, vec![7, 8]);
            let state = txn.open_table(RAFT_STATE).expect("state");
            for k in LOG_KEYS {
                assert!(state.get(k).expect("get").is_some(), "{k} moved");
            }
            assert!(state.get(meta::APPLIED).expect("get").is_none());
            let txn = db.begin_read().expect("read");
            let state = txn.open_table(RAFT_STATE).expect("state");
            for k in LOG_KEYS {
                assert!(state.get(k).expect("get").is_none(), "{k} left behind");
            }
            assert!(state.get(meta::APPLIED).expect("get").is_some());
            assert!(txn.open_table(LOG).is_err(), "old log table dropped");
        }
        drop(log);
        // Reopening finds the split log; without it, the node refuses to start.
        drop(open_log(&data, 1 << 20, &db).expect("reopen"));
        fs::remove_file(log_path(&data)).expect("remove");
        let err = open_log(&data, 1 << 20, &db).expect_err("lost log refused");
        assert!(err.starts_with("raft log missing: "), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn a_format_1_database_gets_its_expiry_counts_at_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("d");
        let db = open(&data, 1 << 20).expect("create");
        {
            // What format 1 left: keys with and without expiry, no `expires` rows.
            let txn = db.begin_write().expect("txn");
            {
                let mut kv = txn.open_table(KV).expect("kv");
                for (db, key, at) in [(0, "a", Some(10)), (0, "b", None), (4, "c", Some(20))] {
                    let mut m = crate::kv::Meta::string(bytes::Bytes::from_static(b"v"), 1, 1);
                    m.expire_at = at;
                    kv.insert(&encoding::meta_key(db, key.as_bytes())[..], &m.encode()[..])
                        .expect("insert");
                }
                txn.open_table(RAFT_STATE)
                    .expect("state")
                    .insert(meta::FORMAT, &1u64.to_be_bytes()[..])
                    .expect("insert");
            }
            txn.commit().expect("commit");
        }
        drop(db);
        let db = open(&data, 1 << 20).expect("reopen migrates");
        let mem = Arc::new(Memtable::new());
        let mut r = Reader::new(&db, &mem);
        let counts: Vec<u64> = [0u8, 4, 5]
            .iter()
            .map(|&d| r.run(d, |v| v.expires_count(d)).expect("read"))
            .collect();
        assert_eq!(counts, vec![1, 1, 0]);
    }
}
