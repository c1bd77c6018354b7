//! Where the Messenger keeps its state: a small transactional key-value interface.
//!
//! The Messenger writes records into a few [`Table`]s and commits each change as one atomic batch
//! of [`StorageOp`]s ([`Storage::commit`]); on start it reads every table back
//! ([`Storage::load`]). Records are opaque bytes whose layout the Messenger owns (documented on
//! [`crate::messenger`]). Secrets inside them (prekeys, ratchet sessions) are already encrypted
//! with pickle keys derived from the account's database key, so even this in-memory backend never
//! holds them in the clear.
//!
//! The interface is shaped for an encrypted on-disk database (SQLCipher, WIRE.md B.24): one SQL
//! table per [`Table`] with a `BLOB` primary key and a `BLOB` value, [`Storage::commit`] as one
//! transaction, [`Storage::load`] as one `SELECT` per table. The MVDS state lives in its own
//! `mvds::SyncStore`, which can share the same database connection
//! (`mvds::SqliteStore::from_connection`).
//!
//! Two backends: [`MemoryStorage`] (tests, nodes that need not survive the process) and
//! [`SqlCipherStorage`], the encrypted database file that also holds the MVDS state
//! ([`SqlCipherStorage::open_pair`]; layout, key handling and failure modes on the type).

mod sqlcipher;

use std::collections::BTreeMap;

pub use self::sqlcipher::{
    MAX_HELD_BACK_POPS, MAX_RECORD_BYTES, SCHEMA_VERSION, SqlCipherStorage, SqlCipherSyncStore,
};

/// The tables the Messenger uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Table {
    /// Single values: the installation id, the last time the node was online, the chat key.
    Meta,
    /// The prekey store (an encrypted x3dh pickle).
    PreKeys,
    /// One record per contact: the secure-transport state (encrypted ratchet pickles).
    Sessions,
    /// One record per contact: whether it was added, and its latest bundle.
    Contacts,
    /// One record per chat: its kind and Lamport clock.
    Chats,
    /// One record per chat message, keyed by chat, clock and id: the signed envelope.
    Messages,
    /// One record per private group: its event history.
    Groups,
    /// One record per (chat, message, sender, emoji): the latest reaction, so counts and
    /// retractions survive a restart.
    Reactions,
    /// One record per sent MVDS message whose acknowledgement is still awaited: which chat
    /// message it carries, so an ack after a restart still raises `Delivered`.
    Outbox,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 9] = [
        Table::Meta,
        Table::PreKeys,
        Table::Sessions,
        Table::Contacts,
        Table::Chats,
        Table::Messages,
        Table::Groups,
        Table::Reactions,
        Table::Outbox,
    ];

    /// The table's name (for a SQL backend).
    pub const fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::PreKeys => "prekeys",
            Table::Sessions => "sessions",
            Table::Contacts => "contacts",
            Table::Chats => "chats",
            Table::Messages => "messages",
            Table::Groups => "groups",
            Table::Reactions => "reactions",
            Table::Outbox => "outbox",
        }
    }
}

/// One change in a batch.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageOp {
    /// Insert or replace a record.
    Put {
        /// The table.
        table: Table,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Delete a record (no error if absent).
    Delete {
        /// The table.
        table: Table,
        /// The key.
        key: Vec<u8>,
    },
}

impl core::fmt::Debug for StorageOp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StorageOp::Put { table, key, value } => f
                .debug_struct("Put")
                .field("table", table)
                .field("key_len", &key.len())
                .field("value_len", &value.len())
                .finish(),
            StorageOp::Delete { table, key } => f
                .debug_struct("Delete")
                .field("table", table)
                .field("key_len", &key.len())
                .finish(),
        }
    }
}

/// A storage failure. The Messenger stops using a storage that failed and reports it; the
/// application reopens it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The backend failed (I/O, database error, …).
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// A record could not be read back (corrupt, or from another account).
    #[error("corrupt record in {table:?}: {reason}")]
    Corrupt {
        /// The table.
        table: Table,
        /// What is wrong.
        reason: String,
    },
    /// The key does not open the database: it belongs to another account, the file is not a
    /// status-rs database, or its first page is damaged (SQLCipher cannot tell these apart).
    #[error(
        "the database key does not open this file (another account's database, not a database, or a damaged header)"
    )]
    WrongKey,
    /// A page of the database failed authentication or its structure check: the file was
    /// altered, truncated or damaged outside status-rs.
    #[error("the database file is damaged or was tampered with: {0}")]
    Tampered(String),
    /// The database was written by a newer status-rs (a later schema version).
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// The version in the file.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
}

/// Everything a storage holds, table by table, keys in ascending order.
pub type Dump = BTreeMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>;

/// A transactional key-value store for the Messenger's state.
pub trait Storage {
    /// Reads every record.
    ///
    /// # Errors
    /// [`StorageError`].
    fn load(&mut self) -> Result<Dump, StorageError>;

    /// Applies `ops` atomically, in order: all or nothing.
    ///
    /// # Errors
    /// [`StorageError`]; nothing was applied.
    fn commit(&mut self, ops: Vec<StorageOp>) -> Result<(), StorageError>;
}

/// A storage in memory, for tests and nodes that need not survive the process. Clone it to
/// "restart" from the same state.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    tables: Dump,
    commits: u64,
    fail_after: Option<u64>,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many batches were committed.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// How many records `table` holds.
    pub fn len(&self, table: Table) -> usize {
        self.tables.get(&table).map_or(0, BTreeMap::len)
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.tables.values().all(BTreeMap::is_empty)
    }

    /// Makes every commit after the next `n` fail (to test failure handling).
    pub fn fail_after(&mut self, n: u64) {
        self.fail_after = Some(self.commits + n);
    }

    /// The raw records of `table` (to check what is stored, e.g. that no secret is in the clear).
    pub fn records(&self, table: Table) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.tables
            .get(&table)
            .into_iter()
            .flat_map(|t| t.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    }
}

impl Storage for MemoryStorage {
    fn load(&mut self) -> Result<Dump, StorageError> {
        Ok(self.tables.clone())
    }

    fn commit(&mut self, ops: Vec<StorageOp>) -> Result<(), StorageError> {
        if self.fail_after.is_some_and(|n| self.commits >= n) {
            return Err(StorageError::Backend("injected failure".into()));
        }
        for op in ops {
            match op {
                StorageOp::Put { table, key, value } => {
                    self.tables.entry(table).or_default().insert(key, value);
                }
                StorageOp::Delete { table, key } => {
                    if let Some(t) = self.tables.get_mut(&table) {
                        t.remove(&key);
                    }
                }
            }
        }
        self.commits += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_apply_in_order_and_fail_whole() {
        let mut s = MemoryStorage::new();
        s.commit(vec![
            StorageOp::Put {
                table: Table::Meta,
                key: b"a".to_vec(),
                value: b"1".to_vec(),
            },
            StorageOp::Put {
                table: Table::Meta,
                key: b"a".to_vec(),
                value: b"2".to_vec(),
            },
            StorageOp::Put {
                table: Table::Chats,
                key: b"c".to_vec(),
                value: b"x".to_vec(),
            },
        ])
        .unwrap();
        s.commit(vec![StorageOp::Delete {
            table: Table::Chats,
            key: b"c".to_vec(),
        }])
        .unwrap();
        let dump = s.load().unwrap();
        assert_eq!(dump[&Table::Meta][&b"a".to_vec()], b"2");
        assert_eq!(s.len(Table::Chats), 0);
        s.fail_after(0);
        assert!(
            s.commit(vec![StorageOp::Delete {
                table: Table::Meta,
                key: b"a".to_vec(),
            }])
            .is_err()
        );
        assert_eq!(s.len(Table::Meta), 1);
        assert_eq!(Table::ALL.len(), 9);
    }
}
