//! INFO errorstats, the error counters of INFO stats and commandstats with real `kvd`
//! processes: what counts as a rejected or a failed call, inside MULTI/EXEC and scripts
//! included, as redis-server 7.0 counts it (the expected counts were taken from Debian's
//! redis-server 7.0.15 running the same commands from a fresh start), and CONFIG RESETSTAT
//! clearing them. Counters are node-local: a script applied on every node of a cluster counts
//! only on the node its client is on.

mod common;

use std::time::Duration;

use common::*;

const ELECTION: Duration = Duration::from_secs(30);

fn lines(c: &mut RawConn, section: &str) -> Vec<String> {
    let reply = c.call(&[b"INFO".as_slice(), section.as_bytes()]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.split("\r\n")
        .filter(|l| !l.starts_with('#') && !l.starts_with('$') && l.contains(':'))
        .map(|l| l.replace("usec=0,usec_per_call=0.00,", ""))
        .collect()
}

fn total_errors(c: &mut RawConn) -> String {
    lines(c, "stats")
        .into_iter()
        .find(|l| l.starts_with("total_error_replies:"))
        .unwrap_or_default()
}

#[test]
fn errors_count_per_prefix_and_per_command_as_redis_counts_them() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    assert_eq!(c.call(&["CONFIG", "RESETSTAT"]), b"+OK\r\n");
    // Rejected before running: arity (no call), an unknown command (no command row).
    c.call(&["SET", "k"]);
    c.call(&["NOSUCH"]);
    c.call(&["SET", "k", "v"]);
    // Failed: ran and answered an error.
    c.call(&["INCR", "k"]);
    c.call(&["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"]);
    c.call(&["XADD", "s", "*", "f", "v"]);
    c.call(&["XGROUP", "CREATECONSUMER", "s", "g", "c"]);
    // MULTI/EXEC: a queued command's error counts for it, not for EXEC.
    c.call(&["MULTI"]);
    c.call(&["SET", "a", "b"]);
    c.call(&["INCR", "k"]);
    c.call(&["EXEC"]);
    c.call(&["EXEC"]);
    // A rejection while queueing aborts EXEC, which fails.
    c.call(&["MULTI"]);
    c.call(&["GET"]);
    c.call(&["EXEC"]);
    // Scripts: a swallowed (pcall) error counts for its command, a raised one once, a
    // script's own error for the script.
    c.call(&["EVAL", "redis.pcall('incr', 'k') return 1", "0"]);
    c.call(&["EVAL", "return redis.call('set')", "0"]);
    c.call(&["EVAL", "return {err='FOO bar'}", "0"]);
    c.call(&["EVAL", "return redis.pcall('incr', 'k')", "0"]);
    let mut cmd = lines(&mut c, "commandstats");
    cmd.retain(|l| !l.starts_with("cmdstat_info:") && !l.starts_with("cmdstat_config|"));
    let want = [
        "cmdstat_eval:calls=4,rejected_calls=0,failed_calls=3",
        "cmdstat_evalsha:calls=1,rejected_calls=0,failed_calls=1",
        "cmdstat_exec:calls=3,rejected_calls=0,failed_calls=2",
        "cmdstat_get:calls=0,rejected_calls=1,failed_calls=0",
        "cmdstat_incr:calls=4,rejected_calls=0,failed_calls=4",
        "cmdstat_multi:calls=2,rejected_calls=0,failed_calls=0",
        "cmdstat_set:calls=2,rejected_calls=2,failed_calls=0",
        "cmdstat_xadd:calls=1,rejected_calls=0,failed_calls=0",
        "cmdstat_xgroup|createconsumer:calls=1,rejected_calls=0,failed_calls=1",
    ];
    assert_eq!(cmd, want);
    assert_eq!(
        lines(&mut c, "errorstats"),
        [
            "errorstat_ERR:count=9",
            "errorstat_EXECABORT:count=1",
            "errorstat_FOO:count=1",
            "errorstat_NOGROUP:count=1",
            "errorstat_NOSCRIPT:count=1",
        ]
    );
    assert_eq!(total_errors(&mut c), "total_error_replies:13");
    assert_eq!(c.call(&["CONFIG", "RESETSTAT"]), b"+OK\r\n");
    assert!(lines(&mut c, "errorstats").is_empty());
    assert_eq!(total_errors(&mut c), "total_error_replies:0");
    assert_eq!(
        lines(&mut c, "commandstats"),
        ["cmdstat_info:calls=3,rejected_calls=0,failed_calls=0"]
    );
}

/// A script applied on all three nodes counts its commands' errors only where its client is.
#[test]
fn a_replicated_script_counts_on_its_client_s_node_only() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(ELECTION);
    let mut conns: Vec<RawConn> = cluster.nodes.iter().map(|n| n.raw()).collect();
    for c in conns.iter_mut() {
        assert_eq!(c.call(&["CONFIG", "RESETSTAT"]), b"+OK\r\n");
    }
    let script = "redis.call('set', KEYS[1], 'x') redis.pcall('incr', KEYS[1]) return 1";
    assert_eq!(conns[1].call(&["EVAL", script, "1", "k"]), b":1\r\n");
    // Every node has applied the script (and would have counted it by now).
    for c in conns.iter_mut() {
        poll_until(ELECTION, "the script applied everywhere", || {
            (c.call(&["GET", "k"]) == b"$1\r\nx\r\n").then_some(())
        });
    }
    let stats: Vec<Vec<String>> = conns.iter_mut().map(|c| lines(c, "errorstats")).collect();
    assert_eq!(stats[1], ["errorstat_ERR:count=1"]);
    assert!(stats[0].is_empty() && stats[2].is_empty(), "{stats:?}");
}
