//! Listpacks, the compact encoding of small hashes and sorted sets and of list nodes in
//! Redis 7.0 (`RDB_TYPE_*_LISTPACK`, quicklist 2 nodes, stream nodes).
//!
//! Layout: total bytes (u32 LE), element count (u16 LE, 65535 when it does not fit), the
//! entries, and a 0xFF terminator. An entry is its encoding and data, then its own length
//! ("backlen", 1 to 5 bytes, 7 bits each, readable from the right). Strings that are exactly
//! an integer's decimal form are stored as integers of the smallest width (7, 13, 16, 24,
//! 32 or 64 bits), as `lpAppend` does.

use bytes::Bytes;

use super::RdbError;
use super::string::as_integer;

const HEADER: usize = 6;
const END: u8 = 0xff;
const COUNT_UNKNOWN: u16 = u16::MAX;

/// A listpack being built, one entry at a time.
pub struct Builder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            buf: vec![0; HEADER],
            count: 0,
        }
    }

    /// The listpack's size in bytes as it is now (terminator included), as Redis's `lpBytes`.
    pub fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    /// Appends an element (as an integer entry when it is one).
    pub fn push(&mut self, s: &[u8]) {
        let start = self.buf.len();
        match as_integer(s) {
            Some(v) => encode_int(&mut self.buf, v),
            None => encode_str(&mut self.buf, s),
        }
        let len = self.buf.len() - start;
        encode_backlen(&mut self.buf, len);
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(END);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count).unwrap_or(COUNT_UNKNOWN);
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

fn encode_int(out: &mut Vec<u8>, v: i64) {
    if (0..=127).contains(&v) {
        out.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        let u = (v as u64) & 0x1fff;
        out.push(0xc0 | (u >> 8) as u8);
        out.push(u as u8);
    } else if let Ok(h) = i16::try_from(v) {
        out.push(0xf1);
        out.extend_from_slice(&h.to_le_bytes());
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        out.push(0xf2);
        out.extend_from_slice(&v.to_le_bytes()[..3]);
    } else if let Ok(w) = i32::try_from(v) {
        out.push(0xf3);
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        out.push(0xf4);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn encode_str(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 64 {
        out.push(0x80 | n as u8);
    } else if n < 4096 {
        out.push(0xe0 | (n >> 8) as u8);
        out.push(n as u8);
    } else {
        out.push(0xf0);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    out.extend_from_slice(s);
}

fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..16383 => 2,
        16383..2097151 => 3,
        2097151..268435455 => 4,
        _ => 5,
    }
}

fn encode_backlen(out: &mut Vec<u8>, len: usize) {
    let k = backlen_size(len);
    for i in 0..k {
        let bits = ((len >> (7 * (k - 1 - i))) & 127) as u8;
        out.push(if i == 0 { bits } else { bits | 128 });
    }
}

/// Every element of a listpack, as strings (integers in decimal). Checks the whole
/// structure: header, each entry and its backlen, the count, the terminator.
pub fn decode(lp: &[u8]) -> Result<Vec<Bytes>, RdbError> {
    let bad = |why| RdbError::Format(why);
    if lp.len() < HEADER + 1 {
        return Err(bad("listpack too short"));
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    let count = u16::from_le_bytes([lp[4], lp[5]]);
    if total != lp.len() || lp[lp.len() - 1] != END {
        return Err(bad("listpack header or end"));
    }
    let body = &lp[HEADER..lp.len() - 1];
    let mut out = Vec::new();
    let mut p = 0usize;
    while p < body.len() {
        let (value, size) = entry(&body[p..])?;
        let mut expect = Vec::with_capacity(5);
        encode_backlen(&mut expect, size);
        let back = body
            .get(p + size..p + size + expect.len())
            .ok_or(bad("listpack entry past the end"))?;
        if back != expect.as_slice() {
            return Err(bad("listpack backlen"));
        }
        out.push(value);
        p += size + expect.len();
    }
    if count != COUNT_UNKNOWN && usize::from(count) != out.len() {
        return Err(bad("listpack count"));
    }
    Ok(out)
}

/// One entry at the start of `e`: its value and the size of its encoding and data.
fn entry(e: &[u8]) -> Result<(Bytes, usize), RdbError> {
    let short = RdbError::Format("listpack entry past the end");
    let b0 = e[0];
    let int = |v: i64, size: usize| Ok((Bytes::from(v.to_string()), size));
    let bytes = |at: usize, n: usize| {
        e.get(at..at + n)
            .ok_or(RdbError::Format("listpack entry past the end"))
    };
    if b0 & 0x80 == 0 {
        return int(i64::from(b0), 1);
    }
    if b0 & 0xc0 == 0x80 {
        let n = usize::from(b0 & 0x3f);
        return Ok((Bytes::copy_from_slice(bytes(1, n)?), 1 + n));
    }
    if b0 & 0xe0 == 0xc0 {
        let b1 = *e.get(1).ok_or(short)?;
        let u = (i64::from(b0 & 0x1f) << 8) | i64::from(b1);
        return int(if u >= 1 << 12 { u - (1 << 13) } else { u }, 2);
    }
    if b0 & 0xf0 == 0xe0 {
        let b1 = *e.get(1).ok_or(short)?;
        let n = (usize::from(b0 & 0x0f) << 8) | usize::from(b1);
        return Ok((Bytes::copy_from_slice(bytes(2, n)?), 2 + n));
    }
    match b0 {
        0xf0 => {
            let l = bytes(1, 4)?;
            let n = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
            Ok((Bytes::copy_from_slice(bytes(5, n)?), 5 + n))
        }
        0xf1 => {
            let d = bytes(1, 2)?;
            int(i64::from(i16::from_le_bytes([d[0], d[1]])), 3)
        }
        0xf2 => {
            let d = bytes(1, 3)?;
            let u = i32::from_le_bytes([0, d[0], d[1], d[2]]) >> 8;
            int(i64::from(u), 4)
        }
        0xf3 => {
            let d = bytes(1, 4)?;
            int(i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])), 5)
        }
        0xf4 => {
            let d = bytes(1, 8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(d);
            int(i64::from_le_bytes(a), 9)
        }
        _ => Err(RdbError::Format("listpack entry encoding")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_width() {
        let long = "y".repeat(5000);
        let mid = "x".repeat(300);
        let items: Vec<&[u8]> = vec![
            b"0",
            b"127",
            b"128",
            b"-1",
            b"-4096",
            b"4095",
            b"4096",
            b"-32768",
            b"32768",
            b"-8388608",
            b"8388608",
            b"2147483647",
            b"-2147483649",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"hello",
            b"",
            b"007",
            mid.as_bytes(),
            long.as_bytes(),
        ];
        let mut b = Builder::new();
        for i in &items {
            b.push(i);
        }
        let lp = b.finish();
        let back = decode(&lp).expect("valid");
        assert_eq!(back.len(), items.len());
        for (a, b) in back.iter().zip(&items) {
            assert_eq!(&a[..], *b);
        }
    }

    #[test]
    fn known_bytes() {
        // Redis 7.0: RPUSH l a 1 -> the node listpack.
        let mut b = Builder::new();
        b.push(b"a");
        b.push(b"1");
        assert_eq!(
            b.finish(),
            [0x0c, 0, 0, 0, 2, 0, 0x81, b'a', 2, 0x01, 1, 0xff]
        );
    }

    #[test]
    fn corrupt_is_refused() {
        let mut b = Builder::new();
        b.push(b"abc");
        let lp = b.finish();
        for cut in 0..lp.len() {
            assert!(decode(&lp[..cut]).is_err());
        }
        let mut bad = lp.clone();
        bad[6] = 0x85; // string longer than the entry
        assert!(decode(&bad).is_err());
    }
}
