//! What applied writes tell the rest of the node: the keys each batch of entries changed and the
//! keyspace notifications its commands raised.
//!
//! Every node applies every entry, so each node learns of every write, whichever node it came
//! through, at the point its own readers can see it. The state machine collects [`Event`]s while
//! it applies (`kv::WriteView` records a [`Event::Changed`] for every metadata row an entry writes
//! or removes, commands add [`Event::Notify`] with `WriteView::notify`), and the raft thread hands
//! each batch to the [`Hub`] once the writes are visible to readers (and durable where the reply
//! waits for that), before the proposers' replies go out. Readers may see a batch before it is
//! handed over: a listener that must know which writes a read saw compares the batch's applied
//! index with the read's (`kv::Reader::seen`, CLIENT TRACKING).
//!
//! Listeners (blocking pops, pub/sub keyspace notifications, client-side caching) register once at
//! start. They run on the raft thread: they must only record or signal (a channel send, a
//! `Notify`), never block or read the state. Events are not replicated state: they exist so
//! node-local waiters can react, and a node that restarts starts with no waiters.

use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;

/// One thing an applied entry did, in apply order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The key's metadata row was written or removed (created, changed, deleted, expired).
    Changed { db: u8, key: Bytes },
    /// A keyspace notification, as Redis's `notifyKeyspaceEvent(class, event, key, db)`; `class`
    /// is Redis's flag character ('g' generic, '$' string, 'l' list, 's' set, 'h' hash, 'z'
    /// sorted set, 'x' expired, 'e' evicted, 't' stream, 'm' key miss, 'd' module, 'n' new key).
    Notify {
        db: u8,
        class: char,
        event: &'static str,
        key: Bytes,
    },
    /// Database `db` was emptied (FLUSHDB, FLUSHALL): any key of it may have changed.
    Flushed { db: u8 },
    /// SWAPDB exchanged the data of databases `a` and `b`: any key of either may have changed.
    /// Not a flush: Redis 7.0 sends no client-side caching invalidation for it.
    Swapped { a: u8, b: u8 },
    /// The whole state was replaced (a snapshot was installed): any key may have changed.
    Reset,
    /// The events that follow (up to the next `Writer`) come from an entry proposed by
    /// connection `conn` of this node (0: another node's, or no connection's). Not state: a
    /// node-local attribution, for CLIENT TRACKING NOLOOP.
    Writer { conn: u64 },
}

impl Event {
    /// The database and key this event is about, if it names one key.
    pub fn key(&self) -> Option<(u8, &Bytes)> {
        match self {
            Event::Changed { db, key } | Event::Notify { db, key, .. } => Some((*db, key)),
            Event::Flushed { .. } | Event::Swapped { .. } | Event::Reset | Event::Writer { .. } => {
                None
            }
        }
    }
}

/// A node-local consumer of applied events.
pub trait Listener: Send + Sync {
    /// Whether the listener wants events now (e.g. some client is blocked or subscribed). When no
    /// listener does, apply does not collect them at all.
    fn wants_events(&self) -> bool;
    /// One applied batch's events, in apply order; `index` is the applied index after it (a
    /// reader that saw a state at or past it saw all of the batch). Runs on the raft thread:
    /// must not block.
    fn applied(&self, events: &[Event], index: u64);
}

/// The node's listeners.
#[derive(Default)]
pub struct Hub {
    listeners: RwLock<Vec<Arc<dyn Listener>>>,
    /// Redis's dirty counter: apply adds each entry's changes (`crate::persistence`).
    pub persistence: crate::persistence::Persistence,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Adds a listener for the rest of the process's life.
    pub fn add(&self, listener: Arc<dyn Listener>) {
        self.listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// Whether apply should collect events.
    pub fn wanted(&self) -> bool {
        self.listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|l| l.wants_events())
    }

    /// Hands one applied batch, ending at applied index `index`, to every listener.
    pub fn deliver(&self, events: &[Event], index: u64) {
        if events.is_empty() {
            return;
        }
        for l in self
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            l.applied(events, index);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[derive(Default)]
    struct Recorder {
        on: AtomicBool,
        seen: Mutex<Vec<Event>>,
    }

    impl Listener for Recorder {
        fn wants_events(&self) -> bool {
            self.on.load(Ordering::Relaxed)
        }
        fn applied(&self, events: &[Event], _index: u64) {
            self.seen.lock().unwrap().extend_from_slice(events);
        }
    }

    #[test]
    fn events_are_wanted_only_while_a_listener_wants_them_and_reach_every_listener() {
        let hub = Hub::new();
        assert!(!hub.wanted(), "no listener");
        let a = Arc::new(Recorder::default());
        let b = Arc::new(Recorder::default());
        hub.add(a.clone());
        hub.add(b.clone());
        assert!(!hub.wanted());
        b.on.store(true, Ordering::Relaxed);
        assert!(hub.wanted());
        let e = Event::Changed {
            db: 3,
            key: Bytes::from_static(b"k"),
        };
        hub.deliver(std::slice::from_ref(&e), 7);
        assert_eq!(*a.seen.lock().unwrap(), vec![e.clone()]);
        assert_eq!(*b.seen.lock().unwrap(), vec![e.clone()]);
        assert_eq!(e.key(), Some((3, &Bytes::from_static(b"k"))));
        assert_eq!(Event::Reset.key(), None);
    }
}
