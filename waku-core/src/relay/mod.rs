//! Waku relay (11/WAKU2-RELAY): a sans-IO gossipsub v1.1 router on `/vac/waku/relay/2.0.0`.
//!
//! [`Relay`] speaks the libp2p pubsub RPC (WIRE.md B.27) with Waku's parameters (WIRE.md B.5), so
//! a driver can put its frames on a libp2p stream unchanged: each frame handed to
//! [`Relay::handle_frame`] and each [`Transmit`](crate::net::Transmit) from
//! [`Relay::poll_transmit`] is one protobuf `RPC` without its unsigned-varint length prefix.
//!
//! # Driving it
//!
//! ```
//! use std::time::Instant;
//! use waku_core::net::{Now, PeerId, Protocol};
//! use waku_core::relay::{Relay, RelayConfig, RelayEvent};
//! use waku_core::topic::PubsubTopic;
//!
//! # #[allow(clippy::disallowed_methods)] fn clock() -> Instant { Instant::now() }
//! let start = clock(); // a driver reads its clocks; the router never does
//! let now = Now { instant: start, unix_nanos: 1_700_000_000_000_000_000 };
//! let mut relay = Relay::new(RelayConfig::default(), [7; 32], start);
//! let shard = PubsubTopic::static_shard(1, 0).unwrap();
//! relay.subscribe(now, &shard).unwrap();
//! relay.handle_connected(now, PeerId(1), &[Protocol::Relay]);
//! // The new peer is told about our subscription:
//! let t = relay.poll_transmit().unwrap();
//! assert_eq!((t.to, t.protocol), (PeerId(1), Protocol::Relay));
//! // A driver loops: drain poll_transmit and poll_event, then wait for a frame from a peer
//! // (handle_frame) or for poll_timeout (handle_timeout, the 1 s heartbeat).
//! assert!(relay.poll_timeout().is_some());
//! while let Some(event) = relay.poll_event() {
//!     if let RelayEvent::Message { message, .. } = event { let _ = message.payload; }
//! }
//! ```
//!
//! # What a received message goes through
//!
//! 1. The frame is dropped unread if its sender is graylisted (score below the graylist
//!    threshold) or it is larger than [`RelayConfig::max_rpc_size`].
//! 2. Subscriptions, then messages, then control items are processed.
//! 3. A message on a topic we are not subscribed to is ignored. StrictNoSign: a message carrying
//!    `from`, `seqno`, `signature` or `key` is rejected.
//! 4. The id is `sha256(data)` ([`crate::message::relay_message_id`]); a message already in the
//!    seen cache (2 minutes) is dropped as a duplicate. IDONTWANT is sent to the other mesh peers.
//! 5. Validation, in order: size (≤ [`RelayConfig::max_message_size`]), decode as a
//!    [`WakuMessage`], timestamp present and within
//!    [`RelayConfig::max_timestamp_skew`] (20 s) of the caller's wall clock
//!    ([`Now::unix_nanos`](crate::net::Now)), then the application [`Validator`]. *Reject*
//!    penalises the sender (P₄); *ignore* drops silently.
//! 6. An accepted message is cached for gossip, forwarded to the mesh peers of its topic except
//!    the sender and peers that sent IDONTWANT for it, and reported as [`RelayEvent::Message`].
//!
//! # What of gossipsub v1.1 is implemented
//!
//! - **Mesh** per subscribed topic with `D`/`D_lo`/`D_hi`/`D_score`/`D_out` maintenance in a 1 s
//!   heartbeat; GRAFT/PRUNE; PRUNE backoff (ours and the peer's, capped at
//!   [`MAX_BACKOFF_SECS`]) with slack; unsubscribe backoff; a GRAFT during backoff is refused
//!   and penalised (doubly within the graft flood threshold); GRAFTs are refused from peers with
//!   negative score and, when the mesh is full, from inbound peers.
//! - **Outbound quota** (`D_out`): honoured for peers the driver reports with
//!   [`Relay::handle_dialed`]. [`Relay::handle_connected`] (the [`Machine`](crate::net::Machine)
//!   entry point) records a peer as inbound, so with it alone the quota has no effect.
//! - **Fanout** for publishing to unsubscribed topics (used when flood publishing is off) with
//!   its TTL; **flood publishing** (on by default): our own messages go to every topic peer
//!   above the publish threshold.
//! - **Gossip**: a message cache of `history_length` heartbeat windows, IHAVE of the newest
//!   `history_gossip` windows to `max(D_lazy, gossip_factor × eligible)` non-mesh peers, IWANT
//!   answered from the cache at most `gossip_retransmission` times per peer; limits on IHAVE
//!   messages, asked ids and IWANT messages per peer and heartbeat; IWANT promises (one tracked
//!   id per IWANT) whose breach costs a behaviour penalty.
//! - **IDONTWANT** (gossipsub v1.2): sent to mesh peers for messages of at least
//!   [`RelayConfig::idontwant_min_size`] bytes, honoured when forwarding.
//! - **Peer scoring**: P₁ time in mesh, P₂ first message deliveries, P₄ invalid messages (per
//!   topic, with one parameter set for every topic), P₇ behaviour penalty; decay, decay-to-zero,
//!   score retention after disconnect; the gossip, publish and graylist thresholds; pruning of
//!   negative-score mesh peers; opportunistic grafting; `disconnectBadPeers` as
//!   [`RelayEvent::DisconnectPeer`].
//! - **Extended validators** (accept / reject / ignore), run synchronously.
//!
//! # What is not implemented
//!
//! - **Peer exchange** (PX): PRUNEs we send carry no peers; peers in received PRUNEs are ignored
//!   (peer handles here are the driver's, not libp2p peer ids).
//! - **P₃ / P₃b** (mesh message delivery rate and failures), **P₅** (application-specific score)
//!   and **P₆** (IP colocation): Waku sets P₃, P₃b and P₅ to weight 0, and a sans-IO router
//!   does not see addresses. Per-topic score parameters: one set applies to every topic.
//! - **Explicit (direct) peering agreements**.
//! - **Signature policies other than StrictNoSign**, and **asynchronous validation**.
//! - **Gossipsub v1.2 IDONTWANT negotiation**: the Waku protocol id carries no version, so
//!   IDONTWANT is sent to every mesh peer; v1.1 peers skip the unknown field.
//! - Our own messages are not echoed back as events (the caller has them at hand).
//!
//! Every queue, cache and per-peer map is bounded by a `MAX_*` constant in this module; peer-
//! supplied durations and counts are capped before use.

mod cache;
mod config;
mod outbox;
mod router;
mod score;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

use std::fmt;

pub use config::{
    IDONTWANT_TTL, MAX_BACKOFF_SECS, MAX_FANOUT_TOPICS, MAX_HISTORY_LENGTH, MAX_IDONTWANT_PER_PEER,
    MAX_MCACHE_BYTES, MAX_MCACHE_MESSAGES, MAX_MESH_DEGREE, MAX_OUTBOUND_BYTES,
    MAX_OUTBOUND_BYTES_PER_PEER, MAX_PEERS, MAX_PENDING_IWANT, MAX_PROMISES,
    MAX_QUEUED_EVENT_BYTES, MAX_QUEUED_EVENTS, MAX_RETAINED_SCORES, MAX_RPC_SIZE, MAX_SEEN,
    MAX_SUBSCRIPTIONS, MAX_TOPIC_LEN, MAX_TOPICS, MAX_TOPICS_PER_PEER, RelayConfig, ScoreParams,
    TopicScoreParams,
};
pub use router::Relay;

use crate::message::{MessageError, WakuMessage};
use crate::net::PeerId;
use crate::topic::PubsubTopic;

/// A gossipsub message id: `sha256(data)` over the serialised Waku message (WIRE.md B.4). Not the
/// deterministic [`MessageHash`](crate::message::MessageHash), which also covers the pubsub
/// topic.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The id of a serialised Waku message.
    pub fn of(data: &[u8]) -> Self {
        MessageId(crate::message::relay_message_id(data))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// An application validator's verdict (gossipsub v1.1 extended validators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Deliver and forward.
    Accept,
    /// Drop and penalise the sender (P₄).
    Reject,
    /// Drop without penalty.
    Ignore,
}

/// An application validator, run on every message that passed decoding, size and timestamp
/// checks, before it is forwarded or delivered (RLN checks go here).
pub type Validator = Box<dyn FnMut(&PubsubTopic, &WakuMessage) -> Validation + Send>;

/// What the router reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RelayEvent {
    /// A new valid message on a subscribed topic (each message once, until it leaves the seen
    /// cache).
    Message {
        /// The pubsub topic it came on.
        topic: PubsubTopic,
        /// Its gossipsub id.
        id: MessageId,
        /// The decoded message.
        message: WakuMessage,
        /// The peer that delivered it first.
        source: PeerId,
    },
    /// A peer's score fell below the graylist threshold; its RPCs are ignored from now on.
    PeerGraylisted {
        /// The peer.
        peer: PeerId,
        /// Its score.
        score: f64,
    },
    /// The driver should hang up on this peer (graylisted, with
    /// [`RelayConfig::disconnect_bad_peers`]).
    DisconnectPeer {
        /// The peer.
        peer: PeerId,
    },
}

/// Why [`Relay::publish`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The message is not a valid Waku message or exceeds the size limit.
    #[error("invalid message: {0}")]
    Invalid(#[from] MessageError),
    /// The message has no timestamp, or one further from the wall clock than the relay accepts;
    /// every peer would reject it.
    #[error("timestamp {timestamp:?} is outside the accepted window around {now}")]
    Timestamp {
        /// The message's timestamp.
        timestamp: Option<i64>,
        /// The wall clock passed in, Unix nanoseconds.
        now: i64,
    },
    /// The same message (same id) was published or received within the seen TTL.
    #[error("duplicate message")]
    Duplicate,
    /// No connected peer is subscribed to the topic (with a score above the publish threshold).
    /// Nothing was sent or cached; publish again once peers are connected.
    #[error("no peers to publish to")]
    NoPeers,
}

/// Why [`Relay::subscribe`] refused a topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// Already subscribed to [`MAX_SUBSCRIPTIONS`] topics.
    #[error("too many subscriptions (at most {max})")]
    TooManySubscriptions {
        /// The limit.
        max: usize,
    },
    /// [`MAX_TOPICS`] topics are known already (ours and our peers').
    #[error("too many known topics (at most {max})")]
    TooManyTopics {
        /// The limit.
        max: usize,
    },
}

/// Counters of what the router did, for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Frames handed to the router.
    pub frames_received: u64,
    /// Frames from peers not connected for relay.
    pub frames_unknown_peer: u64,
    /// Frames ignored because their sender is graylisted.
    pub frames_graylisted: u64,
    /// Frames larger than the RPC size limit.
    pub frames_oversized: u64,
    /// Frames that are not a protobuf RPC.
    pub frames_malformed: u64,
    /// Messages received (in processed frames).
    pub messages_received: u64,
    /// Messages without a topic.
    pub messages_without_topic: u64,
    /// Messages on topics we are not subscribed to.
    pub messages_unsubscribed: u64,
    /// Messages already seen.
    pub messages_duplicate: u64,
    /// Messages accepted, delivered and forwarded.
    pub messages_accepted: u64,
    /// Rejected: `from`, `seqno`, `signature` or `key` present (StrictNoSign).
    pub rejected_signed: u64,
    /// Rejected: larger than the message size limit.
    pub rejected_too_large: u64,
    /// Rejected: not a valid Waku message.
    pub rejected_malformed: u64,
    /// Rejected: timestamp missing or outside the accepted window.
    pub rejected_timestamp: u64,
    /// Rejected by the application validator.
    pub rejected_by_validator: u64,
    /// Ignored by the application validator.
    pub ignored_by_validator: u64,
    /// Our own messages published.
    pub published: u64,
    /// Copies of messages queued for peers (forwards, publishes and IWANT answers).
    pub messages_sent: u64,
    /// Copies not queued because a peer's outbound queue was full.
    pub messages_dropped_full: u64,
    /// Subscriptions from peers ignored (topic too long, too many topics).
    pub subscriptions_ignored: u64,
    /// GRAFTs refused with a PRUNE.
    pub grafts_refused: u64,
    /// IHAVE/IWANT items ignored (score below the gossip threshold, or over budget).
    pub gossip_ignored: u64,
    /// Message ids asked for with IWANT.
    pub iwant_ids_sent: u64,
    /// Messages sent in answer to IWANT.
    pub iwant_ids_served: u64,
    /// IWANT promises a peer did not keep.
    pub promises_broken: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
    /// Connections not used for relay because [`MAX_PEERS`] peers are connected.
    pub peers_refused: u64,
    /// Heartbeats run.
    pub heartbeats: u64,
}

/// Current sizes of the router's bounded structures, each at most the `MAX_*` named in its doc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelaySizes {
    /// Connected relay peers ([`MAX_PEERS`]).
    pub peers: usize,
    /// Known topics ([`MAX_TOPICS`]).
    pub topics: usize,
    /// Our subscriptions ([`MAX_SUBSCRIPTIONS`]).
    pub subscriptions: usize,
    /// Fanout topics ([`MAX_FANOUT_TOPICS`]).
    pub fanout_topics: usize,
    /// The most topics of one peer ([`MAX_TOPICS_PER_PEER`]).
    pub max_peer_topics: usize,
    /// The largest mesh ([`MAX_PEERS`]; the heartbeat prunes a mesh above `D_hi` down to `D`).
    pub max_mesh: usize,
    /// Cached messages ([`MAX_MCACHE_MESSAGES`]).
    pub mcache_messages: usize,
    /// Cached message bytes ([`MAX_MCACHE_BYTES`]).
    pub mcache_bytes: usize,
    /// Seen ids ([`MAX_SEEN`]).
    pub seen: usize,
    /// The most IDONTWANT ids of one peer ([`MAX_IDONTWANT_PER_PEER`]).
    pub max_peer_idontwant: usize,
    /// IWANT promises ([`MAX_PROMISES`]).
    pub promises: usize,
    /// Ids asked for in this heartbeat ([`MAX_PENDING_IWANT`]).
    pub pending_iwant: usize,
    /// Queued events ([`MAX_QUEUED_EVENTS`]).
    pub events: usize,
    /// Message bytes in queued events ([`MAX_QUEUED_EVENT_BYTES`]).
    pub event_bytes: usize,
    /// Bytes queued for peers ([`MAX_OUTBOUND_BYTES`]).
    pub outbound_bytes: usize,
    /// The most bytes queued for one peer ([`MAX_OUTBOUND_BYTES_PER_PEER`]).
    pub max_peer_outbound_bytes: usize,
    /// Retained scores of disconnected peers ([`MAX_RETAINED_SCORES`]).
    pub retained_scores: usize,
}

impl RelaySizes {
    /// The first size over its limit, if any, as `(name, size, limit)`.
    pub fn over_limit(&self) -> Option<(&'static str, usize, usize)> {
        let checks = [
            ("peers", self.peers, MAX_PEERS),
            ("topics", self.topics, MAX_TOPICS),
            ("subscriptions", self.subscriptions, MAX_SUBSCRIPTIONS),
            ("fanout_topics", self.fanout_topics, MAX_FANOUT_TOPICS),
            ("max_peer_topics", self.max_peer_topics, MAX_TOPICS_PER_PEER),
            ("max_mesh", self.max_mesh, MAX_PEERS),
            ("mcache_messages", self.mcache_messages, MAX_MCACHE_MESSAGES),
            ("mcache_bytes", self.mcache_bytes, MAX_MCACHE_BYTES),
            ("seen", self.seen, MAX_SEEN),
            (
                "max_peer_idontwant",
                self.max_peer_idontwant,
                MAX_IDONTWANT_PER_PEER,
            ),
            ("promises", self.promises, MAX_PROMISES),
            ("pending_iwant", self.pending_iwant, MAX_PENDING_IWANT),
            ("events", self.events, MAX_QUEUED_EVENTS),
            ("event_bytes", self.event_bytes, MAX_QUEUED_EVENT_BYTES),
            ("outbound_bytes", self.outbound_bytes, MAX_OUTBOUND_BYTES),
            (
                "max_peer_outbound_bytes",
                self.max_peer_outbound_bytes,
                MAX_OUTBOUND_BYTES_PER_PEER,
            ),
            ("retained_scores", self.retained_scores, MAX_RETAINED_SCORES),
        ];
        checks.into_iter().find(|&(_, size, max)| size > max)
    }
}
