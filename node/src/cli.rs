//! The command line: clap definitions only; the commands live in their own modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  Create a new account (prints the chat key, its three words, the safety number
  and the seed phrase; write the phrase down and keep it offline):
    status-node keygen
    status-node keygen --words 24

  Keep an account in a data directory (default $STATUS_NODE_DATA_DIR, else
  $XDG_DATA_HOME/status-node, else ~/.local/share/status-node) for `run` and `chat`:
    status-node account new --data-dir ./alice
    status-node account restore --phrase-file my-phrase.txt --data-dir ./alice
    status-node account show --data-dir ./alice

  Show the public identity of an existing phrase without printing anything secret:
    status-node account show --phrase-file my-phrase.txt
    echo \"$PHRASE\" | status-node account show --phrase-file -

  Watch the life of a message from Alice to Bob on a simulated network:
    status-node demo
    status-node demo --seed 7 --quiet

  Run nodes over TCP and chat through them (each `run` prints `listening KEY@ADDR`,
  the value for --peer; see `status-node run --help` and `status-node chat --help`):
    status-node run --role bootstrap --listen 127.0.0.1:60000 --data-dir ./boot
    status-node run --role full --listen 127.0.0.1:60001 --data-dir ./full --peer KEY@127.0.0.1:60000
    status-node chat --data-dir ./alice --peer KEY@127.0.0.1:60001

A data directory holds the seed phrase in account.phrase (mode 0600, like an SSH
private key) and the Messenger's state in messenger.db, encrypted with SQLCipher
under a key derived from the phrase.";

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
    /// Create, restore or inspect the account kept in a data directory.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Run the life of a message (Alice to Bob through bootstrap and full nodes) on an
    /// in-process simulated network and print every step.
    Demo(DemoArgs),
    /// Run a node over TCP (full: relay + store; bootstrap: relay + peer exchange; light: a
    /// Messenger on the account) until Ctrl-C or SIGTERM.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Chat in the terminal through a full node: 1:1 by chat key, public channels, history
    /// from the store after being offline.
    #[command(after_help = CHAT_EXAMPLES)]
    Chat(ChatArgs),
}

/// `account` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Create a new account in the data directory and print its identity and seed phrase.
    New(NewArgs),
    /// Store the account of an existing seed phrase in the data directory.
    Restore(RestoreArgs),
    /// Print the chat key, its three-word pseudonym and safety number (nothing secret unless
    /// asked with --reveal-phrase --yes-i-understand).
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

/// Arguments of `account new`.
#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// Number of words in the seed phrase.
    #[arg(long, value_enum, default_value = "12")]
    pub(crate) words: Words,
    /// File holding an optional BIP-39 passphrase (the "25th word"); its last line break is
    /// ignored. It is kept in the data directory (mode 0600) next to the phrase.
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Directory of the account and its encrypted database (created 0700 if missing; must
    /// not hold another account). Default: $STATUS_NODE_DATA_DIR, else
    /// $XDG_DATA_HOME/status-node, else ~/.local/share/status-node.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// Arguments of `account restore`.
#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// File holding the 12- or 24-word seed phrase (`-` reads standard input).
    #[arg(long, value_name = "FILE")]
    pub(crate) phrase_file: PathBuf,
    /// File holding the BIP-39 passphrase used when the account was created, if any.
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Directory of the account and its encrypted database (as for `account new`).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// Arguments of `account show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The account's data directory (default as for `account new`). Also checks that its
    /// database opens with the account's key.
    #[arg(long, value_name = "DIR", conflicts_with = "phrase_file")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Instead of a data directory: a file holding the 12- or 24-word seed phrase (`-` reads
    /// standard input). A file rather than an argument keeps the phrase out of the shell
    /// history and the process list.
    #[arg(long, value_name = "FILE")]
    pub(crate) phrase_file: Option<PathBuf>,
    /// With --phrase-file: a file holding the BIP-39 passphrase, if the account has one.
    #[arg(long, value_name = "FILE", requires = "phrase_file")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Also print the seed phrase (secret: anyone who sees it has the account). Needs
    /// --yes-i-understand.
    #[arg(long, requires = "yes_i_understand")]
    pub(crate) reveal_phrase: bool,
    /// Confirms --reveal-phrase.
    #[arg(long, requires = "reveal_phrase")]
    pub(crate) yes_i_understand: bool,
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

const RUN_EXAMPLES: &str = "\
Standard output starts with one `listening ADDR` line per address: the value other nodes
and chats pass to --peer (`KEY@HOST:PORT` with TCP, a multiaddr ending in /p2p/<peer id>
with libp2p). Logs go to standard error (RUST_LOG filter, default info).

Examples:
  A bootstrap node and two full nodes on one machine (each prints its KEY@ADDR):
    status-node run --role bootstrap --listen 127.0.0.1:60000 --data-dir ./boot
    status-node run --role full --listen 127.0.0.1:60001 --data-dir ./full1 --peer KEY@127.0.0.1:60000
    status-node run --role full --listen 127.0.0.1:60002 --data-dir ./full2 \\
        --peer KEY@127.0.0.1:60000 --peer KEY@127.0.0.1:60001

  The same on libp2p (a build with --features libp2p), reachable by nwaku, go-waku and
  js-waku; a WebSocket listener for browsers:
    status-node run --transport libp2p --role full --data-dir ./full1 \\
        --listen /ip4/0.0.0.0/tcp/60001 --listen /ip4/0.0.0.0/tcp/8001/ws
    status-node run --transport libp2p --role full --data-dir ./full2 \\
        --listen /ip4/0.0.0.0/tcp/60002 --peer /ip4/127.0.0.1/tcp/60001/p2p/PEER_ID

  On The Waku Network's cluster 1 with its 8 autosharded shards:
    status-node run --transport libp2p --role full --listen /ip4/0.0.0.0/tcp/60000 \\
        --cluster 1 --shard 0,1,2,3,4,5,6,7 --autoshard 8

  More log detail, or only warnings:
    RUST_LOG=debug status-node run --role full --listen 0.0.0.0:60001 --data-dir ./full1
    RUST_LOG=warn status-node run --role bootstrap --listen 0.0.0.0:60000

  Scripted (--script): events as `peer-up {json}`, `peer-down {json}`, `message {json}`
  lines on standard output; commands on standard input:
    publish <content topic> <payload hex> [<pubsub topic>]   answered by `published {json}`
    stats                                                     answered by `stats {json}`
    quit
  e.g. printf 'publish /app/1/chat/proto 68656c6c6f /waku/2/rs/16/32\\nquit\\n' | \\
         status-node run --role full --listen 127.0.0.1:0 --script

A full node keeps its node key (node.key for TCP, libp2p.key for libp2p) and its archive
(archive.sqlite3) in --data-dir and writes every message to disk before acknowledging it;
restarted with the same --data-dir it has the same address and the same history.";

const CHAT_EXAMPLES: &str = "\
Commands (typed at the prompt, or piped in one per line):
  /add <chat key>            add a contact and make it the current chat
  /join <channel>            join a public chat and make it current
  /chat <chat key|#channel>  switch the current chat; plain lines go to the current chat
  /msg <chat key|#channel> <text>   send without switching
  /history  /contacts  /whoami  /status  /help  /quit

Output lines start with a marker: `<< [1:1] Sender Words: text` and
`<< [#channel] Sender Words: text` for arriving messages, `>> sent`/`>> delivered` for ours,
`** ` for notices (peers, history fetched from a store, status), `!! ` for errors.

The chat keeps its contacts, sessions and messages in the account's encrypted database, so a
restarted chat shows its history (`.. ` lines) and fetches what arrived while it was away
from the full nodes' stores.

Examples:
  Alice and Bob, each with an account and through a full node (KEY@ADDR as printed by
  `status-node run`):
    status-node account new --data-dir ./alice
    status-node account new --data-dir ./bob
    status-node chat --data-dir ./alice --peer KEY@127.0.0.1:60001
    status-node chat --data-dir ./bob --peer KEY@127.0.0.1:60002
  then in Alice's terminal:
    /add 0x<Bob's chat key>
    hello Bob
    /join status
    Hello, #status

  Through a libp2p full node (a build with --features libp2p):
    status-node chat --transport libp2p --data-dir ./alice --peer /ip4/127.0.0.1/tcp/60001/p2p/PEER_ID

  Scripted, through a pipe:
    printf '/join status\\nhello from a script\\n' | status-node chat --data-dir ./alice --peer KEY@ADDR";

/// A node's role in `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Role {
    /// Relays, stores (SQLite in the data directory), serves filter, lightpush and peer exchange.
    Full,
    /// A Messenger on the account (a light node: lightpush, filter, store queries).
    Light,
    /// Relays and serves peer exchange; stores nothing.
    Bootstrap,
}

/// Which transport `run` and `chat` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Transport {
    /// The devp2p-style TCP transport (Noise XX, node keys as `KEY@IP:PORT`).
    Tcp,
    /// libp2p (TCP or WebSocket, Noise, yamux or mplex), the transport of nwaku, go-waku and
    /// js-waku: addresses are multiaddrs. Needs a build with the `libp2p` feature.
    Libp2p,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// What the node does.
    #[arg(long, value_enum)]
    pub(crate) role: Role,
    /// The transport.
    #[arg(long, value_enum, default_value = "tcp")]
    pub(crate) transport: Transport,
    /// Where to accept connections: `IP:PORT` (port 0 picks a free one) or, with libp2p, a
    /// multiaddr such as `/ip4/0.0.0.0/tcp/60000` or `/ip4/0.0.0.0/tcp/8000/ws`. libp2p takes
    /// several (repeat the option).
    #[arg(long, value_name = "ADDR", required = true)]
    pub(crate) listen: Vec<crate::net::ListenAddr>,
    /// A peer to keep connected, redialled whenever down: `KEY@IP:PORT` (as printed by its
    /// `listening` line) or `IP:PORT` (any key) with TCP; with libp2p a multiaddr ending in
    /// `/p2p/<peer id>`, or an ENR (`enr:…`, as printed by its `record` line), which the node
    /// also hands out to light nodes through peer exchange. Repeat for several.
    #[arg(long = "peer", value_name = "ADDR")]
    pub(crate) peers: Vec<crate::net::PeerArg>,
    /// Directory of the node's files (node key, archive, account); created if missing.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The node key file (64 hex digits; created if missing). Default: node.key (TCP) or
    /// libp2p.key (libp2p) in the data directory.
    #[arg(long, value_name = "FILE")]
    pub(crate) node_key: Option<PathBuf>,
    /// The light role's account from a seed phrase file instead of the data directory
    /// (nothing is kept on disk then).
    #[arg(long, value_name = "FILE")]
    pub(crate) phrase_file: Option<PathBuf>,
    /// The cluster id (16: the Status cluster; 1: The Waku Network).
    #[arg(long, default_value_t = 16)]
    pub(crate) cluster: u16,
    /// The shards relayed and stored, comma-separated or repeated (32: the Status default
    /// shard, the one chats use).
    #[arg(
        long = "shard",
        value_name = "SHARD",
        value_delimiter = ',',
        default_value = "32"
    )]
    pub(crate) shards: Vec<u16>,
    /// Autosharding: the number of shards in the cluster (8 on The Waku Network), for
    /// lightpushes that name no pubsub topic and for `publish` in --script mode. Off by
    /// default.
    #[arg(long, value_name = "N")]
    pub(crate) autoshard: Option<u16>,
    /// Seconds between two statistics lines in the log.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub(crate) stats_interval: u64,
    /// Machine-readable mode for scripts and tests (full and bootstrap roles): every message
    /// the node receives and every peer change is a line on standard output, and standard
    /// input takes commands (`publish`, `stats`, `quit`). See `status-node run --help`.
    #[arg(long)]
    pub(crate) script: bool,
}

/// Arguments of `chat`.
#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// A full node to use: `KEY@IP:PORT` or `IP:PORT` with TCP, a multiaddr ending in
    /// `/p2p/<peer id>` with libp2p; repeat for several.
    #[arg(long = "peer", value_name = "ADDR", required = true)]
    pub(crate) peers: Vec<crate::net::PeerArg>,
    /// The transport (the full nodes' transport).
    #[arg(long, value_enum, default_value = "tcp")]
    pub(crate) transport: Transport,
    /// Directory of the account (`status-node account new|restore`) and its encrypted
    /// database; the default is the one `account new` uses.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Use the account of this seed phrase file instead, with nothing kept on disk (no
    /// history, no sessions across restarts).
    #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
    pub(crate) phrase_file: Option<PathBuf>,
    /// Do not draw the chat key's QR code.
    #[arg(long)]
    pub(crate) no_qr: bool,
}
