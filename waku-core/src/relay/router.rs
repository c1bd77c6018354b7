//! The router state machine.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use proto::gossipsub::{
    ControlGraft, ControlIHave, ControlIWant, ControlMessage, ControlPrune,
    Message as PubsubMessage, Rpc, rpc::SubOpts,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::cache::{IdFifo, KeyedHash, MessageCache, SeenCache};
use super::config::{
    IDONTWANT_TTL, MAX_BACKOFF_SECS, MAX_FANOUT_TOPICS, MAX_IDONTWANT_PER_PEER, MAX_PEERS,
    MAX_PENDING_IWANT, MAX_PROMISES, MAX_QUEUED_EVENT_BYTES, MAX_QUEUED_EVENTS,
    MAX_RETAINED_SCORES, MAX_SUBSCRIPTIONS, MAX_TOPIC_LEN, MAX_TOPICS, MAX_TOPICS_PER_PEER,
    MESSAGE_ENVELOPE, RelayConfig,
};
use super::outbox::{Control, Outbox, publish_entry};
use super::score::PeerScore;
use super::{
    MessageId, PublishError, RelayEvent, RelaySizes, RelayStats, SubscribeError, Validation,
    Validator,
};
use crate::message::WakuMessage;
use crate::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use crate::topic::PubsubTopic;

/// Bytes one message id takes in an id list (tag, length, 32 bytes).
const ID_FIELD_LEN: usize = 34;

/// `now + d`, or `now` if that is not representable (only possible with absurd durations, which
/// the configuration and [`MAX_BACKOFF_SECS`] rule out).
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

/// A uniform index below `n` (n > 0), Lemire's multiply-shift.
fn below(rng: &mut ChaCha20Rng, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

fn shuffle<T>(rng: &mut ChaCha20Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = below(rng, i + 1);
        v.swap(i, j);
    }
}

fn parse_id(raw: &[u8]) -> Option<MessageId> {
    <[u8; 32]>::try_from(raw).ok().map(MessageId)
}

fn timestamp_ok(ts: Option<i64>, now_nanos: i64, skew: Duration) -> bool {
    let skew = u64::try_from(skew.as_nanos()).unwrap_or(u64::MAX);
    match ts {
        Some(t) if t != 0 => t.abs_diff(now_nanos) <= skew,
        _ => false,
    }
}

#[derive(Debug)]
struct PeerState {
    outbound: bool,
    topics: BTreeSet<Arc<str>>,
    dont_want: IdFifo,
    /// IHAVE items received in this heartbeat.
    ihave_msgs: usize,
    /// Ids asked for from this peer in this heartbeat.
    ihave_ids: usize,
    /// IWANT items received in this heartbeat.
    iwant_msgs: usize,
    /// Ids answered for this peer in this heartbeat.
    iwant_ids: usize,
    score: PeerScore,
    graylisted: bool,
}

#[derive(Debug, Default)]
struct TopicState {
    /// Set while we are subscribed.
    subscription: Option<PubsubTopic>,
    /// Connected peers subscribed to the topic.
    peers: BTreeSet<PeerId>,
    /// Our mesh (a subset of `peers`), while subscribed.
    mesh: BTreeSet<PeerId>,
    /// Fanout peers, while publishing without a subscription.
    fanout: BTreeSet<PeerId>,
    fanout_last_publish: Option<Instant>,
    /// Until when we must not graft a peer (and it must not graft us).
    backoff: BTreeMap<PeerId, Instant>,
}

impl TopicState {
    fn is_unused(&self) -> bool {
        self.subscription.is_none()
            && self.peers.is_empty()
            && self.fanout_last_publish.is_none()
            && self.backoff.is_empty()
    }

    /// Whether we may graft `peer` now (its backoff, plus slack, has passed).
    fn may_graft(&self, peer: &PeerId, now: Instant, slack: Duration) -> bool {
        self.backoff
            .get(peer)
            .is_none_or(|until| now >= later(*until, slack))
    }
}

fn score_of(
    peers: &BTreeMap<PeerId, PeerState>,
    c: &RelayConfig,
    peer: &PeerId,
    now: Instant,
) -> f64 {
    peers
        .get(peer)
        .map_or(0.0, |p| p.score.score(&c.score, now))
}

/// A sans-IO gossipsub v1.1 router for Waku relay. See the [module docs](super) for what it
/// implements.
///
/// Four kinds of methods, as every machine in this crate:
/// - inputs: [`handle_connected`](Relay::handle_connected) /
///   [`handle_dialed`](Relay::handle_dialed), [`handle_disconnected`](Relay::handle_disconnected),
///   [`handle_frame`](Relay::handle_frame), [`handle_timeout`](Relay::handle_timeout). They never
///   panic and never fail because of what a peer sent;
/// - commands: [`subscribe`](Relay::subscribe), [`unsubscribe`](Relay::unsubscribe),
///   [`publish`](Relay::publish), [`publish_encoded`](Relay::publish_encoded),
///   [`set_validator`](Relay::set_validator), with typed errors at the call site;
/// - outputs, queued until drained: [`poll_transmit`](Relay::poll_transmit),
///   [`poll_event`](Relay::poll_event), [`poll_timeout`](Relay::poll_timeout);
/// - queries: [`stats`](Relay::stats), [`sizes`](Relay::sizes),
///   [`mesh_peers`](Relay::mesh_peers), [`peer_score`](Relay::peer_score), ...
///
/// `now` must never go backwards. All randomness (mesh selection, gossip targets, the hash key of
/// the id caches) comes from the seed, and everything that reaches the wire is iterated in a
/// fixed order, so equal inputs give equal outputs.
pub struct Relay {
    config: RelayConfig,
    rng: ChaCha20Rng,
    peers: BTreeMap<PeerId, PeerState>,
    topics: BTreeMap<Arc<str>, TopicState>,
    mcache: MessageCache,
    seen: SeenCache,
    /// IWANT promises: message id → (peer, deadline).
    promises: BTreeMap<MessageId, Vec<(PeerId, Instant)>>,
    promise_count: usize,
    /// Ids asked for with IWANT in this heartbeat.
    pending_iwant: HashSet<MessageId, KeyedHash>,
    outbox: Outbox,
    events: VecDeque<RelayEvent>,
    event_bytes: usize,
    /// Scores of disconnected peers, with when to forget them.
    retained: BTreeMap<PeerId, (PeerScore, Instant)>,
    validator: Option<Validator>,
    hash: KeyedHash,
    next_heartbeat: Instant,
    next_decay: Instant,
    ticks: u64,
    /// Set when a peer was penalised while handling its frame (check it for graylisting).
    penalized: bool,
    stats: RelayStats,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("peers", &self.peers.len())
            .field("topics", &self.topics.len())
            .field("mcache", &self.mcache.len())
            .field("seen", &self.seen.len())
            .field("next_heartbeat", &self.next_heartbeat)
            .field("validator", &self.validator.is_some())
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A router with no peers and no subscriptions. `seed` drives every random choice;
    /// `config` is made consistent with [`RelayConfig::sanitized`].
    pub fn new(config: RelayConfig, seed: [u8; 32], now: Instant) -> Self {
        let config = config.sanitized();
        let mut rng = ChaCha20Rng::from_seed(seed);
        let hash = KeyedHash::new(rng.next_u64(), rng.next_u64());
        Relay {
            mcache: MessageCache::new(config.history_length, config.history_gossip, hash),
            seen: SeenCache::new(config.seen_ttl, hash),
            outbox: Outbox::new(config.batch_size, config.max_rpc_size),
            next_heartbeat: later(now, config.heartbeat_interval),
            next_decay: later(now, config.score.decay_interval),
            config,
            rng,
            peers: BTreeMap::new(),
            topics: BTreeMap::new(),
            promises: BTreeMap::new(),
            promise_count: 0,
            pending_iwant: HashSet::with_hasher(hash),
            events: VecDeque::new(),
            event_bytes: 0,
            retained: BTreeMap::new(),
            validator: None,
            hash,
            ticks: 0,
            penalized: false,
            stats: RelayStats::default(),
        }
    }

    /// The configuration in use (after [`RelayConfig::sanitized`]).
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Installs (or with `None` removes) the application validator.
    pub fn set_validator(&mut self, validator: Option<Validator>) {
        self.validator = validator;
    }

    // ---------------------------------------------------------------------------------------
    // Inputs

    /// A connection to `peer` is up (inbound, or of unknown direction). Ignored unless
    /// `protocols` includes [`Protocol::Relay`]. The peer is told our subscriptions.
    pub fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.connect(now.instant, peer, protocols, false);
    }

    /// A connection we dialled to `peer` is up: like [`Relay::handle_connected`], and the peer
    /// counts toward the outbound mesh quota `D_out`.
    pub fn handle_dialed(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.connect(now.instant, peer, protocols, true);
    }

    fn connect(&mut self, now: Instant, peer: PeerId, protocols: &[Protocol], outbound: bool) {
        if !protocols.contains(&Protocol::Relay) {
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.outbound |= outbound;
            return;
        }
        if self.peers.len() >= MAX_PEERS {
            self.stats.peers_refused += 1;
            return;
        }
        let score = match self.retained.remove(&peer) {
            Some((s, until)) if until > now => s,
            _ => PeerScore::default(),
        };
        self.peers.insert(
            peer,
            PeerState {
                outbound,
                topics: BTreeSet::new(),
                dont_want: IdFifo::new(MAX_IDONTWANT_PER_PEER, self.hash),
                ihave_msgs: 0,
                ihave_ids: 0,
                iwant_msgs: 0,
                iwant_ids: 0,
                score,
                graylisted: false,
            },
        );
        for (name, t) in &self.topics {
            if t.subscription.is_some() {
                // A fresh peer has an empty queue, so this cannot hit the caps.
                let _ = self.outbox.push_subscription(peer, name, true);
            }
        }
    }

    /// The connection to `peer` is gone. Its score is kept for `retain_score` in case the
    /// driver reuses the handle.
    pub fn handle_disconnected(&mut self, now: Now, peer: PeerId) {
        let Some(mut p) = self.peers.remove(&peer) else {
            return;
        };
        for t in self.topics.values_mut() {
            t.peers.remove(&peer);
            t.mesh.remove(&peer);
            t.fanout.remove(&peer);
            t.backoff.remove(&peer);
        }
        self.topics.retain(|_, t| !t.is_unused());
        self.outbox.drop_peer(peer);
        p.score.leave_all_meshes();
        if !p.score.is_neutral() {
            if self.retained.len() >= MAX_RETAINED_SCORES {
                let soonest = self
                    .retained
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| *k);
                if let Some(k) = soonest {
                    self.retained.remove(&k);
                }
            }
            let until = later(now.instant, self.config.score.retain_score);
            self.retained.insert(peer, (p.score, until));
        }
    }

    /// One gossipsub RPC from `from`, its length prefix removed. Bad input is counted in
    /// [`Relay::stats`] and dropped; it never panics and never changes more than the RPC's valid
    /// parts would.
    pub fn handle_frame(&mut self, now: Now, from: PeerId, frame: &[u8]) {
        self.stats.frames_received += 1;
        if !self.peers.contains_key(&from) {
            self.stats.frames_unknown_peer += 1;
            return;
        }
        if self.check_graylist(from, now.instant) {
            self.stats.frames_graylisted += 1;
            return;
        }
        if frame.len() > self.config.max_rpc_size {
            self.stats.frames_oversized += 1;
            return;
        }
        let Ok(rpc) = Rpc::decode(frame) else {
            self.stats.frames_malformed += 1;
            return;
        };
        self.handle_subscriptions(now.instant, from, rpc.subscriptions);
        for msg in rpc.publish {
            self.handle_message(now, from, msg);
        }
        if let Some(control) = rpc.control {
            self.handle_control(now.instant, from, control);
        }
        if std::mem::take(&mut self.penalized) {
            self.check_graylist(from, now.instant);
        }
    }

    /// Runs the heartbeat if its time has come (see [`Relay::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Now) {
        if now.instant < self.next_heartbeat {
            return;
        }
        self.heartbeat(now.instant);
        let next = later(self.next_heartbeat, self.config.heartbeat_interval);
        self.next_heartbeat = if next > now.instant {
            next
        } else {
            later(now.instant, self.config.heartbeat_interval)
        };
    }

    // ---------------------------------------------------------------------------------------
    // Commands

    /// Subscribes to `topic`: tells every peer and grafts a mesh at once (fanout peers first).
    /// `Ok(false)` if already subscribed.
    pub fn subscribe(&mut self, now: Now, topic: &PubsubTopic) -> Result<bool, SubscribeError> {
        let now = now.instant;
        let name = topic.as_str();
        if self
            .topics
            .get(name)
            .is_some_and(|t| t.subscription.is_some())
        {
            return Ok(false);
        }
        let subscribed = self
            .topics
            .values()
            .filter(|t| t.subscription.is_some())
            .count();
        if subscribed >= MAX_SUBSCRIPTIONS {
            return Err(SubscribeError::TooManySubscriptions {
                max: MAX_SUBSCRIPTIONS,
            });
        }
        let key = match self.topics.get_key_value(name) {
            Some((k, _)) => k.clone(),
            None => {
                if self.topics.len() >= MAX_TOPICS {
                    return Err(SubscribeError::TooManyTopics { max: MAX_TOPICS });
                }
                let k: Arc<str> = Arc::from(name);
                self.topics.insert(k.clone(), TopicState::default());
                k
            }
        };
        for peer in self.peers.keys() {
            if self.outbox.push_subscription(*peer, &key, true).is_err() {
                self.stats.messages_dropped_full += 1;
            }
        }
        let Some(t) = self.topics.get_mut(&key) else {
            return Ok(false);
        };
        t.subscription = Some(topic.clone());
        let d = self.config.d;
        let slack = self.config.backoff_slack;
        let mut mesh: Vec<PeerId> = t
            .fanout
            .iter()
            .filter(|p| score_of(&self.peers, &self.config, p, now) >= 0.0)
            .copied()
            .collect();
        shuffle(&mut self.rng, &mut mesh);
        mesh.truncate(d);
        t.fanout.clear();
        t.fanout_last_publish = None;
        if mesh.len() < d {
            let mut more: Vec<PeerId> = t
                .peers
                .iter()
                .filter(|p| {
                    !mesh.contains(p)
                        && t.may_graft(p, now, slack)
                        && score_of(&self.peers, &self.config, p, now) >= 0.0
                })
                .copied()
                .collect();
            shuffle(&mut self.rng, &mut more);
            more.truncate(d - mesh.len());
            mesh.extend(more);
        }
        t.mesh.extend(mesh.iter().copied());
        for p in mesh {
            if let Some(ps) = self.peers.get_mut(&p) {
                ps.score.graft(&key, now);
            }
            self.send_graft(p, &key);
        }
        Ok(true)
    }

    /// Unsubscribes from `topic`: tells every peer and prunes the mesh with the unsubscribe
    /// backoff. `false` if we were not subscribed.
    pub fn unsubscribe(&mut self, now: Now, topic: &PubsubTopic) -> bool {
        let now = now.instant;
        let name = topic.as_str();
        let Some((key, t)) = self.topics.get_key_value(name) else {
            return false;
        };
        if t.subscription.is_none() {
            return false;
        }
        let key = key.clone();
        for peer in self.peers.keys() {
            if self.outbox.push_subscription(*peer, &key, false).is_err() {
                self.stats.messages_dropped_full += 1;
            }
        }
        let backoff = self.config.unsubscribe_backoff;
        let mut pruned = Vec::new();
        if let Some(t) = self.topics.get_mut(&key) {
            t.subscription = None;
            pruned.extend(std::mem::take(&mut t.mesh));
            for p in &pruned {
                t.backoff.insert(*p, later(now, backoff));
            }
        }
        for p in pruned {
            if let Some(ps) = self.peers.get_mut(&p) {
                ps.score.prune(&key);
            }
            self.send_prune(p, &key, backoff);
        }
        if self.topics.get(&key).is_some_and(TopicState::is_unused) {
            self.topics.remove(&key);
        }
        true
    }

    /// Publishes a Waku message on `topic`. The message must be valid, within the size limit and
    /// timestamped within the accepted window of `now.unix_nanos` (else every peer would reject
    /// it). With flood publishing (the default) it goes to every topic peer above the publish
    /// threshold; otherwise to the mesh, or to fanout peers if we are not subscribed. Not
    /// reported back as an event.
    pub fn publish(
        &mut self,
        now: Now,
        topic: &PubsubTopic,
        message: &WakuMessage,
    ) -> Result<MessageId, PublishError> {
        message.validate_with_limit(self.config.max_message_size)?;
        self.publish_data(now, topic, message.encode(), message.timestamp)
    }

    /// [`Relay::publish`] for an already serialised Waku message (sent as is, so its id is
    /// `sha256(data)` of exactly these bytes). The bytes are decoded and checked first.
    pub fn publish_encoded(
        &mut self,
        now: Now,
        topic: &PubsubTopic,
        data: Vec<u8>,
    ) -> Result<MessageId, PublishError> {
        let msg = WakuMessage::decode_with_limit(&data, self.config.max_message_size)?;
        self.publish_data(now, topic, data, msg.timestamp)
    }

    fn publish_data(
        &mut self,
        now: Now,
        topic: &PubsubTopic,
        data: Vec<u8>,
        timestamp: Option<i64>,
    ) -> Result<MessageId, PublishError> {
        if !timestamp_ok(timestamp, now.unix_nanos, self.config.max_timestamp_skew) {
            return Err(PublishError::Timestamp {
                timestamp,
                now: now.unix_nanos,
            });
        }
        let id = MessageId::of(&data);
        if self.seen.contains(&id) {
            return Err(PublishError::Duplicate);
        }
        let instant = now.instant;
        let targets = self.publish_targets(instant, topic.as_str());
        if targets.is_empty() {
            return Err(PublishError::NoPeers);
        }
        let Some((key, _)) = self.topics.get_key_value(topic.as_str()) else {
            return Err(PublishError::NoPeers);
        };
        let key = key.clone();
        self.seen.insert(id, instant);
        let entry = publish_entry(&data, &key);
        for p in targets {
            if self
                .peers
                .get(&p)
                .is_some_and(|ps| ps.dont_want.contains(&id))
            {
                continue;
            }
            self.queue_message(p, &entry);
        }
        self.mcache.put(id, key, entry);
        self.stats.published += 1;
        Ok(id)
    }

    fn publish_targets(&mut self, now: Instant, name: &str) -> Vec<PeerId> {
        let threshold = self.config.score.publish_threshold;
        let d = self.config.d;
        let fanouts = self
            .topics
            .values()
            .filter(|t| t.fanout_last_publish.is_some())
            .count();
        let Some(t) = self.topics.get_mut(name) else {
            return Vec::new();
        };
        let eligible = |p: &&PeerId| score_of(&self.peers, &self.config, p, now) >= threshold;
        if self.config.flood_publish {
            return t.peers.iter().filter(eligible).copied().collect();
        }
        if t.subscription.is_some() && !t.mesh.is_empty() {
            return t.mesh.iter().copied().collect();
        }
        if t.subscription.is_none() && !t.fanout.is_empty() {
            t.fanout_last_publish = Some(now);
            return t.fanout.iter().copied().collect();
        }
        let mut pick: Vec<PeerId> = t.peers.iter().filter(eligible).copied().collect();
        shuffle(&mut self.rng, &mut pick);
        pick.truncate(d);
        if t.subscription.is_none() && fanouts < MAX_FANOUT_TOPICS {
            t.fanout = pick.iter().copied().collect();
            t.fanout_last_publish = Some(now);
        }
        pick
    }

    // ---------------------------------------------------------------------------------------
    // Outputs

    /// The next RPC to send. Each is one complete gossipsub RPC of at most
    /// [`RelayConfig::max_rpc_size`] bytes (batched per peer up to
    /// [`RelayConfig::batch_size`] unless a single message is larger), on
    /// [`Protocol::Relay`] as a [`FrameKind::Stream`] frame.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        let e = self.events.pop_front()?;
        if let RelayEvent::Message { message, .. } = &e {
            self.event_bytes = self.event_bytes.saturating_sub(message.payload.len());
        }
        Some(e)
    }

    /// When [`Relay::handle_timeout`] should next be called: the next heartbeat. Always `Some`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_heartbeat)
    }

    // ---------------------------------------------------------------------------------------
    // Queries

    /// Counters of what the router did.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// Current sizes of every bounded structure.
    pub fn sizes(&self) -> RelaySizes {
        RelaySizes {
            peers: self.peers.len(),
            topics: self.topics.len(),
            subscriptions: self
                .topics
                .values()
                .filter(|t| t.subscription.is_some())
                .count(),
            fanout_topics: self
                .topics
                .values()
                .filter(|t| t.fanout_last_publish.is_some())
                .count(),
            max_peer_topics: self
                .peers
                .values()
                .map(|p| p.topics.len())
                .max()
                .unwrap_or(0),
            max_mesh: self
                .topics
                .values()
                .map(|t| t.mesh.len())
                .max()
                .unwrap_or(0),
            mcache_messages: self.mcache.len(),
            mcache_bytes: self.mcache.bytes(),
            seen: self.seen.len(),
            max_peer_idontwant: self
                .peers
                .values()
                .map(|p| p.dont_want.len())
                .max()
                .unwrap_or(0),
            promises: self.promise_count,
            pending_iwant: self.pending_iwant.len(),
            events: self.events.len(),
            event_bytes: self.event_bytes,
            outbound_bytes: self.outbox.queued_bytes(),
            max_peer_outbound_bytes: self.outbox.max_peer_bytes(),
            retained_scores: self.retained.len(),
        }
    }

    /// Connected relay peers, in order.
    pub fn peers(&self) -> Vec<PeerId> {
        self.peers.keys().copied().collect()
    }

    /// Our subscriptions, in order.
    pub fn subscriptions(&self) -> Vec<PubsubTopic> {
        self.topics
            .values()
            .filter_map(|t| t.subscription.clone())
            .collect()
    }

    /// Whether we are subscribed to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|t| t.subscription.is_some())
    }

    /// Our mesh peers for `topic`, in order.
    pub fn mesh_peers(&self, topic: &str) -> Vec<PeerId> {
        self.topics
            .get(topic)
            .map(|t| t.mesh.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Connected peers subscribed to `topic`, in order.
    pub fn topic_peers(&self, topic: &str) -> Vec<PeerId> {
        self.topics
            .get(topic)
            .map(|t| t.peers.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The score of a connected peer at `now`.
    pub fn peer_score(&self, peer: PeerId, now: Instant) -> Option<f64> {
        self.peers
            .get(&peer)
            .map(|p| p.score.score(&self.config.score, now))
    }

    /// Whether a connected peer is graylisted (its score is below the graylist threshold).
    pub fn is_graylisted(&self, peer: PeerId, now: Instant) -> bool {
        self.peer_score(peer, now)
            .is_some_and(|s| s < self.config.score.graylist_threshold)
    }

    // ---------------------------------------------------------------------------------------
    // Internals: queueing

    fn queue_message(&mut self, peer: PeerId, entry: &[u8]) {
        match self.outbox.push_publish(peer, entry) {
            Ok(()) => self.stats.messages_sent += 1,
            Err(_) => self.stats.messages_dropped_full += 1,
        }
    }

    fn queue_control(&mut self, peer: PeerId, item: Control) {
        // Control items are small; a full queue drops them like messages (gossip repairs).
        if self.outbox.push_control(peer, item).is_err() {
            self.stats.messages_dropped_full += 1;
        }
    }

    fn send_graft(&mut self, peer: PeerId, topic: &str) {
        self.queue_control(
            peer,
            Control::Graft(ControlGraft {
                topic_id: Some(topic.to_owned()),
            }),
        );
    }

    fn send_prune(&mut self, peer: PeerId, topic: &str, backoff: Duration) {
        self.queue_control(
            peer,
            Control::Prune(ControlPrune {
                topic_id: Some(topic.to_owned()),
                peers: Vec::new(),
                backoff: Some(backoff.as_secs()),
            }),
        );
    }

    /// How many ids fit in one control item of at most a batch.
    fn ids_per_item(&self) -> usize {
        (self.config.batch_size.saturating_sub(MESSAGE_ENVELOPE) / ID_FIELD_LEN).max(1)
    }

    fn push_event(&mut self, e: RelayEvent) {
        let bytes = match &e {
            RelayEvent::Message { message, .. } => message.payload.len(),
            _ => 0,
        };
        if self.events.len() >= MAX_QUEUED_EVENTS
            || self.event_bytes + bytes > MAX_QUEUED_EVENT_BYTES
        {
            self.stats.events_dropped += 1;
            return;
        }
        self.event_bytes += bytes;
        self.events.push_back(e);
    }

    /// Whether `peer` is graylisted now; reports the transition once.
    fn check_graylist(&mut self, peer: PeerId, now: Instant) -> bool {
        let threshold = self.config.score.graylist_threshold;
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        let score = p.score.score(&self.config.score, now);
        let gray = score < threshold;
        let newly = gray && !p.graylisted;
        p.graylisted = gray;
        if newly {
            self.push_event(RelayEvent::PeerGraylisted { peer, score });
            if self.config.disconnect_bad_peers {
                self.push_event(RelayEvent::DisconnectPeer { peer });
            }
        }
        gray
    }

    // ---------------------------------------------------------------------------------------
    // Internals: subscriptions

    fn handle_subscriptions(&mut self, now: Instant, from: PeerId, subs: Vec<SubOpts>) {
        for sub in subs {
            let Some(topic) = sub.topic_id else {
                self.stats.subscriptions_ignored += 1;
                continue;
            };
            if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
                self.stats.subscriptions_ignored += 1;
                continue;
            }
            if sub.subscribe.unwrap_or(false) {
                self.peer_subscribed(now, from, &topic, true);
            } else {
                self.peer_unsubscribed(from, &topic);
            }
        }
    }

    /// Records that `peer` is subscribed to `topic`; with `eager`, grafts it at once if our mesh
    /// is short. False if the subscription could not be recorded.
    fn peer_subscribed(&mut self, now: Instant, peer: PeerId, topic: &str, eager: bool) -> bool {
        let Some(p) = self.peers.get(&peer) else {
            return false;
        };
        if p.topics.contains(topic) {
            return true;
        }
        if p.topics.len() >= MAX_TOPICS_PER_PEER {
            self.stats.subscriptions_ignored += 1;
            return false;
        }
        let key = match self.topics.get_key_value(topic) {
            Some((k, _)) => k.clone(),
            None => {
                if self.topics.len() >= MAX_TOPICS {
                    self.stats.subscriptions_ignored += 1;
                    return false;
                }
                let k: Arc<str> = Arc::from(topic);
                self.topics.insert(k.clone(), TopicState::default());
                k
            }
        };
        let score = score_of(&self.peers, &self.config, &peer, now);
        let (d_lo, slack) = (self.config.d_lo, self.config.backoff_slack);
        let Some(t) = self.topics.get_mut(&key) else {
            return false;
        };
        t.peers.insert(peer);
        let graft = eager
            && t.subscription.is_some()
            && t.mesh.len() < d_lo
            && t.may_graft(&peer, now, slack)
            && score >= 0.0;
        if graft {
            t.mesh.insert(peer);
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.topics.insert(key.clone());
            if graft {
                p.score.graft(&key, now);
            }
        }
        if graft {
            self.send_graft(peer, &key);
        }
        true
    }

    fn peer_unsubscribed(&mut self, peer: PeerId, topic: &str) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.topics.remove(topic) {
            return;
        }
        p.score.prune(topic);
        if let Some(t) = self.topics.get_mut(topic) {
            t.peers.remove(&peer);
            t.mesh.remove(&peer);
            t.fanout.remove(&peer);
            if t.is_unused() {
                self.topics.remove(topic);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Internals: messages

    fn handle_message(&mut self, now: Now, from: PeerId, msg: PubsubMessage) {
        self.stats.messages_received += 1;
        let Some(topic) = msg.topic.as_deref() else {
            self.stats.messages_without_topic += 1;
            return;
        };
        let Some((key, t)) = self.topics.get_key_value(topic) else {
            self.stats.messages_unsubscribed += 1;
            return;
        };
        let Some(subscription) = t.subscription.clone() else {
            self.stats.messages_unsubscribed += 1;
            return;
        };
        let key = key.clone();
        if msg.from.is_some() || msg.seqno.is_some() || msg.signature.is_some() || msg.key.is_some()
        {
            // Not marked seen: the same data without these fields is a valid message.
            self.stats.rejected_signed += 1;
            self.penalize_invalid(from, &key);
            return;
        }
        let data = msg.data.unwrap_or_default();
        let id = MessageId::of(&data);
        if !self.seen.insert(id, now.instant) {
            self.stats.messages_duplicate += 1;
            self.keep_promise(&id);
            return;
        }
        self.keep_promise(&id);
        if data.len() >= self.config.idontwant_min_size {
            self.send_idontwant(&key, from, id);
        }
        let message = match self.validate(now, &subscription, &data) {
            Ok(m) => m,
            Err(Validation::Reject) => {
                self.penalize_invalid(from, &key);
                return;
            }
            Err(_) => return,
        };
        self.stats.messages_accepted += 1;
        if let Some(p) = self.peers.get_mut(&from) {
            p.score.first_delivery(&key, &self.config.score);
        }
        let entry = publish_entry(&data, &key);
        if let Some(t) = self.topics.get(&key) {
            for peer in &t.mesh {
                if *peer == from
                    || self
                        .peers
                        .get(peer)
                        .is_some_and(|p| p.dont_want.contains(&id))
                {
                    continue;
                }
                match self.outbox.push_publish(*peer, &entry) {
                    Ok(()) => self.stats.messages_sent += 1,
                    Err(_) => self.stats.messages_dropped_full += 1,
                }
            }
        }
        self.mcache.put(id, key, entry);
        self.push_event(RelayEvent::Message {
            topic: subscription,
            id,
            message,
            source: from,
        });
    }

    /// Size, decoding, timestamp, then the application validator. `Err` carries reject or
    /// ignore; the reason is counted here.
    fn validate(
        &mut self,
        now: Now,
        topic: &PubsubTopic,
        data: &[u8],
    ) -> Result<WakuMessage, Validation> {
        if data.len() > self.config.max_message_size {
            self.stats.rejected_too_large += 1;
            return Err(Validation::Reject);
        }
        let Ok(message) = WakuMessage::decode_with_limit(data, self.config.max_message_size) else {
            self.stats.rejected_malformed += 1;
            return Err(Validation::Reject);
        };
        if !timestamp_ok(
            message.timestamp,
            now.unix_nanos,
            self.config.max_timestamp_skew,
        ) {
            self.stats.rejected_timestamp += 1;
            return Err(Validation::Reject);
        }
        match self.validator.as_mut().map(|v| v(topic, &message)) {
            None | Some(Validation::Accept) => Ok(message),
            Some(Validation::Reject) => {
                self.stats.rejected_by_validator += 1;
                Err(Validation::Reject)
            }
            Some(Validation::Ignore) => {
                self.stats.ignored_by_validator += 1;
                Err(Validation::Ignore)
            }
        }
    }

    fn penalize_invalid(&mut self, from: PeerId, topic: &Arc<str>) {
        if let Some(p) = self.peers.get_mut(&from) {
            p.score.invalid_delivery(topic);
            self.penalized = true;
        }
    }

    fn send_idontwant(&mut self, topic: &str, from: PeerId, id: MessageId) {
        let Some(t) = self.topics.get(topic) else {
            return;
        };
        for p in &t.mesh {
            if *p != from
                && self
                    .outbox
                    .push_control(*p, Control::IDontWant(id))
                    .is_err()
            {
                self.stats.messages_dropped_full += 1;
            }
        }
    }

    fn keep_promise(&mut self, id: &MessageId) {
        if self.promises.is_empty() {
            return;
        }
        if let Some(v) = self.promises.remove(id) {
            self.promise_count -= v.len();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Internals: control

    fn handle_control(&mut self, now: Instant, from: PeerId, c: ControlMessage) {
        let score = score_of(&self.peers, &self.config, &from, now);
        let mut refused: Vec<Arc<str>> = Vec::new();
        for g in c.graft.iter().take(MAX_SUBSCRIPTIONS + MAX_TOPICS_PER_PEER) {
            if let Some(topic) = g.topic_id.as_deref()
                && let Some(k) = self.handle_graft(now, from, topic, score)
            {
                refused.push(k);
            }
        }
        for k in refused {
            self.stats.grafts_refused += 1;
            self.send_prune(from, &k, self.config.prune_backoff);
        }
        for p in c.prune.iter().take(MAX_SUBSCRIPTIONS + MAX_TOPICS_PER_PEER) {
            self.handle_prune(now, from, p);
        }
        if score >= self.config.score.gossip_threshold {
            self.handle_ihave(now, from, &c.ihave);
            self.handle_iwant(from, &c.iwant);
        } else {
            self.stats.gossip_ignored += (c.ihave.len() + c.iwant.len()) as u64;
        }
        let mut budget = MAX_IDONTWANT_PER_PEER;
        if let Some(p) = self.peers.get_mut(&from) {
            for d in &c.idontwant {
                for raw in &d.message_ids {
                    if budget == 0 {
                        break;
                    }
                    budget -= 1;
                    if let Some(id) = parse_id(raw) {
                        p.dont_want.insert(id, now);
                    }
                }
            }
        }
    }

    /// Handles one GRAFT; returns the topic if it must be refused with a PRUNE.
    fn handle_graft(
        &mut self,
        now: Instant,
        from: PeerId,
        topic: &str,
        score: f64,
    ) -> Option<Arc<str>> {
        let (key, t) = self.topics.get_key_value(topic)?;
        // A GRAFT for a topic we are not subscribed to is ignored (there is no mesh to join).
        t.subscription.as_ref()?;
        if t.mesh.contains(&from) {
            return None;
        }
        let key = key.clone();
        let known = t.peers.contains(&from);
        if !known && !self.peer_subscribed(now, from, &key, false) {
            return Some(key);
        }
        let c = &self.config;
        let t = self.topics.get_mut(&key)?;
        if let Some(until) = t.backoff.get(&from).copied()
            && now < until
        {
            // Grafting during backoff: penalise, doubly if right after the prune.
            let mut penalty = 1.0;
            if later(now, c.prune_backoff) < later(until, c.graft_flood_threshold) {
                penalty += 1.0;
            }
            let renewed = later(now, c.prune_backoff).max(until);
            t.backoff.insert(from, renewed);
            if let Some(p) = self.peers.get_mut(&from) {
                p.score.add_penalty(penalty);
                self.penalized = true;
            }
            return Some(key);
        }
        let outbound = self.peers.get(&from).is_some_and(|p| p.outbound);
        if score < 0.0 || (t.mesh.len() >= c.d_hi && !outbound) {
            t.backoff.insert(from, later(now, c.prune_backoff));
            return Some(key);
        }
        t.mesh.insert(from);
        if let Some(p) = self.peers.get_mut(&from) {
            p.score.graft(&key, now);
        }
        None
    }

    fn handle_prune(&mut self, now: Instant, from: PeerId, prune: &ControlPrune) {
        let Some(topic) = prune.topic_id.as_deref() else {
            return;
        };
        let Some(t) = self.topics.get_mut(topic) else {
            return;
        };
        if t.subscription.is_none() {
            return;
        }
        if t.mesh.remove(&from)
            && let Some(p) = self.peers.get_mut(&from)
        {
            p.score.prune(topic);
        }
        // The peer's backoff, capped; PX peers (prune.peers) are ignored.
        let backoff = prune
            .backoff
            .map(|s| Duration::from_secs(s.min(MAX_BACKOFF_SECS)))
            .unwrap_or(self.config.prune_backoff);
        let until = later(now, backoff);
        let entry = t.backoff.entry(from).or_insert(until);
        *entry = (*entry).max(until);
    }

    fn handle_ihave(&mut self, now: Instant, from: PeerId, ihaves: &[ControlIHave]) {
        let max_msgs = self.config.max_ihave_messages;
        let max_ids = self.config.max_ihave_length;
        let mut want: Vec<MessageId> = Vec::new();
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        for ih in ihaves {
            if p.ihave_msgs >= max_msgs {
                self.stats.gossip_ignored += 1;
                continue;
            }
            p.ihave_msgs += 1;
            let subscribed = ih
                .topic_id
                .as_deref()
                .and_then(|t| self.topics.get(t))
                .is_some_and(|t| t.subscription.is_some());
            if !subscribed {
                continue;
            }
            for raw in &ih.message_ids {
                if p.ihave_ids + want.len() >= max_ids
                    || self.pending_iwant.len() >= MAX_PENDING_IWANT
                {
                    break;
                }
                let Some(id) = parse_id(raw) else { continue };
                if self.seen.contains(&id) || !self.pending_iwant.insert(id) {
                    continue;
                }
                want.push(id);
            }
        }
        if want.is_empty() {
            return;
        }
        p.ihave_ids += want.len();
        self.stats.iwant_ids_sent += want.len() as u64;
        if self.promise_count < MAX_PROMISES {
            let i = below(&mut self.rng, want.len());
            if let Some(id) = want.get(i) {
                let deadline = later(now, self.config.iwant_followup_time);
                self.promises.entry(*id).or_default().push((from, deadline));
                self.promise_count += 1;
            }
        }
        let per = self.ids_per_item();
        for chunk in want.chunks(per) {
            self.queue_control(
                from,
                Control::IWant(ControlIWant {
                    message_ids: chunk.iter().map(|id| id.0.to_vec()).collect(),
                }),
            );
        }
    }

    fn handle_iwant(&mut self, from: PeerId, iwants: &[ControlIWant]) {
        let max_msgs = self.config.max_iwant_messages;
        let max_ids = self.config.max_ihave_length;
        let retransmit = self.config.gossip_retransmission;
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        for iw in iwants {
            if p.iwant_msgs >= max_msgs {
                self.stats.gossip_ignored += 1;
                continue;
            }
            p.iwant_msgs += 1;
            for raw in &iw.message_ids {
                if p.iwant_ids >= max_ids {
                    break;
                }
                p.iwant_ids += 1;
                let Some(id) = parse_id(raw) else { continue };
                if let Some(entry) = self.mcache.serve(&id, from, retransmit) {
                    match self.outbox.push_publish(from, entry) {
                        Ok(()) => {
                            self.stats.messages_sent += 1;
                            self.stats.iwant_ids_served += 1;
                        }
                        Err(_) => self.stats.messages_dropped_full += 1,
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Internals: the heartbeat

    fn heartbeat(&mut self, now: Instant) {
        self.ticks += 1;
        self.stats.heartbeats += 1;
        for p in self.peers.values_mut() {
            p.ihave_msgs = 0;
            p.ihave_ids = 0;
            p.iwant_msgs = 0;
            p.iwant_ids = 0;
            p.dont_want.expire(now, IDONTWANT_TTL);
        }
        self.pending_iwant.clear();
        self.expire_promises(now);
        self.decay_scores(now);

        let subscribed: Vec<Arc<str>> = self
            .topics
            .iter()
            .filter(|(_, t)| t.subscription.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for key in &subscribed {
            self.maintain_mesh(now, key);
        }
        self.maintain_fanout(now);
        self.emit_gossip(now);

        self.mcache.shift();
        self.seen.expire(now);
        let slack = self.config.backoff_slack;
        for t in self.topics.values_mut() {
            t.backoff.retain(|_, until| now < later(*until, slack));
        }
        self.topics.retain(|_, t| !t.is_unused());
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for p in peers {
            self.check_graylist(p, now);
        }
    }

    fn expire_promises(&mut self, now: Instant) {
        if self.promises.is_empty() {
            return;
        }
        let mut broken: Vec<PeerId> = Vec::new();
        self.promises.retain(|_, v| {
            v.retain(|(peer, deadline)| {
                if *deadline <= now {
                    broken.push(*peer);
                    false
                } else {
                    true
                }
            });
            !v.is_empty()
        });
        self.promise_count -= broken.len();
        for peer in broken {
            self.stats.promises_broken += 1;
            if let Some(p) = self.peers.get_mut(&peer) {
                p.score.add_penalty(1.0);
            }
        }
    }

    fn decay_scores(&mut self, now: Instant) {
        let interval = self.config.score.decay_interval;
        // Decay converges to zero quickly; a long pause needs at most a few hundred rounds.
        let mut rounds = 0;
        while now >= self.next_decay && rounds < 1000 {
            for p in self.peers.values_mut() {
                p.score.decay(&self.config.score);
            }
            for (s, _) in self.retained.values_mut() {
                s.decay(&self.config.score);
            }
            self.next_decay = later(self.next_decay, interval);
            rounds += 1;
        }
        if now >= self.next_decay {
            self.next_decay = later(now, interval);
        }
        self.retained
            .retain(|_, (s, until)| *until > now && !s.is_neutral());
    }

    fn maintain_mesh(&mut self, now: Instant, key: &Arc<str>) {
        let c = &self.config;
        let Some(t) = self.topics.get(key) else {
            return;
        };
        let peers = &self.peers;
        let score = |p: &PeerId| score_of(peers, c, p, now);
        let outbound = |p: &PeerId| peers.get(p).is_some_and(|s| s.outbound);
        let mut mesh: Vec<PeerId> = Vec::with_capacity(t.mesh.len());
        let mut prune: Vec<PeerId> = Vec::new();
        let mut graft: Vec<PeerId> = Vec::new();
        for p in &t.mesh {
            if score(p) < 0.0 {
                prune.push(*p);
            } else {
                mesh.push(*p);
            }
        }
        let candidates = |mesh: &[PeerId], prune: &[PeerId], pred: &dyn Fn(&PeerId) -> bool| {
            t.peers
                .iter()
                .filter(|p| {
                    !mesh.contains(p)
                        && !prune.contains(p)
                        && t.may_graft(p, now, c.backoff_slack)
                        && pred(p)
                })
                .copied()
                .collect::<Vec<PeerId>>()
        };
        if mesh.len() < c.d_lo {
            let mut more = candidates(&mesh, &prune, &|p| score(p) >= 0.0);
            shuffle(&mut self.rng, &mut more);
            more.truncate(c.d - mesh.len());
            graft.extend(&more);
            mesh.extend(more);
        } else if mesh.len() > c.d_hi {
            shuffle(&mut self.rng, &mut mesh);
            mesh.sort_by(|a, b| score(b).total_cmp(&score(a)));
            let mut rest = mesh.split_off(c.d_score.min(mesh.len()));
            shuffle(&mut self.rng, &mut rest);
            let keep_random = c.d.saturating_sub(mesh.len()).min(rest.len());
            let mut removed = rest.split_off(keep_random);
            mesh.extend(rest);
            // Outbound quota: swap outbound peers back in for the last inbound ones kept.
            let mut have = mesh.iter().filter(|p| outbound(p)).count();
            while have < c.d_out {
                let Some(i) = removed.iter().position(&outbound) else {
                    break;
                };
                let Some(j) = mesh.iter().rposition(|p| !outbound(p)) else {
                    break;
                };
                if let (Some(r), Some(m)) = (removed.get_mut(i), mesh.get_mut(j)) {
                    std::mem::swap(r, m);
                }
                have += 1;
            }
            prune.extend(removed);
        }
        if mesh.len() >= c.d_lo {
            let have = mesh.iter().filter(|p| outbound(p)).count();
            if have < c.d_out {
                let mut more = candidates(&mesh, &prune, &|p| outbound(p) && score(p) >= 0.0);
                shuffle(&mut self.rng, &mut more);
                more.truncate(c.d_out - have);
                graft.extend(&more);
                mesh.extend(more);
            }
        }
        if c.opportunistic_graft_ticks > 0
            && self.ticks.is_multiple_of(c.opportunistic_graft_ticks)
            && mesh.len() > 1
        {
            let mut scores: Vec<f64> = mesh.iter().map(&score).collect();
            scores.sort_by(f64::total_cmp);
            let median = scores.get(scores.len() / 2).copied().unwrap_or(0.0);
            if median < c.score.opportunistic_graft_threshold {
                let mut more = candidates(&mesh, &prune, &|p| score(p) > median);
                shuffle(&mut self.rng, &mut more);
                more.truncate(c.opportunistic_graft_peers);
                graft.extend(&more);
                mesh.extend(more);
            }
        }
        let backoff = c.prune_backoff;
        if let Some(t) = self.topics.get_mut(key) {
            t.mesh = mesh.into_iter().collect();
            for p in &prune {
                t.backoff.insert(*p, later(now, backoff));
            }
        }
        for p in graft {
            if let Some(ps) = self.peers.get_mut(&p) {
                ps.score.graft(key, now);
            }
            self.send_graft(p, key);
        }
        for p in prune {
            if let Some(ps) = self.peers.get_mut(&p) {
                ps.score.prune(key);
            }
            self.send_prune(p, key, backoff);
        }
    }

    fn maintain_fanout(&mut self, now: Instant) {
        let c = &self.config;
        let threshold = c.score.publish_threshold;
        let peers = &self.peers;
        for t in self.topics.values_mut() {
            let Some(last) = t.fanout_last_publish else {
                continue;
            };
            if t.subscription.is_some() || now.saturating_duration_since(last) >= c.fanout_ttl {
                t.fanout.clear();
                t.fanout_last_publish = None;
                continue;
            }
            let members = &t.peers;
            t.fanout
                .retain(|p| members.contains(p) && score_of(peers, c, p, now) >= threshold);
            if t.fanout.len() < c.d {
                let mut more: Vec<PeerId> = t
                    .peers
                    .iter()
                    .filter(|p| !t.fanout.contains(p) && score_of(peers, c, p, now) >= threshold)
                    .copied()
                    .collect();
                shuffle(&mut self.rng, &mut more);
                more.truncate(c.d - t.fanout.len());
                t.fanout.extend(more);
            }
        }
    }

    fn emit_gossip(&mut self, now: Instant) {
        let per = self.ids_per_item();
        let mut sends: Vec<(PeerId, Arc<str>, Vec<MessageId>)> = Vec::new();
        {
            let c = &self.config;
            let peers = &self.peers;
            for (key, t) in &self.topics {
                if t.subscription.is_none() && t.fanout_last_publish.is_none() {
                    continue;
                }
                let mut ids = self.mcache.gossip_ids(key);
                if ids.is_empty() {
                    continue;
                }
                if ids.len() > c.max_ihave_length {
                    shuffle(&mut self.rng, &mut ids);
                    ids.truncate(c.max_ihave_length);
                }
                let mut targets: Vec<PeerId> = t
                    .peers
                    .iter()
                    .filter(|p| {
                        !t.mesh.contains(p)
                            && !t.fanout.contains(p)
                            && score_of(peers, c, p, now) >= c.score.gossip_threshold
                    })
                    .copied()
                    .collect();
                let factor = (c.gossip_factor * targets.len() as f64) as usize;
                let n = c.d_lazy.max(factor).min(targets.len());
                shuffle(&mut self.rng, &mut targets);
                targets.truncate(n);
                for p in targets {
                    sends.push((p, key.clone(), ids.clone()));
                }
            }
        }
        for (peer, topic, ids) in sends {
            for chunk in ids.chunks(per) {
                self.queue_control(
                    peer,
                    Control::IHave(ControlIHave {
                        topic_id: Some(topic.to_string()),
                        message_ids: chunk.iter().map(|id| id.0.to_vec()).collect(),
                    }),
                );
            }
        }
    }
}

impl Machine for Relay {
    type Event = RelayEvent;

    fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        Relay::handle_connected(self, now, peer, protocols);
    }

    fn handle_disconnected(&mut self, now: Now, peer: PeerId) {
        Relay::handle_disconnected(self, now, peer);
    }

    /// Frames of other protocols are ignored.
    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        _kind: FrameKind,
        frame: &[u8],
    ) {
        if protocol == Protocol::Relay {
            Relay::handle_frame(self, now, from, frame);
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        Relay::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        Relay::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<RelayEvent> {
        Relay::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Relay::poll_timeout(self)
    }

    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::Relay]
    }
}
