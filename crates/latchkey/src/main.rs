//! The `latchkey` binary: a thin command line over `latchkey-server`.
//!
//! Exit codes: 0 success, 1 runtime failure or refused (no such account,
//! the last administrator, ...), 2 usage or configuration refused (one line per
//! problem on stderr, saying what to fix; never a secret's value).

mod audit;
mod cli;
mod operator;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(cli))
}
