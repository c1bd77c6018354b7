//! Byte vectors V4–V7 of `vectors/waku.json` (written by js-waku) decode into the right requests
//! and the service machines answer them; the answers round-trip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    missing_docs
)]

use std::time::Instant;

use prost::Message as _;
use serde_json::Value;
use waku_core::filter::{FilterServer, FilterServerConfig, FilterSubscribeType};
use waku_core::lightpush::{LightPushServer, LightPushServerConfig, Publish, PublishRejected};
use waku_core::message::{MessageHash, WakuMessage};
use waku_core::metadata::{Metadata, MetadataConfig, MetadataEvent};
use waku_core::net::{FrameKind, Now, PeerId, Protocol};
use waku_core::store::{
    ArchivedMessage, Criteria, Direction, MemoryStore, MessageStore, StoreQuery, StoreServer,
    StoreServerConfig,
};
use waku_core::topic::{ContentTopic, PubsubTopic};

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/waku.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn request(id: &str) -> Vec<u8> {
    let v = vectors();
    let r = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()
        .clone();
    hex::decode(r["protobuf"].as_str().unwrap()).unwrap()
}

fn v1() -> (PubsubTopic, WakuMessage, MessageHash) {
    let v = vectors();
    let m = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "V1")
        .unwrap()
        .clone();
    let msg = WakuMessage::decode(&hex::decode(m["protobuf"].as_str().unwrap()).unwrap()).unwrap();
    let topic = PubsubTopic::new(m["pubsub_topic"].as_str().unwrap()).unwrap();
    let hash: MessageHash = m["hash"].as_str().unwrap().parse().unwrap();
    (topic, msg, hash)
}

/// V1's timestamp as "now", so the archive's ±20 s rule accepts it.
fn now() -> Now {
    Now {
        instant: Instant::now(),
        unix_nanos: 1_704_067_200_000_000_000,
    }
}

struct Recorder(Vec<(PubsubTopic, WakuMessage)>, usize);

impl Publish for Recorder {
    fn publish(
        &mut self,
        _now: Now,
        topic: &PubsubTopic,
        message: &WakuMessage,
    ) -> Result<usize, PublishRejected> {
        self.0.push((topic.clone(), message.clone()));
        Ok(self.1)
    }
}

#[test]
fn v4_lightpush_request_is_published() {
    let (topic, msg, _) = v1();
    let frame = request("V4");
    let req = proto::waku::LightPushRequest::decode(frame.as_slice()).unwrap();
    assert_eq!(req.request_id, "00000000-0000-4000-8000-000000000001");
    assert_eq!(req.pubsub_topic.as_deref(), Some("/waku/2/rs/1/7"));

    let mut server = LightPushServer::new(LightPushServerConfig::default());
    let mut relay = Recorder(Vec::new(), 3);
    server.handle_request(
        now(),
        PeerId(9),
        Protocol::LightPush,
        11,
        &frame,
        &mut relay,
    );
    assert_eq!(relay.0, vec![(topic, msg)]);
    let t = server.poll_transmit().unwrap();
    assert_eq!(
        (t.to, t.protocol, t.kind),
        (PeerId(9), Protocol::LightPush, FrameKind::Response(11))
    );
    let resp = proto::waku::LightPushResponse::decode(t.bytes.as_slice()).unwrap();
    assert_eq!(resp.request_id, req.request_id);
    assert_eq!(resp.status_code, 200);
    assert_eq!(resp.relay_peer_count, Some(3));
    assert_eq!(
        proto::waku::LightPushResponse::decode(resp.encode_to_vec().as_slice()).unwrap(),
        resp
    );
}

#[test]
fn v5_store_query_is_answered() {
    let frame = request("V5");
    let (request_id, q) = StoreQuery::decode(&frame).unwrap();
    assert_eq!(request_id, "00000000-0000-4000-8000-000000000002");
    assert!(q.include_data);
    assert_eq!(q.direction, Direction::Forward);
    assert_eq!(q.page_size, Some(20));
    assert_eq!(q.cursor, None);
    let Criteria::Content {
        topics: Some(f),
        time,
    } = &q.criteria
    else {
        panic!("a content query");
    };
    assert_eq!(f.pubsub_topic.as_str(), "/waku/2/rs/1/7");
    assert_eq!(
        f.content_topics,
        vec![ContentTopic::new("/status-rs/1/interop/proto").unwrap()]
    );
    assert_eq!((time.start, time.end), (None, None));
    // Our own encoding of the query is the vector byte for byte.
    assert_eq!(q.to_proto(request_id.clone()).encode_to_vec(), frame);

    let (topic, msg, hash) = v1();
    let mut store = MemoryStore::new();
    store
        .insert(&[ArchivedMessage::new(topic.clone(), msg.clone())])
        .unwrap();
    let mut server = StoreServer::new(Box::new(store), StoreServerConfig::default(), now());
    server.handle_request(now(), PeerId(2), 5, &frame);
    let t = server.poll_transmit().unwrap();
    assert_eq!(t.kind, FrameKind::Response(5));
    let resp = proto::waku::StoreQueryResponse::decode(t.bytes.as_slice()).unwrap();
    assert_eq!(resp.request_id, request_id);
    assert_eq!(resp.status_code, Some(200));
    assert_eq!(resp.messages.len(), 1);
    let kv = &resp.messages[0];
    assert_eq!(kv.message_hash.as_deref(), Some(hash.as_bytes().as_slice()));
    assert_eq!(kv.pubsub_topic.as_deref(), Some(topic.as_str()));
    assert_eq!(
        WakuMessage::try_from(kv.message.clone().unwrap()).unwrap(),
        msg
    );
    assert_eq!(resp.pagination_cursor, None);
    assert_eq!(
        proto::waku::StoreQueryResponse::decode(resp.encode_to_vec().as_slice()).unwrap(),
        resp
    );
}

#[test]
fn v6_filter_subscribe_is_accepted() {
    let frame = request("V6");
    let req = proto::waku::FilterSubscribeRequest::decode(frame.as_slice()).unwrap();
    assert_eq!(
        FilterSubscribeType::try_from(req.filter_subscribe_type).unwrap(),
        FilterSubscribeType::Subscribe
    );
    assert_eq!(req.request_id, "00000000-0000-4000-8000-000000000003");
    let mut server = FilterServer::new(FilterServerConfig::default());
    server.handle_request(now(), PeerId(4), 1, &frame);
    let resp = proto::waku::FilterSubscribeResponse::decode(
        server.poll_transmit().unwrap().bytes.as_slice(),
    )
    .unwrap();
    assert_eq!(
        (resp.request_id.as_str(), resp.status_code),
        (req.request_id.as_str(), 200)
    );
    assert_eq!(
        server.subscriptions_of(PeerId(4)),
        vec![(
            PubsubTopic::new("/waku/2/rs/1/7").unwrap(),
            ContentTopic::new("/status-rs/1/interop/proto").unwrap()
        )]
    );
    // V1 is on the subscribed topics: it is pushed with its pubsub topic set.
    let (topic, msg, _) = v1();
    server.handle_message(now(), &topic, &msg);
    let push = server.poll_transmit().unwrap();
    assert_eq!(
        (push.to, push.protocol, push.kind),
        (PeerId(4), Protocol::FilterPush, FrameKind::Stream)
    );
    let p = proto::waku::MessagePush::decode(push.bytes.as_slice()).unwrap();
    assert_eq!(p.pubsub_topic.as_deref(), Some("/waku/2/rs/1/7"));
    assert_eq!(WakuMessage::try_from(p.waku_message.unwrap()).unwrap(), msg);
}

#[test]
fn v7_metadata_request_is_learned_and_answered() {
    let frame = request("V7");
    let req = proto::waku::WakuMetadataRequest::decode(frame.as_slice()).unwrap();
    assert_eq!(req.cluster_id, Some(1));
    assert_eq!(req.shards, (0..8).collect::<Vec<u32>>());

    // A node on cluster 1 learns the peer and answers with its own metadata, shards unpacked.
    let mut m = Metadata::new(MetadataConfig {
        cluster_id: 1,
        shards: vec![7, 3],
        ..MetadataConfig::default()
    });
    m.handle_request(now(), PeerId(3), 8, &frame);
    let t = m.poll_transmit().unwrap();
    assert_eq!(t.kind, FrameKind::Response(8));
    assert_eq!(t.bytes, hex::decode("080110031007").unwrap());
    let resp = proto::waku::WakuMetadataResponse::decode(t.bytes.as_slice()).unwrap();
    assert_eq!((resp.cluster_id, resp.shards), (Some(1), vec![3, 7]));
    assert!(matches!(
        m.poll_event(),
        Some(MetadataEvent::Learned { peer: PeerId(3), ref metadata }) if metadata.shards.len() == 8
    ));
    assert_eq!(m.poll_event(), None);

    // A Status node (cluster 16) reports the mismatch so the driver can hang up.
    let mut status_node = Metadata::new(MetadataConfig {
        cluster_id: 16,
        shards: vec![32],
        ..MetadataConfig::default()
    });
    status_node.handle_request(now(), PeerId(3), 1, &frame);
    let _ = status_node.poll_event();
    assert_eq!(
        status_node.poll_event(),
        Some(MetadataEvent::ClusterMismatch {
            peer: PeerId(3),
            theirs: 1,
            ours: 16
        })
    );
}

#[test]
fn packed_and_unpacked_shards_decode_alike() {
    // The same request with `shards` packed (field 2, wire type 2).
    let packed = hex::decode("080112080001020304050607").unwrap();
    let a = proto::waku::WakuMetadataRequest::decode(packed.as_slice()).unwrap();
    let b = proto::waku::WakuMetadataRequest::decode(request("V7").as_slice()).unwrap();
    assert_eq!(a, b);
}
