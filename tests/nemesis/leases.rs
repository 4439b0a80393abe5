//! Expiry under faults: lock clients take a `SET lock token NX PX` lease and never release it,
//! TTL clients write short-lived values and read them back from random nodes. Times are wall
//! clock ms, the clock kvd's entries carry (all nodes share this machine's clock).
//!
//! What must hold (each check sound: it can only fail if kvd is wrong):
//! - **No two holders**: an acknowledged acquisition invoked at `i` and acknowledged at `a`
//!   surely holds the lock during `[a, i + PX)` (its expiry was set at or after `i`, and every
//!   later applier's clock is at most the real time of its own proposal). Two such intervals
//!   must never overlap.
//! - **No read after expiry**: a value whose `SET ... PX ttl` was acknowledged at `a` expired by
//!   `a + ttl` at the latest; a GET invoked later than that on any node must not return it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::nemesis::client::{Client, Reply};
use crate::nemesis::rng::Rng;
use crate::nemesis::workload::{CLIENT_TIMEOUT, Shared};

/// The lock's lease.
pub const LOCK_PX: i64 = 300;
/// The TTL clients' values' life.
pub const TTL_PX: i64 = 150;
/// Rounding of ms clocks.
const SLACK: i64 = 2;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What lock and TTL clients saw.
#[derive(Default, Debug)]
pub struct LeaseLog {
    /// Acknowledged acquisitions: (client, token, invoked, acknowledged).
    pub acquired: Vec<(usize, String, i64, i64)>,
    /// Acquisitions refused because the lock was held (nil).
    pub refused: usize,
    /// Acknowledged TTL writes: (value, acknowledged).
    pub ttl_sets: Vec<(String, i64)>,
    /// Reads that returned a TTL value: (value, invoked, node).
    pub ttl_reads: Vec<(String, i64, String)>,
    /// Ops without a definite outcome (errors, timeouts).
    pub indefinite: usize,
}

impl LeaseLog {
    fn add(&mut self, o: LeaseLog) {
        self.acquired.extend(o.acquired);
        self.refused += o.refused;
        self.ttl_sets.extend(o.ttl_sets);
        self.ttl_reads.extend(o.ttl_reads);
        self.indefinite += o.indefinite;
    }

    /// Every violation of the two properties in the module docs.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut held: Vec<_> = self
            .acquired
            .iter()
            .map(|(c, t, i, a)| (*a, *i + LOCK_PX - SLACK, *c, t))
            .filter(|(start, end, _, _)| start < end)
            .collect();
        held.sort();
        for w in held.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            if b.0 < a.1 {
                out.push(format!(
                    "lock held twice: client {} token {} surely held it in [{}, {}), client {} \
                     token {} in [{}, {})",
                    a.2, a.3, a.0, a.1, b.2, b.3, b.0, b.1
                ));
            }
        }
        let acked: std::collections::HashMap<&str, i64> = self
            .ttl_sets
            .iter()
            .map(|(v, a)| (v.as_str(), *a))
            .collect();
        for (value, invoked, node) in &self.ttl_reads {
            if let Some(&ack) = acked.get(value.as_str())
                && *invoked > ack + TTL_PX + SLACK
            {
                out.push(format!(
                    "read after expiry: {value} (acknowledged at {ack}, {TTL_PX} ms TTL) returned \
                     by {node} to a GET invoked at {invoked}"
                ));
            }
        }
        out
    }
}

/// Shared between lease clients.
#[derive(Clone, Default)]
pub struct Leases(Arc<Mutex<LeaseLog>>);

impl Leases {
    pub fn take(&self) -> LeaseLog {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn add(&self, log: LeaseLog) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(log);
    }
}

fn connect(rng: &mut Rng, sh: &Shared) -> Option<Client> {
    let addr = {
        let addrs = sh.addrs.lock().unwrap_or_else(PoisonError::into_inner);
        (!addrs.is_empty()).then(|| rng.pick(&addrs).clone())?
    };
    let c = Client::connect(&addr, Duration::from_secs(1), CLIENT_TIMEOUT).ok();
    if c.is_none() {
        std::thread::sleep(rng.millis(20, 100));
    }
    c
}

/// Starts lock client `id`.
pub fn spawn_lock(id: usize, mut rng: Rng, sh: Shared, leases: Leases) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut log = LeaseLog::default();
        let mut con: Option<Client> = None;
        let mut seq = 0;
        while !sh.stop.load(Ordering::Relaxed) {
            let Some(c) = con.as_mut() else {
                con = connect(&mut rng, &sh);
                continue;
            };
            seq += 1;
            let token = format!("l{id}-{seq}");
            let px = LOCK_PX.to_string();
            let invoked = now_ms();
            match c.call(&["SET", "lock", &token, "NX", "PX", &px]) {
                Ok(Reply::Status(s)) if s == "OK" => {
                    log.acquired.push((id, token, invoked, now_ms()));
                }
                Ok(Reply::Bulk(None)) => log.refused += 1,
                _ => {
                    log.indefinite += 1;
                    con = None;
                }
            }
            std::thread::sleep(rng.millis(5, 40));
        }
        leases.add(log);
    })
}

/// Starts TTL client `id`: writes a value with a short TTL through one node, then reads it
/// back from random nodes for a while past its expiry.
pub fn spawn_ttl(id: usize, mut rng: Rng, sh: Shared, leases: Leases) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut log = LeaseLog::default();
        let key = format!("ttl{id}");
        let mut seq = 0;
        while !sh.stop.load(Ordering::Relaxed) {
            let Some(mut c) = connect(&mut rng, &sh) else {
                continue;
            };
            seq += 1;
            let value = format!("t{id}-{seq}");
            let px = TTL_PX.to_string();
            match c.call(&["SET", &key, &value, "PX", &px]) {
                Ok(Reply::Status(s)) if s == "OK" => log.ttl_sets.push((value, now_ms())),
                _ => {
                    log.indefinite += 1;
                    continue;
                }
            }
            let until = now_ms() + 2 * TTL_PX;
            while now_ms() < until && !sh.stop.load(Ordering::Relaxed) {
                let Some(mut r) = connect(&mut rng, &sh) else {
                    continue;
                };
                let invoked = now_ms();
                match r.call(&["GET", &key]) {
                    Ok(Reply::Bulk(Some(v))) => log.ttl_reads.push((
                        String::from_utf8_lossy(&v).into_owned(),
                        invoked,
                        r.addr.clone(),
                    )),
                    Ok(_) => {}
                    Err(_) => log.indefinite += 1,
                }
                std::thread::sleep(rng.millis(10, 40));
            }
        }
        leases.add(log);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_leases_and_late_reads_are_found() {
        let mut log = LeaseLog::default();
        log.acquired.push((1, "a".into(), 1000, 1010));
        log.acquired.push((2, "b".into(), 1400, 1420)); // after a's lease: fine
        assert!(log.violations().is_empty());
        log.acquired.push((3, "c".into(), 1500, 1600)); // inside b's [1420, 1698)
        assert_eq!(log.violations().len(), 1);
        let mut log = LeaseLog::default();
        log.ttl_sets.push(("v".into(), 1000));
        log.ttl_reads.push(("v".into(), 1100, "n".into()));
        assert!(log.violations().is_empty());
        log.ttl_reads
            .push(("v".into(), 1000 + TTL_PX + 50, "n".into()));
        assert_eq!(log.violations().len(), 1);
    }
}
