//! The RDB length encoding, and the cursor every decoder reads with.
//!
//! A length is `00xxxxxx` (6 bits), `01xxxxxx xxxxxxxx` (14 bits, big-endian), `0x80` + 4
//! bytes or `0x81` + 8 bytes (big-endian). `11xxxxxx` is not a length but says how the string
//! that follows is encoded (an integer of 8, 16 or 32 bits, or LZF).

use super::RdbError;

/// A bounded reader over a payload: every read checks what is left, so no input can make a
/// decoder read past its end.
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn byte(&mut self) -> Result<u8, RdbError> {
        let b = *self.data.get(self.pos).ok_or(RdbError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        let end = self.pos.checked_add(n).ok_or(RdbError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(RdbError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

/// What a length field holds: a length, or the encoding of a special string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Plain(u64),
    Encoded(u8),
}

pub const ENC_INT8: u8 = 0;
pub const ENC_INT16: u8 = 1;
pub const ENC_INT32: u8 = 2;
pub const ENC_LZF: u8 = 3;

pub fn read_length_field(c: &mut Cursor) -> Result<Length, RdbError> {
    let first = c.byte()?;
    Ok(match first >> 6 {
        0 => Length::Plain(u64::from(first & 0x3f)),
        1 => Length::Plain((u64::from(first & 0x3f) << 8) | u64::from(c.byte()?)),
        3 => Length::Encoded(first & 0x3f),
        _ if first == 0x80 => Length::Plain(u64::from(u32::from_be_bytes(c.array()?))),
        _ if first == 0x81 => Length::Plain(u64::from_be_bytes(c.array()?)),
        _ => return Err(RdbError::Format("unknown length encoding")),
    })
}

/// A plain length (an encoded-string marker here is a format error).
pub fn read_length(c: &mut Cursor) -> Result<u64, RdbError> {
    match read_length_field(c)? {
        Length::Plain(n) => Ok(n),
        Length::Encoded(_) => Err(RdbError::Format("encoded value where a length belongs")),
    }
}

/// A length that counts things still to be read, each at least `min_size` bytes: larger
/// than what is left is a format error (so no count can make a decoder allocate or loop
/// beyond the payload).
pub fn read_count(c: &mut Cursor, min_size: usize) -> Result<usize, RdbError> {
    let n = read_length(c)?;
    let n = usize::try_from(n).map_err(|_| RdbError::Format("length too large"))?;
    if n.saturating_mul(min_size.max(1)) > c.remaining() {
        return Err(RdbError::Format("length beyond the payload"));
    }
    Ok(n)
}

pub fn write_length(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for n in [
            0u64,
            1,
            63,
            64,
            16383,
            16384,
            1 << 31,
            u64::from(u32::MAX),
            1 << 40,
        ] {
            let mut out = Vec::new();
            write_length(&mut out, n);
            let mut c = Cursor::new(&out);
            assert_eq!(read_length(&mut c), Ok(n));
            assert!(c.is_empty());
        }
        let mut out = Vec::new();
        write_length(&mut out, 300);
        assert_eq!(out, [0x41, 0x2c]);
    }

    #[test]
    fn truncated_and_unknown() {
        assert_eq!(
            read_length(&mut Cursor::new(&[0x41])),
            Err(RdbError::Truncated)
        );
        assert!(read_length(&mut Cursor::new(&[0x82])).is_err());
        assert!(read_length(&mut Cursor::new(&[0xc0])).is_err());
        assert!(read_count(&mut Cursor::new(&[0x05, 1, 2]), 1).is_err());
    }
}
