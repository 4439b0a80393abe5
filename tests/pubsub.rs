//! Pub/Sub: replies as redis-server 7.0.15 writes them (RESP2 and RESP3), delivery across the
//! nodes of a cluster (once, in each publisher's order, through a leader's death), pattern and
//! shard subscriptions, and the output limit that closes a subscriber that does not read.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The tests here run one at a time. Two of them check an order kvd keeps by waiting a bounded
/// time for the other connections' earlier input (100 ms, 1 s for a close: `connection.rs`
/// `after_earlier_input`); fifteen nodes side by side on two cores starve each other's threads
/// past that bound now and then (5 of 28 runs of this file failed so, before), which one node
/// does not do to itself.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn message(channel: &str, msg: &str) -> String {
    format!(
        "*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${}\r\n{msg}\r\n",
        channel.len(),
        msg.len()
    )
}

/// Publishes until the count reaches `want` (the peers' links come up shortly after start).
fn publish_until(c: &mut RawConn, channel: &str, want: i64) {
    poll_until(
        Duration::from_secs(20),
        &format!("PUBLISH {channel} to reach {want} receivers"),
        || {
            let r = c.call(&["PUBLISH", channel, "probe"]);
            (r == format!(":{want}\r\n").as_bytes()).then_some(())
        },
    );
}

/// Skips the probe messages `publish_until` caused.
fn skip_probes(c: &mut RawConn, channel: &str) -> Vec<u8> {
    loop {
        let r = c.read_reply();
        if r != message(channel, "probe").as_bytes() {
            return r;
        }
    }
}

#[test]
fn resp2_subscribed_context_as_redis() {
    let _serial = serial();
    let node = Node::single(&[]);
    let mut sub = node.raw();
    let mut publ = node.raw();
    sub.send_cmd(&["SUBSCRIBE", "c1", "c2"]);
    sub.expect(
        b"*3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nc2\r\n:2\r\n",
    );
    sub.check(&["PING"], "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    sub.check(&["PING", "x"], "*2\r\n$4\r\npong\r\n$1\r\nx\r\n");
    sub.check(
        &["GET", "k"],
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );
    sub.check(
        &["CLIENT", "LIST"],
        "-ERR Can't execute 'client|list': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );
    sub.check(
        &["PSUBSCRIBE", "c*"],
        "*3\r\n$10\r\npsubscribe\r\n$2\r\nc*\r\n:3\r\n",
    );
    publ.check(&["PUBLISH", "c1", "hi"], ":2\r\n");
    sub.expect(message("c1", "hi").as_bytes());
    sub.expect(b"*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nc1\r\n$2\r\nhi\r\n");
    publ.check(
        &["PUBSUB", "NUMSUB", "c1", "zz"],
        "*4\r\n$2\r\nc1\r\n:1\r\n$2\r\nzz\r\n:0\r\n",
    );
    publ.check(&["PUBSUB", "NUMPAT"], ":1\r\n");
    publ.check(&["PUBSUB", "CHANNELS", "c1"], "*1\r\n$2\r\nc1\r\n");
    publ.check(
        &["PUBSUB", "NUMPAT", "x"],
        "-ERR wrong number of arguments for 'pubsub|numpat' command\r\n",
    );
    publ.check(
        &["PUBSUB", "FOO"],
        "-ERR unknown subcommand 'FOO'. Try PUBSUB HELP.\r\n",
    );
    sub.check(
        &["PUNSUBSCRIBE"],
        "*3\r\n$12\r\npunsubscribe\r\n$2\r\nc*\r\n:2\r\n",
    );
    sub.check(
        &["UNSUBSCRIBE", "c1"],
        "*3\r\n$11\r\nunsubscribe\r\n$2\r\nc1\r\n:1\r\n",
    );
    sub.check(
        &["UNSUBSCRIBE", "c2"],
        "*3\r\n$11\r\nunsubscribe\r\n$2\r\nc2\r\n:0\r\n",
    );
    // Subscribed to nothing: one reply with a null name, and the context is left.
    sub.check(
        &["UNSUBSCRIBE"],
        "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
    );
    sub.check(&["PING"], "+PONG\r\n");
    publ.check(&["PUBLISH", "c1", "hi"], ":0\r\n");
    // Shard channels count apart; RESET leaves every subscription.
    sub.send_cmd(&["SSUBSCRIBE", "s1", "s2"]);
    sub.expect(b"*3\r\n$10\r\nssubscribe\r\n$2\r\ns1\r\n:1\r\n*3\r\n$10\r\nssubscribe\r\n$2\r\ns2\r\n:2\r\n");
    sub.check(
        &["SUBSCRIBE", "q"],
        "*3\r\n$9\r\nsubscribe\r\n$1\r\nq\r\n:1\r\n",
    );
    publ.check(&["SPUBLISH", "s1", "m"], ":1\r\n");
    sub.expect(b"*3\r\n$8\r\nsmessage\r\n$2\r\ns1\r\n$1\r\nm\r\n");
    publ.check(&["PUBSUB", "SHARDNUMSUB", "s1"], "*2\r\n$2\r\ns1\r\n:1\r\n");
    sub.check(&["RESET"], "+RESET\r\n");
    sub.check(&["GET", "k"], "$-1\r\n");
    publ.check(&["PUBLISH", "q", "m"], ":0\r\n");
    publ.check(&["SPUBLISH", "s1", "m"], ":0\r\n");
}

#[test]
fn resp3_pushes_and_any_command() {
    let _serial = serial();
    let node = Node::single(&[]);
    let mut sub = node.raw();
    let _ = sub.call(&["HELLO", "3"]);
    sub.check(
        &["SUBSCRIBE", "x"],
        ">3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n",
    );
    sub.check(&["SET", "k", "v"], "+OK\r\n");
    sub.check(&["GET", "k"], "$1\r\nv\r\n");
    sub.check(&["PING"], "+PONG\r\n");
    // Its own message comes before PUBLISH's reply, as Redis writes them.
    sub.send_cmd(&["PUBLISH", "x", "m"]);
    sub.expect(b">3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$1\r\nm\r\n:1\r\n");
    sub.check(
        &["UNSUBSCRIBE", "x", "y"],
        ">3\r\n$11\r\nunsubscribe\r\n$1\r\nx\r\n:0\r\n",
    );
    sub.expect(b">3\r\n$11\r\nunsubscribe\r\n$1\r\ny\r\n:0\r\n");
    sub.check(
        &["SUNSUBSCRIBE"],
        ">3\r\n$12\r\nsunsubscribe\r\n_\r\n:0\r\n",
    );
    // CLIENT REPLY OFF does not silence pushes.
    sub.send_cmd(&["CLIENT", "REPLY", "OFF"]);
    sub.send_cmd(&["SUBSCRIBE", "z"]);
    sub.expect(b">3\r\n$9\r\nsubscribe\r\n$1\r\nz\r\n:1\r\n");
    let mut publ = node.raw();
    publ.check(&["PUBLISH", "z", "hey"], ":1\r\n");
    sub.expect(b">3\r\n$7\r\nmessage\r\n$1\r\nz\r\n$3\r\nhey\r\n");
}

#[test]
fn cluster_delivers_once_in_publisher_order() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let mut sub = b.raw();
    sub.send_cmd(&["SUBSCRIBE", "news"]);
    sub.expect(b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    let mut psub = c.raw();
    psub.check(
        &["PSUBSCRIBE", "ne*"],
        "*3\r\n$10\r\npsubscribe\r\n$3\r\nne*\r\n:1\r\n",
    );
    let mut publ = a.raw();
    // Both receivers are on other nodes: the count is theirs.
    publish_until(&mut publ, "news", 2);
    const N: usize = 500;
    let mut batch = Vec::new();
    for i in 0..N {
        batch.extend(encode_cmd(&["PUBLISH", "news", &format!("m{i}")]));
    }
    publ.send(&batch);
    for _ in 0..N {
        assert_eq!(publ.read_reply(), b":2\r\n");
    }
    let first = skip_probes(&mut sub, "news");
    assert_eq!(show(&first), show(message("news", "m0").as_bytes()));
    for i in 1..N {
        sub.expect(message("news", &format!("m{i}")).as_bytes());
    }
    let pm = |m: &str| {
        format!(
            "*4\r\n$8\r\npmessage\r\n$3\r\nne*\r\n$4\r\nnews\r\n${}\r\n{m}\r\n",
            m.len()
        )
    };
    let mut i = 0;
    while i < N {
        let r = psub.read_reply();
        if r == pm("probe").as_bytes() {
            continue;
        }
        assert_eq!(show(&r), show(pm(&format!("m{i}")).as_bytes()));
        i += 1;
    }
    // Exactly once: nothing more arrives.
    publ.check(&["PUBLISH", "news", "end"], ":2\r\n");
    sub.expect(message("news", "end").as_bytes());
    assert!(!sub.closed_within(Duration::from_millis(300)));
    assert!(sub.pending().is_empty(), "{}", show(sub.pending()));
    // Sharded messages travel the same way.
    let mut ssub = c.raw();
    ssub.check(
        &["SSUBSCRIBE", "sh"],
        "*3\r\n$10\r\nssubscribe\r\n$2\r\nsh\r\n:1\r\n",
    );
    publ.check(&["SPUBLISH", "sh", "x"], ":1\r\n");
    ssub.expect(b"*3\r\n$8\r\nsmessage\r\n$2\r\nsh\r\n$1\r\nx\r\n");
}

/// A publisher and a subscriber on two nodes while the third (the leader) is killed: Pub/Sub
/// does not go through raft, so nothing between the live nodes is lost or reordered.
#[test]
fn delivery_between_live_nodes_survives_a_leader_kill() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let (s, p) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut sub = cluster.node(s).raw();
    sub.send_cmd(&["SUBSCRIBE", "t"]);
    sub.expect(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nt\r\n:1\r\n");
    let mut publ = cluster.node(p).raw();
    publish_until(&mut publ, "t", 1);
    const N: usize = 2000;
    let started = Instant::now();
    for i in 0..N {
        if i == N / 4 {
            cluster.nodes[leader].kill9();
        }
        publ.check(&["PUBLISH", "t", &format!("{i}")], ":1\r\n");
    }
    let first = skip_probes(&mut sub, "t");
    assert_eq!(show(&first), show(message("t", "0").as_bytes()));
    for i in 1..N {
        sub.expect(message("t", &format!("{i}")).as_bytes());
    }
    eprintln!(
        "{N} messages across a leader kill in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected() {
    let _serial = serial();
    let node = Node::single(&[]);
    let mut admin = node.raw();
    admin.check(
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 0 0",
        ],
        "+OK\r\n",
    );
    let mut slow = node.raw();
    // A small receive buffer, so the kernel does not soak up the backlog.
    slow.stream.set_nonblocking(false).ok();
    slow.check(
        &["SUBSCRIBE", "firehose"],
        "*3\r\n$9\r\nsubscribe\r\n$8\r\nfirehose\r\n:1\r\n",
    );
    let big = "x".repeat(64 * 1024);
    let mut publ = node.raw();
    let mut receivers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = publ.call(&["PUBLISH", "firehose", &big]);
        receivers.push(r.clone());
        if r == b":0\r\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow subscriber was never dropped"
        );
    }
    // Bounded: the subscriber was dropped after at most the limit plus what the sockets hold.
    assert!(receivers.len() < 2000, "{} messages", receivers.len());
    // Its connection is closed (after whatever was already written).
    let mut closed = false;
    for _ in 0..200 {
        if slow.closed_within(Duration::from_millis(100)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow subscriber's connection stayed open");
    admin.check(
        &["PUBSUB", "NUMSUB", "firehose"],
        "*2\r\n$8\r\nfirehose\r\n:0\r\n",
    );
}

fn pmessage(pattern: &str, channel: &str, msg: &str) -> String {
    format!(
        "*4\r\n$8\r\npmessage\r\n${}\r\n{pattern}\r\n${}\r\n{channel}\r\n${}\r\n{msg}\r\n",
        pattern.len(),
        channel.len(),
        msg.len()
    )
}

/// A subscriber on a follower sees the keyspace events of writes made through the leader (each
/// node raises the events of its own applies), and the `expired` events of active expiry.
#[test]
fn keyspace_notifications_on_a_follower() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let follower = cluster.node((leader + 1) % 3);
    let mut admin = follower.raw();
    admin.check(
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
        "+OK\r\n",
    );
    admin.check(
        &["CONFIG", "GET", "notify-keyspace-events"],
        "*2\r\n$22\r\nnotify-keyspace-events\r\n$3\r\nAKE\r\n",
    );
    let mut sub = follower.raw();
    sub.check(
        &["PSUBSCRIBE", "*"],
        "*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n",
    );
    let mut w = cluster.node(leader).raw();
    w.check(&["SET", "foo", "bar"], "+OK\r\n");
    w.check(&["HSET", "h", "f", "v"], ":1\r\n");
    w.check(&["SADD", "s", "a"], ":1\r\n");
    w.check(&["SREM", "s", "a"], ":1\r\n");
    w.check(&["DEL", "foo", "nothere"], ":1\r\n");
    w.check(&["SET", "tmp", "1", "PX", "100"], "+OK\r\n");
    let expect = [
        ("__keyspace@0__:foo", "set"),
        ("__keyevent@0__:set", "foo"),
        ("__keyspace@0__:h", "hset"),
        ("__keyevent@0__:hset", "h"),
        ("__keyspace@0__:s", "sadd"),
        ("__keyevent@0__:sadd", "s"),
        ("__keyspace@0__:s", "srem"),
        ("__keyevent@0__:srem", "s"),
        ("__keyspace@0__:s", "del"),
        ("__keyevent@0__:del", "s"),
        ("__keyspace@0__:foo", "del"),
        ("__keyevent@0__:del", "foo"),
        ("__keyspace@0__:tmp", "set"),
        ("__keyevent@0__:set", "tmp"),
        ("__keyspace@0__:tmp", "expire"),
        ("__keyevent@0__:expire", "tmp"),
        // Reaped by the leader's active expiry, applied (and announced) here.
        ("__keyspace@0__:tmp", "expired"),
        ("__keyevent@0__:expired", "tmp"),
    ];
    for (ch, msg) in expect {
        sub.expect(pmessage("*", ch, msg).as_bytes());
    }
    // Masking: only list events wanted, so a string write raises nothing.
    admin.check(
        &["CONFIG", "SET", "notify-keyspace-events", "Kl"],
        "+OK\r\n",
    );
    w.check(&["SET", "foo", "bar"], "+OK\r\n");
    assert!(!sub.closed_within(Duration::from_millis(500)));
    assert!(sub.pending().is_empty(), "{}", show(sub.pending()));
}

/// A writer on the leader, and a RESP3 connection tracking (default mode) on a follower, whose
/// node is returned too.
fn tracking_on_a_follower(cluster: &Cluster) -> (RawConn, RawConn, &Node) {
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let follower = cluster.node((leader + 1) % 3);
    let w = cluster.node(leader).raw();
    let mut t = follower.raw();
    let _ = t.call(&["HELLO", "3"]);
    t.check(&["CLIENT", "TRACKING", "on"], "+OK\r\n");
    (w, t, follower)
}

/// Client-side caching on a follower: keys read there are invalidated when a write made through
/// the leader is applied there (RESP3 push), once; RESP2 through REDIRECT to a connection
/// subscribed to `__redis__:invalidate`; BCAST with prefixes; a flush invalidates everything.
#[test]
fn tracking_invalidates_on_every_node() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let (mut w, mut t, follower) = tracking_on_a_follower(&cluster);
    t.check(&["GET", "k1"], "_\r\n");
    w.check(&["SET", "k1", "v"], "+OK\r\n");
    t.expect(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nk1\r\n");
    // Told once: not read again, so a second write says nothing.
    w.check(&["SET", "k1", "w"], "+OK\r\n");
    assert!(!t.closed_within(Duration::from_millis(300)));
    assert!(t.pending().is_empty(), "{}", show(t.pending()));
    t.check(
        &["CLIENT", "TRACKINGINFO"],
        "%3\r\n$5\r\nflags\r\n~1\r\n$2\r\non\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n",
    );

    // RESP2: invalidations travel as messages to the REDIRECT connection.
    let mut inv = follower.raw();
    let id = String::from_utf8(inv.call(&["CLIENT", "ID"])).unwrap();
    let id = id.trim().trim_start_matches(':').to_string();
    inv.check(
        &["SUBSCRIBE", "__redis__:invalidate"],
        "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n",
    );
    let mut r2 = follower.raw();
    r2.check(&["CLIENT", "TRACKING", "on", "REDIRECT", &id], "+OK\r\n");
    r2.check(&["GET", "k2"], "$-1\r\n");
    w.check(&["SET", "k2", "v"], "+OK\r\n");
    inv.expect(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$2\r\nk2\r\n");

    // BCAST: every key under a prefix, whoever read it.
    let mut b = follower.raw();
    let _ = b.call(&["HELLO", "3"]);
    b.check(
        &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:"],
        "+OK\r\n",
    );
    w.check(&["SET", "other", "1"], "+OK\r\n");
    w.check(&["SET", "user:1", "1"], "+OK\r\n");
    b.expect(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\nuser:1\r\n");

    // A flush: a null, "everything".
    w.check(&["FLUSHALL"], "+OK\r\n");
    b.expect(b">2\r\n$10\r\ninvalidate\r\n_\r\n");
    t.expect(b">2\r\n$10\r\ninvalidate\r\n_\r\n");
    inv.expect(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n");
}

#[test]
fn new_key_events_only_when_a_key_is_created() {
    let _serial = serial();
    let node = Node::single(&[]);
    let mut admin = node.raw();
    admin.check(
        &["CONFIG", "SET", "notify-keyspace-events", "En"],
        "+OK\r\n",
    );
    admin.check(
        &["CONFIG", "GET", "notify-keyspace-events"],
        "*2\r\n$22\r\nnotify-keyspace-events\r\n$2\r\nnE\r\n",
    );
    let mut sub = node.raw();
    sub.check(
        &["PSUBSCRIBE", "*"],
        "*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n",
    );
    admin.check(&["SET", "foo", "bar"], "+OK\r\n");
    admin.check(&["SET", "foo", "baz"], "+OK\r\n");
    admin.check(&["SADD", "s", "a"], ":1\r\n");
    admin.check(&["SADD", "s", "b"], ":1\r\n");
    admin.check(&["INCR", "n"], ":1\r\n");
    for key in ["foo", "s", "n"] {
        sub.expect(pmessage("*", "__keyevent@0__:new", key).as_bytes());
    }
}

/// The fields of `id`'s CLIENT LIST line from `from`, as "flags=.. sub=.. psub=.. ssub=.. redir=..".
fn list_fields(from: &mut RawConn, id: &str) -> String {
    let r = from.call(&["CLIENT", "LIST", "ID", id]);
    let text = String::from_utf8_lossy(&r).to_string();
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or("?")
            .to_string()
    };
    format!(
        "flags={} sub={} psub={} ssub={} redir={}",
        field("flags"),
        field("sub"),
        field("psub"),
        field("ssub"),
        field("redir")
    )
}

fn client_id(c: &mut RawConn) -> String {
    let r = c.call(&["CLIENT", "ID"]);
    String::from_utf8_lossy(&r[1..r.len() - 2]).to_string()
}

/// What redis-server 7.0.15 shows (checked by hand on it): the counts of each kind, `P` while
/// subscribed, `t` while tracking, `B` with BCAST, `redir` the REDIRECT id (0 without) while
/// tracking; CLIENT LIST TYPE pubsub lists the subscribed connections and TYPE normal the others.
#[test]
fn client_list_shows_subscriptions_and_tracking_as_redis() {
    let _serial = serial();
    let node = Node::single(&[]);
    let mut sub = node.raw();
    let mut other = node.raw();
    let mut track = node.raw();
    let sub_id = client_id(&mut sub);
    let track_id = client_id(&mut track);
    assert_eq!(
        list_fields(&mut other, &sub_id),
        "flags=N sub=0 psub=0 ssub=0 redir=-1"
    );
    sub.send_cmd(&["SUBSCRIBE", "a", "b"]);
    sub.send_cmd(&["PSUBSCRIBE", "p*"]);
    sub.send_cmd(&["SSUBSCRIBE", "s"]);
    for _ in 0..4 {
        sub.read_reply();
    }
    assert_eq!(
        list_fields(&mut other, &sub_id),
        "flags=P sub=2 psub=1 ssub=1 redir=-1"
    );
    let pubsub_list = other.call(&["CLIENT", "LIST", "TYPE", "pubsub"]);
    assert!(show(&pubsub_list).contains(&format!("id={sub_id} ")));
    let normal_list = show(&other.call(&["CLIENT", "LIST", "TYPE", "normal"]));
    assert!(!normal_list.contains(&format!("id={sub_id} ")));
    assert!(normal_list.contains(&format!("id={track_id} ")));

    track.check(&["CLIENT", "TRACKING", "on", "BCAST"], "+OK\r\n");
    assert_eq!(
        list_fields(&mut other, &track_id),
        "flags=tB sub=0 psub=0 ssub=0 redir=0"
    );
    track.check(&["CLIENT", "TRACKING", "off"], "+OK\r\n");
    let other_id = client_id(&mut other);
    track.check(
        &["CLIENT", "TRACKING", "on", "REDIRECT", &other_id],
        "+OK\r\n",
    );
    assert_eq!(
        list_fields(&mut other, &track_id),
        format!("flags=t sub=0 psub=0 ssub=0 redir={other_id}")
    );
    // CLIENT INFO shows the connection's own.
    let info = show(&track.call(&["CLIENT", "INFO"]));
    assert!(info.contains(" flags=t db=0 sub=0 psub=0 ssub=0 multi=-1 "));
    assert!(info.contains(&format!(" redir={other_id} resp=2")));
    // RESET ends tracking; unsubscribing everything clears the counts.
    track.check(&["RESET"], "+RESET\r\n");
    assert_eq!(
        list_fields(&mut other, &track_id),
        "flags=N sub=0 psub=0 ssub=0 redir=-1"
    );
    sub.send_cmd(&["UNSUBSCRIBE"]);
    sub.send_cmd(&["PUNSUBSCRIBE"]);
    sub.send_cmd(&["SUNSUBSCRIBE"]);
    for _ in 0..4 {
        sub.read_reply();
    }
    assert_eq!(
        list_fields(&mut other, &sub_id),
        "flags=N sub=0 psub=0 ssub=0 redir=-1"
    );
    // CLIENT KILL TYPE pubsub kills subscribers only.
    sub.send_cmd(&["SUBSCRIBE", "a"]);
    sub.read_reply();
    other.check(&["CLIENT", "KILL", "TYPE", "pubsub"], ":1\r\n");
    assert!(sub.closed_within(Duration::from_secs(5)));
}

/// NOLOOP on a follower: the connection's own writes (plain, in MULTI/EXEC, pipelined) are
/// not invalidated to it, on any path; the same keys written by another connection, through
/// its node or another, are.
#[test]
fn noloop_leaves_out_exactly_the_connections_own_writes() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let follower = cluster.node((leader + 1) % 3);
    let mut w = cluster.node(leader).raw();
    let mut same_node = follower.raw();
    let mut n = follower.raw();
    let _ = n.call(&["HELLO", "3"]);
    n.check(&["CLIENT", "TRACKING", "on", "BCAST", "NOLOOP"], "+OK\r\n");
    n.check(&["SET", "own", "1"], "+OK\r\n");
    n.check(&["MULTI"], "+OK\r\n");
    n.check(&["SET", "own", "2"], "+QUEUED\r\n");
    n.check(&["INCR", "own2"], "+QUEUED\r\n");
    n.check(&["EXEC"], "*2\r\n+OK\r\n:1\r\n");
    n.send_cmd(&["SET", "own", "3"]);
    n.send_cmd(&["DEL", "own2"]);
    n.expect(b"+OK\r\n:1\r\n");
    w.check(&["SET", "theirs", "1"], "+OK\r\n");
    n.expect(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\ntheirs\r\n");
    same_node.check(&["SET", "own", "4"], "+OK\r\n");
    n.expect(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nown\r\n");

    // Default mode: a key read and then written by the connection itself is not told (and
    // forgotten, as Redis forgets it); read again and written by another, it is.
    let mut d = follower.raw();
    let _ = d.call(&["HELLO", "3"]);
    d.check(&["CLIENT", "TRACKING", "on", "NOLOOP"], "+OK\r\n");
    d.check(&["GET", "dk"], "_\r\n");
    d.check(&["SET", "dk", "1"], "+OK\r\n");
    w.check(&["SET", "dk", "2"], "+OK\r\n");
    poll_until(Duration::from_secs(10), "the follower to apply", || {
        (same_node.call(&["GET", "dk"]) == b"$1\r\n2\r\n").then_some(())
    });
    d.check(&["GET", "dk"], "$1\r\n2\r\n");
    assert!(d.pending().is_empty(), "{}", show(d.pending()));
    w.check(&["SET", "dk", "3"], "+OK\r\n");
    d.expect(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\ndk\r\n");
}

/// A follower hands an applied write to its tracking table only after its readers can see
/// it; a read that already saw the write is not told of it afterwards, and the next write is
/// told. The tracker polls until it sees each new value, then a write of a key it also tracks
/// (`sync`) comes through the same apply order: everything before that key's invalidation
/// must not be `k`'s.
#[test]
fn a_read_that_saw_a_write_is_not_told_of_it_afterwards() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let (mut w, mut t, _) = tracking_on_a_follower(&cluster);
    let invalidation = |key: &str| {
        format!(
            ">2\r\n$10\r\ninvalidate\r\n*1\r\n${}\r\n{key}\r\n",
            key.len()
        )
        .into_bytes()
    };
    // A command's reply, skipping the pushes before it.
    let reply = |t: &mut RawConn, argv: &[&str]| {
        t.send_cmd(argv);
        loop {
            let frame = t.read_reply();
            if !frame.starts_with(b">") {
                return frame;
            }
        }
    };
    for i in 1..=80 {
        let value = i.to_string();
        let _ = reply(&mut t, &["GET", "sync"]);
        w.check(&["SET", "k", &value], "+OK\r\n");
        let want = format!("${}\r\n{value}\r\n", value.len()).into_bytes();
        poll_until(Duration::from_secs(10), "the follower to apply", || {
            (reply(&mut t, &["GET", "k"]) == want).then_some(())
        });
        w.check(&["SET", "sync", &value], "+OK\r\n");
        loop {
            let frame = t.read_reply();
            assert_ne!(
                show(&frame),
                show(&invalidation("k")),
                "round {i}: told of a write its read had seen"
            );
            if frame == invalidation("sync") {
                break;
            }
        }
    }
}

/// As redis-server 7.0.15: a blocked BLMOVE's own invalidation (of the destination key the
/// connection tracks) comes after its reply; keys read by a connection that then stopped
/// tracking stay counted until a FLUSHALL clears the table, after which a new tracker of the
/// same key hears nothing of the old reads.
#[test]
fn tracking_order_after_a_blocked_pop_and_the_table_after_tracking_off() {
    let _serial = serial();
    let node = Node::single(&[]);
    let mut t = node.raw();
    let mut w = node.raw();
    let _ = t.call(&["HELLO", "3"]);
    t.check(&["CLIENT", "TRACKING", "on"], "+OK\r\n");
    t.check(&["LRANGE", "list2", "0", "-1"], "*0\r\n");
    t.send_cmd(&["BLMOVE", "list1", "list2", "LEFT", "LEFT", "0"]);
    poll_until(Duration::from_secs(10), "the BLMOVE to block", || {
        let info = show(&w.call(&["INFO", "clients"]));
        info.contains("blocked_clients:1").then_some(())
    });
    w.check(&["RPUSH", "list1", "foo"], ":1\r\n");
    t.expect(b"$3\r\nfoo\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$5\r\nlist2\r\n");

    let items = |w: &mut RawConn| {
        let info = String::from_utf8_lossy(&w.call(&["INFO", "stats"])).to_string();
        info.lines()
            .find_map(|l| l.strip_prefix("tracking_total_items:"))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    t.check(&["GET", "k1"], "_\r\n");
    t.check(&["CLIENT", "TRACKING", "off"], "+OK\r\n");
    assert_eq!(
        items(&mut w),
        "1",
        "kept after tracking off, as Redis keeps it"
    );
    w.check(&["FLUSHALL"], "+OK\r\n");
    assert_eq!(items(&mut w), "0", "a flush frees the table");
    t.check(&["CLIENT", "TRACKING", "on"], "+OK\r\n");
    w.check(&["SET", "k1", "x"], "+OK\r\n");
    t.check(&["PING"], "+PONG\r\n");
}

/// As redis-server 7.0.15: a script's declared keys are tracked when it called a read command
/// (EVAL that only read, EVAL_RO), not when it only wrote or called no read command.
#[test]
fn scripts_track_their_declared_keys_only_when_they_read() {
    let _serial = serial();
    let node = Node::single(&[]);
    let mut r = node.raw();
    let mut w = node.raw();
    let _ = r.call(&["HELLO", "3"]);
    r.check(&["CLIENT", "TRACKING", "on"], "+OK\r\n");
    let invalidations = ">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nk2\r\n\
                         >2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nk1\r\n+PONG\r\n";
    for (cmd, script, tracked) in [
        ("EVAL", "redis.call('set', 'k3', 'bar')", false),
        ("EVAL", "redis.call('get', 'k3')", true),
        ("EVAL_RO", "redis.call('ping')", false),
        ("EVAL_RO", "redis.call('get', 'k1')", true),
    ] {
        let _ = r.call(&[cmd, script, "2", "k1", "k2"]);
        w.check(&["MSET", "k2", "2", "k1", "2"], "+OK\r\n");
        if tracked {
            r.send_cmd(&["PING"]);
            r.expect(invalidations.as_bytes());
        } else {
            r.check(&["PING"], "+PONG\r\n");
        }
    }
}

/// Redis runs what arrived first first, whichever connection it came on: an UNSUBSCRIBE (or a
/// close) sent just before a PUBLISH on another connection has taken effect when the PUBLISH
/// counts its receivers, so it counts 0. kvd's threads may come to the publisher first; it
/// waits for the subscriber's earlier input. Without that, a few rounds in a hundred counted
/// the subscriber (unit/pubsub's "PUBLISH/SUBSCRIBE after UNSUBSCRIBE without arguments").
#[test]
fn a_publish_right_behind_an_unsubscribe_or_a_close_counts_as_redis() {
    let _serial = serial();
    const ROUNDS: usize = 300;
    stay_on_this_cpu();
    let node = Node::single(&[]);
    let mut publisher = node.raw();
    let mut counted = 0;
    for round in 0..ROUNDS {
        let channel = format!("ch{round}");
        let mut sub = node.raw();
        sub.check(
            &["SUBSCRIBE", &channel],
            &format!(
                "*3\r\n$9\r\nsubscribe\r\n${}\r\n{channel}\r\n:1\r\n",
                channel.len()
            ),
        );
        if round % 2 == 0 {
            sub.send_cmd(&["UNSUBSCRIBE"]);
        } else {
            drop(sub);
        }
        let n = publisher.call(&["PUBLISH", &channel, "m"]);
        counted += usize::from(n != b":0\r\n");
    }
    assert_eq!(
        counted, 0,
        "{counted} of {ROUNDS} PUBLISHes counted a subscriber that left before"
    );
}

/// As Redis counts them: a connection closed just before an INFO is not in its
/// connected_clients, nor killed by a CLIENT KILL sent right behind the close.
#[test]
fn a_close_right_before_info_or_client_kill_is_seen() {
    let _serial = serial();
    const ROUNDS: usize = 300;
    stay_on_this_cpu();
    let node = Node::single(&[]);
    let mut c = node.raw();
    let (mut wrong_info, mut wrong_kill) = (0, 0);
    for round in 0..ROUNDS {
        let mut other = node.raw();
        other.check(&["PING"], "+PONG\r\n");
        drop(other);
        if round % 2 == 0 {
            let info = String::from_utf8_lossy(&c.call(&["INFO", "clients"])).to_string();
            wrong_info +=
                usize::from(parse_info_field(&info, "connected_clients").as_deref() != Some("1"));
        } else {
            wrong_kill += usize::from(c.call(&["CLIENT", "KILL", "SKIPME", "YES"]) != b":0\r\n");
        }
    }
    assert_eq!(
        (wrong_info, wrong_kill),
        (0, 0),
        "rounds of {} each that saw a closed client",
        ROUNDS / 2
    );
}
