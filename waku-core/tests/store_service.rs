//! The store service and client on a virtual clock: archive rules, B.8 validation answered with
//! 400, Bob paging through 500 messages he missed (forward and backward, pages of 7), the
//! retention timer, and a property test feeding the server arbitrary requests.
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
use waku_core::message::{MessageHash, WakuMessage};
use waku_core::net::{FrameKind, Now, PeerId, Protocol};
use waku_core::store::{
    ArchiveOutcome, MAX_PAGE_SIZE, MemoryStore, QueryLimits, RetentionPolicy, SqliteStore,
    StoreClient, StoreClientConfig, StoreClientEvent, StoreEntry, StoreQuery, StoreQueryError,
    StoreServer, StoreServerConfig, StoreServerEvent,
};
use waku_core::topic::{ContentTopic, PubsubTopic};

const SEC: i64 = 1_000_000_000;
const DAY: i64 = 24 * 3600 * SEC;

fn start() -> Now {
    Now {
        instant: Instant::now(),
        unix_nanos: 1_750_000_000 * SEC,
    }
}

fn later(now: Now, d: Duration) -> Now {
    Now {
        instant: now.instant + d,
        unix_nanos: now.unix_nanos + i64::try_from(d.as_nanos()).unwrap(),
    }
}

fn shard() -> PubsubTopic {
    PubsubTopic::static_shard(16, 32).unwrap()
}

fn bob_topic() -> ContentTopic {
    ContentTopic::new("/waku/1/0x1a2b3c4d/rfc26").unwrap()
}

fn msg(ct: &ContentTopic, ts: i64, payload: &[u8]) -> WakuMessage {
    WakuMessage::new(ct.clone(), payload.to_vec()).with_timestamp(ts)
}

fn sqlite_server(now: Now, config: StoreServerConfig) -> StoreServer {
    StoreServer::new(
        Box::new(SqliteStore::open_in_memory().unwrap()),
        config,
        now,
    )
}

fn raw_query(
    server: &mut StoreServer,
    now: Now,
    req: &proto::waku::StoreQueryRequest,
) -> proto::waku::StoreQueryResponse {
    server.handle_request(now, PeerId(1), 3, &req.encode_to_vec());
    let t = server.poll_transmit().unwrap();
    assert_eq!(
        (t.protocol, t.kind),
        (Protocol::StoreQuery, FrameKind::Response(3))
    );
    proto::waku::StoreQueryResponse::decode(t.bytes.as_slice()).unwrap()
}

#[test]
fn archive_rules() {
    let now = start();
    let mut s = sqlite_server(now, StoreServerConfig::default());
    let ct = bob_topic();
    let p = shard();
    assert_eq!(
        s.archive(now, &p, &msg(&ct, now.unix_nanos, b"ok")),
        ArchiveOutcome::Queued
    );
    assert_eq!(
        s.archive(now, &p, &msg(&ct, now.unix_nanos, b"ok")),
        ArchiveOutcome::Duplicate
    );
    assert_eq!(
        s.archive(
            now,
            &p,
            &msg(&ct, now.unix_nanos, b"eph").with_ephemeral(true)
        ),
        ArchiveOutcome::Ephemeral
    );
    assert_eq!(
        s.archive(now, &p, &WakuMessage::new(ct.clone(), b"no ts".to_vec())),
        ArchiveOutcome::NoTimestamp
    );
    assert_eq!(
        s.archive(now, &p, &msg(&ct, now.unix_nanos + 20 * SEC, b"edge")),
        ArchiveOutcome::Queued
    );
    assert_eq!(
        s.archive(now, &p, &msg(&ct, now.unix_nanos - 21 * SEC, b"old")),
        ArchiveOutcome::OutsideTimeWindow
    );
    assert_eq!(
        s.archive(now, &p, &msg(&ct, now.unix_nanos + 21 * SEC, b"future")),
        ArchiveOutcome::OutsideTimeWindow
    );
    // The batch is written on the flush timer; a duplicate after the write is skipped by the
    // archive itself.
    assert_eq!(s.pending(), 2);
    let t = s.poll_timeout().unwrap();
    s.handle_timeout(Now { instant: t, ..now });
    assert_eq!(s.pending(), 0);
    assert_eq!(s.store_mut().count().unwrap(), 2);
    s.archive(now, &p, &msg(&ct, now.unix_nanos, b"ok"));
    assert_eq!(s.flush(), 0);
    assert_eq!(s.stats().archived, 2);
}

#[test]
fn invalid_queries_get_400_with_a_reason() {
    let now = start();
    let mut s = sqlite_server(now, StoreServerConfig::default());
    let base = proto::waku::StoreQueryRequest {
        request_id: "q".into(),
        include_data: true,
        ..Default::default()
    };
    let cases = [
        proto::waku::StoreQueryRequest {
            pubsub_topic: Some(shard().as_str().into()),
            ..base.clone()
        },
        proto::waku::StoreQueryRequest {
            content_topics: vec![bob_topic().as_str().into()],
            ..base.clone()
        },
        proto::waku::StoreQueryRequest {
            message_hashes: vec![vec![1; 32]],
            time_start: Some(5),
            ..base.clone()
        },
        proto::waku::StoreQueryRequest {
            message_hashes: vec![vec![1; 32]],
            pubsub_topic: Some(shard().as_str().into()),
            content_topics: vec![bob_topic().as_str().into()],
            ..base.clone()
        },
        proto::waku::StoreQueryRequest {
            message_hashes: vec![vec![1; 31]],
            ..base.clone()
        },
        proto::waku::StoreQueryRequest {
            pagination_cursor: Some(vec![0; 32]),
            ..base.clone()
        },
        proto::waku::StoreQueryRequest {
            pagination_cursor: Some(vec![7; 5]),
            ..base.clone()
        },
        proto::waku::StoreQueryRequest {
            pagination_cursor: Some(vec![7; 32]),
            ..base.clone()
        },
        proto::waku::StoreQueryRequest {
            time_start: Some(10),
            time_end: Some(5),
            ..base.clone()
        },
        proto::waku::StoreQueryRequest {
            pubsub_topic: Some(shard().as_str().into()),
            content_topics: (0..101).map(|i| format!("/a/1/{i}/p")).collect(),
            ..base.clone()
        },
    ];
    for (i, req) in cases.iter().enumerate() {
        let resp = raw_query(&mut s, now, req);
        assert_eq!(resp.status_code, Some(400), "case {i}");
        assert_eq!(resp.request_id, "q", "case {i}");
        assert!(!resp.status_desc.unwrap_or_default().is_empty(), "case {i}");
        assert!(resp.messages.is_empty());
    }
    s.handle_request(now, PeerId(1), 3, &[0xff, 0x01]);
    let resp = proto::waku::StoreQueryResponse::decode(s.poll_transmit().unwrap().bytes.as_slice())
        .unwrap();
    assert_eq!(resp.status_code, Some(400));
    // Page sizes: 0 means the default, more than 100 is clamped.
    for i in 0..150 {
        s.archive(now, &shard(), &msg(&bob_topic(), now.unix_nanos - i, b"x"));
    }
    let sizes = [
        (None, 20),
        (Some(0), 20),
        (Some(7), 7),
        (Some(1000), usize::try_from(MAX_PAGE_SIZE).unwrap()),
    ];
    for (limit, n) in sizes {
        let resp = raw_query(
            &mut s,
            now,
            &proto::waku::StoreQueryRequest {
                pagination_limit: limit,
                ..base.clone()
            },
        );
        assert_eq!((resp.status_code, resp.messages.len()), (Some(200), n));
        assert!(
            resp.messages
                .iter()
                .all(|m| m.message_hash.is_some() && m.pubsub_topic.is_some())
        );
    }
    // A presence query: hashes only.
    let h = WakuMessage::hash(&msg(&bob_topic(), now.unix_nanos, b"x"), &shard());
    let resp = raw_query(
        &mut s,
        now,
        &proto::waku::StoreQueryRequest {
            message_hashes: vec![h.0.to_vec(), vec![9; 32]],
            include_data: false,
            ..base
        },
    );
    assert_eq!(resp.messages.len(), 1);
    assert_eq!(
        resp.messages[0].message_hash.as_deref(),
        Some(h.0.as_slice())
    );
    assert!(resp.messages[0].message.is_none());
}

/// Moves frames between a store client and a server until both are quiet; returns the events.
fn run(client: &mut StoreClient, server: &mut StoreServer, now: Now) -> Vec<StoreClientEvent> {
    let mut events = Vec::new();
    loop {
        let mut moved = false;
        while let Some(t) = client.poll_transmit() {
            moved = true;
            if let FrameKind::Request(id) = t.kind {
                server.handle_request(now, PeerId(50), id, &t.bytes);
            }
        }
        while let Some(t) = server.poll_transmit() {
            moved = true;
            if let FrameKind::Response(id) = t.kind {
                client.handle_response(now, PeerId(1), id, &t.bytes);
            }
        }
        while let Some(e) = client.poll_event() {
            events.push(e);
        }
        if !moved {
            return events;
        }
    }
}

fn pages(events: &[StoreClientEvent]) -> Vec<Vec<StoreEntry>> {
    events
        .iter()
        .filter_map(|e| match e {
            StoreClientEvent::Page {
                entries, rejected, ..
            } => {
                assert_eq!(*rejected, 0);
                Some(entries.clone())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn bob_pages_through_the_500_messages_he_missed() {
    let seed = 0x5eed_u64;
    println!("seed {seed}");
    let t0 = start();
    let mut server = sqlite_server(t0, StoreServerConfig::default());
    let alice = bob_topic();
    let noise = ContentTopic::new("/waku/1/0xdeadbeef/rfc26").unwrap();
    // Bob is offline while Alice sends 500 messages, one every 3 s (with other traffic between),
    // several sharing a timestamp so the hash breaks ties.
    let mut now = t0;
    let mut sent = Vec::new();
    for i in 0..500u32 {
        if i % 5 != 0 {
            now = later(now, Duration::from_secs(3));
        }
        let m = msg(&alice, now.unix_nanos, format!("alice {i}").as_bytes());
        assert_eq!(server.archive(now, &shard(), &m), ArchiveOutcome::Queued);
        sent.push(m.hash(&shard()));
        server.archive(
            now,
            &shard(),
            &msg(&noise, now.unix_nanos, format!("other {i}").as_bytes()),
        );
        if let Some(t) = server.poll_timeout().filter(|t| *t <= now.instant) {
            server.handle_timeout(Now { instant: t, ..now });
        }
    }
    // The expected order: (timestamp, hash), read from the archive once the last batch is in.
    server.flush();
    let mut expected: Vec<(i64, MessageHash)> = Vec::new();
    {
        let mut q = StoreQuery::topics(shard(), [alice.clone()])
            .forward()
            .page_size(100);
        loop {
            let page = waku_core::store::run_query(server.store_mut(), &q).unwrap();
            expected.extend(page.entries.iter().map(|e| (e.timestamp(), e.hash)));
            match page.cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
    }
    assert_eq!(expected.len(), 500);
    assert_eq!(
        expected.iter().map(|e| e.1).collect::<BTreeSet<_>>(),
        sent.iter().copied().collect()
    );
    assert!(expected.windows(2).all(|w| w[0] < w[1]));

    // Bob comes back and pages forward with pages of 7.
    now = later(now, Duration::from_secs(3600));
    let mut bob = StoreClient::new(StoreClientConfig::default(), [seed as u8; 32]);
    let q = StoreQuery::topics(shard(), [alice.clone()])
        .time_range(Some(t0.unix_nanos - 60 * SEC), Some(now.unix_nanos))
        .forward()
        .page_size(7);
    bob.query(now, PeerId(1), q.clone(), QueryLimits::default())
        .unwrap();
    let events = run(&mut bob, &mut server, now);
    let fwd = pages(&events);
    assert_eq!(fwd.len(), 72, "500 / 7 rounded up");
    assert!(fwd.iter().all(|p| p.len() <= 7));
    let got: Vec<MessageHash> = fwd.iter().flatten().map(|e| e.hash).collect();
    assert_eq!(
        got,
        expected.iter().map(|e| e.1).collect::<Vec<_>>(),
        "forward: all 500, in order, once"
    );
    assert!(matches!(
        events.last(),
        Some(StoreClientEvent::Finished {
            pages: 72,
            entries: 500,
            result: Ok(()),
            resume_cursor: None,
            ..
        })
    ));
    for e in fwd.iter().flatten() {
        let m = e.message.as_ref().unwrap();
        assert_eq!(m.content_topic, alice);
        assert_eq!(e.pubsub_topic.as_ref(), Some(&shard()));
    }

    // Backward: the newest page first, every page oldest-first; together the same 500.
    bob.query(now, PeerId(1), q.backward(), QueryLimits::default())
        .unwrap();
    let back = pages(&run(&mut bob, &mut server, now));
    assert_eq!(back.len(), 72);
    for p in &back {
        let ts: Vec<i64> = p
            .iter()
            .map(|e| e.message.as_ref().unwrap().timestamp.unwrap())
            .collect();
        assert!(
            ts.windows(2).all(|w| w[0] <= w[1]),
            "a page is listed oldest first"
        );
    }
    let mut all: Vec<MessageHash> = Vec::new();
    for p in back.iter().rev() {
        all.extend(p.iter().map(|e| e.hash));
    }
    assert_eq!(
        all,
        expected.iter().map(|e| e.1).collect::<Vec<_>>(),
        "backward: all 500, in order, once"
    );

    // A limit stops early and hands back the cursor to resume from.
    bob.query(
        now,
        PeerId(1),
        StoreQuery::topics(shard(), [alice]).forward().page_size(7),
        QueryLimits {
            max_pages: 3,
            max_entries: 1000,
        },
    )
    .unwrap();
    let ev = run(&mut bob, &mut server, now);
    assert!(matches!(
        ev.last(),
        Some(StoreClientEvent::Finished { pages: 3, entries: 21, resume_cursor: Some(c), result: Ok(()), .. }) if *c == expected[20].1
    ));
}

#[test]
fn retention_timer_removes_old_messages_and_keeps_young_ones() {
    let t0 = start();
    let config = StoreServerConfig {
        retention: RetentionPolicy {
            max_age: Some(Duration::from_secs(30 * 24 * 3600)),
            max_messages: None,
            interval: Duration::from_secs(3600),
        },
        ..StoreServerConfig::default()
    };
    let mut s = sqlite_server(t0, config);
    // Day 0 and day 20 messages.
    let ct = bob_topic();
    s.archive(t0, &shard(), &msg(&ct, t0.unix_nanos, b"day 0"));
    let d20 = later(t0, Duration::from_secs(20 * 24 * 3600));
    s.archive(d20, &shard(), &msg(&ct, d20.unix_nanos, b"day 20"));
    s.flush();
    // Walk the clock to day 31 through every timer.
    let end = later(t0, Duration::from_secs(31 * 24 * 3600));
    let mut now = t0;
    let mut applied = Vec::new();
    while let Some(t) = s.poll_timeout().filter(|t| *t <= end.instant) {
        now = later(now, t.saturating_duration_since(now.instant));
        s.handle_timeout(now);
        while let Some(e) = s.poll_event() {
            applied.push(e);
        }
    }
    assert!(
        applied
            .iter()
            .any(|e| matches!(e, StoreServerEvent::RetentionApplied { by_age: 1, .. }))
    );
    let left = waku_core::store::run_query(s.store_mut(), &StoreQuery::all()).unwrap();
    assert_eq!(left.entries.len(), 1);
    assert_eq!(left.entries[0].message.payload, b"day 20");
    assert!(left.entries[0].timestamp() > end.unix_nanos - 30 * DAY);

    // A count limit keeps the newest.
    let mut s = StoreServer::new(
        Box::new(MemoryStore::new()),
        StoreServerConfig {
            retention: RetentionPolicy {
                max_age: None,
                max_messages: Some(3),
                interval: Duration::from_secs(60),
            },
            ..StoreServerConfig::default()
        },
        t0,
    );
    for i in 0..5 {
        s.archive(t0, &shard(), &msg(&ct, t0.unix_nanos + i, b"n"));
    }
    s.handle_timeout(later(t0, Duration::from_secs(60)));
    let left = waku_core::store::run_query(s.store_mut(), &StoreQuery::all().forward()).unwrap();
    let ts: Vec<i64> = left
        .entries
        .iter()
        .map(|e| e.timestamp() - t0.unix_nanos)
        .collect();
    assert_eq!(ts, vec![2, 3, 4]);
}

#[test]
fn client_reports_errors() {
    let now = start();
    let mut client = StoreClient::new(StoreClientConfig::default(), [4; 32]);
    let mut server = sqlite_server(now, StoreServerConfig::default());
    // A cursor the server does not know: 400 surfaces as a typed error.
    client
        .query(
            now,
            PeerId(1),
            StoreQuery::all().with_cursor(Some(MessageHash([5; 32]))),
            QueryLimits::default(),
        )
        .unwrap();
    let ev = run(&mut client, &mut server, now);
    assert!(matches!(
        ev.last(),
        Some(StoreClientEvent::Finished {
            result: Err(StoreQueryError::Status { code: 400, .. }),
            ..
        })
    ));
    // Invalid queries are refused at the call site.
    assert!(
        client
            .query(
                now,
                PeerId(1),
                StoreQuery::hashes([]),
                QueryLimits::default()
            )
            .is_err()
    );
    // Timeout and disconnect.
    client
        .query(now, PeerId(1), StoreQuery::all(), QueryLimits::default())
        .unwrap();
    client
        .query(now, PeerId(2), StoreQuery::all(), QueryLimits::default())
        .unwrap();
    while client.poll_transmit().is_some() {}
    client.handle_disconnected(PeerId(2));
    client.handle_timeout(later(now, Duration::from_secs(21)));
    let errs: Vec<StoreQueryError> = std::iter::from_fn(|| client.poll_event())
        .filter_map(|e| match e {
            StoreClientEvent::Finished { result: Err(e), .. } => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(
        errs,
        vec![StoreQueryError::Disconnected, StoreQueryError::Timeout]
    );
    // A response carrying a forged entry: the entry is rejected, the rest kept.
    client
        .query(now, PeerId(1), StoreQuery::all(), QueryLimits::default())
        .unwrap();
    let t = client.poll_transmit().unwrap();
    let FrameKind::Request(id) = t.kind else {
        panic!()
    };
    let req = proto::waku::StoreQueryRequest::decode(t.bytes.as_slice()).unwrap();
    let good = msg(&bob_topic(), now.unix_nanos, b"good");
    let forged = msg(&bob_topic(), now.unix_nanos, b"forged");
    let resp = proto::waku::StoreQueryResponse {
        request_id: req.request_id,
        status_code: Some(200),
        messages: vec![
            proto::waku::WakuMessageKeyValue {
                message_hash: Some(good.hash(&shard()).0.to_vec()),
                message: Some((&good).into()),
                pubsub_topic: Some(shard().as_str().into()),
            },
            proto::waku::WakuMessageKeyValue {
                message_hash: Some(good.hash(&shard()).0.to_vec()),
                message: Some((&forged).into()),
                pubsub_topic: Some(shard().as_str().into()),
            },
        ],
        ..Default::default()
    };
    client.handle_response(now, PeerId(1), id, &resp.encode_to_vec());
    match client.poll_event() {
        Some(StoreClientEvent::Page {
            entries,
            rejected: 1,
            ..
        }) => assert_eq!(entries.len(), 1),
        other => panic!("{other:?}"),
    }
}

fn arb_request() -> impl Strategy<Value = Vec<u8>> {
    let hash = proptest::collection::vec(any::<u8>(), 30..34);
    let structured = (
        any::<bool>(),
        proptest::option::of(prop_oneof![
            Just("/waku/2/rs/16/32".to_string()),
            "[a-z/]{0,8}"
        ]),
        proptest::collection::vec(
            prop_oneof![Just("/waku/1/0x1a2b3c4d/rfc26".to_string()), "[a-z/]{0,8}"],
            0..4,
        ),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<i64>()),
        proptest::collection::vec(hash.clone(), 0..3),
        proptest::option::of(hash),
        any::<bool>(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(include_data, pubsub, content, ts, te, hashes, cursor, fwd, limit)| {
                proto::waku::StoreQueryRequest {
                    request_id: "p".into(),
                    include_data,
                    pubsub_topic: pubsub,
                    content_topics: content,
                    time_start: ts,
                    time_end: te,
                    message_hashes: hashes,
                    pagination_cursor: cursor,
                    pagination_forward: fwd,
                    pagination_limit: limit,
                }
                .encode_to_vec()
            },
        );
    prop_oneof![structured, proptest::collection::vec(any::<u8>(), 0..64)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Arbitrary requests against an archive of 150 messages: one answer each, a status code
    /// always set, never more than a page, never a panic.
    #[test]
    fn server_survives_arbitrary_requests(frames in proptest::collection::vec(arb_request(), 1..8)) {
        let now = start();
        let mut s = StoreServer::new(Box::new(MemoryStore::new()), StoreServerConfig::default(), now);
        for i in 0..150 {
            s.archive(now, &shard(), &msg(&bob_topic(), now.unix_nanos - i, b"x"));
        }
        for f in &frames {
            s.handle_request(now, PeerId(1), 1, f);
            let t = s.poll_transmit().unwrap();
            prop_assert!(t.bytes.len() <= Protocol::StoreQuery.max_frame_len());
            let r = proto::waku::StoreQueryResponse::decode(t.bytes.as_slice()).unwrap();
            let code = r.status_code.unwrap();
            prop_assert!(code == 200 || code == 400, "code {}", code);
            prop_assert!(r.messages.len() <= usize::try_from(MAX_PAGE_SIZE).unwrap());
            prop_assert!(s.poll_transmit().is_none());
        }
    }
}
