//! The one reply encoder: every byte kvd sends to a client is written by [`Reply::encode`].
//!
//! Commands build a [`Reply`] value instead of writing bytes, so the wire format (RESP2) is
//! decided in one place and a reply can be inspected in tests without parsing it back.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

const CRLF: &[u8] = b"\r\n";

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK\r\n`.
    Status(Cow<'static, str>),
    /// `-ERR ...\r\n`; the string includes the prefix word, e.g. `ERR unknown command` or
    /// `CLUSTERDOWN no raft leader`, because clients dispatch on that word.
    Error(Cow<'static, str>),
    /// `:1\r\n`.
    Integer(i64),
    /// `$3\r\nabc\r\n`.
    Bulk(Bytes),
    /// `$-1\r\n`: the missing value (GET of an absent key).
    Nil,
    /// `*2\r\n...`.
    Array(Vec<Reply>),
    /// `*-1\r\n`: the missing array (e.g. a BLPOP timeout).
    NilArray,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Status(Cow::Borrowed("OK"))
    }

    pub fn status(s: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Status(s.into())
    }

    pub fn error(s: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(s.into())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    pub fn integer(n: i64) -> Reply {
        Reply::Integer(n)
    }

    pub fn array(items: impl IntoIterator<Item = Reply>) -> Reply {
        Reply::Array(items.into_iter().collect())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the RESP2 encoding to `out`, reserving the whole length first so a large
    /// reply grows the buffer once.
    ///
    /// A `\r` or `\n` in a status or error string is written as a space, as Redis does for
    /// errors: these lines have no length prefix, so a line break would end the reply early
    /// and desynchronise the client.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        self.write(out);
    }

    /// The number of bytes [`Reply::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        match self {
            Reply::Status(s) | Reply::Error(s) => 1 + s.len() + CRLF.len(),
            Reply::Integer(n) => 1 + signed_digits(*n) + CRLF.len(),
            Reply::Bulk(b) => 1 + unsigned_digits(len_u64(b.len())) + 2 * CRLF.len() + b.len(),
            Reply::Nil | Reply::NilArray => b"$-1\r\n".len(),
            Reply::Array(items) => {
                let header = 1 + unsigned_digits(len_u64(items.len())) + CRLF.len();
                header + items.iter().map(Reply::encoded_len).sum::<usize>()
            }
        }
    }

    fn write(&self, out: &mut BytesMut) {
        match self {
            Reply::Status(s) => write_line(out, b'+', s),
            Reply::Error(s) => write_line(out, b'-', s),
            Reply::Integer(n) => {
                out.put_u8(b':');
                write_signed(out, *n);
                out.put_slice(CRLF);
            }
            Reply::Bulk(b) => {
                write_length_header(out, b'$', b.len());
                out.put_slice(b);
                out.put_slice(CRLF);
            }
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::Array(items) => {
                write_length_header(out, b'*', items.len());
                for item in items {
                    item.write(out);
                }
            }
            Reply::NilArray => out.put_slice(b"*-1\r\n"),
        }
    }
}

impl From<i64> for Reply {
    fn from(n: i64) -> Self {
        Reply::Integer(n)
    }
}

impl From<Bytes> for Reply {
    fn from(b: Bytes) -> Self {
        Reply::Bulk(b)
    }
}

/// `None` is the nil bulk, as GET replies for an absent key.
impl From<Option<Bytes>> for Reply {
    fn from(value: Option<Bytes>) -> Self {
        value.map_or(Reply::Nil, Reply::Bulk)
    }
}

impl From<Vec<Reply>> for Reply {
    fn from(items: Vec<Reply>) -> Self {
        Reply::Array(items)
    }
}

/// Writes `<prefix><text>\r\n` with any CR or LF in `text` replaced by a space.
fn write_line(out: &mut BytesMut, prefix: u8, text: &str) {
    out.put_u8(prefix);
    let bytes = text.as_bytes();
    if bytes.iter().any(|&b| is_line_break(b)) {
        for &b in bytes {
            out.put_u8(if is_line_break(b) { b' ' } else { b });
        }
    } else {
        out.put_slice(bytes);
    }
    out.put_slice(CRLF);
}

fn is_line_break(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

fn write_length_header(out: &mut BytesMut, prefix: u8, len: usize) {
    out.put_u8(prefix);
    write_unsigned(out, len_u64(len));
    out.put_slice(CRLF);
}

/// usize is at most 64 bits on every target kvd builds for; saturating keeps this total.
fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

fn write_signed(out: &mut BytesMut, n: i64) {
    if n < 0 {
        out.put_u8(b'-');
    }
    write_unsigned(out, n.unsigned_abs());
}

/// Formats in a stack buffer: no allocation besides growing `out`.
fn write_unsigned(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[start..]);
}

fn signed_digits(n: i64) -> usize {
    usize::from(n < 0) + unsigned_digits(n.unsigned_abs())
}

fn unsigned_digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(reply: &Reply) -> Vec<u8> {
        let mut out = BytesMut::new();
        reply.encode(&mut out);
        assert_eq!(out.len(), reply.encoded_len(), "encoded_len of {reply:?}");
        out.to_vec()
    }

    #[test]
    fn status() {
        assert_eq!(encoded(&Reply::ok()), b"+OK\r\n");
        assert_eq!(encoded(&Reply::status("PONG")), b"+PONG\r\n");
        assert_eq!(
            encoded(&Reply::status(String::from("QUEUED"))),
            b"+QUEUED\r\n"
        );
    }

    #[test]
    fn error() {
        let reply = Reply::error("ERR unknown command");
        assert!(reply.is_error());
        assert!(!Reply::ok().is_error());
        assert_eq!(encoded(&reply), b"-ERR unknown command\r\n");
        assert_eq!(
            encoded(&Reply::error("CLUSTERDOWN no raft leader")),
            b"-CLUSTERDOWN no raft leader\r\n"
        );
    }

    #[test]
    fn line_breaks_in_simple_strings_become_spaces() {
        assert_eq!(
            encoded(&Reply::error("ERR a\r\nb\nc\rd")),
            b"-ERR a  b c d\r\n"
        );
        assert_eq!(encoded(&Reply::status("a\nb")), b"+a b\r\n");
    }

    #[test]
    fn integer() {
        assert_eq!(encoded(&Reply::from(0)), b":0\r\n");
        assert_eq!(encoded(&Reply::integer(1)), b":1\r\n");
        assert_eq!(encoded(&Reply::integer(-42)), b":-42\r\n");
        assert_eq!(encoded(&Reply::integer(1_000_000)), b":1000000\r\n");
        assert_eq!(
            encoded(&Reply::integer(i64::MAX)),
            b":9223372036854775807\r\n"
        );
        assert_eq!(
            encoded(&Reply::integer(i64::MIN)),
            b":-9223372036854775808\r\n"
        );
    }

    #[test]
    fn bulk_and_nil() {
        assert_eq!(encoded(&Reply::bulk(&b"abc"[..])), b"$3\r\nabc\r\n");
        assert_eq!(encoded(&Reply::bulk(Bytes::new())), b"$0\r\n\r\n");
        // Bulk strings are binary safe: no sanitising.
        assert_eq!(encoded(&Reply::bulk(&b"a\r\nb"[..])), b"$4\r\na\r\nb\r\n");
        assert_eq!(
            encoded(&Reply::bulk(vec![b'x'; 1234])).len(),
            1 + 4 + 2 + 1234 + 2
        );
        assert_eq!(encoded(&Reply::Nil), b"$-1\r\n");
        assert_eq!(encoded(&Reply::from(None::<Bytes>)), b"$-1\r\n");
        assert_eq!(
            encoded(&Reply::from(Some(Bytes::from_static(b"v")))),
            b"$1\r\nv\r\n"
        );
    }

    #[test]
    fn arrays() {
        assert_eq!(encoded(&Reply::Array(vec![])), b"*0\r\n");
        assert_eq!(encoded(&Reply::NilArray), b"*-1\r\n");
        let nested = Reply::array([
            Reply::integer(1),
            Reply::array([Reply::bulk(&b"a"[..]), Reply::Nil, Reply::NilArray]),
            Reply::ok(),
            Reply::error("ERR x"),
        ]);
        assert_eq!(
            encoded(&nested),
            b"*4\r\n:1\r\n*3\r\n$1\r\na\r\n$-1\r\n*-1\r\n+OK\r\n-ERR x\r\n"
        );
        let ten: Vec<Reply> = (0..10).map(Reply::integer).collect();
        assert!(encoded(&Reply::from(ten)).starts_with(b"*10\r\n:0\r\n"));
    }

    #[test]
    fn encode_appends() {
        let mut out = BytesMut::from(&b"+OK\r\n"[..]);
        Reply::integer(7).encode(&mut out);
        assert_eq!(&out[..], b"+OK\r\n:7\r\n");
    }

    #[test]
    fn digit_counts() {
        for n in [0u64, 9, 10, 99, 100, 12345, u64::MAX] {
            assert_eq!(unsigned_digits(n), n.to_string().len());
        }
        for n in [i64::MIN, -10, -9, -1, 0, 1, i64::MAX] {
            assert_eq!(signed_digits(n), n.to_string().len());
        }
    }
}
