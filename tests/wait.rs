//! WAIT numreplicas timeout on a real 3-node cluster: the count of followers whose log holds
//! the connection's last write (exact on the leader, a lower bound on a follower: see
//! `cmd::wait`), the timeout, and MULTI.

mod common;

use std::time::{Duration, Instant};

use common::*;

const CONVERGE: Duration = Duration::from_secs(30);

fn signal(node: &Node, sig: libc::c_int) {
    let pid = node.pid().expect("running node") as libc::pid_t;
    // SAFETY: kill(2) on a child we spawned and still hold (not reaped).
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

#[test]
fn wait_counts_followers_holding_the_last_write_and_times_out() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(CONVERGE);
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let mut lc = c.node(leader).raw();
    lc.check(&["SET", "k", "v"], "+OK\r\n");
    // Both followers hold it soon: WAIT 2 returns 2 (with no timeout: as soon as they do).
    let t = Instant::now();
    lc.check(&["WAIT", "2", "0"], ":2\r\n");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    lc.check(&["WAIT", "5", "50"], ":2\r\n");
    // Inside MULTI it answers at once.
    lc.check(&["MULTI"], "+OK\r\n");
    lc.check(&["WAIT", "5", "0"], "+QUEUED\r\n");
    lc.check(&["EXEC"], "*1\r\n:2\r\n");
    // One follower paused: a new write reaches only the other; WAIT 2 100 returns 1 after
    // about 100 ms.
    signal(c.node(followers[0]), libc::SIGSTOP);
    lc.check(&["SET", "k", "w"], "+OK\r\n");
    let t = Instant::now();
    lc.check(&["WAIT", "2", "100"], ":1\r\n");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(95) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    // A connection that wrote nothing counts every follower (all hold the empty log), the
    // paused one included, as Redis counts every replica for an offset of 0.
    let mut fresh = c.node(leader).raw();
    fresh.check(&["WAIT", "2", "100"], ":2\r\n");
    // Resumed, it catches up, and the blocked WAIT returns as soon as it does.
    let mut waiting = c.node(leader).raw();
    waiting.check(&["SET", "k", "x"], "+OK\r\n");
    waiting.send_cmd(&["WAIT", "2", "0"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        waiting.pending().is_empty(),
        "WAIT 2 answered while a follower is paused"
    );
    signal(c.node(followers[0]), libc::SIGCONT);
    assert_eq!(show(&waiting.read_reply()), show(b":2\r\n"));
    // Through a follower: its write is counted from what it knows (the quorum, itself).
    let mut fc = c.node(followers[1]).raw();
    fc.check(&["SET", "f", "1"], "+OK\r\n");
    fc.check(&["WAIT", "1", "0"], ":1\r\n");
    fc.check(&["WAIT", "2", "50"], ":1\r\n");
    // Redis's argument errors.
    fc.check(
        &["WAIT", "x", "0"],
        "-ERR value is not an integer or out of range\r\n",
    );
    fc.check(
        &["WAIT", "0", "x"],
        "-ERR timeout is not an integer or out of range\r\n",
    );
    fc.check(&["WAIT", "0", "-1"], "-ERR timeout is negative\r\n");
    fc.check(
        &["WAIT", "0"],
        "-ERR wrong number of arguments for 'wait' command\r\n",
    );
}

#[test]
fn a_client_that_disconnects_ends_its_wait() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(CONVERGE);
    let f = (0..3).find(|&i| i != leader).unwrap();
    signal(c.node(f), libc::SIGSTOP);
    let mut con = c.node(leader).raw();
    con.check(&["SET", "k", "v"], "+OK\r\n");
    con.send_cmd(&["WAIT", "2", "0"]);
    drop(con);
    // The node goes on serving others (the WAIT's task ended with its client).
    let mut other = c.node(leader).raw();
    other.check(&["SET", "k2", "v"], "+OK\r\n");
    other.check(&["WAIT", "1", "0"], ":1\r\n");
    let clients = poll_until(CONVERGE, "the waiting client to be gone", || {
        let n = c.node(leader).info_u64("clients", "connected_clients")?;
        (n <= 2).then_some(n)
    });
    assert!(clients <= 2);
    signal(c.node(f), libc::SIGCONT);
}

/// CLIENT UNBLOCK ends a WAIT as redis-server 7.0 does: with the count so far (no reason, or
/// TIMEOUT) or the UNBLOCKED error (ERROR), answering 1; a client not waiting answers 0. The
/// replies queued before WAIT reach the client while it waits, and INFO counts it as blocked.
#[test]
fn client_unblock_ends_a_wait_as_redis() {
    // One node: no replica ever holds the write, so WAIT 1 0 waits until it is ended.
    let node = Node::single(&[]);
    let mut waiter = node.raw();
    let id = String::from_utf8(waiter.call(&["CLIENT", "ID"])).unwrap();
    let id = id.trim_start_matches(':').trim_end().to_string();
    let mut admin = node.raw();
    let blocked = |n: u64| {
        poll_until(CONVERGE, &format!("blocked_clients:{n}"), || {
            (node.info_u64("clients", "blocked_clients")? == n).then_some(())
        })
    };
    let cases: [(&[&str], &str); 3] = [
        (&[], ":0\r\n"),
        (&["TIMEOUT"], ":0\r\n"),
        (
            &["ERROR"],
            "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n",
        ),
    ];
    for (reason, reply) in cases {
        let mut req = encode_cmd(&["SET", "k", "v"]);
        req.extend(encode_cmd(&["WAIT", "1", "0"]));
        waiter.send(&req);
        waiter.expect(b"+OK\r\n");
        blocked(1);
        let mut unblock = vec!["CLIENT", "UNBLOCK", &id];
        unblock.extend_from_slice(reason);
        admin.check(&unblock, ":1\r\n");
        waiter.expect(reply.as_bytes());
        blocked(0);
        admin.check(&["CLIENT", "UNBLOCK", &id], ":0\r\n");
        waiter.check(&["PING"], "+PONG\r\n");
    }
}
