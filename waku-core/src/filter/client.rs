//! The filter client: keeps the light node's subscriptions alive on a service node.
//!
//! The client holds the *wanted* subscriptions (pubsub topic → content topics) independently of
//! any service node, and keeps them confirmed on one service node chosen among the connected
//! peers that speak the filter subscribe protocol.
//!
//! - Every [`FilterClientConfig::ping_interval`] it pings the service node.
//! - A ping answered 404 means the node lost the subscriptions (it restarted): the client
//!   resubscribes at once.
//! - A ping or subscribe that fails or times out [`FilterClientConfig::max_failures`] times in a
//!   row, or a lost connection, makes the client move to another service node (the failed one is
//!   avoided for [`FilterClientConfig::peer_cooldown`] when there is a choice).
//! - Whenever confirmed subscriptions were lost, the client remembers since when it last knew
//!   them alive; once they are confirmed again it reports a [`FilterClientEvent::Backfill`] for
//!   that window (widened by [`FilterClientConfig::backfill_margin_nanos`] on both sides for clock
//!   skew), which the node answers from a store. Messages seen twice are removed by the node's
//!   deduplication, so the window errs on the wide side.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{
    FilterSubscribeType, MAX_CONTENT_TOPICS_PER_REQUEST, MAX_PUSH_LEN, MAX_RESPONSE_LEN, status,
};
use crate::message::{MessageHash, WakuMessage};
use crate::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use crate::service::{Pending, Queue, after, earliest, request_id_string, transmit};
use crate::topic::{ContentTopic, PubsubTopic};

/// The most (pubsub, content) topic pairs the client subscribes to: what a service node accepts
/// from one peer (nwaku `MaxFilterCriteriaPerPeer`).
pub const MAX_SUBSCRIPTIONS: usize = 1000;

/// The most service-node candidates remembered (connected peers speaking filter).
pub const MAX_CANDIDATES: usize = 64;

/// The most frames and events queued for the driver and the application.
pub const MAX_QUEUED: usize = 4096;

/// Settings of the filter client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterClientConfig {
    /// How often the service node is pinged (60 s, as js-waku and status-go do).
    pub ping_interval: Duration,
    /// How long to wait for an answer to a subscribe or ping.
    pub request_timeout: Duration,
    /// Failed pings or subscribes in a row before the service node is replaced (3, as js-waku).
    pub max_failures: u32,
    /// The wait before a failed ping or subscribe is retried.
    pub retry_interval: Duration,
    /// How long a replaced service node is avoided while another is available.
    pub peer_cooldown: Duration,
    /// How far a backfill window reaches beyond the gap on each side, in Unix nanoseconds; covers
    /// the ±20 s timestamp tolerance of the network.
    pub backfill_margin_nanos: i64,
}

impl Default for FilterClientConfig {
    fn default() -> Self {
        FilterClientConfig {
            ping_interval: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            max_failures: 3,
            retry_interval: Duration::from_secs(5),
            peer_cooldown: Duration::from_secs(120),
            backfill_margin_nanos: 21 * 1_000_000_000,
        }
    }
}

/// Why [`FilterClient::subscribe`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterClientError {
    /// No content topic was given.
    #[error("no content topics")]
    NoContentTopics,
    /// The subscriptions would exceed [`MAX_SUBSCRIPTIONS`].
    #[error("at most {MAX_SUBSCRIPTIONS} topic pairs can be subscribed")]
    TooManySubscriptions,
}

/// What the filter client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterClientEvent {
    /// A pushed message on a wanted topic.
    Message {
        /// The service node that pushed it.
        peer: PeerId,
        /// Its pubsub topic.
        pubsub_topic: PubsubTopic,
        /// Its hash.
        hash: MessageHash,
        /// The message.
        message: WakuMessage,
    },
    /// Content topics are confirmed on the service node.
    Subscribed {
        /// The service node.
        peer: PeerId,
        /// The pubsub topic.
        pubsub_topic: PubsubTopic,
        /// The content topics confirmed by this answer.
        content_topics: Vec<ContentTopic>,
    },
    /// The service node changed (`None`: none is available, subscriptions are not served until
    /// a filter-capable peer connects).
    ServicePeerChanged {
        /// The previous one.
        old: Option<PeerId>,
        /// The new one.
        new: Option<PeerId>,
    },
    /// A subscribe request was refused.
    SubscribeFailed {
        /// The service node.
        peer: PeerId,
        /// The status code (0 for a timeout or a lost connection).
        code: u32,
        /// Why.
        desc: String,
    },
    /// Messages of these topics may have been missed between `start` and `end` (Unix
    /// nanoseconds, `start` inclusive, `end` exclusive): fetch them from a store.
    Backfill {
        /// The pubsub topic.
        pubsub_topic: PubsubTopic,
        /// The content topics (at most [`MAX_CONTENT_TOPICS_PER_REQUEST`]).
        content_topics: Vec<ContentTopic>,
        /// Window start.
        start: i64,
        /// Window end.
        end: i64,
        /// The service node on which the subscriptions were lost (its own archive likely has
        /// the same gap, so another store is the better source).
        lost_on: PeerId,
    },
}

/// Counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterClientStats {
    /// Pushes delivered.
    pub pushes: u64,
    /// Pushes dropped: undecodable, invalid, from a peer we are not subscribed with, or on a
    /// topic we do not want.
    pub pushes_dropped: u64,
    /// Times the service node was replaced.
    pub service_changes: u64,
    /// Times subscriptions were found lost (404, failures, disconnects).
    pub losses: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Subscribe(PubsubTopic, Vec<ContentTopic>),
    Ping,
}

#[derive(Debug)]
struct Service {
    peer: PeerId,
    /// Pairs the node confirmed.
    confirmed: BTreeSet<(PubsubTopic, ContentTopic)>,
    /// Pairs with a subscribe in flight.
    requested: BTreeSet<(PubsubTopic, ContentTopic)>,
    /// The last wall-clock time the subscriptions were known to be alive on the node.
    alive_at: i64,
    next_ping: Option<Instant>,
    /// When to retry subscribing after a failure.
    retry_at: Option<Instant>,
    failures: u32,
}

/// The filter v2 light-node side (see the module docs).
#[derive(Debug)]
pub struct FilterClient {
    config: FilterClientConfig,
    rng: ChaCha20Rng,
    wanted: BTreeMap<PubsubTopic, BTreeSet<ContentTopic>>,
    candidates: BTreeMap<PeerId, Option<Instant>>,
    preferred: Option<PeerId>,
    service: Option<Service>,
    /// Pairs that lost their subscription, with the last time they were known alive and the
    /// node they were lost on.
    gaps: BTreeMap<(PubsubTopic, ContentTopic), (i64, PeerId)>,
    /// Peers we subscribed with and whose pushes we accept.
    subscribed_with: BTreeSet<PeerId>,
    pending: Pending<Request>,
    transmits: Queue<Transmit>,
    events: Queue<FilterClientEvent>,
    stats: FilterClientStats,
}

impl FilterClient {
    /// A client without subscriptions; request ids come from `seed`.
    pub fn new(config: FilterClientConfig, seed: [u8; 32]) -> Self {
        FilterClient {
            config,
            rng: ChaCha20Rng::from_seed(seed),
            wanted: BTreeMap::new(),
            candidates: BTreeMap::new(),
            preferred: None,
            service: None,
            gaps: BTreeMap::new(),
            subscribed_with: BTreeSet::new(),
            pending: Pending::new(),
            transmits: Queue::new(MAX_QUEUED),
            events: Queue::new(MAX_QUEUED),
            stats: FilterClientStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> FilterClientStats {
        self.stats
    }

    /// The current service node.
    pub fn service_peer(&self) -> Option<PeerId> {
        self.service.as_ref().map(|s| s.peer)
    }

    /// Whether every wanted subscription is confirmed on the service node.
    pub fn is_synced(&self) -> bool {
        let Some(s) = &self.service else {
            return self.wanted.is_empty();
        };
        self.wanted_pairs().all(|p| s.confirmed.contains(&p))
    }

    /// The wanted subscriptions.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&PubsubTopic, &ContentTopic)> {
        self.wanted
            .iter()
            .flat_map(|(p, cs)| cs.iter().map(move |c| (p, c)))
    }

    fn wanted_pairs(&self) -> impl Iterator<Item = (PubsubTopic, ContentTopic)> + '_ {
        self.subscriptions().map(|(p, c)| (p.clone(), c.clone()))
    }

    fn wanted_count(&self) -> usize {
        self.wanted.values().map(BTreeSet::len).sum()
    }

    /// Prefers `peer` as the service node when it is (or becomes) available.
    pub fn set_preferred_peer(&mut self, now: Now, peer: Option<PeerId>) {
        self.preferred = peer;
        if let Some(p) = peer
            && self.candidates.contains_key(&p)
            && self.service_peer() != Some(p)
        {
            self.switch_to(now, Some(p));
        }
    }

    /// Wants `content_topics` on `pubsub_topic` pushed; subscribes at once if a service node is
    /// available, otherwise as soon as one connects.
    pub fn subscribe(
        &mut self,
        now: Now,
        pubsub_topic: PubsubTopic,
        content_topics: impl IntoIterator<Item = ContentTopic>,
    ) -> Result<(), FilterClientError> {
        let topics: BTreeSet<ContentTopic> = content_topics.into_iter().collect();
        if topics.is_empty() {
            return Err(FilterClientError::NoContentTopics);
        }
        let have = self.wanted.get(&pubsub_topic);
        let new = topics
            .iter()
            .filter(|t| have.is_none_or(|h| !h.contains(*t)))
            .count();
        if self.wanted_count().saturating_add(new) > MAX_SUBSCRIPTIONS {
            return Err(FilterClientError::TooManySubscriptions);
        }
        self.wanted.entry(pubsub_topic).or_default().extend(topics);
        if self.service.is_none() {
            self.choose_service(now);
        }
        self.reconcile(now);
        Ok(())
    }

    /// Stops wanting `content_topics` on `pubsub_topic` (tells the service node, without
    /// waiting for its answer).
    pub fn unsubscribe(
        &mut self,
        _now: Now,
        pubsub_topic: &PubsubTopic,
        content_topics: impl IntoIterator<Item = ContentTopic>,
    ) {
        let Some(set) = self.wanted.get_mut(pubsub_topic) else {
            return;
        };
        let mut gone = Vec::new();
        for t in content_topics {
            if set.remove(&t) {
                gone.push(t);
            }
        }
        if set.is_empty() {
            self.wanted.remove(pubsub_topic);
        }
        for t in &gone {
            self.gaps.remove(&(pubsub_topic.clone(), t.clone()));
        }
        let Some(s) = &mut self.service else { return };
        let peer = s.peer;
        let confirmed: Vec<ContentTopic> = gone
            .into_iter()
            .filter(|t| {
                let key = (pubsub_topic.clone(), t.clone());
                s.requested.remove(&key);
                s.confirmed.remove(&key)
            })
            .collect();
        for chunk in confirmed.chunks(MAX_CONTENT_TOPICS_PER_REQUEST) {
            self.send_untracked(
                peer,
                FilterSubscribeType::Unsubscribe,
                Some(pubsub_topic),
                chunk,
            );
        }
    }

    /// Drops every subscription.
    pub fn unsubscribe_all(&mut self, _now: Now) {
        self.wanted.clear();
        self.gaps.clear();
        if let Some(s) = &mut self.service {
            s.confirmed.clear();
            s.requested.clear();
            let peer = s.peer;
            self.send_untracked(peer, FilterSubscribeType::UnsubscribeAll, None, &[]);
        }
    }

    /// A connection is up: a peer speaking filter becomes a candidate service node.
    pub fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        if !protocols.contains(&Protocol::FilterSubscribe) {
            return;
        }
        if self.candidates.len() >= MAX_CANDIDATES && !self.candidates.contains_key(&peer) {
            return;
        }
        self.candidates.entry(peer).or_insert(None);
        let better = self.preferred == Some(peer) && self.service_peer() != Some(peer);
        if self.service.is_none() || better {
            self.switch_to(now, Some(peer));
        }
    }

    /// A connection is gone: if it was the service node, its subscriptions are lost.
    pub fn handle_disconnected(&mut self, now: Now, peer: PeerId) {
        self.candidates.remove(&peer);
        self.subscribed_with.remove(&peer);
        for (_, req) in self.pending.remove_peer(peer) {
            if let Request::Subscribe(p, cs) = req {
                self.events.push(FilterClientEvent::SubscribeFailed {
                    peer,
                    code: 0,
                    desc: format!("disconnected ({} topics on {p})", cs.len()),
                });
            }
        }
        if self.service_peer() == Some(peer) {
            let next = self.pick(now);
            self.switch_to(now, next);
        }
    }

    /// Records the confirmed subscriptions of the service node as lost since they were last
    /// known alive.
    fn lose_subscriptions(&mut self) {
        let Some(s) = &mut self.service else { return };
        if s.confirmed.is_empty() {
            return;
        }
        self.stats.losses += 1;
        for pair in std::mem::take(&mut s.confirmed) {
            let since = s.alive_at;
            let peer = s.peer;
            self.gaps
                .entry(pair)
                .and_modify(|(t, _)| *t = (*t).min(since))
                .or_insert((since, peer));
        }
        s.requested.clear();
    }

    /// Chooses a service node among the candidates: the preferred one, else one not cooling down
    /// (lowest handle first, for determinism), else the one whose cooldown ends first.
    fn choose_service(&mut self, now: Now) {
        if let Some(p) = self.pick(now) {
            self.switch_to(now, Some(p));
        }
    }

    fn pick(&self, now: Now) -> Option<PeerId> {
        self.preferred
            .filter(|p| self.candidates.contains_key(p))
            .or_else(|| {
                self.candidates
                    .iter()
                    .find(|(_, c)| c.is_none_or(|t| t <= now.instant))
                    .map(|(p, _)| *p)
            })
            .or_else(|| {
                self.candidates
                    .iter()
                    .min_by_key(|(_, c)| *c)
                    .map(|(p, _)| *p)
            })
    }

    fn switch_to(&mut self, now: Now, peer: Option<PeerId>) {
        let old = self.service_peer();
        if old.is_some() && old == peer {
            return;
        }
        if let Some(o) = old {
            self.lose_subscriptions();
            // Tell the old node (if still connected) it can forget us; no answer is awaited.
            if self.candidates.contains_key(&o) {
                self.send_untracked(o, FilterSubscribeType::UnsubscribeAll, None, &[]);
                self.candidates
                    .insert(o, Some(after(now.instant, self.config.peer_cooldown)));
            }
            let _ = self.pending.remove_peer(o);
            self.stats.service_changes += 1;
        }
        self.service = peer.map(|p| Service {
            peer: p,
            confirmed: BTreeSet::new(),
            requested: BTreeSet::new(),
            alive_at: now.unix_nanos,
            next_ping: None,
            retry_at: None,
            failures: 0,
        });
        if old.is_some() || peer.is_some() {
            self.events
                .push(FilterClientEvent::ServicePeerChanged { old, new: peer });
        }
        self.reconcile(now);
    }

    /// Sends subscribe requests for the wanted pairs that are neither confirmed nor in flight.
    fn reconcile(&mut self, now: Now) {
        let Some(s) = &self.service else { return };
        if s.retry_at.is_some_and(|t| t > now.instant) {
            return;
        }
        let mut missing: BTreeMap<PubsubTopic, Vec<ContentTopic>> = BTreeMap::new();
        for (p, c) in self.wanted_pairs() {
            let key = (p, c);
            if !s.confirmed.contains(&key) && !s.requested.contains(&key) {
                missing.entry(key.0).or_default().push(key.1);
            }
        }
        let peer = s.peer;
        for (p, cs) in missing {
            for chunk in cs.chunks(MAX_CONTENT_TOPICS_PER_REQUEST) {
                if let Some(s) = &mut self.service {
                    s.requested
                        .extend(chunk.iter().map(|c| (p.clone(), c.clone())));
                }
                self.send(now, peer, Request::Subscribe(p.clone(), chunk.to_vec()));
            }
        }
    }

    fn encode_request(
        &mut self,
        kind: FilterSubscribeType,
        pubsub: Option<&PubsubTopic>,
        topics: &[ContentTopic],
    ) -> Vec<u8> {
        proto::waku::FilterSubscribeRequest {
            request_id: request_id_string(&mut self.rng),
            filter_subscribe_type: kind as i32,
            pubsub_topic: pubsub.map(|p| p.as_str().to_owned()),
            content_topics: topics.iter().map(|t| t.as_str().to_owned()).collect(),
        }
        .encode_to_vec()
    }

    fn send(&mut self, now: Now, peer: PeerId, req: Request) {
        let bytes = match &req {
            Request::Subscribe(p, cs) => {
                self.subscribed_with.insert(peer);
                self.encode_request(FilterSubscribeType::Subscribe, Some(p), cs)
            }
            Request::Ping => self.encode_request(FilterSubscribeType::SubscriberPing, None, &[]),
        };
        let id = self.pending.next_id();
        self.pending.insert(
            peer,
            id,
            after(now.instant, self.config.request_timeout),
            req,
        );
        self.transmits.push(transmit(
            peer,
            Protocol::FilterSubscribe,
            FrameKind::Request(id),
            bytes,
        ));
    }

    /// A request whose answer is not awaited (unsubscribes); a late answer is ignored.
    fn send_untracked(
        &mut self,
        peer: PeerId,
        kind: FilterSubscribeType,
        pubsub: Option<&PubsubTopic>,
        topics: &[ContentTopic],
    ) {
        let bytes = self.encode_request(kind, pubsub, topics);
        let id = self.pending.next_id();
        self.transmits.push(transmit(
            peer,
            Protocol::FilterSubscribe,
            FrameKind::Request(id),
            bytes,
        ));
    }

    /// Handles an answer on the subscribe protocol.
    pub fn handle_response(&mut self, now: Now, from: PeerId, id: u64, frame: &[u8]) {
        let Some(req) = self.pending.remove(from, id) else {
            return;
        };
        if self.service_peer() != Some(from) {
            return;
        }
        let (code, desc) = match proto::decode_bounded::<proto::waku::FilterSubscribeResponse>(
            frame,
            MAX_RESPONSE_LEN,
        ) {
            Ok(r) => (r.status_code, r.status_desc.unwrap_or_default()),
            Err(e) => (0, format!("undecodable response: {e}")),
        };
        let ok = (200..300).contains(&code);
        match (req, ok) {
            (Request::Subscribe(p, cs), true) => {
                if let Some(s) = &mut self.service {
                    s.failures = 0;
                    s.alive_at = s.alive_at.max(now.unix_nanos);
                    for c in &cs {
                        let key = (p.clone(), c.clone());
                        s.requested.remove(&key);
                        // A topic unsubscribed meanwhile stays out.
                        if self.wanted.get(&p).is_some_and(|w| w.contains(c)) {
                            s.confirmed.insert(key);
                        }
                    }
                    if s.next_ping.is_none() {
                        s.next_ping = Some(after(now.instant, self.config.ping_interval));
                    }
                }
                self.events.push(FilterClientEvent::Subscribed {
                    peer: from,
                    pubsub_topic: p.clone(),
                    content_topics: cs.clone(),
                });
                self.report_backfill(now, &p, &cs);
            }
            (Request::Subscribe(p, cs), false) => {
                if let Some(s) = &mut self.service {
                    for c in &cs {
                        s.requested.remove(&(p.clone(), c.clone()));
                    }
                }
                self.events.push(FilterClientEvent::SubscribeFailed {
                    peer: from,
                    code,
                    desc,
                });
                self.failure(now);
            }
            (Request::Ping, true) => {
                if let Some(s) = &mut self.service {
                    s.failures = 0;
                    s.alive_at = s.alive_at.max(now.unix_nanos);
                }
            }
            (Request::Ping, false) if code == status::NOT_FOUND => {
                // The node no longer knows us (it restarted or expired us): resubscribe now.
                self.lose_subscriptions();
                self.reconcile(now);
            }
            (Request::Ping, false) => self.failure(now),
        }
    }

    /// A ping or subscribe failed: retry later, or replace the node after too many failures.
    fn failure(&mut self, now: Now) {
        let Some(s) = &mut self.service else { return };
        s.failures += 1;
        let (failures, bad) = (s.failures, s.peer);
        if failures >= self.config.max_failures {
            self.candidates
                .insert(bad, Some(after(now.instant, self.config.peer_cooldown)));
            let next = self
                .candidates
                .iter()
                .find(|(p, c)| **p != bad && c.is_none_or(|t| t <= now.instant))
                .map(|(p, _)| *p);
            if next.is_some() {
                self.switch_to(now, next);
                return;
            }
        }
        let retry = after(now.instant, self.config.retry_interval);
        if let Some(s) = &mut self.service {
            if s.failures >= self.config.max_failures {
                // No other node: keep trying this one.
                s.failures = 0;
            }
            s.retry_at = Some(retry);
            if !s.confirmed.is_empty() {
                s.next_ping = Some(retry);
            }
        }
    }

    /// Reports the backfill windows of the just-confirmed topics that had a gap.
    fn report_backfill(&mut self, now: Now, pubsub: &PubsubTopic, topics: &[ContentTopic]) {
        let mut by_start: BTreeMap<(i64, PeerId), Vec<ContentTopic>> = BTreeMap::new();
        for t in topics {
            if let Some(gap) = self.gaps.remove(&(pubsub.clone(), t.clone())) {
                by_start.entry(gap).or_default().push(t.clone());
            }
        }
        let margin = self.config.backfill_margin_nanos;
        for ((since, lost_on), cs) in by_start {
            for chunk in cs.chunks(MAX_CONTENT_TOPICS_PER_REQUEST) {
                self.events.push(FilterClientEvent::Backfill {
                    pubsub_topic: pubsub.clone(),
                    content_topics: chunk.to_vec(),
                    start: since.saturating_sub(margin),
                    end: now.unix_nanos.saturating_add(margin),
                    lost_on,
                });
            }
        }
    }

    /// Handles a pushed message (a stream frame on the push protocol).
    pub fn handle_push(&mut self, now: Now, from: PeerId, frame: &[u8]) {
        match self.check_push(from, frame) {
            Some((pubsub_topic, message)) => {
                if let Some(s) = &mut self.service
                    && s.peer == from
                {
                    s.alive_at = s.alive_at.max(now.unix_nanos);
                }
                self.stats.pushes += 1;
                self.events.push(FilterClientEvent::Message {
                    peer: from,
                    hash: message.hash(&pubsub_topic),
                    pubsub_topic,
                    message,
                });
            }
            None => self.stats.pushes_dropped += 1,
        }
    }

    fn check_push(&self, from: PeerId, frame: &[u8]) -> Option<(PubsubTopic, WakuMessage)> {
        if !self.subscribed_with.contains(&from) {
            return None;
        }
        let push = proto::decode_bounded::<proto::waku::MessagePush>(frame, MAX_PUSH_LEN).ok()?;
        let pubsub = PubsubTopic::new(push.pubsub_topic?).ok()?;
        let message = WakuMessage::try_from(push.waku_message?).ok()?;
        let wanted = self
            .wanted
            .get(&pubsub)
            .is_some_and(|w| w.contains(&message.content_topic));
        wanted.then_some((pubsub, message))
    }

    /// Runs due timers: pings, retries and request deadlines.
    pub fn handle_timeout(&mut self, now: Now) {
        let expired = self.pending.expire(now.instant);
        let mut failed = false;
        for (peer, _, req) in expired {
            if self.service_peer() != Some(peer) {
                continue;
            }
            if let Request::Subscribe(p, cs) = &req {
                if let Some(s) = &mut self.service {
                    for c in cs {
                        s.requested.remove(&(p.clone(), c.clone()));
                    }
                }
                self.events.push(FilterClientEvent::SubscribeFailed {
                    peer,
                    code: 0,
                    desc: "timed out".into(),
                });
            }
            failed = true;
        }
        if failed {
            self.failure(now);
        }
        if self.service.is_none() {
            self.choose_service(now);
        }
        let mut ping = false;
        if let Some(s) = &mut self.service {
            if s.retry_at.is_some_and(|t| t <= now.instant) {
                s.retry_at = None;
            }
            if s.next_ping.is_some_and(|t| t <= now.instant) {
                s.next_ping = Some(after(now.instant, self.config.ping_interval));
                ping = !s.confirmed.is_empty();
            }
        }
        if ping && let Some(peer) = self.service_peer() {
            self.send(now, peer, Request::Ping);
        }
        self.reconcile(now);
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<FilterClientEvent> {
        self.events.pop()
    }

    /// The next timer: a ping, a retry, a request deadline or the end of a cooldown that would
    /// let a node without service pick one.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (ping, retry) = match &self.service {
            Some(s) => (s.next_ping, s.retry_at),
            None => (None, None),
        };
        let cooldown = if self.service.is_none() && !self.wanted.is_empty() {
            self.candidates.values().flatten().min().copied()
        } else {
            None
        };
        earliest([ping, retry, self.pending.next_deadline(), cooldown])
    }
}

impl Machine for FilterClient {
    type Event = FilterClientEvent;

    fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        FilterClient::handle_connected(self, now, peer, protocols);
    }

    fn handle_disconnected(&mut self, now: Now, peer: PeerId) {
        FilterClient::handle_disconnected(self, now, peer);
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        match (protocol, kind) {
            (Protocol::FilterSubscribe, FrameKind::Response(id)) => {
                self.handle_response(now, from, id, frame);
            }
            (Protocol::FilterPush, FrameKind::Stream | FrameKind::Request(_)) => {
                self.handle_push(now, from, frame);
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        FilterClient::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        FilterClient::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<FilterClientEvent> {
        FilterClient::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        FilterClient::poll_timeout(self)
    }

    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::FilterPush]
    }
}
