//! Streaming RESP2 request decoder.
//!
//! TCP cuts requests at arbitrary points, so the decoder keeps the state of a partly read
//! multibulk request between calls and takes every completed argument out of the buffer at
//! once: no payload byte is looked at twice however many reads a request spans, and only the
//! small header lines are re-parsed when they arrive in pieces.
//!
//! The grammar, the limits and the error texts follow redis-server 7 (`processMultibulkBuffer`
//! and `processInlineBuffer` in networking.c), so clients and tests written against Redis see
//! the same replies. Where Redis does not validate (the `\n` after a header's `\r`, the CRLF
//! after a bulk payload) kvd rejects the request instead of resynchronising on garbage.

use bytes::{Buf, Bytes, BytesMut};
use nom::IResult;
use nom::bytes::streaming::{tag, take_until};

/// Terminates every header line and every bulk payload.
const CRLF: &[u8] = b"\r\n";

/// Redis refuses multibulk counts above `INT_MAX` whatever else is configured.
const REDIS_MAX_MULTIBULK_COUNT: i64 = i32::MAX as i64;

/// Before a connection has authenticated (when a password is required), Redis 7.0 refuses
/// multibulk requests of more arguments or longer bulks than these, so a client without the
/// password cannot make the server buffer much.
const UNAUTHENTICATED_MAX_ARGS: i64 = 10;
const UNAUTHENTICATED_MAX_BULK_LEN: usize = 16 * 1024;

/// The argument vector is preallocated for at most this many entries, because the count comes
/// from the client and a lying `*1000000` must not reserve memory it never fills (Redis uses
/// the same cap).
const MAX_PREALLOCATED_ARGS: usize = 1024;

/// Limits applied before any allocation.
///
/// They bound what one connection can make the server hold: a client cannot reserve memory
/// by announcing a large count or length, only by actually sending the bytes, and even then
/// at most `max_arg_len` per argument.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest bulk length accepted at all (Redis `proto-max-bulk-len`, default 512 MiB).
    /// Above it: protocol error, connection closes.
    pub max_bulk_len: usize,
    /// Largest single argument kept (default 16 MiB). A bulk above this but within
    /// `max_bulk_len` is read and discarded as it arrives (never buffered whole), and the
    /// command is returned as [`Decoded::TooLarge`] so the server replies `-ERR` and keeps
    /// the connection.
    pub max_arg_len: usize,
    /// Most arguments in one multibulk (default 1024*1024; Redis allows `INT_MAX` but we
    /// bound memory).
    pub max_args: usize,
    /// Longest inline command line, and longest `*`/`$` header line (Redis
    /// `PROTO_INLINE_MAX_SIZE` = 64 KiB, used for both).
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_arg_len: 16 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// One request taken off the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// One complete command: its arguments, the first being the command name (case
    /// preserved; the caller lower-cases).
    Command(Vec<Bytes>),
    /// A command with an argument longer than `max_arg_len`; its bytes (and those of every
    /// later argument) were skipped. Carries the command name if it was the first argument
    /// and small, and the offending length, so the server can reply `-ERR` and go on with the
    /// next request.
    TooLarge { name: Option<Bytes>, len: usize },
}

/// A request that cannot be decoded; the connection must be closed after replying, because
/// the position of the next request in the stream is unknown.
///
/// `Display` gives the text after `ERR ` exactly as redis-server 7 sends it.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ProtocolError {
    /// The `*` count is not a canonical integer, exceeds `INT_MAX` or `max_args`, or its
    /// line does not end in CRLF.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// The `$` length is not a canonical non-negative integer, exceeds `max_bulk_len`, or its
    /// line does not end in CRLF.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An argument header started with this byte instead of `$`. Redis prints the raw byte;
    /// a byte above 0x7f is shown here as the Latin-1 character of that value.
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedDollar(u8),
    /// No CRLF within `max_inline_len` bytes of a `*` header.
    #[error("Protocol error: too big mbulk count string")]
    MultibulkHeaderTooLong,
    /// No CRLF within `max_inline_len` bytes of a `$` header.
    #[error("Protocol error: too big bulk count string")]
    BulkHeaderTooLong,
    /// No newline within `max_inline_len` bytes of the start of an inline command.
    #[error("Protocol error: too big inline request")]
    InlineTooLong,
    /// An inline command with an unterminated quote, or a closing quote not followed by
    /// whitespace or the end of the line.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// More than 10 arguments from a connection that has not authenticated yet.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A bulk longer than 16 KiB from a connection that has not authenticated yet.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// A bulk payload not followed by CRLF. Redis skips those two bytes unchecked; kvd
    /// refuses, since the client and the server no longer agree on where arguments end.
    #[error("Protocol error: expected CRLF after bulk data")]
    BulkNotTerminated,
}

/// Holds the state of a partially read request across reads (e.g. a huge bulk being
/// skipped), so that a request split over many reads is parsed once, not once per read.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// The multibulk request whose header has been consumed but not all of its arguments.
    partial: Option<Multibulk>,
    /// What the last `decode` that returned `Ok(None)` knew about the bytes still missing.
    needed: Option<usize>,
    /// The connection has not authenticated yet: the unauthenticated limits apply.
    unauthenticated: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            partial: None,
            needed: None,
            unauthenticated: false,
        }
    }

    /// Applies (or lifts) the stricter limits of a connection that has not authenticated yet,
    /// from the next header read on. The caller decodes one request at a time meanwhile, so a
    /// request is always read under the state its predecessor (an AUTH) left.
    pub fn set_unauthenticated(&mut self, unauthenticated: bool) {
        self.unauthenticated = unauthenticated;
    }

    /// Decodes the next request from the front of `buf`, consuming its bytes.
    ///
    /// `Ok(None)`: need more bytes. `buf` may have been partly consumed even then: the
    /// arguments of a multibulk request that are complete are moved into the decoder (zero
    /// copy) and an oversized bulk is dropped as it arrives, so the caller must append new
    /// bytes to the same buffer and call again. Empty requests (`*0\r\n`, `*-1\r\n`, blank
    /// inline lines) are consumed and skipped, as Redis does. After an error the stream is
    /// unusable and the connection should be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, ProtocolError> {
        self.needed = None;
        let result = self.decode_next(buf);
        if result.is_err() {
            self.partial = None;
        }
        result
    }

    /// How many more bytes the current partial request needs at least, if known (lets the
    /// reader reserve once for a large bulk instead of growing the buffer many times). Never
    /// more than `max_arg_len`; `None` while skipping an oversized bulk, since those bytes
    /// are dropped as they come and reserving for them would defeat the point.
    pub fn bytes_needed(&self) -> Option<usize> {
        self.needed
    }

    fn decode_next(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, ProtocolError> {
        loop {
            if let Some(request) = &mut self.partial {
                return match request.read_args(buf, &self.limits, self.unauthenticated)? {
                    Progress::Done => Ok(self.partial.take().map(Multibulk::finish)),
                    Progress::NeedMore { bytes } => {
                        self.needed = bytes;
                        Ok(None)
                    }
                };
            }
            // Like Redis, the first byte alone decides between the two request forms.
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => match multibulk_header(buf, &self.limits, self.unauthenticated)? {
                    None => return Ok(None),
                    Some(0) => continue,
                    Some(count) => self.partial = Some(Multibulk::new(count)),
                },
                Some(_) => match inline_command(buf, self.limits.max_inline_len)? {
                    None => return Ok(None),
                    Some(args) if args.is_empty() => continue,
                    Some(args) => return Ok(Some(Decoded::Command(args))),
                },
            }
        }
    }
}

/// A multibulk request being read argument by argument.
#[derive(Debug)]
struct Multibulk {
    /// Arguments not yet completely read, the current one included.
    remaining: usize,
    /// Arguments read so far; once an argument was too large, only the first is kept (as the
    /// command name for the error reply).
    args: Vec<Bytes>,
    /// Where reading stands within the current argument.
    current: ArgState,
    /// Length of the first argument above `max_arg_len`; from then on every argument is
    /// discarded, but still read, so the next request starts at the right byte.
    too_large: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum ArgState {
    /// Expecting a `$<len>\r\n` header.
    Header,
    /// Header consumed; waiting until `len` payload bytes and their CRLF are buffered.
    Keep { len: usize },
    /// Header consumed; `left` payload bytes still to drop, then the CRLF to check.
    Discard { left: usize },
}

/// Whether a multibulk request is complete.
enum Progress {
    Done,
    /// `bytes`: how many more bytes the current argument needs at least, if known.
    NeedMore {
        bytes: Option<usize>,
    },
}

impl Multibulk {
    fn new(count: usize) -> Self {
        Multibulk {
            remaining: count,
            args: Vec::with_capacity(count.min(MAX_PREALLOCATED_ARGS)),
            current: ArgState::Header,
            too_large: None,
        }
    }

    /// Consumes as many arguments from `buf` as are complete.
    fn read_args(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        unauthenticated: bool,
    ) -> Result<Progress, ProtocolError> {
        while self.remaining > 0 {
            match self.current {
                ArgState::Header => match bulk_header(buf, limits, unauthenticated)? {
                    Some(len) => self.start_arg(len, limits.max_arg_len),
                    None => return Ok(Progress::NeedMore { bytes: None }),
                },
                ArgState::Keep { len } => {
                    let wanted = len.saturating_add(CRLF.len());
                    if buf.len() < wanted {
                        let missing = (wanted - buf.len()).min(limits.max_arg_len);
                        return Ok(Progress::NeedMore {
                            bytes: Some(missing),
                        });
                    }
                    check_bulk_terminator(&buf[len..wanted])?;
                    let arg = buf.split_to(len).freeze();
                    buf.advance(CRLF.len());
                    self.args.push(arg);
                    self.end_arg();
                }
                ArgState::Discard { left } => {
                    let dropped = left.min(buf.len());
                    buf.advance(dropped);
                    let left = left - dropped;
                    self.current = ArgState::Discard { left };
                    if left > 0 || buf.len() < CRLF.len() {
                        return Ok(Progress::NeedMore { bytes: None });
                    }
                    check_bulk_terminator(&buf[..CRLF.len()])?;
                    buf.advance(CRLF.len());
                    self.end_arg();
                }
            }
        }
        Ok(Progress::Done)
    }

    /// Decides, from its announced length, whether the argument just started is kept.
    fn start_arg(&mut self, len: usize, max_arg_len: usize) {
        if self.too_large.is_none() && len > max_arg_len {
            self.too_large = Some(len);
            self.args.truncate(1);
        }
        self.current = if self.too_large.is_some() {
            ArgState::Discard { left: len }
        } else {
            ArgState::Keep { len }
        };
    }

    fn end_arg(&mut self) {
        self.remaining -= 1;
        self.current = ArgState::Header;
    }

    fn finish(self) -> Decoded {
        match self.too_large {
            Some(len) => Decoded::TooLarge {
                name: self.args.into_iter().next(),
                len,
            },
            None => Decoded::Command(self.args),
        }
    }
}

/// Consumes a `*<count>\r\n` header. `Some(0)` is an empty request (any count <= 0, as in
/// Redis), `None` means the line is not complete yet.
fn multibulk_header(
    buf: &mut BytesMut,
    limits: &Limits,
    unauthenticated: bool,
) -> Result<Option<usize>, ProtocolError> {
    let (content, consumed) = match header_line(buf, limits.max_inline_len) {
        Line::Complete { content, consumed } => (content, consumed),
        Line::BadTerminator { .. } => return Err(ProtocolError::InvalidMultibulkLength),
        Line::Incomplete => return Ok(None),
        Line::TooLong => return Err(ProtocolError::MultibulkHeaderTooLong),
    };
    let digits = content.get(1..).unwrap_or_default();
    let count = multibulk_count(digits, limits.max_args, unauthenticated)?;
    buf.advance(consumed);
    Ok(Some(count))
}

/// Consumes a `$<len>\r\n` header, `None` if the line is not complete yet.
///
/// The checks run in Redis's order: the line must be complete before a wrong first byte is
/// reported, and the `$` is checked before the length.
fn bulk_header(
    buf: &mut BytesMut,
    limits: &Limits,
    unauthenticated: bool,
) -> Result<Option<usize>, ProtocolError> {
    let (content, consumed) = match header_line(buf, limits.max_inline_len) {
        Line::Complete { content, consumed } => (content, Some(consumed)),
        Line::BadTerminator { content } => (content, None),
        Line::Incomplete => return Ok(None),
        Line::TooLong => return Err(ProtocolError::BulkHeaderTooLong),
    };
    let digits = match content.split_first() {
        Some((b'$', digits)) => digits,
        Some((&other, _)) => return Err(ProtocolError::ExpectedDollar(other)),
        // The line is empty: the byte where '$' belongs is the '\r' ending it.
        None => return Err(ProtocolError::ExpectedDollar(b'\r')),
    };
    let consumed = consumed.ok_or(ProtocolError::InvalidBulkLength)?;
    let len = bulk_len(digits, limits.max_bulk_len)?;
    if unauthenticated && len > UNAUTHENTICATED_MAX_BULK_LEN {
        return Err(ProtocolError::UnauthenticatedBulkLength);
    }
    buf.advance(consumed);
    Ok(Some(len))
}

/// In Redis's order: a bad or huge count first, then the unauthenticated limit, then kvd's own.
fn multibulk_count(
    digits: &[u8],
    max_args: usize,
    unauthenticated: bool,
) -> Result<usize, ProtocolError> {
    let count = parse_redis_int(digits)
        .filter(|&n| n <= REDIS_MAX_MULTIBULK_COUNT)
        .ok_or(ProtocolError::InvalidMultibulkLength)?;
    if unauthenticated && count > UNAUTHENTICATED_MAX_ARGS {
        return Err(ProtocolError::UnauthenticatedMultibulkLength);
    }
    if count <= 0 {
        return Ok(0);
    }
    usize::try_from(count)
        .ok()
        .filter(|&n| n <= max_args)
        .ok_or(ProtocolError::InvalidMultibulkLength)
}

fn bulk_len(digits: &[u8], max_bulk_len: usize) -> Result<usize, ProtocolError> {
    parse_redis_int(digits)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= max_bulk_len)
        .ok_or(ProtocolError::InvalidBulkLength)
}

fn check_bulk_terminator(terminator: &[u8]) -> Result<(), ProtocolError> {
    crlf(terminator)
        .map(|_| ())
        .map_err(|_| ProtocolError::BulkNotTerminated)
}

/// Parses a decimal integer as Redis's `string2ll` does, since that decides which lengths
/// Redis accepts: an optional `-`, no `+`, no spaces, no leading zeros, at most 20
/// characters, and no overflow.
/// A Redis integer, strictly: optional '-', no leading zeros or '+', no spaces, fits i64 (as
/// Redis's `string2ll`). The one integer parser: lengths here, arguments in `cmd`.
pub fn parse_redis_int(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

type ParseResult<'a> = IResult<&'a [u8], &'a [u8]>;

fn crlf(input: &[u8]) -> ParseResult<'_> {
    tag(CRLF)(input)
}

/// What the search for a header line at the front of the buffer found.
enum Line<'a> {
    /// The line's content (first byte included, CRLF excluded) and the bytes it spans with
    /// its CRLF.
    Complete { content: &'a [u8], consumed: usize },
    /// The content was followed by `\r` and then not `\n`.
    BadTerminator { content: &'a [u8] },
    /// No `\r\n` yet, and it may still come within the limit.
    Incomplete,
    /// No `\r` within the first `max_len + 1` bytes.
    TooLong,
}

/// Finds the `\r\n`-terminated header line at the front of `input`.
///
/// Only the first `max_len + 1` bytes are searched, so a client streaming bytes without a
/// `\r` costs one bounded scan per read until it is rejected, and the verdict does not
/// depend on how the stream was cut into reads.
fn header_line(input: &[u8], max_len: usize) -> Line<'_> {
    let window = &input[..input.len().min(max_len.saturating_add(1))];
    match take_until::<_, _, nom::error::Error<&[u8]>>("\r")(window) {
        Ok((_, content)) => match crlf(&input[content.len()..]) {
            Ok(_) => Line::Complete {
                content,
                consumed: content.len() + CRLF.len(),
            },
            Err(nom::Err::Incomplete(_)) => Line::Incomplete,
            Err(_) => Line::BadTerminator { content },
        },
        Err(_) if input.len() > max_len => Line::TooLong,
        Err(_) => Line::Incomplete,
    }
}

/// Finds the `\n`-terminated inline line at the front of `input`: returns the length of its
/// content (without `\n` and one optional `\r` before it) and the bytes it spans.
fn inline_line(input: &[u8], max_len: usize) -> Result<Option<(usize, usize)>, ProtocolError> {
    let window = &input[..input.len().min(max_len.saturating_add(1))];
    match take_until::<_, _, nom::error::Error<&[u8]>>("\n")(window) {
        Ok((_, line)) => {
            let content = line.strip_suffix(b"\r").unwrap_or(line);
            Ok(Some((content.len(), line.len() + 1)))
        }
        Err(_) if input.len() > max_len => Err(ProtocolError::InlineTooLong),
        Err(_) => Ok(None),
    }
}

/// Consumes one inline command line and splits it into arguments; an empty vector is a
/// blank line.
fn inline_command(buf: &mut BytesMut, max_len: usize) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some((content_len, consumed)) = inline_line(buf, max_len)? else {
        return Ok(None);
    };
    let mut line = buf.split_to(consumed).freeze();
    line.truncate(content_len);
    split_inline_args(&line).map(Some)
}

/// Splits an inline command line into arguments as Redis's `sdssplitargs` does, quirks
/// included, so that `redis-cli`-style quoting means the same to kvd as to Redis.
///
/// Unquoted arguments are zero-copy slices of `line`. Unlike Redis, which reads the line as
/// a C string, a NUL byte is an ordinary byte here (Redis never processes such a line: it
/// waits for a newline its `strchr` cannot see).
fn split_inline_args(line: &Bytes) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut pos = 0;
    loop {
        while line.get(pos).is_some_and(|&b| is_c_space(b)) {
            pos += 1;
        }
        if pos == line.len() {
            return Ok(args);
        }
        let (arg, next) = inline_arg(line, pos)?;
        args.push(arg);
        pos = next;
    }
}

/// Reads one argument starting at `start` (not whitespace); returns it and the position
/// just after it.
///
/// An unquoted part may be followed by one quoted part, which ends the argument: `a"b c"`
/// is `ab c`, and a closing quote must be followed by whitespace or the end of the line.
fn inline_arg(line: &Bytes, start: usize) -> Result<(Bytes, usize), ProtocolError> {
    let plain_end = line[start..]
        .iter()
        .position(|&b| ends_unquoted(b) || b == b'"' || b == b'\'')
        .map_or(line.len(), |offset| start + offset);
    let quote = match line.get(plain_end) {
        Some(&quote @ (b'"' | b'\'')) => quote,
        _ => return Ok((line.slice(start..plain_end), plain_end)),
    };
    let mut arg = line[start..plain_end].to_vec();
    let closing = if quote == b'"' {
        read_double_quoted(line, plain_end + 1, &mut arg)?
    } else {
        read_single_quoted(line, plain_end + 1, &mut arg)?
    };
    check_after_closing_quote(line, closing)?;
    Ok((Bytes::from(arg), closing + 1))
}

/// Appends the unescaped content of a `"..."` part starting after its opening quote to
/// `arg`; returns the position of the closing quote.
///
/// Escapes: `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a`; a backslash before any other byte stands
/// for that byte.
fn read_double_quoted(
    line: &[u8],
    mut pos: usize,
    arg: &mut Vec<u8>,
) -> Result<usize, ProtocolError> {
    loop {
        match line.get(pos) {
            None => return Err(ProtocolError::UnbalancedQuotes),
            Some(b'"') => return Ok(pos),
            Some(b'\\') => {
                if let Some(byte) = hex_escape(line.get(pos + 1..pos + 4)) {
                    arg.push(byte);
                    pos += 4;
                } else {
                    let escaped = line.get(pos + 1).ok_or(ProtocolError::UnbalancedQuotes)?;
                    arg.push(unescape(*escaped));
                    pos += 2;
                }
            }
            Some(&b) => {
                arg.push(b);
                pos += 1;
            }
        }
    }
}

/// Appends the content of a `'...'` part starting after its opening quote to `arg`; returns
/// the position of the closing quote. Only `\'` is an escape; other backslashes are literal.
fn read_single_quoted(
    line: &[u8],
    mut pos: usize,
    arg: &mut Vec<u8>,
) -> Result<usize, ProtocolError> {
    loop {
        match line.get(pos) {
            None => return Err(ProtocolError::UnbalancedQuotes),
            Some(b'\\') if line.get(pos + 1) == Some(&b'\'') => {
                arg.push(b'\'');
                pos += 2;
            }
            Some(b'\'') => return Ok(pos),
            Some(&b) => {
                arg.push(b);
                pos += 1;
            }
        }
    }
}

fn check_after_closing_quote(line: &[u8], closing: usize) -> Result<(), ProtocolError> {
    match line.get(closing + 1) {
        Some(&b) if !is_c_space(b) => Err(ProtocolError::UnbalancedQuotes),
        _ => Ok(()),
    }
}

/// `x` and two hex digits, the value of the escape `\xHH`.
fn hex_escape(escape: Option<&[u8]>) -> Option<u8> {
    match escape? {
        [b'x', high, low] => Some(hex_value(*high)? * 16 + hex_value(*low)?),
        _ => None,
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

fn unescape(escaped: u8) -> u8 {
    match escaped {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

/// C's `isspace`: what `sdssplitargs` skips between arguments and accepts after a quote.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What ends an unquoted argument in `sdssplitargs`: narrower than `isspace` (a vertical tab
/// or form feed inside an argument is kept).
fn ends_unquoted(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_limits() -> Limits {
        Limits {
            max_bulk_len: 1 << 20,
            max_arg_len: 64,
            max_args: 8,
            max_inline_len: 32,
        }
    }

    fn cmd(args: &[&[u8]]) -> Decoded {
        Decoded::Command(args.iter().map(|a| Bytes::copy_from_slice(a)).collect())
    }

    /// Decodes everything `input` holds with a fresh decoder; the error, if any, ends the list.
    fn decode_all_with(
        limits: Limits,
        input: &[u8],
    ) -> (Vec<Decoded>, Option<ProtocolError>, BytesMut) {
        let mut decoder = Decoder::new(limits);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(decoded)) => out.push(decoded),
                Ok(None) => return (out, None, buf),
                Err(e) => return (out, Some(e), buf),
            }
        }
    }

    fn decode_all(input: &[u8]) -> Vec<Decoded> {
        let (out, err, _) = decode_all_with(Limits::default(), input);
        assert_eq!(err, None, "unexpected error for {input:?}");
        out
    }

    fn error_of(input: &[u8]) -> ProtocolError {
        error_with(Limits::default(), input)
    }

    fn error_with(limits: Limits, input: &[u8]) -> ProtocolError {
        match decode_all_with(limits, input) {
            (_, Some(e), _) => e,
            (out, None, _) => panic!("no error for {input:?}, got {out:?}"),
        }
    }

    /// Feeds `input` in chunks of `chunk` bytes, decoding after each.
    fn decode_chunked(
        limits: Limits,
        input: &[u8],
        chunk: usize,
    ) -> Result<Vec<Decoded>, ProtocolError> {
        let mut decoder = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(decoded) = decoder.decode(&mut buf)? {
                out.push(decoded);
            }
        }
        Ok(out)
    }

    #[test]
    fn multibulk_command() {
        assert_eq!(
            decode_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"),
            vec![cmd(&[b"SET", b"k", b""])]
        );
    }

    #[test]
    fn multibulk_payload_is_binary_safe() {
        assert_eq!(
            decode_all(b"*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\0\xff\r\n"),
            vec![cmd(&[b"ECHO", b"\r\n\0\xff"])]
        );
    }

    #[test]
    fn many_pipelined_commands_in_one_buffer() {
        let mut input = Vec::new();
        for i in 0..1000 {
            let key = i.to_string();
            input.extend_from_slice(
                format!("*2\r\n$3\r\nGET\r\n${}\r\n{}\r\n", key.len(), key).as_bytes(),
            );
            input.extend_from_slice(format!("PING {key}\r\n").as_bytes());
        }
        let out = decode_all(&input);
        assert_eq!(out.len(), 2000);
        assert_eq!(out[1998], cmd(&[b"GET", b"999"]));
        assert_eq!(out[1999], cmd(&[b"PING", b"999"]));
    }

    #[test]
    fn one_byte_at_a_time_matches_whole() {
        let input: &[u8] = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\nPING\r\n*0\r\n\r\n\"a b\" 'c'\n*1\r\n$4\r\nPING\r\n";
        let whole = decode_all(input);
        assert_eq!(whole.len(), 4);
        assert_eq!(decode_chunked(Limits::default(), input, 1), Ok(whole));
    }

    #[test]
    fn partial_frame_is_incomplete() {
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nab"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert_eq!(decoder.bytes_needed(), Some(3));
        buf.extend_from_slice(b"c\r\n");
        assert_eq!(decoder.decode(&mut buf), Ok(Some(cmd(&[b"GET", b"abc"]))));
        assert!(buf.is_empty());
        assert_eq!(decoder.decode(&mut buf), Ok(None));
    }

    #[test]
    fn bytes_needed_is_capped_by_max_arg_len() {
        // max_arg_len is 64: a 64-byte argument needs 66 bytes with its CRLF.
        let mut decoder = Decoder::new(small_limits());
        let mut buf = BytesMut::from(&b"*1\r\n$64\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert_eq!(decoder.bytes_needed(), Some(64));
        buf.extend_from_slice(&[b'a'; 10]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert_eq!(decoder.bytes_needed(), Some(56));
        // Unknown while a header is incomplete, and while an oversized bulk is skipped.
        let mut buf = BytesMut::from(&b"*1\r\n$6"[..]);
        let mut decoder = Decoder::new(small_limits());
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert_eq!(decoder.bytes_needed(), None);
        let mut decoder = Decoder::new(small_limits());
        let mut buf = BytesMut::from(&b"*1\r\n$65\r\naaa"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert_eq!(decoder.bytes_needed(), None);
    }

    #[test]
    fn empty_multibulks_are_skipped() {
        assert_eq!(
            decode_all(b"*0\r\n*-1\r\n*-5\r\n*1\r\n$4\r\nPING\r\n"),
            vec![cmd(&[b"PING"])]
        );
        assert_eq!(decode_all(b"*0\r\n*-1\r\n"), vec![]);
    }

    #[test]
    fn inline_commands() {
        assert_eq!(decode_all(b"PING\r\n"), vec![cmd(&[b"PING"])]);
        assert_eq!(decode_all(b"PING\n"), vec![cmd(&[b"PING"])]);
        assert_eq!(
            decode_all(b"  SET \t k   v  \r\n"),
            vec![cmd(&[b"SET", b"k", b"v"])]
        );
        // Only one '\r' before the '\n' belongs to the terminator; others separate arguments.
        assert_eq!(
            decode_all(b"ECHO a\rb\r\r\n"),
            vec![cmd(&[b"ECHO", b"a", b"b"])]
        );
        // A vertical tab separates nothing inside an argument, but is skipped before one.
        assert_eq!(
            decode_all(b"ECHO \x0ba\x0bb\n"),
            vec![cmd(&[b"ECHO", b"a\x0bb"])]
        );
    }

    #[test]
    fn blank_inline_lines_are_skipped() {
        assert_eq!(
            decode_all(b"\r\n\n   \r\n\t\nPING\r\n"),
            vec![cmd(&[b"PING"])]
        );
    }

    #[test]
    fn inline_quotes_and_escapes() {
        assert_eq!(
            decode_all(b"SET \"a b\" 'c d'\r\n"),
            vec![cmd(&[b"SET", b"a b", b"c d"])]
        );
        assert_eq!(
            decode_all(b"ECHO \"\\x41\\x4a\\n\\r\\t\\b\\a\\\\\\\"\\q\"\r\n"),
            vec![cmd(&[b"ECHO", b"AJ\n\r\t\x08\x07\\\"q"])]
        );
        // A malformed \x escape is just an escaped 'x'.
        assert_eq!(
            decode_all(b"ECHO \"\\xZ1\"\n"),
            vec![cmd(&[b"ECHO", b"xZ1"])]
        );
        assert_eq!(
            decode_all(b"ECHO 'a\\'b' 'a\\nb'\n"),
            vec![cmd(&[b"ECHO", b"a'b", b"a\\nb"])]
        );
        assert_eq!(
            decode_all(b"ECHO a\"b c\"\n"),
            vec![cmd(&[b"ECHO", b"ab c"])]
        );
        assert_eq!(
            decode_all(b"ECHO \"\" ''\n"),
            vec![cmd(&[b"ECHO", b"", b""])]
        );
        assert_eq!(decode_all(b"ECHO \"a\"\x0b\n"), vec![cmd(&[b"ECHO", b"a"])]);
    }

    #[test]
    fn unbalanced_quotes() {
        for input in [
            &b"ECHO \"abc\r\n"[..],
            b"ECHO 'abc\r\n",
            b"ECHO \"abc\"d\r\n",
            b"ECHO ''x\r\n",
            b"ECHO \"abc\\\"\r\n",
            b"ECHO \"abc\\\n",
            b"ECHO 'abc\\'\n",
        ] {
            assert_eq!(
                error_of(input),
                ProtocolError::UnbalancedQuotes,
                "{input:?}"
            );
        }
        assert_eq!(
            ProtocolError::UnbalancedQuotes.to_string(),
            "Protocol error: unbalanced quotes in request"
        );
    }

    #[test]
    fn inline_too_long() {
        let limits = small_limits();
        let mut line = vec![b'a'; limits.max_inline_len];
        // Exactly at the limit without a newline: still waiting.
        assert_eq!(decode_all_with(limits.clone(), &line).1, None);
        line.push(b'a');
        assert_eq!(
            error_with(limits.clone(), &line),
            ProtocolError::InlineTooLong
        );
        // The newline may sit at index max_inline_len, not beyond.
        let mut ok = vec![b'a'; limits.max_inline_len];
        ok.push(b'\n');
        assert_eq!(decode_all_with(limits.clone(), &ok).0.len(), 1);
        let mut long = vec![b'a'; limits.max_inline_len + 1];
        long.push(b'\n');
        assert_eq!(error_with(limits, &long), ProtocolError::InlineTooLong);
        assert_eq!(
            error_of(&[b'a'; 64 * 1024 + 1]).to_string(),
            "Protocol error: too big inline request"
        );
    }

    #[test]
    fn invalid_multibulk_length() {
        for input in [
            &b"*abc\r\n"[..],
            b"*01\r\n",
            b"*+1\r\n",
            b"* 1\r\n",
            b"*1 \r\n",
            b"*\r\n",
            b"*-\r\n",
            b"*-0\r\n",
            b"*2147483648\r\n",
            b"*99999999999999999999999\r\n",
            b"*1\rX$4\r\nPING\r\n",
        ] {
            assert_eq!(
                error_of(input),
                ProtocolError::InvalidMultibulkLength,
                "{input:?}"
            );
        }
        assert_eq!(
            ProtocolError::InvalidMultibulkLength.to_string(),
            "Protocol error: invalid multibulk length"
        );
    }

    #[test]
    fn max_args_exceeded() {
        let limits = small_limits();
        assert_eq!(
            error_with(limits.clone(), b"*9\r\n"),
            ProtocolError::InvalidMultibulkLength
        );
        let (out, err, _) = decode_all_with(limits, b"*8\r\n");
        assert_eq!((out, err), (vec![], None));
        // Redis's own cap applies even with a higher configured limit; no allocation follows.
        let huge = Limits {
            max_args: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(
            error_with(huge.clone(), b"*2147483648\r\n"),
            ProtocolError::InvalidMultibulkLength
        );
        assert_eq!(decode_all_with(huge, b"*2147483647\r\n").1, None);
    }

    #[test]
    fn invalid_bulk_length() {
        for input in [
            &b"*1\r\n$-1\r\n"[..],
            b"*1\r\n$abc\r\n",
            b"*1\r\n$04\r\n",
            b"*1\r\n$ 4\r\n",
            b"*1\r\n$+4\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$99999999999999999999999\r\n",
            b"*1\r\n$18446744073709551616\r\n",
            b"*1\r\n$536870913\r\n",
            b"*1\r\n$4\rXPING\r\n",
        ] {
            assert_eq!(
                error_of(input),
                ProtocolError::InvalidBulkLength,
                "{input:?}"
            );
        }
        assert_eq!(
            ProtocolError::InvalidBulkLength.to_string(),
            "Protocol error: invalid bulk length"
        );
    }

    #[test]
    fn max_bulk_len_is_rejected_from_the_header_alone() {
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$536870913\r\n"[..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(ProtocolError::InvalidBulkLength)
        );
        // At the limit the header is accepted; the payload is skipped, not awaited whole.
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn expected_dollar() {
        assert_eq!(
            error_of(b"*1\r\nX4\r\nPING\r\n"),
            ProtocolError::ExpectedDollar(b'X')
        );
        assert_eq!(
            error_of(b"*1\r\n\r\n"),
            ProtocolError::ExpectedDollar(b'\r')
        );
        // '$' is checked before the line terminator, as in Redis.
        assert_eq!(
            error_of(b"*1\r\nX4\rX"),
            ProtocolError::ExpectedDollar(b'X')
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(b'X').to_string(),
            "Protocol error: expected '$', got 'X'"
        );
        // Redis reports the byte only once the line is complete.
        assert_eq!(decode_all_with(Limits::default(), b"*1\r\nX4").1, None);
    }

    #[test]
    fn header_too_long() {
        let limits = small_limits();
        let mut header = vec![b'*'];
        header.resize(limits.max_inline_len, b'1');
        assert_eq!(decode_all_with(limits.clone(), &header).1, None);
        header.push(b'1');
        assert_eq!(
            error_with(limits.clone(), &header),
            ProtocolError::MultibulkHeaderTooLong
        );

        let mut bulk = b"*1\r\n$".to_vec();
        bulk.resize(4 + limits.max_inline_len + 1, b'1');
        assert_eq!(
            error_with(limits.clone(), &bulk),
            ProtocolError::BulkHeaderTooLong
        );
        // The size check comes before the '$' check.
        let mut other = b"*1\r\nX".to_vec();
        other.resize(4 + limits.max_inline_len + 1, b'1');
        assert_eq!(error_with(limits, &other), ProtocolError::BulkHeaderTooLong);

        let mut redis_sized = vec![b'*'];
        redis_sized.resize(70_000, b'1');
        assert_eq!(
            error_of(&redis_sized).to_string(),
            "Protocol error: too big mbulk count string"
        );
        let mut redis_sized = b"*1\r\n$".to_vec();
        redis_sized.resize(70_000, b'1');
        assert_eq!(
            error_of(&redis_sized).to_string(),
            "Protocol error: too big bulk count string"
        );
    }

    #[test]
    fn bulk_not_terminated_by_crlf() {
        assert_eq!(
            error_of(b"*1\r\n$4\r\nPINGxy"),
            ProtocolError::BulkNotTerminated
        );
        assert_eq!(
            error_of(b"*1\r\n$4\r\nPING\rx"),
            ProtocolError::BulkNotTerminated
        );
        // Also for a skipped oversized bulk.
        let input = [&b"*1\r\n$65\r\n"[..], &[b'a'; 65], b"xx"].concat();
        assert_eq!(
            error_with(small_limits(), &input),
            ProtocolError::BulkNotTerminated
        );
    }

    #[test]
    fn length_digit_overflow_does_not_wrap() {
        assert_eq!(parse_redis_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_redis_int(b"9223372036854775808"), None);
        assert_eq!(parse_redis_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_redis_int(b"-9223372036854775809"), None);
        assert_eq!(parse_redis_int(b"18446744073709551617"), None);
        assert_eq!(parse_redis_int(b"99999999999999999999999"), None);
        assert_eq!(parse_redis_int(b"0"), Some(0));
        assert_eq!(parse_redis_int(b"-1"), Some(-1));
        assert_eq!(parse_redis_int(b"00"), None);
        assert_eq!(parse_redis_int(b"-"), None);
    }

    #[test]
    fn oversized_argument_is_skipped_in_chunks() {
        let limits = Limits {
            max_arg_len: 1024,
            ..Limits::default()
        };
        let len = 1 << 20;
        let chunk = 4096;
        let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${len}\r\n").into_bytes();
        input.resize(input.len() + len, b'v');
        input.extend_from_slice(b"\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");

        let mut decoder = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            assert!(buf.len() <= chunk + 64, "buffer grew to {}", buf.len());
            while let Some(decoded) = decoder.decode(&mut buf).expect("valid stream") {
                out.push(decoded);
            }
            assert!(buf.len() < chunk, "decoder kept {} bytes", buf.len());
        }
        assert_eq!(
            out,
            vec![
                Decoded::TooLarge {
                    name: Some(Bytes::from_static(b"SET")),
                    len
                },
                cmd(&[b"GET", b"k"]),
            ]
        );
    }

    #[test]
    fn oversized_first_argument_has_no_name() {
        let input = [
            &b"*2\r\n$65\r\n"[..],
            &[b'a'; 65],
            b"\r\n$1\r\nk\r\nPING\r\n",
        ]
        .concat();
        let (out, err, _) = decode_all_with(small_limits(), &input);
        assert_eq!(err, None);
        assert_eq!(
            out,
            vec![
                Decoded::TooLarge {
                    name: None,
                    len: 65
                },
                cmd(&[b"PING"])
            ]
        );
    }

    #[test]
    fn arguments_after_an_oversized_one_are_skipped_too() {
        let input = [
            &b"*3\r\n$3\r\nSET\r\n$100\r\n"[..],
            &[b'a'; 100],
            b"\r\n$200\r\n",
            &[b'b'; 200],
            b"\r\n",
        ]
        .concat();
        let (out, err, buf) = decode_all_with(small_limits(), &input);
        assert_eq!(err, None);
        assert!(buf.is_empty());
        assert_eq!(
            out,
            vec![Decoded::TooLarge {
                name: Some(Bytes::from_static(b"SET")),
                len: 100
            }]
        );
    }

    #[test]
    fn decoder_is_reusable_after_too_large() {
        let input = [&b"*1\r\n$65\r\n"[..], &[b'a'; 65], b"\r\n"].concat();
        let whole = decode_all_with(small_limits(), &input).0;
        assert_eq!(decode_chunked(small_limits(), &input, 1), Ok(whole));
    }

    /// xorshift64: deterministic randomness without a dev-dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }

        fn byte(&mut self) -> u8 {
            self.next().to_le_bytes()[0]
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        const ALPHABET: &[u8] = b"*$\r\n0123456789-+ \t\"'\\xaZ\0";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = rng.below(64);
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(4) == 0 {
                        rng.byte()
                    } else {
                        ALPHABET[rng.below(ALPHABET.len())]
                    }
                })
                .collect();
            let whole = decode_all_with(small_limits(), &input);
            // Chunked feeding may only differ by seeing an error earlier or later.
            let chunked = decode_chunked(small_limits(), &input, 1 + rng.below(8));
            if whole.1.is_none() {
                assert_eq!(chunked, Ok(whole.0), "{input:?}");
            }
        }
    }

    /// Encodes `args` as one request, as a multibulk or (when representable) inline with a
    /// random quoting style.
    fn encode_request(rng: &mut Rng, args: &[Vec<u8>], out: &mut Vec<u8>) {
        if rng.below(2) == 0 {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for arg in args {
                out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                out.extend_from_slice(arg);
                out.extend_from_slice(b"\r\n");
            }
            return;
        }
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            let plain = !arg.is_empty() && arg.iter().all(u8::is_ascii_alphanumeric);
            let single_ok = !arg.contains(&b'\\') && !arg.contains(&b'\n');
            match rng.below(3) {
                0 if plain => out.extend_from_slice(arg),
                1 if single_ok => {
                    out.push(b'\'');
                    for &b in arg {
                        if b == b'\'' {
                            out.push(b'\\');
                        }
                        out.push(b);
                    }
                    out.push(b'\'');
                }
                _ => {
                    out.push(b'"');
                    for &b in arg {
                        out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                    }
                    out.push(b'"');
                }
            }
        }
        out.extend_from_slice(if rng.below(2) == 0 { b"\r\n" } else { b"\n" });
    }

    #[test]
    fn random_valid_commands_roundtrip_at_random_split_points() {
        let limits = Limits {
            max_arg_len: 40,
            max_inline_len: 4096,
            ..Limits::default()
        };
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..300 {
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for _ in 0..1 + rng.below(20) {
                let argc = 1 + rng.below(5);
                let args: Vec<Vec<u8>> = (0..argc)
                    .map(|_| {
                        let len = if rng.below(20) == 0 {
                            41 + rng.below(100)
                        } else {
                            rng.below(12)
                        };
                        (0..len).map(|_| rng.byte()).collect()
                    })
                    .collect();
                let oversized = args.iter().position(|a| a.len() > limits.max_arg_len);
                match oversized {
                    // Oversized arguments only travel as multibulk (an inline line is bounded).
                    Some(index) => {
                        input.extend_from_slice(format!("*{argc}\r\n").as_bytes());
                        for arg in &args {
                            input.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                            input.extend_from_slice(arg);
                            input.extend_from_slice(b"\r\n");
                        }
                        expected.push(Decoded::TooLarge {
                            name: (index > 0).then(|| Bytes::from(args[0].clone())),
                            len: args[index].len(),
                        });
                    }
                    None => {
                        encode_request(&mut rng, &args, &mut input);
                        expected.push(Decoded::Command(
                            args.into_iter().map(Bytes::from).collect(),
                        ));
                    }
                }
            }
            let mut decoder = Decoder::new(limits.clone());
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(1 + rng.below(rest.len().min(64)));
                rest = tail;
                buf.extend_from_slice(piece);
                while let Some(decoded) = decoder.decode(&mut buf).expect("valid stream") {
                    out.push(decoded);
                }
            }
            assert!(buf.is_empty());
            assert_eq!(out, expected);
        }
    }

    /// Redis 7.0's limits for a connection that has not authenticated, checked after the
    /// ordinary ones, with its error texts.
    #[test]
    fn unauthenticated_limits() {
        fn encode(args: &[&[u8]]) -> Vec<u8> {
            let mut out = format!("*{}\r\n", args.len()).into_bytes();
            for a in args {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a);
                out.extend_from_slice(b"\r\n");
            }
            out
        }
        let decode_unauth = |input: &[u8]| {
            let mut decoder = Decoder::default();
            decoder.set_unauthenticated(true);
            decoder.decode(&mut BytesMut::from(input))
        };
        let ten: Vec<&[u8]> = vec![b"x"; 10];
        assert_eq!(decode_unauth(&encode(&ten)), Ok(Some(cmd(&ten))));
        let eleven: Vec<&[u8]> = vec![b"x"; 11];
        assert_eq!(
            decode_unauth(&encode(&eleven)),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );
        assert_eq!(
            ProtocolError::UnauthenticatedMultibulkLength.to_string(),
            "Protocol error: unauthenticated multibulk length"
        );
        let max = vec![b'v'; 16384];
        assert_eq!(
            decode_unauth(&encode(&[b"AUTH", &max])),
            Ok(Some(cmd(&[b"AUTH", &max])))
        );
        assert_eq!(
            decode_unauth(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"),
            Err(ProtocolError::UnauthenticatedBulkLength)
        );
        assert_eq!(
            ProtocolError::UnauthenticatedBulkLength.to_string(),
            "Protocol error: unauthenticated bulk length"
        );
        // A bad count or length is still reported as such.
        assert_eq!(
            decode_unauth(b"*x\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            decode_unauth(b"*1\r\n$-5\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        // Lifted again: the ordinary limits.
        let mut decoder = Decoder::default();
        decoder.set_unauthenticated(true);
        decoder.set_unauthenticated(false);
        assert_eq!(
            decoder.decode(&mut BytesMut::from(&encode(&eleven)[..])),
            Ok(Some(cmd(&eleven)))
        );
    }
}
