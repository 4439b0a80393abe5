//! INFO persistence's dirty counter (`rdb_changes_since_last_save`) with real `kvd` processes:
//! each command moves it by what redis-server 7.0 counts for it. The expected deltas below were
//! taken from Debian's redis-server 7.0.15 (`--save ""`) running the same commands in the same
//! order from an empty database; SAVE, BGSAVE and a FLUSHALL while save points are configured
//! start the count again. On a cluster every node counts the same changes for the same entries,
//! and a SAVE restarts only the count of the node it ran on.

mod common;

use std::time::Duration;

use Expect::*;
use common::*;

const ELECTION: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// The counter grows by this much.
    Adds(u64),
    /// The counter is 0 afterwards (a save).
    Zero,
}

/// Steps: what the counter does over one command (or one MULTI ... EXEC).
const STEPS: &[(Expect, &[&[&str]])] = &[
    (Adds(0), &[&["FLUSHALL"]]),
    (Zero, &[&["SAVE"]]),
    (Adds(1), &[&["SET", "s", "v"]]),
    (Adds(1), &[&["SET", "s", "v"]]),
    (Adds(0), &[&["SET", "s", "w", "NX"]]),
    (Adds(1), &[&["SET", "s", "w", "XX"]]),
    (Adds(0), &[&["SETNX", "s", "x"]]),
    (Adds(1), &[&["SETNX", "s2", "x"]]),
    (Adds(3), &[&["MSET", "a", "1", "b", "2", "c", "3"]]),
    (Adds(0), &[&["MSETNX", "a", "1", "d", "2"]]),
    (Adds(2), &[&["MSETNX", "e", "1", "f", "2"]]),
    (Adds(1), &[&["APPEND", "s", ""]]),
    (Adds(1), &[&["APPEND", "s", "x"]]),
    (Adds(0), &[&["SETRANGE", "s", "0", ""]]),
    (Adds(1), &[&["SETRANGE", "s", "1", "zz"]]),
    (Adds(0), &[&["SETRANGE", "nosuch", "0", ""]]),
    (Adds(1), &[&["INCR", "n"]]),
    (Adds(1), &[&["INCRBY", "n", "0"]]),
    (Adds(1), &[&["DECRBY", "n", "5"]]),
    (Adds(1), &[&["INCRBYFLOAT", "n", "1.5"]]),
    (Adds(1), &[&["GETSET", "s", "q"]]),
    (Adds(0), &[&["GETDEL", "nosuch"]]),
    (Adds(1), &[&["GETDEL", "s2"]]),
    (Adds(0), &[&["GETEX", "a"]]),
    (Adds(1), &[&["GETEX", "a", "EX", "100"]]),
    (Adds(1), &[&["GETEX", "a", "EX", "100"]]),
    (Adds(1), &[&["GETEX", "a", "PERSIST"]]),
    (Adds(0), &[&["GETEX", "a", "PERSIST"]]),
    (Adds(1), &[&["SETBIT", "bits", "7", "1"]]),
    (Adds(0), &[&["SETBIT", "bits", "7", "1"]]),
    (Adds(1), &[&["SETBIT", "bits", "7", "0"]]),
    (Adds(1), &[&["SETBIT", "bits", "100", "0"]]),
    (
        Adds(3),
        &[&[
            "BITFIELD", "bf", "SET", "u8", "0", "5", "SET", "u8", "0", "5", "INCRBY", "u8", "0",
            "1", "GET", "u8", "0",
        ]],
    ),
    (Adds(0), &[&["BITFIELD", "bf", "SET", "u8", "0", "6"]]),
    (
        Adds(0),
        &[&[
            "BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "300",
        ]],
    ),
    (Adds(0), &[&["BITOP", "AND", "dst", "nosuch1", "nosuch2"]]),
    (Adds(1), &[&["BITOP", "OR", "dst", "bits", "bf"]]),
    (Adds(2), &[&["DEL", "a", "b", "nosuch"]]),
    (Adds(1), &[&["UNLINK", "c", "nosuch"]]),
    (Adds(1), &[&["EXPIRE", "n", "100"]]),
    (Adds(1), &[&["EXPIRE", "n", "100"]]),
    (Adds(0), &[&["EXPIRE", "n", "100", "NX"]]),
    (Adds(1), &[&["PERSIST", "n"]]),
    (Adds(0), &[&["PERSIST", "n"]]),
    (Adds(0), &[&["EXPIRE", "nosuch", "10"]]),
    (Adds(1), &[&["RENAME", "n", "n2"]]),
    (Adds(0), &[&["RENAMENX", "n2", "bits"]]),
    (Adds(0), &[&["RENAME", "n2", "n2"]]),
    (Adds(3), &[&["LPUSH", "l", "a", "b", "c"]]),
    (Adds(1), &[&["RPUSH", "l", "d"]]),
    (Adds(0), &[&["LPUSHX", "nol", "x"]]),
    (Adds(1), &[&["LPOP", "l"]]),
    (Adds(2), &[&["RPOP", "l", "2"]]),
    (Adds(0), &[&["LPOP", "l", "0"]]),
    (Adds(5), &[&["RPUSH", "l", "x", "y", "x", "z", "x"]]),
    (Adds(3), &[&["LREM", "l", "0", "x"]]),
    (Adds(1), &[&["LTRIM", "l", "1", "-1"]]),
    (Adds(1), &[&["LSET", "l", "0", "q"]]),
    (Adds(1), &[&["LINSERT", "l", "BEFORE", "q", "r"]]),
    (Adds(0), &[&["LINSERT", "l", "BEFORE", "nope", "r"]]),
    (Adds(1), &[&["LMOVE", "l", "l2", "LEFT", "RIGHT"]]),
    (Adds(2), &[&["SADD", "st", "a", "b", "a"]]),
    (Adds(0), &[&["SADD", "st", "a"]]),
    (Adds(1), &[&["SREM", "st", "a", "zz"]]),
    (Adds(1), &[&["SPOP", "st"]]),
    (Adds(3), &[&["SADD", "st", "1", "2", "3"]]),
    (Adds(3), &[&["SPOP", "st", "5"]]),
    (Adds(2), &[&["HSET", "h", "f", "1", "g", "2"]]),
    (Adds(1), &[&["HSET", "h", "f", "1"]]),
    (Adds(0), &[&["HSETNX", "h", "f", "3"]]),
    (Adds(1), &[&["HSETNX", "h", "k", "3"]]),
    (Adds(1), &[&["HDEL", "h", "f", "zz"]]),
    (Adds(1), &[&["HINCRBY", "h", "g", "1"]]),
    (Adds(2), &[&["ZADD", "z", "1", "a", "2", "b"]]),
    (Adds(0), &[&["ZADD", "z", "1", "a"]]),
    (Adds(2), &[&["ZADD", "z", "5", "a", "3", "c"]]),
    (Adds(1), &[&["ZADD", "z", "CH", "7", "a"]]),
    (Adds(1), &[&["ZINCRBY", "z", "1", "a"]]),
    (Adds(1), &[&["ZREM", "z", "a", "nope"]]),
    (Adds(2), &[&["ZADD", "z", "10", "x", "11", "y"]]),
    (Adds(2), &[&["ZREMRANGEBYSCORE", "z", "10", "11"]]),
    (Adds(2), &[&["ZPOPMIN", "z", "5"]]),
    (Adds(1), &[&["SWAPDB", "0", "1"]]),
    (Adds(1), &[&["SWAPDB", "0", "1"]]),
    (Adds(10), &[&["FLUSHDB"]]),
    (Adds(1), &[&["SET", "k1", "v"]]),
    (Adds(1), &[&["SET", "k2", "v"]]),
    (Adds(2), &[&["FLUSHALL"]]),
    (
        Adds(3),
        &[
            &["MULTI"],
            &["SET", "m", "1"],
            &["INCR", "m"],
            &["DEL", "m", "zz"],
            &["EXEC"],
        ],
    ),
    (
        Adds(3),
        &[
            &["MULTI"],
            &["SET", "m", "1"],
            &["FLUSHALL"],
            &["SET", "m2", "1"],
            &["EXEC"],
        ],
    ),
    (Adds(0), &[&["CONFIG", "SET", "save", "3600 1"]]),
    (Adds(1), &[&["SET", "m3", "1"]]),
    (Zero, &[&["FLUSHALL"]]),
    (
        Adds(2),
        &[
            &["MULTI"],
            &["SET", "m", "1"],
            &["FLUSHALL"],
            &["SET", "m2", "1"],
            &["INCR", "m2"],
            &["EXEC"],
        ],
    ),
    (Zero, &[&["BGSAVE"]]),
    (Adds(0), &[&["CONFIG", "SET", "save", ""]]),
    (
        Adds(3),
        &[&[
            "EVAL",
            "redis.call('set','e1','1'); redis.call('mset','e2','1','e3','2'); return 1",
            "0",
        ]],
    ),
];

fn changes(c: &mut RawConn) -> u64 {
    let reply = String::from_utf8(c.call(&["INFO", "persistence"])).unwrap();
    parse_info_field(&reply, "rdb_changes_since_last_save")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rdb_changes_since_last_save in {reply}"))
}

#[test]
fn commands_count_their_changes_as_redis_counts_them() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    for (expect, commands) in STEPS {
        let before = changes(&mut c);
        let mut last = Vec::new();
        for argv in commands.iter() {
            last = c.call(argv);
        }
        let after = changes(&mut c);
        let shown = format!("{commands:?} -> {}", show(&last));
        match expect {
            Adds(n) => assert_eq!(after, before + n, "{shown}"),
            Zero => assert_eq!(after, 0, "{shown}"),
        }
    }
}

#[test]
fn info_persistence_has_redis_fields_and_lastsave_moves_with_a_save() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let reply = String::from_utf8(c.call(&["INFO", "persistence"])).unwrap();
    for (k, v) in [
        ("loading", "0"),
        ("rdb_bgsave_in_progress", "0"),
        ("rdb_last_bgsave_status", "ok"),
        ("rdb_saves", "0"),
        ("aof_enabled", "0"),
    ] {
        assert_eq!(parse_info_field(&reply, k).as_deref(), Some(v), "{k}");
    }
    let last: i64 = parse_info_field(&reply, "rdb_last_save_time")
        .unwrap()
        .parse()
        .unwrap();
    let lastsave = String::from_utf8(c.call(&["LASTSAVE"])).unwrap();
    assert_eq!(lastsave, format!(":{last}\r\n"));
    c.check(&["SAVE"], "+OK\r\n");
    c.check(&["BGSAVE", "SCHEDULE"], "+Background saving started\r\n");
    c.check(&["BGSAVE", "NOW"], "-ERR syntax error\r\n");
    assert_eq!(node.info_u64("persistence", "rdb_saves"), Some(2));
}

#[test]
fn every_node_counts_the_same_changes_and_saves_on_its_own() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_formed(3, ELECTION);
    let leader = cluster.wait_for_leader(ELECTION);
    let counts = |cluster: &Cluster| -> Vec<u64> {
        cluster
            .nodes
            .iter()
            .map(|n| {
                n.info_u64("persistence", "rdb_changes_since_last_save")
                    .unwrap()
            })
            .collect()
    };
    let before = counts(&cluster);
    let mut c = cluster.nodes[leader].raw();
    c.check(&["MSET", "a", "1", "b", "2"], "+OK\r\n");
    c.check(&["SETBIT", "bits", "3", "1"], ":0\r\n");
    c.check(&["SETBIT", "bits", "3", "1"], ":1\r\n");
    c.check(&["RPUSH", "l", "x", "y", "z"], ":3\r\n");
    c.check(&["DEL", "a", "b", "nosuch"], ":2\r\n");
    // 2 + 1 + 0 + 3 + 2 on every node, once each node has applied them.
    let want: Vec<u64> = before.iter().map(|b| b + 8).collect();
    poll_until(ELECTION, "every node counted the same changes", || {
        (counts(&cluster) == want).then_some(())
    });
    let follower = (leader + 1) % 3;
    let mut f = cluster.nodes[follower].raw();
    f.check(&["SAVE"], "+OK\r\n");
    let after = counts(&cluster);
    assert_eq!(after[follower], 0);
    assert_eq!(after[leader], want[leader]);
}
