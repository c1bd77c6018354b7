//! Peer exchange (34/WAKU2-PEER-EXCHANGE, `/vac/waku/peer-exchange/2.0.0-alpha1`): a
//! resource-restricted node asks a service node for peers instead of running discovery itself.
//!
//! Records travel as opaque bytes in `PeerInfo.enr`. On the Waku network they are RLP-encoded
//! ENRs; status-rs keeps the record type pluggable through [`PeerRecord`], so the machines move
//! bytes and the application (or discv5 when it lands) decides what they mean. The server
//! serves a random sample of the records it was given (as the spec says, records learned from
//! discovery, never the node's own connections); records expire after
//! [`PeerExchangeServerConfig::record_ttl`] unless refreshed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use crate::service::{Limiter, Pending, Queue, RateLimit, after, transmit};

/// The largest record accepted, in bytes. An ENR is at most 300 bytes (EIP-778); the bound
/// leaves room for other record types while keeping a response small.
pub const MAX_RECORD_LEN: usize = 1024;

/// The most records one response carries (nwaku keeps a cache of 60 and serves from it).
pub const MAX_PEERS_PER_RESPONSE: usize = 60;

/// The most records the server keeps; the oldest goes first.
pub const MAX_CACHED_RECORDS: usize = 256;

/// The largest request decoded.
pub const MAX_REQUEST_LEN: usize = 1024;

/// The largest response decoded: a full response of maximal records.
pub const MAX_RESPONSE_LEN: usize = MAX_PEERS_PER_RESPONSE * (MAX_RECORD_LEN + 8) + 4096;

/// The most requests a client has in flight.
pub const MAX_IN_FLIGHT: usize = 64;

/// The most frames or events queued.
pub const MAX_QUEUED: usize = 1024;

/// Status codes (nwaku's additions to 34/).
pub mod status {
    /// Records follow.
    pub const SUCCESS: u32 = 200;
    /// Malformed request (no query, zero peers asked).
    pub const BAD_REQUEST: u32 = 400;
    /// Rate limited.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// No records to give.
    pub const SERVICE_UNAVAILABLE: u32 = 503;
}

/// A peer record type that travels in peer exchange (an ENR, or status-rs's own record).
pub trait PeerRecord: Sized {
    /// The bytes put in `PeerInfo.enr`.
    fn to_bytes(&self) -> Vec<u8>;
    /// Parses bytes received; `None` if they are not a valid record.
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerRecordError {
    /// The record is empty.
    #[error("empty record")]
    Empty,
    /// The record is longer than [`MAX_RECORD_LEN`].
    #[error("record of {0} bytes exceeds {MAX_RECORD_LEN}")]
    TooLarge(usize),
}

/// Settings of the peer-exchange service.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerExchangeServerConfig {
    /// How long a record is served after it was last added.
    pub record_ttl: Duration,
    /// Per-peer request rate limit (answered with 429), or none.
    pub rate_limit: Option<RateLimit>,
}

impl Default for PeerExchangeServerConfig {
    fn default() -> Self {
        PeerExchangeServerConfig {
            record_ttl: Duration::from_secs(30 * 60),
            rate_limit: None,
        }
    }
}

/// The peer-exchange service.
#[derive(Debug)]
pub struct PeerExchangeServer {
    config: PeerExchangeServerConfig,
    rng: ChaCha20Rng,
    /// Record → when it expires.
    records: BTreeMap<Vec<u8>, Instant>,
    limiter: Limiter,
    transmits: Queue<Transmit>,
}

impl PeerExchangeServer {
    /// An empty service; samples are drawn from `seed`.
    pub fn new(config: PeerExchangeServerConfig, seed: [u8; 32]) -> Self {
        PeerExchangeServer {
            limiter: Limiter::new(config.rate_limit, 4096),
            config,
            rng: ChaCha20Rng::from_seed(seed),
            records: BTreeMap::new(),
            transmits: Queue::new(MAX_QUEUED),
        }
    }

    /// Adds (or refreshes) a record, evicting the one closest to expiry when full.
    pub fn add_record_bytes(&mut self, now: Now, record: Vec<u8>) -> Result<(), PeerRecordError> {
        if record.is_empty() {
            return Err(PeerRecordError::Empty);
        }
        if record.len() > MAX_RECORD_LEN {
            return Err(PeerRecordError::TooLarge(record.len()));
        }
        if !self.records.contains_key(&record) && self.records.len() >= MAX_CACHED_RECORDS {
            let oldest = self
                .records
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(r, _)| r.clone());
            if let Some(r) = oldest {
                self.records.remove(&r);
            }
        }
        self.records
            .insert(record, after(now.instant, self.config.record_ttl));
        Ok(())
    }

    /// Adds a typed record.
    pub fn add_record<R: PeerRecord>(
        &mut self,
        now: Now,
        record: &R,
    ) -> Result<(), PeerRecordError> {
        self.add_record_bytes(now, record.to_bytes())
    }

    /// Removes a record.
    pub fn remove_record_bytes(&mut self, record: &[u8]) {
        self.records.remove(record);
    }

    /// How many records are held.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Answers one request frame.
    pub fn handle_request(&mut self, now: Now, from: PeerId, id: u64, frame: &[u8]) {
        let response = self.answer(now, from, frame);
        let bytes = proto::waku::PeerExchangeRpc {
            query: None,
            response: Some(response),
        }
        .encode_to_vec();
        self.transmits.push(transmit(
            from,
            Protocol::PeerExchange,
            FrameKind::Response(id),
            bytes,
        ));
    }

    fn answer(
        &mut self,
        now: Now,
        from: PeerId,
        frame: &[u8],
    ) -> proto::waku::PeerExchangeResponse {
        let refuse = |code: u32, desc: &str| proto::waku::PeerExchangeResponse {
            peer_infos: Vec::new(),
            status_code: Some(code),
            status_desc: Some(desc.to_owned()),
        };
        let Ok(rpc) = proto::decode_bounded::<proto::waku::PeerExchangeRpc>(frame, MAX_REQUEST_LEN)
        else {
            return refuse(status::BAD_REQUEST, "decode failed");
        };
        if !self.limiter.allow(now.instant, from) {
            return refuse(status::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS");
        }
        let wanted = rpc.query.and_then(|q| q.num_peers).unwrap_or(0);
        if wanted == 0 {
            return refuse(status::BAD_REQUEST, "request for zero peers");
        }
        self.expire(now);
        if self.records.is_empty() {
            return refuse(status::SERVICE_UNAVAILABLE, "no peers available");
        }
        let n = usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .min(MAX_PEERS_PER_RESPONSE)
            .min(self.records.len());
        // A partial Fisher-Yates shuffle over the record order: a uniform sample of n.
        let mut all: Vec<&Vec<u8>> = self.records.keys().collect();
        let len = all.len();
        for i in 0..n {
            let span = u64::try_from(len - i).unwrap_or(u64::MAX);
            let j = i + usize::try_from(self.rng.next_u64() % span).unwrap_or(0);
            all.swap(i, j);
        }
        proto::waku::PeerExchangeResponse {
            peer_infos: all
                .into_iter()
                .take(n)
                .map(|r| proto::waku::PeerInfo {
                    enr: Some(r.clone()),
                })
                .collect(),
            status_code: Some(status::SUCCESS),
            status_desc: None,
        }
    }

    fn expire(&mut self, now: Now) {
        self.records.retain(|_, t| *t > now.instant);
    }

    /// Drops expired records.
    pub fn handle_timeout(&mut self, now: Now) {
        self.expire(now);
    }

    /// Forgets a disconnected peer's rate-limit state.
    pub fn handle_disconnected(&mut self, peer: PeerId) {
        self.limiter.forget(peer);
    }

    /// The next answer to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop()
    }

    /// When the next record expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.records.values().min().copied()
    }
}

/// Identifies a request of a [`PeerExchangeClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PxRequestId(pub u64);

/// Why a peer-exchange request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerExchangeError {
    /// The service node answered with a non-2xx status.
    #[error("service node answered {code}: {desc}")]
    Status {
        /// The status code.
        code: u32,
        /// Its description.
        desc: String,
    },
    /// No answer in time.
    #[error("peer exchange timed out")]
    Timeout,
    /// The connection went away.
    #[error("service node disconnected")]
    Disconnected,
    /// The answer could not be decoded.
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// Why [`PeerExchangeClient::request`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerExchangeClientError {
    /// Zero peers asked for.
    #[error("ask for at least one peer")]
    ZeroPeers,
    /// [`MAX_IN_FLIGHT`] requests are waiting.
    #[error("too many requests in flight")]
    TooManyInFlight,
}

/// What the peer-exchange client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerExchangeClientEvent {
    /// Records arrived (each non-empty and at most [`MAX_RECORD_LEN`] bytes; decode them with
    /// [`PeerRecord::from_bytes`]).
    Records {
        /// The request.
        id: PxRequestId,
        /// The service node.
        peer: PeerId,
        /// The records.
        records: Vec<Vec<u8>>,
        /// Records dropped for their size, or beyond the count asked for.
        rejected: usize,
    },
    /// The request failed.
    Failed {
        /// The request.
        id: PxRequestId,
        /// The service node.
        peer: PeerId,
        /// Why.
        error: PeerExchangeError,
    },
}

/// Settings of the peer-exchange client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerExchangeClientConfig {
    /// How long to wait for an answer.
    pub request_timeout: Duration,
}

impl Default for PeerExchangeClientConfig {
    fn default() -> Self {
        PeerExchangeClientConfig {
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The peer-exchange client.
#[derive(Debug)]
pub struct PeerExchangeClient {
    config: PeerExchangeClientConfig,
    next: u64,
    pending: Pending<(PxRequestId, usize)>,
    transmits: Queue<Transmit>,
    events: Queue<PeerExchangeClientEvent>,
}

impl PeerExchangeClient {
    /// A client.
    pub fn new(config: PeerExchangeClientConfig) -> Self {
        PeerExchangeClient {
            config,
            next: 1,
            pending: Pending::new(),
            transmits: Queue::new(MAX_IN_FLIGHT),
            events: Queue::new(MAX_QUEUED),
        }
    }

    /// Asks `peer` for up to `num_peers` records (at most [`MAX_PEERS_PER_RESPONSE`] are kept).
    pub fn request(
        &mut self,
        now: Now,
        peer: PeerId,
        num_peers: u64,
    ) -> Result<PxRequestId, PeerExchangeClientError> {
        if num_peers == 0 {
            return Err(PeerExchangeClientError::ZeroPeers);
        }
        if self.pending.len() >= MAX_IN_FLIGHT {
            return Err(PeerExchangeClientError::TooManyInFlight);
        }
        let id = PxRequestId(self.next);
        self.next += 1;
        let bytes = proto::waku::PeerExchangeRpc {
            query: Some(proto::waku::PeerExchangeQuery {
                num_peers: Some(num_peers),
            }),
            response: None,
        }
        .encode_to_vec();
        let frame_id = self.pending.next_id();
        let cap = usize::try_from(num_peers)
            .unwrap_or(usize::MAX)
            .min(MAX_PEERS_PER_RESPONSE);
        self.pending.insert(
            peer,
            frame_id,
            after(now.instant, self.config.request_timeout),
            (id, cap),
        );
        self.transmits.push(transmit(
            peer,
            Protocol::PeerExchange,
            FrameKind::Request(frame_id),
            bytes,
        ));
        Ok(id)
    }

    /// Handles an answer frame.
    pub fn handle_response(&mut self, _now: Now, from: PeerId, frame_id: u64, frame: &[u8]) {
        let Some((id, cap)) = self.pending.remove(from, frame_id) else {
            return;
        };
        let event =
            match proto::decode_bounded::<proto::waku::PeerExchangeRpc>(frame, MAX_RESPONSE_LEN) {
                Err(e) => PeerExchangeClientEvent::Failed {
                    id,
                    peer: from,
                    error: PeerExchangeError::BadResponse(e.to_string()),
                },
                Ok(rpc) => match rpc.response {
                    None => PeerExchangeClientEvent::Failed {
                        id,
                        peer: from,
                        error: PeerExchangeError::BadResponse("no response".into()),
                    },
                    // An absent status is an older node's success.
                    Some(r) if r.status_code.is_none_or(|c| (200..300).contains(&c)) => {
                        let mut records = Vec::new();
                        let mut rejected = 0;
                        for info in r.peer_infos {
                            match info.enr {
                                Some(b)
                                    if !b.is_empty()
                                        && b.len() <= MAX_RECORD_LEN
                                        && records.len() < cap =>
                                {
                                    records.push(b);
                                }
                                _ => rejected += 1,
                            }
                        }
                        PeerExchangeClientEvent::Records {
                            id,
                            peer: from,
                            records,
                            rejected,
                        }
                    }
                    Some(r) => PeerExchangeClientEvent::Failed {
                        id,
                        peer: from,
                        error: PeerExchangeError::Status {
                            code: r.status_code.unwrap_or(0),
                            desc: r.status_desc.unwrap_or_default(),
                        },
                    },
                },
            };
        self.events.push(event);
    }

    /// Fails the requests to a peer that went away.
    pub fn handle_disconnected(&mut self, peer: PeerId) {
        for (_, (id, _)) in self.pending.remove_peer(peer) {
            self.events.push(PeerExchangeClientEvent::Failed {
                id,
                peer,
                error: PeerExchangeError::Disconnected,
            });
        }
    }

    /// Fails late requests.
    pub fn handle_timeout(&mut self, now: Now) {
        for (peer, _, (id, _)) in self.pending.expire(now.instant) {
            self.events.push(PeerExchangeClientEvent::Failed {
                id,
                peer,
                error: PeerExchangeError::Timeout,
            });
        }
    }

    /// The next request to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<PeerExchangeClientEvent> {
        self.events.pop()
    }

    /// The next answer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.next_deadline()
    }
}

impl Machine for PeerExchangeClient {
    type Event = PeerExchangeClientEvent;

    fn handle_connected(&mut self, _now: Now, _peer: PeerId, _protocols: &[Protocol]) {}

    fn handle_disconnected(&mut self, _now: Now, peer: PeerId) {
        PeerExchangeClient::handle_disconnected(self, peer);
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        if let (Protocol::PeerExchange, FrameKind::Response(id)) = (protocol, kind) {
            self.handle_response(now, from, id, frame);
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        PeerExchangeClient::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        PeerExchangeClient::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<PeerExchangeClientEvent> {
        PeerExchangeClient::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        PeerExchangeClient::poll_timeout(self)
    }

    fn protocols(&self) -> Vec<Protocol> {
        Vec::new()
    }
}
