//! Linearizable reads: batching client reads into raft ReadIndex rounds.
//!
//! Reads that arrive while a round is in flight wait for the next round: the index of a round
//! already started may predate them. raft-rs drops ReadIndex requests silently when there is no
//! leader, or when a new leader has not yet committed an entry of its own term (so a new leader
//! serves nothing linearizable before that); rounds not answered within a few ticks are retried
//! until each reader's deadline.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::oneshot;

use super::RaftError;

/// A ReadIndex round not answered within this many ticks is asked again.
const ROUND_TICKS: u64 = 5;

type Reader = (Instant, oneshot::Sender<Result<u64, RaftError>>);

struct Round {
    started_tick: u64,
    readers: Vec<Reader>,
}

#[derive(Default)]
pub struct ReadRounds {
    waiting: Vec<Reader>,
    in_flight: HashMap<u64, Round>,
}

impl ReadRounds {
    pub fn add(&mut self, deadline: Instant, reply: oneshot::Sender<Result<u64, RaftError>>) {
        self.waiting.push((deadline, reply));
    }

    /// If reads are waiting, takes them into a new round and returns its context for
    /// `RawNode::read_index`.
    pub fn start(&mut self, ctx: u64, tick: u64) -> Option<Vec<u8>> {
        if self.waiting.is_empty() {
            return None;
        }
        let readers = std::mem::take(&mut self.waiting);
        self.in_flight.insert(
            ctx,
            Round {
                started_tick: tick,
                readers,
            },
        );
        Some(ctx.to_be_bytes().to_vec())
    }

    /// Answers the readers of the round `ctx` names with the index they must wait for.
    pub fn finish(&mut self, ctx: &[u8], index: u64) {
        let Ok(key) = <[u8; 8]>::try_from(ctx) else {
            return;
        };
        if let Some(round) = self.in_flight.remove(&u64::from_be_bytes(key)) {
            for (_, reply) in round.readers {
                let _ = reply.send(Ok(index));
            }
        }
    }

    /// Once per tick: readers past their deadline learn that no leader confirmed their read;
    /// rounds that went unanswered too long go back to waiting for the next round.
    pub fn on_tick(&mut self, tick: u64, now: Instant) {
        let stale: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, r)| tick.saturating_sub(r.started_tick) >= ROUND_TICKS)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(round) = self.in_flight.remove(&k) {
                self.waiting.extend(round.readers);
            }
        }
        let mut kept = Vec::with_capacity(self.waiting.len());
        for (deadline, reply) in self.waiting.drain(..) {
            if deadline <= now || reply.is_closed() {
                let _ = reply.send(Err(RaftError::ReadNoLeader));
            } else {
                kept.push((deadline, reply));
            }
        }
        self.waiting = kept;
    }

    /// Fails every reader (shutdown, leaving the cluster).
    pub fn fail_all(&mut self, err: RaftError) {
        for (_, r) in self.waiting.drain(..) {
            let _ = r.send(Err(err));
        }
        for (_, round) in self.in_flight.drain() {
            for (_, r) in round.readers {
                let _ = r.send(Err(err));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_round_answers_all_its_readers_and_only_them() {
        let mut r = ReadRounds::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let far = Instant::now() + Duration::from_secs(60);
        r.add(far, tx1);
        let ctx = r.start(7, 0).unwrap();
        r.add(far, tx2); // arrives after the round started: must not share it
        r.finish(&ctx, 42);
        assert_eq!(rx1.try_recv().unwrap(), Ok(42));
        assert!(rx2.try_recv().is_err());
        assert!(r.start(8, 1).is_some());
    }

    #[test]
    fn fail_all_answers_waiting_and_in_flight_readers() {
        let mut r = ReadRounds::default();
        let far = Instant::now() + Duration::from_secs(60);
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        r.add(far, tx1);
        r.start(1, 0).unwrap();
        r.add(far, tx2);
        r.fail_all(RaftError::ShuttingDown);
        assert_eq!(rx1.try_recv().unwrap(), Err(RaftError::ShuttingDown));
        assert_eq!(rx2.try_recv().unwrap(), Err(RaftError::ShuttingDown));
        assert!(r.start(2, 1).is_none());
    }

    #[test]
    fn unanswered_rounds_are_retried_and_deadlines_enforced() {
        let mut r = ReadRounds::default();
        let (tx, mut rx) = oneshot::channel();
        let now = Instant::now();
        r.add(now + Duration::from_secs(60), tx);
        r.start(1, 0).unwrap();
        r.on_tick(ROUND_TICKS, now);
        let ctx = r.start(2, ROUND_TICKS).expect("retried");
        r.finish(&ctx, 5);
        assert_eq!(rx.try_recv().unwrap(), Ok(5));

        let (tx, mut rx) = oneshot::channel();
        r.add(now, tx);
        r.on_tick(ROUND_TICKS + 1, now + Duration::from_millis(1));
        assert_eq!(rx.try_recv().unwrap(), Err(RaftError::ReadNoLeader));
    }
}
