//! Blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP on lists; BZPOPMIN, BZPOPMAX,
//! BZMPOP on sorted sets): clients waiting on this node for a key to get elements.
//!
//! A client waits on the node it is connected to, leader or follower. If its keys have
//! elements on this node and nobody waits on them here, its command first runs once as an
//! ordinary write (its applied form, in `cmd::list`, pops if it can and otherwise answers the
//! null array). If nothing was popped, or the keys were empty, or others wait on them, the
//! client **blocks**: it joins this node's [`Blocking`] registry, in one queue per (database,
//! key) it waits on, in the order the commands **arrived** (the kernel's receive timestamp of
//! their bytes, `arrival`), which is the order redis-server's one event loop would have run
//! them in: two connections' tasks run on different threads, and the one whose command came
//! second may get here first. The registry is an
//! `events::Listener`: when an apply on this node changes one of those keys, the key is marked
//! and the registry's serving task ([`run`]) looks at it on the node's applied state. For a
//! list (or sorted set, for the waiters of sorted-set pops) of n elements it takes the first n
//! waiters of that key's queue that have no attempt in flight and proposes, in queue order, one pop per waiter through raft (an ordinary write of
//! the command with that one key, so it is ordered with every other write and applied once).
//! An attempt that pops answers its client. One that finds the list empty (another client, maybe
//! on another node, got there first) puts the waiter back, in its place. One that raft did not
//! apply (no leader, leadership changed) is retried: a leader change never wakes a client with
//! an error. A new client whose keys already have waiters on this node takes its place among
//! them instead of trying first, so on one node and one key the first to arrive is the first
//! served (unless it arrived so late that a later one's attempt is already in raft's hands);
//! a waiter with an attempt in flight (for this key or another) holds up the ones behind it
//! on every key it waits on until its outcome is known, so nobody overtakes it.
//!
//! Exactly once: each wake-up proposes one write, and `raft::pending` re-proposes a write only
//! when it is known not to be in the log. The timeout runs here, on the client's node (0 waits
//! forever); if it fires (or CLIENT UNBLOCK, CLIENT KILL, the client closing) while an attempt is
//! in flight, the client waits for that attempt's outcome, so an element popped for it is
//! answered rather than lost; only a closed connection loses it, as in Redis. An attempt whose
//! outcome raft cannot tell (`OutcomeUnknown`: not committed by its deadline, or a snapshot
//! covered it) ends the wait with the error any write gets then (`-TIMEOUT write outcome
//! unknown ...`): the client knows the element may have been taken for it, as after a plain
//! LPOP, rather than waiting on while it is silently gone (the nemesis list checker found it).
//!
//! While it waits, the client's socket is read (`Socket`): what it sends is kept for after the
//! command, and its closing withdraws the waiter at once. A write on this node to keys with
//! waiters here is answered only once the waiters it made ready (and the chain their BLMOVEs
//! start) are served or back to waiting (`Blocking::settled`, bounded), so the writer's next
//! read sees the pops, as in Redis. A change of a key while a waiter's attempt is in flight is
//! remembered (`missed`), so the waiter looks again when the attempt comes back.
//!
//! Inside MULTI a blocking command is queued like any write and its applied form is the
//! answer, as Redis's non-blocking behaviour there.
//!
//! Streams (XREAD / XREADGROUP with BLOCK) use the same registry: every change of a waited-on
//! stream tries each of its idle waiters (an entry may not be for a given reader). XREAD's `$`
//! is resolved to the last ID before blocking and its attempts are reads on this node;
//! XREADGROUP's are proposals, and their errors (a destroyed group) are answers. A waited-on
//! key that is deleted or changes type ends XREADGROUP waits with Redis's UNBLOCKED error,
//! and so does a first attempt that finds gone a stream this node saw before it (the command
//! came before the deletion: Redis would have blocked it first).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot, watch};

use crate::arrival::Arrival;
use crate::cmd::{self, Kind, Spec};
use crate::events::{Event, Listener};
use crate::kv::{KeyRead, KeyType, Reader};
use crate::raft::RaftError;
use crate::resp::Reply;
use crate::server::Shared;
use crate::session::Session;

/// How long a retry waits after raft could not take an attempt (no leader yet).
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// True for the commands that block.
pub fn is_blocking(spec: &Spec) -> bool {
    matches!(
        spec.name,
        "blpop" | "brpop" | "blmove" | "brpoplpush" | "blmpop" | "bzpopmin" | "bzpopmax" | "bzmpop"
    )
}

/// True for a command that blocks as called: the list pops, and XREAD/XREADGROUP with BLOCK.
pub fn blocks(spec: &Spec, argv: &[Bytes]) -> bool {
    is_blocking(spec) || (matches!(spec.name, "xread" | "xreadgroup") && cmd::stream_blocks(argv))
}

/// XREAD and XREADGROUP: a stream waiter is tried on every change of its keys (the key's
/// entries may not be for it), an attempt's error is its answer, and XREAD's attempts are
/// reads on this node, not proposals.
fn is_stream(argv: &[Bytes]) -> bool {
    argv.first()
        .is_some_and(|n| n.eq_ignore_ascii_case(b"xread") || n.eq_ignore_ascii_case(b"xreadgroup"))
}

fn nogroup(reply: &Reply) -> bool {
    matches!(reply, Reply::Error(e) if e.starts_with("NOGROUP"))
}

/// Runs a read-only attempt (XREAD) on this node's applied state.
fn read_attempt(shared: &Arc<Shared>, db: u8, argv: &[Bytes]) -> Reply {
    let Some(Kind::Read(f)) = cmd::lookup(&argv[0]).map(|s| s.kind) else {
        return Reply::error("ERR not a blocking command");
    };
    Reader::new(&shared.db, shared.raft.memtable())
        .run(db, |v| cmd::run_read(f, v, argv))
        .unwrap_or_else(cmd::storage_error)
}

/// The type of key a blocking command waits on.
fn waits_for(argv: &[Bytes]) -> KeyType {
    match argv.first() {
        Some(n) if n.len() > 1 && n[..2].eq_ignore_ascii_case(b"bz") => KeyType::ZSet,
        Some(n) if n.len() > 1 && n[..2].eq_ignore_ascii_case(b"xr") => KeyType::Stream,
        _ => KeyType::List,
    }
}

/// Why a waiter stops waiting before it is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leave {
    Timeout,
    /// CLIENT UNBLOCK ... ERROR.
    Error,
    /// The connection is going away.
    Gone,
}

struct Waiter {
    client: u64,
    db: u8,
    argv: Vec<Bytes>,
    keys: Vec<Bytes>,
    /// An attempt for it is in raft's hands.
    in_flight: bool,
    /// The key that attempt pops from (`None`: its first attempt, on all its keys).
    attempt_on: Option<Bytes>,
    /// Counted in `blocked` (its first attempt is over, or it made none).
    counted: bool,
    /// It stopped waiting while an attempt was in flight: the attempt's outcome still goes to
    /// `done`, then the waiter is dropped.
    leaving: bool,
    /// One of its keys changed while an attempt was in flight: the serving task may have
    /// passed it over (a deleted stream), so its keys are looked at again when the attempt
    /// comes back, whatever its outcome.
    missed: bool,
    done: Option<oneshot::Sender<Reply>>,
    unblock: Option<oneshot::Sender<Leave>>,
}

/// A waiter's place: when its command reached this node (the kernel's receive timestamp, see
/// `arrival`), then a number to tell apart two that arrived together. Ordering by arrival
/// rather than by registration is what serves blocked clients in the order their commands
/// came, as Redis's one event loop does: two connections' tasks run on different threads, and
/// the one whose command came second may get to the registry first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Id {
    arrived: Arrival,
    seq: u64,
}

#[derive(Default)]
struct Registry {
    next: u64,
    /// By arrival: a smaller id arrived earlier.
    waiters: BTreeMap<Id, Waiter>,
    by_key: HashMap<(u8, Bytes), BTreeSet<Id>>,
    /// Keys changed since the serving task last looked.
    dirty: Ready,
    /// Keys the serving task took from `dirty` and is looking at now.
    looking: HashSet<(u8, Bytes)>,
}

/// Keys to look at, in the order they became ready (as Redis serves them), each once.
#[derive(Default)]
struct Ready {
    order: Vec<(u8, Bytes)>,
    set: HashSet<(u8, Bytes)>,
}

impl Ready {
    fn insert(&mut self, slot: (u8, Bytes)) -> bool {
        let new = self.set.insert(slot.clone());
        if new {
            self.order.push(slot);
        }
        new
    }

    fn extend(&mut self, slots: impl IntoIterator<Item = (u8, Bytes)>) {
        for slot in slots {
            self.insert(slot);
        }
    }

    fn take(&mut self) -> Vec<(u8, Bytes)> {
        self.set.clear();
        std::mem::take(&mut self.order)
    }
}

impl Registry {
    fn remove(&mut self, id: Id) -> Option<Waiter> {
        let w = self.waiters.remove(&id)?;
        for k in &w.keys {
            let slot = (w.db, k.clone());
            if let Some(q) = self.by_key.get_mut(&slot) {
                q.remove(&id);
                if q.is_empty() {
                    self.by_key.remove(&slot);
                }
            }
        }
        Some(w)
    }

    fn mark(&mut self, db: u8, keys: &[Bytes]) {
        for k in keys {
            self.dirty.insert((db, k.clone()));
        }
    }

    /// Key `slot` changed: the waiters on it with an attempt in flight missed it.
    fn changed(&mut self, slot: &(u8, Bytes)) {
        let Registry {
            by_key, waiters, ..
        } = self;
        for id in by_key.get(slot).into_iter().flatten() {
            if let Some(w) = waiters.get_mut(id)
                && w.in_flight
            {
                w.missed = true;
            }
        }
    }
}

/// This node's blocked clients (see the module docs).
#[derive(Default)]
pub struct Blocking {
    registry: Mutex<Registry>,
    /// Waiters registered: events are wanted only while there are some.
    waiting: AtomicUsize,
    /// Waiters past their first attempt: INFO's `blocked_clients`.
    blocked: AtomicUsize,
    /// Wakes the serving task.
    work: Notify,
    /// Notified whenever a key may have become settled (see [`Blocking::settled`]).
    progress: Notify,
}

impl Blocking {
    pub fn new() -> Arc<Blocking> {
        Arc::new(Blocking::default())
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Clients blocked now (INFO's `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.blocked.load(Relaxed)
    }

    /// CLIENT UNBLOCK: ends client `client`'s wait (as a timeout, or with an error); false if
    /// it is not blocked here.
    pub fn unblock(&self, client: u64, error: bool) -> bool {
        let mut reg = self.lock();
        let found = reg
            .waiters
            .values_mut()
            .find(|w| w.client == client && !w.leaving);
        match found.and_then(|w| w.unblock.take()) {
            Some(tx) => tx
                .send(if error { Leave::Error } else { Leave::Timeout })
                .is_ok(),
            None => false,
        }
    }

    /// True if a client waits on one of `keys` here (cheap when nobody waits at all).
    pub fn waits_on<'a>(&self, db: u8, mut keys: impl Iterator<Item = &'a Bytes>) -> bool {
        if self.waiting.load(Relaxed) == 0 {
            return false;
        }
        let reg = self.lock();
        keys.any(|k| reg.by_key.contains_key(&(db, k.clone())))
    }

    /// Waits (at most `bound`) until the clients waiting on `keys` that a write just applied
    /// here made ready have been served or have gone back to waiting: no key marked, none
    /// being looked at, no attempt in flight for a waiter of them. The write's reply waits for
    /// this, so a client blocked on the list a push filled is served before the pusher hears
    /// back, as in Redis (which serves blocked clients before it replies to the push).
    pub async fn settled(&self, db: u8, keys: &[Bytes], bound: Duration) {
        let deadline = Instant::now() + bound;
        // A BLMOVE/BRPOPLPUSH served from these keys pushes onto its destination, which may
        // serve the clients waiting there in turn (Redis serves the whole chain before it
        // replies): their keys are waited for too.
        let mut keys = keys.to_vec();
        {
            let reg = self.lock();
            let mut i = 0;
            while i < keys.len() {
                for id in reg.by_key.get(&(db, keys[i].clone())).into_iter().flatten() {
                    let Some(w) = reg.waiters.get(id) else {
                        continue;
                    };
                    let moves = w.argv[0].eq_ignore_ascii_case(b"blmove")
                        || w.argv[0].eq_ignore_ascii_case(b"brpoplpush");
                    if let Some(dst) = w.argv.get(2).filter(|_| moves)
                        && !keys.contains(dst)
                    {
                        keys.push(dst.clone());
                    }
                }
                i += 1;
            }
        }
        loop {
            let progress = self.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            {
                let reg = self.lock();
                let busy = keys.iter().any(|k| {
                    let slot = (db, k.clone());
                    reg.dirty.set.contains(&slot)
                        || reg.looking.contains(&slot)
                        || reg.by_key.get(&slot).is_some_and(|q| {
                            q.iter()
                                .any(|id| reg.waiters.get(id).is_some_and(|w| w.in_flight))
                        })
                });
                if !busy {
                    return;
                }
            }
            if tokio::time::timeout_at(deadline.into(), progress)
                .await
                .is_err()
            {
                return;
            }
        }
    }

    fn has_waiters(&self, db: u8, keys: &[Bytes]) -> bool {
        let reg = self.lock();
        keys.iter()
            .any(|k| reg.by_key.contains_key(&(db, k.clone())))
    }

    /// Queues a client among those waiting on its keys, in its place by arrival. `trying`:
    /// its first attempt is being made (it counts as in flight, so nobody behind it is served
    /// first).
    fn register(
        &self,
        client: u64,
        db: u8,
        (argv, keys): (Vec<Bytes>, Vec<Bytes>),
        arrived: Arrival,
        trying: bool,
    ) -> (Id, oneshot::Receiver<Reply>, oneshot::Receiver<Leave>) {
        let (done, done_rx) = oneshot::channel();
        let (unblock, unblock_rx) = oneshot::channel();
        let mut reg = self.lock();
        let id = Id {
            arrived,
            seq: reg.next,
        };
        reg.next += 1;
        for k in &keys {
            reg.by_key.entry((db, k.clone())).or_default().insert(id);
        }
        if !trying {
            reg.mark(db, &keys);
        }
        reg.waiters.insert(
            id,
            Waiter {
                client,
                db,
                argv,
                keys,
                in_flight: trying,
                attempt_on: None,
                counted: !trying,
                leaving: false,
                missed: false,
                done: Some(done),
                unblock: Some(unblock),
            },
        );
        self.waiting.fetch_add(1, Relaxed);
        if !trying {
            self.blocked.fetch_add(1, Relaxed);
        }
        drop(reg);
        if !trying {
            // It may be ready already (a push applied before it joined).
            self.work.notify_one();
        }
        (id, done_rx, unblock_rx)
    }

    /// True unless the waiter waits with no attempt in flight: what an attempt's apply raises
    /// for its client (an invalidation of the key it pops) must follow its reply, so pushes
    /// are held meanwhile (and once it is gone: its reply is on the way).
    fn attempting(&self, id: Id) -> bool {
        self.lock().waiters.get(&id).is_none_or(|w| w.in_flight)
    }

    /// The waiter stops waiting; true if an attempt for it is in flight (its outcome will
    /// still come through `done`).
    fn leave(&self, id: Id) -> bool {
        let mut reg = self.lock();
        let in_flight = match reg.waiters.get_mut(&id) {
            Some(w) if w.in_flight => {
                w.leaving = true;
                true
            }
            Some(_) => false,
            None => return false,
        };
        if !in_flight && let Some(w) = reg.remove(id) {
            self.dropped(&w);
        }
        self.progress.notify_waiters();
        in_flight
    }

    /// An attempt served the waiter: it leaves with `reply`. Its other keys are looked at
    /// again (the clients behind it there counted on it taking an element).
    fn served(&self, id: Id, reply: Reply) {
        let mut reg = self.lock();
        let Some(mut w) = reg.remove(id) else {
            return;
        };
        reg.mark(w.db, &w.keys);
        drop(reg);
        self.dropped(&w);
        self.work.notify_one();
        self.progress.notify_waiters();
        if let Some(done) = w.done.take() {
            let _ = done.send(reply);
        }
    }

    /// Counts a waiter out.
    fn dropped(&self, w: &Waiter) {
        self.waiting.fetch_sub(1, Relaxed);
        if w.counted {
            self.blocked.fetch_sub(1, Relaxed);
        }
    }

    /// The waiter's first attempt answered it: it leaves without a word through `done`.
    fn finish(&self, id: Id) {
        let mut reg = self.lock();
        if let Some(w) = reg.remove(id) {
            reg.mark(w.db, &w.keys);
            drop(reg);
            self.dropped(&w);
            self.work.notify_one();
        }
    }

    /// An attempt did not serve the waiter: it waits on in its place (or leaves, if it asked
    /// to meanwhile); `recheck` marks its keys to be looked at again.
    fn back(&self, id: Id, recheck: bool) {
        let mut reg = self.lock();
        self.progress.notify_waiters();
        let Some(w) = reg.waiters.get_mut(&id) else {
            return;
        };
        w.in_flight = false;
        let recheck = recheck || std::mem::take(&mut w.missed);
        if !w.counted {
            w.counted = true;
            self.blocked.fetch_add(1, Relaxed);
        }
        if w.leaving {
            if let Some(w) = reg.remove(id) {
                self.dropped(&w);
            }
            return;
        }
        if recheck {
            let (db, keys) = (w.db, w.keys.clone());
            reg.mark(db, &keys);
            drop(reg);
            self.work.notify_one();
        }
    }
}

impl Blocking {
    /// Marks `key` to be looked at again.
    fn recheck(&self, db: u8, key: &Bytes) {
        self.lock().dirty.insert((db, key.clone()));
        self.work.notify_one();
    }
}

impl Listener for Blocking {
    fn wants_events(&self) -> bool {
        self.waiting.load(Relaxed) > 0
    }

    fn applied(&self, events: &[Event], _index: u64) {
        let mut reg = self.lock();
        let mut any = false;
        for e in events {
            match e {
                Event::Changed { db, key } | Event::Notify { db, key, .. } => {
                    let slot = (*db, key.clone());
                    if reg.by_key.contains_key(&slot) {
                        reg.changed(&slot);
                        any |= reg.dirty.insert(slot);
                    }
                }
                Event::Flushed { db } => {
                    let keys: Vec<_> = reg.by_key.keys().filter(|k| k.0 == *db).cloned().collect();
                    any |= !keys.is_empty();
                    for k in &keys {
                        reg.changed(k);
                    }
                    reg.dirty.extend(keys);
                }
                Event::Swapped { a, b } => {
                    let keys: Vec<_> = (reg.by_key.keys())
                        .filter(|k| k.0 == *a || k.0 == *b)
                        .cloned()
                        .collect();
                    any |= !keys.is_empty();
                    reg.dirty.extend(keys);
                }
                Event::Reset => {
                    let keys: Vec<_> = reg.by_key.keys().cloned().collect();
                    any |= !keys.is_empty();
                    for k in &keys {
                        reg.changed(k);
                    }
                    reg.dirty.extend(keys);
                }
                Event::Writer { .. } => {}
            }
        }
        drop(reg);
        if any {
            self.work.notify_one();
        }
    }
}

/// What a client gets when its wait ends unserved: Redis's reply to a timed-out list block.
fn timed_out() -> Reply {
    Reply::NilArray
}

pub(crate) fn unblocked_error() -> Reply {
    Reply::error("UNBLOCKED client unblocked via CLIENT UNBLOCK")
}

/// Did an applied attempt pop something? (The applied forms answer nil when they did not.)
fn popped(reply: &Reply) -> bool {
    !matches!(reply, Reply::Nil | Reply::NilArray)
}

/// Raft did not apply the attempt: it may be made again.
fn not_applied(e: &RaftError) -> bool {
    matches!(
        e,
        RaftError::NoLeader
            | RaftError::FencedOut
            | RaftError::NotJoined
            | RaftError::JoiningOtherCluster
    )
}

/// Most a blocked client's further input is buffered: past it the socket is no longer read
/// (nor its end noticed) until the wait ends, so a client cannot grow the buffer without bound.
const MAX_BLOCKED_INPUT: usize = 64 * 1024 * 1024;

/// A blocked client's socket. It is read while the client waits: what arrives is kept in
/// `input` for after this command (Redis keeps it in the query buffer and runs it once the
/// client is unblocked), and the client's end of the connection (EOF, a reset) is noticed at
/// once, so its waiter is withdrawn before a push could be popped for nobody; `closed` then
/// tells the connection to close without running the buffered input.
pub struct Socket<'a> {
    pub stream: &'a TcpStream,
    pub input: &'a mut BytesMut,
    pub closed: bool,
    /// When the last of `input` reached this node.
    pub arrived: Arrival,
}

impl Socket<'_> {
    /// Waits for the client to send more or go away: `false` when it is gone. Returns only
    /// after something was read (or the client left), so it can be polled in a loop.
    async fn watch(&mut self) -> bool {
        loop {
            self.input.reserve(4096);
            match crate::arrival::read(self.stream, self.input).await {
                Ok((0, _)) => return false,
                Ok((_, at)) => {
                    self.arrived = at;
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }
}

impl Socket<'_> {
    /// Writes `buf` whole, within `stall` (a client that reads nothing is left behind).
    async fn write_all(&self, mut buf: &[u8], stall: Duration) -> bool {
        let write = async {
            while !buf.is_empty() {
                if self.stream.writable().await.is_err() {
                    return false;
                }
                match self.stream.try_write(buf) {
                    Ok(0) => return false,
                    Ok(n) => buf = &buf[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
            }
            true
        };
        tokio::time::timeout(stall, write).await.unwrap_or(false)
    }
}

/// Sends the pushes queued for the blocked client of `session` (Pub/Sub messages, tracking
/// invalidations) at once, as Redis writes them to a blocked client; false if the client is
/// gone or over its output limit.
async fn send_pushes(shared: &Shared, session: &Session, socket: &Socket<'_>) -> bool {
    let mut out = BytesMut::new();
    if !session
        .pubsub
        .mailbox
        .drain_into(&mut out, session.protocol)
    {
        return false;
    }
    out.is_empty()
        || socket
            .write_all(&out, shared.config.client_stall_timeout)
            .await
}

/// Runs a blocking command for the connection of `session`: the first attempt, then the wait.
/// `socket` is the connection's, watched while it waits (see [`Socket`]).
pub async fn execute(
    shared: &Arc<Shared>,
    session: &Session,
    spec: &'static Spec,
    argv: Vec<Bytes>,
    arrived: Arrival,
    socket: &mut Socket<'_>,
) -> Reply {
    let db = session.db;
    let argv = match spec.kind {
        Kind::Write { prepare, .. } => match prepare(argv) {
            Ok(a) => a,
            Err(reply) => return reply,
        },
        Kind::Read(_) => {
            let resolved = Reader::new(&shared.db, shared.raft.memtable())
                .run(db, |v| Ok(cmd::resolve_last_ids(v, &argv)));
            match resolved {
                Ok(Ok(a)) => a,
                Ok(Err(cmd::CmdError::Reply(reply))) => return reply,
                Ok(Err(cmd::CmdError::Store(e))) | Err(e) => return cmd::storage_error(e),
            }
        }
        Kind::Local(_) => return Reply::error("ERR not a blocking command"),
    };
    let blocking = &shared.blocking;
    let keys = cmd::blocking_keys(&argv);
    let timeout_ms = cmd::blocking_timeout(&argv).unwrap_or(0);
    let started = Instant::now();
    let read = matches!(spec.kind, Kind::Read(_));
    if read {
        let reply = read_attempt(shared, db, &argv);
        if popped(&reply) {
            return reply;
        }
    }
    let stream = is_stream(&argv);
    // Lists and sorted sets look at their keys on this node first. When they are empty, or
    // others wait on them here, the client joins the queue, in its place by arrival, without an
    // attempt of its own: the serving task proposes the pops in queue order once the keys
    // have elements. An attempt of its own could overtake a client that arrived before it (two
    // connections' threads reach raft in either order). Only a client alone on keys with
    // elements here makes its first attempt at once, an ordinary write whose apply pops (or
    // answers nil or WRONGTYPE: a follower's view may be behind).
    let mut queue_only = false;
    if !read && !stream {
        let waited = blocking.has_waiters(db, &keys);
        match Reader::new(&shared.db, shared.raft.memtable())
            .run(db, |v| look(v, &keys, waits_for(&argv)))
        {
            // Redis's check before it blocks, on this node's view.
            Ok(Look::WrongType) if waited => return cmd::wrong_type(),
            Ok(Look::Empty) => queue_only = true,
            Ok(_) => queue_only = waited,
            Err(e) => return cmd::storage_error(e),
        }
    }
    // XREADGROUP: were its keys streams here before its first attempt? Its command arrived
    // before that look, so if the attempt then finds one gone, the key went after the client
    // was (as Redis sees it) blocked: the answer is Redis's error for a deleted stream.
    let saw_streams = stream && !read && keys.iter().all(|k| is_stream_key(shared, db, k));
    // And did their group exist? If the attempt then finds it gone, the group was destroyed
    // after the client blocked: Redis's error for that, not the one for a group never made.
    let group = if saw_streams { group_of(&argv) } else { None };
    let saw_groups = group.as_ref().is_some_and(|g| {
        keys.iter()
            .all(|k| has_group(shared, db, k, g) == Some(true))
    });
    // Queued before the first attempt, so a client arriving meanwhile queues behind this one.
    // XREAD's attempts are reads, made above and on each change of its keys.
    let trying = !queue_only && !read;
    let watched = keys.clone();
    let (id, mut done, mut unblock) =
        blocking.register(session.id, db, (argv.clone(), keys), arrived, trying);
    if trying {
        let timeout = shared.config.write_timeout;
        match shared.raft.propose(db, argv, timeout).await {
            Ok(reply)
                if saw_streams
                    && reply.is_error()
                    && watched.iter().any(|k| !is_stream_key(shared, db, k)) =>
            {
                blocking.finish(id);
                return Reply::error(STREAM_GONE);
            }
            Ok(reply)
                if saw_groups
                    && nogroup(&reply)
                    && watched.iter().any(|k| {
                        group
                            .as_ref()
                            .is_some_and(|g| has_group(shared, db, k, g) == Some(false))
                    }) =>
            {
                blocking.finish(id);
                return Reply::error(GROUP_GONE);
            }
            Ok(reply) if popped(&reply) => {
                blocking.finish(id);
                return reply;
            }
            Ok(_) => blocking.back(id, true),
            Err(e) if not_applied(&e) => blocking.back(id, true),
            Err(e) => {
                blocking.finish(id);
                return crate::connection::raft_error_reply(e);
            }
        }
    }
    let deadline = (timeout_ms > 0).then(|| started + Duration::from_millis(timeout_ms));
    let mut unblock_closed = false;
    // Pushes that arrived while an attempt was in flight: sent once it is settled.
    let mut held = false;
    let why = loop {
        tokio::select! {
            biased;
            served = &mut done => return served.unwrap_or_else(|_| timed_out()),
            how = &mut unblock, if !unblock_closed => match how {
                Ok(how) => break how,
                // Dropped with the waiter's entry: it was served, `done` has the reply.
                Err(_) => unblock_closed = true,
            },
            _ = sleep_until(deadline) => break Leave::Timeout,
            _ = session.info.kill.notified() => {
                // Leave the kill for the connection's loop to see.
                session.info.kill.notify_one();
                break Leave::Gone;
            }
            open = socket.watch(), if socket.input.len() < MAX_BLOCKED_INPUT => {
                if !open {
                    socket.closed = true;
                    break Leave::Gone;
                }
            }
            _ = session.pubsub.mailbox.wake.notified(), if !held => held = true,
            _ = tokio::time::sleep(PUSH_RECHECK), if held => {}
        }
        if held && !blocking.attempting(id) {
            held = false;
            if !send_pushes(shared, session, socket).await {
                socket.closed = true;
                break Leave::Gone;
            }
        }
    };
    if blocking.leave(id) {
        // An attempt is in flight: its outcome is this client's (bounded by its deadline).
        let bound = shared.config.write_timeout + Duration::from_secs(1);
        if let Ok(Ok(reply)) = tokio::time::timeout(bound, done).await {
            return reply;
        }
    }
    match why {
        Leave::Error => unblocked_error(),
        Leave::Timeout | Leave::Gone => timed_out(),
    }
}

/// How soon pushes held behind an attempt in flight are looked at again.
const PUSH_RECHECK: Duration = Duration::from_millis(5);

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// What a list or sorted-set pop finds on this node's view of its keys, as Redis looks before
/// it blocks: the first key that exists decides.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    /// None of them exists: the client blocks.
    Empty,
    /// The first that exists is of the kind it pops: it has elements.
    Ready,
    /// The first that exists is of another kind: WRONGTYPE.
    WrongType,
}

fn look(r: &dyn KeyRead, keys: &[Bytes], kind: KeyType) -> Result<Look, crate::store::StoreError> {
    for k in keys {
        match r.meta(k)? {
            None => continue,
            Some(m) if m.kind == kind => return Ok(Look::Ready),
            Some(_) => return Ok(Look::WrongType),
        }
    }
    Ok(Look::Empty)
}

/// The attempt for one waiter on one ready key: its command narrowed to that key (so another
/// key's type or emptiness does not get in the way), as Redis serves the key that became ready.
fn attempt_argv(argv: &[Bytes], key: &Bytes) -> Vec<Bytes> {
    let name = argv[0].to_ascii_lowercase();
    match &name[..] {
        b"blpop" | b"brpop" | b"bzpopmin" | b"bzpopmax" => {
            vec![argv[0].clone(), key.clone(), argv[argv.len() - 1].clone()]
        }
        b"blmpop" | b"bzmpop" => {
            let n = cmd::blocking_keys(argv).len();
            let mut out = vec![
                argv[0].clone(),
                argv[1].clone(),
                Bytes::from_static(b"1"),
                key.clone(),
            ];
            out.extend(argv.iter().skip(3 + n).cloned());
            out
        }
        _ => argv.to_vec(),
    }
}

/// The serving task: looks at the keys marked ready and proposes the waiters' attempts, until
/// `stop` turns true.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let blocking = shared.blocking.clone();
    loop {
        tokio::select! {
            _ = blocking.work.notified() => {}
            _ = stop.changed() => return,
        }
        let dirty = {
            let mut reg = blocking.lock();
            let dirty = reg.dirty.take();
            reg.looking.extend(dirty.iter().cloned());
            dirty
        };
        let mut reader = Reader::new(&shared.db, shared.raft.memtable());
        for (db, key) in dirty {
            let ready = reader.run(db, |v| {
                Ok(match v.meta(&key)? {
                    Some(m) if m.kind == KeyType::List => (
                        KeyType::List,
                        crate::kv::list::List::from_meta(&key, m)?.len(),
                    ),
                    Some(m) if m.kind == KeyType::ZSet => (
                        KeyType::ZSet,
                        crate::kv::zset::ZSet::from_meta(&key, m)?.len(),
                    ),
                    // Every stream waiter may have something now (or an error: a deleted
                    // group); each attempt tells.
                    Some(m) if m.kind == KeyType::Stream => (KeyType::Stream, u64::MAX),
                    _ => {
                        // Not a stream (any more): its XREADGROUP waiters end, as in Redis.
                        stream_key_gone(&blocking, db, &key);
                        (KeyType::List, 0)
                    }
                })
            });
            let (kind, len) = match ready {
                Ok(r) => r,
                Err(e) => {
                    slog::warn!(shared.logger, "blocked clients cannot read a key"; "error" => %e);
                    continue;
                }
            };
            if len == 0 {
                continue;
            }
            serve_key(&shared, db, &key, kind, len);
        }
        blocking.lock().looking.clear();
        blocking.progress.notify_waiters();
    }
}

/// Redis's error for an XREADGROUP wait whose stream was deleted or replaced.
const STREAM_GONE: &str = "UNBLOCKED the stream key no longer exists";

/// Redis's error for an XREADGROUP wait whose consumer group was destroyed.
const GROUP_GONE: &str = "NOGROUP the consumer group this client was blocked on no longer exists";

/// The group an `XREADGROUP GROUP <group> <consumer> ...` reads as.
fn group_of(argv: &[Bytes]) -> Option<Bytes> {
    match argv {
        [_, kw, group, ..] if kw.eq_ignore_ascii_case(b"group") => Some(group.clone()),
        _ => None,
    }
}

/// Whether the stream at `key` has consumer group `group` on this node's applied state
/// (`None`: not a stream, or the read failed).
fn has_group(shared: &Shared, db: u8, key: &Bytes, group: &[u8]) -> Option<bool> {
    Reader::new(&shared.db, shared.raft.memtable())
        .run(db, |v| match v.meta(key)? {
            Some(m) if m.kind == KeyType::Stream => {
                let s = crate::kv::stream::Stream::from_meta(key, m)?;
                Ok(Some(s.group(v, group)?.is_some()))
            }
            _ => Ok(None),
        })
        .ok()
        .flatten()
}

/// Whether `key` holds a stream on this node's applied state (a failed read counts as yes:
/// the attempt's own error is then the answer).
fn is_stream_key(shared: &Shared, db: u8, key: &Bytes) -> bool {
    Reader::new(&shared.db, shared.raft.memtable())
        .run(db, |v| Ok(v.meta(key)?.map(|m| m.kind)))
        .map_or(true, |kind| kind == Some(KeyType::Stream))
}

/// Ends the XREADGROUP waits on `key` (deleted, or now of another type) with Redis's error.
fn stream_key_gone(blocking: &Blocking, db: u8, key: &Bytes) {
    let ids: Vec<Id> = {
        let reg = blocking.lock();
        let Some(queue) = reg.by_key.get(&(db, key.clone())) else {
            return;
        };
        queue
            .iter()
            .copied()
            .filter(|id| {
                reg.waiters.get(id).is_some_and(|w| {
                    !w.in_flight && !w.leaving && w.argv[0].eq_ignore_ascii_case(b"xreadgroup")
                })
            })
            .collect()
    };
    for id in ids {
        blocking.served(id, Reply::error(STREAM_GONE));
    }
}

/// Proposes one attempt for each of the first `len` idle waiters of `key` that wait on a
/// `kind` (a list, a sorted set or a stream), in arrival order.
fn serve_key(shared: &Arc<Shared>, db: u8, key: &Bytes, kind: KeyType, len: u64) {
    let blocking = &shared.blocking;
    let mut reads: Vec<(Id, Vec<Bytes>)> = Vec::new();
    let attempts: Vec<(Id, Vec<Bytes>, bool)> = {
        let mut reg = blocking.lock();
        let Some(queue) = reg.by_key.get(&(db, key.clone())) else {
            return;
        };
        let queue: Vec<Id> = queue.iter().copied().collect();
        let mut out = Vec::new();
        // Elements spoken for by the waiters met so far (in flight or proposed now).
        let mut budget = 0u64;
        for id in queue {
            if budget >= len {
                break;
            }
            let Some(w) = reg.waiters.get_mut(&id) else {
                continue;
            };
            if w.in_flight {
                if w.attempt_on.as_ref() != Some(key) {
                    // Its attempt is elsewhere and may come back wanting this key: the clients
                    // behind it here wait until it is settled.
                    break;
                }
                // Its attempt may take an element of this key: the clients behind it get the
                // others.
                budget += 1;
                continue;
            }
            if w.leaving || waits_for(&w.argv) != kind {
                continue;
            }
            if is_stream(&w.argv) && w.argv[0].eq_ignore_ascii_case(b"xread") {
                reads.push((id, w.argv.clone()));
                continue;
            }
            w.in_flight = true;
            w.attempt_on = Some(key.clone());
            budget += 1;
            let moves = matches!(
                &w.argv[0].to_ascii_lowercase()[..],
                b"blmove" | b"brpoplpush" | b"xreadgroup"
            );
            out.push((id, attempt_argv(&w.argv, key), moves));
        }
        out
    };
    for (id, argv) in reads {
        // A key of another type does not wake an XREAD (it waits on, as in Redis).
        let reply = read_attempt(shared, db, &argv);
        if popped(&reply) && !reply.is_error() {
            blocking.served(id, reply);
        }
    }
    let timeout = shared.config.write_timeout;
    for (id, argv, moves) in attempts {
        let stream = is_stream(&argv);
        // Proposed one after the other from this task: raft keeps their order.
        let rx = shared.raft.propose_later(db, argv, timeout);
        let blocking = blocking.clone();
        let key = key.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            // An attempt that pops nothing leaves the list as it was: the key is looked at
            // again, so the next waiter gets its turn (the list may still hold elements).
            match rx.await.unwrap_or(Err(RaftError::Stopped)) {
                // The key went (or changed type) or the group did, before this attempt: the
                // wait ends with Redis's error for what happened.
                Ok(reply) if stream && reply.is_error() && !is_stream_key(&shared, db, &key) => {
                    blocking.served(id, Reply::error(STREAM_GONE));
                }
                Ok(reply) if stream && nogroup(&reply) => {
                    blocking.served(id, Reply::error(GROUP_GONE))
                }
                Ok(reply) if reply.is_error() && !moves => blocking.back(id, true),
                Ok(reply) if reply.is_error() => {
                    blocking.recheck(db, &key);
                    blocking.served(id, reply);
                }
                Ok(reply) if popped(&reply) => blocking.served(id, reply),
                // A stream waiter with nothing for it waits for the next change (a stream
                // always looks ready: looking again at once would loop).
                Ok(_) => blocking.back(id, !stream),
                Err(e) if not_applied(&e) => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    blocking.back(id, true);
                }
                // It may have popped: the client is told so, as for any write whose outcome
                // is unknown (waiting on could lose the element it took without a word).
                Err(e) => blocking.served(id, crate::connection::raft_error_reply(e)),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| b(w)).collect()
    }

    #[test]
    fn attempts_name_only_the_ready_key() {
        assert_eq!(
            attempt_argv(&args(&["BLPOP", "a", "b", "0"]), &b("b")),
            args(&["BLPOP", "b", "0"])
        );
        assert_eq!(
            attempt_argv(
                &args(&["blmpop", "1.5", "2", "a", "b", "LEFT", "COUNT", "3"]),
                &b("b")
            ),
            args(&["blmpop", "1.5", "1", "b", "LEFT", "COUNT", "3"])
        );
        assert_eq!(
            attempt_argv(&args(&["BZPOPMIN", "a", "b", "0"]), &b("b")),
            args(&["BZPOPMIN", "b", "0"])
        );
        assert_eq!(
            attempt_argv(&args(&["bzmpop", "0", "2", "a", "b", "MAX"]), &b("a")),
            args(&["bzmpop", "0", "1", "a", "MAX"])
        );
        assert_eq!(waits_for(&args(&["bzmpop"])), KeyType::ZSet);
        assert_eq!(waits_for(&args(&["brpop"])), KeyType::List);
        let mv = args(&["BLMOVE", "s", "d", "LEFT", "RIGHT", "0"]);
        assert_eq!(attempt_argv(&mv, &b("s")), mv);
    }

    #[test]
    fn waiters_queue_by_arrival_and_changed_keys_are_marked() {
        let reg = Blocking::new();
        assert!(!reg.wants_events());
        let (b_, _db, _ub) = reg.register(
            2,
            0,
            (args(&["blpop", "k", "j", "0"]), args(&["k", "j"])),
            Arrival(20),
            false,
        );
        // Registered second, arrived first: it is first in the queue.
        let blpop = (args(&["blpop", "k", "0"]), args(&["k"]));
        let (a, _da, _ua) = reg.register(1, 0, blpop, Arrival(10), false);
        assert!(reg.wants_events() && a < b_);
        assert_eq!(reg.lock().by_key[&(0, b("k"))].first(), Some(&a));
        assert!(reg.has_waiters(0, &args(&["j"])) && !reg.has_waiters(1, &args(&["j"])));
        reg.lock().dirty.take();
        reg.applied(
            &[
                Event::Changed {
                    db: 0,
                    key: b("other"),
                },
                Event::Changed { db: 0, key: b("j") },
            ],
            1,
        );
        assert_eq!(reg.lock().dirty.take(), vec![(0, b("j"))]);
        reg.applied(
            &[
                Event::Changed { db: 0, key: b("k") },
                Event::Changed { db: 0, key: b("j") },
                Event::Changed { db: 0, key: b("k") },
            ],
            2,
        );
        assert_eq!(
            reg.lock().dirty.take(),
            vec![(0, b("k")), (0, b("j"))],
            "in the order they became ready, once"
        );
        reg.applied(&[Event::Reset], 3);
        assert_eq!(reg.lock().dirty.take().len(), 2);
        // CLIENT UNBLOCK finds the client; leaving without an attempt in flight removes it.
        assert!(reg.unblock(2, true));
        assert!(!reg.unblock(2, true), "already told");
        assert!(!reg.unblock(9, false));
        assert!(!reg.leave(b_));
        assert_eq!(reg.blocked_clients(), 1);
        assert!(!reg.has_waiters(0, &args(&["j"])));
        // With an attempt in flight, leaving waits for its outcome.
        reg.lock().waiters.get_mut(&a).unwrap().in_flight = true;
        assert!(reg.leave(a));
        assert_eq!(reg.blocked_clients(), 1);
        reg.back(a, false);
        assert_eq!(reg.blocked_clients(), 0);
        assert!(!reg.wants_events());
    }

    #[test]
    fn a_served_waiter_gets_its_reply_once() {
        let reg = Blocking::new();
        let blpop = (args(&["blpop", "k", "0"]), args(&["k"]));
        let (a, mut done, _u) = reg.register(1, 0, blpop, Arrival(1), false);
        reg.served(a, Reply::Integer(7));
        reg.served(a, Reply::Integer(8));
        assert_eq!(done.try_recv().ok(), Some(Reply::Integer(7)));
        assert_eq!(reg.blocked_clients(), 0);
    }
}
