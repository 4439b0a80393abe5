//! The persistence worker: writes what raft Readies hand it (new entries, hard state, committed
//! entries to apply, log compaction) to redb, off the raft thread.
//!
//! While the worker waits for the disk, the raft thread keeps stepping messages and taking
//! proposals, so the next Readies form meanwhile; the worker then writes everything queued in
//! ONE durable log transaction (group commit across Readies). Committed entries are applied
//! first, to the memtable (and, when due, flushed to the state database in an unsynced commit of
//! that database), and reported at once, so replies never wait behind the log's fsync nor the
//! log's fsync behind a flush. Jobs are written strictly in order, and the raft thread learns of
//! each through `Input::Persisted` before it sends the messages that must follow persistence or
//! answers any client.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use raft::eraftpb::{ConfState, Entry, HardState};
use slog::Logger;

use super::Input;
use super::inbox::InputTx;
use super::storage::{write_compaction, write_entries, write_hard_state};
use crate::kv::machine::{Fixed, StateMachine, Summary, needs_members};
use crate::log_db::LogDb;
use crate::store::StoreError;

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
}

impl Job {
    /// True if the Ready needs no disk work at all.
    pub fn is_empty(&self) -> bool {
        self.committed.is_empty() && !self.writes_log()
    }

    /// True if the Ready has something for the log database.
    fn writes_log(&self) -> bool {
        !self.entries.is_empty()
            || self.hard_state.is_some()
            || self.compaction.is_some()
            || self.cut.is_some()
    }
}

/// What the worker made durable.
#[derive(Default)]
pub struct Done {
    /// The state database is durable up to this applied index (the log may be compacted to it).
    pub state_durable: Option<u64>,
    /// The log commit was fsynced.
    pub sync: bool,
    /// Every job up to this Ready number is written (None: only applied entries so far).
    pub number: Option<u64>,
    /// Highest log index written.
    pub last_entry: Option<u64>,
    pub applied: Summary,
}

impl Done {
    fn merge(&mut self, other: Done) {
        self.state_durable = other.state_durable.or(self.state_durable);
        self.sync |= other.sync;
        self.number = other.number.or(self.number);
        self.last_entry = other.last_entry.or(self.last_entry);
        self.applied.merge(other.applied);
    }
}

pub fn spawn(
    machine: Arc<StateMachine>,
    log: LogDb,
    jobs: mpsc::Receiver<Job>,
    raft: InputTx,
    logger: Logger,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("persist".into())
        .spawn(move || {
            // At the start: a lone voter writes inline and may never hand this thread a job.
            crate::fatal::debug_panic_point("persist");
            while let Ok(first) = jobs.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_JOBS_PER_COMMIT {
                    match jobs.try_recv() {
                        Ok(j) => batch.push(j),
                        Err(_) => break,
                    }
                }
                let result = (|| {
                    let (early, carry) = apply_batch(&machine, &mut batch)?;
                    if let Some(applied) = early
                        && raft.send(Input::Persisted(Box::new(applied))).is_err()
                    {
                        return Ok(false);
                    }
                    let done = finish_batch(&log, batch, carry)?;
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

/// Starts the flusher: writes the frozen memtables `StateMachine::start_flush` hands it, and
/// tells the raft thread how far the state is durable when a write made it so (for log
/// compaction). Ends when the state machine is gone.
pub fn spawn_flusher(
    machine: &Arc<StateMachine>,
    raft: InputTx,
    logger: Logger,
) -> std::io::Result<JoinHandle<()>> {
    let (tx, rx) = mpsc::channel::<Arc<crate::kv::Frozen>>();
    let weak = Arc::downgrade(machine);
    let handle = std::thread::Builder::new()
        .name("flusher".into())
        .spawn(move || {
            while let Ok(frozen) = rx.recv() {
                let Some(machine) = weak.upgrade() else {
                    return;
                };
                match machine.write_frozen(&frozen) {
                    Ok(Some(durable)) => {
                        let done = Done {
                            state_durable: Some(durable),
                            ..Done::default()
                        };
                        if raft.send(Input::Persisted(Box::new(done))).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => crate::fatal::storage_failure(&logger, &e),
                }
            }
        })?;
    machine.set_flusher(tx);
    Ok(handle)
}

/// The first half of writing a batch of jobs: applies their committed entries (taking them out
/// of the jobs). Apply and answer first, then the log: safe to reorder, since raft-rs hands
/// out only committed entries that are already durable here. Returns what to report at once
/// (when the batch still has log work, so that replies and wake-ups never wait for the log's
/// fsync) and what to carry into `finish_batch`.
pub(super) fn apply_batch(
    machine: &StateMachine,
    batch: &mut [Job],
) -> Result<(Option<Done>, Done), StoreError> {
    let applied = apply_part(machine, batch)?;
    let reported = applied.applied.last.is_some() || applied.state_durable.is_some();
    if reported && batch.iter().any(Job::writes_log) {
        Ok((Some(applied), Done::default()))
    } else {
        Ok((None, applied))
    }
}

/// The second half: writes the log part of the batch, fsynced if a job needs it.
pub(super) fn finish_batch(
    log: &LogDb,
    batch: Vec<Job>,
    mut carry: Done,
) -> Result<Done, StoreError> {
    carry.merge(log_part(log, batch)?);
    Ok(carry)
}

/// Applies the committed entries of a batch (taking them out of the jobs) to the memtable and,
/// when a flush is due, hands the memtable to the flusher thread (`StateMachine::start_flush`),
/// so neither the replies nor the log write of the batch wait for a flush. Entries that change
/// the member records (and nodes without a flusher) take the way in a state transaction
/// instead: applied in it, and the memtable flushed in it when due or the member list changed
/// (committed unsynced, or synced when the state is due to be made durable).
fn apply_part(machine: &StateMachine, batch: &mut [Job]) -> Result<Done, StoreError> {
    let mut done = Done::default();
    let any = batch.iter().any(|j| !j.committed.is_empty());
    if !any && !machine.memtable().read().flush_due() {
        return Ok(done);
    }
    let in_txn = batch.iter().any(|j| needs_members(&j.committed));
    if in_txn || !machine.has_flusher() {
        return apply_in_txn(machine, batch);
    }
    if machine.memtable().read().overfull() {
        // Applies outrun the flusher: let it catch up rather than grow the map without bound.
        machine.wait_flushed();
    }
    let mut state = machine.memtable().write();
    done.applied = apply_jobs(machine, None, &mut state, batch)?;
    if state.flush_due() {
        machine.start_flush(&mut state)?;
    }
    Ok(done)
}

/// Applies the committed entries of `batch` (taking them out of the jobs), in `txn` if given.
fn apply_jobs(
    machine: &StateMachine,
    txn: Option<&redb::WriteTransaction>,
    state: &mut crate::kv::MemState,
    batch: &mut [Job],
) -> Result<Summary, StoreError> {
    let mut all = Summary::default();
    for job in batch.iter_mut() {
        if job.committed.is_empty() {
            continue;
        }
        let committed = std::mem::take(&mut job.committed);
        let conf = &mut Fixed(std::mem::take(&mut job.conf_state));
        all.merge(machine.apply(txn, state, &committed, 0, conf)?);
    }
    Ok(all)
}

/// `apply_part` in a state transaction, once no flush is in flight.
fn apply_in_txn(machine: &StateMachine, batch: &mut [Job]) -> Result<Done, StoreError> {
    let mut done = Done::default();
    machine.wait_flushed();
    let txn = machine.db().begin_write()?;
    let mut state = machine.memtable().write();
    done.applied = apply_jobs(machine, Some(&txn), &mut state, batch)?;
    if state.flush_due() || done.applied.members_changed {
        let flushed = machine.flush(&txn, &state)?;
        done.state_durable = machine.commit_state(txn, flushed, false)?;
        machine.flushed(&mut state);
    } else {
        drop(state);
        txn.abort()?;
    }
    Ok(done)
}

/// Writes the log part of a batch of jobs (entries, hard state, compaction) in one log
/// transaction, in order, fsynced if any of them needs it.
fn log_part(log: &LogDb, batch: Vec<Job>) -> Result<Done, StoreError> {
    let sync = batch.iter().any(|j| j.sync);
    let mut done = Done {
        sync,
        ..Done::default()
    };
    let Some(last_job) = batch.last().map(|j| j.number) else {
        return Ok(done);
    };
    done.number = Some(last_job);
    if !batch.iter().any(Job::writes_log) {
        return Ok(done);
    }
    let txn = log.begin_write()?;
    for job in batch {
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
    }
    log.commit(txn, sync)?;
    Ok(done)
}
