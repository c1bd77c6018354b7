//! `status-node run`: one Waku node over the TCP transport until Ctrl-C or SIGTERM.
//!
//! | role | machine | on disk (in `--data-dir`) |
//! |---|---|---|
//! | `full` | a `WakuNode` that relays, stores, serves filter, lightpush and peer exchange | `node.key`, `archive.sqlite3` |
//! | `bootstrap` | a `WakuNode` that relays and serves peer exchange | `node.key` |
//! | `light` | a Messenger on the account in the data dir (see [`crate::chat`]) | the account |
//!
//! The node prints the string a peer passes to `--peer` on one line of standard output,
//! `listening KEY@HOST:PORT`, and logs to standard error (`RUST_LOG` filter, default `info`):
//! the listening address and node key, peers up and down, and every
//! [`RunArgs::stats_interval`](crate::cli::RunArgs::stats_interval) seconds the peer count and
//! the messages relayed and archived.
//!
//! A full node writes each message to its archive before it answers the lightpush that brought
//! it (batch size 1, SQLite in WAL mode synced at every commit), so a message a client saw
//! acknowledged survives a crash of the node. On Ctrl-C or SIGTERM it stops the driver (every
//! peer is told), flushes the archive and closes it.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use transports::tcp::{self, DriverEvent, TcpConfig, TcpError, TcpNode};
use waku_core::node::{NodeError, NodeEvent, WakuNode, WakuNodeConfig};
use waku_core::roles::{Capabilities, Capability};
use waku_core::store::{MessageStore, SqliteStore, SqliteStoreConfig, StoreError};
use waku_core::topic::{PubsubTopic, PubsubTopicError};

use crate::cli::{Role, RunArgs};
use crate::driver::{self, NodeKeyError, PeerAddr};

/// The node key's file name in the data directory.
pub(crate) const NODE_KEY_FILE: &str = "node.key";

/// The archive's file name in a full node's data directory.
pub(crate) const ARCHIVE_FILE: &str = "archive.sqlite3";

/// Longest wait between two redials of a `--peer` that is down: short, so a restarted peer is
/// found again within seconds.
pub(crate) const REDIAL_MAX: Duration = Duration::from_secs(5);

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
    Transport(#[from] TcpError),
    /// The OS random source failed.
    #[error("the operating system's random source failed: {0}")]
    Randomness(String),
    /// The async runtime could not start, or writing standard output failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The light role failed.
    #[error(transparent)]
    Light(#[from] crate::chat::ChatError),
}

/// `status-node run`.
pub(crate) fn run(args: &RunArgs) -> Result<(), RunError> {
    driver::init_logging();
    if args.role == Role::Light {
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

/// The TCP settings shared by `run` and `chat`.
pub(crate) fn tcp_config(
    key: transports::tcp::NodeKey,
    listen: Option<std::net::SocketAddr>,
    peers: &[PeerAddr],
) -> Result<TcpConfig, String> {
    let mut cfg = TcpConfig::new(key, driver::os_seed()?);
    cfg.listen = listen;
    cfg.static_peers = peers.iter().map(|p| p.to_static_peer()).collect();
    cfg.backoff_max = REDIAL_MAX;
    cfg.client = concat!("status-node/", env!("CARGO_PKG_VERSION")).to_owned();
    Ok(cfg)
}

async fn run_service(args: &RunArgs) -> Result<(), RunError> {
    let dir = data_dir(args.data_dir.as_ref());
    fs::create_dir_all(&dir).map_err(|source| RunError::DataDir {
        path: dir.clone(),
        source,
    })?;
    let key_path = args
        .node_key
        .clone()
        .unwrap_or_else(|| dir.join(NODE_KEY_FILE));
    let (key, created) = driver::load_or_create_node_key(&key_path)?;
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
    let mut cfg = WakuNodeConfig::new(caps, args.cluster, vec![args.shard]);
    // Each message is on disk before the lightpush that brought it is answered.
    cfg.store.batch_size = 1;
    let seed = driver::os_seed().map_err(RunError::Randomness)?;
    let mut node = WakuNode::new(cfg, archive, seed, now)?;
    if caps.contains(Capability::Receive) {
        // Deliver every message of the shard to the driver loop, which counts them.
        node.subscribe(
            now,
            PubsubTopic::static_shard(args.cluster, args.shard)?,
            vec![],
        )?;
    }
    let tcp_cfg = tcp_config(key, Some(args.listen), &args.peers).map_err(RunError::Randomness)?;
    let mut tcp = tcp::start(tcp_cfg, node).await?;
    let me = PeerAddr {
        key: Some(tcp.public_key()),
        addr: tcp.local_addr().unwrap_or(args.listen),
    };
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening {me}")?;
        out.flush()?;
    }
    tracing::info!(
        role = ?args.role,
        capabilities = %caps,
        address = %me.addr,
        node_key = %driver::hex(&me.key.unwrap_or_default()),
        "node started; peers dial it with --peer {me}"
    );
    let mut counts = Counts::default();
    let mut ticker = tokio::time::interval(Duration::from_secs(args.stats_interval.max(1)));
    ticker.tick().await;
    let stop = driver::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            e = tcp.next_event() => match e {
                Some(e) => on_event(&tcp, e, &mut counts).await,
                None => {
                    tracing::error!("the driver stopped");
                    break;
                }
            },
            _ = ticker.tick() => log_stats(&tcp, &counts).await,
        }
    }
    shutdown(tcp).await
}

/// What the loop counted.
#[derive(Debug, Default)]
struct Counts {
    delivered: u64,
    peers: usize,
}

async fn on_event(tcp: &TcpNode<WakuNode>, e: DriverEvent<NodeEvent>, counts: &mut Counts) {
    match e {
        DriverEvent::Connected(info) => {
            counts.peers += 1;
            tracing::info!(
                peer = %PeerAddr { key: Some(info.key), addr: info.addr },
                outbound = info.outbound,
                client = %info.client,
                protocols = info.protocols.len(),
                "peer up"
            );
        }
        DriverEvent::Disconnected {
            key,
            reason,
            by_remote,
            ..
        } => {
            counts.peers = counts.peers.saturating_sub(1);
            tracing::info!(key = %driver::hex(&key), ?reason, by_remote, "peer down");
        }
        DriverEvent::ConnectFailed {
            addr,
            outbound,
            error,
        } => {
            tracing::debug!(%addr, outbound, %error, "connection failed");
        }
        DriverEvent::Machine(NodeEvent::Message { .. }) => counts.delivered += 1,
        DriverEvent::Machine(NodeEvent::DisconnectPeer { peer, reason }) => {
            tracing::info!(%peer, ?reason, "disconnecting a peer");
            let _ = tcp.handle().disconnect(peer).await;
        }
        DriverEvent::Machine(NodeEvent::Archive(e)) => tracing::warn!(?e, "archive"),
        DriverEvent::Machine(e) => tracing::debug!(?e, "node event"),
        _ => {}
    }
}

async fn log_stats(tcp: &TcpNode<WakuNode>, counts: &Counts) {
    let snapshot = tcp
        .handle()
        .call(|n: &mut WakuNode, _| {
            let relayed = n.relay().map_or(0, |r| r.stats().messages_accepted);
            let store = n.store_server_mut().map(|s| {
                let stats = s.stats();
                (stats.archived, stats.queries_served, s.store_mut().count())
            });
            (relayed, store)
        })
        .await;
    let Ok((relayed, store)) = snapshot else {
        return;
    };
    match store {
        Some((archived, queries, stored)) => tracing::info!(
            peers = counts.peers,
            relayed,
            delivered = counts.delivered,
            archived,
            stored = stored.unwrap_or(0),
            queries,
            "stats"
        ),
        None => tracing::info!(peers = counts.peers, relayed, "stats"),
    }
}

async fn shutdown(tcp: TcpNode<WakuNode>) -> Result<(), RunError> {
    tracing::info!("shutting down");
    let mut node = tcp.shutdown().await?;
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
