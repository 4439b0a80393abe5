//! A read-only picture of the raft node, published by the raft loop after every change so that
//! INFO, ROLE and CLUSTER answer without a round trip into the loop.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::raft::membership::{Member, MemberState};

/// This node's part in raft, as INFO prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    PreCandidate,
    Learner,
    /// Started with --join (or adopted by a cluster) and not yet in the configuration.
    Joining,
    /// Removed from the configuration: it takes no part any more.
    Removed,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::PreCandidate => "candidate",
            Role::Learner => "learner",
            Role::Joining => "joining",
            Role::Removed => "removed",
        }
    }
}

/// A member as seen from this node.
#[derive(Clone, Debug)]
pub struct MemberStatus {
    pub member: Member,
    /// voter, learner, joining (accepted, not yet in the configuration), leaving, removed.
    pub role: &'static str,
    /// Highest log index known to be replicated on it: exact on the leader, None elsewhere.
    pub matched: Option<u64>,
}

/// Work counters of the raft thread, for INFO and for understanding throughput: entries per
/// Ready is the group-commit batch size, durable commits are fsyncs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RaftCounters {
    pub readies: u64,
    pub entries_appended: u64,
    pub entries_applied: u64,
    pub durable_commits: u64,
    pub apply_commits: u64,
    pub proposals: u64,
    pub proposals_fenced: u64,
    pub messages_sent: u64,
}

#[derive(Clone, Debug)]
pub struct RaftStatus {
    pub id: u64,
    pub name: String,
    pub role: Role,
    pub term: u64,
    pub leader_id: u64,
    pub commit: u64,
    pub applied: u64,
    /// The applied index the key-value table on disk covers (the rest is in the memtable).
    pub flushed: u64,
    /// Highest applied index the state database holds durably (the log is kept from here).
    pub durable: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub members: Vec<MemberStatus>,
    pub counters: RaftCounters,
}

impl RaftStatus {
    pub fn initial(id: u64, name: String) -> Self {
        RaftStatus {
            id,
            name,
            role: Role::Joining,
            term: 0,
            leader_id: 0,
            commit: 0,
            applied: 0,
            flushed: 0,
            durable: 0,
            first_index: 0,
            last_index: 0,
            members: Vec::new(),
            counters: RaftCounters::default(),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    pub fn member(&self, id: u64) -> Option<&MemberStatus> {
        self.members.iter().find(|m| m.member.id == id)
    }

    pub fn leader(&self) -> Option<&MemberStatus> {
        if self.leader_id == 0 {
            return None;
        }
        self.member(self.leader_id)
    }

    /// The leader's client address, for error messages and INFO.
    pub fn leader_client_addr(&self) -> Option<SocketAddr> {
        self.leader().and_then(|m| m.member.client_addr)
    }

    /// The `key:value` lines of INFO's `# Raft` section (CRLF ends).
    pub fn info_lines(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: &dyn std::fmt::Display| {
            let _ = write!(out, "{k}:{v}\r\n");
        };
        line("raft_node_name", &self.name);
        line("raft_node_id", &self.id);
        line("raft_role", &self.role.as_str());
        line("raft_term", &self.term);
        let leader = self.leader();
        line(
            "raft_leader",
            &leader.map(|m| m.member.name.as_str()).unwrap_or(""),
        );
        line("raft_leader_id", &self.leader_id);
        line(
            "raft_leader_addr",
            &self
                .leader_client_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
        );
        line("raft_commit_index", &self.commit);
        line("raft_applied_index", &self.applied);
        line("raft_flushed_index", &self.flushed);
        line("raft_state_durable_index", &self.durable);
        line("raft_first_index", &self.first_index);
        line("raft_last_index", &self.last_index);
        let c = &self.counters;
        line("raft_readies", &c.readies);
        line("raft_entries_appended", &c.entries_appended);
        line("raft_entries_applied", &c.entries_applied);
        line("raft_durable_commits", &c.durable_commits);
        line("raft_apply_commits", &c.apply_commits);
        line("raft_proposals", &c.proposals);
        line("raft_proposals_fenced", &c.proposals_fenced);
        line("raft_messages_sent", &c.messages_sent);
        line("raft_members", &self.members.len());
        for (i, m) in self.members.iter().enumerate() {
            let _ = write!(
                out,
                "member{i}:name={},id={},raft_addr={},client_addr={},role={},match={}\r\n",
                m.member.name,
                m.member.id,
                m.member.raft_addr,
                m.member
                    .client_addr
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                m.role,
                m.matched.map(|x| x as i64).unwrap_or(-1),
            );
        }
        out
    }

    /// One line per member for CLUSTER MEMBERS:
    /// `<name> <id> <raft_addr> <client_addr|-> <role> <leader|-> <match|-1>`.
    pub fn member_lines(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            let _ = writeln!(
                out,
                "{} {} {} {} {} {} {}",
                m.member.name,
                m.member.id,
                m.member.raft_addr,
                m.member
                    .client_addr
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                m.role,
                if m.member.id == self.leader_id {
                    "leader"
                } else {
                    "-"
                },
                m.matched.map(|x| x as i64).unwrap_or(-1),
            );
        }
        out
    }
}

/// The role word for a member given the configuration.
pub fn member_role(m: &Member, voter: bool, learner: bool) -> &'static str {
    match (m.state, voter, learner) {
        (MemberState::Removed, _, _) => "removed",
        (MemberState::Leaving, _, _) => "leaving",
        (MemberState::Active, true, _) => "voter",
        (MemberState::Active, false, true) => "learner",
        (MemberState::Active, false, false) => "joining",
    }
}
