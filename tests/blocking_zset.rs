//! Blocking sorted-set pops (BZPOPMIN, BZPOPMAX, BZMPOP) with real `kvd` processes: replies as
//! redis-server 7.0.15 gives them (RESP2 and RESP3, errors, timeouts, MULTI), first blocked
//! first served on one node, and a consumer blocked on a follower of a 3-node cluster woken by
//! a ZADD through the leader.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn blocking_zset_pops_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let wrongtype = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    let script: &[(&[&str], &str)] = &[
        (
            &[
                "ZADD", "z", "1", "a", "2", "b", "3.5", "c", "4", "d", "5", "e",
            ],
            ":5\r\n",
        ),
        (
            &["BZPOPMIN", "z", "0"],
            "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n",
        ),
        (
            &["BZPOPMAX", "nokey", "z", "0"],
            "*3\r\n$1\r\nz\r\n$1\r\ne\r\n$1\r\n5\r\n",
        ),
        (
            &["BZMPOP", "0", "2", "nokey", "z", "MAX", "COUNT", "2"],
            "*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\nd\r\n$1\r\n4\r\n*2\r\n$1\r\nc\r\n$3\r\n3.5\r\n",
        ),
        (
            &["BZMPOP", "0", "1", "z", "MIN"],
            "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
        ),
        (&["EXISTS", "z"], ":0\r\n"),
        (&["BZPOPMIN", "z", "-1"], "-ERR timeout is negative\r\n"),
        (
            &["BZPOPMIN", "z", "abc"],
            "-ERR timeout is not a float or out of range\r\n",
        ),
        (
            &["BZMPOP", "-1", "1", "z", "MIN"],
            "-ERR timeout is negative\r\n",
        ),
        // BZMPOP checks its keys and options before its timeout.
        (&["BZMPOP", "abc", "1", "z", "FOO"], "-ERR syntax error\r\n"),
        (
            &["BZMPOP", "abc", "0", "z", "MIN"],
            "-ERR numkeys should be greater than 0\r\n",
        ),
        (
            &["BZMPOP", "0", "1", "z", "MIN", "COUNT", "0"],
            "-ERR count should be greater than 0\r\n",
        ),
        (
            &["BZPOPMIN", "z"],
            "-ERR wrong number of arguments for 'bzpopmin' command\r\n",
        ),
        (&["SET", "s", "1"], "+OK\r\n"),
        (&["BZPOPMIN", "s", "0"], wrongtype),
        (&["BZPOPMAX", "nokey", "s", "0"], wrongtype),
        (&["BZMPOP", "0", "2", "nokey", "s", "MIN"], wrongtype),
        (&["RPUSH", "l", "x"], ":1\r\n"),
        (&["BZPOPMIN", "l", "0"], wrongtype),
        // Timeouts answer the null array.
        (&["BZPOPMIN", "z", "0.1"], "*-1\r\n"),
        (&["BZMPOP", "0.1", "1", "z", "MIN"], "*-1\r\n"),
        // Inside MULTI: the non-blocking form, nothing waits.
        (&["ZADD", "z", "1", "a"], ":1\r\n"),
        (&["MULTI"], "+OK\r\n"),
        (&["BZPOPMIN", "z", "0"], "+QUEUED\r\n"),
        (&["BZPOPMAX", "z", "0"], "+QUEUED\r\n"),
        (&["BZMPOP", "0", "1", "z", "MIN"], "+QUEUED\r\n"),
        (
            &["EXEC"],
            "*3\r\n*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n*-1\r\n*-1\r\n",
        ),
    ];
    for (argv, want) in script {
        c.check(argv, want);
    }
    let hello = c.call(&["HELLO", "3"]);
    assert!(hello.starts_with(b"%"), "{}", show(&hello));
    let resp3: &[(&[&str], &str)] = &[
        (
            &["ZADD", "z", "1", "a", "2.5", "b", "3", "c", "4", "d"],
            ":4\r\n",
        ),
        (
            &["BZPOPMIN", "z", "0"],
            "*3\r\n$1\r\nz\r\n$1\r\na\r\n,1\r\n",
        ),
        (
            &["BZPOPMAX", "z", "0"],
            "*3\r\n$1\r\nz\r\n$1\r\nd\r\n,4\r\n",
        ),
        (
            &["BZMPOP", "0", "1", "z", "MIN", "COUNT", "5"],
            "*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\nb\r\n,2.5\r\n*2\r\n$1\r\nc\r\n,3\r\n",
        ),
        (&["BZPOPMIN", "z", "0.05"], "_\r\n"),
        (&["BZMPOP", "0.05", "1", "z", "MAX"], "_\r\n"),
    ];
    for (argv, want) in resp3 {
        c.check(argv, want);
    }
}

#[test]
fn a_timeout_wakes_with_nil_and_waiters_are_served_first_blocked_first() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let t = Instant::now();
    c.check(&["BZPOPMIN", "z", "0.3"], "*-1\r\n");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let mut consumers: Vec<RawConn> = Vec::new();
    for i in 0..4 {
        let mut k = node.raw();
        match i {
            0 => k.send_cmd(&["BZPOPMIN", "z", "0"]),
            1 => k.send_cmd(&["BZPOPMAX", "other", "z", "0"]),
            2 => k.send_cmd(&["BZMPOP", "0", "2", "other", "z", "MIN", "COUNT", "2"]),
            _ => k.send_cmd(&["BZPOPMIN", "z", "0"]),
        }
        wait_blocked(&node, i + 1);
        consumers.push(k);
    }
    // A list push does not wake sorted-set waiters of the same key name elsewhere.
    c.check(&["RPUSH", "other", "x"], ":1\r\n");
    thread::sleep(Duration::from_millis(200));
    assert!(consumers.iter().all(|k| k.pending().is_empty()));
    // Four members serve the first three waiters in their order (the third takes two).
    c.check(
        &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
        ":4\r\n",
    );
    consumers[0].expect(b"*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n");
    consumers[1].expect(b"*3\r\n$1\r\nz\r\n$1\r\nd\r\n$1\r\n4\r\n");
    consumers[2]
        .expect(b"*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n");
    wait_blocked(&node, 1);
    c.check(&["ZADD", "z", "7", "g"], ":1\r\n");
    consumers[3].expect(b"*3\r\n$1\r\nz\r\n$1\r\ng\r\n$1\r\n7\r\n");
    wait_blocked(&node, 0);
    c.check(&["EXISTS", "z"], ":0\r\n");
}

#[test]
fn a_consumer_on_a_follower_is_woken_by_a_zadd_through_the_leader() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(Duration::from_secs(20));
    let follower = (leader + 1) % 3;
    let mut consumer = c.node(follower).raw();
    consumer.send_cmd(&["BZPOPMAX", "z", "0"]);
    wait_blocked(c.node(follower), 1);
    let mut producer = c.node(leader).raw();
    producer.check(&["ZADD", "z", "1", "low", "9", "high"], ":2\r\n");
    consumer.expect(b"*3\r\n$1\r\nz\r\n$4\r\nhigh\r\n$1\r\n9\r\n");
    wait_blocked(c.node(follower), 0);
    // Popped exactly once, through raft: every node sees only the other member left.
    poll_until(Duration::from_secs(10), "the pop to replicate", || {
        (0..3)
            .all(|i| c.node(i).raw().call(&["ZRANGE", "z", "0", "-1"]) == b"*1\r\n$3\r\nlow\r\n")
            .then_some(())
    });
}

#[test]
fn waiters_on_two_keys_made_ready_together_are_served_from_the_first_key_first() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let mut k: Vec<RawConn> = Vec::new();
    for (i, (end, count)) in [("MIN", "1"), ("MAX", "10"), ("MIN", "10"), ("MAX", "1")]
        .into_iter()
        .enumerate()
    {
        let mut conn = node.raw();
        conn.send_cmd(&["BZMPOP", "0", "2", "z1", "z2", end, "COUNT", count]);
        wait_blocked(&node, i as u64 + 1);
        k.push(conn);
    }
    c.check(&["MULTI"], "+OK\r\n");
    c.check(&["ZADD", "z1", "1", "a", "2", "b", "3", "c"], "+QUEUED\r\n");
    c.check(&["ZADD", "z2", "1", "a", "2", "b", "3", "c"], "+QUEUED\r\n");
    c.check(&["EXEC"], "*2\r\n:3\r\n:3\r\n");
    k[0].expect(b"*2\r\n$2\r\nz1\r\n*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n");
    k[1].expect(
        b"*2\r\n$2\r\nz1\r\n*2\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
    );
    // The third waited on z1 too, found it empty, and is served from z2 (it was ready).
    k[2].expect(b"*2\r\n$2\r\nz2\r\n*3\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n");
    wait_blocked(&node, 1);
    c.check(&["ZADD", "z2", "5", "e"], ":1\r\n");
    k[3].expect(b"*2\r\n$2\r\nz2\r\n*1\r\n*2\r\n$1\r\ne\r\n$1\r\n5\r\n");
    wait_blocked(&node, 0);
}
