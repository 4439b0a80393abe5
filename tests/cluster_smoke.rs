//! Smoke test of replication: three nodes form a cluster through `--join`, a write on the leader
//! (and one on a follower, forwarded) becomes visible on every node.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn three_nodes_form_and_replicate() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30));

    // Every node agrees on the membership and on who leads.
    let leader_name = cluster.node(leader).name.clone();
    for node in &cluster.nodes {
        let info = node.info("raft").expect("INFO raft");
        let members = parse_members(&info);
        let mut names: Vec<&str> = members.iter().map(|m| m["name"].as_str()).collect();
        names.sort();
        assert_eq!(names, ["node0", "node1", "node2"], "{}: {info}", node.name);
        poll_until(
            Duration::from_secs(10),
            "every node to know the leader",
            || (node.info_field("raft", "raft_leader")? == leader_name).then_some(()),
        );
    }

    let mut con = cluster.node(leader).conn();
    let _: () = q(&mut con, &["SET", "greeting", "hello"]);
    for node in &cluster.nodes {
        let mut c = node.conn();
        poll_until(
            Duration::from_secs(10),
            &format!("GET greeting on {}", node.name),
            || {
                let v: Option<String> = try_q(&mut c, &["GET", "greeting"]).ok()?;
                (v.as_deref() == Some("hello")).then_some(())
            },
        );
    }

    // A write sent to a follower is forwarded to the leader and answered as if sent there.
    let follower = (leader + 1) % cluster.nodes.len();
    let mut fcon = cluster.node(follower).conn();
    let n: i64 = q(&mut fcon, &["INCR", "hits"]);
    assert_eq!(n, 1);
    for node in &cluster.nodes {
        let mut c = node.conn();
        poll_until(
            Duration::from_secs(10),
            &format!("GET hits on {}", node.name),
            || {
                let v: Option<i64> = try_q(&mut c, &["GET", "hits"]).ok()?;
                (v == Some(1)).then_some(())
            },
        );
    }
}
