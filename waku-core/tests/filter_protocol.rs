//! Filter v2: the service node's rules and limits, the client's ping / resubscribe / backfill
//! behaviour against real servers on a virtual clock, and a property test feeding the server
//! arbitrary requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    missing_docs
)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use prost::Message as _;
use waku_core::filter::{
    FilterClient, FilterClientConfig, FilterClientEvent, FilterServer, FilterServerConfig,
    FilterSubscribeType, MAX_CONTENT_TOPICS_PER_REQUEST,
};
use waku_core::message::WakuMessage;
use waku_core::net::{FrameKind, Now, PeerId, Protocol, Transmit};
use waku_core::topic::{ContentTopic, PubsubTopic};

const LIGHT: PeerId = PeerId(100);

fn start() -> Now {
    Now {
        instant: Instant::now(),
        unix_nanos: 1_750_000_000_000_000_000,
    }
}

fn later(now: Now, d: Duration) -> Now {
    Now {
        instant: now.instant + d,
        unix_nanos: now.unix_nanos + i64::try_from(d.as_nanos()).unwrap(),
    }
}

fn shard() -> PubsubTopic {
    PubsubTopic::static_shard(1, 3).unwrap()
}

fn ct(i: usize) -> ContentTopic {
    ContentTopic::new(format!("/app/1/t{i}/proto")).unwrap()
}

fn req(kind: FilterSubscribeType, topics: &[ContentTopic]) -> Vec<u8> {
    proto::waku::FilterSubscribeRequest {
        request_id: "r".into(),
        filter_subscribe_type: kind as i32,
        pubsub_topic: (!topics.is_empty()).then(|| shard().as_str().to_owned()),
        content_topics: topics.iter().map(|t| t.as_str().to_owned()).collect(),
    }
    .encode_to_vec()
}

fn answer(server: &mut FilterServer, now: Now, peer: PeerId, frame: &[u8]) -> (u32, String) {
    server.handle_request(now, peer, 1, frame);
    let t = server.poll_transmit().unwrap();
    assert_eq!(t.kind, FrameKind::Response(1));
    let r = proto::waku::FilterSubscribeResponse::decode(t.bytes.as_slice()).unwrap();
    (r.status_code, r.status_desc.unwrap_or_default())
}

#[test]
fn server_status_codes() {
    let now = start();
    let mut s = FilterServer::new(FilterServerConfig::default());
    let sub = FilterSubscribeType::Subscribe;
    // Ping without subscriptions: 404.
    assert_eq!(
        answer(
            &mut s,
            now,
            PeerId(1),
            &req(FilterSubscribeType::SubscriberPing, &[])
        )
        .0,
        404
    );
    // Subscribe needs topics.
    assert_eq!(answer(&mut s, now, PeerId(1), &req(sub, &[])).0, 400);
    let too_many: Vec<ContentTopic> = (0..=MAX_CONTENT_TOPICS_PER_REQUEST).map(ct).collect();
    assert_eq!(answer(&mut s, now, PeerId(1), &req(sub, &too_many)).0, 400);
    assert_eq!(
        answer(&mut s, now, PeerId(1), &req(sub, &[ct(1), ct(2)])).0,
        200
    );
    assert_eq!(
        answer(
            &mut s,
            now,
            PeerId(1),
            &req(FilterSubscribeType::SubscriberPing, &[])
        )
        .0,
        200
    );
    // Unsubscribe from something never subscribed: 404; from one topic: 200.
    assert_eq!(
        answer(
            &mut s,
            now,
            PeerId(1),
            &req(FilterSubscribeType::Unsubscribe, &[ct(9)])
        )
        .0,
        404
    );
    assert_eq!(
        answer(
            &mut s,
            now,
            PeerId(1),
            &req(FilterSubscribeType::Unsubscribe, &[ct(1)])
        )
        .0,
        200
    );
    assert_eq!(s.subscriptions_of(PeerId(1)), vec![(shard(), ct(2))]);
    assert_eq!(
        answer(
            &mut s,
            now,
            PeerId(1),
            &req(FilterSubscribeType::UnsubscribeAll, &[])
        )
        .0,
        200
    );
    assert_eq!(
        answer(
            &mut s,
            now,
            PeerId(1),
            &req(FilterSubscribeType::UnsubscribeAll, &[])
        )
        .0,
        404
    );
    // Undecodable and unknown type: 400.
    assert_eq!(answer(&mut s, now, PeerId(1), &[0xff, 0xff]).0, 400);
    let unknown = proto::waku::FilterSubscribeRequest {
        filter_subscribe_type: 9,
        ..Default::default()
    }
    .encode_to_vec();
    assert_eq!(answer(&mut s, now, PeerId(1), &unknown).0, 400);
}

#[test]
fn server_limits_peers_and_criteria() {
    let now = start();
    let mut s = FilterServer::new(FilterServerConfig {
        max_peers: 2,
        max_criteria_per_peer: 3,
        ..FilterServerConfig::default()
    });
    let sub = FilterSubscribeType::Subscribe;
    assert_eq!(
        answer(&mut s, now, PeerId(1), &req(sub, &[ct(1), ct(2)])).0,
        200
    );
    assert_eq!(
        answer(&mut s, now, PeerId(1), &req(sub, &[ct(2), ct(3)])).0,
        200
    );
    let (code, desc) = answer(&mut s, now, PeerId(1), &req(sub, &[ct(4)]));
    assert_eq!(code, 503, "{desc}");
    assert_eq!(answer(&mut s, now, PeerId(2), &req(sub, &[ct(1)])).0, 200);
    assert_eq!(answer(&mut s, now, PeerId(3), &req(sub, &[ct(1)])).0, 503);
    assert_eq!(s.subscribed_peers(), 2);
}

#[test]
fn server_expires_without_refresh_and_pushes_only_matches() {
    let t0 = start();
    let mut s = FilterServer::new(FilterServerConfig::default());
    let sub = FilterSubscribeType::Subscribe;
    answer(&mut s, t0, PeerId(1), &req(sub, &[ct(1)]));
    answer(&mut s, t0, PeerId(2), &req(sub, &[ct(1), ct(2)]));
    let m1 = WakuMessage::new(ct(1), b"one".to_vec()).with_timestamp(t0.unix_nanos);
    let m2 = WakuMessage::new(ct(2), b"two".to_vec()).with_timestamp(t0.unix_nanos);
    s.handle_message(t0, &shard(), &m1);
    s.handle_message(t0, &shard(), &m2);
    s.handle_message(t0, &PubsubTopic::static_shard(1, 4).unwrap(), &m1);
    let mut pushes: Vec<(PeerId, Vec<u8>)> = Vec::new();
    while let Some(t) = s.poll_transmit() {
        assert_eq!(
            (t.protocol, t.kind),
            (Protocol::FilterPush, FrameKind::Stream)
        );
        let p = proto::waku::MessagePush::decode(t.bytes.as_slice()).unwrap();
        assert_eq!(p.pubsub_topic.as_deref(), Some(shard().as_str()));
        pushes.push((t.to, p.waku_message.unwrap().payload));
    }
    assert_eq!(
        pushes,
        vec![
            (PeerId(1), b"one".to_vec()),
            (PeerId(2), b"one".to_vec()),
            (PeerId(2), b"two".to_vec())
        ]
    );
    // Peer 2 pings at 4 minutes; at 5 minutes peer 1 expires, peer 2 does not.
    let t4 = later(t0, Duration::from_secs(240));
    assert_eq!(
        answer(
            &mut s,
            t4,
            PeerId(2),
            &req(FilterSubscribeType::SubscriberPing, &[])
        )
        .0,
        200
    );
    let t5 = later(t0, Duration::from_secs(300));
    assert_eq!(s.poll_timeout(), Some(t5.instant));
    s.handle_timeout(t5);
    assert_eq!(s.subscribed_peers(), 1);
    assert!(s.subscriptions_of(PeerId(1)).is_empty());
    let t9 = later(t4, Duration::from_secs(300));
    s.handle_timeout(t9);
    assert_eq!(s.subscribed_peers(), 0);
}

/// A light client and service nodes wired together on a virtual clock. Frames to a node that is
/// "down" are lost.
struct Rig {
    now: Now,
    client: FilterClient,
    servers: Vec<(PeerId, FilterServer, bool)>,
    events: Vec<FilterClientEvent>,
}

impl Rig {
    fn new(servers: &[u64]) -> Self {
        let now = start();
        let mut rig = Rig {
            now,
            client: FilterClient::new(FilterClientConfig::default(), [1; 32]),
            servers: servers
                .iter()
                .map(|p| {
                    (
                        PeerId(*p),
                        FilterServer::new(FilterServerConfig::default()),
                        true,
                    )
                })
                .collect(),
            events: Vec::new(),
        };
        for p in servers {
            rig.client.handle_connected(
                now,
                PeerId(*p),
                &[Protocol::FilterSubscribe, Protocol::FilterPush],
            );
        }
        rig
    }

    fn server(&mut self, p: PeerId) -> &mut FilterServer {
        &mut self.servers.iter_mut().find(|s| s.0 == p).unwrap().1
    }

    /// Delivers frames until both sides are quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit() {
                moved = true;
                let now = self.now;
                if let Some((_, s, up)) = self.servers.iter_mut().find(|s| s.0 == t.to)
                    && *up
                    && let FrameKind::Request(id) = t.kind
                {
                    s.handle_request(now, LIGHT, id, &t.bytes);
                }
            }
            for i in 0..self.servers.len() {
                while let Some(t) = self.servers[i].1.poll_transmit() {
                    moved = true;
                    self.deliver(self.servers[i].0, t);
                }
            }
            while let Some(e) = self.client.poll_event() {
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    fn deliver(&mut self, from: PeerId, t: Transmit) {
        match t.kind {
            FrameKind::Response(id) => self.client.handle_response(self.now, from, id, &t.bytes),
            FrameKind::Stream => self.client.handle_push(self.now, from, &t.bytes),
            FrameKind::Request(_) => {}
        }
    }

    /// Advances the clock to `t`, firing every timer on the way.
    fn advance(&mut self, d: Duration) {
        let end = later(self.now, d);
        loop {
            self.pump();
            let next = [self.client.poll_timeout()]
                .into_iter()
                .chain(self.servers.iter().map(|s| s.1.poll_timeout()))
                .flatten()
                .min();
            match next {
                Some(t) if t <= end.instant => {
                    let dt = t.saturating_duration_since(self.now.instant);
                    self.now = later(self.now, dt);
                    self.client.handle_timeout(self.now);
                    let now = self.now;
                    for s in &mut self.servers {
                        s.1.handle_timeout(now);
                    }
                }
                _ => break,
            }
        }
        self.now = end;
        self.pump();
    }

    fn relay(&mut self, msg: &WakuMessage) {
        let now = self.now;
        for s in &mut self.servers {
            if s.2 {
                s.1.handle_message(now, &shard(), msg);
            }
        }
        self.pump();
    }

    fn take(&mut self) -> Vec<FilterClientEvent> {
        std::mem::take(&mut self.events)
    }
}

fn messages(events: &[FilterClientEvent]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            FilterClientEvent::Message { message, .. } => Some(message.payload.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn client_subscribes_receives_and_keeps_alive_with_pings() {
    let mut rig = Rig::new(&[1]);
    let now = rig.now;
    rig.client.subscribe(now, shard(), [ct(1), ct(2)]).unwrap();
    rig.pump();
    assert!(rig.client.is_synced());
    assert_eq!(rig.client.service_peer(), Some(PeerId(1)));
    let m = WakuMessage::new(ct(1), b"hi".to_vec()).with_timestamp(now.unix_nanos);
    rig.relay(&m);
    assert_eq!(messages(&rig.take()), vec![b"hi".to_vec()]);
    // Twenty minutes of pings keep the 5-minute subscription alive.
    rig.advance(Duration::from_secs(20 * 60));
    assert_eq!(rig.server(PeerId(1)).subscribed_peers(), 1);
    let m = WakuMessage::new(ct(2), b"later".to_vec()).with_timestamp(rig.now.unix_nanos);
    rig.relay(&m);
    let ev = rig.take();
    assert_eq!(messages(&ev), vec![b"later".to_vec()]);
    assert!(
        !ev.iter()
            .any(|e| matches!(e, FilterClientEvent::Backfill { .. }))
    );
}

#[test]
fn server_restart_is_noticed_by_ping_and_the_gap_is_backfilled() {
    let mut rig = Rig::new(&[1]);
    let now = rig.now;
    rig.client.subscribe(now, shard(), [ct(1)]).unwrap();
    rig.pump();
    rig.advance(Duration::from_secs(30));
    let alive = rig.now.unix_nanos;
    // The service node restarts: its subscriptions are gone (same connection handle, as when a
    // process restarts behind a proxy, or the node expired us).
    *rig.server(PeerId(1)) = FilterServer::new(FilterServerConfig::default());
    let lost = WakuMessage::new(ct(1), b"lost".to_vec()).with_timestamp(rig.now.unix_nanos);
    rig.relay(&lost);
    assert!(messages(&rig.take()).is_empty());
    // The next ping (60 s after the subscription) gets 404, the client resubscribes at once.
    rig.advance(Duration::from_secs(31));
    let ev = rig.take();
    let backfill: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            FilterClientEvent::Backfill {
                pubsub_topic,
                content_topics,
                start,
                end,
                lost_on,
            } => {
                assert_eq!(*lost_on, PeerId(1));
                Some((pubsub_topic.clone(), content_topics.clone(), *start, *end))
            }
            _ => None,
        })
        .collect();
    assert_eq!(backfill.len(), 1, "{ev:?}");
    let (p, cs, s, e) = &backfill[0];
    assert_eq!((p, cs.as_slice()), (&shard(), [ct(1)].as_slice()));
    // The window covers the lost message with the margin on both sides.
    assert!(*s <= alive - 20_000_000_000 && *e >= rig.now.unix_nanos + 20_000_000_000);
    assert!(*s <= lost.timestamp.unwrap() && lost.timestamp.unwrap() < *e);
    assert!(rig.client.is_synced());
    assert_eq!(rig.server(PeerId(1)).subscribed_peers(), 1);
    let after = WakuMessage::new(ct(1), b"after".to_vec()).with_timestamp(rig.now.unix_nanos);
    rig.relay(&after);
    assert_eq!(messages(&rig.take()), vec![b"after".to_vec()]);
}

#[test]
fn silent_service_node_is_replaced_after_three_failures() {
    let mut rig = Rig::new(&[1, 2]);
    let now = rig.now;
    rig.client.subscribe(now, shard(), [ct(1)]).unwrap();
    rig.pump();
    assert_eq!(rig.client.service_peer(), Some(PeerId(1)));
    // Node 1 stops answering (its frames are lost) but the connection stays up.
    rig.servers[0].2 = false;
    rig.advance(Duration::from_secs(60 + 3 * 15 + 10));
    let ev = rig.take();
    assert_eq!(rig.client.service_peer(), Some(PeerId(2)), "{ev:?}");
    assert!(rig.client.is_synced());
    assert!(
        ev.iter()
            .any(|e| matches!(e, FilterClientEvent::Backfill { .. }))
    );
    let m = WakuMessage::new(ct(1), b"via two".to_vec()).with_timestamp(rig.now.unix_nanos);
    rig.relay(&m);
    assert_eq!(messages(&rig.take()), vec![b"via two".to_vec()]);
}

#[test]
fn lost_connection_moves_to_another_node_and_back_when_it_returns() {
    let mut rig = Rig::new(&[1]);
    let now = rig.now;
    rig.client.subscribe(now, shard(), [ct(1), ct(2)]).unwrap();
    rig.pump();
    rig.advance(Duration::from_secs(10));
    rig.client.handle_disconnected(rig.now, PeerId(1));
    rig.server(PeerId(1)).handle_disconnected(LIGHT);
    rig.pump();
    let ev = rig.take();
    assert!(ev.contains(&FilterClientEvent::ServicePeerChanged {
        old: Some(PeerId(1)),
        new: None
    }));
    assert_eq!(rig.client.service_peer(), None);
    // Node 1 comes back: the client subscribes again and asks for the gap.
    rig.advance(Duration::from_secs(40));
    let now = rig.now;
    rig.client
        .handle_connected(now, PeerId(1), &[Protocol::FilterSubscribe]);
    rig.pump();
    let ev = rig.take();
    assert!(rig.client.is_synced());
    let gaps = ev
        .iter()
        .filter(|e| matches!(e, FilterClientEvent::Backfill { content_topics, .. } if content_topics.len() == 2))
        .count();
    assert_eq!(gaps, 1, "{ev:?}");
}

#[test]
fn unsolicited_and_unwanted_pushes_are_dropped() {
    let mut rig = Rig::new(&[1]);
    let now = rig.now;
    rig.client.subscribe(now, shard(), [ct(1)]).unwrap();
    rig.pump();
    let push = |t: ContentTopic| {
        proto::waku::MessagePush {
            waku_message: Some(
                (&WakuMessage::new(t, b"x".to_vec()).with_timestamp(now.unix_nanos)).into(),
            ),
            pubsub_topic: Some(shard().as_str().to_owned()),
        }
        .encode_to_vec()
    };
    rig.client.handle_push(now, PeerId(7), &push(ct(1)));
    rig.client.handle_push(now, PeerId(1), &push(ct(5)));
    rig.client.handle_push(now, PeerId(1), &[1, 2, 3]);
    rig.client.handle_push(now, PeerId(1), &push(ct(1)));
    rig.pump();
    assert_eq!(messages(&rig.take()).len(), 1);
    assert_eq!(rig.client.stats().pushes_dropped, 3);
}

fn arb_request() -> impl Strategy<Value = Vec<u8>> {
    let structured = (
        0i32..5,
        proptest::option::of("[a-z/0-9]{0,12}"),
        proptest::collection::vec("[a-z/0-9]{0,12}", 0..120),
    )
        .prop_map(|(kind, pubsub, topics)| {
            proto::waku::FilterSubscribeRequest {
                request_id: "x".into(),
                filter_subscribe_type: kind,
                pubsub_topic: pubsub,
                content_topics: topics,
            }
            .encode_to_vec()
        });
    prop_oneof![structured, proptest::collection::vec(any::<u8>(), 0..64)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary requests from a few peers: the server never panics, answers every request
    /// within the frame limit, and never holds more than its limits.
    #[test]
    fn server_survives_arbitrary_requests(reqs in proptest::collection::vec((0u64..6, arb_request()), 1..40)) {
        let now = start();
        let config = FilterServerConfig { max_peers: 3, max_criteria_per_peer: 50, ..FilterServerConfig::default() };
        let mut s = FilterServer::new(config);
        for (i, (peer, frame)) in reqs.iter().enumerate() {
            s.handle_request(now, PeerId(*peer), u64::try_from(i).unwrap(), frame);
            let t = s.poll_transmit().unwrap();
            prop_assert!(t.bytes.len() <= Protocol::FilterSubscribe.max_frame_len());
            prop_assert!(s.poll_transmit().is_none());
            prop_assert!(s.subscribed_peers() <= 3);
            for p in 0..6 {
                prop_assert!(s.subscriptions_of(PeerId(p)).len() <= 50);
            }
        }
    }
}
