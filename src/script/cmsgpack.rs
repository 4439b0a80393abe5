//! The `cmsgpack` library Redis ships (lua-cmsgpack 0.4), in Rust with its exact output:
//! `pack(...)` encodes each argument and concatenates them; `unpack(s)` decodes every value
//! in `s`; `unpack_one(s, [offset])` and `unpack_limit(s, limit, [offset])` decode some and
//! return the next offset first (-1 once `s` is used up).
//!
//! Encoding as lua-cmsgpack does it: a number equal to a 64-bit integer takes the smallest
//! integer format, any other a float 32 if that loses nothing, else a float 64; strings take
//! fixstr / str 8 / str 16 / str 32; a table whose keys are exactly 1..n is an array, any
//! other a map, its pairs in Lua's `next` order; tables nested 16 deep, functions and other
//! values are nil. Decoding is bounded: nothing is allocated ahead for a length the input
//! claims (every element needs at least one byte of input), nesting is limited, and the run's
//! instruction budget is charged per element, so hostile input ends in an error.

use mlua::{Lua, MultiValue, Table, Value};

use super::convert::{TWO_63, c_i64};

/// lua-cmsgpack's `LUACMSGPACK_MAX_NESTING`: a table this deep is encoded as nil.
const MAX_NESTING: usize = 16;
/// Deepest input decoded: lua-cmsgpack stops where the Lua stack overflows (a few thousand
/// levels); kvd stops earlier, with "Bad data format in input.", so the decoder's recursion
/// stays far within a thread's stack in any build.
const MAX_DECODE_DEPTH: usize = 256;

fn fail(lua: &Lua, msg: impl AsRef<[u8]>) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_vec(vec![
        Value::Boolean(false),
        Value::String(lua.create_string(msg)?),
    ]))
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// True if `n` is exactly a 64-bit integer (lua-cmsgpack's `IS_INT64_EQUIVALENT`).
fn is_int64(n: f64) -> bool {
    (-TWO_63..TWO_63).contains(&n) && n.trunc() == n
}

fn encode_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_number(out: &mut Vec<u8>, n: f64) {
    if is_int64(n) {
        encode_int(out, n as i64);
    } else if f64::from(n as f32) == n {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_len(out: &mut Vec<u8>, len: usize, fix: (u8, usize), b8: Option<u8>, b16: u8, b32: u8) {
    if len <= fix.1 {
        out.push(fix.0 | len as u8);
    } else if let Some(b8) = b8.filter(|_| len <= 0xff) {
        out.extend_from_slice(&[b8, len as u8]);
    } else if len <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// lua-cmsgpack's `table_is_an_array`: every key a positive (32-bit) integer, as many keys as
/// the largest one.
fn is_array(t: &Table) -> mlua::Result<bool> {
    let (mut count, mut max) = (0f64, 0f64);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        match number_of(&k) {
            Some(n) if n > 0.0 && n <= f64::from(i32::MAX) && n.trunc() == n => {
                max = max.max(n);
                count += 1.0;
            }
            _ => return Ok(false),
        }
    }
    Ok(max == count)
}

fn encode(lua: &Lua, out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    super::engine::charge(lua, 1)?;
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(_) | Value::Number(_) => encode_number(out, number_of(v).unwrap_or(0.0)),
        Value::String(s) => {
            let s = s.as_bytes();
            super::engine::charge(lua, s.len() as u64 / 16)?;
            encode_len(out, s.len(), (0xa0, 31), Some(0xd9), 0xda, 0xdb);
            out.extend_from_slice(&s);
        }
        Value::Table(t) if level < MAX_NESTING => {
            if is_array(t)? {
                let len = t.raw_len();
                encode_len(out, len, (0x90, 15), None, 0xdc, 0xdd);
                for i in 1..=len {
                    encode(lua, out, &t.raw_get::<Value>(i)?, level + 1)?;
                }
            } else {
                let mut n = 0usize;
                for pair in t.clone().pairs::<Value, Value>() {
                    pair?;
                    n += 1;
                }
                encode_len(out, n, (0x80, 15), None, 0xde, 0xdf);
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    encode(lua, out, &k, level + 1)?;
                    encode(lua, out, &v, level + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

/// Why a decode stopped, in lua-cmsgpack's words.
enum DecodeError {
    Eof,
    BadFormat,
    /// Lua's own error, raised without a position (as Lua raises it inside a C function).
    Table(&'static str),
    Lua(mlua::Error),
}

impl From<mlua::Error> for DecodeError {
    fn from(e: mlua::Error) -> Self {
        DecodeError::Lua(e)
    }
}

struct Decoder<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    at: usize,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.s.len() - self.at < n {
            return Err(DecodeError::Eof);
        }
        let out = &self.s[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn string(&mut self, len: usize) -> Result<Value, DecodeError> {
        super::engine::charge(self.lua, len as u64 / 16)?;
        let lua = self.lua;
        let bytes = self.take(len)?;
        Ok(Value::String(lua.create_string(bytes)?))
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        let left = self.s.len() - self.at;
        let t = self.lua.create_table_with_capacity(len.min(left), 0)?;
        for i in 1..=len {
            let v = self.value(depth + 1)?;
            t.raw_set(i, v)?;
        }
        Ok(Value::Table(t))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        let left = self.s.len() - self.at;
        let t = self.lua.create_table_with_capacity(0, len.min(left / 2))?;
        for _ in 0..len {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            match &k {
                Value::Nil => return Err(DecodeError::Table("table index is nil")),
                Value::Number(n) if n.is_nan() => {
                    return Err(DecodeError::Table("table index is NaN"));
                }
                _ => t.raw_set(k, v)?,
            }
        }
        Ok(Value::Table(t))
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DECODE_DEPTH {
            return Err(DecodeError::BadFormat);
        }
        super::engine::charge(self.lua, 1)?;
        let tag = self.take(1)?[0];
        let number = |n: f64| Ok(Value::Number(n));
        match tag {
            0x00..=0x7f => number(f64::from(tag)),
            0x80..=0x8f => self.map(usize::from(tag & 0x0f), depth),
            0x90..=0x9f => self.array(usize::from(tag & 0x0f), depth),
            0xa0..=0xbf => self.string(usize::from(tag & 0x1f)),
            0xc0 => Ok(Value::Nil),
            0xc2 => Ok(Value::Boolean(false)),
            0xc3 => Ok(Value::Boolean(true)),
            0xca => number(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => number(f64::from_bits(self.uint(8)?)),
            0xcc => number(self.uint(1)? as f64),
            0xcd => number(self.uint(2)? as f64),
            0xce => number(self.uint(4)? as f64),
            // lua-cmsgpack pushes a uint 64 as a (signed) lua_Integer.
            0xcf => number(self.uint(8)? as i64 as f64),
            0xd0 => number(f64::from(self.uint(1)? as u8 as i8)),
            0xd1 => number(f64::from(self.uint(2)? as u16 as i16)),
            0xd2 => number(f64::from(self.uint(4)? as u32 as i32)),
            0xd3 => number(self.uint(8)? as i64 as f64),
            0xd9 => {
                let n = self.uint(1)? as usize;
                self.string(n)
            }
            0xda => {
                let n = self.uint(2)? as usize;
                self.string(n)
            }
            0xdb => {
                let n = self.uint(4)? as usize;
                self.string(n)
            }
            0xdc => {
                let n = self.uint(2)? as usize;
                self.array(n, depth)
            }
            0xdd => {
                let n = self.uint(4)? as usize;
                self.array(n, depth)
            }
            0xde => {
                let n = self.uint(2)? as usize;
                self.map(n, depth)
            }
            0xdf => {
                let n = self.uint(4)? as usize;
                self.map(n, depth)
            }
            0xe0..=0xff => number(f64::from(tag as i8)),
            _ => Err(DecodeError::BadFormat),
        }
    }
}

/// Lua's `luaL_optinteger`/`luaL_checkinteger` of argument `i` (1-based) of `fname`.
fn int_arg(args: &MultiValue, i: usize, default: Option<i64>, fname: &str) -> Result<i64, String> {
    match args.get(i - 1) {
        None | Some(Value::Nil) if default.is_some() => Ok(default.unwrap_or(0)),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => Ok(c_i64(number_of(v).unwrap_or(0.0))),
        Some(Value::String(s)) => {
            let text = String::from_utf8_lossy(&s.as_bytes()).trim().to_string();
            text.parse::<f64>().map(c_i64).map_err(|_| {
                format!("bad argument #{i} to '{fname}' (number expected, got string)")
            })
        }
        other => Err(format!(
            "bad argument #{i} to '{fname}' (number expected, got {})",
            other.map_or("no value", Value::type_name)
        )),
    }
}

/// lua-cmsgpack's `mp_unpack_full`.
fn unpack_full(
    lua: &Lua,
    args: &MultiValue,
    limit: i64,
    offset: i64,
    fname: &str,
) -> mlua::Result<MultiValue> {
    let s = match args.front() {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => match lua.coerce_string(v.clone())? {
            Some(s) => s.as_bytes().to_vec(),
            None => Vec::new(),
        },
        other => {
            return fail(
                lua,
                format!(
                    "bad argument #1 to '{fname}' (string expected, got {})",
                    other.map_or("no value", Value::type_name)
                ),
            );
        }
    };
    // C's `int` arguments, as lua-cmsgpack reads them.
    let (limit, offset) = (limit as i32, offset as i32);
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return fail(
            lua,
            format!(
                "Invalid request to unpack with offset of {offset} and limit of {}.",
                s.len()
            ),
        );
    }
    if offset as usize > s.len() {
        return fail(
            lua,
            format!(
                "Start offset {offset} greater than input length {}.",
                s.len()
            ),
        );
    }
    let limit = if decode_all { i32::MAX } else { limit };
    let mut d = Decoder {
        lua,
        s: &s,
        at: offset as usize,
    };
    let mut out = vec![Value::Boolean(true)];
    if !decode_all {
        out.push(Value::Nil);
    }
    let mut count = 0;
    while d.at < s.len() && count < limit {
        match d.value(0) {
            Ok(v) => out.push(v),
            Err(DecodeError::Eof) => return fail(lua, "Missing bytes in input."),
            Err(DecodeError::BadFormat) => return fail(lua, "Bad data format in input."),
            Err(DecodeError::Table(msg)) => {
                return Ok(MultiValue::from_vec(vec![
                    Value::Boolean(false),
                    Value::String(lua.create_string(msg)?),
                    Value::Boolean(true),
                ]));
            }
            Err(DecodeError::Lua(e)) => return Err(e),
        }
        count += 1;
    }
    if !decode_all {
        let next = if d.at == s.len() { -1 } else { d.at as i64 };
        out[1] = Value::Number(next as f64);
    }
    Ok(MultiValue::from_vec(out))
}

/// Registers the library's raw functions in `raw.cmsgpack`; each returns `true, results...`
/// or `false, message` (the sandbox raises the message at the script's line; with a third
/// `true`, without a position).
pub fn register(lua: &Lua, raw: &Table) -> mlua::Result<()> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            if args.is_empty() {
                return fail(
                    lua,
                    "bad argument #0 to 'pack' (MessagePack pack needs input.)",
                );
            }
            let mut out = Vec::new();
            for v in args.iter() {
                encode(lua, &mut out, v, 0)?;
            }
            Ok(MultiValue::from_vec(vec![
                Value::Boolean(true),
                Value::String(lua.create_string(&out)?),
            ]))
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, args: MultiValue| unpack_full(lua, &args, 0, 0, "unpack"))?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, args: MultiValue| {
            match int_arg(&args, 2, Some(0), "unpack_one") {
                Ok(offset) => unpack_full(lua, &args, 1, offset, "unpack_one"),
                Err(e) => fail(lua, e),
            }
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(|lua, args: MultiValue| {
            let limit = match int_arg(&args, 2, None, "unpack_limit") {
                Ok(n) => n,
                Err(e) => return fail(lua, e),
            };
            match int_arg(&args, 3, Some(0), "unpack_limit") {
                Ok(offset) => unpack_full(lua, &args, limit, offset, "unpack_limit"),
                Err(e) => fail(lua, e),
            }
        })?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    raw.raw_set("cmsgpack", t)?;
    Ok(())
}
