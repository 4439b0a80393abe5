//! The state machine: the one owner of the replicated state (the `kv` and `MEMBERS` tables, the
//! memtable over them, the applied index recorded with them) and the only code that changes it.
//!
//! The raft loop calls it at three points, always through these functions: [`StateMachine::apply`]
//! for committed entries (on the persistence worker, or on the raft thread for the Readies that
//! carry a conf change or a snapshot; either way while the other one is idle), [`StateMachine::flush`]
//! to write the memtable with the applied index it covers, [`StateMachine::install_snapshot`]
//! and [`StateMachine::reset`]. Each entry's command runs through the command table it was
//! given (`cmd::apply_write`), so `raft` knows nothing of commands; conf-change entries, which
//! need raft-rs's `RawNode`, are handed back to the caller's [`Configuration`] in log order.
//!
//! Entries that cannot be decoded are skipped on every node alike (and logged with their
//! index); an entry that decodes but names an unknown command or has bad arguments gives every
//! node the same error reply (see `cmd::apply_write`). Neither can stop a node.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft::eraftpb::{ConfState, Entry, EntryType};
use redb::WriteTransaction;
use slog::{Logger, error, info};

use super::entry::Proposal;
use super::memtable::{Frozen, Memtable, State as MemState};
use super::view::{ApplyCtx, WriteView, flush_frozen, flush_into};
use crate::events::{Event, Hub};
use crate::resp::Reply;
use crate::store::{self, Db, RAFT_STATE, StoreError, meta};

/// How a replicated command is applied: the command table's entry point (`cmd::apply_write`),
/// given to the state machine at start. Returns the reply and whether the member list changed.
pub type ApplyCommand =
    fn(&mut WriteView, &ApplyCtx, u8, &[Bytes]) -> Result<(Reply, bool), StoreError>;

/// The commands whose entries change the member records (`cmd::apply_write` reports them as
/// such): applied only in a write transaction, the others need none.
pub const MEMBER_COMMANDS: [&str; 3] = ["join", "leave", "remove"];

/// True if any of `entries` changes the member records (see `MEMBER_COMMANDS`), so they must
/// be applied in a write transaction. Decided from the entries alone, alike on every node.
pub fn needs_members(entries: &[Entry]) -> bool {
    entries.iter().any(|e| {
        e.get_entry_type() != EntryType::EntryNormal
            || (!e.data.is_empty()
                && Proposal::decode(&e.data).is_ok_and(|p| {
                    p.argv.first().is_some_and(|name| {
                        MEMBER_COMMANDS
                            .iter()
                            .any(|m| name.eq_ignore_ascii_case(m.as_bytes()))
                    })
                }))
    })
}

/// What applying one committed entry means for the client waiting on it.
pub enum Outcome {
    /// Applied as the entry at this index, with this reply.
    Applied(Reply, u64),
    /// Definitely not applied (see `entry`): safe to propose again.
    Fenced,
    /// Maybe applied, and this node cannot tell (a snapshot covered it).
    Unknown,
}

/// The effects of applying a run of entries that the raft thread needs to know about.
#[derive(Default)]
pub struct Summary {
    /// Results for this node's own proposals, by request id, in log order.
    pub mine: Vec<(u64, Outcome)>,
    /// Index and term of the last entry applied.
    pub last: Option<(u64, u64)>,
    /// Entries applied.
    pub count: u64,
    /// A JOIN, LEAVE or conf change was applied: the member list changed.
    pub members_changed: bool,
    /// What the entries did, for node-local listeners (empty while none wants events).
    pub events: Vec<Event>,
}

impl Summary {
    pub fn merge(&mut self, other: Summary) {
        self.mine.extend(other.mine);
        self.last = other.last.or(self.last);
        self.count += other.count;
        self.members_changed |= other.members_changed;
        self.events.extend(other.events);
    }
}

/// The raft side of applying: the configuration in force, and conf-change entries.
pub trait Configuration {
    /// The configuration in force before the next entry (for JOIN/LEAVE checks).
    fn conf_state(&self) -> ConfState;
    /// Applies a conf-change entry in `txn` (raft-rs's `apply_conf_change` and the member
    /// records it changes, in `view.members`).
    fn apply_conf_change(
        &mut self,
        txn: &WriteTransaction,
        view: &mut WriteView,
        e: &Entry,
    ) -> Result<(), StoreError>;
}

/// A configuration that cannot change during the run being applied (the persistence worker's
/// jobs never carry conf changes: those Readies are handled on the raft thread).
pub struct Fixed(pub ConfState);

impl Configuration for Fixed {
    fn conf_state(&self) -> ConfState {
        self.0.clone()
    }

    fn apply_conf_change(
        &mut self,
        _: &WriteTransaction,
        _: &mut WriteView,
        e: &Entry,
    ) -> Result<(), StoreError> {
        Err(StoreError::corrupt(
            "apply",
            format!(
                "conf change at index {} handed to a fixed configuration",
                e.index
            ),
        ))
    }
}

/// Longest the state database goes without a durable commit while it is being written: bounds
/// how much of the log a restart applies again.
const DURABLE_INTERVAL: Duration = Duration::from_secs(10);

/// Where the state database's writes stand: flushed (committed, maybe not yet on disk) and
/// durable (fsynced; the log may be compacted up to here).
struct StateDurability {
    flushed: u64,
    durable: u64,
    durable_at: Instant,
    /// Make a flush durable once it covers this many entries past the durable point.
    every: u64,
}

pub struct StateMachine {
    db: Db,
    durability: Mutex<StateDurability>,
    /// An unsynced commit of the state database since the last `presync`.
    dirty: AtomicBool,
    /// The raft loop wants the state durable soon (the log is over its size budget).
    want_durable: AtomicBool,
    mem: Arc<Memtable>,
    /// Where frozen memtables go to be written (`start_flush`); none until `set_flusher`.
    flusher: Mutex<Option<mpsc::Sender<Arc<Frozen>>>>,
    /// A frozen memtable is being written; `flush_idle` is notified when it is in.
    flushing: Mutex<bool>,
    flush_idle: Condvar,
    /// This node's raft id: only the proposer reports an entry's result.
    self_id: u64,
    command: ApplyCommand,
    /// Where the node's listeners hear about applied writes.
    events: Arc<Hub>,
    logger: Logger,
}

impl StateMachine {
    pub fn new(
        db: Db,
        mem: Arc<Memtable>,
        self_id: u64,
        command: ApplyCommand,
        events: Arc<Hub>,
        logger: Logger,
    ) -> Self {
        StateMachine {
            db,
            durability: Mutex::new(StateDurability {
                flushed: 0,
                durable: 0,
                durable_at: Instant::now(),
                every: 1,
            }),
            dirty: AtomicBool::new(false),
            want_durable: AtomicBool::new(false),
            mem,
            flusher: Mutex::new(None),
            flushing: Mutex::new(false),
            flush_idle: Condvar::new(),
            self_id,
            command,
            events,
            logger,
        }
    }

    /// The node's event listeners: the raft thread hands them each batch's `Summary::events`
    /// once the writes are visible.
    pub fn events(&self) -> &Arc<Hub> {
        &self.events
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    fn durability(&self) -> std::sync::MutexGuard<'_, StateDurability> {
        self.durability
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the durability bookkeeping: the state on disk is durable up to `applied`, and a
    /// flush is made durable once it is `every` entries past the durable point (or
    /// `DURABLE_INTERVAL` after the last durable one).
    pub fn set_durability(&self, applied: u64, every: u64) {
        let mut d = self.durability();
        d.flushed = applied;
        d.durable = applied;
        d.every = every.max(1);
    }

    /// Commits a state transaction (`flushed`: it holds a flush up to that applied index), with
    /// an fsync when `force`d or due. Returns the applied index now durable, if this commit made
    /// anything durable.
    pub fn commit_state(
        &self,
        txn: WriteTransaction,
        flushed: Option<u64>,
        force: bool,
    ) -> Result<Option<u64>, StoreError> {
        // Not under the lock: a durable commit can take 100 ms and more, and the raft thread
        // reads `flushed` for every status it publishes. The open write transaction already
        // keeps any other commit of this database out until this one is in.
        let (upto, due) = {
            let d = self.durability();
            let upto = flushed.unwrap_or(d.flushed).max(d.flushed);
            let due = force
                || (upto > d.durable
                    && (upto - d.durable >= d.every
                        || d.durable_at.elapsed() >= DURABLE_INTERVAL
                        || self.want_durable.swap(false, Ordering::Relaxed)));
            (upto, due)
        };
        store::commit(txn, due)?;
        // A commit that began once this one was in may have recorded itself first.
        let mut d = self.durability();
        d.flushed = d.flushed.max(upto);
        if !due {
            self.dirty.store(true, Ordering::Relaxed);
            return Ok(None);
        }
        d.durable = d.durable.max(upto);
        d.durable_at = Instant::now();
        Ok(Some(upto))
    }

    /// Starts a thread that, every `every`, writes the state database file's dirty pages to
    /// disk (`fdatasync` through a file handle of its own) when unsynced commits were made
    /// since: what reached the file then need not be written at the next durable commit. redb
    /// keeps a non-durable commit's pages in its write buffer and writes only what spills past
    /// half its cache, so this helps after big flushes, not small ones (docs/benchmark.md,
    /// "Tried on 2026-12-07"). Changes nothing redb relies on.
    pub fn spawn_presync(
        self: &Arc<Self>,
        path: PathBuf,
        every: Duration,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let machine = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("state-sync".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    let Some(m) = machine.upgrade() else { return };
                    if m.dirty.swap(false, Ordering::Relaxed)
                        && let Ok(f) = std::fs::File::open(&path)
                    {
                        let _ = f.sync_data();
                    }
                }
            })
    }

    /// The state database was replaced or emptied: durable (the caller committed it so) up to
    /// `applied` and no further.
    pub fn reset_durability(&self, applied: u64) {
        let mut d = self.durability();
        d.flushed = applied;
        d.durable = applied;
        d.durable_at = Instant::now();
    }

    /// Asks for the next flush to be made durable (so the log can be compacted further).
    pub fn request_durable(&self) {
        self.want_durable.store(true, Ordering::Relaxed);
    }

    /// The applied index the state database holds (durably or not).
    pub fn flushed_applied(&self) -> u64 {
        self.durability().flushed
    }

    pub fn memtable(&self) -> &Arc<Memtable> {
        &self.mem
    }

    /// From now on, due flushes are written by the thread reading `tx` (`write_frozen`), off
    /// the apply path.
    pub fn set_flusher(&self, tx: mpsc::Sender<Arc<Frozen>>) {
        *self.flusher.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
    }

    /// True if flushes go to a flusher thread.
    pub fn has_flusher(&self) -> bool {
        self.flusher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, bool> {
        self.flushing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the memtable to the flusher (`MemState::freeze`) unless one is still being
    /// written or nothing was applied. False if there is no flusher (the caller flushes).
    pub fn start_flush(&self, mem: &mut MemState) -> Result<bool, StoreError> {
        let flusher = self.flusher.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = flusher.as_ref() else {
            return Ok(false);
        };
        let mut busy = self.busy();
        if *busy {
            return Ok(true);
        }
        let Some(frozen) = mem.freeze(&self.db)? else {
            return Ok(true);
        };
        *busy = true;
        tx.send(frozen)
            .map_err(|_| StoreError::corrupt("memtable", "the flusher thread is gone"))?;
        Ok(true)
    }

    /// Waits until no frozen memtable is being written. The caller must not hold the
    /// memtable's lock (the flusher takes it to finish).
    pub fn wait_flushed(&self) {
        let mut busy = self.busy();
        while *busy {
            busy = self
                .flush_idle
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The flusher's work: writes a frozen memtable to the table with the applied index it
    /// covers (an unsynced commit, or synced when due: `commit_state`), then lets readers
    /// read the table instead. Returns the applied index made durable, if any.
    pub fn write_frozen(&self, frozen: &Frozen) -> Result<Option<u64>, StoreError> {
        let (index, term) = frozen.applied;
        let txn = self.db.begin_write()?;
        flush_frozen(&txn, frozen)?;
        txn.open_table(RAFT_STATE)?
            .insert(meta::APPLIED, store::encode_pair(index, term).as_slice())?;
        let made = self.commit_state(txn, Some(index), false)?;
        self.mem.write().thaw();
        *self.busy() = false;
        self.flush_idle.notify_all();
        Ok(made)
    }

    /// Applies committed entries to the memtable (reading the tables as of `txn`), in log
    /// order, skipping those at or below `applied` (already applied), and records the last one
    /// as applied there. Conf changes go to `conf`.
    /// Without a write transaction (`txn` None) only the memtable changes: `entries` must not
    /// need one (`needs_members`).
    pub fn apply(
        &self,
        txn: Option<&WriteTransaction>,
        mem: &mut MemState,
        entries: &[Entry],
        applied: u64,
        conf: &mut dyn Configuration,
    ) -> Result<Summary, StoreError> {
        let mut summary = Summary::default();
        {
            let mut view = match txn {
                Some(txn) => WriteView::open(txn, mem)?,
                None => WriteView::open_read(&self.db, mem)?,
            };
            if self.events.wanted() {
                view.collect_events();
            }
            for e in entries.iter().filter(|e| e.index > applied) {
                match e.get_entry_type() {
                    EntryType::EntryNormal => {
                        let (outcome, members) =
                            self.apply_entry(&mut view, &conf.conf_state(), e)?;
                        summary.mine.extend(outcome);
                        summary.members_changed |= members;
                    }
                    EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                        let txn = txn.ok_or_else(|| {
                            StoreError::corrupt("apply", "conf change outside a write transaction")
                        })?;
                        conf.apply_conf_change(txn, &mut view, e)?;
                        summary.members_changed = true;
                    }
                }
                summary.last = Some((e.index, e.term));
                summary.count += 1;
            }
            summary.events = view.take_events();
        }
        if let Some((index, term)) = summary.last {
            mem.set_applied(index, term);
        }
        // What this batch allocated shows in the next `maxmemory` check.
        crate::memory::note_applied();
        Ok(summary)
    }

    /// One normal entry (an empty one is a new leader's no-op): this node's outcome for it, if
    /// it proposed it, and whether it changed the member list.
    fn apply_entry(
        &self,
        view: &mut WriteView,
        conf_state: &ConfState,
        e: &Entry,
    ) -> Result<(Option<(u64, Outcome)>, bool), StoreError> {
        if e.data.is_empty() {
            return Ok((None, false));
        }
        let p = match Proposal::decode(&e.data) {
            Ok(p) => p,
            Err(err) => {
                error!(self.logger, "skipping undecodable entry"; "index" => e.index, "error" => %err);
                return Ok((None, false));
            }
        };
        let mine = p.origin == self.self_id;
        if p.term != e.term {
            return Ok((mine.then_some((p.request_id, Outcome::Fenced)), false));
        }
        let ctx = ApplyCtx {
            index: e.index,
            conf_state,
            local: mine,
        };
        view.begin_entry(p.db, p.time_ms, e.index);
        // For this node's listeners only (NOLOOP); apply's state never depends on it.
        view.writer(if mine { p.conn } else { 0 });
        let (reply, membership) = (self.command)(view, &ctx, p.db, &p.argv)?;
        self.events.persistence.applied(view.take_changes());
        Ok((
            mine.then_some((p.request_id, Outcome::Applied(reply, e.index))),
            membership,
        ))
    }

    /// Writes what the memtable holds to the tables with the applied index it covers, in
    /// `txn`. Returns that index; the caller calls `flushed` once `txn` has committed.
    pub fn flush(&self, txn: &WriteTransaction, mem: &MemState) -> Result<Option<u64>, StoreError> {
        let Some((index, term)) = mem.applied() else {
            return Ok(None);
        };
        flush_into(txn, mem)?;
        txn.open_table(RAFT_STATE)?
            .insert(meta::APPLIED, store::encode_pair(index, term).as_slice())?;
        Ok(Some(index))
    }

    /// The transaction holding a `flush` (or a snapshot install) committed: the memtable
    /// starts a new generation.
    pub fn flushed(&self, mem: &mut MemState) {
        mem.flushed();
    }

    /// Replaces the replicated state with the snapshot staged for `(index, term)` (see
    /// `raft::snapshot::receive`), in `txn`, and records `index` as applied. The memtable's
    /// content is older than the snapshot and is dropped (readers wait for the commit: the
    /// caller holds the memtable's write lock).
    pub fn install_snapshot(
        &self,
        txn: &WriteTransaction,
        mem: &mut MemState,
        index: u64,
        term: u64,
    ) -> Result<(), StoreError> {
        let staged = store::read_pair(&txn.open_table(RAFT_STATE)?, meta::STAGED)?;
        if staged != Some((index, term)) {
            return Err(StoreError::corrupt(
                "snapshot",
                format!("raft installs snapshot {index}/{term} but {staged:?} is staged"),
            ));
        }
        store::swap_in_staged(txn)?;
        mem.flushed();
        mem.replaced_at(index);
        let mut state = txn.open_table(RAFT_STATE)?;
        state.remove(meta::STAGED)?;
        state.insert(meta::APPLIED, store::encode_pair(index, term).as_slice())?;
        info!(self.logger, "installed snapshot"; "index" => index, "term" => term);
        Ok(())
    }

    /// Empties the replicated state (a pristine node adopted by another cluster), in `txn`;
    /// the caller calls `flushed` once it committed.
    pub fn reset(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        store::clear_replicated(txn)
    }
}
