//! Outbound RPCs: per-peer batching into complete RPC frames of bounded size.
//!
//! An RPC is a protobuf message, so concatenating encoded fields gives a valid RPC. Subscriptions
//! and messages are appended to a per-peer body as encoded fields; control items are collected in
//! one `ControlMessage` appended when the batch is closed. A batch is closed when the next item
//! would push it past the batch size (an item larger than that travels alone), and every open
//! batch is closed when the driver polls.

use std::collections::{BTreeMap, VecDeque};

use prost::Message as _;
use prost::encoding::encoded_len_varint;
use proto::gossipsub::{ControlGraft, ControlIHave, ControlIWant, ControlPrune, rpc::SubOpts};

use super::MessageId;
use super::config::{MAX_OUTBOUND_BYTES, MAX_OUTBOUND_BYTES_PER_PEER};
use crate::net::{FrameKind, PeerId, Protocol, Transmit};

/// RPC field numbers (WIRE.md B.27).
const RPC_SUBSCRIPTIONS: u8 = 1;
const RPC_PUBLISH: u8 = 2;
const RPC_CONTROL: u8 = 3;

/// The key byte of a length-delimited field with a small field number.
const fn key(field: u8) -> u8 {
    (field << 3) | 2
}

/// Appends a length-delimited field `field` holding `body`.
pub(crate) fn append_field(out: &mut Vec<u8>, field: u8, body_len: usize) {
    out.push(key(field));
    proto::frame::write_uvarint(body_len as u64, out);
}

/// Bytes a length-delimited field with a body of `len` bytes takes.
pub(crate) fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// The encoded `publish` field of an RPC carrying `Message{data, topic}` (StrictNoSign: nothing
/// else is set).
pub(crate) fn publish_entry(data: &[u8], topic: &str) -> Vec<u8> {
    // Message{data = 2, topic = 4}.
    let body = field_len(data.len()) + field_len(topic.len());
    let mut out = Vec::with_capacity(field_len(body));
    append_field(&mut out, RPC_PUBLISH, body);
    append_field(&mut out, 2, data.len());
    out.extend_from_slice(data);
    append_field(&mut out, 4, topic.len());
    out.extend_from_slice(topic.as_bytes());
    out
}

/// One control item.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    IHave(ControlIHave),
    IWant(ControlIWant),
    Graft(ControlGraft),
    Prune(ControlPrune),
    /// IDONTWANT for one message (encoded without building a `ControlIDontWant`).
    IDontWant(MessageId),
}

/// `ControlMessage` field numbers (WIRE.md B.27).
const CONTROL_IHAVE: u8 = 1;
const CONTROL_IWANT: u8 = 2;
const CONTROL_GRAFT: u8 = 3;
const CONTROL_PRUNE: u8 = 4;
const CONTROL_IDONTWANT: u8 = 5;

/// Encoded length of `ControlIDontWant{message_ids: [id]}`.
const ONE_ID_LEN: usize = 2 + 32;

impl Control {
    /// The length of the item's field in a `ControlMessage`.
    fn encoded_field_len(&self) -> usize {
        field_len(match self {
            Control::IHave(m) => m.encoded_len(),
            Control::IWant(m) => m.encoded_len(),
            Control::Graft(m) => m.encoded_len(),
            Control::Prune(m) => m.encoded_len(),
            Control::IDontWant(_) => ONE_ID_LEN,
        })
    }

    /// Appends the item as a field of a `ControlMessage`.
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Control::IHave(m) => {
                append_field(out, CONTROL_IHAVE, m.encoded_len());
                m.encode_raw(out);
            }
            Control::IWant(m) => {
                append_field(out, CONTROL_IWANT, m.encoded_len());
                m.encode_raw(out);
            }
            Control::Graft(m) => {
                append_field(out, CONTROL_GRAFT, m.encoded_len());
                m.encode_raw(out);
            }
            Control::Prune(m) => {
                append_field(out, CONTROL_PRUNE, m.encoded_len());
                m.encode_raw(out);
            }
            Control::IDontWant(id) => {
                append_field(out, CONTROL_IDONTWANT, ONE_ID_LEN);
                // message_ids = 1, 32 bytes.
                append_field(out, 1, 32);
                out.extend_from_slice(&id.0);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Batch {
    /// Encoded subscription and publish fields.
    body: Vec<u8>,
    /// Encoded `ControlMessage` fields; its buffer is reused from batch to batch.
    control: Vec<u8>,
}

impl Batch {
    fn len(&self) -> usize {
        self.body.len()
            + if self.control.is_empty() {
                0
            } else {
                field_len(self.control.len())
            }
    }

    fn is_empty(&self) -> bool {
        self.body.is_empty() && self.control.is_empty()
    }

    /// The length after adding a field of `item` bytes to the body or (`control`) the control.
    fn len_with(&self, item: usize, control: bool) -> usize {
        if control {
            self.body.len() + field_len(self.control.len() + item)
        } else {
            self.len() + item
        }
    }

    /// The finished RPC; leaves the batch empty (keeping the control buffer).
    fn take(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.body);
        if !self.control.is_empty() {
            out.reserve(field_len(self.control.len()));
            append_field(&mut out, RPC_CONTROL, self.control.len());
            out.extend_from_slice(&self.control);
            self.control.clear();
            if self.control.capacity() > 4096 {
                // Do not keep a big buffer per peer after a large IHAVE.
                self.control = Vec::new();
            }
        }
        out
    }
}

/// Why an item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// The peer's or the total outbound byte cap is reached.
    Full,
    /// The item alone is larger than the largest RPC.
    TooLarge,
}

/// What is queued for one peer.
#[derive(Debug, Default)]
struct PeerQueue {
    /// The open batch.
    batch: Batch,
    /// Bytes queued, open and ready.
    queued: usize,
}

/// The outbound queue: open batches per peer, closed RPCs in order.
///
/// Per-peer entries stay until the peer is dropped, so steady traffic does not churn the map.
#[derive(Debug)]
pub(crate) struct Outbox {
    peers: BTreeMap<PeerId, PeerQueue>,
    /// Peers whose open batch is not empty, in the order they got their first item.
    dirty: Vec<PeerId>,
    ready: VecDeque<Transmit>,
    total: usize,
    batch_size: usize,
    max_rpc_size: usize,
}

impl Outbox {
    pub(crate) fn new(batch_size: usize, max_rpc_size: usize) -> Self {
        Outbox {
            peers: BTreeMap::new(),
            dirty: Vec::new(),
            ready: VecDeque::new(),
            total: 0,
            batch_size,
            max_rpc_size,
        }
    }

    /// Total bytes queued.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.total
    }

    /// The most bytes queued for one peer.
    pub(crate) fn max_peer_bytes(&self) -> usize {
        self.peers.values().map(|q| q.queued).max().unwrap_or(0)
    }

    /// Finds room for an item of `item` bytes (the field, for the body or (`control`) the
    /// control message) in `peer`'s open batch, closing it first if the item would not fit.
    fn room(
        &mut self,
        peer: PeerId,
        item: usize,
        control: bool,
    ) -> Result<&mut PeerQueue, Dropped> {
        if field_len(item) > self.max_rpc_size {
            return Err(Dropped::TooLarge);
        }
        // Room for the item and for the control wrapper it may grow.
        let need = item + 16;
        if self.total + need > MAX_OUTBOUND_BYTES {
            return Err(Dropped::Full);
        }
        let q = self.peers.entry(peer).or_default();
        if q.queued + need > MAX_OUTBOUND_BYTES_PER_PEER {
            return Err(Dropped::Full);
        }
        if !q.batch.is_empty() && q.batch.len_with(item, control) > self.batch_size {
            self.ready.push_back(Transmit {
                to: peer,
                protocol: Protocol::Relay,
                kind: FrameKind::Stream,
                bytes: q.batch.take(),
            });
            // Still dirty: the item below goes into the fresh batch.
        } else if q.batch.is_empty() {
            self.dirty.push(peer);
        }
        if q.batch.body.capacity() == 0 && !control {
            // Room for the item and a few control items, so closing rarely reallocates.
            q.batch.body.reserve(item + 256);
        }
        Ok(q)
    }

    /// Queues an encoded `publish` field (from [`publish_entry`]).
    pub(crate) fn push_publish(&mut self, peer: PeerId, entry: &[u8]) -> Result<(), Dropped> {
        let q = self.room(peer, entry.len(), false)?;
        let before = q.batch.len();
        q.batch.body.extend_from_slice(entry);
        let grew = q.batch.len() - before;
        q.queued += grew;
        self.total += grew;
        Ok(())
    }

    /// Queues a subscription announcement.
    pub(crate) fn push_subscription(
        &mut self,
        peer: PeerId,
        topic: &str,
        subscribe: bool,
    ) -> Result<(), Dropped> {
        let sub = SubOpts {
            subscribe: Some(subscribe),
            topic_id: Some(topic.to_owned()),
        };
        let q = self.room(peer, field_len(sub.encoded_len()), false)?;
        let before = q.batch.len();
        append_field(&mut q.batch.body, RPC_SUBSCRIPTIONS, sub.encoded_len());
        sub.encode_raw(&mut q.batch.body);
        let grew = q.batch.len() - before;
        q.queued += grew;
        self.total += grew;
        Ok(())
    }

    /// Queues a control item.
    pub(crate) fn push_control(&mut self, peer: PeerId, item: Control) -> Result<(), Dropped> {
        let len = item.encoded_field_len();
        let q = self.room(peer, len, true)?;
        let before = q.batch.len();
        q.batch.control.reserve(len);
        item.encode_into(&mut q.batch.control);
        let grew = q.batch.len() - before;
        q.queued += grew;
        self.total += grew;
        Ok(())
    }

    /// The next RPC to send; closes every open batch when nothing else is ready.
    pub(crate) fn pop(&mut self) -> Option<Transmit> {
        if self.ready.is_empty() {
            for peer in self.dirty.drain(..) {
                if let Some(q) = self.peers.get_mut(&peer)
                    && !q.batch.is_empty()
                {
                    self.ready.push_back(Transmit {
                        to: peer,
                        protocol: Protocol::Relay,
                        kind: FrameKind::Stream,
                        bytes: q.batch.take(),
                    });
                }
            }
        }
        let t = self.ready.pop_front()?;
        let len = t.bytes.len();
        if let Some(q) = self.peers.get_mut(&t.to) {
            q.queued = q.queued.saturating_sub(len);
        }
        self.total = self.total.saturating_sub(len);
        Some(t)
    }

    /// Whether anything is queued.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.peers.values().all(|q| q.batch.is_empty())
    }

    /// Forgets everything queued for `peer` (it disconnected).
    pub(crate) fn drop_peer(&mut self, peer: PeerId) {
        if let Some(q) = self.peers.remove(&peer) {
            self.total = self.total.saturating_sub(q.queued);
        }
        self.dirty.retain(|p| *p != peer);
        self.ready.retain(|t| t.to != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::gossipsub::Rpc;

    #[test]
    fn publish_entry_decodes() {
        let e = publish_entry(&[1, 2, 3], "/waku/2/rs/1/0");
        let rpc = Rpc::decode(e.as_slice()).unwrap();
        assert_eq!(rpc.publish.len(), 1);
        let m = &rpc.publish[0];
        assert_eq!(m.data.as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(m.topic.as_deref(), Some("/waku/2/rs/1/0"));
        assert!(m.from.is_none() && m.seqno.is_none() && m.signature.is_none() && m.key.is_none());
    }

    #[test]
    fn batches_are_complete_rpcs_within_size() {
        let batch = 1000;
        let mut o = Outbox::new(batch, 4096);
        let p = PeerId(1);
        o.push_subscription(p, "t", true).unwrap();
        for i in 0..20u8 {
            o.push_publish(p, &publish_entry(&[i; 100], "t")).unwrap();
            o.push_control(
                p,
                Control::IWant(ControlIWant {
                    message_ids: vec![vec![i; 32]],
                }),
            )
            .unwrap();
            o.push_control(p, Control::IDontWant(MessageId([i; 32])))
                .unwrap();
        }
        o.push_publish(p, &publish_entry(&[7; 2000], "t")).unwrap();
        let (mut msgs, mut iwants, mut subs, mut idontwants) = (0, 0, 0, 0);
        let queued = o.queued_bytes();
        let mut sent = 0;
        while let Some(t) = o.pop() {
            assert!(t.bytes.len() <= 4096);
            if t.bytes.len() > batch {
                let rpc = Rpc::decode(t.bytes.as_slice()).unwrap();
                assert_eq!(rpc.publish.len(), 1, "an oversized item travels alone");
            }
            sent += t.bytes.len();
            let rpc = Rpc::decode(t.bytes.as_slice()).unwrap();
            msgs += rpc.publish.len();
            subs += rpc.subscriptions.len();
            if let Some(c) = rpc.control {
                iwants += c.iwant.len();
                for d in &c.idontwant {
                    assert_eq!(d.message_ids.len(), 1);
                    assert_eq!(d.message_ids[0].len(), 32);
                    idontwants += 1;
                }
            }
        }
        assert_eq!((msgs, iwants, subs, idontwants), (21, 20, 1, 20));
        assert_eq!(sent, queued, "byte accounting matches what was sent");
        assert_eq!(o.queued_bytes(), 0);
        assert!(o.is_empty());
    }

    #[test]
    fn caps_and_drop_peer() {
        let mut o = Outbox::new(64 * 1024, 200 * 1024);
        let big = publish_entry(&vec![0; 100 * 1024], "t");
        let mut n = 0;
        while o.push_publish(PeerId(1), &big).is_ok() {
            n += 1;
        }
        assert_eq!(n, MAX_OUTBOUND_BYTES_PER_PEER / big.len());
        assert!(o.max_peer_bytes() <= MAX_OUTBOUND_BYTES_PER_PEER);
        assert_eq!(
            o.push_publish(PeerId(2), &publish_entry(&vec![0; 300 * 1024], "t")),
            Err(Dropped::TooLarge)
        );
        o.drop_peer(PeerId(1));
        assert_eq!(o.queued_bytes(), 0);
        assert!(o.pop().is_none());
    }
}
