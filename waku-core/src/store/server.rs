//! The store service: archives relayed messages and answers store v3 queries.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use prost::Message as _;

use super::{
    ArchivedMessage, InvalidQuery, MAX_TIMESTAMP_DRIFT_NANOS, MessageStore, QueryError, StoreQuery,
    run_query, status,
};
use crate::message::{MessageHash, WakuMessage};
use crate::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use crate::service::{Limiter, Queue, RateLimit, after, earliest, transmit};
use crate::topic::PubsubTopic;

/// The most messages waiting to be written. Relayed messages are batched into one transaction
/// (that is what makes 20 000 inserts per second possible); if the database stops accepting
/// writes, newer messages are dropped beyond this many rather than held without bound.
pub const MAX_PENDING_ARCHIVE: usize = 10_000;

/// The most responses and events queued for the driver. A driver drains after every input, so
/// this is only reached by a driver that stopped draining; requests are then dropped.
pub const MAX_QUEUED: usize = 1024;

/// How many peers the rate limiter tracks at once.
pub const MAX_RATE_LIMITED_PEERS: usize = 4096;

/// Thirty days, the design article's retention ("saved in full nodes for up to 30 days").
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// When old messages are removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Messages whose timestamp is older than this are deleted ([`DEFAULT_RETENTION`]).
    pub max_age: Option<Duration>,
    /// At most this many messages are kept, the oldest going first.
    pub max_messages: Option<u64>,
    /// How often the policy runs (nwaku: every 30 minutes).
    pub interval: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            max_age: Some(DEFAULT_RETENTION),
            max_messages: None,
            interval: Duration::from_secs(30 * 60),
        }
    }
}

/// Settings of the store service.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreServerConfig {
    /// The retention policy.
    pub retention: RetentionPolicy,
    /// How far a message's timestamp may be from the node's clock to be archived
    /// (±[`MAX_TIMESTAMP_DRIFT_NANOS`] by default).
    pub max_drift_nanos: i64,
    /// Messages written per transaction; a full batch is written at once.
    pub batch_size: usize,
    /// The longest a message waits for its batch to fill before it is written anyway.
    pub flush_interval: Duration,
    /// Per-peer query rate limit (answered with 429), or none.
    pub rate_limit: Option<RateLimit>,
}

impl Default for StoreServerConfig {
    fn default() -> Self {
        StoreServerConfig {
            retention: RetentionPolicy::default(),
            max_drift_nanos: MAX_TIMESTAMP_DRIFT_NANOS,
            batch_size: 256,
            flush_interval: Duration::from_millis(100),
            rate_limit: None,
        }
    }
}

/// What [`StoreServer::archive`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveOutcome {
    /// Queued for the next batch write.
    Queued,
    /// Not archived: the message is ephemeral.
    Ephemeral,
    /// Not archived: the message has no (or a zero) timestamp.
    NoTimestamp,
    /// Not archived: the timestamp is further than the allowed drift from the node's clock.
    OutsideTimeWindow,
    /// Not archived: the same message is already waiting to be written.
    Duplicate,
    /// Not archived: [`MAX_PENDING_ARCHIVE`] messages are already waiting.
    QueueFull,
}

/// What the store service reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreServerEvent {
    /// Writing a batch failed; the messages stay queued and the write is retried.
    ArchiveFailed {
        /// The backend's error.
        error: String,
        /// Messages waiting.
        pending: usize,
    },
    /// The retention policy ran.
    RetentionApplied {
        /// Messages removed for their age.
        by_age: u64,
        /// Messages removed to respect the count limit.
        by_count: u64,
    },
    /// The retention policy failed; it runs again at the next interval.
    RetentionFailed {
        /// The backend's error.
        error: String,
    },
}

/// Counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreServerStats {
    /// Queries answered with 200.
    pub queries_served: u64,
    /// Queries refused (400, 429, 503).
    pub queries_refused: u64,
    /// Messages written to the archive (new ones; duplicates not counted).
    pub archived: u64,
    /// Messages not archived by the archive rules or a full queue.
    pub not_archived: u64,
}

/// The store service (13/WAKU2-STORE v3 server side).
///
/// Inputs: [`StoreServer::archive`] for every relayed message, [`StoreServer::handle_request`]
/// for every request frame, [`StoreServer::handle_timeout`] at [`StoreServer::poll_timeout`].
/// Outputs: responses from [`StoreServer::poll_transmit`] (tagged [`FrameKind::Response`] with
/// the request's id), reports from [`StoreServer::poll_event`].
pub struct StoreServer {
    store: Box<dyn MessageStore + Send>,
    config: StoreServerConfig,
    pending: Vec<ArchivedMessage>,
    pending_hashes: BTreeSet<MessageHash>,
    flush_at: Option<Instant>,
    retention_at: Instant,
    limiter: Limiter,
    transmits: Queue<Transmit>,
    events: Queue<StoreServerEvent>,
    stats: StoreServerStats,
}

impl std::fmt::Debug for StoreServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreServer")
            .field("pending", &self.pending.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl StoreServer {
    /// A store service over `store`. The first retention run is one interval from `now`.
    pub fn new(store: Box<dyn MessageStore + Send>, config: StoreServerConfig, now: Now) -> Self {
        let retention_at = after(now.instant, config.retention.interval);
        StoreServer {
            store,
            limiter: Limiter::new(config.rate_limit, MAX_RATE_LIMITED_PEERS),
            config,
            pending: Vec::new(),
            pending_hashes: BTreeSet::new(),
            flush_at: None,
            retention_at,
            transmits: Queue::new(MAX_QUEUED),
            events: Queue::new(MAX_QUEUED),
            stats: StoreServerStats::default(),
        }
    }

    /// The archive.
    pub fn store_mut(&mut self) -> &mut (dyn MessageStore + Send) {
        &mut *self.store
    }

    /// Counters.
    pub fn stats(&self) -> StoreServerStats {
        self.stats
    }

    /// Messages waiting for their batch write.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Offers a relayed message to the archive under the archive rules: not ephemeral, a
    /// non-zero timestamp within the allowed drift of `now.unix_nanos`, not a duplicate. Accepted
    /// messages are written in batches (at once when the batch is full, otherwise after
    /// [`StoreServerConfig::flush_interval`], and always before a query is answered).
    pub fn archive(
        &mut self,
        now: Now,
        pubsub_topic: &PubsubTopic,
        message: &WakuMessage,
    ) -> ArchiveOutcome {
        let outcome = self.check(now, pubsub_topic, message);
        if outcome != ArchiveOutcome::Queued {
            self.stats.not_archived += 1;
            return outcome;
        }
        let m = ArchivedMessage::new(pubsub_topic.clone(), message.clone());
        if !self.pending_hashes.insert(m.hash) {
            self.stats.not_archived += 1;
            return ArchiveOutcome::Duplicate;
        }
        self.pending.push(m);
        if self.pending.len() >= self.config.batch_size.max(1) {
            self.flush();
        } else if self.flush_at.is_none() {
            self.flush_at = Some(after(now.instant, self.config.flush_interval));
        }
        ArchiveOutcome::Queued
    }

    fn check(
        &self,
        now: Now,
        _pubsub_topic: &PubsubTopic,
        message: &WakuMessage,
    ) -> ArchiveOutcome {
        if message.ephemeral {
            return ArchiveOutcome::Ephemeral;
        }
        let Some(ts) = message.timestamp.filter(|t| *t != 0) else {
            return ArchiveOutcome::NoTimestamp;
        };
        if ts.abs_diff(now.unix_nanos) > self.config.max_drift_nanos.unsigned_abs() {
            return ArchiveOutcome::OutsideTimeWindow;
        }
        if self.pending.len() >= MAX_PENDING_ARCHIVE {
            return ArchiveOutcome::QueueFull;
        }
        ArchiveOutcome::Queued
    }

    /// Writes the waiting messages now; returns how many were new. On failure they stay queued.
    pub fn flush(&mut self) -> usize {
        self.flush_at = None;
        if self.pending.is_empty() {
            return 0;
        }
        match self.store.insert(&self.pending) {
            Ok(n) => {
                self.stats.archived += u64::try_from(n).unwrap_or(u64::MAX);
                self.pending.clear();
                self.pending_hashes.clear();
                n
            }
            Err(e) => {
                self.events.push(StoreServerEvent::ArchiveFailed {
                    error: e.to_string(),
                    pending: self.pending.len(),
                });
                0
            }
        }
    }

    /// Answers one store request frame from `from`, tagged with request id `id`.
    pub fn handle_request(&mut self, now: Now, from: PeerId, id: u64, frame: &[u8]) {
        let response = self.answer(now, from, frame);
        if response.status_code == Some(status::SUCCESS) {
            self.stats.queries_served += 1;
        } else {
            self.stats.queries_refused += 1;
        }
        self.transmits.push(transmit(
            from,
            Protocol::StoreQuery,
            FrameKind::Response(id),
            response.encode_to_vec(),
        ));
    }

    fn answer(&mut self, now: Now, from: PeerId, frame: &[u8]) -> proto::waku::StoreQueryResponse {
        let refuse =
            |request_id: String, code: u32, desc: String| proto::waku::StoreQueryResponse {
                request_id,
                status_code: Some(code),
                status_desc: Some(desc),
                ..Default::default()
            };
        if !self.limiter.allow(now.instant, from) {
            let request_id = request_id_of(frame);
            return refuse(
                request_id,
                status::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS".into(),
            );
        }
        let (request_id, query) = match StoreQuery::decode(frame) {
            Ok(x) => x,
            Err((request_id, e)) => {
                return refuse(request_id, status::BAD_REQUEST, bad_request(&e));
            }
        };
        self.flush();
        match run_query(&mut *self.store, &query) {
            Ok(page) => proto::waku::StoreQueryResponse {
                request_id,
                status_code: Some(status::SUCCESS),
                status_desc: None,
                messages: page
                    .entries
                    .into_iter()
                    .map(|e| proto::waku::WakuMessageKeyValue {
                        message_hash: Some(e.hash.0.to_vec()),
                        message: query
                            .include_data
                            .then(|| proto::waku::WakuMessage::from(e.message)),
                        pubsub_topic: Some(e.pubsub_topic.into_string()),
                    })
                    .collect(),
                pagination_cursor: page.cursor.map(|c| c.0.to_vec()),
            },
            Err(QueryError::UnknownCursor) => refuse(
                request_id,
                status::BAD_REQUEST,
                "BAD_REQUEST: cursor not found".into(),
            ),
            Err(QueryError::Store(e)) => refuse(
                request_id,
                status::SERVICE_UNAVAILABLE,
                format!("SERVICE_UNAVAILABLE: {e}"),
            ),
        }
    }

    /// Runs due timers: the batch write and the retention policy.
    pub fn handle_timeout(&mut self, now: Now) {
        if self.flush_at.is_some_and(|t| t <= now.instant) {
            self.flush();
            if !self.pending.is_empty() {
                // The write failed; try again after another interval.
                self.flush_at = Some(after(now.instant, self.config.flush_interval));
            }
        }
        if self.retention_at <= now.instant {
            self.retention_at = after(
                now.instant,
                self.config.retention.interval.max(Duration::from_secs(1)),
            );
            self.apply_retention(now);
        }
    }

    /// Applies the retention policy now (the timer does this every interval).
    pub fn apply_retention(&mut self, now: Now) {
        self.flush();
        let mut by_age = 0;
        let mut by_count = 0;
        if let Some(age) = self.config.retention.max_age {
            let age = i64::try_from(age.as_nanos()).unwrap_or(i64::MAX);
            match self.store.delete_before(now.unix_nanos.saturating_sub(age)) {
                Ok(n) => by_age = n,
                Err(e) => {
                    self.events.push(StoreServerEvent::RetentionFailed {
                        error: e.to_string(),
                    });
                    return;
                }
            }
        }
        if let Some(max) = self.config.retention.max_messages {
            match self.store.truncate(max) {
                Ok(n) => by_count = n,
                Err(e) => {
                    self.events.push(StoreServerEvent::RetentionFailed {
                        error: e.to_string(),
                    });
                    return;
                }
            }
        }
        self.events
            .push(StoreServerEvent::RetentionApplied { by_age, by_count });
    }

    /// The next response to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop()
    }

    /// The next report.
    pub fn poll_event(&mut self) -> Option<StoreServerEvent> {
        self.events.pop()
    }

    /// When [`StoreServer::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest([self.flush_at, Some(self.retention_at)])
    }
}

/// The text of a 400 answer, in nwaku's style.
fn bad_request(e: &InvalidQuery) -> String {
    format!("BAD_REQUEST: {e}")
}

/// The request id of a frame that is refused before full validation (best effort).
fn request_id_of(frame: &[u8]) -> String {
    if frame.len() > super::MAX_REQUEST_LEN {
        return String::new();
    }
    proto::waku::StoreQueryRequest::decode(frame)
        .map(|r| r.request_id)
        .unwrap_or_default()
}

impl Machine for StoreServer {
    type Event = StoreServerEvent;

    fn handle_connected(&mut self, _now: Now, _peer: PeerId, _protocols: &[Protocol]) {}

    fn handle_disconnected(&mut self, _now: Now, peer: PeerId) {
        self.limiter.forget(peer);
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        if let (Protocol::StoreQuery, FrameKind::Request(id)) = (protocol, kind) {
            self.handle_request(now, from, id, frame);
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        StoreServer::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        StoreServer::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<StoreServerEvent> {
        StoreServer::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        StoreServer::poll_timeout(self)
    }

    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::StoreQuery]
    }
}
