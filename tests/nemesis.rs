//! kvd under faults, in the manner of Jepsen and etcd's robustness tests: concurrent clients run
//! against a 3-node (and a 5-node) cluster while a nemesis, driven by a seeded RNG, kills nodes
//! with `kill -9` (the leader included), pauses them with SIGSTOP/SIGCONT, partitions the
//! network (isolated node, majority/minority, one-way cuts, a bridge) and changes membership
//! (LEAVE of a member, JOIN of a fresh node). Afterwards: the history is linearizable (checked
//! per key by `tests/checker`, the APPEND key also directly by `nemesis/appendlog.rs`), no
//! acknowledged write is lost, APPEND tokens are each there once, every member converges to the
//! same data and member list, and the members agree on a leader.
//!
//! Partitions use one TCP proxy per node (`nemesis/net.rs`), not iptables, so the tests run
//! unprivileged in CI: each node advertises its proxy's port as its raft address, and the proxy
//! drops or kills connections on the links the partition table blocks.
//!
//! Seeds and length: `KVD_NEMESIS_SEEDS=1,2,3` (default: a fixed list) and `KVD_NEMESIS_SECS`
//! (default 25 s of faults per run); `KVD_NEMESIS_FAULTS=membership,kill` narrows the fault kinds
//! (kill, pause, partition, combo, membership). A soak, in more seeds rather than longer runs:
//! `KVD_NEMESIS_SECS=300 KVD_NEMESIS_SEEDS=7,8,9 cargo test --release --test nemesis --
//! --nocapture`. The history keeps every value read: a 300 s run of the 3-node test reached
//! 8.5 GB in this process (APPEND clients read their ever-growing key less often as it grows,
//! `workload::LOG_READ_BYTES`, so this grows linearly with the length). Each run prints a summary
//! (faults by kind, ops by outcome, checker verdicts and times); a failure also prints its seed,
//! the fault log, the checker's explanation and the nodes' logs, and keeps the data dirs.

mod checker;
mod common;
#[path = "nemesis/mod.rs"]
mod nemesis;

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use nemesis::rng::{run_secs, seeds};
use nemesis::run::{RunConfig, run};

/// The runs share a 2-core CI machine: one at a time, so timeouts measure kvd, not contention.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn three_nodes_under_faults() {
    let _serial = serial();
    for seed in seeds(&[1, 2, 3]) {
        run(&RunConfig {
            name: "3 nodes",
            nodes: 3,
            seed,
            duration: run_secs(25),
            membership: true,
            register_clients: 4,
            append_clients: 2,
            keys: 4,
            lease_clients: 1,
        });
    }
}

#[test]
fn five_nodes_under_faults() {
    let _serial = serial();
    for seed in seeds(&[101]) {
        run(&RunConfig {
            name: "5 nodes",
            nodes: 5,
            seed,
            duration: run_secs(25),
            membership: true,
            register_clients: 4,
            append_clients: 2,
            keys: 4,
            lease_clients: 1,
        });
    }
}

/// How a lone node loses its quorum in [`lost_quorum`].
#[derive(Clone, Copy, Debug)]
enum QuorumLoss {
    /// The leader is partitioned away from both followers.
    PartitionLeader,
    /// Both followers are paused (SIGSTOP), the leader runs on alone.
    PauseFollowers,
}

/// The leader loses its majority; clients keep writing to it (SET, APPEND) and reading
/// linearizably for a few seconds. No write may be acknowledged; after the heal, no write the
/// minority refused may be visible (one with an unknown outcome may), and the whole history,
/// with reads before, during and after, is linearizable.
fn lost_quorum(how: QuorumLoss) {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use checker::{Budget, Kind, Recorder};
    use nemesis::client::{Client, Fate, Reply};
    use nemesis::rng::Rng;
    use nemesis::run::NODE_FLAGS;
    use nemesis::workload::{self, CLIENT_TIMEOUT, Ledger, Shared};
    use nemesis::world::{RECOVERY, World};

    const WRITERS: usize = 6;
    const PIPELINE: usize = 6;
    const KEYS: [&str; 3] = ["q0", "q1", "q2"];
    let _serial = serial();
    let started = Instant::now();
    let mut w = World::start(3, NODE_FLAGS);
    let recorder = Recorder::new();
    let leader = w.leader().expect("a leader");
    let laddr = w.slots[leader].node.client_addr();
    {
        let mut c = Client::connect(&laddr, CLIENT_TIMEOUT, CLIENT_TIMEOUT).unwrap();
        for k in KEYS {
            let p = recorder.invoke(900, k, Kind::Set(b"before".to_vec()));
            assert_eq!(
                c.call(&["SET", k, "before"]).unwrap(),
                Reply::Status("OK".into())
            );
            p.ok();
        }
    }
    let others: Vec<usize> = w.members().into_iter().filter(|&i| i != leader).collect();
    match how {
        QuorumLoss::PartitionLeader => w.partition(&[leader]),
        QuorumLoss::PauseFollowers => {
            for &i in &others {
                w.pause(i);
            }
        }
    }

    // Writers on the minority side.
    let until = Instant::now() + Duration::from_secs(6);
    let handles: Vec<_> = (0..WRITERS)
        .map(|id| {
            let (recorder, addr) = (recorder.clone(), laddr.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut ledger = Ledger::default();
                let mut refused_values = Vec::new();
                let mut seq = 0;
                let mut reasons = Vec::new();
                let mut con: Option<Client> = None;
                while Instant::now() < until {
                    let Some(c) = con.as_mut() else {
                        con = Client::connect(&addr, CLIENT_TIMEOUT, CLIENT_TIMEOUT).ok();
                        if let Some(c) = con.as_mut() {
                            let r = c.call(&["CONSISTENCY", "LINEARIZABLE"]);
                            assert!(matches!(r, Ok(Reply::Status(ref s)) if s == "OK"), "{r:?}");
                        }
                        continue;
                    };
                    // A pipeline of writes and reads: kvd proposes the writes together.
                    let mut batch = Vec::new();
                    for _ in 0..=PIPELINE {
                        seq += 1;
                        let key = KEYS[seq % KEYS.len()];
                        let value = format!("m{id}-{seq}");
                        // Writes only, then a read on its own: kvd answers a pipeline's
                        // replies together once a read after writes is done, which could
                        // outlast the client's timeout.
                        let op = if seq % (PIPELINE + 1) == 0 {
                            2
                        } else {
                            (id + seq) % 2
                        };
                        let (kind, argv, op_key) = match op {
                            0 => (
                                Kind::Set(value.clone().into_bytes()),
                                vec!["SET".to_string(), key.into(), value.clone()],
                                key,
                            ),
                            1 => (
                                Kind::Append(format!("{value},").into_bytes()),
                                vec!["APPEND".into(), "qlog".into(), format!("{value},")],
                                "qlog",
                            ),
                            _ => (Kind::Get, vec!["GET".into(), key.into()], key),
                        };
                        batch.push((kind, argv, op_key, value));
                    }
                    let read = batch.pop().expect("a read last");
                    let cmds: Vec<Vec<String>> = batch.iter().map(|b| b.1.clone()).collect();
                    let mut pending: Vec<_> = batch
                        .iter()
                        .map(|(kind, _, op_key, _)| {
                            Some(recorder.invoke(id, *op_key, kind.clone()))
                        })
                        .collect();
                    let mut result = c.send_pipeline(&cmds);
                    for (n, (kind, argv, op_key, value)) in batch.into_iter().enumerate() {
                        let p = pending[n].take().expect("one reply per op");
                        let reply = result
                            .as_ref()
                            .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))
                            .and_then(|()| c.read_reply());
                        if let Err(e) = &reply {
                            result = Err(std::io::Error::new(e.kind(), e.to_string()));
                        }
                        let token = format!("{value},");
                        match (Fate::of(reply), &kind) {
                            (Fate::Done(Reply::Bulk(v)), Kind::Get) => p.value(v),
                            (Fate::Done(r), Kind::Set(_) | Kind::Append(_)) => {
                                acked.push(format!("{argv:?} -> {r:?}"));
                                p.unknown();
                            }
                            (Fate::Done(r), _) => panic!("{argv:?} -> {r:?}"),
                            (Fate::Failed(why), _) => {
                                reasons.push(why.chars().take(40).collect::<String>());
                                p.failed();
                                match &kind {
                                    Kind::Set(_) => refused_values.push((op_key, value)),
                                    Kind::Append(_) => ledger.failed.push(token),
                                    _ => {}
                                }
                            }
                            (Fate::Unknown { why, unexpected }, _) => {
                                assert!(!unexpected, "{argv:?} -> {why}");
                                reasons.push(why.chars().take(40).collect::<String>());
                                p.unknown();
                                if let Kind::Append(_) = kind {
                                    ledger.unknown.push(token);
                                }
                            }
                        }
                    }
                    if result.is_err() {
                        con = None;
                        continue;
                    }
                    let p = recorder.invoke(id, read.2, Kind::Get);
                    match c.call(&read.1) {
                        Ok(Reply::Bulk(v)) => p.value(v),
                        Ok(Reply::Error(e)) if e.starts_with("CLUSTERDOWN") => {
                            reasons.push(e.chars().take(40).collect());
                            p.failed();
                        }
                        Ok(other) => panic!("{:?} -> {other:?}", read.1),
                        Err(e) => {
                            reasons.push(format!("io: {e}").chars().take(40).collect());
                            p.unknown();
                            con = None;
                        }
                    }
                }
                (acked, ledger, refused_values, reasons)
            })
        })
        .collect();
    let mut acked = Vec::new();
    let mut ledger = Ledger::default();
    let mut refused: Vec<(&str, String)> = Vec::new();
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for h in handles {
        let (a, l, r, why) = h.join().expect("writer panicked");
        for w in why {
            *reasons.entry(w).or_default() += 1;
        }
        acked.extend(a);
        ledger.add(&l);
        refused.extend(r);
    }
    let unknown_sets = recorder
        .history()
        .ops()
        .iter()
        .filter(|op| op.client < 900 && op.is_unknown() && matches!(op.kind, Kind::Set(_)))
        .count();
    match how {
        QuorumLoss::PartitionLeader => w.heal_network(),
        QuorumLoss::PauseFollowers => {
            for &i in &others {
                w.resume(i);
            }
        }
    }
    w.wait_agreed_leader();

    let shared = Shared {
        recorder: recorder.clone(),
        addrs: w.addrs.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        keys: Arc::new(Vec::new()),
        log_key: String::new(),
    };
    let mut rng = Rng::new(7);
    let mut problems: Vec<String> = acked
        .iter()
        .map(|a| format!("write acknowledged without a quorum: {a}"))
        .collect();
    let mut unknown_visible = 0;
    for (n, key) in KEYS.iter().chain(["qlog"].iter()).enumerate() {
        let v = workload::final_read(&mut rng, &shared, 950 + n, key, RECOVERY)
            .unwrap_or_else(|| panic!("final read of {key} failed"));
        let text = String::from_utf8_lossy(&v).into_owned();
        if *key == "qlog" {
            problems.extend(ledger.violations(&v));
            unknown_visible = ledger
                .unknown
                .iter()
                .filter(|t| text.contains(t.as_str()))
                .count();
        } else if refused.iter().any(|(k, val)| k == key && *val == text) {
            problems.push(format!("{key} = {text:?}, a write the minority refused"));
        }
    }
    let history = recorder.history();
    let report = checker::check(&history, &Budget::default());
    eprintln!(
        "lost quorum ({how:?}): {:?}; writes to the minority: SET {} refused, {unknown_sets} \
         unknown; APPEND {} refused, {} unknown ({unknown_visible} of them applied after the heal); {} \
         acknowledged; replies {reasons:?}; checker: \
         {report}",
        started.elapsed(),
        refused.len(),
        ledger.failed.len(),
        ledger.unknown.len(),
        acked.len()
    );
    if !report.is_linearizable() {
        problems.push(format!(
            "checker: {report}\n{}",
            checker::format_history(history.ops())
        ));
    }
    if !problems.is_empty() {
        let logs = w.dump_logs(80);
        let faults = w.log.lines.join("\n");
        panic!(
            "lost quorum ({how:?}) FAILED:\n{}\n--- fault log ---\n{faults}\n{logs}",
            problems.join("\n")
        );
    }
}

#[test]
fn lost_quorum_partitioned_leader_never_acknowledges() {
    lost_quorum(QuorumLoss::PartitionLeader);
}

#[test]
fn lost_quorum_paused_followers_never_acknowledges() {
    lost_quorum(QuorumLoss::PauseFollowers);
}

// ---------------------------------------------------------------- the direct append-log check

mod appendlog_check {
    use crate::checker::{Kind, Op, Outcome};
    use crate::nemesis::appendlog::check;

    fn append(client: usize, token: &str, invoke: u64, complete: Option<u64>, len: i64) -> Op {
        let outcome = if complete.is_some() {
            Outcome::Int(len)
        } else {
            Outcome::Unknown
        };
        Op::new(
            client,
            "log",
            Kind::Append(token.into()),
            invoke,
            complete,
            outcome,
        )
    }

    fn get(client: usize, value: &str, invoke: u64, complete: u64) -> Op {
        let v = (!value.is_empty()).then(|| value.as_bytes().to_vec());
        Op::new(
            client,
            "log",
            Kind::Get,
            invoke,
            Some(complete),
            Outcome::Value(v),
        )
    }

    #[test]
    fn concurrent_appends_and_reads_in_some_order_pass() {
        let ops = vec![
            append(0, "a,", 0, Some(10), 4),
            append(1, "b,", 1, Some(5), 2),
            get(2, "b,", 2, 3),
            get(3, "", 0, 1),
            // Unknown, applied last.
            append(4, "c,", 6, None, 0),
            get(5, "b,a,c,", 20, 21),
        ];
        assert_eq!(check(&ops, b"log", b"b,a,c,"), Ok(6));
    }

    #[test]
    fn real_time_order_violation_is_found() {
        // a completed before b was invoked, yet b comes first in the value.
        let ops = vec![
            append(0, "a,", 0, Some(1), 4),
            append(1, "b,", 2, Some(3), 2),
        ];
        let e = check(&ops, b"log", b"b,a,").unwrap_err();
        assert!(e.contains("completed before"), "{e}");
    }

    #[test]
    fn stale_read_is_found() {
        let ops = vec![append(0, "a,", 0, Some(1), 2), get(1, "", 2, 3)];
        let e = check(&ops, b"log", b"a,").unwrap_err();
        assert!(e.contains("a,"), "{e}");
        // A read of the future: it completed before the APPEND it saw was invoked.
        let ops = vec![get(1, "a,", 0, 1), append(0, "a,", 2, Some(3), 2)];
        assert!(check(&ops, b"log", b"a,").is_err());
    }

    #[test]
    fn wrong_lengths_duplicates_and_strangers_are_found() {
        let ops = vec![append(0, "a,", 0, Some(1), 3)];
        assert!(check(&ops, b"log", b"a,").unwrap_err().contains("length"));
        let ops = vec![append(0, "a,", 0, Some(1), 2)];
        assert!(check(&ops, b"log", b"a,a,").unwrap_err().contains("twice"));
        assert!(
            check(&ops, b"log", b"a,x,")
                .unwrap_err()
                .contains("never sent")
        );
        let ops = vec![append(0, "a,", 0, Some(1), 2), get(1, "x,", 2, 3)];
        assert!(check(&ops, b"log", b"a,").unwrap_err().contains("prefix"));
    }
}
