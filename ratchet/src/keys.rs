//! Ratchet key pairs and the secret key types a session holds.

use rand_core::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// An X25519 public ratchet key, as carried in every message header.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RatchetPublicKey([u8; 32]);

impl RatchetPublicKey {
    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The key's 32 bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for RatchetPublicKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl From<PublicKey> for RatchetPublicKey {
    fn from(key: PublicKey) -> Self {
        Self(key.to_bytes())
    }
}

impl core::fmt::Debug for RatchetPublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RatchetPublicKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// An X25519 ratchet key pair: the responder's signed prekey at session start, then a fresh pair
/// after every DH ratchet step. The secret is zeroized on drop and never printed.
#[derive(Clone)]
pub struct RatchetKeyPair {
    secret: StaticSecret,
    public: RatchetPublicKey,
}

impl RatchetKeyPair {
    /// Draws a new key pair from `rng`.
    pub fn generate(rng: &mut (impl CryptoRng + ?Sized)) -> Self {
        Self::from(StaticSecret::random_from_rng(rng))
    }

    /// The key pair of a 32-byte X25519 secret (clamped when used, as RFC 7748 says).
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        let mut secret = secret;
        let pair = Self::from(StaticSecret::from(secret));
        secret.zeroize();
        pair
    }

    /// The public half.
    pub fn public_key(&self) -> RatchetPublicKey {
        self.public
    }

    /// The secret's 32 bytes (for persistence).
    pub(crate) fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// X25519 with `their`, or `None` when the result is not contributory (a low-order point).
    pub(crate) fn diffie_hellman(&self, their: &RatchetPublicKey) -> Option<Zeroizing<[u8; 32]>> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(their.0));
        if shared.was_contributory() {
            Some(Zeroizing::new(shared.to_bytes()))
        } else {
            None
        }
    }
}

impl From<StaticSecret> for RatchetKeyPair {
    fn from(secret: StaticSecret) -> Self {
        let public = RatchetPublicKey(PublicKey::from(&secret).to_bytes());
        Self { secret, public }
    }
}

impl core::fmt::Debug for RatchetKeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RatchetKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A 32-byte symmetric secret (root, chain, message or header key). Zeroized on drop, never
/// printed, never compared (lookups go by public ratchet keys).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Key32(pub(crate) [u8; 32]);

impl Key32 {
    pub(crate) fn new(bytes: &[u8; 32]) -> Self {
        Self(*bytes)
    }
}

impl core::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Key32(..)")
    }
}

/// A symmetric chain: its key and the number of the next message on it.
#[derive(Clone, Debug)]
pub(crate) struct Chain {
    pub(crate) key: Key32,
    pub(crate) n: u32,
}
