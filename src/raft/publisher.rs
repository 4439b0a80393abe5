//! What the raft thread shows the rest of the process: the status INFO, ROLE and CLUSTER read
//! (`RaftHandle::status`), swapped in whole after every step, and the role and leader last
//! published, so that a change is logged once.

use std::sync::{Arc, Mutex};

use slog::{Logger, info};

use super::status::{RaftStatus, Role};

pub(super) struct StatusPublisher {
    /// Shared with every `RaftHandle`.
    status: Arc<Mutex<Arc<RaftStatus>>>,
    last_role: Option<Role>,
    last_leader: u64,
}

impl StatusPublisher {
    pub(super) fn new(status: Arc<Mutex<Arc<RaftStatus>>>) -> Self {
        StatusPublisher {
            status,
            last_role: None,
            last_leader: 0,
        }
    }

    /// Records the leader raft-rs reports; true if it is not the one seen last.
    pub(super) fn leader_changed(&mut self, leader: u64) -> bool {
        if leader == self.last_leader {
            return false;
        }
        self.last_leader = leader;
        true
    }

    /// Makes `status` the one readers see, logging a role change.
    pub(super) fn publish(&mut self, status: RaftStatus, logger: &Logger) {
        if self.last_role != Some(status.role) {
            if self.last_role.is_some() {
                info!(logger, "role changed"; "role" => status.role.as_str(), "term" => status.term);
            }
            self.last_role = Some(status.role);
        }
        match self.status.lock() {
            Ok(mut s) => *s = Arc::new(status),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(status),
        }
    }
}
