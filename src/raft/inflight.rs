//! The Readies handed to the persistence worker and not yet reported durable, oldest first:
//! what the raft thread must hold back until the disk has them (messages raft-rs allows out
//! only after persistence: votes, append responses) and which Ready number raft-rs may be told
//! is persisted. Pure bookkeeping, no raft-rs or redb: the raft loop (`node`) asks it.

use std::collections::VecDeque;

use raft::eraftpb::Message;

/// A Ready whose disk work is with the worker (or waits behind one that is).
struct InFlight {
    number: u64,
    /// Messages raft-rs allows out only once this Ready is durable.
    messages: Vec<Message>,
    /// It had disk work (a job); otherwise it only waits for the ones before it.
    job: bool,
    /// Its entries replace the log from this index on.
    cut: Option<u64>,
    /// Its job must be fsynced.
    sync: bool,
}

/// What became durable with one report of the worker.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Released {
    /// The newest Ready number now persisted (for `RawNode::on_persist_ready`).
    pub(super) number: Option<u64>,
    /// The messages that waited for it, in Ready order.
    pub(super) messages: Vec<Message>,
}

#[derive(Default)]
pub(super) struct InFlightReadies {
    queue: VecDeque<InFlight>,
}

impl InFlightReadies {
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// True while the worker holds some job.
    pub(super) fn has_jobs(&self) -> bool {
        self.queue.iter().any(|f| f.job)
    }

    /// True while the worker holds a job that must be fsynced (group commit gathers writes
    /// meanwhile).
    pub(super) fn fsync_in_flight(&self) -> bool {
        self.queue.iter().any(|f| f.sync)
    }

    /// A Ready handed on (with disk work, `job`), or queued behind those that were.
    pub(super) fn push(
        &mut self,
        number: u64,
        messages: Vec<Message>,
        job: bool,
        cut: Option<u64>,
        sync: bool,
    ) {
        self.queue.push_back(InFlight {
            number,
            messages,
            job,
            cut,
            sync,
        });
    }

    /// The worker made every job up to Ready `number` durable: releases those Readies and the
    /// job-less ones right behind them.
    pub(super) fn release_through(&mut self, number: u64) -> Released {
        let mut out = Released::default();
        while let Some(f) = self.queue.front() {
            if f.number > number && f.job {
                break;
            }
            if let Some(f) = self.queue.pop_front() {
                out.number = Some(f.number);
                out.messages.extend(f.messages);
            }
        }
        out
    }

    /// The highest log index whose entry is durable in its current form, given that entries
    /// up to `written` were written: a still pending job that replaces the log from some index
    /// on makes the old entries from there on no longer count.
    pub(super) fn durable_floor(&self, written: u64) -> u64 {
        self.queue
            .iter()
            .filter_map(|f| f.cut)
            .min()
            .map_or(written, |c| written.min(c.saturating_sub(1)))
    }

    /// Everything still queued, once the worker is idle (see `Node::drain_worker`).
    pub(super) fn release_all(&mut self) -> Released {
        let mut out = Released::default();
        for f in self.queue.drain(..) {
            out.number = Some(f.number);
            out.messages.extend(f.messages);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(to: u64) -> Message {
        Message {
            to,
            ..Default::default()
        }
    }

    #[test]
    fn readies_are_released_in_order_and_only_once_durable() {
        let mut q = InFlightReadies::default();
        q.push(1, vec![msg(1)], true, None, true);
        q.push(2, vec![msg(2)], false, None, false); // waits behind 1
        q.push(3, vec![msg(3)], true, None, false);
        assert!(q.has_jobs() && q.fsync_in_flight());
        // Job 1 durable: 1 and the job-less 2 behind it go; 3 stays.
        let r = q.release_through(1);
        assert_eq!(r.number, Some(2));
        assert_eq!(r.messages.iter().map(|m| m.to).collect::<Vec<_>>(), [1, 2]);
        assert!(!q.fsync_in_flight() && q.has_jobs());
        // A report for an older number releases nothing more.
        assert_eq!(q.release_through(2), Released::default());
        assert_eq!(q.release_through(3).number, Some(3));
        assert!(q.is_empty());
    }

    #[test]
    fn a_pending_cut_caps_what_counts_as_durable() {
        let mut q = InFlightReadies::default();
        assert_eq!(q.durable_floor(10), 10);
        q.push(5, vec![], true, Some(8), false);
        q.push(6, vec![], true, Some(9), false);
        assert_eq!(q.durable_floor(10), 7);
        assert_eq!(q.durable_floor(3), 3);
        q.release_through(5);
        assert_eq!(q.durable_floor(10), 8);
        let r = q.release_all();
        assert_eq!(r.number, Some(6));
        assert!(q.is_empty() && !q.has_jobs());
    }
}
