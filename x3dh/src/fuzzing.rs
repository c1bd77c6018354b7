//! Fuzz bodies, shared by the cargo-fuzz targets in `fuzz/` (`x3dh_bundle`, `x3dh_header`) and by
//! the test that replays sample inputs and their mutations.
//!
//! A fuzz body panics when it finds a bug; that is how the fuzzer learns of it.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::{
    Bundle, BundleConfig, IdentityKeyPair, InitialHeader, InstallationId, PreKeyStore,
    PreKeyStoreConfig, RespondError,
};

/// The time every fuzz body runs at (Unix ms).
pub const FUZZ_NOW_MS: u64 = 1_700_000_000_000;

const INSTALLATION: &str = "fuzz-device";

fn responder_store() -> PreKeyStore {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let identity = IdentityKeyPair::from_seed(&[0x42; 32]);
    let installation = InstallationId::new(INSTALLATION).expect("valid id");
    PreKeyStore::new(
        identity,
        installation,
        PreKeyStoreConfig::default(),
        FUZZ_NOW_MS,
        &mut rng,
    )
}

/// Decodes `data` as a bundle. A decoded bundle must re-encode to bytes that decode to the same
/// bundle; verification (at the bundle's own timestamp, so that time checks pass) must not
/// panic; a verified bundle must verify against its own identity and yield an agreement with
/// every installation it lists.
pub fn bundle(data: &[u8]) {
    let Ok(bundle) = Bundle::decode(data) else {
        return;
    };
    let again = Bundle::decode(&bundle.encode()).expect("re-decoding our own encoding failed");
    assert_eq!(again, bundle, "decode(encode(b)) != b");
    let config = BundleConfig {
        max_installations: crate::MAX_INSTALLATIONS,
        ..BundleConfig::default()
    };
    let now = bundle.timestamp_ms();
    let Ok(verified) = bundle.verify_any_identity(now, &config) else {
        return;
    };
    assert!(bundle.verify(bundle.identity(), now, &config).is_ok());
    let alice = IdentityKeyPair::from_seed(&[0x11; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for installation in bundle.pre_keys().keys() {
        verified
            .initiate(&alice, installation, &mut rng)
            .expect("a verified bundle must allow an agreement");
    }
}

/// Decodes `data` as an initial-message header and answers it with a fixed responder store. A
/// decoded header must round-trip; an answered header must be refused as a replay the second
/// time, with the store unchanged.
pub fn header(data: &[u8]) {
    let Ok(header) = InitialHeader::decode(data) else {
        return;
    };
    let again = InitialHeader::decode(&header.encode()).expect("re-decoding our own encoding");
    assert_eq!(again, header, "decode(encode(h)) != h");
    let mut store = responder_store();
    match store.respond(&header, FUZZ_NOW_MS) {
        Ok(_) => {
            assert_eq!(store.replay_cache_len(), 1);
            assert_eq!(
                store.respond(&header, FUZZ_NOW_MS).err(),
                Some(RespondError::Replayed)
            );
            assert_eq!(store.replay_cache_len(), 1);
        }
        Err(_) => assert_eq!(store.replay_cache_len(), 0, "a refusal changed the store"),
    }
}

/// A valid encoded bundle of the fixed responder, as a seed input for [`bundle`].
pub fn sample_bundle() -> Vec<u8> {
    responder_store().bundle(FUZZ_NOW_MS).encode()
}

/// A valid encoded header addressed to the fixed responder, as a seed input for [`header`].
pub fn sample_header() -> Vec<u8> {
    let store = responder_store();
    let verified = store
        .bundle(FUZZ_NOW_MS)
        .verify_any_identity(FUZZ_NOW_MS, &BundleConfig::default())
        .expect("own bundle verifies");
    let alice = IdentityKeyPair::from_seed(&[0x11; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    verified
        .initiate(&alice, store.installation_id(), &mut rng)
        .expect("agreement")
        .header
        .encode()
}
