//! The persistence worker: writes what raft Readies hand it (new entries, hard state, committed
//! entries to apply, log compaction) to redb, off the raft thread.
//!
//! While the worker waits for the disk, the raft thread keeps stepping messages and taking
//! proposals, so the next Readies form meanwhile; the worker then writes everything queued in
//! ONE durable transaction (group commit across Readies). Jobs are written strictly in order, and
//! the raft thread learns of each commit through `Input::Persisted` before it sends the messages
//! that must follow persistence or answers any client.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use raft::eraftpb::{ConfState, Entry, HardState};
use redb::Durability;
use slog::Logger;

use super::Input;
use super::apply::{Summary, apply_entries, flush};
use super::storage::{write_compaction, write_entries, write_hard_state};
use crate::kv::Memtable;
use crate::store::{Db, StoreError};

/// Jobs folded into one transaction at most.
const MAX_JOBS_PER_COMMIT: usize = 256;

/// One Ready's share of disk work.
pub struct Job {
    /// The Ready's number, reported back once durable.
    pub number: u64,
    /// Cut the on-disk log from this index before appending (a conflicting suffix).
    pub cut: Option<u64>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// Committed normal entries to apply (conf changes never come this way).
    pub committed: Vec<Entry>,
    /// The configuration in force for `committed` (for JOIN/LEAVE checks).
    pub conf_state: ConfState,
    /// Compact the log to this (index, term).
    pub compaction: Option<(u64, u64)>,
    /// raft-rs needs this durable before anything depends on it (new entries, term or vote).
    pub sync: bool,
    /// Clients of this node wait on some write: apply in a transaction of its own, ahead of
    /// the fsync (otherwise one transaction for all is cheaper).
    pub answers_clients: bool,
}

impl Job {
    /// True if the Ready needs no disk work at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.hard_state.is_none()
            && self.committed.is_empty()
            && self.compaction.is_none()
    }
}

/// What the worker made durable.
pub struct Done {
    /// The memtable was written to the table up to this applied index.
    pub flushed: Option<u64>,
    /// The commit was fsynced.
    pub sync: bool,
    /// Every job up to this Ready number is written (None: only applied entries so far).
    pub number: Option<u64>,
    /// Highest log index written.
    pub last_entry: Option<u64>,
    pub applied: Summary,
}

pub fn spawn(
    db: Db,
    mem: Arc<Memtable>,
    self_id: u64,
    jobs: mpsc::Receiver<Job>,
    raft: mpsc::Sender<Input>,
    logger: Logger,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("persist".into())
        .spawn(move || {
            while let Ok(first) = jobs.recv() {
                crate::fatal::debug_panic_point("persist");
                let mut batch = vec![first];
                while batch.len() < MAX_JOBS_PER_COMMIT {
                    match jobs.try_recv() {
                        Ok(j) => batch.push(j),
                        Err(_) => break,
                    }
                }
                // Applying needs no fsync: when this batch must also be fsynced, apply and answer
                // first, so replies do not wait behind the next writes' fsync. Safe to reorder:
                // raft-rs hands out only entries that are already durable.
                let split = batch.iter().any(|j| j.sync)
                    && batch
                        .iter()
                        .any(|j| j.answers_clients && !j.committed.is_empty());
                let result = (|| {
                    if split {
                        let applied = apply_batch(&db, &mem, self_id, &mut batch, &logger)?;
                        if raft.send(Input::Persisted(Box::new(applied))).is_err() {
                            return Ok(false);
                        }
                    }
                    let done = write_batch(&db, &mem, self_id, batch, &logger)?;
                    Ok::<bool, StoreError>(raft.send(Input::Persisted(Box::new(done))).is_ok())
                })();
                match result {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => crate::fatal::storage_failure(&logger, &e),
                }
            }
        })
}

/// Applies the committed entries of a batch (taking them out of the jobs) to the memtable; a
/// member change is written to its table at once, with the memtable, in an unsynced transaction.
fn apply_batch(
    db: &Db,
    mem: &Memtable,
    self_id: u64,
    batch: &mut [Job],
    logger: &Logger,
) -> Result<Done, StoreError> {
    let txn = db.begin_write()?;
    let mut done = Done {
        flushed: None,
        sync: false,
        number: None,
        last_entry: None,
        applied: Summary::default(),
    };
    let mut state = mem.write();
    for job in batch.iter_mut() {
        let committed = std::mem::take(&mut job.committed);
        let summary = apply_entries(
            &txn,
            &mut state,
            &job.conf_state,
            self_id,
            &committed,
            logger,
        )?;
        done.applied.merge(summary);
    }
    if done.applied.members_changed {
        done.flushed = flush(&txn, &state)?;
        let mut txn = txn;
        txn.set_durability(Durability::None)?;
        txn.commit()?;
        state.flushed();
    } else {
        drop(state);
        txn.abort()?;
    }
    Ok(done)
}

/// Writes a batch of jobs in one transaction, in order, fsynced if any of them needs it; the
/// memtable goes along when it is due.
pub(super) fn write_batch(
    db: &Db,
    mem: &Memtable,
    self_id: u64,
    batch: Vec<Job>,
    logger: &Logger,
) -> Result<Done, StoreError> {
    let mut txn = db.begin_write()?;
    // Only log entries, term and vote must be fsynced: applying and commit-index updates can be
    // redone from the log after a crash, and a restarted node takes a ReadIndex round before it
    // serves reads (`RaftHandle::catching_up`), so a lost apply is never visible.
    let sync = batch.iter().any(|j| j.sync);
    let mut done = Done {
        flushed: None,
        sync,
        number: None,
        last_entry: None,
        applied: Summary::default(),
    };
    for job in batch {
        // Committed entries were durable before this Ready (raft-rs hands out only those).
        if !job.committed.is_empty() {
            let mut state = mem.write();
            let summary = apply_entries(
                &txn,
                &mut state,
                &job.conf_state,
                self_id,
                &job.committed,
                logger,
            )?;
            done.applied.merge(summary);
        }
        write_entries(&txn, job.cut, &job.entries)?;
        if let Some(e) = job.entries.last() {
            done.last_entry = Some(e.index);
        }
        if let Some(hs) = &job.hard_state {
            write_hard_state(&txn, hs)?;
        }
        if let Some(point) = job.compaction {
            write_compaction(&txn, point)?;
        }
        done.number = Some(job.number);
    }
    // Only this thread (or the raft thread while this one is idle) writes the memtable, so it
    // cannot change between here and `flushed`; readers keep seeing it until then.
    let flush_now = {
        let state = mem.read();
        if state.flush_due() || done.applied.members_changed {
            done.flushed = flush(&txn, &state)?;
        }
        done.flushed.is_some()
    };
    txn.set_durability(if sync {
        Durability::Immediate
    } else {
        Durability::None
    })?;
    // Two-phase commit: with one phase, redb takes a damaged header slot for a torn commit and
    // silently falls back to the previous one, losing acknowledged entries (or a vote). With two,
    // it refuses the file instead. Costs a second fsync per durable commit.
    txn.set_two_phase_commit(sync);
    txn.commit()?;
    if flush_now {
        mem.write().flushed();
    }
    Ok(done)
}
