//! Keys: the Ed25519 identity with its X25519 form, X25519 public keys, prekey and ephemeral key
//! pairs, and the two outputs of an agreement (the shared secret and the associated data).
//!
//! Everything here follows WIRE.md Part A, "Identity": a chat key is an Ed25519 key pair, its
//! X25519 secret is `clamp(SHA-512(seed)[0..32])` and its X25519 public key is the
//! Edwards-to-Montgomery image of the Ed25519 public key.

use core::fmt;
use core::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of every public key and secret in this crate (Ed25519 and X25519 alike).
pub const KEY_LEN: usize = 32;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Length of the [`AssociatedData`]: the two Ed25519 identity keys.
pub const ASSOCIATED_DATA_LEN: usize = 2 * KEY_LEN;

/// Why 32 bytes are not an acceptable public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublicKeyError {
    /// The key does not have the 32 bytes every 25519 key has.
    #[error("a public key has 32 bytes, found {found}")]
    Length {
        /// How many bytes were given.
        found: usize,
    },
    /// The encoding is not the unique canonical one: a field element at or above 2^255 - 19, or
    /// (for X25519) the unused top bit set. Accepting such aliases would let two different byte
    /// strings stand for one key.
    #[error("public key is not canonically encoded")]
    NonCanonical,
    /// The bytes do not decode to a point on the Ed25519 curve.
    #[error("public key is not a point on the curve")]
    NotOnCurve,
    /// The key is a point of small order (including the identity point). Diffie-Hellman with it
    /// would not depend on our secret, and an Ed25519 signature under it proves nothing.
    #[error("public key has small order")]
    LowOrder,
}

/// Why a string is not a public chat key (`0x` followed by 64 hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatKeyError {
    /// The string does not start with `0x`.
    #[error("a chat key starts with 0x")]
    MissingPrefix,
    /// After `0x` there are not exactly 64 characters.
    #[error("a chat key has 64 hex digits after 0x, found {found} characters")]
    Length {
        /// How many characters follow the prefix.
        found: usize,
    },
    /// A character after `0x` is not a hex digit.
    #[error("a chat key holds only hex digits")]
    NotHex,
    /// The 32 bytes are not an acceptable Ed25519 public key.
    #[error("chat key: {0}")]
    Key(#[from] PublicKeyError),
}

/// p = 2^255 - 19, little-endian: the field both curves are defined over.
const FIELD_PRIME_LE: [u8; KEY_LEN] = [
    0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
];

/// Whether the little-endian 255-bit number in `bytes` (top bit ignored) is below p.
fn below_field_prime(bytes: &[u8; KEY_LEN]) -> bool {
    // Compare from the most significant byte down; the top bit of byte 31 is not part of the
    // number (it is the sign of x for Ed25519 and must be zero for X25519, checked apart).
    for (i, (&b, &p)) in bytes.iter().zip(FIELD_PRIME_LE.iter()).enumerate().rev() {
        let b = if i == KEY_LEN - 1 { b & 0x7f } else { b };
        if b != p {
            return b < p;
        }
    }
    false
}

/// The canonical X25519 public keys of small order (u = 0, 1, p - 1 and the two points of order
/// 8). Every other u below p has a multiple of 8 that is not the identity, so X25519 with a
/// clamped scalar yields a secret-dependent output. Non-canonical aliases of these (u >= p) are
/// refused by the canonical check before this list is consulted.
const LOW_ORDER_X25519: [[u8; KEY_LEN]; 5] = [
    [0; KEY_LEN],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
];

fn key_array(bytes: &[u8]) -> Result<[u8; KEY_LEN], PublicKeyError> {
    <[u8; KEY_LEN]>::try_from(bytes).map_err(|_| PublicKeyError::Length { found: bytes.len() })
}

/// An X25519 public key (a Montgomery u-coordinate) that is canonically encoded and not of small
/// order: a signed prekey, an ephemeral key, or the X25519 form of an identity.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct X25519PublicKey([u8; KEY_LEN]);

impl X25519PublicKey {
    /// Parses and checks a public key received from a peer.
    ///
    /// # Errors
    /// [`PublicKeyError::Length`] unless there are 32 bytes, [`PublicKeyError::NonCanonical`] if
    /// u >= p or the top bit is set, [`PublicKeyError::LowOrder`] for a point of small order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PublicKeyError> {
        let key = key_array(bytes)?;
        if key[KEY_LEN - 1] & 0x80 != 0 || !below_field_prime(&key) {
            return Err(PublicKeyError::NonCanonical);
        }
        if LOW_ORDER_X25519.contains(&key) {
            return Err(PublicKeyError::LowOrder);
        }
        Ok(Self(key))
    }

    /// The 32 bytes of the key.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The 32 bytes of the key, by value.
    pub fn to_bytes(self) -> [u8; KEY_LEN] {
        self.0
    }

    fn from_secret(secret: &StaticSecret) -> Self {
        Self(x25519_dalek::PublicKey::from(secret).to_bytes())
    }
}

impl From<X25519PublicKey> for x25519_dalek::PublicKey {
    fn from(key: X25519PublicKey) -> Self {
        x25519_dalek::PublicKey::from(key.0)
    }
}

impl fmt::Debug for X25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "X25519PublicKey({})", hex::encode(self.0))
    }
}

/// The X25519 output of one Diffie-Hellman, checked to be contributory.
pub(crate) struct DhOutput(Zeroizing<[u8; KEY_LEN]>);

impl DhOutput {
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// Marker error: a Diffie-Hellman output did not depend on our secret (WIRE.md Part A requires
/// every DH output to be contributory). Callers turn it into their operation's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NonContributory;

/// X25519(secret, public), refusing a non-contributory result.
pub(crate) fn diffie_hellman(
    secret: &StaticSecret,
    public: &X25519PublicKey,
) -> Result<DhOutput, NonContributory> {
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(public.0));
    if !shared.was_contributory() {
        return Err(NonContributory);
    }
    Ok(DhOutput(Zeroizing::new(shared.to_bytes())))
}

/// The public half of an identity: the Ed25519 public chat key and its X25519 form.
///
/// Parsing checks that the key is canonically encoded, on the curve and not of small order, so a
/// value of this type can always verify signatures strictly and take part in a contributory
/// Diffie-Hellman. Equality, ordering and hashing use the Ed25519 bytes. `Display` writes the chat
/// key as `0x` followed by lowercase hex; `FromStr` reads it back.
#[derive(Clone, Copy)]
pub struct PublicIdentity {
    ed25519: VerifyingKey,
    x25519: X25519PublicKey,
}

impl PublicIdentity {
    /// Parses a 32-byte Ed25519 public key.
    ///
    /// # Errors
    /// [`PublicKeyError::Length`] unless there are 32 bytes; [`PublicKeyError::NonCanonical`] if
    /// y >= p; [`PublicKeyError::NotOnCurve`] if no point has that y; [`PublicKeyError::LowOrder`]
    /// for a point of small order, the identity point included.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PublicKeyError> {
        let key = key_array(bytes)?;
        // The only non-canonical encodings that decompress are y >= p (19 values) and "negative
        // zero" x with y = ±1; the latter are small-order points and fail the weak-key check.
        if !below_field_prime(&key) {
            return Err(PublicKeyError::NonCanonical);
        }
        let ed25519 = VerifyingKey::from_bytes(&key).map_err(|_| PublicKeyError::NotOnCurve)?;
        if ed25519.is_weak() {
            return Err(PublicKeyError::LowOrder);
        }
        Ok(Self::from_verifying_key(ed25519))
    }

    /// Parses a public chat key written as `0x` followed by 64 hex digits (either case; the
    /// canonical form, which `Display` writes, is lowercase).
    ///
    /// # Errors
    /// See [`ChatKeyError`].
    pub fn from_chat_key(s: &str) -> Result<Self, ChatKeyError> {
        let digits = s.strip_prefix("0x").ok_or(ChatKeyError::MissingPrefix)?;
        if digits.len() != 2 * KEY_LEN {
            return Err(ChatKeyError::Length {
                found: digits.chars().count(),
            });
        }
        let mut key = [0u8; KEY_LEN];
        hex::decode_to_slice(digits, &mut key).map_err(|_| ChatKeyError::NotHex)?;
        Ok(Self::from_bytes(&key)?)
    }

    /// The public chat key: `0x` followed by the lowercase hex of the Ed25519 key.
    pub fn to_chat_key(&self) -> String {
        format!("0x{}", hex::encode(self.ed25519.as_bytes()))
    }

    /// The Ed25519 public key (the chat key's 32 bytes).
    pub fn ed25519_bytes(&self) -> &[u8; KEY_LEN] {
        self.ed25519.as_bytes()
    }

    /// The X25519 form used for Diffie-Hellman: the Montgomery image of the Ed25519 point.
    pub fn x25519(&self) -> X25519PublicKey {
        self.x25519
    }

    /// Verifies an Ed25519 signature strictly (RFC 8032 with the small-order and non-canonical
    /// checks of `verify_strict`). Returns `false` for a signature that is not 64 bytes.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; SIGNATURE_LEN]>::try_from(signature) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        self.ed25519.verify_strict(message, &signature).is_ok()
    }

    fn from_verifying_key(ed25519: VerifyingKey) -> Self {
        // The Montgomery image of a point of large order is a canonical u of large order.
        let x25519 = X25519PublicKey(ed25519.to_montgomery().to_bytes());
        Self { ed25519, x25519 }
    }
}

impl PartialEq for PublicIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.ed25519.as_bytes() == other.ed25519.as_bytes()
    }
}

impl Eq for PublicIdentity {}

impl PartialOrd for PublicIdentity {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicIdentity {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.ed25519.as_bytes().cmp(other.ed25519.as_bytes())
    }
}

impl core::hash::Hash for PublicIdentity {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.ed25519.as_bytes().hash(state);
    }
}

impl fmt::Display for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.ed25519.as_bytes()))
    }
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicIdentity({self})")
    }
}

impl FromStr for PublicIdentity {
    type Err = ChatKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_chat_key(s)
    }
}

/// A user's identity (chat key): an Ed25519 key pair and its X25519 form.
///
/// The 32-byte seed is the Ed25519 secret key of RFC 8032. The X25519 secret is
/// `clamp(SHA-512(seed)[0..32])` and its public key equals the Montgomery image of the Ed25519
/// public key, so a peer needs only the chat key to run X3DH with us. Secrets are zeroized on drop;
/// `Debug` prints the public chat key only. Not `Clone`: rebuild it from [`Self::to_seed`] where a
/// second copy is truly needed.
pub struct IdentityKeyPair {
    signing: SigningKey,
    x25519: StaticSecret,
    public: PublicIdentity,
}

impl IdentityKeyPair {
    /// Creates a new identity from 32 bytes of the caller's randomness.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// Restores an identity from its 32-byte Ed25519 seed (the RFC 8032 secret key).
    pub fn from_seed(seed: &[u8; KEY_LEN]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let mut scalar = Zeroizing::new(signing.to_scalar_bytes());
        // RFC 7748 clamping; x25519-dalek clamps again on use, which changes nothing.
        if let Some(first) = scalar.first_mut() {
            *first &= 248;
        }
        if let Some(last) = scalar.last_mut() {
            *last &= 127;
            *last |= 64;
        }
        let x25519 = StaticSecret::from(*scalar);
        let public = PublicIdentity::from_verifying_key(signing.verifying_key());
        Self {
            signing,
            x25519,
            public,
        }
    }

    /// The 32-byte seed, for the caller's own (encrypted) storage.
    pub fn to_seed(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The public identity (chat key and X25519 form).
    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    /// Signs `message` with Ed25519 (RFC 8032, deterministic).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(message).to_bytes()
    }

    /// The X25519 secret, clamped: `clamp(SHA-512(seed)[0..32])`. Exposed for known-answer tests
    /// and for protocols outside X3DH that use the identity for Diffie-Hellman; handle with care.
    pub fn x25519_secret_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.x25519.to_bytes())
    }

    pub(crate) fn x25519_secret(&self) -> &StaticSecret {
        &self.x25519
    }
}

impl ZeroizeOnDrop for IdentityKeyPair {}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// An X25519 key pair used as a signed prekey. The responder's ratchet starts with this pair as
/// its first ratchet key pair (WIRE.md Part A, Double Ratchet). The secret is zeroized on drop;
/// `Debug` prints the public key only.
#[derive(Clone)]
pub struct SignedPreKeyPair {
    secret: StaticSecret,
    public: X25519PublicKey,
}

impl SignedPreKeyPair {
    /// Draws a new key pair: 32 bytes from `rng`, used as the X25519 secret.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(bytes.as_mut());
        Self::from_secret_bytes(&bytes)
    }

    /// Rebuilds a key pair from its 32-byte X25519 secret.
    pub fn from_secret_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        let secret = StaticSecret::from(*bytes);
        let public = X25519PublicKey::from_secret(&secret);
        Self { secret, public }
    }

    /// The public key.
    pub fn public_key(&self) -> X25519PublicKey {
        self.public
    }

    /// The 32-byte X25519 secret (as drawn, unclamped; X25519 clamps it on use).
    pub fn secret_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// A copy of the secret as an x25519-dalek `StaticSecret` (zeroized on drop), for the ratchet.
    pub fn to_static_secret(&self) -> StaticSecret {
        self.secret.clone()
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl ZeroizeOnDrop for SignedPreKeyPair {}

impl fmt::Debug for SignedPreKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPreKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The initiator's one-use ephemeral key pair (EK_A). It is consumed by
/// [`initiate`](crate::initiate), so the same ephemeral secret can never serve two agreements.
/// Not `Clone`; zeroized on drop.
pub struct EphemeralKeyPair {
    secret: StaticSecret,
    public: X25519PublicKey,
}

impl EphemeralKeyPair {
    /// Draws a new ephemeral key pair: 32 bytes from `rng`, used as the X25519 secret.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(bytes.as_mut());
        let secret = StaticSecret::from(*bytes);
        let public = X25519PublicKey::from_secret(&secret);
        Self { secret, public }
    }

    /// The public key that goes into the initial-message header.
    pub fn public_key(&self) -> X25519PublicKey {
        self.public
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl ZeroizeOnDrop for EphemeralKeyPair {}

impl fmt::Debug for EphemeralKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// SK, the 32-byte secret both sides derive (WIRE.md Part A, X3DH). It seeds the Double Ratchet.
///
/// Zeroized on drop, compared in constant time, never printed, and not `Clone`: move it into the
/// ratchet, or read it through [`Self::as_bytes`] for derivations such as the negotiated topic.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; KEY_LEN]);

impl SharedSecret {
    pub(crate) fn new(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The 32 secret bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl ConstantTimeEq for SharedSecret {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for SharedSecret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SharedSecret {}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

/// AD = Ed25519 IK_A (32 bytes) ‖ Ed25519 IK_B (32 bytes), the initiator's chat key first
/// (WIRE.md Part A). Public; the ratchet authenticates it with every message.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssociatedData([u8; ASSOCIATED_DATA_LEN]);

impl AssociatedData {
    pub(crate) fn new(initiator: &PublicIdentity, responder: &PublicIdentity) -> Self {
        let mut ad = [0u8; ASSOCIATED_DATA_LEN];
        let (first, second) = ad.split_at_mut(KEY_LEN);
        first.copy_from_slice(initiator.ed25519_bytes());
        second.copy_from_slice(responder.ed25519_bytes());
        Self(ad)
    }

    /// The 64 bytes.
    pub fn as_bytes(&self) -> &[u8; ASSOCIATED_DATA_LEN] {
        &self.0
    }
}

impl fmt::Debug for AssociatedData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssociatedData({})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_prime_comparison() {
        assert!(!below_field_prime(&FIELD_PRIME_LE));
        let mut below = FIELD_PRIME_LE;
        below[0] = 0xec;
        assert!(below_field_prime(&below));
        let mut above = FIELD_PRIME_LE;
        above[0] = 0xee;
        assert!(!below_field_prime(&above));
        assert!(below_field_prime(&[0u8; KEY_LEN]));
        // The top bit is not part of the number.
        let mut top = [0u8; KEY_LEN];
        top[31] = 0x80;
        assert!(below_field_prime(&top));
    }

    #[test]
    fn debug_prints_no_secret() {
        let id = IdentityKeyPair::from_seed(&[7u8; KEY_LEN]);
        let seed_hex = hex::encode([7u8; KEY_LEN]);
        let text = format!("{id:?}");
        assert!(text.contains(&id.public().to_chat_key()));
        assert!(!text.contains(&seed_hex));
        assert!(!text.contains(&hex::encode(*id.x25519_secret_bytes())));
        let spk = SignedPreKeyPair::from_secret_bytes(&[9u8; KEY_LEN]);
        assert!(!format!("{spk:?}").contains(&hex::encode([9u8; KEY_LEN])));
        let sk = SharedSecret::new([5u8; KEY_LEN]);
        assert_eq!(format!("{sk:?}"), "SharedSecret(<redacted>)");
    }
}
