//! Membership changes driven by the leader, and joining a cluster.
//!
//! The member list (replicated by JOIN/LEAVE entries) says who should be in the cluster; the
//! leader moves the raft configuration towards it one conf change at a time: new members join as
//! learners and are promoted once caught up; leaving members are removed, the leader itself after
//! handing leadership over.

use raft::RawNode;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use redb::ReadableDatabase;
use slog::{error, info, o, warn};

use super::RaftError;
use super::membership::{self, Member, MemberState};
use super::node::Node;
use super::node::raft_config;
use super::storage::{RaftStorage, decode_log_row};
use crate::kv::{KeyRead, Reader, encoding};
use crate::store::{self, LOG, MEMBERS, RAFT_STATE, StoreError, meta};

/// A learner is promoted to voter once it is this close to the leader's commit index.
const PROMOTE_LAG: u64 = 1000;

impl Node {
    /// Leader only: move the raft configuration one step towards the member list.
    pub(super) fn reconcile_membership(&mut self) {
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
    pub(super) fn adopt(&mut self, cluster_id: u64) -> bool {
        self.drain_worker();
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
            let mut user_data = false;
            Reader::new(&self.db, self.machine.memtable()).run(0, |v| {
                let lo = [encoding::FAMILY_META];
                let hi = [encoding::FAMILY_MEMBER + 1];
                v.scan_raw(&lo, &hi, &mut |_, _| {
                    user_data = true;
                    false
                })
            })?;
            if user_data {
                return Ok(false);
            }
            let txn = self.db.begin_read()?;
            let members = membership::load_all(&txn.open_table(MEMBERS)?)?;
            if members.iter().any(|m| m.id != self.identity.id) {
                return Ok(false);
            }
            let txn = self.log.begin_read()?;
            let log = txn.open_table(LOG)?;
            for row in log.range(3u64..)? {
                let (k, v) = row?;
                let e = decode_log_row(k.value(), v.value())?;
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
        // The state first, then the log with the new identity: a crash in between leaves a
        // pristine node of the old cluster with an empty state, which adopts again.
        self.machine.wait_flushed();
        let txn = self.db.begin_write()?;
        self.machine.reset(&txn)?;
        // Everything but the keyspace format, which describes the (now empty) tables, and the
        // mark that the log lives apart.
        txn.open_table(RAFT_STATE)?
            .retain(|k, _| k == meta::FORMAT || k == meta::LOG_SPLIT)?;
        store::commit(txn, true)?;
        let txn = self.log.begin_write()?;
        txn.open_table(LOG)?.retain(|_, _| false)?;
        {
            let mut state = txn.open_table(RAFT_STATE)?;
            state.retain(|_, _| false)?;
            state.insert(meta::IDENTITY, self.identity.encode().as_bytes())?;
        }
        self.log.commit(txn, true)?;
        self.machine.flushed(&mut self.machine.memtable().write());
        self.machine.reset_durability(0);
        self.flushed_applied = 0;
        let storage = RaftStorage::load(
            self.db.clone(),
            self.log.db().clone(),
            self.raw.store().snapshots(),
        )?;
        let raw = RawNode::new(
            &raft_config(self.identity.id, 0),
            storage,
            &self.logger.new(o!("raft" => true)),
        )
        .map_err(StoreError::RaftInit)?;
        self.raw = raw;
        self.applied_index = 0;
        self.applied_term = 0;
        self.members.clear();
        self.transport.set_identity(self.identity.clone());
        self.fail_all(RaftError::JoiningOtherCluster);
        Ok(())
    }
}
