//! The one way kvd stops on its own: one `kvd: ...` line on stderr and a non-zero exit status.
//!
//! Startup failures, storage failures while running, a `--join` the cluster refuses and a panic
//! on any kvd thread (raft, persist, the tokio workers running clients and the transport) all end
//! here, so an operator or a supervisor always sees a single line saying why. A panic cannot be
//! left to end only its own thread: the raft thread would wait forever for a persistence worker
//! that is gone, and a client task would die holding whatever it held.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// How the process ends, as its exit status tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A flag or value the user must fix (status 2, as clap uses).
    Usage,
    /// The node cannot run: startup refused, storage failure, join refused (status 1).
    Failed,
    /// A bug: a panic on some thread (status 70, EX_SOFTWARE).
    Internal,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Usage => 2,
            Exit::Failed => 1,
            Exit::Internal => 70,
        }
    }
}

static STOPPING: AtomicBool = AtomicBool::new(false);

/// Prints `kvd: {msg}` to stderr and exits with `exit`'s status. Only the first caller prints: a
/// second thread failing meanwhile (often because of the first) waits for the process to end.
pub fn fatal(exit: Exit, msg: impl Display) -> ! {
    if STOPPING.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "kvd: {msg}");
        let _ = err.flush();
    }
    std::process::exit(exit.code())
}

/// A storage failure while running: the node stops rather than serve from a state it cannot
/// trust. Logged (for log files) and reported as the one line.
pub fn storage_failure(logger: &slog::Logger, e: &dyn Display) -> ! {
    slog::crit!(logger, "storage failure, stopping the node"; "error" => %e);
    fatal(Exit::Failed, format_args!("storage failure, stopping: {e}"))
}

/// Makes a panic on any thread stop the process with one line naming the thread, never a
/// backtrace. Panics inside `crate::quiet_panics` are left to their caller (redb may panic on
/// a damaged file at open; the caller reports that in its own words).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if crate::panics_are_quiet() {
            return;
        }
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("?");
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        fatal(
            Exit::Internal,
            format_args!("internal error in thread '{name}': {msg}{at}"),
        )
    }));
}

/// Debug builds only: panics if the environment variable `KVD_DEBUG_PANIC` names `place`
/// (`raft`, `persist`, `client`), so tests can check that a panic there stops the process.
/// Compiled out of release builds.
#[inline]
pub fn debug_panic_point(place: &str) {
    #[cfg(debug_assertions)]
    {
        static WANTED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let wanted = WANTED.get_or_init(|| std::env::var("KVD_DEBUG_PANIC").ok());
        if wanted.as_deref() == Some(place) {
            panic!("KVD_DEBUG_PANIC={place}");
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = place;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_are_distinct_and_non_zero() {
        let codes = [Exit::Usage, Exit::Failed, Exit::Internal].map(Exit::code);
        assert!(codes.iter().all(|&c| c != 0));
        assert_ne!(codes[0], codes[1]);
        assert_ne!(codes[1], codes[2]);
    }

    /// The hook lets panics inside `quiet_panics` through to their caller (redb at open).
    #[test]
    fn quiet_panics_are_caught_and_marked() {
        assert!(!crate::panics_are_quiet());
        let r = crate::quiet_panics(|| {
            assert!(crate::panics_are_quiet());
            panic!("damaged file");
        });
        assert!(r.is_err());
        assert!(!crate::panics_are_quiet());
        assert_eq!(crate::quiet_panics(|| 7).ok(), Some(7));
    }
}
