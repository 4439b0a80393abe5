//! The replicated state machine: user keys and values in the `KV` table (recent writes in the
//! memtable over it), cluster members in the `MEMBERS` table. Commands read through `ReadView`
//! (any node, any time) and change state only through `WriteView`, which exists only inside the
//! raft loop's apply transaction.

mod memtable;
mod view;

pub use memtable::{Memtable, State as MemState};
pub use view::{ApplyCtx, ReadView, Reader, WriteView, flush_into};
