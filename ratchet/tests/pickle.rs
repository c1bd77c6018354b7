//! Encrypted, versioned pickles: round trips, rejection of bad input, and the committed
//! version-1 samples in `tests/data/`, which must keep loading.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ratchet::{
    MAX_PICKLE_LEN, Message, PICKLE_VERSION, PickleError, PickleKey, RatchetKeyPair, Session,
    SessionConfig,
};
use std::path::PathBuf;

/// The key of the committed samples.
const SAMPLE_KEY: [u8; 32] = [0x77; 32];
/// The seed of the RNG that drew the samples' pickle nonces.
const SAMPLE_NONCE_SEED: u64 = 100;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn mode_name(config: SessionConfig) -> &'static str {
    if config.header_encryption {
        "he"
    } else {
        "plain"
    }
}

/// The sample conversation: Alice sends m0, m1, m2; Bob gets m0 and m2 (m1's key is stored);
/// Bob replies r0, which Alice gets; Alice sends m3 on her new chain. m1 and m3 stay in flight.
fn sample_conversation(config: SessionConfig) -> (Session, Session, Message, Message) {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let prekey = RatchetKeyPair::generate(&mut rng);
    let mut alice = Session::initiator(
        &mut rng,
        &[0x11; 32],
        &[0x22; 64],
        prekey.public_key(),
        config,
    )
    .unwrap();
    let mut bob = Session::responder(&[0x11; 32], &[0x22; 64], prekey, config);
    let m: Vec<_> = ["m0", "m1", "m2"]
        .iter()
        .map(|t| alice.encrypt(&mut rng, t.as_bytes()).unwrap())
        .collect();
    bob.decrypt(&m[0]).unwrap();
    bob.decrypt(&m[2]).unwrap();
    let r0 = bob.encrypt(&mut rng, b"r0").unwrap();
    alice.decrypt(&r0).unwrap();
    let m3 = alice.encrypt(&mut rng, b"m3").unwrap();
    (alice, bob, m[1].clone(), m3)
}

/// Regenerates the committed samples. Run only when adding a new version's samples:
/// `cargo test -p ratchet --test pickle -- --ignored write_samples`.
#[test]
#[ignore = "writes tests/data; run by hand for a new pickle version"]
fn write_samples() {
    let key = PickleKey::from(SAMPLE_KEY);
    for config in [
        SessionConfig::plain(),
        SessionConfig::with_header_encryption(),
    ] {
        let (alice, bob, m1, m3) = sample_conversation(config);
        let mode = mode_name(config);
        let v = PICKLE_VERSION;
        let mut rng = ChaCha20Rng::seed_from_u64(SAMPLE_NONCE_SEED);
        std::fs::write(
            data(&format!("pickle-v{v}-{mode}-alice.bin")),
            alice.pickle(&mut rng, &key),
        )
        .unwrap();
        std::fs::write(
            data(&format!("pickle-v{v}-{mode}-bob.bin")),
            bob.pickle(&mut rng, &key),
        )
        .unwrap();
        std::fs::write(data(&format!("message-v{v}-{mode}-m1.bin")), m1.encode()).unwrap();
        std::fs::write(data(&format!("message-v{v}-{mode}-m3.bin")), m3.encode()).unwrap();
    }
}

#[test]
fn version_1_samples_still_load_and_talk() {
    let key = PickleKey::from(SAMPLE_KEY);
    for config in [
        SessionConfig::plain(),
        SessionConfig::with_header_encryption(),
    ] {
        let mode = mode_name(config);
        let read = |name: &str| std::fs::read(data(name)).unwrap();
        let alice_bytes = read(&format!("pickle-v1-{mode}-alice.bin"));
        let bob_bytes = read(&format!("pickle-v1-{mode}-bob.bin"));
        assert_eq!(alice_bytes[4], 1, "sample is version 1");
        let mut alice = Session::from_pickle(&alice_bytes, &key).unwrap();
        let mut bob = Session::from_pickle(&bob_bytes, &key).unwrap();
        assert_eq!(alice.header_encryption(), config.header_encryption);
        assert_eq!(bob.skipped_key_count(), 1);
        if PICKLE_VERSION == 1 {
            // Version 1 is still the current one: writing it again gives the same bytes.
            let mut rng = ChaCha20Rng::seed_from_u64(SAMPLE_NONCE_SEED);
            assert_eq!(alice.pickle(&mut rng, &key), alice_bytes);
            assert_eq!(bob.pickle(&mut rng, &key), bob_bytes);
        }
        let m1 = Message::decode(&read(&format!("message-v1-{mode}-m1.bin"))).unwrap();
        let m3 = Message::decode(&read(&format!("message-v1-{mode}-m3.bin"))).unwrap();
        assert_eq!(&bob.decrypt(&m3).unwrap()[..], b"m3");
        assert_eq!(&bob.decrypt(&m1).unwrap()[..], b"m1");
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for i in 0..3u8 {
            let b = bob.encrypt(&mut rng, &[i]).unwrap();
            assert_eq!(&alice.decrypt(&b).unwrap()[..], &[i]);
            let a = alice.encrypt(&mut rng, &[i, i]).unwrap();
            assert_eq!(&bob.decrypt(&a).unwrap()[..], &[i, i]);
        }
    }
}

#[test]
fn round_trip_keeps_everything() {
    for config in [
        SessionConfig::plain(),
        SessionConfig::with_header_encryption(),
    ] {
        let (alice, bob, m1, m3) = sample_conversation(config);
        let key = PickleKey::from([3; 32]);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut alice2 = Session::from_pickle(&alice.pickle(&mut rng, &key), &key).unwrap();
        let mut bob2 = Session::from_pickle(&bob.pickle(&mut rng, &key), &key).unwrap();
        let fixed = |s: &Session| s.pickle(&mut ChaCha20Rng::seed_from_u64(5), &key);
        assert_eq!(fixed(&alice), fixed(&alice2));
        assert_eq!(fixed(&bob), fixed(&bob2));
        assert_eq!(&bob2.decrypt(&m1).unwrap()[..], b"m1");
        assert_eq!(&bob2.decrypt(&m3).unwrap()[..], b"m3");
        let r = bob2.encrypt(&mut rng, b"r").unwrap();
        assert_eq!(&alice2.decrypt(&r).unwrap()[..], b"r");
        // A fresh responder that has not received anything round-trips too.
        let fresh = Session::responder(
            &[1; 32],
            &[2; 64],
            RatchetKeyPair::generate(&mut rng),
            config,
        );
        let back = Session::from_pickle(&fresh.pickle(&mut rng, &key), &key).unwrap();
        assert_eq!(fixed(&fresh), fixed(&back));
    }
}

#[test]
fn bad_pickles_are_rejected() {
    let (alice, _, _, _) = sample_conversation(SessionConfig::plain());
    let key = PickleKey::from([3; 32]);
    let good = alice.pickle(&mut ChaCha20Rng::seed_from_u64(1), &key);
    assert_eq!(
        Session::from_pickle(&good, &PickleKey::from([4; 32])).unwrap_err(),
        PickleError::Decryption
    );
    let mut v = good.clone();
    v[4] = 2;
    assert_eq!(
        Session::from_pickle(&v, &key).unwrap_err(),
        PickleError::UnsupportedVersion(2)
    );
    let mut v = good.clone();
    v[0] = b'X';
    assert_eq!(
        Session::from_pickle(&v, &key).unwrap_err(),
        PickleError::NotAPickle
    );
    assert_eq!(
        Session::from_pickle(&good[..20], &key).unwrap_err(),
        PickleError::NotAPickle
    );
    assert_eq!(
        Session::from_pickle(&good[..good.len() - 1], &key).unwrap_err(),
        PickleError::Decryption
    );
    let mut v = good.clone();
    let last = v.len() - 1;
    v[last] ^= 1;
    assert_eq!(
        Session::from_pickle(&v, &key).unwrap_err(),
        PickleError::Decryption
    );
    let huge = vec![0u8; MAX_PICKLE_LEN + 1];
    assert_eq!(
        Session::from_pickle(&huge, &key).unwrap_err(),
        PickleError::TooLarge(MAX_PICKLE_LEN + 1)
    );
}

#[test]
fn full_session_fits_the_pickle_limit() {
    // A session at the skipped-key limit, with header encryption (the largest layout).
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let config = SessionConfig::with_header_encryption();
    let prekey = RatchetKeyPair::generate(&mut rng);
    let mut alice =
        Session::initiator(&mut rng, &[1; 32], &[2; 64], prekey.public_key(), config).unwrap();
    let mut bob = Session::responder(&[1; 32], &[2; 64], prekey, config);
    for _ in 0..3 {
        let mut last = None;
        for _ in 0..=ratchet::MAX_SKIP {
            last = Some(alice.encrypt(&mut rng, b"x").unwrap());
        }
        bob.decrypt(&last.unwrap()).unwrap();
        let r = bob.encrypt(&mut rng, b"r").unwrap();
        alice.decrypt(&r).unwrap();
    }
    assert_eq!(bob.skipped_key_count(), ratchet::MAX_STORED_SKIPPED_KEYS);
    let key = PickleKey::from([3; 32]);
    let p = bob.pickle(&mut rng, &key);
    println!("full pickle: {} bytes (limit {MAX_PICKLE_LEN})", p.len());
    assert!(p.len() <= MAX_PICKLE_LEN);
    let back = Session::from_pickle(&p, &key).unwrap();
    assert_eq!(back.skipped_key_count(), ratchet::MAX_STORED_SKIPPED_KEYS);
}
