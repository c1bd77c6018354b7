//! Identifiers: message ids, group ids and the 1:1 group id.

use core::fmt;

use sha2::{Digest, Sha256};

/// Domain tag of the message id (2/MVDS; the reference implementation's `protobuf/messageid.go`).
const MESSAGE_ID_TAG: &[u8] = b"MESSAGE_ID";

/// Domain tag of the 1:1 group id (status-rs's own construction, see [`GroupId::one_to_one`]).
pub const ONE_TO_ONE_GROUP_TAG: &[u8] = b"status-rs/mvds/one-to-one-group";

/// The id of an MVDS message: `sha256("MESSAGE_ID" ‖ group_id ‖ u64_le(timestamp) ‖ body)`
/// (WIRE.md B.21). Two messages with the same group, timestamp and body share an id, and MVDS
/// treats them as one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// Computes the id of the message `(group, timestamp, body)`.
    ///
    /// The timestamp is the int64 of the wire (Unix seconds) written as its two's-complement
    /// 64-bit little-endian bytes, as the reference implementation does.
    pub fn compute(group: &GroupId, timestamp: i64, body: &[u8]) -> MessageId {
        let mut h = Sha256::new();
        h.update(MESSAGE_ID_TAG);
        h.update(group.0);
        h.update(timestamp.to_le_bytes());
        h.update(body);
        MessageId(h.finalize().into())
    }

    /// The id as 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads an id from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<MessageId> {
        <[u8; 32]>::try_from(bytes).ok().map(MessageId)
    }
}

/// A group: an independent synchronisation context between peers (2/MVDS "Group Identifiers").
/// Each message belongs to one group and is shared with every peer of that group.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub [u8; 32]);

impl GroupId {
    /// The group of a 1:1 chat between the holders of the 32-byte public keys `a` and `b`.
    ///
    /// `sha256(ONE_TO_ONE_GROUP_TAG ‖ min(a, b) ‖ max(a, b))`, the keys compared as byte
    /// strings, so both parties compute the same id whichever of them calls. status-go derives
    /// its 1:1 group id the same way in spirit (keccak256 over both compressed secp256k1 keys,
    /// sorted); status-rs keys are 32-byte Ed25519 chat keys (WIRE.md A), so the construction
    /// is its own, with a domain tag.
    pub fn one_to_one(a: &[u8; 32], b: &[u8; 32]) -> GroupId {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut h = Sha256::new();
        h.update(ONE_TO_ONE_GROUP_TAG);
        h.update(lo);
        h.update(hi);
        GroupId(h.finalize().into())
    }

    /// The id as 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads a group id from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<GroupId> {
        <[u8; 32]>::try_from(bytes).ok().map(GroupId)
    }
}

fn short_hex(f: &mut fmt::Formatter<'_>, name: &str, bytes: &[u8; 32]) -> fmt::Result {
    write!(f, "{name}(")?;
    for b in bytes.iter().take(6) {
        write!(f, "{b:02x}")?;
    }
    write!(f, "…)")
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        short_hex(f, "MessageId", &self.0)
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        short_hex(f, "GroupId", &self.0)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_vector() {
        // Computed independently with Python's hashlib:
        // sha256(b"MESSAGE_ID" + bytes(range(32)) + (1700000000).to_bytes(8, "little") + b"hello")
        let group = GroupId(core::array::from_fn(|i| i as u8));
        let id = MessageId::compute(&group, 1_700_000_000, b"hello");
        assert_eq!(
            id.to_string(),
            "bd835ec9dcbf5d158f5ab99d83993e9d23415127f94d9380523f9fb6f62e725c"
        );
    }

    #[test]
    fn negative_timestamp_is_twos_complement() {
        let group = GroupId([7; 32]);
        let mut manual = Vec::new();
        manual.extend_from_slice(b"MESSAGE_ID");
        manual.extend_from_slice(&[7; 32]);
        manual.extend_from_slice(&u64::MAX.to_le_bytes());
        manual.extend_from_slice(b"x");
        let expected: [u8; 32] = Sha256::digest(&manual).into();
        assert_eq!(MessageId::compute(&group, -1, b"x").0, expected);
    }

    #[test]
    fn one_to_one_is_symmetric_and_distinct() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let c = [3u8; 32];
        assert_eq!(GroupId::one_to_one(&a, &b), GroupId::one_to_one(&b, &a));
        assert_ne!(GroupId::one_to_one(&a, &b), GroupId::one_to_one(&a, &c));
        assert_ne!(GroupId::one_to_one(&a, &a), GroupId::one_to_one(&b, &b));
        // Computed independently with Python's hashlib:
        // sha256(b"status-rs/mvds/one-to-one-group" + bytes([1]*32) + bytes([2]*32))
        assert_eq!(
            GroupId::one_to_one(&b, &a).to_string(),
            "ba7e39571aaeece29fa2e94fb50cd7bd12ee7f16ca03a9461b0af24943941414"
        );
    }
}
