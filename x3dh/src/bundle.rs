//! Signed prekeys and bundles: what a user publishes on their contact-code topic so that others
//! can start a session without them being online (WIRE.md B.17, B.18, B.20, with the 25519
//! profile of Part A).
//!
//! A [`Bundle`] holds the identity key and one [`SignedPreKey`] per installation (device) of that
//! identity. Each prekey carries the signature of Part A (Ed25519 by the identity over the raw
//! 32-byte X25519 key); the bundle as a whole is signed over [the canonical
//! encoding](Bundle::signing_input) defined here. A decoded bundle must pass
//! [`Bundle::verify`] before it can be used: only a [`VerifiedBundle`] can start an agreement.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;

use proto::Message;

use crate::keys::{
    IdentityKeyPair, KEY_LEN, PublicIdentity, PublicKeyError, SIGNATURE_LEN, SignedPreKeyPair,
    X25519PublicKey,
};

/// The most installations a bundle may list. Status sends to at most three devices of a contact
/// (WIRE.md B.20) but lists every paired device; 64 is far above any real account and keeps a
/// hostile bundle's decoded size and verification cost (one signature check per installation)
/// bounded. [`BundleConfig::max_installations`] can lower it further.
pub const MAX_INSTALLATIONS: usize = 64;

/// The longest installation id, in bytes. Status uses UUID v4 strings (36 bytes); the bound keeps
/// a hostile bundle's map keys small.
pub const MAX_INSTALLATION_ID_LEN: usize = 64;

/// The largest encoded bundle accepted, in bytes: [`MAX_INSTALLATIONS`] entries of at most 256
/// bytes each (an id of [`MAX_INSTALLATION_ID_LEN`] bytes, a 32-byte key, a 64-byte signature,
/// three integers and the protobuf framing, about 190 bytes) plus the identity, signature and
/// timestamp. Anything longer is refused before it is parsed.
pub const MAX_BUNDLE_LEN: usize = MAX_INSTALLATIONS * 256 + 256;

/// The `protocol_version` this crate writes into the prekeys it signs.
pub const PROTOCOL_VERSION: u32 = 1;

/// Domain separator that starts the [canonical bundle encoding](Bundle::signing_input). It keeps a
/// bundle signature from ever being valid as any other signature made with the identity key, such
/// as the prekey signature, which covers exactly 32 bytes.
pub const BUNDLE_SIGNATURE_CONTEXT: &[u8] = b"status-rs bundle v1";

/// The largest timestamp, in Unix milliseconds, a bundle or prekey can carry: the wire field is a
/// signed 64-bit integer. Larger times given to this crate are clamped to it.
pub const MAX_TIMESTAMP_MS: u64 = i64::MAX as u64;

/// The installation id reserved by Status for "any device" (WIRE.md B.17); it cannot name one.
const RESERVED_INSTALLATION_ID: &str = "none";

/// Why a string is not an installation id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InstallationIdError {
    /// The id is empty.
    #[error("installation id is empty")]
    Empty,
    /// The id is longer than [`MAX_INSTALLATION_ID_LEN`] bytes.
    #[error("installation id of {len} bytes exceeds {max} bytes")]
    TooLong {
        /// The id's length in bytes.
        len: usize,
        /// [`MAX_INSTALLATION_ID_LEN`].
        max: usize,
    },
    /// The id holds a character outside printable ASCII without space (`!` to `~`).
    #[error("installation id holds a character outside printable ASCII")]
    InvalidCharacter,
    /// The id is `"none"`, which Status reserves for messages to any device.
    #[error("installation id \"none\" is reserved")]
    Reserved,
}

/// Identifies one installation (device) of an identity; Status uses a random UUID v4 string.
///
/// An id is 1 to [`MAX_INSTALLATION_ID_LEN`] bytes of printable ASCII without space, and not the
/// reserved `"none"`. Ordering is bytewise, which is the order of the canonical bundle encoding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstallationId(String);

impl InstallationId {
    /// Checks and wraps an installation id.
    ///
    /// # Errors
    /// See [`InstallationIdError`].
    pub fn new(id: impl Into<String>) -> Result<Self, InstallationIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(InstallationIdError::Empty);
        }
        if id.len() > MAX_INSTALLATION_ID_LEN {
            return Err(InstallationIdError::TooLong {
                len: id.len(),
                max: MAX_INSTALLATION_ID_LEN,
            });
        }
        if !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InstallationIdError::InvalidCharacter);
        }
        if id == RESERVED_INSTALLATION_ID {
            return Err(InstallationIdError::Reserved);
        }
        Ok(Self(id))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstallationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id ("version") of a signed prekey: 1 for an installation's first prekey, one more with
/// every rotation. It travels in the initial-message header so the responder can find the prekey.
///
/// Never 0: on the protobuf wire 0 is indistinguishable from an absent field, so a message that
/// lost its id (truncated, or a field tag damaged) cannot pass for one naming a prekey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PreKeyId(NonZeroU32);

impl PreKeyId {
    /// The id of an installation's first prekey.
    pub const FIRST: PreKeyId = PreKeyId(NonZeroU32::MIN);

    /// The id `n`, or `None` for 0.
    pub const fn new(n: u32) -> Option<Self> {
        match NonZeroU32::new(n) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// The id as a number.
    pub const fn get(self) -> u32 {
        self.0.get()
    }

    /// The id after this one; after `u32::MAX` the count starts again at 1.
    pub fn next(self) -> Self {
        Self(self.0.checked_add(1).unwrap_or(NonZeroU32::MIN))
    }
}

impl fmt::Display for PreKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why bytes or a protobuf value are not a well-formed bundle or initial-message header. These are
/// faults of the bytes; nothing has been verified yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than the limit for its message ([`MAX_BUNDLE_LEN`] or
    /// [`MAX_HEADER_LEN`](crate::MAX_HEADER_LEN)); nothing was parsed.
    #[error("{len} bytes exceed the limit of {max} bytes")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit that applied.
        max: usize,
    },
    /// The bytes are not a valid protobuf encoding.
    #[error("malformed protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A key field is missing or not an acceptable public key.
    #[error("field {field}: {error}")]
    Key {
        /// The protobuf field, e.g. `"identity"` or `"signed_pre_keys.signed_pre_key"`.
        field: &'static str,
        /// What is wrong with it.
        error: PublicKeyError,
    },
    /// A required field is absent (or zero, which protobuf cannot tell from absent).
    #[error("field {field} is missing")]
    MissingField {
        /// The protobuf field.
        field: &'static str,
    },
    /// A signature field does not hold 64 bytes.
    #[error("field {field}: a signature has 64 bytes, found {found}")]
    SignatureLength {
        /// The protobuf field.
        field: &'static str,
        /// How many bytes it holds.
        found: usize,
    },
    /// A timestamp field is negative.
    #[error("field {field}: negative timestamp {value}")]
    NegativeTimestamp {
        /// The protobuf field.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// A map key is not an acceptable installation id.
    #[error("installation id: {0}")]
    InstallationId(#[from] InstallationIdError),
    /// The bundle lists no installation, so no agreement could use it.
    #[error("bundle lists no installation")]
    NoInstallations,
    /// The bundle lists more than [`MAX_INSTALLATIONS`] installations.
    #[error("bundle lists {count} installations, more than {max}")]
    TooManyInstallations {
        /// How many it lists.
        count: usize,
        /// [`MAX_INSTALLATIONS`].
        max: usize,
    },
}

/// Why a well-formed bundle was refused: the peer (or someone in between) misbehaved, or the
/// bundle is stale. Verification changes nothing; a refused bundle can be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The bundle belongs to another identity than the one expected (for example it arrived on
    /// Bob's contact-code topic but carries Mallory's key).
    #[error("bundle of {found} where {expected} was expected")]
    ForeignIdentity {
        /// The identity the caller expected.
        expected: Box<PublicIdentity>,
        /// The identity in the bundle.
        found: Box<PublicIdentity>,
    },
    /// More installations than [`BundleConfig::max_installations`].
    #[error("bundle lists {count} installations, more than the {max} allowed")]
    TooManyInstallations {
        /// How many it lists.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// The bundle's timestamp is later than `now` plus the allowed clock skew.
    #[error("bundle timestamp {timestamp_ms} ms is in the future (now {now_ms} ms)")]
    FromTheFuture {
        /// The bundle's timestamp, Unix ms.
        timestamp_ms: u64,
        /// The caller's `now`, Unix ms.
        now_ms: u64,
    },
    /// The bundle is older than [`BundleConfig::max_age_ms`].
    #[error("bundle timestamp {timestamp_ms} ms has expired (now {now_ms} ms)")]
    Expired {
        /// The bundle's timestamp, Unix ms.
        timestamp_ms: u64,
        /// The caller's `now`, Unix ms.
        now_ms: u64,
    },
    /// A prekey's creation time is later than `now` plus the allowed clock skew.
    #[error("prekey of installation {installation_id} was created in the future")]
    PreKeyFromTheFuture {
        /// The installation whose prekey is wrong.
        installation_id: InstallationId,
        /// Its creation time, Unix ms.
        created_at_ms: u64,
    },
    /// The bundle signature does not verify (strict Ed25519) under the bundle's identity key.
    #[error("bad bundle signature")]
    BadSignature,
    /// A prekey signature does not verify (strict Ed25519) under the bundle's identity key.
    #[error("bad prekey signature for installation {installation_id}")]
    BadPreKeySignature {
        /// The installation whose prekey is wrong.
        installation_id: InstallationId,
    },
}

/// Why a bundle could not be built and signed. These are the caller's mistakes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// No installation was given.
    #[error("a bundle needs at least one installation")]
    NoInstallations,
    /// More than [`MAX_INSTALLATIONS`] installations were given.
    #[error("{count} installations, more than {max}")]
    TooManyInstallations {
        /// How many were given.
        count: usize,
        /// [`MAX_INSTALLATIONS`].
        max: usize,
    },
    /// A prekey's signature does not verify under the signing identity (it belongs to another
    /// identity, or was damaged).
    #[error("prekey of installation {installation_id} is not signed by this identity")]
    ForeignPreKey {
        /// The installation whose prekey is wrong.
        installation_id: InstallationId,
    },
    /// An installation was given twice (another device's entry uses this device's id).
    #[error("installation {installation_id} given twice")]
    DuplicateInstallation {
        /// The repeated id.
        installation_id: InstallationId,
    },
}

/// The policy for accepting bundles. `Default` gives the values documented on each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleConfig {
    /// How far in the future a bundle timestamp (or prekey creation time) may lie, to allow for
    /// clock skew between devices. Default: 5 minutes.
    pub max_clock_skew_ms: u64,
    /// How old a bundle may be. Status republishes its bundle every 6 hours (WIRE.md B.18), so a
    /// week-old bundle means the owner has been away long enough that their prekey may be gone.
    /// Keep it below the owner's grace period for retired prekeys
    /// ([`PreKeyStoreConfig::grace_period_ms`](crate::PreKeyStoreConfig::grace_period_ms)) so an
    /// initial message built from an accepted bundle can still be read. Default: 7 days.
    pub max_age_ms: u64,
    /// The most installations a bundle may list (at most [`MAX_INSTALLATIONS`]). Default: 16.
    pub max_installations: usize,
}

impl Default for BundleConfig {
    fn default() -> Self {
        Self {
            max_clock_skew_ms: 5 * 60 * 1000,
            max_age_ms: 7 * 24 * 60 * 60 * 1000,
            max_installations: 16,
        }
    }
}

/// A signed prekey as published: the X25519 public key, its id, its creation time, and the
/// identity's Ed25519 signature over the raw 32-byte public key (WIRE.md Part A).
///
/// Wire form: `proto::secure::SignedPreKey { signed_pre_key = 1, version = 2, protocol_version = 3,
/// signature = 4, created_at = 5 }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPreKey {
    public: X25519PublicKey,
    id: PreKeyId,
    protocol_version: u32,
    created_at_ms: u64,
    signature: [u8; SIGNATURE_LEN],
}

impl SignedPreKey {
    /// Signs the public half of `pair` with `identity`. `created_at_ms` is clamped to
    /// [`MAX_TIMESTAMP_MS`].
    pub fn sign(
        identity: &IdentityKeyPair,
        pair: &SignedPreKeyPair,
        id: PreKeyId,
        created_at_ms: u64,
    ) -> Self {
        let public = pair.public_key();
        Self {
            public,
            id,
            protocol_version: PROTOCOL_VERSION,
            created_at_ms: created_at_ms.min(MAX_TIMESTAMP_MS),
            signature: identity.sign(public.as_bytes()),
        }
    }

    pub(crate) fn from_parts(
        public: X25519PublicKey,
        id: PreKeyId,
        protocol_version: u32,
        created_at_ms: u64,
        signature: [u8; SIGNATURE_LEN],
    ) -> Self {
        Self {
            public,
            id,
            protocol_version,
            created_at_ms,
            signature,
        }
    }

    /// The X25519 public key (SPK).
    pub fn public_key(&self) -> X25519PublicKey {
        self.public
    }

    /// The prekey's id ("version").
    pub fn id(&self) -> PreKeyId {
        self.id
    }

    /// The protocol version the signer wrote.
    pub fn protocol_version(&self) -> u32 {
        self.protocol_version
    }

    /// Creation time, Unix milliseconds.
    pub fn created_at_ms(&self) -> u64 {
        self.created_at_ms
    }

    /// The Ed25519 signature over the raw 32-byte public key.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// Whether the signature verifies strictly under `identity`.
    pub fn verify(&self, identity: &PublicIdentity) -> bool {
        identity.verify(self.public.as_bytes(), &self.signature)
    }

    /// The wire form.
    pub fn to_proto(&self) -> proto::secure::SignedPreKey {
        proto::secure::SignedPreKey {
            signed_pre_key: self.public.as_bytes().to_vec(),
            version: self.id.get(),
            protocol_version: self.protocol_version,
            signature: self.signature.to_vec(),
            created_at: i64::try_from(self.created_at_ms).unwrap_or(i64::MAX),
        }
    }

    /// Parses the wire form (no signature check; see [`Self::verify`]).
    ///
    /// # Errors
    /// [`DecodeError::Key`], [`DecodeError::MissingField`] (id 0), [`DecodeError::SignatureLength`],
    /// [`DecodeError::NegativeTimestamp`].
    pub fn from_proto(msg: &proto::secure::SignedPreKey) -> Result<Self, DecodeError> {
        let public =
            X25519PublicKey::from_bytes(&msg.signed_pre_key).map_err(|error| DecodeError::Key {
                field: "signed_pre_keys.signed_pre_key",
                error,
            })?;
        let signature =
            <[u8; SIGNATURE_LEN]>::try_from(msg.signature.as_slice()).map_err(|_| {
                DecodeError::SignatureLength {
                    field: "signed_pre_keys.signature",
                    found: msg.signature.len(),
                }
            })?;
        let id = PreKeyId::new(msg.version).ok_or(DecodeError::MissingField {
            field: "signed_pre_keys.version",
        })?;
        let created_at_ms =
            u64::try_from(msg.created_at).map_err(|_| DecodeError::NegativeTimestamp {
                field: "signed_pre_keys.created_at",
                value: msg.created_at,
            })?;
        Ok(Self {
            public,
            id,
            protocol_version: msg.protocol_version,
            created_at_ms,
            signature,
        })
    }
}

/// A prekey bundle: an identity and one signed prekey per installation, signed as a whole.
///
/// A `Bundle` is well formed (keys parsed and checked, sizes bounded) but not trusted; call
/// [`Self::verify`] to get a [`VerifiedBundle`].
///
/// Wire form: `proto::secure::Bundle { identity = 1, signed_pre_keys = 2 (installation id ->
/// SignedPreKey), signature = 4, timestamp = 5 }`, timestamps in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    identity: PublicIdentity,
    pre_keys: BTreeMap<InstallationId, SignedPreKey>,
    timestamp_ms: u64,
    signature: [u8; SIGNATURE_LEN],
}

impl Bundle {
    /// Builds and signs a bundle of `identity` listing `pre_keys` (this device's and its paired
    /// devices' prekeys). `timestamp_ms` (Unix ms, clamped to [`MAX_TIMESTAMP_MS`]) is normally
    /// the current time.
    ///
    /// # Errors
    /// [`BundleError::NoInstallations`], [`BundleError::TooManyInstallations`], or
    /// [`BundleError::ForeignPreKey`] if a prekey is not signed by `identity`.
    pub fn sign(
        identity: &IdentityKeyPair,
        pre_keys: BTreeMap<InstallationId, SignedPreKey>,
        timestamp_ms: u64,
    ) -> Result<Self, BundleError> {
        if pre_keys.is_empty() {
            return Err(BundleError::NoInstallations);
        }
        if pre_keys.len() > MAX_INSTALLATIONS {
            return Err(BundleError::TooManyInstallations {
                count: pre_keys.len(),
                max: MAX_INSTALLATIONS,
            });
        }
        if let Some((installation_id, _)) = pre_keys
            .iter()
            .find(|(_, pre_key)| !pre_key.verify(identity.public()))
        {
            return Err(BundleError::ForeignPreKey {
                installation_id: installation_id.clone(),
            });
        }
        Ok(Self::signed_unchecked(identity, pre_keys, timestamp_ms))
    }

    /// Signs without checking the prekeys (the caller guarantees 1 to [`MAX_INSTALLATIONS`]
    /// prekeys signed by `identity`).
    pub(crate) fn signed_unchecked(
        identity: &IdentityKeyPair,
        pre_keys: BTreeMap<InstallationId, SignedPreKey>,
        timestamp_ms: u64,
    ) -> Self {
        let timestamp_ms = timestamp_ms.min(MAX_TIMESTAMP_MS);
        let input = signing_input(identity.public(), &pre_keys, timestamp_ms);
        Self {
            identity: *identity.public(),
            pre_keys,
            timestamp_ms,
            signature: identity.sign(&input),
        }
    }

    /// The identity the bundle claims to belong to.
    pub fn identity(&self) -> &PublicIdentity {
        &self.identity
    }

    /// The signed prekeys by installation id, in ascending order.
    pub fn pre_keys(&self) -> &BTreeMap<InstallationId, SignedPreKey> {
        &self.pre_keys
    }

    /// The signed prekey of one installation.
    pub fn pre_key(&self, installation_id: &InstallationId) -> Option<&SignedPreKey> {
        self.pre_keys.get(installation_id)
    }

    /// When the bundle was signed, Unix milliseconds.
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// The bundle signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The canonical encoding the bundle signature covers. All integers are big-endian:
    ///
    /// ```text
    /// "status-rs bundle v1"               19 bytes, BUNDLE_SIGNATURE_CONTEXT
    /// identity                            32 bytes, Ed25519 public key
    /// timestamp                           u64, Unix ms
    /// count                               u32, number of installations
    /// count times, installation ids in ascending bytewise order:
    ///     id length                       u16
    ///     id                              the id's bytes (ASCII)
    ///     signed prekey                   32 bytes, X25519 public key
    ///     prekey id ("version")           u32
    ///     protocol version                u32
    ///     created at                      u64, Unix ms
    ///     prekey signature                64 bytes
    /// ```
    ///
    /// Every field of the wire message except the bundle signature itself is covered, so no part
    /// of a bundle can be changed without invalidating it. Compared with status-go's material
    /// (WIRE.md B.18: ids, keys and decimal versions concatenated, then the decimal timestamp),
    /// lengths are explicit so that no two bundles share an encoding.
    pub fn signing_input(&self) -> Vec<u8> {
        signing_input(&self.identity, &self.pre_keys, self.timestamp_ms)
    }

    /// Checks the bundle and returns it as trusted.
    ///
    /// In order: the identity is `expected` ([`VerifyError::ForeignIdentity`]); at most
    /// `config.max_installations` installations; the timestamp is neither later than
    /// `now_ms + config.max_clock_skew_ms` nor older than `config.max_age_ms`; no prekey was
    /// created later than `now_ms + config.max_clock_skew_ms`; the bundle signature verifies; every
    /// prekey signature verifies. Signatures are checked with strict Ed25519.
    ///
    /// # Errors
    /// See [`VerifyError`].
    pub fn verify(
        &self,
        expected: &PublicIdentity,
        now_ms: u64,
        config: &BundleConfig,
    ) -> Result<VerifiedBundle, VerifyError> {
        if self.identity != *expected {
            return Err(VerifyError::ForeignIdentity {
                expected: Box::new(*expected),
                found: Box::new(self.identity),
            });
        }
        self.verify_any_identity(now_ms, config)
    }

    /// Like [`Self::verify`], but trusts whichever identity the bundle names. Use it only where
    /// the identity is authenticated another way (for instance a bundle attached to a message
    /// whose sender is already known, then compared by the caller).
    ///
    /// # Errors
    /// See [`VerifyError`]; never [`VerifyError::ForeignIdentity`].
    pub fn verify_any_identity(
        &self,
        now_ms: u64,
        config: &BundleConfig,
    ) -> Result<VerifiedBundle, VerifyError> {
        let max = config.max_installations.min(MAX_INSTALLATIONS);
        if self.pre_keys.len() > max {
            return Err(VerifyError::TooManyInstallations {
                count: self.pre_keys.len(),
                max,
            });
        }
        let latest = now_ms.saturating_add(config.max_clock_skew_ms);
        if self.timestamp_ms > latest {
            return Err(VerifyError::FromTheFuture {
                timestamp_ms: self.timestamp_ms,
                now_ms,
            });
        }
        if now_ms.saturating_sub(self.timestamp_ms) > config.max_age_ms {
            return Err(VerifyError::Expired {
                timestamp_ms: self.timestamp_ms,
                now_ms,
            });
        }
        if let Some((installation_id, pre_key)) = self
            .pre_keys
            .iter()
            .find(|(_, pre_key)| pre_key.created_at_ms > latest)
        {
            return Err(VerifyError::PreKeyFromTheFuture {
                installation_id: installation_id.clone(),
                created_at_ms: pre_key.created_at_ms,
            });
        }
        if !self.identity.verify(&self.signing_input(), &self.signature) {
            return Err(VerifyError::BadSignature);
        }
        if let Some((installation_id, _)) = self
            .pre_keys
            .iter()
            .find(|(_, pre_key)| !pre_key.verify(&self.identity))
        {
            return Err(VerifyError::BadPreKeySignature {
                installation_id: installation_id.clone(),
            });
        }
        Ok(VerifiedBundle(self.clone()))
    }

    /// The wire form.
    pub fn to_proto(&self) -> proto::secure::Bundle {
        proto::secure::Bundle {
            identity: self.identity.ed25519_bytes().to_vec(),
            signed_pre_keys: self
                .pre_keys
                .iter()
                .map(|(id, pre_key)| (id.as_str().to_owned(), pre_key.to_proto()))
                .collect(),
            signature: self.signature.to_vec(),
            timestamp: i64::try_from(self.timestamp_ms).unwrap_or(i64::MAX),
        }
    }

    /// Encodes the wire form to bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Parses the wire form: keys are checked (canonical, on the curve, not of small order),
    /// signatures must have 64 bytes, timestamps must not be negative, there must be 1 to
    /// [`MAX_INSTALLATIONS`] installations with valid ids. Nothing is verified.
    ///
    /// # Errors
    /// See [`DecodeError`].
    pub fn from_proto(msg: &proto::secure::Bundle) -> Result<Self, DecodeError> {
        let count = msg.signed_pre_keys.len();
        if count == 0 {
            return Err(DecodeError::NoInstallations);
        }
        if count > MAX_INSTALLATIONS {
            return Err(DecodeError::TooManyInstallations {
                count,
                max: MAX_INSTALLATIONS,
            });
        }
        let identity =
            PublicIdentity::from_bytes(&msg.identity).map_err(|error| DecodeError::Key {
                field: "identity",
                error,
            })?;
        let signature =
            <[u8; SIGNATURE_LEN]>::try_from(msg.signature.as_slice()).map_err(|_| {
                DecodeError::SignatureLength {
                    field: "signature",
                    found: msg.signature.len(),
                }
            })?;
        let timestamp_ms =
            u64::try_from(msg.timestamp).map_err(|_| DecodeError::NegativeTimestamp {
                field: "timestamp",
                value: msg.timestamp,
            })?;
        let mut pre_keys = BTreeMap::new();
        for (id, pre_key) in &msg.signed_pre_keys {
            pre_keys.insert(
                InstallationId::new(id.as_str())?,
                SignedPreKey::from_proto(pre_key)?,
            );
        }
        Ok(Self {
            identity,
            pre_keys,
            timestamp_ms,
            signature,
        })
    }

    /// Decodes bytes: at most [`MAX_BUNDLE_LEN`] of them, then [`Self::from_proto`].
    ///
    /// # Errors
    /// See [`DecodeError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let msg = decode_bounded::<proto::secure::Bundle>(bytes, MAX_BUNDLE_LEN)?;
        Self::from_proto(&msg)
    }
}

/// Decodes a protobuf message of at most `max` bytes, refusing longer input before parsing.
pub(crate) fn decode_bounded<M: Message + Default>(
    bytes: &[u8],
    max: usize,
) -> Result<M, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    Ok(M::decode(bytes)?)
}

fn signing_input(
    identity: &PublicIdentity,
    pre_keys: &BTreeMap<InstallationId, SignedPreKey>,
    timestamp_ms: u64,
) -> Vec<u8> {
    const PER_ENTRY: usize = 2 + KEY_LEN + 4 + 4 + 8 + SIGNATURE_LEN;
    let ids: usize = pre_keys.keys().map(|id| id.0.len()).sum();
    let mut out = Vec::with_capacity(
        BUNDLE_SIGNATURE_CONTEXT.len() + KEY_LEN + 8 + 4 + pre_keys.len() * PER_ENTRY + ids,
    );
    out.extend_from_slice(BUNDLE_SIGNATURE_CONTEXT);
    out.extend_from_slice(identity.ed25519_bytes());
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    // Bounded by MAX_INSTALLATIONS in every constructor, so the casts cannot truncate.
    out.extend_from_slice(
        &u32::try_from(pre_keys.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for (id, pre_key) in pre_keys {
        let id = id.0.as_bytes();
        out.extend_from_slice(&u16::try_from(id.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(pre_key.public.as_bytes());
        out.extend_from_slice(&pre_key.id.get().to_be_bytes());
        out.extend_from_slice(&pre_key.protocol_version.to_be_bytes());
        out.extend_from_slice(&pre_key.created_at_ms.to_be_bytes());
        out.extend_from_slice(&pre_key.signature);
    }
    out
}

/// A bundle that passed [`Bundle::verify`]: the only input from which an agreement can start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle(Bundle);

impl VerifiedBundle {
    /// The verified bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.0
    }

    /// The bundle's identity.
    pub fn identity(&self) -> &PublicIdentity {
        &self.0.identity
    }

    /// The signed prekey of one installation.
    pub fn pre_key(&self, installation_id: &InstallationId) -> Option<&SignedPreKey> {
        self.0.pre_keys.get(installation_id)
    }

    /// Gives the bundle back.
    pub fn into_bundle(self) -> Bundle {
        self.0
    }
}
