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

    /// Applies matter while someone tracks, or while keys read by connections that stopped
    /// tracking are still in the table (as in Redis, a change or a flush clears them).
    fn any(&self) -> bool {
        !lock(&self.trackers).is_empty() || !lock(&self.keys).is_empty()
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
        if trackers.is_empty() && lock(&self.tracking.keys).is_empty() {
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
            lock(&self.tracking.keys).clear();
            for t in trackers.values() {
                self.invalidate(t, None);
            }
            return;
        }
        if changed.is_empty() {
            return;
        }
        // Default mode: each key's readers, once; a NOLOOP reader is not told of its own
        // write (it forgets the key all the same, as Redis does).
        let mut per_client: HashMap<u64, Vec<Bytes>> = HashMap::new();
        {
            let mut keys = lock(&self.tracking.keys);
            for &(key, writer) in &changed {
                if let Some(ids) = keys.remove(key) {
                    for id in ids {
                        let noloop = trackers.get(&id).is_some_and(|t| t.mode.noloop);
                        if noloop && id == writer {
                            continue;
                        }
                        let v = per_client.entry(id).or_default();
                        if !v.contains(key) {
                            v.push(key.clone());
                        }
                    }
                }
            }
        }
        for (id, keys) in per_client {
            if let Some(t) = trackers.get(&id).filter(|t| !t.mode.bcast) {
                for key in keys {
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
        a.after_command(Some(vec![b("k")]));
        // Its own write: not told, and the key is forgotten (as Redis).
        hub.tracking_applied(&[
            Event::Writer { conn: 5 },
            changed("k"),
            Event::Writer { conn: 0 },
        ]);
        assert_eq!(pushed(&a), "");
        hub.tracking_applied(&[changed("k")]);
        assert_eq!(pushed(&a), "", "no longer tracked");
        // Read again; another connection's write in the same batch as its own is told.
        a.after_command(Some(vec![b("k")]));
        hub.tracking_applied(&[
            Event::Writer { conn: 5 },
            changed("j"),
            Event::Writer { conn: 9 },
            changed("k"),
        ]);
        assert_eq!(pushed(&a), ">2 $10 invalidate *1 $1 k ");
    }

    #[test]
    fn noloop_bcast_leaves_out_only_the_keys_the_connection_wrote() {
        let hub = Hub::new(links::Links::disconnected());
        let a = tracker(&hub, 5, true);
        hub.tracking_applied(&[
            Event::Writer { conn: 5 },
            changed("mine"),
            Event::Writer { conn: 0 },
            changed("theirs"),
        ]);
        assert_eq!(pushed(&a), ">2 $10 invalidate *1 $6 theirs ");
        hub.tracking_applied(&[Event::Writer { conn: 5 }, changed("mine")]);
        assert_eq!(pushed(&a), "");
    }
}
