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
