//! Lightpush: a light node hands a message to a service node, which publishes it through its
//! relay. v3 (`/vac/waku/lightpush/3.0.0`, WIRE.md B.11) with a server and a client, and the
//! server side of the legacy v2 (`/vac/waku/lightpush/2.0.0-beta1`) for older clients.
//!
//! The server validates the message and answers with a status code and, on success, the number
//! of relay peers the message went to:
//!
//! | case | v3 code |
//! |---|---|
//! | published | 200, `relay_peer_count` set |
//! | no relay peer (a lone service node) | 200 with `relay_peer_count = 0` by default ([`NoPeersPolicy::Accept`]): js-waku treats anything else as failure, and the message still reaches the node's own store and filter subscribers; [`NoPeersPolicy::Reject`] answers 505 as nwaku does |
//! | undecodable request, no message, bad pubsub topic | 400 |
//! | message larger than the limit | 413 |
//! | invalid message (bad meta, timestamp outside the window, refused by a validator) | 420 |
//! | pubsub topic the node does not relay | 421 |
//! | rate limited | 429 |
//! | relay failure | 503 |
//!
//! The legacy protocol carries the same outcome as `is_success` and an `info` text.

use std::time::{Duration, Instant};

use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::message::{MAX_MESSAGE_SIZE, MessageError, MessageHash, WakuMessage};
use crate::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use crate::service::{Limiter, Pending, Queue, RateLimit, after, request_id_string, transmit};
use crate::topic::{PubsubTopic, autoshard};

/// The largest request decoded: one maximal message plus envelope (the protocol's frame limit).
pub const MAX_REQUEST_LEN: usize = MAX_MESSAGE_SIZE + 64 * 1024;

/// The largest response decoded by the client.
pub const MAX_RESPONSE_LEN: usize = 16 * 1024;

/// The most pushes a client has in flight; [`LightPushClient::push`] refuses more.
pub const MAX_IN_FLIGHT: usize = 256;

/// The most frames or events queued.
pub const MAX_QUEUED: usize = 1024;

/// Status codes of lightpush v3 (the spec's and nwaku's).
pub mod status {
    /// Published.
    pub const SUCCESS: u32 = 200;
    /// Malformed request.
    pub const BAD_REQUEST: u32 = 400;
    /// The message is too large.
    pub const PAYLOAD_TOO_LARGE: u32 = 413;
    /// The message is invalid (nwaku).
    pub const INVALID_MESSAGE: u32 = 420;
    /// The node does not serve the pubsub topic.
    pub const UNSUPPORTED_PUBSUB_TOPIC: u32 = 421;
    /// Rate limited.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// Internal error.
    pub const INTERNAL_SERVER_ERROR: u32 = 500;
    /// The service is unavailable (the spec's code for "no peers").
    pub const SERVICE_NOT_AVAILABLE: u32 = 503;
    /// No RLN proof could be attached (nwaku).
    pub const OUT_OF_RLN_PROOF: u32 = 504;
    /// No relay peer to publish to (nwaku).
    pub const NO_PEERS_TO_RELAY: u32 = 505;
}

/// Why the relay refused a message handed to [`Publish::publish`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishRejected {
    /// The node does not relay this pubsub topic.
    #[error("unsupported pubsub topic")]
    UnsupportedTopic,
    /// The message failed validation.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The message was already published or seen.
    #[error("duplicate message")]
    Duplicate,
    /// The relay is unavailable.
    #[error("relay unavailable: {0}")]
    Unavailable(String),
}

/// Where a lightpush server publishes: the node's relay (and its own store and filter
/// subscribers). Returns how many relay peers the message was sent to.
pub trait Publish {
    /// Publishes `message` on `pubsub_topic`.
    fn publish(
        &mut self,
        now: Now,
        pubsub_topic: &PubsubTopic,
        message: &WakuMessage,
    ) -> Result<usize, PublishRejected>;
}

/// What the server answers when the relay has no peer for the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoPeersPolicy {
    /// 200 with `relay_peer_count = 0` (what js-waku needs of a lone service node, WIRE.md B.28).
    #[default]
    Accept,
    /// 505 `NO_PEERS_TO_RELAY`, as nwaku.
    Reject,
}

/// Settings of the lightpush service.
#[derive(Debug, Clone, PartialEq)]
pub struct LightPushServerConfig {
    /// `(cluster, shard count)` for autosharding requests that name no pubsub topic; `None`
    /// answers such requests 400.
    pub autosharding: Option<(u16, u16)>,
    /// What to answer when the relay has no peer.
    pub no_peers: NoPeersPolicy,
    /// The largest message accepted, encoded ([`MAX_MESSAGE_SIZE`]).
    pub max_message_size: usize,
    /// Per-peer request rate limit (answered with 429), or none.
    pub rate_limit: Option<RateLimit>,
}

impl Default for LightPushServerConfig {
    fn default() -> Self {
        LightPushServerConfig {
            autosharding: None,
            no_peers: NoPeersPolicy::Accept,
            max_message_size: MAX_MESSAGE_SIZE,
            rate_limit: None,
        }
    }
}

/// What the lightpush service reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LightPushServerEvent {
    /// A message was published for a peer.
    Published {
        /// The peer that pushed it.
        peer: PeerId,
        /// The pubsub topic.
        pubsub_topic: PubsubTopic,
        /// The message hash.
        hash: MessageHash,
        /// Relay peers it went to.
        relay_peers: usize,
    },
}

/// The outcome of one push, before it is encoded for v3 or the legacy protocol.
struct Outcome {
    code: u32,
    desc: Option<String>,
    relay_peers: Option<u32>,
}

impl Outcome {
    fn refuse(code: u32, desc: impl Into<String>) -> Self {
        Outcome {
            code,
            desc: Some(desc.into()),
            relay_peers: None,
        }
    }
}

/// The lightpush service (v3 and legacy v2).
#[derive(Debug)]
pub struct LightPushServer {
    config: LightPushServerConfig,
    limiter: Limiter,
    transmits: Queue<Transmit>,
    events: Queue<LightPushServerEvent>,
}

impl LightPushServer {
    /// A lightpush service.
    pub fn new(config: LightPushServerConfig) -> Self {
        LightPushServer {
            limiter: Limiter::new(config.rate_limit, 4096),
            config,
            transmits: Queue::new(MAX_QUEUED),
            events: Queue::new(MAX_QUEUED),
        }
    }

    /// Handles a request frame on [`Protocol::LightPush`] or [`Protocol::LightPushLegacy`],
    /// publishing through `relay`, and queues the answer.
    pub fn handle_request(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        id: u64,
        frame: &[u8],
        relay: &mut dyn Publish,
    ) {
        let bytes = match protocol {
            Protocol::LightPush => {
                let (request_id, out) = if frame.len() > MAX_REQUEST_LEN {
                    (
                        String::new(),
                        Outcome::refuse(status::PAYLOAD_TOO_LARGE, "request too large"),
                    )
                } else {
                    match proto::waku::LightPushRequest::decode(frame) {
                        Err(_) => (
                            String::new(),
                            Outcome::refuse(status::BAD_REQUEST, "decode failed"),
                        ),
                        Ok(req) => {
                            let out = self.push(now, from, req.pubsub_topic, req.message, relay);
                            (req.request_id, out)
                        }
                    }
                };
                proto::waku::LightPushResponse {
                    request_id,
                    status_code: out.code,
                    status_desc: out.desc,
                    relay_peer_count: out.relay_peers,
                }
                .encode_to_vec()
            }
            Protocol::LightPushLegacy => {
                let (request_id, out) = if frame.len() > MAX_REQUEST_LEN {
                    (
                        String::new(),
                        Outcome::refuse(status::PAYLOAD_TOO_LARGE, "request too large"),
                    )
                } else {
                    match proto::waku::PushRpc::decode(frame) {
                        Err(_) => (
                            String::new(),
                            Outcome::refuse(status::BAD_REQUEST, "decode failed"),
                        ),
                        Ok(rpc) => match rpc.request {
                            None => (
                                rpc.request_id,
                                Outcome::refuse(status::BAD_REQUEST, "no request"),
                            ),
                            Some(r) => {
                                let topic = Some(r.pubsub_topic).filter(|t| !t.is_empty());
                                let out = self.push(now, from, topic, r.message, relay);
                                (rpc.request_id, out)
                            }
                        },
                    }
                };
                let ok = (200..300).contains(&out.code);
                proto::waku::PushRpc {
                    request_id,
                    request: None,
                    response: Some(proto::waku::PushResponse {
                        is_success: ok,
                        info: if ok {
                            Some("OK".into())
                        } else {
                            Some(out.desc.unwrap_or_else(|| format!("error {}", out.code)))
                        },
                    }),
                }
                .encode_to_vec()
            }
            _ => return,
        };
        self.transmits
            .push(transmit(from, protocol, FrameKind::Response(id), bytes));
    }

    fn push(
        &mut self,
        now: Now,
        from: PeerId,
        pubsub_topic: Option<String>,
        message: Option<proto::waku::WakuMessage>,
        relay: &mut dyn Publish,
    ) -> Outcome {
        if !self.limiter.allow(now.instant, from) {
            return Outcome::refuse(status::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS");
        }
        let Some(raw) = message else {
            return Outcome::refuse(status::BAD_REQUEST, "no message in request");
        };
        let size = raw.encoded_len();
        if size > self.config.max_message_size {
            return Outcome::refuse(
                status::PAYLOAD_TOO_LARGE,
                format!(
                    "message of {size} bytes exceeds {}",
                    self.config.max_message_size
                ),
            );
        }
        let message = match WakuMessage::try_from(raw) {
            Ok(m) => m,
            Err(MessageError::TooLarge { len, max }) => {
                return Outcome::refuse(
                    status::PAYLOAD_TOO_LARGE,
                    format!("message of {len} bytes exceeds {max}"),
                );
            }
            Err(e) => return Outcome::refuse(status::INVALID_MESSAGE, e.to_string()),
        };
        let topic = match pubsub_topic {
            Some(t) => match PubsubTopic::new(t) {
                Ok(t) => t,
                Err(e) => {
                    return Outcome::refuse(
                        status::BAD_REQUEST,
                        format!("invalid pubsub topic: {e}"),
                    );
                }
            },
            None => match self.config.autosharding {
                None => {
                    return Outcome::refuse(status::BAD_REQUEST, "pubsub topic required");
                }
                Some((cluster, shards)) => match autoshard(&message.content_topic, cluster, shards)
                {
                    Ok(t) => t,
                    Err(e) => {
                        return Outcome::refuse(
                            status::BAD_REQUEST,
                            format!("cannot autoshard the content topic: {e}"),
                        );
                    }
                },
            },
        };
        match relay.publish(now, &topic, &message) {
            Ok(0) if self.config.no_peers == NoPeersPolicy::Reject => {
                Outcome::refuse(status::NO_PEERS_TO_RELAY, "no peers to relay")
            }
            Ok(n) => {
                self.events.push(LightPushServerEvent::Published {
                    peer: from,
                    hash: message.hash(&topic),
                    pubsub_topic: topic,
                    relay_peers: n,
                });
                Outcome {
                    code: status::SUCCESS,
                    desc: None,
                    relay_peers: Some(u32::try_from(n).unwrap_or(u32::MAX)),
                }
            }
            Err(PublishRejected::UnsupportedTopic) => Outcome::refuse(
                status::UNSUPPORTED_PUBSUB_TOPIC,
                format!("unsupported pubsub topic {topic}"),
            ),
            Err(PublishRejected::Invalid(e)) => Outcome::refuse(status::INVALID_MESSAGE, e),
            Err(PublishRejected::Duplicate) => {
                Outcome::refuse(status::INVALID_MESSAGE, "duplicate message")
            }
            Err(PublishRejected::Unavailable(e)) => {
                Outcome::refuse(status::SERVICE_NOT_AVAILABLE, e)
            }
        }
    }

    /// Forgets a disconnected peer's rate-limit state.
    pub fn handle_disconnected(&mut self, peer: PeerId) {
        self.limiter.forget(peer);
    }

    /// The next answer to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LightPushServerEvent> {
        self.events.pop()
    }
}

/// Identifies a push of a [`LightPushClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PushId(pub u64);

/// Settings of the lightpush client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LightPushClientConfig {
    /// How long to wait for the answer.
    pub request_timeout: Duration,
}

impl Default for LightPushClientConfig {
    fn default() -> Self {
        LightPushClientConfig {
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Why [`LightPushClient::push`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LightPushClientError {
    /// The message is invalid (too large, bad meta).
    #[error("invalid message: {0}")]
    Invalid(#[from] MessageError),
    /// [`MAX_IN_FLIGHT`] pushes are waiting for answers.
    #[error("too many pushes in flight")]
    TooManyInFlight,
}

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LightPushError {
    /// The service node answered with a non-2xx status.
    #[error("service node answered {code}: {desc}")]
    Status {
        /// The status code.
        code: u32,
        /// Its description.
        desc: String,
    },
    /// No answer in time.
    #[error("lightpush timed out")]
    Timeout,
    /// The connection went away.
    #[error("service node disconnected")]
    Disconnected,
    /// The answer could not be decoded or did not match the request.
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// What the lightpush client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LightPushClientEvent {
    /// The service node published the message.
    Pushed {
        /// The push.
        id: PushId,
        /// The service node.
        peer: PeerId,
        /// How many relay peers it reached, if the node said.
        relay_peer_count: Option<u32>,
    },
    /// The push failed.
    Failed {
        /// The push.
        id: PushId,
        /// The service node.
        peer: PeerId,
        /// Why.
        error: LightPushError,
    },
}

#[derive(Debug)]
struct InFlight {
    id: PushId,
    request_id: String,
}

/// The lightpush v3 client.
#[derive(Debug)]
pub struct LightPushClient {
    config: LightPushClientConfig,
    rng: ChaCha20Rng,
    next: u64,
    pending: Pending<InFlight>,
    in_flight: usize,
    transmits: Queue<Transmit>,
    events: Queue<LightPushClientEvent>,
}

impl LightPushClient {
    /// A client whose request ids come from `seed`.
    pub fn new(config: LightPushClientConfig, seed: [u8; 32]) -> Self {
        LightPushClient {
            config,
            rng: ChaCha20Rng::from_seed(seed),
            next: 1,
            pending: Pending::new(),
            in_flight: 0,
            transmits: Queue::new(MAX_IN_FLIGHT),
            events: Queue::new(MAX_QUEUED),
        }
    }

    /// Asks `peer` to publish `message` on `pubsub_topic` (`None` lets the service node
    /// autoshard it).
    pub fn push(
        &mut self,
        now: Now,
        peer: PeerId,
        pubsub_topic: Option<&PubsubTopic>,
        message: &WakuMessage,
    ) -> Result<PushId, LightPushClientError> {
        message.validate()?;
        if self.in_flight >= MAX_IN_FLIGHT {
            return Err(LightPushClientError::TooManyInFlight);
        }
        let id = PushId(self.next);
        self.next += 1;
        let request_id = request_id_string(&mut self.rng);
        let bytes = proto::waku::LightPushRequest {
            request_id: request_id.clone(),
            pubsub_topic: pubsub_topic.map(|t| t.as_str().to_owned()),
            message: Some(proto::waku::WakuMessage::from(message)),
        }
        .encode_to_vec();
        let frame_id = self.pending.next_id();
        self.pending.insert(
            peer,
            frame_id,
            after(now.instant, self.config.request_timeout),
            InFlight { id, request_id },
        );
        self.in_flight += 1;
        self.transmits.push(transmit(
            peer,
            Protocol::LightPush,
            FrameKind::Request(frame_id),
            bytes,
        ));
        Ok(id)
    }

    fn done(&mut self, event: LightPushClientEvent) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.events.push(event);
    }

    /// Handles an answer frame.
    pub fn handle_response(&mut self, _now: Now, from: PeerId, frame_id: u64, frame: &[u8]) {
        let Some(f) = self.pending.remove(from, frame_id) else {
            return;
        };
        let event = match proto::decode_bounded::<proto::waku::LightPushResponse>(
            frame,
            MAX_RESPONSE_LEN,
        ) {
            Err(e) => LightPushClientEvent::Failed {
                id: f.id,
                peer: from,
                error: LightPushError::BadResponse(e.to_string()),
            },
            Ok(r) if !r.request_id.is_empty() && r.request_id != f.request_id => {
                LightPushClientEvent::Failed {
                    id: f.id,
                    peer: from,
                    error: LightPushError::BadResponse("request id mismatch".into()),
                }
            }
            Ok(r) if (200..300).contains(&r.status_code) => LightPushClientEvent::Pushed {
                id: f.id,
                peer: from,
                relay_peer_count: r.relay_peer_count,
            },
            Ok(r) => LightPushClientEvent::Failed {
                id: f.id,
                peer: from,
                error: LightPushError::Status {
                    code: r.status_code,
                    desc: r.status_desc.unwrap_or_default(),
                },
            },
        };
        self.done(event);
    }

    /// Fails the pushes to a peer that went away.
    pub fn handle_disconnected(&mut self, peer: PeerId) {
        for (_, f) in self.pending.remove_peer(peer) {
            self.done(LightPushClientEvent::Failed {
                id: f.id,
                peer,
                error: LightPushError::Disconnected,
            });
        }
    }

    /// Fails the pushes whose answer is late.
    pub fn handle_timeout(&mut self, now: Now) {
        for (peer, _, f) in self.pending.expire(now.instant) {
            self.done(LightPushClientEvent::Failed {
                id: f.id,
                peer,
                error: LightPushError::Timeout,
            });
        }
    }

    /// The next request to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LightPushClientEvent> {
        self.events.pop()
    }

    /// The next answer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.next_deadline()
    }
}

impl Machine for LightPushClient {
    type Event = LightPushClientEvent;

    fn handle_connected(&mut self, _now: Now, _peer: PeerId, _protocols: &[Protocol]) {}

    fn handle_disconnected(&mut self, _now: Now, peer: PeerId) {
        LightPushClient::handle_disconnected(self, peer);
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        if let (Protocol::LightPush, FrameKind::Response(id)) = (protocol, kind) {
            self.handle_response(now, from, id, frame);
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        LightPushClient::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        LightPushClient::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<LightPushClientEvent> {
        LightPushClient::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        LightPushClient::poll_timeout(self)
    }

    fn protocols(&self) -> Vec<Protocol> {
        Vec::new()
    }
}
