//! Applying committed client writes to the state machine, shared by the persistence worker
//! (the usual path) and the raft thread (entries that ride with a conf change or a snapshot).
//!
//! Each entry's command runs through the command table, deterministically, against the memtable
//! over the caller's write transaction; `flush` later writes the memtable and the applied index
//! it covers to the tables in one transaction. Only the node that
//! proposed an entry reports its result (to answer its waiting client).

use raft::eraftpb::{ConfState, Entry, EntryType};
use redb::WriteTransaction;
use slog::{Logger, error};

use super::proposal::Proposal;
use crate::cmd;
use crate::kv::{ApplyCtx, MemState, WriteView, flush_into};
use crate::resp::Reply;
use crate::store::{self, RAFT_STATE, StoreError, meta};

/// What applying one committed entry means for the client waiting on it.
pub enum Outcome {
    Applied(Reply),
    /// Definitely not applied (see `proposal`): safe to propose again.
    Fenced,
    /// Maybe applied, and this node cannot tell (a snapshot covered it).
    Unknown,
}

/// The effects of applying a run of entries that the raft thread needs to know about.
#[derive(Default)]
pub struct Summary {
    /// Results for this node's own proposals, by request id, in log order.
    pub mine: Vec<(u64, Outcome)>,
    /// Index and term of the last entry applied.
    pub last: Option<(u64, u64)>,
    /// Entries applied.
    pub count: u64,
    /// A JOIN or LEAVE was applied: the member list changed.
    pub members_changed: bool,
}

impl Summary {
    pub fn merge(&mut self, other: Summary) {
        self.mine.extend(other.mine);
        self.last = other.last.or(self.last);
        self.count += other.count;
        self.members_changed |= other.members_changed;
    }
}

/// Applies one normal entry (an empty one is the new leader's no-op). Returns this node's
/// outcome for it, if it proposed it, and whether it changed the member list.
pub fn apply_entry(
    view: &mut WriteView,
    conf_state: &ConfState,
    self_id: u64,
    e: &Entry,
    logger: &Logger,
) -> Result<(Option<(u64, Outcome)>, bool), StoreError> {
    if e.data.is_empty() {
        return Ok((None, false));
    }
    let p = match Proposal::decode(&e.data) {
        Ok(p) => p,
        Err(err) => {
            // Deterministic on every node: skip it, loudly.
            error!(logger, "skipping undecodable entry"; "index" => e.index, "error" => %err);
            return Ok((None, false));
        }
    };
    let mine = p.origin == self_id;
    if p.term != e.term {
        return Ok((mine.then_some((p.request_id, Outcome::Fenced)), false));
    }
    let ctx = ApplyCtx {
        index: e.index,
        conf_state,
    };
    view.begin_entry(p.db, p.time_ms, e.index);
    let (reply, membership) = cmd::apply_write(view, &ctx, p.db, &p.argv)?;
    Ok((
        mine.then_some((p.request_id, Outcome::Applied(reply))),
        membership,
    ))
}

/// Applies a run of normal entries to the memtable (reading the table as of `txn`) and records
/// the last one as applied there.
pub fn apply_entries(
    txn: &WriteTransaction,
    mem: &mut MemState,
    conf_state: &ConfState,
    self_id: u64,
    entries: &[Entry],
    logger: &Logger,
) -> Result<Summary, StoreError> {
    let mut summary = Summary::default();
    let Some(last) = entries.last() else {
        return Ok(summary);
    };
    {
        let mut view = WriteView::open(txn, mem)?;
        for e in entries {
            debug_assert_eq!(e.get_entry_type(), EntryType::EntryNormal);
            let (outcome, members) = apply_entry(&mut view, conf_state, self_id, e, logger)?;
            summary.mine.extend(outcome);
            summary.members_changed |= members;
        }
    }
    mem.set_applied(last.index, last.term);
    summary.last = Some((last.index, last.term));
    summary.count = entries.len() as u64;
    Ok(summary)
}

/// Writes what the memtable holds to the table with the applied index it covers, in `txn`.
/// Returns that index; the caller calls `flushed()` on the memtable once `txn` has committed.
pub fn flush(txn: &WriteTransaction, mem: &MemState) -> Result<Option<u64>, StoreError> {
    let Some((index, term)) = mem.applied() else {
        return Ok(None);
    };
    flush_into(txn, mem)?;
    record_applied(txn, index, term)?;
    Ok(Some(index))
}

/// Writes the applied index (and its entry's term) in the transaction that applied it.
pub fn record_applied(txn: &WriteTransaction, index: u64, term: u64) -> Result<(), StoreError> {
    txn.open_table(RAFT_STATE)?
        .insert(meta::APPLIED, store::encode_pair(index, term).as_slice())?;
    Ok(())
}
