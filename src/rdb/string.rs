//! RDB strings: plain (length + bytes), integers (8, 16, 32 bits, little-endian, for the
//! strings that are exactly an integer's decimal form) and LZF-compressed (see `lzf`), plus
//! the two ways scores are written (binary doubles, and old text doubles).

use bytes::Bytes;

use super::length::{
    Cursor, ENC_INT8, ENC_INT16, ENC_INT32, ENC_LZF, Length, read_length, read_length_field,
    write_length,
};
use super::{RdbError, lzf};

/// The strict integer form Redis recognizes (`string2ll`): no sign but '-', no leading zero,
/// no spaces, within i64.
pub fn as_integer(s: &[u8]) -> Option<i64> {
    crate::resp::decode::parse_redis_int(s)
}

/// An integer as the RDB's 8/16/32-bit string encoding, if it fits one.
fn encode_integer(out: &mut Vec<u8>, v: i64) -> bool {
    if let Ok(b) = i8::try_from(v) {
        out.push(0xc0 | ENC_INT8);
        out.push(b as u8);
    } else if let Ok(h) = i16::try_from(v) {
        out.push(0xc0 | ENC_INT16);
        out.extend_from_slice(&h.to_le_bytes());
    } else if let Ok(w) = i32::try_from(v) {
        out.push(0xc0 | ENC_INT32);
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Writes a string as redis-server does (`rdbSaveRawString` with compression on): an
/// integer encoding for short integer strings, LZF for strings over 20 bytes that shrink by
/// more than 4 bytes, else plain.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11
        && let Some(v) = as_integer(s)
        && encode_integer(out, v)
    {
        return;
    }
    if s.len() > 20
        && let Some(packed) = lzf::compress(s, s.len() - 4)
    {
        out.push(0xc0 | ENC_LZF);
        write_length(out, packed.len() as u64);
        write_length(out, s.len() as u64);
        out.extend_from_slice(&packed);
        return;
    }
    write_length(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The largest expansion LZF can give (a 3-byte back reference copies at most 264 bytes), so
/// a stated length beyond it is malformed, whatever the data: no allocation on its word.
const LZF_MAX_RATIO: usize = 90;

/// Reads a string in any of its encodings.
pub fn read_string(c: &mut Cursor) -> Result<Bytes, RdbError> {
    match read_length_field(c)? {
        Length::Plain(n) => {
            let n = usize::try_from(n).map_err(|_| RdbError::Truncated)?;
            Ok(Bytes::copy_from_slice(c.take(n)?))
        }
        Length::Encoded(ENC_INT8) => Ok(int_text(i64::from(c.byte()? as i8))),
        Length::Encoded(ENC_INT16) => Ok(int_text(i64::from(i16::from_le_bytes(c.array()?)))),
        Length::Encoded(ENC_INT32) => Ok(int_text(i64::from(i32::from_le_bytes(c.array()?)))),
        Length::Encoded(ENC_LZF) => {
            let clen = usize::try_from(read_length(c)?).map_err(|_| RdbError::Truncated)?;
            let len = usize::try_from(read_length(c)?)
                .map_err(|_| RdbError::Format("LZF length too large"))?;
            let packed = c.take(clen)?;
            if len > clen.saturating_mul(LZF_MAX_RATIO) {
                return Err(RdbError::Format("invalid LZF compressed string"));
            }
            lzf::decompress(packed, len)
                .map(Bytes::from)
                .ok_or(RdbError::Format("invalid LZF compressed string"))
        }
        Length::Encoded(_) => Err(RdbError::Format("unknown string encoding")),
    }
}

fn int_text(v: i64) -> Bytes {
    Bytes::from(v.to_string())
}

/// A score as 8 little-endian bytes (`RDB_TYPE_ZSET_2`).
pub fn write_binary_double(out: &mut Vec<u8>, d: f64) {
    out.extend_from_slice(&d.to_le_bytes());
}

pub fn read_binary_double(c: &mut Cursor) -> Result<f64, RdbError> {
    Ok(f64::from_le_bytes(c.array()?))
}

/// A score of the old text form (`RDB_TYPE_ZSET`): a length byte then the digits, or 253,
/// 254, 255 for nan, inf, -inf.
pub fn read_text_double(c: &mut Cursor) -> Result<f64, RdbError> {
    match c.byte()? {
        253 => Ok(f64::NAN),
        254 => Ok(f64::INFINITY),
        255 => Ok(f64::NEG_INFINITY),
        n => {
            let text = c.take(usize::from(n))?;
            std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .ok_or(RdbError::Format("bad double value"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_string(&mut out, s);
        out
    }

    #[test]
    fn encodings_as_redis_chooses_them() {
        assert_eq!(saved(b"12"), [0xc0, 12]);
        assert_eq!(saved(b"-129"), [0xc1, 0x7f, 0xff]);
        assert_eq!(saved(b"100000"), [0xc2, 0xa0, 0x86, 0x01, 0x00]);
        assert_eq!(saved(b"012"), [3, b'0', b'1', b'2']);
        assert_eq!(
            saved(b"12345678901"),
            [
                11, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8', b'9', b'0', b'1'
            ]
        );
        let long = b"a".repeat(30);
        assert_eq!(saved(&long)[0], 0xc3);
        for s in [&b"x"[..], b"-5", b"2147483648", &long, b"hello"] {
            let bytes = saved(s);
            let mut c = Cursor::new(&bytes);
            assert_eq!(read_string(&mut c).as_deref(), Ok(s));
            assert!(c.is_empty());
        }
    }

    #[test]
    fn lzf_lengths_are_bounded() {
        // A 3-byte "compressed" string claiming a gigabyte.
        let bytes = [0xc3, 0x03, 0x80, 0x40, 0, 0, 0, 0x00, b'a', b'b'];
        assert!(read_string(&mut Cursor::new(&bytes)).is_err());
    }
}
