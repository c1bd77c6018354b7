//! `keygen` and `account show`: creating an account and showing its public identity.
//!
//! Secrets (the seed phrase, the passphrase) are read from files, never from arguments, so they
//! stay out of shell history and the process list; they are held in zeroizing buffers. Nothing
//! here writes an account to disk: the encrypted account store comes with issue 11.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use payloads::account::{Account, AccountError, WordCount};
use payloads::verification::{pseudonym, safety_number};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use x3dh::PublicIdentity;
use zeroize::Zeroizing;

use crate::cli::{KeygenArgs, ShowArgs, Words};

/// Largest phrase or passphrase file read, in bytes. A 24-word English phrase is under 220
/// bytes; 4 KiB leaves room for long passphrases while refusing to slurp a wrong, large file
/// into memory.
pub(crate) const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// Why an account command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AccountCmdError {
    /// A phrase or passphrase file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file (`-` for standard input).
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A phrase or passphrase file is larger than [`MAX_SECRET_FILE_BYTES`].
    #[error("{path} is larger than {MAX_SECRET_FILE_BYTES} bytes; is it really a seed phrase?")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A phrase or passphrase file is not UTF-8 text.
    #[error("{path} is not UTF-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {0}")]
    Randomness(String),
    /// The phrase was rejected (bad word, checksum or length).
    #[error("{0}")]
    Account(#[from] AccountError),
    /// The derived chat key did not parse as a public identity (cannot happen for a valid
    /// Ed25519 secret key, but reported rather than assumed).
    #[error("derived chat key is invalid: {0}")]
    ChatKey(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Write(#[from] io::Error),
}

/// Reads a small secret file (`-` for standard input) into a zeroizing string.
fn read_secret(path: &Path) -> Result<Zeroizing<String>, AccountCmdError> {
    let read_err = |source| AccountCmdError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Zeroizing::new(Vec::new());
    let limit = MAX_SECRET_FILE_BYTES + 1;
    if path.as_os_str() == "-" {
        io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
    } else {
        File::open(path)
            .map_err(read_err)?
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
    }
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(AccountCmdError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| AccountCmdError::NotText {
        path: path.to_path_buf(),
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// The passphrase from an optional file, without its final line break; empty without a file.
fn read_passphrase(path: Option<&Path>) -> Result<Zeroizing<String>, AccountCmdError> {
    let Some(path) = path else {
        return Ok(Zeroizing::new(String::new()));
    };
    let text = read_secret(path)?;
    let trimmed = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(Zeroizing::new(trimmed.to_owned()))
}

/// Writes the public identity of `account`: chat key, three words, safety number.
fn write_identity(account: &Account, out: &mut impl Write) -> Result<(), AccountCmdError> {
    let identity = PublicIdentity::from_bytes(&account.chat_public_key())
        .map_err(|e| AccountCmdError::ChatKey(e.to_string()))?;
    writeln!(out, "Chat key:       {}", identity.to_chat_key())?;
    writeln!(out, "Three words:    {}", pseudonym(&identity))?;
    writeln!(out, "Safety number:  {}", safety_number(&identity))?;
    Ok(())
}

/// `status-node keygen`: a new account from OS randomness, its identity, then its seed phrase.
pub(crate) fn keygen(args: &KeygenArgs, out: &mut impl Write) -> Result<(), AccountCmdError> {
    let passphrase = read_passphrase(args.passphrase_file.as_deref())?;
    // A ChaCha20 stream seeded once from the OS, so a failing OS source is an error, not a panic.
    let mut rng = ChaCha20Rng::try_from_rng(&mut rand::rngs::SysRng)
        .map_err(|e| AccountCmdError::Randomness(e.to_string()))?;
    let words = match args.words {
        Words::Twelve => WordCount::Twelve,
        Words::TwentyFour => WordCount::TwentyFour,
    };
    let account = Account::generate(&mut rng, words, &passphrase)?;
    write_identity(&account, out)?;
    let count = account.phrase().split_whitespace().count();
    writeln!(out)?;
    writeln!(
        out,
        "WARNING: the seed phrase below is the account. Anyone who sees it controls the chat key\n\
         and can read the local database; if it is lost, the account cannot be recovered.\n\
         Write it down, keep it offline, and never share it or paste it into a chat."
    )?;
    if !passphrase.is_empty() {
        writeln!(
            out,
            "The account also needs the passphrase you gave; the phrase alone restores a different one."
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Seed phrase ({count} words):")?;
    writeln!(out, "  {}", account.phrase())?;
    Ok(())
}

/// `status-node account show`: the public identity of a phrase, nothing secret.
pub(crate) fn show(args: &ShowArgs, out: &mut impl Write) -> Result<(), AccountCmdError> {
    let phrase = read_secret(&args.phrase_file)?;
    let passphrase = read_passphrase(args.passphrase_file.as_deref())?;
    let account = Account::restore(&phrase, &passphrase)?;
    write_identity(&account, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHRASE: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    #[test]
    fn identity_is_stable_and_public_only() {
        let account = Account::restore(PHRASE, "").unwrap();
        let mut a = Vec::new();
        write_identity(&account, &mut a).unwrap();
        let mut b = Vec::new();
        write_identity(&Account::restore(PHRASE, "").unwrap(), &mut b).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        assert!(!text.contains("abandon"));
        assert!(!text.contains(&hex_of(&account.chat_secret_key()[..])));
        assert!(text.contains(&format!("0x{}", hex_of(&account.chat_public_key()))));
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
