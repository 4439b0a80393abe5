//! The Wing & Gong search with Lowe's cache, as Porcupine runs it, over the ops of one key.
//!
//! The ops become a list of call and return entries sorted by time. The search walks the list
//! from its head: a call entry met before any return entry belongs to an op that may take effect
//! now (no pending op has returned before it was called). Taking such an op applies it to the
//! model; if the model accepts the reply, both entries leave the list and the walk restarts at
//! the head. Meeting a return entry means its op had to take effect already: backtrack, undoing
//! the last op taken and trying the next candidate after it. The history is linearizable when
//! every op with a known outcome has been taken.
//!
//! Ops with an unknown outcome have no return entry (they return at +infinity), so they are
//! never forced, and the search may stop without them (an op that never took effect). They sit
//! in a list of their own and are tried only after the ops with a known outcome at the same point,
//! so that the search spends its time on them only where some reply needs them.
//!
//! A history that is not linearizable makes the search exhaust every order, so six reductions
//! cut the orders it has to try, each keeping at least one linearization if there is any:
//! - a read that can go next and accepts the current state (a GET seeing it, a DEL of an absent
//!   key answering 0) is taken at once and alone: it changes nothing, and nothing pending had to
//!   come before it. Without this, every subset of the concurrent reads is a configuration;
//! - a node is dead when a known op that can go next cannot accept any value the current one
//!   may grow into before it runs (a GET whose value does not start with it, an APPEND whose
//!   reply is too short), which is decidable when nothing that can run before it may shrink or
//!   replace the value: the usual case in an APPEND workload, where wrong orders would
//!   otherwise survive until a read refutes them much later;
//! - an unknown op is taken only if some known op that can go next might accept the state it
//!   leaves, at once or after further unknown APPENDs (a GET whose value starts with it, an
//!   APPEND whose reply leaves room for it, ...): every chain of unknown ops must end in a known
//!   op, and the ones that can are known before the chain starts. Without this, every order of
//!   every subset of the pending unknown APPENDs is a state of its own;
//! - unknown ops with the same effect (two INCRs, two SETs of one value, two SETs of values of
//!   one length that no GET saw, even as a prefix, and that no INCR can read) are
//!   interchangeable, so they are taken in the order they were called. Without this, each of
//!   them is tried in turn wherever one is needed (say, to make a DEL answer 1), and the rest of
//!   the history is searched again after each;
//! - an unknown op is never followed directly by a blind write (SET, or DEL with an unknown
//!   count): the write hides its effect, so taking the write alone, which the search also tries,
//!   does everything the pair does with one optional op fewer spent;
//! - the cache holds every configuration reached (known ops taken, unknown ops taken, model
//!   state, whether the last op taken was unknown); reaching one again prunes the branch, and so
//!   does reaching one that an earlier one subsumes: same known ops and state, a subset of the
//!   unknown ops, and no stricter restriction on what may come next. The earlier one can do
//!   everything the later one can.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::history::Op;
use super::model::{ABSENT, Register, StateId, Step};

/// When the search gives up.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_steps: u64,
    pub deadline: Instant,
    /// Keep the longest partial linearization, for the explanation of a failure.
    pub track_deepest: bool,
    /// Let every unknown SET and DEL take effect any number of times (in runs of at most as
    /// many unknown ops in a row as there are). This admits more orders, so "not linearizable"
    /// stays true, and forgets which of them were spent, which keeps the search polynomial
    /// when a history full of them has to be refuted. "Linearizable" then proves nothing.
    /// (APPEND and INCR stay exact: reusing them would multiply the states instead.)
    pub reuse_unknown: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchResult {
    Linearizable,
    /// No order works. `deepest` is the longest partial linearization the search reached, as
    /// indices into the searched ops, in order (empty unless tracked).
    NotLinearizable {
        deepest: Vec<usize>,
    },
    /// The step budget or the deadline ran out first.
    Exhausted,
}

#[derive(Clone, Debug, Default)]
pub struct SearchStats {
    /// Ops with a known outcome, which every linearization must contain.
    pub definite: usize,
    /// Ops with an unknown outcome that may change the state (unknown GETs are dropped).
    pub unknown: usize,
    pub steps: u64,
    pub cache_entries: usize,
}

/// Searches for a linearization of `ops`, all on one key.
pub fn search(ops: &[&Op], limits: &Limits) -> (SearchResult, SearchStats) {
    let mut search = Search::new(ops);
    search.reusable = limits.reuse_unknown;
    let result = search.run(limits);
    let stats = SearchStats {
        definite: search.definite,
        unknown: search.origin.len() - search.definite,
        steps: search.steps,
        cache_entries: search.cache.entries.len(),
    };
    let result = match result {
        SearchResult::NotLinearizable { deepest } => SearchResult::NotLinearizable {
            deepest: deepest.iter().map(|&id| search.origin[id]).collect(),
        },
        other => other,
    };
    (result, stats)
}

/// Where the walk over the candidates of the current node is.
#[derive(Clone, Copy)]
enum Cursor {
    /// At a node just reached: look for a read that can go at once.
    Fresh,
    /// At this entry of the list of known ops.
    Known(usize),
    /// At this entry of the list of unknown ops (the known candidates are exhausted).
    Unknown(usize),
    /// Nothing left to try here: backtrack.
    Exhausted,
}

/// One op taken, with the state before it, to undo on backtracking. `forced` marks a read taken
/// eagerly, the only child of its node.
struct Frame {
    id: usize,
    before: StateId,
    forced: bool,
}

/// Ops are numbered by id: `0..definite` have a known outcome (their call entry is `2 * id`, their
/// return entry `2 * id + 1`), `definite..` have an unknown one (entry `id - definite` of the
/// unknown list).
struct Search {
    register: Register,
    definite: usize,
    /// Index of each op in the searched slice.
    origin: Vec<usize>,
    steps_of: Vec<Step>,
    /// Doubly linked list of known-op entries, sentinel at `2 * definite`.
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Position of each known-op entry in the time order of all entries.
    rank: Vec<usize>,
    /// Doubly linked list of unknown-op calls, sentinel at `unknown count`.
    unext: Vec<usize>,
    uprev: Vec<usize>,
    urank: Vec<usize>,
    /// Known ops taken, and their Zobrist hash; unknown ops taken.
    taken: Vec<u64>,
    taken_hash: u64,
    taken_unknown: Vec<u64>,
    /// Unknown INCRs not taken: while there are any, a chain of unknown ops can reach any integer.
    untaken_incrs: usize,
    /// For each unknown op, the last one called before it with the same effect: ops with the
    /// same effect are interchangeable, so they are taken in call order only.
    same_before: Vec<Option<usize>>,
    zobrist: Vec<u64>,
    cache: Cache,
    steps: u64,
    /// Unknown SETs and DELs stay in their list when taken: see [`Limits::reuse_unknown`].
    reusable: bool,
}

impl Search {
    fn new(ops: &[&Op]) -> Search {
        let mut register = Register::new();
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let step = register.compile(op);
            match (&step, op.complete) {
                (Step::Nothing, _) => {}
                (_, Some(_)) => known.push((i, step)),
                (_, None) => unknown.push((i, step)),
            }
        }
        let definite = known.len();
        let u = unknown.len();

        // Every entry in time order; at equal times calls go first, so ops that touch are
        // concurrent (the clock cannot order them).
        enum Entry {
            Known(usize),
            Unknown(usize),
        }
        let mut entries: Vec<(u64, bool, Entry)> = Vec::with_capacity(2 * definite + u);
        for (id, (i, _)) in known.iter().enumerate() {
            entries.push((ops[*i].invoke, false, Entry::Known(2 * id)));
            let complete = ops[*i].complete.expect("known op has a completion");
            entries.push((complete, true, Entry::Known(2 * id + 1)));
        }
        for (x, (i, _)) in unknown.iter().enumerate() {
            entries.push((ops[*i].invoke, false, Entry::Unknown(x)));
        }
        entries.sort_by_key(|(time, is_return, _)| (*time, *is_return));

        let head = 2 * definite;
        let mut next = vec![head; head + 1];
        let mut prev = vec![head; head + 1];
        let mut rank = vec![0; head];
        let mut unext = vec![u; u + 1];
        let mut uprev = vec![u; u + 1];
        let mut urank = vec![0; u];
        let (mut last, mut ulast) = (head, u);
        for (position, (_, _, entry)) in entries.iter().enumerate() {
            match *entry {
                Entry::Known(e) => {
                    rank[e] = position;
                    next[last] = e;
                    prev[e] = last;
                    last = e;
                }
                Entry::Unknown(x) => {
                    urank[x] = position;
                    unext[ulast] = x;
                    uprev[x] = ulast;
                    ulast = x;
                }
            }
        }
        next[last] = head;
        prev[head] = last;
        unext[ulast] = u;
        uprev[u] = ulast;

        let (origin, steps_of): (Vec<usize>, Vec<Step>) = known.into_iter().chain(unknown).unzip();
        let same_before = interchangeable_before(&mut register, &steps_of[definite..], &urank, {
            let mut seen: Vec<StateId> = steps_of[..definite]
                .iter()
                .filter_map(|step| match step {
                    Step::Get { saw } => Some(*saw),
                    _ => None,
                })
                .collect();
            seen.sort_unstable();
            seen.dedup();
            seen
        });
        let untaken_incrs = steps_of[definite..]
            .iter()
            .filter(|step| matches!(step, Step::Incr { .. }))
            .count();
        Search {
            register,
            definite,
            origin,
            steps_of,
            next,
            prev,
            rank,
            unext,
            uprev,
            urank,
            taken: vec![0; definite.div_ceil(64)],
            taken_hash: 0,
            taken_unknown: vec![0; u.div_ceil(64)],
            untaken_incrs,
            same_before,
            zobrist: (0..definite as u64).map(splitmix64).collect(),
            cache: Cache::default(),
            steps: 0,
            reusable: false,
        }
    }

    fn run(&mut self, limits: &Limits) -> SearchResult {
        let head = 2 * self.definite;
        let uhead = self.origin.len() - self.definite;
        let mut state = ABSENT;
        let mut remaining = self.definite;
        let mut stack: Vec<Frame> = Vec::new();
        let mut deepest: Vec<usize> = Vec::new();
        let mut cursor = Cursor::Fresh;
        // Rank of the first pending return: unknown ops called after it cannot go next.
        let mut limit = 0;
        loop {
            if remaining == 0 {
                return SearchResult::Linearizable;
            }
            self.steps += 1;
            if self.steps > limits.max_steps
                || (self.steps.is_multiple_of(1024) && Instant::now() >= limits.deadline)
            {
                return SearchResult::Exhausted;
            }
            let (candidate, forced) = match cursor {
                Cursor::Fresh if self.doomed(state) => {
                    cursor = Cursor::Exhausted;
                    continue;
                }
                Cursor::Fresh => match self.eager_read(state) {
                    Some(id) => (Some(id), true),
                    None => {
                        cursor = Cursor::Known(self.next[head]);
                        continue;
                    }
                },
                Cursor::Known(e) if is_call(e) => (Some(e / 2), false),
                Cursor::Known(e) => {
                    // A return entry (the list is not empty while known ops remain): the known
                    // candidates are exhausted.
                    limit = self.rank[e];
                    cursor = Cursor::Unknown(self.unext[uhead]);
                    continue;
                }
                Cursor::Unknown(x) if x != uhead && self.urank[x] < limit => {
                    // An op interchangeable with one called earlier goes after it (or, when ops
                    // may be reused, never: the earlier one can always stand in).
                    let redundant = match self.same_before[x] {
                        Some(_) if self.reused(self.definite + x) => true,
                        Some(y) => !self.is_taken(self.definite + y),
                        None => false,
                    };
                    let chain = stack.iter().rev().take_while(|f| f.id >= self.definite);
                    if redundant || (self.reusable && chain.count() >= uhead) {
                        cursor = Cursor::Unknown(self.unext[x]);
                        continue;
                    }
                    (Some(self.definite + x), false)
                }
                Cursor::Unknown(_) | Cursor::Exhausted => (None, false),
            };
            if let Some(id) = candidate {
                let after_unknown = stack.last().is_some_and(|f| f.id >= self.definite);
                if !(after_unknown && self.steps_of[id].is_blind_write())
                    && let Some(after) = self.register.apply(state, id as u32, &self.steps_of[id])
                    && (id < self.definite || self.known_may_follow(after))
                    && self.take_if_new(id, after)
                {
                    stack.push(Frame {
                        id,
                        before: state,
                        forced,
                    });
                    self.lift(id);
                    state = after;
                    if id < self.definite {
                        remaining -= 1;
                    }
                    if limits.track_deepest && stack.len() > deepest.len() {
                        deepest = stack.iter().map(|f| f.id).collect();
                    }
                    cursor = Cursor::Fresh;
                } else {
                    cursor = match cursor {
                        Cursor::Known(e) => Cursor::Known(self.next[e]),
                        Cursor::Unknown(x) => Cursor::Unknown(self.unext[x]),
                        _ => Cursor::Exhausted,
                    };
                }
                continue;
            }
            let Some(Frame { id, before, forced }) = stack.pop() else {
                return SearchResult::NotLinearizable { deepest };
            };
            self.unlift(id);
            self.untake(id);
            state = before;
            if id < self.definite {
                remaining += 1;
            }
            cursor = if forced {
                Cursor::Exhausted
            } else if id < self.definite {
                Cursor::Known(self.next[2 * id])
            } else {
                limit = self.first_return_rank();
                Cursor::Unknown(self.unext[id - self.definite])
            };
        }
    }

    /// Whether some known op that can go next can never accept what it will meet. Only ops
    /// called before an op returns can go before it; if none of those can shrink or replace the
    /// value (they only read and APPEND), the op will meet an extension of `state`.
    fn doomed(&mut self, state: StateId) -> bool {
        // INCR fails on a value that cannot become an integer, leaving it as it is.
        let integer = self.register.may_become_integer(state);
        let resets =
            |step: &Step| step.may_reset() && (integer || !matches!(step, Step::Incr { .. }));
        let head = 2 * self.definite;
        // The ops that can go next, and how far their returns reach.
        let mut e = self.next[head];
        let mut horizon = 0;
        while is_call(e) {
            horizon = horizon.max(self.rank[e + 1]);
            e = self.next[e];
        }
        // The first call of an op that may reset the value, if before the horizon.
        let mut bound = usize::MAX;
        let mut e = self.next[head];
        while e != head && self.rank[e] < horizon {
            if is_call(e) && resets(&self.steps_of[e / 2]) {
                bound = self.rank[e];
                break;
            }
            e = self.next[e];
        }
        let uhead = self.origin.len() - self.definite;
        let mut x = self.unext[uhead];
        while x != uhead && self.urank[x] < bound.min(horizon) {
            if resets(&self.steps_of[self.definite + x]) {
                bound = self.urank[x];
                break;
            }
            x = self.unext[x];
        }
        let mut e = self.next[head];
        while is_call(e) {
            if self.rank[e + 1] < bound
                && !self
                    .register
                    .may_accept_after_appends(&self.steps_of[e / 2], state)
            {
                return true;
            }
            e = self.next[e];
        }
        false
    }

    /// A known op that can go next, reads the state and leaves it as it is, and accepts the
    /// current state. Taking it now is never worse than taking it later: it changes nothing,
    /// and nothing pending had to come before it. So it is the only child tried.
    fn eager_read(&self, state: StateId) -> Option<usize> {
        let mut e = self.next[2 * self.definite];
        while is_call(e) {
            let id = e / 2;
            match self.steps_of[id] {
                Step::Get { saw } if saw == state => return Some(id),
                Step::Del {
                    removed: Some(false),
                } if state == ABSENT => return Some(id),
                _ => {}
            }
            e = self.next[e];
        }
        None
    }

    /// Marks op `id` taken, leading to `state`, unless that configuration (or one that subsumes
    /// it) was reached before.
    fn take_if_new(&mut self, id: usize, state: StateId) -> bool {
        self.flip(id);
        let restricted = id >= self.definite;
        let new = self.cache.insert(
            self.taken_hash,
            state,
            restricted,
            &self.taken,
            &self.taken_unknown,
        );
        if !new {
            self.flip(id);
        }
        new
    }

    fn untake(&mut self, id: usize) {
        self.flip(id);
    }

    /// Whether op `id` stays available once taken: see [`Limits::reuse_unknown`].
    fn reused(&self, id: usize) -> bool {
        self.reusable
            && id >= self.definite
            && matches!(self.steps_of[id], Step::Set { .. } | Step::Del { .. })
    }

    fn is_taken(&self, id: usize) -> bool {
        if id < self.definite {
            self.taken[id / 64] & (1 << (id % 64)) != 0
        } else {
            let x = id - self.definite;
            self.taken_unknown[x / 64] & (1 << (x % 64)) != 0
        }
    }

    fn flip(&mut self, id: usize) {
        if self.reused(id) {
            return;
        }
        if id < self.definite {
            self.taken[id / 64] ^= 1 << (id % 64);
            self.taken_hash ^= self.zobrist[id];
        } else {
            let x = id - self.definite;
            self.taken_unknown[x / 64] ^= 1 << (x % 64);
            if matches!(self.steps_of[id], Step::Incr { .. }) {
                if self.is_taken(id) {
                    self.untaken_incrs -= 1;
                } else {
                    self.untaken_incrs += 1;
                }
            }
        }
    }

    /// Whether, with unknown ops having left `state`, some known op that can go next might
    /// accept it, at once or after more unknown ops (which, after an unknown op, can only be
    /// APPENDs and INCRs: blind writes may not follow). Conservative: true when unsure.
    fn known_may_follow(&mut self, state: StateId) -> bool {
        if self.untaken_incrs > 0 && self.register.may_become_integer(state) {
            return true;
        }
        let mut e = self.next[2 * self.definite];
        while is_call(e) {
            if self
                .register
                .may_accept_after_appends(&self.steps_of[e / 2], state)
            {
                return true;
            }
            e = self.next[e];
        }
        false
    }

    /// Takes op `id`'s entries out of the lists.
    fn lift(&mut self, id: usize) {
        if self.reused(id) {
            return;
        }
        if id < self.definite {
            unlink(&mut self.next, &mut self.prev, 2 * id);
            unlink(&mut self.next, &mut self.prev, 2 * id + 1);
        } else {
            unlink(&mut self.unext, &mut self.uprev, id - self.definite);
        }
    }

    /// Puts op `id`'s entries back; lifts are undone in reverse order, so the neighbours they
    /// remember are in the list again.
    fn unlift(&mut self, id: usize) {
        if self.reused(id) {
            return;
        }
        if id < self.definite {
            relink(&mut self.next, &mut self.prev, 2 * id + 1);
            relink(&mut self.next, &mut self.prev, 2 * id);
        } else {
            relink(&mut self.unext, &mut self.uprev, id - self.definite);
        }
    }

    fn first_return_rank(&self) -> usize {
        let mut e = self.next[2 * self.definite];
        while is_call(e) {
            e = self.next[e];
        }
        self.rank[e]
    }
}

/// For each unknown op (`steps`, called at `urank`), the last one called before it that it can
/// swap identities with: one with the same effect, or a SET of a value no GET can ever reveal
/// (`Register::is_unobservable`) of the same length as its own unrevealable value. Swapping two
/// such ops in any linearization leaves every reply explained.
fn interchangeable_before(
    register: &mut Register,
    steps: &[Step],
    urank: &[usize],
    seen: Vec<StateId>,
) -> Vec<Option<usize>> {
    let hidden_len: Vec<Option<usize>> = steps
        .iter()
        .map(|step| match step {
            Step::Set { to } if register.is_unobservable(*to, &seen) => Some(register.len(*to)),
            _ => None,
        })
        .collect();
    let mut by_call: Vec<usize> = (0..steps.len()).collect();
    by_call.sort_by_key(|&x| urank[x]);
    let mut before = vec![None; steps.len()];
    for (n, &x) in by_call.iter().enumerate() {
        before[x] = by_call[..n].iter().rev().copied().find(|&y| {
            steps[y].same_effect(&steps[x])
                || (hidden_len[x].is_some() && hidden_len[x] == hidden_len[y])
        });
    }
    before
}

/// Entries of known ops: calls are even, returns odd.
fn is_call(entry: usize) -> bool {
    entry.is_multiple_of(2)
}

fn unlink(next: &mut [usize], prev: &mut [usize], e: usize) {
    next[prev[e]] = next[e];
    prev[next[e]] = prev[e];
}

fn relink(next: &mut [usize], prev: &mut [usize], e: usize) {
    next[prev[e]] = e;
    prev[next[e]] = e;
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const NONE: u32 = u32::MAX;

/// The configurations reached. Each stores the taken known ops compactly (the leading all-taken
/// words are counted, trailing untaken ones dropped: the ops long done and those not yet called)
/// and the taken unknown ops in full, in one shared word arena. Configurations with the same
/// known-ops hash and state are chained. `restricted` means the last op taken was unknown, so a
/// blind write may not come next.
#[derive(Default)]
struct Cache {
    heads: HashMap<(u64, StateId), u32, BuildHasherDefault<FxHasher>>,
    entries: Vec<CacheEntry>,
    words: Vec<u64>,
}

struct CacheEntry {
    restricted: bool,
    lead: u32,
    window: u32,
    start: usize,
    next: u32,
}

impl Cache {
    /// Records a configuration; false if it or one that subsumes it is already there.
    fn insert(
        &mut self,
        hash: u64,
        state: StateId,
        restricted: bool,
        known: &[u64],
        unknown: &[u64],
    ) -> bool {
        let lead = known.iter().take_while(|&&w| w == u64::MAX).count();
        let end = known
            .iter()
            .rposition(|&w| w != 0)
            .map_or(0, |p| p + 1)
            .max(lead);
        let window = &known[lead..end];
        let head = self.heads.get(&(hash, state)).copied().unwrap_or(NONE);
        let mut e = head;
        while e != NONE {
            let entry = &self.entries[e as usize];
            let stored = &self.words[entry.start..entry.start + window.len() + unknown.len()];
            if entry.lead as usize == lead
                && (!entry.restricted || restricted)
                && entry.window as usize == window.len()
                && stored[..window.len()] == *window
                && stored[window.len()..]
                    .iter()
                    .zip(unknown)
                    .all(|(had, has)| had & !has == 0)
            {
                return false;
            }
            e = entry.next;
        }
        let start = self.words.len();
        self.words.extend_from_slice(window);
        self.words.extend_from_slice(unknown);
        let index = u32::try_from(self.entries.len()).expect("fewer than 2^32 cache entries");
        self.entries.push(CacheEntry {
            restricted,
            lead: lead as u32,
            window: window.len() as u32,
            start,
            next: head,
        });
        self.heads.insert((hash, state), index);
        true
    }
}

/// The Firefox/rustc hash: plenty for keys that are already a random hash and a small integer.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}
