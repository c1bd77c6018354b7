//! What every network state machine shares with the drivers: peer handles, protocol ids, frames
//! out ([`Transmit`]), the clock ([`Now`]) and the [`Machine`] trait the drivers run.
//!
//! A driver (the simulated network, TCP, libp2p in `transports`) owns the sockets and the clock.
//! It gives each connected peer a [`PeerId`] handle, delivers whole frames (the varint length
//! prefix of WIRE.md B.1 already removed) with [`Machine::handle_frame`], and drains
//! [`Machine::poll_transmit`], [`Machine::poll_event`] and [`Machine::poll_timeout`] after every
//! input. Request/response protocols tag frames with a [`FrameKind`] so the driver can map them
//! onto libp2p streams or tagged TCP frames.

use std::fmt;
use std::time::Instant;

/// A connected peer, as the driver names it. Handles are assigned by the driver and are only
/// meaningful to the machine it drives; a peer that reconnects may get a new handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// The protocols a status-rs node speaks, with their Waku protocol ids (WIRE.md B.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// Gossipsub RPC frames on `/vac/waku/relay/2.0.0`.
    Relay,
    /// Store v3 queries, `/vac/waku/store-query/3.0.0`.
    StoreQuery,
    /// Filter v2 subscriptions, `/vac/waku/filter-subscribe/2.0.0-beta1`.
    FilterSubscribe,
    /// Filter v2 pushes, `/vac/waku/filter-push/2.0.0-beta1`.
    FilterPush,
    /// Lightpush v3, `/vac/waku/lightpush/3.0.0`.
    LightPush,
    /// Legacy lightpush v2, `/vac/waku/lightpush/2.0.0-beta1`.
    LightPushLegacy,
    /// Metadata, `/vac/waku/metadata/1.0.0`.
    Metadata,
    /// Peer exchange, `/vac/waku/peer-exchange/2.0.0-alpha1`.
    PeerExchange,
}

impl Protocol {
    /// Every protocol, in a fixed order.
    pub const ALL: [Protocol; 8] = [
        Protocol::Relay,
        Protocol::StoreQuery,
        Protocol::FilterSubscribe,
        Protocol::FilterPush,
        Protocol::LightPush,
        Protocol::LightPushLegacy,
        Protocol::Metadata,
        Protocol::PeerExchange,
    ];

    /// The protocol id string used on the wire.
    pub const fn id(self) -> &'static str {
        match self {
            Protocol::Relay => "/vac/waku/relay/2.0.0",
            Protocol::StoreQuery => "/vac/waku/store-query/3.0.0",
            Protocol::FilterSubscribe => "/vac/waku/filter-subscribe/2.0.0-beta1",
            Protocol::FilterPush => "/vac/waku/filter-push/2.0.0-beta1",
            Protocol::LightPush => "/vac/waku/lightpush/3.0.0",
            Protocol::LightPushLegacy => "/vac/waku/lightpush/2.0.0-beta1",
            Protocol::Metadata => "/vac/waku/metadata/1.0.0",
            Protocol::PeerExchange => "/vac/waku/peer-exchange/2.0.0-alpha1",
        }
    }

    /// The protocol with wire id `id`, if status-rs speaks it.
    pub fn from_id(id: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.id() == id)
    }

    /// The largest frame this protocol accepts, checked by drivers before allocating
    /// (WIRE.md B.1: a 150 KiB message plus envelope; filter and peer-exchange RPCs may carry ten).
    pub const fn max_frame_len(self) -> usize {
        const MSG: usize = 150 * 1024;
        match self {
            Protocol::Relay => 1024 * 1024,
            Protocol::StoreQuery => 100 * MSG + 64 * 1024,
            Protocol::FilterSubscribe | Protocol::FilterPush | Protocol::PeerExchange => {
                10 * MSG + 64 * 1024
            }
            Protocol::LightPush | Protocol::LightPushLegacy => MSG + 64 * 1024,
            Protocol::Metadata => 64 * 1024,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// How a frame relates to other frames, so drivers can map it onto streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A frame on the long-lived stream of a protocol (relay RPCs, filter pushes).
    Stream,
    /// A request; the id is chosen by whoever sends the request and is unique per peer.
    Request(u64),
    /// The response to the request with this id (sent by the side that received the request).
    Response(u64),
}

/// A frame to send: the bytes of one protobuf message, without the length prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The peer to send to.
    pub to: PeerId,
    /// The protocol the frame belongs to.
    pub protocol: Protocol,
    /// Stream, request or response.
    pub kind: FrameKind,
    /// The frame body.
    pub bytes: Vec<u8>,
}

/// The time as a machine sees it: a monotonic instant for timers and a wall clock for Waku
/// timestamps, store ranges and retention. Drivers read both clocks; machines never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time; never goes backwards between calls.
    pub instant: Instant,
    /// Unix time in nanoseconds.
    pub unix_nanos: i64,
}

impl Now {
    /// Unix time in milliseconds.
    pub const fn unix_millis(&self) -> i64 {
        self.unix_nanos / 1_000_000
    }
}

/// The interface every driver runs: bytes and timers in, actions out (DESIGN.md).
///
/// Contract: `now` never goes backwards; inputs may come in any order; outputs queue up until
/// drained; inputs never panic and never fail because of what a peer sent.
pub trait Machine {
    /// What the machine reports to the application (or asks of the driver).
    type Event;

    /// A connection to `peer` is up; `protocols` lists what the peer *serves* (its
    /// [`Machine::protocols`], as identify or the TCP Hello carries it), which is what this
    /// machine may open on it as a client.
    fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]);
    /// Like [`Machine::handle_connected`] for a connection this side dialled. Drivers that know
    /// the direction call it, because outbound peers are harder for an attacker to choose: the
    /// relay keeps a quota of them in its mesh (gossipsub's `D_out`). The default treats the
    /// connection like any other.
    fn handle_dialed(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.handle_connected(now, peer, protocols);
    }
    /// The connection to `peer` is gone.
    fn handle_disconnected(&mut self, now: Now, peer: PeerId);
    /// One frame arrived from `from`.
    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    );
    /// The time returned by [`Machine::poll_timeout`] has come.
    fn handle_timeout(&mut self, now: Now);
    /// The next frame to send, if any.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next event, if any.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When the machine next wants [`Machine::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
    /// The protocols this machine *serves*, listed to peers in the handshake (libp2p's
    /// identify, the TCP Hello): what a remote may open on it. A light node that receives lists
    /// [`Protocol::FilterPush`], a relaying node [`Protocol::Relay`]; protocols used only as a
    /// client are not listed. Drivers carry a [`FrameKind::Stream`] or [`FrameKind::Request`]
    /// frame only to a peer that lists its protocol, and a [`FrameKind::Response`] only from a
    /// machine that lists it (the server answers); peers pick service peers (a store, a
    /// lightpush or filter server) from these lists.
    fn protocols(&self) -> Vec<Protocol>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_ids_round_trip() {
        for p in Protocol::ALL {
            assert_eq!(Protocol::from_id(p.id()), Some(p));
        }
        assert_eq!(Protocol::from_id("/meshsub/1.1.0"), None);
    }
}
