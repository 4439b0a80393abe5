//! Turning "no linearization exists" into something a person can debug: the earliest moment the
//! history stops being linearizable, the ops around it, and how far the search got.
//!
//! Linearizability is closed under prefixes: cut a linearizable history at time `t` (drop what
//! was invoked later, and treat what was still running at `t` as outcome unknown) and it stays
//! linearizable. So the cuts at successive completion times switch from linearizable to not
//! exactly once, and a binary search finds the completion that breaks it.

use std::fmt::Write as _;

use super::history::{History, Kind, Op, Outcome, fmt_op, fmt_value};
use super::model::{ABSENT, Register};
use super::search::{Limits, SearchResult, search};

/// Ops listed around the culprit, at most.
const MAX_LISTED: usize = 60;
/// Ops completed before the culprit was invoked that are listed too.
const LISTED_BEFORE: usize = 8;
/// Steps of the deepest partial linearization that are listed.
const LISTED_STEPS: usize = 12;

/// Explains why the ops `key_ops` (indices into `history`, all on one key, sorted) have no
/// linearization.
pub fn explain(history: &History, key_ops: &[usize], limits: &Limits) -> String {
    let ops = history.ops();
    let mut times: Vec<u64> = key_ops.iter().filter_map(|&i| ops[i].complete).collect();
    times.sort_unstable();
    times.dedup();
    if times.is_empty() {
        return "no op has a known outcome, so none can fail".into();
    }

    // Invariant: the cut at times[hi] fails; the cut at times[lo] (lo = -1: before anything
    // completed) does not, or the search ran out of budget on it.
    let quiet = Limits {
        track_deepest: false,
        ..limits.clone()
    };
    let (mut lo, mut hi) = (-1_isize, times.len() as isize - 1);
    let mut lo_undecided = false;
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        let (cut, _) = cut_at(ops, key_ops, times[mid as usize]);
        let refs: Vec<&Op> = cut.iter().collect();
        match search(&refs, &quiet).0 {
            SearchResult::NotLinearizable { .. } => hi = mid,
            result => {
                lo = mid;
                lo_undecided = result == SearchResult::Exhausted;
            }
        }
    }
    let t = times[hi as usize];
    let (cut, origin) = cut_at(ops, key_ops, t);
    let refs: Vec<&Op> = cut.iter().collect();
    let deepest = match search(&refs, limits).0 {
        SearchResult::NotLinearizable { deepest } => Some(deepest),
        _ => None,
    };

    let t0 = ops.first().map_or(0, |op| op.invoke);
    let culprits: Vec<usize> = key_ops
        .iter()
        .copied()
        .filter(|&i| ops[i].complete == Some(t))
        .collect();
    let start = culprits.iter().map(|&i| ops[i].invoke).min().unwrap_or(t);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ops on this key ({} with unknown outcome).",
        key_ops.len(),
        key_ops.iter().filter(|&&i| ops[i].is_unknown()).count()
    );
    let earlier = match (lo, lo_undecided) {
        (-1, _) => "nothing completed earlier",
        (_, false) => "everything that completed earlier has a linearization",
        (_, true) => "what completed earlier ran out of budget, so it may break sooner",
    };
    let _ = writeln!(
        out,
        "The history stops being linearizable when this completes ({earlier}):"
    );
    for &i in &culprits {
        let _ = writeln!(out, "  {}", fmt_op(i, &ops[i], t0));
    }
    for &i in &culprits {
        if let (Kind::Get, Outcome::Value(Some(seen))) = (&ops[i].kind, &ops[i].outcome) {
            let writers: Vec<usize> = key_ops
                .iter()
                .copied()
                .filter(|&w| ops[w].kind == Kind::Set(seen.clone()))
                .collect();
            if writers.is_empty() {
                let _ = writeln!(out, "No SET wrote the value #{i} read.");
            } else {
                let _ = writeln!(out, "The value #{i} read was SET by:");
                for &w in &writers {
                    let _ = writeln!(out, "  {}", fmt_op(w, &ops[w], t0));
                }
            }
        }
    }

    let _ = writeln!(
        out,
        "Ops running at any time while it ran (unknown outcomes run forever), and the last {LISTED_BEFORE} \
         completed before:"
    );
    let mut before: Vec<usize> = key_ops
        .iter()
        .copied()
        .filter(|&i| ops[i].complete.is_some_and(|c| c < start))
        .collect();
    before.sort_by_key(|&i| ops[i].complete);
    let before = &before[before.len().saturating_sub(LISTED_BEFORE)..];
    let mut listed: Vec<usize> = key_ops
        .iter()
        .copied()
        .filter(|&i| ops[i].invoke <= t && ops[i].complete.is_none_or(|c| c >= start))
        .chain(before.iter().copied())
        .collect();
    listed.sort_unstable();
    if listed.len() > MAX_LISTED {
        let _ = writeln!(
            out,
            "  … {} earlier ones left out",
            listed.len() - MAX_LISTED
        );
        listed.drain(..listed.len() - MAX_LISTED);
    }
    for &i in &listed {
        let _ = writeln!(out, "  {}", fmt_op(i, &ops[i], t0));
    }

    match deepest {
        Some(deepest) => describe_deepest(&mut out, &cut, &origin, &deepest, t0),
        None => {
            let _ = writeln!(
                out,
                "(The search ran out of budget replaying this prefix, so no partial order is shown.)"
            );
        }
    }
    out
}

/// The longest partial linearization: its last steps with the state after each, and the known
/// ops that could go next but saw something else.
fn describe_deepest(out: &mut String, cut: &[Op], origin: &[usize], deepest: &[usize], t0: u64) {
    let known = cut.iter().filter(|op| !op.is_unknown()).count();
    let taken_known = deepest.iter().filter(|&&c| !cut[c].is_unknown()).count();
    let _ = writeln!(
        out,
        "The longest partial linearization of that prefix (ops running at its end count as \
         outcome unknown) takes {taken_known} of its {known} known ops and {} unknown ones; it ends:",
        deepest.len() - taken_known
    );
    let mut register = Register::new();
    let mut state = ABSENT;
    let first_listed = deepest.len().saturating_sub(LISTED_STEPS);
    if first_listed > 0 {
        let _ = writeln!(out, "  … {first_listed} steps before");
    }
    for (n, &c) in deepest.iter().enumerate() {
        let step = register.compile(&cut[c]);
        state = register
            .apply(state, c as u32, &step)
            .expect("the deepest linearization replays");
        if n >= first_listed {
            let _ = writeln!(
                out,
                "  {}   => {}",
                fmt_op(origin[c], &cut[c], t0),
                fmt_value(register.value(state).as_deref())
            );
        }
    }
    let _ = writeln!(
        out,
        "  state then: {}",
        fmt_value(register.value(state).as_deref())
    );

    // The known ops left whose call precedes the first pending return: each could go next, and
    // each (with any unknown ops before it) contradicts its reply.
    let mut left: Vec<usize> = (0..cut.len())
        .filter(|c| !cut[*c].is_unknown() && !deepest.contains(c))
        .collect();
    let Some(first_return) = left.iter().filter_map(|&c| cut[c].complete).min() else {
        return;
    };
    left.retain(|&c| cut[c].invoke <= first_return);
    let _ = writeln!(
        out,
        "None of these could go next (with or without the unknown ops still untaken):"
    );
    for &c in &left {
        let _ = writeln!(out, "  {}", fmt_op(origin[c], &cut[c], t0));
    }
}

/// The ops of `key_ops` as seen at time `t`: those invoked by then, the ones still running made
/// unknown. Returns them with the history index of each.
fn cut_at(ops: &[Op], key_ops: &[usize], t: u64) -> (Vec<Op>, Vec<usize>) {
    let mut cut = Vec::new();
    let mut origin = Vec::new();
    for &i in key_ops {
        let op = &ops[i];
        if op.invoke > t {
            continue;
        }
        let mut op = op.clone();
        if op.complete.is_some_and(|c| c > t) {
            op.complete = None;
            op.outcome = Outcome::Unknown;
        }
        cut.push(op);
        origin.push(i);
    }
    (cut, origin)
}
