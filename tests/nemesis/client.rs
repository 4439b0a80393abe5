//! A small fault-tolerant RESP client for workloads under faults: every call has a deadline, and
//! every failure (refused connection, timeout, dropped connection) comes back as a value to
//! record instead of a panic.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::{encode_cmd, reply_len};

/// A parsed RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    /// The bulk or status text, lossily as a string (for INFO, DIGEST, ...).
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// What a reply says about whether a write took effect (README, "What reads and writes
/// guarantee").
#[derive(Debug)]
pub enum Fate {
    /// A real reply.
    Done(Reply),
    /// The server said the write was not applied (`-CLUSTERDOWN`, `-TRYAGAIN`, or a refusal
    /// before proposing, such as on a removed node).
    Failed(String),
    /// Nobody knows: `-TIMEOUT ... outcome unknown`, a socket timeout, a dropped connection.
    /// `unexpected` is set for an error reply kvd is not documented to give.
    Unknown { why: String, unexpected: bool },
}

impl Fate {
    pub fn of(result: io::Result<Reply>) -> Fate {
        match result {
            Ok(Reply::Error(e)) => {
                if e.starts_with("CLUSTERDOWN")
                    || e.starts_with("TRYAGAIN")
                    || e.starts_with("ERR this node was removed")
                {
                    Fate::Failed(e)
                } else if e.starts_with("TIMEOUT") {
                    Fate::Unknown {
                        why: e,
                        unexpected: false,
                    }
                } else {
                    Fate::Unknown {
                        why: e,
                        unexpected: true,
                    }
                }
            }
            Ok(r) => Fate::Done(r),
            Err(e) => Fate::Unknown {
                why: format!("io: {e}"),
                unexpected: false,
            },
        }
    }
}

/// One connection with read and write timeouts.
pub struct Client {
    pub addr: String,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects within `timeout`; every later call waits at most `io_timeout` for its reply.
    pub fn connect(addr: &str, timeout: Duration, io_timeout: Duration) -> io::Result<Client> {
        let sa: SocketAddr = addr
            .parse()
            .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "bad address"))?;
        let stream = TcpStream::connect_timeout(&sa, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(io_timeout))?;
        stream.set_write_timeout(Some(io_timeout))?;
        Ok(Client {
            addr: addr.to_string(),
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends one command and reads its reply. After an `Err` the connection is unusable (a late
    /// reply could be taken for the next one's): drop it.
    pub fn call<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> io::Result<Reply> {
        self.stream.write_all(&encode_cmd(argv))?;
        self.read_reply()
    }

    /// Sends several commands in one write (a pipeline); read their replies with
    /// [`Client::read_reply`], in order.
    pub fn send_pipeline<A: AsRef<[u8]>>(&mut self, cmds: &[Vec<A>]) -> io::Result<()> {
        let mut bytes = Vec::new();
        for argv in cmds {
            bytes.extend(encode_cmd(argv));
        }
        self.stream.write_all(&bytes)
    }

    /// The next reply.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        loop {
            if let Some(n) = reply_len(&self.buf) {
                let bytes: Vec<u8> = self.buf.drain(..n).collect();
                return Ok(parse(&bytes, 0).0);
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::Error::new(ErrorKind::UnexpectedEof, "server closed")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// A call whose reply must be a string (status or bulk): INFO, DIGEST.
    pub fn text(&mut self, argv: &[&str]) -> io::Result<String> {
        match self.call(argv)? {
            r @ (Reply::Status(_) | Reply::Bulk(Some(_))) => Ok(r.text().unwrap_or_default()),
            other => Err(io::Error::other(format!("{argv:?} -> {other:?}"))),
        }
    }
}

/// One call on a fresh connection (short timeouts): for status queries.
pub fn call_once(addr: &str, argv: &[&str], timeout: Duration) -> io::Result<Reply> {
    Client::connect(addr, timeout, timeout)?.call(argv)
}

/// `INFO raft` of the node at `addr`, or None if it does not answer within `timeout`.
pub fn info_raft(addr: &str, timeout: Duration) -> Option<String> {
    Client::connect(addr, timeout, timeout)
        .ok()?
        .text(&["INFO", "raft"])
        .ok()
}

/// Parses the complete reply starting at `at` (its length was checked by `reply_len`).
fn parse(buf: &[u8], at: usize) -> (Reply, usize) {
    let end = at + buf[at..].windows(2).position(|w| w == b"\r\n").unwrap();
    let line = String::from_utf8_lossy(&buf[at + 1..end]).into_owned();
    let after = end + 2;
    match buf[at] {
        b'+' => (Reply::Status(line), after),
        b'-' => (Reply::Error(line), after),
        b':' => (Reply::Int(line.parse().unwrap_or(i64::MIN)), after),
        b'$' => {
            let n: i64 = line.parse().unwrap_or(-1);
            if n < 0 {
                (Reply::Bulk(None), after)
            } else {
                let stop = after + n as usize;
                (Reply::Bulk(Some(buf[after..stop].to_vec())), stop + 2)
            }
        }
        _ => {
            let n: i64 = line.parse().unwrap_or(-1);
            let mut items = Vec::new();
            let mut pos = after;
            for _ in 0..n.max(0) {
                let (r, next) = parse(buf, pos);
                items.push(r);
                pos = next;
            }
            (Reply::Array(items), pos)
        }
    }
}
