//! The sequential specification: one Redis string key, replayed op by op.
//!
//! Values are interned so the search handles a state as a small integer: comparing states,
//! hashing them into the cache and replaying a GET all cost the same however long an APPEND made
//! the value.

use std::collections::HashMap;

use super::history::{Kind, Op, Outcome};

/// An interned register value; [`ABSENT`] is the missing key.
pub type StateId = u32;

/// The state of a key that does not exist (the initial state of every key).
pub const ABSENT: StateId = 0;

/// An op compiled against the interned values: what the search needs to replay it.
#[derive(Clone, Debug)]
pub enum Step {
    /// SET: the new state, whatever the old one.
    Set { to: StateId },
    /// GET with a known reply: valid only in the state it saw.
    Get { saw: StateId },
    /// DEL: `Some(removed)` when the reply is known.
    Del { removed: Option<bool> },
    /// APPEND: the new length when the reply is known.
    Append { suffix: Vec<u8>, len: Option<i64> },
    /// INCR: the new value when the reply is known.
    Incr { result: Option<i64> },
    /// An op that constrains nothing and changes nothing (a GET without reply).
    Nothing,
}

/// The interned values of one key and the memo of its value-building transitions.
#[derive(Default)]
pub struct Register {
    /// `values[id - 1]` is the value of state `id`.
    values: Vec<Vec<u8>>,
    ids: HashMap<Vec<u8>, StateId>,
    /// (state, op number) → state after, for APPEND and INCR, which build new values.
    memo: HashMap<(StateId, u32), Option<StateId>>,
}

impl Register {
    pub fn new() -> Register {
        Register::default()
    }

    pub fn intern(&mut self, value: Option<&[u8]>) -> StateId {
        let Some(value) = value else {
            return ABSENT;
        };
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        self.values.push(value.to_vec());
        let id = StateId::try_from(self.values.len()).expect("fewer than 2^32 values");
        self.ids.insert(value.to_vec(), id);
        id
    }

    pub fn value(&self, id: StateId) -> Option<&[u8]> {
        match id {
            ABSENT => None,
            _ => Some(&self.values[id as usize - 1]),
        }
    }

    pub fn compile(&mut self, op: &Op) -> Step {
        let int = match op.outcome {
            Outcome::Int(n) => Some(n),
            _ => None,
        };
        match (&op.kind, &op.outcome) {
            (Kind::Set(v), _) => Step::Set {
                to: self.intern(Some(v)),
            },
            (Kind::Get, Outcome::Value(v)) => Step::Get {
                saw: self.intern(v.as_deref()),
            },
            (Kind::Get, _) => Step::Nothing,
            (Kind::Del, _) => Step::Del {
                removed: int.map(|n| n == 1),
            },
            (Kind::Append(v), _) => Step::Append {
                suffix: v.clone(),
                len: int,
            },
            (Kind::Incr, _) => Step::Incr { result: int },
        }
    }

    /// The state after op number `op` (compiled to `step`) runs in `state`, or `None` if the
    /// reply the client saw could not have come from `state`.
    pub fn apply(&mut self, state: StateId, op: u32, step: &Step) -> Option<StateId> {
        match step {
            Step::Set { to } => Some(*to),
            Step::Get { saw } => (*saw == state).then_some(state),
            Step::Del { removed } => match removed {
                Some(removed) if *removed != (state != ABSENT) => None,
                _ => Some(ABSENT),
            },
            Step::Nothing => Some(state),
            Step::Append { .. } | Step::Incr { .. } => {
                if let Some(&after) = self.memo.get(&(state, op)) {
                    return after;
                }
                let after = self.build(state, step);
                self.memo.insert((state, op), after);
                after
            }
        }
    }

    fn build(&mut self, state: StateId, step: &Step) -> Option<StateId> {
        match step {
            Step::Append { suffix, len } => {
                let mut value = self.value(state).unwrap_or_default().to_vec();
                value.extend_from_slice(suffix);
                if len.is_some_and(|n| n != value.len() as i64) {
                    return None;
                }
                Some(self.intern(Some(&value)))
            }
            Step::Incr { result } => {
                let next = match self.value(state) {
                    None => Some(1),
                    Some(v) => parse_i64(v).and_then(|n| n.checked_add(1)),
                };
                match (next, result) {
                    (Some(next), Some(seen)) if next != *seen => None,
                    (Some(next), _) => Some(self.intern(Some(next.to_string().as_bytes()))),
                    // The server replies with an error and changes nothing; an unknown op may
                    // have met that error, a known one (an integer reply) cannot have.
                    (None, None) => Some(state),
                    (None, Some(_)) => None,
                }
            }
            _ => unreachable!("only APPEND and INCR build values"),
        }
    }
}

/// Redis's strict integer syntax, as `INCR` reads a value: no spaces, no `+`, no leading zeros.
fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 || b[0] == b'+' {
        return None;
    }
    if b.len() > 1 && (b[0] == b'0' || (b[0] == b'-' && b[1] == b'0')) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}
