//! Conversions between Redis replies and Lua values, as redis-server 7.0's `script_lua.c` does
//! them: a command's reply becomes a Lua value in the protocol the script chose with
//! `redis.setresp` (RESP2 by default), and the script's return value becomes the client's reply.

use bytes::Bytes;
use mlua::{Lua, Table, Value};

use crate::resp::Reply;
use crate::resp::reply::format_double;

/// Deepest nesting converted; past it the reply is Redis's "reached lua stack limit" error.
/// (redis-server gets there at 7995 levels, where its Lua stack runs out; kvd stops earlier
/// so that converting, encoding and dropping the reply stay well within a thread's stack.)
const MAX_DEPTH: usize = 1_000;

/// A command's reply as the script sees it (`resp` is the script's protocol, 2 or 3).
pub fn reply_to_lua(lua: &Lua, reply: &Reply, resp: u8) -> mlua::Result<Value> {
    let resp3 = resp == 3;
    Ok(match reply {
        Reply::Status(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(s.as_bytes())?)?;
            Value::Table(t)
        }
        Reply::Error(e) => Value::Table(error_table(lua, &format!("-{e}"))?),
        Reply::Integer(n) => Value::Number(*n as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Nil | Reply::NilArray if resp3 => Value::Nil,
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Array(items) | Reply::Push(items) => array(lua, items, resp)?,
        Reply::Set(items) if resp3 => {
            let set = lua.create_table()?;
            for item in items {
                set.raw_set(reply_to_lua(lua, item, resp)?, true)?;
            }
            wrapped(lua, "set", Value::Table(set))?
        }
        Reply::Set(items) => array(lua, items, resp)?,
        Reply::Map(pairs) | Reply::PairMap(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(reply_to_lua(lua, k, resp)?, reply_to_lua(lua, v, resp)?)?;
            }
            wrapped(lua, "map", Value::Table(map))?
        }
        Reply::Pairs(pairs) if resp3 => {
            let t = lua.create_table_with_capacity(pairs.len(), 0)?;
            for (i, (k, v)) in pairs.iter().enumerate() {
                let pair = lua.create_table_with_capacity(2, 0)?;
                pair.raw_set(1, reply_to_lua(lua, k, resp)?)?;
                pair.raw_set(2, reply_to_lua(lua, v, resp)?)?;
                t.raw_set(i + 1, pair)?;
            }
            Value::Table(t)
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) => {
            let t = lua.create_table()?;
            let mut i = 1;
            for (k, v) in pairs {
                t.raw_set(i, reply_to_lua(lua, k, resp)?)?;
                t.raw_set(i + 1, reply_to_lua(lua, v, resp)?)?;
                i += 2;
            }
            Value::Table(t)
        }
        Reply::PairMap(pairs) => {
            // XREAD's reply in RESP2: an array of [key, entries] pairs.
            let t = lua.create_table_with_capacity(pairs.len(), 0)?;
            for (i, (k, v)) in pairs.iter().enumerate() {
                let pair = lua.create_table_with_capacity(2, 0)?;
                pair.raw_set(1, reply_to_lua(lua, k, resp)?)?;
                pair.raw_set(2, reply_to_lua(lua, v, resp)?)?;
                t.raw_set(i + 1, pair)?;
            }
            Value::Table(t)
        }
        Reply::Double(d) if resp3 => wrapped(lua, "double", Value::Number(*d))?,
        Reply::Double(d) => Value::String(lua.create_string(format_double(*d))?),
        Reply::DoubleText(t) if resp3 => wrapped(
            lua,
            "double",
            Value::Number(t.parse::<f64>().unwrap_or(f64::NAN)),
        )?,
        Reply::DoubleText(t) => Value::String(lua.create_string(t.as_bytes())?),
        Reply::Boolean(b) if resp3 => Value::Boolean(*b),
        Reply::Boolean(b) => Value::Number(f64::from(u8::from(*b))),
        Reply::BigNumber(n) if resp3 => wrapped(
            lua,
            "big_number",
            Value::String(lua.create_string(n.as_bytes())?),
        )?,
        Reply::BigNumber(n) => Value::String(lua.create_string(n.as_bytes())?),
        Reply::Verbatim { format, text } if resp3 => {
            let v = lua.create_table()?;
            v.raw_set("string", lua.create_string(text)?)?;
            v.raw_set("format", lua.create_string(format)?)?;
            wrapped(lua, "verbatim_string", Value::Table(v))?
        }
        Reply::Verbatim { text, .. } => Value::String(lua.create_string(text)?),
    })
}

fn array(lua: &Lua, items: &[Reply], resp: u8) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        t.raw_set(i + 1, reply_to_lua(lua, item, resp)?)?;
    }
    Ok(Value::Table(t))
}

fn wrapped(lua: &Lua, field: &str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(field, v)?;
    Ok(Value::Table(t))
}

/// Redis's error table (`luaPushErrorBuff`): `-CODE msg` keeps its code, anything else gets
/// `ERR`; line breaks at the ends of the message are trimmed.
pub fn error_table(lua: &Lua, text: &str) -> mlua::Result<Table> {
    let (code, msg) = match text.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, msg)) => (code, msg),
            None => ("ERR", rest),
        },
        None => ("ERR", text),
    };
    let msg = msg.trim_matches(|c| c == '\r' || c == '\n');
    let t = lua.create_table()?;
    t.raw_set("err", format!("{code} {msg}"))?;
    Ok(t)
}

/// The script's return value as the client's reply (`resp` is the script's protocol).
pub fn lua_to_reply(v: &Value, resp: u8) -> Reply {
    convert_out(v, resp, 0)
}

fn bytes_of(s: &mlua::LuaString) -> Bytes {
    Bytes::copy_from_slice(&s.as_bytes())
}

/// `\r` and `\n` become spaces in status and big-number lines, as Redis maps them.
fn one_line(s: &mlua::LuaString) -> String {
    String::from_utf8_lossy(&s.as_bytes()).replace(['\r', '\n'], " ")
}

fn convert_out(v: &Value, resp: u8, depth: usize) -> Reply {
    if depth > MAX_DEPTH {
        return Reply::error("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => Reply::Bulk(bytes_of(s)),
        Value::Boolean(b) if resp == 2 => {
            if *b {
                Reply::Integer(1)
            } else {
                Reply::Nil
            }
        }
        Value::Boolean(b) => Reply::Boolean(*b),
        Value::Integer(n) => Reply::Integer(*n),
        Value::Number(n) => Reply::Integer(c_i64(*n)),
        Value::Table(t) => table_out(t, resp, depth),
        _ => Reply::Nil,
    }
}

fn table_out(t: &Table, resp: u8, depth: usize) -> Reply {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        let mut msg = String::from_utf8_lossy(&e.as_bytes()).into_owned();
        if msg.is_empty() {
            msg.push_str("ERR");
        }
        return Reply::Error(msg.into());
    }
    if let Value::String(s) = field("ok") {
        return Reply::Status(one_line(&s).into());
    }
    if let Value::Number(d) = field("double") {
        return Reply::Double(d);
    }
    if let Value::Integer(d) = field("double") {
        return Reply::Double(d as f64);
    }
    if let Value::String(s) = field("big_number") {
        return Reply::BigNumber(one_line(&s).into());
    }
    if let Value::Table(v) = field("verbatim_string")
        && let (Ok(Value::String(format)), Ok(Value::String(text))) =
            (v.raw_get::<Value>("format"), v.raw_get::<Value>("string"))
    {
        let f = format.as_bytes();
        let mut fmt = *b"   ";
        for (slot, b) in fmt.iter_mut().zip(f.iter()) {
            *slot = *b;
        }
        return Reply::Verbatim {
            format: fmt,
            text: bytes_of(&text),
        };
    }
    if let Value::Table(map) = field("map") {
        let mut pairs = Vec::new();
        for pair in map.pairs::<Value, Value>() {
            let Ok((k, v)) = pair else { break };
            pairs.push((
                convert_out(&k, resp, depth + 1),
                convert_out(&v, resp, depth + 1),
            ));
        }
        return Reply::Map(pairs);
    }
    if let Value::Table(set) = field("set") {
        let mut items = Vec::new();
        for pair in set.pairs::<Value, Value>() {
            let Ok((k, _)) = pair else { break };
            items.push(convert_out(&k, resp, depth + 1));
        }
        return Reply::Set(items);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => {
                let item = convert_out(&v, resp, depth + 1);
                let stop = depth + 1 > MAX_DEPTH;
                items.push(item);
                if stop {
                    break;
                }
            }
        }
    }
    Reply::Array(items)
}

/// 2^63, the first double past `i64`.
pub const TWO_63: f64 = (1u64 << 63) as f64;

/// C's `(long long)` conversion of a double as redis-server's build does it (x86-64): a value
/// out of range, an infinity or NaN gives `i64::MIN` (Rust's `as` saturates instead).
pub fn c_i64(n: f64) -> i64 {
    if n.is_nan() || !(-TWO_63..TWO_63).contains(&n) {
        return i64::MIN;
    }
    n as i64
}

/// C's `(unsigned long long)` conversion of a double on x86-64 (the value below 2^63 through
/// the signed conversion, the rest offset by 2^63).
pub fn c_u64(n: f64) -> u64 {
    if n < TWO_63 {
        return c_i64(n) as u64;
    }
    (c_i64(n - TWO_63) as u64) ^ (1 << 63)
}
