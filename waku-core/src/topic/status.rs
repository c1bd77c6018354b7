//! The Status topic scheme on Waku v2 (WIRE.md Part A, "Topics"; status-go `wakuv2/common/topic.go`).
//!
//! Every Status topic starts as a *topic name* string. Its 4-byte Waku v1 topic is the first four
//! bytes of the legacy Keccak-256 of the name (not SHA3-256: the padding differs), and the Waku v2
//! content topic is `/waku/1/0x{8 lowercase hex}/rfc26`. The names:
//!
//! | topic | name |
//! |---|---|
//! | contact code | `0x{hex(chat key)}-contact-code` |
//! | partitioned | `contact-discovery-{n mod 5000}`, n = the 32-byte chat key as a big-endian integer |
//! | negotiated | `0x{hex(keccak256(shared secret)[0..4])}-negotiated` |
//! | public chat | the channel name |
//!
//! Chat keys are the 32 bytes of an Ed25519 public key. Private groups have no topic of their own.
//!
//! ```
//! use waku_core::topic::status::StatusTopic;
//! let t = StatusTopic::public_chat("status");
//! assert_eq!(t.name(), "status");
//! assert_eq!(t.content_topic().as_str(), format!("/waku/1/{}/rfc26", t.topic()));
//! ```

use std::fmt;

use sha3::{Digest, Keccak256};

use super::ContentTopic;

/// The number of partitioned topics chat keys are spread over.
pub const PARTITIONS: u16 = 5000;

/// The legacy Keccak-256 hash (the Ethereum one, not FIPS-202 SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// A 4-byte Waku v1 topic, shown as `0x` + 8 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WakuV1Topic(pub [u8; 4]);

impl WakuV1Topic {
    /// The topic of a topic name: `keccak256(utf8(name))[0..4]`.
    pub fn from_name(name: &str) -> Self {
        let h = keccak256(name.as_bytes());
        WakuV1Topic([h[0], h[1], h[2], h[3]])
    }

    /// The bridged Waku v2 content topic `/waku/1/0x{hex}/rfc26`.
    pub fn content_topic(&self) -> ContentTopic {
        // 24 bytes, non-empty: always a valid content topic.
        ContentTopic(format!("/waku/1/{self}/rfc26"))
    }

    /// The Waku v1 topic a `/waku/1/0x{8 hex}/rfc26` content topic carries, if it is one
    /// (either hex case is accepted).
    pub fn from_content_topic(topic: &ContentTopic) -> Option<Self> {
        let parts = topic.parts().ok()?;
        if parts.generation.is_some()
            || parts.application != "waku"
            || parts.version != "1"
            || parts.encoding != "rfc26"
        {
            return None;
        }
        let hex_digits = parts.name.strip_prefix("0x")?;
        let mut out = [0u8; 4];
        hex::decode_to_slice(hex_digits, &mut out).ok()?;
        Some(WakuV1Topic(out))
    }
}

impl fmt::Display for WakuV1Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for WakuV1Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WakuV1Topic({self})")
    }
}

/// Which Status topic kind a [`StatusTopic`] was made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusTopicKind {
    /// A user's contact-code topic (bundles and contact codes).
    ContactCode,
    /// One of the [`PARTITIONS`] topics chat keys are spread over (first contact).
    Partitioned,
    /// The topic two parties negotiated from their shared secret.
    Negotiated,
    /// A public chat channel.
    PublicChat,
}

/// A Status topic: its name, 4-byte Waku v1 topic and Waku v2 content topic.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StatusTopic {
    kind: StatusTopicKind,
    name: String,
    topic: WakuV1Topic,
    content_topic: ContentTopic,
}

impl StatusTopic {
    fn from_name(kind: StatusTopicKind, name: String) -> Self {
        let topic = WakuV1Topic::from_name(&name);
        StatusTopic {
            kind,
            content_topic: topic.content_topic(),
            topic,
            name,
        }
    }

    /// The contact-code topic of a chat key: `0x{hex(chat key)}-contact-code`.
    pub fn contact_code(chat_key: &[u8; 32]) -> Self {
        let name = format!("0x{}-contact-code", hex::encode(chat_key));
        StatusTopic::from_name(StatusTopicKind::ContactCode, name)
    }

    /// The partitioned topic of a chat key: `contact-discovery-{n mod 5000}`.
    pub fn partitioned(chat_key: &[u8; 32]) -> Self {
        let name = format!("contact-discovery-{}", partition(chat_key));
        StatusTopic::from_name(StatusTopicKind::Partitioned, name)
    }

    /// The negotiated topic of a shared secret: `0x{hex(keccak256(secret)[0..4])}-negotiated`.
    pub fn negotiated(shared_secret: &[u8]) -> Self {
        let h = keccak256(shared_secret);
        let name = format!("0x{}-negotiated", hex::encode([h[0], h[1], h[2], h[3]]));
        StatusTopic::from_name(StatusTopicKind::Negotiated, name)
    }

    /// The topic of a public chat: the channel name itself.
    pub fn public_chat(channel: &str) -> Self {
        StatusTopic::from_name(StatusTopicKind::PublicChat, channel.to_owned())
    }

    /// What kind of topic this is.
    pub fn kind(&self) -> StatusTopicKind {
        self.kind
    }

    /// The topic name (the string that is hashed; also the input of the symmetric payload key of
    /// public chats and contact codes, see [`crate::payload::SymmetricKey::from_topic_name`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte Waku v1 topic.
    pub fn topic(&self) -> WakuV1Topic {
        self.topic
    }

    /// The Waku v2 content topic messages on this topic carry.
    pub fn content_topic(&self) -> &ContentTopic {
        &self.content_topic
    }
}

impl fmt::Debug for StatusTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The negotiated name is derived from a secret by a one-way hash truncated to 4 bytes, and
        // its topic is public on the wire anyway; nothing here is secret.
        f.debug_struct("StatusTopic")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("topic", &self.topic)
            .finish()
    }
}

/// The partition of a chat key: the 32 bytes as a big-endian unsigned integer, modulo
/// [`PARTITIONS`].
pub fn partition(chat_key: &[u8; 32]) -> u16 {
    let m = u32::from(PARTITIONS);
    let r = chat_key
        .iter()
        .fold(0u32, |r, &b| (r * 256 + u32::from(b)) % m);
    // r < 5000.
    u16::try_from(r).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_is_not_sha3() {
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn partition_is_big_endian_mod_5000() {
        let mut k = [0u8; 32];
        assert_eq!(partition(&k), 0);
        k[31] = 0x13;
        k[30] = 0x88; // 0x8813 = 34835 → 34835 mod 5000 = 4835
        assert_eq!(partition(&k), 4835);
        // (2^256 - 1) mod 5000 = 4935 (Python: `(2**256 - 1) % 5000`).
        assert_eq!(partition(&[0xff; 32]), 4935);
    }

    // The expected values below were computed independently of this crate, with a small
    // pure-Python Keccak-256 checked against keccak256("") and, with SHA-3 padding, against
    // Python's hashlib.sha3_256.
    const KEY: [u8; 32] = [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
        26, 27, 28, 29, 30, 31, 32,
    ];

    fn check(t: &StatusTopic, name: &str, topic: &str) {
        assert_eq!(t.name(), name);
        assert_eq!(t.topic().to_string(), topic);
        assert_eq!(t.content_topic().as_str(), format!("/waku/1/{topic}/rfc26"));
    }

    #[test]
    fn contact_code_topic() {
        let t = StatusTopic::contact_code(&KEY);
        assert_eq!(t.kind(), StatusTopicKind::ContactCode);
        check(
            &t,
            "0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20-contact-code",
            "0x00e32834",
        );
    }

    #[test]
    fn partitioned_topic() {
        assert_eq!(partition(&KEY), 1808);
        let t = StatusTopic::partitioned(&KEY);
        assert_eq!(t.kind(), StatusTopicKind::Partitioned);
        check(&t, "contact-discovery-1808", "0xff923303");
    }

    #[test]
    fn negotiated_topic() {
        let t = StatusTopic::negotiated(&[0x42; 32]);
        assert_eq!(t.kind(), StatusTopicKind::Negotiated);
        check(&t, "0x1874b9ac-negotiated", "0x879d7225");
    }

    #[test]
    fn public_chat_topics() {
        let t = StatusTopic::public_chat("status");
        assert_eq!(t.kind(), StatusTopicKind::PublicChat);
        check(&t, "status", "0xcd423760");
        check(
            &StatusTopic::public_chat("status-rs"),
            "status-rs",
            "0x08608331",
        );
        check(&StatusTopic::public_chat(""), "", "0xc5d24601");
        assert_eq!(
            hex::encode(keccak256(b"abc")),
            "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
        );
    }

    #[test]
    fn content_topic_round_trip() {
        let t = WakuV1Topic([0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(t.to_string(), "0xdeadbeef");
        assert_eq!(t.content_topic().as_str(), "/waku/1/0xdeadbeef/rfc26");
        assert_eq!(WakuV1Topic::from_content_topic(&t.content_topic()), Some(t));
        let other: ContentTopic = "/waku/2/0xdeadbeef/rfc26".parse().unwrap();
        assert_eq!(WakuV1Topic::from_content_topic(&other), None);
        let short: ContentTopic = "/waku/1/0xdeadbe/rfc26".parse().unwrap();
        assert_eq!(WakuV1Topic::from_content_topic(&short), None);
    }
}
