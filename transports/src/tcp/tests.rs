//! Loopback tests that need the connection internals: a raw peer that speaks the wire by hand.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};

use super::conn::{self, Established, Setup, Timeouts};
use super::wire::{self, Hello, Packet};
use super::*;

/// Records the frames it gets.
#[derive(Default)]
struct Sink {
    frames: VecDeque<Vec<u8>>,
}

impl Machine for Sink {
    type Event = Vec<u8>;
    fn handle_connected(&mut self, _: Now, _: PeerId, _: &[Protocol]) {}
    fn handle_disconnected(&mut self, _: Now, _: PeerId) {}
    fn handle_frame(&mut self, _: Now, _: PeerId, _: Protocol, _: FrameKind, f: &[u8]) {
        self.frames.push_back(f.to_vec());
    }
    fn handle_timeout(&mut self, _: Now) {}
    fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    fn poll_event(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::Relay]
    }
}

async fn node(ping: Duration, idle: Duration) -> TcpNode<Sink> {
    let mut c = TcpConfig::new(NodeKey::from_bytes([1; 32]), [2; 32]);
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c.ping_interval = ping;
    c.idle_timeout = idle;
    tcp_start(c).await
}

async fn tcp_start(c: TcpConfig) -> TcpNode<Sink> {
    start(c, Sink::default()).await.unwrap()
}

/// A hand-driven peer: handshake and Hello done, then raw plaintext.
async fn raw_peer(addr: SocketAddr) -> (TcpStream, Established) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (events, _rx) = mpsc::channel(1);
    let setup = Setup {
        id: 0,
        key: NodeKey::from_bytes([7; 32]),
        seed: [8; 32],
        hello: Hello::new("raw", 0, &[Protocol::Relay]),
        expected: None,
        outbound: true,
        addr,
        timeouts: Timeouts {
            handshake: Duration::from_secs(5),
            ping_interval: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        },
        events,
    };
    let est = conn::establish(&mut stream, &setup).await.unwrap();
    (stream, est)
}

/// Reads packets until `want` accepts one.
async fn read_until<T>(
    stream: &mut TcpStream,
    est: &mut Established,
    mut want: impl FnMut(Packet) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            while let Some(p) = est.decoder.next_packet().unwrap() {
                if let Some(t) = want(p) {
                    return t;
                }
            }
            let plain = est.reader.read(stream).await.unwrap().to_vec();
            est.decoder.push(&plain).unwrap();
        }
    })
    .await
    .unwrap()
}

async fn disconnected(n: &mut TcpNode<Sink>) -> (DisconnectReason, bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match n.next_event().await.unwrap() {
                DriverEvent::Disconnected {
                    reason, by_remote, ..
                } => return (reason, by_remote),
                DriverEvent::Machine(f) => panic!("the machine got a frame of {}", f.len()),
                _ => {}
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_oversized_length_is_refused_before_the_body_arrives() {
    let mut n = node(Duration::from_secs(60), Duration::from_secs(60)).await;
    let (mut stream, mut est) = raw_peer(n.local_addr().unwrap()).await;
    assert_eq!(est.remote, vec![Protocol::Relay]);
    // A relay frame header one byte over the cap, and no body at all: the node must not wait
    // for (or reserve) the announced megabyte.
    let cap = 2 + 8 + Protocol::Relay.max_frame_len();
    let mut header = u32::try_from(cap + 1).unwrap().to_be_bytes().to_vec();
    header.extend_from_slice(&[1, 0]);
    est.writer.send(&mut stream, &header).await.unwrap();
    let reason = read_until(&mut stream, &mut est, |p| match p {
        Packet::Disconnect(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(reason, DisconnectReason::FrameTooLarge);
    assert_eq!(
        disconnected(&mut n).await,
        (DisconnectReason::FrameTooLarge, false)
    );
    let stats = n.handle().stats().await.unwrap();
    assert_eq!(stats.frames_received, 0);
    n.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_frame_at_the_cap_is_delivered() {
    let mut n = node(Duration::from_secs(60), Duration::from_secs(60)).await;
    let (mut stream, mut est) = raw_peer(n.local_addr().unwrap()).await;
    let body = vec![0x5a; Protocol::Relay.max_frame_len()];
    let mut out = Vec::new();
    wire::encode_frame(1, Protocol::Relay, FrameKind::Stream, &body, &mut out).unwrap();
    est.writer.send(&mut stream, &out).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(DriverEvent::Machine(f)) = n.next_event().await {
                return f;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, body);
    n.shutdown().await.unwrap();
}

#[tokio::test]
async fn pings_are_sent_and_a_silent_peer_times_out() {
    let mut n = node(Duration::from_millis(100), Duration::from_millis(400)).await;
    let (mut stream, mut est) = raw_peer(n.local_addr().unwrap()).await;
    let started = tokio::time::Instant::now();
    let nonce = read_until(&mut stream, &mut est, |p| match p {
        Packet::Ping(n) => Some(n),
        _ => None,
    })
    .await;
    assert_eq!(nonce, 1);
    // We never answer and never send: the node gives up after its idle timeout.
    let reason = read_until(&mut stream, &mut est, |p| match p {
        Packet::Disconnect(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(reason, DisconnectReason::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        disconnected(&mut n).await,
        (DisconnectReason::Timeout, false)
    );
    n.shutdown().await.unwrap();
}

#[tokio::test]
async fn pongs_keep_two_nodes_connected_past_the_idle_timeout() {
    // Pings every 100 ms, idle timeout 600 ms, watched for 2 s: only pongs keep it alive.
    let mut a = node(Duration::from_millis(100), Duration::from_millis(600)).await;
    let mut c = TcpConfig::new(NodeKey::from_bytes([3; 32]), [4; 32]);
    c.ping_interval = Duration::from_millis(100);
    c.idle_timeout = Duration::from_millis(600);
    c.static_peers.push(StaticPeer {
        addr: a.local_addr().unwrap(),
        key: Some(a.public_key()),
    });
    let mut b = tcp_start(c).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let mut connected = 0;
    while let Some(e) = b.try_next_event() {
        match e {
            DriverEvent::Connected(_) => connected += 1,
            DriverEvent::Disconnected { reason, .. } => panic!("disconnected: {reason:?}"),
            _ => {}
        }
    }
    assert_eq!(connected, 1);
    assert_eq!(a.handle().peers().await.unwrap().len(), 1);
    while let Some(e) = a.try_next_event() {
        assert!(!matches!(e, DriverEvent::Disconnected { .. }), "{e:?}");
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_node_dialling_itself_is_refused() {
    let mut n = node(Duration::from_secs(60), Duration::from_secs(60)).await;
    let me = StaticPeer {
        addr: n.local_addr().unwrap(),
        key: None,
    };
    n.handle().dial(me).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(DriverEvent::ConnectFailed { error, .. }) = n.next_event().await {
                return error;
            }
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(
            err,
            ConnectError::Rejected {
                reason: DisconnectReason::SelfConnection,
                ..
            }
        ),
        "{err:?}"
    );
    n.shutdown().await.unwrap();
}

/// Reports, as its events, how each connection was announced: `true` for `handle_dialed`.
#[derive(Default)]
struct Direction {
    seen: VecDeque<bool>,
}

impl Machine for Direction {
    type Event = bool;
    fn handle_connected(&mut self, _: Now, _: PeerId, _: &[Protocol]) {
        self.seen.push_back(false);
    }
    fn handle_dialed(&mut self, _: Now, _: PeerId, _: &[Protocol]) {
        self.seen.push_back(true);
    }
    fn handle_disconnected(&mut self, _: Now, _: PeerId) {}
    fn handle_frame(&mut self, _: Now, _: PeerId, _: Protocol, _: FrameKind, _: &[u8]) {}
    fn handle_timeout(&mut self, _: Now) {}
    fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    fn poll_event(&mut self) -> Option<bool> {
        self.seen.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::Relay]
    }
}

/// The first machine event of `n` (skipping the driver's own events).
async fn first_machine_event(n: &mut TcpNode<Direction>) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), n.next_event()).await {
            Ok(Some(DriverEvent::Machine(dialed))) => return dialed,
            Ok(Some(_)) => {}
            other => panic!("no machine event: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_dialling_side_is_told_handle_dialed_the_other_handle_connected() {
    let mut lc = TcpConfig::new(NodeKey::from_bytes([11; 32]), [12; 32]);
    lc.listen = Some("127.0.0.1:0".parse().unwrap());
    let mut listener = start(lc, Direction::default()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut dc = TcpConfig::new(NodeKey::from_bytes([13; 32]), [14; 32]);
    dc.static_peers = vec![StaticPeer { addr, key: None }];
    let mut dialer = start(dc, Direction::default()).await.unwrap();
    assert!(
        first_machine_event(&mut dialer).await,
        "dialer: handle_dialed"
    );
    assert!(
        !first_machine_event(&mut listener).await,
        "listener: handle_connected"
    );
}
