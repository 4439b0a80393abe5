//! Key expiry: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (NX/XX/GT/LT), TTL, PTTL, EXPIRETIME,
//! PEXPIRETIME, PERSIST, and the leader's active expiry entries.
//!
//! Expiry is absolute unix ms in a key's metadata. Relative times become absolute in `prepare`
//! on the node the client talks to (EXPIRE is proposed as PEXPIREAT, as Redis replicates it);
//! apply decides "already expired" only by the entry's clock (`WriteView::now_ms`). Readers
//! treat a key whose expiry passed by their node's clock as absent (lazy expiry); only the
//! leader removes expired keys, by proposing `expire-reap` entries (`crate::expiry`), so every
//! node reclaims the same keys.

use bytes::Bytes;

use super::{CmdResult, Kind, Spec, is, not_an_integer, parse_i64};
use crate::kv::{ApplyCtx, KeyRead, WriteView, wall_clock_ms};
use crate::resp::Reply;

/// The unit and base of a time argument.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TimeArg {
    /// Seconds from now.
    Ex,
    /// Milliseconds from now.
    Px,
    /// Unix seconds.
    ExAt,
    /// Unix milliseconds.
    PxAt,
}

impl TimeArg {
    pub fn parse(word: &[u8]) -> Option<TimeArg> {
        Some(match () {
            _ if is(word, "ex") => TimeArg::Ex,
            _ if is(word, "px") => TimeArg::Px,
            _ if is(word, "exat") => TimeArg::ExAt,
            _ if is(word, "pxat") => TimeArg::PxAt,
            _ => return None,
        })
    }

    fn seconds(self) -> bool {
        matches!(self, TimeArg::Ex | TimeArg::ExAt)
    }

    fn relative(self) -> bool {
        matches!(self, TimeArg::Ex | TimeArg::Px)
    }
}

/// What a SET does to a key's expiry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expiry {
    /// None (SET without options clears it).
    None,
    /// KEEPTTL.
    Keep,
    At(i64),
}

pub fn invalid_expire_time(cmd: &str) -> Reply {
    Reply::error(format!("ERR invalid expire time in '{cmd}' command"))
}

/// The absolute expiry of SET/SETEX/GETEX's time argument, as Redis checks it: an integer,
/// positive, and not overflowing once made absolute.
pub fn set_expiry(value: &[u8], unit: TimeArg, now_ms: i64, cmd: &str) -> Result<i64, Reply> {
    let n = parse_i64(value).ok_or_else(not_an_integer)?;
    if n <= 0 {
        return Err(invalid_expire_time(cmd));
    }
    let ms = if unit.seconds() {
        n.checked_mul(1000)
            .ok_or_else(|| invalid_expire_time(cmd))?
    } else {
        n
    };
    let at = if unit.relative() {
        ms.checked_add(now_ms)
            .ok_or_else(|| invalid_expire_time(cmd))?
    } else {
        ms
    };
    if at <= 0 {
        return Err(invalid_expire_time(cmd));
    }
    Ok(at)
}

/// EXPIRE's conditions.
#[derive(Default, Clone, Copy)]
struct Conditions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_conditions(args: &[Bytes]) -> Result<Conditions, Reply> {
    let mut c = Conditions::default();
    for a in args {
        match () {
            _ if is(a, "nx") => c.nx = true,
            _ if is(a, "xx") => c.xx = true,
            _ if is(a, "gt") => c.gt = true,
            _ if is(a, "lt") => c.lt = true,
            _ => {
                return Err(Reply::error(format!(
                    "ERR Unsupported option {}",
                    super::lossy(a, 128)
                )));
            }
        }
    }
    if c.nx && (c.xx || c.gt || c.lt) {
        return Err(Reply::error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if c.gt && c.lt {
        return Err(Reply::error(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(c)
}

/// EXPIRE-family time to absolute ms (negative and past times allowed: they delete the key).
fn expire_at(value: &[u8], unit: TimeArg, now_ms: i64, cmd: &str) -> Result<i64, Reply> {
    let n = parse_i64(value).ok_or_else(not_an_integer)?;
    let ms = if unit.seconds() {
        n.checked_mul(1000)
            .ok_or_else(|| invalid_expire_time(cmd))?
    } else {
        n
    };
    if unit.relative() {
        ms.checked_add(now_ms)
            .ok_or_else(|| invalid_expire_time(cmd))
    } else {
        Ok(ms)
    }
}

macro_rules! expire_command {
    ($const:ident, $name:literal, $unit:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: -3,
            kind: Kind::Write {
                prepare: |argv| prepare_expire(argv, $unit, $name),
                apply: |w, c, argv| apply_expire(w, c, argv, $unit, $name),
            },
            flags: &["fast"],
            keys: (1, 1, 1),
        };
    };
}

expire_command!(EXPIRE, "expire", TimeArg::Ex);
expire_command!(PEXPIRE, "pexpire", TimeArg::Px);
expire_command!(EXPIREAT, "expireat", TimeArg::ExAt);
expire_command!(PEXPIREAT, "pexpireat", TimeArg::PxAt);

/// Proposed as `PEXPIREAT key ms [conditions]`, as Redis replicates it.
fn prepare_expire(argv: Vec<Bytes>, unit: TimeArg, cmd: &str) -> Result<Vec<Bytes>, Reply> {
    parse_conditions(&argv[3..])?;
    let at = expire_at(&argv[2], unit, wall_clock_ms(), cmd)?;
    let mut out = vec![
        Bytes::from_static(b"PEXPIREAT"),
        argv[1].clone(),
        Bytes::from(at.to_string()),
    ];
    out.extend_from_slice(&argv[3..]);
    Ok(out)
}

/// 1 if the expiry was set (or the key deleted, the time having passed), 0 if the key is
/// absent or a condition failed. A key without expiry counts as expiring never for GT and LT.
fn apply_expire(
    w: &mut WriteView,
    _: &ApplyCtx,
    argv: &[Bytes],
    unit: TimeArg,
    cmd: &str,
) -> CmdResult {
    let c = parse_conditions(&argv[3..])?;
    let at = expire_at(&argv[2], unit, w.now_ms(), cmd)?;
    let Some(mut meta) = w.meta(&argv[1])? else {
        return Ok(Reply::Integer(0));
    };
    let current = meta.expire_at;
    let refused = (c.nx && current.is_some())
        || (c.xx && current.is_none())
        || (c.gt && current.is_none_or(|cur| at <= cur))
        || (c.lt && current.is_some_and(|cur| at >= cur));
    if refused {
        return Ok(Reply::Integer(0));
    }
    if at <= w.now_ms() {
        w.delete(&argv[1])?;
        w.notify('g', "del", &argv[1]);
    } else {
        meta.expire_at = Some(at);
        meta.modified = w.index();
        w.put_meta(&argv[1], &meta, current)?;
        w.notify('g', "expire", &argv[1]);
    }
    Ok(Reply::Integer(1))
}

pub const PERSIST: Spec = Spec {
    name: "persist",
    arity: 2,
    kind: Kind::Write {
        prepare: Ok,
        apply: |w, _, argv| {
            let Some(mut meta) = w.meta(&argv[1])? else {
                return Ok(Reply::Integer(0));
            };
            let Some(old) = meta.expire_at.take() else {
                return Ok(Reply::Integer(0));
            };
            meta.modified = w.index();
            w.put_meta(&argv[1], &meta, Some(old))?;
            w.notify('g', "persist", &argv[1]);
            Ok(Reply::Integer(1))
        },
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

/// Which of the four TTL reads.
#[derive(Clone, Copy)]
enum TtlKind {
    Ttl,
    Pttl,
    ExpireTime,
    PexpireTime,
}

/// -2 for a missing key, -1 for one without expiry, else the time left (TTL rounds to the
/// nearest second, as Redis) or the absolute expiry.
fn ttl(r: &dyn KeyRead, key: &[u8], kind: TtlKind) -> CmdResult {
    let Some(meta) = r.meta(key)? else {
        return Ok(Reply::Integer(-2));
    };
    let Some(at) = meta.expire_at else {
        return Ok(Reply::Integer(-1));
    };
    let left = at.saturating_sub(r.now_ms()).max(0);
    Ok(Reply::Integer(match kind {
        TtlKind::Ttl => left.saturating_add(500) / 1000,
        TtlKind::Pttl => left,
        TtlKind::ExpireTime => at / 1000,
        TtlKind::PexpireTime => at,
    }))
}

macro_rules! ttl_command {
    ($const:ident, $name:literal, $kind:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: 2,
            kind: Kind::Read(|r, argv| ttl(r, &argv[1], $kind)),
            flags: &["fast"],
            keys: (1, 1, 1),
        };
    };
}

ttl_command!(TTL, "ttl", TtlKind::Ttl);
ttl_command!(PTTL, "pttl", TtlKind::Pttl);
ttl_command!(EXPIRETIME, "expiretime", TtlKind::ExpireTime);
ttl_command!(PEXPIRETIME, "pexpiretime", TtlKind::PexpireTime);

/// `expire-reap (db at key)...`: the leader's active expiry (see `crate::expiry`). Internal:
/// in `cmd::INTERNAL`, which only apply looks up, so no client can send it.
pub const REAP: Spec = Spec {
    name: "expire-reap",
    arity: -1,
    kind: Kind::Write {
        prepare: |_| Err(Reply::error("ERR internal command")),
        apply: reap,
    },
    flags: &[],
    keys: (0, 0, 0),
};

/// Builds a reap entry's arguments for index rows `(db, at, key)`.
pub fn reap_argv(rows: &[(u8, i64, Bytes)]) -> Vec<Bytes> {
    let mut argv = Vec::with_capacity(1 + 3 * rows.len());
    argv.push(Bytes::from_static(REAP.name.as_bytes()));
    for (db, at, key) in rows {
        argv.push(Bytes::from(db.to_string()));
        argv.push(Bytes::from(at.to_string()));
        argv.push(key.clone());
    }
    argv
}

/// Replies with the number of keys removed; a malformed triple is skipped (every node alike).
fn reap(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    // Redis counts no change for the keys its expiry removes.
    w.dirty(0);
    let mut removed = 0;
    for t in argv[1..].chunks_exact(3) {
        let (Some(db), Some(at)) = (
            parse_i64(&t[0]).and_then(|d| u8::try_from(d).ok()),
            parse_i64(&t[1]),
        ) else {
            continue;
        };
        if db < crate::kv::encoding::DATABASES && w.reap(db, at, &t[2])? {
            w.notify_in(db, 'x', "expired", &t[2]);
            removed += 1;
        }
    }
    Ok(Reply::Integer(removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_expiry_checks_as_redis() {
        let now = 1_000_000;
        assert_eq!(set_expiry(b"10", TimeArg::Ex, now, "set"), Ok(now + 10_000));
        assert_eq!(set_expiry(b"10", TimeArg::Px, now, "set"), Ok(now + 10));
        assert_eq!(set_expiry(b"10", TimeArg::ExAt, now, "set"), Ok(10_000));
        assert_eq!(set_expiry(b"10", TimeArg::PxAt, now, "set"), Ok(10));
        let invalid = Err(invalid_expire_time("set"));
        assert_eq!(set_expiry(b"0", TimeArg::Ex, now, "set"), invalid);
        assert_eq!(set_expiry(b"-1", TimeArg::Px, now, "set"), invalid);
        assert_eq!(
            set_expiry(b"9223372036854775807", TimeArg::Ex, now, "set"),
            invalid
        );
        assert_eq!(
            set_expiry(b"9223372036854775807", TimeArg::Px, now, "set"),
            invalid
        );
        assert_eq!(
            set_expiry(b"9223372036854775807", TimeArg::PxAt, now, "set"),
            Ok(i64::MAX)
        );
        assert_eq!(
            set_expiry(b"x", TimeArg::Ex, now, "set"),
            Err(not_an_integer())
        );
        assert_eq!(
            set_expiry(b"", TimeArg::Ex, now, "set"),
            Err(not_an_integer())
        );
    }

    #[test]
    fn expire_conditions_as_redis() {
        let args = |w: &[&str]| {
            w.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect::<Vec<_>>()
        };
        assert!(parse_conditions(&args(&["nx"])).is_ok());
        assert!(parse_conditions(&args(&["GT", "xx"])).is_ok());
        assert_eq!(
            parse_conditions(&args(&["nx", "gt"])).err(),
            Some(Reply::error(
                "ERR NX and XX, GT or LT options at the same time are not compatible"
            ))
        );
        assert_eq!(
            parse_conditions(&args(&["gt", "lt"])).err(),
            Some(Reply::error(
                "ERR GT and LT options at the same time are not compatible"
            ))
        );
        assert_eq!(
            parse_conditions(&args(&["xx", "foo"])).err(),
            Some(Reply::error("ERR Unsupported option foo"))
        );
        assert_eq!(expire_at(b"-5", TimeArg::Ex, 100, "expire"), Ok(-4900));
        assert_eq!(
            expire_at(b"9223372036854775807", TimeArg::Ex, 0, "expire"),
            Err(invalid_expire_time("expire"))
        );
        assert_eq!(
            expire_at(b"9223372036854775807", TimeArg::Px, 1, "pexpire"),
            Err(invalid_expire_time("pexpire"))
        );
    }
}
