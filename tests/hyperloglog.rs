//! HyperLogLogs with real `kvd` processes: values in Redis's own string representation (the
//! expected bytes and counts were taken from Debian's redis-server 7.0.15 for the same
//! commands), the cached count PFCOUNT stores, Redis's errors for values that are not, or are
//! broken, HyperLogLogs, and a 3-node cluster that holds the same bytes on every node.

mod common;

use std::time::Duration;

use common::*;

/// Redis 7.0.15 after `PFADD x a b c` (sparse, cached count stale), then after `PFCOUNT x`.
const ABC: &[u8] =
    b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80`\xf3\x80P\xb1\x84K\xfb\x80BZ";
const ABC_COUNTED: &[u8] =
    b"HYLL\x01\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00`\xf3\x80P\xb1\x84K\xfb\x80BZ";

fn bulk(b: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", b.len()).into_bytes();
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
    out
}

#[test]
fn hyperloglogs_are_redis_s_bytes_and_counts() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["PFADD", "x", "a", "b", "c"], ":1\r\n");
    assert_eq!(c.call(&["GET", "x"]), bulk(ABC));
    c.check(&["PFADD", "x", "a", "b", "c"], ":0\r\n");
    c.check(&["PFCOUNT", "x"], ":3\r\n");
    assert_eq!(
        c.call(&["GET", "x"]),
        bulk(ABC_COUNTED),
        "the count is cached"
    );
    // A value written by redis-server counts the same here.
    c.send_cmd(&[&b"SET"[..], b"copy", ABC]);
    c.expect(b"+OK\r\n");
    c.check(&["PFCOUNT", "copy"], ":3\r\n");
    // Without elements: creates the key (1) once.
    c.check(&["PFADD", "empty"], ":1\r\n");
    c.check(&["PFADD", "empty"], ":0\r\n");
    c.check(&["PFCOUNT", "empty"], ":0\r\n");
    c.check(&["PFCOUNT", "nokey"], ":0\r\n");
    // 300 elements stay sparse (698 bytes in Redis); 5000 go dense (12304 bytes): the counts
    // Redis gives for the same elements.
    let few: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let mut argv = vec!["PFADD".to_string(), "few".into()];
    argv.extend(few);
    c.check(&argv, ":1\r\n");
    c.check(&["STRLEN", "few"], ":698\r\n");
    c.check(&["PFCOUNT", "few"], ":302\r\n");
    c.check(&["PFDEBUG", "ENCODING", "few"], "+sparse\r\n");
    let many: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
    let mut argv = vec!["PFADD".to_string(), "many".into()];
    argv.extend(many);
    c.check(&argv, ":1\r\n");
    c.check(&["STRLEN", "many"], ":12304\r\n");
    c.check(&["PFCOUNT", "many"], ":4985\r\n");
    c.check(&["PFDEBUG", "ENCODING", "many"], "+dense\r\n");
    // Union counts, with and without a destination.
    c.check(&["PFCOUNT", "few", "many", "nokey"], ":4985\r\n");
    c.check(&["PFMERGE", "both", "few", "x"], "+OK\r\n");
    c.check(&["PFCOUNT", "both"], ":305\r\n");
    c.check(&["PFMERGE", "dense", "few", "many"], "+OK\r\n");
    c.check(&["PFDEBUG", "ENCODING", "dense"], "+dense\r\n");
    c.check(&["PFDEBUG", "TODENSE", "few"], ":1\r\n");
    c.check(&["PFDEBUG", "TODENSE", "few"], ":0\r\n");
    c.check(&["PFCOUNT", "few"], ":302\r\n");
    c.check(
        &["PFDEBUG", "DECODE", "few"],
        "-ERR HLL encoding is not sparse\r\n",
    );
    c.check(&["PFDEBUG", "DECODE", "empty"], "+Z:16384\r\n");
    c.check(
        &["PFDEBUG", "ENCODING", "nokey"],
        "-ERR The specified key does not exist\r\n",
    );
    c.check(
        &["PFDEBUG", "WHAT", "few"],
        "-ERR Unknown PFDEBUG subcommand 'WHAT'\r\n",
    );
    c.check(&["PFSELFTEST"], "+OK\r\n");
    // The TTL of a key survives PFADD.
    c.check(&["EXPIRE", "x", "100"], ":1\r\n");
    c.check(&["PFADD", "x", "d"], ":1\r\n");
    c.check(&["TTL", "x"], ":100\r\n");
}

#[test]
fn values_that_are_not_hyperloglogs_get_redis_s_errors() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let not_hll = "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n";
    let wrongtype = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    let corrupt = "-INVALIDOBJ Corrupted HLL object detected\r\n";
    c.check(&["SET", "s", "bar"], "+OK\r\n");
    c.check(&["PFADD", "s", "1"], not_hll);
    c.check(&["PFCOUNT", "s"], not_hll);
    c.check(&["PFMERGE", "d", "s"], not_hll);
    c.check(&["PFMERGE", "s", "d"], not_hll);
    c.check(&["SADD", "set", "a"], ":1\r\n");
    c.check(&["PFADD", "set", "1"], wrongtype);
    // Extra bytes at the tail of a sparse value: corrupt.
    c.check(&["PFADD", "h", "a", "b", "c"], ":1\r\n");
    c.check(&["APPEND", "h", "hello"], ":32\r\n");
    c.check(&["PFCOUNT", "h"], corrupt);
    c.check(&["PFCOUNT", "h", "h"], corrupt);
    // A broken magic, an unknown encoding, a dense value of the wrong length: not HLLs.
    for (at, bytes) in [("0", "0123"), ("4", "x"), ("4", "\x00")] {
        c.check(&["DEL", "h"], ":1\r\n");
        c.check(&["PFADD", "h", "a", "b", "c"], ":1\r\n");
        c.call(&["SETRANGE", "h", at, bytes]);
        c.check(&["PFCOUNT", "h"], not_hll);
    }
    // Random damage never takes the node down.
    let mut seed = 7u64;
    for round in 0..200 {
        c.check(&["DEL", "f"], if round == 0 { ":0\r\n" } else { ":1\r\n" });
        let items: Vec<String> = (0..(round * 13 % 700))
            .map(|i| format!("{round}-{i}"))
            .collect();
        let mut argv = vec!["PFADD".to_string(), "f".into()];
        argv.extend(items);
        c.call(&argv);
        let len: usize = String::from_utf8_lossy(&c.call(&["STRLEN", "f"]))
            .trim_start_matches(':')
            .trim()
            .parse()
            .expect("strlen");
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pos = (seed >> 33) as usize % len.max(1);
        let byte = [(seed >> 24) as u8];
        c.send_cmd(&[&b"SETRANGE"[..], b"f", pos.to_string().as_bytes(), &byte]);
        c.read_reply();
        c.call(&["PFCOUNT", "f"]);
        c.call(&["PFADD", "f", "more"]);
    }
    c.check(&["PING"], "+PONG\r\n");
}

#[test]
fn every_node_holds_the_same_hyperloglog_bytes() {
    let c = Cluster::start(3, &[]);
    let mut conns: Vec<RawConn> = (0..3).map(|i| c.node(i).raw()).collect();
    for step in 0..90usize {
        let node = step % 3;
        let key = format!("h{}", step % 4);
        let items: Vec<String> = (0..(step * 37 % 400))
            .map(|i| format!("{step}:{i}"))
            .collect();
        let mut argv = vec!["PFADD".to_string(), key.clone()];
        argv.extend(items);
        let reply = conns[node].call(&argv);
        assert!(reply.starts_with(b":"), "{}", show(&reply));
        if step % 5 == 0 {
            conns[node].call(&["PFCOUNT", &key]);
        }
        if step % 7 == 0 {
            conns[node].check(&["PFMERGE", "all", "h0", "h1", "h2", "h3"], "+OK\r\n");
        }
    }
    let values = poll_until(
        Duration::from_secs(60),
        "the same bytes on every node",
        || {
            let per_node: Vec<Vec<u8>> = (0..3)
                .map(|i| {
                    let mut r = c.node(i).raw();
                    ["h0", "h1", "h2", "h3", "all"]
                        .iter()
                        .flat_map(|k| r.call(&["GET", k]))
                        .collect()
                })
                .collect();
            per_node
                .windows(2)
                .all(|w| w[0] == w[1])
                .then(|| per_node[0].clone())
        },
    );
    assert!(values.len() > 5 * 1000, "values are there");
}
