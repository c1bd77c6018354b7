//! Ethereum node records (ENR) with the secp256k1 "v4" identity scheme, as Waku uses them to
//! advertise a node: over discv5, in DNS trees and in peer-exchange answers.
//!
//! A record is the RLP list `[signature, seq, k1, v1, k2, v2, …]` (EIP-778, and its current
//! text in devp2p `enr.md`). [`Enr::decode`] accepts exactly the canonical encoding and checks:
//!
//! - the whole input is one RLP list of at most [`MAX_ENR_LEN`] = 300 bytes (EIP-778: "the
//!   maximum encoded size of a node record is 300 bytes"), with nothing after it;
//! - every length in its shortest form and every single byte below `0x80` unwrapped, so a
//!   decoded record re-encodes to the same bytes;
//! - a 64-byte signature, a `seq` integer of at most 8 bytes without leading zeros, and keys
//!   that are byte strings, strictly increasing (sorted and unique);
//! - `id` = `"v4"` and a `secp256k1` value that is a 33-byte compressed point on the curve;
//! - the signature, `r ‖ s`, over `keccak256(rlp([seq, k1, v1, …]))` by that key.
//!
//! **Low S.** A signature whose `s` is above half the group order is refused
//! ([`EnrError::HighS`]). go-ethereum's `crypto.VerifySignature` (both the libsecp256k1 build and
//! the pure-Go one, which checks `s` explicitly) and nim-eth's ENR code that nwaku uses (which
//! calls libsecp256k1's `secp256k1_ecdsa_verify`) refuse such signatures too, so a record they
//! would drop is never accepted here; the builder always signs with low `s`.
//!
//! **Waku fields** (waku-org/specs `enr.md` and `relay-sharding.md`): [`Enr::waku2`] reads the
//! capability bitfield, [`Enr::multiaddrs`] the `u16_be length ‖ binary multiaddr` list,
//! [`Enr::shards`] the relay shards from `rs` (`u16_be cluster ‖ u8 count ‖ count × u16_be
//! shard`) or `rsv` (`u16_be cluster ‖ 128-byte bit vector`). When a record carries both, `rs`
//! wins, as the spec says and as nwaku's `relaySharding` does. For `rsv`, the bit order follows
//! nwaku (`toBitVector`): shard `i` is bit `i % 8` (least significant first) of byte `i / 8`;
//! js-waku numbers bits from the most significant end instead, and the spec's prose ("the
//! right-most bit is shard 0") matches neither, so `rsv` records from js-waku may read
//! differently. Malformed Waku fields do not make a record invalid: their accessors fail.
//!
//! **The libp2p view.** [`Enr::libp2p_peer_id`] gives the libp2p peer id of the record's key
//! (identity multihash of the protobuf `PublicKey{Type=Secp256k1, Data=33 bytes}`, base58btc:
//! the `16Uiu2…` form), and [`Enr::dial_addrs`] the text multiaddrs a libp2p node dials,
//! without depending on libp2p.
//!
//! ```
//! use waku_core::enr::{Enr, EnrBuilder, Waku2};
//!
//! let secret = [0x42; 32];
//! let enr = EnrBuilder::new()
//!     .seq(3)
//!     .ip4([192, 0, 2, 1].into())
//!     .tcp(60000)
//!     .waku2(Waku2::RELAY | Waku2::STORE)
//!     .sign(&secret)
//!     .unwrap();
//! let text = enr.to_text();
//! let back = Enr::from_text(&text).unwrap();
//! assert_eq!(back, enr);
//! assert!(back.waku2().unwrap().relay());
//! let peer = back.libp2p_peer_id();
//! assert_eq!(back.dial_addrs(), vec![format!("/ip4/192.0.2.1/tcp/60000/p2p/{peer}")]);
//! ```

mod multiaddr;
mod rlp;
mod text;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

pub use multiaddr::{MAX_MULTIADDR_LEN, Multiaddr, MultiaddrError};

use crate::peer_exchange::PeerRecord;

/// The largest record accepted or built, in bytes (EIP-778). Decoding refuses longer input
/// before reading it, so nothing a record yields is larger than this.
pub const MAX_ENR_LEN: usize = 300;

/// The longest text form accepted: `enr:` and the unpadded base64 of [`MAX_ENR_LEN`] bytes.
pub const MAX_ENR_TEXT_LEN: usize = 4 + MAX_ENR_LEN.div_ceil(3) * 4;

/// The highest shard index a relay shard can have (nwaku `MaxShardIndex`; `rsv` has 1024 bits).
pub const MAX_SHARD_INDEX: u16 = 1023;

/// `rs` holds fewer shards than this; the builder writes `rsv` from here on (nwaku and js-waku).
pub const RS_MAX_SHARDS: usize = 64;

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnrError {
    /// The record is longer than [`MAX_ENR_LEN`] (or its text longer than [`MAX_ENR_TEXT_LEN`]).
    #[error("record of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The text does not start with `enr:`.
    #[error("missing enr: prefix")]
    MissingPrefix,
    /// The text is not unpadded URL-safe base64.
    #[error("bad base64")]
    BadBase64,
    /// The input ends inside an RLP item (or a length does not fit in memory).
    #[error("truncated RLP")]
    Truncated,
    /// An RLP length is not in its shortest form, or a single byte is wrapped needlessly.
    #[error("non-canonical RLP")]
    NonCanonicalRlp,
    /// Bytes follow the record's list.
    #[error("trailing bytes after the record")]
    TrailingBytes,
    /// The record is not an RLP list.
    #[error("record is not an RLP list")]
    NotAList,
    /// The signature is missing or is not a 64-byte string.
    #[error("missing or malformed signature")]
    BadSignatureField,
    /// `seq` is missing, a list, longer than 8 bytes or has a leading zero.
    #[error("missing or malformed seq")]
    BadSeq,
    /// A key is a list instead of a byte string.
    #[error("key is not a byte string")]
    BadKey,
    /// A key has no value after it.
    #[error("key without a value")]
    MissingValue,
    /// The keys are not in strictly increasing byte order.
    #[error("keys not sorted")]
    UnsortedKeys,
    /// A key appears twice.
    #[error("duplicate key")]
    DuplicateKey,
    /// There is no `id` key.
    #[error("no id key")]
    MissingId,
    /// `id` names a scheme other than "v4".
    #[error("unsupported identity scheme")]
    UnsupportedId,
    /// There is no `secp256k1` key.
    #[error("no secp256k1 key")]
    MissingPublicKey,
    /// `secp256k1` is not a 33-byte compressed point on the curve.
    #[error("bad secp256k1 public key")]
    BadPublicKey,
    /// The signature's `s` is above half the group order (see the module docs on low S).
    #[error("high-S signature")]
    HighS,
    /// The signature does not verify under the record's key (or `r`/`s` is zero or too big).
    #[error("bad signature")]
    BadSignature,
    /// A Waku field (`multiaddrs`, `rs`, `rsv`, `waku2`) is malformed; the name says which.
    #[error("malformed {0} field")]
    BadField(&'static str),
    /// The builder was given a secret key that is zero or not below the group order.
    #[error("bad secret key")]
    BadSecretKey,
    /// The builder was given a relay shard above [`MAX_SHARD_INDEX`], or no shard, or more
    /// than 1024.
    #[error("bad relay shards")]
    BadShards,
}

/// The `waku2` capability bitfield (waku-org/specs `enr.md`). Unknown bits are kept (nwaku
/// sets bit 5 for mix). A node's own bits come from
/// [`Capabilities::enr_waku2_bits`](crate::roles::Capabilities::enr_waku2_bits):
/// `Waku2::from_bits(caps.enr_waku2_bits())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Waku2(u8);

impl Waku2 {
    /// Bit 0: relay.
    pub const RELAY: Waku2 = Waku2(1);
    /// Bit 1: store.
    pub const STORE: Waku2 = Waku2(1 << 1);
    /// Bit 2: filter.
    pub const FILTER: Waku2 = Waku2(1 << 2);
    /// Bit 3: lightpush.
    pub const LIGHTPUSH: Waku2 = Waku2(1 << 3);
    /// Bit 4: store sync.
    pub const SYNC: Waku2 = Waku2(1 << 4);

    /// The bitfield from its byte, unknown bits included.
    pub const fn from_bits(bits: u8) -> Self {
        Waku2(bits)
    }
    /// The byte.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Waku2) -> bool {
        self.0 & other.0 == other.0
    }
    /// Relay is advertised.
    pub const fn relay(self) -> bool {
        self.contains(Self::RELAY)
    }
    /// Store is advertised.
    pub const fn store(self) -> bool {
        self.contains(Self::STORE)
    }
    /// Filter is advertised.
    pub const fn filter(self) -> bool {
        self.contains(Self::FILTER)
    }
    /// Lightpush is advertised.
    pub const fn lightpush(self) -> bool {
        self.contains(Self::LIGHTPUSH)
    }
    /// Store sync is advertised.
    pub const fn sync(self) -> bool {
        self.contains(Self::SYNC)
    }
}

impl std::ops::BitOr for Waku2 {
    type Output = Waku2;
    fn bitor(self, rhs: Waku2) -> Waku2 {
        Waku2(self.0 | rhs.0)
    }
}

/// The relay shards a record advertises (`rs` or `rsv`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelayShards {
    /// The cluster id.
    pub cluster: u16,
    /// The shard indices, in the order the record lists them (`rsv`: ascending).
    pub shards: Vec<u16>,
}

/// One key/value pair: the key bytes and the value's whole RLP item.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Pair {
    key: Vec<u8>,
    value: Vec<u8>,
}

/// A decoded, signature-checked node record. Equality is byte equality of the encodings.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Enr {
    raw: Vec<u8>,
    seq: u64,
    pairs: Vec<Pair>,
    public_key: [u8; 33],
    node_id: [u8; 32],
}

impl std::fmt::Debug for Enr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enr")
            .field("seq", &self.seq)
            .field("node_id", &hex::encode(self.node_id))
            .field(
                "keys",
                &self.keys().map(String::from_utf8_lossy).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn keccak(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// `keccak256` of the content list `rlp([seq, k, v, …])` whose items are `content_items`.
fn content_hash(content_items: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    let mut header = Vec::with_capacity(9);
    rlp::write_header(&mut header, true, content_items.len());
    hasher.update(&header);
    hasher.update(content_items);
    hasher.finalize().into()
}

impl Enr {
    /// Decodes and checks a record (see the module docs for every check).
    pub fn decode(bytes: &[u8]) -> Result<Enr, EnrError> {
        Enr::decode_inner(bytes, true)
    }

    /// [`Enr::decode`], with the signature check skipped only for a record this module has
    /// just signed itself (every other check still runs).
    fn decode_inner(bytes: &[u8], verify: bool) -> Result<Enr, EnrError> {
        if bytes.len() > MAX_ENR_LEN {
            return Err(EnrError::TooLarge(bytes.len()));
        }
        let (list, rest) = rlp::read_item(bytes)?;
        if !rest.is_empty() {
            return Err(EnrError::TrailingBytes);
        }
        if !list.is_list {
            return Err(EnrError::NotAList);
        }
        let (sig, content) =
            rlp::read_item(list.payload).map_err(|_| EnrError::BadSignatureField)?;
        if sig.is_list || sig.payload.len() != 64 {
            return Err(EnrError::BadSignatureField);
        }
        let (seq_item, mut rest) = rlp::read_item(content).map_err(|e| match e {
            EnrError::Truncated if content.is_empty() => EnrError::BadSeq,
            e => e,
        })?;
        if seq_item.is_list {
            return Err(EnrError::BadSeq);
        }
        let seq = rlp::parse_uint(seq_item.payload).ok_or(EnrError::BadSeq)?;

        let mut pairs: Vec<Pair> = Vec::new();
        while !rest.is_empty() {
            let (key, after) = rlp::read_item(rest)?;
            if key.is_list {
                return Err(EnrError::BadKey);
            }
            if after.is_empty() {
                return Err(EnrError::MissingValue);
            }
            let (value, after) = rlp::read_item(after)?;
            if let Some(prev) = pairs.last() {
                match prev.key.as_slice().cmp(key.payload) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => return Err(EnrError::DuplicateKey),
                    std::cmp::Ordering::Greater => return Err(EnrError::UnsortedKeys),
                }
            }
            pairs.push(Pair {
                key: key.payload.to_vec(),
                value: value.encoded.to_vec(),
            });
            rest = after;
        }

        let find = |k: &[u8]| {
            pairs
                .iter()
                .find(|p| p.key == k)
                .map(|p| p.value.as_slice())
        };
        let id = find(b"id").ok_or(EnrError::MissingId)?;
        let (id, _) = rlp::read_item(id)?;
        if id.is_list || id.payload != b"v4" {
            return Err(EnrError::UnsupportedId);
        }
        let pk = find(b"secp256k1").ok_or(EnrError::MissingPublicKey)?;
        let (pk, _) = rlp::read_item(pk)?;
        let public_key: [u8; 33] = match pk.payload {
            p if !pk.is_list && p.len() == 33 && matches!(p.first(), Some(2 | 3)) => {
                p.try_into().map_err(|_| EnrError::BadPublicKey)?
            }
            _ => return Err(EnrError::BadPublicKey),
        };
        let key = VerifyingKey::from_sec1_bytes(&public_key).map_err(|_| EnrError::BadPublicKey)?;
        if verify {
            let signature =
                Signature::from_slice(sig.payload).map_err(|_| EnrError::BadSignature)?;
            if signature.normalize_s() != signature {
                return Err(EnrError::HighS);
            }
            key.verify_prehash(&content_hash(content), &signature)
                .map_err(|_| EnrError::BadSignature)?;
        }

        let uncompressed = key.to_sec1_point(false);
        let node_id = keccak(uncompressed.as_bytes().get(1..).unwrap_or_default());
        Ok(Enr {
            raw: bytes.to_vec(),
            seq,
            pairs,
            public_key,
            node_id,
        })
    }

    /// Decodes the text form `enr:<unpadded URL-safe base64>`.
    pub fn from_text(text: &str) -> Result<Enr, EnrError> {
        if text.len() > MAX_ENR_TEXT_LEN {
            return Err(EnrError::TooLarge(text.len()));
        }
        let b64 = text.strip_prefix("enr:").ok_or(EnrError::MissingPrefix)?;
        let bytes = text::base64url_decode(b64.as_bytes()).ok_or(EnrError::BadBase64)?;
        Enr::decode(&bytes)
    }

    /// The record's bytes, exactly as decoded or signed.
    pub fn encode(&self) -> Vec<u8> {
        self.raw.clone()
    }

    /// The record's bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The text form, `enr:` and unpadded URL-safe base64.
    pub fn to_text(&self) -> String {
        format!("enr:{}", text::base64url_encode(&self.raw))
    }

    /// The sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The compressed secp256k1 public key.
    pub fn public_key(&self) -> [u8; 33] {
        self.public_key
    }

    /// The node id: keccak256 of the 64-byte uncompressed public key (without its 0x04 tag).
    pub fn node_id(&self) -> [u8; 32] {
        self.node_id
    }

    /// The keys, in record order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.pairs.iter().map(|p| p.key.as_slice())
    }

    /// The value of `key` if it is a byte string (its bytes, RLP header removed).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let (item, _) = rlp::read_item(self.get_rlp(key)?).ok()?;
        (!item.is_list).then_some(item.payload)
    }

    /// The value of `key` as its whole RLP item (strings and lists alike).
    pub fn get_rlp(&self, key: &[u8]) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_slice())
    }

    fn port(&self, key: &[u8]) -> Option<u16> {
        let v = self.get(key)?;
        if v.len() > 2 {
            return None;
        }
        u16::try_from(rlp::parse_uint(v)?).ok()
    }

    /// `ip`: the IPv4 address, if present and 4 bytes long.
    pub fn ip4(&self) -> Option<Ipv4Addr> {
        let a: [u8; 4] = self.get(b"ip")?.try_into().ok()?;
        Some(Ipv4Addr::from(a))
    }
    /// `ip6`: the IPv6 address, if present and 16 bytes long.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        let a: [u8; 16] = self.get(b"ip6")?.try_into().ok()?;
        Some(Ipv6Addr::from(a))
    }
    /// `tcp`, if present and a canonical integer below 65536.
    pub fn tcp(&self) -> Option<u16> {
        self.port(b"tcp")
    }
    /// `udp`, if present and a canonical integer below 65536.
    pub fn udp(&self) -> Option<u16> {
        self.port(b"udp")
    }
    /// `tcp6`, if present and a canonical integer below 65536.
    pub fn tcp6(&self) -> Option<u16> {
        self.port(b"tcp6")
    }
    /// `udp6`, if present and a canonical integer below 65536.
    pub fn udp6(&self) -> Option<u16> {
        self.port(b"udp6")
    }

    /// `waku2`, if present and one byte long (an empty value, RLP's integer zero, reads as no
    /// capability).
    pub fn waku2(&self) -> Option<Waku2> {
        match self.get(b"waku2")? {
            [] => Some(Waku2(0)),
            [b] => Some(Waku2(*b)),
            _ => None,
        }
    }

    /// `multiaddrs`: the binary multiaddrs, in record order; empty if the key is absent.
    /// A framing error (an entry running past the end, or of length zero) is
    /// [`EnrError::BadField`]; entries are not parsed until [`Multiaddr::to_text`].
    pub fn multiaddrs(&self) -> Result<Vec<Multiaddr>, EnrError> {
        const F: &str = "multiaddrs";
        let Some(mut rest) = self.get(b"multiaddrs") else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        while let Some((len, after)) = rest.split_first_chunk::<2>() {
            let len = usize::from(u16::from_be_bytes(*len));
            if len == 0 || after.len() < len {
                return Err(EnrError::BadField(F));
            }
            let (entry, after) = after.split_at(len);
            out.push(Multiaddr::from_bytes(entry).map_err(|_| EnrError::BadField(F))?);
            rest = after;
        }
        if !rest.is_empty() {
            return Err(EnrError::BadField(F));
        }
        Ok(out)
    }

    /// The relay shards from `rs`, else from `rsv`; `None` if neither is present.
    pub fn shards(&self) -> Result<Option<RelayShards>, EnrError> {
        if let Some(rs) = self.get(b"rs") {
            let (head, list) = rs
                .split_first_chunk::<3>()
                .ok_or(EnrError::BadField("rs"))?;
            let cluster = u16::from_be_bytes([head[0], head[1]]);
            let count = usize::from(head[2]);
            if list.len() != 2 * count {
                return Err(EnrError::BadField("rs"));
            }
            let shards = list
                .chunks_exact(2)
                .map(|c| {
                    u16::from_be_bytes([
                        c.first().copied().unwrap_or(0),
                        c.last().copied().unwrap_or(0),
                    ])
                })
                .collect();
            return Ok(Some(RelayShards { cluster, shards }));
        }
        if let Some(rsv) = self.get(b"rsv") {
            let (head, vec) = rsv
                .split_first_chunk::<2>()
                .ok_or(EnrError::BadField("rsv"))?;
            if vec.len() != 128 {
                return Err(EnrError::BadField("rsv"));
            }
            let mut shards = Vec::new();
            for (i, byte) in (0u16..).zip(vec) {
                for bit in 0..8u16 {
                    if byte & (1 << bit) != 0 {
                        shards.push(i * 8 + bit);
                    }
                }
            }
            return Ok(Some(RelayShards {
                cluster: u16::from_be_bytes(*head),
                shards,
            }));
        }
        Ok(None)
    }

    /// The libp2p peer id of the record's key, base58btc (`16Uiu2…`).
    pub fn libp2p_peer_id(&self) -> String {
        text::base58btc_encode(&self.libp2p_peer_id_bytes())
    }

    /// The libp2p peer id as bytes: the identity multihash (`0x00`, length) of the protobuf
    /// `PublicKey { Type: Secp256k1 (2), Data: 33-byte compressed key }`.
    pub fn libp2p_peer_id_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(39);
        out.extend_from_slice(&[0x00, 37, 0x08, 0x02, 0x12, 33]);
        out.extend_from_slice(&self.public_key);
        out
    }

    /// Text multiaddrs a libp2p node can dial, each ending in `/p2p/<peer id>`, in this order:
    /// `ip`+`tcp`, `ip6`+`tcp6` (or `tcp` when `tcp6` is absent, as EIP-778 says), then each
    /// `multiaddrs` entry. Entries that do not parse, or that name another peer, are skipped;
    /// an entry that already ends in this peer's `/p2p/` is kept as is. Duplicates are dropped.
    pub fn dial_addrs(&self) -> Vec<String> {
        let peer = self.libp2p_peer_id();
        let suffix = format!("/p2p/{peer}");
        let mut out: Vec<String> = Vec::new();
        let mut push = |s: String| {
            if !out.contains(&s) {
                out.push(s);
            }
        };
        if let (Some(ip), Some(tcp)) = (self.ip4(), self.tcp()) {
            push(format!("/ip4/{ip}/tcp/{tcp}{suffix}"));
        }
        if let (Some(ip), Some(tcp)) = (self.ip6(), self.tcp6().or_else(|| self.tcp())) {
            push(format!("/ip6/{ip}/tcp/{tcp}{suffix}"));
        }
        for m in self.multiaddrs().unwrap_or_default() {
            let Ok(t) = m.to_text() else { continue };
            if t.ends_with(&suffix) {
                push(t);
            } else if t.contains("/p2p/") && !t.contains("/p2p-circuit") {
                // Names some other peer.
                continue;
            } else {
                push(format!("{t}{suffix}"));
            }
        }
        out
    }
}

impl std::fmt::Display for Enr {
    /// The text form, as [`Enr::to_text`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "enr:{}", text::base64url_encode(&self.raw))
    }
}

impl std::str::FromStr for Enr {
    type Err = EnrError;
    /// Parses the text form, as [`Enr::from_text`].
    fn from_str(s: &str) -> Result<Self, EnrError> {
        Enr::from_text(s)
    }
}

impl PeerRecord for Enr {
    fn to_bytes(&self) -> Vec<u8> {
        self.encode()
    }
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Enr::decode(bytes).ok()
    }
}

/// Builds and signs a record. Keys are kept sorted; `id` and `secp256k1` are set by
/// [`EnrBuilder::sign`].
#[derive(Debug, Clone, Default)]
pub struct EnrBuilder {
    seq: u64,
    /// Key bytes to the value's RLP item.
    pairs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl EnrBuilder {
    /// An empty builder with `seq` 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the sequence number.
    pub fn seq(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    /// Sets `key` to the byte string `value`.
    pub fn raw(mut self, key: &[u8], value: &[u8]) -> Self {
        let mut v = Vec::with_capacity(value.len() + 3);
        rlp::write_bytes(&mut v, value);
        self.pairs.insert(key.to_vec(), v);
        self
    }

    fn uint(self, key: &[u8], v: u64) -> Self {
        let bytes = rlp::uint_bytes(v);
        self.raw(key, &bytes)
    }

    /// Sets `ip`.
    pub fn ip4(self, ip: Ipv4Addr) -> Self {
        self.raw(b"ip", &ip.octets())
    }
    /// Sets `ip6`.
    pub fn ip6(self, ip: Ipv6Addr) -> Self {
        self.raw(b"ip6", &ip.octets())
    }
    /// Sets `tcp`.
    pub fn tcp(self, port: u16) -> Self {
        self.uint(b"tcp", port.into())
    }
    /// Sets `udp`.
    pub fn udp(self, port: u16) -> Self {
        self.uint(b"udp", port.into())
    }
    /// Sets `tcp6`.
    pub fn tcp6(self, port: u16) -> Self {
        self.uint(b"tcp6", port.into())
    }
    /// Sets `udp6`.
    pub fn udp6(self, port: u16) -> Self {
        self.uint(b"udp6", port.into())
    }
    /// Sets `waku2`.
    pub fn waku2(self, caps: Waku2) -> Self {
        self.raw(b"waku2", &[caps.0])
    }

    /// Sets `multiaddrs` from binary multiaddrs (each must be under 65536 bytes; the record
    /// limit is checked when signing).
    pub fn multiaddrs(self, addrs: &[Multiaddr]) -> Self {
        let mut v = Vec::new();
        for a in addrs {
            let len = u16::try_from(a.as_bytes().len()).unwrap_or(u16::MAX);
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(a.as_bytes());
        }
        self.raw(b"multiaddrs", &v)
    }

    /// Sets the relay shards: `rs` for fewer than [`RS_MAX_SHARDS`] shards, else `rsv`.
    /// Duplicate shards are written once; shards above [`MAX_SHARD_INDEX`] or an empty list
    /// are [`EnrError::BadShards`].
    pub fn relay_shards(self, shards: &RelayShards) -> Result<Self, EnrError> {
        let mut list: Vec<u16> = Vec::with_capacity(shards.shards.len());
        for &s in &shards.shards {
            if s > MAX_SHARD_INDEX {
                return Err(EnrError::BadShards);
            }
            if !list.contains(&s) {
                list.push(s);
            }
        }
        if list.is_empty() {
            return Err(EnrError::BadShards);
        }
        let mut v = shards.cluster.to_be_bytes().to_vec();
        if list.len() < RS_MAX_SHARDS {
            // Fewer than 64 shards: the count fits in a byte.
            v.push(list.len() as u8);
            for s in list {
                v.extend_from_slice(&s.to_be_bytes());
            }
            Ok(self.raw(b"rs", &v))
        } else {
            let mut bits = [0u8; 128];
            for s in list {
                if let Some(b) = bits.get_mut(usize::from(s / 8)) {
                    *b |= 1 << (s % 8);
                }
            }
            v.extend_from_slice(&bits);
            Ok(self.raw(b"rsv", &v))
        }
    }

    /// Signs with the secp256k1 `secret` (low-S, RFC 6979 nonces) and returns the record,
    /// decoded back to check its framing (the fresh signature is not verified again).
    /// Refuses a record over [`MAX_ENR_LEN`] bytes. The secret is only read into k256's
    /// `SigningKey`, which zeroizes it when dropped at the end of this call.
    pub fn sign(&self, secret: &[u8; 32]) -> Result<Enr, EnrError> {
        let key = SigningKey::from_slice(secret).map_err(|_| EnrError::BadSecretKey)?;
        let mut public = [0u8; 33];
        let point = key.verifying_key().to_sec1_point(true);
        if point.as_bytes().len() != 33 {
            return Err(EnrError::BadSecretKey);
        }
        public.copy_from_slice(point.as_bytes());

        let mut pairs = self.pairs.clone();
        let mut id = Vec::new();
        rlp::write_bytes(&mut id, b"v4");
        pairs.insert(b"id".to_vec(), id);
        let mut pk = Vec::new();
        rlp::write_bytes(&mut pk, &public);
        pairs.insert(b"secp256k1".to_vec(), pk);

        let mut content = Vec::new();
        rlp::write_uint(&mut content, self.seq);
        for (k, v) in &pairs {
            rlp::write_bytes(&mut content, k);
            content.extend_from_slice(v);
        }
        // signature item (66 bytes) + content, plus the list header.
        let payload_len = 66 + content.len();
        let total = payload_len + if payload_len < 56 { 1 } else { 3 };
        if total > MAX_ENR_LEN {
            return Err(EnrError::TooLarge(total));
        }
        let hash = content_hash(&content);
        let signature: Signature = key
            .sign_prehash(&hash)
            .map_err(|_| EnrError::BadSecretKey)?;
        let sig = signature.to_bytes();

        let mut out = Vec::with_capacity(total);
        rlp::write_header(&mut out, true, payload_len);
        rlp::write_bytes(&mut out, &sig);
        out.extend_from_slice(&content);
        Enr::decode_inner(&out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_round_trip_and_limit() {
        let enr = EnrBuilder::new()
            .seq(7)
            .udp(0)
            .relay_shards(&RelayShards {
                cluster: 16,
                shards: (0..100).collect(),
            })
            .unwrap()
            .sign(&[9; 32])
            .unwrap();
        assert_eq!(enr.seq(), 7);
        assert_eq!(enr.udp(), Some(0));
        let rs = enr.shards().unwrap().unwrap();
        assert_eq!(rs.cluster, 16);
        assert_eq!(rs.shards, (0..100).collect::<Vec<_>>());
        assert!(enr.get(b"rsv").is_some());
        let big = EnrBuilder::new().raw(b"z", &[0; 200]).sign(&[9; 32]);
        assert!(matches!(big, Err(EnrError::TooLarge(_))));
        assert_eq!(
            EnrBuilder::new().sign(&[0; 32]),
            Err(EnrError::BadSecretKey)
        );
    }
}
