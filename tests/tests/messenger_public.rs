//! A public chat of 10 members on the simulated network (`transports::memory`): every member
//! receives every message, signed by its sender, exactly once; a latecomer gets the history
//! from the store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::needless_range_loop
)]

mod messenger_rig;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use messenger_rig::{Net, received};
use payloads::MessageId;
use payloads::messenger::{ChatId, Draft, MessengerConfig};
use x3dh::PublicIdentity;

#[test]
fn public_chat_of_ten() {
    let mut net = Net::new(0x9c1);
    let config = MessengerConfig::default();
    let f1 = net.add_full_node(&config);
    let f2 = net.add_full_node(&config);
    net.link(f1, f2);
    let mut m = Vec::new();
    for i in 0..10 {
        let (x, _) = net.add_messenger(config.clone());
        net.link(x, if i % 2 == 0 { f1 } else { f2 });
        m.push(x);
    }
    net.run_for(Duration::from_secs(10));
    let keys: Vec<PublicIdentity> = m.iter().map(|&x| *net.messenger(x).public_key()).collect();

    for &x in &m {
        net.with(x, |msgr, now| msgr.join_public_chat(now, "status"))
            .unwrap();
    }
    net.run_for(Duration::from_secs(5));
    let chat = ChatId::Public("status".into());
    let mut sent = BTreeMap::new();
    for (i, &x) in m.iter().enumerate() {
        for j in 0..3 {
            let id = net
                .with(x, |msgr, now| {
                    msgr.send(now, &chat, Draft::text(format!("p{i}-{j}")))
                })
                .unwrap();
            sent.insert(id, i);
        }
        net.run_for(Duration::from_millis(300));
    }
    assert!(net.run_until(Duration::from_secs(60), |n| {
        (0..10).all(|i| received(n, m[i], &chat).len() == 27)
    }));
    net.run_for(Duration::from_secs(10));
    for i in 0..10 {
        let got = received(&net, m[i], &chat);
        assert_eq!(got.len(), 27, "member {i}");
        let ids: BTreeSet<MessageId> = got.iter().map(|(id, _, _)| *id).collect();
        assert_eq!(ids.len(), 27);
        for (id, sender, text) in got {
            assert_eq!(keys[sent[&id]], sender);
            assert_ne!(sent[&id], i);
            assert!(text.starts_with(&format!("p{}-", sent[&id])));
        }
        assert_eq!(net.messenger(m[i]).messages(&chat).count(), 30);
    }
    // A latecomer gets the history from the store.
    let (late, _) = net.add_messenger(config);
    net.link(late, f1);
    net.run_for(Duration::from_secs(5));
    net.with(late, |msgr, now| msgr.join_public_chat(now, "status"))
        .unwrap();
    assert!(
        net.run_until(Duration::from_secs(60), |n| received(n, late, &chat).len()
            == 30)
    );
    let got: BTreeSet<MessageId> = received(&net, late, &chat)
        .iter()
        .map(|(id, _, _)| *id)
        .collect();
    assert_eq!(got, sent.keys().copied().collect());
}
