//! When each key was last used on this node, and how often: what Redis keeps in the 24 `lru`
//! bits of every object, for `OBJECT IDLETIME`, `OBJECT FREQ` and the LRU and LFU eviction
//! policies (`crate::evict`).
//!
//! Like Redis's, this is node-local and never replicated: a node counts the reads it serves and
//! the writes it applies (every node applies every write, as a Redis replica does), with its
//! own clock. Replicated state never depends on it: eviction only uses it to choose which keys
//! to propose, and the entry it proposes names them (see `crate::evict`).
//!
//! Keys are not stored: a key's slot is picked by the hash of its database and name in a fixed
//! table of `SLOTS` 32-bit slots, allocated a page at a time as keys land in it (a fresh node
//! pays 64 KiB, 1M keys about 16 MiB, 16 bytes each). Keys that share a slot share its clock
//! and counter, so a key can look more recently or more often used than it was, never less;
//! Redis's own LRU is an approximation too (it ranks a handful of sampled keys). A slot holds
//! the second of the last access (24 bits, wrapping after 194 days, as Redis's LRU clock does)
//! and an 8-bit logarithmic access counter (Redis's LFU counter, incremented with probability
//! `1 / ((counter - 5) * lfu-log-factor + 1)` and decremented by one per `lfu-decay-time`
//! minutes since the last access).

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::fnv::Fnv1a;

/// Slots in the table: 4M, so 1M keys share a slot with another about one time in five.
const SLOTS: usize = 1 << 22;
/// Slots per lazily allocated chunk: one 4 KiB page.
const CHUNK: usize = 1024;
/// The clock's period: it counts seconds in 24 bits (value 0 marks a slot never used).
const CLOCK_MAX: u32 = (1 << 24) - 1;
/// The counter a new key starts with (Redis's `LFU_INIT_VAL`).
pub const LFU_INIT: u8 = 5;

/// `lfu-log-factor` and `lfu-decay-time`, as CONFIG SET them (Redis's defaults).
static LOG_FACTOR: AtomicU64 = AtomicU64::new(10);
static DECAY_MINUTES: AtomicU64 = AtomicU64::new(1);

type Chunk = [AtomicU32; CHUNK];

struct Table {
    chunks: Box<[OnceLock<Box<Chunk>>]>,
    start: Instant,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table {
        chunks: (0..SLOTS / CHUNK).map(|_| OnceLock::new()).collect(),
        start: Instant::now(),
    })
}

impl Table {
    /// The slot of `key` in database `db`, allocating its chunk on first use if `create`.
    fn slot(&self, db: u8, key: &[u8], create: bool) -> Option<&AtomicU32> {
        let mut h = Fnv1a::new();
        h.feed(&[db]);
        h.feed(key);
        // FNV alone mixes a key's last bytes into few high bits (keys "k1" and "k2" would
        // share a slot): MurmurHash3's finalizer spreads every bit over the index.
        let mut x = h.finish();
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^= x >> 33;
        let i = (x as usize) & (SLOTS - 1);
        let cell = &self.chunks[i / CHUNK];
        let chunk = if create {
            cell.get_or_init(|| Box::new(std::array::from_fn(|_| AtomicU32::new(0))))
        } else {
            cell.get()?
        };
        Some(&chunk[i % CHUNK])
    }

    /// The clock now: seconds since the process started, in 1..=CLOCK_MAX.
    fn now(&self) -> u32 {
        (self.start.elapsed().as_secs() % u64::from(CLOCK_MAX)) as u32 + 1
    }
}

/// Seconds from clock value `then` to `now`, across the clock's wrap (Redis's
/// `estimateObjectIdleTime`).
fn elapsed(now: u32, then: u32) -> u32 {
    if now >= then {
        now - then
    } else {
        CLOCK_MAX - then + now
    }
}

/// A slot's counter as of `now`: decremented by the decay periods since its last access
/// (Redis's `LFUDecrAndReturn`).
fn decayed(slot: u32, now: u32) -> u8 {
    let counter = (slot & 0xff) as u8;
    let decay = DECAY_MINUTES.load(Relaxed);
    if decay == 0 {
        return counter;
    }
    let periods = u64::from(elapsed(now, slot >> 8)) / 60 / decay;
    counter.saturating_sub(periods.min(255) as u8)
}

/// The counter after one access (Redis's `LFULogIncr`), with this thread's randomness.
fn incremented(counter: u8) -> u8 {
    if counter == 255 {
        return 255;
    }
    let base = f64::from(counter.saturating_sub(LFU_INIT));
    let p = 1.0 / (base * LOG_FACTOR.load(Relaxed) as f64 + 1.0);
    if random_unit() < p {
        counter + 1
    } else {
        counter
    }
}

/// A uniform number in [0, 1) from a per-thread xorshift generator (node-local use only).
fn random_unit() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(crate::raft::identity::random_u64() | 1);
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// Records an access to `key`: a command looked it up (reading or writing it). A slot used
/// for the first time starts its counter at `LFU_INIT`, as a new Redis object does.
pub fn touch(db: u8, key: &[u8]) {
    let t = table();
    let Some(slot) = t.slot(db, key, true) else {
        return;
    };
    let now = t.now();
    let old = slot.load(Relaxed);
    let counter = if old == 0 {
        LFU_INIT
    } else {
        incremented(decayed(old, now))
    };
    slot.store(now << 8 | u32::from(counter), Relaxed);
}

/// Sets what RESTORE's IDLETIME or FREQ say (after the touch of its own lookup): the last
/// access `idle_secs` ago, or the counter `freq`.
pub fn restore(db: u8, key: &[u8], idle_secs: Option<u64>, freq: Option<u8>) {
    let t = table();
    let Some(slot) = t.slot(db, key, true) else {
        return;
    };
    let now = t.now();
    let old = slot.load(Relaxed);
    let mut at = if old == 0 { now } else { old >> 8 };
    let mut counter = if old == 0 {
        LFU_INIT
    } else {
        (old & 0xff) as u8
    };
    if let Some(idle) = idle_secs {
        let back = (idle % u64::from(CLOCK_MAX)) as u32;
        at = if back < now {
            now - back
        } else {
            CLOCK_MAX - (back - now)
        };
    }
    if let Some(f) = freq {
        counter = f;
        at = now;
    }
    slot.store(at << 8 | u32::from(counter), Relaxed);
}

/// Seconds since `key` was last used on this node; a key never used here counts as used just
/// before the node started (so it ranks idler than any key used since).
pub fn idle_secs(db: u8, key: &[u8]) -> u64 {
    let t = table();
    let now = t.now();
    match t.slot(db, key, false).map(|s| s.load(Relaxed)) {
        Some(slot) if slot != 0 => u64::from(elapsed(now, slot >> 8)),
        _ => u64::from(now),
    }
}

/// The key's access counter, decayed to now (`OBJECT FREQ`).
pub fn frequency(db: u8, key: &[u8]) -> u8 {
    let t = table();
    let now = t.now();
    match t.slot(db, key, false).map(|s| s.load(Relaxed)) {
        Some(slot) if slot != 0 => decayed(slot, now),
        _ => LFU_INIT,
    }
}

/// CONFIG SET lfu-log-factor.
pub fn set_log_factor(n: u64) {
    LOG_FACTOR.store(n, Relaxed);
}

/// CONFIG SET lfu-decay-time (minutes; 0: never decay).
pub fn set_decay_minutes(n: u64) {
    DECAY_MINUTES.store(n, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_and_decay_cross_the_clock_wrap() {
        assert_eq!(elapsed(10, 4), 6);
        assert_eq!(elapsed(3, CLOCK_MAX - 2), 5);
        // 5 minutes after the last access the counter lost 5 (decay time 1 minute).
        let slot = (100u32 << 8) | 20;
        assert_eq!(decayed(slot, 100 + 5 * 60), 15);
        assert_eq!(decayed(slot, 100 + 59), 20);
        assert_eq!(decayed(slot, 100 + 60 * 60), 0);
    }

    #[test]
    fn counters_grow_logarithmically() {
        // At the initial value every access counts; far above it, few do.
        assert_eq!(incremented(LFU_INIT), LFU_INIT + 1);
        assert_eq!(incremented(255), 255);
        let mut c = LFU_INIT;
        for _ in 0..1000 {
            c = incremented(c);
        }
        assert!((15..60).contains(&c), "{c}");
    }

    #[test]
    fn keys_that_differ_in_their_last_byte_get_their_own_slots() {
        let t = table();
        let slot = |k: &[u8]| t.slot(7, k, true).map(|s| s as *const AtomicU32);
        let slots: std::collections::HashSet<_> =
            (0..100).map(|i| slot(format!("k{i}").as_bytes())).collect();
        assert_eq!(slots.len(), 100);
    }

    #[test]
    fn touched_keys_are_fresh_and_restore_sets_idle_and_freq() {
        let key = b"access::tests::touched";
        touch(3, key);
        assert_eq!(idle_secs(3, key), 0);
        assert!(frequency(3, key) >= LFU_INIT);
        restore(3, key, Some(1000), None);
        assert!((1000..=1001).contains(&idle_secs(3, key)));
        restore(3, key, None, Some(100));
        assert_eq!(frequency(3, key), 100);
        assert_eq!(idle_secs(3, key), 0);
    }
}
