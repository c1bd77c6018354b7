//! Minimum Viable Data Synchronization ([2/MVDS]) as a sans-IO state machine.
//!
//! MVDS makes a group's messages reach every peer that shares the group, exactly once, over a
//! network that loses, repeats and reorders what it carries and peers that are often offline.
//! A [`Node`] exchanges *payloads* with each peer, one per peer per *epoch* at most. A payload
//! carries four kinds of records (WIRE.md B.21, the wire of status-im/mvds):
//!
//! | record | field | meaning |
//! |---|---|---|
//! | ACK | `acks` = 5001 | "I hold these messages"; never stored, sent again whenever a message arrives again |
//! | OFFER | `offers` = 5002 (also `group_offers` = 5005 on receipt) | "I can give you these" (interactive mode) |
//! | REQUEST | `requests` = 5003 | "give me these" |
//! | MESSAGE | `messages` = 5004 | `Message { group_id = 6001, timestamp = 6002 (Unix s), body = 6003 }` |
//!
//! In [`Mode::Batch`] (what status-go uses) a message is sent at once and acked; in
//! [`Mode::Interactive`] it is offered, requested, sent and acked. Every offer, request and
//! message is a record with a send count and a next epoch; it is retransmitted with exponential
//! backoff and seeded jitter ([`Config`]) until the peer answers.
//!
//! The node owns no socket, clock or OS randomness: the caller feeds it payloads
//! ([`Node::handle_payload`]) and ticks ([`Node::handle_tick`], one per epoch, 300 ms in
//! status-go: [`STATUS_GO_EPOCH`]) and drains [`Node::poll_transmit`] and [`Node::poll_event`].
//! Its state lives in a [`SyncStore`] ([`MemoryStore`] or [`SqliteStore`]); a node reopened from
//! its store resumes, loses nothing and delivers nothing twice.
//!
//! [`sim`] is a deterministic network for tests and benchmarks (loss, duplication,
//! reordering, offline peers, partitions, crashes at chosen persistence points).
//!
//! [2/MVDS]: https://rfc.vac.dev/vac/2/mvds
#![forbid(unsafe_code)]

mod config;
mod error;
mod id;
mod node;
pub mod sim;
pub mod store;
mod wire;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

pub use config::{Config, Mode};
pub use error::{HandleError, MembershipError, NotMvds, SendError, StoreError, TickError};
pub use id::{GroupId, MessageId, ONE_TO_ONE_GROUP_TAG};
pub use node::{Delivery, Event, Node, Stats, Transmit};
pub use store::{
    Fault, FaultInjectingStore, MemoryStore, PeerBytes, SqliteStore, SyncStore, Synchronous,
};

use std::time::Duration;

/// status-go's epoch: it ticks its MVDS node every 300 ms (WIRE.md B.21).
pub const STATUS_GO_EPOCH: Duration = Duration::from_millis(300);

/// Largest encoded payload, produced or accepted. A payload travels encrypted inside one Waku
/// message, which the network caps at 150 KiB (WIRE.md B.1); 128 KiB leaves room for the
/// encryption and Waku envelopes.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// Bytes a message adds around its body inside a payload, at most: the `messages` key and
/// length, the group id field, a 10-byte timestamp varint and the body key and length.
pub const MAX_MESSAGE_OVERHEAD: usize = 64;

/// Largest message body [`Node::send`] accepts, so that any message fits in a payload alone.
pub const MAX_BODY_BYTES: usize = MAX_PAYLOAD_BYTES - MAX_MESSAGE_OVERHEAD;

/// Most records (acks, offers, requests and messages together) in one payload, produced or
/// accepted. Bounds the work and the allocations one payload can cause: 1024 ids are 36 KiB on
/// the wire. More pending records wait for the next epoch.
pub const MAX_RECORDS_PER_PAYLOAD: usize = 1024;

/// Most records outstanding for one peer. Beyond it [`Node::send`] returns
/// [`SendError::Backlog`] and offers from that peer are not requested, so an unreachable
/// peer cannot make the node's state grow without bound.
pub const MAX_OUTSTANDING_RECORDS_PER_PEER: usize = 16_384;

/// Most records outstanding over all peers (each costs about 100 bytes in memory).
pub const MAX_RECORDS: usize = 1 << 18;

/// Most bytes of message bodies held for peers that have not acked them (our own messages are
/// kept in memory until every peer of the group acks).
pub const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

/// Most events waiting for [`Node::poll_event`]. When full, new messages are not accepted
/// (and not acked, so their senders retransmit them later) and acks are not processed.
pub const MAX_PENDING_EVENTS: usize = 8192;

/// Most bytes of bodies in events waiting for [`Node::poll_event`] (see
/// [`MAX_PENDING_EVENTS`]).
pub const MAX_PENDING_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Most acks waiting for the next tick for one peer; more are dropped (the peer retransmits
/// the message and is acked then). Four payloads' worth.
pub const MAX_PENDING_ACKS_PER_PEER: usize = 4 * MAX_RECORDS_PER_PAYLOAD;

/// Most peers the node tracks (group members and peers with records, acks or an offline flag).
/// Payloads from further unknown peers are dropped.
pub const MAX_PEERS: usize = 4096;

/// Most groups.
pub const MAX_GROUPS: usize = 65_536;

/// Most peers in one group (status private groups have at most 20 members).
pub const MAX_PEERS_PER_GROUP: usize = 256;

/// An idle node saves its epoch at least every this many ticks (every commit saves it
/// anyway). After a crash the epoch resumes at most this far behind, which only delays
/// scheduled retransmissions by as much.
pub const EPOCH_SAVE_INTERVAL: u64 = 64;
