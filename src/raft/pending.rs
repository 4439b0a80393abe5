//! Client writes on their way through raft, as the raft thread tracks them: gathered into a batch
//! until the next Ready, parked while no leader can take them, and, once proposed, waiting by
//! request id for their entry to be applied. Every one has a deadline and is answered by it.
//!
//! Pure bookkeeping, no raft-rs or redb inside: the raft thread (`node.rs`) decides when to
//! propose, hands raft-rs what `take_batch` returns and reports back whether raft-rs took it.
//!
//! Never applied twice: a write is proposed again only when it is known not to be in the log
//! (raft-rs dropped it: `dropped`), or known never to commit (an entry of a newer term was
//! applied, after which no entry proposed in an older term can: `fence_older`, see `kv::entry`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::RaftError;
use crate::kv::entry::Proposal;
use crate::kv::machine::Outcome;
use crate::resp::Reply;

/// Where a write's outcome goes: the command's own reply, or why there is none.
pub(super) type ReplyTx = oneshot::Sender<Result<Reply, RaftError>>;

/// A client write not (or no longer) in raft's hands.
pub(super) struct Write {
    /// The database it addresses (the connection's SELECT).
    pub(super) db: u8,
    pub(super) argv: Vec<Bytes>,
    pub(super) deadline: Instant,
    pub(super) reply: ReplyTx,
    /// It was proposed once and fenced out by a leader change (definitely not applied).
    pub(super) fenced: bool,
    /// The proposing connection, carried in the entry for this node's listeners (0: none).
    pub(super) conn: u64,
    /// Raised to its entry's index when it is applied (see `RaftHandle::propose_with`).
    pub(super) acked: Option<Arc<AtomicU64>>,
}

impl Write {
    pub(super) fn new(db: u8, argv: Vec<Bytes>, deadline: Instant, reply: ReplyTx) -> Self {
        Write {
            db,
            argv,
            deadline,
            reply,
            fenced: false,
            conn: 0,
            acked: None,
        }
    }

    /// The same write, raising `acked` to its entry's index once applied.
    pub(super) fn acked(mut self, acked: Option<Arc<AtomicU64>>) -> Self {
        self.acked = acked;
        self
    }

    pub(super) fn answer(self, outcome: Result<Reply, RaftError>) {
        let _ = self.reply.send(outcome);
    }
}

/// A proposed write waiting for its entry to be applied.
struct Waiter {
    db: u8,
    argv: Vec<Bytes>,
    /// The term it was proposed in.
    term: u64,
    deadline: Instant,
    reply: ReplyTx,
    conn: u64,
    acked: Option<Arc<AtomicU64>>,
}

/// Writes handed to raft-rs as one proposal, until raft-rs says whether it took them.
pub(super) struct Batch {
    term: u64,
    writes: Vec<(u64, Write)>,
}

impl Batch {
    pub(super) fn len(&self) -> usize {
        self.writes.len()
    }
}

pub(super) struct Pending {
    /// Writes to propose together before the next Ready.
    batch: Vec<Write>,
    /// Writes no leader could take yet (none known, or raft-rs dropped them), oldest first.
    parked: VecDeque<Write>,
    waiters: HashMap<u64, Waiter>,
    /// The last request id given out; ids start at a random point so that a restarted node's
    /// ids do not collide with entries of its earlier life still in the log.
    last_request: u64,
    /// Parked writes are retried on a tick or when a leader appears, not on every input.
    retry_due: bool,
}

impl Pending {
    pub(super) fn new(first_request: u64) -> Self {
        Pending {
            batch: Vec::new(),
            parked: VecDeque::new(),
            waiters: HashMap::new(),
            last_request: first_request.wrapping_sub(1),
            retry_due: false,
        }
    }

    /// Takes a write into the next batch if a leader is known to take it, else parks it.
    pub(super) fn submit(&mut self, write: Write, leader_known: bool) {
        if leader_known {
            self.batch.push(write);
        } else {
            self.parked.push_back(write);
        }
    }

    pub(super) fn batch_len(&self) -> usize {
        self.batch.len()
    }

    /// True while a client waits on a proposed write.
    #[cfg(test)]
    pub(super) fn has_waiters(&self) -> bool {
        !self.waiters.is_empty()
    }

    /// Takes the batch for one proposal in `term`, at the proposer's clock `time_ms`: each write
    /// gets a fresh request id, and `entry` makes its log entry from the encoded proposal (see
    /// `kv::entry`), in order.
    pub(super) fn take_batch<E>(
        &mut self,
        origin: u64,
        term: u64,
        time_ms: i64,
        entry: impl Fn(Vec<u8>) -> E,
    ) -> Option<(Vec<E>, Batch)> {
        if self.batch.is_empty() {
            return None;
        }
        let writes = std::mem::take(&mut self.batch);
        let mut entries = Vec::with_capacity(writes.len());
        let mut batch = Batch {
            term,
            writes: Vec::with_capacity(writes.len()),
        };
        for w in writes {
            self.last_request = self.last_request.wrapping_add(1);
            entries.push(entry(
                Proposal {
                    origin,
                    request_id: self.last_request,
                    term,
                    time_ms,
                    db: w.db,
                    argv: w.argv.clone(),
                    conn: w.conn,
                }
                .encode(),
            ));
            batch.writes.push((self.last_request, w));
        }
        Some((entries, batch))
    }

    /// raft-rs took the batch: its writes wait for their entries, by request id.
    pub(super) fn proposed(&mut self, batch: Batch) {
        let term = batch.term;
        for (request_id, w) in batch.writes {
            self.waiters.insert(
                request_id,
                Waiter {
                    db: w.db,
                    argv: w.argv,
                    term,
                    deadline: w.deadline,
                    reply: w.reply,
                    conn: w.conn,
                    acked: w.acked,
                },
            );
        }
    }

    /// raft-rs dropped the batch (leader stepping down, transfer in progress, no leader): it
    /// never entered the log, so proposing it again later is safe.
    pub(super) fn dropped(&mut self, batch: Batch) {
        self.parked.extend(batch.writes.into_iter().map(|(_, w)| w));
    }

    /// Asks for the parked writes to be tried again soon (a tick passed, a leader appeared).
    pub(super) fn retry_soon(&mut self) {
        self.retry_due = true;
    }

    /// True once after `retry_soon`.
    pub(super) fn take_retry(&mut self) -> bool {
        std::mem::take(&mut self.retry_due)
    }

    pub(super) fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }

    /// Every parked write, oldest first, to be submitted again.
    pub(super) fn take_parked(&mut self) -> VecDeque<Write> {
        std::mem::take(&mut self.parked)
    }

    /// Answers every write whose deadline passed (or whose client is gone), saying what is
    /// known: a parked write was not applied; a proposed one may still be.
    pub(super) fn expire(&mut self, now: Instant) {
        let mut keep = VecDeque::with_capacity(self.parked.len());
        for w in self.parked.drain(..) {
            if w.deadline <= now || w.reply.is_closed() {
                let err = if w.fenced {
                    RaftError::FencedOut
                } else {
                    RaftError::NoLeader
                };
                w.answer(Err(err));
            } else {
                keep.push_back(w);
            }
        }
        self.parked = keep;
        let expired: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.deadline <= now || w.reply.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(w) = self.waiters.remove(&id) {
                let _ = w.reply.send(Err(RaftError::OutcomeUnknown));
            }
        }
    }

    /// An entry of `term` was applied: no write proposed in an older term can commit any more,
    /// so those are definitely not applied (`finish` proposes them again).
    pub(super) fn fence_older(&self, term: u64, outcomes: &mut Vec<(u64, Outcome)>) {
        for (id, w) in &self.waiters {
            if w.term < term {
                outcomes.push((*id, Outcome::Fenced));
            }
        }
    }

    /// A snapshot up to `term` was installed: writes proposed in it or before may or may not be
    /// inside it, and this node cannot tell.
    pub(super) fn covered_by_snapshot(&self, term: u64, outcomes: &mut Vec<(u64, Outcome)>) {
        for (id, w) in &self.waiters {
            if w.term <= term {
                outcomes.push((*id, Outcome::Unknown));
            }
        }
    }

    /// Answers the waiters `outcomes` name (each at most once: a later outcome for the same
    /// request finds no waiter); fenced ones are parked to be proposed again. Returns how many
    /// were fenced.
    pub(super) fn finish(&mut self, outcomes: Vec<(u64, Outcome)>) -> u64 {
        let mut fenced = 0;
        for (id, outcome) in outcomes {
            let Some(w) = self.waiters.remove(&id) else {
                continue;
            };
            match outcome {
                Outcome::Applied(reply, index) => {
                    if let Some(acked) = &w.acked {
                        acked.fetch_max(index, Ordering::Relaxed);
                    }
                    let _ = w.reply.send(Ok(reply));
                }
                Outcome::Unknown => {
                    let _ = w.reply.send(Err(RaftError::SnapshotOutcomeUnknown));
                }
                Outcome::Fenced => {
                    fenced += 1;
                    self.parked.push_back(Write {
                        db: w.db,
                        argv: w.argv,
                        deadline: w.deadline,
                        reply: w.reply,
                        fenced: true,
                        conn: w.conn,
                        acked: w.acked,
                    });
                }
            }
        }
        fenced
    }

    /// Answers every write, wherever it is, with `err` (shutdown, adoption by another cluster).
    pub(super) fn fail_all(&mut self, err: RaftError) {
        for (_, w) in self.waiters.drain() {
            let _ = w.reply.send(Err(err));
        }
        for w in self.parked.drain(..).chain(self.batch.drain(..)) {
            w.answer(Err(err));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    type Rx = oneshot::Receiver<Result<Reply, RaftError>>;

    fn write(deadline: Instant) -> (Write, Rx) {
        let (tx, rx) = oneshot::channel();
        (
            Write::new(3, vec![Bytes::from_static(b"set")], deadline, tx),
            rx,
        )
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(600)
    }

    /// Proposes one batch in `term` and returns the request ids raft-rs would see.
    fn propose(p: &mut Pending, term: u64) -> Vec<u64> {
        let (data, batch) = p.take_batch(7, term, 1234, Bytes::from).expect("a batch");
        p.proposed(batch);
        data.iter()
            .map(|d| {
                let prop = Proposal::decode(d).expect("decodes");
                assert_eq!(
                    (prop.origin, prop.term, prop.time_ms, prop.db),
                    (7, term, 1234, 3)
                );
                prop.request_id
            })
            .collect()
    }

    #[test]
    fn deadlines_give_what_is_known() {
        let mut p = Pending::new(1);
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        let (parked, mut parked_rx) = write(later);
        p.submit(parked, false);
        let (proposed, mut proposed_rx) = write(later);
        p.submit(proposed, true);
        propose(&mut p, 1);
        let (not_due, mut not_due_rx) = write(far());
        p.submit(not_due, false);

        p.expire(now);
        assert!(
            parked_rx.try_recv().is_err(),
            "answered before its deadline"
        );
        p.expire(later);
        assert_eq!(parked_rx.try_recv().unwrap(), Err(RaftError::NoLeader));
        assert_eq!(
            proposed_rx.try_recv().unwrap(),
            Err(RaftError::OutcomeUnknown)
        );
        assert!(not_due_rx.try_recv().is_err());
        assert!(p.has_parked() && !p.has_waiters());
    }

    #[test]
    fn a_write_whose_client_left_is_dropped_at_the_next_expiry() {
        let mut p = Pending::new(1);
        let (w, rx) = write(far());
        p.submit(w, false);
        drop(rx);
        p.expire(Instant::now());
        assert!(!p.has_parked());
    }

    #[test]
    fn fenced_waiters_are_parked_again_exactly_once() {
        let mut p = Pending::new(1);
        let (old, mut old_rx) = write(far());
        p.submit(old, true);
        propose(&mut p, 1);
        let (current, mut current_rx) = write(far());
        p.submit(current, true);
        let current_id = propose(&mut p, 2)[0];

        // Entries of terms 2 and 3 applied in one run: the term-1 write is fenced twice over.
        let mut outcomes = Vec::new();
        p.fence_older(2, &mut outcomes);
        p.fence_older(3, &mut outcomes);
        assert_eq!(outcomes.len(), 3);
        assert_eq!(p.finish(outcomes), 2);
        let parked = p.take_parked();
        assert_eq!(parked.len(), 2, "each fenced write parked once");
        assert!(parked.iter().all(|w| w.fenced));
        assert!(!p.has_waiters());
        assert!(old_rx.try_recv().is_err() && current_rx.try_recv().is_err());

        // Proposed again and applied: answered once, with the command's result.
        for w in parked {
            p.submit(w, true);
        }
        let ids = propose(&mut p, 3);
        assert!(!ids.contains(&current_id), "a new proposal gets a new id");
        let outcomes = ids
            .iter()
            .map(|&id| (id, Outcome::Applied(Reply::ok(), 1)))
            .collect();
        assert_eq!(p.finish(outcomes), 0);
        assert_eq!(old_rx.try_recv().unwrap(), Ok(Reply::ok()));
        assert_eq!(current_rx.try_recv().unwrap(), Ok(Reply::ok()));
    }

    #[test]
    fn a_fenced_write_that_finds_no_leader_says_leadership_changed() {
        let mut p = Pending::new(1);
        let now = Instant::now();
        let (w, mut rx) = write(now);
        p.submit(w, true);
        propose(&mut p, 1);
        let mut outcomes = Vec::new();
        p.fence_older(2, &mut outcomes);
        p.finish(outcomes);
        p.expire(now);
        assert_eq!(rx.try_recv().unwrap(), Err(RaftError::FencedOut));
    }

    #[test]
    fn a_dropped_proposal_is_parked_unfenced() {
        let mut p = Pending::new(1);
        let (w, mut rx) = write(far());
        p.submit(w, true);
        let (_, batch) = p.take_batch(7, 1, 0, Bytes::from).unwrap();
        assert_eq!(batch.len(), 1);
        p.dropped(batch);
        assert!(!p.has_waiters());
        let parked = p.take_parked();
        assert_eq!(parked.len(), 1);
        assert!(!parked[0].fenced);
        assert!(rx.try_recv().is_err());
        assert!(p.take_batch(7, 1, 0, Bytes::from).is_none());
    }

    #[test]
    fn request_ids_are_unique_across_batches_and_wrap() {
        let mut p = Pending::new(u64::MAX - 2);
        let mut seen = std::collections::HashSet::new();
        let mut keep = Vec::new();
        for round in 0..4 {
            for _ in 0..3 {
                let (w, rx) = write(far());
                keep.push(rx);
                p.submit(w, true);
            }
            for id in propose(&mut p, round + 1) {
                assert!(seen.insert(id), "request id {id} given twice");
            }
        }
        assert_eq!(seen.len(), 12);
        assert!(seen.contains(&(u64::MAX - 2)) && seen.contains(&0));
    }

    #[test]
    fn a_snapshot_makes_older_proposals_unknown() {
        let mut p = Pending::new(1);
        let (old, mut old_rx) = write(far());
        p.submit(old, true);
        propose(&mut p, 1);
        let (new, mut new_rx) = write(far());
        p.submit(new, true);
        propose(&mut p, 3);
        let mut outcomes = Vec::new();
        p.covered_by_snapshot(2, &mut outcomes);
        assert_eq!(outcomes.len(), 1);
        p.finish(outcomes);
        assert_eq!(
            old_rx.try_recv().unwrap(),
            Err(RaftError::SnapshotOutcomeUnknown)
        );
        assert!(new_rx.try_recv().is_err());
        assert!(p.has_waiters());
    }

    #[test]
    fn fail_all_answers_everyone() {
        let mut p = Pending::new(1);
        let (waiting, mut waiting_rx) = write(far());
        p.submit(waiting, true);
        propose(&mut p, 1);
        let (parked, mut parked_rx) = write(far());
        p.submit(parked, false);
        let (batched, mut batched_rx) = write(far());
        p.submit(batched, true);
        p.fail_all(RaftError::ShuttingDown);
        for rx in [&mut waiting_rx, &mut parked_rx, &mut batched_rx] {
            assert_eq!(rx.try_recv().unwrap(), Err(RaftError::ShuttingDown));
        }
        assert!(!p.has_waiters() && !p.has_parked() && p.batch_len() == 0);
    }

    #[test]
    fn retry_is_due_once() {
        let mut p = Pending::new(1);
        assert!(!p.take_retry());
        p.retry_soon();
        assert!(p.take_retry());
        assert!(!p.take_retry());
    }
}
