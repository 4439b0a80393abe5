//! MULTI / EXEC / DISCARD / WATCH / UNWATCH with real `kvd` processes: replies byte for byte as
//! redis-server 7.0 gives them, a transaction's writes visible all together or not at all on
//! every node, EXEC and WATCH through followers, and a WATCH-guarded counter that stays exact
//! while nodes are killed and paused.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const ELECTION: Duration = Duration::from_secs(30);
const CONVERGE: Duration = Duration::from_secs(30);

/// Sends the commands of `script` one by one on one raw connection and checks each reply.
#[track_caller]
fn expect_all(con: &mut RawConn, script: &[(&[&str], &str)]) {
    for (argv, expected) in script {
        con.check(argv, expected);
    }
}

#[test]
fn replies_match_redis_byte_for_byte() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    expect_all(
        &mut c,
        &[
            (&["EXEC"], "-ERR EXEC without MULTI\r\n"),
            (&["DISCARD"], "-ERR DISCARD without MULTI\r\n"),
            (
                &["EXEC", "x"],
                "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n",
            ),
            (
                &["MULTI", "x"],
                "-ERR wrong number of arguments for 'multi' command\r\n",
            ),
            (
                &["WATCH"],
                "-ERR wrong number of arguments for 'watch' command\r\n",
            ),
            (&["UNWATCH"], "+OK\r\n"),
            // Queued commands, a runtime error inside the array (no rollback), a write refused
            // by its options at its position, local commands at theirs, SELECT for the rest.
            (&["MULTI"], "+OK\r\n"),
            (&["MULTI"], "-ERR MULTI calls can not be nested\r\n"),
            (
                &["WATCH", "a"],
                "-ERR WATCH inside MULTI is not allowed\r\n",
            ),
            (&["SET", "s", "x"], "+QUEUED\r\n"),
            (&["INCR", "s"], "+QUEUED\r\n"),
            (&["GET", "s"], "+QUEUED\r\n"),
            (&["SET", "k", "v", "badopt"], "+QUEUED\r\n"),
            (&["PING"], "+QUEUED\r\n"),
            (&["ECHO", "hi"], "+QUEUED\r\n"),
            (&["SELECT", "1"], "+QUEUED\r\n"),
            (&["SET", "s", "in1"], "+QUEUED\r\n"),
            (&["SELECT", "99"], "+QUEUED\r\n"),
            (&["UNWATCH"], "+QUEUED\r\n"),
            (
                &["EXEC"],
                "*10\r\n+OK\r\n-ERR value is not an integer or out of range\r\n$1\r\nx\r\n\
                 -ERR syntax error\r\n+PONG\r\n$2\r\nhi\r\n+OK\r\n+OK\r\n\
                 -ERR DB index is out of range\r\n+OK\r\n",
            ),
            // The SELECT inside stays in force afterwards.
            (&["GET", "s"], "$3\r\nin1\r\n"),
            (&["SELECT", "0"], "+OK\r\n"),
            (&["GET", "s"], "$1\r\nx\r\n"),
            // Errors while queueing discard the transaction at EXEC; nothing of it is applied.
            (&["MULTI"], "+OK\r\n"),
            (
                &["SET", "a"],
                "-ERR wrong number of arguments for 'set' command\r\n",
            ),
            (
                &["NOSUCH", "x"],
                "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n",
            ),
            (&["SET", "b", "2"], "+QUEUED\r\n"),
            (
                &["EXEC"],
                "-EXECABORT Transaction discarded because of previous errors.\r\n",
            ),
            (&["GET", "b"], "$-1\r\n"),
            // kvd's cluster and mode commands are refused inside, flagging the transaction.
            (&["MULTI"], "+OK\r\n"),
            (
                &["CONSISTENCY", "LINEARIZABLE"],
                "-ERR Command not allowed inside a transaction\r\n",
            ),
            (
                &["EXEC"],
                "-EXECABORT Transaction discarded because of previous errors.\r\n",
            ),
            (&["MULTI"], "+OK\r\n"),
            (
                &["JOIN", "n9", "127.0.0.1:1"],
                "-ERR Command not allowed inside a transaction\r\n",
            ),
            (
                &["EXEC"],
                "-EXECABORT Transaction discarded because of previous errors.\r\n",
            ),
            // EXEC with arguments inside MULTI discards it at once.
            (&["MULTI"], "+OK\r\n"),
            (&["SET", "b", "2"], "+QUEUED\r\n"),
            (
                &["EXEC", "x"],
                "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n",
            ),
            (&["EXEC"], "-ERR EXEC without MULTI\r\n"),
            (&["GET", "b"], "$-1\r\n"),
            // DISCARD.
            (&["MULTI"], "+OK\r\n"),
            (&["SET", "b", "2"], "+QUEUED\r\n"),
            (&["DISCARD"], "+OK\r\n"),
            (&["GET", "b"], "$-1\r\n"),
            (&["MULTI"], "+OK\r\n"),
            (&["EXEC"], "*0\r\n"),
            // A read-only transaction, with local commands between the reads.
            (&["MULTI"], "+OK\r\n"),
            (&["GET", "s"], "+QUEUED\r\n"),
            (&["CLIENT", "SETNAME", "tx"], "+QUEUED\r\n"),
            (&["EXISTS", "s", "s", "nope"], "+QUEUED\r\n"),
            (&["CLIENT", "GETNAME"], "+QUEUED\r\n"),
            (&["SELECT", "1"], "+QUEUED\r\n"),
            (&["GET", "s"], "+QUEUED\r\n"),
            (&["TYPE", "s"], "+QUEUED\r\n"),
            (
                &["EXEC"],
                "*7\r\n$1\r\nx\r\n+OK\r\n:2\r\n$2\r\ntx\r\n+OK\r\n$3\r\nin1\r\n+string\r\n",
            ),
            (&["SELECT", "0"], "+OK\r\n"),
            // A read inside a writing transaction sees the writes before it.
            (&["MULTI"], "+OK\r\n"),
            (&["DEL", "s"], "+QUEUED\r\n"),
            (&["GET", "s"], "+QUEUED\r\n"),
            (&["MSET", "a", "1", "b", "2"], "+QUEUED\r\n"),
            (&["MGET", "a", "b", "c"], "+QUEUED\r\n"),
            (
                &["EXEC"],
                "*4\r\n:1\r\n$-1\r\n+OK\r\n*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n",
            ),
        ],
    );
    // Subcommands are looked up (and their arity checked) when queued; other errors of local
    // commands come inside EXEC's array.
    expect_all(
        &mut c,
        &[
            (&["MULTI"], "+OK\r\n"),
            (
                &["CLIENT", "FOO"],
                "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n",
            ),
            (
                &["CONFIG", "GET"],
                "-ERR wrong number of arguments for 'config|get' command\r\n",
            ),
            (
                &["EXEC"],
                "-EXECABORT Transaction discarded because of previous errors.\r\n",
            ),
            (&["MULTI"], "+OK\r\n"),
            (&["PING", "a", "b"], "+QUEUED\r\n"),
            (&["CONFIG", "GET", "appendonly"], "+QUEUED\r\n"),
            (
                &["EXEC"],
                "*2\r\n-ERR wrong number of arguments for 'ping' command\r\n\
                 *2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
            ),
        ],
    );
    expect_all(
        &mut c,
        &[
            (&["MULTI"], "+OK\r\n"),
            (
                &["OBJECT", "ENCODING"],
                "-ERR wrong number of arguments for 'object|encoding' command\r\n",
            ),
            (
                &["ACL", "FOO"],
                "-ERR unknown subcommand 'FOO'. Try ACL HELP.\r\n",
            ),
            (
                &["EXEC"],
                "-EXECABORT Transaction discarded because of previous errors.\r\n",
            ),
            // Relative expiry is made absolute at EXEC, and applied in order.
            (&["MULTI"], "+OK\r\n"),
            (&["SET", "t", "v", "EX", "100"], "+QUEUED\r\n"),
            (&["TTL", "t"], "+QUEUED\r\n"),
            (&["EXPIRE", "t", "-1"], "+QUEUED\r\n"),
            (&["EXISTS", "t"], "+QUEUED\r\n"),
            (&["EXEC"], "*4\r\n+OK\r\n:100\r\n:1\r\n:0\r\n"),
            // RESET runs at once, discarding the transaction.
            (&["MULTI"], "+OK\r\n"),
            (&["SET", "r", "1"], "+QUEUED\r\n"),
            (&["RESET"], "+RESET\r\n"),
            (&["EXEC"], "-ERR EXEC without MULTI\r\n"),
            (&["GET", "r"], "$-1\r\n"),
        ],
    );
    // One pipeline: MULTI, two writes, EXEC and a read after it, answered in order.
    c.send(
        &[
            encode_cmd(&["MULTI"]),
            encode_cmd(&["SET", "p", "1"]),
            encode_cmd(&["INCR", "p"]),
            encode_cmd(&["EXEC"]),
            encode_cmd(&["GET", "p"]),
        ]
        .concat(),
    );
    c.expect(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n$1\r\n2\r\n");
    // A HELLO inside switches the protocol for the replies after it, as redis-server writes
    // them: here RESP3 nulls first, RESP2 ones after HELLO 2.
    let hello = c.call(&["HELLO", "3"]);
    assert!(hello.starts_with(b"%7\r\n"), "{}", show(&hello));
    for (argv, queued) in [
        (&["MULTI"][..], "+OK\r\n"),
        (&["GET", "nope"], "+QUEUED\r\n"),
        (&["CLIENT", "SETNAME", "x"], "+QUEUED\r\n"),
        (&["HELLO", "2"], "+QUEUED\r\n"),
        (&["GET", "nope"], "+QUEUED\r\n"),
    ] {
        c.check(argv, queued);
    }
    let exec = c.call(&["EXEC"]);
    // HELLO's own reply (RESP2 map as a flat array) carries the connection id: checked by shape.
    assert!(
        exec.starts_with(b"*4\r\n_\r\n+OK\r\n*14\r\n$6\r\nserver\r\n")
            && exec.ends_with(b"$7\r\nmodules\r\n*0\r\n$-1\r\n"),
        "{}",
        show(&exec)
    );
    c.check(&["GET", "nope"], "$-1\r\n");
    // QUIT inside MULTI still closes at once.
    c.check(&["MULTI"], "+OK\r\n");
    c.check(&["QUIT"], "+OK\r\n");
    assert!(c.closed_within(Duration::from_secs(5)));
}

#[test]
fn watch_aborts_on_changes_and_is_forgotten_as_in_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let mut other = node.raw();
    let committed = "*1\r\n+OK\r\n";
    let tx = |c: &mut RawConn, expected: &str| {
        c.check(&["MULTI"], "+OK\r\n");
        c.check(&["SET", "x", "1"], "+QUEUED\r\n");
        c.check(&["EXEC"], expected);
    };
    // Unchanged (another key written, a SET NX that did nothing, a read): commits.
    c.check(&["SET", "w", "1"], "+OK\r\n");
    c.check(&["WATCH", "w", "nothere"], "+OK\r\n");
    other.check(&["SET", "z", "1"], "+OK\r\n");
    other.check(&["SET", "w", "2", "NX"], "$-1\r\n");
    other.check(&["GET", "w"], "$1\r\n1\r\n");
    tx(&mut c, committed);
    // Written by another client (even to the same value), or by this one: aborts.
    c.check(&["WATCH", "w"], "+OK\r\n");
    other.check(&["SET", "w", "1"], "+OK\r\n");
    tx(&mut c, "*-1\r\n");
    c.check(&["WATCH", "w"], "+OK\r\n");
    c.check(&["SET", "w", "own"], "+OK\r\n");
    tx(&mut c, "*-1\r\n");
    // An aborted transaction applied nothing, and its watches are gone.
    c.check(&["GET", "x"], "$1\r\n1\r\n");
    tx(&mut c, committed);
    // Deleted; absent and created; absent, created and deleted again.
    c.check(&["WATCH", "w"], "+OK\r\n");
    other.check(&["DEL", "w"], ":1\r\n");
    tx(&mut c, "*-1\r\n");
    c.check(&["WATCH", "w"], "+OK\r\n");
    other.check(&["SET", "w", "1"], "+OK\r\n");
    tx(&mut c, "*-1\r\n");
    c.check(&["DEL", "w"], ":1\r\n");
    c.check(&["WATCH", "w"], "+OK\r\n");
    other.check(&["SET", "w", "1"], "+OK\r\n");
    other.check(&["DEL", "w"], ":1\r\n");
    tx(&mut c, "*-1\r\n");
    // FLUSHDB of a watched key's database.
    c.check(&["SET", "w", "1"], "+OK\r\n");
    c.check(&["WATCH", "w"], "+OK\r\n");
    other.check(&["FLUSHDB"], "+OK\r\n");
    tx(&mut c, "*-1\r\n");
    // A flush does not touch a key absent since before the WATCH (as in Redis), unless it
    // removed that key created meanwhile; or (kvd only: one last-write index per database,
    // where Redis would commit) any key of its database written since the WATCH.
    let pong = "*1\r\n+PONG\r\n";
    for (flush, written, outcome) in [
        ("FLUSHDB", None, pong),
        ("FLUSHALL", None, pong),
        ("FLUSHALL", Some("w"), "*-1\r\n"),
        ("FLUSHDB", Some("v"), "*-1\r\n"),
    ] {
        c.check(&["WATCH", "w"], "+OK\r\n");
        if let Some(key) = written {
            other.check(&["SET", key, "1"], "+OK\r\n");
        }
        other.check(&[flush], "+OK\r\n");
        c.check(&["MULTI"], "+OK\r\n");
        c.check(&["PING"], "+QUEUED\r\n");
        c.check(&["EXEC"], outcome);
    }
    // The key of the database it was watched in, not of the one EXEC runs in.
    c.check(&["WATCH", "w"], "+OK\r\n");
    c.check(&["SELECT", "2"], "+OK\r\n");
    other.check(&["SET", "w", "in0"], "+OK\r\n");
    tx(&mut c, "*-1\r\n");
    c.check(&["WATCH", "w"], "+OK\r\n");
    other.check(&["SELECT", "3"], "+OK\r\n");
    other.check(&["SET", "w", "in3"], "+OK\r\n");
    tx(&mut c, committed);
    c.check(&["SELECT", "0"], "+OK\r\n");
    other.check(&["SELECT", "0"], "+OK\r\n");
    // Expiry: a TTL set on a watched key, or the key expiring, aborts; PERSIST of a key
    // without one changes nothing.
    c.check(&["SET", "e", "1"], "+OK\r\n");
    c.check(&["WATCH", "e"], "+OK\r\n");
    other.check(&["PEXPIRE", "e", "100000"], ":1\r\n");
    tx(&mut c, "*-1\r\n");
    c.check(&["SET", "e", "1"], "+OK\r\n");
    c.check(&["WATCH", "e"], "+OK\r\n");
    other.check(&["PERSIST", "e"], ":0\r\n");
    tx(&mut c, committed);
    c.check(&["SET", "e", "1", "PX", "100"], "+OK\r\n");
    c.check(&["WATCH", "e"], "+OK\r\n");
    std::thread::sleep(Duration::from_millis(300));
    tx(&mut c, "*-1\r\n");
    // RENAME onto a watched key, and away from it.
    c.check(&["SET", "r", "1"], "+OK\r\n");
    c.check(&["WATCH", "r2"], "+OK\r\n");
    other.check(&["RENAME", "r", "r2"], "+OK\r\n");
    tx(&mut c, "*-1\r\n");
    c.check(&["WATCH", "r2"], "+OK\r\n");
    other.check(&["RENAME", "r2", "r3"], "+OK\r\n");
    tx(&mut c, "*-1\r\n");
    // RESET forgets the watches.
    c.check(&["WATCH", "w"], "+OK\r\n");
    other.check(&["SET", "w", "again"], "+OK\r\n");
    c.check(&["RESET"], "+RESET\r\n");
    tx(&mut c, committed);
    // UNWATCH, DISCARD, EXEC without MULTI (keeps them), EXEC x forget or keep as Redis does.
    for forget in [&["UNWATCH"][..], &["EXEC", "x"]] {
        c.check(&["WATCH", "w"], "+OK\r\n");
        other.check(&["SET", "w", "again"], "+OK\r\n");
        let _ = c.call(forget);
        tx(&mut c, committed);
    }
    c.check(&["WATCH", "w"], "+OK\r\n");
    other.check(&["SET", "w", "again"], "+OK\r\n");
    c.check(&["MULTI"], "+OK\r\n");
    c.check(&["DISCARD"], "+OK\r\n");
    tx(&mut c, committed);
    c.check(&["WATCH", "w"], "+OK\r\n");
    other.check(&["SET", "w", "again"], "+OK\r\n");
    c.check(&["EXEC"], "-ERR EXEC without MULTI\r\n");
    tx(&mut c, "*-1\r\n");
    // A read-only transaction checks its watches too; EXECABORT wins over a changed key.
    c.check(&["WATCH", "w"], "+OK\r\n");
    other.check(&["SET", "w", "again"], "+OK\r\n");
    c.check(&["MULTI"], "+OK\r\n");
    c.check(&["GET", "w"], "+QUEUED\r\n");
    c.check(&["EXEC"], "*-1\r\n");
    c.check(&["WATCH", "w"], "+OK\r\n");
    other.check(&["SET", "w", "again"], "+OK\r\n");
    c.check(&["MULTI"], "+OK\r\n");
    c.check(
        &["NOSUCH"],
        "-ERR unknown command 'NOSUCH', with args beginning with: \r\n",
    );
    c.check(
        &["EXEC"],
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
}

/// `DEBUG PROPOSE` (debug builds only) proposes an entry as it is: apply must answer malformed
/// transaction entries with an error, never crash.
#[cfg(debug_assertions)]
#[test]
fn malformed_transaction_entries_get_errors_not_crashes() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    for argv in [
        &["DEBUG", "PROPOSE", "exec"][..],
        &["DEBUG", "PROPOSE", "exec", "1", "0", "k"],
        &["DEBUG", "PROPOSE", "exec", "0", "1", "0", "9", "get"],
        &["DEBUG", "PROPOSE", "exec", "0", "1", "16", "2", "get", "k"],
        &["DEBUG", "PROPOSE", "exec", "1", "0", "k", "q7", "0"],
        &["DEBUG", "PROPOSE", "exec", "99999999999999999999999", "0"],
    ] {
        let reply = c.call(argv);
        assert!(
            reply.starts_with(b"-ERR invalid transaction entry: "),
            "{argv:?}: {}",
            show(&reply)
        );
    }
    c.check(
        &[
            "DEBUG", "PROPOSE", "exec", "0", "2", "0", "3", "set", "k", "v", "0", "2", "get", "k",
        ],
        "*2\r\n+OK\r\n$1\r\nv\r\n",
    );
    c.check(&["PING"], "+PONG\r\n");
}

/// Waits until every node reports the same DIGEST.
fn wait_converged(c: &Cluster) -> String {
    poll_until(CONVERGE, "replicas to converge", || {
        let digests: Vec<String> = c
            .nodes
            .iter()
            .map(|n| {
                n.try_conn()
                    .ok()
                    .and_then(|mut con| try_q::<String>(&mut con, &["DIGEST"]).ok())
                    .unwrap_or_else(|| format!("unreachable {}", n.name))
            })
            .collect();
        digests
            .windows(2)
            .all(|w| w[0] == w[1])
            .then(|| digests[0].clone())
    })
}

#[test]
fn transactions_through_followers_are_atomic_and_watch_sees_writes_through_other_nodes() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(ELECTION);
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (f, g) = (followers[0], followers[1]);
    let mut fc = c.node(f).raw();
    let mut gc = c.node(g).raw();
    let mut lc = c.node(leader).raw();

    // MULTI/EXEC through a follower; the writes reach every node.
    expect_all(
        &mut fc,
        &[
            (&["MULTI"], "+OK\r\n"),
            (&["SET", "a", "1"], "+QUEUED\r\n"),
            (&["INCR", "a"], "+QUEUED\r\n"),
            (&["SELECT", "5"], "+QUEUED\r\n"),
            (&["SET", "b", "in5"], "+QUEUED\r\n"),
            (&["EXEC"], "*4\r\n+OK\r\n:2\r\n+OK\r\n+OK\r\n"),
            (&["SELECT", "0"], "+OK\r\n"),
        ],
    );
    wait_converged(&c);
    lc.check(&["CONSISTENCY", "LINEARIZABLE"], "+OK\r\n");
    lc.check(&["GET", "a"], "$1\r\n2\r\n");
    gc.check(&["CONSISTENCY", "LINEARIZABLE"], "+OK\r\n");
    gc.check(&["SELECT", "5"], "+OK\r\n");
    gc.check(&["GET", "b"], "$3\r\nin5\r\n");
    gc.check(&["SELECT", "0"], "+OK\r\n");

    // WATCH on one follower, writes through the other follower and through the leader.
    let tx = |con: &mut RawConn, expected: &str| {
        con.check(&["MULTI"], "+OK\r\n");
        con.check(&["SET", "x", "1"], "+QUEUED\r\n");
        con.check(&["EXEC"], expected);
    };
    let committed = "*1\r\n+OK\r\n";
    fc.check(&["WATCH", "a"], "+OK\r\n");
    gc.check(&["SET", "a", "other"], "+OK\r\n");
    tx(&mut fc, "*-1\r\n");
    fc.check(&["WATCH", "a"], "+OK\r\n");
    lc.check(&["DEL", "a"], ":1\r\n");
    tx(&mut fc, "*-1\r\n");
    fc.check(&["WATCH", "a"], "+OK\r\n");
    gc.check(&["SET", "a", "created"], "+OK\r\n");
    tx(&mut fc, "*-1\r\n");
    fc.check(&["WATCH", "a"], "+OK\r\n");
    lc.check(&["FLUSHDB"], "+OK\r\n");
    tx(&mut fc, "*-1\r\n");
    // Nothing changed: commits, from a follower, whatever its lag.
    fc.check(&["WATCH", "a", "x"], "+OK\r\n");
    gc.check(&["SET", "elsewhere", "1"], "+OK\r\n");
    tx(&mut fc, committed);

    // A read-only transaction on a linearizable follower connection sees every write
    // acknowledged before it, whichever node took it.
    for i in 0..20 {
        let v = format!("v{i}");
        lc.check(&["SET", "ro", &v], "+OK\r\n");
        gc.check(&["MULTI"], "+OK\r\n");
        gc.check(&["GET", "ro"], "+QUEUED\r\n");
        gc.check(&["EXEC"], &format!("*1\r\n${}\r\n{v}\r\n", v.len()));
    }

    // Atomicity: a reader on another node never sees one key of a transaction without the other.
    let stop = Arc::new(AtomicBool::new(false));
    let reader_addr = c.node(g).client_addr();
    let reader = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut r = RawConn::connect(&reader_addr);
            let (mut reads, mut seen_pairs) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let reply = r.call(&["MGET", "p", "q"]);
                reads += 1;
                let text = String::from_utf8_lossy(&reply).into_owned();
                let parts: Vec<&str> = text.split("\r\n").collect();
                // *2 $n p $n q, or nils.
                let values: Vec<Option<&str>> = [1, 3]
                    .iter()
                    .map(|&i| match parts.get(i) {
                        Some(&"$-1") => None,
                        _ => parts.get(i + 1).copied(),
                    })
                    .collect();
                assert_eq!(
                    values[0],
                    values[1],
                    "a reader saw half a transaction: {}",
                    show(&reply)
                );
                seen_pairs += values[0].is_some() as u64;
            }
            (reads, seen_pairs)
        })
    };
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        n += 1;
        let v = n.to_string();
        // The read between the writes would make them separate raft entries (a read waits for
        // the connection's writes) if the transaction were not one entry.
        fc.send(
            &[
                encode_cmd(&["MULTI"]),
                encode_cmd(&["SET", "p", &v]),
                encode_cmd(&["GET", "p"]),
                encode_cmd(&["SET", "q", &v]),
                encode_cmd(&["EXEC"]),
            ]
            .concat(),
        );
        fc.expect(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n");
        fc.expect(format!("${}\r\n{v}\r\n+OK\r\n", v.len()).as_bytes());
        if n.is_multiple_of(7) {
            // Deletions too: both go, or neither.
            fc.send(
                &[
                    encode_cmd(&["MULTI"]),
                    encode_cmd(&["DEL", "p"]),
                    encode_cmd(&["DEL", "q"]),
                    encode_cmd(&["EXEC"]),
                ]
                .concat(),
            );
            fc.expect(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n:1\r\n");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, pairs) = reader.join().expect("reader thread");
    assert!(n > 20, "only {n} transactions in 3 s");
    assert!(
        reads > 20 && pairs > 0,
        "reader did too little: {reads} reads"
    );
    wait_converged(&c);
}

/// A minimal RESP client that reports I/O failures instead of panicking (the counter test's
/// nodes die and stop under it).
struct Client {
    addr: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    fn new(addr: String) -> Client {
        Client {
            addr,
            stream: None,
            buf: Vec::new(),
        }
    }

    fn call(&mut self, argv: &[&str]) -> std::io::Result<Vec<u8>> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr)?;
            s.set_nodelay(true).ok();
            s.set_read_timeout(Some(Duration::from_secs(12)))?;
            s.set_write_timeout(Some(Duration::from_secs(12)))?;
            self.buf.clear();
            self.stream = Some(s);
        }
        let result = self.exchange(argv);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn exchange(&mut self, argv: &[&str]) -> std::io::Result<Vec<u8>> {
        let s = self.stream.as_mut().ok_or(ErrorKind::NotConnected)?;
        s.write_all(&encode_cmd(argv))?;
        loop {
            if let Some(n) = reply_len(&self.buf) {
                return Ok(self.buf.drain(..n).collect());
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk)? {
                0 => return Err(ErrorKind::UnexpectedEof.into()),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    acked: u64,
    aborted: u64,
    /// EXEC sent, outcome unknown (TIMEOUT, connection lost, other errors).
    unknown: u64,
    /// EXEC answered with an error that says it was not applied (CLUSTERDOWN, TRYAGAIN).
    refused: u64,
}

/// One client's loop: WATCH c / GET c / MULTI / SET c v+1 / EXEC until `stop`.
fn counter_loop(addr: String, stop: &AtomicBool) -> Tally {
    let mut t = Tally::default();
    let mut c = Client::new(addr);
    while !stop.load(Ordering::Relaxed) {
        let step = (|| -> Result<Option<Vec<u8>>, std::io::Error> {
            if c.call(&["WATCH", "c"])? != b"+OK\r\n" {
                return Ok(None);
            }
            let got = c.call(&["GET", "c"])?;
            let v: i64 = if got == b"$-1\r\n" {
                0
            } else if got.starts_with(b"$") {
                let text = String::from_utf8_lossy(&got).into_owned();
                match text.split("\r\n").nth(1).and_then(|s| s.parse().ok()) {
                    Some(v) => v,
                    None => panic!("counter is not a number: {}", show(&got)),
                }
            } else {
                // LOADING after a restart, say: start over.
                let _ = c.call(&["UNWATCH"])?;
                return Ok(None);
            };
            assert_eq!(c.call(&["MULTI"])?, b"+OK\r\n");
            let next = (v + 1).to_string();
            assert_eq!(c.call(&["SET", "c", &next])?, b"+QUEUED\r\n");
            Ok(Some(c.call(&["EXEC"]).unwrap_or_default()))
        })();
        match step {
            Err(_) => thread::sleep(Duration::from_millis(50)),
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Ok(Some(reply)) => {
                if reply == b"*1\r\n+OK\r\n" {
                    t.acked += 1;
                } else if reply == b"*-1\r\n" {
                    t.aborted += 1;
                } else if reply.starts_with(b"-CLUSTERDOWN") || reply.starts_with(b"-TRYAGAIN") {
                    t.refused += 1;
                } else {
                    // -TIMEOUT (outcome unknown), or the connection died after EXEC was sent.
                    t.unknown += 1;
                }
            }
        }
    }
    t
}

fn signal(node: &Node, sig: libc::c_int) {
    let pid = node.pid().expect("node has a process") as libc::pid_t;
    // SAFETY: kill(2) on a child we spawned and still hold (not reaped).
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

#[test]
fn watched_counter_is_exact_while_nodes_are_killed_and_paused() {
    let mut c = Cluster::start(3, &["--write-timeout-ms", "3000"]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .flat_map(|i| [i, i])
        .map(|i| {
            let addr = c.node(i).client_addr();
            let stop = stop.clone();
            thread::spawn(move || counter_loop(addr, &stop))
        })
        .collect();
    let pause = |d: u64| thread::sleep(Duration::from_millis(d));
    pause(1500);
    // kill -9 the leader, restart it.
    let victim = c.wait_for_leader(ELECTION);
    c.nodes[victim].kill9();
    pause(2000);
    c.nodes[victim].restart();
    pause(1500);
    // Pause the (possibly new) leader, then a follower.
    let paused = c.wait_for_leader(ELECTION);
    signal(c.node(paused), libc::SIGSTOP);
    pause(2500);
    signal(c.node(paused), libc::SIGCONT);
    pause(1000);
    let other = (paused + 1) % 3;
    c.nodes[other].kill9();
    pause(1000);
    c.nodes[other].restart();
    pause(1500);
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for h in clients {
        let t = h.join().expect("client thread");
        total.acked += t.acked;
        total.aborted += t.aborted;
        total.unknown += t.unknown;
        total.refused += t.refused;
    }
    wait_converged(&c);
    let finals: Vec<i64> = c
        .nodes
        .iter()
        .map(|n| {
            let mut con = n.conn();
            let _: () = q(&mut con, &["CONSISTENCY", "LINEARIZABLE"]);
            let v: Option<String> = q(&mut con, &["GET", "c"]);
            v.map_or(0, |s| s.parse().expect("number"))
        })
        .collect();
    eprintln!("counter under faults: {total:?}, final {finals:?}");
    assert!(finals.windows(2).all(|w| w[0] == w[1]), "{finals:?}");
    let value = finals[0] as u64;
    assert!(total.acked > 0, "no transaction committed: {total:?}");
    assert!(
        total.acked <= value && value <= total.acked + total.unknown,
        "final counter {value} outside [acked, acked + unknown] for {total:?}"
    );
}
