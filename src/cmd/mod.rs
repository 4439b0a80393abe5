//! The command table: every Redis command kvd knows, how it is checked, and where it runs.
//!
//! A command is one `Spec` in `TABLE` (the registry line) pointing at functions in one file of
//! this module. Its `Kind` says where it runs:
//! - `Local`: answered by the connection from its own or the server's state (PING, INFO, ...);
//! - `Read`: answered from this node's applied state (GET, EXISTS, ...);
//! - `Write`: checked on the node the client talks to, then proposed to raft; `apply` runs on every
//!   node when the entry commits, and the proposing node answers its client with that result.
//!
//! `apply` must be deterministic and total: it may look only at its arguments and the replicated
//! state (its "now" is the entry's clock, see `kv::WriteView`), and whatever the entry holds it
//! gives a reply, never a panic: the arity is checked again before it runs (`apply_write`).

pub mod acl;
mod bitops;
mod client;
mod cluster;
pub mod command_stats;
pub mod config;
mod connection;
mod dump;
mod expire;
pub mod footprint;
mod function_dump;
mod geo;
pub mod glob;
mod hash;
mod hyperloglog;
mod keys;
mod list;
mod long_double;
pub mod maxmemory;
pub mod min_replicas;
pub mod pubsub;
pub mod scripting;
mod server;
mod set;
mod slowlog;
mod sort;
mod stream;
mod stream_group;
mod strings;
mod strings_range;
mod tracking;
pub mod transactions;
pub mod wait;
mod zset;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::fnv::Fnv1a;
use crate::kv::{ApplyCtx, KeyRead, KeyType, Meta, WriteView, encoding::DATABASES};
use crate::resp::Reply;
use crate::session::Session;
use crate::store::StoreError;

/// Why a command did not produce its normal reply: a reply for the client (a deterministic
/// outcome, e.g. WRONGTYPE), or a storage failure (the node cannot go on).
#[derive(Debug)]
pub enum CmdError {
    Reply(Reply),
    Store(StoreError),
}

impl From<StoreError> for CmdError {
    fn from(e: StoreError) -> Self {
        CmdError::Store(e)
    }
}

impl From<Reply> for CmdError {
    fn from(r: Reply) -> Self {
        CmdError::Reply(r)
    }
}

/// What reads and applies return.
pub type CmdResult = Result<Reply, CmdError>;

/// Where and how a command runs (see the module docs).
#[derive(Clone, Copy)]
pub enum Kind {
    Local(fn(&mut Session, &[Bytes]) -> Reply),
    /// Runs on a consistent view of the applied state: a connection's (any node), or, inside a
    /// transaction, the apply's.
    Read(fn(&dyn KeyRead, &[Bytes]) -> CmdResult),
    Write {
        /// Validates (and may rewrite) the arguments before proposing, on the node the client
        /// talks to: relative times become absolute here, node-local limits are checked here.
        /// An `Err` is the reply.
        prepare: fn(Vec<Bytes>) -> Result<Vec<Bytes>, Reply>,
        apply: ApplyFn,
    },
}

/// Runs a read on `view`, turning a command error into its reply; storage errors stay errors.
pub fn run_read(
    f: fn(&dyn KeyRead, &[Bytes]) -> CmdResult,
    view: &dyn KeyRead,
    argv: &[Bytes],
) -> Result<Reply, StoreError> {
    touch_keys(view.db(), argv);
    settle(f(view, argv))
}

/// Commands whose lookups leave a key's access time and counter alone, as Redis's
/// `LOOKUP_NOTOUCH` ones do.
const NO_TOUCH: &[&str] = &[
    "type",
    "ttl",
    "pttl",
    "expiretime",
    "pexpiretime",
    "exists",
    "object",
    "memory",
    "debug",
];

/// Records the access of a command to its keys on this node (`crate::access`): every read
/// this node serves and every write it applies, as Redis's key lookups do.
fn touch_keys(db: u8, argv: &[Bytes]) {
    let Some(spec) = argv.first().and_then(|n| lookup(n)) else {
        return;
    };
    if spec.keys.0 == 0 || NO_TOUCH.contains(&spec.name) {
        return;
    }
    for key in spec.key_args(argv) {
        crate::access::touch(db, key);
    }
}

/// Applies one write command (an entry's, or one of a transaction's or a script's), counting
/// the changes it makes for Redis's dirty counter (`kv::dirty`).
fn apply_counted(
    apply: ApplyFn,
    view: &mut WriteView,
    ctx: &ApplyCtx,
    argv: &[Bytes],
) -> Result<Reply, StoreError> {
    touch_keys(view.db(), argv);
    view.begin_command();
    let reply = settle(apply(view, ctx, argv));
    view.end_command();
    reply
}

/// How a write command is applied (`Kind::Write::apply`).
pub type ApplyFn = fn(&mut WriteView, &ApplyCtx, &[Bytes]) -> CmdResult;

fn settle(r: CmdResult) -> Result<Reply, StoreError> {
    match r {
        Ok(reply) | Err(CmdError::Reply(reply)) => Ok(reply),
        Err(CmdError::Store(e)) => Err(e),
    }
}

/// The result of applying a replicated command, on every node alike: whatever `argv` holds
/// (an unknown name, a wrong argument count, a bad database), a reply, never a panic.
/// Returns the reply and whether the member list changed.
pub fn apply_write(
    view: &mut WriteView,
    ctx: &ApplyCtx,
    db: u8,
    argv: &[Bytes],
) -> Result<(Reply, bool), StoreError> {
    // A transaction (see `transactions`): its own format, so before the arity check.
    if argv.first().is_some_and(|n| is(n, "exec")) {
        let reply = scripting::applying(ctx.local, || {
            transactions::apply_transaction(view, ctx, argv)
        })?;
        return Ok((reply, false));
    }
    let Some(spec) = argv
        .first()
        .and_then(|n| lookup(n).or_else(|| INTERNAL.iter().find(|s| is(n, s.name))))
    else {
        return Ok((unknown_command(argv), false));
    };
    if let Err(reply) = spec.check_arity(argv.len()) {
        return Ok((reply, false));
    }
    if db >= DATABASES {
        return Ok((Reply::error("ERR DB index is out of range"), false));
    }
    let reply = match spec.kind {
        Kind::Write { apply, .. } => apply_counted(apply, view, ctx, argv)?,
        _ => Reply::error("ERR not a write command"),
    };
    Ok((
        reply,
        crate::kv::machine::MEMBER_COMMANDS.contains(&spec.name),
    ))
}

/// One command's registry entry; the metadata follows Redis's COMMAND reply.
pub struct Spec {
    /// Lower-case name, as Redis prints it in errors and COMMAND.
    pub name: &'static str,
    /// Redis arity: N means exactly N arguments (name included), -N means at least N.
    pub arity: i32,
    pub kind: Kind,
    /// Redis command flags, for COMMAND.
    pub flags: &'static [&'static str],
    /// Key positions (first, last, step); last -1 means "to the end". (0, 0, 0): no keys.
    pub keys: (i32, i32, i32),
}

impl Spec {
    /// Checks the argument count; the error is Redis's text.
    pub fn check_arity(&self, argc: usize) -> Result<(), Reply> {
        let argc = argc as i64;
        let arity = self.arity as i64;
        if (arity > 0 && argc != arity) || (arity < 0 && argc < -arity) {
            return Err(wrong_arity(self.name));
        }
        Ok(())
    }

    /// The arguments that are keys, by the (first, last, step) positions.
    pub fn key_args<'a>(&self, argv: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> {
        let (first, last, step) = self.keys;
        let len = argv.len() as i32;
        let last = if last < 0 {
            len + last
        } else {
            last.min(len - 1)
        };
        let (first, step) = (first.max(1), step.max(1));
        let count = if self.keys.0 == 0 || last < first {
            0
        } else {
            ((last - first) / step + 1) as usize
        };
        argv.iter()
            .skip(first as usize)
            .step_by(step as usize)
            .take(count)
    }
}

/// Every command. Adding one: write its functions in the file for its group, add a line here.
pub static TABLE: &[Spec] = &[
    // connection
    connection::PING,
    connection::ECHO,
    connection::QUIT,
    connection::SELECT,
    connection::HELLO,
    connection::AUTH,
    acl::ACL,
    connection::RESET,
    client::CLIENT,
    connection::CONSISTENCY,
    // pub/sub
    pubsub::SUBSCRIBE,
    pubsub::UNSUBSCRIBE,
    pubsub::PSUBSCRIBE,
    pubsub::PUNSUBSCRIBE,
    pubsub::SSUBSCRIBE,
    pubsub::SUNSUBSCRIBE,
    pubsub::PUBLISH,
    pubsub::SPUBLISH,
    pubsub::PUBSUB,
    // server
    server::INFO,
    config::CONFIG,
    server::COMMAND,
    server::DBSIZE,
    server::FLUSHDB,
    server::FLUSHALL,
    server::TIME,
    server::SAVE,
    server::BGSAVE,
    server::LASTSAVE,
    slowlog::SLOWLOG,
    server::SHUTDOWN,
    wait::WAIT,
    server::MONITOR,
    server::MEMORY,
    server::DIGEST,
    #[cfg(debug_assertions)]
    server::DEBUG,
    // keys
    keys::DEL,
    keys::UNLINK,
    keys::EXISTS,
    keys::TYPE,
    keys::KEYS,
    keys::SCAN,
    keys::RANDOMKEY,
    keys::TOUCH,
    keys::RENAME,
    keys::RENAMENX,
    keys::COPY,
    dump::DUMP,
    dump::RESTORE,
    keys::MOVE,
    keys::SWAPDB,
    keys::OBJECT,
    // expiry
    expire::EXPIRE,
    expire::PEXPIRE,
    expire::EXPIREAT,
    expire::PEXPIREAT,
    expire::TTL,
    expire::PTTL,
    expire::EXPIRETIME,
    expire::PEXPIRETIME,
    expire::PERSIST,
    // strings
    strings::GET,
    strings::SET,
    strings::SETEX,
    strings::PSETEX,
    strings::GETEX,
    strings::SETNX,
    strings::GETSET,
    strings::GETDEL,
    strings::MGET,
    strings::MSET,
    strings::MSETNX,
    strings::STRLEN,
    strings::APPEND,
    strings::INCR,
    strings::DECR,
    strings::INCRBY,
    strings::DECRBY,
    strings_range::SETRANGE,
    strings_range::GETRANGE,
    strings_range::SUBSTR,
    strings_range::INCRBYFLOAT,
    strings_range::LCS,
    // bits
    bitops::SETBIT,
    bitops::GETBIT,
    bitops::BITCOUNT,
    bitops::BITPOS,
    bitops::BITOP,
    bitops::BITFIELD,
    bitops::BITFIELD_RO,
    // hashes
    hash::HSET,
    hash::HSETNX,
    hash::HGET,
    hash::HMGET,
    hash::HMSET,
    hash::HGETALL,
    hash::HDEL,
    hash::HLEN,
    hash::HSTRLEN,
    hash::HEXISTS,
    hash::HINCRBY,
    hash::HINCRBYFLOAT,
    hash::HKEYS,
    hash::HVALS,
    hash::HSCAN,
    hash::HRANDFIELD,
    // sets
    set::SADD,
    set::SREM,
    set::SMEMBERS,
    set::SISMEMBER,
    set::SMISMEMBER,
    set::SCARD,
    set::SPOP,
    set::SRANDMEMBER,
    set::SMOVE,
    set::SINTER,
    set::SINTERCARD,
    set::SINTERSTORE,
    set::SUNION,
    set::SUNIONSTORE,
    set::SDIFF,
    set::SDIFFSTORE,
    set::SSCAN,
    // streams
    stream::XADD,
    stream::XLEN,
    stream::XRANGE,
    stream::XREVRANGE,
    stream::XDEL,
    stream::XTRIM,
    stream::XREAD,
    stream::XSETID,
    stream::XINFO,
    stream_group::XGROUP,
    stream_group::XREADGROUP,
    stream_group::XACK,
    stream_group::XPENDING,
    stream_group::XCLAIM,
    stream_group::XAUTOCLAIM,
    // lists
    list::LPUSH,
    list::RPUSH,
    list::LPUSHX,
    list::RPUSHX,
    list::LPOP,
    list::RPOP,
    list::LLEN,
    list::LRANGE,
    list::LINDEX,
    list::LSET,
    list::LINSERT,
    list::LREM,
    list::LTRIM,
    list::LPOS,
    list::LMOVE,
    list::RPOPLPUSH,
    list::LMPOP,
    list::BLPOP,
    list::BRPOP,
    list::BLMOVE,
    list::BRPOPLPUSH,
    list::BLMPOP,
    // sorted sets
    zset::ZADD,
    zset::ZINCRBY,
    zset::ZREM,
    zset::ZCARD,
    zset::ZSCORE,
    zset::ZMSCORE,
    zset::ZRANK,
    zset::ZREVRANK,
    zset::ZRANGE,
    zset::ZRANGESTORE,
    zset::ZREVRANGE,
    zset::ZRANGEBYSCORE,
    zset::ZREVRANGEBYSCORE,
    zset::ZRANGEBYLEX,
    zset::ZREVRANGEBYLEX,
    zset::ZCOUNT,
    zset::ZLEXCOUNT,
    zset::ZPOPMIN,
    zset::ZPOPMAX,
    zset::ZMPOP,
    zset::BZPOPMIN,
    zset::BZPOPMAX,
    zset::BZMPOP,
    zset::ZREMRANGEBYRANK,
    zset::ZREMRANGEBYSCORE,
    zset::ZREMRANGEBYLEX,
    zset::ZUNION,
    zset::ZUNIONSTORE,
    zset::ZINTER,
    zset::ZINTERSTORE,
    zset::ZINTERCARD,
    zset::ZDIFF,
    zset::ZDIFFSTORE,
    zset::ZRANDMEMBER,
    zset::ZSCAN,
    geo::GEOADD,
    geo::GEODIST,
    geo::GEOHASH,
    geo::GEOPOS,
    geo::GEORADIUS,
    geo::GEORADIUSBYMEMBER,
    geo::GEORADIUS_RO,
    geo::GEORADIUSBYMEMBER_RO,
    geo::GEOSEARCH,
    geo::GEOSEARCHSTORE,
    sort::SORT,
    sort::SORT_RO,
    // hyperloglog
    hyperloglog::PFADD,
    hyperloglog::PFCOUNT,
    hyperloglog::PFMERGE,
    hyperloglog::PFDEBUG,
    hyperloglog::PFSELFTEST,
    // cluster
    cluster::JOIN,
    cluster::LEAVE,
    cluster::REMOVE,
    cluster::CLUSTER,
    cluster::ROLE,
    // transactions
    transactions::MULTI,
    transactions::EXEC,
    transactions::DISCARD,
    transactions::WATCH,
    transactions::UNWATCH,
    // scripting
    scripting::EVAL,
    scripting::EVALSHA,
    scripting::EVAL_RO,
    scripting::EVALSHA_RO,
    scripting::SCRIPT,
    scripting::FCALL,
    scripting::FCALL_RO,
    scripting::FUNCTION,
];

/// Commands only entries carry (proposed by kvd itself, never by a client): apply finds them,
/// the connection does not.
pub static INTERNAL: &[Spec] = &[
    expire::REAP,
    crate::reclaim::ROWS_REAP,
    acl::AS_USER,
    maxmemory::EVICT,
];

pub use cluster::JoinAnswer;
pub use expire::reap_argv;
pub use stream::{blocks as stream_blocks, resolve_last_ids};

/// The keys a blocking command waits on (lists' and streams').
pub fn blocking_keys(argv: &[Bytes]) -> Vec<Bytes> {
    match stream::blocking_keys(argv) {
        keys if keys.is_empty() => list::blocking_keys(argv),
        keys => keys,
    }
}

/// A blocking command's timeout in ms (0: forever).
pub fn blocking_timeout(argv: &[Bytes]) -> Option<u64> {
    stream::blocking_timeout(argv).or_else(|| list::blocking_timeout(argv))
}
pub use command_stats::CommandStats;
pub use server::storage_error;

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    // FNV rather than SipHash: command names are not attacker-chosen keys of a growing map.
    type Index = HashMap<&'static str, &'static Spec, BuildHasherDefault<Fnv1a>>;
    static INDEX: OnceLock<Index> = OnceLock::new();
    let index = INDEX.get_or_init(|| TABLE.iter().map(|s| (s.name, s)).collect());
    if name.len() > 32 {
        return None;
    }
    let mut buf = [0u8; 32];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    std::str::from_utf8(lower)
        .ok()
        .and_then(|n| index.get(n).copied())
}

/// Redis's reply for a command it does not know.
pub fn unknown_command(argv: &[Bytes]) -> Reply {
    let name = argv.first().map(|n| lossy(n, 128)).unwrap_or_default();
    let mut args = String::new();
    for a in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push('\'');
        args.push_str(&lossy(a, room));
        args.push_str("' ");
    }
    Reply::error(format!(
        "ERR unknown command '{name}', with args beginning with: {args}"
    ))
}

pub fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

pub fn syntax_error() -> Reply {
    Reply::error("ERR syntax error")
}

pub fn wrong_type() -> Reply {
    Reply::error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

/// A string key's value: `None` if the key is absent, WRONGTYPE if it holds another type.
pub fn string_value(meta: Option<Meta>) -> Result<Option<Bytes>, CmdError> {
    match meta {
        None => Ok(None),
        Some(m) if m.kind == KeyType::String => Ok(Some(m.body)),
        Some(_) => Err(wrong_type().into()),
    }
}

/// Reads a string key (see `string_value`).
pub fn get_string(r: &dyn KeyRead, key: &[u8]) -> Result<Option<Bytes>, CmdError> {
    string_value(r.meta(key)?)
}

pub fn not_an_integer() -> Reply {
    Reply::error("ERR value is not an integer or out of range")
}

/// The first `max` bytes of an argument as text, for error messages.
pub fn lossy(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// Parses a Redis integer argument (strict: no spaces, no leading '+', fits i64).
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    crate::resp::decode::parse_redis_int(b)
}

/// Case-insensitive comparison of an argument with an ASCII keyword.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// True if Redis gives this command (with these arguments) a flag: its name is in `names`, or
/// its (command, subcommand) pair in `subs` (as the `write` and `denyoom` tables list them).
pub fn flagged(spec: &Spec, argv: &[Bytes], names: &[&str], subs: &[(&str, &str)]) -> bool {
    names.contains(&spec.name)
        || argv.get(1).is_some_and(|sub| {
            subs.iter()
                .any(|(name, s)| *name == spec.name && is(sub, s))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup(b"GeT").unwrap().name, "get");
        assert!(lookup(b"nosuch").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
    }

    #[test]
    fn names_are_unique_and_lower_case() {
        let mut seen = std::collections::HashSet::new();
        for s in TABLE {
            assert!(seen.insert(s.name), "duplicate {}", s.name);
            assert_eq!(s.name, s.name.to_ascii_lowercase());
        }
    }

    #[test]
    fn arity_messages_match_redis() {
        let get = lookup(b"get").unwrap();
        assert!(get.check_arity(2).is_ok());
        assert_eq!(
            get.check_arity(1).unwrap_err(),
            Reply::error("ERR wrong number of arguments for 'get' command")
        );
        let del = lookup(b"del").unwrap();
        assert!(del.check_arity(5).is_ok());
        assert!(del.check_arity(1).is_err());
    }

    #[test]
    fn unknown_command_text_matches_redis() {
        assert_eq!(
            unknown_command(&argv(&["foo", "a", "b"])),
            Reply::error("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
        );
        assert_eq!(
            unknown_command(&argv(&["foo"])),
            Reply::error("ERR unknown command 'foo', with args beginning with: ")
        );
    }

    #[test]
    fn key_positions() {
        let keys = |cmd: &str, words: &[&str]| {
            let a = argv(words);
            lookup(cmd.as_bytes())
                .unwrap()
                .key_args(&a)
                .map(|k| k.to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys("get", &["get", "k"]), vec![b"k".to_vec()]);
        assert_eq!(keys("del", &["del", "a", "b"]).len(), 2);
        assert_eq!(
            keys("mset", &["mset", "a", "1", "b", "2"]),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(keys("ping", &["ping"]).is_empty());
    }

    #[test]
    fn integers_are_parsed_strictly() {
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"0"), Some(0));
        for bad in [
            &b""[..],
            b"+1",
            b"01",
            b" 1",
            b"1.0",
            b"99999999999999999999",
            b"-0",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}
