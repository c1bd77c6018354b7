//! Waku v2 as sans-IO state machines: the transport-privacy layer of status-rs.
//!
//! A chat message leaves the secure-transport layer as opaque bytes. This crate seals them once
//! more ([`payload`]: to the receiver's X25519 key, or under a topic's symmetric key), wraps them
//! in a [`message::WakuMessage`] on a content topic derived from the Status topic scheme
//! ([`topic::status`]), maps that to a pubsub topic (a static shard, or [`topic::autoshard`]),
//! and hands it to the relay, lightpush, filter and store machines. Relays forward by the
//! message id `sha256(bytes)`; stores index by the deterministic [`message::MessageHash`].
//!
//! ```
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//! use waku_core::message::WakuMessage;
//! use waku_core::payload::{SymmetricKey, open_symmetric, seal_symmetric};
//! use waku_core::topic::{autoshard, status::StatusTopic};
//!
//! // Alice posts to the public chat "status".
//! let chat = StatusTopic::public_chat("status");
//! let key = SymmetricKey::from_topic_name(chat.name());
//! let mut rng = ChaCha20Rng::from_seed([7; 32]); // the caller supplies randomness
//! let sealed = seal_symmetric(&mut rng, &key, b"hello", None).unwrap();
//! let msg = WakuMessage::new(chat.content_topic().clone(), sealed)
//!     .with_timestamp(1_700_000_000_000_000_000); // the caller supplies the clock
//! let shard = autoshard(&msg.content_topic, 1, 8).unwrap();
//! let bytes = msg.encode();
//!
//! // Bob receives the bytes on that shard.
//! let received = WakuMessage::decode(&bytes).unwrap();
//! assert_eq!(received.hash(&shard), msg.hash(&shard));
//! let opened = open_symmetric(&key, &received.payload).unwrap();
//! assert_eq!(&opened.payload[..], b"hello");
//! ```
//!
//! Nothing here reads a clock or an OS random source: time and RNGs are arguments, and every
//! decoder refuses input above a named `MAX_*` bound before allocating.
//!
//! - [`net`]: peer handles, protocol ids, frames and the [`net::Machine`] trait drivers run.
//! - [`message`]: the validated Waku message, its deterministic hash and the relay message id.
//! - [`topic`]: content and pubsub topics, autosharding and the Status topic scheme.
//! - [`payload`]: payload encryption (asymmetric to an X25519 key, or symmetric).
//! - [`roles`]: node capabilities and the light/full/bootstrap presets.
//! - [`relay`]: the gossipsub v1.1 router on `/vac/waku/relay/2.0.0`.
//! - [`store`]: store v3, the message archive (in memory or SQLite) and its server and client.
//! - [`filter`]: filter v2 subscriptions and pushes, server and client (ping, resubscribe, backfill).
//! - [`lightpush`]: lightpush v3 server and client, and the legacy v2 server.
//! - [`metadata`]: the cluster and shard exchange on connect.
//! - [`peer_exchange`]: peer exchange server and client over pluggable peer records.
//! - [`enr`]: Ethereum node records (EIP-778, "v4") with the Waku fields, and their libp2p view.
//! - [`node`]: [`node::WakuNode`], the relay and the service machines behind one surface.
#![forbid(unsafe_code)]

pub mod enr;
pub mod filter;
/// Fuzz bodies for the message decoder and the payload opener (feature `fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod lightpush;
pub mod message;
pub mod metadata;
pub mod net;
pub mod node;
pub mod payload;
pub mod peer_exchange;
pub mod relay;
pub mod roles;
mod service;
pub mod store;
pub mod topic;
