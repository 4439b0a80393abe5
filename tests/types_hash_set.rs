//! Hashes and sets with real `kvd` processes: replies byte for byte as redis-server 7.0 gives
//! them (each expected text was first taken from Debian's redis-server 7.0.15; where Redis's
//! member order is unspecified, kvd's is member-byte order and the text below is kvd's),
//! WRONGTYPE, a deleted collection whose members never show through its next incarnation,
//! expiry, unreachable rows reclaimed after a big DEL, HSCAN/SSCAN cursors, and a 3-node cluster
//! that converges to one DIGEST under a random mix of writes including SPOP.

mod common;

use std::time::Duration;

use common::*;

const CONVERGE: Duration = Duration::from_secs(60);
const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

fn check_all(c: &mut RawConn, script: &[(&[&str], &str)]) {
    for (argv, want) in script {
        c.check(argv, want);
    }
}

/// A RESP array of bulk strings.
fn bulks(items: &[&str]) -> String {
    let mut s = format!("*{}\r\n", items.len());
    for i in items {
        s.push_str(&format!("${}\r\n{i}\r\n", i.len()));
    }
    s
}

#[test]
fn hash_commands_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let hset_arity = "-ERR wrong number of arguments for 'hset' command\r\n";
    let hmset_arity = "-ERR wrong number of arguments for 'hmset' command\r\n";
    let not_int = "-ERR value is not an integer or out of range\r\n";
    let syntax = "-ERR syntax error\r\n";
    check_all(
        &mut c,
        &[
            (&["HSET", "h", "a", "1", "b"], hset_arity),
            (&["HSET", "h", "a", "1", "b", "2"], ":2\r\n"),
            (&["HSET", "h", "a", "1", "c", "3"], ":1\r\n"),
            (&["HGETALL", "h"], &bulks(&["a", "1", "b", "2", "c", "3"])),
            (&["HKEYS", "h"], &bulks(&["a", "b", "c"])),
            (&["HVALS", "h"], &bulks(&["1", "2", "3"])),
            (&["HLEN", "h"], ":3\r\n"),
            (&["HGET", "h", "a"], "$1\r\n1\r\n"),
            (&["HGET", "h", "zz"], "$-1\r\n"),
            (&["HGET", "nokey", "a"], "$-1\r\n"),
            (
                &["HMGET", "h", "a", "zz", "b"],
                "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n",
            ),
            (&["HMGET", "nokey", "a", "b"], "*2\r\n$-1\r\n$-1\r\n"),
            (&["HSETNX", "h", "a", "9"], ":0\r\n"),
            (&["HSETNX", "h", "d", "4"], ":1\r\n"),
            (&["HSTRLEN", "h", "d"], ":1\r\n"),
            (&["HSTRLEN", "h", "zz"], ":0\r\n"),
            (&["HEXISTS", "h", "a"], ":1\r\n"),
            (&["HEXISTS", "nokey", "a"], ":0\r\n"),
            (&["HDEL", "h", "a", "zz", "b"], ":2\r\n"),
            (&["HDEL", "nokey", "a"], ":0\r\n"),
            (&["HLEN", "nokey"], ":0\r\n"),
            (&["HINCRBY", "h", "n", "5"], ":5\r\n"),
            (&["HINCRBY", "h", "n", "-10"], ":-5\r\n"),
            (&["HINCRBY", "h", "n", "x"], not_int),
            (
                &["HINCRBY", "h", "n", "9223372036854775807"],
                ":9223372036854775802\r\n",
            ),
            (&["HINCRBY", "h", "n", "1"], ":9223372036854775803\r\n"),
            (
                &["HINCRBY", "h", "n", "9223372036854775807"],
                "-ERR increment or decrement would overflow\r\n",
            ),
            (&["HSET", "h", "s", "xyz"], ":1\r\n"),
            (
                &["HINCRBY", "h", "s", "1"],
                "-ERR hash value is not an integer\r\n",
            ),
            (
                &["HINCRBYFLOAT", "h", "s", "1"],
                "-ERR hash value is not a float\r\n",
            ),
            (&["HINCRBYFLOAT", "h", "f", "1.5"], "$3\r\n1.5\r\n"),
            (&["HINCRBYFLOAT", "h", "f", "0.1"], "$3\r\n1.6\r\n"),
            (&["HINCRBYFLOAT", "h", "g", "0.1"], "$3\r\n0.1\r\n"),
            (&["HINCRBYFLOAT", "h", "g", "0.2"], "$3\r\n0.3\r\n"),
            (
                &["HINCRBYFLOAT", "h", "g", "abc"],
                "-ERR value is not a valid float\r\n",
            ),
            (
                &["HINCRBYFLOAT", "h", "g", "inf"],
                "-ERR value is NaN or Infinity\r\n",
            ),
            (&["HINCRBYFLOAT", "h", "m", "5.0e3"], "$4\r\n5000\r\n"),
            (&["HMSET", "h", "a", "1", "b"], hmset_arity),
            (&["HMSET", "h", "x", "1", "y", "2"], "+OK\r\n"),
            (
                &["HSETNX", "h", "a", "1", "2"],
                "-ERR wrong number of arguments for 'hsetnx' command\r\n",
            ),
            // Absent keys and bad arguments.
            (&["HSCAN", "nokey", "0"], "*2\r\n$1\r\n0\r\n*0\r\n"),
            (&["HSCAN", "nokey", "abc"], "-ERR invalid cursor\r\n"),
            (&["HSCAN", "h", "0", "COUNT", "0"], syntax),
            (&["HSCAN", "h", "0", "COUNT", "x"], not_int),
            (&["HSCAN", "h", "0", "foo"], syntax),
            (
                &["HSCAN", "h", "18446744073709551616"],
                "-ERR invalid cursor\r\n",
            ),
            (
                &["HSCAN", "h", "0", "MATCH", "x*", "COUNT", "100"],
                "*2\r\n$1\r\n0\r\n*2\r\n$1\r\nx\r\n$1\r\n1\r\n",
            ),
            (&["HRANDFIELD", "nokey"], "$-1\r\n"),
            (&["HRANDFIELD", "nokey", "3"], "*0\r\n"),
            (&["HRANDFIELD", "h", "0"], "*0\r\n"),
            (&["HRANDFIELD", "h", "x", "WITHVALUES"], not_int),
            (&["HRANDFIELD", "h", "1", "WITHVALUES", "x"], syntax),
            (&["HRANDFIELD", "h", "1", "foo"], syntax),
            (
                &["HRANDFIELD", "h", "-9223372036854775808"],
                "-ERR value is out of range, value must between -9223372036854775807 and \
                 9223372036854775807\r\n",
            ),
            (
                &["HRANDFIELD", "h", "4611686018427387904", "WITHVALUES"],
                "-ERR value is out of range\r\n",
            ),
            (
                // The whole hash, in insertion order (a listpack's, as Redis answers).
                &["HRANDFIELD", "h", "100"],
                &bulks(&["c", "d", "n", "s", "f", "g", "m", "x", "y"]),
            ),
            (&["TYPE", "h"], "+hash\r\n"),
            (&["EXISTS", "h"], ":1\r\n"),
            (&["DEL", "h"], ":1\r\n"),
            (&["EXISTS", "h"], ":0\r\n"),
            (&["HGETALL", "h"], "*0\r\n"),
        ],
    );
    // WRONGTYPE wherever Redis gives it (argument errors it checks first come first).
    c.check(&["SET", "str", "x"], "+OK\r\n");
    for argv in [
        &["HSET", "str", "a", "1"][..],
        &["HGET", "str", "a"],
        &["HMGET", "str", "a"],
        &["HGETALL", "str"],
        &["HKEYS", "str"],
        &["HVALS", "str"],
        &["HLEN", "str"],
        &["HDEL", "str", "a"],
        &["HSTRLEN", "str", "a"],
        &["HEXISTS", "str", "a"],
        &["HINCRBY", "str", "a", "1"],
        &["HINCRBYFLOAT", "str", "a", "1"],
        &["HSETNX", "str", "a", "1"],
        &["HMSET", "str", "a", "1"],
        &["HSCAN", "str", "0"],
        &["HRANDFIELD", "str"],
        &["HRANDFIELD", "str", "1"],
    ] {
        c.check(argv, WRONGTYPE);
    }
    c.check(&["HINCRBY", "str", "a", "x"], not_int);
    c.check(&["HSCAN", "str", "abc"], "-ERR invalid cursor\r\n");
    c.check(&["GET", "str"], "$1\r\nx\r\n");
}

#[test]
fn set_commands_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let positive = "-ERR value is out of range, must be positive\r\n";
    let syntax = "-ERR syntax error\r\n";
    check_all(
        &mut c,
        &[
            (&["SADD", "s", "a", "b", "c"], ":3\r\n"),
            (&["SADD", "s", "a", "d"], ":1\r\n"),
            (&["SADD", "t", "c", "d", "e"], ":3\r\n"),
            (&["SMEMBERS", "s"], &bulks(&["a", "b", "c", "d"])),
            (&["SCARD", "s"], ":4\r\n"),
            (&["SCARD", "nokey"], ":0\r\n"),
            (&["SISMEMBER", "s", "a"], ":1\r\n"),
            (&["SISMEMBER", "s", "z"], ":0\r\n"),
            (
                &["SMISMEMBER", "s", "a", "z", "b"],
                "*3\r\n:1\r\n:0\r\n:1\r\n",
            ),
            (&["SMISMEMBER", "nokey", "a"], "*1\r\n:0\r\n"),
            (&["SREM", "s", "a", "z"], ":1\r\n"),
            (&["SREM", "nokey", "a"], ":0\r\n"),
            (&["SINTER", "s", "t"], &bulks(&["c", "d"])),
            (&["SINTER", "s", "nokey"], "*0\r\n"),
            (
                &["SUNION", "s", "t", "nokey"],
                &bulks(&["b", "c", "d", "e"]),
            ),
            (&["SDIFF", "s", "t"], &bulks(&["b"])),
            (&["SDIFF", "nokey", "s"], "*0\r\n"),
            (&["SINTERSTORE", "d", "s", "t"], ":2\r\n"),
            (&["SMEMBERS", "d"], &bulks(&["c", "d"])),
            (&["SINTERSTORE", "d", "s", "nokey"], ":0\r\n"),
            (&["EXISTS", "d"], ":0\r\n"),
            (&["SUNIONSTORE", "d", "s", "t"], ":4\r\n"),
            (&["SDIFFSTORE", "d", "s", "t"], ":1\r\n"),
            (&["SMEMBERS", "d"], &bulks(&["b"])),
            (&["SINTERCARD", "2", "s", "t"], ":2\r\n"),
            (&["SINTERCARD", "2", "s", "t", "LIMIT", "1"], ":1\r\n"),
            (&["SINTERCARD", "2", "s", "t", "LIMIT", "0"], ":2\r\n"),
            (
                &["SINTERCARD", "0", "s"],
                "-ERR numkeys should be greater than 0\r\n",
            ),
            (
                &["SINTERCARD", "3", "s"],
                "-ERR Number of keys can't be greater than number of args\r\n",
            ),
            (
                &["SINTERCARD", "1", "s", "LIMIT", "-1"],
                "-ERR LIMIT can't be negative\r\n",
            ),
            (&["SINTERCARD", "1", "s", "foo"], syntax),
            (&["SINTERCARD", "2", "s", "nokey"], ":0\r\n"),
            (&["SMOVE", "s", "s", "b"], ":1\r\n"),
            (&["SMOVE", "s", "u", "b"], ":1\r\n"),
            (&["SMOVE", "s", "u", "zz"], ":0\r\n"),
            (&["SMOVE", "nokey", "u", "b"], ":0\r\n"),
            (&["SMOVE", "s", "u", "c"], ":1\r\n"),
            (&["SMOVE", "s", "u", "d"], ":1\r\n"),
            (&["EXISTS", "s"], ":0\r\n"),
            (&["SMEMBERS", "u"], &bulks(&["b", "c", "d"])),
            (&["SPOP", "u", "-1"], positive),
            (&["SPOP", "u", "x"], positive),
            (&["SPOP", "u", "1", "2"], syntax),
            (&["SRANDMEMBER", "u", "1", "2"], syntax),
            (&["SPOP", "nokey"], "$-1\r\n"),
            (&["SPOP", "nokey", "3"], "*0\r\n"),
            (&["SRANDMEMBER", "nokey"], "$-1\r\n"),
            (&["SRANDMEMBER", "nokey", "3"], "*0\r\n"),
            (&["SPOP", "u", "0"], "*0\r\n"),
            (&["SPOP", "u", "10"], &bulks(&["b", "c", "d"])),
            (&["EXISTS", "u"], ":0\r\n"),
            (&["SADD", "one", "x"], ":1\r\n"),
            (&["SRANDMEMBER", "one"], "$1\r\nx\r\n"),
            (&["SRANDMEMBER", "one", "5"], &bulks(&["x"])),
            (&["SRANDMEMBER", "one", "-3"], &bulks(&["x", "x", "x"])),
            (&["SPOP", "one"], "$1\r\nx\r\n"),
            (&["EXISTS", "one"], ":0\r\n"),
            (
                &["SSCAN", "t", "0", "MATCH", "e"],
                "*2\r\n$1\r\n0\r\n*1\r\n$1\r\ne\r\n",
            ),
            (&["TYPE", "t"], "+set\r\n"),
        ],
    );
    c.check(&["SET", "str", "x"], "+OK\r\n");
    for argv in [
        &["SADD", "str", "a"][..],
        &["SREM", "str", "a"],
        &["SMEMBERS", "str"],
        &["SCARD", "str"],
        &["SISMEMBER", "str", "a"],
        &["SMISMEMBER", "str", "a"],
        &["SINTER", "t", "str"],
        &["SINTER", "nokey", "str"],
        &["SINTERSTORE", "d", "nokey", "str"],
        &["SUNION", "nokey", "str"],
        &["SDIFF", "nokey", "str"],
        &["SINTERCARD", "2", "t", "str"],
        &["SMOVE", "str", "t", "a"],
        &["SMOVE", "t", "str", "c"],
        &["SPOP", "str"],
        &["SPOP", "str", "1"],
        &["SRANDMEMBER", "str"],
        &["SSCAN", "str", "0"],
    ] {
        c.check(argv, WRONGTYPE);
    }
    // A STORE overwrites a key of any type.
    c.check(&["SUNIONSTORE", "str", "t"], ":3\r\n");
    c.check(&["TYPE", "str"], "+set\r\n");
    c.check(&["SMEMBERS", "str"], &bulks(&["c", "d", "e"]));
}

#[test]
fn a_deleted_or_overwritten_collection_shows_none_of_its_old_members() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["HSET", "h", "a", "1", "b", "2"], ":2\r\n");
    c.check(&["DEL", "h"], ":1\r\n");
    c.check(&["HSET", "h", "c", "3"], ":1\r\n");
    c.check(&["HGETALL", "h"], &bulks(&["c", "3"]));
    c.check(&["HGET", "h", "a"], "$-1\r\n");
    c.check(&["HLEN", "h"], ":1\r\n");
    // SET over a set, then a set again.
    c.check(&["SADD", "s", "x", "y"], ":2\r\n");
    c.check(&["SET", "s", "str"], "+OK\r\n");
    c.check(&["SADD", "s", "z"], WRONGTYPE);
    c.check(&["DEL", "s"], ":1\r\n");
    c.check(&["SADD", "s", "z"], ":1\r\n");
    c.check(&["SMEMBERS", "s"], &bulks(&["z"]));
    c.check(&["SISMEMBER", "s", "x"], ":0\r\n");
    // FLUSHDB, then re-create.
    c.check(&["FLUSHDB"], "+OK\r\n");
    c.check(&["SADD", "s", "w"], ":1\r\n");
    c.check(&["SMEMBERS", "s"], &bulks(&["w"]));
    // The last member going deletes the key.
    c.check(&["SREM", "s", "w"], ":1\r\n");
    c.check(&["EXISTS", "s"], ":0\r\n");
    c.check(&["HGETALL", "h"], "*0\r\n");
    c.check(&["HSET", "h", "c", "3"], ":1\r\n");
    c.check(&["HDEL", "h", "c"], ":1\r\n");
    c.check(&["TYPE", "h"], "+none\r\n");
}

#[test]
fn a_hash_expires_and_its_rows_are_reclaimed() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let empty = String::from_utf8(c.call(&["DIGEST"])).unwrap();
    c.check(&["HSET", "h", "a", "1", "b", "2"], ":2\r\n");
    c.check(&["PEXPIRE", "h", "300"], ":1\r\n");
    // Changing a member keeps the TTL, as in Redis.
    c.check(&["HSET", "h", "c", "3"], ":1\r\n");
    let ttl = String::from_utf8(c.call(&["PTTL", "h"])).unwrap();
    assert!(ttl.starts_with(':') && ttl != ":-1\r\n", "{ttl}");
    poll_until(Duration::from_secs(10), "the hash to expire", || {
        (c.call(&["EXISTS", "h"]) == b":0\r\n").then_some(())
    });
    c.check(&["HGETALL", "h"], "*0\r\n");
    c.check(&["HLEN", "h"], ":0\r\n");
    c.check(&["HSET", "h", "z", "9"], ":1\r\n");
    c.check(&["HGETALL", "h"], &bulks(&["z", "9"]));
    c.check(&["DEL", "h"], ":1\r\n");
    poll_until(CONVERGE, "every row to be reclaimed", || {
        (String::from_utf8(c.call(&["DIGEST"])).unwrap() == empty).then_some(())
    });
}

#[test]
fn the_rows_of_a_deleted_10000_member_hash_are_reclaimed() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let empty = String::from_utf8(c.call(&["DIGEST"])).unwrap();
    c.check(&["SET", "keep", "v"], "+OK\r\n");
    c.check(&["SADD", "alive", "m"], ":1\r\n");
    let with_others = String::from_utf8(c.call(&["DIGEST"])).unwrap();
    for chunk in 0..10 {
        let mut argv = vec!["HSET".to_string(), "big".to_string()];
        for i in 0..1000 {
            argv.push(format!("field:{:05}", chunk * 1000 + i));
            argv.push(format!("value {i}"));
        }
        c.check(&argv, ":1000\r\n");
    }
    c.check(&["HLEN", "big"], ":10000\r\n");
    c.check(&["DEL", "big"], ":1\r\n");
    // Writes go on while the rows are reclaimed in bounded entries.
    c.check(&["SET", "during", "1"], "+OK\r\n");
    c.check(&["DEL", "during"], ":1\r\n");
    poll_until(CONVERGE, "the big hash's rows to be reclaimed", || {
        (String::from_utf8(c.call(&["DIGEST"])).unwrap() == with_others).then_some(())
    });
    c.check(&["SMEMBERS", "alive"], &bulks(&["m"]));
    c.check(&["DEL", "keep", "alive"], ":2\r\n");
    poll_until(CONVERGE, "an empty table", || {
        (String::from_utf8(c.call(&["DIGEST"])).unwrap() == empty).then_some(())
    });
}

/// Scans to the end; returns the items seen (with repeats) and the number of calls.
fn full_scan(c: &mut RawConn, cmd: &str, key: &str, extra: &[&str]) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut items = Vec::new();
    let mut calls = 0;
    let mut con_items;
    loop {
        let mut argv = vec![cmd, key, cursor.as_str()];
        argv.extend_from_slice(extra);
        let reply = c.call(&argv);
        calls += 1;
        let (next, got) = parse_scan(&reply);
        con_items = got;
        items.append(&mut con_items);
        if next == "0" {
            return (items, calls);
        }
        assert!(next.parse::<u64>().is_ok(), "cursor {next}");
        cursor = next;
        assert!(calls < 10_000, "scan does not end");
    }
}

/// `[cursor, [items]]` of a SCAN-family reply.
fn parse_scan(reply: &[u8]) -> (String, Vec<String>) {
    let text = String::from_utf8_lossy(reply).into_owned();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], "*2", "{text}");
    let cursor = lines[2].to_string();
    let n: usize = lines[3][1..].parse().unwrap();
    let items = (0..n).map(|i| lines[5 + 2 * i].to_string()).collect();
    (cursor, items)
}

#[test]
fn scans_resume_from_their_cursor_and_see_every_member_once() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let mut argv = vec!["SADD".to_string(), "s".to_string()];
    argv.extend((0..500).map(|i| format!("m{i:03}")));
    c.check(&argv, ":500\r\n");
    let (items, calls) = full_scan(&mut c, "SSCAN", "s", &["COUNT", "7"]);
    assert_eq!(items.len(), 500);
    assert!(
        items.windows(2).all(|w| w[0] < w[1]),
        "member order, no repeats"
    );
    assert_eq!(calls, 500usize.div_ceil(7));
    let (matched, _) = full_scan(&mut c, "SSCAN", "s", &["MATCH", "m1?5", "COUNT", "50"]);
    assert_eq!(
        matched,
        (0..10).map(|i| format!("m1{i}5")).collect::<Vec<_>>()
    );
    // Changes between calls: members present throughout are seen exactly once.
    let reply = c.call(&["SSCAN", "s", "0", "COUNT", "100"]);
    let (cursor, first) = parse_scan(&reply);
    assert_eq!(first.len(), 100);
    c.check(&["SREM", "s", "m000", "m300"], ":2\r\n");
    c.check(&["SADD", "s", "a-first", "m3000"], ":2\r\n");
    let mut rest = Vec::new();
    let mut cursor = cursor;
    while cursor != "0" {
        let (next, mut got) = parse_scan(&c.call(&["SSCAN", "s", &cursor, "COUNT", "100"]));
        rest.append(&mut got);
        cursor = next;
    }
    assert!(rest.contains(&"m3000".to_string()) && !rest.contains(&"m300".to_string()));
    assert!(!rest.contains(&"a-first".to_string()));
    assert_eq!(first.len() + rest.len(), 500 - 1 + 1);
    // HSCAN returns field, value pairs.
    c.check(&["HSET", "h", "f1", "v1", "f2", "v2", "f3", "v3"], ":3\r\n");
    let (items, _) = full_scan(&mut c, "HSCAN", "h", &["COUNT", "2"]);
    assert_eq!(items, ["f1", "v1", "f2", "v2", "f3", "v3"]);
}

#[test]
fn apply_of_malformed_entries_is_total() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["HSET", "h", "a", "1"], ":1\r\n");
    c.check(&["DEBUG", "PROPOSE", "rows-reap", "junk", "\x02"], ":0\r\n");
    c.check(
        &["DEBUG", "PROPOSE", "hset", "h", "a"],
        "-ERR wrong number of arguments for 'hset' command\r\n",
    );
    c.check(
        &["DEBUG", "PROPOSE", "hset", "h", "a", "1", "b"],
        "-ERR wrong number of arguments for 'hset' command\r\n",
    );
    c.check(
        &["DEBUG", "PROPOSE", "spop", "h", "1", "2", "3"],
        "-ERR syntax error\r\n",
    );
    c.check(
        &["DEBUG", "PROPOSE", "spop", "h", "99999999999999999999"],
        "-ERR value is out of range, must be positive\r\n",
    );
    c.check(&["HGETALL", "h"], &bulks(&["a", "1"]));
    // No client can send the internal entry.
    let reply = String::from_utf8(c.call(&["rows-reap", "x"])).unwrap();
    assert!(reply.starts_with("-ERR unknown command"), "{reply}");
}

/// SplitMix64, for a reproducible mix of commands.
struct Mix(u64);

impl Mix {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

fn wait_converged(c: &Cluster) -> String {
    poll_until(CONVERGE, "replicas to converge", || {
        let digests: Vec<String> = (0..c.nodes.len())
            .map(|i| {
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

#[test]
fn a_cluster_converges_under_random_hash_and_set_writes_with_spop() {
    let c = Cluster::start(3, &[]);
    let mut conns: Vec<RawConn> = (0..3).map(|i| c.node(i).raw()).collect();
    let mut mix = Mix(42);
    let mut popped = 0;
    for step in 0..400 {
        let node = (step % 3) as usize;
        let key = format!("k{}", mix.next(6));
        let m = format!("m{}", mix.next(20));
        let argv: Vec<String> = match mix.next(10) {
            0 | 1 => vec!["SADD".into(), key, m, format!("m{}", mix.next(20))],
            2 => vec!["SREM".into(), key, m],
            3 => vec!["SPOP".into(), key, mix.next(3).to_string()],
            4 => vec!["SPOP".into(), key],
            5 => vec!["HSET".into(), format!("h{key}"), m, step.to_string()],
            6 => vec!["HINCRBY".into(), format!("h{key}"), m, "3".into()],
            7 => vec!["HDEL".into(), format!("h{key}"), m],
            8 => vec![
                "SINTERSTORE".into(),
                "dst".into(),
                key,
                format!("k{}", mix.next(6)),
            ],
            _ => vec!["DEL".into(), key],
        };
        let reply = conns[node].call(&argv);
        assert!(!reply.starts_with(b"-ERR"), "{argv:?}: {}", show(&reply));
        popped += usize::from(argv[0] == "SPOP" && reply.starts_with(b"$") && reply != b"$-1\r\n");
    }
    assert!(popped > 0, "some SPOP popped a member");
    let digest = wait_converged(&c);
    assert!(!digest.is_empty());
    // The same members everywhere, as each node reads them.
    let members: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let mut r = c.node(i).raw();
            let mut all = Vec::new();
            for k in 0..6 {
                all.extend(r.call(&["SMEMBERS", &format!("k{k}")]));
                all.extend(r.call(&["HGETALL", &format!("hk{k}")]));
            }
            all
        })
        .collect();
    assert!(members.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn adding_a_member_already_there_does_not_touch_a_watched_set() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let mut other = node.raw();
    c.check(&["SADD", "src", "a", "b"], ":2\r\n");
    c.check(&["SADD", "dst", "a"], ":1\r\n");
    // unit/type/set "SMOVE only notify dstset when the addition is successful".
    c.check(&["WATCH", "dst"], "+OK\r\n");
    c.check(&["MULTI"], "+OK\r\n");
    c.check(&["SADD", "dst", "c"], "+QUEUED\r\n");
    other.check(&["SMOVE", "src", "dst", "a"], ":1\r\n");
    other.check(&["SADD", "dst", "a"], ":0\r\n");
    c.check(&["EXEC"], "*1\r\n:1\r\n");
    c.check(&["SCARD", "dst"], ":2\r\n");
    c.check(&["SMEMBERS", "src"], "*1\r\n$1\r\nb\r\n");
    // A member that is new there does touch it.
    c.check(&["WATCH", "dst"], "+OK\r\n");
    c.check(&["MULTI"], "+OK\r\n");
    c.check(&["SCARD", "dst"], "+QUEUED\r\n");
    other.check(&["SMOVE", "src", "dst", "b"], ":1\r\n");
    c.check(&["EXEC"], "*-1\r\n");
}
