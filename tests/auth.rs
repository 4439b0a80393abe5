//! `--requirepass` against real `kvd` processes: what runs before AUTH, AUTH and HELLO ... AUTH,
//! and a password-protected 3-node cluster (joining and forwarding writes with it).
//!
//! Every expected reply was first taken from redis-server 7.0.15 started with
//! `--requirepass`.

mod common;

use common::*;

const PASSWORD: &str = "s3cret-pw";

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
const HELLO_NOAUTH: &str = "-NOAUTH HELLO must be called with the client already authenticated, \
     otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and \
     select the RESP protocol version at the same time\r\n";

fn protected_node() -> Node {
    Node::single(&["--requirepass", PASSWORD])
}

#[test]
fn nothing_but_auth_hello_quit_reset_runs_before_auth() {
    let node = protected_node();
    let mut c = node.raw();
    for argv in [
        &["PING"][..],
        &["GET", "k"],
        &["SET", "k", "v"],
        &["DEL", "k"],
        &["INFO"],
        &["CONFIG", "GET", "requirepass"],
        &["COMMAND"],
        &["CLIENT", "ID"],
        &["SELECT", "0"],
        &["ACL", "WHOAMI"],
        &["CLUSTER", "INFO"],
        &["FLUSHALL"],
    ] {
        c.check(argv, NOAUTH);
    }
    // Unknown commands and wrong arities are reported first, as Redis does.
    c.check(
        &["nosuch"],
        "-ERR unknown command 'nosuch', with args beginning with: \r\n",
    );
    c.check(
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.check(
        &["AUTH"],
        "-ERR wrong number of arguments for 'auth' command\r\n",
    );
    c.check(
        &["RESET", "x"],
        "-ERR wrong number of arguments for 'reset' command\r\n",
    );
    for argv in [
        &["HELLO"][..],
        &["HELLO", "3"],
        &["HELLO", "2", "SETNAME", "x"],
    ] {
        c.check(argv, HELLO_NOAUTH);
    }
    // HELLO checks its arguments before the authentication.
    c.check(&["HELLO", "4"], "-NOPROTO unsupported protocol version\r\n");
    c.check(
        &["HELLO", "3", "FOO"],
        "-ERR Syntax error in HELLO option 'FOO'\r\n",
    );
    c.check(&["RESET"], "+RESET\r\n");
    c.check(&["PING"], NOAUTH);
    // The write was refused, not applied: nothing there once authenticated.
    c.check(&["AUTH", PASSWORD], "+OK\r\n");
    c.check(&["EXISTS", "k"], ":0\r\n");

    let mut q = node.raw();
    q.check(&["QUIT"], "+OK\r\n");
    assert!(
        q.closed_within(IO_TIMEOUT),
        "QUIT must close the connection"
    );
}

#[test]
fn auth_with_and_without_user_name() {
    let node = protected_node();
    let mut c = node.raw();
    c.check(&["AUTH", "wrong"], WRONGPASS);
    c.check(&["AUTH", "default", "wrong"], WRONGPASS);
    c.check(&["AUTH", "bob", PASSWORD], WRONGPASS);
    c.check(&["AUTH", "DEFAULT", PASSWORD], WRONGPASS);
    c.check(&["AUTH", ""], WRONGPASS);
    c.check(&["AUTH", &PASSWORD[..PASSWORD.len() - 1]], WRONGPASS);
    c.check(&["AUTH", &format!("{PASSWORD}x")], WRONGPASS);
    c.check(&["AUTH", "a", "b", "c"], "-ERR syntax error\r\n");
    c.check(&["PING"], NOAUTH);

    c.check(&["AUTH", PASSWORD], "+OK\r\n");
    c.check(&["PING"], "+PONG\r\n");
    c.check(&["ACL", "WHOAMI"], "$7\r\ndefault\r\n");
    c.check(
        &["ACL", "WHOAMI", "x"],
        "-ERR wrong number of arguments for 'acl|whoami' command\r\n",
    );
    c.check(
        &["ACL", "FOO"],
        "-ERR unknown subcommand 'FOO'. Try ACL HELP.\r\n",
    );
    c.check(
        &["CONFIG", "GET", "requirepass"],
        &format!(
            "*2\r\n$11\r\nrequirepass\r\n${}\r\n{PASSWORD}\r\n",
            PASSWORD.len()
        ),
    );
    c.check(&["SET", "k", "v"], "+OK\r\n");
    c.check(&["GET", "k"], "$1\r\nv\r\n");
    c.check(&["INCR", "n"], ":1\r\n");
    c.check(&["DEL", "k"], ":1\r\n");
    // A failed AUTH later does not undo the earlier one.
    c.check(&["AUTH", "wrong"], WRONGPASS);
    c.check(&["GET", "n"], "$1\r\n1\r\n");
    // RESET does.
    c.check(&["RESET"], "+RESET\r\n");
    c.check(&["GET", "n"], NOAUTH);

    let mut d = node.raw();
    d.check(&["AUTH", "default", PASSWORD], "+OK\r\n");
    d.check(&["GET", "n"], "$1\r\n1\r\n");
}

#[test]
fn hello_3_auth_setname() {
    let node = protected_node();
    let mut c = node.raw();
    c.check(&["HELLO", "3", "AUTH", "default", "wrong"], WRONGPASS);
    c.check(&["PING"], NOAUTH);
    let reply = c.call(&["HELLO", "3", "AUTH", "default", PASSWORD, "SETNAME", "x"]);
    let text = String::from_utf8(reply).unwrap();
    assert!(
        text.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n")
            && text.contains(":3\r\n$2\r\nid"),
        "{text:?}"
    );
    c.check(&["CLIENT", "GETNAME"], "$1\r\nx\r\n");
    c.check(&["ACL", "WHOAMI"], "$7\r\ndefault\r\n");
    c.check(&["GET", "missing"], "_\r\n");
    c.check(&["SET", "k", "v"], "+OK\r\n");
    c.check(&["GET", "k"], "$1\r\nv\r\n");
    c.check(
        &["CONFIG", "GET", "requirepass"],
        &format!(
            "%1\r\n$11\r\nrequirepass\r\n${}\r\n{PASSWORD}\r\n",
            PASSWORD.len()
        ),
    );

    // Redis 7.0 applies HELLO's options as it reads them: a SETNAME before a wrong password
    // stays, and the connection stays unauthenticated and in RESP2.
    let mut d = node.raw();
    d.check(
        &["HELLO", "3", "SETNAME", "early", "AUTH", "default", "wrong"],
        WRONGPASS,
    );
    d.check(&["AUTH", PASSWORD], "+OK\r\n");
    d.check(&["CLIENT", "GETNAME"], "$5\r\nearly\r\n");
    d.check(&["GET", "missing"], "$-1\r\n");

    // A bad option after a good AUTH: authenticated, protocol unchanged.
    let mut e = node.raw();
    e.check(
        &["HELLO", "3", "AUTH", "default", PASSWORD, "BOGUS"],
        "-ERR Syntax error in HELLO option 'BOGUS'\r\n",
    );
    e.check(&["GET", "missing"], "$-1\r\n");
}

#[test]
fn redis_crate_client_with_password() {
    let node = protected_node();
    // The harness's own connection authenticates with the node's --requirepass.
    let mut con = node.conn();
    let _: () = q(&mut con, &["SET", "a", "1"]);
    let v: String = q(&mut con, &["GET", "a"]);
    assert_eq!(v, "1");
    let who: String = q(&mut con, &["ACL", "WHOAMI"]);
    assert_eq!(who, "default");
    let bad = redis::Client::open(format!("redis://:nope@{}/", node.client_addr()))
        .unwrap()
        .get_connection_with_timeout(IO_TIMEOUT);
    assert!(bad.is_err(), "a wrong password must be refused");
}

/// Every member has the password: nodes join through a protected member, and a follower
/// forwards an authenticated client's write to the leader.
#[test]
fn three_node_cluster_with_a_password() {
    let cluster = Cluster::start(3, &["--requirepass", PASSWORD]);
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT);
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let mut c = cluster.node(follower).raw();
    c.check(&["SET", "k", "v"], NOAUTH);
    c.check(&["AUTH", PASSWORD], "+OK\r\n");
    // HELLO on a follower says what Redis says on a replica.
    let hello = String::from_utf8(c.call(&["HELLO", "3", "AUTH", "default", PASSWORD])).unwrap();
    assert!(
        hello.starts_with("%7\r\n") && hello.contains("$4\r\nrole\r\n$7\r\nreplica\r\n"),
        "{hello:?}"
    );
    c.check(&["SET", "k", "from-follower"], "+OK\r\n");
    c.check(&["GET", "k"], "$13\r\nfrom-follower\r\n");
    for i in 0..3 {
        let mut r = cluster.node(i).raw();
        r.check(&["GET", "k"], NOAUTH);
        r.check(&["AUTH", "default", PASSWORD], "+OK\r\n");
        poll_until(IO_TIMEOUT, "the write to reach every node", || {
            (r.call(&["GET", "k"]) == b"$13\r\nfrom-follower\r\n").then_some(())
        });
    }
}

/// Before authenticating, requests of more than 10 arguments or bulks over 16 KiB close the
/// connection, as in Redis 7.0; a pipeline whose first request is a good AUTH is read under
/// the ordinary limits from its second request on.
#[test]
fn unauthenticated_requests_are_kept_small() {
    let node = protected_node();
    let mut ping_then_big = encode_cmd(&["PING"]);
    ping_then_big.extend_from_slice(b"*11\r\n");
    let (out, closed) = raw_exchange(&node.client_addr(), &ping_then_big, IO_TIMEOUT);
    assert_eq!(
        show(&out),
        show(
            format!("{NOAUTH}-ERR Protocol error: unauthenticated multibulk length\r\n").as_bytes()
        )
    );
    assert!(closed);

    let mut wrong_then_long = encode_cmd(&["AUTH", "wrong"]);
    wrong_then_long.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$16385\r\n");
    let (out, closed) = raw_exchange(&node.client_addr(), &wrong_then_long, IO_TIMEOUT);
    assert_eq!(
        show(&out),
        show(format!("{WRONGPASS}-ERR Protocol error: unauthenticated bulk length\r\n").as_bytes())
    );
    assert!(closed);

    // At the limits: accepted (and refused for want of authentication).
    let mut c = node.raw();
    let ten: Vec<&str> = std::iter::once("MSET")
        .chain(["k", "v"].repeat(4))
        .chain(["k"])
        .collect();
    assert_eq!(ten.len(), 10);
    c.check(&ten, NOAUTH);
    c.check(&["ECHO", &"x".repeat(16384)], NOAUTH);

    let value = "v".repeat(20_000);
    let mset: Vec<&str> = std::iter::once("MSET")
        .chain(["a", "1"].repeat(6))
        .collect();
    let mut pipeline = encode_cmd(&["AUTH", PASSWORD]);
    pipeline.extend(encode_cmd(&mset));
    pipeline.extend(encode_cmd(&["SET", "big", &value]));
    pipeline.extend(encode_cmd(&["STRLEN", "big"]));
    let mut d = node.raw();
    d.send(&pipeline);
    d.expect(b"+OK\r\n+OK\r\n+OK\r\n:20000\r\n");
}

/// The password can come from `KVD_REQUIREPASS` instead of the flag.
#[test]
fn password_from_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ports = free_ports(2);
    let addr = format!("127.0.0.1:{}", ports[0]);
    let log = std::fs::File::create(dir.path().join("kvd.log")).expect("log file");
    let mut cmd = std::process::Command::new(kvd_bin());
    // Only the variable under test configures the node.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KVD_") {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .args([
            "--addr",
            &addr,
            "--raft-addr",
            &format!("127.0.0.1:{}", ports[1]),
            &dir.path().join("node0").display().to_string(),
        ])
        .env("KVD_REQUIREPASS", PASSWORD)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn kvd");
    let _kill = KillOnDrop(child);
    poll_until(START_TIMEOUT, "kvd to answer an authenticated PING", || {
        ping_with(&addr, Some(PASSWORD)).then_some(())
    });
    let mut c = RawConn::connect(&addr);
    c.check(&["PING"], NOAUTH);
    c.check(&["AUTH", "wrong"], WRONGPASS);
    c.check(&["AUTH", PASSWORD], "+OK\r\n");
    c.check(&["PING"], "+PONG\r\n");
}
