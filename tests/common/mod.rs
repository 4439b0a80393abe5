//! Shared harness for the whole-process tests: starts `kvd` binaries on free ports with their own
//! temp data dirs, waits until they answer, talks to them (through the `redis` crate or raw
//! bytes) and kills them on drop.
//!
//! Every test owns its directories and ports, so `cargo test` may run them in parallel. Nothing
//! here sleeps to synchronise: waits poll a condition with a deadline ([`poll_until`]) and fail
//! with the node's log when the deadline passes.

#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to answer PING after being spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a single node may take to become raft leader.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Client socket timeouts: longer than the server's default write timeout (5 s), so a reply the
/// server gives up on still arrives, while a hang fails the test instead of blocking it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of a node's log printed when a test panics with the node alive.
const LOG_TAIL_LINES: usize = 80;
/// Attempts at starting a node whose ports were taken between choosing and binding them.
const START_ATTEMPTS: usize = 6;

/// The binary under test, built by cargo for the integration tests.
pub fn kvd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kvd")
}

/// A port nobody listens on right now (the OS picks it; we release it at once).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free ports: the listeners are held until all are chosen, so the OS cannot hand out
/// the same port twice.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// Calls `f` every 25 ms until it returns `Some`, and returns that value; panics naming `what`
/// once `timeout` has passed.
#[track_caller]
pub fn poll_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Command-line arguments as owned strings.
pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Bytes shown with escapes, for assertion messages.
pub fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// Encodes one request as a RESP multibulk.
pub fn encode_cmd<A: AsRef<[u8]>>(argv: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", argv.len()).into_bytes();
    for a in argv {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Length of the first complete RESP2 or RESP3 reply in `buf`, or `None` if it is not complete
/// yet.
/// Panics on bytes that cannot start a reply (the stream is out of sync).
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    fn line_end(buf: &[u8], from: usize) -> Option<usize> {
        buf.get(from..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| from + p)
    }
    fn parse(buf: &[u8], at: usize) -> Option<usize> {
        let kind = *buf.get(at)?;
        let end = line_end(buf, at + 1)?;
        let after = end + 2;
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(after),
            b'$' | b'=' | b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n: i64 = std::str::from_utf8(&buf[at + 1..end])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("bad length line in reply: {}", show(buf)));
                if n < 0 {
                    return Some(after);
                }
                if kind == b'$' || kind == b'=' {
                    let stop = after + n as usize + 2;
                    return (buf.len() >= stop).then_some(stop);
                }
                // A map or an attribute holds n pairs; an attribute precedes the reply proper.
                let items = if kind == b'%' || kind == b'|' {
                    2 * n
                } else {
                    n
                };
                let mut pos = after;
                for _ in 0..items {
                    pos = parse(buf, pos)?;
                }
                if kind == b'|' {
                    pos = parse(buf, pos)?;
                }
                Some(pos)
            }
            other => panic!(
                "reply starts with unexpected byte {:?}: {}",
                other as char,
                show(&buf[at..buf.len().min(at + 200)])
            ),
        }
    }
    parse(buf, 0)
}

/// Sends `bytes` on a fresh connection and reads until the server closes it or nothing more
/// arrives for a while (up to `timeout` for the first byte, then 300 ms of silence). Returns what
/// was read and whether the server closed the connection. Meant for protocol-level checks whose
/// reply is short; use [`RawConn`] to wait for an exact amount.
pub fn raw_exchange(addr: &str, bytes: &[u8], timeout: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).ok();
    // The server may close before taking everything (that is sometimes the point of the test).
    let _ = s.write_all(bytes);
    let deadline = Instant::now() + timeout;
    let idle = Duration::from_millis(300);
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return (out, false);
        }
        let wait = if out.is_empty() { deadline - now } else { idle };
        s.set_read_timeout(Some(wait.min(deadline - now))).ok();
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !out.is_empty() {
                    return (out, false);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (out, true),
        }
    }
}

/// Keeps the calling thread on the CPU it is on now. What one thread sends on two loopback
/// connections reaches the server in send order only while the thread stays on one CPU: each
/// CPU queues its own packets, and a thread moved between two sends may have the second
/// delivered first (seen: a close sent before a command arrived after it, about once in 150
/// rounds beside other tests). Tests of the order in which connections' input runs pin first.
pub fn stay_on_this_cpu() {
    // SAFETY: sched_getcpu has no arguments; cpu_set_t is plain data, set through libc's own
    // macros, and passed with its size for the calling thread (pid 0).
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A raw TCP client for byte-exact checks: send what you like, read exactly what you expect.
pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub fn connect(addr: &str) -> RawConn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).ok();
        stream.set_write_timeout(Some(IO_TIMEOUT)).ok();
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
        self.stream.flush().ok();
    }

    pub fn send_cmd<A: AsRef<[u8]>>(&mut self, argv: &[A]) {
        self.send(&encode_cmd(argv));
    }

    /// Reads more into the buffer; false when the server closed the connection.
    fn fill(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            panic!(
                "timed out waiting for the server; received so far: {}",
                show(&self.buf)
            );
        }
        self.stream.set_read_timeout(Some(deadline - now)).ok();
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => true,
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(_) => false,
        }
    }

    /// Exactly `n` bytes (panics if the server closes first or `timeout` passes).
    #[track_caller]
    pub fn read_n(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.buf.len() < n {
            if !self.fill(deadline) {
                panic!(
                    "server closed after {} of {n} bytes: {}",
                    self.buf.len(),
                    show(&self.buf[..self.buf.len().min(400)])
                );
            }
        }
        self.buf.drain(..n).collect()
    }

    /// One complete RESP reply, as raw bytes.
    #[track_caller]
    pub fn read_reply(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(n) = reply_len(&self.buf) {
                return self.buf.drain(..n).collect();
            }
            if !self.fill(deadline) {
                panic!(
                    "server closed in the middle of a reply: {}",
                    show(&self.buf)
                );
            }
        }
    }

    /// Reads `expected.len()` bytes and asserts they are `expected`.
    #[track_caller]
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_n(expected.len(), IO_TIMEOUT);
        assert_eq!(
            show(&got),
            show(expected),
            "reply differs (left: got, right: expected)"
        );
    }

    /// Sends one command and returns its reply.
    #[track_caller]
    pub fn call<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> Vec<u8> {
        self.send_cmd(argv);
        self.read_reply()
    }

    /// Sends one command and asserts its reply is exactly `expected`.
    #[track_caller]
    pub fn check<A: AsRef<[u8]>>(&mut self, argv: &[A], expected: &str) {
        let got = self.call(argv);
        let shown: Vec<String> = argv
            .iter()
            .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
            .collect();
        assert_eq!(
            show(&got),
            show(expected.as_bytes()),
            "reply to {shown:?} (left: got, right: expected)"
        );
    }

    /// True once the server closes the connection (anything it sends first is returned by
    /// [`RawConn::pending`]); false if it stays open for `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.stream.set_read_timeout(Some(deadline - now)).ok();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Bytes received but not consumed yet.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

/// One `kvd` process: its ports, data dir and log, restartable in place.
pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub raft_port: u16,
    pub data_dir: PathBuf,
    /// stderr (and stdout) of every run of this node, appended; next to the data dir.
    pub log_path: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    /// Where the current run's output starts in the log.
    log_start: u64,
    /// Set by [`Node::single`]: the node owns its temp dir, removed after the process is killed.
    own_dir: Option<tempfile::TempDir>,
}

impl Node {
    /// Starts node `name` with data in `base/name` and its log in `base/name.log`, on fresh free
    /// ports, plus `extra` arguments; returns once it answers PING. Retries with new ports if one
    /// was taken meanwhile.
    pub fn start(name: &str, base: &Path, extra: &[String]) -> Node {
        let [client_port, raft_port] = free_ports(2)[..] else {
            unreachable!()
        };
        let mut node = Node {
            name: name.to_string(),
            client_port,
            raft_port,
            data_dir: base.join(name),
            log_path: base.join(format!("{name}.log")),
            extra: extra.to_vec(),
            child: None,
            log_start: 0,
            own_dir: None,
        };
        node.launch(true);
        node
    }

    /// A one-node cluster in its own temp dir (named `node0`), started and leader.
    pub fn single(extra: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = Node::start("node0", dir.path(), &args(extra));
        node.own_dir = Some(dir);
        node.wait_role("leader", LEADER_TIMEOUT);
        node
    }

    /// The command line of this node (without the binary).
    pub fn command_args(&self) -> Vec<String> {
        let mut a = args(&[
            "--id",
            &self.name,
            "--addr",
            &format!("127.0.0.1:{}", self.client_port),
            "--raft-addr",
            &format!("127.0.0.1:{}", self.raft_port),
        ]);
        a.extend(self.extra.iter().cloned());
        a.push(self.data_dir.display().to_string());
        a
    }

    fn spawn(&mut self) {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open node log");
        let _ = writeln!(
            log,
            "===== test harness: starting kvd {}",
            self.command_args().join(" ")
        );
        self.log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(kvd_bin());
        cmd.args(self.command_args())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        // The test's own environment must not configure the node behind our back.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("KVD_") {
                cmd.env_remove(k);
            }
        }
        self.child = Some(cmd.spawn().expect("spawn kvd"));
    }

    /// Spawns and waits for PING; retries when a port was taken (new ports only if allowed:
    /// a restarted cluster member must keep its addresses).
    fn launch(&mut self, new_ports_allowed: bool) {
        for attempt in 1..=START_ATTEMPTS {
            self.spawn();
            match self.wait_answering(START_TIMEOUT) {
                Ok(()) => return,
                Err(run_log) if run_log.contains("cannot listen") && attempt < START_ATTEMPTS => {
                    if new_ports_allowed {
                        let p = free_ports(2);
                        self.client_port = p[0];
                        self.raft_port = p[1];
                    } else {
                        // Same ports: give whoever holds the port a moment to let go.
                        let until = Instant::now() + Duration::from_millis(200 * attempt as u64);
                        poll_until(Duration::from_secs(5), "retry delay", || {
                            (Instant::now() >= until).then_some(())
                        });
                    }
                }
                Err(_) => panic!(
                    "kvd node {} did not start; its log:\n{}",
                    self.name,
                    self.log()
                ),
            }
        }
    }

    /// Waits until the process answers PING; Err(log of this run) if it exits first.
    fn wait_answering(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return Err(self.run_log());
            }
            if self.child.is_none() {
                return Err(self.run_log());
            }
            if ping_with(&self.client_addr(), self.password()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("no PONG within {timeout:?}\n{}", self.run_log()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Polls PING until PONG; panics with the log if the process exits or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration) {
        if let Err(log) = self.wait_answering(timeout) {
            panic!("node {} is not answering PING:\n{log}", self.name);
        }
    }

    /// Waits until `INFO raft` shows `raft_role:<role>`.
    pub fn wait_role(&mut self, role: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.info_field("raft", "raft_role").as_deref() == Some(role) {
                return;
            }
            if !self.is_running() {
                panic!(
                    "node {} exited while waiting for role {role}:\n{}",
                    self.name,
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "node {} did not become {role} within {timeout:?} (INFO raft: {:?}); log:\n{}",
                    self.name,
                    self.info("raft"),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn client_addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn raft_addr(&self) -> String {
        format!("127.0.0.1:{}", self.raft_port)
    }

    /// A `redis` crate connection with timeouts (so a hang fails instead of blocking).
    pub fn conn(&self) -> redis::Connection {
        self.try_conn()
            .unwrap_or_else(|e| panic!("connect to node {}: {e}", self.name))
    }

    /// The `--requirepass` among this node's arguments: the harness's own connections
    /// (PING, INFO, [`Node::conn`]) authenticate with it.
    pub fn password(&self) -> Option<&str> {
        self.extra
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1].as_str())
    }

    pub fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        let auth = self
            .password()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        let client = redis::Client::open(format!("redis://{auth}{}/", self.client_addr()))?;
        let con = client.get_connection_with_timeout(IO_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }

    /// A raw connection for byte-exact checks.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(&self.client_addr())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                _ => {
                    self.child = None;
                    false
                }
            },
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits (up to 30 s) for the exit and returns its status.
    pub fn sigterm(&mut self) -> ExitStatus {
        self.sigterm_within(Duration::from_secs(30))
    }

    /// SIGTERM, then waits up to `timeout` for the exit; panics (after SIGKILL) if it does not.
    pub fn sigterm_within(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("node {} is not running", self.name));
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {} did not exit within {timeout:?} of SIGTERM; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again with the same ports, data dir and arguments.
    pub fn restart(&mut self) {
        assert!(
            !self.is_running(),
            "restart of node {} while it runs",
            self.name
        );
        self.launch(false);
    }

    /// Like [`Node::restart`] with different extra arguments from now on.
    pub fn restart_with(&mut self, extra: &[String]) {
        self.extra = extra.to_vec();
        self.restart();
    }

    /// Everything the node wrote to stderr/stdout over all its runs.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Output of the current (or last) run only.
    fn run_log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            use std::io::{Seek, SeekFrom};
            let _ = f.seek(SeekFrom::Start(self.log_start));
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// `INFO <section>` text, or None if the node does not answer.
    pub fn info(&self, section: &str) -> Option<String> {
        let mut con = self.try_conn().ok()?;
        redis::cmd("INFO").arg(section).query(&mut con).ok()
    }

    /// The value of `key` in `INFO <section>` (`key:value` lines).
    pub fn info_field(&self, section: &str, key: &str) -> Option<String> {
        parse_info_field(&self.info(section)?, key)
    }

    /// A numeric INFO field.
    pub fn info_u64(&self, section: &str, key: &str) -> Option<u64> {
        self.info_field(section, key)?.parse().ok()
    }
}

/// Waits (10 s at most) until `n` clients are blocked on `node` (INFO's `blocked_clients`).
pub fn wait_blocked(node: &Node, n: u64) {
    poll_until(Duration::from_secs(10), "clients to block", || {
        (node.info_u64("clients", "blocked_clients") == Some(n)).then_some(())
    });
}

/// Finds `key:value` in INFO text.
pub fn parse_info_field(info: &str, key: &str) -> Option<String> {
    info.lines().find_map(|l| {
        let (k, v) = l.trim_end_matches('\r').split_once(':')?;
        (k == key).then(|| v.to_string())
    })
}

/// The `memberN:` lines of INFO raft as key/value maps.
pub fn parse_members(info: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    info.lines()
        .filter_map(|l| {
            let (k, v) = l.trim_end_matches('\r').split_once(':')?;
            let idx = k.strip_prefix("member")?;
            idx.parse::<usize>().ok()?;
            Some(
                v.split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            )
        })
        .collect()
}

/// True if `addr` answers a PING with +PONG right now.
pub fn ping(addr: &str) -> bool {
    ping_with(addr, None)
}

/// [`ping`], authenticating first with `password` when it is given (`--requirepass`).
pub fn ping_with(addr: &str, password: Option<&str>) -> bool {
    let Ok(sa) = addr.parse::<SocketAddr>() else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&sa, Duration::from_millis(500)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let (mut request, expected) = match password {
        Some(p) => (encode_cmd(&["AUTH", p]), b"+OK\r\n+PONG\r\n".to_vec()),
        None => (Vec::new(), b"+PONG\r\n".to_vec()),
    };
    request.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    if s.write_all(&request).is_err() {
        return false;
    }
    let mut buf = vec![0u8; expected.len()];
    s.read_exact(&mut buf).is_ok() && buf == expected
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "----- last {} lines of node {} log ({}) -----\n{}\n----- end of node {} log -----",
                tail.len(),
                self.name,
                self.log_path.display(),
                tail.join("\n"),
                self.name
            );
        }
        self.kill9();
    }
}

/// Several nodes forming one raft cluster, all in one temp dir.
pub struct Cluster {
    /// Declared before `dir`: the processes die before their directory is removed.
    pub nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// node0 bootstraps; node1.. start with `--join <node0 client addr>`. Returns once every node
    /// is leader or follower and the leader lists `n` voters.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        assert!(n >= 1);
        let dir = tempfile::tempdir().expect("temp dir");
        let extra = args(extra);
        let mut nodes = vec![Node::start("node0", dir.path(), &extra)];
        nodes[0].wait_role("leader", LEADER_TIMEOUT);
        let seed = nodes[0].client_addr();
        for i in 1..n {
            let mut e = extra.clone();
            e.extend(args(&["--join", &seed]));
            nodes.push(Node::start(&format!("node{i}"), dir.path(), &e));
        }
        let mut cluster = Cluster { nodes, dir };
        cluster.wait_formed(n, Duration::from_secs(60));
        cluster
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until every node is leader or follower and the leader's INFO lists `n` voters.
    pub fn wait_formed(&mut self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let roles: Vec<Option<String>> = self
                .nodes
                .iter()
                .map(|node| node.info_field("raft", "raft_role"))
                .collect();
            let all_in = roles
                .iter()
                .all(|r| matches!(r.as_deref(), Some("leader") | Some("follower")));
            let voters = self.leader_index().and_then(|l| {
                let info = self.nodes[l].info("raft")?;
                let members = parse_members(&info);
                Some(
                    members
                        .iter()
                        .filter(|m| m.get("role").map(String::as_str) == Some("voter"))
                        .count(),
                )
            });
            if all_in && voters == Some(n) {
                return;
            }
            for node in &mut self.nodes {
                if !node.is_running() {
                    panic!("node {} exited while the cluster formed", node.name);
                }
            }
            if Instant::now() >= deadline {
                let infos: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|node| format!("{}: {:?}", node.name, node.info("raft")))
                    .collect();
                panic!(
                    "cluster of {n} did not form within {timeout:?}: roles {roles:?}, leader voters \
                     {voters:?}\n{}",
                    infos.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node whose INFO raft says it is leader (the first one, if views disagree briefly).
    pub fn leader_index(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.info_field("raft", "raft_role").as_deref() == Some("leader"))
    }

    pub fn wait_for_leader(&self, timeout: Duration) -> usize {
        poll_until(timeout, "a cluster leader", || self.leader_index())
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }
}

/// Runs one command through the `redis` crate, panicking (with the command) on an error reply.
#[track_caller]
pub fn q<T: redis::FromRedisValue>(con: &mut redis::Connection, argv: &[&str]) -> T {
    try_q(con, argv).unwrap_or_else(|e| panic!("{argv:?} failed: {e}"))
}

/// Runs one command through the `redis` crate.
pub fn try_q<T: redis::FromRedisValue>(
    con: &mut redis::Connection,
    argv: &[&str],
) -> redis::RedisResult<T> {
    let mut c = redis::cmd(argv[0]);
    for a in &argv[1..] {
        c.arg(*a);
    }
    c.query(con)
}

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a start of `kvd` that may be refused ended (see [`start_or_exit`]).
pub enum Started {
    /// The process exited on its own, with this status and output (stderr and stdout).
    Exited { status: ExitStatus, output: String },
    /// The process answers PING; it is killed when this is dropped.
    Serving(KillOnDrop),
}

/// Runs `kvd args` with its output in `output_path` (truncated first) and waits until it either
/// exits or answers PING on `addr`; panics if neither happens within `timeout`. For tests of
/// what kvd refuses at start.
pub fn start_or_exit(
    args: &[String],
    addr: &str,
    output_path: &Path,
    timeout: Duration,
) -> Started {
    let out = File::create(output_path).expect("create output file");
    let mut cmd = Command::new(kvd_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone output handle"))
        .stderr(out);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KVD_") {
            cmd.env_remove(k);
        }
    }
    let mut child = KillOnDrop(cmd.spawn().expect("spawn kvd"));
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            let output = fs::read(output_path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            return Started::Exited { status, output };
        }
        if ping(addr) {
            return Started::Serving(child);
        }
        if Instant::now() >= deadline {
            panic!("kvd {args:?} neither exited nor answered PING within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

impl Node {
    /// Runs this node's command line once with [`start_or_exit`] (output in `<log>.attempt`),
    /// outside the node's own process slot: the node must be stopped.
    pub fn start_or_exit(&mut self, timeout: Duration) -> Started {
        assert!(!self.is_running(), "node {} is running", self.name);
        let path = self.log_path.with_extension("attempt.log");
        start_or_exit(&self.command_args(), &self.client_addr(), &path, timeout)
    }
}
