//! Streams with real `kvd` processes: replies byte for byte as redis-server 7.0.15 gives them
//! (every expected text below was taken from Debian's redis-server 7.0.15 by sending the same
//! commands, RESP2 and, after `HELLO 3`, RESP3), `*` IDs from the entry's time that never go
//! back, a deleted stream whose entry and group rows are reclaimed, COPY and RENAME of a
//! stream with groups, and a 3-node cluster that converges to one DIGEST under XADD `*`,
//! XREADGROUP, XACK and XCLAIM sent to the leader and to followers.

mod common;

use std::time::Duration;

use common::*;

const CONVERGE: Duration = Duration::from_secs(60);

/// Runs a script; an empty expected reply (HELLO) is not compared.
fn check_all(c: &mut RawConn, script: &[(&[&str], &str)]) {
    for (argv, want) in script {
        if want.is_empty() {
            c.call(argv);
        } else {
            c.check(argv, want);
        }
    }
}

const SCRIPT_T1: &[(&[&str], &str)] = &[
    (&["FLUSHALL"], "+OK\r\n"),
    (&["XADD", "s", "1-1", "a", "1", "b", "2"], "$3\r\n1-1\r\n"),
    (
        &["XADD", "s", "1-1", "a", "1"],
        "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n",
    ),
    (&["XADD", "s", "1-*", "c", "3"], "$3\r\n1-2\r\n"),
    (&["XADD", "s", "2", "d", "4"], "$3\r\n2-0\r\n"),
    (
        &["XADD", "s", "0-0", "x", "y"],
        "-ERR The ID specified in XADD must be greater than 0-0\r\n",
    ),
    (
        &["XADD", "s", "3-0", "x"],
        "-ERR wrong number of arguments for 'xadd' command\r\n",
    ),
    (
        &["XADD", "s", "*"],
        "-ERR wrong number of arguments for 'xadd' command\r\n",
    ),
    (
        &["XADD", "s", "MAXLEN", "5"],
        "-ERR wrong number of arguments for 'xadd' command\r\n",
    ),
    (
        &["XADD", "s", "NOMKSTREAM", "5-0", "x", "y"],
        "$3\r\n5-0\r\n",
    ),
    (&["XADD", "nokey", "NOMKSTREAM", "5-0", "x", "y"], "$-1\r\n"),
    (
        &["XADD", "s", "MAXLEN", "=", "2", "10-0", "e", "5"],
        "$4\r\n10-0\r\n",
    ),
    (&["XLEN", "s"], ":2\r\n"),
    (
        &["XRANGE", "s", "-", "+"],
        "*2\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n*2\r\n$4\r\n10-0\r\n*2\r\n$1\r\ne\r\n$1\r\n5\r\n",
    ),
    (&["XADD", "s", "11-0", "f", "6"], "$4\r\n11-0\r\n"),
    (&["XADD", "s", "12-0", "g", "7"], "$4\r\n12-0\r\n"),
    (
        &["XRANGE", "s", "-", "+"],
        "*4\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n*2\r\n$4\r\n10-0\r\n*2\r\n$1\r\ne\r\n$1\r\n5\r\n*2\r\n$4\r\n11-0\r\n*2\r\n$1\r\nf\r\n$1\r\n6\r\n*2\r\n$4\r\n12-0\r\n*2\r\n$1\r\ng\r\n$1\r\n7\r\n",
    ),
    (
        &["XRANGE", "s", "-", "+", "COUNT", "2"],
        "*2\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n*2\r\n$4\r\n10-0\r\n*2\r\n$1\r\ne\r\n$1\r\n5\r\n",
    ),
    (&["XRANGE", "s", "-", "+", "COUNT", "0"], "*-1\r\n"),
    (&["XRANGE", "s", "-", "+", "COUNT", "-1"], "*-1\r\n"),
    (
        &["XRANGE", "s", "(10-0", "+"],
        "*2\r\n*2\r\n$4\r\n11-0\r\n*2\r\n$1\r\nf\r\n$1\r\n6\r\n*2\r\n$4\r\n12-0\r\n*2\r\n$1\r\ng\r\n$1\r\n7\r\n",
    ),
    (
        &["XRANGE", "s", "(10-0", "(12-0"],
        "*1\r\n*2\r\n$4\r\n11-0\r\n*2\r\n$1\r\nf\r\n$1\r\n6\r\n",
    ),
    (
        &["XRANGE", "s", "-", "(0-0"],
        "-ERR invalid end ID for the interval\r\n",
    ),
    (
        &["XRANGE", "s", "(+", "+"],
        "-ERR Invalid stream ID specified as stream command argument\r\n",
    ),
    (
        &["XRANGE", "s", "11", "11"],
        "*1\r\n*2\r\n$4\r\n11-0\r\n*2\r\n$1\r\nf\r\n$1\r\n6\r\n",
    ),
    (
        &["XRANGE", "s", "abc", "+"],
        "-ERR Invalid stream ID specified as stream command argument\r\n",
    ),
    (&["XRANGE", "s", "-", "+", "COUNT"], "-ERR syntax error\r\n"),
    (
        &["XRANGE", "s", "-", "+", "FOO", "1"],
        "-ERR syntax error\r\n",
    ),
    (&["XRANGE", "nokey", "-", "+"], "*0\r\n"),
    (
        &["XREVRANGE", "s", "+", "-"],
        "*4\r\n*2\r\n$4\r\n12-0\r\n*2\r\n$1\r\ng\r\n$1\r\n7\r\n*2\r\n$4\r\n11-0\r\n*2\r\n$1\r\nf\r\n$1\r\n6\r\n*2\r\n$4\r\n10-0\r\n*2\r\n$1\r\ne\r\n$1\r\n5\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n",
    ),
    (
        &["XREVRANGE", "s", "+", "-", "COUNT", "1"],
        "*1\r\n*2\r\n$4\r\n12-0\r\n*2\r\n$1\r\ng\r\n$1\r\n7\r\n",
    ),
    (
        &["XREVRANGE", "s", "(12-0", "-"],
        "*3\r\n*2\r\n$4\r\n11-0\r\n*2\r\n$1\r\nf\r\n$1\r\n6\r\n*2\r\n$4\r\n10-0\r\n*2\r\n$1\r\ne\r\n$1\r\n5\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n",
    ),
    (&["XDEL", "s", "11-0", "99-0"], ":1\r\n"),
    (
        &["XDEL", "s", "abc"],
        "-ERR Invalid stream ID specified as stream command argument\r\n",
    ),
    (&["XLEN", "s"], ":3\r\n"),
    (
        &["XINFO", "STREAM", "s"],
        "*20\r\n$6\r\nlength\r\n:3\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes\r\n:2\r\n$17\r\nlast-generated-id\r\n$4\r\n12-0\r\n$20\r\nmax-deleted-entry-id\r\n$4\r\n11-0\r\n$13\r\nentries-added\r\n:7\r\n$23\r\nrecorded-first-entry-id\r\n$3\r\n5-0\r\n$6\r\ngroups\r\n:0\r\n$11\r\nfirst-entry\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n$10\r\nlast-entry\r\n*2\r\n$4\r\n12-0\r\n*2\r\n$1\r\ng\r\n$1\r\n7\r\n",
    ),
    (
        &["XADD", "s", "MINID", "11", "13-0", "h", "8"],
        "$4\r\n13-0\r\n",
    ),
    (
        &["XRANGE", "s", "-", "+"],
        "*2\r\n*2\r\n$4\r\n12-0\r\n*2\r\n$1\r\ng\r\n$1\r\n7\r\n*2\r\n$4\r\n13-0\r\n*2\r\n$1\r\nh\r\n$1\r\n8\r\n",
    ),
    (&["XTRIM", "s", "MAXLEN", "1"], ":1\r\n"),
    (&["XTRIM", "s", "MAXLEN", "~", "1"], ":0\r\n"),
    (
        &["XTRIM", "s"],
        "-ERR wrong number of arguments for 'xtrim' command\r\n",
    ),
    (
        &["XTRIM", "s", "LIMIT", "5"],
        "-ERR syntax error, LIMIT cannot be used without specifying a trimming strategy\r\n",
    ),
    (
        &["XTRIM", "s", "MAXLEN", "1", "LIMIT", "5"],
        "-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n",
    ),
    (
        &["XTRIM", "s", "MAXLEN", "-1"],
        "-ERR The MAXLEN argument must be >= 0.\r\n",
    ),
    (
        &["XTRIM", "s", "MAXLEN", "1", "MINID", "2"],
        "-ERR syntax error, MAXLEN and MINID options at the same time are not compatible\r\n",
    ),
    (&["XTRIM", "nokey", "MAXLEN", "1"], ":0\r\n"),
    (
        &["XTRIM", "s", "MINID", "+"],
        "-ERR Invalid stream ID specified as stream command argument\r\n",
    ),
    (
        &[
            "XADD", "s", "MAXLEN", "~", "1", "LIMIT", "10", "20-0", "a", "b",
        ],
        "$4\r\n20-0\r\n",
    ),
    (
        &["XINFO", "STREAM", "s"],
        "*20\r\n$6\r\nlength\r\n:2\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes\r\n:2\r\n$17\r\nlast-generated-id\r\n$4\r\n20-0\r\n$20\r\nmax-deleted-entry-id\r\n$4\r\n11-0\r\n$13\r\nentries-added\r\n:9\r\n$23\r\nrecorded-first-entry-id\r\n$4\r\n13-0\r\n$6\r\ngroups\r\n:0\r\n$11\r\nfirst-entry\r\n*2\r\n$4\r\n13-0\r\n*2\r\n$1\r\nh\r\n$1\r\n8\r\n$10\r\nlast-entry\r\n*2\r\n$4\r\n20-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    ),
    (
        &["XSETID", "s", "5-0"],
        "-ERR The ID specified in XSETID is smaller than the target stream top item\r\n",
    ),
    (&["XSETID", "s", "100-0"], "+OK\r\n"),
    (
        &["XSETID", "s", "100-0", "ENTRIESADDED", "0"],
        "-ERR The entries_added specified in XSETID is smaller than the target stream length\r\n",
    ),
    (
        &[
            "XSETID",
            "s",
            "200-0",
            "ENTRIESADDED",
            "50",
            "MAXDELETEDID",
            "150-0",
        ],
        "+OK\r\n",
    ),
    (
        &["XSETID", "s", "200-0", "MAXDELETEDID", "250-0"],
        "-ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id\r\n",
    ),
    (&["XSETID", "nokey", "1-0"], "-ERR no such key\r\n"),
    (&["XSETID", "s", "200-0", "FOO"], "-ERR syntax error\r\n"),
    (
        &["XINFO", "STREAM", "s"],
        "*20\r\n$6\r\nlength\r\n:2\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes\r\n:2\r\n$17\r\nlast-generated-id\r\n$5\r\n200-0\r\n$20\r\nmax-deleted-entry-id\r\n$5\r\n150-0\r\n$13\r\nentries-added\r\n:50\r\n$23\r\nrecorded-first-entry-id\r\n$4\r\n13-0\r\n$6\r\ngroups\r\n:0\r\n$11\r\nfirst-entry\r\n*2\r\n$4\r\n13-0\r\n*2\r\n$1\r\nh\r\n$1\r\n8\r\n$10\r\nlast-entry\r\n*2\r\n$4\r\n20-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    ),
    (&["SET", "str", "x"], "+OK\r\n"),
    (
        &["XADD", "str", "1-0", "a", "b"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    ),
    (
        &["XLEN", "str"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    ),
    (
        &["XRANGE", "str", "-", "+"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    ),
    (&["TYPE", "s"], "+stream\r\n"),
    (&["OBJECT", "ENCODING", "s"], "$6\r\nstream\r\n"),
    (
        &["XREAD", "STREAMS", "s", "0"],
        "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$4\r\n13-0\r\n*2\r\n$1\r\nh\r\n$1\r\n8\r\n*2\r\n$4\r\n20-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    ),
    (
        &["XREAD", "COUNT", "1", "STREAMS", "s", "0"],
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$4\r\n13-0\r\n*2\r\n$1\r\nh\r\n$1\r\n8\r\n",
    ),
    (
        &["XREAD", "STREAMS", "s", "nokey", "0", "0"],
        "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$4\r\n13-0\r\n*2\r\n$1\r\nh\r\n$1\r\n8\r\n*2\r\n$4\r\n20-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    ),
    (&["XREAD", "STREAMS", "s", "$"], "*-1\r\n"),
    (&["XREAD", "BLOCK", "10", "STREAMS", "s", "$"], "*-1\r\n"),
    (
        &["XREAD", "BLOCK", "-1", "STREAMS", "s", "$"],
        "-ERR timeout is negative\r\n",
    ),
    (
        &["XREAD", "BLOCK", "x", "STREAMS", "s", "$"],
        "-ERR timeout is not an integer or out of range\r\n",
    ),
    (
        &["XREAD", "STREAMS", "s"],
        "-ERR wrong number of arguments for 'xread' command\r\n",
    ),
    (
        &["XREAD", "STREAMS", "s", ">"],
        "-ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.\r\n",
    ),
    (
        &["XREAD", "GROUP", "g", "c", "STREAMS", "s", "0"],
        "-ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.\r\n",
    ),
    (
        &["XREAD", "NOACK", "STREAMS", "s", "0"],
        "-ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.\r\n",
    ),
    (
        &["XREAD", "FOO", "STREAMS", "s", "0"],
        "-ERR syntax error\r\n",
    ),
    (
        &["XINFO", "FOO", "s"],
        "-ERR unknown subcommand 'FOO'. Try XINFO HELP.\r\n",
    ),
    (
        &["XINFO", "STREAM"],
        "-ERR wrong number of arguments for 'xinfo|stream' command\r\n",
    ),
    (&["XINFO", "STREAM", "nokey"], "-ERR no such key\r\n"),
    (
        &["XINFO", "STREAM", "s", "FULL"],
        "*18\r\n$6\r\nlength\r\n:2\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes\r\n:2\r\n$17\r\nlast-generated-id\r\n$5\r\n200-0\r\n$20\r\nmax-deleted-entry-id\r\n$5\r\n150-0\r\n$13\r\nentries-added\r\n:50\r\n$23\r\nrecorded-first-entry-id\r\n$4\r\n13-0\r\n$7\r\nentries\r\n*2\r\n*2\r\n$4\r\n13-0\r\n*2\r\n$1\r\nh\r\n$1\r\n8\r\n*2\r\n$4\r\n20-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n$6\r\ngroups\r\n*0\r\n",
    ),
    (
        &["XINFO", "STREAM", "s", "FULL", "COUNT", "1"],
        "*18\r\n$6\r\nlength\r\n:2\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes\r\n:2\r\n$17\r\nlast-generated-id\r\n$5\r\n200-0\r\n$20\r\nmax-deleted-entry-id\r\n$5\r\n150-0\r\n$13\r\nentries-added\r\n:50\r\n$23\r\nrecorded-first-entry-id\r\n$4\r\n13-0\r\n$7\r\nentries\r\n*1\r\n*2\r\n$4\r\n13-0\r\n*2\r\n$1\r\nh\r\n$1\r\n8\r\n$6\r\ngroups\r\n*0\r\n",
    ),
    (
        &["XINFO", "STREAM", "s", "FOO"],
        "-ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.\r\n",
    ),
    (&["XINFO", "GROUPS", "s"], "*0\r\n"),
    (
        &["XINFO", "HELP"],
        "*9\r\n+XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n+CONSUMERS <key> <groupname>\r\n+    Show consumers of <groupname>.\r\n+GROUPS <key>\r\n+    Show the stream consumer groups.\r\n+STREAM <key> [FULL [COUNT <count>]\r\n+    Show information about the stream.\r\n+HELP\r\n+    Prints this help.\r\n",
    ),
    (&["HELLO", "3"], ""),
    (
        &["XREAD", "STREAMS", "s", "0"],
        "%1\r\n$1\r\ns\r\n*2\r\n*2\r\n$4\r\n13-0\r\n*2\r\n$1\r\nh\r\n$1\r\n8\r\n*2\r\n$4\r\n20-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    ),
    (&["XREAD", "STREAMS", "s", "$"], "_\r\n"),
    (
        &["XINFO", "STREAM", "s"],
        "%10\r\n$6\r\nlength\r\n:2\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes\r\n:2\r\n$17\r\nlast-generated-id\r\n$5\r\n200-0\r\n$20\r\nmax-deleted-entry-id\r\n$5\r\n150-0\r\n$13\r\nentries-added\r\n:50\r\n$23\r\nrecorded-first-entry-id\r\n$4\r\n13-0\r\n$6\r\ngroups\r\n:0\r\n$11\r\nfirst-entry\r\n*2\r\n$4\r\n13-0\r\n*2\r\n$1\r\nh\r\n$1\r\n8\r\n$10\r\nlast-entry\r\n*2\r\n$4\r\n20-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    ),
    (&["XRANGE", "s", "-", "+", "COUNT", "0"], "_\r\n"),
    (&["HELLO", "2"], ""),
];
const SCRIPT_T2: &[(&[&str], &str)] = &[
    (&["FLUSHALL"], "+OK\r\n"),
    (
        &["XGROUP", "CREATE", "s", "g", "$"],
        "-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.\r\n",
    ),
    (&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"], "+OK\r\n"),
    (
        &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"],
        "-BUSYGROUP Consumer Group name already exists\r\n",
    ),
    (
        &["XGROUP", "CREATE", "s", "g2", "0", "ENTRIESREAD", "-5"],
        "-ERR value for ENTRIESREAD must be positive or -1\r\n",
    ),
    (
        &[
            "XGROUP",
            "CREATE",
            "s",
            "g2",
            "0",
            "ENTRIESREAD",
            "3",
            "FOO",
        ],
        "-ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.\r\n",
    ),
    (
        &["XGROUP", "CREATE", "s", "g2", "abc"],
        "-ERR Invalid stream ID specified as stream command argument\r\n",
    ),
    (
        &["XGROUP", "CREATE", "s"],
        "-ERR wrong number of arguments for 'xgroup|create' command\r\n",
    ),
    (
        &["XGROUP", "FOO", "s", "g"],
        "-ERR unknown subcommand 'FOO'. Try XGROUP HELP.\r\n",
    ),
    (
        &["XGROUP", "HELP"],
        "*17\r\n+XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n+CREATE <key> <groupname> <id|$> [option]\r\n+    Create a new consumer group. Options are:\r\n+    * MKSTREAM\r\n+      Create the empty stream if it does not exist.\r\n+    * ENTRIESREAD entries_read\r\n+      Set the group's entries_read counter (internal use).\r\n+CREATECONSUMER <key> <groupname> <consumer>\r\n+    Create a new consumer in the specified group.\r\n+DELCONSUMER <key> <groupname> <consumer>\r\n+    Remove the specified consumer.\r\n+DESTROY <key> <groupname>\r\n+    Remove the specified group.\r\n+SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]\r\n+    Set the current group ID and entries_read counter.\r\n+HELP\r\n+    Prints this help.\r\n",
    ),
    (
        &["XGROUP", "SETID", "s", "nog", "0"],
        "-NOGROUP No such consumer group 'nog' for key name 's'\r\n",
    ),
    (
        &["XGROUP", "SETID", "nokey", "g", "0"],
        "-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.\r\n",
    ),
    (
        &["XINFO", "GROUPS", "s"],
        "*1\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:0\r\n$7\r\npending\r\n:0\r\n$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n$12\r\nentries-read\r\n$-1\r\n$3\r\nlag\r\n:0\r\n",
    ),
    (&["XADD", "s", "1-0", "a", "1"], "$3\r\n1-0\r\n"),
    (&["XADD", "s", "2-0", "b", "2"], "$3\r\n2-0\r\n"),
    (&["XADD", "s", "3-0", "c", "3"], "$3\r\n3-0\r\n"),
    (&["XADD", "s", "4-0", "d", "4"], "$3\r\n4-0\r\n"),
    (&["XGROUP", "CREATE", "s", "g2", "0"], "+OK\r\n"),
    (
        &["XINFO", "GROUPS", "s"],
        "*2\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:0\r\n$7\r\npending\r\n:0\r\n$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n$12\r\nentries-read\r\n$-1\r\n$3\r\nlag\r\n:4\r\n*12\r\n$4\r\nname\r\n$2\r\ng2\r\n$9\r\nconsumers\r\n:0\r\n$7\r\npending\r\n:0\r\n$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n$12\r\nentries-read\r\n$-1\r\n$3\r\nlag\r\n:4\r\n",
    ),
    (
        &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "s", ">"],
        "*1\r\n*2\r\n$1\r\ns\r\n*4\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n*2\r\n$3\r\n4-0\r\n*2\r\n$1\r\nd\r\n$1\r\n4\r\n",
    ),
    (
        &[
            "XREADGROUP",
            "GROUP",
            "g2",
            "c1",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">",
        ],
        "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
    ),
    (
        &[
            "XREADGROUP",
            "GROUP",
            "g2",
            "c2",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">",
        ],
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n",
    ),
    (
        &["XREADGROUP", "GROUP", "g2", "c1", "STREAMS", "s", "0"],
        "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
    ),
    (
        &["XREADGROUP", "GROUP", "g2", "c1", "STREAMS", "s", "1-0"],
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
    ),
    (
        &["XREADGROUP", "GROUP", "g2", "c3", "STREAMS", "s", "0"],
        "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n",
    ),
    (
        &["XREADGROUP", "GROUP", "nog", "c1", "STREAMS", "s", ">"],
        "-NOGROUP No such key 's' or consumer group 'nog' in XREADGROUP with GROUP option\r\n",
    ),
    (
        &["XREADGROUP", "GROUP", "g2", "c1", "STREAMS", "nokey", ">"],
        "-NOGROUP No such key 'nokey' or consumer group 'g2' in XREADGROUP with GROUP option\r\n",
    ),
    (
        &["XREADGROUP", "GROUP", "g2", "c1", "STREAMS", "s", "$"],
        "-ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.\r\n",
    ),
    (
        &["XREADGROUP", "GROUP", "g2", "c1", "STREAMS", "s", "abc"],
        "-ERR Invalid stream ID specified as stream command argument\r\n",
    ),
    (
        &["XREADGROUP", "STREAMS", "s", ">"],
        "-ERR wrong number of arguments for 'xreadgroup' command\r\n",
    ),
    (
        &[
            "XREADGROUP",
            "GROUP",
            "g2",
            "c1",
            "BLOCK",
            "10",
            "STREAMS",
            "s",
            ">",
        ],
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n4-0\r\n*2\r\n$1\r\nd\r\n$1\r\n4\r\n",
    ),
    (
        &["XINFO", "GROUPS", "s"],
        "*2\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:4\r\n$17\r\nlast-delivered-id\r\n$3\r\n4-0\r\n$12\r\nentries-read\r\n:4\r\n$3\r\nlag\r\n:0\r\n*12\r\n$4\r\nname\r\n$2\r\ng2\r\n$9\r\nconsumers\r\n:3\r\n$7\r\npending\r\n:4\r\n$17\r\nlast-delivered-id\r\n$3\r\n4-0\r\n$12\r\nentries-read\r\n:4\r\n$3\r\nlag\r\n:0\r\n",
    ),
    (&["XPENDING", "s", "g2", "-", "+", "10", "nobody"], "*0\r\n"),
    (
        &["XPENDING", "s", "nog"],
        "-NOGROUP No such key 's' or consumer group 'nog'\r\n",
    ),
    (
        &["XPENDING", "nokey", "g2"],
        "-NOGROUP No such key 'nokey' or consumer group 'g2'\r\n",
    ),
    (
        &["XPENDING", "s", "g2"],
        "*4\r\n:4\r\n$3\r\n1-0\r\n$3\r\n4-0\r\n*2\r\n*2\r\n$2\r\nc1\r\n$1\r\n3\r\n*2\r\n$2\r\nc2\r\n$1\r\n1\r\n",
    ),
    (&["XPENDING", "s", "g2", "-", "+"], "-ERR syntax error\r\n"),
    (
        &["XPENDING", "s", "g2", "-", "+", "x"],
        "-ERR value is not an integer or out of range\r\n",
    ),
    (
        &["XPENDING", "s", "g2", "IDLE", "x", "-", "+", "10"],
        "-ERR value is not an integer or out of range\r\n",
    ),
    (
        &["XPENDING", "s", "g2", "IDLE", "10", "-", "+"],
        "-ERR syntax error\r\n",
    ),
    (&["XACK", "s", "g2", "1-0", "9-0"], ":1\r\n"),
    (
        &["XACK", "s", "g2", "abc"],
        "-ERR Invalid stream ID specified as stream command argument\r\n",
    ),
    (&["XACK", "s", "nog", "1-0"], ":0\r\n"),
    (&["XACK", "nokey", "g", "1-0"], ":0\r\n"),
    (
        &["XPENDING", "s", "g2"],
        "*4\r\n:3\r\n$3\r\n2-0\r\n$3\r\n4-0\r\n*2\r\n*2\r\n$2\r\nc1\r\n$1\r\n2\r\n*2\r\n$2\r\nc2\r\n$1\r\n1\r\n",
    ),
    (&["XDEL", "s", "2-0"], ":1\r\n"),
    (
        &["XREADGROUP", "GROUP", "g2", "c1", "STREAMS", "s", "0"],
        "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n*2\r\n$3\r\n4-0\r\n*2\r\n$1\r\nd\r\n$1\r\n4\r\n",
    ),
    (&["XCLAIM", "s", "g2", "c2", "0", "2-0", "JUSTID"], "*0\r\n"),
    (
        &["XPENDING", "s", "g2"],
        "*4\r\n:2\r\n$3\r\n3-0\r\n$3\r\n4-0\r\n*2\r\n*2\r\n$2\r\nc1\r\n$1\r\n1\r\n*2\r\n$2\r\nc2\r\n$1\r\n1\r\n",
    ),
    (
        &["XCLAIM", "s", "nog", "c", "0", "1-0"],
        "-NOGROUP No such key 's' or consumer group 'nog'\r\n",
    ),
    (
        &["XCLAIM", "s", "g2", "c2", "x", "1-0"],
        "-ERR Invalid min-idle-time argument for XCLAIM\r\n",
    ),
    (
        &["XCLAIM", "s", "g2", "c2", "0", "1-0", "IDLE", "x"],
        "-ERR Invalid IDLE option argument for XCLAIM\r\n",
    ),
    (
        &["XCLAIM", "s", "g2", "c2", "0", "1-0", "FOO"],
        "-ERR Unrecognized XCLAIM option 'FOO'\r\n",
    ),
    (
        &["XCLAIM", "s", "g2", "c2", "0", "3-0", "4-0", "JUSTID"],
        "*2\r\n$3\r\n3-0\r\n$3\r\n4-0\r\n",
    ),
    (
        &[
            "XCLAIM",
            "s",
            "g2",
            "c3",
            "0",
            "4-0",
            "FORCE",
            "JUSTID",
            "RETRYCOUNT",
            "7",
        ],
        "*1\r\n$3\r\n4-0\r\n",
    ),
    (
        &["XCLAIM", "s", "g2", "c3", "0", "1-0", "FORCE", "JUSTID"],
        "*1\r\n$3\r\n1-0\r\n",
    ),
    (&["XCLAIM", "s", "g2", "c3", "3600000", "3-0"], "*0\r\n"),
    (
        &["XCLAIM", "s", "g2", "c3", "0", "3-0"],
        "*1\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n",
    ),
    (
        &[
            "XCLAIM", "s", "g2", "c3", "0", "3-0", "LASTID", "100-0", "JUSTID",
        ],
        "*1\r\n$3\r\n3-0\r\n",
    ),
    (
        &["XINFO", "GROUPS", "s"],
        "*2\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:4\r\n$17\r\nlast-delivered-id\r\n$3\r\n4-0\r\n$12\r\nentries-read\r\n:4\r\n$3\r\nlag\r\n:0\r\n*12\r\n$4\r\nname\r\n$2\r\ng2\r\n$9\r\nconsumers\r\n:3\r\n$7\r\npending\r\n:3\r\n$17\r\nlast-delivered-id\r\n$5\r\n100-0\r\n$12\r\nentries-read\r\n:4\r\n$3\r\nlag\r\n:0\r\n",
    ),
    (&["XGROUP", "SETID", "s", "g2", "2-0"], "+OK\r\n"),
    (
        &["XINFO", "GROUPS", "s"],
        "*2\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:4\r\n$17\r\nlast-delivered-id\r\n$3\r\n4-0\r\n$12\r\nentries-read\r\n:4\r\n$3\r\nlag\r\n:0\r\n*12\r\n$4\r\nname\r\n$2\r\ng2\r\n$9\r\nconsumers\r\n:3\r\n$7\r\npending\r\n:3\r\n$17\r\nlast-delivered-id\r\n$3\r\n2-0\r\n$12\r\nentries-read\r\n$-1\r\n$3\r\nlag\r\n$-1\r\n",
    ),
    (
        &["XGROUP", "SETID", "s", "g2", "$", "ENTRIESREAD", "2"],
        "+OK\r\n",
    ),
    (
        &["XINFO", "GROUPS", "s"],
        "*2\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:4\r\n$17\r\nlast-delivered-id\r\n$3\r\n4-0\r\n$12\r\nentries-read\r\n:4\r\n$3\r\nlag\r\n:0\r\n*12\r\n$4\r\nname\r\n$2\r\ng2\r\n$9\r\nconsumers\r\n:3\r\n$7\r\npending\r\n:3\r\n$17\r\nlast-delivered-id\r\n$3\r\n4-0\r\n$12\r\nentries-read\r\n:2\r\n$3\r\nlag\r\n:2\r\n",
    ),
    (
        &["XAUTOCLAIM", "s", "g2", "c4", "0", "0", "COUNT", "1"],
        "*3\r\n$3\r\n3-0\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*0\r\n",
    ),
    (
        &[
            "XAUTOCLAIM",
            "s",
            "g2",
            "c4",
            "0",
            "0",
            "COUNT",
            "1",
            "JUSTID",
        ],
        "*3\r\n$3\r\n3-0\r\n*1\r\n$3\r\n1-0\r\n*0\r\n",
    ),
    (
        &["XAUTOCLAIM", "s", "g2", "c4", "0", "0", "COUNT", "0"],
        "-ERR COUNT must be > 0\r\n",
    ),
    (
        &["XAUTOCLAIM", "s", "g2", "c4", "x", "0"],
        "-ERR Invalid min-idle-time argument for XAUTOCLAIM\r\n",
    ),
    (
        &["XAUTOCLAIM", "s", "g2", "c4", "0", "x"],
        "-ERR Invalid stream ID specified as stream command argument\r\n",
    ),
    (
        &["XAUTOCLAIM", "s", "g2", "c4", "0", "0", "FOO"],
        "-ERR syntax error\r\n",
    ),
    (
        &["XAUTOCLAIM", "s", "nog", "c4", "0", "0"],
        "-NOGROUP No such key 's' or consumer group 'nog'\r\n",
    ),
    (
        &["XAUTOCLAIM", "s", "g2", "c4", "3600000", "0"],
        "*3\r\n$3\r\n0-0\r\n*0\r\n*0\r\n",
    ),
    (
        &["XAUTOCLAIM", "s", "g2", "c4", "0", "(3-0"],
        "*3\r\n$3\r\n0-0\r\n*1\r\n*2\r\n$3\r\n4-0\r\n*2\r\n$1\r\nd\r\n$1\r\n4\r\n*0\r\n",
    ),
    (&["XADD", "s", "5-0", "e", "5"], "$3\r\n5-0\r\n"),
    (
        &["XREADGROUP", "GROUP", "g2", "c5", "STREAMS", "s", ">"],
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\ne\r\n$1\r\n5\r\n",
    ),
    (&["XDEL", "s", "5-0"], ":1\r\n"),
    (
        &["XAUTOCLAIM", "s", "g2", "c4", "0", "0"],
        "*3\r\n$3\r\n0-0\r\n*3\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n*2\r\n$3\r\n4-0\r\n*2\r\n$1\r\nd\r\n$1\r\n4\r\n*1\r\n$3\r\n5-0\r\n",
    ),
    (
        &["XPENDING", "s", "g2"],
        "*4\r\n:3\r\n$3\r\n1-0\r\n$3\r\n4-0\r\n*1\r\n*2\r\n$2\r\nc4\r\n$1\r\n3\r\n",
    ),
    (&["XGROUP", "CREATECONSUMER", "s", "g2", "c4"], ":0\r\n"),
    (&["XGROUP", "CREATECONSUMER", "s", "g2", "c9"], ":1\r\n"),
    (
        &["XGROUP", "CREATECONSUMER", "s", "nog", "c9"],
        "-NOGROUP No such consumer group 'nog' for key name 's'\r\n",
    ),
    (&["XGROUP", "DELCONSUMER", "s", "g2", "c4"], ":3\r\n"),
    (&["XGROUP", "DELCONSUMER", "s", "g2", "zz"], ":0\r\n"),
    (
        &["XPENDING", "s", "g2"],
        "*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n",
    ),
    (
        &["XINFO", "GROUPS", "s"],
        "*2\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:4\r\n$17\r\nlast-delivered-id\r\n$3\r\n4-0\r\n$12\r\nentries-read\r\n:4\r\n$3\r\nlag\r\n$-1\r\n*12\r\n$4\r\nname\r\n$2\r\ng2\r\n$9\r\nconsumers\r\n:5\r\n$7\r\npending\r\n:0\r\n$17\r\nlast-delivered-id\r\n$3\r\n5-0\r\n$12\r\nentries-read\r\n:3\r\n$3\r\nlag\r\n:0\r\n",
    ),
    (&["XGROUP", "DESTROY", "s", "g2"], ":1\r\n"),
    (&["XGROUP", "DESTROY", "s", "g2"], ":0\r\n"),
    (
        &["XINFO", "GROUPS", "s"],
        "*1\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:4\r\n$17\r\nlast-delivered-id\r\n$3\r\n4-0\r\n$12\r\nentries-read\r\n:4\r\n$3\r\nlag\r\n$-1\r\n",
    ),
    (
        &["XINFO", "STREAM", "s"],
        "*20\r\n$6\r\nlength\r\n:3\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes\r\n:2\r\n$17\r\nlast-generated-id\r\n$3\r\n5-0\r\n$20\r\nmax-deleted-entry-id\r\n$3\r\n5-0\r\n$13\r\nentries-added\r\n:5\r\n$23\r\nrecorded-first-entry-id\r\n$3\r\n1-0\r\n$6\r\ngroups\r\n:1\r\n$11\r\nfirst-entry\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n$10\r\nlast-entry\r\n*2\r\n$3\r\n4-0\r\n*2\r\n$1\r\nd\r\n$1\r\n4\r\n",
    ),
    (
        &["XINFO", "CONSUMERS", "s", "nog"],
        "-NOGROUP No such consumer group 'nog' for key name 's'\r\n",
    ),
    (
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "NOACK",
            "STREAMS",
            "s",
            ">",
        ],
        "*-1\r\n",
    ),
    (&["XADD", "s", "6-0", "f", "6"], "$3\r\n6-0\r\n"),
    (
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "NOACK",
            "STREAMS",
            "s",
            ">",
        ],
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n6-0\r\n*2\r\n$1\r\nf\r\n$1\r\n6\r\n",
    ),
    (
        &["XPENDING", "s", "g"],
        "*4\r\n:4\r\n$3\r\n1-0\r\n$3\r\n4-0\r\n*1\r\n*2\r\n$2\r\nc1\r\n$1\r\n4\r\n",
    ),
    (
        &["XINFO", "GROUPS", "s"],
        "*1\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:4\r\n$17\r\nlast-delivered-id\r\n$3\r\n6-0\r\n$12\r\nentries-read\r\n:5\r\n$3\r\nlag\r\n:1\r\n",
    ),
    (&["HELLO", "3"], ""),
    (
        &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "s", ">"],
        "_\r\n",
    ),
    (&["XADD", "s", "7-0", "f", "7"], "$3\r\n7-0\r\n"),
    (
        &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "s", ">"],
        "%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n7-0\r\n*2\r\n$1\r\nf\r\n$1\r\n7\r\n",
    ),
    (
        &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "s", "0"],
        "%1\r\n$1\r\ns\r\n*5\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n2-0\r\n_\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n*2\r\n$3\r\n4-0\r\n*2\r\n$1\r\nd\r\n$1\r\n4\r\n*2\r\n$3\r\n7-0\r\n*2\r\n$1\r\nf\r\n$1\r\n7\r\n",
    ),
    (
        &["XINFO", "GROUPS", "s"],
        "*1\r\n%6\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:5\r\n$17\r\nlast-delivered-id\r\n$3\r\n7-0\r\n$12\r\nentries-read\r\n:6\r\n$3\r\nlag\r\n:1\r\n",
    ),
    (
        &["XPENDING", "s", "g"],
        "*4\r\n:5\r\n$3\r\n1-0\r\n$3\r\n7-0\r\n*1\r\n*2\r\n$2\r\nc1\r\n$1\r\n5\r\n",
    ),
    (
        &["XAUTOCLAIM", "s", "g", "c1", "0", "0", "JUSTID"],
        "*3\r\n$3\r\n0-0\r\n*4\r\n$3\r\n1-0\r\n$3\r\n3-0\r\n$3\r\n4-0\r\n$3\r\n7-0\r\n*1\r\n$3\r\n2-0\r\n",
    ),
    (&["HELLO", "2"], ""),
    (&["DEL", "s"], ":1\r\n"),
    (&["XADD", "s", "1-0", "a", "b"], "$3\r\n1-0\r\n"),
    (&["XINFO", "GROUPS", "s"], "*0\r\n"),
];

#[test]
fn stream_commands_reply_as_redis() {
    let node = Node::single(&[]);
    check_all(&mut node.raw(), SCRIPT_T1);
}

#[test]
fn consumer_group_commands_reply_as_redis() {
    let node = Node::single(&[]);
    check_all(&mut node.raw(), SCRIPT_T2);
}

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

/// The ID in a bulk reply (`$N\r\n<ms>-<seq>\r\n`).
fn id_of(reply: &[u8]) -> (u64, u64) {
    let s = text(reply);
    let id = s.split("\r\n").nth(1).unwrap_or_default().to_string();
    let (ms, seq) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("not an ID: {s:?}"));
    (ms.parse().unwrap(), seq.parse().unwrap())
}

#[test]
fn star_ids_take_the_entry_time_and_never_go_back() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut last = (0, 0);
    for _ in 0..20 {
        let id = id_of(&c.call(&["XADD", "s", "*", "f", "v"]));
        assert!(id > last, "{id:?} after {last:?}");
        assert!(id.0 >= before && id.0 < before + 60_000, "{id:?} is now");
        last = id;
    }
    // A last ID in the future: `*` keeps its time and bumps the sequence.
    let future = before + 10_000_000;
    c.check(&["XSETID", "s", &format!("{future}-5")], "+OK\r\n");
    assert_eq!(id_of(&c.call(&["XADD", "s", "*", "f", "v"])), (future, 6));
    assert_eq!(
        id_of(&c.call(&["XADD", "s", &format!("{future}-*"), "f", "v"])),
        (future, 7)
    );
    c.check(&["XLEN", "s"], ":22\r\n");
}

#[test]
fn a_deleted_stream_leaves_no_rows_and_copies_carry_groups() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let empty = text(&c.call(&["DIGEST"]));
    for i in 1..=300 {
        c.check(
            &["XADD", "s", &format!("{i}-0"), "f", &i.to_string()],
            &format!("${}\r\n{i}-0\r\n", format!("{i}-0").len()),
        );
    }
    c.check(&["XGROUP", "CREATE", "s", "g", "0"], "+OK\r\n");
    let read = c.call(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "COUNT",
        "100",
        "STREAMS",
        "s",
        ">",
    ]);
    assert!(
        read.starts_with(b"*1\r\n*2\r\n$1\r\ns\r\n*100\r\n"),
        "{}",
        text(&read)
    );
    c.check(&["COPY", "s", "t"], ":1\r\n");
    c.check(&["RENAME", "t", "u"], "+OK\r\n");
    c.check(&["TYPE", "u"], "+stream\r\n");
    c.check(
        &["XPENDING", "u", "g"],
        "*4\r\n:100\r\n$3\r\n1-0\r\n$5\r\n100-0\r\n*1\r\n*2\r\n$5\r\nalice\r\n$3\r\n100\r\n",
    );
    c.check(&["XACK", "u", "g", "1-0", "2-0"], ":2\r\n");
    c.check(&["XPENDING", "s", "g", "-", "+", "0"], "*0\r\n");
    let s_pending = c.call(&["XPENDING", "s", "g"]);
    assert!(
        s_pending.starts_with(b"*4\r\n:100\r\n"),
        "the copy is its own"
    );
    c.check(&["EXPIRE", "u", "1"], ":1\r\n");
    c.check(&["DEL", "s"], ":1\r\n");
    c.check(&["XLEN", "s"], ":0\r\n");
    c.check(&["XADD", "s", "1-0", "a", "b"], "$3\r\n1-0\r\n");
    c.check(&["XINFO", "GROUPS", "s"], "*0\r\n");
    c.check(&["DEL", "s"], ":1\r\n");
    poll_until(CONVERGE, "the streams' rows to be reclaimed", || {
        (text(&c.call(&["DIGEST"])) == empty).then_some(())
    });
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
fn a_cluster_converges_under_stream_and_group_writes_through_every_node() {
    let c = Cluster::start(3, &[]);
    let mut conns: Vec<RawConn> = (0..3).map(|i| c.node(i).raw()).collect();
    conns[0].check(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"], "+OK\r\n");
    let mut ids = Vec::new();
    for step in 0..60 {
        let node = step % 3;
        let reply = conns[node].call(&["XADD", "s", "*", "step", &step.to_string()]);
        ids.push(id_of(&reply));
        if step % 4 == 3 {
            let consumer = format!("c{node}");
            let r = conns[node].call(&[
                "XREADGROUP",
                "GROUP",
                "g",
                &consumer,
                "COUNT",
                "3",
                "STREAMS",
                "s",
                ">",
            ]);
            assert!(r.starts_with(b"*1\r\n"), "{}", text(&r));
        }
        if step % 6 == 5 {
            let (ms, seq) = ids[step - 3];
            let r = conns[(node + 1) % 3].call(&["XACK", "s", "g", &format!("{ms}-{seq}")]);
            assert!(r.starts_with(b":"), "{}", text(&r));
        }
        if step % 10 == 9 {
            let (old, recent) = (ids[step - 8], ids[step - 6]);
            let r = conns[(node + 2) % 3].call(&[
                "XCLAIM",
                "s",
                "g",
                "claimer",
                "0",
                &format!("{}-{}", old.0, old.1),
                &format!("{}-{}", recent.0, recent.1),
                "JUSTID",
            ]);
            assert!(r.starts_with(b"*"), "{}", text(&r));
            let r = conns[node].call(&["XAUTOCLAIM", "s", "g", "claimer", "0", "0", "COUNT", "2"]);
            assert!(r.starts_with(b"*3\r\n"), "{}", text(&r));
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "IDs grow: {ids:?}");
    conns[1].check(&["XTRIM", "s", "MAXLEN", "50"], ":10\r\n");
    conns[2].check(&["XDEL", "s", "0-1"], ":0\r\n");
    let digest = wait_converged(&c);
    assert!(!digest.is_empty());
    // The same stream, group and pending list as each node reads them.
    let views: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let mut r = c.node(i).raw();
            let mut all = r.call(&["XRANGE", "s", "-", "+"]);
            all.extend(r.call(&["XPENDING", "s", "g"]));
            all.extend(r.call(&["XINFO", "GROUPS", "s"]));
            all
        })
        .collect();
    assert!(views.windows(2).all(|w| w[0] == w[1]));
    assert!(text(&views[0]).contains("claimer"));
}

fn wait_blocked(node: &Node, n: u64) {
    poll_until(CONVERGE, "clients to block", || {
        (node.info_u64("clients", "blocked_clients") == Some(n)).then_some(())
    });
}

#[test]
fn blocked_readers_wake_on_xadd_through_another_node() {
    let c = Cluster::start(3, &[]);
    let follower = (c.wait_for_leader(CONVERGE) + 1) % 3;
    let other = (follower + 1) % 3;
    let mut w = c.node(other).raw();
    w.check(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"], "+OK\r\n");
    // Nothing there: BLOCK with a timeout answers the null array, as Redis does.
    let mut r = c.node(follower).raw();
    r.check(&["XREAD", "BLOCK", "50", "STREAMS", "s", "$"], "*-1\r\n");
    let mut reader = c.node(follower).raw();
    reader.send_cmd(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    let mut member = c.node(follower).raw();
    member.send_cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    wait_blocked(c.node(follower), 2);
    w.check(&["XADD", "s", "7-1", "f", "v"], "$3\r\n7-1\r\n");
    let entry = "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n7-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n";
    assert_eq!(text(&reader.read_reply()), entry);
    assert_eq!(text(&member.read_reply()), entry);
    // Read on another node: it shows the pending entry once it has applied the read's entry.
    let pending = "*4\r\n:1\r\n$3\r\n7-1\r\n$3\r\n7-1\r\n*1\r\n*2\r\n$5\r\nalice\r\n$1\r\n1\r\n";
    poll_until(CONVERGE, "the pending entry on another node", || {
        (text(&w.call(&["XPENDING", "s", "g"])) == pending).then_some(())
    });
    // A destroyed group ends a group read with Redis's error.
    member.send_cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "bob",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    wait_blocked(c.node(follower), 1);
    w.check(&["XGROUP", "DESTROY", "s", "g"], ":1\r\n");
    assert_eq!(
        text(&member.read_reply()),
        "-NOGROUP the consumer group this client was blocked on no longer exists\r\n"
    );
}

/// `mystream` anew with one entry and the group `mygroup` at its end.
fn fresh_group(c: &mut RawConn) {
    c.call(&["DEL", "mystream"]);
    c.call(&["XADD", "mystream", "666", "f", "v"]);
    c.check(&["XGROUP", "CREATE", "mystream", "mygroup", "$"], "+OK\r\n");
}

/// Sends Alice's `XREADGROUP ... BLOCK 0 ... >` on `mygroup` (the reply is read later).
fn send_blocking_read(rd: &mut RawConn) {
    rd.send_cmd(&[
        "XREADGROUP",
        "GROUP",
        "mygroup",
        "Alice",
        "BLOCK",
        "0",
        "STREAMS",
        "mystream",
        ">",
    ]);
}

#[test]
fn a_blocked_xreadgroup_ends_as_redis_when_its_stream_or_group_goes() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let gone = "-UNBLOCKED the stream key no longer exists\r\n";
    let nogroup = "-NOGROUP the consumer group this client was blocked on no longer exists\r\n";
    let cases: &[(&[&[&str]], &str)] = &[
        (&[&["DEL", "mystream"]], gone),
        (
            &[
                &["MULTI"],
                &["DEL", "mystream"],
                &["SADD", "mystream", "e1"],
                &["EXEC"],
            ],
            gone,
        ),
        (&[&["FLUSHDB"]], gone),
        (&[&["XGROUP", "DESTROY", "mystream", "mygroup"]], nogroup),
    ];
    // At once after the client blocks (an attempt for it may still be in flight then: it was
    // missed once, waiting forever) and after a pause.
    for pause in [0, 200] {
        for (writes, want) in cases {
            fresh_group(&mut c);
            let mut rd = node.raw();
            send_blocking_read(&mut rd);
            // Polled on an open connection, so the writes follow the block as closely as
            // they can.
            poll_until(Duration::from_secs(10), "the reader to block", || {
                let info = String::from_utf8_lossy(&c.call(&["INFO", "clients"])).into_owned();
                info.contains("blocked_clients:1\r\n").then_some(())
            });
            std::thread::sleep(Duration::from_millis(pause));
            for w in writes.iter() {
                c.call(w);
            }
            rd.expect(want.as_bytes());
            wait_blocked(&node, 0);
        }
    }
}

/// Rounds of a blocking XREADGROUP on a fresh group followed at once, on another connection and
/// without waiting for the reader to block, by `writes(round)`; the reader must get `gone`.
/// Asserts that at most a scheduling race went wrong: the reader's task running more than a
/// raft commit after its command arrived looks after the write behind it was applied, and
/// cannot tell it from one made before (1 in 100 rounds under CI's load; 0 on a quiet machine).
fn writes_right_behind_a_blocked_xreadgroup(
    writes: &dyn Fn(usize) -> Vec<Vec<&'static str>>,
    gone: &[u8],
) {
    const ROUNDS: usize = 100;
    let node = Node::single(&[]);
    let mut c = node.raw();
    let mut wrong = Vec::new();
    for round in 0..ROUNDS {
        let writes = writes(round);
        fresh_group(&mut c);
        let mut rd = node.raw();
        rd.check(&["PING"], "+PONG\r\n");
        send_blocking_read(&mut rd);
        let all: Vec<u8> = writes.iter().flat_map(|w| encode_cmd(w)).collect();
        c.send(&all);
        for _ in writes.iter() {
            c.read_reply();
        }
        let got = rd.read_reply();
        if got != gone {
            wrong.push((round, show(&got)));
        }
    }
    assert!(
        wrong.len() <= ROUNDS / 25,
        "{} of {ROUNDS} rounds: {wrong:?}",
        wrong.len()
    );
}

/// As `a_blocked_xreadgroup_ends_as_redis_when_its_stream_or_group_goes`, with the deletion
/// sent right behind the XREADGROUP (unit/type/stream-cgroups
/// "Blocking XREADGROUP: key deleted"): redis-server runs the XREADGROUP first, so it blocks and
/// the deletion ends the wait. kvd's reader may reach raft after the deletion (another thread
/// ran it first); it still answers as if it had blocked first (before the fix, NOGROUP or
/// WRONGTYPE in 5 of 40).
#[test]
fn an_xreadgroup_deleted_right_behind_answers_as_redis() {
    let deletions: [Vec<Vec<&'static str>>; 4] = [
        vec![vec!["DEL", "mystream"]],
        vec![vec!["SET", "mystream", "val1"]],
        vec![
            vec!["MULTI"],
            vec!["DEL", "mystream"],
            vec!["SADD", "mystream", "e1"],
            vec!["EXEC"],
        ],
        vec![vec!["FLUSHDB"]],
    ];
    writes_right_behind_a_blocked_xreadgroup(
        &|round| deletions[round % deletions.len()].clone(),
        b"-UNBLOCKED the stream key no longer exists\r\n",
    );
}

/// The same race with the group: XGROUP DESTROY right behind a blocking XREADGROUP ends the
/// wait with Redis's error for a destroyed group (20 of 20 rounds on redis-server 7.0.15), not
/// the one for a group that never existed (38 of 100 rounds got that before the fix).
#[test]
fn an_xreadgroup_whose_group_is_destroyed_right_behind_answers_as_redis() {
    writes_right_behind_a_blocked_xreadgroup(
        &|_| vec![vec!["XGROUP", "DESTROY", "mystream", "mygroup"]],
        b"-NOGROUP the consumer group this client was blocked on no longer exists\r\n",
    );
}
