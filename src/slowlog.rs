//! SLOWLOG: this node's commands that took longer than `slowlog-log-slower-than`
//! microseconds, the newest first, at most `slowlog-max-len` of them.
//!
//! As in Redis, a command's time is what this node spent running it: a read's run over the
//! state, a local command's work, a write's checks and its proposal. The write's wait for the
//! cluster to commit it and its apply on the raft thread are not counted: they are the same
//! for every node's clients and do not stop this node from serving others. A blocked command
//! is timed from when it was woken; a command queued in MULTI is not logged, nor EXEC itself
//! (Redis's `skip_slowlog`). The log is the node's own, like Redis's: not replicated, and
//! emptied by a restart.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::resp::Reply;

/// Most arguments an entry keeps; the last one kept then says how many were left out.
const MAX_ARGS: usize = 32;
/// Longest argument an entry keeps, in bytes; a longer one says how many were left out.
const MAX_ARG_BYTES: usize = 128;

struct Entry {
    id: u64,
    /// Unix time, seconds.
    at: i64,
    micros: u64,
    argv: Vec<Bytes>,
    addr: String,
    name: Bytes,
}

#[derive(Default)]
struct Log {
    entries: VecDeque<Entry>,
    next_id: u64,
}

pub struct SlowLog {
    log: Mutex<Log>,
    /// `slowlog-log-slower-than`, in microseconds; negative: nothing is logged.
    slower_than: AtomicI64,
    /// `slowlog-max-len`.
    max_len: AtomicUsize,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog {
            log: Mutex::new(Log::default()),
            slower_than: AtomicI64::new(10_000),
            max_len: AtomicUsize::new(128),
        }
    }
}

impl SlowLog {
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_slower_than(&self, micros: i64) {
        self.slower_than.store(micros, Relaxed);
    }

    /// Sets the most entries kept. As in Redis, those beyond it go when the next entry is
    /// logged.
    pub fn set_max_len(&self, len: usize) {
        self.max_len.store(len, Relaxed);
    }

    /// True if commands may be logged at all (so their arguments are worth keeping while
    /// they run).
    pub fn enabled(&self) -> bool {
        self.slower_than.load(Relaxed) >= 0 && self.max_len.load(Relaxed) > 0
    }

    /// True if a command that took `took` is to be logged.
    pub fn wants(&self, took: Duration) -> bool {
        let threshold = self.slower_than.load(Relaxed);
        threshold >= 0
            && self.max_len.load(Relaxed) > 0
            && took.as_micros() >= u128::from(threshold.unsigned_abs())
    }

    /// Logs a command that took `took`, if that is over the threshold. `argv` is as the
    /// client sent it; secrets are redacted here.
    pub fn offer(&self, name: &str, argv: &[Bytes], took: Duration, addr: &str, client: &Bytes) {
        if !self.wants(took) {
            return;
        }
        let max_len = self.max_len.load(Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let argv = trimmed(&crate::monitor::redacted(name, argv));
        let mut log = self.log();
        let id = log.next_id;
        log.next_id += 1;
        log.entries.push_front(Entry {
            id,
            at,
            micros,
            argv,
            addr: addr.to_string(),
            name: client.clone(),
        });
        log.entries.truncate(max_len);
    }

    pub fn len(&self) -> usize {
        self.log().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.log().entries.clear();
    }

    /// SLOWLOG GET: the newest `count` entries (all if None).
    pub fn get(&self, count: Option<usize>) -> Reply {
        let log = self.log();
        let n = count.unwrap_or(usize::MAX);
        Reply::Array(
            log.entries
                .iter()
                .take(n)
                .map(|e| {
                    Reply::Array(vec![
                        Reply::Integer(i64::try_from(e.id).unwrap_or(i64::MAX)),
                        Reply::Integer(e.at),
                        Reply::Integer(i64::try_from(e.micros).unwrap_or(i64::MAX)),
                        Reply::Array(e.argv.iter().cloned().map(Reply::Bulk).collect()),
                        Reply::bulk(e.addr.clone()),
                        Reply::Bulk(e.name.clone()),
                    ])
                })
                .collect(),
        )
    }
}

/// The arguments an entry keeps: at most `MAX_ARGS` (the last saying how many more there
/// were), each at most `MAX_ARG_BYTES` (saying how many bytes more it had), as Redis keeps them.
fn trimmed(argv: &[Bytes]) -> Vec<Bytes> {
    let kept = argv.len().min(MAX_ARGS);
    let mut out = Vec::with_capacity(kept);
    for (i, a) in argv.iter().take(kept).enumerate() {
        if kept < argv.len() && i == kept - 1 {
            let more = argv.len() - kept + 1;
            out.push(Bytes::from(format!("... ({more} more arguments)")));
        } else if a.len() > MAX_ARG_BYTES {
            let mut s = a[..MAX_ARG_BYTES].to_vec();
            s.extend_from_slice(format!("... ({} more bytes)", a.len() - MAX_ARG_BYTES).as_bytes());
            out.push(Bytes::from(s));
        } else {
            out.push(a.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(items: &[&str]) -> Vec<Bytes> {
        items
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn long_commands_and_arguments_are_trimmed_as_redis_trims_them() {
        let many: Vec<String> = (0..33).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let t = trimmed(&args(&many));
        assert_eq!(t.len(), 32);
        assert_eq!(t[30], "30");
        assert_eq!(t[31], "... (2 more arguments)");
        assert_eq!(trimmed(&args(&many[..32])).len(), 32);
        assert_eq!(trimmed(&args(&many[..32]))[31], "31");
        let long = "A".repeat(129);
        let t = trimmed(&args(&["sadd", "set", &long]));
        assert_eq!(t[2], format!("{}... (1 more bytes)", "A".repeat(128)));
        assert_eq!(trimmed(&args(&["x", &"A".repeat(128)]))[1].len(), 128);
    }

    #[test]
    fn the_threshold_and_the_length_bound_what_is_kept() {
        let log = SlowLog::default();
        let name = Bytes::new();
        log.offer(
            "get",
            &args(&["get", "k"]),
            Duration::from_millis(5),
            "a",
            &name,
        );
        assert_eq!(log.len(), 0, "under the 10 ms default");
        log.set_slower_than(0);
        for i in 0..5 {
            log.offer(
                "get",
                &args(&["get", &i.to_string()]),
                Duration::ZERO,
                "a",
                &name,
            );
        }
        log.set_max_len(3);
        assert_eq!(log.len(), 5, "trimmed at the next entry");
        log.offer("auth", &args(&["auth", "pw"]), Duration::ZERO, "a", &name);
        assert_eq!(log.len(), 3);
        let Reply::Array(entries) = log.get(Some(2)) else {
            panic!("not an array")
        };
        assert_eq!(entries.len(), 2);
        let Reply::Array(newest) = &entries[0] else {
            panic!("not an entry")
        };
        assert_eq!(
            newest[0],
            Reply::Integer(5),
            "ids count every entry ever logged"
        );
        assert_eq!(
            newest[3],
            Reply::Array(vec![Reply::bulk("auth"), Reply::bulk("(redacted)")])
        );
        log.set_slower_than(-1);
        log.offer(
            "get",
            &args(&["get", "k"]),
            Duration::from_secs(1),
            "a",
            &name,
        );
        assert_eq!(log.len(), 3, "disabled");
        log.reset();
        assert!(log.is_empty());
    }
}
