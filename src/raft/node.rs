//! The raft loop: one thread owns the `RawNode` and does every step of the protocol in the order
//! raft-rs requires (see `handle_ready`). Clients and peers reach it only through `Input`s: sent
//! by other threads, or read by this one from the peers' connections (`inbox.rs`).
//!
//! A write's life here: `propose` gathers it into the current batch, `flush_proposals` hands the
//! batch to raft-rs as one proposal (each entry carrying a request id and the current term),
//! raft-rs appends it (or forwards it to the leader), and `handle_ready` stages each Ready in
//! memory and hands its disk work to the persistence worker (`persist.rs`), which writes many
//! Readies in one durable redb transaction (group commit). Entries raft-rs reports committed are
//! applied by the worker in that same kind of transaction, with the applied index; when it reports
//! back (`on_persisted`), the node that proposed a write answers its waiting client with the result.
//!
//! Readies that carry a snapshot or a committed conf change take the synchronous path
//! (`handle_ready_sync`): the worker is drained first, then the Ready is handled here, in order.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
    Message, MessageType, Snapshot,
};
use raft::{RawNode, SnapshotStatus, StateRole};
use redb::WriteTransaction;
use slog::{Logger, info, warn};
use tokio::sync::{oneshot, watch};

use super::identity::{Identity, random_u64};
use super::inbox::{Disconnected, Inbox};
use super::inflight::InFlightReadies;
use super::membership::{self, Member, MemberState};
use super::membership::{load_members, peer_addrs};
use super::pending::{Pending, Write};
use super::persist::{self, Done, Job};
use super::publisher::StatusPublisher;
use super::read_index::ReadRounds;
use super::status::{MemberStatus, RaftCounters, RaftStatus, Role, member_role};
use super::storage::{RaftStorage, decode_pb, write_compaction};
use super::transport::Transport;
use super::{Input, RaftError};
use crate::config::Config;
use crate::events::Event;
use crate::fatal;
use crate::kv::machine::{Configuration, Outcome, StateMachine, Summary};
use crate::kv::{MemState, WriteView};
use crate::log_db::LogDb;
use crate::store::{Db, MEMBERS, StoreError};

/// Inputs handled between two Readies: bounds latency while still batching proposals.
const MAX_INPUTS_PER_STEP: usize = 4096;
/// Writes proposed at once even while an fsync is in flight.
const MAX_BATCH: usize = 4096;
/// How long `drain_worker` sleeps between looks at whether its senders are gone.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

pub struct Node {
    pub(super) raw: RawNode<RaftStorage>,
    /// The state database (see `store`).
    pub(super) db: Db,
    /// The log database.
    pub(super) log: LogDb,
    pub(super) identity: Identity,
    pub(super) compact_entries: u64,
    pub(super) compact_keep: u64,
    pub(super) compact_log_bytes: u64,
    pub(super) inbox: Inbox,
    pub(super) transport: Transport,
    pub(super) logger: Logger,
    pub(super) tick: Duration,
    pub(super) ticks: u64,
    /// Client writes from batch to reply (see `pending`).
    pub(super) pending: Pending,
    /// Highest term of any applied entry: proposals from older terms can no longer commit.
    pub(super) applied_term: u64,
    pub(super) applied_index: u64,
    pub(super) members: Vec<Member>,
    pub(super) reads: ReadRounds,
    pub(super) publisher: StatusPublisher,
    pub(super) applied_tx: watch::Sender<u64>,
    pub(super) heard: Arc<super::heard::Heard>,
    pub(super) removed: bool,
    /// Receivers of staged snapshots waiting for the Ready that installs them to be handled.
    pub(super) snapshot_acks: Vec<oneshot::Sender<()>>,
    pub(super) counters: RaftCounters,
    /// Disk work for the persistence worker.
    pub(super) jobs: mpsc::Sender<Job>,
    /// Readies handed on and not yet reported durable (see `inflight`).
    pub(super) outstanding: InFlightReadies,
    /// Inputs taken but not yet handled: peers' messages read from their links (`inbox`), and
    /// inputs that arrived while the raft thread waited for the worker (`drain_worker`).
    pub(super) deferred: VecDeque<Input>,
    /// A compaction decided after an apply, to ride with the next job.
    pub(super) pending_compaction: Option<(u64, u64)>,
    /// The replicated state (see `kv::machine`).
    pub(super) machine: Arc<StateMachine>,
    /// Highest applied index the state database holds durably: the log is compacted only up
    /// to here.
    pub(super) flushed_applied: u64,
}

/// What startup hands the raft thread: the state loaded from disk and its links to the rest
/// of the process.
pub(super) struct NodeParts {
    pub(super) raw: RawNode<RaftStorage>,
    pub(super) db: Db,
    pub(super) log: LogDb,
    pub(super) identity: Identity,
    pub(super) members: Vec<Member>,
    /// Index and term of the last applied entry, as the table holds them.
    pub(super) applied: (u64, u64),
    pub(super) inbox: Inbox,
    pub(super) jobs: mpsc::Sender<Job>,
    pub(super) transport: Transport,
    /// The replicated state (see `kv::machine`).
    pub(super) machine: Arc<StateMachine>,
    /// Shared with every `RaftHandle`, as is the receiving end of `applied_tx`.
    pub(super) status: Arc<Mutex<Arc<RaftStatus>>>,
    pub(super) applied_tx: watch::Sender<u64>,
    /// When each peer was last heard from (shared with every `RaftHandle`).
    pub(super) heard: Arc<super::heard::Heard>,
    pub(super) logger: Logger,
}

impl Node {
    /// A node ready to `run`, its first status already published.
    pub(super) fn new(cfg: &Config, parts: NodeParts) -> Node {
        let NodeParts {
            raw,
            db,
            log,
            identity,
            members,
            applied: (applied_index, applied_term),
            inbox,
            jobs,
            transport,
            machine,
            status,
            applied_tx,
            heard,
            logger,
        } = parts;
        let removed = members
            .iter()
            .any(|m| m.id == identity.id && m.state == MemberState::Removed);
        let mut node = Node {
            raw,
            db,
            log,
            identity,
            compact_entries: cfg.compact_entries,
            compact_keep: cfg.compact_keep,
            compact_log_bytes: cfg.compact_log_bytes,
            inbox,
            transport,
            logger,
            tick: cfg.tick,
            ticks: 0,
            pending: Pending::new(random_u64()),
            applied_term,
            applied_index,
            members,
            reads: ReadRounds::default(),
            publisher: StatusPublisher::new(status),
            applied_tx,
            heard,
            removed,
            snapshot_acks: Vec::new(),
            counters: RaftCounters::default(),
            jobs,
            outstanding: InFlightReadies::default(),
            deferred: VecDeque::new(),
            pending_compaction: None,
            machine,
            flushed_applied: applied_index,
        };
        node.publish_status();
        node
    }

    /// The loop: wait for input or the next tick, feed raft, handle what raft has ready.
    pub(super) fn run(mut self) {
        crate::fatal::debug_panic_point("raft");
        let mut next_tick = Instant::now() + self.tick;
        'outer: loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            // What the peers sent while this thread was busy, then (or else) what is queued.
            // Peers are not read while a step's worth of input waits: TCP holds them back.
            if self.deferred.len() < MAX_INPUTS_PER_STEP {
                self.inbox.read_peers(&mut self.deferred);
            }
            let first = match self.deferred.pop_front() {
                Some(input) => Some(input),
                None => match self.inbox.wait(wait, &mut self.deferred) {
                    Ok(Some(input)) => Some(input),
                    Ok(None) => self.deferred.pop_front(),
                    Err(Disconnected) => break,
                },
            };
            if let Some(input) = first {
                if !self.handle_input(input) {
                    break;
                }
                // Take whatever else is queued so one Ready covers it all.
                for _ in 0..MAX_INPUTS_PER_STEP {
                    let next = match self.deferred.pop_front() {
                        Some(input) => input,
                        None => match self.inbox.try_recv() {
                            Ok(input) => input,
                            Err(_) => break,
                        },
                    };
                    if !self.handle_input(next) {
                        break 'outer;
                    }
                }
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
                self.pending.retry_soon();
            }
            if self.pending.take_retry() {
                self.propose_parked();
            }
            // Group commit: while an fsync is in flight, let writes gather; they go out as one
            // batch (one append per follower, one fsync each) when it completes.
            if !self.fsync_in_flight() || self.pending.batch_len() >= MAX_BATCH {
                self.flush_proposals();
            }
            self.start_read_round();
            // A Ready written inline can make the next one ready at once (a lone voter's
            // entries commit as they become durable): handle it now, not at the next input.
            for _ in 0..READIES_PER_STEP {
                if !self.raw.has_ready() {
                    break;
                }
                if let Err(e) = self.handle_ready() {
                    fatal::storage_failure(&self.logger, &e);
                }
            }
            for done in self.snapshot_acks.drain(..) {
                let _ = done.send(());
            }
            self.publish_status();
        }
        // Let the worker finish what it holds, so every write it makes durable is answered.
        self.drain_worker();
        // Leave the table current, so the next start need not apply the log's tail again.
        if let Err(e) = self.flush_memtable(true) {
            warn!(self.logger, "cannot write applied state at shutdown"; "error" => %e);
        }
        self.fail_all(RaftError::ShuttingDown);
        info!(self.logger, "raft loop stopped");
    }

    /// Handles one input; false means stop.
    fn handle_input(&mut self, input: Input) -> bool {
        match input {
            Input::Propose {
                db,
                argv,
                deadline,
                reply,
                conn,
                acked,
            } => self.propose(
                Write {
                    conn,
                    ..Write::new(db, argv, deadline, reply)
                }
                .acked(acked),
            ),
            Input::ReadIndex { deadline, reply } => self.reads.add(deadline, reply),
            Input::Message(m) => self.step(*m),
            Input::PeerLink { from, me, stream } => self.inbox.add_link(from, me, stream),
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
            Input::Persisted(done) => self.on_persisted(*done),
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
        if from != self.identity.id {
            self.heard.note(from);
        }
        if let Err(e) = self.raw.step(m) {
            // Messages from peers raft-rs does not know (not yet, or no longer, members) are
            // expected around membership changes; anything else is worth a line.
            if !matches!(e, raft::Error::StepPeerNotFound) {
                warn!(self.logger, "raft step failed"; "from" => from, "type" => ?kind, "error" => %e);
            }
        }
    }

    /// Hands a client write to raft, or parks it until there is a leader to take it.
    fn propose(&mut self, write: Write) {
        if self.removed {
            write.answer(Err(RaftError::Removed));
            return;
        }
        if self.identity.cluster_id == 0 {
            write.answer(Err(RaftError::NotJoined));
            return;
        }
        self.pending.submit(write, self.raw.raft.leader_id != 0);
    }

    /// Proposes every write gathered since the last Ready as one `MsgPropose`, so raft-rs sends
    /// one append per follower for the whole batch instead of one per write.
    fn flush_proposals(&mut self) {
        let term = self.raw.raft.term;
        // The proposer's clock, once per batch: apply's only notion of time.
        let time_ms = crate::kv::wall_clock_ms();
        let entry = |data: Vec<u8>| Entry {
            data: data.into(),
            ..Default::default()
        };
        let origin = self.identity.id;
        let Some((entries, batch)) = self.pending.take_batch(origin, term, time_ms, entry) else {
            return;
        };
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgPropose);
        m.from = self.identity.id;
        m.set_entries(entries.into());
        self.counters.proposals += batch.len() as u64;
        match self.raw.raft.step(m) {
            Ok(()) => self.pending.proposed(batch),
            // Dropped by raft-rs (leader stepping down, transfer in progress, no leader): it
            // never entered the log, so trying again later is safe.
            Err(_) => self.pending.dropped(batch),
        }
    }

    fn propose_parked(&mut self) {
        if !self.pending.has_parked()
            || self.raw.raft.leader_id == 0
            || self.identity.cluster_id == 0
        {
            return;
        }
        for write in self.pending.take_parked() {
            self.propose(write);
        }
    }

    /// Once per tick: deadlines, leadership duties, housekeeping.
    fn on_tick(&mut self, now: Instant) {
        self.pending.expire(now);
        self.reads.on_tick(self.ticks, now);
        if self.raw.raft.state == StateRole::Leader {
            self.reconcile_membership();
        } else if self.raw.raft.leader_id == 0 && !self.removed {
            campaign_if_alone(&mut self.raw, self.identity.id);
        }
        if let Err(e) = self.flush_if_idle() {
            fatal::storage_failure(&self.logger, &e);
        }
    }

    /// Writes the memtable to the table when it is due and no job would take it along (an idle
    /// node), so the log can be compacted and snapshots are recent.
    fn flush_if_idle(&mut self) -> Result<(), StoreError> {
        if !self.outstanding.is_empty() || !self.machine.memtable().read().flush_due() {
            return Ok(());
        }
        let machine = self.machine.clone();
        if machine.start_flush(&mut machine.memtable().write())? {
            return Ok(());
        }
        self.flush_memtable(false)
    }

    /// Writes the memtable to the table now (the worker must be idle), fsynced if `durable` or
    /// due (see `StateMachine::commit_state`).
    fn flush_memtable(&mut self, durable: bool) -> Result<(), StoreError> {
        let machine = self.machine.clone();
        machine.wait_flushed();
        let mut mem = machine.memtable().write();
        let txn = self.db.begin_write()?;
        let flushed = machine.flush(&txn, &mem)?;
        if flushed.is_none() && !durable {
            txn.abort()?;
            return Ok(());
        }
        self.commit_state(txn, &mut mem, flushed, durable)?;
        drop(mem);
        self.schedule_compaction();
        Ok(())
    }

    /// Commits a state transaction, which holds a memtable flush up to `flushed` if that is
    /// Some (`StateMachine::flush`), fsynced if `durable` or due; then the memtable starts anew.
    fn commit_state(
        &mut self,
        txn: WriteTransaction,
        mem: &mut MemState,
        flushed: Option<u64>,
        durable: bool,
    ) -> Result<(), StoreError> {
        let made = self.machine.commit_state(txn, flushed, durable)?;
        if made.is_some() {
            self.counters.durable_commits += 1;
        } else {
            self.counters.apply_commits += 1;
        }
        if flushed.is_some() {
            self.machine.flushed(mem);
        }
        if let Some(index) = made {
            self.flushed_applied = self.flushed_applied.max(index);
        }
        Ok(())
    }

    /// Starts one ReadIndex round for the reads that arrived since the last one.
    fn start_read_round(&mut self) {
        if self.removed {
            return;
        }
        if let Some(ctx) = self.reads.start(random_u64(), self.ticks) {
            self.raw.read_index(ctx);
        }
    }

    /// The Ready cycle, in the order raft-rs requires (design rule 1), with the disk work done
    /// by the persistence worker:
    /// 1. messages a leader may send before persisting go out at once;
    /// 2. entries and hard state are staged in memory (raft-rs reads them back from there) and,
    ///    with the committed entries to apply, handed to the worker as one job;
    /// 3. `advance_append_async` lets raft-rs go on; messages that must follow persistence wait
    ///    in `outstanding` until the worker reports the job durable (`on_persisted`), which is also
    ///    when clients are answered and `advance_apply_to` is called.
    fn handle_ready(&mut self) -> Result<(), StoreError> {
        let mut rd = self.raw.ready();
        self.counters.readies += 1;
        self.counters.entries_appended += rd.entries().len() as u64;
        if let Some(ss) = rd.ss() {
            self.on_soft_state(ss.raft_state, ss.leader_id);
        }
        let sync = !rd.snapshot().is_empty()
            || rd
                .committed_entries()
                .iter()
                .any(|e| e.get_entry_type() != EntryType::EntryNormal);
        if sync {
            return self.handle_ready_sync(rd);
        }
        self.send(rd.take_messages());
        for rs in rd.take_read_states() {
            self.reads.finish(&rs.request_ctx, rs.index);
        }
        let store = self.raw.mut_store();
        let cut = store.stage_entries(rd.entries());
        if let Some(hs) = rd.hs() {
            store.stage_hard_state(hs);
        }
        let job = Job {
            number: rd.number(),
            cut,
            entries: rd.take_entries(),
            hard_state: rd.hs().cloned(),
            committed: rd.take_committed_entries(),
            conf_state: store.conf_state().clone(),
            compaction: self.pending_compaction.take(),
            sync: rd.must_sync(),
        };
        let messages = rd.take_persisted_messages();
        let number = rd.number();
        self.raw.advance_append_async(rd);
        let has_job = !job.is_empty();
        let sync = job.sync;
        if !has_job && self.outstanding.is_empty() {
            // Nothing to write and nothing ahead of it: done already.
            self.raw.on_persist_ready(number);
            self.send(messages);
            return Ok(());
        }
        // No fsync and an idle worker: write here rather than pay two thread hand-offs on the
        // path of every reply (the leader applying a commit, a follower learning one).
        // A follower may also fsync here: it has nothing to overlap with its own persistence, and
        // the next appends simply gather in the channel meanwhile.
        // A lone voter has nothing to overlap its fsync with either: its entries commit when
        // they are durable here, so the worker would only add two hand-offs to every write.
        let inline = has_job
            && self.outstanding.is_empty()
            && (!sync || self.raw.raft.state != StateRole::Leader || self.alone());
        self.outstanding.push(number, messages, has_job, cut, sync);
        if inline {
            // What this Ready committed is answered before its new entries are fsynced.
            let mut batch = vec![job];
            let (early, carry) = persist::apply_batch(&self.machine, &mut batch)?;
            if let Some(applied) = early {
                self.on_persisted(applied);
            }
            let done = persist::finish_batch(&self.log, batch, carry)?;
            self.on_persisted(done);
        } else if has_job && self.jobs.send(job).is_err() {
            return Err(StoreError::WorkerStopped);
        }
        Ok(())
    }

    /// The only voter, with no learner to replicate to.
    fn alone(&self) -> bool {
        let cs = self.raw.store().conf_state();
        cs.voters == [self.identity.id] && cs.learners.is_empty()
    }

    /// True while the worker holds a job that must be fsynced.
    fn fsync_in_flight(&self) -> bool {
        self.outstanding.fsync_in_flight()
    }

    /// The worker made every Ready up to `done.number` durable: release what waited on them.
    fn on_persisted(&mut self, done: Done) {
        if let Some(index) = done.state_durable {
            self.flushed_applied = self.flushed_applied.max(index);
            self.schedule_compaction();
        }
        let Some(number) = done.number else {
            // Only applied so far; the writes of the same batch follow.
            self.counters.apply_commits += 1;
            self.finish_summary(done.applied);
            return;
        };
        if done.sync {
            self.counters.durable_commits += 1;
        } else {
            self.counters.apply_commits += 1;
        }
        let released = self.outstanding.release_through(number);
        if let Some(last) = done.last_entry {
            let durable = self.outstanding.durable_floor(last);
            self.raw.mut_store().mark_durable(durable);
        }
        if let Some(n) = released.number {
            self.raw.on_persist_ready(n);
        }
        self.send(released.messages);
        self.finish_summary(done.applied);
    }

    /// Records what the worker applied: progress, replies, fencing, membership, compaction.
    fn finish_summary(&mut self, summary: Summary) {
        let Some((index, term)) = summary.last else {
            return;
        };
        self.applied_index = index;
        self.counters.entries_applied += summary.count;
        let mut outcomes = summary.mine;
        if term > self.applied_term {
            self.applied_term = term;
            self.fence_older_proposals(&mut outcomes);
        }
        if summary.members_changed {
            match load_members(&self.db) {
                Ok(m) => self.members = m,
                Err(e) => warn!(self.logger, "cannot reload members"; "error" => %e),
            }
            self.transport
                .set_peers(peer_addrs(&self.members, self.identity.id));
        }
        self.raw.advance_apply_to(index);
        self.schedule_compaction();
        self.finish_apply(outcomes, summary.events);
    }

    /// Waits until the worker has made everything handed to it durable (before the raft thread
    /// writes itself, or stops). Other inputs arriving meanwhile are kept for later, in order.
    pub(super) fn drain_worker(&mut self) {
        while self.outstanding.has_jobs() {
            match self.inbox.wait(DRAIN_WAIT, &mut self.deferred) {
                Ok(Some(Input::Persisted(done))) => self.on_persisted(*done),
                Ok(Some(other)) => self.deferred.push_back(other),
                Ok(None) => {}
                Err(Disconnected) => return,
            }
        }
        // Readies without disk work that queued behind the last job.
        let rest = self.outstanding.release_all();
        if let Some(n) = rest.number {
            self.raw.on_persist_ready(n);
        }
        self.send(rest.messages);
    }

    /// After applying, compact the log once it holds more than `compact_entries` applied
    /// entries or `compact_log_bytes`, keeping `compact_keep` of them (at most half the bytes)
    /// for slow followers. The disk part rides with the next job.
    fn schedule_compaction(&mut self) {
        let store = self.raw.store();
        let first = store.first_index_now();
        let over_bytes = store.log_bytes() > self.compact_log_bytes;
        if over_bytes && self.flushed_applied < self.applied_index {
            // Entries past the state's durable applied index are still needed to rebuild it.
            self.machine.request_durable();
        }
        let applied = self.applied_index.min(self.flushed_applied);
        if applied < first || (applied - first < self.compact_entries && !over_bytes) {
            return;
        }
        let mut upto = applied.saturating_sub(self.compact_keep);
        if over_bytes {
            upto = upto.max(store.index_keeping(self.compact_log_bytes / 2).min(applied));
        }
        if upto < first {
            return;
        }
        match self.raw.mut_store().stage_compaction(upto) {
            Ok(Some(point)) => self.pending_compaction = Some(point),
            Ok(None) => {}
            Err(e) => warn!(self.logger, "log compaction skipped"; "error" => %e),
        }
    }

    /// The synchronous Ready cycle, for Readies with a snapshot or a conf change to apply:
    /// drain the worker, then write and apply here, in raft-rs's order.
    fn handle_ready_sync(&mut self, mut rd: raft::Ready) -> Result<(), StoreError> {
        self.drain_worker();
        // With the worker idle no flush starts: let the one in flight finish, so this cycle
        // has the state database's writer and a memtable without a frozen map.
        self.machine.wait_flushed();
        // 1. Messages to followers go out before our own write, so the leader's fsync overlaps
        //    theirs (raft-rs only puts messages here that are safe to send before persisting).
        self.send(rd.take_messages());
        for rs in rd.take_read_states() {
            self.reads.finish(&rs.request_ctx, rs.index);
        }

        // 2-4. The state transaction: an incoming snapshot, the committed entries with the
        //      applied index; then the log transaction: the new entries and hard state (and the
        //      log reset after a snapshot, which the state must hold durably first: a crash
        //      between the two is finished at start, `startup::reconcile`). Durable before
        //      anything below. Readers wait while this runs: a snapshot may replace the table
        //      under the memtable.
        let machine = self.machine.clone();
        let mut mem = machine.memtable().write();
        let stxn = self.db.begin_write()?;
        let ltxn = self.log.begin_write()?;
        if let Some(point) = self.pending_compaction.take() {
            write_compaction(&ltxn, point)?;
        }
        let mut outcomes = Vec::new();
        let mut events = Vec::new();
        let snapshot_installed = !rd.snapshot().is_empty();
        if snapshot_installed {
            self.install_snapshot(&stxn, &ltxn, &mut mem, rd.snapshot())?;
            events.push(Event::Reset);
            // Our pending proposals may or may not be inside it: their fate is unknown here.
            let term = rd.snapshot().get_metadata().term;
            self.pending.covered_by_snapshot(term, &mut outcomes);
        }
        let committed = rd.take_committed_entries();
        self.apply_committed(&stxn, &mut mem, committed, &mut outcomes, &mut events)?;
        let flushed = machine.flush(&stxn, &mem)?;
        self.commit_state(stxn, &mut mem, flushed, snapshot_installed)?;
        if snapshot_installed {
            machine.reset_durability(self.applied_index);
            self.flushed_applied = self.applied_index;
        }
        self.raw.mut_store().append_in(&ltxn, rd.entries())?;
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state_in(&ltxn, hs)?;
        }
        let durable = rd.must_sync() || snapshot_installed;
        self.commit(ltxn, durable)?;
        drop(mem);
        self.schedule_compaction();
        let last = self.raw.store().last_index_now();
        self.raw.mut_store().mark_durable(last);
        if snapshot_installed {
            self.after_snapshot()?;
        }
        self.finish_apply(outcomes, events);

        // 5. Messages that must follow our own persistence (votes, append responses).
        self.send(rd.take_persisted_messages());
        let mut light = self.raw.advance(rd);

        // 6. What became committed once our entries were durable (the leader's own acks).
        self.send(light.take_messages());
        let committed = light.take_committed_entries();
        if let Some(commit) = light.commit_index() {
            // A commit-index-only change may be lost in a crash: raft relearns it (and a start
            // raises it to the applied index, `startup::reconcile`).
            let ltxn = self.log.begin_write()?;
            let mut hs = self.raw.store().hard_state().clone();
            hs.commit = commit;
            self.raw.mut_store().set_hard_state_in(&ltxn, &hs)?;
            self.commit(ltxn, false)?;
        }
        if !committed.is_empty() {
            let stxn = self.db.begin_write()?;
            let mut outcomes = Vec::new();
            let mut events = Vec::new();
            let mut mem = machine.memtable().write();
            self.apply_committed(&stxn, &mut mem, committed, &mut outcomes, &mut events)?;
            let flushed = machine.flush(&stxn, &mem)?;
            self.commit_state(stxn, &mut mem, flushed, false)?;
            drop(mem);
            self.schedule_compaction();
            self.finish_apply(outcomes, events);
        }
        self.raw.advance_apply();
        Ok(())
    }

    fn commit(&mut self, txn: WriteTransaction, durable: bool) -> Result<(), StoreError> {
        if durable {
            self.counters.durable_commits += 1;
        } else {
            self.counters.apply_commits += 1;
        }
        self.log.commit(txn, durable)
    }

    /// Applies committed entries (conf changes among them, through `Configuration` below)
    /// inside `txn` on the raft thread; the state machine records the applied index there too.
    /// Replies for this node's clients are collected in `outcomes`, and what the entries did in
    /// `events`: both are handed out only after the transaction commits.
    fn apply_committed(
        &mut self,
        txn: &WriteTransaction,
        mem: &mut MemState,
        entries: Vec<Entry>,
        outcomes: &mut Vec<(u64, Outcome)>,
        events: &mut Vec<Event>,
    ) -> Result<(), StoreError> {
        let machine = self.machine.clone();
        let mut summary = machine.apply(Some(txn), mem, &entries, self.applied_index, self)?;
        events.append(&mut summary.events);
        let Some((index, term)) = summary.last else {
            return Ok(());
        };
        self.applied_index = index;
        self.counters.entries_applied += summary.count;
        outcomes.extend(summary.mine);
        if term > self.applied_term {
            self.applied_term = term;
            self.fence_older_proposals(outcomes);
        }
        if summary.members_changed {
            self.members = membership::load_all(&txn.open_table(MEMBERS)?)?;
            self.transport
                .set_peers(peer_addrs(&self.members, self.identity.id));
        }
        Ok(())
    }

    /// Applies a configuration change and records the new configuration in the same
    /// transaction; a removed node's member record becomes `Removed` for good.
    fn conf_change(
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
                let all = membership::load_all(view.members()?)?;
                if let Some(m) = all.into_iter().find(|m| m.id == c.node_id) {
                    membership::save(
                        view.members()?,
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
    /// any more (see `kv::entry`): those waiters are definitely not applied and are proposed again.
    fn fence_older_proposals(&mut self, outcomes: &mut Vec<(u64, Outcome)>) {
        self.pending.fence_older(self.applied_term, outcomes);
    }

    /// Sends the results of applied entries to their clients (after the transaction committed).
    /// Publishes what was applied: progress, then the events to this node's listeners, then the
    /// replies to this node's clients.
    fn finish_apply(&mut self, outcomes: Vec<(u64, Outcome)>, events: Vec<Event>) {
        // Publish progress first, so INFO never shows less than what a client was told.
        self.applied_tx.send_replace(self.applied_index);
        // Users an entry changed: this node's connections reload theirs (`crate::acl`).
        crate::acl::published();
        self.machine.events().deliver(&events, self.applied_index);
        self.counters.proposals_fenced += self.pending.finish(outcomes);
    }

    /// Replaces the state machine with a received snapshot (already staged by the transport)
    /// in the state transaction `stxn`, and resets the log in `ltxn`.
    fn install_snapshot(
        &mut self,
        stxn: &WriteTransaction,
        ltxn: &WriteTransaction,
        mem: &mut MemState,
        snap: &Snapshot,
    ) -> Result<(), StoreError> {
        let m = snap.get_metadata();
        self.machine.install_snapshot(stxn, mem, m.index, m.term)?;
        self.raw.mut_store().install_snapshot_in(stxn, ltxn, m)?;
        self.applied_index = m.index;
        self.applied_term = self.applied_term.max(m.term);
        Ok(())
    }

    fn after_snapshot(&mut self) -> Result<(), StoreError> {
        crate::acl::replaced();
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

    fn on_soft_state(&mut self, state: StateRole, leader: u64) {
        if self.publisher.leader_changed(leader) {
            if leader != 0 {
                self.pending.retry_soon();
            }
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
        self.counters.messages_sent += msgs.len() as u64;
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
    pub(super) fn publish_status(&mut self) {
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
            flushed: self.machine.flushed_applied().max(self.flushed_applied),
            durable: self.flushed_applied,
            first_index: store.first_index_now(),
            last_index: raft.raft_log.last_index(),
            members,
            counters: self.counters,
        };
        self.publisher.publish(status, &self.logger);
    }

    /// Answers every client write and read waiting here with `err`.
    pub(super) fn fail_all(&mut self, err: RaftError) {
        self.pending.fail_all(err);
        self.reads.fail_all(err);
    }
}

/// How the state machine reaches raft-rs for configuration changes (see `kv::machine`).
impl Configuration for Node {
    fn conf_state(&self) -> ConfState {
        self.raw.store().conf_state().clone()
    }

    fn apply_conf_change(
        &mut self,
        txn: &WriteTransaction,
        view: &mut WriteView,
        e: &Entry,
    ) -> Result<(), StoreError> {
        self.conf_change(txn, view, e)
    }
}

/// Readies handled back to back in one turn of the loop (more wait for the next input or tick).
const READIES_PER_STEP: usize = 4;

/// Election after 10-20 ticks without a leader; heartbeats every 2.
const ELECTION_TICKS: usize = 10;
const HEARTBEAT_TICKS: usize = 2;

/// The only voter need not wait out an election timeout to lead its own cluster.
pub(super) fn campaign_if_alone(raw: &mut RawNode<RaftStorage>, id: u64) {
    let cs = raw.store().conf_state();
    if cs.voters == [id] && cs.learners.is_empty() && raw.raft.state != StateRole::Leader {
        let _ = raw.campaign();
    }
}

pub(super) fn raft_config(id: u64, applied: u64) -> raft::Config {
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
