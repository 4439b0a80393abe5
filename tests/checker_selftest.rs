//! The linearizability checker of `tests/checker` on hand-made histories, on histories generated
//! from a simulated atomic register (linearizable by construction, then broken on purpose), and
//! against a time budget.

mod checker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checker::{Budget, History, Kind, Op, Outcome, Recorder, Report, Verdict, check};

const KEY: &[u8] = b"k";

// ---------------------------------------------------------------- building histories by hand

/// An op on `KEY` that completed with `outcome`.
fn done(client: usize, kind: Kind, invoke: u64, complete: u64, outcome: Outcome) -> Op {
    Op::new(client, KEY, kind, invoke, Some(complete), outcome)
}

/// An op on `KEY` whose outcome is unknown.
fn lost(client: usize, kind: Kind, invoke: u64) -> Op {
    Op::new(client, KEY, kind, invoke, None, Outcome::Unknown)
}

fn set(v: &str) -> Kind {
    Kind::Set(v.into())
}

fn append(v: &str) -> Kind {
    Kind::Append(v.into())
}

fn val(v: &str) -> Outcome {
    Outcome::Value(Some(v.into()))
}

fn nil() -> Outcome {
    Outcome::Value(None)
}

fn run(ops: Vec<Op>) -> Report {
    check(&History::new(ops), &Budget::default())
}

#[track_caller]
fn assert_linearizable(ops: Vec<Op>) {
    run(ops).assert_linearizable();
}

/// Asserts the history is rejected, and returns the explanation.
#[track_caller]
fn assert_rejected(ops: Vec<Op>) -> String {
    let history = History::new(ops);
    let report = check(&history, &Budget::default());
    match report.verdict {
        Verdict::NotLinearizable { explanation, .. } => explanation,
        other => panic!(
            "expected a rejection, got {other}\n{}",
            checker::format_history(history.ops())
        ),
    }
}

// ---------------------------------------------------------------- registers: SET, GET, DEL

#[test]
fn empty_history_is_linearizable() {
    assert_linearizable(vec![]);
}

#[test]
fn overlapping_sets_and_gets_are_linearizable() {
    assert_linearizable(vec![
        done(0, set("a"), 0, 10, Outcome::Ok),
        done(1, set("b"), 5, 15, Outcome::Ok),
        // Sees a, so a was applied before 12 and b after it...
        done(2, Kind::Get, 6, 12, val("a")),
        // ...possibly only after this get too...
        done(2, Kind::Get, 13, 14, val("a")),
        // ...but before this one returned.
        done(3, Kind::Get, 7, 20, val("b")),
        done(2, Kind::Get, 16, 18, val("b")),
        done(0, Kind::Get, 1, 3, nil()),
    ]);
}

#[test]
fn reads_may_see_a_concurrent_write_flicker_only_once() {
    // Concurrent with set(b), a reader may see a then b, but not b then a.
    let base = || {
        vec![
            done(0, set("a"), 0, 10, Outcome::Ok),
            done(1, set("b"), 20, 100, Outcome::Ok),
        ]
    };
    let mut ok = base();
    ok.push(done(2, Kind::Get, 30, 40, val("a")));
    ok.push(done(2, Kind::Get, 50, 60, val("b")));
    assert_linearizable(ok);
    let mut flicker = base();
    flicker.push(done(2, Kind::Get, 30, 40, val("b")));
    flicker.push(done(3, Kind::Get, 50, 60, val("a")));
    assert_rejected(flicker);
}

#[test]
fn stale_read_is_rejected() {
    let explanation = assert_rejected(vec![
        done(0, set("a"), 0, 10, Outcome::Ok),
        done(0, set("b"), 20, 30, Outcome::Ok),
        done(1, Kind::Get, 40, 50, val("a")),
    ]);
    println!("{explanation}");
    // The culprit is the get (#2), which the search could not place after "b".
    assert!(explanation.contains("#2 "), "{explanation}");
    assert!(explanation.contains("state then: \"b\""), "{explanation}");
}

#[test]
fn a_stale_read_among_concurrent_ops_is_explained_by_its_neighbourhood() {
    let mut ops = Vec::new();
    // Forty rounds of a write and two overlapping reads, then one read of a value long gone.
    for round in 0..40_u64 {
        let t = round * 100;
        ops.push(done(0, set(&format!("v{round}")), t, t + 30, Outcome::Ok));
        ops.push(done(
            1,
            Kind::Get,
            t + 10,
            t + 60,
            val(&format!("v{round}")),
        ));
        ops.push(done(
            2,
            Kind::Get,
            t + 40,
            t + 90,
            val(&format!("v{round}")),
        ));
    }
    ops.push(lost(3, set("lost"), 1234));
    ops.push(done(1, Kind::Get, 4000, 4010, val("v20")));
    let history = History::new(ops);
    let report = check(&history, &Budget::default());
    println!("{report}");
    let Verdict::NotLinearizable { explanation, .. } = &report.verdict else {
        panic!("expected a rejection: {report}");
    };
    // The culprit is the last read; the listing stays short.
    assert!(explanation.contains("#121"), "{explanation}");
    assert!(explanation.lines().count() < 50, "{explanation}");
}

#[test]
fn lost_write_is_rejected() {
    assert_rejected(vec![
        done(0, set("x"), 0, 10, Outcome::Ok),
        done(1, Kind::Get, 20, 30, nil()),
    ]);
    assert_rejected(vec![
        done(0, set("old"), 0, 10, Outcome::Ok),
        done(0, set("x"), 20, 30, Outcome::Ok),
        done(1, Kind::Get, 40, 50, val("old")),
        done(1, Kind::Get, 60, 70, val("x")),
    ]);
}

#[test]
fn del_counts_must_match_the_state() {
    assert_linearizable(vec![
        done(0, set("a"), 0, 10, Outcome::Ok),
        done(0, Kind::Del, 20, 30, Outcome::Int(1)),
        done(0, Kind::Del, 40, 50, Outcome::Int(0)),
        done(1, Kind::Get, 60, 70, nil()),
    ]);
    // A second delete of the same value cannot remove anything.
    assert_rejected(vec![
        done(0, set("a"), 0, 10, Outcome::Ok),
        done(0, Kind::Del, 20, 30, Outcome::Int(1)),
        done(1, Kind::Del, 40, 50, Outcome::Int(1)),
    ]);
    // Concurrent deletes: exactly one removes.
    assert_linearizable(vec![
        done(0, set("a"), 0, 10, Outcome::Ok),
        done(1, Kind::Del, 20, 50, Outcome::Int(0)),
        done(2, Kind::Del, 20, 50, Outcome::Int(1)),
    ]);
}

#[test]
fn ops_that_only_touch_in_time_count_as_concurrent() {
    // The clock cannot order a return and a call at the same nanosecond.
    assert_linearizable(vec![
        done(0, set("a"), 0, 10, Outcome::Ok),
        done(1, Kind::Get, 10, 20, nil()),
    ]);
}

// ---------------------------------------------------------------- unknown outcomes

#[test]
fn an_unknown_write_may_or_may_not_be_seen() {
    let base = || vec![done(0, set("a"), 0, 10, Outcome::Ok), lost(0, set("b"), 20)];
    for seen in ["a", "b"] {
        let mut ops = base();
        ops.push(done(1, Kind::Get, 30, 40, val(seen)));
        assert_linearizable(ops);
    }
    // It may take effect long after the client gave up on it.
    let mut late = base();
    late.push(done(1, Kind::Get, 30, 40, val("a")));
    late.push(done(1, Kind::Get, 1000, 1010, val("b")));
    assert_linearizable(late);
    // But once seen it stays (nothing else writes).
    let mut undone = base();
    undone.push(done(1, Kind::Get, 30, 40, val("b")));
    undone.push(done(1, Kind::Get, 50, 60, val("a")));
    assert_rejected(undone);
    // Nobody ever wrote c.
    let mut invented = base();
    invented.push(done(1, Kind::Get, 30, 40, val("c")));
    assert_rejected(invented);
}

#[test]
fn an_unknown_write_cannot_be_seen_before_it_was_sent() {
    assert_rejected(vec![
        done(1, Kind::Get, 0, 5, val("b")),
        lost(0, set("b"), 10),
    ]);
}

#[test]
fn an_unknown_get_constrains_nothing() {
    assert_linearizable(vec![
        done(0, set("a"), 0, 10, Outcome::Ok),
        lost(1, Kind::Get, 20),
        done(1, Kind::Get, 30, 40, val("a")),
    ]);
}

#[test]
fn many_unknown_writes_that_never_happened_do_not_blow_up_a_rejection() {
    // Forty timed-out sets that nobody saw, then a stale read: without subsumption in the cache
    // the search would try every subset of the forty.
    let mut ops = vec![done(0, set("v0"), 0, 10, Outcome::Ok)];
    for i in 0..40 {
        ops.push(lost(1 + i % 4, set(&format!("lost{i}")), 20 + i as u64));
    }
    ops.push(done(0, set("v1"), 100, 110, Outcome::Ok));
    ops.push(done(0, Kind::Get, 120, 130, val("v1")));
    ops.push(done(0, set("v2"), 140, 150, Outcome::Ok));
    ops.push(done(0, Kind::Get, 160, 170, val("v1")));
    let started = Instant::now();
    assert_rejected(ops);
    assert!(started.elapsed() < Duration::from_secs(10));
}

// ---------------------------------------------------------------- APPEND and INCR

#[test]
fn appends_apply_once_and_in_order() {
    let base = || {
        vec![
            done(0, append("a"), 0, 10, Outcome::Int(1)),
            done(0, append("b"), 20, 30, Outcome::Int(2)),
        ]
    };
    let read = |seen: &str| {
        let mut ops = base();
        ops.push(done(1, Kind::Get, 40, 50, val(seen)));
        ops
    };
    assert_linearizable(read("ab"));
    assert_rejected(read("ba"));
    // The first append applied twice (a retried write).
    assert_rejected(read("aab"));

    // Concurrent appends go in either order, and the lengths say which.
    assert_linearizable(vec![
        done(0, append("a"), 0, 10, Outcome::Int(2)),
        done(1, append("b"), 5, 15, Outcome::Int(1)),
        done(2, Kind::Get, 20, 30, val("ba")),
    ]);
    assert_rejected(vec![
        done(0, append("a"), 0, 10, Outcome::Int(1)),
        done(1, append("b"), 5, 15, Outcome::Int(2)),
        done(2, Kind::Get, 20, 30, val("ba")),
    ]);
    // An unknown append can appear in the middle, later than it was sent.
    assert_linearizable(vec![
        lost(0, append("a"), 0),
        done(1, append("b"), 5, 15, Outcome::Int(1)),
        done(1, append("c"), 20, 30, Outcome::Int(3)),
        done(2, Kind::Get, 40, 50, val("bac")),
    ]);
}

#[test]
fn increments_apply_once() {
    assert_linearizable(vec![
        done(0, Kind::Incr, 0, 10, Outcome::Int(1)),
        done(1, Kind::Incr, 20, 30, Outcome::Int(2)),
        done(0, Kind::Get, 40, 50, val("2")),
    ]);
    // Two increments both answering 2: one was applied twice or one was lost.
    assert_rejected(vec![
        done(0, Kind::Incr, 0, 10, Outcome::Int(1)),
        done(1, Kind::Incr, 20, 30, Outcome::Int(2)),
        done(2, Kind::Incr, 40, 50, Outcome::Int(2)),
    ]);
    // A duplicated increment seen by a read.
    assert_rejected(vec![
        done(0, Kind::Incr, 0, 10, Outcome::Int(1)),
        done(1, Kind::Incr, 20, 30, Outcome::Int(2)),
        done(2, Kind::Get, 40, 50, val("3")),
    ]);
    // An unknown increment explains a jump.
    assert_linearizable(vec![
        done(0, Kind::Incr, 0, 10, Outcome::Int(1)),
        lost(1, Kind::Incr, 15),
        done(2, Kind::Incr, 40, 50, Outcome::Int(3)),
    ]);
}

#[test]
fn an_increment_of_a_non_integer_changes_nothing() {
    // A known INCR of "x" would have failed and not been recorded; an unknown one may have met
    // the error.
    assert_linearizable(vec![
        done(0, set("x"), 0, 10, Outcome::Ok),
        lost(1, Kind::Incr, 20),
        done(0, Kind::Get, 30, 40, val("x")),
    ]);
    assert_rejected(vec![
        done(0, set("x"), 0, 10, Outcome::Ok),
        done(1, Kind::Incr, 20, 30, Outcome::Int(1)),
    ]);
}

// ---------------------------------------------------------------- keys, reports, budget

#[test]
fn keys_are_checked_independently_and_the_failing_one_is_named() {
    let mut ops = vec![
        Op::new(0, "good", set("a"), 0, Some(10), Outcome::Ok),
        Op::new(1, "good", Kind::Get, 20, Some(30), val("a")),
        Op::new(0, "bad", set("a"), 0, Some(10), Outcome::Ok),
        Op::new(1, "bad", Kind::Get, 20, Some(30), val("b")),
    ];
    // Each key alone is fine on its own register: "a" on good, nil on other.
    ops.push(Op::new(2, "other", Kind::Get, 5, Some(6), nil()));
    let report = run(ops);
    match &report.verdict {
        Verdict::NotLinearizable { key, .. } => assert_eq!(key, b"bad"),
        other => panic!("expected a rejection of \"bad\", got {other}"),
    }
    assert_eq!(report.keys.len(), 3);
    assert_eq!(report.ops(), 5);
}

#[test]
#[should_panic(expected = "malformed op")]
fn a_reply_that_does_not_fit_the_command_is_a_harness_bug() {
    History::new(vec![done(0, Kind::Get, 0, 10, Outcome::Int(3))]);
}

#[test]
fn running_out_of_budget_is_inconclusive() {
    let mut rng = Rng(7);
    let mut ops = simulate(&mut rng, &perf_sim(WORKLOADS[0].1, WORKLOADS[0].2));
    // Break it near the end so that the search has to exhaust everything before.
    let last_get = ops
        .iter()
        .rposition(|op| op.kind == Kind::Get && !op.is_unknown())
        .unwrap();
    ops[last_get].outcome = val("never#written");
    let budget = Budget {
        steps_per_key: 500,
        time: Duration::from_secs(60),
    };
    let report = check(&History::new(ops), &budget);
    assert!(
        matches!(report.verdict, Verdict::Inconclusive { .. }),
        "{report}"
    );
}

#[test]
fn recorder_collects_a_linearizable_history_from_threads() {
    let recorder = Recorder::new();
    let register: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>> = Arc::default();
    std::thread::scope(|s| {
        for client in 0..4 {
            let recorder = recorder.clone();
            let register = register.clone();
            s.spawn(move || {
                let mut rng = Rng(client as u64 + 1);
                for i in 0..200 {
                    let key = format!("k{}", rng.below(3));
                    let value = format!("c{client}-{i}").into_bytes();
                    match rng.below(4) {
                        0 => {
                            let p = recorder.invoke(client, key.clone(), Kind::Set(value.clone()));
                            register.lock().unwrap().insert(key.into_bytes(), value);
                            p.ok();
                        }
                        1 => {
                            let p =
                                recorder.invoke(client, key.clone(), Kind::Append(value.clone()));
                            let len = {
                                let mut r = register.lock().unwrap();
                                let v = r.entry(key.into_bytes()).or_default();
                                v.extend_from_slice(&value);
                                v.len()
                            };
                            p.int(len as i64);
                        }
                        2 => {
                            // A timeout: applied or not, the client does not know.
                            let p = recorder.invoke(client, key.clone(), Kind::Set(value.clone()));
                            if rng.below(2) == 0 {
                                register.lock().unwrap().insert(key.into_bytes(), value);
                            }
                            p.unknown();
                        }
                        _ => {
                            let p = recorder.invoke(client, key.clone(), Kind::Get);
                            let v = register.lock().unwrap().get(key.as_bytes()).cloned();
                            p.value(v);
                        }
                    }
                }
                // Refused for sure: not part of the history.
                recorder.invoke(client, "k0", Kind::Incr).failed();
            });
        }
    });
    let history = recorder.history();
    assert_eq!(history.len(), 800);
    let report = check(&history, &Budget::default());
    report.assert_linearizable();
}

// ---------------------------------------------------------------- generated histories

/// splitmix64: a small deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The shape of a simulated run.
struct Sim {
    clients: usize,
    ops: usize,
    keys: usize,
    /// Percent of ops whose reply is lost.
    unknown: u64,
    /// Relative weights of set, get, append, del, incr.
    mix: [u64; 5],
    /// Longest op and longest pause between a client's ops, in ns.
    max_duration: u64,
    max_gap: u64,
}

/// Runs `sim.clients` clients against an atomic register. Each op takes effect at a random
/// moment within its interval; an op whose reply is lost takes effect at a random moment after
/// its invoke (possibly much later) or never. The result is linearizable by construction.
fn simulate(rng: &mut Rng, sim: &Sim) -> Vec<Op> {
    let mut clock = vec![0_u64; sim.clients];
    // (op, moment it takes effect)
    let mut ops: Vec<(Op, Option<u64>)> = Vec::with_capacity(sim.ops);
    let total: u64 = sim.mix.iter().sum();
    for i in 0..sim.ops {
        let client = rng.below(sim.clients as u64) as usize;
        let invoke = clock[client] + rng.below(sim.max_gap + 1);
        let duration = 1 + rng.below(sim.max_duration);
        let complete = invoke + duration;
        clock[client] = complete;
        let key = format!("k{}", rng.below(sim.keys as u64));
        let mut pick = rng.below(total);
        let mut which = 0;
        while pick >= sim.mix[which] {
            pick -= sim.mix[which];
            which += 1;
        }
        let kind = match which {
            0 => Kind::Set(format!("c{client}v{i}").into_bytes()),
            1 => Kind::Get,
            2 => Kind::Append(format!("{i},").into_bytes()),
            3 => Kind::Del,
            _ => Kind::Incr,
        };
        let (complete, effect) = if rng.chance(sim.unknown) {
            let effect = match rng.below(3) {
                0 => None,
                1 => Some(invoke + rng.below(duration + 1)),
                _ => Some(invoke + rng.below(20 * sim.max_duration)),
            };
            (None, effect)
        } else {
            (Some(complete), Some(invoke + rng.below(duration + 1)))
        };
        ops.push((
            Op::new(client, key, kind, invoke, complete, Outcome::Unknown),
            effect,
        ));
    }

    let mut order: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].1.is_some()).collect();
    order.sort_by_key(|&i| ops[i].1);
    let mut register: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut refused = vec![false; ops.len()];
    for i in order {
        let op = &mut ops[i].0;
        let value = register.get(&op.key).cloned();
        let outcome = match &op.kind {
            Kind::Set(v) => {
                register.insert(op.key.clone(), v.clone());
                Outcome::Ok
            }
            Kind::Get => Outcome::Value(value),
            Kind::Append(v) => {
                let mut new = value.unwrap_or_default();
                new.extend_from_slice(v);
                let len = new.len() as i64;
                register.insert(op.key.clone(), new);
                Outcome::Int(len)
            }
            Kind::Del => Outcome::Int(i64::from(register.remove(&op.key).is_some())),
            Kind::Incr => {
                let current = match &value {
                    None => Some(0),
                    Some(v) => std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok()),
                };
                match current {
                    Some(n) => {
                        register.insert(op.key.clone(), (n + 1).to_string().into_bytes());
                        Outcome::Int(n + 1)
                    }
                    None => {
                        refused[i] = true;
                        Outcome::Unknown
                    }
                }
            }
        };
        if op.complete.is_some() {
            op.outcome = outcome;
        }
    }
    ops.into_iter()
        .enumerate()
        // An INCR the server refused: a known one is left out, as the recorder would.
        .filter(|(i, (op, _))| !(refused[*i] && op.complete.is_some()))
        .map(|(_, (op, _))| op)
        .collect()
}

#[test]
fn generated_linearizable_histories_pass_and_impossible_reads_fail() {
    let mut sometimes_rejected = (0, 0);
    for seed in 0..300 {
        let mut rng = Rng(seed);
        let sim = Sim {
            clients: 1 + rng.below(6) as usize,
            ops: 10 + rng.below(80) as usize,
            keys: 1 + rng.below(3) as usize,
            unknown: rng.below(15),
            mix: [3, 4, 2, 1, 1],
            max_duration: 100,
            max_gap: 1 + rng.below(100),
        };
        let ops = simulate(&mut rng, &sim);
        let history = History::new(ops.clone());
        let report = check(&history, &Budget::default());
        assert!(
            report.is_linearizable(),
            "seed {seed}: {report}\n{}",
            checker::format_history(history.ops())
        );

        let gets: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].kind == Kind::Get && !ops[i].is_unknown())
            .collect();
        if gets.is_empty() {
            continue;
        }
        let target = gets[rng.below(gets.len() as u64) as usize];
        // Nobody writes '#': this read is impossible.
        let mut invented = ops.clone();
        invented[target].outcome = val("never#written");
        let report = check(&History::new(invented), &Budget::default());
        assert!(
            matches!(report.verdict, Verdict::NotLinearizable { .. }),
            "seed {seed}: {report}"
        );

        // Another value some op did write: often, not always, impossible.
        let written: Vec<Vec<u8>> = ops
            .iter()
            .filter_map(|op| match &op.kind {
                Kind::Set(v) => Some(v.clone()),
                _ => None,
            })
            .collect();
        if written.is_empty() {
            continue;
        }
        let mut swapped = ops.clone();
        swapped[target].outcome = Outcome::Value(Some(
            written[rng.below(written.len() as u64) as usize].clone(),
        ));
        let report = check(&History::new(swapped), &Budget::default());
        assert!(
            !matches!(report.verdict, Verdict::Inconclusive { .. }),
            "seed {seed}"
        );
        sometimes_rejected.1 += 1;
        if !report.is_linearizable() {
            sometimes_rejected.0 += 1;
        }
    }
    println!(
        "reads swapped for another written value: {} of {} rejected",
        sometimes_rejected.0, sometimes_rejected.1
    );
    assert!(sometimes_rejected.0 > 0);
}

/// Workloads a nemesis test may run on a key: weights of set, get, append, del, incr, and the
/// percent of replies lost. Mixing SET and APPEND on one key is the hardest: an APPEND's reply
/// (a length) does not tell which of several SETs of equal length came before it.
const WORKLOADS: [(&str, [u64; 5], u64); 4] = [
    ("register (SET/GET/DEL)", [3, 5, 0, 1, 0], 5),
    ("list (APPEND/GET)", [0, 5, 3, 0, 0], 5),
    ("counter (INCR/GET)", [0, 5, 0, 0, 3], 5),
    ("SET and APPEND on one key", [3, 5, 1, 0, 0], 2),
];

/// Eight clients on one key, 2000 ops, most of them overlapping (an op lasts up to 20 pauses).
fn perf_sim(mix: [u64; 5], unknown: u64) -> Sim {
    Sim {
        clients: 8,
        ops: 2000,
        keys: 1,
        unknown,
        mix,
        max_duration: 400,
        max_gap: 20,
    }
}

/// Generous, so that a loaded machine slows the test down rather than failing it; the
/// assertions on time catch a checker that got slow.
fn perf_budget() -> Budget {
    Budget {
        steps_per_key: 20_000_000,
        time: Duration::from_secs(600),
    }
}

#[test]
fn two_thousand_concurrent_ops_on_one_key_check_quickly() {
    for (name, mix, unknown) in WORKLOADS {
        for seed in 0..2 {
            let mut rng = Rng(1000 + seed);
            let history = History::new(simulate(&mut rng, &perf_sim(mix, unknown)));
            let started = Instant::now();
            let report = check(&history, &perf_budget());
            let elapsed = started.elapsed();
            println!("{name}, seed {seed}: {report}  {:?}", report.keys[0]);
            report.assert_linearizable();
            assert!(elapsed < Duration::from_secs(30), "{name}: {elapsed:?}");
        }
    }
}

#[test]
fn two_thousand_concurrent_ops_with_a_bad_read_at_the_end_are_rejected_quickly() {
    for (name, mix, unknown) in WORKLOADS {
        let mut rng = Rng(2000);
        let mut ops = simulate(&mut rng, &perf_sim(mix, unknown));
        // At the end, so that the search has to exhaust every order of everything before.
        let last_get = ops
            .iter()
            .rposition(|op| op.kind == Kind::Get && !op.is_unknown())
            .unwrap();
        ops[last_get].outcome = val("never#written");
        let history = History::new(ops);
        let started = Instant::now();
        let report = check(&history, &perf_budget());
        let elapsed = started.elapsed();
        println!(
            "{name}: {} in {elapsed:?} (explanation included)  {:?}",
            report.verdict.to_string().lines().next().unwrap_or(""),
            report.keys[0]
        );
        assert!(
            matches!(report.verdict, Verdict::NotLinearizable { .. }),
            "{name}: {report}"
        );
        assert!(
            report.to_string().contains("never#written"),
            "{name}: {report}"
        );
        assert!(elapsed < Duration::from_secs(120), "{name}: {elapsed:?}");
    }
}
