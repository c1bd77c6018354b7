//! Metadata (66/WAKU2-METADATA, `/vac/waku/metadata/1.0.0`): on connect, both sides exchange
//! their cluster id and shards. A peer on another cluster is reported so the driver can hang up.
//!
//! Request and response have the same shape. The machine sends its own metadata to every newly
//! connected peer that speaks the protocol, answers requests with it, and records what peers
//! say in either direction. A peer that names no cluster is not treated as a mismatch, and
//! neither is one that lists no shards (js-waku answers with its cluster and no shards, and must
//! not be dropped for it, WIRE.md B.28).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use prost::Message as _;

use crate::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use crate::service::{Pending, Queue, after, transmit};
use crate::topic::MAX_SHARD_INDEX;

/// The largest metadata frame decoded (the protocol's frame limit).
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// The most shards recorded per peer: every index of one cluster.
pub const MAX_SHARDS: usize = MAX_SHARD_INDEX as usize + 1;

/// The most peers whose metadata is kept (entries go when the peer disconnects).
pub const MAX_PEERS: usize = 4096;

/// The most frames and events queued.
pub const MAX_QUEUED: usize = 4096;

/// What a peer said about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerMetadata {
    /// Its cluster, if it named one.
    pub cluster_id: Option<u32>,
    /// Its shards (deduplicated, sorted, at most [`MAX_SHARDS`]).
    pub shards: Vec<u32>,
}

/// What the metadata machine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataEvent {
    /// A peer's metadata arrived.
    Learned {
        /// The peer.
        peer: PeerId,
        /// What it said.
        metadata: PeerMetadata,
    },
    /// A peer is on another cluster: the driver should disconnect it.
    ClusterMismatch {
        /// The peer.
        peer: PeerId,
        /// Its cluster.
        theirs: u32,
        /// Ours.
        ours: u16,
    },
}

/// Settings: this node's cluster and shards, and how long to wait for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataConfig {
    /// Our cluster.
    pub cluster_id: u16,
    /// Our shards.
    pub shards: Vec<u16>,
    /// How long to wait for a peer's answer before giving up (silently: the peer may simply not
    /// answer, which is no reason to drop it).
    pub request_timeout: Duration,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            cluster_id: crate::topic::TWN_CLUSTER,
            shards: Vec::new(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The metadata exchange, both sides.
#[derive(Debug)]
pub struct Metadata {
    config: MetadataConfig,
    peers: BTreeMap<PeerId, PeerMetadata>,
    pending: Pending<()>,
    transmits: Queue<Transmit>,
    events: Queue<MetadataEvent>,
}

impl Metadata {
    /// A metadata machine announcing `config`.
    pub fn new(config: MetadataConfig) -> Self {
        Metadata {
            config,
            peers: BTreeMap::new(),
            pending: Pending::new(),
            transmits: Queue::new(MAX_QUEUED),
            events: Queue::new(MAX_QUEUED),
        }
    }

    /// What `peer` said, if it did.
    pub fn peer(&self, peer: PeerId) -> Option<&PeerMetadata> {
        self.peers.get(&peer)
    }

    /// Changes the shards we announce (to peers that connect from now on).
    pub fn set_shards(&mut self, shards: Vec<u16>) {
        self.config.shards = shards;
    }

    fn ours(&self) -> (Option<u32>, Vec<u32>) {
        let shards: BTreeSet<u32> = self.config.shards.iter().map(|s| u32::from(*s)).collect();
        (
            Some(u32::from(self.config.cluster_id)),
            shards.into_iter().collect(),
        )
    }

    /// A peer connected: ask for its metadata if it speaks the protocol.
    pub fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        if !protocols.contains(&Protocol::Metadata) {
            return;
        }
        let (cluster_id, shards) = self.ours();
        let bytes = proto::waku::WakuMetadataRequest { cluster_id, shards }.encode_to_vec();
        let id = self.pending.next_id();
        self.pending.insert(
            peer,
            id,
            after(now.instant, self.config.request_timeout),
            (),
        );
        self.transmits.push(transmit(
            peer,
            Protocol::Metadata,
            FrameKind::Request(id),
            bytes,
        ));
    }

    /// A peer disconnected: forget it.
    pub fn handle_disconnected(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
        let _ = self.pending.remove_peer(peer);
    }

    /// A request from `from`: record what it says, answer with ours.
    pub fn handle_request(&mut self, _now: Now, from: PeerId, id: u64, frame: &[u8]) {
        let (cluster_id, shards) = self.ours();
        let response = proto::waku::WakuMetadataResponse { cluster_id, shards }.encode_to_vec();
        self.transmits.push(transmit(
            from,
            Protocol::Metadata,
            FrameKind::Response(id),
            response,
        ));
        if let Ok(req) =
            proto::decode_bounded::<proto::waku::WakuMetadataRequest>(frame, MAX_FRAME_LEN)
        {
            self.learn(from, req.cluster_id, &req.shards);
        }
    }

    /// An answer to our request.
    pub fn handle_response(&mut self, _now: Now, from: PeerId, id: u64, frame: &[u8]) {
        if self.pending.remove(from, id).is_none() {
            return;
        }
        if let Ok(resp) =
            proto::decode_bounded::<proto::waku::WakuMetadataResponse>(frame, MAX_FRAME_LEN)
        {
            self.learn(from, resp.cluster_id, &resp.shards);
        }
    }

    fn learn(&mut self, peer: PeerId, cluster_id: Option<u32>, shards: &[u32]) {
        let set: BTreeSet<u32> = shards
            .iter()
            .copied()
            .filter(|s| *s <= u32::from(MAX_SHARD_INDEX))
            .take(MAX_SHARDS)
            .collect();
        let metadata = PeerMetadata {
            cluster_id,
            shards: set.into_iter().collect(),
        };
        if self.peers.len() < MAX_PEERS || self.peers.contains_key(&peer) {
            self.peers.insert(peer, metadata.clone());
        }
        self.events.push(MetadataEvent::Learned { peer, metadata });
        if let Some(theirs) = cluster_id
            && theirs != u32::from(self.config.cluster_id)
        {
            self.events.push(MetadataEvent::ClusterMismatch {
                peer,
                theirs,
                ours: self.config.cluster_id,
            });
        }
    }

    /// Drops requests that were not answered in time.
    pub fn handle_timeout(&mut self, now: Now) {
        let _ = self.pending.expire(now.instant);
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<MetadataEvent> {
        self.events.pop()
    }

    /// The next request deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.next_deadline()
    }
}

impl Machine for Metadata {
    type Event = MetadataEvent;

    fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        Metadata::handle_connected(self, now, peer, protocols);
    }

    fn handle_disconnected(&mut self, _now: Now, peer: PeerId) {
        Metadata::handle_disconnected(self, peer);
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        match (protocol, kind) {
            (Protocol::Metadata, FrameKind::Request(id)) => {
                self.handle_request(now, from, id, frame);
            }
            (Protocol::Metadata, FrameKind::Response(id)) => {
                self.handle_response(now, from, id, frame);
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        Metadata::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        Metadata::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<MetadataEvent> {
        Metadata::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Metadata::poll_timeout(self)
    }

    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::Metadata]
    }
}
