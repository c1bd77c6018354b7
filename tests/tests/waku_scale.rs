//! The scale run (issue 9, item 5): relaying `WakuNode`s on the simulated network
//! (`transports::memory`), random topology, link latencies uniform in 20–80 ms, publishers
//! sending 1 KiB messages at a steady rate. It prints figures; nothing in it is timed.
//!
//! - `scale_run` (ignored; prints): delivery ratio, median and 99th-percentile propagation
//!   latency in virtual time, network bytes per delivered message (amplification), and the
//!   simulation's speed in virtual seconds per wall-clock (and on-CPU) second, against a floor:
//!   the same number of bare frame deliveries through the same simulator and topology by
//!   flooding machines with no relay logic. Sizes come from the environment:
//!
//!   ```text
//!   SCALE_NODES=1000 SCALE_MESSAGES=10000 SCALE_PUBLISHERS=100 \
//!     cargo test -p tests --test waku_scale -- --ignored --nocapture
//!   ```
//!
//!   Defaults: 200 nodes, 10 messages per node, one publisher per 10 nodes; each publisher
//!   sends one message every 10 virtual seconds (an RLN-like rate), so the messages spread
//!   over `10 s × messages / publishers` of virtual time.
//! - `small_relay_network_delivers_everything` (default run): 60 nodes, 300 messages, the same
//!   shape; every message reaches every node exactly once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    clippy::cast_precision_loss,
    missing_docs
)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use transports::memory::{LinkConfig, NodeId, Sim, SimConfig};
use waku_core::message::{MessageHash, WakuMessage};
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use waku_core::node::{NodeEvent, Published, WakuNode, WakuNodeConfig};
use waku_core::roles::{Capabilities, Capability};
use waku_core::topic::{ContentTopic, PubsubTopic};

const CLUSTER: u16 = 16;
const SHARD: u16 = 32;

fn shard() -> PubsubTopic {
    PubsubTopic::static_shard(CLUSTER, SHARD).unwrap()
}

/// SplitMix64: the topology and publisher choice (the simulator has its own seeded RNG).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone)]
struct Params {
    nodes: usize,
    messages: usize,
    publishers: usize,
    payload: usize,
    /// Each publisher sends one message per period.
    period: Duration,
    dials: (usize, usize),
    latency_ms: (u64, u64),
    warmup: Duration,
    drain: Duration,
    seed: u64,
}

impl Params {
    fn from_env() -> Self {
        let get = |name: &str, default: usize| -> usize {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let nodes = get("SCALE_NODES", 200).max(12);
        Params {
            nodes,
            messages: get("SCALE_MESSAGES", nodes * 10),
            publishers: get("SCALE_PUBLISHERS", nodes / 10).clamp(1, nodes),
            payload: 1024,
            period: Duration::from_secs(10),
            dials: (6, 10),
            latency_ms: (20, 80),
            warmup: Duration::from_secs(15),
            drain: Duration::from_secs(10),
            seed: get("SCALE_SEED", 1) as u64,
        }
    }

    /// Virtual time between two publishes (all publishers together).
    fn gap(&self) -> Duration {
        self.period / u32::try_from(self.publishers).unwrap()
    }
}

/// The random topology: node `i` dials `dials.0..=dials.1` distinct others; latency per link
/// uniform in `latency_ms` (both directions). Returns the links and whether the graph is
/// connected.
fn topology(p: &Params, rng: &mut Mix) -> (Vec<(usize, usize, Duration)>, bool) {
    let mut set = BTreeSet::new();
    let mut links = Vec::new();
    let span = (p.dials.1 - p.dials.0 + 1) as u64;
    for i in 0..p.nodes {
        let want = p.dials.0 + rng.below(span) as usize;
        let mut made = 0;
        let mut tries = 0;
        while made < want && tries < 100 * want {
            tries += 1;
            let j = rng.below(p.nodes as u64) as usize;
            if j == i || !set.insert((i.min(j), i.max(j))) {
                continue;
            }
            let lat = p.latency_ms.0 + rng.below(p.latency_ms.1 - p.latency_ms.0 + 1);
            links.push((i, j, Duration::from_millis(lat)));
            made += 1;
        }
    }
    let mut adj = vec![Vec::new(); p.nodes];
    for &(a, b, _) in &links {
        adj[a].push(b);
        adj[b].push(a);
    }
    let mut seen = vec![false; p.nodes];
    let mut queue = VecDeque::from([0usize]);
    seen[0] = true;
    while let Some(n) = queue.pop_front() {
        for &m in &adj[n] {
            if !seen[m] {
                seen[m] = true;
                queue.push_back(m);
            }
        }
    }
    (links, seen.iter().all(|s| *s))
}

fn sim_config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        // Hashing every 1 KiB body costs more than the simulator itself at this size
        // (BENCHMARKS.md); determinism is checked with the digest on in transports' tests.
        digest: false,
        max_events_per_node: 100_000,
        ..SimConfig::default()
    }
}

/// On-CPU time of this thread (Linux schedstat), if available.
fn cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

#[derive(Debug)]
struct Outcome {
    nodes: usize,
    messages: usize,
    links: usize,
    connected: bool,
    /// (message, receiver) pairs delivered, out of `messages × (nodes - 1)`.
    delivered: u64,
    expected: u64,
    /// Deliveries of a message a node had already delivered (must be 0).
    repeats: u64,
    latencies_us: Vec<u64>,
    /// Network totals while messages flowed (publishing and drain), all protocols.
    frames: u64,
    bytes: u64,
    frame_deliveries: u64,
    virtual_time: Duration,
    wall: Duration,
    cpu: Option<Duration>,
    degree_sum: usize,
    events_dropped: u64,
    disconnect_requests: u64,
}

fn run(p: &Params) -> Outcome {
    let mut rng = Mix(p.seed);
    let (links, connected) = topology(p, &mut rng);
    let wall_start = Instant::now();
    let cpu_start = cpu_time();
    let mut sim: Sim<WakuNode> = Sim::new(sim_config(p.seed)).unwrap();
    let caps = Capabilities::LIGHT.with(Capability::Relay);
    let mut ids = Vec::with_capacity(p.nodes);
    for i in 0..p.nodes {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        seed[8..16].copy_from_slice(&p.seed.to_le_bytes());
        let id = sim
            .add_node(|now| {
                let mut n = WakuNode::new(
                    WakuNodeConfig::new(caps, CLUSTER, vec![SHARD]),
                    None,
                    seed,
                    now,
                )
                .unwrap();
                // Deliver every message of the shard to the application (all content topics).
                n.subscribe(now, shard(), vec![]).unwrap();
                n
            })
            .unwrap();
        ids.push(id);
    }
    for &(a, b, lat) in &links {
        sim.connect_with(ids[a], ids[b], LinkConfig::new(lat))
            .unwrap();
    }
    let degree_sum = 2 * links.len();
    // Publishers: distinct nodes.
    let mut publishers = BTreeSet::new();
    while publishers.len() < p.publishers {
        publishers.insert(rng.below(p.nodes as u64) as usize);
    }
    let publishers: Vec<usize> = publishers.into_iter().collect();
    sim.run_until(p.warmup).unwrap();
    for &id in &ids {
        sim.take_events(id);
    }

    let base = sim.stats().clone();
    let content = ContentTopic::new("/scale/1/load/proto").unwrap();
    let mut published: BTreeMap<MessageHash, (u32, Duration)> = BTreeMap::new();
    let mut got: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); p.nodes];
    let mut latencies_us = Vec::with_capacity(p.messages * (p.nodes - 1));
    let mut repeats = 0u64;
    let mut disconnect_requests = 0u64;
    let gap = p.gap();
    let collect = |sim: &mut Sim<WakuNode>,
                   published: &BTreeMap<MessageHash, (u32, Duration)>,
                   got: &mut Vec<BTreeSet<u32>>,
                   latencies_us: &mut Vec<u64>,
                   repeats: &mut u64,
                   disconnects: &mut u64| {
        for (i, &id) in ids.iter().enumerate() {
            for r in sim.take_events(id) {
                match r.event {
                    NodeEvent::Message { hash, .. } => {
                        let Some(&(m, at)) = published.get(&hash) else {
                            continue;
                        };
                        if got[i].insert(m) {
                            latencies_us
                                .push(u64::try_from(r.at.saturating_sub(at).as_micros()).unwrap());
                        } else {
                            *repeats += 1;
                        }
                    }
                    NodeEvent::DisconnectPeer { .. } => *disconnects += 1,
                    _ => {}
                }
            }
        }
    };
    for m in 0..p.messages {
        let at = p.warmup + gap * u32::try_from(m).unwrap();
        sim.run_until(at).unwrap();
        let publisher = ids[publishers[m % publishers.len()]];
        let mut payload = vec![0u8; p.payload];
        payload[..8].copy_from_slice(&(m as u64).to_be_bytes());
        let message = WakuMessage::new(content.clone(), payload);
        let out = sim
            .with_node(publisher, |n, now| {
                let message = message.with_timestamp(now.unix_nanos);
                n.publish(now, Some(shard()), message)
            })
            .unwrap()
            .unwrap();
        let Published::Relayed { hash, .. } = out else {
            panic!("{out:?}")
        };
        published.insert(hash, (u32::try_from(m).unwrap(), at));
        got[publishers[m % publishers.len()]].insert(u32::try_from(m).unwrap());
        // Collect once per virtual second.
        if (m + 1) % (Duration::from_secs(1).as_nanos() / gap.as_nanos()).max(1) as usize == 0 {
            collect(
                &mut sim,
                &published,
                &mut got,
                &mut latencies_us,
                &mut repeats,
                &mut disconnect_requests,
            );
        }
    }
    let end = p.warmup + gap * u32::try_from(p.messages).unwrap() + p.drain;
    sim.run_until(end).unwrap();
    collect(
        &mut sim,
        &published,
        &mut got,
        &mut latencies_us,
        &mut repeats,
        &mut disconnect_requests,
    );
    let wall = wall_start.elapsed();
    let cpu = cpu_start.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    let s = sim.stats();
    let events_dropped = ids
        .iter()
        .map(|&id| sim.node_stats(id).unwrap().events_dropped)
        .sum();
    let delivered = got.iter().map(|g| g.len() as u64).sum::<u64>() - p.messages as u64;
    latencies_us.sort_unstable();
    Outcome {
        nodes: p.nodes,
        messages: p.messages,
        links: links.len(),
        connected,
        delivered,
        expected: (p.messages * (p.nodes - 1)) as u64,
        repeats,
        latencies_us,
        frames: s.frames_sent - base.frames_sent,
        bytes: s.bytes_sent - base.bytes_sent,
        frame_deliveries: s.delivered,
        virtual_time: sim.elapsed(),
        wall,
        cpu,
        degree_sum,
        events_dropped,
        disconnect_requests,
    }
}

fn percentile(sorted: &[u64], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Duration::from_micros(sorted[i.min(sorted.len() - 1)])
}

/// The floor: machines that flood each fresh frame to every other peer, with no decoding,
/// hashing or relay state beyond a seen set.
struct Flood {
    peers: Vec<PeerId>,
    seen: BTreeSet<u64>,
    out: VecDeque<Transmit>,
}

impl Flood {
    fn send_all(&mut self, except: Option<PeerId>, body: &[u8]) {
        for &p in self.peers.iter().filter(|&&p| Some(p) != except) {
            self.out.push_back(Transmit {
                to: p,
                protocol: Protocol::Relay,
                kind: FrameKind::Stream,
                bytes: body.to_vec(),
            });
        }
    }
}

impl Machine for Flood {
    type Event = ();
    fn handle_connected(&mut self, _: Now, peer: PeerId, _: &[Protocol]) {
        self.peers.push(peer);
    }
    fn handle_disconnected(&mut self, _: Now, peer: PeerId) {
        self.peers.retain(|p| *p != peer);
    }
    fn handle_frame(&mut self, _: Now, from: PeerId, _: Protocol, _: FrameKind, f: &[u8]) {
        let id = u64::from_be_bytes(f[..8].try_into().unwrap());
        if self.seen.insert(id) {
            self.send_all(Some(from), f);
        }
    }
    fn handle_timeout(&mut self, _: Now) {}
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::Relay]
    }
}

/// Pushes at least `deliveries` frames of `frame_len` bytes through the same simulator and
/// topology with [`Flood`] machines; returns (frames delivered, wall, cpu).
fn floor(p: &Params, deliveries: u64, frame_len: usize) -> (u64, Duration, Option<Duration>) {
    let mut rng = Mix(p.seed);
    let (links, _) = topology(p, &mut rng);
    let wall_start = Instant::now();
    let cpu_start = cpu_time();
    let mut sim: Sim<Flood> = Sim::new(sim_config(p.seed)).unwrap();
    let ids: Vec<NodeId> = (0..p.nodes)
        .map(|_| {
            sim.add_node(|_| Flood {
                peers: Vec::new(),
                seen: BTreeSet::new(),
                out: VecDeque::new(),
            })
            .unwrap()
        })
        .collect();
    for &(a, b, lat) in &links {
        sim.connect_with(ids[a], ids[b], LinkConfig::new(lat))
            .unwrap();
    }
    let gap = p.gap();
    let mut m = 0u64;
    while sim.stats().delivered < deliveries {
        let publisher = ids[(m as usize * 7919) % ids.len()];
        let mut body = vec![0u8; frame_len.max(8)];
        body[..8].copy_from_slice(&m.to_be_bytes());
        sim.with_node(publisher, |n, _| {
            n.seen.insert(m);
            n.send_all(None, &body);
        })
        .unwrap();
        m += 1;
        sim.run_for(gap).unwrap();
    }
    sim.run_until_quiet(u64::MAX).unwrap();
    (
        sim.stats().delivered,
        wall_start.elapsed(),
        cpu_start.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a)),
    )
}

fn report(p: &Params, o: &Outcome, floor: Option<(u64, Duration, Option<Duration>)>) {
    let ratio = o.delivered as f64 / o.expected as f64;
    println!(
        "scale run: {} relaying WakuNodes, {} links (mean degree {:.1}, connected: {}), \
         latency {}-{} ms per link, {} publishers, {} messages of {} B, one per {:?} \
         ({:?} of publishing), seed {}",
        o.nodes,
        o.links,
        o.degree_sum as f64 / o.nodes as f64,
        o.connected,
        p.latency_ms.0,
        p.latency_ms.1,
        p.publishers,
        o.messages,
        p.payload,
        p.gap(),
        p.gap() * u32::try_from(o.messages).unwrap(),
        p.seed
    );
    println!(
        "delivery: {} of {} (message, node) pairs = {:.4}%; repeats {}; events dropped {}; \
         disconnect requests {}",
        o.delivered,
        o.expected,
        ratio * 100.0,
        o.repeats,
        o.events_dropped,
        o.disconnect_requests
    );
    println!(
        "propagation latency (virtual): median {:?}, p90 {:?}, p99 {:?}, max {:?}",
        percentile(&o.latencies_us, 0.5),
        percentile(&o.latencies_us, 0.9),
        percentile(&o.latencies_us, 0.99),
        percentile(&o.latencies_us, 1.0)
    );
    let per_delivery = o.bytes as f64 / o.delivered.max(1) as f64;
    println!(
        "traffic while publishing: {} frames, {} bytes sent (all protocols); {:.0} bytes per \
         delivered (message, node) pair = {:.2}x the {} B payload; {:.0} bytes sent per node \
         per published message",
        o.frames,
        o.bytes,
        per_delivery,
        per_delivery / p.payload as f64,
        p.payload,
        o.bytes as f64 / o.nodes as f64 / o.messages as f64
    );
    let v = o.virtual_time.as_secs_f64();
    println!(
        "speed: {:.1} s virtual in {:.1} s wall = {:.2} virtual s per wall s; {} frame \
         deliveries, {:.2} us wall each",
        v,
        o.wall.as_secs_f64(),
        v / o.wall.as_secs_f64(),
        o.frame_deliveries,
        o.wall.as_secs_f64() * 1e6 / o.frame_deliveries.max(1) as f64
    );
    if let Some(cpu) = o.cpu {
        println!(
            "  on-CPU: {:.1} s = {:.2} virtual s per CPU s, {:.2} us per frame delivery",
            cpu.as_secs_f64(),
            v / cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / o.frame_deliveries.max(1) as f64
        );
    }
    if let Some((n, wall, cpu)) = floor {
        let per = |d: Duration, k: u64| d.as_secs_f64() * 1e6 / k.max(1) as f64;
        println!(
            "floor (same simulator and topology, flooding machines, no relay logic): {} frame \
             deliveries in {:.1} s wall ({:.2} us each); run / floor per delivery = {:.2} wall",
            n,
            wall.as_secs_f64(),
            per(wall, n),
            per(o.wall, o.frame_deliveries) / per(wall, n)
        );
        if let (Some(c), Some(oc)) = (cpu, o.cpu) {
            println!(
                "  floor on-CPU {:.1} s ({:.2} us each); run / floor per delivery = {:.2} on CPU",
                c.as_secs_f64(),
                per(c, n),
                per(oc, o.frame_deliveries) / per(c, n)
            );
        }
    }
}

#[test]
#[ignore = "prints figures; run with --ignored --nocapture, SCALE_NODES=1000 for the full size"]
fn scale_run() {
    let p = Params::from_env();
    println!("{p:?}");
    if p.nodes < 1000 {
        println!(
            "(default size; the full run is opt-in: SCALE_NODES=1000 SCALE_MESSAGES=10000 \
             SCALE_PUBLISHERS=100)"
        );
    }
    let o = run(&p);
    let frame_len = (o.bytes / o.frames.max(1)) as usize;
    let f = floor(&p, o.frame_deliveries, frame_len);
    report(&p, &o, Some(f));
}

#[test]
fn small_relay_network_delivers_everything() {
    let p = Params {
        nodes: 60,
        messages: 300,
        publishers: 10,
        payload: 1024,
        period: Duration::from_secs(2),
        dials: (6, 10),
        latency_ms: (20, 80),
        warmup: Duration::from_secs(15),
        drain: Duration::from_secs(10),
        seed: 7,
    };
    println!("seed {}", p.seed);
    let o = run(&p);
    report(&p, &o, None);
    assert!(o.connected);
    assert_eq!(o.repeats, 0);
    assert_eq!(o.events_dropped, 0);
    assert_eq!(o.delivered, o.expected, "every message at every node");
    // With 20-80 ms links and a mesh of degree ~6 over 60 nodes, no message needs more than a
    // few hops; a delivery seconds late would mean it came through gossip repair, not the mesh.
    assert!(percentile(&o.latencies_us, 0.99) < Duration::from_secs(1));
}
