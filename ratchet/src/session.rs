//! Double Ratchet sessions.

use crate::aead::{open_body, open_header, seal_body, seal_header};
use crate::kdf::{RootStep, initial_header_keys, kdf_ck, kdf_rk, kdf_rk_he};
use crate::keys::{Chain, Key32, RatchetKeyPair, RatchetPublicKey};
use crate::message::{
    ENCRYPTED_HEADER_LEN, HEADER_NONCE_LEN, Header, MAX_PAYLOAD_LEN, Message, MessageHeader,
    TAG_LEN,
};
use crate::skipped::{MAX_SKIP, RetiredChain, RetiredChains, SkippedKey, SkippedKeys};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// Length of the associated data `AD` that binds a session to its two parties (for X3DH: the
/// initiator's and the responder's Ed25519 identity keys).
pub const AD_LEN: usize = 64;

/// Options chosen when a session is created; both parties must choose the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Seal every header under a header key (the spec's section 4), hiding ratchet keys and
    /// message counters from the network.
    pub header_encryption: bool,
}

impl SessionConfig {
    /// Plain headers (the default).
    pub fn plain() -> Self {
        Self {
            header_encryption: false,
        }
    }

    /// Encrypted headers.
    pub fn with_header_encryption() -> Self {
        Self {
            header_encryption: true,
        }
    }
}

/// Why a session could not be created.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The responder's ratchet key is a low-order point: the DH output would not be
    /// contributory.
    #[error("the remote ratchet key is not a valid X25519 public key")]
    InvalidRatchetKey,
}

/// Why [`Session::encrypt`] failed. The session is unchanged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncryptError {
    /// The responder cannot send before it has received a message (it has no sending chain and
    /// does not know the initiator's ratchet key yet). Caller misuse.
    #[error("the session cannot send before it has received a message")]
    NotReady,
    /// The plaintext is longer than [`MAX_PAYLOAD_LEN`] minus the tag.
    #[error("plaintext of {0} bytes is too large")]
    PlaintextTooLarge(usize),
    /// The sending chain has used all 2³² message numbers; the peer must send first so that the
    /// session can start a new chain.
    #[error("the sending chain is exhausted")]
    ChainExhausted,
    /// The remote ratchet key gives a non-contributory DH output (it passed an earlier check,
    /// so this does not happen with a session created by this crate).
    #[error("the remote ratchet key is not a valid X25519 public key")]
    InvalidRatchetKey,
}

/// Why [`Session::decrypt`] failed. In every case the session is exactly as it was before the
/// call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecryptError {
    /// The message's key was already used (a replay) or was discarded by the skipped-key limit
    /// ([`MAX_STORED_SKIPPED_KEYS`](crate::MAX_STORED_SKIPPED_KEYS)); it cannot be decrypted
    /// again.
    #[error("duplicate message, or its key was discarded")]
    Duplicate,
    /// The header asks to skip more than [`MAX_SKIP`] message keys in one chain; nothing was
    /// derived.
    #[error(
        "the message is {requested} messages ahead of its chain; at most {MAX_SKIP} may be skipped"
    )]
    TooManySkipped {
        /// How many keys the message would have required skipping.
        requested: u64,
    },
    /// The ciphertext, the header or the associated data was altered, or the message belongs
    /// to another session.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// Header encryption: no header key of the session opens the header (the message belongs
    /// to another session, was altered, or is older than every chain the session remembers).
    #[error("no header key opens the header")]
    HeaderUndecryptable,
    /// The message has a plain header and the session encrypts headers, or the other way round.
    #[error("header-encryption mode does not match the session")]
    HeaderModeMismatch,
    /// The sender's new ratchet key is a low-order point (the DH output is not contributory).
    #[error("the sender's ratchet key is not a valid X25519 public key")]
    InvalidRatchetKey,
    /// The message claims a chain the session cannot receive on: the responder's initial
    /// ratchet key, which only ever sends after a DH ratchet step.
    #[error("the message uses a ratchet key that never sends")]
    UnexpectedRatchetKey,
}

/// Header keys of the header-encryption variant (`HKs`, `HKr`, `NHKs`, `NHKr`).
#[derive(Clone, Debug)]
pub(crate) struct HeaderKeys {
    pub(crate) send: Option<Key32>,
    pub(crate) recv: Option<Key32>,
    pub(crate) next_send: Key32,
    pub(crate) next_recv: Key32,
}

/// A Double Ratchet session with one peer ([Signal's Double Ratchet spec], status-rs profile of
/// WIRE.md Part A).
///
/// One party is the initiator (created with [`Session::initiator`] from the X3DH shared secret
/// and the responder's signed prekey), the other the responder ([`Session::responder`], from
/// the same secret and the signed prekey's key pair). The initiator may send at once; the
/// responder sends once it has received a message.
///
/// The sending half of a DH ratchet step is taken at the next [`Session::encrypt`] rather than
/// inside [`Session::decrypt`], so that decryption needs no randomness; the keys and bytes are
/// those of the spec.
///
/// [Signal's Double Ratchet spec]: https://signal.org/docs/specifications/doubleratchet/
pub struct Session {
    pub(crate) ad: [u8; AD_LEN],
    pub(crate) root_key: Key32,
    pub(crate) ratchet: RatchetKeyPair,
    pub(crate) remote: Option<RatchetPublicKey>,
    pub(crate) sending: Option<Chain>,
    pub(crate) receiving: Option<Chain>,
    pub(crate) pn: u32,
    pub(crate) header_keys: Option<HeaderKeys>,
    pub(crate) skipped: SkippedKeys,
    pub(crate) retired: RetiredChains,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("header_encryption", &self.header_keys.is_some())
            .field("ratchet_key", &self.ratchet.public_key())
            .field("remote_ratchet_key", &self.remote)
            .field("sending_n", &self.sending.as_ref().map(|c| c.n))
            .field("receiving_n", &self.receiving.as_ref().map(|c| c.n))
            .field("pn", &self.pn)
            .field("skipped_keys", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

/// How a received message is to be decrypted.
enum Plan {
    /// With a stored skipped key of `chain`.
    Skipped { chain: RatchetPublicKey, n: u32 },
    /// On the current receiving chain.
    Current { n: u32 },
    /// After a DH ratchet step to the sender's new ratchet key.
    NewChain(Header),
}

/// Associated data of a message: `AD ‖ header bytes` (40) or `AD ‖ sealed header` (80).
struct MessageAd {
    buf: [u8; AD_LEN + ENCRYPTED_HEADER_LEN],
    len: usize,
}

impl MessageAd {
    fn new(ad: &[u8; AD_LEN], suffix: &[u8]) -> Self {
        let mut buf = [0u8; AD_LEN + ENCRYPTED_HEADER_LEN];
        let len = AD_LEN + suffix.len().min(ENCRYPTED_HEADER_LEN);
        let (a, rest) = buf.split_at_mut(AD_LEN);
        a.copy_from_slice(ad);
        for (d, s) in rest.iter_mut().zip(suffix) {
            *d = *s;
        }
        Self { buf, len }
    }

    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&self.buf)
    }
}

fn root_step(header_encryption: bool, root_key: &Key32, dh_out: &[u8; 32]) -> RootStep {
    if header_encryption {
        kdf_rk_he(&root_key.0, dh_out)
    } else {
        kdf_rk(&root_key.0, dh_out)
    }
}

impl Session {
    /// Starts a session as the initiator (Alice): `shared_secret` is X3DH's SK, `associated_data`
    /// its AD, and `their_ratchet_key` the responder's signed prekey, which serves as the
    /// responder's first ratchet key. Draws the initiator's first ratchet key pair from `rng`.
    pub fn initiator(
        rng: &mut (impl CryptoRng + ?Sized),
        shared_secret: &[u8; 32],
        associated_data: &[u8; AD_LEN],
        their_ratchet_key: RatchetPublicKey,
        config: SessionConfig,
    ) -> Result<Self, SessionError> {
        let ratchet = RatchetKeyPair::generate(rng);
        let dh = ratchet
            .diffie_hellman(&their_ratchet_key)
            .ok_or(SessionError::InvalidRatchetKey)?;
        let sk = Key32::new(shared_secret);
        let step = root_step(config.header_encryption, &sk, &dh);
        let header_keys = config.header_encryption.then(|| {
            let (hka, nhkb) = initial_header_keys(shared_secret);
            HeaderKeys {
                send: Some(Key32::new(&hka)),
                recv: None,
                next_send: Key32::new(&step.next_header_key),
                next_recv: Key32::new(&nhkb),
            }
        });
        Ok(Self {
            ad: *associated_data,
            root_key: Key32::new(&step.root_key),
            ratchet,
            remote: Some(their_ratchet_key),
            sending: Some(Chain {
                key: Key32::new(&step.chain_key),
                n: 0,
            }),
            receiving: None,
            pn: 0,
            header_keys,
            skipped: SkippedKeys::default(),
            retired: RetiredChains::default(),
        })
    }

    /// Starts a session as the responder (Bob): `shared_secret` is X3DH's SK, `associated_data`
    /// its AD, and `own_ratchet_key` the signed prekey's key pair that the initiator used.
    pub fn responder(
        shared_secret: &[u8; 32],
        associated_data: &[u8; AD_LEN],
        own_ratchet_key: RatchetKeyPair,
        config: SessionConfig,
    ) -> Self {
        let header_keys = config.header_encryption.then(|| {
            let (hka, nhkb) = initial_header_keys(shared_secret);
            HeaderKeys {
                send: None,
                recv: None,
                next_send: Key32::new(&nhkb),
                next_recv: Key32::new(&hka),
            }
        });
        Self {
            ad: *associated_data,
            root_key: Key32::new(shared_secret),
            ratchet: own_ratchet_key,
            remote: None,
            sending: None,
            receiving: None,
            pn: 0,
            header_keys,
            skipped: SkippedKeys::default(),
            retired: RetiredChains::default(),
        }
    }

    /// Whether this session seals its headers.
    pub fn header_encryption(&self) -> bool {
        self.header_keys.is_some()
    }

    /// The associated data the session binds every message to.
    pub fn associated_data(&self) -> &[u8; AD_LEN] {
        &self.ad
    }

    /// The session's current ratchet public key (the one its next message carries, unless a DH
    /// ratchet step is pending).
    pub fn ratchet_public_key(&self) -> RatchetPublicKey {
        self.ratchet.public_key()
    }

    /// Whether [`Session::encrypt`] can produce a message (false only for a responder that has
    /// not received anything yet).
    pub fn can_encrypt(&self) -> bool {
        self.sending.is_some() || self.remote.is_some()
    }

    /// The number of stored skipped message keys (at most
    /// [`MAX_STORED_SKIPPED_KEYS`](crate::MAX_STORED_SKIPPED_KEYS)).
    pub fn skipped_key_count(&self) -> usize {
        self.skipped.len()
    }

    /// Encrypts `plaintext` (`RatchetEncrypt`, or `RatchetEncryptHE` with header encryption).
    ///
    /// If the peer has moved to a new ratchet key since this session last sent, this first
    /// completes the DH ratchet step with a fresh key pair drawn from `rng`. With header
    /// encryption, the header's nonce is drawn from `rng` too.
    pub fn encrypt(
        &mut self,
        rng: &mut (impl CryptoRng + ?Sized),
        plaintext: &[u8],
    ) -> Result<Message, EncryptError> {
        if plaintext.len() > MAX_PAYLOAD_LEN - TAG_LEN {
            return Err(EncryptError::PlaintextTooLarge(plaintext.len()));
        }
        if self.sending.is_none() {
            self.start_sending_chain(rng)?;
        }
        let ad = self.ad;
        let header_key = match &self.header_keys {
            Some(hk) => Some(hk.send.clone().ok_or(EncryptError::NotReady)?),
            None => None,
        };
        let ratchet_key = self.ratchet.public_key();
        let pn = self.pn;
        let chain = self.sending.as_mut().ok_or(EncryptError::NotReady)?;
        if chain.n == u32::MAX {
            return Err(EncryptError::ChainExhausted);
        }
        let header = Header {
            ratchet_key,
            pn,
            n: chain.n,
        };
        let (next, mk) = kdf_ck(&chain.key.0);
        let (message_header, message_ad) = match header_key {
            Some(hk) => {
                let mut nonce = [0u8; HEADER_NONCE_LEN];
                rng.fill_bytes(&mut nonce);
                let sealed = seal_header(&hk.0, nonce, &header.to_bytes(), &ad);
                (
                    MessageHeader::Encrypted(sealed),
                    MessageAd::new(&ad, &sealed),
                )
            }
            None => (
                MessageHeader::Plain(header),
                MessageAd::new(&ad, &header.to_bytes()),
            ),
        };
        let ciphertext = seal_body(&mk, plaintext, message_ad.as_slice());
        chain.key = Key32::new(&next);
        chain.n += 1;
        Ok(Message {
            header: message_header,
            ciphertext,
        })
    }

    /// The sending half of a DH ratchet step: a new key pair and a new sending chain.
    fn start_sending_chain(
        &mut self,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<(), EncryptError> {
        let remote = self.remote.ok_or(EncryptError::NotReady)?;
        if self
            .header_keys
            .as_ref()
            .is_some_and(|hk| hk.send.is_none())
        {
            return Err(EncryptError::NotReady);
        }
        let ratchet = RatchetKeyPair::generate(rng);
        let dh = ratchet
            .diffie_hellman(&remote)
            .ok_or(EncryptError::InvalidRatchetKey)?;
        let step = root_step(self.header_keys.is_some(), &self.root_key, &dh);
        self.ratchet = ratchet;
        self.root_key = Key32::new(&step.root_key);
        self.sending = Some(Chain {
            key: Key32::new(&step.chain_key),
            n: 0,
        });
        if let Some(hk) = &mut self.header_keys {
            hk.next_send = Key32::new(&step.next_header_key);
        }
        Ok(())
    }

    /// Decrypts `message` (`RatchetDecrypt`, or `RatchetDecryptHE` with header encryption).
    ///
    /// Transactional: all keys are derived into temporaries and the session changes only after
    /// the message's tag has verified. On any error the session is exactly as before.
    pub fn decrypt(&mut self, message: &Message) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let (plan, message_ad) = match (&self.header_keys, &message.header) {
            (None, MessageHeader::Plain(header)) => (
                self.plan_plain(header)?,
                MessageAd::new(&self.ad, &header.to_bytes()),
            ),
            (Some(keys), MessageHeader::Encrypted(sealed)) => (
                self.plan_encrypted(keys, sealed)?,
                MessageAd::new(&self.ad, sealed),
            ),
            _ => return Err(DecryptError::HeaderModeMismatch),
        };
        let ad = message_ad.as_slice();
        match plan {
            Plan::Skipped { chain, n } => {
                let key = self.skipped.get(&chain, n).ok_or(DecryptError::Duplicate)?;
                let plaintext = open_body(&key.0, &message.ciphertext, ad)
                    .ok_or(DecryptError::AuthenticationFailed)?;
                self.skipped.remove(&chain, n);
                Ok(plaintext)
            }
            Plan::Current { n } => self.decrypt_current(n, &message.ciphertext, ad),
            Plan::NewChain(header) => self.decrypt_new_chain(&header, &message.ciphertext, ad),
        }
    }

    fn plan_plain(&self, header: &Header) -> Result<Plan, DecryptError> {
        let chain = header.ratchet_key;
        if self.skipped.get(&chain, header.n).is_some() {
            return Ok(Plan::Skipped { chain, n: header.n });
        }
        if self.remote == Some(chain) {
            return if self.receiving.is_some() {
                Ok(Plan::Current { n: header.n })
            } else {
                Err(DecryptError::UnexpectedRatchetKey)
            };
        }
        if self.retired.contains_chain(&chain) {
            return Err(DecryptError::Duplicate);
        }
        Ok(Plan::NewChain(*header))
    }

    fn plan_encrypted(
        &self,
        keys: &HeaderKeys,
        sealed: &[u8; ENCRYPTED_HEADER_LEN],
    ) -> Result<Plan, DecryptError> {
        // The current receiving chain first (the common case), then the next one, then chains
        // with stored skipped keys, then retired chains.
        if let (Some(hk), Some(remote)) = (&keys.recv, self.remote)
            && let Some(bytes) = open_header(&hk.0, sealed, &self.ad)
        {
            let n = Header::from_bytes(&bytes).n;
            return Ok(if self.skipped.get(&remote, n).is_some() {
                Plan::Skipped { chain: remote, n }
            } else {
                Plan::Current { n }
            });
        }
        if let Some(bytes) = open_header(&keys.next_recv.0, sealed, &self.ad) {
            return Ok(Plan::NewChain(Header::from_bytes(&bytes)));
        }
        for (chain, hk) in self.skipped.header_keys() {
            if Some(*chain) == self.remote {
                continue;
            }
            if let Some(bytes) = open_header(&hk.0, sealed, &self.ad) {
                let n = Header::from_bytes(&bytes).n;
                return if self.skipped.get(chain, n).is_some() {
                    Ok(Plan::Skipped { chain: *chain, n })
                } else {
                    Err(DecryptError::Duplicate)
                };
            }
        }
        for retired in &self.retired.0 {
            if let Some(hk) = &retired.header_key
                && open_header(&hk.0, sealed, &self.ad).is_some()
            {
                return Err(DecryptError::Duplicate);
            }
        }
        Err(DecryptError::HeaderUndecryptable)
    }

    /// Decrypts on the current receiving chain, skipping (and staging) keys up to `n`.
    fn decrypt_current(
        &mut self,
        n: u32,
        ciphertext: &[u8],
        ad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let Some(remote) = self.remote else {
            return Err(DecryptError::UnexpectedRatchetKey);
        };
        let chain = self
            .receiving
            .as_ref()
            .ok_or(DecryptError::UnexpectedRatchetKey)?;
        if n < chain.n {
            return Err(DecryptError::Duplicate);
        }
        check_skip(chain.n, n)?;
        let mut staged = Vec::new();
        let (next, mk) = derive_until(&chain.key, chain.n, n, remote, &mut staged);
        let plaintext = open_body(&mk, ciphertext, ad).ok_or(DecryptError::AuthenticationFailed)?;
        // Commit.
        let header_key = self.header_keys.as_ref().and_then(|k| k.recv.clone());
        for entry in staged {
            self.skipped.insert(entry, header_key.as_ref());
        }
        self.receiving = Some(Chain {
            key: Key32::new(&next),
            n: n.saturating_add(1),
        });
        Ok(plaintext)
    }

    /// Decrypts after a DH ratchet step to `header.ratchet_key` (`DHRatchet`'s receiving half).
    fn decrypt_new_chain(
        &mut self,
        header: &Header,
        ciphertext: &[u8],
        ad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        // Limits first: nothing is derived for a header that asks too much.
        let old_n = self.receiving.as_ref().map_or(0, |c| c.n);
        check_skip(old_n, header.pn)?;
        check_skip(0, header.n)?;
        let header_encryption = self.header_keys.is_some();

        // The rest of the old receiving chain, up to the sender's previous chain length.
        let mut staged_old = Vec::new();
        if let (Some(chain), Some(remote)) = (&self.receiving, self.remote)
            && header.pn > chain.n
        {
            // Keys `chain.n .. pn` are staged; the key numbered `pn` that comes back is unused.
            let _ = derive_until(&chain.key, chain.n, header.pn, remote, &mut staged_old);
        }
        let dh = self
            .ratchet
            .diffie_hellman(&header.ratchet_key)
            .ok_or(DecryptError::InvalidRatchetKey)?;
        let step = root_step(header_encryption, &self.root_key, &dh);
        let mut staged_new = Vec::new();
        let (next, mk) = derive_until(
            &Key32::new(&step.chain_key),
            0,
            header.n,
            header.ratchet_key,
            &mut staged_new,
        );
        let plaintext = open_body(&mk, ciphertext, ad).ok_or(DecryptError::AuthenticationFailed)?;

        // Commit.
        let old_header_key = self.header_keys.as_ref().and_then(|k| k.recv.clone());
        for entry in staged_old {
            self.skipped.insert(entry, old_header_key.as_ref());
        }
        if let (Some(_), Some(remote)) = (&self.receiving, self.remote) {
            self.retired.push(RetiredChain {
                chain: remote,
                header_key: old_header_key,
            });
        }
        self.pn = self.sending.as_ref().map_or(0, |c| c.n);
        self.sending = None;
        let mut new_header_key = None;
        if let Some(keys) = &mut self.header_keys {
            keys.send = Some(keys.next_send.clone());
            keys.recv = Some(keys.next_recv.clone());
            keys.next_recv = Key32::new(&step.next_header_key);
            new_header_key = keys.recv.clone();
        }
        for entry in staged_new {
            self.skipped.insert(entry, new_header_key.as_ref());
        }
        self.root_key = Key32::new(&step.root_key);
        self.remote = Some(header.ratchet_key);
        self.receiving = Some(Chain {
            key: Key32::new(&next),
            n: header.n.saturating_add(1),
        });
        Ok(plaintext)
    }
}

/// Rejects a message `until` that would need more than [`MAX_SKIP`] keys skipped on a chain
/// whose next number is `next`.
fn check_skip(next: u32, until: u32) -> Result<(), DecryptError> {
    let requested = u64::from(until).saturating_sub(u64::from(next));
    if requested > u64::from(MAX_SKIP) {
        Err(DecryptError::TooManySkipped { requested })
    } else {
        Ok(())
    }
}

/// Runs `KDF_CK` from `key` (number `from`) up to message `until`: keys `from..until` are
/// staged as skipped, and `(chain key after until, message key of until)` is returned.
fn derive_until(
    key: &Key32,
    from: u32,
    until: u32,
    chain: RatchetPublicKey,
    staged: &mut Vec<SkippedKey>,
) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    // Reserve up front so the staged keys are never moved by a reallocation (which would leave
    // unzeroized copies behind).
    staged.reserve(until.saturating_sub(from) as usize);
    let mut ck = Zeroizing::new(key.0);
    for n in from..until {
        let (next, mk) = kdf_ck(&ck);
        staged.push(SkippedKey {
            chain,
            n,
            key: Key32::new(&mk),
        });
        ck = next;
    }
    kdf_ck(&ck)
}
