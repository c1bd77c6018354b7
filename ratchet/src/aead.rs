//! The two AEAD uses of the profile: message bodies (ChaCha20-Poly1305 under a key and nonce
//! derived from the message key) and sealed headers (XChaCha20-Poly1305 under a header key and a
//! random nonce).

use crate::kdf::message_key_material;
use crate::message::{ENCRYPTED_HEADER_LEN, HEADER_LEN, HEADER_NONCE_LEN, TAG_LEN};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Splits a 44-byte `key ‖ nonce` into the cipher and its nonce.
fn body_cipher(message_key: &[u8; 32]) -> (ChaCha20Poly1305, chacha20poly1305::Nonce) {
    let okm = message_key_material(message_key);
    let (key, nonce) = okm.split_at(32);
    let cipher = ChaCha20Poly1305::new(&chacha20poly1305::Key::from(
        <[u8; 32]>::try_from(key).unwrap_or([0; 32]),
    ));
    let nonce = chacha20poly1305::Nonce::from(<[u8; 12]>::try_from(nonce).unwrap_or([0; 12]));
    (cipher, nonce)
}

/// `ENCRYPT(mk, plaintext, ad)`: ciphertext ‖ tag.
pub(crate) fn seal_body(message_key: &[u8; 32], plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
    let (cipher, nonce) = body_cipher(message_key);
    let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    match cipher.encrypt_inout_detached(&nonce, ad, out.as_mut_slice().into()) {
        Ok(tag) => out.extend_from_slice(&tag),
        // Only for inputs beyond ChaCha20's 256 GiB limit, which callers never pass.
        Err(_) => out.clear(),
    }
    out
}

/// `DECRYPT(mk, ciphertext, ad)`: the plaintext, or `None` when the tag does not verify.
pub(crate) fn open_body(
    message_key: &[u8; 32],
    ciphertext: &[u8],
    ad: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let split = ciphertext.len().checked_sub(TAG_LEN)?;
    let (ct, tag) = ciphertext.split_at(split);
    let tag = Tag::try_from(tag).ok()?;
    let (cipher, nonce) = body_cipher(message_key);
    let mut out = Zeroizing::new(ct.to_vec());
    cipher
        .decrypt_inout_detached(&nonce, ad, out.as_mut_slice().into(), &tag)
        .ok()?;
    Some(out)
}

/// `HENCRYPT(hk, header)`: nonce ‖ ciphertext ‖ tag, with the session's AD authenticated.
pub(crate) fn seal_header(
    header_key: &[u8; 32],
    nonce: [u8; HEADER_NONCE_LEN],
    header: &[u8; HEADER_LEN],
    ad: &[u8],
) -> [u8; ENCRYPTED_HEADER_LEN] {
    let cipher = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*header_key));
    let mut out = [0u8; ENCRYPTED_HEADER_LEN];
    let (n, rest) = out.split_at_mut(HEADER_NONCE_LEN);
    let (body, tag_out) = rest.split_at_mut(HEADER_LEN);
    n.copy_from_slice(&nonce);
    body.copy_from_slice(header);
    if let Ok(tag) = cipher.encrypt_inout_detached(&XNonce::from(nonce), ad, body.into()) {
        tag_out.copy_from_slice(&tag);
    }
    out
}

/// `HDECRYPT(hk, sealed)`: the 40-byte header plaintext, or `None` when the tag does not verify.
pub(crate) fn open_header(
    header_key: &[u8; 32],
    sealed: &[u8; ENCRYPTED_HEADER_LEN],
    ad: &[u8],
) -> Option<[u8; HEADER_LEN]> {
    let (nonce, rest) = sealed.split_at(HEADER_NONCE_LEN);
    let (ct, tag) = rest.split_at(HEADER_LEN);
    let nonce = XNonce::from(<[u8; HEADER_NONCE_LEN]>::try_from(nonce).ok()?);
    let tag = Tag::try_from(tag).ok()?;
    let mut body = <[u8; HEADER_LEN]>::try_from(ct).ok()?;
    let cipher = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*header_key));
    cipher
        .decrypt_inout_detached(&nonce, ad, body.as_mut_slice().into(), &tag)
        .ok()?;
    Some(body)
}
