//! Metadata exchange on connect, and peer exchange with a pluggable record type.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    missing_docs
)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use prost::Message as _;
use waku_core::metadata::{Metadata, MetadataConfig, MetadataEvent, PeerMetadata};
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol};
use waku_core::peer_exchange::{
    MAX_PEERS_PER_RESPONSE, PeerExchangeClient, PeerExchangeClientConfig, PeerExchangeClientEvent,
    PeerExchangeError, PeerExchangeServer, PeerExchangeServerConfig, PeerRecord,
};

fn now() -> Now {
    Now {
        instant: Instant::now(),
        unix_nanos: 1_750_000_000_000_000_000,
    }
}

fn config(cluster: u16, shards: Vec<u16>) -> MetadataConfig {
    MetadataConfig {
        cluster_id: cluster,
        shards,
        ..MetadataConfig::default()
    }
}

/// Two metadata machines connect to each other; returns the events of each.
fn exchange(a: &mut Metadata, b: &mut Metadata) -> (Vec<MetadataEvent>, Vec<MetadataEvent>) {
    let t = now();
    a.handle_connected(t, PeerId(2), &[Protocol::Metadata]);
    b.handle_connected(t, PeerId(1), &[Protocol::Metadata]);
    for _ in 0..4 {
        while let Some(x) = a.poll_transmit() {
            b.handle_frame(t, PeerId(1), x.protocol, x.kind, &x.bytes);
        }
        while let Some(x) = b.poll_transmit() {
            a.handle_frame(t, PeerId(2), x.protocol, x.kind, &x.bytes);
        }
    }
    let drain = |m: &mut Metadata| std::iter::from_fn(|| m.poll_event()).collect::<Vec<_>>();
    (drain(a), drain(b))
}

#[test]
fn same_cluster_learns_shards_both_ways() {
    let mut a = Metadata::new(config(1, vec![0, 1]));
    let mut b = Metadata::new(config(1, vec![5]));
    let (ea, eb) = exchange(&mut a, &mut b);
    assert_eq!(
        a.peer(PeerId(2)),
        Some(&PeerMetadata {
            cluster_id: Some(1),
            shards: vec![5]
        })
    );
    assert_eq!(b.peer(PeerId(1)).unwrap().shards, vec![0, 1]);
    assert!(
        !ea.iter()
            .chain(&eb)
            .any(|e| matches!(e, MetadataEvent::ClusterMismatch { .. }))
    );
    // Each side learned the other twice (its request and its answer).
    assert_eq!(ea.len(), 2);
    a.handle_disconnected(PeerId(2));
    assert_eq!(a.peer(PeerId(2)), None);
}

#[test]
fn other_cluster_is_reported_but_no_shards_is_fine() {
    let mut ours = Metadata::new(config(16, vec![32, 64]));
    let mut theirs = Metadata::new(config(1, vec![]));
    let (e, _) = exchange(&mut ours, &mut theirs);
    assert!(e.contains(&MetadataEvent::ClusterMismatch {
        peer: PeerId(2),
        theirs: 1,
        ours: 16
    }));
    // js-waku answers with its cluster and no shards: no mismatch on the same cluster.
    let mut node = Metadata::new(config(1, vec![0]));
    let js = proto::waku::WakuMetadataResponse {
        cluster_id: Some(1),
        shards: vec![],
    };
    node.handle_connected(now(), PeerId(7), &[Protocol::Metadata]);
    let t = node.poll_transmit().unwrap();
    let FrameKind::Request(id) = t.kind else {
        panic!()
    };
    node.handle_response(now(), PeerId(7), id, &js.encode_to_vec());
    assert_eq!(
        node.poll_event(),
        Some(MetadataEvent::Learned {
            peer: PeerId(7),
            metadata: PeerMetadata {
                cluster_id: Some(1),
                shards: vec![]
            }
        })
    );
    assert_eq!(node.poll_event(), None);
    // A peer that does not speak metadata is not asked.
    node.handle_connected(now(), PeerId(8), &[Protocol::Relay]);
    assert!(node.poll_transmit().is_none());
}

/// A record type of our own: `host:port` as UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Addr(String);

impl PeerRecord for Addr {
    fn to_bytes(&self) -> Vec<u8> {
        self.0.as_bytes().to_vec()
    }
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(bytes).ok()?;
        s.contains(':').then(|| Addr(s.to_owned()))
    }
}

fn ask(
    client: &mut PeerExchangeClient,
    server: &mut PeerExchangeServer,
    t: Now,
    n: u64,
) -> PeerExchangeClientEvent {
    client.request(t, PeerId(1), n).unwrap();
    let req = client.poll_transmit().unwrap();
    let FrameKind::Request(id) = req.kind else {
        panic!()
    };
    server.handle_request(t, PeerId(2), id, &req.bytes);
    let resp = server.poll_transmit().unwrap();
    assert_eq!(resp.kind, FrameKind::Response(id));
    client.handle_response(t, PeerId(1), id, &resp.bytes);
    client.poll_event().unwrap()
}

#[test]
fn peer_exchange_serves_random_distinct_records_that_expire() {
    let t = now();
    let mut server = PeerExchangeServer::new(PeerExchangeServerConfig::default(), [9; 32]);
    let mut client = PeerExchangeClient::new(PeerExchangeClientConfig::default());
    // Empty cache: 503.
    assert!(matches!(
        ask(&mut client, &mut server, t, 5),
        PeerExchangeClientEvent::Failed {
            error: PeerExchangeError::Status { code: 503, .. },
            ..
        }
    ));
    let all: Vec<Addr> = (0..100)
        .map(|i| Addr(format!("10.0.0.{i}:60000")))
        .collect();
    for a in &all {
        server.add_record(t, a).unwrap();
    }
    let PeerExchangeClientEvent::Records {
        records, rejected, ..
    } = ask(&mut client, &mut server, t, 10)
    else {
        panic!()
    };
    assert_eq!((records.len(), rejected), (10, 0));
    let decoded: BTreeSet<Addr> = records
        .iter()
        .map(|r| Addr::from_bytes(r).unwrap())
        .collect();
    assert_eq!(decoded.len(), 10, "records are distinct");
    // Asking for more than a response carries gets the cap.
    let PeerExchangeClientEvent::Records { records, .. } = ask(&mut client, &mut server, t, 1000)
    else {
        panic!()
    };
    assert_eq!(records.len(), MAX_PEERS_PER_RESPONSE);
    // Two samples differ (the server draws from its seeded RNG).
    let PeerExchangeClientEvent::Records { records: again, .. } =
        ask(&mut client, &mut server, t, 10)
    else {
        panic!()
    };
    assert_ne!(
        again,
        decoded.iter().map(PeerRecord::to_bytes).collect::<Vec<_>>()
    );
    // After the TTL the records are gone.
    let later = Now {
        instant: t.instant + Duration::from_secs(31 * 60),
        ..t
    };
    server.handle_timeout(later);
    assert_eq!(server.record_count(), 0);
    assert!(server.add_record_bytes(t, vec![]).is_err());
    assert!(server.add_record_bytes(t, vec![1; 2000]).is_err());
}

#[test]
fn peer_exchange_zero_and_malformed_requests() {
    let t = now();
    let mut server = PeerExchangeServer::new(PeerExchangeServerConfig::default(), [1; 32]);
    server.add_record_bytes(t, b"a:1".to_vec()).unwrap();
    let mut client = PeerExchangeClient::new(PeerExchangeClientConfig::default());
    assert!(client.request(t, PeerId(1), 0).is_err());
    for frame in [
        vec![0xffu8, 0xff],
        proto::waku::PeerExchangeRpc::default().encode_to_vec(),
    ] {
        server.handle_request(t, PeerId(3), 1, &frame);
        let resp =
            proto::waku::PeerExchangeRpc::decode(server.poll_transmit().unwrap().bytes.as_slice())
                .unwrap();
        assert_eq!(resp.response.unwrap().status_code, Some(400));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Arbitrary frames: one bounded answer, never a panic, never more records than the cap.
    #[test]
    fn px_server_survives_arbitrary_frames(frame in proptest::collection::vec(any::<u8>(), 0..64), n in 0usize..80) {
        let t = now();
        let mut server = PeerExchangeServer::new(PeerExchangeServerConfig::default(), [2; 32]);
        for i in 0..n {
            server.add_record_bytes(t, format!("r{i}").into_bytes()).unwrap();
        }
        server.handle_request(t, PeerId(1), 1, &frame);
        let resp = server.poll_transmit().unwrap();
        prop_assert!(resp.bytes.len() <= Protocol::PeerExchange.max_frame_len());
        let rpc = proto::waku::PeerExchangeRpc::decode(resp.bytes.as_slice()).unwrap();
        prop_assert!(rpc.response.unwrap().peer_infos.len() <= MAX_PEERS_PER_RESPONSE);
    }

    /// Arbitrary metadata frames never panic and record at most the valid shards.
    #[test]
    fn metadata_survives_arbitrary_frames(frame in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut m = Metadata::new(config(1, vec![0]));
        m.handle_request(now(), PeerId(1), 1, &frame);
        prop_assert!(m.poll_transmit().is_some());
        if let Some(p) = m.peer(PeerId(1)) {
            prop_assert!(p.shards.iter().all(|s| *s <= 1023));
        }
    }
}
