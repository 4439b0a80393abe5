//! A capped stream under faults: producers XADD unique items to one stream through random
//! nodes with approximate trimming (`MAXLEN ~ N LIMIT L`, `MINID ~ id LIMIT L`, and XTRIM of
//! both kinds), on members whose `stream-node-max-entries` differ (set at the start; a restarted
//! member is back at the default), so which entries a `~` trim removes depends on the node that
//! took the command. kvd fixes that choice in the entry (prepare writes the node size it used),
//! so every replica trims the same entries: the run's converged-DIGEST check compares them.
//!
//! What must hold after the heal (each check can only fail if kvd is wrong):
//! - **Only a head is trimmed**: every acknowledged XADD whose ID is at or after the stream's
//!   first remaining entry is in the stream as answered (trimming removes the oldest entries,
//!   never one in the middle, never a new one).
//! - **Nothing invented**: every entry holds an item some producer sent, each item once, in
//!   increasing ID order.
//! - **Trimming happened**: a stream that took thousands of XADDs holds at most a few node sizes
//!   more than its cap.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::nemesis::client::{Client, Fate, Reply, call_once};
use crate::nemesis::rng::Rng;
use crate::nemesis::streams::parse_id;
use crate::nemesis::workload::{CLIENT_TIMEOUT, Shared, Tally, connect};

/// The capped stream.
pub const KEY: &str = "capped";
/// The MAXLEN the producers ask for.
const CAP: usize = 40;
/// Entries a `~` trim may remove per command: whole nodes only, so at least the largest node
/// size in use (100, the default, on a member restarted since the start).
const LIMIT: &str = "200";
/// Above this many acknowledged XADDs the stream must have been trimmed (see `check`).
const TRIM_EXPECTED_AFTER: usize = 400;
/// Most entries the stream may hold once trimmed: the cap, a node kept because removing it
/// would go below the cap, and a node being filled, at the default node size of 100.
const MOST_AFTER_TRIM: usize = CAP + 2 * 100;

/// What the producers saw.
#[derive(Default, Debug, Clone)]
pub struct CappedLog {
    /// Items some XADD sent (acknowledged or not).
    pub attempted: HashSet<String>,
    /// (item, ID) of every XADD answered with an ID.
    pub acked: Vec<(String, String)>,
    /// Trimming commands that got an error reply kvd does not document.
    pub unexpected: Vec<String>,
}

/// Shared between the producers.
#[derive(Clone, Default)]
pub struct Capped(Arc<Mutex<CappedLog>>);

impl Capped {
    fn with<R>(&self, f: impl FnOnce(&mut CappedLog) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Gives each member its own node size (best effort: a member that is down keeps the default),
/// then starts `n` producers.
pub fn spawn(n: usize, rng: &mut Rng, sh: &Shared, capped: &Capped) -> Vec<JoinHandle<()>> {
    let addrs = sh
        .addrs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for (i, addr) in addrs.iter().enumerate() {
        let size = [10, 15, 20, 30][i % 4].to_string();
        let _ = call_once(
            addr,
            &["CONFIG", "SET", "stream-node-max-entries", &size],
            CLIENT_TIMEOUT,
        );
    }
    (0..n)
        .map(|id| {
            let (mut r, sh2, c) = (rng.fork(0xCA0 + id as u64), sh.clone(), capped.clone());
            std::thread::spawn(move || produce(id, &mut r, &sh2, &c))
        })
        .collect()
}

fn produce(id: usize, rng: &mut Rng, sh: &Shared, capped: &Capped) {
    let mut con: Option<Client> = None;
    let mut seq = 0;
    let mut tally = Tally::default();
    let cap = CAP.to_string();
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            con = connect(rng, &sh.addrs, &mut tally);
            continue;
        };
        // An ID some way back, for MINID: the one acknowledged CAP XADDs ago.
        let minid = capped.with(|l| l.acked.len().checked_sub(CAP).map(|i| l.acked[i].1.clone()));
        let roll = rng.below(10);
        if roll == 0 || (roll == 1 && minid.is_some()) {
            let argv: Vec<&str> = match &minid {
                Some(m) if roll == 1 => vec!["XTRIM", KEY, "MINID", "~", m, "LIMIT", LIMIT],
                _ => vec!["XTRIM", KEY, "MAXLEN", "~", &cap, "LIMIT", LIMIT],
            };
            match Fate::of(c.call(&argv)) {
                Fate::Done(Reply::Int(_)) => {}
                Fate::Done(other) => {
                    capped.with(|l| l.unexpected.push(format!("{argv:?} -> {other:?}")));
                    con = None;
                }
                Fate::Unknown {
                    why,
                    unexpected: true,
                } => {
                    capped.with(|l| l.unexpected.push(format!("{argv:?} -> {why}")));
                    con = None;
                }
                Fate::Failed(_) | Fate::Unknown { .. } => con = None,
            }
            continue;
        }
        seq += 1;
        let item = format!("c{id}-{seq}");
        capped.with(|l| l.attempted.insert(item.clone()));
        let argv: Vec<&str> = match &minid {
            Some(m) if roll == 2 => vec![
                "XADD", KEY, "MINID", "~", m, "LIMIT", LIMIT, "*", "item", &item,
            ],
            _ => vec![
                "XADD", KEY, "MAXLEN", "~", &cap, "LIMIT", LIMIT, "*", "item", &item,
            ],
        };
        match c.call(&argv) {
            Ok(Reply::Bulk(Some(id))) => {
                let id = String::from_utf8_lossy(&id).into_owned();
                capped.with(|l| l.acked.push((item, id)));
            }
            Ok(_) => {}
            Err(_) => con = None,
        }
        std::thread::sleep(rng.millis(2, 15));
    }
}

/// (ID, item) of every entry, read in pages on one linearizable connection.
fn read_final(c: &mut Client) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut from = "-".to_string();
    loop {
        let Reply::Array(page) = c.call(&["XRANGE", KEY, &from, "+", "COUNT", "1000"]).ok()? else {
            return None;
        };
        let mut last = None;
        for e in page {
            let Reply::Array(pair) = e else { return None };
            let id = pair.first()?.text()?;
            let item = match pair.get(1) {
                Some(Reply::Array(fv)) => fv.get(1).and_then(Reply::text).unwrap_or_default(),
                _ => String::new(),
            };
            last = Some(id.clone());
            out.push((id, item));
        }
        match last {
            Some(id) => from = format!("({id}"),
            None => return Some(out),
        }
    }
}

/// After the heal: reads the stream (through any node, retrying until it succeeds or `within`
/// passes) and returns every violation of the module's properties.
pub fn verify(capped: &Capped, sh: &Shared, rng: &mut Rng, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let entries = loop {
        if Instant::now() > deadline {
            return vec!["the capped stream could not be read after the heal".to_string()];
        }
        if let Some(mut c) = connect(rng, &sh.addrs, &mut Tally::default())
            && let Some(entries) = read_final(&mut c)
        {
            break entries;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = capped.with(|l| l.clone());
    eprintln!(
        "  capped stream: xadds acked {} attempted {}; entries left {}",
        log.acked.len(),
        log.attempted.len(),
        entries.len()
    );
    check(&log, &entries)
}

/// The module's properties over what the producers saw and the final entries.
pub fn check(log: &CappedLog, entries: &[(String, String)]) -> Vec<String> {
    let mut problems: Vec<String> = log.unexpected.iter().take(5).cloned().collect();
    let mut by_id: HashMap<&str, &str> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut prev: Option<(u64, u64)> = None;
    for (id, item) in entries {
        let Some(parsed) = parse_id(id) else {
            problems.push(format!("capped entry ID {id} is not an ID"));
            continue;
        };
        if prev.is_some_and(|p| p >= parsed) {
            problems.push(format!("capped entry {id} is out of order"));
        }
        prev = Some(parsed);
        by_id.insert(id, item);
        if !seen.insert(item) {
            problems.push(format!("capped item {item} is in the stream twice"));
        }
        if !log.attempted.contains(item) {
            problems.push(format!("capped entry {id} holds {item:?}, never sent"));
        }
    }
    let first = entries.first().and_then(|(id, _)| parse_id(id));
    if first.is_none() && !log.acked.is_empty() {
        problems.push(format!(
            "the capped stream is empty after {} acknowledged XADDs (a trim keeps the cap)",
            log.acked.len()
        ));
    }
    let lost: Vec<&(String, String)> = log
        .acked
        .iter()
        .filter(|(item, id)| {
            let kept = match (first, parse_id(id)) {
                (Some(f), Some(i)) => i >= f,
                // An empty stream is reported above; an unparsable ID, as lost.
                (None, _) => false,
                (Some(_), None) => true,
            };
            kept && by_id.get(id.as_str()) != Some(&item.as_str())
        })
        .collect();
    if !lost.is_empty() {
        problems.push(format!(
            "{} acknowledged XADDs at or after the first remaining entry are not in the capped \
             stream as answered (a trim removed more than a head): {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        ));
    }
    if log.acked.len() > TRIM_EXPECTED_AFTER && entries.len() > MOST_AFTER_TRIM {
        problems.push(format!(
            "the capped stream holds {} entries after {} acknowledged XADDs with MAXLEN ~ {CAP}",
            entries.len(),
            log.acked.len()
        ));
    }
    problems
}

#[test]
fn the_capped_stream_checker_finds_each_violation() {
    let e = |id: &str, item: &str| (id.to_string(), item.to_string());
    let mut log = CappedLog::default();
    for i in 1..=5 {
        log.attempted.insert(format!("i{i}"));
        log.acked.push((format!("i{i}"), format!("{i}-0")));
    }
    // A head trimmed: fine.
    let good = vec![e("3-0", "i3"), e("4-0", "i4"), e("5-0", "i5")];
    assert!(check(&log, &good).is_empty(), "{:?}", check(&log, &good));
    // A middle entry gone.
    let hole = vec![e("3-0", "i3"), e("5-0", "i5")];
    assert_eq!(check(&log, &hole).len(), 1);
    // The newest gone.
    let tail = vec![e("3-0", "i3"), e("4-0", "i4")];
    assert_eq!(check(&log, &tail).len(), 1);
    // Invented, duplicated, out of order.
    let bad = vec![
        e("3-0", "i3"),
        e("4-0", "zz"),
        e("4-0", "i3"),
        e("5-0", "i5"),
    ];
    assert!(check(&log, &bad).len() >= 3, "{:?}", check(&log, &bad));
    // Everything trimmed.
    assert_eq!(check(&log, &[]).len(), 1);
}
