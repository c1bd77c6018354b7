//! `status-node`: the status-rs binary.
//!
//! Today it manages accounts (`keygen`, `account show`). The account's encrypted on-disk store
//! (`account new|restore` with `--data-dir`) arrives with issue 11; `run`, `chat` and the
//! simulated-network walkthrough arrive with the node composite and the Messenger.
#![forbid(unsafe_code)]

mod account;
mod chat;
mod cli;
mod demo;
mod driver;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let mut out = std::io::stdout().lock();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        cli::Command::Keygen(args) => account::keygen(&args, &mut out).map_err(Into::into),
        cli::Command::Account { command } => {
            account::account_command(&command, &mut out).map_err(Into::into)
        }
        cli::Command::Demo(args) => demo::run(
            demo::DemoOptions {
                seed: args.seed,
                quiet: args.quiet,
            },
            &mut out,
        )
        .map_err(Into::into),
        cli::Command::Run(args) => run::run(&args).map_err(Into::into),
        cli::Command::Chat(args) => chat::chat(&args).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("status-node: error: {e}");
            ExitCode::FAILURE
        }
    }
}
