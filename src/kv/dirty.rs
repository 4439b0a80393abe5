//! Redis's dirty counter as apply computes it: how many changes each entry made, by Redis 7.0's
//! rules (`server.dirty`), so INFO persistence's `rdb_changes_since_last_save` moves as it does
//! on redis-server.
//!
//! A command states its own count (`WriteView::dirty`) where Redis counts more than one change
//! or only some (DEL: one per key removed; SETBIT: only when a bit or the length changed; MSET:
//! one per pair); a command that states none counts 1 if it wrote or removed any row, 0
//! otherwise (Redis's `server.dirty++` after a write that happened). The count comes from the
//! entry alone, so every node computes the same delta for it; the counter that adds them up is
//! node-local (`crate::persistence`), like the other INFO statistics.

/// What one entry changed, handed to the node's counter after it is applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryChanges {
    /// Changes the entry made, all its commands together.
    pub changes: u64,
    /// The entry ran FLUSHALL: the changes counted after its last one (Redis saves on FLUSHALL
    /// when save points are configured, which starts its counter again from there).
    pub after_flushall: Option<u64>,
}

/// The counting inside a `WriteView`: per command, then per entry.
#[derive(Debug, Default)]
pub(super) struct DirtyCount {
    /// Rows written or removed by the command being applied.
    rows: u64,
    /// The count the command being applied stated, if it did.
    stated: Option<u64>,
    /// The command being applied is a FLUSHALL.
    flushall: bool,
    entry: EntryChanges,
}

impl DirtyCount {
    pub(super) fn begin_entry(&mut self) {
        *self = DirtyCount::default();
    }

    pub(super) fn begin_command(&mut self) {
        self.rows = 0;
        self.stated = None;
        self.flushall = false;
    }

    pub(super) fn row_changed(&mut self) {
        self.rows += 1;
    }

    pub(super) fn state(&mut self, n: u64) {
        *self.stated.get_or_insert(0) += n;
    }

    pub(super) fn end_command(&mut self) {
        let n = self.stated.unwrap_or(u64::from(self.rows > 0));
        self.entry.changes += n;
        if let Some(after) = &mut self.entry.after_flushall {
            *after += n;
        }
        if self.flushall {
            self.entry.after_flushall = Some(0);
        }
        self.begin_command();
    }

    /// The command being applied is a FLUSHALL: its own changes count before the save it
    /// stands for, the entry's later commands after it.
    pub(super) fn flushed_all(&mut self) {
        self.flushall = true;
    }

    pub(super) fn take(&mut self) -> EntryChanges {
        std::mem::take(&mut self.entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_counts_what_it_states_or_one_if_it_wrote() {
        let mut d = DirtyCount::default();
        d.begin_entry();
        d.begin_command();
        d.row_changed();
        d.row_changed();
        d.end_command();
        d.begin_command();
        d.end_command();
        d.begin_command();
        d.row_changed();
        d.state(0);
        d.end_command();
        d.begin_command();
        d.state(3);
        d.end_command();
        assert_eq!(
            d.take(),
            EntryChanges {
                changes: 4,
                after_flushall: None
            }
        );
    }

    #[test]
    fn flushall_marks_where_a_save_would_restart_the_count() {
        let mut d = DirtyCount::default();
        d.begin_entry();
        d.begin_command();
        d.state(2);
        d.end_command();
        d.begin_command();
        d.state(5);
        d.flushed_all();
        d.end_command();
        d.begin_command();
        d.row_changed();
        d.end_command();
        assert_eq!(
            d.take(),
            EntryChanges {
                changes: 8,
                after_flushall: Some(1)
            }
        );
    }
}
