//! HyperLogLog values in Redis's own string representation, so a value taken from redis-server
//! with GET and written to kvd with SET (or the other way) counts the same, and the bytes kvd
//! produces for the same PFADDs are the bytes Redis produces.
//!
//! The layout (Redis's `hyperloglog.c`, described here from its documented format):
//! - a 16-byte header: `HYLL`, the encoding (0 dense, 1 sparse), three zero bytes, and the cached
//!   cardinality, u64 little-endian, whose top bit set means "stale";
//! - 16,384 registers of 6 bits. **Dense**: packed least significant bit first, 12,288 bytes.
//!   **Sparse**: run-length opcodes: `00xxxxxx` ZERO (x+1 zero registers, up to 64),
//!   `01xxxxxx yyyyyyyy` XZERO (up to 16,384 zeros), `1vvvvvxx` VAL (x+1 registers of value v+1;
//!   up to 4 registers, values up to 32). A value over 32, or a sparse form past
//!   [`SPARSE_MAX_BYTES`], turns the value dense.
//! - An element goes to register `h & 16383` of its 64-bit MurmurHash64A (seed `0xadc83b19`), with
//!   the count of trailing zeros of the rest of the hash, plus one.
//!
//! Everything here is a pure function of the bytes: apply uses it on every node alike. A value
//! that does not parse is reported, never trusted (every read is bounds-checked).

/// Registers: 2^14.
pub const REGISTERS: usize = 1 << P;
const P: u32 = 14;
/// Hash bits left for the run of zeros.
const Q: u32 = 64 - P;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
pub const HEADER: usize = 16;
pub const DENSE_SIZE: usize = HEADER + (REGISTERS * BITS).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const MAGIC: &[u8; 4] = b"HYLL";

const ZERO_MAX: usize = 64;
const XZERO_MAX: usize = 16384;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;

/// Redis's default `hll-sparse-max-bytes`. A constant, not the node's setting: the encoding an
/// apply produces must be the same on every node.
pub const SPARSE_MAX_BYTES: usize = 3000;

/// Why a value cannot be used as a HyperLogLog.
#[derive(Debug, PartialEq, Eq)]
pub enum HllError {
    /// Not a HyperLogLog string at all (WRONGTYPE "Key is not a valid HyperLogLog string value.").
    NotHll,
    /// Looks like one, but its registers do not add up (INVALIDOBJ).
    Corrupt,
}

/// A HyperLogLog value being read or changed: Redis's bytes, header included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hll {
    bytes: Vec<u8>,
}

impl Hll {
    /// An empty HyperLogLog, as PFADD creates it: sparse, one XZERO run, cached count 0.
    pub fn new() -> Hll {
        let mut bytes = Vec::with_capacity(HEADER + 2);
        bytes.extend_from_slice(MAGIC);
        bytes.push(SPARSE);
        bytes.extend_from_slice(&[0; 11]);
        let mut left = REGISTERS;
        while left > 0 {
            let run = left.min(XZERO_MAX);
            push_xzero(&mut bytes, run);
            left -= run;
        }
        Hll { bytes }
    }

    /// Checks the header as Redis does before any use (length, magic, encoding, dense size).
    pub fn parse(value: &[u8]) -> Result<Hll, HllError> {
        if value.len() < HEADER || &value[..4] != MAGIC || value[4] > SPARSE {
            return Err(HllError::NotHll);
        }
        if value[4] == DENSE && value.len() != DENSE_SIZE {
            return Err(HllError::NotHll);
        }
        Ok(Hll {
            bytes: value.to_vec(),
        })
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn is_dense(&self) -> bool {
        self.bytes[4] == DENSE
    }

    /// The cached cardinality, if it is current.
    pub fn cached(&self) -> Option<u64> {
        let c = u64::from_le_bytes(self.card_bytes());
        (c >> 63 == 0).then_some(c)
    }

    fn card_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.bytes[8..16]);
        b
    }

    pub fn set_cached(&mut self, card: u64) {
        self.bytes[8..16].copy_from_slice(&card.to_le_bytes());
    }

    /// Marks the cached cardinality stale.
    pub fn invalidate_cache(&mut self) {
        self.bytes[15] |= 0x80;
    }

    /// Adds one element; true if a register grew (the cached count is then stale).
    pub fn add(&mut self, element: &[u8]) -> Result<bool, HllError> {
        let (index, count) = pattern(element);
        self.set(index, count)
    }

    /// Raises register `index` to `count` if it is lower; true if it changed.
    pub fn set(&mut self, index: usize, count: u8) -> Result<bool, HllError> {
        let changed = if self.is_dense() {
            dense_set(&mut self.bytes[HEADER..], index, count)
        } else {
            self.sparse_set(index, count)?
        };
        if changed {
            self.invalidate_cache();
        }
        Ok(changed)
    }

    /// Turns a sparse value dense (the cached count is kept); true if it was sparse.
    pub fn to_dense(&mut self) -> Result<bool, HllError> {
        if self.is_dense() {
            return Ok(false);
        }
        let mut dense = vec![0u8; DENSE_SIZE];
        dense[..HEADER].copy_from_slice(&self.bytes[..HEADER]);
        dense[4] = DENSE;
        let mut idx = 0usize;
        for op in Ops::new(&self.bytes[HEADER..]) {
            let (value, run) = op.ok_or(HllError::Corrupt)?;
            if idx + run > REGISTERS {
                return Err(HllError::Corrupt);
            }
            if value > 0 {
                for r in idx..idx + run {
                    dense_write(&mut dense[HEADER..], r, value);
                }
            }
            idx += run;
        }
        if idx != REGISTERS {
            return Err(HllError::Corrupt);
        }
        self.bytes = dense;
        Ok(true)
    }

    /// Raises each of `max`'s registers to this value's (PFMERGE, multi-key PFCOUNT).
    pub fn merge_into(&self, max: &mut [u8; REGISTERS]) -> Result<(), HllError> {
        if self.is_dense() {
            let regs = &self.bytes[HEADER..];
            for (i, m) in max.iter_mut().enumerate() {
                *m = (*m).max(dense_get(regs, i));
            }
            return Ok(());
        }
        let mut idx = 0usize;
        for op in Ops::new(&self.bytes[HEADER..]) {
            let (value, run) = op.ok_or(HllError::Corrupt)?;
            if idx + run > REGISTERS {
                return Err(HllError::Corrupt);
            }
            for m in &mut max[idx..idx + run] {
                *m = (*m).max(value);
            }
            idx += run;
        }
        if idx != REGISTERS {
            return Err(HllError::Corrupt);
        }
        Ok(())
    }

    /// The estimated cardinality from the registers (ignores the cache).
    pub fn count(&self) -> Result<u64, HllError> {
        let mut histogram = [0u32; 64];
        if self.is_dense() {
            let regs = &self.bytes[HEADER..];
            for i in 0..REGISTERS {
                histogram[dense_get(regs, i) as usize] += 1;
            }
        } else {
            let mut idx = 0usize;
            for op in Ops::new(&self.bytes[HEADER..]) {
                let (value, run) = op.ok_or(HllError::Corrupt)?;
                idx += run;
                if idx > REGISTERS {
                    return Err(HllError::Corrupt);
                }
                histogram[value as usize] += run as u32;
            }
            if idx != REGISTERS {
                return Err(HllError::Corrupt);
            }
        }
        Ok(estimate(&histogram))
    }

    /// The 16,384 register values.
    pub fn registers(&self) -> Result<Vec<u8>, HllError> {
        let mut max = [0u8; REGISTERS];
        self.merge_into(&mut max)?;
        Ok(max.to_vec())
    }

    /// The sparse opcodes in words (PFDEBUG DECODE): `z:len` (ZERO), `Z:len` (XZERO),
    /// `v:value,len`.
    pub fn decode_ops(&self) -> Result<String, HllError> {
        let mut words = Vec::new();
        let ops = &self.bytes[HEADER..];
        let mut i = 0;
        while i < ops.len() {
            let b = ops[i];
            if b & 0x80 != 0 {
                words.push(format!("v:{},{}", ((b >> 2) & 0x1f) + 1, (b & 3) + 1));
                i += 1;
            } else if b & 0x40 != 0 {
                let lo = *ops.get(i + 1).ok_or(HllError::Corrupt)?;
                words.push(format!(
                    "Z:{}",
                    ((usize::from(b & 0x3f) << 8) | usize::from(lo)) + 1
                ));
                i += 2;
            } else {
                words.push(format!("z:{}", (b & 0x3f) + 1));
                i += 1;
            }
        }
        Ok(words.join(" "))
    }

    /// Sets a register of a sparse value: the run holding `index` is split into at most three
    /// runs (before, the new value, after), then neighbouring VAL runs of one value are merged;
    /// past the size limit or the VAL range, the value turns dense first.
    fn sparse_set(&mut self, index: usize, count: u8) -> Result<bool, HllError> {
        if count > VAL_MAX_VALUE {
            return self.promote_and_set(index, count);
        }
        // Find the opcode covering `index`.
        let mut p = HEADER;
        let mut first = 0usize;
        let mut prev: Option<usize> = None;
        let mut span = 0usize;
        let mut oplen = 1;
        while p < self.bytes.len() {
            (span, oplen) = op_at(&self.bytes, p).ok_or(HllError::Corrupt)?;
            if index < first + span {
                break;
            }
            prev = Some(p);
            p += oplen;
            first += span;
        }
        if span == 0 || p >= self.bytes.len() {
            return Err(HllError::Corrupt);
        }
        let b = self.bytes[p];
        let is_val = b & 0x80 != 0;
        let is_xzero = !is_val && b & 0x40 != 0;
        if is_val {
            let old = ((b >> 2) & 0x1f) + 1;
            if old >= count {
                return Ok(false);
            }
            if span == 1 {
                self.bytes[p] = val_op(count, 1);
                self.merge_vals(prev);
                return Ok(true);
            }
        } else if !is_xzero && span == 1 {
            self.bytes[p] = val_op(count, 1);
            self.merge_vals(prev);
            return Ok(true);
        }
        let last = first + span - 1;
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        if is_val {
            let current = ((b >> 2) & 0x1f) + 1;
            if index != first {
                seq.push(val_op(current, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(current, last - index));
            }
        } else {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        }
        let grows = seq.len() > oplen;
        if grows && self.bytes.len() + (seq.len() - oplen) > SPARSE_MAX_BYTES {
            return self.promote_and_set(index, count);
        }
        self.bytes.splice(p..p + oplen, seq);
        self.merge_vals(prev);
        Ok(true)
    }

    /// Merges adjacent VAL runs of one value, looking at up to five opcodes from `from` (the
    /// opcode before the one changed; none: the first).
    fn merge_vals(&mut self, from: Option<usize>) {
        let mut p = from.unwrap_or(HEADER);
        let mut budget = 5;
        while p < self.bytes.len() && budget > 0 {
            budget -= 1;
            let b = self.bytes[p];
            if b & 0x80 == 0 {
                p += if b & 0x40 != 0 { 2 } else { 1 };
                continue;
            }
            if let Some(&n) = self.bytes.get(p + 1)
                && n & 0x80 != 0
            {
                let (v1, v2) = ((b >> 2) & 0x1f, (n >> 2) & 0x1f);
                let len = usize::from(b & 3) + usize::from(n & 3) + 2;
                if v1 == v2 && len <= VAL_MAX_LEN {
                    self.bytes[p + 1] = val_op(v1 + 1, len);
                    self.bytes.remove(p);
                    // Try the merged run against the one after it too.
                    continue;
                }
            }
            p += 1;
        }
    }

    fn promote_and_set(&mut self, index: usize, count: u8) -> Result<bool, HllError> {
        self.to_dense()?;
        Ok(dense_set(&mut self.bytes[HEADER..], index, count))
    }
}

impl Default for Hll {
    fn default() -> Self {
        Hll::new()
    }
}

/// The estimated cardinality of merged registers (multi-key PFCOUNT).
pub fn count_registers(registers: &[u8; REGISTERS]) -> u64 {
    let mut histogram = [0u32; 64];
    for &r in registers {
        histogram[usize::from(r & REGISTER_MAX)] += 1;
    }
    estimate(&histogram)
}

/// One opcode at `p`: (registers it covers, bytes it takes); none if it runs off the end.
fn op_at(bytes: &[u8], p: usize) -> Option<(usize, usize)> {
    let b = *bytes.get(p)?;
    if b & 0x80 != 0 {
        Some((usize::from(b & 3) + 1, 1))
    } else if b & 0x40 != 0 {
        let lo = *bytes.get(p + 1)?;
        Some((((usize::from(b & 0x3f) << 8) | usize::from(lo)) + 1, 2))
    } else {
        Some((usize::from(b & 0x3f) + 1, 1))
    }
}

/// The sparse opcodes as (value, run length); `None` for an opcode cut short.
struct Ops<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Ops<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Ops { bytes, at: 0 }
    }
}

impl Iterator for Ops<'_> {
    type Item = Option<(u8, usize)>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = *self.bytes.get(self.at)?;
        let Some((run, len)) = op_at(self.bytes, self.at) else {
            self.at = self.bytes.len();
            return Some(None);
        };
        self.at += len;
        let value = if b & 0x80 != 0 {
            ((b >> 2) & 0x1f) + 1
        } else {
            0
        };
        Some(Some((value, run)))
    }
}

fn val_op(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (len as u8 - 1)
}

fn push_xzero(out: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    out.push(0x40 | (l >> 8) as u8);
    out.push((l & 0xff) as u8);
}

fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX {
        push_xzero(out, len);
    } else {
        out.push((len - 1) as u8);
    }
}

fn dense_get(regs: &[u8], index: usize) -> u8 {
    let bit = index * BITS;
    let (byte, shift) = (bit / 8, bit % 8);
    let lo = regs.get(byte).copied().unwrap_or(0) >> shift;
    let hi = regs
        .get(byte + 1)
        .copied()
        .unwrap_or(0)
        .checked_shl(8 - shift as u32);
    (lo | hi.unwrap_or(0)) & REGISTER_MAX
}

fn dense_write(regs: &mut [u8], index: usize, value: u8) {
    let bit = index * BITS;
    let (byte, shift) = (bit / 8, bit % 8);
    if let Some(b) = regs.get_mut(byte) {
        *b &= !(REGISTER_MAX << shift);
        *b |= value << shift;
    }
    if shift > 8 - BITS
        && let Some(b) = regs.get_mut(byte + 1)
    {
        let keep = 8 - shift;
        *b &= !(REGISTER_MAX >> keep);
        *b |= value >> keep;
    }
}

fn dense_set(regs: &mut [u8], index: usize, count: u8) -> bool {
    if count > dense_get(regs, index) {
        dense_write(regs, index, count);
        true
    } else {
        false
    }
}

/// Register and run length of an element.
fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// MurmurHash64A (Austin Appleby's public-domain hash), 8-byte blocks read little-endian.
fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut k = u64::from_le_bytes(block.try_into().unwrap_or([0; 8]));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Otmar Ertl's improved estimator over the register histogram (what Redis 5+ uses).
fn estimate(histogram: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(histogram[Q as usize + 1])) / m);
    for j in (1..=Q as usize).rev() {
        z += f64::from(histogram[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    let alpha_inf = 0.721_347_520_444_481_7_f64;
    (alpha_inf * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if before == z {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_value_is_redis_s_empty_sparse_hll() {
        let h = Hll::new();
        assert_eq!(
            h.bytes,
            b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x7f\xff".to_vec()
        );
        assert_eq!(h.count(), Ok(0));
        assert_eq!(h.cached(), Some(0));
    }

    #[test]
    fn murmur_matches_the_reference_values() {
        // MurmurHash64A reference outputs (seed 0): the empty input and a short one.
        assert_eq!(murmur64a(b"", 0), 0);
        let a = murmur64a(b"hello", 0xadc8_3b19);
        let b = murmur64a(b"hello", 0xadc8_3b19);
        assert_eq!(a, b);
        assert_ne!(murmur64a(b"hello", 0), murmur64a(b"hellp", 0));
    }

    #[test]
    fn sparse_and_dense_agree_on_every_register_and_count() {
        let mut sparse = Hll::new();
        let mut dense = Hll::new();
        dense.to_dense().unwrap();
        for i in 0..2000u32 {
            let e = i.to_string();
            let a = sparse.add(e.as_bytes()).unwrap();
            let b = dense.add(e.as_bytes()).unwrap();
            assert_eq!(a, b, "element {i}");
        }
        assert_eq!(sparse.registers(), dense.registers());
        assert_eq!(sparse.count(), dense.count());
        let n = sparse.count().unwrap() as f64;
        assert!((n - 2000.0).abs() < 2000.0 * 0.05, "{n}");
        assert!(sparse.is_dense() || sparse.bytes.len() <= SPARSE_MAX_BYTES);
    }

    #[test]
    fn many_elements_promote_to_dense_and_stay_accurate() {
        let mut h = Hll::new();
        for i in 0..100_000u32 {
            h.add(&i.to_le_bytes()).unwrap();
        }
        assert!(h.is_dense());
        assert_eq!(h.bytes.len(), DENSE_SIZE);
        let n = h.count().unwrap() as f64;
        assert!((n - 100_000.0).abs() < 100_000.0 * 0.02, "{n}");
    }

    #[test]
    fn the_cache_goes_stale_on_change_only() {
        let mut h = Hll::new();
        assert!(h.add(b"a").unwrap());
        assert_eq!(h.cached(), None);
        h.set_cached(1);
        assert!(!h.add(b"a").unwrap());
        assert_eq!(h.cached(), Some(1));
    }

    #[test]
    fn bad_headers_and_broken_runs_are_refused_not_trusted() {
        assert_eq!(Hll::parse(b"short"), Err(HllError::NotHll));
        let mut ok = Hll::new();
        ok.add(b"x").unwrap();
        let mut bad_magic = ok.bytes.clone();
        bad_magic[0] = b'0';
        assert_eq!(Hll::parse(&bad_magic), Err(HllError::NotHll));
        let mut bad_encoding = ok.bytes.clone();
        bad_encoding[4] = b'x';
        assert_eq!(Hll::parse(&bad_encoding), Err(HllError::NotHll));
        let mut short_dense = ok.bytes.clone();
        short_dense[4] = 0;
        assert_eq!(Hll::parse(&short_dense), Err(HllError::NotHll));
        let mut tail = ok.bytes.clone();
        tail.extend_from_slice(b"hello");
        let tail = Hll::parse(&tail).unwrap();
        assert_eq!(tail.count(), Err(HllError::Corrupt));
        let mut max = [0u8; REGISTERS];
        assert_eq!(tail.merge_into(&mut max), Err(HllError::Corrupt));
        // Arbitrary bytes after a valid header never panic.
        let mut seed = 1u64;
        for _ in 0..2000 {
            let mut v = ok.bytes.clone();
            for _ in 0..4 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let pos = (seed >> 33) as usize % v.len();
                v[pos] = (seed >> 20) as u8;
            }
            if let Ok(mut h) = Hll::parse(&v) {
                let _ = h.count();
                let _ = h.add(b"y");
                let _ = h.to_dense();
                let _ = h.decode_ops();
            }
        }
    }
}
