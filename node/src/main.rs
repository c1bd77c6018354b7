//! `status-node`: the status-rs binary.
//!
//! - `demo`: the life of a message on the simulated network, step by step.
//! - `run`: a full, bootstrap or light node over the TCP transport or (feature `libp2p`) libp2p.
//! - `chat`: an interactive terminal chat on an account's encrypted data directory.
//! - `account new|restore|show` and `keygen`: seed phrases, chat keys, data directories.
#![forbid(unsafe_code)]

mod account;
mod chat;
mod cli;
mod demo;
mod driver;
mod net;
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
