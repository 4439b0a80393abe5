//! The stream, capped-stream, hash/set and HyperLogLog workloads of a nemesis run, started and checked
//! together (`streams.rs`, `trimmed.rs`, `collections.rs`, `hll.rs`), so `run.rs` names them in three lines.

use std::thread::JoinHandle;

use crate::nemesis::collections::{self, Collections};
use crate::nemesis::hll::{self, Hlls};
use crate::nemesis::rng::Rng;
use crate::nemesis::streams::{self, Streams};
use crate::nemesis::trimmed::{self, Capped};
use crate::nemesis::workload::Shared;
use crate::nemesis::world::RECOVERY;

pub struct TypeClients {
    streams: Streams,
    capped: Capped,
    collections: Collections,
    hlls: Hlls,
}

impl TypeClients {
    /// Starts `n` clients of each workload (stream producers and consumers, a claimer,
    /// capped-stream producers, hash and set clients, HyperLogLog clients), their handles
    /// pushed onto `handles`.
    pub fn spawn(
        n: usize,
        rng: &mut Rng,
        sh: &Shared,
        handles: &mut Vec<JoinHandle<()>>,
    ) -> TypeClients {
        let mut rng = rng.fork(0x7E5);
        let t = TypeClients {
            streams: Streams::default(),
            capped: Capped::default(),
            collections: Collections::default(),
            hlls: Hlls::default(),
        };
        let n = n.max(1);
        handles.extend(streams::spawn(n, &mut rng, sh, &t.streams));
        handles.extend(trimmed::spawn(n, &mut rng, sh, &t.capped));
        handles.extend(collections::spawn(n, &mut rng, sh, &t.collections));
        handles.extend(hll::spawn(n, &mut rng, sh, &t.hlls));
        t
    }

    /// After the heal, through any node: the stream and group, the hash and the set.
    pub fn verify_before_convergence(&self, sh: &Shared, rng: &mut Rng) -> Vec<String> {
        let mut rng = rng.fork(0x7E6);
        let mut problems = streams::verify(&self.streams, sh, &mut rng, RECOVERY);
        problems.extend(trimmed::verify(&self.capped, sh, &mut rng, RECOVERY));
        problems.extend(collections::verify(
            &self.collections,
            sh,
            &mut rng,
            RECOVERY,
        ));
        problems
    }

    /// Once every member holds the same data: the HyperLogLog on each.
    pub fn verify_converged(&self, member_addrs: &[String]) -> Vec<String> {
        hll::verify(&self.hlls, member_addrs)
    }
}
