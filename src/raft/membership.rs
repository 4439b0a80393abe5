//! The replicated member list: who belongs to the cluster, under which name, id and addresses.
//!
//! Users name nodes; raft needs u64 ids. The id is derived from the name (`node_id`), and both are
//! kept in the record so a name can never come back as a different node. The list lives in the
//! `MEMBERS` table and changes only by applying JOIN and LEAVE entries and conf changes, so every
//! node holds the same list and a restarted node knows its peers without flags.
//!
//! The raft configuration (`ConfState`) is driven from this list by the leader (`reconcile`):
//! an `Active` member not yet in the configuration is added as a learner, promoted to voter once it
//! has caught up, and a `Leaving` member is removed, one change at a time.

use std::net::SocketAddr;

use redb::ReadableTable;

use crate::store::{Db, MEMBERS, StoreError};
use redb::ReadableDatabase;

/// Where a member is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Accepted by JOIN; part of the configuration or about to be.
    Active,
    /// LEAVE accepted; to be removed from the configuration.
    Leaving,
    /// Out of the configuration for good; the name stays reserved.
    Removed,
}

impl MemberState {
    fn as_str(self) -> &'static str {
        match self {
            MemberState::Active => "active",
            MemberState::Leaving => "leaving",
            MemberState::Removed => "removed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => MemberState::Active,
            "leaving" => MemberState::Leaving,
            "removed" => MemberState::Removed,
            _ => return None,
        })
    }
}

/// Why a JOIN is refused. A permanent refusal cannot be fixed by asking again (a node started
/// with `--join` stops on it); the others may pass later.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    #[error("node name '{name}' belonged to a removed member and cannot be reused")]
    NameRemoved { name: String },
    #[error("member '{name}' is leaving the cluster")]
    Leaving { name: String },
    #[error("node name '{name}' is already used by another member ({raft_addr})")]
    NameTaken { name: String, raft_addr: SocketAddr },
    #[error("node name '{name}' maps to the same raft id as member '{other}': choose another name")]
    IdCollision { name: String, other: String },
    #[error("raft address {raft_addr} is already used by member '{member}'")]
    RaftAddrTaken {
        raft_addr: SocketAddr,
        member: String,
    },
}

impl JoinRefusal {
    /// True unless the refusal may pass later (a member of that name is on its way out).
    pub fn is_permanent(&self) -> bool {
        !matches!(self, JoinRefusal::Leaving { .. })
    }
}

/// One node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub id: u64,
    pub raft_addr: SocketAddr,
    /// Where its Redis clients connect (unknown when JOIN was given only the raft address).
    pub client_addr: Option<SocketAddr>,
    pub state: MemberState,
}

impl Member {
    /// Text encoding: `v1 <id> <raft_addr> <client_addr|-> <state>`.
    pub fn encode(&self) -> String {
        format!(
            "v1 {} {} {} {}",
            self.id,
            self.raft_addr,
            self.client_addr
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            self.state.as_str()
        )
    }

    pub fn decode(name: &str, s: &[u8]) -> Result<Member, StoreError> {
        let bad = || StoreError::corrupt("member record", format!("{name}: {s:?}"));
        let text = std::str::from_utf8(s).map_err(|_| bad())?;
        let f: Vec<&str> = text.split(' ').collect();
        if f.len() != 5 || f[0] != "v1" {
            return Err(bad());
        }
        Ok(Member {
            name: name.to_string(),
            id: f[1].parse().map_err(|_| bad())?,
            raft_addr: f[2].parse().map_err(|_| bad())?,
            client_addr: match f[3] {
                "-" => None,
                a => Some(a.parse().map_err(|_| bad())?),
            },
            state: MemberState::parse(f[4]).ok_or_else(bad)?,
        })
    }
}

/// The raft id for a node name: FNV-1a 64 of the name, never 0 (raft's "none").
pub fn node_id(name: &str) -> u64 {
    match crate::fnv::Fnv1a::hash(name.as_bytes()) {
        0 => 1,
        h => h,
    }
}

/// Every member record, in name order.
pub fn load_all(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<Member>, StoreError> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        out.push(Member::decode(k.value(), v.value())?);
    }
    Ok(out)
}

pub fn save(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    m: &Member,
) -> Result<(), StoreError> {
    table.insert(m.name.as_str(), m.encode().as_bytes())?;
    Ok(())
}

/// Every member record, as the table holds them now.
pub fn load_members(db: &Db) -> Result<Vec<Member>, StoreError> {
    let txn = db.begin_read()?;
    load_all(&txn.open_table(MEMBERS)?)
}

/// The peers to connect to: every member but this node and removed ones.
pub fn peer_addrs(members: &[Member], self_id: u64) -> Vec<(u64, SocketAddr)> {
    members
        .iter()
        .filter(|m| m.id != self_id && m.state != MemberState::Removed)
        .map(|m| (m.id, m.raft_addr))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip() {
        let m = Member {
            name: "node1".into(),
            id: node_id("node1"),
            raft_addr: "127.0.0.1:19001".parse().unwrap(),
            client_addr: Some("127.0.0.1:6380".parse().unwrap()),
            state: MemberState::Leaving,
        };
        assert_eq!(Member::decode("node1", m.encode().as_bytes()).unwrap(), m);
        let no_client = Member {
            client_addr: None,
            ..m
        };
        assert_eq!(
            Member::decode("node1", no_client.encode().as_bytes()).unwrap(),
            no_client
        );
        assert!(Member::decode("x", b"v2 1 2 3 4").is_err());
        assert!(Member::decode("x", b"garbage").is_err());
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(node_id("node0"), node_id("node0"));
        assert_ne!(node_id("node0"), node_id("node1"));
        assert_ne!(node_id(""), 0);
    }
}
