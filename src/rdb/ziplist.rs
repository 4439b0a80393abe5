//! Ziplists, the compact encoding of Redis before 7.0 (RDB types 10, 12, 13 and quicklist 1
//! nodes). kvd only reads them: redis-server 7.0 still loads them, so RESTORE must.
//!
//! Layout: total bytes (u32 LE), offset of the last entry (u32 LE), count (u16 LE, 65535 when
//! unknown), entries, 0xFF. An entry is the previous entry's length (1 byte, or 0xFE and 4
//! bytes LE), an encoding (6-, 14- or 32-bit string lengths; 8/16/24/32/64-bit integers; or
//! an immediate 0..12) and its data.

use bytes::Bytes;

use super::RdbError;

const HEADER: usize = 10;
const END: u8 = 0xff;

pub fn decode(zl: &[u8]) -> Result<Vec<Bytes>, RdbError> {
    let bad = RdbError::Format;
    if zl.len() < HEADER + 1 {
        return Err(bad("ziplist too short"));
    }
    let total = u32::from_le_bytes([zl[0], zl[1], zl[2], zl[3]]) as usize;
    let count = u16::from_le_bytes([zl[8], zl[9]]);
    if total != zl.len() || zl[zl.len() - 1] != END {
        return Err(bad("ziplist header or end"));
    }
    let body = &zl[HEADER..zl.len() - 1];
    let get = |at: usize, n: usize| {
        body.get(at..at + n)
            .ok_or(bad("ziplist entry past the end"))
    };
    let mut out = Vec::new();
    let mut p = 0usize;
    let mut prev_size = 0usize;
    while p < body.len() {
        let start = p;
        let prevlen = if body[p] < 254 {
            p += 1;
            usize::from(body[p - 1])
        } else if body[p] == 254 {
            let d = get(p + 1, 4)?;
            p += 5;
            u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize
        } else {
            return Err(bad("ziplist prevlen"));
        };
        if prevlen != prev_size {
            return Err(bad("ziplist prevlen"));
        }
        let enc = *body.get(p).ok_or(bad("ziplist entry past the end"))?;
        p += 1;
        let int = |v: i64| Bytes::from(v.to_string());
        let value = match enc >> 6 {
            0 => {
                let n = usize::from(enc & 0x3f);
                let s = get(p, n)?;
                p += n;
                Bytes::copy_from_slice(s)
            }
            1 => {
                let n = (usize::from(enc & 0x3f) << 8) | usize::from(get(p, 1)?[0]);
                let s = get(p + 1, n)?;
                p += 1 + n;
                Bytes::copy_from_slice(s)
            }
            2 if enc == 0x80 => {
                let l = get(p, 4)?;
                let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
                let s = get(p + 4, n)?;
                p += 4 + n;
                Bytes::copy_from_slice(s)
            }
            2 => return Err(bad("ziplist string encoding")),
            _ => match enc {
                0xc0 => {
                    let d = get(p, 2)?;
                    p += 2;
                    int(i64::from(i16::from_le_bytes([d[0], d[1]])))
                }
                0xd0 => {
                    let d = get(p, 4)?;
                    p += 4;
                    int(i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])))
                }
                0xe0 => {
                    let d = get(p, 8)?;
                    p += 8;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(d);
                    int(i64::from_le_bytes(a))
                }
                0xf0 => {
                    let d = get(p, 3)?;
                    p += 3;
                    int(i64::from(i32::from_le_bytes([0, d[0], d[1], d[2]]) >> 8))
                }
                0xfe => {
                    let d = get(p, 1)?;
                    p += 1;
                    int(i64::from(d[0] as i8))
                }
                0xf1..=0xfd => int(i64::from(enc & 0x0f) - 1),
                _ => return Err(bad("ziplist integer encoding")),
            },
        };
        prev_size = p - start;
        out.push(value);
    }
    if count != u16::MAX && usize::from(count) != out.len() {
        return Err(bad("ziplist count"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redis_6_bytes() {
        // Redis 6.2: RPUSH l a 5 300 -> the ziplist of the quicklist node.
        let zl = [
            0x14, 0, 0, 0, 0x0f, 0, 0, 0, 3, 0, // header
            0x00, 0x01, b'a', // "a"
            0x03, 0xf6, // 5 (immediate)
            0x02, 0xc0, 0x2c, 0x01, // 300 (int16)
            0xff,
        ];
        let v = decode(&zl).expect("valid");
        assert_eq!(
            v,
            vec![Bytes::from("a"), Bytes::from("5"), Bytes::from("300")]
        );
        for cut in 0..zl.len() {
            assert!(decode(&zl[..cut]).is_err());
        }
    }
}
