-- kvd's Lua sandbox (see engine.rs): builds the `redis` API and Redis 7's read-only globals
-- and libraries out of proxies. Called once per Lua state with the real globals and the
-- table of Rust functions; returns the globals proxy scripts run with.
local G, raw = ...
local type, error, rawset, rawget, setmetatable, getmetatable, select, tostring, tonumber =
      type, error, rawset, rawget, setmetatable, getmetatable, select, tostring, tonumber
local setfenv, getfenv, loadstring, pcall = setfenv, getfenv, loadstring, pcall
local floor = math.floor
local READONLY = 'Attempt to modify a readonly table'

-- proxy -> the table it protects
local real = setmetatable({}, {__mode = 'k'})
local function deny() error(READONLY, 2) end
local function protect(t)
  local mt = {__index = t, __newindex = deny}
  local mp = setmetatable({}, {__index = mt, __newindex = deny, __metatable = false})
  real[mp] = mt
  mt.__metatable = mp
  local p = setmetatable({}, mt)
  real[p] = t
  return p
end
local function refuse_protected(t)
  if real[t] ~= nil then error(READONLY, 3) end
end

local function errtab(msg) return {err = 'ERR ' .. msg} end
local function trim(s) return (s:gsub('^[\r\n]+', ''):gsub('[\r\n]+$', '')) end

-- redis.*
local redis = {}
redis.call = raw.call_c
redis.pcall = raw.pcall_c
function redis.sha1hex(...)
  if select('#', ...) ~= 1 then error(errtab('wrong number of arguments'), 0) end
  local s = ...
  if type(s) ~= 'string' and type(s) ~= 'number' then s = '' end
  return raw.sha1hex(tostring(s))
end
function redis.error_reply(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return errtab('wrong number or type of arguments')
  end
  if s:sub(1, 1) ~= '-' then s = '-' .. s end
  local sp = s:find(' ', 1, true)
  local code, msg
  if sp then code, msg = s:sub(2, sp - 1), s:sub(sp + 1) else code, msg = 'ERR', s:sub(2) end
  return {err = code .. ' ' .. trim(msg)}
end
function redis.status_reply(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return errtab('wrong number or type of arguments')
  end
  return {ok = s}
end
function redis.log(...)
  local n = select('#', ...)
  if n < 2 then error(errtab('redis.log() requires two arguments or more.'), 0) end
  local level = tonumber((...))
  if level == nil then error(errtab('First argument must be a number (log level).'), 0) end
  if level < 0 or level > 3 then error(errtab('Invalid debug level.'), 0) end
  local parts = {}
  for i = 2, n do
    local v = select(i, ...)
    if type(v) == 'string' or type(v) == 'number' then parts[#parts + 1] = tostring(v) end
  end
  raw.log(level, table.concat(parts, ' '))
end
function redis.setresp(...)
  if select('#', ...) ~= 1 then error(errtab('redis.setresp() requires one argument.'), 0) end
  local n = tonumber((...)) or 0
  if n ~= 2 and n ~= 3 then error(errtab('RESP version must be 2 or 3.'), 0) end
  raw.setresp(n)
end
function redis.set_repl(...)
  if select('#', ...) ~= 1 then error(errtab('redis.set_repl() requires two arguments.'), 0) end
  local n = tonumber((...)) or 0
  if n ~= 0 and n ~= 1 and n ~= 2 and n ~= 3 then
    error(errtab('Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.'), 0)
  end
end
function redis.replicate_commands() return true end
function redis.breakpoint() return false end
function redis.debug() end
function redis.acl_check_cmd(...)
  if select('#', ...) == 0 then
    error(errtab('Please specify at least one argument for this redis lib call'), 0)
  end
  local name = ...
  if type(name) ~= 'string' or not raw.known_command(name) then
    error(errtab('Invalid command passed to redis.acl_check_cmd()'), 0)
  end
  return raw.acl_check(...)
end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = '7.0.15', 0x07000f

-- Libraries implemented in Rust: their functions come wrapped (engine.rs, `lib_trampoline`)
-- so that an error is raised at the script's line, as a C library's is.
local function wrap_all(rawlib)
  local t = {}
  for name, f in pairs(rawlib) do t[name] = f end
  return t
end

-- math.random and math.randomseed as Redis has them (its own drand48).
local function checkint(v, n, fname)
  local x = tonumber(v)
  if x == nil then
    local got = v == nil and 'no value' or type(v)
    error("bad argument #" .. n .. " to '" .. fname .. "' (number expected, got " .. got .. ")", 3)
  end
  if x >= 0 then return floor(x) end
  return -floor(-x)
end
local rand, srand = raw.rand, raw.srand
math.random = function(...)
  local r = rand()
  local n = select('#', ...)
  if n == 0 then return r end
  if n == 1 then
    local u = checkint((...), 1, 'random')
    if u < 1 then error("bad argument #1 to 'random' (interval is empty)", 2) end
    return floor(r * u) + 1
  end
  if n == 2 then
    local l, u = ...
    l, u = checkint(l, 1, 'random'), checkint(u, 2, 'random')
    if l > u then error("bad argument #2 to 'random' (interval is empty)", 2) end
    return floor(r * (u - l + 1)) + l
  end
  error('wrong number of arguments', 2)
end
math.randomseed = function(s) srand(checkint(s, 1, 'randomseed')) end

-- Functions that would bypass the proxies.
local base_setmetatable, base_rawset, base_rawget = setmetatable, rawset, rawget
G.setmetatable = function(t, mt)
  refuse_protected(t)
  return base_setmetatable(t, mt)
end
G.rawset = function(t, k, v)
  refuse_protected(t)
  return base_rawset(t, k, v)
end
G.rawget = function(t, k)
  local r = real[t]
  if r ~= nil then return base_rawget(r, k) end
  return base_rawget(t, k)
end
G.setfenv = function(f, env)
  if f == 0 then error(READONLY, 2) end
  if type(f) == 'number' and f > 0 then f = f + 1 end
  return setfenv(f, env)
end
G.getfenv = function(f)
  if f == nil then f = 1 end
  if type(f) == 'number' and f > 0 then f = f + 1 end
  return getfenv(f)
end
G.loadstring = function(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then return nil, 'binary chunks are not allowed' end
  return loadstring(s, name)
end
G.load = function(f, name)
  local first = true
  return load(function()
    local piece = f()
    if first and type(piece) == 'string' and piece:byte(1) == 27 then return nil end
    first = false
    return piece
  end, name)
end
-- Redis's pcall: an error table comes back as its message.
local function settle(ok, ...)
  if ok then return true, ... end
  local e = ...
  if type(e) == 'table' then
    local m = base_rawget(e, 'err')
    if type(m) == 'string' or type(m) == 'number' then return false, m end
  end
  return false, e
end
G.pcall = function(...) return settle(pcall(...)) end
local tinsert, tremove, tsort = table.insert, table.remove, table.sort
table.insert = function(t, ...) refuse_protected(t) return tinsert(t, ...) end
table.remove = function(t, ...) refuse_protected(t) return tremove(t, ...) end
table.sort = function(t, ...) refuse_protected(t) return tsort(t, ...) end
local rep = string.rep
string.rep = function(s, n, ...)
  local len = (type(s) == 'string' and #s or 1) * (tonumber(n) or 0)
  if len > 0 then raw.charge(len / 16) end
  return rep(s, n, ...)
end

-- What scripts may reach, as Redis's allow lists have it.
for _, name in ipairs({'print', 'dofile', 'loadfile', 'module', 'require', 'package',
                       'io', 'os', 'debug', 'newproxy'}) do
  G[name] = nil
end
-- The API functions that raise error tables run inside a C closure (engine.rs,
-- `c_wrap`): a C function keeps its caller's frame even when tail-called (`return
-- redis.setresp(4)`), so the error is reported at the script's line, as on redis-server.
for _, name in ipairs({'sha1hex', 'log', 'setresp', 'set_repl', 'acl_check_cmd'}) do
  redis[name] = raw.c_wrap(redis[name])
end
G.redis = protect(redis)
G.bit = protect(wrap_all(raw.bit))
G.cjson = protect(wrap_all(raw.cjson))
G.cmsgpack = protect(wrap_all(raw.cmsgpack))
G.struct = protect(wrap_all(raw.struct))
for _, name in ipairs({'string', 'table', 'math', 'coroutine'}) do
  G[name] = protect(G[name])
end
local smt = getmetatable('')
smt.__index = G.string
smt.__metatable = protect(smt)

base_setmetatable(G, {__index = function(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end})
local PG = protect(G)
G._G = PG

-- FUNCTION LOAD: the environment a library's code runs in, as Redis 7.0 sets it up. While the
-- code loads, its globals are only `redis`, a table of register_function, log, the LOG_*
-- levels and the version (anything else is a missing global); once loaded, the functions it
-- registered see the ordinary globals (whose `redis` has no register_function). The library
-- table stays read-only, and its register_function refuses to run after the load.
-- register_function records into `registry` (lower-case name -> {name, callback, flags,
-- no_writes, description}). Returns the environment and the function that ends the load.
local FLAG_ORDER = {'no-writes', 'allow-oom', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'}
local function missing(k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 3)
end
function raw.library_env(registry)
  local loading = true
  local function fail(msg) error(errtab(msg), 0) end
  local function read_flags(t)
    if type(t) ~= 'table' then
      fail('flags argument to redis.register_function must be a table representing function flags')
    end
    local set = {}
    for _, f in pairs(t) do
      local known = false
      for _, name in ipairs(FLAG_ORDER) do
        if f == name then known = true end
      end
      if not known then fail('unknown flag given') end
      set[f] = true
    end
    local flags = {}
    for _, name in ipairs(FLAG_ORDER) do
      if set[name] then flags[#flags + 1] = name end
    end
    return flags
  end
  local lredis = {}
  lredis.register_function = function(...)
    if not loading then fail('redis.register_function can only be called on FUNCTION LOAD command') end
    local n = select('#', ...)
    if n < 1 or n > 2 then fail('wrong number of arguments to redis.register_function') end
    local name, callback, description
    local flags = {}
    if n == 1 then
      local a = ...
      if type(a) ~= 'table' then
        fail('calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).')
      end
      for k, v in pairs(a) do
        if k == 'function_name' then
          if type(v) ~= 'string' then fail('function_name argument given to redis.register_function must be a string') end
          name = v
        elseif k == 'description' then
          if type(v) ~= 'string' then fail('description argument given to redis.register_function must be a string') end
          description = v
        elseif k == 'callback' then
          if type(v) ~= 'function' then fail('callback argument given to redis.register_function must be a function') end
          callback = v
        elseif k == 'flags' then
          flags = read_flags(v)
        else
          fail('unknown argument given to redis.register_function')
        end
      end
      if name == nil then fail('redis.register_function must get a function name argument') end
      if callback == nil then fail('redis.register_function must get a callback argument') end
    else
      name, callback = ...
      if type(name) ~= 'string' then fail('first argument to redis.register_function must be a string') end
      if type(callback) ~= 'function' then fail('second argument to redis.register_function must be a function') end
    end
    if not name:find('^[%w_]+$') then
      fail('Library names can only contain letters, numbers, or underscores(_) and must be at least one character long')
    end
    local key = name:lower()
    if registry[key] ~= nil then fail('Function already exists in the library') end
    local no_writes = false
    for _, f in ipairs(flags) do
      if f == 'no-writes' then no_writes = true end
    end
    registry[key] = {name = name, callback = callback, flags = flags, no_writes = no_writes,
                     description = description}
  end
  lredis.log = redis.log
  lredis.LOG_DEBUG, lredis.LOG_VERBOSE, lredis.LOG_NOTICE, lredis.LOG_WARNING = 0, 1, 2, 3
  lredis.REDIS_VERSION, lredis.REDIS_VERSION_NUM = redis.REDIS_VERSION, redis.REDIS_VERSION_NUM
  local lr = base_setmetatable({}, {__index = function(_, k)
    local v = lredis[k]
    if v == nil then missing(k) end
    return v
  end, __newindex = deny, __metatable = false})
  real[lr] = lredis
  local env = base_setmetatable({}, {__index = function(_, k)
    if loading then
      if k == 'redis' then return lr end
      missing(k)
    end
    local v = base_rawget(G, k)
    if v == nil then missing(k) end
    return v
  end, __newindex = deny, __metatable = false})
  real[env] = {}
  return env, function() loading = false end
end
return PG
