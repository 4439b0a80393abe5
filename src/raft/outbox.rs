//! One peer's outbound bytes: encoded frames waiting for the peer's connection, written by
//! whoever holds the lock, in order.
//!
//! The raft thread appends a Ready's messages and, when the connection is up and little is
//! waiting, writes them to the socket itself (a non-blocking `try_write`), so a small append or
//! an answer to one leaves without waking the peer's writer task: one thread hand-off fewer on
//! each side of a replicated write. What the socket does not take at once is left to the writer,
//! which waits for the socket to drain. Both write from the front of the one buffer under its
//! lock, so frames go out whole and in order whoever writes them.
//!
//! A lost connection loses what was waiting (raft-rs is told the peer is unreachable and resends
//! what still matters), so a reconnect always starts at a frame boundary.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, BytesMut};
use raft::eraftpb::Message;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::wire::encode_frame;

/// The raft thread writes to the socket itself only while this much at most is waiting: bigger
/// batches (a catch-up, a burst at high load) are the writer's, off the raft thread.
const DIRECT_BYTES: usize = 256 * 1024;
/// The writer writes at most this much per hold of the lock, so the raft thread never waits
/// long to append.
const WRITE_CHUNK: usize = 256 * 1024;
/// An emptied buffer bigger than this is let go (a peer that was down may have left up to the
/// queue's limit behind), rather than kept for good.
const KEEP_CAPACITY: usize = 4 * 1024 * 1024;

/// The outcome of one attempt to write what is waiting.
pub enum Drained {
    /// Nothing is left.
    Empty,
    /// The socket is full: wait until it is writable.
    Full,
    /// More is waiting (the chunk limit was reached): try again.
    More,
    /// No connection, or it failed: reconnect.
    Lost(io::Error),
}

#[derive(Default)]
struct State {
    pending: BytesMut,
    stream: Option<Arc<TcpStream>>,
    closed: bool,
}

impl State {
    /// Drops what is waiting; returns whether anything was.
    fn discard(&mut self) -> bool {
        let dropped = !self.pending.is_empty();
        self.pending.clear();
        self.release();
        dropped
    }

    /// Lets an empty, oversized buffer go.
    fn release(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > KEEP_CAPACITY {
            self.pending = BytesMut::new();
        }
    }
}

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    wake: Notify,
}

impl Outbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Outbox::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends messages (the raft thread). Returns false, and appends nothing, when they would
    /// take the waiting bytes past `limit`: the peer is too slow or down.
    pub fn push(&self, msgs: &[Message], limit: usize) -> bool {
        let mut st = self.lock();
        let before = st.pending.len();
        for m in msgs {
            encode_frame(&mut st.pending, m);
        }
        if st.pending.len() > limit {
            st.pending.truncate(before);
            return false;
        }
        if st.pending.len() <= DIRECT_BYTES && st.stream.is_some() {
            match write_some(&mut st, usize::MAX) {
                Drained::Empty => return true,
                Drained::Full | Drained::More | Drained::Lost(_) => {}
            }
        }
        drop(st);
        self.wake.notify_one();
        true
    }

    /// Hands the writer's new connection over. Whatever was waiting from before is dropped
    /// (it may end inside a frame the old connection took part of): returns whether anything was.
    pub fn connected(&self, stream: Arc<TcpStream>) -> bool {
        let mut st = self.lock();
        st.stream = Some(stream);
        st.discard()
    }

    /// The connection is gone (or never came): drops it and what was waiting; returns whether
    /// anything was.
    pub fn lost(&self) -> bool {
        let mut st = self.lock();
        st.stream = None;
        st.discard()
    }

    /// The writer's step: writes up to one chunk of what is waiting.
    pub fn drain(&self) -> Drained {
        let mut st = self.lock();
        write_some(&mut st, WRITE_CHUNK)
    }

    /// Waits until something is appended (or the outbox is closed): also what a writer waiting
    /// for a full socket listens to, so a peer that left stops its writer even then.
    pub async fn appended(&self) {
        self.wake.notified().await
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The peer left the member list: its writer stops.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.discard();
        drop(st);
        self.wake.notify_one();
    }
}

/// Writes from the front of `pending` until it is empty, the socket is full, `chunk` bytes went,
/// or the connection fails.
fn write_some(st: &mut State, chunk: usize) -> Drained {
    let Some(stream) = st.stream.clone() else {
        return Drained::Lost(io::Error::new(io::ErrorKind::NotConnected, "not connected"));
    };
    let mut written = 0;
    while !st.pending.is_empty() {
        if written >= chunk {
            return Drained::More;
        }
        let end = st.pending.len().min(chunk - written);
        match stream.try_write(&st.pending[..end]) {
            Ok(0) => {
                return Drained::Lost(io::Error::new(io::ErrorKind::WriteZero, "peer closed"));
            }
            Ok(n) => {
                st.pending.advance(n);
                written += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drained::Full,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Drained::Lost(e),
        }
    }
    st.release();
    Drained::Empty
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::Message as _;
    use raft::eraftpb::MessageType;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    fn msg(to: u64, index: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppendResponse);
        m.to = to;
        m.index = index;
        m
    }

    /// The next frame; fails the test when none comes within 10 s.
    async fn read_frame(s: &mut TcpStream) -> Message {
        let read = async {
            let len = s.read_u32().await.expect("length") as usize;
            let mut buf = vec![0; len];
            s.read_exact(&mut buf).await.expect("frame");
            Message::parse_from_bytes(&buf).expect("message")
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("a frame within 10 s")
    }

    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        (Arc::new(a.expect("connect")), b.expect("accept").0)
    }

    #[tokio::test]
    async fn a_connected_outbox_writes_at_once_in_order() {
        let out = Outbox::new();
        let (tx, mut rx) = pair().await;
        assert!(!out.connected(tx));
        assert!(out.push(&[msg(2, 1), msg(2, 2)], QUEUE_TEST_LIMIT));
        assert!(out.push(&[msg(2, 3)], QUEUE_TEST_LIMIT));
        // No writer task runs here: the frames went out in push itself.
        for want in 1..=3 {
            assert_eq!(read_frame(&mut rx).await.index, want);
        }
        assert!(matches!(out.drain(), Drained::Empty));
    }

    #[tokio::test]
    async fn waiting_bytes_are_bounded_and_dropped_with_the_connection() {
        let out = Outbox::new();
        let one = 4 + msg(2, 1).compute_size() as usize;
        assert!(out.push(&[msg(2, 1)], 2 * one));
        assert!(out.push(&[msg(2, 2)], 2 * one));
        assert!(!out.push(&[msg(2, 3)], 2 * one), "past the limit");
        assert!(matches!(out.drain(), Drained::Lost(_)), "no connection yet");
        // A new connection starts clean: the frames from before are dropped, not sent.
        let (tx, mut rx) = pair().await;
        assert!(out.connected(tx));
        assert!(out.push(&[msg(2, 4)], 2 * one));
        assert_eq!(read_frame(&mut rx).await.index, 4);
        assert!(!out.lost());
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_is_left_for_the_writer() {
        let out = Outbox::new();
        let (tx, mut rx) = pair().await;
        out.connected(tx.clone());
        let mut big = msg(2, 0);
        big.set_msg_type(MessageType::MsgAppend);
        let e = raft::eraftpb::Entry {
            data: vec![7u8; 64 * 1024].into(),
            ..Default::default()
        };
        big.entries = vec![e; 8].into();
        let n = 64;
        for i in 0..n {
            big.index = i;
            assert!(out.push(std::slice::from_ref(&big), usize::MAX));
        }
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..n {
                got.push(read_frame(&mut rx).await.index);
            }
            got
        });
        loop {
            match out.drain() {
                Drained::Empty => break,
                Drained::More => {}
                Drained::Full => tx.writable().await.expect("writable"),
                Drained::Lost(e) => panic!("lost: {e}"),
            }
        }
        assert_eq!(reader.await.expect("reader"), (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn a_big_backlog_is_let_go_once_dropped() {
        let out = Outbox::new();
        let mut big = msg(2, 0);
        big.set_msg_type(MessageType::MsgAppend);
        big.entries = vec![
            raft::eraftpb::Entry {
                data: vec![1u8; 1024 * 1024].into(),
                ..Default::default()
            };
            8
        ]
        .into();
        assert!(out.push(&[big], usize::MAX));
        assert!(out.lock().pending.capacity() > KEEP_CAPACITY);
        assert!(out.lost());
        assert!(out.lock().pending.capacity() <= KEEP_CAPACITY);
    }

    const QUEUE_TEST_LIMIT: usize = 1 << 20;
}
