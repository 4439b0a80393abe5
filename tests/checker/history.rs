//! The history a test records: which client asked what of which key, when, and what it saw.
//!
//! Times are nanoseconds on one monotonic clock. The invoke time must be taken before the request
//! is written and the completion time after the whole reply is read: the real interval has to
//! contain the moment the server applied the op, or a correct server looks broken.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// What an operation asks of its key, with the semantics of the Redis command of the same name on
/// a string key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `SET key value`.
    Set(Vec<u8>),
    /// `GET key`.
    Get,
    /// `APPEND key value`: the value grows by this suffix.
    Append(Vec<u8>),
    /// `DEL key` with one key.
    Del,
    /// `INCR key`: an absent key counts as 0.
    Incr,
}

/// What the client saw come back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No reply (timeout, connection error, an "unknown" error): the op may have taken effect at
    /// any moment after its invoke, or never.
    Unknown,
    /// `+OK`, the reply of SET.
    Ok,
    /// The reply of GET: the value, or `None` for nil.
    Value(Option<Vec<u8>>),
    /// An integer reply: APPEND's new length, DEL's count of removed keys (0 or 1), INCR's new value.
    Int(i64),
}

/// One operation of one client.
///
/// An op the server definitely did not apply (an error reply such as `-CLUSTERDOWN`, `-TRYAGAIN`
/// or `-ERR value is not an integer`) is not part of the history at all: the caller simply does
/// not record it. `complete` is `None` exactly when `outcome` is [`Outcome::Unknown`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    pub key: Vec<u8>,
    pub kind: Kind,
    /// When the request was about to be sent.
    pub invoke: u64,
    /// When the reply was read, or `None` if there was none.
    pub complete: Option<u64>,
    pub outcome: Outcome,
}

impl Op {
    pub fn new(
        client: usize,
        key: impl Into<Vec<u8>>,
        kind: Kind,
        invoke: u64,
        complete: Option<u64>,
        outcome: Outcome,
    ) -> Op {
        Op {
            client,
            key: key.into(),
            kind,
            invoke,
            complete,
            outcome,
        }
    }

    /// True if the client never learnt whether the op took effect.
    pub fn is_unknown(&self) -> bool {
        self.complete.is_none()
    }

    /// Why the op cannot have been observed like this, if it cannot: a harness bug, not a server one.
    pub fn malformation(&self) -> Option<String> {
        let fits = match (&self.kind, &self.outcome) {
            (_, Outcome::Unknown) => true,
            (Kind::Set(_), Outcome::Ok) => true,
            (Kind::Get, Outcome::Value(_)) => true,
            (Kind::Del, Outcome::Int(n)) => *n == 0 || *n == 1,
            (Kind::Append(_) | Kind::Incr, Outcome::Int(_)) => true,
            _ => false,
        };
        if !fits {
            return Some(format!(
                "outcome {} cannot answer {}",
                fmt_outcome(&self.outcome),
                fmt_kind(&self.kind)
            ));
        }
        match (self.complete, &self.outcome) {
            (None, Outcome::Unknown) => None,
            (None, _) => Some("a known outcome needs a completion time".into()),
            (Some(_), Outcome::Unknown) => {
                Some("an unknown outcome has no completion time (use complete: None)".into())
            }
            (Some(c), _) if c < self.invoke => Some("completes before it is invoked".into()),
            (Some(_), _) => None,
        }
    }
}

/// A whole recorded history, ops numbered by invoke time (the `#n` in every message).
#[derive(Clone, Debug, Default)]
pub struct History {
    ops: Vec<Op>,
}

impl History {
    /// Takes the ops in any order. Panics on a malformed op, since no verdict about the server
    /// could be trusted after it.
    pub fn new(mut ops: Vec<Op>) -> History {
        for op in &ops {
            if let Some(why) = op.malformation() {
                panic!("malformed op in history ({why}): {op:?}");
            }
        }
        ops.sort_by_key(|op| (op.invoke, op.complete.unwrap_or(u64::MAX), op.client));
        History { ops }
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The distinct keys, sorted.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self.ops.iter().map(|op| op.key.clone()).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The ops of one key, printed one per line.
    pub fn format_key(&self, key: &[u8]) -> String {
        let t0 = self.ops.first().map_or(0, |op| op.invoke);
        let mut out = String::new();
        for (i, op) in self.ops.iter().enumerate().filter(|(_, op)| op.key == key) {
            let _ = writeln!(out, "{}", fmt_op(i, op, t0));
        }
        out
    }
}

/// Every op of `ops` on one line each, numbered by position, times relative to the first invoke.
pub fn format_history(ops: &[Op]) -> String {
    let t0 = ops.iter().map(|op| op.invoke).min().unwrap_or(0);
    let mut out = String::new();
    for (i, op) in ops.iter().enumerate() {
        let _ = writeln!(out, "{}", fmt_op(i, op, t0));
    }
    out
}

/// `#12 c3 [0.001200 .. 0.002500 ms] "k" set "v" -> OK`.
pub fn fmt_op(index: usize, op: &Op, t0: u64) -> String {
    let end = match op.complete {
        Some(c) => fmt_time(c.saturating_sub(t0)),
        None => "?".into(),
    };
    format!(
        "#{index:<5} c{:<3} [{:>14} .. {:>14} ms] {} {} -> {}",
        op.client,
        fmt_time(op.invoke.saturating_sub(t0)),
        end,
        fmt_bytes(&op.key),
        fmt_kind(&op.kind),
        fmt_outcome(&op.outcome)
    )
}

/// Nanoseconds as milliseconds with nanosecond precision.
fn fmt_time(ns: u64) -> String {
    format!("{}.{:06}", ns / 1_000_000, ns % 1_000_000)
}

pub fn fmt_kind(kind: &Kind) -> String {
    match kind {
        Kind::Set(v) => format!("set {}", fmt_bytes(v)),
        Kind::Get => "get".into(),
        Kind::Append(v) => format!("append {}", fmt_bytes(v)),
        Kind::Del => "del".into(),
        Kind::Incr => "incr".into(),
    }
}

pub fn fmt_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Unknown => "?".into(),
        Outcome::Ok => "OK".into(),
        Outcome::Value(v) => fmt_value(v.as_deref()),
        Outcome::Int(n) => n.to_string(),
    }
}

/// A register value: quoted bytes, or `nil` for absent.
pub fn fmt_value(value: Option<&[u8]>) -> String {
    value.map_or_else(|| "nil".into(), fmt_bytes)
}

/// Quoted, escaped bytes; long values show their ends and length.
pub fn fmt_bytes(b: &[u8]) -> String {
    const SHOWN: usize = 24;
    if b.len() <= 2 * SHOWN + 8 {
        format!("\"{}\"", b.escape_ascii())
    } else {
        format!(
            "\"{}…{}\" ({} bytes)",
            b[..SHOWN].escape_ascii(),
            b[b.len() - SHOWN..].escape_ascii(),
            b.len()
        )
    }
}

/// Collects the history of concurrent client threads: clone it into each thread, call
/// [`Recorder::invoke`] right before sending a request and resolve the returned [`Pending`] right
/// after the reply is read.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

struct Shared {
    epoch: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            shared: Arc::new(Shared {
                epoch: Instant::now(),
                ops: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Nanoseconds since the recorder was made: the clock of every op it records.
    pub fn now(&self) -> u64 {
        self.shared.epoch.elapsed().as_nanos() as u64
    }

    /// Starts an op; call it before the request leaves the client.
    pub fn invoke(&self, client: usize, key: impl Into<Vec<u8>>, kind: Kind) -> Pending {
        let invoke = self.now();
        Pending {
            recorder: self.clone(),
            op: Some(Op::new(client, key, kind, invoke, None, Outcome::Unknown)),
        }
    }

    /// The ops recorded so far (resolved ones only).
    pub fn history(&self) -> History {
        History::new(self.lock().clone())
    }

    fn record(&self, op: Op) {
        self.lock().push(op);
    }

    /// A client thread that panicked holding the lock has still pushed whole ops only.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Op>> {
        self.shared
            .ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// An op that was sent and not yet resolved. Dropping it unresolved records it as unknown: a
/// client that gave up (or panicked) mid-request may still have had its write applied.
#[must_use = "resolve the op with complete/unknown/failed"]
pub struct Pending {
    recorder: Recorder,
    op: Option<Op>,
}

impl Pending {
    /// The reply arrived with this outcome. Panics if it does not fit the op's kind.
    pub fn complete(mut self, outcome: Outcome) {
        let now = self.recorder.now();
        let mut op = self.op.take().expect("pending op resolved once");
        assert!(
            outcome != Outcome::Unknown,
            "use Pending::unknown for an op without a reply"
        );
        op.complete = Some(now);
        op.outcome = outcome;
        if let Some(why) = op.malformation() {
            panic!("malformed op ({why}): {op:?}");
        }
        self.recorder.record(op);
    }

    /// SET replied `+OK`.
    pub fn ok(self) {
        self.complete(Outcome::Ok)
    }

    /// GET replied with this value (`None` for nil).
    pub fn value(self, value: Option<Vec<u8>>) {
        self.complete(Outcome::Value(value))
    }

    /// APPEND, DEL or INCR replied with this integer.
    pub fn int(self, n: i64) {
        self.complete(Outcome::Int(n))
    }

    /// No reply, or a reply that does not say whether the op was applied.
    pub fn unknown(mut self) {
        if let Some(op) = self.op.take() {
            self.recorder.record(op);
        }
    }

    /// The server said the op was not applied: it is left out of the history.
    pub fn failed(mut self) {
        self.op = None;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(op) = self.op.take() {
            self.recorder.record(op);
        }
    }
}
