//! Crash at every write step: a workload of batch inserts, duplicates and retention deletes runs
//! against the SQLite archive wrapped in the fault injector, which "kills" it at step k (copying
//! the database files as a crash would leave them), for every k. Reopening the copy must show
//! every acknowledged write, and the interrupted one either whole or not at all.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use waku_core::message::WakuMessage;
use waku_core::store::fault::{Fault, FaultInjector, copy_database};
use waku_core::store::{
    ArchivedMessage, MemoryStore, MessageStore, SqliteStore, SqliteStoreConfig, StoreError,
    StoreQuery, run_query,
};
use waku_core::topic::{ContentTopic, PubsubTopic};

/// Counted SQLite VM steps per fault point (1 = every instruction).
const GRANULARITY: u16 = 1;

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    // tmpfs where there is one: fsync is free there, and the test syncs at every commit.
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "status-rs-crash-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn m(p: u16, c: usize, ts: i64, payload: &str) -> ArchivedMessage {
    let topic = ContentTopic::new(format!("/crash/1/t{c}/proto")).unwrap();
    ArchivedMessage::new(
        PubsubTopic::static_shard(16, p).unwrap(),
        WakuMessage::new(topic, payload.as_bytes().to_vec()).with_timestamp(ts),
    )
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<ArchivedMessage>),
    DeleteBefore(i64),
    Truncate(u64),
}

fn workload() -> Vec<Op> {
    let a = vec![
        m(32, 0, 100, "a1"),
        m(32, 1, 101, "a2"),
        m(64, 0, 102, "a3"),
    ];
    let b = vec![
        m(32, 0, 103, "b1"),
        a[1].clone(),
        m(32, 2, 99, "b2"),
        m(64, 3, 104, "b3"),
    ];
    let c = vec![m(32, 0, 105, "c1"), m(32, 0, 105, "c2"), m(64, 1, 98, "c3")];
    let d = vec![m(32, 4, 110, "d1"), m(32, 0, 111, "d2")];
    vec![
        Op::Insert(a),
        Op::Insert(b),
        Op::DeleteBefore(101),
        Op::Insert(c),
        Op::Truncate(5),
        Op::Insert(d),
        Op::DeleteBefore(104),
    ]
}

fn apply(store: &mut dyn MessageStore, op: &Op) -> Result<(), StoreError> {
    match op {
        Op::Insert(batch) => store.insert(batch).map(|_| ()),
        Op::DeleteBefore(t) => store.delete_before(*t).map(|_| ()),
        Op::Truncate(n) => store.truncate(*n).map(|_| ()),
    }
}

fn contents(store: &mut dyn MessageStore) -> Vec<ArchivedMessage> {
    let mut out = Vec::new();
    let mut q = StoreQuery::all().forward().page_size(100);
    loop {
        let page = run_query(store, &q).unwrap();
        out.extend(page.entries);
        match page.cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, &SqliteStoreConfig::default()).unwrap()
}

/// Runs the workload without a fault and returns how many counted steps it takes.
fn dry_run() -> u64 {
    let dir = temp_dir("dry");
    let mut inj = FaultInjector::new(open(&dir.join("archive.db")), None, GRANULARITY).unwrap();
    for op in workload() {
        apply(&mut inj, &op).unwrap();
    }
    let steps = inj.steps();
    drop(inj);
    let _ = std::fs::remove_dir_all(&dir);
    steps
}

#[test]
fn crash_at_every_write_step_loses_no_acknowledged_message() {
    let total = dry_run();
    assert!(
        total > 50,
        "the workload should take many steps, took {total}"
    );
    let ops = workload();
    let mut outcomes = [0u32; 2];
    for k in 1..=total {
        let dir = temp_dir("crash");
        let live = dir.join("live");
        std::fs::create_dir_all(&live).unwrap();
        let snap = dir.join("after-crash");
        let mut inj = FaultInjector::new(
            open(&live.join("archive.db")),
            Some((k, Fault::Crash(snap.clone()))),
            GRANULARITY,
        )
        .unwrap();
        let mut model = MemoryStore::new();
        let mut in_flight = None;
        for op in &ops {
            match apply(&mut inj, op) {
                Ok(()) => apply(&mut model, op).unwrap(),
                Err(StoreError::Crashed) => {
                    in_flight = Some(op.clone());
                    break;
                }
                Err(e) => panic!("step {k}: unexpected error {e}"),
            }
        }
        assert!(inj.crashed(), "step {k} of {total} did not fire");
        assert_eq!(inj.snapshot_error(), None);
        drop(inj);

        let mut reopened = open(&snap.join("archive.db"));
        reopened.integrity_check().unwrap();
        let got = contents(&mut reopened);
        let without = contents(&mut model);
        let mut with_model = model.clone();
        if let Some(op) = &in_flight {
            apply(&mut with_model, op).unwrap();
        }
        let with = contents(&mut with_model);
        if got == without {
            outcomes[0] += 1;
        } else if got == with {
            outcomes[1] += 1;
        } else {
            panic!(
                "step {k}: archive after the crash holds {} messages, expected {} or {}",
                got.len(),
                without.len(),
                with.len()
            );
        }
        // The reopened archive keeps working.
        reopened.insert(&[m(1, 9, 500, "after")]).unwrap();
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "crashed at {total} write steps: {} left the in-flight write out, {} had it whole",
        outcomes[0], outcomes[1]
    );
}

/// An interrupted write (no crash) is applied whole or not at all (SQLite may report an
/// interrupt after the commit already happened, so the caller cannot always tell which), the
/// connection stays usable, and retrying the write, which is idempotent, converges.
#[test]
fn interrupted_write_is_atomic_and_retry_is_safe() {
    let total = dry_run();
    let ops = workload();
    let mut outcomes = [0u32; 2];
    for k in 1..=total {
        let dir = temp_dir("interrupt");
        let path = dir.join("archive.db");
        let mut inj =
            FaultInjector::new(open(&path), Some((k, Fault::Interrupt)), GRANULARITY).unwrap();
        let mut model = MemoryStore::new();
        let mut failed = 0;
        for op in &ops {
            match apply(&mut inj, op) {
                Ok(()) => apply(&mut model, op).unwrap(),
                Err(StoreError::Injected) => {
                    failed += 1;
                    let got = contents(&mut inj);
                    let before = contents(&mut model);
                    apply(&mut model, op).unwrap();
                    let after = contents(&mut model);
                    if got == before {
                        outcomes[0] += 1;
                    } else {
                        assert_eq!(got, after, "step {k}: a partial write is visible");
                        outcomes[1] += 1;
                    }
                    apply(&mut inj, op).unwrap();
                }
                Err(e) => panic!("step {k}: unexpected error {e}"),
            }
            assert_eq!(contents(&mut inj), contents(&mut model), "step {k}");
        }
        assert!(inj.fired() && failed <= 1, "step {k}");
        drop(inj);
        let mut reopened = open(&path);
        reopened.integrity_check().unwrap();
        assert_eq!(
            contents(&mut reopened),
            contents(&mut model),
            "step {k} after reopen"
        );
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "interrupted at {total} write steps: {} rolled back, {} had already committed",
        outcomes[0], outcomes[1]
    );
}

fn wal_len(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// A power cut while a commit is being written leaves a torn WAL tail. With `synchronous = FULL`
/// an acknowledged commit is synced, so only the tail of the commit in progress can be torn:
/// every cut inside it must read as the state before it.
#[test]
fn torn_wal_tail_exposes_no_partial_batch() {
    let dir = temp_dir("torn");
    let db = dir.join("archive.db");
    let mut store = open(&db);
    let mut model = MemoryStore::new();
    let mut checked = 0;
    for (i, op) in workload().iter().enumerate() {
        let before = contents(&mut model);
        let before_len = wal_len(&db);
        apply(&mut store, op).unwrap();
        apply(&mut model, op).unwrap();
        let after = contents(&mut model);
        let after_len = wal_len(&db);
        assert!(
            after_len >= before_len,
            "no checkpoint expected in this small workload"
        );
        let snap = copy_database(&db, &dir.join(format!("snap-{i}"))).unwrap();
        let mut wal = snap.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let full = std::fs::read(&wal).unwrap();
        let span = after_len - before_len;
        if span == 0 {
            assert_eq!(
                before, after,
                "op {i} wrote nothing yet changed the archive"
            );
            continue;
        }
        for cut in [0, 1, span / 3, span / 2, span - 1, span] {
            let cut_dir = dir.join(format!("cut-{i}-{cut}"));
            let copy = copy_database(&snap, &cut_dir).unwrap();
            let mut copy_wal = copy.as_os_str().to_owned();
            copy_wal.push("-wal");
            let len = usize::try_from(before_len + cut).unwrap();
            std::fs::write(PathBuf::from(copy_wal), &full[..len]).unwrap();
            let mut s = open(&copy);
            s.integrity_check().unwrap();
            let got = contents(&mut s);
            if cut == span {
                assert_eq!(got, after, "op {i}: the whole commit must read as applied");
            } else {
                assert_eq!(
                    got, before,
                    "op {i}: a commit torn at +{cut} of {span} bytes must read as not applied"
                );
            }
            checked += 1;
        }
    }
    println!("checked {checked} torn-WAL images");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
