//! MONITOR: connections that asked to see every command this node's clients run.
//!
//! As redis-server 7.0: one status line per command, `+<unix secs>.<micros> [<db> <client
//! addr>] "arg" ...`, arguments escaped as `sdscatrepr` does; admin commands are not shown, and
//! the secrets of AUTH and HELLO ... AUTH are shown as `(redacted)`. A transaction's commands are
//! shown when EXEC runs them, before `exec`. A monitor sees the commands of this node's own
//! clients (a write proposed through another node shows on that node's monitors). The
//! commands a script runs follow its EVAL / FCALL line as `[<db> lua] ...`: those of a script
//! served by this node once it completes, those of a script that writes when it is applied,
//! which is on every node, so every node's monitors show them.
//!
//! Lines go into each monitor's Pub/Sub mailbox (`pubsub::Mailbox`), so they are written out as
//! pushes are and a monitor that does not read is disconnected at its output limit instead of
//! growing memory.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::cmd::Spec;
use crate::pubsub::{Limits, Mailbox};
use crate::resp::Reply;

/// The monitoring connections of this node.
pub struct Monitors {
    /// How many there are, read on every command without the lock.
    count: AtomicUsize,
    list: Mutex<Vec<Arc<Mailbox>>>,
    limits: Limits,
}

impl Monitors {
    /// Bounded as Redis bounds replicas' output (256 MB, or 64 MB for a minute).
    pub fn new() -> Monitors {
        let limits = Limits::default();
        limits.set_from_config("pubsub 268435456 67108864 60");
        Monitors {
            count: AtomicUsize::new(0),
            list: Mutex::new(Vec::new()),
            limits,
        }
    }

    /// Starts sending lines to `mailbox` (again: no change).
    pub fn add(&self, mailbox: &Arc<Mailbox>) {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if !list.iter().any(|m| m.id == mailbox.id) {
            list.push(mailbox.clone());
            self.count.store(list.len(), Relaxed);
        }
    }

    /// Stops sending lines to connection `id` (it closed, or RESET).
    pub fn remove(&self, id: u64) {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|m| m.id != id);
        self.count.store(list.len(), Relaxed);
    }

    pub fn active(&self) -> bool {
        self.count.load(Relaxed) > 0
    }

    /// Whether connection `id` is a monitor.
    pub fn contains(&self, id: u64) -> bool {
        self.active()
            && self
                .list
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|m| m.id == id)
    }

    /// Shows one command, run by the client at `addr` in database `db`, to every monitor.
    pub fn feed(&self, spec: &Spec, db: u8, addr: &SocketAddr, argv: &[Bytes]) {
        if self.active() {
            self.feed_as(spec, db, &addr.to_string(), argv);
        }
    }

    /// Shows one command a script ran in database `db` (`[<db> lua]`, as Redis shows them).
    pub fn feed_script(&self, spec: &Spec, db: u8, argv: &[Bytes]) {
        if self.active() {
            self.feed_as(spec, db, "lua", argv);
        }
    }

    fn feed_as(&self, spec: &Spec, db: u8, client: &str, argv: &[Bytes]) {
        if !shown(spec) {
            return;
        }
        let line = line(db, client, &redacted(spec.name, argv), now_micros());
        let size = line.len();
        let list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        for m in list.iter() {
            m.offer(Reply::status(line.clone()), size, &self.limits);
        }
    }
}

impl Default for Monitors {
    fn default() -> Self {
        Monitors::new()
    }
}

/// Redis does not show admin commands (CONFIG, DEBUG, MONITOR itself...).
fn shown(spec: &Spec) -> bool {
    !spec.flags.contains(&"admin") && spec.name != "monitor"
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// The arguments as a monitor or the slow log shows them, with Redis's secrets replaced:
/// AUTH's, HELLO ... AUTH's, ACL SETUSER's rules, CONFIG SET's values of `requirepass` and
/// `masterauth`, and MIGRATE ... AUTH / AUTH2's.
pub(crate) fn redacted(name: &str, argv: &[Bytes]) -> Vec<Bytes> {
    let hidden = Bytes::from_static(b"(redacted)");
    let mut out = argv.to_vec();
    let sub = |word: &str| {
        out.get(1)
            .is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
    };
    match name {
        "auth" => out.iter_mut().skip(1).for_each(|a| *a = hidden.clone()),
        "acl" if sub("setuser") => out.iter_mut().skip(2).for_each(|a| *a = hidden.clone()),
        "config" if sub("set") => {
            for pair in out[2..].chunks_mut(2) {
                let secret = ["requirepass", "masterauth"]
                    .iter()
                    .any(|n| pair[0].eq_ignore_ascii_case(n.as_bytes()));
                if let (true, Some(value)) = (secret, pair.get_mut(1)) {
                    *value = hidden.clone();
                }
            }
        }
        "migrate" => {
            let mut i = 6;
            // The options, up to KEYS (what follows it are keys).
            while i < out.len() && !out[i].eq_ignore_ascii_case(b"keys") {
                let secrets = if out[i].eq_ignore_ascii_case(b"auth") {
                    1
                } else if out[i].eq_ignore_ascii_case(b"auth2") {
                    2
                } else {
                    0
                };
                out.iter_mut()
                    .skip(i + 1)
                    .take(secrets)
                    .for_each(|a| *a = hidden.clone());
                i += 1 + secrets;
            }
        }
        "hello" => {
            if let Some(at) = out
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"auth"))
                .filter(|&i| i >= 2)
            {
                out.iter_mut()
                    .skip(at + 1)
                    .take(2)
                    .for_each(|a| *a = hidden.clone());
            }
        }
        _ => {}
    }
    out
}

/// `<secs>.<micros> [<db> <client>] "arg" ...`, the status line without its `+`.
fn line(db: u8, client: &str, argv: &[Bytes], micros: u128) -> String {
    let mut s = format!(
        "{}.{:06} [{db} {client}]",
        micros / 1_000_000,
        micros % 1_000_000
    );
    for a in argv {
        s.push(' ');
        repr(&mut s, a);
    }
    s
}

/// A quoted, escaped argument, as Redis's `sdscatrepr`.
fn repr(out: &mut String, arg: &[u8]) {
    out.push('"');
    for &b in arg {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&[u8]]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w)).collect()
    }

    #[test]
    fn lines_are_formatted_and_escaped_as_redis_does() {
        let a = argv(&[b"set", b"k\"\\", b"a\r\n\t\x07\x08\x01\xff b"]);
        assert_eq!(
            line(3, "127.0.0.1:5000", &a, 1_700_000_000_000_042),
            r#"1700000000.000042 [3 127.0.0.1:5000] "set" "k\"\\" "a\r\n\t\a\b\x01\xff b""#
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let auth = redacted("auth", &argv(&[b"AUTH", b"user", b"pass"]));
        assert_eq!(auth, argv(&[b"AUTH", b"(redacted)", b"(redacted)"]));
        let hello = redacted(
            "hello",
            &argv(&[b"HELLO", b"3", b"AUTH", b"u", b"p", b"SETNAME", b"n"]),
        );
        assert_eq!(
            hello,
            argv(&[
                b"HELLO",
                b"3",
                b"AUTH",
                b"(redacted)",
                b"(redacted)",
                b"SETNAME",
                b"n"
            ])
        );
        let plain = argv(&[b"GET", b"auth"]);
        assert_eq!(redacted("get", &plain), plain);
        let acl = redacted("acl", &argv(&[b"ACL", b"SETUSER", b"u", b">pw"]));
        assert_eq!(
            acl,
            argv(&[b"ACL", b"SETUSER", b"(redacted)", b"(redacted)"])
        );
        let config = redacted(
            "config",
            &argv(&[b"CONFIG", b"SET", b"maxmemory", b"1", b"requirepass", b"pw"]),
        );
        assert_eq!(
            config,
            argv(&[
                b"CONFIG",
                b"SET",
                b"maxmemory",
                b"1",
                b"requirepass",
                b"(redacted)"
            ])
        );
        let migrate = redacted(
            "migrate",
            &argv(&[
                b"MIGRATE", b"h", b"1", b"", b"0", b"5", b"AUTH2", b"u", b"p", b"KEYS", b"auth",
                b"k",
            ]),
        );
        assert_eq!(
            migrate,
            argv(&[
                b"MIGRATE",
                b"h",
                b"1",
                b"",
                b"0",
                b"5",
                b"AUTH2",
                b"(redacted)",
                b"(redacted)",
                b"KEYS",
                b"auth",
                b"k"
            ])
        );
    }
}
