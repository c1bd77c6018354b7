//! Store v3 (13/WAKU2-STORE, `/vac/waku/store-query/3.0.0`): the message archive of a full node
//! and the client that pages through other nodes' archives.
//!
//! - [`MessageStore`] is the archive: an ordered, deduplicated set of messages keyed by their
//!   [`MessageHash`] and ordered by (timestamp, hash). Two backends implement it:
//!   [`MemoryStore`] and [`SqliteStore`] (the embedded default for a full node: WAL mode, one
//!   transaction per batch, indexes for every query shape). [`fault::FaultInjector`] wraps the
//!   SQLite backend to prove that a crash at any write step loses no acknowledged message.
//! - [`StoreQuery`] is a validated query (the B.8 rules), built from the wire request or by hand.
//! - [`StoreServer`] answers queries from peers and archives relayed messages under the archive
//!   rules (no ephemeral messages, a timestamp within ±20 s of the node's clock, deduplicated by
//!   hash) and the retention policy (by age, 30 days by default as the design article says, and
//!   by count), applied on a timer.
//! - [`StoreClient`] sends queries and follows the pagination cursor until the history is
//!   exhausted or a limit is reached.
//!
//! # Ordering and pagination
//!
//! Messages are ordered by (timestamp, hash). A page holds at most `page_size` entries
//! ([`DEFAULT_PAGE_SIZE`] when the request names none, never more than [`MAX_PAGE_SIZE`]).
//! Forward pages walk from old to new, backward pages from new to old, but every page lists its
//! entries oldest first. The cursor is the hash of the last entry of a forward page, or of the
//! first entry of a backward page, and is exclusive: the next page starts just past it. A page
//! that may have a successor carries the cursor; the last page carries none. A cursor naming the
//! newest message (forward) or the oldest (backward) gets `200` with no entries, which is how
//! js-waku, ignoring the cursor field, detects the end.

pub mod client;
pub mod fault;
pub mod memory;
pub mod server;
pub mod sqlite;

use std::collections::BTreeSet;

use crate::message::{MessageHash, WakuMessage};
use crate::topic::{ContentTopic, PubsubTopic};

pub use client::{
    QueryId, QueryLimits, StoreClient, StoreClientConfig, StoreClientError, StoreClientEvent,
    StoreEntry, StoreQueryError,
};
pub use memory::MemoryStore;
pub use server::{
    ArchiveOutcome, RetentionPolicy, StoreServer, StoreServerConfig, StoreServerEvent,
};
pub use sqlite::{Durability, SqliteStore, SqliteStoreConfig};

/// The page size when a request names none (nwaku `DefaultPageSize`).
pub const DEFAULT_PAGE_SIZE: u64 = 20;

/// The largest page served (nwaku `MaxPageSize`); larger requests are clamped to it. Bounds the
/// memory one response takes: 100 messages of at most 150 KiB.
pub const MAX_PAGE_SIZE: u64 = 100;

/// The most content topics one query may name. nwaku checks 10 (and only on follow-up pages);
/// status-rs accepts up to the filter protocol's 100 so that no real client is refused, and
/// serves each topic by its own index range, so the cost stays proportional to the page size.
pub const MAX_CONTENT_TOPICS_PER_QUERY: usize = 100;

/// The most message hashes one query may name. A hash costs 34 bytes on the wire, so this keeps
/// a request under 40 KiB while allowing far more than a page of presence checks.
pub const MAX_HASHES_PER_QUERY: usize = 1000;

/// The largest store request frame decoded, in bytes. A maximal valid request is
/// [`MAX_CONTENT_TOPICS_PER_QUERY`] topics of at most 1 KiB plus the hashes above; anything
/// larger is refused before parsing.
pub const MAX_REQUEST_LEN: usize = 256 * 1024;

/// How far a message's timestamp may be from the node's clock for it to be archived (13/ and
/// 64/: ±20 s).
pub const MAX_TIMESTAMP_DRIFT_NANOS: i64 = 20 * 1_000_000_000;

/// Status codes of store v3 (nwaku `waku_store/common.nim`).
pub mod status {
    /// The query succeeded.
    pub const SUCCESS: u32 = 200;
    /// The service node received a response it could not use (client side only).
    pub const BAD_RESPONSE: u32 = 300;
    /// The request is malformed or breaks a rule of B.8; the description says which.
    pub const BAD_REQUEST: u32 = 400;
    /// The peer is over its rate limit.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// The archive failed; try another node.
    pub const SERVICE_UNAVAILABLE: u32 = 503;
    /// The node could not reach the peer (client side only).
    pub const PEER_DIAL_FAILURE: u32 = 504;
}

/// One archived message: its hash, the pubsub topic it travelled on and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// The 14/ hash on `pubsub_topic`.
    pub hash: MessageHash,
    /// The pubsub topic.
    pub pubsub_topic: PubsubTopic,
    /// The message; its timestamp is set (the archive rules require it).
    pub message: WakuMessage,
}

impl ArchivedMessage {
    /// Wraps a message, computing its hash.
    pub fn new(pubsub_topic: PubsubTopic, message: WakuMessage) -> Self {
        ArchivedMessage {
            hash: message.hash(&pubsub_topic),
            pubsub_topic,
            message,
        }
    }

    /// The timestamp the archive orders by (0 when absent).
    pub fn timestamp(&self) -> i64 {
        self.message.timestamp.unwrap_or(0)
    }

    /// The sort key: (timestamp, hash).
    pub fn position(&self) -> Position {
        Position {
            timestamp: self.timestamp(),
            hash: self.hash,
        }
    }
}

/// A place in the archive order: (timestamp, hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The message timestamp, Unix nanoseconds.
    pub timestamp: i64,
    /// The message hash, the tie-breaker.
    pub hash: MessageHash,
}

/// Which way a query walks the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// From new to old (the wire default, `pagination_forward = false`).
    #[default]
    Backward,
    /// From old to new.
    Forward,
}

/// A time range on message timestamps, Unix nanoseconds: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TimeRange {
    /// The first timestamp included.
    pub start: Option<i64>,
    /// The first timestamp excluded.
    pub end: Option<i64>,
}

impl TimeRange {
    /// Whether `ts` falls in the range.
    pub fn contains(&self, ts: i64) -> bool {
        self.start.is_none_or(|s| ts >= s) && self.end.is_none_or(|e| ts < e)
    }

    /// The range as inclusive bounds; `None` when it is empty.
    pub fn inclusive(&self) -> Option<(i64, i64)> {
        let lo = self.start.unwrap_or(i64::MIN);
        let hi = match self.end {
            Some(e) => e.checked_sub(1)?,
            None => i64::MAX,
        };
        (lo <= hi).then_some((lo, hi))
    }
}

/// A pubsub topic and the content topics on it (set together, or not at all: B.8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentFilter {
    /// The pubsub topic.
    pub pubsub_topic: PubsubTopic,
    /// The content topics: non-empty, sorted, without duplicates, at most
    /// [`MAX_CONTENT_TOPICS_PER_QUERY`].
    pub content_topics: Vec<ContentTopic>,
}

impl ContentFilter {
    /// A filter on `content_topics` (sorted and deduplicated here).
    pub fn new(
        pubsub_topic: PubsubTopic,
        content_topics: impl IntoIterator<Item = ContentTopic>,
    ) -> Self {
        let set: BTreeSet<ContentTopic> = content_topics.into_iter().collect();
        ContentFilter {
            pubsub_topic,
            content_topics: set.into_iter().collect(),
        }
    }

    /// Whether a message on `pubsub_topic` with `content_topic` matches.
    pub fn matches(&self, pubsub_topic: &PubsubTopic, content_topic: &ContentTopic) -> bool {
        &self.pubsub_topic == pubsub_topic
            && self.content_topics.binary_search(content_topic).is_ok()
    }
}

/// What a query selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Criteria {
    /// Messages in a time range, optionally restricted to content topics.
    Content {
        /// The topics, or `None` for every topic.
        topics: Option<ContentFilter>,
        /// The time range.
        time: TimeRange,
    },
    /// The messages with these hashes (sorted, without duplicates). With `include_data = false`
    /// this is a presence query.
    Hashes(Vec<MessageHash>),
}

impl Criteria {
    /// Whether `m` is selected.
    pub fn matches(&self, m: &ArchivedMessage) -> bool {
        match self {
            Criteria::Content { topics, time } => {
                time.contains(m.timestamp())
                    && topics
                        .as_ref()
                        .is_none_or(|f| f.matches(&m.pubsub_topic, &m.message.content_topic))
            }
            Criteria::Hashes(h) => h.binary_search(&m.hash).is_ok(),
        }
    }
}

/// A store v3 query, valid by construction when it comes from [`StoreQuery::from_proto`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreQuery {
    /// Whether entries carry the messages (`false` asks for hashes only).
    pub include_data: bool,
    /// What to select.
    pub criteria: Criteria,
    /// Continue after (forward) or before (backward) this message, exclusive.
    pub cursor: Option<MessageHash>,
    /// Which way to walk.
    pub direction: Direction,
    /// The page size asked for; `None` means [`DEFAULT_PAGE_SIZE`]. Servers clamp it to
    /// [`MAX_PAGE_SIZE`].
    pub page_size: Option<u64>,
}

/// Why a store request is invalid (answered with [`status::BAD_REQUEST`] and this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidQuery {
    /// The bytes are not a `StoreQueryRequest`.
    #[error("decode rpc failed")]
    Malformed,
    /// The request is longer than [`MAX_REQUEST_LEN`].
    #[error("request of {0} bytes is too large")]
    TooLarge(usize),
    /// `pubsub_topic` and `content_topics` must be set together.
    #[error("pubsub topic and content topics must be set together")]
    TopicsNotTogether,
    /// Message hashes were combined with topics or a time range.
    #[error("message hash lookups cannot be combined with content filter criteria")]
    HashesWithContentFilter,
    /// More than [`MAX_CONTENT_TOPICS_PER_QUERY`] content topics.
    #[error("too many content topics: {0} (at most {max})", max = MAX_CONTENT_TOPICS_PER_QUERY)]
    TooManyContentTopics(usize),
    /// More than [`MAX_HASHES_PER_QUERY`] hashes.
    #[error("too many message hashes: {0} (at most {max})", max = MAX_HASHES_PER_QUERY)]
    TooManyHashes(usize),
    /// A hash or cursor is not 32 bytes.
    #[error("invalid hash length: {0}")]
    HashLength(usize),
    /// The cursor is all zeroes.
    #[error("all zeroes cursor hash")]
    ZeroCursor,
    /// A topic string is not a valid pubsub or content topic.
    #[error("invalid topic: {0}")]
    Topic(String),
    /// `time_start` is after `time_end`.
    #[error("time_start is after time_end")]
    TimeRange,
    /// A hash query names no hash (on the wire it would read as a query for everything).
    #[error("a hash query needs at least one hash")]
    NoHashes,
}

impl StoreQuery {
    /// A backward query over every message in the archive.
    pub fn all() -> Self {
        StoreQuery {
            include_data: true,
            criteria: Criteria::Content {
                topics: None,
                time: TimeRange::default(),
            },
            cursor: None,
            direction: Direction::Backward,
            page_size: None,
        }
    }

    /// A backward query for `content_topics` on `pubsub_topic`.
    pub fn topics(
        pubsub_topic: PubsubTopic,
        content_topics: impl IntoIterator<Item = ContentTopic>,
    ) -> Self {
        StoreQuery {
            criteria: Criteria::Content {
                topics: Some(ContentFilter::new(pubsub_topic, content_topics)),
                time: TimeRange::default(),
            },
            ..StoreQuery::all()
        }
    }

    /// A query for the messages with these hashes.
    pub fn hashes(hashes: impl IntoIterator<Item = MessageHash>) -> Self {
        let set: BTreeSet<MessageHash> = hashes.into_iter().collect();
        StoreQuery {
            criteria: Criteria::Hashes(set.into_iter().collect()),
            ..StoreQuery::all()
        }
    }

    /// Restricts a content query to `[start, end)` (no effect on a hash query).
    #[must_use]
    pub fn time_range(mut self, start: Option<i64>, end: Option<i64>) -> Self {
        if let Criteria::Content { time, .. } = &mut self.criteria {
            *time = TimeRange { start, end };
        }
        self
    }

    /// Walks forward (old to new).
    #[must_use]
    pub fn forward(mut self) -> Self {
        self.direction = Direction::Forward;
        self
    }

    /// Walks backward (new to old).
    #[must_use]
    pub fn backward(mut self) -> Self {
        self.direction = Direction::Backward;
        self
    }

    /// Asks for pages of `n` entries.
    #[must_use]
    pub fn page_size(mut self, n: u64) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Asks for hashes only (a presence query when combined with [`StoreQuery::hashes`]).
    #[must_use]
    pub fn without_data(mut self) -> Self {
        self.include_data = false;
        self
    }

    /// Starts after `cursor`.
    #[must_use]
    pub fn with_cursor(mut self, cursor: Option<MessageHash>) -> Self {
        self.cursor = cursor;
        self
    }

    /// The page size a server applies: the default for 0 or none, clamped to [`MAX_PAGE_SIZE`].
    pub fn effective_page_size(&self) -> u64 {
        match self.page_size {
            None | Some(0) => DEFAULT_PAGE_SIZE,
            Some(n) => n.min(MAX_PAGE_SIZE),
        }
    }

    /// Checks the B.8 rules and the limits on a query built by hand.
    pub fn validate(&self) -> Result<(), InvalidQuery> {
        match &self.criteria {
            Criteria::Content { topics, time } => {
                if let Some(f) = topics {
                    if f.content_topics.is_empty() {
                        return Err(InvalidQuery::TopicsNotTogether);
                    }
                    if f.content_topics.len() > MAX_CONTENT_TOPICS_PER_QUERY {
                        return Err(InvalidQuery::TooManyContentTopics(f.content_topics.len()));
                    }
                }
                if let (Some(s), Some(e)) = (time.start, time.end)
                    && s > e
                {
                    return Err(InvalidQuery::TimeRange);
                }
            }
            Criteria::Hashes(h) => {
                if h.is_empty() {
                    return Err(InvalidQuery::NoHashes);
                }
                if h.len() > MAX_HASHES_PER_QUERY {
                    return Err(InvalidQuery::TooManyHashes(h.len()));
                }
            }
        }
        if self.cursor == Some(MessageHash([0; 32])) {
            return Err(InvalidQuery::ZeroCursor);
        }
        Ok(())
    }

    /// Decodes and validates a wire request. The request id is returned separately because a
    /// response must echo it even when the query is refused.
    pub fn decode(frame: &[u8]) -> Result<(String, StoreQuery), (String, InvalidQuery)> {
        if frame.len() > MAX_REQUEST_LEN {
            return Err((String::new(), InvalidQuery::TooLarge(frame.len())));
        }
        let req = <proto::waku::StoreQueryRequest as prost::Message>::decode(frame)
            .map_err(|_| (String::new(), InvalidQuery::Malformed))?;
        match StoreQuery::from_proto(&req) {
            Ok(q) => Ok((req.request_id, q)),
            Err(e) => Err((req.request_id, e)),
        }
    }

    /// Validates a decoded wire request (WIRE.md B.8).
    pub fn from_proto(req: &proto::waku::StoreQueryRequest) -> Result<StoreQuery, InvalidQuery> {
        let has_topics = req.pubsub_topic.is_some() || !req.content_topics.is_empty();
        let has_time = req.time_start.is_some() || req.time_end.is_some();
        let criteria = if req.message_hashes.is_empty() {
            let topics = match (&req.pubsub_topic, req.content_topics.is_empty()) {
                (None, true) => None,
                (Some(_), true) | (None, false) => return Err(InvalidQuery::TopicsNotTogether),
                (Some(p), false) => {
                    if req.content_topics.len() > MAX_CONTENT_TOPICS_PER_QUERY {
                        return Err(InvalidQuery::TooManyContentTopics(req.content_topics.len()));
                    }
                    let pubsub = PubsubTopic::new(p.as_str())
                        .map_err(|e| InvalidQuery::Topic(e.to_string()))?;
                    let mut content = BTreeSet::new();
                    for t in &req.content_topics {
                        content.insert(
                            ContentTopic::new(t.as_str())
                                .map_err(|e| InvalidQuery::Topic(e.to_string()))?,
                        );
                    }
                    Some(ContentFilter {
                        pubsub_topic: pubsub,
                        content_topics: content.into_iter().collect(),
                    })
                }
            };
            Criteria::Content {
                topics,
                time: TimeRange {
                    start: req.time_start,
                    end: req.time_end,
                },
            }
        } else {
            if has_topics || has_time {
                return Err(InvalidQuery::HashesWithContentFilter);
            }
            if req.message_hashes.len() > MAX_HASHES_PER_QUERY {
                return Err(InvalidQuery::TooManyHashes(req.message_hashes.len()));
            }
            let mut set = BTreeSet::new();
            for h in &req.message_hashes {
                set.insert(MessageHash::from_slice(h).ok_or(InvalidQuery::HashLength(h.len()))?);
            }
            Criteria::Hashes(set.into_iter().collect())
        };
        let cursor = match &req.pagination_cursor {
            None => None,
            Some(c) => Some(MessageHash::from_slice(c).ok_or(InvalidQuery::HashLength(c.len()))?),
        };
        let q = StoreQuery {
            include_data: req.include_data,
            criteria,
            cursor,
            direction: if req.pagination_forward {
                Direction::Forward
            } else {
                Direction::Backward
            },
            page_size: req.pagination_limit,
        };
        q.validate()?;
        Ok(q)
    }

    /// The wire request with `request_id`.
    pub fn to_proto(&self, request_id: String) -> proto::waku::StoreQueryRequest {
        let mut req = proto::waku::StoreQueryRequest {
            request_id,
            include_data: self.include_data,
            pagination_cursor: self.cursor.map(|c| c.0.to_vec()),
            pagination_forward: self.direction == Direction::Forward,
            pagination_limit: self.page_size,
            ..Default::default()
        };
        match &self.criteria {
            Criteria::Content { topics, time } => {
                if let Some(f) = topics {
                    req.pubsub_topic = Some(f.pubsub_topic.as_str().to_owned());
                    req.content_topics = f
                        .content_topics
                        .iter()
                        .map(|t| t.as_str().to_owned())
                        .collect();
                }
                req.time_start = time.start;
                req.time_end = time.end;
            }
            Criteria::Hashes(h) => {
                req.message_hashes = h.iter().map(|h| h.0.to_vec()).collect();
            }
        }
        req
    }
}

/// What a backend is asked for: one page of entries strictly past `after`, in `direction`.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    /// The selection.
    pub criteria: &'a Criteria,
    /// Exclusive starting point (the cursor's position), or `None` to start at the end the
    /// direction begins from.
    pub after: Option<Position>,
    /// Forward: ascending positions greater than `after`; backward: descending positions less
    /// than `after`.
    pub direction: Direction,
    /// The most entries to return.
    pub limit: usize,
}

/// Why a backend failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database reported an error (I/O, corruption, a full disk).
    #[error("database error: {0}")]
    Database(String),
    /// A stored record does not decode; the archive is corrupt.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// A file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A fault injected by [`fault::FaultInjector`] interrupted the operation.
    #[error("injected fault")]
    Injected,
    /// The store was crashed by [`fault::FaultInjector`] and refuses every further call.
    #[error("the store has crashed (injected)")]
    Crashed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// The archive: an ordered, deduplicated set of messages.
///
/// Contract, checked for both backends by the shared suite in `tests/store_backends.rs` and
/// for SQLite under injected faults by `tests/store_crash.rs`:
/// - Writes are atomic. When [`MessageStore::insert`] returns `Ok`, the whole batch is durable
///   (to the backend's durability: it survives a crash for SQLite). When a write returns `Err`,
///   it was applied whole or not at all, never in part; which one cannot always be told (a
///   commit can complete just before an interrupt is reported), and it does not need to be:
///   inserts skip hashes already stored and deletions are idempotent, so retrying is safe.
/// - [`MessageStore::page`] returns entries in the order of [`PageRequest::direction`].
pub trait MessageStore {
    /// Inserts a batch atomically; returns how many messages were new.
    fn insert(&mut self, batch: &[ArchivedMessage]) -> Result<usize, StoreError>;

    /// The position of the message with this hash, if stored.
    fn position(&mut self, hash: &MessageHash) -> Result<Option<Position>, StoreError>;

    /// One page of entries (see [`PageRequest`]).
    fn page(&mut self, request: &PageRequest<'_>) -> Result<Vec<ArchivedMessage>, StoreError>;

    /// Deletes every message with a timestamp before `cutoff` (Unix nanoseconds); returns how
    /// many went.
    fn delete_before(&mut self, cutoff: i64) -> Result<u64, StoreError>;

    /// Deletes the oldest messages until at most `max` remain; returns how many went.
    fn truncate(&mut self, max: u64) -> Result<u64, StoreError>;

    /// How many messages are stored.
    fn count(&mut self) -> Result<u64, StoreError>;
}

impl<S: MessageStore + ?Sized> MessageStore for Box<S> {
    fn insert(&mut self, batch: &[ArchivedMessage]) -> Result<usize, StoreError> {
        (**self).insert(batch)
    }
    fn position(&mut self, hash: &MessageHash) -> Result<Option<Position>, StoreError> {
        (**self).position(hash)
    }
    fn page(&mut self, request: &PageRequest<'_>) -> Result<Vec<ArchivedMessage>, StoreError> {
        (**self).page(request)
    }
    fn delete_before(&mut self, cutoff: i64) -> Result<u64, StoreError> {
        (**self).delete_before(cutoff)
    }
    fn truncate(&mut self, max: u64) -> Result<u64, StoreError> {
        (**self).truncate(max)
    }
    fn count(&mut self) -> Result<u64, StoreError> {
        (**self).count()
    }
}

/// The answer to a query, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPage {
    /// The entries, oldest first.
    pub entries: Vec<ArchivedMessage>,
    /// Where the next page starts, when there may be one.
    pub cursor: Option<MessageHash>,
}

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The cursor names a message the archive does not hold.
    #[error("cursor not found")]
    UnknownCursor,
    /// The backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs a validated query against a backend: resolves the cursor, fetches one entry more than the
/// page to learn whether another page follows, and puts the page in forward order.
pub fn run_query<S: MessageStore + ?Sized>(
    store: &mut S,
    query: &StoreQuery,
) -> Result<QueryPage, QueryError> {
    let after = match &query.cursor {
        None => None,
        Some(c) => Some(store.position(c)?.ok_or(QueryError::UnknownCursor)?),
    };
    // `effective_page_size() <= MAX_PAGE_SIZE`, which fits usize.
    let size = usize::try_from(query.effective_page_size()).unwrap_or(usize::MAX);
    let mut entries = store.page(&PageRequest {
        criteria: &query.criteria,
        after,
        direction: query.direction,
        limit: size.saturating_add(1),
    })?;
    let more = entries.len() > size;
    entries.truncate(size);
    let cursor = if more {
        entries.last().map(|e| e.hash)
    } else {
        None
    };
    if query.direction == Direction::Backward {
        entries.reverse();
    }
    Ok(QueryPage { entries, cursor })
}

/// Whether `pos` lies strictly past `after` in `direction`.
pub(crate) fn is_past(pos: &Position, after: Option<&Position>, direction: Direction) -> bool {
    match (after, direction) {
        (None, _) => true,
        (Some(a), Direction::Forward) => pos > a,
        (Some(a), Direction::Backward) => pos < a,
    }
}
