//! Every hash, message and autosharding vector of `vectors/waku.json`, through the validated
//! `waku_core` types.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use waku_core::message::{MessageHash, WakuMessage, relay_message_id};
use waku_core::topic::{ContentTopic, PubsubTopic, autoshard, autoshard_index, status};

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/waku.json");
    let text = std::fs::read_to_string(path).expect("vectors/waku.json is committed");
    serde_json::from_str(&text).expect("valid JSON")
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

#[test]
fn rfc14_hashes() {
    let v = vectors();
    let set = &v["message_hash_rfc14"];
    let pubsub: PubsubTopic = set["pubsub_topic"].as_str().unwrap().parse().unwrap();
    let content: ContentTopic = set["content_topic"].as_str().unwrap().parse().unwrap();
    let ts = i64::from_be_bytes(hex_of(&set["timestamp_hex"]).try_into().unwrap());
    let cases = set["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let meta = hex_of(&case["meta"]);
        let mut msg =
            WakuMessage::new(content.clone(), hex_of(&case["payload"])).with_timestamp(ts);
        if !meta.is_empty() {
            msg = msg.with_meta(meta);
        }
        let expected: MessageHash = case["hash"].as_str().unwrap().parse().unwrap();
        assert_eq!(msg.hash(&pubsub), expected, "{case}");
        // The timestamp is set, so js-waku's rule agrees.
        assert_eq!(msg.hash_js_waku(&pubsub), expected);
        assert_eq!(
            msg.hash(&pubsub).to_string(),
            case["hash"].as_str().unwrap()
        );
        // An empty meta present on the wire hashes like an absent one.
        if msg.meta.is_none() {
            assert_eq!(msg.clone().with_meta(vec![]).hash(&pubsub), expected);
        }
    }
}

#[test]
fn message_vectors_decode_hash_and_reencode() {
    let v = vectors();
    let messages = v["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    let mut hashed = 0;
    for m in messages {
        let bytes = hex_of(&m["protobuf"]);
        let msg = WakuMessage::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", m["id"]));
        // js-waku writes version and ephemeral explicitly, as `encode` does: byte-exact.
        assert_eq!(msg.encode(), bytes, "{}", m["id"]);
        assert_eq!(msg.encoded_len(), bytes.len());
        let raw: proto::waku::WakuMessage = msg.clone().into();
        assert_eq!(WakuMessage::try_from(raw).unwrap(), msg);
        assert_eq!(
            relay_message_id(&bytes),
            <[u8; 32]>::try_from(sha256(&bytes)).unwrap()
        );
        if let Some(h) = m.get("hash") {
            let ps: PubsubTopic = m["pubsub_topic"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                msg.hash(&ps).to_string(),
                h.as_str().unwrap(),
                "{}",
                m["id"]
            );
            hashed += 1;
        }
        match m["id"].as_str().unwrap() {
            "V1" => {
                assert_eq!(msg.payload, b"Hello, Waku!");
                assert_eq!(msg.content_topic.as_str(), "/status-rs/1/interop/proto");
                assert_eq!(msg.version, 0);
                assert_eq!(msg.timestamp, Some(1_704_067_200_000_000_000));
                assert!(!msg.ephemeral);
                assert_eq!(msg.meta, None);
            }
            "V2" => {
                assert_eq!(msg.payload, [1, 2, 3, 4]);
                assert_eq!(msg.meta.as_deref(), Some(&[5u8, 6, 7, 8][..]));
                assert!(msg.ephemeral);
            }
            "V3" => {
                assert_eq!(msg.payload, [0xde, 0xad, 0xbe, 0xef]);
                assert_eq!(msg.content_topic.as_str(), "/a/1/b/proto");
                assert_eq!(msg.version, 1);
                assert_eq!(msg.timestamp, Some(-5));
                assert_eq!(msg.meta.as_deref(), Some(&[1u8][..]));
                assert!(msg.ephemeral);
            }
            other => panic!("unexpected vector {other}"),
        }
    }
    assert_eq!(hashed, 2);
}

#[test]
fn autosharding_vectors() {
    let v = vectors();
    let set = &v["autosharding"];
    let cluster = u16::try_from(set["cluster_id"].as_u64().unwrap()).unwrap();
    let shards = u16::try_from(set["num_shards"].as_u64().unwrap()).unwrap();
    let cases = set["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for case in cases {
        let ct: ContentTopic = case["content_topic"].as_str().unwrap().parse().unwrap();
        let shard = u16::try_from(case["shard"].as_u64().unwrap()).unwrap();
        assert_eq!(autoshard_index(&ct, shards).unwrap(), shard, "{case}");
        let ps = autoshard(&ct, cluster, shards).unwrap();
        assert_eq!(ps, PubsubTopic::static_shard(cluster, shard).unwrap());
        assert_eq!(ps.as_str(), format!("/waku/2/rs/{cluster}/{shard}"));
    }
}

#[test]
fn keccak_vector() {
    let v = vectors();
    assert_eq!(
        hex::encode(status::keccak256(b"")),
        v["keccak256_empty"].as_str().unwrap()
    );
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}
