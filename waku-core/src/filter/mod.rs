//! Filter v2 (12/WAKU2-FILTER): a light node asks a service node to push it the relayed messages
//! of its content topics.
//!
//! Requests (`SUBSCRIBE`, `UNSUBSCRIBE`, `UNSUBSCRIBE_ALL`, `SUBSCRIBER_PING`) travel on
//! `/vac/waku/filter-subscribe/2.0.0-beta1` as request/response frames; pushes travel on
//! `/vac/waku/filter-push/2.0.0-beta1` as stream frames the client never answers.
//!
//! - [`FilterServer`] keeps subscriptions (expiring 5 minutes after the last subscribe or ping,
//!   bounded per request, per peer and overall) and pushes every matching relayed message.
//! - [`FilterClient`] subscribes, pings every minute, notices a dead subscription or service
//!   node (a failed ping, a 404 after the node restarted, a lost connection), resubscribes,
//!   possibly with another node, and reports the gap as a [`FilterClientEvent::Backfill`] so the
//!   node can fetch it from a store: a subscription never dies quietly.

pub mod client;
pub mod server;

use std::time::Duration;

pub use client::{FilterClient, FilterClientConfig, FilterClientError, FilterClientEvent};
pub use server::{FilterServer, FilterServerConfig, FilterServerEvent};

pub use proto::waku::filter_subscribe_request::FilterSubscribeType;

/// The most content topics one subscribe or unsubscribe request may carry (nwaku
/// `MaxContentTopicsPerRequest`).
pub const MAX_CONTENT_TOPICS_PER_REQUEST: usize = 100;

/// How long a subscription lives without a subscribe or ping (nwaku: 5 minutes).
pub const SUBSCRIPTION_TTL: Duration = Duration::from_secs(5 * 60);

/// The largest subscribe request decoded: 100 content topics of at most 1 KiB, a pubsub topic
/// and the request id, with room to spare. Larger frames are refused before parsing.
pub const MAX_REQUEST_LEN: usize = 128 * 1024;

/// The largest subscribe response decoded (a request id, a code and a description).
pub const MAX_RESPONSE_LEN: usize = 16 * 1024;

/// The largest push decoded: one maximal message and its pubsub topic.
pub const MAX_PUSH_LEN: usize = crate::message::MAX_MESSAGE_SIZE + 4 * 1024;

/// Status codes of filter v2 (nwaku `waku_filter_v2/common.nim`).
pub mod status {
    /// Done.
    pub const SUCCESS: u32 = 200;
    /// The request is malformed or misses a field.
    pub const BAD_REQUEST: u32 = 400;
    /// Ping or unsubscribe from a peer without (those) subscriptions.
    pub const NOT_FOUND: u32 = 404;
    /// The peer is over its rate limit.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// The node has no room for the subscription.
    pub const SERVICE_UNAVAILABLE: u32 = 503;
    /// The node could not reach the peer.
    pub const PEER_DIAL_FAILURE: u32 = 504;
}
