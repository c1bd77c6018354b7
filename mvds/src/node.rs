//! The MVDS node: a sans-IO state machine driven by payloads, epoch ticks and commands.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;

use indexmap::IndexSet;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::config::{Config, Mode, jitter};
use crate::error::{HandleError, MembershipError, SendError, StoreError, TickError};
use crate::id::{GroupId, MessageId};
use crate::store::{
    MemoryStore, RecordKind, StoreOp, StoredEvent, StoredMessage, StoredRecord, SyncStore,
};
use crate::wire::{self, Builder};
use crate::{
    EPOCH_SAVE_INTERVAL, MAX_BODY_BYTES, MAX_GROUPS, MAX_HELD_BYTES,
    MAX_OUTSTANDING_RECORDS_PER_PEER, MAX_PEERS, MAX_PEERS_PER_GROUP, MAX_PENDING_ACKS_PER_PEER,
    MAX_PENDING_EVENT_BYTES, MAX_PENDING_EVENTS, MAX_RECORDS, MAX_RECORDS_PER_PAYLOAD,
};

/// A payload to send: the encoded `mvds.Payload` for one peer. The caller encrypts and
/// transports it (in Status, inside a Double Ratchet message on Waku).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<P> {
    /// The peer.
    pub to: P,
    /// The encoded payload, at most [`MAX_PAYLOAD_BYTES`](crate::MAX_PAYLOAD_BYTES).
    pub bytes: Vec<u8>,
}

/// A message handed to the application, exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<P> {
    /// The peer whose payload carried it first.
    pub from: P,
    /// Its id.
    pub id: MessageId,
    /// Its group. MVDS does not check that `from` shares the group; the application decides
    /// whether the sender may write to it.
    pub group: GroupId,
    /// The sender's timestamp, Unix seconds (unverified).
    pub timestamp: i64,
    /// The bytes the sender passed to [`Node::send`].
    pub body: Vec<u8>,
}

/// What the node reports to the application, from [`Node::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<P> {
    /// A new message arrived. Each id is delivered once over the node's whole life, restarts
    /// included.
    Delivered(Delivery<P>),
    /// `peer` acknowledged our message `id` (it holds it); nothing more is sent to it.
    Acked {
        /// The peer.
        peer: P,
        /// The message.
        id: MessageId,
    },
    /// The node gave up on sending `id` to `peer` after
    /// [`Config::max_send_count`] sends.
    Expired {
        /// The peer.
        peer: P,
        /// The message.
        id: MessageId,
    },
    /// The store failed and the node has stopped: drop it and reopen the store with
    /// [`Node::open`]. Reported once; afterwards every input returns a `Stopped` error.
    StoreFailed(StoreError),
}

impl<P> From<StoredEvent<P>> for Event<P> {
    fn from(e: StoredEvent<P>) -> Self {
        match e {
            StoredEvent::Delivered(d) => Event::Delivered(d),
            StoredEvent::Acked { peer, id } => Event::Acked { peer, id },
            StoredEvent::Expired { peer, id } => Event::Expired { peer, id },
        }
    }
}

/// Counters, for diagnostics and tests. Counting is the only thing the node does with a
/// peer's misbehaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Payloads handled (valid MVDS).
    pub payloads_received: u64,
    /// Inputs refused as not MVDS.
    pub payloads_not_mvds: u64,
    /// Payloads from a new peer dropped because [`MAX_PEERS`] peers are tracked.
    pub payloads_refused: u64,
    /// New messages delivered.
    pub messages_delivered: u64,
    /// Messages that arrived again (acked again, not delivered).
    pub messages_duplicate: u64,
    /// New messages not accepted because the event queue was full (not acked; the peer
    /// retransmits them).
    pub messages_deferred: u64,
    /// Acks not processed because the event queue was full (the peer acks again when we
    /// retransmit).
    pub acks_deferred: u64,
    /// Acks not queued because the peer's ack queue was full.
    pub acks_dropped: u64,
    /// Offers or requests not turned into records because of the record limits.
    pub records_refused: u64,
    /// Requests for messages we do not hold or do not owe the peer (no offer pending), or
    /// from peers outside the message's group.
    pub requests_ignored: u64,
    /// Payloads produced.
    pub payloads_sent: u64,
    /// Bytes of the payloads produced.
    pub bytes_sent: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    kind: RecordKind,
    group: Option<GroupId>,
    send_count: u32,
    next_epoch: u64,
    seq: u64,
}

impl Record {
    fn stored<P>(&self, peer: P, id: MessageId) -> StoredRecord<P> {
        StoredRecord {
            peer,
            id,
            kind: self.kind,
            group: self.group,
            send_count: self.send_count,
            next_epoch: self.next_epoch,
            seq: self.seq,
        }
    }
}

#[derive(Debug)]
struct PeerState {
    records: BTreeMap<MessageId, Record>,
    /// `(next_epoch, seq, id)` of every record: the send schedule.
    due: BTreeSet<(u64, u64, MessageId)>,
    /// Acks to send, in arrival order (never stored: a lost ack is sent again when the message
    /// arrives again).
    acks: IndexSet<MessageId>,
    online: bool,
    /// Number of groups the peer shares with us.
    groups: usize,
}

impl PeerState {
    fn new() -> Self {
        PeerState {
            records: BTreeMap::new(),
            due: BTreeSet::new(),
            acks: IndexSet::new(),
            online: true,
            groups: 0,
        }
    }

    fn put(&mut self, id: MessageId, rec: Record) -> Option<Record> {
        let old = self.records.insert(id, rec);
        if let Some(o) = &old {
            self.due.remove(&(o.next_epoch, o.seq, id));
        }
        self.due.insert((rec.next_epoch, rec.seq, id));
        old
    }

    fn take(&mut self, id: &MessageId) -> Option<Record> {
        let r = self.records.remove(id)?;
        self.due.remove(&(r.next_epoch, r.seq, *id));
        Some(r)
    }

    fn is_idle(&self) -> bool {
        self.records.is_empty() && self.acks.is_empty() && self.online && self.groups == 0
    }
}

#[derive(Debug)]
struct Held {
    message: StoredMessage,
    /// Records that need the body.
    refs: usize,
}

/// Everything besides the peers, so that loops over peers can update it.
#[derive(Debug)]
struct Book<P> {
    held: BTreeMap<MessageId, Held>,
    held_bytes: usize,
    records_total: usize,
    requests_total: usize,
    events: VecDeque<(u64, StoredEvent<P>)>,
    event_bytes: usize,
    next_event_seq: u64,
    next_record_seq: u64,
}

/// Memory charged to a queued event.
fn event_cost<P>(e: &StoredEvent<P>) -> usize {
    match e {
        StoredEvent::Delivered(d) => d.body.len() + 128,
        StoredEvent::Acked { .. } | StoredEvent::Expired { .. } => 64,
    }
}

impl<P: Clone> Book<P> {
    fn events_full(&self, extra: usize) -> bool {
        self.events.len() >= MAX_PENDING_EVENTS
            || self.event_bytes.saturating_add(extra) > MAX_PENDING_EVENT_BYTES
    }

    fn push_event(&mut self, event: StoredEvent<P>, ops: &mut Vec<StoreOp<P>>) {
        let seq = self.next_event_seq;
        self.next_event_seq += 1;
        self.event_bytes += event_cost(&event);
        ops.push(StoreOp::PushEvent {
            seq,
            event: event.clone(),
        });
        self.events.push_back((seq, event));
    }

    fn unref(&mut self, id: &MessageId, ops: &mut Vec<StoreOp<P>>) {
        if let Some(h) = self.held.get_mut(id) {
            h.refs = h.refs.saturating_sub(1);
            if h.refs == 0 {
                self.held_bytes = self.held_bytes.saturating_sub(h.message.body.len());
                self.held.remove(id);
                ops.push(StoreOp::DeleteMessage { id: *id });
            }
        }
    }

    /// Accounts for a record removed from a peer.
    fn forget(&mut self, rec: &Record, id: &MessageId, ops: &mut Vec<StoreOp<P>>) {
        self.records_total = self.records_total.saturating_sub(1);
        match rec.kind {
            RecordKind::Request => self.requests_total = self.requests_total.saturating_sub(1),
            RecordKind::Offer | RecordKind::Message => self.unref(id, ops),
        }
    }

    fn next_seq(&mut self) -> u64 {
        let s = self.next_record_seq;
        self.next_record_seq += 1;
        s
    }
}

/// A 2/MVDS node: keeps every message of a group in sync with each peer that shares the group,
/// over a network that loses, repeats and reorders payloads and peers that come and go.
///
/// # Driving it
///
/// The node does no I/O and reads no clock. Its inputs are
/// - [`handle_payload`](Self::handle_payload): bytes a peer sent (after decryption);
/// - [`handle_tick`](Self::handle_tick): one epoch has passed (status-go ticks every 300 ms,
///   [`STATUS_GO_EPOCH`](crate::STATUS_GO_EPOCH)); at most one payload per peer is produced
///   per tick, carrying every ack and every due record for that peer that fits;
/// - [`handle_peer_online`](Self::handle_peer_online) /
///   [`handle_peer_offline`](Self::handle_peer_offline): reachability hints;
///
/// its commands are [`send`](Self::send), [`add_peer`](Self::add_peer) and
/// [`remove_peer`](Self::remove_peer); its outputs, queued until drained, are
/// [`poll_transmit`](Self::poll_transmit) and [`poll_event`](Self::poll_event).
///
/// ```
/// use mvds::{Config, Event, GroupId, MemoryStore, Mode, Node};
///
/// let group = GroupId::one_to_one(&[1; 32], &[2; 32]);
/// let mut alice: Node<&str> = Node::open(Config::default(), [1; 32], MemoryStore::new())?;
/// let mut bob: Node<&str> = Node::open(Config::default(), [2; 32], MemoryStore::new())?;
/// alice.add_peer(group, "bob")?;
/// bob.add_peer(group, "alice")?;
///
/// let id = alice.send(group, b"hi".to_vec(), Mode::Batch, 1_700_000_000)?;
/// for _ in 0..3 {
///     alice.handle_tick()?;
///     bob.handle_tick()?;
///     while let Some(t) = alice.poll_transmit() {
///         bob.handle_payload("alice", &t.bytes)?;
///     }
///     while let Some(t) = bob.poll_transmit() {
///         alice.handle_payload("bob", &t.bytes)?;
///     }
/// }
/// assert!(matches!(bob.poll_event(), Some(Event::Delivered(d)) if d.id == id && d.body == b"hi"));
/// assert_eq!(alice.poll_event(), Some(Event::Acked { peer: "bob", id }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Guarantees
///
/// - A message is delivered at most once per node, ever: its id is marked known in the store in
///   the same commit that queues its [`Event::Delivered`], and a known id is only acked again.
/// - A message is acked only after that commit, so a crash never loses an acked message; what
///   was not committed is retransmitted by its sender.
/// - The hand-off is [`poll_event`](Self::poll_event): the event leaves the store as it is
///   returned. An application that can crash between receiving an event and making its effect
///   durable should keep its data in the same database (see
///   [`SqliteStore::from_connection`](crate::SqliteStore::from_connection)) or deduplicate by
///   [`MessageId`].
/// - Records are retransmitted with exponential backoff and jitter (see [`Config`]) until the
///   peer answers; with `max_send_count: None` every message reaches every reachable peer.
/// - Any store failure stops the node ([`Event::StoreFailed`]); reopen it from the store.
///
/// Received messages are not shared onward to the other peers of their group (no relaying):
/// each sender reaches each peer itself, as status-go's 1:1 groups do.
pub struct Node<P, S = MemoryStore<P>> {
    config: Config,
    store: S,
    rng: ChaCha20Rng,
    epoch: u64,
    last_saved_epoch: u64,
    groups: BTreeMap<GroupId, BTreeSet<P>>,
    peers: BTreeMap<P, PeerState>,
    book: Book<P>,
    transmits: VecDeque<Transmit<P>>,
    stopped: Option<StoreError>,
    stop_reported: bool,
    stats: Stats,
}

impl<P: Debug, S> Debug for Node<P, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("epoch", &self.epoch)
            .field("groups", &self.groups.len())
            .field("peers", &self.peers.len())
            .field("records", &self.book.records_total)
            .field("pending_events", &self.book.events.len())
            .field("stopped", &self.stopped.is_some())
            .finish_non_exhaustive()
    }
}

impl<P, S> Node<P, S>
where
    P: Clone + Ord + Debug,
    S: SyncStore<P>,
{
    /// Opens a node on `store`, resuming from whatever it holds (an empty store starts fresh at
    /// epoch 0). `seed` seeds the RNG that draws retransmission jitter; pass a fresh one per
    /// process start (any value is safe: the jitter only spreads load).
    pub fn open(config: Config, seed: [u8; 32], mut store: S) -> Result<Self, StoreError> {
        let snap = store.load()?;
        let mut node = Node {
            config,
            store,
            rng: ChaCha20Rng::from_seed(seed),
            epoch: snap.epoch,
            last_saved_epoch: snap.epoch,
            groups: BTreeMap::new(),
            peers: BTreeMap::new(),
            book: Book {
                held: BTreeMap::new(),
                held_bytes: 0,
                records_total: 0,
                requests_total: 0,
                events: VecDeque::new(),
                event_bytes: 0,
                next_event_seq: 0,
                next_record_seq: 0,
            },
            transmits: VecDeque::new(),
            stopped: None,
            stop_reported: false,
            stats: Stats::default(),
        };
        for (group, peer) in snap.members {
            if node.groups.entry(group).or_default().insert(peer.clone()) {
                node.peers.entry(peer).or_insert_with(PeerState::new).groups += 1;
            }
        }
        for (id, message) in snap.messages {
            node.book.held_bytes += message.body.len();
            node.book.held.insert(id, Held { message, refs: 0 });
        }
        for r in snap.records {
            node.book.next_record_seq = node.book.next_record_seq.max(r.seq.saturating_add(1));
            match r.kind {
                RecordKind::Request => node.book.requests_total += 1,
                RecordKind::Offer | RecordKind::Message => match node.book.held.get_mut(&r.id) {
                    Some(h) => h.refs += 1,
                    // A record whose body is gone cannot be served; leave it out.
                    None => continue,
                },
            }
            node.book.records_total += 1;
            let rec = Record {
                kind: r.kind,
                group: r.group,
                send_count: r.send_count,
                next_epoch: r.next_epoch,
                seq: r.seq,
            };
            node.peers
                .entry(r.peer)
                .or_insert_with(PeerState::new)
                .put(r.id, rec);
        }
        let Book {
            held, held_bytes, ..
        } = &mut node.book;
        held.retain(|_, h| {
            if h.refs == 0 {
                *held_bytes = held_bytes.saturating_sub(h.message.body.len());
            }
            h.refs > 0
        });
        for (seq, event) in snap.events {
            node.book.next_event_seq = node.book.next_event_seq.max(seq.saturating_add(1));
            node.book.event_bytes += event_cost(&event);
            node.book.events.push_back((seq, event));
        }
        Ok(node)
    }

    // ----- commands -----

    /// `peer` shares `group`: our messages in the group will be sent to it. Idempotent.
    pub fn add_peer(&mut self, group: GroupId, peer: P) -> Result<(), MembershipError> {
        if self.stopped.is_some() {
            return Err(MembershipError::Stopped);
        }
        let members = self.groups.get(&group);
        if members.is_some_and(|m| m.contains(&peer)) {
            return Ok(());
        }
        if members.is_none() && self.groups.len() >= MAX_GROUPS {
            return Err(MembershipError::TooManyGroups);
        }
        if members.is_some_and(|m| m.len() >= MAX_PEERS_PER_GROUP) {
            return Err(MembershipError::GroupFull);
        }
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            return Err(MembershipError::TooManyPeers);
        }
        self.commit(vec![StoreOp::AddMember {
            group,
            peer: peer.clone(),
        }])?;
        self.groups.entry(group).or_default().insert(peer.clone());
        self.peers.entry(peer).or_insert_with(PeerState::new).groups += 1;
        Ok(())
    }

    /// `peer` no longer shares `group`: pending offers and messages of the group to it are
    /// dropped. Idempotent.
    pub fn remove_peer(&mut self, group: GroupId, peer: &P) -> Result<(), MembershipError> {
        if self.stopped.is_some() {
            return Err(MembershipError::Stopped);
        }
        if !self.groups.get(&group).is_some_and(|m| m.contains(peer)) {
            return Ok(());
        }
        let mut ops = vec![StoreOp::RemoveMember {
            group,
            peer: peer.clone(),
        }];
        if let Some(ps) = self.peers.get_mut(peer) {
            let doomed: Vec<MessageId> = ps
                .records
                .iter()
                .filter(|(_, r)| r.kind != RecordKind::Request && r.group == Some(group))
                .map(|(id, _)| *id)
                .collect();
            for id in doomed {
                if let Some(r) = ps.take(&id) {
                    ops.push(StoreOp::DeleteRecord {
                        peer: peer.clone(),
                        id,
                    });
                    self.book.forget(&r, &id, &mut ops);
                }
            }
            ps.groups = ps.groups.saturating_sub(1);
        }
        if let Some(m) = self.groups.get_mut(&group) {
            m.remove(peer);
            if m.is_empty() {
                self.groups.remove(&group);
            }
        }
        self.gc_peer(peer);
        self.commit(ops)?;
        Ok(())
    }

    /// Sends `body` to every peer sharing `group`, in `mode`. `timestamp` is the wall-clock
    /// time in Unix seconds (it is part of the message and of its id). Returns the message id.
    ///
    /// The message, its records and its id are committed before this returns; the first
    /// payload leaves on the next [`handle_tick`](Self::handle_tick).
    pub fn send(
        &mut self,
        group: GroupId,
        body: Vec<u8>,
        mode: Mode,
        timestamp: i64,
    ) -> Result<MessageId, SendError> {
        if self.stopped.is_some() {
            return Err(SendError::Stopped);
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(SendError::BodyTooLarge {
                len: body.len(),
                max: MAX_BODY_BYTES,
            });
        }
        let members: Vec<P> = match self.groups.get(&group) {
            Some(m) if !m.is_empty() => m.iter().cloned().collect(),
            _ => return Err(SendError::NoPeers),
        };
        let full = |p: &P| {
            self.peers
                .get(p)
                .is_some_and(|ps| ps.records.len() >= MAX_OUTSTANDING_RECORDS_PER_PEER)
        };
        if self.book.held_bytes.saturating_add(body.len()) > MAX_HELD_BYTES
            || self.book.records_total.saturating_add(members.len()) > MAX_RECORDS
            || members.iter().any(full)
        {
            return Err(SendError::Backlog);
        }
        let id = MessageId::compute(&group, timestamp, &body);
        if self.book.held.contains_key(&id) || self.store_is_known(&id)? {
            return Err(SendError::Duplicate);
        }
        let kind = match mode {
            Mode::Interactive => RecordKind::Offer,
            Mode::Batch => RecordKind::Message,
        };
        let message = StoredMessage {
            group,
            timestamp,
            body,
        };
        let first_seq = self.book.next_record_seq;
        let next_epoch = self.epoch.saturating_add(1);
        let rec = |i: u64| Record {
            kind,
            group: Some(group),
            send_count: 0,
            next_epoch,
            seq: first_seq + i,
        };
        let mut ops = vec![
            StoreOp::MarkKnown { id },
            StoreOp::PutMessage {
                id,
                message: message.clone(),
            },
        ];
        for (i, p) in (0u64..).zip(&members) {
            ops.push(StoreOp::PutRecord(rec(i).stored(p.clone(), id)));
        }
        self.commit(ops)?;
        for (i, p) in (0u64..).zip(&members) {
            let r = rec(i);
            self.peers
                .entry(p.clone())
                .or_insert_with(PeerState::new)
                .put(id, r);
        }
        self.book.next_record_seq = first_seq + members.len() as u64;
        self.book.records_total += members.len();
        self.book.held_bytes += message.body.len();
        self.book.held.insert(
            id,
            Held {
                message,
                refs: members.len(),
            },
        );
        Ok(id)
    }

    // ----- inputs -----

    /// Handles the bytes of a payload from `from`.
    ///
    /// Bytes that are not an MVDS payload (undecodable, empty, over a limit, ids that are not
    /// 32 bytes) return [`HandleError::NotMvds`] and change nothing, so the caller can try
    /// them as something else. Otherwise every ack, request, offer and message is processed and
    /// the changes are committed in one transaction; replies (acks, requested messages) leave
    /// on the next tick.
    pub fn handle_payload(&mut self, from: P, bytes: &[u8]) -> Result<(), HandleError> {
        if self.stopped.is_some() {
            return Err(HandleError::Stopped);
        }
        let records = match wire::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.stats.payloads_not_mvds += 1;
                return Err(e.into());
            }
        };
        if !self.peers.contains_key(&from) {
            if self.peers.len() >= MAX_PEERS {
                self.stats.payloads_refused += 1;
                return Ok(());
            }
            self.peers.insert(from.clone(), PeerState::new());
        }
        self.stats.payloads_received += 1;
        let mut ops = Vec::new();
        let mut staged = BTreeSet::new();
        for id in &records.acks {
            self.on_ack(&from, id, &mut ops);
        }
        for id in &records.requests {
            self.on_request(&from, id, &mut ops);
        }
        for (id, group) in &records.offers {
            self.on_offer(&from, id, *group, &mut staged, &mut ops)?;
        }
        for m in records.messages {
            self.on_message(&from, m, &mut staged, &mut ops)?;
        }
        self.commit(ops)?;
        self.gc_peer(&from);
        Ok(())
    }

    fn on_ack(&mut self, from: &P, id: &MessageId, ops: &mut Vec<StoreOp<P>>) {
        let Some(ps) = self.peers.get_mut(from) else {
            return;
        };
        if ps
            .records
            .get(id)
            .is_none_or(|r| r.kind == RecordKind::Request)
        {
            return;
        }
        if self.book.events_full(0) {
            self.stats.acks_deferred += 1;
            return;
        }
        if let Some(r) = ps.take(id) {
            ops.push(StoreOp::DeleteRecord {
                peer: from.clone(),
                id: *id,
            });
            self.book.forget(&r, id, ops);
            self.book.push_event(
                StoredEvent::Acked {
                    peer: from.clone(),
                    id: *id,
                },
                ops,
            );
        }
    }

    fn on_request(&mut self, from: &P, id: &MessageId, ops: &mut Vec<StoreOp<P>>) {
        let Some(group) = self.book.held.get(id).map(|h| h.message.group) else {
            self.stats.requests_ignored += 1;
            return;
        };
        if !self.groups.get(&group).is_some_and(|m| m.contains(from)) {
            self.stats.requests_ignored += 1;
            return;
        }
        let Some(ps) = self.peers.get_mut(from) else {
            return;
        };
        let soon = self.epoch.saturating_add(1);
        let new = match ps.records.get(id).copied() {
            Some(r) if r.kind == RecordKind::Offer => Record {
                kind: RecordKind::Message,
                send_count: 0,
                next_epoch: soon,
                ..r
            },
            // Asked again: the message was lost; send it on the next tick.
            Some(r) if r.kind == RecordKind::Message && r.next_epoch > soon => Record {
                next_epoch: soon,
                ..r
            },
            // Already due, or a request record (we hold the message, so we never request it).
            Some(_) => return,
            // No record: the peer acked the message already (a stale, repeated request), or it
            // joined the group after the message was sent; either way there is nothing owed.
            None => {
                self.stats.requests_ignored += 1;
                return;
            }
        };
        ps.put(*id, new);
        ops.push(StoreOp::PutRecord(new.stored(from.clone(), *id)));
    }

    fn on_offer(
        &mut self,
        from: &P,
        id: &MessageId,
        group: Option<GroupId>,
        staged: &mut BTreeSet<MessageId>,
        ops: &mut Vec<StoreOp<P>>,
    ) -> Result<(), StoreError> {
        if self.is_known(staged, id)? {
            self.queue_ack(from, id);
            return Ok(());
        }
        let Some(ps) = self.peers.get_mut(from) else {
            return Ok(());
        };
        if ps.records.contains_key(id) {
            return Ok(());
        }
        if ps.records.len() >= MAX_OUTSTANDING_RECORDS_PER_PEER
            || self.book.records_total >= MAX_RECORDS
        {
            self.stats.records_refused += 1;
            return Ok(());
        }
        let rec = Record {
            kind: RecordKind::Request,
            group,
            send_count: 0,
            next_epoch: self.epoch.saturating_add(1),
            seq: self.book.next_seq(),
        };
        ps.put(*id, rec);
        self.book.records_total += 1;
        self.book.requests_total += 1;
        ops.push(StoreOp::PutRecord(rec.stored(from.clone(), *id)));
        Ok(())
    }

    fn on_message(
        &mut self,
        from: &P,
        m: proto::mvds::Message,
        staged: &mut BTreeSet<MessageId>,
        ops: &mut Vec<StoreOp<P>>,
    ) -> Result<(), StoreError> {
        // The decoder checked the length.
        let Some(group) = GroupId::from_slice(&m.group_id) else {
            return Ok(());
        };
        let id = MessageId::compute(&group, m.timestamp, &m.body);
        if self.is_known(staged, &id)? {
            self.stats.messages_duplicate += 1;
            self.queue_ack(from, &id);
            return Ok(());
        }
        if self.book.events_full(m.body.len() + 128) {
            self.stats.messages_deferred += 1;
            return Ok(());
        }
        staged.insert(id);
        ops.push(StoreOp::MarkKnown { id });
        self.book.push_event(
            StoredEvent::Delivered(Delivery {
                from: from.clone(),
                id,
                group,
                timestamp: m.timestamp,
                body: m.body,
            }),
            ops,
        );
        if self.book.requests_total > 0 {
            for (p, ps) in &mut self.peers {
                if ps
                    .records
                    .get(&id)
                    .is_some_and(|r| r.kind == RecordKind::Request)
                    && let Some(r) = ps.take(&id)
                {
                    ops.push(StoreOp::DeleteRecord {
                        peer: p.clone(),
                        id,
                    });
                    self.book.forget(&r, &id, ops);
                }
            }
        }
        self.queue_ack(from, &id);
        self.stats.messages_delivered += 1;
        Ok(())
    }

    fn queue_ack(&mut self, to: &P, id: &MessageId) {
        if let Some(ps) = self.peers.get_mut(to) {
            if ps.acks.len() < MAX_PENDING_ACKS_PER_PEER {
                ps.acks.insert(*id);
            } else if !ps.acks.contains(id) {
                self.stats.acks_dropped += 1;
            }
        }
    }

    /// One epoch has passed: advance the epoch and build at most one payload per online peer
    /// with its pending acks and every record due now (retransmissions included), as many as
    /// fit in [`MAX_PAYLOAD_BYTES`](crate::MAX_PAYLOAD_BYTES) and
    /// [`MAX_RECORDS_PER_PAYLOAD`]; the rest wait for the next tick. Sent records are
    /// rescheduled with backoff and committed before the payloads are queued.
    pub fn handle_tick(&mut self) -> Result<(), TickError> {
        if self.stopped.is_some() {
            return Err(TickError::Stopped);
        }
        self.epoch = self.epoch.saturating_add(1);
        let e = self.epoch;
        let mut ops = Vec::new();
        let mut out = Vec::new();
        for (peer, ps) in &mut self.peers {
            if !ps.online {
                continue;
            }
            let mut b = Builder::default();
            let mut acked = 0;
            for id in &ps.acks {
                if !b.ack(id) {
                    break;
                }
                acked += 1;
            }
            ps.acks.drain(..acked);
            let due: Vec<(u64, u64, MessageId)> = ps
                .due
                .iter()
                .take_while(|k| k.0 <= e)
                .take(MAX_RECORDS_PER_PAYLOAD)
                .copied()
                .collect();
            for (_, _, id) in due {
                let Some(r) = ps.records.get(&id).copied() else {
                    continue;
                };
                if self
                    .config
                    .max_send_count
                    .is_some_and(|max| r.send_count >= max)
                {
                    if self.book.events_full(0) {
                        continue;
                    }
                    ps.take(&id);
                    ops.push(StoreOp::DeleteRecord {
                        peer: peer.clone(),
                        id,
                    });
                    self.book.forget(&r, &id, &mut ops);
                    self.book.push_event(
                        StoredEvent::Expired {
                            peer: peer.clone(),
                            id,
                        },
                        &mut ops,
                    );
                    continue;
                }
                let fits = match r.kind {
                    RecordKind::Offer => b.offer(&id),
                    RecordKind::Request => b.request(&id),
                    RecordKind::Message => match self.book.held.get(&id) {
                        Some(h) => {
                            b.message(&h.message.group, h.message.timestamp, &h.message.body)
                        }
                        None => continue,
                    },
                };
                if !fits {
                    break;
                }
                let send_count = r.send_count.saturating_add(1);
                let next_epoch =
                    e.saturating_add(self.config.next_interval(send_count, &mut self.rng));
                let new = Record {
                    send_count,
                    next_epoch,
                    ..r
                };
                ps.put(id, new);
                ops.push(StoreOp::PutRecord(new.stored(peer.clone(), id)));
            }
            if !b.is_empty() {
                out.push(Transmit {
                    to: peer.clone(),
                    bytes: b.finish(),
                });
            }
        }
        if !ops.is_empty() || e >= self.last_saved_epoch.saturating_add(EPOCH_SAVE_INTERVAL) {
            ops.push(StoreOp::SetEpoch(e));
            self.commit(ops)?;
        }
        for t in out {
            self.stats.payloads_sent += 1;
            self.stats.bytes_sent += t.bytes.len() as u64;
            self.transmits.push_back(t);
        }
        Ok(())
    }

    /// `peer` is reachable again: every record pending for it is rescheduled to go out within
    /// `1 + uniform[0, online_jitter]` epochs (unless due sooner), instead of waiting out its
    /// backoff. Not persisted: after a restart every peer is presumed online.
    pub fn handle_peer_online(&mut self, peer: &P) {
        let Some(ps) = self.peers.get_mut(peer) else {
            return;
        };
        ps.online = true;
        let ids: Vec<MessageId> = ps.records.keys().copied().collect();
        for id in ids {
            let target = self.epoch.saturating_add(1).saturating_add(jitter(
                self.config.online_jitter.saturating_add(1),
                &mut self.rng,
            ));
            if let Some(r) = ps.records.get(&id).copied()
                && r.next_epoch > target
            {
                ps.put(
                    id,
                    Record {
                        next_epoch: target,
                        ..r
                    },
                );
            }
        }
        self.gc_peer(peer);
    }

    /// `peer` is unreachable: nothing is sent to it (and no send is counted) until
    /// [`handle_peer_online`](Self::handle_peer_online). Not persisted.
    pub fn handle_peer_offline(&mut self, peer: &P) {
        if !self.peers.contains_key(peer) && self.peers.len() >= MAX_PEERS {
            return;
        }
        self.peers
            .entry(peer.clone())
            .or_insert_with(PeerState::new)
            .online = false;
    }

    // ----- outputs -----

    /// The next payload to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<P>> {
        self.transmits.pop_front()
    }

    /// The next event for the application. A stored event is removed from the store as it is
    /// returned (one commit per event).
    pub fn poll_event(&mut self) -> Option<Event<P>> {
        if let Some(e) = &self.stopped {
            if self.stop_reported {
                return None;
            }
            self.stop_reported = true;
            return Some(Event::StoreFailed(e.clone()));
        }
        let seq = self.book.events.front()?.0;
        if let Err(e) = self.commit(vec![StoreOp::PopEvent { seq }]) {
            self.stop_reported = true;
            return Some(Event::StoreFailed(e));
        }
        let (_, event) = self.book.events.pop_front()?;
        self.book.event_bytes = self.book.event_bytes.saturating_sub(event_cost(&event));
        Some(event.into())
    }

    // ----- state -----

    /// The current epoch: the number of ticks over the node's life, restarts included (every
    /// commit saves it, and an idle node saves it every
    /// [`EPOCH_SAVE_INTERVAL`](crate::EPOCH_SAVE_INTERVAL) ticks).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether a store failure stopped the node.
    pub fn is_stopped(&self) -> bool {
        self.stopped.is_some()
    }

    /// Records (offers, requests, messages) outstanding for `peer`.
    pub fn outstanding(&self, peer: &P) -> usize {
        self.peers.get(peer).map_or(0, |ps| ps.records.len())
    }

    /// Records outstanding over all peers.
    pub fn outstanding_total(&self) -> usize {
        self.book.records_total
    }

    /// Acks waiting for the next tick, over all peers.
    pub fn pending_acks(&self) -> usize {
        self.peers.values().map(|ps| ps.acks.len()).sum()
    }

    /// Events waiting for [`poll_event`](Self::poll_event).
    pub fn pending_events(&self) -> usize {
        self.book.events.len()
    }

    /// The peers sharing `group`, in order.
    pub fn peers_of(&self, group: &GroupId) -> impl Iterator<Item = &P> {
        self.groups.get(group).into_iter().flatten()
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably: for wrappers such as [`FaultInjectingStore`](crate::FaultInjectingStore)
    /// that need arming. Changing the stored state behind the node's back is not supported.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Gives the store back (to reopen it, or after a failure).
    pub fn into_store(self) -> S {
        self.store
    }

    // ----- internals -----

    /// Commits `ops`, with the current epoch if it moved since it was last saved.
    fn commit(&mut self, mut ops: Vec<StoreOp<P>>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let saves_epoch = self.epoch != self.last_saved_epoch;
        if saves_epoch && !ops.iter().any(|op| matches!(op, StoreOp::SetEpoch(_))) {
            ops.push(StoreOp::SetEpoch(self.epoch));
        }
        self.store.commit(ops).map_err(|e| self.stop(e))?;
        self.last_saved_epoch = self.epoch;
        Ok(())
    }

    fn stop(&mut self, e: StoreError) -> StoreError {
        if self.stopped.is_none() {
            self.stopped = Some(e.clone());
        }
        e
    }

    fn store_is_known(&mut self, id: &MessageId) -> Result<bool, StoreError> {
        self.store.is_known(id).map_err(|e| self.stop(e))
    }

    fn is_known(
        &mut self,
        staged: &BTreeSet<MessageId>,
        id: &MessageId,
    ) -> Result<bool, StoreError> {
        if staged.contains(id) || self.book.held.contains_key(id) {
            return Ok(true);
        }
        self.store_is_known(id)
    }

    fn gc_peer(&mut self, peer: &P) {
        if self.peers.get(peer).is_some_and(PeerState::is_idle) {
            self.peers.remove(peer);
        }
    }
}
