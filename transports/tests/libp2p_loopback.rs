//! Two status-rs `WakuNode`s over the libp2p driver on loopback (TCP, and WebSocket): identify
//! tells each what the other serves, a relayed message arrives, and a store query pages through
//! what the other archived; shutting one down tells the other. A static peer that restarts is
//! redialled and the machine told again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    missing_docs
)]

mod libp2p_rig;

use libp2p_rig::{WAIT, full_node, topic, wait_for};
use std::time::{Duration, Instant};

use transports::libp2p::{self as lp, DriverEvent, Keypair, Libp2pConfig, Libp2pNode};
use waku_core::message::WakuMessage;
use waku_core::net::Protocol;
use waku_core::node::{MessageSource, NodeEvent, WakuNode};
use waku_core::store::{QueryLimits, StoreClientEvent, StoreQuery};
use waku_core::topic::ContentTopic;

fn content() -> ContentTopic {
    libp2p_rig::content("loopback")
}

async fn start(seed: u8, listen: Option<&str>) -> Libp2pNode<WakuNode> {
    let mut config = Libp2pConfig::new(Keypair::generate_ed25519());
    if let Some(l) = listen {
        config.listen.push(l.parse().unwrap());
    }
    lp::start(config, full_node(seed)).await.unwrap()
}

async fn relay_and_store(listen: &str) {
    let mut a = start(1, Some(listen)).await;
    let mut b = start(2, None).await;
    let addr = a.listen_addrs()[0].clone();
    println!("a listens on {addr}");
    b.handle().dial(addr).await.unwrap();

    // Identify tells each side what the other serves: a full node serves all of these.
    let served = [
        Protocol::Relay,
        Protocol::StoreQuery,
        Protocol::FilterSubscribe,
        Protocol::LightPush,
        Protocol::Metadata,
    ];
    // b dialled a: b's machine heard `handle_dialed`, a's `handle_connected`.
    for (node, dialled) in [(&mut a, false), (&mut b, true)] {
        let info = wait_for(node, "connected", |ev| match ev {
            DriverEvent::Connected(info) => Some(info),
            _ => None,
        })
        .await;
        for p in served {
            assert!(info.protocols.contains(&p), "{p} missing in {info:?}");
        }
        assert!(info.agent_version.starts_with("status-rs/"));
        assert_eq!(info.outbound, dialled, "{info:?}");
    }

    // Wait for the relay mesh (GRAFT over the libp2p stream) on both sides.
    let t = topic().to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        let t1 = t.clone();
        let t2 = t.clone();
        let ma = a
            .handle()
            .call(move |n, _| n.relay().unwrap().mesh_peers(&t1).len())
            .await
            .unwrap();
        let mb = b
            .handle()
            .call(move |n, _| n.relay().unwrap().mesh_peers(&t2).len())
            .await
            .unwrap();
        if ma == 1 && mb == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no mesh: a={ma} b={mb}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // a publishes three messages; b receives them over relay.
    b.handle()
        .call(|n, now| n.subscribe(now, topic(), vec![content()]).unwrap())
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..3 {
        let text = format!("hello over libp2p {i}");
        let hash = a
            .handle()
            .call(move |n, now| {
                let m =
                    WakuMessage::new(content(), text.into_bytes()).with_timestamp(now.unix_nanos);
                match n.publish(now, Some(topic()), m).unwrap() {
                    waku_core::node::Published::Relayed { hash, peers } => {
                        assert_eq!(peers, 1);
                        hash
                    }
                    other => panic!("{other:?}"),
                }
            })
            .await
            .unwrap();
        sent.push(hash);
        // Distinct timestamps, so the store's time order is the publish order.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let (hash, payload) = wait_for(&mut b, "relayed message", |ev| match ev {
            DriverEvent::Machine(NodeEvent::Message {
                hash,
                message,
                source: MessageSource::Relay(_),
                pubsub_topic,
                ..
            }) => {
                assert_eq!(pubsub_topic, topic());
                assert_eq!(message.content_topic, content());
                Some((hash, message.payload))
            }
            _ => None,
        })
        .await;
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            format!("hello over libp2p {}", got.len())
        );
        got.push(hash);
    }
    assert_eq!(got, sent);

    // b queries a's store forward in pages of 2 (request/response streams): all three, in
    // order.
    let qid = b
        .handle()
        .call(|n, now| {
            let peer = n
                .peers()
                .find(|(_, ps)| ps.contains(&Protocol::StoreQuery))
                .map(|(p, _)| p)
                .unwrap();
            n.query_store(
                now,
                Some(peer),
                StoreQuery::topics(topic(), [content()])
                    .page_size(2)
                    .forward(),
                QueryLimits::default(),
            )
            .unwrap()
        })
        .await
        .unwrap();
    let mut pages = 0;
    let mut stored = Vec::new();
    loop {
        let ev = wait_for(&mut b, "store event", |ev| match ev {
            DriverEvent::Machine(NodeEvent::Store(e)) => Some(e),
            _ => None,
        })
        .await;
        match ev {
            StoreClientEvent::Page {
                query,
                entries,
                rejected,
                ..
            } => {
                assert_eq!(query, qid);
                assert_eq!(rejected, 0);
                assert!(entries.len() <= 2);
                pages += 1;
                stored.extend(entries.into_iter().map(|e| e.hash));
            }
            StoreClientEvent::Finished {
                query,
                result,
                entries,
                ..
            } => {
                assert_eq!(query, qid);
                result.unwrap();
                assert_eq!(entries, 3);
                break;
            }
        }
    }
    assert!(pages >= 2, "{pages} pages");
    // b archived what it relayed too; a's archive holds exactly the three, oldest first.
    assert_eq!(stored, sent);

    let stats = b.handle().stats().await.unwrap();
    println!("b stats: {stats:?}");
    assert_eq!(stats.bad_frames, 0);
    assert_eq!(stats.dropped_refused, 0);

    // Shutting down a tells b the peer is gone.
    let a_machine = a.shutdown().await.unwrap();
    assert!(a_machine.peers().next().is_none());
    wait_for(&mut b, "disconnected", |ev| match ev {
        DriverEvent::Disconnected { .. } => Some(()),
        _ => None,
    })
    .await;
    let b_machine = b.shutdown().await.unwrap();
    assert!(b_machine.peers().next().is_none());
}

#[tokio::test]
async fn relay_and_store_over_tcp() {
    relay_and_store("/ip4/127.0.0.1/tcp/0").await;
}

#[tokio::test]
async fn relay_and_store_over_websocket() {
    relay_and_store("/ip4/127.0.0.1/tcp/0/ws").await;
}

/// A static peer ([`Libp2pConfig::dial`]) that goes down is redialled with backoff, and once it
/// is back on the same port and key the machine is told of it again.
async fn static_peer_comes_back(with_peer_id: bool) {
    let key_a = Keypair::generate_ed25519();
    let mut config = Libp2pConfig::new(key_a.clone());
    config.listen.push("/ip4/127.0.0.1/tcp/0".parse().unwrap());
    let a = lp::start(config, full_node(1)).await.unwrap();
    let a_id = a.peer_id();
    let full = a.listen_addrs()[0].clone();
    // The listen address without `/p2p/…`.
    let mut bare = full.clone();
    bare.pop();
    let static_addr = if with_peer_id { full } else { bare.clone() };

    let mut config = Libp2pConfig::new(Keypair::generate_ed25519());
    config.dial.push(static_addr.clone());
    config.backoff_initial = Duration::from_millis(100);
    config.backoff_max = Duration::from_millis(400);
    let mut b = lp::start(config, full_node(2)).await.unwrap();
    println!("b keeps {static_addr} connected");
    let first = wait_for(&mut b, "connected", |ev| match ev {
        DriverEvent::Connected(info) => Some(info),
        _ => None,
    })
    .await;
    assert_eq!(first.libp2p_peer, a_id);

    // a goes away; b is told, and keeps dialling with growing delays.
    drop(a.shutdown().await.unwrap());
    let gone = wait_for(&mut b, "disconnected", |ev| match ev {
        DriverEvent::Disconnected { peer, .. } => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(gone, first.peer);
    let down = Duration::from_millis(2000);
    let end = tokio::time::Instant::now() + down;
    let mut failures = 0;
    while let Ok(ev) = tokio::time::timeout_at(end, b.next_event()).await {
        match ev.expect("driver stopped") {
            DriverEvent::DialFailed { .. } => failures += 1,
            DriverEvent::Connected(info) => panic!("connected to a stopped node: {info:?}"),
            _ => {}
        }
    }
    let stats = b.handle().stats().await.unwrap();
    println!(
        "{failures} failed redials in {down:?} down (100 ms doubling to 400 ms); {} static dials",
        stats.static_dials
    );
    // Redials at about 0.1, 0.2, 0.4, 0.8, 1.2, 1.6 s; without backoff it would be 20.
    assert!(failures >= 2, "{failures} redials");
    assert!(failures <= 8, "{failures} redials: no backoff");

    // a comes back on the same port with the same key: b reconnects by itself.
    let mut config = Libp2pConfig::new(key_a);
    config.listen.push(bare);
    let t0 = Instant::now();
    let mut a = lp::start(config, full_node(1)).await.unwrap();
    let again = wait_for(&mut b, "reconnected", |ev| match ev {
        DriverEvent::Connected(info) => Some(info),
        _ => None,
    })
    .await;
    println!("reconnected {:?} after the restart", t0.elapsed());
    assert_eq!(again.libp2p_peer, a_id);
    assert_ne!(
        again.peer, first.peer,
        "a reconnected peer gets a fresh handle"
    );
    assert!(again.protocols.contains(&Protocol::Relay));
    let known: Vec<_> = b
        .handle()
        .call(|n, _| n.peers().map(|(p, _)| p).collect())
        .await
        .unwrap();
    assert_eq!(known, vec![again.peer], "the machine was told again");
    wait_for(&mut a, "a sees b", |ev| match ev {
        DriverEvent::Connected(_) => Some(()),
        _ => None,
    })
    .await;
    let stats = b.handle().stats().await.unwrap();
    assert!(stats.static_dials >= failures as u64 + 2, "{stats:?}");
    let _ = a.shutdown().await;
    let _ = b.shutdown().await;
}

#[tokio::test]
async fn static_peer_with_peer_id_is_redialled() {
    static_peer_comes_back(true).await;
}

#[tokio::test]
async fn static_peer_without_peer_id_is_redialled() {
    static_peer_comes_back(false).await;
}
