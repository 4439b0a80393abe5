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

/// One command's count while it is applied.
#[derive(Debug, Default)]
struct Command {
    /// Rows written or removed by the command itself.
    rows: u64,
    /// The count it stated, if it did.
    stated: Option<u64>,
    /// It is a FLUSHALL.
    flushall: bool,
    /// It ran commands of its own (a script): those count, it adds nothing unless it states so.
    nested: bool,
}

/// The counting inside a `WriteView`: per command (scripts' commands nested in theirs), then
/// per entry.
#[derive(Debug, Default)]
pub(super) struct DirtyCount {
    current: Command,
    /// The commands that started the current one (a script's EVAL).
    outer: Vec<Command>,
    entry: EntryChanges,
}

impl DirtyCount {
    pub(super) fn begin_entry(&mut self) {
        *self = DirtyCount::default();
    }

    pub(super) fn begin_command(&mut self) {
        self.current.nested = true;
        let outer = std::mem::take(&mut self.current);
        self.outer.push(outer);
    }

    pub(super) fn row_changed(&mut self) {
        self.current.rows += 1;
    }

    pub(super) fn state(&mut self, n: u64) {
        *self.current.stated.get_or_insert(0) += n;
    }

    pub(super) fn end_command(&mut self) {
        let outer = self.outer.pop().unwrap_or_default();
        let c = std::mem::replace(&mut self.current, outer);
        let n = c.stated.unwrap_or(u64::from(c.rows > 0 && !c.nested));
        self.entry.changes += n;
        if let Some(after) = &mut self.entry.after_flushall {
            *after += n;
        }
        if c.flushall {
            self.entry.after_flushall = Some(0);
        }
    }

    /// The command being applied is a FLUSHALL: its own changes count before the save it
    /// stands for, the entry's later commands after it.
    pub(super) fn flushed_all(&mut self) {
        self.current.flushall = true;
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
    fn a_script_counts_the_commands_it_runs_not_itself() {
        let mut d = DirtyCount::default();
        d.begin_entry();
        d.begin_command();
        d.row_changed();
        for n in [1, 2] {
            d.begin_command();
            d.row_changed();
            d.state(n);
            d.end_command();
        }
        d.begin_command();
        d.row_changed();
        d.end_command();
        d.row_changed();
        d.end_command();
        assert_eq!(d.take().changes, 4);
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
