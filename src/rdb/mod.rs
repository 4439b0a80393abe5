//! Redis's serialization format (RDB), as far as DUMP / RESTORE and FUNCTION DUMP / RESTORE
//! need it: a value's payload is its type byte, its object encoding (`object`), then a
//! footer of the RDB version (u16 LE, 10 for Redis 7.0) and a CRC-64 (`crc64`, u64 LE) of
//! everything before it.
//!
//! One file per concern: `length` (length fields and the bounded cursor), `string` (integer,
//! LZF and plain strings, doubles), `lzf`, `listpack`, `ziplist`, `intset`, `zipmap`,
//! `object` (each type's encodings), `stream` (stream nodes, groups, pending entries). Every
//! decoder is total: any input gives a value or an `RdbError`, never a panic, and no length it
//! reads makes it allocate beyond the payload.
//!
//! What "byte for byte" covers: DUMP gives redis-server 7.0.15's payload (Debian's build,
//! which links liblzf 3.6) whenever Redis's layout follows from the value alone: strings,
//! lists built by RPUSH, intsets, sorted sets, small hashes whose fields were added in byte
//! order, streams built by XADD. Where Redis's bytes depend on history kvd does not keep
//! (hash-table order of big hashes and sets, insertion order of small hashes, LPUSH's node
//! split, entries XDEL left flagged in a node, an encoding kept after the value shrank), the
//! payload holds the same value in another layout, which redis-server restores alike.

mod crc64;
mod intset;
mod length;
mod listpack;
mod lzf;
mod object;
mod stream;
mod string;
mod ziplist;
mod zipmap;

pub use object::Value;
pub use stream::{Consumer as StreamConsumer, Group as StreamGroup, StreamValue};

/// The RDB version redis-server 7.0 writes (and the newest it reads).
pub const RDB_VERSION: u16 = 10;
/// A function library in a FUNCTION DUMP payload (`RDB_OPCODE_FUNCTION2`).
const OPCODE_FUNCTION2: u8 = 245;
/// The pre-release library format, which Redis 7.0 refuses.
const OPCODE_FUNCTION_PRE_GA: u8 = 246;
const FOOTER: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RdbError {
    /// A payload too short for a footer, of a newer RDB version, or with a wrong checksum.
    #[error("payload version or checksum are wrong")]
    Footer,
    #[error("payload ends early")]
    Truncated,
    #[error("bad data format: {0}")]
    Format(&'static str),
    /// FUNCTION RESTORE's own messages (Redis's text).
    #[error("{0}")]
    Function(&'static str),
}

/// `body` with the footer appended.
fn with_footer(mut body: Vec<u8>) -> Vec<u8> {
    body.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::crc64(0, &body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// The payload without its footer, once the footer is checked as Redis's
/// `verifyDumpPayload` does (version not newer than 10, checksum of the rest).
fn verified(payload: &[u8]) -> Result<&[u8], RdbError> {
    if payload.len() < FOOTER {
        return Err(RdbError::Footer);
    }
    let (body, footer) = payload.split_at(payload.len() - FOOTER);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return Err(RdbError::Footer);
    }
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    let covered = &payload[..payload.len() - 8];
    if crc64::crc64(0, covered) != u64::from_le_bytes(crc) {
        return Err(RdbError::Footer);
    }
    Ok(body)
}

/// DUMP's payload for a value.
pub fn dump(value: &Value) -> Vec<u8> {
    with_footer(object::dump_value(value))
}

/// RESTORE's reading of a payload: footer, type, object.
pub fn load(payload: &[u8]) -> Result<Value, RdbError> {
    let body = verified(payload)?;
    let mut c = length::Cursor::new(body);
    let kind = c.byte().map_err(|_| RdbError::Format("no type"))?;
    object::load_value(kind, &mut c)
}

/// Whether a payload's footer is right (RESTORE checks it before anything else reads it).
pub fn footer_ok(payload: &[u8]) -> bool {
    verified(payload).is_ok()
}

/// FUNCTION DUMP's payload: each library's code.
pub fn dump_functions<'a>(codes: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for code in codes {
        body.push(OPCODE_FUNCTION2);
        string::write_string(&mut body, code);
    }
    with_footer(body)
}

/// The library codes of a FUNCTION DUMP payload, with Redis's errors for what is not one.
pub fn load_functions(payload: &[u8]) -> Result<Vec<bytes::Bytes>, RdbError> {
    let body = verified(payload)?;
    let mut c = length::Cursor::new(body);
    let mut codes = Vec::new();
    while !c.is_empty() {
        match c.byte()? {
            OPCODE_FUNCTION2 => {}
            OPCODE_FUNCTION_PRE_GA => {
                return Err(RdbError::Function("Pre-GA function format not supported"));
            }
            _ => return Err(RdbError::Function("given type is not a function")),
        }
        let code = string::read_string(&mut c)
            .map_err(|_| RdbError::Function("failed loading the given functions payload"))?;
        codes.push(code);
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn redis_7_string_payload() {
        // redis-server 7.0.15: SET k hello; DUMP k
        let expected = b"\x00\x05hello\x0a\x00\x63\x72\xdf\x76\x65\x34\x20\x0a";
        assert_eq!(dump(&Value::String(Bytes::from_static(b"hello"))), expected);
        assert_eq!(
            load(expected),
            Ok(Value::String(Bytes::from_static(b"hello")))
        );
    }

    #[test]
    fn footer_checks() {
        let mut p = dump(&Value::String(Bytes::from_static(b"x")));
        assert!(footer_ok(&p));
        let n = p.len();
        p[n - 1] ^= 1;
        assert_eq!(load(&p), Err(RdbError::Footer));
        assert_eq!(load(b"short"), Err(RdbError::Footer));
        let newer = with_footer(vec![0, 1, b'x'])
            .iter()
            .enumerate()
            .map(|(i, &b)| if i == 3 { 11 } else { b })
            .collect::<Vec<u8>>();
        assert_eq!(load(&newer), Err(RdbError::Footer));
    }

    #[test]
    fn functions_round_trip() {
        let codes: Vec<&[u8]> =
            vec![b"#!lua name=a\nredis.register_function('f', function() return 1 end)"];
        let p = dump_functions(codes.iter().copied());
        assert_eq!(
            load_functions(&p).expect("loads"),
            vec![Bytes::from_static(codes[0])]
        );
        assert!(load_functions(&dump(&Value::String(Bytes::from_static(b"x")))).is_err());
    }

    #[test]
    fn mutated_payloads_never_panic() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let list: Vec<Bytes> = (0..400).map(|i| b(&format!("item{i}"))).collect();
        let stream = StreamValue {
            entries: (1..50u64)
                .map(|i| ((i, i % 3), vec![b("f"), b(&i.to_string())]))
                .collect(),
            length: 49,
            last_id: (49, 1),
            groups: vec![StreamGroup {
                name: b("g"),
                last_id: (2, 2),
                entries_read: 2,
                pel: vec![((1, 1), 5, 1)],
                consumers: vec![StreamConsumer {
                    name: b("c"),
                    seen_time: 5,
                    pel: vec![(1, 1)],
                }],
            }],
            ..StreamValue::default()
        };
        let values = vec![
            Value::String(b(&"abc".repeat(30))),
            Value::List(list.clone()),
            Value::Set(vec![b("1"), b("2"), b("300000")]),
            Value::Set(list.clone()),
            Value::Hash(vec![(b("a"), b("1")), (b("b"), b(&"x".repeat(100)))]),
            Value::Hash(vec![(b("a"), b("1")), (b("b"), b("2"))]),
            Value::ZSet {
                members: vec![(b("a"), 1.0), (b("b"), 2.5)],
                skiplist: false,
            },
            Value::ZSet {
                members: vec![(b("a"), 1.0), (b("b"), 2.5)],
                skiplist: true,
            },
            Value::Stream(Box::new(stream)),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for v in &values {
            let p = dump(v);
            assert!(load(&p).is_ok(), "{v:?}");
            let body = &p[..p.len() - FOOTER];
            for _ in 0..2000 {
                let mut m = body.to_vec();
                for _ in 0..1 + rnd() % 4 {
                    let at = (rnd() as usize) % m.len();
                    m[at] = rnd() as u8;
                }
                if rnd() % 4 == 0 {
                    m.truncate((rnd() as usize) % m.len());
                }
                let _ = load(&with_footer(m));
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u64;
        for len in 0..200usize {
            for _ in 0..20 {
                let mut body = Vec::with_capacity(len);
                for _ in 0..len {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    body.push((seed & 0xff) as u8);
                }
                if let Some(first) = body.first_mut() {
                    *first %= 20;
                }
                let p = with_footer(body);
                let _ = load(&p);
                let _ = load_functions(&p);
            }
        }
    }
}
