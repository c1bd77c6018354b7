//! A light `WakuNode` (it serves only metadata and the filter pushes it receives) uses a full
//! `WakuNode`'s services through both drivers: it lightpushes and gets the ack, subscribes with
//! filter and gets a push, and queries the store. The full node never takes the light node for
//! a server. Runs on the simulated network and on TCP loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "tcp")]

use std::time::Duration;

use transports::memory::{LinkConfig, Sim, SimConfig};
use transports::tcp::{self, DriverEvent, NodeKey, StaticPeer, TcpConfig, TcpNode};
use waku_core::lightpush::LightPushClientEvent;
use waku_core::message::{MessageHash, WakuMessage};
use waku_core::net::{Machine, Now, Protocol};
use waku_core::node::{MessageSource, NodeEvent, Published, WakuNode, WakuNodeConfig};
use waku_core::roles::Capabilities;
use waku_core::store::{QueryLimits, StoreClientEvent, StoreQuery};
use waku_core::topic::{ContentTopic, PubsubTopic};

const CLUSTER: u16 = 16;
const SHARD: u16 = 32;
const WAIT: Duration = Duration::from_secs(20);

fn shard() -> PubsubTopic {
    PubsubTopic::static_shard(CLUSTER, SHARD).unwrap()
}

fn chat() -> ContentTopic {
    ContentTopic::new("/waku/1/0x5a6b7c8d/rfc26").unwrap()
}

fn node(caps: Capabilities, seed: u8, now: Now) -> WakuNode {
    WakuNode::new(
        WakuNodeConfig::new(caps, CLUSTER, vec![SHARD]),
        None,
        [seed; 32],
        now,
    )
    .unwrap()
}

fn msg(text: &str, now: Now) -> WakuMessage {
    WakuMessage::new(chat(), text.as_bytes().to_vec()).with_timestamp(now.unix_nanos)
}

#[test]
fn light_node_lists_only_what_it_serves() {
    let now = clock_now();
    let light = node(Capabilities::LIGHT, 1, now).protocols();
    assert!(!light.contains(&Protocol::StoreQuery));
    assert!(!light.contains(&Protocol::LightPush));
    assert!(!light.contains(&Protocol::FilterSubscribe));
    assert!(light.contains(&Protocol::FilterPush));
    let full = node(Capabilities::FULL, 2, now).protocols();
    for p in [
        Protocol::Relay,
        Protocol::StoreQuery,
        Protocol::LightPush,
        Protocol::FilterSubscribe,
    ] {
        assert!(full.contains(&p), "{p}");
    }
}

#[test]
fn light_node_pushes_subscribes_and_queries_on_the_simulated_network() {
    let seed = 11;
    println!("seed {seed}");
    let mut sim = Sim::new(SimConfig {
        seed,
        default_link: LinkConfig::new(Duration::from_millis(40))
            .with_jitter(Duration::from_millis(10)),
        ..SimConfig::default()
    })
    .unwrap();
    let full = sim
        .add_node(|now| node(Capabilities::FULL, 1, now))
        .unwrap();
    let light = sim
        .add_node(|now| node(Capabilities::LIGHT, 2, now))
        .unwrap();
    sim.connect(full, light).unwrap();
    // The full node does not count the light node as a store (or any other) server.
    let light_seen = sim.node(full).unwrap().peers().next().unwrap().1.to_vec();
    assert!(
        !light_seen.contains(&Protocol::StoreQuery),
        "{light_seen:?}"
    );
    sim.with_node(light, |m, now| m.subscribe(now, shard(), vec![chat()]))
        .unwrap()
        .unwrap();
    sim.run_for(Duration::from_secs(2)).unwrap();

    // Lightpush: the ack comes back.
    let published = sim
        .with_node(light, |m, now| {
            m.publish(now, Some(shard()), msg("pushed", now))
        })
        .unwrap()
        .unwrap();
    let Published::LightPushed { hash, .. } = published else {
        panic!("{published:?}")
    };
    sim.run_for(Duration::from_secs(2)).unwrap();
    let events: Vec<NodeEvent> = sim
        .take_events(light)
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, NodeEvent::LightPush(LightPushClientEvent::Pushed { .. }))),
        "{events:?}"
    );

    // Filter: a message the full node publishes is pushed to the light node.
    let from_full = sim
        .with_node(full, |m, now| {
            m.publish(now, Some(shard()), msg("for the phone", now))
        })
        .unwrap()
        .unwrap();
    let Published::Relayed { hash: pushed, .. } = from_full else {
        panic!("{from_full:?}")
    };
    sim.run_for(Duration::from_secs(2)).unwrap();
    let events: Vec<NodeEvent> = sim
        .take_events(light)
        .into_iter()
        .map(|r| r.event)
        .collect();
    let to_full = sim.peer_id(light, full).unwrap();
    assert!(
        events.iter().any(|e| matches!(
            e,
            NodeEvent::Message { hash, source: MessageSource::Filter(p), .. } if *hash == pushed && *p == to_full
        )),
        "{events:?}"
    );

    // Store: both messages are in the full node's archive.
    sim.with_node(light, |m, now| {
        m.query_store(
            now,
            None,
            StoreQuery::topics(shard(), [chat()]).forward(),
            QueryLimits::default(),
        )
    })
    .unwrap()
    .unwrap();
    sim.run_for(Duration::from_secs(2)).unwrap();
    let events: Vec<NodeEvent> = sim
        .take_events(light)
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert_eq!(stored(&events), vec![hash, pushed]);
    let s = sim.stats();
    assert_eq!(s.dropped_unsupported, 0, "{s:?}");
}

/// The hashes of every store page, and checks the query finished cleanly.
fn stored(events: &[NodeEvent]) -> Vec<MessageHash> {
    let mut got = Vec::new();
    let mut finished = false;
    for e in events {
        match e {
            NodeEvent::Store(StoreClientEvent::Page {
                entries, rejected, ..
            }) => {
                assert_eq!(*rejected, 0);
                got.extend(entries.iter().map(|e| e.hash));
            }
            NodeEvent::Store(StoreClientEvent::Finished { result, .. }) => {
                assert_eq!(result, &Ok(()));
                finished = true;
            }
            _ => {}
        }
    }
    assert!(finished, "{events:?}");
    got
}

async fn wait_for<T>(
    node: &mut TcpNode<WakuNode>,
    mut f: impl FnMut(DriverEvent<NodeEvent>) -> Option<T>,
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

#[allow(clippy::disallowed_methods)] // a TCP test runs on the real clock, as the driver does
fn clock_now() -> Now {
    Now {
        instant: std::time::Instant::now(),
        unix_nanos: i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        )
        .unwrap(),
    }
}

#[tokio::test]
async fn light_node_pushes_subscribes_and_queries_over_tcp() {
    let mut full_cfg = TcpConfig::new(NodeKey::from_bytes([41; 32]), [141; 32]);
    full_cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    let mut full = tcp::start(full_cfg, node(Capabilities::FULL, 1, clock_now()))
        .await
        .unwrap();
    let mut light_cfg = TcpConfig::new(NodeKey::from_bytes([42; 32]), [142; 32]);
    light_cfg.static_peers.push(StaticPeer {
        addr: full.local_addr().unwrap(),
        key: Some(full.public_key()),
    });
    let mut light = tcp::start(light_cfg, node(Capabilities::LIGHT, 2, clock_now()))
        .await
        .unwrap();
    let at_light = wait_for(&mut light, |e| match e {
        DriverEvent::Connected(info) => Some(info),
        _ => None,
    })
    .await;
    assert!(at_light.protocols.contains(&Protocol::StoreQuery));
    let at_full = wait_for(&mut full, |e| match e {
        DriverEvent::Connected(info) => Some(info),
        _ => None,
    })
    .await;
    assert!(
        !at_full.protocols.contains(&Protocol::StoreQuery),
        "{:?}",
        at_full.protocols
    );

    light
        .handle()
        .call(|m: &mut WakuNode, now| m.subscribe(now, shard(), vec![chat()]))
        .await
        .unwrap()
        .unwrap();
    // Lightpush and its ack.
    let published = light
        .handle()
        .call(|m: &mut WakuNode, now| m.publish(now, Some(shard()), msg("pushed", now)))
        .await
        .unwrap()
        .unwrap();
    let Published::LightPushed { hash, push, .. } = published else {
        panic!("{published:?}")
    };
    let acked = wait_for(&mut light, |e| match e {
        DriverEvent::Machine(NodeEvent::LightPush(LightPushClientEvent::Pushed { id, .. })) => {
            Some(id)
        }
        DriverEvent::Machine(NodeEvent::LightPush(LightPushClientEvent::Failed {
            error, ..
        })) => panic!("{error:?}"),
        _ => None,
    })
    .await;
    assert_eq!(acked, push);

    // A filter push, once the subscription is in place (the subscribe races the publish, so
    // publish until one arrives).
    let mut pushed = Vec::new();
    let got = tokio::time::timeout(WAIT, async {
        loop {
            let h = full
                .handle()
                .call(|m: &mut WakuNode, now| m.publish(now, Some(shard()), msg("for the phone", now)))
                .await
                .unwrap()
                .unwrap();
            let Published::Relayed { hash, .. } = h else {
                panic!("{h:?}")
            };
            pushed.push(hash);
            let deadline = tokio::time::sleep(Duration::from_millis(300));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => break,
                    e = light.next_event() => {
                        if let Some(DriverEvent::Machine(NodeEvent::Message { hash, source: MessageSource::Filter(_), .. })) = e {
                            return hash;
                        }
                    }
                }
            }
        }
    })
    .await
    .expect("no filter push arrived");
    assert!(pushed.contains(&got));

    // The store query finds the lightpushed message in the full node's archive.
    light
        .handle()
        .call(move |m: &mut WakuNode, now| {
            m.query_store(
                now,
                None,
                StoreQuery::hashes([hash]),
                QueryLimits::default(),
            )
        })
        .await
        .unwrap()
        .unwrap();
    let mut events = Vec::new();
    wait_for(&mut light, |e| match e {
        DriverEvent::Machine(e @ NodeEvent::Store(StoreClientEvent::Finished { .. })) => {
            events.push(e);
            Some(())
        }
        DriverEvent::Machine(e @ NodeEvent::Store(_)) => {
            events.push(e);
            None
        }
        _ => None,
    })
    .await;
    assert_eq!(stored(&events), vec![hash]);
    let stats = light.handle().stats().await.unwrap();
    assert_eq!(stats.dropped_refused, 0, "{stats:?}");
    light.shutdown().await.unwrap();
    full.shutdown().await.unwrap();
}
