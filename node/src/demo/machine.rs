//! The machines of the demo network, behind one type the simulated network can hold.
//!
//! [`Sim`](transports::memory::Sim) runs one machine type, so the bootstrap and full nodes (a
//! [`WakuNode`]) and the phones (a [`Messenger`] beside a peer-exchange client) are the two
//! variants of [`Actor`]. Each variant also decodes the frames it receives into [`Wire`] notes:
//! what a packet capture at that node would show (protocol, sizes, content topics, payload
//! bytes). The notes are read from the real frames; the machines never see the difference.

use std::collections::VecDeque;
use std::time::Instant;

use payloads::messenger::{Messenger, MessengerEvent};
use proto::Message as _;
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use waku_core::node::{NodeEvent, WakuNode};
use waku_core::peer_exchange::{
    MAX_RESPONSE_LEN, PeerExchangeClient, PeerExchangeClientConfig, PeerExchangeClientEvent,
};

/// The most Waku messages one note keeps (a store page holds up to 100; relay frames a few).
pub(crate) const MAX_MESSAGES_PER_NOTE: usize = 128;

/// The largest frame decoded into a note. Every Waku frame the demo's machines send is far
/// smaller; anything larger is noted by size only.
pub(crate) const MAX_DECODED_FRAME: usize = 1 << 20;

/// One Waku message seen in a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeenMessage {
    /// Its content topic.
    pub(crate) content_topic: String,
    /// Its payload (the sealed envelope).
    pub(crate) payload: Vec<u8>,
    /// Its encoded size on the wire.
    pub(crate) encoded_len: usize,
}

impl SeenMessage {
    fn from_proto(m: &proto::waku::WakuMessage) -> Self {
        SeenMessage {
            content_topic: m.content_topic.clone(),
            payload: m.payload.clone(),
            encoded_len: m.encoded_len(),
        }
    }
}

/// What a received frame carried, as far as a capture at the receiver can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WireWhat {
    /// A peer-exchange request.
    PeerQuery {
        /// Records asked for.
        num_peers: u64,
    },
    /// A peer-exchange answer with records.
    PeerRecords {
        /// The records.
        records: Vec<Vec<u8>>,
    },
    /// A lightpush request: a light node hands a message to a service node.
    LightPush(SeenMessage),
    /// A filter push: a service node forwards a message to a light node.
    FilterPush(SeenMessage),
    /// Relay (gossipsub) frame with published messages.
    Relay(Vec<SeenMessage>),
    /// A store query.
    StoreQuery {
        /// Content topics asked for.
        content_topics: Vec<String>,
    },
    /// A store answer.
    StoreAnswer(Vec<SeenMessage>),
}

/// A frame received by a node, decoded (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wire {
    /// The receiver's handle for the sender.
    pub(crate) from: PeerId,
    /// Body length.
    pub(crate) len: usize,
    /// What it carried.
    pub(crate) what: WireWhat,
}

/// Everything a node of the demo reports.
// Events are few and short-lived (taken after every slice of virtual time); boxing the larger
// variants would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ev {
    /// A phone's Messenger event.
    Messenger(MessengerEvent),
    /// A phone's peer-exchange client event.
    Px(PeerExchangeClientEvent),
    /// A bootstrap or full node's event.
    Node(NodeEvent),
    /// A frame the node received.
    Wire(Wire),
}

/// A phone: the Messenger (a light node) and the peer-exchange client the app uses to find
/// full nodes (the Messenger does not run discovery itself; the app is its driver).
pub(crate) struct Phone {
    pub(crate) messenger: Messenger,
    pub(crate) px: PeerExchangeClient,
    notes: VecDeque<Wire>,
}

/// A bootstrap or full node.
pub(crate) struct Server {
    pub(crate) node: WakuNode,
    notes: VecDeque<Wire>,
}

/// A node of the demo network.
pub(crate) enum Actor {
    /// Alice's or Bob's phone.
    Phone(Box<Phone>),
    /// A bootstrap or full node.
    Server(Box<Server>),
}

impl Actor {
    pub(crate) fn phone(messenger: Messenger) -> Self {
        Actor::Phone(Box::new(Phone {
            messenger,
            px: PeerExchangeClient::new(PeerExchangeClientConfig::default()),
            notes: VecDeque::new(),
        }))
    }

    pub(crate) fn server(node: WakuNode) -> Self {
        Actor::Server(Box::new(Server {
            node,
            notes: VecDeque::new(),
        }))
    }

    pub(crate) fn as_phone(&self) -> Option<&Phone> {
        match self {
            Actor::Phone(p) => Some(p),
            Actor::Server(_) => None,
        }
    }

    pub(crate) fn as_phone_mut(&mut self) -> Option<&mut Phone> {
        match self {
            Actor::Phone(p) => Some(p),
            Actor::Server(_) => None,
        }
    }

    pub(crate) fn as_server_mut(&mut self) -> Option<&mut Server> {
        match self {
            Actor::Server(s) => Some(s),
            Actor::Phone(_) => None,
        }
    }

    fn notes(&mut self) -> &mut VecDeque<Wire> {
        match self {
            Actor::Phone(p) => &mut p.notes,
            Actor::Server(s) => &mut s.notes,
        }
    }
}

/// Decodes a received frame into a note, if it carries something the demo shows.
pub(crate) fn decode(
    from: PeerId,
    protocol: Protocol,
    kind: FrameKind,
    frame: &[u8],
) -> Option<Wire> {
    use proto::waku::{
        LightPushRequest, MessagePush, PeerExchangeRpc, StoreQueryRequest, StoreQueryResponse,
    };
    if frame.len() > MAX_DECODED_FRAME {
        return None;
    }
    let what = match (protocol, kind) {
        (Protocol::PeerExchange, FrameKind::Request(_)) => {
            let rpc = PeerExchangeRpc::decode(frame).ok()?;
            WireWhat::PeerQuery {
                num_peers: rpc.query?.num_peers.unwrap_or(0),
            }
        }
        (Protocol::PeerExchange, FrameKind::Response(_)) => {
            let rpc = proto::decode_bounded::<PeerExchangeRpc>(frame, MAX_RESPONSE_LEN).ok()?;
            WireWhat::PeerRecords {
                records: rpc
                    .response?
                    .peer_infos
                    .into_iter()
                    .filter_map(|p| p.enr)
                    .take(MAX_MESSAGES_PER_NOTE)
                    .collect(),
            }
        }
        (Protocol::LightPush, FrameKind::Request(_)) => {
            let req = LightPushRequest::decode(frame).ok()?;
            WireWhat::LightPush(SeenMessage::from_proto(req.message.as_ref()?))
        }
        (Protocol::FilterPush, _) => {
            let push = MessagePush::decode(frame).ok()?;
            WireWhat::FilterPush(SeenMessage::from_proto(push.waku_message.as_ref()?))
        }
        (Protocol::Relay, _) => {
            let rpc = proto::gossipsub::Rpc::decode(frame).ok()?;
            let msgs: Vec<SeenMessage> = rpc
                .publish
                .iter()
                .filter_map(|m| m.data.as_deref())
                .filter_map(|d| proto::waku::WakuMessage::decode(d).ok())
                .take(MAX_MESSAGES_PER_NOTE)
                .map(|m| SeenMessage::from_proto(&m))
                .collect();
            if msgs.is_empty() {
                return None;
            }
            WireWhat::Relay(msgs)
        }
        (Protocol::StoreQuery, FrameKind::Request(_)) => {
            let q = StoreQueryRequest::decode(frame).ok()?;
            WireWhat::StoreQuery {
                content_topics: q.content_topics,
            }
        }
        (Protocol::StoreQuery, FrameKind::Response(_)) => {
            let r = StoreQueryResponse::decode(frame).ok()?;
            WireWhat::StoreAnswer(
                r.messages
                    .iter()
                    .filter_map(|kv| kv.message.as_ref())
                    .take(MAX_MESSAGES_PER_NOTE)
                    .map(SeenMessage::from_proto)
                    .collect(),
            )
        }
        _ => return None,
    };
    Some(Wire {
        from,
        len: frame.len(),
        what,
    })
}

impl Machine for Actor {
    type Event = Ev;

    fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        match self {
            Actor::Phone(p) => {
                p.messenger.handle_connected(now, peer, protocols);
                p.px.handle_connected(now, peer, protocols);
            }
            Actor::Server(s) => s.node.handle_connected(now, peer, protocols),
        }
    }

    fn handle_disconnected(&mut self, now: Now, peer: PeerId) {
        match self {
            Actor::Phone(p) => {
                p.messenger.handle_disconnected(now, peer);
                Machine::handle_disconnected(&mut p.px, now, peer);
            }
            Actor::Server(s) => s.node.handle_disconnected(now, peer),
        }
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        if let Some(note) = decode(from, protocol, kind, frame) {
            let notes = self.notes();
            if notes.len() < crate::demo::MAX_PENDING_NOTES {
                notes.push_back(note);
            }
        }
        match self {
            Actor::Phone(p) => match (protocol, kind) {
                (Protocol::PeerExchange, FrameKind::Response(id)) => {
                    p.px.handle_response(now, from, id, frame);
                }
                _ => p.messenger.handle_frame(now, from, protocol, kind, frame),
            },
            Actor::Server(s) => s.node.handle_frame(now, from, protocol, kind, frame),
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        match self {
            Actor::Phone(p) => {
                if p.messenger.poll_timeout().is_some_and(|t| t <= now.instant) {
                    p.messenger.handle_timeout(now);
                }
                if p.px.poll_timeout().is_some_and(|t| t <= now.instant) {
                    Machine::handle_timeout(&mut p.px, now);
                }
            }
            Actor::Server(s) => s.node.handle_timeout(now),
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Actor::Phone(p) => p
                .messenger
                .poll_transmit()
                .or_else(|| Machine::poll_transmit(&mut p.px)),
            Actor::Server(s) => s.node.poll_transmit(),
        }
    }

    fn poll_event(&mut self) -> Option<Ev> {
        if let Some(n) = self.notes().pop_front() {
            return Some(Ev::Wire(n));
        }
        match self {
            Actor::Phone(p) => Machine::poll_event(&mut p.px)
                .map(Ev::Px)
                .or_else(|| p.messenger.poll_event().map(Ev::Messenger)),
            Actor::Server(s) => s.node.poll_event().map(Ev::Node),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Actor::Phone(p) => [p.messenger.poll_timeout(), Machine::poll_timeout(&p.px)]
                .into_iter()
                .flatten()
                .min(),
            Actor::Server(s) => s.node.poll_timeout(),
        }
    }

    fn protocols(&self) -> Vec<Protocol> {
        match self {
            Actor::Phone(p) => p.messenger.protocols(),
            Actor::Server(s) => s.node.protocols(),
        }
    }
}
