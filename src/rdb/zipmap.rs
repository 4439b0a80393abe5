//! Zipmaps, the hash encoding of Redis before 2.6 (`RDB_TYPE_HASH_ZIPMAP`), which
//! redis-server 7.0 still loads. Read only.
//!
//! Layout: a count byte (254 or more: unknown), then pairs of `len key len free value
//! <free bytes>`, each len one byte (below 254) or 254 and a u32 LE; 0xFF ends it.

use bytes::Bytes;

use super::RdbError;

pub fn decode(zm: &[u8]) -> Result<Vec<(Bytes, Bytes)>, RdbError> {
    let bad = RdbError::Format("zipmap");
    let mut p = 1usize;
    let mut out = Vec::new();
    let len_at = |p: &mut usize| -> Result<usize, RdbError> {
        let b = *zm.get(*p).ok_or(bad.clone())?;
        match b {
            0..=253 => {
                *p += 1;
                Ok(usize::from(b))
            }
            254 => {
                let d = zm.get(*p + 1..*p + 5).ok_or(bad.clone())?;
                *p += 5;
                Ok(u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize)
            }
            _ => Err(bad.clone()),
        }
    };
    if zm.is_empty() {
        return Err(bad);
    }
    loop {
        match zm.get(p) {
            None => return Err(bad),
            Some(0xff) => break,
            Some(_) => {}
        }
        let klen = len_at(&mut p)?;
        let key = zm.get(p..p + klen).ok_or(bad.clone())?;
        p += klen;
        let vlen = len_at(&mut p)?;
        let free = usize::from(*zm.get(p).ok_or(bad.clone())?);
        p += 1;
        let value = zm.get(p..p + vlen).ok_or(bad.clone())?;
        p += vlen + free;
        out.push((Bytes::copy_from_slice(key), Bytes::copy_from_slice(value)));
    }
    if p + 1 != zm.len() {
        return Err(bad);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pairs() {
        let zm = [
            2, 1, b'a', 1, 0, b'x', 2, b'b', b'c', 2, 1, b'y', b'z', 0, 0xff,
        ];
        let v = decode(&zm).expect("valid");
        assert_eq!(
            v,
            vec![
                (Bytes::from("a"), Bytes::from("x")),
                (Bytes::from("bc"), Bytes::from("yz"))
            ]
        );
        for cut in 0..zm.len() {
            assert!(decode(&zm[..cut]).is_err());
        }
    }
}
