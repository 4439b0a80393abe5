//! kvd: a Redis-protocol key-value server whose writes are replicated with Raft.
//!
//! Map of the crate, following a write from the socket to the disk and back:
//! - `server`: accept loops, startup and graceful shutdown; `connection`: one client's read →
//!   decode → execute → reply loop (pipelining, ordering, output limits); `session`: its state.
//! - `resp`: the protocol: streaming request decoder and the one reply encoder.
//! - `cmd`: the command table; each command is parsed, checked and (for writes) applied in one file.
//! - `raft`: the consensus thread (`node`) and its client-write bookkeeping (`pending`),
//!   redb-backed raft storage, peer transport, snapshots, membership and the proposal format.
//!   It answers with the command's own reply or a `RaftError`; `connection` turns those into RESP.
//! - `kv`: the state machine's tables as commands see them; `store`: the redb file and its tables.
//! - `config`, `logging`: flags and logs; `fatal`: the one way the process stops on its own.

pub mod cmd;
pub mod config;
pub mod connection;
pub mod fatal;
pub mod kv;
pub mod logging;
pub mod raft;
pub mod resp;
pub mod server;
pub mod session;
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
