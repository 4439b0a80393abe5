//! Consensus: one thread owns the raft-rs `RawNode` (`node.rs`), persists through redb
//! (`storage.rs`), talks to peers (`transport.rs`, `snapshot.rs`) and applies committed entries to
//! the state machine. Everything else reaches it through a `RaftHandle`, whose answers are the
//! command's own reply or a `RaftError` saying why there is none (never RESP text: the connection
//! turns errors into replies).

mod error;
pub mod heard;
pub mod identity;
pub mod inbox;
mod inflight;
pub mod membership;
mod node;
mod outbox;
mod pending;
mod persist;
mod publisher;
mod read_index;
mod reconfigure;
pub mod snapshot;
mod startup;
pub mod status;
pub mod storage;
pub mod transport;
mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft::eraftpb::Message;
use tokio::sync::{oneshot, watch};

use crate::kv::Memtable;

use crate::resp::Reply;
pub use error::RaftError;
pub use startup::{StartError, StartMode, start};
use status::RaftStatus;

/// What the raft thread is asked to do.
pub enum Input {
    /// Replicate a write; `reply` gets the result of applying it (or why it was not).
    Propose {
        /// The database it addresses (the connection's SELECT).
        db: u8,
        argv: Vec<Bytes>,
        deadline: Instant,
        reply: oneshot::Sender<Result<Reply, RaftError>>,
        /// The proposing connection when its node's listeners need to know (NOLOOP), else 0.
        conn: u64,
        /// Raised (`fetch_max`) to the entry's index once it is applied: a connection's last
        /// write, for WAIT.
        acked: Option<Arc<AtomicU64>>,
    },
    /// Confirm leadership for a linearizable read; `reply` gets the index to wait for.
    ReadIndex {
        deadline: Instant,
        reply: oneshot::Sender<Result<u64, RaftError>>,
    },
    /// A message from a peer.
    Message(Box<Message>),
    /// A peer's connection that passed its handshake, for the raft thread to read (`inbox`):
    /// its messages must come from `from` and be addressed to `me`.
    PeerLink {
        from: u64,
        me: u64,
        stream: std::net::TcpStream,
    },
    /// A snapshot message whose data is staged (see `snapshot::receive`); `done` fires once the
    /// raft thread has handled it, so the next transfer cannot overwrite the staging tables early.
    InstallSnapshot {
        msg: Box<Message>,
        done: oneshot::Sender<()>,
    },
    /// A peer could not be reached; raft-rs stops optimistic replication to it.
    Unreachable(u64),
    /// A snapshot stream to a peer finished (or failed).
    SnapshotDone { to: u64, ok: bool },
    /// A peer from another cluster asked this pristine node to join it (see `node::adopt`).
    Adopt {
        cluster_id: u64,
        reply: oneshot::Sender<bool>,
    },
    /// The persistence worker made these Readies durable (and applied what they committed).
    Persisted(Box<persist::Done>),
    /// Stop after the current step: everything acknowledged is already durable.
    Shutdown,
}

/// The way into the raft thread, cheap to clone for every connection.
#[derive(Clone)]
pub struct RaftHandle {
    tx: inbox::InputTx,
    status: Arc<Mutex<Arc<RaftStatus>>>,
    applied: watch::Receiver<u64>,
    /// Set from start until one read barrier succeeds (see `catching_up`).
    catching_up: Arc<AtomicBool>,
    memtable: Arc<Memtable>,
    heard: Arc<heard::Heard>,
}

impl RaftHandle {
    /// Redis's good replicas, as this node sees them (`min-replicas-to-write`): on the leader,
    /// the other members it heard from within `lag`; on a follower, itself if it heard from
    /// the leader within `lag` (it cannot see the others: with 2 or more required, writes
    /// through it are refused, never accepted on a guess).
    pub fn good_replicas(&self, lag: std::time::Duration) -> usize {
        let st = self.status();
        if st.is_leader() {
            let others = st
                .members
                .iter()
                .map(|m| m.member.id)
                .filter(|&id| id != st.id);
            self.heard.within(others, lag)
        } else if st.leader_id != 0 {
            self.heard.within(std::iter::once(st.leader_id), lag)
        } else {
            0
        }
    }

    /// Applied writes not yet in the key-value table: readers go through it.
    pub fn memtable(&self) -> &Arc<Memtable> {
        &self.memtable
    }

    /// True until this process has confirmed with the cluster that it applied everything
    /// committed: applying is not fsynced on its own (the log is), so after a crash the applied
    /// state may be older than writes this node acknowledged. Until then reads take a ReadIndex
    /// round, as linearizable reads do.
    pub fn catching_up(&self) -> bool {
        self.catching_up.load(Ordering::Relaxed)
    }

    pub fn caught_up(&self) {
        self.catching_up.store(false, Ordering::Relaxed);
    }

    /// The latest published status.
    pub fn status(&self) -> Arc<RaftStatus> {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The status with the applied index as of now (the published status can trail the replies
    /// already sent by a moment).
    pub fn fresh_status(&self) -> RaftStatus {
        let mut s = (*self.status()).clone();
        s.applied = s.applied.max(*self.applied.borrow());
        s.commit = s.commit.max(s.applied);
        s
    }

    pub fn send(&self, input: Input) -> bool {
        self.tx.send(input).is_ok()
    }

    /// Proposes a write and waits for its outcome, at most `timeout` (plus a tick) in the raft
    /// thread's hands: it answers every proposal by its deadline. `Ok` holds the command's own
    /// result (which may itself be an error reply, such as a wrong type).
    pub async fn propose(
        &self,
        db: u8,
        argv: Vec<Bytes>,
        timeout: Duration,
    ) -> Result<Reply, RaftError> {
        self.propose_later(db, argv, timeout)
            .await
            .unwrap_or(Err(RaftError::Stopped))
    }

    /// Starts a proposal without waiting; the receiver yields the outcome (a receive error
    /// means the raft thread is gone: `RaftError::Stopped`).
    pub fn propose_later(
        &self,
        db: u8,
        argv: Vec<Bytes>,
        timeout: Duration,
    ) -> oneshot::Receiver<Result<Reply, RaftError>> {
        self.propose_with(0, db, argv, timeout, None)
    }

    /// `propose_later`, naming the proposing connection `conn` in the entry (so this node's
    /// listeners can tell its own writes: `events::Event::Writer`, CLIENT TRACKING NOLOOP; 0:
    /// none), and raising `acked` to the entry's index once it is applied (a connection's last
    /// write, what WAIT counts replicas of).
    pub fn propose_with(
        &self,
        conn: u64,
        db: u8,
        argv: Vec<Bytes>,
        timeout: Duration,
        acked: Option<Arc<AtomicU64>>,
    ) -> oneshot::Receiver<Result<Reply, RaftError>> {
        let (reply, rx) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        if let Err(mpsc::SendError(Input::Propose { reply, .. })) = self.tx.send(Input::Propose {
            db,
            argv,
            deadline,
            reply,
            conn,
            acked,
        }) {
            let _ = reply.send(Err(RaftError::Stopped));
        }
        rx
    }

    /// Waits until this node has applied everything the cluster had committed when the read
    /// arrived (raft ReadIndex), so a read served afterwards is linearizable.
    pub async fn read_barrier(&self, timeout: Duration) -> Result<(), RaftError> {
        let (reply, rx) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        if self.tx.send(Input::ReadIndex { deadline, reply }).is_err() {
            return Err(RaftError::Stopped);
        }
        let index = rx.await.unwrap_or(Err(RaftError::Stopped))?;
        let mut applied = self.applied.clone();
        let wait = applied.wait_for(|&a| a >= index);
        match tokio::time::timeout_at(deadline.into(), wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(RaftError::Stopped),
            Err(_) => Err(RaftError::NotCaughtUp),
        }
    }
}
