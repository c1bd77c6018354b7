//! The TCP transport on loopback: frames between two and three nodes, frames only towards the
//! side that serves their protocol, two nodes that serve nothing, a wrong static key, and a
//! reconnect after the peer restarts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "tcp")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Ev, TestNode};
use transports::tcp::{
    self, ConnectError, DisconnectReason, DriverEvent, NodeKey, PeerInfo, StaticPeer, TcpConfig,
    TcpNode,
};
use waku_core::net::{FrameKind, Protocol};

const WAIT: Duration = Duration::from_secs(20);

fn config(n: u8, listen: bool) -> TcpConfig {
    let mut c = TcpConfig::new(NodeKey::from_bytes([n; 32]), [n.wrapping_add(100); 32]);
    if listen {
        c.listen = Some("127.0.0.1:0".parse().unwrap());
    }
    c.backoff_initial = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(400);
    c
}

fn peer_of(node: &TcpNode<TestNode>) -> StaticPeer {
    StaticPeer {
        addr: node.local_addr().unwrap(),
        key: Some(node.public_key()),
    }
}

/// Waits for the first event `f` accepts, skipping others.
async fn wait_for<T>(
    node: &mut TcpNode<TestNode>,
    mut f: impl FnMut(DriverEvent<Ev>) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = node.next_event().await.expect("driver stopped");
            if let Some(t) = f(e) {
                return t;
            }
        }
    })
    .await
    .expect("timed out waiting for an event")
}

async fn connected(node: &mut TcpNode<TestNode>) -> PeerInfo {
    wait_for(node, |e| match e {
        DriverEvent::Connected(info) => Some(info),
        _ => None,
    })
    .await
}

async fn relay(node: &mut TcpNode<TestNode>) -> (u64, usize) {
    wait_for(node, |e| match e {
        DriverEvent::Machine(Ev::Relay {
            id,
            len,
            fresh: true,
            ..
        }) => Some((id, len)),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn two_nodes_exchange_stream_request_and_large_frames() {
    let mut a = tcp::start(config(1, true), TestNode::new(clock_now()))
        .await
        .unwrap();
    let mut b_cfg = config(2, false);
    b_cfg.static_peers.push(peer_of(&a));
    let mut b = tcp::start(b_cfg, TestNode::new(clock_now())).await.unwrap();

    let at_a = connected(&mut a).await;
    let at_b = connected(&mut b).await;
    assert_eq!(at_a.key, b.public_key());
    assert_eq!(at_b.key, a.public_key());
    assert!(at_b.outbound && !at_a.outbound);
    assert_eq!(at_b.protocols, vec![Protocol::Relay, Protocol::StoreQuery]);
    assert_eq!(at_b.listen_port, a.local_addr().unwrap().port());

    // A relay frame, then one of 300 KiB that spans several Noise messages.
    a.handle()
        .call(|m: &mut TestNode, _| m.publish(1, 100))
        .await
        .unwrap();
    assert_eq!(relay(&mut b).await, (1, 100));
    a.handle()
        .call(|m: &mut TestNode, _| m.publish(2, 300 * 1024))
        .await
        .unwrap();
    assert_eq!(relay(&mut b).await, (2, 300 * 1024));

    // A request and its response, matched by id.
    let to_a = at_b.peer;
    b.handle()
        .call(move |m: &mut TestNode, _| {
            m.send(
                to_a,
                Protocol::StoreQuery,
                FrameKind::Request(77),
                b"query".to_vec(),
            )
        })
        .await
        .unwrap();
    let (id, body) = wait_for(&mut b, |e| match e {
        DriverEvent::Machine(Ev::Response { id, body, .. }) => Some((id, body)),
        _ => None,
    })
    .await;
    assert_eq!((id, body.as_slice()), (77, &b"yreuq"[..]));

    let stats = a.handle().stats().await.unwrap();
    assert!(
        stats.frames_sent >= 3 && stats.frames_received >= 1,
        "{stats:?}"
    );
    let a_machine = a.shutdown().await.unwrap();
    assert!(
        a_machine.peers.is_empty(),
        "shutdown disconnects the machine's peers"
    );
    let reason = wait_for(&mut b, |e| match e {
        DriverEvent::Disconnected {
            reason, by_remote, ..
        } => Some((reason, by_remote)),
        _ => None,
    })
    .await;
    assert_eq!(reason, (DisconnectReason::Shutdown, true));
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn three_nodes_relay_through_the_middle_one() {
    let mut hub = tcp::start(config(10, true), TestNode::new(clock_now()))
        .await
        .unwrap();
    let mut left_cfg = config(11, false);
    left_cfg.static_peers.push(peer_of(&hub));
    let mut right_cfg = config(12, false);
    right_cfg.static_peers.push(peer_of(&hub));
    let mut left = tcp::start(left_cfg, TestNode::new(clock_now()))
        .await
        .unwrap();
    let mut right = tcp::start(right_cfg, TestNode::new(clock_now()))
        .await
        .unwrap();
    connected(&mut left).await;
    connected(&mut right).await;
    connected(&mut hub).await;
    connected(&mut hub).await;
    assert_eq!(hub.handle().peers().await.unwrap().len(), 2);

    left.handle()
        .call(|m: &mut TestNode, _| m.publish(5, 2048))
        .await
        .unwrap();
    assert_eq!(relay(&mut right).await, (5, 2048));
    assert_eq!(relay(&mut hub).await, (5, 2048));
    right
        .handle()
        .call(|m: &mut TestNode, _| m.publish(6, 10))
        .await
        .unwrap();
    assert_eq!(relay(&mut left).await, (6, 10));
    for n in [left, right, hub] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn two_nodes_that_serve_nothing_part_as_useless_peers() {
    let a_node = TestNode::with_protocols(clock_now(), vec![]);
    let b_node = TestNode::with_protocols(clock_now(), vec![]);
    let mut a = tcp::start(config(20, true), a_node).await.unwrap();
    let mut b_cfg = config(21, false);
    b_cfg.static_peers.push(peer_of(&a));
    let mut b = tcp::start(b_cfg, b_node).await.unwrap();
    let failed = |e| match e {
        DriverEvent::ConnectFailed { error, .. } => Some(error),
        DriverEvent::Connected(info) => panic!("connected: {info:?}"),
        _ => None,
    };
    let at_b = wait_for(&mut b, failed).await;
    let at_a = wait_for(&mut a, failed).await;
    for e in [at_a, at_b] {
        match e {
            ConnectError::Rejected {
                reason: DisconnectReason::UselessPeer,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(a.handle().peers().await.unwrap().is_empty());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn frames_go_to_the_side_that_serves_the_protocol() {
    // The server serves the store only; the client serves nothing at all and still queries it.
    let server = TestNode::with_protocols(clock_now(), vec![Protocol::StoreQuery]);
    let client = TestNode::with_protocols(clock_now(), vec![]);
    let mut s = tcp::start(config(22, true), server).await.unwrap();
    let mut c_cfg = config(23, false);
    c_cfg.static_peers.push(peer_of(&s));
    let mut c = tcp::start(c_cfg, client).await.unwrap();
    let at_s = connected(&mut s).await;
    let at_c = connected(&mut c).await;
    assert_eq!(
        at_c.protocols,
        vec![Protocol::StoreQuery],
        "what the server serves"
    );
    assert!(at_s.protocols.is_empty(), "the client serves nothing");

    let to_s = at_c.peer;
    c.handle()
        .call(move |m: &mut TestNode, _| {
            // Refused: the server does not serve relay.
            m.send(
                to_s,
                Protocol::Relay,
                FrameKind::Stream,
                common::body(1, 20),
            );
            m.send(
                to_s,
                Protocol::StoreQuery,
                FrameKind::Request(5),
                b"abc".to_vec(),
            );
        })
        .await
        .unwrap();
    let (id, body) = wait_for(&mut c, |e| match e {
        DriverEvent::Machine(Ev::Response { id, body, .. }) => Some((id, body)),
        _ => None,
    })
    .await;
    assert_eq!((id, body.as_slice()), (5, &b"cba"[..]));
    // The server cannot open the store on the client, nor answer on a protocol it does not serve.
    let to_c = at_s.peer;
    s.handle()
        .call(move |m: &mut TestNode, _| {
            m.send(
                to_c,
                Protocol::StoreQuery,
                FrameKind::Request(6),
                b"x".to_vec(),
            );
            m.send(
                to_c,
                Protocol::LightPush,
                FrameKind::Response(5),
                b"y".to_vec(),
            );
        })
        .await
        .unwrap();
    let cs = c.handle().stats().await.unwrap();
    let ss = s.handle().stats().await.unwrap();
    assert_eq!(cs.dropped_refused, 1, "{cs:?}");
    assert_eq!(ss.dropped_refused, 2, "{ss:?}");
    assert_eq!(
        ss.frames_received, 1,
        "only the request reached the server: {ss:?}"
    );
    c.shutdown().await.unwrap();
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_static_peer_with_another_key_is_refused() {
    let mut a = tcp::start(config(30, true), TestNode::new(clock_now()))
        .await
        .unwrap();
    let mut b_cfg = config(31, false);
    b_cfg.static_peers.push(StaticPeer {
        addr: a.local_addr().unwrap(),
        key: Some([9; 32]),
    });
    let mut b = tcp::start(b_cfg, TestNode::new(clock_now())).await.unwrap();
    let at_b = wait_for(&mut b, |e| match e {
        DriverEvent::ConnectFailed { error, .. } => Some(error),
        _ => None,
    })
    .await;
    assert_eq!(
        at_b,
        ConnectError::Rejected {
            reason: DisconnectReason::UnexpectedIdentity,
            by_remote: false
        }
    );
    let at_a = wait_for(&mut a, |e| match e {
        DriverEvent::ConnectFailed { error, .. } => Some(error),
        _ => None,
    })
    .await;
    assert_eq!(
        at_a,
        ConnectError::Rejected {
            reason: DisconnectReason::UnexpectedIdentity,
            by_remote: true
        }
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_static_peer_is_redialled_after_it_restarts() {
    let a = tcp::start(config(40, true), TestNode::new(clock_now()))
        .await
        .unwrap();
    let addr: SocketAddr = a.local_addr().unwrap();
    let mut b_cfg = config(41, false);
    b_cfg.static_peers.push(peer_of(&a));
    let mut b = tcp::start(b_cfg, TestNode::new(clock_now())).await.unwrap();
    let first = connected(&mut b).await;

    // Stop A, keep what it saw, and start it again on the same address with the same key.
    let old = a.shutdown().await.unwrap();
    wait_for(&mut b, |e| match e {
        DriverEvent::Disconnected { peer, .. } if peer == first.peer => Some(()),
        _ => None,
    })
    .await;
    let mut a_cfg = config(40, false);
    a_cfg.listen = Some(addr);
    let mut a = tcp::start(a_cfg, TestNode::restored(clock_now(), old.seen))
        .await
        .unwrap();
    let second = connected(&mut b).await;
    assert_ne!(
        second.peer, first.peer,
        "a reconnection is a new peer handle"
    );
    assert_eq!(second.key, first.key);
    connected(&mut a).await;

    b.handle()
        .call(|m: &mut TestNode, _| m.publish(9, 64))
        .await
        .unwrap();
    assert_eq!(relay(&mut a).await, (9, 64));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A `Now` for building test machines outside the driver (only the instant is used).
fn clock_now() -> waku_core::net::Now {
    #[allow(clippy::disallowed_methods)]
    waku_core::net::Now {
        instant: std::time::Instant::now(),
        unix_nanos: 0,
    }
}
