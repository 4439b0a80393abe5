//! The Redis wire protocol (RESP2 and RESP3): a streaming request decoder and the one reply encoder.
//!
//! `decode` turns bytes read from a socket into commands (arrays of bulk strings, or inline
//! commands as telnet and `redis-benchmark`'s PING_INLINE send them); `reply` turns results
//! back into bytes. Nothing else in kvd reads or writes protocol bytes.

pub mod decode;
pub mod reply;

pub use decode::{Decoded, Decoder, Limits, ProtocolError};
pub use reply::{Protocol, Reply};
