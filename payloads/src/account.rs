//! Accounts: a BIP-39 seed phrase and the keys derived from it.
//!
//! The design article derives the public chat key from the user's BIP-39 seed phrase on EIP-1581's
//! path `m/43'/60'/1581'/0/0` and the local database key on `m/43'/60'/1581'/1/0`. Those paths are
//! BIP-32 paths over secp256k1. status-rs keys are Ed25519, whose only standard hierarchical
//! derivation is SLIP-0010, and SLIP-0010 defines hardened children only for Ed25519. So status-rs
//! adapts the paths by hardening every level:
//!
//! | key | path (SLIP-0010, Ed25519) |
//! |---|---|
//! | chat key (Ed25519 identity) | `m/43'/60'/1581'/0'/0'` ([`CHAT_KEY_PATH`]) |
//! | database key (32 bytes) | `m/43'/60'/1581'/1'/0'` ([`DATABASE_KEY_PATH`]) |
//!
//! The 64-byte BIP-39 seed (PBKDF2-HMAC-SHA512 of the normalised phrase, salt `"mnemonic" ‖
//! passphrase`) is the SLIP-0010 master seed. The chat key's private scalar seed is the derived
//! 32-byte key; the database key is the derived 32-byte key used as-is. The same phrase and
//! passphrase always restore the same keys. Phrases, seeds and derived keys are zeroized on drop
//! and never printed.

use core::fmt;

use ed25519_dalek::SigningKey;
use hmac::{Hmac, KeyInit, Mac};
use rand_core::CryptoRng;
use sha2::Sha512;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The bit that marks a hardened child index.
pub const HARDENED: u32 = 0x8000_0000;

/// SLIP-0010 path of the chat key: `m/43'/60'/1581'/0'/0'`.
pub const CHAT_KEY_PATH: [u32; 5] = [
    43 | HARDENED,
    60 | HARDENED,
    1581 | HARDENED,
    HARDENED,
    HARDENED,
];

/// SLIP-0010 path of the local database key: `m/43'/60'/1581'/1'/0'`.
pub const DATABASE_KEY_PATH: [u32; 5] = [
    43 | HARDENED,
    60 | HARDENED,
    1581 | HARDENED,
    1 | HARDENED,
    HARDENED,
];

/// How many words a new seed phrase has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordCount {
    /// 12 words, 128 bits of entropy.
    Twelve,
    /// 24 words, 256 bits of entropy.
    TwentyFour,
}

/// Why an account could not be created or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The phrase is not a valid English BIP-39 mnemonic (unknown word, bad checksum or length).
    #[error("invalid seed phrase: {0}")]
    InvalidPhrase(String),
    /// The phrase has a word count status-rs does not accept (12 or 24).
    #[error("a seed phrase must have 12 or 24 words, not {0}")]
    WordCount(usize),
    /// A SLIP-0010 Ed25519 path contained a non-hardened index.
    #[error("SLIP-0010 Ed25519 derivation supports hardened indices only (index {0:#x})")]
    NonHardened(u32),
}

/// A key and chain code at some node of a SLIP-0010 Ed25519 tree.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ExtendedKey {
    /// The node's 32-byte private key (an Ed25519 secret key seed).
    pub key: [u8; 32],
    /// The node's chain code.
    pub chain_code: [u8; 32],
}

impl fmt::Debug for ExtendedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExtendedKey(<redacted>)")
    }
}

/// HMAC-SHA512 with a key of at most 32 bytes (SLIP-0010 uses a 12-byte constant and 32-byte
/// chain codes). HMAC zero-pads such keys to the 128-byte block, so padding here is exact and
/// keeps the call infallible.
fn hmac_sha512(key: &[u8; 32], parts: &[&[u8]]) -> ExtendedKey {
    let mut block = Zeroizing::new([0u8; 128]);
    block.split_at_mut(32).0.copy_from_slice(key);
    let mut mac = <Hmac<Sha512> as KeyInit>::new(&(*block).into());
    for part in parts {
        mac.update(part);
    }
    let mut out = Zeroizing::new([0u8; 64]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    let mut node = ExtendedKey {
        key: [0; 32],
        chain_code: [0; 32],
    };
    let (left, right) = out.split_at(32);
    node.key.copy_from_slice(left);
    node.chain_code.copy_from_slice(right);
    node
}

/// SLIP-0010 master node for Ed25519 from a seed.
pub fn slip10_master(seed: &[u8]) -> ExtendedKey {
    let mut key = [0u8; 32];
    key.split_at_mut(12).0.copy_from_slice(b"ed25519 seed");
    hmac_sha512(&key, &[seed])
}

/// SLIP-0010 Ed25519 derivation along `path` (every index must be hardened).
pub fn slip10_derive(seed: &[u8], path: &[u32]) -> Result<ExtendedKey, AccountError> {
    if let Some(&bad) = path.iter().find(|&&i| i & HARDENED == 0) {
        return Err(AccountError::NonHardened(bad));
    }
    let mut node = slip10_master(seed);
    for &index in path {
        node = hmac_sha512(&node.chain_code, &[&[0u8], &node.key, &index.to_be_bytes()]);
    }
    Ok(node)
}

/// A seed phrase and the keys derived from it.
///
/// ```
/// use payloads::account::Account;
/// let phrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
/// let a = Account::restore(phrase, "").unwrap();
/// let b = Account::restore(phrase, "").unwrap();
/// assert_eq!(a.chat_public_key(), b.chat_public_key());
/// assert_ne!(a.chat_public_key(), Account::restore(phrase, "other").unwrap().chat_public_key());
/// ```
pub struct Account {
    phrase: Zeroizing<String>,
    chat_key: ExtendedKey,
    database_key: ExtendedKey,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("chat_public_key", &hex_lower(&self.chat_public_key()))
            .finish_non_exhaustive()
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Account {
    /// Creates a new account with fresh entropy from `rng`.
    pub fn generate(
        rng: &mut impl CryptoRng,
        words: WordCount,
        passphrase: &str,
    ) -> Result<Account, AccountError> {
        let mut entropy = Zeroizing::new([0u8; 32]);
        let len = match words {
            WordCount::Twelve => 16,
            WordCount::TwentyFour => 32,
        };
        let slice = entropy.get_mut(..len).ok_or(AccountError::WordCount(0))?;
        rng.fill_bytes(slice);
        let mnemonic = bip39::Mnemonic::from_entropy(slice)
            .map_err(|e| AccountError::InvalidPhrase(e.to_string()))?;
        Self::from_mnemonic(&mnemonic, passphrase)
    }

    /// Restores an account from its English seed phrase (12 or 24 words) and passphrase.
    pub fn restore(phrase: &str, passphrase: &str) -> Result<Account, AccountError> {
        let count = phrase.split_whitespace().count();
        if count != 12 && count != 24 {
            return Err(AccountError::WordCount(count));
        }
        let normalised = Zeroizing::new(phrase.split_whitespace().collect::<Vec<_>>().join(" "));
        let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &normalised)
            .map_err(|e| AccountError::InvalidPhrase(e.to_string()))?;
        Self::from_mnemonic(&mnemonic, passphrase)
    }

    fn from_mnemonic(
        mnemonic: &bip39::Mnemonic,
        passphrase: &str,
    ) -> Result<Account, AccountError> {
        let seed = Zeroizing::new(mnemonic.to_seed_normalized(passphrase));
        Ok(Account {
            phrase: Zeroizing::new(mnemonic.to_string()),
            chat_key: slip10_derive(seed.as_slice(), &CHAT_KEY_PATH)?,
            database_key: slip10_derive(seed.as_slice(), &DATABASE_KEY_PATH)?,
        })
    }

    /// The seed phrase. Secret: show it only when the user asks for it.
    pub fn phrase(&self) -> &str {
        &self.phrase
    }

    /// The chat key's Ed25519 secret key seed. Secret.
    pub fn chat_secret_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.chat_key.key)
    }

    /// The public chat key (Ed25519 public key bytes).
    pub fn chat_public_key(&self) -> [u8; 32] {
        SigningKey::from_bytes(&self.chat_key.key)
            .verifying_key()
            .to_bytes()
    }

    /// The 32-byte key that encrypts the local database. Secret.
    pub fn database_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.database_key.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// SLIP-0010's published Ed25519 test vectors 1 and 2: (seed, path, chain code, private key).
    #[test]
    fn slip10_published_ed25519_vectors() {
        let v1 = "000102030405060708090a0b0c0d0e0f";
        let v2 = "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542";
        let cases: &[(&str, &[u32], &str, &str)] = &[
            (
                v1,
                &[],
                "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
                "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
            ),
            (
                v1,
                &[0],
                "8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
                "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
            ),
            (
                v1,
                &[0, 1],
                "a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
                "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
            ),
            (
                v1,
                &[0, 1, 2],
                "2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
                "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
            ),
            (
                v1,
                &[0, 1, 2, 2],
                "8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
                "30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
            ),
            (
                v1,
                &[0, 1, 2, 2, 1_000_000_000],
                "68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
                "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
            ),
            (
                v2,
                &[],
                "ef70a74db9c3a5af931b5fe73ed8e1a53464133654fd55e7a66f8570b8e33c3b",
                "171cb88b1b3c1db25add599712e36245d75bc65a1a5c9e18d76f9f2b1eab4012",
            ),
            (
                v2,
                &[0],
                "0b78a3226f915c082bf118f83618a618ab6dec793752624cbeb622acb562862d",
                "1559eb2bbec5790b0c65d8693e4d0875b1747f4970ae8b650486ed7470845635",
            ),
            (
                v2,
                &[0, 2_147_483_647],
                "138f0b2551bcafeca6ff2aa88ba8ed0ed8de070841f0c4ef0165df8181eaad7f",
                "ea4f5bfe8694d8bb74b7b59404632fd5968b774ed545e810de9c32a4fb4192f4",
            ),
            (
                v2,
                &[0, 2_147_483_647, 1],
                "73bd9fff1cfbde33a1b846c27085f711c0fe2d66fd32e139d3ebc28e5a4a6b90",
                "3757c7577170179c7868353ada796c839135b3d30554bbb74a4b1e4a5a58505c",
            ),
            (
                v2,
                &[0, 2_147_483_647, 1, 2_147_483_646],
                "0902fe8a29f9140480a00ef244bd183e8a13288e4412d8389d140aac1794825a",
                "5837736c89570de861ebc173b1086da4f505d4adb387c6a1b1342d5e4ac9ec72",
            ),
            (
                v2,
                &[0, 2_147_483_647, 1, 2_147_483_646, 2],
                "5d70af781f3a37b829f0d060924d5e960bdc02e85423494afc0b1a41bbe196d4",
                "551d333177df541ad876a60ea71f00447931c0a9da16f227c11ea080d7391b8d",
            ),
        ];
        for (seed, path, chain, key) in cases {
            let hardened: Vec<u32> = path.iter().map(|i| i | HARDENED).collect();
            let node = slip10_derive(&h(seed), &hardened).unwrap();
            assert_eq!(node.chain_code.to_vec(), h(chain), "chain code at {path:?}");
            assert_eq!(node.key.to_vec(), h(key), "key at {path:?}");
        }
    }

    #[test]
    fn slip10_vector1_public_key_of_master() {
        // SLIP-0010 lists the public key with a 0x00 prefix; the Ed25519 key is the rest.
        let node = slip10_master(&h("000102030405060708090a0b0c0d0e0f"));
        let public = SigningKey::from_bytes(&node.key).verifying_key().to_bytes();
        assert_eq!(
            public.to_vec(),
            h("a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed")
        );
    }

    #[test]
    fn non_hardened_paths_are_refused() {
        assert!(matches!(
            slip10_derive(&[0; 16], &[HARDENED, 5]),
            Err(AccountError::NonHardened(5))
        ));
    }

    /// BIP-39's published English vectors (passphrase "TREZOR"): entropy, phrase, seed.
    #[test]
    fn bip39_published_vectors() {
        let cases = [
            (
                "00000000000000000000000000000000",
                "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
                "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
            ),
            (
                "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
                "legal winner thank year wave sausage worth useful legal winner thank yellow",
                "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607",
            ),
            (
                "ffffffffffffffffffffffffffffffff",
                "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
                "ac27495480225222079d7be181583751e86f571027b0497b5b5d11218e0a8a13332572917f0f8e5a589620c6f15b11c61dee327651a14c34e18231052e48c069",
            ),
            (
                "0000000000000000000000000000000000000000000000000000000000000000",
                "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art",
                "bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8",
            ),
        ];
        for (entropy, phrase, seed) in cases {
            let m = bip39::Mnemonic::from_entropy(&h(entropy)).unwrap();
            assert_eq!(m.to_string(), phrase);
            assert_eq!(m.to_seed_normalized("TREZOR").to_vec(), h(seed));
            // Restoring goes through the same seed, so it derives from exactly that seed.
            let account = Account::restore(phrase, "TREZOR").unwrap();
            let expected = slip10_derive(&h(seed), &CHAT_KEY_PATH).unwrap();
            assert_eq!(*account.chat_secret_key(), expected.key);
            let db = slip10_derive(&h(seed), &DATABASE_KEY_PATH).unwrap();
            assert_eq!(*account.database_key(), db.key);
            assert_ne!(*account.database_key(), *account.chat_secret_key());
        }
    }

    #[test]
    fn restore_is_deterministic_and_rejects_bad_phrases() {
        use rand_chacha::ChaCha20Rng;
        use rand_core::SeedableRng;
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for words in [WordCount::Twelve, WordCount::TwentyFour] {
            let a = Account::generate(&mut rng, words, "pw").unwrap();
            let expected = match words {
                WordCount::Twelve => 12,
                WordCount::TwentyFour => 24,
            };
            assert_eq!(a.phrase().split(' ').count(), expected);
            let b = Account::restore(&format!("  {}  ", a.phrase()), "pw").unwrap();
            assert_eq!(a.chat_public_key(), b.chat_public_key());
            assert_eq!(*a.database_key(), *b.database_key());
        }
        assert!(matches!(
            Account::restore("abandon about", ""),
            Err(AccountError::WordCount(2))
        ));
        // Valid words, bad checksum.
        let bad = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon";
        assert!(matches!(
            Account::restore(bad, ""),
            Err(AccountError::InvalidPhrase(_))
        ));
        let unknown = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon qwerty";
        assert!(matches!(
            Account::restore(unknown, ""),
            Err(AccountError::InvalidPhrase(_))
        ));
    }

    #[test]
    fn debug_prints_nothing_secret() {
        let phrase = "legal winner thank year wave sausage worth useful legal winner thank yellow";
        let a = Account::restore(phrase, "").unwrap();
        let shown = format!("{a:?}");
        assert!(!shown.contains("legal"));
        assert!(!shown.contains(&hex_lower(&*a.chat_secret_key())));
        assert!(!shown.contains(&hex_lower(&*a.database_key())));
        assert!(shown.contains(&hex_lower(&a.chat_public_key())));
        assert_eq!(
            format!("{:?}", slip10_master(&[1; 16])),
            "ExtendedKey(<redacted>)"
        );
    }
}
