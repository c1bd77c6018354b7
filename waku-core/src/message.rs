//! The validated Waku message (14/WAKU2-MESSAGE), its deterministic hash and the relay message id.
//!
//! [`WakuMessage::decode`] is the one door from bytes to a message: it refuses input above
//! [`MAX_MESSAGE_SIZE`] before parsing, then checks the protobuf, the content topic and the
//! [`MAX_META_SIZE`] cap. A [`WakuMessage`] built by hand can be checked with
//! [`WakuMessage::validate`].
//!
//! # Encoding
//!
//! [`WakuMessage::encode`] writes `version` and `ephemeral` explicitly even at their default
//! values, as js-waku does (and as the vectors in `vectors/waku.json` show), and writes
//! `timestamp`, `meta` and `rate_limit_proof` only when present. Decoding then re-encoding a
//! message from another implementation can therefore give different bytes (for example nwaku
//! leaves a zero version out). That never matters for the [`MessageHash`], which covers neither
//! field, but it does for the relay message id [`relay_message_id`], which covers the exact
//! bytes: relays forward the bytes they received, never a re-encoding.
//!
//! # The deterministic hash
//!
//! `sha256(pubsub_topic ‖ payload ‖ content_topic ‖ meta ‖ u64_be(timestamp))`, with an absent
//! meta adding nothing. The hash is the store key, the store cursor and the presence-query key.
//!
//! An absent timestamp: nwaku and go-waku hash it as 8 zero bytes (the same as timestamp 0), which
//! is what [`WakuMessage::hash`] does. js-waku leaves the 8 bytes out when the timestamp is absent
//! (or zero), following 14/'s "exclude absent attributes"; [`WakuMessage::hash_js_waku`] gives
//! that variant. The two agree whenever a non-zero timestamp is set, which relay and store
//! require anyway.

use std::fmt;
use std::str::FromStr;

use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::topic::{ContentTopic, ContentTopicError, PubsubTopic};

/// The largest encoded Waku message accepted, in bytes (nwaku's default `MaxWakuMessageSize`,
/// 64/WAKU2-NETWORK). Checked on the encoded bytes before anything is parsed.
pub const MAX_MESSAGE_SIZE: usize = 150 * 1024;

/// The largest `meta` field accepted, in bytes (14/WAKU2-MESSAGE).
pub const MAX_META_SIZE: usize = 64;

/// The deterministic message hash of 14/WAKU2-MESSAGE. Shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MessageHash(pub [u8; 32]);

impl MessageHash {
    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash from a 32-byte slice (a store cursor or `message_hash` field), if it is 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(MessageHash)
    }
}

impl fmt::Display for MessageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MessageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageHash({self})")
    }
}

impl FromStr for MessageHash {
    type Err = hex::FromHexError;
    /// Parses 64 hex digits (either case, with or without a `0x` prefix).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(digits, &mut out)?;
        Ok(MessageHash(out))
    }
}

impl AsRef<[u8]> for MessageHash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The gossipsub message id Waku relay uses: `sha256(data)`, where `data` is the serialised
/// Waku message exactly as carried in the pubsub `Message.data` field.
pub fn relay_message_id(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Why bytes or a hand-built message are not a valid Waku message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The encoded message is larger than the limit (by default [`MAX_MESSAGE_SIZE`]).
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The limit that applied.
        max: usize,
    },
    /// The bytes are not a valid protobuf `WakuMessage` (including a content topic that is not
    /// UTF-8).
    #[error("malformed protobuf: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The content topic is empty or too long.
    #[error("invalid content topic: {0}")]
    ContentTopic(#[from] ContentTopicError),
    /// `meta` is longer than [`MAX_META_SIZE`].
    #[error("meta of {len} bytes exceeds {max} bytes")]
    MetaTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// A Waku message (14/WAKU2-MESSAGE), valid by construction when it comes from
/// [`WakuMessage::decode`] or [`TryFrom<proto::waku::WakuMessage>`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WakuMessage {
    /// The payload; status-rs puts a sealed [`crate::payload`] envelope here.
    pub payload: Vec<u8>,
    /// The content topic.
    pub content_topic: ContentTopic,
    /// How the payload is encrypted: 0 = none or application-level (status-rs), 1 = 26/, 2 = Noise.
    pub version: u32,
    /// The sender's wall-clock time, Unix nanoseconds.
    pub timestamp: Option<i64>,
    /// Application metadata, at most [`MAX_META_SIZE`] bytes; covered by the hash.
    pub meta: Option<Vec<u8>>,
    /// Whether store nodes should skip this message.
    pub ephemeral: bool,
    /// The embedded 17/ `RateLimitProof`, kept as bytes.
    pub rate_limit_proof: Option<Vec<u8>>,
}

impl WakuMessage {
    /// A version-0 message with no timestamp, meta or proof, not ephemeral.
    pub fn new(content_topic: ContentTopic, payload: Vec<u8>) -> Self {
        WakuMessage {
            payload,
            content_topic,
            version: 0,
            timestamp: None,
            meta: None,
            ephemeral: false,
            rate_limit_proof: None,
        }
    }

    /// Sets the timestamp (Unix nanoseconds).
    #[must_use]
    pub fn with_timestamp(mut self, unix_nanos: i64) -> Self {
        self.timestamp = Some(unix_nanos);
        self
    }

    /// Sets `meta`; [`WakuMessage::validate`] checks its size.
    #[must_use]
    pub fn with_meta(mut self, meta: Vec<u8>) -> Self {
        self.meta = Some(meta);
        self
    }

    /// Sets the ephemeral flag.
    #[must_use]
    pub fn with_ephemeral(mut self, ephemeral: bool) -> Self {
        self.ephemeral = ephemeral;
        self
    }

    /// Decodes and validates a message of at most [`MAX_MESSAGE_SIZE`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        WakuMessage::decode_with_limit(bytes, MAX_MESSAGE_SIZE)
    }

    /// Decodes and validates a message of at most `max_size` bytes (a network may choose another
    /// cap; status-go uses 1 MiB).
    pub fn decode_with_limit(bytes: &[u8], max_size: usize) -> Result<Self, MessageError> {
        if bytes.len() > max_size {
            return Err(MessageError::TooLarge {
                len: bytes.len(),
                max: max_size,
            });
        }
        let raw = proto::waku::WakuMessage::decode(bytes)?;
        WakuMessage::from_proto_unsized(raw)
    }

    fn from_proto_unsized(raw: proto::waku::WakuMessage) -> Result<Self, MessageError> {
        if let Some(meta) = &raw.meta {
            check_meta(meta)?;
        }
        let content_topic = ContentTopic::new(raw.content_topic)?;
        Ok(WakuMessage {
            payload: raw.payload,
            content_topic,
            version: raw.version.unwrap_or(0),
            timestamp: raw.timestamp,
            meta: raw.meta,
            ephemeral: raw.ephemeral.unwrap_or(false),
            rate_limit_proof: raw.rate_limit_proof,
        })
    }

    /// Checks a message built by hand against the same rules as [`WakuMessage::decode`].
    pub fn validate(&self) -> Result<(), MessageError> {
        self.validate_with_limit(MAX_MESSAGE_SIZE)
    }

    /// [`WakuMessage::validate`] with another size cap.
    pub fn validate_with_limit(&self, max_size: usize) -> Result<(), MessageError> {
        if let Some(meta) = &self.meta {
            check_meta(meta)?;
        }
        let len = self.encoded_len();
        if len > max_size {
            return Err(MessageError::TooLarge { len, max: max_size });
        }
        Ok(())
    }

    /// The protobuf encoding (see the module docs for which fields are written).
    pub fn encode(&self) -> Vec<u8> {
        proto::waku::WakuMessage::from(self).encode_to_vec()
    }

    /// The length of [`WakuMessage::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        proto::waku::WakuMessage::from(self).encoded_len()
    }

    /// The deterministic hash on `pubsub_topic`, nwaku and go-waku's rule: an absent timestamp
    /// hashes as 8 zero bytes.
    pub fn hash(&self, pubsub_topic: &PubsubTopic) -> MessageHash {
        self.hash_inner(pubsub_topic, true)
    }

    /// The hash as js-waku computes it: the same, except that an absent or zero timestamp adds
    /// nothing. Equal to [`WakuMessage::hash`] whenever the timestamp is set and non-zero.
    pub fn hash_js_waku(&self, pubsub_topic: &PubsubTopic) -> MessageHash {
        self.hash_inner(pubsub_topic, false)
    }

    fn hash_inner(&self, pubsub_topic: &PubsubTopic, zero_timestamp_bytes: bool) -> MessageHash {
        let mut h = Sha256::new();
        h.update(pubsub_topic.as_bytes());
        h.update(&self.payload);
        h.update(self.content_topic.as_bytes());
        if let Some(meta) = &self.meta {
            h.update(meta);
        }
        match self.timestamp {
            Some(ts) if ts != 0 => h.update(ts.to_be_bytes()),
            _ if zero_timestamp_bytes => h.update([0u8; 8]),
            _ => {}
        }
        MessageHash(h.finalize().into())
    }

    /// Whether a store node may keep this message (13/: not ephemeral and timestamped). The
    /// ±20 s window needs a clock and is the caller's check.
    pub fn is_storable(&self) -> bool {
        !self.ephemeral && self.timestamp.is_some_and(|t| t != 0)
    }
}

fn check_meta(meta: &[u8]) -> Result<(), MessageError> {
    if meta.len() > MAX_META_SIZE {
        return Err(MessageError::MetaTooLarge {
            len: meta.len(),
            max: MAX_META_SIZE,
        });
    }
    Ok(())
}

impl From<&WakuMessage> for proto::waku::WakuMessage {
    fn from(m: &WakuMessage) -> Self {
        proto::waku::WakuMessage {
            payload: m.payload.clone(),
            content_topic: m.content_topic.as_str().to_owned(),
            version: Some(m.version),
            timestamp: m.timestamp,
            meta: m.meta.clone(),
            rate_limit_proof: m.rate_limit_proof.clone(),
            ephemeral: Some(m.ephemeral),
        }
    }
}

impl From<WakuMessage> for proto::waku::WakuMessage {
    fn from(m: WakuMessage) -> Self {
        proto::waku::WakuMessage {
            payload: m.payload,
            content_topic: m.content_topic.into_string(),
            version: Some(m.version),
            timestamp: m.timestamp,
            meta: m.meta,
            rate_limit_proof: m.rate_limit_proof,
            ephemeral: Some(m.ephemeral),
        }
    }
}

impl TryFrom<proto::waku::WakuMessage> for WakuMessage {
    type Error = MessageError;
    /// Validates a wire message (for instance one nested in a store response or filter push)
    /// against the same rules as [`WakuMessage::decode`], including [`MAX_MESSAGE_SIZE`].
    fn try_from(raw: proto::waku::WakuMessage) -> Result<Self, Self::Error> {
        let len = raw.encoded_len();
        if len > MAX_MESSAGE_SIZE {
            return Err(MessageError::TooLarge {
                len,
                max: MAX_MESSAGE_SIZE,
            });
        }
        WakuMessage::from_proto_unsized(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> ContentTopic {
        "/a/1/b/proto".parse().unwrap()
    }

    #[test]
    fn size_cap_is_checked_before_parsing() {
        let big = vec![0u8; MAX_MESSAGE_SIZE + 1];
        assert_eq!(
            WakuMessage::decode(&big),
            Err(MessageError::TooLarge {
                len: MAX_MESSAGE_SIZE + 1,
                max: MAX_MESSAGE_SIZE
            })
        );
    }

    #[test]
    fn meta_cap() {
        let ok = WakuMessage::new(topic(), vec![1]).with_meta(vec![0; MAX_META_SIZE]);
        assert_eq!(WakuMessage::decode(&ok.encode()), Ok(ok.clone()));
        let bad = WakuMessage::new(topic(), vec![1]).with_meta(vec![0; MAX_META_SIZE + 1]);
        let err = MessageError::MetaTooLarge { len: 65, max: 64 };
        assert_eq!(bad.validate(), Err(err.clone()));
        assert_eq!(WakuMessage::decode(&bad.encode()), Err(err));
    }

    #[test]
    fn empty_content_topic_is_rejected() {
        let raw = proto::waku::WakuMessage {
            payload: vec![1, 2],
            ..Default::default()
        };
        assert_eq!(
            WakuMessage::decode(&raw.encode_to_vec()),
            Err(MessageError::ContentTopic(ContentTopicError::Empty))
        );
        assert_eq!(
            WakuMessage::try_from(raw),
            Err(MessageError::ContentTopic(ContentTopicError::Empty))
        );
    }

    #[test]
    fn non_utf8_topic_is_malformed() {
        // field 2, length 2, invalid UTF-8
        let bytes = [0x12, 0x02, 0xff, 0xfe];
        assert!(matches!(
            WakuMessage::decode(&bytes),
            Err(MessageError::Malformed(_))
        ));
    }

    #[test]
    fn validate_checks_size() {
        let m = WakuMessage::new(topic(), vec![0; MAX_MESSAGE_SIZE]);
        assert!(matches!(m.validate(), Err(MessageError::TooLarge { .. })));
        assert!(m.validate_with_limit(2 * MAX_MESSAGE_SIZE).is_ok());
    }

    #[test]
    fn absent_timestamp_rules() {
        let ps = PubsubTopic::default_waku();
        let m = WakuMessage::new(topic(), vec![1, 2, 3]);
        let zero = m.clone().with_timestamp(0);
        // nwaku: absent == 0 == eight zero bytes.
        assert_eq!(m.hash(&ps), zero.hash(&ps));
        let mut manual = Sha256::new();
        manual.update(ps.as_bytes());
        manual.update([1, 2, 3]);
        manual.update(topic().as_bytes());
        manual.update([0u8; 8]);
        assert_eq!(m.hash(&ps).0, <[u8; 32]>::from(manual.finalize()));
        // js-waku: the bytes are left out, so the hashes differ.
        assert_ne!(m.hash(&ps), m.hash_js_waku(&ps));
        // With a timestamp both rules agree.
        let t = m.with_timestamp(1_700_000_000_000_000_000);
        assert_eq!(t.hash(&ps), t.hash_js_waku(&ps));
    }

    #[test]
    fn hash_display_and_parse() {
        let h = MessageHash([0xab; 32]);
        assert_eq!(h.to_string(), "ab".repeat(32));
        assert_eq!(
            format!("{h:?}"),
            format!("MessageHash({})", "ab".repeat(32))
        );
        assert_eq!(h.to_string().parse::<MessageHash>().unwrap(), h);
        assert_eq!(format!("0x{h}").parse::<MessageHash>().unwrap(), h);
        assert!("abcd".parse::<MessageHash>().is_err());
        assert_eq!(MessageHash::from_slice(&[0xab; 32]), Some(h));
        assert_eq!(MessageHash::from_slice(&[0xab; 31]), None);
    }

    #[test]
    fn storable() {
        let m = WakuMessage::new(topic(), vec![]);
        assert!(!m.is_storable());
        assert!(m.clone().with_timestamp(5).is_storable());
        assert!(!m.with_timestamp(5).with_ephemeral(true).is_storable());
    }
}
