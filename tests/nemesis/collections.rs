//! Hashes and sets under faults: clients HINCRBY a few counter fields of one hash, HSET unique
//! fields of it, SADD unique members to one set and SREM some of the members they added, all
//! through random nodes. After the heal the hash and the set are read linearizably.
//!
//! What must hold (each check sound: it can only fail if kvd is wrong):
//! - **No lost or doubled increment**: a counter field is at least its acknowledged
//!   increments and at most those plus the ones whose outcome is unknown.
//! - **No acknowledged HSET lost, nothing invented**: an acknowledged field holds its value;
//!   every unique field present was sent, with the value sent.
//! - **Sets as told**: an acknowledged SADD's member is there unless an SREM of it was sent;
//!   an acknowledged SREM's member is gone (members are never re-added); every member present
//!   was sent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::nemesis::client::{Client, Fate, Reply};
use crate::nemesis::rng::Rng;
use crate::nemesis::workload::{Shared, Tally, connect};

pub const HASH_KEY: &str = "hcounters";
pub const SET_KEY: &str = "members";
/// The counter fields of the hash.
pub const COUNTERS: [&str; 3] = ["n0", "n1", "n2"];

/// What the clients saw.
#[derive(Default, Debug, Clone)]
pub struct CollectionLog {
    /// Per counter field: increments acknowledged, and with unknown outcome.
    pub incr_acked: BTreeMap<String, i64>,
    pub incr_unknown: BTreeMap<String, i64>,
    /// Unique fields sent (field -> value) and those acknowledged.
    pub fields_sent: HashMap<String, String>,
    pub fields_acked: Vec<String>,
    pub members_sent: HashSet<String>,
    pub members_acked: Vec<String>,
    /// Members an SREM was sent for, and those it acknowledged removing.
    pub removals_sent: HashSet<String>,
    pub removals_acked: Vec<String>,
}

/// The hash and the set as read after the heal.
#[derive(Default, Debug, Clone)]
pub struct FinalCollections {
    pub hash: HashMap<String, String>,
    pub set: HashSet<String>,
}

#[derive(Clone, Default)]
pub struct Collections(Arc<Mutex<CollectionLog>>);

impl Collections {
    fn with<R>(&self, f: impl FnOnce(&mut CollectionLog) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn link(rng: &mut Rng, sh: &Shared) -> Option<Client> {
    connect(rng, &sh.addrs, &mut Tally::default())
}

/// Starts `n` clients.
pub fn spawn(n: usize, rng: &mut Rng, sh: &Shared, log: &Collections) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|id| {
            let (mut r, sh2, l) = (rng.fork(1100 + id as u64), sh.clone(), log.clone());
            std::thread::spawn(move || run(id, &mut r, &sh2, &l))
        })
        .collect()
}

fn run(id: usize, rng: &mut Rng, sh: &Shared, log: &Collections) {
    let mut con: Option<Client> = None;
    let mut seq = 0;
    let mut added: Vec<String> = Vec::new();
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            con = link(rng, sh);
            continue;
        };
        seq += 1;
        let fate = match rng.below(4) {
            0 => {
                let field = rng.pick(&COUNTERS).to_string();
                let fate = Fate::of(c.call(&["HINCRBY", HASH_KEY, &field, "1"]));
                log.with(|l| match &fate {
                    Fate::Done(Reply::Int(_)) => *l.incr_acked.entry(field).or_default() += 1,
                    Fate::Failed(_) => {}
                    _ => *l.incr_unknown.entry(field).or_default() += 1,
                });
                fate
            }
            1 => {
                let (field, value) = (format!("f{id}-{seq}"), format!("v{seq}"));
                log.with(|l| l.fields_sent.insert(field.clone(), value.clone()));
                let fate = Fate::of(c.call(&["HSET", HASH_KEY, &field, &value]));
                if let Fate::Done(Reply::Int(1)) = fate {
                    log.with(|l| l.fields_acked.push(field));
                }
                fate
            }
            2 if !added.is_empty() && rng.chance(40) => {
                let m = added.swap_remove(rng.below(added.len()));
                log.with(|l| l.removals_sent.insert(m.clone()));
                let fate = Fate::of(c.call(&["SREM", SET_KEY, &m]));
                if let Fate::Done(Reply::Int(1)) = fate {
                    log.with(|l| l.removals_acked.push(m));
                }
                fate
            }
            _ => {
                let m = format!("s{id}-{seq}");
                log.with(|l| l.members_sent.insert(m.clone()));
                let fate = Fate::of(c.call(&["SADD", SET_KEY, &m]));
                if let Fate::Done(Reply::Int(1)) = fate {
                    log.with(|l| l.members_acked.push(m.clone()));
                    added.push(m);
                }
                fate
            }
        };
        if !matches!(fate, Fate::Done(_)) {
            con = None;
        }
        std::thread::sleep(rng.millis(5, 30));
    }
}

/// The flat `[a, b, c, d]` reply as strings.
fn strings(r: &Reply) -> Option<Vec<String>> {
    match r {
        Reply::Array(items) => items.iter().map(Reply::text).collect(),
        _ => None,
    }
}

fn read_final(c: &mut Client) -> Option<FinalCollections> {
    let flat = strings(&c.call(&["HGETALL", HASH_KEY]).ok()?)?;
    let hash = flat
        .chunks(2)
        .filter_map(|p| Some((p.first()?.clone(), p.get(1)?.clone())))
        .collect();
    let set = strings(&c.call(&["SMEMBERS", SET_KEY]).ok()?)?
        .into_iter()
        .collect();
    Some(FinalCollections { hash, set })
}

/// After the heal: reads the hash and the set (through any node, retrying until it succeeds
/// or `within` passes) and returns every violation of the module's properties.
pub fn verify(log: &Collections, sh: &Shared, rng: &mut Rng, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let state = loop {
        if Instant::now() > deadline {
            return vec!["the hash and set could not be read after the heal".to_string()];
        }
        if let Some(mut c) = link(rng, sh)
            && let Some(state) = read_final(&mut c)
        {
            break state;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = log.with(|l| l.clone());
    eprintln!(
        "  collections: increments acked {:?} unknown {:?} final {:?}; fields acked {} of {}; \
         members acked {} of {}, removals acked {}, final {}",
        log.incr_acked,
        log.incr_unknown,
        COUNTERS.map(|f| state.hash.get(f).cloned()),
        log.fields_acked.len(),
        log.fields_sent.len(),
        log.members_acked.len(),
        log.members_sent.len(),
        log.removals_acked.len(),
        state.set.len()
    );
    check(&log, &state)
}

/// The module's properties over what the clients saw and the final state.
pub fn check(log: &CollectionLog, state: &FinalCollections) -> Vec<String> {
    let mut problems = Vec::new();
    for field in COUNTERS {
        let acked = log.incr_acked.get(field).copied().unwrap_or(0);
        let unknown = log.incr_unknown.get(field).copied().unwrap_or(0);
        let value = match state.hash.get(field) {
            None => 0,
            Some(v) => match v.parse::<i64>() {
                Ok(n) => n,
                Err(_) => {
                    problems.push(format!("counter {field} holds {v:?}"));
                    continue;
                }
            },
        };
        if value < acked {
            problems.push(format!(
                "counter {field} is {value}: {} acknowledged increments lost",
                acked - value
            ));
        }
        if value > acked + unknown {
            problems.push(format!(
                "counter {field} is {value}, more than {acked} acknowledged + {unknown} unknown \
                 increments"
            ));
        }
    }
    for f in &log.fields_acked {
        if state.hash.get(f) != log.fields_sent.get(f) {
            problems.push(format!(
                "acknowledged HSET of {f} lost: {:?}",
                state.hash.get(f)
            ));
        }
    }
    for (f, v) in &state.hash {
        if COUNTERS.contains(&f.as_str()) {
            continue;
        }
        if log.fields_sent.get(f) != Some(v) {
            problems.push(format!("hash field {f} = {v:?} was never sent so"));
        }
    }
    for m in &log.members_acked {
        if !state.set.contains(m) && !log.removals_sent.contains(m) {
            problems.push(format!("acknowledged SADD of {m} lost"));
        }
    }
    for m in &log.removals_acked {
        if state.set.contains(m) {
            problems.push(format!("{m} is in the set after an acknowledged SREM"));
        }
    }
    for m in &state.set {
        if !log.members_sent.contains(m) {
            problems.push(format!("set member {m} was never sent"));
        }
    }
    problems
}

/// The checker rejects what it must (it can fail) and accepts a clean run.
#[test]
fn the_hash_and_set_checker_finds_each_violation() {
    let s = |v: &str| v.to_string();
    let mut log = CollectionLog::default();
    log.incr_acked.insert(s("n0"), 3);
    log.incr_unknown.insert(s("n0"), 1);
    log.fields_sent.insert(s("f1"), s("v1"));
    log.fields_sent.insert(s("f2"), s("v2"));
    log.fields_acked.push(s("f1"));
    for m in ["a", "b", "c"] {
        log.members_sent.insert(s(m));
    }
    log.members_acked = vec![s("a"), s("b")];
    log.removals_sent.insert(s("b"));
    log.removals_acked.push(s("b"));
    let good = FinalCollections {
        hash: [(s("n0"), s("4")), (s("f1"), s("v1"))]
            .into_iter()
            .collect(),
        set: [s("a"), s("c")].into_iter().collect(),
    };
    assert_eq!(check(&log, &good), Vec::<String>::new());
    let fails = |state: &FinalCollections, what: &str| {
        let p = check(&log, state);
        assert!(p.iter().any(|p| p.contains(what)), "{what}: {p:?}");
    };
    let mut st = good.clone();
    st.hash.insert(s("n0"), s("2"));
    fails(&st, "increments lost");
    st.hash.insert(s("n0"), s("5"));
    fails(&st, "more than 3 acknowledged");
    st = good.clone();
    st.hash.remove("f1");
    fails(&st, "HSET of f1 lost");
    st = good.clone();
    st.hash.insert(s("f2"), s("other"));
    fails(&st, "never sent so");
    st = good.clone();
    st.set.remove("a");
    fails(&st, "SADD of a lost");
    st = good.clone();
    st.set.insert(s("b"));
    fails(&st, "after an acknowledged SREM");
    st = good.clone();
    st.set.insert(s("zz"));
    fails(&st, "never sent");
}
