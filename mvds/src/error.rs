//! Errors, one enum per operation, split by culprit.

use std::sync::Arc;

/// Why bytes handed to [`Node::handle_payload`](crate::Node::handle_payload) are not an MVDS
/// payload. status-go uses this verdict to treat the bytes as a plain (non-MVDS) message
/// instead (WIRE.md B.21). Nothing in the node changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotMvds {
    /// No bytes, or a payload whose lists are all empty (the bytes of any protobuf message made
    /// only of unknown fields decode to this).
    #[error("empty payload")]
    Empty,
    /// The bytes exceed [`MAX_PAYLOAD_BYTES`](crate::MAX_PAYLOAD_BYTES); nothing was parsed.
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a protobuf encoding of `Payload`.
    #[error("malformed payload: {0}")]
    Malformed(#[source] prost::DecodeError),
    /// More acks, offers, requests and messages than
    /// [`MAX_RECORDS_PER_PAYLOAD`](crate::MAX_RECORDS_PER_PAYLOAD).
    #[error("payload carries {count} records, more than {max}")]
    TooManyRecords {
        /// Records in the payload.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A message id that is not 32 bytes.
    #[error("message id of {len} bytes, expected 32")]
    BadIdLength {
        /// Its length.
        len: usize,
    },
    /// A group id that is not 32 bytes.
    #[error("group id of {len} bytes, expected 32")]
    BadGroupIdLength {
        /// Its length.
        len: usize,
    },
}

/// A failure of the [`SyncStore`](crate::SyncStore) backend. The node treats every store
/// failure as a crash: it stops ([`Event::StoreFailed`](crate::Event::StoreFailed)) and must be
/// reopened from its store with [`Node::open`](crate::Node::open), which resumes from the last
/// committed state.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend reported an error (for SQLite, the `rusqlite` error).
    #[error("store backend: {0}")]
    Backend(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// Stored data could not be read back (wrong length, unknown record kind, bad peer id).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The store was written by a newer schema than this code understands.
    #[error("store schema version {found}, this code understands up to {supported}")]
    Schema {
        /// Version found.
        found: i64,
        /// Newest version supported.
        supported: i64,
    },
    /// A failure injected by [`FaultInjectingStore`](crate::FaultInjectingStore).
    #[error("injected store failure")]
    Injected,
}

/// Errors compare by kind and message (a backend error has no equality of its own).
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StoreError::Backend(a), StoreError::Backend(b)) => a.to_string() == b.to_string(),
            (StoreError::Corrupt(a), StoreError::Corrupt(b)) => a == b,
            (
                StoreError::Schema {
                    found: a,
                    supported: b,
                },
                StoreError::Schema {
                    found: c,
                    supported: d,
                },
            ) => a == c && b == d,
            (StoreError::Injected, StoreError::Injected) => true,
            _ => false,
        }
    }
}

impl Eq for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(Arc::new(e))
    }
}

/// Why [`Node::handle_payload`](crate::Node::handle_payload) did not process a payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The bytes are not an MVDS payload; nothing changed.
    #[error("not MVDS: {0}")]
    NotMvds(#[from] NotMvds),
    /// The store failed while committing; the node has stopped and must be reopened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node stopped earlier after a store failure and must be reopened.
    #[error("the node stopped after a store failure")]
    Stopped,
}

impl HandleError {
    /// Whether the verdict is "not MVDS" (the caller may treat the bytes as something else).
    pub fn is_not_mvds(&self) -> bool {
        matches!(self, HandleError::NotMvds(_))
    }
}

/// Why [`Node::send`](crate::Node::send) refused a message. Nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The body exceeds [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES).
    #[error("body of {len} bytes exceeds the limit of {max}")]
    BodyTooLarge {
        /// Length of the body.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No peer shares the group (add peers with [`Node::add_peer`](crate::Node::add_peer)).
    #[error("no peer shares the group")]
    NoPeers,
    /// The same group, timestamp and body was sent or received before: the id is taken.
    #[error("a message with this id exists")]
    Duplicate,
    /// A peer of the group has [`MAX_OUTSTANDING_RECORDS_PER_PEER`] records outstanding, or the
    /// node holds [`MAX_RECORDS`] records or [`MAX_HELD_BYTES`] of unacknowledged bodies; retry
    /// once peers have acknowledged.
    ///
    /// [`MAX_OUTSTANDING_RECORDS_PER_PEER`]: crate::MAX_OUTSTANDING_RECORDS_PER_PEER
    /// [`MAX_RECORDS`]: crate::MAX_RECORDS
    /// [`MAX_HELD_BYTES`]: crate::MAX_HELD_BYTES
    #[error("too much unacknowledged data outstanding")]
    Backlog,
    /// The store failed; the node has stopped and must be reopened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node stopped earlier after a store failure and must be reopened.
    #[error("the node stopped after a store failure")]
    Stopped,
}

/// Why a group membership change was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// [`MAX_GROUPS`](crate::MAX_GROUPS) groups exist already.
    #[error("too many groups")]
    TooManyGroups,
    /// The group has [`MAX_PEERS_PER_GROUP`](crate::MAX_PEERS_PER_GROUP) peers already.
    #[error("too many peers in the group")]
    GroupFull,
    /// The node tracks [`MAX_PEERS`](crate::MAX_PEERS) peers already.
    #[error("too many peers")]
    TooManyPeers,
    /// The store failed; the node has stopped and must be reopened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node stopped earlier after a store failure and must be reopened.
    #[error("the node stopped after a store failure")]
    Stopped,
}

/// Why [`Node::handle_tick`](crate::Node::handle_tick) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TickError {
    /// The store failed; the node has stopped and must be reopened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node stopped earlier after a store failure and must be reopened.
    #[error("the node stopped after a store failure")]
    Stopped,
}
