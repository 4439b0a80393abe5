//! The log database (`raft-log.redb`) and the seal that lets its durable commits use one fsync.
//!
//! raft-rs may depend on a log commit only once it is durable, and every write waits for one on
//! the leader and on a follower. redb's two-phase commit costs two fsyncs; its one-phase commit
//! one, but on open it takes a primary commit slot whose checksums fail for a commit torn by a
//! crash and falls back to the commit before. That is right for a torn commit (never
//! acknowledged), and silently wrong for one damaged after the fact: acknowledged entries and a
//! vote would be gone (`tests/crash.rs`, the damaged header tests).
//!
//! So every durable commit of the log records a sequence number (`meta::COMMIT_SEQ`, one more
//! than the last) and, once the commit is in, writes it to a small file beside the database
//! (`raft-log.seal`), without waiting for it; a thread makes that file durable every
//! `SYNC_EVERY`. The seal only ever names a commit that was durable. At start, a log whose
//! number is below its seal's lost a commit it had made durable: the node refuses to start.
//!
//! What this does not catch: a seal update not yet on disk when the machine lost power, whose
//! commit was then damaged as well. A process crash loses nothing of the seal (the kernel has
//! it). The state database is made durable rarely and keeps redb's two-phase commit.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use redb::{ReadTransaction, ReadableDatabase, TransactionError, WriteTransaction};

use crate::fnv::Fnv1a;
use crate::store::{self, Db, RAFT_STATE, StoreError, meta};

/// The seal file's name inside a data dir.
pub const SEAL_FILE: &str = "raft-log.seal";

/// How often the seal file is made durable when it changed.
const SYNC_EVERY: Duration = Duration::from_millis(200);

/// The seal file's first bytes.
const MAGIC: &[u8; 8] = b"kvdseal1";

/// The log database, whose durable commits go through `commit`.
#[derive(Clone)]
pub struct LogDb {
    db: Db,
    seal: Arc<Seal>,
}

struct Seal {
    file: File,
    path: PathBuf,
    /// The number of the last durable commit (the log database's `COMMIT_SEQ`, and the file's),
    /// locked from before a durable commit takes its number until the file holds it: otherwise
    /// a commit begun the moment the one before was in could take the same number, or the
    /// file could be written out of order.
    seq: Mutex<u64>,
    /// Written since the file was last made durable.
    dirty: AtomicBool,
}

impl LogDb {
    /// The log database `db` of `data_dir` (from `store::open_log`), checked against its seal:
    /// refused if it lost a commit the seal says was durable. Creates the seal if missing
    /// (a data dir from before seals, or a new node) and starts its sync thread.
    pub fn open(db: Db, data_dir: &Path) -> Result<LogDb, String> {
        let path = data_dir.join(SEAL_FILE);
        let log_file = store::log_path(data_dir);
        let seq = read_seq(&db).map_err(|e| format!("database '{}': {e}", log_file.display()))?;
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open '{}': {e}", path.display()))?;
        if let Some(sealed) = read_seal(&file)
            && sealed > seq
        {
            return Err(format!(
                "raft log '{}' lost acknowledged writes: it ends at durable commit {seq}, but \
                     commit {sealed} was made durable ('{}'); the file was damaged or replaced. \
                     Refusing to start: restore it, or empty the data dir and add the node anew",
                log_file.display(),
                path.display()
            ));
        }
        write_seal(&file, seq)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("cannot write '{}': {e}", path.display()))?;
        if !existed && let Ok(dir) = File::open(data_dir) {
            let _ = dir.sync_all();
        }
        let seal = Arc::new(Seal {
            file,
            path,
            seq: Mutex::new(seq),
            dirty: AtomicBool::new(false),
        });
        spawn_sync(Arc::downgrade(&seal))
            .map_err(|e| format!("cannot start the log seal thread: {e}"))?;
        Ok(LogDb { db, seal })
    }

    /// The database, for readers (raft-rs's storage reads entries back through it).
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn begin_write(&self) -> Result<WriteTransaction, TransactionError> {
        self.db.begin_write()
    }

    pub fn begin_read(&self) -> Result<ReadTransaction, TransactionError> {
        self.db.begin_read()
    }

    /// Commits a transaction of this database, fsynced (`durable`) or not. A durable commit is
    /// one-phase, numbered, and sealed once it is in.
    pub fn commit(&self, txn: WriteTransaction, durable: bool) -> Result<(), StoreError> {
        if !durable {
            return store::commit(txn, false);
        }
        let mut seq = self.seal.seq.lock().unwrap_or_else(PoisonError::into_inner);
        let next = *seq + 1;
        txn.open_table(RAFT_STATE)?
            .insert(meta::COMMIT_SEQ, &next.to_be_bytes()[..])?;
        store::commit_one_phase(txn)?;
        *seq = next;
        write_seal(&self.seal.file, next)?;
        self.seal.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// The number of the last durable commit.
    #[cfg(test)]
    fn seq(&self) -> u64 {
        *self.seal.seq.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Makes the seal file durable every `SYNC_EVERY` while it changes; ends with the database.
fn spawn_sync(seal: Weak<Seal>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("log-seal".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SYNC_EVERY);
                let Some(s) = seal.upgrade() else { return };
                // A failed sync leaves the seal as weak as an unsynced one; the next change
                // tries again.
                if s.dirty.swap(false, Ordering::AcqRel) && s.file.sync_data().is_err() {
                    s.dirty.store(true, Ordering::Release);
                }
                drop(s);
            }
        })
        .map(drop)
}

/// The log database's commit number (0 before its first sealed commit).
fn read_seq(db: &Db) -> Result<u64, StoreError> {
    let txn = db.begin_read()?;
    let t = txn.open_table(RAFT_STATE)?;
    match t.get(meta::COMMIT_SEQ)? {
        None => Ok(0),
        Some(v) => {
            let bytes: [u8; 8] = v.value().try_into().map_err(|_| {
                StoreError::corrupt("commit number", format!("{} bytes", v.value().len()))
            })?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

/// The number in a seal file; `None` if it holds none (new, or its write was torn).
fn read_seal(file: &File) -> Option<u64> {
    let mut buf = [0u8; 24];
    file.read_exact_at(&mut buf, 0).ok()?;
    let (head, sum) = buf.split_at(16);
    if &head[..8] != MAGIC || Fnv1a::hash(head).to_le_bytes() != sum {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&head[8..16]);
    Some(u64::from_le_bytes(seq))
}

fn write_seal(file: &File, seq: u64) -> std::io::Result<()> {
    let mut buf = [0u8; 24];
    buf[..8].copy_from_slice(MAGIC);
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    let sum = Fnv1a::hash(&buf[..16]);
    buf[16..].copy_from_slice(&sum.to_le_bytes());
    file.write_all_at(&buf, 0)
}

impl std::fmt::Debug for LogDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogDb")
            .field("seal", &self.seal.path)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_dir(dir: &Path) -> Result<LogDb, String> {
        let state = store::open(dir, 1 << 20)?;
        let log = store::open_log(dir, 1 << 20, &state)?;
        LogDb::open(log, dir)
    }

    fn durable_commit(log: &LogDb) {
        let txn = log.begin_write().expect("txn");
        txn.open_table(store::LOG)
            .expect("log")
            .insert(log.seq() + 1, &b"entry"[..])
            .expect("insert");
        log.commit(txn, true).expect("commit");
    }

    #[test]
    fn durable_commits_are_numbered_and_sealed_and_a_lost_one_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = open_dir(dir.path()).expect("open");
        durable_commit(&log);
        durable_commit(&log);
        // A commit without fsync is neither numbered nor sealed.
        let txn = log.begin_write().expect("txn");
        log.commit(txn, false).expect("commit");
        assert_eq!(log.seq(), 2);
        let seal = File::open(dir.path().join(SEAL_FILE)).expect("seal");
        assert_eq!(read_seal(&seal), Some(2));
        drop(log);
        // Reopened as it was: served, and it numbers on from where it was.
        let log = open_dir(dir.path()).expect("reopen");
        assert_eq!(log.seq(), 2);
        durable_commit(&log);
        drop(log);
        // The seal names a later commit than the log holds (the log rolled back): refused,
        // with one line naming both files.
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join(SEAL_FILE))
            .expect("seal");
        write_seal(&file, 9).expect("write");
        let err = open_dir(dir.path()).expect_err("a rolled-back log is refused");
        assert!(
            err.contains("lost acknowledged writes") && err.contains(SEAL_FILE),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_commit_that_empties_the_state_table_keeps_the_number_going() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = open_dir(dir.path()).expect("open");
        durable_commit(&log);
        let txn = log.begin_write().expect("txn");
        txn.open_table(RAFT_STATE)
            .expect("state")
            .retain(|_, _| false)
            .expect("clear");
        log.commit(txn, true).expect("commit");
        assert_eq!(read_seq(log.db()).expect("seq"), 2);
        drop(log);
        open_dir(dir.path()).expect("reopen");
    }

    #[test]
    fn commits_from_two_threads_never_share_a_number() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = open_dir(dir.path()).expect("open");
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let txn = log.begin_write().expect("txn");
                        log.commit(txn, true).expect("commit");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(log.seq(), 100);
        assert_eq!(read_seq(log.db()).expect("seq"), 100);
    }

    #[test]
    fn a_seal_without_its_checksum_is_ignored() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(open_dir(dir.path()).expect("open"));
        std::fs::write(dir.path().join(SEAL_FILE), b"kvdseal1 torn").expect("write");
        let log = open_dir(dir.path()).expect("a torn seal claims nothing");
        assert_eq!(log.seq(), 0);
    }
}
