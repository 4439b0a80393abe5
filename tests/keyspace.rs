//! Keyspace commands with real `kvd` processes: SCAN's guarantee across memtable flushes and
//! across nodes, RENAME/RENAMENX/COPY/MOVE (expiry moves with the key), TOUCH, RANDOMKEY and
//! OBJECT, replies byte for byte as redis-server 7.0 gives them (each expected text was first
//! taken from Debian's redis-server 7.0.15).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

const CONVERGE: Duration = Duration::from_secs(30);

/// Parses a SCAN reply: (next cursor, keys).
fn scan_once(c: &mut RawConn, cursor: &str, extra: &[&str]) -> (String, Vec<String>) {
    let mut argv = vec!["SCAN", cursor];
    argv.extend_from_slice(extra);
    let raw = String::from_utf8(c.call(&argv)).expect("utf-8 reply");
    // *2 $len cursor *n ($len key)*
    let lines: Vec<&str> = raw.split("\r\n").collect();
    assert_eq!(lines[0], "*2", "{raw}");
    let next = lines[2].to_string();
    let n: usize = lines[3][1..].parse().expect("key count");
    let keys = (0..n).map(|i| lines[5 + 2 * i].to_string()).collect();
    (next, keys)
}

#[test]
fn scan_returns_every_key_once_the_iteration_ends_across_flushes_and_nodes() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(CONVERGE);
    let mut lc = c.node(leader).raw();
    let all: BTreeSet<String> = (0..500).map(|i| format!("key:{i}")).collect();
    for k in &all {
        lc.check(&["SET", k, "v"], "+OK\r\n");
    }
    for i in 0..3 {
        poll_until(CONVERGE, "replication", || {
            (c.node(i).raw().call(&["DBSIZE"]) == b":500\r\n").then_some(())
        });
    }
    // Walk with small steps, switching nodes at every step and pausing past the memtable's
    // flush interval halfway: every key present throughout must come back.
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut steps = 0;
    loop {
        let mut con = c.node(steps % 3).raw();
        let (next, keys) = scan_once(&mut con, &cursor, &["COUNT", "20"]);
        assert!(
            keys.len() <= 60,
            "a step of COUNT 20 returned {} keys",
            keys.len()
        );
        seen.extend(keys);
        steps += 1;
        if steps == 10 {
            std::thread::sleep(Duration::from_millis(700));
            // New keys during the iteration may or may not be returned; old ones must.
            lc.check(&["SET", "late", "v"], "+OK\r\n");
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
        assert!(steps < 1000, "SCAN did not end");
    }
    assert!(steps > 5, "expected several steps, got {steps}");
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "keys never returned: {missing:?}");
    // MATCH and TYPE filter; the cursor still walks everything.
    let (_, some) = scan_once(&mut lc, "0", &["COUNT", "1000", "MATCH", "key:1?"]);
    assert_eq!(some.len(), 10, "{some:?}");
    let (_, none) = scan_once(&mut lc, "0", &["COUNT", "1000", "TYPE", "hash"]);
    assert!(none.is_empty());
    lc.check(&["SCAN", "x"], "-ERR invalid cursor\r\n");
    lc.check(&["SCAN", "0", "COUNT", "0"], "-ERR syntax error\r\n");
    lc.check(
        &["SCAN", "0", "COUNT", "x"],
        "-ERR value is not an integer or out of range\r\n",
    );
    lc.check(&["SCAN", "0", "MATCH"], "-ERR syntax error\r\n");
}

#[test]
fn rename_copy_move_touch_object_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let same = "-ERR source and destination objects are the same\r\n";
    let script: &[(&[&str], &str)] = &[
        (&["RENAME", "nokey", "x"], "-ERR no such key\r\n"),
        (&["SET", "a", "1"], "+OK\r\n"),
        (&["RENAME", "a", "a"], "+OK\r\n"),
        (&["RENAMENX", "a", "a"], ":0\r\n"),
        (&["SET", "b", "2"], "+OK\r\n"),
        (&["RENAMENX", "a", "b"], ":0\r\n"),
        (&["RENAME", "a", "b"], "+OK\r\n"),
        (&["GET", "b"], "$1\r\n1\r\n"),
        (&["EXISTS", "a"], ":0\r\n"),
        // The TTL moves with the key, and the target's is not inherited.
        (&["SET", "t", "v", "EX", "100"], "+OK\r\n"),
        (&["RENAME", "t", "t2"], "+OK\r\n"),
        (&["TTL", "t2"], ":100\r\n"),
        (&["SET", "t3", "v", "EX", "50"], "+OK\r\n"),
        (&["SET", "t4", "x"], "+OK\r\n"),
        (&["RENAME", "t4", "t3"], "+OK\r\n"),
        (&["TTL", "t3"], ":-1\r\n"),
        (&["COPY", "t3", "t3"], same),
        (&["COPY", "t2", "c1"], ":1\r\n"),
        (&["TTL", "c1"], ":100\r\n"),
        (&["COPY", "nokey", "c2"], ":0\r\n"),
        (&["COPY", "t3", "c1"], ":0\r\n"),
        (&["COPY", "t3", "c1", "REPLACE"], ":1\r\n"),
        (&["TTL", "c1"], ":-1\r\n"),
        (
            &["COPY", "t3", "c1", "DB", "20"],
            "-ERR DB index is out of range\r\n",
        ),
        (
            &["COPY", "t3", "c1", "DB", "x"],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (&["COPY", "t3", "c1", "DB", "1"], ":1\r\n"),
        (&["COPY", "t3", "c1", "foo"], "-ERR syntax error\r\n"),
        (&["MOVE", "t3", "0"], same),
        (&["MOVE", "t3", "99"], "-ERR DB index is out of range\r\n"),
        (&["MOVE", "t3", "1"], ":1\r\n"),
        (&["MOVE", "c1", "1"], ":0\r\n"),
        (&["MOVE", "nokey", "1"], ":0\r\n"),
        (&["TOUCH", "b", "c1", "nokey", "t2"], ":3\r\n"),
        (&["SELECT", "1"], "+OK\r\n"),
        (&["GET", "t3"], "$1\r\nx\r\n"),
        (&["DBSIZE"], ":2\r\n"),
        (&["SELECT", "0"], "+OK\r\n"),
        (&["EXISTS", "t3"], ":0\r\n"),
        (&["OBJECT", "ENCODING", "b"], "$3\r\nint\r\n"),
        (&["SET", "e", "12345678901234567890"], "+OK\r\n"),
        (&["OBJECT", "ENCODING", "e"], "$6\r\nembstr\r\n"),
        (&["SET", "r", &"a".repeat(45)], "+OK\r\n"),
        (&["OBJECT", "ENCODING", "r"], "$3\r\nraw\r\n"),
        (&["OBJECT", "ENCODING", "nokey"], "$-1\r\n"),
        (&["OBJECT", "REFCOUNT", "b"], ":2147483647\r\n"),
        (&["OBJECT", "REFCOUNT", "r"], ":1\r\n"),
        (&["OBJECT", "IDLETIME", "b"], ":0\r\n"),
        (
            &["OBJECT", "foo", "b"],
            "-ERR unknown subcommand 'foo'. Try OBJECT HELP.\r\n",
        ),
        (
            &["OBJECT"],
            "-ERR wrong number of arguments for 'object' command\r\n",
        ),
    ];
    for (argv, want) in script {
        let got = c.call(argv);
        assert_eq!(String::from_utf8_lossy(&got), *want, "reply to {argv:?}");
    }
    // RANDOMKEY: some existing key, nil on an empty database.
    let k = String::from_utf8(c.call(&["RANDOMKEY"])).unwrap();
    assert!(k.starts_with('$') && k != "$-1\r\n", "{k}");
    c.check(&["SELECT", "5"], "+OK\r\n");
    c.check(&["RANDOMKEY"], "$-1\r\n");
}

#[test]
fn memory_usage_estimates_from_rows_and_checks_its_arguments_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["MEMORY", "USAGE", "nokey"], "$-1\r\n");
    c.check(&["SET", "s", "hello"], "+OK\r\n");
    c.check(&["HSET", "h", "a", "1", "b", "2"], ":2\r\n");
    let size = |c: &mut RawConn, key: &str| -> i64 {
        let r = c.call(&["MEMORY", "USAGE", key, "SAMPLES", "0"]);
        String::from_utf8_lossy(&r[1..r.len() - 2])
            .parse()
            .expect("integer")
    };
    let (s, h) = (size(&mut c, "s"), size(&mut c, "h"));
    assert!(s > 5 && h > s, "string {s}, hash {h}");
    c.check(&["HSET", "h", "c", "3"], ":1\r\n");
    assert!(size(&mut c, "h") > h, "grows with members");
    c.check(
        &["MEMORY", "USAGE", "s", "SAMPLES", "x"],
        "-ERR value is not an integer or out of range\r\n",
    );
    c.check(&["MEMORY", "USAGE", "s", "extra"], "-ERR syntax error\r\n");
    c.check(
        &["MEMORY", "FOO"],
        "-ERR unknown subcommand 'FOO'. Try MEMORY HELP.\r\n",
    );
    c.check(&["MEMORY", "PURGE"], "+OK\r\n");
}

/// What node `i` holds in logical database `db`: its keys (sorted), a hash, a TTL and DBSIZE,
/// replies with their line ends shown as `|`.
fn db_state(c: &Cluster, i: usize, db: &str) -> String {
    let mut con = c.node(i).raw();
    con.check(&["SELECT", db], "+OK\r\n");
    let text = |r: Vec<u8>| String::from_utf8_lossy(&r).replace("\r\n", "|");
    let raw = String::from_utf8_lossy(&con.call(&["KEYS", "*"])).to_string();
    let mut keys: Vec<&str> = raw
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
        .collect();
    keys.sort();
    let ttl = text(con.call(&["TTL", "t"]));
    let ttl = match ttl
        .trim_start_matches(':')
        .trim_end_matches('|')
        .parse::<i64>()
    {
        Ok(900..=1000) => "900..1000".to_string(),
        _ => ttl,
    };
    format!(
        "keys={keys:?} h={} ttl={ttl} dbsize={}",
        text(con.call(&["HGET", "h", "f"])),
        text(con.call(&["DBSIZE"])),
    )
}

/// Waits until every listed node's view of databases 0..4 and its DIGEST agree; returns it.
fn wait_same(c: &Cluster, nodes: &[usize]) -> String {
    poll_until(CONVERGE, "nodes to agree", || {
        let views: Vec<String> = nodes
            .iter()
            .map(|&i| {
                let dbs: Vec<String> = (0..4).map(|d| db_state(c, i, &d.to_string())).collect();
                format!("{dbs:?} {}", show(&c.node(i).raw().call(&["DIGEST"])))
            })
            .collect();
        views
            .windows(2)
            .all(|w| w[0] == w[1])
            .then(|| views[0].clone())
    })
}

#[test]
fn swapdb_is_replicated_survives_restart_and_snapshot_and_wakes_blocked_clients() {
    let compact = ["--compact-entries", "200", "--compact-keep", "20"];
    let mut c = Cluster::start(3, &compact);
    let leader = c.wait_for_leader(CONVERGE);
    let f = (0..3).find(|&i| i != leader).unwrap();
    let mut fc = c.node(f).raw();
    // db0: a string; db1: a string, a hash, a key with a TTL; db2 empty, db3 a list.
    fc.check(&["SET", "a", "in0"], "+OK\r\n");
    fc.check(&["SELECT", "1"], "+OK\r\n");
    fc.check(&["SET", "a", "in1"], "+OK\r\n");
    fc.check(&["HSET", "h", "f", "hv1"], ":1\r\n");
    fc.check(&["SET", "t", "v", "EX", "1000"], "+OK\r\n");
    fc.check(&["SELECT", "3"], "+OK\r\n");
    fc.check(&["RPUSH", "l", "x", "y"], ":2\r\n");
    // A client blocked in db2 on `l` (on another follower): db3's list arrives by SWAPDB.
    let other = (0..3).find(|&i| i != leader && i != f).unwrap();
    let mut blocked = c.node(other).raw();
    blocked.check(&["SELECT", "2"], "+OK\r\n");
    blocked.send_cmd(&["BLPOP", "l", "0"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(blocked.pending().is_empty(), "BLPOP answered early");
    fc.check(&["SWAPDB", "0", "1"], "+OK\r\n");
    fc.check(&["SWAPDB", "2", "3"], "+OK\r\n");
    assert_eq!(
        show(&blocked.read_reply()),
        show(b"*2\r\n$1\r\nl\r\n$1\r\nx\r\n")
    );
    let db0 = r#"keys=["a", "h", "t"] h=$3|hv1| ttl=900..1000 dbsize=:3|"#;
    let want = [
        db0,
        r#"keys=["a"] h=$-1| ttl=:-2| dbsize=:1|"#,
        r#"keys=["l"] h=$-1| ttl=:-2| dbsize=:1|"#,
        r#"keys=[] h=$-1| ttl=:-2| dbsize=:0|"#,
    ];
    let agreed = wait_same(&c, &[0, 1, 2]);
    for (d, w) in want.iter().enumerate() {
        let got = db_state(&c, leader, &d.to_string());
        assert_eq!(got, *w, "db{d} on the leader; all nodes: {agreed}");
    }
    assert_eq!(
        show(&c.node(f).raw().call(&["GET", "a"])),
        show(b"$3\r\nin1\r\n")
    );
    let info = c.node(other).info("keyspace").unwrap_or_default();
    assert!(
        info.contains("db0:keys=3,expires=1,") && info.contains("db1:keys=1,expires=0,"),
        "{info}"
    );
    // Writes after the swap land in the swapped databases.
    fc.check(&["SELECT", "0"], "+OK\r\n");
    fc.check(&["HSET", "h", "g", "2"], ":1\r\n");
    // A follower restarted (past a memtable flush) maps the same way.
    std::thread::sleep(Duration::from_millis(700));
    c.nodes[other].kill9();
    c.nodes[other].restart();
    c.nodes[other].wait_ready(CONVERGE);
    wait_same(&c, &[0, 1, 2]);
    assert_eq!(
        show(&c.node(other).raw().call(&["HGET", "h", "g"])),
        show(b"$1\r\n2\r\n")
    );
    // A new node that catches up from a snapshot too.
    {
        let mut con = c.node(leader).conn();
        let mut pipe = redis::pipe();
        pipe.cmd("SELECT").arg(9);
        for i in 0..1000 {
            pipe.cmd("SET").arg(format!("pad{i}")).arg("x");
        }
        let _: () = pipe.query(&mut con).expect("pipelined SETs");
    }
    poll_until(CONVERGE, "the leader to compact its log", || {
        (c.node(leader).info_u64("raft", "raft_first_index")? > 100).then_some(())
    });
    let mut e = args(&compact);
    e.extend(args(&["--join", &c.node(f).client_addr()]));
    let n3 = Node::start("node3", c.dir(), &e);
    c.nodes.push(n3);
    c.wait_formed(4, CONVERGE);
    let all = wait_same(&c, &[0, 1, 2, 3]);
    assert!(c.node(3).log().contains("installed snapshot"));
    assert_eq!(db_state(&c, 3, "0"), db0, "{all}");
    assert_eq!(
        show(&c.node(3).raw().call(&["HGET", "h", "g"])),
        show(b"$1\r\n2\r\n")
    );
    // And swapping back through the new node moves the data back everywhere.
    c.node(3).raw().check(&["SWAPDB", "1", "0"], "+OK\r\n");
    wait_same(&c, &[0, 1, 2, 3]);
    assert_eq!(
        show(&c.node(other).raw().call(&["GET", "a"])),
        show(b"$3\r\nin0\r\n")
    );
}

#[test]
fn swapdb_watch_and_errors_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let script: &[(&[&str], &str)] = &[
        (
            &["SWAPDB", "0"],
            "-ERR wrong number of arguments for 'swapdb' command\r\n",
        ),
        (&["SWAPDB", "x", "1"], "-ERR invalid first DB index\r\n"),
        (&["SWAPDB", "0", "x"], "-ERR invalid second DB index\r\n"),
        (&["SWAPDB", "x", "y"], "-ERR invalid first DB index\r\n"),
        (&["SWAPDB", "0", "16"], "-ERR DB index is out of range\r\n"),
        (&["SWAPDB", "-1", "0"], "-ERR DB index is out of range\r\n"),
        (
            &["SWAPDB", "99999999999", "0"],
            "-ERR invalid first DB index\r\n",
        ),
        (
            &["SWAPDB", "0", "99999999999"],
            "-ERR invalid second DB index\r\n",
        ),
        (&["SWAPDB", "3", "3"], "+OK\r\n"),
        (
            &["MOVE", "b", "99999999999"],
            "-ERR value is out of range, value must between -2147483648 and 2147483647\r\n",
        ),
        // A watched key present in either database: EXEC aborts.
        (&["SET", "x", "1"], "+OK\r\n"),
        (&["WATCH", "x"], "+OK\r\n"),
        (&["SWAPDB", "0", "1"], "+OK\r\n"),
        (&["MULTI"], "+OK\r\n"),
        (&["EXEC"], "*-1\r\n"),
        (&["SELECT", "1"], "+OK\r\n"),
        (&["SET", "y", "1"], "+OK\r\n"),
        (&["SELECT", "0"], "+OK\r\n"),
        (&["WATCH", "y"], "+OK\r\n"),
        (&["SWAPDB", "0", "1"], "+OK\r\n"),
        (&["MULTI"], "+OK\r\n"),
        (&["EXEC"], "*-1\r\n"),
        // Inside a transaction, the commands after SWAPDB see the swapped data.
        (&["MULTI"], "+OK\r\n"),
        (&["SWAPDB", "0", "1"], "+QUEUED\r\n"),
        (&["GET", "x"], "+QUEUED\r\n"),
        (&["EXEC"], "*2\r\n+OK\r\n$-1\r\n"),
        (
            &[
                "EVAL",
                "redis.call('swapdb', 0, 1) return redis.call('get', 'y')",
                "0",
            ],
            "$1\r\n1\r\n",
        ),
        (&["DBSIZE"], ":2\r\n"),
        (&["EXISTS", "x"], ":1\r\n"),
    ];
    for (argv, want) in script {
        let got = c.call(argv);
        assert_eq!(String::from_utf8_lossy(&got), *want, "reply to {argv:?}");
    }
}

#[test]
fn copy_and_move_notify_in_the_destination_database_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
        "+OK\r\n",
    );
    // Databases 3 and 9 swapped first: notifications name the logical databases.
    c.check(&["SWAPDB", "3", "9"], "+OK\r\n");
    let mut sub = node.raw();
    sub.check(
        &["PSUBSCRIBE", "__keyspace@*__:*"],
        "*3\r\n$10\r\npsubscribe\r\n$16\r\n__keyspace@*__:*\r\n:1\r\n",
    );
    c.check(&["SET", "a", "1"], "+OK\r\n");
    c.check(&["COPY", "a", "b", "DB", "3"], ":1\r\n");
    c.check(&["COPY", "a", "c"], ":1\r\n");
    c.check(&["MOVE", "a", "4"], ":1\r\n");
    let event = |db: &str, key: &str, name: &str| {
        let channel = format!("__keyspace@{db}__:{key}");
        format!(
            "*4\r\n$8\r\npmessage\r\n$16\r\n__keyspace@*__:*\r\n${}\r\n{channel}\r\n${}\r\n{name}\r\n",
            channel.len(),
            name.len()
        )
    };
    let want = [
        event("0", "a", "set"),
        event("3", "b", "copy_to"),
        event("0", "c", "copy_to"),
        event("0", "a", "move_from"),
        event("4", "a", "move_to"),
    ]
    .concat();
    let got = sub.read_n(want.len(), Duration::from_secs(5));
    assert_eq!(show(&got), show(want.as_bytes()));
    c.check(&["SELECT", "3"], "+OK\r\n");
    c.check(&["GET", "b"], "$1\r\n1\r\n");
}

/// Walks a HSCAN/SSCAN/ZSCAN of `key` from `cursor` to the end: the members seen (every other
/// item for HSCAN and ZSCAN, whose items are pairs) and how many steps it took.
fn walk_collection(
    con: &mut redis::Connection,
    cmd: &str,
    key: &str,
    mut cursor: String,
) -> (Vec<String>, usize) {
    let pairs = cmd != "SSCAN";
    let (mut seen, mut steps) = (Vec::new(), 0);
    loop {
        let (next, items): (String, Vec<String>) = q(con, &[cmd, key, &cursor, "COUNT", "10"]);
        seen.extend(items.into_iter().step_by(if pairs { 2 } else { 1 }));
        steps += 1;
        if next == "0" {
            return (seen, steps);
        }
        assert!(steps < 1000, "{cmd} {key} did not end");
        cursor = next;
    }
}

/// A HSCAN/SSCAN/ZSCAN cursor names the collection it walks, not the database number: after
/// SWAPDB it goes on where it was in the database that now holds that collection, and in the
/// database that now holds another collection of the same name it starts over (Redis's only
/// guarantee, every member present throughout is returned, holds in both).
#[test]
fn collection_cursors_follow_their_collection_across_swapdb() {
    let node = Node::single(&[]);
    let mut con = node.conn();
    let fill = |con: &mut redis::Connection, db: &str, tag: &str| {
        let _: () = q(con, &["SELECT", db]);
        for i in 0..150 {
            let m = format!("{tag}{i}");
            let _: i64 = q(con, &["HSET", "h", &m, "v"]);
            let _: i64 = q(con, &["SADD", "s", &m]);
            let _: i64 = q(con, &["ZADD", "z", &i.to_string(), &m]);
        }
    };
    fill(&mut con, "1", "b");
    fill(&mut con, "0", "a");
    let members =
        |tag: &str| -> BTreeSet<String> { (0..150).map(|i| format!("{tag}{i}")).collect() };
    for cmd in ["HSCAN", "SSCAN", "ZSCAN"] {
        let key = &cmd[..1].to_lowercase();
        let _: () = q(&mut con, &["SELECT", "0"]);
        let (first, items): (String, Vec<String>) = q(&mut con, &[cmd, key, "0", "COUNT", "10"]);
        assert_ne!(first, "0", "{cmd}: one step of COUNT 10 walked 150 members");
        let step = if cmd == "SSCAN" { 1 } else { 2 };
        let mut seen: Vec<String> = items.into_iter().step_by(step).collect();
        let _: () = q(&mut con, &["SWAPDB", "0", "1"]);

        // db1 now holds the collection the cursor was walking: the walk goes on from there,
        // and the two parts together are every member, each once.
        let _: () = q(&mut con, &["SELECT", "1"]);
        let (rest, _) = walk_collection(&mut con, cmd, key, first.clone());
        let before = seen.len();
        seen.extend(rest);
        let set: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(set, members("a"), "{cmd} after SWAPDB in the swapped-to db");
        assert_eq!(
            seen.len(),
            150,
            "{cmd}: {before} members before, a repeat after"
        );

        // db0 now holds db1's collection of the same name: the cursor starts it over.
        let _: () = q(&mut con, &["SELECT", "0"]);
        let (other, _) = walk_collection(&mut con, cmd, key, first);
        let set: BTreeSet<String> = other.into_iter().collect();
        assert_eq!(
            set,
            members("b"),
            "{cmd} with the old cursor in the swapped-from db"
        );

        let _: () = q(&mut con, &["SWAPDB", "0", "1"]);
    }
}
