//! Forged group traffic that reaches the Messenger through an authenticated channel: a member's
//! MVDS delivery carries membership events it had no right to make, or events whose signature
//! does not hold. The Messenger's group state stays exactly as it was.

use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::account::{Account, WordCount};
use crate::group::{GroupEvent, GroupEventKind, MembershipUpdate, SignedGroupEvent};
use crate::storage::MemoryStorage;

struct Person {
    account: Account,
    identity: IdentityKeyPair,
}

fn person(seed: u64) -> Person {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let account = Account::generate(&mut rng, WordCount::Twelve, "").unwrap();
    let identity = IdentityKeyPair::from_seed(&account.chat_secret_key());
    Person { account, identity }
}

fn messenger(p: &Person, now: Now) -> Messenger {
    Messenger::new(
        MessengerConfig::default(),
        &p.account,
        MemoryStorage::new(),
        mvds::MemoryStore::new(),
        [7; 32],
        now,
    )
    .unwrap()
}

/// `p`'s Messenger on the stores a previous one left (a restart).
fn reopen(
    p: &Person,
    storage: MemoryStorage,
    sync: mvds::MemoryStore<PeerKey>,
    now: Now,
) -> Messenger {
    Messenger::new(
        MessengerConfig::default(),
        &p.account,
        storage,
        sync,
        [7; 32],
        now,
    )
    .unwrap()
}

/// `signer` wraps `events` of group `chat_id` in a signed envelope, as its Messenger would.
fn envelope(signer: &Person, chat_id: &str, events: Vec<SignedGroupEvent>) -> Vec<u8> {
    let update = MembershipUpdate {
        chat_id: chat_id.to_owned(),
        events,
        entity: None,
    }
    .encode()
    .unwrap();
    SignedPayload::sign(
        &signer.identity,
        PayloadType::MembershipUpdateMessage,
        update,
    )
    .unwrap()
    .encode()
}

#[test]
fn forged_membership_events_over_an_authenticated_channel_change_nothing() {
    #[allow(clippy::disallowed_methods)] // an origin for the virtual clock; only offsets matter
    let start = Instant::now();
    let now = Now {
        instant: start,
        unix_nanos: 1_704_067_200_000_000_000,
    };
    let (alice, bob, mallory) = (person(1), person(2), person(3));
    let (a_key, b_key, m_key) = (
        *alice.identity.public(),
        *bob.identity.public(),
        *mallory.identity.public(),
    );
    let mut a = messenger(&alice, now);
    let mut b = messenger(&bob, now);

    // Alice creates a group with Bob and Mallory (Mallory is a member, not an admin); Bob gets
    // her history over the group's sync channel.
    let ChatId::Group(gid) = a.create_group(now, "g", &[b_key, m_key]).unwrap() else {
        panic!("not a group chat")
    };
    let history: Vec<SignedGroupEvent> = a.group(&gid).unwrap().events().cloned().collect();
    let sync = group_sync_id(&gid);
    b.on_delivery(now, a_key, sync, &envelope(&alice, &gid, history.clone()));
    let before = b.group(&gid).unwrap().state().clone();
    assert!(before.members.contains(&m_key) && !before.admins.contains(&m_key));
    let clock = before.clock;
    while b.poll_event().is_some() {}

    let mut attempts: Vec<(PublicIdentity, Vec<u8>)> = Vec::new();
    // 1. Mallory, a plain member, signs an event that makes her an admin and one that removes
    //    Alice; only admins may do either.
    for kind in [
        GroupEventKind::AdminsAdded {
            admins: [m_key].into_iter().collect(),
        },
        GroupEventKind::MemberRemoved { member: a_key },
    ] {
        let event = SignedGroupEvent::sign(
            &mallory.identity,
            &gid,
            GroupEvent {
                clock: clock + 1,
                kind,
            },
        )
        .unwrap();
        let mut events = history.clone();
        events.push(event);
        attempts.push((m_key, envelope(&mallory, &gid, events)));
    }
    // 2. Mallory puts Alice's key on an event she signed herself (the signature cannot hold).
    let mut stolen = SignedGroupEvent::sign(
        &mallory.identity,
        &gid,
        GroupEvent {
            clock: clock + 1,
            kind: GroupEventKind::MemberRemoved { member: b_key },
        },
    )
    .unwrap()
    .encode();
    stolen[..32].copy_from_slice(a_key.ed25519_bytes());
    let mut msg = proto::status::MembershipUpdateMessage::decode(
        &MembershipUpdate {
            chat_id: gid.clone(),
            events: history.clone(),
            entity: None,
        }
        .encode()
        .unwrap()[..],
    )
    .unwrap();
    msg.events.push(stolen);
    let forged_update = msg.encode_to_vec();
    attempts.push((
        m_key,
        SignedPayload::sign(
            &mallory.identity,
            PayloadType::MembershipUpdateMessage,
            forged_update,
        )
        .unwrap()
        .encode(),
    ));
    // 3. Mallory's envelope claimed as Alice's delivery (MVDS does not relay: the deliverer is
    //    the writer).
    attempts.push((a_key, attempts[0].1.clone()));

    for (i, (from, body)) in attempts.iter().enumerate() {
        let rejected = b.stats().payloads_rejected + b.stats().envelopes_rejected;
        b.on_delivery(now, *from, sync, body);
        assert_eq!(
            b.group(&gid).unwrap().state(),
            &before,
            "attempt {i} changed the group"
        );
        let changed = std::iter::from_fn(|| b.poll_event())
            .any(|e| matches!(e, MessengerEvent::GroupMembershipChanged { .. }));
        assert!(!changed, "attempt {i} raised a membership change");
        // The unauthorised-but-well-signed events (1) are kept out by the admin rules; the
        // others are refused outright and counted.
        if i >= 2 {
            assert!(
                b.stats().payloads_rejected + b.stats().envelopes_rejected > rejected,
                "attempt {i} was not counted as rejected"
            );
        }
    }
    // Alice's own genuine update still applies afterwards: she makes Bob an admin.
    a.add_group_admins(now, &gid, &[b_key]).unwrap();
    let history: Vec<SignedGroupEvent> = a.group(&gid).unwrap().events().cloned().collect();
    b.on_delivery(now, a_key, sync, &envelope(&alice, &gid, history));
    assert!(b.group(&gid).unwrap().state().admins.contains(&b_key));
}

/// The reaction records on disk are bounded like the in-memory set: records beyond
/// [`MAX_REACTIONS`](crate::chat::MAX_REACTIONS) (as an older version could leave) are deleted on
/// open, and a new reaction at the bound replaces the oldest record instead of adding one.
#[test]
fn reaction_records_on_disk_stay_within_the_bound() {
    use crate::chat::MAX_REACTIONS;
    #[allow(clippy::disallowed_methods)] // an origin for the virtual clock; only offsets matter
    let start = Instant::now();
    let now = Now {
        instant: start,
        unix_nanos: 1_704_067_200_000_000_000,
    };
    let alice = person(1);
    let me = *alice.identity.public();
    let mut m = messenger(&alice, now);
    let chat = m.join_public_chat(now, "bounded").unwrap();
    let (mut storage, sync) = m.into_stores();

    // MAX_REACTIONS + 3 records, one per message, clocks 1, 2, 3, …
    let msg = |i: u32| {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_be_bytes());
        MessageId(b)
    };
    let over = u32::try_from(MAX_REACTIONS).unwrap() + 3;
    let ops = (1..=over)
        .map(|i| {
            let r = EmojiReaction {
                clock: u64::from(i),
                chat_id: "bounded".to_owned(),
                message_id: msg(i),
                message_type: MessageType::PublicGroup,
                emoji: Emoji::Love,
                retracted: false,
            };
            StorageOp::Put {
                table: Table::Reactions,
                key: reaction_key(&chat, (r.message_id, *me.ed25519_bytes(), r.emoji)),
                value: Writer::new()
                    .bytes(me.ed25519_bytes())
                    .bytes(&r.to_proto().encode_to_vec())
                    .finish(),
            }
        })
        .collect();
    storage.commit(ops).unwrap();
    assert_eq!(storage.len(Table::Reactions), MAX_REACTIONS + 3);

    let mut m = reopen(&alice, storage, sync, now);
    assert_eq!(m.storage().len(Table::Reactions), MAX_REACTIONS);
    for i in 1..=3 {
        assert!(
            m.reactions(&chat, &msg(i)).is_empty(),
            "oldest {i} forgotten"
        );
    }
    assert_eq!(m.reactions(&chat, &msg(4)).get(&Emoji::Love), Some(&1));

    // A new reaction (the newest clock) at the bound: one record in, the oldest out.
    m.react(now, &chat, msg(0), Emoji::Laugh, false).unwrap();
    assert_eq!(m.storage().len(Table::Reactions), MAX_REACTIONS);
    assert_eq!(m.reactions(&chat, &msg(0)).get(&Emoji::Laugh), Some(&1));
    assert!(m.reactions(&chat, &msg(4)).is_empty());

    // What is on disk is what a restart shows.
    let (storage, sync) = m.into_stores();
    let m = reopen(&alice, storage, sync, now);
    assert_eq!(m.storage().len(Table::Reactions), MAX_REACTIONS);
    assert_eq!(m.reactions(&chat, &msg(0)).get(&Emoji::Laugh), Some(&1));
    assert_eq!(m.reactions(&chat, &msg(5)).get(&Emoji::Love), Some(&1));
}
