//! SLOWLOG with a real `kvd` process: entries as redis-server 7.0.15 makes them (id, unix
//! time, microseconds, trimmed and redacted arguments, client address and name), the newest
//! first, bounded by `slowlog-max-len`, and timed as Redis times them: a blocked command from
//! its wake-up, a read behind a write when it runs.

mod common;

use std::time::Duration;

use common::*;
use redis::Value;

struct Entry {
    id: i64,
    at: i64,
    micros: i64,
    args: Vec<String>,
    addr: String,
    name: String,
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn slowlog(con: &mut redis::Connection, count: &str) -> Vec<Entry> {
    let all: Vec<Vec<Value>> = q(con, &["SLOWLOG", "GET", count]);
    all.iter()
        .map(|e| {
            assert_eq!(e.len(), 6, "an entry has 6 fields");
            let args = match &e[3] {
                Value::Array(a) => a.iter().map(text).collect(),
                other => panic!("arguments not an array: {other:?}"),
            };
            Entry {
                id: int(&e[0]),
                at: int(&e[1]),
                micros: int(&e[2]),
                args,
                addr: text(&e[4]),
                name: text(&e[5]),
            }
        })
        .collect()
}

fn args_of(entries: &[Entry]) -> Vec<String> {
    entries.iter().map(|e| e.args.join(" ")).collect()
}

#[test]
fn slowlog_keeps_what_ran_as_redis_does() {
    let node = Node::single(&[]);
    let mut con = node.conn();
    let len: i64 = q(&mut con, &["SLOWLOG", "LEN"]);
    assert_eq!(len, 0, "it starts empty");
    let _: () = q(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let _: () = q(&mut con, &["SLOWLOG", "RESET"]);
    let _: () = q(&mut con, &["SET", "k", "v"]);
    let _: String = q(&mut con, &["GET", "k"]);
    let _: () = q(&mut con, &["CLIENT", "SETNAME", "named"]);
    assert!(try_q::<Value>(&mut con, &["AUTH", "nosuch", "secret"]).is_err());
    let got = slowlog(&mut con, "-1");
    assert_eq!(
        args_of(&got),
        [
            "AUTH (redacted) (redacted)",
            "CLIENT SETNAME named",
            "GET k",
            "SET k v",
            "SLOWLOG RESET",
        ],
        "newest first, secrets redacted"
    );
    let me: String = q(&mut con, &["CLIENT", "INFO"]);
    let addr = me
        .split_whitespace()
        .find_map(|f| f.strip_prefix("addr="))
        .expect("addr")
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.addr, addr);
        assert!((now - e.at).abs() <= 60, "unix time {}", e.at);
        assert!(e.micros >= 0);
        assert_eq!(
            e.name,
            if i < 2 { "named" } else { "" },
            "the name when it ran"
        );
        if i > 0 {
            assert_eq!(e.id, got[i - 1].id - 1, "ids one apart");
        }
    }
    // Long commands and arguments are trimmed.
    let mut sadd = vec!["SADD".to_string(), "s".to_string()];
    sadd.extend((0..40).map(|i| i.to_string()));
    let sadd: Vec<&str> = sadd.iter().map(String::as_str).collect();
    let _: i64 = q(&mut con, &sadd);
    let long = "A".repeat(130);
    let _: i64 = q(&mut con, &["SADD", "s", &long]);
    let got = slowlog(&mut con, "2");
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].args[2],
        format!("{}... (2 more bytes)", "A".repeat(128))
    );
    assert_eq!(got[1].args.len(), 32);
    assert_eq!(got[1].args[31], "... (11 more arguments)");
    // GET's default count, the length bound, and the errors.
    for _ in 0..20 {
        let _: String = q(&mut con, &["PING"]);
    }
    assert_eq!(slowlog(&mut con, "10").len(), 10);
    let all: Vec<Value> = q(&mut con, &["SLOWLOG", "GET"]);
    assert_eq!(all.len(), 10, "10 without a count");
    let _: () = q(&mut con, &["CONFIG", "SET", "slowlog-max-len", "3"]);
    let len: i64 = q(&mut con, &["SLOWLOG", "LEN"]);
    assert_eq!(len, 3);
    let mut c = node.raw();
    c.check(
        &["SLOWLOG", "GET", "-2"],
        "-ERR count should be greater than or equal to -1\r\n",
    );
    c.check(
        &["SLOWLOG", "GET", "x"],
        "-ERR count should be greater than or equal to -1\r\n",
    );
    c.check(
        &["SLOWLOG", "LEN", "1"],
        "-ERR wrong number of arguments for 'slowlog|len' command\r\n",
    );
    c.check(
        &["SLOWLOG", "nosuch"],
        "-ERR unknown subcommand 'nosuch'. Try SLOWLOG HELP.\r\n",
    );
    // Disabled, nothing more is kept.
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "slowlog-log-slower-than", "-1"],
    );
    let _: () = q(&mut con, &["SLOWLOG", "RESET"]);
    let _: String = q(&mut con, &["PING"]);
    let len: i64 = q(&mut con, &["SLOWLOG", "LEN"]);
    assert_eq!(len, 0);
}

#[test]
fn slowlog_times_a_command_by_its_own_work() {
    let node = Node::single(&[]);
    let mut con = node.conn();
    let _: () = q(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    // A read behind a write in one pipeline runs after the write is applied: it is logged
    // then, as itself.
    let mut c = node.raw();
    let mut pipeline = encode_cmd(&["SLOWLOG", "RESET"]);
    pipeline.extend(encode_cmd(&["SET", "a", "1"]));
    pipeline.extend(encode_cmd(&["GET", "a"]));
    c.send(&pipeline);
    c.expect(b"+OK\r\n+OK\r\n$1\r\n1\r\n");
    assert_eq!(
        args_of(&slowlog(&mut con, "-1")),
        ["GET a", "SET a 1", "SLOWLOG RESET"]
    );
    // A command queued in MULTI is not logged, nor EXEC (Redis's skip_slowlog).
    let _: () = q(&mut con, &["SLOWLOG", "RESET"]);
    c.check(&["MULTI"], "+OK\r\n");
    c.check(&["INCR", "n"], "+QUEUED\r\n");
    c.check(&["EXEC"], "*1\r\n:1\r\n");
    assert_eq!(
        args_of(&slowlog(&mut con, "-1")),
        ["MULTI", "SLOWLOG RESET"]
    );
    // A pop blocked for 300 ms is timed from its wake-up: under a 200 ms threshold.
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "slowlog-log-slower-than", "200000"],
    );
    let _: () = q(&mut con, &["SLOWLOG", "RESET"]);
    let mut blocked = node.raw();
    blocked.send_cmd(&["BLPOP", "list", "0"]);
    wait_blocked(&node, 1);
    std::thread::sleep(Duration::from_millis(300));
    let _: i64 = q(&mut con, &["LPUSH", "list", "x"]);
    blocked.expect(b"*2\r\n$4\r\nlist\r\n$1\r\nx\r\n");
    blocked.check(&["PING"], "+PONG\r\n");
    let len: i64 = q(&mut con, &["SLOWLOG", "LEN"]);
    assert_eq!(len, 0, "its time blocked is not its run");
    // With no threshold it is logged once woken.
    let _: () = q(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    blocked.send_cmd(&["BLPOP", "list", "0"]);
    wait_blocked(&node, 1);
    let _: i64 = q(&mut con, &["LPUSH", "list", "y"]);
    blocked.expect(b"*2\r\n$4\r\nlist\r\n$1\r\ny\r\n");
    blocked.check(&["PING"], "+PONG\r\n");
    let got = args_of(&slowlog(&mut con, "-1"));
    assert!(got.contains(&"BLPOP list 0".to_string()), "{got:?}");
}
