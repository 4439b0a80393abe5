//! INFO persistence's node-local counters: Redis's dirty counter (`rdb_changes_since_last_save`)
//! and the time of the last save.
//!
//! Every applied entry adds the changes its commands made (`kv::dirty`: computed from the entry
//! alone, alike on every node); SAVE and BGSAVE start the count again on the node they ran on
//! (kvd has nothing to write: every acknowledged write is already in the raft log), as does a
//! FLUSHALL while save points are configured (`CONFIG SET save`), as Redis 7.0 saves then. The
//! counter is not replicated state: a node starts it from 0, as redis-server does after loading.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::kv::dirty::EntryChanges;

pub struct Persistence {
    changes: AtomicU64,
    /// Unix time (seconds) of the last save, or of the start.
    last_save: AtomicI64,
    /// Saves done (`rdb_saves`).
    saves: AtomicU64,
    /// `save` has save points: FLUSHALL saves.
    save_points: AtomicBool,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            changes: AtomicU64::new(0),
            last_save: AtomicI64::new(unix_now()),
            saves: AtomicU64::new(0),
            save_points: AtomicBool::new(false),
        }
    }
}

impl Persistence {
    /// One applied entry's changes.
    pub fn applied(&self, e: EntryChanges) {
        match e.after_flushall {
            Some(after) if self.save_points.load(Relaxed) => {
                self.saved();
                self.changes.store(after, Relaxed);
            }
            _ => {
                self.changes.fetch_add(e.changes, Relaxed);
            }
        }
    }

    /// A save (SAVE, BGSAVE, FLUSHALL with save points): the count starts again.
    pub fn saved(&self) {
        self.changes.store(0, Relaxed);
        self.last_save.store(unix_now(), Relaxed);
        self.saves.fetch_add(1, Relaxed);
    }

    /// `CONFIG SET save`: whether it now has save points.
    pub fn set_save_points(&self, any: bool) {
        self.save_points.store(any, Relaxed);
    }

    pub fn changes(&self) -> u64 {
        self.changes.load(Relaxed)
    }

    pub fn last_save(&self) -> i64 {
        self.last_save.load(Relaxed)
    }

    pub fn saves(&self) -> u64 {
        self.saves.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushall_restarts_the_count_only_with_save_points() {
        let p = Persistence::default();
        p.applied(EntryChanges {
            changes: 3,
            after_flushall: None,
        });
        let flushall = EntryChanges {
            changes: 5,
            after_flushall: Some(1),
        };
        p.applied(flushall);
        assert_eq!((p.changes(), p.saves()), (8, 0));
        p.set_save_points(true);
        p.applied(flushall);
        assert_eq!((p.changes(), p.saves()), (1, 1));
        p.saved();
        assert_eq!((p.changes(), p.saves()), (0, 2));
    }
}
