//! A kvd cluster behind proxies, with the fault primitives a nemesis needs: kill -9 and restart,
//! SIGSTOP/SIGCONT, partitions (through [`Net`]) and membership changes, each logged with its
//! time. Status queries use short timeouts and skip paused nodes, so a fault never stalls the
//! test itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::common::{Node, args, parse_info_field, parse_members, poll_until};
use crate::nemesis::client::{Reply, call_once, info_raft};
use crate::nemesis::net::{Net, Proxy};

/// Timeout for one status query (INFO, DIGEST) to one node.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the cluster may take to elect a leader, form, or converge once faults stop.
pub const RECOVERY: Duration = Duration::from_secs(60);

/// One node ever started in this world.
pub struct Slot {
    pub node: Node,
    pub proxy: Proxy,
    pub killed: bool,
    pub paused: bool,
    /// Taken out of the cluster with LEAVE (its name is never used again).
    pub removed: bool,
}

impl Slot {
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// Running and not paused: it can answer.
    pub fn responsive(&self) -> bool {
        !self.killed && !self.paused
    }
}

/// What the nemesis did, when (seconds since the world started).
#[derive(Clone, Default)]
pub struct FaultLog {
    started: Option<Instant>,
    pub lines: Vec<String>,
    pub counts: BTreeMap<String, usize>,
}

impl FaultLog {
    pub fn note(&mut self, line: impl AsRef<str>) {
        let t = self.started.get_or_insert_with(Instant::now).elapsed();
        let line = format!("[{:>8.3}s] {}", t.as_secs_f64(), line.as_ref());
        eprintln!("nemesis {line}");
        self.lines.push(line);
    }

    pub fn count(&mut self, kind: &str) {
        *self.counts.entry(kind.to_string()).or_default() += 1;
    }

    pub fn summary(&self) -> String {
        self.counts
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A cluster whose peer traffic goes through per-node proxies.
pub struct World {
    pub slots: Vec<Slot>,
    pub net: Net,
    /// Client addresses of the current members, for client threads to pick from.
    pub addrs: Arc<Mutex<Vec<String>>>,
    pub log: FaultLog,
    /// Flags every node gets.
    extra: Vec<String>,
    next_name: usize,
    /// Declared last: the processes die before their directory goes.
    dir: tempfile::TempDir,
}

impl World {
    /// `n` nodes: node0 bootstraps, the others join through it; returns once the leader lists
    /// `n` voters.
    pub fn start(n: usize, extra: &[&str]) -> World {
        let mut w = World {
            slots: Vec::new(),
            net: Net::new(),
            addrs: Arc::new(Mutex::new(Vec::new())),
            log: FaultLog::default(),
            extra: args(extra),
            next_name: 0,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        w.log.note(format!("starting {n} nodes"));
        w.add_node(None);
        poll_until(RECOVERY, "node0 to lead", || w.leader());
        for _ in 1..n {
            let seed = w.slots[0].node.client_addr();
            w.add_node(Some(&seed));
        }
        w.wait_voters(n);
        w.log.note(format!("cluster of {n} formed"));
        w
    }

    /// Starts a fresh node (named `node<k>`, never reused), joining through `seed` if given.
    fn add_node(&mut self, seed: Option<&str>) -> usize {
        let name = format!("node{}", self.next_name);
        self.next_name += 1;
        let proxy = self.net.proxy(&name);
        let mut extra = self.extra.clone();
        extra.extend(args(&["--advertise-raft-addr", &proxy.addr()]));
        if let Some(seed) = seed {
            extra.extend(args(&["--join", seed]));
        }
        let node = Node::start(&name, self.dir.path(), &extra);
        proxy.set_target(node.raft_port);
        self.slots.push(Slot {
            node,
            proxy,
            killed: false,
            paused: false,
            removed: false,
        });
        self.publish_addrs();
        self.slots.len() - 1
    }

    /// Names the log by node: `node3`.
    pub fn name(&self, i: usize) -> String {
        self.slots[i].name().to_string()
    }

    /// Indices of the current members (not removed), whatever their state.
    pub fn members(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| !self.slots[i].removed)
            .collect()
    }

    /// Members that can answer now.
    pub fn responsive(&self) -> Vec<usize> {
        self.members()
            .into_iter()
            .filter(|&i| self.slots[i].responsive())
            .collect()
    }

    fn publish_addrs(&self) {
        let addrs: Vec<String> = self
            .members()
            .iter()
            .map(|&i| self.slots[i].node.client_addr())
            .collect();
        *self.addrs.lock().unwrap_or_else(PoisonError::into_inner) = addrs;
    }

    /// INFO raft of member `i`, unless it is paused or dead.
    pub fn info(&self, i: usize) -> Option<String> {
        if !self.slots[i].responsive() {
            return None;
        }
        info_raft(&self.slots[i].node.client_addr(), QUERY_TIMEOUT)
    }

    /// The responsive member that says it leads (the one with the highest term if two do).
    pub fn leader(&self) -> Option<usize> {
        self.responsive()
            .into_iter()
            .filter_map(|i| {
                let info = self.info(i)?;
                (parse_info_field(&info, "raft_role")? == "leader").then(|| {
                    let term: u64 = parse_info_field(&info, "raft_term")
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(0);
                    (term, i)
                })
            })
            .max()
            .map(|(_, i)| i)
    }

    /// Waits until the leader lists `n` voters and every responsive member is leader or
    /// follower.
    pub fn wait_voters(&self, n: usize) {
        poll_until(RECOVERY, &format!("{n} voters and a leader"), || {
            let l = self.leader()?;
            let voters = parse_members(&self.info(l)?)
                .iter()
                .filter(|m| m.get("role").map(String::as_str) == Some("voter"))
                .count();
            let settled = self.responsive().iter().all(|&i| {
                self.info(i)
                    .and_then(|s| parse_info_field(&s, "raft_role"))
                    .is_some_and(|r| r == "leader" || r == "follower")
            });
            (voters == n && settled).then_some(())
        });
    }

    // ------------------------------------------------------------------------------- faults

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        assert!(!self.slots[i].killed);
        if self.slots[i].paused {
            self.resume(i);
        }
        self.slots[i].node.kill9();
        self.slots[i].killed = true;
        let n = self.name(i);
        self.log.note(format!("kill -9 {n}"));
    }

    /// Starts a killed node again on its ports and data dir (waits until it answers PING).
    pub fn restart(&mut self, i: usize) {
        assert!(self.slots[i].killed);
        let n = self.name(i);
        self.log.note(format!("restart {n}"));
        self.slots[i].node.restart();
        self.slots[i].killed = false;
        self.log.note(format!("{n} answers again"));
    }

    /// SIGSTOP.
    pub fn pause(&mut self, i: usize) {
        assert!(!self.slots[i].killed && !self.slots[i].paused);
        signal(&self.slots[i].node, libc::SIGSTOP);
        self.slots[i].paused = true;
        let n = self.name(i);
        self.log.note(format!("SIGSTOP {n}"));
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) {
        assert!(self.slots[i].paused);
        signal(&self.slots[i].node, libc::SIGCONT);
        self.slots[i].paused = false;
        let n = self.name(i);
        self.log.note(format!("SIGCONT {n}"));
    }

    /// Cuts every link between the nodes of `side` and the other members, both ways.
    pub fn partition(&mut self, side: &[usize]) {
        let a: Vec<String> = side.iter().map(|&i| self.name(i)).collect();
        let b: Vec<String> = self
            .members()
            .into_iter()
            .filter(|i| !side.contains(i))
            .map(|i| self.name(i))
            .collect();
        self.net.split(&a, &b);
        self.log.note(format!("partition {a:?} | {b:?}"));
    }

    /// Blocks messages from `from` to `to` only.
    pub fn cut_one_way(&mut self, from: usize, to: usize) {
        let (f, t) = (self.name(from), self.name(to));
        self.net.block(&f, &t);
        self.log.note(format!("one-way cut {f} -> {t}"));
    }

    pub fn heal_network(&mut self) {
        if !self.net.blocked().is_empty() {
            self.net.heal();
            self.log.note("heal network");
        }
    }

    /// Membership change: LEAVE member `i` (sent to another responsive member), waits until the
    /// leader shows it removed.
    pub fn leave(&mut self, i: usize) {
        self.request_leave(i);
        self.wait_removed(i);
    }

    /// Sends LEAVE for member `i` to the other responsive members until one accepts it.
    pub fn request_leave(&mut self, i: usize) {
        let name = self.name(i);
        let via: Vec<usize> = self.responsive().into_iter().filter(|&j| j != i).collect();
        self.log.note(format!("LEAVE {name}"));
        let deadline = Instant::now() + RECOVERY;
        let mut replies = Vec::new();
        for attempt in 0.. {
            let j = via[attempt % via.len()];
            let reply = call_once(
                &self.slots[j].node.client_addr(),
                &["LEAVE", &name],
                Duration::from_secs(5),
            );
            match reply {
                Ok(Reply::Status(s)) if s == "OK" => break,
                // An earlier attempt whose reply was lost (or said TIMEOUT) went through.
                Ok(Reply::Error(e)) if attempt > 0 && e.contains("already removed") => break,
                other => {
                    let line = format!("LEAVE {name} via {} -> {other:?}", self.name(j));
                    self.log.note(&line);
                    replies.push(line);
                }
            }
            assert!(
                Instant::now() < deadline,
                "LEAVE {name} never accepted: {replies:#?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the leader lists member `i` as removed, then takes it out of the members.
    pub fn wait_removed(&mut self, i: usize) {
        let name = self.name(i);
        poll_until(RECOVERY, &format!("{name} to be removed"), || {
            let l = self.leader()?;
            let removed = parse_members(&self.info(l)?).iter().any(|m| {
                m.get("name") == Some(&name) && m.get("role").map(String::as_str) == Some("removed")
            });
            removed.then_some(())
        });
        self.slots[i].removed = true;
        self.publish_addrs();
        if self.slots[i].paused {
            self.resume(i);
        }
        // It keeps running for a while: clients still connected to it must get refusals
        // (never a stale read), and its campaigns must not disturb the cluster. The two most
        // recently removed nodes run on; older ones are stopped.
        self.log.note(format!("{name} removed"));
        let running_removed: Vec<usize> = (0..self.slots.len())
            .filter(|&j| self.slots[j].removed && !self.slots[j].killed)
            .collect();
        for &j in running_removed.iter().rev().skip(2) {
            self.slots[j].node.kill9();
            self.slots[j].killed = true;
        }
    }

    /// Membership change: a fresh node joins through a responsive member; waits until the
    /// leader lists `voters` voters.
    pub fn join_new(&mut self, voters: usize) -> usize {
        let i = self.join_async();
        let name = self.name(i);
        self.wait_voters(voters);
        self.log.note(format!("{name} is a voter"));
        i
    }

    /// Starts a fresh node joining through a responsive member, without waiting for it.
    pub fn join_async(&mut self) -> usize {
        let via = self.responsive()[0];
        let seed = self.slots[via].node.client_addr();
        let i = self.add_node(Some(&seed));
        let name = self.name(i);
        self.log.note(format!(
            "{name} started, joining through {}",
            self.name(via)
        ));
        i
    }

    /// Like [`World::join_new`], but the new node is killed `crash_after` after it starts
    /// (wherever it is in joining: asking, learning, receiving a snapshot) and restarted
    /// `down_for` later.
    pub fn join_new_crashing(
        &mut self,
        voters: usize,
        crash_after: Duration,
        down_for: Duration,
    ) -> usize {
        let i = self.join_async();
        let name = self.name(i);
        std::thread::sleep(crash_after);
        let role = self
            .info(i)
            .and_then(|s| parse_info_field(&s, "raft_role"))
            .unwrap_or_default();
        self.log.note(format!("{name} is {role:?}"));
        self.kill(i);
        std::thread::sleep(down_for);
        self.restart(i);
        self.wait_voters(voters);
        self.log.note(format!("{name} is a voter"));
        i
    }

    /// Undoes every fault: network healed, paused nodes continued, killed members restarted.
    pub fn heal_all(&mut self) {
        self.heal_network();
        for i in self.members() {
            if self.slots[i].paused {
                self.resume(i);
            }
            if self.slots[i].killed {
                self.restart(i);
            }
        }
    }

    /// DIGEST of member `i`.
    pub fn digest(&self, i: usize) -> Option<String> {
        match call_once(
            &self.slots[i].node.client_addr(),
            &["DIGEST"],
            QUERY_TIMEOUT,
        )
        .ok()?
        {
            r @ (Reply::Bulk(Some(_)) | Reply::Status(_)) => r.text(),
            _ => None,
        }
    }

    /// Waits until every member reports the same DIGEST, and returns it.
    pub fn wait_converged(&self) -> String {
        let deadline = Instant::now() + RECOVERY;
        loop {
            let digests: Vec<(String, Option<String>)> = self
                .members()
                .into_iter()
                .map(|i| (self.name(i), self.digest(i)))
                .collect();
            if digests.iter().all(|(_, d)| d.is_some())
                && digests.windows(2).all(|w| w[0].1 == w[1].1)
            {
                return digests[0].1.clone().unwrap_or_default();
            }
            if Instant::now() >= deadline {
                panic!("members did not converge within {RECOVERY:?}: {digests:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every member names the same leader, a member itself; returns its index.
    pub fn wait_agreed_leader(&self) -> usize {
        poll_until(RECOVERY, "every member to agree on a leader", || {
            let members = self.members();
            let mut named = Vec::new();
            for &i in &members {
                named.push(parse_info_field(&self.info(i)?, "raft_leader")?);
            }
            let first = named.first()?.clone();
            if !named.iter().all(|n| *n == first) {
                return None;
            }
            members.into_iter().find(|&i| self.name(i) == first)
        })
    }

    /// Waits until every member lists the same members with the same roles (removed ones
    /// included), and returns that list: the replicated member list converged too.
    pub fn wait_same_members(&self) -> Vec<(String, String)> {
        poll_until(RECOVERY, "every member to list the same members", || {
            let mut views = Vec::new();
            for i in self.members() {
                let mut view: Vec<(String, String)> = parse_members(&self.info(i)?)
                    .into_iter()
                    .map(|m| {
                        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
                        (get("name"), get("role"))
                    })
                    .collect();
                view.sort();
                views.push(view);
            }
            views
                .windows(2)
                .all(|w| w[0] == w[1])
                .then(|| views.pop().unwrap_or_default())
        })
    }

    /// Every node's log, for a failure report.
    pub fn dump_logs(&self, tail: usize) -> String {
        let mut out = String::new();
        for s in &self.slots {
            let log = s.node.log();
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!(
                "----- last {} lines of {} ({}) -----\n",
                tail.min(lines.len()),
                s.name(),
                s.node.log_path.display()
            ));
            for l in &lines[lines.len().saturating_sub(tail)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Keeps the directory (logs and data) after the test, for a post-mortem.
    pub fn keep_dir(self) -> std::path::PathBuf {
        let World { slots, dir, .. } = self;
        drop(slots);
        dir.keep()
    }
}

/// Sends `sig` to the node's process.
fn signal(node: &Node, sig: libc::c_int) {
    let pid = node.pid().expect("node has a process") as libc::pid_t;
    // SAFETY: kill(2) with a pid we spawned and still own (not reaped: Node holds the Child).
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}
