//! Behaviour of one node, driven by hand.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mvds::store::{MemoryStore, SyncStore};
use mvds::{
    Config, Event, GroupId, HandleError, MAX_BODY_BYTES, MAX_PAYLOAD_BYTES,
    MAX_RECORDS_PER_PAYLOAD, MessageId, Mode, Node, NotMvds, SendError,
};
use proto::Message as _;
use proto::mvds::{Message, Payload};

const G: GroupId = GroupId([1; 32]);

fn fast() -> Config {
    Config {
        backoff_base: 2,
        backoff_cap: 16,
        backoff_jitter: 0,
        online_jitter: 0,
        max_send_count: None,
    }
}

fn node(config: Config) -> Node<u64> {
    let mut n = Node::open(config, [0; 32], MemoryStore::new()).unwrap();
    n.add_peer(G, 2).unwrap();
    n
}

fn drain(n: &mut Node<u64>) -> Vec<(u64, Payload)> {
    let mut out = Vec::new();
    while let Some(t) = n.poll_transmit() {
        assert!(t.bytes.len() <= MAX_PAYLOAD_BYTES);
        out.push((t.to, Payload::decode(t.bytes.as_slice()).unwrap()));
    }
    out
}

fn message_payload(group: GroupId, ts: i64, body: &[u8]) -> Vec<u8> {
    Payload {
        messages: vec![Message {
            group_id: group.0.to_vec(),
            timestamp: ts,
            body: body.to_vec(),
        }],
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn not_mvds_changes_nothing() {
    let mut n = node(fast());
    n.send(G, b"x".to_vec(), Mode::Batch, 1).unwrap();
    let before = n.store_mut().load().unwrap();
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x08, 0x01],
        vec![0xff, 0xff, 0xff],
        Payload {
            acks: vec![vec![0; 31]],
            ..Default::default()
        }
        .encode_to_vec(),
        vec![0; MAX_PAYLOAD_BYTES + 1],
    ];
    for bytes in inputs {
        let err = n.handle_payload(2, &bytes).unwrap_err();
        assert!(err.is_not_mvds(), "{err}");
        assert_eq!(n.store_mut().load().unwrap(), before);
        assert_eq!(n.pending_acks(), 0);
        assert_eq!(n.pending_events(), 0);
        assert_eq!(n.outstanding_total(), 1);
    }
    assert!(matches!(
        n.handle_payload(2, &[]),
        Err(HandleError::NotMvds(NotMvds::Empty))
    ));
    assert_eq!(n.stats().payloads_not_mvds, 6);
}

#[test]
fn a_message_arriving_again_is_acked_again_and_delivered_once() {
    let mut n = node(fast());
    let bytes = message_payload(G, 5, b"hello");
    let id = MessageId::compute(&G, 5, b"hello");
    n.handle_payload(2, &bytes).unwrap();
    n.handle_payload(2, &bytes).unwrap(); // duplicate before the tick: one ack queued
    n.handle_tick().unwrap();
    let out = drain(&mut n);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.acks, vec![id.0.to_vec()]);
    assert!(matches!(n.poll_event(), Some(Event::Delivered(d)) if d.id == id && d.from == 2));
    assert_eq!(n.poll_event(), None);

    // Arrives again after the ack went out: acked again, not delivered.
    n.handle_payload(2, &bytes).unwrap();
    n.handle_tick().unwrap();
    let out = drain(&mut n);
    assert_eq!(out[0].1.acks, vec![id.0.to_vec()]);
    assert_eq!(n.poll_event(), None);
    assert_eq!(n.stats().messages_delivered, 1);
    assert_eq!(n.stats().messages_duplicate, 2);
    // Acks are not stored: nothing outstanding, nothing sent on later ticks.
    assert_eq!(n.outstanding_total(), 0);
    n.handle_tick().unwrap();
    assert!(drain(&mut n).is_empty());
}

#[test]
fn one_payload_per_peer_per_tick_carrying_everything_due() {
    let mut n = node(fast());
    n.add_peer(G, 3).unwrap();
    for i in 0..10u8 {
        let mode = if i.is_multiple_of(2) {
            Mode::Batch
        } else {
            Mode::Interactive
        };
        n.send(G, vec![i], mode, 1).unwrap();
    }
    // An offer from peer 2 and a message from peer 3, to answer in the same tick.
    let offered = MessageId([7; 32]);
    n.handle_payload(
        2,
        &Payload {
            offers: vec![offered.0.to_vec()],
            ..Default::default()
        }
        .encode_to_vec(),
    )
    .unwrap();
    n.handle_payload(3, &message_payload(G, 9, b"from 3"))
        .unwrap();
    n.handle_tick().unwrap();
    let out = drain(&mut n);
    assert_eq!(out.len(), 2, "one payload per peer");
    for (to, p) in &out {
        assert_eq!(p.messages.len(), 5);
        assert_eq!(p.offers.len(), 5);
        if *to == 2 {
            assert_eq!(p.requests, vec![offered.0.to_vec()]);
            assert!(p.acks.is_empty());
        } else {
            assert_eq!(p.acks.len(), 1);
            assert!(p.requests.is_empty());
        }
    }
    // Nothing is due on the next tick: the backoff holds.
    n.handle_tick().unwrap();
    assert!(drain(&mut n).is_empty());
    // After backoff_base epochs everything goes out again, in one payload per peer.
    n.handle_tick().unwrap();
    let out = drain(&mut n);
    assert_eq!(out.len(), 2);
}

#[test]
fn payloads_respect_the_caps_and_the_rest_waits() {
    let mut n = node(fast());
    let total = 2 * MAX_RECORDS_PER_PAYLOAD + 100;
    for i in 0..total {
        n.send(G, (i as u32).to_le_bytes().to_vec(), Mode::Interactive, 1)
            .unwrap();
    }
    let mut offered = std::collections::BTreeSet::new();
    for _ in 0..3 {
        n.handle_tick().unwrap();
        let out = drain(&mut n);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.offers.len(), MAX_RECORDS_PER_PAYLOAD);
        offered.extend(out[0].1.offers.iter().cloned());
    }
    // The third payload carries the last 100 never sent before the first retransmissions
    // (records are served by due epoch, then first come first served).
    assert_eq!(offered.len(), total);

    // Large bodies: the byte cap applies.
    let mut n = node(fast());
    for i in 0..5u8 {
        n.send(G, vec![i; 50_000], Mode::Batch, 1).unwrap();
    }
    let mut bodies = std::collections::BTreeSet::new();
    for _ in 0..3 {
        n.handle_tick().unwrap();
        let out = drain(&mut n);
        assert_eq!(
            out[0].1.messages.len(),
            2,
            "two 50 kB bodies fit in 128 KiB, three do not"
        );
        bodies.extend(out[0].1.messages.iter().map(|m| m.body[0]));
    }
    assert_eq!(bodies.len(), 5);
}

#[test]
fn send_is_validated() {
    let mut n = node(fast());
    assert!(matches!(
        n.send(G, vec![0; MAX_BODY_BYTES + 1], Mode::Batch, 1),
        Err(SendError::BodyTooLarge { .. })
    ));
    assert!(matches!(
        n.send(GroupId([9; 32]), vec![1], Mode::Batch, 1),
        Err(SendError::NoPeers)
    ));
    n.send(G, vec![1], Mode::Batch, 1).unwrap();
    assert!(matches!(
        n.send(G, vec![1], Mode::Batch, 1),
        Err(SendError::Duplicate)
    ));
    // A received message's id is taken too.
    n.handle_payload(2, &message_payload(G, 3, b"theirs"))
        .unwrap();
    assert!(matches!(
        n.send(G, b"theirs".to_vec(), Mode::Batch, 3),
        Err(SendError::Duplicate)
    ));
    // The largest body goes out alone in one payload.
    n.send(G, vec![7; MAX_BODY_BYTES], Mode::Batch, i64::MIN)
        .unwrap();
    n.handle_tick().unwrap();
    let sizes: Vec<usize> = drain(&mut n).iter().map(|p| p.1.messages.len()).collect();
    assert_eq!(sizes, vec![1]);
    n.handle_tick().unwrap();
    n.handle_tick().unwrap();
    assert!(!drain(&mut n).is_empty());
}

#[test]
fn backlog_per_peer_is_bounded() {
    let mut n = node(fast());
    let mut sent = 0usize;
    loop {
        match n.send(G, (sent as u64).to_le_bytes().to_vec(), Mode::Batch, 1) {
            Ok(_) => sent += 1,
            Err(SendError::Backlog) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(sent, mvds::MAX_OUTSTANDING_RECORDS_PER_PEER);
    assert_eq!(n.outstanding(&2), sent);
}

#[test]
fn retransmission_backs_off_exponentially_up_to_the_cap() {
    let mut n = node(fast());
    n.send(G, b"m".to_vec(), Mode::Batch, 1).unwrap();
    let mut sent_at = Vec::new();
    for _ in 0..80 {
        n.handle_tick().unwrap();
        if !drain(&mut n).is_empty() {
            sent_at.push(n.epoch());
        }
    }
    let gaps: Vec<u64> = sent_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(&gaps[..5], &[2, 4, 8, 16, 16]);
}

#[test]
fn jitter_comes_from_the_seed() {
    let run = |seed: [u8; 32]| {
        let cfg = Config {
            backoff_jitter: 10,
            ..fast()
        };
        let mut n = Node::open(cfg, seed, MemoryStore::<u64>::new()).unwrap();
        n.add_peer(G, 2).unwrap();
        n.send(G, b"m".to_vec(), Mode::Batch, 1).unwrap();
        let mut at = Vec::new();
        for _ in 0..200 {
            n.handle_tick().unwrap();
            if n.poll_transmit().is_some() {
                at.push(n.epoch());
            }
        }
        at
    };
    assert_eq!(run([1; 32]), run([1; 32]));
    assert_ne!(run([1; 32]), run([2; 32]));
}

#[test]
fn interactive_flow_offer_request_message_ack() {
    let mut a = node(fast());
    let mut b: Node<u64> = Node::open(fast(), [1; 32], MemoryStore::new()).unwrap();
    b.add_peer(G, 1).unwrap();
    let id = a.send(G, b"slow".to_vec(), Mode::Interactive, 4).unwrap();

    a.handle_tick().unwrap();
    let p = drain(&mut a).pop().unwrap().1;
    assert_eq!((p.offers.len(), p.messages.len()), (1, 0));
    b.handle_payload(1, &p.encode_to_vec()).unwrap();

    b.handle_tick().unwrap();
    let p = drain(&mut b).pop().unwrap().1;
    assert_eq!(p.requests, vec![id.0.to_vec()]);
    a.handle_payload(2, &p.encode_to_vec()).unwrap();

    a.handle_tick().unwrap();
    let p = drain(&mut a).pop().unwrap().1;
    assert_eq!((p.offers.len(), p.messages.len()), (0, 1));
    b.handle_payload(1, &p.encode_to_vec()).unwrap();
    assert!(matches!(b.poll_event(), Some(Event::Delivered(d)) if d.id == id));
    assert_eq!(b.outstanding_total(), 0, "the request is satisfied");

    b.handle_tick().unwrap();
    let p = drain(&mut b).pop().unwrap().1;
    assert_eq!(p.acks, vec![id.0.to_vec()]);
    a.handle_payload(2, &p.encode_to_vec()).unwrap();
    assert_eq!(a.poll_event(), Some(Event::Acked { peer: 2, id }));
    assert_eq!(a.outstanding_total(), 0);

    // An offer of something already held is acked at once.
    a.handle_payload(
        2,
        &Payload {
            offers: vec![id.0.to_vec()],
            ..Default::default()
        }
        .encode_to_vec(),
    )
    .unwrap();
    a.handle_tick().unwrap();
    assert_eq!(drain(&mut a).pop().unwrap().1.acks, vec![id.0.to_vec()]);
    // A stale request after the ack resurrects nothing.
    a.handle_payload(
        2,
        &Payload {
            requests: vec![id.0.to_vec()],
            ..Default::default()
        }
        .encode_to_vec(),
    )
    .unwrap();
    a.handle_tick().unwrap();
    assert!(drain(&mut a).is_empty());
}

#[test]
fn requests_from_outside_the_group_are_ignored() {
    let mut a = node(fast());
    let id = a.send(G, b"m".to_vec(), Mode::Interactive, 4).unwrap();
    a.handle_payload(
        99,
        &Payload {
            requests: vec![id.0.to_vec()],
            ..Default::default()
        }
        .encode_to_vec(),
    )
    .unwrap();
    a.handle_tick().unwrap();
    let out = drain(&mut a);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 2);
    assert_eq!(a.stats().requests_ignored, 1);
}

#[test]
fn offline_peers_get_nothing_and_online_ones_get_their_records_soon() {
    let cfg = Config {
        backoff_base: 100,
        backoff_cap: 1000,
        online_jitter: 3,
        ..fast()
    };
    let mut n = node(cfg);
    n.send(G, b"m".to_vec(), Mode::Batch, 1).unwrap();
    n.handle_tick().unwrap();
    assert_eq!(drain(&mut n).len(), 1); // first send; next one in 100 epochs
    n.handle_peer_offline(&2);
    n.send(G, b"n".to_vec(), Mode::Batch, 1).unwrap();
    for _ in 0..5 {
        n.handle_tick().unwrap();
        assert!(drain(&mut n).is_empty(), "nothing to an offline peer");
    }
    n.handle_peer_online(&2);
    let mut got = None;
    for k in 1..=5 {
        n.handle_tick().unwrap();
        let out = drain(&mut n);
        if let Some((_, p)) = out.into_iter().next() {
            got = Some((k, p.messages.len()));
            break;
        }
    }
    let (k, count) = got.expect("records resent soon after the peer came online");
    assert!(k <= 4, "within 1 + online_jitter epochs, took {k}");
    assert_eq!(
        count, 2,
        "both pending messages, not after the 100-epoch backoff"
    );
}

#[test]
fn records_expire_after_max_send_count() {
    let cfg = Config {
        max_send_count: Some(3),
        ..fast()
    };
    let mut n = node(cfg);
    let id = n.send(G, b"m".to_vec(), Mode::Batch, 1).unwrap();
    let mut sends = 0;
    for _ in 0..100 {
        n.handle_tick().unwrap();
        sends += drain(&mut n).len();
    }
    assert_eq!(sends, 3);
    assert_eq!(n.poll_event(), Some(Event::Expired { peer: 2, id }));
    assert_eq!(n.outstanding_total(), 0);
    assert_eq!(
        n.store().messages_len(),
        0,
        "the body is dropped with its last record"
    );
}

#[test]
fn removing_a_peer_drops_its_records() {
    let mut n = node(fast());
    n.add_peer(G, 3).unwrap();
    n.send(G, b"m".to_vec(), Mode::Batch, 1).unwrap();
    assert_eq!(n.outstanding_total(), 2);
    n.remove_peer(G, &2).unwrap();
    assert_eq!(n.outstanding_total(), 1);
    assert_eq!(n.peers_of(&G).copied().collect::<Vec<_>>(), vec![3]);
    n.remove_peer(G, &3).unwrap();
    assert_eq!(n.outstanding_total(), 0);
    assert_eq!(n.store().messages_len(), 0);
    assert!(matches!(
        n.send(G, b"again".to_vec(), Mode::Batch, 1),
        Err(SendError::NoPeers)
    ));
}

#[test]
fn a_full_event_queue_defers_messages_without_acking_them() {
    let mut n = node(fast());
    let mut ids = Vec::new();
    for i in 0..(mvds::MAX_PENDING_EVENTS + 10) as u32 {
        let body = i.to_le_bytes();
        ids.push(MessageId::compute(&G, 1, &body));
        n.handle_payload(2, &message_payload(G, 1, &body)).unwrap();
    }
    assert_eq!(n.pending_events(), mvds::MAX_PENDING_EVENTS);
    assert_eq!(n.stats().messages_deferred, 10);
    assert_eq!(n.pending_acks(), mvds::MAX_PENDING_ACKS_PER_PEER);
    // Drain, then the deferred ones are accepted when they come again.
    while n.poll_event().is_some() {}
    for i in mvds::MAX_PENDING_EVENTS as u32..(mvds::MAX_PENDING_EVENTS + 10) as u32 {
        n.handle_payload(2, &message_payload(G, 1, &i.to_le_bytes()))
            .unwrap();
    }
    assert_eq!(n.pending_events(), 10);
}

#[test]
fn one_to_one_groups_agree() {
    let alice = [0xa1; 32];
    let bob = [0xb0; 32];
    let mut a: Node<[u8; 32]> = Node::open(fast(), [0; 32], MemoryStore::new()).unwrap();
    let mut b: Node<[u8; 32]> = Node::open(fast(), [1; 32], MemoryStore::new()).unwrap();
    let g = GroupId::one_to_one(&alice, &bob);
    assert_eq!(g, GroupId::one_to_one(&bob, &alice));
    a.add_peer(g, bob).unwrap();
    b.add_peer(g, alice).unwrap();
    a.send(g, b"hi bob".to_vec(), Mode::Batch, 1).unwrap();
    a.handle_tick().unwrap();
    let t = a.poll_transmit().unwrap();
    assert_eq!(t.to, bob);
    b.handle_payload(alice, &t.bytes).unwrap();
    assert!(
        matches!(b.poll_event(), Some(Event::Delivered(d)) if d.group == g && d.body == b"hi bob")
    );
}
