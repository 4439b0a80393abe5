//! One client connection: read bytes, decode every complete command, execute them in order,
//! write all their replies with one write.
//!
//! Writes in a pipeline are proposed together (so they can share one raft Ready and one fsync)
//! and their replies are awaited in order. A read waits for the writes before it on the same
//! connection, so a client always reads its own writes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use slog::debug;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{oneshot, watch};

use crate::cmd::{self, Kind, Spec};
use crate::config::ReadConsistency;
use crate::kv::Reader;
use crate::resp::{Decoded, Decoder, Limits, Reply};
use crate::server::Shared;
use crate::session::{ClientInfo, Clients, Session};

/// Commands taken from the input buffer before replies are written: bounds the work (and the
/// reply memory) of one round while keeping pipelines batched.
const MAX_BATCH: usize = 1024;
/// Replies are written out once this much is buffered, even mid-batch.
const FLUSH_AT: usize = 256 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// A reply in its place in the pipeline.
enum Slot {
    Ready(Reply),
    Waiting(oneshot::Receiver<Reply>),
    /// A write whose reply CLIENT REPLY OFF/SKIP suppresses: awaited in order, not sent.
    Silent(oneshot::Receiver<Reply>),
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
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let id = shared.next_client_id.fetch_add(1, Relaxed);
    let laddr = stream.local_addr().unwrap_or(shared.config.addr);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let registered = Clients::register(&shared, ClientInfo::new(id, peer, laddr, fd));
    let (mut rd, mut wr) = stream.into_split();
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
    };
    let mut inbuf = BytesMut::new();
    let stall = cfg.client_stall_timeout;
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
        }
        if let Some(e) = protocol_error {
            Reply::error(format!("ERR {e}")).encode(conn.session.protocol, &mut conn.out);
            let _ = write_out(&mut wr, &mut conn.out, stall).await;
            break Close::Protocol;
        }
        if write_out(&mut wr, &mut conn.out, stall).await.is_err() {
            break Close::Peer;
        }
        if conn.session.quit {
            break Close::Quit;
        }
        if more_buffered {
            continue;
        }
        let want = decoder
            .bytes_needed()
            .unwrap_or(0)
            .clamp(READ_CHUNK, 64 * 1024 * 1024);
        if inbuf.capacity() - inbuf.len() < READ_CHUNK {
            inbuf.reserve(want);
        }
        let idle = shared.settings.timeout_secs.load(Relaxed);
        tokio::select! {
            r = rd.read_buf(&mut inbuf) => match r {
                Ok(0) | Err(_) => break Close::Peer,
                Ok(_) => {}
            },
            _ = shutdown.changed() => break Close::Shutdown,
            _ = registered.info.kill.notified() => break Close::Killed,
            _ = tokio::time::sleep(Duration::from_secs(idle)), if idle > 0 => break Close::Killed,
        }
    };
    if let Close::Shutdown = reason {
        let _ = wr.shutdown().await;
    }
    if let Close::OutputLimit = reason {
        debug!(shared.logger, "client disconnected: output buffer limit"; "client" => %peer);
    }
    shared.stats.connected_clients.fetch_sub(1, Relaxed);
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

struct Conn {
    session: Session,
    out: BytesMut,
    /// Replies waiting behind a write, each with the protocol in force when its command ran (a
    /// later HELLO in the same pipeline must not change how it is written).
    queue: VecDeque<(Slot, crate::resp::Protocol)>,
    /// The reply of the command running is not sent (CLIENT REPLY OFF or SKIP).
    silent: bool,
}

impl Conn {
    /// Runs a batch of decoded commands in order, leaving their replies in `out` (flushing
    /// early when it grows large).
    async fn execute(&mut self, batch: Vec<Decoded>, wr: &mut OwnedWriteHalf) -> Result<(), Close> {
        let shared = self.session.shared.clone();
        let timeout = shared.config.write_timeout;
        // One read view serves a run of reads; a write or a barrier ends the run.
        let mut view: Option<Reader> = None;
        let mut barrier_done = false;
        for d in batch {
            let argv = match d {
                Decoded::Command(argv) => argv,
                Decoded::TooLarge { len, .. } => {
                    self.ready(Reply::error(format!(
                        "ERR argument of {len} bytes exceeds the limit of {} bytes",
                        shared.config.max_value_size
                    )))?;
                    continue;
                }
            };
            let skipped = std::mem::take(&mut self.session.skip_next_reply);
            self.session.skip_this_reply = skipped;
            self.silent = skipped || self.session.reply_off;
            let spec = match self.check(&argv) {
                Ok(spec) => spec,
                Err(reply) => {
                    self.ready(reply)?;
                    continue;
                }
            };
            self.session.note_command(spec.name, &argv);
            shared.stats.command_calls.count(spec);
            let write = matches!(spec.kind, Kind::Write { .. });
            while let Some(wait) = shared.clients.paused_for(write) {
                tokio::time::sleep(wait.min(Duration::from_millis(20))).await;
            }
            match spec.kind {
                Kind::Local(f) => {
                    let reply = f(&mut self.session, &argv);
                    // CLIENT REPLY OFF/SKIP is itself not answered, CLIENT REPLY ON is.
                    let s = &self.session;
                    self.silent = s.skip_this_reply || s.reply_off || s.skip_next_reply;
                    self.ready(reply)?;
                    if self.session.quit {
                        break;
                    }
                }
                Kind::Read(f) => {
                    if self.has_waiting() {
                        self.drain(wr).await?;
                        view = None;
                        barrier_done = false;
                    }
                    let catching_up = shared.raft.catching_up();
                    let linearizable = self.session.consistency == ReadConsistency::Linearizable;
                    if (linearizable || catching_up) && !barrier_done {
                        view = None;
                        if let Err(reply) = shared.raft.read_barrier(timeout).await {
                            self.ready(if catching_up && !linearizable {
                                Reply::error(
                                    "LOADING kvd is catching up with its cluster after a restart",
                                )
                            } else {
                                reply
                            })?;
                            continue;
                        }
                        shared.raft.caught_up();
                        barrier_done = true;
                    }
                    let reader =
                        view.get_or_insert_with(|| Reader::new(&shared.db, shared.raft.memtable()));
                    let reply = match reader.run(self.session.db, |v| cmd::run_read(f, v, &argv)) {
                        Ok(r) => r,
                        Err(e) => cmd::storage_error(e),
                    };
                    self.ready(reply)?;
                }
                Kind::Write { prepare, .. } => match prepare(argv) {
                    Err(reply) => self.ready(reply)?,
                    Ok(argv) => {
                        shared.stats.writes_proposed.fetch_add(1, Relaxed);
                        let rx = shared.raft.propose_later(self.session.db, argv, timeout);
                        let slot = if self.silent {
                            Slot::Silent(rx)
                        } else {
                            Slot::Waiting(rx)
                        };
                        self.queue.push_back((slot, self.session.protocol));
                        view = None;
                        barrier_done = false;
                    }
                },
            }
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
        self.drain(wr).await
    }

    /// Finds the command and checks what every command must satisfy: arity, key sizes.
    fn check(&self, argv: &[Bytes]) -> Result<&'static Spec, Reply> {
        let Some(name) = argv.first() else {
            return Err(Reply::error("ERR empty command"));
        };
        let spec = cmd::lookup(name).ok_or_else(|| cmd::unknown_command(argv))?;
        spec.check_arity(argv.len())?;
        // After the name and arity checks, as Redis orders them.
        if self.session.needs_auth() && !spec.flags.contains(&"no_auth") {
            return Err(Reply::error("NOAUTH Authentication required."));
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

    /// True while a write's reply is outstanding (the queue only ever starts with one).
    fn has_waiting(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Takes a reply that is known now: encoded at once unless it must wait behind a write.
    fn ready(&mut self, reply: Reply) -> Result<(), Close> {
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
            self.queue.push_back((Slot::Ready(reply), proto));
        }
        Ok(())
    }

    /// Resolves every queued reply in order into `out`, writing out as it grows.
    async fn drain(&mut self, wr: &mut OwnedWriteHalf) -> Result<(), Close> {
        let limit = self.session.shared.settings.output_limit.load(Relaxed);
        while let Some((slot, proto)) = self.queue.pop_front() {
            let reply = match slot {
                Slot::Ready(r) => r,
                Slot::Waiting(rx) => rx
                    .await
                    .unwrap_or_else(|_| Reply::error("ERR raft loop stopped")),
                Slot::Silent(rx) => {
                    let _ = rx.await;
                    continue;
                }
            };
            reply.encode(proto, &mut self.out);
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
        Ok(())
    }
}
