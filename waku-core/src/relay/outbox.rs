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
use proto::gossipsub::{
    ControlGraft, ControlIDontWant, ControlIHave, ControlIWant, ControlMessage, ControlPrune,
    rpc::SubOpts,
};

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
    IDontWant(ControlIDontWant),
}

impl Control {
    fn encoded_field_len(&self) -> usize {
        field_len(match self {
            Control::IHave(m) => m.encoded_len(),
            Control::IWant(m) => m.encoded_len(),
            Control::Graft(m) => m.encoded_len(),
            Control::Prune(m) => m.encoded_len(),
            Control::IDontWant(m) => m.encoded_len(),
        })
    }

    fn add_to(self, c: &mut ControlMessage) {
        match self {
            Control::IHave(m) => c.ihave.push(m),
            Control::IWant(m) => c.iwant.push(m),
            Control::Graft(m) => c.graft.push(m),
            Control::Prune(m) => c.prune.push(m),
            Control::IDontWant(m) => c.idontwant.push(m),
        }
    }
}

#[derive(Debug, Default)]
struct Batch {
    /// Encoded subscription and publish fields.
    body: Vec<u8>,
    control: ControlMessage,
    /// Encoded length of `control`'s body.
    control_len: usize,
}

impl Batch {
    fn len(&self) -> usize {
        self.body.len()
            + if self.control_len > 0 {
                field_len(self.control_len)
            } else {
                0
            }
    }

    fn is_empty(&self) -> bool {
        self.body.is_empty() && self.control_len == 0
    }

    /// The length after adding a field of `item` bytes to the body or (`control`) the control.
    fn len_with(&self, item: usize, control: bool) -> usize {
        if control {
            self.body.len() + field_len(self.control_len + item)
        } else {
            self.len() + item
        }
    }

    fn finish(self) -> Vec<u8> {
        let mut out = self.body;
        if self.control_len > 0 {
            out.reserve(field_len(self.control_len));
            append_field(&mut out, RPC_CONTROL, self.control_len);
            self.control.encode_raw(&mut out);
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

/// The outbound queue: open batches per peer, closed RPCs in order.
#[derive(Debug)]
pub(crate) struct Outbox {
    open: BTreeMap<PeerId, Batch>,
    ready: VecDeque<Transmit>,
    /// Bytes queued per peer, open and ready.
    per_peer: BTreeMap<PeerId, usize>,
    total: usize,
    batch_size: usize,
    max_rpc_size: usize,
}

impl Outbox {
    pub(crate) fn new(batch_size: usize, max_rpc_size: usize) -> Self {
        Outbox {
            open: BTreeMap::new(),
            ready: VecDeque::new(),
            per_peer: BTreeMap::new(),
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
        self.per_peer.values().copied().max().unwrap_or(0)
    }

    fn admit(&mut self, peer: PeerId, item: usize) -> Result<(), Dropped> {
        if field_len(item) > self.max_rpc_size {
            return Err(Dropped::TooLarge);
        }
        let mine = self.per_peer.get(&peer).copied().unwrap_or(0);
        // Room for the item and for the control wrapper it may grow.
        let need = item + 16;
        if mine + need > MAX_OUTBOUND_BYTES_PER_PEER || self.total + need > MAX_OUTBOUND_BYTES {
            return Err(Dropped::Full);
        }
        Ok(())
    }

    fn batch_for(&mut self, peer: PeerId, item: usize, control: bool) -> &mut Batch {
        let close = self
            .open
            .get(&peer)
            .is_some_and(|b| !b.is_empty() && b.len_with(item, control) > self.batch_size);
        if close {
            self.close(peer);
        }
        self.open.entry(peer).or_default()
    }

    fn account(&mut self, peer: PeerId, before: usize, after: usize) {
        let grew = after.saturating_sub(before);
        *self.per_peer.entry(peer).or_insert(0) += grew;
        self.total += grew;
    }

    /// Queues an encoded `publish` field (from [`publish_entry`]).
    pub(crate) fn push_publish(&mut self, peer: PeerId, entry: &[u8]) -> Result<(), Dropped> {
        self.admit(peer, entry.len())?;
        let batch = self.batch_for(peer, entry.len(), false);
        let before = batch.len();
        batch.body.extend_from_slice(entry);
        let after = batch.len();
        self.account(peer, before, after);
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
        let len = field_len(sub.encoded_len());
        self.admit(peer, len)?;
        let batch = self.batch_for(peer, len, false);
        let before = batch.len();
        append_field(&mut batch.body, RPC_SUBSCRIPTIONS, sub.encoded_len());
        sub.encode_raw(&mut batch.body);
        let after = batch.len();
        self.account(peer, before, after);
        Ok(())
    }

    /// Queues a control item.
    pub(crate) fn push_control(&mut self, peer: PeerId, item: Control) -> Result<(), Dropped> {
        let len = item.encoded_field_len();
        self.admit(peer, field_len(len))?;
        let batch = self.batch_for(peer, len, true);
        let before = batch.len();
        item.add_to(&mut batch.control);
        batch.control_len += len;
        let after = batch.len();
        self.account(peer, before, after);
        Ok(())
    }

    fn close(&mut self, peer: PeerId) {
        if let Some(batch) = self.open.remove(&peer) {
            if batch.is_empty() {
                return;
            }
            self.ready.push_back(Transmit {
                to: peer,
                protocol: Protocol::Relay,
                kind: FrameKind::Stream,
                bytes: batch.finish(),
            });
        }
    }

    /// The next RPC to send; closes every open batch when nothing else is ready.
    pub(crate) fn pop(&mut self) -> Option<Transmit> {
        if self.ready.is_empty() {
            let peers: Vec<PeerId> = self.open.keys().copied().collect();
            for p in peers {
                self.close(p);
            }
        }
        let t = self.ready.pop_front()?;
        let len = t.bytes.len();
        if let Some(n) = self.per_peer.get_mut(&t.to) {
            *n = n.saturating_sub(len);
            if *n == 0 {
                self.per_peer.remove(&t.to);
            }
        }
        self.total = self.total.saturating_sub(len);
        Some(t)
    }

    /// Whether anything is queued.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.open.is_empty()
    }

    /// Forgets everything queued for `peer` (it disconnected).
    pub(crate) fn drop_peer(&mut self, peer: PeerId) {
        self.open.remove(&peer);
        self.ready.retain(|t| t.to != peer);
        if let Some(n) = self.per_peer.remove(&peer) {
            self.total = self.total.saturating_sub(n);
        }
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
        }
        o.push_publish(p, &publish_entry(&[7; 2000], "t")).unwrap();
        let (mut msgs, mut iwants, mut subs) = (0, 0, 0);
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
            iwants += rpc.control.map_or(0, |c| c.iwant.len());
        }
        assert_eq!((msgs, iwants, subs), (21, 20, 1));
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
