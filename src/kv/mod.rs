//! The replicated state machine: user keys and values in the `KV` table, cluster members in the
//! `MEMBERS` table. Commands read through `ReadView` (any node, any time) and change state only
//! through `WriteView`, which exists only inside the raft loop's apply transaction.

mod view;

pub use view::{ApplyCtx, ReadView, WriteView};
