//! Keyspace notifications (`notify-keyspace-events`): the events this node's applies raise
//! (`events::Event::Notify`, from `WriteView::notify`) published to this node's subscribers only,
//! as `__keyspace@<db>__:<key>` (message: the event) and `__keyevent@<db>__:<event>` (message:
//! the key). Every node applies every write, so a subscriber on any node sees every write's
//! events, once, in apply order.

use std::sync::atomic::Ordering::Relaxed;

use bytes::{Bytes, BytesMut};

use super::Hub;
use crate::events::{Event, Listener};

/// Redis's class characters, one bit each.
const CLASSES: &str = "g$lshzxetdnKEm";
const KEYSPACE: u64 = 1 << 11;
const KEYEVENT: u64 = 1 << 12;

fn bit(class: char) -> u64 {
    CLASSES.find(class).map_or(0, |i| 1 << i)
}

/// The flag bits of a `notify-keyspace-events` value (`A` is every type class, as in Redis).
pub fn flags(value: &str) -> u64 {
    value.chars().fold(0, |f, c| match c {
        'A' => f | "g$lshzxetd".chars().map(bit).fold(0, |a, b| a | b),
        c => f | bit(c),
    })
}

impl Hub {
    /// CONFIG SET notify-keyspace-events (the value as CONFIG GET shows it).
    pub fn set_notify_flags(&self, value: &str) {
        self.notify_flags.store(flags(value), Relaxed);
    }

    fn notify(&self, flags: u64, db: u8, class: char, event: &str, key: &Bytes) {
        if flags & bit(class) == 0 {
            return;
        }
        let event_bytes = Bytes::copy_from_slice(event.as_bytes());
        if flags & KEYSPACE != 0 {
            let mut ch = BytesMut::with_capacity(16 + key.len());
            ch.extend_from_slice(format!("__keyspace@{db}__:").as_bytes());
            ch.extend_from_slice(key);
            self.deliver_local(false, &ch.freeze(), &event_bytes);
        }
        if flags & KEYEVENT != 0 {
            let ch = Bytes::from(format!("__keyevent@{db}__:{event}"));
            self.deliver_local(false, &ch, key);
        }
    }
}

impl Listener for Hub {
    fn wants_events(&self) -> bool {
        let f = self.notify_flags.load(Relaxed);
        self.tracking_wanted() || f & (KEYSPACE | KEYEVENT) != 0 && f & !(KEYSPACE | KEYEVENT) != 0
    }

    fn applied(&self, events: &[Event], index: u64) {
        self.tracking_applied(events, index);
        let flags = self.notify_flags.load(Relaxed);
        if flags & (KEYSPACE | KEYEVENT) == 0 {
            return;
        }
        for e in events {
            if let Event::Notify {
                db,
                class,
                event,
                key,
            } = e
            {
                self.notify(flags, *db, *class, event, key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_redis_classes() {
        assert_eq!(flags(""), 0);
        assert_eq!(flags("AKE") & KEYSPACE, KEYSPACE);
        assert_ne!(flags("A") & bit('x'), 0);
        assert_eq!(
            flags("A") & bit('n'),
            0,
            "A does not include new-key events"
        );
        assert_eq!(flags("A") & bit('m'), 0, "nor key misses");
        assert_eq!(flags("Kl"), KEYSPACE | bit('l'));
    }
}
