//! Per-connection state that commands may read or change, and the password connections
//! authenticate against.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::cmd::transactions::{Multi, Watches};
use crate::config::ReadConsistency;
use crate::resp::Protocol;
use crate::server::Shared;

/// The only user kvd has: Redis's `default` user, whose password is `requirepass`.
pub const DEFAULT_USER: &str = "default";

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
    /// The protocol replies are written in: RESP2 until `HELLO 3`.
    pub protocol: Protocol,
    /// False until AUTH or HELLO ... AUTH succeeds, when a password is required; until then
    /// only the commands flagged `no_auth` run.
    pub authenticated: bool,
    /// ACL WHOAMI; always [`DEFAULT_USER`], the one user kvd knows.
    pub user: &'static str,
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
        // As Redis: a connection is authenticated from the start when the default user
        // needs no password.
        let authenticated = !shared.requirepass.is_set();
        Session {
            shared,
            id,
            peer,
            name: None,
            db: 0,
            consistency,
            protocol: Protocol::Resp2,
            authenticated,
            user: DEFAULT_USER,
            quit: false,
            multi: None,
            watched: Watches::new(),
        }
    }

    /// True while a password is required and this connection has not given it.
    pub fn needs_auth(&self) -> bool {
        !self.authenticated && self.shared.requirepass.is_set()
    }

    /// Checks `user`/`password` as Redis's ACL does for the default user; on success the
    /// connection is authenticated. A failure leaves an earlier success in force.
    pub fn authenticate(&mut self, user: &[u8], password: &[u8]) -> bool {
        let ok = user == DEFAULT_USER.as_bytes() && self.shared.requirepass.accepts(password);
        if ok {
            self.authenticated = true;
            self.user = DEFAULT_USER;
        }
        ok
    }

    /// RESET: the connection as it was when it connected (protocol, name, database 0, read
    /// mode, no transaction or watched keys, and authentication when a password is required).
    /// The id stays.
    pub fn reset(&mut self) {
        self.name = None;
        self.db = 0;
        self.consistency = self.shared.config.read_consistency;
        self.protocol = Protocol::Resp2;
        self.authenticated = !self.shared.requirepass.is_set();
        self.user = DEFAULT_USER;
        self.multi = None;
        self.watched.clear();
    }
}

/// The default user's password (`--requirepass`), shared by all connections and replaceable at
/// run time (a later `CONFIG SET requirepass`).
///
/// A guess is compared by its SHA-256 digest against the password's digest, in constant time,
/// as Redis does: both sides have the same length whatever the password, so how long the
/// comparison takes tells nothing about the password or how much of a guess was right.
#[derive(Default)]
pub struct RequirePass {
    inner: RwLock<Option<Secret>>,
}

struct Secret {
    /// Kept for CONFIG GET requirepass, which shows it (as Redis does).
    plain: String,
    digest: [u8; 32],
}

impl RequirePass {
    /// `None` or an empty string: no password, every connection is authenticated.
    pub fn new(password: Option<String>) -> Self {
        let p = RequirePass::default();
        p.set(password);
        p
    }

    /// Replaces the password; connections already authenticated stay so, as in Redis.
    pub fn set(&self, password: Option<String>) {
        let secret = password.filter(|p| !p.is_empty()).map(|plain| Secret {
            digest: Sha256::digest(plain.as_bytes()).into(),
            plain,
        });
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = secret;
    }

    pub fn is_set(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The password as CONFIG GET shows it: empty when none is set.
    pub fn shown(&self) -> String {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.plain.clone())
            .unwrap_or_default()
    }

    /// True if `guess` is the password, or if there is none (the default user is then
    /// `nopass` and any password is accepted, as in Redis).
    pub fn accepts(&self, guess: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(guess).into();
        match &*self.inner.read().unwrap_or_else(|e| e.into_inner()) {
            None => true,
            Some(secret) => bool::from(secret.digest.ct_eq(&digest)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_checks() {
        let none = RequirePass::new(None);
        assert!(!none.is_set());
        assert!(none.accepts(b"anything"));
        assert_eq!(none.shown(), "");
        assert!(!RequirePass::new(Some(String::new())).is_set());

        let p = RequirePass::new(Some("sekret".into()));
        assert!(p.is_set());
        assert_eq!(p.shown(), "sekret");
        assert!(p.accepts(b"sekret"));
        for wrong in [&b""[..], b"sekre", b"sekret ", b"SEKRET", b"sekret\0"] {
            assert!(!p.accepts(wrong), "{wrong:?}");
        }
        p.set(Some("other".into()));
        assert!(!p.accepts(b"sekret"));
        assert!(p.accepts(b"other"));
        p.set(None);
        assert!(!p.is_set());
    }
}
