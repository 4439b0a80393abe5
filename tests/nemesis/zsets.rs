//! Sorted-set writes under faults: one client sends a random mix of ZADD (with NX/XX/GT/CH),
//! ZINCRBY, ZREM, ZPOPMIN/ZPOPMAX, ZREMRANGEBYSCORE/RANK, ZUNIONSTORE and DEL on a few keys to
//! random members. Outcomes are not checked op by op (they are not linearizable registers);
//! what must hold is that no reply is an error kvd does not document for them, and (by the
//! run's converged-DIGEST check, which covers score rows) that every replica ends with the same
//! sorted sets, their rows in both orders included; `same_on_every_member` then compares what
//! each member answers to ZRANGE ... WITHSCORES.

use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use crate::nemesis::client::{Fate, Reply, call_once};
use crate::nemesis::rng::Rng;
use crate::nemesis::workload::{CLIENT_TIMEOUT, Shared, Tally, connect};

/// The sorted-set keys the client writes.
pub const KEYS: [&str; 3] = ["zs0", "zs1", "zs2"];

/// Starts the sorted-set client `id`; it runs until `shared.stop`.
pub fn spawn(id: usize, mut rng: Rng, shared: Shared) -> JoinHandle<Tally> {
    std::thread::Builder::new()
        .name(format!("zset-client-{id}"))
        .spawn(move || run(&mut rng, &shared))
        .expect("spawn zset client")
}

fn command(rng: &mut Rng) -> Vec<String> {
    let key = rng.pick(&KEYS).to_string();
    let other = rng.pick(&KEYS).to_string();
    let member = format!("m{}", rng.below(40));
    let score = format!("{}", rng.below(200) as f64 / 8.0 - 10.0);
    match rng.below(12) {
        0..=2 => vec!["ZADD".into(), key, score, member],
        3 => vec!["ZADD".into(), key, "GT".into(), "CH".into(), score, member],
        4 => vec!["ZADD".into(), key, "NX".into(), score, member],
        5 => vec!["ZINCRBY".into(), key, score, member],
        6 => vec!["ZREM".into(), key, member],
        7 => vec!["ZPOPMIN".into(), key, rng.range(1, 3).to_string()],
        8 => vec!["ZPOPMAX".into(), key],
        9 => vec!["ZREMRANGEBYSCORE".into(), key, "-3".into(), "(0".into()],
        10 => vec!["ZUNIONSTORE".into(), key.clone(), "2".into(), key, other],
        _ => vec!["ZREMRANGEBYRANK".into(), key, "0".into(), "0".into()],
    }
}

fn run(rng: &mut Rng, sh: &Shared) -> Tally {
    let mut tally = Tally::default();
    let mut con = None;
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            con = connect(rng, &sh.addrs, &mut tally);
            continue;
        };
        let argv = command(rng);
        match Fate::of(c.call(&argv)) {
            Fate::Done(Reply::Error(e)) => {
                tally.unexpected.push(format!("{argv:?} -> {e}"));
                con = None;
            }
            Fate::Done(_) => tally.ok += 1,
            Fate::Failed(_) => {
                tally.failed += 1;
                con = None;
            }
            Fate::Unknown { why, unexpected } => {
                tally.unknown += 1;
                if unexpected {
                    tally.unexpected.push(format!("{argv:?} -> {why}"));
                }
                con = None;
            }
        }
    }
    tally
}

/// What each of `addrs` answers to ZRANGE key 0 -1 WITHSCORES for every key; a problem for
/// each member whose answers differ from the first's.
pub fn same_on_every_member(addrs: &[String]) -> Vec<String> {
    let views: Vec<(String, Vec<Option<Reply>>)> = addrs
        .iter()
        .map(|a| {
            let replies = KEYS
                .iter()
                .map(|k| call_once(a, &["ZRANGE", k, "0", "-1", "WITHSCORES"], CLIENT_TIMEOUT).ok())
                .collect();
            (a.clone(), replies)
        })
        .collect();
    let mut problems = Vec::new();
    if let Some((first, want)) = views.first() {
        for (addr, got) in &views[1..] {
            if got != want {
                problems.push(format!(
                    "sorted sets differ between {first} and {addr}: {want:?} vs {got:?}"
                ));
            }
        }
    }
    problems
}
