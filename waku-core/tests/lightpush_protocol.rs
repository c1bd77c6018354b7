//! Lightpush v3 and legacy v2: the server's status codes for every kind of request, the client
//! against the server, and a property test feeding the server arbitrary frames.
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
use waku_core::lightpush::{
    LightPushClient, LightPushClientConfig, LightPushClientEvent, LightPushError, LightPushServer,
    LightPushServerConfig, NoPeersPolicy, Publish, PublishRejected,
};
use waku_core::message::{MAX_MESSAGE_SIZE, WakuMessage};
use waku_core::net::{FrameKind, Now, PeerId, Protocol};
use waku_core::topic::{ContentTopic, PubsubTopic, autoshard};

fn now() -> Now {
    Now {
        instant: Instant::now(),
        unix_nanos: 1_750_000_000_000_000_000,
    }
}

fn shard() -> PubsubTopic {
    PubsubTopic::static_shard(1, 2).unwrap()
}

fn msg(payload: &[u8]) -> WakuMessage {
    WakuMessage::new(
        ContentTopic::new("/toychat/2/huilong/proto").unwrap(),
        payload.to_vec(),
    )
    .with_timestamp(now().unix_nanos)
}

/// A relay stand-in: serves one topic, reports a fixed peer count.
struct FakeRelay {
    topic: PubsubTopic,
    peers: usize,
    published: Vec<(PubsubTopic, WakuMessage)>,
}

impl Publish for FakeRelay {
    fn publish(
        &mut self,
        _now: Now,
        topic: &PubsubTopic,
        message: &WakuMessage,
    ) -> Result<usize, PublishRejected> {
        if *topic != self.topic {
            return Err(PublishRejected::UnsupportedTopic);
        }
        if self.published.iter().any(|(_, m)| m == message) {
            return Err(PublishRejected::Duplicate);
        }
        self.published.push((topic.clone(), message.clone()));
        Ok(self.peers)
    }
}

fn relay(peers: usize) -> FakeRelay {
    FakeRelay {
        topic: shard(),
        peers,
        published: Vec::new(),
    }
}

fn v3(topic: Option<&PubsubTopic>, m: Option<proto::waku::WakuMessage>) -> Vec<u8> {
    proto::waku::LightPushRequest {
        request_id: "req".into(),
        pubsub_topic: topic.map(|t| t.as_str().to_owned()),
        message: m,
    }
    .encode_to_vec()
}

fn push_v3(
    server: &mut LightPushServer,
    relay: &mut FakeRelay,
    frame: &[u8],
) -> proto::waku::LightPushResponse {
    server.handle_request(now(), PeerId(1), Protocol::LightPush, 4, frame, relay);
    let t = server.poll_transmit().unwrap();
    assert_eq!(
        (t.protocol, t.kind),
        (Protocol::LightPush, FrameKind::Response(4))
    );
    proto::waku::LightPushResponse::decode(t.bytes.as_slice()).unwrap()
}

#[test]
fn v3_status_codes() {
    let mut s = LightPushServer::new(LightPushServerConfig::default());
    let mut r = relay(4);
    let ok = push_v3(
        &mut s,
        &mut r,
        &v3(Some(&shard()), Some((&msg(b"a")).into())),
    );
    assert_eq!(
        (ok.status_code, ok.relay_peer_count, ok.request_id.as_str()),
        (200, Some(4), "req")
    );
    assert_eq!(r.published.len(), 1);

    // Duplicate, unsupported topic, missing message, bad topic, undecodable.
    let dup = push_v3(
        &mut s,
        &mut r,
        &v3(Some(&shard()), Some((&msg(b"a")).into())),
    );
    assert_eq!(dup.status_code, 420);
    let other = PubsubTopic::static_shard(1, 5).unwrap();
    assert_eq!(
        push_v3(&mut s, &mut r, &v3(Some(&other), Some((&msg(b"b")).into()))).status_code,
        421
    );
    assert_eq!(
        push_v3(&mut s, &mut r, &v3(Some(&shard()), None)).status_code,
        400
    );
    let bad_topic = proto::waku::LightPushRequest {
        request_id: "x".into(),
        pubsub_topic: Some("/waku/2/rs/1/01".into()),
        message: Some((&msg(b"c")).into()),
    }
    .encode_to_vec();
    assert_eq!(push_v3(&mut s, &mut r, &bad_topic).status_code, 400);
    assert_eq!(push_v3(&mut s, &mut r, &[0x0a, 0xff]).status_code, 400);

    // Too large: 413. Invalid meta: 420.
    let big = msg(&vec![0u8; MAX_MESSAGE_SIZE]);
    assert_eq!(
        push_v3(&mut s, &mut r, &v3(Some(&shard()), Some((&big).into()))).status_code,
        413
    );
    let mut bad_meta: proto::waku::WakuMessage = (&msg(b"d")).into();
    bad_meta.meta = Some(vec![0; 65]);
    assert_eq!(
        push_v3(&mut s, &mut r, &v3(Some(&shard()), Some(bad_meta))).status_code,
        420
    );

    // No topic and no autosharding: 400.
    assert_eq!(
        push_v3(&mut s, &mut r, &v3(None, Some((&msg(b"e")).into()))).status_code,
        400
    );
    assert_eq!(r.published.len(), 1);
}

#[test]
fn autosharding_picks_the_topic() {
    let m = msg(b"auto");
    let topic = autoshard(&m.content_topic, 1, 8).unwrap();
    let mut s = LightPushServer::new(LightPushServerConfig {
        autosharding: Some((1, 8)),
        ..LightPushServerConfig::default()
    });
    let mut r = FakeRelay {
        topic: topic.clone(),
        peers: 1,
        published: Vec::new(),
    };
    assert_eq!(
        push_v3(&mut s, &mut r, &v3(None, Some((&m).into()))).status_code,
        200
    );
    assert_eq!(r.published, vec![(topic, m)]);
}

#[test]
fn no_relay_peers_is_200_by_default_and_505_on_request() {
    let mut accept = LightPushServer::new(LightPushServerConfig::default());
    let resp = push_v3(
        &mut accept,
        &mut relay(0),
        &v3(Some(&shard()), Some((&msg(b"x")).into())),
    );
    assert_eq!((resp.status_code, resp.relay_peer_count), (200, Some(0)));
    let mut reject = LightPushServer::new(LightPushServerConfig {
        no_peers: NoPeersPolicy::Reject,
        ..LightPushServerConfig::default()
    });
    let resp = push_v3(
        &mut reject,
        &mut relay(0),
        &v3(Some(&shard()), Some((&msg(b"x")).into())),
    );
    assert_eq!(resp.status_code, 505);
}

#[test]
fn legacy_v2_push_rpc() {
    let mut s = LightPushServer::new(LightPushServerConfig::default());
    let mut r = relay(2);
    let frame = |m: &WakuMessage, topic: &str| {
        proto::waku::PushRpc {
            request_id: "legacy".into(),
            request: Some(proto::waku::PushRequest {
                pubsub_topic: topic.into(),
                message: Some(m.into()),
            }),
            response: None,
        }
        .encode_to_vec()
    };
    let mut answer = |bytes: Vec<u8>| {
        s.handle_request(
            now(),
            PeerId(2),
            Protocol::LightPushLegacy,
            1,
            &bytes,
            &mut r,
        );
        let t = s.poll_transmit().unwrap();
        assert_eq!(t.protocol, Protocol::LightPushLegacy);
        let rpc = proto::waku::PushRpc::decode(t.bytes.as_slice()).unwrap();
        assert_eq!(rpc.request_id, "legacy");
        rpc.response.unwrap()
    };
    let ok = answer(frame(&msg(b"old"), shard().as_str()));
    assert!(ok.is_success);
    let bad = answer(frame(&msg(b"old2"), "/waku/2/rs/9/9"));
    assert!(!bad.is_success);
    assert!(bad.info.unwrap().contains("unsupported"));
}

#[test]
fn client_against_server() {
    let t0 = now();
    let mut client = LightPushClient::new(LightPushClientConfig::default(), [3; 32]);
    let mut server = LightPushServer::new(LightPushServerConfig::default());
    let mut r = relay(6);
    let id = client
        .push(t0, PeerId(5), Some(&shard()), &msg(b"from light"))
        .unwrap();
    let t = client.poll_transmit().unwrap();
    let FrameKind::Request(fid) = t.kind else {
        panic!()
    };
    server.handle_request(t0, PeerId(99), Protocol::LightPush, fid, &t.bytes, &mut r);
    let answer = server.poll_transmit().unwrap();
    client.handle_response(t0, PeerId(5), fid, &answer.bytes);
    assert_eq!(
        client.poll_event(),
        Some(LightPushClientEvent::Pushed {
            id,
            peer: PeerId(5),
            relay_peer_count: Some(6)
        })
    );
    assert_eq!(r.published.len(), 1);

    // A refusal, a timeout and a lost connection.
    let id2 = client
        .push(
            t0,
            PeerId(5),
            Some(&PubsubTopic::static_shard(1, 7).unwrap()),
            &msg(b"y"),
        )
        .unwrap();
    let t = client.poll_transmit().unwrap();
    let FrameKind::Request(fid) = t.kind else {
        panic!()
    };
    server.handle_request(t0, PeerId(99), Protocol::LightPush, fid, &t.bytes, &mut r);
    client.handle_response(t0, PeerId(5), fid, &server.poll_transmit().unwrap().bytes);
    assert!(matches!(
        client.poll_event(),
        Some(LightPushClientEvent::Failed { id, error: LightPushError::Status { code: 421, .. }, .. }) if id == id2
    ));
    let id3 = client
        .push(t0, PeerId(5), Some(&shard()), &msg(b"z"))
        .unwrap();
    let id4 = client
        .push(t0, PeerId(6), Some(&shard()), &msg(b"w"))
        .unwrap();
    client.handle_disconnected(PeerId(6));
    assert!(
        matches!(client.poll_event(), Some(LightPushClientEvent::Failed { id, error: LightPushError::Disconnected, .. }) if id == id4)
    );
    let late = Now {
        instant: t0.instant + Duration::from_secs(11),
        ..t0
    };
    assert!(client.poll_timeout().unwrap() <= late.instant);
    client.handle_timeout(late);
    assert!(
        matches!(client.poll_event(), Some(LightPushClientEvent::Failed { id, error: LightPushError::Timeout, .. }) if id == id3)
    );
    assert_eq!(client.poll_event(), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary frames on both protocols: one bounded answer each, never a panic, and nothing
    /// invalid reaches the relay.
    #[test]
    fn server_survives_arbitrary_frames(frame in proptest::collection::vec(any::<u8>(), 0..512), legacy in any::<bool>()) {
        let mut s = LightPushServer::new(LightPushServerConfig { autosharding: Some((1, 8)), ..LightPushServerConfig::default() });
        let mut r = FakeRelay { topic: shard(), peers: 1, published: Vec::new() };
        let protocol = if legacy { Protocol::LightPushLegacy } else { Protocol::LightPush };
        s.handle_request(now(), PeerId(1), protocol, 1, &frame, &mut r);
        let t = s.poll_transmit().unwrap();
        prop_assert!(t.bytes.len() <= 64 * 1024);
        prop_assert!(s.poll_transmit().is_none());
        for (_, m) in &r.published {
            prop_assert!(m.validate().is_ok());
        }
    }
}
