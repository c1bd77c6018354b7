//! The signed envelope around every application payload: `ApplicationMetadataMessage`.
//!
//! status-go signs `keccak256(payload)` with a recoverable secp256k1 signature and recovers the
//! sender's key from it (WIRE.md B.23). Ed25519 signatures cannot be recovered from, so status-rs
//! puts the signer's key next to the signature in the same field:
//!
//! | field | content |
//! |---|---|
//! | `signature = 1` | the sender's 32-byte Ed25519 chat key ‖ the 64-byte Ed25519 signature ([`SIGNATURE_FIELD_LEN`]) |
//! | `payload = 2` | the encoded typed payload (`ChatMessage`, `EmojiReaction`, `MembershipUpdateMessage`, …) |
//! | `type = 3` | which payload it is ([`PayloadType`]) |
//!
//! The signature covers the **signed bytes** ([`signing_input`]):
//!
//! ```text
//! SIGNATURE_CONTEXT ‖ u32_be(type) ‖ payload
//! ```
//!
//! [`SIGNATURE_CONTEXT`] is a fixed string that no other status-rs signature starts with, so a
//! signature made here can never be replayed as a bundle, membership-event or any other
//! signature of the same key; the type is bound so that a chat message cannot be re-labelled as a
//! reaction. The key must be a canonical Ed25519 point of large order and verification is
//! strict (`x3dh::PublicIdentity`).
//!
//! The message id is `keccak256(chat key ‖ signed bytes)` ([`MessageId`]), the same construction
//! as status-go's `keccak256(sender key ‖ envelope)` but over the canonical signed bytes, so
//! re-encoding an envelope (field order, unknown fields) never changes its id.

use prost::Message;
use x3dh::{IdentityKeyPair, PublicIdentity};

use crate::id::{MessageId, keccak256};

/// The domain-separation prefix of every application signature.
pub const SIGNATURE_CONTEXT: &[u8] = b"status-rs application metadata v1";

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Length of the `signature` field: the signer's key followed by the signature.
pub const SIGNATURE_FIELD_LEN: usize = PUBLIC_KEY_LEN + SIGNATURE_LEN;

/// Largest typed payload that is signed or accepted: 1 MiB, the largest message a ratchet session
/// carries (`ratchet::MAX_PAYLOAD_LEN`) and more than any content type allows
/// ([`crate::chat::MAX_IMAGE_LEN`] is the largest), so an honest payload always fits.
pub const MAX_PAYLOAD_LEN: usize = 1024 * 1024;

/// Largest encoded envelope accepted: the payload plus the signature field, the type and the
/// protobuf tags and lengths (under 128 bytes together).
pub const MAX_ENVELOPE_LEN: usize = MAX_PAYLOAD_LEN + 128;

/// What an envelope carries (`ApplicationMetadataMessage.Type`, WIRE.md B.23).
pub type PayloadType = proto::status::application_metadata_message::Type;

/// The bytes an envelope's signature covers: `SIGNATURE_CONTEXT ‖ u32_be(type) ‖ payload`.
pub fn signing_input(kind: PayloadType, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNATURE_CONTEXT.len() + 4 + payload.len());
    out.extend_from_slice(SIGNATURE_CONTEXT);
    out.extend_from_slice(&(kind as i32 as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The message id of `payload` of type `kind` signed by `sender`.
pub fn message_id(sender: &PublicIdentity, kind: PayloadType, payload: &[u8]) -> MessageId {
    MessageId(keccak256(&[
        sender.ed25519_bytes(),
        &signing_input(kind, payload),
    ]))
}

/// Why an envelope could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The payload is longer than [`MAX_PAYLOAD_LEN`].
    #[error("payload of {len} bytes exceeds {MAX_PAYLOAD_LEN}")]
    TooLarge {
        /// The payload's length.
        len: usize,
    },
    /// `Unknown` is not a type one may send.
    #[error("the payload type must be known")]
    UnknownType,
}

/// Why received bytes are not a valid signed envelope. Every variant means the bytes were
/// dropped; none is the receiver's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The envelope is longer than [`MAX_ENVELOPE_LEN`]; nothing was parsed.
    #[error("envelope of {len} bytes exceeds {MAX_ENVELOPE_LEN}")]
    TooLarge {
        /// The input's length.
        len: usize,
    },
    /// Not a protobuf `ApplicationMetadataMessage`.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The payload is longer than [`MAX_PAYLOAD_LEN`].
    #[error("payload exceeds {MAX_PAYLOAD_LEN} bytes")]
    PayloadTooLarge,
    /// The `signature` field is not [`SIGNATURE_FIELD_LEN`] bytes.
    #[error("signature field of {len} bytes, expected {SIGNATURE_FIELD_LEN}")]
    SignatureFieldLength {
        /// The field's length.
        len: usize,
    },
    /// The signer's key is not a valid Ed25519 public key.
    #[error("the signer's key is not a valid Ed25519 key")]
    BadKey,
    /// The signature does not verify (strictly) under the signer's key.
    #[error("the signature does not verify")]
    BadSignature,
    /// The type is `Unknown` or a value this version does not know.
    #[error("unknown payload type {0}")]
    UnknownType(i32),
}

/// A signed, verified application payload and its id.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedPayload {
    sender: PublicIdentity,
    signature: [u8; SIGNATURE_LEN],
    kind: PayloadType,
    payload: Vec<u8>,
    id: MessageId,
}

impl core::fmt::Debug for SignedPayload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SignedPayload")
            .field("sender", &self.sender.to_chat_key())
            .field("kind", &self.kind)
            .field("payload_len", &self.payload.len())
            .field("id", &self.id)
            .finish()
    }
}

impl SignedPayload {
    /// Signs `payload` as type `kind` with the sender's chat key.
    ///
    /// # Errors
    /// [`SignError::TooLarge`] above [`MAX_PAYLOAD_LEN`]; [`SignError::UnknownType`] for
    /// `PayloadType::Unknown`.
    pub fn sign(
        key: &IdentityKeyPair,
        kind: PayloadType,
        payload: Vec<u8>,
    ) -> Result<Self, SignError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(SignError::TooLarge { len: payload.len() });
        }
        if kind == PayloadType::Unknown {
            return Err(SignError::UnknownType);
        }
        let input = signing_input(kind, &payload);
        let signature = key.sign(&input);
        let sender = *key.public();
        let id = MessageId(keccak256(&[sender.ed25519_bytes(), &input]));
        Ok(SignedPayload {
            sender,
            signature,
            kind,
            payload,
            id,
        })
    }

    /// Decodes and verifies an envelope.
    ///
    /// # Errors
    /// See [`OpenError`]; on error nothing is returned and nothing else happens.
    pub fn decode(bytes: &[u8]) -> Result<Self, OpenError> {
        let msg: proto::status::ApplicationMetadataMessage =
            proto::decode_bounded(bytes, MAX_ENVELOPE_LEN).map_err(|e| match e {
                proto::DecodeError::TooLarge { len, .. } => OpenError::TooLarge { len },
                other => OpenError::Malformed(other.to_string()),
            })?;
        if msg.payload.len() > MAX_PAYLOAD_LEN {
            return Err(OpenError::PayloadTooLarge);
        }
        let kind = PayloadType::try_from(msg.r#type)
            .ok()
            .filter(|k| *k != PayloadType::Unknown)
            .ok_or(OpenError::UnknownType(msg.r#type))?;
        let field: &[u8; SIGNATURE_FIELD_LEN] =
            msg.signature
                .as_slice()
                .try_into()
                .map_err(|_| OpenError::SignatureFieldLength {
                    len: msg.signature.len(),
                })?;
        let (key_bytes, sig_bytes) = field.split_at(PUBLIC_KEY_LEN);
        let sig_bytes: [u8; SIGNATURE_LEN] =
            sig_bytes.try_into().map_err(|_| OpenError::BadSignature)?;
        let sender = PublicIdentity::from_bytes(key_bytes).map_err(|_| OpenError::BadKey)?;
        let input = signing_input(kind, &msg.payload);
        if !sender.verify(&input, &sig_bytes) {
            return Err(OpenError::BadSignature);
        }
        let id = MessageId(keccak256(&[sender.ed25519_bytes(), &input]));
        Ok(SignedPayload {
            sender,
            signature: sig_bytes,
            kind,
            payload: msg.payload,
            id,
        })
    }

    /// The protobuf encoding of the envelope.
    pub fn encode(&self) -> Vec<u8> {
        let mut signature = Vec::with_capacity(SIGNATURE_FIELD_LEN);
        signature.extend_from_slice(self.sender.ed25519_bytes());
        signature.extend_from_slice(&self.signature);
        proto::status::ApplicationMetadataMessage {
            signature,
            payload: self.payload.clone(),
            r#type: self.kind as i32,
        }
        .encode_to_vec()
    }

    /// The verified signer.
    pub fn sender(&self) -> &PublicIdentity {
        &self.sender
    }

    /// The payload's type.
    pub fn kind(&self) -> PayloadType {
        self.kind
    }

    /// The typed payload's bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Consumes the envelope, returning the payload bytes.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The message id.
    pub fn id(&self) -> MessageId {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(n: u8) -> IdentityKeyPair {
        IdentityKeyPair::from_seed(&[n; 32])
    }

    #[test]
    fn sign_then_open() {
        let k = key(1);
        let signed = SignedPayload::sign(&k, PayloadType::ChatMessage, b"hello".to_vec()).unwrap();
        let bytes = signed.encode();
        let opened = SignedPayload::decode(&bytes).unwrap();
        assert_eq!(opened, signed);
        assert_eq!(opened.sender(), k.public());
        assert_eq!(
            opened.id(),
            message_id(k.public(), PayloadType::ChatMessage, b"hello")
        );
        // The id is Keccak-256 of key ‖ context ‖ type ‖ payload.
        let mut manual = k.public().ed25519_bytes().to_vec();
        manual.extend_from_slice(b"status-rs application metadata v1");
        manual.extend_from_slice(&[0, 0, 0, 1]);
        manual.extend_from_slice(b"hello");
        assert_eq!(opened.id().0, keccak256(&[&manual]));
    }

    #[test]
    fn the_type_is_signed() {
        let signed = SignedPayload::sign(&key(1), PayloadType::ChatMessage, b"x".to_vec()).unwrap();
        let mut msg =
            proto::status::ApplicationMetadataMessage::decode(&signed.encode()[..]).unwrap();
        msg.r#type = PayloadType::EmojiReaction as i32;
        assert_eq!(
            SignedPayload::decode(&msg.encode_to_vec()),
            Err(OpenError::BadSignature)
        );
    }

    #[test]
    fn another_key_cannot_claim_the_signature() {
        let signed = SignedPayload::sign(&key(1), PayloadType::ChatMessage, b"x".to_vec()).unwrap();
        let mut msg =
            proto::status::ApplicationMetadataMessage::decode(&signed.encode()[..]).unwrap();
        msg.signature[..32].copy_from_slice(key(2).public().ed25519_bytes());
        assert_eq!(
            SignedPayload::decode(&msg.encode_to_vec()),
            Err(OpenError::BadSignature)
        );
    }

    #[test]
    fn rejects_bad_envelopes() {
        assert!(matches!(
            SignedPayload::decode(&[0xff; 8]),
            Err(OpenError::Malformed(_))
        ));
        let unknown = proto::status::ApplicationMetadataMessage {
            signature: vec![0; 96],
            payload: vec![],
            r#type: 0,
        };
        assert_eq!(
            SignedPayload::decode(&unknown.encode_to_vec()),
            Err(OpenError::UnknownType(0))
        );
        let short = proto::status::ApplicationMetadataMessage {
            signature: vec![0; 65],
            payload: vec![],
            r#type: 1,
        };
        assert_eq!(
            SignedPayload::decode(&short.encode_to_vec()),
            Err(OpenError::SignatureFieldLength { len: 65 })
        );
        // The identity point as a key: weak, refused.
        let mut weak = vec![0u8; 96];
        weak[0] = 1;
        let weak = proto::status::ApplicationMetadataMessage {
            signature: weak,
            payload: vec![],
            r#type: 1,
        };
        assert_eq!(
            SignedPayload::decode(&weak.encode_to_vec()),
            Err(OpenError::BadKey)
        );
        assert_eq!(
            SignedPayload::decode(&vec![0; MAX_ENVELOPE_LEN + 1]),
            Err(OpenError::TooLarge {
                len: MAX_ENVELOPE_LEN + 1
            })
        );
        assert_eq!(
            SignedPayload::sign(&key(1), PayloadType::Unknown, vec![]),
            Err(SignError::UnknownType)
        );
        assert_eq!(
            SignedPayload::sign(
                &key(1),
                PayloadType::ChatMessage,
                vec![0; MAX_PAYLOAD_LEN + 1]
            ),
            Err(SignError::TooLarge {
                len: MAX_PAYLOAD_LEN + 1
            })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_bit_flip_is_refused_or_changes_nothing(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            seed in any::<u8>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let signed = SignedPayload::sign(&key(seed), PayloadType::ChatMessage, payload).unwrap();
            let mut bytes = signed.encode();
            let i = flip.index(bytes.len());
            bytes[i] ^= 1 << bit;
            // A flipped bit either breaks the envelope or (in a protobuf tag that still decodes
            // to the same fields) leaves the very same verified content and id.
            if let Ok(opened) = SignedPayload::decode(&bytes) {
                prop_assert_eq!(opened, signed);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SignedPayload::decode(&bytes);
        }
    }
}
