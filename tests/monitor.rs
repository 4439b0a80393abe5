//! MONITOR with a real `kvd` process: the lines redis-server 7.0.15 shows (timestamp, database,
//! client address, escaped arguments), transactions shown when EXEC runs them, secrets of AUTH
//! redacted, admin commands hidden, and RESET ending it.

mod common;

use common::*;

/// A monitor line without its timestamp: `[db addr] "arg" ...`.
fn body(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line).into_owned();
    assert!(text.starts_with('+') && text.ends_with("\r\n"), "{text:?}");
    let (stamp, rest) = text[1..text.len() - 2]
        .split_once(' ')
        .unwrap_or_else(|| panic!("no timestamp in {text:?}"));
    let (secs, micros) = stamp.split_once('.').expect("secs.micros");
    assert!(secs.parse::<u64>().is_ok() && micros.len() == 6, "{stamp}");
    rest.to_string()
}

#[test]
fn monitor_shows_what_clients_run_as_redis_does() {
    let node = Node::single(&[]);
    let mut mon = node.raw();
    mon.check(&["MONITOR"], "+OK\r\n");
    let mut c = node.raw();
    let me = c.call(&["CLIENT", "INFO"]);
    let addr = String::from_utf8_lossy(&me)
        .split_whitespace()
        .find_map(|f| f.strip_prefix("addr=").map(str::to_string))
        .expect("addr");
    c.check(&["SET", "foo", "ba\"r\n"], "+OK\r\n");
    c.check(&["GET", "foo"], "$5\r\nba\"r\n\r\n");
    c.check(&["MULTI"], "+OK\r\n");
    c.check(&["INCR", "n"], "+QUEUED\r\n");
    c.check(&["EXEC"], "*1\r\n:1\r\n");
    c.check(
        &["CONFIG", "GET", "maxmemory"],
        "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n",
    );
    c.call(&["AUTH", "user", "secret"]);
    c.check(&["SELECT", "3"], "+OK\r\n");
    c.check(&["PING"], "+PONG\r\n");
    let expected = [
        r#""client" "INFO""#.to_string(),
        r#""SET" "foo" "ba\"r\n""#.to_string(),
        r#""GET" "foo""#.to_string(),
        r#""MULTI""#.to_string(),
        r#""INCR" "n""#.to_string(),
        r#""EXEC""#.to_string(),
        r#""AUTH" "(redacted)" "(redacted)""#.to_string(),
        r#""SELECT" "3""#.to_string(),
    ];
    for (i, want) in expected.iter().enumerate() {
        let got = body(&mon.read_reply());
        let db = 0;
        let want = if i == 0 {
            format!("[{db} {addr}] \"CLIENT\" \"INFO\"")
        } else {
            format!("[{db} {addr}] {want}")
        };
        assert_eq!(got, want, "line {i}");
    }
    // After SELECT the database shows; CONFIG (admin) never did.
    assert_eq!(body(&mon.read_reply()), format!("[3 {addr}] \"PING\""));
    // RESET ends monitoring.
    mon.check(&["RESET"], "+RESET\r\n");
    c.check(&["PING"], "+PONG\r\n");
    mon.check(&["PING"], "+PONG\r\n");
}
