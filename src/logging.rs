//! slog setup: one line per lifecycle event at the default level (info), raft-rs's own chatter
//! (tagged `raft`) only from warnings up unless the level is debug or trace.

use slog::{Drain, Level, Logger, o};

/// A drain that keeps records at or above `level`, and raft-rs records at or above `raft_level`.
struct Filter<D> {
    drain: D,
    level: Level,
    raft_level: Level,
}

impl<D: Drain> Drain for Filter<D> {
    type Ok = Option<D::Ok>;
    type Err = D::Err;

    fn log(
        &self,
        record: &slog::Record,
        values: &slog::OwnedKVList,
    ) -> Result<Self::Ok, Self::Err> {
        let from_raft = record.module().starts_with("raft::") || record.module() == "raft";
        let min = if from_raft {
            self.raft_level
        } else {
            self.level
        };
        if record.level().is_at_least(min) {
            self.drain.log(record, values).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Builds the process logger (stderr, asynchronous so logging never blocks the raft loop).
pub fn logger(level: Level, name: &str) -> Logger {
    let decorator = slog_term::TermDecorator::new().stderr().build();
    let fmt = slog_term::CompactFormat::new(decorator).build().fuse();
    let raft_level = if level.is_at_least(Level::Info) {
        Level::Warning
    } else {
        level
    };
    let filtered = Filter {
        drain: fmt,
        level,
        raft_level,
    }
    .fuse();
    let drain = slog_async::Async::new(filtered)
        .chan_size(4096)
        .overflow_strategy(slog_async::OverflowStrategy::DropAndReport)
        .build()
        .fuse();
    Logger::root(drain, o!("node" => name.to_string()))
}
