//! Persistence: the [`SyncStore`] trait, an in-memory backend, a SQLite backend and a
//! fault-injecting wrapper for crash tests.
//!
//! The node keeps its working state in memory and writes every change through the store before
//! anything it implies leaves the node: a message is marked known (and its delivery event
//! queued) in the same commit before its ack can be sent; a record's new send count is committed
//! before the payload carrying it is handed out; a delivery event is removed from the store when
//! [`Node::poll_event`](crate::Node::poll_event) hands it to the application. Each call to the
//! node makes at most one [`SyncStore::commit`], and a commit applies all of its operations or
//! none. A node reopened from its store therefore resumes where the last commit left it: it
//! loses nothing (what was not committed is retransmitted by the peer, which never saw an ack)
//! and delivers nothing twice (known ids are acked, not delivered).

mod sqlite;

pub use sqlite::{PeerBytes, SqliteStore, Synchronous};

use std::collections::{BTreeMap, BTreeSet};

use crate::error::StoreError;
use crate::id::{GroupId, MessageId};
use crate::node::Delivery;

/// The type of a stored record (2/MVDS "State"). Acks are never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    /// We offer the peer a message we hold (interactive mode).
    Offer,
    /// We ask the peer for a message it offered.
    Request,
    /// We send the peer a message we hold.
    Message,
}

/// A record: something this node owes a peer until the peer answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord<P> {
    /// The peer the record is for.
    pub peer: P,
    /// The message it is about.
    pub id: MessageId,
    /// Offer, request or message.
    pub kind: RecordKind,
    /// The group of the message; unknown for a request answering a plain offer.
    pub group: Option<GroupId>,
    /// How many times the record has been sent.
    pub send_count: u32,
    /// The first epoch at which it may be sent again.
    pub next_epoch: u64,
    /// Creation order, so records due in the same epoch go out first come, first served.
    pub seq: u64,
}

/// A message body with its group and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The group.
    pub group: GroupId,
    /// Unix seconds, as sent.
    pub timestamp: i64,
    /// The application's bytes.
    pub body: Vec<u8>,
}

/// An event waiting for the application; stored so that a restart neither loses nor repeats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredEvent<P> {
    /// A new message arrived.
    Delivered(Delivery<P>),
    /// A peer acknowledged one of our messages.
    Acked {
        /// The peer.
        peer: P,
        /// The message.
        id: MessageId,
    },
    /// A record exhausted [`Config::max_send_count`](crate::Config::max_send_count).
    Expired {
        /// The peer.
        peer: P,
        /// The message.
        id: MessageId,
    },
}

/// Everything a node needs to resume; read once by [`Node::open`](crate::Node::open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot<P> {
    /// The last committed epoch.
    pub epoch: u64,
    /// Group memberships.
    pub members: Vec<(GroupId, P)>,
    /// Outstanding records.
    pub records: Vec<StoredRecord<P>>,
    /// Bodies of our messages that some record still needs.
    pub messages: Vec<(MessageId, StoredMessage)>,
    /// Events not yet handed to the application, by sequence number.
    pub events: Vec<(u64, StoredEvent<P>)>,
}

impl<P> Default for Snapshot<P> {
    fn default() -> Self {
        Snapshot {
            epoch: 0,
            members: Vec::new(),
            records: Vec::new(),
            messages: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// One change to the stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp<P> {
    /// The current epoch.
    SetEpoch(u64),
    /// `peer` shares `group`.
    AddMember {
        /// The group.
        group: GroupId,
        /// The peer.
        peer: P,
    },
    /// `peer` no longer shares `group`.
    RemoveMember {
        /// The group.
        group: GroupId,
        /// The peer.
        peer: P,
    },
    /// Inserts or replaces the record for `(record.peer, record.id)`.
    PutRecord(StoredRecord<P>),
    /// Removes the record for `(peer, id)` if present.
    DeleteRecord {
        /// The peer.
        peer: P,
        /// The message.
        id: MessageId,
    },
    /// Stores a body we must be able to send.
    PutMessage {
        /// Its id.
        id: MessageId,
        /// The message.
        message: StoredMessage,
    },
    /// Drops a body no record needs any more.
    DeleteMessage {
        /// Its id.
        id: MessageId,
    },
    /// Remembers for good that this node holds `id` (sent or delivered), so it is never
    /// delivered again.
    MarkKnown {
        /// The id.
        id: MessageId,
    },
    /// Queues an event for the application.
    PushEvent {
        /// Its sequence number (increasing).
        seq: u64,
        /// The event.
        event: StoredEvent<P>,
    },
    /// Removes a queued event (handed to the application).
    PopEvent {
        /// Its sequence number.
        seq: u64,
    },
}

/// Where a [`Node`](crate::Node) keeps its state.
///
/// Contract: [`commit`](SyncStore::commit) applies all of its operations, in order, or none
/// (a transaction), and once it returns `Ok` they survive a crash. After any error the node
/// stops using the store; [`Node::open`](crate::Node::open) reads it afresh.
pub trait SyncStore<P> {
    /// Reads the state to resume from. Memory use is bounded by what the node wrote, which its
    /// own limits bound (the known-id set is not read; see [`SyncStore::is_known`]).
    fn load(&mut self) -> Result<Snapshot<P>, StoreError>;
    /// Whether `id` was ever marked known. Kept out of [`Snapshot`] so that the ever-growing set
    /// of known ids stays on disk.
    fn is_known(&mut self, id: &MessageId) -> Result<bool, StoreError>;
    /// Applies `ops` atomically.
    fn commit(&mut self, ops: Vec<StoreOp<P>>) -> Result<(), StoreError>;
}

/// A store in memory: for tests, simulations and nodes that need not survive the process.
#[derive(Debug, Clone)]
pub struct MemoryStore<P> {
    epoch: u64,
    members: BTreeSet<(GroupId, P)>,
    records: BTreeMap<(P, MessageId), StoredRecord<P>>,
    messages: BTreeMap<MessageId, StoredMessage>,
    known: BTreeSet<MessageId>,
    events: BTreeMap<u64, StoredEvent<P>>,
}

impl<P> Default for MemoryStore<P> {
    fn default() -> Self {
        MemoryStore {
            epoch: 0,
            members: BTreeSet::new(),
            records: BTreeMap::new(),
            messages: BTreeMap::new(),
            known: BTreeSet::new(),
            events: BTreeMap::new(),
        }
    }
}

impl<P> MemoryStore<P> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of known ids.
    pub fn known_len(&self) -> usize {
        self.known.len()
    }

    /// Number of stored records.
    pub fn records_len(&self) -> usize {
        self.records.len()
    }

    /// Number of stored bodies.
    pub fn messages_len(&self) -> usize {
        self.messages.len()
    }
}

impl<P: Clone + Ord> SyncStore<P> for MemoryStore<P> {
    fn load(&mut self) -> Result<Snapshot<P>, StoreError> {
        Ok(Snapshot {
            epoch: self.epoch,
            members: self.members.iter().cloned().collect(),
            records: self.records.values().cloned().collect(),
            messages: self.messages.iter().map(|(k, v)| (*k, v.clone())).collect(),
            events: self.events.iter().map(|(k, v)| (*k, v.clone())).collect(),
        })
    }

    fn is_known(&mut self, id: &MessageId) -> Result<bool, StoreError> {
        Ok(self.known.contains(id))
    }

    fn commit(&mut self, ops: Vec<StoreOp<P>>) -> Result<(), StoreError> {
        for op in ops {
            match op {
                StoreOp::SetEpoch(e) => self.epoch = e,
                StoreOp::AddMember { group, peer } => {
                    self.members.insert((group, peer));
                }
                StoreOp::RemoveMember { group, peer } => {
                    self.members.remove(&(group, peer));
                }
                StoreOp::PutRecord(r) => {
                    self.records.insert((r.peer.clone(), r.id), r);
                }
                StoreOp::DeleteRecord { peer, id } => {
                    self.records.remove(&(peer, id));
                }
                StoreOp::PutMessage { id, message } => {
                    self.messages.insert(id, message);
                }
                StoreOp::DeleteMessage { id } => {
                    self.messages.remove(&id);
                }
                StoreOp::MarkKnown { id } => {
                    self.known.insert(id);
                }
                StoreOp::PushEvent { seq, event } => {
                    self.events.insert(seq, event);
                }
                StoreOp::PopEvent { seq } => {
                    self.events.remove(&seq);
                }
            }
        }
        Ok(())
    }
}

/// When an armed [`FaultInjectingStore`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The armed commit fails without applying anything (the process died before the write).
    BeforeApply,
    /// The armed commit applies and returns `Ok`, then the store reports
    /// [`FaultInjectingStore::crash_pending`]: the process dies right after the write, before
    /// any output of the call that made it leaves (the harness drops the node).
    AfterApply,
}

/// Wraps a store and simulates a crash at a chosen commit, for crash-recovery tests.
///
/// Arm it with [`arm`](Self::arm); the `n`-th commit from then on (0-based) crashes as the
/// [`Fault`] says. After the crash every call fails with [`StoreError::Injected`] until
/// [`recover`](Self::recover), which models the restart of the process (the inner store keeps
/// exactly what was committed).
#[derive(Debug, Clone)]
pub struct FaultInjectingStore<S> {
    inner: S,
    commits: u64,
    armed: Option<(u64, Fault)>,
    crashed: bool,
}

impl<S> FaultInjectingStore<S> {
    /// Wraps `inner`, unarmed.
    pub fn new(inner: S) -> Self {
        FaultInjectingStore {
            inner,
            commits: 0,
            armed: None,
            crashed: false,
        }
    }

    /// Crashes at the `after`-th commit from now (0 = the next one).
    pub fn arm(&mut self, after: u64, fault: Fault) {
        self.armed = Some((self.commits.saturating_add(after), fault));
    }

    /// Disarms without crashing.
    pub fn disarm(&mut self) {
        self.armed = None;
    }

    /// Whether the store has crashed (every call fails until [`recover`](Self::recover)).
    pub fn crash_pending(&self) -> bool {
        self.crashed
    }

    /// Restarts: clears the crash and disarms.
    pub fn recover(&mut self) {
        self.crashed = false;
        self.armed = None;
    }

    /// Commits attempted so far (each is a persistence point).
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<P, S: SyncStore<P>> SyncStore<P> for FaultInjectingStore<S> {
    fn load(&mut self) -> Result<Snapshot<P>, StoreError> {
        if self.crashed {
            return Err(StoreError::Injected);
        }
        self.inner.load()
    }

    fn is_known(&mut self, id: &MessageId) -> Result<bool, StoreError> {
        if self.crashed {
            return Err(StoreError::Injected);
        }
        self.inner.is_known(id)
    }

    fn commit(&mut self, ops: Vec<StoreOp<P>>) -> Result<(), StoreError> {
        if self.crashed {
            return Err(StoreError::Injected);
        }
        let n = self.commits;
        self.commits = n.saturating_add(1);
        match self.armed {
            Some((at, Fault::BeforeApply)) if at == n => {
                self.crashed = true;
                Err(StoreError::Injected)
            }
            Some((at, Fault::AfterApply)) if at == n => {
                self.crashed = true;
                self.inner.commit(ops)
            }
            _ => self.inner.commit(ops),
        }
    }
}

impl<P, S: SyncStore<P> + ?Sized> SyncStore<P> for Box<S> {
    fn load(&mut self) -> Result<Snapshot<P>, StoreError> {
        (**self).load()
    }

    fn is_known(&mut self, id: &MessageId) -> Result<bool, StoreError> {
        (**self).is_known(id)
    }

    fn commit(&mut self, ops: Vec<StoreOp<P>>) -> Result<(), StoreError> {
        (**self).commit(ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(peer: u64, id: u8) -> StoredRecord<u64> {
        StoredRecord {
            peer,
            id: MessageId([id; 32]),
            kind: RecordKind::Message,
            group: Some(GroupId([1; 32])),
            send_count: 0,
            next_epoch: 1,
            seq: u64::from(id),
        }
    }

    #[test]
    fn fault_before_apply_loses_the_commit_and_blocks_until_recovery() {
        let mut s = FaultInjectingStore::new(MemoryStore::<u64>::new());
        s.arm(1, Fault::BeforeApply);
        s.commit(vec![StoreOp::PutRecord(rec(1, 1))]).unwrap();
        assert!(s.commit(vec![StoreOp::PutRecord(rec(1, 2))]).is_err());
        assert!(s.crash_pending());
        assert!(s.load().is_err());
        s.recover();
        assert_eq!(s.load().unwrap().records, vec![rec(1, 1)]);
    }

    #[test]
    fn fault_after_apply_keeps_the_commit() {
        let mut s = FaultInjectingStore::new(MemoryStore::<u64>::new());
        s.arm(0, Fault::AfterApply);
        s.commit(vec![StoreOp::PutRecord(rec(1, 1))]).unwrap();
        assert!(s.crash_pending());
        assert!(s.commit(vec![StoreOp::PutRecord(rec(1, 2))]).is_err());
        s.recover();
        assert_eq!(s.load().unwrap().records, vec![rec(1, 1)]);
        assert_eq!(s.commits(), 1);
    }
}
