//! The raft thread's inbox: the inputs other threads send it (`InputTx`) and the peers'
//! connections it reads itself.
//!
//! Once a peer's connection has passed its handshake (`transport::serve_conn`), it is handed to
//! the raft thread (`Input::PeerLink`), which registers it with its own poller (mio, epoll on
//! Linux) and decodes the peer's frames where it steps them: a message from a peer costs no
//! wake-up of another thread on its way in. The raft thread sleeps in that poller, so a sender of
//! an input wakes it through the poller's waker, and only when it sleeps (`Wake::sleeping`).
//!
//! Frames are `u32 length (BE) ++ protobuf Message`; a length over `MAX_FRAME` is refused before
//! anything is allocated for it, and a message whose sender or receiver is not the one the
//! handshake named closes the connection. Each link is read at most `READ_BUDGET` bytes per
//! sweep, so one busy peer cannot hold up the others or the thread's own inputs.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::mpsc::{self, TryRecvError};
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use protobuf::Message as _;
use raft::eraftpb::Message;
use slog::{Logger, debug, warn};

use super::Input;
use super::wire::{MAX_FRAME, invalid};

const WAKER: Token = Token(0);
/// Bytes of a link's read buffer while its frames are small.
#[cfg(not(test))]
const READ_BUF: usize = 256 * 1024;
/// Free space below which a read first moves the unread bytes to the front.
#[cfg(not(test))]
const MIN_READ: usize = 16 * 1024;
/// Bytes read from one link per sweep at most.
#[cfg(not(test))]
const READ_BUDGET: usize = 4 * 1024 * 1024;
// Small in tests, so that a few KiB exercise the buffer's growth and the budget.
#[cfg(test)]
const READ_BUF: usize = 4096;
#[cfg(test)]
const MIN_READ: usize = 1024;
#[cfg(test)]
const READ_BUDGET: usize = 4096;

/// How a sender wakes the raft thread.
struct Wake {
    waker: Waker,
    /// Set by the raft thread just before it sleeps in the poller, cleared when it wakes.
    sleeping: AtomicBool,
}

/// The sending end of the inbox, cheap to clone for every thread and connection.
#[derive(Clone)]
pub struct InputTx {
    tx: mpsc::Sender<Input>,
    wake: Arc<Wake>,
}

impl InputTx {
    /// Queues an input; an error gives it back when the raft thread is gone.
    pub fn send(&self, input: Input) -> Result<(), mpsc::SendError<Input>> {
        self.tx.send(input)?;
        // Pairs with the fence in `Inbox::wait`: either the raft thread sees the input before it
        // sleeps, or this sees it sleeping.
        fence(Ordering::SeqCst);
        if self.wake.sleeping.swap(false, Ordering::SeqCst) {
            let _ = self.wake.waker.wake();
        }
        Ok(())
    }
}

/// No sender is left: the raft thread should stop.
#[derive(Debug)]
pub struct Disconnected;

/// The receiving end, owned by the raft thread.
pub struct Inbox {
    rx: mpsc::Receiver<Input>,
    wake: Arc<Wake>,
    poll: Poll,
    events: Events,
    links: HashMap<Token, Link>,
    next_token: usize,
    logger: Logger,
}

/// An inbox and its first sender.
pub fn channel(logger: Logger) -> io::Result<(InputTx, Inbox)> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let wake = Arc::new(Wake {
        waker,
        sleeping: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::channel();
    let inbox = Inbox {
        rx,
        wake: wake.clone(),
        poll,
        events: Events::with_capacity(64),
        links: HashMap::new(),
        next_token: 1,
        logger,
    };
    Ok((InputTx { tx, wake }, inbox))
}

impl Inbox {
    /// An input already queued, without waiting (peers' links are not read).
    pub fn try_recv(&self) -> Result<Input, TryRecvError> {
        self.rx.try_recv()
    }

    /// Takes over a peer's connection that passed its handshake: its messages must come from
    /// `from` and be addressed to `me`.
    pub fn add_link(&mut self, from: u64, me: u64, stream: std::net::TcpStream) {
        let token = Token(self.next_token);
        self.next_token = self.next_token.wrapping_add(1).max(1);
        let registered = stream.set_nonblocking(true).and_then(|()| {
            let mut stream = TcpStream::from_std(stream);
            self.poll
                .registry()
                .register(&mut stream, token, Interest::READABLE)
                .map(|()| stream)
        });
        match registered {
            // Ready at first: bytes may have arrived before it was registered.
            Ok(stream) => {
                self.links.insert(token, Link::new(stream, from, me));
            }
            Err(e) => {
                warn!(self.logger, "cannot watch a peer connection"; "from" => from, "error" => %e)
            }
        }
    }

    /// Reads, without waiting, what the peers sent since the last look; their messages are
    /// appended to `out`.
    pub fn read_peers(&mut self, out: &mut VecDeque<Input>) {
        self.poll_events(Some(Duration::ZERO));
        self.read_links(out);
    }

    /// Waits at most `timeout` for an input. A queued input is returned; peers' messages read
    /// meanwhile are appended to `out` (then `Ok(None)`, as on a timeout).
    pub fn wait(
        &mut self,
        timeout: Duration,
        out: &mut VecDeque<Input>,
    ) -> Result<Option<Input>, Disconnected> {
        if let Some(input) = self.queued()? {
            return Ok(Some(input));
        }
        self.read_links(out);
        // A link still ready spent its budget (within a big frame, maybe): its socket may not
        // signal again, so it is read again at once, not after a sleep.
        if !out.is_empty() || self.links.values().any(|l| l.ready) {
            return Ok(None);
        }
        self.wake.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if let Some(input) = self.queued()? {
            self.wake.sleeping.store(false, Ordering::SeqCst);
            return Ok(Some(input));
        }
        self.poll_events(Some(timeout));
        self.wake.sleeping.store(false, Ordering::SeqCst);
        self.read_links(out);
        self.queued()
    }

    fn queued(&self) -> Result<Option<Input>, Disconnected> {
        match self.rx.try_recv() {
            Ok(input) => Ok(Some(input)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(Disconnected),
        }
    }

    /// Marks the links the poller reports readable (edge-triggered: a link stays marked until
    /// a read finds it drained).
    fn poll_events(&mut self, timeout: Option<Duration>) {
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                warn!(self.logger, "raft poller failed"; "error" => %e);
            }
            return;
        }
        for event in self.events.iter() {
            if let Some(link) = self.links.get_mut(&event.token()) {
                link.ready = true;
            }
        }
    }

    fn read_links(&mut self, out: &mut VecDeque<Input>) {
        let mut closed = Vec::new();
        for (token, link) in self.links.iter_mut().filter(|(_, l)| l.ready) {
            if let Err(e) = link.read(out) {
                debug!(self.logger, "peer connection closed"; "from" => link.from, "error" => %e);
                closed.push(*token);
            }
        }
        for token in closed {
            if let Some(mut link) = self.links.remove(&token) {
                let _ = self.poll.registry().deregister(&mut link.stream);
            }
        }
    }
}

/// One peer's connection and the bytes read from it not yet decoded.
struct Link {
    stream: TcpStream,
    from: u64,
    me: u64,
    /// Unread bytes are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    ready: bool,
}

impl Link {
    fn new(stream: TcpStream, from: u64, me: u64) -> Self {
        Link {
            stream,
            from,
            me,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            ready: true,
        }
    }

    /// Reads until the socket has nothing more or the budget is spent (the link stays ready),
    /// appending each whole message to `out`. An error means the link is done.
    fn read(&mut self, out: &mut VecDeque<Input>) -> io::Result<()> {
        let mut budget = READ_BUDGET;
        loop {
            let wanted = self.decode(out)?;
            if budget == 0 {
                return Ok(());
            }
            self.make_room(wanted);
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.end += n;
                    budget = budget.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Decodes the whole frames buffered; returns the size of the frame begun (its header
    /// read), or 0.
    fn decode(&mut self, out: &mut VecDeque<Input>) -> io::Result<usize> {
        loop {
            let unread = &self.buf[self.start..self.end];
            let Some(header) = unread.first_chunk::<4>() else {
                return Ok(0);
            };
            let len = u32::from_be_bytes(*header) as usize;
            if len > MAX_FRAME {
                return Err(invalid("frame too large"));
            }
            let Some(body) = unread.get(4..4 + len) else {
                return Ok(4 + len);
            };
            let m = Message::parse_from_bytes(body).map_err(|e| invalid(&e.to_string()))?;
            if m.from != self.from || m.to != self.me {
                return Err(invalid(
                    "message addressed inconsistently with the handshake",
                ));
            }
            out.push_back(Input::Message(Box::new(m)));
            self.start += 4 + len;
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
                if self.buf.len() > READ_BUF {
                    // A big frame passed: give its memory back.
                    self.buf = vec![0; READ_BUF];
                }
            }
        }
    }

    /// Leaves free space after `end`: the unread bytes moved to the front, and the buffer grown
    /// to hold a frame of `wanted` bytes (at most `4 + MAX_FRAME`, checked by `decode`).
    fn make_room(&mut self, wanted: usize) {
        if self.buf.len() - self.end >= MIN_READ && self.start + wanted <= self.buf.len() {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.buf.len() < wanted {
            self.buf.resize(wanted, 0);
        } else if self.buf.len() == self.end {
            self.buf.resize(self.buf.len() + READ_BUF, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Instant;

    fn logger() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    fn frame(from: u64, to: u64, payload: usize) -> Vec<u8> {
        let m = Message {
            from,
            to,
            context: vec![7u8; payload].into(),
            ..Default::default()
        };
        let body = m.write_to_bytes().unwrap();
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        f
    }

    /// A connected pair: the inbox reads the accepted end, the test writes the other.
    fn linked(inbox: &mut Inbox, from: u64, me: u64) -> std::net::TcpStream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let writer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        inbox.add_link(from, me, accepted);
        writer
    }

    /// Waits (with a deadline) until `n` messages were read, or the link is gone.
    fn collect(inbox: &mut Inbox, n: usize) -> VecDeque<Input> {
        let mut out = VecDeque::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while out.len() < n && !inbox.links.is_empty() && Instant::now() < deadline {
            let _ = inbox.wait(Duration::from_millis(50), &mut out);
        }
        out
    }

    fn contexts(out: &VecDeque<Input>) -> Vec<usize> {
        out.iter()
            .map(|i| match i {
                Input::Message(m) => m.context.len(),
                _ => usize::MAX,
            })
            .collect()
    }

    #[test]
    fn frames_split_anyhow_arrive_whole_and_in_order() {
        let (_tx, mut inbox) = channel(logger()).unwrap();
        let mut w = linked(&mut inbox, 2, 1);
        // Small ones, one bigger than the read buffer, written in odd pieces.
        let sizes = [0, 10, 3 * READ_BUF, 5, 70_000];
        let bytes: Vec<u8> = sizes.iter().flat_map(|&s| frame(2, 1, s)).collect();
        for piece in bytes.chunks(9_973) {
            w.write_all(piece).unwrap();
        }
        let out = collect(&mut inbox, sizes.len());
        assert_eq!(contexts(&out), sizes);
        assert_eq!(inbox.links.len(), 1);
        let link = inbox.links.values().next().unwrap();
        assert_eq!(link.buf.len(), READ_BUF, "a big frame's buffer is let go");
    }

    #[test]
    fn a_link_left_with_bytes_after_its_budget_is_read_again_without_a_sleep() {
        let (_tx, mut inbox) = channel(logger()).unwrap();
        let mut w = linked(&mut inbox, 2, 1);
        // All of it in the kernel's buffers before the first read: no later arrival signals,
        // and each sweep's budget takes about one frame.
        let sizes = [2 * READ_BUDGET; 5];
        let bytes: Vec<u8> = sizes.iter().flat_map(|&s| frame(2, 1, s)).collect();
        w.write_all(&bytes).unwrap();
        let started = Instant::now();
        let mut got = VecDeque::new();
        while got.len() < sizes.len() && started.elapsed() < Duration::from_secs(60) {
            // Sleeping between the budget's sweeps would take 30 s each time.
            let mut out = VecDeque::new();
            let _ = inbox.wait(Duration::from_secs(30), &mut out);
            got.extend(out);
        }
        assert_eq!(contexts(&got), sizes);
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_huge_length_or_a_stranger_closes_the_link_unallocated() {
        let (_tx, mut inbox) = channel(logger()).unwrap();
        let mut w = linked(&mut inbox, 2, 1);
        w.write_all(&((MAX_FRAME + 1) as u32).to_be_bytes())
            .unwrap();
        let out = collect(&mut inbox, 1);
        assert!(out.is_empty());
        assert!(inbox.links.is_empty(), "an oversize frame closes the link");

        let mut w = linked(&mut inbox, 2, 1);
        let mut bytes = frame(2, 1, 1);
        bytes.extend(frame(3, 1, 2));
        bytes.extend(frame(2, 1, 3));
        w.write_all(&bytes).unwrap();
        let out = collect(&mut inbox, 3);
        assert_eq!(
            contexts(&out),
            [1],
            "what came before the stranger's message counts"
        );
        assert!(
            inbox.links.is_empty(),
            "a message from another sender closes the link"
        );
    }

    #[test]
    fn a_sender_wakes_the_waiting_thread() {
        let (tx, mut inbox) = channel(logger()).unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(Input::Shutdown).is_ok()
        });
        let started = Instant::now();
        let mut out = VecDeque::new();
        let mut got = None;
        while got.is_none() && started.elapsed() < Duration::from_secs(10) {
            got = inbox.wait(Duration::from_secs(20), &mut out).unwrap();
        }
        assert!(matches!(got, Some(Input::Shutdown)));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken, not timed out"
        );
        assert!(sender.join().unwrap());
        assert!(matches!(
            inbox.wait(Duration::from_millis(10), &mut out),
            Err(Disconnected)
        ));
    }
}
