//! Waku v2 as sans-IO state machines: the transport-privacy layer of status-rs.
//!
//! - [`net`]: peer handles, protocol ids, frames and the [`net::Machine`] trait drivers run.
//! - [`message`]: the validated Waku message, its deterministic hash and the relay message id.
//! - [`topic`]: content and pubsub topics, autosharding and the Status topic scheme.
//! - [`payload`]: payload encryption (asymmetric to an X25519 key, or symmetric).
//! - [`roles`]: node capabilities and the light/full/bootstrap presets.
//! - [`relay`]: the gossipsub v1.1 router on `/vac/waku/relay/2.0.0`.
//! - [`store`]: store v3, the message archive (in memory or SQLite) and its server and client.
#![forbid(unsafe_code)]

/// Fuzz bodies for the message decoder and the payload opener (feature `fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod message;
pub mod net;
pub mod payload;
pub mod relay;
pub mod roles;
mod service;
pub mod store;
pub mod topic;
