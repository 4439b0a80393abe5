//! The replicated state machine's data: the typed keyspace (`encoding`: metadata rows and member
//! rows in the ordered `kv` table; recent writes in the `memtable` over it) and cluster members
//! in the `MEMBERS` table. Commands read through [`KeyRead`] (a connection's [`ReadView`] on any
//! node, or the [`WriteView`] inside apply) and change state only through `WriteView`, which
//! exists only inside the raft loop's apply transaction.

pub mod collection;
pub mod dirty;
pub mod encoding;
pub mod entry;
pub mod geohash;
pub mod hll;
pub mod lazy_expiry;
pub mod list;
mod long_read;
pub mod machine;
mod memtable;
pub mod stream;
mod view;
pub mod zset;

pub use encoding::{KeyType, Meta};
pub use memtable::{Frozen, Memtable, State as MemState, writer_waiting_anywhere};
pub use view::{
    ApplyCtx, KeyRead, ReadView, Reader, WriteView, flush_into, wall_clock_ms, with_fixed_clock,
};
