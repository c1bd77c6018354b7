//! Property tests: both sides agree for arbitrary keys and randomness; a single flipped bit in a
//! bundle or header is refused or leads to a different (SK, AD), which the ratchet then refuses.
//!
//! Every flip of one fixed bundle and one fixed header is tried exhaustively; proptest adds random
//! keys with random flips. Each test prints its seed; proptest prints the failing input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::{NOW, bob_store, device, rng};
use proptest::prelude::*;
use x3dh::{
    Bundle, BundleConfig, IdentityKeyPair, InitialHeader, InitiatorOutput, PreKeyStore,
    PreKeyStoreConfig,
};

/// The outcome of a flipped bit in a bundle, as seen end to end.
#[derive(Debug, PartialEq, Eq)]
enum BundleFlip {
    /// Decoding or verification refused it.
    Refused,
    /// Accepted, but the responder refused the resulting header.
    ResponderRefused,
    /// Accepted, and the two sides derived different (SK, AD).
    Diverged,
    /// Accepted and agreed: the flip went unnoticed (the property fails).
    Agreed,
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

fn bundle_flip(seed: u64, bit: usize) -> BundleFlip {
    let mut store = bob_store(seed);
    let bytes = store.bundle(NOW).encode();
    let flipped = flip(&bytes, bit % (bytes.len() * 8));
    let Ok(bundle) = Bundle::decode(&flipped) else {
        return BundleFlip::Refused;
    };
    let Ok(verified) = bundle.verify(store.identity().public(), NOW, &BundleConfig::default())
    else {
        return BundleFlip::Refused;
    };
    let alice = IdentityKeyPair::generate(&mut rng(seed ^ 0xa11ce));
    let Some(installation) = verified.bundle().pre_keys().keys().next().cloned() else {
        return BundleFlip::Refused;
    };
    let Ok(out) = verified.initiate(&alice, &installation, &mut rng(seed ^ 0xe4)) else {
        return BundleFlip::Refused;
    };
    match store.respond(&out.header, NOW) {
        Err(_) => BundleFlip::ResponderRefused,
        Ok(answer)
            if answer.shared_secret != out.shared_secret
                || answer.associated_data != out.associated_data =>
        {
            BundleFlip::Diverged
        }
        Ok(_) => BundleFlip::Agreed,
    }
}

fn alice_output(seed: u64) -> (InitiatorOutput, Vec<u8>) {
    let store = bob_store(seed);
    let verified = store
        .bundle(NOW)
        .verify(store.identity().public(), NOW, &BundleConfig::default())
        .unwrap();
    let alice = IdentityKeyPair::generate(&mut rng(seed ^ 0xa11ce));
    let out = verified
        .initiate(&alice, &device("bob-1"), &mut rng(seed ^ 0xe4))
        .unwrap();
    let bytes = out.header.encode();
    (out, bytes)
}

/// True if the flipped header is refused by a fresh copy of Bob's store or yields another
/// (SK, AD) than Alice's.
fn header_flip_is_caught(seed: u64, out: &InitiatorOutput, bytes: &[u8], bit: usize) -> bool {
    let flipped = flip(bytes, bit % (bytes.len() * 8));
    let Ok(header) = InitialHeader::decode(&flipped) else {
        return true;
    };
    let mut store = bob_store(seed);
    match store.respond(&header, NOW) {
        Err(_) => true,
        Ok(answer) => {
            answer.shared_secret != out.shared_secret
                || answer.associated_data != out.associated_data
        }
    }
}

#[test]
fn every_single_bit_flip_in_a_bundle_is_refused() {
    let seed = 0x05ee_db0b;
    println!("seed = {seed:#x}");
    let len = bob_store(seed).bundle(NOW).encode().len();
    let mut outcomes = std::collections::BTreeMap::new();
    for bit in 0..len * 8 {
        let outcome = bundle_flip(seed, bit);
        assert_ne!(outcome, BundleFlip::Agreed, "bit {bit} went unnoticed");
        *outcomes.entry(format!("{outcome:?}")).or_insert(0usize) += 1;
    }
    println!("{} bits: {outcomes:?}", len * 8);
    // The bundle signature covers every field, so in fact every flip is refused outright.
    assert_eq!(outcomes.get("Refused"), Some(&(len * 8)));
}

#[test]
fn every_single_bit_flip_in_a_header_is_caught() {
    let seed = 0x0005_eeda_11ce;
    println!("seed = {seed:#x}");
    let (out, bytes) = alice_output(seed);
    // The unflipped header is answered with Alice's SK and AD.
    let mut store = bob_store(seed);
    let answer = store
        .respond(&InitialHeader::decode(&bytes).unwrap(), NOW)
        .unwrap();
    assert_eq!(answer.shared_secret, out.shared_secret);
    assert_eq!(answer.associated_data, out.associated_data);
    for bit in 0..bytes.len() * 8 {
        assert!(
            header_flip_is_caught(seed, &out, &bytes, bit),
            "bit {bit} went unnoticed"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn both_sides_agree_for_arbitrary_seeds(
        alice_seed in any::<[u8; 32]>(),
        bob_seed in any::<[u8; 32]>(),
        rng_seed in any::<u64>(),
        age in 0..BundleConfig::default().max_age_ms,
    ) {
        let mut r = rng(rng_seed);
        let alice = IdentityKeyPair::from_seed(&alice_seed);
        let bob = IdentityKeyPair::from_seed(&bob_seed);
        let bob_public = *bob.public();
        let mut store =
            PreKeyStore::new(bob, device("b"), PreKeyStoreConfig::default(), NOW, &mut r);
        let bytes = store.bundle(NOW).encode();
        let verified = Bundle::decode(&bytes)
            .unwrap()
            .verify(&bob_public, NOW + age, &BundleConfig::default())
            .unwrap();
        let out = verified.initiate(&alice, &device("b"), &mut r).unwrap();
        let header = InitialHeader::decode(&out.header.encode()).unwrap();
        let answer = store.respond(&header, NOW + age).unwrap();
        prop_assert!(answer.shared_secret == out.shared_secret);
        prop_assert_eq!(answer.associated_data, out.associated_data);
        prop_assert_eq!(answer.remote_identity, *alice.public());
        prop_assert_eq!(out.remote_identity, bob_public);
        prop_assert_eq!(answer.signed_pre_key.public_key(), out.remote_signed_pre_key);
        let mut ad = alice.public().ed25519_bytes().to_vec();
        ad.extend_from_slice(bob_public.ed25519_bytes());
        prop_assert_eq!(&out.associated_data.as_bytes()[..], &ad[..]);
    }

    #[test]
    fn a_flipped_bit_in_a_bundle_is_never_unnoticed(seed in any::<u64>(), bit in any::<usize>()) {
        prop_assert_ne!(bundle_flip(seed, bit), BundleFlip::Agreed);
    }

    #[test]
    fn a_flipped_bit_in_a_header_is_never_unnoticed(seed in any::<u64>(), bit in any::<usize>()) {
        let (out, bytes) = alice_output(seed);
        prop_assert!(header_flip_is_caught(seed, &out, &bytes, bit));
    }
}
