//! Whole nodes on a virtual clock: a small simulated network of `WakuNode`s driven through the
//! `Machine` trait only, as a driver would.
//!
//! - lightpush from a light node reaches every relay;
//! - Bob is offline while Alice sends 500 messages, then pages through a store node's archive
//!   (forward and backward, pages of 7) and gets exactly those 500, in order, once;
//! - a light node's filter service node restarts mid-stream: the light node notices,
//!   resubscribes elsewhere and backfills the gap from a store, and ends with every message
//!   exactly once; the restarted node reopens its SQLite archive intact;
//! - a peer on another cluster is reported for disconnection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    missing_docs
)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use waku_core::lightpush::LightPushClientEvent;
use waku_core::message::{MessageHash, WakuMessage};
use waku_core::net::{FrameKind, Machine, Now, PeerId, Transmit};
use waku_core::node::{
    BackfillEvent, DisconnectReason, MessageSource, NodeEvent, Published, WakuNode, WakuNodeConfig,
};
use waku_core::roles::Capabilities;
use waku_core::store::{
    MessageStore, QueryLimits, SqliteStore, SqliteStoreConfig, StoreClientEvent, StoreQuery,
};
use waku_core::topic::{ContentTopic, PubsubTopic};

const CLUSTER: u16 = 16;
const SHARD: u16 = 32;

fn shard() -> PubsubTopic {
    PubsubTopic::static_shard(CLUSTER, SHARD).unwrap()
}

fn chat() -> ContentTopic {
    ContentTopic::new("/waku/1/0x5a6b7c8d/rfc26").unwrap()
}

fn later(now: Now, d: Duration) -> Now {
    Now {
        instant: now.instant + d,
        unix_nanos: now.unix_nanos + i64::try_from(d.as_nanos()).unwrap(),
    }
}

/// A network of nodes; node `i` is `PeerId(i)` to the others. Frames travel instantly along
/// links, in order.
struct Sim {
    now: Now,
    nodes: Vec<Option<WakuNode>>,
    links: BTreeSet<(usize, usize)>,
    /// Nodes that hang: their frames are lost and their timers do not run, but their links stay
    /// up (a frozen process behind a half-open connection).
    frozen: BTreeSet<usize>,
    events: Vec<Vec<NodeEvent>>,
}

impl Sim {
    fn new() -> Self {
        Sim {
            now: Now {
                instant: Instant::now(),
                unix_nanos: 1_750_000_000_000_000_000,
            },
            nodes: Vec::new(),
            links: BTreeSet::new(),
            frozen: BTreeSet::new(),
            events: Vec::new(),
        }
    }

    fn config(caps: Capabilities) -> WakuNodeConfig {
        WakuNodeConfig::new(caps, CLUSTER, vec![SHARD])
    }

    fn add(
        &mut self,
        config: WakuNodeConfig,
        archive: Option<Box<dyn MessageStore + Send>>,
    ) -> usize {
        let i = self.nodes.len();
        let seed = [u8::try_from(i + 1).unwrap(); 32];
        self.nodes.push(Some(
            WakuNode::new(config, archive, seed, self.now).unwrap(),
        ));
        self.events.push(Vec::new());
        i
    }

    fn node(&mut self, i: usize) -> &mut WakuNode {
        self.nodes[i].as_mut().unwrap()
    }

    fn link(&mut self, a: usize, b: usize) {
        let now = self.now;
        let pa = self.node(a).protocols();
        let pb = self.node(b).protocols();
        self.links.insert((a.min(b), a.max(b)));
        self.node(a).handle_dialed(now, PeerId(b as u64), &pb);
        self.node(b).handle_connected(now, PeerId(a as u64), &pa);
        self.pump();
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    /// Takes node `i` down: every link drops.
    fn crash(&mut self, i: usize) -> WakuNode {
        let now = self.now;
        let peers: Vec<usize> = self
            .links
            .iter()
            .filter_map(|&(a, b)| {
                if a == i {
                    Some(b)
                } else if b == i {
                    Some(a)
                } else {
                    None
                }
            })
            .collect();
        for p in peers {
            self.links.remove(&(i.min(p), i.max(p)));
            self.node(p).handle_disconnected(now, PeerId(i as u64));
        }
        self.frozen.remove(&i);
        self.pump();
        self.nodes[i].take().unwrap()
    }

    fn pump(&mut self) {
        loop {
            let mut queue: VecDeque<(usize, Transmit)> = VecDeque::new();
            for i in 0..self.nodes.len() {
                if self.frozen.contains(&i) {
                    continue;
                }
                if let Some(n) = self.nodes[i].as_mut() {
                    while let Some(t) = n.poll_transmit() {
                        queue.push_back((i, t));
                    }
                    while let Some(e) = n.poll_event() {
                        self.events[i].push(e);
                    }
                }
            }
            if queue.is_empty() {
                return;
            }
            let now = self.now;
            while let Some((from, t)) = queue.pop_front() {
                let to = usize::try_from(t.to.0).unwrap();
                if !self.linked(from, to) || self.frozen.contains(&to) {
                    continue;
                }
                // As the drivers do: a stream frame or request only to a node that serves the
                // protocol, a response only from one.
                let server = match t.kind {
                    FrameKind::Response(_) => from,
                    FrameKind::Stream | FrameKind::Request(_) => to,
                };
                let served = self.nodes[server]
                    .as_ref()
                    .is_some_and(|n| n.protocols().contains(&t.protocol));
                assert!(served, "{t:?} from {from} to {to}: not served");
                if let Some(n) = self.nodes[to].as_mut() {
                    n.handle_frame(now, PeerId(from as u64), t.protocol, t.kind, &t.bytes);
                }
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = later(self.now, d);
        loop {
            self.pump();
            let frozen = &self.frozen;
            let next = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| !frozen.contains(i))
                .filter_map(|(_, n)| n.as_ref().and_then(|n| n.poll_timeout()))
                .min();
            match next {
                Some(t) if t <= end.instant => {
                    let dt = t.saturating_duration_since(self.now.instant);
                    self.now = later(self.now, dt);
                    self.tick();
                }
                _ => break,
            }
        }
        self.now = end;
        self.tick();
        self.pump();
    }

    fn tick(&mut self) {
        let now = self.now;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if let Some(n) = n
                && !self.frozen.contains(&i)
            {
                n.handle_timeout(now);
            }
        }
    }

    fn take(&mut self, i: usize) -> Vec<NodeEvent> {
        std::mem::take(&mut self.events[i])
    }
}

fn delivered(events: &[NodeEvent]) -> Vec<(MessageHash, MessageSource)> {
    events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::Message { hash, source, .. } => Some((*hash, *source)),
            _ => None,
        })
        .collect()
}

fn msg(sim: &Sim, text: &str) -> WakuMessage {
    WakuMessage::new(chat(), text.as_bytes().to_vec()).with_timestamp(sim.now.unix_nanos)
}

#[test]
fn lightpush_from_a_light_node_reaches_every_relay() {
    let mut sim = Sim::new();
    let full: Vec<usize> = (0..5)
        .map(|_| sim.add(Sim::config(Capabilities::FULL), None))
        .collect();
    let light = sim.add(Sim::config(Capabilities::LIGHT), None);
    // A ring of relays; the light node knows only node 0.
    for i in 0..5 {
        sim.link(full[i], full[(i + 1) % 5]);
    }
    sim.link(light, full[0]);
    let now = sim.now;
    for &f in &full {
        sim.node(f).subscribe(now, shard(), vec![]).unwrap();
    }
    sim.advance(Duration::from_secs(5));
    for &f in &full {
        sim.take(f);
    }
    let now = sim.now;
    let m = msg(&sim, "hello from a phone");
    let published = sim
        .node(light)
        .publish(now, Some(shard()), m.clone())
        .unwrap();
    let Published::LightPushed { hash, peer, .. } = published else {
        panic!("{published:?}")
    };
    assert_eq!(peer, PeerId(0));
    sim.advance(Duration::from_secs(2));
    let ev = sim.take(light);
    assert!(
        ev.iter().any(|e| matches!(e, NodeEvent::LightPush(LightPushClientEvent::Pushed { relay_peer_count: Some(n), .. }) if *n >= 2)),
        "{ev:?}"
    );
    // Node 0 published it (its relay does not echo its own messages); every other relay
    // delivers it exactly once.
    for &f in &full[1..] {
        let got = delivered(&sim.take(f));
        assert_eq!(got.len(), 1, "node {f}: {got:?}");
        assert_eq!(got[0].0, hash);
    }
    // Every full node archived it.
    for &f in &full {
        let s = sim.node(f).store_server_mut().unwrap();
        s.flush();
        let page = waku_core::store::run_query(s.store_mut(), &StoreQuery::hashes([hash])).unwrap();
        assert_eq!(page.entries.len(), 1, "node {f}");
    }
}

#[test]
fn lone_service_node_accepts_lightpush_and_serves_filter() {
    // js-waku needs a lone node to answer 200 (relay_peer_count 0) and still deliver.
    let mut sim = Sim::new();
    let service = sim.add(Sim::config(Capabilities::FULL), None);
    let sender = sim.add(Sim::config(Capabilities::LIGHT), None);
    let receiver = sim.add(Sim::config(Capabilities::LIGHT), None);
    sim.link(sender, service);
    sim.link(receiver, service);
    let now = sim.now;
    sim.node(receiver)
        .subscribe(now, shard(), vec![chat()])
        .unwrap();
    sim.advance(Duration::from_secs(1));
    let now = sim.now;
    let m = msg(&sim, "alone");
    sim.node(sender)
        .publish(now, Some(shard()), m.clone())
        .unwrap();
    sim.advance(Duration::from_secs(1));
    assert!(sim.take(sender).iter().any(|e| matches!(
        e,
        NodeEvent::LightPush(LightPushClientEvent::Pushed {
            relay_peer_count: Some(0),
            ..
        })
    )));
    let got = delivered(&sim.take(receiver));
    assert_eq!(
        got,
        vec![(m.hash(&shard()), MessageSource::Filter(PeerId(0)))]
    );
}

#[test]
fn bob_offline_pages_the_store_and_gets_exactly_the_500() {
    let mut sim = Sim::new();
    let alice = sim.add(Sim::config(Capabilities::FULL), None);
    let relay = sim.add(
        Sim::config(Capabilities::FULL.without(waku_core::roles::Capability::Store)),
        None,
    );
    let store = sim.add(
        Sim::config(Capabilities::FULL),
        Some(Box::new(SqliteStore::open_in_memory().unwrap())),
    );
    sim.link(alice, relay);
    sim.link(relay, store);
    sim.advance(Duration::from_secs(3));
    // Bob is offline; Alice sends 500 messages, a few per second, some on other topics.
    let mut sent = Vec::new();
    for i in 0..500 {
        let now = sim.now;
        let m = msg(&sim, &format!("alice to bob {i}"));
        let Published::Relayed { hash, .. } =
            sim.node(alice).publish(now, Some(shard()), m).unwrap()
        else {
            panic!()
        };
        sent.push(hash);
        if i % 3 == 0 {
            let other = WakuMessage::new(
                ContentTopic::new("/other/1/x/proto").unwrap(),
                format!("other {i}").into_bytes(),
            )
            .with_timestamp(now.unix_nanos);
            sim.node(alice).publish(now, Some(shard()), other).unwrap();
        }
        if i % 4 == 0 {
            sim.advance(Duration::from_millis(700));
        }
    }
    sim.advance(Duration::from_secs(2));
    // Bob comes online, connects to the store node and pages forward, then backward.
    let bob = sim.add(Sim::config(Capabilities::LIGHT), None);
    sim.advance(Duration::from_secs(60));
    sim.link(bob, store);
    let mut results = Vec::new();
    for forward in [true, false] {
        let now = sim.now;
        let q = StoreQuery::topics(shard(), [chat()]).page_size(7);
        let q = if forward { q.forward() } else { q };
        sim.node(bob)
            .query_store(now, None, q, QueryLimits::default())
            .unwrap();
        sim.advance(Duration::from_secs(1));
        let mut pages: Vec<Vec<MessageHash>> = Vec::new();
        let mut finished = false;
        for e in sim.take(bob) {
            match e {
                NodeEvent::Store(StoreClientEvent::Page {
                    entries,
                    rejected,
                    peer,
                    ..
                }) => {
                    assert_eq!((rejected, peer), (0, PeerId(store as u64)));
                    assert!(entries.len() <= 7);
                    pages.push(entries.iter().map(|e| e.hash).collect());
                }
                NodeEvent::Store(StoreClientEvent::Finished {
                    result, entries, ..
                }) => {
                    assert_eq!((result, entries), (Ok(()), 500));
                    finished = true;
                }
                _ => {}
            }
        }
        assert!(finished);
        if !forward {
            pages.reverse();
        }
        let all: Vec<MessageHash> = pages.into_iter().flatten().collect();
        results.push(all);
    }
    assert_eq!(results[0].len(), 500);
    assert_eq!(
        results[0].iter().collect::<BTreeSet<_>>().len(),
        500,
        "no duplicates"
    );
    assert_eq!(
        results[0].iter().copied().collect::<BTreeSet<_>>(),
        sent.iter().copied().collect::<BTreeSet<_>>()
    );
    assert_eq!(results[0], results[1], "backward pages give the same order");
    // In (timestamp, hash) order, which for Alice's sequential sends is send order up to ties.
    let sent_pos: BTreeMap<MessageHash, usize> =
        sent.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let mut last_ts = i64::MIN;
    let archive = sim.node(store).store_server_mut().unwrap();
    for h in &results[0] {
        let p = archive.store_mut().position(h).unwrap().unwrap();
        assert!(p.timestamp >= last_ts);
        last_ts = p.timestamp;
        assert!(sent_pos.contains_key(h));
    }
}

fn temp_db(tag: &str) -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("status-rs-node-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("archive.db")
}

#[test]
fn filter_service_restart_is_noticed_resubscribed_and_backfilled() {
    let seed = 42u64;
    println!("seed {seed}");
    let mut sim = Sim::new();
    // Node 0: the light node's filter service (relay, store on SQLite, filter).
    // Node 1: Alice's full node, which also stores. Node 2: the light node.
    let f_path = temp_db("filter-service");
    let f_store = |path: &PathBuf| -> Box<dyn MessageStore + Send> {
        Box::new(SqliteStore::open(path, &SqliteStoreConfig::default()).unwrap())
    };
    let service = sim.add(Sim::config(Capabilities::FULL), Some(f_store(&f_path)));
    let alice = sim.add(Sim::config(Capabilities::FULL), None);
    let light = sim.add(Sim::config(Capabilities::LIGHT), None);
    sim.link(service, alice);
    sim.link(light, service);
    sim.link(light, alice);
    let now = sim.now;
    sim.node(light)
        .subscribe(now, shard(), vec![chat()])
        .unwrap();
    sim.advance(Duration::from_secs(3));
    assert_eq!(
        sim.node(light).filter_client().service_peer(),
        Some(PeerId(service as u64))
    );

    // Alice sends one message a second for two minutes. At 30 s the service node hangs (its
    // connection stays up, nothing gets through); at 50 s the connection finally drops and the
    // node restarts (same archive file, fresh memory) and reconnects.
    let mut sent = Vec::new();
    for sec in 0..120 {
        if sec == 30 {
            sim.frozen.insert(service);
        }
        if sec == 50 {
            drop(sim.crash(service));
            let now = sim.now;
            let restarted = WakuNode::new(
                Sim::config(Capabilities::FULL),
                Some(f_store(&f_path)),
                [9; 32],
                now,
            )
            .unwrap();
            sim.nodes[service] = Some(restarted);
            sim.link(service, alice);
            sim.link(light, service);
        }
        let now = sim.now;
        let m = msg(&sim, &format!("tick {sec}"));
        let Published::Relayed { hash, .. } =
            sim.node(alice).publish(now, Some(shard()), m).unwrap()
        else {
            panic!()
        };
        sent.push(hash);
        sim.advance(Duration::from_secs(1));
    }
    sim.advance(Duration::from_secs(70));
    let ev = sim.take(light);
    let got = delivered(&ev);
    println!("light node saw {} events", ev.len());
    let hashes: Vec<MessageHash> = got.iter().map(|(h, _)| *h).collect();
    let unique: BTreeSet<MessageHash> = hashes.iter().copied().collect();
    assert_eq!(unique.len(), hashes.len(), "each message once");
    assert_eq!(
        unique,
        sent.iter().copied().collect::<BTreeSet<_>>(),
        "nothing missing"
    );
    // It noticed, moved to Alice's node, and the gap came from a store.
    assert!(ev.iter().any(|e| matches!(e, NodeEvent::Filter(waku_core::filter::FilterClientEvent::ServicePeerChanged { new: Some(p), .. }) if *p == PeerId(alice as u64))));
    let from_store = got
        .iter()
        .filter(|(_, s)| matches!(s, MessageSource::Store(_)))
        .count();
    let started = ev
        .iter()
        .filter(|e| matches!(e, NodeEvent::Backfill(BackfillEvent::Started { .. })))
        .count();
    assert!(
        started >= 1 && from_store >= 19,
        "backfills {started}, recovered {from_store}"
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, NodeEvent::Backfill(BackfillEvent::Failed { .. })))
    );
    println!(
        "{} messages: {} pushed, {} backfilled from a store",
        got.len(),
        got.len() - from_store,
        from_store
    );

    // The restarted service node reopened its SQLite archive: messages from before the crash
    // are still there.
    let archive = sim.node(service).store_server_mut().unwrap();
    archive.flush();
    let page = waku_core::store::run_query(
        archive.store_mut(),
        &StoreQuery::hashes(sent[..5].iter().copied()),
    )
    .unwrap();
    assert_eq!(page.entries.len(), 5);
    let _ = std::fs::remove_dir_all(f_path.parent().unwrap());
}

#[test]
fn peer_on_another_cluster_is_reported() {
    let mut sim = Sim::new();
    let ours = sim.add(Sim::config(Capabilities::FULL), None);
    let theirs = sim.add(WakuNodeConfig::new(Capabilities::FULL, 1, vec![0]), None);
    sim.link(ours, theirs);
    let ev = sim.take(ours);
    assert!(ev.contains(&NodeEvent::DisconnectPeer {
        peer: PeerId(theirs as u64),
        reason: DisconnectReason::ClusterMismatch { theirs: 1 }
    }));
}
