//! Behaviour of sessions: round trips, out-of-order delivery, duplicates, the skip and storage
//! limits at N, N+1 and u32::MAX, header-encryption specifics and transactional failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ratchet::{
    DecryptError, EncryptError, MAX_SKIP, MAX_STORED_SKIPPED_KEYS, Message, MessageHeader,
    PickleKey, RatchetKeyPair, RatchetPublicKey, Session, SessionConfig, SessionError,
};

fn modes() -> [SessionConfig; 2] {
    [
        SessionConfig::plain(),
        SessionConfig::with_header_encryption(),
    ]
}

fn pair(seed: u64, config: SessionConfig) -> (Session, Session, ChaCha20Rng) {
    println!("seed {seed}, {config:?}");
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let sk = [seed as u8; 32];
    let ad = [0xAD; 64];
    let prekey = RatchetKeyPair::generate(&mut rng);
    let alice = Session::initiator(&mut rng, &sk, &ad, prekey.public_key(), config).unwrap();
    let bob = Session::responder(&sk, &ad, prekey, config);
    (alice, bob, rng)
}

/// The session's state as bytes (a pickle under a fixed key and nonce).
fn snapshot(s: &Session) -> Vec<u8> {
    s.pickle(
        &mut ChaCha20Rng::seed_from_u64(0),
        &PickleKey::from([9; 32]),
    )
}

/// Decrypts and expects a rejection with `err` that leaves the session unchanged.
fn rejects(s: &mut Session, m: &Message, err: DecryptError) {
    let before = snapshot(s);
    assert_eq!(s.decrypt(m), Err(err));
    assert_eq!(
        before,
        snapshot(s),
        "a rejected message changed the session"
    );
}

#[test]
fn ping_pong_both_modes() {
    for config in modes() {
        let (mut alice, mut bob, mut rng) = pair(1, config);
        assert!(!bob.can_encrypt());
        assert_eq!(
            bob.encrypt(&mut rng, b"too early").unwrap_err(),
            EncryptError::NotReady
        );
        for round in 0..20u32 {
            let text = format!("a{round}");
            let m = alice.encrypt(&mut rng, text.as_bytes()).unwrap();
            assert_eq!(&bob.decrypt(&m).unwrap()[..], text.as_bytes());
            let text = format!("b{round}");
            let m = bob.encrypt(&mut rng, text.as_bytes()).unwrap();
            assert_eq!(&alice.decrypt(&m).unwrap()[..], text.as_bytes());
        }
        assert_eq!(alice.skipped_key_count() + bob.skipped_key_count(), 0);
    }
}

#[test]
fn ratchet_key_changes_on_every_turn() {
    let (mut alice, mut bob, mut rng) = pair(2, SessionConfig::plain());
    let key_of = |m: &Message| match m.header() {
        MessageHeader::Plain(h) => h.ratchet_key,
        MessageHeader::Encrypted(_) => panic!("plain session"),
    };
    let a0 = alice.encrypt(&mut rng, b"x").unwrap();
    let a1 = alice.encrypt(&mut rng, b"x").unwrap();
    assert_eq!(key_of(&a0), key_of(&a1));
    bob.decrypt(&a0).unwrap();
    let b0 = bob.encrypt(&mut rng, b"y").unwrap();
    alice.decrypt(&b0).unwrap();
    let a2 = alice.encrypt(&mut rng, b"z").unwrap();
    assert_ne!(key_of(&a2), key_of(&a0));
    match a2.header() {
        MessageHeader::Plain(h) => assert_eq!((h.pn, h.n), (2, 0)),
        MessageHeader::Encrypted(_) => unreachable!(),
    }
    // Bob gets a1 (old chain, skipped on the DH step) after a2.
    assert_eq!(&bob.decrypt(&a2).unwrap()[..], b"z");
    assert_eq!(bob.skipped_key_count(), 1);
    assert_eq!(&bob.decrypt(&a1).unwrap()[..], b"x");
    assert_eq!(bob.skipped_key_count(), 0);
}

#[test]
fn out_of_order_across_chains_and_duplicates() {
    for config in modes() {
        let (mut alice, mut bob, mut rng) = pair(3, config);
        let first: Vec<_> = (0..5)
            .map(|i| alice.encrypt(&mut rng, &[i]).unwrap())
            .collect();
        bob.decrypt(&first[4]).unwrap();
        assert_eq!(bob.skipped_key_count(), 4);
        let reply = bob.encrypt(&mut rng, b"r").unwrap();
        alice.decrypt(&reply).unwrap();
        let second: Vec<_> = (10..13)
            .map(|i| alice.encrypt(&mut rng, &[i]).unwrap())
            .collect();
        bob.decrypt(&second[2]).unwrap();
        for (i, m) in [
            (1, &first[1]),
            (11, &second[1]),
            (0, &first[0]),
            (10, &second[0]),
        ] {
            assert_eq!(&bob.decrypt(m).unwrap()[..], &[i]);
        }
        assert_eq!(bob.skipped_key_count(), 2);
        // Replays: the current chain, a stored-key chain and an older chain.
        rejects(&mut bob, &second[2], DecryptError::Duplicate);
        rejects(&mut bob, &second[0], DecryptError::Duplicate);
        rejects(&mut bob, &first[4], DecryptError::Duplicate);
        rejects(&mut bob, &first[1], DecryptError::Duplicate);
        assert_eq!(&bob.decrypt(&first[2]).unwrap()[..], &[2]);
        assert_eq!(&bob.decrypt(&first[3]).unwrap()[..], &[3]);
        assert_eq!(bob.skipped_key_count(), 0);
        rejects(&mut alice, &reply, DecryptError::Duplicate);
    }
}

/// A message exactly MAX_SKIP ahead decrypts; MAX_SKIP + 1 ahead is rejected without change.
#[test]
fn skip_limit_at_n_and_n_plus_one() {
    for config in modes() {
        let (mut alice, mut bob, mut rng) = pair(4, config);
        let msgs: Vec<_> = (0..=MAX_SKIP + 1)
            .map(|i| alice.encrypt(&mut rng, &i.to_be_bytes()).unwrap())
            .collect();
        // n = MAX_SKIP + 1 needs MAX_SKIP + 1 skipped keys: rejected.
        rejects(
            &mut bob,
            &msgs[MAX_SKIP as usize + 1],
            DecryptError::TooManySkipped {
                requested: u64::from(MAX_SKIP) + 1,
            },
        );
        assert_eq!(bob.skipped_key_count(), 0);
        // n = MAX_SKIP needs exactly MAX_SKIP: accepted, and all of them stored.
        let m = &msgs[MAX_SKIP as usize];
        assert_eq!(&bob.decrypt(m).unwrap()[..], &MAX_SKIP.to_be_bytes());
        assert_eq!(bob.skipped_key_count(), MAX_SKIP as usize);
        // Now the last one is one step ahead, and the skipped ones all decrypt.
        bob.decrypt(&msgs[MAX_SKIP as usize + 1]).unwrap();
        for (i, m) in msgs.iter().enumerate().take(MAX_SKIP as usize) {
            assert_eq!(&bob.decrypt(m).unwrap()[..], &(i as u32).to_be_bytes());
        }
        assert_eq!(bob.skipped_key_count(), 0);
    }
}

/// The previous-chain length `pn` of a DH step obeys the same limit (N ok, N+1 rejected).
#[test]
fn skip_limit_on_previous_chain() {
    for config in modes() {
        for extra in [0u32, 1] {
            let (mut alice, mut bob, mut rng) = pair(5, config);
            let first = alice.encrypt(&mut rng, b"0").unwrap();
            bob.decrypt(&first).unwrap();
            // Alice sends MAX_SKIP + extra more on the same chain, all lost.
            for _ in 0..MAX_SKIP + extra {
                alice.encrypt(&mut rng, b"lost").unwrap();
            }
            let reply = bob.encrypt(&mut rng, b"r").unwrap();
            alice.decrypt(&reply).unwrap();
            let next = alice.encrypt(&mut rng, b"new chain").unwrap();
            if extra == 0 {
                assert_eq!(&bob.decrypt(&next).unwrap()[..], b"new chain");
                assert_eq!(bob.skipped_key_count(), MAX_SKIP as usize);
            } else {
                rejects(
                    &mut bob,
                    &next,
                    DecryptError::TooManySkipped {
                        requested: u64::from(MAX_SKIP) + 1,
                    },
                );
            }
        }
    }
}

/// A plain header claiming n = u32::MAX is rejected at once: no key derived, nothing stored.
#[test]
#[allow(clippy::disallowed_methods)] // the time is printed for information, never asserted
fn jump_to_u32_max_is_rejected_immediately() {
    let (mut alice, mut bob, mut rng) = pair(6, SessionConfig::plain());
    let m = alice.encrypt(&mut rng, b"hello").unwrap();
    bob.decrypt(&m).unwrap();
    let m = alice.encrypt(&mut rng, b"again").unwrap();
    // On the current chain only `n` matters (`pn` is read on a DH step only).
    for (n, pn) in [(u32::MAX, 0), (u32::MAX, u32::MAX)] {
        let mut wire = m.to_proto();
        let dr = wire.dr_header.as_mut().unwrap();
        dr.n = n;
        dr.pn = pn;
        let forged = Message::from_proto(&wire).unwrap();
        let before = snapshot(&bob);
        let started = std::time::Instant::now();
        let err = bob.decrypt(&forged).unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            matches!(err, DecryptError::TooManySkipped { .. }),
            "{err:?}"
        );
        assert_eq!(before, snapshot(&bob));
        println!("n={n} pn={pn}: rejected in {elapsed:?}");
    }
    // A new ratchet key with n or pn = u32::MAX: rejected before the DH.
    for (n, pn, requested) in [
        (u32::MAX, 0, u64::from(u32::MAX)),
        (0, u32::MAX, u64::from(u32::MAX) - 1),
    ] {
        let mut wire = m.to_proto();
        let dr = wire.dr_header.as_mut().unwrap();
        dr.key = RatchetKeyPair::generate(&mut rng)
            .public_key()
            .to_bytes()
            .to_vec();
        dr.n = n;
        dr.pn = pn;
        rejects(
            &mut bob,
            &Message::from_proto(&wire).unwrap(),
            DecryptError::TooManySkipped { requested },
        );
    }
    assert_eq!(bob.skipped_key_count(), 0);
    assert_eq!(&bob.decrypt(&m).unwrap()[..], b"again");
}

/// Beyond MAX_STORED_SKIPPED_KEYS the oldest keys go first.
#[test]
fn stored_keys_are_evicted_oldest_first() {
    for config in modes() {
        let (mut alice, mut bob, mut rng) = pair(7, config);
        let mut all = Vec::new();
        // Three turns of MAX_SKIP + 1 messages where only each turn's last is delivered:
        // 3 * MAX_SKIP = 3000 skipped keys, of which the oldest 1000 must be evicted.
        for turn in 0..3 {
            let msgs: Vec<_> = (0..=MAX_SKIP)
                .map(|i| alice.encrypt(&mut rng, &[turn, (i % 256) as u8]).unwrap())
                .collect();
            bob.decrypt(msgs.last().unwrap()).unwrap();
            assert!(bob.skipped_key_count() <= MAX_STORED_SKIPPED_KEYS);
            let r = bob.encrypt(&mut rng, b"r").unwrap();
            alice.decrypt(&r).unwrap();
            all.push(msgs);
        }
        assert_eq!(bob.skipped_key_count(), MAX_STORED_SKIPPED_KEYS);
        // The whole first turn was evicted.
        rejects(&mut bob, &all[0][0], DecryptError::Duplicate);
        rejects(&mut bob, &all[0][999], DecryptError::Duplicate);
        // The second and third turns are intact.
        assert_eq!(&bob.decrypt(&all[1][0]).unwrap()[..], &[1, 0]);
        assert_eq!(
            &bob.decrypt(&all[2][999]).unwrap()[..],
            &[2, (999 % 256) as u8]
        );
        assert_eq!(bob.skipped_key_count(), MAX_STORED_SKIPPED_KEYS - 2);
    }
}

#[test]
fn tampering_and_wrong_mode_are_rejected_without_change() {
    for config in modes() {
        let (mut alice, mut bob, mut rng) = pair(8, config);
        let m = alice.encrypt(&mut rng, b"payload").unwrap();
        // Flip every bit of the encoding that decoding keeps.
        let bytes = m.encode();
        let mut rejected = 0;
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            if let Ok(t) = Message::decode(&b)
                && t != m
            {
                let before = snapshot(&bob);
                assert!(bob.decrypt(&t).is_err());
                assert_eq!(before, snapshot(&bob));
                rejected += 1;
            }
        }
        assert!(rejected > 100);
        // The other mode's message.
        let other_mode = if config.header_encryption {
            SessionConfig::plain()
        } else {
            SessionConfig::with_header_encryption()
        };
        let (mut other, _, _) = pair(8, other_mode);
        let foreign = other.encrypt(&mut rng, b"x").unwrap();
        rejects(&mut bob, &foreign, DecryptError::HeaderModeMismatch);
        assert_eq!(&bob.decrypt(&m).unwrap()[..], b"payload");
    }
}

#[test]
fn header_encryption_hides_keys_and_counters() {
    let (mut alice, mut bob, mut rng) = pair(9, SessionConfig::with_header_encryption());
    let a = alice.encrypt(&mut rng, b"x").unwrap();
    let dr = a.to_dr_header();
    assert!(dr.key.is_empty() && dr.n == 0 && dr.pn == 0);
    assert_eq!(
        dr.encrypted_header.len(),
        ratchet::message::ENCRYPTED_HEADER_LEN
    );
    let pub_key = alice.ratchet_public_key().to_bytes();
    assert!(!a.encode().windows(32).any(|w| w == pub_key));
    // Two messages with the same header key still look unrelated (random nonces).
    let b = alice.encrypt(&mut rng, b"x").unwrap();
    assert_ne!(
        a.to_dr_header().encrypted_header[24..],
        b.to_dr_header().encrypted_header[24..]
    );
    bob.decrypt(&b).unwrap();
    bob.decrypt(&a).unwrap();
    // Another session's header does not open.
    let (mut eve, _, _) = pair(10, SessionConfig::with_header_encryption());
    let foreign = eve.encrypt(&mut rng, b"x").unwrap();
    rejects(&mut bob, &foreign, DecryptError::HeaderUndecryptable);
}

#[test]
fn low_order_ratchet_keys_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let zero = RatchetPublicKey::from([0u8; 32]);
    let err = Session::initiator(&mut rng, &[1; 32], &[2; 64], zero, SessionConfig::plain());
    assert_eq!(err.unwrap_err(), SessionError::InvalidRatchetKey);
    let (mut alice, mut bob, mut rng) = pair(11, SessionConfig::plain());
    let m = alice.encrypt(&mut rng, b"x").unwrap();
    let mut wire = m.to_proto();
    wire.dr_header.as_mut().unwrap().key = vec![0; 32];
    rejects(
        &mut bob,
        &Message::from_proto(&wire).unwrap(),
        DecryptError::InvalidRatchetKey,
    );
    bob.decrypt(&m).unwrap();
}

#[test]
fn responder_prekey_never_sends() {
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let prekey = RatchetKeyPair::generate(&mut rng);
    let mut alice = Session::initiator(
        &mut rng,
        &[1; 32],
        &[2; 64],
        prekey.public_key(),
        SessionConfig::plain(),
    )
    .unwrap();
    let m = alice.encrypt(&mut rng, b"x").unwrap();
    let mut wire = m.to_proto();
    wire.dr_header.as_mut().unwrap().key = prekey.public_key().to_bytes().to_vec();
    rejects(
        &mut alice,
        &Message::from_proto(&wire).unwrap(),
        DecryptError::UnexpectedRatchetKey,
    );
}

#[test]
fn debug_prints_no_secrets() {
    let secret = [0x5Au8; 32];
    let pair = RatchetKeyPair::from_secret_bytes(secret);
    let text = format!("{pair:?} {:?}", PickleKey::from(secret));
    assert!(!text.contains(&hex::encode(secret)));
    assert!(!text.to_lowercase().contains("5a5a5a5a"));
    let (alice, _, _) = pair_with_sk([0x5A; 32]);
    let text = format!("{alice:?}");
    assert!(!text.contains("5a5a5a5a"), "{text}");
    assert!(text.contains("skipped_keys"));
}

fn pair_with_sk(sk: [u8; 32]) -> (Session, Session, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let prekey = RatchetKeyPair::generate(&mut rng);
    let alice = Session::initiator(
        &mut rng,
        &sk,
        &[0x5A; 64],
        prekey.public_key(),
        SessionConfig::plain(),
    )
    .unwrap();
    let bob = Session::responder(&sk, &[0x5A; 64], prekey, SessionConfig::plain());
    (alice, bob, rng)
}
