//! LZF, the compression redis-server applies to long strings in DUMP payloads and RDB files.
//!
//! Written from the format: a stream of runs, each opened by a control byte
//! - `000LLLLL` then `L+1` literal bytes;
//! - `LLLooooo oooooooo`: copy `L+2` bytes from `o+1` bytes back (L in 1..=6);
//! - `111ooooo LLLLLLLL oooooooo`: copy `L+9` bytes from `o+1` bytes back.
//!
//! [`compress`] makes the same choices as liblzf 3.6, which Debian's redis-server 7.0.15
//! links (a 2^16-slot hash of 3-byte prefixes, "very fast" mode: after a match only its last
//! two positions are hashed; a match may end at the input's end), so DUMP payloads match
//! byte for byte: checked against the C library on 3000 inputs (`lzf_cases`). Redis's own
//! bundled copy differs slightly (it takes no match within 4 bytes of the end). [`decompress`] is total: any input gives
//! an error or exactly `out_len` bytes, never more work than its output size.

const HASH_LOG: u32 = 16;
const HASH_SIZE: usize = 1 << HASH_LOG;
const MAX_LITERAL: usize = 1 << 5;
const MAX_OFFSET: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// The hash slot of the running value `h` (the last bytes read, newest lowest), as liblzf
/// 3.6 computes it in its "very fast" mode (the library Debian's redis-server 7.0 links).
fn slot(h: u32) -> usize {
    ((h >> (3 * 8 - HASH_LOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HASH_SIZE - 1)
}

/// Compresses `input` into at most `max_out` bytes; `None` if it does not fit (as
/// `lzf_compress` returning 0).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let n = input.len();
    if n == 0 || max_out == 0 {
        return None;
    }
    // Positions of earlier 3-byte prefixes by hash; 0 doubles as "empty" since a match at
    // position 0 is never taken (as the reference code's `ref > in_data`).
    let mut table = vec![0usize; HASH_SIZE];
    // `op` is the next write position; `out[op - lit - 1]` holds the open run's control byte.
    let mut out = vec![0u8; max_out + 8];
    let mut op = 1usize;
    let mut lit = 0usize;
    let mut ip = 0usize;
    let first = |at: usize| (u32::from(input[at]) << 8) | u32::from(input[at + 1]);
    let next = |h: u32, at: usize| (h << 8) | u32::from(input[at + 2]);
    let mut hval = if n >= 2 { first(0) } else { 0 };
    while n >= 3 && ip < n - 2 {
        hval = next(hval, ip);
        let s = slot(hval);
        let candidate = table[s];
        table[s] = ip;
        let matched = candidate > 0
            && candidate < ip
            && ip - candidate - 1 < MAX_OFFSET
            && input[candidate..candidate + 3] == input[ip..ip + 3];
        if matched {
            let r = candidate;
            let off = ip - r - 1;
            let maxlen = (n - ip - 2).min(MAX_REF);
            // Room for the reference (counting the literal run's byte only if it is kept).
            if op - usize::from(lit == 0) + 3 + 1 >= max_out {
                return None;
            }
            // Close the literal run (dropping it if empty).
            out[op - lit - 1] = (lit as u8).wrapping_sub(1);
            if lit == 0 {
                op -= 1;
            }
            let mut len = 2usize;
            'extend: {
                if maxlen > 16 {
                    for _ in 0..16 {
                        len += 1;
                        if input[r + len] != input[ip + len] {
                            break 'extend;
                        }
                    }
                }
                loop {
                    len += 1;
                    if !(len < maxlen && input[r + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2;
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 1;
            // Open a new literal run.
            lit = 0;
            op += 1;
            ip += len + 1;
            if ip >= n - 2 {
                break;
            }
            // Hash the last two positions of the match.
            ip -= 2;
            hval = first(ip);
            hval = next(hval, ip);
            table[slot(hval)] = ip;
            ip += 1;
            hval = next(hval, ip);
            table[slot(hval)] = ip;
            ip += 1;
        } else {
            if op >= max_out {
                return None;
            }
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LITERAL {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > max_out {
        return None;
    }
    while ip < n {
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LITERAL {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    if lit == 0 {
        op -= 1;
    }
    out.truncate(op);
    Some(out)
}

/// Decompresses `input`, which must expand to exactly `out_len` bytes; `None` if it is
/// malformed (a back reference before the start, a run past either end, a wrong length).
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(out_len);
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let lits = input.get(ip..ip + run)?;
            if out.len() + run > out_len {
                return None;
            }
            out.extend_from_slice(lits);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(ip)?);
                ip += 1;
            }
            len += 2;
            let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(ip)?) + 1;
            ip += 1;
            if back > out.len() || out.len() + len > out_len {
                return None;
            }
            // Byte by byte: the source may overlap what is being written.
            let start = out.len() - back;
            for i in 0..len {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    (out.len() == out_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let samples: Vec<Vec<u8>> = vec![
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            b"hello world hello world hello world hello world".to_vec(),
            (0..5000u32).map(|i| (i % 251) as u8).collect(),
            (0..3000u32).map(|i| (i * 7 % 13) as u8).collect(),
            b"abcabcabcabcabcabcabcabcabcxyzxyzxyzxyzxyzabc".repeat(40),
        ];
        for s in samples {
            let c = compress(&s, s.len()).expect("compressible");
            assert!(c.len() <= s.len());
            assert_eq!(decompress(&c, s.len()).as_deref(), Some(&s[..]));
        }
    }

    #[test]
    fn compress_is_total_for_any_input_and_budget() {
        // DUMP compresses whatever a client stored: any input and any budget gives a payload
        // that decompresses back, or None; never a panic.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..3000 {
            let len = (rand() % 700) as usize;
            let alphabet = 1 + (round % 7) as u64 * 40;
            let input: Vec<u8> = (0..len).map(|_| (rand() % alphabet) as u8).collect();
            let budget = (rand() % (len as u64 + 16)) as usize;
            if let Some(c) = compress(&input, budget) {
                assert!(c.len() <= budget, "round {round}");
                assert_eq!(
                    decompress(&c, len).as_deref(),
                    Some(&input[..]),
                    "round {round}"
                );
            }
        }
    }

    /// Writes compress() of pseudo-random inputs for a comparison with liblzf, by hand:
    /// `cargo test --lib lzf_cases -- --ignored` writes `/tmp/dump-lzf-mine.txt` (lines of
    /// `input-hex max-out output-hex|NONE`); then, with Python's ctypes, for each line compare
    /// with `CDLL("liblzf.so.1").lzf_compress(input, len, buf, max_out)` (0 for NONE).
    #[test]
    #[ignore]
    fn lzf_cases() {
        use std::fmt::Write as _;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut text = String::new();
        for case in 0..3000 {
            let len = (rnd() % if case % 5 == 0 { 9000 } else { 600 }) as usize + 1;
            let alphabet = rnd() % 6 + 1 + if case % 3 == 0 { 249 } else { 0 };
            let mut data: Vec<u8> = (0..len).map(|_| (rnd() % alphabet) as u8).collect();
            if case % 4 == 1 {
                // Tokens of a small vocabulary with counters, like a listpack's entries.
                data.clear();
                let mut i = 0u64;
                while data.len() < len {
                    data.extend_from_slice(
                        format!("f{:03}\x05v{}", i % 1000, i * (rnd() % 3)).as_bytes(),
                    );
                    i += 1;
                }
            }
            let len = data.len();
            let max_out = if case % 2 == 0 {
                len.saturating_sub(4).max(1)
            } else {
                len + 64
            };
            let got = compress(&data, max_out);
            for b in &data {
                let _ = write!(text, "{b:02x}");
            }
            let _ = write!(text, " {max_out} ");
            match got {
                Some(o) => o.iter().for_each(|b| {
                    let _ = write!(text, "{b:02x}");
                }),
                None => text.push_str("NONE"),
            }
            text.push('\n');
        }
        std::fs::write("/tmp/dump-lzf-mine.txt", text).expect("write cases");
    }

    #[test]
    fn incompressible_is_refused() {
        let s: Vec<u8> = (0..64u8).collect();
        assert_eq!(compress(&s, s.len() - 4), None);
    }

    #[test]
    fn decompress_is_total() {
        assert_eq!(decompress(&[0x20, 0x00], 3), None); // reference before the start
        assert_eq!(decompress(&[0x05, b'a'], 6), None); // literal past the input
        assert_eq!(decompress(&[0x00, b'a'], 2), None); // short
        assert_eq!(decompress(&[0x00, b'a', 0xe0, 0xff, 0x00], 10), None); // too long
        for len in 0..40 {
            for seed in 0..50u32 {
                let junk: Vec<u8> = (0..len)
                    .map(|i| (seed.wrapping_mul(2_654_435_761).rotate_left(i) & 0xff) as u8)
                    .collect();
                let _ = decompress(&junk, 100);
            }
        }
    }
}
