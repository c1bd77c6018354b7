//! One suite, every archive backend: the in-memory store, SQLite in memory and SQLite on disk
//! pass the same tests, and a property test checks random queries against a plain model.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use waku_core::message::{MessageHash, WakuMessage};
use waku_core::store::{
    ArchivedMessage, Criteria, Direction, MemoryStore, MessageStore, QueryError, SqliteStore,
    SqliteStoreConfig, StoreQuery, run_query,
};
use waku_core::topic::{ContentTopic, PubsubTopic};

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
        "status-rs-store-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A backend under test and the directory to clean up after it.
struct Backend {
    name: &'static str,
    store: Box<dyn MessageStore + Send>,
    dir: Option<PathBuf>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn backends() -> Vec<Backend> {
    let dir = temp_dir("suite");
    vec![
        Backend {
            name: "memory",
            store: Box::new(MemoryStore::new()),
            dir: None,
        },
        Backend {
            name: "sqlite-memory",
            store: Box::new(SqliteStore::open_in_memory().unwrap()),
            dir: None,
        },
        Backend {
            name: "sqlite-file",
            store: Box::new(
                SqliteStore::open(dir.join("archive.db"), &SqliteStoreConfig::default()).unwrap(),
            ),
            dir: Some(dir),
        },
    ]
}

fn pubsub(i: usize) -> PubsubTopic {
    PubsubTopic::static_shard(1, u16::try_from(i).unwrap()).unwrap()
}

fn content(i: usize) -> ContentTopic {
    ContentTopic::new(format!("/app/1/topic-{i}/proto")).unwrap()
}

fn msg(p: usize, c: usize, ts: i64, payload: &[u8]) -> ArchivedMessage {
    ArchivedMessage::new(
        pubsub(p),
        WakuMessage::new(content(c), payload.to_vec()).with_timestamp(ts),
    )
}

/// Everything a backend holds, oldest first, read through forward pages of `page`.
fn read_all(store: &mut dyn MessageStore, query: StoreQuery) -> Vec<ArchivedMessage> {
    let mut out = Vec::new();
    let mut q = query;
    loop {
        let page = run_query(store, &q).unwrap();
        let cursor = page.cursor;
        match q.direction {
            Direction::Forward => out.extend(page.entries),
            Direction::Backward => {
                let mut p = page.entries;
                p.extend(out);
                out = p;
            }
        }
        match cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

/// The model: the matching messages, sorted by (timestamp, hash).
fn model(all: &[ArchivedMessage], criteria: &Criteria) -> Vec<ArchivedMessage> {
    let mut v: Vec<ArchivedMessage> = Vec::new();
    for m in all {
        if criteria.matches(m) && !v.iter().any(|x| x.hash == m.hash) {
            v.push(m.clone());
        }
    }
    v.sort_by_key(ArchivedMessage::position);
    v
}

#[test]
fn insert_deduplicates_by_hash() {
    for mut b in backends() {
        let a = msg(0, 0, 10, b"a");
        let c = msg(0, 0, 11, b"c");
        assert_eq!(
            b.store.insert(&[a.clone(), a.clone(), c.clone()]).unwrap(),
            2,
            "{}",
            b.name
        );
        assert_eq!(b.store.insert(&[a.clone(), c]).unwrap(), 0, "{}", b.name);
        assert_eq!(b.store.count().unwrap(), 2, "{}", b.name);
        assert_eq!(
            b.store.position(&a.hash).unwrap().unwrap().timestamp,
            10,
            "{}",
            b.name
        );
        assert_eq!(
            b.store.position(&MessageHash([9; 32])).unwrap(),
            None,
            "{}",
            b.name
        );
    }
}

#[test]
fn pages_are_oldest_first_in_both_directions() {
    for mut b in backends() {
        let msgs: Vec<ArchivedMessage> = (0..25)
            .map(|i| msg(0, 0, 1000 + i, &[u8::try_from(i).unwrap()]))
            .collect();
        b.store.insert(&msgs).unwrap();
        let q = StoreQuery::topics(pubsub(0), [content(0)]).page_size(10);

        // Forward: 10, 10, 5; cursor is the last entry.
        let p1 = run_query(&mut *b.store, &q.clone().forward()).unwrap();
        assert_eq!(p1.entries, msgs[..10].to_vec(), "{}", b.name);
        assert_eq!(p1.cursor, Some(msgs[9].hash));
        let p3 = run_query(
            &mut *b.store,
            &q.clone().forward().with_cursor(Some(msgs[19].hash)),
        )
        .unwrap();
        assert_eq!(p3.entries, msgs[20..].to_vec());
        assert_eq!(p3.cursor, None);

        // Backward: the newest 10, listed oldest first; cursor is the first entry.
        let b1 = run_query(&mut *b.store, &q.clone()).unwrap();
        assert_eq!(b1.entries, msgs[15..].to_vec(), "{}", b.name);
        assert_eq!(b1.cursor, Some(msgs[15].hash));
        let b2 = run_query(&mut *b.store, &q.clone().with_cursor(b1.cursor)).unwrap();
        assert_eq!(b2.entries, msgs[5..15].to_vec());

        // A cursor at the newest message (forward) or the oldest (backward): 200, no entries.
        let end = run_query(
            &mut *b.store,
            &q.clone().forward().with_cursor(Some(msgs[24].hash)),
        )
        .unwrap();
        assert!(end.entries.is_empty() && end.cursor.is_none());
        let start = run_query(&mut *b.store, &q.clone().with_cursor(Some(msgs[0].hash))).unwrap();
        assert!(start.entries.is_empty() && start.cursor.is_none());

        // Exactly one page worth: the last page has no cursor only when nothing follows.
        let exact = run_query(&mut *b.store, &StoreQuery::all().forward().page_size(25)).unwrap();
        assert_eq!(exact.entries.len(), 25);
        assert_eq!(exact.cursor, None, "{}", b.name);

        assert!(matches!(
            run_query(
                &mut *b.store,
                &q.clone().with_cursor(Some(MessageHash([3; 32])))
            ),
            Err(QueryError::UnknownCursor)
        ));
    }
}

#[test]
fn time_range_is_start_inclusive_end_exclusive() {
    for mut b in backends() {
        let msgs: Vec<ArchivedMessage> = (0..10)
            .map(|i| msg(0, i % 2, 100 + i64::try_from(i).unwrap(), b"x"))
            .collect();
        b.store.insert(&msgs).unwrap();
        let q = StoreQuery::all().forward().time_range(Some(102), Some(107));
        let got: Vec<i64> = read_all(&mut *b.store, q)
            .iter()
            .map(ArchivedMessage::timestamp)
            .collect();
        assert_eq!(got, vec![102, 103, 104, 105, 106], "{}", b.name);
        let q = StoreQuery::topics(pubsub(0), [content(1)])
            .forward()
            .time_range(Some(103), None);
        let got: Vec<i64> = read_all(&mut *b.store, q)
            .iter()
            .map(ArchivedMessage::timestamp)
            .collect();
        assert_eq!(got, vec![103, 105, 107, 109], "{}", b.name);
        let empty = StoreQuery::all().time_range(Some(105), Some(105));
        assert!(read_all(&mut *b.store, empty).is_empty());
    }
}

#[test]
fn topics_and_hashes_select_exactly() {
    for mut b in backends() {
        let msgs = vec![
            msg(0, 0, 5, b"a"),
            msg(0, 1, 5, b"b"),
            msg(1, 0, 5, b"c"),
            msg(0, 2, 6, b"d"),
            msg(0, 0, 7, b"e"),
        ];
        b.store.insert(&msgs).unwrap();
        let q = StoreQuery::topics(pubsub(0), [content(0), content(2)]).forward();
        let got = read_all(&mut *b.store, q.page_size(1));
        assert_eq!(
            got,
            model(
                &msgs,
                &StoreQuery::topics(pubsub(0), [content(0), content(2)]).criteria
            ),
            "{}",
            b.name
        );
        assert_eq!(got.len(), 3);

        let wanted = [msgs[4].hash, msgs[2].hash, MessageHash([1; 32])];
        let got = read_all(
            &mut *b.store,
            StoreQuery::hashes(wanted).without_data().forward(),
        );
        let hashes: Vec<MessageHash> = got.iter().map(|m| m.hash).collect();
        assert_eq!(hashes, vec![msgs[2].hash, msgs[4].hash], "{}", b.name);
    }
}

#[test]
fn retention_deletes_by_age_and_count() {
    for mut b in backends() {
        let msgs: Vec<ArchivedMessage> = (0..10).map(|i| msg(0, 0, 100 + i, b"r")).collect();
        b.store.insert(&msgs).unwrap();
        assert_eq!(b.store.delete_before(103).unwrap(), 3, "{}", b.name);
        assert_eq!(b.store.count().unwrap(), 7);
        assert_eq!(b.store.truncate(5).unwrap(), 2, "{}", b.name);
        let left: Vec<i64> = read_all(&mut *b.store, StoreQuery::all().forward())
            .iter()
            .map(ArchivedMessage::timestamp)
            .collect();
        assert_eq!(left, vec![105, 106, 107, 108, 109]);
        assert_eq!(b.store.truncate(5).unwrap(), 0);
        // Deleted messages can be archived again.
        assert_eq!(b.store.insert(&msgs[..1]).unwrap(), 1);
    }
}

#[test]
fn sqlite_survives_reopen() {
    let dir = temp_dir("reopen");
    let path = dir.join("archive.db");
    let msgs: Vec<ArchivedMessage> = (0..50)
        .map(|i| msg(usize::try_from(i % 3).unwrap(), 0, 1000 - i, b"p"))
        .collect();
    {
        let mut s = SqliteStore::open(&path, &SqliteStoreConfig::default()).unwrap();
        s.insert(&msgs).unwrap();
    }
    let mut s = SqliteStore::open(&path, &SqliteStoreConfig::default()).unwrap();
    s.integrity_check().unwrap();
    assert_eq!(s.count().unwrap(), 50);
    let all = read_all(&mut s, StoreQuery::all().forward().page_size(7));
    assert_eq!(all, model(&msgs, &StoreQuery::all().criteria));
    // Topic ids interned before the restart still resolve.
    s.insert(&[msg(1, 0, 5000, b"new")]).unwrap();
    let got = read_all(
        &mut s,
        StoreQuery::topics(pubsub(1), [content(0)]).forward(),
    );
    assert_eq!(got.len(), 18);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

fn arb_message() -> impl Strategy<Value = ArchivedMessage> {
    // Few topics and a narrow clock, so ties on the timestamp are common.
    (
        0usize..2,
        0usize..4,
        0i64..20,
        proptest::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(p, c, ts, payload)| msg(p, c, ts, &payload))
}

fn arb_query() -> impl Strategy<Value = StoreQuery> {
    let topics =
        proptest::option::of((0usize..2, proptest::collection::btree_set(0usize..4, 1..4)));
    let time = (
        proptest::option::of(0i64..20),
        proptest::option::of(0i64..22),
    );
    (topics, time, any::<bool>(), 1u64..6).prop_map(|(topics, (s, e), fwd, size)| {
        let q = match topics {
            Some((p, cs)) => StoreQuery::topics(pubsub(p), cs.into_iter().map(content)),
            None => StoreQuery::all(),
        };
        let (s, e) = match (s, e) {
            (Some(s), Some(e)) if s > e => (Some(e), Some(s)),
            x => x,
        };
        let q = q.time_range(s, e).page_size(size);
        if fwd { q.forward() } else { q }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random archives and queries: every backend pages out exactly the model's answer, in order,
    /// in both directions.
    #[test]
    fn backends_agree_with_the_model(msgs in proptest::collection::vec(arb_message(), 0..40), query in arb_query()) {
        let expected = model(&msgs, &query.criteria);
        for mut b in backends() {
            b.store.insert(&msgs).unwrap();
            let got = read_all(&mut *b.store, query.clone());
            prop_assert_eq!(&got, &expected, "backend {}", b.name);
            // Hash lookups return the same set.
            if expected.is_empty() {
                continue;
            }
            let hq = StoreQuery::hashes(expected.iter().map(|m| m.hash)).forward().page_size(3);
            prop_assert_eq!(read_all(&mut *b.store, hq), expected.clone());
        }
    }
}
