//! The `kvd` binary: parse flags, run the server, turn any startup failure into one line.

use clap::Parser;

fn main() {
    let args = kvd::config::Args::parse();
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
