//! The `kvd` binary: parse flags, run the server, turn any failure into one line (`kvd::fatal`).

use clap::Parser;
use kvd::fatal::{Exit, fatal};

/// jemalloc, as redis-server uses: less fragmentation over a long run, and exact counts of the
/// bytes allocated for INFO memory and maxmemory (`kvd::memory`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// clap's first error line without its "error: " prefix.
fn one_line(msg: &str) -> String {
    let first = msg.lines().find(|l| !l.trim().is_empty()).unwrap_or(msg);
    first.trim().trim_start_matches("error:").trim().to_string()
}

fn main() {
    kvd::fatal::install_panic_hook();
    let args = match kvd::config::Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap's own output, exit 0.
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => fatal(
            Exit::Usage,
            format_args!("{} (see kvd --help)", one_line(&e.to_string())),
        ),
    };
    let config = match args.validate() {
        Ok(c) => c,
        Err(e) => fatal(Exit::Usage, e),
    };
    if let Err(e) = kvd::server::run(config) {
        fatal(Exit::Failed, e);
    }
}
