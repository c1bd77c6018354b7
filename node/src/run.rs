//! `status-node run`: one Waku node over the TCP or libp2p transport ([`crate::net`]) until
//! Ctrl-C or SIGTERM.
//!
//! | role | machine | on disk (in `--data-dir`) |
//! |---|---|---|
//! | `full` | a `WakuNode` that relays, stores, serves filter, lightpush and peer exchange | the node key, `archive.sqlite3` |
//! | `bootstrap` | a `WakuNode` that relays and serves peer exchange | the node key |
//! | `light` | a Messenger on the account in the data dir (see [`crate::chat`]) | the account |
//!
//! The node prints what a peer passes to `--peer` on standard output: one `listening …` line
//! per address (`KEY@HOST:PORT` with TCP, a multiaddr ending in `/p2p/<peer id>` with libp2p),
//! then, with libp2p, a `record enr:…` line with its signed ENR. It logs to standard error
//! (`RUST_LOG` filter, default `info`):
//! the listening address and node key, peers up and down, and every
//! [`RunArgs::stats_interval`](crate::cli::RunArgs::stats_interval) seconds the peer count and
//! the messages relayed and archived.
//!
//! A full node writes each message to its archive before it answers the lightpush that brought
//! it (batch size 1, SQLite in WAL mode synced at every commit), so a message a client saw
//! acknowledged survives a crash of the node. On Ctrl-C or SIGTERM it stops the driver (every
//! peer is told), flushes the archive and closes it.
//!
//! The ENRs given as `--peer` are records the node learned: its peer-exchange service (full and
//! bootstrap roles) hands them out to light nodes, as nwaku hands out what discv5 found.
//!
//! With `--script` the node is also driven through its standard streams ([`script`]), for
//! test harnesses such as the js-waku interop test.

mod script;

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use waku_core::enr::{RelayShards, Waku2};
use waku_core::node::{NodeError, NodeEvent, WakuNode, WakuNodeConfig};
use waku_core::roles::{Capabilities, Capability};
use waku_core::store::{MessageStore, SqliteStore, SqliteStoreConfig, StoreError};
use waku_core::topic::{PubsubTopic, PubsubTopicError};

use crate::cli::{Role, RunArgs, Transport};
use crate::driver::{self, NodeKeyError};
use crate::net::{self, Net, NetConfig, NetError, NetEvent};

/// The TCP node key's file name in the data directory.
pub(crate) const NODE_KEY_FILE: &str = "node.key";

/// The libp2p identity's file name in the data directory (a secp256k1 secret, as nwaku's
/// `--nodekey`; kept apart from the TCP key so one secret never serves two schemes).
pub(crate) const LIBP2P_KEY_FILE: &str = "libp2p.key";

/// The archive's file name in a full node's data directory.
pub(crate) const ARCHIVE_FILE: &str = "archive.sqlite3";

/// Why `run` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RunError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The node key could not be loaded or created.
    #[error(transparent)]
    NodeKey(#[from] NodeKeyError),
    /// The archive could not be opened.
    #[error("cannot open the archive {path}: {source}")]
    Archive {
        /// The file.
        path: PathBuf,
        /// The error.
        source: StoreError,
    },
    /// The shard is not a valid static shard.
    #[error("invalid shard: {0}")]
    Shard(#[from] PubsubTopicError),
    /// The Waku node refused its configuration.
    #[error("waku node: {0}")]
    Node(#[from] NodeError),
    /// The transport failed to start or stopped.
    #[error("transport: {0}")]
    Transport(#[from] NetError),
    /// The OS random source failed.
    #[error("the operating system's random source failed: {0}")]
    Randomness(String),
    /// The async runtime could not start, or writing standard output failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The light role failed.
    #[error(transparent)]
    Light(#[from] crate::chat::ChatError),
    /// The arguments do not fit together.
    #[error("{0}")]
    Usage(&'static str),
}

/// `status-node run`.
pub(crate) fn run(args: &RunArgs) -> Result<(), RunError> {
    driver::init_logging();
    if args.role == Role::Light {
        if args.script {
            return Err(RunError::Usage(
                "--script drives full and bootstrap nodes; a light node is scripted through `status-node chat` (commands on standard input)",
            ));
        }
        return Ok(crate::chat::run_light(args)?);
    }
    let rt = driver::runtime()?;
    rt.block_on(run_service(args))
}

/// The data directory of `run`: the one given, or the default.
pub(crate) fn data_dir(given: Option<&PathBuf>) -> PathBuf {
    given
        .cloned()
        .unwrap_or_else(crate::account::default_data_dir)
}

/// The node key file of `args`: `--node-key`, else the transport's file in `dir`.
pub(crate) fn node_key_path(
    args_key: Option<&PathBuf>,
    dir: &std::path::Path,
    t: Transport,
) -> PathBuf {
    args_key.cloned().unwrap_or_else(|| {
        dir.join(match t {
            Transport::Tcp => NODE_KEY_FILE,
            Transport::Libp2p => LIBP2P_KEY_FILE,
        })
    })
}

async fn run_service(args: &RunArgs) -> Result<(), RunError> {
    let dir = data_dir(args.data_dir.as_ref());
    fs::create_dir_all(&dir).map_err(|source| RunError::DataDir {
        path: dir.clone(),
        source,
    })?;
    let key_path = node_key_path(args.node_key.as_ref(), &dir, args.transport);
    let (secret, created) = driver::load_or_create_secret(&key_path)?;
    if created {
        tracing::info!(file = %key_path.display(), "created a new node key");
    }
    let now = driver::clock();
    let (caps, archive): (Capabilities, Option<Box<dyn MessageStore + Send>>) = match args.role {
        Role::Full => {
            let path = dir.join(ARCHIVE_FILE);
            let store = SqliteStore::open(&path, &SqliteStoreConfig::default())
                .map_err(|source| RunError::Archive { path, source })?;
            (Capabilities::FULL, Some(Box::new(store)))
        }
        // A bootstrap node relays too, so the full nodes that dial it form one mesh.
        Role::Bootstrap | Role::Light => (Capabilities::BOOTSTRAP.with(Capability::Relay), None),
    };
    let mut cfg = WakuNodeConfig::new(caps, args.cluster, args.shards.clone());
    cfg.autoshard_shards = args.autoshard;
    // Each message is on disk before the lightpush that brought it is answered.
    cfg.store.batch_size = 1;
    let seed = driver::os_seed().map_err(RunError::Randomness)?;
    let mut node = WakuNode::new(cfg, archive, seed, now)?;
    if caps.contains(Capability::Receive) {
        // Deliver every message of the shards to the driver loop, which counts them.
        for shard in &args.shards {
            node.subscribe(
                now,
                PubsubTopic::static_shard(args.cluster, *shard)?,
                vec![],
            )?;
        }
    }
    let record = net::RecordInfo {
        waku2: Waku2::from_bits(caps.enr_waku2_bits()),
        shards: RelayShards {
            cluster: args.cluster,
            shards: args.shards.clone(),
        },
        seq: u64::try_from(now.unix_nanos / 1_000_000_000).unwrap_or(1),
    };
    // The ENRs given as --peer are records this node learned: its peer-exchange service hands
    // them out (refreshed with every stats tick, so they do not expire while configured).
    let px_records: Vec<Vec<u8>> = args
        .peers
        .iter()
        .filter_map(|p| match p {
            net::PeerArg::Enr(e) => Some(e.encode()),
            _ => None,
        })
        .collect();
    offer_records(&mut node, now, &px_records);
    let net_cfg = NetConfig {
        transport: args.transport,
        listen: args.listen.clone(),
        peers: args.peers.clone(),
        secret: Some(secret),
        record: Some(record),
    };
    let mut net = net::start(net_cfg, node).await?;
    let addresses = net.addresses();
    {
        let mut out = io::stdout().lock();
        for a in &addresses {
            writeln!(out, "listening {a}")?;
        }
        if let Some(r) = net.record() {
            writeln!(out, "record {r}")?;
        }
        out.flush()?;
    }
    tracing::info!(
        role = ?args.role,
        transport = ?args.transport,
        capabilities = %caps,
        identity = %net.identity(),
        "node started; peers dial it with --peer {}",
        addresses.first().map_or("(not listening)", String::as_str)
    );
    let mut script = args
        .script
        .then(|| script::Script::new(args.cluster, args.autoshard));
    let mut counts = Counts::default();
    let mut ticker = tokio::time::interval(Duration::from_secs(args.stats_interval.max(1)));
    ticker.tick().await;
    let stop = driver::shutdown_signal();
    tokio::pin!(stop);
    let handle = net.handle();
    loop {
        tokio::select! {
            () = &mut stop => break,
            e = net.next_event() => match e {
                Some(e) => {
                    if let Some(s) = &script {
                        s.print_event(&e);
                    }
                    on_event(&handle, e, &mut counts).await;
                }
                None => {
                    tracing::error!("the driver stopped");
                    break;
                }
            },
            line = script::next_line(&mut script) => match line {
                Some(line) => {
                    if let Some(s) = &script
                        && s.command(&handle, &line).await == script::Flow::Quit
                    {
                        break;
                    }
                }
                None => break,
            },
            _ = ticker.tick() => {
                if !px_records.is_empty() {
                    let records = px_records.clone();
                    let _ = handle.call(move |n: &mut WakuNode, now| offer_records(n, now, &records)).await;
                }
                log_stats(&handle, &counts).await;
            }
        }
    }
    shutdown(net).await
}

/// Offers `records` to the node's peer-exchange service (a node without one ignores them).
fn offer_records(node: &mut WakuNode, now: waku_core::net::Now, records: &[Vec<u8>]) {
    for r in records {
        if let Err(e) = node.add_peer_record(now, r.clone()) {
            tracing::debug!(%e, "peer record not offered");
        }
    }
}

/// What the loop counted.
#[derive(Debug, Default)]
struct Counts {
    delivered: u64,
    peers: usize,
}

async fn on_event(handle: &net::NetHandle<WakuNode>, e: NetEvent<NodeEvent>, counts: &mut Counts) {
    match e {
        NetEvent::PeerUp {
            peer,
            agent,
            protocols,
        } => {
            counts.peers += 1;
            tracing::info!(%peer, %agent, protocols = protocols.len(), "peer up");
        }
        NetEvent::PeerDown { peer, reason } => {
            counts.peers = counts.peers.saturating_sub(1);
            tracing::info!(%peer, %reason, "peer down");
        }
        NetEvent::DialFailed { target, error } => {
            tracing::debug!(%target, %error, "connection failed");
        }
        NetEvent::Machine(NodeEvent::Message { .. }) => counts.delivered += 1,
        NetEvent::Machine(NodeEvent::DisconnectPeer { peer, reason }) => {
            tracing::info!(%peer, ?reason, "disconnecting a peer");
            let _ = handle.disconnect(peer).await;
        }
        NetEvent::Machine(NodeEvent::Archive(e)) => tracing::warn!(?e, "archive"),
        NetEvent::Machine(e) => tracing::debug!(?e, "node event"),
    }
}

/// The figures of a stats line: messages relayed, and for a store node (archived, queries
/// served, messages stored).
pub(crate) async fn snapshot(
    handle: &net::NetHandle<WakuNode>,
) -> Option<(u64, Option<(u64, u64, u64)>)> {
    handle
        .call(|n: &mut WakuNode, _| {
            let relayed = n.relay().map_or(0, |r| r.stats().messages_accepted);
            let store = n.store_server_mut().map(|s| {
                let stats = s.stats();
                (
                    stats.archived,
                    stats.queries_served,
                    s.store_mut().count().unwrap_or(0),
                )
            });
            (relayed, store)
        })
        .await
        .ok()
}

async fn log_stats(handle: &net::NetHandle<WakuNode>, counts: &Counts) {
    let Some((relayed, store)) = snapshot(handle).await else {
        return;
    };
    match store {
        Some((archived, queries, stored)) => tracing::info!(
            peers = counts.peers,
            relayed,
            delivered = counts.delivered,
            archived,
            stored,
            queries,
            "stats"
        ),
        None => tracing::info!(peers = counts.peers, relayed, "stats"),
    }
}

async fn shutdown(net: Net<WakuNode>) -> Result<(), RunError> {
    tracing::info!("shutting down");
    let mut node = net.shutdown().await?;
    if let Some(store) = node.store_server_mut() {
        let written = store.flush();
        let left = store.pending();
        let stored = store.store_mut().count().unwrap_or(0);
        tracing::info!(written, left, stored, "archive flushed");
    }
    drop(node);
    tracing::info!("stopped");
    Ok(())
}
