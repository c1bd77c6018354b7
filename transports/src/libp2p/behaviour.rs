//! The [`NetworkBehaviour`] and [`ConnectionHandler`] that carry Waku streams. They only open
//! and accept streams and hand them to the driver: no frame is read or written here, no timer
//! runs, no protocol decision is made.
//!
//! - Inbound streams are accepted for exactly the protocols the machine serves (so identify,
//!   which lists the protocols of every handler, lists exactly those plus identify and ping).
//! - Outbound streams are opened when the driver asks, tagged with a token it chose.
//!
//! Beside them, `PendingPerIp` caps the inbound connections being set up per remote IP
//! ([`Limits::max_pending_incoming_per_ip`](super::Limits::max_pending_incoming_per_ip)).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use futures::future;
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::core::{Endpoint, InboundUpgrade, Multiaddr, UpgradeInfo, transport::PortUse};
use libp2p::multiaddr::Protocol as MaProtocol;
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{PeerId, Stream, StreamProtocol};

/// The most outbound stream requests a connection queues before the driver's requests are
/// refused (each waits for the muxer; a stalled peer must not grow the queue without bound).
pub const MAX_PENDING_OPENS: usize = 256;

/// What the driver learns from the behaviour.
#[derive(Debug)]
pub(crate) enum StreamEvent {
    /// A peer opened a stream on a protocol we serve.
    Inbound {
        peer: PeerId,
        protocol: StreamProtocol,
        stream: Stream,
    },
    /// A stream we asked for is open.
    Outbound { token: u64, stream: Stream },
    /// A stream we asked for could not be opened (protocol refused, connection gone, queue full).
    OutboundFailed { token: u64 },
}

/// Accepts inbound streams for the served protocols and opens outbound ones on request.
pub(crate) struct WakuStreams {
    served: Vec<StreamProtocol>,
    events: VecDeque<ToSwarm<StreamEvent, OpenStream>>,
}

impl WakuStreams {
    pub(crate) fn new(served: Vec<StreamProtocol>) -> Self {
        WakuStreams {
            served,
            events: VecDeque::new(),
        }
    }

    /// Asks a connection to `peer` to open a stream on `protocol`; the answer comes as
    /// [`StreamEvent::Outbound`] or [`StreamEvent::OutboundFailed`] with `token`.
    pub(crate) fn open(&mut self, peer: PeerId, protocol: StreamProtocol, token: u64) {
        self.events.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::Any,
            event: OpenStream { protocol, token },
        });
    }
}

impl NetworkBehaviour for WakuStreams {
    type ConnectionHandler = Handler;
    type ToSwarm = StreamEvent;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::new(peer, self.served.clone()))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::new(peer, self.served.clone()))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.events.push_back(ToSwarm::GenerateEvent(event));
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<StreamEvent, THandlerInEvent<Self>>> {
        match self.events.pop_front() {
            Some(e) => Poll::Ready(e),
            None => Poll::Pending,
        }
    }
}

/// A request to open a stream.
#[derive(Debug)]
pub(crate) struct OpenStream {
    protocol: StreamProtocol,
    token: u64,
}

/// Accepts any of a fixed list of protocols and yields the stream with the protocol chosen.
#[derive(Debug, Clone)]
pub(crate) struct Served(Vec<StreamProtocol>);

impl UpgradeInfo for Served {
    type Info = StreamProtocol;
    type InfoIter = Vec<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone()
    }
}

impl<C> InboundUpgrade<C> for Served {
    type Output = (C, StreamProtocol);
    type Error = Infallible;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, stream: C, info: StreamProtocol) -> Self::Future {
        future::ready(Ok((stream, info)))
    }
}

/// The per-connection half: streams in, streams out, nothing else.
pub(crate) struct Handler {
    peer: PeerId,
    served: Vec<StreamProtocol>,
    opens: VecDeque<OpenStream>,
    events: VecDeque<StreamEvent>,
}

impl Handler {
    fn new(peer: PeerId, served: Vec<StreamProtocol>) -> Self {
        Handler {
            peer,
            served,
            opens: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = OpenStream;
    type ToBehaviour = StreamEvent;
    type InboundProtocol = Served;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = u64;

    fn listen_protocol(&self) -> SubstreamProtocol<Served, ()> {
        SubstreamProtocol::new(Served(self.served.clone()), ())
    }

    // The driver decides when a peer goes (or the peer does): an idle connection to a service
    // node is what a light node keeps to push and subscribe later.
    fn connection_keep_alive(&self) -> bool {
        true
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<ReadyUpgrade<StreamProtocol>, u64, StreamEvent>> {
        if let Some(e) = self.events.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(e));
        }
        if let Some(open) = self.opens.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(open.protocol), open.token),
            });
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, open: OpenStream) {
        if self.opens.len() >= MAX_PENDING_OPENS {
            self.events
                .push_back(StreamEvent::OutboundFailed { token: open.token });
        } else {
            self.opens.push_back(open);
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Served, ReadyUpgrade<StreamProtocol>, (), u64>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (stream, protocol),
                ..
            }) => self.events.push_back(StreamEvent::Inbound {
                peer: self.peer,
                protocol,
                stream,
            }),
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                info: token,
            }) => self
                .events
                .push_back(StreamEvent::Outbound { token, stream }),
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: token, .. }) => {
                self.events.push_back(StreamEvent::OutboundFailed { token });
            }
            _ => {}
        }
    }
}

/// Why [`PendingPerIp`] refused a connection.
#[derive(Debug, thiserror::Error)]
#[error("{0} has too many connections being set up")]
pub(crate) struct TooManyPendingFromIp(IpAddr);

/// Refuses an inbound connection while its remote address already has
/// [`Limits::max_pending_incoming_per_ip`](super::Limits::max_pending_incoming_per_ip)
/// connections being set up, so that one host holding silent sockets cannot take every pending
/// slot of [`Limits::max_pending_incoming`](super::Limits::max_pending_incoming) and lock every
/// newcomer out until the upgrade timeout.
pub(crate) struct PendingPerIp {
    max: u32,
    counts: BTreeMap<IpAddr, u32>,
    by_conn: BTreeMap<ConnectionId, IpAddr>,
}

impl PendingPerIp {
    pub(crate) const fn new(max: u32) -> Self {
        PendingPerIp {
            max,
            counts: BTreeMap::new(),
            by_conn: BTreeMap::new(),
        }
    }

    fn release(&mut self, id: ConnectionId) {
        let Some(ip) = self.by_conn.remove(&id) else {
            return;
        };
        if let Some(n) = self.counts.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.counts.remove(&ip);
            }
        }
    }
}

fn remote_ip(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        MaProtocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        MaProtocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl NetworkBehaviour for PendingPerIp {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = remote_ip(remote) else {
            return Ok(());
        };
        let n = self.counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return Err(ConnectionDenied::new(TooManyPendingFromIp(ip)));
        }
        *n += 1;
        self.by_conn.insert(id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => self.release(e.connection_id),
            FromSwarm::ListenFailure(f) => self.release(f.connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
