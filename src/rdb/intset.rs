//! Intsets, Redis's encoding of a small set of integers (`RDB_TYPE_SET_INTSET`): the width of
//! every element (u32 LE: 2, 4 or 8 bytes), the count (u32 LE), then the elements in
//! ascending order, little-endian, all of that width (the smallest that holds them all).

use bytes::Bytes;

use super::RdbError;

pub fn encode(sorted: &[i64]) -> Vec<u8> {
    let width: usize = if sorted.iter().all(|&v| i16::try_from(v).is_ok()) {
        2
    } else if sorted.iter().all(|&v| i32::try_from(v).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + width * sorted.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for &v in sorted {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// The members, as decimal strings; checks the width, the size and the strict order.
pub fn decode(is: &[u8]) -> Result<Vec<Bytes>, RdbError> {
    let bad = RdbError::Format;
    if is.len() < 8 {
        return Err(bad("intset too short"));
    }
    let width = u32::from_le_bytes([is[0], is[1], is[2], is[3]]) as usize;
    let count = u32::from_le_bytes([is[4], is[5], is[6], is[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) || Some(is.len() - 8) != count.checked_mul(width) {
        return Err(bad("intset size"));
    }
    let mut out = Vec::with_capacity(count);
    let mut last: Option<i64> = None;
    for chunk in is[8..].chunks_exact(width) {
        let v = match width {
            2 => i64::from(i16::from_le_bytes([chunk[0], chunk[1]])),
            4 => i64::from(i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])),
            _ => {
                let mut a = [0u8; 8];
                a.copy_from_slice(chunk);
                i64::from_le_bytes(a)
            }
        };
        if last.is_some_and(|l| l >= v) {
            return Err(bad("intset order"));
        }
        last = Some(v);
        out.push(Bytes::from(v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_and_round_trip() {
        assert_eq!(encode(&[1, 2]), [2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 2, 0]);
        assert_eq!(encode(&[-1, 70000])[0], 4);
        assert_eq!(encode(&[1 << 40])[0], 8);
        let v = decode(&encode(&[-5, 3, 1 << 40])).expect("valid");
        assert_eq!(
            v,
            vec![
                Bytes::from("-5"),
                Bytes::from("3"),
                Bytes::from("1099511627776")
            ]
        );
        assert!(decode(&encode(&[3, 3])).is_err());
        assert!(decode(&[2, 0, 0, 0, 5, 0, 0, 0]).is_err());
    }
}
