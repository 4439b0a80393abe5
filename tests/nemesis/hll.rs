//! HyperLogLog under faults: clients PFADD unique elements to one HyperLogLog and now and then
//! PFCOUNT it, all through random nodes (PFCOUNT is a write in Redis and kvd: it caches the
//! count in the value, so it is ordered with the PFADDs).
//!
//! What must hold (each check sound: it can only fail if kvd is wrong):
//! - **The count never decreases**: a PFCOUNT that began after another one's reply came
//!   answers at least as much (elements are only added; the estimate is a function of the
//!   registers, which only grow).
//! - **All nodes equal at the end**: every member holds the same value (`GET`) and counts the
//!   same (the run's converged DIGEST covers it too).
//! - **Close to the truth**: the final count is within 10% (about 12 standard errors of
//!   Redis's 0.81%) of the distinct acknowledged elements below, and of those sent above, and at
//!   least every count seen during the run.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::nemesis::client::{Client, Reply, call_once};
use crate::nemesis::rng::Rng;
use crate::nemesis::workload::{CLIENT_TIMEOUT, Shared, Tally, connect};

pub const HLL_KEY: &str = "visitors";

/// What the clients saw.
#[derive(Default, Debug, Clone)]
pub struct HllLog {
    /// Elements sent, and those whose PFADD was answered.
    pub sent: usize,
    pub acked: usize,
    /// (sent, answered, count) of every answered PFCOUNT.
    pub counts: Vec<(Instant, Instant, i64)>,
}

#[derive(Clone, Default)]
pub struct Hlls(Arc<Mutex<HllLog>>);

impl Hlls {
    fn with<R>(&self, f: impl FnOnce(&mut HllLog) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn link(rng: &mut Rng, sh: &Shared) -> Option<Client> {
    connect(rng, &sh.addrs, &mut Tally::default())
}

/// Starts `n` clients.
pub fn spawn(n: usize, rng: &mut Rng, sh: &Shared, log: &Hlls) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|id| {
            let (mut r, sh2, l) = (rng.fork(1200 + id as u64), sh.clone(), log.clone());
            std::thread::spawn(move || run(id, &mut r, &sh2, &l))
        })
        .collect()
}

fn run(id: usize, rng: &mut Rng, sh: &Shared, log: &Hlls) {
    let mut con: Option<Client> = None;
    let mut seq = 0;
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            con = link(rng, sh);
            continue;
        };
        let ok = if rng.chance(25) {
            let sent = Instant::now();
            match c.call(&["PFCOUNT", HLL_KEY]) {
                Ok(Reply::Int(n)) => {
                    log.with(|l| l.counts.push((sent, Instant::now(), n)));
                    true
                }
                Ok(_) => true,
                Err(_) => false,
            }
        } else {
            let n = rng.range(1, 3) as usize;
            let mut argv = vec!["PFADD".to_string(), HLL_KEY.into()];
            for _ in 0..n {
                seq += 1;
                argv.push(format!("e{id}-{seq}"));
            }
            log.with(|l| l.sent += n);
            match c.call(&argv) {
                Ok(Reply::Int(_)) => {
                    log.with(|l| l.acked += n);
                    true
                }
                Ok(_) => true,
                Err(_) => false,
            }
        };
        if !ok {
            con = None;
        }
        std::thread::sleep(rng.millis(5, 30));
    }
}

/// After the heal (and convergence): what each member holds and counts, and every violation
/// of the module's properties.
pub fn verify(log: &Hlls, member_addrs: &[String]) -> Vec<String> {
    // Every value first: a PFCOUNT may rewrite the cached count in it.
    let values: Vec<(&String, Option<Reply>)> = member_addrs
        .iter()
        .map(|a| (a, call_once(a, &["GET", HLL_KEY], CLIENT_TIMEOUT).ok()))
        .collect();
    let mut problems = Vec::new();
    if let Some((first, value)) = values.first() {
        for (addr, v) in &values[1..] {
            if v != value {
                problems.push(format!(
                    "HyperLogLog differs between {first} and {addr}: {} vs {} bytes",
                    value.as_ref().and_then(Reply::text).map_or(0, |t| t.len()),
                    v.as_ref().and_then(Reply::text).map_or(0, |t| t.len())
                ));
            }
        }
    }
    let final_count = member_addrs.iter().find_map(|a| {
        match call_once(a, &["PFCOUNT", HLL_KEY], CLIENT_TIMEOUT) {
            Ok(Reply::Int(n)) => Some(n),
            _ => None,
        }
    });
    let log = log.with(|l| l.clone());
    eprintln!(
        "  hll: elements acked {} sent {}; counts seen {}, final {final_count:?}",
        log.acked,
        log.sent,
        log.counts.len()
    );
    match final_count {
        Some(n) => problems.extend(check(&log, n)),
        None => problems.push("no member answered PFCOUNT after the heal".to_string()),
    }
    problems
}

/// The module's properties over what the clients saw and the final count.
pub fn check(log: &HllLog, final_count: i64) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_end = log.counts.clone();
    by_end.sort_by_key(|c| c.1);
    let mut by_start = log.counts.clone();
    by_start.sort_by_key(|c| c.0);
    // The largest count answered before each PFCOUNT began.
    let (mut i, mut max_before) = (0, i64::MIN);
    for (start, _, n) in &by_start {
        while i < by_end.len() && by_end[i].1 < *start {
            max_before = max_before.max(by_end[i].2);
            i += 1;
        }
        if *n < max_before {
            problems.push(format!(
                "PFCOUNT answered {n} after an earlier PFCOUNT answered {max_before}"
            ));
        }
    }
    if let Some(max) = log.counts.iter().map(|c| c.2).max()
        && final_count < max
    {
        problems.push(format!(
            "final PFCOUNT {final_count} is below {max}, counted during the run"
        ));
    }
    let (lo, hi) = (log.acked as f64 * 0.9, log.sent as f64 * 1.1);
    if (final_count as f64) < lo || (final_count as f64) > hi {
        problems.push(format!(
            "final PFCOUNT {final_count} is far from the {} acknowledged / {} sent elements",
            log.acked, log.sent
        ));
    }
    problems
}

/// The checker rejects what it must (it can fail) and accepts a clean run.
#[test]
fn the_hll_checker_finds_each_violation() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let log = HllLog {
        sent: 120,
        acked: 100,
        // Overlapping counts may come in any order; later ones never below earlier ones.
        counts: vec![
            (at(0), at(10), 20),
            (at(5), at(8), 15),
            (at(20), at(30), 20),
        ],
    };
    assert_eq!(check(&log, 110), Vec::<String>::new());
    let mut dropped = log.clone();
    dropped.counts.push((at(40), at(50), 19));
    assert!(check(&dropped, 110)[0].contains("after an earlier PFCOUNT answered 20"));
    assert!(check(&log, 19).iter().any(|p| p.contains("below 20")));
    assert!(check(&log, 80).iter().any(|p| p.contains("far from")));
    assert!(check(&log, 140).iter().any(|p| p.contains("far from")));
}
