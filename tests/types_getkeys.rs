//! COMMAND GETKEYS with a real `kvd`: the keys of command lines with fixed key positions, with
//! keys that move (numkeys, STORE, STREAMS, subcommands), and Redis's errors, byte for byte as
//! redis-server 7.0.15 answers them (the expected replies were taken from it).

mod common;

use common::*;

#[test]
fn command_getkeys_answers_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let script: &[(&[&str], &str)] = &[
        (
            &["COMMAND", "GETKEYS", "sort", "abc", "store", "def"],
            "*2\r\n$3\r\nabc\r\n$3\r\ndef\r\n",
        ),
        (
            &[
                "COMMAND", "GETKEYS", "sort", "abc", "store", "invalid", "store", "stillbad",
                "store", "def",
            ],
            "*2\r\n$3\r\nabc\r\n$3\r\ndef\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "sort_ro", "abc"],
            "*1\r\n$3\r\nabc\r\n",
        ),
        (
            &[
                "COMMAND", "GETKEYS", "sort", "abc", "by", "x", "get", "#", "store",
            ],
            "*1\r\n$3\r\nabc\r\n",
        ),
        (
            &[
                "COMMAND", "GETKEYS", "sort", "a", "limit", "0", "1", "store", "d",
            ],
            "*2\r\n$1\r\na\r\n$1\r\nd\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "sort", "a", "store"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "eval", "x", "2", "a", "b", "c"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (&["COMMAND", "GETKEYS", "eval", "x", "0"], "*0\r\n"),
        (&["COMMAND", "GETKEYS", "eval", "x", "5", "a"], "*0\r\n"),
        (&["COMMAND", "GETKEYS", "eval", "x", "-1"], "*0\r\n"),
        (&["COMMAND", "GETKEYS", "eval", "x", "abc"], "*0\r\n"),
        (
            &["COMMAND", "GETKEYS", "evalsha", "x", "1", "a"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "fcall", "f", "1", "a"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zunionstore", "d", "2", "a", "b"],
            "*3\r\n$1\r\nd\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &[
                "COMMAND",
                "GETKEYS",
                "zinterstore",
                "d",
                "2",
                "a",
                "b",
                "weights",
                "1",
                "2",
            ],
            "*3\r\n$1\r\nd\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zinterstore", "d", "x", "a"],
            "-ERR Invalid arguments specified for command\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zunionstore", "d", "3", "a", "b"],
            "-ERR Invalid arguments specified for command\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zdiffstore", "d", "1", "a"],
            "*2\r\n$1\r\nd\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zunion", "2", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zinter", "1", "a"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zintercard", "2", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "sintercard", "2", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "lmpop", "2", "a", "b", "left"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "lmpop", "0", "a", "left"],
            "-ERR Invalid arguments specified for command\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "blmpop", "0", "2", "a", "b", "left"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "bzmpop", "0", "1", "a", "min"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zmpop", "1", "a", "min"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &[
                "COMMAND", "GETKEYS", "xread", "count", "2", "streams", "a", "b", "0", "0",
            ],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xread", "streams", "a"],
            "-ERR Invalid number of arguments specified for command\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xread", "streams", "a", "b", "0"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &[
                "COMMAND", "GETKEYS", "xread", "block", "0", "streams", "a", "0",
            ],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &[
                "COMMAND",
                "GETKEYS",
                "xreadgroup",
                "group",
                "g",
                "c",
                "streams",
                "a",
                "0",
            ],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &[
                "COMMAND",
                "GETKEYS",
                "xreadgroup",
                "group",
                "g",
                "c",
                "count",
                "1",
                "noack",
                "streams",
                "a",
                "b",
                "0",
                "0",
            ],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &[
                "COMMAND",
                "GETKEYS",
                "georadius",
                "k",
                "0",
                "0",
                "1",
                "km",
                "store",
                "d",
            ],
            "*2\r\n$1\r\nk\r\n$1\r\nd\r\n",
        ),
        (
            &[
                "COMMAND",
                "GETKEYS",
                "georadiusbymember",
                "k",
                "m",
                "1",
                "km",
                "storedist",
                "d",
            ],
            "*2\r\n$1\r\nk\r\n$1\r\nd\r\n",
        ),
        (
            &[
                "COMMAND",
                "GETKEYS",
                "georadius_ro",
                "k",
                "0",
                "0",
                "1",
                "km",
            ],
            "*1\r\n$1\r\nk\r\n",
        ),
        (
            &[
                "COMMAND",
                "GETKEYS",
                "geosearchstore",
                "d",
                "s",
                "frommember",
                "m",
                "byradius",
                "1",
                "km",
            ],
            "*2\r\n$1\r\nd\r\n$1\r\ns\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "object", "encoding", "k"],
            "*1\r\n$1\r\nk\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "object", "help"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "object", "nosuch", "k"],
            "-ERR Invalid command specified\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xinfo", "stream", "k"],
            "*1\r\n$1\r\nk\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xinfo", "stream"],
            "-ERR Invalid number of arguments specified for command\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xinfo", "groups", "k"],
            "*1\r\n$1\r\nk\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xinfo", "consumers", "k", "g"],
            "*1\r\n$1\r\nk\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xinfo", "help"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xgroup", "create", "k", "g", "$"],
            "*1\r\n$1\r\nk\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xgroup", "destroy", "k", "g"],
            "*1\r\n$1\r\nk\r\n",
        ),
        (
            &[
                "COMMAND",
                "GETKEYS",
                "xgroup",
                "createconsumer",
                "k",
                "g",
                "c",
            ],
            "*1\r\n$1\r\nk\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xgroup", "help"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "memory", "usage", "k"],
            "*1\r\n$1\r\nk\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "memory", "doctor"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "client", "list"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "config", "get", "x"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "nosuch", "a", "b"],
            "-ERR Invalid command specified\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "ping", "a"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "msetnx", "a", "1", "b", "2"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "mget", "a", "b", "c"],
            "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "get", "a", "b"],
            "-ERR Invalid number of arguments specified for command\r\n",
        ),
        (&["COMMAND", "GETKEYS", "get", "a"], "*1\r\n$1\r\na\r\n"),
        (
            &["COMMAND", "GETKEYS", "set", "a"],
            "-ERR Invalid number of arguments specified for command\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "set", "a", "b"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "del", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "unlink", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "exists", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "touch", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "rename", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "renamenx", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "copy", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "lmove", "a", "b", "left", "right"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &[
                "COMMAND", "GETKEYS", "blmove", "a", "b", "left", "right", "0",
            ],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "rpoplpush", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "brpoplpush", "a", "b", "0"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "blpop", "a", "b", "0"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "bzpopmin", "a", "b", "0"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "smove", "a", "b", "m"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "sinterstore", "d", "a", "b"],
            "*3\r\n$1\r\nd\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "sunion", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "sdiff", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "bitop", "and", "d", "a", "b"],
            "*3\r\n$1\r\nd\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "bitcount", "a"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "pfmerge", "d", "a", "b"],
            "*3\r\n$1\r\nd\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "pfcount", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "pfadd", "a", "x"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "hset", "h", "f", "v"],
            "*1\r\n$1\r\nh\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xadd", "s", "*", "f", "v"],
            "*1\r\n$1\r\ns\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xack", "s", "g", "1"],
            "*1\r\n$1\r\ns\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "expire", "a", "10"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "watch", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zadd", "z", "1", "m"],
            "*1\r\n$1\r\nz\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "lpos", "l", "x"],
            "*1\r\n$1\r\nl\r\n",
        ),
        (&["COMMAND", "GETKEYS", "getex", "a"], "*1\r\n$1\r\na\r\n"),
        (&["COMMAND", "GETKEYS", "getdel", "a"], "*1\r\n$1\r\na\r\n"),
        (
            &["COMMAND", "GETKEYS", "setrange", "a", "0", "x"],
            "*1\r\n$1\r\na\r\n",
        ),
        (&["COMMAND", "GETKEYS", "incr", "a"], "*1\r\n$1\r\na\r\n"),
        (
            &["COMMAND", "GETKEYS", "append", "a", "b"],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "lcs", "a", "b"],
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zrangestore", "d", "s", "0", "1"],
            "*2\r\n$1\r\nd\r\n$1\r\ns\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "dbsize", "x"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "flushdb", "x"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "publish", "c", "m"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "subscribe", "c"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "multi", "x"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zunion", "0", "a"],
            "-ERR Invalid arguments specified for command\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "zunionstore", "d", "0", "a"],
            "-ERR Invalid arguments specified for command\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "sintercard", "0", "a"],
            "-ERR Invalid arguments specified for command\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "blmpop", "0", "0", "a", "left"],
            "-ERR Invalid arguments specified for command\r\n",
        ),
        (&["COMMAND", "GETKEYS", "fcall", "f", "0"], "*0\r\n"),
        (&["COMMAND", "GETKEYS", "eval", "x", "0", "a"], "*0\r\n"),
        (
            &[
                "COMMAND",
                "GETKEYS",
                "xreadgroup",
                "group",
                "g",
                "c",
                "streams",
                "a",
                "b",
                "0",
            ],
            "*1\r\n$1\r\na\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "memory", "stats"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "memory", "purge"],
            "-ERR The command has no key arguments\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xgroup", "setid", "k", "g", "0"],
            "*1\r\n$1\r\nk\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "xinfo", "stream", "k", "full"],
            "*1\r\n$1\r\nk\r\n",
        ),
        (
            &["COMMAND", "GETKEYS"],
            "-ERR wrong number of arguments for 'command|getkeys' command\r\n",
        ),
        (
            &["COMMAND", "GETKEYS", "get"],
            "-ERR wrong number of arguments for 'command|getkeys' command\r\n",
        ),
    ];
    for (argv, want) in script {
        c.check(argv, want);
    }
}

#[test]
fn command_list_and_movablekeys_answer_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let text = |c: &mut RawConn, args: &[&str]| String::from_utf8_lossy(&c.call(args)).into_owned();
    let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());

    // Every command, and the subcommands of containers as container|sub.
    let all = text(&mut c, &["COMMAND", "LIST"]);
    for name in ["set", "client", "client|list", "config|get", "xinfo|stream"] {
        assert!(all.contains(&bulk(name)), "COMMAND LIST lacks {name}");
    }
    // ACL categories are Redis's, subcommands included.
    let scripting = text(
        &mut c,
        &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "scripting"],
    );
    assert!(scripting.contains(&bulk("eval")) && scripting.contains(&bulk("script|kill")));
    assert!(!scripting.contains(&bulk("set")), "{scripting}");
    c.check(
        &[
            "COMMAND",
            "LIST",
            "FILTERBY",
            "ACLCAT",
            "non_existing_category",
        ],
        "*0\r\n",
    );
    // Patterns match full names.
    c.check(
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "set"],
        "*1\r\n$3\r\nset\r\n",
    );
    let re = text(
        &mut c,
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "config|*re*"],
    );
    assert!(re.contains(&bulk("config|resetstat")) && re.contains(&bulk("config|rewrite")));
    assert!(!re.contains(&bulk("config|get")), "{re}");
    let help = text(
        &mut c,
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "cl*help"],
    );
    assert!(help.contains(&bulk("client|help")) && help.contains(&bulk("cluster|help")));

    // movablekeys: the last flag of the commands whose keys Redis finds by parsing.
    for cmd in [
        "zunionstore",
        "eval",
        "sort",
        "sort_ro",
        "georadius",
        "xread",
        "lmpop",
    ] {
        let info = text(&mut c, &["COMMAND", "INFO", cmd]);
        assert!(info.contains("+movablekeys\r\n"), "{cmd}: {info}");
    }
    for cmd in ["set", "get", "mset", "lmove", "georadius_ro", "rename"] {
        let info = text(&mut c, &["COMMAND", "INFO", cmd]);
        assert!(!info.contains("movablekeys"), "{cmd}: {info}");
    }
    // Last of the flags, right before the key positions, as in redis-server 7.0.15's reply.
    let zunionstore = text(&mut c, &["COMMAND", "INFO", "zunionstore"]);
    assert!(
        zunionstore.contains("+movablekeys\r\n:1\r\n:1\r\n:1\r\n"),
        "{zunionstore}"
    );
}
