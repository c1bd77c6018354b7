//! A status-rs libp2p node with small connection limits under a flood: raw TCP sockets from one
//! host that send nothing or garbage (a newcomer from elsewhere still gets in), then libp2p
//! clients with fresh identities that complete the handshake and open more streams than
//! allowed, announce frames over the cap, announce a frame and trickle it forever, or send
//! full-size frames without ever identifying. Throughout, a legitimate peer keeps getting
//! relayed messages and store answers; established connections never pass the limit; the
//! counters show the refusals; and once the flood stops, the node is back to its legitimate
//! peer and takes new ones.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    missing_docs,
    unreachable_pub
)]

mod libp2p_rig;

use libp2p_rig::{WAIT, full_node, topic, wait_for};
use std::collections::VecDeque;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{AsyncWriteExt, StreamExt};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;
use transports::libp2p::upstream as p2p;
use transports::libp2p::{self as lp, DriverEvent, Keypair, Libp2pConfig, Libp2pNode, Limits};
use waku_core::message::WakuMessage;
use waku_core::net::Protocol;
use waku_core::node::{MessageSource, NodeEvent, WakuNode};
use waku_core::store::{QueryLimits, StoreClientEvent, StoreQuery};
use waku_core::topic::ContentTopic;

use p2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use p2p::core::{Endpoint, Multiaddr, transport::PortUse};
use p2p::swarm::handler::{ConnectionEvent, FullyNegotiatedOutbound};
use p2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, SubstreamProtocol, SwarmEvent, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use p2p::{PeerId, Stream, StreamProtocol};

const LIMITS: Limits = Limits {
    max_pending_incoming: 8,
    max_pending_incoming_per_ip: 4,
    max_pending_outgoing: 8,
    max_established: 16,
    max_established_per_peer: 2,
};
const RAW_SOCKETS: usize = 120;
const HOSTILE_CLIENTS: usize = 40;
/// Streams each stream-flooding client opens (over `MAX_INBOUND_STREAMS_PER_PEER`).
const STREAMS_PER_CLIENT: usize = 80;

fn content() -> ContentTopic {
    libp2p_rig::content("flood")
}

// ---------------------------------------------------------------------------------------------
// A bare libp2p client: TCP, Noise, yamux, and a behaviour that opens streams on request and
// hands them to the test (no identify, no ping: it never says what it serves).

#[derive(Default)]
struct Opener {
    events: VecDeque<ToSwarm<Stream, StreamProtocol>>,
}

impl Opener {
    fn open(&mut self, peer: PeerId, protocol: StreamProtocol) {
        self.events.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::Any,
            event: protocol,
        });
    }
}

impl NetworkBehaviour for Opener {
    type ConnectionHandler = OpenHandler;
    type ToSwarm = Stream;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(OpenHandler::default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(OpenHandler::default())
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

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Stream, THandlerInEvent<Self>>> {
        match self.events.pop_front() {
            Some(e) => Poll::Ready(e),
            None => Poll::Pending,
        }
    }
}

#[derive(Default)]
struct OpenHandler {
    opens: VecDeque<StreamProtocol>,
    ready: VecDeque<Stream>,
}

impl ConnectionHandler for OpenHandler {
    type FromBehaviour = StreamProtocol;
    type ToBehaviour = Stream;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade, ()> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        true
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<ReadyUpgrade<StreamProtocol>, (), Stream>> {
        if let Some(s) = self.ready.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(s));
        }
        if let Some(p) = self.opens.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(p), ()),
            });
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, p: StreamProtocol) {
        self.opens.push_back(p);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, DeniedUpgrade, ReadyUpgrade<StreamProtocol>, (), ()>,
    ) {
        if let ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
            protocol: stream,
            ..
        }) = event
        {
            self.ready.push_back(stream);
        }
    }
}

/// What a hostile client does once connected.
#[derive(Debug, Clone, Copy)]
enum Attack {
    /// Opens [`STREAMS_PER_CLIENT`] store-query streams and sends nothing on them.
    ManyStreams,
    /// Announces relay frames one byte over the cap, on a few streams.
    Oversized,
    /// Announces a relay frame of the full cap and trickles its body, forever.
    Endless,
    /// Sends [`BIG_FRAMES`] well-formed relay frames of the full cap without ever identifying.
    BigFrames,
}

/// Full-size frames a [`Attack::BigFrames`] client sends.
const BIG_FRAMES: usize = 6;

/// What one hostile client achieved.
#[derive(Debug, Default, Clone, Copy)]
struct ClientReport {
    /// Its handshake completed (the node may still have closed the connection at once, when
    /// over the established limit).
    handshake: bool,
    /// Streams the node accepted.
    streams_opened: usize,
}

fn uvarint(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    proto::frame::write_uvarint(v, &mut out);
    out
}

/// Runs one hostile client against `target` until `stop` turns true.
async fn hostile(
    target: Multiaddr,
    attack: Attack,
    mut stop: watch::Receiver<bool>,
) -> ClientReport {
    let mut swarm = p2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            p2p::tcp::Config::default().nodelay(true),
            p2p::noise::Config::new,
            p2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| Opener::default())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    let mut report = ClientReport::default();
    if swarm.dial(target).is_err() {
        return report;
    }
    let relay = StreamProtocol::new(Protocol::Relay.id());
    let store = StreamProtocol::new(Protocol::StoreQuery.id());
    let cap = Protocol::Relay.max_frame_len() as u64;
    let mut held: Vec<Stream> = Vec::new();
    let mut trickles = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = trickles.tick(), if matches!(attack, Attack::Endless) => {
                for s in &mut held {
                    let _ = s.write_all(&[0x55; 64]).await;
                }
            }
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    report.handshake = true;
                    let (protocol, n) = match attack {
                        Attack::ManyStreams => (store.clone(), STREAMS_PER_CLIENT),
                        Attack::Oversized => (relay.clone(), 4),
                        Attack::Endless => (relay.clone(), 4),
                        Attack::BigFrames => (relay.clone(), 1),
                    };
                    for _ in 0..n {
                        swarm.behaviour_mut().open(peer_id, protocol.clone());
                    }
                }
                // Refused or closed by the node: this client is done.
                SwarmEvent::ConnectionClosed { num_established: 0, .. }
                | SwarmEvent::OutgoingConnectionError { .. } => return report,
                SwarmEvent::Behaviour(mut stream) => {
                    report.streams_opened += 1;
                    match attack {
                        Attack::ManyStreams => {}
                        Attack::Oversized => {
                            let mut frame = uvarint(cap + 1);
                            frame.extend_from_slice(&[0xaa; 512]);
                            let _ = stream.write_all(&frame).await;
                            let _ = stream.flush().await;
                        }
                        Attack::Endless => {
                            let _ = stream.write_all(&uvarint(cap)).await;
                            let _ = stream.flush().await;
                        }
                        Attack::BigFrames => {
                            let mut frame = uvarint(cap);
                            frame.resize(frame.len() + cap as usize, 0x42);
                            for _ in 0..BIG_FRAMES {
                                let _ = stream.write_all(&frame).await;
                            }
                            let _ = stream.flush().await;
                        }
                    }
                    held.push(stream);
                }
                _ => {}
            },
        }
    }
    report
}

// ---------------------------------------------------------------------------------------------

struct Rig {
    node: Libp2pNode<WakuNode>,
    legit: Libp2pNode<WakuNode>,
    published: usize,
}

impl Rig {
    /// The node publishes a message (archived, relayed to the legitimate peer); the legitimate
    /// peer receives it over relay, then queries the node's store and gets every message so far.
    /// Returns the time it all took.
    async fn round_trip(&mut self, label: &str) -> Duration {
        let t0 = Instant::now();
        let i = self.published;
        self.published += 1;
        let text = format!("flood {i}");
        let sent = text.clone();
        self.node
            .handle()
            .call(move |n, now| {
                let m =
                    WakuMessage::new(content(), sent.into_bytes()).with_timestamp(now.unix_nanos);
                n.publish(now, Some(topic()), m).unwrap()
            })
            .await
            .unwrap();
        let payload = wait_for(&mut self.legit, "relayed message", |ev| match ev {
            DriverEvent::Machine(NodeEvent::Message {
                message,
                source: MessageSource::Relay(_),
                ..
            }) => Some(message.payload),
            _ => None,
        })
        .await;
        assert_eq!(String::from_utf8(payload).unwrap(), text);
        let qid = self
            .legit
            .handle()
            .call(move |n, now| {
                let peer = n
                    .peers()
                    .find(|(_, ps)| ps.contains(&Protocol::StoreQuery))
                    .map(|(p, _)| p)
                    .unwrap();
                n.query_store(
                    now,
                    Some(peer),
                    StoreQuery::topics(topic(), [content()]).page_size(100),
                    QueryLimits::default(),
                )
                .unwrap()
            })
            .await
            .unwrap();
        let entries = wait_for(&mut self.legit, "store answer", |ev| match ev {
            DriverEvent::Machine(NodeEvent::Store(StoreClientEvent::Finished {
                query,
                result,
                entries,
                ..
            })) if query == qid => {
                result.unwrap();
                Some(entries)
            }
            _ => None,
        })
        .await;
        assert_eq!(entries, i + 1, "store answer during {label}");
        let took = t0.elapsed();
        println!("{label}: relay + store round trip in {took:?}");
        took
    }

    /// Drains the node's events (it has no application reading them otherwise).
    fn drain(&mut self) {
        while self.node.try_next_event().is_some() {}
    }

    async fn max_peers_while(&mut self, dur: Duration) -> usize {
        let end = Instant::now() + dur;
        let mut max = 0;
        while Instant::now() < end {
            self.drain();
            let peers = self.node.handle().peers().await.unwrap();
            max = max.max(peers.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        max
    }
}

#[tokio::test]
async fn flood_of_connections_and_streams() {
    let mut config = Libp2pConfig::new(Keypair::generate_ed25519());
    config.listen.push("/ip4/127.0.0.1/tcp/0".parse().unwrap());
    config.limits = LIMITS;
    let node = lp::start(config, full_node(1)).await.unwrap();
    let addr = node.listen_addrs()[0].clone();
    let port = addr
        .iter()
        .find_map(|p| match p {
            p2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    println!("node listens on {addr}, limits {LIMITS:?}");

    let legit = lp::start(Libp2pConfig::new(Keypair::generate_ed25519()), full_node(2))
        .await
        .unwrap();
    legit.handle().dial(addr.clone()).await.unwrap();
    let mut rig = Rig {
        node,
        legit,
        published: 0,
    };
    wait_for(&mut rig.legit, "connected", |ev| match ev {
        DriverEvent::Connected(_) => Some(()),
        _ => None,
    })
    .await;
    rig.legit
        .handle()
        .call(|n, now| n.subscribe(now, topic(), vec![content()]).unwrap())
        .await
        .unwrap();
    let t = topic().to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        rig.drain();
        let t1 = t.clone();
        let mesh = rig
            .node
            .handle()
            .call(move |n, _| n.relay().unwrap().mesh_peers(&t1).len())
            .await
            .unwrap();
        if mesh == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no mesh");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = rig.round_trip("before the flood").await;

    // --- Phase 1: raw TCP sockets from another host (127.0.0.2), half silent, half sending
    // garbage. ---
    let mut sockets = Vec::new();
    let mut connect_failed = 0;
    for i in 0..RAW_SOCKETS {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        match socket.connect(([127, 0, 0, 1], port).into()).await {
            Ok(mut s) => {
                if i % 2 == 1 {
                    let garbage: Vec<u8> =
                        (0..1024u32).map(|j| (j * 31 + i as u32) as u8).collect();
                    let _ = s.write_all(&garbage).await;
                }
                sockets.push(s);
            }
            Err(_) => connect_failed += 1,
        }
    }
    let max_during_raw = rig.max_peers_while(Duration::from_millis(500)).await;
    // A new peer from another address now: the silent sockets hold at most the per-IP share of
    // the pending slots (until the 20 s upgrade timeout), so it gets in.
    let mut newcomer = lp::start(Libp2pConfig::new(Keypair::generate_ed25519()), full_node(4))
        .await
        .unwrap();
    newcomer.handle().dial(addr.clone()).await.unwrap();
    let admitted = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match newcomer.next_event().await {
                Some(DriverEvent::Connected(_)) => return true,
                Some(DriverEvent::DialFailed { .. }) | None => return false,
                _ => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    println!("a new peer dialling during the raw TCP flood: admitted = {admitted}");
    assert!(
        admitted,
        "silent sockets from one host locked a newcomer out"
    );
    let _ = newcomer.shutdown().await;
    let during_raw = rig.round_trip("during the raw TCP flood").await;
    // Which sockets did the node close? (A silent socket it still holds times out here.) Polled
    // until no more than the per-IP pending limit are open, for at most 5 s (well below the
    // 20 s upgrade timeout that would close the held ones anyway).
    let mut open: Vec<usize> = (0..sockets.len()).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut still = Vec::new();
        for &i in &open {
            let mut buf = [0u8; 256];
            loop {
                match tokio::time::timeout(Duration::from_millis(20), sockets[i].read(&mut buf))
                    .await
                {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(_)) => continue,
                    Err(_) => {
                        still.push(i);
                        break;
                    }
                }
            }
        }
        open = still;
        if open.len() <= LIMITS.max_pending_incoming_per_ip as usize || Instant::now() > deadline {
            break;
        }
    }
    let closed = sockets.len() - open.len();
    rig.drain();
    let stats = rig.node.handle().stats().await.unwrap();
    println!(
        "raw TCP: {} sockets attempted, {connect_failed} connects failed, {closed} closed by the \
         node, {} still open; node: {} denied by the limits, {} failed handshakes; peers at most \
         {max_during_raw}",
        RAW_SOCKETS,
        sockets.len() - closed,
        stats.incoming_denied,
        stats.incoming_failed,
    );
    assert!(max_during_raw <= 1, "raw sockets never become peers");
    assert!(
        stats.incoming_denied + stats.incoming_failed > 0,
        "the node refused nothing: {stats:?}"
    );
    // The per-IP pending limit: at most that many sockets were still held by the node.
    assert!(
        open.len() <= LIMITS.max_pending_incoming_per_ip as usize,
        "{} raw sockets held open",
        open.len()
    );
    drop(sockets);
    let denied_before = stats.incoming_denied;

    // --- Phase 2: libp2p clients with fresh identities. ---
    let target: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut clients = Vec::new();
    for i in 0..HOSTILE_CLIENTS {
        let attack = match i % 4 {
            0 => Attack::ManyStreams,
            1 => Attack::Oversized,
            2 => Attack::Endless,
            _ => Attack::BigFrames,
        };
        clients.push(tokio::spawn(hostile(
            target.clone(),
            attack,
            stop_rx.clone(),
        )));
        // A little spacing, so the pending limit is not all that refuses them.
        if i % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let max_during_clients = rig.max_peers_while(Duration::from_millis(2000)).await;
    let during_clients = rig.round_trip("during the libp2p client flood").await;
    let max_after_trip = rig.max_peers_while(Duration::from_millis(200)).await;
    let stats = rig.node.handle().stats().await.unwrap();
    stop_tx.send(true).unwrap();
    let mut handshakes = 0;
    let mut served = 0;
    let mut streams = 0;
    for c in clients {
        let r = c.await.unwrap();
        handshakes += usize::from(r.handshake);
        served += usize::from(r.streams_opened > 0);
        streams += r.streams_opened;
    }
    println!(
        "libp2p clients: {HOSTILE_CLIENTS} attempted, {handshakes} completed the handshake, \
         {served} got streams ({streams} streams accepted); peers at most {}; node stats \
         {stats:?}",
        max_during_clients.max(max_after_trip)
    );
    assert!(max_during_clients.max(max_after_trip) <= LIMITS.max_established as usize);
    assert!(served > 0, "no client got through: the test floods nothing");
    assert!(
        served < LIMITS.max_established as usize,
        "more clients got streams than the limit allows"
    );
    assert!(
        stats.incoming_denied > denied_before,
        "the limits refused no client: {stats:?}"
    );
    assert!(stats.streams_refused > 0, "{stats:?}");
    assert!(stats.bad_frames > 0, "{stats:?}");
    // Full-size frames from peers that never identify: kept only within the byte bounds.
    assert!(stats.dropped_overflow > 0, "{stats:?}");

    // --- After: resources released, the legitimate peer still served, new peers welcome. ---
    let deadline = Instant::now() + WAIT;
    let t_release = Instant::now();
    loop {
        rig.drain();
        let peers = rig.node.handle().peers().await.unwrap();
        if peers.len() == 1 {
            assert_eq!(peers[0].libp2p_peer, rig.legit.peer_id());
            break;
        }
        assert!(Instant::now() < deadline, "{} peers left", peers.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "peers back to the legitimate one {:?} after the flood stopped",
        t_release.elapsed()
    );
    let after = rig.round_trip("after the flood").await;
    let mut fresh = lp::start(Libp2pConfig::new(Keypair::generate_ed25519()), full_node(3))
        .await
        .unwrap();
    let t_fresh = Instant::now();
    fresh.handle().dial(addr.clone()).await.unwrap();
    wait_for(&mut fresh, "fresh peer connected", |ev| match ev {
        DriverEvent::Connected(info) => Some(info),
        _ => None,
    })
    .await;
    println!(
        "a fresh peer connected in {:?} after the flood",
        t_fresh.elapsed()
    );
    println!(
        "round trips: before {before:?}, raw flood {during_raw:?}, client flood \
         {during_clients:?}, after {after:?}"
    );
    let _ = fresh.shutdown().await;
    let _ = rig.legit.shutdown().await;
    let _ = rig.node.shutdown().await;
}
