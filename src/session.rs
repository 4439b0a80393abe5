//! Per-connection state that commands may read or change.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::cmd::transactions::{Multi, Watches};
use crate::config::ReadConsistency;
use crate::server::Shared;

/// One client connection's state.
pub struct Session {
    pub shared: Arc<Shared>,
    /// CLIENT ID: unique per process, increasing.
    pub id: u64,
    pub peer: SocketAddr,
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    /// The selected database (SELECT), 0 to `kv::encoding::DATABASES - 1`.
    pub db: u8,
    /// How this connection's reads are served (CONSISTENCY).
    pub consistency: ReadConsistency,
    /// Set by QUIT: reply, then close.
    pub quit: bool,
    /// Between MULTI and EXEC/DISCARD: the queued commands.
    pub multi: Option<Multi>,
    /// WATCHed keys and what was seen of them, until EXEC, DISCARD or UNWATCH.
    pub watched: Watches,
}

impl Session {
    pub fn new(shared: Arc<Shared>, id: u64, peer: SocketAddr) -> Self {
        let consistency = shared.config.read_consistency;
        Session {
            shared,
            id,
            peer,
            name: None,
            db: 0,
            consistency,
            quit: false,
            multi: None,
            watched: Watches::new(),
        }
    }
}
