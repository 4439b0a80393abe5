//! This node's command and error counters, for INFO commandstats, errorstats and stats, as
//! redis-server 7.0 keeps them:
//! - `calls` of each command (a container's `name|sub` apart, as Redis names them), counted
//!   when it runs: a command queued in MULTI when EXEC runs it, a script's commands too;
//! - `rejected_calls`: refused before running (arity, NOAUTH, BUSY, refused in MULTI, a
//!   script's call refused before it ran), which does not count as a call;
//! - `failed_calls`: ran and answered an error;
//! - `total_error_replies` and one count per error prefix (the first word of the error, `ERR`
//!   when there is none in its first 31 bytes), for every error reply a client got, inside an
//!   EXEC's reply or a script's `redis.pcall` included. An error a script raised from a
//!   `redis.call` is counted once, for the command that answered it (the script fails too).
//!
//! Node-local and never replicated: every node counts what its own clients sent.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;

use super::{Spec, TABLE};
use crate::resp::Reply;

/// Containers whose subcommands Redis counts apart (`cmdstat_config|set`).
const CONTAINERS: &[&str] = &[
    "acl", "client", "cluster", "command", "config", "function", "memory", "object", "pubsub",
    "script", "slowlog", "xgroup", "xinfo",
];

/// Distinct `name|sub` rows kept; past it a container's calls count under its own name (a
/// client sending random subcommand names cannot grow the table without bound).
const MAX_SUBCOMMANDS: usize = 1024;

/// Distinct error prefixes kept; past it new prefixes count in `total_error_replies` only.
const MAX_PREFIXES: usize = 128;

/// Which row of the table a command counts in.
#[derive(Clone, Debug, PartialEq)]
pub enum StatKey {
    /// A `TABLE` entry, by position.
    Command(usize),
    /// `name|sub` of a container.
    Sub(String),
}

#[derive(Default)]
struct Row {
    calls: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    calls: u64,
    rejected: u64,
    failed: u64,
}

#[derive(Clone, Copy)]
enum Field {
    Calls,
    Rejected,
    Failed,
}

/// What one command's outcome was, for [`CommandStats::outcome`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// It ran (its reply may be an error: a failed call).
    Ran,
    /// It was refused before running.
    Rejected,
}

pub struct CommandStats {
    rows: Box<[Row]>,
    subs: Mutex<BTreeMap<String, Counts>>,
    total_errors: AtomicU64,
    prefixes: Mutex<BTreeMap<String, u64>>,
    /// Script errors counted for the command that answered them (see [`CallLog`]), whose
    /// script's own reply, this same message, is not counted again when it goes out.
    counted: Mutex<VecDeque<String>>,
}

/// Script error replies awaiting their send at most (older ones are forgotten, then counted
/// twice: only if a node's scripts fail faster than its clients read).
const MAX_COUNTED: usize = 1024;

/// What the commands a script called did, gathered as it runs and added to the node's counters
/// once it completed (a run stopped to be proposed is run again in apply) on the node its
/// client is on.
#[derive(Default)]
pub struct CallLog {
    rows: Vec<(StatKey, Counts)>,
    errors: Vec<String>,
    /// The last error replies' messages, for [`CallLog::raised`].
    recent: VecDeque<String>,
}

/// Error messages a run keeps one by one; past it only their prefix is kept.
const MAX_LOGGED_ERRORS: usize = 256;

impl CallLog {
    /// A command the script called, with its reply (`Rejected`: refused before it ran).
    pub fn record(&mut self, key: Option<StatKey>, outcome: Outcome, reply: &Reply) {
        if let Some(key) = key {
            let i = match self.rows.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    self.rows.push((key, Counts::default()));
                    self.rows.len() - 1
                }
            };
            let c = &mut self.rows[i].1;
            match (outcome, reply) {
                (Outcome::Rejected, Reply::Error(_)) => c.rejected += 1,
                (Outcome::Rejected, _) => {}
                (Outcome::Ran, Reply::Error(_)) => {
                    c.calls += 1;
                    c.failed += 1
                }
                (Outcome::Ran, _) => c.calls += 1,
            }
        }
        if let Reply::Error(message) = reply {
            if self.errors.len() < MAX_LOGGED_ERRORS {
                self.errors.push(message.to_string());
            } else {
                self.errors.push(error_prefix(message).to_string());
            }
            if self.recent.len() == 8 {
                self.recent.pop_front();
            }
            self.recent.push_back(message.to_string());
        }
    }

    /// Whether the script's error reply `message` is one of its commands' errors passed on
    /// (raised by `redis.call`, or a `redis.pcall` error returned): Redis counts it once, for
    /// that command.
    pub fn raised(&self, message: &str) -> bool {
        self.recent.iter().any(|m| message.starts_with(m.as_str()))
    }
}

impl Default for CommandStats {
    fn default() -> Self {
        CommandStats {
            rows: TABLE.iter().map(|_| Row::default()).collect(),
            subs: Mutex::default(),
            total_errors: AtomicU64::new(0),
            prefixes: Mutex::default(),
            counted: Mutex::default(),
        }
    }
}

/// The position of `spec` in `TABLE`, from its address (no search on every command).
fn position(spec: &'static Spec) -> Option<usize> {
    let offset = (spec as *const Spec as usize).wrapping_sub(TABLE.as_ptr() as usize);
    let i = offset / std::mem::size_of::<Spec>();
    TABLE
        .get(i)
        .is_some_and(|s| std::ptr::eq(s, spec))
        .then_some(i)
}

/// The row `argv` (a call of `spec`) counts in; `None` for a command outside `TABLE`.
pub fn key_of(spec: &'static Spec, argv: &[Bytes]) -> Option<StatKey> {
    let i = position(spec)?;
    if CONTAINERS.contains(&spec.name)
        && let Some(sub) = argv.get(1)
        && (1..=32).contains(&sub.len())
        && sub
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
        return Some(StatKey::Sub(format!("{}|{sub}", spec.name)));
    }
    Some(StatKey::Command(i))
}

/// True for the commands whose reply is a script's returned value (EVAL, FCALL and their
/// variants).
fn is_script(key: &StatKey) -> bool {
    match key {
        StatKey::Command(i) => super::TABLE.get(*i).is_some_and(|spec| {
            matches!(
                spec.name,
                "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
            )
        }),
        StatKey::Sub(_) => false,
    }
}

/// The prefix an error reply counts under: its first word if it ends within the first 31
/// bytes (Redis looks for the space in the first 32 bytes of `-WORD ...`), else `ERR`.
pub fn error_prefix(message: &str) -> &str {
    let window = &message.as_bytes()[..message.len().min(31)];
    match window.iter().position(|&b| b == b' ') {
        Some(end) if end > 0 => &message[..end],
        _ => "ERR",
    }
}

impl CommandStats {
    /// One call of the command of `key` ran.
    pub fn call(&self, key: &StatKey) {
        self.add(key, 1, Field::Calls);
    }

    /// The reply `reply` went to a client for a command of `key` (none: no command, as for a
    /// protocol error) with `outcome`: an error is counted, and fails or rejects the command.
    pub fn outcome(&self, key: Option<&StatKey>, outcome: Outcome, reply: &Reply) {
        if let Some(key) = key
            && is_script(key)
        {
            // A script's returned table: Redis counts each error in it as it writes the reply,
            // and any error makes the call a failed one.
            if !matches!(reply, Reply::Error(_)) {
                if self.nested_errors(reply) > 0 {
                    self.failed_or_rejected(key, outcome);
                }
                return;
            }
        }
        let Reply::Error(message) = reply else {
            return;
        };
        if !self.take_counted(message) {
            self.error(message);
        }
        if let Some(key) = key {
            self.failed_or_rejected(key, outcome);
        }
    }

    /// Counts the errors nested in a script's reply (those not counted already); returns how
    /// many there were.
    fn nested_errors(&self, reply: &Reply) -> usize {
        match reply {
            Reply::Error(message) => {
                if !self.take_counted(message) {
                    self.error(message);
                }
                1
            }
            Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
                items.iter().map(|r| self.nested_errors(r)).sum()
            }
            Reply::Map(pairs) | Reply::PairMap(pairs) | Reply::Pairs(pairs) => pairs
                .iter()
                .map(|(k, v)| self.nested_errors(k) + self.nested_errors(v))
                .sum(),
            _ => 0,
        }
    }

    /// The command of `key` failed or was rejected, its error counted elsewhere (a script's
    /// error raised by a `redis.call`, counted for that call).
    pub fn failed_or_rejected(&self, key: &StatKey, outcome: Outcome) {
        match outcome {
            Outcome::Ran => self.add(key, 1, Field::Failed),
            Outcome::Rejected => self.add(key, 1, Field::Rejected),
        }
    }

    /// One error reply with this message went to a client.
    pub fn error(&self, message: &str) {
        self.total_errors.fetch_add(1, Relaxed);
        let prefix = error_prefix(message);
        let mut prefixes = self.prefixes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = prefixes.get_mut(prefix) {
            *n += 1;
        } else if prefixes.len() < MAX_PREFIXES {
            prefixes.insert(prefix.to_string(), 1);
        }
    }

    fn add(&self, key: &StatKey, n: u64, field: Field) {
        if n == 0 {
            return;
        }
        let atomic = |r: &Row| match field {
            Field::Calls => r.calls.fetch_add(n, Relaxed),
            Field::Rejected => r.rejected.fetch_add(n, Relaxed),
            Field::Failed => r.failed.fetch_add(n, Relaxed),
        };
        match key {
            StatKey::Command(i) => {
                if let Some(r) = self.rows.get(*i) {
                    atomic(r);
                }
            }
            StatKey::Sub(name) => {
                let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
                if !subs.contains_key(name) && subs.len() >= MAX_SUBCOMMANDS {
                    drop(subs);
                    let parent = name.split('|').next();
                    if let Some(r) = TABLE
                        .iter()
                        .position(|s| Some(s.name) == parent)
                        .and_then(|i| self.rows.get(i))
                    {
                        atomic(r);
                    }
                    return;
                }
                let c = subs.entry(name.clone()).or_default();
                match field {
                    Field::Calls => c.calls += n,
                    Field::Rejected => c.rejected += n,
                    Field::Failed => c.failed += n,
                }
            }
        }
    }

    /// Adds what a script's commands did; `reply` is the script's: when it passes one of
    /// their errors on, it is not counted again as it goes out (the script still fails).
    pub fn merge(&self, log: CallLog, reply: &Reply) {
        for (key, c) in &log.rows {
            self.add(key, c.calls, Field::Calls);
            self.add(key, c.rejected, Field::Rejected);
            self.add(key, c.failed, Field::Failed);
        }
        for message in &log.errors {
            self.error(message);
        }
        if let Reply::Error(message) = reply
            && log.raised(message)
        {
            let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
            if counted.len() == MAX_COUNTED {
                counted.pop_front();
            }
            counted.push_back(message.to_string());
        }
    }

    /// Whether `message` is a script's reply whose error was counted already (forgetting it).
    fn take_counted(&self, message: &str) -> bool {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        match counted.iter().position(|m| m == message) {
            Some(i) => {
                counted.remove(i);
                true
            }
            None => false,
        }
    }

    /// `total_error_replies` of INFO stats.
    pub fn total_error_replies(&self) -> u64 {
        self.total_errors.load(Relaxed)
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for r in self.rows.iter() {
            r.calls.store(0, Relaxed);
            r.rejected.store(0, Relaxed);
            r.failed.store(0, Relaxed);
        }
        self.subs.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.total_errors.store(0, Relaxed);
        self.counted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.prefixes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The `cmdstat_` lines of INFO commandstats: every command with a call, a rejection or
    /// a failure, in name order (Redis walks its command table, a dict: any order will do).
    pub fn commandstats_lines(&self, out: &mut String) {
        let mut rows: BTreeMap<String, Counts> =
            self.subs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (spec, r) in TABLE.iter().zip(self.rows.iter()) {
            let c = Counts {
                calls: r.calls.load(Relaxed),
                rejected: r.rejected.load(Relaxed),
                failed: r.failed.load(Relaxed),
            };
            if c.calls + c.rejected + c.failed > 0 {
                rows.insert(spec.name.to_string(), c);
            }
        }
        for (name, c) in rows {
            let _ = write!(
                out,
                "cmdstat_{name}:calls={},usec=0,usec_per_call=0.00,rejected_calls={},failed_calls={}\r\n",
                c.calls, c.rejected, c.failed
            );
        }
    }

    /// The `errorstat_` lines of INFO errorstats, in prefix order (as Redis's radix tree).
    pub fn errorstats_lines(&self, out: &mut String) {
        let prefixes = self.prefixes.lock().unwrap_or_else(|e| e.into_inner());
        for (prefix, n) in prefixes.iter() {
            let _ = write!(out, "errorstat_{prefix}:count={n}\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn prefixes_are_the_first_word_as_redis_takes_it() {
        assert_eq!(error_prefix("ERR unknown command"), "ERR");
        assert_eq!(error_prefix("NOGROUP No such key"), "NOGROUP");
        assert_eq!(error_prefix("WRONGTYPE Operation"), "WRONGTYPE");
        assert_eq!(error_prefix("NOSPACEATALL"), "ERR");
        assert_eq!(error_prefix(&format!("{} x", "A".repeat(31))), "ERR");
        assert_eq!(
            error_prefix(&format!("{} x", "A".repeat(30))),
            "A".repeat(30)
        );
    }

    #[test]
    fn calls_rejections_and_failures_are_kept_per_command_and_subcommand() {
        let stats = CommandStats::default();
        let set = super::super::lookup(b"set").unwrap();
        let config = super::super::lookup(b"config").unwrap();
        let k = key_of(set, &argv(&["set", "a", "b"])).unwrap();
        stats.call(&k);
        stats.outcome(Some(&k), Outcome::Ran, &Reply::ok());
        stats.outcome(
            Some(&k),
            Outcome::Rejected,
            &Reply::error("ERR wrong number"),
        );
        let c = key_of(config, &argv(&["config", "SET", "x", "y"])).unwrap();
        assert_eq!(c, StatKey::Sub("config|set".into()));
        stats.call(&c);
        stats.outcome(
            Some(&c),
            Outcome::Ran,
            &Reply::error("ERR CONFIG SET failed"),
        );
        stats.outcome(None, Outcome::Ran, &Reply::error("NOSCRIPT none"));
        let mut out = String::new();
        stats.commandstats_lines(&mut out);
        assert!(out.contains(
            "cmdstat_set:calls=1,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0\r\n"
        ));
        assert!(out.contains("cmdstat_config|set:calls=1,usec=0,usec_per_call=0.00,rejected_calls=0,failed_calls=1\r\n"));
        let mut errors = String::new();
        stats.errorstats_lines(&mut errors);
        assert_eq!(
            errors,
            "errorstat_ERR:count=2\r\nerrorstat_NOSCRIPT:count=1\r\n"
        );
        assert_eq!(stats.total_error_replies(), 3);
        stats.reset();
        let (mut a, mut b) = (String::new(), String::new());
        stats.commandstats_lines(&mut a);
        stats.errorstats_lines(&mut b);
        assert_eq!(
            (a.as_str(), b.as_str(), stats.total_error_replies()),
            ("", "", 0)
        );
    }
}
