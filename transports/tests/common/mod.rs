//! Small machines for the driver tests: a flooding relay with request/response, a machine that
//! never stops asking to be woken, and a zero-delay ping-pong.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};

/// What a [`TestNode`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ev {
    Connected(PeerId, Vec<Protocol>),
    Disconnected(PeerId),
    /// A relay message, with its id, seen for the first time (`fresh`) or again.
    Relay {
        from: PeerId,
        id: u64,
        len: usize,
        fresh: bool,
    },
    /// A request arrived (and was answered if `respond`).
    Request {
        from: PeerId,
        id: u64,
        body: Vec<u8>,
    },
    /// A response arrived.
    Response {
        from: PeerId,
        id: u64,
        body: Vec<u8>,
    },
    Tick(i64),
}

/// Floods relay messages to every peer once (ids are the first 8 bytes), answers
/// `StoreQuery` requests with the body reversed, and optionally ticks periodically.
pub struct TestNode {
    pub protocols: Vec<Protocol>,
    pub peers: BTreeSet<PeerId>,
    pub seen: BTreeSet<u64>,
    pub flood: bool,
    pub respond: bool,
    pub tick: Option<Duration>,
    /// Sends every relay frame straight back, forever (to test the stall detector).
    pub bounce: bool,
    /// Asks to be woken at this instant forever (to test the stuck-timer detector).
    pub stuck_at: Option<Instant>,
    next_tick: Option<Instant>,
    out: VecDeque<Transmit>,
    events: VecDeque<Ev>,
}

impl TestNode {
    pub fn new(now: Now) -> Self {
        TestNode::with_protocols(now, vec![Protocol::Relay, Protocol::StoreQuery])
    }

    pub fn with_protocols(_now: Now, protocols: Vec<Protocol>) -> Self {
        TestNode {
            protocols,
            peers: BTreeSet::new(),
            seen: BTreeSet::new(),
            flood: true,
            respond: true,
            tick: None,
            bounce: false,
            stuck_at: None,
            next_tick: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Restarted from a kept `seen` set.
    pub fn restored(now: Now, seen: BTreeSet<u64>) -> Self {
        let mut n = TestNode::new(now);
        n.seen = seen;
        n
    }

    pub fn ticking(now: Now, every: Duration) -> Self {
        let mut n = TestNode::new(now);
        n.tick = Some(every);
        n.next_tick = Some(now.instant + every);
        n
    }

    /// Publishes message `id` (padded to `len` bytes) to every peer.
    pub fn publish(&mut self, id: u64, len: usize) {
        self.seen.insert(id);
        let body = body(id, len);
        for &p in &self.peers {
            self.out.push_back(Transmit {
                to: p,
                protocol: Protocol::Relay,
                kind: FrameKind::Stream,
                bytes: body.clone(),
            });
        }
    }

    pub fn send(&mut self, to: PeerId, protocol: Protocol, kind: FrameKind, bytes: Vec<u8>) {
        self.out.push_back(Transmit {
            to,
            protocol,
            kind,
            bytes,
        });
    }
}

pub fn body(id: u64, len: usize) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.resize(len.max(8), 0xab);
    b
}

impl Machine for TestNode {
    type Event = Ev;

    fn handle_connected(&mut self, _now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.peers.insert(peer);
        self.events
            .push_back(Ev::Connected(peer, protocols.to_vec()));
    }

    fn handle_disconnected(&mut self, _now: Now, peer: PeerId) {
        self.peers.remove(&peer);
        self.events.push_back(Ev::Disconnected(peer));
    }

    fn handle_frame(
        &mut self,
        _now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        match (protocol, kind) {
            (Protocol::Relay, FrameKind::Stream) => {
                let Some(id) = frame.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
                    return;
                };
                let id = u64::from_be_bytes(id);
                if self.bounce {
                    self.out.push_back(Transmit {
                        to: from,
                        protocol,
                        kind,
                        bytes: frame.to_vec(),
                    });
                }
                let fresh = self.seen.insert(id);
                self.events.push_back(Ev::Relay {
                    from,
                    id,
                    len: frame.len(),
                    fresh,
                });
                if fresh && self.flood {
                    for &p in self.peers.iter().filter(|&&p| p != from) {
                        self.out.push_back(Transmit {
                            to: p,
                            protocol,
                            kind,
                            bytes: frame.to_vec(),
                        });
                    }
                }
            }
            (_, FrameKind::Request(id)) => {
                self.events.push_back(Ev::Request {
                    from,
                    id,
                    body: frame.to_vec(),
                });
                if self.respond {
                    let mut reply = frame.to_vec();
                    reply.reverse();
                    self.out.push_back(Transmit {
                        to: from,
                        protocol,
                        kind: FrameKind::Response(id),
                        bytes: reply,
                    });
                }
            }
            (_, FrameKind::Response(id)) => {
                self.events.push_back(Ev::Response {
                    from,
                    id,
                    body: frame.to_vec(),
                });
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        if let (Some(every), Some(at)) = (self.tick, self.next_tick)
            && now.instant >= at
        {
            self.events.push_back(Ev::Tick(now.unix_millis()));
            self.next_tick = Some(at + every);
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_event(&mut self) -> Option<Ev> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.stuck_at, self.next_tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn protocols(&self) -> Vec<Protocol> {
        self.protocols.clone()
    }
}
