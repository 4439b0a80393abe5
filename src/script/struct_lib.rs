//! The `struct` library Redis ships (Roberto Ierusalimschy's struct 0.2), in Rust with its
//! exact behaviour: `pack(fmt, ...)`, `unpack(fmt, data, [init])` (the values, then the next
//! position) and `size(fmt)`.
//!
//! Format: `<` / `>` little / big endian (little by default, the x86-64 build's native
//! order), `!n` maximum alignment (8 without `n`), `b`/`B` char, `h`/`H` short, `l`/`L` long,
//! `T` size_t, `in`/`In` an integer of n bytes (4 by default, at most 32), `f` float, `d`
//! double, `cn` n characters (`c0`: as long as the string when packing, the previous number
//! when unpacking), `s` a zero-terminated string, `x` a zero byte, blanks ignored. Upper
//! case is unsigned. Integers are 64-bit inside (bytes past 8 are zero when packing) and
//! doubles convert as C converts them on x86-64, so results are redis-server's.

use mlua::{Lua, MultiValue, Table, Value};

use super::convert::{c_i64, c_u64};

const MAXINTSIZE: usize = 32;
/// The build's largest alignment (a double's).
const MAXALIGN: usize = 8;
/// Results `unpack` may return (Lua's C stack limit).
const MAX_RESULTS: usize = 7990;

#[derive(Clone, Copy, PartialEq)]
enum Endian {
    Little,
    Big,
}

struct Header {
    endian: Endian,
    align: usize,
}

impl Header {
    fn new() -> Header {
        Header {
            endian: Endian::Little,
            align: 1,
        }
    }
}

/// A format being read.
struct Format<'a> {
    f: &'a [u8],
    at: usize,
    fname: &'static str,
}

impl Format<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.f.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    fn number(&mut self, default: usize) -> Result<usize, String> {
        if !self.f.get(self.at).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(&d) = self.f.get(self.at).filter(|d| d.is_ascii_digit()) {
            let d = usize::from(d - b'0');
            if a > (i32::MAX as usize) / 10 || a * 10 > i32::MAX as usize - d {
                return Err("integral size overflow".into());
            }
            a = a * 10 + d;
            self.at += 1;
        }
        Ok(a)
    }

    /// The size of option `opt` (0 for the options without one).
    fn size(&mut self, opt: u8) -> Result<usize, String> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(1)?,
            b'i' | b'I' => {
                let n = self.number(4)?;
                if n > MAXINTSIZE {
                    return Err(format!(
                        "integral size {n} is larger than limit of {MAXINTSIZE}"
                    ));
                }
                n
            }
            _ => 0,
        })
    }

    /// The options that change the header (anything else is not an option).
    fn control(&mut self, opt: u8, h: &mut Header) -> Result<(), String> {
        match opt {
            b' ' => {}
            b'>' => h.endian = Endian::Big,
            b'<' => h.endian = Endian::Little,
            b'!' => {
                let a = self.number(MAXALIGN)?;
                if !a.is_power_of_two() {
                    return Err(format!("alignment {a} is not a power of 2"));
                }
                h.align = a;
            }
            other => {
                return Err(format!(
                    "bad argument #1 to '{}' (invalid format option '{}')",
                    self.fname,
                    char::from(other)
                ));
            }
        }
        Ok(())
    }
}

/// Padding before an item of `size` bytes at `len` (the C library's arithmetic, for any size).
fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size.wrapping_sub(len & (size - 1))) & (size - 1)
}

fn number_arg(lua: &Lua, args: &MultiValue, i: usize, fname: &str) -> Result<f64, String> {
    let v = args.get(i - 1).cloned().unwrap_or(Value::Nil);
    let type_name = v.type_name();
    match lua.coerce_number(v) {
        Ok(Some(n)) => Ok(n),
        _ => Err(format!(
            "bad argument #{i} to '{fname}' (number expected, got {type_name})"
        )),
    }
}

fn string_arg(
    lua: &Lua,
    args: &MultiValue,
    i: usize,
    fname: &str,
    missing: &str,
) -> Result<Vec<u8>, String> {
    let v = args.get(i - 1).cloned();
    let type_name = match &v {
        Some(v) => v.type_name().to_string(),
        None => missing.to_string(),
    };
    match v.map(|v| lua.coerce_string(v)) {
        Some(Ok(Some(s))) => Ok(s.as_bytes().to_vec()),
        _ => Err(format!(
            "bad argument #{i} to '{fname}' (string expected, got {type_name})"
        )),
    }
}

fn put_integer(out: &mut Vec<u8>, n: f64, endian: Endian, size: usize) {
    let mut value = if n < 0.0 { c_i64(n) as u64 } else { c_u64(n) };
    let mut bytes = vec![0u8; size];
    for b in bytes.iter_mut() {
        *b = (value & 0xff) as u8;
        value >>= 8;
    }
    if endian == Endian::Big {
        bytes.reverse();
    }
    out.extend_from_slice(&bytes);
}

fn get_integer(data: &[u8], endian: Endian, signed: bool, size: usize) -> f64 {
    let mut l: u64 = 0;
    let mut push = |b: u8| l = (l << 8) | u64::from(b);
    if endian == Endian::Big {
        data.iter().for_each(|&b| push(b));
    } else {
        data.iter().rev().for_each(|&b| push(b));
    }
    if !signed {
        return l as f64;
    }
    // x86-64 masks a variable shift count to 6 bits.
    let mask = u64::MAX << ((size * 8).wrapping_sub(1) & 63);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn pack(lua: &Lua, args: &MultiValue) -> Result<Vec<u8>, String> {
    let fmt = string_arg(lua, args, 1, "pack", "no value")?;
    let mut f = Format {
        f: &fmt,
        at: 0,
        fname: "pack",
    };
    let mut h = Header::new();
    let mut arg = 2;
    let mut out = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = number_arg(lua, args, arg, "pack")?;
                arg += 1;
                put_integer(&mut out, n, h.endian, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let n = number_arg(lua, args, arg, "pack")?;
                arg += 1;
                let b = (n as f32).to_bits();
                out.extend_from_slice(&match h.endian {
                    Endian::Big => b.to_be_bytes(),
                    Endian::Little => b.to_le_bytes(),
                });
            }
            b'd' => {
                let n = number_arg(lua, args, arg, "pack")?;
                arg += 1;
                let b = n.to_bits();
                out.extend_from_slice(&match h.endian {
                    Endian::Big => b.to_be_bytes(),
                    Endian::Little => b.to_le_bytes(),
                });
            }
            b'c' | b's' => {
                let s = string_arg(lua, args, arg, "pack", "nil")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    return Err(format!("bad argument #{arg} to 'pack' (string too short)"));
                }
                super::engine::charge(lua, size as u64 / 16).map_err(|e| e.to_string())?;
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt, &mut h)?,
        }
    }
    Ok(out)
}

fn unpack(lua: &Lua, args: &MultiValue) -> Result<Vec<Value>, String> {
    let fmt = string_arg(lua, args, 1, "unpack", "no value")?;
    let data = string_arg(lua, args, 2, "unpack", "no value")?;
    let ld = data.len();
    let init = match args.get(2) {
        None | Some(Value::Nil) => 1,
        Some(_) => c_i64(number_arg(lua, args, 3, "unpack")?),
    };
    if init == 0 {
        return Err("bad argument #3 to 'unpack' (offset must be 1 or greater)".into());
    }
    // A size_t in the C library: a negative start wraps around to a huge one.
    let mut pos = (init as u64).wrapping_sub(1);
    let mut f = Format {
        f: &fmt,
        at: 0,
        fname: "unpack",
    };
    let mut h = Header::new();
    let mut out: Vec<Value> = Vec::new();
    let too_short = || "bad argument #2 to 'unpack' (data string too short)".to_string();
    let fits = |pos: u64, size: u64| size <= ld as u64 && pos <= ld as u64 - size;
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)? as u64;
        pos = pos.wrapping_add(to_align(pos as usize, &h, opt, size as usize) as u64);
        if !fits(pos, size) {
            return Err(too_short());
        }
        if out.len() + 2 > MAX_RESULTS {
            return Err("stack overflow (too many results)".into());
        }
        let at = pos as usize;
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = get_integer(
                    &data[at..at + size as usize],
                    h.endian,
                    opt.is_ascii_lowercase(),
                    size as usize,
                );
                out.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[at..at + 4]);
                let bits = match h.endian {
                    Endian::Big => u32::from_be_bytes(b),
                    Endian::Little => u32::from_le_bytes(b),
                };
                out.push(Value::Number(f64::from(f32::from_bits(bits))));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[at..at + 8]);
                let bits = match h.endian {
                    Endian::Big => u64::from_be_bytes(b),
                    Endian::Little => u64::from_le_bytes(b),
                };
                out.push(Value::Number(f64::from_bits(bits)));
            }
            b'c' => {
                if size == 0 {
                    let previous = out.pop().and_then(|v| lua.coerce_number(v).ok().flatten());
                    let Some(n) = previous else {
                        return Err("format 'c0' needs a previous size".into());
                    };
                    size = c_u64(n);
                    if !fits(pos, size) {
                        return Err(too_short());
                    }
                }
                super::engine::charge(lua, size / 16).map_err(|e| e.to_string())?;
                let s = lua
                    .create_string(&data[at..at + size as usize])
                    .map_err(|e| e.to_string())?;
                out.push(Value::String(s));
            }
            b's' => {
                let Some(end) = data[at..].iter().position(|&b| b == 0) else {
                    return Err("unfinished string in data".into());
                };
                size = end as u64 + 1;
                let s = lua
                    .create_string(&data[at..at + end])
                    .map_err(|e| e.to_string())?;
                out.push(Value::String(s));
            }
            _ => f.control(opt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    out.push(Value::Number(pos.wrapping_add(1) as i64 as f64));
    Ok(out)
}

fn size(lua: &Lua, args: &MultiValue) -> Result<f64, String> {
    let fmt = string_arg(lua, args, 1, "size", "no value")?;
    let mut f = Format {
        f: &fmt,
        at: 0,
        fname: "size",
    };
    let mut h = Header::new();
    let mut pos = 0usize;
    while let Some(opt) = f.next() {
        let size = f.size(opt)?;
        pos += to_align(pos, &h, opt, size);
        if opt == b's' {
            return Err("bad argument #1 to 'size' (option 's' has no fixed size)".into());
        }
        if opt == b'c' && size == 0 {
            return Err("bad argument #1 to 'size' (option 'c0' has no fixed size)".into());
        }
        if matches!(opt, b'<' | b'>' | b'!') {
            f.control(opt, &mut h)?;
        }
        pos += size;
    }
    Ok(pos as f64)
}

fn reply(lua: &Lua, r: Result<Vec<Value>, String>) -> mlua::Result<MultiValue> {
    match r {
        Ok(mut values) => {
            values.insert(0, Value::Boolean(true));
            Ok(MultiValue::from_vec(values))
        }
        Err(msg) => Ok(MultiValue::from_vec(vec![
            Value::Boolean(false),
            Value::String(lua.create_string(msg)?),
        ])),
    }
}

/// Registers the library's raw functions in `raw.struct`; each returns `true, results...` or
/// `false, message` (the sandbox raises the message at the script's line).
pub fn register(lua: &Lua, raw: &Table) -> mlua::Result<()> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            let r = pack(lua, &args).and_then(|b| {
                lua.create_string(&b)
                    .map(|s| vec![Value::String(s)])
                    .map_err(|e| e.to_string())
            });
            reply(lua, r)
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, args: MultiValue| reply(lua, unpack(lua, &args)))?,
    )?;
    t.raw_set(
        "size",
        lua.create_function(|lua, args: MultiValue| {
            reply(lua, size(lua, &args).map(|n| vec![Value::Number(n)]))
        })?,
    )?;
    raw.raw_set("struct", t)?;
    Ok(())
}
