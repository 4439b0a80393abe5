//! Checking a recorded history: the general linearizability checker for every key, and for the
//! append-only token key also the direct check of `appendlog.rs`, which decides even when many
//! APPENDs with unknown outcome exhaust the general search.

use std::time::Duration;

use crate::checker::{self, Budget, History, Verdict};
use crate::nemesis::appendlog;

/// What the checks found.
pub struct Checked {
    /// One line per check, for the run's summary.
    pub summary: String,
    pub problems: Vec<String>,
    /// The key to print the history of, if a check failed.
    pub failing_key: Option<Vec<u8>>,
}

/// Checks `history`; `log_key` is the append-only token key and `final_log` its value read
/// after everything else completed.
pub fn check_history(history: &History, log_key: &str, final_log: &[u8]) -> Checked {
    let (log_ops, other_ops): (Vec<_>, Vec<_>) = history
        .ops()
        .iter()
        .cloned()
        .partition(|op| op.key == log_key.as_bytes());
    let mut problems = Vec::new();
    let mut failing_key = None;

    let others = checker::check(
        &History::new(other_ops),
        &Budget {
            steps_per_key: 20_000_000,
            time: Duration::from_secs(120),
        },
    );
    if let Verdict::NotLinearizable { key, .. } | Verdict::Inconclusive { key, .. } =
        &others.verdict
    {
        problems.push(format!("checker: {}", others.verdict));
        failing_key = Some(key.clone());
    }

    let log_history = History::new(log_ops);
    let log = checker::check(
        &log_history,
        &Budget {
            steps_per_key: 3_000_000,
            time: Duration::from_secs(30),
        },
    );
    let direct = appendlog::check(log_history.ops(), log_key.as_bytes(), final_log);
    if let Verdict::NotLinearizable { .. } = &log.verdict {
        problems.push(format!("checker: {}", log.verdict));
        failing_key = Some(log_key.as_bytes().to_vec());
    }
    if let Err(e) = &direct {
        problems.push(format!("append log {log_key:?} not linearizable:\n{e}"));
        failing_key = Some(log_key.as_bytes().to_vec());
    }
    let log_verdict = match &log.verdict {
        Verdict::Inconclusive { .. } => "out of budget".to_string(),
        v => v.to_string(),
    };
    let summary = format!(
        "checker: {}  append log: {} ops, search {log_verdict} in {:?}; direct check {}",
        others,
        log_history.len(),
        log.elapsed,
        match &direct {
            Ok(_) => "linearizable".to_string(),
            Err(_) => "NOT linearizable".to_string(),
        }
    );
    Checked {
        summary,
        problems,
        failing_key,
    }
}
