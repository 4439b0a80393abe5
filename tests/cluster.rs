//! Whole-cluster behaviour with real `kvd` processes on loopback: forming (by `--join` and by
//! JOIN), writes through followers, failover, restart and catch-up, LEAVE, snapshots for a new
//! node after compaction, lost quorum, and a 5-node cluster losing two nodes.

mod common;

use std::time::{Duration, Instant};

use common::*;

const ELECTION: Duration = Duration::from_secs(30);
const CONVERGE: Duration = Duration::from_secs(30);

/// The reply to a command as the raw RESP bytes, shown escaped (for error-text assertions).
fn call(node: &Node, argv: &[&str]) -> String {
    show(&node.raw().call(argv))
}

/// Waits until every listed node reports the same DIGEST (same data, same key count).
fn wait_converged(c: &Cluster, nodes: &[usize]) -> String {
    poll_until(CONVERGE, "replicas to converge", || {
        let digests: Vec<String> = nodes
            .iter()
            .map(|&i| {
                c.node(i)
                    .try_conn()
                    .ok()
                    .and_then(|mut con| try_q::<String>(&mut con, &["DIGEST"]).ok())
                    .unwrap_or_else(|| format!("unreachable node {i}"))
            })
            .collect();
        digests
            .windows(2)
            .all(|w| w[0] == w[1])
            .then(|| digests[0].clone())
    })
}

fn members(node: &Node) -> Vec<std::collections::BTreeMap<String, String>> {
    parse_members(&node.info("raft").unwrap_or_default())
}

fn role_of(node: &Node, name: &str) -> Option<String> {
    members(node)
        .into_iter()
        .find(|m| m.get("name").map(String::as_str) == Some(name))
        .and_then(|m| m.get("role").cloned())
}

fn follower_of(c: &Cluster, leader: usize) -> usize {
    (0..c.nodes.len()).find(|&i| i != leader).unwrap()
}

#[test]
fn writes_through_a_follower_are_answered_as_by_the_leader_and_read_everywhere() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(ELECTION);
    let f = follower_of(&c, leader);
    let mut fc = c.node(f).conn();
    let _: () = q(&mut fc, &["SET", "k", "v1"]);
    // Non-trivial replies computed by the apply: the same as the leader's.
    let n: i64 = q(&mut fc, &["DEL", "k", "nothere"]);
    assert_eq!(n, 1);
    let n: i64 = q(&mut fc, &["INCR", "counter"]);
    assert_eq!(n, 1);
    let n: i64 = q(&mut fc, &["APPEND", "s", "abc"]);
    assert_eq!(n, 3);
    assert_eq!(call(c.node(f), &["SET", "s", "x", "NX"]), "$-1\\r\\n");
    // A client always reads its own write on the node it wrote through.
    let v: String = q(&mut fc, &["GET", "s"]);
    assert_eq!(v, "abc");
    for i in 0..3 {
        poll_until(CONVERGE, "replication to every node", || {
            (call(c.node(i), &["GET", "counter"]) == "$1\\r\\n1\\r\\n").then_some(())
        });
    }
    wait_converged(&c, &[0, 1, 2]);
    // INFO raft on a follower names the leader and its client address.
    let info = c.node(f).info("raft").unwrap();
    let leader_name = &c.node(leader).name;
    assert_eq!(
        parse_info_field(&info, "raft_leader").as_deref(),
        Some(leader_name.as_str())
    );
    assert_eq!(
        parse_info_field(&info, "raft_leader_addr"),
        Some(c.node(leader).client_addr())
    );
    assert_eq!(parse_members(&info).len(), 3);
}

/// Apply is total: entries a client's checks would have refused (too few arguments, unknown
/// names, bad values, reads) are proposed as they are (`DEBUG PROPOSE`, debug builds only) and
/// give every node the same error reply; no node crashes, then or when it applies them again
/// from its log after a kill -9.
#[test]
fn malformed_entries_give_every_node_the_same_error_and_crash_none() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(ELECTION);
    let f = follower_of(&c, leader);
    let cases: &[(&[&str], &str)] = &[
        (
            &["GET"],
            "-ERR wrong number of arguments for 'get' command\r\n",
        ),
        (
            &["SET", "k"],
            "-ERR wrong number of arguments for 'set' command\r\n",
        ),
        (
            &["MSET", "a", "1", "b"],
            "-ERR wrong number of arguments for 'mset' command\r\n",
        ),
        (
            &["JOIN", "x"],
            "-ERR wrong number of arguments for 'join' command\r\n",
        ),
        (
            &["INCRBY", "n", "x"],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (&["SET", "k", "v", "BOGUS"], "-ERR syntax error\r\n"),
        (&["GET", "k"], "-ERR not a write command\r\n"),
        (&["PING"], "-ERR not a write command\r\n"),
        (
            &["NOSUCH", "a"],
            "-ERR unknown command 'NOSUCH', with args beginning with: 'a' \r\n",
        ),
        (
            &[],
            "-ERR unknown command '', with args beginning with: \r\n",
        ),
    ];
    for (argv, want) in cases {
        let mut full = vec!["DEBUG", "PROPOSE"];
        full.extend_from_slice(argv);
        let got = c.node(f).raw().call(&full);
        assert_eq!(
            String::from_utf8_lossy(&got),
            *want,
            "DEBUG PROPOSE {argv:?}"
        );
    }
    c.node(f).raw().check(&["SET", "after", "ok"], "+OK\r\n");
    // A database chosen on a follower travels with the write.
    let mut fc = c.node(f).raw();
    fc.check(&["SELECT", "2"], "+OK\r\n");
    fc.check(&["SET", "in2", "two"], "+OK\r\n");
    let mut lc = c.node(leader).raw();
    lc.check(&["GET", "in2"], "$-1\r\n");
    lc.check(&["SELECT", "2"], "+OK\r\n");
    poll_until(CONVERGE, "the write in database 2 on the leader", || {
        (lc.call(&["GET", "in2"]) == b"$3\r\ntwo\r\n").then_some(())
    });
    wait_converged(&c, &[0, 1, 2]);
    // Every node applied the same entries and is still serving; a restarted one applies them
    // again from its log and catches up.
    c.nodes[f].kill9();
    c.nodes[f].restart();
    c.node(leader)
        .raw()
        .check(&["SET", "later", "ok"], "+OK\r\n");
    wait_converged(&c, &[0, 1, 2]);
    for node in &mut c.nodes {
        assert!(node.is_running(), "{} exited", node.name);
    }
}

#[test]
fn manual_join_from_any_member_and_join_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut n0 = Node::start("node0", dir.path(), &[]);
    n0.wait_role("leader", ELECTION);
    // node1 and node2 start on their own (each bootstraps an empty cluster of one).
    let mut n1 = Node::start("node1", dir.path(), &[]);
    let mut n2 = Node::start("node2", dir.path(), &[]);
    n1.wait_role("leader", ELECTION);
    n2.wait_role("leader", ELECTION);

    assert_eq!(
        call(&n0, &["JOIN", "node1"]),
        show(b"-ERR wrong number of arguments for 'join' command\r\n")
    );
    assert!(call(&n0, &["JOIN", "node1", "nonsense"]).starts_with("-ERR invalid raft address"));
    assert!(call(&n0, &["JOIN", "bad name!", "127.0.0.1:1"]).starts_with("-ERR invalid node name"));

    let r = call(&n0, &["JOIN", "node1", &n1.raft_addr(), &n1.client_addr()]);
    assert_eq!(r, "+OK\\r\\n");
    poll_until(CONVERGE, "node1 to become a voter", || {
        (role_of(&n0, "node1").as_deref() == Some("voter")).then_some(())
    });
    // JOIN sent to a follower is forwarded to the leader.
    let follower = if n0.info_field("raft", "raft_role").as_deref() == Some("leader") {
        &n1
    } else {
        &n0
    };
    let r = call(
        follower,
        &["JOIN", "node2", &n2.raft_addr(), &n2.client_addr()],
    );
    assert_eq!(r, "+OK\\r\\n");
    poll_until(CONVERGE, "node2 to become a voter", || {
        (role_of(&n0, "node2").as_deref() == Some("voter")).then_some(())
    });
    let _: () = q(&mut n2.conn(), &["SET", "joined", "yes"]);
    for n in [&n0, &n1, &n2] {
        poll_until(CONVERGE, "the write on every node", || {
            (call(n, &["GET", "joined"]) == "$3\\r\\nyes\\r\\n").then_some(())
        });
    }

    // Repeating a JOIN with the same address is a no-op; the name with another address is not.
    assert_eq!(call(&n0, &["JOIN", "node2", &n2.raft_addr()]), "+OK\\r\\n");
    let r = call(&n0, &["JOIN", "node2", "127.0.0.1:1"]);
    assert!(r.contains("is already used by another member"), "{r}");

    // A node that holds data of its own refuses to be absorbed; the JOIN is accepted but the
    // node never becomes a member, and LEAVE takes the record out again.
    let mut n3 = Node::start("node3", dir.path(), &[]);
    n3.wait_role("leader", ELECTION);
    let _: () = q(&mut n3.conn(), &["SET", "mine", "1"]);
    assert_eq!(
        call(&n0, &["JOIN", "node3", &n3.raft_addr(), &n3.client_addr()]),
        "+OK\\r\\n"
    );
    poll_until(CONVERGE, "node3 to refuse the cluster", || {
        n3.log().contains("refused peer connection").then_some(())
    });
    assert_eq!(call(&n3, &["GET", "mine"]), "$1\\r\\n1\\r\\n");
    assert_eq!(call(&n0, &["LEAVE", "node3"]), "+OK\\r\\n");
    poll_until(CONVERGE, "node3 to be removed", || {
        (role_of(&n0, "node3").as_deref() == Some("removed")).then_some(())
    });
    let r = call(&n0, &["JOIN", "node3", &n3.raft_addr()]);
    assert!(r.contains("cannot be reused"), "{r}");
}

#[test]
fn a_node_waiting_to_join_refuses_writes_and_join() {
    let dir = tempfile::tempdir().unwrap();
    // --join pointing at nothing: the node waits, outside any cluster.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut n = Node::start("lonely", dir.path(), &args(&["--join", &nowhere]));
    n.wait_ready(START_TIMEOUT);
    assert_eq!(
        n.info_field("raft", "raft_role").as_deref(),
        Some("joining")
    );
    let r = call(&n, &["SET", "a", "1"]);
    assert!(
        r.starts_with("-CLUSTERDOWN this node has not joined a cluster"),
        "{r}"
    );
    let r = call(&n, &["JOIN", "other", "127.0.0.1:1"]);
    assert!(r.starts_with("-CLUSTERDOWN"), "{r}");
    // Reads are served (from its empty state).
    assert_eq!(call(&n, &["GET", "a"]), "$-1\\r\\n");
}

#[test]
fn leader_failover_then_restart_catches_up() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(ELECTION);
    let _: () = q(&mut c.node(leader).conn(), &["SET", "before", "1"]);
    wait_converged(&c, &[0, 1, 2]);
    let old_term = c.node(leader).info_u64("raft", "raft_term").unwrap();

    c.nodes[leader].kill9();
    let killed_at = Instant::now();
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    // Reads keep being served by the followers during the election.
    for &i in &others {
        assert_eq!(call(c.node(i), &["GET", "before"]), "$1\\r\\n1\\r\\n");
    }
    // A write through a survivor waits for the new leader and then succeeds.
    let mut con = c.node(others[0]).conn();
    let _: () = q(&mut con, &["SET", "after", "2"]);
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(15), "first write took {took:?}");
    let new_leader = poll_until(ELECTION, "a new leader", || {
        others
            .iter()
            .copied()
            .find(|&i| c.node(i).info_field("raft", "raft_role").as_deref() == Some("leader"))
    });
    assert!(c.node(new_leader).info_u64("raft", "raft_term").unwrap() > old_term);
    for &i in &others {
        let _: () = q(&mut c.node(i).conn(), &["INCR", "n"]);
    }

    c.nodes[leader].restart();
    c.nodes[leader].wait_ready(START_TIMEOUT);
    let digest = wait_converged(&c, &[0, 1, 2]);
    assert!(digest.ends_with(" 3"), "3 keys expected: {digest}");
    assert_eq!(call(c.node(leader), &["GET", "n"]), "$1\\r\\n2\\r\\n");
    assert_eq!(
        c.node(leader).info_field("raft", "raft_role").as_deref(),
        Some("follower")
    );
}

#[test]
fn leave_a_follower_then_the_leader() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(ELECTION);
    let f = follower_of(&c, leader);
    let fname = c.node(f).name.clone();
    let lname = c.node(leader).name.clone();
    let third = (0..3).find(|&i| i != leader && i != f).unwrap();

    assert_eq!(
        call(c.node(third), &["LEAVE", "nosuch"]),
        show(b"-ERR no member named 'nosuch'\r\n")
    );
    // LEAVE of a follower, sent to the other follower.
    assert_eq!(call(c.node(third), &["LEAVE", &fname]), "+OK\\r\\n");
    poll_until(CONVERGE, "the follower to be removed", || {
        (role_of(c.node(leader), &fname).as_deref() == Some("removed")).then_some(())
    });
    poll_until(CONVERGE, "the removed node to know it", || {
        (c.node(f).info_field("raft", "raft_role").as_deref() == Some("removed")).then_some(())
    });
    let r = call(c.node(f), &["SET", "x", "1"]);
    assert!(r.starts_with("-ERR this node was removed"), "{r}");
    // Two voters left: writes still commit.
    let _: () = q(&mut c.node(third).conn(), &["SET", "two", "voters"]);

    // Now the leader leaves: leadership moves first, then it is removed.
    assert_eq!(call(c.node(third), &["REMOVE", &lname]), "+OK\\r\\n");
    poll_until(ELECTION, "the old leader to be removed", || {
        (role_of(c.node(third), &lname).as_deref() == Some("removed")).then_some(())
    });
    poll_until(ELECTION, "the last node to lead", || {
        (c.node(third).info_field("raft", "raft_role").as_deref() == Some("leader")).then_some(())
    });
    let _: () = q(&mut c.node(third).conn(), &["SET", "one", "voter"]);
    let r = call(c.node(third), &["LEAVE", &c.node(third).name]);
    assert!(r.starts_with("-ERR cannot remove the last voter"), "{r}");
    // Removed names stay reserved.
    let r = call(c.node(third), &["JOIN", &fname, "127.0.0.1:1"]);
    assert!(r.contains("cannot be reused"), "{r}");
}

#[test]
fn new_node_after_compaction_catches_up_from_a_snapshot() {
    let compact = ["--compact-entries", "200", "--compact-keep", "20"];
    let mut c = Cluster::start(3, &compact);
    let leader = c.wait_for_leader(ELECTION);
    {
        let mut con = c.node(leader).conn();
        let mut pipe = redis::pipe();
        for i in 0..2000 {
            pipe.cmd("SET")
                .arg(format!("key{i}"))
                .arg(format!("value{i}-{}", "x".repeat(100)));
        }
        let _: () = pipe.query(&mut con).expect("pipelined SETs");
    }
    poll_until(CONVERGE, "the leader to compact its log", || {
        (c.node(leader).info_u64("raft", "raft_first_index")? > 100).then_some(())
    });
    let seed = c.node(follower_of(&c, leader)).client_addr();
    let mut e = args(&compact);
    e.extend(args(&["--join", &seed]));
    let n3 = Node::start("node3", c.dir(), &e);
    c.nodes.push(n3);
    c.wait_formed(4, CONVERGE);
    let digest = wait_converged(&c, &[0, 1, 2, 3]);
    assert!(digest.ends_with(" 2000"), "{digest}");
    // It started from a snapshot: its log begins after the snapshot's index.
    assert!(c.node(3).info_u64("raft", "raft_first_index").unwrap() > 100);
    assert!(c.node(3).log().contains("installed snapshot"));
    // And it takes part: a write through it replicates.
    let _: () = q(&mut c.node(3).conn(), &["SET", "via", "node3"]);
    wait_converged(&c, &[0, 1, 2, 3]);
}

#[test]
fn lost_quorum_never_acknowledges_then_recovers() {
    let mut c = Cluster::start(3, &["--write-timeout-ms", "1500"]);
    let leader = c.wait_for_leader(ELECTION);
    let _: () = q(&mut c.node(leader).conn(), &["SET", "k", "before"]);
    wait_converged(&c, &[0, 1, 2]);
    let survivor = follower_of(&c, leader);
    for i in 0..3 {
        if i != survivor {
            c.nodes[i].kill9();
        }
    }
    for attempt in 0..3 {
        let started = Instant::now();
        let r = call(c.node(survivor), &["SET", "k", &format!("lost{attempt}")]);
        let took = started.elapsed();
        assert!(
            r.starts_with("-CLUSTERDOWN")
                || r.starts_with("-TIMEOUT")
                || r.starts_with("-TRYAGAIN"),
            "a write without quorum got {r}"
        );
        assert!(took < Duration::from_secs(5), "bounded wait, took {took:?}");
    }
    // Reads are still served locally, and show no unacknowledged write.
    assert_eq!(
        call(c.node(survivor), &["GET", "k"]),
        "$6\\r\\nbefore\\r\\n"
    );

    let back = (0..3).find(|&i| i != survivor).unwrap();
    c.nodes[back].restart();
    c.nodes[back].wait_ready(START_TIMEOUT);
    poll_until(ELECTION, "writes to succeed again", || {
        (call(c.node(survivor), &["SET", "k", "after"]) == "+OK\\r\\n").then_some(())
    });
    poll_until(CONVERGE, "the returned node to catch up", || {
        (call(c.node(back), &["GET", "k"]) == "$5\\r\\nafter\\r\\n").then_some(())
    });
}

#[test]
fn five_nodes_survive_two_kills() {
    let mut c = Cluster::start(5, &[]);
    let leader = c.wait_for_leader(ELECTION);
    let victims = [leader, (leader + 1) % 5];
    for &v in &victims {
        c.nodes[v].kill9();
    }
    let alive: Vec<usize> = (0..5).filter(|i| !victims.contains(i)).collect();
    for (n, &i) in alive.iter().enumerate() {
        let mut con = c.node(i).conn();
        let _: () = q(&mut con, &["SET", &format!("k{n}"), "v"]);
    }
    wait_converged(&c, &alive);
    for &v in &victims {
        c.nodes[v].restart();
    }
    let digest = wait_converged(&c, &[0, 1, 2, 3, 4]);
    assert!(digest.ends_with(" 3"), "{digest}");
}

#[test]
fn sigterm_on_a_cluster_node_exits_cleanly_and_it_rejoins() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(ELECTION);
    let status = c.nodes[leader].sigterm();
    assert!(status.success(), "exit status {status:?}");
    let f = follower_of(&c, leader);
    let _: () = q(&mut c.node(f).conn(), &["SET", "while", "away"]);
    c.nodes[leader].restart();
    wait_converged(&c, &[0, 1, 2]);
}

#[test]
fn strangers_on_the_raft_port_are_refused() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(ELECTION);
    // Garbage, then a well-formed handshake from another cluster name: both refused.
    let (_, closed) = raw_exchange(
        &c.node(0).raft_addr(),
        b"GET / HTTP/1.0\r\n\r\n",
        IO_TIMEOUT,
    );
    assert!(closed);
    let dir = tempfile::tempdir().unwrap();
    let mut other = Node::start(
        "intruder",
        dir.path(),
        &args(&[
            "--cluster",
            "elsewhere",
            "--join",
            &c.node(leader).client_addr(),
        ]),
    );
    other.wait_ready(START_TIMEOUT);
    poll_until(
        CONVERGE,
        "the intruder to be accepted as a member record",
        || role_of(c.node(leader), "intruder"),
    );
    // Its handshakes name another cluster: it never gets raft traffic, never becomes a voter.
    poll_until(
        CONVERGE,
        "the intruder to refuse the leader's handshake",
        || {
            other
                .log()
                .contains("refused peer connection")
                .then_some(())
        },
    );
    assert_ne!(
        role_of(c.node(leader), "intruder").as_deref(),
        Some("voter")
    );
    assert_eq!(
        other.info_field("raft", "raft_role").as_deref(),
        Some("joining")
    );
    let _: () = q(&mut c.node(leader).conn(), &["SET", "still", "fine"]);
}
