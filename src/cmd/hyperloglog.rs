//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST, over string values in
//! Redis's representation (`kv::hll`).
//!
//! PFCOUNT of one key stores the count it computed in the value's header, as Redis does (a
//! later GET shows it, WATCH sees the key change), so it is proposed like a write; the count
//! itself depends only on the value, so every node stores the same bytes.

use bytes::Bytes;

use super::strings::{string_meta, update_string};
use super::{CmdError, CmdResult, Kind, Spec, is, lossy};
use crate::kv::hll::{self, Hll, HllError};
use crate::kv::{ApplyCtx, KeyRead, KeyType, Meta, WriteView};
use crate::resp::Reply;

pub const PFADD: Spec = Spec {
    name: "pfadd",
    arity: -2,
    kind: Kind::Write {
        prepare: Ok,
        apply: pfadd,
    },
    flags: &["write", "denyoom", "fast"],
    keys: (1, 1, 1),
};

pub const PFCOUNT: Spec = Spec {
    name: "pfcount",
    arity: -2,
    kind: Kind::Write {
        prepare: Ok,
        apply: pfcount,
    },
    flags: &["readonly", "may_replicate"],
    keys: (1, -1, 1),
};

pub const PFMERGE: Spec = Spec {
    name: "pfmerge",
    arity: -2,
    kind: Kind::Write {
        prepare: Ok,
        apply: pfmerge,
    },
    flags: &["write", "denyoom"],
    keys: (1, -1, 1),
};

pub const PFDEBUG: Spec = Spec {
    name: "pfdebug",
    arity: 3,
    kind: Kind::Write {
        prepare: Ok,
        apply: pfdebug,
    },
    flags: &["write", "denyoom", "admin"],
    keys: (2, 2, 1),
};

pub const PFSELFTEST: Spec = Spec {
    name: "pfselftest",
    arity: 1,
    kind: Kind::Read(|_, _| Ok(self_test())),
    flags: &["admin"],
    keys: (0, 0, 0),
};

fn not_hll() -> CmdError {
    Reply::error("WRONGTYPE Key is not a valid HyperLogLog string value.").into()
}

fn corrupt() -> CmdError {
    Reply::error("INVALIDOBJ Corrupted HLL object detected").into()
}

fn hll_error(e: HllError) -> CmdError {
    match e {
        HllError::NotHll => not_hll(),
        HllError::Corrupt => corrupt(),
    }
}

/// A live key's HyperLogLog: WRONGTYPE for another type or a string that is not one.
fn parse(meta: &Meta) -> Result<Hll, CmdError> {
    if meta.kind != KeyType::String {
        return Err(super::wrong_type().into());
    }
    Hll::parse(&meta.body).map_err(hll_error)
}

fn save(w: &mut WriteView, key: &[u8], old: Option<Meta>, h: Hll) -> Result<(), CmdError> {
    update_string(w, key, old, Bytes::from(h.into_bytes()))?;
    Ok(())
}

fn pfadd(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let meta = string_meta(w, key)?;
    let (mut h, mut updated) = match &meta {
        None => (Hll::new(), true),
        Some(m) => (parse(m)?, false),
    };
    for element in &argv[2..] {
        updated |= h.add(element).map_err(hll_error)?;
    }
    if updated {
        save(w, key, meta, h)?;
        w.notify('$', "pfadd", key);
    }
    Ok(Reply::Integer(updated as i64))
}

/// The registers of every live key in `keys` merged by maximum (missing keys count as empty),
/// and whether any of them is dense.
fn merged(r: &dyn KeyRead, keys: &[Bytes]) -> Result<(Box<[u8; hll::REGISTERS]>, bool), CmdError> {
    let mut max = Box::new([0u8; hll::REGISTERS]);
    let mut dense = false;
    for key in keys {
        let Some(meta) = r.meta(key)? else { continue };
        let h = parse(&meta)?;
        dense |= h.is_dense();
        h.merge_into(&mut max).map_err(|_| corrupt())?;
    }
    Ok((max, dense))
}

fn pfcount(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 2 {
        let (max, _) = merged(w, &argv[1..])?;
        return Ok(Reply::Integer(hll::count_registers(&max) as i64));
    }
    let key = &argv[1];
    let Some(meta) = string_meta(w, key)? else {
        return Ok(Reply::Integer(0));
    };
    let mut h = parse(&meta)?;
    if let Some(card) = h.cached() {
        return Ok(Reply::Integer(card as i64));
    }
    let card = h.count().map_err(hll_error)?;
    h.set_cached(card);
    save(w, key, Some(meta), h)?;
    Ok(Reply::Integer(card as i64))
}

fn pfmerge(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let (max, dense) = merged(w, &argv[1..])?;
    let key = &argv[1];
    let meta = string_meta(w, key)?;
    let mut h = match &meta {
        None => Hll::new(),
        Some(m) => parse(m)?,
    };
    if dense {
        h.to_dense().map_err(|_| corrupt())?;
    }
    for (i, &v) in max.iter().enumerate() {
        if v > 0 {
            h.set(i, v).map_err(hll_error)?;
        }
    }
    h.invalidate_cache();
    save(w, key, meta, h)?;
    w.notify('$', "pfadd", key);
    Ok(Reply::ok())
}

fn pfdebug(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let (sub, key) = (&argv[1], &argv[2]);
    let Some(meta) = string_meta(w, key)? else {
        return Ok(Reply::error("ERR The specified key does not exist"));
    };
    let mut h = parse(&meta)?;
    if is(sub, "getreg") {
        if h.to_dense().map_err(|_| corrupt())? {
            save(w, key, Some(meta), h.clone())?;
        }
        let regs = h.registers().map_err(hll_error)?;
        Ok(Reply::array(
            regs.into_iter().map(|r| Reply::Integer(r.into())),
        ))
    } else if is(sub, "decode") {
        if h.is_dense() {
            return Ok(Reply::error("ERR HLL encoding is not sparse"));
        }
        Ok(Reply::status(h.decode_ops().map_err(hll_error)?))
    } else if is(sub, "encoding") {
        Ok(Reply::status(if h.is_dense() { "dense" } else { "sparse" }))
    } else if is(sub, "todense") {
        let converted = h.to_dense().map_err(|_| corrupt())?;
        if converted {
            save(w, key, Some(meta), h)?;
        }
        Ok(Reply::Integer(converted as i64))
    } else {
        Ok(Reply::error(format!(
            "ERR Unknown PFDEBUG subcommand '{}'",
            lossy(sub, 128)
        )))
    }
}

/// Checks the representation against itself: sparse and dense values fed the same elements
/// hold the same registers and counts, and the count of a large set is within the expected
/// error.
fn self_test() -> Reply {
    let mut sparse = Hll::new();
    let mut dense = Hll::new();
    if dense.to_dense().is_err() {
        return Reply::error("ERR TESTFAILED cannot make a dense value");
    }
    for i in 0..10_000u32 {
        let e = i.to_le_bytes();
        if sparse.add(&e) != dense.add(&e) {
            return Reply::error(format!("ERR TESTFAILED sparse and dense differ at {i}"));
        }
    }
    match (sparse.count(), dense.count()) {
        (Ok(a), Ok(b)) if a == b && a.abs_diff(10_000) < 500 => Reply::ok(),
        (a, b) => Reply::error(format!("ERR TESTFAILED counts {a:?} and {b:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_test_passes() {
        assert_eq!(self_test(), Reply::ok());
    }
}
