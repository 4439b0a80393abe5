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
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel wrote into `msg`'s control buffer, with
    // the kernel's own macros; the timespec is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let ns = (ts.tv_sec as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.tv_nsec as u64);
                stamp = (ns > 0).then_some(Arrival(ns));
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Ok((n, stamp))
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
        drop(a);
        buf.clear();
        assert_eq!(read(&sa, &mut buf).await.unwrap().0, 0, "end of stream");
    }
}
