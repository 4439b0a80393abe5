//! A direct linearizability check for one append-only key whose APPENDs carry unique tokens
//! (`c3-17,`), for histories too large for the general search (many APPENDs with unknown
//! outcome make its state space explode).
//!
//! With unique tokens and nothing but APPEND and GET on the key, the final value fixes the order
//! in which the applied APPENDs took effect: their tokens' order in it. What remains is whether
//! points in time exist, in that order, inside every op's interval: each acknowledged APPEND at
//! the point its reply (the new length) says, each GET between the APPEND that produced the
//! prefix it returned and the next one. Assigning every op the earliest point it can take,
//! in order, finds such points whenever they exist, so the check is exact, and linear after
//! sorting.

use std::collections::HashMap;

use crate::checker::{Kind, Op, Outcome, fmt_op};

/// Checks the ops on `key` against `final_value`, read after everything else completed.
/// APPENDs with unknown outcome whose token is not in the final value must have been dropped
/// already (see `workload::without_unapplied_appends`). Err explains the first violation.
pub fn check(ops: &[Op], key: &[u8], final_value: &[u8]) -> Result<usize, String> {
    let t0 = ops.iter().map(|op| op.invoke).min().unwrap_or(0);
    let show = |i: usize| fmt_op(i, &ops[i], t0);
    // Token -> (position, end offset) in the final value.
    let mut tokens: HashMap<&[u8], (usize, usize)> = HashMap::new();
    let mut ends = vec![0usize];
    let mut start = 0;
    for (i, &b) in final_value.iter().enumerate() {
        if b == b',' {
            let token = &final_value[start..=i];
            if tokens.insert(token, (ends.len(), i + 1)).is_some() {
                return Err(format!(
                    "token {} appears twice in the final value",
                    token.escape_ascii()
                ));
            }
            ends.push(i + 1);
            start = i + 1;
        }
    }
    if start != final_value.len() {
        return Err("the final value does not end with a whole token".into());
    }
    // Slot k: the APPEND that made the value's k-th token, and the GETs that saw exactly k.
    let n = ends.len();
    let mut appends: Vec<Option<usize>> = vec![None; n];
    let mut reads: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut checked = 0;
    for (i, op) in ops.iter().enumerate().filter(|(_, op)| op.key == key) {
        checked += 1;
        match (&op.kind, &op.outcome) {
            (Kind::Append(token), outcome) => {
                let Some(&(k, end)) = tokens.get(token.as_slice()) else {
                    if op.is_unknown() {
                        continue; // never took effect
                    }
                    return Err(format!("{}: its token is not in the final value", show(i)));
                };
                if let Outcome::Int(len) = outcome
                    && *len != end as i64
                {
                    return Err(format!(
                        "{}: replied length {len}, but its token ends at {end} in the final value",
                        show(i)
                    ));
                }
                if let Some(other) = appends[k].replace(i) {
                    return Err(format!(
                        "{} and {} sent the same token",
                        show(other),
                        show(i)
                    ));
                }
            }
            (Kind::Get, Outcome::Value(v)) => {
                let v = v.as_deref().unwrap_or_default();
                let Some(k) = ends.iter().position(|&e| e == v.len()) else {
                    return Err(format!("{}: not a whole number of tokens", show(i)));
                };
                if !final_value.starts_with(v) {
                    return Err(format!("{}: not a prefix of the final value", show(i)));
                }
                reads[k].push(i);
            }
            (Kind::Get, _) => {}
            _ => return Err(format!("{}: only APPEND and GET are supported", show(i))),
        }
    }
    for (k, a) in appends.iter().enumerate().skip(1) {
        if a.is_none() {
            return Err(format!(
                "token #{k} of the final value was never sent by an APPEND in the history"
            ));
        }
    }
    // Earliest points, in order. `floor`: no later point may come before it; `floor_op` set it.
    let mut floor = 0u64;
    let mut floor_op: Option<usize> = None;
    let why = |op: Option<usize>| op.map_or("the start".into(), show);
    for k in 0..n {
        if let Some(a) = appends[k] {
            if ops[a]
                .complete
                .is_some_and(|c| floor.max(ops[a].invoke) > c)
            {
                return Err(format!(
                    "{}
completed before this op could take effect, which comes earlier in                      the final value or saw less of it:
{}",
                    show(a),
                    why(floor_op)
                ));
            }
            if ops[a].invoke > floor {
                (floor, floor_op) = (ops[a].invoke, Some(a));
            }
        }
        let append_at = floor;
        let append_op = floor_op;
        for &r in &reads[k] {
            if ops[r]
                .complete
                .is_some_and(|c| append_at.max(ops[r].invoke) > c)
            {
                return Err(format!(
                    "{}
saw {k} tokens, so it cannot take effect before
{}",
                    show(r),
                    why(append_op)
                ));
            }
            if ops[r].invoke > floor {
                (floor, floor_op) = (ops[r].invoke, Some(r));
            }
        }
    }
    Ok(checked)
}
