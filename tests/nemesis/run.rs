//! One nemesis run: start a cluster behind proxies, run client threads, inject faults chosen by
//! a seeded RNG until the time is up, heal everything, then check the properties:
//! the register history is linearizable (final reads after the heal are part of it, so a lost
//! acknowledged write fails the check), append tokens are all there exactly once, every member
//! converges to the same DIGEST and the members agree on a leader.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::checker;
use crate::nemesis::leases::{self, Leases};
use crate::nemesis::lists::{self, Lists};
use crate::nemesis::rng::Rng;
use crate::nemesis::types::TypeClients;
use crate::nemesis::verify;
use crate::nemesis::workload::{self, Ledger, Role, Shared, Tally};
use crate::nemesis::world::{RECOVERY, World};

/// Flags for every node of a nemesis run: short write timeout (so a write's fate is known before
/// the client's 3 s socket timeout), fast ticks (elections within about a second, so more faults
/// fit in a run) and frequent log compaction (so restarted and new nodes need snapshots).
pub const NODE_FLAGS: &[&str] = &[
    "--write-timeout-ms",
    "2000",
    "--tick-ms",
    "50",
    "--compact-entries",
    "2000",
    "--compact-keep",
    "200",
];

/// Client ids of the final reads, apart from the workload's.
const FINAL_READER: usize = 1000;

/// What a run does.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub name: &'static str,
    pub nodes: usize,
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
    /// LEAVE + fresh JOIN among the faults.
    pub membership: bool,
    pub register_clients: usize,
    pub append_clients: usize,
    /// Register keys (few, so ops on one key overlap a lot).
    pub keys: usize,
    /// Lock clients and as many TTL clients (`leases`).
    pub lease_clients: usize,
}

/// Runs the whole thing; panics with the seed, the fault log and the evidence on a violation.
pub fn run(cfg: &RunConfig) {
    let started = Instant::now();
    eprintln!(
        "==== nemesis {}: seed {} ({} nodes, {:?} of faults)",
        cfg.name, cfg.seed, cfg.nodes, cfg.duration
    );
    let _seed_on_panic = SeedOnPanic(cfg.name, cfg.seed);
    let mut rng = Rng::new(cfg.seed);
    let mut world = World::start(cfg.nodes, NODE_FLAGS);
    let shared = Shared {
        recorder: checker::Recorder::new(),
        addrs: world.addrs.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        keys: Arc::new((0..cfg.keys).map(|k| format!("r{k}")).collect()),
        log_key: "log".to_string(),
    };
    let mut handles = Vec::new();
    for id in 0..cfg.register_clients + cfg.append_clients {
        let role = if id < cfg.register_clients {
            Role::Register
        } else {
            Role::Append
        };
        handles.push(workload::spawn(
            id,
            role,
            rng.fork(id as u64),
            shared.clone(),
        ));
    }
    let leases = Leases::default();
    let mut lease_handles = Vec::new();
    for n in 0..cfg.lease_clients {
        let id = 500 + n;
        let sh = shared.clone();
        lease_handles.push(leases::spawn_lock(
            id,
            rng.fork(id as u64),
            sh.clone(),
            leases.clone(),
        ));
        lease_handles.push(leases::spawn_ttl(
            id,
            rng.fork(id as u64 + 50),
            sh,
            leases.clone(),
        ));
    }

    let zset_client = crate::nemesis::zsets::spawn(700, rng.fork(700), shared.clone());
    let lists = Lists::default();
    lease_handles.extend(lists::spawn(cfg.lease_clients, &mut rng, &shared, &lists));
    let transfers = crate::nemesis::transfers::Transfers::default();
    lease_handles.extend(crate::nemesis::transfers::spawn(
        cfg.lease_clients + 1,
        &mut rng,
        &shared,
        &transfers,
    ));
    let types = TypeClients::spawn(cfg.lease_clients, &mut rng, &shared, &mut lease_handles);

    let faults_until = Instant::now() + cfg.duration;
    while Instant::now() < faults_until {
        std::thread::sleep(rng.millis(100, 1000));
        if Instant::now() >= faults_until {
            break;
        }
        inject_one(&mut world, &mut rng, cfg);
    }
    world.log.note("faults over; stopping clients");
    shared.stop.store(true, Ordering::SeqCst);
    let mut tally = Tally::default();
    let mut ledger = Ledger::default();
    for h in handles {
        let r = h.join().expect("client thread panicked");
        tally.add(&r.tally);
        ledger.add(&r.ledger);
    }
    for h in lease_handles {
        h.join().expect("lease client thread panicked");
    }
    tally.add(&zset_client.join().expect("zset client thread panicked"));
    let lease_log = leases.take();
    world.heal_all();
    let leader = world.wait_agreed_leader();
    world
        .log
        .note(format!("healed; leader {}", world.name(leader)));

    // Final linearizable reads: part of the history, so the checker sees lost writes.
    let mut problems = Vec::new();
    let mut final_rng = rng.fork(0xF1A1);
    let mut finals = Vec::new();
    for (n, key) in shared
        .keys
        .iter()
        .chain(std::iter::once(&shared.log_key))
        .enumerate()
    {
        match workload::final_read(&mut final_rng, &shared, FINAL_READER + n, key, RECOVERY) {
            Some(v) => finals.push((key.clone(), v)),
            None => problems.push(format!("final read of {key} never succeeded")),
        }
    }
    let log_value = finals
        .iter()
        .find(|(k, _)| *k == shared.log_key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for v in ledger.violations(&log_value) {
        problems.push(format!("append invariant: {v}"));
    }
    for v in lease_log.violations().into_iter().take(20) {
        problems.push(format!("expiry invariant: {v}"));
    }
    problems.extend(lists::verify(&lists, &shared, &mut rng, RECOVERY));
    problems.extend(crate::nemesis::transfers::verify(
        &transfers, &shared, &mut rng, RECOVERY,
    ));
    problems.extend(types.verify_before_convergence(&shared, &mut rng));
    let digest = world.wait_converged();
    let member_addrs: Vec<String> = world
        .members()
        .iter()
        .map(|&i| world.slots[i].node.client_addr())
        .collect();
    problems.extend(crate::nemesis::zsets::same_on_every_member(&member_addrs));
    problems.extend(types.verify_converged(&member_addrs));
    let leader = world.wait_agreed_leader();
    let member_view = world.wait_same_members();
    let voters: Vec<&str> = member_view
        .iter()
        .filter(|(_, role)| role == "voter")
        .map(|(name, _)| name.as_str())
        .collect();
    let expected: Vec<String> = world.members().iter().map(|&i| world.name(i)).collect();
    if voters.len() != cfg.nodes || !voters.iter().all(|v| expected.iter().any(|e| e == v)) {
        problems.push(format!(
            "voters {voters:?} are not the {} members the test kept: {expected:?} (all: \
             {member_view:?})",
            cfg.nodes
        ));
    }
    for u in tally.unexpected.iter().take(20) {
        problems.push(format!("unexpected reply: {u}"));
    }

    let history = workload::without_unapplied_appends(
        &shared.recorder.history(),
        &shared.log_key,
        &log_value,
    );
    let checked = verify::check_history(&history, &shared.log_key, &log_value);
    let unknown_ops = history.ops().iter().filter(|op| op.is_unknown()).count();
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "nemesis {} seed {}: {} nodes, {:?} total; faults: {}",
        cfg.name,
        cfg.seed,
        cfg.nodes,
        started.elapsed(),
        world.log.summary()
    );
    let _ = writeln!(
        summary,
        "  ops: ok {} failed {} unknown {} (reconnects {}); history {} ops ({} unknown); \
         tokens acked {} unknown {} refused {}; final log {} bytes",
        tally.ok,
        tally.failed,
        tally.unknown,
        tally.reconnects,
        history.len(),
        unknown_ops,
        ledger.acked.len(),
        ledger.unknown.len(),
        ledger.failed.len(),
        log_value.len()
    );
    let _ = writeln!(summary, "  not ok: {:?}", tally.reasons);
    let _ = writeln!(
        summary,
        "  leases: {} lock acquisitions acked, {} refused (held); {} TTL writes acked, {} reads \
         of TTL values; {} ops indefinite",
        lease_log.acquired.len(),
        lease_log.refused,
        lease_log.ttl_sets.len(),
        lease_log.ttl_reads.len(),
        lease_log.indefinite
    );
    let _ = writeln!(
        summary,
        "  proxy: {} connections refused, {} killed; converged digest {digest}; leader {}",
        world.net.refused.load(Ordering::Relaxed),
        world.net.killed.load(Ordering::Relaxed),
        world.name(leader)
    );
    let _ = write!(summary, "  {}", checked.summary);
    eprintln!("{summary}");

    if let Some(key) = &checked.failing_key {
        let path = world.dir().join("history.txt");
        let _ = std::fs::write(&path, checker::format_history(history.ops()));
        let key_path = world.dir().join("history-key.txt");
        let _ = std::fs::write(&key_path, history.format_key(key));
        let _ = std::fs::write(world.dir().join("final-log.txt"), &log_value);
        problems.extend(checked.problems.iter().cloned());
        problems.push(format!(
            "(whole history in {}, the ops of {} in {})",
            path.display(),
            checker::fmt_bytes(key),
            key_path.display()
        ));
    }
    if !problems.is_empty() {
        let logs = world.dump_logs(60);
        let faults = world.log.lines.join("\n");
        let dir = world.keep_dir();
        panic!(
            "nemesis {} seed {} FAILED (rerun: KVD_NEMESIS_SEEDS={} ; data and logs kept in {})\n\
             {summary}\n--- fault log ---\n{faults}\n--- problems ---\n{}\n{logs}",
            cfg.name,
            cfg.seed,
            cfg.seed,
            dir.display(),
            problems.join("\n")
        );
    }
}

/// Names the seed again when a run panics outside the final checks (a recovery that never
/// came, a harness assertion): the fault log was printed as it went.
struct SeedOnPanic(&'static str, u64);

impl Drop for SeedOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "nemesis {} seed {} FAILED (rerun: KVD_NEMESIS_SEEDS={})",
                self.0, self.1, self.1
            );
        }
    }
}

/// A fault in place, with what it takes to undo it.
enum Active {
    Killed(Vec<usize>),
    Paused(Vec<usize>),
    Partitioned,
}

/// Injects one fault (now and then two overlapping ones), holds it, and undoes it.
fn inject_one(w: &mut World, rng: &mut Rng, cfg: &RunConfig) {
    let tolerated = (cfg.nodes - 1) / 2;
    let mut kinds = vec![("kill", 3), ("pause", 2), ("partition", 4), ("combo", 2)];
    if cfg.membership {
        kinds.push(("membership", 2));
    }
    // `KVD_NEMESIS_FAULTS=membership,kill` narrows a soak down to some kinds.
    if let Ok(only) = std::env::var("KVD_NEMESIS_FAULTS") {
        kinds.retain(|(k, _)| only.split(',').any(|o| o.trim() == *k));
        assert!(
            !kinds.is_empty(),
            "KVD_NEMESIS_FAULTS={only}: no known fault kind"
        );
    }
    let total: usize = kinds.iter().map(|k| k.1).sum();
    let mut draw = rng.below(total);
    let kind = kinds
        .iter()
        .find(|k| {
            if draw < k.1 {
                true
            } else {
                draw -= k.1;
                false
            }
        })
        .map(|k| k.0)
        .unwrap_or("kill");
    match kind {
        "membership" => membership(w, rng, cfg.nodes),
        "combo" => {
            // Two faults that overlap: the second starts while the first holds, and they end
            // in either order. Together they may take the quorum away for a while.
            let first = *rng.pick(&["kill", "pause", "partition"]);
            let second = *rng.pick(&["kill", "pause", "partition"]);
            w.log.count(&format!("combo-{first}+{second}"));
            let a = start_fault(w, rng, first, tolerated, cfg.nodes);
            std::thread::sleep(rng.millis(0, 1500));
            let b = start_fault(w, rng, second, tolerated, cfg.nodes);
            std::thread::sleep(rng.millis(300, 2500));
            let (x, y) = if rng.chance(50) { (a, b) } else { (b, a) };
            end_fault(w, x);
            std::thread::sleep(rng.millis(0, 1500));
            end_fault(w, y);
        }
        kind => {
            let active = start_fault(w, rng, kind, tolerated, cfg.nodes);
            let hold = match kind {
                "kill" => rng.millis(200, 3000),
                "pause" => rng.millis(200, 3000),
                _ => rng.millis(1000, 4000),
            };
            std::thread::sleep(hold);
            end_fault(w, active);
        }
    }
}

/// Starts a fault of `kind` (kill, pause, partition) on nodes that are not already down.
fn start_fault(w: &mut World, rng: &mut Rng, kind: &str, tolerated: usize, nodes: usize) -> Active {
    match kind {
        "kill" => {
            let victims = victims(w, rng, tolerated);
            let leader = w.leader();
            w.log.count(if victims.first().copied() == leader {
                "kill-leader"
            } else {
                "kill"
            });
            for &v in &victims {
                w.kill(v);
            }
            Active::Killed(victims)
        }
        "pause" => {
            let victims = victims(w, rng, tolerated);
            w.log.count("pause");
            for &v in &victims {
                w.pause(v);
            }
            Active::Paused(victims)
        }
        _ => {
            partition(w, rng, nodes);
            Active::Partitioned
        }
    }
}

fn end_fault(w: &mut World, active: Active) {
    match active {
        Active::Killed(victims) => {
            for v in victims {
                w.restart(v);
            }
        }
        Active::Paused(victims) => {
            for v in victims {
                w.resume(v);
            }
        }
        Active::Partitioned => w.heal_network(),
    }
}

/// 1..=`max` distinct responsive members; the first is the leader half of the time.
fn victims(w: &World, rng: &mut Rng, max: usize) -> Vec<usize> {
    let mut pool = w.responsive();
    let count = 1 + rng.below(max.max(1));
    let mut out = Vec::new();
    if rng.chance(50)
        && let Some(l) = w.leader()
    {
        pool.retain(|&i| i != l);
        out.push(l);
    }
    while out.len() < count && !pool.is_empty() {
        out.push(pool.swap_remove(rng.below(pool.len())));
    }
    out
}

fn partition(w: &mut World, rng: &mut Rng, nodes: usize) {
    let members = w.members();
    let leader = w.leader().unwrap_or_else(|| *rng.pick(&members));
    let variants = if nodes >= 5 { 7 } else { 6 };
    match rng.below(variants) {
        0 => {
            w.log.count("partition-isolate-leader");
            w.partition(&[leader]);
        }
        1 => {
            w.log.count("partition-isolate");
            let i = *rng.pick(&members);
            w.partition(&[i]);
        }
        2 => {
            // A random minority (which may hold the leader) against the majority.
            w.log.count("partition-minority");
            let mut pool = members.clone();
            let size = 1 + rng.below((nodes - 1) / 2);
            let mut side = Vec::new();
            while side.len() < size {
                side.push(pool.swap_remove(rng.below(pool.len())));
            }
            w.partition(&side);
        }
        3 => {
            // The leader can hear but not speak.
            w.log.count("partition-leader-mute");
            for &i in &members {
                if i != leader {
                    w.cut_one_way(leader, i);
                }
            }
        }
        4 => {
            // The leader can speak but not hear.
            w.log.count("partition-leader-deaf");
            for &i in &members {
                if i != leader {
                    w.cut_one_way(i, leader);
                }
            }
        }
        5 => {
            w.log.count("partition-one-way");
            let a = *rng.pick(&members);
            let others: Vec<usize> = members.iter().copied().filter(|&i| i != a).collect();
            let b = *rng.pick(&others);
            w.cut_one_way(a, b);
        }
        _ => {
            // Bridge: two halves that cannot see each other, one node seeing both.
            w.log.count("partition-bridge");
            let mut pool = members.clone();
            let bridge = pool.swap_remove(rng.below(pool.len()));
            let half = pool.len() / 2;
            let mut a = Vec::new();
            while a.len() < half {
                a.push(pool.swap_remove(rng.below(pool.len())));
            }
            let (an, bn): (Vec<String>, Vec<String>) = (
                a.iter().map(|&i| w.name(i)).collect(),
                pool.iter().map(|&i| w.name(i)).collect(),
            );
            w.net.split(&an, &bn);
            w.log
                .note(format!("bridge {an:?} | {bn:?} via {}", w.name(bridge)));
        }
    }
}

/// One member leaves and a fresh node joins (in either order), keeping `voters` voters.
fn membership(w: &mut World, rng: &mut Rng, voters: usize) {
    // Membership changes start from a healthy cluster (the previous fault may still be
    // settling); faults during the change come from the other fault kinds next time round.
    w.wait_voters(voters);
    let members = w.members();
    let victim = match w.leader() {
        Some(l) if rng.chance(30) => l,
        _ => *rng.pick(&members),
    };
    match rng.below(6) {
        5 => {
            // Leader failures in the middle of both changes: the leader is killed while the
            // new node joins, and partitioned away right after the LEAVE is accepted.
            w.log.count("membership-leader-faults");
            w.join_async();
            std::thread::sleep(rng.millis(0, 300));
            if let Some(l) = w.leader() {
                w.kill(l);
                std::thread::sleep(rng.millis(200, 2000));
                w.restart(l);
            }
            w.wait_voters(voters + 1);
            w.request_leave(victim);
            let l = w.leader().unwrap_or(victim);
            w.partition(&[l]);
            std::thread::sleep(rng.millis(500, 3000));
            w.heal_network();
            w.wait_removed(victim);
        }
        0 => {
            // While another member is paused: the change must go through the remaining quorum
            // (joining first keeps one: 4 voters, 3 running).
            let others: Vec<usize> = members.iter().copied().filter(|&i| i != victim).collect();
            let paused = *rng.pick(&others);
            w.log.count("membership-while-paused");
            w.pause(paused);
            w.join_new(voters + 1);
            w.leave(victim);
            w.resume(paused);
        }
        1 => {
            // An operator removing a dead node, then replacing it.
            w.log.count("membership-remove-dead");
            w.kill(victim);
            w.leave(victim);
            w.join_new(voters);
        }
        2 => {
            // The new node crashes while it joins (before, during or after catching up).
            w.log.count("membership-joiner-crashes");
            let crash_after = rng.millis(0, 1500);
            let down_for = rng.millis(0, 1000);
            w.join_new_crashing(voters + 1, crash_after, down_for);
            w.leave(victim);
        }
        3 => {
            w.log.count("membership-join-then-leave");
            w.join_new(voters + 1);
            w.leave(victim);
        }
        _ => {
            w.log.count("membership-leave-then-join");
            w.leave(victim);
            w.join_new(voters);
        }
    }
}
