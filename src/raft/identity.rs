//! Who this node is and which cluster it belongs to, persisted in `RAFT_STATE`.
//!
//! The cluster id is chosen at random when a node bootstraps a cluster and learnt by a joining
//! node from the first peer that names it in a handshake. Peers check it on every connection, so
//! a process from another cluster (or a stray one) cannot inject raft messages.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::StoreError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub id: u64,
    /// 0 until the node bootstraps a cluster or is adopted by one.
    pub cluster_id: u64,
}

impl Identity {
    pub fn encode(&self) -> String {
        format!("v1 {} {} {}", self.name, self.id, self.cluster_id)
    }

    pub fn decode(b: &[u8]) -> Result<Identity, StoreError> {
        let bad = || StoreError::corrupt("identity", String::from_utf8_lossy(b).into_owned());
        let s = std::str::from_utf8(b).map_err(|_| bad())?;
        let f: Vec<&str> = s.split(' ').collect();
        if f.len() != 4 || f[0] != "v1" {
            return Err(bad());
        }
        Ok(Identity {
            name: f[1].to_string(),
            id: f[2].parse().map_err(|_| bad())?,
            cluster_id: f[3].parse().map_err(|_| bad())?,
        })
    }
}

/// A random u64 from the standard library's per-process hash keys and the clock: enough for
/// ids that must not collide by accident (cluster ids, request id bases), not for secrets.
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    match h.finish() {
        0 => 1,
        x => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_randomness() {
        let i = Identity {
            name: "node0".into(),
            id: 42,
            cluster_id: random_u64(),
        };
        assert_eq!(Identity::decode(i.encode().as_bytes()).unwrap(), i);
        assert!(Identity::decode(b"v1 a b c").is_err());
        assert_ne!(random_u64(), random_u64());
    }
}
