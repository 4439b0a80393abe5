//! One-node behaviour of the `kvd` binary: every command's replies compared with Redis 7
//! (byte-exact where the text matters), restarts after kill -9, and graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use redis::Value;

const WRONG_GET: &str = "-ERR wrong number of arguments for 'get' command\r\n";

// ---------------------------------------------------------------- connection commands

#[test]
fn ping_echo_quit() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["PING"], "+PONG\r\n");
    c.check(&["ping", "hello world"], "$11\r\nhello world\r\n");
    c.check(&["PING", ""], "$0\r\n\r\n");
    c.check(
        &["PING", "a", "b"],
        "-ERR wrong number of arguments for 'ping' command\r\n",
    );
    c.check(&["ECHO", "x\r\ny"], "$4\r\nx\r\ny\r\n");
    c.check(
        &["ECHO"],
        "-ERR wrong number of arguments for 'echo' command\r\n",
    );
    c.check(
        &["ECHO", "a", "b"],
        "-ERR wrong number of arguments for 'echo' command\r\n",
    );
    c.check(&["QUIT"], "+OK\r\n");
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "QUIT must close the connection"
    );
    assert_eq!(show(c.pending()), "");
}

#[test]
fn quit_in_a_pipeline_drops_what_follows() {
    let node = Node::single(&[]);
    let (out, closed) = raw_exchange(&node.client_addr(), b"PING\r\nQUIT\r\nPING\r\n", IO_TIMEOUT);
    assert_eq!(show(&out), show(b"+PONG\r\n+OK\r\n"));
    assert!(closed);
}

#[test]
fn sixteen_databases_are_separate() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["SELECT", "0"], "+OK\r\n");
    c.check(&["SET", "k", "zero"], "+OK\r\n");
    c.check(&["SET", "only0", "x"], "+OK\r\n");
    c.check(&["SELECT", "15"], "+OK\r\n");
    c.check(&["GET", "k"], "$-1\r\n");
    c.check(&["SET", "k", "fifteen"], "+OK\r\n");
    c.check(&["DBSIZE"], ":1\r\n");
    c.check(&["KEYS", "*"], "*1\r\n$1\r\nk\r\n");
    // FLUSHDB empties only the selected database.
    c.check(&["FLUSHDB"], "+OK\r\n");
    c.check(&["DBSIZE"], ":0\r\n");
    c.check(&["SELECT", "0"], "+OK\r\n");
    c.check(&["GET", "k"], "$4\r\nzero\r\n");
    c.check(&["DBSIZE"], ":2\r\n");
    // A new connection starts in database 0; another connection's SELECT does not leak.
    let mut d = node.raw();
    d.check(&["SELECT", "3"], "+OK\r\n");
    d.check(&["SET", "k", "three"], "+OK\r\n");
    c.check(&["GET", "k"], "$4\r\nzero\r\n");
    let info = String::from_utf8(c.call(&["INFO", "keyspace"])).unwrap();
    assert!(
        info.contains("db0:keys=2,") && info.contains("db3:keys=1,"),
        "{info}"
    );
    // FLUSHALL empties every database.
    d.check(&["FLUSHALL"], "+OK\r\n");
    c.check(&["DBSIZE"], ":0\r\n");
    d.check(&["DBSIZE"], ":0\r\n");
    // Out of range, as Redis with its default of 16 databases.
    c.check(&["SELECT", "16"], "-ERR DB index is out of range\r\n");
    c.check(&["SELECT", "-1"], "-ERR DB index is out of range\r\n");
    c.check(
        &["SELECT", "x"],
        "-ERR value is not an integer or out of range\r\n",
    );
    c.check(
        &["SELECT"],
        "-ERR wrong number of arguments for 'select' command\r\n",
    );
}

#[test]
fn hello_in_resp2() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let id = String::from_utf8(c.call(&["CLIENT", "ID"])).unwrap();
    let expected_tail = format!(
        "$5\r\nproto\r\n:2\r\n$2\r\nid\r\n{id}$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n\
         $6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
    );
    for argv in [&["HELLO"][..], &["HELLO", "2"]] {
        let reply = String::from_utf8(c.call(argv)).unwrap();
        assert!(
            reply.starts_with("*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$"),
            "{reply:?}"
        );
        assert!(reply.ends_with(&expected_tail), "{reply:?}");
    }
    c.check(&["HELLO", "1"], "-NOPROTO unsupported protocol version\r\n");
    c.check(&["HELLO", "4"], "-NOPROTO unsupported protocol version\r\n");
    c.check(
        &["HELLO", "x"],
        "-ERR Protocol version is not an integer or out of range\r\n",
    );
    c.check(
        &["HELLO", "2", "BOGUS"],
        "-ERR Syntax error in HELLO option 'BOGUS'\r\n",
    );
    let reply = String::from_utf8(c.call(&["HELLO", "2", "SETNAME", "me"])).unwrap();
    assert!(reply.starts_with("*14\r\n"), "{reply:?}");
    c.check(&["CLIENT", "GETNAME"], "$2\r\nme\r\n");
    // The connection still speaks RESP2 after a refused HELLO (RESP3: tests/resp3.rs).
    c.check(&["GET", "nokey"], "$-1\r\n");
}

/// A connection that kills itself (CLIENT KILL SKIPME NO) gets the reply and is closed before
/// anything it sends next runs, as redis-server closes it after the reply (unit/introspection's
/// "CLIENT KILL SKIPME YES/NO": before the fix, 32 of 300 such connections answered a PING
/// sent right after the reply on a loaded 2-core machine).
#[test]
fn a_connection_that_kills_itself_runs_nothing_more() {
    let node = Node::single(&[]);
    let mut answered = 0;
    for _ in 0..200 {
        let mut c = node.raw();
        // Itself, and any connection of an earlier round (or of the node's start-up probe)
        // that is still closing.
        let killed = c.call(&["CLIENT", "KILL", "SKIPME", "NO"]);
        assert!(
            killed.starts_with(b":") && killed != b":0\r\n",
            "{}",
            show(&killed)
        );
        c.send_cmd(&["PING"]);
        assert!(c.closed_within(Duration::from_secs(10)), "still open");
        if !c.pending().is_empty() {
            answered += 1;
        }
    }
    assert_eq!(
        answered, 0,
        "connections that answered after killing themselves"
    );
}

#[test]
fn client_subcommands() {
    let node = Node::single(&[]);
    let mut a = node.raw();
    let mut b = node.raw();
    let id_a = a.call(&["CLIENT", "ID"]);
    let id_b = b.call(&["CLIENT", "ID"]);
    assert!(id_a.starts_with(b":") && id_b.starts_with(b":"));
    assert_ne!(id_a, id_b, "client ids must differ");
    a.check(&["CLIENT", "ID"], std::str::from_utf8(&id_a).unwrap());

    a.check(&["CLIENT", "GETNAME"], "$-1\r\n");
    a.check(&["CLIENT", "SETNAME", "worker-1"], "+OK\r\n");
    a.check(&["CLIENT", "GETNAME"], "$8\r\nworker-1\r\n");
    b.check(&["CLIENT", "GETNAME"], "$-1\r\n");
    a.check(
        &["CLIENT", "SETNAME", "a b"],
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
    );
    a.check(&["client", "setname", ""], "+OK\r\n");
    a.check(&["CLIENT", "GETNAME"], "$-1\r\n");
    // Redis 7.2+ (what redis-rs and redis-cli send on connect).
    a.check(&["CLIENT", "SETINFO", "lib-name", "redis-rs"], "+OK\r\n");
    a.check(&["CLIENT", "SETINFO", "LIB-VER", "1.0.0"], "+OK\r\n");
    let bad = a.call(&["CLIENT", "SETINFO", "bogus", "x"]);
    assert!(bad.starts_with(b"-ERR "), "{}", show(&bad));
    a.check(
        &["CLIENT", "foo"],
        "-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n",
    );
    a.check(
        &["CLIENT"],
        "-ERR wrong number of arguments for 'client' command\r\n",
    );
    a.check(
        &["CLIENT", "GETNAME", "x"],
        "-ERR wrong number of arguments for 'client|getname' command\r\n",
    );
    a.check(
        &["CLIENT", "SETNAME"],
        "-ERR wrong number of arguments for 'client|setname' command\r\n",
    );
    // The redis crate connects (sending its own CLIENT SETINFO) and works.
    let mut con = node.conn();
    let name: Option<String> = q(&mut con, &["CLIENT", "GETNAME"]);
    assert_eq!(name, None);
}

// ---------------------------------------------------------------- server commands

#[test]
fn config_get() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["CONFIG", "GET", "save"], "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    c.check(
        &["CONFIG", "GET", "appendonly"],
        "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
    );
    c.check(&["CONFIG", "GET", "nosuchparam"], "*0\r\n");
    // A plain name matches case-insensitively and is echoed as given (Redis 7).
    c.check(&["CONFIG", "GET", "SAVE"], "*2\r\n$4\r\nSAVE\r\n$0\r\n\r\n");
    c.check(
        &["CONFIG", "GET", "save", "appendonly"],
        "*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
    );
    c.check(
        &["CONFIG", "GET"],
        "-ERR wrong number of arguments for 'config|get' command\r\n",
    );
    c.check(
        &["CONFIG"],
        "-ERR wrong number of arguments for 'config' command\r\n",
    );

    let mut con = node.conn();
    let pairs: Vec<String> = q(&mut con, &["CONFIG", "GET", "*max*"]);
    assert_eq!(pairs.len() % 2, 0);
    let names: Vec<&str> = pairs.iter().step_by(2).map(String::as_str).collect();
    for n in &names {
        assert!(n.contains("max"), "{n} does not match *max*");
    }
    for want in ["maxclients", "maxmemory", "proto-max-bulk-len"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let port: Vec<String> = q(&mut con, &["CONFIG", "GET", "p?rt"]);
    assert_eq!(port, vec!["port".to_string(), node.client_port.to_string()]);
    let cls: Vec<String> = q(&mut con, &["CONFIG", "GET", "[s]ave"]);
    assert_eq!(cls, vec!["save".to_string(), String::new()]);
}

#[test]
fn command_introspection() {
    let node = Node::single(&[]);
    let mut con = node.conn();
    let count: i64 = q(&mut con, &["COMMAND", "COUNT"]);
    let all: Vec<Value> = q(&mut con, &["COMMAND"]);
    assert_eq!(all.len() as i64, count);
    let names: Vec<String> = all
        .iter()
        .map(|e| match e {
            Value::Array(fields) => match &fields[0] {
                Value::BulkString(n) => String::from_utf8(n.clone()).unwrap(),
                other => panic!("command name is not a bulk string: {other:?}"),
            },
            other => panic!("COMMAND entry is not an array: {other:?}"),
        })
        .collect();
    for want in [
        "get", "set", "del", "ping", "info", "config", "command", "incr", "mget",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing");
    }
    let docs: Value = q(&mut con, &["COMMAND", "DOCS"]);
    assert!(matches!(docs, Value::Array(_)), "{docs:?}");

    let mut c = node.raw();
    let info = c.call(&["COMMAND", "INFO", "get"]);
    // Redis 7: name, arity, flags, first key, last key, step, then ACL categories, tips, key
    // specs, subcommands.
    let prefix = "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n";
    assert!(info.starts_with(prefix.as_bytes()), "{}", show(&info));
    let info2 = c.call(&["COMMAND", "INFO", "GET", "set"]);
    assert!(
        info2.starts_with(b"*2\r\n*10\r\n$3\r\nget\r\n"),
        "{}",
        show(&info2)
    );
    c.check(&["COMMAND", "INFO", "nosuch"], "*1\r\n$-1\r\n");
    c.check(
        &["COMMAND", "COUNT", "x"],
        "-ERR wrong number of arguments for 'command|count' command\r\n",
    );
    c.check(
        &["COMMAND", "foo"],
        "-ERR unknown subcommand 'foo'. Try COMMAND HELP.\r\n",
    );
    // COMMAND LIST and its filters (replies of redis-server 7.0.15, in kvd's table order):
    // every command COMMAND COUNT counts, then, as Redis lists them, the subcommands.
    let listed: Vec<String> = q(&mut con, &["COMMAND", "LIST"]);
    let top = listed.iter().filter(|n| !n.contains('|')).count();
    assert_eq!(top as i64, count);
    assert!(listed.iter().any(|n| n == "client|list"));
    let mut xa: Vec<String> = q(&mut con, &["COMMAND", "LIST", "FILTERBY", "PATTERN", "XA*"]);
    xa.sort();
    assert_eq!(xa, vec!["xack", "xadd", "xautoclaim"]);
    let module: Vec<String> = q(&mut con, &["COMMAND", "LIST", "FILTERBY", "MODULE", "x"]);
    assert!(module.is_empty());
    let nosuch: Vec<String> = q(
        &mut con,
        &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch"],
    );
    assert!(nosuch.is_empty());
    let writes: Vec<String> = q(
        &mut con,
        &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "write"],
    );
    assert!(writes.iter().any(|n| n == "set") && !writes.iter().any(|n| n == "get"));
    for bad in [
        &["COMMAND", "LIST", "FILTERBY"][..],
        &["COMMAND", "LIST", "foo"],
        &["COMMAND", "LIST", "FILTERBY", "bogus", "x"],
    ] {
        c.check(bad, "-ERR syntax error\r\n");
    }
}

/// INFO errorstats and `total_error_replies` as redis-server 7.0.15 counts the same replies:
/// by code (no space in the first 31 bytes: `ERR`), an EXEC's and a script's nested errors
/// one by one, zeroed by CONFIG RESETSTAT.
#[test]
fn info_errorstats_count_error_replies_by_code() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["SET", "a", "1"], "+OK\r\n");
    c.check(&["CONFIG", "RESETSTAT"], "+OK\r\n");
    for argv in [
        &[
            "EVAL",
            "return redis.error_reply('MY_ERR_CODE custom msg')",
            "0",
        ][..],
        &["EVAL", "return redis.error_reply('')", "0"],
        &["EVAL", "return {1,{err='NESTED x'},3}", "0"],
        &["EVAL", "return redis.error_reply('nospace')", "0"],
        &["GET"],
        &["NOSUCH"],
        &["LPUSH", "a", "1"],
        &["MULTI"],
        &["INCR", "a"],
        &["LPUSH", "a", "x"],
        &["EXEC"],
        &["EVAL", "return redis.call('select', 99)", "0"],
    ] {
        c.call(argv);
    }
    let info = String::from_utf8_lossy(&c.call(&["INFO", "errorstats"])).into_owned();
    assert!(
        info.ends_with(
            "# Errorstats\r\nerrorstat_ERR:count=5\r\nerrorstat_MY_ERR_CODE:count=1\r\n\
             errorstat_NESTED:count=1\r\nerrorstat_WRONGTYPE:count=2\r\n\r\n"
        ),
        "{info}"
    );
    assert_eq!(node.info_u64("stats", "total_error_replies"), Some(9));
    c.check(&["CONFIG", "RESETSTAT"], "+OK\r\n");
    let info = String::from_utf8_lossy(&c.call(&["INFO", "errorstats"])).into_owned();
    assert!(info.ends_with("# Errorstats\r\n\r\n"), "{info}");
    assert_eq!(node.info_u64("stats", "total_error_replies"), Some(0));
}

/// SAVE and SHUTDOWN as redis-server 7.0.15 answers them (checked on it): refused inside MULTI
/// (EXEC then aborts) and from scripts, SHUTDOWN's options checked; SHUTDOWN stops the node,
/// closing the client's connection without a reply, and a restart has every write.
#[test]
fn save_and_shutdown_as_redis() {
    let mut node = Node::single(&[]);
    let mut c = node.raw();
    let syntax = "-ERR syntax error\r\n";
    c.check(&["SET", "k", "v"], "+OK\r\n");
    c.check(&["SAVE"], "+OK\r\n");
    c.check(
        &["SAVE", "x"],
        "-ERR wrong number of arguments for 'save' command\r\n",
    );
    c.check(&["SHUTDOWN", "ABORT"], "-ERR No shutdown in progress.\r\n");
    c.check(&["SHUTDOWN", "NOSAVE", "SAVE"], syntax);
    c.check(&["SHUTDOWN", "ABORT", "NOW"], syntax);
    c.check(&["SHUTDOWN", "soon"], syntax);
    c.check(&["MULTI"], "+OK\r\n");
    c.check(&["SET", "k", "v2"], "+QUEUED\r\n");
    for refused in ["SAVE", "SHUTDOWN"] {
        c.check(
            &[refused],
            "-ERR Command not allowed inside a transaction\r\n",
        );
    }
    c.check(
        &["EXEC"],
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    for called in ["save", "shutdown"] {
        c.check(
            &["EVAL", &format!("return redis.pcall('{called}')"), "0"],
            "-ERR This Redis command is not allowed from script\r\n",
        );
    }
    c.send_cmd(&["SHUTDOWN", "NOW"]);
    assert!(
        c.closed_within(Duration::from_secs(30)),
        "connection closed"
    );
    assert!(c.pending().is_empty(), "no reply: {}", show(c.pending()));
    poll_until(Duration::from_secs(30), "the node to exit", || {
        (!node.is_running()).then_some(())
    });
    assert!(node.log().contains("SHUTDOWN from a client"));
    node.restart();
    node.raw().check(&["GET", "k"], "$1\r\nv\r\n");
}

#[test]
fn info_sections() {
    let node = Node::single(&[]);
    let mut con = node.conn();
    let all: String = q(&mut con, &["INFO"]);
    for header in ["# Server", "# Clients", "# Stats", "# Keyspace", "# Raft"] {
        assert!(
            all.lines().any(|l| l.trim_end() == header),
            "{header} missing from INFO:\n{all}"
        );
    }
    for line in all.split("\r\n") {
        assert!(
            !line.contains('\n'),
            "INFO lines must end with CRLF: {line:?}"
        );
    }
    assert_eq!(
        parse_info_field(&all, "tcp_port"),
        Some(node.client_port.to_string())
    );
    assert!(parse_info_field(&all, "redis_version").is_some());
    assert!(parse_info_field(&all, "connected_clients").is_some());
    assert!(parse_info_field(&all, "total_commands_processed").is_some());

    let raft: String = q(&mut con, &["INFO", "raft"]);
    assert!(raft.starts_with("# Raft\r\n"), "{raft}");
    assert_eq!(
        raft.matches("# ").count(),
        1,
        "only the raft section: {raft}"
    );
    assert_eq!(
        parse_info_field(&raft, "raft_role").as_deref(),
        Some("leader")
    );
    assert_eq!(
        parse_info_field(&raft, "raft_leader").as_deref(),
        Some("node0")
    );
    let term: u64 = parse_info_field(&raft, "raft_term")
        .unwrap()
        .parse()
        .unwrap();
    assert!(term >= 1);
    let commit: u64 = parse_info_field(&raft, "raft_commit_index")
        .unwrap()
        .parse()
        .unwrap();
    let applied: u64 = parse_info_field(&raft, "raft_applied_index")
        .unwrap()
        .parse()
        .unwrap();
    assert!(applied <= commit && commit >= 1, "{raft}");
    let members = parse_members(&raft);
    assert_eq!(members.len(), 1, "{raft}");
    let m = &members[0];
    assert_eq!(m["name"], "node0");
    assert_eq!(m["role"], "voter");
    assert_eq!(m["raft_addr"], node.raft_addr());
    assert_eq!(m["client_addr"], node.client_addr());
    // Section names are case-insensitive, as in Redis.
    let upper: String = q(&mut con, &["INFO", "RAFT"]);
    assert!(upper.starts_with("# Raft\r\n"));

    let ks: String = q(&mut con, &["INFO", "keyspace"]);
    assert_eq!(ks.trim_end(), "# Keyspace");
    let _: () = q(&mut con, &["MSET", "a", "1", "b", "2"]);
    let ks: String = q(&mut con, &["INFO", "keyspace"]);
    assert_eq!(
        parse_info_field(&ks, "db0").as_deref(),
        Some("keys=2,expires=0,avg_ttl=0")
    );
    // Keys with a TTL are counted, before and after the memtable is flushed (500 ms).
    let _: () = q(&mut con, &["SET", "c", "3", "EX", "100"]);
    let _: () = q(&mut con, &["SET", "d", "4", "PX", "100000"]);
    let _: i64 = q(&mut con, &["PERSIST", "d"]);
    let ks: String = q(&mut con, &["INFO", "keyspace"]);
    assert_eq!(
        parse_info_field(&ks, "db0").as_deref(),
        Some("keys=4,expires=1,avg_ttl=0")
    );
    poll_until(
        Duration::from_secs(10),
        "the memtable to be flushed",
        || {
            let raft: String = q(&mut con, &["INFO", "raft"]);
            parse_info_field(&raft, "raft_flushed_index")
                .zip(parse_info_field(&raft, "raft_applied_index"))
                .filter(|(f, a)| f == a)
                .map(|_| ())
        },
    );
    let ks: String = q(&mut con, &["INFO", "keyspace"]);
    assert_eq!(
        parse_info_field(&ks, "db0").as_deref(),
        Some("keys=4,expires=1,avg_ttl=0")
    );
    let _: i64 = q(&mut con, &["DEL", "a", "b", "c", "d"]);
    let none: String = q(&mut con, &["INFO", "nosuchsection"]);
    assert_eq!(none, "");
    // Applying our write moves the applied index (INFO may trail the reply by a moment).
    poll_until(Duration::from_secs(10), "applied index to move", || {
        (node.info_u64("raft", "raft_applied_index")? > applied).then_some(())
    });
}

#[test]
fn dbsize_flushdb_flushall() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["DBSIZE"], ":0\r\n");
    c.check(&["MSET", "a", "1", "b", "2", "c", "3"], "+OK\r\n");
    c.check(&["DBSIZE"], ":3\r\n");
    c.check(&["DEL", "a"], ":1\r\n");
    c.check(&["DBSIZE"], ":2\r\n");
    c.check(&["FLUSHDB"], "+OK\r\n");
    c.check(&["DBSIZE"], ":0\r\n");
    c.check(&["SET", "a", "1"], "+OK\r\n");
    c.check(&["FLUSHALL"], "+OK\r\n");
    c.check(&["DBSIZE"], ":0\r\n");
    c.check(&["GET", "a"], "$-1\r\n");
    c.check(&["SET", "a", "1"], "+OK\r\n");
    c.check(&["FLUSHALL", "ASYNC"], "+OK\r\n");
    c.check(&["FLUSHDB", "sync"], "+OK\r\n");
    c.check(&["FLUSHDB", "x"], "-ERR syntax error\r\n");
    c.check(&["KEYS", "*"], "*0\r\n");
    c.check(
        &["DBSIZE", "x"],
        "-ERR wrong number of arguments for 'dbsize' command\r\n",
    );
}

// ---------------------------------------------------------------- strings and keys

#[test]
fn set_and_get() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["GET", "k"], "$-1\r\n");
    c.check(&["SET", "k", "v"], "+OK\r\n");
    c.check(&["GET", "k"], "$1\r\nv\r\n");
    c.check(&["SET", "k", "v2"], "+OK\r\n");
    c.check(&["get", "k"], "$2\r\nv2\r\n");
    c.check(&["SET", "empty", ""], "+OK\r\n");
    c.check(&["GET", "empty"], "$0\r\n\r\n");
    c.check(&["EXISTS", "empty"], ":1\r\n");
    // Binary-safe keys and values.
    let key: &[u8] = b"k\x00\r\n\xff";
    let val: &[u8] = b"\x00\x01\r\n\xfe\xff end";
    c.send_cmd(&[&b"SET"[..], key, val]);
    c.expect(b"+OK\r\n");
    c.send_cmd(&[&b"GET"[..], key]);
    let mut expected = format!("${}\r\n", val.len()).into_bytes();
    expected.extend_from_slice(val);
    expected.extend_from_slice(b"\r\n");
    c.expect(&expected);
    c.check(&["GET"], WRONG_GET);
    c.check(&["GET", "a", "b"], WRONG_GET);
    c.check(
        &["SET", "k"],
        "-ERR wrong number of arguments for 'set' command\r\n",
    );
    c.check(&["SET", "k", "v", "bogus"], "-ERR syntax error\r\n");
}

#[test]
fn set_options_nx_xx_get() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    // Same sequence as checked against redis-server 7.0.
    c.check(&["SET", "a", "1", "NX"], "+OK\r\n");
    c.check(&["SET", "a", "2", "NX"], "$-1\r\n");
    c.check(&["GET", "a"], "$1\r\n1\r\n");
    c.check(&["SET", "a", "3", "XX", "GET"], "$1\r\n1\r\n");
    c.check(&["GET", "a"], "$1\r\n3\r\n");
    c.check(&["SET", "b", "3", "XX"], "$-1\r\n");
    c.check(&["EXISTS", "b"], ":0\r\n");
    c.check(&["SET", "a", "1", "NX", "XX"], "-ERR syntax error\r\n");
    c.check(&["SET", "a", "1", "xx", "nx"], "-ERR syntax error\r\n");
    c.check(&["SET", "a", "9", "GET", "NX"], "$1\r\n3\r\n");
    c.check(&["GET", "a"], "$1\r\n3\r\n");
    c.check(&["SET", "new", "x", "GET"], "$-1\r\n");
    c.check(&["GET", "new"], "$1\r\nx\r\n");
    c.check(&["SET", "new", "y", "get"], "$1\r\nx\r\n");
    c.check(&["SET", "n2", "v", "NX", "NX"], "+OK\r\n");
    c.check(&["SET", "n2", "w", "XX", "XX"], "+OK\r\n");
    c.check(&["SET", "n2", "u", "GET", "GET"], "$1\r\nw\r\n");
    c.check(&["SET", "nx2", "v", "XX", "GET"], "$-1\r\n");
    c.check(&["EXISTS", "nx2"], ":0\r\n");
    // With expiry (tests/expiry.rs has the rest).
    c.check(&["SET", "t", "v", "EX", "10", "NX"], "+OK\r\n");
    c.check(&["TTL", "t"], ":10\r\n");
}

#[test]
fn del_and_exists_count() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["EXISTS", "a", "a", "b"], ":0\r\n");
    c.check(&["SET", "a", "1"], "+OK\r\n");
    c.check(&["EXISTS", "a", "a", "b"], ":2\r\n");
    c.check(&["EXISTS", "a"], ":1\r\n");
    c.check(&["SET", "b", "1"], "+OK\r\n");
    c.check(&["DEL", "a", "a", "b", "nope"], ":2\r\n");
    c.check(&["DEL", "a"], ":0\r\n");
    c.check(&["EXISTS", "a", "b"], ":0\r\n");
    c.check(&["SET", "u", "1"], "+OK\r\n");
    c.check(&["UNLINK", "u", "v"], ":1\r\n");
    c.check(
        &["DEL"],
        "-ERR wrong number of arguments for 'del' command\r\n",
    );
    c.check(
        &["EXISTS"],
        "-ERR wrong number of arguments for 'exists' command\r\n",
    );
}

#[test]
fn mget_mset() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["MSET", "k1", "v1", "k2", "v2"], "+OK\r\n");
    c.check(
        &["MGET", "k1", "nope", "k2"],
        "*3\r\n$2\r\nv1\r\n$-1\r\n$2\r\nv2\r\n",
    );
    c.check(&["MSET", "a", "1", "a", "2"], "+OK\r\n");
    c.check(&["GET", "a"], "$1\r\n2\r\n");
    c.check(
        &["MSET", "a"],
        "-ERR wrong number of arguments for 'mset' command\r\n",
    );
    c.check(
        &["MSET", "a", "1", "b"],
        "-ERR wrong number of arguments for 'mset' command\r\n",
    );
    c.check(&["EXISTS", "b"], ":0\r\n");
    c.check(
        &["MGET"],
        "-ERR wrong number of arguments for 'mget' command\r\n",
    );
    c.check(&["MSETNX", "a", "x", "z", "y"], ":0\r\n");
    c.check(&["EXISTS", "z"], ":0\r\n");
    c.check(&["MSETNX", "y", "x", "z", "y"], ":1\r\n");
    c.check(&["MGET", "y", "z"], "*2\r\n$1\r\nx\r\n$1\r\ny\r\n");
}

#[test]
fn incr_decr_family() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let not_int = "-ERR value is not an integer or out of range\r\n";
    c.check(&["INCR", "x"], ":1\r\n");
    c.check(&["INCR", "x"], ":2\r\n");
    c.check(&["DECRBY", "x", "5"], ":-3\r\n");
    c.check(&["INCRBY", "x", "10"], ":7\r\n");
    c.check(&["DECR", "x"], ":6\r\n");
    c.check(&["DECR", "fresh"], ":-1\r\n");
    c.check(&["GET", "x"], "$1\r\n6\r\n");
    c.check(&["INCRBY", "x", "abc"], not_int);
    c.check(&["INCRBY", "x", "1.5"], not_int);
    c.check(&["INCRBY", "x", "+1"], not_int);
    c.check(&["INCRBY", "x", "01"], not_int);
    c.check(&["INCRBY", "x", " 1"], not_int);
    c.check(&["GET", "x"], "$1\r\n6\r\n");
    c.check(&["SET", "s", "abc"], "+OK\r\n");
    c.check(&["INCR", "s"], not_int);
    c.check(&["SET", "s", "  12"], "+OK\r\n");
    c.check(&["INCR", "s"], not_int);
    c.check(&["SET", "s", "12"], "+OK\r\n");
    c.check(&["APPEND", "s", "zz"], ":4\r\n");
    c.check(&["INCR", "s"], not_int);
    c.check(&["GET", "s"], "$4\r\n12zz\r\n");
    c.check(&["SET", "n", "9223372036854775807"], "+OK\r\n");
    c.check(
        &["INCR", "n"],
        "-ERR increment or decrement would overflow\r\n",
    );
    c.check(
        &["DECRBY", "n", "-9223372036854775808"],
        "-ERR decrement would overflow\r\n",
    );
    c.check(&["DECRBY", "n", "9223372036854775808"], not_int);
    c.check(&["SET", "m", "-9223372036854775808"], "+OK\r\n");
    c.check(
        &["DECR", "m"],
        "-ERR increment or decrement would overflow\r\n",
    );
    c.check(
        &["INCRBY", "m", "-1"],
        "-ERR increment or decrement would overflow\r\n",
    );
    c.check(&["GET", "m"], "$20\r\n-9223372036854775808\r\n");
    for (cmd, arity) in [("incr", 2), ("decr", 2), ("incrby", 3), ("decrby", 3)] {
        let argv: Vec<&str> = std::iter::once(cmd)
            .chain(std::iter::repeat_n("k", arity))
            .collect();
        c.check(
            &argv,
            &format!("-ERR wrong number of arguments for '{cmd}' command\r\n"),
        );
    }
}

#[test]
fn append_strlen_getset_getdel_setnx_type() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["STRLEN", "k"], ":0\r\n");
    c.check(&["APPEND", "k", "abc"], ":3\r\n");
    c.check(&["APPEND", "k", "de"], ":5\r\n");
    c.check(&["STRLEN", "k"], ":5\r\n");
    c.check(&["GET", "k"], "$5\r\nabcde\r\n");
    c.check(&["GETSET", "k", "new"], "$5\r\nabcde\r\n");
    c.check(&["GETSET", "fresh", "v"], "$-1\r\n");
    c.check(&["GET", "fresh"], "$1\r\nv\r\n");
    c.check(&["GETDEL", "k"], "$3\r\nnew\r\n");
    c.check(&["GETDEL", "k"], "$-1\r\n");
    c.check(&["EXISTS", "k"], ":0\r\n");
    c.check(&["SETNX", "y", "1"], ":1\r\n");
    c.check(&["SETNX", "y", "2"], ":0\r\n");
    c.check(&["GET", "y"], "$1\r\n1\r\n");
    c.check(&["TYPE", "y"], "+string\r\n");
    c.check(&["TYPE", "nope"], "+none\r\n");
    for (cmd, argc) in [
        ("append", 1),
        ("strlen", 0),
        ("getset", 1),
        ("getdel", 0),
        ("setnx", 1),
        ("type", 0),
        ("keys", 0),
    ] {
        let argv: Vec<&str> = std::iter::once(cmd)
            .chain(std::iter::repeat_n("k", argc))
            .collect();
        c.check(
            &argv,
            &format!("-ERR wrong number of arguments for '{cmd}' command\r\n"),
        );
    }
}

#[test]
fn keys_glob() {
    let node = Node::single(&[]);
    let mut con = node.conn();
    let _: () = q(
        &mut con,
        &[
            "MSET", "k", "1", "k1", "1", "k2", "1", "new", "1", "MiXeD", "1", "s", "1",
        ],
    );
    let keys = |con: &mut redis::Connection, p: &str| {
        let mut v: Vec<String> = q(con, &["KEYS", p]);
        v.sort();
        v
    };
    assert_eq!(keys(&mut con, "*"), ["MiXeD", "k", "k1", "k2", "new", "s"]);
    assert_eq!(keys(&mut con, "k*"), ["k", "k1", "k2"]);
    assert_eq!(keys(&mut con, "k?"), ["k1", "k2"]);
    assert_eq!(keys(&mut con, "?"), ["k", "s"]);
    assert_eq!(keys(&mut con, "[kn]*"), ["k", "k1", "k2", "new"]);
    assert_eq!(keys(&mut con, "k[^1]"), ["k2"]);
    assert_eq!(keys(&mut con, "*e*"), ["MiXeD", "new"]);
    assert_eq!(keys(&mut con, "mixed"), Vec::<String>::new());
    assert_eq!(keys(&mut con, "nomatch*"), Vec::<String>::new());
}

#[test]
fn unknown_command_and_case_insensitivity() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(
        &["foo", "a", "b"],
        "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n",
    );
    c.check(
        &["foo"],
        "-ERR unknown command 'foo', with args beginning with: \r\n",
    );
    c.check(
        &[""],
        "-ERR unknown command '', with args beginning with: \r\n",
    );
    // Redis stops listing arguments once 128 characters are shown.
    let long = "a".repeat(200);
    c.check(
        &["foo", &long, "b"],
        &format!(
            "-ERR unknown command 'foo', with args beginning with: '{}' \r\n",
            "a".repeat(128)
        ),
    );
    c.check(&["sEt", "MiXeD", "1"], "+OK\r\n");
    c.check(&["GeT", "MiXeD"], "$1\r\n1\r\n");
    c.check(&["get", "mixed"], "$-1\r\n");
    // The connection is still fine after errors.
    c.check(&["PING"], "+PONG\r\n");
}

#[test]
fn concurrent_clients_increment_one_counter() {
    let node = Node::single(&[]);
    let threads = 8;
    let per_thread = 40;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut con = node.conn();
                for _ in 0..per_thread {
                    let _: i64 = q(&mut con, &["INCR", "counter"]);
                }
            });
        }
    });
    let mut con = node.conn();
    let v: i64 = q(&mut con, &["GET", "counter"]);
    assert_eq!(v, threads * per_thread);
}

// ---------------------------------------------------------------- durability

/// The applied index INFO shows. It may trail replies a client already has by a moment (the
/// status is published after the replies go out), so it is only a lower bound.
fn applied_index(node: &Node) -> u64 {
    node.info_u64("raft", "raft_applied_index")
        .expect("INFO raft_applied_index")
}

/// Waits until the node's INFO shows an applied index of at least `index`.
fn wait_applied(node: &Node, index: u64) {
    poll_until(Duration::from_secs(20), "applied index to catch up", || {
        (node.info_u64("raft", "raft_applied_index")? >= index).then_some(())
    });
}

#[test]
fn kill9_keeps_acknowledged_writes() {
    let mut node = Node::single(&[]);
    {
        let mut con = node.conn();
        for i in 0..50 {
            let _: () = q(&mut con, &["SET", &format!("key{i}"), &format!("value{i}")]);
        }
        let _: () = q(&mut con, &["DEL", "key7"]);
    }
    let id_before = node.info_field("raft", "raft_node_id").unwrap();
    let applied_before = applied_index(&node);
    node.kill9();
    node.restart();
    // Acknowledged means applied durably: the very first reads after the restart see it all.
    let mut con = node.conn();
    for i in 0..50 {
        let v: Option<String> = q(&mut con, &["GET", &format!("key{i}")]);
        let want = (i != 7).then(|| format!("value{i}"));
        assert_eq!(v, want, "key{i} after kill -9 and restart");
    }
    let n: i64 = q(&mut con, &["DBSIZE"]);
    assert_eq!(n, 49);
    wait_applied(&node, applied_before);
    assert_eq!(node.info_field("raft", "raft_node_id").unwrap(), id_before);
    // And it takes writes again.
    let _: () = q(&mut con, &["SET", "after", "restart"]);
    let v: String = q(&mut con, &["GET", "after"]);
    assert_eq!(v, "restart");
}

#[test]
fn restarted_node_serves_no_reads_older_than_acknowledged_writes() {
    let mut node = Node::single(&[]);
    {
        let mut con = node.conn();
        let _: () = q(&mut con, &["SET", "gone", "1"]);
        for i in 1..=60 {
            let _: () = q(&mut con, &["SET", "k", &i.to_string()]);
        }
        let _: i64 = q(&mut con, &["DEL", "gone"]);
    }
    node.kill9();
    // `restart` returns as soon as the node answers PING: from then on a read must see every
    // acknowledged write, or be refused (as Redis answers -LOADING while it loads its data).
    node.restart();
    let mut c = node.raw();
    let read = |c: &mut RawConn, key: &str| {
        poll_until(IO_TIMEOUT, "a read that is not refused", || {
            let r = c.call(&["GET", key]);
            (!r.starts_with(b"-")).then_some(r)
        })
    };
    assert_eq!(show(&read(&mut c, "k")), show(b"$2\r\n60\r\n"));
    assert_eq!(show(&read(&mut c, "gone")), show(b"$-1\r\n"));
}

#[test]
fn restart_replays_nothing_twice() {
    let mut node = Node::single(&[]);
    let mut total = 0i64;
    let mut last_term = 0u64;
    for round in 0..3i64 {
        {
            let mut con = node.conn();
            for _ in 0..40 {
                total += 1;
                let v: i64 = q(&mut con, &["INCR", "counter"]);
                assert_eq!(v, total, "INCR in round {round}");
            }
            // A pipeline of non-idempotent writes: one round trip, many entries.
            let mut c = node.raw();
            let mut batch = Vec::new();
            let mut expected = Vec::new();
            for i in 0..40 {
                batch.extend(encode_cmd(&["APPEND", "log", "x"]));
                expected.extend(format!(":{}\r\n", round * 40 + i + 1).into_bytes());
            }
            c.send(&batch);
            c.expect(&expected);
        }
        let applied = applied_index(&node);
        let term = node.info_u64("raft", "raft_term").unwrap();
        assert!(term >= last_term);
        node.kill9();
        node.restart();
        node.wait_role("leader", LEADER_TIMEOUT);
        // The last acknowledged write visible (not more: an entry applied twice would show).
        let log_len = (round + 1) * 40;
        assert_eq!(
            show(&node.raw().call(&["STRLEN", "log"])),
            show(format!(":{log_len}\r\n").as_bytes()),
            "log length after restart {round}"
        );
        let mut con = node.conn();
        let v: i64 = q(&mut con, &["GET", "counter"]);
        assert_eq!(v, total, "counter after restart {round}");
        wait_applied(&node, applied);
        let term_after = node.info_u64("raft", "raft_term").unwrap();
        assert!(
            term_after >= term,
            "term went backwards: {term} -> {term_after}"
        );
        last_term = term_after;
        // The next writes continue from there.
        total += 1;
        let v: i64 = q(&mut con, &["INCR", "counter"]);
        assert_eq!(v, total);
        let len: i64 = q(&mut con, &["STRLEN", "log"]);
        assert_eq!(len, log_len, "APPEND log after restart {round}");
    }
}

#[test]
fn empty_dir_bootstraps_and_full_dir_restarts() {
    let mut node = Node::single(&[]);
    assert!(node.data_dir.join("kvd.redb").exists());
    let id = node.info_field("raft", "raft_node_id").unwrap();
    let term = node.info_u64("raft", "raft_term").unwrap();
    {
        let mut con = node.conn();
        let _: () = q(&mut con, &["SET", "k", "v"]);
    }
    assert_eq!(node.sigterm().code(), Some(0));
    // --join is ignored once the node holds raft state: it restarts as the same one-node cluster
    // instead of asking an (unreachable) seed to add it.
    let nobody = free_port();
    node.restart_with(&args(&["--join", &format!("127.0.0.1:{nobody}")]));
    node.wait_role("leader", LEADER_TIMEOUT);
    let info = node.info("raft").unwrap();
    assert_eq!(parse_info_field(&info, "raft_node_id"), Some(id));
    assert!(
        parse_info_field(&info, "raft_term")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= term
    );
    let members = parse_members(&info);
    assert_eq!(members.len(), 1, "{info}");
    assert_eq!(members[0]["name"], "node0");
    let mut con = node.conn();
    let v: String = q(&mut con, &["GET", "k"]);
    assert_eq!(v, "v");
}

// ---------------------------------------------------------------- graceful shutdown

#[test]
fn sigterm_exits_zero_quickly_and_keeps_data() {
    let mut node = Node::single(&[]);
    let mut idle = node.raw();
    idle.check(&["PING"], "+PONG\r\n");
    {
        let mut con = node.conn();
        for i in 0..20 {
            let _: () = q(&mut con, &["SET", &format!("k{i}"), &i.to_string()]);
        }
    }
    let started = Instant::now();
    let status = node.sigterm_within(Duration::from_secs(10));
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert!(
        idle.closed_within(Duration::from_secs(5)),
        "idle client not disconnected"
    );
    // After a clean stop everything applied was flushed: reads are right from the first
    // moment the node answers, before it is even leader again.
    node.restart();
    let mut c = node.raw();
    for i in 0..20 {
        let v = i.to_string();
        c.check(
            &["GET", &format!("k{i}")],
            &format!("${}\r\n{v}\r\n", v.len()),
        );
    }
    node.wait_role("leader", LEADER_TIMEOUT);
}
