//! Which keys a command may read or write, so a connection can tell when a read queued behind
//! its own writes in flight may be left to run after later writes (none of them touches what
//! it reads) and when a write must wait for the reads before it (see `connection`).
//!
//! The keys are those at the command table's fixed positions (`Spec::keys`). A command whose
//! keys are elsewhere too (counted by an argument, named by a pattern, in another database) or
//! that has none (it reads or writes the whole keyspace) may touch anything.

use std::collections::HashSet;

use bytes::Bytes;

use super::Spec;

/// Redis 7.0's `movablekeys` commands (COMMAND INFO shows the flag): their keys are not all at
/// their fixed positions (counted by an argument, after an option, or found by parsing).
pub(crate) const MOVABLE_KEYS: &[&str] = &[
    "blmpop",
    "bzmpop",
    "eval",
    "eval_ro",
    "evalsha",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "georadius",
    "georadiusbymember",
    "lmpop",
    "migrate",
    "sintercard",
    "sort",
    "sort_ro",
    "xread",
    "xreadgroup",
    "zdiff",
    "zdiffstore",
    "zinter",
    "zintercard",
    "zinterstore",
    "zmpop",
    "zunion",
    "zunionstore",
];

/// Commands that reach a key in another database (their destination).
const OTHER_DATABASE: &[&str] = &["copy", "move"];

/// What one command may touch.
#[derive(Debug, PartialEq, Eq)]
pub enum Footprint {
    /// Only these keys of this database.
    Keys(u8, Vec<Bytes>),
    /// Anything.
    All,
}

impl Footprint {
    /// The footprint of `argv` (as the client sent it) run on database `db`.
    pub fn of(spec: &Spec, argv: &[Bytes], db: u8) -> Footprint {
        if MOVABLE_KEYS.contains(&spec.name) || OTHER_DATABASE.contains(&spec.name) {
            return Footprint::All;
        }
        let keys: Vec<Bytes> = spec.key_args(argv).cloned().collect();
        if keys.is_empty() {
            Footprint::All
        } else {
            Footprint::Keys(db, keys)
        }
    }
}

/// The footprints of the reads a connection has queued behind its writes in flight.
#[derive(Default)]
pub struct Deferred {
    keys: HashSet<(u8, Bytes)>,
    all: bool,
}

impl Deferred {
    pub fn add(&mut self, f: Footprint) {
        match f {
            Footprint::All => self.all = true,
            Footprint::Keys(db, keys) => self.keys.extend(keys.into_iter().map(|k| (db, k))),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.keys.is_empty()
    }

    /// True if a command with footprint `f` may touch what one of the reads reads.
    pub fn overlaps(&self, f: &Footprint) -> bool {
        if self.is_empty() {
            return false;
        }
        match f {
            Footprint::All => true,
            Footprint::Keys(db, keys) => {
                self.all || keys.iter().any(|k| self.keys.contains(&(*db, k.clone())))
            }
        }
    }

    pub fn clear(&mut self) {
        self.all = false;
        self.keys.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::lookup;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn of(words: &[&str], db: u8) -> Footprint {
        let argv = argv(words);
        let spec = lookup(&argv[0]).expect("a known command");
        Footprint::of(spec, &argv, db)
    }

    #[test]
    fn fixed_keys_are_the_footprint() {
        assert_eq!(
            of(&["MGET", "a", "b"], 3),
            Footprint::Keys(3, argv(&["a", "b"]))
        );
        assert_eq!(
            of(&["MSET", "a", "1", "b", "2"], 0),
            Footprint::Keys(0, argv(&["a", "b"]))
        );
    }

    #[test]
    fn keyless_movable_and_cross_database_commands_touch_anything() {
        for words in [
            &["DBSIZE"][..],
            &["SCAN", "0"],
            &["FLUSHDB"],
            &["SWAPDB", "0", "1"],
            &["SORT", "l", "BY", "w_*"],
            &["ZUNIONSTORE", "d", "2", "a", "b"],
            &["MOVE", "k", "1"],
            &["COPY", "a", "b", "DB", "1"],
            &["EVAL", "return 1", "0"],
        ] {
            assert_eq!(of(words, 0), Footprint::All, "{words:?}");
        }
    }

    #[test]
    fn a_write_overlaps_a_read_of_the_same_key_in_the_same_database() {
        let mut reads = Deferred::default();
        assert!(!reads.overlaps(&Footprint::All));
        reads.add(of(&["GET", "k"], 0));
        assert!(reads.overlaps(&of(&["SET", "k", "v"], 0)));
        assert!(reads.overlaps(&of(&["DEL", "x", "k"], 0)));
        assert!(!reads.overlaps(&of(&["SET", "k", "v"], 1)));
        assert!(!reads.overlaps(&of(&["SET", "j", "v"], 0)));
        assert!(reads.overlaps(&of(&["FLUSHALL"], 0)));
        reads.add(of(&["DBSIZE"], 0));
        assert!(reads.overlaps(&of(&["SET", "j", "v"], 5)));
        reads.clear();
        assert!(reads.is_empty());
        assert!(!reads.overlaps(&of(&["SET", "k", "v"], 0)));
    }
}
