//! Key expiry with real `kvd` processes: replies byte for byte as redis-server 7.0 gives them
//! (each expected text below was first taken from Debian's redis-server 7.0.15), lazy expiry on
//! every node, active expiry by the leader (keys reclaimed on every node, also after a
//! failover), and TTLs that survive kill -9 and reach a new node through a snapshot.

mod common;

use std::time::Duration;

use common::*;

const CONVERGE: Duration = Duration::from_secs(30);

/// (command, reply) pairs run in order on one connection; the replies are redis-server's.
fn check_all(c: &mut RawConn, script: &[(&[&str], &str)]) {
    for (argv, want) in script {
        let got = c.call(argv);
        assert_eq!(String::from_utf8_lossy(&got), *want, "reply to {argv:?}");
    }
}

#[test]
fn expiry_commands_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let invalid_set = "-ERR invalid expire time in 'set' command\r\n";
    let not_int = "-ERR value is not an integer or out of range\r\n";
    let syntax = "-ERR syntax error\r\n";
    check_all(
        &mut c,
        &[
            (&["SET", "k", "v", "EX", "0"], invalid_set),
            (&["SET", "k", "v", "EX", "-1"], invalid_set),
            (&["SET", "k", "v", "EX", "abc"], not_int),
            (&["SET", "k", "v", "EX", "10", "PX", "10"], syntax),
            (&["SET", "k", "v", "NX", "XX"], syntax),
            (&["SET", "k", "v", "KEEPTTL", "EX", "5"], syntax),
            (&["SET", "k", "v", "PX", "10", "KEEPTTL"], syntax),
            (&["SET", "k", "v", "EX"], syntax),
            (&["SET", "k", "v", "EX", "9223372036854775807"], invalid_set),
            (&["SET", "k", "v", "PX", "9223372036854775807"], invalid_set),
            (&["SET", "k", "v", "NX", "GET"], "$-1\r\n"),
            (&["SET", "k", "v", "EXAT", "9223372036854775"], "+OK\r\n"),
            (&["EXPIRETIME", "k"], ":9223372036854775\r\n"),
            (&["SET", "k", "v", "PXAT", "9223372036854775807"], "+OK\r\n"),
            (&["PEXPIRETIME", "k"], ":9223372036854775807\r\n"),
            (&["SET", "k", "v", "KEEPTTL"], "+OK\r\n"),
            (&["PEXPIRETIME", "k"], ":9223372036854775807\r\n"),
            (&["SET", "k", "v"], "+OK\r\n"),
            (&["TTL", "k"], ":-1\r\n"),
            (
                &["SETEX", "k", "0", "v"],
                "-ERR invalid expire time in 'setex' command\r\n",
            ),
            (
                &["PSETEX", "k", "-1", "v"],
                "-ERR invalid expire time in 'psetex' command\r\n",
            ),
            (
                &["EXPIRE", "k", "10", "NX", "XX"],
                "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
            ),
            (
                &["EXPIRE", "k", "10", "GT", "LT"],
                "-ERR GT and LT options at the same time are not compatible\r\n",
            ),
            (
                &["EXPIRE", "k", "10", "foo"],
                "-ERR Unsupported option foo\r\n",
            ),
            (&["EXPIRE", "k", "abc"], not_int),
            (
                &["EXPIRE", "k", "9223372036854775807"],
                "-ERR invalid expire time in 'expire' command\r\n",
            ),
            (
                &["PEXPIRE", "k", "9223372036854775807"],
                "-ERR invalid expire time in 'pexpire' command\r\n",
            ),
            (
                &["GETEX", "k", "EX", "0"],
                "-ERR invalid expire time in 'getex' command\r\n",
            ),
            (&["GETEX", "k", "PERSIST", "EX", "1"], syntax),
            (&["GETEX", "k", "foo"], syntax),
            (&["GETEX", "k", "EX"], syntax),
            (
                &["GETEX"],
                "-ERR wrong number of arguments for 'getex' command\r\n",
            ),
            // Conditions: a key without expiry never passes GT, always passes LT.
            (&["EXPIRE", "k", "100", "XX"], ":0\r\n"),
            (&["EXPIRE", "k", "100", "GT"], ":0\r\n"),
            (&["EXPIRE", "k", "100", "NX"], ":1\r\n"),
            (&["TTL", "k"], ":100\r\n"),
            (&["EXPIRE", "k", "50", "GT"], ":0\r\n"),
            (&["EXPIRE", "k", "200", "GT"], ":1\r\n"),
            (&["EXPIRE", "k", "300", "LT"], ":0\r\n"),
            (&["EXPIRE", "k", "10", "LT"], ":1\r\n"),
            (&["EXPIRE", "k", "10", "NX"], ":0\r\n"),
            (&["PERSIST", "k"], ":1\r\n"),
            (&["PERSIST", "k"], ":0\r\n"),
            (&["PERSIST", "nokey"], ":0\r\n"),
            (&["EXPIRE", "nokey", "10"], ":0\r\n"),
            (&["TTL", "nokey"], ":-2\r\n"),
            (&["PTTL", "nokey"], ":-2\r\n"),
            (&["EXPIRETIME", "nokey"], ":-2\r\n"),
            (&["EXPIRETIME", "k"], ":-1\r\n"),
            (&["EXPIREAT", "k", "99999999999"], ":1\r\n"),
            (&["EXPIRETIME", "k"], ":99999999999\r\n"),
            (&["PEXPIRETIME", "k"], ":99999999999000\r\n"),
            // A time in the past deletes the key and counts as set.
            (&["PEXPIREAT", "k", "1"], ":1\r\n"),
            (&["EXISTS", "k"], ":0\r\n"),
            (&["SET", "j", "v", "EX", "100"], "+OK\r\n"),
            (&["TTL", "j"], ":100\r\n"),
            (&["GETEX", "j", "PERSIST"], "$1\r\nv\r\n"),
            (&["TTL", "j"], ":-1\r\n"),
            (&["EXPIRE", "j", "-1"], ":1\r\n"),
            (&["EXISTS", "j"], ":0\r\n"),
            (&["SET", "s", "w", "EXAT", "1"], "+OK\r\n"),
            (&["EXISTS", "s"], ":0\r\n"),
            (&["GETEX", "s", "PX", "100"], "$-1\r\n"),
            (&["SETEX", "sx", "100", "val"], "+OK\r\n"),
            (&["TTL", "sx"], ":100\r\n"),
            (&["SET", "sx", "v", "EX", "10", "GET"], "$3\r\nval\r\n"),
            (&["TTL", "sx"], ":10\r\n"),
            // In-place changes keep the expiry; SET clears it.
            (&["INCR", "cnt"], ":1\r\n"),
            (&["EXPIRE", "cnt", "100"], ":1\r\n"),
            (&["INCR", "cnt"], ":2\r\n"),
            (&["APPEND", "cnt", "0"], ":2\r\n"),
            (&["TTL", "cnt"], ":100\r\n"),
            (&["SET", "cnt", "5"], "+OK\r\n"),
            (&["TTL", "cnt"], ":-1\r\n"),
            (&["GETEX", "cnt", "EXAT", "1"], "$1\r\n5\r\n"),
            (&["EXISTS", "cnt"], ":0\r\n"),
        ],
    );
}

/// DBSIZE counts expired keys until they are reclaimed, as Redis's does.
fn dbsize(node: &Node) -> Option<i64> {
    let reply = node.raw().call(&["DBSIZE"]);
    std::str::from_utf8(&reply)
        .ok()?
        .strip_prefix(':')?
        .trim()
        .parse()
        .ok()
}

/// Redis's lazy expiry: a key a command finds past its time is removed then, with `expired`.
/// With the leader's active expiry off (`DEBUG SET-ACTIVE-EXPIRE 0`, as in Redis), nothing
/// reaps a lapsed key until it is read; a read through a follower then gets it removed on every
/// node, and a subscriber on the other follower hears `expired`.
#[test]
fn a_key_read_after_its_time_is_reaped_everywhere_even_with_active_expiry_off() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(CONVERGE);
    let fs: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let mut l = c.node(leader).raw();
    l.check(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"], "+OK\r\n");
    let mut sub = c.node(fs[1]).raw();
    sub.check(
        &["CONFIG", "SET", "notify-keyspace-events", "Ex"],
        "+OK\r\n",
    );
    sub.send_cmd(&["SUBSCRIBE", "__keyevent@0__:expired"]);
    sub.expect(b"*3\r\n$9\r\nsubscribe\r\n$22\r\n__keyevent@0__:expired\r\n:1\r\n");
    l.check(&["SET", "lazy", "v", "PX", "100"], "+OK\r\n");
    l.check(&["SET", "lazy2", "v", "PX", "100"], "+OK\r\n");
    l.check(&["SET", "kept", "v"], "+OK\r\n");
    for &i in &fs {
        poll_until(CONVERGE, "the keys on every node", || {
            (dbsize(c.node(i)) == Some(3)).then_some(())
        });
    }
    // Let the TTLs lapse (DBSIZE reads no key, so it notices nothing): nothing reaps them.
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..3 {
        assert_eq!(
            dbsize(c.node(i)),
            Some(3),
            "node {i}: reaped before any read"
        );
    }
    let mut reader = c.node(fs[0]).raw();
    reader.check(&["GET", "lazy"], "$-1\r\n");
    sub.expect(b"*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:expired\r\n$4\r\nlazy\r\n");
    // KEYS passes over an expired key as Redis's deletes it.
    reader.check(&["KEYS", "*"], "*1\r\n$4\r\nkept\r\n");
    sub.expect(b"*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:expired\r\n$5\r\nlazy2\r\n");
    for i in 0..3 {
        poll_until(CONVERGE, "the read key reaped on every node", || {
            (dbsize(c.node(i)) == Some(1)).then_some(())
        });
        c.node(i).raw().check(&["GET", "kept"], "$1\r\nv\r\n");
    }
    l.check(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"], "+OK\r\n");
}

#[test]
fn expired_keys_vanish_on_every_node_and_the_leader_reclaims_them_everywhere() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(CONVERGE);
    let f = (0..3).find(|&i| i != leader).unwrap();
    let mut fc = c.node(f).raw();
    // Through a follower: short TTLs, one long one, one without.
    for i in 0..50 {
        fc.check(&["SET", &format!("short{i}"), "v", "PX", "400"], "+OK\r\n");
    }
    fc.check(&["SET", "long", "v", "EX", "1000"], "+OK\r\n");
    fc.check(&["SET", "forever", "v"], "+OK\r\n");
    // Renewed before it expires: it must survive the reaping of the others.
    fc.check(&["SET", "renewed", "v", "PX", "300"], "+OK\r\n");
    fc.check(&["SET", "renewed", "w"], "+OK\r\n");
    // Every node serves no expired key once its time has passed...
    for i in 0..3 {
        poll_until(CONVERGE, "short keys to expire on every node", || {
            (c.node(i).raw().call(&["GET", "short7"]) == b"$-1\r\n").then_some(())
        });
    }
    // ...and the leader's active expiry removes them from every node's keyspace.
    for i in 0..3 {
        poll_until(CONVERGE, "expired keys reclaimed on every node", || {
            (dbsize(c.node(i)) == Some(3)).then_some(())
        });
    }
    for i in 0..3 {
        let mut con = c.node(i).raw();
        con.check(&["GET", "renewed"], "$1\r\nw\r\n");
        con.check(&["TTL", "forever"], ":-1\r\n");
        let ttl = con.call(&["TTL", "long"]);
        assert!(ttl == b":1000\r\n" || ttl == b":999\r\n", "{ttl:?}");
    }
    // After a failover the new leader takes over reclaiming.
    for i in 0..20 {
        fc.check(&["SET", &format!("later{i}"), "v", "PX", "1500"], "+OK\r\n");
    }
    c.nodes[leader].kill9();
    for i in (0..3).filter(|&i| i != leader) {
        poll_until(CONVERGE, "keys reclaimed by the new leader", || {
            (dbsize(c.node(i)) == Some(3)).then_some(())
        });
    }
    // The old leader comes back and applies the same removals from the log.
    c.nodes[leader].restart();
    poll_until(CONVERGE, "the restarted node to catch up", || {
        (dbsize(c.node(leader)) == Some(3)).then_some(())
    });
}

#[test]
fn ttls_survive_kill9_and_reach_a_new_node_through_a_snapshot() {
    let compact = ["--compact-entries", "200", "--compact-keep", "20"];
    let mut c = Cluster::start(3, &compact);
    let leader = c.wait_for_leader(CONVERGE);
    let mut lc = c.node(leader).raw();
    lc.check(&["SET", "ttl", "v", "EXAT", "99999999999"], "+OK\r\n");
    lc.check(&["SET", "soon", "v", "PX", "2500"], "+OK\r\n");
    for i in 0..300 {
        lc.check(&["SET", &format!("pad{i}"), "x"], "+OK\r\n");
    }
    poll_until(CONVERGE, "the leader to compact its log", || {
        (c.node(leader).info_u64("raft", "raft_first_index")? > 100).then_some(())
    });
    let seed = c.node(leader).client_addr();
    let mut e = args(&compact);
    e.extend(args(&["--join", &seed]));
    c.nodes.push(Node::start("node3", c.dir(), &e));
    c.wait_formed(4, CONVERGE);
    assert!(c.node(3).log().contains("installed snapshot"));
    poll_until(CONVERGE, "the new node to hold the TTL", || {
        (c.node(3).raw().call(&["EXPIRETIME", "ttl"]) == b":99999999999\r\n").then_some(())
    });
    // kill -9 and restart: the expiry is still there, on the restarted node and the new one.
    c.nodes[3].kill9();
    c.nodes[3].restart();
    c.node(3)
        .raw()
        .check(&["EXPIRETIME", "ttl"], ":99999999999\r\n");
    // And the short one expires on the new node too, and is reclaimed there.
    poll_until(CONVERGE, "the short key reclaimed on the new node", || {
        (c.node(3).raw().call(&["EXISTS", "soon"]) == b":0\r\n" && dbsize(c.node(3)) == Some(301))
            .then_some(())
    });
}
