//! RESP on the wire against a real `kvd` process: inline commands, requests cut at arbitrary
//! points, long pipelines, malformed input, and the size limits.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

/// A pause between the pieces of one request: it is the test input (the server must cope with
/// a request arriving in several reads), not a synchronisation.
const PIECE_PAUSE: Duration = Duration::from_millis(40);

#[test]
fn inline_commands() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.send(b"PING\r\n");
    c.expect(b"+PONG\r\n");
    c.send(b"SET k v\r\n");
    c.expect(b"+OK\r\n");
    c.send(b"GET k\r\n");
    c.expect(b"$1\r\nv\r\n");
    // Bare LF, quoting and escapes as redis-cli sends them.
    c.send(b"set k2 \"a b\\x41\\n\"\n");
    c.expect(b"+OK\r\n");
    c.send(b"get k2\n");
    c.expect(b"$5\r\na bA\n\r\n");
    c.send(b"ECHO 'it\\'s'\r\n");
    c.expect(b"$4\r\nit's\r\n");
    // Empty lines are skipped, an empty multibulk is ignored.
    c.send(b"\r\n\r\n*0\r\nPING\r\n");
    c.expect(b"+PONG\r\n");
    // Inline and multibulk mixed in one write, answered in order.
    let mut mixed = b"INCR n\r\n".to_vec();
    mixed.extend(encode_cmd(&["INCR", "n"]));
    mixed.extend_from_slice(b"GET n\r\n");
    c.send(&mixed);
    c.expect(b":1\r\n:2\r\n$1\r\n2\r\n");
    // Errors from inline commands keep the connection.
    c.send(b"nosuch x\r\n");
    c.expect(b"-ERR unknown command 'nosuch', with args beginning with: 'x' \r\n");
    c.send(b"PING\r\n");
    c.expect(b"+PONG\r\n");

    let (out, closed) = raw_exchange(&node.client_addr(), b"SET k \"open\r\n", IO_TIMEOUT);
    assert_eq!(
        show(&out),
        show(b"-ERR Protocol error: unbalanced quotes in request\r\n")
    );
    assert!(closed);
}

#[test]
fn requests_split_across_writes() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    for piece in [
        &b"*3\r\n$3\r\nSE"[..],
        b"T\r\n$1\r",
        b"\nk\r\n$",
        b"11\r\nhello",
        b" world",
        b"\r",
        b"\n",
    ] {
        c.send(piece);
        std::thread::sleep(PIECE_PAUSE);
    }
    c.expect(b"+OK\r\n");
    for piece in [&b"GE"[..], b"T k", b"\r", b"\n"] {
        c.send(piece);
        std::thread::sleep(PIECE_PAUSE);
    }
    c.expect(b"$11\r\nhello world\r\n");

    // One byte per write, several commands.
    let mut all = encode_cmd(&["SET", "a", "1"]);
    all.extend(encode_cmd(&["INCR", "a"]));
    all.extend_from_slice(b"GET a\r\n");
    for b in &all {
        c.send(std::slice::from_ref(b));
    }
    c.expect(b"+OK\r\n:2\r\n$1\r\n2\r\n");

    // A large value arriving in many reads.
    let big = vec![b'x'; 3 * 1024 * 1024];
    let req = encode_cmd(&[&b"SET"[..], b"big", &big]);
    for chunk in req.chunks(256 * 1024) {
        c.send(chunk);
    }
    c.expect(b"+OK\r\n");
    let mut con = node.conn();
    let got: Vec<u8> = q(&mut con, &["GET", "big"]);
    assert!(got == big, "3 MiB value came back different");
    let len: i64 = q(&mut con, &["STRLEN", "big"]);
    assert_eq!(len, big.len() as i64);
}

/// 1000 mixed commands in one write; the replies come back in order and every read sees the
/// writes before it in the pipeline.
#[test]
fn long_pipeline_in_one_write() {
    let node = Node::single(&[]);
    let mut model: HashMap<String, String> = HashMap::new();
    let mut req = Vec::new();
    let mut expected = Vec::new();
    let bulk = |v: Option<&String>| match v {
        Some(v) => format!("${}\r\n{v}\r\n", v.len()),
        None => "$-1\r\n".to_string(),
    };
    for i in 0..1000usize {
        let key = format!("key{}", i % 37);
        match i % 7 {
            0 | 3 => {
                let val = format!("v{i}");
                req.extend(encode_cmd(&["SET", &key, &val]));
                expected.push("+OK\r\n".to_string());
                model.insert(key, val);
            }
            1 | 4 => {
                req.extend(encode_cmd(&["GET", &key]));
                expected.push(bulk(model.get(&key)));
            }
            2 => {
                let n = model
                    .get("ctr")
                    .map(|v| v.parse::<i64>().unwrap())
                    .unwrap_or(0)
                    + 1;
                req.extend(encode_cmd(&["INCR", "ctr"]));
                expected.push(format!(":{n}\r\n"));
                model.insert("ctr".into(), n.to_string());
            }
            5 => {
                let existed = model.remove(&key).is_some();
                req.extend(encode_cmd(&["DEL", &key]));
                expected.push(format!(":{}\r\n", existed as i32));
            }
            _ => {
                req.extend(encode_cmd(&["EXISTS", &key, "ctr"]));
                let n = model.contains_key(&key) as i32 + model.contains_key("ctr") as i32;
                expected.push(format!(":{n}\r\n"));
            }
        }
    }
    let expected: Vec<u8> = expected.concat().into_bytes();
    let mut c = node.raw();
    c.send(&req);
    c.expect(&expected);
    // Nothing extra follows.
    c.check(&["PING"], "+PONG\r\n");
    let size: i64 = q(&mut node.conn(), &["DBSIZE"]);
    assert_eq!(size, model.len() as i64);
}

/// Reads queued behind writes in flight run in their turn: a pipeline mixing reads with writes
/// to the same keys, to other databases (SELECT, MOVE, COPY ... DB) and to the whole keyspace
/// (SWAPDB, FLUSHDB, DBSIZE) gets, reply for reply, what running it one command at a time
/// gives (a model of the two databases it uses).
#[test]
fn pipelined_reads_see_the_writes_before_them_and_none_after() {
    let node = Node::single(&[]);
    let mut dbs: [HashMap<String, String>; 2] = [HashMap::new(), HashMap::new()];
    let mut cur = 0usize;
    let (mut req, mut expected) = (Vec::new(), String::new());
    let bulk = |v: Option<&String>| match v {
        Some(v) => format!("${}\r\n{v}\r\n", v.len()),
        None => "$-1\r\n".to_string(),
    };
    // A fixed pseudo-random sequence (the same every run), over few keys so that most reads
    // meet a write to their key soon after them.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for i in 0..3000 {
        let key = format!("k{}", next(4));
        let other = 1 - cur;
        let (argv, reply): (Vec<String>, String) = match next(14) {
            0..=2 => {
                let v = format!("v{i}");
                dbs[cur].insert(key.clone(), v.clone());
                (vec!["SET".into(), key, v], "+OK\r\n".into())
            }
            3..=5 => {
                let r = bulk(dbs[cur].get(&key));
                (vec!["GET".into(), key], r)
            }
            6 => {
                let n = dbs[cur].get(&key).map_or(0, |v| v.len()) + 1;
                dbs[cur].entry(key.clone()).or_default().push('x');
                (vec!["APPEND".into(), key, "x".into()], format!(":{n}\r\n"))
            }
            7 => {
                let r = format!(":{}\r\n", dbs[cur].len());
                (vec!["DBSIZE".into()], r)
            }
            8 => {
                let n = dbs[cur].remove(&key).is_some() as i32;
                (vec!["DEL".into(), key], format!(":{n}\r\n"))
            }
            9 => {
                cur = other;
                (vec!["SELECT".into(), cur.to_string()], "+OK\r\n".into())
            }
            10 => {
                let moved = dbs[cur].contains_key(&key) && !dbs[other].contains_key(&key);
                if moved {
                    let v = dbs[cur].remove(&key).unwrap();
                    dbs[other].insert(key.clone(), v);
                }
                let argv = vec!["MOVE".into(), key, other.to_string()];
                (argv, format!(":{}\r\n", moved as i32))
            }
            11 => {
                let to = format!("k{}", next(4));
                let copied = dbs[cur].contains_key(&key) && !dbs[other].contains_key(&to);
                if copied {
                    let v = dbs[cur][&key].clone();
                    dbs[other].insert(to.clone(), v);
                }
                let argv = vec!["COPY".into(), key, to, "DB".into(), other.to_string()];
                (argv, format!(":{}\r\n", copied as i32))
            }
            12 => {
                dbs.swap(0, 1);
                (
                    vec!["SWAPDB".into(), "0".into(), "1".into()],
                    "+OK\r\n".into(),
                )
            }
            _ if next(10) == 0 => {
                dbs[cur].clear();
                (vec!["FLUSHDB".into()], "+OK\r\n".into())
            }
            _ => {
                let r = format!(":{}\r\n", dbs[cur].contains_key(&key) as i32);
                (vec!["EXISTS".into(), key], r)
            }
        };
        req.extend(encode_cmd(&argv));
        expected.push_str(&reply);
    }
    let mut c = node.raw();
    c.send(&req);
    c.expect(expected.as_bytes());
    c.check(&["PING"], "+PONG\r\n");
}

#[test]
fn malformed_input_is_a_protocol_error_and_closes() {
    let node = Node::single(&[]);
    let cases: &[(&[u8], &str)] = &[
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*-\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*3000000000\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-1\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$abc\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$99999999999999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\nX4\r\nPING\r\n",
            "-ERR Protocol error: expected '$', got 'X'\r\n",
        ),
        (
            b"*2\r\n$4\r\nECHO\r\n:1\r\n",
            "-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        // Requests before the bad one are answered first.
        (
            b"PING\r\n*abc\r\n",
            "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
        ),
    ];
    for (input, want) in cases {
        let (out, closed) = raw_exchange(&node.client_addr(), input, IO_TIMEOUT);
        assert_eq!(show(&out), show(want.as_bytes()), "input {}", show(input));
        assert!(closed, "connection left open after {}", show(input));
    }
    // The server is fine afterwards.
    node.raw().check(&["PING"], "+PONG\r\n");
}

#[test]
fn bulk_over_proto_max_bulk_len_is_refused_from_its_header() {
    let node = Node::single(&["--proto-max-bulk-len", "4096", "--max-value-size", "1024"]);
    let mut c = node.raw();
    // Only the header: the payload is never sent, the server must not wait for it.
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4097\r\n");
    assert!(
        c.closed_within(IO_TIMEOUT),
        "connection not closed after an oversized bulk header; got {}",
        show(c.pending())
    );
    assert_eq!(
        show(c.pending()),
        show(b"-ERR Protocol error: invalid bulk length\r\n")
    );
    // At the limit the header is accepted (the argument is over --max-value-size: -ERR, but the
    // connection stays).
    let mut c = node.raw();
    let val = vec![b'v'; 4096];
    let reply = c.call(&[&b"SET"[..], b"k", &val]);
    assert!(reply.starts_with(b"-ERR "), "{}", show(&reply));
    c.check(&["PING"], "+PONG\r\n");
    c.check(&["EXISTS", "k"], ":0\r\n");
}

#[test]
fn argument_over_max_value_size_is_an_error_not_a_disconnect() {
    let node = Node::single(&["--max-value-size", "1024"]);
    let mut c = node.raw();
    let too_big = vec![b'v'; 1025];
    let reply = c.call(&[&b"SET"[..], b"k", &too_big]);
    assert!(reply.starts_with(b"-ERR "), "{}", show(&reply));
    c.check(&["PING"], "+PONG\r\n");
    c.check(&["EXISTS", "k"], ":0\r\n");
    // In the middle of a pipeline: the commands around it run.
    let mut req = encode_cmd(&["SET", "a", "1"]);
    req.extend(encode_cmd(&[&b"APPEND"[..], b"a", &too_big]));
    req.extend(encode_cmd(&["INCR", "a"]));
    c.send(&req);
    c.expect(b"+OK\r\n");
    let reply = c.read_reply();
    assert!(reply.starts_with(b"-ERR "), "{}", show(&reply));
    c.expect(b":2\r\n");
    // Inline too.
    let mut inline = b"SET k ".to_vec();
    inline.extend_from_slice(&too_big);
    inline.extend_from_slice(b"\r\n");
    c.send(&inline);
    let reply = c.read_reply();
    assert!(reply.starts_with(b"-ERR "), "{}", show(&reply));
    // Exactly at the limit is fine.
    let ok = vec![b'w'; 1024];
    c.send_cmd(&[&b"SET"[..], b"k", &ok]);
    c.expect(b"+OK\r\n");
    c.send_cmd(&["STRLEN", "k"]);
    c.expect(b":1024\r\n");
}

#[test]
fn key_over_max_key_size_is_an_error() {
    let node = Node::single(&["--max-key-size", "16"]);
    let mut c = node.raw();
    let long = "k".repeat(17);
    let max = "k".repeat(16);
    for argv in [
        vec!["SET", long.as_str(), "v"],
        vec!["GET", long.as_str()],
        vec!["MGET", "a", long.as_str()],
        vec!["DEL", long.as_str()],
    ] {
        let reply = c.call(&argv);
        assert!(reply.starts_with(b"-ERR "), "{argv:?}: {}", show(&reply));
    }
    // Values may still be longer than keys.
    c.check(&["SET", &max, &"v".repeat(100)], "+OK\r\n");
    c.check(&["STRLEN", &max], ":100\r\n");
    c.check(&["DBSIZE"], ":1\r\n");
}

#[test]
fn max_clients_refuses_extra_connections() {
    let node = Node::single(&["--max-clients", "2"]);
    // The harness's own short-lived connections may still count for a moment after closing.
    let admitted = || {
        poll_until(IO_TIMEOUT, "a client slot", || {
            let mut c = node.raw();
            c.send(b"PING\r\n");
            (c.read_reply() == b"+PONG\r\n").then_some(c)
        })
    };
    let mut a = admitted();
    let mut b = admitted();
    b.check(&["PING"], "+PONG\r\n");
    let (out, closed) = raw_exchange(&node.client_addr(), b"PING\r\n", IO_TIMEOUT);
    assert_eq!(show(&out), show(b"-ERR max number of clients reached\r\n"));
    assert!(closed);
    // A slot frees up when a client leaves.
    a.check(&["QUIT"], "+OK\r\n");
    assert!(a.closed_within(IO_TIMEOUT));
    poll_until(IO_TIMEOUT, "a free client slot", || {
        let (out, _) = raw_exchange(&node.client_addr(), b"PING\r\n", IO_TIMEOUT);
        (out == b"+PONG\r\n").then_some(())
    });
}
