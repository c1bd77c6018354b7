//! Content topics, pubsub topics, autosharding (23/WAKU2-TOPICS, 51/WAKU2-RELAY-SHARDING) and
//! the Status topic scheme ([`status`]).
//!
//! Two kinds of topic exist on the Waku network:
//!
//! - A **content topic** ([`ContentTopic`]) labels what a message is about; light clients filter
//!   and store nodes index on it. The recommended form is `/{application}/{version}/{name}/{encoding}`,
//!   optionally prefixed by a generation (`/{gen}/{application}/…`) for autosharding. Real
//!   clients send other strings too, so [`ContentTopic`] itself only insists on a non-empty string
//!   of bounded length; [`ContentTopic::parts`] performs the structured parse when it matters
//!   (autosharding).
//! - A **pubsub topic** ([`PubsubTopic`]) is the gossipsub topic a message travels on: a static
//!   shard `/waku/2/rs/{cluster}/{shard}` or a named topic such as `/waku/2/default-waku/proto`.
//!
//! [`autoshard`] maps a content topic to its shard: `sha256(application ‖ version)`, the last 8
//! bytes read as a big-endian `u64`, modulo the number of shards.

pub mod status;

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The longest content topic accepted, in bytes.
///
/// Real topics are 20–60 bytes (`/waku/1/0x1a2b3c4d/rfc26` is 24). The bound keeps per-topic maps
/// (filter subscriptions, store indexes) small while leaving a generous margin so that no topic a
/// real client uses is ever refused.
pub const MAX_CONTENT_TOPIC_LEN: usize = 1024;

/// The longest pubsub topic accepted, in bytes. Same reasoning as [`MAX_CONTENT_TOPIC_LEN`];
/// static shard topics are at most 22 bytes.
pub const MAX_PUBSUB_TOPIC_LEN: usize = 1024;

/// The highest shard index of a static shard topic (nwaku `MaxShardIndex`; 1024 shards per cluster).
pub const MAX_SHARD_INDEX: u16 = 1023;

/// The legacy default pubsub topic, used by the 14/ hash vectors. Named sharding is deprecated.
pub const DEFAULT_PUBSUB_TOPIC: &str = "/waku/2/default-waku/proto";

/// The prefix of every static shard pubsub topic.
pub const STATIC_SHARD_PREFIX: &str = "/waku/2/rs/";

/// The Waku Network's cluster (cluster 1, 8 shards, autosharding).
pub const TWN_CLUSTER: u16 = 1;

/// The number of shards of the Waku Network.
pub const TWN_SHARDS: u16 = 8;

/// Status main net's cluster (WIRE.md B.6: 16–18 are Status's).
pub const STATUS_CLUSTER: u16 = 16;

// ---------------------------------------------------------------------------------------------
// Content topics
// ---------------------------------------------------------------------------------------------

/// A Waku content topic: any non-empty UTF-8 string of at most [`MAX_CONTENT_TOPIC_LEN`] bytes.
///
/// Leniency is deliberate: a message whose content topic does not follow the recommended
/// structure is still a valid Waku message and must be relayed and stored. Use
/// [`ContentTopic::parts`] for the structured view.
///
/// ```
/// use waku_core::topic::ContentTopic;
/// let t: ContentTopic = "/toychat/2/huilong/proto".parse().unwrap();
/// let p = t.parts().unwrap();
/// assert_eq!((p.application, p.version, p.name, p.encoding), ("toychat", "2", "huilong", "proto"));
/// assert_eq!(p.generation, None);
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentTopic(String);

/// Which part of a structured content topic a [`ContentTopicError::EmptyPart`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContentTopicPart {
    /// The optional autosharding generation (`/{gen}/…`).
    Generation,
    /// The application name.
    Application,
    /// The application version.
    Version,
    /// The topic name.
    Name,
    /// The payload encoding.
    Encoding,
}

impl fmt::Display for ContentTopicPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContentTopicPart::Generation => "generation",
            ContentTopicPart::Application => "application",
            ContentTopicPart::Version => "version",
            ContentTopicPart::Name => "name",
            ContentTopicPart::Encoding => "encoding",
        })
    }
}

/// Why a string is not a content topic, or not a structured one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentTopicError {
    /// The topic is the empty string (14/: the content topic is mandatory).
    #[error("content topic is empty")]
    Empty,
    /// The topic is longer than [`MAX_CONTENT_TOPIC_LEN`].
    #[error("content topic of {len} bytes exceeds {max} bytes")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Structured parse: the topic does not start with `/`.
    #[error("structured content topic must start with '/'")]
    MissingLeadingSlash,
    /// Structured parse: the topic has neither 4 nor 5 `/`-separated parts.
    #[error("structured content topic has {parts} parts, expected 4 or 5")]
    WrongPartCount {
        /// How many parts it has.
        parts: usize,
    },
    /// Structured parse: a part is empty.
    #[error("structured content topic has an empty {0}")]
    EmptyPart(ContentTopicPart),
    /// Structured parse: the generation is not a decimal `u32`.
    #[error("content topic generation is not a decimal number")]
    InvalidGeneration,
}

/// The structured view of a content topic: `/{gen}/{application}/{version}/{name}/{encoding}`
/// with the generation optional. Borrowed from the [`ContentTopic`] it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentTopicParts<'a> {
    /// The autosharding generation, if the topic names one (absent means generation 0).
    pub generation: Option<u32>,
    /// The application name; with `version` it selects the shard.
    pub application: &'a str,
    /// The application version.
    pub version: &'a str,
    /// The topic name.
    pub name: &'a str,
    /// The payload encoding (`proto`, `rfc26`, …).
    pub encoding: &'a str,
}

impl ContentTopic {
    /// Accepts any non-empty string of at most [`MAX_CONTENT_TOPIC_LEN`] bytes.
    pub fn new(topic: impl Into<String>) -> Result<Self, ContentTopicError> {
        let topic = topic.into();
        check_content_topic(&topic)?;
        Ok(ContentTopic(topic))
    }

    /// Builds a structured topic from its parts; each part must be non-empty and free of `/`.
    pub fn from_parts(
        generation: Option<u32>,
        application: &str,
        version: &str,
        name: &str,
        encoding: &str,
    ) -> Result<Self, ContentTopicError> {
        let parts = [
            (ContentTopicPart::Application, application),
            (ContentTopicPart::Version, version),
            (ContentTopicPart::Name, name),
            (ContentTopicPart::Encoding, encoding),
        ];
        let mut s = String::new();
        if let Some(g) = generation {
            s.push('/');
            s.push_str(&g.to_string());
        }
        for (which, part) in parts {
            if part.is_empty() {
                return Err(ContentTopicError::EmptyPart(which));
            }
            if part.contains('/') {
                // A slash would change the part count; report it the way parsing would see it.
                return Err(ContentTopicError::WrongPartCount {
                    parts: 4 + usize::from(generation.is_some()) + part.matches('/').count(),
                });
            }
            s.push('/');
            s.push_str(part);
        }
        ContentTopic::new(s)
    }

    /// The topic as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The topic as bytes (what the 14/ hash covers).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Gives back the string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Parses the structured form `/{application}/{version}/{name}/{encoding}` or
    /// `/{generation}/{application}/{version}/{name}/{encoding}`, as nwaku's `NsContentTopic` does:
    /// split on `/`, four or five parts, none empty, the generation decimal.
    pub fn parts(&self) -> Result<ContentTopicParts<'_>, ContentTopicError> {
        let rest = self
            .0
            .strip_prefix('/')
            .ok_or(ContentTopicError::MissingLeadingSlash)?;
        let mut split = rest.split('/');
        let mut fields: [&str; 5] = [""; 5];
        let mut count = 0usize;
        for (slot, part) in fields.iter_mut().zip(split.by_ref()) {
            *slot = part;
            count += 1;
        }
        let extra = split.count();
        if extra > 0 || count < 4 {
            return Err(ContentTopicError::WrongPartCount {
                parts: count + extra,
            });
        }
        let (generation, [application, version, name, encoding]) = match fields {
            [a, v, n, e, ""] if count == 4 => (None, [a, v, n, e]),
            [g, a, v, n, e] => {
                if g.is_empty() {
                    return Err(ContentTopicError::EmptyPart(ContentTopicPart::Generation));
                }
                if !g.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ContentTopicError::InvalidGeneration);
                }
                let gen_num: u32 = g
                    .parse()
                    .map_err(|_| ContentTopicError::InvalidGeneration)?;
                (Some(gen_num), [a, v, n, e])
            }
        };
        for (which, part) in [
            (ContentTopicPart::Application, application),
            (ContentTopicPart::Version, version),
            (ContentTopicPart::Name, name),
            (ContentTopicPart::Encoding, encoding),
        ] {
            if part.is_empty() {
                return Err(ContentTopicError::EmptyPart(which));
            }
        }
        Ok(ContentTopicParts {
            generation,
            application,
            version,
            name,
            encoding,
        })
    }
}

fn check_content_topic(topic: &str) -> Result<(), ContentTopicError> {
    if topic.is_empty() {
        return Err(ContentTopicError::Empty);
    }
    if topic.len() > MAX_CONTENT_TOPIC_LEN {
        return Err(ContentTopicError::TooLong {
            len: topic.len(),
            max: MAX_CONTENT_TOPIC_LEN,
        });
    }
    Ok(())
}

impl FromStr for ContentTopic {
    type Err = ContentTopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_content_topic(s)?;
        Ok(ContentTopic(s.to_owned()))
    }
}

impl TryFrom<String> for ContentTopic {
    type Error = ContentTopicError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ContentTopic::new(s)
    }
}

impl TryFrom<&str> for ContentTopic {
    type Error = ContentTopicError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ContentTopic> for String {
    fn from(t: ContentTopic) -> String {
        t.0
    }
}

impl AsRef<str> for ContentTopic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContentTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContentTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentTopic({:?})", self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Pubsub topics
// ---------------------------------------------------------------------------------------------

/// A static shard: cluster and shard index, the pubsub topic `/waku/2/rs/{cluster}/{shard}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StaticShard {
    /// The cluster id (0 global, 1 The Waku Network, 16–18 Status).
    pub cluster: u16,
    /// The shard index, at most [`MAX_SHARD_INDEX`].
    pub shard: u16,
}

/// A gossipsub topic on the Waku network: a static shard `/waku/2/rs/{cluster}/{shard}` or any
/// other non-empty string of at most [`MAX_PUBSUB_TOPIC_LEN`] bytes (a named topic such as
/// [`DEFAULT_PUBSUB_TOPIC`]).
///
/// A string under the [`STATIC_SHARD_PREFIX`] must be a well-formed static shard in canonical
/// decimal (no sign, no leading zeros, shard ≤ [`MAX_SHARD_INDEX`]), so that two topics naming
/// the same shard are always the same string, which is what gossipsub compares.
///
/// ```
/// use waku_core::topic::PubsubTopic;
/// let t = PubsubTopic::static_shard(1, 7).unwrap();
/// assert_eq!(t.as_str(), "/waku/2/rs/1/7");
/// assert_eq!("/waku/2/rs/1/7".parse::<PubsubTopic>().unwrap(), t);
/// assert!("/waku/2/rs/1/07".parse::<PubsubTopic>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PubsubTopic {
    // `shard` is a function of `topic`, so the derived comparisons agree with string comparison.
    topic: String,
    shard: Option<StaticShard>,
}

/// Why a string is not a pubsub topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PubsubTopicError {
    /// The topic is the empty string.
    #[error("pubsub topic is empty")]
    Empty,
    /// The topic is longer than [`MAX_PUBSUB_TOPIC_LEN`].
    #[error("pubsub topic of {len} bytes exceeds {max} bytes")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The topic starts with [`STATIC_SHARD_PREFIX`] but is not `{cluster}/{shard}` in canonical
    /// decimal with both values fitting `u16`.
    #[error("malformed static shard topic")]
    MalformedStaticShard,
    /// The shard index is above [`MAX_SHARD_INDEX`].
    #[error("shard {shard} exceeds the highest shard index {max}")]
    ShardOutOfRange {
        /// The shard index given.
        shard: u16,
        /// The highest allowed.
        max: u16,
    },
}

impl PubsubTopic {
    /// The static shard topic `/waku/2/rs/{cluster}/{shard}`; fails if `shard > MAX_SHARD_INDEX`.
    pub fn static_shard(cluster: u16, shard: u16) -> Result<Self, PubsubTopicError> {
        if shard > MAX_SHARD_INDEX {
            return Err(PubsubTopicError::ShardOutOfRange {
                shard,
                max: MAX_SHARD_INDEX,
            });
        }
        Ok(PubsubTopic {
            topic: format!("{STATIC_SHARD_PREFIX}{cluster}/{shard}"),
            shard: Some(StaticShard { cluster, shard }),
        })
    }

    /// The legacy default topic `/waku/2/default-waku/proto`.
    pub fn default_waku() -> Self {
        PubsubTopic {
            topic: DEFAULT_PUBSUB_TOPIC.to_owned(),
            shard: None,
        }
    }

    /// Parses a pubsub topic (same as [`FromStr`], taking ownership of the string).
    pub fn new(topic: impl Into<String>) -> Result<Self, PubsubTopicError> {
        let topic = topic.into();
        let shard = check_pubsub_topic(&topic)?;
        Ok(PubsubTopic { topic, shard })
    }

    /// The topic string, as gossipsub carries it.
    pub fn as_str(&self) -> &str {
        &self.topic
    }

    /// The topic as bytes (what the 14/ hash covers).
    pub fn as_bytes(&self) -> &[u8] {
        self.topic.as_bytes()
    }

    /// The static shard, if this is a static shard topic.
    pub fn shard(&self) -> Option<StaticShard> {
        self.shard
    }

    /// Gives back the string.
    pub fn into_string(self) -> String {
        self.topic
    }
}

fn parse_canonical_u16(s: &str) -> Option<u16> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

fn check_pubsub_topic(topic: &str) -> Result<Option<StaticShard>, PubsubTopicError> {
    if topic.is_empty() {
        return Err(PubsubTopicError::Empty);
    }
    if topic.len() > MAX_PUBSUB_TOPIC_LEN {
        return Err(PubsubTopicError::TooLong {
            len: topic.len(),
            max: MAX_PUBSUB_TOPIC_LEN,
        });
    }
    let Some(rest) = topic.strip_prefix(STATIC_SHARD_PREFIX) else {
        return Ok(None);
    };
    let (cluster, shard) = rest
        .split_once('/')
        .ok_or(PubsubTopicError::MalformedStaticShard)?;
    let cluster = parse_canonical_u16(cluster).ok_or(PubsubTopicError::MalformedStaticShard)?;
    let shard = parse_canonical_u16(shard).ok_or(PubsubTopicError::MalformedStaticShard)?;
    if shard > MAX_SHARD_INDEX {
        return Err(PubsubTopicError::ShardOutOfRange {
            shard,
            max: MAX_SHARD_INDEX,
        });
    }
    Ok(Some(StaticShard { cluster, shard }))
}

impl FromStr for PubsubTopic {
    type Err = PubsubTopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shard = check_pubsub_topic(s)?;
        Ok(PubsubTopic {
            topic: s.to_owned(),
            shard,
        })
    }
}

impl TryFrom<String> for PubsubTopic {
    type Error = PubsubTopicError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        PubsubTopic::new(s)
    }
}

impl TryFrom<&str> for PubsubTopic {
    type Error = PubsubTopicError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PubsubTopic> for String {
    fn from(t: PubsubTopic) -> String {
        t.topic
    }
}

impl AsRef<str> for PubsubTopic {
    fn as_ref(&self) -> &str {
        &self.topic
    }
}

impl fmt::Display for PubsubTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.topic)
    }
}

impl fmt::Debug for PubsubTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PubsubTopic({:?})", self.topic)
    }
}

// ---------------------------------------------------------------------------------------------
// Autosharding
// ---------------------------------------------------------------------------------------------

/// The most shards autosharding can spread over (one cluster holds `MAX_SHARD_INDEX + 1`).
pub const MAX_AUTOSHARD_SHARDS: u16 = MAX_SHARD_INDEX + 1;

/// Why a content topic could not be autosharded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AutoshardError {
    /// The content topic is not in the structured form.
    #[error("content topic is not structured: {0}")]
    ContentTopic(#[from] ContentTopicError),
    /// The topic names a generation other than 0; no implementation defines those yet.
    #[error("autosharding generation {0} is not supported")]
    UnsupportedGeneration(u32),
    /// The shard count is 0 or above [`MAX_AUTOSHARD_SHARDS`].
    #[error("invalid shard count {0}")]
    InvalidShardCount(u16),
}

/// The shard index of a content topic among `num_shards` (generation 0): `sha256(application ‖
/// version)`, its last 8 bytes as a big-endian `u64`, modulo `num_shards`.
pub fn autoshard_index(
    content_topic: &ContentTopic,
    num_shards: u16,
) -> Result<u16, AutoshardError> {
    if num_shards == 0 || num_shards > MAX_AUTOSHARD_SHARDS {
        return Err(AutoshardError::InvalidShardCount(num_shards));
    }
    let parts = content_topic.parts()?;
    match parts.generation {
        None | Some(0) => {}
        Some(g) => return Err(AutoshardError::UnsupportedGeneration(g)),
    }
    let digest: [u8; 32] = Sha256::new()
        .chain_update(parts.application.as_bytes())
        .chain_update(parts.version.as_bytes())
        .finalize()
        .into();
    let mut tail = [0u8; 8];
    for (dst, src) in tail.iter_mut().zip(digest.iter().skip(24)) {
        *dst = *src;
    }
    let value = u64::from_be_bytes(tail) % u64::from(num_shards);
    // `value < num_shards <= u16::MAX`.
    Ok(u16::try_from(value).unwrap_or(0))
}

/// The static shard topic a content topic maps to on `cluster` with `num_shards` shards
/// (51/WAKU2-RELAY-SHARDING, generation 0).
///
/// ```
/// use waku_core::topic::{autoshard, ContentTopic};
/// let t: ContentTopic = "/toychat/2/huilong/proto".parse().unwrap();
/// assert_eq!(autoshard(&t, 1, 8).unwrap().as_str(), "/waku/2/rs/1/3");
/// ```
pub fn autoshard(
    content_topic: &ContentTopic,
    cluster: u16,
    num_shards: u16,
) -> Result<PubsubTopic, AutoshardError> {
    let shard = autoshard_index(content_topic, num_shards)?;
    // `shard < num_shards <= MAX_SHARD_INDEX + 1`, so it is in range.
    PubsubTopic::static_shard(cluster, shard)
        .map_err(|_| AutoshardError::InvalidShardCount(num_shards))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(s: &str) -> ContentTopic {
        s.parse().unwrap()
    }

    #[test]
    fn content_topic_is_lenient_but_bounded() {
        assert!(ContentTopic::new("anything at all").is_ok());
        assert_eq!(ContentTopic::new(""), Err(ContentTopicError::Empty));
        let long = "x".repeat(MAX_CONTENT_TOPIC_LEN + 1);
        assert!(matches!(
            ContentTopic::new(long),
            Err(ContentTopicError::TooLong {
                len: 1025,
                max: 1024
            })
        ));
        assert!(ContentTopic::new("x".repeat(MAX_CONTENT_TOPIC_LEN)).is_ok());
    }

    #[test]
    fn structured_parse() {
        let t = ct("/0/toychat/4/huilong/proto");
        let p = t.parts().unwrap();
        assert_eq!(p.generation, Some(0));
        assert_eq!(p.application, "toychat");
        assert_eq!(p.version, "4");
        assert_eq!(p.name, "huilong");
        assert_eq!(p.encoding, "proto");

        assert_eq!(
            ct("toychat/2/huilong/proto").parts(),
            Err(ContentTopicError::MissingLeadingSlash)
        );
        assert_eq!(
            ct("/a/b/c").parts(),
            Err(ContentTopicError::WrongPartCount { parts: 3 })
        );
        assert_eq!(
            ct("/1/a/b/c/d/e").parts(),
            Err(ContentTopicError::WrongPartCount { parts: 6 })
        );
        assert_eq!(
            ct("/a//c/d").parts(),
            Err(ContentTopicError::EmptyPart(ContentTopicPart::Version))
        );
        assert_eq!(
            ct("/a/b/c/").parts(),
            Err(ContentTopicError::EmptyPart(ContentTopicPart::Encoding))
        );
        assert_eq!(
            ct("//a/b/c/d").parts(),
            Err(ContentTopicError::EmptyPart(ContentTopicPart::Generation))
        );
        assert_eq!(
            ct("/x/a/b/c/d").parts(),
            Err(ContentTopicError::InvalidGeneration)
        );
        assert_eq!(
            ct("/99999999999/a/b/c/d").parts(),
            Err(ContentTopicError::InvalidGeneration)
        );
    }

    #[test]
    fn from_parts_round_trips() {
        let t = ContentTopic::from_parts(Some(0), "toychat", "4", "huilong", "proto").unwrap();
        assert_eq!(t.as_str(), "/0/toychat/4/huilong/proto");
        let t = ContentTopic::from_parts(None, "waku", "1", "0x01020304", "rfc26").unwrap();
        assert_eq!(t.as_str(), "/waku/1/0x01020304/rfc26");
        assert_eq!(
            ContentTopic::from_parts(None, "a", "", "n", "e"),
            Err(ContentTopicError::EmptyPart(ContentTopicPart::Version))
        );
        assert!(ContentTopic::from_parts(None, "a/b", "1", "n", "e").is_err());
    }

    #[test]
    fn pubsub_topics() {
        let t = PubsubTopic::static_shard(16, 32).unwrap();
        assert_eq!(t.as_str(), "/waku/2/rs/16/32");
        assert_eq!(
            t.shard(),
            Some(StaticShard {
                cluster: 16,
                shard: 32
            })
        );
        assert_eq!(t.to_string(), "/waku/2/rs/16/32");
        assert_eq!(t, "/waku/2/rs/16/32".parse().unwrap());

        assert!(PubsubTopic::static_shard(65535, 1023).is_ok());
        assert_eq!(
            PubsubTopic::static_shard(1, 1024),
            Err(PubsubTopicError::ShardOutOfRange {
                shard: 1024,
                max: 1023
            })
        );

        let d = PubsubTopic::default_waku();
        assert_eq!(d.as_str(), DEFAULT_PUBSUB_TOPIC);
        assert_eq!(d.shard(), None);
        assert_eq!(d, DEFAULT_PUBSUB_TOPIC.parse().unwrap());

        for bad in [
            "/waku/2/rs/",
            "/waku/2/rs/1",
            "/waku/2/rs/1/",
            "/waku/2/rs//1",
            "/waku/2/rs/01/1",
            "/waku/2/rs/1/01",
            "/waku/2/rs/+1/1",
            "/waku/2/rs/65536/1",
            "/waku/2/rs/1/2/3",
            "/waku/2/rs/a/1",
        ] {
            assert_eq!(
                bad.parse::<PubsubTopic>(),
                Err(PubsubTopicError::MalformedStaticShard),
                "{bad}"
            );
        }
        assert!(matches!(
            "/waku/2/rs/1/1024".parse::<PubsubTopic>(),
            Err(PubsubTopicError::ShardOutOfRange { shard: 1024, .. })
        ));
        assert_eq!("".parse::<PubsubTopic>(), Err(PubsubTopicError::Empty));
        assert!("/waku/2/rs/0/0".parse::<PubsubTopic>().is_ok());
    }

    #[test]
    fn autosharding_spec_examples() {
        // relay-sharding spec: "myapp" + "1" hashes to …4928 → shard 0 of 8.
        let t = ct("/myapp/1/chat/proto");
        assert_eq!(autoshard_index(&t, 8).unwrap(), 0);
        assert_eq!(
            autoshard(&ct("/toychat/2/huilong/proto"), 1, 8)
                .unwrap()
                .as_str(),
            "/waku/2/rs/1/3"
        );
        assert_eq!(
            autoshard(&ct("/1/toychat/2/huilong/proto"), 1, 8),
            Err(AutoshardError::UnsupportedGeneration(1))
        );
        assert_eq!(
            autoshard(&ct("/toychat/2/huilong/proto"), 1, 0),
            Err(AutoshardError::InvalidShardCount(0))
        );
        assert_eq!(
            autoshard(&ct("/toychat/2/huilong/proto"), 1, 1025),
            Err(AutoshardError::InvalidShardCount(1025))
        );
        assert!(matches!(
            autoshard(&ct("not-structured"), 1, 8),
            Err(AutoshardError::ContentTopic(_))
        ));
        // The largest shard count gives shards in range.
        assert!(autoshard(&ct("/toychat/2/huilong/proto"), 1, 1024).is_ok());
    }
}
