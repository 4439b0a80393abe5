//! Support for the fault-injection tests (`tests/nemesis.rs`, `tests/crash.rs`): a seeded RNG,
//! a cuttable proxy network, a fault-tolerant client, a cluster with fault primitives, client
//! workloads and the nemesis run itself.

#![allow(dead_code)]

pub mod appendlog;
pub mod client;
pub mod collections;
pub mod hll;
pub mod leases;
pub mod lists;
pub mod net;
pub mod rng;
pub mod run;
pub mod streams;
pub mod transfers;
pub mod trimmed;
pub mod types;
pub mod verify;
pub mod workload;
pub mod world;
pub mod zsets;
