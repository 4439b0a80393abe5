//! CONFIG GET / SET / RESETSTAT / REWRITE / HELP, knowing every parameter of redis-server 7.0.
//!
//! Settings are this node's own: they live in memory ([`Settings`]), are not replicated and do
//! not survive a restart. A few mean something in kvd and take effect at once (`requirepass`,
//! `maxclients`, `timeout`, `proto-max-bulk-len` for new connections, the `normal` class of
//! `client-output-buffer-limit`); the rest are validated as redis-server validates them (same
//! ranges, units and error texts), stored and shown, and change nothing (see the README).
//! Parameters redis-server cannot change at run time are refused with its error, and so are
//! `tls-port` and `unixsocket`. `port` and `bind` may be set to their current values (as every
//! value is by tools that save and restore a configuration); another value is refused at the
//! stage where Redis would rebind (see [`check_apply`]): kvd's peers know its client address.
//!
//! Hidden parameters (`key-load-delay`, `rdb-key-save-delay`...) are shown, as by Redis, only
//! when asked for by name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;

use super::{Kind, Spec, glob, is, lossy, parse_i64, syntax_error, wrong_arity};
use crate::config::Config;
use crate::resp::Reply;
use crate::session::Session;

pub const CONFIG: Spec = Spec {
    name: "config",
    arity: -2,
    kind: Kind::Local(config),
    flags: &["admin", "noscript", "loading", "stale"],
    keys: (0, 0, 0),
};

const INT_MAX: i64 = i32::MAX as i64;
const INT_MIN: i64 = i32::MIN as i64;

/// How a parameter's value is checked and normalised.
#[derive(Clone, Copy)]
enum Type {
    /// `yes` or `no`, any case.
    Bool,
    /// A strict integer in `min..=max`.
    Int(i64, i64),
    /// A memory value (`100`, `1k`, `1kb`, `2gb`...) of at least `min`, at most `i64::MAX`.
    Mem(i64),
    /// A memory value with no upper bound but `u64::MAX`.
    UMem,
    /// A memory value or a percentage (`10%`).
    MemPercent,
    /// One of the words, any case; stored lower-case.
    Enum(&'static [&'static str]),
    /// Any string.
    Str,
    /// `save`: pairs of integers `seconds changes`, or empty.
    Save,
    /// `client-output-buffer-limit`: groups of `class hard soft seconds`.
    ClientOutput,
    /// `notify-keyspace-events`: class characters.
    Notify,
    /// `latency-tracking-info-percentiles`: numbers from 0 to 100.
    Percentiles,
    /// `oom-score-adj-values`: three integers from -2000 to 2000.
    OomValues,
}

#[derive(Clone, Copy, PartialEq)]
enum Access {
    Mutable,
    Immutable,
    Protected,
}
use Access::*;

/// One name CONFIG knows; an alias (`slave-priority`) names its canonical parameter, where the
/// value is kept.
struct Param {
    name: &'static str,
    canonical: &'static str,
    access: Access,
    ty: Type,
    default: &'static str,
}

const fn p(
    name: &'static str,
    canonical: &'static str,
    access: Access,
    ty: Type,
    default: &'static str,
) -> Param {
    Param {
        name,
        canonical,
        access,
        ty,
        default,
    }
}

/// Every parameter of redis-server 7.0 (as `CONFIG GET *` lists them, aliases included), with
/// its defaults, and kvd's own `read-consistency`. Defaults that depend on the node (port, dir,
/// maxclients...) are filled in by [`Settings::new`].
static PARAMS: &[Param] = &[
    p(
        "acl-pubsub-default",
        "acl-pubsub-default",
        Mutable,
        Type::Enum(&["allchannels", "resetchannels"]),
        "resetchannels",
    ),
    p("aclfile", "aclfile", Immutable, Type::Str, ""),
    p(
        "acllog-max-len",
        "acllog-max-len",
        Mutable,
        Type::Int(0, i64::MAX),
        "128",
    ),
    p(
        "active-defrag-cycle-max",
        "active-defrag-cycle-max",
        Mutable,
        Type::Int(1, 99),
        "25",
    ),
    p(
        "active-defrag-cycle-min",
        "active-defrag-cycle-min",
        Mutable,
        Type::Int(1, 99),
        "1",
    ),
    p(
        "active-defrag-ignore-bytes",
        "active-defrag-ignore-bytes",
        Mutable,
        Type::Mem(1),
        "104857600",
    ),
    p(
        "active-defrag-max-scan-fields",
        "active-defrag-max-scan-fields",
        Mutable,
        Type::Int(1, i64::MAX),
        "1000",
    ),
    p(
        "active-defrag-threshold-lower",
        "active-defrag-threshold-lower",
        Mutable,
        Type::Int(0, 1000),
        "10",
    ),
    p(
        "active-defrag-threshold-upper",
        "active-defrag-threshold-upper",
        Mutable,
        Type::Int(0, 1000),
        "100",
    ),
    p(
        "active-expire-effort",
        "active-expire-effort",
        Mutable,
        Type::Int(1, 10),
        "1",
    ),
    p("activedefrag", "activedefrag", Mutable, Type::Bool, "no"),
    p(
        "activerehashing",
        "activerehashing",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "always-show-logo",
        "always-show-logo",
        Immutable,
        Type::Str,
        "no",
    ),
    p(
        "aof-disable-auto-gc",
        "aof-disable-auto-gc",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "aof-load-truncated",
        "aof-load-truncated",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "aof-rewrite-incremental-fsync",
        "aof-rewrite-incremental-fsync",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "aof-timestamp-enabled",
        "aof-timestamp-enabled",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "aof-use-rdb-preamble",
        "aof-use-rdb-preamble",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "aof_rewrite_cpulist",
        "aof_rewrite_cpulist",
        Immutable,
        Type::Str,
        "",
    ),
    p(
        "appenddirname",
        "appenddirname",
        Immutable,
        Type::Str,
        "appendonlydir",
    ),
    p(
        "appendfilename",
        "appendfilename",
        Immutable,
        Type::Str,
        "appendonly.aof",
    ),
    p(
        "appendfsync",
        "appendfsync",
        Mutable,
        Type::Enum(&["everysec", "always", "no"]),
        "always",
    ),
    p("appendonly", "appendonly", Mutable, Type::Bool, "no"),
    p(
        "auto-aof-rewrite-min-size",
        "auto-aof-rewrite-min-size",
        Mutable,
        Type::Mem(0),
        "67108864",
    ),
    p(
        "auto-aof-rewrite-percentage",
        "auto-aof-rewrite-percentage",
        Mutable,
        Type::Int(0, INT_MAX),
        "100",
    ),
    p("bgsave_cpulist", "bgsave_cpulist", Immutable, Type::Str, ""),
    p("bind", "bind", Mutable, Type::Str, "*"),
    p(
        "bind-source-addr",
        "bind-source-addr",
        Mutable,
        Type::Str,
        "",
    ),
    p("bio_cpulist", "bio_cpulist", Immutable, Type::Str, ""),
    p(
        "busy-reply-threshold",
        "busy-reply-threshold",
        Mutable,
        Type::Int(0, i64::MAX),
        "5000",
    ),
    p(
        "client-output-buffer-limit",
        "client-output-buffer-limit",
        Mutable,
        Type::ClientOutput,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    ),
    p(
        "client-query-buffer-limit",
        "client-query-buffer-limit",
        Mutable,
        Type::Mem(1048576),
        "1073741824",
    ),
    p(
        "cluster-allow-pubsubshard-when-down",
        "cluster-allow-pubsubshard-when-down",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "cluster-allow-reads-when-down",
        "cluster-allow-reads-when-down",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "cluster-allow-replica-migration",
        "cluster-allow-replica-migration",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "cluster-announce-bus-port",
        "cluster-announce-bus-port",
        Mutable,
        Type::Int(0, 65535),
        "0",
    ),
    p(
        "cluster-announce-hostname",
        "cluster-announce-hostname",
        Mutable,
        Type::Str,
        "",
    ),
    p(
        "cluster-announce-ip",
        "cluster-announce-ip",
        Mutable,
        Type::Str,
        "",
    ),
    p(
        "cluster-announce-port",
        "cluster-announce-port",
        Mutable,
        Type::Int(0, 65535),
        "0",
    ),
    p(
        "cluster-announce-tls-port",
        "cluster-announce-tls-port",
        Mutable,
        Type::Int(0, 65535),
        "0",
    ),
    p(
        "cluster-config-file",
        "cluster-config-file",
        Immutable,
        Type::Str,
        "nodes.conf",
    ),
    p(
        "cluster-enabled",
        "cluster-enabled",
        Immutable,
        Type::Str,
        "no",
    ),
    p(
        "cluster-link-sendbuf-limit",
        "cluster-link-sendbuf-limit",
        Mutable,
        Type::UMem,
        "0",
    ),
    p(
        "cluster-migration-barrier",
        "cluster-migration-barrier",
        Mutable,
        Type::Int(0, INT_MAX),
        "1",
    ),
    p(
        "cluster-node-timeout",
        "cluster-node-timeout",
        Mutable,
        Type::Int(0, i64::MAX),
        "15000",
    ),
    p("cluster-port", "cluster-port", Immutable, Type::Str, "0"),
    p(
        "cluster-preferred-endpoint-type",
        "cluster-preferred-endpoint-type",
        Mutable,
        Type::Enum(&["ip", "hostname", "unknown-endpoint"]),
        "ip",
    ),
    p(
        "cluster-replica-no-failover",
        "cluster-replica-no-failover",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "cluster-replica-validity-factor",
        "cluster-replica-validity-factor",
        Mutable,
        Type::Int(0, INT_MAX),
        "10",
    ),
    p(
        "cluster-require-full-coverage",
        "cluster-require-full-coverage",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "cluster-slave-no-failover",
        "cluster-replica-no-failover",
        Mutable,
        Type::Bool,
        "",
    ),
    p(
        "cluster-slave-validity-factor",
        "cluster-replica-validity-factor",
        Mutable,
        Type::Int(0, INT_MAX),
        "",
    ),
    p(
        "crash-log-enabled",
        "crash-log-enabled",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "crash-memcheck-enabled",
        "crash-memcheck-enabled",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p("daemonize", "daemonize", Immutable, Type::Str, "no"),
    p("databases", "databases", Immutable, Type::Str, "16"),
    p("dbfilename", "dbfilename", Protected, Type::Str, "dump.rdb"),
    p("dir", "dir", Protected, Type::Str, "/tmp"),
    p("disable-thp", "disable-thp", Immutable, Type::Str, "yes"),
    p("dynamic-hz", "dynamic-hz", Mutable, Type::Bool, "yes"),
    p(
        "enable-debug-command",
        "enable-debug-command",
        Immutable,
        Type::Str,
        "no",
    ),
    p(
        "enable-module-command",
        "enable-module-command",
        Immutable,
        Type::Str,
        "no",
    ),
    p(
        "enable-protected-configs",
        "enable-protected-configs",
        Immutable,
        Type::Str,
        "no",
    ),
    p(
        "hash-max-listpack-entries",
        "hash-max-listpack-entries",
        Mutable,
        Type::Int(0, i64::MAX),
        "512",
    ),
    p(
        "hash-max-listpack-value",
        "hash-max-listpack-value",
        Mutable,
        Type::Mem(0),
        "64",
    ),
    p(
        "hash-max-ziplist-entries",
        "hash-max-listpack-entries",
        Mutable,
        Type::Int(0, i64::MAX),
        "",
    ),
    p(
        "hash-max-ziplist-value",
        "hash-max-listpack-value",
        Mutable,
        Type::Mem(0),
        "",
    ),
    p(
        "hll-sparse-max-bytes",
        "hll-sparse-max-bytes",
        Mutable,
        Type::Mem(0),
        "3000",
    ),
    p("hz", "hz", Mutable, Type::Int(0, INT_MAX), "10"),
    p("ignore-warnings", "ignore-warnings", Mutable, Type::Str, ""),
    p("io-threads", "io-threads", Immutable, Type::Str, "1"),
    p(
        "io-threads-do-reads",
        "io-threads-do-reads",
        Immutable,
        Type::Str,
        "no",
    ),
    p(
        "jemalloc-bg-thread",
        "jemalloc-bg-thread",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "latency-monitor-threshold",
        "latency-monitor-threshold",
        Mutable,
        Type::Int(0, i64::MAX),
        "0",
    ),
    p(
        "latency-tracking",
        "latency-tracking",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "latency-tracking-info-percentiles",
        "latency-tracking-info-percentiles",
        Mutable,
        Type::Percentiles,
        "50 99 99.9",
    ),
    p(
        "lazyfree-lazy-eviction",
        "lazyfree-lazy-eviction",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "lazyfree-lazy-expire",
        "lazyfree-lazy-expire",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "lazyfree-lazy-server-del",
        "lazyfree-lazy-server-del",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "lazyfree-lazy-user-del",
        "lazyfree-lazy-user-del",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "lazyfree-lazy-user-flush",
        "lazyfree-lazy-user-flush",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "lfu-decay-time",
        "lfu-decay-time",
        Mutable,
        Type::Int(0, INT_MAX),
        "1",
    ),
    p(
        "lfu-log-factor",
        "lfu-log-factor",
        Mutable,
        Type::Int(0, INT_MAX),
        "10",
    ),
    p(
        "list-compress-depth",
        "list-compress-depth",
        Mutable,
        Type::Int(0, INT_MAX),
        "0",
    ),
    p(
        "list-max-listpack-size",
        "list-max-listpack-size",
        Mutable,
        Type::Int(i32::MIN as i64, i32::MAX as i64),
        "-2",
    ),
    p(
        "list-max-ziplist-size",
        "list-max-listpack-size",
        Mutable,
        Type::Int(i32::MIN as i64, i32::MAX as i64),
        "",
    ),
    p("logfile", "logfile", Immutable, Type::Str, ""),
    p(
        "loglevel",
        "loglevel",
        Mutable,
        Type::Enum(&["debug", "verbose", "notice", "warning"]),
        "notice",
    ),
    p(
        "lua-time-limit",
        "lua-time-limit",
        Mutable,
        Type::Int(0, i64::MAX),
        "5000",
    ),
    p("masterauth", "masterauth", Mutable, Type::Str, ""),
    p("masteruser", "masteruser", Mutable, Type::Str, ""),
    p(
        "maxclients",
        "maxclients",
        Mutable,
        Type::Int(1, 4294967295),
        "10000",
    ),
    p("maxmemory", "maxmemory", Mutable, Type::UMem, "0"),
    p(
        "maxmemory-clients",
        "maxmemory-clients",
        Mutable,
        Type::MemPercent,
        "0",
    ),
    p(
        "maxmemory-eviction-tenacity",
        "maxmemory-eviction-tenacity",
        Mutable,
        Type::Int(0, 100),
        "10",
    ),
    p(
        "maxmemory-policy",
        "maxmemory-policy",
        Mutable,
        Type::Enum(&[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ]),
        "noeviction",
    ),
    p(
        "maxmemory-samples",
        "maxmemory-samples",
        Mutable,
        Type::Int(1, INT_MAX),
        "5",
    ),
    p(
        "min-replicas-max-lag",
        "min-replicas-max-lag",
        Mutable,
        Type::Int(0, INT_MAX),
        "10",
    ),
    p(
        "min-replicas-to-write",
        "min-replicas-to-write",
        Mutable,
        Type::Int(0, INT_MAX),
        "0",
    ),
    p(
        "min-slaves-max-lag",
        "min-replicas-max-lag",
        Mutable,
        Type::Int(0, INT_MAX),
        "",
    ),
    p(
        "min-slaves-to-write",
        "min-replicas-to-write",
        Mutable,
        Type::Int(0, INT_MAX),
        "",
    ),
    p(
        "no-appendfsync-on-rewrite",
        "no-appendfsync-on-rewrite",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "notify-keyspace-events",
        "notify-keyspace-events",
        Mutable,
        Type::Notify,
        "",
    ),
    p(
        "oom-score-adj",
        "oom-score-adj",
        Mutable,
        Type::Enum(&["no", "yes", "relative", "absolute"]),
        "no",
    ),
    p(
        "oom-score-adj-values",
        "oom-score-adj-values",
        Mutable,
        Type::OomValues,
        "0 200 800",
    ),
    p("pidfile", "pidfile", Immutable, Type::Str, ""),
    p("port", "port", Mutable, Type::Int(0, 65535), "7950"),
    p(
        "proc-title-template",
        "proc-title-template",
        Mutable,
        Type::Str,
        "{title} {listen-addr} {server-mode}",
    ),
    p(
        "propagation-error-behavior",
        "propagation-error-behavior",
        Mutable,
        Type::Enum(&["ignore", "panic", "panic-on-replicas"]),
        "ignore",
    ),
    p(
        "protected-mode",
        "protected-mode",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "proto-max-bulk-len",
        "proto-max-bulk-len",
        Mutable,
        Type::Mem(1048576),
        "536870912",
    ),
    p(
        "rdb-del-sync-files",
        "rdb-del-sync-files",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "rdb-save-incremental-fsync",
        "rdb-save-incremental-fsync",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p("rdbchecksum", "rdbchecksum", Immutable, Type::Str, "yes"),
    p(
        "rdbcompression",
        "rdbcompression",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "repl-backlog-size",
        "repl-backlog-size",
        Mutable,
        Type::Mem(1),
        "1048576",
    ),
    p(
        "repl-backlog-ttl",
        "repl-backlog-ttl",
        Mutable,
        Type::Int(0, i64::MAX),
        "3600",
    ),
    p(
        "repl-disable-tcp-nodelay",
        "repl-disable-tcp-nodelay",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "repl-diskless-load",
        "repl-diskless-load",
        Mutable,
        Type::Enum(&["disabled", "on-empty-db", "swapdb"]),
        "disabled",
    ),
    p(
        "repl-diskless-sync",
        "repl-diskless-sync",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "repl-diskless-sync-delay",
        "repl-diskless-sync-delay",
        Mutable,
        Type::Int(0, INT_MAX),
        "5",
    ),
    p(
        "repl-diskless-sync-max-replicas",
        "repl-diskless-sync-max-replicas",
        Mutable,
        Type::Int(0, INT_MAX),
        "0",
    ),
    p(
        "repl-ping-replica-period",
        "repl-ping-replica-period",
        Mutable,
        Type::Int(1, INT_MAX),
        "10",
    ),
    p(
        "repl-ping-slave-period",
        "repl-ping-replica-period",
        Mutable,
        Type::Int(1, INT_MAX),
        "",
    ),
    p(
        "repl-timeout",
        "repl-timeout",
        Mutable,
        Type::Int(1, INT_MAX),
        "60",
    ),
    p(
        "replica-announce-ip",
        "replica-announce-ip",
        Mutable,
        Type::Str,
        "",
    ),
    p(
        "replica-announce-port",
        "replica-announce-port",
        Mutable,
        Type::Int(0, 65535),
        "0",
    ),
    p(
        "replica-announced",
        "replica-announced",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "replica-ignore-disk-write-errors",
        "replica-ignore-disk-write-errors",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "replica-ignore-maxmemory",
        "replica-ignore-maxmemory",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "replica-lazy-flush",
        "replica-lazy-flush",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "replica-priority",
        "replica-priority",
        Mutable,
        Type::Int(0, INT_MAX),
        "100",
    ),
    p(
        "replica-read-only",
        "replica-read-only",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "replica-serve-stale-data",
        "replica-serve-stale-data",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p("replicaof", "replicaof", Immutable, Type::Str, ""),
    p("requirepass", "requirepass", Mutable, Type::Str, ""),
    p(
        "sanitize-dump-payload",
        "sanitize-dump-payload",
        Mutable,
        Type::Enum(&["no", "yes", "clients"]),
        "no",
    ),
    p("save", "save", Mutable, Type::Save, ""),
    p("server_cpulist", "server_cpulist", Immutable, Type::Str, ""),
    p(
        "set-max-intset-entries",
        "set-max-intset-entries",
        Mutable,
        Type::Int(0, i64::MAX),
        "512",
    ),
    p(
        "set-proc-title",
        "set-proc-title",
        Immutable,
        Type::Str,
        "yes",
    ),
    p(
        "shutdown-on-sigint",
        "shutdown-on-sigint",
        Mutable,
        Type::Enum(&["default", "save", "nosave", "now", "force"]),
        "default",
    ),
    p(
        "shutdown-on-sigterm",
        "shutdown-on-sigterm",
        Mutable,
        Type::Enum(&["default", "save", "nosave", "now", "force"]),
        "default",
    ),
    p(
        "shutdown-timeout",
        "shutdown-timeout",
        Mutable,
        Type::Int(0, INT_MAX),
        "10",
    ),
    p(
        "slave-announce-ip",
        "replica-announce-ip",
        Mutable,
        Type::Str,
        "",
    ),
    p(
        "slave-announce-port",
        "replica-announce-port",
        Mutable,
        Type::Int(0, 65535),
        "",
    ),
    p(
        "slave-ignore-maxmemory",
        "replica-ignore-maxmemory",
        Mutable,
        Type::Bool,
        "",
    ),
    p(
        "slave-lazy-flush",
        "replica-lazy-flush",
        Mutable,
        Type::Bool,
        "",
    ),
    p(
        "slave-priority",
        "replica-priority",
        Mutable,
        Type::Int(0, INT_MAX),
        "",
    ),
    p(
        "slave-read-only",
        "replica-read-only",
        Mutable,
        Type::Bool,
        "",
    ),
    p(
        "slave-serve-stale-data",
        "replica-serve-stale-data",
        Mutable,
        Type::Bool,
        "",
    ),
    p("slaveof", "replicaof", Immutable, Type::Str, ""),
    p(
        "slowlog-log-slower-than",
        "slowlog-log-slower-than",
        Mutable,
        Type::Int(-1, i64::MAX),
        "10000",
    ),
    p(
        "slowlog-max-len",
        "slowlog-max-len",
        Mutable,
        Type::Int(0, i64::MAX),
        "128",
    ),
    p(
        "socket-mark-id",
        "socket-mark-id",
        Immutable,
        Type::Str,
        "0",
    ),
    p(
        "stop-writes-on-bgsave-error",
        "stop-writes-on-bgsave-error",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "stream-node-max-bytes",
        "stream-node-max-bytes",
        Mutable,
        Type::Mem(0),
        "4096",
    ),
    p(
        "stream-node-max-entries",
        "stream-node-max-entries",
        Mutable,
        Type::Int(0, i64::MAX),
        "100",
    ),
    p("supervised", "supervised", Immutable, Type::Str, "no"),
    p(
        "syslog-enabled",
        "syslog-enabled",
        Immutable,
        Type::Str,
        "no",
    ),
    p(
        "syslog-facility",
        "syslog-facility",
        Immutable,
        Type::Str,
        "local0",
    ),
    p(
        "syslog-ident",
        "syslog-ident",
        Immutable,
        Type::Str,
        "redis",
    ),
    p("tcp-backlog", "tcp-backlog", Immutable, Type::Str, "511"),
    p(
        "tcp-keepalive",
        "tcp-keepalive",
        Mutable,
        Type::Int(0, INT_MAX),
        "300",
    ),
    p("timeout", "timeout", Mutable, Type::Int(0, INT_MAX), "0"),
    p(
        "tls-auth-clients",
        "tls-auth-clients",
        Mutable,
        Type::Enum(&["no", "yes", "optional"]),
        "yes",
    ),
    p("tls-ca-cert-dir", "tls-ca-cert-dir", Mutable, Type::Str, ""),
    p(
        "tls-ca-cert-file",
        "tls-ca-cert-file",
        Mutable,
        Type::Str,
        "",
    ),
    p("tls-cert-file", "tls-cert-file", Mutable, Type::Str, ""),
    p("tls-ciphers", "tls-ciphers", Mutable, Type::Str, ""),
    p(
        "tls-ciphersuites",
        "tls-ciphersuites",
        Mutable,
        Type::Str,
        "",
    ),
    p(
        "tls-client-cert-file",
        "tls-client-cert-file",
        Mutable,
        Type::Str,
        "",
    ),
    p(
        "tls-client-key-file",
        "tls-client-key-file",
        Mutable,
        Type::Str,
        "",
    ),
    p(
        "tls-client-key-file-pass",
        "tls-client-key-file-pass",
        Mutable,
        Type::Str,
        "",
    ),
    p("tls-cluster", "tls-cluster", Mutable, Type::Bool, "no"),
    p(
        "tls-dh-params-file",
        "tls-dh-params-file",
        Mutable,
        Type::Str,
        "",
    ),
    p("tls-key-file", "tls-key-file", Mutable, Type::Str, ""),
    p(
        "tls-key-file-pass",
        "tls-key-file-pass",
        Mutable,
        Type::Str,
        "",
    ),
    p("tls-port", "tls-port", Immutable, Type::Int(0, 65535), "0"),
    p(
        "tls-prefer-server-ciphers",
        "tls-prefer-server-ciphers",
        Mutable,
        Type::Bool,
        "no",
    ),
    p("tls-protocols", "tls-protocols", Mutable, Type::Str, ""),
    p(
        "tls-replication",
        "tls-replication",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "tls-session-cache-size",
        "tls-session-cache-size",
        Mutable,
        Type::Int(0, INT_MAX),
        "20480",
    ),
    p(
        "tls-session-cache-timeout",
        "tls-session-cache-timeout",
        Mutable,
        Type::Int(0, INT_MAX),
        "300",
    ),
    p(
        "tls-session-caching",
        "tls-session-caching",
        Mutable,
        Type::Bool,
        "yes",
    ),
    p(
        "tracking-table-max-keys",
        "tracking-table-max-keys",
        Mutable,
        Type::Int(0, i64::MAX),
        "1000000",
    ),
    p("unixsocket", "unixsocket", Immutable, Type::Str, ""),
    p(
        "unixsocketperm",
        "unixsocketperm",
        Immutable,
        Type::Str,
        "0",
    ),
    p(
        "zset-max-listpack-entries",
        "zset-max-listpack-entries",
        Mutable,
        Type::Int(0, i64::MAX),
        "128",
    ),
    p(
        "zset-max-listpack-value",
        "zset-max-listpack-value",
        Mutable,
        Type::Mem(0),
        "64",
    ),
    p(
        "zset-max-ziplist-entries",
        "zset-max-listpack-entries",
        Mutable,
        Type::Int(0, i64::MAX),
        "",
    ),
    p(
        "zset-max-ziplist-value",
        "zset-max-listpack-value",
        Mutable,
        Type::Mem(0),
        "",
    ),
    // kvd's own, set at start (`--read-consistency`); CONFIG SET takes only its current value.
    p(
        "read-consistency",
        "read-consistency",
        Mutable,
        Type::Str,
        "local",
    ),
    // Redis's hidden configs (debugging knobs its tests set): shown only when asked for by
    // name, never by a pattern. No effect in kvd (it has no RDB loading or saving to slow
    // down, no watchdog, and a panic is a panic).
    p(
        "key-load-delay",
        "key-load-delay",
        Mutable,
        Type::Int(INT_MIN, INT_MAX),
        "0",
    ),
    p(
        "rdb-key-save-delay",
        "rdb-key-save-delay",
        Mutable,
        Type::Int(INT_MIN, INT_MAX),
        "0",
    ),
    p(
        "loading-process-events-interval-bytes",
        "loading-process-events-interval-bytes",
        Mutable,
        Type::Int(1024, INT_MAX),
        "2097152",
    ),
    p(
        "watchdog-period",
        "watchdog-period",
        Mutable,
        Type::Int(0, INT_MAX),
        "0",
    ),
    p(
        "use-exit-on-panic",
        "use-exit-on-panic",
        Mutable,
        Type::Bool,
        "no",
    ),
    p(
        "lua-enable-deprecated-api",
        "lua-enable-deprecated-api",
        Immutable,
        Type::Bool,
        "no",
    ),
];

/// The hidden parameters (the tail of `PARAMS`): CONFIG GET shows them only by exact name.
const HIDDEN: &[&str] = &[
    "key-load-delay",
    "rdb-key-save-delay",
    "loading-process-events-interval-bytes",
    "watchdog-period",
    "use-exit-on-panic",
    "lua-enable-deprecated-api",
];

fn find(name: &[u8]) -> Option<&'static Param> {
    PARAMS.iter().find(|p| is(name, p.name))
}

/// This node's CONFIG values, and the few kvd acts on, as atomics the connections read.
pub struct Settings {
    /// Canonical name to value, as CONFIG GET shows it. `requirepass` lives in
    /// `Shared::requirepass` instead.
    values: Mutex<HashMap<&'static str, String>>,
    /// `maxclients`: connections beyond it are refused at accept.
    pub maxclients: AtomicUsize,
    /// `timeout`: seconds a client may stay idle before it is closed; 0 never.
    pub timeout_secs: AtomicU64,
    /// `proto-max-bulk-len`: the longest bulk string a new connection's decoder accepts.
    pub proto_max_bulk_len: AtomicUsize,
    /// The output limit a connection is closed at: the `normal` hard limit of
    /// `client-output-buffer-limit` when it is not 0, else `--client-output-limit-mb`.
    pub output_limit: AtomicUsize,
    flag_output_limit: usize,
}

impl Settings {
    pub fn new(cfg: &Config) -> Settings {
        let mut values: HashMap<&'static str, String> = PARAMS
            .iter()
            .filter(|p| p.name == p.canonical)
            .map(|p| (p.name, p.default.to_string()))
            .collect();
        let mut node = |name: &'static str, v: String| {
            values.insert(name, v);
        };
        node("port", cfg.addr.port().to_string());
        node("bind", cfg.addr.ip().to_string());
        node("dir", cfg.data_dir.display().to_string());
        node("maxclients", cfg.max_clients.to_string());
        node("proto-max-bulk-len", cfg.proto_max_bulk_len.to_string());
        node("io-threads", cfg.io_threads.to_string());
        node("databases", crate::kv::encoding::DATABASES.to_string());
        node(
            "read-consistency",
            format!("{:?}", cfg.read_consistency).to_ascii_lowercase(),
        );
        Settings {
            values: Mutex::new(values),
            maxclients: AtomicUsize::new(cfg.max_clients),
            timeout_secs: AtomicU64::new(0),
            proto_max_bulk_len: AtomicUsize::new(cfg.proto_max_bulk_len),
            output_limit: AtomicUsize::new(cfg.client_output_limit),
            flag_output_limit: cfg.client_output_limit,
        }
    }

    fn values(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, String>> {
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current value of a canonical parameter (empty if unknown).
    pub fn get(&self, name: &str) -> String {
        self.values().get(name).cloned().unwrap_or_default()
    }
}

/// `CONFIG <subcommand>`.
fn config(s: &mut Session, argv: &[Bytes]) -> Reply {
    let sub = &argv[1];
    let n = argv.len();
    if is(sub, "get") && n >= 3 {
        return config_get(s, &argv[2..]);
    }
    if is(sub, "set") && n >= 4 {
        if !n.is_multiple_of(2) {
            return syntax_error();
        }
        return config_set(s, &argv[2..]);
    }
    if is(sub, "resetstat") && n == 2 {
        s.shared.stats.reset();
        crate::evict::reset_stats();
        return Reply::ok();
    }
    if is(sub, "rewrite") && n == 2 {
        return Reply::error("ERR The server is running without a config file");
    }
    if is(sub, "help") && n == 2 {
        return help();
    }
    if ["get", "set", "resetstat", "rewrite", "help"]
        .iter()
        .any(|k| is(sub, k))
    {
        return wrong_arity(&format!("config|{}", lossy(sub, 32).to_ascii_lowercase()));
    }
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try CONFIG HELP.",
        lossy(sub, 128)
    ))
}

fn help() -> Reply {
    const LINES: &[&str] = &[
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>",
        "    Set the configuration <directive> to <value>.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "REWRITE",
        "    Rewrite the configuration file.",
        "HELP",
        "    Prints this help.",
    ];
    Reply::Array(LINES.iter().map(|l| Reply::status(*l)).collect())
}

/// `CONFIG GET pattern [pattern ...]`: a map (RESP3) or a flat array (RESP2) of names and
/// values, each parameter once, in the order of the patterns (a glob's matches in name order).
/// A plain name is echoed as the client spelled it, as Redis 7 does.
fn config_get(s: &Session, patterns: &[Bytes]) -> Reply {
    let settings = &s.shared.settings;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let values = settings.values();
    let value = |p: &Param| {
        if p.canonical == "requirepass" {
            s.shared.requirepass.shown()
        } else {
            values.get(p.canonical).cloned().unwrap_or_default()
        }
    };
    for pattern in patterns {
        if !pattern.iter().any(|b| b"*?[".contains(b)) {
            if let Some(p) = find(pattern)
                && seen.insert(p.name)
            {
                out.push((Reply::Bulk(pattern.clone()), Reply::bulk(value(p))));
            }
            continue;
        }
        for p in PARAMS.iter().filter(|p| !HIDDEN.contains(&p.name)) {
            if glob::matches(pattern, p.name.as_bytes(), true) && seen.insert(p.name) {
                out.push((Reply::bulk(p.name), Reply::bulk(value(p))));
            }
        }
    }
    Reply::Map(out)
}

fn set_failed(name: &[u8], why: &str) -> Reply {
    Reply::error(format!(
        "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
        lossy(name, 128)
    ))
}

/// `CONFIG SET name value [name value ...]`, all or nothing as in Redis 7.0: first every name
/// is checked (known, changeable, not given twice), then every value; only if all pass are
/// they stored and put into effect.
fn config_set(s: &Session, pairs: &[Bytes]) -> Reply {
    let mut chosen: Vec<(&'static Param, &Bytes)> = Vec::new();
    for pair in pairs.chunks(2) {
        let (name, value) = (&pair[0], &pair[1]);
        let Some(p) = find(name) else {
            return Reply::error(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                lossy(name, 128)
            ));
        };
        match p.access {
            Immutable => return set_failed(name, "can't set immutable config"),
            Protected => return set_failed(name, "can't set protected config"),
            Mutable => {}
        }
        if chosen.iter().any(|(q, _)| q.canonical == p.canonical) {
            return set_failed(name, "duplicate parameter");
        }
        chosen.push((p, value));
    }
    let settings = &s.shared.settings;
    let mut normalised = Vec::with_capacity(chosen.len());
    for (i, (p, value)) in chosen.iter().enumerate() {
        let current = settings.get(p.canonical);
        match normalise(p.ty, value, &current) {
            Ok(v) => normalised.push((p.canonical, v)),
            Err(why) => return set_failed(&pairs[2 * i], &why),
        }
    }
    // Redis's apply stage: its only fallible step is rebinding, and nothing was changed yet,
    // so a refusal leaves every parameter as it was (Redis rolls back to the same end).
    for (name, value) in &normalised {
        if let Err(why) = check_apply(name, value, &settings.get(name), &settings.get("bind")) {
            return set_failed(name.as_bytes(), &why);
        }
    }
    for (name, value) in normalised {
        take_effect(s, name, &value);
        if name != "requirepass" {
            settings.values().insert(name, value);
        }
    }
    Reply::ok()
}

/// `port` / `bind` set to `value` from `current`: the same value is a no-op; a value Redis
/// could not listen on gets Redis's error; one it could is refused, because kvd keeps its client
/// listener for its life (the cluster's membership records each node's client address, which
/// followers and clients are sent to).
/// `bind_ip` is the address the node listens on (where a new port is tried).
fn check_apply(name: &str, value: &str, current: &str, bind_ip: &str) -> Result<(), String> {
    if !matches!(name, "port" | "bind" | "read-consistency") || value == current {
        return Ok(());
    }
    if name == "read-consistency" {
        return Err("kvd sets it at start only (--read-consistency)".into());
    }
    const REFUSED: &str =
        "kvd cannot move its client listener at run time (restart it with another --addr)";
    if name == "port" {
        let ip: std::net::IpAddr = bind_ip
            .parse()
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let port: u16 = value.parse().map_err(|_| "Unable to listen on this port")?;
        return match std::net::TcpListener::bind((ip, port)) {
            Ok(_) => Err(REFUSED.into()),
            Err(_) => Err("Unable to listen on this port".into()),
        };
    }
    let valid = !value.trim().is_empty()
        && value.split_whitespace().all(|w| {
            let w = w.strip_prefix('-').unwrap_or(w);
            w == "*" || w.parse::<std::net::IpAddr>().is_ok()
        });
    if valid {
        Err(REFUSED.into())
    } else {
        Err("Failed to bind to specified addresses.".into())
    }
}

/// What a new value changes in kvd, beyond being shown by CONFIG GET.
fn take_effect(s: &Session, name: &str, value: &str) {
    let settings = &s.shared.settings;
    match name {
        "requirepass" => s.shared.requirepass.set(Some(value.to_string())),
        "maxclients" => {
            if let Ok(n) = value.parse() {
                settings.maxclients.store(n, Relaxed);
            }
        }
        "timeout" => {
            if let Ok(n) = value.parse() {
                settings.timeout_secs.store(n, Relaxed);
            }
        }
        "slowlog-log-slower-than" => {
            if let Ok(n) = value.parse() {
                s.shared.slowlog.set_slower_than(n);
            }
        }
        "slowlog-max-len" => {
            if let Ok(n) = value.parse() {
                s.shared.slowlog.set_max_len(n);
            }
        }
        "proto-max-bulk-len" => {
            if let Ok(n) = value.parse() {
                settings.proto_max_bulk_len.store(n, Relaxed);
            }
        }
        "save" => s
            .shared
            .events
            .persistence
            .set_save_points(!value.trim().is_empty()),
        "maxmemory" => {
            // Above it this node evicts, or refuses `denyoom` commands (`super::maxmemory`).
            if let Ok(n) = value.parse() {
                crate::memory::set_maxmemory(n);
            }
        }
        "maxmemory-policy" => crate::evict::set_policy(value),
        "lfu-log-factor" => {
            if let Ok(n) = value.parse() {
                crate::access::set_log_factor(n);
            }
        }
        "lfu-decay-time" => {
            if let Ok(n) = value.parse() {
                crate::access::set_decay_minutes(n);
            }
        }
        "maxmemory-samples" => {
            if let Ok(n) = value.parse() {
                crate::evict::set_samples(n);
            }
        }
        "min-replicas-to-write" => {
            if let Ok(n) = value.parse() {
                super::min_replicas::set_to_write(n);
            }
        }
        "min-replicas-max-lag" => {
            if let Ok(n) = value.parse() {
                super::min_replicas::set_max_lag(n);
            }
        }
        "notify-keyspace-events" => s.shared.pubsub.set_notify_flags(value),
        "stream-node-max-entries" => {
            if let Ok(n) = value.parse() {
                super::stream::set_node_entries(n);
            }
        }
        "tracking-table-max-keys" => {
            if let Ok(n) = value.parse() {
                s.shared.pubsub.tracking.max_keys.store(n, Relaxed);
                s.shared.pubsub.enforce_tracking_limit();
            }
        }
        "client-output-buffer-limit" => {
            s.shared.pubsub.limits.set_from_config(value);
            let hard = value
                .split(' ')
                .collect::<Vec<_>>()
                .chunks(4)
                .find(|g| g[0] == "normal")
                .and_then(|g| g.get(1)?.parse::<usize>().ok())
                .unwrap_or(0);
            let limit = if hard == 0 {
                settings.flag_output_limit
            } else {
                hard
            };
            settings.output_limit.store(limit, Relaxed);
        }
        _ => {}
    }
}

/// Checks a value as redis-server does and returns it as CONFIG GET will show it; the error is
/// the reason redis-server gives.
fn normalise(ty: Type, raw: &[u8], current: &str) -> Result<String, String> {
    let text = String::from_utf8_lossy(raw);
    match ty {
        Type::Bool => match text.to_ascii_lowercase().as_str() {
            v @ ("yes" | "no") => Ok(v.to_string()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Type::Int(min, max) => {
            let n = parse_i64(raw).ok_or("argument couldn't be parsed into an integer")?;
            in_range(n as i128, min, max)?;
            Ok(n.to_string())
        }
        Type::Mem(min) => {
            let n = parse_memory(raw).ok_or("argument must be a memory value")?;
            in_range(n as i128, min, i64::MAX)?;
            Ok(n.to_string())
        }
        Type::UMem => Ok(parse_memory(raw)
            .ok_or("argument must be a memory value")?
            .to_string()),
        Type::MemPercent => {
            if let Some(pct) = raw.strip_suffix(b"%") {
                let n = parse_i64(pct)
                    .filter(|n| *n >= 0)
                    .ok_or("argument must be a memory or percent value")?;
                if n > 100 {
                    return Err("percentage argument must be less or equal to 100".into());
                }
                return Ok(format!("{n}%"));
            }
            Ok(parse_memory(raw)
                .ok_or("argument must be a memory or percent value")?
                .to_string())
        }
        Type::Enum(words) => {
            let lower = text.to_ascii_lowercase();
            if words.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(format!(
                    "argument(s) must be one of the following: {}",
                    words.join(", ")
                ))
            }
        }
        Type::Str => Ok(text.into_owned()),
        Type::Save => {
            let words: Vec<&str> = text.split_whitespace().collect();
            let nums: Option<Vec<i64>> = words
                .iter()
                .map(|w| parse_i64(w.as_bytes()).filter(|n| *n >= 0))
                .collect();
            match nums {
                Some(nums) if nums.len() % 2 == 0 => Ok(nums
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")),
                _ => Err("Invalid save parameters".into()),
            }
        }
        Type::ClientOutput => client_output_limits(&text, current),
        Type::Notify => notify_flags(&text),
        Type::Percentiles => {
            let mut out = Vec::new();
            for w in text.split_whitespace() {
                let v: f64 = w
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite())
                    .ok_or("Invalid latency-tracking-info-percentiles parameters")?;
                if !(0.0..=100.0).contains(&v) {
                    return Err(
                        "latency-tracking-info-percentiles parameters should sit between \
                         [0.0,100.0]"
                            .into(),
                    );
                }
                out.push(v.to_string());
            }
            Ok(out.join(" "))
        }
        Type::OomValues => {
            let words: Vec<&str> = text.split_whitespace().collect();
            if words.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            let mut out = Vec::new();
            for w in words {
                let n = parse_i64(w.as_bytes())
                    .filter(|n| (-2000..=2000).contains(n))
                    .ok_or("Invalid oom-score-adj-values value")?;
                out.push(n.to_string());
            }
            Ok(out.join(" "))
        }
    }
}

fn in_range(n: i128, min: i64, max: i64) -> Result<(), String> {
    if n < min as i128 || n > max as i128 {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    Ok(())
}

/// A memory value as Redis reads one: digits and an optional unit, `b`, `k` (1000), `kb`
/// (1024), `m`, `mb`, `g`, `gb`, in any case. Too large saturates, as Redis's parser does.
pub fn parse_memory(raw: &[u8]) -> Option<u64> {
    let lower = raw.to_ascii_lowercase();
    let digits = lower.iter().take_while(|b| b.is_ascii_digit()).count();
    let (num, unit) = lower.split_at(digits);
    let mul: u64 = match unit {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if num.is_empty() {
        return None;
    }
    let n: u128 = std::str::from_utf8(num)
        .ok()?
        .parse()
        .unwrap_or(u128::from(u64::MAX));
    Some(u64::try_from(n.saturating_mul(u128::from(mul))).unwrap_or(u64::MAX))
}

/// `client-output-buffer-limit`: the classes given replace theirs in `current`; the value is
/// shown with every class, `replica` as `slave`, memory in bytes.
fn client_output_limits(text: &str, current: &str) -> Result<String, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut classes: Vec<(String, [String; 3])> = Vec::new();
    let cur: Vec<&str> = current.split_whitespace().collect();
    for g in cur.chunks(4).filter(|g| g.len() == 4) {
        classes.push((g[0].to_string(), [g[1].into(), g[2].into(), g[3].into()]));
    }
    let mut updates = Vec::new();
    for g in words.chunks(4) {
        let class = match g[0].to_ascii_lowercase().as_str() {
            "normal" => "normal",
            "slave" | "replica" => "slave",
            "pubsub" => "pubsub",
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into());
            }
        };
        let bad = || "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
        let hard = parse_memory(g[1].as_bytes()).ok_or_else(bad)?;
        let soft = parse_memory(g[2].as_bytes()).ok_or_else(bad)?;
        let secs = parse_i64(g[3].as_bytes())
            .filter(|n| *n >= 0)
            .ok_or_else(bad)?;
        updates.push((
            class,
            [hard.to_string(), soft.to_string(), secs.to_string()],
        ));
    }
    for (class, v) in updates {
        match classes.iter_mut().find(|(c, _)| c == class) {
            Some(slot) => slot.1 = v,
            None => classes.push((class.to_string(), v)),
        }
    }
    Ok(classes
        .iter()
        .map(|(c, [h, s, t])| format!("{c} {h} {s} {t}"))
        .collect::<Vec<_>>()
        .join(" "))
}

/// `notify-keyspace-events`: checked against Redis's class characters and shown in its order
/// (`A` for all the type classes together).
fn notify_flags(text: &str) -> Result<String, String> {
    const TYPES: &str = "g$lshzxetd";
    let mut set = std::collections::BTreeSet::new();
    for c in text.chars() {
        match c {
            'A' => set.extend(TYPES.chars()),
            c if "g$lshzxeKEtmdn".contains(c) => {
                set.insert(c);
            }
            _ => return Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
        }
    }
    let mut out = String::new();
    // As Redis's keyspaceEventsFlagsToString: `n` is shown only without `A` (a quirk kept).
    if TYPES.chars().all(|c| set.contains(&c)) {
        out.push('A');
    } else {
        out.extend(TYPES.chars().filter(|c| set.contains(c)));
        if set.contains(&'n') {
            out.push('n');
        }
    }
    out.extend("KEm".chars().filter(|c| set.contains(c)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory(b"100"), Some(100));
        assert_eq!(parse_memory(b"1k"), Some(1000));
        assert_eq!(parse_memory(b"1KB"), Some(1024));
        assert_eq!(parse_memory(b"1gb"), Some(1 << 30));
        for bad in [&b""[..], b"-5", b"1.5gb", b"gb", b"1tb", b" 1"] {
            assert_eq!(parse_memory(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn values_are_checked_as_redis() {
        assert_eq!(normalise(Type::Bool, b"YES", "").unwrap(), "yes");
        assert_eq!(
            normalise(Type::Int(0, 10), b"11", "").unwrap_err(),
            "argument must be between 0 and 10 inclusive"
        );
        assert_eq!(
            normalise(Type::Int(0, 10), b"1k", "").unwrap_err(),
            "argument couldn't be parsed into an integer"
        );
        assert_eq!(
            normalise(Type::Save, b"3600 1 300 100", "").unwrap(),
            "3600 1 300 100"
        );
        assert!(normalise(Type::Save, b"100", "").is_err());
        assert_eq!(normalise(Type::Save, b"", "").unwrap(), "");
        assert_eq!(normalise(Type::Notify, b"KEA", "").unwrap(), "AKE");
        let cur = "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60";
        assert_eq!(
            normalise(Type::ClientOutput, b"normal 1mb 2mb 60", cur).unwrap(),
            "normal 1048576 2097152 60 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
    }

    #[test]
    fn port_and_bind_take_their_current_value_and_refuse_others_as_redis_words_it() {
        assert_eq!(check_apply("port", "7001", "7001", "127.0.0.1"), Ok(()));
        assert_eq!(
            check_apply("bind", "127.0.0.1", "127.0.0.1", "127.0.0.1"),
            Ok(())
        );
        assert_eq!(
            check_apply("bind", "999.999.999.999", "127.0.0.1", "127.0.0.1").unwrap_err(),
            "Failed to bind to specified addresses."
        );
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port().to_string();
        assert_eq!(
            check_apply("port", &port, "1", "127.0.0.1").unwrap_err(),
            "Unable to listen on this port"
        );
        drop(taken);
        assert!(
            check_apply("port", &port, "1", "127.0.0.1")
                .unwrap_err()
                .starts_with("kvd cannot move")
        );
        assert!(check_apply("bind", "127.0.0.2", "127.0.0.1", "127.0.0.1").is_err());
        assert_eq!(check_apply("maxmemory", "1", "2", "127.0.0.1"), Ok(()));
        assert_eq!(
            normalise(Type::MemPercent, b"200%", "").unwrap_err(),
            "percentage argument must be less or equal to 100"
        );
        assert_eq!(normalise(Type::MemPercent, b"100%", "").unwrap(), "100%");
    }

    #[test]
    fn every_alias_names_a_parameter() {
        for p in PARAMS {
            let c = find(p.canonical.as_bytes()).unwrap();
            assert_eq!(c.name, c.canonical, "{}", p.name);
        }
    }
}
