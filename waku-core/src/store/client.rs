//! The store client: sends store v3 queries and follows the pagination cursor.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{ArchivedMessage, Criteria, InvalidQuery, StoreQuery};
use crate::message::{MessageHash, WakuMessage};
use crate::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use crate::service::{Pending, Queue, after, request_id_string, transmit};
use crate::topic::PubsubTopic;

/// The most queries in progress at once; [`StoreClient::query`] refuses more.
pub const MAX_CONCURRENT_QUERIES: usize = 64;

/// The largest store response decoded: a full page of 100 maximal messages and their keys.
pub const MAX_RESPONSE_LEN: usize = 100 * (crate::message::MAX_MESSAGE_SIZE + 1024) + 64 * 1024;

/// The most events queued for the application.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// Identifies a query of this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u64);

/// When the client stops following cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// The most pages fetched.
    pub max_pages: u32,
    /// Stop once this many entries were delivered (the page that crosses it is delivered whole).
    pub max_entries: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_pages: 1000,
            max_entries: 100_000,
        }
    }
}

/// Settings of the store client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreClientConfig {
    /// How long to wait for each page.
    pub request_timeout: Duration,
}

impl Default for StoreClientConfig {
    fn default() -> Self {
        StoreClientConfig {
            request_timeout: Duration::from_secs(20),
        }
    }
}

/// One entry of a store response, checked: the hash is 32 bytes and, when the message is
/// present, it is valid, its recomputed hash matches and it matches the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEntry {
    /// The message hash.
    pub hash: MessageHash,
    /// The pubsub topic, when the server sent it.
    pub pubsub_topic: Option<PubsubTopic>,
    /// The message, for queries with `include_data`.
    pub message: Option<WakuMessage>,
}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreQueryError {
    /// The service node answered with a non-2xx status.
    #[error("store node answered {code}: {desc}")]
    Status {
        /// The status code (400, 429, 503, …).
        code: u32,
        /// Its description.
        desc: String,
    },
    /// No answer within [`StoreClientConfig::request_timeout`].
    #[error("store request timed out")]
    Timeout,
    /// The connection to the service node went away.
    #[error("store node disconnected")]
    Disconnected,
    /// The answer could not be used (undecodable, wrong request id, a cursor that does not
    /// advance).
    #[error("bad store response: {0}")]
    BadResponse(String),
}

/// Why [`StoreClient::query`] refused a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreClientError {
    /// The query breaks a rule a server would refuse it for.
    #[error("invalid query: {0}")]
    Invalid(#[from] InvalidQuery),
    /// [`MAX_CONCURRENT_QUERIES`] are in progress.
    #[error("too many queries in progress")]
    TooManyQueries,
}

/// What the store client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreClientEvent {
    /// One page arrived (entries oldest first).
    Page {
        /// The query.
        query: QueryId,
        /// The service node.
        peer: PeerId,
        /// The checked entries.
        entries: Vec<StoreEntry>,
        /// Entries dropped because they failed the checks (a misbehaving server).
        rejected: usize,
    },
    /// The query ended.
    Finished {
        /// The query.
        query: QueryId,
        /// Pages received.
        pages: u32,
        /// Entries delivered in all pages.
        entries: usize,
        /// When a limit stopped the query early, the cursor to resume from.
        resume_cursor: Option<MessageHash>,
        /// `Ok` when the history was exhausted or a limit reached.
        result: Result<(), StoreQueryError>,
    },
}

#[derive(Debug)]
struct Running {
    peer: PeerId,
    query: StoreQuery,
    limits: QueryLimits,
    request_id: String,
    pages: u32,
    entries: usize,
}

/// The store v3 client.
///
/// [`StoreClient::query`] sends the first page request; each answer produces a
/// [`StoreClientEvent::Page`], and the client asks for the next page with the answer's cursor
/// until there is none or a [`QueryLimits`] is reached, then reports
/// [`StoreClientEvent::Finished`].
#[derive(Debug)]
pub struct StoreClient {
    config: StoreClientConfig,
    rng: ChaCha20Rng,
    next_query: u64,
    running: BTreeMap<QueryId, Running>,
    pending: Pending<QueryId>,
    transmits: Queue<Transmit>,
    events: Queue<StoreClientEvent>,
}

impl StoreClient {
    /// A client whose request ids come from `seed`.
    pub fn new(config: StoreClientConfig, seed: [u8; 32]) -> Self {
        StoreClient {
            config,
            rng: ChaCha20Rng::from_seed(seed),
            next_query: 1,
            running: BTreeMap::new(),
            pending: Pending::new(),
            transmits: Queue::new(MAX_CONCURRENT_QUERIES * 2),
            events: Queue::new(MAX_QUEUED_EVENTS),
        }
    }

    /// Starts `query` against `peer`.
    pub fn query(
        &mut self,
        now: Now,
        peer: PeerId,
        query: StoreQuery,
        limits: QueryLimits,
    ) -> Result<QueryId, StoreClientError> {
        query.validate()?;
        if self.running.len() >= MAX_CONCURRENT_QUERIES {
            return Err(StoreClientError::TooManyQueries);
        }
        let id = QueryId(self.next_query);
        self.next_query += 1;
        let running = Running {
            peer,
            query,
            limits,
            request_id: String::new(),
            pages: 0,
            entries: 0,
        };
        self.running.insert(id, running);
        self.send_page(now, id);
        Ok(id)
    }

    /// Abandons a query; a late answer is ignored and no event follows.
    pub fn cancel(&mut self, query: QueryId) {
        self.running.remove(&query);
        self.pending.retain(|q| *q != query);
    }

    /// Queries in progress.
    pub fn in_progress(&self) -> usize {
        self.running.len()
    }

    fn send_page(&mut self, now: Now, id: QueryId) {
        let request_id = request_id_string(&mut self.rng);
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        r.request_id = request_id.clone();
        let bytes = r.query.to_proto(request_id).encode_to_vec();
        let frame_id = self.pending.next_id();
        let peer = r.peer;
        self.pending.insert(
            peer,
            frame_id,
            after(now.instant, self.config.request_timeout),
            id,
        );
        self.transmits.push(transmit(
            peer,
            Protocol::StoreQuery,
            FrameKind::Request(frame_id),
            bytes,
        ));
    }

    fn finish(
        &mut self,
        id: QueryId,
        result: Result<(), StoreQueryError>,
        resume_cursor: Option<MessageHash>,
    ) {
        if let Some(r) = self.running.remove(&id) {
            self.events.push(StoreClientEvent::Finished {
                query: id,
                pages: r.pages,
                entries: r.entries,
                resume_cursor,
                result,
            });
        }
    }

    /// Handles a response frame with request id `frame_id` from `from`.
    pub fn handle_response(&mut self, now: Now, from: PeerId, frame_id: u64, frame: &[u8]) {
        let Some(id) = self.pending.remove(from, frame_id) else {
            return;
        };
        let Some(r) = self.running.get(&id) else {
            return;
        };
        let response =
            match proto::decode_bounded::<proto::waku::StoreQueryResponse>(frame, MAX_RESPONSE_LEN)
            {
                Ok(resp) => resp,
                Err(e) => {
                    return self.finish(id, Err(StoreQueryError::BadResponse(e.to_string())), None);
                }
            };
        if !response.request_id.is_empty() && response.request_id != r.request_id {
            return self.finish(
                id,
                Err(StoreQueryError::BadResponse("request id mismatch".into())),
                None,
            );
        }
        let code = response.status_code.unwrap_or(0);
        if !(200..300).contains(&code) {
            let desc = response.status_desc.unwrap_or_default();
            return self.finish(id, Err(StoreQueryError::Status { code, desc }), None);
        }
        let cursor = match response
            .pagination_cursor
            .as_deref()
            .map(MessageHash::from_slice)
        {
            None => None,
            Some(Some(c)) => Some(c),
            Some(None) => {
                return self.finish(
                    id,
                    Err(StoreQueryError::BadResponse(
                        "cursor is not 32 bytes".into(),
                    )),
                    None,
                );
            }
        };
        if cursor.is_some() && cursor == r.query.cursor {
            return self.finish(
                id,
                Err(StoreQueryError::BadResponse(
                    "cursor did not advance".into(),
                )),
                None,
            );
        }
        let page_cap = usize::try_from(r.query.effective_page_size()).unwrap_or(usize::MAX);
        let mut rejected = 0usize;
        let mut entries = Vec::with_capacity(response.messages.len().min(page_cap));
        for kv in response.messages {
            match check_entry(&r.query, kv) {
                Some(e) if entries.len() < page_cap => entries.push(e),
                _ => rejected += 1,
            }
        }
        let peer = r.peer;
        let count = entries.len();
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        r.pages = r.pages.saturating_add(1);
        r.entries = r.entries.saturating_add(count);
        let (pages, total, limits) = (r.pages, r.entries, r.limits);
        self.events.push(StoreClientEvent::Page {
            query: id,
            peer,
            entries,
            rejected,
        });
        match cursor {
            None => self.finish(id, Ok(()), None),
            Some(c) if pages >= limits.max_pages || total >= limits.max_entries => {
                self.finish(id, Ok(()), Some(c))
            }
            Some(c) => {
                if let Some(r) = self.running.get_mut(&id) {
                    r.query.cursor = Some(c);
                }
                self.send_page(now, id);
            }
        }
    }

    /// The connection to `peer` is gone: its queries fail.
    pub fn handle_disconnected(&mut self, peer: PeerId) {
        for (_, id) in self.pending.remove_peer(peer) {
            self.finish(id, Err(StoreQueryError::Disconnected), None);
        }
    }

    /// Fails the queries whose page did not arrive in time.
    pub fn handle_timeout(&mut self, now: Now) {
        for (_, _, id) in self.pending.expire(now.instant) {
            self.finish(id, Err(StoreQueryError::Timeout), None);
        }
    }

    /// The next request to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<StoreClientEvent> {
        self.events.pop()
    }

    /// The next page deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.next_deadline()
    }
}

/// Checks one response entry against the query; `None` drops it.
fn check_entry(query: &StoreQuery, kv: proto::waku::WakuMessageKeyValue) -> Option<StoreEntry> {
    let hash = MessageHash::from_slice(kv.message_hash.as_deref()?)?;
    let pubsub_topic = match kv.pubsub_topic {
        Some(t) => Some(PubsubTopic::new(t).ok()?),
        None => None,
    };
    if let Criteria::Hashes(wanted) = &query.criteria
        && wanted.binary_search(&hash).is_err()
    {
        return None;
    }
    if !query.include_data {
        return Some(StoreEntry {
            hash,
            pubsub_topic,
            message: None,
        });
    }
    let message = WakuMessage::try_from(kv.message?).ok()?;
    let topic = pubsub_topic.clone()?;
    let archived = ArchivedMessage {
        hash: message.hash(&topic),
        pubsub_topic: topic,
        message,
    };
    if archived.hash != hash || !query.criteria.matches(&archived) {
        return None;
    }
    Some(StoreEntry {
        hash,
        pubsub_topic,
        message: Some(archived.message),
    })
}

impl Machine for StoreClient {
    type Event = StoreClientEvent;

    fn handle_connected(&mut self, _now: Now, _peer: PeerId, _protocols: &[Protocol]) {}

    fn handle_disconnected(&mut self, _now: Now, peer: PeerId) {
        StoreClient::handle_disconnected(self, peer);
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        if let (Protocol::StoreQuery, FrameKind::Response(id)) = (protocol, kind) {
            self.handle_response(now, from, id, frame);
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        StoreClient::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        StoreClient::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<StoreClientEvent> {
        StoreClient::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        StoreClient::poll_timeout(self)
    }

    fn protocols(&self) -> Vec<Protocol> {
        Vec::new()
    }
}
