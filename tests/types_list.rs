//! Lists with real `kvd` processes: replies byte for byte as redis-server 7.0 gives them (each
//! expected text below was taken from Debian's redis-server 7.0.15, RESP2 and RESP3), WRONGTYPE,
//! a deleted list whose elements never show through its next incarnation, expiry, the rows of a
//! big deleted or trimmed list reclaimed, and a 3-node cluster that converges to one DIGEST (and
//! the same lists on every node) under a random mix of list writes sent to leader and followers.

mod common;

use std::time::Duration;

use common::*;

const CONVERGE: Duration = Duration::from_secs(60);

fn check_all(c: &mut RawConn, script: &[(&[&str], &str)]) {
    for (argv, want) in script {
        c.check(argv, want);
    }
}

fn digest(c: &mut RawConn) -> String {
    String::from_utf8(c.call(&["DIGEST"])).expect("utf-8 digest")
}

#[test]
fn list_commands_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    check_all(
        &mut c,
        &[
            (&["LPUSH", "l", "a", "b", "c"], ":3\r\n"),
            (&["RPUSH", "l", "d", "e"], ":5\r\n"),
            (
                &["LRANGE", "l", "0", "-1"],
                "*5\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nd\r\n$1\r\ne\r\n",
            ),
            (
                &["LRANGE", "l", "-100", "100"],
                "*5\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nd\r\n$1\r\ne\r\n",
            ),
            (&["LRANGE", "l", "2", "1"], "*0\r\n"),
            (
                &["LRANGE", "l", "x", "1"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (
                &["LRANGE", "l", "0", "y"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (&["LRANGE", "nokey", "0", "-1"], "*0\r\n"),
            (
                &["LRANGE", "nokey", "x", "1"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (&["LLEN", "l"], ":5\r\n"),
            (&["LLEN", "nokey"], ":0\r\n"),
            (&["LINDEX", "l", "0"], "$1\r\nc\r\n"),
            (&["LINDEX", "l", "-1"], "$1\r\ne\r\n"),
            (&["LINDEX", "l", "5"], "$-1\r\n"),
            (
                &["LINDEX", "l", "x"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (&["LINDEX", "nokey", "x"], "$-1\r\n"),
            (&["LSET", "l", "0", "A"], "+OK\r\n"),
            (&["LSET", "l", "10", "A"], "-ERR index out of range\r\n"),
            (
                &["LSET", "l", "x", "A"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (&["LSET", "nokey", "0", "A"], "-ERR no such key\r\n"),
            (&["LSET", "nokey", "x", "A"], "-ERR no such key\r\n"),
            (&["LPOP", "l"], "$1\r\nA\r\n"),
            (&["RPOP", "l"], "$1\r\ne\r\n"),
            (&["LPOP", "l", "0"], "*0\r\n"),
            (&["LPOP", "l", "2"], "*2\r\n$1\r\nb\r\n$1\r\na\r\n"),
            (&["RPOP", "l", "10"], "*1\r\n$1\r\nd\r\n"),
            (&["LPOP", "l"], "$-1\r\n"),
            (&["LPOP", "l", "1"], "*-1\r\n"),
            (&["RPOP", "l", "0"], "*-1\r\n"),
            (
                &["LPOP", "l", "-1"],
                "-ERR value is out of range, must be positive\r\n",
            ),
            (
                &["LPOP", "l", "x"],
                "-ERR value is out of range, must be positive\r\n",
            ),
            (
                &["LPOP", "l", "1", "2"],
                "-ERR wrong number of arguments for 'lpop' command\r\n",
            ),
            (&["EXISTS", "l"], ":0\r\n"),
            (&["SET", "s", "v"], "+OK\r\n"),
            (
                &["LPUSH", "s", "a"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["RPUSH", "s", "a"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LPUSHX", "s", "a"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (&["LPUSHX", "nokey", "a"], ":0\r\n"),
            (&["RPUSHX", "nokey", "a"], ":0\r\n"),
            (
                &["LPOP", "s"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LPOP", "s", "0"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LPOP", "s", "-1"],
                "-ERR value is out of range, must be positive\r\n",
            ),
            (
                &["LLEN", "s"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LRANGE", "s", "0", "-1"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LRANGE", "s", "x", "0"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (
                &["LINDEX", "s", "x"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LSET", "s", "x", "1"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LSET", "s", "0", "1"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (&["RPUSH", "l", "1", "2", "3", "2", "1", "2"], ":6\r\n"),
            (&["LPUSHX", "l", "0"], ":7\r\n"),
            (&["RPUSHX", "l", "9"], ":8\r\n"),
            (
                &["LRANGE", "l", "0", "-1"],
                "*8\r\n$1\r\n0\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n2\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n9\r\n",
            ),
            (&["LINSERT", "l", "BEFORE", "2", "x"], ":9\r\n"),
            (&["LINSERT", "l", "after", "2", "y"], ":10\r\n"),
            (
                &["LINSERT", "l", "middle", "2", "y"],
                "-ERR syntax error\r\n",
            ),
            (&["LINSERT", "l", "after", "nothere", "y"], ":-1\r\n"),
            (&["LINSERT", "nokey", "after", "2", "y"], ":0\r\n"),
            (
                &["LINSERT", "s", "after", "2", "y"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LINSERT", "s", "middle", "2", "y"],
                "-ERR syntax error\r\n",
            ),
            (
                &["LRANGE", "l", "0", "-1"],
                "*10\r\n$1\r\n0\r\n$1\r\n1\r\n$1\r\nx\r\n$1\r\n2\r\n$1\r\ny\r\n$1\r\n3\r\n$1\r\n2\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n9\r\n",
            ),
            (&["LREM", "l", "1", "2"], ":1\r\n"),
            (&["LREM", "l", "-1", "2"], ":1\r\n"),
            (&["LREM", "l", "0", "1"], ":2\r\n"),
            (
                &["LREM", "l", "x", "1"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (&["LREM", "nokey", "1", "1"], ":0\r\n"),
            (
                &["LREM", "s", "1", "1"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LRANGE", "l", "0", "-1"],
                "*6\r\n$1\r\n0\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\n3\r\n$1\r\n2\r\n$1\r\n9\r\n",
            ),
            (&["LPOS", "l", "2"], ":4\r\n"),
            (&["LPOS", "l", "y"], ":2\r\n"),
            (&["LPOS", "l", "nothere"], "$-1\r\n"),
            (&["LPOS", "l", "2", "RANK", "-1"], ":4\r\n"),
            (
                &["LPOS", "l", "2", "RANK", "0"],
                "-ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list\r\n",
            ),
            (&["LPOS", "l", "2", "COUNT", "0"], "*1\r\n:4\r\n"),
            (&["LPOS", "l", "2", "COUNT", "1"], "*1\r\n:4\r\n"),
            (
                &["LPOS", "l", "2", "COUNT", "-1"],
                "-ERR COUNT can't be negative\r\n",
            ),
            (
                &["LPOS", "l", "2", "COUNT", "x"],
                "-ERR COUNT can't be negative\r\n",
            ),
            (
                &["LPOS", "l", "2", "MAXLEN", "-1"],
                "-ERR MAXLEN can't be negative\r\n",
            ),
            (&["LPOS", "l", "2", "MAXLEN", "2"], "$-1\r\n"),
            (&["LPOS", "l", "2", "MAXLEN", "1", "COUNT", "0"], "*0\r\n"),
            (&["LPOS", "l", "2", "RANK", "2", "COUNT", "0"], "*0\r\n"),
            (&["LPOS", "l", "2", "RANK", "-2", "COUNT", "0"], "*0\r\n"),
            (
                &["LPOS", "l", "2", "RANK", "x"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (&["LPOS", "l", "2", "RANK"], "-ERR syntax error\r\n"),
            (&["LPOS", "l", "2", "FOO", "1"], "-ERR syntax error\r\n"),
            (&["LPOS", "nokey", "2"], "$-1\r\n"),
            (&["LPOS", "nokey", "2", "COUNT", "0"], "*0\r\n"),
            (
                &["LPOS", "s", "2"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LPOS", "s", "2", "RANK", "0"],
                "-ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list\r\n",
            ),
            (
                &["LPOS", "l", "2", "RANK", "-9223372036854775808"],
                ":4\r\n",
            ),
            (
                &[
                    "LPOS",
                    "l",
                    "2",
                    "RANK",
                    "-9223372036854775808",
                    "COUNT",
                    "2",
                ],
                "*1\r\n:4\r\n",
            ),
            (&["LTRIM", "l", "1", "-2"], "+OK\r\n"),
            (
                &["LRANGE", "l", "0", "-1"],
                "*4\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\n3\r\n$1\r\n2\r\n",
            ),
            (
                &["LTRIM", "l", "x", "1"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (&["LTRIM", "nokey", "0", "1"], "+OK\r\n"),
            (
                &["LTRIM", "s", "0", "1"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (&["LTRIM", "l", "5", "1"], "+OK\r\n"),
            (&["EXISTS", "l"], ":0\r\n"),
            (&["RPUSH", "a", "1", "2", "3"], ":3\r\n"),
            (&["RPUSH", "b", "x"], ":1\r\n"),
            (&["LMOVE", "a", "b", "LEFT", "RIGHT"], "$1\r\n1\r\n"),
            (&["LMOVE", "a", "b", "RIGHT", "LEFT"], "$1\r\n3\r\n"),
            (&["LMOVE", "a", "b", "UP", "LEFT"], "-ERR syntax error\r\n"),
            (&["LMOVE", "a", "a", "LEFT", "RIGHT"], "$1\r\n2\r\n"),
            (&["LRANGE", "a", "0", "-1"], "*1\r\n$1\r\n2\r\n"),
            (
                &["LRANGE", "b", "0", "-1"],
                "*3\r\n$1\r\n3\r\n$1\r\nx\r\n$1\r\n1\r\n",
            ),
            (&["LMOVE", "nokey", "b", "LEFT", "LEFT"], "$-1\r\n"),
            (&["LMOVE", "nokey", "s", "LEFT", "LEFT"], "$-1\r\n"),
            (
                &["LMOVE", "a", "s", "LEFT", "LEFT"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LMOVE", "s", "a", "LEFT", "LEFT"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (&["RPOPLPUSH", "a", "b"], "$1\r\n2\r\n"),
            (&["RPOPLPUSH", "a", "b"], "$-1\r\n"),
            (&["EXISTS", "a"], ":0\r\n"),
            (
                &["LRANGE", "b", "0", "-1"],
                "*4\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\nx\r\n$1\r\n1\r\n",
            ),
            (&["RPOPLPUSH", "b", "b"], "$1\r\n1\r\n"),
            (
                &["LRANGE", "b", "0", "-1"],
                "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\nx\r\n",
            ),
            (
                &["LMPOP", "2", "nokey", "b", "LEFT"],
                "*2\r\n$1\r\nb\r\n*1\r\n$1\r\n1\r\n",
            ),
            (
                &["LMPOP", "2", "nokey", "b", "RIGHT", "COUNT", "2"],
                "*2\r\n$1\r\nb\r\n*2\r\n$1\r\nx\r\n$1\r\n3\r\n",
            ),
            (
                &["LMPOP", "2", "nokey", "b", "RIGHT", "COUNT", "20"],
                "*2\r\n$1\r\nb\r\n*1\r\n$1\r\n2\r\n",
            ),
            (
                &["LMPOP", "2", "nokey", "b", "RIGHT", "COUNT", "20"],
                "*-1\r\n",
            ),
            (
                &["LMPOP", "0", "a", "LEFT"],
                "-ERR numkeys should be greater than 0\r\n",
            ),
            (
                &["LMPOP", "x", "a", "LEFT"],
                "-ERR numkeys should be greater than 0\r\n",
            ),
            (
                &["LMPOP", "1", "a"],
                "-ERR wrong number of arguments for 'lmpop' command\r\n",
            ),
            (&["LMPOP", "3", "a", "LEFT"], "-ERR syntax error\r\n"),
            (&["LMPOP", "1", "a", "MIDDLE"], "-ERR syntax error\r\n"),
            (
                &["LMPOP", "1", "a", "LEFT", "COUNT", "0"],
                "-ERR count should be greater than 0\r\n",
            ),
            (
                &["LMPOP", "1", "a", "LEFT", "COUNT", "x"],
                "-ERR count should be greater than 0\r\n",
            ),
            (
                &["LMPOP", "1", "a", "LEFT", "COUNT", "1", "COUNT", "1"],
                "-ERR syntax error\r\n",
            ),
            (&["LMPOP", "1", "a", "LEFT", "FOO"], "-ERR syntax error\r\n"),
            (
                &["LMPOP", "2", "s", "a", "LEFT"],
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                &["LMPOP", "1", "a"],
                "-ERR wrong number of arguments for 'lmpop' command\r\n",
            ),
            (
                &["LPUSH"],
                "-ERR wrong number of arguments for 'lpush' command\r\n",
            ),
            (
                &["LPOP"],
                "-ERR wrong number of arguments for 'lpop' command\r\n",
            ),
            (
                &["LMOVE", "a", "b"],
                "-ERR wrong number of arguments for 'lmove' command\r\n",
            ),
            (&["TYPE", "b"], "+none\r\n"),
            (
                &["RPUSH", "n", "1", "2", "3", "100000000000", "-5", "foo"],
                ":6\r\n",
            ),
            (&["TYPE", "n"], "+list\r\n"),
            (&["OBJECT", "ENCODING", "n"], "$9\r\nquicklist\r\n"),
            (
                &["LRANGE", "n", "0", "-1"],
                "*6\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$12\r\n100000000000\r\n$2\r\n-5\r\n$3\r\nfoo\r\n",
            ),
            (&["LINDEX", "n", "3"], "$12\r\n100000000000\r\n"),
            (&["LINDEX", "n", "-9223372036854775808"], "$-1\r\n"),
            (&["LINDEX", "n", "9223372036854775807"], "$-1\r\n"),
            (
                &["LRANGE", "n", "-9223372036854775808", "9223372036854775807"],
                "*6\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$12\r\n100000000000\r\n$2\r\n-5\r\n$3\r\nfoo\r\n",
            ),
            (&["COPY", "n", "n2"], ":1\r\n"),
            (
                &["LRANGE", "n2", "0", "-1"],
                "*6\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$12\r\n100000000000\r\n$2\r\n-5\r\n$3\r\nfoo\r\n",
            ),
            (&["RENAME", "n2", "n3"], "+OK\r\n"),
            (
                &["LRANGE", "n3", "0", "-1"],
                "*6\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$12\r\n100000000000\r\n$2\r\n-5\r\n$3\r\nfoo\r\n",
            ),
            (&["TYPE", "n2"], "+none\r\n"),
        ],
    );
}

#[test]
fn inserts_removals_trims_and_searches_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    check_all(
        &mut c,
        &[
            (
                &[
                    "RPUSH", "big", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11",
                    "12", "13", "14", "15", "16", "17", "18", "19", "20", "21", "22", "23", "24",
                    "25", "26", "27", "28", "29", "30", "31", "32", "33", "34", "35", "36", "37",
                    "38", "39",
                ],
                ":40\r\n",
            ),
            (&["LREM", "big", "0", "5"], ":1\r\n"),
            (&["LINSERT", "big", "BEFORE", "0", "first"], ":40\r\n"),
            (&["LINSERT", "big", "AFTER", "39", "last"], ":41\r\n"),
            (&["LINSERT", "big", "AFTER", "20", "mid"], ":42\r\n"),
            (
                &["LRANGE", "big", "0", "-1"],
                "*42\r\n$5\r\nfirst\r\n$1\r\n0\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n$1\r\n6\r\n$1\r\n7\r\n$1\r\n8\r\n$1\r\n9\r\n$2\r\n10\r\n$2\r\n11\r\n$2\r\n12\r\n$2\r\n13\r\n$2\r\n14\r\n$2\r\n15\r\n$2\r\n16\r\n$2\r\n17\r\n$2\r\n18\r\n$2\r\n19\r\n$2\r\n20\r\n$3\r\nmid\r\n$2\r\n21\r\n$2\r\n22\r\n$2\r\n23\r\n$2\r\n24\r\n$2\r\n25\r\n$2\r\n26\r\n$2\r\n27\r\n$2\r\n28\r\n$2\r\n29\r\n$2\r\n30\r\n$2\r\n31\r\n$2\r\n32\r\n$2\r\n33\r\n$2\r\n34\r\n$2\r\n35\r\n$2\r\n36\r\n$2\r\n37\r\n$2\r\n38\r\n$2\r\n39\r\n$4\r\nlast\r\n",
            ),
            (&["LPOS", "big", "mid"], ":21\r\n"),
            (&["LPOS", "big", "last", "RANK", "-1"], ":41\r\n"),
            (
                &["LPOS", "big", "3", "RANK", "-1", "MAXLEN", "10"],
                "$-1\r\n",
            ),
            (
                &["LPOS", "big", "3", "RANK", "-1", "MAXLEN", "40"],
                ":4\r\n",
            ),
            (&["LPOS", "big", "3", "RANK", "1", "MAXLEN", "4"], "$-1\r\n"),
            (&["LPOS", "big", "3", "RANK", "1", "MAXLEN", "5"], ":4\r\n"),
            (&["LTRIM", "big", "3", "-3"], "+OK\r\n"),
            (
                &["LRANGE", "big", "0", "-1"],
                "*37\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n$1\r\n6\r\n$1\r\n7\r\n$1\r\n8\r\n$1\r\n9\r\n$2\r\n10\r\n$2\r\n11\r\n$2\r\n12\r\n$2\r\n13\r\n$2\r\n14\r\n$2\r\n15\r\n$2\r\n16\r\n$2\r\n17\r\n$2\r\n18\r\n$2\r\n19\r\n$2\r\n20\r\n$3\r\nmid\r\n$2\r\n21\r\n$2\r\n22\r\n$2\r\n23\r\n$2\r\n24\r\n$2\r\n25\r\n$2\r\n26\r\n$2\r\n27\r\n$2\r\n28\r\n$2\r\n29\r\n$2\r\n30\r\n$2\r\n31\r\n$2\r\n32\r\n$2\r\n33\r\n$2\r\n34\r\n$2\r\n35\r\n$2\r\n36\r\n$2\r\n37\r\n$2\r\n38\r\n",
            ),
            (&["LTRIM", "big", "-3", "-1"], "+OK\r\n"),
            (
                &["LRANGE", "big", "0", "-1"],
                "*3\r\n$2\r\n36\r\n$2\r\n37\r\n$2\r\n38\r\n",
            ),
            (&["LSET", "big", "-1", "Z"], "+OK\r\n"),
            (&["LSET", "big", "-4", "Z"], "-ERR index out of range\r\n"),
            (
                &["LRANGE", "big", "0", "-1"],
                "*3\r\n$2\r\n36\r\n$2\r\n37\r\n$1\r\nZ\r\n",
            ),
            (&["OBJECT", "ENCODING", "big"], "$9\r\nquicklist\r\n"),
            (&["DEL", "big"], ":1\r\n"),
            (&["RPUSH", "r", "a", "b", "a", "b", "a", "b", "a"], ":7\r\n"),
            (&["LREM", "r", "-2", "a"], ":2\r\n"),
            (
                &["LRANGE", "r", "0", "-1"],
                "*5\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nb\r\n",
            ),
            (&["LREM", "r", "2", "b"], ":2\r\n"),
            (
                &["LRANGE", "r", "0", "-1"],
                "*3\r\n$1\r\na\r\n$1\r\na\r\n$1\r\nb\r\n",
            ),
            (&["LREM", "r", "0", "b"], ":1\r\n"),
            (&["LREM", "r", "0", "a"], ":2\r\n"),
            (&["EXISTS", "r"], ":0\r\n"),
            (&["MULTI"], "+OK\r\n"),
            (&["RPUSH", "m", "1", "2"], "+QUEUED\r\n"),
            (&["LPOP", "m"], "+QUEUED\r\n"),
            (&["EXEC"], "*2\r\n:2\r\n$1\r\n1\r\n"),
        ],
    );
}

#[test]
fn missing_values_are_resp3_nulls_and_resp2_nils() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    check_all(
        &mut c,
        &[
            (&["LPOP", "nokey"], "$-1\r\n"),
            (&["LPOP", "nokey", "2"], "*-1\r\n"),
            (&["LMPOP", "1", "nokey", "LEFT"], "*-1\r\n"),
            (&["LPOS", "nokey", "a"], "$-1\r\n"),
            (&["LINDEX", "nokey", "0"], "$-1\r\n"),
            (&["RPUSH", "l", "a", "b", "c"], ":3\r\n"),
            (&["LPOS", "l", "z"], "$-1\r\n"),
            (&["LPOS", "l", "z", "COUNT", "0"], "*0\r\n"),
            (&["LINDEX", "l", "9"], "$-1\r\n"),
            (&["LMOVE", "nokey", "l", "LEFT", "LEFT"], "$-1\r\n"),
            (
                &["LMPOP", "1", "l", "RIGHT", "COUNT", "2"],
                "*2\r\n$1\r\nl\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
            ),
            (&["LPOP", "l", "5"], "*1\r\n$1\r\na\r\n"),
            (&["LPOP", "l"], "$-1\r\n"),
        ],
    );
    c.check(&["FLUSHALL"], "+OK\r\n");
    let hello = c.call(&["HELLO", "3"]);
    assert!(hello.starts_with(b"%"), "{}", show(&hello));
    check_all(
        &mut c,
        &[
            (&["LPOP", "nokey"], "_\r\n"),
            (&["LPOP", "nokey", "2"], "_\r\n"),
            (&["LMPOP", "1", "nokey", "LEFT"], "_\r\n"),
            (&["LPOS", "nokey", "a"], "_\r\n"),
            (&["LINDEX", "nokey", "0"], "_\r\n"),
            (&["RPUSH", "l", "a", "b", "c"], ":3\r\n"),
            (&["LPOS", "l", "z"], "_\r\n"),
            (&["LPOS", "l", "z", "COUNT", "0"], "*0\r\n"),
            (&["LINDEX", "l", "9"], "_\r\n"),
            (&["LMOVE", "nokey", "l", "LEFT", "LEFT"], "_\r\n"),
            (
                &["LMPOP", "1", "l", "RIGHT", "COUNT", "2"],
                "*2\r\n$1\r\nl\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
            ),
            (&["LPOP", "l", "5"], "*1\r\n$1\r\na\r\n"),
            (&["LPOP", "l"], "_\r\n"),
        ],
    );
}

#[test]
fn a_deleted_or_overwritten_list_never_shows_through_its_next_incarnation() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let wrongtype = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    check_all(
        &mut c,
        &[
            (&["RPUSH", "l", "a", "b", "c"], ":3\r\n"),
            (&["DEL", "l"], ":1\r\n"),
            (&["RPUSH", "l", "x"], ":1\r\n"),
            (&["LRANGE", "l", "0", "-1"], "*1\r\n$1\r\nx\r\n"),
            (&["LINDEX", "l", "1"], "$-1\r\n"),
            (&["LINDEX", "l", "-2"], "$-1\r\n"),
            (&["SET", "l", "str"], "+OK\r\n"),
            (&["RPUSH", "l", "y"], wrongtype),
            (&["LLEN", "l"], wrongtype),
            (&["TYPE", "l"], "+string\r\n"),
            (&["DEL", "l"], ":1\r\n"),
            (&["LPUSH", "l", "z"], ":1\r\n"),
            (&["LRANGE", "l", "0", "-1"], "*1\r\n$1\r\nz\r\n"),
            (&["TYPE", "l"], "+list\r\n"),
            (&["OBJECT", "ENCODING", "l"], "$9\r\nquicklist\r\n"),
            // A list emptied by pops is deleted, as in Redis.
            (&["LPOP", "l"], "$1\r\nz\r\n"),
            (&["EXISTS", "l"], ":0\r\n"),
            (&["TYPE", "l"], "+none\r\n"),
        ],
    );
}

#[test]
fn a_list_expires_and_its_rows_are_reclaimed() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let empty = digest(&mut c);
    c.check(&["RPUSH", "l", "a", "b"], ":2\r\n");
    c.check(&["PEXPIRE", "l", "300"], ":1\r\n");
    // Changing the list keeps its TTL, as in Redis.
    c.check(&["LPUSH", "l", "c"], ":3\r\n");
    let ttl = String::from_utf8(c.call(&["PTTL", "l"])).unwrap();
    assert!(ttl.starts_with(':') && ttl != ":-1\r\n", "{ttl}");
    poll_until(Duration::from_secs(10), "the list to expire", || {
        (c.call(&["EXISTS", "l"]) == b":0\r\n").then_some(())
    });
    c.check(&["LRANGE", "l", "0", "-1"], "*0\r\n");
    c.check(&["LLEN", "l"], ":0\r\n");
    c.check(&["RPUSH", "l", "z"], ":1\r\n");
    c.check(&["LRANGE", "l", "0", "-1"], "*1\r\n$1\r\nz\r\n");
    c.check(&["DEL", "l"], ":1\r\n");
    poll_until(CONVERGE, "every row to be reclaimed", || {
        (digest(&mut c) == empty).then_some(())
    });
}

/// Pushes `n` elements "e:00000".. onto `key` in chunks of 1000.
fn push_many(c: &mut RawConn, key: &str, n: usize) {
    for chunk in 0..n.div_ceil(1000) {
        let mut argv = vec!["RPUSH".to_string(), key.to_string()];
        let upto = ((chunk + 1) * 1000).min(n);
        for i in chunk * 1000..upto {
            argv.push(format!("e:{i:05}"));
        }
        c.check(&argv, &format!(":{upto}\r\n"));
    }
}

#[test]
fn the_rows_of_a_big_deleted_or_trimmed_list_are_reclaimed() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let empty = digest(&mut c);
    c.check(&["SET", "keep", "v"], "+OK\r\n");
    let with_others = digest(&mut c);
    push_many(&mut c, "big", 10_000);
    c.check(&["LLEN", "big"], ":10000\r\n");
    c.check(&["LINDEX", "big", "7777"], "$7\r\ne:07777\r\n");
    c.check(&["LINDEX", "big", "-1"], "$7\r\ne:09999\r\n");
    c.check(
        &["LRANGE", "big", "4998", "5000"],
        "*3\r\n$7\r\ne:04998\r\n$7\r\ne:04999\r\n$7\r\ne:05000\r\n",
    );
    c.check(&["DEL", "big"], ":1\r\n");
    c.check(&["SET", "during", "1"], "+OK\r\n");
    c.check(&["DEL", "during"], ":1\r\n");
    poll_until(CONVERGE, "the big list's rows to be reclaimed", || {
        (digest(&mut c) == with_others).then_some(())
    });
    // An LTRIM that keeps a few of many elements moves them to a fresh version; the rest of
    // the rows are reclaimed in the background.
    push_many(&mut c, "big", 5_000);
    c.check(&["LTRIM", "big", "2500", "2502"], "+OK\r\n");
    c.check(
        &["LRANGE", "big", "0", "-1"],
        "*3\r\n$7\r\ne:02500\r\n$7\r\ne:02501\r\n$7\r\ne:02502\r\n",
    );
    c.check(&["RPUSH", "big", "end"], ":4\r\n");
    c.check(&["LPUSH", "big", "start"], ":5\r\n");
    c.check(&["LINDEX", "big", "1"], "$7\r\ne:02500\r\n");
    // Popping most of a long list at once does the same.
    push_many(&mut c, "other", 3_000);
    let popped = c.call(&["LPOP", "other", "2990"]);
    assert!(popped.starts_with(b"*2990\r\n$7\r\ne:00000\r\n"));
    c.check(&["LLEN", "other"], ":10\r\n");
    c.check(&["LINDEX", "other", "0"], "$7\r\ne:02990\r\n");
    c.check(&["DEL", "big", "other", "keep"], ":3\r\n");
    poll_until(CONVERGE, "an empty table", || {
        (digest(&mut c) == empty).then_some(())
    });
}

#[test]
fn copy_rename_and_move_carry_lists() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    push_many(&mut c, "src", 600);
    c.check(&["LPUSH", "src", "head"], ":601\r\n");
    c.check(&["COPY", "src", "dst"], ":1\r\n");
    c.check(&["RPOP", "src"], "$7\r\ne:00599\r\n");
    c.check(&["LLEN", "dst"], ":601\r\n");
    c.check(&["LINDEX", "dst", "0"], "$4\r\nhead\r\n");
    c.check(&["LINDEX", "dst", "-1"], "$7\r\ne:00599\r\n");
    c.check(&["RENAME", "dst", "moved"], "+OK\r\n");
    c.check(&["EXISTS", "dst"], ":0\r\n");
    c.check(&["LINDEX", "moved", "300"], "$7\r\ne:00299\r\n");
    c.check(&["MOVE", "moved", "3"], ":1\r\n");
    c.check(&["SELECT", "3"], "+OK\r\n");
    c.check(&["LLEN", "moved"], ":601\r\n");
    c.check(&["TYPE", "moved"], "+list\r\n");
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

/// What the lists should hold: a plain model of Redis's list semantics for the commands the
/// random workload sends, giving each command's expected RESP2 reply.
#[derive(Default)]
struct Model {
    lists: std::collections::BTreeMap<String, std::collections::VecDeque<String>>,
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

fn array(items: &[String]) -> String {
    let mut out = format!("*{}\r\n", items.len());
    for i in items {
        out.push_str(&bulk(i));
    }
    out
}

impl Model {
    fn apply(&mut self, argv: &[String]) -> String {
        let key = argv[1].clone();
        let reply = self.reply(argv);
        if self.lists.get(&key).is_some_and(|l| l.is_empty()) {
            self.lists.remove(&key);
        }
        if let Some(dst) = argv.get(2)
            && self.lists.get(dst).is_some_and(|l| l.is_empty())
        {
            self.lists.remove(dst);
        }
        reply
    }

    fn reply(&mut self, argv: &[String]) -> String {
        let key = &argv[1];
        match argv[0].as_str() {
            "LPUSH" | "RPUSH" => {
                let l = self.lists.entry(key.clone()).or_default();
                for v in &argv[2..] {
                    if argv[0] == "LPUSH" {
                        l.push_front(v.clone());
                    } else {
                        l.push_back(v.clone());
                    }
                }
                format!(":{}\r\n", l.len())
            }
            "LPOP" | "RPOP" => {
                let Some(l) = self.lists.get_mut(key) else {
                    return "*-1\r\n".into();
                };
                let n: usize = argv[2].parse().unwrap();
                let mut out = Vec::new();
                while out.len() < n {
                    let v = if argv[0] == "LPOP" {
                        l.pop_front()
                    } else {
                        l.pop_back()
                    };
                    match v {
                        Some(v) => out.push(v),
                        None => break,
                    }
                }
                array(&out)
            }
            "LINSERT" => {
                let Some(l) = self.lists.get_mut(key) else {
                    return ":0\r\n".into();
                };
                let Some(at) = l.iter().position(|v| *v == argv[3]) else {
                    return ":-1\r\n".into();
                };
                let at = if argv[2] == "AFTER" { at + 1 } else { at };
                l.insert(at, argv[4].clone());
                format!(":{}\r\n", l.len())
            }
            "LREM" => {
                let Some(l) = self.lists.get_mut(key) else {
                    return ":0\r\n".into();
                };
                let count: i64 = argv[2].parse().unwrap();
                let limit = count.unsigned_abs() as usize;
                let mut hits: Vec<usize> = Vec::new();
                let idx: Vec<usize> = if count < 0 {
                    (0..l.len()).rev().collect()
                } else {
                    (0..l.len()).collect()
                };
                for i in idx {
                    if l[i] == argv[3] && (limit == 0 || hits.len() < limit) {
                        hits.push(i);
                    }
                }
                hits.sort_unstable();
                for i in hits.iter().rev() {
                    l.remove(*i);
                }
                format!(":{}\r\n", hits.len())
            }
            "LSET" => {
                let Some(l) = self.lists.get_mut(key) else {
                    return "-ERR no such key\r\n".into();
                };
                let i: i64 = argv[2].parse().unwrap();
                let i = if i < 0 { l.len() as i64 + i } else { i };
                if i < 0 || i >= l.len() as i64 {
                    return "-ERR index out of range\r\n".into();
                }
                l[i as usize] = argv[3].clone();
                "+OK\r\n".into()
            }
            "LTRIM" => {
                let Some(l) = self.lists.get_mut(key) else {
                    return "+OK\r\n".into();
                };
                let len = l.len() as i64;
                let fix = |i: i64| if i < 0 { len + i } else { i };
                let start: i64 = fix(argv[2].parse().unwrap()).max(0);
                let stop: i64 = fix(argv[3].parse().unwrap()).min(len - 1);
                if start > stop {
                    l.clear();
                } else {
                    l.truncate(stop as usize + 1);
                    l.drain(..start as usize);
                }
                "+OK\r\n".into()
            }
            "LMOVE" => {
                let Some(v) = self.lists.get_mut(key).and_then(|l| {
                    if argv[3] == "LEFT" {
                        l.pop_front()
                    } else {
                        l.pop_back()
                    }
                }) else {
                    return "$-1\r\n".into();
                };
                let dst = self.lists.entry(argv[2].clone()).or_default();
                if argv[4] == "LEFT" {
                    dst.push_front(v.clone());
                } else {
                    dst.push_back(v.clone());
                }
                bulk(&v)
            }
            "DEL" => format!(":{}\r\n", u8::from(self.lists.remove(key).is_some())),
            other => panic!("the model does not know {other}"),
        }
    }
}

/// One random list write over a few keys (elements from a small alphabet, so LREM and LINSERT
/// find their pivots).
fn random_write(mix: &mut Mix, step: usize) -> Vec<String> {
    let key = format!("l{}", mix.next(4));
    let e = |mix: &mut Mix| format!("v{}", mix.next(5));
    let end = |mix: &mut Mix| if mix.next(2) == 0 { "LEFT" } else { "RIGHT" }.to_string();
    let i = |mix: &mut Mix| (mix.next(41) as i64 - 20).to_string();
    match mix.next(12) {
        0..=2 => {
            let mut argv = vec![
                if mix.next(2) == 0 { "LPUSH" } else { "RPUSH" }.to_string(),
                key,
            ];
            for _ in 0..1 + mix.next(8) {
                argv.push(e(mix));
            }
            argv
        }
        3 => vec![
            if mix.next(2) == 0 { "LPOP" } else { "RPOP" }.into(),
            key,
            mix.next(4).to_string(),
        ],
        4 => vec![
            "LINSERT".into(),
            key,
            if mix.next(2) == 0 { "BEFORE" } else { "AFTER" }.into(),
            e(mix),
            format!("i{step}"),
        ],
        5 => vec![
            "LREM".into(),
            key,
            (mix.next(5) as i64 - 2).to_string(),
            e(mix),
        ],
        6 => vec!["LSET".into(), key, i(mix), format!("s{step}")],
        7 => vec!["LTRIM".into(), key, i(mix), i(mix)],
        8 | 9 => vec![
            "LMOVE".into(),
            key,
            format!("l{}", mix.next(4)),
            end(mix),
            end(mix),
        ],
        10 => vec!["LPUSH".into(), key, e(mix)],
        _ => {
            if mix.next(4) == 0 {
                vec!["DEL".into(), key]
            } else {
                vec!["RPUSH".into(), key, e(mix), e(mix)]
            }
        }
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
fn a_cluster_converges_under_random_list_writes_through_every_node() {
    let c = Cluster::start(3, &[]);
    let mut conns: Vec<RawConn> = (0..3).map(|i| c.node(i).raw()).collect();
    let mut mix = Mix(7);
    let mut model = Model::default();
    for step in 0..600 {
        let argv = random_write(&mut mix, step);
        let want = model.apply(&argv);
        // Writes go to the leader and to followers alike (followers forward them).
        conns[step % 3].check(&argv, &want);
    }
    let digest = wait_converged(&c);
    assert!(!digest.ends_with(" 0"), "some lists remain: {digest}");
    for i in 0..3 {
        let mut r = c.node(i).raw();
        for k in 0..4 {
            let key = format!("l{k}");
            let items: Vec<String> = model
                .lists
                .get(&key)
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_default();
            r.check(&["LRANGE", &key, "0", "-1"], &array(&items));
        }
    }
}
