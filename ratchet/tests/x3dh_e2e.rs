//! End to end with the `x3dh` crate: Bob publishes a bundle, Alice verifies it and runs X3DH,
//! starts her ratchet on SK, AD and Bob's signed prekey and sends her first message together
//! with the X3DH header in one `EncryptedMessageProtocol`; Bob answers the header, starts his
//! ratchet on the signed prekey pair, decrypts and replies; Alice decrypts the reply.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proto::Message as _;
use proto::secure::EncryptedMessageProtocol;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ratchet::{DecryptError, Message, RatchetKeyPair, RatchetPublicKey, Session, SessionConfig};
use x3dh::{
    Bundle, BundleConfig, IdentityKeyPair, InitialHeader, InstallationId, PreKeyStore,
    PreKeyStoreConfig,
};

fn run(seed: u64, config: SessionConfig) {
    println!("seed {seed}, {config:?}");
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let now_ms = 1_700_000_000_000;

    let bob_id = IdentityKeyPair::generate(&mut rng);
    let bob_public = *bob_id.public();
    let device = InstallationId::new("bob-phone").unwrap();
    let mut bob_store = PreKeyStore::new(
        bob_id,
        device.clone(),
        PreKeyStoreConfig::default(),
        now_ms,
        &mut rng,
    );
    let published = bob_store.bundle(now_ms).encode();

    // Alice.
    let alice_id = IdentityKeyPair::generate(&mut rng);
    let bundle = Bundle::decode(&published)
        .unwrap()
        .verify(&bob_public, now_ms, &BundleConfig::default())
        .unwrap();
    let agreed = bundle.initiate(&alice_id, &device, &mut rng).unwrap();
    let mut alice = Session::initiator(
        &mut rng,
        agreed.shared_secret.as_bytes(),
        agreed.associated_data.as_bytes(),
        RatchetPublicKey::from(*agreed.remote_signed_pre_key.as_bytes()),
        config,
    )
    .unwrap();
    let first = alice.encrypt(&mut rng, b"hello Bob").unwrap();
    let mut wire = first.to_proto();
    wire.x3dh_header = Some(agreed.header.to_proto());
    let bytes = wire.encode_to_vec();

    // Bob.
    let received = EncryptedMessageProtocol::decode(bytes.as_slice()).unwrap();
    let header = InitialHeader::from_proto(received.x3dh_header.as_ref().unwrap()).unwrap();
    let answered = bob_store.respond(&header, now_ms + 1_000).unwrap();
    assert_eq!(answered.shared_secret, agreed.shared_secret);
    let mut bob = Session::responder(
        answered.shared_secret.as_bytes(),
        answered.associated_data.as_bytes(),
        RatchetKeyPair::from(answered.signed_pre_key.to_static_secret()),
        config,
    );
    let msg = Message::from_proto(&received).unwrap();
    assert_eq!(&bob.decrypt(&msg).unwrap()[..], b"hello Bob");
    assert_eq!(bob.decrypt(&msg), Err(DecryptError::Duplicate));

    let reply = Message::decode(&bob.encrypt(&mut rng, b"hello Alice").unwrap().encode()).unwrap();
    assert_eq!(&alice.decrypt(&reply).unwrap()[..], b"hello Alice");
    let next = alice.encrypt(&mut rng, b"and again").unwrap();
    assert_eq!(&bob.decrypt(&next).unwrap()[..], b"and again");
}

#[test]
fn x3dh_then_first_message_then_reply() {
    run(1, SessionConfig::plain());
    run(2, SessionConfig::with_header_encryption());
}
