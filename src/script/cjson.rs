//! The `cjson` library Redis ships (lua-cjson 2.1), in Rust with its exact output: numbers as
//! `%.14g`, `/` escaped, tables with only positive integer keys as arrays (an empty one as
//! `{}`), keys in Lua's `next` order. Configuration functions exist and take effect for the
//! run (kvd resets them for every script, so a script cannot change what the next one gets).

use std::cell::Cell;

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

type LibResult = mlua::Result<(bool, Value)>;

thread_local! {
    static MAX_ENCODE_DEPTH: Cell<usize> = const { Cell::new(1000) };
    static MAX_DECODE_DEPTH: Cell<usize> = const { Cell::new(1000) };
    static INVALID_NUMBERS: Cell<bool> = const { Cell::new(false) };
    static PRECISION: Cell<usize> = const { Cell::new(14) };
}

/// Puts the defaults back (at the start of every run).
pub fn reset() {
    MAX_ENCODE_DEPTH.with(|c| c.set(1000));
    MAX_DECODE_DEPTH.with(|c| c.set(1000));
    INVALID_NUMBERS.with(|c| c.set(false));
    PRECISION.with(|c| c.set(14));
}

fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// C's `%.<prec>g`.
pub fn format_g(d: f64, prec: usize) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if d.is_infinite() {
        return if d < 0.0 { "-inf" } else { "inf" }.into();
    }
    let prec = prec.max(1);
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{:.*e}", prec - 1, d);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{d:.decimals$}")).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

fn encode_number(out: &mut Vec<u8>, n: f64) -> Result<(), String> {
    if !n.is_finite() {
        if !INVALID_NUMBERS.with(Cell::get) {
            return Err("Cannot serialise number: must not be NaN or Inf".to_string());
        }
        if n.is_nan() {
            out.extend_from_slice(b"nan");
            return Ok(());
        }
    }
    out.extend_from_slice(format_g(n, PRECISION.with(Cell::get)).as_bytes());
    Ok(())
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// Array length if every key is a positive integer (0 for an empty table), else `None`.
fn array_length(t: &Table) -> Result<Option<usize>, String> {
    let mut max = 0usize;
    let mut items = 0usize;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        match number_of(&k) {
            Some(n) if n >= 1.0 && n.fract() == 0.0 && n <= usize::MAX as f64 => {
                max = max.max(n as usize);
                items += 1;
            }
            _ => return Ok(None),
        }
    }
    if max > 10 && max > items * 2 {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok(Some(max))
}

fn encode_value(out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), String> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(_) | Value::Number(_) => encode_number(out, number_of(v).unwrap_or(0.0))?,
        Value::String(s) => encode_string(out, &s.as_bytes()),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > MAX_ENCODE_DEPTH.with(Cell::get) {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_length(t)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                        encode_value(out, &item, depth)?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.clone().pairs::<Value, Value>() {
                        let (k, item) = pair.map_err(|e| e.to_string())?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match &k {
                            Value::String(s) => encode_string(out, &s.as_bytes()),
                            Value::Integer(_) | Value::Number(_) => {
                                out.push(b'"');
                                encode_number(out, number_of(&k).unwrap_or(0.0))?;
                                out.push(b'"');
                            }
                            _ => {
                                return Err(
                                    "Cannot serialise table: table key must be a number or string"
                                        .into(),
                                );
                            }
                        }
                        out.push(b':');
                        encode_value(out, &item, depth)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            ));
        }
    }
    Ok(())
}

struct Parser<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.at < self.s.len() && matches!(self.s[self.at], b' ' | b'\t' | b'\n' | b'\r') {
            self.at += 1;
        }
    }

    /// The name cjson gives the token at the cursor, for error messages.
    fn found(&self) -> &'static str {
        match self.s.get(self.at) {
            None => "T_END",
            Some(b'{') => "T_OBJ_BEGIN",
            Some(b'}') => "T_OBJ_END",
            Some(b'[') => "T_ARR_BEGIN",
            Some(b']') => "T_ARR_END",
            Some(b'"') => "T_STRING",
            Some(b':') => "T_COLON",
            Some(b',') => "T_COMMA",
            Some(b'-' | b'0'..=b'9') => "T_NUMBER",
            _ if self.s[self.at..].starts_with(b"true")
                || self.s[self.at..].starts_with(b"false") =>
            {
                "T_BOOLEAN"
            }
            _ if self.s[self.at..].starts_with(b"null") => "T_NULL",
            _ => "invalid token",
        }
    }

    fn expected(&self, what: &str) -> String {
        format!(
            "Expected {what} but found {} at character {}",
            self.found(),
            self.at + 1
        )
    }

    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        let lua = self.lua;
        match self.s.get(self.at) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => {
                let s = self.string()?;
                Ok(Value::String(
                    lua.create_string(&s).map_err(|e| e.to_string())?,
                ))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ if self.s[self.at..].starts_with(b"true") => {
                self.at += 4;
                Ok(Value::Boolean(true))
            }
            _ if self.s[self.at..].starts_with(b"false") => {
                self.at += 5;
                Ok(Value::Boolean(false))
            }
            _ if self.s[self.at..].starts_with(b"null") => {
                self.at += 4;
                Ok(null())
            }
            _ => Err(self.expected("value")),
        }
    }

    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DECODE_DEPTH.with(Cell::get) {
            return Err(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth,
                self.at + 1
            ));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Value, String> {
        self.nest()?;
        self.at += 1;
        let t = self.lua.create_table().map_err(|e| e.to_string())?;
        self.ws();
        if self.s.get(self.at) == Some(&b'}') {
            self.at += 1;
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        loop {
            self.ws();
            if self.s.get(self.at) != Some(&b'"') {
                return Err(self.expected("object key string"));
            }
            let key = self.string()?;
            self.ws();
            if self.s.get(self.at) != Some(&b':') {
                return Err(self.expected("colon"));
            }
            self.at += 1;
            let v = self.value()?;
            let k = self.lua.create_string(&key).map_err(|e| e.to_string())?;
            t.raw_set(k, v).map_err(|e| e.to_string())?;
            self.ws();
            match self.s.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                _ => return Err(self.expected("comma or object end")),
            }
        }
    }

    fn array(&mut self) -> Result<Value, String> {
        self.nest()?;
        self.at += 1;
        let t = self.lua.create_table().map_err(|e| e.to_string())?;
        self.ws();
        if self.s.get(self.at) == Some(&b']') {
            self.at += 1;
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        let mut i = 1;
        loop {
            let v = self.value()?;
            t.raw_set(i, v).map_err(|e| e.to_string())?;
            i += 1;
            self.ws();
            match self.s.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                _ => return Err(self.expected("comma or array end")),
            }
        }
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        let start = self.at;
        self.at += 1;
        let mut out = Vec::new();
        let invalid = |at: usize| {
            format!(
                "Expected value but found invalid token at character {}",
                at + 1
            )
        };
        loop {
            let Some(&c) = self.s.get(self.at) else {
                return Err(invalid(start));
            };
            self.at += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.at) else {
                        return Err(invalid(start));
                    };
                    self.at += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let cp = self.hex4().ok_or_else(|| invalid(start))?;
                            let cp = if (0xd800..0xdc00).contains(&cp)
                                && self.s[self.at..].starts_with(b"\\u")
                            {
                                self.at += 2;
                                let low = self.hex4().ok_or_else(|| invalid(start))?;
                                0x10000 + ((cp - 0xd800) << 10) + (low.wrapping_sub(0xdc00) & 0x3ff)
                            } else {
                                cp
                            };
                            let ch = char::from_u32(cp).ok_or_else(|| invalid(start))?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(invalid(start)),
                    }
                }
                _ => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.at..self.at + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        self.at += 4;
        Some(v)
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.at;
        while self.at < self.s.len()
            && matches!(
                self.s[self.at],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
        match text.parse::<f64>() {
            Ok(n) => Ok(Value::Number(n)),
            Err(_) => {
                self.at = start;
                Err(format!(
                    "Expected value but found invalid number at character {}",
                    start + 1
                ))
            }
        }
    }
}

/// Puts the raw functions in `raw.cjson` (wrapped by the sandbox).
pub fn register(lua: &Lua, raw: &Table) -> mlua::Result<()> {
    let t = lua.create_table()?;
    t.raw_set(
        "encode",
        lua.create_function(|lua, args: MultiValue| -> LibResult {
            if args.len() != 1 {
                let msg = lua.create_string("bad argument #1 to 'encode' (expected 1 argument)")?;
                return Ok((false, Value::String(msg)));
            }
            let mut out = Vec::new();
            match encode_value(&mut out, &args[0], 0) {
                Ok(()) => Ok((true, Value::String(lua.create_string(&out)?))),
                Err(e) => Ok((false, Value::String(lua.create_string(e)?))),
            }
        })?,
    )?;
    t.raw_set(
        "decode",
        lua.create_function(|lua, args: MultiValue| -> LibResult {
            let s = match args.front() {
                Some(Value::String(s)) if args.len() == 1 => s.as_bytes().to_vec(),
                _ => {
                    let msg =
                        lua.create_string("bad argument #1 to 'decode' (expected 1 argument)")?;
                    return Ok((false, Value::String(msg)));
                }
            };
            let mut p = Parser {
                lua,
                s: &s,
                at: 0,
                depth: 0,
            };
            let result = p.value().and_then(|v| {
                p.ws();
                if p.at < p.s.len() {
                    return Err(p.expected("the end"));
                }
                Ok(v)
            });
            match result {
                Ok(v) => Ok((true, v)),
                Err(e) => Ok((false, Value::String(lua.create_string(e)?))),
            }
        })?,
    )?;
    let setting = |name: &'static str, set: fn(f64)| -> mlua::Result<()> {
        t.raw_set(
            name,
            lua.create_function(move |_, v: Value| -> LibResult {
                match &v {
                    Value::Integer(n) => set(*n as f64),
                    Value::Number(n) => set(*n),
                    Value::Boolean(b) => set(f64::from(u8::from(*b))),
                    _ => {}
                }
                Ok((true, v))
            })?,
        )
    };
    setting("encode_max_depth", |n| {
        MAX_ENCODE_DEPTH.with(|c| c.set(n.max(1.0) as usize))
    })?;
    setting("decode_max_depth", |n| {
        MAX_DECODE_DEPTH.with(|c| c.set(n.max(1.0) as usize))
    })?;
    setting("encode_invalid_numbers", |n| {
        INVALID_NUMBERS.with(|c| c.set(n != 0.0))
    })?;
    setting("encode_number_precision", |n| {
        PRECISION.with(|c| c.set(n.clamp(1.0, 14.0) as usize))
    })?;
    for name in [
        "encode_keep_buffer",
        "decode_invalid_numbers",
        "encode_sparse_array",
    ] {
        setting(name, |_| {})?;
    }
    t.raw_set("null", null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    raw.raw_set("cjson", t)
}

#[cfg(test)]
mod tests {
    use super::format_g;

    #[test]
    fn numbers_print_as_c_does() {
        assert_eq!(format_g(0.1, 14), "0.1");
        assert_eq!(format_g(1e300, 14), "1e+300");
        assert_eq!(format_g(123456789012345.0, 14), "1.2345678901234e+14");
        assert_eq!(format_g(1023.2, 14), "1023.2");
        assert_eq!(format_g(-5000.0, 14), "-5000");
        assert_eq!(format_g(0.0003, 14), "0.0003");
        assert_eq!(format_g(3.0, 14), "3");
    }
}
