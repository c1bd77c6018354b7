//! The key derivations of the status-rs Double Ratchet profile (WIRE.md Part A).
//!
//! They are public so that the profile can be checked against independent implementations; a
//! session never needs them directly.
//!
//! | function | construction |
//! |---|---|
//! | [`kdf_rk`] | HKDF-SHA256(salt = rk, ikm = dh_out, info = `"status-rs DR root"`, 64 bytes) → rk' ‖ ck |
//! | [`kdf_rk_he`] | the same HKDF with 96 bytes → rk' ‖ ck ‖ next header key |
//! | [`kdf_ck`] | mk = HMAC-SHA256(ck, 0x01), ck' = HMAC-SHA256(ck, 0x02) |
//! | [`message_key_material`] | HKDF-SHA256(salt = 32 zero bytes, ikm = mk, info = `"status-rs DR chacha"`, 44 bytes) → key ‖ nonce |
//! | [`initial_header_keys`] | HKDF-SHA256(salt = 32 zero bytes, ikm = SK, info = `"status-rs DR header"`, 64 bytes) → initiator's sending header key ‖ responder's next sending header key |

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// HKDF info of the root-chain step.
pub const ROOT_INFO: &[u8] = b"status-rs DR root";
/// HKDF info of the message-key expansion into a ChaCha20-Poly1305 key and nonce.
pub const MESSAGE_INFO: &[u8] = b"status-rs DR chacha";
/// HKDF info of the initial header keys (header-encryption variant).
pub const HEADER_INFO: &[u8] = b"status-rs DR header";
/// HMAC input that yields the message key.
pub const MESSAGE_KEY_SEED: u8 = 0x01;
/// HMAC input that yields the next chain key.
pub const CHAIN_KEY_SEED: u8 = 0x02;

/// Output of a root-chain step: the new root key, a chain key and, with header encryption, the
/// next header key.
pub struct RootStep {
    /// The new root key.
    pub root_key: Zeroizing<[u8; 32]>,
    /// The key of the new sending or receiving chain.
    pub chain_key: Zeroizing<[u8; 32]>,
    /// The next header key (only from [`kdf_rk_he`]; all zero from [`kdf_rk`]).
    pub next_header_key: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for RootStep {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RootStep { .. }")
    }
}

fn split_root(okm: &[u8]) -> RootStep {
    let mut step = RootStep {
        root_key: Zeroizing::new([0; 32]),
        chain_key: Zeroizing::new([0; 32]),
        next_header_key: Zeroizing::new([0; 32]),
    };
    let parts = [
        &mut *step.root_key,
        &mut *step.chain_key,
        &mut *step.next_header_key,
    ];
    for (dst, src) in parts.into_iter().zip(okm.chunks_exact(32)) {
        dst.copy_from_slice(src);
    }
    step
}

fn hkdf_expand(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    // HKDF-SHA256 can produce up to 255 * 32 bytes; every caller asks for at most 96.
    if hk.expand(info, okm).is_err() {
        okm.zeroize();
    }
}

/// `KDF_RK`: one step of the root chain.
pub fn kdf_rk(root_key: &[u8; 32], dh_out: &[u8; 32]) -> RootStep {
    let mut okm = Zeroizing::new([0u8; 64]);
    hkdf_expand(root_key, dh_out, ROOT_INFO, &mut *okm);
    split_root(&*okm)
}

/// `KDF_RK_HE`: one step of the root chain that also yields the next header key.
pub fn kdf_rk_he(root_key: &[u8; 32], dh_out: &[u8; 32]) -> RootStep {
    let mut okm = Zeroizing::new([0u8; 96]);
    hkdf_expand(root_key, dh_out, ROOT_INFO, &mut *okm);
    split_root(&*okm)
}

/// `KDF_CK`: one step of a sending or receiving chain, returning `(next chain key, message key)`.
pub fn kdf_ck(chain_key: &[u8; 32]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let mut next = Zeroizing::new([0u8; 32]);
    let mut mk = Zeroizing::new([0u8; 32]);
    // HMAC accepts keys of any length, so this cannot fail; the keyed state is computed once
    // and cloned for the two inputs.
    if let Ok(keyed) = <Hmac<Sha256> as KeyInit>::new_from_slice(chain_key) {
        let mut m = keyed.clone();
        m.update(&[MESSAGE_KEY_SEED]);
        mk.copy_from_slice(&m.finalize().into_bytes());
        let mut c = keyed;
        c.update(&[CHAIN_KEY_SEED]);
        next.copy_from_slice(&c.finalize().into_bytes());
    }
    (next, mk)
}

/// `ENCRYPT`'s key schedule: the ChaCha20-Poly1305 key (32 bytes) and nonce (12 bytes) of a
/// message key.
pub fn message_key_material(message_key: &[u8; 32]) -> Zeroizing<[u8; 44]> {
    let mut okm = Zeroizing::new([0u8; 44]);
    hkdf_expand(&[0u8; 32], message_key, MESSAGE_INFO, &mut *okm);
    okm
}

/// The initial header keys of the header-encryption variant: `(initiator's sending header key,
/// responder's next sending header key)`.
pub fn initial_header_keys(shared_secret: &[u8; 32]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let mut okm = Zeroizing::new([0u8; 64]);
    hkdf_expand(&[0u8; 32], shared_secret, HEADER_INFO, &mut *okm);
    let mut a = Zeroizing::new([0u8; 32]);
    let mut b = Zeroizing::new([0u8; 32]);
    let (left, right) = okm.split_at(32);
    a.copy_from_slice(left);
    b.copy_from_slice(right);
    (a, b)
}
