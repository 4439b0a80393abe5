//! Reclaiming unreachable member rows: deleting or overwriting a collection (DEL, SET over it,
//! expiry) replaces only its metadata row, so the member rows of its old version stay in the
//! table, unreachable, until this task removes them.
//!
//! As with active expiry (`crate::expiry`), only the leader looks, and it removes rows by
//! proposing `rows-reap` entries, so every node drops the same rows at the same point of the
//! log (DIGEST covers member rows: replicas stay equal). The leader walks the member rows, then
//! the sorted sets' score rows (`encoding::OWNED_FAMILIES`), in table order from a cursor, at most `BUDGET` rows per look (a live collection's rows are
//! skipped with one seek), and proposes at most `BATCH` orphans (and `BATCH_BYTES`) per entry,
//! one entry in flight at a time: a DEL of a huge collection costs one metadata write, then
//! a series of bounded entries with client writes in between. A full batch means more is due,
//! so it goes on at once; otherwise it sleeps `IDLE_PERIOD`. Apply re-checks every row against
//! the metadata as it is then (`collection::reap_orphan`); a dead version never comes back, as
//! versions are never reused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use slog::debug;
use tokio::sync::watch;

use crate::cmd::{CmdResult, Kind, Spec};
use crate::kv::collection::{find_orphans, reap_orphan};
use crate::kv::encoding::OWNED_FAMILIES;
use crate::kv::{ApplyCtx, Reader, WriteView};
use crate::raft::status::Role;
use crate::resp::Reply;
use crate::server::Shared;

/// Orphan rows one entry removes at most, and the most bytes of table keys it carries.
const BATCH: usize = 1000;
const BATCH_BYTES: usize = 1 << 20;
/// Member rows (or live collections) one look visits at most.
const BUDGET: usize = 4096;
/// Pause between looks when no full batch was found.
const IDLE_PERIOD: Duration = Duration::from_millis(100);

/// INFO memory's `lazyfree_pending_objects`: the orphan rows this node's last look found and
/// has not seen removed yet (0 on a node that is not the leader: it does not reclaim).
static PENDING: AtomicU64 = AtomicU64::new(0);

pub fn pending() -> u64 {
    PENDING.load(Relaxed)
}

/// Runs until `stop` turns true.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut reader = Reader::new(&shared.db, shared.raft.memtable());
    let mut cursor = vec![OWNED_FAMILIES[0]];
    loop {
        let mut more = false;
        if shared.raft.status().role == Role::Leader {
            match reader.run(0, |view| find_orphans(view, &cursor, BATCH, BUDGET)) {
                Ok((mut rows, next)) => {
                    let mut bytes = 0;
                    let fits = rows
                        .iter()
                        .position(|r| {
                            bytes += r.len();
                            bytes > BATCH_BYTES
                        })
                        .map(|i| i.max(1));
                    cursor = match fits {
                        Some(n) if n < rows.len() => rows[n].to_vec(),
                        _ => next.unwrap_or_else(|| next_family(&cursor)),
                    };
                    if let Some(n) = fits {
                        rows.truncate(n);
                    }
                    more = rows.len() >= BATCH || fits.is_some();
                    PENDING.store(rows.len() as u64, Relaxed);
                    if !rows.is_empty() {
                        let timeout = shared.config.write_timeout;
                        match shared.raft.propose(0, reap_argv(rows), timeout).await {
                            Ok(r) if !r.is_error() => {
                                if !more {
                                    PENDING.store(0, Relaxed);
                                }
                            }
                            outcome => {
                                debug!(shared.logger, "rows-reap entry not applied"; "outcome" => ?outcome);
                                more = false;
                            }
                        }
                    }
                }
                Err(e) => debug!(shared.logger, "row reclaim cannot read"; "error" => %e),
            }
        } else {
            PENDING.store(0, Relaxed);
        }
        if more && !*stop.borrow() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE_PERIOD) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Where the walk goes once the family `cursor` is in is done: the next owned family's first
/// row, after the last one the first's.
fn next_family(cursor: &[u8]) -> Vec<u8> {
    let at = OWNED_FAMILIES
        .iter()
        .position(|f| cursor.first() == Some(f))
        .unwrap_or(0);
    vec![OWNED_FAMILIES[(at + 1) % OWNED_FAMILIES.len()]]
}

/// `rows-reap table-key...`: removes the listed member rows that no live incarnation owns.
/// Internal: in `cmd::INTERNAL`, which only apply looks up, so no client can send it.
pub const ROWS_REAP: Spec = Spec {
    name: "rows-reap",
    arity: -1,
    kind: Kind::Write {
        prepare: |_| Err(Reply::error("ERR internal command")),
        apply: rows_reap,
    },
    flags: &[],
    keys: (0, 0, 0),
};

/// The entry's arguments for `rows` (member or score rows' table keys).
pub fn reap_argv(rows: Vec<Bytes>) -> Vec<Bytes> {
    let mut argv = Vec::with_capacity(1 + rows.len());
    argv.push(Bytes::from_static(ROWS_REAP.name.as_bytes()));
    argv.extend(rows);
    argv
}

/// Replies with the number of rows removed; a row still owned, or not a member row, stays.
fn rows_reap(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    // Reclaiming unreachable rows changes nothing a client sees: no dirty change.
    w.dirty(0);
    let mut removed = 0;
    for row in &argv[1..] {
        removed += i64::from(reap_orphan(w, row)?);
    }
    Ok(Reply::Integer(removed))
}
