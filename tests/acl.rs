//! ACL users as replicated state, with real `kvd` processes: a user made on one node can log in
//! on every node (followers included) with the same permissions, refusals as redis-server 7.0.15
//! words them (commands, keys, inside scripts), a deleted user's connections on other nodes are
//! closed, and users survive a kill -9 and restart.

mod common;

use std::time::Duration;

use common::*;

const CONVERGE: Duration = Duration::from_secs(30);

const NOPERM_KEY: &str =
    "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n";

fn auth_ok(node: &Node, user: &str, pass: &str) -> Option<RawConn> {
    let mut c = node.raw();
    (c.call(&["AUTH", user, pass]) == b"+OK\r\n").then_some(c)
}

#[test]
fn users_made_on_one_node_hold_on_every_node_and_survive_restart() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(CONVERGE);
    let (a, b) = match leader {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    // Made through a follower: forwarded to the leader as one raft entry.
    let mut admin = c.node(a).raw();
    admin.check(
        &[
            "ACL", "SETUSER", "alice", "on", ">pw", "~app:*", "+get", "+set", "+eval",
        ],
        "+OK\r\n",
    );
    // The other follower knows her once it applied the entry; a wrong password stays refused.
    let mut alice = poll_until(CONVERGE, "alice on the other follower", || {
        auth_ok(c.node(b), "alice", "pw")
    });
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    c.node(b).raw().check(&["AUTH", "alice", "bad"], wrongpass);
    c.node(b).raw().check(&["AUTH", "nobody", "pw"], wrongpass);
    // Her permissions, as redis-server words the refusals.
    alice.check(&["SET", "app:1", "x"], "+OK\r\n");
    alice.check(&["SET", "other", "x"], NOPERM_KEY);
    alice.check(
        &["DEL", "app:1"],
        "-NOPERM this user has no permissions to run the 'del' command\r\n",
    );
    alice.check(
        &["ACL", "WHOAMI"],
        "-NOPERM this user has no permissions to run the 'acl|whoami' command\r\n",
    );
    // A script she runs is checked as her, on the node and in apply on every node.
    alice.check(
        &["EVAL", "return redis.call('set','app:2','y')", "0"],
        "+OK\r\n",
    );
    alice.check(
        &["EVAL", "return redis.pcall('del','app:2')", "0"],
        "-ERR The user executing the script can't run this command or subcommand\r\n",
    );
    let denied = alice.call(&["EVAL", "return redis.call('set','other','y')", "0"]);
    assert!(
        denied.starts_with(
            b"-ERR The user executing the script can't access at least one of the keys"
        ),
        "{}",
        show(&denied)
    );
    for i in 0..3 {
        poll_until(CONVERGE, "alice's writes everywhere", || {
            let mut r = c.node(i).raw();
            (r.call(&["GET", "app:2"]) == b"$1\r\ny\r\n" && r.call(&["GET", "other"]) == b"$-1\r\n")
                .then_some(())
        });
    }
    // Every node lists the same users.
    let list = admin.call(&["ACL", "LIST"]);
    assert!(show(&list).contains("user alice on"), "{}", show(&list));
    for i in 0..3 {
        poll_until(CONVERGE, "the same ACL LIST on every node", || {
            (c.node(i).raw().call(&["ACL", "LIST"]) == list).then_some(())
        });
    }

    // Deleted on one node: her connection on another node is closed, and she cannot log in.
    admin.check(
        &["ACL", "SETUSER", "bob", "on", ">secret", "~*", "+@all"],
        "+OK\r\n",
    );
    admin.check(&["ACL", "DELUSER", "alice"], ":1\r\n");
    assert!(
        alice.closed_within(CONVERGE),
        "alice's connection on another node stayed open after DELUSER"
    );
    poll_until(CONVERGE, "alice gone on the other follower", || {
        (c.node(b).raw().call(&["AUTH", "alice", "pw"]) == wrongpass.as_bytes()).then_some(())
    });

    // Killed and restarted: the users come back from its own disk (and the log).
    c.nodes[b].kill9();
    c.nodes[b].restart();
    let mut bob = poll_until(CONVERGE, "bob after the restart", || {
        auth_ok(c.node(b), "bob", "secret")
    });
    bob.check(&["SET", "any", "1"], "+OK\r\n");
    c.node(b).raw().check(&["AUTH", "alice", "pw"], wrongpass);
}
