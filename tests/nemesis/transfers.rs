//! Transactions and scripts under faults: clients move units between a few account keys
//! through random nodes, half with WATCH / GET / MULTI / SET / INCRBY / INCR / EXEC (a
//! read-modify-write that only WATCH keeps correct), half with one EVAL doing the same. Every
//! transfer also increments its client's own `done` counter in the same transaction or script,
//! and the INCR's result comes back in the acknowledgement. After the heal one transaction
//! (made a write so it is linearizable and atomic) reads every balance and counter.
//!
//! What must hold (each check sound: it can only fail if kvd is wrong):
//! - **Atomic, conserved**: balances start absent (0) and every transfer takes from one and
//!   gives the same to another, so they sum to 0, unless a transaction or script was applied in
//!   part, or a WATCH let a stale read commit (a lost update changes the sum).
//! - **Exactly once**: a client's counter is at least its acknowledged transfers (none lost),
//!   at most those plus the ones whose outcome it never learnt (none applied twice, none
//!   applied after an abort), and no two acknowledgements carry the same counter value.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::nemesis::client::{Client, Reply};
use crate::nemesis::rng::Rng;
use crate::nemesis::workload::{CLIENT_TIMEOUT, Shared};

/// Accounts the clients move units between.
pub const ACCOUNTS: usize = 4;

const TRANSFER: &str = "local v = tonumber(redis.call('GET', KEYS[1]) or '0') \
    redis.call('SET', KEYS[1], v - tonumber(ARGV[1])) \
    redis.call('INCRBY', KEYS[2], ARGV[1]) \
    return redis.call('INCR', KEYS[3])";

fn account(i: usize) -> String {
    format!("acct:{i}")
}

/// What one client saw.
#[derive(Default, Debug)]
pub struct ClientLog {
    /// The counter values its acknowledged transfers returned.
    pub acked: Vec<i64>,
    /// Transfers with no reply, or an error that does not say they were not applied.
    pub unknown: usize,
    /// EXECs that WATCH aborted (a nil reply).
    pub aborted: usize,
}

/// Shared between the transfer clients: counter key -> what its client saw.
#[derive(Clone, Default)]
pub struct Transfers(Arc<Mutex<BTreeMap<String, ClientLog>>>);

impl Transfers {
    fn with<R>(&self, key: &str, f: impl FnOnce(&mut ClientLog) -> R) -> R {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(m.entry(key.to_string()).or_default())
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

/// Starts `n` WATCH/MULTI clients and `n` EVAL clients.
pub fn spawn(n: usize, rng: &mut Rng, sh: &Shared, t: &Transfers) -> Vec<JoinHandle<()>> {
    let mut out = Vec::new();
    for id in 0..n {
        let (mut r, sh2, t2) = (rng.fork(900 + id as u64), sh.clone(), t.clone());
        out.push(std::thread::spawn(move || {
            watch_loop(id, &mut r, &sh2, &t2)
        }));
        let (mut r, sh2, t2) = (rng.fork(950 + id as u64), sh.clone(), t.clone());
        out.push(std::thread::spawn(move || eval_loop(id, &mut r, &sh2, &t2)));
    }
    out
}

fn two_accounts(rng: &mut Rng) -> (String, String, String) {
    let from = rng.below(ACCOUNTS);
    let to = (from + 1 + rng.below(ACCOUNTS - 1)) % ACCOUNTS;
    (account(from), account(to), rng.range(1, 10).to_string())
}

/// Records an EXEC's or EVAL's outcome; false if the connection must be dropped.
fn record(t: &Transfers, done: &str, reply: std::io::Result<Reply>) -> bool {
    match reply {
        Ok(Reply::Array(items)) if items.is_empty() => t.with(done, |l| l.aborted += 1),
        Ok(Reply::Array(items)) => match items.last() {
            Some(Reply::Int(k)) => t.with(done, |l| l.acked.push(*k)),
            _ => t.with(done, |l| l.unknown += 1),
        },
        Ok(Reply::Int(k)) => t.with(done, |l| l.acked.push(k)),
        // Refused while queueing: EXEC applied nothing.
        Ok(Reply::Error(e)) if e.starts_with("EXECABORT") => {}
        Ok(_) => t.with(done, |l| l.unknown += 1),
        Err(_) => {
            t.with(done, |l| l.unknown += 1);
            return false;
        }
    }
    true
}

fn watch_loop(id: usize, rng: &mut Rng, sh: &Shared, t: &Transfers) {
    let done = format!("done:w{id}");
    let mut con: Option<Client> = None;
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            con = connect(rng, sh);
            continue;
        };
        let (from, to, n) = two_accounts(rng);
        let balance = match (c.call(&["WATCH", &from]), c.call(&["GET", &from])) {
            (Ok(Reply::Status(_)), Ok(Reply::Bulk(v))) => v
                .map(|v| String::from_utf8_lossy(&v).parse::<i64>().unwrap_or(0))
                .unwrap_or(0),
            (Err(_), _) | (_, Err(_)) => {
                con = None;
                continue;
            }
            _ => {
                let _ = c.call(&["UNWATCH"]);
                continue;
            }
        };
        let after = (balance - n.parse::<i64>().unwrap_or(0)).to_string();
        let queued = [
            vec!["MULTI"],
            vec!["SET", &from, &after],
            vec!["INCRBY", &to, &n],
            vec!["INCR", &done],
        ]
        .iter()
        .map(|argv| c.call(argv))
        .collect::<Vec<_>>();
        if queued.iter().any(|r| r.is_err()) {
            con = None;
            continue;
        }
        if !queued.iter().all(|r| matches!(r, Ok(Reply::Status(_)))) {
            let _ = c.call(&["DISCARD"]);
            continue;
        }
        if !record(t, &done, c.call(&["EXEC"])) {
            con = None;
        }
        std::thread::sleep(rng.millis(5, 30));
    }
}

fn eval_loop(id: usize, rng: &mut Rng, sh: &Shared, t: &Transfers) {
    let done = format!("done:e{id}");
    let mut con: Option<Client> = None;
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            con = connect(rng, sh);
            continue;
        };
        let (from, to, n) = two_accounts(rng);
        let reply = c.call(&["EVAL", TRANSFER, "3", &from, &to, &done, &n]);
        if !record(t, &done, reply) {
            con = None;
        }
        std::thread::sleep(rng.millis(5, 30));
    }
}

fn number(r: &Reply) -> Option<i64> {
    match r {
        Reply::Bulk(None) => Some(0),
        Reply::Bulk(Some(v)) => String::from_utf8_lossy(v).parse().ok(),
        _ => None,
    }
}

/// After the heal: reads every balance and counter in one transaction (retrying through any
/// node until it succeeds or `within` passes) and returns every violation of the module's
/// properties.
pub fn verify(t: &Transfers, sh: &Shared, rng: &mut Rng, within: Duration) -> Vec<String> {
    let counters: Vec<String> =
        t.0.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
    let keys: Vec<String> = (0..ACCOUNTS).map(account).chain(counters.clone()).collect();
    let deadline = Instant::now() + within;
    let values = loop {
        if Instant::now() > deadline {
            return vec!["transfers: the final read never succeeded".to_string()];
        }
        let Some(mut c) = connect(rng, sh) else {
            continue;
        };
        let mut ok = matches!(c.call(&["MULTI"]), Ok(Reply::Status(_)));
        for k in &keys {
            ok = ok && matches!(c.call(&["GET", k]), Ok(Reply::Status(_)));
        }
        ok = ok
            && matches!(
                c.call(&["INCR", "transfers:final-read"]),
                Ok(Reply::Status(_))
            );
        if !ok {
            continue;
        }
        match c.call(&["EXEC"]) {
            Ok(Reply::Array(items)) if items.len() == keys.len() + 1 => {
                match items[..keys.len()]
                    .iter()
                    .map(number)
                    .collect::<Option<Vec<i64>>>()
                {
                    Some(v) => break v,
                    None => {
                        return vec![format!(
                            "transfers: a final value is not a number: {items:?}"
                        )];
                    }
                }
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let mut problems = Vec::new();
    let sum: i64 = values[..ACCOUNTS].iter().sum();
    if sum != 0 {
        problems.push(format!(
            "transfers: balances {:?} sum to {sum}, not 0 (applied in part, or a stale WATCH committed)",
            &values[..ACCOUNTS]
        ));
    }
    let logs = t.0.lock().unwrap_or_else(PoisonError::into_inner);
    let (mut acked, mut unknown, mut aborted) = (0, 0, 0);
    for (key, final_count) in counters.iter().zip(&values[ACCOUNTS..]) {
        let Some(log) = logs.get(key) else { continue };
        acked += log.acked.len();
        unknown += log.unknown;
        aborted += log.aborted;
        let distinct: BTreeSet<i64> = log.acked.iter().copied().collect();
        if distinct.len() != log.acked.len() {
            problems.push(format!(
                "transfers: {key}: two acknowledgements carry the same count"
            ));
        }
        if distinct.last().is_some_and(|&max| max > *final_count) {
            problems.push(format!(
                "transfers: {key}: an acknowledgement counted past the final {final_count}"
            ));
        }
        let (lo, hi) = (
            log.acked.len() as i64,
            (log.acked.len() + log.unknown) as i64,
        );
        if *final_count < lo || *final_count > hi {
            problems.push(format!(
                "transfers: {key} ended at {final_count}, outside [{lo}, {hi}] \
                 (acknowledged, plus outcome unknown)"
            ));
        }
    }
    eprintln!(
        "  transfers: acked {acked}, unknown {unknown}, watch-aborted {aborted}; balances {:?}",
        &values[..ACCOUNTS]
    );
    problems
}
