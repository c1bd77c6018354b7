//! Fuzz bodies for the service machines and the whole node (feature `fuzzing`), shared by the
//! cargo-fuzz targets in `fuzz/` and by the tests below, which replay a small corpus.
//!
//! Each body feeds arbitrary bytes to a machine as peers would and checks what must hold for any
//! input: no panic, one bounded answer per request, state within the named limits.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    // Indexes below are taken modulo the slice length.
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use prost::Message as _;

use crate::filter::{FilterClient, FilterClientConfig, FilterServer, FilterServerConfig};
use crate::lightpush::{
    LightPushClient, LightPushClientConfig, LightPushServer, LightPushServerConfig, Publish,
    PublishRejected,
};
use crate::message::WakuMessage;
use crate::metadata::{MAX_SHARDS, Metadata, MetadataConfig};
use crate::net::{FrameKind, Machine, Now, PeerId, Protocol};
use crate::peer_exchange::{
    MAX_PEERS_PER_RESPONSE, PeerExchangeClient, PeerExchangeClientConfig, PeerExchangeServer,
    PeerExchangeServerConfig,
};
use crate::roles::Capabilities;
use crate::store::{
    MAX_PAGE_SIZE, MemoryStore, QueryLimits, StoreClient, StoreClientConfig, StoreQuery,
    StoreServer, StoreServerConfig,
};
use crate::topic::{ContentTopic, PubsubTopic};

use super::{WakuNode, WakuNodeConfig};

/// A fixed base for the virtual clock; fuzz bodies never read the real one.
fn base() -> Instant {
    // `Instant` has no constructor: take one anchor per process and count from it.
    use std::sync::OnceLock;
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    *ANCHOR.get_or_init(anchor)
}

#[allow(clippy::disallowed_methods)] // The fuzz harness plays the driver and reads the clock once.
fn anchor() -> Instant {
    Instant::now()
}

fn now(offset_ms: u64) -> Now {
    Now {
        instant: base() + Duration::from_millis(offset_ms),
        unix_nanos: 1_750_000_000_000_000_000 + i64::try_from(offset_ms).unwrap_or(0) * 1_000_000,
    }
}

fn shard() -> PubsubTopic {
    PubsubTopic::static_shard(16, 32).expect("valid shard")
}

fn topic(i: u8) -> ContentTopic {
    ContentTopic::new(format!("/fuzz/1/t{}/proto", i % 4)).expect("valid topic")
}

/// Splits fuzz input into `(selector byte, frame)` chunks: `[sel, len, bytes...]`.
fn chunks(data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [sel, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (frame, next) = tail.split_at(n);
        out.push((*sel, frame));
        rest = next;
    }
    out
}

/// Store service: every chunk is a request frame from peer `sel % 4`; the archive holds a few
/// messages. One answer per request, a status always set, never more than a page.
pub fn store_server(data: &[u8]) {
    let t = now(0);
    let mut s = StoreServer::new(
        Box::new(MemoryStore::new()),
        StoreServerConfig::default(),
        t,
    );
    for i in 0..30u8 {
        let m = WakuMessage::new(topic(i), vec![i]).with_timestamp(t.unix_nanos - i64::from(i));
        s.archive(t, &shard(), &m);
    }
    for (sel, frame) in chunks(data) {
        s.handle_request(t, PeerId(u64::from(sel % 4)), 1, frame);
        let tx = s.poll_transmit().expect("every request is answered");
        assert!(tx.bytes.len() <= Protocol::StoreQuery.max_frame_len());
        let r = proto::waku::StoreQueryResponse::decode(tx.bytes.as_slice()).expect("our encoding");
        assert!(r.status_code.is_some());
        assert!(r.messages.len() <= usize::try_from(MAX_PAGE_SIZE).unwrap_or(usize::MAX));
        assert!(s.poll_transmit().is_none());
    }
}

/// Store client: a running query fed arbitrary answers (right and wrong request ids, wrong
/// peers); it never panics and never holds more than its limits.
pub fn store_client(data: &[u8]) {
    let t = now(0);
    let mut c = StoreClient::new(StoreClientConfig::default(), [1; 32]);
    let _ = c.query(
        t,
        PeerId(1),
        StoreQuery::topics(shard(), [topic(0)]),
        QueryLimits {
            max_pages: 4,
            max_entries: 50,
        },
    );
    let mut id = 0;
    for (sel, frame) in chunks(data) {
        while let Some(tx) = c.poll_transmit() {
            if let FrameKind::Request(i) = tx.kind {
                id = i;
            }
        }
        c.handle_response(t, PeerId(u64::from(sel % 2)), id, frame);
        while c.poll_event().is_some() {}
        if sel % 5 == 0 {
            let _ = c.query(t, PeerId(1), StoreQuery::all(), QueryLimits::default());
        }
    }
    c.handle_timeout(now(60_000));
}

/// Filter service: chunks are subscribe-protocol requests from peers, interleaved with relayed
/// messages and clock steps. Subscriptions stay within the configured limits.
pub fn filter_server(data: &[u8]) {
    let config = FilterServerConfig {
        max_peers: 4,
        max_criteria_per_peer: 20,
        ..FilterServerConfig::default()
    };
    let mut s = FilterServer::new(config);
    let mut clock = 0u64;
    for (sel, frame) in chunks(data) {
        let t = now(clock);
        match sel % 8 {
            0 => {
                let m =
                    WakuMessage::new(topic(frame.first().copied().unwrap_or(0)), frame.to_vec())
                        .with_timestamp(t.unix_nanos);
                s.handle_message(t, &shard(), &m);
            }
            1 => {
                clock += 61_000;
                s.handle_timeout(now(clock));
            }
            2 => s.handle_disconnected(PeerId(u64::from(sel % 6))),
            _ => {
                s.handle_request(t, PeerId(u64::from(sel % 6)), 1, frame);
                let tx = s.poll_transmit().expect("every request is answered");
                assert_eq!(tx.kind, FrameKind::Response(1));
            }
        }
        while let Some(tx) = s.poll_transmit() {
            assert!(tx.bytes.len() <= Protocol::FilterPush.max_frame_len());
        }
        assert!(s.subscribed_peers() <= 4);
        for p in 0..6 {
            assert!(s.subscriptions_of(PeerId(p)).len() <= 20);
        }
    }
}

/// Filter client: subscribed through a service node, fed arbitrary answers and pushes from
/// several peers and clock steps.
pub fn filter_client(data: &[u8]) {
    let mut c = FilterClient::new(FilterClientConfig::default(), [2; 32]);
    let t = now(0);
    for p in 1..4 {
        c.handle_connected(t, PeerId(p), &[Protocol::FilterSubscribe]);
    }
    let _ = c.subscribe(t, shard(), [topic(0), topic(1)]);
    let mut clock = 0u64;
    let mut last_id = 0;
    for (sel, frame) in chunks(data) {
        while let Some(tx) = c.poll_transmit() {
            if let FrameKind::Request(i) = tx.kind {
                last_id = i;
            }
        }
        let t = now(clock);
        let peer = PeerId(u64::from(sel % 4));
        match sel % 6 {
            0 => c.handle_push(t, peer, frame),
            1 => {
                clock += u64::from(frame.first().copied().unwrap_or(1)) * 1000;
                c.handle_timeout(now(clock));
            }
            2 => c.handle_disconnected(t, peer),
            3 => c.handle_connected(t, peer, &[Protocol::FilterSubscribe]),
            _ => c.handle_response(t, peer, last_id, frame),
        }
        while c.poll_event().is_some() {}
    }
}

struct Sink;

impl Publish for Sink {
    fn publish(
        &mut self,
        _now: Now,
        topic: &PubsubTopic,
        message: &WakuMessage,
    ) -> Result<usize, PublishRejected> {
        assert!(
            message.validate().is_ok(),
            "only valid messages reach the relay"
        );
        if *topic == shard() {
            Ok(1)
        } else {
            Err(PublishRejected::UnsupportedTopic)
        }
    }
}

/// Lightpush service: chunks are v3 or legacy requests; one bounded answer each, and only
/// valid messages reach the relay.
pub fn lightpush_server(data: &[u8]) {
    let mut s = LightPushServer::new(LightPushServerConfig {
        autosharding: Some((16, 8)),
        ..LightPushServerConfig::default()
    });
    for (sel, frame) in chunks(data) {
        let protocol = if sel % 2 == 0 {
            Protocol::LightPush
        } else {
            Protocol::LightPushLegacy
        };
        s.handle_request(
            now(0),
            PeerId(u64::from(sel)),
            protocol,
            3,
            frame,
            &mut Sink,
        );
        let tx = s.poll_transmit().expect("every request is answered");
        assert_eq!((tx.protocol, tx.kind), (protocol, FrameKind::Response(3)));
        assert!(s.poll_transmit().is_none());
    }
}

/// Lightpush client: pushes in flight fed arbitrary answers.
pub fn lightpush_client(data: &[u8]) {
    let mut c = LightPushClient::new(LightPushClientConfig::default(), [3; 32]);
    let m = WakuMessage::new(topic(0), b"x".to_vec()).with_timestamp(now(0).unix_nanos);
    let mut ids = Vec::new();
    for (sel, frame) in chunks(data) {
        if sel % 3 == 0 {
            let _ = c.push(now(0), PeerId(1), Some(&shard()), &m);
        }
        while let Some(tx) = c.poll_transmit() {
            if let FrameKind::Request(i) = tx.kind {
                ids.push(i);
            }
        }
        let id = ids
            .get(usize::from(sel) % ids.len().max(1))
            .copied()
            .unwrap_or(0);
        c.handle_response(now(0), PeerId(u64::from(sel % 2)), id, frame);
        while c.poll_event().is_some() {}
    }
    c.handle_timeout(now(60_000));
}

/// Metadata: requests and answers from arbitrary peers; recorded shards stay valid.
pub fn metadata(data: &[u8]) {
    let mut m = Metadata::new(MetadataConfig {
        cluster_id: 16,
        shards: vec![32, 64],
        ..MetadataConfig::default()
    });
    for (sel, frame) in chunks(data) {
        let peer = PeerId(u64::from(sel % 3));
        if sel % 2 == 0 {
            m.handle_request(now(0), peer, 1, frame);
        } else {
            m.handle_connected(now(0), peer, &[Protocol::Metadata]);
            m.handle_response(now(0), peer, 1, frame);
        }
        while m.poll_transmit().is_some() {}
        while m.poll_event().is_some() {}
        if let Some(p) = m.peer(peer) {
            assert!(p.shards.len() <= MAX_SHARDS && p.shards.iter().all(|s| *s <= 1023));
        }
    }
}

/// Peer exchange: server requests and client answers.
pub fn peer_exchange(data: &[u8]) {
    let mut s = PeerExchangeServer::new(PeerExchangeServerConfig::default(), [4; 32]);
    let mut c = PeerExchangeClient::new(PeerExchangeClientConfig::default());
    for i in 0..70u8 {
        let _ = s.add_record_bytes(now(0), vec![i; 1 + usize::from(i % 7)]);
    }
    for (sel, frame) in chunks(data) {
        if sel % 2 == 0 {
            s.handle_request(now(0), PeerId(1), 1, frame);
            let tx = s.poll_transmit().expect("every request is answered");
            let rpc =
                proto::waku::PeerExchangeRpc::decode(tx.bytes.as_slice()).expect("our encoding");
            assert!(rpc.response.map_or(0, |r| r.peer_infos.len()) <= MAX_PEERS_PER_RESPONSE);
        } else {
            let _ = c.request(now(0), PeerId(2), u64::from(sel));
            let id = match c.poll_transmit().map(|t| t.kind) {
                Some(FrameKind::Request(i)) => i,
                _ => 0,
            };
            c.handle_response(now(0), PeerId(2), id, frame);
            while c.poll_event().is_some() {}
        }
    }
}

/// A whole full node fed arbitrary frames on every protocol, from several peers, with the clock
/// moving: it never panics and every transmit stays within its protocol's frame limit.
pub fn node(data: &[u8]) {
    let t = now(0);
    let config = WakuNodeConfig::new(Capabilities::FULL, 16, vec![32]);
    let Ok(mut n) = WakuNode::new(config, None, [5; 32], t) else {
        return;
    };
    for p in 1..4 {
        n.handle_connected(t, PeerId(p), &Protocol::ALL);
    }
    let mut clock = 0u64;
    for (sel, frame) in chunks(data) {
        let t = now(clock);
        let protocol = Protocol::ALL[usize::from(sel) % Protocol::ALL.len()];
        let kind = match (sel / 8) % 3 {
            0 => FrameKind::Request(u64::from(sel)),
            1 => FrameKind::Response(u64::from(sel % 4)),
            _ => FrameKind::Stream,
        };
        let peer = PeerId(u64::from(sel % 5));
        if sel == 255 {
            clock += 30_000;
            n.handle_timeout(now(clock));
        } else if sel == 254 {
            n.handle_disconnected(t, peer);
        } else {
            n.handle_frame(t, peer, protocol, kind, frame);
        }
        while let Some(tx) = n.poll_transmit() {
            assert!(
                tx.bytes.len() <= tx.protocol.max_frame_len(),
                "{} bytes on {}",
                tx.bytes.len(),
                tx.protocol
            );
        }
        while n.poll_event().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    /// A small corpus: real requests (the V4–V7 vectors, store and filter requests) wrapped in
    /// chunks, plus seeded random inputs.
    fn corpus() -> Vec<Vec<u8>> {
        let wrap = |sel: u8, frame: &[u8]| {
            let mut v = vec![sel, u8::try_from(frame.len().min(255)).unwrap_or(255)];
            v.extend_from_slice(&frame[..frame.len().min(255)]);
            v
        };
        let store_q = StoreQuery::topics(shard(), [topic(0)])
            .forward()
            .page_size(5)
            .to_proto("x".into())
            .encode_to_vec();
        let sub = proto::waku::FilterSubscribeRequest {
            request_id: "s".into(),
            filter_subscribe_type: 1,
            pubsub_topic: Some(shard().as_str().into()),
            content_topics: vec![topic(0).as_str().into()],
        }
        .encode_to_vec();
        let v4 = hex::decode("0a2430303030303030302d303030302d343030302d383030302d303030303030303030303031a2010e2f77616b752f322f72732f312f37aa01390a0c48656c6c6f2c2057616b7521121a2f7374617475732d72732f312f696e7465726f702f70726f746f1800508080a896e08588a62ff80100").unwrap();
        let v7 = hex::decode("080110001001100210031004100510061007").unwrap();
        let mut out = vec![
            wrap(3, &store_q),
            [wrap(3, &sub), wrap(0, b"\x00abc"), wrap(4, &sub)].concat(),
            wrap(0, &v4),
            wrap(2, &v7),
        ];
        let mut rng = ChaCha20Rng::from_seed([8; 32]);
        for len in [0usize, 1, 7, 64, 300, 1500] {
            let mut v = vec![0u8; len];
            rng.fill_bytes(&mut v);
            out.push(v);
        }
        out
    }

    #[test]
    fn bodies_replay_the_corpus() {
        for input in corpus() {
            store_server(&input);
            store_client(&input);
            filter_server(&input);
            filter_client(&input);
            lightpush_server(&input);
            lightpush_client(&input);
            metadata(&input);
            peer_exchange(&input);
            node(&input);
        }
    }
}
