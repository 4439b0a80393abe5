//! kvd: a Redis-protocol key-value server whose writes are replicated with Raft.
//!
//! Map of the crate, following a write from the socket to the disk and back:
//! - `server`: accept loops, startup and graceful shutdown; `connection`: one client's read →
//!   decode → execute → reply loop (pipelining, ordering, output limits); `session`: its state
//!   (selected database, protocol, auth, read mode, name, MULTI queue, WATCHed keys) and the
//!   registry of live connections (CLIENT LIST/KILL/PAUSE).
//! - `resp`: the protocol: streaming request decoder (`resp::decode`) and the one reply encoder.
//! - `cmd`: the command table (`cmd::TABLE`, one registry line per command, one file per group).
//!   A command is **parsed and checked** in `connection::Conn::check` (arity, sizes) and its
//!   `prepare` (options; relative times made absolute), **proposed** by the connection through
//!   `raft::RaftHandle::propose_later`, **applied** on every node by `cmd::apply_write` (called
//!   by `kv::machine::StateMachine::apply`, which the raft loop calls), and **answered** by the proposing node's connection with the reply of
//!   its own apply. Reads run on `kv::Reader` views of the node's applied state.
//!   Transactions (`cmd::transactions`): the connection queues MULTI ... EXEC and proposes it
//!   as ONE entry, which `apply_write` hands to `cmd::transactions::apply_transaction`.
//! - `raft`: the consensus thread (`node`) and its client-write bookkeeping (`pending`),
//!   redb-backed raft storage, peer transport, snapshots, membership and the entry format
//!   (`kv::entry`: who, when, which database, argv). It answers with the command's own
//!   reply or a `RaftError`; `connection` turns those into RESP in one place.
//! - `kv`: **where the state lives**: `kv::machine::StateMachine`, the one owner and writer of
//!   the replicated state (apply, flush, snapshot install, reset); the typed keyspace
//!   (`kv::encoding`: metadata and member rows), the memtable of recent applies over the `kv` table, and the views commands read and
//!   write through; `store`: the redb file, its tables and format version.
//! - `config`, `logging`, `fnv`: flags, logs, the one stable hash; `fatal`: the one way the
//!   process stops on its own; `memory`: the allocator (jemalloc) and its counters.
//! - `pubsub`: subscribers of this node, their bounded queues, and the links that fan a
//!   PUBLISH out to the other nodes (`docs/pubsub.md`); commands in `cmd::pubsub`.
//! - `expiry`, `reclaim`: leader-side tasks that propose bounded internal entries (expired
//!   keys; member rows of deleted collections, see `kv::collection`); `evict`: `maxmemory`
//!   eviction, proposed by the node over its limit before it runs a client's command.
//!
//! Adding a data type: its row layout in `kv/encoding.rs` (a `KeyType`, the metadata body, its
//! member rows), its commands in `cmd/<type>.rs`, their registry lines in `cmd::TABLE`.

pub mod access;
pub mod acl;
pub mod arrival;
pub mod blocking;
pub mod cmd;
pub mod config;
pub mod connection;
pub mod events;
pub mod evict;
pub mod expiry;
pub mod fatal;
pub mod fnv;
pub mod kv;
pub mod log_db;
pub mod logging;
pub mod memory;
pub mod monitor;
pub mod persistence;
pub mod pubsub;
pub mod raft;
pub mod rdb;
pub mod reclaim;
pub mod resp;
pub mod script;
pub mod server;
pub mod session;
pub mod slowlog;
pub mod store;

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into `Err` without the panic hook printing it (the caller reports
/// the failure in its own words).
pub fn quiet_panics<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    QUIET.with(|q| q.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r
}

/// True while inside `quiet_panics` on this thread.
pub fn panics_are_quiet() -> bool {
    QUIET.with(|q| q.get())
}
