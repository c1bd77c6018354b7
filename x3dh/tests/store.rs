//! The prekey store: rotation on the caller's clock, the grace period, bounds, multi-device
//! bundles and pickling.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::collections::BTreeMap;

use common::{DAY, HOUR, NOW, bob_store, device, rng, state, verified};
use x3dh::{
    BundleConfig, BundleError, IdentityKeyPair, MAX_RETIRED_PRE_KEYS, PickleKey, PreKeyId,
    PreKeyStore, PreKeyStoreConfig, RespondError,
};

#[test]
fn rotates_on_schedule_and_keeps_retired_prekeys_for_the_grace_period() {
    let mut store = bob_store(1);
    let mut r = rng(2);
    let config = PreKeyStoreConfig::default();
    assert_eq!(config.rotation_interval_ms, DAY);
    assert_eq!(config.grace_period_ms, 14 * DAY);
    assert_eq!(store.current_pre_key().id(), PreKeyId::new(1).unwrap());
    assert_eq!(store.poll_timeout(), NOW + DAY);

    // Alice builds an initial message against prekey 1.
    let alice = IdentityKeyPair::generate(&mut rng(3));
    let late = verified(&store, NOW)
        .initiate(&alice, &device("bob-1"), &mut rng(4))
        .unwrap();

    // Before the deadline nothing happens.
    let before = state(&store);
    assert!(!store.handle_timeout(NOW + DAY - 1, &mut r));
    assert_eq!(state(&store), before);

    // At the deadline a new prekey replaces it; the old one is retired.
    assert!(store.handle_timeout(NOW + DAY, &mut r));
    assert_eq!(store.current_pre_key().id(), PreKeyId::new(2).unwrap());
    assert_eq!(store.current_pre_key().created_at_ms(), NOW + DAY);
    assert_eq!(
        store.retired_pre_keys().map(|k| k.id()).collect::<Vec<_>>(),
        vec![PreKeyId::new(1).unwrap()]
    );
    // The next event is the next rotation (the retired key expires later).
    assert_eq!(store.poll_timeout(), NOW + 2 * DAY);
    // The new bundle lists prekey 2 and verifies.
    let bundle = verified(&store, NOW + DAY);
    assert_eq!(
        bundle.pre_key(&device("bob-1")).unwrap().id(),
        PreKeyId::new(2).unwrap()
    );

    // Keep the schedule going for 13 more days: prekeys 3..=15.
    for day in 2..=14 {
        assert!(store.handle_timeout(NOW + day * DAY, &mut r));
    }
    assert_eq!(store.current_pre_key().id(), PreKeyId::new(15).unwrap());
    // Prekey 1 retired at NOW + DAY; its grace ends at NOW + 15 DAY. It still answers now.
    let answer = store.respond(&late.header, NOW + 15 * DAY - 1).unwrap();
    assert_eq!(answer.shared_secret, late.shared_secret);
    assert_eq!(answer.pre_key_id, PreKeyId::new(1).unwrap());
    assert_eq!(store.replay_cache_len(), 1);

    // Once the grace period is over it is deleted, with its replay entries.
    assert!(store.handle_timeout(NOW + 15 * DAY, &mut r));
    assert!(
        store
            .retired_pre_keys()
            .all(|k| k.id() != PreKeyId::new(1).unwrap())
    );
    assert_eq!(store.replay_cache_len(), 0);
    let again = verified(&bob_store(1), NOW)
        .initiate(&alice, &device("bob-1"), &mut rng(5))
        .unwrap();
    assert_eq!(
        store.respond(&again.header, NOW + 15 * DAY).err(),
        Some(RespondError::UnknownPreKey {
            pre_key_id: PreKeyId::new(1).unwrap()
        })
    );
    // Fourteen prekeys are retained in the steady state.
    assert_eq!(store.retired_pre_keys().count(), 14);
}

#[test]
fn configurable_schedule_and_poll_timeout() {
    let mut r = rng(6);
    let config = PreKeyStoreConfig {
        rotation_interval_ms: 6 * HOUR,
        grace_period_ms: 2 * HOUR,
    };
    let mut store = PreKeyStore::new(
        IdentityKeyPair::generate(&mut r),
        device("d"),
        config,
        NOW,
        &mut r,
    );
    assert_eq!(store.poll_timeout(), NOW + 6 * HOUR);
    store.rotate(NOW + HOUR, &mut r);
    // Forced rotation: the retired key expires at NOW + 3 h, before the next rotation (NOW + 7 h).
    assert_eq!(store.poll_timeout(), NOW + 3 * HOUR);
    assert!(!store.handle_timeout(NOW + 3 * HOUR, &mut r));
    assert_eq!(store.retired_pre_keys().count(), 0);
    assert_eq!(store.poll_timeout(), NOW + 7 * HOUR);
    // A clock that jumps backwards changes nothing.
    let before = state(&store);
    assert!(!store.handle_timeout(NOW - DAY, &mut r));
    assert_eq!(state(&store), before);
    // A clock that jumps far ahead rotates once and deletes what expired.
    assert!(store.handle_timeout(NOW + 30 * DAY, &mut r));
    assert_eq!(store.current_pre_key().id(), PreKeyId::new(3).unwrap());
    assert_eq!(store.retired_pre_keys().count(), 1);
}

#[test]
fn retired_prekeys_are_bounded() {
    let mut store = bob_store(7);
    let mut r = rng(8);
    for i in 1..=(MAX_RETIRED_PRE_KEYS as u64 + 6) {
        store.rotate(NOW + i, &mut r);
    }
    assert_eq!(store.retired_pre_keys().count(), MAX_RETIRED_PRE_KEYS);
    // The oldest went first.
    assert_eq!(
        store.retired_pre_keys().next().unwrap().id(),
        PreKeyId::new(7).unwrap()
    );
    assert_eq!(
        store.current_pre_key().id(),
        PreKeyId::new(MAX_RETIRED_PRE_KEYS as u32 + 7).unwrap()
    );
}

#[test]
fn multi_device_bundle() {
    // Two installations of one identity, each with its own store.
    let seed = [0x33; 32];
    let mut r = rng(9);
    let mut phone = PreKeyStore::new(
        IdentityKeyPair::from_seed(&seed),
        device("phone"),
        PreKeyStoreConfig::default(),
        NOW,
        &mut r,
    );
    let mut laptop = PreKeyStore::new(
        IdentityKeyPair::from_seed(&seed),
        device("laptop"),
        PreKeyStoreConfig::default(),
        NOW,
        &mut r,
    );
    let mut others = BTreeMap::new();
    others.insert(device("laptop"), laptop.current_pre_key().clone());
    let bundle = phone.bundle_with(NOW, &others).unwrap();
    assert_eq!(bundle.pre_keys().len(), 2);
    let verified = bundle
        .verify(phone.identity().public(), NOW, &BundleConfig::default())
        .unwrap();
    // Alice runs one agreement per installation; each device answers its own.
    let alice = IdentityKeyPair::generate(&mut r);
    let to_phone = verified.initiate(&alice, &device("phone"), &mut r).unwrap();
    let to_laptop = verified
        .initiate(&alice, &device("laptop"), &mut r)
        .unwrap();
    assert_ne!(to_phone.shared_secret, to_laptop.shared_secret);
    assert_eq!(
        laptop
            .respond(&to_laptop.header, NOW)
            .unwrap()
            .shared_secret,
        to_laptop.shared_secret
    );
    assert_eq!(
        phone.respond(&to_phone.header, NOW).unwrap().shared_secret,
        to_phone.shared_secret
    );
    assert!(matches!(
        phone.respond(&to_laptop.header, NOW).err(),
        Some(RespondError::UnknownPreKey { .. })
    ));
    // This device's own id among the others is a mistake.
    others.insert(device("phone"), laptop.current_pre_key().clone());
    assert_eq!(
        phone.bundle_with(NOW, &others),
        Err(BundleError::DuplicateInstallation {
            installation_id: device("phone")
        })
    );
}

#[test]
fn pickle_round_trip_preserves_everything() {
    let mut store = bob_store(10);
    let mut r = rng(11);
    let alice = IdentityKeyPair::generate(&mut r);
    let mut headers = Vec::new();
    for day in 1..=3 {
        let out = verified(&store, NOW + day * DAY - 1)
            .initiate(&alice, &device("bob-1"), &mut r)
            .unwrap();
        store.respond(&out.header, NOW + day * DAY - 1).unwrap();
        headers.push(out.header);
        assert!(store.handle_timeout(NOW + day * DAY, &mut r));
    }
    let key = PickleKey::new([0x5a; 32]);
    let pickle = store.pickle(&key, &mut r);
    let mut restored = PreKeyStore::unpickle(&pickle, &key, PreKeyStoreConfig::default()).unwrap();
    assert_eq!(state(&restored), state(&store));
    assert_eq!(restored.identity().public(), store.identity().public());
    assert_eq!(restored.installation_id(), store.installation_id());
    assert_eq!(restored.current_pre_key(), store.current_pre_key());
    assert_eq!(
        restored.retired_pre_keys().collect::<Vec<_>>(),
        store.retired_pre_keys().collect::<Vec<_>>()
    );
    assert_eq!(restored.bundle(NOW + 3 * DAY), store.bundle(NOW + 3 * DAY));
    assert_eq!(restored.poll_timeout(), store.poll_timeout());
    for header in &headers {
        assert_eq!(
            restored.respond(header, NOW + 3 * DAY).err(),
            Some(RespondError::Replayed)
        );
    }
    // Two pickles of one state differ (fresh nonce) but restore the same state.
    let second = store.pickle(&key, &mut r);
    assert_ne!(second, pickle);
    assert_eq!(
        state(&PreKeyStore::unpickle(&second, &key, PreKeyStoreConfig::default()).unwrap()),
        state(&store)
    );
    // The pickle is encrypted: no secret appears in it.
    let seed = store.identity().to_seed();
    assert!(!pickle.windows(32).any(|w| w == seed.as_slice()));
}

#[test]
fn debug_output_prints_no_secret() {
    let store = bob_store(12);
    let text = format!("{store:?}");
    let seed = hex::encode(store.identity().to_seed().as_slice());
    assert!(!text.contains(&seed));
    assert!(text.contains(&store.identity().public().to_chat_key()));
    let alice = IdentityKeyPair::generate(&mut rng(13));
    let out = verified(&store, NOW)
        .initiate(&alice, &device("bob-1"), &mut rng(14))
        .unwrap();
    let text = format!("{out:?}");
    assert!(!text.contains(&hex::encode(out.shared_secret.as_bytes())));
    assert!(text.contains("<redacted>"));
    assert_eq!(
        format!("{:?}", PickleKey::new([1; 32])),
        "PickleKey(<redacted>)"
    );
}
