//! X3DH key agreement without one-time prekeys, in the status-rs profile.
//!
//! Two users who know each other's public chat key agree on a shared secret SK without being
//! online at the same time, following [Signal's X3DH specification] with the exact constructions
//! of WIRE.md Part A. Status distributes prekey bundles on each user's contact-code topic instead
//! of a server, and therefore has no one-time prekeys: it rotates signed prekeys often and keeps a
//! replay cache instead. SK and the associated data AD then seed the Double Ratchet (`ratchet`).
//!
//! # The profile (WIRE.md Part A)
//!
//! - Identity: an Ed25519 key pair ([`IdentityKeyPair`]); the chat key is the 32-byte public key,
//!   written `0x` + lowercase hex ([`PublicIdentity`]). Its X25519 form: secret
//!   `clamp(SHA-512(seed)[0..32])`, public the Edwards-to-Montgomery image.
//! - Signed prekey: an X25519 key pair, its public key signed (Ed25519, by the identity) as raw
//!   32 bytes ([`SignedPreKey`]). Signatures are verified strictly.
//! - `DH1 = X25519(IK_A, SPK_B)`, `DH2 = X25519(EK_A, IK_B)`, `DH3 = X25519(EK_A, SPK_B)`, each
//!   checked to be contributory.
//! - `SK = HKDF-SHA256(salt = 0×32, ikm = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3, info = "status-rs X3DH")`,
//!   32 bytes ([`SharedSecret`]).
//! - `AD = Ed25519 IK_A ‖ Ed25519 IK_B` ([`AssociatedData`]).
//!
//! # The flow
//!
//! 1. Bob keeps a [`PreKeyStore`] (identity, signed prekeys, replay cache) and publishes
//!    [`PreKeyStore::bundle`] on his contact-code topic. He calls [`PreKeyStore::handle_timeout`]
//!    at [`PreKeyStore::poll_timeout`]: every 24 hours (configurable) it creates a new signed
//!    prekey, and retired prekeys are deleted after a grace period (14 days by default).
//! 2. Alice decodes the bundle ([`Bundle::decode`]), verifies it against Bob's chat key
//!    ([`Bundle::verify`]: signatures, identity, age, clock skew, installation count) and runs
//!    [`initiate`] (or [`VerifiedBundle::initiate`]) for each of Bob's installations, with a
//!    fresh ephemeral key that the call consumes. She gets SK, AD, Bob's signed prekey (her
//!    ratchet's first remote key) and the [`InitialHeader`] to send.
//! 3. Bob decodes the header ([`InitialHeader::decode`]) and calls [`PreKeyStore::respond`],
//!    which refuses unknown prekeys and replays and returns the same SK and AD, plus the signed
//!    prekey pair (his ratchet's first key pair).
//!
//! Time is always an argument (Unix milliseconds) and randomness comes from the caller's
//! `rand_core::CryptoRng`; the crate reads no clock and no OS randomness.
//!
//! # Example
//!
//! ```
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//! use x3dh::{
//!     Bundle, BundleConfig, IdentityKeyPair, InitialHeader, InstallationId, PreKeyStore,
//!     PreKeyStoreConfig, PublicIdentity,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = ChaCha20Rng::seed_from_u64(7); // use an OS-seeded RNG in an application
//! let now_ms = 1_700_000_000_000; // Unix milliseconds, from the caller's clock
//!
//! // Bob: an identity, a prekey store for this installation, a bundle to publish.
//! let bob = IdentityKeyPair::generate(&mut rng);
//! let bob_chat_key = bob.public().to_chat_key(); // "0x" + 64 hex digits
//! let device = InstallationId::new("6f1c5b1e-0f2a-4c4e-9d7b-3a5e2b1c0d9f")?;
//! let mut bob_store =
//!     PreKeyStore::new(bob, device.clone(), PreKeyStoreConfig::default(), now_ms, &mut rng);
//! let published: Vec<u8> = bob_store.bundle(now_ms).encode();
//!
//! // Alice: knows Bob's chat key, receives the bundle, verifies it, runs X3DH.
//! let alice = IdentityKeyPair::generate(&mut rng);
//! let expected: PublicIdentity = bob_chat_key.parse()?;
//! let bundle = Bundle::decode(&published)?.verify(&expected, now_ms, &BundleConfig::default())?;
//! let alice_side = bundle.initiate(&alice, &device, &mut rng)?;
//! let header_bytes: Vec<u8> = alice_side.header.encode(); // goes with her first messages
//!
//! // Bob: answers the header with the same SK and AD.
//! let header = InitialHeader::decode(&header_bytes)?;
//! let bob_side = bob_store.respond(&header, now_ms + 1_000)?;
//! assert_eq!(alice_side.shared_secret, bob_side.shared_secret);
//! assert_eq!(alice_side.associated_data, bob_side.associated_data);
//! // Each ratchet starts from Bob's signed prekey: Alice holds its public key, Bob the pair.
//! assert_eq!(alice_side.remote_signed_pre_key, bob_side.signed_pre_key.public_key());
//!
//! // The same initial message again is refused, and the store stays as it was.
//! assert!(matches!(
//!     bob_store.respond(&header, now_ms + 2_000),
//!     Err(x3dh::RespondError::Replayed)
//! ));
//! # Ok(())
//! # }
//! ```
//!
//! # Wire formats
//!
//! Bundles and headers use the `proto::secure` messages ([`Bundle::to_proto`],
//! [`InitialHeader::to_proto`]); the bundle signature covers the canonical encoding documented on
//! [`Bundle::signing_input`]. The store's encrypted, versioned serialisation is documented on
//! [`PreKeyStore::pickle`].
//!
//! # Limits
//!
//! Every input is bounded before it is parsed: [`MAX_BUNDLE_LEN`], [`MAX_HEADER_LEN`],
//! [`MAX_INSTALLATIONS`], [`MAX_INSTALLATION_ID_LEN`], [`MAX_PICKLE_LEN`]; stored state by
//! [`MAX_RETIRED_PRE_KEYS`] and [`MAX_REPLAY_ENTRIES`].
//!
//! # Errors
//!
//! One error type per operation, split by culprit: [`DecodeError`] (malformed bytes),
//! [`VerifyError`] (a refused bundle), [`RespondError`] (a refused initial message),
//! [`BundleError`] and [`InitiateError`] (caller mistakes), [`PickleError`], and
//! [`PublicKeyError`] / [`ChatKeyError`] / [`InstallationIdError`] for parsing. An operation
//! that fails changes nothing.
//!
//! [Signal's X3DH specification]: https://signal.org/docs/specifications/x3dh/
#![forbid(unsafe_code)]

mod agreement;
mod bundle;
mod keys;
mod store;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

pub use agreement::{
    InitialHeader, InitiateError, InitiatorOutput, MAX_HEADER_LEN, ResponderOutput, X3DH_INFO,
    initiate,
};
pub use bundle::{
    BUNDLE_SIGNATURE_CONTEXT, Bundle, BundleConfig, BundleError, DecodeError, InstallationId,
    InstallationIdError, MAX_BUNDLE_LEN, MAX_INSTALLATION_ID_LEN, MAX_INSTALLATIONS,
    MAX_TIMESTAMP_MS, PROTOCOL_VERSION, PreKeyId, SignedPreKey, VerifiedBundle, VerifyError,
};
pub use keys::{
    ASSOCIATED_DATA_LEN, AssociatedData, ChatKeyError, EphemeralKeyPair, IdentityKeyPair, KEY_LEN,
    PublicIdentity, PublicKeyError, SIGNATURE_LEN, SharedSecret, SignedPreKeyPair, X25519PublicKey,
};
pub use store::{
    MAX_PICKLE_LEN, MAX_REPLAY_ENTRIES, MAX_RETIRED_PRE_KEYS, PICKLE_MAGIC, PICKLE_VERSION,
    PickleError, PickleKey, PreKeyStore, PreKeyStoreConfig, RespondError,
};

/// The x25519-dalek crate this crate builds on, so that the ratchet uses the same key types
/// ([`SignedPreKeyPair::to_static_secret`] returns its `StaticSecret`).
pub use x25519_dalek;

#[cfg(test)]
mod fuzz_replay {
    //! Replays the fuzz bodies on valid samples, every single-bit flip and every truncation of
    //! them, so the default test run exercises what the fuzz targets check.
    use crate::fuzzing;

    fn variants(sample: &[u8]) -> Vec<Vec<u8>> {
        let mut out = vec![sample.to_vec(), Vec::new()];
        for bit in 0..sample.len() * 8 {
            let mut flipped = sample.to_vec();
            flipped[bit / 8] ^= 1 << (bit % 8);
            out.push(flipped);
        }
        for len in 0..sample.len() {
            out.push(sample[..len].to_vec());
        }
        out
    }

    #[test]
    fn bundle_body_on_samples_and_mutations() {
        for input in variants(&fuzzing::sample_bundle()) {
            fuzzing::bundle(&input);
        }
    }

    #[test]
    fn header_body_on_samples_and_mutations() {
        for input in variants(&fuzzing::sample_header()) {
            fuzzing::header(&input);
        }
    }
}
