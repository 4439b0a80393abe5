//! Starting the raft node: decide between bootstrapping a new cluster, waiting to join one, and
//! restarting from disk; prepare the storage for it; build the `Node` and spawn its thread.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use raft::RawNode;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType, HardState};
use redb::ReadableDatabase;
use slog::{Logger, info, o};
use tokio::sync::watch;

use super::RaftHandle;
use super::identity::{Identity, random_u64};
use super::inbox::{Inbox, InputTx};
use super::membership::node_id;
use super::membership::{load_members, peer_addrs};
use super::node::{Node, NodeParts, campaign_if_alone, raft_config};
use super::snapshot::SnapshotRegistry;
use super::status::RaftStatus;
use super::storage::{RaftStorage, encode_pb};
use super::transport::Transport;
use crate::config::Config;
use crate::events::Hub;
use crate::kv::Memtable;
use crate::kv::entry::Proposal;
use crate::kv::machine::{ApplyCommand, StateMachine};
use crate::log_db::LogDb;
use crate::store::{self, Db, LOG, RAFT_STATE, StoreError, meta};

/// How often the state database's unsynced writes are pushed to disk ahead of its next durable
/// commit (see `StateMachine::spawn_presync`).
const PRESYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Ticks without hearing from a leader before an election (randomised up to twice this).
/// Why the raft node cannot start; each is the one line `kvd` prints.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot load raft state: {0}")]
    Load(#[from] StoreError),
    #[error(
        "data dir '{}' belongs to node '{owner}', not '{name}': pass --id {owner} or use another data dir",
        dir.display()
    )]
    OtherNode {
        dir: PathBuf,
        owner: String,
        name: String,
    },
    #[error(
        "database in '{}' has raft state but no identity: refusing to start (corrupted?)",
        dir.display()
    )]
    NoIdentity { dir: PathBuf },
    #[error(
        "raft state in '{}' is inconsistent (applied {applied}, commit {commit}, term {term}, last index {last}): refusing to start",
        dir.display()
    )]
    Inconsistent {
        dir: PathBuf,
        applied: u64,
        commit: u64,
        term: u64,
        last: u64,
    },
    #[error("raft config: {0}")]
    Config(#[source] raft::Error),
    #[error("cannot start raft: {0}")]
    Raft(#[source] raft::Error),
    #[error("cannot spawn {thread}: {source}")]
    Spawn {
        thread: &'static str,
        source: std::io::Error,
    },
}

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

/// Decides how to start, prepares the storage for it, and spawns the raft thread.
pub fn start(
    cfg: &Config,
    (db, log): (Db, LogDb),
    (command, events): (ApplyCommand, Arc<Hub>),
    (tx, inbox): (InputTx, Inbox),
    transport: Transport,
    snapshots: SnapshotRegistry,
    logger: &Logger,
) -> Result<(RaftHandle, StartMode, JoinHandle<()>), StartError> {
    let id = node_id(&cfg.name);
    clear_staged(&db)?;
    let existing = load_identity(&log)?;
    let storage = RaftStorage::load(db.clone(), log.db().clone(), snapshots.clone())?;
    let empty = existing.is_none()
        && storage.last_index_now() == 0
        && storage.conf_state().voters.is_empty();
    let mode = match (&existing, empty, cfg.join) {
        (Some(ident), _, _) => {
            if ident.name != cfg.name {
                return Err(StartError::OtherNode {
                    dir: cfg.data_dir.clone(),
                    owner: ident.name.clone(),
                    name: cfg.name.clone(),
                });
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
            return Err(StartError::NoIdentity {
                dir: cfg.data_dir.clone(),
            });
        }
    };
    let identity = match mode {
        StartMode::Bootstrap => {
            let ident = Identity {
                name: cfg.name.clone(),
                id,
                cluster_id: random_u64(),
            };
            bootstrap(&log, &ident, cfg.advertise_raft_addr, cfg.addr)?;
            ident
        }
        StartMode::Join if existing.is_none() => {
            let ident = Identity {
                name: cfg.name.clone(),
                id,
                cluster_id: 0,
            };
            save_identity(&log, &ident)?;
            ident
        }
        _ => existing.unwrap_or(Identity {
            name: cfg.name.clone(),
            id,
            cluster_id: 0,
        }),
    };
    // Reload: bootstrap wrote the first entry and the initial configuration.
    let mut storage = RaftStorage::load(db.clone(), log.db().clone(), snapshots)?;
    let (applied_index, applied_term) = load_applied(&db)?;
    reconcile(cfg, &log, &mut storage, (applied_index, applied_term))?;
    let hs = storage.hard_state();
    if applied_index > hs.commit || (storage.last_index_now() > 0 && hs.term == 0) {
        return Err(StartError::Inconsistent {
            dir: cfg.data_dir.clone(),
            applied: applied_index,
            commit: hs.commit,
            term: hs.term,
            last: storage.last_index_now(),
        });
    }
    let members = load_members(&db)?;
    transport.set_identity(identity.clone());
    transport.set_peers(peer_addrs(&members, id));

    let raft_logger = logger.new(o!("raft" => true));
    let raft_config = raft_config(id, applied_index);
    raft_config.validate().map_err(StartError::Config)?;
    let mut raw = RawNode::new(&raft_config, storage, &raft_logger).map_err(StartError::Raft)?;
    campaign_if_alone(&mut raw, id);

    let status = Arc::new(Mutex::new(Arc::new(RaftStatus::initial(
        id,
        cfg.name.clone(),
    ))));
    let (applied_tx, applied_rx) = watch::channel(applied_index);
    let memtable = Arc::new(Memtable::new());
    let machine = Arc::new(StateMachine::new(
        db.clone(),
        memtable.clone(),
        id,
        command,
        events,
        logger.clone(),
    ));
    machine.set_durability(applied_index, cfg.compact_entries / 2);
    machine
        .spawn_presync(store::db_path(&cfg.data_dir), PRESYNC_INTERVAL)
        .map_err(|source| StartError::Spawn {
            thread: "the state sync thread",
            source,
        })?;
    super::persist::spawn_flusher(&machine, tx.clone(), logger.clone()).map_err(|source| {
        StartError::Spawn {
            thread: "the flusher thread",
            source,
        }
    })?;
    let (jobs, jobs_rx) = mpsc::channel();
    super::persist::spawn(
        machine.clone(),
        log.clone(),
        jobs_rx,
        tx.clone(),
        logger.clone(),
    )
    .map_err(|source| StartError::Spawn {
        thread: "the persistence thread",
        source,
    })?;
    let heard = Arc::new(super::heard::Heard::default());
    let handle = RaftHandle {
        tx,
        status: status.clone(),
        applied: applied_rx,
        // Only a node that held state before can have acknowledged writes it has not applied.
        catching_up: Arc::new(std::sync::atomic::AtomicBool::new(
            mode == StartMode::Restart,
        )),
        memtable: memtable.clone(),
        heard: heard.clone(),
    };
    let node = Node::new(
        cfg,
        NodeParts {
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
            logger: logger.clone(),
        },
    );
    info!(logger, "raft node started"; "mode" => ?mode, "applied" => applied_index,
          "last_index" => node.raw.store().last_index_now(), "term" => node.raw.raft.term);
    let thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || node.run())
        .map_err(|source| StartError::Spawn {
            thread: "raft thread",
            source,
        })?;
    Ok((handle, mode, thread))
}

/// Brings the log in line with the state database after a crash between their commits (the
/// state is written first): a snapshot installed in the state but not yet in the log has the
/// log reset to start after it; an applied index past the commit index the log recorded (an
/// unsynced commit-index update lost) raises the commit index to it, since only committed
/// entries are applied. A log compacted past the applied index cannot be recovered from.
fn reconcile(
    cfg: &Config,
    log: &LogDb,
    storage: &mut RaftStorage,
    (applied, applied_term): (u64, u64),
) -> Result<(), StartError> {
    if storage.first_index_now() > applied + 1 {
        let hs = storage.hard_state();
        return Err(StartError::Inconsistent {
            dir: cfg.data_dir.clone(),
            applied,
            commit: hs.commit,
            term: hs.term,
            last: storage.last_index_now(),
        });
    }
    if applied > storage.last_index_now() {
        let txn = log.begin_write().map_err(StoreError::from)?;
        storage.reset_log_to(&txn, applied, applied_term)?;
        log.commit(txn, true)?;
    } else if applied > storage.hard_state().commit {
        let mut hs = storage.hard_state().clone();
        hs.commit = applied;
        let txn = log.begin_write().map_err(StoreError::from)?;
        storage.set_hard_state_in(&txn, &hs)?;
        log.commit(txn, true)?;
    }
    Ok(())
}

/// Writes the state of a brand-new one-voter cluster as its first two committed log entries:
/// the configuration change that makes this node the only voter, and the JOIN that records it
/// in the member list. Being in the log (not only in local state), both reach every node that
/// joins later, so all nodes agree on the configuration from index 1 on.
fn bootstrap(
    db: &LogDb,
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
    let join_entry = Entry {
        index: 2,
        term: 1,
        data: Proposal {
            origin: 0,
            request_id: 0,
            term: 1,
            time_ms: crate::kv::wall_clock_ms(),
            db: 0,
            argv,
            conn: 0,
        }
        .encode()
        .into(),
        ..Default::default()
    };

    let hs = HardState {
        term: 1,
        commit: 2,
        ..Default::default()
    };
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
    db.commit(txn, true)?;
    Ok(())
}

fn load_identity(db: &LogDb) -> Result<Option<Identity>, StoreError> {
    let txn = db.begin_read()?;
    let t = txn.open_table(RAFT_STATE)?;
    match t.get(meta::IDENTITY)? {
        Some(v) => Ok(Some(Identity::decode(v.value())?)),
        None => Ok(None),
    }
}

fn save_identity(db: &LogDb, ident: &Identity) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(RAFT_STATE)?
        .insert(meta::IDENTITY, ident.encode().as_bytes())?;
    db.commit(txn, true)?;
    Ok(())
}

fn load_applied(db: &Db) -> Result<(u64, u64), StoreError> {
    let txn = db.begin_read()?;
    let t = txn.open_table(RAFT_STATE)?;
    Ok(store::read_pair(&t, meta::APPLIED)?.unwrap_or((0, 0)))
}

/// A half-received snapshot from before a crash is useless: start the next one clean.
fn clear_staged(db: &Db) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    store::clear_staged(&txn)?;
    txn.open_table(RAFT_STATE)?.remove(meta::STAGED)?;
    txn.commit()?;
    Ok(())
}
