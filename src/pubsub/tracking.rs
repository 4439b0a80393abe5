//! Client-side caching (CLIENT TRACKING): which connection of this node read which keys (or
//! asked for which prefixes, BCAST), and the invalidation pushes sent when this node applies a
//! write to them (`events::Event::Changed`, whichever node took the write).
//!
//! As Redis: keys are tracked by name across databases; a key's readers are told once and
//! forgotten (they track it again when they read it again); a flush, or a snapshot replacing the
//! state, invalidates everything (a null). An invalidation goes to the connection itself in
//! RESP3, or to its REDIRECT target: a RESP3 push there, or a `__redis__:invalidate` message
//! when the target is a RESP2 connection subscribed to that channel.
//!
//! NOLOOP: the entries of a NOLOOP connection's writes name it (`kv::entry::Proposal::conn`),
//! and its node's apply attributes their events to it (`Event::Writer`): it is not told of the
//! changes its own writes made, and is told of every other change, whoever made it and when.
//!
//! Which writes a read saw: the raft thread hands a batch's events over some time after readers
//! can see the batch (after its log write), and a connection remembers the keys it read after its
//! reply is out. Each read is remembered with the applied index of the state it ran on
//! (`kv::Reader::seen`), each batch comes with the applied index after it, and the latest batches'
//! changed keys are kept (`RECENT_KEYS`). A batch the read already saw does not invalidate it; a
//! batch it did not see and that was handed over before the read was remembered is told when it
//! is remembered. So, as in Redis, a reader is told of exactly the writes after its read, and
//! after its reply.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{Hub, Mailbox, lock};
use crate::events::Event;

pub const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

/// One connection's CLIENT TRACKING state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    pub on: bool,
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING yes (OPTIN) / no (OPTOUT), for the next command.
    pub caching: bool,
    pub prefixes: Vec<Bytes>,
}

impl Mode {
    /// Whether the keys of the read that just ran are to be remembered.
    pub fn remembers(&self) -> bool {
        // OPTIN: only after CLIENT CACHING yes; OPTOUT: unless after CLIENT CACHING no.
        let opted_out = if self.optin {
            !self.caching
        } else {
            self.optout && self.caching
        };
        self.on && !self.bcast && !opted_out
    }
}

struct Tracker {
    mailbox: Arc<Mailbox>,
    mode: Mode,
}

/// Most changed keys of the latest batches kept for reads remembered after them; a read of a
/// state older than the batches kept is told its keys changed (they may have).
const RECENT_KEYS: usize = 4096;

/// Keys read by connections (default mode) and the changes handed over lately.
#[derive(Default)]
struct Reads {
    /// Key name to the connections that read it, each with the applied index of the state it
    /// read.
    keys: HashMap<Bytes, HashMap<u64, u64>>,
    /// The latest batches handed over, oldest first.
    recent: VecDeque<Batch>,
    /// Changed keys in `recent`.
    recent_keys: usize,
    /// Applied index after the newest batch dropped from `recent`.
    forgotten: u64,
}

/// One batch as `Reads::recent` keeps it.
struct Batch {
    /// The applied index after it.
    index: u64,
    /// It emptied a database or replaced the state: every key may have changed.
    flushed: bool,
    /// Each changed key with this node's connection whose write changed it (0: none).
    changed: Vec<(Bytes, u64)>,
}

/// What a read remembered late is told at once (`Hub::tracking_remember`).
enum Missed {
    Nothing,
    Keys(Vec<Bytes>),
    Everything,
}

impl Reads {
    fn keep(&mut self, batch: Batch) {
        self.recent_keys += batch.changed.len().max(1);
        self.recent.push_back(batch);
        while self.recent_keys > RECENT_KEYS {
            let Some(old) = self.recent.pop_front() else {
                break;
            };
            self.recent_keys -= old.changed.len().max(1);
            self.forgotten = old.index;
        }
    }

    /// Connection `id`, which may already track `keys`, read them again on the state at
    /// `seen`: the batches up to it no longer concern those reads.
    fn refresh(&mut self, id: u64, seen: u64, keys: &[Bytes]) {
        for key in keys {
            if let Some(at) = self.keys.get_mut(key).and_then(|ids| ids.get_mut(&id)) {
                *at = (*at).max(seen);
            }
        }
    }

    /// Remembers that connection `id` read `keys` on the state at applied index `seen`, except
    /// the keys a batch handed over already changed after it: those are returned to be told.
    fn remember(&mut self, id: u64, noloop: bool, seen: u64, keys: Vec<Bytes>) -> Missed {
        if seen < self.forgotten {
            return Missed::Keys(keys);
        }
        let newer = || self.recent.iter().rev().take_while(|b| b.index > seen);
        if newer().any(|b| b.flushed) {
            return Missed::Everything;
        }
        let mut told = Vec::new();
        for key in keys {
            // The first change after the read (newest batch first, each from its end).
            let first = newer()
                .flat_map(|b| b.changed.iter().rev().filter(|(k, _)| *k == key))
                .last();
            match first {
                None => {
                    let at = self.keys.entry(key).or_default().entry(id).or_insert(seen);
                    *at = (*at).max(seen);
                }
                // Its own write came first: forgotten untold, as Redis does under NOLOOP.
                Some(&(_, w)) if noloop && w == id => {}
                Some(_) => told.push(key),
            }
        }
        if told.is_empty() {
            Missed::Nothing
        } else {
            Missed::Keys(told)
        }
    }
}

#[derive(Default)]
pub struct Table {
    /// Keys read, and the latest changes.
    reads: Mutex<Reads>,
    /// Tracking connections.
    trackers: Mutex<HashMap<u64, Tracker>>,
    /// Every live connection's mailbox, for REDIRECT targets.
    mailboxes: Mutex<HashMap<u64, std::sync::Weak<Mailbox>>>,
    /// Tracking connections whose REDIRECT target was gone when an invalidation was due.
    broken: Mutex<HashSet<u64>>,
    /// `tracking-table-max-keys` (0: no limit): beyond it, keys are forgotten and their
    /// readers told, as if the keys had changed.
    pub max_keys: std::sync::atomic::AtomicUsize,
}

impl Table {
    pub fn register(&self, mailbox: &Arc<Mailbox>) {
        lock(&self.mailboxes).insert(mailbox.id, Arc::downgrade(mailbox));
    }

    pub fn unregister(&self, id: u64) {
        lock(&self.mailboxes).remove(&id);
        lock(&self.trackers).remove(&id);
        lock(&self.broken).remove(&id);
    }

    /// Connection `id`'s mailbox, while it is open.
    pub fn mailbox(&self, id: u64) -> Option<Arc<Mailbox>> {
        lock(&self.mailboxes)
            .get(&id)
            .and_then(std::sync::Weak::upgrade)
    }

    pub fn exists(&self, id: u64) -> bool {
        lock(&self.mailboxes)
            .get(&id)
            .is_some_and(|w| w.strong_count() > 0)
    }

    /// CLIENT TRACKINGINFO's `broken_redirect`.
    pub fn redirect_broken(&self, id: u64) -> bool {
        lock(&self.broken).contains(&id)
    }

    pub fn set_mode(&self, mailbox: &Arc<Mailbox>, mode: &Mode) {
        lock(&self.broken).remove(&mailbox.id);
        let mut t = lock(&self.trackers);
        if mode.on {
            t.insert(
                mailbox.id,
                Tracker {
                    mailbox: mailbox.clone(),
                    mode: mode.clone(),
                },
            );
        } else {
            t.remove(&mailbox.id);
        }
    }

    /// INFO: tracking connections, tracked keys, (key, connection) pairs, BCAST prefixes.
    pub fn info(&self) -> (usize, usize, usize, usize) {
        let (keys, items) = {
            let r = lock(&self.reads);
            (r.keys.len(), r.keys.values().map(HashMap::len).sum())
        };
        let t = lock(&self.trackers);
        let mut prefixes: HashSet<&[u8]> = HashSet::new();
        for tr in t.values().filter(|tr| tr.mode.bcast) {
            if tr.mode.prefixes.is_empty() {
                prefixes.insert(b"");
            }
            prefixes.extend(tr.mode.prefixes.iter().map(|p| &p[..]));
        }
        (t.len(), keys, items, prefixes.len())
    }

    /// Applies matter while someone tracks, or while keys read by connections that stopped
    /// tracking are still in the table (as in Redis, a change or a flush clears them).
    fn any(&self) -> bool {
        !lock(&self.trackers).is_empty() || !lock(&self.reads).keys.is_empty()
    }
}

impl Hub {
    /// Forgets tracked keys beyond `tracking-table-max-keys`, invalidating them for their readers.
    pub fn enforce_tracking_limit(&self) {
        let max = self.tracking.max_keys.load(Relaxed);
        if max == 0 {
            return;
        }
        let evicted: Vec<(Bytes, HashMap<u64, u64>)> = {
            let keys = &mut lock(&self.tracking.reads).keys;
            let over = keys.len().saturating_sub(max);
            let victims: Vec<Bytes> = keys.keys().take(over).cloned().collect();
            victims
                .into_iter()
                .filter_map(|k| keys.remove(&k).map(|ids| (k, ids)))
                .collect()
        };
        if evicted.is_empty() {
            return;
        }
        let trackers = lock(&self.tracking.trackers);
        for (key, ids) in evicted {
            for id in ids.into_keys() {
                if let Some(t) = trackers.get(&id).filter(|t| !t.mode.bcast) {
                    self.invalidate(t, Some(vec![key.clone()]));
                }
            }
        }
    }

    /// Sends one invalidation (`keys` None: everything) for tracking connection `t`.
    fn invalidate(&self, t: &Tracker, keys: Option<Vec<Bytes>>) {
        let payload = match keys {
            Some(keys) => {
                crate::resp::Reply::Array(keys.into_iter().map(crate::resp::Reply::Bulk).collect())
            }
            None => crate::resp::Reply::Nil,
        };
        let size = 64;
        let target = if t.mode.redirect != 0 {
            let found = lock(&self.tracking.mailboxes)
                .get(&t.mode.redirect)
                .and_then(std::sync::Weak::upgrade);
            match found {
                Some(mb) => mb,
                None => {
                    lock(&self.tracking.broken).insert(t.mailbox.id);
                    if t.mailbox.resp3.load(Relaxed) {
                        let push = crate::resp::Reply::Push(vec![
                            crate::resp::Reply::bulk(Bytes::from_static(b"tracking-redir-broken")),
                            crate::resp::Reply::integer(t.mode.redirect as i64),
                        ]);
                        t.mailbox.offer(push, size, &self.limits);
                    }
                    return;
                }
            }
        } else {
            t.mailbox.clone()
        };
        let push = if target.resp3.load(Relaxed) {
            crate::resp::Reply::Push(vec![
                crate::resp::Reply::bulk(Bytes::from_static(b"invalidate")),
                payload,
            ])
        } else if t.mode.redirect != 0 && self.is_subscribed(INVALIDATE_CHANNEL, target.id) {
            crate::resp::Reply::Push(vec![
                crate::resp::Reply::bulk(Bytes::from_static(b"message")),
                crate::resp::Reply::bulk(Bytes::from_static(INVALIDATE_CHANNEL)),
                payload,
            ])
        } else {
            return;
        };
        target.offer(push, size, &self.limits);
    }

    pub(super) fn tracking_wanted(&self) -> bool {
        self.tracking.any()
    }

    /// Connection `id` read `keys` on the state at applied index `seen`; its reply is not
    /// queued yet. Keys it tracks already are marked read at `seen`, so a batch the read saw,
    /// handed over after this, is not told after the reply (see `tracking_remember`).
    pub fn tracking_refresh(&self, id: u64, keys: &[Bytes], seen: u64) {
        lock(&self.tracking.reads).refresh(id, seen, keys);
    }

    /// The reply to connection `id`'s read of `keys` on the state at applied index `seen` is
    /// queued: remembers them, and tells at once (after the reply) what a batch handed over
    /// since the read changed. A batch handed over from now on is told when it comes.
    pub fn tracking_remember(&self, id: u64, keys: Vec<Bytes>, seen: u64) {
        let trackers = lock(&self.tracking.trackers);
        let Some(t) = trackers.get(&id) else {
            return;
        };
        let missed = lock(&self.tracking.reads).remember(id, t.mode.noloop, seen, keys);
        match missed {
            Missed::Nothing => {}
            Missed::Everything => self.invalidate(t, None),
            Missed::Keys(keys) => {
                for key in keys {
                    self.invalidate(t, Some(vec![key]));
                }
            }
        }
    }

    /// One applied batch, ending at applied index `index`: invalidations for the readers
    /// that read before it.
    pub(super) fn tracking_applied(&self, events: &[Event], index: u64) {
        let trackers = lock(&self.tracking.trackers);
        let mut reads = lock(&self.tracking.reads);
        if trackers.is_empty() && reads.keys.is_empty() {
            return;
        }
        let mut flushed = false;
        // Each changed key with the connection of this node whose write changed it (0: none).
        let mut changed: Vec<(&Bytes, u64)> = Vec::new();
        let mut writer = 0;
        for e in events {
            match e {
                Event::Changed { key, .. } => changed.push((key, writer)),
                Event::Flushed { .. } | Event::Reset => flushed = true,
                Event::Writer { conn } => writer = *conn,
                Event::Notify { .. } | Event::Swapped { .. } => {}
            }
        }
        if flushed {
            // Reads of the state after it stay; every tracker is told (as Redis tells them all).
            reads.keys.retain(|_, ids| {
                ids.retain(|_, seen| *seen >= index);
                !ids.is_empty()
            });
            reads.keep(Batch {
                index,
                flushed: true,
                changed: Vec::new(),
            });
            // Told under the lock, so a reader refreshing its keys (`tracking_refresh`) finds
            // them told already, or still tracked.
            for t in trackers.values() {
                self.invalidate(t, None);
            }
            return;
        }
        if changed.is_empty() {
            return;
        }
        // Default mode: each key's readers that read before the batch, once; a NOLOOP reader
        // is not told of its own write (it forgets the key all the same, as Redis does).
        let mut per_client: HashMap<u64, Vec<Bytes>> = HashMap::new();
        for &(key, writer) in &changed {
            let Some(ids) = reads.keys.get_mut(key) else {
                continue;
            };
            ids.retain(|&id, seen| {
                if *seen >= index {
                    return true;
                }
                let noloop = trackers.get(&id).is_some_and(|t| t.mode.noloop);
                if !(noloop && id == writer) {
                    let v = per_client.entry(id).or_default();
                    if !v.contains(key) {
                        v.push(key.clone());
                    }
                }
                false
            });
            if ids.is_empty() {
                reads.keys.remove(key);
            }
        }
        reads.keep(Batch {
            index,
            flushed: false,
            changed: changed.iter().map(|&(k, w)| (k.clone(), w)).collect(),
        });
        // Told under the lock (as above): a reader that no longer finds its key tracked has it
        // queued already, before the reply it is about to queue.
        for (id, keys) in per_client {
            if let Some(t) = trackers.get(&id).filter(|t| !t.mode.bcast) {
                for key in keys {
                    self.invalidate(t, Some(vec![key]));
                }
            }
        }
        drop(reads);
        // BCAST: one message per prefix (no prefix: every key), its keys in order, once each.
        let everything = [Bytes::new()];
        for t in trackers.values().filter(|t| t.mode.bcast) {
            let prefixes = if t.mode.prefixes.is_empty() {
                &everything[..]
            } else {
                &t.mode.prefixes[..]
            };
            for p in prefixes {
                let id = t.mailbox.id;
                let mine: std::collections::BTreeSet<&Bytes> = changed
                    .iter()
                    .filter(|(k, _)| k.starts_with(p))
                    .filter(|&&(_, writer)| !(t.mode.noloop && writer == id))
                    .map(|&(k, _)| k)
                    .collect();
                if !mine.is_empty() {
                    self.invalidate(t, Some(mine.into_iter().cloned().collect()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::super::{Subscriptions, links};
    use super::*;
    use crate::resp::Protocol;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn changed(key: &str) -> Event {
        Event::Changed { db: 0, key: b(key) }
    }

    fn pushed(s: &Subscriptions) -> String {
        let mut out = BytesMut::new();
        s.mailbox.drain_into(&mut out, Protocol::Resp3);
        String::from_utf8_lossy(&out).replace("\r\n", " ")
    }

    /// A read of `keys` on the state at `seen`, its reply queued.
    fn read(a: &mut Subscriptions, keys: Vec<Bytes>, seen: u64) {
        let r = a.after_command(Some(keys), seen);
        a.remember(r);
    }

    fn tracker(hub: &Arc<Hub>, id: u64, bcast: bool) -> Subscriptions {
        let mut s = Subscriptions::new(hub.clone(), id, Arc::default());
        s.note_protocol(Protocol::Resp3);
        s.tracking = Mode {
            on: true,
            noloop: true,
            bcast,
            ..Mode::default()
        };
        s.tracking_changed();
        s
    }

    #[test]
    fn noloop_skips_exactly_the_changes_of_the_connections_own_entries() {
        let hub = Hub::new(links::Links::disconnected());
        let mut a = tracker(&hub, 5, false);
        read(&mut a, vec![b("k")], 0);
        // Its own write: not told, and the key is forgotten (as Redis).
        hub.tracking_applied(
            &[
                Event::Writer { conn: 5 },
                changed("k"),
                Event::Writer { conn: 0 },
            ],
            1,
        );
        assert_eq!(pushed(&a), "");
        hub.tracking_applied(&[changed("k")], 2);
        assert_eq!(pushed(&a), "", "no longer tracked");
        // Read again; another connection's write in the same batch as its own is told.
        read(&mut a, vec![b("k")], 2);
        hub.tracking_applied(
            &[
                Event::Writer { conn: 5 },
                changed("j"),
                Event::Writer { conn: 9 },
                changed("k"),
            ],
            3,
        );
        assert_eq!(pushed(&a), ">2 $10 invalidate *1 $1 k ");
    }

    #[test]
    fn noloop_bcast_leaves_out_only_the_keys_the_connection_wrote() {
        let hub = Hub::new(links::Links::disconnected());
        let a = tracker(&hub, 5, true);
        hub.tracking_applied(
            &[
                Event::Writer { conn: 5 },
                changed("mine"),
                Event::Writer { conn: 0 },
                changed("theirs"),
            ],
            1,
        );
        assert_eq!(pushed(&a), ">2 $10 invalidate *1 $6 theirs ");
        hub.tracking_applied(&[Event::Writer { conn: 5 }, changed("mine")], 2);
        assert_eq!(pushed(&a), "");
    }

    /// A batch is handed over after readers can see it, and a read is remembered after its
    /// reply: a read is told of exactly the batches it did not see, whichever comes first.
    #[test]
    fn a_read_is_told_of_exactly_the_writes_it_did_not_see() {
        let hub = Hub::new(links::Links::disconnected());
        let mut a = tracker(&hub, 5, false);
        let other = || Event::Writer { conn: 9 };
        // Read on the state after batch 10, remembered before batch 10 is handed over: the
        // read saw it, so it stays tracked, and batch 11 is told.
        read(&mut a, vec![b("k")], 10);
        hub.tracking_applied(&[other(), changed("k")], 10);
        assert_eq!(pushed(&a), "", "a write the read saw");
        hub.tracking_applied(&[other(), changed("k")], 11);
        assert_eq!(pushed(&a), ">2 $10 invalidate *1 $1 k ");
        // Read on the state at 11, remembered after batch 12 (which changed it) was handed
        // over: told at once, and no longer tracked.
        hub.tracking_applied(&[other(), changed("k"), changed("j")], 12);
        read(&mut a, vec![b("k"), b("x")], 11);
        assert_eq!(pushed(&a), ">2 $10 invalidate *1 $1 k ");
        hub.tracking_applied(&[other(), changed("k"), changed("x")], 13);
        assert_eq!(
            pushed(&a),
            ">2 $10 invalidate *1 $1 x ",
            "x stayed tracked, k did not"
        );
        // NOLOOP: its own write first, handed over before the read is remembered: forgotten
        // untold, as when it comes after.
        hub.tracking_applied(&[Event::Writer { conn: 5 }, changed("m")], 14);
        read(&mut a, vec![b("m")], 13);
        hub.tracking_applied(&[other(), changed("m")], 15);
        assert_eq!(pushed(&a), "");
        // A flush the read did not see: everything is told; one it saw keeps the read.
        hub.tracking_applied(&[Event::Flushed { db: 0 }], 16);
        assert_eq!(pushed(&a), ">2 $10 invalidate _ ");
        read(&mut a, vec![b("f")], 15);
        assert_eq!(pushed(&a), ">2 $10 invalidate _ ");
        read(&mut a, vec![b("g")], 17);
        hub.tracking_applied(&[Event::Flushed { db: 0 }], 17);
        assert_eq!(pushed(&a), ">2 $10 invalidate _ ");
        hub.tracking_applied(&[other(), changed("g")], 18);
        assert_eq!(
            pushed(&a),
            ">2 $10 invalidate *1 $1 g ",
            "g was read after the flush"
        );
        // Tracked from a read at 20 and read again at 22: batch 21, handed over while the
        // second reply is being queued, is not told after it (the second read saw it).
        read(&mut a, vec![b("r")], 20);
        let r = a.after_command(Some(vec![b("r")]), 22);
        hub.tracking_applied(&[other(), changed("r")], 21);
        a.remember(r);
        assert_eq!(pushed(&a), "");
        hub.tracking_applied(&[other(), changed("r")], 23);
        assert_eq!(pushed(&a), ">2 $10 invalidate *1 $1 r ");
        // A read older than the batches kept is told its keys changed.
        for i in 0..RECENT_KEYS as u64 + 1 {
            let key = format!("w{i}");
            hub.tracking_applied(&[other(), changed(&key)], 100 + i);
        }
        read(&mut a, vec![b("old")], 99);
        assert_eq!(pushed(&a), ">2 $10 invalidate *1 $3 old ");
        assert_eq!(hub.tracking.info().2, 0, "nothing tracked");
    }
}
