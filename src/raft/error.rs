//! Why the raft layer did not give a command its result. The raft layer never speaks RESP: the
//! connection turns these into error replies, in one place (`connection::raft_error_reply`).

/// The ways a proposal or a read barrier can end without the command's own result. Each says
/// what is known about the write: not applied, or outcome unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    /// No leader took the write before its deadline: not applied.
    #[error("no raft leader: write not applied")]
    NoLeader,
    /// Proposed, fenced out by a leader change, and no new leader took it again in time: not
    /// applied.
    #[error("write not applied: raft leadership changed and no new leader took it in time")]
    FencedOut,
    /// Proposed but not committed by its deadline: it may still be applied.
    #[error("write outcome unknown: proposed but not committed in time")]
    OutcomeUnknown,
    /// This node caught up from a snapshot that may or may not include the write.
    #[error("write outcome unknown: covered by a snapshot")]
    SnapshotOutcomeUnknown,
    /// This node was removed from the cluster: it takes no writes.
    #[error("this node was removed from the cluster")]
    Removed,
    /// Started with --join and not yet added to a cluster.
    #[error("this node has not joined a cluster yet")]
    NotJoined,
    /// A pristine node is being adopted by another cluster: its pending writes are dropped.
    #[error("this node is joining another cluster")]
    JoiningOtherCluster,
    /// The node is shutting down: not applied.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The raft thread is gone.
    #[error("raft loop stopped")]
    Stopped,
    /// Read barrier: no leader confirmed the read index in time.
    #[error("no raft leader confirmed this read in time")]
    ReadNoLeader,
    /// Read barrier: the index was confirmed but this node did not apply up to it in time.
    #[error("this node did not catch up in time")]
    NotCaughtUp,
}
