//! SORT and SORT_RO against a real `kvd` node: every reply byte for byte as redis-server
//! 7.0.15 gave it for the same commands (lists, sets, sorted sets; BY, GET, LIMIT, ALPHA,
//! DESC, STORE, errors).

mod common;

use common::*;

#[test]
fn sort_replies_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let script: &[(&[&str], &str)] = &[
        (&["rpush", "l", "3", "1", "2", "10"], ":4\r\n"),
        (
            &["sort", "l"],
            "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$2\r\n10\r\n",
        ),
        (
            &["sort", "l", "desc"],
            "*4\r\n$2\r\n10\r\n$1\r\n3\r\n$1\r\n2\r\n$1\r\n1\r\n",
        ),
        (
            &["sort", "l", "alpha"],
            "*4\r\n$1\r\n1\r\n$2\r\n10\r\n$1\r\n2\r\n$1\r\n3\r\n",
        ),
        (
            &["sort", "l", "limit", "1", "2"],
            "*2\r\n$1\r\n2\r\n$1\r\n3\r\n",
        ),
        (&["sort", "l", "limit", "5", "2"], "*0\r\n"),
        (
            &["sort", "l", "limit", "-1", "-1"],
            "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$2\r\n10\r\n",
        ),
        (
            &["sort", "l", "limit", "0", "abc"],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (&["sort", "l", "foo"], "-ERR syntax error\r\n"),
        (
            &["sort", "l", "by", "nosort"],
            "*4\r\n$1\r\n3\r\n$1\r\n1\r\n$1\r\n2\r\n$2\r\n10\r\n",
        ),
        (
            &["sort", "l", "by", "nosort", "desc"],
            "*4\r\n$2\r\n10\r\n$1\r\n2\r\n$1\r\n1\r\n$1\r\n3\r\n",
        ),
        (
            &["mset", "w_1", "30", "w_2", "20", "w_3", "10", "w_10", "x"],
            "+OK\r\n",
        ),
        (
            &["sort", "l", "by", "w_*"],
            "-ERR One or more scores can't be converted into double\r\n",
        ),
        (&["set", "w_10", "5"], "+OK\r\n"),
        (
            &["sort", "l", "by", "w_*", "get", "#", "get", "w_*"],
            "*8\r\n$2\r\n10\r\n$1\r\n5\r\n$1\r\n3\r\n$2\r\n10\r\n$1\r\n2\r\n$2\r\n20\r\n$1\r\n1\r\n$2\r\n30\r\n",
        ),
        (
            &["sort", "l", "by", "w_*", "get", "nokey_*", "desc"],
            "*4\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n",
        ),
        (&["hset", "h_1", "f", "a"], ":1\r\n"),
        (&["hset", "h_2", "f", "b"], ":1\r\n"),
        (
            &["sort", "l", "by", "h_*->f", "alpha", "get", "h_*->f"],
            "*4\r\n$-1\r\n$-1\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["sort", "l", "by", "h_*->f"],
            "-ERR One or more scores can't be converted into double\r\n",
        ),
        (&["sort", "l", "store", "dst"], ":4\r\n"),
        (
            &["lrange", "dst", "0", "-1"],
            "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$2\r\n10\r\n",
        ),
        (
            &["sort", "l", "by", "w_*", "get", "nokey_*", "store", "dst"],
            ":4\r\n",
        ),
        (
            &["lrange", "dst", "0", "-1"],
            "*4\r\n$0\r\n\r\n$0\r\n\r\n$0\r\n\r\n$0\r\n\r\n",
        ),
        (&["sort", "nokey", "store", "dst"], ":0\r\n"),
        (&["exists", "dst"], ":0\r\n"),
        (&["sadd", "s", "c", "a", "b"], ":3\r\n"),
        (
            &["sort", "s", "alpha"],
            "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
        ),
        (
            &["sort", "s", "alpha", "desc", "limit", "0", "2"],
            "*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
        ),
        (&["zadd", "z", "3", "x", "1", "y", "2", "z"], ":3\r\n"),
        (
            &["sort", "z", "by", "nosort"],
            "*3\r\n$1\r\ny\r\n$1\r\nz\r\n$1\r\nx\r\n",
        ),
        (
            &["sort", "z", "by", "nosort", "desc"],
            "*3\r\n$1\r\nx\r\n$1\r\nz\r\n$1\r\ny\r\n",
        ),
        (
            &["sort", "z", "by", "nosort", "limit", "1", "1"],
            "*1\r\n$1\r\nz\r\n",
        ),
        (
            &["sort", "z", "alpha"],
            "*3\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\nz\r\n",
        ),
        (
            &["sort", "z"],
            "-ERR One or more scores can't be converted into double\r\n",
        ),
        (&["set", "str", "1"], "+OK\r\n"),
        (
            &["sort", "str"],
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
        (
            &["sort_ro", "l", "desc"],
            "*4\r\n$2\r\n10\r\n$1\r\n3\r\n$1\r\n2\r\n$1\r\n1\r\n",
        ),
        (&["sort_ro", "l", "store", "x"], "-ERR syntax error\r\n"),
        (&["rpush", "e", "", " 2", "1.5"], ":3\r\n"),
        (&["sort", "e"], "*3\r\n$0\r\n\r\n$3\r\n1.5\r\n$2\r\n 2\r\n"),
    ];
    for (argv, want) in script {
        c.check(argv, want);
    }
}
