//! The Double Ratchet of status-rs, with optional header encryption.
//!
//! This crate implements [Signal's Double Ratchet specification] with the exact profile of the
//! project's WIRE.md Part A, as a plain value without I/O, clock or ambient randomness: a
//! [`Session`] encrypts and decrypts [`Message`]s, and every random draw comes from a
//! `&mut impl CryptoRng` argument.
//!
//! # The profile
//!
//! * Alice (the X3DH initiator) starts with SK and Bob's signed prekey as his first ratchet key
//!   ([`Session::initiator`]); Bob starts with SK and his signed prekey's key pair
//!   ([`Session::responder`]). SK is 32 bytes and AD 64 bytes (Alice's ‖ Bob's Ed25519 identity
//!   keys for X3DH), so this crate does not depend on the `x3dh` crate.
//! * `KDF_RK(rk, dh_out)` = HKDF-SHA256(salt = rk, ikm = dh_out, info = `"status-rs DR root"`,
//!   64 bytes) → rk' ‖ ck. `KDF_CK(ck)`: mk = HMAC-SHA256(ck, 0x01), ck' = HMAC-SHA256(ck, 0x02).
//! * `ENCRYPT(mk, pt, ad')`: key ‖ nonce = HKDF-SHA256(salt = 32 zero bytes, ikm = mk,
//!   info = `"status-rs DR chacha"`, 44 bytes), then ChaCha20-Poly1305 with
//!   ad' = AD ‖ ratchet key (32) ‖ `u32_be(pn)` ‖ `u32_be(n)`.
//! * Every DH output is checked to be contributory.
//!
//! The functions are in [`kdf`], for checks against other implementations.
//!
//! # Header encryption
//!
//! Chosen per session with [`SessionConfig::with_header_encryption`] (both sides must agree),
//! following the spec's section 4: `KDF_RK_HE` yields 96 bytes (rk' ‖ ck ‖ next header key);
//! the initial header keys are HKDF-SHA256(salt = 32 zero bytes, ikm = SK,
//! info = `"status-rs DR header"`, 64 bytes) → Alice's sending header key ‖ Bob's next sending
//! header key. A header (ratchet key ‖ `u32_be(pn)` ‖ `u32_be(n)`, 40 bytes) is sealed with
//! XChaCha20-Poly1305 under the sending header key, a random 24-byte nonce and AD as
//! associated data; the sealed header is `nonce ‖ ciphertext ‖ tag` (80 bytes), and the body
//! is sealed as above with ad' = AD ‖ sealed header.
//!
//! **What it protects.** Without it, every message shows the network the sender's current
//! ratchet public key and two counters: an observer can link all messages of one session
//! (the ratchet key stays the same for a whole chain and is answered by the peer), see who
//! replies to whom and when the conversation turns, and count messages and losses. With it, a
//! message shows only 80 random-looking bytes and the ciphertext: the ratchet keys and
//! counters are readable only by holders of the header keys, which the root chain renews at
//! every DH ratchet step. **What it does not protect:** message sizes and timing, the Waku
//! envelope and topic around the message, and anything the X3DH initial message reveals. The
//! receiver tries a few header keys per message (current, next, and those of chains with
//! stored skipped keys), so decrypting costs a little more.
//!
//! # Limits
//!
//! * [`MAX_SKIP`] = 1000: a message may be at most this many positions ahead of its chain
//!   (and its previous-chain length `pn` at most this far ahead of the old chain). A header
//!   asking for more is rejected with [`DecryptError::TooManySkipped`] before any key is
//!   derived; a jump to `u32::MAX` costs a comparison.
//! * [`MAX_STORED_SKIPPED_KEYS`] = 2000 skipped keys per session, oldest evicted first.
//! * [`MAX_RETIRED_CHAINS`] = 32 old receiving chains remembered to report replays from them as
//!   [`DecryptError::Duplicate`].
//! * [`MAX_PAYLOAD_LEN`] (1 MiB) per message, [`MAX_PICKLE_LEN`] per pickle.
//!
//! # Failure leaves no trace
//!
//! [`Session::decrypt`] derives into temporaries and commits only after the AEAD tag has
//! verified: on any error (bad tag, replay, limit, unknown header) the session is byte for byte
//! as before, which the tests check through pickles. A replayed message is
//! [`DecryptError::Duplicate`].
//!
//! # Wire encoding
//!
//! [`Message::encode`] / [`Message::decode`] use `proto::secure::EncryptedMessageProtocol`;
//! the field mapping is in the [`message`] module docs. In short: `dr_header.key = 1` (ratchet
//! key), `n = 2`, `pn = 3`, `id = 4` (unused here), `encrypted_header = 5` (the sealed header,
//! with 1–3 empty), and `payload = 3` (ciphertext ‖ tag).
//!
//! # Persistence
//!
//! [`Session::pickle`] writes a versioned pickle encrypted with ChaCha20-Poly1305 under a
//! caller's [`PickleKey`]; [`Session::from_pickle`] loads this and every earlier version (the
//! layout is in the [`pickle`] module docs). Every secret is zeroized on drop and `Debug` prints
//! only public keys and counters.
//!
//! # Example
//!
//! ```
//! use ratchet::{RatchetKeyPair, Session, SessionConfig};
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//!
//! let mut rng = ChaCha20Rng::seed_from_u64(7);
//! let sk = [1u8; 32]; // X3DH's SK
//! let ad = [2u8; 64]; // X3DH's AD
//! let bob_prekey = RatchetKeyPair::generate(&mut rng);
//! let mut alice = Session::initiator(&mut rng, &sk, &ad, bob_prekey.public_key(), SessionConfig::default())?;
//! let mut bob = Session::responder(&sk, &ad, bob_prekey, SessionConfig::default());
//!
//! let wire = alice.encrypt(&mut rng, b"hi Bob")?.encode();
//! let msg = ratchet::Message::decode(&wire)?;
//! assert_eq!(&bob.decrypt(&msg)?[..], b"hi Bob");
//! assert_eq!(bob.decrypt(&msg), Err(ratchet::DecryptError::Duplicate));
//!
//! let reply = bob.encrypt(&mut rng, b"hi Alice")?;
//! assert_eq!(&alice.decrypt(&reply)?[..], b"hi Alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [Signal's Double Ratchet specification]: https://signal.org/docs/specifications/doubleratchet/
#![forbid(unsafe_code)]

mod aead;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod kdf;
mod keys;
pub mod message;
pub mod pickle;
mod session;
mod skipped;

pub use keys::{RatchetKeyPair, RatchetPublicKey};
pub use message::{DecodeError, Header, MAX_PAYLOAD_LEN, Message, MessageHeader};
pub use pickle::{MAX_PICKLE_LEN, PICKLE_VERSION, PickleError, PickleKey};
pub use session::{AD_LEN, DecryptError, EncryptError, Session, SessionConfig, SessionError};
pub use skipped::{MAX_RETIRED_CHAINS, MAX_SKIP, MAX_STORED_SKIPPED_KEYS};
