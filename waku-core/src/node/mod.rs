//! [`WakuNode`]: one Waku node as one sans-IO machine. It owns the relay and the service
//! machines its [`Capabilities`] call for, routes frames to them by protocol, and wires them
//! together so that the driver never shuttles events between parts (DESIGN.md):
//!
//! - relayed messages are archived by the store (when the node stores), pushed to filter
//!   subscribers (when it relays) and delivered to the application when it subscribed to them;
//! - a lightpushed message is published through the relay and, like the node's own publishes,
//!   archived and pushed to filter subscribers locally (the relay does not echo our own
//!   messages, and a lone service node has no relay peer to echo them);
//! - the filter client's gap reports become store queries, whose messages reach the
//!   application through the same deduplication as pushes;
//! - a metadata cluster mismatch or a graylisted relay peer becomes a
//!   [`NodeEvent::DisconnectPeer`] for the driver.
//!
//! | capability | machines |
//! |---|---|
//! | relay | [`Relay`], filter server, lightpush v3 and legacy servers |
//! | store | store server over the archive given to [`WakuNode::new`] |
//! | bootstrap | peer-exchange server |
//! | (always) | metadata; store, filter, lightpush and peer-exchange clients |
//!
//! A node that relays sends with the relay and receives from it; a node that does not (a light
//! node) sends with lightpush and receives with filter and store, using connected peers that
//! advertise those protocols.
//!
//! Request/response transmits carry [`FrameKind::Request`] / [`FrameKind::Response`] ids, so a
//! driver maps them onto libp2p streams or tagged frames; filter pushes are
//! [`FrameKind::Stream`] frames on [`Protocol::FilterPush`].
//!
//! Capabilities are fixed at construction; a node that changes role is rebuilt (its archive can
//! be handed to the new node).

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use crate::filter::{
    FilterClient, FilterClientConfig, FilterClientError, FilterClientEvent, FilterServer,
    FilterServerConfig,
};
use crate::lightpush::{
    LightPushClient, LightPushClientConfig, LightPushClientError, LightPushClientEvent,
    LightPushServer, LightPushServerConfig, LightPushServerEvent, Publish, PublishRejected, PushId,
};
use crate::message::{MessageHash, WakuMessage};
use crate::metadata::{Metadata, MetadataConfig, MetadataEvent};
use crate::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use crate::peer_exchange::{
    PeerExchangeClient, PeerExchangeClientConfig, PeerExchangeClientError, PeerExchangeClientEvent,
    PeerExchangeServer, PeerExchangeServerConfig, PeerRecordError, PxRequestId,
};
use crate::relay::{PublishError, Relay, RelayConfig, RelayEvent, SubscribeError};
use crate::roles::{Capabilities, Capability};
use crate::service::{Queue, earliest};
use crate::store::{
    MemoryStore, MessageStore, QueryId, QueryLimits, StoreClient, StoreClientConfig,
    StoreClientError, StoreClientEvent, StoreQuery, StoreServer, StoreServerConfig,
    StoreServerEvent,
};
use crate::topic::{AutoshardError, ContentTopic, PubsubTopic, PubsubTopicError, autoshard};

/// How many message hashes the node remembers to deliver each message to the application once
/// (relay, filter pushes and store backfills overlap). At the network's recommended 4 KB
/// average this spans far more than a backfill window of a light node's topics.
pub const MAX_SEEN_MESSAGES: usize = 16_384;

/// The most events queued for the application; beyond it the oldest are kept and new ones are
/// dropped (and counted), so a driver that stops draining cannot grow the node.
pub const MAX_QUEUED_EVENTS: usize = 16_384;

/// The most connected peers the node keeps protocol lists for (the relay's own peer limit).
pub const MAX_PEERS: usize = crate::relay::MAX_PEERS;

/// The most gap backfills waiting for a store peer to connect.
pub const MAX_PENDING_BACKFILLS: usize = 64;

/// How the node is set up.
#[derive(Debug, Clone)]
pub struct WakuNodeConfig {
    /// What the node does.
    pub capabilities: Capabilities,
    /// The cluster (metadata; autosharding).
    pub cluster_id: u16,
    /// The shards the node relays on (static shard topics `/waku/2/rs/{cluster}/{shard}`);
    /// announced in metadata. A relaying node subscribes to them at start.
    pub shards: Vec<u16>,
    /// The shard count for autosharding publishes and lightpushes without a pubsub topic
    /// (8 on The Waku Network); `None` requires an explicit pubsub topic.
    pub autoshard_shards: Option<u16>,
    /// Relay settings.
    pub relay: RelayConfig,
    /// Store service settings.
    pub store: StoreServerConfig,
    /// Store client settings.
    pub store_client: StoreClientConfig,
    /// Filter service settings.
    pub filter: FilterServerConfig,
    /// Filter client settings.
    pub filter_client: FilterClientConfig,
    /// Lightpush service settings (its `autosharding` is filled from the fields above).
    pub lightpush: LightPushServerConfig,
    /// Lightpush client settings.
    pub lightpush_client: LightPushClientConfig,
    /// Peer-exchange service settings.
    pub peer_exchange: PeerExchangeServerConfig,
    /// Peer-exchange client settings.
    pub peer_exchange_client: PeerExchangeClientConfig,
}

impl WakuNodeConfig {
    /// A node with `capabilities` on `cluster_id` relaying `shards`, with every other setting
    /// at its default.
    pub fn new(capabilities: Capabilities, cluster_id: u16, shards: Vec<u16>) -> Self {
        WakuNodeConfig {
            capabilities,
            cluster_id,
            shards,
            autoshard_shards: None,
            relay: RelayConfig::default(),
            store: StoreServerConfig::default(),
            store_client: StoreClientConfig::default(),
            filter: FilterServerConfig::default(),
            filter_client: FilterClientConfig::default(),
            lightpush: LightPushServerConfig::default(),
            lightpush_client: LightPushClientConfig::default(),
            peer_exchange: PeerExchangeServerConfig::default(),
            peer_exchange_client: PeerExchangeClientConfig::default(),
        }
    }
}

/// Where a delivered message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageSource {
    /// The relay, first delivered by this peer.
    Relay(PeerId),
    /// A filter push from this service node.
    Filter(PeerId),
    /// A store query (a gap backfill) answered by this node.
    Store(PeerId),
}

/// Why the driver should hang up on a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The relay graylisted it (its score fell below the graylist threshold).
    BadRelayPeer,
    /// Metadata says it is on another cluster.
    ClusterMismatch {
        /// Its cluster.
        theirs: u32,
    },
}

/// A gap backfill's progress (see [`crate::filter`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackfillEvent {
    /// A store query for the gap was sent.
    Started {
        /// The store query.
        query: QueryId,
        /// The store node.
        peer: PeerId,
        /// The pubsub topic.
        pubsub_topic: PubsubTopic,
        /// The content topics.
        content_topics: Vec<ContentTopic>,
        /// Window start (Unix ns).
        start: i64,
        /// Window end (Unix ns).
        end: i64,
    },
    /// The gap query finished; `recovered` messages were new to the application.
    Done {
        /// The store query.
        query: QueryId,
        /// Messages delivered that had not been seen.
        recovered: usize,
    },
    /// The gap could not be filled (no store peer, or the query failed); the application may
    /// query the window itself.
    Failed {
        /// The pubsub topic.
        pubsub_topic: PubsubTopic,
        /// The content topics.
        content_topics: Vec<ContentTopic>,
        /// Window start (Unix ns).
        start: i64,
        /// Window end (Unix ns).
        end: i64,
        /// Why.
        reason: String,
    },
}

/// What the node reports to the application, or asks of the driver.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A message on a subscribed topic, delivered once however many ways it arrived.
    Message {
        /// The pubsub topic.
        pubsub_topic: PubsubTopic,
        /// The 14/ hash.
        hash: MessageHash,
        /// The message.
        message: WakuMessage,
        /// How it arrived.
        source: MessageSource,
    },
    /// The driver should disconnect this peer.
    DisconnectPeer {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: DisconnectReason,
    },
    /// A store query started with [`WakuNode::query_store`] progressed.
    Store(StoreClientEvent),
    /// A push started with [`WakuNode::publish`] on a light node was answered.
    LightPush(LightPushClientEvent),
    /// The filter client changed service node or a subscribe failed.
    Filter(FilterClientEvent),
    /// A gap backfill progressed.
    Backfill(BackfillEvent),
    /// Peer records arrived (or a request failed).
    PeerExchange(PeerExchangeClientEvent),
    /// A peer's metadata arrived.
    Metadata(MetadataEvent),
    /// The archive reported (a failed write, a retention run).
    Archive(StoreServerEvent),
    /// A message was published for a light node.
    LightPushServed(LightPushServerEvent),
}

/// How [`WakuNode::publish`] sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Through the node's relay, to this many peers (0: no relay peer yet; the message was
    /// still archived and pushed to filter subscribers locally).
    Relayed {
        /// The message hash.
        hash: MessageHash,
        /// Relay peers it went to.
        peers: usize,
    },
    /// Handed to a lightpush service node; the answer comes as [`NodeEvent::LightPush`].
    LightPushed {
        /// The message hash.
        hash: MessageHash,
        /// The push.
        push: PushId,
        /// The service node.
        peer: PeerId,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// No connected peer serves the protocol this needs.
    #[error("no connected peer serves {0}")]
    NoServicePeer(Protocol),
    /// The node lacks the capability.
    #[error("this node does not have the {0:?} capability")]
    MissingCapability(Capability),
    /// The message is invalid or the relay refused it.
    #[error("publish refused: {0}")]
    Publish(#[from] PublishError),
    /// The relay cannot take another subscription.
    #[error("subscribe refused: {0}")]
    Subscribe(#[from] SubscribeError),
    /// The filter client refused the subscription.
    #[error("filter subscription refused: {0}")]
    Filter(#[from] FilterClientError),
    /// The store client refused the query.
    #[error("store query refused: {0}")]
    Store(#[from] StoreClientError),
    /// The lightpush client refused the message.
    #[error("lightpush refused: {0}")]
    LightPush(#[from] LightPushClientError),
    /// The peer-exchange client refused the request.
    #[error("peer exchange refused: {0}")]
    PeerExchange(#[from] PeerExchangeClientError),
    /// A peer record was refused.
    #[error("peer record refused: {0}")]
    PeerRecord(#[from] PeerRecordError),
    /// No pubsub topic was given and autosharding is not configured or failed.
    #[error("no pubsub topic: {0}")]
    Autoshard(String),
    /// A configured shard is not a valid static shard.
    #[error("invalid shard: {0}")]
    Shard(#[from] PubsubTopicError),
}

impl From<AutoshardError> for NodeError {
    fn from(e: AutoshardError) -> Self {
        NodeError::Autoshard(e.to_string())
    }
}

/// Message hashes seen recently, oldest forgotten first.
#[derive(Debug, Default)]
struct Seen {
    order: VecDeque<MessageHash>,
    set: BTreeSet<MessageHash>,
}

impl Seen {
    /// `true` the first time a hash is offered.
    fn insert(&mut self, h: MessageHash) -> bool {
        if !self.set.insert(h) {
            return false;
        }
        self.order.push_back(h);
        if self.order.len() > MAX_SEEN_MESSAGES
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

#[derive(Debug, Clone)]
struct Backfill {
    pubsub_topic: PubsubTopic,
    content_topics: Vec<ContentTopic>,
    start: i64,
    end: i64,
    /// The service node the subscriptions were lost on: its archive likely shares the gap.
    lost_on: PeerId,
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Messages delivered to the application.
    pub delivered: u64,
    /// Deliveries skipped as duplicates.
    pub duplicates: u64,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
}

/// A Waku node: relay and service machines behind one `handle_*` / `poll_*` surface (see the
/// module docs).
pub struct WakuNode {
    config: WakuNodeConfig,
    relay: Option<Relay>,
    store_server: Option<StoreServer>,
    filter_server: Option<FilterServer>,
    lightpush_server: Option<LightPushServer>,
    px_server: Option<PeerExchangeServer>,
    metadata: Metadata,
    store_client: StoreClient,
    filter_client: FilterClient,
    lightpush_client: LightPushClient,
    px_client: PeerExchangeClient,
    peers: BTreeMap<PeerId, Vec<Protocol>>,
    /// Pubsub topic → wanted content topics (`None`: all of them).
    interest: BTreeMap<PubsubTopic, Option<BTreeSet<ContentTopic>>>,
    seen: Seen,
    backfills: BTreeMap<QueryId, (Backfill, usize)>,
    waiting_backfills: VecDeque<Backfill>,
    events: Queue<NodeEvent>,
    stats: NodeStats,
}

impl std::fmt::Debug for WakuNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakuNode")
            .field("capabilities", &self.config.capabilities)
            .field("peers", &self.peers.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The lightpush server's view of the node: publish through the relay, then archive and push
/// locally.
struct LocalPublish<'a> {
    relay: &'a mut Relay,
    store: Option<&'a mut StoreServer>,
    filter: Option<&'a mut FilterServer>,
}

impl LocalPublish<'_> {
    fn run(
        &mut self,
        now: Now,
        topic: &PubsubTopic,
        message: &WakuMessage,
    ) -> Result<usize, PublishError> {
        let peers = match self.relay.publish(now, topic, message) {
            Ok(_) => self.relay.topic_peers(topic.as_str()).len(),
            Err(PublishError::NoPeers) => 0,
            Err(e) => return Err(e),
        };
        if let Some(s) = self.store.as_deref_mut() {
            s.archive(now, topic, message);
        }
        if let Some(f) = self.filter.as_deref_mut() {
            f.handle_message(now, topic, message);
        }
        Ok(peers)
    }
}

impl Publish for LocalPublish<'_> {
    fn publish(
        &mut self,
        now: Now,
        pubsub_topic: &PubsubTopic,
        message: &WakuMessage,
    ) -> Result<usize, PublishRejected> {
        if !self.relay.is_subscribed(pubsub_topic.as_str()) {
            return Err(PublishRejected::UnsupportedTopic);
        }
        self.run(now, pubsub_topic, message).map_err(|e| match e {
            PublishError::Duplicate => PublishRejected::Duplicate,
            PublishError::Invalid(e) => PublishRejected::Invalid(e.to_string()),
            other => PublishRejected::Invalid(other.to_string()),
        })
    }
}

impl WakuNode {
    /// A node. A storing node archives into `archive` (an in-memory archive when `None`); the
    /// archive is ignored by nodes without the store capability. A relaying node subscribes to
    /// its configured shards at once. Randomness (request ids, relay, peer-exchange samples)
    /// comes from `seed`.
    pub fn new(
        config: WakuNodeConfig,
        archive: Option<Box<dyn MessageStore + Send>>,
        seed: [u8; 32],
        now: Now,
    ) -> Result<Self, NodeError> {
        let caps = config.capabilities;
        let sub_seed = |tag: u8| {
            let mut s = seed;
            s[0] ^= tag;
            s[31] = s[31].wrapping_add(tag);
            s
        };
        let relaying = caps.contains(Capability::Relay);
        let mut relay =
            relaying.then(|| Relay::new(config.relay.clone(), sub_seed(1), now.instant));
        if let Some(r) = &mut relay {
            for shard in &config.shards {
                r.subscribe(now, &PubsubTopic::static_shard(config.cluster_id, *shard)?)?;
            }
        }
        let store_server = caps.contains(Capability::Store).then(|| {
            let archive = archive.unwrap_or_else(|| Box::new(MemoryStore::new()));
            StoreServer::new(archive, config.store.clone(), now)
        });
        let mut lp = config.lightpush.clone();
        lp.autosharding = config.autoshard_shards.map(|n| (config.cluster_id, n));
        let node = WakuNode {
            relay,
            store_server,
            filter_server: relaying.then(|| FilterServer::new(config.filter.clone())),
            lightpush_server: relaying.then(|| LightPushServer::new(lp)),
            px_server: caps
                .contains(Capability::Bootstrap)
                .then(|| PeerExchangeServer::new(config.peer_exchange.clone(), sub_seed(2))),
            metadata: Metadata::new(MetadataConfig {
                cluster_id: config.cluster_id,
                shards: config.shards.clone(),
                ..MetadataConfig::default()
            }),
            store_client: StoreClient::new(config.store_client.clone(), sub_seed(3)),
            filter_client: FilterClient::new(config.filter_client.clone(), sub_seed(4)),
            lightpush_client: LightPushClient::new(config.lightpush_client.clone(), sub_seed(5)),
            px_client: PeerExchangeClient::new(config.peer_exchange_client.clone()),
            peers: BTreeMap::new(),
            interest: BTreeMap::new(),
            seen: Seen::default(),
            backfills: BTreeMap::new(),
            waiting_backfills: VecDeque::new(),
            events: Queue::new(MAX_QUEUED_EVENTS),
            stats: NodeStats::default(),
            config,
        };
        Ok(node)
    }

    /// The node's capabilities.
    pub fn capabilities(&self) -> Capabilities {
        self.config.capabilities
    }

    /// Counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// The relay, on a relaying node.
    pub fn relay(&self) -> Option<&Relay> {
        self.relay.as_ref()
    }

    /// The store service, on a storing node (its archive, stats and retention).
    pub fn store_server_mut(&mut self) -> Option<&mut StoreServer> {
        self.store_server.as_mut()
    }

    /// The filter service, on a relaying node.
    pub fn filter_server(&self) -> Option<&FilterServer> {
        self.filter_server.as_ref()
    }

    /// The filter client (its service node, subscriptions, stats).
    pub fn filter_client(&self) -> &FilterClient {
        &self.filter_client
    }

    /// The metadata exchange (what peers said).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Connected peers and the protocols they speak.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &[Protocol])> {
        self.peers.iter().map(|(p, ps)| (*p, ps.as_slice()))
    }

    fn peer_with(&self, protocol: Protocol) -> Option<PeerId> {
        self.peers
            .iter()
            .find(|(_, ps)| ps.contains(&protocol))
            .map(|(p, _)| *p)
    }

    fn topic_for(
        &self,
        message: &WakuMessage,
        topic: Option<PubsubTopic>,
    ) -> Result<PubsubTopic, NodeError> {
        match (topic, self.config.autoshard_shards) {
            (Some(t), _) => Ok(t),
            (None, Some(n)) => Ok(autoshard(
                &message.content_topic,
                self.config.cluster_id,
                n,
            )?),
            (None, None) => Err(NodeError::Autoshard(
                "autosharding is not configured".into(),
            )),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Commands

    /// Receives the messages of `content_topics` on `pubsub_topic` (all content topics when
    /// empty, on a relaying node). A relaying node subscribes its relay; a light node subscribes
    /// through filter (which needs content topics).
    pub fn subscribe(
        &mut self,
        now: Now,
        pubsub_topic: PubsubTopic,
        content_topics: Vec<ContentTopic>,
    ) -> Result<(), NodeError> {
        if !self.config.capabilities.contains(Capability::Receive) {
            return Err(NodeError::MissingCapability(Capability::Receive));
        }
        if let Some(relay) = &mut self.relay {
            relay.subscribe(now, &pubsub_topic)?;
        } else {
            self.filter_client.subscribe(
                now,
                pubsub_topic.clone(),
                content_topics.iter().cloned(),
            )?;
        }
        let entry = self
            .interest
            .entry(pubsub_topic)
            .or_insert_with(|| Some(BTreeSet::new()));
        if content_topics.is_empty() {
            *entry = None;
        } else if let Some(set) = entry {
            set.extend(content_topics);
        }
        self.route(now);
        Ok(())
    }

    /// Stops receiving `content_topics` on `pubsub_topic` (every content topic when empty). The
    /// relay stays subscribed to the node's own shards.
    pub fn unsubscribe(
        &mut self,
        now: Now,
        pubsub_topic: &PubsubTopic,
        content_topics: Vec<ContentTopic>,
    ) {
        let remove_all = content_topics.is_empty();
        if self.relay.is_none() {
            let topics: Vec<ContentTopic> = if remove_all {
                self.filter_client
                    .subscriptions()
                    .filter(|(p, _)| *p == pubsub_topic)
                    .map(|(_, c)| c.clone())
                    .collect()
            } else {
                content_topics.clone()
            };
            self.filter_client.unsubscribe(now, pubsub_topic, topics);
        }
        let gone = match self.interest.get_mut(pubsub_topic) {
            None => false,
            Some(_) if remove_all => true,
            Some(None) => false,
            Some(Some(set)) => {
                for t in &content_topics {
                    set.remove(t);
                }
                set.is_empty()
            }
        };
        if gone {
            self.interest.remove(pubsub_topic);
            let own_shard = pubsub_topic.shard().is_some_and(|s| {
                s.cluster == self.config.cluster_id && self.config.shards.contains(&s.shard)
            });
            if let Some(relay) = &mut self.relay
                && !own_shard
            {
                relay.unsubscribe(now, pubsub_topic);
            }
        }
        self.route(now);
    }

    /// Publishes a message: through the relay on a relaying node (and into its own archive and
    /// filter subscribers), through lightpush to a connected service node otherwise. With
    /// `pubsub_topic = None` the topic is autosharded from the content topic.
    pub fn publish(
        &mut self,
        now: Now,
        pubsub_topic: Option<PubsubTopic>,
        message: WakuMessage,
    ) -> Result<Published, NodeError> {
        if !self.config.capabilities.contains(Capability::Send) {
            return Err(NodeError::MissingCapability(Capability::Send));
        }
        let topic = self.topic_for(&message, pubsub_topic)?;
        let hash = message.hash(&topic);
        let result = if let Some(relay) = &mut self.relay {
            let mut local = LocalPublish {
                relay,
                store: self.store_server.as_mut(),
                filter: self.filter_server.as_mut(),
            };
            let peers = local.run(now, &topic, &message)?;
            self.seen.insert(hash);
            Published::Relayed { hash, peers }
        } else {
            let peer = self
                .peer_with(Protocol::LightPush)
                .ok_or(NodeError::NoServicePeer(Protocol::LightPush))?;
            let push = self
                .lightpush_client
                .push(now, peer, Some(&topic), &message)?;
            if let Some(s) = &mut self.store_server {
                s.archive(now, &topic, &message);
            }
            self.seen.insert(hash);
            Published::LightPushed { hash, push, peer }
        };
        self.route(now);
        Ok(result)
    }

    /// Queries a store node (`peer`, or any connected peer serving store). Progress comes as
    /// [`NodeEvent::Store`].
    pub fn query_store(
        &mut self,
        now: Now,
        peer: Option<PeerId>,
        query: StoreQuery,
        limits: QueryLimits,
    ) -> Result<QueryId, NodeError> {
        let peer = match peer {
            Some(p) => p,
            None => self
                .peer_with(Protocol::StoreQuery)
                .ok_or(NodeError::NoServicePeer(Protocol::StoreQuery))?,
        };
        let id = self.store_client.query(now, peer, query, limits)?;
        self.route(now);
        Ok(id)
    }

    /// Asks `peer` (or any connected peer serving peer exchange) for up to `num_peers` records.
    pub fn request_peers(
        &mut self,
        now: Now,
        peer: Option<PeerId>,
        num_peers: u64,
    ) -> Result<PxRequestId, NodeError> {
        let peer = match peer {
            Some(p) => p,
            None => self
                .peer_with(Protocol::PeerExchange)
                .ok_or(NodeError::NoServicePeer(Protocol::PeerExchange))?,
        };
        Ok(self.px_client.request(now, peer, num_peers)?)
    }

    /// Offers a peer record (from discovery) to the peer-exchange service of a bootstrap node.
    pub fn add_peer_record(&mut self, now: Now, record: Vec<u8>) -> Result<(), NodeError> {
        let px = self
            .px_server
            .as_mut()
            .ok_or(NodeError::MissingCapability(Capability::Bootstrap))?;
        Ok(px.add_record_bytes(now, record)?)
    }

    // -----------------------------------------------------------------------------------------
    // Inputs

    fn connect(&mut self, now: Now, peer: PeerId, protocols: &[Protocol], dialed: bool) {
        if self.peers.len() < MAX_PEERS || self.peers.contains_key(&peer) {
            self.peers.insert(peer, protocols.to_vec());
        }
        if let Some(relay) = &mut self.relay {
            if dialed {
                relay.handle_dialed(now, peer, protocols);
            } else {
                relay.handle_connected(now, peer, protocols);
            }
        }
        self.metadata.handle_connected(now, peer, protocols);
        if self.relay.is_none() {
            self.filter_client.handle_connected(now, peer, protocols);
        }
        if protocols.contains(&Protocol::StoreQuery) {
            self.start_waiting_backfills(now);
        }
        self.route(now);
    }

    fn is_wanted(&self, topic: &PubsubTopic, content: &ContentTopic) -> bool {
        match self.interest.get(topic) {
            Some(None) => true,
            Some(Some(set)) => set.contains(content),
            None => false,
        }
    }

    fn deliver(
        &mut self,
        pubsub_topic: PubsubTopic,
        hash: MessageHash,
        message: WakuMessage,
        source: MessageSource,
    ) -> bool {
        if !self.is_wanted(&pubsub_topic, &message.content_topic) {
            return false;
        }
        if !self.seen.insert(hash) {
            self.stats.duplicates += 1;
            return false;
        }
        self.stats.delivered += 1;
        self.emit(NodeEvent::Message {
            pubsub_topic,
            hash,
            message,
            source,
        });
        true
    }

    fn emit(&mut self, e: NodeEvent) {
        if !self.events.push(e) {
            self.stats.events_dropped += 1;
        }
    }

    /// Starts a store query for a gap, preferring a store other than the node the subscriptions
    /// were lost on (a node that restarted missed the same messages), else that node.
    fn start_backfill(&mut self, now: Now, b: Backfill) {
        let serves_store = |ps: &Vec<Protocol>| ps.contains(&Protocol::StoreQuery);
        let peer = self
            .peers
            .iter()
            .find(|(p, ps)| **p != b.lost_on && serves_store(ps))
            .or_else(|| self.peers.iter().find(|(_, ps)| serves_store(ps)))
            .map(|(p, _)| *p);
        let Some(peer) = peer else {
            if self.waiting_backfills.len() >= MAX_PENDING_BACKFILLS {
                self.emit(NodeEvent::Backfill(BackfillEvent::Failed {
                    pubsub_topic: b.pubsub_topic,
                    content_topics: b.content_topics,
                    start: b.start,
                    end: b.end,
                    reason: "no store peer and too many gaps waiting".into(),
                }));
            } else {
                self.waiting_backfills.push_back(b);
            }
            return;
        };
        let query = StoreQuery::topics(b.pubsub_topic.clone(), b.content_topics.iter().cloned())
            .time_range(Some(b.start), Some(b.end))
            .forward()
            .page_size(crate::store::MAX_PAGE_SIZE);
        match self
            .store_client
            .query(now, peer, query, QueryLimits::default())
        {
            Ok(q) => {
                self.emit(NodeEvent::Backfill(BackfillEvent::Started {
                    query: q,
                    peer,
                    pubsub_topic: b.pubsub_topic.clone(),
                    content_topics: b.content_topics.clone(),
                    start: b.start,
                    end: b.end,
                }));
                self.backfills.insert(q, (b, 0));
            }
            Err(e) => self.emit(NodeEvent::Backfill(BackfillEvent::Failed {
                pubsub_topic: b.pubsub_topic,
                content_topics: b.content_topics,
                start: b.start,
                end: b.end,
                reason: e.to_string(),
            })),
        }
    }

    fn start_waiting_backfills(&mut self, now: Now) {
        let waiting: Vec<Backfill> = self.waiting_backfills.drain(..).collect();
        for b in waiting {
            self.start_backfill(now, b);
        }
    }

    /// Moves the children's outputs where they belong: messages to the archive, the filter
    /// service and the application; gaps to the store client; requests to hang up to the
    /// driver.
    fn route(&mut self, now: Now) {
        // Relay messages: archive, push to filter subscribers, deliver.
        while let Some(e) = self.relay.as_mut().and_then(Relay::poll_event) {
            match e {
                RelayEvent::Message {
                    topic,
                    message,
                    source,
                    ..
                } => {
                    if let Some(s) = &mut self.store_server {
                        s.archive(now, &topic, &message);
                    }
                    if let Some(f) = &mut self.filter_server {
                        f.handle_message(now, &topic, &message);
                    }
                    let hash = message.hash(&topic);
                    self.deliver(topic, hash, message, MessageSource::Relay(source));
                }
                RelayEvent::DisconnectPeer { peer } => self.emit(NodeEvent::DisconnectPeer {
                    peer,
                    reason: DisconnectReason::BadRelayPeer,
                }),
                _ => {}
            }
        }
        while let Some(e) = self.filter_client.poll_event() {
            match e {
                FilterClientEvent::Message {
                    peer,
                    pubsub_topic,
                    hash,
                    message,
                } => {
                    self.deliver(pubsub_topic, hash, message, MessageSource::Filter(peer));
                }
                FilterClientEvent::Backfill {
                    pubsub_topic,
                    content_topics,
                    start,
                    end,
                    lost_on,
                } => self.start_backfill(
                    now,
                    Backfill {
                        pubsub_topic,
                        content_topics,
                        start,
                        end,
                        lost_on,
                    },
                ),
                other => self.emit(NodeEvent::Filter(other)),
            }
        }
        while let Some(e) = self.store_client.poll_event() {
            let query = match &e {
                StoreClientEvent::Page { query, .. } | StoreClientEvent::Finished { query, .. } => {
                    *query
                }
            };
            if !self.backfills.contains_key(&query) {
                self.emit(NodeEvent::Store(e));
                continue;
            }
            match e {
                StoreClientEvent::Page { peer, entries, .. } => {
                    let mut recovered = 0;
                    for entry in entries {
                        if let (Some(topic), Some(message)) = (entry.pubsub_topic, entry.message)
                            && self.deliver(topic, entry.hash, message, MessageSource::Store(peer))
                        {
                            recovered += 1;
                        }
                    }
                    if let Some((_, n)) = self.backfills.get_mut(&query) {
                        *n += recovered;
                    }
                }
                StoreClientEvent::Finished { result, .. } => {
                    if let Some((b, recovered)) = self.backfills.remove(&query) {
                        match result {
                            Ok(()) => self.emit(NodeEvent::Backfill(BackfillEvent::Done {
                                query,
                                recovered,
                            })),
                            Err(err) => self.emit(NodeEvent::Backfill(BackfillEvent::Failed {
                                pubsub_topic: b.pubsub_topic,
                                content_topics: b.content_topics,
                                start: b.start,
                                end: b.end,
                                reason: err.to_string(),
                            })),
                        }
                    }
                }
            }
        }
        while let Some(e) = self.lightpush_client.poll_event() {
            self.emit(NodeEvent::LightPush(e));
        }
        while let Some(e) = self.px_client.poll_event() {
            self.emit(NodeEvent::PeerExchange(e));
        }
        while let Some(e) = self.metadata.poll_event() {
            if let MetadataEvent::ClusterMismatch { peer, theirs, .. } = e {
                self.emit(NodeEvent::DisconnectPeer {
                    peer,
                    reason: DisconnectReason::ClusterMismatch { theirs },
                });
            } else {
                self.emit(NodeEvent::Metadata(e));
            }
        }
        while let Some(e) = self.store_server.as_mut().and_then(StoreServer::poll_event) {
            self.emit(NodeEvent::Archive(e));
        }
        while let Some(e) = self
            .lightpush_server
            .as_mut()
            .and_then(LightPushServer::poll_event)
        {
            self.emit(NodeEvent::LightPushServed(e));
        }
        while self
            .filter_server
            .as_mut()
            .and_then(FilterServer::poll_event)
            .is_some()
        {}
    }

    fn frame(&mut self, now: Now, from: PeerId, protocol: Protocol, kind: FrameKind, frame: &[u8]) {
        match (protocol, kind) {
            (Protocol::Relay, _) => {
                if let Some(r) = &mut self.relay {
                    r.handle_frame(now, from, frame);
                }
            }
            (Protocol::StoreQuery, FrameKind::Request(id)) => {
                if let Some(s) = &mut self.store_server {
                    s.handle_request(now, from, id, frame);
                }
            }
            (Protocol::StoreQuery, FrameKind::Response(id)) => {
                self.store_client.handle_response(now, from, id, frame);
            }
            (Protocol::FilterSubscribe, FrameKind::Request(id)) => {
                if let Some(f) = &mut self.filter_server {
                    f.handle_request(now, from, id, frame);
                }
            }
            (Protocol::FilterSubscribe, FrameKind::Response(id)) => {
                self.filter_client.handle_response(now, from, id, frame);
            }
            (Protocol::FilterPush, FrameKind::Stream | FrameKind::Request(_)) => {
                self.filter_client.handle_push(now, from, frame);
            }
            (Protocol::LightPush | Protocol::LightPushLegacy, FrameKind::Request(id)) => {
                if let (Some(server), Some(relay)) = (&mut self.lightpush_server, &mut self.relay) {
                    let mut local = LocalPublish {
                        relay,
                        store: self.store_server.as_mut(),
                        filter: self.filter_server.as_mut(),
                    };
                    server.handle_request(now, from, protocol, id, frame, &mut local);
                }
            }
            (Protocol::LightPush, FrameKind::Response(id)) => {
                self.lightpush_client.handle_response(now, from, id, frame);
            }
            (Protocol::Metadata, FrameKind::Request(id)) => {
                self.metadata.handle_request(now, from, id, frame);
            }
            (Protocol::Metadata, FrameKind::Response(id)) => {
                self.metadata.handle_response(now, from, id, frame);
            }
            (Protocol::PeerExchange, FrameKind::Request(id)) => {
                if let Some(px) = &mut self.px_server {
                    px.handle_request(now, from, id, frame);
                }
            }
            (Protocol::PeerExchange, FrameKind::Response(id)) => {
                self.px_client.handle_response(now, from, id, frame);
            }
            _ => {}
        }
    }
}

impl Machine for WakuNode {
    type Event = NodeEvent;

    fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.connect(now, peer, protocols, false);
    }

    /// A connection we dialled is up: it counts toward the relay's outbound quota.
    fn handle_dialed(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.connect(now, peer, protocols, true);
    }

    fn handle_disconnected(&mut self, now: Now, peer: PeerId) {
        self.peers.remove(&peer);
        if let Some(r) = &mut self.relay {
            r.handle_disconnected(now, peer);
        }
        if let Some(s) = &mut self.store_server {
            Machine::handle_disconnected(s, now, peer);
        }
        if let Some(f) = &mut self.filter_server {
            f.handle_disconnected(peer);
        }
        if let Some(l) = &mut self.lightpush_server {
            l.handle_disconnected(peer);
        }
        if let Some(px) = &mut self.px_server {
            px.handle_disconnected(peer);
        }
        self.metadata.handle_disconnected(peer);
        self.store_client.handle_disconnected(peer);
        self.filter_client.handle_disconnected(now, peer);
        self.lightpush_client.handle_disconnected(peer);
        self.px_client.handle_disconnected(peer);
        self.route(now);
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        self.frame(now, from, protocol, kind, frame);
        self.route(now);
    }

    fn handle_timeout(&mut self, now: Now) {
        if let Some(r) = &mut self.relay {
            r.handle_timeout(now);
        }
        if let Some(s) = &mut self.store_server {
            s.handle_timeout(now);
        }
        if let Some(f) = &mut self.filter_server {
            f.handle_timeout(now);
        }
        if let Some(px) = &mut self.px_server {
            px.handle_timeout(now);
        }
        self.metadata.handle_timeout(now);
        self.store_client.handle_timeout(now);
        self.filter_client.handle_timeout(now);
        self.lightpush_client.handle_timeout(now);
        self.px_client.handle_timeout(now);
        self.route(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.relay.as_mut().and_then(Relay::poll_transmit) {
            return Some(t);
        }
        if let Some(t) = self
            .store_server
            .as_mut()
            .and_then(StoreServer::poll_transmit)
        {
            return Some(t);
        }
        if let Some(t) = self
            .filter_server
            .as_mut()
            .and_then(FilterServer::poll_transmit)
        {
            return Some(t);
        }
        if let Some(t) = self
            .lightpush_server
            .as_mut()
            .and_then(LightPushServer::poll_transmit)
        {
            return Some(t);
        }
        if let Some(t) = self
            .px_server
            .as_mut()
            .and_then(PeerExchangeServer::poll_transmit)
        {
            return Some(t);
        }
        self.metadata
            .poll_transmit()
            .or_else(|| self.store_client.poll_transmit())
            .or_else(|| self.filter_client.poll_transmit())
            .or_else(|| self.lightpush_client.poll_transmit())
            .or_else(|| self.px_client.poll_transmit())
    }

    fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        earliest([
            self.relay.as_ref().and_then(Relay::poll_timeout),
            self.store_server
                .as_ref()
                .and_then(StoreServer::poll_timeout),
            self.filter_server
                .as_ref()
                .and_then(FilterServer::poll_timeout),
            self.px_server
                .as_ref()
                .and_then(PeerExchangeServer::poll_timeout),
            self.metadata.poll_timeout(),
            self.store_client.poll_timeout(),
            self.filter_client.poll_timeout(),
            self.lightpush_client.poll_timeout(),
            self.px_client.poll_timeout(),
        ])
    }

    /// What the node serves (the roles' protocols), plus metadata, plus the filter push
    /// protocol on a light node that receives.
    fn protocols(&self) -> Vec<Protocol> {
        let caps = self.config.capabilities;
        let mut set: BTreeSet<Protocol> = caps.served_protocols().into_iter().collect();
        set.insert(Protocol::Metadata);
        if !caps.is_relaying() {
            set.remove(&Protocol::FilterPush);
            if caps.contains(Capability::Receive) {
                set.insert(Protocol::FilterPush);
            }
        }
        Protocol::ALL
            .into_iter()
            .filter(|p| set.contains(p))
            .collect()
    }
}
