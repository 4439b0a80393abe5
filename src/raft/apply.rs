//! Applying committed client writes to the state machine, shared by the persistence worker
//! (the usual path) and the raft thread (entries that ride with a conf change or a snapshot).
//!
//! Each entry's command runs through the command table, deterministically, in the caller's
//! write transaction; the applied index is written in the same transaction. Only the node that
//! proposed an entry reports its result (to answer its waiting client).

use bytes::Bytes;
use raft::eraftpb::{ConfState, Entry, EntryType};
use redb::WriteTransaction;
use slog::{Logger, error};

use super::proposal::Proposal;
use crate::cmd::{self, Kind};
use crate::kv::{ApplyCtx, WriteView};
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
    let (reply, membership) = run_write(view, &ctx, &p.argv)?;
    Ok((
        mine.then_some((p.request_id, Outcome::Applied(reply))),
        membership,
    ))
}

fn run_write(
    view: &mut WriteView,
    ctx: &ApplyCtx,
    argv: &[Bytes],
) -> Result<(Reply, bool), StoreError> {
    Ok(match argv.first().and_then(|n| cmd::lookup(n)) {
        Some(spec) => match spec.kind {
            Kind::Write { apply, .. } => (
                apply(view, ctx, argv)?,
                matches!(spec.name, "join" | "leave" | "remove"),
            ),
            _ => (Reply::error("ERR not a write command"), false),
        },
        None => (cmd::unknown_command(argv), false),
    })
}

/// Applies a run of normal entries in `txn` and records the last one as applied.
pub fn apply_entries(
    txn: &WriteTransaction,
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
        let mut view = WriteView::open(txn)?;
        for e in entries {
            debug_assert_eq!(e.get_entry_type(), EntryType::EntryNormal);
            let (outcome, members) = apply_entry(&mut view, conf_state, self_id, e, logger)?;
            summary.mine.extend(outcome);
            summary.members_changed |= members;
        }
    }
    record_applied(txn, last.index, last.term)?;
    summary.last = Some((last.index, last.term));
    summary.count = entries.len() as u64;
    Ok(summary)
}

/// Writes the applied index (and its entry's term) in the transaction that applied it.
pub fn record_applied(txn: &WriteTransaction, index: u64, term: u64) -> Result<(), StoreError> {
    txn.open_table(RAFT_STATE)?
        .insert(meta::APPLIED, store::encode_pair(index, term).as_slice())?;
    Ok(())
}
