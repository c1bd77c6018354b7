//! Shared test helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use x3dh::{
    IdentityKeyPair, InstallationId, PickleKey, PreKeyStore, PreKeyStoreConfig, VerifiedBundle,
};

/// The wall-clock time the tests start at (Unix ms).
pub(crate) const NOW: u64 = 1_700_000_000_000;
pub(crate) const HOUR: u64 = 60 * 60 * 1000;
pub(crate) const DAY: u64 = 24 * HOUR;

pub(crate) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub(crate) fn device(name: &str) -> InstallationId {
    InstallationId::new(name).unwrap()
}

/// Bob's store (seeded), with installation "bob-1".
pub(crate) fn bob_store(seed: u64) -> PreKeyStore {
    let mut rng = rng(seed);
    let bob = IdentityKeyPair::generate(&mut rng);
    PreKeyStore::new(
        bob,
        device("bob-1"),
        PreKeyStoreConfig::default(),
        NOW,
        &mut rng,
    )
}

pub(crate) fn verified(store: &PreKeyStore, now: u64) -> VerifiedBundle {
    store
        .bundle(now)
        .verify(
            store.identity().public(),
            now,
            &x3dh::BundleConfig::default(),
        )
        .unwrap()
}

/// A fingerprint of a store's whole state: its pickle under a fixed key and nonce.
pub(crate) fn state(store: &PreKeyStore) -> Vec<u8> {
    store.pickle(&PickleKey::new([9; 32]), &mut rng(0))
}
