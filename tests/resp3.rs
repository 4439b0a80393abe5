//! RESP3 against a real `kvd` process, byte for byte: HELLO 3 / HELLO 2, the null, map, set and
//! verbatim replies of the commands whose reply type depends on the protocol, and the protocol
//! each pipelined reply is written in.
//!
//! Every expected reply here was first taken from redis-server 7.0.15 (Debian's), with only
//! what is kvd's own substituted: the version it reports, the client id, its command table.

mod common;

use common::*;

/// HELLO's map (RESP3) or flat array (RESP2) for client `id` on a leader, as Redis 7.0 sends it.
fn hello_reply(proto: u8, id: &str) -> String {
    let version = kvd::server::REDIS_VERSION;
    let header = if proto == 3 { "%7" } else { "*14" };
    format!(
        "{header}\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n${}\r\n{version}\r\n\
         $5\r\nproto\r\n:{proto}\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
         $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
        version.len()
    )
}

/// The digits of this connection's CLIENT ID.
fn client_id(c: &mut RawConn) -> String {
    let reply = String::from_utf8(c.call(&["CLIENT", "ID"])).unwrap();
    reply
        .strip_prefix(':')
        .and_then(|r| r.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("CLIENT ID reply {reply:?}"))
        .to_string()
}

/// Reads one CRLF-terminated header line (without the CRLF).
fn read_line(c: &mut RawConn) -> String {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.extend(c.read_n(1, IO_TIMEOUT));
        assert!(line.len() < 64, "header line too long: {}", show(&line));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).unwrap()
}

/// Reads a verbatim string reply (`=N\r\nfmt:text\r\n`) and returns (format, text).
fn read_verbatim(c: &mut RawConn) -> (String, String) {
    let header = read_line(c);
    let len: usize = header
        .strip_prefix('=')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a verbatim string header: {header:?}"));
    let body = c.read_n(len + 2, IO_TIMEOUT);
    assert!(body.ends_with(b"\r\n"), "{}", show(&body));
    let body = String::from_utf8(body[..len].to_vec()).unwrap();
    let (format, text) = body.split_once(':').expect("fmt: prefix");
    (format.to_string(), text.to_string())
}

#[test]
fn hello_3_switches_to_resp3_and_hello_2_back() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let id = client_id(&mut c);
    c.check(&["HELLO", "3"], &hello_reply(3, &id));
    // No version: the map in the protocol in force.
    c.check(&["HELLO"], &hello_reply(3, &id));
    c.check(&["GET", "missing"], "_\r\n");
    c.check(&["SET", "k", "v"], "+OK\r\n");
    c.check(&["SET", "k", "w", "NX"], "_\r\n");
    c.check(&["SET", "new", "1", "GET"], "_\r\n");
    c.check(&["MGET", "k", "missing"], "*2\r\n$1\r\nv\r\n_\r\n");
    c.check(&["GETDEL", "missing"], "_\r\n");
    c.check(&["GETEX", "missing"], "_\r\n");
    c.check(&["SET", "e", "v", "EX", "100", "GET"], "_\r\n");
    c.check(&["TTL", "missing"], ":-2\r\n");
    c.check(&["CLIENT", "GETNAME"], "_\r\n");
    // Replies that are the same in both protocols.
    c.check(&["PING"], "+PONG\r\n");
    c.check(&["EXISTS", "k", "missing"], ":1\r\n");
    c.check(&["TYPE", "k"], "+string\r\n");
    c.check(
        &["nosuch", "x"],
        "-ERR unknown command 'nosuch', with args beginning with: 'x' \r\n",
    );
    c.check(
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.check(&["HELLO", "2"], &hello_reply(2, &id));
    c.check(&["GET", "missing"], "$-1\r\n");
    c.check(&["MGET", "missing"], "*1\r\n$-1\r\n");
    // Another connection is not affected by this one's HELLO.
    c.check(&["HELLO", "3"], &hello_reply(3, &id));
    let mut other = node.raw();
    other.check(&["GET", "missing"], "$-1\r\n");
    c.check(&["GET", "missing"], "_\r\n");
    // RESET goes back to RESP2.
    c.check(&["RESET"], "+RESET\r\n");
    c.check(&["GET", "missing"], "$-1\r\n");
}

/// `--redis-version` changes the version HELLO and INFO report, nothing else (redis-py 8 turns
/// its client-side cache on only for 7.4 or later).
#[test]
fn redis_version_flag_sets_what_hello_and_info_report() {
    let node = Node::single(&["--redis-version", "7.4.0"]);
    let mut c = node.raw();
    let id = client_id(&mut c);
    let want = hello_reply(3, &id).replace("$6\r\n7.0.15\r\n", "$5\r\n7.4.0\r\n");
    assert_ne!(want, hello_reply(3, &id));
    c.check(&["HELLO", "3"], &want);
    let info = node.info_field("server", "redis_version");
    assert_eq!(info.as_deref(), Some("7.4.0"));
}

#[test]
fn hello_errors_match_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let id = client_id(&mut c);
    for v in ["4", "1", "0", "-1"] {
        c.check(&["HELLO", v], "-NOPROTO unsupported protocol version\r\n");
    }
    for v in ["x", "3.0", "03", " 3"] {
        c.check(
            &["HELLO", v],
            "-ERR Protocol version is not an integer or out of range\r\n",
        );
    }
    c.check(
        &["HELLO", "3", "FOO"],
        "-ERR Syntax error in HELLO option 'FOO'\r\n",
    );
    c.check(
        &["HELLO", "3", "SETNAME"],
        "-ERR Syntax error in HELLO option 'SETNAME'\r\n",
    );
    c.check(
        &["HELLO", "3", "AUTH", "default"],
        "-ERR Syntax error in HELLO option 'AUTH'\r\n",
    );
    c.check(
        &["HELLO", "3", "SETNAME", "a", "b"],
        "-ERR Syntax error in HELLO option 'b'\r\n",
    );
    c.check(
        &["HELLO", "3", "SETNAME", "a b"],
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
    );
    // Options before the bad one are applied (Redis 7.0 applies them as it reads them), but
    // the protocol does not change.
    c.check(
        &["HELLO", "3", "SETNAME", "early", "BOGUS"],
        "-ERR Syntax error in HELLO option 'BOGUS'\r\n",
    );
    c.check(&["CLIENT", "GETNAME"], "$5\r\nearly\r\n");
    c.check(&["GET", "missing"], "$-1\r\n");
    // The last SETNAME wins.
    c.check(
        &["HELLO", "2", "SETNAME", "a", "SETNAME", "b"],
        &hello_reply(2, &id),
    );
    c.check(&["CLIENT", "GETNAME"], "$1\r\nb\r\n");
    // Without a password the default user takes any password; other users do not exist.
    c.check(
        &["HELLO", "3", "AUTH", "bob", "x"],
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    c.check(&["GET", "missing"], "$-1\r\n");
    c.check(
        &["HELLO", "3", "AUTH", "default", "anything"],
        &hello_reply(3, &id),
    );
    c.check(
        &["AUTH", "x"],
        "-ERR AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?\r\n",
    );
    c.check(&["AUTH", "default", "x"], "+OK\r\n");
    c.check(&["AUTH", "a", "b", "c"], "-ERR syntax error\r\n");
    c.check(&["ACL", "WHOAMI"], "$7\r\ndefault\r\n");
}

#[test]
fn config_get_is_a_map_in_resp3() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["CONFIG", "GET", "save"], "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    c.check(
        &["CONFIG", "GET", "requirepass"],
        "*2\r\n$11\r\nrequirepass\r\n$0\r\n\r\n",
    );
    let id = client_id(&mut c);
    c.check(&["HELLO", "3"], &hello_reply(3, &id));
    c.check(&["CONFIG", "GET", "save"], "%1\r\n$4\r\nsave\r\n$0\r\n\r\n");
    c.check(&["CONFIG", "GET", "nosuch"], "%0\r\n");
    c.check(
        &["CONFIG", "GET", "requirepass"],
        "%1\r\n$11\r\nrequirepass\r\n$0\r\n\r\n",
    );
    c.check(
        &["CONFIG", "GET", "save", "appendonly"],
        "%2\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
    );
}

#[test]
fn info_and_client_info_are_verbatim_text_in_resp3() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["INFO", "keyspace"], "$12\r\n# Keyspace\r\n\r\n");
    let id = client_id(&mut c);
    c.check(&["HELLO", "3"], &hello_reply(3, &id));
    c.check(&["INFO", "keyspace"], "=16\r\ntxt:# Keyspace\r\n\r\n");
    c.check(&["SET", "k", "v"], "+OK\r\n");
    let body = "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n";
    c.check(
        &["INFO", "keyspace"],
        &format!("={}\r\ntxt:{body}\r\n", body.len() + 4),
    );
    c.send_cmd(&["INFO"]);
    let (format, text) = read_verbatim(&mut c);
    assert_eq!(format, "txt");
    assert!(text.starts_with("# Server\r\nredis_version:"), "{text:?}");
    assert!(text.contains("\r\n# Raft\r\n"), "{text:?}");

    c.send_cmd(&["CLIENT", "INFO"]);
    let (format, text) = read_verbatim(&mut c);
    assert_eq!(format, "txt");
    assert!(
        text.starts_with(&format!("id={id} addr=127.0.0.1:")),
        "{text:?}"
    );
    assert!(
        text.ends_with(" cmd=client|info user=default redir=-1 resp=3\n"),
        "{text:?}"
    );
    c.check(&["HELLO", "2"], &hello_reply(2, &id));
    let plain = String::from_utf8(c.call(&["CLIENT", "INFO"])).unwrap();
    assert!(plain.starts_with('$'), "{plain:?}");
    assert!(plain.ends_with(" resp=2\n\r\n"), "{plain:?}");
}

#[test]
fn command_replies_use_resp3_types() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let id = client_id(&mut c);
    c.check(&["COMMAND", "INFO", "nosuch"], "*1\r\n$-1\r\n");
    c.check(&["COMMAND", "DOCS", "nosuch"], "*0\r\n");
    c.check(&["HELLO", "3"], &hello_reply(3, &id));
    // Redis's RESP3 shapes: flags, ACL categories and tips are sets, key specs an array,
    // no subcommands an empty set. (The key specs are kvd's: it lists none.)
    c.check(
        &["COMMAND", "INFO", "get"],
        "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
         ~1\r\n+@read\r\n~0\r\n*0\r\n~0\r\n",
    );
    c.check(&["COMMAND", "INFO", "nosuch"], "*1\r\n_\r\n");
    c.check(&["COMMAND", "DOCS", "nosuch"], "%0\r\n");
    let count = String::from_utf8(c.call(&["COMMAND", "COUNT"])).unwrap();
    assert!(count.starts_with(':'), "{count:?}");
    // Without names, COMMAND INFO lists every command, like COMMAND.
    let n = count.trim_start_matches(':').trim_end();
    let all = c.call(&["COMMAND"]);
    assert!(all.starts_with(format!("*{n}\r\n*10\r\n").as_bytes()));
    assert_eq!(show(&c.call(&["COMMAND", "INFO"])), show(&all));
}

/// A reply waiting in the pipeline is written in the protocol in force when its command ran,
/// not when it is written out.
#[test]
fn pipelined_replies_keep_their_protocol() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let id = client_id(&mut c);
    let mut pipeline = Vec::new();
    for argv in [
        &["SET", "a", "1", "GET"][..],
        &["HELLO", "3"],
        &["SET", "b", "1", "GET"],
        &["GET", "missing"],
        &["HELLO", "2"],
        &["SET", "c", "1", "GET"],
        &["GET", "missing"],
    ] {
        pipeline.extend(encode_cmd(argv));
    }
    c.send(&pipeline);
    let expected = format!(
        "$-1\r\n{}_\r\n_\r\n{}$-1\r\n$-1\r\n",
        hello_reply(3, &id),
        hello_reply(2, &id)
    );
    c.expect(expected.as_bytes());
}

#[test]
fn hash_replies_are_maps_and_pairs_in_resp3_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["HSET", "h", "a", "1"], ":1\r\n");
    // RESP2: flat arrays.
    c.check(&["HGETALL", "h"], "*2\r\n$1\r\na\r\n$1\r\n1\r\n");
    c.check(
        &["HRANDFIELD", "h", "1", "WITHVALUES"],
        "*2\r\n$1\r\na\r\n$1\r\n1\r\n",
    );
    c.check(&["HGETALL", "nokey"], "*0\r\n");
    c.call(&["HELLO", "3"]);
    // RESP3 (taken from redis-server 7.0.15): a map, an empty map for a missing key, and
    // HRANDFIELD's field/value pairs nested.
    c.check(&["HGETALL", "h"], "%1\r\n$1\r\na\r\n$1\r\n1\r\n");
    c.check(&["HGETALL", "nokey"], "%0\r\n");
    c.check(
        &["HRANDFIELD", "h", "1", "WITHVALUES"],
        "*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n",
    );
    c.check(&["HRANDFIELD", "h", "1"], "*1\r\n$1\r\na\r\n");
    c.check(&["HKEYS", "nokey"], "*0\r\n");
}
