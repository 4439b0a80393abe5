//! Streams and consumer groups under faults: producers XADD unique items to one stream through
//! random nodes; consumers of one group read it with XREADGROUP ... BLOCK ... `>` (blocked on
//! whichever node they are connected to, followers included) and XACK what they got; a claimer
//! takes over entries left pending (XAUTOCLAIM) and acknowledges them. After the heal the
//! stream, the group's pending list and its last-delivered ID are read linearizably.
//!
//! What must hold (each check sound: it can only fail if kvd is wrong):
//! - **No acknowledged XADD lost**: every ID an XADD answered is in the stream with its item.
//! - **Nothing invented**: every entry holds an item some producer sent, each item once, in
//!   increasing ID order; every delivered or claimed entry is in the stream with that item.
//! - **Delivered once**: no entry is delivered by `>` twice (to two consumers, or one twice);
//!   only a claim hands an entry over again.
//! - **Nothing delivered into the void**: an entry at or below the group's last-delivered ID was
//!   delivered or claimed (reply seen), or is still pending (its reply was lost).
//! - **Pending list as told**: an entry acknowledged (XACK counted it) is not pending; a pending
//!   entry is in the stream, at or below the last-delivered ID, owned by the consumer it was
//!   delivered to (or by the claimer).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::nemesis::client::{Client, Reply};
use crate::nemesis::rng::Rng;
use crate::nemesis::workload::{Shared, Tally, connect};

/// The stream every client works on, and its consumer group.
pub const STREAM_KEY: &str = "events";
pub const GROUP: &str = "grp";
/// The consumer name of the claimer.
pub const CLAIMER: &str = "claimer";

/// What the stream clients saw.
#[derive(Default, Debug, Clone)]
pub struct StreamLog {
    /// Items some XADD sent (acknowledged or not).
    pub attempted: HashSet<String>,
    /// (item, ID) of every XADD answered with an ID.
    pub acked: Vec<(String, String)>,
    /// (ID, item, consumer) of every entry a `>` read delivered (reply seen).
    pub delivered: Vec<(String, String, String)>,
    /// (ID, item) of every entry the claimer's XAUTOCLAIM handed it (reply seen).
    pub claimed: Vec<(String, String)>,
    /// The claimer sent at least one XAUTOCLAIM (entries may be pending under its name).
    pub claims_sent: bool,
    /// IDs an XACK counted (its reply equalled the number of IDs it named).
    pub xacked: HashSet<String>,
}

/// The group and stream as read after the heal.
#[derive(Default, Debug, Clone)]
pub struct FinalStream {
    /// (ID, item) in XRANGE order.
    pub entries: Vec<(String, String)>,
    /// (ID, consumer) from XPENDING.
    pub pending: Vec<(String, String)>,
    pub last_delivered: String,
}

/// Shared between stream clients.
#[derive(Clone, Default)]
pub struct Streams(Arc<Mutex<StreamLog>>);

impl Streams {
    fn with<R>(&self, f: impl FnOnce(&mut StreamLog) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn link(rng: &mut Rng, sh: &Shared) -> Option<Client> {
    connect(rng, &sh.addrs, &mut Tally::default())
}

/// Creates the group (retrying until a node takes it), then starts `n` producers, `n`
/// consumers and one claimer.
pub fn spawn(n: usize, rng: &mut Rng, sh: &Shared, streams: &Streams) -> Vec<JoinHandle<()>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(mut c) = link(rng, sh) else {
            continue;
        };
        match c.call(&["XGROUP", "CREATE", STREAM_KEY, GROUP, "$", "MKSTREAM"]) {
            Ok(Reply::Status(_)) => break,
            Ok(Reply::Error(e)) if e.starts_with("BUSYGROUP") => break,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let mut out = Vec::new();
    for id in 0..n {
        let (mut r, sh2, s) = (rng.fork(900 + id as u64), sh.clone(), streams.clone());
        out.push(std::thread::spawn(move || produce(id, &mut r, &sh2, &s)));
        let (mut r, sh2, s) = (rng.fork(950 + id as u64), sh.clone(), streams.clone());
        out.push(std::thread::spawn(move || consume(id, &mut r, &sh2, &s)));
    }
    let (mut r, sh2, s) = (rng.fork(999), sh.clone(), streams.clone());
    out.push(std::thread::spawn(move || claim(&mut r, &sh2, &s)));
    out
}

fn produce(id: usize, rng: &mut Rng, sh: &Shared, streams: &Streams) {
    let mut con: Option<Client> = None;
    let mut seq = 0;
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            con = link(rng, sh);
            continue;
        };
        seq += 1;
        let item = format!("x{id}-{seq}");
        streams.with(|l| l.attempted.insert(item.clone()));
        match c.call(&["XADD", STREAM_KEY, "*", "item", &item]) {
            Ok(Reply::Bulk(Some(id))) => {
                let id = String::from_utf8_lossy(&id).into_owned();
                streams.with(|l| l.acked.push((item, id)));
            }
            Ok(_) => {}
            Err(_) => con = None,
        }
        std::thread::sleep(rng.millis(5, 30));
    }
}

/// The (ID, item) pairs of a list of stream entries `[[id, [field, value, ...]], ...]`.
fn entries_of(r: &Reply) -> Vec<(String, String)> {
    let Reply::Array(items) = r else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| match e {
            Reply::Array(pair) if pair.len() == 2 => {
                let id = pair[0].text()?;
                let item = match &pair[1] {
                    Reply::Array(fv) if fv.len() >= 2 => fv[1].text().unwrap_or_default(),
                    _ => String::new(),
                };
                Some((id, item))
            }
            _ => None,
        })
        .collect()
}

/// XACKs `ids`; they count as acknowledged if the reply says all were.
fn ack(c: &mut Client, ids: &[String], streams: &Streams) -> bool {
    if ids.is_empty() {
        return true;
    }
    let mut argv = vec!["XACK".to_string(), STREAM_KEY.into(), GROUP.into()];
    argv.extend(ids.iter().cloned());
    match c.call(&argv) {
        Ok(Reply::Int(n)) => {
            if n == ids.len() as i64 {
                streams.with(|l| l.xacked.extend(ids.iter().cloned()));
            }
            true
        }
        Ok(_) => true,
        Err(_) => false,
    }
}

fn consume(id: usize, rng: &mut Rng, sh: &Shared, streams: &Streams) {
    let consumer = format!("c{id}");
    let mut con: Option<Client> = None;
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            con = link(rng, sh);
            continue;
        };
        let argv = [
            "XREADGROUP",
            "GROUP",
            GROUP,
            &consumer,
            "COUNT",
            "5",
            "BLOCK",
            "500",
            "STREAMS",
            STREAM_KEY,
            ">",
        ];
        let got = match c.call(&argv) {
            Ok(Reply::Array(streams_)) => match streams_.first() {
                Some(Reply::Array(kv)) if kv.len() == 2 => entries_of(&kv[1]),
                _ => Vec::new(),
            },
            Ok(_) => Vec::new(),
            Err(_) => {
                con = None;
                continue;
            }
        };
        streams.with(|l| {
            for (id, item) in &got {
                l.delivered
                    .push((id.clone(), item.clone(), consumer.clone()));
            }
        });
        let ids: Vec<String> = got.into_iter().map(|(id, _)| id).collect();
        // Now and then an entry is left pending, for the claimer.
        if !rng.chance(10) && !ack(c, &ids, streams) {
            con = None;
        }
    }
}

fn claim(rng: &mut Rng, sh: &Shared, streams: &Streams) {
    let mut con: Option<Client> = None;
    while !sh.stop.load(Ordering::Relaxed) {
        std::thread::sleep(rng.millis(200, 600));
        let Some(c) = con.as_mut() else {
            con = link(rng, sh);
            continue;
        };
        streams.with(|l| l.claims_sent = true);
        let argv = [
            "XAUTOCLAIM",
            STREAM_KEY,
            GROUP,
            CLAIMER,
            "1000",
            "0-0",
            "COUNT",
            "20",
        ];
        let got = match c.call(&argv) {
            Ok(Reply::Array(parts)) if parts.len() >= 2 => entries_of(&parts[1]),
            Ok(_) => Vec::new(),
            Err(_) => {
                con = None;
                continue;
            }
        };
        streams.with(|l| l.claimed.extend(got.iter().cloned()));
        let ids: Vec<String> = got.into_iter().map(|(id, _)| id).collect();
        if !ack(c, &ids, streams) {
            con = None;
        }
    }
}

/// Reads the stream, the pending list and the last-delivered ID on one linearizable
/// connection; `None` if any read fails.
fn read_final(c: &mut Client) -> Option<FinalStream> {
    let mut out = FinalStream::default();
    let mut from = "-".to_string();
    loop {
        let page = c
            .call(&["XRANGE", STREAM_KEY, &from, "+", "COUNT", "1000"])
            .ok()?;
        if !matches!(page, Reply::Array(_)) {
            return None;
        }
        let entries = entries_of(&page);
        let Some((last, _)) = entries.last().cloned() else {
            break;
        };
        out.entries.extend(entries);
        from = format!("({last}");
    }
    let pending = c
        .call(&["XPENDING", STREAM_KEY, GROUP, "-", "+", "1000000"])
        .ok()?;
    let Reply::Array(rows) = pending else {
        return None;
    };
    for row in rows {
        if let Reply::Array(f) = row
            && f.len() >= 2
        {
            out.pending.push((f[0].text()?, f[1].text()?));
        }
    }
    let Reply::Array(groups) = c.call(&["XINFO", "GROUPS", STREAM_KEY]).ok()? else {
        return None;
    };
    for g in groups {
        let Reply::Array(fields) = g else {
            continue;
        };
        let map: HashMap<String, &Reply> = fields
            .chunks(2)
            .filter_map(|p| Some((p.first()?.text()?, p.get(1)?)))
            .collect();
        if map.get("name").and_then(|n| n.text()).as_deref() == Some(GROUP) {
            out.last_delivered = map.get("last-delivered-id")?.text()?;
        }
    }
    (!out.last_delivered.is_empty()).then_some(out)
}

/// After the heal: reads the final state (through any node, retrying until it succeeds or
/// `within` passes) and returns every violation of the module's properties.
pub fn verify(streams: &Streams, sh: &Shared, rng: &mut Rng, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let state = loop {
        if Instant::now() > deadline {
            return vec!["the stream could not be read after the heal".to_string()];
        }
        if let Some(mut c) = link(rng, sh)
            && let Some(state) = read_final(&mut c)
        {
            break state;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = streams.with(|l| l.clone());
    eprintln!(
        "  streams: xadds acked {} attempted {}; entries {}, delivered {}, claimed {}, xacked {}, \
         pending {}",
        log.acked.len(),
        log.attempted.len(),
        state.entries.len(),
        log.delivered.len(),
        log.claimed.len(),
        log.xacked.len(),
        state.pending.len()
    );
    check(&log, &state)
}

/// A stream ID as (ms, seq); `None` if it is not one.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The module's properties over what the clients saw and the final state.
pub fn check(log: &StreamLog, state: &FinalStream) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_id: HashMap<&str, &str> = HashMap::new();
    let mut items: HashMap<&str, usize> = HashMap::new();
    let mut prev: Option<(u64, u64)> = None;
    for (id, item) in &state.entries {
        let Some(parsed) = parse_id(id) else {
            problems.push(format!("stream entry ID {id} is not an ID"));
            continue;
        };
        if prev.is_some_and(|p| p >= parsed) {
            problems.push(format!("stream entry {id} is out of order"));
        }
        prev = Some(parsed);
        by_id.insert(id, item);
        *items.entry(item).or_default() += 1;
        if !log.attempted.contains(item) {
            problems.push(format!("stream entry {id} holds {item:?}, never sent"));
        }
    }
    for (item, n) in &items {
        if *n > 1 {
            problems.push(format!("stream item {item} is in the stream {n} times"));
        }
    }
    let lost: Vec<&(String, String)> = log
        .acked
        .iter()
        .filter(|(item, id)| by_id.get(id.as_str()) != Some(&item.as_str()))
        .collect();
    if !lost.is_empty() {
        problems.push(format!(
            "{} acknowledged XADDs not in the stream as answered: {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        ));
    }
    let mut delivered: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, item, consumer) in &log.delivered {
        delivered.entry(id).or_default().push(consumer);
        if by_id.get(id.as_str()) != Some(&item.as_str()) {
            problems.push(format!(
                "entry {id} ({item:?}) was delivered to {consumer} but is not in the stream so"
            ));
        }
    }
    for (id, consumers) in &delivered {
        if consumers.len() > 1 {
            problems.push(format!(
                "entry {id} was delivered as new {} times: to {consumers:?}",
                consumers.len()
            ));
        }
    }
    for (id, item) in &log.claimed {
        if by_id.get(id.as_str()) != Some(&item.as_str()) {
            problems.push(format!(
                "entry {id} ({item:?}) was claimed but is not in the stream so"
            ));
        }
    }
    let claimed: HashSet<&str> = log.claimed.iter().map(|(id, _)| id.as_str()).collect();
    let pending: HashMap<&str, &str> = state
        .pending
        .iter()
        .map(|(id, c)| (id.as_str(), c.as_str()))
        .collect();
    let last = parse_id(&state.last_delivered);
    if last.is_none() {
        problems.push(format!(
            "last-delivered-id {:?} is not an ID",
            state.last_delivered
        ));
    }
    for (id, consumer) in &pending {
        if !by_id.contains_key(id) {
            problems.push(format!("pending entry {id} is not in the stream"));
        }
        if parse_id(id) > last {
            problems.push(format!(
                "pending entry {id} is past the last-delivered ID {}",
                state.last_delivered
            ));
        }
        if log.xacked.contains(*id) {
            problems.push(format!(
                "entry {id} is pending (for {consumer}) after an XACK counted it"
            ));
        }
        let owner_ok = match delivered.get(id) {
            Some(to) => to.contains(consumer) || (*consumer == CLAIMER && log.claims_sent),
            None => true,
        };
        if !owner_ok {
            problems.push(format!(
                "entry {id} is pending for {consumer}, but was delivered to {:?}",
                delivered.get(id)
            ));
        }
    }
    let void: Vec<&str> = state
        .entries
        .iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| parse_id(id) <= last)
        .filter(|id| {
            !delivered.contains_key(id) && !claimed.contains(id) && !pending.contains_key(id)
        })
        .collect();
    if !void.is_empty() {
        problems.push(format!(
            "{} entries at or below the last-delivered ID {} were delivered to nobody and are \
             not pending: {:?}",
            void.len(),
            state.last_delivered,
            &void[..void.len().min(5)]
        ));
    }
    problems
}

/// The checker rejects what it must (it can fail) and accepts a clean run.
#[test]
fn the_stream_checker_finds_each_violation() {
    let s = |v: &str| v.to_string();
    let mut log = StreamLog::default();
    for i in 1..=4 {
        log.attempted.insert(format!("a{i}"));
    }
    log.acked = vec![
        (s("a1"), s("1-0")),
        (s("a2"), s("2-0")),
        (s("a3"), s("3-0")),
    ];
    log.delivered = vec![(s("1-0"), s("a1"), s("c0")), (s("2-0"), s("a2"), s("c1"))];
    log.xacked.insert(s("1-0"));
    log.claims_sent = true;
    let good = FinalStream {
        entries: vec![
            (s("1-0"), s("a1")),
            (s("2-0"), s("a2")),
            (s("3-0"), s("a3")),
        ],
        // 3-0's delivery reply was lost: it is pending.
        pending: vec![(s("2-0"), s("c1")), (s("3-0"), s("c0"))],
        last_delivered: s("3-0"),
    };
    assert_eq!(check(&log, &good), Vec::<String>::new());
    let fails = |log: &StreamLog, state: &FinalStream, what: &str| {
        let p = check(log, state);
        assert!(p.iter().any(|p| p.contains(what)), "{what}: {p:?}");
    };
    let mut lost = good.clone();
    lost.entries.remove(2);
    lost.pending.pop();
    fails(&log, &lost, "acknowledged XADDs");
    let mut invented = good.clone();
    invented.entries.push((s("4-0"), s("zz")));
    fails(&log, &invented, "never sent");
    let mut twice = log.clone();
    twice.delivered.push((s("2-0"), s("a2"), s("c0")));
    fails(&twice, &good, "delivered as new 2 times");
    let mut void = good.clone();
    void.pending.retain(|(id, _)| id != "3-0");
    fails(&log, &void, "delivered to nobody");
    let mut unacked = good.clone();
    unacked.pending.push((s("1-0"), s("c0")));
    fails(&log, &unacked, "after an XACK");
    let mut owner = good.clone();
    owner.pending[0].1 = s("c7");
    fails(&log, &owner, "pending for c7");
    let mut past = good.clone();
    past.last_delivered = s("2-0");
    fails(&log, &past, "past the last-delivered");
    let mut order = good.clone();
    order.entries.swap(0, 1);
    fails(&log, &order, "out of order");
}
