//! Blocking list pops with real `kvd` processes: replies as redis-server 7.0.15 gives them
//! (timeouts, errors, MULTI), first blocked first served on one node, CLIENT UNBLOCK, and a
//! 3-node cluster where consumers blocked on every node (followers included) pop what a
//! producer pushes through every node while nodes are paused (SIGSTOP/SIGCONT) and killed
//! (kill -9): every acknowledged push is popped exactly once, none twice, none lost except
//! for a pop in flight on a connection that broke (lost in Redis too).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn blocking_pops_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let wrongtype = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    let script: &[(&[&str], &str)] = &[
        (&["BLPOP", "a", "-1"], "-ERR timeout is negative\r\n"),
        (
            &["BLPOP", "a", "abc"],
            "-ERR timeout is not a float or out of range\r\n",
        ),
        (&["BLPOP", "a", "inf"], "-ERR timeout is negative\r\n"),
        (
            &["BLMPOP", "-1", "0", "a", "LEFT"],
            "-ERR numkeys should be greater than 0\r\n",
        ),
        (
            &["BLMOVE", "a", "b", "LEFT", "FOO", "-1"],
            "-ERR syntax error\r\n",
        ),
        (
            &["BLPOP", "a"],
            "-ERR wrong number of arguments for 'blpop' command\r\n",
        ),
        (&["SET", "s", "1"], "+OK\r\n"),
        (&["BLPOP", "s", "0"], wrongtype),
        (&["BLPOP", "nokey", "s", "0"], wrongtype),
        (&["BLMOVE", "s", "b", "LEFT", "LEFT", "0"], wrongtype),
        (&["RPUSH", "a", "1", "2"], ":2\r\n"),
        (&["BLMOVE", "a", "s", "LEFT", "LEFT", "0"], wrongtype),
        // Ready at once: served like the non-blocking form.
        (
            &["BLPOP", "nokey", "a", "0"],
            "*2\r\n$1\r\na\r\n$1\r\n1\r\n",
        ),
        (&["BRPOPLPUSH", "a", "b", "0"], "$1\r\n2\r\n"),
        (
            &["BLMPOP", "0", "2", "a", "b", "RIGHT", "COUNT", "5"],
            "*2\r\n$1\r\nb\r\n*1\r\n$1\r\n2\r\n",
        ),
        // Timeouts answer the null array, BLMOVE's too.
        (&["BLPOP", "a", "0.1"], "*-1\r\n"),
        (&["BLMOVE", "a", "b", "LEFT", "LEFT", "0.1"], "*-1\r\n"),
        (&["BRPOPLPUSH", "a", "b", "0.1"], "*-1\r\n"),
        (&["BLMPOP", "0.1", "1", "a", "LEFT"], "*-1\r\n"),
        // Inside MULTI: the non-blocking form, nothing waits.
        (&["MULTI"], "+OK\r\n"),
        (&["BLMOVE", "a", "b", "LEFT", "LEFT", "0"], "+QUEUED\r\n"),
        (&["BLPOP", "a", "0"], "+QUEUED\r\n"),
        (&["BRPOPLPUSH", "a", "b", "0"], "+QUEUED\r\n"),
        (&["BLMPOP", "0", "1", "a", "LEFT"], "+QUEUED\r\n"),
        (&["EXEC"], "*4\r\n$-1\r\n*-1\r\n$-1\r\n*-1\r\n"),
        (&["CLIENT", "UNBLOCK", "99999"], ":0\r\n"),
        (
            &["CLIENT", "UNBLOCK", "abc"],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            &["CLIENT", "UNBLOCK", "1", "FOO"],
            "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n",
        ),
    ];
    for (argv, want) in script {
        c.check(argv, want);
    }
    let hello = c.call(&["HELLO", "3"]);
    assert!(hello.starts_with(b"%"), "{}", show(&hello));
    c.check(&["BLPOP", "a", "0.1"], "_\r\n");
    c.check(&["BLMOVE", "a", "b", "LEFT", "LEFT", "0.05"], "_\r\n");
}

#[test]
fn a_timeout_wakes_with_nil_and_zero_waits_until_served() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let t = Instant::now();
    c.check(&["BLPOP", "k", "0.3"], "*-1\r\n");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // Timeout 0 waits for as long as it takes; a pipelined command after it waits its turn.
    let mut consumer = node.raw();
    consumer.send(&[encode_cmd(&["BLPOP", "k", "0"]), encode_cmd(&["PING"])].concat());
    wait_blocked(&node, 1);
    thread::sleep(Duration::from_millis(300));
    assert!(consumer.pending().is_empty());
    c.check(&["LPUSH", "k", "v"], ":1\r\n");
    consumer.expect(b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n+PONG\r\n");
    wait_blocked(&node, 0);
    c.check(&["EXISTS", "k"], ":0\r\n");
    // A client that goes away stops waiting: a later push stays in the list.
    let mut gone = node.raw();
    gone.send_cmd(&["BLPOP", "k", "0"]);
    wait_blocked(&node, 1);
    drop(gone);
    wait_blocked(&node, 0);
    c.check(&["RPUSH", "k", "kept"], ":1\r\n");
    c.check(&["LRANGE", "k", "0", "-1"], "*1\r\n$4\r\nkept\r\n");
}

#[test]
fn a_blocked_client_that_sends_more_then_closes_stops_waiting() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    // What a blocked client sends is run after it is served, in order.
    let mut more = node.raw();
    more.send_cmd(&["BLPOP", "k", "0"]);
    wait_blocked(&node, 1);
    more.send(&[encode_cmd(&["PING"]), encode_cmd(&["ECHO", "x"])].concat());
    thread::sleep(Duration::from_millis(200));
    assert!(more.pending().is_empty());
    c.check(&["LPUSH", "k", "v"], ":1\r\n");
    more.expect(b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n+PONG\r\n$1\r\nx\r\n");
    wait_blocked(&node, 0);
    // Blocked, sends a PING (and half a command), then closes: it stops waiting, and a later
    // push is not popped for nobody.
    for (i, extra) in [&encode_cmd(&["PING"])[..], b"*2\r\n$4\r\nEC"]
        .iter()
        .enumerate()
    {
        let mut gone = node.raw();
        gone.send_cmd(&["BLPOP", "k", "0"]);
        wait_blocked(&node, 1);
        gone.send(extra);
        thread::sleep(Duration::from_millis(100));
        drop(gone);
        wait_blocked(&node, 0);
        let item = format!("kept{i}");
        c.check(&["RPUSH", "k", &item], ":1\r\n");
        c.check(&["LPOP", "k"], &format!("${}\r\n{item}\r\n", item.len()));
    }
    // The same for a stream read and a sorted-set pop.
    for cmd in [
        &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"][..],
        &["BZPOPMIN", "z", "0"],
    ] {
        let mut gone = node.raw();
        gone.send_cmd(cmd);
        wait_blocked(&node, 1);
        gone.send(&encode_cmd(&["PING"]));
        thread::sleep(Duration::from_millis(100));
        drop(gone);
        wait_blocked(&node, 0);
    }
    c.check(&["ZADD", "z", "1", "m"], ":1\r\n");
    c.check(&["ZCARD", "z"], ":1\r\n");
}

#[test]
fn a_push_is_answered_after_the_clients_it_made_ready_are_served() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    // As Redis: the blocked client is served before the pusher hears back, so what the pusher
    // reads next no longer holds the popped element (unit/type/list "BLPOP with variadic LPUSH").
    for round in 0..5 {
        let mut blocked = node.raw();
        blocked.send_cmd(&["BLPOP", "blist", "0"]);
        wait_blocked(&node, 1);
        c.check(&["LPUSH", "blist", "foo", "bar"], ":2\r\n");
        c.check(&["LRANGE", "blist", "0", "-1"], "*1\r\n$3\r\nfoo\r\n");
        blocked.expect(b"*2\r\n$5\r\nblist\r\n$3\r\nbar\r\n");
        c.check(&["DEL", "blist"], ":1\r\n");
        wait_blocked(&node, 0);
        let _ = round;
    }
    // BLMOVE: the destination holds the element once the push is answered.
    let mut mover = node.raw();
    mover.send_cmd(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]);
    wait_blocked(&node, 1);
    c.check(&["RPUSH", "src", "x"], ":1\r\n");
    c.check(&["LRANGE", "dst", "0", "-1"], "*1\r\n$1\r\nx\r\n");
    mover.expect(b"$1\r\nx\r\n");
    // Chains are served whole (unit/type/list "Linked LMOVEs", "Circular BRPOPLPUSH").
    c.check(&["DEL", "dst"], ":1\r\n");
    let mut rd1 = node.raw();
    rd1.send_cmd(&["BLMOVE", "list1", "list2", "RIGHT", "LEFT", "0"]);
    wait_blocked(&node, 1);
    let mut rd2 = node.raw();
    rd2.send_cmd(&["BLMOVE", "list2", "list3", "LEFT", "RIGHT", "0"]);
    wait_blocked(&node, 2);
    c.check(&["RPUSH", "list1", "foo"], ":1\r\n");
    c.check(&["LRANGE", "list1", "0", "-1"], "*0\r\n");
    c.check(&["LRANGE", "list2", "0", "-1"], "*0\r\n");
    c.check(&["LRANGE", "list3", "0", "-1"], "*1\r\n$3\r\nfoo\r\n");
    rd1.expect(b"$3\r\nfoo\r\n");
    rd2.expect(b"$3\r\nfoo\r\n");
    c.check(&["DEL", "list3"], ":1\r\n");
    rd1.send_cmd(&["BRPOPLPUSH", "list1", "list2", "0"]);
    wait_blocked(&node, 1);
    rd2.send_cmd(&["BRPOPLPUSH", "list2", "list1", "0"]);
    wait_blocked(&node, 2);
    c.check(&["RPUSH", "list1", "foo"], ":1\r\n");
    c.check(&["LRANGE", "list1", "0", "-1"], "*1\r\n$3\r\nfoo\r\n");
    c.check(&["LRANGE", "list2", "0", "-1"], "*0\r\n");
    rd1.expect(b"$3\r\nfoo\r\n");
    rd2.expect(b"$3\r\nfoo\r\n");
}

#[test]
fn the_first_client_blocked_on_a_key_is_the_first_served() {
    let node = Node::single(&[]);
    let mut producer = node.raw();
    let mut consumers: Vec<RawConn> = Vec::new();
    for i in 0..4 {
        let mut c = node.raw();
        // Different key lists, one shared key: the order is by arrival, per key.
        if i % 2 == 0 {
            c.send_cmd(&["BLPOP", "q", "0"]);
        } else {
            c.send_cmd(&["BRPOP", "other", "q", "0"]);
        }
        wait_blocked(&node, i + 1);
        consumers.push(c);
    }
    // One push of three elements serves the first three, in order; the fourth waits on.
    producer.check(&["RPUSH", "q", "a", "b", "c"], ":3\r\n");
    consumers[0].expect(b"*2\r\n$1\r\nq\r\n$1\r\na\r\n");
    consumers[1].expect(b"*2\r\n$1\r\nq\r\n$1\r\nc\r\n");
    consumers[2].expect(b"*2\r\n$1\r\nq\r\n$1\r\nb\r\n");
    wait_blocked(&node, 1);
    // A newcomer queues behind the one still waiting.
    let mut late = node.raw();
    late.send_cmd(&["BLPOP", "q", "0"]);
    wait_blocked(&node, 2);
    producer.check(&["RPUSH", "q", "d"], ":1\r\n");
    consumers[3].expect(b"*2\r\n$1\r\nq\r\n$1\r\nd\r\n");
    producer.check(&["RPUSH", "q", "e"], ":1\r\n");
    late.expect(b"*2\r\n$1\r\nq\r\n$1\r\ne\r\n");
    // BLMOVE moves what it pops.
    let mut mover = node.raw();
    mover.send_cmd(&["BLMOVE", "src", "dst", "RIGHT", "LEFT", "0"]);
    wait_blocked(&node, 1);
    producer.check(&["RPUSH", "src", "x", "y"], ":2\r\n");
    mover.expect(b"$1\r\ny\r\n");
    producer.check(&["LRANGE", "dst", "0", "-1"], "*1\r\n$1\r\ny\r\n");
    producer.check(&["LRANGE", "src", "0", "-1"], "*1\r\n$1\r\nx\r\n");
}

/// Two pops and a push sent back to back on three connections, without waiting in between (as
/// unit/type/list's "BRPOPLPUSH with multiple blocked clients" does): redis-server runs them in
/// the order they arrived, so the first pop gets the element. kvd runs connections on several
/// threads; it must still queue the pops by arrival, not by which thread got there first
/// (before the fix about one round in ten went to the second pop on a loaded 2-core machine).
#[test]
fn pops_sent_back_to_back_are_served_in_arrival_order() {
    const ROUNDS: usize = 200;
    let node = Node::single(&[]);
    let mut producer = node.raw();
    let mut out_of_order = Vec::new();
    for round in 0..ROUNDS {
        // New connections every round, as a test suite's deferring clients are (which say
        // SELECT before they are used).
        let mut first = node.raw();
        let mut second = node.raw();
        first.check(&["PING"], "+PONG\r\n");
        second.check(&["PING"], "+PONG\r\n");
        let (x, y) = (format!("x{round}"), format!("y{round}"));
        first.send_cmd(&["BLPOP", "q", "0"]);
        second.send_cmd(&["BLPOP", "q", "0"]);
        producer.send_cmd(&["RPUSH", "q", x.as_str()]);
        producer.read_reply();
        // The one not served by the first push is by the second.
        producer.call(&["RPUSH", "q", y.as_str()]);
        let got = [first.read_reply(), second.read_reply()];
        let reply = |item: &str| encode_cmd(&["q", item]);
        if got != [reply(&x), reply(&y)] {
            assert_eq!(
                got,
                [reply(&y), reply(&x)],
                "round {round}: each pop gets one"
            );
            out_of_order.push(round);
        }
    }
    // What is left is a scheduling race: a connection's task that runs more than a whole
    // raft commit after its command arrived has not queued yet when the push is applied (0 of
    // 200 on a quiet machine, up to 1 in 100 under CI's load). The old order by thread lost 8-11.
    assert!(
        out_of_order.len() <= ROUNDS / 50,
        "{} of {ROUNDS} rounds served the second pop first: {out_of_order:?}",
        out_of_order.len()
    );
}

fn client_id(c: &mut RawConn) -> String {
    let id = String::from_utf8(c.call(&["CLIENT", "ID"])).unwrap();
    id.trim_start_matches(':').trim_end().to_string()
}

#[test]
fn client_unblock_ends_a_wait_as_a_timeout_or_an_error() {
    let node = Node::single(&[]);
    let mut admin = node.raw();
    let mut c = node.raw();
    let id = client_id(&mut c);
    c.send_cmd(&["BLPOP", "k", "0"]);
    wait_blocked(&node, 1);
    admin.check(&["CLIENT", "UNBLOCK", &id, "TIMEOUT"], ":1\r\n");
    c.expect(b"*-1\r\n");
    admin.check(&["CLIENT", "UNBLOCK", &id], ":0\r\n");
    c.send_cmd(&["BLMOVE", "k", "d", "LEFT", "LEFT", "0"]);
    wait_blocked(&node, 1);
    admin.check(&["CLIENT", "UNBLOCK", &id, "ERROR"], ":1\r\n");
    c.expect(b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
    wait_blocked(&node, 0);
    // The connection goes on as usual.
    c.check(&["PING"], "+PONG\r\n");
    c.send_cmd(&["BLPOP", "k", "0"]);
    wait_blocked(&node, 1);
    admin.check(&["CLIENT", "UNBLOCK", &id], ":1\r\n");
    c.expect(b"*-1\r\n");
}

/// A minimal client that reports a broken connection instead of panicking.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: &str) -> Option<Client> {
        let stream = TcpStream::connect(addr).ok()?;
        stream.set_nodelay(true).ok();
        Some(Client {
            stream,
            buf: Vec::new(),
        })
    }

    /// The reply, or `None` if the connection broke or `timeout` passed.
    fn call(&mut self, argv: &[&str], timeout: Duration) -> Option<Vec<u8>> {
        self.stream.write_all(&encode_cmd(argv)).ok()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(n) = reply_len(&self.buf) {
                return Some(self.buf.drain(..n).collect());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream.set_read_timeout(Some(left)).ok()?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }
}

fn signal(node: &Node, sig: libc::c_int) {
    let pid = node.pid().expect("node has a process") as libc::pid_t;
    // SAFETY: kill(2) on a child we spawned and still hold (not reaped).
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// What the consumers saw.
#[derive(Default)]
struct Seen {
    popped: Vec<String>,
    /// BLPOPs outstanding on a connection that broke or gave no reply: each may have popped an
    /// element nobody received (as in Redis when a connection closes mid-pop).
    broken: usize,
}

/// Parses `*2 $1 q $n item` into the item.
fn popped_item(reply: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(reply);
    let mut lines = text.split("\r\n");
    if lines.next()? != "*2" {
        return None;
    }
    lines.next()?;
    lines.next()?;
    lines.next()?;
    lines.next().map(str::to_string)
}

#[test]
fn pushed_items_are_popped_exactly_once_by_consumers_on_every_node_under_faults() {
    let mut c = Cluster::start(3, &[]);
    let addrs: Vec<String> = (0..3).map(|i| c.node(i).client_addr()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut consumers = Vec::new();
    for i in 0..6 {
        let addr = addrs[i % 3].clone();
        let (stop, seen) = (stop.clone(), seen.clone());
        consumers.push(thread::spawn(move || {
            let mut conn: Option<Client> = None;
            while !stop.load(Ordering::Relaxed) {
                let Some(cl) = conn.as_mut() else {
                    conn = Client::connect(&addr);
                    if conn.is_none() {
                        thread::sleep(Duration::from_millis(50));
                    }
                    continue;
                };
                match cl.call(&["BLPOP", "q", "1"], Duration::from_secs(20)) {
                    Some(r) if r == b"*-1\r\n" => {}
                    Some(r) => match popped_item(&r) {
                        Some(item) => seen.lock().unwrap().popped.push(item),
                        // An error (the node is shutting down, say): try again.
                        None => thread::sleep(Duration::from_millis(20)),
                    },
                    None => {
                        seen.lock().unwrap().broken += 1;
                        conn = None;
                    }
                }
            }
        }));
    }
    // Consumers are blocked on every node before the first push.
    for i in 0..3 {
        poll_until(Duration::from_secs(20), "consumers to block", || {
            (c.node(i).info_u64("clients", "blocked_clients") == Some(2)).then_some(())
        });
    }
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let attempted = Arc::new(Mutex::new(BTreeSet::new()));
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (acked, attempted, producing) = (acked.clone(), attempted.clone(), producing.clone());
        let addrs = addrs.clone();
        thread::spawn(move || {
            let mut conns: Vec<Option<Client>> = (0..3).map(|_| None).collect();
            let mut n = 0usize;
            while producing.load(Ordering::Relaxed) {
                let node = n % 3;
                let item = format!("item-{n}");
                n += 1;
                if conns[node].is_none() {
                    conns[node] = Client::connect(&addrs[node]);
                }
                let Some(cl) = conns[node].as_mut() else {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                };
                attempted.lock().unwrap().insert(item.clone());
                match cl.call(&["RPUSH", "q", &item], Duration::from_secs(20)) {
                    Some(r) if r.starts_with(b":") => {
                        acked.lock().unwrap().insert(item);
                    }
                    Some(_) => thread::sleep(Duration::from_millis(20)),
                    None => conns[node] = None,
                }
                thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // Faults while items flow: pause a follower, pause the leader, kill -9 a follower and the
    // leader (their consumers reconnect once the node is back).
    thread::sleep(Duration::from_millis(1500));
    let leader = c.wait_for_leader(Duration::from_secs(20));
    let follower = (leader + 1) % 3;
    signal(c.node(follower), libc::SIGSTOP);
    thread::sleep(Duration::from_millis(1500));
    signal(c.node(follower), libc::SIGCONT);
    thread::sleep(Duration::from_millis(1000));
    let leader = c.wait_for_leader(Duration::from_secs(20));
    signal(c.node(leader), libc::SIGSTOP);
    thread::sleep(Duration::from_millis(2500));
    signal(c.node(leader), libc::SIGCONT);
    thread::sleep(Duration::from_millis(1000));
    let leader = c.wait_for_leader(Duration::from_secs(20));
    let follower = (leader + 2) % 3;
    c.nodes[follower].kill9();
    thread::sleep(Duration::from_millis(1000));
    c.nodes[follower].restart();
    thread::sleep(Duration::from_millis(1000));
    let leader = c.wait_for_leader(Duration::from_secs(20));
    c.nodes[leader].kill9();
    thread::sleep(Duration::from_millis(1500));
    c.nodes[leader].restart();
    thread::sleep(Duration::from_millis(1500));
    producing.store(false, Ordering::Relaxed);
    producer.join().expect("producer");
    // The consumers drain the list.
    poll_until(Duration::from_secs(60), "the list to be drained", || {
        let all_empty = (0..3).all(|i| {
            Client::connect(&addrs[i])
                .and_then(|mut cl| cl.call(&["LLEN", "q"], Duration::from_secs(5)))
                .is_some_and(|r| r == b":0\r\n")
        });
        let n = seen.lock().unwrap().popped.len();
        (all_empty && n > 0).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for t in consumers {
        t.join().expect("consumer");
    }
    let seen = seen.lock().unwrap();
    let acked = acked.lock().unwrap();
    let attempted = attempted.lock().unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &seen.popped {
        *counts.entry(item).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "popped more than once: {twice:?}");
    let unknown: Vec<_> = counts.keys().filter(|i| !attempted.contains(**i)).collect();
    assert!(unknown.is_empty(), "popped but never pushed: {unknown:?}");
    let lost: Vec<_> = acked
        .iter()
        .filter(|i| !counts.contains_key(i.as_str()))
        .collect();
    eprintln!(
        "pushes acknowledged {}, attempted {}, popped {}, pops broken in flight {}, lost {}",
        acked.len(),
        attempted.len(),
        seen.popped.len(),
        seen.broken,
        lost.len()
    );
    assert!(
        lost.len() <= seen.broken,
        "{} acknowledged pushes never popped ({:?}...), only {} pops broke in flight",
        lost.len(),
        &lost[..lost.len().min(5)],
        seen.broken
    );
    assert!(
        acked.len() > 100,
        "the producer got through: {} acknowledged",
        acked.len()
    );
}

/// A pipelined read queued behind a write runs before a later write that wakes a blocked
/// client: the pop that client makes (BLMOVE into the key the read reads) is not visible to
/// it, as Redis runs the read before the push that serves the client. (The write before the
/// read serves a client too, so its reply comes a round late, after the later push's pop
/// could have been applied.)
#[test]
fn a_queued_read_runs_before_the_pop_a_later_write_wakes() {
    let node = Node::single(&[]);
    let mut producer = node.raw();
    for i in 0..20 {
        let mut mover = node.raw();
        mover.send_cmd(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]);
        let mut popper = node.raw();
        popper.send_cmd(&["BLPOP", "other", "0"]);
        wait_blocked(&node, 2);
        let mut req = encode_cmd(&["LPUSH", "other", "b"]);
        req.extend(encode_cmd(&["LLEN", "dst"]));
        req.extend(encode_cmd(&["LPUSH", "src", "a"]));
        req.extend(encode_cmd(&["LLEN", "dst"]));
        producer.send(&req);
        let before = format!(":{i}\r\n");
        let after = format!(":{}\r\n", i + 1);
        producer.expect(format!(":1\r\n{before}:1\r\n{after}").as_bytes());
        mover.expect(b"$1\r\na\r\n");
        popper.expect(b"*2\r\n$5\r\nother\r\n$1\r\nb\r\n");
        wait_blocked(&node, 0);
    }
}

#[test]
fn replies_and_pushes_reach_a_blocked_client_while_it_waits() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    // A reply earlier in the pipeline is sent before the client blocks (redis-server too).
    let mut consumer = node.raw();
    consumer.send(&[encode_cmd(&["PING"]), encode_cmd(&["BLPOP", "k", "0"])].concat());
    consumer.expect(b"+PONG\r\n");
    wait_blocked(&node, 1);
    c.check(&["LPUSH", "k", "v"], ":1\r\n");
    consumer.expect(b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n");
    // A tracking invalidation and a published message reach a RESP3 client while it is blocked.
    let mut tracked = node.raw();
    assert!(tracked.call(&["HELLO", "3"]).starts_with(b"%"));
    tracked.check(&["CLIENT", "TRACKING", "on"], "+OK\r\n");
    tracked.check(&["GET", "t"], "_\r\n");
    tracked.check(
        &["SUBSCRIBE", "ch"],
        ">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    );
    tracked.send_cmd(&["BLPOP", "k", "0"]);
    wait_blocked(&node, 1);
    c.check(&["SET", "t", "1"], "+OK\r\n");
    tracked.expect(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nt\r\n");
    c.check(&["PUBLISH", "ch", "hi"], ":1\r\n");
    tracked.expect(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
    c.check(&["RPUSH", "k", "w"], ":1\r\n");
    tracked.expect(b"*2\r\n$1\r\nk\r\n$1\r\nw\r\n");
}
