//! Fuzz bodies for every decoder of this crate, shared by the cargo-fuzz targets in `fuzz/`
//! (`payloads_*`) and by tests that replay them on random input.
//!
//! A fuzz body panics when it finds a bug; that is how the fuzzer learns of it.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::chat::{ChatMessage, EmojiReaction};
use crate::group::{MembershipUpdate, SignedGroupEvent};
use crate::metadata::SignedPayload;
use crate::segment::{self, Reassembler};

/// The signed envelope: decoding never panics, and whatever verifies re-encodes to an envelope
/// that verifies to the same content and id.
pub fn metadata(data: &[u8]) {
    if let Ok(p) = SignedPayload::decode(data) {
        let again = SignedPayload::decode(&p.encode()).expect("own encoding must verify");
        assert_eq!(again, p);
    }
}

/// Chat messages and reactions: whatever is accepted re-encodes and decodes to the same value.
pub fn chat(data: &[u8]) {
    if let Ok(m) = ChatMessage::decode(data) {
        let bytes = m.encode().expect("accepted message must validate");
        assert_eq!(ChatMessage::decode(&bytes).expect("re-decode"), m);
    }
    if let Ok(r) = EmojiReaction::decode(data) {
        let bytes = r.encode().expect("accepted reaction must validate");
        assert_eq!(EmojiReaction::decode(&bytes).expect("re-decode"), r);
    }
}

/// Membership updates and single events: accepted updates re-encode to the same update, and
/// merging their events into a group never panics and keeps the group's invariants.
pub fn membership(data: &[u8]) {
    if let Ok(u) = MembershipUpdate::decode(data) {
        let bytes = u.encode().expect("accepted update must encode");
        assert_eq!(MembershipUpdate::decode(&bytes).expect("re-decode"), u);
        let mut g = crate::group::Group::new(&u.chat_id).expect("accepted chat id");
        g.merge(u.events);
        let s = g.state();
        assert!(s.admins.is_subset(&s.members));
        assert!(s.members.len() <= crate::group::MAX_MEMBERS);
    }
    let _ = SignedGroupEvent::decode("chat", data);
}

/// Segments: the input is cut into pieces, each offered to a reassembler as a segment; nothing
/// panics and the bounds hold.
pub fn segments(data: &[u8]) {
    #[allow(clippy::disallowed_methods)] // the fuzzer needs some origin; only offsets matter
    let start = Instant::now();
    let mut r = Reassembler::new();
    for (i, piece) in data.split(|b| *b == 0xA5).enumerate() {
        if let Some(s) = segment::parse(piece) {
            let _ = r.handle(start + Duration::from_secs(i as u64), s);
        }
        assert!(r.pending() <= segment::MAX_PENDING_MESSAGES);
        assert!(r.pending_bytes() <= segment::MAX_PENDING_BYTES);
    }
    // Round trip: splitting the input and reassembling it gives it back.
    if data.len() > 1024
        && let Ok(pieces) = segment::split(data, 1024)
    {
        let mut r = Reassembler::new();
        let mut out = None;
        for p in &pieces {
            if pieces.len() == 1 {
                out = Some(p.clone());
            } else {
                out = r
                    .handle(start, segment::parse(p).expect("own segment"))
                    .expect("own segment");
            }
        }
        assert_eq!(out.as_deref(), Some(data));
    }
}

/// A Messenger that follows a contact, a public chat and its own topics, fed frames made from
/// `data`: raw relay and store frames, and Waku messages on every topic it follows carrying
/// the bytes as they are, sealed to it (signed by a random key), or sealed with the public
/// chat's key. Nothing panics, nothing is stored, no event is reported, no chat changes.
pub fn messenger_frames(data: &[u8]) {
    use std::sync::OnceLock;

    use prost::Message as _;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use waku_core::message::WakuMessage;
    use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol};

    use crate::account::Account;
    use crate::messenger::{Messenger, MessengerConfig};
    use crate::public::PublicChat;
    use crate::storage::MemoryStorage;

    static ACCOUNT: OnceLock<Account> = OnceLock::new();
    let account = ACCOUNT.get_or_init(|| {
        Account::restore(
            "legal winner thank year wave sausage worth useful legal winner thank yellow",
            "",
        )
        .expect("fixed phrase")
    });
    #[allow(clippy::disallowed_methods)] // the fuzzer needs some origin; only offsets matter
    let start = Instant::now();
    let mut now = Now {
        instant: start,
        unix_nanos: 1_700_000_000_000_000_000,
    };
    // A relaying node, so that relay frames reach it (a light node ignores them).
    let mut config = MessengerConfig::default();
    config.waku.capabilities =
        waku_core::roles::Capabilities::LIGHT.with(waku_core::roles::Capability::Relay);
    let pubsub = config.pubsub_topic.clone();
    let mut m: Messenger = Messenger::new(
        config,
        account,
        MemoryStorage::new(),
        mvds::MemoryStore::new(),
        [7; 32],
        now,
    )
    .expect("messenger");
    let contact = *x3dh::IdentityKeyPair::from_seed(&[9; 32]).public();
    m.handle_connected(now, PeerId(1), &[Protocol::Relay, Protocol::StoreQuery]);
    m.add_contact(now, contact);
    m.join_public_chat(now, "fuzz").expect("channel");
    m.handle_timeout(now); // the start-up timers (bundle, online mark) run now, not below
    while m.poll_transmit().is_some() {}
    while m.poll_event().is_some() {}
    let commits = m.storage().commits();
    let chats: Vec<_> = m.chats().cloned().collect();
    let topics: Vec<_> = m.content_topics().cloned().collect();
    let me = x3dh::x25519_dalek::PublicKey::from(m.public_key().x25519().to_bytes());
    let public = PublicChat::new("fuzz").expect("channel");
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    // At most 1000 frames, 10 ms apart: no periodic timer comes due meanwhile.
    for (i, chunk) in data.split(|b| *b == 0xA5).take(1000).enumerate() {
        let Some((&sel, body)) = chunk.split_first() else {
            continue;
        };
        now.instant += Duration::from_millis(10);
        now.unix_nanos += 10_000_000;
        let payload = match sel % 6 {
            0 => {
                m.handle_frame(now, PeerId(1), Protocol::Relay, FrameKind::Stream, body);
                continue;
            }
            1 => {
                let kind = FrameKind::Response(u64::from(sel / 6));
                m.handle_frame(now, PeerId(1), Protocol::StoreQuery, kind, body);
                continue;
            }
            2 => body.to_vec(),
            3 | 4 => waku_core::payload::seal_asymmetric(&mut rng, &me, body, Some(&stranger))
                .expect("seal"),
            _ => waku_core::payload::seal_symmetric(&mut rng, public.key(), body, None)
                .expect("seal"),
        };
        let Some(topic) = topics.get(i % topics.len().max(1)) else {
            continue;
        };
        let msg = WakuMessage::new(topic.clone(), payload).with_timestamp(now.unix_nanos);
        let rpc = proto::gossipsub::Rpc {
            publish: vec![proto::gossipsub::Message {
                data: Some(msg.encode()),
                topic: Some(pubsub.as_str().to_owned()),
                ..Default::default()
            }],
            ..Default::default()
        };
        m.handle_frame(
            now,
            PeerId(1),
            Protocol::Relay,
            FrameKind::Stream,
            &rpc.encode_to_vec(),
        );
        m.handle_timeout(now);
    }
    while m.poll_transmit().is_some() {}
    while let Some(e) = m.poll_event() {
        // A store answer that is garbage fails the start-up backfill: that is reported (and
        // retried), and is the only thing garbage may cause.
        if !matches!(
            e,
            crate::messenger::MessengerEvent::BackfillFinished {
                ok: false,
                messages: 0
            }
        ) {
            panic!("garbage produced an event: {e:?}");
        }
    }
    assert_eq!(
        m.storage().commits(),
        commits,
        "garbage changed the stored state"
    );
    assert_eq!(m.chats().cloned().collect::<Vec<_>>(), chats);
}

/// A storage holding arbitrary records (as a corrupt or tampered database would): opening a
/// Messenger on it either fails with an error or works; nothing panics, and an opened Messenger
/// runs.
pub fn storage_records(data: &[u8]) {
    use std::sync::OnceLock;

    use waku_core::net::{Machine, Now};

    use crate::account::Account;
    use crate::messenger::{Messenger, MessengerConfig};
    use crate::storage::{MemoryStorage, Storage, StorageOp, Table};

    static ACCOUNT: OnceLock<Account> = OnceLock::new();
    let account = ACCOUNT.get_or_init(|| {
        Account::restore(
            "legal winner thank year wave sausage worth useful legal winner thank yellow",
            "",
        )
        .expect("fixed phrase")
    });
    // Records: table selector (1) ‖ key length (1) ‖ key ‖ value length (2, BE) ‖ value.
    let mut ops = Vec::new();
    let mut rest = data;
    while let Some((&t, r)) = rest.split_first() {
        let Some((&klen, r)) = r.split_first() else {
            break;
        };
        let Some((key, r)) = r.split_at_checked(usize::from(klen)) else {
            break;
        };
        let Some((vlen, r)) = r.split_first_chunk::<2>() else {
            break;
        };
        let Some((value, r)) = r.split_at_checked(usize::from(u16::from_be_bytes(*vlen))) else {
            break;
        };
        let Some(&table) = Table::ALL.get(usize::from(t) % Table::ALL.len()) else {
            break;
        };
        ops.push(StorageOp::Put {
            table,
            key: key.to_vec(),
            value: value.to_vec(),
        });
        rest = r;
    }
    let mut storage = MemoryStorage::new();
    storage.commit(ops).expect("memory storage");
    #[allow(clippy::disallowed_methods)] // the fuzzer needs some origin; only offsets matter
    let now = Now {
        instant: Instant::now(),
        unix_nanos: 1_700_000_000_000_000_000,
    };
    let opened: Result<Messenger, _> = Messenger::new(
        MessengerConfig::default(),
        account,
        storage,
        mvds::MemoryStore::new(),
        [1; 32],
        now,
    );
    if let Ok(mut m) = opened {
        m.handle_timeout(now);
        let chats: Vec<_> = m.chats().cloned().collect();
        for c in &chats {
            let _ = m.messages(c).count();
        }
        while m.poll_transmit().is_some() {}
        while m.poll_event().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::MessageType;
    use crate::group::Group;
    use crate::metadata::PayloadType;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use x3dh::IdentityKeyPair;

    /// Valid inputs of every decoder, to mutate.
    fn seeds() -> Vec<Vec<u8>> {
        let key = IdentityKeyPair::from_seed(&[1; 32]);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut m = ChatMessage::text("chat", MessageType::OneToOne, "hello");
        m.clock = 9;
        let chat = m.encode().unwrap();
        let env = SignedPayload::sign(&key, PayloadType::ChatMessage, chat.clone())
            .unwrap()
            .encode();
        let other = IdentityKeyPair::from_seed(&[2; 32]);
        let g = Group::create(&key, &mut rng, "g", &[*other.public()], 1).unwrap();
        let update = g.update(None).encode().unwrap();
        let segs = segment::split(&[7u8; 3000], 1024).unwrap().join(&0xA5);
        vec![chat, env, update, segs]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn fuzz_bodies_survive_mutated_valid_input(
            which in 0usize..4,
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut data = seeds().swap_remove(which);
            for (i, x) in flips {
                let i = i.index(data.len());
                data[i] ^= x;
            }
            data.truncate(cut.index(data.len() + 1));
            metadata(&data);
            chat(&data);
            membership(&data);
            segments(&data);
        }

        #[test]
        fn messenger_ignores_garbage_on_every_topic(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..12)
        ) {
            let data = frames.join(&0xA5);
            messenger_frames(&data);
        }

        #[test]
        fn corrupt_storage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            storage_records(&data);
        }

        #[test]
        fn fuzz_bodies_survive_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            metadata(&data);
            chat(&data);
            membership(&data);
            segments(&data);
        }
    }
}
