//! A cuttable network between kvd nodes, made of one TCP proxy per node.
//!
//! Each node listens for peers on its real `--raft-addr` but advertises (`--advertise-raft-addr`)
//! the port of its proxy, so every peer connection to it goes through the proxy. Every kvd peer
//! connection starts with a handshake naming the sender (`Handshake::from_name`); the proxy
//! reads it, then forwards it unchanged and pipes bytes both ways. A shared partition table of
//! blocked (from, to) links decides what may pass: a new connection on a blocked link is closed
//! right after its handshake, and blocking a link kills the connections already on it.
//!
//! kvd's transport sends raft messages from A to B only on A's own outbound connection to B (the
//! way back carries only the handshake verdict), so blocking (A, B) is a one-way cut: B stops
//! hearing from A while A still hears from B.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use kvd::raft::transport::Handshake;

/// Longest a new connection may take to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A handshake is well under this size (names and addresses are at most 255 bytes each).
const MAX_HANDSHAKE: usize = 1024;

/// The partition table and every live proxied connection, shared by all proxies of one cluster.
#[derive(Clone, Default)]
pub struct Net {
    inner: Arc<Mutex<NetState>>,
    /// Connections closed right after their handshake because their link was blocked.
    pub refused: Arc<AtomicU64>,
    /// Live connections killed because their link became blocked.
    pub killed: Arc<AtomicU64>,
}

#[derive(Default)]
struct NetState {
    blocked: HashSet<(String, String)>,
    conns: HashMap<u64, LiveConn>,
    next_id: u64,
}

/// One proxied connection: the socket from the sending node and the one to the receiving node.
struct LiveConn {
    from: String,
    to: String,
    downstream: TcpStream,
    upstream: TcpStream,
}

impl LiveConn {
    fn kill(&self) {
        let _ = self.downstream.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

impl Net {
    pub fn new() -> Net {
        Net::default()
    }

    fn state(&self) -> MutexGuard<'_, NetState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks the link `from -> to` (messages sent by `from` no longer reach `to`).
    pub fn block(&self, from: &str, to: &str) {
        let mut st = self.state();
        st.blocked.insert((from.to_string(), to.to_string()));
        let mut n = 0;
        for c in st.conns.values() {
            if c.from == from && c.to == to {
                c.kill();
                n += 1;
            }
        }
        self.killed.fetch_add(n, Ordering::Relaxed);
    }

    /// Blocks both directions between `a` and `b`.
    pub fn cut(&self, a: &str, b: &str) {
        self.block(a, b);
        self.block(b, a);
    }

    /// Cuts every link between a node of `side` and a node of `rest`.
    pub fn split(&self, side: &[String], rest: &[String]) {
        for a in side {
            for b in rest {
                self.cut(a, b);
            }
        }
    }

    /// Unblocks every link.
    pub fn heal(&self) {
        self.state().blocked.clear();
    }

    /// The blocked links, sorted (for the fault log).
    pub fn blocked(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self.state().blocked.iter().cloned().collect();
        v.sort();
        v
    }

    /// Starts the proxy that carries every peer connection to node `to`. Its target (the node's
    /// real raft port) is set later with [`Proxy::set_target`]: until then it refuses connections.
    pub fn proxy(&self, to: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let proxy = Proxy {
            to: to.to_string(),
            port,
            target: Arc::new(AtomicU16::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            net: self.clone(),
        };
        let (net, name, target, stop) = (
            self.clone(),
            proxy.to.clone(),
            proxy.target.clone(),
            proxy.stop.clone(),
        );
        thread::Builder::new()
            .name(format!("proxy-{to}"))
            .spawn(move || accept_loop(listener, net, name, target, stop))
            .expect("spawn proxy thread");
        proxy
    }

    /// Registers a connection unless its link is blocked (atomically with [`Net::block`], so a
    /// connection cannot slip through while its link is being cut).
    fn register(&self, conn: LiveConn) -> Option<u64> {
        let mut st = self.state();
        if st.blocked.contains(&(conn.from.clone(), conn.to.clone())) {
            conn.kill();
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        st.next_id += 1;
        let id = st.next_id;
        st.conns.insert(id, conn);
        Some(id)
    }

    fn deregister(&self, id: u64) {
        if let Some(c) = self.state().conns.remove(&id) {
            c.kill();
        }
    }

    fn kill_to(&self, to: &str) {
        let st = self.state();
        for c in st.conns.values().filter(|c| c.to == to) {
            c.kill();
        }
    }
}

/// The proxy in front of one node's raft port.
pub struct Proxy {
    pub to: String,
    /// Where peers connect: the node's advertised raft port.
    pub port: u16,
    target: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    net: Net,
}

impl Proxy {
    /// The address to pass as the node's `--advertise-raft-addr`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The node's real raft port, once it is known (the harness picks ports when it starts the
    /// node, and may pick again if one was taken).
    pub fn set_target(&self, raft_port: u16) {
        self.target.store(raft_port, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.net.kill_to(&self.to);
    }
}

fn accept_loop(
    listener: TcpListener,
    net: Net,
    to: String,
    target: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
) {
    for incoming in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = incoming else { continue };
        let (net, to, target) = (net.clone(), to.clone(), target.clone());
        let _ = thread::Builder::new()
            .name(format!("proxy-conn-{to}"))
            .spawn(move || {
                let _ = serve(stream, &net, &to, &target);
            });
    }
}

/// One connection: read the handshake, connect to the node, register, then pipe both ways until
/// either side closes or the link is cut.
fn serve(mut downstream: TcpStream, net: &Net, to: &str, target: &AtomicU16) -> io::Result<()> {
    downstream.set_nodelay(true)?;
    downstream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut buf = Vec::with_capacity(128);
    let hs = loop {
        if let Some(hs) = parse_handshake(&buf)? {
            break hs;
        }
        if buf.len() > MAX_HANDSHAKE {
            return Err(io::Error::new(ErrorKind::InvalidData, "handshake too long"));
        }
        let mut chunk = [0u8; 512];
        let n = downstream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let port = target.load(Ordering::SeqCst);
    if port == 0 {
        return Ok(());
    }
    let real = SocketAddr::from(([127, 0, 0, 1], port));
    let mut upstream = TcpStream::connect_timeout(&real, Duration::from_secs(2))?;
    upstream.set_nodelay(true)?;
    downstream.set_read_timeout(None)?;
    let Some(id) = net.register(LiveConn {
        from: hs.from_name.clone(),
        to: to.to_string(),
        downstream: downstream.try_clone()?,
        upstream: upstream.try_clone()?,
    }) else {
        return Ok(());
    };
    // The handshake (and anything sent after it already) goes on unchanged.
    let result = upstream.write_all(&buf).and_then(|()| {
        let (mut down_r, mut up_w) = (downstream.try_clone()?, upstream.try_clone()?);
        let forward = thread::Builder::new()
            .name(format!("proxy-pipe-{to}"))
            .spawn(move || {
                let _ = io::copy(&mut down_r, &mut up_w);
                let _ = up_w.shutdown(Shutdown::Both);
                let _ = down_r.shutdown(Shutdown::Both);
            })?;
        let _ = io::copy(&mut upstream, &mut downstream);
        let _ = downstream.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        let _ = forward.join();
        Ok(())
    });
    net.deregister(id);
    result
}

/// The handshake at the start of `buf`, `None` if more bytes are needed. kvd's own parser reads
/// from a byte slice without ever waiting, so one poll with a no-op waker runs it to the end.
fn parse_handshake(buf: &[u8]) -> io::Result<Option<Handshake>> {
    let mut reader = buf;
    let mut fut = std::pin::pin!(Handshake::read(&mut reader));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(hs)) => Ok(Some(hs)),
        Poll::Ready(Err(e)) if e.kind() == ErrorKind::UnexpectedEof => Ok(None),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => unreachable!("reading a byte slice never waits"),
    }
}
