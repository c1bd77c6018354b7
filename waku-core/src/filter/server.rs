//! The filter service: subscriptions and pushes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use prost::Message as _;

use super::{
    FilterSubscribeType, MAX_CONTENT_TOPICS_PER_REQUEST, MAX_REQUEST_LEN, SUBSCRIPTION_TTL, status,
};
use crate::message::WakuMessage;
use crate::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use crate::service::{Limiter, Queue, RateLimit, after, transmit};
use crate::topic::{ContentTopic, PubsubTopic};

/// The most peers with subscriptions at once (nwaku `MaxFilterPeers`).
pub const DEFAULT_MAX_PEERS: usize = 100;

/// The most (pubsub, content) topic pairs one peer may hold (nwaku `MaxFilterCriteriaPerPeer`).
pub const DEFAULT_MAX_CRITERIA_PER_PEER: usize = 1000;

/// The most frames queued for the driver. Pushes are at most one per subscriber per relayed
/// message, so a driver that drains after every input never comes near; beyond it pushes are
/// dropped and counted.
pub const MAX_QUEUED_TRANSMITS: usize = 4096;

/// The most events queued.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// Settings of the filter service.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterServerConfig {
    /// How long a subscription lives without a refresh ([`SUBSCRIPTION_TTL`]).
    pub subscription_ttl: Duration,
    /// The most subscribed peers ([`DEFAULT_MAX_PEERS`]).
    pub max_peers: usize,
    /// The most topic pairs per peer ([`DEFAULT_MAX_CRITERIA_PER_PEER`]).
    pub max_criteria_per_peer: usize,
    /// Per-peer request rate limit (answered with 429), or none.
    pub rate_limit: Option<RateLimit>,
}

impl Default for FilterServerConfig {
    fn default() -> Self {
        FilterServerConfig {
            subscription_ttl: SUBSCRIPTION_TTL,
            max_peers: DEFAULT_MAX_PEERS,
            max_criteria_per_peer: DEFAULT_MAX_CRITERIA_PER_PEER,
            rate_limit: None,
        }
    }
}

/// What the filter service reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterServerEvent {
    /// A peer's subscriptions expired without a refresh and were removed.
    Expired {
        /// The peer.
        peer: PeerId,
    },
}

/// Counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterServerStats {
    /// Requests answered with 200.
    pub requests_ok: u64,
    /// Requests refused.
    pub requests_refused: u64,
    /// Messages pushed (one per subscriber).
    pub pushed: u64,
    /// Pushes dropped because the output queue was full.
    pub push_dropped: u64,
}

#[derive(Debug)]
struct PeerSubscriptions {
    criteria: BTreeSet<(PubsubTopic, ContentTopic)>,
    expires: Instant,
}

/// The filter v2 service node side.
#[derive(Debug)]
pub struct FilterServer {
    config: FilterServerConfig,
    peers: BTreeMap<PeerId, PeerSubscriptions>,
    index: BTreeMap<(PubsubTopic, ContentTopic), BTreeSet<PeerId>>,
    expiries: BTreeSet<(Instant, PeerId)>,
    limiter: Limiter,
    transmits: Queue<Transmit>,
    events: Queue<FilterServerEvent>,
    stats: FilterServerStats,
}

type Answer = Result<(), (u32, String)>;

impl FilterServer {
    /// An empty filter service.
    pub fn new(config: FilterServerConfig) -> Self {
        FilterServer {
            limiter: Limiter::new(
                config.rate_limit,
                config.max_peers.saturating_mul(4).max(16),
            ),
            config,
            peers: BTreeMap::new(),
            index: BTreeMap::new(),
            expiries: BTreeSet::new(),
            transmits: Queue::new(MAX_QUEUED_TRANSMITS),
            events: Queue::new(MAX_QUEUED_EVENTS),
            stats: FilterServerStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> FilterServerStats {
        self.stats
    }

    /// How many peers hold subscriptions.
    pub fn subscribed_peers(&self) -> usize {
        self.peers.len()
    }

    /// The topic pairs `peer` is subscribed to.
    pub fn subscriptions_of(&self, peer: PeerId) -> Vec<(PubsubTopic, ContentTopic)> {
        self.peers
            .get(&peer)
            .map(|s| s.criteria.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Answers one subscribe-protocol request frame.
    pub fn handle_request(&mut self, now: Now, from: PeerId, id: u64, frame: &[u8]) {
        let (request_id, answer) = self.answer(now, from, frame);
        let (code, desc) = match answer {
            Ok(()) => {
                self.stats.requests_ok += 1;
                (status::SUCCESS, None)
            }
            Err((code, desc)) => {
                self.stats.requests_refused += 1;
                (code, Some(desc))
            }
        };
        let response = proto::waku::FilterSubscribeResponse {
            request_id,
            status_code: code,
            status_desc: desc,
        };
        self.transmits.push(transmit(
            from,
            Protocol::FilterSubscribe,
            FrameKind::Response(id),
            response.encode_to_vec(),
        ));
    }

    fn answer(&mut self, now: Now, from: PeerId, frame: &[u8]) -> (String, Answer) {
        if frame.len() > MAX_REQUEST_LEN {
            return (
                String::new(),
                Err((status::BAD_REQUEST, "request too large".into())),
            );
        }
        let Ok(req) = proto::waku::FilterSubscribeRequest::decode(frame) else {
            return (
                String::new(),
                Err((status::BAD_REQUEST, "decode rpc failed".into())),
            );
        };
        if !self.limiter.allow(now.instant, from) {
            return (
                req.request_id,
                Err((status::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS".into())),
            );
        }
        let answer = match FilterSubscribeType::try_from(req.filter_subscribe_type) {
            Ok(FilterSubscribeType::SubscriberPing) => self.ping(now, from),
            Ok(FilterSubscribeType::Subscribe) => {
                parse_criteria(&req).and_then(|c| self.subscribe(now, from, c))
            }
            Ok(FilterSubscribeType::Unsubscribe) => {
                parse_criteria(&req).and_then(|c| self.unsubscribe(from, &c))
            }
            Ok(FilterSubscribeType::UnsubscribeAll) => {
                if self.peers.contains_key(&from) {
                    self.remove_peer(from);
                    Ok(())
                } else {
                    Err((status::NOT_FOUND, "peer has no subscriptions".into()))
                }
            }
            Err(_) => Err((status::BAD_REQUEST, "unknown filter subscribe type".into())),
        };
        (req.request_id, answer)
    }

    fn refresh(&mut self, now: Now, peer: PeerId) {
        let expires = after(now.instant, self.config.subscription_ttl);
        if let Some(s) = self.peers.get_mut(&peer) {
            self.expiries.remove(&(s.expires, peer));
            s.expires = expires;
            self.expiries.insert((expires, peer));
        }
    }

    fn ping(&mut self, now: Now, from: PeerId) -> Answer {
        if !self.peers.contains_key(&from) {
            return Err((status::NOT_FOUND, "peer has no subscriptions".into()));
        }
        self.refresh(now, from);
        Ok(())
    }

    fn subscribe(
        &mut self,
        now: Now,
        from: PeerId,
        criteria: Vec<(PubsubTopic, ContentTopic)>,
    ) -> Answer {
        let existing = self.peers.get(&from);
        if existing.is_none() && self.peers.len() >= self.config.max_peers {
            return Err((
                status::SERVICE_UNAVAILABLE,
                "node has reached maximum number of subscriptions".into(),
            ));
        }
        let new = criteria
            .iter()
            .filter(|c| existing.is_none_or(|s| !s.criteria.contains(*c)))
            .count();
        let have = existing.map_or(0, |s| s.criteria.len());
        if have.saturating_add(new) > self.config.max_criteria_per_peer {
            return Err((
                status::SERVICE_UNAVAILABLE,
                "peer has reached maximum number of filter criteria".into(),
            ));
        }
        let expires = after(now.instant, self.config.subscription_ttl);
        let subs = self.peers.entry(from).or_insert_with(|| PeerSubscriptions {
            criteria: BTreeSet::new(),
            expires,
        });
        for c in criteria {
            self.index.entry(c.clone()).or_default().insert(from);
            subs.criteria.insert(c);
        }
        self.expiries.insert((subs.expires, from));
        self.refresh(now, from);
        Ok(())
    }

    fn unsubscribe(&mut self, from: PeerId, criteria: &[(PubsubTopic, ContentTopic)]) -> Answer {
        let Some(subs) = self.peers.get_mut(&from) else {
            return Err((status::NOT_FOUND, "peer has no subscriptions".into()));
        };
        let mut removed = 0;
        for c in criteria {
            if subs.criteria.remove(c) {
                removed += 1;
                if let Some(set) = self.index.get_mut(c) {
                    set.remove(&from);
                    if set.is_empty() {
                        self.index.remove(c);
                    }
                }
            }
        }
        let empty = subs.criteria.is_empty();
        if empty {
            self.remove_peer(from);
        }
        if removed == 0 {
            return Err((
                status::NOT_FOUND,
                "peer was not subscribed to these criteria".into(),
            ));
        }
        Ok(())
    }

    fn remove_peer(&mut self, peer: PeerId) {
        if let Some(subs) = self.peers.remove(&peer) {
            self.expiries.remove(&(subs.expires, peer));
            for c in subs.criteria {
                if let Some(set) = self.index.get_mut(&c) {
                    set.remove(&peer);
                    if set.is_empty() {
                        self.index.remove(&c);
                    }
                }
            }
        }
    }

    /// Pushes a relayed message to every peer subscribed to its topics.
    pub fn handle_message(&mut self, now: Now, pubsub_topic: &PubsubTopic, message: &WakuMessage) {
        let key = (pubsub_topic.clone(), message.content_topic.clone());
        let Some(peers) = self.index.get(&key) else {
            return;
        };
        let bytes = proto::waku::MessagePush {
            waku_message: Some(proto::waku::WakuMessage::from(message)),
            pubsub_topic: Some(pubsub_topic.as_str().to_owned()),
        }
        .encode_to_vec();
        for peer in peers {
            let live = self
                .peers
                .get(peer)
                .is_some_and(|s| s.expires > now.instant);
            if !live {
                continue;
            }
            if self.transmits.push(transmit(
                *peer,
                Protocol::FilterPush,
                FrameKind::Stream,
                bytes.clone(),
            )) {
                self.stats.pushed += 1;
            } else {
                self.stats.push_dropped += 1;
            }
        }
    }

    /// The connection to `peer` is gone: pushes cannot reach it and a reconnecting peer may get
    /// another handle, so its subscriptions go (the client resubscribes).
    pub fn handle_disconnected(&mut self, peer: PeerId) {
        self.remove_peer(peer);
        self.limiter.forget(peer);
    }

    /// Removes the subscriptions that were not refreshed in time.
    pub fn handle_timeout(&mut self, now: Now) {
        while let Some(&(at, peer)) = self.expiries.first() {
            if at > now.instant {
                break;
            }
            self.expiries.remove(&(at, peer));
            if self.peers.get(&peer).is_some_and(|s| s.expires == at) {
                self.remove_peer(peer);
                self.events.push(FilterServerEvent::Expired { peer });
            }
        }
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<FilterServerEvent> {
        self.events.pop()
    }

    /// The next expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiries.first().map(|(t, _)| *t)
    }
}

/// The (pubsub, content) pairs of a subscribe or unsubscribe request.
fn parse_criteria(
    req: &proto::waku::FilterSubscribeRequest,
) -> Result<Vec<(PubsubTopic, ContentTopic)>, (u32, String)> {
    let (Some(pubsub), false) = (&req.pubsub_topic, req.content_topics.is_empty()) else {
        return Err((
            status::BAD_REQUEST,
            "pubsubTopic and contentTopics must be specified".into(),
        ));
    };
    if req.content_topics.len() > MAX_CONTENT_TOPICS_PER_REQUEST {
        return Err((
            status::BAD_REQUEST,
            format!("exceeds maximum content topics: {MAX_CONTENT_TOPICS_PER_REQUEST}"),
        ));
    }
    let pubsub = PubsubTopic::new(pubsub.as_str())
        .map_err(|e| (status::BAD_REQUEST, format!("invalid pubsub topic: {e}")))?;
    let mut out = BTreeSet::new();
    for t in &req.content_topics {
        let ct = ContentTopic::new(t.as_str())
            .map_err(|e| (status::BAD_REQUEST, format!("invalid content topic: {e}")))?;
        out.insert((pubsub.clone(), ct));
    }
    Ok(out.into_iter().collect())
}

impl Machine for FilterServer {
    type Event = FilterServerEvent;

    fn handle_connected(&mut self, _now: Now, _peer: PeerId, _protocols: &[Protocol]) {}

    fn handle_disconnected(&mut self, _now: Now, peer: PeerId) {
        FilterServer::handle_disconnected(self, peer);
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        if let (Protocol::FilterSubscribe, FrameKind::Request(id)) = (protocol, kind) {
            self.handle_request(now, from, id, frame);
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        FilterServer::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        FilterServer::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<FilterServerEvent> {
        FilterServer::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        FilterServer::poll_timeout(self)
    }

    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::FilterSubscribe]
    }
}
