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
        fn fuzz_bodies_survive_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            metadata(&data);
            chat(&data);
            membership(&data);
            segments(&data);
        }
    }
}
