//! The responder's state: the identity, the current and recently retired signed prekeys of this
//! installation, and the replay cache of initial messages. Serialised ("pickled") encrypted under
//! a key the caller provides.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::agreement::{InitialHeader, ResponderOutput, respond_with};
use crate::bundle::{
    Bundle, BundleError, InstallationId, MAX_INSTALLATION_ID_LEN, MAX_TIMESTAMP_MS, PreKeyId,
    SignedPreKey,
};
use crate::keys::{IdentityKeyPair, KEY_LEN, SIGNATURE_LEN, SignedPreKeyPair};

/// The most retired prekeys kept for late initial messages. With the default schedule (a new
/// prekey every 24 hours, each kept 14 days after it retires) about 14 are retained; the bound
/// only matters if the caller rotates much faster than the grace period, and then the oldest
/// retired prekey is deleted early (initial messages to it fail with
/// [`RespondError::UnknownPreKey`]).
pub const MAX_RETIRED_PRE_KEYS: usize = 64;

/// The most initial messages remembered for replay detection, over all retained prekeys. Entries
/// go when their prekey is deleted. New sessions are rare (one per new contact or device), so
/// 16 384 is generous; at 68 bytes per entry the cache stays near 1 MiB serialised. When it is
/// full, new initial messages are refused ([`RespondError::ReplayCacheFull`]) rather than
/// forgetting old ones, which would make those replayable.
pub const MAX_REPLAY_ENTRIES: usize = 16_384;

/// The version byte of the pickle format written by [`PreKeyStore::pickle`].
pub const PICKLE_VERSION: u8 = 1;

/// The first bytes of every pickle.
pub const PICKLE_MAGIC: &[u8; 8] = b"SRX3DHPS";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = PICKLE_MAGIC.len() + 1 + NONCE_LEN;
/// id, protocol version, created at, secret, signature.
const PRE_KEY_RECORD_LEN: usize = 4 + 4 + 8 + KEY_LEN + SIGNATURE_LEN;
const RETIRED_RECORD_LEN: usize = PRE_KEY_RECORD_LEN + 8;
const REPLAY_RECORD_LEN: usize = 4 + 2 * KEY_LEN;

/// The largest pickle [`PreKeyStore::unpickle`] accepts: a full store (longest installation id,
/// [`MAX_RETIRED_PRE_KEYS`] retired prekeys, [`MAX_REPLAY_ENTRIES`] replay entries) plus the
/// envelope. About 1.1 MB.
pub const MAX_PICKLE_LEN: usize = HEADER_LEN
    + TAG_LEN
    + KEY_LEN
    + 1
    + MAX_INSTALLATION_ID_LEN
    + PRE_KEY_RECORD_LEN
    + 2
    + MAX_RETIRED_PRE_KEYS * RETIRED_RECORD_LEN
    + 4
    + MAX_REPLAY_ENTRIES * REPLAY_RECORD_LEN;

/// The rotation schedule. `Default` gives the values documented on each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreKeyStoreConfig {
    /// How long a signed prekey is current before [`PreKeyStore::handle_timeout`] replaces it.
    /// Status regenerates its bundle every 24 hours (WIRE.md B.18). Default: 24 hours.
    pub rotation_interval_ms: u64,
    /// How long a retired prekey is kept so that initial messages built from an older bundle
    /// still decrypt. It should exceed the age of bundles peers accept
    /// ([`BundleConfig::max_age_ms`](crate::BundleConfig::max_age_ms), 7 days by default) plus
    /// the time a message may spend in the network and in store nodes. Default: 14 days.
    pub grace_period_ms: u64,
}

impl Default for PreKeyStoreConfig {
    fn default() -> Self {
        Self {
            rotation_interval_ms: 24 * 60 * 60 * 1000,
            grace_period_ms: 14 * 24 * 60 * 60 * 1000,
        }
    }
}

/// Why [`PreKeyStore::respond`] refused an initial message. The store is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RespondError {
    /// The header names a prekey (id and public key) that this installation does not hold: never
    /// issued, issued by another installation, or retired longer ago than the grace period.
    #[error("unknown signed prekey {pre_key_id}")]
    UnknownPreKey {
        /// The id the header names.
        pre_key_id: PreKeyId,
    },
    /// This (initiator identity, ephemeral key, prekey) was answered before. A replay, or the
    /// same header repeated on a later message of the session it already created: route such
    /// messages to that session.
    #[error("initial message replayed")]
    Replayed,
    /// The replay cache holds [`MAX_REPLAY_ENTRIES`] entries; no new session can be accepted until
    /// prekeys are deleted by [`PreKeyStore::handle_timeout`] or [`PreKeyStore::rotate`].
    #[error("replay cache full ({max} entries)")]
    ReplayCacheFull {
        /// [`MAX_REPLAY_ENTRIES`].
        max: usize,
    },
    /// A Diffie-Hellman output did not depend on our secret. Header parsing refuses small-order
    /// keys, so this is a defence in depth that should never trigger.
    #[error("a Diffie-Hellman output was not contributory")]
    NonContributory,
}

/// Why bytes could not be unpickled. Nothing is returned, so nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PickleError {
    /// Too short to hold the envelope.
    #[error("pickle of {len} bytes is too short")]
    TooShort {
        /// Length of the input.
        len: usize,
    },
    /// Longer than [`MAX_PICKLE_LEN`]; refused before decryption.
    #[error("pickle of {len} bytes exceeds {max} bytes")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// [`MAX_PICKLE_LEN`].
        max: usize,
    },
    /// Does not start with [`PICKLE_MAGIC`].
    #[error("not a prekey store pickle")]
    BadMagic,
    /// A version this crate cannot read.
    #[error("unsupported pickle version {version}")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// Authentication failed: wrong key, or the bytes were changed.
    #[error("pickle does not decrypt under this key")]
    Decryption,
    /// Decrypted, but the contents are inconsistent (written by a buggy or hostile program).
    #[error("corrupt pickle: {reason}")]
    Corrupt {
        /// What was wrong.
        reason: &'static str,
    },
}

/// The caller's 32-byte key for [`PreKeyStore::pickle`]. Zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PickleKey([u8; KEY_LEN]);

impl PickleKey {
    /// Wraps 32 key bytes (for instance derived from the account's database key).
    pub fn new(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for PickleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PickleKey(<redacted>)")
    }
}

#[derive(Clone)]
struct StoredPreKey {
    pair: SignedPreKeyPair,
    signed: SignedPreKey,
}

#[derive(Clone)]
struct RetiredPreKey {
    key: StoredPreKey,
    retired_at_ms: u64,
}

/// The replay-cache key: initiator identity (Ed25519) ‖ ephemeral key.
type ReplayKey = [u8; 2 * KEY_LEN];

/// One installation's X3DH state as responder: the identity, the current signed prekey, the
/// retired prekeys still within their grace period, and the replay cache.
///
/// Time is Unix milliseconds passed by the caller; randomness comes from the caller's RNG. Drive
/// the schedule like any other status-rs machine: call [`Self::handle_timeout`] when
/// [`Self::poll_timeout`] is reached, and publish a new bundle ([`Self::bundle`]) whenever it
/// reports a rotation. [`Self::respond`] answers initial messages; a refused one leaves the store
/// unchanged. Deliberately not `Clone`: two copies would keep two replay caches.
pub struct PreKeyStore {
    identity: IdentityKeyPair,
    installation_id: InstallationId,
    config: PreKeyStoreConfig,
    current: StoredPreKey,
    /// Oldest first.
    retired: VecDeque<RetiredPreKey>,
    replay: BTreeMap<PreKeyId, BTreeSet<ReplayKey>>,
    replay_len: usize,
}

impl PreKeyStore {
    /// Creates the store with its first signed prekey (id 1, created at `now_ms`, secret drawn
    /// from `rng`: 32 bytes).
    pub fn new<R: CryptoRng + ?Sized>(
        identity: IdentityKeyPair,
        installation_id: InstallationId,
        config: PreKeyStoreConfig,
        now_ms: u64,
        rng: &mut R,
    ) -> Self {
        let current = new_pre_key(&identity, PreKeyId::FIRST, now_ms, rng);
        Self {
            identity,
            installation_id,
            config,
            current,
            retired: VecDeque::new(),
            replay: BTreeMap::new(),
            replay_len: 0,
        }
    }

    /// The identity this store signs with.
    pub fn identity(&self) -> &IdentityKeyPair {
        &self.identity
    }

    /// This installation's id.
    pub fn installation_id(&self) -> &InstallationId {
        &self.installation_id
    }

    /// The rotation schedule.
    pub fn config(&self) -> &PreKeyStoreConfig {
        &self.config
    }

    /// Replaces the rotation schedule; it applies from the next [`Self::handle_timeout`].
    pub fn set_config(&mut self, config: PreKeyStoreConfig) {
        self.config = config;
    }

    /// The current signed prekey (what the bundle publishes).
    pub fn current_pre_key(&self) -> &SignedPreKey {
        &self.current.signed
    }

    /// The retired prekeys still kept, oldest first.
    pub fn retired_pre_keys(&self) -> impl Iterator<Item = &SignedPreKey> {
        self.retired.iter().map(|r| &r.key.signed)
    }

    /// How many initial messages the replay cache remembers.
    pub fn replay_cache_len(&self) -> usize {
        self.replay_len
    }

    /// A bundle of this installation alone, signed at `now_ms`.
    pub fn bundle(&self, now_ms: u64) -> Bundle {
        let mut pre_keys = BTreeMap::new();
        pre_keys.insert(self.installation_id.clone(), self.current.signed.clone());
        Bundle::signed_unchecked(&self.identity, pre_keys, now_ms)
    }

    /// A bundle of this installation and the identity's other installations (`others`, as
    /// learned from paired devices' bundles), signed at `now_ms`.
    ///
    /// # Errors
    /// [`BundleError::DuplicateInstallation`] if `others` contains this installation,
    /// [`BundleError::TooManyInstallations`] beyond [`MAX_INSTALLATIONS`](crate::MAX_INSTALLATIONS),
    /// [`BundleError::ForeignPreKey`] if one of them is not signed by this identity.
    pub fn bundle_with(
        &self,
        now_ms: u64,
        others: &BTreeMap<InstallationId, SignedPreKey>,
    ) -> Result<Bundle, BundleError> {
        if others.contains_key(&self.installation_id) {
            return Err(BundleError::DuplicateInstallation {
                installation_id: self.installation_id.clone(),
            });
        }
        let mut pre_keys = others.clone();
        pre_keys.insert(self.installation_id.clone(), self.current.signed.clone());
        Bundle::sign(&self.identity, pre_keys, now_ms)
    }

    /// The next time (Unix ms) at which [`Self::handle_timeout`] has work: the current prekey's
    /// rotation or the oldest retired prekey's deletion, whichever is first.
    pub fn poll_timeout(&self) -> u64 {
        let rotation = self.rotation_due_ms();
        match self.retired.front() {
            Some(oldest) => rotation.min(self.expiry_ms(oldest)),
            None => rotation,
        }
    }

    /// Advances the schedule to `now_ms`: deletes retired prekeys whose grace period is over
    /// (with their replay-cache entries), and rotates the current prekey if it is due. Returns
    /// `true` if a new prekey was created, so the caller publishes a new bundle.
    pub fn handle_timeout<R: CryptoRng + ?Sized>(&mut self, now_ms: u64, rng: &mut R) -> bool {
        self.purge(now_ms);
        if now_ms >= self.rotation_due_ms() {
            self.rotate(now_ms, rng);
            true
        } else {
            false
        }
    }

    /// Replaces the current prekey now, whatever the schedule (for instance after a suspected
    /// compromise). The old one is retired at `now_ms` and kept for the grace period. The new
    /// id is the old one plus one (after `u32::MAX` it starts again at 1).
    pub fn rotate<R: CryptoRng + ?Sized>(&mut self, now_ms: u64, rng: &mut R) {
        let next = self.current.signed.id().next();
        // Only after four billion rotations could an id come round again; never keep two keys
        // under one id.
        if let Some(pos) = self.retired.iter().position(|r| r.key.signed.id() == next)
            && let Some(old) = self.retired.remove(pos)
        {
            self.forget_replays(old.key.signed.id());
        }
        let fresh = new_pre_key(&self.identity, next, now_ms, rng);
        let old = core::mem::replace(&mut self.current, fresh);
        self.retired.push_back(RetiredPreKey {
            key: old,
            retired_at_ms: now_ms,
        });
        while self.retired.len() > MAX_RETIRED_PRE_KEYS {
            if let Some(oldest) = self.retired.pop_front() {
                self.forget_replays(oldest.key.signed.id());
            }
        }
    }

    /// Answers an initial message: finds the signed prekey the header names (current, or retired
    /// within the grace period at `now_ms`), refuses a replay, computes SK and AD, and remembers
    /// the message in the replay cache. On any error the store is unchanged.
    ///
    /// # Errors
    /// See [`RespondError`].
    pub fn respond(
        &mut self,
        header: &InitialHeader,
        now_ms: u64,
    ) -> Result<ResponderOutput, RespondError> {
        let pre_key_id = header.pre_key_id();
        let key = self
            .find_pre_key(header, now_ms)
            .ok_or(RespondError::UnknownPreKey { pre_key_id })?;
        let mut replay_key = [0u8; 2 * KEY_LEN];
        let (identity_part, ephemeral_part) = replay_key.split_at_mut(KEY_LEN);
        identity_part.copy_from_slice(header.identity().ed25519_bytes());
        ephemeral_part.copy_from_slice(header.ephemeral_key().as_bytes());
        if self
            .replay
            .get(&pre_key_id)
            .is_some_and(|seen| seen.contains(&replay_key))
        {
            return Err(RespondError::Replayed);
        }
        if self.replay_len >= MAX_REPLAY_ENTRIES {
            return Err(RespondError::ReplayCacheFull {
                max: MAX_REPLAY_ENTRIES,
            });
        }
        let (shared_secret, associated_data) = respond_with(&self.identity, &key.pair, header)
            .map_err(|_| RespondError::NonContributory)?;
        let output = ResponderOutput {
            shared_secret,
            associated_data,
            remote_identity: *header.identity(),
            signed_pre_key: key.pair.clone(),
            pre_key_id,
        };
        // Commit only now that everything has succeeded.
        if self
            .replay
            .entry(pre_key_id)
            .or_default()
            .insert(replay_key)
        {
            self.replay_len += 1;
        }
        Ok(output)
    }

    /// Serialises the store, encrypted and authenticated under `key` with ChaCha20-Poly1305 and a
    /// fresh 12-byte nonce drawn from `rng`.
    ///
    /// Format, version 1 (integers big-endian):
    ///
    /// ```text
    /// envelope:  "SRX3DHPS" (8) ‖ version = 1 (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)
    ///            associated data of the AEAD: "SRX3DHPS" ‖ version
    /// plaintext: identity seed (32)
    ///            installation id length (u8) ‖ installation id (ASCII)
    ///            current prekey record
    ///            retired count (u16) ‖ that many × (prekey record ‖ retired at, u64 Unix ms)
    ///            replay count (u32)  ‖ that many × (prekey id u32 ‖ initiator identity (32)
    ///                                                ‖ ephemeral key (32))
    /// prekey record (112 bytes): id (u32) ‖ protocol version (u32) ‖ created at (u64 Unix ms)
    ///            ‖ X25519 secret (32) ‖ signature (64)
    /// ```
    ///
    /// The rotation schedule ([`PreKeyStoreConfig`]) is policy, not state, and is passed again to
    /// [`Self::unpickle`]. The plaintext buffer is zeroized after encryption.
    pub fn pickle<R: CryptoRng + ?Sized>(&self, key: &PickleKey, rng: &mut R) -> Vec<u8> {
        let mut plain = Zeroizing::new(Vec::with_capacity(
            KEY_LEN
                + 1
                + self.installation_id.as_str().len()
                + PRE_KEY_RECORD_LEN
                + 2
                + self.retired.len() * RETIRED_RECORD_LEN
                + 4
                + self.replay_len * REPLAY_RECORD_LEN,
        ));
        plain.extend_from_slice(self.identity.to_seed().as_slice());
        let id = self.installation_id.as_str().as_bytes();
        // InstallationId guarantees at most MAX_INSTALLATION_ID_LEN (64) bytes.
        plain.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        plain.extend_from_slice(id);
        write_pre_key(&mut plain, &self.current);
        plain.extend_from_slice(
            &u16::try_from(self.retired.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        for retired in &self.retired {
            write_pre_key(&mut plain, &retired.key);
            plain.extend_from_slice(&retired.retired_at_ms.to_be_bytes());
        }
        plain.extend_from_slice(
            &u32::try_from(self.replay_len)
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for (pre_key_id, seen) in &self.replay {
            for entry in seen {
                plain.extend_from_slice(&pre_key_id.get().to_be_bytes());
                plain.extend_from_slice(entry);
            }
        }

        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(PICKLE_MAGIC);
        out.push(PICKLE_VERSION);
        out.extend_from_slice(&nonce);
        let aad = pickle_aad();
        let cipher = ChaCha20Poly1305::new(&key.0.into());
        // Encryption fails only for inputs beyond ChaCha20's 256 GiB; a pickle is ~1 MiB at most.
        if let Ok(sealed) = cipher.encrypt(
            &nonce.into(),
            Payload {
                msg: plain.as_slice(),
                aad: &aad,
            },
        ) {
            out.extend_from_slice(&sealed);
        }
        out
    }

    /// Restores a store from [`Self::pickle`]'s output, with the rotation schedule `config`.
    ///
    /// Beyond the AEAD check, the contents are validated: the installation id, the counts against
    /// [`MAX_RETIRED_PRE_KEYS`] and [`MAX_REPLAY_ENTRIES`], distinct prekey ids, every prekey
    /// signature against the identity, replay entries only for retained prekeys, no trailing bytes.
    ///
    /// # Errors
    /// See [`PickleError`].
    pub fn unpickle(
        bytes: &[u8],
        key: &PickleKey,
        config: PreKeyStoreConfig,
    ) -> Result<Self, PickleError> {
        if bytes.len() > MAX_PICKLE_LEN {
            return Err(PickleError::TooLarge {
                len: bytes.len(),
                max: MAX_PICKLE_LEN,
            });
        }
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(PickleError::TooShort { len: bytes.len() });
        }
        let mut envelope = Reader::new(bytes);
        let magic = envelope
            .array::<8>()
            .ok_or(PickleError::TooShort { len: bytes.len() })?;
        if &magic != PICKLE_MAGIC {
            return Err(PickleError::BadMagic);
        }
        let version = envelope
            .u8()
            .ok_or(PickleError::TooShort { len: bytes.len() })?;
        if version != PICKLE_VERSION {
            return Err(PickleError::UnsupportedVersion { version });
        }
        let nonce = envelope
            .array::<NONCE_LEN>()
            .ok_or(PickleError::TooShort { len: bytes.len() })?;
        let aad = pickle_aad();
        let cipher = ChaCha20Poly1305::new(&key.0.into());
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    &nonce.into(),
                    Payload {
                        msg: envelope.rest(),
                        aad: &aad,
                    },
                )
                .map_err(|_| PickleError::Decryption)?,
        );
        Self::from_plaintext(&plain, config).map_err(|reason| PickleError::Corrupt { reason })
    }

    fn from_plaintext(plain: &[u8], config: PreKeyStoreConfig) -> Result<Self, &'static str> {
        const TRUNCATED: &str = "truncated";
        let mut r = Reader::new(plain);
        let seed = Zeroizing::new(r.array::<KEY_LEN>().ok_or(TRUNCATED)?);
        let identity = IdentityKeyPair::from_seed(&seed);
        let id_len = usize::from(r.u8().ok_or(TRUNCATED)?);
        let id_bytes = r.take(id_len).ok_or(TRUNCATED)?;
        let id = core::str::from_utf8(id_bytes).map_err(|_| "installation id is not UTF-8")?;
        let installation_id = InstallationId::new(id).map_err(|_| "invalid installation id")?;
        let current = read_pre_key(&mut r, &identity)?;
        let retired_count = usize::from(r.u16().ok_or(TRUNCATED)?);
        if retired_count > MAX_RETIRED_PRE_KEYS {
            return Err("too many retired prekeys");
        }
        let mut ids = BTreeSet::from([current.signed.id()]);
        let mut retired = VecDeque::with_capacity(retired_count);
        for _ in 0..retired_count {
            let key = read_pre_key(&mut r, &identity)?;
            let retired_at_ms = r.u64().ok_or(TRUNCATED)?;
            if !ids.insert(key.signed.id()) {
                return Err("two prekeys share an id");
            }
            retired.push_back(RetiredPreKey { key, retired_at_ms });
        }
        let replay_count = usize::try_from(r.u32().ok_or(TRUNCATED)?).unwrap_or(usize::MAX);
        if replay_count > MAX_REPLAY_ENTRIES {
            return Err("too many replay-cache entries");
        }
        let mut replay: BTreeMap<PreKeyId, BTreeSet<ReplayKey>> = BTreeMap::new();
        for _ in 0..replay_count {
            let pre_key_id = PreKeyId::new(r.u32().ok_or(TRUNCATED)?).ok_or("prekey id 0")?;
            let entry = r.array::<{ 2 * KEY_LEN }>().ok_or(TRUNCATED)?;
            if !ids.contains(&pre_key_id) {
                return Err("replay entry for an unknown prekey");
            }
            if !replay.entry(pre_key_id).or_default().insert(entry) {
                return Err("duplicate replay entry");
            }
        }
        if !r.rest().is_empty() {
            return Err("trailing bytes");
        }
        Ok(Self {
            identity,
            installation_id,
            config,
            current,
            retired,
            replay,
            replay_len: replay_count,
        })
    }

    fn rotation_due_ms(&self) -> u64 {
        self.current
            .signed
            .created_at_ms()
            .saturating_add(self.config.rotation_interval_ms)
    }

    fn expiry_ms(&self, retired: &RetiredPreKey) -> u64 {
        retired
            .retired_at_ms
            .saturating_add(self.config.grace_period_ms)
    }

    fn purge(&mut self, now_ms: u64) {
        while let Some(oldest) = self.retired.front() {
            if now_ms < self.expiry_ms(oldest) {
                break;
            }
            if let Some(gone) = self.retired.pop_front() {
                self.forget_replays(gone.key.signed.id());
            }
        }
    }

    fn forget_replays(&mut self, id: PreKeyId) {
        if let Some(seen) = self.replay.remove(&id) {
            self.replay_len = self.replay_len.saturating_sub(seen.len());
        }
    }

    fn find_pre_key(&self, header: &InitialHeader, now_ms: u64) -> Option<&StoredPreKey> {
        let matches = |key: &StoredPreKey| {
            key.signed.id() == header.pre_key_id()
                && key.signed.public_key() == header.signed_pre_key()
        };
        if matches(&self.current) {
            return Some(&self.current);
        }
        self.retired
            .iter()
            .find(|r| matches(&r.key) && now_ms < self.expiry_ms(r))
            .map(|r| &r.key)
    }
}

impl fmt::Debug for PreKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreKeyStore")
            .field("identity", self.identity.public())
            .field("installation_id", &self.installation_id)
            .field("current", &self.current.signed.id())
            .field(
                "retired",
                &self
                    .retired
                    .iter()
                    .map(|r| r.key.signed.id())
                    .collect::<Vec<_>>(),
            )
            .field("replay_cache_len", &self.replay_len)
            .finish_non_exhaustive()
    }
}

fn new_pre_key<R: CryptoRng + ?Sized>(
    identity: &IdentityKeyPair,
    id: PreKeyId,
    now_ms: u64,
    rng: &mut R,
) -> StoredPreKey {
    let pair = SignedPreKeyPair::generate(rng);
    let signed = SignedPreKey::sign(identity, &pair, id, now_ms.min(MAX_TIMESTAMP_MS));
    StoredPreKey { pair, signed }
}

fn pickle_aad() -> [u8; 9] {
    let mut aad = [0u8; 9];
    let (magic, version) = aad.split_at_mut(PICKLE_MAGIC.len());
    magic.copy_from_slice(PICKLE_MAGIC);
    version.copy_from_slice(&[PICKLE_VERSION]);
    aad
}

fn write_pre_key(out: &mut Vec<u8>, key: &StoredPreKey) {
    out.extend_from_slice(&key.signed.id().get().to_be_bytes());
    out.extend_from_slice(&key.signed.protocol_version().to_be_bytes());
    out.extend_from_slice(&key.signed.created_at_ms().to_be_bytes());
    out.extend_from_slice(key.pair.secret_bytes().as_slice());
    out.extend_from_slice(key.signed.signature());
}

fn read_pre_key(
    r: &mut Reader<'_>,
    identity: &IdentityKeyPair,
) -> Result<StoredPreKey, &'static str> {
    const TRUNCATED: &str = "truncated";
    let id = PreKeyId::new(r.u32().ok_or(TRUNCATED)?).ok_or("prekey id 0")?;
    let protocol_version = r.u32().ok_or(TRUNCATED)?;
    let created_at_ms = r.u64().ok_or(TRUNCATED)?;
    let secret = Zeroizing::new(r.array::<KEY_LEN>().ok_or(TRUNCATED)?);
    let signature = r.array::<SIGNATURE_LEN>().ok_or(TRUNCATED)?;
    if created_at_ms > MAX_TIMESTAMP_MS {
        return Err("prekey creation time out of range");
    }
    let pair = SignedPreKeyPair::from_secret_bytes(&secret);
    let signed = SignedPreKey::from_parts(
        pair.public_key(),
        id,
        protocol_version,
        created_at_ms,
        signature,
    );
    if !signed.verify(identity.public()) {
        return Err("prekey signature does not match the identity");
    }
    Ok(StoredPreKey { pair, signed })
}

/// A cursor over bytes that never panics: every read returns `None` past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.bytes.split_at_checked(n)?;
        self.bytes = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| <[u8; N]>::try_from(b).ok())
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.bytes)
    }
}
