//! One client connection: read bytes, decode every complete command, execute them in order,
//! write all their replies with one write.
//!
//! Writes in a pipeline are proposed together (so they can share one raft Ready and one fsync)
//! and their replies are awaited in order. A read runs after the writes before it on the same
//! connection have been applied, so a client always reads its own writes. A read behind
//! writes in flight waits in the reply queue rather than stopping the pipeline: the writes
//! after it are proposed at once unless one may touch a key it reads (`cmd::footprint`),
//! and it runs when its turn in the queue comes, on a state that has the writes before it and
//! nothing after it that it could see.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use slog::debug;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{oneshot, watch};

use crate::arrival::{Arrival, Pending};
use crate::cmd::command_stats::{Outcome, StatKey};
use crate::cmd::footprint::{Deferred, Footprint};
use crate::cmd::transactions::{self, Multi, Plan};
use crate::cmd::{self, Kind, Spec};
use crate::config::ReadConsistency;
use crate::kv::Reader;
use crate::pubsub::links::Receivers;
use crate::raft::RaftError;
use crate::resp::{Decoded, Decoder, Limits, Reply};
use crate::server::Shared;
use crate::session::{ClientInfo, Clients, Session};

/// Commands taken from the input buffer before replies are written: bounds the work (and the
/// reply memory) of one round while keeping pipelines batched.
const MAX_BATCH: usize = 1024;
/// Replies are written out once this much is buffered, even mid-batch.
const FLUSH_AT: usize = 256 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// Longest a write to keys with blocked clients waits for them to be served before replying.
const SETTLE_BOUND: Duration = Duration::from_secs(1);
/// Longest a command waits for other connections to run input sent before it
/// (`after_earlier_input`).
const EARLIER_INPUT_WAIT: Duration = Duration::from_millis(100);
/// As `EARLIER_INPUT_WAIT`, when what has not run is a close: such a connection has nothing
/// left to do but end, so only a loaded machine keeps it, and it is waited for longer.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A reply in its place in the pipeline.
enum Slot {
    Ready(Reply),
    Waiting(oneshot::Receiver<Result<Reply, RaftError>>),
    /// A write whose reply CLIENT REPLY OFF/SKIP suppresses: awaited in order, not sent.
    Silent(oneshot::Receiver<Result<Reply, RaftError>>),
    /// A write to keys clients are blocked on here (database, keys): answered once the clients
    /// it made ready are served (`Blocking::settled`), as Redis serves them before replying.
    Serves(oneshot::Receiver<Result<Reply, RaftError>>, u8, Vec<Bytes>),
    /// A read behind writes in flight (database, command): run when every slot before it has
    /// resolved. No write proposed after it touches its keys (`Conn::deferred`).
    Read(u8, ReadFn, Vec<Bytes>),
}

type ReadFn = fn(&dyn crate::kv::KeyRead, &[Bytes]) -> cmd::CmdResult;

/// The one place where the raft layer's failures become RESP errors. The first word tells a
/// client what is known: `CLUSTERDOWN`/`TRYAGAIN` (and the `ERR`s) mean not applied, `TIMEOUT`
/// means the outcome is unknown.
pub fn raft_error_reply(e: RaftError) -> Reply {
    Reply::error(match e {
        RaftError::NoLeader => "CLUSTERDOWN no raft leader: write not applied",
        RaftError::FencedOut => {
            "TRYAGAIN write not applied: raft leadership changed and no new leader took it in time"
        }
        RaftError::OutcomeUnknown => {
            "TIMEOUT write outcome unknown: proposed but not committed in time; it may still be applied"
        }
        RaftError::SnapshotOutcomeUnknown => {
            "TIMEOUT write outcome unknown: this node caught up from a snapshot that may include it"
        }
        RaftError::Removed => "ERR this node was removed from the cluster",
        RaftError::NotJoined => "CLUSTERDOWN this node has not joined a cluster yet",
        RaftError::JoiningOtherCluster => "TRYAGAIN this node is joining another cluster",
        RaftError::ShuttingDown => "ERR server is shutting down",
        RaftError::Stopped => "ERR raft loop stopped",
        RaftError::ReadNoLeader => "CLUSTERDOWN no raft leader confirmed this read in time",
        RaftError::NotCaughtUp => "TRYAGAIN read not served: this node did not catch up in time",
    })
}

/// A read refused because this node is still catching up after a restart (the client did not
/// ask for linearizability): as Redis answers while it loads its data.
const LOADING: &str = "LOADING kvd is catching up with its cluster after a restart";

/// Counts a connection against `maxclients` from its accept for as long as it lives, however
/// it ends: closed, dropped unfinished at shutdown, or unwinding. (INFO's connected_clients
/// counts the registry: `Clients::connected`.)
pub struct ClientSlot {
    shared: Arc<Shared>,
}

impl ClientSlot {
    pub fn take(shared: &Arc<Shared>) -> ClientSlot {
        shared.stats.connected_clients.fetch_add(1, Relaxed);
        ClientSlot {
            shared: shared.clone(),
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.shared.stats.connected_clients.fetch_sub(1, Relaxed);
    }
}

/// Why the connection ends.
enum Close {
    Quit,
    Peer,
    Protocol,
    Shutdown,
    OutputLimit,
    /// CLIENT KILL, or idle past CONFIG SET timeout.
    Killed,
}

pub async fn serve(
    slot: ClientSlot,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    crate::fatal::debug_panic_point("client");
    let shared = slot.shared.clone();
    let _ = stream.set_nodelay(true);
    crate::arrival::enable(&stream);
    let id = shared.next_client_id.fetch_add(1, Relaxed);
    let laddr = stream.local_addr().unwrap_or(shared.config.addr);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let registered = Clients::register(&shared, ClientInfo::new(id, peer, laddr, fd));
    let (rd, mut wr) = stream.into_split();
    let cfg = &shared.config;
    let mut decoder = Decoder::new(Limits {
        max_bulk_len: shared.settings.proto_max_bulk_len.load(Relaxed),
        max_arg_len: cfg.max_value_size.max(cfg.max_key_size),
        ..Limits::default()
    });
    let mut conn = Conn {
        session: Session::new(shared.clone(), registered.info.clone()),
        out: BytesMut::new(),
        queue: VecDeque::new(),
        silent: false,
        input: BytesMut::new(),
        deferred: Deferred::default(),
        stat: None,
        outcome: Outcome::Ran,
        arrived: Arrival::default(),
        settled: None,
        slow: SlowCall {
            name: None,
            argv: Vec::new(),
            started: Instant::now(),
        },
    };
    let mut inbuf = BytesMut::new();
    let stall = cfg.client_stall_timeout;
    let mailbox = conn.session.pubsub.mailbox.clone();
    registered.info.unrun.open(fd);
    let reason = loop {
        let mut batch = Vec::new();
        let mut protocol_error = None;
        let mut more_buffered = false;
        while batch.len() < MAX_BATCH {
            // Until the connection authenticates, one request per round, read under Redis's
            // unauthenticated limits: the next one is read in the state this one (an AUTH)
            // leaves.
            let unauthenticated = conn.session.needs_auth();
            if unauthenticated && !batch.is_empty() {
                more_buffered = !inbuf.is_empty();
                break;
            }
            decoder.set_unauthenticated(unauthenticated);
            match decoder.decode(&mut inbuf) {
                Ok(Some(d)) => batch.push(d),
                Ok(None) => break,
                Err(e) => {
                    protocol_error = Some(e);
                    break;
                }
            }
        }
        more_buffered |= batch.len() == MAX_BATCH;
        if !batch.is_empty() {
            shared
                .stats
                .commands_processed
                .fetch_add(batch.len() as u64, Relaxed);
            if let Err(reason) = conn.execute(batch, &mut wr).await {
                break reason;
            }
            if !conn.input.is_empty() {
                inbuf.extend_from_slice(&conn.input);
                conn.input = BytesMut::new();
                more_buffered = true;
            }
        }
        if let Some(e) = protocol_error {
            let reply = Reply::error(format!("ERR {e}"));
            // Counted as Redis counts it (no command ran).
            conn.session
                .shared
                .stats
                .commands
                .outcome(None, Outcome::Ran, &reply);
            reply.encode(conn.session.protocol, &mut conn.out);
            let _ = write_out(&mut wr, &mut conn.out, stall).await;
            break Close::Protocol;
        }
        if write_out(&mut wr, &mut conn.out, stall).await.is_err() {
            break Close::Peer;
        }
        if conn.session.quit {
            break Close::Quit;
        }
        // Killed (by CLIENT KILL, its own included): closed once its replies are out, before
        // any more input is read, as Redis closes such a client after the reply.
        if registered.info.killed.load(Relaxed) {
            break Close::Killed;
        }
        if more_buffered {
            continue;
        }
        // All that was read has run.
        registered.info.unrun.ran();
        let want = decoder
            .bytes_needed()
            .unwrap_or(0)
            .clamp(READ_CHUNK, 64 * 1024 * 1024);
        if inbuf.capacity() - inbuf.len() < READ_CHUNK {
            inbuf.reserve(want);
        }
        let idle = shared.settings.timeout_secs.load(Relaxed);
        tokio::select! {
            r = crate::arrival::read_marked(rd.as_ref(), &mut inbuf, &registered.info.unrun) => match r {
                Ok((0, _)) | Err(_) => break Close::Peer,
                Ok((_, at)) => conn.arrived = at,
            },
            _ = shutdown.changed() => break Close::Shutdown,
            _ = registered.info.kill.notified() => break Close::Killed,
            _ = conn.session.acl_epoch.changed() => {
                if !conn.session.reload_user() {
                    break Close::Killed;
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(idle)), if idle > 0 => break Close::Killed,
            _ = mailbox.wake.notified() => {
                if conn.take_pushes().is_err() {
                    break Close::OutputLimit;
                }
                if let Err(reason) = write_pushes(&mut wr, &mut conn.out, &mailbox, stall).await {
                    break reason;
                }
            }
        }
    };
    // Before the socket closes (its fd may then be reused).
    registered.info.unrun.close();
    if let Close::Shutdown = reason {
        let _ = wr.shutdown().await;
    }
    if let Close::OutputLimit = reason {
        debug!(shared.logger, "client disconnected: output buffer limit"; "client" => %peer);
    }
    drop(registered);
    drop(slot);
}

/// INFO (connected_clients) and CLIENT LIST / KILL: what they show or do depends on which
/// other connections are still open.
fn looks_at_clients(spec: &Spec, argv: &[Bytes]) -> bool {
    match spec.name {
        "info" => true,
        "client" => argv.get(1).is_some_and(|sub| {
            sub.eq_ignore_ascii_case(b"list") || sub.eq_ignore_ascii_case(b"kill")
        }),
        _ => false,
    }
}

/// Before a command that looks at other connections (PUBLISH counting its receivers, INFO
/// counting clients, CLIENT LIST / KILL): while `waiting()` says that one it looks at has
/// input that arrived before this command's and has not run (an UNSUBSCRIBE or a close sent
/// just before it), lets that run first, as Redis's one event loop runs it first; kvd's
/// threads may come to this connection first. Waits at most `EARLIER_INPUT_WAIT` (that
/// connection may be busy with a write), or `CLOSE_WAIT` while one left to run is a close.
async fn after_earlier_input(mut waiting: impl FnMut() -> Pending) {
    let start = Instant::now();
    loop {
        let bound = match waiting() {
            Pending::Nothing => break,
            Pending::Input => EARLIER_INPUT_WAIT,
            Pending::Close => CLOSE_WAIT,
        };
        let waited = start.elapsed();
        if waited >= bound {
            break;
        }
        // Yield at first (the other task is usually just behind); then, if its thread is not
        // running (a loaded machine), sleep rather than spin.
        if waited < Duration::from_millis(1) {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Writes and clears the buffered replies; a client that stalls too long is dropped.
async fn write_out(wr: &mut OwnedWriteHalf, out: &mut BytesMut, stall: Duration) -> Result<(), ()> {
    if out.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(stall, wr.write_all(out)).await {
        Ok(Ok(())) => {
            out.clear();
            if out.capacity() > 4 * FLUSH_AT {
                *out = BytesMut::new();
            }
            Ok(())
        }
        _ => Err(()),
    }
}

/// Writes pushes (Pub/Sub messages) out; a subscriber that goes over its output limit while
/// this write waits on it is closed at once (`write` is cancel-safe, `write_all` is not).
async fn write_pushes(
    wr: &mut OwnedWriteHalf,
    out: &mut BytesMut,
    mailbox: &crate::pubsub::Mailbox,
    stall: Duration,
) -> Result<(), Close> {
    let deadline = tokio::time::Instant::now() + stall;
    let mut done = 0;
    while done < out.len() {
        tokio::select! {
            r = wr.write(&out[done..]) => match r {
                Ok(0) | Err(_) => return Err(Close::Peer),
                Ok(n) => done += n,
            },
            _ = mailbox.overflow.notified() => return Err(Close::OutputLimit),
            _ = tokio::time::sleep_until(deadline) => return Err(Close::Peer),
        }
    }
    out.clear();
    if out.capacity() > 4 * FLUSH_AT {
        *out = BytesMut::new();
    }
    Ok(())
}

struct Conn {
    session: Session,
    out: BytesMut,
    /// Replies waiting behind a write, each with the protocol in force when its command ran (a
    /// later HELLO in the same pipeline must not change how it is written).
    /// Each with the row of INFO commandstats its reply counts in when it comes (a reply
    /// known at once is counted when it is taken, and has none here).
    queue: VecDeque<(Slot, crate::resp::Protocol, Option<StatKey>)>,
    /// The reply of the command running is not sent (CLIENT REPLY OFF or SKIP).
    silent: bool,
    /// Bytes the client sent while blocked (read to notice it closing): they follow what the
    /// input buffer held, and are decoded next.
    input: BytesMut,
    /// What the `Slot::Read`s in `queue` read: a write that may touch it waits for them.
    deferred: Deferred,
    /// The commandstats row of the command running (none: no command, as for a protocol
    /// error) and whether it ran or was refused: what an error reply to it counts as.
    stat: Option<StatKey>,
    outcome: Outcome,
    /// When the last bytes read from the client reached this node (the commands decoded from
    /// them arrived then): blocked clients are queued in this order.
    arrived: Arrival,
    /// The last PUBLISH's channel (sharded or not) for which other connections' input that
    /// arrived by `arrived` had all run: a pipeline of PUBLISHes to one channel (which share
    /// the stamp) looks once.
    settled: Option<(Arrival, bool, Bytes)>,
    /// The command running, for the slow log (`crate::slowlog`): logged once it is done.
    slow: SlowCall,
}

/// A command being timed for the slow log. Kept across commands, so its argument list
/// reuses one allocation.
struct SlowCall {
    /// None: no command is being timed.
    name: Option<&'static str>,
    argv: Vec<Bytes>,
    /// When its run started, or went on after a wait that is not its own work.
    started: Instant,
}

/// Longest argument list a connection's `SlowCall` keeps its allocation for.
const SLOW_ARGV_KEPT: usize = 64;

impl Conn {
    /// Runs a batch of decoded commands in order, leaving their replies in `out` (flushing
    /// early when it grows large).
    async fn execute(&mut self, batch: Vec<Decoded>, wr: &mut OwnedWriteHalf) -> Result<(), Close> {
        let shared = self.session.shared.clone();
        let timeout = shared.config.write_timeout;
        // One read view serves a run of reads; a write or a barrier ends the run.
        let mut view: Option<Reader> = None;
        let mut barrier_done = false;
        self.session.touch();
        for d in batch {
            self.log_if_slow();
            let argv = match d {
                Decoded::Command(argv) => argv,
                Decoded::TooLarge { len, .. } => {
                    self.flag_transaction();
                    self.ready(Reply::error(format!(
                        "ERR argument of {len} bytes exceeds the limit of {} bytes",
                        shared.config.max_value_size
                    )))?;
                    continue;
                }
            };
            if self.session.acl_epoch.has_changed().unwrap_or(false) && !self.session.reload_user()
            {
                // Its user was deleted or disabled: closed, as Redis closes it.
                return Err(Close::Killed);
            }
            self.stat = None;
            self.outcome = Outcome::Ran;
            let skipped = std::mem::take(&mut self.session.skip_next_reply);
            self.session.skip_this_reply = skipped;
            self.silent = skipped || self.session.reply_off;
            let spec = match self.check(&argv) {
                Ok(spec) => spec,
                Err(reply) => {
                    let reply = self.refused(&argv, reply);
                    self.ready(reply)?;
                    continue;
                }
            };
            // As Redis evicts before every command while a limit is set: the replies queued
            // before it go first (what they read predates the eviction), the command runs
            // once the eviction entry is applied (its invalidations precede the reply).
            let evicted = if crate::evict::due() {
                self.drain(wr).await?;
                view = None;
                barrier_done = false;
                Some(crate::evict::perform(&shared).await)
            } else {
                None
            };
            if let Some(oom) = cmd::maxmemory::refusal(&self.session, spec, &argv, evicted) {
                let reply = self.refused(&argv, oom);
                self.ready(reply)?;
                continue;
            }
            // Redis checks memory first, then the good replicas.
            if let Some(no) = cmd::min_replicas::refusal(&self.session, spec, &argv) {
                let reply = self.refused(&argv, no);
                self.ready(reply)?;
                continue;
            }
            if let Some(busy) = cmd::scripting::busy_reply(&shared.settings, spec) {
                // As any refusal: it flags an open transaction, and aborts it if it is EXEC.
                let reply = self.refused(&argv, busy);
                self.ready(reply)?;
                continue;
            }
            self.session.note_command(spec.name, &argv);
            self.session
                .pubsub
                .note_command(spec.name, self.session.protocol);
            self.stat = cmd::command_stats::key_of(spec, &argv);
            // A command queued in MULTI is counted when EXEC runs it.
            let queued = self.session.multi.is_some()
                && !transactions::is_control(spec)
                && !transactions::runs_in_multi(spec);
            if let (Some(key), false) = (&self.stat, queued) {
                shared.stats.commands.call(key);
            }
            let write = matches!(spec.kind, Kind::Write { .. });
            while let Some(wait) = shared.clients.paused_for(write) {
                // Paused, it runs nothing more for now (as Redis): others need not wait for it.
                self.session.info.unrun.ran();
                tokio::time::sleep(wait.min(Duration::from_millis(20))).await;
            }
            self.feed_monitors(spec, &argv);
            if !queued && shared.slowlog.enabled() && !spec.flags.contains(&"skip_slowlog") {
                self.slow.name = Some(spec.name);
                self.slow.argv.extend(argv.iter().cloned());
                self.slow.started = Instant::now();
            }
            // A write waits for the reads queued before it that it may change.
            let waits_for_reads = write
                && !self.deferred.is_empty()
                && self
                    .deferred
                    .overlaps(&Footprint::of(spec, &argv, self.session.db));
            if transactions::is_control(spec)
                || (self.session.multi.is_some() && !transactions::runs_in_multi(spec))
            {
                self.transaction_step(spec, argv, wr).await?;
                view = None;
                barrier_done = false;
                continue;
            }
            if crate::blocking::blocks(spec, &argv) {
                // What the client has is sent before it blocks, as Redis does: the replies
                // before it in its pipeline, and its pushes (more are sent while it waits).
                self.drain(wr).await?;
                self.take_pushes()?;
                write_out(wr, &mut self.out, shared.config.client_stall_timeout)
                    .await
                    .map_err(|_| Close::Peer)?;
                // Blocked, it runs nothing more for now: a PUBLISH need not wait for it.
                self.session.info.unrun.ran();
                let arrived = self.arrived;
                let mut socket = crate::blocking::Socket {
                    stream: wr.as_ref(),
                    input: &mut self.input,
                    closed: false,
                    arrived,
                };
                let reply = crate::blocking::execute(
                    &shared,
                    &self.session,
                    spec,
                    argv,
                    arrived,
                    &mut socket,
                )
                .await;
                // What it read while blocked arrived then.
                self.arrived = socket.arrived;
                if socket.closed {
                    // Gone while blocked: what it sent meanwhile is not run (as in Redis).
                    return Err(Close::Peer);
                }
                // Timed from its wake-up, as Redis times a blocked command's last run.
                self.slow_clock_restart();
                // What the pop's own apply raised (an invalidation of the destination key)
                // follows the reply, as Redis sends it.
                self.count_reply(&reply);
                if !self.silent {
                    reply.encode(self.session.protocol, &mut self.out);
                }
                self.take_pushes()?;
                view = None;
                barrier_done = false;
                continue;
            }
            if cmd::wait::is_wait(spec) {
                // The count is of the writes answered before it: those queued first, and
                // sent before it waits (as Redis sends what a client has before it blocks).
                self.drain(wr).await?;
                self.session.info.unrun.ran();
                let stall = shared.config.client_stall_timeout;
                write_out(wr, &mut self.out, stall)
                    .await
                    .map_err(|_| Close::Peer)?;
                let reply = cmd::wait::execute(&shared, &self.session, &argv, wr.as_ref()).await;
                self.ready(reply)?;
                continue;
            }
            if looks_at_clients(spec, &argv) {
                let (me, at) = (self.session.id, self.arrived);
                after_earlier_input(|| shared.clients.input_before(me, at)).await;
                self.slow_clock_restart();
            }
            match spec.kind {
                Kind::Local(_) if cmd::pubsub::is_subscription(spec) => {
                    for frame in cmd::pubsub::subscription_frames(&mut self.session, &argv) {
                        self.push_frame(frame)?;
                    }
                }
                Kind::Local(_) if cmd::pubsub::is_publish(spec) => {
                    let hub = &shared.pubsub;
                    let sharded = argv[0].eq_ignore_ascii_case(b"spublish");
                    let (me, at) = (self.session.id, self.arrived);
                    let key = (at, sharded, argv[1].clone());
                    if self.settled.as_ref() != Some(&key) {
                        after_earlier_input(|| hub.input_before(sharded, &argv[1], me, at)).await;
                        self.slow_clock_restart();
                        self.settled = Some(key);
                    }
                    match cmd::pubsub::publish(&self.session, &argv) {
                        Receivers::Now(n) => {
                            self.ready(Reply::integer(i64::try_from(n).unwrap_or(i64::MAX)))?
                        }
                        Receivers::Later { rx, .. } => {
                            // Our own copy (a RESP3 subscriber publishing) before the reply.
                            if self.queue.is_empty() {
                                self.take_pushes()?;
                            }
                            let slot = if self.silent {
                                Slot::Silent(rx)
                            } else {
                                Slot::Waiting(rx)
                            };
                            self.queue
                                .push_back((slot, self.session.protocol, self.stat.clone()));
                        }
                    }
                }
                Kind::Write { .. } if spec.name == "acl" && !cmd::acl::is_write(&argv) => {
                    // Answered from this node's state, after this connection's writes.
                    if self.has_waiting() {
                        self.drain(wr).await?;
                        view = None;
                        barrier_done = false;
                    }
                    let reply = cmd::acl::local(&mut self.session, &argv);
                    self.ready(reply)?;
                }
                Kind::Local(f) => {
                    let reply = f(&mut self.session, &argv);
                    let proto = self.session.protocol;
                    self.session.pubsub.note_protocol(proto);
                    // CLIENT REPLY OFF/SKIP is itself not answered, CLIENT REPLY ON is.
                    let s = &self.session;
                    self.silent = s.skip_this_reply || s.reply_off || s.skip_next_reply;
                    self.ready(reply)?;
                    if self.session.quit {
                        break;
                    }
                }
                Kind::Read(f) => {
                    let catching_up = shared.raft.catching_up();
                    let linearizable = self.session.consistency == ReadConsistency::Linearizable;
                    let script = cmd::scripting::is_script(spec);
                    if self.has_waiting() {
                        // Behind this connection's writes in flight: queued to run in its
                        // turn, unless it needs a barrier, a script's run or tracking here.
                        let plain = !linearizable && !catching_up && !script;
                        if plain && !self.silent && !self.session.pubsub.tracking.on {
                            let db = self.session.db;
                            self.deferred.add(Footprint::of(spec, &argv, db));
                            // Timed when it runs (`drain`).
                            self.slow_forget();
                            let slot = Slot::Read(db, f, argv);
                            self.queue
                                .push_back((slot, self.session.protocol, self.stat.clone()));
                            if self.queue.len() >= MAX_BATCH {
                                self.drain(wr).await?;
                            }
                            continue;
                        }
                        self.drain(wr).await?;
                        view = None;
                        barrier_done = false;
                    }
                    if (linearizable || catching_up) && !barrier_done {
                        view = None;
                        if let Err(e) = shared.raft.read_barrier(timeout).await {
                            self.ready(if catching_up && !linearizable {
                                Reply::error(LOADING)
                            } else {
                                raft_error_reply(e)
                            })?;
                            continue;
                        }
                        shared.raft.caught_up();
                        barrier_done = true;
                        self.slow_clock_restart();
                    }
                    let reader =
                        view.get_or_insert_with(|| Reader::new(&shared.db, shared.raft.memtable()));
                    let db = self.session.db;
                    let mut run = || {
                        if script {
                            cmd::scripting::take_read_called();
                        }
                        let ran = if script {
                            // It may run long: on a view that lets writers in meanwhile.
                            reader.run_long(db, |v| cmd::run_read(f, v, &argv))
                        } else {
                            reader.run(db, |v| cmd::run_read(f, v, &argv))
                        };
                        // Read on this thread: a script's declared keys are tracked only if it
                        // called a read command.
                        (ran, !script || cmd::scripting::take_read_called())
                    };
                    let user = self.session.user.clone();
                    let (ran, read_keys) = if script {
                        tokio::task::block_in_place(|| crate::acl::as_user(&user, run))
                    } else {
                        run()
                    };
                    let seen = reader.seen();
                    let reply = match ran {
                        Ok(r) => r,
                        Err(e) => cmd::storage_error(e),
                    };
                    let mut tracked = None;
                    if self.session.pubsub.tracking.on {
                        let keys = read_keys.then(|| {
                            if script {
                                cmd::scripting::declared_keys(&argv)
                            } else {
                                spec.key_args(&argv).cloned().collect()
                            }
                        });
                        tracked = self.session.pubsub.after_command(keys, seen);
                    }
                    self.ready(reply)?;
                    // What changed since the read follows its reply.
                    self.session.pubsub.remember(tracked);
                }
                Kind::Write { prepare, .. } => match prepare(argv) {
                    Err(reply) => self.ready(reply)?,
                    Ok(argv) => {
                        if waits_for_reads {
                            self.drain(wr).await?;
                            view = None;
                            barrier_done = false;
                        }
                        // A script runs on this node's view first; only one that writes is
                        // proposed (see `cmd::scripting`).
                        let short = cmd::scripting::runs_locally_first(spec)
                            && cmd::min_replicas::short(&shared.raft);
                        if cmd::scripting::runs_locally_first(spec)
                            && self.session.consistency != ReadConsistency::Linearizable
                            && !shared.raft.catching_up()
                            && !cmd::scripting::proposed_directly(&argv, short)
                        {
                            if self.has_waiting() {
                                self.drain(wr).await?;
                                view = None;
                                barrier_done = false;
                            }
                            let reader = view.get_or_insert_with(|| {
                                Reader::new(&shared.db, shared.raft.memtable())
                            });
                            // A script may run for a while: let the runtime move this
                            // worker's other tasks (the accept loop, other clients, who
                            // must be able to get BUSY and send SCRIPT KILL) elsewhere.
                            let db = self.session.db;
                            let user = self.session.user.clone();
                            let (ran, read_keys) = tokio::task::block_in_place(|| {
                                crate::acl::as_user(&user, || {
                                    cmd::scripting::take_read_called();
                                    let ran = reader.run_long(db, |v| {
                                        cmd::scripting::run_local(v, &argv, short)
                                    });
                                    (ran, cmd::scripting::take_read_called())
                                })
                            });
                            let seen = reader.seen();
                            match ran {
                                Ok(Some(reply)) => {
                                    // A script that only read: its declared keys are tracked
                                    // if it called a read command (as Redis).
                                    let mut tracked = None;
                                    if self.session.pubsub.tracking.on {
                                        let keys =
                                            read_keys.then(|| cmd::scripting::declared_keys(&argv));
                                        tracked = self.session.pubsub.after_command(keys, seen);
                                    }
                                    self.ready(reply)?;
                                    self.session.pubsub.remember(tracked);
                                    continue;
                                }
                                Ok(None) => {}
                                Err(e) => {
                                    self.ready(cmd::storage_error(e))?;
                                    continue;
                                }
                            }
                        }
                        shared.stats.writes_proposed.fetch_add(1, Relaxed);
                        let db = self.session.db;
                        let serves = shared.blocking.waits_on(db, spec.key_args(&argv));
                        if serves && !self.deferred.is_empty() {
                            // The pops it wakes may touch any key (BLMOVE's destination):
                            // the reads queued before it run first.
                            self.drain(wr).await?;
                        }
                        let keys: Vec<Bytes> = if serves {
                            spec.key_args(&argv).cloned().collect()
                        } else {
                            Vec::new()
                        };
                        // A restricted user's script: applied as that user (`cmd::acl::AS_USER`).
                        let argv = if cmd::scripting::runs_locally_first(spec)
                            && !self.session.user.unrestricted()
                        {
                            cmd::acl::as_user_argv(&self.session.user.name, argv)
                        } else {
                            argv
                        };
                        let acked = Some(self.session.last_write.clone());
                        let rx =
                            shared
                                .raft
                                .propose_with(self.writer_id(), db, argv, timeout, acked);
                        let slot = if self.silent {
                            Slot::Silent(rx)
                        } else if serves {
                            Slot::Serves(rx, db, keys)
                        } else {
                            Slot::Waiting(rx)
                        };
                        self.queue
                            .push_back((slot, self.session.protocol, self.stat.clone()));
                        view = None;
                        barrier_done = false;
                    }
                },
            }
            self.log_if_slow();
            if self.queue.len() >= MAX_BATCH {
                self.drain(wr).await?;
            }
            if self.out.len() >= FLUSH_AT {
                let stall = shared.config.client_stall_timeout;
                write_out(wr, &mut self.out, stall)
                    .await
                    .map_err(|_| Close::Peer)?;
            }
        }
        self.log_if_slow();
        // Every command read has run or is proposed: what waits now is raft's commit, which a
        // PUBLISH or an INFO on another connection need not wait for (Redis has none).
        self.session.info.unrun.ran();
        self.drain(wr).await
    }

    /// MULTI, EXEC, DISCARD, WATCH, and any command between MULTI and EXEC (queued, or
    /// refused), as redis-server 7.0 answers them.
    async fn transaction_step(
        &mut self,
        spec: &'static Spec,
        argv: Vec<Bytes>,
        wr: &mut OwnedWriteHalf,
    ) -> Result<(), Close> {
        let in_multi = self.session.multi.is_some();
        match spec.name {
            "multi" if in_multi => self.ready(Reply::error("ERR MULTI calls can not be nested"))?,
            "multi" => {
                self.session.multi = Some(Multi::default());
                self.ready(Reply::ok())?;
            }
            "exec" if in_multi => self.exec(wr).await?,
            "exec" => self.ready(Reply::error("ERR EXEC without MULTI"))?,
            "discard" if in_multi => {
                self.session.multi = None;
                self.session.watched.clear();
                self.ready(Reply::ok())?;
            }
            "discard" => self.ready(Reply::error("ERR DISCARD without MULTI"))?,
            "watch" if in_multi => {
                self.ready(Reply::error("ERR WATCH inside MULTI is not allowed"))?
            }
            "watch" => self.watch(&argv[1..], wr).await?,
            _ if transactions::refused_in_multi(spec) => {
                self.outcome = Outcome::Rejected;
                self.flag_transaction();
                self.ready(transactions::not_allowed())?;
            }
            _ => {
                // Only commands between MULTI and EXEC get here (see `execute`).
                let queued = match self.session.multi.as_mut() {
                    Some(multi) => multi.queue(spec, argv),
                    None => Err(Reply::error("ERR no transaction to queue in")),
                };
                match queued {
                    Ok(()) => self.ready(Reply::status("QUEUED"))?,
                    Err(reply) => {
                        self.outcome = Outcome::Rejected;
                        self.flag_transaction();
                        self.ready(reply)?;
                    }
                }
            }
        }
        if self.out.len() >= FLUSH_AT {
            let stall = self.session.shared.config.client_stall_timeout;
            write_out(wr, &mut self.out, stall)
                .await
                .map_err(|_| Close::Peer)?;
        }
        Ok(())
    }

    /// A command refused by `check`: between MULTI and EXEC it flags the transaction; EXEC's
    /// own arity error discards the transaction and the watches, in Redis's words.
    fn refused(&mut self, argv: &[Bytes], reply: Reply) -> Reply {
        self.stat = argv
            .first()
            .and_then(|n| cmd::lookup(n))
            .and_then(|spec| cmd::command_stats::key_of(spec, argv));
        self.outcome = Outcome::Rejected;
        if argv.first().is_some_and(|n| cmd::is(n, "exec"))
            && let Reply::Error(e) = &reply
        {
            self.session.multi = None;
            self.session.watched.clear();
            let why = e.strip_prefix("ERR ").unwrap_or(e);
            return Reply::error(format!("EXECABORT Transaction discarded because of: {why}"));
        }
        self.flag_transaction();
        reply
    }

    /// Marks the open transaction (if any) so that EXEC answers EXECABORT.
    fn flag_transaction(&mut self) {
        if let Some(multi) = self.session.multi.as_mut() {
            multi.failed = true;
        }
    }

    /// WATCH: records what this node's applied state says of each key, with an applied index
    /// no later than that state's (an older index only makes EXEC abort more often).
    async fn watch(&mut self, keys: &[Bytes], wr: &mut OwnedWriteHalf) -> Result<(), Close> {
        if self.has_waiting() {
            self.drain(wr).await?;
        }
        let shared = self.session.shared.clone();
        let applied = shared.raft.fresh_status().applied;
        let db = self.session.db;
        let seen = Reader::new(&shared.db, shared.raft.memtable())
            .run(db, |v| transactions::look(v, keys, applied));
        match seen {
            Ok(seen) => {
                for (key, seen) in keys.iter().zip(seen) {
                    self.session
                        .watched
                        .entry((db, key.clone()))
                        .or_insert(seen);
                }
                self.ready(Reply::ok())
            }
            Err(e) => self.ready(cmd::storage_error(e)),
        }
    }

    /// EXEC of an open transaction: one raft entry if it writes, else one local view; the
    /// watches are forgotten either way.
    async fn exec(&mut self, wr: &mut OwnedWriteHalf) -> Result<(), Close> {
        let watches = std::mem::take(&mut self.session.watched);
        let Some(multi) = self.session.multi.take() else {
            return self.ready(Reply::error("ERR EXEC without MULTI"));
        };
        if multi.failed {
            return self.ready(transactions::exec_abort());
        }
        let shared = self.session.shared.clone();
        let timeout = shared.config.write_timeout;
        let stats: Vec<Option<StatKey>> = multi
            .queued
            .iter()
            .map(|(spec, argv)| cmd::command_stats::key_of(spec, argv))
            .collect();
        let plan = Plan::new(multi.queued, self.session.db);
        let outcome = if plan.has_writes() {
            if !self.deferred.is_empty() {
                // The reads queued before it run on the state before the transaction.
                self.drain(wr).await?;
            }
            match transactions::encode_entry(&watches, plan.commands()) {
                Err(too_large) => too_large,
                Ok(entry) => {
                    shared.stats.writes_proposed.fetch_add(1, Relaxed);
                    let acked = Some(self.session.last_write.clone());
                    shared
                        .raft
                        .propose_with(self.writer_id(), self.session.db, entry, timeout, acked)
                        .await
                        .unwrap_or(Err(RaftError::Stopped))
                        .unwrap_or_else(raft_error_reply)
                }
            }
        } else if plan.commands().is_empty() && watches.is_empty() {
            Reply::Array(Vec::new())
        } else {
            if self.has_waiting() {
                self.drain(wr).await?;
            }
            let catching_up = shared.raft.catching_up();
            let linearizable = self.session.consistency == ReadConsistency::Linearizable;
            let barrier = if linearizable || catching_up {
                shared.raft.read_barrier(timeout).await
            } else {
                Ok(())
            };
            match barrier {
                Err(_) if catching_up && !linearizable => Reply::error(LOADING),
                Err(e) => raft_error_reply(e),
                Ok(()) => {
                    if linearizable || catching_up {
                        shared.raft.caught_up();
                    }
                    let mut reader = Reader::new(&shared.db, shared.raft.memtable());
                    reader
                        .run(self.session.db, |v| {
                            transactions::run_read_only(v, &watches, plan.commands())
                        })
                        .unwrap_or_else(cmd::storage_error)
                }
            }
        };
        let finished = plan.finish(outcome, &mut self.session);
        // The commands ran (their replies are EXEC's): each counts as a call, an error in
        // its place as its failure; EXEC itself fails only with an error of its own.
        let replies: Vec<&Reply> = match &finished {
            transactions::Finished::Reply(Reply::Array(items)) => items.iter().collect(),
            transactions::Finished::Mixed(items) => items.iter().map(|(r, _)| r).collect(),
            transactions::Finished::Reply(_) => Vec::new(),
        };
        if replies.len() == stats.len() {
            for (key, reply) in stats.iter().zip(replies) {
                if let Some(key) = key {
                    shared.stats.commands.call(key);
                }
                shared
                    .stats
                    .commands
                    .outcome(key.as_ref(), Outcome::Ran, reply);
            }
        }
        match finished {
            // What the transaction's apply raised for this connection (invalidations) follows
            // EXEC's reply, as Redis sends it.
            transactions::Finished::Reply(reply) if self.queue.is_empty() && !self.silent => {
                self.count_reply(&reply);
                reply.encode(self.session.protocol, &mut self.out);
                self.take_pushes()
            }
            transactions::Finished::Reply(reply) => self.ready(reply),
            transactions::Finished::Mixed(items) => {
                self.drain(wr).await?;
                // The array header is the same in RESP2 and RESP3.
                self.out
                    .extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for (reply, proto) in items {
                    reply.encode(proto, &mut self.out);
                }
                self.take_pushes()?;
                if self.out.len() > shared.config.client_output_limit {
                    return Err(Close::OutputLimit);
                }
                Ok(())
            }
        }
    }

    /// Finds the command and checks what every command must satisfy: arity, key sizes.
    fn check(&self, argv: &[Bytes]) -> Result<&'static Spec, Reply> {
        let Some(name) = argv.first() else {
            return Err(Reply::error("ERR empty command"));
        };
        let spec = cmd::lookup(name).ok_or_else(|| cmd::unknown_command(argv))?;
        spec.check_arity(argv.len())?;
        // After the name and arity checks, as Redis orders them.
        let no_auth = spec.flags.contains(&"no_auth");
        if self.session.needs_auth() && !no_auth {
            return Err(Reply::error("NOAUTH Authentication required."));
        }
        if !no_auth && !self.session.user.unrestricted() {
            let call = cmd::acl::call(spec, argv);
            self.session
                .user
                .check(&call)
                .map_err(|d| Reply::error(d.message()))?;
        }
        if self.session.protocol == crate::resp::Protocol::Resp2
            && self.session.pubsub.active()
            && !cmd::pubsub::allowed_when_subscribed(spec)
        {
            let fullname = match argv.get(1) {
                Some(sub) if crate::session::is_container(spec.name) => {
                    format!(
                        "{}|{}",
                        spec.name,
                        String::from_utf8_lossy(sub).to_lowercase()
                    )
                }
                _ => spec.name.to_string(),
            };
            return Err(cmd::pubsub::refused_when_subscribed(&fullname));
        }
        let max_key = self.session.shared.config.max_key_size;
        if spec.key_args(argv).any(|k| k.len() > max_key) {
            return Err(Reply::error(format!(
                "ERR key exceeds the limit of {max_key} bytes"
            )));
        }
        let max_value = self.session.shared.config.max_value_size;
        if argv.iter().any(|a| a.len() > max_value) {
            return Err(Reply::error(format!(
                "ERR argument exceeds the limit of {max_value} bytes"
            )));
        }
        Ok(spec)
    }

    /// Shows the command to this node's monitors, as Redis shows what it runs: a command
    /// queued in MULTI is shown when EXEC runs it, just before `exec`.
    fn feed_monitors(&self, spec: &'static Spec, argv: &[Bytes]) {
        let monitors = &self.session.shared.pubsub.monitors;
        if !monitors.active() {
            return;
        }
        let (db, addr) = (self.session.db, &self.session.peer);
        if spec.name == "reset" {
            // RESET ends monitoring before Redis shows it: not to this connection itself.
            monitors.remove(self.session.id);
        }
        match &self.session.multi {
            Some(multi) if spec.name == "exec" => {
                for (queued, args) in &multi.queued {
                    monitors.feed(queued, db, addr, args);
                }
                monitors.feed(spec, db, addr, argv);
            }
            Some(_) if !transactions::is_control(spec) && !transactions::runs_in_multi(spec) => {}
            _ => monitors.feed(spec, db, addr, argv),
        }
    }

    /// True while a write's reply is outstanding (the queue only ever starts with one).
    fn has_waiting(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Logs the command that just ran if it was slow (`crate::slowlog`).
    fn log_if_slow(&mut self) {
        if let Some(name) = self.slow.name {
            self.offer_slow(name, &self.slow.argv, self.slow.started.elapsed());
        }
        self.slow_forget();
    }

    /// No command is being timed any more (its arguments are let go).
    fn slow_forget(&mut self) {
        self.slow.name = None;
        self.slow.argv.clear();
        if self.slow.argv.capacity() > SLOW_ARGV_KEPT {
            self.slow.argv = Vec::new();
        }
    }

    fn offer_slow(&self, name: &str, argv: &[Bytes], took: Duration) {
        let s = &self.session;
        if !s.shared.slowlog.wants(took) {
            return;
        }
        let client = s.name.clone().unwrap_or_default();
        s.shared
            .slowlog
            .offer(name, argv, took, &s.peer.to_string(), &client);
    }

    /// The command running waited for something not its own work (earlier replies, a read
    /// barrier, other connections, a wake-up): its time counts from now.
    fn slow_clock_restart(&mut self) {
        if self.slow.name.is_some() {
            self.slow.started = Instant::now();
        }
    }

    /// Takes a reply that is known now: encoded at once unless it must wait behind a write.
    fn ready(&mut self, reply: Reply) -> Result<(), Close> {
        self.count_reply(&reply);
        if self.queue.is_empty() {
            self.take_pushes()?;
        }
        if self.silent {
            return Ok(());
        }
        let proto = self.session.protocol;
        if self.queue.is_empty() {
            reply.encode(proto, &mut self.out);
            if self.out.len() > self.session.shared.settings.output_limit.load(Relaxed) {
                return Err(Close::OutputLimit);
            }
        } else {
            self.queue.push_back((Slot::Ready(reply), proto, None));
        }
        Ok(())
    }

    /// Counts a reply to the command running in INFO's error counters (an error fails or
    /// rejects the command, as `self.outcome` says).
    fn count_reply(&self, reply: &Reply) {
        self.session
            .shared
            .stats
            .commands
            .outcome(self.stat.as_ref(), self.outcome, reply);
    }

    /// The connection id its writes' entries carry: only a NOLOOP tracking connection needs
    /// its own writes told apart (the entries of others stay as small as before).
    fn writer_id(&self) -> u64 {
        if self.session.pubsub.tracking.on && self.session.pubsub.tracking.noloop {
            self.session.id
        } else {
            0
        }
    }

    /// A reply that CLIENT REPLY OFF/SKIP does not suppress: (un)subscribe confirmations are
    /// pushes, as in Redis.
    fn push_frame(&mut self, reply: Reply) -> Result<(), Close> {
        let silent = std::mem::replace(&mut self.silent, false);
        let r = self.ready(reply);
        self.silent = silent;
        r
    }

    /// Moves the Pub/Sub messages queued for this connection into `out`; a subscriber that
    /// went over its output limit is closed.
    fn take_pushes(&mut self) -> Result<(), Close> {
        let proto = self.session.protocol;
        if self.session.pubsub.mailbox.drain_into(&mut self.out, proto) {
            Ok(())
        } else {
            Err(Close::OutputLimit)
        }
    }

    /// Resolves every queued reply in order into `out`, writing out as it grows.
    async fn drain(&mut self, wr: &mut OwnedWriteHalf) -> Result<(), Close> {
        let limit = self.session.shared.settings.output_limit.load(Relaxed);
        let shared = self.session.shared.clone();
        let mut reader = None;
        while let Some((slot, proto, stat)) = self.queue.pop_front() {
            let stats = &self.session.shared.stats.commands;
            let reply = match slot {
                Slot::Ready(r) => r,
                Slot::Read(db, f, argv) => {
                    let started = Instant::now();
                    let reply = reader
                        .get_or_insert_with(|| Reader::new(&shared.db, shared.raft.memtable()))
                        .run(db, |v| cmd::run_read(f, v, &argv))
                        .unwrap_or_else(cmd::storage_error);
                    self.offer_slow("", &argv, started.elapsed());
                    stats.outcome(stat.as_ref(), Outcome::Ran, &reply);
                    reply
                }
                Slot::Waiting(rx) => {
                    let reply = rx
                        .await
                        .unwrap_or(Err(RaftError::Stopped))
                        .unwrap_or_else(raft_error_reply);
                    stats.outcome(stat.as_ref(), Outcome::Ran, &reply);
                    reply
                }
                Slot::Serves(rx, db, keys) => {
                    let reply = rx.await.unwrap_or(Err(RaftError::Stopped));
                    if reply.is_ok() {
                        // Bounded well below a write's timeout: under faults an attempt may take
                        // that long, and the push is applied either way.
                        let bound = SETTLE_BOUND.min(self.session.shared.config.write_timeout);
                        self.session.shared.blocking.settled(db, &keys, bound).await;
                    }
                    let reply = reply.unwrap_or_else(raft_error_reply);
                    stats.outcome(stat.as_ref(), Outcome::Ran, &reply);
                    reply
                }
                Slot::Silent(rx) => {
                    // Not sent, but answered: an error counts as in Redis (CLIENT REPLY OFF).
                    let reply = rx
                        .await
                        .unwrap_or(Err(RaftError::Stopped))
                        .unwrap_or_else(raft_error_reply);
                    stats.outcome(stat.as_ref(), Outcome::Ran, &reply);
                    continue;
                }
            };
            reply.encode(proto, &mut self.out);
            // What this write's apply raised for this connection (invalidations of keys it
            // tracks) follows its reply, as Redis sends it.
            self.take_pushes()?;
            if self.out.len() > limit {
                return Err(Close::OutputLimit);
            }
            if self.out.len() >= FLUSH_AT {
                write_out(
                    wr,
                    &mut self.out,
                    self.session.shared.config.client_stall_timeout,
                )
                .await
                .map_err(|_| Close::Peer)?;
            }
        }
        self.deferred.clear();
        // The command that asked for this waited for earlier replies: not its own work.
        self.slow_clock_restart();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients (and tests/) tell "not applied" from "outcome unknown" by these texts: they are
    /// the contract, pinned here.
    #[test]
    fn raft_errors_keep_their_texts() {
        let cases = [
            (
                RaftError::NoLeader,
                "CLUSTERDOWN no raft leader: write not applied",
            ),
            (
                RaftError::FencedOut,
                "TRYAGAIN write not applied: raft leadership changed and no new leader took it in time",
            ),
            (
                RaftError::OutcomeUnknown,
                "TIMEOUT write outcome unknown: proposed but not committed in time; it may still be applied",
            ),
            (
                RaftError::SnapshotOutcomeUnknown,
                "TIMEOUT write outcome unknown: this node caught up from a snapshot that may include it",
            ),
            (
                RaftError::Removed,
                "ERR this node was removed from the cluster",
            ),
            (
                RaftError::NotJoined,
                "CLUSTERDOWN this node has not joined a cluster yet",
            ),
            (
                RaftError::JoiningOtherCluster,
                "TRYAGAIN this node is joining another cluster",
            ),
            (RaftError::ShuttingDown, "ERR server is shutting down"),
            (RaftError::Stopped, "ERR raft loop stopped"),
            (
                RaftError::ReadNoLeader,
                "CLUSTERDOWN no raft leader confirmed this read in time",
            ),
            (
                RaftError::NotCaughtUp,
                "TRYAGAIN read not served: this node did not catch up in time",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(raft_error_reply(e), Reply::error(text), "{e:?}");
            let unknown = matches!(
                e,
                RaftError::OutcomeUnknown | RaftError::SnapshotOutcomeUnknown
            );
            assert_eq!(text.starts_with("TIMEOUT "), unknown, "{e:?}");
        }
    }
}
