//! The SQLCipher storage on its own: encryption on disk, wrong keys, tampering, schema
//! migrations, a process killed mid-commit, and random batches against `MemoryStorage`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use payloads::storage::{
    Dump, MemoryStorage, SCHEMA_VERSION, SqlCipherStorage, Storage, StorageError, StorageOp, Table,
};
use proptest::prelude::*;
use rusqlite::Connection;

const KEY: [u8; 32] = [0x5a; 32];

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sqlcipher");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    remove_db(&path);
    path
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn put(table: Table, key: &[u8], value: &[u8]) -> StorageOp {
    StorageOp::Put {
        table,
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

/// A keyed connection opened by hand (to build old layouts).
fn raw_keyed(path: &Path, key: &[u8; 32]) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(key)))
        .unwrap();
    conn
}

/// Drops empty tables, so dumps from different backends compare equal.
fn normalise(d: Dump) -> Dump {
    d.into_iter().filter(|(_, t)| !t.is_empty()).collect()
}

const MESSAGE: &str = "the quick brown fox pays the invoice 4711";

fn fill(s: &mut SqlCipherStorage, n: usize) {
    let ops = (0..n)
        .map(|i| {
            put(
                Table::Messages,
                format!("chat-{i:05}").as_bytes(),
                format!("{MESSAGE} #{i} {}", "padding ".repeat(20)).as_bytes(),
            )
        })
        .collect();
    s.commit(ops).unwrap();
}

#[test]
fn nothing_readable_on_disk_and_a_plain_sqlite_file_would_show_it() {
    let path = scratch("plaintext.db");
    let mut s = SqlCipherStorage::open(&path, &KEY).unwrap();
    fill(&mut s, 200);
    s.commit(vec![put(Table::Meta, b"copy-of-key", &KEY)])
        .unwrap();
    // Scan while open (WAL and shared-memory files included), then after closing.
    let scan = |stage: &str| {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(b) = std::fs::read(format!("{}{suffix}", path.display())) {
                bytes.extend(b);
            }
        }
        assert!(bytes.len() > 50_000, "{stage}: {} bytes", bytes.len());
        for needle in [
            MESSAGE.as_bytes(),
            b"chat-00042".as_slice(),
            b"SQLite format 3".as_slice(),
            b"CREATE TABLE".as_slice(),
            &KEY[..16],
        ] {
            assert!(!contains(&bytes, needle), "{stage}: {needle:?} is readable");
        }
    };
    scan("open");
    drop(s);
    scan("closed");

    // The scan is meaningful: the same records in an unkeyed database are found.
    let plain = scratch("plaintext-control.db");
    let conn = Connection::open(&plain).unwrap();
    conn.execute_batch("CREATE TABLE messages (key BLOB PRIMARY KEY, value BLOB NOT NULL);")
        .unwrap();
    conn.execute(
        "INSERT INTO messages VALUES (?1, ?2)",
        (b"chat-00042".as_slice(), MESSAGE.as_bytes()),
    )
    .unwrap();
    drop(conn);
    let plain_bytes = std::fs::read(&plain).unwrap();
    assert!(contains(&plain_bytes, MESSAGE.as_bytes()));
    // And the plain file is refused with a key.
    assert_eq!(
        SqlCipherStorage::open(&plain, &KEY).unwrap_err(),
        StorageError::WrongKey
    );
    remove_db(&plain);
    remove_db(&path);
}

#[test]
fn a_wrong_key_is_a_typed_error_and_changes_nothing() {
    let path = scratch("wrong-key.db");
    let mut s = SqlCipherStorage::open(&path, &KEY).unwrap();
    fill(&mut s, 10);
    drop(s);
    let before = std::fs::read(&path).unwrap();
    let mut other = KEY;
    other[31] ^= 1;
    assert_eq!(
        SqlCipherStorage::open(&path, &other).unwrap_err(),
        StorageError::WrongKey
    );
    assert_eq!(
        SqlCipherStorage::open_sync_store(&path, &other).unwrap_err(),
        StorageError::WrongKey
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let err = SqlCipherStorage::open(&path, &other)
        .unwrap_err()
        .to_string();
    assert!(err.contains("database key"), "{err}");
    assert!(!err.contains(&hex::encode(KEY)) && !err.contains(&hex::encode(other)));
    // The right key still opens it.
    let mut s = SqlCipherStorage::open(&path, &KEY).unwrap();
    assert_eq!(s.load().unwrap()[&Table::Messages].len(), 10);
    drop(s);
    remove_db(&path);
}

#[test]
fn a_tampered_page_anywhere_is_detected() {
    let path = scratch("tamper-source.db");
    let mut s = SqlCipherStorage::open(&path, &KEY).unwrap();
    fill(&mut s, 300);
    drop(s);
    let original = std::fs::read(&path).unwrap();
    const PAGE: usize = 4096;
    let pages = original.len() / PAGE;
    assert!(pages >= 8, "{pages} pages");
    let victim = scratch("tamper.db");
    for page in 0..pages {
        for offset in [17, PAGE / 2, PAGE - 1] {
            let mut bytes = original.clone();
            bytes[page * PAGE + offset] ^= 0x40;
            remove_db(&victim);
            std::fs::write(&victim, &bytes).unwrap();
            let result = SqlCipherStorage::open(&victim, &KEY).and_then(|mut s| {
                s.load()?;
                s.check_integrity()
            });
            match (page, result) {
                (0, Err(StorageError::WrongKey)) => {}
                (p, Err(StorageError::Tampered(_))) if p > 0 => {}
                (p, other) => panic!("page {p} offset {offset}: {other:?}"),
            }
        }
    }
    // A truncated file too.
    remove_db(&victim);
    std::fs::write(&victim, &original[..original.len() / 2]).unwrap();
    let result = SqlCipherStorage::open(&victim, &KEY).and_then(|mut s| {
        s.load()?;
        s.check_integrity()
    });
    assert!(
        matches!(result, Err(StorageError::Tampered(_))),
        "{result:?}"
    );
    remove_db(&victim);
    remove_db(&path);
}

/// The version-1 layout, as the first release wrote it.
const V1: &str = "
    CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 0), version INTEGER NOT NULL);
    INSERT INTO schema_version VALUES (0, 1);
    CREATE TABLE meta (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE prekeys (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE sessions (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE contacts (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE chats (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE messages (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE groups (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    INSERT INTO messages VALUES (x'01', x'0203');
";

#[test]
fn migrations_run_from_version_0_and_1_and_refuse_the_future() {
    // Version 0: a new file, and an existing keyed database without the version table.
    let path = scratch("migrate-0.db");
    let s = SqlCipherStorage::open(&path, &KEY).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    drop(s);
    remove_db(&path);
    let conn = raw_keyed(&path, &KEY);
    conn.execute_batch("CREATE TABLE unrelated (x INTEGER); INSERT INTO unrelated VALUES (7);")
        .unwrap();
    drop(conn);
    let mut s = SqlCipherStorage::open(&path, &KEY).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let ops = Table::ALL.iter().map(|&t| put(t, b"k", b"v")).collect();
    s.commit(ops).unwrap();
    assert_eq!(s.load().unwrap().len(), Table::ALL.len());
    drop(s);
    remove_db(&path);

    // Version 1 keeps its records and gains the later tables.
    let conn = raw_keyed(&path, &KEY);
    conn.execute_batch(V1).unwrap();
    drop(conn);
    let mut s = SqlCipherStorage::open(&path, &KEY).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let dump = s.load().unwrap();
    assert_eq!(dump[&Table::Messages][&vec![1u8]], vec![2u8, 3]);
    let ops = Table::ALL.iter().map(|&t| put(t, b"k", b"v")).collect();
    s.commit(ops).unwrap();
    drop(s);
    remove_db(&path);

    // A failing migration leaves the database as it was (one transaction).
    let conn = raw_keyed(&path, &KEY);
    conn.execute_batch(V1).unwrap();
    conn.execute_batch("CREATE TABLE reactions (conflicting INTEGER);")
        .unwrap();
    drop(conn);
    let err = SqlCipherStorage::open(&path, &KEY).unwrap_err();
    assert!(
        matches!(err, StorageError::Backend(ref m) if m.contains("migration to version 2")),
        "{err}"
    );
    let conn = raw_keyed(&path, &KEY);
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);
    let outbox: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'outbox'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(outbox, 0);
    drop(conn);
    remove_db(&path);

    // A newer layout is refused, untouched.
    let conn = raw_keyed(&path, &KEY);
    conn.execute_batch(V1).unwrap();
    conn.execute_batch("UPDATE schema_version SET version = 99;")
        .unwrap();
    drop(conn);
    assert_eq!(
        SqlCipherStorage::open(&path, &KEY).unwrap_err(),
        StorageError::SchemaTooNew {
            found: 99,
            supported: SCHEMA_VERSION
        }
    );
    remove_db(&path);
}

/// The body of `killed_mid_commit_keeps_whole_batches`' child process: commits batches until
/// it is killed. Run only by that test (ignored otherwise).
#[test]
#[ignore = "the child process of killed_mid_commit_keeps_whole_batches"]
fn crash_child() {
    let Some(path) = std::env::var_os("STATUS_RS_SQLCIPHER_CHILD") else {
        return;
    };
    let mut s = SqlCipherStorage::open(&path, &KEY).unwrap();
    let dump = s.load().unwrap();
    let mut batch = dump
        .get(&Table::Meta)
        .and_then(|m| m.get(b"last".as_slice()))
        .map_or(0, |v| u64::from_be_bytes(v.as_slice().try_into().unwrap()));
    println!("child ready");
    loop {
        batch += 1;
        let mut ops: Vec<StorageOp> = (0..20u8)
            .map(|i| {
                let mut key = batch.to_be_bytes().to_vec();
                key.push(i);
                put(Table::Messages, &key, &vec![i; 3000])
            })
            .collect();
        if batch > 1 {
            // Replace the previous batch's first record too: updates, not only inserts.
            let mut key = (batch - 1).to_be_bytes().to_vec();
            key.push(0);
            ops.push(put(Table::Messages, &key, b"updated"));
        }
        ops.push(put(Table::Meta, b"last", &batch.to_be_bytes()));
        s.commit(ops).unwrap();
    }
}

#[test]
fn killed_mid_commit_keeps_whole_batches() {
    let path = scratch("killed.db");
    let exe = std::env::current_exe().unwrap();
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    println!("kill schedule seed {rng_state:#x}");
    let mut last_seen = 0u64;
    for round in 0..6 {
        let mut child = std::process::Command::new(&exe)
            .args(["crash_child", "--exact", "--ignored", "--nocapture"])
            .env("STATUS_RS_SQLCIPHER_CHILD", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait = 150 + (rng_state >> 33) % 400;
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap();
        child.wait().unwrap();

        let mut s = SqlCipherStorage::open(&path, &KEY).unwrap();
        s.check_integrity().unwrap();
        let dump = s.load().unwrap();
        let last = dump
            .get(&Table::Meta)
            .and_then(|m| m.get(b"last".as_slice()))
            .map_or(0, |v| u64::from_be_bytes(v.as_slice().try_into().unwrap()));
        let messages = dump.get(&Table::Messages).cloned().unwrap_or_default();
        let mut per_batch: BTreeMap<u64, usize> = BTreeMap::new();
        for (k, v) in &messages {
            let b = u64::from_be_bytes(k[..8].try_into().unwrap());
            *per_batch.entry(b).or_default() += 1;
            let i = k[8];
            let expect_updated = i == 0 && b < last;
            if expect_updated {
                assert_eq!(v, b"updated", "round {round}: batch {b} record 0");
            } else {
                assert_eq!(v, &vec![i; 3000], "round {round}: batch {b} record {i}");
            }
        }
        assert_eq!(per_batch.len() as u64, last, "round {round}: {per_batch:?}");
        assert!(
            per_batch
                .iter()
                .all(|(b, n)| *b >= 1 && *b <= last && *n == 20)
        );
        assert!(last >= last_seen, "committed batches went missing");
        println!("round {round}: killed after {wait} ms, {last} whole batches");
        last_seen = last;
    }
    assert!(last_seen > 0, "the child never committed");
    remove_db(&path);
}

#[derive(Debug, Clone)]
enum Action {
    Batch(Vec<StorageOp>),
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = StorageOp> {
    let table = (0..Table::ALL.len()).prop_map(|i| Table::ALL[i]);
    let key = prop::collection::vec(0u8..4, 0..3);
    prop_oneof![
        3 => (table.clone(), key.clone(), prop::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(table, key, value)| StorageOp::Put { table, key, value }),
        1 => (table, key).prop_map(|(table, key)| StorageOp::Delete { table, key }),
    ]
}

fn action_strategy() -> impl Strategy<Value = Action> {
    prop_oneof![
        5 => prop::collection::vec(op_strategy(), 0..12).prop_map(Action::Batch),
        1 => Just(Action::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    /// Random batches (puts, deletes, repeated keys) and reopenings: the SQLCipher storage
    /// always loads exactly what `MemoryStorage` does.
    #[test]
    fn matches_memory_storage(actions in prop::collection::vec(action_strategy(), 1..16)) {
        let path = scratch("model.db");
        let mut model = MemoryStorage::new();
        let mut s = SqlCipherStorage::open(&path, &KEY).unwrap();
        for action in actions {
            match action {
                Action::Batch(ops) => {
                    model.commit(ops.clone()).unwrap();
                    s.commit(ops).unwrap();
                }
                Action::Reopen => {
                    drop(s);
                    s = SqlCipherStorage::open(&path, &KEY).unwrap();
                }
            }
            prop_assert_eq!(normalise(s.load().unwrap()), normalise(model.load().unwrap()));
        }
        s.check_integrity().unwrap();
        drop(s);
        remove_db(&path);
    }
}

#[test]
fn paired_stores_hand_an_event_to_the_chat_log_atomically() {
    use mvds::store::{StoreOp, StoredEvent};
    use mvds::{Delivery, GroupId, MessageId, SyncStore};
    let path = scratch("hand-off.db");
    let event = |seq: u64| StoreOp::PushEvent {
        seq,
        event: StoredEvent::Acked {
            peer: [seq as u8; 32],
            id: MessageId([seq as u8; 32]),
        },
    };
    let delivered = StoreOp::PushEvent {
        seq: 3,
        event: StoredEvent::Delivered(Delivery {
            from: [9; 32],
            id: MessageId([3; 32]),
            group: GroupId([4; 32]),
            timestamp: 1_700_000_000,
            body: b"body".to_vec(),
        }),
    };
    let events_on_disk = || {
        let mut sync = SqlCipherStorage::open_sync_store(&path, &KEY).unwrap();
        let seqs: Vec<u64> = sync
            .load()
            .unwrap()
            .events
            .iter()
            .map(|(s, _)| *s)
            .collect();
        seqs
    };
    {
        let (mut storage, mut sync) = SqlCipherStorage::open_pair(&path, &KEY).unwrap();
        sync.commit(vec![event(1), event(2), delivered]).unwrap();
        // Handed to the application: the removals wait.
        sync.commit(vec![StoreOp::PopEvent { seq: 1 }]).unwrap();
        sync.commit(vec![StoreOp::PopEvent { seq: 3 }]).unwrap();
        assert_eq!(sync.held_back(), 2);
        assert_eq!(events_on_disk(), [1, 2, 3]);
        // A write that stores no chat message does not carry them.
        storage
            .commit(vec![put(Table::Chats, b"chat", b"clock")])
            .unwrap();
        assert_eq!(sync.held_back(), 2);
        assert_eq!(events_on_disk(), [1, 2, 3]);
        // The chat message's write does, in its own transaction.
        storage
            .commit(vec![put(Table::Messages, b"m", b"text")])
            .unwrap();
        assert_eq!(sync.held_back(), 0);
        assert_eq!(events_on_disk(), [2]);
        // Without pairing, a removal is immediate.
        let mut alone = SqlCipherStorage::open_sync_store(&path, &KEY).unwrap();
        alone.commit(vec![StoreOp::PopEvent { seq: 2 }]).unwrap();
        assert_eq!(alone.held_back(), 0);
    }
    assert!(events_on_disk().is_empty());
    remove_db(&path);
}
