//! Bit commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD,
//! BITFIELD_RO.
//!
//! Bit 0 is the most significant bit of the first byte, as in Redis. Offsets are checked
//! against the 512 MB limit (a constant, so apply decides the same on every node) before
//! anything is allocated. Errors come in Redis's order: arguments Redis parses before looking
//! the key up are checked in `prepare` too, so such a command is refused without a round
//! through raft (and again in apply, which must be total).

use bytes::Bytes;

use super::strings::{MAX_STRING, string_meta, update_string};
use super::strings_range::{c_str, clamp_range, is_word, range_bounds};
use super::{
    CmdError, CmdResult, Kind, Spec, get_string, not_an_integer, parse_i64, string_value,
    syntax_error,
};
use crate::kv::{ApplyCtx, KeyRead, Meta, WriteView};
use crate::resp::Reply;

pub const SETBIT: Spec = Spec {
    name: "setbit",
    arity: 4,
    kind: Kind::Write {
        prepare: |argv| {
            setbit_args(&argv)?;
            Ok(argv)
        },
        apply: setbit,
    },
    flags: &[],
    keys: (1, 1, 1),
};

pub const GETBIT: Spec = Spec {
    name: "getbit",
    arity: 3,
    kind: Kind::Read(getbit),
    flags: &["fast"],
    keys: (1, 1, 1),
};

pub const BITCOUNT: Spec = Spec {
    name: "bitcount",
    arity: -2,
    kind: Kind::Read(bitcount),
    flags: &[],
    keys: (1, 1, 1),
};

pub const BITPOS: Spec = Spec {
    name: "bitpos",
    arity: -3,
    kind: Kind::Read(bitpos),
    flags: &[],
    keys: (1, 1, 1),
};

pub const BITOP: Spec = Spec {
    name: "bitop",
    arity: -4,
    kind: Kind::Write {
        prepare: |argv| {
            bitop_operation(&argv)?;
            Ok(argv)
        },
        apply: bitop,
    },
    flags: &[],
    keys: (2, -1, 1),
};

pub const BITFIELD: Spec = Spec {
    name: "bitfield",
    arity: -2,
    kind: Kind::Write {
        prepare: |argv| {
            bitfield_ops(&argv[2..])?;
            Ok(argv)
        },
        apply: bitfield,
    },
    flags: &[],
    keys: (1, 1, 1),
};

pub const BITFIELD_RO: Spec = Spec {
    name: "bitfield_ro",
    arity: -2,
    kind: Kind::Read(bitfield_ro),
    flags: &["fast"],
    keys: (1, 1, 1),
};

fn bad_offset() -> Reply {
    Reply::error("ERR bit offset is not an integer or out of range")
}

/// A bit offset argument, below 2^32 (the last bit of a 512 MB string). With `hash_bits`
/// (BITFIELD), `#n` means `n` times the field's width; the product wraps as Redis's does.
fn bit_offset(arg: &[u8], hash_bits: Option<u32>) -> Result<u64, Reply> {
    let (digits, times) = match (arg.first(), hash_bits) {
        (Some(b'#'), Some(bits)) => (&arg[1..], Some(bits)),
        _ => (arg, None),
    };
    let mut offset = parse_i64(digits).ok_or_else(bad_offset)?;
    if let Some(bits) = times {
        offset = offset.wrapping_mul(i64::from(bits));
    }
    if offset < 0 || (offset >> 3) as u64 >= MAX_STRING as u64 {
        return Err(bad_offset());
    }
    Ok(offset as u64)
}

/// Grows `v` with zero bytes so that bit `bit` exists; true if it grew.
fn grow_for_bit(v: &mut Vec<u8>, bit: u64) -> bool {
    // `bit` passed `bit_offset` (plus at most 63 for a BITFIELD width): this is about 512 MB.
    let need = (bit >> 3) as usize + 1;
    if v.len() < need {
        v.resize(need, 0);
        return true;
    }
    false
}

/// Stores a bit command's new value: in place (keeping the TTL) if the key existed, as a new
/// key otherwise.
fn store(w: &mut WriteView, key: &[u8], meta: Option<Meta>, v: Vec<u8>) -> Result<(), CmdError> {
    update_string(w, key, meta, v.into())?;
    Ok(())
}

/// SETBIT's offset and bit, in Redis's order (both before the key).
fn setbit_args(argv: &[Bytes]) -> Result<(u64, bool), Reply> {
    let offset = bit_offset(&argv[2], None)?;
    let bad_bit = || Reply::error("ERR bit is not an integer or out of range");
    match parse_i64(&argv[3]).ok_or_else(bad_bit)? {
        0 => Ok((offset, false)),
        1 => Ok((offset, true)),
        _ => Err(bad_bit()),
    }
}

fn bit_at(v: &[u8], offset: u64) -> bool {
    v.get((offset >> 3) as usize)
        .is_some_and(|b| b & (0x80 >> (offset & 7)) != 0)
}

/// SETBIT key offset 0|1: the bit's old value. The key is written only if it is created,
/// grows, or the bit changes (as Redis only then counts a change).
fn setbit(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let (offset, on) = setbit_args(argv)?;
    let key = &argv[1];
    let meta = string_meta(w, key)?;
    let mut v = meta.as_ref().map(|m| m.body.to_vec()).unwrap_or_default();
    let grew = grow_for_bit(&mut v, offset) || meta.is_none();
    let old = bit_at(&v, offset);
    if grew || old != on {
        let byte = &mut v[(offset >> 3) as usize];
        let mask = 0x80u8 >> (offset & 7);
        if on {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
        store(w, key, meta, v)?;
        w.notify('$', "setbit", key);
    }
    Ok(Reply::Integer(i64::from(old)))
}

fn getbit(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&argv[2], None)?;
    let v = get_string(r, &argv[1])?.unwrap_or_default();
    Ok(Reply::Integer(i64::from(bit_at(&v, offset))))
}

/// `BIT` or `BYTE` (the unit of a BITCOUNT/BITPOS range); true for bits.
fn range_unit(arg: &[u8]) -> Result<bool, Reply> {
    if is_word(arg, "bit") {
        Ok(true)
    } else if is_word(arg, "byte") {
        Ok(false)
    } else {
        Err(syntax_error())
    }
}

fn ones(v: &[u8]) -> i64 {
    v.iter().map(|b| i64::from(b.count_ones())).sum()
}

/// BITCOUNT key [start end [BYTE|BIT]]: set bits in the range (a missing key counts 0
/// whatever the arguments, as in Redis, which looks the key up first).
fn bitcount(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let Some(v) = get_string(r, &argv[1])? else {
        return Ok(Reply::Integer(0));
    };
    let (start, end, bits) = match argv.len() {
        2 => return Ok(Reply::Integer(ones(&v))),
        4 | 5 => {
            let start = parse_i64(&argv[2]).ok_or_else(not_an_integer)?;
            let end = parse_i64(&argv[3]).ok_or_else(not_an_integer)?;
            let bits = match argv.get(4) {
                Some(unit) => range_unit(unit)?,
                None => false,
            };
            (start, end, bits)
        }
        _ => return Err(syntax_error().into()),
    };
    let len = v.len() as u64 * if bits { 8 } else { 1 };
    let Some((start, end)) = range_bounds(start, end, len) else {
        return Ok(Reply::Integer(0));
    };
    if !bits {
        return Ok(Reply::Integer(ones(&v[start as usize..=end as usize])));
    }
    let (first, last) = ((start >> 3) as usize, (end >> 3) as usize);
    let mut count = ones(&v[first..=last]);
    // Take away the bits of the edge bytes outside the range.
    let head = !(0xffu8 >> (start & 7));
    let tail = 0x7fu8 >> (end & 7);
    count -= i64::from((v[first] & head).count_ones()) + i64::from((v[last] & tail).count_ones());
    Ok(Reply::Integer(count))
}

/// Position of the first `bit` in `v`: for 1, -1 if there is none; for 0, the bit just past
/// the end if there is none (the string reads as zero-padded on the right).
fn first_bit(v: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0x00 } else { 0xff };
    match v.iter().position(|&b| b != skip) {
        Some(i) => {
            let b = if bit { v[i] } else { !v[i] };
            (i as i64) * 8 + i64::from(b.leading_zeros())
        }
        None if bit => -1,
        None => v.len() as i64 * 8,
    }
}

/// BITPOS key 0|1 [start [end [BYTE|BIT]]]: the first bit with that value in the range.
fn bitpos(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let bit = match parse_i64(&argv[2]).ok_or_else(not_an_integer)? {
        0 => false,
        1 => true,
        _ => return Ok(Reply::error("ERR The bit argument must be 1 or 0.")),
    };
    let Some(meta) = r.meta(&argv[1])? else {
        return Ok(Reply::Integer(if bit { -1 } else { 0 }));
    };
    let Some(v) = string_value(Some(meta))? else {
        return Ok(Reply::Integer(0));
    };
    if argv.len() == 3 {
        // The whole string; an empty one has no bit at all.
        return Ok(Reply::Integer(if v.is_empty() {
            -1
        } else {
            first_bit(&v, bit)
        }));
    }
    if argv.len() > 6 {
        return Err(syntax_error().into());
    }
    let start = parse_i64(&argv[3]).ok_or_else(not_an_integer)?;
    let bits = match argv.get(5) {
        Some(unit) => range_unit(unit)?,
        None => false,
    };
    let len = v.len() as u64 * if bits { 8 } else { 1 };
    let end = match argv.get(4) {
        Some(e) => Some(parse_i64(e).ok_or_else(not_an_integer)?),
        None => None,
    };
    let Some((start, stop)) = clamp_range(start, end.unwrap_or(i64::MAX), len) else {
        return Ok(Reply::Integer(-1));
    };
    // Scan the range bit by bit at the edges, by bytes in between.
    let pos = if bits {
        first_bit_in_bits(&v, start, stop, bit)
    } else {
        let p = first_bit(&v[start as usize..=stop as usize], bit);
        let range_bits = (stop - start + 1) as i64 * 8;
        if p == -1 || (p == range_bits && end.is_some()) {
            // Looking for 0 in an explicit range with none: not found (without an end, the
            // string reads as zero-padded, so the bit after it is the answer).
            -1
        } else {
            p + start as i64 * 8
        }
    };
    Ok(Reply::Integer(pos))
}

/// First `bit` in bits `start..=stop` (a BIT range), -1 if none.
fn first_bit_in_bits(v: &[u8], start: u64, stop: u64, bit: bool) -> i64 {
    let mut i = start;
    while i <= stop {
        if i & 7 == 0 && i + 7 <= stop {
            let b = v[(i >> 3) as usize];
            if b == if bit { 0x00 } else { 0xff } {
                i += 8;
                continue;
            }
        }
        if bit_at(v, i) == bit {
            return i as i64;
        }
        i += 1;
    }
    -1
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

fn bitop_operation(argv: &[Bytes]) -> Result<BitOp, Reply> {
    let op = match c_str(&argv[1]).to_ascii_lowercase().as_slice() {
        b"and" => BitOp::And,
        b"or" => BitOp::Or,
        b"xor" => BitOp::Xor,
        b"not" => BitOp::Not,
        _ => return Err(syntax_error()),
    };
    if op == BitOp::Not && argv.len() != 4 {
        return Err(Reply::error(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    Ok(op)
}

/// BITOP AND|OR|XOR|NOT dest key...: the result, as long as the longest source (shorter ones
/// read as zero-padded), stored in `dest` as a new string without TTL, or `dest` deleted if
/// every source is empty. Replies with the length.
fn bitop(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let op = bitop_operation(argv)?;
    let mut sources = Vec::with_capacity(argv.len() - 3);
    for key in &argv[3..] {
        sources.push(get_string(w, key)?.unwrap_or_default());
    }
    let max = sources.iter().map(Bytes::len).max().unwrap_or(0);
    let dest = &argv[2];
    if max == 0 {
        if w.delete(dest)? {
            w.notify('g', "del", dest);
        }
        return Ok(Reply::Integer(0));
    }
    let mut out = vec![0u8; max];
    let byte = |s: &Bytes, i: usize| s.get(i).copied().unwrap_or(0);
    for (i, o) in out.iter_mut().enumerate() {
        let first = byte(&sources[0], i);
        let rest = sources[1..].iter().map(|s| byte(s, i));
        *o = match op {
            BitOp::Not => !first,
            BitOp::And => rest.fold(first, |a, b| a & b),
            BitOp::Or => rest.fold(first, |a, b| a | b),
            BitOp::Xor => rest.fold(first, |a, b| a ^ b),
        };
    }
    let old_expiry = w.meta(dest)?.and_then(|m| m.expire_at);
    let meta = Meta::string(out.into(), w.new_version(), w.index());
    w.put_meta(dest, &meta, old_expiry)?;
    w.notify('$', "set", dest);
    Ok(Reply::Integer(max as i64))
}

/// What BITFIELD does when a SET or INCRBY does not fit its field.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// A field type: `i1`..`i64` or `u1`..`u63`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FieldType {
    signed: bool,
    bits: u32,
}

impl FieldType {
    fn parse(arg: &[u8]) -> Result<FieldType, Reply> {
        let err = || {
            Reply::error(
                "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not \
                 supported but i64 is.",
            )
        };
        let signed = match arg.first() {
            Some(b'i') => true,
            Some(b'u') => false,
            _ => return Err(err()),
        };
        // Redis reads the width as a C string.
        let bits = parse_i64(c_str(&arg[1..])).ok_or_else(err)?;
        let max = if signed { 64 } else { 63 };
        if !(1..=max).contains(&bits) {
            return Err(err());
        }
        Ok(FieldType {
            signed,
            bits: bits as u32,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Field {
    op: FieldOp,
    ty: FieldType,
    offset: u64,
    overflow: Overflow,
}

/// BITFIELD's subcommands, all parsed (with their errors) before the key is looked up.
fn bitfield_ops(args: &[Bytes]) -> Result<Vec<Field>, Reply> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 0;
    while i < args.len() {
        let name = &args[i];
        let rest = args.len() - i - 1;
        let op_name = if is_word(name, "get") && rest >= 2 {
            "get"
        } else if is_word(name, "set") && rest >= 3 {
            "set"
        } else if is_word(name, "incrby") && rest >= 3 {
            "incrby"
        } else if is_word(name, "overflow") && rest >= 1 {
            let kind = &args[i + 1];
            overflow = if is_word(kind, "wrap") {
                Overflow::Wrap
            } else if is_word(kind, "sat") {
                Overflow::Sat
            } else if is_word(kind, "fail") {
                Overflow::Fail
            } else {
                return Err(Reply::error("ERR Invalid OVERFLOW type specified"));
            };
            i += 2;
            continue;
        } else {
            return Err(syntax_error());
        };
        let ty = FieldType::parse(&args[i + 1])?;
        let offset = bit_offset(&args[i + 2], Some(ty.bits))?;
        let op = match op_name {
            "get" => FieldOp::Get,
            _ => {
                let n = parse_i64(&args[i + 3]).ok_or_else(not_an_integer)?;
                if op_name == "set" {
                    FieldOp::Set(n)
                } else {
                    FieldOp::IncrBy(n)
                }
            }
        };
        ops.push(Field {
            op,
            ty,
            offset,
            overflow,
        });
        i += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(ops)
}

/// The unsigned field of `bits` bits at bit `offset` (bits past the end read as 0).
fn get_field(v: &[u8], offset: u64, bits: u32) -> u64 {
    (0..u64::from(bits)).fold(0, |acc, j| (acc << 1) | u64::from(bit_at(v, offset + j)))
}

/// Writes the low `bits` bits of `value` at bit `offset` (the string is long enough).
fn set_field(v: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..u64::from(bits) {
        let on = (value >> (u64::from(bits) - 1 - j)) & 1 == 1;
        let at = offset + j;
        if let Some(byte) = v.get_mut((at >> 3) as usize) {
            let mask = 0x80u8 >> (at & 7);
            if on {
                *byte |= mask;
            } else {
                *byte &= !mask;
            }
        }
    }
}

fn signed_field(raw: u64, bits: u32) -> i64 {
    if bits < 64 && raw & (1 << (bits - 1)) != 0 {
        (raw | (u64::MAX << bits)) as i64
    } else {
        raw as i64
    }
}

/// Redis's overflow rule for an unsigned field: `Some(result)` when `value + incr` does not
/// fit, with the wrapped or saturated result (`None` inside for FAIL).
fn unsigned_overflow(value: u64, incr: i64, bits: u32, how: Overflow) -> Option<Option<u64>> {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrapped = || value.wrapping_add(incr as u64) & max;
    if value > max || (incr > 0 && incr > max_incr) {
        Some(match how {
            Overflow::Wrap => Some(wrapped()),
            Overflow::Sat => Some(max),
            Overflow::Fail => None,
        })
    } else if incr < 0 && incr < min_incr {
        Some(match how {
            Overflow::Wrap => Some(wrapped()),
            Overflow::Sat => Some(0),
            Overflow::Fail => None,
        })
    } else {
        None
    }
}

/// The same for a signed field.
fn signed_overflow(value: i64, incr: i64, bits: u32, how: Overflow) -> Option<Option<i64>> {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrapped = || {
        let c = (value as u64).wrapping_add(incr as u64);
        signed_field(
            c & if bits == 64 {
                u64::MAX
            } else {
                (1 << bits) - 1
            },
            bits,
        )
    };
    let result = |limit: i64| match how {
        Overflow::Wrap => Some(wrapped()),
        Overflow::Sat => Some(limit),
        Overflow::Fail => None,
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr)
    {
        Some(result(max))
    } else if value < min
        || (bits != 64 && incr < min_incr)
        || (value < 0 && incr < 0 && incr < min_incr)
    {
        Some(result(min))
    } else {
        None
    }
}

/// Runs one SET or INCRBY on `v`: its reply (nil when OVERFLOW FAIL stops it), and whether the
/// field's value changed.
fn write_field(v: &mut [u8], f: &Field) -> (Reply, bool) {
    let FieldType { signed, bits } = f.ty;
    let old = get_field(v, f.offset, bits);
    let (new, reply) = if signed {
        let old = signed_field(old, bits);
        let (new, overflow, reply_new) = match f.op {
            FieldOp::IncrBy(n) => (
                old.wrapping_add(n),
                signed_overflow(old, n, bits, f.overflow),
                true,
            ),
            _ => {
                let n = match f.op {
                    FieldOp::Set(n) => n,
                    _ => 0,
                };
                (n, signed_overflow(n, 0, bits, f.overflow), false)
            }
        };
        let new = match overflow {
            None => new,
            Some(Some(limited)) => limited,
            Some(None) => return (Reply::Nil, false),
        };
        (new as u64, if reply_new { new } else { old })
    } else {
        let (new, overflow, reply_new) = match f.op {
            FieldOp::IncrBy(n) => (
                old.wrapping_add(n as u64),
                unsigned_overflow(old, n, bits, f.overflow),
                true,
            ),
            _ => {
                let n = match f.op {
                    FieldOp::Set(n) => n as u64,
                    _ => 0,
                };
                (n, unsigned_overflow(n, 0, bits, f.overflow), false)
            }
        };
        let new = match overflow {
            None => new,
            Some(Some(limited)) => limited,
            Some(None) => return (Reply::Nil, false),
        };
        (new, if reply_new { new as i64 } else { old as i64 })
    };
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    set_field(v, f.offset, bits, new);
    (Reply::Integer(reply), new & mask != old)
}

fn read_field(v: &[u8], f: &Field) -> Reply {
    let raw = get_field(v, f.offset, f.ty.bits);
    Reply::Integer(if f.ty.signed {
        signed_field(raw, f.ty.bits)
    } else {
        raw as i64
    })
}

/// BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset incr]
/// [OVERFLOW WRAP|SAT|FAIL]...: one reply per GET/SET/INCRBY, in order. With any SET or
/// INCRBY the string is created or grown to the farthest field first (even if every write
/// then fails), as Redis does; the key is written only if its bytes changed.
fn bitfield(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let ops = bitfield_ops(&argv[2..])?;
    let key = &argv[1];
    let highest = ops
        .iter()
        .filter(|f| f.op != FieldOp::Get)
        .map(|f| f.offset + u64::from(f.ty.bits) - 1)
        .max();
    let Some(highest) = highest else {
        // Only GETs: a read.
        let v = get_string(w, key)?.unwrap_or_default();
        return Ok(Reply::Array(
            ops.iter().map(|f| read_field(&v, f)).collect(),
        ));
    };
    let meta = string_meta(w, key)?;
    let mut v = meta.as_ref().map(|m| m.body.to_vec()).unwrap_or_default();
    let grew = grow_for_bit(&mut v, highest) || meta.is_none();
    // Redis's dirty count: every write that changed its field, or every write when the
    // string was created or grew.
    let mut changes = 0;
    let replies = ops
        .iter()
        .map(|f| match f.op {
            FieldOp::Get => read_field(&v, f),
            _ => {
                let (reply, changed) = write_field(&mut v, f);
                changes += u64::from(!matches!(reply, Reply::Nil) && (grew || changed));
                reply
            }
        })
        .collect();
    w.dirty(changes);
    if grew || meta.as_ref().is_some_and(|m| m.body[..] != v[..]) {
        store(w, key, meta, v)?;
        w.notify('$', "setbit", key);
    }
    Ok(Reply::Array(replies))
}

/// BITFIELD_RO key [GET type offset]...: GETs only.
fn bitfield_ro(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let ops = bitfield_ops(&argv[2..])?;
    if ops.iter().any(|f| f.op != FieldOp::Get) {
        return Ok(Reply::error(
            "ERR BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let v = get_string(r, &argv[1])?.unwrap_or_default();
    Ok(Reply::Array(
        ops.iter().map(|f| read_field(&v, f)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Result<FieldType, Reply> {
        FieldType::parse(s.as_bytes())
    }

    #[test]
    fn field_types() {
        assert_eq!(
            t("i64"),
            Ok(FieldType {
                signed: true,
                bits: 64
            })
        );
        assert_eq!(
            t("u63"),
            Ok(FieldType {
                signed: false,
                bits: 63
            })
        );
        assert_eq!(t("u8\0junk").map(|f| f.bits), Ok(8));
        for bad in ["u64", "i65", "i0", "u", "I8", "x8", "i+8", "i08", "i-1", ""] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_and_hash_offsets() {
        assert_eq!(bit_offset(b"4294967295", None), Ok(4_294_967_295));
        assert_eq!(bit_offset(b"4294967296", None), Err(bad_offset()));
        assert_eq!(bit_offset(b"-1", None), Err(bad_offset()));
        assert_eq!(bit_offset(b"#3", None), Err(bad_offset()));
        assert_eq!(bit_offset(b"#3", Some(8)), Ok(24));
        assert_eq!(bit_offset(b"#", Some(8)), Err(bad_offset()));
        // The product wraps as in Redis: 2^61 + 1 fields of 8 bits is bit 8.
        assert_eq!(bit_offset(b"#2305843009213693953", Some(8)), Ok(8));
    }

    #[test]
    fn fields_read_and_write_msb_first() {
        let mut v = vec![0u8; 2];
        set_field(&mut v, 7, 5, 23);
        assert_eq!(v, [0b0000_0001, 0b0111_0000]);
        assert_eq!(get_field(&v, 7, 5), 23);
        assert_eq!(signed_field(get_field(&[0xff], 0, 8), 8), -1);
        assert_eq!(get_field(&[0xff], 4, 8), 0xf0, "past the end reads as 0");
    }

    #[test]
    fn overflow_rules() {
        use Overflow::*;
        assert_eq!(unsigned_overflow(255, 1, 8, Wrap), Some(Some(0)));
        assert_eq!(unsigned_overflow(255, 1, 8, Sat), Some(Some(255)));
        assert_eq!(unsigned_overflow(0, -1, 8, Sat), Some(Some(0)));
        assert_eq!(unsigned_overflow(0, -1, 8, Wrap), Some(Some(255)));
        assert_eq!(unsigned_overflow(-1i64 as u64, 0, 8, Sat), Some(Some(255)));
        assert_eq!(unsigned_overflow(10, -3, 8, Fail), None);
        assert_eq!(signed_overflow(127, 1, 8, Wrap), Some(Some(-128)));
        assert_eq!(signed_overflow(-128, -1, 8, Sat), Some(Some(-128)));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Wrap), Some(Some(i64::MIN)));
        assert_eq!(signed_overflow(i64::MIN, -1, 64, Sat), Some(Some(i64::MIN)));
        assert_eq!(signed_overflow(0, i64::MIN, 64, Fail), None);
        assert_eq!(signed_overflow(-1, i64::MIN, 64, Fail), Some(None));
        assert_eq!(signed_overflow(200, 0, 8, Fail), Some(None));
    }

    #[test]
    fn first_bits() {
        assert_eq!(first_bit(&[0xff, 0xf0], false), 12);
        assert_eq!(first_bit(&[0xff], false), 8);
        assert_eq!(first_bit(&[0x00, 0x01], true), 15);
        assert_eq!(first_bit(&[0x00], true), -1);
        assert_eq!(first_bit_in_bits(&[0xff, 0x00, 0x01], 3, 23, true), 3);
        assert_eq!(first_bit_in_bits(&[0xff, 0x00, 0x01], 8, 22, true), -1);
    }
}

/// The commands of this file and `strings_range` applied to a key of another type: each
/// error comes where redis-server 7.0 puts it (checked there against a list key).
#[cfg(test)]
mod wrong_type_tests {
    use bytes::Bytes;
    use raft::eraftpb::ConfState;

    use crate::cmd::{Kind, apply_write, lookup, run_read};
    use crate::kv::{ApplyCtx, KeyType, Memtable, Meta, WriteView};
    use crate::resp::Reply;
    use crate::store;

    fn run(w: &mut WriteView, words: &[&str]) -> Reply {
        let argv: Vec<Bytes> = words
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let spec = lookup(&argv[0]).expect("known command");
        match spec.kind {
            Kind::Read(f) => run_read(f, w, &argv).expect("read"),
            _ => {
                let conf_state = ConfState::default();
                let ctx = ApplyCtx {
                    index: 2,
                    conf_state: &conf_state,
                    local: false,
                };
                apply_write(w, &ctx, 0, &argv).expect("apply").0
            }
        }
    }

    #[test]
    fn errors_come_in_redis_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = store::open(&dir.path().join("d"), 1 << 20).expect("open");
        let mem = Memtable::new();
        let txn = db.begin_write().expect("txn");
        let mut state = mem.write();
        let mut w = WriteView::open(&txn, &mut state).expect("view");
        w.begin_entry(0, 1000, 1);
        let list = Meta {
            kind: KeyType::List,
            expire_at: None,
            version: 1,
            modified: 1,
            body: Bytes::new(),
        };
        w.put_meta(b"L", &list, None).expect("put");
        w.set_string(b"s", Bytes::from_static(b"abc"), None)
            .expect("set");
        let wrong = "WRONGTYPE Operation against a key holding the wrong kind of value";
        let cases: &[(&[&str], &str)] = &[
            (&["SETRANGE", "L", "-1", "x"], "ERR offset is out of range"),
            (&["SETRANGE", "L", "0", ""], wrong),
            (&["SETRANGE", "L", "0", "x"], wrong),
            (
                &["GETRANGE", "L", "a", "1"],
                "ERR value is not an integer or out of range",
            ),
            (&["GETRANGE", "L", "0", "1"], wrong),
            (&["INCRBYFLOAT", "L", "abc"], wrong),
            (
                &["LCS", "L", "s"],
                "ERR The specified keys must contain string values",
            ),
            (
                &["LCS", "s", "L", "foo"],
                "ERR The specified keys must contain string values",
            ),
            (
                &["SETBIT", "L", "4294967296", "1"],
                "ERR bit offset is not an integer or out of range",
            ),
            (
                &["SETBIT", "L", "0", "2"],
                "ERR bit is not an integer or out of range",
            ),
            (&["SETBIT", "L", "0", "1"], wrong),
            (
                &["GETBIT", "L", "x"],
                "ERR bit offset is not an integer or out of range",
            ),
            (&["GETBIT", "L", "0"], wrong),
            (&["BITCOUNT", "L", "1"], wrong),
            (
                &["BITPOS", "L", "3"],
                "ERR The bit argument must be 1 or 0.",
            ),
            (&["BITPOS", "L", "1"], wrong),
            (&["BITOP", "AND", "d", "s", "L"], wrong),
            (&["BITOP", "FOO", "d", "L"], "ERR syntax error"),
            (&["BITFIELD", "L", "GET", "u8", "0"], wrong),
            (
                &["BITFIELD", "L", "GET", "u64", "0"],
                "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not \
                 supported but i64 is.",
            ),
            (
                &["BITFIELD_RO", "L", "SET", "u8", "0", "1"],
                "ERR BITFIELD_RO only supports the GET subcommand",
            ),
            (&["BITFIELD_RO", "L", "GET", "u8", "0"], wrong),
            (&["BITFIELD", "L", "SET", "u8", "0", "1"], wrong),
        ];
        for (argv, want) in cases {
            assert_eq!(run(&mut w, argv), Reply::error(*want), "{argv:?}");
        }
        // BITOP overwrites a destination of any type with a string.
        assert_eq!(run(&mut w, &["BITOP", "OR", "L", "s"]), Reply::Integer(3));
        assert_eq!(
            run(&mut w, &["GETRANGE", "L", "0", "-1"]),
            Reply::Bulk(Bytes::from_static(b"abc"))
        );
    }
}
