//! The raft loop: one thread owns the `RawNode` and does every step of the protocol in the order
//! raft-rs requires (see `handle_ready`). Clients and peers reach it only through `Input`s.
//!
//! A write's life here: `propose` encodes it with a request id and the current term, raft-rs
//! appends it (or forwards it to the leader), `handle_ready` persists it in one redb transaction
//! with everything else in that Ready (group commit: one fsync for many writes), and once it is
//! committed `apply_committed` runs the command on the state machine in the same transaction as
//! the applied index; the node that proposed it then answers its waiting client with the result.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType, HardState,
    Message, Snapshot,
};
use raft::{RawNode, SnapshotStatus, StateRole};
use redb::{Durability, ReadableDatabase, WriteTransaction};
use slog::{Logger, crit, error, info, o, warn};
use tokio::sync::{oneshot, watch};

use super::identity::{Identity, random_u64};
use super::membership::{self, Member, MemberState, node_id};
use super::proposal::Proposal;
use super::snapshot::SnapshotRegistry;
use super::status::{MemberStatus, RaftStatus, Role, member_role};
use super::storage::{RaftStorage, decode_pb, encode_pb};
use super::transport::Transport;
use super::{Input, RaftHandle};
use crate::cmd::{self, Kind};
use crate::config::Config;
use crate::kv::{ApplyCtx, WriteView};
use crate::resp::Reply;
use crate::store::{
    self, Db, KV, LOG, MEMBERS, RAFT_STATE, STAGED_KV, STAGED_MEMBERS, StoreError, meta,
};

/// Ticks without hearing from a leader before an election (randomised up to twice this).
const ELECTION_TICKS: usize = 10;
const HEARTBEAT_TICKS: usize = 2;
/// Inputs handled between two Readies: bounds latency while still batching proposals.
const MAX_INPUTS_PER_STEP: usize = 4096;
/// A learner is promoted to voter once it is this close to the leader's commit index.
const PROMOTE_LAG: u64 = 1000;
/// A ReadIndex round not answered within this many ticks is retried.
const READ_ROUND_TICKS: u32 = 5;

/// How this process starts its raft node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// Empty data dir, no --join: a one-voter cluster of its own.
    Bootstrap,
    /// Empty data dir with --join: wait to be added by an existing cluster.
    Join,
    /// Raft state on disk: carry on from it.
    Restart,
}

/// A client write waiting for its entry to be applied.
struct Waiter {
    argv: Vec<Bytes>,
    term: u64,
    deadline: Instant,
    reply: oneshot::Sender<Reply>,
}

/// A client write not yet handed to raft (no leader known, or raft-rs dropped it).
struct Parked {
    argv: Vec<Bytes>,
    deadline: Instant,
    reply: oneshot::Sender<Reply>,
    /// It was proposed once and fenced out by a leader change (definitely not applied).
    fenced: bool,
}

/// Linearizable reads waiting for one ReadIndex round.
struct ReadRound {
    started_tick: u64,
    readers: Vec<(Instant, oneshot::Sender<Result<u64, Reply>>)>,
}

/// What applying one committed entry produced for this node's clients.
enum Outcome {
    Applied(Reply),
    Fenced,
}

pub struct Node {
    raw: RawNode<RaftStorage>,
    db: Db,
    identity: Identity,
    compact_entries: u64,
    compact_keep: u64,
    rx: mpsc::Receiver<Input>,
    transport: Transport,
    logger: Logger,
    tick: Duration,
    ticks: u64,
    waiters: HashMap<u64, Waiter>,
    parked: VecDeque<Parked>,
    next_request: u64,
    /// Highest term of any applied entry: proposals from older terms can no longer commit.
    applied_term: u64,
    applied_index: u64,
    members: Vec<Member>,
    pending_reads: Vec<(Instant, oneshot::Sender<Result<u64, Reply>>)>,
    read_rounds: HashMap<u64, ReadRound>,
    status: Arc<Mutex<Arc<RaftStatus>>>,
    applied_tx: watch::Sender<u64>,
    last_role: Option<Role>,
    last_leader: u64,
    removed: bool,
    /// Receivers of staged snapshots waiting for the Ready that installs them to be handled.
    snapshot_acks: Vec<oneshot::Sender<()>>,
}

/// Decides how to start, prepares the storage for it, and spawns the raft thread.
pub fn start(
    cfg: &Config,
    db: Db,
    rx: mpsc::Receiver<Input>,
    tx: mpsc::Sender<Input>,
    transport: Transport,
    snapshots: SnapshotRegistry,
    logger: &Logger,
) -> Result<(RaftHandle, StartMode, JoinHandle<()>), String> {
    let id = node_id(&cfg.name);
    let err = |e: StoreError| format!("cannot load raft state: {e}");
    clear_staged(&db).map_err(err)?;
    let existing = load_identity(&db).map_err(err)?;
    let storage = RaftStorage::load(db.clone(), snapshots.clone()).map_err(err)?;
    let empty = existing.is_none()
        && storage.last_index_now() == 0
        && storage.conf_state().voters.is_empty();
    let mode = match (&existing, empty, cfg.join) {
        (Some(ident), _, _) => {
            if ident.name != cfg.name {
                return Err(format!(
                    "data dir '{}' belongs to node '{}', not '{}': pass --id {} or use another data dir",
                    cfg.data_dir.display(),
                    ident.name,
                    cfg.name,
                    ident.name
                ));
            }
            if ident.cluster_id == 0 {
                StartMode::Join
            } else {
                StartMode::Restart
            }
        }
        (None, true, None) => StartMode::Bootstrap,
        (None, true, Some(_)) => StartMode::Join,
        (None, false, _) => {
            return Err(format!(
                "database in '{}' has raft state but no identity: refusing to start (corrupted?)",
                cfg.data_dir.display()
            ));
        }
    };
    let identity = match mode {
        StartMode::Bootstrap => {
            let ident = Identity {
                name: cfg.name.clone(),
                id,
                cluster_id: random_u64(),
            };
            bootstrap(&db, &ident, cfg.raft_addr, cfg.addr).map_err(err)?;
            ident
        }
        StartMode::Join if existing.is_none() => {
            let ident = Identity {
                name: cfg.name.clone(),
                id,
                cluster_id: 0,
            };
            save_identity(&db, &ident).map_err(err)?;
            ident
        }
        _ => existing.unwrap_or(Identity {
            name: cfg.name.clone(),
            id,
            cluster_id: 0,
        }),
    };
    // Reload: bootstrap wrote the first entry and the initial configuration.
    let storage = RaftStorage::load(db.clone(), snapshots).map_err(err)?;
    let (applied_index, applied_term) = load_applied(&db).map_err(err)?;
    let members = load_members(&db).map_err(err)?;
    transport.set_identity(identity.clone());
    transport.set_peers(peer_addrs(&members, id));

    let raft_logger = logger.new(o!("raft" => true));
    let raft_config = raft_config(id, applied_index);
    raft_config
        .validate()
        .map_err(|e| format!("raft config: {e}"))?;
    let mut raw = RawNode::new(&raft_config, storage, &raft_logger)
        .map_err(|e| format!("cannot start raft: {e}"))?;
    campaign_if_alone(&mut raw, id);

    let status = Arc::new(Mutex::new(Arc::new(RaftStatus::initial(
        id,
        cfg.name.clone(),
    ))));
    let (applied_tx, applied_rx) = watch::channel(applied_index);
    let handle = RaftHandle {
        tx,
        status: status.clone(),
        applied: applied_rx,
    };
    let mut node = Node {
        raw,
        db,
        identity,
        compact_entries: cfg.compact_entries,
        compact_keep: cfg.compact_keep,
        rx,
        transport,
        logger: logger.clone(),
        tick: cfg.tick,
        ticks: 0,
        waiters: HashMap::new(),
        parked: VecDeque::new(),
        next_request: random_u64(),
        applied_term,
        applied_index,
        members,
        pending_reads: Vec::new(),
        read_rounds: HashMap::new(),
        status,
        applied_tx,
        last_role: None,
        last_leader: 0,
        removed: false,
        snapshot_acks: Vec::new(),
    };
    node.publish_status();
    info!(logger, "raft node started"; "mode" => ?mode, "applied" => applied_index,
          "last_index" => node.raw.store().last_index_now(), "term" => node.raw.raft.term);
    let thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || node.run())
        .map_err(|e| format!("cannot spawn raft thread: {e}"))?;
    Ok((handle, mode, thread))
}

/// The only voter need not wait out an election timeout to lead its own cluster.
fn campaign_if_alone(raw: &mut RawNode<RaftStorage>, id: u64) {
    let cs = raw.store().conf_state();
    if cs.voters == [id] && cs.learners.is_empty() && raw.raft.state != StateRole::Leader {
        let _ = raw.campaign();
    }
}

fn raft_config(id: u64, applied: u64) -> raft::Config {
    raft::Config {
        id,
        election_tick: ELECTION_TICKS,
        heartbeat_tick: HEARTBEAT_TICKS,
        applied,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        max_uncommitted_size: 256 * 1024 * 1024,
        max_committed_size_per_ready: 16 * 1024 * 1024,
        ..Default::default()
    }
}

/// Writes the state of a brand-new one-voter cluster as its first two committed log entries:
/// the configuration change that makes this node the only voter, and the JOIN that records it
/// in the member list. Being in the log (not only in local state), both reach every node that
/// joins later, so all nodes agree on the configuration from index 1 on.
fn bootstrap(
    db: &Db,
    ident: &Identity,
    raft_addr: SocketAddr,
    client_addr: SocketAddr,
) -> Result<(), StoreError> {
    let mut single = ConfChangeSingle::default();
    single.set_change_type(ConfChangeType::AddNode);
    single.node_id = ident.id;
    let mut cc = ConfChangeV2::default();
    cc.set_changes(vec![single].into());
    let mut conf_entry = Entry::default();
    conf_entry.set_entry_type(EntryType::EntryConfChangeV2);
    conf_entry.index = 1;
    conf_entry.term = 1;
    conf_entry.data = encode_pb(&cc)?.into();
    conf_entry.context = ident.name.clone().into_bytes().into();

    let argv = vec![
        Bytes::from_static(b"join"),
        Bytes::from(ident.name.clone()),
        Bytes::from(raft_addr.to_string()),
        Bytes::from(client_addr.to_string()),
    ];
    let mut join_entry = Entry::default();
    join_entry.index = 2;
    join_entry.term = 1;
    join_entry.data = Proposal {
        origin: 0,
        request_id: 0,
        term: 1,
        argv,
    }
    .encode()
    .into();

    let mut hs = HardState::default();
    hs.term = 1;
    hs.commit = 2;
    let txn = db.begin_write()?;
    {
        let mut log = txn.open_table(LOG)?;
        for e in [&conf_entry, &join_entry] {
            let mut row = e.term.to_be_bytes().to_vec();
            row.extend_from_slice(&encode_pb(e)?);
            log.insert(e.index, row.as_slice())?;
        }
        let mut state = txn.open_table(RAFT_STATE)?;
        state.insert(meta::HARD_STATE, encode_pb(&hs)?.as_slice())?;
        state.insert(meta::IDENTITY, ident.encode().as_bytes())?;
    }
    txn.commit()?;
    Ok(())
}

fn load_identity(db: &Db) -> Result<Option<Identity>, StoreError> {
    let txn = db.begin_read()?;
    let t = txn.open_table(RAFT_STATE)?;
    match t.get(meta::IDENTITY)? {
        Some(v) => Ok(Some(Identity::decode(v.value())?)),
        None => Ok(None),
    }
}

fn save_identity(db: &Db, ident: &Identity) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(RAFT_STATE)?
        .insert(meta::IDENTITY, ident.encode().as_bytes())?;
    txn.commit()?;
    Ok(())
}

fn load_applied(db: &Db) -> Result<(u64, u64), StoreError> {
    let txn = db.begin_read()?;
    let t = txn.open_table(RAFT_STATE)?;
    Ok(store::read_pair(&t, meta::APPLIED)?.unwrap_or((0, 0)))
}

fn load_members(db: &Db) -> Result<Vec<Member>, StoreError> {
    let txn = db.begin_read()?;
    membership::load_all(&txn.open_table(MEMBERS)?)
}

/// A half-received snapshot from before a crash is useless: start the next one clean.
fn clear_staged(db: &Db) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(STAGED_KV)?.retain(|_, _| false)?;
    txn.open_table(STAGED_MEMBERS)?.retain(|_, _| false)?;
    txn.open_table(RAFT_STATE)?.remove(meta::STAGED)?;
    txn.commit()?;
    Ok(())
}

fn peer_addrs(members: &[Member], self_id: u64) -> Vec<(u64, SocketAddr)> {
    members
        .iter()
        .filter(|m| m.id != self_id && m.state != MemberState::Removed)
        .map(|m| (m.id, m.raft_addr))
        .collect()
}

impl Node {
    /// The loop: wait for input or the next tick, feed raft, handle what raft has ready.
    fn run(mut self) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(input) => {
                    if !self.handle_input(input) {
                        break;
                    }
                    // Take whatever else is queued so one Ready (one fsync) covers it all.
                    let mut stop = false;
                    for _ in 0..MAX_INPUTS_PER_STEP {
                        match self.rx.try_recv() {
                            Ok(input) => {
                                if !self.handle_input(input) {
                                    stop = true;
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    if stop {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                self.ticks += 1;
                next_tick = if now > next_tick + self.tick {
                    now + self.tick
                } else {
                    next_tick + self.tick
                };
                self.on_tick(now);
            }
            self.propose_parked();
            self.start_read_round();
            if self.raw.has_ready()
                && let Err(e) = self.handle_ready()
            {
                crit!(self.logger, "storage failure, stopping the node"; "error" => %e);
                eprintln!("kvd: storage failure, stopping: {e}");
                std::process::exit(1);
            }
            for done in self.snapshot_acks.drain(..) {
                let _ = done.send(());
            }
            self.publish_status();
        }
        self.fail_all("ERR server is shutting down");
        info!(self.logger, "raft loop stopped");
    }

    /// Handles one input; false means stop.
    fn handle_input(&mut self, input: Input) -> bool {
        match input {
            Input::Propose {
                argv,
                deadline,
                reply,
            } => self.propose(argv, deadline, reply, false),
            Input::ReadIndex { deadline, reply } => self.pending_reads.push((deadline, reply)),
            Input::Message(m) => self.step(*m),
            Input::InstallSnapshot { msg, done } => {
                self.step(*msg);
                self.snapshot_acks.push(done);
            }
            Input::Unreachable(id) => self.raw.report_unreachable(id),
            Input::SnapshotDone { to, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
                if !ok {
                    self.raw.report_unreachable(to);
                }
            }
            Input::Adopt { cluster_id, reply } => {
                let ok = self.adopt(cluster_id);
                let _ = reply.send(ok);
            }
            Input::Shutdown => return false,
        }
        true
    }

    fn step(&mut self, m: Message) {
        if self.removed {
            return;
        }
        let from = m.from;
        let kind = m.get_msg_type();
        if let Err(e) = self.raw.step(m) {
            // Messages from peers raft-rs does not know (not yet, or no longer, members) are
            // expected around membership changes; anything else is worth a line.
            if !matches!(e, raft::Error::StepPeerNotFound) {
                warn!(self.logger, "raft step failed"; "from" => from, "type" => ?kind, "error" => %e);
            }
        }
    }

    /// Hands a client write to raft, or parks it until there is a leader to take it.
    fn propose(
        &mut self,
        argv: Vec<Bytes>,
        deadline: Instant,
        reply: oneshot::Sender<Reply>,
        fenced: bool,
    ) {
        if self.removed {
            let _ = reply.send(Reply::error("ERR this node was removed from the cluster"));
            return;
        }
        if self.identity.cluster_id == 0 || self.raw.raft.leader_id == 0 {
            self.parked.push_back(Parked {
                argv,
                deadline,
                reply,
                fenced,
            });
            return;
        }
        self.next_request = self.next_request.wrapping_add(1);
        let request_id = self.next_request;
        let term = self.raw.raft.term;
        let p = Proposal {
            origin: self.identity.id,
            request_id,
            term,
            argv,
        };
        match self.raw.propose(vec![], p.encode()) {
            Ok(()) => {
                self.waiters.insert(
                    request_id,
                    Waiter {
                        argv: p.argv,
                        term,
                        deadline,
                        reply,
                    },
                );
            }
            Err(_) => {
                // Dropped by raft-rs (leader stepping down, transfer in progress, no leader):
                // it never entered the log, so trying again later is safe.
                self.parked.push_back(Parked {
                    argv: p.argv,
                    deadline,
                    reply,
                    fenced,
                });
            }
        }
    }

    fn propose_parked(&mut self) {
        if self.parked.is_empty() || self.raw.raft.leader_id == 0 || self.identity.cluster_id == 0 {
            return;
        }
        let n = self.parked.len();
        for _ in 0..n {
            let Some(p) = self.parked.pop_front() else {
                break;
            };
            self.propose(p.argv, p.deadline, p.reply, p.fenced);
            if self.raw.raft.leader_id == 0 {
                break;
            }
        }
    }

    /// Once per tick: deadlines, leadership duties, housekeeping.
    fn on_tick(&mut self, now: Instant) {
        self.expire(now);
        self.retry_read_rounds(now);
        if self.raw.raft.state == StateRole::Leader {
            self.reconcile_membership();
        } else if self.raw.raft.leader_id == 0 && !self.removed {
            campaign_if_alone(&mut self.raw, self.identity.id);
        }
    }

    /// Answers every request whose deadline passed, saying what is known about it.
    fn expire(&mut self, now: Instant) {
        let mut keep = VecDeque::with_capacity(self.parked.len());
        for p in self.parked.drain(..) {
            if p.deadline <= now || p.reply.is_closed() {
                let msg = if p.fenced {
                    "TRYAGAIN write not applied: raft leadership changed and no new leader took it in time"
                } else {
                    "CLUSTERDOWN no raft leader: write not applied"
                };
                let _ = p.reply.send(Reply::error(msg));
            } else {
                keep.push_back(p);
            }
        }
        self.parked = keep;
        let expired: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.deadline <= now || w.reply.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(w) = self.waiters.remove(&id) {
                let _ = w.reply.send(Reply::error(
                    "TIMEOUT write outcome unknown: proposed but not committed in time; it may still be applied",
                ));
            }
        }
        let mut i = 0;
        while i < self.pending_reads.len() {
            if self.pending_reads[i].0 <= now {
                let (_, r) = self.pending_reads.swap_remove(i);
                let _ = r.send(Err(no_leader_for_read()));
            } else {
                i += 1;
            }
        }
    }

    /// Starts one ReadIndex round for all reads that arrived since the last one. Reads never
    /// join a round already in flight: its index may predate them.
    fn start_read_round(&mut self) {
        if self.pending_reads.is_empty() || self.removed {
            return;
        }
        let ctx = random_u64();
        self.raw.read_index(ctx.to_be_bytes().to_vec());
        self.read_rounds.insert(
            ctx,
            ReadRound {
                started_tick: self.ticks,
                readers: std::mem::take(&mut self.pending_reads),
            },
        );
    }

    /// raft-rs drops ReadIndex requests silently (no leader, or a new leader that has not yet
    /// committed an entry of its term): rounds not answered in a few ticks are asked again.
    fn retry_read_rounds(&mut self, now: Instant) {
        let stale: Vec<u64> = self
            .read_rounds
            .iter()
            .filter(|(_, r)| self.ticks - r.started_tick >= READ_ROUND_TICKS as u64)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(round) = self.read_rounds.remove(&k) {
                for (deadline, reply) in round.readers {
                    if deadline <= now {
                        let _ = reply.send(Err(no_leader_for_read()));
                    } else {
                        self.pending_reads.push((deadline, reply));
                    }
                }
            }
        }
    }

    fn finish_read_rounds(&mut self, states: Vec<raft::ReadState>) {
        for rs in states {
            if rs.request_ctx.len() != 8 {
                continue;
            }
            let mut k = [0u8; 8];
            k.copy_from_slice(&rs.request_ctx);
            if let Some(round) = self.read_rounds.remove(&u64::from_be_bytes(k)) {
                for (_, reply) in round.readers {
                    let _ = reply.send(Ok(rs.index));
                }
            }
        }
    }

    /// The Ready cycle, in the order raft-rs requires (design rule 1).
    fn handle_ready(&mut self) -> Result<(), StoreError> {
        let mut rd = self.raw.ready();
        if let Some(ss) = rd.ss() {
            self.on_soft_state(ss.raft_state, ss.leader_id);
        }
        // 1. Messages to followers go out before our own write, so the leader's fsync overlaps
        //    theirs (raft-rs only puts messages here that are safe to send before persisting).
        self.send(rd.take_messages());
        if !rd.read_states().is_empty() {
            self.finish_read_rounds(rd.take_read_states());
        }

        // 2-4. One transaction: an incoming snapshot, the committed entries with the applied
        //      index, then the new entries and hard state. Durable before anything below.
        let txn = self.db.begin_write()?;
        let mut outcomes = Vec::new();
        let snapshot_installed = !rd.snapshot().is_empty();
        if snapshot_installed {
            self.install_snapshot(&txn, rd.snapshot())?;
        }
        let committed = rd.take_committed_entries();
        self.apply_committed(&txn, committed, &mut outcomes)?;
        self.raw.mut_store().append_in(&txn, rd.entries())?;
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state_in(&txn, hs)?;
        }
        let durable = rd.must_sync() || snapshot_installed;
        self.commit(txn, durable)?;
        if snapshot_installed {
            self.after_snapshot()?;
        }
        self.finish_apply(outcomes);

        // 5. Messages that must follow our own persistence (votes, append responses).
        self.send(rd.take_persisted_messages());
        let mut light = self.raw.advance(rd);

        // 6. What became committed once our entries were durable (the leader's own acks).
        self.send(light.take_messages());
        let committed = light.take_committed_entries();
        if light.commit_index().is_some() || !committed.is_empty() {
            let txn = self.db.begin_write()?;
            if let Some(commit) = light.commit_index() {
                let mut hs = self.raw.store().hard_state().clone();
                hs.commit = commit;
                self.raw.mut_store().set_hard_state_in(&txn, &hs)?;
            }
            let mut outcomes = Vec::new();
            self.apply_committed(&txn, committed, &mut outcomes)?;
            // The entries applied here are already durable in the log; if this commit is lost
            // in a crash they are applied again from the log on restart.
            self.commit(txn, false)?;
            self.finish_apply(outcomes);
        }
        self.raw.advance_apply();
        Ok(())
    }

    fn commit(&self, mut txn: WriteTransaction, durable: bool) -> Result<(), StoreError> {
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        txn.commit()?;
        Ok(())
    }

    /// Applies committed entries to the state machine inside `txn` and records the applied
    /// index there too. Replies for this node's clients are collected in `outcomes` and sent only
    /// after the transaction commits.
    fn apply_committed(
        &mut self,
        txn: &WriteTransaction,
        entries: Vec<Entry>,
        outcomes: &mut Vec<(u64, Outcome)>,
    ) -> Result<(), StoreError> {
        let Some(last) = entries.last() else {
            return Ok(());
        };
        let (last_index, last_term) = (last.index, last.term);
        let mut members_changed = false;
        {
            let mut view = WriteView::open(txn)?;
            for e in &entries {
                if e.index <= self.applied_index {
                    continue;
                }
                match e.get_entry_type() {
                    EntryType::EntryNormal => {
                        if !e.data.is_empty() {
                            members_changed |= self.apply_normal(&mut view, e, outcomes)?;
                        }
                    }
                    EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                        self.apply_conf_change(txn, &mut view, e)?;
                        members_changed = true;
                    }
                }
                self.applied_index = e.index;
                if e.term > self.applied_term {
                    self.applied_term = e.term;
                    self.fence_older_proposals(outcomes);
                }
            }
        }
        txn.open_table(RAFT_STATE)?.insert(
            meta::APPLIED,
            store::encode_pair(last_index, last_term).as_slice(),
        )?;
        self.maybe_compact(txn)?;
        if members_changed {
            self.members = membership::load_all(&txn.open_table(MEMBERS)?)?;
            self.transport
                .set_peers(peer_addrs(&self.members, self.identity.id));
        }
        Ok(())
    }

    /// Applies one client write; true if it changed the member list.
    fn apply_normal(
        &mut self,
        view: &mut WriteView,
        e: &Entry,
        outcomes: &mut Vec<(u64, Outcome)>,
    ) -> Result<bool, StoreError> {
        let p = match Proposal::decode(&e.data) {
            Ok(p) => p,
            Err(err) => {
                // Deterministic on every node: skip it, loudly.
                error!(self.logger, "skipping undecodable entry"; "index" => e.index, "error" => %err);
                return Ok(false);
            }
        };
        let mine = p.origin == self.identity.id;
        if p.term != e.term {
            if mine {
                outcomes.push((p.request_id, Outcome::Fenced));
            }
            return Ok(false);
        }
        let conf_state = self.raw.store().conf_state().clone();
        let ctx = ApplyCtx {
            index: e.index,
            conf_state: &conf_state,
        };
        let (reply, membership) = match p.argv.first().and_then(|n| cmd::lookup(n)) {
            Some(spec) => match spec.kind {
                Kind::Write { apply, .. } => (
                    apply(view, &ctx, &p.argv)?,
                    matches!(spec.name, "join" | "leave" | "remove"),
                ),
                _ => (Reply::error("ERR not a write command"), false),
            },
            None => (cmd::unknown_command(&p.argv), false),
        };
        if mine {
            outcomes.push((p.request_id, Outcome::Applied(reply)));
        }
        Ok(membership)
    }

    /// Applies a configuration change and records the new configuration in the same
    /// transaction; a removed node's member record becomes `Removed` for good.
    fn apply_conf_change(
        &mut self,
        txn: &WriteTransaction,
        view: &mut WriteView,
        e: &Entry,
    ) -> Result<(), StoreError> {
        let cc: ConfChangeV2 = if e.get_entry_type() == EntryType::EntryConfChange {
            // kvd proposes only V2; a V1 change is read as the same single change.
            let v1 = decode_pb::<ConfChange>("conf change", &e.data)?;
            let mut single = ConfChangeSingle::default();
            single.set_change_type(v1.get_change_type());
            single.node_id = v1.node_id;
            let mut v2 = ConfChangeV2::default();
            v2.set_changes(vec![single].into());
            v2
        } else {
            decode_pb::<ConfChangeV2>("conf change", &e.data)?
        };
        let cs = match self.raw.apply_conf_change(&cc) {
            Ok(cs) => cs,
            Err(err) => {
                warn!(self.logger, "conf change rejected"; "index" => e.index, "error" => %err);
                return Ok(());
            }
        };
        self.raw.mut_store().set_conf_state_in(txn, &cs)?;
        for c in cc.get_changes() {
            let name = self
                .members
                .iter()
                .find(|m| m.id == c.node_id)
                .map(|m| m.name.clone())
                .unwrap_or_else(|| c.node_id.to_string());
            info!(self.logger, "membership changed"; "change" => ?c.get_change_type(), "member" => &name);
            if c.get_change_type() == ConfChangeType::RemoveNode {
                let all = membership::load_all(&view.members)?;
                if let Some(m) = all.into_iter().find(|m| m.id == c.node_id) {
                    membership::save(
                        &mut view.members,
                        &Member {
                            state: MemberState::Removed,
                            ..m
                        },
                    )?;
                }
                if c.node_id == self.identity.id {
                    warn!(self.logger, "this node was removed from the cluster");
                    self.removed = true;
                }
            }
        }
        Ok(())
    }

    /// After applying an entry of a newer term, no proposal made in an older term can commit
    /// any more (see `proposal`): those waiters are definitely not applied and are proposed again.
    fn fence_older_proposals(&mut self, outcomes: &mut Vec<(u64, Outcome)>) {
        let term = self.applied_term;
        for (id, w) in &self.waiters {
            if w.term < term {
                outcomes.push((*id, Outcome::Fenced));
            }
        }
    }

    /// Sends the results of applied entries to their clients (after the transaction committed).
    fn finish_apply(&mut self, outcomes: Vec<(u64, Outcome)>) {
        for (id, outcome) in outcomes {
            let Some(w) = self.waiters.remove(&id) else {
                continue;
            };
            match outcome {
                Outcome::Applied(reply) => {
                    let _ = w.reply.send(reply);
                }
                Outcome::Fenced => self.parked.push_back(Parked {
                    argv: w.argv,
                    deadline: w.deadline,
                    reply: w.reply,
                    fenced: true,
                }),
            }
        }
        self.applied_tx.send_replace(self.applied_index);
    }

    /// Drops applied log entries once the log is long, keeping a tail for slow followers.
    fn maybe_compact(&mut self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let first = self.raw.store().first_index_now();
        if self.applied_index < first || self.applied_index - first + 1 <= self.compact_entries {
            return Ok(());
        }
        let upto = self.applied_index.saturating_sub(self.compact_keep);
        if upto >= first {
            self.raw.mut_store().compact_in(txn, upto)?;
        }
        Ok(())
    }

    /// Replaces the state machine with a received snapshot (already staged by the transport)
    /// and resets the log, all in `txn`.
    fn install_snapshot(
        &mut self,
        txn: &WriteTransaction,
        snap: &Snapshot,
    ) -> Result<(), StoreError> {
        let m = snap.get_metadata();
        let staged = store::read_pair(&txn.open_table(RAFT_STATE)?, meta::STAGED)?;
        if staged != Some((m.index, m.term)) {
            return Err(StoreError::corrupt(
                "snapshot",
                format!(
                    "raft installs snapshot {}/{} but {:?} is staged",
                    m.index, m.term, staged
                ),
            ));
        }
        txn.delete_table(KV)?;
        txn.rename_table(STAGED_KV, KV)?;
        txn.delete_table(MEMBERS)?;
        txn.rename_table(STAGED_MEMBERS, MEMBERS)?;
        txn.open_table(STAGED_KV)?;
        txn.open_table(STAGED_MEMBERS)?;
        {
            let mut state = txn.open_table(RAFT_STATE)?;
            state.remove(meta::STAGED)?;
            state.insert(
                meta::APPLIED,
                store::encode_pair(m.index, m.term).as_slice(),
            )?;
        }
        self.raw.mut_store().install_snapshot_in(txn, m)?;
        self.applied_index = m.index;
        self.applied_term = self.applied_term.max(m.term);
        info!(self.logger, "installed snapshot"; "index" => m.index, "term" => m.term);
        Ok(())
    }

    fn after_snapshot(&mut self) -> Result<(), StoreError> {
        self.members = load_members(&self.db)?;
        self.transport
            .set_peers(peer_addrs(&self.members, self.identity.id));
        let voters = &self.raw.store().conf_state().voters;
        let learners = &self.raw.store().conf_state().learners;
        let me = self.identity.id;
        if !voters.contains(&me)
            && !learners.contains(&me)
            && self
                .members
                .iter()
                .any(|m| m.id == me && m.state == MemberState::Removed)
        {
            self.removed = true;
        }
        Ok(())
    }

    /// Leader only: move the raft configuration one step towards the member list.
    fn reconcile_membership(&mut self) {
        if self.raw.raft.has_pending_conf() || self.raw.raft.lead_transferee.is_some() {
            return;
        }
        let cs = self.raw.store().conf_state().clone();
        let me = self.identity.id;
        let in_conf = |id: u64| cs.voters.contains(&id) || cs.learners.contains(&id);
        let members = self.members.clone();
        // Remove members that are leaving (the leader itself last, after handing over).
        for m in &members {
            if m.state != MemberState::Active && in_conf(m.id) {
                if m.id == me {
                    self.hand_over_leadership();
                    return;
                }
                self.propose_conf_change(ConfChangeType::RemoveNode, m);
                return;
            }
        }
        // Add new members as learners; promote learners that have caught up.
        let commit = self.raw.raft.raft_log.committed;
        for m in &members {
            if m.state != MemberState::Active {
                continue;
            }
            if !in_conf(m.id) {
                self.propose_conf_change(ConfChangeType::AddLearnerNode, m);
                return;
            }
            if cs.learners.contains(&m.id) {
                let matched = self
                    .raw
                    .raft
                    .prs()
                    .get(m.id)
                    .map(|p| p.matched)
                    .unwrap_or(0);
                if matched + PROMOTE_LAG >= commit && matched > 0 {
                    self.propose_conf_change(ConfChangeType::AddNode, m);
                    return;
                }
            }
        }
    }

    fn propose_conf_change(&mut self, kind: ConfChangeType, m: &Member) {
        let mut single = ConfChangeSingle::default();
        single.set_change_type(kind);
        single.node_id = m.id;
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single].into());
        info!(self.logger, "proposing membership change"; "change" => ?kind, "member" => &m.name);
        if let Err(e) = self
            .raw
            .propose_conf_change(m.name.clone().into_bytes(), cc)
        {
            warn!(self.logger, "membership change not proposed"; "error" => %e);
        }
    }

    /// The leader is leaving: give leadership to the most up-to-date other voter; the new
    /// leader then removes this node.
    fn hand_over_leadership(&mut self) {
        let me = self.identity.id;
        let best = self
            .raw
            .store()
            .conf_state()
            .voters
            .iter()
            .filter(|&&v| v != me)
            .filter_map(|&v| self.raw.raft.prs().get(v).map(|p| (p.matched, v)))
            .max();
        if let Some((_, to)) = best {
            info!(self.logger, "handing leadership over before leaving"; "to" => to);
            self.raw.transfer_leader(to);
        }
    }

    /// A node started with --join (or a pristine bootstrapped one, see `Input::Adopt`) becomes
    /// part of the cluster whose peer contacted it.
    fn adopt(&mut self, cluster_id: u64) -> bool {
        if self.identity.cluster_id == cluster_id {
            return true;
        }
        if self.identity.cluster_id != 0 && !self.is_pristine() {
            return false;
        }
        match self.reset_for_adoption(cluster_id) {
            Ok(()) => {
                info!(self.logger, "joined cluster"; "cluster_id" => format!("{cluster_id:016x}"));
                true
            }
            Err(e) => {
                error!(self.logger, "cannot join cluster"; "error" => %e);
                false
            }
        }
    }

    /// A bootstrapped node that never held anything but itself: no user data, no other member,
    /// no entry beyond its two bootstrap entries and empty leader entries.
    fn is_pristine(&self) -> bool {
        let check = || -> Result<bool, StoreError> {
            let txn = self.db.begin_read()?;
            if !redb::ReadableTableMetadata::is_empty(&txn.open_table(KV)?)? {
                return Ok(false);
            }
            let members = membership::load_all(&txn.open_table(MEMBERS)?)?;
            if members.iter().any(|m| m.id != self.identity.id) {
                return Ok(false);
            }
            let log = txn.open_table(LOG)?;
            for row in log.range(3u64..)? {
                let (_, v) = row?;
                let e: Entry = decode_pb("raft entry", v.value().get(8..).unwrap_or(&[]))?;
                if !e.data.is_empty() {
                    return Ok(false);
                }
            }
            Ok(self.raw.store().first_index_now() == 1)
        };
        check().unwrap_or(false)
    }

    fn reset_for_adoption(&mut self, cluster_id: u64) -> Result<(), StoreError> {
        self.identity.cluster_id = cluster_id;
        let txn = self.db.begin_write()?;
        txn.open_table(LOG)?.retain(|_, _| false)?;
        txn.open_table(KV)?.retain(|_, _| false)?;
        txn.open_table(MEMBERS)?.retain(|_, _| false)?;
        {
            let mut state = txn.open_table(RAFT_STATE)?;
            state.retain(|_, _| false)?;
            state.insert(meta::IDENTITY, self.identity.encode().as_bytes())?;
        }
        txn.commit()?;
        let storage = RaftStorage::load(self.db.clone(), self.raw.store().snapshots())?;
        let raw = RawNode::new(
            &raft_config(self.identity.id, 0),
            storage,
            &self.logger.new(o!("raft" => true)),
        )
        .map_err(|e| StoreError::corrupt("raft", e.to_string()))?;
        self.raw = raw;
        self.applied_index = 0;
        self.applied_term = 0;
        self.members.clear();
        self.transport.set_identity(self.identity.clone());
        self.fail_all("TRYAGAIN this node is joining another cluster");
        Ok(())
    }

    fn on_soft_state(&mut self, state: StateRole, leader: u64) {
        if leader != self.last_leader {
            self.last_leader = leader;
            let name = self
                .members
                .iter()
                .find(|m| m.id == leader)
                .map(|m| m.name.clone())
                .unwrap_or_else(|| leader.to_string());
            if state == StateRole::Leader {
                info!(self.logger, "became leader"; "term" => self.raw.raft.term);
            } else if leader != 0 {
                info!(self.logger, "following leader"; "leader" => name, "term" => self.raw.raft.term);
            } else {
                info!(self.logger, "no leader"; "term" => self.raw.raft.term);
            }
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        for id in self.transport.send(msgs) {
            self.raw.report_unreachable(id);
        }
    }

    fn role(&self) -> Role {
        if self.removed {
            return Role::Removed;
        }
        let cs = self.raw.store().conf_state();
        let me = self.identity.id;
        if self.identity.cluster_id == 0 || (!cs.voters.contains(&me) && !cs.learners.contains(&me))
        {
            return Role::Joining;
        }
        if cs.learners.contains(&me) {
            return Role::Learner;
        }
        match self.raw.raft.state {
            StateRole::Leader => Role::Leader,
            StateRole::Follower => Role::Follower,
            StateRole::Candidate => Role::Candidate,
            StateRole::PreCandidate => Role::PreCandidate,
        }
    }

    /// Publishes what INFO/ROLE/CLUSTER show, when it changed.
    fn publish_status(&mut self) {
        let role = self.role();
        let raft = &self.raw.raft;
        let store = self.raw.store();
        let cs = store.conf_state();
        let leader = raft.state == StateRole::Leader;
        let members = self
            .members
            .iter()
            .map(|m| MemberStatus {
                member: m.clone(),
                role: member_role(m, cs.voters.contains(&m.id), cs.learners.contains(&m.id)),
                matched: if leader {
                    raft.prs().get(m.id).map(|p| p.matched)
                } else {
                    None
                },
            })
            .collect();
        let status = RaftStatus {
            id: self.identity.id,
            name: self.identity.name.clone(),
            role,
            term: raft.term,
            leader_id: raft.leader_id,
            commit: raft.raft_log.committed,
            applied: self.applied_index,
            first_index: store.first_index_now(),
            last_index: raft.raft_log.last_index(),
            members,
        };
        if self.last_role != Some(role) {
            if self.last_role.is_some() {
                info!(self.logger, "role changed"; "role" => role.as_str(), "term" => status.term);
            }
            self.last_role = Some(role);
        }
        match self.status.lock() {
            Ok(mut s) => *s = Arc::new(status),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(status),
        }
    }

    fn fail_all(&mut self, msg: &'static str) {
        for (_, w) in self.waiters.drain() {
            let _ = w.reply.send(Reply::error(msg));
        }
        for p in self.parked.drain(..) {
            let _ = p.reply.send(Reply::error(msg));
        }
        for (_, r) in self.pending_reads.drain(..) {
            let _ = r.send(Err(Reply::error(msg)));
        }
        for (_, round) in self.read_rounds.drain() {
            for (_, r) in round.readers {
                let _ = r.send(Err(Reply::error(msg)));
            }
        }
    }
}

fn no_leader_for_read() -> Reply {
    Reply::error("CLUSTERDOWN no raft leader confirmed this read in time")
}
