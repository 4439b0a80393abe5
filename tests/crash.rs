//! Crash safety: `kill -9` at random moments under write load, many times, for a single node and
//! for a 3-node cluster; then damaged or missing database files, which must be refused at start.
//!
//! Writers INCR a counter and APPEND unique tokens and remember what was acknowledged, refused
//! or left unknown. After each restart the node must come back cleanly (answers PING, sane INFO
//! raft) and lose no acknowledged write nor apply any write twice: the counter lies between the
//! acknowledged INCRs and those plus the unknown ones, every acknowledged token is there once,
//! an unknown one at most once, a refused one never. The ops also go through the
//! linearizability checker. The seed of the kill times comes from `KVD_NEMESIS_SEEDS` (first
//! seed) and the number of cycles from `KVD_CRASH_CYCLES`.

mod checker;
mod common;
#[path = "nemesis/mod.rs"]
mod nemesis;

use std::collections::HashSet;
use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use checker::{Kind, Recorder};
use common::*;
use nemesis::client::{Client, Fate, Reply};
use nemesis::rng::{Rng, seeds};
use nemesis::run::NODE_FLAGS;
use nemesis::verify::check_history;
use nemesis::workload::{CLIENT_TIMEOUT, Ledger, Shared, final_read, without_unapplied_appends};
use nemesis::world::{RECOVERY, World};

/// The tests share a 2-core CI machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn cycles() -> usize {
    std::env::var("KVD_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
}

fn seed() -> u64 {
    seeds(&[1])[0]
}

// ---------------------------------------------------------------- the write load

/// What every writer adds to, shared so checks can run while writers go on.
#[derive(Default)]
struct Acks {
    incr_acked: AtomicUsize,
    incr_unknown: AtomicUsize,
    incr_failed: AtomicUsize,
    /// Values INCR returned: each must be distinct.
    incr_values: Mutex<Vec<i64>>,
    ledger: Mutex<Ledger>,
}

impl Acks {
    /// What the writers saw, for the run's summary line.
    fn summary(&self, counter: &[u8]) -> String {
        let ledger = self.ledger();
        format!(
            "INCR acked {} unknown {} refused {}, counter {}; tokens acked {} unknown {}",
            self.incr_acked.load(Ordering::SeqCst),
            self.incr_unknown.load(Ordering::SeqCst),
            self.incr_failed.load(Ordering::SeqCst),
            as_counter(counter),
            ledger.acked.len(),
            ledger.unknown.len(),
        )
    }

    fn ledger(&self) -> Ledger {
        self.ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Problems with the counter read as `value` after every acknowledged INCR so far, and with
    /// the token log read as `log`.
    fn check(&self, value: i64, log: &[u8]) -> Vec<String> {
        let acked = self.incr_acked.load(Ordering::SeqCst) as i64;
        let unknown = self.incr_unknown.load(Ordering::SeqCst) as i64;
        let mut out = Vec::new();
        if value < acked {
            out.push(format!(
                "counter {value} < {acked} acknowledged INCRs: an acknowledged write was lost"
            ));
        }
        if value > acked + unknown {
            out.push(format!(
                "counter {value} > {acked} acknowledged + {unknown} unknown INCRs: a write was \
                 applied twice (or a refused one applied)"
            ));
        }
        let values = self
            .incr_values
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let distinct: HashSet<i64> = values.iter().copied().collect();
        if distinct.len() != values.len() {
            out.push("two INCRs returned the same value".into());
        }
        out.extend(self.ledger().violations(log));
        out
    }
}

/// Writer threads: INCR `counter` or APPEND a token to `log`, on random members, until stopped.
struct Writers {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl Writers {
    fn start(n: usize, rng: &mut Rng, sh: &Shared, acks: &Arc<Acks>) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..n)
            .map(|_| {
                let (stop, sh, acks) = (stop.clone(), sh.clone(), acks.clone());
                let mut rng = rng.fork(0);
                // Ids unique over the whole test: tokens must never repeat.
                let id = NEXT_WRITER.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || write_loop(id, &mut rng, &sh, &acks, &stop))
            })
            .collect();
        Writers { stop, handles }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            h.join().expect("writer panicked");
        }
    }
}

static NEXT_WRITER: AtomicUsize = AtomicUsize::new(0);

fn write_loop(id: usize, rng: &mut Rng, sh: &Shared, acks: &Acks, stop: &AtomicBool) {
    let mut con: Option<Client> = None;
    let mut seq = 0;
    let mut tally = Default::default();
    while !stop.load(Ordering::SeqCst) {
        let Some(c) = con.as_mut() else {
            con = nemesis::workload::connect(rng, &sh.addrs, &mut tally);
            continue;
        };
        seq += 1;
        let incr = rng.chance(50);
        let token = format!("w{id}-{seq},");
        let (key, kind, argv) = if incr {
            ("counter", Kind::Incr, vec!["INCR", "counter"])
        } else {
            (
                "log",
                Kind::Append(token.clone().into_bytes()),
                vec!["APPEND", "log", &token],
            )
        };
        let pending = sh.recorder.invoke(id, key, kind);
        let result = c.call(&argv);
        if result.is_err() {
            con = None;
        }
        let ledger = |f: fn(&mut Ledger) -> &mut Vec<String>| {
            if !incr {
                f(&mut acks.ledger.lock().unwrap_or_else(PoisonError::into_inner))
                    .push(token.clone());
            }
        };
        match Fate::of(result) {
            Fate::Done(Reply::Int(n)) => {
                // The ledger first: a check that sees the counter's ack sees the token's.
                ledger(|l| &mut l.acked);
                if incr {
                    acks.incr_values
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(n);
                    acks.incr_acked.fetch_add(1, Ordering::SeqCst);
                }
                pending.int(n);
            }
            Fate::Failed(_) => {
                ledger(|l| &mut l.failed);
                if incr {
                    acks.incr_failed.fetch_add(1, Ordering::SeqCst);
                }
                pending.failed();
                con = None;
            }
            other => {
                if let Fate::Unknown {
                    unexpected: true,
                    why,
                } = &other
                {
                    panic!("{argv:?} -> unexpected reply {why}");
                }
                if let Fate::Done(r) = &other {
                    panic!("{argv:?} -> unexpected reply {r:?}");
                }
                ledger(|l| &mut l.unknown);
                if incr {
                    acks.incr_unknown.fetch_add(1, Ordering::SeqCst);
                }
                pending.unknown();
                con = None;
            }
        }
    }
}

fn shared(addrs: Vec<String>) -> Shared {
    Shared {
        recorder: Recorder::new(),
        addrs: Arc::new(Mutex::new(addrs)),
        stop: Arc::new(AtomicBool::new(false)),
        keys: Arc::new(Vec::new()),
        log_key: "log".into(),
    }
}

fn as_counter(v: &[u8]) -> i64 {
    if v.is_empty() {
        return 0;
    }
    String::from_utf8_lossy(v)
        .parse()
        .unwrap_or_else(|_| panic!("counter is not a number: {}", show(v)))
}

/// The checkers on everything recorded; panics with the explanation unless linearizable.
fn assert_history_linearizable(sh: &Shared, log: &[u8], what: &str) -> String {
    let history = without_unapplied_appends(&sh.recorder.history(), "log", log);
    let checked = check_history(&history, "log", log);
    if !checked.problems.is_empty() {
        let path =
            std::env::temp_dir().join(format!("kvd-crash-history-{}.txt", std::process::id()));
        let _ = fs::write(&path, checker::format_history(history.ops()));
        panic!(
            "{what}: {}\n{}\n(whole history in {})",
            checked.summary,
            checked.problems.join("\n"),
            path.display()
        );
    }
    checked.summary.trim().to_string()
}

// ---------------------------------------------------------------- kill -9 under load

#[test]
fn single_node_kill9_under_load_loses_nothing_and_applies_nothing_twice() {
    let _serial = serial();
    let started = Instant::now();
    let mut rng = Rng::new(seed());
    // Frequent log compaction, so kills also land in the middle of one.
    let mut node = Node::single(&["--compact-entries", "300", "--compact-keep", "30"]);
    let sh = shared(vec![node.client_addr()]);
    let acks = Arc::new(Acks::default());
    let id = node.info_field("raft", "raft_node_id").unwrap();
    let mut term = 0;
    let n = cycles();
    for cycle in 0..n {
        let writers = Writers::start(3, &mut rng, &sh, &acks);
        std::thread::sleep(rng.millis(50, 1500));
        node.kill9();
        writers.stop();
        node.restart();
        // From the first PONG on, reads see every acknowledged write (or are refused).
        let mut c = node.raw();
        let read = |c: &mut RawConn, key: &str| -> Vec<u8> {
            poll_until(IO_TIMEOUT, "a read that is not refused", || {
                let r = c.call(&["GET", key]);
                (!r.starts_with(b"-")).then_some(r)
            })
        };
        let counter = bulk(&read(&mut c, "counter"));
        let log = bulk(&read(&mut c, "log"));
        let problems = acks.check(as_counter(&counter), &log);
        assert!(problems.is_empty(), "after kill -9 #{cycle}: {problems:#?}");
        node.wait_role("leader", LEADER_TIMEOUT);
        let info = node.info("raft").unwrap();
        assert_eq!(parse_info_field(&info, "raft_node_id"), Some(id.clone()));
        let t: u64 = parse_info_field(&info, "raft_term")
            .unwrap()
            .parse()
            .unwrap();
        assert!(t >= term, "term went back from {term} to {t}");
        term = t;
        let applied: u64 = parse_info_field(&info, "raft_applied_index")
            .unwrap()
            .parse()
            .unwrap();
        let commit: u64 = parse_info_field(&info, "raft_commit_index")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            applied <= commit,
            "applied {applied} > commit {commit}: {info}"
        );
    }
    // A last read through the history, so the checker sees the final state too.
    let counter = final_read(&mut rng, &sh, 900, "counter", RECOVERY).unwrap();
    let log = final_read(&mut rng, &sh, 901, "log", RECOVERY).unwrap();
    let problems = acks.check(as_counter(&counter), &log);
    assert!(problems.is_empty(), "at the end: {problems:#?}");
    let report = assert_history_linearizable(&sh, &log, "single node kill -9");
    eprintln!(
        "crash single node: {n} kill -9 cycles in {:?}; {}; {report}",
        started.elapsed(),
        acks.summary(&counter),
    );
}

/// The value of a bulk reply (empty for nil).
fn bulk(reply: &[u8]) -> Vec<u8> {
    if reply.starts_with(b"$-1") {
        return Vec::new();
    }
    let start = reply.iter().position(|&b| b == b'\n').unwrap() + 1;
    reply[start..reply.len() - 2].to_vec()
}

#[test]
fn cluster_kill9_under_load_loses_nothing_and_applies_nothing_twice() {
    let _serial = serial();
    let started = Instant::now();
    let mut rng = Rng::new(seed());
    let mut w = World::start(3, NODE_FLAGS);
    let sh = Shared {
        addrs: w.addrs.clone(),
        ..shared(Vec::new())
    };
    let acks = Arc::new(Acks::default());
    let writers = Writers::start(4, &mut rng, &sh, &acks);
    let n = cycles();
    let mut leader_kills = 0;
    for cycle in 0..n {
        std::thread::sleep(rng.millis(300, 2000));
        let leader = w.leader();
        let victim = match leader {
            Some(l) if rng.chance(40) => l,
            _ => *rng.pick(&w.members()),
        };
        leader_kills += usize::from(Some(victim) == leader);
        let info = w.info(victim).unwrap_or_default();
        let id = parse_info_field(&info, "raft_node_id");
        let term: u64 = parse_info_field(&info, "raft_term")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        w.kill(victim);
        std::thread::sleep(rng.millis(0, 1500));
        w.restart(victim);
        // Back cleanly: same identity, term not behind, rejoins as follower or leader.
        let info = poll_until(RECOVERY, "the restarted node to rejoin", || {
            let info = w.info(victim)?;
            matches!(
                parse_info_field(&info, "raft_role").as_deref(),
                Some("follower" | "leader")
            )
            .then_some(info)
        });
        assert_eq!(parse_info_field(&info, "raft_node_id"), id, "cycle {cycle}");
        let t: u64 = parse_info_field(&info, "raft_term")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            t >= term,
            "cycle {cycle}: term went back from {term} to {t}"
        );
        // A linearizable read through the restarted node sees every write acknowledged before
        // it was sent.
        let acked_before = acks.incr_acked.load(Ordering::SeqCst) as i64;
        let addr = w.slots[victim].node.client_addr();
        let value = poll_until(
            RECOVERY,
            "a linearizable read on the restarted node",
            || {
                let mut c = Client::connect(&addr, CLIENT_TIMEOUT, CLIENT_TIMEOUT).ok()?;
                c.call(&["CONSISTENCY", "LINEARIZABLE"]).ok()?;
                match c.call(&["GET", "counter"]).ok()? {
                    Reply::Bulk(v) => Some(as_counter(&v.unwrap_or_default())),
                    _ => None,
                }
            },
        );
        assert!(
            value >= acked_before,
            "cycle {cycle}: linearizable read on the restarted {} saw counter {value} < \
             {acked_before} INCRs acknowledged before it",
            w.name(victim)
        );
    }
    writers.stop();
    w.wait_agreed_leader();
    let counter = final_read(&mut rng, &sh, 900, "counter", RECOVERY).unwrap();
    let log = final_read(&mut rng, &sh, 901, "log", RECOVERY).unwrap();
    let problems = acks.check(as_counter(&counter), &log);
    if !problems.is_empty() {
        panic!(
            "cluster kill -9: {problems:#?}\n--- faults ---\n{}\n{}",
            w.log.lines.join("\n"),
            w.dump_logs(60)
        );
    }
    let digest = w.wait_converged();
    let report = assert_history_linearizable(&sh, &log, "cluster kill -9");
    eprintln!(
        "crash 3 nodes: {n} kill -9 cycles ({leader_kills} of the leader) in {:?}; {}; \
         digest {digest}; {report}",
        started.elapsed(),
        acks.summary(&counter),
    );
}

// ---------------------------------------------------------------- damaged database files

const PAGE: usize = 4096;

/// Asserts the start was refused with a non-zero exit and one `kvd:` line naming the problem.
#[track_caller]
fn assert_refused(node: &mut Node, what: &str) -> String {
    match node.start_or_exit(START_TIMEOUT) {
        Started::Exited { status, output } => {
            let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
            assert!(!status.success(), "{what}: exit status {status:?}");
            assert!(
                lines.len() == 1 && lines[0].starts_with("kvd: "),
                "{what}: expected one 'kvd:' line, got:\n{output}"
            );
            lines[0].to_string()
        }
        Started::Serving(_) => panic!("{what}: kvd started on a damaged database"),
    }
}

#[test]
fn damaged_or_missing_state_database_is_refused_at_start() {
    damaged_or_missing_file_is_refused_at_start("kvd.redb");
}

#[test]
fn damaged_or_missing_log_database_is_refused_at_start() {
    damaged_or_missing_file_is_refused_at_start("raft-log.redb");
}

/// The data dir's database file `file` (the state or the log), damaged in several ways after a
/// clean stop: each start is refused with one line, or serves exactly what was acknowledged.
fn damaged_or_missing_file_is_refused_at_start(file: &str) {
    let _serial = serial();
    let mut node = Node::single(&[]);
    let digest = {
        let mut con = node.conn();
        for i in 0..300 {
            let v = format!("{i}-{}", "v".repeat(i % 7 * 150));
            let _: () = q(&mut con, &["SET", &format!("key{i}"), &v]);
        }
        let d: String = q(&mut con, &["DIGEST"]);
        d
    };
    assert_eq!(node.sigterm().code(), Some(0));
    let db = node.data_dir.join(file);
    let pristine = fs::read(&db).unwrap();
    // The log's seal as it was too: a start served on a harmlessly damaged copy commits on,
    // and the seal then rightly refuses the older pristine log (restoring a data dir is
    // restoring all of it).
    let seal = node.data_dir.join("raft-log.seal");
    let pristine_seal = fs::read(&seal).unwrap();
    let restore_seal = || fs::write(&seal, &pristine_seal).unwrap();
    let restore = || {
        fs::write(&db, &pristine).unwrap();
        restore_seal();
    };
    let nonzero_pages: Vec<usize> = (1..pristine.len() / PAGE)
        .filter(|&p| pristine[p * PAGE..(p + 1) * PAGE].iter().any(|&b| b != 0))
        .collect();
    assert!(
        nonzero_pages.len() > 3,
        "{} non-zero pages",
        nonzero_pages.len()
    );
    let mut report = Vec::new();

    // Truncated: to half, and to nothing.
    fs::write(&db, &pristine[..pristine.len() / 2]).unwrap();
    report.push((
        "truncated to half",
        assert_refused(&mut node, "truncated to half"),
    ));
    fs::write(&db, b"").unwrap();
    report.push((
        "truncated to 0",
        assert_refused(&mut node, "truncated to 0"),
    ));

    // Bytes flipped in the middle of every non-zero page but the header.
    let mut damaged = pristine.clone();
    for &p in &nonzero_pages {
        for b in &mut damaged[p * PAGE + PAGE / 2..p * PAGE + PAGE / 2 + 16] {
            *b ^= 0x5A;
        }
    }
    fs::write(&db, &damaged).unwrap();
    report.push((
        "flipped in every page",
        assert_refused(&mut node, "bytes flipped"),
    ));

    // Deleted, with the kvd.dir marker still there.
    fs::remove_file(&db).unwrap();
    assert!(node.data_dir.join("kvd.dir").exists());
    report.push((
        "deleted",
        assert_refused(&mut node, &format!("deleted {file}")),
    ));
    assert!(
        !db.exists(),
        "a refused start must not create a new database"
    );

    // One page at a time: refused, or (a page no longer in use) served with every key intact;
    // never served with different data.
    let mut rng = Rng::new(seed());
    let (mut refused, mut harmless) = (0, 0);
    for _ in 0..8 {
        let p = *rng.pick(&nonzero_pages);
        let mut damaged = pristine.clone();
        let at = p * PAGE + rng.below(PAGE - 16);
        for b in &mut damaged[at..at + 8] {
            *b ^= 0xA5;
        }
        fs::write(&db, &damaged).unwrap();
        restore_seal();
        match node.start_or_exit(START_TIMEOUT) {
            Started::Exited { status, output } => {
                let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
                assert!(!status.success());
                assert!(
                    lines.len() == 1 && lines[0].starts_with("kvd: "),
                    "page {p} byte {at}: expected one 'kvd:' line, got:\n{output}"
                );
                refused += 1;
            }
            Started::Serving(_child) => {
                let got = poll_until(IO_TIMEOUT, "DIGEST on the damaged node", || {
                    let r = node.raw().call(&["DIGEST"]);
                    (!r.starts_with(b"-")).then(|| String::from_utf8_lossy(&bulk(&r)).into_owned())
                });
                assert_eq!(
                    got, digest,
                    "page {p} byte {at} flipped: kvd started and serves different data"
                );
                harmless += 1;
            }
        }
    }
    restore();
    node.restart();
    let got: String = q(&mut node.conn(), &["DIGEST"]);
    assert_eq!(got, digest, "the restored database");
    for (what, line) in &report {
        eprintln!("damaged {file}, {what}: {line}");
    }
    eprintln!(
        "damaged {file}: single flipped pages: {refused} refused, {harmless} unused pages \
         (served intact); {} non-zero pages of {}",
        nonzero_pages.len(),
        pristine.len() / PAGE
    );
}

/// redb's header holds two commit slots; the god byte (offset 9) says which is the primary.
const REDB_GOD_BYTE: usize = 9;
const REDB_SLOT0: usize = 64;
const REDB_SLOT_SIZE: usize = 128;

/// One bit flipped in the primary commit slot of the header (page 0) after a kill -9: kvd must
/// refuse the file, or serve every acknowledged write.
///
/// With redb's one-phase commit, redb takes a primary slot with a bad checksum for a commit torn
/// by a crash and falls back to the secondary slot, the previous transaction: a node would start
/// without its last durable transaction (the last acknowledged SET, and in a cluster log
/// entries and a vote it had acknowledged as persisted). A torn header is only possible for a
/// commit that was never acknowledged, but a damaged one is not. The state database uses
/// redb's two-phase commit, which refuses it ("Primary is corrupted despite 2-phase commit");
/// the log commits in one phase and seals each durable commit (`kvd::log_db`), so the
/// fallback shows as a log behind its seal and is refused.
#[test]
fn damaged_header_commit_slot_of_the_log_is_refused_or_loses_nothing() {
    damaged_header_commit_slot_is_refused_or_loses_nothing("raft-log.redb");
}

#[test]
fn damaged_header_commit_slot_of_the_state_is_refused_or_loses_nothing() {
    damaged_header_commit_slot_is_refused_or_loses_nothing("kvd.redb");
}

fn damaged_header_commit_slot_is_refused_or_loses_nothing(file: &str) {
    let _serial = serial();
    let mut node = Node::single(&[]);
    let digest = {
        let mut con = node.conn();
        for i in 0..50 {
            let _: () = q(&mut con, &["SET", &format!("key{i}"), "v"]);
        }
        let d: String = q(&mut con, &["DIGEST"]);
        d
    };
    node.kill9();
    let db = node.data_dir.join(file);
    let pristine = fs::read(&db).unwrap();
    let primary = usize::from(pristine[REDB_GOD_BYTE] & 1);
    let mut damaged = pristine.clone();
    // A bit of the primary slot's root checksum: the slot's own checksum no longer matches.
    damaged[REDB_SLOT0 + primary * REDB_SLOT_SIZE + 20] ^= 0x01;
    fs::write(&db, &damaged).unwrap();
    match node.start_or_exit(START_TIMEOUT) {
        Started::Exited { status, output } => {
            assert!(!status.success());
            assert!(output.trim().starts_with("kvd: "), "{output}");
        }
        Started::Serving(_child) => {
            let mut c = node.raw();
            let got = poll_until(IO_TIMEOUT, "DIGEST", || {
                let r = c.call(&["DIGEST"]);
                (!r.starts_with(b"-")).then(|| String::from_utf8_lossy(&bulk(&r)).into_owned())
            });
            let last = c.call(&["GET", "key49"]);
            assert_eq!(
                got,
                digest,
                "kvd started on a damaged header and serves other data (GET key49 -> {})",
                show(&last)
            );
        }
    }
}
