//! kvd: a Redis-protocol key-value server whose writes are replicated with Raft.
//!
//! Map of the crate, following a write from the socket to the disk and back:
//! - `server`: accept loops, startup and graceful shutdown; `connection`: one client's read →
//!   decode → execute → reply loop (pipelining, ordering, output limits); `session`: its state.
//! - `resp`: the protocol: streaming request decoder and the one reply encoder.
//! - `cmd`: the command table; each command is parsed, checked and (for writes) applied in one file.
//! - `raft`: the consensus thread (`node`), redb-backed raft storage, peer transport, snapshots,
//!   membership and the proposal format.
//! - `kv`: the state machine's tables as commands see them; `store`: the redb file and its tables.
//! - `config`, `logging`: flags and logs.

pub mod cmd;
pub mod config;
pub mod connection;
pub mod kv;
pub mod logging;
pub mod raft;
pub mod resp;
pub mod server;
pub mod session;
pub mod store;
