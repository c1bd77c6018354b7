//! `keygen` and `account new|restore|show`: creating an account, keeping it in a data
//! directory, and showing its public identity.
//!
//! Secrets (the seed phrase, the passphrase) are read from files, never from arguments, so they
//! stay out of shell history and the process list; they are held in zeroizing buffers.
//!
//! # The data directory
//!
//! `--data-dir`, default [`default_data_dir`], created with mode 0700. The account lives in it
//! the way an SSH private key lives in `~/.ssh`: readable by its owner only, so `run` and
//! `chat` reopen it without asking for the phrase.
//!
//! | file | mode | what |
//! |---|---|---|
//! | `account.phrase` | 0600 | the seed phrase, one line (written last: its presence means an account) |
//! | `account.passphrase` | 0600 | the BIP-39 passphrase, only if the account has one |
//! | `account.pub` | 0644 | the public chat key (`0x…`), to catch a phrase swapped for another |
//! | `messenger.db` | 0600 | the Messenger's state and MVDS state, SQLCipher-encrypted with the account's database key (`payloads::storage::SqlCipherStorage`) |
//!
//! Anyone who can read `account.phrase` has the account; the database on its own is
//! unreadable without the phrase. [`open_data_dir`] refuses a phrase or passphrase file that
//! others can read (like `ssh` with a private key).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use payloads::account::{Account, AccountError, WordCount};
use payloads::storage::{SqlCipherStorage, SqlCipherSyncStore, StorageError};
use payloads::verification::{pseudonym, safety_number};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use x3dh::PublicIdentity;
use zeroize::Zeroizing;

use crate::cli::{AccountCommand, KeygenArgs, NewArgs, RestoreArgs, ShowArgs, Words};

/// The seed phrase file in a data directory.
pub(crate) const PHRASE_FILE: &str = "account.phrase";
/// The passphrase file in a data directory (only for accounts with a passphrase).
pub(crate) const PASSPHRASE_FILE: &str = "account.passphrase";
/// The public chat key file in a data directory.
pub(crate) const PUBLIC_FILE: &str = "account.pub";
/// The encrypted Messenger database in a data directory.
pub(crate) const DATABASE_FILE: &str = "messenger.db";

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
    /// The data directory holds no account.
    #[error(
        "no account in {dir}: create one with `status-node account new --data-dir {dir}` or \
         restore one with `status-node account restore --phrase-file FILE --data-dir {dir}`"
    )]
    NoAccount {
        /// The data directory.
        dir: PathBuf,
    },
    /// `account new|restore` into a data directory that already holds a different account.
    #[error("{dir} already holds an account (chat key {chat_key}); use another --data-dir")]
    AccountExists {
        /// The data directory.
        dir: PathBuf,
        /// The chat key of the account already there.
        chat_key: String,
    },
    /// The phrase in the data directory does not give the chat key recorded next to it.
    #[error(
        "the phrase in {dir} does not match its recorded chat key {recorded}: the files were mixed up"
    )]
    Mismatch {
        /// The data directory.
        dir: PathBuf,
        /// The chat key in `account.pub`.
        recorded: String,
    },
    /// A secret file can be read by others.
    #[error("{path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`")]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Creating or writing a file of the data directory failed.
    #[error("cannot write {path}: {source}")]
    WriteFile {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The encrypted database could not be opened (wrong account, damaged, I/O).
    #[error("cannot open the database {path}: {source}")]
    Storage {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: StorageError,
    },
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

/// A ChaCha20 stream seeded once from the OS, so a failing OS source is an error, not a panic.
fn os_rng() -> Result<ChaCha20Rng, AccountCmdError> {
    ChaCha20Rng::try_from_rng(&mut rand::rngs::SysRng)
        .map_err(|e| AccountCmdError::Randomness(e.to_string()))
}

fn word_count(words: Words) -> WordCount {
    match words {
        Words::Twelve => WordCount::Twelve,
        Words::TwentyFour => WordCount::TwentyFour,
    }
}

/// The warning and the seed phrase, as printed when an account is created.
fn write_phrase(
    account: &Account,
    has_passphrase: bool,
    out: &mut impl Write,
) -> Result<(), AccountCmdError> {
    let count = account.phrase().split_whitespace().count();
    writeln!(out)?;
    writeln!(
        out,
        "WARNING: the seed phrase below is the account. Anyone who sees it controls the chat key\n\
         and can read the local database; if it is lost, the account cannot be recovered.\n\
         Write it down, keep it offline, and never share it or paste it into a chat."
    )?;
    if has_passphrase {
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

/// `status-node keygen`: a new account from OS randomness, its identity, then its seed phrase.
pub(crate) fn keygen(args: &KeygenArgs, out: &mut impl Write) -> Result<(), AccountCmdError> {
    let passphrase = read_passphrase(args.passphrase_file.as_deref())?;
    let account = Account::generate(&mut os_rng()?, word_count(args.words), &passphrase)?;
    write_identity(&account, out)?;
    write_phrase(&account, !passphrase.is_empty(), out)
}

/// The data directory used when `--data-dir` is not given: `$STATUS_NODE_DATA_DIR`, else
/// `$XDG_DATA_HOME/status-node`, else `$HOME/.local/share/status-node`, else `./status-node`
/// (empty variables count as unset).
pub(crate) fn default_data_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("STATUS_NODE_DATA_DIR") {
        return d;
    }
    if let Some(d) = var("XDG_DATA_HOME") {
        return d.join("status-node");
    }
    if let Some(h) = var("HOME") {
        return h.join(".local").join("share").join("status-node");
    }
    PathBuf::from("status-node")
}

/// An account opened from its data directory, and the way to its encrypted database.
pub(crate) struct OpenedAccount {
    /// The account (phrase and derived keys; secret).
    pub(crate) account: Account,
    /// The data directory.
    pub(crate) dir: PathBuf,
}

impl std::fmt::Debug for OpenedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedAccount")
            .field("account", &self.account)
            .field("dir", &self.dir)
            .finish()
    }
}

impl OpenedAccount {
    /// The encrypted database file (`messenger.db` in the data directory).
    pub(crate) fn database_path(&self) -> PathBuf {
        self.dir.join(DATABASE_FILE)
    }

    fn storage_err(&self, source: StorageError) -> AccountCmdError {
        AccountCmdError::Storage {
            path: self.database_path(),
            source,
        }
    }

    /// Opens (creating and migrating if needed) the Messenger's encrypted storage.
    pub(crate) fn open_storage(&self) -> Result<SqlCipherStorage, AccountCmdError> {
        let key = self.account.database_key();
        let path = self.database_path();
        let storage = SqlCipherStorage::open(&path, &key).map_err(|e| self.storage_err(e))?;
        restrict_file(&path)?;
        Ok(storage)
    }

    /// Both stores a Messenger needs, paired so that a delivered message moves from the MVDS
    /// queue to the chat log atomically: `Messenger::new(config, &opened.account, storage,
    /// sync, seed, now)`.
    pub(crate) fn open_stores(
        &self,
    ) -> Result<(SqlCipherStorage, SqlCipherSyncStore), AccountCmdError> {
        let key = self.account.database_key();
        let path = self.database_path();
        let pair = SqlCipherStorage::open_pair(&path, &key).map_err(|e| self.storage_err(e))?;
        restrict_file(&path)?;
        Ok(pair)
    }
}

/// Makes a file readable by its owner only (no-op where there are no Unix permissions).
fn restrict_file(path: &Path) -> Result<(), AccountCmdError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|source| {
            AccountCmdError::WriteFile {
                path: path.to_path_buf(),
                source,
            }
        })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Refuses a secret file that others can read.
fn check_private(path: &Path) -> Result<(), AccountCmdError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(|source| AccountCmdError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(AccountCmdError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes `bytes` to `dir/name` through a temporary file, fsync and rename, so a crash leaves
/// either the old state or the whole file.
fn write_file_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    private: bool,
) -> Result<(), AccountCmdError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let werr = |p: &Path| {
        let p = p.to_path_buf();
        move |source| AccountCmdError::WriteFile { path: p, source }
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(&tmp).map_err(werr(&tmp))?;
    f.write_all(bytes).map_err(werr(&tmp))?;
    f.sync_all().map_err(werr(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(werr(&path))?;
    if let Ok(d) = File::open(dir) {
        // Makes the rename durable; not every platform can sync a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

/// The data directory: the given one or the default.
fn data_dir_of(given: Option<&Path>) -> PathBuf {
    given.map_or_else(default_data_dir, Path::to_path_buf)
}

fn chat_key_of(account: &Account) -> Result<String, AccountCmdError> {
    PublicIdentity::from_bytes(&account.chat_public_key())
        .map(|i| i.to_chat_key())
        .map_err(|e| AccountCmdError::ChatKey(e.to_string()))
}

/// Opens the account kept in `dir` (see the module docs).
///
/// # Errors
/// [`AccountCmdError::NoAccount`] if `dir` holds none; [`AccountCmdError::InsecurePermissions`]
/// if its phrase is readable by others; [`AccountCmdError::Mismatch`] if the phrase does not
/// give the recorded chat key; read and phrase errors.
pub(crate) fn open_data_dir(dir: &Path) -> Result<OpenedAccount, AccountCmdError> {
    let phrase_path = dir.join(PHRASE_FILE);
    if !phrase_path.is_file() {
        return Err(AccountCmdError::NoAccount {
            dir: dir.to_path_buf(),
        });
    }
    check_private(&phrase_path)?;
    let phrase = read_secret(&phrase_path)?;
    let passphrase_path = dir.join(PASSPHRASE_FILE);
    let passphrase = if passphrase_path.is_file() {
        check_private(&passphrase_path)?;
        read_passphrase(Some(&passphrase_path))?
    } else {
        Zeroizing::new(String::new())
    };
    let account = Account::restore(&phrase, &passphrase)?;
    if let Ok(recorded) = fs::read_to_string(dir.join(PUBLIC_FILE)) {
        let recorded = recorded.trim().to_owned();
        if recorded != chat_key_of(&account)? {
            return Err(AccountCmdError::Mismatch {
                dir: dir.to_path_buf(),
                recorded,
            });
        }
    }
    Ok(OpenedAccount {
        account,
        dir: dir.to_path_buf(),
    })
}

/// Stores `account` in `dir` (created 0700 if missing) and creates its encrypted database.
/// Refuses a directory holding another account; storing the same account again is a no-op.
fn store_account(
    dir: &Path,
    account: Account,
    passphrase: &str,
) -> Result<OpenedAccount, AccountCmdError> {
    let chat_key = chat_key_of(&account)?;
    match open_data_dir(dir) {
        Ok(existing) => {
            let existing_key = chat_key_of(&existing.account)?;
            if existing_key != chat_key {
                return Err(AccountCmdError::AccountExists {
                    dir: dir.to_path_buf(),
                    chat_key: existing_key,
                });
            }
        }
        Err(AccountCmdError::NoAccount { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|source| AccountCmdError::WriteFile {
            path: dir.to_path_buf(),
            source,
        })?;
    let opened = OpenedAccount {
        account,
        dir: dir.to_path_buf(),
    };
    // The database first: a directory holding another account's database is refused before
    // any account file is written.
    drop(opened.open_stores()?);
    if !passphrase.is_empty() {
        write_file_atomic(dir, PASSPHRASE_FILE, passphrase.as_bytes(), true)?;
    }
    write_file_atomic(dir, PUBLIC_FILE, format!("{chat_key}\n").as_bytes(), false)?;
    let mut phrase = Zeroizing::new(opened.account.phrase().to_owned());
    phrase.push('\n');
    write_file_atomic(dir, PHRASE_FILE, phrase.as_bytes(), true)?;
    Ok(opened)
}

/// `status-node account new`: a new account from OS randomness, stored in the data directory;
/// prints its identity and, once, its seed phrase.
pub(crate) fn new_account(args: &NewArgs, out: &mut impl Write) -> Result<(), AccountCmdError> {
    let dir = data_dir_of(args.data_dir.as_deref());
    if dir.join(PHRASE_FILE).exists() {
        let existing = open_data_dir(&dir)?;
        return Err(AccountCmdError::AccountExists {
            chat_key: chat_key_of(&existing.account)?,
            dir,
        });
    }
    let passphrase = read_passphrase(args.passphrase_file.as_deref())?;
    let account = Account::generate(&mut os_rng()?, word_count(args.words), &passphrase)?;
    let opened = store_account(&dir, account, &passphrase)?;
    writeln!(out, "Data dir:       {}", dir.display())?;
    write_identity(&opened.account, out)?;
    write_phrase(&opened.account, !passphrase.is_empty(), out)?;
    writeln!(out)?;
    writeln!(
        out,
        "The phrase is also kept in {} (readable by you only), so `run` and `chat` can\n\
         open the account; the database {} is encrypted with a key derived from it.",
        dir.join(PHRASE_FILE).display(),
        dir.join(DATABASE_FILE).display()
    )?;
    Ok(())
}

/// `status-node account restore`: stores the account of a seed phrase in the data directory.
pub(crate) fn restore_account(
    args: &RestoreArgs,
    out: &mut impl Write,
) -> Result<(), AccountCmdError> {
    let dir = data_dir_of(args.data_dir.as_deref());
    let phrase = read_secret(&args.phrase_file)?;
    let passphrase = read_passphrase(args.passphrase_file.as_deref())?;
    let account = Account::restore(&phrase, &passphrase)?;
    let opened = store_account(&dir, account, &passphrase)?;
    writeln!(out, "Data dir:       {}", dir.display())?;
    write_identity(&opened.account, out)
}

/// `status-node account show`: the public identity of the account in the data directory, or of
/// a phrase file; the phrase itself only with `--reveal-phrase --yes-i-understand`.
pub(crate) fn show(args: &ShowArgs, out: &mut impl Write) -> Result<(), AccountCmdError> {
    let account = if let Some(file) = &args.phrase_file {
        let phrase = read_secret(file)?;
        let passphrase = read_passphrase(args.passphrase_file.as_deref())?;
        Account::restore(&phrase, &passphrase)?
    } else {
        let dir = data_dir_of(args.data_dir.as_deref());
        let opened = open_data_dir(&dir)?;
        // The database must open with the account's key (and is created if it was removed).
        let storage = opened.open_storage()?;
        writeln!(out, "Data dir:       {}", dir.display())?;
        writeln!(
            out,
            "Database:       {} (SQLCipher, schema version {})",
            storage.path().display(),
            storage
                .schema_version()
                .map_err(|e| opened.storage_err(e))?
        )?;
        opened.account
    };
    write_identity(&account, out)?;
    if args.reveal_phrase && args.yes_i_understand {
        writeln!(out)?;
        writeln!(
            out,
            "Seed phrase ({} words; anyone who sees it controls the account):",
            account.phrase().split_whitespace().count()
        )?;
        writeln!(out, "  {}", account.phrase())?;
    }
    Ok(())
}

/// Runs an `account` subcommand.
pub(crate) fn account_command(
    command: &AccountCommand,
    out: &mut impl Write,
) -> Result<(), AccountCmdError> {
    match command {
        AccountCommand::New(args) => new_account(args, out),
        AccountCommand::Restore(args) => restore_account(args, out),
        AccountCommand::Show(args) => show(args, out),
    }
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
