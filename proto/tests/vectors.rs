//! The cross-implementation vectors of `vectors/waku.json` (a copy of `../shared/vectors/`),
//! decoded and re-encoded byte for byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proto::Message;
use proto::waku::{
    FilterSubscribeRequest, LightPushRequest, StoreQueryRequest, WakuMessage, WakuMetadataRequest,
    filter_subscribe_request::FilterSubscribeType,
};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/waku.json");
    let text = std::fs::read_to_string(path).expect("vectors/waku.json is committed");
    serde_json::from_str(&text).expect("valid JSON")
}

fn find<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .expect("array")
        .iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("vector {id} missing"))
}

fn bytes_of(v: &Value) -> Vec<u8> {
    hex::decode(v["protobuf"].as_str().expect("hex string")).expect("valid hex")
}

/// The committed copy is the shared one, when the shared folder is beside the checkout.
#[test]
fn committed_vectors_match_shared() {
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/vectors/waku.json"
    );
    if let Ok(theirs) = std::fs::read_to_string(shared) {
        let ours =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/waku.json"))
                .unwrap();
        assert_eq!(
            ours, theirs,
            "vectors/waku.json is out of date with ../shared/vectors"
        );
    }
}

#[test]
fn message_vectors_round_trip_byte_for_byte() {
    let v = vectors();
    let mut seen = 0;
    for m in v["messages"].as_array().unwrap() {
        let bytes = bytes_of(m);
        let msg = WakuMessage::decode(bytes.as_slice()).unwrap();
        assert_eq!(msg.encode_to_vec(), bytes, "vector {}", m["id"]);
        seen += 1;
    }
    assert_eq!(seen, 3);
}

#[test]
fn message_vectors_decode_to_their_description() {
    let v = vectors();
    let v1 = WakuMessage::decode(bytes_of(find(&v["messages"], "V1")).as_slice()).unwrap();
    assert_eq!(v1.payload, b"Hello, Waku!");
    assert_eq!(v1.content_topic, "/status-rs/1/interop/proto");
    assert_eq!(v1.version, Some(0));
    assert_eq!(v1.timestamp, Some(1_704_067_200_000_000_000));
    assert_eq!(v1.ephemeral, Some(false));
    assert_eq!(v1.meta, None);

    let v2 = WakuMessage::decode(bytes_of(find(&v["messages"], "V2")).as_slice()).unwrap();
    assert_eq!(v2.payload, [1, 2, 3, 4]);
    assert_eq!(v2.meta.as_deref(), Some(&[5u8, 6, 7, 8][..]));
    assert_eq!(v2.ephemeral, Some(true));

    let v3 = WakuMessage::decode(bytes_of(find(&v["messages"], "V3")).as_slice()).unwrap();
    assert_eq!(v3.payload, [0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(v3.content_topic, "/a/1/b/proto");
    assert_eq!(v3.version, Some(1));
    assert_eq!(v3.timestamp, Some(-5));
    assert_eq!(v3.meta.as_deref(), Some(&[1u8][..]));
    assert_eq!(v3.ephemeral, Some(true));
}

#[test]
fn request_vectors_round_trip_byte_for_byte() {
    let v = vectors();
    let reqs = &v["requests"];

    let v4_bytes = bytes_of(find(reqs, "V4"));
    let v4 = LightPushRequest::decode(v4_bytes.as_slice()).unwrap();
    assert_eq!(v4.request_id, "00000000-0000-4000-8000-000000000001");
    assert_eq!(v4.pubsub_topic.as_deref(), Some("/waku/2/rs/1/7"));
    let v1 = WakuMessage::decode(bytes_of(find(&v["messages"], "V1")).as_slice()).unwrap();
    assert_eq!(v4.message.as_ref(), Some(&v1));
    assert_eq!(v4.encode_to_vec(), v4_bytes);

    let v5_bytes = bytes_of(find(reqs, "V5"));
    let v5 = StoreQueryRequest::decode(v5_bytes.as_slice()).unwrap();
    assert_eq!(v5.request_id, "00000000-0000-4000-8000-000000000002");
    assert!(v5.include_data);
    assert_eq!(v5.pubsub_topic.as_deref(), Some("/waku/2/rs/1/7"));
    assert_eq!(v5.content_topics, ["/status-rs/1/interop/proto"]);
    assert!(v5.pagination_forward);
    assert_eq!(v5.pagination_limit, Some(20));
    assert_eq!(v5.encode_to_vec(), v5_bytes);

    let v6_bytes = bytes_of(find(reqs, "V6"));
    let v6 = FilterSubscribeRequest::decode(v6_bytes.as_slice()).unwrap();
    assert_eq!(v6.request_id, "00000000-0000-4000-8000-000000000003");
    assert_eq!(v6.filter_subscribe_type(), FilterSubscribeType::Subscribe);
    assert_eq!(v6.pubsub_topic.as_deref(), Some("/waku/2/rs/1/7"));
    assert_eq!(v6.content_topics, ["/status-rs/1/interop/proto"]);
    assert_eq!(v6.encode_to_vec(), v6_bytes);

    let v7_bytes = bytes_of(find(reqs, "V7"));
    let v7 = WakuMetadataRequest::decode(v7_bytes.as_slice()).unwrap();
    assert_eq!(v7.cluster_id, Some(1));
    assert_eq!(v7.shards, (0..8).collect::<Vec<u32>>());
    assert_eq!(
        v7.encode_to_vec(),
        v7_bytes,
        "shards are written unpacked, as js-waku does"
    );
}

#[test]
fn packed_shards_are_accepted_too() {
    // cluster 1, shards [0..8] packed: field 2, wire type 2, length 8.
    let packed = hex::decode("08011208000102030405060 7".replace(' ', "")).unwrap();
    let m = WakuMetadataRequest::decode(packed.as_slice()).unwrap();
    assert_eq!(m.shards, (0..8).collect::<Vec<u32>>());
}

#[test]
fn unknown_fields_are_skipped() {
    let v = vectors();
    let mut bytes = bytes_of(find(&v["messages"], "V1"));
    // Field 40, varint 7; field 41, length-delimited "xy".
    bytes.extend_from_slice(&[0xc0, 0x02, 0x07, 0xca, 0x02, 0x02, b'x', b'y']);
    let msg = WakuMessage::decode(bytes.as_slice()).unwrap();
    assert_eq!(msg.payload, b"Hello, Waku!");
}

#[test]
fn length_prefix_beyond_input_is_rejected() {
    // Field 1 (payload), length 2^31, followed by 3 bytes only.
    let bytes = [0x0a, 0x80, 0x80, 0x80, 0x80, 0x08, 1, 2, 3];
    assert!(WakuMessage::decode(&bytes[..]).is_err());
    // A nested message whose length runs past its parent.
    let bytes = [0xaa, 0x01, 0xff, 0xff, 0x03, 0x0a];
    assert!(LightPushRequest::decode(&bytes[..]).is_err());
}
