//! When this node last heard from each peer, for Redis's "good replicas"
//! (`min-replicas-to-write`, see `cmd::min_replicas`): the raft thread notes every message it
//! steps; connections count the peers heard within `min-replicas-max-lag`. Node-local, read
//! only before a command is proposed, never in apply.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Heard {
    /// (peer id, last message from it). A cluster has a handful of members: a list is enough.
    at: Mutex<Vec<(u64, Instant)>>,
}

impl Heard {
    /// A message from `peer` arrived now.
    pub fn note(&self, peer: u64) {
        let now = Instant::now();
        let mut at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        match at.iter_mut().find(|(id, _)| *id == peer) {
            Some(e) => e.1 = now,
            None => at.push((peer, now)),
        }
    }

    /// How many of `peers` were heard from within `lag` (whole seconds, as Redis counts a
    /// replica's lag).
    pub fn within(&self, peers: impl Iterator<Item = u64>, lag: Duration) -> usize {
        let at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        peers
            .filter(|p| {
                at.iter().any(|(id, t)| {
                    id == p && now.saturating_duration_since(*t).as_secs() <= lag.as_secs()
                })
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_the_peers_heard_within_the_lag() {
        let h = Heard::default();
        h.note(2);
        h.note(3);
        assert_eq!(h.within([2, 3, 4].into_iter(), Duration::from_secs(10)), 2);
        assert_eq!(h.within([4].into_iter(), Duration::from_secs(10)), 0);
        std::thread::sleep(Duration::from_millis(1100));
        h.note(3);
        assert_eq!(h.within([2, 3].into_iter(), Duration::ZERO), 1);
    }
}
