//! Eviction under `maxmemory`: Redis's `maxmemory-policy` (see `docs/memory.md`).
//!
//! Memory is node-local (the bytes this process's allocator handed out, `crate::memory`) and
//! so is the limit, so apply can never decide to evict. Instead, as Redis runs
//! `performEvictions` before every command while a limit is set, the node a client's command
//! arrives at looks at its own memory first (`perform`); when it is over its limit it picks
//! victims from its own view of the keyspace, as the policy says, and proposes ONE `evict`
//! entry (`cmd::maxmemory::EVICT`) naming them. Apply deletes those that are still as they
//! were sampled, alike on every node, raising the `evicted` notification and the tracking
//! invalidations (through the deletions' events). The command runs once that entry is applied,
//! so what the eviction sent this connection goes out before the command's reply. It goes on
//! while the node is over its limit and something is evictable, at most `MAX_ENTRIES` entries
//! per command; if nothing is evictable and the node is still over, `denyoom` commands are
//! refused as under `noeviction`.
//!
//! Sampling follows Redis's (`maxmemory-samples` keys per database): random SCAN positions
//! for `allkeys-*`, the same filtered to keys with a TTL for `volatile-*` (falling back to the
//! expiry index when a sample finds none). LRU ranks by this node's access clock (the longest
//! idle first) and LFU by its access counters (the lowest first), both from `crate::access`;
//! ties go to the key least recently written (`Meta::modified`, replicated state).
//! `volatile-ttl` reads the soonest expiries from the expiry index, exactly.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use slog::debug;

use crate::kv::encoding::{self, DATABASES, Meta};
use crate::kv::{KeyRead, Reader};
use crate::resp::Reply;
use crate::server::Shared;

/// Redis's `maxmemory-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    NoEviction,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

const POLICIES: [(Policy, &str); 8] = [
    (Policy::NoEviction, "noeviction"),
    (Policy::AllkeysLru, "allkeys-lru"),
    (Policy::AllkeysLfu, "allkeys-lfu"),
    (Policy::AllkeysRandom, "allkeys-random"),
    (Policy::VolatileLru, "volatile-lru"),
    (Policy::VolatileLfu, "volatile-lfu"),
    (Policy::VolatileRandom, "volatile-random"),
    (Policy::VolatileTtl, "volatile-ttl"),
];

impl Policy {
    /// The policy CONFIG names so (`None` for anything else).
    pub fn parse(name: &str) -> Option<Policy> {
        POLICIES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(p, _)| *p)
    }

    /// The name CONFIG GET and INFO show.
    pub fn name(self) -> &'static str {
        POLICIES
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("noeviction", |(_, n)| n)
    }

    /// An LFU policy: access counters rank keys (and OBJECT FREQ answers).
    pub fn lfu(self) -> bool {
        matches!(self, Policy::AllkeysLfu | Policy::VolatileLfu)
    }

    /// Only keys with a TTL may go.
    fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }
}

/// The policy in force, as its index in `POLICIES` (process-wide, as `maxmemory` is).
static POLICY: AtomicU8 = AtomicU8::new(0);
/// `maxmemory-samples`: keys looked at per database per round.
static SAMPLES: AtomicUsize = AtomicUsize::new(5);
/// INFO stats `evicted_keys`: keys this node's eviction entries removed.
static EVICTED: AtomicU64 = AtomicU64::new(0);
/// One eviction at a time on this node: connections over the limit together wait for the one
/// evicting and then look again, instead of all proposing the same victims.
static EVICTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Keys one entry names at most, and entries one command waits for at most (then it runs
/// anyway, as Redis's eviction returns `EVICT_RUNNING` past its time limit).
const KEYS_PER_ENTRY: usize = 64;
const MAX_ENTRIES: usize = 8;
/// Rows of the expiry index one look reads at most per database.
const INDEX_BUDGET: usize = 256;
/// Bytes a key costs beyond its name and value, for the estimate of what a victim frees.
const KEY_OVERHEAD: usize = 64;

/// CONFIG SET maxmemory-policy (the value is checked by CONFIG first).
pub fn set_policy(name: &str) {
    let at = POLICIES
        .iter()
        .position(|(_, n)| n.eq_ignore_ascii_case(name))
        .unwrap_or(0);
    POLICY.store(at as u8, Relaxed);
}

pub fn policy() -> Policy {
    POLICIES
        .get(usize::from(POLICY.load(Relaxed)))
        .map_or(Policy::NoEviction, |(p, _)| *p)
}

/// CONFIG SET maxmemory-samples.
pub fn set_samples(n: usize) {
    SAMPLES.store(n.max(1), Relaxed);
}

pub fn evicted_keys() -> u64 {
    EVICTED.load(Relaxed)
}

/// CONFIG RESETSTAT.
pub fn reset_stats() {
    EVICTED.store(0, Relaxed);
}

/// What the look before a command found: whether `denyoom` commands are to be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Under the limit (or no limit).
    Fits,
    /// Still over after `MAX_ENTRIES` entries that removed keys: the command runs.
    Running,
    /// Over and nothing (more) is evictable: Redis's `EVICT_FAIL`.
    OutOfMemory,
}

/// True if a limit and a policy that evicts are set and this node is over the limit: the
/// caller then lets its queued replies go first and calls `perform`.
pub fn due() -> bool {
    crate::memory::maxmemory() != 0
        && policy() != Policy::NoEviction
        && crate::memory::over_maxmemory()
}

/// Evicts until this node is under its limit, nothing is evictable or `MAX_ENTRIES` entries
/// went through; each entry is applied before the next look.
pub async fn perform(shared: &Shared) -> Outcome {
    let _one = EVICTING.lock().await;
    let mut removed_any = false;
    for _ in 0..MAX_ENTRIES {
        let limit = crate::memory::maxmemory();
        let used = crate::memory::counted_for_evict(crate::memory::used_memory());
        let policy = policy();
        if limit == 0 || used <= limit {
            return Outcome::Fits;
        }
        if policy == Policy::NoEviction {
            return Outcome::OutOfMemory;
        }
        let need = (used - limit) as usize;
        let mut reader = Reader::new(&shared.db, shared.raft.memtable());
        let victims = match pick(&mut reader, policy, SAMPLES.load(Relaxed), need) {
            Ok(v) => v,
            Err(e) => {
                debug!(shared.logger, "eviction cannot read"; "error" => %e);
                Vec::new()
            }
        };
        if victims.is_empty() {
            break;
        }
        let argv = crate::cmd::maxmemory::evict_argv(&victims);
        match shared
            .raft
            .propose(0, argv, shared.config.write_timeout)
            .await
        {
            Ok(Reply::Integer(n)) => {
                let n = u64::try_from(n).unwrap_or(0);
                EVICTED.fetch_add(n, Relaxed);
                removed_any |= n > 0;
            }
            outcome => {
                debug!(shared.logger, "evict entry not applied"; "outcome" => ?outcome);
                break;
            }
        }
    }
    if !crate::memory::over_maxmemory() {
        Outcome::Fits
    } else if removed_any {
        Outcome::Running
    } else {
        Outcome::OutOfMemory
    }
}

/// A key chosen to go: its physical database, the `modified` index it was seen with (apply
/// removes it only if unchanged since), and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Victim {
    pub db: u8,
    pub modified: u64,
    pub key: Bytes,
}

/// A sampled key and what ranks it (lower goes first).
struct Candidate {
    rank: (i64, u64),
    size: usize,
    victim: Victim,
}

/// Victims for one entry: the best-ranked of this round's samples over every database, as
/// many as it takes (by an estimate of their size) to free `need` bytes, at least one, at most
/// `KEYS_PER_ENTRY`. Empty if nothing is evictable.
pub fn pick(
    reader: &mut Reader,
    policy: Policy,
    samples: usize,
    need: usize,
) -> Result<Vec<Victim>, crate::store::StoreError> {
    let mut pool: Vec<Candidate> = Vec::new();
    for db in 0..DATABASES {
        reader.run(db, |view| {
            sample_db(view, policy, samples.max(1), &mut pool)
        })?;
    }
    pool.sort_by_key(|c| c.rank);
    let mut freed = 0;
    let mut out = Vec::new();
    for c in pool {
        if out.len() >= KEYS_PER_ENTRY || (freed >= need && !out.is_empty()) {
            break;
        }
        if out.contains(&c.victim) {
            continue;
        }
        freed += c.size;
        out.push(c.victim);
    }
    Ok(out)
}

/// Adds up to `samples` candidates of the view's database to `pool`.
fn sample_db(
    view: &dyn KeyRead,
    policy: Policy,
    samples: usize,
    pool: &mut Vec<Candidate>,
) -> Result<(), crate::store::StoreError> {
    let db = view.db();
    if view.key_count(db)? == 0 || (policy.volatile() && view.expires_count(db)? == 0) {
        return Ok(());
    }
    let mut found: Vec<(Bytes, Meta)> = Vec::new();
    if policy != Policy::VolatileTtl {
        // A random position in SCAN order (this node's randomness: outside apply), from the
        // start when it is past the last key. Volatile policies look at more positions, as only
        // keys with a TTL count.
        let count = if policy.volatile() {
            samples * 4
        } else {
            samples
        };
        let from = crate::raft::identity::random_u64();
        // Past the last key the look wraps around to the start, so that a database with fewer
        // keys than samples has all of them sampled (as Redis's dictGetSomeKeys).
        for cursor in [from, 0] {
            let (_, keys) = view.scan_step(cursor, count)?;
            for (key, meta) in keys {
                if (!policy.volatile() || meta.expire_at.is_some())
                    && !found.iter().any(|(k, _)| *k == key)
                {
                    found.push((key, meta));
                }
            }
            if found.len() >= samples {
                break;
            }
        }
        found.truncate(samples);
    }
    if found.is_empty() && policy.volatile() {
        found = soonest_expiring(view, samples)?;
    }
    for (key, meta) in found {
        let rank = match policy {
            Policy::VolatileTtl => (meta.expire_at.unwrap_or(i64::MAX), 0),
            Policy::AllkeysRandom | Policy::VolatileRandom => (0, 0),
            p if p.lfu() => (crate::access::frequency(db, &key).into(), meta.modified),
            _ => (-(crate::access::idle_secs(db, &key) as i64), meta.modified),
        };
        pool.push(Candidate {
            rank,
            size: key.len() + meta.body.len() + KEY_OVERHEAD,
            victim: Victim {
                db,
                modified: meta.modified,
                key,
            },
        });
    }
    Ok(())
}

/// The live keys of the view's database that expire first (the expiry index is in time order),
/// at most `n`, reading at most `INDEX_BUDGET` index rows (expired keys not yet reaped are
/// skipped: active expiry takes them).
fn soonest_expiring(
    view: &dyn KeyRead,
    n: usize,
) -> Result<Vec<(Bytes, Meta)>, crate::store::StoreError> {
    let db = view.db();
    let (lo, hi) = encoding::expiry_range(db, i64::MAX);
    let mut rows: Vec<Bytes> = Vec::new();
    let mut read = 0;
    view.scan_raw(&lo, &hi, &mut |k, _| {
        read += 1;
        if let Some((_, _, key)) = encoding::parse_expiry_key(k) {
            rows.push(Bytes::copy_from_slice(key));
        }
        read < INDEX_BUDGET
    })?;
    let mut out = Vec::new();
    for key in rows {
        if out.len() >= n {
            break;
        }
        if let Some(meta) = view.meta_in(db, &key)? {
            out.push((key, meta));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kv::{Memtable, WriteView, flush_into, wall_clock_ms};

    /// A keyspace in database 0 (applied as one entry, flushed to the table if asked): `plain`
    /// keys without TTL, and `(key, ms from now)` keys with one.
    fn keyspace(
        plain: &[&str],
        volatile: &[(&str, i64)],
        flush: bool,
    ) -> (tempfile::TempDir, Reader) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = crate::store::open(&dir.path().join("d"), 1 << 20).expect("open");
        let mem = Arc::new(Memtable::new());
        let now = wall_clock_ms();
        let txn = db.begin_write().expect("txn");
        {
            let mut state = mem.write();
            {
                let mut w = WriteView::open(&txn, &mut state).expect("view");
                w.begin_entry(0, now, 1);
                for k in plain {
                    w.set_string(k.as_bytes(), Bytes::from_static(b"v"), None)
                        .unwrap();
                }
                for (k, ttl) in volatile {
                    w.set_string(k.as_bytes(), Bytes::from_static(b"v"), Some(now + ttl))
                        .unwrap();
                }
            }
            if flush {
                flush_into(&txn, &state).expect("flush");
                state.flushed();
            }
        }
        txn.commit().expect("commit");
        (dir, Reader::new(&db, &mem))
    }

    fn names(victims: &[Victim]) -> Vec<String> {
        let mut v: Vec<String> = victims
            .iter()
            .map(|v| String::from_utf8_lossy(&v.key).into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn volatile_policies_pick_only_keys_with_a_ttl_and_ttl_the_soonest() {
        for flush in [false, true] {
            let plain: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
            let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
            let volatile = [("late", 900_000), ("soon", 100_000), ("mid", 500_000)];
            let (_dir, mut reader) = keyspace(&plain, &volatile, flush);
            for policy in [
                Policy::VolatileLru,
                Policy::VolatileLfu,
                Policy::VolatileRandom,
                Policy::VolatileTtl,
            ] {
                let all = pick(&mut reader, policy, 5, usize::MAX).unwrap();
                assert!(!all.is_empty(), "{policy:?}");
                assert!(
                    names(&all)
                        .iter()
                        .all(|k| ["late", "mid", "soon"].contains(&&k[..])),
                    "{policy:?} picked {:?}",
                    names(&all)
                );
            }
            // One key's worth to free: the one expiring first.
            let one = pick(&mut reader, Policy::VolatileTtl, 5, 1).unwrap();
            assert_eq!(names(&one), ["soon"]);
            let all = pick(&mut reader, Policy::VolatileTtl, 5, usize::MAX).unwrap();
            assert_eq!(names(&all), ["late", "mid", "soon"]);
        }
    }

    #[test]
    fn nothing_is_evictable_without_keys_or_without_ttls_for_volatile_policies() {
        let (_dir, mut reader) = keyspace(&["a", "b"], &[], true);
        for policy in [
            Policy::VolatileRandom,
            Policy::VolatileTtl,
            Policy::VolatileLru,
        ] {
            assert!(pick(&mut reader, policy, 5, usize::MAX).unwrap().is_empty());
        }
        let any = pick(&mut reader, Policy::AllkeysRandom, 5, usize::MAX).unwrap();
        assert_eq!(names(&any), ["a", "b"]);
        let (_dir, mut empty) = keyspace(&[], &[], false);
        assert!(
            pick(&mut empty, Policy::AllkeysLru, 5, usize::MAX)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn lru_and_lfu_take_the_least_used_then_the_least_recently_written_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = crate::store::open(&dir.path().join("d"), 1 << 20).expect("open");
        let mem = Arc::new(Memtable::new());
        let txn = db.begin_write().expect("txn");
        // Names no other test uses: the access table is the process's.
        let [new, old, mid] = ["evict-lru-new", "evict-lru-old", "evict-lru-mid"];
        {
            let mut state = mem.write();
            let mut w = WriteView::open(&txn, &mut state).expect("view");
            for (index, key) in [(7, new), (3, old), (5, mid)] {
                w.begin_entry(0, wall_clock_ms(), index);
                w.set_string(key.as_bytes(), Bytes::from_static(b"v"), Some(i64::MAX))
                    .unwrap();
            }
        }
        txn.commit().expect("commit");
        let mut reader = Reader::new(&db, &mem);
        let policies = [
            Policy::AllkeysLru,
            Policy::AllkeysLfu,
            Policy::VolatileLru,
            Policy::VolatileLfu,
        ];
        // Never accessed: equally idle and counted, so the least recently written goes.
        for policy in policies {
            let one = pick(&mut reader, policy, 5, 1).unwrap();
            assert_eq!(names(&one), [old], "{policy:?}");
            assert_eq!(one[0].modified, 3);
        }
        // Once it was used, it is neither the longest idle nor the least counted. (A slot's
        // first touch counts as the key's creation, at the counter's initial value, as a write
        // applied here would; the second is a use.)
        crate::access::touch(0, old.as_bytes());
        crate::access::touch(0, old.as_bytes());
        for policy in policies {
            let one = pick(&mut reader, policy, 5, 1).unwrap();
            assert_eq!(names(&one), [mid], "{policy:?}");
        }
    }

    #[test]
    fn a_round_is_bounded_by_its_samples_and_the_bytes_to_free() {
        let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (_dir, mut reader) = keyspace(&keys, &[], true);
        let many = pick(&mut reader, Policy::AllkeysRandom, 5, usize::MAX).unwrap();
        assert_eq!(many.len(), 5);
        let one = pick(&mut reader, Policy::AllkeysLru, 5, 10).unwrap();
        assert_eq!(one.len(), 1);
        let wide = pick(&mut reader, Policy::AllkeysLfu, 100, usize::MAX).unwrap();
        assert_eq!(wide.len(), KEYS_PER_ENTRY);
    }

    #[test]
    fn policies_read_and_print_as_config_names_them() {
        for (p, name) in POLICIES {
            assert_eq!(Policy::parse(name), Some(p));
            assert_eq!(p.name(), name);
        }
        assert_eq!(Policy::parse("ALLKEYS-LRU"), Some(Policy::AllkeysLru));
        assert_eq!(Policy::parse("lru"), None);
        assert!(Policy::VolatileTtl.volatile());
        assert!(!Policy::AllkeysRandom.volatile());
    }
}
