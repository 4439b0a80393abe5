//! Lists under faults: pusher clients RPUSH unique items onto one list through random nodes,
//! popper clients take them off with BLPOP (blocked on whichever node they are connected to,
//! followers included) and LPOP. After the heal the list is drained.
//!
//! What must hold (each check sound: it can only fail if kvd is wrong):
//! - **Exactly once**: no item is popped twice, or both popped and left in the list.
//! - **Only pushed items**: every item popped or left was pushed (acknowledged or unknown).
//! - **No acknowledged push lost**: an acknowledged item that was neither popped nor left can
//!   only be one taken by a pop whose reply never came (an I/O error or a TIMEOUT: applied or
//!   not, as a Redis client whose connection closes mid-pop); there are at most that many.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::nemesis::client::{Client, Reply};
use crate::nemesis::rng::Rng;
use crate::nemesis::workload::{CLIENT_TIMEOUT, Shared};

/// The list every client works on.
pub const LIST_KEY: &str = "queue";

/// What the list clients saw.
#[derive(Default, Debug)]
pub struct ListLog {
    pub acked: Vec<String>,
    pub attempted: Vec<String>,
    pub popped: Vec<String>,
    /// Pops without a reply (or with an outcome-unknown error).
    pub pops_unknown: usize,
    pub left: Vec<String>,
}

/// Shared between list clients.
#[derive(Clone, Default)]
pub struct Lists(Arc<Mutex<ListLog>>);

impl Lists {
    fn with<R>(&self, f: impl FnOnce(&mut ListLog) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
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

/// Starts `n` pushers and `n` poppers.
pub fn spawn(n: usize, rng: &mut Rng, sh: &Shared, lists: &Lists) -> Vec<JoinHandle<()>> {
    let mut out = Vec::new();
    for id in 0..n {
        let (mut r, sh2, l) = (rng.fork(700 + id as u64), sh.clone(), lists.clone());
        out.push(std::thread::spawn(move || push_loop(id, &mut r, &sh2, &l)));
        let (mut r, sh2, l) = (rng.fork(800 + id as u64), sh.clone(), lists.clone());
        out.push(std::thread::spawn(move || pop_loop(&mut r, &sh2, &l)));
    }
    out
}

fn push_loop(id: usize, rng: &mut Rng, sh: &Shared, lists: &Lists) {
    let mut con: Option<Client> = None;
    let mut seq = 0;
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            con = connect(rng, sh);
            continue;
        };
        seq += 1;
        let item = format!("i{id}-{seq}");
        lists.with(|l| l.attempted.push(item.clone()));
        match c.call(&["RPUSH", LIST_KEY, &item]) {
            Ok(Reply::Int(_)) => lists.with(|l| l.acked.push(item)),
            Ok(_) => {}
            Err(_) => con = None,
        }
        std::thread::sleep(rng.millis(5, 30));
    }
}

fn pop_loop(rng: &mut Rng, sh: &Shared, lists: &Lists) {
    let mut con: Option<Client> = None;
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            con = connect(rng, sh);
            continue;
        };
        let blocking = rng.below(3) != 0;
        let reply = if blocking {
            c.call(&["BLPOP", LIST_KEY, "0.5"])
        } else {
            c.call(&["LPOP", LIST_KEY])
        };
        match reply {
            Ok(Reply::Array(items)) if items.len() == 2 => {
                if let Reply::Bulk(Some(v)) = &items[1] {
                    let v = String::from_utf8_lossy(v).into_owned();
                    lists.with(|l| l.popped.push(v));
                }
            }
            Ok(Reply::Bulk(Some(v))) => {
                let v = String::from_utf8_lossy(&v).into_owned();
                lists.with(|l| l.popped.push(v));
            }
            Ok(Reply::Error(e)) if e.starts_with("TIMEOUT") => lists.with(|l| l.pops_unknown += 1),
            Ok(_) => {}
            Err(_) => {
                lists.with(|l| l.pops_unknown += 1);
                con = None;
            }
        }
        if !blocking {
            std::thread::sleep(rng.millis(5, 30));
        }
    }
}

/// After the heal: takes what is left off the list (through any node, retrying until it
/// succeeds or `within` passes) and returns every violation of the module's properties.
pub fn verify(lists: &Lists, sh: &Shared, rng: &mut Rng, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut problems = Vec::new();
    loop {
        if Instant::now() > deadline {
            problems.push("the list could not be drained after the heal".to_string());
            break;
        }
        let Some(mut c) = connect(rng, sh) else {
            continue;
        };
        match c.call(&["LPOP", LIST_KEY, "1000"]) {
            // The null array (read as an empty one): the list is empty.
            Ok(Reply::Array(items)) if items.is_empty() => break,
            Ok(Reply::Array(items)) => {
                for it in items {
                    if let Reply::Bulk(Some(v)) = it {
                        let v = String::from_utf8_lossy(&v).into_owned();
                        lists.with(|l| l.left.push(v));
                    }
                }
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    lists.with(|l| {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for v in l.popped.iter().chain(&l.left) {
            *seen.entry(v).or_default() += 1;
        }
        for (v, n) in &seen {
            if *n > 1 {
                problems.push(format!("list item {v} came off the list {n} times"));
            }
        }
        let attempted: std::collections::HashSet<&str> =
            l.attempted.iter().map(String::as_str).collect();
        for v in seen.keys().filter(|v| !attempted.contains(**v)) {
            problems.push(format!(
                "list item {v} came off the list but was never pushed"
            ));
        }
        let lost: Vec<&String> = l
            .acked
            .iter()
            .filter(|v| !seen.contains_key(v.as_str()))
            .collect();
        if lost.len() > l.pops_unknown {
            problems.push(format!(
                "{} acknowledged list pushes lost ({:?}...), only {} pops had no reply",
                lost.len(),
                &lost[..lost.len().min(5)],
                l.pops_unknown
            ));
        }
        eprintln!(
            "  lists: pushes acked {} attempted {}; popped {}, left {}, pops unknown {}, lost {}",
            l.acked.len(),
            l.attempted.len(),
            l.popped.len(),
            l.left.len(),
            l.pops_unknown,
            lost.len()
        );
    });
    problems
}
