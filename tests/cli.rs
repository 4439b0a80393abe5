//! The `kvd` command line: help text, and startup failures reported as one `kvd: ...` line.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs kvd to completion (it must exit on its own within 30 s) without any KVD_* variables
/// from the test's environment.
fn run_kvd(argv: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(kvd_bin());
    cmd.args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KVD_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn kvd");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "kvd {argv:?} did not exit within 30 s; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts a failed start: non-zero exit, exactly one stderr line `kvd: ...`, no panic.
/// Returns that line.
#[track_caller]
fn assert_one_line_failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected failure, got {:?}; stderr:\n{stderr}",
        out.status
    );
    assert!(
        out.status.code().is_some(),
        "killed by a signal: {:?}",
        out.status
    );
    assert!(
        !stderr.contains("panicked"),
        "panic on bad input:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got:\n{stderr}");
    assert!(lines[0].starts_with("kvd: "), "{stderr}");
    lines[0].to_string()
}

/// Client and raft addresses on fresh ports.
fn addrs() -> (String, String) {
    let p = free_ports(2);
    (format!("127.0.0.1:{}", p[0]), format!("127.0.0.1:{}", p[1]))
}

#[test]
fn help_mentions_every_flag() {
    let out = run_kvd(&["--help"], &[]);
    assert!(out.status.success(), "{:?}", out.status);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--id",
        "--addr",
        "--raft-addr",
        "--join",
        "--log-level",
        "--write-timeout-ms",
        "--tick-ms",
        "--compact-entries",
        "--compact-keep",
        "--max-value-size",
        "--max-key-size",
        "--proto-max-bulk-len",
        "--client-output-limit-mb",
        "--max-clients",
        "--read-consistency",
        "DATA_DIR",
        "KVD_ADDR",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}

#[test]
fn bad_addr_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let out = run_kvd(&["--addr", "nonsense", data.to_str().unwrap()], &[]);
    let line = assert_one_line_failure(&out);
    assert!(line.contains("--addr"), "{line}");
    // The same through the environment.
    let out = run_kvd(&[data.to_str().unwrap()], &[("KVD_ADDR", "nonsense")]);
    let line = assert_one_line_failure(&out);
    assert!(line.contains("nonsense"), "{line}");
}

#[test]
fn other_bad_values_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let data = data.to_str().unwrap();
    let (addr, raft) = addrs();
    for bad in [
        &["--raft-addr", "1.2.3.4"][..],
        &["--join", "x:y"],
        &["--log-level", "loud"],
        &["--id", "bad name"],
        &["--tick-ms", "0"],
        &["--redis-version", "7.4"],
        &["--redis-version", "7.x.0"],
        &["--max-value-size", "2000", "--proto-max-bulk-len", "1000"],
    ] {
        let mut argv = vec!["--addr", addr.as_str()];
        if !bad.contains(&"--raft-addr") {
            argv.extend(["--raft-addr", raft.as_str()]);
        }
        argv.extend_from_slice(bad);
        argv.push(data);
        let out = run_kvd(&argv, &[]);
        assert_one_line_failure(&out);
    }
}

#[test]
fn unparsable_values_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let data = data.to_str().unwrap();
    for bad in [
        &["--tick-ms", "abc"][..],
        &["--max-clients", "-1"],
        &["--read-consistency", "sometimes"],
        &["--no-such-flag"],
    ] {
        let mut argv = bad.to_vec();
        argv.push(data);
        let out = run_kvd(&argv, &[]);
        assert_one_line_failure(&out);
    }
}

#[test]
fn client_port_in_use_is_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let raft = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let out = run_kvd(
        &[
            "--addr",
            &taken_addr,
            "--raft-addr",
            &raft,
            data.to_str().unwrap(),
        ],
        &[],
    );
    let line = assert_one_line_failure(&out);
    assert!(line.contains(&taken_addr), "{line}");
    drop(taken);
}

#[test]
fn raft_port_in_use_is_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let out = run_kvd(
        &[
            "--addr",
            &addr,
            "--raft-addr",
            &taken_addr,
            data.to_str().unwrap(),
        ],
        &[],
    );
    let line = assert_one_line_failure(&out);
    assert!(line.contains(&taken_addr), "{line}");
    drop(taken);
}

#[test]
fn unusable_data_dir_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"not a directory").unwrap();
    let data = file.join("sub");
    let (addr, raft) = addrs();
    let out = run_kvd(
        &[
            "--addr",
            &addr,
            "--raft-addr",
            &raft,
            data.to_str().unwrap(),
        ],
        &[],
    );
    let line = assert_one_line_failure(&out);
    assert!(line.contains("sub"), "{line}");
}

#[test]
fn data_dir_in_use_by_another_node_is_one_line() {
    let node = Node::single(&[]);
    let (addr, raft) = addrs();
    let out = run_kvd(
        &[
            "--addr",
            &addr,
            "--raft-addr",
            &raft,
            node.data_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_one_line_failure(&out);
    // The running node is unharmed.
    node.raw().check(&["PING"], "+PONG\r\n");
}

#[test]
fn flags_come_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, raft) = addrs();
    let data = dir.path().join("envnode");
    let mut child = Command::new(kvd_bin())
        .env("KVD_ADDR", &addr)
        .env("KVD_RAFT_ADDR", &raft)
        .env("KVD_DATA_DIR", &data)
        .env("KVD_MAX_CLIENTS", "7")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kvd");
    let result = std::panic::catch_unwind(|| {
        poll_until(START_TIMEOUT, "kvd started from env vars", || {
            ping(&addr).then_some(())
        });
        let mut con = redis::Client::open(format!("redis://{addr}/"))
            .unwrap()
            .get_connection_with_timeout(IO_TIMEOUT)
            .unwrap();
        let info: String = q(&mut con, &["INFO", "raft"]);
        // The name defaults to the data dir's last component.
        assert_eq!(
            parse_info_field(&info, "raft_node_name").as_deref(),
            Some("envnode")
        );
        let max: Vec<String> = q(&mut con, &["CONFIG", "GET", "maxclients"]);
        assert_eq!(max, vec!["maxclients".to_string(), "7".to_string()]);
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(data.join("kvd.redb").exists());
}

/// Starts a fresh one-node kvd with `KVD_DEBUG_PANIC=place` (logging only errors, so the fatal
/// line is all it prints) and sends it writes until it exits; returns its output.
#[cfg(debug_assertions)]
fn run_until_debug_panic(place: &str) -> Output {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let (addr, raft) = addrs();
    let mut cmd = Command::new(kvd_bin());
    cmd.args([
        "--addr",
        &addr,
        "--raft-addr",
        &raft,
        "--log-level",
        "error",
        data.to_str().unwrap(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KVD_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("KVD_DEBUG_PANIC", place);
    let mut child = KillOnDrop(cmd.spawn().expect("spawn kvd"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.0.try_wait().expect("try_wait").is_some() {
            let mut out = Output {
                status: child.0.wait().expect("wait"),
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
            use std::io::Read;
            if let Some(mut e) = child.0.stderr.take() {
                e.read_to_end(&mut out.stderr).unwrap();
            }
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "kvd with KVD_DEBUG_PANIC={place} did not exit within 30 s"
        );
        // A write reaches every thread the trigger can be on: a client task, raft, persist.
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            let _ = s.write_all(&encode_cmd(&["SET", "k", "v"]));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A panic on any kvd thread stops the whole process (it cannot be trusted to go on) with one
/// line naming the thread and a non-zero status; never a backtrace, never a half-alive node.
#[cfg(debug_assertions)]
#[test]
fn a_panic_on_any_thread_stops_the_process_with_one_line() {
    for (place, thread) in [
        ("raft", "raft"),
        ("persist", "persist"),
        ("client", "kvd-io"),
    ] {
        let out = run_until_debug_panic(place);
        let line = assert_one_line_failure(&out);
        assert_eq!(out.status.code(), Some(70), "{place}: {line}");
        assert!(
            line.starts_with(&format!("kvd: internal error in thread '{thread}': ")),
            "{place}: {line}"
        );
        assert!(line.contains(&format!("KVD_DEBUG_PANIC={place}")), "{line}");
    }
}

/// `--join` with a name the cluster already gives another member: refused for good, so the
/// node stops at once with the cluster's reason instead of asking for ten minutes.
#[test]
fn a_join_refused_for_good_is_one_line() {
    let seed = Node::single(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dup");
    let (addr, raft) = addrs();
    let out = run_kvd(
        &[
            "--id",
            &seed.name,
            "--addr",
            &addr,
            "--raft-addr",
            &raft,
            "--join",
            &seed.client_addr(),
            "--log-level",
            "error",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let line = assert_one_line_failure(&out);
    assert_eq!(out.status.code(), Some(1), "{line}");
    assert!(
        line.starts_with("kvd: the cluster refused to add this node: node name 'node0' is already used by another member"),
        "{line}"
    );
    // The same JOIN from a client: the refusal's code word.
    let r = seed
        .raw()
        .call(&["JOIN", seed.name.as_str(), raft.as_str()]);
    let r = String::from_utf8_lossy(&r);
    assert!(r.starts_with("-JOINREFUSED node name 'node0'"), "{r}");
}

/// `connected_clients` counts connections while they live and forgets them however they end:
/// closed by the client, closed for a protocol error, or dropped with a write in flight.
#[test]
fn connected_clients_returns_to_one_however_connections_end() {
    use std::io::Write;
    let node = Node::single(&[]);
    let connected = || {
        node.info_u64("clients", "connected_clients")
            .expect("connected_clients in INFO")
    };
    let mut conns = Vec::new();
    for _ in 0..5 {
        let mut c = node.raw();
        c.check(&["PING"], "+PONG\r\n");
        conns.push(c);
    }
    // INFO's own connection is counted too.
    assert_eq!(connected(), 6);
    drop(conns);
    // A protocol error closes the connection from the server's side.
    let (_, closed) = raw_exchange(&node.client_addr(), b"*1\r\n$x\r\n", IO_TIMEOUT);
    assert!(closed);
    // A client gone with its write unanswered.
    let mut s = std::net::TcpStream::connect(node.client_addr()).unwrap();
    s.write_all(&encode_cmd(&["SET", "k", "v"])).unwrap();
    drop(s);
    poll_until(IO_TIMEOUT, "connected_clients back to 1", || {
        (connected() == 1).then_some(())
    });
}
