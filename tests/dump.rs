//! DUMP / RESTORE and FUNCTION DUMP / RESTORE with real `kvd` processes: payloads byte for byte
//! as redis-server 7.0.15 gives them (compared live when `redis-server` is on PATH, and with
//! payloads first taken from Debian's redis-server 7.0.15 otherwise), RESTORE's errors in
//! Redis's order, TTLs, REPLACE, a restored list waking BLPOP, and RESTORE through a follower
//! giving the same value on every node.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const CONVERGE: Duration = Duration::from_secs(30);

/// The contents of a bulk reply (`None` for a nil); panics on anything else.
#[track_caller]
fn bulk(reply: &[u8]) -> Option<Vec<u8>> {
    if reply == b"$-1\r\n" {
        return None;
    }
    assert_eq!(reply.first(), Some(&b'$'), "not a bulk: {}", show(reply));
    let end = reply.iter().position(|&b| b == b'\r').expect("header end");
    let n: usize = std::str::from_utf8(&reply[1..end])
        .expect("length")
        .parse()
        .expect("length");
    Some(reply[end + 2..end + 2 + n].to_vec())
}

#[track_caller]
fn dump(c: &mut RawConn, key: &str) -> Vec<u8> {
    bulk(&c.call(&["DUMP", key])).unwrap_or_else(|| panic!("DUMP {key}: no such key"))
}

/// CRC-64/Jones bit by bit (independent of kvd's table-driven one), for hand-made payloads.
fn crc64(data: &[u8]) -> u64 {
    let mut crc = 0u64;
    for &b in data {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// `body` with an RDB footer of `version`.
fn payload(body: &[u8], version: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&version.to_le_bytes());
    let crc = crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Commands that build key `k` with one value of each type and encoding DUMP distinguishes.
fn value_builders() -> Vec<Vec<String>> {
    let words = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    let mut v = vec![
        words("SET k hello"),
        words("SET k 12"),
        words("SET k -200"),
        words("SET k 100000"),
        words("SET k 12345678901"),
        vec!["SET".into(), "k".into(), "a".repeat(60)],
        vec!["SET".into(), "k".into(), "hello world ".repeat(30)],
        words("RPUSH k a 1 2 3 foo bar 300 -5 100000 2147483648 9223372036854775807"),
        words("SADD k 1 2 3 -5 70000"),
        words("SADD k 1 2 3 99999999999"),
        words("HSET k a 1 b 2 c hello"),
        words("ZADD k 1 a 2 b 3.5 c -1 d"),
        words("ZADD k 0 a inf b -inf c 1e20 d 0.1 e"),
    ];
    let mut list = words("RPUSH k");
    list.extend((0..3000).map(|i| format!("elem{i}")));
    v.push(list);
    let mut list = words("RPUSH k");
    list.extend((0..200).map(|i| "x".repeat(1 + (i * 37) % 300)));
    v.push(list);
    let mut list = words("RPUSH k");
    list.push("y".repeat(9000));
    list.extend(words("a b"));
    v.push(list);
    let mut ints = words("SADD k");
    ints.extend((0..512).map(|i| (i * 7).to_string()));
    v.push(ints);
    let mut hash = words("HSET k");
    for i in 0..128 {
        hash.extend([format!("f{i:03}"), format!("v{i}")]);
    }
    v.push(hash);
    let mut zset = words("ZADD k");
    for i in 0..128 {
        zset.extend([format!("{}", i as f64 / 3.0), format!("m{i:03}")]);
    }
    v.push(zset);
    let mut zset = words("ZADD k");
    for i in 0..300 {
        zset.extend([i.to_string(), format!("m{i:04}")]);
    }
    v.push(zset);
    v.push(vec![
        "ZADD".into(),
        "k".into(),
        "1".into(),
        "z".repeat(65),
        "2".into(),
        "b".into(),
    ]);
    v
}

#[test]
fn dump_gives_redis_payloads_and_restore_round_trips_them() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    // Payloads as redis-server 7.0.15 gives them.
    c.check(&["SET", "s", "hello"], "+OK\r\n");
    assert_eq!(dump(&mut c, "s"), b"\x00\x05hello\x0a\x00cr\xdfve4 \x0a");
    c.check(&["RPUSH", "l", "a", "1"], ":2\r\n");
    assert_eq!(
        dump(&mut c, "l"),
        b"\x12\x01\x02\x0c\x0c\x00\x00\x00\x02\x00\x81a\x02\x01\x01\xff\x0a\x00\x94\x96+#\xac\x17\xaa\x85"
    );
    c.check(&["SADD", "i", "1", "2", "3", "99999999999"], ":4\r\n");
    assert_eq!(
        dump(&mut c, "i"),
        b"\x0b(\x08\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\xff\xe7vH\x17\x00\x00\x00\x0a\x00\xae\x85oK\xbd\x82R\xc0"
    );
    c.check(&["DUMP", "missing"], "$-1\r\n");

    // Every builder: DUMP, RESTORE under another name, the same DUMP and the same contents.
    for (i, argv) in value_builders().iter().enumerate() {
        c.call(&["DEL", "k", "copy"]);
        let reply = c.call(argv);
        assert!(!reply.starts_with(b"-"), "{argv:?}: {}", show(&reply));
        let p = dump(&mut c, "k");
        c.check(&[&b"RESTORE"[..], b"copy", b"0", &p], "+OK\r\n");
        assert_eq!(show(&dump(&mut c, "copy")), show(&p), "builder {i}");
        let view = |c: &mut RawConn, key: &str| match c.call(&["TYPE", key]).as_slice() {
            b"+string\r\n" => c.call(&["GET", key]),
            b"+list\r\n" => c.call(&["LRANGE", key, "0", "-1"]),
            b"+set\r\n" => c.call(&["SORT", key, "ALPHA"]),
            b"+hash\r\n" => c.call(&["HGETALL", key]),
            b"+zset\r\n" => c.call(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
            other => panic!("type {}", show(other)),
        };
        let (a, b) = (view(&mut c, "k"), view(&mut c, "copy"));
        assert_eq!(show(&a), show(&b), "builder {i}");
        let enc = |c: &mut RawConn, key: &str| c.call(&["OBJECT", "ENCODING", key]);
        assert_eq!(enc(&mut c, "k"), enc(&mut c, "copy"), "builder {i}");
    }

    // A stream with groups, consumers and pending entries round-trips, all of it.
    for i in 1..=250 {
        let id = format!("{}-{}", i * 10, i % 3);
        let (f, v) = (format!("f{}", i % 2), format!("value{i}"));
        c.check(
            &["XADD", "st", &id, &f, &v],
            &format!("${}\r\n{id}\r\n", id.len()),
        );
    }
    c.check(&["XGROUP", "CREATE", "st", "g", "0"], "+OK\r\n");
    c.check(&["XGROUP", "CREATE", "st", "idle", "$"], "+OK\r\n");
    c.call(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "COUNT",
        "3",
        "STREAMS",
        "st",
        ">",
    ]);
    c.call(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "bob",
        "COUNT",
        "2",
        "STREAMS",
        "st",
        ">",
    ]);
    let p = dump(&mut c, "st");
    c.check(&[&b"RESTORE"[..], b"st2", b"0", &p], "+OK\r\n");
    assert_eq!(show(&dump(&mut c, "st2")), show(&p));
    for argv in [
        vec!["XRANGE", "KEY", "-", "+"],
        vec!["XINFO", "GROUPS", "KEY"],
        vec!["XPENDING", "KEY", "g"],
        vec!["XLEN", "KEY"],
    ] {
        let run = |c: &mut RawConn, key: &str| {
            let a: Vec<&str> = argv
                .iter()
                .map(|w| if *w == "KEY" { key } else { w })
                .collect();
            c.call(&a)
        };
        assert_eq!(
            show(&run(&mut c, "st")),
            show(&run(&mut c, "st2")),
            "{argv:?}"
        );
    }

    // A Redis 6.2 payload (quicklist of ziplists, RDB version 9) still loads.
    let ziplist = [
        0x14, 0, 0, 0, 0x0f, 0, 0, 0, 3, 0, 0x00, 0x01, b'a', 0x03, 0xf6, 0x02, 0xc0, 0x2c, 0x01,
        0xff,
    ];
    let mut body = vec![14, 1, ziplist.len() as u8];
    body.extend_from_slice(&ziplist);
    c.check(
        &[&b"RESTORE"[..], b"old", b"0", &payload(&body, 9)],
        "+OK\r\n",
    );
    c.check(
        &["LRANGE", "old", "0", "-1"],
        "*3\r\n$1\r\na\r\n$1\r\n5\r\n$3\r\n300\r\n",
    );
}

#[test]
fn restore_errors_ttl_and_replace_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["SET", "src", "value"], "+OK\r\n");
    let p = dump(&mut c, "src");
    let restore = |c: &mut RawConn, args: &[&[u8]], expected: &str| {
        let mut argv: Vec<&[u8]> = vec![b"RESTORE"];
        argv.extend_from_slice(args);
        c.check(&argv, expected);
    };
    // BUSYKEY comes before the TTL and the payload are looked at.
    restore(
        &mut c,
        &[b"src", b"-1", b"junk"],
        "-BUSYKEY Target key name already exists.\r\n",
    );
    restore(
        &mut c,
        &[b"dst", b"-1", &p],
        "-ERR Invalid TTL value, must be >= 0\r\n",
    );
    restore(
        &mut c,
        &[b"dst", b"x", &p],
        "-ERR value is not an integer or out of range\r\n",
    );
    restore(
        &mut c,
        &[b"dst", b"0", b"junk"],
        "-ERR DUMP payload version or checksum are wrong\r\n",
    );
    let mut flipped = p.clone();
    flipped[2] ^= 1;
    restore(
        &mut c,
        &[b"dst", b"0", &flipped],
        "-ERR DUMP payload version or checksum are wrong\r\n",
    );
    restore(
        &mut c,
        &[b"dst", b"0", &payload(b"\x00\x01x", 11)],
        "-ERR DUMP payload version or checksum are wrong\r\n",
    );
    for body in [
        &[200u8, 0][..],
        &[1, 0],
        &[2, 2, 1, b'x', 1, b'x'],
        &[0, 0x45],
    ] {
        restore(
            &mut c,
            &[b"dst", b"0", &payload(body, 10)],
            "-ERR Bad data format\r\n",
        );
    }
    // With REPLACE there is no BUSYKEY: the TTL and payload errors come at once.
    restore(
        &mut c,
        &[b"src", b"-1", &p, b"REPLACE"],
        "-ERR Invalid TTL value, must be >= 0\r\n",
    );
    restore(
        &mut c,
        &[b"src", b"0", b"junk", b"REPLACE"],
        "-ERR DUMP payload version or checksum are wrong\r\n",
    );
    restore(
        &mut c,
        &[b"src", b"0", &payload(&[1, 0], 10), b"REPLACE"],
        "-ERR Bad data format\r\n",
    );
    c.check(&["GET", "src"], "$5\r\nvalue\r\n");
    restore(
        &mut c,
        &[b"dst", b"0", &p, b"NOPE"],
        "-ERR syntax error\r\n",
    );
    restore(
        &mut c,
        &[b"dst", b"0", &p, b"IDLETIME", b"-1"],
        "-ERR Invalid IDLETIME value, must be >= 0\r\n",
    );
    restore(
        &mut c,
        &[b"dst", b"0", &p, b"FREQ", b"256"],
        "-ERR Invalid FREQ value, must be >= 0 and <= 255\r\n",
    );
    restore(
        &mut c,
        &[b"dst", b"0", &p, b"IDLETIME", b"1", b"FREQ", b"1"],
        "-ERR syntax error\r\n",
    );
    c.check(&["EXISTS", "dst"], ":0\r\n");

    // Relative TTL, ABSTTL, IDLETIME / FREQ accepted, REPLACE.
    restore(
        &mut c,
        &[b"dst", b"5000", &p, b"IDLETIME", b"10"],
        "+OK\r\n",
    );
    let pttl: i64 = String::from_utf8(c.call(&["PTTL", "dst"]))
        .expect("utf-8")
        .trim_start_matches(':')
        .trim()
        .parse()
        .expect("PTTL");
    assert!((1..=5000).contains(&pttl), "PTTL {pttl}");
    let at = (now_ms() + 60_000).to_string();
    restore(
        &mut c,
        &[
            b"dst",
            at.as_bytes(),
            &p,
            b"ABSTTL",
            b"REPLACE",
            b"FREQ",
            b"5",
        ],
        "+OK\r\n",
    );
    c.check(&["PEXPIRETIME", "dst"], &format!(":{at}\r\n"));
    c.check(&["GET", "dst"], "$5\r\nvalue\r\n");
    // Already expired: OK, and the key (replaced) is gone.
    let past = (now_ms() - 1000).to_string();
    restore(
        &mut c,
        &[b"dst", past.as_bytes(), &p, b"ABSTTL", b"REPLACE"],
        "+OK\r\n",
    );
    c.check(&["EXISTS", "dst"], ":0\r\n");
    restore(&mut c, &[b"dst", b"0", &p], "+OK\r\n");
    c.check(&["TTL", "dst"], ":-1\r\n");
    // A RESTORE dirties a WATCHed key.
    let mut watcher = node.raw();
    watcher.check(&["WATCH", "dst"], "+OK\r\n");
    restore(&mut c, &[b"dst", b"0", &p, b"REPLACE"], "+OK\r\n");
    watcher.check(&["MULTI"], "+OK\r\n");
    watcher.check(&["GET", "dst"], "+QUEUED\r\n");
    watcher.check(&["EXEC"], "*-1\r\n");
    // RESTORE ... REPLACE over another type.
    c.check(&["RPUSH", "lst", "a"], ":1\r\n");
    restore(&mut c, &[b"lst", b"0", &p, b"REPLACE"], "+OK\r\n");
    c.check(&["TYPE", "lst"], "+string\r\n");
    // Arity.
    c.check(
        &["RESTORE", "a", "0"],
        "-ERR wrong number of arguments for 'restore' command\r\n",
    );
    c.check(
        &["DUMP"],
        "-ERR wrong number of arguments for 'dump' command\r\n",
    );
}

#[test]
fn restored_list_wakes_a_blocked_client_and_raises_the_restore_event() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["RPUSH", "src", "x", "y"], ":2\r\n");
    let p = dump(&mut c, "src");
    let mut events = node.raw();
    events.check(
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
        "+OK\r\n",
    );
    events.check(
        &["SUBSCRIBE", "__keyevent@0__:restore"],
        "*3\r\n$9\r\nsubscribe\r\n$22\r\n__keyevent@0__:restore\r\n:1\r\n",
    );
    let mut blocked = node.raw();
    blocked.send_cmd(&["BLPOP", "queue", "0"]);
    poll_until(CONVERGE, "BLPOP to block", || {
        let info = String::from_utf8(c.call(&["INFO", "clients"])).ok()?;
        info.contains("blocked_clients:1").then_some(())
    });
    c.check(&[&b"RESTORE"[..], b"queue", b"0", &p], "+OK\r\n");
    blocked.expect(b"*2\r\n$5\r\nqueue\r\n$1\r\nx\r\n");
    events.expect(b"*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:restore\r\n$5\r\nqueue\r\n");
    c.check(&["LRANGE", "queue", "0", "-1"], "*1\r\n$1\r\ny\r\n");
}

#[test]
fn restore_through_a_follower_gives_the_same_value_on_every_node() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(CONVERGE);
    let follower = (leader + 1) % 3;
    let mut fc = c.node(follower).raw();
    let mut members = vec!["ZADD".to_string(), "z".to_string()];
    for i in 0..500 {
        members.extend([format!("{}", i * 3 % 97), format!("member:{i}")]);
    }
    fc.call(&members);
    let p = dump(&mut fc, "z");
    fc.check(&[&b"RESTORE"[..], b"z2", b"100000", &p], "+OK\r\n");
    for i in 0..3 {
        let mut nc = c.node(i).raw();
        let got = poll_until(CONVERGE, "the restored key on every node", || {
            bulk(&nc.call(&["DUMP", "z2"]))
        });
        assert_eq!(show(&got), show(&p), "node {i}");
        let t = nc.call(&["PEXPIRETIME", "z2"]);
        assert!(t.starts_with(b":") && t != b":-1\r\n", "{}", show(&t));
    }
}

#[test]
fn function_dump_and_restore_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let code = "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)";
    c.check(&["FUNCTION", "LOAD", code], "$5\r\nmylib\r\n");
    let p = bulk(&c.call(&["FUNCTION", "DUMP"])).expect("payload");
    // redis-server 7.0.15's payload for this library.
    assert_eq!(
        show(&p),
        show(b"\xf5\xc3@V@[\x1f#!lua name=mylib\nredis.register_\x0bfunction('my@\x0b\x02', @\x06`\x12\x11keys, args) return`\x0c\x07[1] end)\n\x00\x8dY6\xad\xc6\xe7\x07\xda")
    );
    let fr = |c: &mut RawConn, extra: &[&[u8]], expected: &str| {
        let mut argv: Vec<&[u8]> = vec![b"FUNCTION", b"RESTORE"];
        argv.extend_from_slice(extra);
        c.check(&argv, expected);
    };
    fr(&mut c, &[&p], "-ERR Library mylib already exists\r\n");
    fr(
        &mut c,
        &[&p, b"SOMETIMES"],
        "-ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.\r\n",
    );
    fr(
        &mut c,
        &[b"junk"],
        "-ERR DUMP payload version or checksum are wrong\r\n",
    );
    fr(
        &mut c,
        &[&payload(b"\x00\x01x", 10)],
        "-ERR given type is not a function\r\n",
    );
    fr(&mut c, &[&p, b"REPLACE"], "+OK\r\n");
    c.check(&["FUNCTION", "FLUSH"], "+OK\r\n");
    c.check(
        &["FCALL", "myfunc", "0", "hi"],
        "-ERR Function not found\r\n",
    );
    fr(&mut c, &[&p], "+OK\r\n");
    c.check(&["FCALL", "myfunc", "0", "hi"], "$2\r\nhi\r\n");
    // FLUSH drops the others; a clash of function names fails and changes nothing.
    let other = "#!lua name=other\nredis.register_function('otherfunc', function() return 2 end)";
    c.check(&["FUNCTION", "LOAD", other], "$5\r\nother\r\n");
    fr(&mut c, &[&p, b"FLUSH"], "+OK\r\n");
    c.check(&["FCALL", "otherfunc", "0"], "-ERR Function not found\r\n");
    let clash = "#!lua name=clash\nredis.register_function('myfunc', function() return 3 end)";
    c.check(&["FUNCTION", "FLUSH"], "+OK\r\n");
    c.check(&["FUNCTION", "LOAD", clash], "$5\r\nclash\r\n");
    fr(&mut c, &[&p], "-ERR Function myfunc already exists\r\n");
    c.check(&["FCALL", "myfunc", "0", "x"], ":3\r\n");
}

/// `redis-server` on PATH, if there is one.
fn redis_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

#[test]
fn payloads_match_a_live_redis_server() {
    let Some(bin) = redis_server() else {
        eprintln!("redis-server not on PATH: comparison skipped");
        return;
    };
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--bind", "127.0.0.1", "--daemonize", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let _guard = KillOnDrop(child);
    let addr = format!("127.0.0.1:{port}");
    poll_until(CONVERGE, "redis-server to answer", || {
        ping(&addr).then_some(())
    });
    let mut redis = RawConn::connect(&addr);
    let node = Node::single(&[]);
    let mut kvd = node.raw();
    for argv in value_builders() {
        redis.call(&["DEL", "k", "copy"]);
        kvd.call(&["DEL", "k", "copy"]);
        assert_eq!(show(&redis.call(&argv)), show(&kvd.call(&argv)), "{argv:?}");
        let from_redis = dump(&mut redis, "k");
        assert_eq!(
            show(&dump(&mut kvd, "k")),
            show(&from_redis),
            "DUMP after {:?}",
            &argv[..argv.len().min(4)]
        );
        // Redis's payload restored into kvd dumps the same again.
        kvd.check(&[&b"RESTORE"[..], b"copy", b"0", &from_redis], "+OK\r\n");
        assert_eq!(show(&dump(&mut kvd, "copy")), show(&from_redis));
    }
    // Values whose Redis encoding kvd writes in another order (hash tables, insertion
    // order) still restore in both directions with the same contents.
    let mut big_hash = vec!["HSET".to_string(), "h".to_string()];
    for i in (0..300).rev() {
        big_hash.extend([format!("field{i}"), format!("{i}")]);
    }
    for argv in [
        big_hash,
        vec![
            "SADD".into(),
            "h".into(),
            "b".into(),
            "a".into(),
            "c".into(),
        ],
    ] {
        redis.call(&["DEL", "h", "back"]);
        kvd.call(&["DEL", "h", "back"]);
        redis.call(&argv);
        kvd.call(&argv);
        let from_redis = dump(&mut redis, "h");
        let from_kvd = dump(&mut kvd, "h");
        kvd.check(&[&b"RESTORE"[..], b"back", b"0", &from_redis], "+OK\r\n");
        redis.check(&[&b"RESTORE"[..], b"back", b"0", &from_kvd], "+OK\r\n");
        let digest = |c: &mut RawConn| {
            if c.call(&["TYPE", "back"]) == b"+hash\r\n" {
                let mut v = c.call(&["HLEN", "back"]);
                v.extend(c.call(&["HMGET", "back", "field0", "field150", "field299"]));
                v
            } else {
                c.call(&["SORT", "back", "ALPHA"])
            }
        };
        assert_eq!(digest(&mut redis), digest(&mut kvd));
    }
    // Streams built by XADD, with groups: the same payload; with pending entries (whose
    // times are each server's clock), Redis's payload restores in kvd and dumps the same.
    for c in [&mut redis, &mut kvd] {
        c.call(&["DEL", "st"]);
        for i in 1..=400 {
            let id = format!("{}-{}", i * 10, i % 5);
            let value = format!("v{}", i * 7919 % 1000);
            if i % 7 == 0 {
                c.call(&["XADD", "st", &id, "other", &value]);
            } else {
                c.call(&["XADD", "st", &id, "a", &i.to_string(), "b", &value]);
            }
        }
        c.check(&["XGROUP", "CREATE", "st", "g", "0"], "+OK\r\n");
    }
    assert_eq!(show(&dump(&mut kvd, "st")), show(&dump(&mut redis, "st")));
    redis.call(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "COUNT",
        "3",
        "STREAMS",
        "st",
        ">",
    ]);
    redis.call(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "bob",
        "COUNT",
        "2",
        "STREAMS",
        "st",
        ">",
    ]);
    let from_redis = dump(&mut redis, "st");
    kvd.check(
        &[&b"RESTORE"[..], b"st", b"0", &from_redis, b"REPLACE"],
        "+OK\r\n",
    );
    assert_eq!(show(&dump(&mut kvd, "st")), show(&from_redis));
    for argv in [
        &["XINFO", "GROUPS", "st"][..],
        &["XPENDING", "st", "g"],
        &["XRANGE", "st", "-", "+", "COUNT", "20"],
    ] {
        assert_eq!(show(&kvd.call(argv)), show(&redis.call(argv)), "{argv:?}");
    }

    // FUNCTION DUMP of one library is the same payload.
    let code = "#!lua name=cmp\nredis.register_function('cmpf', function() return 1 end)";
    for c in [&mut redis, &mut kvd] {
        c.call(&["FUNCTION", "FLUSH"]);
        c.check(&["FUNCTION", "LOAD", code], "$3\r\ncmp\r\n");
    }
    let a = bulk(&redis.call(&["FUNCTION", "DUMP"])).expect("payload");
    let b = bulk(&kvd.call(&["FUNCTION", "DUMP"])).expect("payload");
    assert_eq!(show(&a), show(&b));
}
