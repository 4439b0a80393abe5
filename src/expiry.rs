//! Active expiry: the leader reclaims expired keys by proposing their removal, in bounded
//! batches, so memory and disk come back on every node the same way (followers never delete on
//! their own; their readers already treat expired keys as absent).
//!
//! Like Redis's active expiry cycle, the work adapts to what is due: every `IDLE_PERIOD` this
//! task reads the expiry index (`kv::encoding`, ordered by time) up to now, at most `BATCH`
//! rows; a full batch means more is due, so it goes on at once with the next one, else it
//! sleeps again. One entry is in flight at a time, so however many keys expire together, writes
//! of clients keep their place in the log between batches. Each batch is one `expire-reap`
//! entry; apply re-checks every key against the entry's clock (a key given a new TTL or
//! rewritten since it was read stays).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use slog::debug;
use tokio::sync::watch;

use crate::kv::encoding::{self, DATABASES};
use crate::kv::{KeyRead, Reader, lazy_expiry, wall_clock_ms};
use crate::raft::status::Role;
use crate::server::Shared;

/// Index rows (keys) one entry removes at most.
const BATCH: usize = 1000;
/// Pause between looks at the index when nothing more is due.
const IDLE_PERIOD: Duration = Duration::from_millis(100);

/// Whether this node's active expiry runs (`DEBUG SET-ACTIVE-EXPIRE 0|1`, as in Redis; node-local:
/// only the leader's matters). Keys found expired by reads are reaped either way.
static ACTIVE: AtomicBool = AtomicBool::new(true);

/// `DEBUG SET-ACTIVE-EXPIRE`.
pub fn set_active(on: bool) {
    ACTIVE.store(on, Relaxed);
}

/// Runs until `stop` turns true.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut reader = Reader::new(&shared.db, shared.raft.memtable());
    // Where the next look starts while more is due: just past the last row proposed. The rows
    // reaped meanwhile are deletions in the memtable until it is flushed, and starting from the
    // top every time walked past all of them (the leader's CPU went to that when a million keys
    // expired together). Back to the top whenever a look finds less than a batch.
    let mut resume: Option<Vec<u8>> = None;
    loop {
        let mut more = false;
        // Keys readers of this node found expired (Redis's lazy expiry): the leader's look at
        // the index below finds them (its readers share its clock); another node proposes
        // their reap itself, so they go as soon as they are read anywhere, whether or not
        // active expiry runs.
        let lazy = lazy_expiry::take();
        let active = shared.raft.status().role == Role::Leader && ACTIVE.load(Relaxed);
        if !lazy.is_empty() && !active {
            let timeout = shared.config.write_timeout;
            let outcome = shared
                .raft
                .propose(0, crate::cmd::reap_argv(&lazy), timeout)
                .await;
            if !matches!(&outcome, Ok(r) if !r.is_error()) {
                debug!(shared.logger, "lazy expiry entry not applied"; "outcome" => ?outcome);
            }
        }
        if active {
            match due(&mut reader, wall_clock_ms(), resume.as_deref()) {
                Ok(rows) if !rows.is_empty() => {
                    more = rows.len() >= BATCH;
                    resume = rows.last().map(|(db, at, key)| {
                        let mut k = encoding::expiry_key(*db, *at, key).to_vec();
                        k.push(0);
                        k
                    });
                    let argv = crate::cmd::reap_argv(&rows);
                    let timeout = shared.config.write_timeout;
                    match shared.raft.propose(0, argv, timeout).await {
                        Ok(r) if !r.is_error() => {}
                        outcome => {
                            debug!(shared.logger, "active expiry entry not applied"; "outcome" => ?outcome);
                            more = false;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => debug!(shared.logger, "active expiry cannot read"; "error" => %e),
            }
        }
        if !more {
            resume = None;
        }
        if more && !*stop.borrow() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE_PERIOD) => {}
            _ = lazy_expiry::wake().notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Up to `BATCH` expiry index rows due by `now`, over every database, from table key `from` on.
fn due(
    reader: &mut Reader,
    now: i64,
    from: Option<&[u8]>,
) -> Result<Vec<(u8, i64, Bytes)>, crate::store::StoreError> {
    reader.run(0, |view| {
        let mut rows = Vec::new();
        for db in 0..DATABASES {
            if rows.len() >= BATCH {
                break;
            }
            let (start, hi) = encoding::expiry_range(db, now);
            let lo = match from {
                Some(from) if from > &start[..] => from,
                _ => &start[..],
            };
            if lo >= &hi[..] {
                continue;
            }
            view.scan_raw(lo, &hi, &mut |k, _| {
                if let Some((db, at, key)) = encoding::parse_expiry_key(k) {
                    rows.push((db, at, Bytes::copy_from_slice(key)));
                }
                rows.len() < BATCH
            })?;
        }
        Ok(rows)
    })
}
