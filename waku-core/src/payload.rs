//! Payload encryption: the layer Waku adds on top of the secure transport, so that relaying and
//! storing nodes see only ciphertext and a topic.
//!
//! Two modes, as 26/WAKU2-PAYLOAD has them, built from the 25519 profile's primitives instead of
//! secp256k1 and AES-GCM (so the bytes are status-rs's own, not 26/'s):
//!
//! - **Asymmetric**: sealed to the receiver's X25519 key (the Montgomery form of their Ed25519
//!   chat key, see [`RecipientKey::from_signing_key`] and [`recipient_public`]), for 1:1 and private-group
//!   traffic. Each message uses a fresh ephemeral X25519 key.
//! - **Symmetric**: sealed with a 32-byte key shared by everyone on a topic; for public chats and
//!   contact codes the key is derived from the topic name ([`SymmetricKey::from_topic_name`]).
//!
//! Either mode may carry an Ed25519 signature by the sender, which [`Opened::signer`] reports only
//! after strict verification. The sealed bytes go into [`crate::message::WakuMessage::payload`]
//! with `version = 0` (application-level encryption).
//!
//! # Layout
//!
//! The padded plaintext `P` is
//!
//! ```text
//! flags (1) ‖ u32_be(len) (4) ‖ payload (len) ‖ zero padding ‖ [signer (32) ‖ signature (64)]
//! ```
//!
//! with `|P|` the smallest positive multiple of [`PADDING_BLOCK`] (256) that fits. Bit 0 of `flags`
//! ([`FLAG_SIGNED`]) says the signer's Ed25519 public key and signature are present; every other
//! bit must be zero, and so must the padding.
//!
//! Asymmetric envelope ([`MODE_ASYMMETRIC`]):
//!
//! ```text
//! 0x01 ‖ ephemeral X25519 public key (32) ‖ ChaCha20-Poly1305(key, nonce, ad = 0x01, P) ‖ tag (16)
//! dh          = X25519(ephemeral secret, recipient public)   (rejected unless contributory)
//! key ‖ nonce = HKDF-SHA256(salt = ephemeral public ‖ recipient public, ikm = dh,
//!                           info = "status-rs waku payload v1 asymmetric", 44 bytes)
//! ```
//!
//! Symmetric envelope ([`MODE_SYMMETRIC`]):
//!
//! ```text
//! 0x02 ‖ random nonce (24) ‖ XChaCha20-Poly1305(key, nonce, ad = 0x02, P) ‖ tag (16)
//! topic key = HKDF-SHA256(salt = none, ikm = utf8(topic name),
//!                         info = "status-rs waku payload v1 topic key", 32 bytes)
//! ```
//!
//! The signature is Ed25519 over
//!
//! ```text
//! "status-rs waku payload v1 signature" ‖ mode (1) ‖ binding (32) ‖ P without the signature
//! ```
//!
//! where `binding` is the recipient's X25519 public key (asymmetric) or the key id of the
//! symmetric key (`SHA-256("status-rs waku payload v1 key id" ‖ key)`), so a signed message cannot
//! be re-sealed to another recipient or topic and still verify. `P without the signature` includes
//! the signer's public key.
//!
//! Opening checks, in order: the envelope's length and mode; the contributory DH (asymmetric); the
//! AEAD tag, on a copy (nothing is decrypted unless the tag checks); the flags, length and
//! padding; the signature. Every failure is an [`OpenError`]; a wrong key and tampered bytes both
//! surface as [`OpenError::Authentication`], since an AEAD cannot tell them apart.

use std::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The first byte of an asymmetric envelope.
pub const MODE_ASYMMETRIC: u8 = 0x01;
/// The first byte of a symmetric envelope.
pub const MODE_SYMMETRIC: u8 = 0x02;
/// The padded plaintext is a multiple of this many bytes, hiding the exact payload length.
pub const PADDING_BLOCK: usize = 256;
/// `flags` bit 0: the plaintext ends with the signer's key and an Ed25519 signature.
pub const FLAG_SIGNED: u8 = 0x01;

/// The largest payload that can be sealed, in bytes (status-go's 1 MiB message cap). It also
/// bounds what [`open_asymmetric`] and [`open_symmetric`] accept, and so what they allocate.
pub const MAX_PAYLOAD_LEN: usize = 1024 * 1024;

/// Bytes of `P` before the payload: flags and the length.
const HEADER_LEN: usize = 1 + 4;
/// Bytes of the signer's key and signature at the end of a signed `P`.
const SIGNATURE_BLOCK_LEN: usize = 32 + 64;
const TAG_LEN: usize = 16;
const ASYM_PREFIX_LEN: usize = 1 + 32;
const SYM_PREFIX_LEN: usize = 1 + 24;
/// The largest `P`: the largest payload, signed, padded.
const MAX_PADDED_LEN: usize = padded_len(MAX_PAYLOAD_LEN, true);

const INFO_ASYM: &[u8] = b"status-rs waku payload v1 asymmetric";
const INFO_TOPIC_KEY: &[u8] = b"status-rs waku payload v1 topic key";
const KEY_ID_DOMAIN: &[u8] = b"status-rs waku payload v1 key id";
const SIGNATURE_DOMAIN: &[u8] = b"status-rs waku payload v1 signature";

/// The length of the padded plaintext `P` for a payload of `payload_len` bytes.
pub const fn padded_len(payload_len: usize, signed: bool) -> usize {
    let sig = if signed { SIGNATURE_BLOCK_LEN } else { 0 };
    let raw = HEADER_LEN + payload_len + sig;
    raw.div_ceil(PADDING_BLOCK) * PADDING_BLOCK
}

/// The length of an asymmetric envelope for a payload of `payload_len` bytes.
pub const fn sealed_len_asymmetric(payload_len: usize, signed: bool) -> usize {
    ASYM_PREFIX_LEN + padded_len(payload_len, signed) + TAG_LEN
}

/// The length of a symmetric envelope for a payload of `payload_len` bytes.
pub const fn sealed_len_symmetric(payload_len: usize, signed: bool) -> usize {
    SYM_PREFIX_LEN + padded_len(payload_len, signed) + TAG_LEN
}

/// The X25519 public key a chat key's owner decrypts with: the Montgomery form of the Ed25519
/// public key (WIRE.md Part A, Identity).
pub fn recipient_public(chat_key: &VerifyingKey) -> PublicKey {
    PublicKey::from(chat_key.to_montgomery().to_bytes())
}

/// Why a payload could not be sealed (the caller's input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The payload is longer than [`MAX_PAYLOAD_LEN`].
    #[error("payload of {len} bytes exceeds {max} bytes")]
    PayloadTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The recipient's public key is a low-order point: the shared secret would not depend on
    /// the ephemeral key, so anyone could read the message.
    #[error("recipient key gives a non-contributory Diffie-Hellman")]
    NonContributory,
}

/// Why an envelope could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Shorter than the smallest envelope of its mode (or empty).
    #[error("envelope of {len} bytes is truncated")]
    Truncated {
        /// Its length.
        len: usize,
    },
    /// Longer than any envelope [`MAX_PAYLOAD_LEN`] allows; nothing was allocated.
    #[error("envelope of {len} bytes exceeds {max} bytes")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The first byte is not the mode this function opens.
    #[error("envelope mode {found:#04x}, expected {expected:#04x}")]
    WrongMode {
        /// The mode byte found.
        found: u8,
        /// The mode expected.
        expected: u8,
    },
    /// The ciphertext is not a whole number of [`PADDING_BLOCK`]s.
    #[error("ciphertext length is not a multiple of the padding block")]
    BadLength,
    /// The ephemeral key is a low-order point.
    #[error("ephemeral key gives a non-contributory Diffie-Hellman")]
    NonContributory,
    /// The tag does not check: the wrong key, or the envelope was altered.
    #[error("authentication failed (wrong key or tampered envelope)")]
    Authentication,
    /// The plaintext decrypted but its flags, length or padding are invalid (the sender holds the
    /// key but built it wrongly).
    #[error("malformed plaintext: {0}")]
    MalformedPlaintext(&'static str),
    /// The signer's public key is not a valid Ed25519 point.
    #[error("invalid signer key")]
    InvalidSignerKey,
    /// The signature does not verify (strict RFC 8032 verification).
    #[error("invalid signature")]
    InvalidSignature,
}

/// An opened payload: the plaintext and, if it was signed, the verified signer.
pub struct Opened {
    /// The payload, wiped from memory when dropped.
    pub payload: Zeroizing<Vec<u8>>,
    /// The sender's Ed25519 key, present only if the signature verified strictly.
    pub signer: Option<VerifyingKey>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("payload_len", &self.payload.len())
            .field("signer", &self.signer)
            .finish()
    }
}

/// The receiving side of the asymmetric mode: an X25519 secret with its public key. The secret
/// is wiped on drop (by `StaticSecret`).
pub struct RecipientKey {
    secret: StaticSecret,
    public: PublicKey,
}

impl RecipientKey {
    /// Wraps an X25519 secret.
    pub fn new(secret: StaticSecret) -> Self {
        let public = PublicKey::from(&secret);
        RecipientKey { secret, public }
    }

    /// The X25519 form of an Ed25519 chat key (WIRE.md Part A: the clamped SHA-512 of the seed).
    /// Its public key equals [`recipient_public`] of the chat key's public half.
    pub fn from_signing_key(chat_key: &SigningKey) -> Self {
        let mut scalar = chat_key.to_scalar_bytes();
        let secret = StaticSecret::from(scalar);
        scalar.zeroize();
        RecipientKey::new(secret)
    }

    /// The public key senders seal to.
    pub fn public(&self) -> PublicKey {
        self.public
    }
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RecipientKey(public: {})",
            hex::encode(self.public.as_bytes())
        )
    }
}

/// A 32-byte symmetric payload key, with its public key id (the signature binding). Wiped on drop.
#[derive(Clone)]
pub struct SymmetricKey {
    key: [u8; 32],
    id: [u8; 32],
}

impl Drop for SymmetricKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl ZeroizeOnDrop for SymmetricKey {}

impl SymmetricKey {
    /// Uses 32 bytes as the key.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let id = Sha256::new()
            .chain_update(KEY_ID_DOMAIN)
            .chain_update(key)
            .finalize()
            .into();
        SymmetricKey { key, id }
    }

    /// The key of a public chat or contact-code topic, from its topic name
    /// ([`crate::topic::status::StatusTopic::name`]). Anyone who knows the name can derive it:
    /// this hides traffic from nodes that do not follow the topic, nothing more.
    pub fn from_topic_name(topic_name: &str) -> Self {
        let mut key = [0u8; 32];
        let hk = Hkdf::<Sha256>::new(None, topic_name.as_bytes());
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
        let _ = hk.expand(INFO_TOPIC_KEY, &mut key);
        let k = SymmetricKey::from_bytes(key);
        key.zeroize();
        k
    }

    /// The key id: `SHA-256("status-rs waku payload v1 key id" ‖ key)`. Public.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SymmetricKey(id: {})", hex::encode(self.id))
    }
}

impl PartialEq for SymmetricKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.key.ct_eq(&other.key).into()
    }
}

impl Eq for SymmetricKey {}

/// Writes `P` (with the signature block zeroed) into `out[start..]`, returning its length.
fn write_plaintext(out: &mut Vec<u8>, payload: &[u8], signer: Option<&SigningKey>) -> usize {
    let p_len = padded_len(payload.len(), signer.is_some());
    let start = out.len();
    let flags = if signer.is_some() { FLAG_SIGNED } else { 0 };
    out.push(flags);
    // `payload.len() <= MAX_PAYLOAD_LEN` was checked by the caller, so it fits in a u32.
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    out.resize(start + p_len, 0);
    p_len
}

/// Fills in the signature block of the `P` that occupies the end of `p`.
fn sign_plaintext(p: &mut [u8], mode: u8, binding: &[u8; 32], signer: &SigningKey) {
    let Some(body_len) = p.len().checked_sub(64) else {
        return;
    };
    let (body, sig_slot) = p.split_at_mut(body_len);
    let Some(key_at) = body.len().checked_sub(32) else {
        return;
    };
    let (_, key_slot) = body.split_at_mut(key_at);
    key_slot.copy_from_slice(signer.verifying_key().as_bytes());
    let msg = signed_message(mode, binding, body);
    let sig = signer.sign(&msg);
    sig_slot.copy_from_slice(&sig.to_bytes());
}

fn signed_message(mode: u8, binding: &[u8; 32], body: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut msg = Zeroizing::new(Vec::with_capacity(
        SIGNATURE_DOMAIN.len() + 1 + 32 + body.len(),
    ));
    msg.extend_from_slice(SIGNATURE_DOMAIN);
    msg.push(mode);
    msg.extend_from_slice(binding);
    msg.extend_from_slice(body);
    msg
}

/// Parses and checks a decrypted `P`; returns the payload and the verified signer.
fn parse_plaintext(p: &[u8], mode: u8, binding: &[u8; 32]) -> Result<Opened, OpenError> {
    let (&flags, rest) = p
        .split_first()
        .ok_or(OpenError::MalformedPlaintext("empty"))?;
    if flags & !FLAG_SIGNED != 0 {
        return Err(OpenError::MalformedPlaintext("unknown flags"));
    }
    let signed = flags & FLAG_SIGNED != 0;
    let (len_bytes, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(OpenError::MalformedPlaintext("no length"))?;
    let len = usize::try_from(u32::from_be_bytes(*len_bytes))
        .map_err(|_| OpenError::MalformedPlaintext("length"))?;
    let sig_len = if signed { SIGNATURE_BLOCK_LEN } else { 0 };
    let room = rest
        .len()
        .checked_sub(sig_len)
        .ok_or(OpenError::MalformedPlaintext("no room for the signature"))?;
    if len > room {
        return Err(OpenError::MalformedPlaintext("length beyond the plaintext"));
    }
    let (payload, rest) = rest.split_at(len);
    let (padding, sig_block) = rest.split_at(room - len);
    if padding.iter().any(|&b| b != 0) {
        return Err(OpenError::MalformedPlaintext("non-zero padding"));
    }
    if padded_len(len, signed) != p.len() {
        return Err(OpenError::MalformedPlaintext("padding longer than needed"));
    }
    let signer = if signed {
        let (key, sig) = sig_block
            .split_first_chunk::<32>()
            .ok_or(OpenError::MalformedPlaintext("signature block"))?;
        let sig: &[u8; 64] = sig
            .try_into()
            .map_err(|_| OpenError::MalformedPlaintext("signature block"))?;
        let key = VerifyingKey::from_bytes(key).map_err(|_| OpenError::InvalidSignerKey)?;
        let body_len = p.len() - 64;
        let body = p
            .get(..body_len)
            .ok_or(OpenError::MalformedPlaintext("signature block"))?;
        let msg = signed_message(mode, binding, body);
        key.verify_strict(&msg, &Signature::from_bytes(sig))
            .map_err(|_| OpenError::InvalidSignature)?;
        Some(key)
    } else {
        None
    };
    Ok(Opened {
        payload: Zeroizing::new(payload.to_vec()),
        signer,
    })
}

fn asym_key_nonce(
    eph_public: &[u8; 32],
    recipient: &[u8; 32],
    dh: &[u8; 32],
) -> Zeroizing<[u8; 44]> {
    let mut salt = [0u8; 64];
    let (a, b) = salt.split_at_mut(32);
    a.copy_from_slice(eph_public);
    b.copy_from_slice(recipient);
    let hk = Hkdf::<Sha256>::new(Some(&salt), dh);
    let mut okm = Zeroizing::new([0u8; 44]);
    // 44 bytes is far below HKDF-SHA256's limit.
    let _ = hk.expand(INFO_ASYM, okm.as_mut());
    okm
}

fn split_key_nonce(okm: &[u8; 44]) -> (&[u8; 32], &[u8; 12]) {
    let (key, nonce) = okm.split_at(32);
    // Both lengths are fixed by the array type; the fallbacks are unreachable.
    (
        key.try_into().unwrap_or(&[0u8; 32]),
        nonce.try_into().unwrap_or(&[0u8; 12]),
    )
}

/// Seals `payload` to `recipient`'s X25519 key, optionally signed by `signer`.
pub fn seal_asymmetric(
    rng: &mut impl CryptoRng,
    recipient: &PublicKey,
    payload: &[u8],
    signer: Option<&SigningKey>,
) -> Result<Vec<u8>, SealError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(SealError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        });
    }
    let eph = EphemeralSecret::random_from_rng(rng);
    let eph_public = PublicKey::from(&eph);
    let dh = eph.diffie_hellman(recipient);
    if !dh.was_contributory() {
        return Err(SealError::NonContributory);
    }
    let okm = asym_key_nonce(eph_public.as_bytes(), recipient.as_bytes(), dh.as_bytes());
    drop(dh);
    let (key, nonce) = split_key_nonce(&okm);

    let mut out = Vec::with_capacity(sealed_len_asymmetric(payload.len(), signer.is_some()));
    out.push(MODE_ASYMMETRIC);
    out.extend_from_slice(eph_public.as_bytes());
    let p_len = write_plaintext(&mut out, payload, signer);
    let p = out
        .get_mut(ASYM_PREFIX_LEN..ASYM_PREFIX_LEN + p_len)
        .unwrap_or_default();
    if let Some(signer) = signer {
        sign_plaintext(p, MODE_ASYMMETRIC, recipient.as_bytes(), signer);
    }
    let cipher = ChaCha20Poly1305::new(key.into());
    let tag = cipher
        .encrypt_inout_detached(nonce.into(), &[MODE_ASYMMETRIC], p.into())
        // ChaCha20-Poly1305 fails only above 256 GiB; MAX_PAYLOAD_LEN keeps us far below.
        .unwrap_or_default();
    out.extend_from_slice(&tag);
    Ok(out)
}

fn check_envelope(envelope: &[u8], mode: u8, prefix: usize) -> Result<(), OpenError> {
    let max = prefix + MAX_PADDED_LEN + TAG_LEN;
    if envelope.len() > max {
        return Err(OpenError::TooLarge {
            len: envelope.len(),
            max,
        });
    }
    let found = *envelope.first().ok_or(OpenError::Truncated { len: 0 })?;
    if found != mode {
        return Err(OpenError::WrongMode {
            found,
            expected: mode,
        });
    }
    if envelope.len() < prefix + PADDING_BLOCK + TAG_LEN {
        return Err(OpenError::Truncated {
            len: envelope.len(),
        });
    }
    if !(envelope.len() - prefix - TAG_LEN).is_multiple_of(PADDING_BLOCK) {
        return Err(OpenError::BadLength);
    }
    Ok(())
}

/// Decrypts `ct ‖ tag` on a copy; the copy is wiped when dropped.
fn decrypt_copy<C: AeadInOut>(
    cipher: &C,
    nonce: &chacha20poly1305::aead::Nonce<C>,
    ad: &[u8],
    ct_and_tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let (ct, tag) = ct_and_tag
        .split_last_chunk::<TAG_LEN>()
        .ok_or(OpenError::Truncated {
            len: ct_and_tag.len(),
        })?;
    let mut buf = Zeroizing::new(ct.to_vec());
    let tag = chacha20poly1305::aead::Tag::<C>::try_from(tag.as_slice())
        .map_err(|_| OpenError::Authentication)?;
    cipher
        .decrypt_inout_detached(nonce, ad, buf.as_mut_slice().into(), &tag)
        .map_err(|_| OpenError::Authentication)?;
    Ok(buf)
}

/// Opens an asymmetric envelope sealed to `recipient`.
pub fn open_asymmetric(recipient: &RecipientKey, envelope: &[u8]) -> Result<Opened, OpenError> {
    check_envelope(envelope, MODE_ASYMMETRIC, ASYM_PREFIX_LEN)?;
    let (prefix, ct_and_tag) =
        envelope
            .split_at_checked(ASYM_PREFIX_LEN)
            .ok_or(OpenError::Truncated {
                len: envelope.len(),
            })?;
    let eph_bytes: [u8; 32] =
        prefix
            .get(1..)
            .and_then(|b| b.try_into().ok())
            .ok_or(OpenError::Truncated {
                len: envelope.len(),
            })?;
    let eph_public = PublicKey::from(eph_bytes);
    let dh = recipient.secret.diffie_hellman(&eph_public);
    if !dh.was_contributory() {
        return Err(OpenError::NonContributory);
    }
    let okm = asym_key_nonce(&eph_bytes, recipient.public.as_bytes(), dh.as_bytes());
    drop(dh);
    let (key, nonce) = split_key_nonce(&okm);
    let cipher = ChaCha20Poly1305::new(key.into());
    let p = decrypt_copy(&cipher, nonce.into(), &[MODE_ASYMMETRIC], ct_and_tag)?;
    parse_plaintext(&p, MODE_ASYMMETRIC, recipient.public.as_bytes())
}

/// Seals `payload` under a symmetric key with a random 24-byte nonce, optionally signed.
pub fn seal_symmetric(
    rng: &mut impl CryptoRng,
    key: &SymmetricKey,
    payload: &[u8],
    signer: Option<&SigningKey>,
) -> Result<Vec<u8>, SealError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(SealError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        });
    }
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(sealed_len_symmetric(payload.len(), signer.is_some()));
    out.push(MODE_SYMMETRIC);
    out.extend_from_slice(&nonce);
    let p_len = write_plaintext(&mut out, payload, signer);
    let p = out
        .get_mut(SYM_PREFIX_LEN..SYM_PREFIX_LEN + p_len)
        .unwrap_or_default();
    if let Some(signer) = signer {
        sign_plaintext(p, MODE_SYMMETRIC, &key.id, signer);
    }
    let cipher = XChaCha20Poly1305::new((&key.key).into());
    let tag = cipher
        .encrypt_inout_detached((&nonce).into(), &[MODE_SYMMETRIC], p.into())
        // Fails only above 256 GiB; MAX_PAYLOAD_LEN keeps us far below.
        .unwrap_or_default();
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a symmetric envelope sealed under `key`.
pub fn open_symmetric(key: &SymmetricKey, envelope: &[u8]) -> Result<Opened, OpenError> {
    check_envelope(envelope, MODE_SYMMETRIC, SYM_PREFIX_LEN)?;
    let (prefix, ct_and_tag) =
        envelope
            .split_at_checked(SYM_PREFIX_LEN)
            .ok_or(OpenError::Truncated {
                len: envelope.len(),
            })?;
    let nonce: [u8; 24] =
        prefix
            .get(1..)
            .and_then(|b| b.try_into().ok())
            .ok_or(OpenError::Truncated {
                len: envelope.len(),
            })?;
    let cipher = XChaCha20Poly1305::new((&key.key).into());
    let p = decrypt_copy(&cipher, (&nonce).into(), &[MODE_SYMMETRIC], ct_and_tag)?;
    parse_plaintext(&p, MODE_SYMMETRIC, &key.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn rng(seed: u8) -> ChaCha20Rng {
        ChaCha20Rng::from_seed([seed; 32])
    }

    fn recipient(seed: u8) -> RecipientKey {
        RecipientKey::new(StaticSecret::from([seed; 32]))
    }

    fn signer(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// Encrypts an arbitrary `P` as a symmetric envelope, to test what a key holder could send.
    fn seal_raw_symmetric(key: &SymmetricKey, p: &[u8]) -> Vec<u8> {
        let nonce = [7u8; 24];
        let mut out = vec![MODE_SYMMETRIC];
        out.extend_from_slice(&nonce);
        let mut buf = p.to_vec();
        let tag = XChaCha20Poly1305::new((&key.key).into())
            .encrypt_inout_detached(
                (&nonce).into(),
                &[MODE_SYMMETRIC],
                buf.as_mut_slice().into(),
            )
            .unwrap();
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        out
    }

    /// Decrypts a symmetric envelope to its raw `P`.
    fn open_raw_symmetric(key: &SymmetricKey, env: &[u8]) -> Vec<u8> {
        let nonce: [u8; 24] = env[1..25].try_into().unwrap();
        let cipher = XChaCha20Poly1305::new((&key.key).into());
        decrypt_copy(&cipher, (&nonce).into(), &[MODE_SYMMETRIC], &env[25..])
            .unwrap()
            .to_vec()
    }

    #[test]
    fn asymmetric_round_trip_and_lengths() {
        let bob = recipient(1);
        let alice = signer(2);
        for len in [0usize, 1, 250, 251, 252, 1024, 5000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for signed in [false, true] {
                let s = signed.then_some(&alice);
                let env = seal_asymmetric(&mut rng(3), &bob.public(), &payload, s).unwrap();
                assert_eq!(env.len(), sealed_len_asymmetric(len, signed));
                assert_eq!((env.len() - 33 - 16) % 256, 0);
                assert_eq!(env[0], MODE_ASYMMETRIC);
                let opened = open_asymmetric(&bob, &env).unwrap();
                assert_eq!(*opened.payload, payload);
                assert_eq!(opened.signer, s.map(SigningKey::verifying_key));
            }
        }
        // 251 + 5 = 256 fits one block; 252 needs two.
        assert_eq!(padded_len(251, false), 256);
        assert_eq!(padded_len(252, false), 512);
        assert_eq!(padded_len(0, false), 256);
        assert_eq!(padded_len(155, true), 256);
        assert_eq!(padded_len(156, true), 512);
    }

    #[test]
    fn symmetric_round_trip() {
        let key = SymmetricKey::from_topic_name("status");
        let alice = signer(9);
        for signed in [false, true] {
            let s = signed.then_some(&alice);
            let env = seal_symmetric(&mut rng(4), &key, b"hello", s).unwrap();
            assert_eq!(env.len(), sealed_len_symmetric(5, signed));
            let opened = open_symmetric(&key, &env).unwrap();
            assert_eq!(&opened.payload[..], b"hello");
            assert_eq!(opened.signer, s.map(SigningKey::verifying_key));
        }
        // A fresh nonce per seal: the same input never gives the same envelope.
        let mut r = rng(5);
        let a = seal_symmetric(&mut r, &key, b"x", None).unwrap();
        let b = seal_symmetric(&mut r, &key, b"x", None).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn topic_key_is_pinned() {
        // HKDF-SHA256(salt = none, ikm = "status", info = "status-rs waku payload v1 topic key"),
        // computed independently with Python's hmac/hashlib.
        let k = SymmetricKey::from_topic_name("status");
        assert_eq!(hex::encode(k.key), TOPIC_KEY_STATUS);
        assert_ne!(k, SymmetricKey::from_topic_name("status "));
        assert_eq!(k, SymmetricKey::from_bytes(k.key));
        assert!(!format!("{k:?}").contains(TOPIC_KEY_STATUS));
    }

    const TOPIC_KEY_STATUS: &str =
        "7126728996a7dc2b9fec01500f2b231bfbc078f0e203bcb2952d6225be6b0d97";

    #[test]
    fn wrong_key_is_an_authentication_error() {
        let env = seal_asymmetric(&mut rng(1), &recipient(1).public(), b"hi", None).unwrap();
        assert_eq!(
            open_asymmetric(&recipient(2), &env).unwrap_err(),
            OpenError::Authentication
        );
        let env =
            seal_symmetric(&mut rng(1), &SymmetricKey::from_bytes([1; 32]), b"hi", None).unwrap();
        assert_eq!(
            open_symmetric(&SymmetricKey::from_bytes([2; 32]), &env).unwrap_err(),
            OpenError::Authentication
        );
    }

    #[test]
    fn framing_errors() {
        let bob = recipient(1);
        let key = SymmetricKey::from_bytes([1; 32]);
        let asym = seal_asymmetric(&mut rng(1), &bob.public(), b"hi", None).unwrap();
        let sym = seal_symmetric(&mut rng(1), &key, b"hi", None).unwrap();
        assert_eq!(
            open_asymmetric(&bob, &[]).unwrap_err(),
            OpenError::Truncated { len: 0 }
        );
        assert_eq!(
            open_asymmetric(&bob, &sym).unwrap_err(),
            OpenError::WrongMode {
                found: MODE_SYMMETRIC,
                expected: MODE_ASYMMETRIC
            }
        );
        assert_eq!(
            open_symmetric(&key, &asym).unwrap_err(),
            OpenError::WrongMode {
                found: MODE_ASYMMETRIC,
                expected: MODE_SYMMETRIC
            }
        );
        for cut in [1, 16, 256] {
            let short = &asym[..asym.len() - cut];
            assert!(matches!(
                open_asymmetric(&bob, short),
                Err(OpenError::Truncated { .. } | OpenError::BadLength)
            ));
        }
        let mut longer = asym.clone();
        longer.push(0);
        assert_eq!(
            open_asymmetric(&bob, &longer).unwrap_err(),
            OpenError::BadLength
        );
        let huge = vec![MODE_SYMMETRIC; sealed_len_symmetric(MAX_PAYLOAD_LEN, true) + 256];
        assert!(matches!(
            open_symmetric(&key, &huge),
            Err(OpenError::TooLarge { .. })
        ));
    }

    #[test]
    fn non_contributory_keys_are_refused() {
        // The identity and the other low-order points all give an all-zero shared secret.
        let low_order = PublicKey::from([0u8; 32]);
        assert_eq!(
            seal_asymmetric(&mut rng(1), &low_order, b"x", None),
            Err(SealError::NonContributory)
        );
        let bob = recipient(1);
        let mut env = seal_asymmetric(&mut rng(1), &bob.public(), b"x", None).unwrap();
        env[1..33].copy_from_slice(&[0u8; 32]);
        assert_eq!(
            open_asymmetric(&bob, &env).unwrap_err(),
            OpenError::NonContributory
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        env[1..33].copy_from_slice(&one);
        assert_eq!(
            open_asymmetric(&bob, &env).unwrap_err(),
            OpenError::NonContributory
        );
    }

    #[test]
    fn payload_cap() {
        let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
        assert_eq!(
            seal_symmetric(&mut rng(1), &SymmetricKey::from_bytes([1; 32]), &big, None),
            Err(SealError::PayloadTooLarge {
                len: MAX_PAYLOAD_LEN + 1,
                max: MAX_PAYLOAD_LEN
            })
        );
        assert!(matches!(
            seal_asymmetric(&mut rng(1), &recipient(1).public(), &big, None),
            Err(SealError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn chat_key_conversion_agrees() {
        let sk = signer(5);
        let r = RecipientKey::from_signing_key(&sk);
        assert_eq!(r.public(), recipient_public(&sk.verifying_key()));
        let env = seal_asymmetric(
            &mut rng(2),
            &recipient_public(&sk.verifying_key()),
            b"m",
            None,
        )
        .unwrap();
        assert_eq!(&open_asymmetric(&r, &env).unwrap().payload[..], b"m");
        assert!(!format!("{r:?}").contains(&hex::encode(sk.to_scalar_bytes())));
    }

    #[test]
    fn malformed_plaintexts_from_a_key_holder() {
        let key = SymmetricKey::from_bytes([3; 32]);
        let good = {
            let env = seal_symmetric(&mut rng(1), &key, b"abc", None).unwrap();
            open_raw_symmetric(&key, &env)
        };
        assert_eq!(&good[..8], &[0, 0, 0, 0, 3, b'a', b'b', b'c']);
        let check = |p: &[u8], what: &'static str| {
            let env = seal_raw_symmetric(&key, p);
            assert_eq!(
                open_symmetric(&key, &env).unwrap_err(),
                OpenError::MalformedPlaintext(what)
            );
        };
        let mut p = good.clone();
        p[0] = 0x02;
        check(&p, "unknown flags");
        let mut p = good.clone();
        p[1..5].copy_from_slice(&252u32.to_be_bytes());
        check(&p, "length beyond the plaintext");
        let mut p = good.clone();
        p[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        check(&p, "length beyond the plaintext");
        let mut p = good.clone();
        p[200] = 1;
        check(&p, "non-zero padding");
        let mut p = good.clone();
        p.extend_from_slice(&[0u8; 256]);
        check(&p, "padding longer than needed");
        // The signed flag set on an unsigned plaintext: the "signature block" is zero padding.
        let mut p = good.clone();
        p[0] = FLAG_SIGNED;
        let env = seal_raw_symmetric(&key, &p);
        assert!(matches!(
            open_symmetric(&key, &env),
            Err(OpenError::InvalidSignerKey | OpenError::InvalidSignature)
        ));
    }

    #[test]
    fn signatures_are_bound_and_strict() {
        let key = SymmetricKey::from_bytes([3; 32]);
        let other = SymmetricKey::from_bytes([4; 32]);
        let alice = signer(8);
        let env = seal_symmetric(&mut rng(1), &key, b"signed", Some(&alice)).unwrap();
        let p = open_raw_symmetric(&key, &env);
        // Re-sealed under another topic key, the signature no longer verifies.
        assert_eq!(
            open_symmetric(&other, &seal_raw_symmetric(&other, &p)).unwrap_err(),
            OpenError::InvalidSignature
        );
        // Re-sealed under the same key it still does (the raw helper is a faithful sealer).
        assert!(open_symmetric(&key, &seal_raw_symmetric(&key, &p)).is_ok());
        // Any flipped bit in the signer key or signature is refused.
        let n = p.len();
        for i in [n - 96, n - 80, n - 64, n - 33, n - 1] {
            let mut q = p.clone();
            q[i] ^= 0x01;
            let err = open_symmetric(&key, &seal_raw_symmetric(&key, &q)).unwrap_err();
            assert!(
                matches!(
                    err,
                    OpenError::InvalidSignature | OpenError::InvalidSignerKey
                ),
                "{i}: {err:?}"
            );
        }
        // A small-order signer key (the identity point) is refused by strict verification.
        let mut q = p.clone();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        q[n - 96..n - 64].copy_from_slice(&identity);
        // R = identity, s = 0: the forgery that a weak key admits under lax verification.
        q[n - 64..].fill(0);
        q[n - 64] = 1;
        let err = open_symmetric(&key, &seal_raw_symmetric(&key, &q)).unwrap_err();
        assert!(matches!(
            err,
            OpenError::InvalidSignature | OpenError::InvalidSignerKey
        ));

        // Asymmetric: re-sealing Bob's signed plaintext to Carol fails.
        let bob = recipient(1);
        let carol = recipient(2);
        let env = seal_asymmetric(&mut rng(2), &bob.public(), b"for bob", Some(&alice)).unwrap();
        let eph = PublicKey::from(<[u8; 32]>::try_from(&env[1..33]).unwrap());
        let dh = bob.secret.diffie_hellman(&eph);
        let okm = asym_key_nonce(eph.as_bytes(), bob.public.as_bytes(), dh.as_bytes());
        let (k, nonce) = split_key_nonce(&okm);
        let cipher = ChaCha20Poly1305::new(k.into());
        let p = decrypt_copy(&cipher, nonce.into(), &[MODE_ASYMMETRIC], &env[33..]).unwrap();
        // Seal `p` to Carol with the same construction.
        let eph2 = StaticSecret::from([9u8; 32]);
        let eph2_pub = PublicKey::from(&eph2);
        let dh2 = eph2.diffie_hellman(&carol.public());
        let okm2 = asym_key_nonce(eph2_pub.as_bytes(), carol.public.as_bytes(), dh2.as_bytes());
        let (k2, n2) = split_key_nonce(&okm2);
        let mut buf = p.to_vec();
        let tag = ChaCha20Poly1305::new(k2.into())
            .encrypt_inout_detached(n2.into(), &[MODE_ASYMMETRIC], buf.as_mut_slice().into())
            .unwrap();
        let mut forwarded = vec![MODE_ASYMMETRIC];
        forwarded.extend_from_slice(eph2_pub.as_bytes());
        forwarded.extend_from_slice(&buf);
        forwarded.extend_from_slice(&tag);
        assert_eq!(
            open_asymmetric(&carol, &forwarded).unwrap_err(),
            OpenError::InvalidSignature
        );
    }
}
