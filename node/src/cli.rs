//! The command line: clap definitions only; the commands live in their own modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  Create a new account (prints the chat key, its three words, the safety number
  and the seed phrase; write the phrase down and keep it offline):
    status-node keygen
    status-node keygen --words 24

  Show the public identity of an existing phrase without printing anything secret:
    status-node account show --phrase-file my-phrase.txt
    echo \"$PHRASE\" | status-node account show --phrase-file -

  Watch the life of a message from Alice to Bob on a simulated network:
    status-node demo
    status-node demo --seed 7 --quiet

Accounts are not stored on disk yet: the encrypted account store (account new|restore
with --data-dir) arrives with issue 11.";

/// status-node: a Status messenger node written in Rust.
#[derive(Debug, Parser)]
#[command(name = "status-node", version, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a new account from fresh OS randomness and print its identity and seed phrase.
    Keygen(KeygenArgs),
    /// Inspect an account given by its seed phrase.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Run the life of a message (Alice to Bob through bootstrap and full nodes) on an
    /// in-process simulated network and print every step.
    Demo(DemoArgs),
}

/// `account` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Print the chat key, its three-word pseudonym and safety number (nothing secret).
    Show(ShowArgs),
}

/// Length of a new seed phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Words {
    /// 12 words (128 bits of entropy).
    #[value(name = "12")]
    Twelve,
    /// 24 words (256 bits of entropy).
    #[value(name = "24")]
    TwentyFour,
}

/// Arguments of `keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Number of words in the seed phrase.
    #[arg(long, value_enum, default_value = "12")]
    pub(crate) words: Words,
    /// File holding an optional BIP-39 passphrase (the "25th word"); its last line break is
    /// ignored. Without it the passphrase is empty.
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
}

/// Arguments of `account show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// File holding the 12- or 24-word seed phrase (`-` reads standard input). A file rather
    /// than an argument keeps the phrase out of the shell history and the process list.
    #[arg(long, value_name = "FILE")]
    pub(crate) phrase_file: PathBuf,
    /// File holding the BIP-39 passphrase used when the account was created, if any.
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
}

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Seed of every random draw: the same seed prints the same run, byte for byte.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Print the steps and their results only, not every frame on the network.
    #[arg(long)]
    pub(crate) quiet: bool,
}
