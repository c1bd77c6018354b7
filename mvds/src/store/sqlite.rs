//! The SQLite backend.

use std::marker::PhantomData;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{RecordKind, Snapshot, StoreOp, StoredEvent, StoredMessage, StoredRecord, SyncStore};
use crate::error::StoreError;
use crate::id::{GroupId, MessageId};
use crate::node::Delivery;

/// The schema this code writes; stored under `schema_version` in `mvds_meta`.
const SCHEMA_VERSION: i64 = 1;

/// Tables are prefixed `mvds_` so the database can be shared with the rest of the application
/// (status-go keeps MVDS state in the same database as everything else, WIRE.md B.24).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mvds_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mvds_members (
    group_id BLOB NOT NULL,
    peer BLOB NOT NULL,
    PRIMARY KEY (group_id, peer)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mvds_records (
    peer BLOB NOT NULL,
    message_id BLOB NOT NULL,
    kind INTEGER NOT NULL,
    group_id BLOB,
    send_count INTEGER NOT NULL,
    next_epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (peer, message_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mvds_messages (
    id BLOB PRIMARY KEY,
    group_id BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mvds_known (
    id BLOB PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mvds_events (
    seq INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    peer BLOB NOT NULL,
    message_id BLOB NOT NULL,
    group_id BLOB,
    timestamp INTEGER,
    body BLOB
);
";

/// How a peer id is written to the database.
pub trait PeerBytes: Sized {
    /// The bytes stored for this peer.
    fn to_peer_bytes(&self) -> Vec<u8>;
    /// The peer stored as `bytes`; `None` if they are not a valid encoding.
    fn from_peer_bytes(bytes: &[u8]) -> Option<Self>;
}

impl PeerBytes for [u8; 32] {
    fn to_peer_bytes(&self) -> Vec<u8> {
        self.to_vec()
    }
    fn from_peer_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok()
    }
}

impl PeerBytes for Vec<u8> {
    fn to_peer_bytes(&self) -> Vec<u8> {
        self.clone()
    }
    fn from_peer_bytes(bytes: &[u8]) -> Option<Self> {
        Some(bytes.to_vec())
    }
}

impl PeerBytes for u64 {
    fn to_peer_bytes(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }
    fn from_peer_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(u64::from_be_bytes)
    }
}

impl PeerBytes for String {
    fn to_peer_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    fn from_peer_bytes(bytes: &[u8]) -> Option<Self> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

/// SQLite's `synchronous` setting for the store's connection (in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Each commit is on disk when it returns, even across a power cut. The default.
    #[default]
    Full,
    /// A commit survives a crash of the process but the last ones may be lost on power loss;
    /// then a peer retransmits what was lost, but a delivery could be repeated. Faster.
    Normal,
}

/// A [`SyncStore`] in a SQLite database, in WAL mode.
pub struct SqliteStore<P> {
    conn: Connection,
    _peer: PhantomData<fn() -> P>,
}

impl<P> core::fmt::Debug for SqliteStore<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.conn.path())
            .finish_non_exhaustive()
    }
}

fn bits(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

fn unbits(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn message_id(b: &[u8]) -> Result<MessageId, StoreError> {
    MessageId::from_slice(b).ok_or_else(|| corrupt("message id length"))
}

fn group_id(b: &[u8]) -> Result<GroupId, StoreError> {
    GroupId::from_slice(b).ok_or_else(|| corrupt("group id length"))
}

fn peer<P: PeerBytes>(b: &[u8]) -> Result<P, StoreError> {
    P::from_peer_bytes(b).ok_or_else(|| corrupt("peer id"))
}

const fn kind_code(k: RecordKind) -> i64 {
    match k {
        RecordKind::Offer => 1,
        RecordKind::Request => 2,
        RecordKind::Message => 3,
    }
}

fn kind_from(c: i64) -> Result<RecordKind, StoreError> {
    match c {
        1 => Ok(RecordKind::Offer),
        2 => Ok(RecordKind::Request),
        3 => Ok(RecordKind::Message),
        _ => Err(corrupt("record kind")),
    }
}

const EVENT_DELIVERED: i64 = 1;
const EVENT_ACKED: i64 = 2;
const EVENT_EXPIRED: i64 = 3;

impl<P> SqliteStore<P> {
    /// Opens (creating if needed) the database at `path` in WAL mode.
    pub fn open(path: impl AsRef<Path>, sync: Synchronous) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "could not switch to WAL mode (journal_mode is {mode})"
            )));
        }
        let level = match sync {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", level)?;
        Self::from_connection(conn)
    }

    /// Uses an open connection (for example the application's own database), creating the
    /// `mvds_*` tables if needed. The caller chooses its pragmas.
    pub fn from_connection(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let found: Option<i64> = conn
            .query_row(
                "SELECT value FROM mvds_meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match found {
            None => {
                conn.execute(
                    "INSERT INTO mvds_meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION],
                )?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Schema {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(_) => {}
        }
        Ok(SqliteStore {
            conn,
            _peer: PhantomData,
        })
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl<P: PeerBytes> SyncStore<P> for SqliteStore<P> {
    fn load(&mut self) -> Result<Snapshot<P>, StoreError> {
        let c = &self.conn;
        let epoch: Option<i64> = c
            .query_row("SELECT value FROM mvds_meta WHERE key = 'epoch'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let mut snap = Snapshot {
            epoch: epoch.map_or(0, unbits),
            ..Snapshot::default()
        };

        let mut st = c.prepare("SELECT group_id, peer FROM mvds_members")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (g, p) = row?;
            snap.members.push((group_id(&g)?, peer(&p)?));
        }

        let mut st = c.prepare(
            "SELECT peer, message_id, kind, group_id, send_count, next_epoch, seq
             FROM mvds_records ORDER BY seq",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        for row in rows {
            let (p, id, kind, g, count, next, seq) = row?;
            snap.records.push(StoredRecord {
                peer: peer(&p)?,
                id: message_id(&id)?,
                kind: kind_from(kind)?,
                group: g.as_deref().map(group_id).transpose()?,
                send_count: u32::try_from(count).map_err(|_| corrupt("send count"))?,
                next_epoch: unbits(next),
                seq: unbits(seq),
            });
        }

        let mut st = c.prepare("SELECT id, group_id, timestamp, body FROM mvds_messages")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        for row in rows {
            let (id, g, timestamp, body) = row?;
            snap.messages.push((
                message_id(&id)?,
                StoredMessage {
                    group: group_id(&g)?,
                    timestamp,
                    body,
                },
            ));
        }

        let mut st = c.prepare(
            "SELECT seq, kind, peer, message_id, group_id, timestamp, body
             FROM mvds_events ORDER BY seq",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<Vec<u8>>>(6)?,
            ))
        })?;
        for row in rows {
            let (seq, kind, p, id, g, timestamp, body) = row?;
            let (p, id) = (peer(&p)?, message_id(&id)?);
            let event = match kind {
                EVENT_DELIVERED => StoredEvent::Delivered(Delivery {
                    from: p,
                    id,
                    group: group_id(g.as_deref().ok_or_else(|| corrupt("event group"))?)?,
                    timestamp: timestamp.ok_or_else(|| corrupt("event timestamp"))?,
                    body: body.ok_or_else(|| corrupt("event body"))?,
                }),
                EVENT_ACKED => StoredEvent::Acked { peer: p, id },
                EVENT_EXPIRED => StoredEvent::Expired { peer: p, id },
                _ => return Err(corrupt("event kind")),
            };
            snap.events.push((unbits(seq), event));
        }
        Ok(snap)
    }

    fn is_known(&mut self, id: &MessageId) -> Result<bool, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM mvds_known WHERE id = ?1")?;
        Ok(st.exists([&id.0[..]])?)
    }

    fn commit(&mut self, ops: Vec<StoreOp<P>>) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for op in ops {
            match op {
                StoreOp::SetEpoch(e) => {
                    tx.prepare_cached(
                        "INSERT INTO mvds_meta (key, value) VALUES ('epoch', ?1)
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    )?
                    .execute([bits(e)])?;
                }
                StoreOp::AddMember { group, peer } => {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO mvds_members (group_id, peer) VALUES (?1, ?2)",
                    )?
                    .execute(params![&group.0[..], peer.to_peer_bytes()])?;
                }
                StoreOp::RemoveMember { group, peer } => {
                    tx.prepare_cached(
                        "DELETE FROM mvds_members WHERE group_id = ?1 AND peer = ?2",
                    )?
                    .execute(params![&group.0[..], peer.to_peer_bytes()])?;
                }
                StoreOp::PutRecord(r) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO mvds_records
                         (peer, message_id, kind, group_id, send_count, next_epoch, seq)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        r.peer.to_peer_bytes(),
                        &r.id.0[..],
                        kind_code(r.kind),
                        r.group.as_ref().map(|g| g.0.to_vec()),
                        i64::from(r.send_count),
                        bits(r.next_epoch),
                        bits(r.seq),
                    ])?;
                }
                StoreOp::DeleteRecord { peer, id } => {
                    tx.prepare_cached(
                        "DELETE FROM mvds_records WHERE peer = ?1 AND message_id = ?2",
                    )?
                    .execute(params![peer.to_peer_bytes(), &id.0[..]])?;
                }
                StoreOp::PutMessage { id, message } => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO mvds_messages (id, group_id, timestamp, body)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        &id.0[..],
                        &message.group.0[..],
                        message.timestamp,
                        message.body
                    ])?;
                }
                StoreOp::DeleteMessage { id } => {
                    tx.prepare_cached("DELETE FROM mvds_messages WHERE id = ?1")?
                        .execute([&id.0[..]])?;
                }
                StoreOp::MarkKnown { id } => {
                    tx.prepare_cached("INSERT OR IGNORE INTO mvds_known (id) VALUES (?1)")?
                        .execute([&id.0[..]])?;
                }
                StoreOp::PushEvent { seq, event } => {
                    let (kind, p, id, g, ts, body) = match event {
                        StoredEvent::Delivered(d) => (
                            EVENT_DELIVERED,
                            d.from,
                            d.id,
                            Some(d.group.0.to_vec()),
                            Some(d.timestamp),
                            Some(d.body),
                        ),
                        StoredEvent::Acked { peer, id } => {
                            (EVENT_ACKED, peer, id, None, None, None)
                        }
                        StoredEvent::Expired { peer, id } => {
                            (EVENT_EXPIRED, peer, id, None, None, None)
                        }
                    };
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO mvds_events
                         (seq, kind, peer, message_id, group_id, timestamp, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        bits(seq),
                        kind,
                        p.to_peer_bytes(),
                        &id.0[..],
                        g,
                        ts,
                        body
                    ])?;
                }
                StoreOp::PopEvent { seq } => {
                    tx.prepare_cached("DELETE FROM mvds_events WHERE seq = ?1")?
                        .execute([bits(seq)])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn temp_path(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mvds-sqlite-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("sync.db")
    }

    fn sample_ops() -> Vec<StoreOp<[u8; 32]>> {
        let g = GroupId([3; 32]);
        vec![
            StoreOp::SetEpoch(u64::MAX - 1),
            StoreOp::AddMember {
                group: g,
                peer: [1; 32],
            },
            StoreOp::AddMember {
                group: g,
                peer: [2; 32],
            },
            StoreOp::RemoveMember {
                group: g,
                peer: [2; 32],
            },
            StoreOp::PutRecord(StoredRecord {
                peer: [1; 32],
                id: MessageId([9; 32]),
                kind: RecordKind::Offer,
                group: Some(g),
                send_count: 3,
                next_epoch: u64::MAX,
                seq: 7,
            }),
            StoreOp::PutRecord(StoredRecord {
                peer: [1; 32],
                id: MessageId([8; 32]),
                kind: RecordKind::Request,
                group: None,
                send_count: 0,
                next_epoch: 5,
                seq: 8,
            }),
            StoreOp::PutRecord(StoredRecord {
                peer: [4; 32],
                id: MessageId([8; 32]),
                kind: RecordKind::Request,
                group: None,
                send_count: 0,
                next_epoch: 5,
                seq: 9,
            }),
            StoreOp::DeleteRecord {
                peer: [4; 32],
                id: MessageId([8; 32]),
            },
            StoreOp::PutMessage {
                id: MessageId([9; 32]),
                message: StoredMessage {
                    group: g,
                    timestamp: -5,
                    body: b"body".to_vec(),
                },
            },
            StoreOp::PutMessage {
                id: MessageId([10; 32]),
                message: StoredMessage {
                    group: g,
                    timestamp: 5,
                    body: vec![],
                },
            },
            StoreOp::DeleteMessage {
                id: MessageId([10; 32]),
            },
            StoreOp::MarkKnown {
                id: MessageId([9; 32]),
            },
            StoreOp::PushEvent {
                seq: 1,
                event: StoredEvent::Delivered(Delivery {
                    from: [5; 32],
                    id: MessageId([6; 32]),
                    group: g,
                    timestamp: 99,
                    body: vec![1, 2, 3],
                }),
            },
            StoreOp::PushEvent {
                seq: 2,
                event: StoredEvent::Acked {
                    peer: [1; 32],
                    id: MessageId([6; 32]),
                },
            },
            StoreOp::PushEvent {
                seq: 3,
                event: StoredEvent::Expired {
                    peer: [1; 32],
                    id: MessageId([7; 32]),
                },
            },
            StoreOp::PopEvent { seq: 2 },
        ]
    }

    #[test]
    fn sqlite_matches_memory_and_survives_reopen() {
        let path = temp_path("reopen");
        let mut mem = MemoryStore::new();
        mem.commit(sample_ops()).unwrap();
        {
            let mut db = SqliteStore::<[u8; 32]>::open(&path, Synchronous::Full).unwrap();
            db.commit(sample_ops()).unwrap();
            let mut got = db.load().unwrap();
            let mut want = mem.load().unwrap();
            got.records.sort_by_key(|r| r.seq);
            want.records.sort_by_key(|r| r.seq);
            assert_eq!(got, want);
        }
        let mut db = SqliteStore::<[u8; 32]>::open(&path, Synchronous::Normal).unwrap();
        let mut got = db.load().unwrap();
        let mut want = mem.load().unwrap();
        got.records.sort_by_key(|r| r.seq);
        want.records.sort_by_key(|r| r.seq);
        assert_eq!(got, want);
        assert!(db.is_known(&MessageId([9; 32])).unwrap());
        assert!(!db.is_known(&MessageId([10; 32])).unwrap());
        let mode: String = db
            .connection()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode.to_ascii_lowercase(), "wal");
    }

    #[test]
    fn failed_transaction_applies_nothing() {
        let path = temp_path("atomic");
        let mut db = SqliteStore::<[u8; 32]>::open(&path, Synchronous::Full).unwrap();
        db.commit(vec![StoreOp::SetEpoch(4)]).unwrap();
        // A peer id that the table accepts but a later statement fails: drop a table mid-way.
        db.connection()
            .execute_batch("DROP TABLE mvds_known")
            .unwrap();
        let err = db.commit(vec![
            StoreOp::SetEpoch(9),
            StoreOp::MarkKnown {
                id: MessageId([1; 32]),
            },
        ]);
        assert!(err.is_err());
        assert_eq!(db.load().unwrap().epoch, 4);
    }

    #[test]
    fn newer_schema_is_refused() {
        let path = temp_path("schema");
        drop(SqliteStore::<u64>::open(&path, Synchronous::Full).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE mvds_meta SET value = 99 WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        assert!(matches!(
            SqliteStore::<u64>::from_connection(conn),
            Err(StoreError::Schema { found: 99, .. })
        ));
    }
}
