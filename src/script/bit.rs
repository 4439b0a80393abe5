//! The `bit` library Redis ships (Lua BitOp): 32-bit operations on Lua numbers, results as
//! signed 32-bit integers. Each function returns `(true, result)` or `(false, message)`; the
//! sandbox raises the message at the caller, as `luaL_argerror` does.

use mlua::{Lua, MultiValue, Table, Value};

type LibResult = mlua::Result<(bool, Value)>;

/// Lua BitOp's argument conversion: the number (numeric strings too) rounded and reduced to
/// its low 32 bits.
fn barg(lua: &Lua, args: &MultiValue, i: usize, fname: &str) -> Result<u32, String> {
    let v = args.get(i).cloned().unwrap_or(Value::Nil);
    let n = match &v {
        Value::Integer(n) => *n as f64,
        Value::Number(n) => *n,
        Value::String(_) => match lua.coerce_number(v.clone()) {
            Ok(Some(n)) => n,
            _ => return Err(type_error(i, fname, &v)),
        },
        _ => return Err(type_error(i, fname, &v)),
    };
    let b = n + 6_755_399_441_055_744.0;
    Ok(b.to_bits() as u32)
}

fn type_error(i: usize, fname: &str, v: &Value) -> String {
    let got = match v {
        Value::Nil => "no value",
        other => other.type_name(),
    };
    format!(
        "bad argument #{} to '{fname}' (number expected, got {got})",
        i + 1
    )
}

fn ok(b: u32) -> LibResult {
    Ok((true, Value::Number(f64::from(b as i32))))
}

fn fail(lua: &Lua, msg: String) -> LibResult {
    Ok((false, Value::String(lua.create_string(msg)?)))
}

/// Puts the raw functions in `raw.bit`.
pub fn register(lua: &Lua, raw: &Table) -> mlua::Result<()> {
    let t = lua.create_table()?;
    let unary = |name: &'static str, f: fn(u32) -> u32| -> mlua::Result<()> {
        t.raw_set(
            name,
            lua.create_function(
                move |lua, args: MultiValue| match barg(lua, &args, 0, name) {
                    Ok(b) => ok(f(b)),
                    Err(e) => fail(lua, e),
                },
            )?,
        )
    };
    unary("tobit", |b| b)?;
    unary("bnot", |b| !b)?;
    unary("bswap", u32::swap_bytes)?;
    let fold = |name: &'static str, f: fn(u32, u32) -> u32| -> mlua::Result<()> {
        t.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                let mut acc = match barg(lua, &args, 0, name) {
                    Ok(b) => b,
                    Err(e) => return fail(lua, e),
                };
                for i in 1..args.len() {
                    match barg(lua, &args, i, name) {
                        Ok(b) => acc = f(acc, b),
                        Err(e) => return fail(lua, e),
                    }
                }
                ok(acc)
            })?,
        )
    };
    fold("band", |a, b| a & b)?;
    fold("bor", |a, b| a | b)?;
    fold("bxor", |a, b| a ^ b)?;
    let shift = |name: &'static str, f: fn(u32, u32) -> u32| -> mlua::Result<()> {
        t.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                match (barg(lua, &args, 0, name), barg(lua, &args, 1, name)) {
                    (Ok(b), Ok(n)) => ok(f(b, n & 31)),
                    (Err(e), _) | (_, Err(e)) => fail(lua, e),
                }
            })?,
        )
    };
    shift("lshift", |b, n| b << n)?;
    shift("rshift", |b, n| b >> n)?;
    shift("arshift", |b, n| ((b as i32) >> n) as u32)?;
    shift("rol", u32::rotate_left)?;
    shift("ror", u32::rotate_right)?;
    t.raw_set(
        "tohex",
        lua.create_function(|lua, args: MultiValue| {
            let b = match barg(lua, &args, 0, "tohex") {
                Ok(b) => b,
                Err(e) => return fail(lua, e),
            };
            let mut n = if args.len() < 2 {
                8
            } else {
                match barg(lua, &args, 1, "tohex") {
                    Ok(n) => n as i32,
                    Err(e) => return fail(lua, e),
                }
            };
            let digits: &[u8] = if n < 0 {
                n = -n;
                b"0123456789ABCDEF"
            } else {
                b"0123456789abcdef"
            };
            let n = n.min(8) as usize;
            let mut out = vec![0u8; n];
            let mut v = b;
            for slot in out.iter_mut().rev() {
                *slot = digits[(v & 15) as usize];
                v >>= 4;
            }
            Ok((true, Value::String(lua.create_string(&out)?)))
        })?,
    )?;
    raw.raw_set("bit", t)
}
