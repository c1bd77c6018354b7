//! Noise `XX_25519_ChaChaPoly_SHA256` for the TCP transport, with `snow` doing the state machine
//! and the workspace crypto crates doing the primitives.
//!
//! `snow` is built without its bundled crypto; a small resolver hands it X25519 over `x25519-dalek`
//! (with the contributory check: an all-zero shared secret fails the handshake),
//! ChaCha20-Poly1305 over `chacha20poly1305` and SHA-256 over `sha2`, so each primitive is in the
//! dependency tree once. Randomness (the ephemeral keys) comes from a ChaCha20 stream seeded by
//! the caller. The adapter is checked against the Noise test vector of this exact protocol name
//! (the cacophony suite) in the tests below.
//!
//! The static key of the handshake is the node's [`NodeKey`]; after `XX` each side knows the
//! other's static public key, which is the peer's identity.

use std::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::CryptoResolver;
use snow::types::{Cipher, Dh, Hash, Random};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// The Noise protocol name of the transport.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";

/// Mixed into the handshake hash, so a handshake for anything else fails.
pub const PROLOGUE: &[u8] = b"status-rs/tcp/1";

/// A node's long-term X25519 key: the Noise static key and the node's identity on the wire.
#[derive(Clone)]
pub struct NodeKey {
    secret: StaticSecret,
    public: [u8; 32],
}

impl NodeKey {
    /// The key with these secret bytes (clamped by X25519 as usual).
    pub fn from_bytes(secret: [u8; 32]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret).to_bytes();
        NodeKey { secret, public }
    }

    /// A key drawn from `rng`.
    pub fn generate(rng: &mut (impl rand_core::CryptoRng + ?Sized)) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        NodeKey::from_bytes(*bytes)
    }

    /// The public key (the node's identity).
    pub const fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The secret bytes, for saving the key; keep them out of logs.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey(public: {})", hex(&self.public))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Resolves the primitives of [`NOISE_PARAMS`] to the workspace crates.
pub(crate) struct Resolver {
    seed: Zeroizing<[u8; 32]>,
}

impl Resolver {
    /// A resolver whose RNG is a ChaCha20 stream from `seed` (fresh per handshake).
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        Resolver {
            seed: Zeroizing::new(seed),
        }
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRandom(ChaCha20Rng::from_seed(*self.seed))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(X25519::default())),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::SHA256 => Some(Box::new(Sha256Hash(Sha256::new()))),
            _ => None,
        }
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::new(ChaChaPoly::default())),
            _ => None,
        }
    }
}

struct SeededRandom(ChaCha20Rng);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

#[derive(Default)]
struct X25519 {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl Dh for X25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        32
    }

    fn priv_len(&self) -> usize {
        32
    }

    fn set(&mut self, privkey: &[u8]) {
        // snow only passes keys of `priv_len` bytes (the builder checks the length).
        if let Ok(k) = <[u8; 32]>::try_from(privkey) {
            *self.secret = k;
            self.public = PublicKey::from(&StaticSecret::from(k)).to_bytes();
        }
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(k.as_mut())?;
        self.set(k.as_ref());
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        self.secret.as_ref()
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        // snow passes its whole key buffer (sized for the largest curve); the key is in front.
        let theirs = pubkey
            .get(..32)
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(snow::Error::Dh)?;
        let shared = StaticSecret::from(*self.secret).diffie_hellman(&PublicKey::from(theirs));
        // A low-order public key gives an all-zero secret: refuse it (contributory check).
        if !shared.was_contributory() {
            return Err(snow::Error::Dh);
        }
        let dst = out.get_mut(..32).ok_or(snow::Error::Dh)?;
        dst.copy_from_slice(shared.as_bytes());
        Ok(())
    }
}

struct Sha256Hash(Sha256);

impl Hash for Sha256Hash {
    fn name(&self) -> &'static str {
        "SHA256"
    }

    fn block_len(&self) -> usize {
        64
    }

    fn hash_len(&self) -> usize {
        32
    }

    fn reset(&mut self) {
        self.0 = Sha256::new();
    }

    fn input(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn result(&mut self, out: &mut [u8]) {
        let digest = self.0.finalize_reset();
        if let Some(dst) = out.get_mut(..32) {
            dst.copy_from_slice(&digest);
        }
    }
}

struct ChaChaPoly {
    key: Zeroizing<[u8; 32]>,
    cipher: ChaCha20Poly1305,
}

impl Default for ChaChaPoly {
    fn default() -> Self {
        let key = Zeroizing::new([0u8; 32]);
        let cipher = ChaCha20Poly1305::new(&(*key).into());
        ChaChaPoly { key, cipher }
    }
}

/// The Noise ChaChaPoly nonce: 32 zero bits, then the counter little-endian.
fn nonce(n: u64) -> Nonce {
    let mut b = [0u8; 12];
    for (d, s) in b.iter_mut().skip(4).zip(n.to_le_bytes()) {
        *d = s;
    }
    Nonce::from(b)
}

const TAG_LEN: usize = 16;

impl Cipher for ChaChaPoly {
    fn name(&self) -> &'static str {
        "ChaChaPoly"
    }

    fn set(&mut self, key: &[u8; 32]) {
        *self.key = *key;
        self.cipher = ChaCha20Poly1305::new(&(*self.key).into());
    }

    fn encrypt(&self, n: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        // snow sizes `out` to hold the plaintext and the tag; 0 signals a misuse.
        let len = plaintext.len();
        let Some((body, rest)) = out.split_at_mut_checked(len) else {
            return 0;
        };
        let Some(tag_out) = rest.get_mut(..TAG_LEN) else {
            return 0;
        };
        body.copy_from_slice(plaintext);
        match self
            .cipher
            .encrypt_inout_detached(&nonce(n), authtext, body.into())
        {
            Ok(tag) => {
                tag_out.copy_from_slice(&tag);
                len + TAG_LEN
            }
            Err(_) => 0,
        }
    }

    fn decrypt(
        &self,
        n: u64,
        authtext: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, snow::Error> {
        let len = ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(snow::Error::Decrypt)?;
        let (body, tag) = ciphertext.split_at(len);
        let tag = Tag::try_from(tag).map_err(|_| snow::Error::Decrypt)?;
        let dst = out.get_mut(..len).ok_or(snow::Error::Decrypt)?;
        dst.copy_from_slice(body);
        if self
            .cipher
            .decrypt_inout_detached(&nonce(n), authtext, (&mut *dst).into(), &tag)
            .is_err()
        {
            dst.zeroize();
            return Err(snow::Error::Decrypt);
        }
        Ok(len)
    }
}

/// A handshake state for one side.
pub(crate) fn builder_state(
    key: &NodeKey,
    seed: [u8; 32],
    initiator: bool,
) -> Result<snow::HandshakeState, snow::Error> {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse()?;
    let secret = key.to_secret_bytes();
    let b = snow::Builder::with_resolver(params, Box::new(Resolver::new(seed)))
        .local_private_key(secret.as_ref())?
        .prologue(PROLOGUE)?;
    if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The cacophony vector for Noise_XX_25519_ChaChaPoly_SHA256 (prologue "John Galt").
    #[test]
    fn matches_the_noise_test_vector() {
        let init_static = h("e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1");
        let init_eph = h("893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a");
        let resp_static = h("4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893");
        let resp_eph = h("bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b");
        let prologue = h("4a6f686e2047616c74");
        let messages = [
            (
                "4c756477696720766f6e204d69736573",
                "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79444c756477696720766f6e204d69736573",
            ),
            (
                "4d757272617920526f746862617264",
                "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f276e038c48378ffce2b65285e08d6b68aaa3629a5a8639392490e5b9bd5269c2f1e4f488ed8831161f19b7815528f8982ffe09be9b5c412f8a0db50f8814c7194e83f23dbd8d162c9326ad",
            ),
            (
                "462e20412e20486179656b",
                "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a80ae475b9df0f169ae80a89be0865b57f58c9fea0d4ec82a286427402f113e4b6ae769a1d95941d49b25030",
            ),
            (
                "4361726c204d656e676572",
                "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df",
            ),
            (
                "4a65616e2d426170746973746520536179",
                "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07f5",
            ),
            (
                "457567656e2042f6686d20766f6e2042617765726b",
                "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3a58502ae3f",
            ),
        ];
        let params: snow::params::NoiseParams = NOISE_PARAMS.parse().unwrap();
        let mut init =
            snow::Builder::with_resolver(params.clone(), Box::new(Resolver::new([0; 32])))
                .local_private_key(&init_static)
                .unwrap()
                .fixed_ephemeral_key_for_testing_only(&init_eph)
                .prologue(&prologue)
                .unwrap()
                .build_initiator()
                .unwrap();
        let mut resp = snow::Builder::with_resolver(params, Box::new(Resolver::new([0; 32])))
            .local_private_key(&resp_static)
            .unwrap()
            .fixed_ephemeral_key_for_testing_only(&resp_eph)
            .prologue(&prologue)
            .unwrap()
            .build_responder()
            .unwrap();
        let mut buf = vec![0u8; 65535];
        let mut plain = vec![0u8; 65535];
        for (i, (payload, ct)) in messages[..3].iter().enumerate() {
            let (w, r) = if i % 2 == 0 {
                (&mut init, &mut resp)
            } else {
                (&mut resp, &mut init)
            };
            let n = w.write_message(&h(payload), &mut buf).unwrap();
            assert_eq!(hex(&buf[..n]), *ct, "handshake message {i}");
            let m = r.read_message(&buf[..n], &mut plain).unwrap();
            assert_eq!(plain[..m], h(payload)[..]);
        }
        assert_eq!(
            hex(init.get_handshake_hash()),
            "c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e"
        );
        let mut init = init.into_transport_mode().unwrap();
        let mut resp = resp.into_transport_mode().unwrap();
        // The vector's messages keep alternating after the handshake: the responder speaks next.
        for (i, (payload, ct)) in messages[3..].iter().enumerate() {
            let (w, r) = if i % 2 == 1 {
                (&mut init, &mut resp)
            } else {
                (&mut resp, &mut init)
            };
            let n = w.write_message(&h(payload), &mut buf).unwrap();
            assert_eq!(hex(&buf[..n]), *ct, "transport message {i}");
            let m = r.read_message(&buf[..n], &mut plain).unwrap();
            assert_eq!(plain[..m], h(payload)[..]);
        }
    }

    #[test]
    fn a_low_order_point_fails_the_dh() {
        let mut dh = X25519::default();
        dh.set(&[7u8; 32]);
        let mut out = [0u8; 32];
        assert!(dh.dh(&[0u8; 32], &mut out).is_err());
        let other = NodeKey::from_bytes([9u8; 32]);
        assert!(dh.dh(&other.public(), &mut out).is_ok());
    }

    #[test]
    fn a_tampered_message_fails_to_decrypt() {
        let mut c = ChaChaPoly::default();
        c.set(&[3u8; 32]);
        let mut ct = [0u8; 21];
        assert_eq!(c.encrypt(5, b"ad", b"hello", &mut ct), 21);
        let mut out = [0u8; 21];
        assert_eq!(c.decrypt(5, b"ad", &ct, &mut out).unwrap(), 5);
        assert_eq!(&out[..5], b"hello");
        ct[0] ^= 1;
        assert!(c.decrypt(5, b"ad", &ct, &mut out).is_err());
        assert!(c.decrypt(6, b"ad", &ct[..3], &mut out).is_err());
    }

    #[test]
    fn node_key_debug_shows_only_the_public_key() {
        let k = NodeKey::from_bytes([1u8; 32]);
        let s = format!("{k:?}");
        assert!(s.contains(&hex(&k.public())));
        assert!(!s.contains(&hex(k.to_secret_bytes().as_ref())));
    }
}
