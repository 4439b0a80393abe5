//! The fan-out of published messages to the other nodes: one long-lived, authenticated
//! connection per peer (`Purpose::PubSub`, dialed like a raft connection), fed by a bounded
//! queue. Each message is written once, in the order this node's connections published them;
//! the peer delivers it to its subscribers and answers with how many received it.
//!
//! At most once: a message queued while the link is down, or that does not fit in the queue, is
//! dropped (and counts 0 receivers there), never resent, so a reconnect cannot reorder or
//! duplicate anything.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::lock;
use crate::raft::RaftError;
use crate::raft::transport::{Published, Purpose, Transport};
use crate::resp::Reply;

/// How long PUBLISH waits for the peers' receiver counts; a peer that has not answered by then
/// counts 0 (its subscribers may still get the message).
pub const ACK_DEADLINE: Duration = Duration::from_millis(250);
/// Messages queued for one peer at most; beyond, new messages skip that peer.
const QUEUE_MESSAGES: usize = 16 * 1024;
const BATCH_BYTES: usize = 1024 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

type Outgoing = (Bytes, oneshot::Sender<u64>);

struct Link {
    addr: SocketAddr,
    tx: mpsc::Sender<Outgoing>,
    /// Connected and authenticated: only then is a message queued for this peer.
    up: Arc<AtomicBool>,
}

/// What PUBLISH answers: known now (no peer to wait for), or once the peers answered.
pub enum Receivers {
    Now(u64),
    /// `here` is this node's own count (what a PUBLISH inside MULTI answers).
    Later {
        here: u64,
        rx: oneshot::Receiver<Result<Reply, RaftError>>,
    },
}

/// This node's links to its peers' hubs.
pub struct Links {
    transport: Option<Transport>,
    links: Mutex<HashMap<u64, Link>>,
}

impl Links {
    pub fn new(transport: Transport) -> Links {
        Links {
            transport: Some(transport),
            links: Mutex::new(HashMap::new()),
        }
    }

    /// No peers ever (unit tests).
    pub fn disconnected() -> Links {
        Links {
            transport: None,
            links: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps one link per current peer: new peers get one, peers gone (or moved) lose theirs.
    /// Runs on every publish and every second (so links are up before the first message).
    pub fn sync(&self) {
        let Some(t) = &self.transport else { return };
        let peers = t.peers();
        let mut links = lock(&self.links);
        links.retain(|id, l| peers.iter().any(|(p, a)| p == id && *a == l.addr));
        for (id, addr) in peers {
            links
                .entry(id)
                .or_insert_with(|| Link::spawn(t.clone(), id, addr));
        }
    }

    /// Keeps the links in step with the member list until the process ends.
    pub async fn maintain(self: Arc<Self>) {
        loop {
            self.sync();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Sends a message to every peer whose link is up; `here` is this node's own count.
    pub fn send(&self, m: Published, here: u64) -> Receivers {
        if self.transport.is_none() {
            return Receivers::Now(here);
        }
        let Some(len) = m.frame_len() else {
            return Receivers::Now(here);
        };
        self.sync();
        let mut frame = BytesMut::with_capacity(len);
        m.encode(&mut frame);
        let frame = frame.freeze();
        let mut waits = Vec::new();
        for link in lock(&self.links).values() {
            if !link.up.load(Relaxed) {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            if link.tx.try_send((frame.clone(), tx)).is_ok() {
                waits.push(rx);
            }
        }
        if waits.is_empty() {
            return Receivers::Now(here);
        }
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + ACK_DEADLINE;
            let mut n = here;
            for w in waits {
                if let Ok(Ok(count)) = tokio::time::timeout_at(deadline, w).await {
                    n = n.saturating_add(count);
                }
            }
            let _ = tx.send(Ok(Reply::integer(i64::try_from(n).unwrap_or(i64::MAX))));
        });
        Receivers::Later { here, rx }
    }
}

impl Link {
    fn spawn(t: Transport, id: u64, addr: SocketAddr) -> Link {
        let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
        let up = Arc::new(AtomicBool::new(false));
        tokio::spawn(run(t, id, addr, rx, up.clone()));
        Link { addr, tx, up }
    }
}

/// Owns one peer's link: connect (with backoff), then write batches of queued messages while
/// reading the peer's counts, until the connection breaks or the peer leaves.
async fn run(
    t: Transport,
    id: u64,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Outgoing>,
    up: Arc<AtomicBool>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let stream = match t.connect(id, addr, Purpose::PubSub).await {
            Ok(s) => s,
            Err(_) => {
                up.store(false, Relaxed);
                // Dropped: their publishers count 0 here.
                while rx.try_recv().is_ok() {}
                if rx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        up.store(true, Relaxed);
        let (mut rd, mut wr) = stream.into_split();
        // Count senders of the messages written, in order: the peer answers in that order.
        let pending: Mutex<VecDeque<oneshot::Sender<u64>>> = Mutex::new(VecDeque::new());
        let reader = async {
            while let Ok(n) = rd.read_u64().await {
                if let Some(ack) = lock(&pending).pop_front() {
                    let _ = ack.send(n);
                }
            }
        };
        let writer = async {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                let Some((frame, ack)) = rx.recv().await else {
                    return Ok::<bool, std::io::Error>(true);
                };
                buf.clear();
                buf.extend_from_slice(&frame);
                let mut acks = vec![ack];
                while buf.len() < BATCH_BYTES {
                    match rx.try_recv() {
                        Ok((frame, ack)) => {
                            buf.extend_from_slice(&frame);
                            acks.push(ack);
                        }
                        Err(_) => break,
                    }
                }
                lock(&pending).extend(acks);
                wr.write_all(&buf).await?;
            }
        };
        let removed = tokio::select! {
            () = reader => false,
            r = writer => r.unwrap_or(false),
        };
        up.store(false, Relaxed);
        lock(&pending).clear();
        if removed {
            return;
        }
    }
}
