//! status-rs relay against an independent gossipsub: rust-libp2p's `libp2p-gossipsub`,
//! configured like nwaku (protocol `/vac/waku/relay/2.0.0`, anonymous / StrictNoSign, message id
//! `sha256(data)`), as a peer of a status-rs full node over the libp2p driver.
//!
//! - both sides GRAFT each other (each is in the other's mesh);
//! - a message published by status-rs arrives at rust-libp2p with the same bytes and id, and one
//!   published by rust-libp2p arrives at status-rs with the expected Waku hash;
//! - rust-libp2p rejects a message status-rs sends that carries `from` and `seqno` (the score it
//!   gives the status-rs peer drops below zero, P4), while the same frame without them arrives;
//! - status-rs rejects a message rust-libp2p publishes whose data is not a Waku message (counted
//!   as malformed, never delivered).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    missing_docs
)]

mod libp2p_rig;

use libp2p_rig::{CLUSTER, SHARD, WAIT, now, topic};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use transports::libp2p::upstream::futures::StreamExt;
use transports::libp2p::upstream::gossipsub::{
    self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId, PeerScoreParams,
    PeerScoreThresholds, TopicScoreParams, ValidationMode,
};
use transports::libp2p::upstream::swarm::{NetworkBehaviour, Swarm, SwarmEvent};
use transports::libp2p::upstream::{SwarmBuilder, identify, noise, tcp, yamux};
use transports::libp2p::{self as lp, DriverEvent, Keypair, Libp2pConfig, Libp2pNode};
use waku_core::message::WakuMessage;
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use waku_core::node::{NodeEvent, WakuNode, WakuNodeConfig};
use waku_core::roles::Capabilities;
use waku_core::topic::ContentTopic;

fn content() -> ContentTopic {
    libp2p_rig::content("gossipsub-interop")
}

/// A `WakuNode` with a side door: frames pushed into `inject` go out before the node's own, so
/// the test can send a gossipsub RPC the node itself would never produce.
struct Tap {
    node: WakuNode,
    inject: VecDeque<Transmit>,
}

impl Machine for Tap {
    type Event = NodeEvent;
    fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.node.handle_connected(now, peer, protocols);
    }
    fn handle_disconnected(&mut self, now: Now, peer: PeerId) {
        self.node.handle_disconnected(now, peer);
    }
    fn handle_frame(&mut self, now: Now, from: PeerId, p: Protocol, k: FrameKind, f: &[u8]) {
        self.node.handle_frame(now, from, p, k, f);
    }
    fn handle_timeout(&mut self, now: Now) {
        self.node.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.inject
            .pop_front()
            .or_else(|| self.node.poll_transmit())
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        self.node.poll_event()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }
    fn protocols(&self) -> Vec<Protocol> {
        self.node.protocols()
    }
}

/// Protobuf by hand (the test must not reuse status-rs's gossipsub encoder to build the frames
/// it checks rust-libp2p against).
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(tag: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint((tag << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `RPC { publish: [Message { from?, data, seqno?, topic }] }` (WIRE.md B.27).
fn publish_rpc(data: &[u8], topic: &str, signed_fields: bool) -> Vec<u8> {
    let mut msg = Vec::new();
    if signed_fields {
        field(
            1,
            b"\x00\x24\x08\x01\x12\x20not-a-real-peer-id-but-present!!",
            &mut msg,
        );
    }
    field(2, data, &mut msg);
    if signed_fields {
        field(3, &7u64.to_be_bytes(), &mut msg);
    }
    field(4, topic.as_bytes(), &mut msg);
    let mut rpc = Vec::new();
    field(2, &msg, &mut rpc);
    rpc
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "transports::libp2p::upstream::swarm::derive_prelude")]
struct Rust {
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
}

fn sha256_id(m: &gossipsub::Message) -> MessageId {
    MessageId::from(Sha256::digest(&m.data).to_vec())
}

fn rust_peer() -> Swarm<Rust> {
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .protocol_id("/vac/waku/relay/2.0.0", gossipsub::Version::V1_1)
                .validation_mode(ValidationMode::Anonymous)
                .message_id_fn(sha256_id)
                .validate_messages()
                .heartbeat_interval(Duration::from_millis(500))
                .build()
                .unwrap();
            let mut gs = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config).unwrap();
            // Score only invalid messages (P4), so a negative score means exactly that.
            let topic_params = TopicScoreParams {
                topic_weight: 1.0,
                time_in_mesh_weight: 0.0,
                first_message_deliveries_weight: 0.0,
                mesh_message_deliveries_weight: 0.0,
                mesh_failure_penalty_weight: 0.0,
                invalid_message_deliveries_weight: -10.0,
                invalid_message_deliveries_decay: 0.9,
                ..TopicScoreParams::default()
            };
            let mut topics = HashMap::new();
            topics.insert(IdentTopic::new(topic().to_string()).hash(), topic_params);
            let params = PeerScoreParams {
                topics,
                ip_colocation_factor_weight: 0.0,
                ..PeerScoreParams::default()
            };
            gs.with_peer_score(params, PeerScoreThresholds::default())
                .unwrap();
            gs.subscribe(&IdentTopic::new(topic().to_string())).unwrap();
            Rust {
                gossipsub: gs,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/ipfs/id/1.0.0".into(),
                    key.public(),
                )),
            }
        })
        .unwrap()
        .build()
}

/// Polls the rust-libp2p swarm until `f` returns something or the deadline passes, answering
/// validation for every message it hands over (accepting only valid Waku messages).
async fn rust_until<T>(
    swarm: &mut Swarm<Rust>,
    what: &str,
    mut f: impl FnMut(&mut Swarm<Rust>, Option<&gossipsub::Event>) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(t) = f(swarm, None) {
            return t;
        }
        let ev = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
        if let SwarmEvent::Behaviour(RustEvent::Gossipsub(ev)) = ev {
            if let gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } = &ev
            {
                let ok = WakuMessage::decode(&message.data).is_ok();
                let acceptance = if ok {
                    MessageAcceptance::Accept
                } else {
                    MessageAcceptance::Reject
                };
                swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(message_id, propagation_source, acceptance);
            }
            if let Some(t) = f(swarm, Some(&ev)) {
                return t;
            }
        }
    }
}

/// Runs the rust-libp2p swarm for `d` (answering validation) while the driver works.
async fn rust_for(swarm: &mut Swarm<Rust>, d: Duration) {
    let _ = tokio::time::timeout(d, rust_until(swarm, "nothing", |_, _| None::<()>)).await;
}

async fn node_event<T>(
    node: &mut Libp2pNode<Tap>,
    swarm: &mut Swarm<Rust>,
    what: &str,
    mut f: impl FnMut(DriverEvent<NodeEvent>) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        tokio::select! {
            ev = node.next_event() => {
                if let Some(t) = f(ev.expect("driver stopped")) {
                    return t;
                }
            }
            _ = swarm.select_next_some() => {}
            () = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}"),
        }
    }
}

#[tokio::test]
async fn status_rs_relay_and_rust_libp2p_gossipsub() {
    let mut config = Libp2pConfig::new(Keypair::generate_ed25519());
    config.listen.push("/ip4/127.0.0.1/tcp/0".parse().unwrap());
    let waku = WakuNodeConfig::new(Capabilities::FULL, CLUSTER, vec![SHARD]);
    let tap = Tap {
        node: WakuNode::new(waku, None, [9; 32], now()).unwrap(),
        inject: VecDeque::new(),
    };
    let mut node = lp::start(config, tap).await.unwrap();
    let handle = node.handle();
    let status_id = node.peer_id();
    handle
        .call(|t, now| t.node.subscribe(now, topic(), vec![content()]).unwrap())
        .await
        .unwrap();

    let mut rust = rust_peer();
    let rust_id = *rust.local_peer_id();
    rust.dial(node.listen_addrs()[0].clone()).unwrap();

    // status-rs learns from rust-libp2p's identify that it serves the relay protocol.
    let info = node_event(&mut node, &mut rust, "connected", |ev| match ev {
        DriverEvent::Connected(info) => Some(info),
        _ => None,
    })
    .await;
    assert_eq!(info.libp2p_peer, rust_id);
    assert_eq!(info.protocols, vec![Protocol::Relay]);
    let rust_handle = info.peer;

    // Both GRAFT: each ends up in the other's mesh.
    let t = topic().to_string();
    let gs_topic = IdentTopic::new(t.clone()).hash();
    let started = Instant::now();
    loop {
        rust_for(&mut rust, Duration::from_millis(200)).await;
        let t1 = t.clone();
        let ours = handle
            .call(move |m, _| m.node.relay().unwrap().mesh_peers(&t1))
            .await
            .unwrap();
        let theirs: Vec<_> = rust
            .behaviour()
            .gossipsub
            .mesh_peers(&gs_topic)
            .copied()
            .collect();
        if ours == vec![rust_handle] && theirs == vec![status_id] {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "no mesh: ours={ours:?} theirs={theirs:?}"
        );
    }
    println!("mesh formed both ways after {:?}", started.elapsed());

    // status-rs -> rust-libp2p.
    let out = WakuMessage::new(content(), b"from status-rs".to_vec());
    let data = handle
        .call(move |m, now| {
            let msg = out.with_timestamp(now.unix_nanos);
            m.node.publish(now, Some(topic()), msg.clone()).unwrap();
            msg.encode()
        })
        .await
        .unwrap();
    let expected_id = MessageId::from(Sha256::digest(&data).to_vec());
    let got = rust_until(&mut rust, "status-rs message", |_, ev| match ev {
        Some(gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        }) => Some((*propagation_source, message_id.clone(), message.clone())),
        _ => None,
    })
    .await;
    assert_eq!(got.0, status_id);
    assert_eq!(got.1, expected_id);
    assert_eq!(got.2.data, data);
    assert_eq!(got.2.topic, gs_topic);
    assert!(got.2.source.is_none() && got.2.sequence_number.is_none());
    let decoded = WakuMessage::decode(&got.2.data).unwrap();
    assert_eq!(decoded.payload, b"from status-rs");
    assert_eq!(decoded.content_topic, content());

    // rust-libp2p -> status-rs.
    let theirs =
        WakuMessage::new(content(), b"from rust-libp2p".to_vec()).with_timestamp(now().unix_nanos);
    let their_hash = theirs.hash(&topic());
    rust.behaviour_mut()
        .gossipsub
        .publish(IdentTopic::new(t.clone()), theirs.encode())
        .unwrap();
    let (hash, message) = node_event(&mut node, &mut rust, "rust-libp2p message", |ev| match ev {
        DriverEvent::Machine(NodeEvent::Message {
            hash,
            message,
            pubsub_topic,
            ..
        }) => {
            assert_eq!(pubsub_topic, topic());
            Some((hash, message))
        }
        _ => None,
    })
    .await;
    assert_eq!(hash, their_hash);
    assert_eq!(message.payload, b"from rust-libp2p");

    // An invalid message from rust-libp2p (data that is not a Waku message) is rejected.
    let before = handle
        .call(|m, _| m.node.relay().unwrap().stats().rejected_malformed)
        .await
        .unwrap();
    rust.behaviour_mut()
        .gossipsub
        .publish(
            IdentTopic::new(t.clone()),
            b"\xff\xff not a waku message".to_vec(),
        )
        .unwrap();
    let started = Instant::now();
    loop {
        rust_for(&mut rust, Duration::from_millis(100)).await;
        let after = handle
            .call(|m, _| m.node.relay().unwrap().stats().rejected_malformed)
            .await
            .unwrap();
        if after == before + 1 {
            break;
        }
        assert!(started.elapsed() < WAIT, "status-rs did not reject");
    }
    while let Some(ev) = node.try_next_event() {
        assert!(
            !matches!(ev, DriverEvent::Machine(NodeEvent::Message { .. })),
            "invalid message delivered: {ev:?}"
        );
    }

    // An invalid message from status-rs (carries `from` and `seqno`, which StrictNoSign
    // forbids) is rejected by rust-libp2p; the same message without them is accepted.
    let score_before = rust.behaviour().gossipsub.peer_score(&status_id).unwrap();
    assert!(score_before >= 0.0, "score before: {score_before}");
    let bad = WakuMessage::new(content(), b"signed fields".to_vec())
        .with_timestamp(now().unix_nanos)
        .encode();
    let good = WakuMessage::new(content(), b"no signed fields".to_vec())
        .with_timestamp(now().unix_nanos)
        .encode();
    let frames = [publish_rpc(&bad, &t, true), publish_rpc(&good, &t, false)];
    handle
        .call(move |m, _| {
            for bytes in frames {
                m.inject.push_back(Transmit {
                    to: rust_handle,
                    protocol: Protocol::Relay,
                    kind: FrameKind::Stream,
                    bytes,
                });
            }
        })
        .await
        .unwrap();
    let arrived = rust_until(&mut rust, "injected message", |_, ev| match ev {
        Some(gossipsub::Event::Message { message, .. }) => Some(message.data.clone()),
        _ => None,
    })
    .await;
    assert_eq!(arrived, good, "the message with signed fields got through");
    let score_after = rust.behaviour().gossipsub.peer_score(&status_id).unwrap();
    println!("rust-libp2p's score of status-rs: {score_before} -> {score_after}");
    assert!(score_after < 0.0, "score after: {score_after}");

    let stats = handle.stats().await.unwrap();
    println!("driver stats: {stats:?}");
    assert_eq!(stats.bad_frames, 0);
    node.shutdown().await.unwrap();
}
