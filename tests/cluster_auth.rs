//! An authenticated cluster: nodes sharing a cluster secret form a cluster, replicate and stream
//! snapshots as usual; a process that does not know the secret (a wrong one, or none) cannot get
//! raft messages, a snapshot or its own messages accepted, and the refusal is logged.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use kvd::raft::transport::{Handshake, Purpose};

const CONVERGE: Duration = Duration::from_secs(30);
const SECRET: &[&str] = &["--cluster-secret", "correct horse"];

#[test]
fn only_nodes_that_know_the_secret_take_part() {
    let compact = ["--compact-entries", "200", "--compact-keep", "20"];
    let mut flags = SECRET.to_vec();
    flags.extend_from_slice(&compact);
    let mut c = Cluster::start(3, &flags);
    let leader = c.wait_for_leader(CONVERGE);
    let mut lc = c.node(leader).raw();
    for i in 0..300 {
        lc.check(&["SET", &format!("k{i}"), "v"], "+OK\r\n");
    }
    for i in 0..3 {
        poll_until(CONVERGE, "replication among nodes with the secret", || {
            (c.node(i).raw().call(&["DBSIZE"]) == b":300\r\n").then_some(())
        });
    }
    // A new node with the secret catches up through a snapshot (the log was compacted).
    poll_until(CONVERGE, "the leader to compact its log", || {
        (c.node(leader).info_u64("raft", "raft_first_index")? > 100).then_some(())
    });
    let seed = c.node(leader).client_addr();
    let mut good = args(&flags);
    good.extend(args(&["--join", &seed]));
    c.nodes.push(Node::start("node3", c.dir(), &good));
    c.wait_formed(4, CONVERGE);
    poll_until(CONVERGE, "the new node to hold the data", || {
        (c.node(3).raw().call(&["DBSIZE"]) == b":300\r\n").then_some(())
    });

    // Strangers: one with the wrong secret, one with none. Their JOIN is a client command and
    // may be recorded, but no raft traffic or snapshot reaches them, nor theirs the cluster.
    let wrong = args(&["--cluster-secret", "wrong", "--join", &seed]);
    let mut w = Node::start("wrong", c.dir(), &wrong);
    let none = args(&["--join", &seed]);
    let mut n = Node::start("nosecret", c.dir(), &none);
    std::thread::sleep(Duration::from_secs(3));
    for stranger in [&mut w, &mut n] {
        let keys = stranger.raw().call(&["DBSIZE"]);
        assert_eq!(keys, b":0\r\n", "{} got data", stranger.name);
        assert_ne!(
            stranger.info_field("raft", "raft_role").as_deref(),
            Some("follower"),
            "{} became a follower",
            stranger.name
        );
    }
    let logs: String = (0..4).map(|i| c.node(i).log()).collect();
    assert!(
        logs.contains("peer could not prove the cluster secret")
            || logs.contains("does not know the cluster secret"),
        "no refusal of the wrong secret logged"
    );
    // The secret-less node refuses the cluster's authenticated connections (and the cluster
    // refuses it, if it dials).
    assert!(
        logs.contains("this cluster requires a cluster secret; the peer has none")
            || n.log()
                .contains("the peer has a cluster secret; this node has none"),
        "no refusal between the cluster and the secret-less node logged"
    );
    // The cluster goes on.
    lc.check(&["SET", "after", "strangers"], "+OK\r\n");
    poll_until(CONVERGE, "replication after the strangers", || {
        (c.node(3).raw().call(&["GET", "after"]) == b"$9\r\nstrangers\r\n").then_some(())
    });
}

#[test]
fn a_forged_handshake_is_refused_before_anything_is_read() {
    let node = Node::single(SECRET);
    let id = node
        .info_field("raft", "raft_node_id")
        .and_then(|s| s.parse().ok())
        .expect("node id");
    let hs = Handshake {
        cluster_name: "kvd".into(),
        cluster_id: 1,
        from_id: 42,
        from_name: "mallory".into(),
        from_addr: "127.0.0.1:1".into(),
        to_id: id,
        purpose: Purpose::Snapshot,
        authenticated: true,
        nonce: [7; 16],
    };
    let mut s = TcpStream::connect(node.raft_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&hs.encode()).unwrap();
    // The challenge: 0x02, a nonce, the acceptor's MAC.
    let mut challenge = [0u8; 1 + 16 + 32];
    s.read_exact(&mut challenge).unwrap();
    assert_eq!(challenge[0], 2);
    // A made-up answer: refused with a verdict naming why, and the connection closes.
    s.write_all(&[0u8; 32]).unwrap();
    let mut verdict = Vec::new();
    let _ = s.read_to_end(&mut verdict);
    assert_eq!(verdict.first(), Some(&1), "{verdict:?}");
    assert!(String::from_utf8_lossy(&verdict).contains("could not prove the cluster secret"));
    // Without the authenticated flag: refused at once.
    let plain = Handshake {
        authenticated: false,
        ..hs
    };
    let mut s = TcpStream::connect(node.raft_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&plain.encode()).unwrap();
    let mut verdict = Vec::new();
    let _ = s.read_to_end(&mut verdict);
    assert_eq!(verdict.first(), Some(&1), "{verdict:?}");
    assert!(String::from_utf8_lossy(&verdict).contains("requires a cluster secret"));
}
