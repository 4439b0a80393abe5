//! The sequential specification: one Redis string key, replayed op by op.
//!
//! The search handles a state as a small integer, interned so that equal values get equal ids:
//! comparing states and hashing them into the cache cost the same however long the value.
//! APPEND workloads make values long and make many of them (one per order the search tries), so
//! a value built by APPEND is stored as its base state plus the suffix, with its length and a
//! polynomial hash that extends in O(suffix). Two states with the same length and hash are
//! compared byte by byte before being merged, so interning stays exact; the hash only saves the
//! comparisons (and the copies) between values that differ.

use std::collections::HashMap;
use std::rc::Rc;

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
    Append { suffix: Suffix, len: Option<i64> },
    /// INCR: the new value when the reply is known.
    Incr { result: Option<i64> },
    /// An op that constrains nothing and changes nothing (a GET without reply).
    Nothing,
}

impl Step {
    /// A write whose result does not depend on the state (and whose reply does not reveal it):
    /// it hides the effect of whatever came just before.
    pub fn is_blind_write(&self) -> bool {
        matches!(self, Step::Set { .. } | Step::Del { removed: None })
    }

    /// Whether the op may leave a value that does not extend the one before (anything but a
    /// read or an APPEND).
    pub fn may_reset(&self) -> bool {
        matches!(
            self,
            Step::Set { .. }
                | Step::Incr { .. }
                | Step::Del {
                    removed: None | Some(true)
                }
        )
    }

    /// Two unknown ops with the same step are interchangeable.
    pub fn same_effect(&self, other: &Step) -> bool {
        match (self, other) {
            (Step::Set { to: a }, Step::Set { to: b }) => a == b,
            (Step::Append { suffix: a, .. }, Step::Append { suffix: b, .. }) => a.bytes == b.bytes,
            (Step::Del { removed: None }, Step::Del { removed: None }) => true,
            (Step::Incr { result: None }, Step::Incr { result: None }) => true,
            _ => false,
        }
    }
}

/// The bytes an APPEND adds, with what extending a hash by them needs.
#[derive(Clone, Debug)]
pub struct Suffix {
    bytes: Rc<[u8]>,
    hash: u64,
    /// `BASE^len`, the factor by which the hash of what comes before is shifted.
    shift: u64,
}

/// How a state's value is stored.
enum Value {
    Absent,
    Flat(Vec<u8>),
    Appended { base: StateId, suffix: Rc<[u8]> },
}

struct State {
    len: usize,
    hash: u64,
    /// Absent, or only digits and '-': INCR may read it or what APPENDs make of it.
    digits: bool,
    value: Value,
}

/// The interned values of one key and the memo of its value-building transitions.
pub struct Register {
    states: Vec<State>,
    /// (length, hash) → the states with that length and hash (more than one only on a collision).
    by_hash: HashMap<(usize, u64), Vec<StateId>>,
    /// (state, op number) → state after, for APPEND and INCR, which build new values.
    memo: HashMap<(StateId, u32), Option<StateId>>,
    /// Prefix hashes of the values GETs saw, computed when first needed. The reads of an APPEND
    /// workload see successive prefixes of one growing string, so values that extend one
    /// another share a chain: memory stays proportional to the distinct text, not to the reads.
    chains: Vec<PrefixChain>,
    chain_of: HashMap<StateId, usize>,
}

impl Default for Register {
    fn default() -> Self {
        Register::new()
    }
}

impl Register {
    pub fn new() -> Register {
        Register {
            states: vec![State {
                len: 0,
                hash: 0,
                digits: true,
                value: Value::Absent,
            }],
            by_hash: HashMap::new(),
            memo: HashMap::new(),
            chains: Vec::new(),
            chain_of: HashMap::new(),
        }
    }

    pub fn intern(&mut self, value: Option<&[u8]>) -> StateId {
        let Some(value) = value else {
            return ABSENT;
        };
        let hash = hash_of(value);
        self.find_or_add(value.len(), hash, Value::Flat(value.to_vec()))
    }

    /// The value of a state, copied out (for messages and for INCR).
    pub fn value(&self, id: StateId) -> Option<Vec<u8>> {
        let mut suffixes = Vec::new();
        let mut id = id;
        let flat: &[u8] = loop {
            match &self.states[id as usize].value {
                Value::Absent if suffixes.is_empty() => return None,
                Value::Absent => break &[],
                Value::Flat(v) => break v,
                Value::Appended { base, suffix } => {
                    suffixes.push(suffix);
                    id = *base;
                }
            }
        };
        let mut out = Vec::with_capacity(self.states[id as usize].len);
        out.extend_from_slice(flat);
        for suffix in suffixes.iter().rev() {
            out.extend_from_slice(suffix);
        }
        Some(out)
    }

    pub fn len(&self, id: StateId) -> usize {
        self.states[id as usize].len
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
                suffix: Suffix {
                    bytes: v.as_slice().into(),
                    hash: hash_of(v),
                    shift: power(v.len()),
                },
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
            Step::Append { suffix, len } => {
                let new_len = self.len(state) + suffix.bytes.len();
                if len.is_some_and(|n| n != new_len as i64) {
                    return None;
                }
                if let Some(&after) = self.memo.get(&(state, op)) {
                    return after;
                }
                let after = self.append(state, suffix);
                self.memo.insert((state, op), Some(after));
                Some(after)
            }
            Step::Incr { result } => {
                if let Some(&after) = self.memo.get(&(state, op)) {
                    return after;
                }
                let after = self.incr(state, *result);
                self.memo.insert((state, op), after);
                after
            }
        }
    }

    /// Whether the known op `step` might accept `state`, or a value `state` grows into by
    /// APPENDs. Conservative: true when unsure.
    pub fn may_accept_after_appends(&mut self, step: &Step, state: StateId) -> bool {
        match step {
            Step::Get { saw } => state == ABSENT || self.is_prefix(state, *saw),
            Step::Append {
                suffix,
                len: Some(len),
            } => self.len(state) + suffix.bytes.len() <= *len as usize,
            Step::Del {
                removed: Some(false),
            } => state == ABSENT,
            Step::Incr { result: Some(_) } => self.may_become_integer(state),
            // A SET is a blind write; the rest cannot be judged by a prefix.
            Step::Set { .. } => false,
            _ => true,
        }
    }

    /// Whether INCR can read this value, or one APPENDs make of it (it has only digits and '-').
    pub fn may_become_integer(&self, state: StateId) -> bool {
        self.states[state as usize].digits
    }

    /// Whether no GET that saw one of `seen` can have seen `state` or anything APPENDs make of
    /// it, and no INCR can read it: then ops leaving this value and ops leaving another such of
    /// the same length are told apart by no reply.
    pub fn is_unobservable(&mut self, state: StateId, seen: &[StateId]) -> bool {
        state != ABSENT
            && !self.may_become_integer(state)
            && seen.iter().all(|&of| !self.is_prefix(state, of))
    }

    /// Whether the value of `state` is a prefix of the value of `of`. May say yes wrongly on a
    /// hash collision (harmless where it is used: it only prunes less); never says no wrongly.
    fn is_prefix(&mut self, state: StateId, of: StateId) -> bool {
        let (len, hash) = (self.len(state), self.states[state as usize].hash);
        if of == ABSENT || len > self.len(of) {
            return false;
        }
        let chain = match self.chain_of.get(&of) {
            Some(&chain) => chain,
            None => {
                let chain = self.chain_for(of);
                self.chain_of.insert(of, chain);
                chain
            }
        };
        self.chains[chain].hashes[len] == hash
    }

    /// A chain whose text starts with the value of `of` (found, extended or made).
    fn chain_for(&mut self, of: StateId) -> usize {
        let value = self.value(of).unwrap_or_default();
        for (n, chain) in self.chains.iter_mut().enumerate() {
            let shared = chain.bytes.len().min(value.len());
            if chain.bytes[..shared] == value[..shared] {
                chain.extend(&value[shared..]);
                return n;
            }
        }
        let mut chain = PrefixChain {
            bytes: Vec::new(),
            hashes: vec![0],
        };
        chain.extend(&value);
        self.chains.push(chain);
        self.chains.len() - 1
    }

    fn append(&mut self, state: StateId, suffix: &Suffix) -> StateId {
        let len = self.len(state) + suffix.bytes.len();
        let hash = extend(self.states[state as usize].hash, suffix.shift, suffix.hash);
        let value = Value::Appended {
            base: state,
            suffix: suffix.bytes.clone(),
        };
        self.find_or_add(len, hash, value)
    }

    fn incr(&mut self, state: StateId, result: Option<i64>) -> Option<StateId> {
        let next = match self.value(state) {
            None => Some(1),
            Some(v) => parse_i64(&v).and_then(|n| n.checked_add(1)),
        };
        match (next, result) {
            (Some(next), Some(seen)) if next != seen => None,
            (Some(next), _) => Some(self.intern(Some(next.to_string().as_bytes()))),
            // The server replies with an error and changes nothing; an unknown op may have met
            // that error, a known one (an integer reply) cannot have.
            (None, None) => Some(state),
            (None, Some(_)) => None,
        }
    }

    /// The state holding `value` (of this length and hash), interned.
    fn find_or_add(&mut self, len: usize, hash: u64, value: Value) -> StateId {
        let next_id = StateId::try_from(self.states.len()).expect("fewer than 2^32 values");
        let digits = match &value {
            Value::Absent => true,
            Value::Flat(v) => all_digits(v),
            Value::Appended { base, suffix } => {
                self.states[*base as usize].digits && all_digits(suffix)
            }
        };
        let candidates = self.by_hash.get(&(len, hash)).cloned().unwrap_or_default();
        if !candidates.is_empty() {
            // Rare: equal values reached by different routes, or a collision. Compare bytes.
            self.states.push(State {
                len,
                hash,
                digits,
                value,
            });
            let bytes = self.value(next_id);
            self.states.pop();
            let equal = candidates.into_iter().find(|&c| self.value(c) == bytes);
            if let Some(id) = equal {
                return id;
            }
            self.states.push(State {
                len,
                hash,
                digits,
                value: Value::Flat(bytes.unwrap_or_default()),
            });
        } else {
            self.states.push(State {
                len,
                hash,
                digits,
                value,
            });
        }
        self.by_hash.entry((len, hash)).or_default().push(next_id);
        next_id
    }
}

/// A text with the hash of each of its prefixes.
struct PrefixChain {
    bytes: Vec<u8>,
    /// `hashes[n]` is the hash of `bytes[..n]`.
    hashes: Vec<u64>,
}

impl PrefixChain {
    fn extend(&mut self, more: &[u8]) {
        let mut h = *self
            .hashes
            .last()
            .expect("the empty prefix is always there");
        for &b in more {
            h = extend(h, BASE, u64::from(b) + 1);
            self.hashes.push(h);
        }
        self.bytes.extend_from_slice(more);
    }
}

/// The polynomial hash modulo the Mersenne prime 2^61 - 1. Bytes count as 1..=256 so that
/// leading zero bytes change the hash; the length is part of every key anyway.
const MODULUS: u64 = (1 << 61) - 1;
const BASE: u64 = 0x1d2f_3b47_5c69_7e83 % MODULUS;

fn mul_mod(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    let folded = (p as u64 & MODULUS) + (p >> 61) as u64;
    if folded >= MODULUS {
        folded - MODULUS
    } else {
        folded
    }
}

/// The hash of `prefix ++ suffix` from the hash of each, `shift` being `BASE^len(suffix)`.
fn extend(prefix: u64, shift: u64, suffix: u64) -> u64 {
    let h = mul_mod(prefix, shift) + suffix;
    if h >= MODULUS { h - MODULUS } else { h }
}

fn hash_of(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0, |h, &b| extend(h, BASE, u64::from(b) + 1))
}

fn power(n: usize) -> u64 {
    (0..n).fold(1, |p, _| mul_mod(p, BASE))
}

fn all_digits(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| b.is_ascii_digit() || *b == b'-')
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
