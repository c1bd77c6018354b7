//! Messages per second through one relay router: a 1 KiB Waku message arrives from a mesh peer
//! in its own RPC frame; the router decodes it, computes its id, checks the seen cache,
//! validates (decode, size, timestamp), caches it, queues it for the other mesh peers and
//! reports it; the bench drains every transmit and event. Beside it, in the same run, the floor:
//! the primitives alone (decode of the RPC and of the Waku message, `sha256(data)`, one
//! seen-set insert).
//!
//! Run: `cargo bench -p waku-core --bench relay`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use prost::Message as _;
use proto::gossipsub::{ControlGraft, ControlMessage, Message as PubsubMessage, Rpc, rpc::SubOpts};
use sha2::{Digest, Sha256};
use waku_core::message::WakuMessage;
use waku_core::net::{Now, PeerId, Protocol};
use waku_core::relay::{Relay, RelayConfig};
use waku_core::topic::{ContentTopic, PubsubTopic};

const WALL: i64 = 1_700_000_000_000_000_000;
const PAYLOAD: usize = 1024;
const MESH: u64 = 6;

/// One RPC frame carrying a 1 KiB message, and the offset of 8 payload bytes that can be
/// rewritten to make each message unique without changing its size.
fn frame(topic: &PubsubTopic) -> (Vec<u8>, usize) {
    let marker = [0x5a; 8];
    let mut payload = vec![0xab; PAYLOAD];
    payload[..8].copy_from_slice(&marker);
    let msg = WakuMessage::new(ContentTopic::new("/bench/1/relay/proto").unwrap(), payload)
        .with_timestamp(WALL);
    let rpc = Rpc {
        publish: vec![PubsubMessage {
            data: Some(msg.encode()),
            topic: Some(topic.as_str().to_owned()),
            ..PubsubMessage::default()
        }],
        ..Rpc::default()
    };
    let bytes = rpc.encode_to_vec();
    let at = bytes
        .windows(8)
        .position(|w| w == marker)
        .expect("marker in frame");
    (bytes, at)
}

fn stamp(frame: &mut [u8], at: usize, n: u64) {
    frame[at..at + 8].copy_from_slice(&n.to_le_bytes());
}

/// A subscribed router with `MESH` grafted peers.
fn router(start: Instant, topic: &PubsubTopic) -> Relay {
    let now = Now {
        instant: start,
        unix_nanos: WALL,
    };
    let mut relay = Relay::new(RelayConfig::default(), [1; 32], start);
    relay.subscribe(now, topic).unwrap();
    let join = Rpc {
        subscriptions: vec![SubOpts {
            subscribe: Some(true),
            topic_id: Some(topic.as_str().to_owned()),
        }],
        control: Some(ControlMessage {
            graft: vec![ControlGraft {
                topic_id: Some(topic.as_str().to_owned()),
            }],
            ..ControlMessage::default()
        }),
        ..Rpc::default()
    }
    .encode_to_vec();
    for p in 1..=MESH {
        relay.handle_connected(now, PeerId(p), &[Protocol::Relay]);
        relay.handle_frame(now, PeerId(p), &join);
    }
    while relay.poll_transmit().is_some() {}
    assert_eq!(relay.mesh_peers(topic.as_str()).len(), MESH as usize);
    relay
}

/// Feeds one unique message through the router and drains it; returns the bytes sent.
#[inline]
fn through_router(relay: &mut Relay, now: Now, frame: &mut [u8], at: usize, n: u64) -> usize {
    stamp(frame, at, n);
    relay.handle_frame(now, PeerId(1 + n % MESH), frame);
    let mut sent = 0;
    while let Some(t) = relay.poll_transmit() {
        sent += t.bytes.len();
    }
    while let Some(e) = relay.poll_event() {
        black_box(e);
    }
    sent
}

/// The primitives: decode the RPC, decode the Waku message, hash `data`, insert the id.
#[inline]
fn floor(seen: &mut HashSet<[u8; 32]>, frame: &mut [u8], at: usize, n: u64) -> bool {
    stamp(frame, at, n);
    let rpc = Rpc::decode(&*frame).unwrap();
    let data = rpc.publish[0].data.as_deref().unwrap();
    let msg = proto::waku::WakuMessage::decode(data).unwrap();
    black_box(&msg);
    let id: [u8; 32] = Sha256::digest(data).into();
    if seen.len() >= 131_072 {
        seen.clear();
    }
    seen.insert(id)
}

fn bench(c: &mut Criterion) {
    // Benches need one real instant; the router only sees it as an argument.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let now = Now {
        instant: start,
        unix_nanos: WALL,
    };
    let topic = PubsubTopic::static_shard(1, 0).unwrap();
    let (frame_bytes, at) = frame(&topic);
    println!(
        "frame: {} bytes (Waku message with a {PAYLOAD}-byte payload), mesh of {MESH}",
        frame_bytes.len()
    );

    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(1));
    {
        let mut relay = router(start, &topic);
        let mut f = frame_bytes.clone();
        let mut n = 0u64;
        g.bench_function("router_1KiB_message", |b| {
            b.iter(|| {
                n += 1;
                through_router(&mut relay, now, &mut f, at, n)
            })
        });
        assert_eq!(relay.stats().messages_accepted, n, "every message accepted");
    }
    {
        let mut seen = HashSet::new();
        let mut f = frame_bytes.clone();
        let mut n = 0u64;
        g.bench_function("floor_decode_hash_seen", |b| {
            b.iter(|| {
                n += 1;
                floor(&mut seen, &mut f, at, n)
            })
        });
    }
    g.finish();

    if std::env::args().any(|a| a == "--profile-time") {
        return;
    }
    // The ratio, measured interleaved in this run so both see the same machine state. Wall
    // time on a shared machine includes time the thread waits for a core, so the on-CPU time
    // of this thread (Linux `/proc/thread-self/schedstat`) is reported beside it.
    let mut relay = router(start, &topic);
    let mut seen = HashSet::new();
    let mut f = frame_bytes.clone();
    let rounds = 5;
    let per_round = 100_000u64;
    let (mut t_router, mut t_floor) = (Duration::ZERO, Duration::ZERO);
    let (mut cpu_router, mut cpu_floor) = (0u64, 0u64);
    let mut n = 1_000_000_000u64;
    for _ in 0..rounds {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let c0 = cpu_ns();
        for _ in 0..per_round {
            n += 1;
            black_box(through_router(&mut relay, now, &mut f, at, n));
        }
        cpu_router += cpu_ns().saturating_sub(c0);
        t_router += t0.elapsed();
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let c0 = cpu_ns();
        for _ in 0..per_round {
            n += 1;
            black_box(floor(&mut seen, &mut f, at, n));
        }
        cpu_floor += cpu_ns().saturating_sub(c0);
        t_floor += t0.elapsed();
    }
    let total = (rounds as u64 * per_round) as f64;
    let router_ns = t_router.as_nanos() as f64 / total;
    let floor_ns = t_floor.as_nanos() as f64 / total;
    println!(
        "relay summary: router {:.0} ns/msg = {:.0} msg/s (target >= 300000); floor {:.0} ns/msg \
         (target < 1000); router/floor = {:.2}",
        router_ns,
        1e9 / router_ns,
        floor_ns,
        router_ns / floor_ns
    );
    if cpu_router > 0 && cpu_floor > 0 {
        let router_cpu = cpu_router as f64 / total;
        let floor_cpu = cpu_floor as f64 / total;
        println!(
            "relay summary (on-CPU time): router {:.0} ns/msg = {:.0} msg/s per core; floor {:.0} \
             ns/msg; router/floor = {:.2}",
            router_cpu,
            1e9 / router_cpu,
            floor_cpu,
            router_cpu / floor_cpu
        );
    }
}

/// Nanoseconds this thread has run on a CPU (0 where Linux schedstat is unavailable).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|t| t.parse().ok()))
        .unwrap_or(0)
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
