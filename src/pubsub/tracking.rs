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
//! NOLOOP: applies do not say which connection wrote, so a NOLOOP connection registers the keys
//! of its writes in flight, and is not told of changes to them until their replies are in (a
//! change by another connection to the same key in that window is not reported either).

use std::collections::{HashMap, HashSet};
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

#[derive(Default)]
pub struct Table {
    /// Key name to the connections that read it.
    keys: Mutex<HashMap<Bytes, HashSet<u64>>>,
    /// Tracking connections.
    trackers: Mutex<HashMap<u64, Tracker>>,
    /// Every live connection's mailbox, for REDIRECT targets.
    mailboxes: Mutex<HashMap<u64, std::sync::Weak<Mailbox>>>,
    /// Tracking connections whose REDIRECT target was gone when an invalidation was due.
    broken: Mutex<HashSet<u64>>,
    /// NOLOOP: the keys of the writes each NOLOOP connection has in flight (until its replies
    /// are in), whose invalidations it is not sent.
    writing: Mutex<HashMap<u64, HashSet<Bytes>>>,
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
        lock(&self.writing).remove(&id);
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

    /// A NOLOOP connection proposes a write of `keys`.
    pub fn begin_write(&self, id: u64, keys: impl Iterator<Item = Bytes>) {
        lock(&self.writing).entry(id).or_default().extend(keys);
    }

    /// Its writes are answered.
    pub fn end_writes(&self, id: u64) {
        lock(&self.writing).remove(&id);
    }

    fn own_write(&self, id: u64, key: &[u8]) -> bool {
        lock(&self.writing)
            .get(&id)
            .is_some_and(|keys| keys.contains(key))
    }

    pub fn remember(&self, id: u64, keys: impl Iterator<Item = Bytes>) {
        let mut k = lock(&self.keys);
        for key in keys {
            k.entry(key).or_default().insert(id);
        }
    }

    /// INFO: tracking connections, tracked keys, (key, connection) pairs, BCAST prefixes.
    pub fn info(&self) -> (usize, usize, usize, usize) {
        let (keys, items) = {
            let k = lock(&self.keys);
            (k.len(), k.values().map(HashSet::len).sum())
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

    fn any(&self) -> bool {
        !lock(&self.trackers).is_empty()
    }
}

impl Hub {
    /// Forgets tracked keys beyond `tracking-table-max-keys`, invalidating them for their readers.
    pub fn enforce_tracking_limit(&self) {
        let max = self.tracking.max_keys.load(Relaxed);
        if max == 0 {
            return;
        }
        let evicted: Vec<(Bytes, HashSet<u64>)> = {
            let mut keys = lock(&self.tracking.keys);
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
            for id in ids {
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

    pub(super) fn tracking_applied(&self, events: &[Event]) {
        let trackers = lock(&self.tracking.trackers);
        if trackers.is_empty() {
            return;
        }
        let mut flushed = false;
        let mut changed: Vec<&Bytes> = Vec::new();
        for e in events {
            match e {
                Event::Changed { key, .. } => changed.push(key),
                Event::Flushed { .. } | Event::Reset => flushed = true,
                Event::Notify { .. } | Event::Swapped { .. } => {}
            }
        }
        if flushed {
            lock(&self.tracking.keys).clear();
            for t in trackers.values() {
                self.invalidate(t, None);
            }
            return;
        }
        if changed.is_empty() {
            return;
        }
        // Default mode: each key's readers, once.
        let mut per_client: HashMap<u64, Vec<Bytes>> = HashMap::new();
        {
            let mut keys = lock(&self.tracking.keys);
            for key in &changed {
                if let Some(ids) = keys.remove(*key) {
                    for id in ids {
                        let v = per_client.entry(id).or_default();
                        if !v.contains(key) {
                            v.push((*key).clone());
                        }
                    }
                }
            }
        }
        for (id, keys) in per_client {
            if let Some(t) = trackers.get(&id).filter(|t| !t.mode.bcast) {
                for key in keys {
                    if t.mode.noloop && self.tracking.own_write(id, &key) {
                        continue;
                    }
                    self.invalidate(t, Some(vec![key]));
                }
            }
        }
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
                    .copied()
                    .filter(|k| k.starts_with(p))
                    .filter(|k| !(t.mode.noloop && self.tracking.own_write(id, k)))
                    .collect();
                if !mine.is_empty() {
                    self.invalidate(t, Some(mine.into_iter().cloned().collect()));
                }
            }
        }
    }
}
