//! The `kvd` binary: parse flags, run the server, turn any startup failure into one line.

use clap::Parser;

/// clap's first error line without its "error: " prefix.
fn one_line(msg: &str) -> String {
    let first = msg.lines().find(|l| !l.trim().is_empty()).unwrap_or(msg);
    first.trim().trim_start_matches("error:").trim().to_string()
}

fn main() {
    // One line, never a backtrace; a panic in the raft thread stops the node (it cannot go on
    // without it), elsewhere (a client task) the task ends and the node carries on.
    std::panic::set_hook(Box::new(|info| {
        if kvd::panics_are_quiet() {
            return;
        }
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("?");
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("kvd: internal error in thread '{name}': {msg}{at}");
        if name == "raft" {
            std::process::exit(70);
        }
    }));
    let args = match kvd::config::Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap's own output, exit 0.
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("kvd: {} (see kvd --help)", one_line(&e.to_string()));
            std::process::exit(2);
        }
    };
    let config = match args.validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kvd: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = kvd::server::run(config) {
        eprintln!("kvd: {e}");
        std::process::exit(1);
    }
}
