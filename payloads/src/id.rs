//! Message ids and the Keccak-256 hash they are made of.

use core::fmt;
use core::str::FromStr;

use sha3::{Digest, Keccak256};

/// Length of a message id and of a Keccak-256 digest.
pub const ID_LEN: usize = 32;

/// Legacy Keccak-256 (the pre-standard padding Ethereum and Status use, not SHA3-256) over the
/// concatenation of `parts`.
pub fn keccak256(parts: &[&[u8]]) -> [u8; ID_LEN] {
    let mut hasher = Keccak256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The id of an application message: Keccak-256 of the sender's 32-byte chat key followed by the
/// signed bytes of its [`crate::metadata`] envelope (see [`crate::metadata::signing_input`]).
///
/// status-go hashes the sender's public key and the envelope bytes the same way; status-rs hashes
/// the signed bytes rather than the protobuf encoding, so an id does not depend on how a relay
/// or an attacker re-encodes the envelope. `Display` and `FromStr` use `0x` + 64 lowercase hex
/// digits, the form chat messages carry in `response_to` and reactions in `message_id`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub [u8; ID_LEN]);

impl MessageId {
    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// Why a string is not a message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageIdError {
    /// The string does not start with `0x`.
    #[error("a message id starts with 0x")]
    MissingPrefix,
    /// The string is not `0x` followed by exactly 64 hex digits.
    #[error("a message id is 0x followed by 64 hex digits")]
    Malformed,
}

impl FromStr for MessageId {
    type Err = MessageIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("0x").ok_or(MessageIdError::MissingPrefix)?;
        if digits.len() != 2 * ID_LEN {
            return Err(MessageIdError::Malformed);
        }
        let mut out = [0u8; ID_LEN];
        hex::decode_to_slice(digits, &mut out).map_err(|_| MessageIdError::Malformed)?;
        Ok(MessageId(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_is_legacy_keccak_not_sha3() {
        // WIRE.md Part C.10: keccak256("") differs from SHA3-256("").
        assert_eq!(
            hex::encode(keccak256(&[])),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(keccak256(&[b"ab", b"c"]), keccak256(&[b"abc"]));
    }

    #[test]
    fn message_id_text_round_trips() {
        let id = MessageId([0xab; 32]);
        let text = id.to_string();
        assert_eq!(text.len(), 66);
        assert_eq!(text.parse::<MessageId>(), Ok(id));
        assert_eq!(
            "ab".parse::<MessageId>(),
            Err(MessageIdError::MissingPrefix)
        );
        assert_eq!("0xab".parse::<MessageId>(), Err(MessageIdError::Malformed));
        let bad = format!("0x{}", "g".repeat(64));
        assert_eq!(bad.parse::<MessageId>(), Err(MessageIdError::Malformed));
    }
}
