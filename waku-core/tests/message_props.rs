//! Property tests for messages and topics: the decoder never panics, valid messages round-trip,
//! topic parsing is total and consistent. Failing cases print the generated input (proptest's
//! persisted seed replays it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use waku_core::message::{
    MAX_MESSAGE_SIZE, MAX_META_SIZE, MessageError, WakuMessage, relay_message_id,
};
use waku_core::topic::{
    ContentTopic, MAX_SHARD_INDEX, PubsubTopic, PubsubTopicError, autoshard, autoshard_index,
};

/// The same checks as the `waku_message_decode` fuzz body (`waku_core::fuzzing`, behind the
/// `fuzzing` feature): decoding never panics, and what decodes re-encodes to the same message.
fn decode_checks(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(msg) = WakuMessage::decode(bytes) else {
        return Ok(());
    };
    prop_assert!(bytes.len() <= MAX_MESSAGE_SIZE);
    prop_assert!(msg.meta.as_ref().is_none_or(|m| m.len() <= MAX_META_SIZE));
    prop_assert!(!msg.content_topic.as_str().is_empty());
    let again = WakuMessage::decode_with_limit(&msg.encode(), MAX_MESSAGE_SIZE + 16).unwrap();
    prop_assert_eq!(&again, &msg);
    prop_assert_eq!(again.encode(), msg.encode());
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    }
}

fn content_topic() -> impl Strategy<Value = ContentTopic> {
    prop_oneof![
        "[a-z0-9-]{1,12}".prop_map(|s| ContentTopic::new(s).unwrap()),
        (
            proptest::option::of(0u32..3),
            "[a-z0-9-]{1,10}",
            "[0-9]{1,3}",
            "[a-z0-9-]{1,10}",
            "[a-z0-9]{1,6}"
        )
            .prop_map(|(g, a, v, n, e)| ContentTopic::from_parts(g, &a, &v, &n, &e).unwrap()),
        ".{1,40}".prop_map(|s| ContentTopic::new(s).unwrap()),
    ]
}

fn message() -> impl Strategy<Value = WakuMessage> {
    (
        proptest::collection::vec(any::<u8>(), 0..600),
        content_topic(),
        any::<u32>(),
        proptest::option::of(any::<i64>()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=MAX_META_SIZE)),
        any::<bool>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
    )
        .prop_map(
            |(payload, content_topic, version, timestamp, meta, ephemeral, rate_limit_proof)| {
                WakuMessage {
                    payload,
                    content_topic,
                    version,
                    timestamp,
                    meta,
                    ephemeral,
                    rate_limit_proof,
                }
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_checks(&bytes)?;
    }

    #[test]
    fn valid_messages_round_trip(msg in message()) {
        prop_assert_eq!(msg.validate(), Ok(()));
        let bytes = msg.encode();
        prop_assert_eq!(bytes.len(), msg.encoded_len());
        let back = WakuMessage::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &msg);
        let ps = PubsubTopic::static_shard(1, 7).unwrap();
        prop_assert_eq!(back.hash(&ps), msg.hash(&ps));
        prop_assert_eq!(relay_message_id(&bytes), relay_message_id(&back.encode()));
        let raw: proto::waku::WakuMessage = msg.clone().into();
        prop_assert_eq!(WakuMessage::try_from(raw).unwrap(), msg);
    }

    #[test]
    fn mutated_encodings_never_panic(
        msg in message(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = msg.encode();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        decode_checks(&bytes)?;
    }

    #[test]
    fn hash_depends_on_every_hashed_field(msg in message(), which in 0usize..4) {
        let ps = PubsubTopic::default_waku();
        let mut other = msg.clone();
        match which {
            0 => other.payload.push(1),
            1 => other.content_topic = ContentTopic::new(format!("{}x", msg.content_topic)).unwrap(),
            2 => other.timestamp = Some(msg.timestamp.unwrap_or(0).wrapping_add(1).max(1)),
            _ => other.meta = Some(vec![0xa5; msg.meta.as_ref().map_or(1, |m| m.len() % MAX_META_SIZE + 1)]),
        }
        if which == 3 && other.meta == msg.meta {
            other.meta.as_mut().unwrap()[0] ^= 0xff;
        }
        prop_assert_ne!(msg.hash(&ps), other.hash(&ps));
        // Fields outside the hash do not change it.
        let mut same = msg.clone();
        same.version = same.version.wrapping_add(1);
        same.ephemeral = !same.ephemeral;
        same.rate_limit_proof = Some(vec![1, 2, 3]);
        prop_assert_eq!(msg.hash(&ps), same.hash(&ps));
    }

    #[test]
    fn meta_over_cap_is_rejected(extra in 1usize..100) {
        let msg = WakuMessage::new(ContentTopic::new("/a/1/b/c").unwrap(), vec![])
            .with_meta(vec![0; MAX_META_SIZE + extra]);
        let err = MessageError::MetaTooLarge { len: MAX_META_SIZE + extra, max: MAX_META_SIZE };
        prop_assert_eq!(WakuMessage::decode(&msg.encode()), Err(err));
    }

    #[test]
    fn content_topic_parse_is_total(s in ".{0,80}") {
        if let Ok(t) = ContentTopic::new(s.clone()) {
            prop_assert_eq!(t.as_str(), s.as_str());
            if let Ok(p) = t.parts() {
                let rebuilt = ContentTopic::from_parts(
                    p.generation, p.application, p.version, p.name, p.encoding,
                );
                // The generation may be written with leading zeros; otherwise the parts
                // rebuild the exact string.
                if let Ok(r) = rebuilt {
                    prop_assert_eq!(r.parts().unwrap(), p);
                }
            }
            let _ = autoshard(&t, 1, 8);
        }
    }

    #[test]
    fn structured_topics_round_trip(
        g in proptest::option::of(any::<u32>()),
        a in "[^/]{1,10}", v in "[^/]{1,4}", n in "[^/]{1,10}", e in "[^/]{1,6}",
        shards in 1u16..=1024,
    ) {
        let t = ContentTopic::from_parts(g, &a, &v, &n, &e).unwrap();
        let p = t.parts().unwrap();
        prop_assert_eq!((p.generation, p.application, p.version, p.name, p.encoding),
            (g, a.as_str(), v.as_str(), n.as_str(), e.as_str()));
        if matches!(g, None | Some(0)) {
            let i = autoshard_index(&t, shards).unwrap();
            prop_assert!(i < shards);
            // The shard depends on application and version only.
            let other = ContentTopic::from_parts(None, &a, &v, "other-name", "other").unwrap();
            prop_assert_eq!(autoshard_index(&other, shards).unwrap(), i);
        } else {
            prop_assert!(autoshard(&t, 1, shards).is_err());
        }
    }

    #[test]
    fn pubsub_topics_round_trip(cluster in any::<u16>(), shard in any::<u16>()) {
        match PubsubTopic::static_shard(cluster, shard) {
            Ok(t) => {
                prop_assert!(shard <= MAX_SHARD_INDEX);
                let s = t.shard().unwrap();
                prop_assert_eq!((s.cluster, s.shard), (cluster, shard));
                prop_assert_eq!(t.to_string().parse::<PubsubTopic>().unwrap(), t);
            }
            Err(e) => {
                prop_assert!(shard > MAX_SHARD_INDEX);
                prop_assert_eq!(e, PubsubTopicError::ShardOutOfRange { shard, max: MAX_SHARD_INDEX });
            }
        }
    }

    #[test]
    fn pubsub_parse_is_total(s in "(/waku/2/rs/)?.{0,30}") {
        if let Ok(t) = s.parse::<PubsubTopic>() {
            prop_assert_eq!(t.as_str(), s.as_str());
            if let Some(sh) = t.shard() {
                prop_assert_eq!(PubsubTopic::static_shard(sh.cluster, sh.shard).unwrap(), t);
            }
        }
    }
}
