//! Router configuration: Waku's gossipsub parameters (WIRE.md B.5) and the hard limits.

use std::time::Duration;

use crate::message::MAX_MESSAGE_SIZE;
use crate::net::Protocol;

/// The most relay peers tracked at once. A connection beyond this is not used for relay (the
/// driver decides how many connections to keep; nwaku defaults to a few hundred). Every per-peer
/// structure is multiplied by this number, so it bounds the router's memory.
pub const MAX_PEERS: usize = 1024;

/// The most topics one peer may be recorded as subscribed to. A Waku peer subscribes to its
/// shards (8 on The Waku Network, a handful on the Status cluster); 64 leaves room for named
/// topics. Further subscriptions from that peer are ignored.
pub const MAX_TOPICS_PER_PEER: usize = 64;

/// The most distinct topics known at once (ours, our peers' and fanout topics). A peer's
/// subscription to a new topic beyond this is ignored. With [`MAX_TOPIC_LEN`] this caps topic
/// names at 4 MiB.
pub const MAX_TOPICS: usize = 4096;

/// The longest topic name accepted from a peer, in bytes (the same cap as
/// [`crate::topic::MAX_PUBSUB_TOPIC_LEN`]).
pub const MAX_TOPIC_LEN: usize = crate::topic::MAX_PUBSUB_TOPIC_LEN;

/// The most topics this node may subscribe to (a node serves a few shards).
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// The most topics we publish to without being subscribed (the fanout map).
pub const MAX_FANOUT_TOPICS: usize = 64;

/// The most messages kept for IWANT answers. With a 1 s heartbeat and 6 windows this covers
/// 2,700 messages per second; beyond it the oldest are dropped early (they can then no longer be
/// fetched through gossip, which only delays recovery).
pub const MAX_MCACHE_MESSAGES: usize = 16_384;

/// The most bytes of messages kept for IWANT answers (about 430 messages of the 150 KiB maximum,
/// or all [`MAX_MCACHE_MESSAGES`] of up to 4 KiB, the network's recommended average).
pub const MAX_MCACHE_BYTES: usize = 64 * 1024 * 1024;

/// The most message ids in the seen cache. The cache keeps ids for `seen_ttl` (2 minutes); this
/// covers about 1,000 messages per second. Beyond it the oldest ids are forgotten early, so a
/// message that old could be delivered a second time.
pub const MAX_SEEN: usize = 131_072;

/// The most IDONTWANT ids remembered per peer (gossipsub v1.2). Older ones are forgotten first;
/// forgetting only costs the peer a duplicate.
pub const MAX_IDONTWANT_PER_PEER: usize = 512;

/// How long an IDONTWANT id is remembered: the peer will have the message by then.
pub const IDONTWANT_TTL: Duration = Duration::from_secs(3);

/// The most outstanding IWANT promises (one per IWANT sent, as gossipsub v1.1 recommends).
pub const MAX_PROMISES: usize = 8192;

/// The most message ids requested with IWANT in one heartbeat, over all peers; an id already
/// asked for in this heartbeat is not asked for again.
pub const MAX_PENDING_IWANT: usize = 16_384;

/// The most events queued for the application. Beyond it new events are dropped and counted in
/// [`super::RelayStats::events_dropped`]; a driver drains events after every input.
pub const MAX_QUEUED_EVENTS: usize = 16_384;

/// The most message bytes held in queued events (a queued event may hold a 150 KiB message).
pub const MAX_QUEUED_EVENT_BYTES: usize = 64 * 1024 * 1024;

/// The most bytes queued for one peer and not yet taken by [`super::Relay::poll_transmit`].
/// Forwards beyond it are dropped and counted; a peer that cannot keep up loses messages, which
/// gossip then repairs.
pub const MAX_OUTBOUND_BYTES_PER_PEER: usize = 4 * 1024 * 1024;

/// The most bytes queued for all peers together.
pub const MAX_OUTBOUND_BYTES: usize = 64 * 1024 * 1024;

/// The most disconnected peers whose score is remembered (for `retain_score`).
pub const MAX_RETAINED_SCORES: usize = MAX_PEERS;

/// The longest backoff a peer may ask for in a PRUNE, in seconds. Longer requests are cut to
/// this, so a hostile value cannot overflow the clock or lock a peer out for ever.
pub const MAX_BACKOFF_SECS: u64 = 3600;

/// The largest RPC a driver may hand to the router: the cap of [`Protocol::Relay`] frames.
pub const MAX_RPC_SIZE: usize = Protocol::Relay.max_frame_len();

/// The longest mesh history (`history_length`) honoured; larger configurations are cut to this.
pub const MAX_HISTORY_LENGTH: usize = 64;

/// The largest mesh degree honoured (`d`, `d_hi`, ...); larger configurations are cut to this.
pub const MAX_MESH_DEGREE: usize = 64;

/// Peer-scoring parameters that apply to every topic (gossipsub v1.1 `TopicScoreParams`). The
/// defaults are nwaku's (WIRE.md B.5). P₃ and P₃b (mesh delivery rate and failures) are disabled
/// in Waku and not implemented here.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TopicScoreParams {
    /// Weight of the topic's contribution to the score.
    pub topic_weight: f64,
    /// Weight of P₁, time in mesh.
    pub time_in_mesh_weight: f64,
    /// Time in mesh that earns one unit of P₁.
    pub time_in_mesh_quantum: Duration,
    /// Cap on P₁.
    pub time_in_mesh_cap: f64,
    /// Weight of P₂, first message deliveries.
    pub first_message_deliveries_weight: f64,
    /// Decay of the P₂ counter per decay interval.
    pub first_message_deliveries_decay: f64,
    /// Cap on the P₂ counter.
    pub first_message_deliveries_cap: f64,
    /// Weight of P₄, invalid messages (negative; the counter is squared).
    pub invalid_message_deliveries_weight: f64,
    /// Decay of the P₄ counter per decay interval.
    pub invalid_message_deliveries_decay: f64,
}

impl Default for TopicScoreParams {
    fn default() -> Self {
        TopicScoreParams {
            topic_weight: 1.0,
            time_in_mesh_weight: 0.01,
            time_in_mesh_quantum: Duration::from_secs(1),
            time_in_mesh_cap: 10.0,
            first_message_deliveries_weight: 1.0,
            first_message_deliveries_decay: 0.5,
            first_message_deliveries_cap: 10.0,
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.5,
        }
    }
}

/// Peer-scoring parameters and thresholds (gossipsub v1.1), nwaku's values by default.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScoreParams {
    /// Parameters applied to every topic.
    pub topic: TopicScoreParams,
    /// Cap on the summed topic contributions; 0 means no cap.
    pub topic_score_cap: f64,
    /// Weight of P₇, the behaviour penalty (negative; the excess over the threshold is squared).
    pub behaviour_penalty_weight: f64,
    /// P₇ counts only above this value.
    pub behaviour_penalty_threshold: f64,
    /// Decay of the P₇ counter per decay interval.
    pub behaviour_penalty_decay: f64,
    /// How often counters decay.
    pub decay_interval: Duration,
    /// A decayed counter below this becomes 0.
    pub decay_to_zero: f64,
    /// How long the score of a disconnected peer is kept, in case it comes back with the same
    /// handle.
    pub retain_score: Duration,
    /// Below this score no gossip is sent to a peer and its gossip is ignored.
    pub gossip_threshold: f64,
    /// Below this score our own messages are not published to a peer.
    pub publish_threshold: f64,
    /// Below this score every RPC from a peer is ignored (graylisting).
    pub graylist_threshold: f64,
    /// When the median mesh score falls below this, better peers are grafted opportunistically.
    pub opportunistic_graft_threshold: f64,
}

impl Default for ScoreParams {
    fn default() -> Self {
        ScoreParams {
            topic: TopicScoreParams::default(),
            topic_score_cap: 0.0,
            behaviour_penalty_weight: -10.0,
            behaviour_penalty_threshold: 0.0,
            behaviour_penalty_decay: 0.986,
            decay_interval: Duration::from_secs(12),
            decay_to_zero: 0.01,
            retain_score: Duration::from_secs(600),
            gossip_threshold: -100.0,
            publish_threshold: -1000.0,
            graylist_threshold: -10_000.0,
            opportunistic_graft_threshold: 0.0,
        }
    }
}

/// The router's configuration. [`RelayConfig::default`] is Waku's (WIRE.md B.5, nwaku
/// `waku_relay/protocol.nim`); the gossipsub v1.1 spam limits follow 29/WAKU2-CONFIG.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Target mesh degree `D`.
    pub d: usize,
    /// Below this mesh degree (`D_lo`) the heartbeat grafts more peers.
    pub d_lo: usize,
    /// Above this mesh degree (`D_hi`) the heartbeat prunes down to `D`.
    pub d_hi: usize,
    /// Peers kept by score when pruning an oversubscribed mesh (`D_score`).
    pub d_score: usize,
    /// Outbound peers the mesh should hold (`D_out`); see [`super::Relay::handle_dialed`].
    pub d_out: usize,
    /// Minimum number of peers gossip is sent to per topic (`D_lazy`).
    pub d_lazy: usize,
    /// Fraction of eligible peers gossip is sent to, at least `d_lazy`.
    pub gossip_factor: f64,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Number of heartbeat windows kept in the message cache.
    pub history_length: usize,
    /// Number of recent windows advertised in IHAVE.
    pub history_gossip: usize,
    /// How long a fanout topic is kept after our last publish to it.
    pub fanout_ttl: Duration,
    /// How long a message id stays in the seen cache.
    pub seen_ttl: Duration,
    /// Backoff after a PRUNE.
    pub prune_backoff: Duration,
    /// Backoff after we unsubscribe from a topic.
    pub unsubscribe_backoff: Duration,
    /// Extra wait after a backoff before grafting again (the peer clears its backoff only at
    /// its next heartbeat).
    pub backoff_slack: Duration,
    /// A GRAFT this soon after a PRUNE earns an extra behaviour penalty.
    pub graft_flood_threshold: Duration,
    /// Publish our own messages to every topic peer above the publish threshold, not just the
    /// mesh.
    pub flood_publish: bool,
    /// Most IHAVE messages accepted from one peer per heartbeat.
    pub max_ihave_messages: usize,
    /// Most message ids asked for from one peer per heartbeat, and most ids sent in one IHAVE.
    pub max_ihave_length: usize,
    /// Most IWANT messages answered for one peer per heartbeat.
    pub max_iwant_messages: usize,
    /// How often one message is sent to one peer in answer to IWANT.
    pub gossip_retransmission: u32,
    /// How long a peer has to deliver a message it advertised and we asked for.
    pub iwant_followup_time: Duration,
    /// Every this many heartbeats, check the mesh median score for opportunistic grafting.
    pub opportunistic_graft_ticks: u64,
    /// Peers grafted opportunistically.
    pub opportunistic_graft_peers: usize,
    /// Send IDONTWANT to mesh peers on receiving a message of at least this many bytes (gossipsub
    /// v1.2); `usize::MAX` disables it.
    pub idontwant_min_size: usize,
    /// The largest Waku message (encoded `data`) accepted or published.
    pub max_message_size: usize,
    /// Waku messages whose timestamp is further than this from the wall clock are rejected
    /// (64/WAKU2-NETWORK: 20 s).
    pub max_timestamp_skew: Duration,
    /// The largest RPC accepted from a peer and the largest RPC sent (at most [`MAX_RPC_SIZE`],
    /// at least `max_message_size` plus envelope room).
    pub max_rpc_size: usize,
    /// Outbound RPCs are batched per peer up to this many bytes. A single item larger than this
    /// (a big message) is sent alone. 64 KiB is rust-libp2p's default frame limit.
    pub batch_size: usize,
    /// Ask the driver to hang up on graylisted peers (nwaku's `disconnectBadPeers`).
    pub disconnect_bad_peers: bool,
    /// Peer scoring.
    pub score: ScoreParams,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            d: 6,
            d_lo: 4,
            d_hi: 8,
            d_score: 6,
            d_out: 3,
            d_lazy: 6,
            gossip_factor: 0.25,
            heartbeat_interval: Duration::from_secs(1),
            history_length: 6,
            history_gossip: 3,
            fanout_ttl: Duration::from_secs(60),
            seen_ttl: Duration::from_secs(120),
            prune_backoff: Duration::from_secs(60),
            unsubscribe_backoff: Duration::from_secs(5),
            backoff_slack: Duration::from_secs(2),
            graft_flood_threshold: Duration::from_secs(10),
            flood_publish: true,
            max_ihave_messages: 10,
            max_ihave_length: 5000,
            max_iwant_messages: 25,
            gossip_retransmission: 3,
            iwant_followup_time: Duration::from_secs(3),
            opportunistic_graft_ticks: 60,
            opportunistic_graft_peers: 2,
            idontwant_min_size: 1000,
            max_message_size: MAX_MESSAGE_SIZE,
            max_timestamp_skew: Duration::from_secs(20),
            max_rpc_size: MAX_MESSAGE_SIZE + 64 * 1024,
            batch_size: 64 * 1024,
            disconnect_bad_peers: true,
            score: ScoreParams::default(),
        }
    }
}

/// Room an RPC needs around one message besides its `data`: the topic plus tags and lengths.
pub(crate) const MESSAGE_ENVELOPE: usize = MAX_TOPIC_LEN + 64;

impl RelayConfig {
    /// The configuration made consistent: degrees ordered and capped by [`MAX_MESH_DEGREE`],
    /// windows capped by [`MAX_HISTORY_LENGTH`], zero periods raised to 1 ms, and the RPC size
    /// between what one maximal message needs and [`MAX_RPC_SIZE`]. [`super::Relay::new`] applies
    /// it, so a configuration can never break the router's limits.
    pub fn sanitized(mut self) -> Self {
        let one_ms = Duration::from_millis(1);
        self.d_hi = self.d_hi.clamp(1, MAX_MESH_DEGREE);
        self.d = self.d.clamp(1, self.d_hi);
        self.d_lo = self.d_lo.clamp(1, self.d);
        self.d_score = self.d_score.min(self.d);
        self.d_out = self.d_out.min(self.d_lo.saturating_sub(1)).min(self.d / 2);
        self.d_lazy = self.d_lazy.min(MAX_MESH_DEGREE);
        if !(0.0..=1.0).contains(&self.gossip_factor) {
            self.gossip_factor = 0.25;
        }
        self.heartbeat_interval = self.heartbeat_interval.max(one_ms);
        self.history_length = self.history_length.clamp(1, MAX_HISTORY_LENGTH);
        self.history_gossip = self.history_gossip.min(self.history_length);
        self.seen_ttl = self.seen_ttl.max(one_ms);
        self.max_ihave_length = self.max_ihave_length.min(MAX_PENDING_IWANT);
        self.max_message_size = self.max_message_size.min(MAX_RPC_SIZE - MESSAGE_ENVELOPE);
        self.max_rpc_size = self
            .max_rpc_size
            .clamp(self.max_message_size + MESSAGE_ENVELOPE, MAX_RPC_SIZE);
        self.batch_size = self.batch_size.clamp(MESSAGE_ENVELOPE, self.max_rpc_size);
        self.score.decay_interval = self.score.decay_interval.max(one_ms);
        self.score.time_in_mesh_quantum_fix();
        self
    }
}

impl ScoreParams {
    fn time_in_mesh_quantum_fix(&mut self) {
        if self.topic.time_in_mesh_quantum.is_zero() {
            self.topic.time_in_mesh_quantum = Duration::from_secs(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_waku() {
        let c = RelayConfig::default();
        assert_eq!(
            (c.d, c.d_lo, c.d_hi, c.d_score, c.d_out, c.d_lazy),
            (6, 4, 8, 6, 3, 6)
        );
        assert_eq!((c.history_length, c.history_gossip), (6, 3));
        assert_eq!(c.seen_ttl, Duration::from_secs(120));
        assert_eq!(
            c.clone().sanitized(),
            c,
            "the defaults are already consistent"
        );
    }

    #[test]
    fn sanitized_keeps_limits() {
        let c = RelayConfig {
            d: 1000,
            d_hi: 0,
            history_length: 10_000,
            heartbeat_interval: Duration::ZERO,
            max_rpc_size: 1,
            max_message_size: usize::MAX,
            ..RelayConfig::default()
        }
        .sanitized();
        assert!(c.d_lo <= c.d && c.d <= c.d_hi && c.d_hi <= MAX_MESH_DEGREE);
        assert!(c.history_length <= MAX_HISTORY_LENGTH);
        assert!(!c.heartbeat_interval.is_zero());
        assert!(c.max_rpc_size <= MAX_RPC_SIZE);
        assert!(c.max_message_size + MESSAGE_ENVELOPE <= c.max_rpc_size);
    }
}
