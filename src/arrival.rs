//! When a client's bytes reached this node: the kernel's receive timestamp of what a read took.
//!
//! redis-server runs every client on one event loop, so commands sent back to back on different
//! connections run in the order they arrived; its blocked clients are served in that order. kvd
//! runs connections on several threads, so two commands that arrive a microsecond apart can be
//! looked at in either order. Where order between connections matters (the queue of clients
//! blocked on a key, `blocking`), kvd orders by this timestamp instead of by when a thread got to
//! the command.
//!
//! On Linux the socket asks for receive timestamps (`SO_TIMESTAMPNS`): each skb is stamped when
//! the kernel takes it in (on loopback, in the sender's `send`), and `recvmsg` on a TCP socket
//! returns the stamp of the last skb it read. Elsewhere, or when a read brings no stamp, the
//! time of the read stands in (later than the true arrival, never earlier).

use std::io;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicI32, AtomicU64};

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME, the clock the kernel stamps with).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Arrival(pub u64);

impl Arrival {
    /// Now, on the kernel's stamping clock.
    pub fn now() -> Arrival {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Arrival(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// Asks the kernel to stamp what `socket` receives (a listener's accepted sockets inherit it).
/// Failing is harmless: reads then fall back to the time of the read.
pub fn enable(socket: &impl std::os::fd::AsRawFd) {
    #[cfg(target_os = "linux")]
    {
        let on: libc::c_int = 1;
        // SAFETY: a valid fd and a c_int option value of the size passed.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// Reads what `stream` has into `buf`'s spare capacity (waiting until it has something), as
/// `read_buf` does: `Ok((0, _))` at the end of the stream. Cancel-safe: nothing is read unless
/// it returns.
pub async fn read(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<(usize, Arrival)> {
    let (n, stamp) = read_stamp(stream, buf).await?;
    Ok((n, stamp.unwrap_or_else(Arrival::now)))
}

/// A connection's input that has arrived and not yet run, as other connections see it: what
/// waits in its socket (peeked) and what its loop has read and not run. A command whose
/// answer depends on other connections' state (PUBLISH's count, INFO's connected_clients)
/// waits, briefly, for those whose input arrived before its own, as Redis's one event loop
/// would have run it first.
pub struct Unrun {
    /// The socket (-1 until set, and once the connection ends: the fd may then be reused).
    fd: AtomicI32,
    /// When the input read and not yet run arrived; 0 if none, `READING` while a read is
    /// under way or after it found the end of the stream.
    at: AtomicU64,
}

/// `Unrun::at` while a read is under way: input that may have arrived at any time and has not
/// run.
const READING: u64 = 1;
/// `Unrun::at` once a read has found the end of the stream: the connection is closing.
const ENDED: u64 = 2;

/// What of a connection's input that arrived by some time has not run yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pending {
    Nothing,
    /// Commands (the connection may be busy with an earlier one, a write waiting for raft).
    Input,
    /// The end of the stream: the connection closes once it runs, with nothing to wait for.
    Close,
}

impl Default for Unrun {
    fn default() -> Unrun {
        Unrun {
            fd: AtomicI32::new(-1),
            at: AtomicU64::new(0),
        }
    }
}

impl Unrun {
    /// The connection reads from `fd` from now on.
    pub fn open(&self, fd: std::os::fd::RawFd) {
        self.fd.store(fd, SeqCst);
    }

    /// The connection ends: its socket is no longer looked at (call before it closes).
    pub fn close(&self) {
        self.fd.store(-1, SeqCst);
    }

    /// Everything read has run (or the connection is blocked and runs nothing more for now).
    pub fn ran(&self) {
        self.at.store(0, SeqCst);
    }

    /// What input that arrived by `by` has not run: read and waiting, or in the socket (the
    /// end of the stream included).
    pub fn pending_since(&self, by: Arrival) -> Pending {
        let at = self.at.load(SeqCst);
        if at == ENDED {
            return Pending::Close;
        }
        if at != 0 && at <= by.0 {
            return Pending::Input;
        }
        match peek_unread(self.fd.load(SeqCst)) {
            Some(Arrival(0)) => Pending::Close,
            Some(t) if t <= by => Pending::Input,
            _ => Pending::Nothing,
        }
    }
}

/// As `read`, for a connection loop that runs what it reads before reading again (and then
/// calls `unrun.ran()`): `unrun` is marked from before the bytes leave the socket, so the
/// input is always in one of the two places `Unrun::pending_since` looks. At the end of the
/// stream it stays marked (the connection is about to close).
pub async fn read_marked(
    stream: &TcpStream,
    buf: &mut BytesMut,
    unrun: &Unrun,
) -> io::Result<(usize, Arrival)> {
    if buf.capacity() == buf.len() {
        buf.reserve(4096);
    }
    stream
        .async_io(Interest::READABLE, || {
            unrun.at.store(READING, SeqCst);
            let r =
                recv_stamped(stream, buf).map(|(n, stamp)| (n, stamp.unwrap_or_else(Arrival::now)));
            match &r {
                Ok((0, _)) => unrun.at.store(ENDED, SeqCst),
                Ok((_, at)) => unrun.at.store(at.0.max(ENDED + 1), SeqCst),
                Err(_) => unrun.ran(),
            }
            r
        })
        .await
}

/// As `read`, with the kernel's stamp if the read brought one. The kernel turns stamping on
/// a moment after the first socket asks for it (a deferred static key), so the first reads of a
/// process may come without one.
async fn read_stamp(
    stream: &TcpStream,
    buf: &mut BytesMut,
) -> io::Result<(usize, Option<Arrival>)> {
    if buf.capacity() == buf.len() {
        buf.reserve(4096);
    }
    stream
        .async_io(Interest::READABLE, || recv_stamped(stream, buf))
        .await
}

/// One `recvmsg` into `buf`'s spare capacity; `WouldBlock` when there is nothing yet.
#[cfg(target_os = "linux")]
fn recv_stamped(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<(usize, Option<Arrival>)> {
    use std::os::fd::AsRawFd;
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    // Room for one cmsghdr and a timespec (CMSG_SPACE(16) is 32 on 64-bit Linux), aligned.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: the iovec points at `spare`, writable for its length; the control buffer at
    // `control`. recvmsg writes at most those lengths.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    // SAFETY: `msg` was just filled by recvmsg and its control buffer is `control`, alive.
    let stamp = unsafe { stamp_of(&raw const msg) };
    Ok((n, stamp))
}

/// The stamp of the first byte `fd` has received and not yet read, if it has one: a peek
/// (`MSG_PEEK`) that leaves the byte where it is; `Arrival(0)` if the peer has closed (the end
/// of the stream waits). `None` when nothing is waiting, the fd is no longer a socket, or the
/// bytes came without a stamp.
#[cfg(target_os = "linux")]
pub fn peek_unread(fd: std::os::fd::RawFd) -> Option<Arrival> {
    if fd < 0 {
        return None;
    }
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: the iovec points at `byte`, writable for 1 byte; the control buffer at `control`.
    // A peek consumes nothing; on an fd that is not a socket it fails (ENOTSOCK).
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    if n == 0 {
        return Some(Arrival(0));
    }
    // SAFETY: as in `recv_stamped`.
    unsafe { stamp_of(&raw const msg) }
}

#[cfg(not(target_os = "linux"))]
pub fn peek_unread(_fd: i32) -> Option<Arrival> {
    None
}

/// The `SCM_TIMESTAMPNS` stamp among a received message's control messages.
///
/// # Safety
/// `msg` points at a msghdr that `recvmsg` filled, whose control buffer is still alive.
#[cfg(target_os = "linux")]
unsafe fn stamp_of(msg: *const libc::msghdr) -> Option<Arrival> {
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel wrote into `msg`'s control buffer, with
    // the kernel's own macros; the timespec is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let ns = (ts.tv_sec as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.tv_nsec as u64);
                stamp = (ns > 0).then_some(Arrival(ns));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    stamp
}

#[cfg(not(target_os = "linux"))]
fn recv_stamped(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<(usize, Option<Arrival>)> {
    let n = stream.try_read_buf(buf)?;
    Ok((n, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn reads_carry_the_kernels_stamp_in_send_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        enable(&listener);
        let addr = listener.local_addr().unwrap();
        let mut a = TcpStream::connect(addr).await.unwrap();
        let (sa, _) = listener.accept().await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        let (sb, _) = listener.accept().await.unwrap();
        // Until the kernel has turned stamping on (deferred after the first request), reads
        // come without a stamp: wait for a stamped one, with a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut warm = BytesMut::new();
        loop {
            a.write_all(b"warm").await.unwrap();
            warm.clear();
            if read_stamp(&sa, &mut warm).await.unwrap().1.is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no read came with a kernel stamp"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let before = Arrival::now();
        a.write_all(b"first").await.unwrap();
        b.write_all(b"second").await.unwrap();
        let after = Arrival::now();
        // Read in the opposite order: the stamps still tell which came first.
        let mut buf = BytesMut::new();
        let (n, tb) = read(&sb, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"second");
        buf.clear();
        let (n, ta) = read(&sa, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"first");
        assert!(
            before <= ta && ta < tb && tb <= after,
            "{before:?} {ta:?} {tb:?} {after:?}"
        );
        // A peek sees the stamp of what waits unread, and leaves it there.
        assert_eq!(peek_unread(std::os::fd::AsRawFd::as_raw_fd(&sa)), None);
        a.write_all(b"third").await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let peeked = loop {
            if let Some(at) = peek_unread(std::os::fd::AsRawFd::as_raw_fd(&sa)) {
                break at;
            }
            assert!(std::time::Instant::now() < deadline, "nothing to peek");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        };
        buf.clear();
        let (n, tc) = read(&sa, &mut buf).await.unwrap();
        assert_eq!((&buf[..n], tc), (&b"third"[..], peeked));
        assert!(peeked > tb, "{peeked:?} {tb:?}");
        drop(a);
        buf.clear();
        assert_eq!(read(&sa, &mut buf).await.unwrap().0, 0, "end of stream");
    }

    /// Polls `unrun` until it says `want` (the kernel moves loopback bytes at once, but a
    /// deadline keeps a slow machine from failing the test).
    async fn until_pending(unrun: &Unrun, by: Arrival, want: Pending) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while unrun.pending_since(by) != want {
            assert!(std::time::Instant::now() < deadline, "never {want:?}");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn unrun_input_and_a_close_are_told_apart() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut a = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (sa, _) = listener.accept().await.unwrap();
        let unrun = Unrun::default();
        unrun.open(std::os::fd::AsRawFd::as_raw_fd(&sa));
        assert_eq!(unrun.pending_since(Arrival::now()), Pending::Nothing);
        a.write_all(b"PING\r\n").await.unwrap();
        // (In the socket it is pending too, once the kernel stamps: see the test above.)
        let mut buf = BytesMut::new();
        read_marked(&sa, &mut buf, &unrun).await.unwrap();
        // Read and not yet run: pending for a command that arrived after it.
        assert_eq!(unrun.pending_since(Arrival(u64::MAX)), Pending::Input);
        unrun.ran();
        assert_eq!(unrun.pending_since(Arrival(u64::MAX)), Pending::Nothing);
        drop(a);
        // In the socket, then read: a close either way, and still once the fd is let go.
        until_pending(&unrun, Arrival(u64::MAX), Pending::Close).await;
        buf.clear();
        assert_eq!(read_marked(&sa, &mut buf, &unrun).await.unwrap().0, 0);
        unrun.close();
        assert_eq!(unrun.pending_since(Arrival(u64::MAX)), Pending::Close);
    }
}
