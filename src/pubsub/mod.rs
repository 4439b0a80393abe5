//! Pub/Sub on one node: who is subscribed to what (`Hub`), each subscriber's bounded queue of
//! messages (`Mailbox`), a connection's own subscriptions (`Subscriptions`), and the fan-out of
//! a published message to the other nodes (`links`). See `docs/pubsub.md` for the design.
//!
//! Messages never touch raft: a PUBLISH is delivered at once to this node's subscribers and sent
//! over each peer's authenticated pub/sub link to theirs, at most once, in the order one
//! connection published them. Keyspace notifications are delivered locally only: every node
//! applies every write and raises its own.

pub mod keyspace;
pub mod links;
pub mod tracking;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::arrival::{Arrival, Pending};
use crate::cmd::glob;
use crate::raft::transport::{PubSubSink, Published};
use crate::resp::{Protocol, Reply};

/// Most subscribers a PUBLISH looks at for input sent before its own (one peek syscall each,
/// ~1 µs): beyond them, a big fan-out publishes without looking.
const INPUT_CHECKS: usize = 16;

/// What a message costs a subscriber's queue beyond its bytes (Redis counts reply objects too).
const ITEM_OVERHEAD: usize = 48;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `client-output-buffer-limit pubsub <hard> <soft> <seconds>`, as this node's CONFIG has it.
#[derive(Default)]
pub struct Limits {
    hard: AtomicUsize,
    soft: AtomicUsize,
    soft_secs: AtomicU64,
}

impl Limits {
    /// Takes the `pubsub` class from a `client-output-buffer-limit` value (as CONFIG GET shows
    /// it); other classes are ignored.
    pub fn set_from_config(&self, value: &str) {
        let words: Vec<&str> = value.split_whitespace().collect();
        for g in words.chunks(4) {
            if g.len() == 4 && g[0] == "pubsub" {
                self.hard.store(g[1].parse().unwrap_or(0), Relaxed);
                self.soft.store(g[2].parse().unwrap_or(0), Relaxed);
                self.soft_secs.store(g[3].parse().unwrap_or(0), Relaxed);
            }
        }
    }
}

/// One subscribed connection's queue of pushes (messages, and later invalidations), filled by
/// publishers on any thread and emptied by the connection. Bounded by the `pubsub` output limit:
/// a subscriber that does not keep up is marked overflowed and its queue dropped; the
/// connection then closes, as Redis closes it.
pub struct Mailbox {
    pub id: u64,
    queue: Mutex<Queue>,
    /// Bytes queued, readable without the lock (the connection's fast path).
    queued: AtomicUsize,
    /// Woken when something is queued.
    pub wake: Notify,
    /// Woken when the subscriber went over its limit.
    pub overflow: Notify,
    /// The connection speaks RESP3 (where invalidations go as pushes).
    pub resp3: std::sync::atomic::AtomicBool,
    /// What CLIENT LIST shows of this connection's subscriptions and tracking, kept here so
    /// that any connection can read it (see [`Hub::client_fields`]).
    shown: Shown,
    /// The connection's input not yet run, looked at by a PUBLISH (`Hub::input_before`).
    pub unrun: Arc<crate::arrival::Unrun>,
}

/// A connection's subscription counts and tracking mode, as another connection sees them.
#[derive(Default)]
struct Shown {
    channels: std::sync::atomic::AtomicU32,
    patterns: std::sync::atomic::AtomicU32,
    shard_channels: std::sync::atomic::AtomicU32,
    /// CLIENT TRACKING's redirect (0: none), or -1 while tracking is off.
    redirect: std::sync::atomic::AtomicI64,
    bcast: std::sync::atomic::AtomicBool,
}

/// The CLIENT LIST / CLIENT INFO fields that come from pub/sub and tracking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientFields {
    pub sub: u32,
    pub psub: u32,
    pub ssub: u32,
    /// Tracking on.
    pub tracking: bool,
    pub bcast: bool,
    /// The REDIRECT target was gone when an invalidation was due (Redis's `R` flag).
    pub broken_redirect: bool,
    /// `redir=`: the REDIRECT target (0: none) while tracking, else -1.
    pub redir: i64,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Reply>,
    bytes: usize,
    /// Since when the queue has been over the soft limit.
    over_soft_since: Option<Instant>,
    overflowed: bool,
}

impl Mailbox {
    pub fn new(id: u64, unrun: Arc<crate::arrival::Unrun>) -> Arc<Mailbox> {
        Arc::new(Mailbox {
            id,
            queue: Mutex::new(Queue::default()),
            queued: AtomicUsize::new(0),
            wake: Notify::new(),
            overflow: Notify::new(),
            resp3: std::sync::atomic::AtomicBool::new(false),
            shown: Shown {
                redirect: std::sync::atomic::AtomicI64::new(-1),
                ..Shown::default()
            },
            unrun,
        })
    }

    /// Queues a push; false if the subscriber is (or now goes) over its limit.
    pub fn offer(&self, item: Reply, size: usize, limits: &Limits) -> bool {
        let (hard, soft, soft_secs) = (
            limits.hard.load(Relaxed),
            limits.soft.load(Relaxed),
            limits.soft_secs.load(Relaxed),
        );
        let mut q = lock(&self.queue);
        if q.overflowed {
            return false;
        }
        let bytes = q.bytes + size + ITEM_OVERHEAD;
        let over_hard = hard > 0 && bytes > hard;
        let over_soft = soft > 0 && bytes > soft;
        let now = Instant::now();
        if over_soft && q.over_soft_since.is_none() {
            q.over_soft_since = Some(now);
        } else if !over_soft {
            q.over_soft_since = None;
        }
        let soft_expired = q
            .over_soft_since
            .is_some_and(|t| now.duration_since(t).as_secs() >= soft_secs);
        if over_hard || (over_soft && soft_expired) {
            q.overflowed = true;
            q.items = VecDeque::new();
            q.bytes = 0;
            self.queued.store(0, Relaxed);
            drop(q);
            self.overflow.notify_one();
            self.wake.notify_one();
            return false;
        }
        q.items.push_back(item);
        q.bytes = bytes;
        self.queued.store(bytes, Relaxed);
        drop(q);
        self.wake.notify_one();
        true
    }

    /// True once the subscriber went over its limit: the connection must close.
    pub fn overflowed(&self) -> bool {
        lock(&self.queue).overflowed
    }

    /// Moves what is queued into `out`, encoded in `proto`. Returns false if overflowed.
    pub fn drain_into(&self, out: &mut BytesMut, proto: Protocol) -> bool {
        if self.queued.load(Relaxed) == 0 {
            return !self.overflowed();
        }
        let items = {
            let mut q = lock(&self.queue);
            if q.overflowed {
                return false;
            }
            q.bytes = 0;
            q.over_soft_since = None;
            self.queued.store(0, Relaxed);
            std::mem::take(&mut q.items)
        };
        for item in items {
            item.encode(proto, out);
        }
        true
    }
}

/// A tracking connection's read whose keys are remembered once its reply is queued
/// (`Subscriptions::after_command`, `Subscriptions::remember`).
#[must_use]
pub struct TrackedRead {
    keys: Vec<Bytes>,
    seen: u64,
}

/// Subscribers of one name: by connection id.
type Subscribers = HashMap<u64, Arc<Mailbox>>;

#[derive(Default)]
struct Registry {
    channels: HashMap<Bytes, Subscribers>,
    patterns: HashMap<Bytes, Subscribers>,
    shard_channels: HashMap<Bytes, Subscribers>,
}

/// The three kinds of subscription, as Redis keeps them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Registry {
    fn map(&mut self, kind: Kind) -> &mut HashMap<Bytes, Subscribers> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }
}

/// This node's subscribers and its links to the other nodes' hubs.
pub struct Hub {
    registry: Mutex<Registry>,
    pub limits: Limits,
    /// `notify-keyspace-events`, as Redis's flag bits (see `keyspace`).
    pub notify_flags: AtomicU64,
    pub links: Arc<links::Links>,
    /// CLIENT TRACKING: tracked keys and the tracking connections.
    pub tracking: tracking::Table,
    /// MONITOR: the connections shown every command (their lines go through their mailboxes).
    pub monitors: crate::monitor::Monitors,
}

impl Hub {
    pub fn new(links: links::Links) -> Arc<Hub> {
        let hub = Hub {
            registry: Mutex::new(Registry::default()),
            limits: Limits::default(),
            notify_flags: AtomicU64::new(0),
            links: Arc::new(links),
            tracking: tracking::Table::default(),
            monitors: crate::monitor::Monitors::new(),
        };
        hub.tracking.max_keys.store(1_000_000, Relaxed);
        hub.limits.set_from_config("pubsub 33554432 8388608 60");
        Arc::new(hub)
    }

    fn add(&self, kind: Kind, name: &Bytes, mailbox: &Arc<Mailbox>) {
        lock(&self.registry)
            .map(kind)
            .entry(name.clone())
            .or_default()
            .insert(mailbox.id, mailbox.clone());
    }

    fn remove(&self, kind: Kind, name: &[u8], id: u64) {
        let mut r = lock(&self.registry);
        let map = r.map(kind);
        if let Some(subs) = map.get_mut(name) {
            subs.remove(&id);
            if subs.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Delivers a message to this node's subscribers only; returns how many received it.
    /// Channel subscribers first, then pattern subscribers, as Redis orders them.
    pub fn deliver_local(&self, sharded: bool, channel: &Bytes, message: &Bytes) -> u64 {
        let r = lock(&self.registry);
        let mut n = 0;
        let size = channel.len() + message.len();
        if sharded {
            if let Some(subs) = r.shard_channels.get(channel) {
                for mb in subs.values() {
                    let push = message_push("smessage", channel, message);
                    n += u64::from(mb.offer(push, size, &self.limits));
                }
            }
            return n;
        }
        if let Some(subs) = r.channels.get(channel) {
            for mb in subs.values() {
                let push = message_push("message", channel, message);
                n += u64::from(mb.offer(push, size, &self.limits));
            }
        }
        for (pattern, subs) in &r.patterns {
            if !glob::matches(pattern, channel, false) {
                continue;
            }
            for mb in subs.values() {
                let push = Reply::Push(vec![
                    Reply::bulk(Bytes::from_static(b"pmessage")),
                    Reply::Bulk(pattern.clone()),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                n += u64::from(mb.offer(push, size + pattern.len(), &self.limits));
            }
        }
        n
    }

    /// What input that arrived by `at` and has not run waits at this node's subscribers that a
    /// message on `channel` would reach (other than `me`, at most `INPUT_CHECKS` of them), the
    /// most telling first (`Pending`'s order): an UNSUBSCRIBE sent just before a PUBLISH on
    /// another connection, which Redis's one event loop runs first. The publisher waits for
    /// it (`connection`), briefly.
    pub fn input_before(&self, sharded: bool, channel: &[u8], me: u64, at: Arrival) -> Pending {
        let mut reached: Vec<Arc<Mailbox>> = Vec::new();
        {
            let r = lock(&self.registry);
            let exact = if sharded {
                r.shard_channels.get(channel)
            } else {
                r.channels.get(channel)
            };
            let patterns = r
                .patterns
                .iter()
                .filter(|(p, _)| !sharded && glob::matches(p, channel, false))
                .map(|(_, subs)| subs);
            for subs in exact.into_iter().chain(patterns) {
                let room = INPUT_CHECKS.saturating_sub(reached.len());
                reached.extend(subs.values().filter(|m| m.id != me).take(room).cloned());
            }
        }
        reached
            .iter()
            .map(|m| m.unrun.pending_since(at))
            .max()
            .unwrap_or(Pending::Nothing)
    }

    /// PUBLISH / SPUBLISH: delivered here at once, and sent to every peer (see `links`).
    pub fn publish(&self, sharded: bool, channel: Bytes, message: Bytes) -> links::Receivers {
        let here = self.deliver_local(sharded, &channel, &message);
        self.links.send(
            Published {
                sharded,
                channel,
                message,
            },
            here,
        )
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS: the names with a subscriber here, matching `pattern`.
    pub fn channels(&self, shard: bool, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let r = lock(&self.registry);
        let map = if shard {
            &r.shard_channels
        } else {
            &r.channels
        };
        map.keys()
            .filter(|c| pattern.is_none_or(|p| glob::matches(p, c, false)))
            .cloned()
            .collect()
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB: subscribers here of one channel.
    pub fn numsub(&self, shard: bool, channel: &[u8]) -> usize {
        let r = lock(&self.registry);
        let map = if shard {
            &r.shard_channels
        } else {
            &r.channels
        };
        map.get(channel).map_or(0, |s| s.len())
    }

    /// Whether connection `id` is subscribed to `channel` here.
    pub fn is_subscribed(&self, channel: &[u8], id: u64) -> bool {
        lock(&self.registry)
            .channels
            .get(channel)
            .is_some_and(|s| s.contains_key(&id))
    }

    /// PUBSUB NUMPAT: distinct patterns subscribed here.
    pub fn numpat(&self) -> usize {
        lock(&self.registry).patterns.len()
    }

    /// CLIENT LIST's pub/sub and tracking fields of connection `id` of this node (all zero /
    /// off for an id it does not know).
    pub fn client_fields(&self, id: u64) -> ClientFields {
        let Some(mb) = self.tracking.mailbox(id) else {
            return ClientFields {
                redir: -1,
                ..ClientFields::default()
            };
        };
        let redir = mb.shown.redirect.load(Relaxed);
        ClientFields {
            sub: mb.shown.channels.load(Relaxed),
            psub: mb.shown.patterns.load(Relaxed),
            ssub: mb.shown.shard_channels.load(Relaxed),
            tracking: redir >= 0,
            bcast: redir >= 0 && mb.shown.bcast.load(Relaxed),
            broken_redirect: redir >= 0 && self.tracking.redirect_broken(id),
            redir,
        }
    }
}

impl PubSubSink for Hub {
    fn deliver_from_peer(&self, m: Published) -> u64 {
        self.deliver_local(m.sharded, &m.channel, &m.message)
    }
}

fn message_push(kind: &'static str, channel: &Bytes, message: &Bytes) -> Reply {
    Reply::Push(vec![
        Reply::bulk(Bytes::from_static(kind.as_bytes())),
        Reply::Bulk(channel.clone()),
        Reply::Bulk(message.clone()),
    ])
}

/// One connection's subscriptions; dropping it (the connection closed) unsubscribes them all.
pub struct Subscriptions {
    hub: Arc<Hub>,
    pub mailbox: Arc<Mailbox>,
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
    shard_channels: HashSet<Bytes>,
    /// CLIENT TRACKING.
    pub tracking: tracking::Mode,
    /// The command running is the one CLIENT CACHING was for.
    caching_used: bool,
}

impl Subscriptions {
    pub fn new(hub: Arc<Hub>, id: u64, unrun: Arc<crate::arrival::Unrun>) -> Subscriptions {
        let mailbox = Mailbox::new(id, unrun);
        hub.tracking.register(&mailbox);
        Subscriptions {
            hub,
            mailbox,
            tracking: tracking::Mode::default(),
            caching_used: false,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
        }
    }

    fn set(&mut self, kind: Kind) -> &mut HashSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }

    /// Redis's `clientSubscriptionsCount` (channels and patterns) for those two kinds, and
    /// `clientShardSubscriptionsCount` for shard channels: the number in (un)subscribe replies.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Channel | Kind::Pattern => self.channels.len() + self.patterns.len(),
            Kind::Shard => self.shard_channels.len(),
        }
    }

    /// In Redis's "subscribed" context (which limits what a RESP2 connection may run).
    pub fn active(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty())
    }

    /// Subscribes; false if already subscribed (the reply is the same either way).
    pub fn subscribe(&mut self, kind: Kind, name: &Bytes) -> bool {
        if !self.set(kind).insert(name.clone()) {
            return false;
        }
        self.hub.add(kind, name, &self.mailbox);
        self.show_counts();
        true
    }

    pub fn unsubscribe(&mut self, kind: Kind, name: &[u8]) -> bool {
        if !self.set(kind).remove(name) {
            return false;
        }
        self.hub.remove(kind, name, self.mailbox.id);
        self.show_counts();
        true
    }

    /// Publishes the subscription counts for CLIENT LIST.
    fn show_counts(&self) {
        let n = |s: &HashSet<Bytes>| u32::try_from(s.len()).unwrap_or(u32::MAX);
        let shown = &self.mailbox.shown;
        shown.channels.store(n(&self.channels), Relaxed);
        shown.patterns.store(n(&self.patterns), Relaxed);
        shown.shard_channels.store(n(&self.shard_channels), Relaxed);
    }

    /// Every name of one kind (for UNSUBSCRIBE without arguments).
    pub fn names(&self, kind: Kind) -> Vec<Bytes> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
        .iter()
        .cloned()
        .collect()
    }

    /// RESET, or the connection closing: no subscriptions left (nor MONITOR, nor tracking).
    pub fn clear(&mut self) {
        self.hub.monitors.remove(self.mailbox.id);
        if self.tracking.on {
            self.tracking = tracking::Mode::default();
            self.tracking_changed();
        }
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in std::mem::take(self.set(kind)) {
                self.hub.remove(kind, &name, self.mailbox.id);
            }
        }
        self.show_counts();
    }
}

impl Subscriptions {
    /// CLIENT TRACKING ON/OFF took effect: the hub learns the new mode.
    pub fn tracking_changed(&mut self) {
        self.hub.tracking.set_mode(&self.mailbox, &self.tracking);
        let shown = &self.mailbox.shown;
        let redirect = if self.tracking.on {
            i64::try_from(self.tracking.redirect).unwrap_or(i64::MAX)
        } else {
            -1
        };
        shown.redirect.store(redirect, Relaxed);
        shown.bcast.store(self.tracking.bcast, Relaxed);
    }

    /// After a read on the state at applied index `seen`, before its reply is queued: the
    /// keys to remember if the tracking mode says so, for `remember` once the reply is queued
    /// (see `tracking`). CLIENT CACHING applies to one command only.
    pub fn after_command(
        &mut self,
        read_keys: Option<Vec<Bytes>>,
        seen: u64,
    ) -> Option<TrackedRead> {
        if !self.tracking.on {
            return None;
        }
        let keys = read_keys.filter(|_| self.tracking.remembers())?;
        self.hub.tracking_refresh(self.mailbox.id, &keys, seen);
        Some(TrackedRead { keys, seen })
    }

    /// The reply to the read `after_command` saw is queued: its keys are remembered, and what
    /// changed since the read is told now, after the reply.
    pub fn remember(&self, read: Option<TrackedRead>) {
        if let Some(TrackedRead { keys, seen }) = read {
            self.hub.tracking_remember(self.mailbox.id, keys, seen);
            self.hub.enforce_tracking_limit();
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Before each command: the protocol in force (for invalidations sent to this connection),
    /// and CLIENT CACHING lasting one command (the CLIENT command itself aside).
    pub fn note_command(&mut self, name: &str, proto: Protocol) {
        self.note_protocol(proto);
        if std::mem::take(&mut self.caching_used) {
            self.tracking.caching = false;
        }
        if self.tracking.caching && name != "client" {
            self.caching_used = true;
        }
    }

    pub fn note_protocol(&self, proto: Protocol) {
        self.mailbox.resp3.store(
            proto == Protocol::Resp3,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        self.clear();
        self.hub.tracking.unregister(self.mailbox.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(hard: usize, soft: usize, secs: u64) -> Limits {
        let l = Limits::default();
        l.set_from_config(&format!("normal 0 0 0 pubsub {hard} {soft} {secs}"));
        l
    }

    #[test]
    fn a_mailbox_over_its_hard_limit_overflows_and_drops_its_queue() {
        let mb = Mailbox::new(1, Arc::default());
        let l = limits(1000, 0, 0);
        assert!(mb.offer(Reply::integer(1), 400, &l));
        assert!(mb.offer(Reply::integer(2), 400, &l));
        assert!(!mb.offer(Reply::integer(3), 400, &l));
        assert!(mb.overflowed());
        // Nothing more is taken, and nothing is handed to the connection.
        assert!(!mb.offer(Reply::integer(4), 1, &l));
        let mut out = BytesMut::new();
        assert!(!mb.drain_into(&mut out, Protocol::Resp2));
        assert!(out.is_empty());
    }

    #[test]
    fn a_mailbox_drained_in_time_never_overflows() {
        let mb = Mailbox::new(1, Arc::default());
        let l = limits(1000, 0, 0);
        let mut out = BytesMut::new();
        for i in 0..100 {
            assert!(mb.offer(Reply::integer(i), 400, &l));
            assert!(mb.drain_into(&mut out, Protocol::Resp2));
        }
        assert!(out.starts_with(b":0\r\n:1\r\n"));
    }

    #[test]
    fn over_the_soft_limit_for_zero_seconds_overflows() {
        let mb = Mailbox::new(1, Arc::default());
        let l = limits(0, 100, 0);
        assert!(!mb.offer(Reply::integer(1), 200, &l));
        let l = limits(0, 100, 3600);
        let mb = Mailbox::new(2, Arc::default());
        assert!(mb.offer(Reply::integer(1), 200, &l));
    }

    #[test]
    fn subscriptions_count_as_redis_counts_them_and_leave_on_drop() {
        let hub = Hub::new(links::Links::disconnected());
        let mut s = Subscriptions::new(hub.clone(), 7, Arc::default());
        let a = Bytes::from_static(b"a");
        assert!(s.subscribe(Kind::Channel, &a));
        assert!(!s.subscribe(Kind::Channel, &a));
        assert!(s.subscribe(Kind::Pattern, &Bytes::from_static(b"a*")));
        assert!(s.subscribe(Kind::Shard, &a));
        assert_eq!(s.count(Kind::Channel), 2);
        assert_eq!(s.count(Kind::Shard), 1);
        assert_eq!(hub.deliver_local(false, &a, &Bytes::from_static(b"m")), 2);
        assert_eq!(hub.deliver_local(true, &a, &Bytes::from_static(b"m")), 1);
        assert_eq!(hub.numpat(), 1);
        drop(s);
        assert_eq!(hub.deliver_local(false, &a, &Bytes::from_static(b"m")), 0);
        assert_eq!(hub.numpat(), 0);
        assert!(hub.channels(false, None).is_empty());
    }
}
