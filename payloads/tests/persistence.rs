//! A Messenger that crashes and restarts from its storage keeps its keys, sessions, contacts,
//! chats and messages, and carries on the conversation; its storage holds no secret in the
//! clear.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod rig;

use std::time::Duration;

use payloads::messenger::{ChatId, Draft, MessengerConfig, MessengerEvent};
use payloads::storage::Table;
use rig::Net;

fn texts(net: &Net, node: usize) -> Vec<String> {
    net.events[node]
        .iter()
        .filter_map(|e| match e {
            MessengerEvent::MessageReceived { entry, .. } => Some(entry.message.text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn restart_from_storage_and_carry_on() {
    let mut net = Net::new(0x7e57);
    let config = MessengerConfig::default();
    let f = net.add_full_node(&config);
    let (alice, _) = net.add_messenger(config.clone());
    let (bob, bob_account) = net.add_messenger(config.clone());
    net.link(alice, f);
    net.link(bob, f);
    net.run_for(Duration::from_secs(5));
    let alice_key = *net.messenger(alice).public_key();
    let bob_key = *net.messenger(bob).public_key();
    net.with(alice, |m, now| m.add_contact(now, bob_key));
    assert!(net.run_until(Duration::from_secs(60), |n| {
        n.messenger(alice).has_bundle(&bob_key)
    }));
    let to_bob = ChatId::OneToOne(bob_key);
    let to_alice = ChatId::OneToOne(alice_key);
    net.with(alice, |m, now| m.send(now, &to_bob, Draft::text("before")))
        .unwrap();
    assert!(net.run_until(Duration::from_secs(60), |n| texts(n, bob) == ["before"]));
    net.with(bob, |m, now| {
        m.send(now, &to_alice, Draft::text("reply before"))
    })
    .unwrap();
    assert!(net.run_until(Duration::from_secs(60), |n| texts(n, alice)
        == ["reply before"]));
    net.run_for(Duration::from_secs(30));

    // Nothing secret is stored in the clear: not the chat key's seed, not the database key.
    let seed = bob_account.chat_secret_key();
    let db = bob_account.database_key();
    let storage = net.messenger(bob).storage().clone();
    for table in Table::ALL {
        for (k, v) in storage.records(table) {
            for secret in [&seed[..], &db[..]] {
                assert!(!v.windows(32).any(|w| w == secret), "secret in {table:?}");
                assert!(!k.windows(32).any(|w| w == secret));
            }
        }
    }
    assert_eq!(storage.len(Table::Sessions), 1);
    assert_eq!(storage.len(Table::Contacts), 1);
    assert_eq!(storage.len(Table::Messages), 2);

    let installation = net.messenger(bob).installation_id().clone();
    net.restart(bob, &bob_account, config.clone());
    assert_eq!(net.messenger(bob).installation_id(), &installation);
    assert_eq!(net.messenger(bob).public_key(), &bob_key);
    assert!(net.messenger(bob).is_confirmed(&alice_key));
    let log: Vec<String> = net
        .messenger(bob)
        .messages(&to_alice)
        .map(|e| e.message.text.clone())
        .collect();
    assert_eq!(log, ["before", "reply before"]);

    // The restored session decrypts Alice's next message and answers it.
    net.run_for(Duration::from_secs(5));
    net.with(alice, |m, now| m.send(now, &to_bob, Draft::text("after")))
        .unwrap();
    assert!(net.run_until(Duration::from_secs(120), |n| {
        texts(n, bob).contains(&"after".to_owned())
    }));
    net.with(bob, |m, now| {
        m.send(now, &to_alice, Draft::text("reply after"))
    })
    .unwrap();
    assert!(net.run_until(Duration::from_secs(120), |n| {
        texts(n, alice).contains(&"reply after".to_owned())
    }));
    // Exactly once, also across the restart.
    assert_eq!(
        texts(&net, bob).iter().filter(|t| *t == "before").count(),
        1
    );
    assert_eq!(texts(&net, bob).iter().filter(|t| *t == "after").count(), 1);
}

#[test]
fn storage_failure_is_reported_and_sends_refused() {
    let mut net = Net::new(0xfa11);
    let config = MessengerConfig::default();
    let mut storage = payloads::storage::MemoryStorage::new();
    storage.fail_after(3);
    let account =
        payloads::account::Account::generate(net.rng(), payloads::account::WordCount::Twelve, "")
            .unwrap();
    let m = net.add_messenger_for(config, &account, storage);
    let peer = *x3dh::IdentityKeyPair::from_seed(&[4; 32]).public();
    for i in 10..15u8 {
        let contact = *x3dh::IdentityKeyPair::from_seed(&[i; 32]).public();
        net.with(m, |x, now| x.add_contact(now, contact));
        net.run_for(Duration::from_secs(1));
    }
    assert!(
        net.events[m]
            .iter()
            .any(|e| matches!(e, MessengerEvent::StorageFailed(_)))
    );
    assert!(matches!(
        net.with(m, |x, now| x.send(
            now,
            &ChatId::OneToOne(peer),
            Draft::text("x")
        )),
        Err(payloads::messenger::SendError::Storage)
    ));
}

/// Reactions and the acknowledgements still awaited survive a restart: counts come back from
/// storage, and an ack that arrives after the sender restarted still marks the message
/// delivered.
#[test]
fn reactions_and_pending_acks_survive_a_restart() {
    let mut net = Net::new(0x0ac5);
    let config = MessengerConfig::default();
    let f = net.add_full_node(&config);
    let (alice, alice_account) = net.add_messenger(config.clone());
    let (bob, _) = net.add_messenger(config.clone());
    net.link(alice, f);
    net.link(bob, f);
    net.run_for(Duration::from_secs(5));
    let alice_key = *net.messenger(alice).public_key();
    let bob_key = *net.messenger(bob).public_key();
    net.with(alice, |m, now| m.add_contact(now, bob_key));
    assert!(net.run_until(Duration::from_secs(60), |n| {
        n.messenger(alice).has_bundle(&bob_key)
    }));
    let to_bob = ChatId::OneToOne(bob_key);
    let to_alice = ChatId::OneToOne(alice_key);
    let first = net
        .with(alice, |m, now| {
            m.send(now, &to_bob, Draft::text("react to me"))
        })
        .unwrap();
    assert!(net.run_until(Duration::from_secs(60), |n| texts(n, bob)
        == ["react to me"]));
    net.with(bob, |m, now| {
        m.react(now, &to_alice, first, payloads::chat::Emoji::Laugh, false)
    })
    .unwrap();
    let laugh = |n: &mut Net| {
        n.messenger(alice)
            .reactions(&to_bob, &first)
            .get(&payloads::chat::Emoji::Laugh)
            .copied()
    };
    assert!(net.run_until(Duration::from_secs(60), |n| laugh(n) == Some(1)));
    net.run_for(Duration::from_secs(30));

    // Bob goes offline; Alice sends, so the ack is still awaited when she restarts.
    net.set_online(bob, false);
    let pending = net
        .with(alice, |m, now| {
            m.send(now, &to_bob, Draft::text("ack me later"))
        })
        .unwrap();
    net.run_for(Duration::from_secs(10));
    let delivered = |n: &Net| {
        n.events[alice].iter().any(|e| {
            matches!(e, MessengerEvent::Delivered { id, to, .. } if *id == pending && *to == bob_key)
        })
    };
    assert!(!delivered(&net), "acked while the receiver was offline");
    net.restart(alice, &alice_account, config.clone());
    assert_eq!(laugh(&mut net), Some(1), "reaction lost in the restart");

    net.set_online(bob, true);
    assert!(
        net.run_until(Duration::from_secs(300), |n| delivered(n)),
        "the ack that came after the restart raised no Delivered"
    );
    let entry = net
        .messenger_ref(alice)
        .messages(&to_bob)
        .find(|e| e.id == pending)
        .cloned()
        .unwrap();
    assert!(entry.delivered_to.contains(&bob_key));
}
