//! Per-connection state that commands may read or change, and the password connections
//! authenticate against.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::acl::User;
use crate::cmd::transactions::{Multi, Watches};
use crate::config::ReadConsistency;
use crate::resp::Protocol;
use crate::server::Shared;

/// Redis's `default` user, the one connections start as (see `crate::acl`).
pub use crate::acl::DEFAULT_USER;

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
    /// The user the connection runs as (ACL WHOAMI; what every command is checked against),
    /// as of the last users change seen through `acl_epoch`.
    pub user: Arc<User>,
    /// Raised when users change (`crate::acl::Epoch`): the connection then reloads `user`.
    pub acl_epoch: tokio::sync::watch::Receiver<u64>,
    /// Set by QUIT: reply, then close.
    pub quit: bool,
    /// Between MULTI and EXEC/DISCARD: the queued commands.
    pub multi: Option<Multi>,
    /// WATCHed keys and what was seen of them, until EXEC, DISCARD or UNWATCH.
    pub watched: Watches,
    /// What other connections see of this one (CLIENT LIST, CLIENT KILL).
    pub info: Arc<ClientInfo>,
    /// CLIENT REPLY OFF: no replies until CLIENT REPLY ON.
    pub reply_off: bool,
    /// CLIENT REPLY SKIP: the next command's reply is not sent.
    pub skip_next_reply: bool,
    /// The command running follows a CLIENT REPLY SKIP: its reply is not sent (unless it is
    /// CLIENT REPLY ON).
    pub skip_this_reply: bool,
    /// SUBSCRIBE and friends: this connection's subscriptions and its queue of pushes.
    pub pubsub: crate::pubsub::Subscriptions,
    /// Raft index of this connection's last applied write (0: none yet), raised by the raft
    /// thread as each write is applied: what WAIT counts replicas of (`cmd::wait`).
    pub last_write: Arc<std::sync::atomic::AtomicU64>,
}

impl Session {
    pub fn new(shared: Arc<Shared>, info: Arc<ClientInfo>) -> Self {
        let (id, peer) = (info.id, info.addr);
        let consistency = shared.config.read_consistency;
        // As Redis: a connection is authenticated from the start when the default user
        // needs no password.
        let mut acl_epoch = crate::acl::subscribe();
        acl_epoch.mark_unchanged();
        let user = Arc::new(default_user(&shared));
        let authenticated = open_default(&shared, &user);
        let shared_hub = shared.pubsub.clone();
        let unrun = info.unrun.clone();
        Session {
            shared,
            id,
            peer,
            name: None,
            db: 0,
            consistency,
            protocol: Protocol::Resp2,
            authenticated,
            user,
            acl_epoch,
            quit: false,
            multi: None,
            watched: Watches::new(),
            info,
            reply_off: false,
            skip_next_reply: false,
            skip_this_reply: false,
            pubsub: crate::pubsub::Subscriptions::new(shared_hub, id, unrun),
            last_write: Arc::default(),
        }
    }

    /// True while a password is required and this connection has not given it.
    pub fn needs_auth(&self) -> bool {
        !self.authenticated
            && (self.shared.requirepass.is_set() || !(self.user.enabled && self.user.nopass))
    }

    /// Checks `user`/`password` against the replicated users (the default user's password is
    /// this node's `requirepass` when it has one); on success the connection runs as that
    /// user. A failure leaves an earlier success in force.
    pub fn authenticate(&mut self, user: &[u8], password: &[u8]) -> bool {
        let name = String::from_utf8_lossy(user);
        let Some(u) = crate::cmd::acl::current_user(&self.shared, &name) else {
            // As Redis: the same work whether or not the user exists.
            let _ = crate::acl::hash_password(password);
            return false;
        };
        let ok = u.enabled
            && if u.name == DEFAULT_USER && self.shared.requirepass.is_set() {
                self.shared.requirepass.accepts(password)
            } else {
                u.accepts(password)
            };
        if ok {
            self.authenticated = true;
            self.set_user(u);
        }
        ok
    }

    fn set_user(&mut self, u: User) {
        if u.name != self.user.name {
            *self.info.user.lock().unwrap_or_else(|e| e.into_inner()) = u.name.clone();
        }
        self.user = Arc::new(u);
    }

    /// Users changed (ACL SETUSER/DELUSER applied): reloads this connection's user. False if
    /// it was deleted or disabled: the connection must close, as Redis disconnects it.
    pub fn reload_user(&mut self) -> bool {
        self.acl_epoch.mark_unchanged();
        match crate::cmd::acl::current_user(&self.shared, &self.user.name) {
            Some(u) if u.enabled || !self.authenticated => {
                self.set_user(u);
                true
            }
            Some(u) => {
                self.set_user(u);
                false
            }
            None => false,
        }
    }

    /// RESET: the connection as it was when it connected (protocol, name, database 0, read
    /// mode, no transaction or watched keys, and authentication when a password is required).
    /// The id stays.
    pub fn reset(&mut self) {
        self.set_name(None);
        self.reply_off = false;
        self.skip_next_reply = false;
        self.info.no_evict.store(false, Relaxed);
        self.info.no_touch.store(false, Relaxed);
        self.db = 0;
        self.consistency = self.shared.config.read_consistency;
        self.protocol = Protocol::Resp2;
        let user = default_user(&self.shared);
        self.authenticated = open_default(&self.shared, &user);
        self.set_user(user);
        self.multi = None;
        self.watched.clear();
        self.pubsub.clear();
    }
}

/// The default user as this node has it (Redis's built-in one if the state cannot be read).
fn default_user(shared: &Shared) -> User {
    crate::cmd::acl::current_user(shared, DEFAULT_USER).unwrap_or_else(User::builtin_default)
}

/// Whether a connection starts authenticated: the default user is on and needs no password
/// (and this node has no `requirepass`).
fn open_default(shared: &Shared, default: &User) -> bool {
    !shared.requirepass.is_set() && default.enabled && default.nopass
}

impl Session {
    /// CLIENT SETNAME / HELLO SETNAME: the name, also where CLIENT LIST reads it.
    pub fn set_name(&mut self, name: Option<Bytes>) {
        *self.info.name.lock().unwrap_or_else(|e| e.into_inner()) = name.clone();
        self.name = name;
    }

    /// Called by the connection for each batch of commands it read: CLIENT LIST's idle time
    /// counts from here (one clock read per batch, not per command).
    pub fn touch(&self) {
        self.info.touch();
    }

    /// Called by the connection before each command: publishes the state the previous one
    /// left (database, protocol) and this command's name, for CLIENT LIST on other connections.
    pub fn note_command(&self, name: &'static str, argv: &[Bytes]) {
        let info = &self.info;
        info.db.store(self.db, Relaxed);
        info.resp.store(self.protocol.version() as u8, Relaxed);
        let mut cmd = info.cmd.lock().unwrap_or_else(|e| e.into_inner());
        let with_sub = CONTAINERS.contains(&name) && argv.len() > 1;
        if with_sub {
            let sub =
                String::from_utf8_lossy(&argv[1][..argv[1].len().min(32)]).to_ascii_lowercase();
            *cmd = std::borrow::Cow::Owned(format!("{name}|{sub}"));
        } else if *cmd != name {
            *cmd = std::borrow::Cow::Borrowed(name);
        }
    }
}

/// Commands Redis names with their subcommand in CLIENT LIST's `cmd=` (`client|list`).
const CONTAINERS: &[&str] = &[
    "client", "config", "command", "object", "acl", "cluster", "pubsub",
];

/// Commands with subcommands, named `name|sub` by Redis (CLIENT LIST, errors).
pub fn is_container(name: &str) -> bool {
    CONTAINERS.contains(&name)
}

/// What CLIENT LIST shows of a connection and how CLIENT KILL reaches it, readable without
/// the connection's task: plain facts fixed at accept, atomics and small locks the connection
/// updates as it runs commands.
/// Most connections INFO or CLIENT looks at for input sent before its own (a peek syscall
/// each): on a node with more, the rest are not waited for.
const INPUT_CHECKS: usize = 256;

pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub fd: i32,
    pub created: Instant,
    pub name: Mutex<Option<Bytes>>,
    /// The user it runs as (CLIENT LIST `user=`).
    pub user: Mutex<String>,
    pub db: AtomicU8,
    pub resp: AtomicU8,
    /// The last command (`get`, `client|list`...).
    pub cmd: Mutex<std::borrow::Cow<'static, str>>,
    /// Milliseconds after `created` of the last command.
    pub last_active_ms: AtomicU64,
    pub no_evict: AtomicBool,
    pub no_touch: AtomicBool,
    /// Set by CLIENT KILL; `kill` wakes the connection, which closes.
    pub killed: AtomicBool,
    pub kill: tokio::sync::Notify,
    /// Set while the connection is in WAIT: CLIENT UNBLOCK sends through it whether the wait
    /// ends with an error (ERROR) or as at its timeout (TIMEOUT).
    pub wait_unblock: Mutex<Option<tokio::sync::oneshot::Sender<bool>>>,
    /// Its input not yet run (see `arrival::Unrun`), shared with its mailbox.
    pub unrun: Arc<crate::arrival::Unrun>,
}

impl ClientInfo {
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr, fd: i32) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            fd,
            created: Instant::now(),
            name: Mutex::new(None),
            user: Mutex::new(DEFAULT_USER.to_string()),
            db: AtomicU8::new(0),
            resp: AtomicU8::new(2),
            cmd: Mutex::new(std::borrow::Cow::Borrowed("NULL")),
            last_active_ms: AtomicU64::new(0),
            no_evict: AtomicBool::new(false),
            no_touch: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
            wait_unblock: Mutex::new(None),
            unrun: Arc::default(),
        }
    }

    /// Marks the connection active now (resets CLIENT LIST's `idle`).
    pub fn touch(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Relaxed);
    }

    /// Seconds since the last command.
    pub fn idle_secs(&self) -> u64 {
        let now = self.created.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_active_ms.load(Relaxed)) / 1000
    }

    /// CLIENT KILL: the connection closes once it next waits for input.
    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.kill.notify_one();
    }

    pub fn name(&self) -> Option<Bytes> {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn cmd(&self) -> String {
        self.cmd
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .to_string()
    }
}

/// The live connections of this node, and CLIENT PAUSE's state.
#[derive(Default)]
pub struct Clients {
    live: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    /// Live connections killed (CLIENT KILL) that have not closed yet: Redis frees a killed
    /// client at once, so INFO's connected_clients leaves them out. Changed under `live`'s lock.
    killed: AtomicUsize,
    pause: Mutex<Option<Pause>>,
    /// True while a pause may be in force: the one check every command pays.
    pausing: AtomicBool,
}

#[derive(Clone, Copy)]
struct Pause {
    until: Instant,
    /// PAUSE ALL (every command waits), else PAUSE WRITE (writes wait).
    all: bool,
}

/// Removes its connection from the registry when the connection ends, however it ends.
pub struct Registered {
    shared: Arc<Shared>,
    pub info: Arc<ClientInfo>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut live = self
            .shared
            .clients
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if live.remove(&self.info.id).is_some() && self.info.killed.load(Relaxed) {
            self.shared.clients.killed.fetch_sub(1, Relaxed);
        }
    }
}

impl Clients {
    /// Adds a connection; it stays listed while the returned guard lives.
    pub fn register(shared: &Arc<Shared>, info: ClientInfo) -> Registered {
        let info = Arc::new(info);
        shared
            .clients
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(info.id, info.clone());
        Registered {
            shared: shared.clone(),
            info,
        }
    }

    /// CLIENT KILL of `c`: it closes once its replies are out (`ClientInfo::kill`) and stops
    /// counting as connected now.
    pub fn kill(&self, c: &ClientInfo) {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.contains_key(&c.id) && !c.killed.load(Relaxed) {
            self.killed.fetch_add(1, Relaxed);
        }
        c.kill();
    }

    /// Live connections that are not killed (INFO's `connected_clients`), counted under the
    /// registry's lock: a connection leaves the count as it leaves the registry, so a reader
    /// that has seen it go (CLIENT LIST, the wait for earlier input) never finds it counted.
    pub fn connected(&self) -> usize {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.len().saturating_sub(self.killed.load(Relaxed))
    }

    /// What input that arrived by `at` and has not run waits at the live connections other
    /// than `me` (at most `INPUT_CHECKS` of them), a close included (see `arrival::Unrun`),
    /// the most telling first (`Pending`'s order): what INFO's connected_clients and CLIENT
    /// LIST / KILL see waits for it.
    pub fn input_before(&self, me: u64, at: crate::arrival::Arrival) -> crate::arrival::Pending {
        let others: Vec<Arc<crate::arrival::Unrun>> = {
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.values()
                .filter(|c| c.id != me)
                .take(INPUT_CHECKS)
                .map(|c| c.unrun.clone())
                .collect()
        };
        others
            .iter()
            .map(|u| u.pending_since(at))
            .max()
            .unwrap_or(crate::arrival::Pending::Nothing)
    }

    /// Every live connection, by id.
    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.values().cloned().collect()
    }

    /// CLIENT PAUSE: commands of the kind paused wait until `until` (a longer pause already in
    /// force stays; ALL stays ALL until it ends).
    pub fn pause(&self, until: Instant, all: bool) {
        let mut p = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        self.pausing.store(true, Relaxed);
        *p = Some(match *p {
            Some(old) if old.until > now => Pause {
                until: old.until.max(until),
                all: old.all || all,
            },
            _ => Pause { until, all },
        });
    }

    pub fn unpause(&self) {
        *self.pause.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.pausing.store(false, Relaxed);
    }

    /// How long a command must still wait before it runs (`write`: it changes data), if at all.
    pub fn paused_for(&self, write: bool) -> Option<Duration> {
        if !self.pausing.load(Relaxed) {
            return None;
        }
        let p = (*self.pause.lock().unwrap_or_else(|e| e.into_inner()))?;
        let left = p.until.saturating_duration_since(Instant::now());
        (!left.is_zero() && (write || p.all)).then_some(left)
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
