//! The design article's journey on the simulated network (`transports::memory`): Alice and
//! Bob and two full nodes; Alice adds Bob's chat key, gets his bundle, says hello, Bob replies;
//! Bob loses his connection, Alice sends 20 messages, Bob comes back and reads all 20 from the
//! store exactly once in clock order; then 5% loss on every link and 200 more messages, all
//! delivered exactly once and acked. A relaying full node reads none of it, and after the
//! negotiated topic is in use nothing Alice writes lands on a topic derived from Bob's key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod messenger_rig;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use messenger_rig::Net;
use payloads::MessageId;
use payloads::chat::Content;
use payloads::messenger::{ChatId, Draft, MessengerConfig, MessengerEvent};
use transports::memory::NodeId;
use waku_core::topic::status::StatusTopic;

fn received_texts(net: &Net, node: NodeId, chat: &ChatId) -> Vec<(MessageId, String)> {
    net.events(node)
        .iter()
        .filter_map(|e| match e {
            MessengerEvent::MessageReceived { chat: c, entry } if c == chat => {
                Some((entry.id, entry.message.text.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Alice and Bob as light nodes (lightpush, filter, store), as the design article has them.
#[test]
fn the_life_of_a_message_light_nodes() {
    journey(0x5eed_1001, MessengerConfig::default());
}

/// The same journey with Alice and Bob relaying.
#[test]
fn the_life_of_a_message_relay_nodes() {
    let mut config = MessengerConfig::default();
    config.waku.capabilities =
        waku_core::roles::Capabilities::LIGHT.with(waku_core::roles::Capability::Relay);
    journey(0x5eed_1002, config);
}

/// Alice writes to Bob over links that lose, duplicate, reorder and delay frames: every message
/// arrives exactly once, Bob's log is in Alice's order, and every message is acknowledged.
#[test]
fn one_to_one_over_a_hostile_network() {
    for seed in [0xc4a0_0001_u64, 0xc4a0_0002, 0xc4a0_0003] {
        hostile(seed);
    }
}

fn hostile(seed: u64) {
    let config = MessengerConfig::default();
    let mut net = Net::new(seed);
    let f1 = net.add_full_node(&config);
    let f2 = net.add_full_node(&config);
    let (alice, _) = net.add_messenger(config.clone());
    let (bob, _) = net.add_messenger(config);
    net.link(f1, f2);
    net.link(alice, f1);
    net.link(bob, f2);
    net.run_for(Duration::from_secs(5));
    let alice_key = *net.messenger(alice).public_key();
    let bob_key = *net.messenger(bob).public_key();
    net.with(alice, |m, now| m.add_contact(now, bob_key));
    assert!(net.run_until(Duration::from_secs(60), |n| {
        n.messenger(alice).has_bundle(&bob_key)
    }));
    net.set_link_everywhere(
        transports::memory::LinkConfig::new(messenger_rig::LATENCY)
            .with_jitter(Duration::from_millis(30))
            .with_loss(0.05)
            .with_duplicate(0.05)
            .with_reorder(0.1, Duration::from_millis(200)),
    );
    let to_bob = ChatId::OneToOne(bob_key);
    let to_alice = ChatId::OneToOne(alice_key);
    let mut sent = Vec::new();
    for i in 0..50 {
        let id = net
            .with(alice, |m, now| {
                m.send(now, &to_bob, Draft::text(format!("hostile {i}")))
            })
            .unwrap();
        sent.push(id);
        net.run_for(Duration::from_millis(200));
    }
    let acked = |n: &Net| -> BTreeSet<MessageId> {
        n.events(alice)
            .iter()
            .filter_map(|e| match e {
                MessengerEvent::Delivered { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    };
    assert!(
        net.run_until(Duration::from_secs(1800), |n| {
            let a = acked(n);
            sent.iter().all(|id| a.contains(id))
        }),
        "seed {seed:#x}: {} of {} acked",
        acked(&net).len(),
        sent.len()
    );
    net.run_for(Duration::from_secs(60));
    let got = received_texts(&net, bob, &to_alice);
    assert_eq!(got.len(), sent.len(), "seed {seed:#x}: not exactly once");
    let ids: Vec<MessageId> = got.iter().map(|(id, _)| *id).collect();
    let unique: BTreeSet<MessageId> = ids.iter().copied().collect();
    assert_eq!(unique.len(), sent.len());
    assert!(sent.iter().all(|id| unique.contains(id)));
    let log: Vec<String> = net
        .messenger(bob)
        .messages(&to_alice)
        .map(|e| e.message.text.clone())
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("hostile {i}")).collect();
    assert_eq!(log, expected, "seed {seed:#x}: Bob's log is out of order");
    let stats = net.sim.stats().clone();
    assert!(
        stats.lost > 0 && stats.duplicates > 0,
        "seed {seed:#x}: {stats:?}"
    );
    println!(
        "seed {seed:#x}: virtual {:?}, frames {}, lost {}, duplicated {}",
        net.elapsed(),
        stats.frames_sent,
        stats.lost,
        stats.duplicates
    );
}

fn journey(seed: u64, config: MessengerConfig) {
    let mut net = Net::new(seed);
    let f1 = net.add_full_node(&config);
    let f2 = net.add_full_node(&config);
    let (alice, _alice_account) = net.add_messenger(config.clone());
    let (bob, _bob_account) = net.add_messenger(config.clone());
    net.link(f1, f2);
    net.link(alice, f1);
    net.link(bob, f2);
    net.run_for(Duration::from_secs(10));

    let alice_key = *net.messenger(alice).public_key();
    let bob_key = *net.messenger(bob).public_key();
    println!(
        "alice {} ({}), bob {} ({})",
        alice_key,
        payloads::verification::pseudonym(&alice_key),
        bob_key,
        payloads::verification::pseudonym(&bob_key)
    );
    // Contact verification material is the same on both sides.
    assert_eq!(
        net.messenger(alice).safety_number(&bob_key),
        net.messenger(bob).safety_number(&alice_key)
    );

    // Steps 2-4: Alice adds Bob's chat key and gets his bundle from his contact-code topic
    // (published by Bob on start, archived by the full nodes, fetched from the store).
    net.with(alice, |m, now| m.add_contact(now, bob_key));
    assert!(
        net.run_until(Duration::from_secs(60), |n| n
            .messenger(alice)
            .has_bundle(&bob_key)),
        "Alice never got Bob's bundle"
    );

    // Steps 5-6: X3DH on Bob's partitioned topic, then the negotiated topic.
    let to_bob = ChatId::OneToOne(bob_key);
    let to_alice = ChatId::OneToOne(alice_key);
    let hello = net
        .with(alice, |m, now| m.send(now, &to_bob, Draft::text("hello")))
        .unwrap();
    assert!(
        net.run_until(Duration::from_secs(60), |n| !received_texts(
            n, bob, &to_alice
        )
        .is_empty()),
        "Bob never got hello"
    );
    assert_eq!(
        received_texts(&net, bob, &to_alice),
        vec![(hello, "hello".to_owned())]
    );
    assert!(
        net.events(bob)
            .iter()
            .any(|e| matches!(e, MessengerEvent::ContactRequest { from } if *from == alice_key))
    );
    assert!(
        net.events(bob).iter().any(
            |e| matches!(e, MessengerEvent::Notification { sender, .. } if *sender == alice_key)
        )
    );
    net.with(bob, |m, now| m.add_contact(now, alice_key));
    let reply = net
        .with(bob, |m, now| {
            m.send(now, &to_alice, Draft::text("hi Alice").reply_to(hello))
        })
        .unwrap();
    assert!(
        net.run_until(Duration::from_secs(60), |n| !received_texts(
            n, alice, &to_bob
        )
        .is_empty()),
        "Alice never got the reply"
    );
    let got = &net
        .messenger(alice)
        .messages(&to_bob)
        .find(|e| e.id == reply)
        .unwrap()
        .message;
    assert_eq!(got.response_to, Some(hello));
    assert!(matches!(got.content, Content::Text));
    // Delivery receipts (MVDS acks) reach Alice.
    assert!(net.run_until(Duration::from_secs(120), |n| n.events(alice)
        .iter()
        .any(|e| matches!(e, MessengerEvent::Delivered { id, to, .. } if *id == hello && *to == bob_key))));
    assert!(net.messenger(alice).is_confirmed(&bob_key));
    assert!(net.messenger(bob).is_confirmed(&alice_key));
    let negotiated = net.messenger(alice).negotiated_topic(&bob_key).unwrap();
    assert_eq!(
        Some(negotiated.clone()),
        net.messenger(bob).negotiated_topic(&alice_key)
    );
    let switched_at: Instant = net.instant();

    // Bob loses his connection; Alice sends 20 messages.
    net.run_for(Duration::from_secs(5));
    let bob_peers = net.unlink_all(bob);
    let mut sent = Vec::new();
    for i in 0..20 {
        let id = net
            .with(alice, |m, now| {
                m.send(now, &to_bob, Draft::text(format!("offline {i}")))
            })
            .unwrap();
        sent.push(id);
        net.run_for(Duration::from_secs(1));
    }
    net.run_for(Duration::from_secs(30));
    assert_eq!(received_texts(&net, bob, &to_alice).len(), 1);

    // Bob comes back: the store backfill brings the 20 messages, each exactly once.
    for p in bob_peers {
        net.link(bob, p);
    }
    assert!(
        net.run_until(Duration::from_secs(300), |n| received_texts(
            n, bob, &to_alice
        )
        .len()
            == 21),
        "Bob has {} of 21 messages",
        received_texts(&net, bob, &to_alice).len()
    );
    net.run_for(Duration::from_secs(120)); // retransmissions, acks: still exactly once
    let got = received_texts(&net, bob, &to_alice);
    assert_eq!(got.len(), 21, "a message was delivered twice");
    let mut counts = BTreeMap::new();
    for (id, _) in &got {
        *counts.entry(*id).or_insert(0) += 1;
    }
    assert!(counts.values().all(|c| *c == 1));
    assert!(net.events(bob).iter().any(
        |e| matches!(e, MessengerEvent::BackfillFinished { messages, ok: true } if *messages > 0)
    ));
    // In clock order, Bob's log shows exactly what Alice sent, in the order she sent it.
    let log: Vec<String> = net
        .messenger(bob)
        .messages(&to_alice)
        .filter(|e| !e.outgoing)
        .map(|e| e.message.text.clone())
        .collect();
    let mut expected = vec!["hello".to_owned()];
    expected.extend((0..20).map(|i| format!("offline {i}")));
    assert_eq!(log, expected);

    // 5% loss on every link, 200 more messages: all delivered exactly once and acked.
    net.set_loss_everywhere(0.05);
    let mut lossy = Vec::new();
    for i in 0..200 {
        let id = net
            .with(alice, |m, now| {
                m.send(now, &to_bob, Draft::text(format!("lossy {i}")))
            })
            .unwrap();
        lossy.push(id);
        net.run_for(Duration::from_millis(500));
    }
    let all_acked = |n: &Net| {
        let acked: BTreeSet<MessageId> = n
            .events(alice)
            .iter()
            .filter_map(|e| match e {
                MessengerEvent::Delivered { id, to, .. } if *to == bob_key => Some(*id),
                _ => None,
            })
            .collect();
        lossy.iter().all(|id| acked.contains(id))
    };
    assert!(
        net.run_until(Duration::from_secs(3600), all_acked),
        "not all acked"
    );
    let got = received_texts(&net, bob, &to_alice);
    assert_eq!(got.len(), 221);
    let ids: BTreeSet<MessageId> = got.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 221);
    assert!(lossy.iter().all(|id| ids.contains(id)));
    let stats = net.sim.stats().clone();
    assert!(stats.lost > 0, "the lossy links lost nothing");
    assert!(stats.is_conserved(net.sim.in_flight()));
    println!(
        "virtual time {:?}, frames sent {}, lost {}, alice stats {:?}, bob stats {:?}",
        net.elapsed(),
        stats.frames_sent,
        stats.lost,
        net.messenger(alice).stats(),
        net.messenger(bob).stats()
    );

    // Privacy 1: a node relaying all of Alice's and Bob's traffic (F1 and F2 sit between them
    // and relay every message) reads none of it: no plaintext appears in any payload, and its
    // own keys (Carol's identity) and the keys of every topic name it can guess open none of
    // the 1:1 traffic.
    let carol =
        payloads::account::Account::generate(net.rng(), payloads::account::WordCount::Twelve, "")
            .unwrap();
    let carol_key = waku_core::payload::RecipientKey::from_signing_key(
        &ed25519_dalek::SigningKey::from_bytes(&carol.chat_secret_key()),
    );
    let guessable: Vec<waku_core::payload::SymmetricKey> = [
        StatusTopic::partitioned(alice_key.ed25519_bytes()),
        StatusTopic::partitioned(bob_key.ed25519_bytes()),
        StatusTopic::contact_code(alice_key.ed25519_bytes()),
        StatusTopic::contact_code(bob_key.ed25519_bytes()),
    ]
    .iter()
    .map(|t| waku_core::payload::SymmetricKey::from_topic_name(t.name()))
    .collect();
    let contact_codes = [
        StatusTopic::contact_code(alice_key.ed25519_bytes())
            .content_topic()
            .clone(),
        StatusTopic::contact_code(bob_key.ed25519_bytes())
            .content_topic()
            .clone(),
    ];
    let mut private_seen = 0;
    for f in [f1, f2] {
        for msg in &net.full(f).carried {
            let text = String::from_utf8_lossy(&msg.payload);
            assert!(
                !text.contains("hello") && !text.contains("offline") && !text.contains("lossy")
            );
            assert!(waku_core::payload::open_asymmetric(&carol_key, &msg.payload).is_err());
            if contact_codes.contains(&msg.content_topic) {
                continue; // bundles: public by design
            }
            private_seen += 1;
            for k in &guessable {
                assert!(waku_core::payload::open_symmetric(k, &msg.payload).is_err());
            }
        }
    }
    assert!(
        private_seen > 200,
        "the relays saw {private_seen} private messages"
    );

    // Privacy 2: once the negotiated topic is in use, nothing Alice originates lands on a topic
    // derived from Bob's key (his partitioned or contact-code topic); her 1:1 traffic is all on
    // the negotiated topic (the rest is her own bundle on her own contact-code topic).
    let bob_topics = [
        StatusTopic::partitioned(bob_key.ed25519_bytes())
            .content_topic()
            .as_str()
            .to_owned(),
        StatusTopic::contact_code(bob_key.ed25519_bytes())
            .content_topic()
            .as_str()
            .to_owned(),
    ];
    let alice_own = StatusTopic::contact_code(alice_key.ed25519_bytes())
        .content_topic()
        .as_str()
        .to_owned();
    let originated = &net.phone(alice).originated;
    let after: Vec<&(Instant, String)> = originated
        .iter()
        .filter(|(t, _)| *t > switched_at)
        .collect();
    assert!(after.len() > 200);
    for (_, topic) in &after {
        assert!(
            !bob_topics.contains(topic),
            "Alice published on Bob's topic {topic}"
        );
        assert!(
            *topic == negotiated.as_str() || *topic == alice_own,
            "unexpected topic {topic}"
        );
    }
    // Before the switch she did use Bob's partitioned topic (first contact).
    assert!(
        originated
            .iter()
            .any(|(t, topic)| *t <= switched_at && *topic == bob_topics[0])
    );
}
