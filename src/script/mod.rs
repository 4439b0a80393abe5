//! Lua scripting as redis-server 7.0 has it: the script cache, shebang flags, and the engine
//! that runs a script against a [`Host`] (the command table seen from inside a script).
//!
//! - `engine`: one Lua 5.1 state per thread (the apply thread's runs writes on every node, a
//!   connection thread's runs read-only scripts locally), sandboxed as Redis 7 sandboxes it
//!   (read-only globals and libraries), with the `redis` API, and an instruction budget that
//!   stops a runaway script at the same instruction on every node.
//! - `convert`: Redis replies to Lua values and back, in RESP2 and RESP3 (`redis.setresp`).
//! - `bit`, `cjson`, `cmsgpack`, `struct_lib`: the libraries Redis ships, in Rust, with
//!   Redis's exact output.
//!
//! **The cache is node memory, not replicated state.** Redis keeps scripts only in memory too
//! (a restart forgets them, replicas never see EVALSHA). Every node learns a script when an
//! entry carrying it is applied (a writing EVAL, SCRIPT LOAD), so EVALSHA works through any
//! node after those; SCRIPT FLUSH is an entry too, so every node forgets alike. Keeping it out
//! of the keyspace keeps snapshots, DBSIZE and the digest free of scripts, and costs nothing
//! per EVAL but a hash-map insert. What the cache holds never changes what apply does: an
//! EVALSHA is turned into its body before it is proposed.

mod bit;
mod cjson;
mod cmsgpack;
mod convert;
mod engine;
mod struct_lib;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use sha1::{Digest, Sha1};

pub use engine::{
    FunctionInfo, Host, Outcome, Stop, kill, load_library, lua_memory, run, run_function,
    running_since,
};

/// Units of work a script may spend (about one per Lua VM instruction; a command called from
/// the script costs [`CALL_COST`]). Redis stops nothing by itself; kvd must, because a script
/// that writes runs inside apply on every node, and a clock would stop it at different points.
/// A billion is about one to a few seconds of Lua: far past what real scripts use (Redis's
/// own slow-script warning comes at 5 s), short enough that a runaway holding apply (or a
/// connection's view) is gone within seconds.
pub const BUDGET: u64 = 1_000_000_000;
/// What one `redis.call` costs against [`BUDGET`].
pub const CALL_COST: u64 = 1_000;

/// A script's shebang flags (`#!lua flags=...`), as Redis 7.0 reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// No shebang: Redis's backwards-compatible mode.
    pub compat: bool,
    pub no_writes: bool,
    /// `allow-oom`: may write above `maxmemory` (see `cmd::maxmemory`).
    pub allow_oom: bool,
}

/// A script known to this node.
#[derive(Clone, Debug)]
pub struct Script {
    /// Lower-case hex SHA-1 of the body.
    pub sha: String,
    pub body: Bytes,
    pub flags: Flags,
}

impl Script {
    /// Reads the shebang; the error is Redis's text (without the `ERR ` prefix).
    pub fn new(body: Bytes) -> Result<Script, String> {
        let flags = shebang_flags(&body)?;
        Ok(Script {
            sha: sha1hex(&body),
            body,
            flags,
        })
    }

    /// The code Lua compiles: the shebang line is blanked but its line feed kept, so line
    /// numbers stay the user's.
    pub fn code(&self) -> &[u8] {
        if self.flags.compat {
            return &self.body;
        }
        let end = self
            .body
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(self.body.len());
        &self.body[end..]
    }
}

/// Lower-case hex SHA-1, as Redis names scripts.
pub fn sha1hex(data: &[u8]) -> String {
    let digest = Sha1::digest(data);
    let mut out = String::with_capacity(40);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn shebang_flags(body: &[u8]) -> Result<Flags, String> {
    if !body.starts_with(b"#!") {
        return Ok(Flags {
            compat: true,
            ..Flags::default()
        });
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split_ascii_whitespace();
    let Some(engine) = parts.next() else {
        return Err("Invalid engine in script shebang".into());
    };
    if engine != "#!lua" {
        return Err(format!("Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = Flags::default();
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("Unknown lua shebang option: {part}"));
        };
        for flag in list.split(',') {
            match flag {
                "no-writes" => flags.no_writes = true,
                "allow-oom" => flags.allow_oom = true,
                "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                // `flags=` alone declares no flags.
                "" if list.is_empty() => {}
                other => return Err(format!("Unexpected flag in script shebang: {other}")),
            }
        }
    }
    Ok(flags)
}

/// Where `redis.log` writes: the node's logger and its `loglevel` as Redis's verbosity
/// (debug 0, verbose 1, notice 2, warning 3), read at each call so CONFIG SET applies at once.
type Verbosity = Box<dyn Fn() -> u8 + Send + Sync>;
static LOG: OnceLock<(slog::Logger, Verbosity)> = OnceLock::new();

/// Sets where `redis.log` writes (once per process: the node's server does it at start).
pub fn set_log(logger: slog::Logger, verbosity: impl Fn() -> u8 + Send + Sync + 'static) {
    let _ = LOG.set((logger, Box::new(verbosity)));
}

/// Redis's verbosity of a `loglevel` value.
pub fn verbosity_of(loglevel: &str) -> u8 {
    match loglevel {
        "debug" => 0,
        "verbose" => 1,
        "warning" => 3,
        _ => 2,
    }
}

/// `redis.log(level, message)`: kept if `level` is at least the node's `loglevel`, as Redis
/// filters it, then written at the matching slog level (debug and verbose as debug, notice as
/// info, warning as warning), where the process's own `--log-level` applies too.
pub(crate) fn log(level: u8, message: &str) {
    let Some((logger, verbosity)) = LOG.get() else {
        return;
    };
    if level < verbosity() {
        return;
    }
    match level {
        0 | 1 => slog::debug!(logger, "{}", message; "from" => "script"),
        2 => slog::info!(logger, "{}", message; "from" => "script"),
        _ => slog::warn!(logger, "{}", message; "from" => "script"),
    }
}

/// The node's script cache (see the module docs).
struct Cache {
    scripts: HashMap<String, Script>,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| {
        Mutex::new(Cache {
            scripts: HashMap::new(),
        })
    })
}

/// Bumped by SCRIPT FLUSH: every thread's Lua state is rebuilt when it sees a new value (Redis
/// resets its Lua VM on a flush).
static EPOCH: AtomicU64 = AtomicU64::new(0);

pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Remembers a script (a no-op if already known).
pub fn remember(script: &Script) {
    let mut c = cache().lock().unwrap_or_else(PoisonError::into_inner);
    if !c.scripts.contains_key(&script.sha) {
        c.scripts.insert(script.sha.clone(), script.clone());
    }
}

/// The script with this SHA (any case), if this node knows it.
pub fn lookup(sha: &[u8]) -> Option<Script> {
    if sha.len() != 40 {
        return None;
    }
    let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
    let c = cache().lock().unwrap_or_else(PoisonError::into_inner);
    c.scripts.get(&sha).cloned()
}

/// True if the script with this exact (lower-case) SHA is cached, as SCRIPT EXISTS compares.
pub fn exists(sha: &[u8]) -> bool {
    let c = cache().lock().unwrap_or_else(PoisonError::into_inner);
    std::str::from_utf8(sha).is_ok_and(|s| c.scripts.contains_key(s))
}

/// Number of cached scripts (INFO's `number_of_cached_scripts`).
pub fn cached_count() -> usize {
    cache()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .scripts
        .len()
}

/// SCRIPT FLUSH: forgets every script and resets every thread's Lua state.
pub fn flush() {
    cache()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .scripts
        .clear();
    EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// Compiles `script` in this thread's Lua state; the error is Redis's text, e.g. `Error
/// compiling script (new function): user_script:1: ...` (without `ERR `).
pub fn compile(script: &Script) -> Result<(), String> {
    engine::compile(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_is_redis_s() {
        assert_eq!(sha1hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            sha1hex(b"Pizza & Mandolino"),
            "74822d82031af7493c20eefa13bd07ec4fada82f"
        );
    }

    #[test]
    fn shebangs_as_redis_reads_them() {
        let f = |s: &str| shebang_flags(s.as_bytes());
        assert_eq!(
            f("return 1"),
            Ok(Flags {
                compat: true,
                ..Flags::default()
            })
        );
        assert_eq!(f("#!lua\nreturn 1"), Ok(Flags::default()));
        let both = f("#!lua flags=no-writes,allow-oom\n").unwrap();
        assert!(both.no_writes && both.allow_oom);
        assert_eq!(f("#!lua flags=\n"), Ok(Flags::default()));
        assert_eq!(
            f("#!not-lua\n"),
            Err("Unexpected engine in script shebang: #!not-lua".into())
        );
        assert_eq!(
            f("#!lua badger=data\n"),
            Err("Unknown lua shebang option: badger=data".into())
        );
        assert_eq!(
            f("#!lua flags=allow-oom,what?\n"),
            Err("Unexpected flag in script shebang: what?".into())
        );
        assert_eq!(f("#!lua"), Err("Invalid script shebang".into()));
    }
}
