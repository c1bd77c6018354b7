//! The encrypted on-disk backend: one SQLCipher database file per account.
//!
//! # Layout
//!
//! One SQLite database, encrypted page by page by SQLCipher 4 (AES-256 in CBC mode per page,
//! HMAC-SHA512 over each page, its number and IV), holds:
//!
//! - `schema_version`: one row, the version of the layout below (see [`SCHEMA_VERSION`]).
//! - One table per [`Table`], named [`Table::name`]: `key BLOB PRIMARY KEY, value BLOB NOT
//!   NULL`, `WITHOUT ROWID` (the key is the row's only index). [`Storage::commit`] is one
//!   `BEGIN IMMEDIATE … COMMIT`; [`Storage::load`] reads each table in key order.
//! - The MVDS node's `mvds_*` tables, written by `mvds::SqliteStore` over its own keyed
//!   connection to the same file ([`SqlCipherSyncStore`]). mvds's public API is unchanged: the
//!   store is built with `mvds::SqliteStore::from_connection` from a connection this module
//!   opened and keyed. Both connections run in WAL mode, so the two writers take turns (the
//!   Messenger never writes through both at once).
//!
//! # The hand-off from MVDS to the chat log
//!
//! MVDS acknowledges a message once it is in its store, and removes it from its store when it
//! hands it to the Messenger (`mvds::Node::poll_event`); the Messenger then writes it to its chat
//! log. With two separate commits, a crash between them would lose an acknowledged message for
//! good. A pair opened with [`SqlCipherStorage::open_pair`] closes that gap: the sync store
//! holds back each event removal (`PopEvent`), and the storage applies the held-back removals
//! inside the transaction of the Messenger's next commit that writes to
//! [`Table::Messages`], which, for a delivered chat message, is the commit that stores it. So
//! either the message is in the chat log and out of the MVDS queue, or still in the queue and
//! handed over again on the next start (the Messenger ignores a message it already has, and
//! group and reaction updates are idempotent; an acknowledgement can be reported twice). At
//! most [`MAX_HELD_BACK_POPS`] removals wait; beyond that they are applied at once, as without
//! the pairing. Removals still waiting when the storage is dropped are not applied: dropping
//! cannot tell a clean stop from an abandoned, failed storage.
//!
//! # Key
//!
//! The key is the account's 32-byte database key (`Account::database_key`, SLIP-0010 path
//! `m/43'/60'/1581'/1'/0'`), given to SQLCipher as a raw key (`PRAGMA key = "x'…'"`), so there
//! is no passphrase stretching on open: the key already has full entropy. The SQL text holding
//! it lives in a zeroizing buffer and is never part of an error or a log line;
//! `PRAGMA cipher_log_level = NONE` keeps SQLCipher's own logging silent. Temporary tables and
//! indices stay in memory (the bundled build sets `SQLITE_TEMP_STORE=2`), and the WAL file is
//! encrypted like the database.
//!
//! # Failures
//!
//! A wrong key, a file that is not a status-rs database, and a damaged first page are the same
//! thing to SQLCipher (the first page does not authenticate): [`StorageError::WrongKey`] on
//! open. A page that fails authentication later (a flipped bit, a truncated file, pages from
//! another file) is [`StorageError::Tampered`] from whichever call read it; [`Storage::load`]
//! reads every table, so a Messenger does not start on a damaged database, and
//! [`SqlCipherStorage::check_integrity`] checks every page.
//!
//! # Durability
//!
//! WAL mode with `synchronous = FULL`: when [`Storage::commit`] returns, the batch is on disk
//! (fsync'd), and a crash at any point of a commit leaves either the whole batch or none of it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use zeroize::Zeroizing;

use mvds::store::{Snapshot, StoreOp};
use mvds::{StoreError, SyncStore};

use super::{Dump, Storage, StorageError, StorageOp, Table};
use crate::messenger::PeerKey;

/// Most MVDS event removals held back for the next chat-log write (see the module docs). An
/// event removal is 8 bytes; the bound keeps a Messenger that receives only non-message events
/// from growing the list without end.
pub const MAX_HELD_BACK_POPS: usize = 65_536;

/// The mvds SQLite layout whose `mvds_events (seq)` table the hand-off writes to.
const MVDS_SCHEMA_WITH_EVENTS: i64 = 1;

/// Event removals shared by a storage and its sync store.
#[derive(Debug, Clone, Default)]
struct HandOff(Arc<Mutex<Vec<u64>>>);

impl HandOff {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<u64>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The schema migrations, in order: entry `i` takes the database from version `i` to `i + 1`.
/// Each runs in the same transaction as the version bump, so a database is always at exactly
/// one version. Never edit a released entry; append a new one.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the Messenger's first tables.
    "CREATE TABLE meta (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
     CREATE TABLE prekeys (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
     CREATE TABLE sessions (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
     CREATE TABLE contacts (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
     CREATE TABLE chats (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
     CREATE TABLE messages (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
     CREATE TABLE groups (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;",
    // 1 -> 2: reactions and the outbox of unacknowledged sends survive restarts.
    "CREATE TABLE reactions (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
     CREATE TABLE outbox (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;",
];

/// The layout version this code writes and reads.
#[allow(clippy::cast_possible_truncation)] // a handful of migrations
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Largest record value read back, in bytes. The Messenger's largest records (a group's event
/// history, a chat message with an image) stay far below; a larger one cannot have been written
/// by it, and refusing it keeps one record from taking an unbounded share of memory.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// How long a connection waits for the other connection's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The Messenger's [`Storage`] in a SQLCipher database (see the module docs).
pub struct SqlCipherStorage {
    conn: Connection,
    path: PathBuf,
    hand_off: Option<HandOff>,
}

/// The Messenger's MVDS store in the same encrypted file as its [`SqlCipherStorage`]: an
/// `mvds::SqliteStore` over its own keyed connection, which, when opened with
/// [`SqlCipherStorage::open_pair`], holds event removals back for the storage (see the module
/// docs).
pub struct SqlCipherSyncStore {
    inner: mvds::SqliteStore<PeerKey>,
    hand_off: Option<HandOff>,
}

impl core::fmt::Debug for SqlCipherSyncStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SqlCipherSyncStore")
            .field("inner", &self.inner)
            .field("paired", &self.hand_off.is_some())
            .finish()
    }
}

impl SqlCipherSyncStore {
    /// How many event removals wait for the storage's next chat-log write.
    pub fn held_back(&self) -> usize {
        self.hand_off.as_ref().map_or(0, |h| h.with(|v| v.len()))
    }
}

impl SyncStore<PeerKey> for SqlCipherSyncStore {
    fn load(&mut self) -> Result<Snapshot<PeerKey>, StoreError> {
        self.inner.load()
    }

    fn is_known(&mut self, id: &mvds::MessageId) -> Result<bool, StoreError> {
        self.inner.is_known(id)
    }

    fn commit(&mut self, ops: Vec<StoreOp<PeerKey>>) -> Result<(), StoreError> {
        let Some(hand_off) = &self.hand_off else {
            return self.inner.commit(ops);
        };
        let room = MAX_HELD_BACK_POPS.saturating_sub(hand_off.with(|v| v.len()));
        let pops = ops
            .iter()
            .filter(|op| matches!(op, StoreOp::PopEvent { .. }))
            .count();
        if pops == 0 || pops > room {
            return self.inner.commit(ops);
        }
        let mut held = Vec::with_capacity(pops);
        let rest: Vec<StoreOp<PeerKey>> = ops
            .into_iter()
            .filter_map(|op| match op {
                StoreOp::PopEvent { seq } => {
                    held.push(seq);
                    None
                }
                other => Some(other),
            })
            .collect();
        if !rest.is_empty() {
            self.inner.commit(rest)?;
        }
        hand_off.with(|v| v.extend(held));
        Ok(())
    }
}

impl core::fmt::Debug for SqlCipherStorage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SqlCipherStorage")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Maps a SQLite error from a keyed connection: a page that does not authenticate or does not
/// parse is tampering, anything else a backend failure.
fn sql_err(e: rusqlite::Error) -> StorageError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StorageError::Tampered(e.to_string())
        }
        _ => StorageError::Backend(e.to_string()),
    }
}

/// Opens `path` (creating it if needed) and keys the connection with `key`, then checks the key
/// by reading the schema. WAL mode, `synchronous = FULL`.
pub(crate) fn keyed_connection(path: &Path, key: &[u8; 32]) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StorageError::Backend(format!("cannot open {}: {e}", path.display())))?;
    // Is this SQLCipher at all? (A plain SQLite build ignores `PRAGMA key` and would write the
    // file in the clear.)
    let version: Option<String> = conn
        .query_row("PRAGMA cipher_version", [], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    if version.is_none() {
        return Err(StorageError::Backend(
            "the linked SQLite is not SQLCipher; refusing to write an unencrypted database".into(),
        ));
    }
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")
        .map_err(sql_err)?;
    let mut sql = Zeroizing::new(String::with_capacity(80));
    sql.push_str("PRAGMA key = \"x'");
    for b in key {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for nibble in [b >> 4, b & 0x0f] {
            sql.push(char::from(*HEX.get(usize::from(nibble)).unwrap_or(&b'0')));
        }
    }
    sql.push_str("'\";");
    // The error text could quote the statement, and with it the key: report a fixed message.
    conn.execute_batch(&sql)
        .map_err(|_| StorageError::Backend("setting the database key failed".into()))?;
    drop(sql);
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => {}
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            return Err(StorageError::WrongKey);
        }
        Err(e) => return Err(sql_err(e)),
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sql_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::Backend(format!(
            "could not switch to WAL mode (journal_mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
    Ok(conn)
}

/// The schema version recorded in `conn` (0 for a database without the version table).
fn read_version(conn: &Connection) -> Result<u32, StorageError> {
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql_err)?
        > 0;
    if !has_table {
        return Ok(0);
    }
    let v: Option<i64> = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    let v = v.unwrap_or(0);
    u32::try_from(v).map_err(|_| StorageError::Corrupt {
        table: Table::Meta,
        reason: format!("schema version {v}"),
    })
}

/// Brings `conn` to [`SCHEMA_VERSION`], one migration at a time, all in one transaction.
fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let found = read_version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(StorageError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             id INTEGER PRIMARY KEY CHECK (id = 0),
             version INTEGER NOT NULL
         );",
    )
    .map_err(sql_err)?;
    let pending = MIGRATIONS.get(found as usize..).unwrap_or(&[]);
    for (i, sql) in pending.iter().enumerate() {
        tx.execute_batch(sql).map_err(|e| {
            StorageError::Backend(format!(
                "migration to version {} failed: {e}",
                found as usize + i + 1
            ))
        })?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO schema_version (id, version) VALUES (0, ?1)",
        [i64::from(SCHEMA_VERSION)],
    )
    .map_err(sql_err)?;
    tx.commit().map_err(sql_err)
}

impl SqlCipherStorage {
    /// Opens (creating if needed) the encrypted database at `path` with the account's database
    /// key, and migrates it to [`SCHEMA_VERSION`].
    ///
    /// # Errors
    /// [`StorageError::WrongKey`] if `key` does not open the file (another account's key, not
    /// a status-rs database, or a damaged first page); [`StorageError::SchemaTooNew`] for a
    /// database written by a newer status-rs; [`StorageError::Tampered`] or
    /// [`StorageError::Backend`] otherwise.
    pub fn open(path: impl AsRef<Path>, key: &[u8; 32]) -> Result<Self, StorageError> {
        let path = path.as_ref();
        let mut conn = keyed_connection(path, key)?;
        migrate(&mut conn)?;
        Ok(SqlCipherStorage {
            conn,
            path: path.to_path_buf(),
            hand_off: None,
        })
    }

    /// Opens the Messenger's MVDS store in the same encrypted file, over a second keyed
    /// connection (`mvds::SqliteStore::from_connection`, which adds its `mvds_*` tables), on
    /// its own: event removals are committed at once. A Messenger should use
    /// [`SqlCipherStorage::open_pair`].
    ///
    /// # Errors
    /// As [`SqlCipherStorage::open`]; an MVDS schema error is [`StorageError::Backend`].
    pub fn open_sync_store(
        path: impl AsRef<Path>,
        key: &[u8; 32],
    ) -> Result<SqlCipherSyncStore, StorageError> {
        let conn = keyed_connection(path.as_ref(), key)?;
        let inner = mvds::SqliteStore::from_connection(conn)
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        Ok(SqlCipherSyncStore {
            inner,
            hand_off: None,
        })
    }

    /// Both stores a Messenger needs, in the one file at `path`, paired so that MVDS hands a
    /// message to the chat log atomically (see the module docs).
    ///
    /// # Errors
    /// As [`SqlCipherStorage::open`].
    pub fn open_pair(
        path: impl AsRef<Path>,
        key: &[u8; 32],
    ) -> Result<(SqlCipherStorage, SqlCipherSyncStore), StorageError> {
        let mut storage = Self::open(path.as_ref(), key)?;
        let mut sync = Self::open_sync_store(path.as_ref(), key)?;
        // Only pair with the mvds layout whose event table this module knows.
        let mvds_version: Option<i64> = sync
            .inner
            .connection()
            .query_row(
                "SELECT value FROM mvds_meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)?;
        if mvds_version == Some(MVDS_SCHEMA_WITH_EVENTS) {
            let hand_off = HandOff::default();
            storage.hand_off = Some(hand_off.clone());
            sync.hand_off = Some(hand_off);
        }
        Ok((storage, sync))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layout version of the open database (always [`SCHEMA_VERSION`] after
    /// [`SqlCipherStorage::open`]).
    ///
    /// # Errors
    /// [`StorageError`].
    pub fn schema_version(&self) -> Result<u32, StorageError> {
        read_version(&self.conn)
    }

    /// Authenticates every page of the file (`PRAGMA cipher_integrity_check`) and checks the
    /// B-trees (`PRAGMA quick_check`).
    ///
    /// # Errors
    /// [`StorageError::Tampered`] naming the first problem found.
    pub fn check_integrity(&self) -> Result<(), StorageError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA cipher_integrity_check")
            .map_err(sql_err)?;
        let problem: Option<String> = stmt
            .query_row([], |r| r.get(0))
            .optional()
            .map_err(sql_err)?;
        if let Some(p) = problem {
            return Err(StorageError::Tampered(p));
        }
        let quick: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sql_err)?;
        if quick != "ok" {
            return Err(StorageError::Tampered(quick));
        }
        Ok(())
    }

    fn load_table(
        &self,
        table: Table,
    ) -> Result<std::collections::BTreeMap<Vec<u8>, Vec<u8>>, StorageError> {
        let mut out = std::collections::BTreeMap::new();
        let sql = format!("SELECT key, value FROM {} ORDER BY key", table.name());
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err)?;
        let mut rows = stmt.query([]).map_err(sql_err)?;
        while let Some(row) = rows.next().map_err(sql_err)? {
            let corrupt = |reason: &str| StorageError::Corrupt {
                table,
                reason: reason.to_owned(),
            };
            let key = row
                .get_ref(0)
                .map_err(sql_err)?
                .as_blob()
                .map_err(|_| corrupt("key is not a blob"))?;
            let value = row
                .get_ref(1)
                .map_err(sql_err)?
                .as_blob()
                .map_err(|_| corrupt("value is not a blob"))?;
            if value.len() > MAX_RECORD_BYTES || key.len() > MAX_RECORD_BYTES {
                return Err(corrupt("record larger than MAX_RECORD_BYTES"));
            }
            out.insert(key.to_vec(), value.to_vec());
        }
        Ok(out)
    }
}

impl Storage for SqlCipherStorage {
    fn load(&mut self) -> Result<Dump, StorageError> {
        let mut dump = Dump::new();
        for table in Table::ALL {
            let records = self.load_table(table)?;
            if !records.is_empty() {
                dump.insert(table, records);
            }
        }
        Ok(dump)
    }

    fn commit(&mut self, ops: Vec<StorageOp>) -> Result<(), StorageError> {
        let writes_message = ops.iter().any(|op| {
            matches!(
                op,
                StorageOp::Put {
                    table: Table::Messages,
                    ..
                }
            )
        });
        let pops: Vec<u64> = match &self.hand_off {
            Some(h) if writes_message => h.with(|v| v.clone()),
            _ => Vec::new(),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        for op in &ops {
            match op {
                StorageOp::Put { table, key, value } => {
                    let sql = format!(
                        "INSERT OR REPLACE INTO {} (key, value) VALUES (?1, ?2)",
                        table.name()
                    );
                    tx.prepare_cached(&sql)
                        .and_then(|mut s| s.execute(params![key, value]))
                        .map_err(sql_err)?;
                }
                StorageOp::Delete { table, key } => {
                    let sql = format!("DELETE FROM {} WHERE key = ?1", table.name());
                    tx.prepare_cached(&sql)
                        .and_then(|mut s| s.execute(params![key]))
                        .map_err(sql_err)?;
                }
            }
        }
        for seq in &pops {
            // mvds stores the sequence number's bits as an INTEGER.
            let bits = i64::from_ne_bytes(seq.to_ne_bytes());
            tx.prepare_cached("DELETE FROM mvds_events WHERE seq = ?1")
                .and_then(|mut s| s.execute([bits]))
                .map_err(sql_err)?;
        }
        tx.commit().map_err(sql_err)?;
        if let (Some(h), false) = (&self.hand_off, pops.is_empty()) {
            h.with(|v| v.retain(|s| !pops.contains(s)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("status-rs-sqlcipher-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
        p
    }

    #[test]
    fn every_table_exists_after_migrations() {
        let path = tmp("tables.db");
        let mut s = SqlCipherStorage::open(&path, &[7; 32]).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let ops = Table::ALL
            .iter()
            .map(|&table| StorageOp::Put {
                table,
                key: table.name().as_bytes().to_vec(),
                value: vec![1],
            })
            .collect();
        s.commit(ops).unwrap();
        let dump = s.load().unwrap();
        assert_eq!(dump.len(), Table::ALL.len());
        s.check_integrity().unwrap();
        drop(s);
        let _ = std::fs::remove_file(&path);
    }
}
