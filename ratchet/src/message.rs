//! Ratchet messages and their wire encoding.
//!
//! A message travels as a `proto::secure::EncryptedMessageProtocol` (WIRE.md B.17) whose
//! `dr_header` (`DrHeader`) carries the header and whose `payload` carries the ciphertext:
//!
//! | `DrHeader` field | plain header | header encryption |
//! |---|---|---|
//! | `key = 1` | the sender's ratchet public key, 32 bytes | empty |
//! | `n = 2` | message number in the sending chain | 0 (absent) |
//! | `pn = 3` | length of the sender's previous sending chain | 0 (absent) |
//! | `id = 4` | not used by this crate (the X3DH layer may put the prekey id there) | same |
//! | `encrypted_header = 5` | empty | the sealed header, [`ENCRYPTED_HEADER_LEN`] bytes |
//!
//! `payload = 3` is the ChaCha20-Poly1305 ciphertext followed by its 16-byte tag. Other fields
//! of `EncryptedMessageProtocol` (an X3DH header, say) are ignored by [`Message::from_proto`].

use crate::keys::RatchetPublicKey;
use proto::Message as _;
use proto::secure::{DrHeader, EncryptedMessageProtocol};

/// Length of a ChaCha20-Poly1305 or XChaCha20-Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Length of a header's plaintext: ratchet key (32) ‖ `u32_be(pn)` ‖ `u32_be(n)`.
pub const HEADER_LEN: usize = 40;
/// Length of an XChaCha20-Poly1305 nonce.
pub const HEADER_NONCE_LEN: usize = 24;
/// Length of a sealed header: nonce (24) ‖ ciphertext (40) ‖ tag (16).
pub const ENCRYPTED_HEADER_LEN: usize = HEADER_NONCE_LEN + HEADER_LEN + TAG_LEN;
/// Largest accepted payload (ciphertext and tag). Status segments anything above ¾ of its 1 MiB
/// Waku message limit, so a single ratchet message never needs more; decoding refuses larger
/// input before allocating.
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;
/// Largest accepted encoding of a whole message: the payload plus generous room for the header
/// and protobuf framing.
pub const MAX_ENCODED_MESSAGE_LEN: usize = MAX_PAYLOAD_LEN + 1024;

/// A Double Ratchet header in the clear (the spec's `HEADER(dh_pair, pn, n)`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    /// The sender's current ratchet public key.
    pub ratchet_key: RatchetPublicKey,
    /// Number of messages in the sender's previous sending chain (`PN`).
    pub pn: u32,
    /// Number of this message in the sender's current sending chain (`N`).
    pub n: u32,
}

impl Header {
    /// The 40-byte encoding used as associated data and as the plaintext of a sealed header:
    /// ratchet key ‖ `u32_be(pn)` ‖ `u32_be(n)`.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (key, rest) = out.split_at_mut(32);
        key.copy_from_slice(self.ratchet_key.as_bytes());
        let (pn, n) = rest.split_at_mut(4);
        pn.copy_from_slice(&self.pn.to_be_bytes());
        n.copy_from_slice(&self.n.to_be_bytes());
        out
    }

    /// Parses the 40-byte encoding of [`Header::to_bytes`].
    pub fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Self {
        let mut key = [0u8; 32];
        let mut pn = [0u8; 4];
        let mut n = [0u8; 4];
        let (k, rest) = bytes.split_at(32);
        let (p, m) = rest.split_at(4);
        key.copy_from_slice(k);
        pn.copy_from_slice(p);
        n.copy_from_slice(m);
        Self {
            ratchet_key: RatchetPublicKey::from(key),
            pn: u32::from_be_bytes(pn),
            n: u32::from_be_bytes(n),
        }
    }
}

/// The header of a message: in the clear, or sealed under a header key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MessageHeader {
    /// A plain header (sessions without header encryption).
    Plain(Header),
    /// A sealed header: XChaCha20-Poly1305 nonce (24) ‖ ciphertext (40) ‖ tag (16).
    Encrypted([u8; ENCRYPTED_HEADER_LEN]),
}

/// An encrypted Double Ratchet message: a header and the AEAD ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub(crate) header: MessageHeader,
    pub(crate) ciphertext: Vec<u8>,
}

impl core::fmt::Debug for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Message")
            .field("header", &self.header)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Why bytes or a protobuf value are not a well-formed ratchet message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The encoding is longer than [`MAX_ENCODED_MESSAGE_LEN`]; nothing was parsed.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid protobuf `EncryptedMessageProtocol`.
    #[error("malformed protobuf")]
    Malformed,
    /// There is no `dr_header`, or it carries neither a ratchet key nor a sealed header.
    #[error("missing Double Ratchet header")]
    MissingHeader,
    /// The header carries both a plain part (`key`, `n` or `pn`) and a sealed header.
    #[error("header is both plain and encrypted")]
    AmbiguousHeader,
    /// The ratchet key is not 32 bytes long.
    #[error("ratchet key of {0} bytes, expected 32")]
    BadKeyLength(usize),
    /// The sealed header is not [`ENCRYPTED_HEADER_LEN`] bytes long.
    #[error("sealed header of {0} bytes, expected {ENCRYPTED_HEADER_LEN}")]
    BadEncryptedHeaderLength(usize),
    /// The payload is shorter than a tag or longer than [`MAX_PAYLOAD_LEN`].
    #[error("payload of {0} bytes is out of range")]
    BadPayloadLength(usize),
}

impl Message {
    /// The header, plain or sealed.
    pub fn header(&self) -> &MessageHeader {
        &self.header
    }

    /// The ciphertext followed by its 16-byte tag.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The wire header (`DrHeader`), with `id` left empty.
    pub fn to_dr_header(&self) -> DrHeader {
        match &self.header {
            MessageHeader::Plain(h) => DrHeader {
                key: h.ratchet_key.as_bytes().to_vec(),
                n: h.n,
                pn: h.pn,
                id: Vec::new(),
                encrypted_header: Vec::new(),
            },
            MessageHeader::Encrypted(sealed) => DrHeader {
                encrypted_header: sealed.to_vec(),
                ..DrHeader::default()
            },
        }
    }

    /// The wire value: an `EncryptedMessageProtocol` with `dr_header` and `payload` set.
    pub fn to_proto(&self) -> EncryptedMessageProtocol {
        EncryptedMessageProtocol {
            dr_header: Some(self.to_dr_header()),
            payload: self.ciphertext.clone(),
            ..EncryptedMessageProtocol::default()
        }
    }

    /// Protobuf encoding of [`Message::to_proto`].
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Validates a wire value (see the module docs for the rules).
    pub fn from_proto(wire: &EncryptedMessageProtocol) -> Result<Self, DecodeError> {
        let dr = wire.dr_header.as_ref().ok_or(DecodeError::MissingHeader)?;
        let len = wire.payload.len();
        if !(TAG_LEN..=MAX_PAYLOAD_LEN).contains(&len) {
            return Err(DecodeError::BadPayloadLength(len));
        }
        let header = if dr.encrypted_header.is_empty() {
            if dr.key.is_empty() {
                return Err(DecodeError::MissingHeader);
            }
            let key: [u8; 32] = dr
                .key
                .as_slice()
                .try_into()
                .map_err(|_| DecodeError::BadKeyLength(dr.key.len()))?;
            MessageHeader::Plain(Header {
                ratchet_key: RatchetPublicKey::from(key),
                pn: dr.pn,
                n: dr.n,
            })
        } else {
            if !dr.key.is_empty() || dr.n != 0 || dr.pn != 0 {
                return Err(DecodeError::AmbiguousHeader);
            }
            let sealed: [u8; ENCRYPTED_HEADER_LEN] =
                dr.encrypted_header.as_slice().try_into().map_err(|_| {
                    DecodeError::BadEncryptedHeaderLength(dr.encrypted_header.len())
                })?;
            MessageHeader::Encrypted(sealed)
        };
        Ok(Self {
            header,
            ciphertext: wire.payload.clone(),
        })
    }

    /// Decodes the protobuf encoding of an `EncryptedMessageProtocol`, refusing more than
    /// [`MAX_ENCODED_MESSAGE_LEN`] bytes before parsing.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire: EncryptedMessageProtocol = proto::decode_bounded(bytes, MAX_ENCODED_MESSAGE_LEN)
            .map_err(|e| match e {
                proto::DecodeError::TooLarge { len, max } => DecodeError::TooLarge { len, max },
                _ => DecodeError::Malformed,
            })?;
        Self::from_proto(&wire)
    }
}
