//! Peer transport: raft messages between nodes over long-lived TCP connections.
//!
//! Each peer has one outbound connection, fed by a bounded outbox of encoded frames
//! (`outbox.rs`): when a peer is slow or down, messages are dropped and raft-rs is told the peer
//! is unreachable, so memory never grows with a dead peer. The raft thread writes small batches
//! to the socket itself; a writer task connects and sends what the socket did not take. Connections
//! start with a handshake naming the cluster (name and id), the sender and the intended receiver;
//! the receiver refuses strangers. An admitted connection is handed to the raft thread, which
//! reads its frames itself (`inbox.rs`). Snapshots travel on their own connection (`snapshot.rs`).
//!
//! Frames: `u32 length (BE) ++ protobuf Message`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use slog::{Logger, debug, info, warn};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};

use super::Input;
use super::identity::Identity;
use super::inbox::InputTx;
use super::outbox::{Drained, Outbox};
use super::snapshot::{self, SnapshotRegistry};
pub use super::wire::{
    ClusterKey, Handshake, MAX_FRAME, PeerAuth, Published, Purpose, challenge, encode_frame,
    invalid, nonce, prove, read_verdict, write_verdict,
};

/// Where messages published on peers are delivered on this node (the pub/sub hub): returns how
/// many of this node's subscribers received it.
pub trait PubSubSink: Send + Sync {
    fn deliver_from_peer(&self, m: Published) -> u64;
}

/// Bytes queued for one peer at most.
const QUEUE_BYTES: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One peer's outbound side. Dropping it (the peer left the member list) stops its writer.
struct Peer {
    addr: SocketAddr,
    out: Arc<Outbox>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.out.close();
    }
}

struct Inner {
    identity: Mutex<Identity>,
    cluster_name: String,
    key: Option<ClusterKey>,
    raft_addr: SocketAddr,
    peers: Mutex<HashMap<u64, Peer>>,
    /// Addresses learnt from handshakes, for peers not (yet) in our member list: a node that
    /// is joining hears from the leader before it knows any member.
    learned: Mutex<HashMap<u64, SocketAddr>>,
    raft_tx: InputTx,
    snapshots: SnapshotRegistry,
    db: crate::store::Db,
    /// Senders refused since they were last admitted (to log each refusal once).
    refused: Mutex<std::collections::HashSet<u64>>,
    receiving_snapshot: Semaphore,
    /// Set once at startup, after the hub exists.
    pubsub: std::sync::OnceLock<Arc<dyn PubSubSink>>,
    runtime: tokio::runtime::Handle,
    logger: Logger,
}

/// Handle to the transport, shared by the raft thread (sending) and the listener (receiving).
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl Transport {
    pub fn new(
        auth: PeerAuth,
        raft_addr: SocketAddr,
        raft_tx: InputTx,
        snapshots: SnapshotRegistry,
        db: crate::store::Db,
        runtime: tokio::runtime::Handle,
        logger: Logger,
    ) -> Self {
        Transport {
            inner: Arc::new(Inner {
                identity: Mutex::new(Identity {
                    name: String::new(),
                    id: 0,
                    cluster_id: 0,
                }),
                cluster_name: auth.cluster_name,
                key: auth.key,
                raft_addr,
                peers: Mutex::new(HashMap::new()),
                learned: Mutex::new(HashMap::new()),
                raft_tx,
                snapshots,
                db,
                refused: Mutex::new(Default::default()),
                receiving_snapshot: Semaphore::new(1),
                pubsub: std::sync::OnceLock::new(),
                runtime,
                logger,
            }),
        }
    }

    fn identity(&self) -> Identity {
        lock(&self.inner.identity).clone()
    }

    pub fn set_identity(&self, ident: Identity) {
        *lock(&self.inner.identity) = ident;
    }

    /// Names where messages published on peers go (once, at startup).
    pub fn set_pubsub(&self, sink: Arc<dyn PubSubSink>) {
        let _ = self.inner.pubsub.set(sink);
    }

    /// The current peers (from the member list): where pub/sub messages fan out to.
    pub fn peers(&self) -> Vec<(u64, SocketAddr)> {
        lock(&self.inner.peers)
            .iter()
            .map(|(id, p)| (*id, p.addr))
            .collect()
    }

    /// Replaces the set of peers (from the member list). Peers whose address changed or who left
    /// lose their connection; new ones get one.
    pub fn set_peers(&self, peers: Vec<(u64, SocketAddr)>) {
        let mut map = lock(&self.inner.peers);
        map.retain(|id, p| peers.iter().any(|(pid, a)| pid == id && *a == p.addr));
        for (id, addr) in peers {
            map.entry(id).or_insert_with(|| self.spawn_peer(id, addr));
        }
    }

    fn spawn_peer(&self, id: u64, addr: SocketAddr) -> Peer {
        let out = Outbox::new();
        let t = self.clone();
        let o = out.clone();
        self.inner
            .runtime
            .spawn(async move { t.peer_writer(id, addr, o).await });
        Peer { addr, out }
    }

    /// Queues messages for their peers without blocking (and writes small batches to connected
    /// peers at once). Returns the peers that could not take them (unknown, too much waiting):
    /// the caller reports them unreachable to raft-rs.
    pub fn send(&self, msgs: Vec<Message>) -> Vec<u64> {
        let mut unreachable = Vec::new();
        let mut map = lock(&self.inner.peers);
        let mut by_peer: Vec<(u64, Vec<Message>)> = Vec::new();
        for m in msgs {
            let to = m.to;
            if m.get_msg_type() == MessageType::MsgSnapshot {
                let addr = map.get(&to).map(|p| p.addr).or_else(|| self.learned(to));
                match addr {
                    Some(addr) => self.spawn_snapshot_sender(to, addr, m),
                    None => {
                        let _ = self
                            .inner
                            .raft_tx
                            .send(Input::SnapshotDone { to, ok: false });
                    }
                }
                continue;
            }
            match by_peer.iter_mut().find(|(id, _)| *id == to) {
                Some((_, batch)) => batch.push(m),
                None => by_peer.push((to, vec![m])),
            }
        }
        for (to, batch) in by_peer {
            if !map.contains_key(&to)
                && let Some(addr) = self.learned(to)
            {
                map.insert(to, self.spawn_peer(to, addr));
            }
            match map.get(&to) {
                Some(peer) if peer.out.push(&batch, QUEUE_BYTES) => {}
                _ => unreachable.push(to),
            }
        }
        unreachable.sort_unstable();
        unreachable.dedup();
        unreachable
    }

    fn learned(&self, id: u64) -> Option<SocketAddr> {
        lock(&self.inner.learned).get(&id).copied()
    }

    fn handshake(&self, to_id: u64, purpose: Purpose) -> Handshake {
        let me = self.identity();
        Handshake {
            cluster_name: self.inner.cluster_name.clone(),
            cluster_id: me.cluster_id,
            from_id: me.id,
            from_name: me.name,
            from_addr: self.inner.raft_addr.to_string(),
            to_id,
            purpose,
            authenticated: self.inner.key.is_some(),
            nonce: nonce(),
        }
    }

    /// Owns the connection to one peer: connect (with backoff), handshake, then write what the
    /// raft thread left in the outbox until the connection breaks or the peer is dropped from
    /// the member list.
    async fn peer_writer(self, id: u64, addr: SocketAddr, out: Arc<Outbox>) {
        let mut backoff = BACKOFF_MIN;
        let mut logged_down = false;
        while !out.is_closed() {
            let stream = match self.connect(id, addr, Purpose::Raft).await {
                Ok(s) => {
                    if logged_down {
                        info!(self.inner.logger, "peer reachable again"; "peer" => id, "addr" => %addr);
                    }
                    logged_down = false;
                    backoff = BACKOFF_MIN;
                    Arc::new(s)
                }
                Err(e) => {
                    if !logged_down {
                        warn!(self.inner.logger, "peer unreachable"; "peer" => id, "addr" => %addr, "error" => %e);
                        logged_down = true;
                    }
                    // Drop what queued up meanwhile: raft resends what still matters.
                    if out.lost() {
                        let _ = self.inner.raft_tx.send(Input::Unreachable(id));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            if out.connected(stream.clone()) {
                let _ = self.inner.raft_tx.send(Input::Unreachable(id));
            }
            while !out.is_closed() {
                let lost = match out.drain() {
                    Drained::Empty => {
                        out.appended().await;
                        continue;
                    }
                    Drained::More => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Drained::Full => tokio::select! {
                        r = stream.writable() => match r {
                            Ok(()) => continue,
                            Err(e) => e,
                        },
                        _ = out.appended() => continue,
                    },
                    Drained::Lost(e) => e,
                };
                debug!(self.inner.logger, "peer connection lost"; "peer" => id, "error" => %lost);
                out.lost();
                let _ = self.inner.raft_tx.send(Input::Unreachable(id));
                break;
            }
        }
    }

    /// Opens and authenticates a connection to a peer.
    pub async fn connect(
        &self,
        id: u64,
        addr: SocketAddr,
        purpose: Purpose,
    ) -> io::Result<TcpStream> {
        let mut s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        s.set_nodelay(true)?;
        let hs = self.handshake(id, purpose);
        s.write_all(&hs.encode()).await?;
        let answer = async {
            if let Some(key) = &self.inner.key {
                prove(&mut s, key, &hs).await?;
            }
            read_verdict(&mut s).await
        };
        tokio::time::timeout(CONNECT_TIMEOUT, answer)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"))??;
        Ok(s)
    }

    fn spawn_snapshot_sender(&self, to: u64, addr: SocketAddr, m: Message) {
        let t = self.clone();
        self.inner.runtime.spawn(async move {
            let logger = t.inner.logger.clone();
            let index = m.get_snapshot().get_metadata().index;
            info!(logger, "sending snapshot"; "to" => to, "index" => index);
            let started = std::time::Instant::now();
            let result = async {
                let stream = t.connect(to, addr, Purpose::Snapshot).await?;
                snapshot::send(stream, m, &t.inner.snapshots).await
            }
            .await;
            let ok = match result {
                Ok(stats) => {
                    info!(logger, "snapshot sent"; "to" => to, "index" => index, "keys" => stats.records,
                          "bytes" => stats.bytes, "ms" => started.elapsed().as_millis() as u64);
                    true
                }
                Err(e) => {
                    warn!(logger, "snapshot send failed"; "to" => to, "error" => %e);
                    false
                }
            };
            let _ = t.inner.raft_tx.send(Input::SnapshotDone { to, ok });
        });
    }

    /// Accepts peer connections until the listener fails.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let t = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = t.serve_conn(stream).await {
                            debug!(t.inner.logger, "peer connection closed"; "from" => %peer, "error" => %e);
                        }
                    });
                }
                Err(e) => {
                    warn!(self.inner.logger, "raft accept failed"; "error" => %e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn serve_conn(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let hs = tokio::time::timeout(CONNECT_TIMEOUT, Handshake::read(&mut stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"))??;
        let proven = match (&self.inner.key, hs.authenticated) {
            (Some(key), true) => {
                tokio::time::timeout(CONNECT_TIMEOUT, challenge(&mut stream, key, &hs))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "challenge timed out"))??
                    .then_some(())
                    .ok_or("peer could not prove the cluster secret")
            }
            (Some(_), false) => Err("this cluster requires a cluster secret; the peer has none"),
            (None, true) => Err("the peer has a cluster secret; this node has none"),
            (None, false) => Ok(()),
        };
        let admitted = match proven {
            // Pub/sub links come only from members of our own cluster: never a reason to adopt.
            Ok(())
                if hs.purpose == Purpose::PubSub && hs.cluster_id != self.identity().cluster_id =>
            {
                Err("pub/sub link from another cluster".to_string())
            }
            Ok(()) => self.admit(&hs).await,
            Err(reason) => Err(reason.to_string()),
        };
        if let Err(reason) = admitted {
            // Once per sender until it is admitted: it retries every second.
            if lock(&self.inner.refused).insert(hs.from_id) {
                warn!(self.inner.logger, "refused peer connection"; "from" => &hs.from_name,
                      "addr" => &hs.from_addr, "reason" => &reason);
            }
            let _ = write_verdict(&mut stream, Some(&reason)).await;
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, reason));
        }
        lock(&self.inner.refused).remove(&hs.from_id);
        if let Ok(addr) = hs.from_addr.parse::<SocketAddr>() {
            lock(&self.inner.learned).insert(hs.from_id, addr);
        }
        if hs.purpose == Purpose::Snapshot {
            let Ok(_permit) = self.inner.receiving_snapshot.try_acquire() else {
                write_verdict(&mut stream, Some("already receiving a snapshot")).await?;
                return Ok(());
            };
            write_verdict(&mut stream, None).await?;
            let me = self.identity().id;
            let stats = snapshot::receive(stream, &self.inner.db, me, &self.inner.raft_tx).await?;
            info!(self.inner.logger, "snapshot received"; "from" => hs.from_name, "keys" => stats.records, "bytes" => stats.bytes);
            return Ok(());
        }
        write_verdict(&mut stream, None).await?;
        if hs.purpose == Purpose::PubSub {
            return self.serve_pubsub(stream).await;
        }
        self.hand_over(stream, hs.from_id)
    }

    /// A peer's pub/sub link: delivers each message to this node's subscribers, in the order
    /// sent, and answers each with its receiver count (batched while more frames are buffered).
    async fn serve_pubsub(&self, stream: TcpStream) -> io::Result<()> {
        let Some(sink) = self.inner.pubsub.get().cloned() else {
            return Ok(());
        };
        let (rd, mut wr) = stream.into_split();
        let mut rd = tokio::io::BufReader::with_capacity(256 * 1024, rd);
        let mut acks = Vec::with_capacity(8 * 1024);
        while let Some(m) = Published::read(&mut rd).await? {
            acks.extend_from_slice(&sink.deliver_from_peer(m).to_be_bytes());
            if rd.buffer().is_empty() || acks.len() >= 64 * 1024 {
                wr.write_all(&acks).await?;
                acks.clear();
            }
        }
        Ok(())
    }

    /// Decides whether a peer may talk to us.
    async fn admit(&self, hs: &Handshake) -> Result<(), String> {
        let me = self.identity();
        if hs.cluster_name != self.inner.cluster_name {
            return Err(format!(
                "cluster name '{}' does not match '{}'",
                hs.cluster_name, self.inner.cluster_name
            ));
        }
        if hs.to_id != me.id {
            return Err(format!(
                "this is node '{}', not the node you meant",
                me.name
            ));
        }
        if hs.cluster_id == me.cluster_id {
            return Ok(());
        }
        if hs.cluster_id == 0 {
            return Err("sender has not joined a cluster".into());
        }
        // A cluster wants us: fine if we have not joined any, or hold nothing of our own.
        let (reply, rx) = oneshot::channel();
        if self
            .inner
            .raft_tx
            .send(Input::Adopt {
                cluster_id: hs.cluster_id,
                reply,
            })
            .is_err()
        {
            return Err("node is shutting down".into());
        }
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(format!(
                "node '{}' belongs to another cluster and holds data; remove it with LEAVE {} or wipe its data dir",
                me.name, me.name
            )),
        }
    }

    /// Hands a peer's admitted raft connection to the raft thread, which reads it itself
    /// (`inbox`): its messages must come from `from` and be addressed to this node.
    fn hand_over(&self, stream: TcpStream, from: u64) -> io::Result<()> {
        let me = self.identity().id;
        let stream = stream.into_std()?;
        // Refused only when the raft thread is gone: the connection closes with it.
        let _ = self
            .inner
            .raft_tx
            .send(Input::PeerLink { from, me, stream });
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use protobuf::Message as _;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn handshake_roundtrip() {
        let h = Handshake {
            cluster_name: "kvd".into(),
            cluster_id: 99,
            from_id: 1,
            from_name: "node0".into(),
            from_addr: "127.0.0.1:19000".into(),
            to_id: 2,
            purpose: Purpose::Snapshot,
            authenticated: true,
            nonce: nonce(),
        };
        let bytes = h.encode();
        let mut r = &bytes[..];
        assert_eq!(Handshake::read(&mut r).await.unwrap(), h);
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(Handshake::read(&mut &bad[..]).await.is_err());
    }

    fn handshake(authenticated: bool) -> Handshake {
        Handshake {
            cluster_name: "kvd".into(),
            cluster_id: 7,
            from_id: 1,
            from_name: "a".into(),
            from_addr: "127.0.0.1:1".into(),
            to_id: 2,
            purpose: Purpose::Raft,
            authenticated,
            nonce: nonce(),
        }
    }

    /// Runs the challenge (acceptor) against the proof (dialer) over an in-memory pipe.
    async fn exchange(acceptor: &str, dialer: &str) -> (io::Result<bool>, io::Result<()>) {
        let (mut a, mut d) = tokio::io::duplex(1024);
        let hs = handshake(true);
        let (ka, kd) = (
            ClusterKey::new(acceptor.as_bytes()),
            ClusterKey::new(dialer.as_bytes()),
        );
        let acc = async {
            let r = challenge(&mut a, &ka, &hs).await;
            let verdict = match &r {
                Ok(true) => None,
                _ => Some("peer could not prove the cluster secret"),
            };
            let _ = write_verdict(&mut a, verdict).await;
            r
        };
        // The dialer's end is dropped when it gives up, as a real connection is closed.
        let hs2 = hs.clone();
        let dial = async move {
            prove(&mut d, &kd, &hs2).await?;
            read_verdict(&mut d).await
        };
        tokio::join!(acc, dial)
    }

    #[tokio::test]
    async fn only_a_peer_that_knows_the_secret_gets_through_either_way() {
        let (acc, dial) = exchange("s3cret", "s3cret").await;
        assert!(acc.unwrap());
        dial.unwrap();
        // A dialer with the wrong secret learns the acceptor is not its cluster, and never
        // answers; the acceptor is never convinced.
        let (acc, dial) = exchange("s3cret", "wrong").await;
        assert!(!matches!(acc, Ok(true)));
        let err = dial.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            err.to_string().contains("does not know the cluster secret"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_answer_cannot_be_replayed_on_another_connection() {
        // Record a good dialer's answer to one challenge...
        let key = ClusterKey::new(b"k");
        let hs = handshake(true);
        let (mut a, mut d) = tokio::io::duplex(1024);
        let (ok, _) = tokio::join!(challenge(&mut a, &key, &hs), prove(&mut d, &key, &hs));
        assert!(ok.unwrap());
        // ...then send the same handshake and a stale answer to a new challenge: refused.
        let (mut a, mut d) = tokio::io::duplex(1024);
        let stale = key.tag(b"kvd-dialer", &hs.encode(), &[0u8; 16]).unwrap();
        let attacker = async {
            let mut challenge_bytes = [0u8; 1 + 16 + 32];
            d.read_exact(&mut challenge_bytes).await.unwrap();
            d.write_all(&stale).await.unwrap();
        };
        let (ok, ()) = tokio::join!(challenge(&mut a, &key, &hs), attacker);
        assert!(!ok.unwrap());
    }

    #[tokio::test]
    async fn published_frames_roundtrip_and_refuse_overruns() {
        let p = Published {
            sharded: true,
            channel: bytes::Bytes::from_static(b"ch"),
            message: bytes::Bytes::from_static(b"hello"),
        };
        let mut buf = BytesMut::new();
        p.encode(&mut buf);
        assert_eq!(Some(buf.len()), p.frame_len());
        let mut r = &buf[..];
        assert_eq!(Published::read(&mut r).await.unwrap(), Some(p));
        assert_eq!(Published::read(&mut r).await.unwrap(), None);
        // A channel length past the frame's end is refused, not read past.
        let mut bad = buf.to_vec();
        bad[5..9].copy_from_slice(&100u32.to_be_bytes());
        assert!(Published::read(&mut &bad[..]).await.is_err());
    }

    #[test]
    fn frames_are_length_prefixed_protobuf() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.to = 2;
        m.from = 1;
        m.term = 7;
        let mut buf = BytesMut::new();
        let n = encode_frame(&mut buf, &m);
        assert_eq!(n, buf.len());
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        assert_eq!(len + 4, buf.len());
        assert_eq!(Message::parse_from_bytes(&buf[4..]).unwrap(), m);
    }
}
