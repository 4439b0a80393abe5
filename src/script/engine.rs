//! The Lua engine: one sandboxed Lua 5.1 state per thread, and [`run`], which runs a script
//! against a [`Host`].
//!
//! **Sandbox.** Redis 7 patches Lua with read-only tables; kvd gets the same behaviour from
//! stock Lua with proxies: the globals and every library table a script can reach are empty
//! tables whose metatable reads through to the real table and refuses writes ("Attempt to
//! modify a readonly table"), reading a missing global fails ("Script attempted to access
//! nonexistent global variable"), and the functions that would bypass metatables (`rawset`,
//! `setmetatable`, `table.insert`, `setfenv(0)`, binary `loadstring`) refuse protected tables.
//! So nothing a script does survives it, and a state that ran other scripts (the apply
//! thread's, after a restart fewer) behaves exactly like a fresh one.
//!
//! **Budget.** A count hook charges [`super::BUDGET`] every 1000 instructions and each
//! `redis.call` charges [`super::CALL_COST`]: both depend only on the script and its data, so a
//! runaway script stops at the same point on every node. Once a run must stop (budget spent,
//! SCRIPT KILL, a write in a probing run, a storage error) the hook fires at every instruction,
//! so `pcall` cannot hold the error back, as Redis does for SCRIPT KILL.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use bytes::Bytes;
use std::ffi::c_int;

use mlua::debug::Debug;
use mlua::ffi;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use super::convert::{error_table, lua_to_reply, reply_to_lua};
use super::{BUDGET, CALL_COST, Script};
use crate::resp::Reply;
use crate::resp::reply::format_double;
use crate::store::StoreError;

/// What a script runs its commands against: the apply's `WriteView` on every node, or a
/// connection's read view.
pub trait Host {
    /// One `redis.call`: the command's reply (errors included), or why the run must stop.
    fn call(&mut self, argv: Vec<Bytes>) -> Result<Reply, Stop>;
    /// Seed of `math.random` for this run (from the entry inside apply).
    fn seed(&self) -> u64;
    /// True if SCRIPT KILL may stop this run (a connection's read-only run).
    fn killable(&self) -> bool {
        false
    }
    /// A killable run's yield point: before each command, and between instructions (every
    /// [`HOOK_EVERY`]) while a writer waits for the memtable (`kv::writer_waiting_anywhere`).
    /// A connection's run lets the writer in here.
    fn yield_point(&mut self) {}
}

/// Instructions between two calls of the count hook, which charges them to the budget (so
/// changing it moves where a runaway stops) and is a killable run's yield point: a writer
/// waits at most this long (microseconds of Lua) for a script running on a connection.
const HOOK_EVERY: u32 = 1000;

/// Why a host stops a run.
#[derive(Debug)]
pub enum Stop {
    /// A probing (read-first) run reached a write: the script must be proposed instead.
    NeedsWrite,
    Store(StoreError),
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    Reply(Reply),
    NeedsWrite,
    Store(StoreError),
}

/// SCRIPT KILL asked the running killable script to stop.
static KILL: AtomicBool = AtomicBool::new(false);
/// Killable runs in progress on this node.
static KILLABLE_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// When the killable runs in progress started (unix ms; 0: none running).
static KILLABLE_SINCE: AtomicI64 = AtomicI64::new(0);

/// Since when (unix ms) a killable script has been running on this node, if one is.
pub fn running_since() -> Option<i64> {
    let since = KILLABLE_SINCE.load(Ordering::Acquire);
    (since != 0).then_some(since)
}

/// Heap of the Lua state that ran the last script, for INFO's `used_memory_lua`.
static LUA_MEMORY: AtomicUsize = AtomicUsize::new(0);

/// Bytes of Lua heap in use after the last script this node ran.
pub fn lua_memory() -> usize {
    LUA_MEMORY.load(Ordering::Relaxed)
}

/// SCRIPT KILL: true if a killable script was running (it stops at its next instructions).
pub fn kill() -> bool {
    if KILLABLE_RUNNING.load(Ordering::Acquire) == 0 {
        return false;
    }
    KILL.store(true, Ordering::Release);
    true
}

enum Halt {
    Budget,
    Killed,
    Host(Stop),
}

/// Per-run state, in the Lua state's app data.
struct RunState {
    resp: u8,
    rng: u64,
    used: u64,
    killable: bool,
    /// A library's top level (FUNCTION LOAD): a budget overrun is Redis's load timeout.
    loading: bool,
    halt: Option<Halt>,
}

struct Engine {
    lua: Lua,
    /// The real globals (scripts see a proxy of it).
    globals: Table,
    /// Compiled scripts by SHA.
    compiled: Table,
    /// Loaded function libraries by the SHA of their code: name -> {callback, no_writes}.
    libraries: Table,
    library_env: Function,
    proxy: Table,
    xpcall: Function,
    handler: Function,
    epoch: u64,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    /// Heap size after this thread's last full collection.
    static COLLECTED_AT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Largest Lua heap of one state: a script allocating past it fails with "not enough memory"
/// instead of taking the node down.
const MEMORY_LIMIT: usize = 1 << 30;

fn with_engine<R>(f: impl FnOnce(&Engine) -> R) -> Result<R, String> {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let epoch = super::epoch();
        if slot.as_ref().is_none_or(|e| e.epoch != epoch) {
            *slot = Some(Engine::new(epoch).map_err(|e| format!("Lua setup failed: {e}"))?);
        }
        match slot.as_ref() {
            Some(engine) => Ok(f(engine)),
            None => Err("Lua setup failed".into()),
        }
    })
}

/// Compiles a script in this thread's state (see `super::compile`).
pub fn compile(script: &Script) -> Result<(), String> {
    with_engine(|e| e.function(script).map(|_| ()))?
}

/// A function a library registers, as FUNCTION LIST shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    /// As registered (FCALL finds it whatever the case).
    pub name: String,
    pub description: Option<String>,
    /// Its flags, in the order Redis lists them.
    pub flags: Vec<String>,
    pub no_writes: bool,
}

/// The functions a library registers, by name, loading it in this thread's state; the error
/// is Redis's text (without the first `ERR `).
pub fn load_library(code: &[u8]) -> Result<Vec<FunctionInfo>, String> {
    with_engine(|e| {
        let lib = e.library(code)?;
        let mut out = Vec::new();
        for pair in lib.pairs::<String, Table>() {
            let (_, f) = pair.map_err(|e| e.to_string())?;
            let flags: Vec<String> = f
                .raw_get::<Table>("flags")
                .map(|t| {
                    t.sequence_values::<String>()
                        .filter_map(Result::ok)
                        .collect()
                })
                .unwrap_or_default();
            out.push(FunctionInfo {
                name: f.raw_get::<String>("name").map_err(|e| e.to_string())?,
                description: f.raw_get::<Option<String>>("description").ok().flatten(),
                no_writes: f.raw_get::<bool>("no_writes").unwrap_or(false),
                flags,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    })?
}

/// Runs function `name` of the library `code` with `keys` and `args` against `host`.
pub fn run_function(
    code: &[u8],
    name: &str,
    keys: &[Bytes],
    args: &[Bytes],
    host: &mut dyn Host,
) -> Outcome {
    let killable = host.killable();
    if killable && KILLABLE_RUNNING.fetch_add(1, Ordering::AcqRel) == 0 {
        KILLABLE_SINCE.store(crate::kv::wall_clock_ms().max(1), Ordering::Release);
    }
    let outcome = with_engine(|e| match e.library(code) {
        Err(msg) => Outcome::Reply(Reply::error(format!("ERR {msg}"))),
        Ok(lib) => match lib.raw_get::<Value>(name.to_ascii_lowercase()) {
            Ok(Value::Table(f)) => match f.raw_get::<Function>("callback") {
                Ok(callback) => e.start(callback, keys, args, host, name, true),
                Err(_) => Outcome::Reply(Reply::error("ERR Function not found")),
            },
            _ => Outcome::Reply(Reply::error("ERR Function not found")),
        },
    })
    .unwrap_or_else(|e| Outcome::Reply(Reply::error(format!("ERR {e}"))));
    if killable && KILLABLE_RUNNING.fetch_sub(1, Ordering::AcqRel) == 1 {
        KILLABLE_SINCE.store(0, Ordering::Release);
        KILL.store(false, Ordering::Release);
    }
    outcome
}

/// Runs `script` with `keys` and `args` against `host`.
pub fn run(script: &Script, keys: &[Bytes], args: &[Bytes], host: &mut dyn Host) -> Outcome {
    let killable = host.killable();
    if killable && KILLABLE_RUNNING.fetch_add(1, Ordering::AcqRel) == 0 {
        KILLABLE_SINCE.store(crate::kv::wall_clock_ms().max(1), Ordering::Release);
    }
    let outcome = with_engine(|e| e.run(script, keys, args, host))
        .unwrap_or_else(|e| Outcome::Reply(Reply::error(format!("ERR {e}"))));
    if killable && KILLABLE_RUNNING.fetch_sub(1, Ordering::AcqRel) == 1 {
        KILLABLE_SINCE.store(0, Ordering::Release);
        KILL.store(false, Ordering::Release);
    }
    outcome
}

/// The sandbox, run once per state (see the module docs). Its chunk name starts with `=`,
/// which the error handler skips when it looks for the user's line.
const SANDBOX: &str = include_str!("sandbox.lua");

fn hook(lua: &Lua, _: &Debug) -> mlua::Result<VmState> {
    let (must_stop, killable) = {
        let Some(mut st) = lua.app_data_mut::<RunState>() else {
            return Ok(VmState::Continue);
        };
        if st.halt.is_none() {
            st.used += u64::from(HOOK_EVERY);
            if st.used > BUDGET {
                st.halt = Some(Halt::Budget);
            } else if st.killable && KILL.load(Ordering::Acquire) {
                st.halt = Some(Halt::Killed);
            }
        }
        (st.halt.is_some(), st.killable)
    };
    if must_stop {
        let _ = lua.set_hook(HookTriggers::new().every_nth_instruction(1), hook);
        return Err(mlua::Error::runtime("script stopped"));
    }
    if killable
        && crate::kv::writer_waiting_anywhere()
        && let Ok(Value::Function(f)) = lua.named_registry_value::<Value>(YIELD_KEY)
    {
        f.call::<()>(())?;
    }
    Ok(VmState::Continue)
}

/// Charges `units` against the budget; an error once the run must stop.
pub(super) fn charge(lua: &Lua, units: u64) -> mlua::Result<()> {
    let stop = {
        let Some(mut st) = lua.app_data_mut::<RunState>() else {
            return Ok(());
        };
        if st.halt.is_none() {
            st.used = st.used.saturating_add(units);
            if st.used > BUDGET {
                st.halt = Some(Halt::Budget);
            }
        }
        st.halt.is_some()
    };
    if stop {
        let _ = lua.set_hook(HookTriggers::new().every_nth_instruction(1), hook);
        return Err(mlua::Error::runtime("script stopped"));
    }
    Ok(())
}

/// The name [`Engine::start`] is given for a library's top level.
const LOADING: &str = "";

/// Where the run's `redis.call` implementation sits in the Lua registry.
const CALL_KEY: &str = "kvd.call";
/// Where a killable run's yield point (`Host::yield_point`) sits in the Lua registry.
const YIELD_KEY: &str = "kvd.yield";

/// `redis.call` as a C function: a C function keeps the script's frame even when the script
/// tail-calls it (`return redis.call(...)`), so an error it raises is reported at the script's
/// line, as on redis-server. See [`call_packed`].
unsafe extern "C-unwind" fn redis_call(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as `call_packed`.
    unsafe { call_packed(state, true) }
}

/// `redis.pcall`: as `redis.call`, the error reply returned instead of raised.
unsafe extern "C-unwind" fn redis_pcall(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as `call_packed`.
    unsafe { call_packed(state, false) }
}

/// Calls the run's implementation (which answers the reply and whether it is an error) with
/// the arguments packed into one table and their count: a script may pass thousands
/// (`unpack` of a big table), more than a Rust callback may take on the Lua stack. Raises the
/// error table if `raise`.
///
/// # Safety
/// Called by Lua with a valid state; the stack holds the arguments, and the registry value is
/// the run's Rust function (or nil outside a run, which Lua reports as an error). No Rust value
/// with a destructor lives in this frame when Lua unwinds it.
unsafe fn call_packed(state: *mut ffi::lua_State, raise: bool) -> c_int {
    unsafe {
        let n = ffi::lua_gettop(state);
        ffi::lua_createtable(state, n, 0);
        for i in 1..=n {
            ffi::lua_pushvalue(state, i);
            ffi::lua_rawseti(state, -2, ffi::lua_Integer::from(i));
        }
        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, c"kvd.call".as_ptr());
        ffi::lua_insert(state, -2);
        ffi::lua_pushinteger(state, n as ffi::lua_Integer);
        ffi::lua_call(state, 2, 2);
        if raise && ffi::lua_toboolean(state, -1) != 0 {
            ffi::lua_pop(state, 1);
            ffi::lua_error(state);
        }
        ffi::lua_pop(state, 1);
        1
    }
}

/// A library function written in Rust as a script calls it: a C closure around `f`, which
/// answers `true, results...` or `false, message [, no_position]`. The closure returns the
/// results or raises the message with the caller's position (`luaL_where(L, 1)`), exactly as
/// a C library's `luaL_error` does, even when the script tail-calls it.
fn library_function(lua: &Lua, f: Function) -> mlua::Result<Function> {
    // SAFETY: the closure is pushed over its one upvalue (the argument `exec_raw` pushed) and
    // `lib_trampoline` follows the Lua C API.
    unsafe {
        lua.exec_raw(f, |state| {
            ffi::lua_pushcclosure(state, lib_trampoline, 1);
        })
    }
}

/// A C closure that calls its upvalue with its arguments and returns all it returns (see
/// `c_wrap` in the sandbox).
unsafe extern "C-unwind" fn passthrough(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state and the wrapped function as upvalue 1.
    unsafe {
        let n = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_insert(state, 1);
        ffi::lua_call(state, n, ffi::LUA_MULTRET);
        ffi::lua_gettop(state)
    }
}

/// See [`library_function`].
unsafe extern "C-unwind" fn lib_trampoline(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state and the wrapped function as upvalue 1; only
    // Lua values are on the stack when Lua unwinds this frame.
    unsafe {
        let n = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_insert(state, 1);
        ffi::lua_call(state, n, ffi::LUA_MULTRET);
        let results = ffi::lua_gettop(state);
        if results >= 1 && ffi::lua_toboolean(state, 1) == 0 {
            let plain = results >= 3 && ffi::lua_toboolean(state, 3) != 0;
            ffi::lua_settop(state, 2);
            if !plain {
                ffi::luaL_where(state, 1);
                ffi::lua_insert(state, -2);
                ffi::lua_concat(state, 2);
            }
            ffi::lua_error(state);
        }
        if results == 0 {
            return 0;
        }
        ffi::lua_remove(state, 1);
        results - 1
    }
}

fn budget_message() -> String {
    format!(
        "ERR Script exceeded kvd's execution budget of {BUDGET} instructions \
         (runaway scripts are stopped at the same point on every node)"
    )
}

/// The message handler: Redis's `__redis__err__handler` (an error table with the user's
/// source and line), skipping C functions and the sandbox's own frames.
fn handler(lua: &Lua, err: Value) -> mlua::Result<Value> {
    let halted = lua.app_data_ref::<RunState>().map(|st| match &st.halt {
        Some(Halt::Budget) if st.loading => Some(Some("ERR FUNCTION LOAD timeout".into())),
        Some(Halt::Budget) => Some(Some(budget_message())),
        Some(Halt::Killed) => Some(Some("ERR Script killed by user with SCRIPT KILL...".into())),
        Some(Halt::Host(_)) => Some(None),
        None => None,
    });
    let table = match (halted.flatten(), err) {
        (Some(None), err) => return Ok(err),
        (Some(Some(msg)), _) => {
            let t = lua.create_table()?;
            t.raw_set("err", msg)?;
            t
        }
        (None, Value::Table(t)) => t,
        (None, other) => {
            let t = lua.create_table()?;
            t.raw_set("err", format!("ERR {}", describe(lua, &other)))?;
            t
        }
    };
    for level in 1..200 {
        let Some((what, source, line)) = lua.inspect_stack(level, |d| {
            let s = d.source();
            (s.what, s.source.map(|c| c.into_owned()), d.current_line())
        }) else {
            break;
        };
        let Some(source) = source else { continue };
        if what == "C" || source.starts_with('=') {
            continue;
        }
        table.raw_set("source", source)?;
        if let Some(line) = line {
            table.raw_set("line", line)?;
        }
        break;
    }
    Ok(Value::Table(table))
}

/// `tostring` of an error value that is not a table.
fn describe(lua: &Lua, v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
        Value::Integer(_) | Value::Number(_) => lua
            .coerce_string(v.clone())
            .ok()
            .flatten()
            .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned())
            .unwrap_or_default(),
        Value::Error(e) => e.to_string(),
        other => other.type_name().to_string(),
    }
}

/// A command argument as Redis takes it from Lua: strings as they are, numbers as `%.17g`.
fn argument(v: &Value) -> Option<Bytes> {
    match v {
        Value::String(s) => Some(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Integer(n) => Some(Bytes::from(format_double(*n as f64))),
        Value::Number(n) => Some(Bytes::from(format_double(*n))),
        _ => None,
    }
}

impl Engine {
    fn new(epoch: u64) -> mlua::Result<Engine> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        lua.set_memory_limit(MEMORY_LIMIT)?;
        let globals = lua.globals();
        let raw = lua.create_table()?;
        raw.raw_set(
            "sha1hex",
            lua.create_function(|_, s: mlua::LuaString| Ok(super::sha1hex(&s.as_bytes())))?,
        )?;
        raw.raw_set(
            "setresp",
            lua.create_function(|lua, n: u8| {
                if let Some(mut st) = lua.app_data_mut::<RunState>() {
                    st.resp = n;
                }
                Ok(())
            })?,
        )?;
        raw.raw_set(
            "rand",
            lua.create_function(|lua, ()| {
                let mut st = lua
                    .app_data_mut::<RunState>()
                    .ok_or_else(|| mlua::Error::runtime("no script running"))?;
                let (next, r) = lrand48(st.rng);
                st.rng = next;
                Ok(f64::from(r % i32::MAX as u32) / f64::from(i32::MAX as u32))
            })?,
        )?;
        raw.raw_set(
            "srand",
            lua.create_function(|lua, seed: f64| {
                if let Some(mut st) = lua.app_data_mut::<RunState>() {
                    st.rng = srand48(seed as i64 as i32);
                }
                Ok(())
            })?,
        )?;
        raw.raw_set(
            "log",
            lua.create_function(|_, (level, msg): (i64, mlua::LuaString)| {
                super::log(level.clamp(0, 3) as u8, &msg.to_string_lossy());
                Ok(())
            })?,
        )?;
        raw.raw_set(
            "known_command",
            lua.create_function(|_, name: mlua::LuaString| {
                Ok(crate::cmd::lookup(&name.as_bytes()).is_some())
            })?,
        )?;
        raw.raw_set(
            "acl_check",
            lua.create_function(|_, args: mlua::Variadic<mlua::LuaString>| {
                let argv: Vec<Bytes> = args
                    .iter()
                    .map(|a| Bytes::copy_from_slice(&a.as_bytes()))
                    .collect();
                Ok(crate::cmd::acl::script_allows(&argv))
            })?,
        )?;
        raw.raw_set(
            "charge",
            lua.create_function(|lua, n: f64| charge(lua, n.max(0.0) as u64))?,
        )?;
        // SAFETY: `redis_call` follows the Lua C API (see its comment).
        raw.raw_set("call_c", unsafe { lua.create_c_function(redis_call)? })?;
        // SAFETY: `redis_pcall` follows the Lua C API (see `call_packed`).
        raw.raw_set("pcall_c", unsafe { lua.create_c_function(redis_pcall)? })?;
        raw.raw_set(
            "c_wrap",
            lua.create_function(|lua, f: Function| {
                // SAFETY: as in `library_function`; `passthrough` follows the Lua C API.
                unsafe {
                    lua.exec_raw::<Function>(f, |state| {
                        ffi::lua_pushcclosure(state, passthrough, 1);
                    })
                }
            })?,
        )?;
        super::bit::register(&lua, &raw)?;
        super::cjson::register(&lua, &raw)?;
        super::cmsgpack::register(&lua, &raw)?;
        super::struct_lib::register(&lua, &raw)?;
        for name in ["bit", "cjson", "cmsgpack", "struct"] {
            let lib: Table = raw.raw_get(name)?;
            for pair in lib.clone().pairs::<Value, Value>() {
                if let (k, Value::Function(f)) = pair? {
                    lib.raw_set(k, library_function(&lua, f)?)?;
                }
            }
        }
        let proxy: Table = lua
            .load(SANDBOX)
            .set_name("=kvd")
            .call((globals.clone(), raw.clone()))?;
        lua.set_globals(proxy.clone())?;
        let xpcall: Function = globals.raw_get("xpcall")?;
        let library_env: Function = raw.raw_get("library_env")?;
        let handler = lua.create_function(handler)?;
        lua.set_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), hook)?;
        // The setup's garbage, so a fresh state starts as small as it can.
        lua.gc_collect()?;
        lua.gc_collect()?;
        COLLECTED_AT.with(|c| c.set(lua.used_memory()));
        Ok(Engine {
            compiled: lua.create_table()?,
            libraries: lua.create_table()?,
            library_env,
            lua,
            globals,
            proxy,
            xpcall,
            handler,
            epoch,
        })
    }

    /// The compiled function of `script`, compiling it on first use.
    fn function(&self, script: &Script) -> Result<Function, String> {
        if let Ok(Value::Function(f)) = self.compiled.raw_get::<Value>(script.sha.as_str()) {
            return Ok(f);
        }
        let f = self
            .lua
            .load(script.code())
            .set_name("@user_script")
            .into_function()
            .map_err(|e| {
                let msg = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                format!("Error compiling script (new function): {msg}")
            })?;
        self.compiled
            .raw_set(script.sha.as_str(), f.clone())
            .map_err(|e| e.to_string())?;
        Ok(f)
    }

    fn run(&self, script: &Script, keys: &[Bytes], args: &[Bytes], host: &mut dyn Host) -> Outcome {
        let f = match self.function(script) {
            Ok(f) => f,
            Err(msg) => return Outcome::Reply(Reply::error(format!("ERR {msg}"))),
        };
        if let Err(e) = f.set_environment(self.proxy.clone()) {
            return Outcome::Reply(Reply::error(format!("ERR {e}")));
        }
        self.start(f, keys, args, host, &script.sha, false)
    }

    /// A library's functions, loading its code on first use (its top level runs once, with
    /// `redis.register_function`, under the budget).
    fn library(&self, code: &[u8]) -> Result<Table, String> {
        let sha = super::sha1hex(code);
        if let Ok(Value::Table(t)) = self.libraries.raw_get::<Value>(sha.as_str()) {
            return Ok(t);
        }
        let body = match code.iter().position(|&b| b == b'\n') {
            Some(end) if code.starts_with(b"#!") => &code[end..],
            _ if code.starts_with(b"#!") => &[][..],
            _ => code,
        };
        let f = self
            .lua
            .load(body)
            .set_name("@user_function")
            .into_function()
            .map_err(|e| {
                let msg = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                format!("Error compiling function: {msg}")
            })?;
        let registry = self.lua.create_table().map_err(|e| e.to_string())?;
        let (env, loaded): (Table, Function) = self
            .library_env
            .call(registry.clone())
            .map_err(|e| e.to_string())?;
        f.set_environment(env).map_err(|e| e.to_string())?;
        struct Loading;
        impl Host for Loading {
            fn call(&mut self, _: Vec<Bytes>) -> Result<Reply, Stop> {
                Ok(Reply::error(
                    "ERR redis.call is not available while loading a library",
                ))
            }
            fn seed(&self) -> u64 {
                0
            }
        }
        let outcome = self.start(f, &[], &[], &mut Loading, LOADING, false);
        loaded.call::<()>(()).map_err(|e| e.to_string())?;
        match outcome {
            Outcome::Reply(Reply::Error(e)) => {
                return Err(format!("Error registering functions: {e}"));
            }
            Outcome::Reply(_) => {}
            _ => return Err("Error registering functions".into()),
        }
        if registry.pairs::<Value, Value>().next().is_none() {
            return Err("No functions registered".into());
        }
        self.libraries
            .raw_set(sha.as_str(), registry.clone())
            .map_err(|e| e.to_string())?;
        Ok(registry)
    }

    /// Runs a compiled function (a script's chunk, or a library function called with KEYS and
    /// ARGV as its arguments) under a fresh run state.
    fn start(
        &self,
        f: Function,
        keys: &[Bytes],
        args: &[Bytes],
        host: &mut dyn Host,
        name: &str,
        with_args: bool,
    ) -> Outcome {
        let lua = &self.lua;
        super::cjson::reset();
        lua.set_app_data(RunState {
            resp: 2,
            rng: seed48(host.seed()),
            used: 0,
            killable: host.killable(),
            loading: name == LOADING,
            halt: None,
        });
        let result = self.call(f, keys, args, host, with_args);
        let st = lua.remove_app_data::<RunState>();
        // A full collection once the garbage since the last one passes 16 KiB or a quarter of
        // the live heap: a run leaves a little garbage (its KEYS and ARGV, strings), so the
        // heap stays near its live size (Redis's own test wants under 100 KiB after 10000
        // EVALs) and a big heap (many cached scripts) is not walked after every few runs.
        let used = lua.used_memory();
        let base = COLLECTED_AT.with(|c| c.get());
        if used > base + (base / 4).max(16 << 10) {
            let _ = lua.gc_collect();
            COLLECTED_AT.with(|c| c.set(lua.used_memory()));
        }
        LUA_MEMORY.store(lua.used_memory(), Ordering::Relaxed);
        let _ = lua.set_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), hook);
        let _ = lua.set_named_registry_value(CALL_KEY, Value::Nil);
        let _ = lua.set_named_registry_value(YIELD_KEY, Value::Nil);
        let resp = st.as_ref().map_or(2, |s| s.resp);
        match st.and_then(|s| s.halt) {
            Some(Halt::Host(Stop::NeedsWrite)) => return Outcome::NeedsWrite,
            Some(Halt::Host(Stop::Store(e))) => return Outcome::Store(e),
            _ => {}
        }
        let reply = match result {
            Ok((true, value)) => lua_to_reply(&value, resp),
            // Redis reports a load's error without where it happened.
            Ok((false, Value::Table(t))) if name == LOADING => error_reply(&t, ""),
            Ok((false, Value::Table(t))) => error_reply(&t, name),
            Ok((false, other)) => Reply::error(format!("ERR {}", describe(lua, &other))),
            Err(e) => Reply::error(format!("ERR Error running script: {e}")),
        };
        Outcome::Reply(reply)
    }

    fn call(
        &self,
        f: Function,
        keys: &[Bytes],
        args: &[Bytes],
        host: &mut dyn Host,
        with_args: bool,
    ) -> mlua::Result<(bool, Value)> {
        let lua = &self.lua;
        let array = |items: &[Bytes]| -> mlua::Result<Table> {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(item)?)?;
            }
            Ok(t)
        };
        let (keys, args) = (array(keys)?, array(args)?);
        let f = if with_args {
            f.bind((keys, args))?
        } else {
            self.globals.raw_set("KEYS", keys)?;
            self.globals.raw_set("ARGV", args)?;
            f
        };
        let killable = host.killable();
        let host = RefCell::new(host);
        lua.scope(|scope| {
            let call = scope.create_function(|lua, (packed, n): (Table, i64)| {
                charge(lua, CALL_COST)?;
                let argv = (1..=n)
                    .map(|i| packed.raw_get::<Value>(i))
                    .collect::<mlua::Result<Vec<Value>>>()?;
                if argv.is_empty() {
                    let t = error_table(
                        lua,
                        "Please specify at least one argument for this redis lib call",
                    )?;
                    return Ok((Value::Table(t), true));
                }
                let mut args = Vec::with_capacity(argv.len());
                for v in argv.iter() {
                    match argument(v) {
                        Some(a) => args.push(a),
                        None => {
                            let t = error_table(
                                lua,
                                "Lua redis lib command arguments must be strings or integers",
                            )?;
                            return Ok((Value::Table(t), true));
                        }
                    }
                }
                let outcome = host.borrow_mut().call(args);
                match outcome {
                    Ok(reply) => {
                        let resp = lua.app_data_ref::<RunState>().map_or(2, |s| s.resp);
                        let failed = reply.is_error();
                        Ok((reply_to_lua(lua, &reply, resp)?, failed))
                    }
                    Err(stop) => {
                        if let Some(mut st) = lua.app_data_mut::<RunState>() {
                            st.halt = Some(Halt::Host(stop));
                        }
                        let _ = lua.set_hook(HookTriggers::new().every_nth_instruction(1), hook);
                        Err(mlua::Error::runtime("script stopped"))
                    }
                }
            })?;
            lua.set_named_registry_value(CALL_KEY, call)?;
            if killable {
                let yield_point = scope.create_function(|_, ()| {
                    host.borrow_mut().yield_point();
                    Ok(())
                })?;
                lua.set_named_registry_value(YIELD_KEY, yield_point)?;
            }
            let out: MultiValue = self.xpcall.call((f, self.handler.clone()))?;
            let mut out = out.into_iter();
            let ok = matches!(out.next(), Some(Value::Boolean(true)));
            Ok((ok, out.next().unwrap_or(Value::Nil)))
        })
    }
}

/// The reply for an error that ended a run: `err` and, when known, where, in Redis's words.
fn error_reply(t: &Table, sha: &str) -> Reply {
    let text = |k: &str| -> Option<String> {
        match t.get::<Value>(k) {
            Ok(Value::String(s)) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
            Ok(Value::Integer(n)) => Some(n.to_string()),
            Ok(Value::Number(n)) => Some(format!("{}", n as i64)),
            _ => None,
        }
    };
    let msg = text("err").unwrap_or_else(|| "ERR unknown error".into());
    if sha.is_empty() {
        return Reply::error(msg);
    }
    match (text("source"), text("line")) {
        (Some(source), Some(line)) => {
            Reply::error(format!("{msg} script: {sha}, on {source}:{line}."))
        }
        _ => Reply::error(msg),
    }
}

// Redis's `rand.c`: the 48-bit linear congruential generator of drand48, so that
// `math.randomseed(n)` gives the same sequence as on redis-server.
const LCG_A: u64 = 0x5_DEEC_E66D;
const LCG_C: u64 = 0xB;
const MASK48: u64 = (1 << 48) - 1;

fn srand48(seed: i32) -> u64 {
    ((u64::from(seed as u32)) << 16) | 0x330E
}

fn seed48(seed: u64) -> u64 {
    seed & MASK48
}

/// Next state and the 31-bit output.
fn lrand48(x: u64) -> (u64, u32) {
    let next = (LCG_A.wrapping_mul(x).wrapping_add(LCG_C)) & MASK48;
    (next, (next >> 17) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoCommands;

    impl Host for NoCommands {
        fn call(&mut self, argv: Vec<Bytes>) -> Result<Reply, Stop> {
            Ok(match argv[0].as_ref() {
                b"ping" => Reply::status("PONG"),
                b"set" => return Err(Stop::NeedsWrite),
                _ => Reply::error("ERR Unknown Redis command called from script"),
            })
        }
        fn seed(&self) -> u64 {
            1
        }
    }

    fn eval(body: &str) -> Reply {
        let script = Script::new(Bytes::copy_from_slice(body.as_bytes())).expect("shebang");
        match run(&script, &[], &[], &mut NoCommands) {
            Outcome::Reply(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn err_with_location(body: &str, msg: &str, line: usize) -> Reply {
        let sha = crate::script::sha1hex(body.as_bytes());
        Reply::error(format!("{msg} script: {sha}, on @user_script:{line}."))
    }

    #[test]
    fn conversions_and_errors_match_redis() {
        assert_eq!(eval("return 'hello'"), Reply::bulk("hello"));
        assert_eq!(eval("return 100.5"), Reply::Integer(100));
        assert_eq!(eval("return -3.99"), Reply::Integer(-3));
        assert_eq!(eval("return true"), Reply::Integer(1));
        assert_eq!(eval("return false"), Reply::Nil);
        assert_eq!(eval("return {ok='fine'}"), Reply::status("fine"));
        assert_eq!(eval("return {err='x y'}"), Reply::error("x y"));
        assert_eq!(
            eval("return {1,2,nil,3}"),
            Reply::Array(vec![Reply::Integer(1), Reply::Integer(2)])
        );
        assert_eq!(eval("return redis.error_reply('')"), Reply::error("ERR "));
        assert_eq!(
            eval("return redis.status_reply('A\\r\\nB')"),
            Reply::status("A  B")
        );
        let body = "return a";
        assert_eq!(
            eval(body),
            err_with_location(
                body,
                "ERR user_script:1: Script attempted to access nonexistent global variable 'a'",
                1
            )
        );
        let body = "a=1";
        assert_eq!(
            eval(body),
            err_with_location(
                body,
                "ERR user_script:1: Attempt to modify a readonly table",
                1
            )
        );
        let body = "\n\nreturn redis.call('nosuch')";
        assert_eq!(
            eval(body),
            err_with_location(body, "ERR Unknown Redis command called from script", 3)
        );
        let body = "error()";
        assert_eq!(eval(body), err_with_location(body, "ERR nil", 1));
        let body = "error({err='MY x'})";
        assert_eq!(eval(body), err_with_location(body, "MY x", 1));
        assert_eq!(
            eval("return redis.pcall('nosuch')"),
            Reply::error("ERR Unknown Redis command called from script")
        );
        assert_eq!(
            eval("local ok, e = pcall(function() error('x') end) return e"),
            Reply::bulk("user_script:1: x")
        );
        assert_eq!(
            eval("return x("),
            Reply::error(
                "ERR Error compiling script (new function): user_script:1: unexpected symbol near '<eof>'"
            )
        );
    }

    #[test]
    fn sandbox_refuses_tricks() {
        for body in [
            "setmetatable(_G, {})",
            "local g = getmetatable(_G) g.__index = {}",
            "redis = function() return 1 end",
            "_G = {}",
            "redis.call = function() return 1 end",
            "cjson.encode = function() return 1 end",
            "bit.lshift = function() return 1 end",
            "rawset(_G, 'x', 1)",
            "string.rep = nil",
            "table.insert(_G, 1)",
        ] {
            let r = eval(body);
            let Reply::Error(e) = &r else {
                panic!("{body}: {r:?}")
            };
            assert!(
                e.contains("Attempt to modify a readonly table"),
                "{body}: {e}"
            );
        }
        for g in ["loadfile", "dofile", "print", "debug", "os", "io"] {
            let r = eval(&format!("return {g}"));
            let Reply::Error(e) = &r else { panic!("{g}") };
            assert!(
                e.contains(&format!("nonexistent global variable '{g}'")),
                "{e}"
            );
        }
        let Reply::Error(e) = eval("return loadstring(string.dump(function() return 1 end))()")
        else {
            panic!()
        };
        assert!(e.contains("attempt to call a nil value"), "{e}");
    }

    #[test]
    fn random_matches_redis() {
        assert_eq!(
            eval("math.randomseed(10); return tostring(math.random())"),
            Reply::bulk("0.87885112309775")
        );
        assert_eq!(
            eval("math.randomseed(10); return {math.random(100), math.random(1,1000)}"),
            Reply::Array(vec![Reply::Integer(88), Reply::Integer(796)])
        );
    }

    #[test]
    fn runaway_scripts_stop_even_through_pcall() {
        for body in [
            "while true do end",
            "while true do pcall(function() while true do end end) end",
            "local n = 0 while true do n = n + 1 redis.pcall('ping') end",
        ] {
            let Reply::Error(e) = eval(body) else {
                panic!("{body}")
            };
            assert!(e.starts_with(&budget_message()), "{body}: {e}");
            assert!(e.ends_with(", on @user_script:1."), "{e}");
        }
        // The state is usable afterwards.
        assert_eq!(eval("return 'ok'"), Reply::bulk("ok"));
    }

    #[test]
    fn a_write_in_a_probing_run_stops_it_whatever_pcall_does() {
        let script = Script::new(Bytes::from_static(
            b"pcall(function() redis.call('set','a','b') end) return 1",
        ))
        .expect("script");
        assert!(matches!(
            run(&script, &[], &[], &mut NoCommands),
            Outcome::NeedsWrite
        ));
    }
}
