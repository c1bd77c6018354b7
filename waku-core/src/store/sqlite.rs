//! The SQLite archive, the embedded default of a full node (rusqlite with the bundled SQLite).
//!
//! # Schema (version 1, in `PRAGMA user_version`)
//!
//! ```sql
//! CREATE TABLE topics (
//!     id INTEGER PRIMARY KEY,
//!     pubsub_topic TEXT NOT NULL,
//!     content_topic TEXT NOT NULL,
//!     UNIQUE (pubsub_topic, content_topic)
//! );
//! CREATE TABLE messages (
//!     id INTEGER PRIMARY KEY,
//!     hash BLOB NOT NULL UNIQUE,          -- the 14/ hash: dedup, cursors, presence queries
//!     topic INTEGER NOT NULL,             -- topics.id
//!     timestamp INTEGER NOT NULL,         -- Unix ns
//!     message BLOB NOT NULL               -- the encoded WakuMessage
//! );
//! CREATE INDEX messages_by_topic ON messages (topic, timestamp, hash);
//! CREATE INDEX messages_by_time ON messages (timestamp, hash);
//! ```
//!
//! Topic pairs are interned so the topic index stays narrow (a small integer, the timestamp and
//! the hash). A query on content topics walks `messages_by_topic` once per topic, each walk
//! bounded by the page size, and merges the walks; a query on time alone walks
//! `messages_by_time`, which also serves retention; hash lookups use the `hash` unique index.
//!
//! # Durability
//!
//! The database runs in WAL mode. Every [`MessageStore`] write is one transaction, so a batch
//! is all-or-nothing; with [`Durability::Full`] (the default) the WAL is synced at every commit,
//! so a message is on disk when [`MessageStore::insert`] returns `Ok`, even across a power
//! loss. [`Durability::Normal`] syncs only at checkpoints: an application crash still loses
//! nothing, a power loss may lose the last commits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    ArchivedMessage, Criteria, Direction, MessageStore, PageRequest, Position, StoreError,
};
use crate::message::{MessageHash, WakuMessage};
use crate::topic::PubsubTopic;

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// How many (pubsub, content) topic ids are remembered in memory. Topics beyond it are looked up
/// in the database; the map is cleared when it fills, so it never holds more than this.
pub const MAX_TOPIC_CACHE: usize = 4096;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS topics (
    id INTEGER PRIMARY KEY,
    pubsub_topic TEXT NOT NULL,
    content_topic TEXT NOT NULL,
    UNIQUE (pubsub_topic, content_topic)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    topic INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    message BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_topic ON messages (topic, timestamp, hash);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (timestamp, hash);
";

/// When the WAL is synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: every commit is synced; nothing acknowledged is lost on power loss.
    #[default]
    Full,
    /// `synchronous = NORMAL`: synced at checkpoints; safe against application crashes.
    Normal,
}

/// Settings of the SQLite archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteStoreConfig {
    /// When commits reach the disk.
    pub durability: Durability,
    /// The page cache, in KiB (`PRAGMA cache_size = -N`).
    pub cache_kib: u32,
}

impl Default for SqliteStoreConfig {
    fn default() -> Self {
        SqliteStoreConfig {
            durability: Durability::Full,
            cache_kib: 64 * 1024,
        }
    }
}

/// The SQLite archive (see the module docs for the schema and durability).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: Option<PathBuf>,
    /// pubsub topic → content topic → id; looked up without allocating.
    topics: BTreeMap<String, BTreeMap<String, i64>>,
    cached_topics: usize,
}

impl SqliteStore {
    /// Opens (creating if needed) the archive at `path`.
    pub fn open(path: impl AsRef<Path>, config: &SqliteStoreConfig) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path)?;
        SqliteStore::init(conn, Some(path), config)
    }

    /// An archive in memory (no file; for tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        SqliteStore::init(
            Connection::open_in_memory()?,
            None,
            &SqliteStoreConfig::default(),
        )
    }

    fn init(
        conn: Connection,
        path: Option<PathBuf>,
        config: &SqliteStoreConfig,
    ) -> Result<Self, StoreError> {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if path.is_some() && !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database(format!(
                "could not enable WAL mode (got {mode})"
            )));
        }
        let sync = match config.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {sync}; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{}; PRAGMA wal_autocheckpoint = 8192;",
            config.cache_kib
        ))?;
        conn.set_prepared_statement_cache_capacity(64);
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        match version {
            0 => {
                conn.execute_batch(&format!(
                    "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))?;
            }
            SCHEMA_VERSION => {}
            v => {
                return Err(StoreError::Database(format!(
                    "archive schema version {v} is not supported (this build reads {SCHEMA_VERSION})"
                )));
            }
        }
        Ok(SqliteStore {
            conn,
            path,
            topics: BTreeMap::new(),
            cached_topics: 0,
        })
    }

    /// The database file, if the archive is on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `PRAGMA integrity_check`; `Ok` when SQLite finds nothing wrong.
    pub fn integrity_check(&mut self) -> Result<(), StoreError> {
        let r: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if r == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(r))
        }
    }

    /// The connection, for the fault injector.
    pub(crate) fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    fn cached_topic(&self, pubsub: &str, content: &str) -> Option<i64> {
        cached(&self.topics, pubsub, content)
    }

    fn remember_topic(&mut self, pubsub: String, content: String, id: i64) {
        if self.cached_topics >= MAX_TOPIC_CACHE {
            self.topics.clear();
            self.cached_topics = 0;
        }
        if self
            .topics
            .entry(pubsub)
            .or_default()
            .insert(content, id)
            .is_none()
        {
            self.cached_topics += 1;
        }
    }

    /// Runs a write; if it fails with a transaction still open (an interrupted `BEGIN` or
    /// `COMMIT` can leave one behind), rolls it back so the connection stays usable.
    fn write<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = op(self);
        if result.is_err() && !self.conn.is_autocommit() {
            // Best effort: if even the rollback fails, the next write reports the problem.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    fn insert_batch(&mut self, batch: &[ArchivedMessage]) -> Result<usize, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        // Topic ids learned inside the transaction join the cache only once it commits: a rolled
        // back id could later name another topic.
        let mut learned: Vec<(String, String, i64)> = Vec::new();
        let mut inserted = 0usize;
        let cache = &self.topics;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut find_topic = tx.prepare_cached(
                "SELECT id FROM topics WHERE pubsub_topic = ?1 AND content_topic = ?2",
            )?;
            let mut add_topic = tx.prepare_cached(
                "INSERT INTO topics (pubsub_topic, content_topic) VALUES (?1, ?2)",
            )?;
            let mut add = tx.prepare_cached(
                "INSERT OR IGNORE INTO messages (hash, topic, timestamp, message) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for m in batch {
                let pubsub = m.pubsub_topic.as_str();
                let content = m.message.content_topic.as_str();
                let known = cached(cache, pubsub, content).or_else(|| {
                    learned
                        .iter()
                        .find(|(p, c, _)| p == pubsub && c == content)
                        .map(|(_, _, id)| *id)
                });
                let topic = match known {
                    Some(id) => id,
                    None => {
                        let found: Option<i64> = find_topic
                            .query_row(params![pubsub, content], |r| r.get(0))
                            .optional()?;
                        let id = match found {
                            Some(id) => id,
                            None => {
                                add_topic.execute(params![pubsub, content])?;
                                tx.last_insert_rowid()
                            }
                        };
                        learned.push((pubsub.to_owned(), content.to_owned(), id));
                        id
                    }
                };
                inserted += add.execute(params![
                    m.hash.as_bytes().as_slice(),
                    topic,
                    m.timestamp(),
                    m.message.encode()
                ])?;
            }
        }
        tx.commit()?;
        for (p, c, id) in learned {
            self.remember_topic(p, c, id);
        }
        Ok(inserted)
    }

    fn lookup_topic(&mut self, pubsub: &str, content: &str) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self.cached_topic(pubsub, content) {
            return Ok(Some(id));
        }
        let id: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM topics WHERE pubsub_topic = ?1 AND content_topic = ?2")?
            .query_row(params![pubsub, content], |r| r.get(0))
            .optional()?;
        if let Some(id) = id {
            self.remember_topic(pubsub.to_owned(), content.to_owned(), id);
        }
        Ok(id)
    }
}

fn cached(
    map: &BTreeMap<String, BTreeMap<String, i64>>,
    pubsub: &str,
    content: &str,
) -> Option<i64> {
    map.get(pubsub).and_then(|m| m.get(content)).copied()
}

fn decode_row(hash: &[u8], pubsub: String, blob: &[u8]) -> Result<ArchivedMessage, StoreError> {
    let hash = MessageHash::from_slice(hash)
        .ok_or_else(|| StoreError::Corrupt(format!("hash of {} bytes", hash.len())))?;
    let pubsub_topic = PubsubTopic::new(pubsub).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let message = WakuMessage::decode(blob).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(ArchivedMessage {
        hash,
        pubsub_topic,
        message,
    })
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl MessageStore for SqliteStore {
    fn insert(&mut self, batch: &[ArchivedMessage]) -> Result<usize, StoreError> {
        self.write(|s| s.insert_batch(batch))
    }

    fn position(&mut self, hash: &MessageHash) -> Result<Option<Position>, StoreError> {
        let ts: Option<i64> = self
            .conn
            .prepare_cached("SELECT timestamp FROM messages WHERE hash = ?1")?
            .query_row(params![hash.as_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        Ok(ts.map(|timestamp| Position {
            timestamp,
            hash: *hash,
        }))
    }

    fn page(&mut self, req: &PageRequest<'_>) -> Result<Vec<ArchivedMessage>, StoreError> {
        let (order, cmp) = match req.direction {
            Direction::Forward => ("ASC", ">"),
            Direction::Backward => ("DESC", "<"),
        };
        match req.criteria {
            Criteria::Hashes(hashes) => {
                let mut found = Vec::new();
                {
                    let mut stmt = self.conn.prepare_cached(
                        "SELECT m.timestamp, t.pubsub_topic, m.message FROM messages m JOIN topics t ON t.id = m.topic WHERE m.hash = ?1",
                    )?;
                    for h in hashes {
                        let row = stmt
                            .query_row(params![h.as_bytes().as_slice()], |r| {
                                Ok((
                                    r.get::<_, i64>(0)?,
                                    r.get::<_, String>(1)?,
                                    r.get::<_, Vec<u8>>(2)?,
                                ))
                            })
                            .optional()?;
                        if let Some((timestamp, pubsub, blob)) = row {
                            let pos = Position {
                                timestamp,
                                hash: *h,
                            };
                            if super::is_past(&pos, req.after.as_ref(), req.direction) {
                                found.push((pos, pubsub, blob));
                            }
                        }
                    }
                }
                found.sort_by_key(|f| f.0);
                if req.direction == Direction::Backward {
                    found.reverse();
                }
                found.truncate(req.limit);
                found
                    .into_iter()
                    .map(|(pos, pubsub, blob)| decode_row(pos.hash.as_bytes(), pubsub, &blob))
                    .collect()
            }
            Criteria::Content { topics, time } => {
                let Some((lo, hi)) = time.inclusive() else {
                    return Ok(Vec::new());
                };
                let cursor_sql = if req.after.is_some() {
                    format!(" AND (m.timestamp, m.hash) {cmp} (?4, ?5)")
                } else {
                    String::new()
                };
                let (after_ts, after_hash) = match &req.after {
                    Some(a) => (a.timestamp, a.hash.as_bytes().to_vec()),
                    None => (0, Vec::new()),
                };
                let limit = limit_param(req.limit);
                match topics {
                    None => {
                        let sql = format!(
                            "SELECT m.hash, t.pubsub_topic, m.message FROM messages m JOIN topics t ON t.id = m.topic \
                             WHERE m.timestamp BETWEEN ?1 AND ?2{cursor_sql} \
                             ORDER BY m.timestamp {order}, m.hash {order} LIMIT ?3"
                        );
                        let mut stmt = self.conn.prepare_cached(&sql)?;
                        let mut rows = if req.after.is_some() {
                            stmt.query(params![lo, hi, limit, after_ts, after_hash])?
                        } else {
                            stmt.query(params![lo, hi, limit])?
                        };
                        let mut out = Vec::new();
                        while let Some(r) = rows.next()? {
                            let hash: Vec<u8> = r.get(0)?;
                            out.push(decode_row(&hash, r.get(1)?, &r.get::<_, Vec<u8>>(2)?)?);
                        }
                        Ok(out)
                    }
                    Some(f) => {
                        let pubsub = f.pubsub_topic.as_str();
                        let mut ids = Vec::new();
                        for ct in &f.content_topics {
                            if let Some(id) = self.lookup_topic(pubsub, ct.as_str())? {
                                ids.push(id);
                            }
                        }
                        let sql = format!(
                            "SELECT m.hash, m.timestamp, m.message FROM messages m \
                             WHERE m.topic = ?6 AND m.timestamp BETWEEN ?1 AND ?2{cursor_sql} \
                             ORDER BY m.timestamp {order}, m.hash {order} LIMIT ?3"
                        );
                        let mut stmt = self.conn.prepare_cached(&sql)?;
                        let mut all: Vec<(Position, Vec<u8>)> = Vec::new();
                        for id in ids {
                            let mut rows = stmt.query(params![
                                lo,
                                hi,
                                limit,
                                after_ts,
                                after_hash.as_slice(),
                                id
                            ])?;
                            while let Some(r) = rows.next()? {
                                let hash: Vec<u8> = r.get(0)?;
                                let hash = MessageHash::from_slice(&hash).ok_or_else(|| {
                                    StoreError::Corrupt(format!("hash of {} bytes", hash.len()))
                                })?;
                                all.push((
                                    Position {
                                        timestamp: r.get(1)?,
                                        hash,
                                    },
                                    r.get(2)?,
                                ));
                            }
                        }
                        all.sort_by_key(|f| f.0);
                        if req.direction == Direction::Backward {
                            all.reverse();
                        }
                        all.truncate(req.limit);
                        all.into_iter()
                            .map(|(pos, blob)| {
                                decode_row(pos.hash.as_bytes(), pubsub.to_owned(), &blob)
                            })
                            .collect()
                    }
                }
            }
        }
    }

    fn delete_before(&mut self, cutoff: i64) -> Result<u64, StoreError> {
        self.write(|s| {
            let n = s
                .conn
                .prepare_cached("DELETE FROM messages WHERE timestamp < ?1")?
                .execute(params![cutoff])?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
    }

    fn truncate(&mut self, max: u64) -> Result<u64, StoreError> {
        self.write(|s| s.truncate_oldest(max))
    }

    fn count(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl SqliteStore {
    fn truncate_oldest(&mut self, max: u64) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let count: i64 = tx.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
        let excess = u64::try_from(count).unwrap_or(0).saturating_sub(max);
        let n = if excess > 0 {
            tx.prepare_cached(
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY timestamp, hash LIMIT ?1)",
            )?
            .execute(params![i64::try_from(excess).unwrap_or(i64::MAX)])?
        } else {
            0
        };
        tx.commit()?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }
}
