//! The process's allocator and what INFO memory (and the maxmemory check) read from it.
//!
//! The `kvd` binary allocates through jemalloc (`main.rs`), as redis-server does: a long-running
//! server holding many small, differently sized values fragments less, and jemalloc counts what
//! it has handed out, so `used_memory` is the bytes allocated (not the RSS, which also holds
//! freed pages the allocator keeps). Builds that do not use it (the library's unit tests) read
//! zeros from its counters.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// The allocator as INFO's `mem_allocator` names it: `jemalloc-MAJOR.MINOR.BUGFIX`, as
/// redis-server prints its own (jemalloc's version string carries a git suffix after a '-').
pub fn allocator_name() -> String {
    let version = tikv_jemalloc_ctl::version::read().unwrap_or("unknown");
    let version = version.split('-').next().unwrap_or(version);
    format!("jemalloc-{version}")
}

/// Bytes jemalloc reports for this process: allocated to the program (less what thread caches
/// hold), in active pages, and resident in its mapped pages.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub allocated: u64,
    pub active: u64,
    pub resident: u64,
}

/// The bytes held in thread caches, over all arenas (4096 is jemalloc's `MALLCTL_ARENAS_ALL`).
const TCACHE_BYTES: &[u8] = b"stats.arenas.4096.tcache_bytes\0";

/// Highest `allocated` seen by `usage` (INFO's `used_memory_peak`).
static PEAK: AtomicU64 = AtomicU64::new(0);

/// The allocator's counters as of now: jemalloc refreshes them only when its epoch advances.
pub fn usage() -> Usage {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    let read = |r: tikv_jemalloc_ctl::Result<usize>| r.unwrap_or(0) as u64;
    // Freed objects a thread's cache keeps for reuse count as allocated until the cache hands
    // them back, which happens when that thread next allocates: a burst of frees on one thread
    // (a flushed memtable, a compacted log tail) would show up as a drop of hundreds of kB at
    // some later write. The bytes in thread caches (summed over all arenas) are not the
    // program's, so they are left out.
    // SAFETY: `stats.arenas.<MALLCTL_ARENAS_ALL>.tcache_bytes` is a `size_t` statistic of
    // jemalloc 5.3, read with the type it has; the name is NUL-terminated.
    let cached = read(unsafe { tikv_jemalloc_ctl::raw::read::<usize>(TCACHE_BYTES) });
    let u = Usage {
        allocated: read(tikv_jemalloc_ctl::stats::allocated::read()).saturating_sub(cached),
        active: read(tikv_jemalloc_ctl::stats::active::read()),
        resident: read(tikv_jemalloc_ctl::stats::resident::read()),
    };
    PEAK.fetch_max(u.allocated, Relaxed);
    u
}

/// Redis's `used_memory`: the bytes allocated now.
pub fn used_memory() -> u64 {
    usage().allocated
}

/// Bytes held by the raft log's in-memory tail (`RaftStorage`): Redis's AOF and replication
/// buffers, which it leaves out of the memory it compares with `maxmemory`
/// (`mem_not_counted_for_evict`). They come and go with the log, not with the data (a
/// compaction after a burst of writes frees hundreds of kB at once), so counting them would
/// make eviction start and stop on the log's schedule.
static NOT_COUNTED: AtomicU64 = AtomicU64::new(0);

/// The raft log tail now holds `bytes` (called by the raft thread as the tail changes).
pub fn set_log_tail_bytes(bytes: u64) {
    NOT_COUNTED.store(bytes, Relaxed);
}

/// INFO's `mem_not_counted_for_evict`.
pub fn not_counted_for_evict() -> u64 {
    NOT_COUNTED.load(Relaxed)
}

/// The memory compared with `maxmemory`: `used` less what is not counted for eviction.
pub fn counted_for_evict(used: u64) -> u64 {
    used.saturating_sub(not_counted_for_evict())
}

/// `maxmemory` in bytes (0: no limit). Process-wide, as the allocator it is measured by.
static MAXMEMORY: AtomicU64 = AtomicU64::new(0);

/// CONFIG SET maxmemory.
pub fn set_maxmemory(bytes: u64) {
    MAXMEMORY.store(bytes, Relaxed);
}

pub fn maxmemory() -> u64 {
    MAXMEMORY.load(Relaxed)
}

/// True if a limit is set and the bytes allocated exceed it (reads the allocator's counters
/// only when a limit is set, and then at most as often as `used_memory_for_limit` says).
pub fn over_maxmemory() -> bool {
    let limit = maxmemory();
    limit != 0 && counted_for_evict(used_memory_for_limit()) > limit
}

/// Applied batches so far (`note_applied`): what makes most memory change, so a reading taken
/// since the last one is still good.
static APPLIED: AtomicU64 = AtomicU64::new(0);
/// The last reading for the limit: bytes, the `APPLIED` count it was taken at, and when (µs
/// since `EPOCH`).
static READ_BYTES: AtomicU64 = AtomicU64::new(0);
static READ_APPLIED: AtomicU64 = AtomicU64::new(u64::MAX);
static READ_AT_US: AtomicU64 = AtomicU64::new(0);
static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
/// A reading with no apply since is reused this long (memory that no apply allocates, as
/// connections' buffers, is seen this late at most).
const READING_MAX_AGE_US: u64 = 10_000;

/// The state machine applied a batch of entries (called before their replies go out, so the
/// command a client sends after a reply sees what that write allocated).
pub fn note_applied() {
    APPLIED.fetch_add(1, Release);
}

/// `used_memory` for the `maxmemory` check before each command. Reading jemalloc's counters
/// means advancing its epoch, which merges every arena's statistics under their locks: once
/// per command it cut a node's throughput twentyfold. So a reading is reused while no batch
/// has been applied since it was taken and it is younger than `READING_MAX_AGE_US`.
pub fn used_memory_for_limit() -> u64 {
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    let now = epoch.elapsed().as_micros() as u64;
    let applied = APPLIED.load(Acquire);
    if READ_APPLIED.load(Relaxed) == applied
        && now.saturating_sub(READ_AT_US.load(Relaxed)) < READING_MAX_AGE_US
    {
        return READ_BYTES.load(Relaxed);
    }
    let bytes = used_memory();
    READ_BYTES.store(bytes, Relaxed);
    READ_AT_US.store(now, Relaxed);
    READ_APPLIED.store(applied, Relaxed);
    bytes
}

/// The highest `used_memory` read so far.
pub fn peak() -> u64 {
    PEAK.load(Relaxed)
}

/// A byte count as Redis's INFO prints it next to the number (`bytesToHuman`): `512B`,
/// `893.04K`, `11.63M`, ... with two decimals from K on.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut scale = 1024u128;
    for unit in UNITS {
        if (n as u128) < scale * 1024 {
            return format!("{:.2}{unit}", n as f64 / scale as f64);
        }
        scale *= 1024;
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_read_as_redis_prints_them() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1024), "1.00K");
        assert_eq!(human(914472), "893.04K");
        assert_eq!(human(12193792), "11.63M");
        assert_eq!(human(25275973632), "23.54G");
        assert_eq!(human(u64::MAX), format!("{}B", u64::MAX));
    }

    #[test]
    fn the_allocator_is_named_as_redis_names_it() {
        let name = allocator_name();
        assert!(name.starts_with("jemalloc-5."), "{name}");
        assert!(!name["jemalloc-".len()..].contains('-'), "{name}");
    }
}
