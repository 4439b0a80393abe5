//! Sorted sets with real `kvd` processes: replies byte for byte as redis-server 7.0 gives them
//! (every expected text below was taken from Debian's redis-server 7.0.15 by sending it the
//! same commands, in RESP2 and in RESP3), ranks and ranges of a large set against a model, the
//! rows of a deleted or expired sorted set reclaimed (both its member and its score rows), and a
//! 3-node cluster that converges to one DIGEST under a random mix of sorted-set writes sent to
//! the leader and to followers (ZPOPMIN/ZPOPMAX and ZRANDMEMBER-free, seeded picks included).

mod common;

use std::time::Duration;

use common::*;

const CONVERGE: Duration = Duration::from_secs(60);

fn check_all(c: &mut RawConn, script: &[(&[&str], &str)]) {
    for (argv, want) in script {
        c.check(argv, want);
    }
}

#[test]
fn zset_commands_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    check_all(
        &mut c,
        &[
            (
                &[
                    "zadd", "z", "1", "a", "2", "b", "3", "c", "0.1", "d", "-inf", "e", "+inf", "f",
                ],
                ":6\r\n",
            ),
            (&["zadd", "z", "-0", "g"], ":1\r\n"),
            (&["zscore", "z", "g"], "$1\r\n0\r\n"),
            (&["zscore", "z", "d"], "$19\r\n0.10000000000000001\r\n"),
            (&["zscore", "z", "nope"], "$-1\r\n"),
            (&["zscore", "nokey", "a"], "$-1\r\n"),
            (
                &["zmscore", "z", "a", "nope", "d"],
                "*3\r\n$1\r\n1\r\n$-1\r\n$19\r\n0.10000000000000001\r\n",
            ),
            (&["zmscore", "nokey", "a", "b"], "*2\r\n$-1\r\n$-1\r\n"),
            (&["zcard", "z"], ":7\r\n"),
            (
                &["zrange", "z", "0", "-1"],
                "*7\r\n$1\r\ne\r\n$1\r\ng\r\n$1\r\nd\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nf\r\n",
            ),
            (
                &["zrange", "z", "0", "-1", "withscores"],
                "*14\r\n$1\r\ne\r\n$4\r\n-inf\r\n$1\r\ng\r\n$1\r\n0\r\n$1\r\nd\r\n$19\r\n0.10000000000000001\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n$1\r\nf\r\n$3\r\ninf\r\n",
            ),
            (
                &["zrange", "z", "0", "-1", "rev", "withscores"],
                "*14\r\n$1\r\nf\r\n$3\r\ninf\r\n$1\r\nc\r\n$1\r\n3\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nd\r\n$19\r\n0.10000000000000001\r\n$1\r\ng\r\n$1\r\n0\r\n$1\r\ne\r\n$4\r\n-inf\r\n",
            ),
            (
                &["zrange", "z", "1", "3"],
                "*3\r\n$1\r\ng\r\n$1\r\nd\r\n$1\r\na\r\n",
            ),
            (
                &["zrange", "z", "-2", "-1", "withscores"],
                "*4\r\n$1\r\nc\r\n$1\r\n3\r\n$1\r\nf\r\n$3\r\ninf\r\n",
            ),
            (&["zrange", "z", "5", "1"], "*0\r\n"),
            (
                &["zrange", "z", "0", "100", "rev"],
                "*7\r\n$1\r\nf\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nd\r\n$1\r\ng\r\n$1\r\ne\r\n",
            ),
            (
                &["zrange", "z", "(1", "3", "byscore", "withscores"],
                "*4\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n",
            ),
            (
                &["zrange", "z", "3", "(1", "byscore", "rev", "withscores"],
                "*4\r\n$1\r\nc\r\n$1\r\n3\r\n$1\r\nb\r\n$1\r\n2\r\n",
            ),
            (
                &["zrange", "z", "-inf", "+inf", "byscore", "limit", "1", "2"],
                "*2\r\n$1\r\ng\r\n$1\r\nd\r\n",
            ),
            (
                &["zrange", "z", "-inf", "+inf", "byscore", "limit", "-1", "2"],
                "*0\r\n",
            ),
            (
                &["zrange", "z", "-inf", "+inf", "byscore", "limit", "1", "-1"],
                "*6\r\n$1\r\ng\r\n$1\r\nd\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nf\r\n",
            ),
            (
                &["zrange", "z", "0", "-1", "limit", "1", "2"],
                "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\r\n",
            ),
            (
                &["zrange", "z", "-", "+", "bylex", "withscores"],
                "-ERR syntax error, WITHSCORES not supported in combination with BYLEX\r\n",
            ),
            (
                &["zrange", "z", "0", "-1", "byscore", "bylex"],
                "-ERR syntax error\r\n",
            ),
            (
                &["zrange", "z", "0", "-1", "rev", "rev"],
                "-ERR syntax error\r\n",
            ),
            (
                &["zrevrange", "z", "0", "1", "withscores"],
                "*4\r\n$1\r\nf\r\n$3\r\ninf\r\n$1\r\nc\r\n$1\r\n3\r\n",
            ),
            (
                &["zrevrange", "z", "0", "1", "rev"],
                "-ERR syntax error\r\n",
            ),
            (
                &["zrangebyscore", "z", "1", "3", "withscores"],
                "*6\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n",
            ),
            (
                &["zrangebyscore", "z", "1", "3", "byscore"],
                "-ERR syntax error\r\n",
            ),
            (&["zrangebyscore", "z", "(1", "(3"], "*1\r\n$1\r\nb\r\n"),
            (
                &["zrangebyscore", "z", "x", "3"],
                "-ERR min or max is not a float\r\n",
            ),
            (
                &[
                    "zrevrangebyscore",
                    "z",
                    "3",
                    "1",
                    "withscores",
                    "limit",
                    "0",
                    "1",
                ],
                "*2\r\n$1\r\nc\r\n$1\r\n3\r\n",
            ),
            (
                &["zrevrangebyscore", "z", "+inf", "-inf"],
                "*7\r\n$1\r\nf\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nd\r\n$1\r\ng\r\n$1\r\ne\r\n",
            ),
            (&["zrank", "z", "a"], ":3\r\n"),
            (&["zrank", "z", "e"], ":0\r\n"),
            (&["zrank", "z", "f"], ":6\r\n"),
            (&["zrank", "z", "nope"], "$-1\r\n"),
            (&["zrevrank", "z", "a"], ":3\r\n"),
            (&["zrevrank", "z", "f"], ":0\r\n"),
            (&["zcount", "z", "-inf", "+inf"], ":7\r\n"),
            (&["zcount", "z", "(1", "3"], ":2\r\n"),
            (
                &["zcount", "z", "a", "b"],
                "-ERR min or max is not a float\r\n",
            ),
            (&["zcount", "nokey", "1", "2"], ":0\r\n"),
            (&["zadd", "z", "xx", "10", "a", "10", "newm"], ":0\r\n"),
            (&["zadd", "z", "nx", "10", "a", "11", "newm"], ":1\r\n"),
            (
                &["zadd", "z", "xx", "nx", "1", "a"],
                "-ERR XX and NX options at the same time are not compatible\r\n",
            ),
            (
                &["zadd", "z", "gt", "lt", "1", "a"],
                "-ERR GT, LT, and/or NX options at the same time are not compatible\r\n",
            ),
            (
                &["zadd", "z", "gt", "nx", "1", "a"],
                "-ERR GT, LT, and/or NX options at the same time are not compatible\r\n",
            ),
            (
                &["zadd", "z", "incr", "1", "a", "2", "b"],
                "-ERR INCR option supports a single increment-element pair\r\n",
            ),
            (
                &["zadd", "z", "1"],
                "-ERR wrong number of arguments for 'zadd' command\r\n",
            ),
            (&["zadd", "z", "1", "a", "2"], "-ERR syntax error\r\n"),
            (
                &["zadd", "z", "nan", "a"],
                "-ERR value is not a valid float\r\n",
            ),
            (
                &["zadd", "z", "ch", "100", "a", "5", "b", "6", "zz"],
                ":3\r\n",
            ),
            (&["zadd", "z", "gt", "ch", "1", "a", "200", "b"], ":1\r\n"),
            (&["zadd", "z", "lt", "ch", "1", "a", "300", "b"], ":1\r\n"),
            (&["zadd", "z", "incr", "5", "a"], "$1\r\n6\r\n"),
            (&["zadd", "z", "incr", "nx", "5", "a"], "$-1\r\n"),
            (&["zadd", "z", "incr", "xx", "5", "nonexist"], "$-1\r\n"),
            (&["zadd", "z", "incr", "gt", "-1", "a"], "$-1\r\n"),
            (&["zincrby", "z", "1.5", "a"], "$3\r\n7.5\r\n"),
            (
                &["zincrby", "z", "x", "a"],
                "-ERR value is not a valid float\r\n",
            ),
            (&["zincrby", "z", "+inf", "f"], "$3\r\ninf\r\n"),
            (
                &["zincrby", "z", "-inf", "f"],
                "-ERR resulting score is not a number (NaN)\r\n",
            ),
            (&["zadd", "nokey", "xx", "1", "a"], ":0\r\n"),
            (&["zadd", "nokey", "xx", "incr", "1", "a"], "$-1\r\n"),
            (&["exists", "nokey"], ":0\r\n"),
            (&["zrem", "z", "a", "b", "nope"], ":2\r\n"),
            (&["zrem", "nokey", "a"], ":0\r\n"),
            (
                &["zrange", "z", "0", "-1", "withscores"],
                "*14\r\n$1\r\ne\r\n$4\r\n-inf\r\n$1\r\ng\r\n$1\r\n0\r\n$1\r\nd\r\n$19\r\n0.10000000000000001\r\n$1\r\nc\r\n$1\r\n3\r\n$2\r\nzz\r\n$1\r\n6\r\n$4\r\nnewm\r\n$2\r\n11\r\n$1\r\nf\r\n$3\r\ninf\r\n",
            ),
            (&["zpopmin", "z"], "*2\r\n$1\r\ne\r\n$4\r\n-inf\r\n"),
            (&["zpopmax", "z"], "*2\r\n$1\r\nf\r\n$3\r\ninf\r\n"),
            (
                &["zpopmin", "z", "2"],
                "*4\r\n$1\r\ng\r\n$1\r\n0\r\n$1\r\nd\r\n$19\r\n0.10000000000000001\r\n",
            ),
            (&["zpopmax", "z", "0"], "*0\r\n"),
            (
                &["zpopmax", "z", "-1"],
                "-ERR value is out of range, must be positive\r\n",
            ),
            (
                &["zpopmin", "z", "x"],
                "-ERR value is out of range, must be positive\r\n",
            ),
            (&["zpopmin", "nokey"], "*0\r\n"),
            (&["zpopmin", "nokey", "2"], "*0\r\n"),
            (&["zpopmin", "z", "1", "2"], "-ERR syntax error\r\n"),
            (
                &["zmpop", "1", "z", "min"],
                "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n",
            ),
            (
                &["zmpop", "2", "nokey", "z", "max", "count", "2"],
                "*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$4\r\nnewm\r\n$2\r\n11\r\n*2\r\n$2\r\nzz\r\n$1\r\n6\r\n",
            ),
            (&["zmpop", "1", "nokey", "min"], "*-1\r\n"),
            (
                &["zmpop", "0", "z", "min"],
                "-ERR numkeys should be greater than 0\r\n",
            ),
            (
                &["zmpop", "1", "z"],
                "-ERR wrong number of arguments for 'zmpop' command\r\n",
            ),
            (&["zmpop", "1", "z", "foo"], "-ERR syntax error\r\n"),
            (
                &["zmpop", "1", "z", "min", "count", "0"],
                "-ERR count should be greater than 0\r\n",
            ),
            (
                &["zmpop", "1", "z", "min", "count", "1", "count", "1"],
                "-ERR syntax error\r\n",
            ),
            (&["zmpop", "5", "z", "min"], "-ERR syntax error\r\n"),
            (&["set", "str", "x"], "+OK\r\n"),
            (
                &["zadd", "str", "1", "a"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["zrange", "str", "0", "-1"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["zscore", "str", "a"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["zpopmin", "str", "0"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["zpopmin", "str"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["zcard", "str"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (&["zcard", "nokey"], ":0\r\n"),
            (&["type", "z"], "+none\r\n"),
            (&["del", "z"], ":0\r\n"),
            (
                &[
                    "zadd", "l", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e", "0", "f", "0",
                    "g",
                ],
                ":7\r\n",
            ),
            (
                &["zrangebylex", "l", "-", "+"],
                "*7\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n$1\r\nf\r\n$1\r\ng\r\n",
            ),
            (
                &["zrangebylex", "l", "[b", "(e"],
                "*3\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n",
            ),
            (
                &["zrangebylex", "l", "(b", "[e", "limit", "1", "2"],
                "*2\r\n$1\r\nd\r\n$1\r\ne\r\n",
            ),
            (
                &["zrevrangebylex", "l", "+", "-"],
                "*7\r\n$1\r\ng\r\n$1\r\nf\r\n$1\r\ne\r\n$1\r\nd\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n",
            ),
            (
                &["zrevrangebylex", "l", "[e", "(b"],
                "*3\r\n$1\r\ne\r\n$1\r\nd\r\n$1\r\nc\r\n",
            ),
            (
                &["zrevrangebylex", "l", "(e", "-", "limit", "0", "2"],
                "*2\r\n$1\r\nd\r\n$1\r\nc\r\n",
            ),
            (
                &["zrangebylex", "l", "b", "e"],
                "-ERR min or max not valid string range item\r\n",
            ),
            (
                &["zrangebylex", "l", "-", "+", "withscores"],
                "-ERR syntax error, WITHSCORES not supported in combination with BYLEX\r\n",
            ),
            (&["zlexcount", "l", "-", "+"], ":7\r\n"),
            (&["zlexcount", "l", "[c", "+"], ":5\r\n"),
            (
                &["zlexcount", "l", "c", "+"],
                "-ERR min or max not valid string range item\r\n",
            ),
            (&["zlexcount", "l", "+", "-"], ":0\r\n"),
            (&["zrangebylex", "l", "+", "-"], "*0\r\n"),
            (&["zremrangebylex", "l", "[a", "[b"], ":2\r\n"),
            (
                &["zrange", "l", "0", "-1"],
                "*5\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n$1\r\nf\r\n$1\r\ng\r\n",
            ),
            (&["zremrangebyrank", "l", "0", "0"], ":1\r\n"),
            (&["zremrangebyrank", "l", "-1", "-1"], ":1\r\n"),
            (&["zremrangebyrank", "l", "5", "10"], ":0\r\n"),
            (
                &["zremrangebyrank", "l", "x", "1"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (
                &["zrange", "l", "0", "-1"],
                "*3\r\n$1\r\nd\r\n$1\r\ne\r\n$1\r\nf\r\n",
            ),
            (
                &["zadd", "s", "1", "a", "2", "b", "3", "c", "4", "d"],
                ":4\r\n",
            ),
            (&["zremrangebyscore", "s", "(1", "3"], ":2\r\n"),
            (
                &["zremrangebyscore", "s", "x", "3"],
                "-ERR min or max is not a float\r\n",
            ),
            (
                &["zrange", "s", "0", "-1", "withscores"],
                "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nd\r\n$1\r\n4\r\n",
            ),
            (&["zrangestore", "dst", "s", "0", "-1"], ":2\r\n"),
            (
                &["zrange", "dst", "0", "-1", "withscores"],
                "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nd\r\n$1\r\n4\r\n",
            ),
            (
                &["zrangestore", "dst", "s", "0", "-1", "withscores"],
                "-ERR syntax error\r\n",
            ),
            (&["zrangestore", "dst", "nokey", "0", "-1"], ":0\r\n"),
            (&["exists", "dst"], ":0\r\n"),
            (
                &["zrangestore", "dst", "s", "10", "(1", "byscore", "rev"],
                ":1\r\n",
            ),
            (
                &["zrange", "dst", "0", "-1", "withscores"],
                "*2\r\n$1\r\nd\r\n$1\r\n4\r\n",
            ),
            (&["del", "s", "l"], ":2\r\n"),
            (&["zadd", "a", "1", "x", "2", "y", "3", "z"], ":3\r\n"),
            (&["zadd", "b", "10", "y", "20", "z", "30", "w"], ":3\r\n"),
            (&["sadd", "set", "y", "w", "q"], ":3\r\n"),
            (
                &["zunion", "2", "a", "b"],
                "*4\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\nz\r\n$1\r\nw\r\n",
            ),
            (
                &["zunion", "2", "a", "b", "withscores"],
                "*8\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$2\r\n12\r\n$1\r\nz\r\n$2\r\n23\r\n$1\r\nw\r\n$2\r\n30\r\n",
            ),
            (
                &["zunion", "2", "a", "b", "weights", "2", "3", "withscores"],
                "*8\r\n$1\r\nx\r\n$1\r\n2\r\n$1\r\ny\r\n$2\r\n34\r\n$1\r\nz\r\n$2\r\n66\r\n$1\r\nw\r\n$2\r\n90\r\n",
            ),
            (
                &["zunion", "2", "a", "b", "aggregate", "max", "withscores"],
                "*8\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$2\r\n10\r\n$1\r\nz\r\n$2\r\n20\r\n$1\r\nw\r\n$2\r\n30\r\n",
            ),
            (
                &["zunion", "2", "a", "b", "aggregate", "min", "withscores"],
                "*8\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$1\r\n2\r\n$1\r\nz\r\n$1\r\n3\r\n$1\r\nw\r\n$2\r\n30\r\n",
            ),
            (
                &["zunion", "2", "a", "b", "aggregate", "foo"],
                "-ERR syntax error\r\n",
            ),
            (
                &["zunion", "2", "a", "b", "weights", "1", "x"],
                "-ERR weight value is not a float\r\n",
            ),
            (
                &["zunion", "2", "a", "b", "weights", "1"],
                "-ERR syntax error\r\n",
            ),
            (
                &["zunion", "0", "a"],
                "-ERR at least 1 input key is needed for 'zunion' command\r\n",
            ),
            (&["zunion", "3", "a", "b"], "-ERR syntax error\r\n"),
            (
                &["zunion", "x", "a"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (
                &["zunion", "2", "a", "str"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["zunion", "3", "a", "b", "set", "withscores"],
                "*10\r\n$1\r\nq\r\n$1\r\n1\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$2\r\n13\r\n$1\r\nz\r\n$2\r\n23\r\n$1\r\nw\r\n$2\r\n31\r\n",
            ),
            (
                &["zinter", "2", "a", "b", "withscores"],
                "*4\r\n$1\r\ny\r\n$2\r\n12\r\n$1\r\nz\r\n$2\r\n23\r\n",
            ),
            (
                &["zinter", "3", "a", "b", "set", "withscores"],
                "*2\r\n$1\r\ny\r\n$2\r\n13\r\n",
            ),
            (&["zinter", "2", "a", "nokey", "withscores"], "*0\r\n"),
            (
                &["zdiff", "2", "a", "b", "withscores"],
                "*2\r\n$1\r\nx\r\n$1\r\n1\r\n",
            ),
            (
                &["zdiff", "2", "b", "set", "withscores"],
                "*2\r\n$1\r\nz\r\n$2\r\n20\r\n",
            ),
            (
                &["zdiff", "2", "a", "b", "weights", "1", "2"],
                "-ERR syntax error\r\n",
            ),
            (&["zunionstore", "out", "2", "a", "b"], ":4\r\n"),
            (
                &["zrange", "out", "0", "-1", "withscores"],
                "*8\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$2\r\n12\r\n$1\r\nz\r\n$2\r\n23\r\n$1\r\nw\r\n$2\r\n30\r\n",
            ),
            (
                &["zunionstore", "out", "2", "a", "b", "withscores"],
                "-ERR syntax error\r\n",
            ),
            (
                &["zinterstore", "out", "2", "a", "b", "aggregate", "max"],
                ":2\r\n",
            ),
            (
                &["zrange", "out", "0", "-1", "withscores"],
                "*4\r\n$1\r\ny\r\n$2\r\n10\r\n$1\r\nz\r\n$2\r\n20\r\n",
            ),
            (&["zinterstore", "out", "2", "a", "nokey"], ":0\r\n"),
            (&["exists", "out"], ":0\r\n"),
            (&["zdiffstore", "out", "1", "a"], ":3\r\n"),
            (
                &["zrange", "out", "0", "-1", "withscores"],
                "*6\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$1\r\n2\r\n$1\r\nz\r\n$1\r\n3\r\n",
            ),
            (&["zintercard", "2", "a", "b"], ":2\r\n"),
            (&["zintercard", "2", "a", "b", "limit", "1"], ":1\r\n"),
            (
                &["zintercard", "2", "a", "b", "limit", "-1"],
                "-ERR LIMIT can't be negative\r\n",
            ),
            (
                &["zintercard", "0", "a"],
                "-ERR at least 1 input key is needed for 'zintercard' command\r\n",
            ),
            (&["zintercard", "3", "a", "b"], "-ERR syntax error\r\n"),
            (
                &["zintercard", "2", "a", "b", "weights", "1", "1"],
                "-ERR syntax error\r\n",
            ),
            (
                &["zunionstore", "out", "0", "a"],
                "-ERR at least 1 input key is needed for 'zunionstore' command\r\n",
            ),
            (
                &["zinterstore", "out", "1", "str"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (&["zadd", "inf", "1", "a"], ":1\r\n"),
            (&["zadd", "inf2", "+inf", "a"], ":1\r\n"),
            (&["zadd", "inf3", "-inf", "a"], ":1\r\n"),
            (&["zunionstore", "o2", "3", "inf2", "inf3", "inf"], ":1\r\n"),
            (
                &["zrange", "o2", "0", "-1", "withscores"],
                "*2\r\n$1\r\na\r\n$1\r\n1\r\n",
            ),
            (
                &[
                    "zinterstore",
                    "o3",
                    "2",
                    "inf2",
                    "inf3",
                    "weights",
                    "1",
                    "0",
                ],
                ":1\r\n",
            ),
            (
                &["zrange", "o3", "0", "-1", "withscores"],
                "*2\r\n$1\r\na\r\n$1\r\n0\r\n",
            ),
            (&["object", "encoding", "a"], "$8\r\nlistpack\r\n"),
            (
                &[
                    "zadd",
                    "floats",
                    "0.1",
                    "a",
                    "1e17",
                    "b",
                    "3.14159265358979",
                    "c",
                    "1e-5",
                    "d",
                    "123456789012345678",
                    "e",
                ],
                ":5\r\n",
            ),
            (
                &["zrange", "floats", "0", "-1", "withscores"],
                "*10\r\n$1\r\nd\r\n$22\r\n1.0000000000000001e-05\r\n$1\r\na\r\n$19\r\n0.10000000000000001\r\n$1\r\nc\r\n$16\r\n3.14159265358979\r\n$1\r\nb\r\n$5\r\n1e+17\r\n$1\r\ne\r\n$22\r\n1.2345678901234568e+17\r\n",
            ),
            (&["zscore", "floats", "a"], "$19\r\n0.10000000000000001\r\n"),
            (
                &["zincrby", "floats", "0.2", "a"],
                "$19\r\n0.30000000000000004\r\n",
            ),
            (
                &[
                    "zadd",
                    "big",
                    "1",
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                ],
                ":1\r\n",
            ),
            (&["object", "encoding", "big"], "$8\r\nskiplist\r\n"),
            (
                &[
                    "zrangebyscore",
                    "big",
                    "10",
                    "20",
                    "withscores",
                    "limit",
                    "5",
                    "10",
                ],
                "*0\r\n",
            ),
            (
                &[
                    "zrevrangebyscore",
                    "big",
                    "20",
                    "10",
                    "withscores",
                    "limit",
                    "5",
                    "10",
                ],
                "*0\r\n",
            ),
            (&["zrangebyscore", "big", "(10", "(11"], "*0\r\n"),
            (&["zcount", "big", "5", "(30"], ":0\r\n"),
            (&["object", "encoding", "big"], "$8\r\nskiplist\r\n"),
            (&["zremrangebyrank", "big", "100", "150"], ":0\r\n"),
            (&["zcard", "big"], ":1\r\n"),
            (&["zremrangebyscore", "big", "40", "+inf"], ":0\r\n"),
            (
                &["zpopmax", "big", "3"],
                "*2\r\n$88\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n$1\r\n1\r\n",
            ),
            (&["zpopmin", "big", "3"], "*0\r\n"),
            (&["zmpop", "1", "big", "max", "count", "4"], "*-1\r\n"),
            (&["object", "encoding", "big"], "$-1\r\n"),
            (&["zadd", "small", "1", "a", "2", "b"], ":2\r\n"),
            (&["object", "encoding", "small"], "$8\r\nlistpack\r\n"),
            (&["type", "small"], "+zset\r\n"),
            (&["copy", "small", "small2"], ":1\r\n"),
            (
                &["zrange", "small2", "0", "-1", "withscores"],
                "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n",
            ),
            (&["zadd", "small2", "3", "c"], ":1\r\n"),
            (
                &["zrange", "small", "0", "-1", "withscores"],
                "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n",
            ),
            (&["rename", "small2", "small3"], "+OK\r\n"),
            (
                &["zrange", "small3", "0", "-1", "withscores"],
                "*6\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n",
            ),
            (&["exists", "small2"], ":0\r\n"),
            (&["move", "small3", "1"], ":1\r\n"),
            (&["exists", "small3"], ":0\r\n"),
            (&["select", "1"], "+OK\r\n"),
            (
                &["zrange", "small3", "0", "-1", "withscores"],
                "*6\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n",
            ),
            (&["select", "0"], "+OK\r\n"),
            (&["zadd", "small", "5", "e"], ":1\r\n"),
            (&["zunionstore", "small", "2", "small", "small3"], ":3\r\n"),
            (
                &["zrange", "small", "0", "-1", "withscores"],
                "*6\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\ne\r\n$1\r\n5\r\n",
            ),
            (&["zadd", "t", "1", "a"], ":1\r\n"),
            (&["zrem", "t", "a"], ":1\r\n"),
            (&["exists", "t"], ":0\r\n"),
            (&["zrem", "t", "a"], ":0\r\n"),
            (&["zadd", "t", "1", "a", "1", "b", "1", "c"], ":3\r\n"),
            (
                &["zpopmin", "t", "10"],
                "*6\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n1\r\n$1\r\nc\r\n$1\r\n1\r\n",
            ),
            (&["exists", "t"], ":0\r\n"),
            (&["zadd", "zz", "1", "a"], ":1\r\n"),
            (&["zrangestore", "zz", "nokey", "0", "-1"], ":0\r\n"),
            (&["exists", "zz"], ":0\r\n"),
            (&["zadd", "zz", "1", "a"], ":1\r\n"),
            (&["zrangestore", "zz", "zz", "0", "0"], ":1\r\n"),
            (&["zrange", "zz", "0", "-1"], "*1\r\n$1\r\na\r\n"),
            (&["zadd", "e", "1", "a"], ":1\r\n"),
            (
                &["zintercard", "1", "e", "limit", "x"],
                "-ERR LIMIT can't be negative\r\n",
            ),
            (
                &["zintercard", "x", "e"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (
                &["zmpop", "x", "e", "min"],
                "-ERR numkeys should be greater than 0\r\n",
            ),
            (
                &["zmpop", "-1", "e", "min"],
                "-ERR numkeys should be greater than 0\r\n",
            ),
            (
                &["zunion", "1", "e", "withscores", "withscores"],
                "*2\r\n$1\r\na\r\n$1\r\n1\r\n",
            ),
            (&["zinter", "1", "e", "aggregate"], "-ERR syntax error\r\n"),
            (
                &["zunionstore", "d", "1", "e", "withscores"],
                "-ERR syntax error\r\n",
            ),
            (
                &["zrangebyscore", "e", "-inf", "+inf", "limit", "0"],
                "-ERR syntax error\r\n",
            ),
            (
                &["zrangebyscore", "e", "-inf", "+inf", "limit", "x", "1"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (
                &["zrange", "e", "0", "x"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (
                &["zrange", "e", "0", "1", "limit", "0", "1", "bylex"],
                "-ERR min or max not valid string range item\r\n",
            ),
            (
                &["zadd", "e", "1"],
                "-ERR wrong number of arguments for 'zadd' command\r\n",
            ),
            (
                &["zadd", "e"],
                "-ERR wrong number of arguments for 'zadd' command\r\n",
            ),
            (
                &["zadd", "e", "nx"],
                "-ERR wrong number of arguments for 'zadd' command\r\n",
            ),
            (&["zadd", "e", "incr", "1"], "-ERR syntax error\r\n"),
            (
                &["zincrby", "e", "1"],
                "-ERR wrong number of arguments for 'zincrby' command\r\n",
            ),
            (&["zadd", "nn", "1", "a"], ":1\r\n"),
            (&["zrange", "nn", "(1", "(1", "byscore"], "*0\r\n"),
            (&["zrange", "nn", "[a", "[a", "bylex"], "*1\r\n$1\r\na\r\n"),
            (&["zrange", "nn", "(a", "(a", "bylex"], "*0\r\n"),
            (&["zrangebylex", "nn", "-", "(a"], "*0\r\n"),
            (&["zlexcount", "nn", "-", "+"], ":1\r\n"),
            (
                &["zrevrangebyscore", "nn", "1", "1", "withscores"],
                "*2\r\n$1\r\na\r\n$1\r\n1\r\n",
            ),
            (
                &["zremrangebylex", "nn", "x", "y"],
                "-ERR min or max not valid string range item\r\n",
            ),
            (
                &["zremrangebyscore", "nn", "x", "y"],
                "-ERR min or max is not a float\r\n",
            ),
            (
                &["zremrangebyrank", "nn", "0", "x"],
                "-ERR value is not an integer or out of range\r\n",
            ),
        ],
    );
}

#[test]
fn zset_options_bounds_and_set_inputs_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    check_all(
        &mut c,
        &[
            (&["zadd", "z", "gt", "5", "new"], ":1\r\n"),
            (&["zadd", "z", "lt", "ch", "3", "new"], ":1\r\n"),
            (
                &["zadd", "z", "Infinity", "a", "-INF", "b", "+Inf", "c"],
                ":3\r\n",
            ),
            (&["zrangebyscore", "z", "(inf", "+inf"], "*0\r\n"),
            (&["zrangebyscore", "z", "-inf", "(-inf"], "*0\r\n"),
            (
                &["zrangebyscore", "z", "(-inf", "(inf", "withscores"],
                "*2\r\n$3\r\nnew\r\n$1\r\n3\r\n",
            ),
            (&["zincrby", "z", "-5", "new"], "$2\r\n-2\r\n"),
            (&["zincrby", "z", "0", "new"], "$2\r\n-2\r\n"),
            (&["zadd", "z", "incr", "-0", "new"], "$2\r\n-2\r\n"),
            (&["zscore", "z", "new"], "$2\r\n-2\r\n"),
            (
                &[
                    "zrangestore",
                    "d",
                    "z",
                    "-inf",
                    "+inf",
                    "byscore",
                    "limit",
                    "1",
                    "2",
                ],
                ":2\r\n",
            ),
            (
                &["zrange", "d", "0", "-1", "withscores"],
                "*4\r\n$3\r\nnew\r\n$2\r\n-2\r\n$1\r\na\r\n$3\r\ninf\r\n",
            ),
            (
                &[
                    "zrangestore",
                    "d",
                    "z",
                    "+",
                    "-",
                    "bylex",
                    "rev",
                    "limit",
                    "0",
                    "1",
                ],
                ":1\r\n",
            ),
            (
                &["zadd", "l", "0", "a", "0", "b", "0", "c", "0", "d"],
                ":4\r\n",
            ),
            (
                &["zrange", "l", "+", "-", "bylex", "rev", "limit", "1", "2"],
                "*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
            ),
            (
                &["zrange", "l", "[b", "[c", "bylex", "limit", "0", "-1"],
                "*2\r\n$1\r\nb\r\n$1\r\nc\r\n",
            ),
            (
                &["zrange", "l", "(a", "+", "bylex", "limit", "5", "1"],
                "*0\r\n",
            ),
            (&["zrangebylex", "l", "-", "+", "limit", "0", "0"], "*0\r\n"),
            (
                &["zrangebyscore", "l", "0", "0", "limit", "0", "99999999999"],
                "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n",
            ),
            (&["sadd", "s", "a", "x"], ":2\r\n"),
            (
                &[
                    "zunionstore",
                    "u",
                    "2",
                    "l",
                    "s",
                    "aggregate",
                    "max",
                    "weights",
                    "2",
                    "3",
                ],
                ":5\r\n",
            ),
            (
                &["zrange", "u", "0", "-1", "withscores"],
                "*10\r\n$1\r\nb\r\n$1\r\n0\r\n$1\r\nc\r\n$1\r\n0\r\n$1\r\nd\r\n$1\r\n0\r\n$1\r\na\r\n$1\r\n3\r\n$1\r\nx\r\n$1\r\n3\r\n",
            ),
            (
                &["zinterstore", "u", "2", "l", "s", "weights", "0", "1"],
                ":1\r\n",
            ),
            (
                &["zrange", "u", "0", "-1", "withscores"],
                "*2\r\n$1\r\na\r\n$1\r\n1\r\n",
            ),
            (&["zintercard", "2", "l", "s", "limit", "0"], ":1\r\n"),
            (&["zintercard", "1", "l", "limit", "2"], ":2\r\n"),
            (&["zdiffstore", "u", "2", "s", "l"], ":1\r\n"),
            (
                &["zrange", "u", "0", "-1", "withscores"],
                "*2\r\n$1\r\nx\r\n$1\r\n1\r\n",
            ),
            (&["zdiff", "1", "s"], "*2\r\n$1\r\na\r\n$1\r\nx\r\n"),
            (
                &["zinter", "1", "s", "withscores"],
                "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nx\r\n$1\r\n1\r\n",
            ),
            (
                &["zadd", "s", "1", "x"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (&["zrangestore", "s", "l", "0", "-1"], ":4\r\n"),
            (&["type", "s"], "+zset\r\n"),
            (
                &["zrange", "s", "0", "-1"],
                "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n",
            ),
            (&["zmscore", "nokey", "a"], "*1\r\n$-1\r\n"),
            (&["zremrangebyscore", "l", "-inf", "+inf"], ":4\r\n"),
            (&["exists", "l"], ":0\r\n"),
            (
                &["zpopmin", "z", "-0"],
                "-ERR value is out of range, must be positive\r\n",
            ),
            (
                &["zpopmin", "z", "1.5"],
                "-ERR value is out of range, must be positive\r\n",
            ),
            (
                &["zrange", "z", "0", "-1", "withscores", "limit", "0", "1"],
                "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\r\n",
            ),
            (
                &["zrange", "z", "0", "-1", "rev", "rev"],
                "-ERR syntax error\r\n",
            ),
            (
                &["zrange", "z", "0", "-1", "byscore", "byscore"],
                "-ERR syntax error\r\n",
            ),
            (&["zadd", "z", "ch", "gt", "xx", "1", "a"], ":0\r\n"),
            (&["zadd", "z", "1", "a", "xx"], "-ERR syntax error\r\n"),
            (
                &["zadd", "z", "incr", "nx", "gt", "1", "a"],
                "-ERR GT, LT, and/or NX options at the same time are not compatible\r\n",
            ),
        ],
    );
}

#[test]
fn zset_replies_in_resp3_are_typed_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.send_cmd(&["HELLO", "3"]);
    let _ = c.read_reply();
    check_all(
        &mut c,
        &[
            (&["zadd", "z", "1", "a", "2.5", "b", "-inf", "c"], ":3\r\n"),
            (&["zadd", "z", "incr", "1", "a"], ",2\r\n"),
            (&["zadd", "z", "nx", "incr", "1", "a"], "_\r\n"),
            (&["zincrby", "z", "0.1", "b"], ",2.6000000000000001\r\n"),
            (&["zscore", "z", "b"], ",2.6000000000000001\r\n"),
            (&["zscore", "z", "nope"], "_\r\n"),
            (&["zmscore", "z", "a", "nope"], "*2\r\n,2\r\n_\r\n"),
            (
                &["zrange", "z", "0", "-1", "withscores"],
                "*3\r\n*2\r\n$1\r\nc\r\n,-inf\r\n*2\r\n$1\r\na\r\n,2\r\n*2\r\n$1\r\nb\r\n,2.6000000000000001\r\n",
            ),
            (
                &["zrange", "z", "0", "-1"],
                "*3\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nb\r\n",
            ),
            (
                &["zrangebyscore", "z", "-inf", "2", "withscores"],
                "*2\r\n*2\r\n$1\r\nc\r\n,-inf\r\n*2\r\n$1\r\na\r\n,2\r\n",
            ),
            (&["zpopmin", "z"], "*2\r\n$1\r\nc\r\n,-inf\r\n"),
            (
                &["zpopmax", "z", "1"],
                "*1\r\n*2\r\n$1\r\nb\r\n,2.6000000000000001\r\n",
            ),
            (&["zpopmin", "nokey"], "*0\r\n"),
            (
                &["zmpop", "1", "z", "min", "count", "5"],
                "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\na\r\n,2\r\n",
            ),
            (&["zmpop", "1", "z", "min"], "_\r\n"),
            (&["zadd", "z", "1", "a", "2", "b"], ":2\r\n"),
            (
                &["zunion", "1", "z", "withscores"],
                "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2\r\n",
            ),
            (
                &["zinter", "1", "z", "withscores"],
                "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2\r\n",
            ),
            (
                &["zdiff", "1", "z", "withscores"],
                "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2\r\n",
            ),
            (&["zrandmember", "nokey"], "_\r\n"),
            (&["zrandmember", "nokey", "1"], "*0\r\n"),
            (&["zrank", "z", "nope"], "_\r\n"),
            (&["zrank", "z", "b"], ":1\r\n"),
        ],
    );
}

/// A small deterministic PRNG for the workloads (SplitMix64).
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

fn int_reply(r: &[u8]) -> i64 {
    let s = String::from_utf8_lossy(r);
    s.trim_start_matches(':')
        .trim_end()
        .parse()
        .expect("an integer reply")
}

/// The bulk strings of a flat array reply.
fn bulk_items(r: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(r).into_owned();
    let mut lines = text.split("\r\n");
    let head = lines.next().unwrap_or("");
    assert!(head.starts_with('*'), "not an array: {text}");
    let mut out = Vec::new();
    while let Some(l) = lines.next() {
        if l.starts_with('$') {
            out.push(lines.next().unwrap_or("").to_string());
        }
    }
    out
}

#[test]
fn ranks_and_ranges_of_a_large_zset_match_a_model() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let mut mix = Mix(7);
    // (score, member), Redis's order.
    let mut model: Vec<(i64, String)> = Vec::new();
    let mut argv = vec!["ZADD".to_string(), "big".to_string()];
    for i in 0..2000 {
        let score = mix.next(300) as i64 - 150;
        let member = format!("m{:05}", mix.next(1_000_000) * 10 + i % 10);
        if model.iter().any(|(_, m)| *m == member) {
            continue;
        }
        model.push((score, member.clone()));
        argv.push(score.to_string());
        argv.push(member);
    }
    model.sort();
    let n = model.len() as i64;
    assert_eq!(int_reply(&c.call(&argv)), n);
    assert_eq!(int_reply(&c.call(&["ZCARD", "big"])), n);
    for _ in 0..60 {
        let i = mix.next(n as u64) as usize;
        let (_, m) = &model[i];
        assert_eq!(
            int_reply(&c.call(&["ZRANK", "big", m])),
            i as i64,
            "ZRANK {m}"
        );
        assert_eq!(
            int_reply(&c.call(&["ZREVRANK", "big", m])),
            n - 1 - i as i64
        );
        let (a, b) = (i as i64, (i as i64 + mix.next(20) as i64).min(n - 1));
        let want: Vec<String> = model[a as usize..=b as usize]
            .iter()
            .map(|(_, m)| m.clone())
            .collect();
        let got = bulk_items(&c.call(&["ZRANGE", "big", &a.to_string(), &b.to_string()]));
        assert_eq!(got, want, "ZRANGE {a} {b}");
        let mut rev = want.clone();
        rev.reverse();
        let (ra, rb) = (n - 1 - b, n - 1 - a);
        let got = bulk_items(&c.call(&["ZREVRANGE", "big", &ra.to_string(), &rb.to_string()]));
        assert_eq!(got, rev, "ZREVRANGE {ra} {rb}");
        let lo = mix.next(300) as i64 - 150;
        let hi = lo + mix.next(10) as i64;
        let in_range: Vec<String> = model
            .iter()
            .filter(|(s, _)| *s > lo && *s <= hi)
            .map(|(_, m)| m.clone())
            .collect();
        let got =
            bulk_items(&c.call(&["ZRANGEBYSCORE", "big", &format!("({lo}"), &hi.to_string()]));
        assert_eq!(got, in_range);
        assert_eq!(
            int_reply(&c.call(&["ZCOUNT", "big", &format!("({lo}"), &hi.to_string()])),
            in_range.len() as i64
        );
        let mut rev = in_range.clone();
        rev.reverse();
        let got = bulk_items(&c.call(&[
            "ZREVRANGEBYSCORE",
            "big",
            &hi.to_string(),
            &format!("({lo}"),
            "LIMIT",
            "1",
            "3",
        ]));
        assert_eq!(got, rev.into_iter().skip(1).take(3).collect::<Vec<_>>());
    }
    // Removing by rank keeps the rest in order.
    assert_eq!(
        int_reply(&c.call(&["ZREMRANGEBYRANK", "big", "100", "199"])),
        100
    );
    model.drain(100..200);
    let got = bulk_items(&c.call(&["ZRANGE", "big", "95", "104"]));
    let want: Vec<String> = model[95..105].iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(got, want);
    c.check(&["OBJECT", "ENCODING", "big"], "$8\r\nskiplist\r\n");
}

#[test]
fn the_rows_of_a_deleted_or_expired_zset_are_reclaimed() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let empty = String::from_utf8(c.call(&["DIGEST"])).unwrap();
    c.check(&["ZADD", "keep", "1", "a"], ":1\r\n");
    let with_keep = String::from_utf8(c.call(&["DIGEST"])).unwrap();
    for chunk in 0..3 {
        let mut argv = vec!["ZADD".to_string(), "big".to_string()];
        for i in 0..1000 {
            argv.push(format!("{}", (chunk * 1000 + i) % 77));
            argv.push(format!("member:{:05}", chunk * 1000 + i));
        }
        c.check(&argv, ":1000\r\n");
    }
    c.check(&["DEL", "big"], ":1\r\n");
    c.check(&["ZADD", "big", "5", "fresh"], ":1\r\n");
    c.check(&["ZRANGE", "big", "0", "-1"], "*1\r\n$5\r\nfresh\r\n");
    c.check(
        &["ZRANGEBYSCORE", "big", "-inf", "+inf"],
        "*1\r\n$5\r\nfresh\r\n",
    );
    c.check(&["DEL", "big"], ":1\r\n");
    poll_until(CONVERGE, "the big zset's rows to be reclaimed", || {
        (String::from_utf8(c.call(&["DIGEST"])).unwrap() == with_keep).then_some(())
    });
    c.check(&["PEXPIRE", "keep", "50"], ":1\r\n");
    poll_until(CONVERGE, "the expired zset's rows to be reclaimed", || {
        (String::from_utf8(c.call(&["DIGEST"])).unwrap() == empty).then_some(())
    });
    c.check(&["EXISTS", "keep"], ":0\r\n");
}

#[test]
fn zscan_returns_every_member_once_across_calls() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let mut argv = vec!["ZADD".to_string(), "z".to_string()];
    for i in 0..500 {
        argv.push(format!("{}", i % 13));
        argv.push(format!("m{i:03}"));
    }
    c.check(&argv, ":500\r\n");
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let r = c.call(&["ZSCAN", "z", &cursor, "COUNT", "37"]);
        let items = bulk_items(&r);
        cursor = items[0].clone();
        for pair in items[1..].chunks(2) {
            let i: usize = pair[0][1..].parse().unwrap();
            assert_eq!(pair[1], (i % 13).to_string());
            seen.push(pair[0].clone());
        }
        calls += 1;
        if cursor == "0" {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 500);
    assert!(calls > 500 / 37);
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
fn a_cluster_converges_under_random_zset_writes() {
    let c = Cluster::start(3, &[]);
    let mut conns: Vec<RawConn> = (0..3).map(|i| c.node(i).raw()).collect();
    let mut mix = Mix(42);
    let mut popped = 0;
    for step in 0..400 {
        let node = (step % 3) as usize;
        let key = format!("z{}", mix.next(5));
        let other = format!("z{}", mix.next(5));
        let m = format!("m{}", mix.next(30));
        let score = format!("{}", mix.next(100) as f64 / 4.0 - 10.0);
        let argv: Vec<String> = match mix.next(14) {
            0..=2 => vec![
                "ZADD".into(),
                key,
                score,
                m,
                "1.5".into(),
                format!("m{}", mix.next(30)),
            ],
            3 => vec!["ZADD".into(), key, "GT".into(), "CH".into(), score, m],
            4 => vec!["ZINCRBY".into(), key, score, m],
            5 => vec!["ZREM".into(), key, m],
            6 => vec!["ZPOPMIN".into(), key, mix.next(3).to_string()],
            7 => vec!["ZPOPMAX".into(), key],
            8 => vec![
                "ZMPOP".into(),
                "2".into(),
                key,
                other,
                "MAX".into(),
                "COUNT".into(),
                "2".into(),
            ],
            9 => vec!["ZREMRANGEBYSCORE".into(), key, "-5".into(), "(0".into()],
            10 => vec!["ZREMRANGEBYRANK".into(), key, "0".into(), "1".into()],
            11 => vec![
                "ZUNIONSTORE".into(),
                "dst".into(),
                "2".into(),
                key,
                other,
                "WEIGHTS".into(),
                "2".into(),
                "1".into(),
            ],
            12 => vec![
                "ZRANGESTORE".into(),
                "dst2".into(),
                key,
                "0".into(),
                "2".into(),
                "REV".into(),
            ],
            _ => vec!["DEL".into(), key],
        };
        let reply = conns[node].call(&argv);
        assert!(!reply.starts_with(b"-"), "{argv:?}: {}", show(&reply));
        popped += usize::from(argv[0].starts_with("ZPOP") && reply.len() > 4);
    }
    assert!(popped > 0, "some pop popped a member");
    let digest = wait_converged(&c);
    assert!(!digest.is_empty());
    let contents: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let mut r = c.node(i).raw();
            let mut all = Vec::new();
            for k in ["z0", "z1", "z2", "z3", "z4", "dst", "dst2"] {
                all.extend(r.call(&["ZRANGE", k, "0", "-1", "WITHSCORES"]));
            }
            all
        })
        .collect();
    assert!(contents.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn random_picks_in_one_write_differ_from_call_to_call() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let mut zadd = vec!["ZADD".to_string(), "z".into()];
    let mut sadd = vec!["SADD".to_string(), "s".into()];
    let mut hset = vec!["HSET".to_string(), "h".into()];
    for i in 0..50 {
        zadd.extend([i.to_string(), format!("m{i}")]);
        sadd.push(format!("m{i}"));
        hset.extend([format!("m{i}"), "v".into()]);
    }
    assert_eq!(c.call(&zadd), b":50\r\n");
    assert_eq!(c.call(&sadd), b":50\r\n");
    assert_eq!(c.call(&hset), b":50\r\n");
    // A script that writes runs inside apply, seeded from its entry: still, twenty picks on an
    // unchanged key are not all the same member (they would be with probability 50^-19).
    for cmd in ["zrandmember", "srandmember", "hrandfield"] {
        let key = &cmd[..1];
        let script = format!(
            "redis.call('set','w','1') local t={{}} for i=1,20 do t[i]=redis.call('{cmd}','{key}') end return t"
        );
        let picks = bulk_items(&c.call(&["EVAL", &script, "0"]));
        assert_eq!(picks.len(), 20, "{cmd}");
        let distinct: std::collections::BTreeSet<_> = picks.iter().collect();
        assert!(distinct.len() > 1, "{cmd} in a script: {picks:?}");
    }
    // The same in MULTI with a write.
    c.send(
        &[
            encode_cmd(&["MULTI"]),
            encode_cmd(&["SET", "w", "2"]),
            encode_cmd(&["ZRANDMEMBER", "z"]),
            encode_cmd(&["ZRANDMEMBER", "z"]),
            encode_cmd(&["ZRANDMEMBER", "z"]),
            encode_cmd(&["ZRANDMEMBER", "z"]),
            encode_cmd(&["ZRANDMEMBER", "z"]),
            encode_cmd(&["ZRANDMEMBER", "z"]),
            encode_cmd(&["EXEC"]),
        ]
        .concat(),
    );
    for _ in 0..8 {
        c.read_reply();
    }
    let exec = c.read_reply();
    let picks = bulk_items(&exec);
    assert_eq!(picks.len(), 6, "{}", show(&exec));
    let distinct: std::collections::BTreeSet<_> = picks.iter().collect();
    assert!(distinct.len() > 1, "ZRANDMEMBER in MULTI: {picks:?}");
}
