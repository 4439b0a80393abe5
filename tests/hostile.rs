//! Hostile clients: a slowloris, ten thousand idle connections and a client that never reads its
//! replies must not stop others from being served, nor make the server's memory grow unbounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Resident memory of a process in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Lets this test process hold many sockets.
fn raise_fd_limit() {
    // SAFETY: plain libc calls on a struct we own.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn fd_limit() -> u64 {
    // SAFETY: as above.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// Times a PING on a fresh connection.
fn ping_time(node: &Node) -> Duration {
    let started = Instant::now();
    let mut c = node.raw();
    c.check(&["PING"], "+PONG\r\n");
    started.elapsed()
}

#[test]
fn slowloris_does_not_stall_other_clients() {
    let node = Node::single(&[]);
    let mut slow = TcpStream::connect(node.client_addr()).unwrap();
    slow.set_nodelay(true).unwrap();
    let request = b"*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$5\r\nloris\r\n";
    let mut worst = Duration::ZERO;
    for (i, byte) in request.iter().enumerate() {
        slow.write_all(&[*byte]).unwrap();
        // Between two bytes of the slow client, others are served as usual.
        if i % 4 == 0 {
            let started = Instant::now();
            let mut con = node.conn();
            let _: () = q(&mut con, &["SET", "fast", &i.to_string()]);
            let v: String = q(&mut con, &["GET", "fast"]);
            assert_eq!(v, i.to_string());
            worst = worst.max(started.elapsed());
        }
        // The slowness is the input under test, not a synchronisation.
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(worst < Duration::from_secs(2), "others waited {worst:?}");
    let mut reply = [0u8; 5];
    slow.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    slow.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n");
}

#[test]
fn ten_thousand_idle_connections() {
    raise_fd_limit();
    let wanted = 10_000usize;
    if fd_limit() < (wanted as u64) + 200 {
        eprintln!("skipping: this process may open only {} files", fd_limit());
        return;
    }
    let node = Node::single(&["--max-clients", "20000"]);
    let pid = node.pid().unwrap();
    let before = rss(pid);
    let mut idle = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        idle.push(TcpStream::connect(node.client_addr()).expect("connect"));
    }
    poll_until(
        Duration::from_secs(60),
        "the server to accept them all",
        || {
            let n = node.info_u64("clients", "connected_clients")?;
            (n as usize > wanted).then_some(())
        },
    );
    let took = ping_time(&node);
    assert!(
        took < Duration::from_secs(2),
        "PING took {took:?} with 10k idle clients"
    );
    let mut con = node.conn();
    let _: () = q(&mut con, &["SET", "still", "served"]);
    let grown = rss(pid).saturating_sub(before);
    assert!(
        grown < 300 * 1024 * 1024,
        "10k idle connections cost {} MiB",
        grown >> 20
    );
    drop(idle);
    poll_until(
        Duration::from_secs(30),
        "idle clients to be released",
        || (node.info_u64("clients", "connected_clients")? < 10).then_some(()),
    );
}

#[test]
fn a_client_that_never_reads_is_bounded_then_disconnected() {
    let node = Node::single(&["--client-stall-timeout-ms", "1500"]);
    let pid = node.pid().unwrap();
    let big = "x".repeat(1 << 20);
    let _: () = q(&mut node.conn(), &["SET", "big", &big]);
    let before = rss(pid);

    // 4000 GETs of 1 MiB: 4 GiB of replies, and this client reads none of them.
    let mut greedy = TcpStream::connect(node.client_addr()).unwrap();
    let one = encode_cmd(&["GET", "big"]);
    let mut pipeline = Vec::with_capacity(one.len() * 4000);
    for _ in 0..4000 {
        pipeline.extend_from_slice(&one);
    }
    greedy
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The server stops reading from a client it cannot write to, so this write may block.
    let _ = greedy.write_all(&pipeline);

    // Others are served meanwhile, and memory stays bounded.
    let mut peak = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let took = ping_time(&node);
        assert!(took < Duration::from_secs(2), "PING took {took:?}");
        peak = peak.max(rss(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 200 * 1024 * 1024,
        "memory grew by {} MiB",
        grown >> 20
    );
    // After the stall timeout the server hangs up on it.
    poll_until(
        Duration::from_secs(30),
        "the greedy client to be disconnected",
        || (node.info_u64("clients", "connected_clients")? <= 1).then_some(()),
    );
    drop(greedy);
}

#[test]
fn huge_lengths_are_refused_before_allocating() {
    let node = Node::single(&[]);
    let pid = node.pid().unwrap();
    let before = rss(pid);
    for attack in [
        &b"*2147483647\r\n"[..],
        b"*1\r\n$536870913\r\n",
        b"*99999999999999999999\r\n",
    ] {
        let (reply, closed) = raw_exchange(&node.client_addr(), attack, IO_TIMEOUT);
        assert!(
            show(&reply).starts_with("-ERR Protocol error"),
            "{}",
            show(&reply)
        );
        assert!(closed);
    }
    // A bulk header announcing 500 MB (within the protocol limit, above the value limit) followed
    // by only a little data: nothing near 500 MB is allocated.
    let mut c = TcpStream::connect(node.client_addr()).unwrap();
    c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n")
        .unwrap();
    c.write_all(&vec![b'a'; 1 << 20]).unwrap();
    let took = ping_time(&node);
    assert!(took < Duration::from_secs(2));
    let grown = rss(pid).saturating_sub(before);
    assert!(grown < 64 * 1024 * 1024, "grew {} MiB", grown >> 20);
}
