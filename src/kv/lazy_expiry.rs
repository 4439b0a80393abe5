//! Keys a reader of this node found expired, for the expiry task to have reaped.
//!
//! Redis deletes an expired key when a command touches it and raises `expired` then. A kvd read
//! cannot delete (reads change nothing, on any node): it only notes the key here, and the
//! node's expiry task proposes a reap entry for it (`src/expiry.rs`), so every node removes it
//! and raises `expired` one commit after the read, instead of at the next look of active
//! expiry. Node-local and never state: apply re-checks each key against the entry's clock.
//!
//! Bounded: at most `MAX_PENDING` keys wait, and a key noted once is not noted again for
//! `FORGET_AFTER` (its reap is in flight), so a hot expired key wakes the task once.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

/// Keys waiting for the expiry task at most.
const MAX_PENDING: usize = 1024;
/// How long a key handed to the task is not taken again.
const FORGET_AFTER: Duration = Duration::from_secs(1);
/// Keys remembered as handed over at most (beyond it they are forgotten early).
const MAX_RECENT: usize = 16 * 1024;

/// (physical database, expiry time, key) of an expired key, as the expiry index names it.
pub type Expired = (u8, i64, Bytes);

struct Seen {
    pending: Vec<Expired>,
    recent: HashSet<Expired>,
    since: Option<Instant>,
}

static SEEN: LazyLock<Mutex<Seen>> = LazyLock::new(|| {
    Mutex::new(Seen {
        pending: Vec::new(),
        recent: HashSet::new(),
        since: None,
    })
});
static WAKE: Notify = Notify::const_new();

/// A reader found `key` of physical database `db` expired at `at` (ms).
pub fn noticed(db: u8, at: i64, key: &[u8]) {
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    if seen.pending.len() >= MAX_PENDING {
        return;
    }
    let item = (db, at, Bytes::copy_from_slice(key));
    if seen.recent.contains(&item) || seen.pending.contains(&item) {
        return;
    }
    seen.pending.push(item);
    drop(seen);
    WAKE.notify_one();
}

/// The keys noted since the last call, each remembered for `FORGET_AFTER`.
pub fn take() -> Vec<Expired> {
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    if seen
        .since
        .is_none_or(|t| now.duration_since(t) >= FORGET_AFTER)
        || seen.recent.len() >= MAX_RECENT
    {
        seen.recent.clear();
        seen.since = Some(now);
    }
    let taken = std::mem::take(&mut seen.pending);
    seen.recent.extend(taken.iter().cloned());
    taken
}

/// Woken when a key is noted.
pub fn wake() -> &'static Notify {
    &WAKE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_handed_over_once_until_forgotten() {
        noticed(3, 10, b"lazy-test-a");
        noticed(3, 10, b"lazy-test-a");
        noticed(3, 11, b"lazy-test-b");
        let ours = |(_, _, k): &Expired| k.starts_with(b"lazy-test-");
        let got: Vec<_> = take().into_iter().filter(|e| ours(e)).collect();
        assert_eq!(
            got,
            vec![
                (3, 10, Bytes::from_static(b"lazy-test-a")),
                (3, 11, Bytes::from_static(b"lazy-test-b"))
            ]
        );
        // Read again while its reap is in flight: not handed over again.
        noticed(3, 10, b"lazy-test-a");
        assert!(!take().iter().any(ours));
    }
}
