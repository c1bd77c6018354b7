//! A private group of 5 with membership changes, concurrent messages and forged membership
//! events, on the simulated network (`transports::memory`).
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
use payloads::messenger::{ChatId, Draft, MessengerConfig, MessengerEvent};
use transports::memory::NodeId;
use x3dh::PublicIdentity;

/// Two full nodes, `n` messengers alternately attached to them.
pub fn network(seed: u64, n: usize) -> (Net, Vec<NodeId>, Vec<PublicIdentity>) {
    let mut net = Net::new(seed);
    let config = MessengerConfig::default();
    let f1 = net.add_full_node(&config);
    let f2 = net.add_full_node(&config);
    net.link(f1, f2);
    let mut nodes = Vec::new();
    for i in 0..n {
        let (m, _) = net.add_messenger(config.clone());
        net.link(m, if i % 2 == 0 { f1 } else { f2 });
        nodes.push(m);
    }
    net.run_for(Duration::from_secs(10));
    let keys = nodes
        .iter()
        .map(|&m| *net.messenger(m).public_key())
        .collect();
    (net, nodes, keys)
}

#[test]
fn private_group_of_five() {
    let (mut net, m, keys) = network(0x6a1u64, 5);
    // Everyone knows everyone (contact codes fetched from the store).
    for i in 0..5 {
        for j in 0..5 {
            if i != j {
                let k = keys[j];
                net.with(m[i], |x, now| x.add_contact(now, k));
            }
        }
    }
    assert!(net.run_until(Duration::from_secs(120), |n| (0..5).all(|i| {
        (0..5)
            .filter(|j| *j != i)
            .all(|j| n.messenger(m[i]).has_bundle(&keys[j]))
    })));

    // A creates the group with B, C, D (E comes later).
    let chat = net
        .with(m[0], |x, now| x.create_group(now, "five", &keys[1..4]))
        .unwrap();
    let ChatId::Group(gid) = chat.clone() else {
        panic!()
    };
    assert!(net.run_until(Duration::from_secs(120), |n| {
        (1..4).all(|i| n.messenger(m[i]).group(&gid).is_some())
    }));
    for i in 1..4 {
        net.with(m[i], |x, now| x.join_group(now, &gid)).unwrap();
    }
    // A adds E and makes B an admin.
    net.with(m[0], |x, now| x.add_group_members(now, &gid, &keys[4..5]))
        .unwrap();
    net.with(m[0], |x, now| x.add_group_admins(now, &gid, &keys[1..2]))
        .unwrap();
    assert!(net.run_until(Duration::from_secs(120), |n| {
        n.messenger(m[4]).group(&gid).is_some()
    }));
    net.with(m[4], |x, now| x.join_group(now, &gid)).unwrap();
    let converged = net.run_until(Duration::from_secs(300), |n| {
        let s0 = n.messenger(m[0]).group(&gid).unwrap().state().clone();
        s0.joined.len() == 5
            && (1..5).all(|i| {
                n.messenger(m[i]).group(&gid).map(|g| g.state().clone()) == Some(s0.clone())
            })
    });
    if !converged {
        for i in 0..5 {
            let s = net.messenger(m[i]).group(&gid).map(|g| g.state().clone());
            println!(
                "member {i}: {:?}",
                s.map(|s| (s.members.len(), s.joined.len(), s.admins.len(), s.clock))
            );
            println!("  stats {:?}", net.messenger(m[i]).stats());
        }
    }
    assert!(converged, "members did not converge");
    assert!(net.events(m[4]).iter().any(
        |e| matches!(e, MessengerEvent::GroupMembershipChanged { chat_id, .. } if *chat_id == gid)
    ));

    // Concurrent messages: everyone sends 3 at once.
    let mut sent: BTreeMap<MessageId, usize> = BTreeMap::new();
    for round in 0..3 {
        for i in 0..5 {
            let id = net
                .with(m[i], |x, now| {
                    x.send(now, &chat, Draft::text(format!("m{i}-{round}")))
                })
                .unwrap();
            sent.insert(id, i);
        }
        net.run_for(Duration::from_millis(200));
    }
    let all_got = |n: &Net| (0..5).all(|i| received(n, m[i], &chat).len() == 12);
    assert!(
        net.run_until(Duration::from_secs(300), |n| all_got(n)),
        "group messages missing"
    );
    net.run_for(Duration::from_secs(30)); // retransmissions settle: still exactly once
    for i in 0..5 {
        let got = received(&net, m[i], &chat);
        assert_eq!(got.len(), 12, "member {i} got a duplicate");
        let ids: BTreeSet<MessageId> = got.iter().map(|(id, _, _)| *id).collect();
        assert_eq!(ids.len(), 12, "member {i} got a duplicate");
        for (id, sender, text) in &got {
            assert_eq!(keys[sent[id]], *sender);
            assert_ne!(sent[id], i);
            assert!(text.starts_with(&format!("m{}-", sent[id])));
        }
    }
    // Every member shows the same log, in the same (clock) order.
    let log = |n: &Net, i: usize| -> Vec<MessageId> {
        n.messenger(m[i]).messages(&chat).map(|e| e.id).collect()
    };
    let first = log(&net, 0);
    assert_eq!(first.len(), 15);
    for i in 1..5 {
        assert_eq!(log(&net, i), first);
    }

    // B (an admin now) removes D; D receives nothing sent after that.
    net.with(m[1], |x, now| x.remove_group_member(now, &gid, keys[3]))
        .unwrap();
    assert!(
        net.run_until(Duration::from_secs(300), |n| (0..5).all(|i| !n
            .messenger(m[i])
            .group(&gid)
            .unwrap()
            .is_member(&keys[3]))),
        "removal did not reach everyone"
    );
    let d_before = received(&net, m[3], &chat).len();
    let after = net
        .with(m[0], |x, now| {
            x.send(now, &chat, Draft::text("after removal"))
        })
        .unwrap();
    assert!(
        net.run_until(Duration::from_secs(300), |n| [1, 2, 4].iter().all(|&i| {
            received(n, m[i], &chat)
                .iter()
                .any(|(id, _, _)| *id == after)
        }))
    );
    net.run_for(Duration::from_secs(120));
    assert_eq!(received(&net, m[3], &chat).len(), d_before);
    assert!(
        !net.messenger(m[3]).messages(&chat).any(|e| e.id == after),
        "the removed member has the message"
    );
    assert!(matches!(
        net.with(m[3], |x, now| x.send(
            now,
            &chat,
            Draft::text("still here?")
        )),
        Err(payloads::messenger::SendError::NotAMember)
    ));
    // Converged membership everywhere (D included: it learned of its removal).
    let s0 = net.messenger(m[0]).group(&gid).unwrap().state().clone();
    for i in 1..5 {
        assert_eq!(
            net.messenger(m[i]).group(&gid).unwrap().state(),
            &s0,
            "member {i}"
        );
    }
    assert_eq!(s0.members.len(), 4);
    // E (not an admin) cannot remove anyone.
    assert!(
        net.with(m[4], |x, now| x.remove_group_member(now, &gid, keys[2]))
            .is_err()
    );

    // A rogue relay replays every Waku message it carried (with a new timestamp, so the relays'
    // duplicate caches do not stop it) and injects a tampered copy of each: membership events
    // and messages replayed after the removal, and altered ciphertext. Nobody's membership or
    // chat changes, the removed member still receives nothing, and the Messengers count what
    // they refused.
    let before: Vec<Vec<(MessageId, PublicIdentity, String)>> =
        (0..5).map(|i| received(&net, m[i], &chat)).collect();
    let rejected = |n: &Net| -> u64 {
        (0..5)
            .map(|i| {
                let s = n.messenger(m[i]).stats();
                s.waku_unopened + s.undecryptable + s.waku_duplicates + s.envelopes_rejected
            })
            .sum()
    };
    let rejected_before = rejected(&net);
    let rogue = net.sim.node_ids().next().unwrap(); // the first full node
    let carried = net.full(rogue).carried.clone();
    assert!(carried.len() > 20, "the relay carried {}", carried.len());
    let t = net.sim.now().unix_nanos;
    let mut forged = Vec::new();
    for (k, msg) in carried.iter().enumerate() {
        let k = i64::try_from(k).unwrap();
        forged.push(msg.clone().with_timestamp(t + 2 * k));
        let mut bad = msg.clone().with_timestamp(t + 2 * k + 1);
        let mid = bad.payload.len() / 2;
        bad.payload[mid] ^= 0x5a;
        forged.push(bad);
    }
    let accepted = net.rogue_publish(rogue, &MessengerConfig::default().pubsub_topic, forged);
    assert!(accepted > 20, "the rogue relay published {accepted}");
    net.run_for(Duration::from_secs(120));
    for i in 0..5 {
        assert_eq!(
            received(&net, m[i], &chat),
            before[i],
            "member {i} took a replayed or tampered message"
        );
        assert_eq!(
            net.messenger(m[i]).group(&gid).unwrap().state(),
            &s0,
            "member {i}'s membership changed"
        );
    }
    println!(
        "rogue relay: {} carried, {accepted} replayed or tampered copies published; members refused {} before, {} after",
        carried.len(),
        rejected_before,
        rejected(&net)
    );
    assert!(
        rejected(&net) > rejected_before,
        "the replayed and tampered messages were not seen at all"
    );
}
