//! Every bad input the issue lists, each refused with its typed error and no state change.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::collections::BTreeMap;

use common::{DAY, NOW, bob_store, device, rng, state, verified};
use proto::Message;
use x3dh::{
    Bundle, BundleConfig, BundleError, ChatKeyError, DecodeError, IdentityKeyPair, InitialHeader,
    InitiateError, InstallationId, InstallationIdError, MAX_BUNDLE_LEN, MAX_HEADER_LEN,
    MAX_INSTALLATIONS, MAX_REPLAY_ENTRIES, PickleError, PickleKey, PreKeyId, PreKeyStore,
    PreKeyStoreConfig, PublicIdentity, PublicKeyError, RespondError, SignedPreKey,
    SignedPreKeyPair, VerifyError, X25519PublicKey,
};

const SMALL_ORDER_X25519: [&str; 5] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
];

/// Non-canonical encodings of small-order X25519 points: p, p + 1, and the order-8 points with
/// the top bit set.
const NON_CANONICAL_X25519: [&str; 4] = [
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
    "0900000000000000000000000000000000000000000000000000000000000080",
];

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn bundle_proto(store: &PreKeyStore) -> proto::secure::Bundle {
    store.bundle(NOW).to_proto()
}

fn decode_verify(bytes: &[u8], expected: &PublicIdentity) -> Result<(), String> {
    let bundle = Bundle::decode(bytes).map_err(|e| format!("decode: {e}"))?;
    bundle
        .verify(expected, NOW, &BundleConfig::default())
        .map_err(|e| format!("verify: {e}"))?;
    Ok(())
}

/// Re-signs a modified bundle message with `identity`, so only the modification is wrong.
fn resign(msg: &mut proto::secure::Bundle, identity: &IdentityKeyPair) {
    let bundle = Bundle::from_proto(msg).unwrap();
    msg.signature = identity.sign(&bundle.signing_input()).to_vec();
}

#[test]
fn bundle_with_a_bad_signature() {
    let store = bob_store(1);
    let mut msg = bundle_proto(&store);
    msg.signature[10] ^= 0x01;
    let bundle = Bundle::from_proto(&msg).unwrap();
    assert_eq!(
        bundle.verify(store.identity().public(), NOW, &BundleConfig::default()),
        Err(VerifyError::BadSignature)
    );
    // A signature of the wrong length is a decoding error.
    msg.signature.pop();
    assert_eq!(
        Bundle::from_proto(&msg),
        Err(DecodeError::SignatureLength {
            field: "signature",
            found: 63
        })
    );
    // Signed over another timestamp than the one it carries.
    let mut msg = bundle_proto(&store);
    msg.timestamp += 1;
    assert_eq!(
        Bundle::from_proto(&msg).unwrap().verify(
            store.identity().public(),
            NOW,
            &BundleConfig::default()
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn bundle_with_a_bad_prekey_signature() {
    let store = bob_store(2);
    let mut msg = bundle_proto(&store);
    let entry = msg.signed_pre_keys.get_mut("bob-1").unwrap();
    entry.signature[0] ^= 0x80;
    resign(&mut msg, store.identity());
    let bundle = Bundle::from_proto(&msg).unwrap();
    assert_eq!(
        bundle.verify(store.identity().public(), NOW, &BundleConfig::default()),
        Err(VerifyError::BadPreKeySignature {
            installation_id: device("bob-1")
        })
    );
    // A prekey signed by another identity, inside a bundle signed by Bob.
    let mallory = IdentityKeyPair::generate(&mut rng(3));
    let pair = SignedPreKeyPair::generate(&mut rng(4));
    let foreign = SignedPreKey::sign(&mallory, &pair, PreKeyId::new(1).unwrap(), NOW);
    let mut msg = bundle_proto(&store);
    msg.signed_pre_keys
        .insert("bob-1".into(), foreign.to_proto());
    resign(&mut msg, store.identity());
    assert_eq!(
        Bundle::from_proto(&msg).unwrap().verify(
            store.identity().public(),
            NOW,
            &BundleConfig::default()
        ),
        Err(VerifyError::BadPreKeySignature {
            installation_id: device("bob-1")
        })
    );
    // Building such a bundle is refused too.
    let mut pre_keys = BTreeMap::new();
    pre_keys.insert(device("bob-1"), foreign);
    assert_eq!(
        Bundle::sign(store.identity(), pre_keys, NOW),
        Err(BundleError::ForeignPreKey {
            installation_id: device("bob-1")
        })
    );
}

#[test]
fn bundle_of_a_foreign_identity() {
    let bob = bob_store(5);
    let mallory = bob_store(6);
    // Mallory's genuine bundle where Bob's was expected.
    let err = mallory
        .bundle(NOW)
        .verify(bob.identity().public(), NOW, &BundleConfig::default())
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::ForeignIdentity {
            expected: Box::new(*bob.identity().public()),
            found: Box::new(*mallory.identity().public()),
        }
    );
    // Bob's identity on a bundle that Mallory signed.
    let mut msg = mallory.bundle(NOW).to_proto();
    msg.identity = bob.identity().public().ed25519_bytes().to_vec();
    assert_eq!(
        decode_verify(&msg.encode_to_vec(), bob.identity().public()),
        Err("verify: bad bundle signature".into())
    );
}

#[test]
fn bundle_timestamps_in_the_future_or_expired() {
    let store = bob_store(7);
    let config = BundleConfig::default();
    let identity = *store.identity().public();
    let skew = config.max_clock_skew_ms;
    // At the edge of the skew allowance: accepted; one millisecond beyond: refused.
    let edge = store.bundle(NOW + skew);
    assert!(edge.verify(&identity, NOW, &config).is_ok());
    let future = store.bundle(NOW + skew + 1);
    assert_eq!(
        future.verify(&identity, NOW, &config),
        Err(VerifyError::FromTheFuture {
            timestamp_ms: NOW + skew + 1,
            now_ms: NOW
        })
    );
    // Exactly max_age old: accepted; older: expired.
    let old = store.bundle(NOW);
    assert!(
        old.verify(&identity, NOW + config.max_age_ms, &config)
            .is_ok()
    );
    assert_eq!(
        old.verify(&identity, NOW + config.max_age_ms + 1, &config),
        Err(VerifyError::Expired {
            timestamp_ms: NOW,
            now_ms: NOW + config.max_age_ms + 1
        })
    );
    // A configurable policy.
    let strict = BundleConfig {
        max_clock_skew_ms: 0,
        max_age_ms: 1_000,
        ..config
    };
    assert!(matches!(
        store.bundle(NOW + 1).verify(&identity, NOW, &strict),
        Err(VerifyError::FromTheFuture { .. })
    ));
    assert!(matches!(
        old.verify(&identity, NOW + 1_001, &strict),
        Err(VerifyError::Expired { .. })
    ));
    // A prekey created in the future (the store was created "later" than now).
    let later = PreKeyStore::new(
        IdentityKeyPair::generate(&mut rng(8)),
        device("d"),
        PreKeyStoreConfig::default(),
        NOW + skew + 1,
        &mut rng(9),
    );
    assert!(matches!(
        later
            .bundle(NOW)
            .verify(later.identity().public(), NOW, &config),
        Err(VerifyError::PreKeyFromTheFuture { .. })
    ));
    // Negative timestamps do not decode.
    let mut msg = bundle_proto(&store);
    msg.timestamp = -1;
    assert_eq!(
        Bundle::from_proto(&msg),
        Err(DecodeError::NegativeTimestamp {
            field: "timestamp",
            value: -1
        })
    );
}

#[test]
fn too_many_installations() {
    let store = bob_store(10);
    let mut r = rng(11);
    let mut others = BTreeMap::new();
    for i in 0..MAX_INSTALLATIONS {
        let pair = SignedPreKeyPair::generate(&mut r);
        others.insert(
            device(&format!("other-{i}")),
            SignedPreKey::sign(store.identity(), &pair, PreKeyId::new(1).unwrap(), NOW),
        );
    }
    // 65 installations: refused when building, when decoding.
    assert_eq!(
        store.bundle_with(NOW, &others),
        Err(BundleError::TooManyInstallations {
            count: MAX_INSTALLATIONS + 1,
            max: MAX_INSTALLATIONS
        })
    );
    let mut msg = bundle_proto(&store);
    for (id, pre_key) in &others {
        msg.signed_pre_keys
            .insert(id.as_str().to_owned(), pre_key.to_proto());
    }
    assert_eq!(
        Bundle::from_proto(&msg),
        Err(DecodeError::TooManyInstallations {
            count: MAX_INSTALLATIONS + 1,
            max: MAX_INSTALLATIONS
        })
    );
    // Three installations against a policy of two: refused when verifying.
    let few: BTreeMap<_, _> = others.into_iter().take(2).collect();
    let bundle = store.bundle_with(NOW, &few).unwrap();
    let config = BundleConfig {
        max_installations: 2,
        ..BundleConfig::default()
    };
    assert_eq!(
        bundle.verify(store.identity().public(), NOW, &config),
        Err(VerifyError::TooManyInstallations { count: 3, max: 2 })
    );
    assert!(
        bundle
            .verify(store.identity().public(), NOW, &BundleConfig::default())
            .is_ok()
    );
    // No installation at all.
    let mut msg = bundle_proto(&store);
    msg.signed_pre_keys.clear();
    assert_eq!(Bundle::from_proto(&msg), Err(DecodeError::NoInstallations));
    assert_eq!(
        Bundle::sign(store.identity(), BTreeMap::new(), NOW),
        Err(BundleError::NoInstallations)
    );
}

#[test]
fn installation_ids() {
    assert_eq!(InstallationId::new(""), Err(InstallationIdError::Empty));
    assert_eq!(
        InstallationId::new("x".repeat(65)),
        Err(InstallationIdError::TooLong { len: 65, max: 64 })
    );
    assert!(InstallationId::new("x".repeat(64)).is_ok());
    assert_eq!(
        InstallationId::new("a b"),
        Err(InstallationIdError::InvalidCharacter)
    );
    assert_eq!(
        InstallationId::new("é"),
        Err(InstallationIdError::InvalidCharacter)
    );
    assert_eq!(
        InstallationId::new("none"),
        Err(InstallationIdError::Reserved)
    );
    let store = bob_store(12);
    let mut msg = bundle_proto(&store);
    let entry = msg.signed_pre_keys.remove("bob-1").unwrap();
    msg.signed_pre_keys.insert("none".into(), entry);
    assert_eq!(
        Bundle::from_proto(&msg),
        Err(DecodeError::InstallationId(InstallationIdError::Reserved))
    );
}

#[test]
fn small_order_and_non_canonical_keys_in_bundles() {
    let store = bob_store(13);
    // Identity: the Ed25519 identity point, a point of order 2, and a point of order 8.
    for (key, error) in [
        (
            "0100000000000000000000000000000000000000000000000000000000000000",
            PublicKeyError::LowOrder,
        ),
        (
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            PublicKeyError::LowOrder,
        ),
        (
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
            PublicKeyError::LowOrder,
        ),
        // y = p: a non-canonical encoding of y = 0.
        (
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            PublicKeyError::NonCanonical,
        ),
        // y = 2 is not the y of any curve point.
        (
            "0200000000000000000000000000000000000000000000000000000000000000",
            PublicKeyError::NotOnCurve,
        ),
    ] {
        let mut msg = bundle_proto(&store);
        msg.identity = h(key);
        assert_eq!(
            Bundle::from_proto(&msg),
            Err(DecodeError::Key {
                field: "identity",
                error
            }),
            "{key}"
        );
    }
    let mut msg = bundle_proto(&store);
    msg.identity.truncate(31);
    assert_eq!(
        Bundle::from_proto(&msg),
        Err(DecodeError::Key {
            field: "identity",
            error: PublicKeyError::Length { found: 31 }
        })
    );
    // Signed prekey: every small-order point and some non-canonical encodings.
    for (keys, error) in [
        (&SMALL_ORDER_X25519[..], PublicKeyError::LowOrder),
        (&NON_CANONICAL_X25519[..], PublicKeyError::NonCanonical),
    ] {
        for key in keys {
            let mut msg = bundle_proto(&store);
            msg.signed_pre_keys.get_mut("bob-1").unwrap().signed_pre_key = h(key);
            assert_eq!(
                Bundle::from_proto(&msg),
                Err(DecodeError::Key {
                    field: "signed_pre_keys.signed_pre_key",
                    error
                }),
                "{key}"
            );
            assert_eq!(X25519PublicKey::from_bytes(&h(key)), Err(error));
        }
    }
}

#[test]
fn small_order_and_non_canonical_keys_in_headers() {
    let mut store = bob_store(14);
    let alice = IdentityKeyPair::generate(&mut rng(15));
    let out = verified(&store, NOW)
        .initiate(&alice, &device("bob-1"), &mut rng(16))
        .unwrap();
    let good = out.header.to_proto();
    let before = state(&store);
    for (field, error, key) in SMALL_ORDER_X25519
        .iter()
        .map(|k| (PublicKeyError::LowOrder, k))
        .chain(
            NON_CANONICAL_X25519
                .iter()
                .map(|k| (PublicKeyError::NonCanonical, k)),
        )
        .flat_map(|(error, key)| [("key", error, *key), ("id", error, *key)])
    {
        let mut msg = good.clone();
        match field {
            "key" => msg.key = h(key),
            _ => msg.id = h(key),
        }
        assert_eq!(
            InitialHeader::decode(&msg.encode_to_vec()),
            Err(DecodeError::Key { field, error }),
            "{field} {key}"
        );
    }
    let mut msg = good.clone();
    msg.identity = h("0100000000000000000000000000000000000000000000000000000000000000");
    assert_eq!(
        InitialHeader::decode(&msg.encode_to_vec()),
        Err(DecodeError::Key {
            field: "identity",
            error: PublicKeyError::LowOrder
        })
    );
    let mut msg = good.clone();
    msg.key.clear();
    assert_eq!(
        InitialHeader::decode(&msg.encode_to_vec()),
        Err(DecodeError::Key {
            field: "key",
            error: PublicKeyError::Length { found: 0 }
        })
    );
    // None of this touched the store, and the genuine header is still answered.
    assert_eq!(state(&store), before);
    let header = InitialHeader::decode(&good.encode_to_vec()).unwrap();
    assert_eq!(
        store.respond(&header, NOW).unwrap().shared_secret,
        out.shared_secret
    );
}

#[test]
fn truncated_and_oversized_encodings() {
    let mut store = bob_store(17);
    let bytes = store.bundle(NOW).encode();
    for len in 0..bytes.len() {
        assert!(
            decode_verify(&bytes[..len], store.identity().public()).is_err(),
            "truncated to {len} bytes"
        );
    }
    assert_eq!(decode_verify(&bytes, store.identity().public()), Ok(()));
    // Oversized: refused before parsing, even if the prefix is a valid bundle.
    let mut big = bytes.clone();
    big.resize(MAX_BUNDLE_LEN + 1, 0);
    assert_eq!(
        Bundle::decode(&big),
        Err(DecodeError::TooLarge {
            len: MAX_BUNDLE_LEN + 1,
            max: MAX_BUNDLE_LEN
        })
    );
    // Trailing garbage that is not protobuf.
    let mut trailing = bytes.clone();
    trailing.push(0xff);
    assert!(matches!(
        Bundle::decode(&trailing),
        Err(DecodeError::Protobuf(_))
    ));

    let alice = IdentityKeyPair::generate(&mut rng(18));
    let header = verified(&store, NOW)
        .initiate(&alice, &device("bob-1"), &mut rng(19))
        .unwrap()
        .header
        .encode();
    for len in 0..header.len() {
        assert!(
            InitialHeader::decode(&header[..len]).is_err(),
            "truncated to {len} bytes"
        );
    }
    let mut big = header.clone();
    big.resize(MAX_HEADER_LEN + 1, 0);
    assert_eq!(
        InitialHeader::decode(&big),
        Err(DecodeError::TooLarge {
            len: MAX_HEADER_LEN + 1,
            max: MAX_HEADER_LEN
        })
    );
    let before = state(&store);
    assert!(
        store
            .respond(&InitialHeader::decode(&header).unwrap(), NOW)
            .is_ok()
    );
    assert_ne!(state(&store), before);
}

#[test]
fn unknown_prekey_id() {
    let mut store = bob_store(20);
    let other = bob_store(21);
    let alice = IdentityKeyPair::generate(&mut rng(22));
    let out = verified(&store, NOW)
        .initiate(&alice, &device("bob-1"), &mut rng(23))
        .unwrap();
    let before = state(&store);
    // An id never issued.
    let mut msg = out.header.to_proto();
    msg.pre_key_version = 99;
    let header = InitialHeader::from_proto(&msg).unwrap();
    assert_eq!(
        store.respond(&header, NOW).err(),
        Some(RespondError::UnknownPreKey {
            pre_key_id: PreKeyId::new(99).unwrap()
        })
    );
    // No id at all (0 on the wire): a decoding error.
    let mut msg = out.header.to_proto();
    msg.pre_key_version = 0;
    assert_eq!(
        InitialHeader::from_proto(&msg),
        Err(DecodeError::MissingField {
            field: "pre_key_version"
        })
    );
    let mut bundle = store.bundle(NOW).to_proto();
    bundle.signed_pre_keys.get_mut("bob-1").unwrap().version = 0;
    assert_eq!(
        Bundle::from_proto(&bundle),
        Err(DecodeError::MissingField {
            field: "signed_pre_keys.version"
        })
    );
    // The right id with another installation's prekey.
    let mut msg = out.header.to_proto();
    msg.id = other.current_pre_key().public_key().as_bytes().to_vec();
    let header = InitialHeader::from_proto(&msg).unwrap();
    assert_eq!(
        store.respond(&header, NOW).err(),
        Some(RespondError::UnknownPreKey {
            pre_key_id: PreKeyId::new(1).unwrap()
        })
    );
    // Header meant for another installation.
    let to_other = verified(&other, NOW)
        .initiate(&alice, &device("bob-1"), &mut rng(24))
        .unwrap();
    assert!(matches!(
        store.respond(&to_other.header, NOW).err(),
        Some(RespondError::UnknownPreKey { .. })
    ));
    // A retired prekey past its grace period, not yet purged: unknown, and nothing purged.
    let mut r = rng(25);
    store.rotate(NOW + DAY, &mut r);
    let grace = store.config().grace_period_ms;
    let mid_state = state(&store);
    assert_eq!(
        store.respond(&out.header, NOW + DAY + grace).err(),
        Some(RespondError::UnknownPreKey {
            pre_key_id: PreKeyId::new(1).unwrap()
        })
    );
    assert_eq!(state(&store), mid_state);
    assert_ne!(mid_state, before);
    // Initiating with an installation the bundle does not list.
    assert_eq!(
        verified(&store, NOW + DAY)
            .initiate(&alice, &device("bob-9"), &mut rng(26))
            .unwrap_err(),
        InitiateError::UnknownInstallation {
            installation_id: device("bob-9")
        }
    );
}

#[test]
fn replayed_initial_message() {
    let mut store = bob_store(27);
    let alice = IdentityKeyPair::generate(&mut rng(28));
    let bundle = verified(&store, NOW);
    let first = bundle
        .initiate(&alice, &device("bob-1"), &mut rng(29))
        .unwrap();
    let answer = store.respond(&first.header, NOW).unwrap();
    assert_eq!(answer.shared_secret, first.shared_secret);
    let after_first = state(&store);
    assert_eq!(
        store.respond(&first.header, NOW + 1).err(),
        Some(RespondError::Replayed)
    );
    // Replayed from the wire bytes too.
    let again = InitialHeader::decode(&first.header.encode()).unwrap();
    assert_eq!(
        store.respond(&again, NOW + 2).err(),
        Some(RespondError::Replayed)
    );
    assert_eq!(state(&store), after_first);
    // Still refused after the prekey retires, as long as it is kept.
    store.rotate(NOW + 3, &mut rng(30));
    assert_eq!(
        store.respond(&first.header, NOW + 4).err(),
        Some(RespondError::Replayed)
    );
    // A new ephemeral key from the same initiator is a new session.
    let second = bundle
        .initiate(&alice, &device("bob-1"), &mut rng(31))
        .unwrap();
    assert!(store.respond(&second.header, NOW + 5).is_ok());
    assert_eq!(store.replay_cache_len(), 2);
}

#[test]
fn replay_cache_full() {
    let mut store = bob_store(32);
    let alice = IdentityKeyPair::generate(&mut rng(33));
    let bundle = verified(&store, NOW);
    let mut r = rng(34);
    for _ in 0..MAX_REPLAY_ENTRIES {
        let out = bundle.initiate(&alice, &device("bob-1"), &mut r).unwrap();
        store.respond(&out.header, NOW).unwrap();
    }
    assert_eq!(store.replay_cache_len(), MAX_REPLAY_ENTRIES);
    let before = state(&store);
    let one_more = bundle.initiate(&alice, &device("bob-1"), &mut r).unwrap();
    assert_eq!(
        store.respond(&one_more.header, NOW).err(),
        Some(RespondError::ReplayCacheFull {
            max: MAX_REPLAY_ENTRIES
        })
    );
    assert_eq!(state(&store), before);
    // A full store still pickles and unpickles within MAX_PICKLE_LEN.
    let key = PickleKey::new([1; 32]);
    let pickle = store.pickle(&key, &mut rng(35));
    assert!(pickle.len() <= x3dh::MAX_PICKLE_LEN);
    let restored = PreKeyStore::unpickle(&pickle, &key, PreKeyStoreConfig::default()).unwrap();
    assert_eq!(state(&restored), before);
    // Once the prekey is retired and its grace period over, the entries go.
    store.rotate(NOW + 1, &mut r);
    let grace = store.config().grace_period_ms;
    let _ = store.handle_timeout(NOW + 1 + grace, &mut r);
    assert_eq!(store.replay_cache_len(), 0);
}

#[test]
fn chat_keys() {
    let alice = IdentityKeyPair::generate(&mut rng(36));
    let key = alice.public().to_chat_key();
    assert_eq!(
        PublicIdentity::from_chat_key(&key[2..]),
        Err(ChatKeyError::MissingPrefix)
    );
    assert_eq!(
        PublicIdentity::from_chat_key(&key[..65]),
        Err(ChatKeyError::Length { found: 63 })
    );
    assert_eq!(
        PublicIdentity::from_chat_key(&format!("{key}00")),
        Err(ChatKeyError::Length { found: 66 })
    );
    let mut bad = key.clone();
    bad.replace_range(10..11, "g");
    assert_eq!(
        PublicIdentity::from_chat_key(&bad),
        Err(ChatKeyError::NotHex)
    );
    assert_eq!(
        "0x0100000000000000000000000000000000000000000000000000000000000000"
            .parse::<PublicIdentity>(),
        Err(ChatKeyError::Key(PublicKeyError::LowOrder))
    );
    // 64 bytes of non-ASCII text: the right byte length, not hex.
    let unicode = format!("0x{}", "é".repeat(32));
    assert_eq!(
        PublicIdentity::from_chat_key(&unicode),
        Err(ChatKeyError::NotHex)
    );
    assert_eq!(key.parse::<PublicIdentity>().unwrap(), *alice.public());
}

#[test]
fn pickles() {
    let mut store = bob_store(37);
    let alice = IdentityKeyPair::generate(&mut rng(38));
    let out = verified(&store, NOW)
        .initiate(&alice, &device("bob-1"), &mut rng(39))
        .unwrap();
    store.respond(&out.header, NOW).unwrap();
    let key = PickleKey::new([7; 32]);
    let pickle = store.pickle(&key, &mut rng(40));
    let config = PreKeyStoreConfig::default();
    // Wrong key, any flipped bit, truncation, bad magic, unknown version, too large.
    assert_eq!(
        PreKeyStore::unpickle(&pickle, &PickleKey::new([8; 32]), config).unwrap_err(),
        PickleError::Decryption
    );
    for bit in (8 * 9..pickle.len() * 8).step_by(7) {
        let mut bad = pickle.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            PreKeyStore::unpickle(&bad, &key, config).unwrap_err(),
            PickleError::Decryption,
            "bit {bit}"
        );
    }
    assert_eq!(
        PreKeyStore::unpickle(&pickle[..pickle.len() - 1], &key, config).unwrap_err(),
        PickleError::Decryption
    );
    assert_eq!(
        PreKeyStore::unpickle(&pickle[..20], &key, config).unwrap_err(),
        PickleError::TooShort { len: 20 }
    );
    let mut bad = pickle.clone();
    bad[0] ^= 1;
    assert_eq!(
        PreKeyStore::unpickle(&bad, &key, config).unwrap_err(),
        PickleError::BadMagic
    );
    let mut bad = pickle.clone();
    bad[8] = 2;
    assert_eq!(
        PreKeyStore::unpickle(&bad, &key, config).unwrap_err(),
        PickleError::UnsupportedVersion { version: 2 }
    );
    let big = vec![0u8; x3dh::MAX_PICKLE_LEN + 1];
    assert!(matches!(
        PreKeyStore::unpickle(&big, &key, config),
        Err(PickleError::TooLarge { .. })
    ));
    // The genuine pickle restores the same state, replay cache included.
    let mut restored = PreKeyStore::unpickle(&pickle, &key, config).unwrap();
    assert_eq!(state(&restored), state(&store));
    assert_eq!(
        restored.respond(&out.header, NOW).err(),
        Some(RespondError::Replayed)
    );
}
