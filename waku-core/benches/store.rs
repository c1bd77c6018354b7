//! The SQLite archive: batched insert throughput, and the latency of a page of 20 by content
//! topic and time range with 1,000,000 messages stored. Each beside its floor, measured in the
//! same run:
//!
//! - insert floor: the same batches into the in-memory store (no SQL, no disk);
//! - query floor: one indexed point lookup in the same database (`position` of a known hash),
//!   the cheapest read SQLite can serve.
//!
//! The 1,000,000-message database is generated once under `CARGO_TARGET_TMPDIR` (about 400 MB)
//! and reused by later runs. After the criterion groups, an interleaved loop prints the figures
//! the issue asks for: inserts per second and the median page latency.
//!
//! Run: `cargo bench -p waku-core --bench store`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    // A bench reads the clock to time its loops; the core crates never do.
    clippy::disallowed_methods
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use waku_core::message::{MessageHash, WakuMessage};
use waku_core::store::{
    ArchivedMessage, Durability, MemoryStore, MessageStore, SqliteStore, SqliteStoreConfig,
    StoreQuery, run_query,
};
use waku_core::topic::{ContentTopic, PubsubTopic};

const BATCH: usize = 1000;
const TOTAL: u64 = 1_000_000;
const SHARDS: u16 = 8;
const TOPICS: u32 = 1000;
const PAYLOAD: usize = 120;
const BASE_TS: i64 = 1_750_000_000_000_000_000;
/// 30 days spread over the million messages.
const STEP_NS: i64 = 30 * 24 * 3600 * 1_000_000_000 / TOTAL as i64;
const DAY_NS: i64 = 24 * 3600 * 1_000_000_000;

fn shard(i: u32) -> PubsubTopic {
    PubsubTopic::static_shard(16, u16::try_from(i % u32::from(SHARDS)).unwrap()).unwrap()
}

fn topic(i: u32) -> ContentTopic {
    ContentTopic::new(format!("/waku/1/0x{i:08x}/rfc26")).unwrap()
}

/// Message `n` of the synthetic archive: topic `n % TOPICS` on its shard, one every `STEP_NS`.
fn message(n: u64, rng: &mut ChaCha20Rng) -> ArchivedMessage {
    let t = u32::try_from(n % u64::from(TOPICS)).unwrap();
    let mut payload = vec![0u8; PAYLOAD];
    rng.fill_bytes(&mut payload);
    let ts = BASE_TS + i64::try_from(n).unwrap() * STEP_NS;
    ArchivedMessage::new(
        shard(t),
        WakuMessage::new(topic(t), payload).with_timestamp(ts),
    )
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-bench")
}

fn config(durability: Durability) -> SqliteStoreConfig {
    SqliteStoreConfig {
        durability,
        ..SqliteStoreConfig::default()
    }
}

/// Opens the million-message archive, generating it first if it is missing or incomplete.
fn million() -> SqliteStore {
    let dir = data_dir().join("million");
    let path = dir.join("archive.db");
    let done = dir.join("complete");
    if done.exists() {
        let mut s = SqliteStore::open(&path, &config(Durability::Normal)).unwrap();
        if s.count().unwrap() == TOTAL {
            return s;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("generating {TOTAL} messages in {} (once)", path.display());
    let started = Instant::now();
    let mut s = SqliteStore::open(&path, &config(Durability::Normal)).unwrap();
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let mut n = 0;
    while n < TOTAL {
        let batch: Vec<ArchivedMessage> = (n..n + 10_000).map(|i| message(i, &mut rng)).collect();
        s.insert(&batch).unwrap();
        n += 10_000;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "generated in {secs:.1} s ({:.0} messages/s including generation)",
        TOTAL as f64 / secs
    );
    std::fs::write(&done, b"1000000\n").unwrap();
    s
}

fn fresh(dir: &Path, durability: Durability) -> SqliteStore {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    SqliteStore::open(dir.join("archive.db"), &config(durability)).unwrap()
}

/// Batches of fresh messages (new hashes every call).
struct Source {
    rng: ChaCha20Rng,
    next: u64,
}

impl Source {
    fn batch(&mut self) -> Vec<ArchivedMessage> {
        let start = self.next;
        self.next += BATCH as u64;
        (start..self.next)
            .map(|n| message(n, &mut self.rng))
            .collect()
    }
}

/// Page queries: a random topic of the million, a random one-day window, 20 entries.
fn queries(count: usize, forward: bool) -> Vec<StoreQuery> {
    let mut rng = ChaCha20Rng::from_seed([2; 32]);
    (0..count)
        .map(|_| {
            let t = u32::try_from(rng.next_u64() % u64::from(TOPICS)).unwrap();
            let day = i64::try_from(rng.next_u64() % 29).unwrap();
            let start = BASE_TS + day * DAY_NS;
            let q = StoreQuery::topics(shard(t), [topic(t)])
                .time_range(Some(start), Some(start + DAY_NS))
                .page_size(20);
            if forward { q.forward() } else { q }
        })
        .collect()
}

/// Hashes of stored messages, for the point-lookup floor.
fn known_hashes(count: usize) -> Vec<MessageHash> {
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let mut out = Vec::new();
    // Regenerate the first messages of the archive (same seed, same order).
    for n in 0..u64::try_from(count).unwrap() {
        out.push(message(n, &mut rng).hash);
    }
    out
}

fn bench_insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_insert");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    let dir = data_dir().join("insert");
    for (name, durability) in [
        ("sqlite_full", Durability::Full),
        ("sqlite_normal", Durability::Normal),
    ] {
        let mut store = fresh(&dir.join(name), durability);
        let mut src = Source {
            rng: ChaCha20Rng::from_seed([3; 32]),
            next: 10 * TOTAL,
        };
        g.bench_function(format!("{name}_batch{BATCH}"), |b| {
            b.iter_batched(
                || src.batch(),
                |batch| store.insert(black_box(&batch)).unwrap(),
                BatchSize::LargeInput,
            );
        });
    }
    let mut mem = MemoryStore::new();
    let mut src = Source {
        rng: ChaCha20Rng::from_seed([4; 32]),
        next: 20 * TOTAL,
    };
    g.bench_function(format!("memory_floor_batch{BATCH}"), |b| {
        b.iter_batched(
            || src.batch(),
            |batch| mem.insert(black_box(&batch)).unwrap(),
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn bench_query(c: &mut Criterion, store: &mut SqliteStore) {
    let fwd = queries(1024, true);
    let back = queries(1024, false);
    let hashes = known_hashes(1024);
    let mut g = c.benchmark_group("store_query_1m");
    g.sample_size(50);
    let mut i = 0usize;
    g.bench_function("page20_topic_day_forward", |b| {
        b.iter(|| {
            i = (i + 1) % fwd.len();
            black_box(run_query(store, &fwd[i]).unwrap())
        });
    });
    g.bench_function("page20_topic_day_backward", |b| {
        b.iter(|| {
            i = (i + 1) % back.len();
            black_box(run_query(store, &back[i]).unwrap())
        });
    });
    g.bench_function("floor_point_lookup", |b| {
        b.iter(|| {
            i = (i + 1) % hashes.len();
            black_box(store.position(&hashes[i]).unwrap())
        });
    });
    g.finish();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The figures, from interleaved loops in the same process.
fn report(store: &mut SqliteStore) {
    // Inserts: alternate a SQLite batch (synchronous = FULL, the default) with a memory batch.
    let dir = data_dir().join("insert-report");
    let mut sqlite = fresh(&dir, Durability::Full);
    let mut mem = MemoryStore::new();
    let mut src = Source {
        rng: ChaCha20Rng::from_seed([5; 32]),
        next: 30 * TOTAL,
    };
    let (mut s_rates, mut m_rates) = (Vec::new(), Vec::new());
    for _ in 0..60 {
        let batch = src.batch();
        let t = Instant::now();
        sqlite.insert(&batch).unwrap();
        s_rates.push(BATCH as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        mem.insert(&batch).unwrap();
        m_rates.push(BATCH as f64 / t.elapsed().as_secs_f64());
    }
    let s = median(&mut s_rates);
    let m = median(&mut m_rates);
    println!(
        "insert (batches of {BATCH}, synchronous=FULL, 60 batches into an empty archive): median {s:.0} messages/s; memory floor {m:.0} messages/s; floor/sqlite = {:.2}",
        m / s
    );

    // Queries at a million: time each one; alternate with the point-lookup floor.
    let fwd = queries(4000, true);
    let back = queries(4000, false);
    let hashes = known_hashes(4000);
    let (mut qf, mut qb, mut fl) = (Vec::new(), Vec::new(), Vec::new());
    let mut got = 0usize;
    for i in 0..4000 {
        let t = Instant::now();
        got += run_query(store, &fwd[i]).unwrap().entries.len();
        qf.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        got += run_query(store, &back[i]).unwrap().entries.len();
        qb.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        black_box(store.position(&hashes[i]).unwrap());
        fl.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let p99 = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() * 99 / 100]
    };
    let (mf, mb, ml) = (median(&mut qf), median(&mut qb), median(&mut fl));
    println!(
        "page of 20 by content topic + one-day range at {TOTAL} messages ({} entries per page on average): forward median {mf:.1} µs (p99 {:.1}), backward median {mb:.1} µs (p99 {:.1}); point-lookup floor median {ml:.1} µs; page/floor = {:.1} (forward), {:.1} (backward)",
        got / 8000,
        p99(&mut qf),
        p99(&mut qb),
        mf / ml,
        mb / ml
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_insert(&mut c);
    let mut store = million();
    bench_query(&mut c, &mut store);
    c.final_summary();
    report(&mut store);
}
