//! First contact without the peer's bundle: Alice writes to Bob without having fetched his
//! bundle. She sends her own bundle to his partitioned topic and holds her message; Bob starts
//! the session from her bundle; the held message follows; both end on the negotiated topic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod rig;

use std::time::Duration;

use payloads::messenger::{ChatId, Draft, MessengerConfig, MessengerEvent};
use rig::Net;
use waku_core::topic::status::StatusTopic;

#[test]
fn without_a_bundle_the_sender_sends_its_own() {
    let mut net = Net::new(0xf1_457);
    let config = MessengerConfig::default();
    let f = net.add_full_node(&config);
    let (alice, _) = net.add_messenger(config.clone());
    let (bob, _) = net.add_messenger(config.clone());
    net.link(alice, f);
    net.link(bob, f);
    net.run_for(Duration::from_secs(5));
    let alice_key = *net.messenger(alice).public_key();
    let bob_key = *net.messenger(bob).public_key();
    // No add_contact: Alice never fetches Bob's contact code.
    assert!(!net.messenger(alice).has_bundle(&bob_key));
    let id = net
        .with(alice, |m, now| {
            m.send(now, &ChatId::OneToOne(bob_key), Draft::text("knock knock"))
        })
        .unwrap();
    assert!(
        net.run_until(Duration::from_secs(300), |n| n.events[bob].iter().any(
            |e| matches!(e, MessengerEvent::MessageReceived { entry, .. } if entry.id == id)
        ))
    );
    // What Alice published first was her bundle alone, on Bob's partitioned topic.
    let bob_partition = StatusTopic::partitioned(bob_key.ed25519_bytes())
        .content_topic()
        .as_str()
        .to_owned();
    let alice_own = StatusTopic::contact_code(alice_key.ed25519_bytes())
        .content_topic()
        .as_str()
        .to_owned();
    let first_to_bob = net.originated[alice]
        .iter()
        .find(|(_, t)| *t != alice_own)
        .unwrap();
    assert_eq!(first_to_bob.1, bob_partition);
    assert!(
        net.events[bob]
            .iter()
            .any(|e| matches!(e, MessengerEvent::ContactRequest { from } if *from == alice_key))
    );
    assert!(net.messenger(alice).has_bundle(&bob_key));
    // Acked, and both sides on the negotiated topic.
    assert!(net.run_until(Duration::from_secs(300), |n| {
        n.events[alice]
            .iter()
            .any(|e| matches!(e, MessengerEvent::Delivered { id: d, .. } if *d == id))
    }));
    assert!(net.messenger(alice).is_confirmed(&bob_key));
    assert!(net.messenger(bob).is_confirmed(&alice_key));
}
