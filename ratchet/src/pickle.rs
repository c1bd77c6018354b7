//! Versioned, encrypted persistence of sessions ("pickles").
//!
//! A pickle is `"SRDR" ‖ version (1 byte) ‖ nonce (12) ‖ ChaCha20-Poly1305(pickle key, nonce,
//! associated data = "SRDR" ‖ version, body)`. The body of version 1 is a fixed binary layout
//! of the session state (all integers big-endian):
//!
//! ```text
//! flags u8            bit 0 header encryption, bit 1 remote key, bit 2 sending chain,
//!                     bit 3 receiving chain (other bits zero)
//! AD [64] ‖ root key [32] ‖ own ratchet secret [32]
//! [remote ratchet key [32]]  [sending key [32] ‖ n u32]  [receiving key [32] ‖ n u32]
//! pn u32
//! if header encryption: hk flags u8 (bit 0 HKs, bit 1 HKr) ‖ [HKs 32] ‖ [HKr 32] ‖ NHKs 32 ‖ NHKr 32
//! skipped count u32, then oldest first: chain [32] ‖ n u32 ‖ message key [32] ‖ has hk u8 ‖ [hk 32]
//! retired count u32, then oldest first: chain [32] ‖ has hk u8 ‖ [hk 32]
//! ```
//!
//! Loading checks every length, count and flag against the limits and rejects trailing bytes.
//! Older versions stay loadable: each version has its own body decoder.

use crate::keys::{Chain, Key32, RatchetKeyPair, RatchetPublicKey};
use crate::session::{AD_LEN, HeaderKeys, Session};
use crate::skipped::{
    MAX_RETIRED_CHAINS, MAX_STORED_SKIPPED_KEYS, RetiredChain, RetiredChains, SkippedKey,
    SkippedKeys,
};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The version written by [`Session::pickle`].
pub const PICKLE_VERSION: u8 = 1;
/// Magic bytes at the start of every pickle.
pub const PICKLE_MAGIC: &[u8; 4] = b"SRDR";
/// Largest pickle accepted by [`Session::from_pickle`]: a session with every limit reached is
/// about 210 KB, so 256 KiB leaves room while refusing absurd input before decrypting it.
pub const MAX_PICKLE_LEN: usize = 256 * 1024;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const PREFIX_LEN: usize = PICKLE_MAGIC.len() + 1;

/// The caller's 32-byte key that encrypts pickles. Zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PickleKey([u8; 32]);

impl From<[u8; 32]> for PickleKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl core::fmt::Debug for PickleKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PickleKey(..)")
    }
}

/// Why a pickle could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PickleError {
    /// The input is longer than [`MAX_PICKLE_LEN`]; nothing was decrypted.
    #[error("pickle of {0} bytes is too large")]
    TooLarge(usize),
    /// The input does not start with the pickle magic or is too short to be a pickle.
    #[error("not a ratchet session pickle")]
    NotAPickle,
    /// The pickle has a version this crate does not know.
    #[error("unsupported pickle version {0}")]
    UnsupportedVersion(u8),
    /// The pickle does not decrypt under the key (wrong key, or the bytes were altered).
    #[error("the pickle does not decrypt under this key")]
    Decryption,
    /// The decrypted body is not a valid session of its version.
    #[error("corrupt pickle body")]
    Corrupt,
}

/// Upper bound of the body without skipped keys and retired chains.
const BODY_FIXED_MAX: usize = 1 + AD_LEN + 32 + 32 + 32 + 36 + 36 + 4 + 1 + 4 * 32 + 4 + 4;
/// Upper bound of one skipped-key entry.
const SKIPPED_ENTRY_MAX: usize = 32 + 4 + 32 + 1 + 32;

const FLAG_HE: u8 = 1;
const FLAG_REMOTE: u8 = 2;
const FLAG_SENDING: u8 = 4;
const FLAG_RECEIVING: u8 = 8;

struct Writer(Zeroizing<Vec<u8>>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
    fn opt_key(&mut self, k: Option<&Key32>) {
        match k {
            Some(k) => {
                self.u8(1);
                self.bytes(&k.0);
            }
            None => self.u8(0),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        if self.0.len() < N {
            return Err(PickleError::Corrupt);
        }
        let (head, tail) = self.0.split_at(N);
        self.0 = tail;
        head.try_into().map_err(|_| PickleError::Corrupt)
    }
    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_be_bytes(self.take::<4>()?))
    }
    fn key(&mut self) -> Result<Key32, PickleError> {
        let mut bytes = self.take::<32>()?;
        let key = Key32::new(&bytes);
        bytes.zeroize();
        Ok(key)
    }
    fn opt_key(&mut self) -> Result<Option<Key32>, PickleError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.key()?)),
            _ => Err(PickleError::Corrupt),
        }
    }
    fn chain(&mut self) -> Result<Chain, PickleError> {
        let key = self.key()?;
        let n = self.u32()?;
        Ok(Chain { key, n })
    }
}

fn cipher(key: &PickleKey) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&chacha20poly1305::Key::from(key.0))
}

impl Session {
    /// Serialises the session into an encrypted pickle of version [`PICKLE_VERSION`], under
    /// `key` and a nonce drawn from `rng`.
    pub fn pickle(&self, rng: &mut (impl CryptoRng + ?Sized), key: &PickleKey) -> Vec<u8> {
        let body = self.pickle_body();
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(PREFIX_LEN + NONCE_LEN + body.len() + TAG_LEN);
        out.extend_from_slice(PICKLE_MAGIC);
        out.push(PICKLE_VERSION);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(&body);
        let (prefix, rest) = out.split_at_mut(start);
        let aad = prefix.get(..PREFIX_LEN).unwrap_or_default();
        let tag = cipher(key).encrypt_inout_detached(&Nonce::from(nonce), aad, rest.into());
        match tag {
            Ok(tag) => out.extend_from_slice(&tag),
            // Only above ChaCha20's 256 GiB limit, far beyond any session.
            Err(_) => out.clear(),
        }
        out
    }

    /// Loads a pickle written by [`Session::pickle`] of this or an earlier version.
    pub fn from_pickle(pickle: &[u8], key: &PickleKey) -> Result<Self, PickleError> {
        if pickle.len() > MAX_PICKLE_LEN {
            return Err(PickleError::TooLarge(pickle.len()));
        }
        if pickle.len() < PREFIX_LEN + NONCE_LEN + TAG_LEN || !pickle.starts_with(PICKLE_MAGIC) {
            return Err(PickleError::NotAPickle);
        }
        let (aad, rest) = pickle.split_at(PREFIX_LEN);
        let version = aad.last().copied().unwrap_or_default();
        if version != 1 {
            return Err(PickleError::UnsupportedVersion(version));
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| PickleError::NotAPickle)?;
        let tag = Tag::try_from(tag).map_err(|_| PickleError::NotAPickle)?;
        let mut body = Zeroizing::new(ct.to_vec());
        cipher(key)
            .decrypt_inout_detached(&nonce, aad, body.as_mut_slice().into(), &tag)
            .map_err(|_| PickleError::Decryption)?;
        Self::from_body_v1(&body)
    }

    fn pickle_body(&self) -> Zeroizing<Vec<u8>> {
        // Sized for the largest layout, so the buffer of secrets is never reallocated.
        let mut w = Writer(Zeroizing::new(Vec::with_capacity(
            BODY_FIXED_MAX + self.skipped.len() * SKIPPED_ENTRY_MAX + self.retired.0.len() * 65,
        )));
        let mut flags = 0;
        if self.header_keys.is_some() {
            flags |= FLAG_HE;
        }
        if self.remote.is_some() {
            flags |= FLAG_REMOTE;
        }
        if self.sending.is_some() {
            flags |= FLAG_SENDING;
        }
        if self.receiving.is_some() {
            flags |= FLAG_RECEIVING;
        }
        w.u8(flags);
        w.bytes(&self.ad);
        w.bytes(&self.root_key.0);
        w.bytes(&*self.ratchet.secret_bytes());
        if let Some(remote) = &self.remote {
            w.bytes(remote.as_bytes());
        }
        for chain in [&self.sending, &self.receiving].into_iter().flatten() {
            w.bytes(&chain.key.0);
            w.u32(chain.n);
        }
        w.u32(self.pn);
        if let Some(hk) = &self.header_keys {
            w.u8(u8::from(hk.send.is_some()) | (u8::from(hk.recv.is_some()) << 1));
            for k in [&hk.send, &hk.recv].into_iter().flatten() {
                w.bytes(&k.0);
            }
            w.bytes(&hk.next_send.0);
            w.bytes(&hk.next_recv.0);
        }
        w.u32(u32::try_from(self.skipped.len()).unwrap_or(u32::MAX));
        for entry in self.skipped.iter_oldest_first() {
            w.bytes(entry.chain.as_bytes());
            w.u32(entry.n);
            w.bytes(&entry.key.0);
            w.opt_key(entry.header_key);
        }
        w.u32(u32::try_from(self.retired.0.len()).unwrap_or(u32::MAX));
        for retired in &self.retired.0 {
            w.bytes(retired.chain.as_bytes());
            w.opt_key(retired.header_key.as_ref());
        }
        w.0
    }

    fn from_body_v1(body: &[u8]) -> Result<Self, PickleError> {
        let mut r = Reader(body);
        let flags = r.u8()?;
        if flags & !(FLAG_HE | FLAG_REMOTE | FLAG_SENDING | FLAG_RECEIVING) != 0 {
            return Err(PickleError::Corrupt);
        }
        let he = flags & FLAG_HE != 0;
        let ad = r.take::<AD_LEN>()?;
        let root_key = r.key()?;
        let ratchet = RatchetKeyPair::from_secret_bytes(*Zeroizing::new(r.take::<32>()?));
        let remote = if flags & FLAG_REMOTE != 0 {
            Some(RatchetPublicKey::from(r.take::<32>()?))
        } else {
            None
        };
        let sending = if flags & FLAG_SENDING != 0 {
            Some(r.chain()?)
        } else {
            None
        };
        let receiving = if flags & FLAG_RECEIVING != 0 {
            Some(r.chain()?)
        } else {
            None
        };
        // A receiving chain always has its remote ratchet key.
        if receiving.is_some() && remote.is_none() {
            return Err(PickleError::Corrupt);
        }
        let pn = r.u32()?;
        let header_keys = if he {
            let hk_flags = r.u8()?;
            if hk_flags & !3 != 0 {
                return Err(PickleError::Corrupt);
            }
            let send = if hk_flags & 1 != 0 {
                Some(r.key()?)
            } else {
                None
            };
            let recv = if hk_flags & 2 != 0 {
                Some(r.key()?)
            } else {
                None
            };
            Some(HeaderKeys {
                send,
                recv,
                next_send: r.key()?,
                next_recv: r.key()?,
            })
        } else {
            None
        };
        let count = r.u32()?;
        if count as usize > MAX_STORED_SKIPPED_KEYS {
            return Err(PickleError::Corrupt);
        }
        let mut skipped = SkippedKeys::default();
        for _ in 0..count {
            let chain = RatchetPublicKey::from(r.take::<32>()?);
            let n = r.u32()?;
            let key = r.key()?;
            let header_key = r.opt_key()?;
            if header_key.is_some() != he {
                return Err(PickleError::Corrupt);
            }
            skipped.insert(SkippedKey { chain, n, key }, header_key.as_ref());
        }
        if skipped.len() != count as usize {
            return Err(PickleError::Corrupt);
        }
        let count = r.u32()?;
        if count as usize > MAX_RETIRED_CHAINS {
            return Err(PickleError::Corrupt);
        }
        let mut retired = RetiredChains::default();
        for _ in 0..count {
            let chain = RatchetPublicKey::from(r.take::<32>()?);
            let header_key = r.opt_key()?;
            if header_key.is_some() != he {
                return Err(PickleError::Corrupt);
            }
            retired.push(RetiredChain { chain, header_key });
        }
        if !r.0.is_empty() {
            return Err(PickleError::Corrupt);
        }
        Ok(Session {
            ad,
            root_key,
            ratchet,
            remote,
            sending,
            receiving,
            pn,
            header_keys,
            skipped,
            retired,
        })
    }
}
