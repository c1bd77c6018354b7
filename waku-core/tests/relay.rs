//! Relay scenarios on a virtual clock: two-party behaviour against a scripted peer, and
//! multi-party networks of 50 relays.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod relay_rig;

use std::collections::BTreeSet;
use std::time::Duration;

use prost::Message as _;
use proto::gossipsub::{
    ControlGraft, ControlIDontWant, ControlIHave, ControlIWant, ControlMessage, ControlPrune,
    Message as PubsubMessage, Rpc, rpc::SubOpts,
};
use relay_rig::{Net, WALL0, base_instant, message, topic};
use waku_core::net::{Now, PeerId, Protocol, Transmit};
use waku_core::relay::{
    MAX_BACKOFF_SECS, MessageId, PublishError, Relay, RelayConfig, RelayEvent, Validation,
};

// -------------------------------------------------------------------------------------------
// A router against scripted peers.

/// One router and a virtual clock; peers are scripted by the test.
struct Solo {
    relay: Relay,
    base: std::time::Instant,
    now: Duration,
}

impl Solo {
    fn new(config: RelayConfig) -> Solo {
        let base = base_instant();
        Solo {
            relay: Relay::new(config, [3; 32], base),
            base,
            now: Duration::ZERO,
        }
    }

    fn clock(&self) -> Now {
        Now {
            instant: self.base + self.now,
            unix_nanos: WALL0 + self.now.as_nanos() as i64,
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.relay.poll_timeout() {
            let at = t.saturating_duration_since(self.base);
            if at > end {
                break;
            }
            self.now = at;
            self.relay.handle_timeout(self.clock());
        }
        self.now = end;
    }

    fn connect(&mut self, peer: u64) {
        self.relay
            .handle_connected(self.clock(), PeerId(peer), &[Protocol::Relay]);
    }

    fn frame(&mut self, from: u64, rpc: &Rpc) {
        self.relay
            .handle_frame(self.clock(), PeerId(from), &rpc.encode_to_vec());
    }

    /// Every queued RPC, decoded, with its recipient.
    fn sent(&mut self) -> Vec<(PeerId, Rpc)> {
        let max = self.relay.config().max_rpc_size;
        let mut out = Vec::new();
        while let Some(Transmit { to, bytes, .. }) = self.relay.poll_transmit() {
            assert!(bytes.len() <= max);
            out.push((to, Rpc::decode(bytes.as_slice()).unwrap()));
        }
        out
    }

    fn events(&mut self) -> Vec<RelayEvent> {
        std::iter::from_fn(|| self.relay.poll_event()).collect()
    }

    /// A subscribed router with peers 1..=n subscribed and grafted.
    fn meshed(config: RelayConfig, n: u64) -> Solo {
        let mut s = Solo::new(config);
        s.relay.subscribe(s.clock(), &topic()).unwrap();
        for p in 1..=n {
            s.connect(p);
            s.frame(p, &subscribe_rpc(true));
            s.frame(p, &graft_rpc());
        }
        s.sent();
        s
    }
}

fn subscribe_rpc(subscribe: bool) -> Rpc {
    Rpc {
        subscriptions: vec![SubOpts {
            subscribe: Some(subscribe),
            topic_id: Some(topic().as_str().to_owned()),
        }],
        ..Rpc::default()
    }
}

fn control_rpc(c: ControlMessage) -> Rpc {
    Rpc {
        control: Some(c),
        ..Rpc::default()
    }
}

fn graft_rpc() -> Rpc {
    control_rpc(ControlMessage {
        graft: vec![ControlGraft {
            topic_id: Some(topic().as_str().to_owned()),
        }],
        ..ControlMessage::default()
    })
}

fn publish_rpc(data: Vec<u8>) -> Rpc {
    Rpc {
        publish: vec![PubsubMessage {
            data: Some(data),
            topic: Some(topic().as_str().to_owned()),
            ..PubsubMessage::default()
        }],
        ..Rpc::default()
    }
}

fn messages_to(sent: &[(PeerId, Rpc)], peer: u64) -> usize {
    sent.iter()
        .filter(|(to, _)| *to == PeerId(peer))
        .map(|(_, r)| r.publish.len())
        .sum()
}

fn fresh(s: &Solo, n: u64) -> Vec<u8> {
    message(n, s.clock().unix_nanos, 1024).encode()
}

#[test]
fn forwards_to_mesh_except_source_and_delivers_once() {
    let mut s = Solo::meshed(RelayConfig::default(), 4);
    assert_eq!(s.relay.mesh_peers(topic().as_str()).len(), 4);
    let data = fresh(&s, 1);
    s.frame(1, &publish_rpc(data.clone()));
    let sent = s.sent();
    assert_eq!(messages_to(&sent, 1), 0, "not back to the source");
    for p in 2..=4 {
        assert_eq!(messages_to(&sent, p), 1, "forwarded to mesh peer {p}");
    }
    // IDONTWANT went to the other mesh peers (1 KiB is above the threshold).
    let idw: usize = sent
        .iter()
        .filter_map(|(_, r)| r.control.as_ref())
        .map(|c| c.idontwant.len())
        .sum();
    assert_eq!(idw, 3);
    let events = s.events();
    assert_eq!(events.len(), 1);
    match &events[0] {
        RelayEvent::Message {
            topic: t,
            id,
            source,
            message,
        } => {
            assert_eq!(t, &topic());
            assert_eq!(*id, MessageId::of(&data));
            assert_eq!(*source, PeerId(1));
            assert_eq!(message.payload.len(), 1024);
        }
        other => panic!("unexpected {other:?}"),
    }
    // The same message again, from another peer: a duplicate, nothing happens.
    s.frame(2, &publish_rpc(data));
    assert_eq!(messages_to(&s.sent(), 1), 0);
    assert!(s.events().is_empty());
    assert_eq!(s.relay.stats().messages_duplicate, 1);
    assert!(s.relay.peer_score(PeerId(1), s.clock().instant).unwrap() >= 1.0);
}

#[test]
fn stale_message_is_not_forwarded() {
    let mut s = Solo::meshed(RelayConfig::default(), 3);
    let stale = message(1, s.clock().unix_nanos - 30_000_000_000, 1024).encode();
    s.frame(1, &publish_rpc(stale));
    let sent = s.sent();
    assert_eq!(
        (1..=3).map(|p| messages_to(&sent, p)).sum::<usize>(),
        0,
        "a 30 s old message goes nowhere"
    );
    assert!(s.events().is_empty());
    assert_eq!(s.relay.stats().rejected_timestamp, 1);
    assert!(s.relay.peer_score(PeerId(1), s.clock().instant).unwrap() < 0.0);
    // A message from 30 s in the future, and one without a timestamp, are rejected too.
    let future = message(2, s.clock().unix_nanos + 30_000_000_000, 64).encode();
    let mut untimed = message(3, 0, 64);
    untimed.timestamp = None;
    s.frame(2, &publish_rpc(future));
    s.frame(2, &publish_rpc(untimed.encode()));
    assert_eq!(s.relay.stats().rejected_timestamp, 3);
    // 19 s old is inside the window.
    s.frame(
        3,
        &publish_rpc(message(4, s.clock().unix_nanos - 19_000_000_000, 64).encode()),
    );
    assert_eq!(s.relay.stats().messages_accepted, 1);
}

#[test]
fn strict_no_sign_rejects_signed_messages() {
    let mut s = Solo::meshed(RelayConfig::default(), 2);
    let data = fresh(&s, 1);
    for field in 0..4 {
        let mut rpc = publish_rpc(data.clone());
        let m = &mut rpc.publish[0];
        match field {
            0 => m.from = Some(vec![1]),
            1 => m.seqno = Some(Vec::new()),
            2 => m.signature = Some(vec![3]),
            _ => m.key = Some(vec![4]),
        }
        s.frame(1, &rpc);
    }
    assert_eq!(s.relay.stats().rejected_signed, 4);
    assert_eq!(messages_to(&s.sent(), 2), 0);
    assert!(s.events().is_empty());
    // The same data without the fields is a new, valid message (rejections are not "seen").
    s.frame(1, &publish_rpc(data));
    assert_eq!(messages_to(&s.sent(), 2), 1);
    assert_eq!(s.events().len(), 1);
}

#[test]
fn flooding_invalid_messages_gets_a_peer_graylisted_and_ignored() {
    let mut s = Solo::meshed(RelayConfig::default(), 3);
    let mut n = 0;
    while !s.relay.is_graylisted(PeerId(1), s.clock().instant) {
        n += 1;
        assert!(n < 100, "never graylisted");
        // Not a Waku message: invalid content topic (empty).
        s.frame(1, &publish_rpc(vec![0x0a, 0x01, n as u8]));
    }
    println!("graylisted after {n} invalid messages");
    assert!(n <= 11, "graylisted after {n}");
    let events = s.events();
    assert!(events.contains(&RelayEvent::DisconnectPeer { peer: PeerId(1) }));
    assert!(events.iter().any(|e| matches!(
        e,
        RelayEvent::PeerGraylisted { peer: PeerId(1), score } if *score < -10_000.0
    )));
    s.sent();
    // From now on its traffic is not processed: a valid message is neither delivered nor
    // forwarded, and its GRAFT/PRUNE are ignored.
    let processed = s.relay.stats().messages_received;
    let ignored = s.relay.stats().frames_graylisted;
    s.frame(1, &publish_rpc(fresh(&s, 1000)));
    s.frame(
        1,
        &control_rpc(ControlMessage {
            prune: vec![ControlPrune {
                topic_id: Some(topic().as_str().to_owned()),
                peers: Vec::new(),
                backoff: Some(60),
            }],
            ..ControlMessage::default()
        }),
    );
    assert_eq!(s.relay.stats().messages_received, processed);
    assert_eq!(s.relay.stats().frames_graylisted, ignored + 2);
    assert!(s.events().is_empty());
    assert_eq!(
        s.sent().iter().map(|(_, r)| r.publish.len()).sum::<usize>(),
        0
    );
    // Other peers are unaffected; the heartbeat prunes the negative peer from the mesh.
    s.frame(2, &publish_rpc(fresh(&s, 1001)));
    assert_eq!(s.events().len(), 1);
    s.advance(Duration::from_secs(1));
    assert!(!s.relay.mesh_peers(topic().as_str()).contains(&PeerId(1)));
}

#[test]
fn iwant_is_answered_from_the_cache_and_limited() {
    let mut s = Solo::meshed(RelayConfig::default(), 2);
    let data = fresh(&s, 1);
    s.frame(1, &publish_rpc(data.clone()));
    s.sent();
    // Peer 3 is connected but not subscribed: asks by IWANT.
    s.connect(3);
    s.sent();
    let id = MessageId::of(&data);
    let iwant = control_rpc(ControlMessage {
        iwant: vec![ControlIWant {
            message_ids: vec![id.0.to_vec(), vec![9; 32], vec![1, 2, 3]],
        }],
        ..ControlMessage::default()
    });
    for round in 0..5 {
        s.frame(3, &iwant);
        let got = messages_to(&s.sent(), 3);
        // Gossip retransmission: at most 3 answers per peer and message.
        assert_eq!(got, usize::from(round < 3), "round {round}");
    }
    assert_eq!(s.relay.stats().iwant_ids_served, 3);
}

#[test]
fn ihave_triggers_iwant_and_a_broken_promise_costs_score() {
    let mut s = Solo::meshed(RelayConfig::default(), 1);
    let ids: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 32]).collect();
    let ihave = control_rpc(ControlMessage {
        ihave: vec![ControlIHave {
            topic_id: Some(topic().as_str().to_owned()),
            message_ids: ids.clone(),
        }],
        ..ControlMessage::default()
    });
    s.frame(1, &ihave);
    let sent = s.sent();
    let asked: Vec<Vec<u8>> = sent
        .iter()
        .filter_map(|(_, r)| r.control.as_ref())
        .flat_map(|c| c.iwant.iter().flat_map(|w| w.message_ids.clone()))
        .collect();
    assert_eq!(asked, ids);
    // The same ids again within the heartbeat are not asked twice.
    s.frame(1, &ihave);
    assert!(s.sent().iter().all(|(_, r)| r.control.is_none()));
    // The peer never delivers: after the follow-up time it is penalised once (one promise per
    // IWANT).
    s.advance(Duration::from_secs(5));
    assert_eq!(s.relay.stats().promises_broken, 1);
    let score = s.relay.peer_score(PeerId(1), s.clock().instant).unwrap();
    assert!(score < -9.0, "score {score}");
}

#[test]
fn ihave_over_budget_and_from_low_scores_is_ignored() {
    let mut s = Solo::meshed(RelayConfig::default(), 1);
    let topic_id = Some(topic().as_str().to_owned());
    // 12 IHAVE items of one id each: only 10 are considered (IHAVE budget).
    let ihave = control_rpc(ControlMessage {
        ihave: (0..12u8)
            .map(|i| ControlIHave {
                topic_id: topic_id.clone(),
                message_ids: vec![vec![i; 32]],
            })
            .collect(),
        ..ControlMessage::default()
    });
    s.frame(1, &ihave);
    s.sent();
    assert_eq!(s.relay.stats().iwant_ids_sent, 10);
    // 6000 ids next heartbeat: at most 5000 asked.
    s.advance(Duration::from_secs(1));
    let many = control_rpc(ControlMessage {
        ihave: vec![ControlIHave {
            topic_id: topic_id.clone(),
            message_ids: (0..6000u32)
                .map(|i| {
                    let mut id = vec![0xee; 32];
                    id[..4].copy_from_slice(&i.to_be_bytes());
                    id
                })
                .collect(),
        }],
        ..ControlMessage::default()
    });
    s.frame(1, &many);
    let sent = s.sent();
    assert_eq!(s.relay.stats().iwant_ids_sent, 10 + 5000);
    for (_, rpc) in &sent {
        assert!(rpc.encoded_len() <= s.relay.config().max_rpc_size);
    }
}

#[test]
fn graft_during_backoff_is_refused_and_penalised() {
    let mut s = Solo::meshed(RelayConfig::default(), 1);
    let prune = control_rpc(ControlMessage {
        prune: vec![ControlPrune {
            topic_id: Some(topic().as_str().to_owned()),
            peers: Vec::new(),
            backoff: Some(60),
        }],
        ..ControlMessage::default()
    });
    s.frame(1, &prune);
    assert!(s.relay.mesh_peers(topic().as_str()).is_empty());
    // Re-graft right away: refused with a PRUNE, double penalty (within the flood threshold).
    s.frame(1, &graft_rpc());
    let sent = s.sent();
    let prunes: Vec<&ControlPrune> = sent
        .iter()
        .filter_map(|(_, r)| r.control.as_ref())
        .flat_map(|c| c.prune.iter())
        .collect();
    assert_eq!(prunes.len(), 1);
    assert_eq!(prunes[0].backoff, Some(60));
    assert!(prunes[0].peers.is_empty(), "no peer exchange");
    assert_eq!(s.relay.stats().grafts_refused, 1);
    let score = s.relay.peer_score(PeerId(1), s.clock().instant).unwrap();
    assert!((score - -40.0).abs() < 1e-9, "score {score}");
    assert!(s.relay.mesh_peers(topic().as_str()).is_empty());
    // The heartbeat does not re-graft it during the backoff either.
    s.advance(Duration::from_secs(30));
    assert!(s.relay.mesh_peers(topic().as_str()).is_empty());
}

#[test]
fn hostile_backoff_is_capped() {
    let mut s = Solo::meshed(RelayConfig::default(), 1);
    s.frame(
        1,
        &control_rpc(ControlMessage {
            prune: vec![ControlPrune {
                topic_id: Some(topic().as_str().to_owned()),
                peers: Vec::new(),
                backoff: Some(u64::MAX),
            }],
            ..ControlMessage::default()
        }),
    );
    s.advance(Duration::from_secs(MAX_BACKOFF_SECS - 10));
    assert!(s.relay.mesh_peers(topic().as_str()).is_empty());
    s.advance(Duration::from_secs(20));
    assert_eq!(s.relay.mesh_peers(topic().as_str()), vec![PeerId(1)]);
}

#[test]
fn idontwant_is_honoured() {
    let mut s = Solo::meshed(RelayConfig::default(), 3);
    let data = fresh(&s, 1);
    let id = MessageId::of(&data);
    s.frame(
        3,
        &control_rpc(ControlMessage {
            idontwant: vec![ControlIDontWant {
                message_ids: vec![id.0.to_vec()],
            }],
            ..ControlMessage::default()
        }),
    );
    s.frame(1, &publish_rpc(data));
    let sent = s.sent();
    assert_eq!(messages_to(&sent, 2), 1);
    assert_eq!(messages_to(&sent, 3), 0);
}

#[test]
fn validator_verdicts() {
    let mut s = Solo::meshed(RelayConfig::default(), 2);
    s.relay
        .set_validator(Some(Box::new(|_, m| match m.payload[0] {
            1 => Validation::Reject,
            2 => Validation::Ignore,
            _ => Validation::Accept,
        })));
    for n in 1..=3 {
        s.frame(1, &publish_rpc(fresh(&s, n)));
    }
    assert_eq!(messages_to(&s.sent(), 2), 1, "only the accepted one");
    assert_eq!(s.events().len(), 1);
    let st = s.relay.stats();
    assert_eq!((st.rejected_by_validator, st.ignored_by_validator), (1, 1));
    // Reject costs P4 (-100), ignore nothing; two accepted first deliveries... one here: +1.
    let score = s.relay.peer_score(PeerId(1), s.clock().instant).unwrap();
    assert!((score - -99.0).abs() < 1e-9, "score {score}");
}

#[test]
fn malformed_and_oversized_frames_change_nothing() {
    let mut s = Solo::meshed(RelayConfig::default(), 2);
    let before = s.relay.sizes();
    s.relay
        .handle_frame(s.clock(), PeerId(1), &[0xff, 0xff, 0xff]);
    let huge = vec![0u8; s.relay.config().max_rpc_size + 1];
    s.relay.handle_frame(s.clock(), PeerId(1), &huge);
    s.relay.handle_frame(s.clock(), PeerId(99), &[]);
    let st = s.relay.stats();
    assert_eq!(
        (
            st.frames_malformed,
            st.frames_oversized,
            st.frames_unknown_peer
        ),
        (1, 1, 1)
    );
    assert_eq!(s.relay.sizes(), before);
    assert!(s.sent().is_empty());
}

#[test]
fn publish_checks_and_flood_publishing() {
    let mut s = Solo::meshed(RelayConfig::default(), 4);
    // A fifth topic peer outside the mesh still gets our own messages (flood publishing).
    s.connect(5);
    s.frame(5, &subscribe_rpc(true));
    s.sent();
    assert!(!s.relay.mesh_peers(topic().as_str()).contains(&PeerId(5)));
    let now = s.clock();
    let m = message(1, now.unix_nanos, 100);
    let id = s.relay.publish(now, &topic(), &m).unwrap();
    let sent = s.sent();
    for p in 1..=5 {
        assert_eq!(messages_to(&sent, p), 1);
    }
    assert_eq!(
        s.relay.publish(now, &topic(), &m),
        Err(PublishError::Duplicate)
    );
    assert!(s.events().is_empty(), "own messages are not echoed");
    let stale = message(2, now.unix_nanos - 25_000_000_000, 100);
    assert!(matches!(
        s.relay.publish(now, &topic(), &stale),
        Err(PublishError::Timestamp { .. })
    ));
    let other = waku_core::topic::PubsubTopic::static_shard(1, 7).unwrap();
    assert_eq!(
        s.relay
            .publish(now, &other, &message(3, now.unix_nanos, 10)),
        Err(PublishError::NoPeers)
    );
    assert!(matches!(
        s.relay.publish_encoded(now, &topic(), vec![0xff]),
        Err(PublishError::Invalid(_))
    ));
    // Peer 1 asks for it by IWANT: served from the cache.
    s.frame(
        1,
        &control_rpc(ControlMessage {
            iwant: vec![ControlIWant {
                message_ids: vec![id.0.to_vec()],
            }],
            ..ControlMessage::default()
        }),
    );
    assert_eq!(messages_to(&s.sent(), 1), 1);
}

#[test]
fn fanout_without_flood_publishing() {
    let mut config = RelayConfig::default();
    config.flood_publish = false;
    let mut s = Solo::new(config);
    for p in 1..=10 {
        s.connect(p);
        s.frame(p, &subscribe_rpc(true));
    }
    s.sent();
    let now = s.clock();
    s.relay
        .publish(now, &topic(), &message(1, now.unix_nanos, 10))
        .unwrap();
    let sent = s.sent();
    let reached: BTreeSet<PeerId> = sent
        .iter()
        .filter(|(_, r)| !r.publish.is_empty())
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(reached.len(), 6, "D fanout peers");
    assert_eq!(s.relay.sizes().fanout_topics, 1);
    // The next publish uses the same fanout peers.
    let now = s.clock();
    s.relay
        .publish(now, &topic(), &message(2, now.unix_nanos, 10))
        .unwrap();
    let again: BTreeSet<PeerId> = s
        .sent()
        .iter()
        .filter(|(_, r)| !r.publish.is_empty())
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(again, reached);
    // The fanout topic is gossiped about to the other peers at the heartbeat, then expires.
    s.advance(Duration::from_secs(1));
    let ihave_to: BTreeSet<PeerId> = s
        .sent()
        .iter()
        .filter(|(_, r)| r.control.as_ref().is_some_and(|c| !c.ihave.is_empty()))
        .map(|(p, _)| *p)
        .collect();
    assert!(!ihave_to.is_empty() && ihave_to.is_disjoint(&reached));
    s.advance(Duration::from_secs(61));
    assert_eq!(s.relay.sizes().fanout_topics, 0);
}

#[test]
fn oversubscribed_mesh_is_pruned_to_d_keeping_outbound_peers() {
    let mut s = Solo::new(RelayConfig::default());
    s.relay.subscribe(s.clock(), &topic()).unwrap();
    // 12 inbound peers graft us: GRAFTs beyond D_hi are refused.
    for p in 1..=12u64 {
        s.connect(p);
        s.frame(p, &subscribe_rpc(true));
        s.frame(p, &graft_rpc());
    }
    assert_eq!(s.relay.mesh_peers(topic().as_str()).len(), 8);
    assert_eq!(s.relay.stats().grafts_refused, 4);
    // Three peers we dialled graft us: accepted although the mesh is full (outbound).
    for p in 13..=15u64 {
        s.relay
            .handle_dialed(s.clock(), PeerId(p), &[Protocol::Relay]);
        s.frame(p, &subscribe_rpc(true));
        s.frame(p, &graft_rpc());
    }
    assert_eq!(s.relay.mesh_peers(topic().as_str()).len(), 11);
    s.sent();
    // The heartbeat prunes to D and keeps at least D_out = 3 outbound peers.
    s.advance(Duration::from_secs(1));
    let mesh = s.relay.mesh_peers(topic().as_str());
    assert_eq!(mesh.len(), 6, "{mesh:?}");
    for p in 13..=15 {
        assert!(
            mesh.contains(&PeerId(p)),
            "outbound peer {p} kept: {mesh:?}"
        );
    }
    let pruned: usize = s
        .sent()
        .iter()
        .filter_map(|(_, r)| r.control.as_ref())
        .map(|c| c.prune.len())
        .sum();
    assert_eq!(pruned, 5);
}

#[test]
fn subscribe_unsubscribe_and_disconnect() {
    let mut s = Solo::meshed(RelayConfig::default(), 3);
    s.relay.unsubscribe(s.clock(), &topic());
    let sent = s.sent();
    for p in 1..=3 {
        let rpcs: Vec<&Rpc> = sent
            .iter()
            .filter(|(to, _)| *to == PeerId(p))
            .map(|(_, r)| r)
            .collect();
        assert!(
            rpcs.iter()
                .any(|r| r.subscriptions.iter().any(|s| s.subscribe == Some(false)))
        );
        let backoff = rpcs
            .iter()
            .filter_map(|r| r.control.as_ref())
            .flat_map(|c| c.prune.iter())
            .map(|p| p.backoff)
            .next();
        assert_eq!(backoff, Some(Some(5)), "unsubscribe backoff");
    }
    assert!(!s.relay.is_subscribed(topic().as_str()));
    for p in 1..=3 {
        s.relay.handle_disconnected(s.clock(), PeerId(p));
    }
    let sizes = s.relay.sizes();
    assert_eq!((sizes.peers, sizes.topics), (0, 0));
}

#[test]
fn same_seed_same_wire() {
    let run = || {
        let mut net = Net::new(12, RelayConfig::default(), 77);
        net.subscribe_all();
        net.random_graph(3);
        net.run_for(Duration::from_secs(3));
        for n in 0..20 {
            net.publish((n % 12) as usize, n, 300);
            net.run_for(Duration::from_millis(100));
        }
        net.run_for(Duration::from_secs(3));
        (
            net.frames_delivered,
            net.nodes
                .iter()
                .map(|n| n.relay.mesh_peers(topic().as_str()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(run(), run());
}

// -------------------------------------------------------------------------------------------
// Two real relays.

#[test]
fn two_relays_mesh_and_exchange() {
    let mut net = Net::new(2, RelayConfig::default(), 1);
    net.subscribe_all();
    net.connect(0, 1);
    net.run_for(Duration::from_secs(2));
    assert_eq!(
        net.nodes[0].relay.mesh_peers(topic().as_str()),
        vec![PeerId(1)]
    );
    assert_eq!(
        net.nodes[1].relay.mesh_peers(topic().as_str()),
        vec![PeerId(0)]
    );
    let a = net.publish(0, 1, 1024);
    let b = net.publish(1, 2, 1024);
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.nodes[1].received.get(&a), Some(&1));
    assert_eq!(net.nodes[0].received.get(&b), Some(&1));
    assert_eq!(net.nodes[0].received.len(), 1, "no echo of its own message");
}

// -------------------------------------------------------------------------------------------
// 50 relays.

const NODES: usize = 50;
const MESSAGES: u64 = 1000;

/// Builds the 50-relay network (`droppers` of them silently dropping every message they would
/// send), publishes 1,000 1 KiB messages from random honest publishers, one every 20 ms, and
/// lets the network settle.
fn run_fifty(seed: u64, droppers: usize, config: RelayConfig) -> (Net, Vec<(usize, MessageId)>) {
    println!("seed {seed}, {droppers} droppers");
    let mut net = Net::new(NODES, config, seed);
    for i in 0..droppers {
        net.nodes[i * (NODES / droppers.max(1))].dropper = true;
    }
    net.subscribe_all();
    net.random_graph(4);
    let honest = honest(&net);
    assert!(
        net.connected_within(&honest),
        "seed {seed}: the honest relays must form a connected graph for the test to be fair"
    );
    let degrees: Vec<usize> = (0..NODES).map(|i| net.neighbours(i).len()).collect();
    println!(
        "degree min {} mean {:.1} max {}",
        degrees.iter().min().unwrap(),
        degrees.iter().sum::<usize>() as f64 / NODES as f64,
        degrees.iter().max().unwrap()
    );
    net.run_for(Duration::from_secs(5));
    let publishers: Vec<usize> = honest.iter().copied().collect();
    let mut published = Vec::new();
    for n in 0..MESSAGES {
        use rand_core::Rng;
        let p = publishers[(net.rng.next_u64() % publishers.len() as u64) as usize];
        published.push((p, net.publish(p, n, 1024)));
        net.run_for(Duration::from_millis(20));
    }
    net.run_for(Duration::from_secs(10));
    println!(
        "{} frames delivered, largest {} bytes",
        net.frames_delivered, net.max_transmit
    );
    (net, published)
}

fn honest(net: &Net) -> BTreeSet<usize> {
    (0..net.nodes.len())
        .filter(|&i| !net.nodes[i].dropper)
        .collect()
}

/// (copies missing, copies delivered more than once) over honest relays other than the
/// publisher.
fn tally(net: &Net, published: &[(usize, MessageId)]) -> (usize, usize) {
    let (mut missing, mut extra) = (0, 0);
    for i in honest(net) {
        for (publisher, id) in published {
            let got = net.nodes[i].received.get(id).copied().unwrap_or(0) as usize;
            if *publisher == i {
                extra += got;
            } else if got == 0 {
                missing += 1;
            } else {
                extra += got - 1;
            }
        }
    }
    (missing, extra)
}

fn assert_exactly_once(seed: u64, net: &Net, published: &[(usize, MessageId)]) {
    let (missing, extra) = tally(net, published);
    assert_eq!(
        (missing, extra),
        (0, 0),
        "seed {seed}: copies missing, copies delivered more than once"
    );
    for i in honest(net) {
        if let Some(over) = net.nodes[i].relay.sizes().over_limit() {
            panic!("relay {i}: {over:?}");
        }
    }
}

#[test]
fn fifty_relays_deliver_every_message_exactly_once() {
    let (net, published) = run_fifty(2024, 0, RelayConfig::default());
    assert_exactly_once(2024, &net, &published);
    let served: u64 = net
        .nodes
        .iter()
        .map(|n| n.relay.stats().iwant_ids_served)
        .sum();
    let dups: u64 = net
        .nodes
        .iter()
        .map(|n| n.relay.stats().messages_duplicate)
        .sum();
    println!("duplicates suppressed {dups}, served by IWANT {served}");
    let meshes: Vec<usize> = net
        .nodes
        .iter()
        .map(|n| n.relay.mesh_peers(topic().as_str()).len())
        .collect();
    println!("mesh sizes {meshes:?}");
    assert!(meshes.iter().all(|&m| (1..=8).contains(&m)));
    assert!(
        meshes.iter().sum::<usize>() >= 4 * NODES,
        "mean mesh degree at least D_lo"
    );
}

#[test]
fn fifty_relays_with_silent_droppers_still_deliver_through_gossip() {
    let (net, published) = run_fifty(7, NODES / 5, RelayConfig::default());
    assert_exactly_once(7, &net, &published);
    let served: u64 = net
        .nodes
        .iter()
        .filter(|n| !n.dropper)
        .map(|n| n.relay.stats().iwant_ids_served)
        .sum();
    let broken: u64 = net
        .nodes
        .iter()
        .map(|n| n.relay.stats().promises_broken)
        .sum();
    let dropper_got: usize = net
        .nodes
        .iter()
        .filter(|n| n.dropper)
        .map(|n| n.received.len())
        .sum();
    println!(
        "messages served through IWANT by honest relays: {served}; broken promises: {broken}; \
         droppers received {dropper_got} of {}",
        MESSAGES as usize * NODES / 5
    );
    assert!(served > 0, "gossip must have repaired some paths");
}

/// A relay whose whole mesh is silent droppers (an eclipse): its one honest neighbour is outside
/// its mesh, so only gossip (IHAVE/IWANT) brings it messages. With gossip switched off it gets
/// nothing, which shows the delivery is gossip's doing.
fn eclipsed(gossip: bool) -> (usize, u64) {
    let mut config = RelayConfig::default();
    if !gossip {
        config.d_lazy = 0;
        config.gossip_factor = 0.0;
    }
    // 0 publishes, 1 relays, 2 is the victim, 3..=10 drop everything.
    let mut net = Net::new(11, config, 11);
    for d in 3..=10 {
        net.nodes[d].dropper = true;
    }
    net.subscribe_all();
    net.connect(0, 1);
    for d in 3..=10 {
        net.connect(2, d);
    }
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.nodes[2].relay.mesh_peers(topic().as_str()).len(), 8);
    // The honest relay dials the victim; the victim's mesh is full, so its GRAFT is refused.
    net.connect(1, 2);
    net.run_for(Duration::from_secs(2));
    let mesh = net.nodes[2].relay.mesh_peers(topic().as_str());
    assert!(!mesh.contains(&PeerId(1)), "{mesh:?}");
    let ids: Vec<MessageId> = (0..20)
        .map(|n| {
            let id = net.publish(0, n, 512);
            net.run_for(Duration::from_millis(100));
            id
        })
        .collect();
    net.run_for(Duration::from_secs(5));
    let victim = &net.nodes[2];
    assert!(victim.received.values().all(|&c| c == 1));
    let got = ids
        .iter()
        .filter(|id| victim.received.contains_key(id))
        .count();
    (got, net.nodes[1].relay.stats().iwant_ids_served)
}

#[test]
fn gossip_rescues_a_relay_whose_mesh_is_all_droppers() {
    let (got, served) = eclipsed(true);
    println!("with gossip: {got} of 20 delivered, {served} served by IWANT");
    assert_eq!(got, 20);
    assert_eq!(served, 20);
    let (got, served) = eclipsed(false);
    println!("without gossip: {got} of 20 delivered");
    assert_eq!((got, served), (0, 0));
}

#[test]
fn stale_message_does_not_propagate_in_a_network() {
    let mut net = Net::new(10, RelayConfig::default(), 5);
    net.subscribe_all();
    net.random_graph(3);
    net.run_for(Duration::from_secs(3));
    let wall = net.clock().unix_nanos;
    let stale = message(1, wall - 30_000_000_000, 512).encode();
    let id = MessageId::of(&stale);
    let target = net.neighbours(0)[0];
    net.inject(0, target, &publish_rpc(stale).encode_to_vec());
    net.run_for(Duration::from_secs(5));
    for n in &net.nodes {
        assert!(!n.received.contains_key(&id));
    }
    assert_eq!(net.nodes[target].relay.stats().rejected_timestamp, 1);
    let total: u64 = net
        .nodes
        .iter()
        .map(|n| n.relay.stats().messages_received)
        .sum();
    assert_eq!(total, 1, "nobody else even saw it");
}
