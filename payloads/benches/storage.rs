//! Opening the encrypted database and loading 10,000 chat messages, against the same work on
//! an unencrypted SQLite file, measured in the same run.
//!
//! **Measured**: `SqlCipherStorage::open` (keying with the raw database key, the key check,
//! WAL mode, the schema version check) and `Storage::load` (every table read in key order into
//! the Messenger's `Dump`) of a database holding 10,000 message records of 400 bytes (a signed
//! envelope with a ~120-character text is about that size), 100 chats and 100 sessions.
//!
//! **Floor**: a plain SQLite file (the same build of the library, no key) with the same tables
//! and records, opened with the same pragmas and read with the same queries into the same
//! `Dump`. The difference is the cost of decrypting and authenticating each page.
//!
//! **Reference**: `MemoryStorage::load` of the same records (a deep copy of the maps), the
//! least any backend can hand to the Messenger.
//!
//! After the criterion benchmarks, the two are timed again in alternating rounds and the
//! median ratio is printed.
//!
//! Run: `cargo bench -p payloads --bench storage`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use payloads::storage::{Dump, MemoryStorage, SqlCipherStorage, Storage, StorageOp, Table};
use rusqlite::Connection;

const MESSAGES: usize = 10_000;
const MESSAGE_BYTES: usize = 400;
const KEY: [u8; 32] = [0x42; 32];

fn ops() -> Vec<StorageOp> {
    let mut ops = Vec::new();
    for i in 0..MESSAGES {
        let chat = i % 100;
        let mut key = format!("chat-{chat:03}").into_bytes();
        key.extend_from_slice(&(i as u64).to_be_bytes());
        key.extend_from_slice(&[0xab; 32]);
        let mut value = vec![0u8; MESSAGE_BYTES];
        for (j, b) in value.iter_mut().enumerate() {
            *b = (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8;
        }
        ops.push(StorageOp::Put {
            table: Table::Messages,
            key,
            value,
        });
    }
    for c in 0..100u8 {
        ops.push(StorageOp::Put {
            table: Table::Chats,
            key: vec![c; 33],
            value: vec![c; 9],
        });
        ops.push(StorageOp::Put {
            table: Table::Sessions,
            key: vec![c; 32],
            value: vec![c; 1500],
        });
    }
    ops
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn plain_open(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    let _: String = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0).map(|n| n.to_string())
        })
        .unwrap();
    let _: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    let _: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    conn
}

fn plain_load(conn: &Connection) -> Dump {
    let mut dump = Dump::new();
    for table in Table::ALL {
        let mut out = BTreeMap::new();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT key, value FROM {} ORDER BY key",
                table.name()
            ))
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let k = row.get_ref(0).unwrap().as_blob().unwrap().to_vec();
            let v = row.get_ref(1).unwrap().as_blob().unwrap().to_vec();
            out.insert(k, v);
        }
        if !out.is_empty() {
            dump.insert(table, out);
        }
    }
    dump
}

struct Fixture {
    encrypted: PathBuf,
    plain: PathBuf,
    memory: MemoryStorage,
}

fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("status-rs-storage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let encrypted = dir.join("encrypted.db");
    let plain = dir.join("plain.db");
    remove_db(&encrypted);
    remove_db(&plain);
    let mut s = SqlCipherStorage::open(&encrypted, &KEY).unwrap();
    s.commit(ops()).unwrap();
    drop(s);
    // The floor: the same layout, unkeyed, filled through the same statements.
    let conn = Connection::open(&plain).unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL);
         INSERT INTO schema_version VALUES (0, 2);",
    )
    .unwrap();
    for table in Table::ALL {
        conn.execute_batch(&format!(
            "CREATE TABLE {} (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;",
            table.name()
        ))
        .unwrap();
    }
    let tx = conn.unchecked_transaction().unwrap();
    for op in ops() {
        if let StorageOp::Put { table, key, value } = op {
            tx.execute(
                &format!("INSERT OR REPLACE INTO {} VALUES (?1, ?2)", table.name()),
                (key, value),
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
    drop(conn);
    let mut memory = MemoryStorage::new();
    memory.commit(ops()).unwrap();
    Fixture {
        encrypted,
        plain,
        memory,
    }
}

fn open_load_encrypted(path: &Path) -> usize {
    let mut s = SqlCipherStorage::open(path, &KEY).unwrap();
    let dump = s.load().unwrap();
    dump[&Table::Messages].len()
}

fn open_load_plain(path: &Path) -> usize {
    let conn = plain_open(path);
    let dump = plain_load(&conn);
    dump[&Table::Messages].len()
}

#[allow(clippy::disallowed_methods)] // a bench measures wall-clock time
fn bench(c: &mut Criterion) {
    let f = fixture();
    assert_eq!(open_load_encrypted(&f.encrypted), MESSAGES);
    assert_eq!(open_load_plain(&f.plain), MESSAGES);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!(
        "files: encrypted {} bytes, plain {} bytes",
        size(&f.encrypted),
        size(&f.plain)
    );
    let mut g = c.benchmark_group("storage_open_load_10k");
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("sqlcipher", |b| {
        b.iter(|| black_box(open_load_encrypted(&f.encrypted)))
    });
    g.bench_function("plain_sqlite_floor", |b| {
        b.iter(|| black_box(open_load_plain(&f.plain)))
    });
    let mut memory = f.memory.clone();
    g.bench_function("memory_reference", |b| {
        b.iter(|| black_box(memory.load().unwrap()[&Table::Messages].len()))
    });
    g.finish();

    // Interleaved rounds: the median of per-round ratios.
    let mut ratios = Vec::new();
    let mut enc_times = Vec::new();
    let mut plain_times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        for _ in 0..5 {
            black_box(open_load_encrypted(&f.encrypted));
        }
        let e = t.elapsed() / 5;
        let t = Instant::now();
        for _ in 0..5 {
            black_box(open_load_plain(&f.plain));
        }
        let p = t.elapsed() / 5;
        ratios.push(e.as_secs_f64() / p.as_secs_f64());
        enc_times.push(e);
        plain_times.push(p);
    }
    ratios.sort_by(f64::total_cmp);
    enc_times.sort();
    plain_times.sort();
    println!(
        "interleaved medians: sqlcipher open+load {:?}, plain sqlite {:?}, ratio {:.2}",
        enc_times[10], plain_times[10], ratios[10]
    );
    remove_db(&f.encrypted);
    remove_db(&f.plain);
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
