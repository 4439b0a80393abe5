//! The one reply encoder: every byte kvd sends to a client is written by [`Reply::encode`].
//!
//! Commands build a typed [`Reply`] value instead of writing bytes, so the wire format is
//! decided in one place and a reply can be inspected in tests without parsing it back. The
//! same value is written in RESP2 or RESP3, whichever the connection speaks ([`Protocol`]):
//! the RESP3 types (map, set, double, boolean, big number, verbatim string, push) fall back in
//! RESP2 exactly as redis-server 7.0 writes them to a RESP2 client.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

const CRLF: &[u8] = b"\r\n";

/// The protocol a connection speaks: RESP2 until `HELLO 3`, RESP2 again after `HELLO 2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    /// The version number HELLO takes and reports.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// A reply, typed as RESP3 types it; each variant says how it is written in RESP2.
#[derive(Clone, Debug, PartialEq)]
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
    /// The null: a missing value (GET of an absent key). RESP2 `$-1\r\n`, RESP3 `_\r\n`.
    Nil,
    /// `*2\r\n...`.
    Array(Vec<Reply>),
    /// The missing array (e.g. a BLPOP timeout). RESP2 `*-1\r\n`, RESP3 `_\r\n`.
    NilArray,
    /// RESP3 `%N` with N key/value pairs, in this order; RESP2 a flat array of 2N items.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `%N` with N key/value pairs; RESP2 an array of N two-element arrays (XREAD's
    /// reply: one [key, entries] pair per stream).
    PairMap(Vec<(Reply, Reply)>),
    /// RESP3 `~N`; RESP2 an array.
    Set(Vec<Reply>),
    /// RESP3 an array of N two-item arrays; RESP2 a flat array of 2N items (what Redis 7
    /// replies to ZRANGE ... WITHSCORES, ZPOPMIN with a count, ZRANDMEMBER WITHSCORES).
    Pairs(Vec<(Reply, Reply)>),
    /// RESP3 `,1.5`; RESP2 a bulk string. Both use the text of [`format_double`].
    Double(f64),
    /// A double in a text of its own (GEOPOS coordinates, Redis's `%.17Lf` trimmed): RESP3
    /// `,text`; RESP2 a bulk string of the text.
    DoubleText(Cow<'static, str>),
    /// RESP3 `#t` / `#f`; RESP2 the integer 1 or 0.
    Boolean(bool),
    /// RESP3 `(` and the digits; RESP2 a bulk string of the digits.
    BigNumber(Cow<'static, str>),
    /// RESP3 `=N\r\nfmt:text`, where `format` is three bytes such as `txt` or `mkd`;
    /// RESP2 a bulk string of the text alone.
    Verbatim { format: [u8; 3], text: Bytes },
    /// RESP3 `>N`, an out-of-band message (pub/sub, invalidation); RESP2 an array.
    Push(Vec<Reply>),
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

    pub fn map(pairs: impl IntoIterator<Item = (Reply, Reply)>) -> Reply {
        Reply::Map(pairs.into_iter().collect())
    }

    pub fn set(items: impl IntoIterator<Item = Reply>) -> Reply {
        Reply::Set(items.into_iter().collect())
    }

    /// Plain text as Redis sends INFO and CLIENT INFO: verbatim `txt` in RESP3, bulk in RESP2.
    pub fn verbatim_text(text: impl Into<Bytes>) -> Reply {
        Reply::Verbatim {
            format: *b"txt",
            text: text.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the encoding in `proto` to `out`, reserving the whole length first so a large
    /// reply grows the buffer once.
    ///
    /// A `\r` or `\n` in a status, error or big number line is written as a space, as Redis
    /// does for errors: these lines have no length prefix, so a line break would end the reply
    /// early and desynchronise the client.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        out.reserve(self.encoded_len(proto));
        self.write(proto, out);
    }

    /// The number of bytes [`Reply::encode`] appends in `proto`.
    pub fn encoded_len(&self, proto: Protocol) -> usize {
        let resp3 = proto == Protocol::Resp3;
        match self {
            Reply::Status(s) | Reply::Error(s) => line_len(s.len()),
            Reply::Integer(n) => 1 + signed_digits(*n) + CRLF.len(),
            Reply::Bulk(b) => bulk_len(b.len()),
            Reply::Nil | Reply::NilArray if resp3 => b"_\r\n".len(),
            Reply::Nil | Reply::NilArray => b"$-1\r\n".len(),
            Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
                header_len(items.len()) + items_len(items, proto)
            }
            Reply::Map(pairs) => {
                let count = if resp3 { pairs.len() } else { 2 * pairs.len() };
                header_len(count)
                    + pairs
                        .iter()
                        .map(|(k, v)| k.encoded_len(proto) + v.encoded_len(proto))
                        .sum::<usize>()
            }
            Reply::PairMap(pairs) => {
                let pair_headers = if resp3 {
                    0
                } else {
                    pairs.len() * header_len(2)
                };
                header_len(pairs.len())
                    + pair_headers
                    + pairs
                        .iter()
                        .map(|(k, v)| k.encoded_len(proto) + v.encoded_len(proto))
                        .sum::<usize>()
            }
            Reply::Pairs(pairs) => {
                let inner = if resp3 {
                    header_len(2) * pairs.len()
                } else {
                    0
                };
                let count = if resp3 { pairs.len() } else { 2 * pairs.len() };
                header_len(count)
                    + inner
                    + pairs
                        .iter()
                        .map(|(k, v)| k.encoded_len(proto) + v.encoded_len(proto))
                        .sum::<usize>()
            }
            Reply::Double(d) if resp3 => line_len(format_double(*d).len()),
            Reply::Double(d) => bulk_len(format_double(*d).len()),
            Reply::Boolean(_) => 4,
            Reply::DoubleText(n) if resp3 => line_len(n.len()),
            Reply::DoubleText(n) => bulk_len(n.len()),
            Reply::BigNumber(n) if resp3 => line_len(n.len()),
            Reply::BigNumber(n) => bulk_len(n.len()),
            Reply::Verbatim { format, text } if resp3 => bulk_len(format.len() + 1 + text.len()),
            Reply::Verbatim { text, .. } => bulk_len(text.len()),
        }
    }

    fn write(&self, proto: Protocol, out: &mut BytesMut) {
        let resp3 = proto == Protocol::Resp3;
        match self {
            Reply::Status(s) => write_line(out, b'+', s),
            Reply::Error(s) => write_line(out, b'-', s),
            Reply::Integer(n) => write_integer(out, *n),
            Reply::Bulk(b) => write_bulk(out, b),
            Reply::Nil | Reply::NilArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::NilArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => write_aggregate(out, b'*', items, proto),
            Reply::Set(items) => {
                write_aggregate(out, if resp3 { b'~' } else { b'*' }, items, proto)
            }
            Reply::Push(items) => {
                write_aggregate(out, if resp3 { b'>' } else { b'*' }, items, proto)
            }
            Reply::Map(pairs) => {
                if resp3 {
                    write_length_header(out, b'%', pairs.len());
                } else {
                    write_length_header(out, b'*', 2 * pairs.len());
                }
                for (k, v) in pairs {
                    k.write(proto, out);
                    v.write(proto, out);
                }
            }
            Reply::PairMap(pairs) => {
                write_length_header(out, if resp3 { b'%' } else { b'*' }, pairs.len());
                for (k, v) in pairs {
                    if !resp3 {
                        write_length_header(out, b'*', 2);
                    }
                    k.write(proto, out);
                    v.write(proto, out);
                }
            }
            Reply::Pairs(pairs) => {
                write_length_header(out, b'*', if resp3 { pairs.len() } else { 2 * pairs.len() });
                for (k, v) in pairs {
                    if resp3 {
                        write_length_header(out, b'*', 2);
                    }
                    k.write(proto, out);
                    v.write(proto, out);
                }
            }
            Reply::Double(d) if resp3 => write_line(out, b',', &format_double(*d)),
            Reply::Double(d) => write_bulk(out, format_double(*d).as_bytes()),
            Reply::Boolean(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Boolean(b) => write_integer(out, i64::from(*b)),
            Reply::DoubleText(n) if resp3 => write_line(out, b',', n),
            Reply::DoubleText(n) => write_bulk(out, n.as_bytes()),
            Reply::BigNumber(n) if resp3 => write_line(out, b'(', n),
            Reply::BigNumber(n) => write_bulk(out, n.as_bytes()),
            Reply::Verbatim { format, text } if resp3 => {
                write_length_header(out, b'=', format.len() + 1 + text.len());
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(CRLF);
            }
            Reply::Verbatim { text, .. } => write_bulk(out, text),
        }
    }
}

/// A double as redis-server 7.0 prints it (`%.17g`, with `inf`, `-inf`, `nan` and `-nan`
/// spelled as glibc does): `1.5`, `0.10000000000000001`, `1e+17`, `-0`.
///
/// `%.17g` keeps 17 significant digits, uses the exponent form when the decimal exponent is
/// below -4 or at least 17, and drops trailing zeros of the fraction.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rounded to 17 significant digits first: the exponent after rounding picks the style.
    let scientific = format!("{d:.16e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..17).contains(&exponent) {
        let decimals = (16 - exponent) as usize;
        trim_fraction(&format!("{d:.decimals$}")).to_string()
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            trim_fraction(mantissa),
            exponent.unsigned_abs()
        )
    }
}

/// Drops trailing zeros after a decimal point, and the point if nothing is left after it.
fn trim_fraction(s: &str) -> &str {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.')
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

fn write_integer(out: &mut BytesMut, n: i64) {
    out.put_u8(b':');
    write_signed(out, n);
    out.put_slice(CRLF);
}

fn write_bulk(out: &mut BytesMut, b: &[u8]) {
    write_length_header(out, b'$', b.len());
    out.put_slice(b);
    out.put_slice(CRLF);
}

fn write_aggregate(out: &mut BytesMut, prefix: u8, items: &[Reply], proto: Protocol) {
    write_length_header(out, prefix, items.len());
    for item in items {
        item.write(proto, out);
    }
}

/// `<prefix><text>\r\n`.
fn line_len(text_len: usize) -> usize {
    1 + text_len + CRLF.len()
}

/// `$<len>\r\n<payload>\r\n`, also the shape of a verbatim string.
fn bulk_len(payload_len: usize) -> usize {
    header_len(payload_len) + payload_len + CRLF.len()
}

/// `<prefix><count>\r\n`.
fn header_len(count: usize) -> usize {
    1 + unsigned_digits(len_u64(count)) + CRLF.len()
}

fn items_len(items: &[Reply], proto: Protocol) -> usize {
    items.iter().map(|r| r.encoded_len(proto)).sum()
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

    /// The encoding in `proto`, checking that `encoded_len` predicted it exactly.
    fn encoded_in(proto: Protocol, reply: &Reply) -> Vec<u8> {
        let mut out = BytesMut::new();
        reply.encode(proto, &mut out);
        assert_eq!(
            out.len(),
            reply.encoded_len(proto),
            "encoded_len of {reply:?} in {proto:?}"
        );
        out.to_vec()
    }

    /// RESP2, for the types both protocols write alike; checks RESP3 agrees.
    fn encoded(reply: &Reply) -> Vec<u8> {
        let two = encoded_in(Protocol::Resp2, reply);
        if !matches!(reply, Reply::Nil | Reply::NilArray) && !contains_resp3_type(reply) {
            assert_eq!(
                two,
                encoded_in(Protocol::Resp3, reply),
                "RESP2 and RESP3 differ for {reply:?}"
            );
        }
        two
    }

    fn contains_resp3_type(reply: &Reply) -> bool {
        match reply {
            Reply::Array(items) => items
                .iter()
                .any(|r| matches!(r, Reply::Nil | Reply::NilArray) || contains_resp3_type(r)),
            Reply::Status(_) | Reply::Error(_) | Reply::Integer(_) | Reply::Bulk(_) => false,
            _ => true,
        }
    }

    fn resp2(reply: &Reply) -> String {
        encoded_in(Protocol::Resp2, reply)
            .escape_ascii()
            .to_string()
    }

    fn resp3(reply: &Reply) -> String {
        encoded_in(Protocol::Resp3, reply)
            .escape_ascii()
            .to_string()
    }

    fn show(b: &[u8]) -> String {
        b.escape_ascii().to_string()
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
        assert_eq!(
            resp3(&Reply::BigNumber("1\r\n2".into())),
            show(b"(1  2\r\n")
        );
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
        assert_eq!(
            resp3(&nested),
            show(b"*4\r\n:1\r\n*3\r\n$1\r\na\r\n_\r\n_\r\n+OK\r\n-ERR x\r\n")
        );
        let ten: Vec<Reply> = (0..10).map(Reply::integer).collect();
        assert!(encoded(&Reply::from(ten)).starts_with(b"*10\r\n:0\r\n"));
    }

    #[test]
    fn null_is_one_type_in_resp3() {
        assert_eq!(resp3(&Reply::Nil), "_\\r\\n");
        assert_eq!(resp3(&Reply::NilArray), "_\\r\\n");
        assert_eq!(resp2(&Reply::Nil), "$-1\\r\\n");
        assert_eq!(resp2(&Reply::NilArray), "*-1\\r\\n");
    }

    // The expected bytes below are what redis-server 7.0.15 sends for DEBUG PROTOCOL map, set,
    // true/false, double, bignum, verbatim and push, and for CONFIG GET, in each protocol.
    #[test]
    fn map() {
        let m = Reply::map([
            (Reply::integer(0), Reply::Boolean(false)),
            (Reply::integer(1), Reply::Boolean(true)),
            (Reply::integer(2), Reply::Boolean(false)),
        ]);
        assert_eq!(
            resp3(&m),
            show(b"%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n")
        );
        assert_eq!(
            resp2(&m),
            show(b"*6\r\n:0\r\n:0\r\n:1\r\n:1\r\n:2\r\n:0\r\n")
        );
        let config = Reply::map([(Reply::bulk("save"), Reply::bulk(""))]);
        assert_eq!(resp3(&config), show(b"%1\r\n$4\r\nsave\r\n$0\r\n\r\n"));
        assert_eq!(resp2(&config), show(b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"));
        assert_eq!(resp3(&Reply::map([])), "%0\\r\\n");
        assert_eq!(resp2(&Reply::map([])), "*0\\r\\n");
        // Nested: values are encoded in the same protocol.
        let nested = Reply::map([(Reply::bulk("k"), Reply::Nil)]);
        assert_eq!(resp3(&nested), show(b"%1\r\n$1\r\nk\r\n_\r\n"));
        assert_eq!(resp2(&nested), show(b"*2\r\n$1\r\nk\r\n$-1\r\n"));
    }

    #[test]
    fn set() {
        let s = Reply::set((0..3).map(Reply::integer));
        assert_eq!(resp3(&s), show(b"~3\r\n:0\r\n:1\r\n:2\r\n"));
        assert_eq!(resp2(&s), show(b"*3\r\n:0\r\n:1\r\n:2\r\n"));
        assert_eq!(resp3(&Reply::set([])), "~0\\r\\n");
        let flags = Reply::set([Reply::status("readonly"), Reply::status("fast")]);
        assert_eq!(resp3(&flags), show(b"~2\r\n+readonly\r\n+fast\r\n"));
        assert_eq!(resp2(&flags), show(b"*2\r\n+readonly\r\n+fast\r\n"));
    }

    #[test]
    fn boolean() {
        assert_eq!(resp3(&Reply::Boolean(true)), "#t\\r\\n");
        assert_eq!(resp3(&Reply::Boolean(false)), "#f\\r\\n");
        assert_eq!(resp2(&Reply::Boolean(true)), ":1\\r\\n");
        assert_eq!(resp2(&Reply::Boolean(false)), ":0\\r\\n");
    }

    #[test]
    #[allow(clippy::approx_constant)] // 3.141 is what DEBUG PROTOCOL double sends, not pi
    fn double() {
        assert_eq!(resp3(&Reply::Double(3.141)), ",3.141\\r\\n");
        assert_eq!(resp2(&Reply::Double(3.141)), "$5\\r\\n3.141\\r\\n");
        assert_eq!(resp3(&Reply::Double(f64::INFINITY)), ",inf\\r\\n");
        assert_eq!(resp3(&Reply::Double(f64::NEG_INFINITY)), ",-inf\\r\\n");
        assert_eq!(resp2(&Reply::Double(f64::INFINITY)), "$3\\r\\ninf\\r\\n");
        assert_eq!(
            resp2(&Reply::Double(f64::NEG_INFINITY)),
            "$4\\r\\n-inf\\r\\n"
        );
        assert_eq!(resp3(&Reply::Double(f64::NAN)), ",nan\\r\\n");
        assert_eq!(resp3(&Reply::Double(-f64::NAN)), ",-nan\\r\\n");
        assert_eq!(resp2(&Reply::Double(-f64::NAN)), "$4\\r\\n-nan\\r\\n");
        assert_eq!(
            resp2(&Reply::Double(1.0 / 3.0)),
            "$19\\r\\n0.33333333333333331\\r\\n"
        );
    }

    /// Each value and its text as redis-server 7.0.15 replied (ZSCORE, or EVAL returning
    /// `{double=...}`).
    #[test]
    fn double_text_matches_redis() {
        for (d, text) in [
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (1e300, "1.0000000000000001e+300"),
            (0.0, "0"),
            (-0.0, "-0"),
            (3.0, "3"),
            (1e-5, "1.0000000000000001e-05"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (1e17, "1e+17"),
            (1e16, "10000000000000000"),
            (1.0 / 3.0, "0.33333333333333331"),
            (5e-324, "4.9406564584124654e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(format_double(d), text, "{d:e}");
        }
    }

    /// `format_double` against the C library's own `%.17g` (which is what redis-server 7.0
    /// calls) for many doubles: random bit patterns (every exponent, NaNs, subnormals) and
    /// values next to the powers of ten where the notation switches.
    #[test]
    fn double_text_matches_printf() {
        fn printf(d: f64) -> String {
            let mut buf = [0u8; 64];
            // SAFETY: the buffer and its length are valid, the format takes one double.
            let n = unsafe {
                libc::snprintf(
                    buf.as_mut_ptr().cast::<libc::c_char>(),
                    buf.len(),
                    c"%.17g".as_ptr(),
                    d,
                )
            };
            String::from_utf8_lossy(&buf[..n as usize]).into_owned()
        }
        let mut values = vec![0.0, -0.0, f64::MIN_POSITIVE, f64::EPSILON, 1.0 / 3.0];
        for e in -330..=310 {
            let p = 10f64.powi(e);
            values.extend([
                p,
                -p,
                p.next_up(),
                p.next_down(),
                9.5 * p,
                p * (1.0 - f64::EPSILON),
            ]);
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(f64::from_bits(x));
            values.push(i as f64 / 7.0);
        }
        for d in values {
            assert_eq!(format_double(d), printf(d), "bits {:#x}", d.to_bits());
            for proto in [Protocol::Resp2, Protocol::Resp3] {
                encoded_in(proto, &Reply::Double(d));
            }
        }
    }

    #[test]
    fn big_number() {
        let n = Reply::BigNumber("1234567999999999999999999999999999999".into());
        assert_eq!(
            resp3(&n),
            show(b"(1234567999999999999999999999999999999\r\n")
        );
        assert_eq!(
            resp2(&n),
            show(b"$37\r\n1234567999999999999999999999999999999\r\n")
        );
    }

    #[test]
    fn verbatim() {
        let v = Reply::verbatim_text(&b"This is a verbatim\nstring"[..]);
        assert_eq!(
            resp3(&v),
            show(b"=29\r\ntxt:This is a verbatim\nstring\r\n")
        );
        assert_eq!(resp2(&v), show(b"$25\r\nThis is a verbatim\nstring\r\n"));
        let md = Reply::Verbatim {
            format: *b"mkd",
            text: Bytes::new(),
        };
        assert_eq!(resp3(&md), show(b"=4\r\nmkd:\r\n"));
        assert_eq!(resp2(&md), show(b"$0\r\n\r\n"));
    }

    #[test]
    fn push() {
        let p = Reply::Push(vec![Reply::bulk("server-cpu-usage"), Reply::integer(42)]);
        assert_eq!(resp3(&p), show(b">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n"));
        assert_eq!(resp2(&p), show(b"*2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n"));
    }

    #[test]
    fn lengths_are_exact_for_large_and_nested_replies() {
        let big = Reply::array((0..1000).map(|i| {
            Reply::map([
                (Reply::bulk(format!("k{i}")), Reply::Double(i as f64 / 7.0)),
                (
                    Reply::Set(vec![Reply::Nil; i % 3]),
                    Reply::Boolean(i % 2 == 0),
                ),
                (
                    Reply::BigNumber(i.to_string().into()),
                    Reply::verbatim_text(vec![b'x'; i]),
                ),
            ])
        }));
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            encoded_in(proto, &big);
        }
    }

    #[test]
    fn encode_appends() {
        let mut out = BytesMut::from(&b"+OK\r\n"[..]);
        Reply::integer(7).encode(Protocol::Resp2, &mut out);
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
