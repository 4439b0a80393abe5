//! A tiny seeded random number generator (SplitMix64), so a nemesis run is chosen by its seed
//! alone and can be replayed: the same seed picks the same faults, keys and values in the same
//! order (the timing of real processes still differs between runs).

use std::time::Duration;

/// SplitMix64 (Steele, Lea, Flood 2014): one u64 of state, good enough statistics for choosing
/// faults, and trivially reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for a sub-task (a client thread), independent of this one's later draws.
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng(self.next_u64() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// A duration uniform between `lo_ms` and `hi_ms` milliseconds.
    pub fn millis(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(self.range(lo_ms, hi_ms))
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The seeds to run: `KVD_NEMESIS_SEEDS=1,2,3` if set, else `default`.
pub fn seeds(default: &[u64]) -> Vec<u64> {
    match std::env::var("KVD_NEMESIS_SEEDS") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|p| {
                p.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("KVD_NEMESIS_SEEDS: bad seed {p:?}"))
            })
            .collect(),
        _ => default.to_vec(),
    }
}

/// How long each run injects faults: `KVD_NEMESIS_SECS` if set, else `default_secs`.
pub fn run_secs(default_secs: u64) -> Duration {
    let secs = std::env::var("KVD_NEMESIS_SECS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default_secs);
    Duration::from_secs(secs)
}
