//! `min-replicas-to-write` on a real 3-node cluster: writes are refused with Redis's
//! `-NOREPLICAS` (and not applied) while the node sees fewer good replicas than asked for (peers
//! heard from within `min-replicas-max-lag`), and accepted again once the peer is back; reads go
//! on. See `cmd::min_replicas`.

mod common;

use std::time::Duration;

use common::*;

const CONVERGE: Duration = Duration::from_secs(30);
const NOREPLICAS: &str = "-NOREPLICAS Not enough good replicas to write.\r\n";

fn signal(node: &Node, sig: libc::c_int) {
    let pid = node.pid().expect("running node") as libc::pid_t;
    // SAFETY: kill(2) on a child we spawned and still hold (not reaped).
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// Polls `argv` on `conn` until it answers `want` (the good-replica count moves with time).
fn until_answer(conn: &mut RawConn, argv: &[&str], want: &str, what: &str) {
    poll_until(CONVERGE, what, || {
        (conn.call(argv) == want.as_bytes()).then_some(())
    });
}

#[test]
fn writes_wait_for_enough_good_replicas() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(CONVERGE);
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let mut lc = c.node(leader).raw();
    lc.check(&["SET", "k", "before"], "+OK\r\n");
    lc.check(&["CONFIG", "SET", "min-replicas-max-lag", "1"], "+OK\r\n");
    lc.check(&["CONFIG", "SET", "min-replicas-to-write", "2"], "+OK\r\n");
    // Both followers answer the leader's heartbeats: writes go through.
    lc.check(&["SET", "k", "both up"], "+OK\r\n");

    // One follower paused: once it has been silent past the lag, writes are refused and not
    // applied, a script with a shebang is refused at start, a write inside a script without
    // one fails there, and a write queued in MULTI aborts the transaction.
    signal(c.node(followers[0]), libc::SIGSTOP);
    until_answer(
        &mut lc,
        &["SET", "probe", "x"],
        NOREPLICAS,
        "NOREPLICAS on the leader",
    );
    lc.check(&["SET", "k", "refused"], NOREPLICAS);
    lc.check(&["GET", "k"], "$7\r\nboth up\r\n");
    lc.check(&["EVAL", "#!lua\nreturn 1", "0"], NOREPLICAS);
    lc.check(
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])",
            "1",
            "k",
        ],
        "$7\r\nboth up\r\n",
    );
    lc.check(
        &["EVAL", "return redis.pcall('set', KEYS[1], 'x')", "1", "k"],
        NOREPLICAS,
    );
    lc.check(&["MULTI"], "+OK\r\n");
    lc.check(&["INCR", "n"], NOREPLICAS);
    lc.check(
        &["EXEC"],
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    lc.check(&["PUBLISH", "ch", "m"], ":0\r\n");
    // With one required, the leader still has one good replica.
    lc.check(&["CONFIG", "SET", "min-replicas-to-write", "1"], "+OK\r\n");
    lc.check(&["SET", "k", "one up"], "+OK\r\n");
    lc.check(&["CONFIG", "SET", "min-replicas-to-write", "2"], "+OK\r\n");

    // A follower counts itself while it hears the leader; it cannot see the other follower,
    // so it refuses when two are asked for.
    let mut fc = c.node(followers[1]).raw();
    fc.check(&["CONFIG", "SET", "min-replicas-to-write", "1"], "+OK\r\n");
    fc.check(&["SET", "f", "1"], "+OK\r\n");
    fc.check(&["CONFIG", "SET", "min-replicas-to-write", "2"], "+OK\r\n");
    fc.check(&["SET", "f", "2"], NOREPLICAS);
    fc.check(&["CONFIG", "SET", "min-replicas-to-write", "0"], "+OK\r\n");

    // Resumed: the leader takes writes again.
    signal(c.node(followers[0]), libc::SIGCONT);
    until_answer(
        &mut lc,
        &["SET", "k", "back"],
        "+OK\r\n",
        "writes after SIGCONT",
    );
    lc.check(&["GET", "k"], "$4\r\nback\r\n");
    lc.check(
        &["CONFIG", "GET", "min-slaves-to-write"],
        "*2\r\n$19\r\nmin-slaves-to-write\r\n$1\r\n2\r\n",
    );
}
