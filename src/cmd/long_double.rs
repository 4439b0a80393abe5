//! INCRBYFLOAT's arithmetic: the x87 80-bit extended "long double" that redis-server uses on
//! x86-64 Linux, in software.
//!
//! Redis parses the stored value and the increment with `strtold`, adds them in long double and
//! stores `%.17Lf` with the trailing zeros trimmed. Doing the same with `f64` would give other
//! digits (0.1 + 0.2 is "0.3" in Redis), and doing it with the host's C library would make
//! apply depend on the platform. Here every step is exact integer arithmetic followed by one
//! round-to-nearest-even, as the hardware does, so every node computes the same bytes.
//!
//! A value is `(-1)^neg * mant * 2^exp` with a 64-bit significand (explicit integer bit) and the
//! format's exponent range, denormals included.

use std::cmp::Ordering;

/// Significand bits of the x87 extended format.
const PRECISION: u32 = 64;
/// Exponent of the lowest significand bit of the smallest denormal (2^-16445).
const MIN_EXP: i64 = -16382 - 63;
/// Largest exponent of the lowest significand bit of a finite value.
const MAX_EXP: i64 = 16383 - 63;
/// Inputs this long or longer are refused (Redis's `MAX_LONG_DOUBLE_CHARS`).
pub const MAX_CHARS: usize = 5 * 1024;

/// A finite extended-precision value; zero is `mant == 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongDouble {
    neg: bool,
    mant: u64,
    exp: i64,
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble {
        neg: false,
        mant: 0,
        exp: 0,
    };

    /// Parses a value as Redis's `string2ld` accepts it: the whole input is one `strtold`
    /// number in the C locale (decimal or hexadecimal, "inf"/"infinity"); no whitespace, no NUL,
    /// not NaN, not out of range (overflow, or a nonzero value that rounds to zero). An
    /// infinity parses (Redis accepts it; the sum is then refused).
    pub fn parse(s: &[u8]) -> Option<Parsed> {
        if s.is_empty() || s.len() >= MAX_CHARS {
            return None;
        }
        let (neg, body) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Some(Parsed::Inf(neg));
        }
        let exact = if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
            parse_hex(&body[2..])?
        } else {
            parse_decimal(body)?
        };
        match exact {
            Exact::Zero => Some(Parsed::Finite(LongDouble {
                neg,
                mant: 0,
                exp: 0,
            })),
            Exact::Overflow => None,
            Exact::Value { big, exp, sticky } => match round(neg, big, exp, sticky) {
                Some(v) if v.mant != 0 => Some(Parsed::Finite(v)),
                _ => None,
            },
        }
    }

    #[cfg(test)]
    pub fn from_i64(n: i64) -> LongDouble {
        LongDouble {
            neg: n < 0,
            mant: n.unsigned_abs(),
            exp: 0,
        }
    }

    /// `self + other`, rounded once; `None` if the sum overflows to an infinity.
    pub fn checked_add(self, other: LongDouble) -> Option<LongDouble> {
        if other.mant == 0 {
            // x + 0 is x; (-0) + (+0) is +0 in round-to-nearest.
            return Some(if self.mant == 0 && self.neg != other.neg {
                LongDouble::ZERO
            } else {
                self
            });
        }
        if self.mant == 0 {
            return Some(other);
        }
        let exp = self.exp.min(other.exp);
        let a = Big::from_u64(self.mant).shifted_left((self.exp - exp) as u64);
        let b = Big::from_u64(other.mant).shifted_left((other.exp - exp) as u64);
        let (neg, sum) = if self.neg == other.neg {
            (self.neg, a.plus(&b))
        } else {
            match a.compare(&b) {
                Ordering::Equal => return Some(LongDouble::ZERO),
                Ordering::Greater => (self.neg, a.minus(&b)),
                Ordering::Less => (other.neg, b.minus(&a)),
            }
        };
        round(neg, sum, exp, false)
    }

    /// `(long long) ceill(self * 1000.0L)` as redis-server computes it on x86-64 (a blocking
    /// command's timeout in ms): the product rounded to the format, then its ceiling. `None`
    /// where the conversion is out of range (the x87 store then yields `i64::MIN`).
    pub fn ceil_times_1000(self) -> Option<i64> {
        if self.mant == 0 {
            return Some(0);
        }
        let p = round(
            self.neg,
            Big::from_u64(self.mant).mul_small(1000),
            self.exp,
            false,
        )?;
        let (whole, fraction) = if p.exp >= 0 {
            if p.exp >= 64 || (p.mant as u128) << p.exp > 1u128 << 63 {
                return None;
            }
            (((p.mant as u128) << p.exp) as u64, false)
        } else {
            let shift = p.exp.unsigned_abs();
            if shift >= 64 {
                (0, true)
            } else {
                (p.mant >> shift, p.mant & ((1u64 << shift) - 1) != 0)
            }
        };
        if p.neg {
            // The ceiling of a negative value drops its fraction.
            0i64.checked_sub_unsigned(whole)
        } else {
            i64::try_from(whole + u64::from(fraction)).ok()
        }
    }

    /// Redis's human-friendly form: `%.17Lf` (correctly rounded, ties to even, as glibc
    /// prints), trailing zeros and a trailing '.' removed, and "-0" written "0".
    pub fn to_redis_string(self) -> String {
        const FRAC: usize = 17;
        let scaled = Big::from_u64(self.mant).mul_pow10(FRAC as u64);
        let n = if self.exp >= 0 {
            scaled.shifted_left(self.exp as u64)
        } else {
            let shift = self.exp.unsigned_abs();
            let q = scaled.shifted_right(shift);
            if round_up(&scaled, shift, q.is_odd(), false) {
                q.plus(&Big::from_u64(1))
            } else {
                q
            }
        };
        let mut digits = n.to_decimal();
        if digits.len() <= FRAC {
            digits = format!("{}{digits}", "0".repeat(FRAC + 1 - digits.len()));
        }
        let (int, frac) = digits.split_at(digits.len() - FRAC);
        let frac = frac.trim_end_matches('0');
        let mut out = String::with_capacity(digits.len() + 2);
        if self.neg {
            out.push('-');
        }
        out.push_str(int);
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        if out == "-0" {
            out = "0".into();
        }
        out
    }
}

/// What `strtold` accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    Finite(LongDouble),
    Inf(bool),
}

/// An input's exact value before rounding: `big * 2^exp`, plus `sticky` if the true value is a
/// little more than that (a division left a remainder).
enum Exact {
    Zero,
    Overflow,
    Value { big: Big, exp: i64, sticky: bool },
}

/// Rounds `(-1)^neg * (big + sticky) * 2^exp` to the format, ties to even; `None` on overflow.
fn round(neg: bool, big: Big, exp: i64, sticky: bool) -> Option<LongDouble> {
    let bits = big.bit_len() as i64;
    if bits == 0 {
        return Some(LongDouble {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let mut target = (exp + bits - PRECISION as i64).max(MIN_EXP);
    let mut mant = if target <= exp {
        big.shifted_left((exp - target) as u64).low_u64()
    } else {
        let shift = (target - exp) as u64;
        let q = big.shifted_right(shift);
        let mut m = q.low_u64();
        if round_up(&big, shift, m & 1 == 1, sticky) {
            m = m.wrapping_add(1);
            if m == 0 {
                // Carried out of 64 bits: 2^64 is 2^63 one exponent up.
                m = 1 << 63;
                target += 1;
            }
        }
        m
    };
    if mant == 0 {
        target = 0;
    }
    if target > MAX_EXP {
        return None;
    }
    // Keep one representation per value: no trailing zero bits above the minimum exponent
    // matter for arithmetic, but equality in tests is simpler with a canonical form.
    while mant != 0 && mant & 1 == 0 && target < MAX_EXP {
        mant >>= 1;
        target += 1;
    }
    Some(LongDouble {
        neg,
        mant,
        exp: target,
    })
}

/// Whether dropping the lowest `shift` bits of `big` (plus a sticky remainder) rounds up, to
/// nearest with ties to even (`odd`: the kept part's lowest bit).
fn round_up(big: &Big, shift: u64, odd: bool, sticky: bool) -> bool {
    if shift == 0 {
        return false;
    }
    let half = big.bit(shift - 1);
    let below = sticky || big.any_below(shift - 1);
    half && (below || odd)
}

/// Decimal digits with an optional '.', then an optional exponent, and nothing else.
fn parse_decimal(s: &[u8]) -> Option<Exact> {
    let mut digits: Vec<u8> = Vec::new();
    let mut frac_digits: i64 = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            c @ b'0'..=b'9' => {
                seen_digit = true;
                if seen_dot {
                    frac_digits += 1;
                }
                if !(digits.is_empty() && c == b'0') {
                    digits.push(c - b'0');
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => break,
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    let exp10 = exponent(&s[i..], b'e')?;
    if digits.is_empty() {
        return Some(Exact::Zero);
    }
    // value = digits * 10^e10, with digits.len() significant digits.
    let e10 = exp10 - frac_digits;
    let magnitude = digits.len() as i64 + e10; // value < 10^magnitude
    if magnitude > 4934 {
        return Some(Exact::Overflow);
    }
    if magnitude < -4952 {
        // Below half the smallest denormal (about 3.6e-4951): rounds to zero.
        return Some(Exact::Value {
            big: Big::zero(),
            exp: 0,
            sticky: true,
        });
    }
    let d = Big::from_decimal_digits(&digits);
    if e10 >= 0 {
        return Some(Exact::Value {
            big: d.mul_pow10(e10 as u64),
            exp: 0,
            sticky: false,
        });
    }
    let den = Big::from_u64(1).mul_pow10(e10.unsigned_abs());
    // Enough quotient bits for the significand, a rounding bit and a margin.
    let shift = (den.bit_len() as i64 - d.bit_len() as i64 + PRECISION as i64 + 3).max(0) as u64;
    let (q, rem_nonzero) = d.shifted_left(shift).div_rem_nonzero(&den);
    Some(Exact::Value {
        big: q,
        exp: -(shift as i64),
        sticky: rem_nonzero,
    })
}

/// Hex digits (after "0x") with an optional '.', then an optional binary exponent.
fn parse_hex(s: &[u8]) -> Option<Exact> {
    let mut big = Big::zero();
    let mut frac_digits: i64 = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if let Some(v) = (c as char).to_digit(16) {
            seen_digit = true;
            if seen_dot {
                frac_digits += 1;
            }
            big = big.shifted_left(4).plus(&Big::from_u64(u64::from(v)));
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    let exp2 = exponent(&s[i..], b'p')?;
    if big.is_zero() {
        return Some(Exact::Zero);
    }
    let exp = exp2 - 4 * frac_digits;
    let top = exp + big.bit_len() as i64;
    if top > MAX_EXP + PRECISION as i64 + 1 {
        return Some(Exact::Overflow);
    }
    Some(Exact::Value {
        big,
        exp,
        sticky: false,
    })
}

/// The rest of the input must be empty or `<letter>[+-]digits`, all of it; the exponent is
/// clamped far beyond any that matters.
fn exponent(s: &[u8], letter: u8) -> Option<i64> {
    if s.is_empty() {
        return Some(0);
    }
    if (s[0] | 0x20) != letter {
        return None;
    }
    let (neg, digits) = match s.get(1) {
        Some(b'-') => (true, &s[2..]),
        Some(b'+') => (false, &s[2..]),
        _ => (false, &s[1..]),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut e: i64 = 0;
    for &c in digits {
        e = (e * 10 + i64::from(c - b'0')).min(1 << 40);
    }
    Some(if neg { -e } else { e })
}

/// A little unsigned big integer (little-endian 64-bit limbs, no leading zero limbs): just
/// what exact parsing, adding and printing need.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u64>);

impl Big {
    fn zero() -> Big {
        Big(Vec::new())
    }

    fn from_u64(n: u64) -> Big {
        let mut b = Big(vec![n]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn is_odd(&self) -> bool {
        self.0.first().is_some_and(|l| l & 1 == 1)
    }

    fn low_u64(&self) -> u64 {
        self.0.first().copied().unwrap_or(0)
    }

    fn bit_len(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(top) => 64 * (self.0.len() as u64 - 1) + u64::from(64 - top.leading_zeros()),
        }
    }

    fn bit(&self, i: u64) -> bool {
        self.0
            .get((i / 64) as usize)
            .is_some_and(|l| (l >> (i % 64)) & 1 == 1)
    }

    /// True if any bit below position `i` is set.
    fn any_below(&self, i: u64) -> bool {
        let limb = (i / 64) as usize;
        let bits = i % 64;
        if self.0.iter().take(limb).any(|&l| l != 0) {
            return true;
        }
        bits > 0
            && self
                .0
                .get(limb)
                .is_some_and(|l| l & ((1u64 << bits) - 1) != 0)
    }

    fn shifted_left(&self, n: u64) -> Big {
        if self.is_zero() {
            return Big::zero();
        }
        let limbs = (n / 64) as usize;
        let bits = n % 64;
        let mut out = vec![0u64; limbs];
        out.reserve(self.0.len() + 1);
        let mut carry = 0u64;
        for &l in &self.0 {
            if bits == 0 {
                out.push(l);
            } else {
                out.push((l << bits) | carry);
                carry = l >> (64 - bits);
            }
        }
        out.push(carry);
        let mut b = Big(out);
        b.trim();
        b
    }

    fn shifted_right(&self, n: u64) -> Big {
        let limbs = (n / 64) as usize;
        if limbs >= self.0.len() {
            return Big::zero();
        }
        let bits = n % 64;
        let src = &self.0[limbs..];
        let mut out = Vec::with_capacity(src.len());
        for (i, &l) in src.iter().enumerate() {
            let hi = src.get(i + 1).copied().unwrap_or(0);
            out.push(if bits == 0 {
                l
            } else {
                (l >> bits) | (hi << (64 - bits))
            });
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn plus(&self, other: &Big) -> Big {
        let (long, short) = if self.0.len() >= other.0.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut out = Vec::with_capacity(long.0.len() + 1);
        let mut carry = false;
        for (i, &l) in long.0.iter().enumerate() {
            let (s1, c1) = l.overflowing_add(short.0.get(i).copied().unwrap_or(0));
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            out.push(s2);
            carry = c1 || c2;
        }
        if carry {
            out.push(1);
        }
        Big(out)
    }

    /// `self - other`, for `self >= other`.
    fn minus(&self, other: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = false;
        for (i, &l) in self.0.iter().enumerate() {
            let (d1, b1) = l.overflowing_sub(other.0.get(i).copied().unwrap_or(0));
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            out.push(d2);
            borrow = b1 || b2;
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn compare(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    fn mul_small(&self, m: u64) -> Big {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut carry = 0u128;
        for &l in &self.0 {
            let p = u128::from(l) * u128::from(m) + carry;
            out.push(p as u64);
            carry = p >> 64;
        }
        out.push(carry as u64);
        let mut b = Big(out);
        b.trim();
        b
    }

    fn mul_pow10(&self, mut k: u64) -> Big {
        const TEN19: u64 = 10_000_000_000_000_000_000;
        let mut b = self.clone();
        while k >= 19 {
            b = b.mul_small(TEN19);
            k -= 19;
        }
        b.mul_small(10u64.pow(k as u32))
    }

    fn from_decimal_digits(digits: &[u8]) -> Big {
        let mut b = Big::zero();
        for chunk in digits.chunks(19) {
            let mut v = 0u64;
            for &d in chunk {
                v = v * 10 + u64::from(d);
            }
            b = b
                .mul_small(10u64.pow(chunk.len() as u32))
                .plus(&Big::from_u64(v));
        }
        b
    }

    /// Divides in place by a small divisor, returning the remainder.
    fn div_small(&mut self, d: u64) -> u64 {
        let mut rem = 0u128;
        for l in self.0.iter_mut().rev() {
            let cur = (rem << 64) | u128::from(*l);
            *l = (cur / u128::from(d)) as u64;
            rem = cur % u128::from(d);
        }
        self.trim();
        rem as u64
    }

    /// The quotient `self / den` (shift and subtract: the quotients here have few bits) and
    /// whether a remainder was left.
    fn div_rem_nonzero(&self, den: &Big) -> (Big, bool) {
        if self.compare(den) == Ordering::Less {
            return (Big::zero(), !self.is_zero());
        }
        let top = self.bit_len() - den.bit_len();
        let mut rem = self.clone();
        let mut d = den.shifted_left(top);
        let mut q = vec![0u64; (top / 64 + 1) as usize];
        for i in (0..=top).rev() {
            if rem.compare(&d) != Ordering::Less {
                rem = rem.minus(&d);
                q[(i / 64) as usize] |= 1 << (i % 64);
            }
            d = d.shifted_right(1);
        }
        let mut q = Big(q);
        q.trim();
        (q, !rem.is_zero())
    }

    fn to_decimal(&self) -> String {
        const TEN19: u64 = 10_000_000_000_000_000_000;
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.div_small(TEN19));
        }
        let mut out = chunks
            .pop()
            .map_or_else(|| "0".to_string(), |c| c.to_string());
        for c in chunks.iter().rev() {
            out.push_str(&format!("{c:019}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> LongDouble {
        match LongDouble::parse(s.as_bytes()) {
            Some(Parsed::Finite(v)) => v,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn sum(a: &str, b: &str) -> String {
        parse(a)
            .checked_add(parse(b))
            .expect("finite")
            .to_redis_string()
    }

    /// Each expected string is what redis-server 7.0 (x86-64) replied to INCRBYFLOAT.
    #[test]
    fn sums_print_as_redis_prints_them() {
        assert_eq!(sum("0.1", "0.2"), "0.3");
        assert_eq!(sum("0.3", "1e30"), "1000000000000000000024696061952");
        assert_eq!(sum("1", "1e-20"), "1");
        assert_eq!(sum("1", "0x10"), "17");
        assert_eq!(sum("10", "3.0e3"), "3010");
        assert_eq!(sum("1.5", "0x1p-2"), "1.75");
        assert_eq!(sum("2.75", ".5"), "3.25");
        assert_eq!(sum("3.25", "5e-4951"), "3.25");
        assert_eq!(sum("3.25", "+1"), "4.25");
        assert!(sum("1", "1e4000").starts_with("999999999999999999996546387309962378493249"));
        assert_eq!(sum("1", "1e4000").len(), 4000);
    }

    #[test]
    fn no_negative_zero() {
        assert_eq!(sum("1e-30", "-1e-30"), "0");
        assert_eq!(sum("0", "-1e-30"), "0");
        assert_eq!(sum("-0", "-0"), "0");
        assert_eq!(sum("-1.5", "0"), "-1.5");
    }

    #[test]
    fn ties_in_printing_go_to_even() {
        // 2^-18 and 3 * 2^-18 have 18 decimals ending in 5.
        assert_eq!(sum("0", "0x1p-18"), "0.00000381469726562");
        assert_eq!(sum("0", "0x3p-18"), "0.00001144409179688");
    }

    #[test]
    fn what_strtold_refuses() {
        for bad in [
            "",
            " 1",
            "1 ",
            "1\x002",
            "-",
            "+",
            ".",
            "e5",
            "1e",
            "1e+",
            "0x",
            "0x.p1",
            "nan",
            "NaN",
            "1e5000",
            "-1e5000",
            "1e-5000",
            "0x1p20000",
            "1.2.3",
            "++1",
            "1,5",
        ] {
            assert_eq!(LongDouble::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(LongDouble::parse(&[b'1'; MAX_CHARS]), None);
        assert!(
            LongDouble::parse(&[b'1'; MAX_CHARS - 1]).is_none(),
            "overflows"
        );
        assert_eq!(LongDouble::parse(b"inf"), Some(Parsed::Inf(false)));
        assert_eq!(LongDouble::parse(b"-Infinity"), Some(Parsed::Inf(true)));
        assert_eq!(parse("0e-99999"), parse("0"));
        assert_eq!(parse("1e-4950").to_redis_string(), "0");
    }

    #[test]
    fn timeouts_in_ms_round_up_as_redis() {
        let ms = |s: &str| match LongDouble::parse(s.as_bytes()) {
            Some(Parsed::Finite(x)) => x.ceil_times_1000(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms("1"), Some(1000));
        assert_eq!(ms("0.1"), Some(100));
        assert_eq!(ms("0.0001"), Some(1));
        assert_eq!(ms("1.0005"), Some(1001));
        assert_eq!(ms("-0.0001"), Some(0));
        assert_eq!(ms("-1.5"), Some(-1500));
        assert_eq!(ms("0x10"), Some(16000));
        assert_eq!(ms("9223372036854775.807"), Some(i64::MAX));
        assert_eq!(ms("9223372036854775.808"), None);
        assert_eq!(ms("-9223372036854775.808"), Some(-i64::MAX));
        assert_eq!(ms("1e300"), None);
        assert_eq!(ms("1e-4000"), Some(1));
    }

    #[test]
    fn overflow_and_extremes() {
        let max = parse("1.18973149535723176502e4932");
        assert_eq!(max.checked_add(max), None);
        assert_eq!(parse("0x1p-16445").mant, 1);
        assert_eq!(LongDouble::parse(b"0x1p-16446"), None, "rounds to zero");
        assert_eq!(parse("0x3p-16446"), parse("0x1p-16444"), "ties to even");
        assert_eq!(parse("0x5p-16446"), parse("0x1p-16444"), "ties to even");
        assert_eq!(
            LongDouble::from_i64(i64::MIN).to_redis_string(),
            "-9223372036854775808"
        );
    }
}
