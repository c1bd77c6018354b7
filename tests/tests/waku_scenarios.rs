//! `WakuNode` scenarios on the simulated network (`transports::memory`): real latencies,
//! jitter, duplication, reordering, loss, partitions, crashes and restarts, driven only through
//! the `Machine` trait by the simulator.
//!
//! - lightpush from a light node reaches every relay (links duplicate and reorder);
//! - a lone service node acks a lightpush and serves filter;
//! - relay over lossy, duplicating, reordering links: every message at every node, once;
//! - Bob is offline while Alice sends 500 messages, then pages a store's archive forward and
//!   backward (pages of 7, requests and answers duplicated) and gets exactly those 500, in
//!   order, once;
//! - retention: the archive drops what is older than its age limit, and keeps only the newest
//!   under a count limit;
//! - a light node's filter service node hangs (a partition), then crashes and restarts from
//!   its SQLite archive: the light node moves to another service node, backfills the gap from
//!   a store, and ends with every message exactly once;
//! - a peer on another cluster is reported for disconnection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    missing_docs
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use transports::memory::{LinkConfig, NodeId, Sim, SimConfig};
use waku_core::filter::FilterClientEvent;
use waku_core::lightpush::LightPushClientEvent;
use waku_core::message::{MessageHash, WakuMessage};
use waku_core::net::Now;
use waku_core::node::{
    BackfillEvent, DisconnectReason, MessageSource, NodeEvent, Published, WakuNode, WakuNodeConfig,
};
use waku_core::roles::{Capabilities, Capability};
use waku_core::store::{
    MessageStore, QueryLimits, RetentionPolicy, SqliteStore, SqliteStoreConfig, StoreClientEvent,
    StoreQuery, StoreServerEvent,
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

fn config(caps: Capabilities) -> WakuNodeConfig {
    WakuNodeConfig::new(caps, CLUSTER, vec![SHARD])
}

/// A simulation whose default link is 20-40 ms.
fn new_sim(seed: u64) -> Sim<WakuNode> {
    println!("seed {seed}");
    Sim::new(SimConfig {
        seed,
        default_link: LinkConfig::new(Duration::from_millis(20))
            .with_jitter(Duration::from_millis(20)),
        ..SimConfig::default()
    })
    .unwrap()
}

fn add(
    sim: &mut Sim<WakuNode>,
    config: WakuNodeConfig,
    archive: Option<Box<dyn MessageStore + Send>>,
    seed: u8,
) -> NodeId {
    sim.add_node(|now| WakuNode::new(config, archive, [seed; 32], now).unwrap())
        .unwrap()
}

fn events(sim: &mut Sim<WakuNode>, id: NodeId) -> Vec<NodeEvent> {
    sim.take_events(id).into_iter().map(|r| r.event).collect()
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

fn msg(text: &str, now: Now) -> WakuMessage {
    WakuMessage::new(chat(), text.as_bytes().to_vec()).with_timestamp(now.unix_nanos)
}

fn publish(sim: &mut Sim<WakuNode>, id: NodeId, text: &str) -> Published {
    sim.with_node(id, |n, now| n.publish(now, Some(shard()), msg(text, now)))
        .unwrap()
        .unwrap()
}

fn relayed(p: Published) -> MessageHash {
    match p {
        Published::Relayed { hash, .. } => hash,
        other => panic!("{other:?}"),
    }
}

/// Whether `id`'s archive holds each of `hashes`.
fn archived(sim: &mut Sim<WakuNode>, id: NodeId, hashes: &[MessageHash]) -> usize {
    sim.with_node(id, |n, _| {
        let s = n.store_server_mut().unwrap();
        s.flush();
        waku_core::store::run_query(s.store_mut(), &StoreQuery::hashes(hashes.iter().copied()))
            .unwrap()
            .entries
            .len()
    })
    .unwrap()
}

#[test]
fn lightpush_from_a_light_node_reaches_every_relay() {
    let mut sim = new_sim(1);
    // Every link duplicates and reorders.
    let rough = LinkConfig::new(Duration::from_millis(25))
        .with_jitter(Duration::from_millis(15))
        .with_duplicate(0.2)
        .with_reorder(0.3, Duration::from_millis(40));
    let full: Vec<NodeId> = (0..5)
        .map(|i| add(&mut sim, config(Capabilities::FULL), None, i + 1))
        .collect();
    let light = add(&mut sim, config(Capabilities::LIGHT), None, 9);
    // A ring of relays; the light node knows only the first.
    for i in 0..5 {
        sim.connect_with(full[i], full[(i + 1) % 5], rough.clone())
            .unwrap();
    }
    sim.connect_with(light, full[0], rough).unwrap();
    for &f in &full {
        sim.with_node(f, |n, now| n.subscribe(now, shard(), vec![]))
            .unwrap()
            .unwrap();
    }
    sim.run_for(Duration::from_secs(5)).unwrap();
    for &f in &full {
        sim.take_events(f);
    }
    let published = sim
        .with_node(light, |n, now| {
            n.publish(now, Some(shard()), msg("hello from a phone", now))
        })
        .unwrap()
        .unwrap();
    let Published::LightPushed { hash, peer, .. } = published else {
        panic!("{published:?}")
    };
    assert_eq!(Some(peer), sim.peer_id(light, full[0]));
    sim.run_for(Duration::from_secs(3)).unwrap();
    let ev = events(&mut sim, light);
    assert!(
        ev.iter().any(|e| matches!(e, NodeEvent::LightPush(LightPushClientEvent::Pushed { relay_peer_count: Some(n), .. }) if *n >= 2)),
        "{ev:?}"
    );
    // The service node published it (its relay does not echo its own messages); every other
    // relay delivers it exactly once, duplicated links notwithstanding.
    for &f in &full[1..] {
        let got = delivered(&events(&mut sim, f));
        assert_eq!(got.len(), 1, "{f}: {got:?}");
        assert_eq!(got[0].0, hash);
    }
    for &f in &full {
        assert_eq!(archived(&mut sim, f, &[hash]), 1, "{f} archived it");
    }
    assert!(sim.stats().duplicates > 0, "the links did duplicate");
}

#[test]
fn lone_service_node_accepts_lightpush_and_serves_filter() {
    // js-waku needs a lone node to answer 200 (relay_peer_count 0) and still deliver.
    let mut sim = new_sim(2);
    let service = add(&mut sim, config(Capabilities::FULL), None, 1);
    let sender = add(&mut sim, config(Capabilities::LIGHT), None, 2);
    let receiver = add(&mut sim, config(Capabilities::LIGHT), None, 3);
    sim.connect(sender, service).unwrap();
    sim.connect(receiver, service).unwrap();
    sim.with_node(receiver, |n, now| n.subscribe(now, shard(), vec![chat()]))
        .unwrap()
        .unwrap();
    sim.run_for(Duration::from_secs(1)).unwrap();
    let hash = match publish(&mut sim, sender, "alone") {
        Published::LightPushed { hash, .. } => hash,
        other => panic!("{other:?}"),
    };
    sim.run_for(Duration::from_secs(1)).unwrap();
    assert!(events(&mut sim, sender).iter().any(|e| matches!(
        e,
        NodeEvent::LightPush(LightPushClientEvent::Pushed {
            relay_peer_count: Some(0),
            ..
        })
    )));
    let got = delivered(&events(&mut sim, receiver));
    let from = sim.peer_id(receiver, service).unwrap();
    assert_eq!(got, vec![(hash, MessageSource::Filter(from))]);
}

#[test]
fn relay_over_lossy_links_delivers_every_message_once() {
    for seed in [3u64, 4, 5] {
        let mut sim = new_sim(seed);
        let n = 12;
        let ids: Vec<NodeId> = (0..n)
            .map(|i| {
                add(
                    &mut sim,
                    config(Capabilities::LIGHT.with(Capability::Relay)),
                    None,
                    u8::try_from(i + 1).unwrap(),
                )
            })
            .collect();
        for &id in &ids {
            sim.with_node(id, |m, now| m.subscribe(now, shard(), vec![]))
                .unwrap()
                .unwrap();
        }
        // A ring plus chords, every link losing 5 %, duplicating 5 % and reordering 10 %.
        let bad = LinkConfig::new(Duration::from_millis(30))
            .with_jitter(Duration::from_millis(30))
            .with_loss(0.05)
            .with_duplicate(0.05)
            .with_reorder(0.1, Duration::from_millis(50));
        let mut linked = BTreeSet::new();
        for i in 0..n {
            for j in [i + 1, i + 3, i + 5] {
                let (a, b) = (i.min(j % n), i.max(j % n));
                if a != b && linked.insert((a, b)) {
                    sim.connect_with(ids[a], ids[b], bad.clone()).unwrap();
                }
            }
        }
        sim.run_for(Duration::from_secs(10)).unwrap();
        for &id in &ids {
            sim.take_events(id);
        }
        let mut sent = Vec::new();
        for k in 0..60 {
            let from = ids[(k * 5) % n];
            sent.push((from, relayed(publish(&mut sim, from, &format!("m{k}")))));
            sim.run_for(Duration::from_millis(250)).unwrap();
        }
        sim.run_for(Duration::from_secs(15)).unwrap();
        for &id in &ids {
            let got = delivered(&events(&mut sim, id));
            let hashes: Vec<MessageHash> = got.iter().map(|(h, _)| *h).collect();
            let unique: BTreeSet<MessageHash> = hashes.iter().copied().collect();
            assert_eq!(unique.len(), hashes.len(), "seed {seed}, {id}: each once");
            let want: BTreeSet<MessageHash> = sent
                .iter()
                .filter(|(from, _)| *from != id)
                .map(|(_, h)| *h)
                .collect();
            assert_eq!(unique, want, "seed {seed}, {id}: nothing missing");
        }
        let s = sim.stats();
        assert!(s.lost > 0 && s.duplicates > 0, "{s:?}");
        println!("seed {seed}: {s:?}");
    }
}

#[test]
fn bob_offline_pages_the_store_and_gets_exactly_the_500() {
    let mut sim = new_sim(6);
    let alice = add(&mut sim, config(Capabilities::FULL), None, 1);
    let relay = add(
        &mut sim,
        config(Capabilities::FULL.without(Capability::Store)),
        None,
        2,
    );
    let store = add(
        &mut sim,
        config(Capabilities::FULL),
        Some(Box::new(SqliteStore::open_in_memory().unwrap())),
        3,
    );
    sim.connect(alice, relay).unwrap();
    sim.connect(relay, store).unwrap();
    sim.run_for(Duration::from_secs(3)).unwrap();
    // Bob is offline; Alice sends 500 messages, a few per second, some on other topics.
    let mut sent = Vec::new();
    for i in 0..500 {
        sent.push(relayed(publish(
            &mut sim,
            alice,
            &format!("alice to bob {i}"),
        )));
        if i % 3 == 0 {
            sim.with_node(alice, |n, now| {
                let other = WakuMessage::new(
                    ContentTopic::new("/other/1/x/proto").unwrap(),
                    format!("other {i}").into_bytes(),
                )
                .with_timestamp(now.unix_nanos);
                n.publish(now, Some(shard()), other)
            })
            .unwrap()
            .unwrap();
        }
        if i % 4 == 0 {
            sim.run_for(Duration::from_millis(700)).unwrap();
        }
    }
    sim.run_for(Duration::from_secs(60)).unwrap();
    // Bob comes online and connects to the store over a link that duplicates both ways.
    let bob = add(&mut sim, config(Capabilities::LIGHT), None, 4);
    sim.connect_with(
        bob,
        store,
        LinkConfig::new(Duration::from_millis(50))
            .with_jitter(Duration::from_millis(30))
            .with_duplicate(0.3),
    )
    .unwrap();
    sim.run_for(Duration::from_secs(1)).unwrap();
    let store_handle = sim.peer_id(bob, store).unwrap();
    let mut results = Vec::new();
    for forward in [true, false] {
        let q = StoreQuery::topics(shard(), [chat()]).page_size(7);
        let q = if forward { q.forward() } else { q };
        sim.with_node(bob, |n, now| {
            n.query_store(now, None, q, QueryLimits::default())
        })
        .unwrap()
        .unwrap();
        sim.run_for(Duration::from_secs(30)).unwrap();
        let mut pages: Vec<Vec<MessageHash>> = Vec::new();
        let mut finished = 0;
        for e in events(&mut sim, bob) {
            match e {
                NodeEvent::Store(StoreClientEvent::Page {
                    entries,
                    rejected,
                    peer,
                    ..
                }) => {
                    assert_eq!((rejected, peer), (0, store_handle));
                    assert!(entries.len() <= 7);
                    pages.push(entries.iter().map(|e| e.hash).collect());
                }
                NodeEvent::Store(StoreClientEvent::Finished {
                    result, entries, ..
                }) => {
                    assert_eq!((result, entries), (Ok(()), 500));
                    finished += 1;
                }
                _ => {}
            }
        }
        assert_eq!(finished, 1);
        if !forward {
            pages.reverse();
        }
        results.push(pages.into_iter().flatten().collect::<Vec<_>>());
    }
    assert!(sim.stats().duplicates > 0, "the link did duplicate");
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
    // In (timestamp, hash) order.
    let sent_pos: BTreeMap<MessageHash, usize> =
        sent.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let positions: Vec<_> = sim
        .with_node(store, |n, _| {
            let s = n.store_server_mut().unwrap();
            results[0]
                .iter()
                .map(|h| s.store_mut().position(h).unwrap().unwrap())
                .collect()
        })
        .unwrap();
    for (w, h) in positions.windows(2).zip(&results[0][1..]) {
        assert!((w[0].timestamp, w[0].hash) < (w[1].timestamp, w[1].hash));
        assert!(sent_pos.contains_key(h));
    }
}

#[test]
fn retention_drops_old_messages_by_age_and_by_count() {
    let mut sim = new_sim(7);
    let mut by_age = config(Capabilities::FULL);
    by_age.store.retention = RetentionPolicy {
        max_age: Some(Duration::from_secs(3600)),
        max_messages: None,
        interval: Duration::from_secs(600),
    };
    let mut by_count = config(Capabilities::FULL);
    by_count.store.retention = RetentionPolicy {
        max_age: None,
        max_messages: Some(20),
        interval: Duration::from_secs(600),
    };
    let alice = add(
        &mut sim,
        config(Capabilities::FULL.without(Capability::Store)),
        None,
        1,
    );
    let aged = add(&mut sim, by_age, None, 2);
    let counted = add(&mut sim, by_count, None, 3);
    sim.connect(alice, aged).unwrap();
    sim.connect(alice, counted).unwrap();
    sim.run_for(Duration::from_secs(5)).unwrap();
    // Ten messages now, twenty more fifty minutes later.
    let mut old = Vec::new();
    for i in 0..10 {
        old.push(relayed(publish(&mut sim, alice, &format!("old {i}"))));
        sim.run_for(Duration::from_secs(1)).unwrap();
    }
    sim.run_until(Duration::from_secs(50 * 60)).unwrap();
    let mut new = Vec::new();
    for i in 0..20 {
        new.push(relayed(publish(&mut sim, alice, &format!("new {i}"))));
        sim.run_for(Duration::from_secs(1)).unwrap();
    }
    // At 60 minutes both archives hold all thirty, minus the count limit's excess.
    sim.run_until(Duration::from_secs(55 * 60)).unwrap();
    assert_eq!(archived(&mut sim, aged, &old), 10);
    assert_eq!(archived(&mut sim, aged, &new), 20);
    // By 75 minutes the age policy has run past the old messages' hour.
    sim.run_until(Duration::from_secs(75 * 60)).unwrap();
    assert_eq!(archived(&mut sim, aged, &old), 0, "older than an hour");
    assert_eq!(archived(&mut sim, aged, &new), 20);
    assert_eq!(archived(&mut sim, counted, &old), 0, "the oldest ten go");
    assert_eq!(archived(&mut sim, counted, &new), 20);
    let applied = |ev: &[NodeEvent]| -> (u64, u64) {
        ev.iter()
            .filter_map(|e| match e {
                NodeEvent::Archive(StoreServerEvent::RetentionApplied { by_age, by_count }) => {
                    Some((*by_age, *by_count))
                }
                _ => None,
            })
            .fold((0, 0), |(a, c), (x, y)| (a + x, c + y))
    };
    assert_eq!(applied(&events(&mut sim, aged)), (10, 0));
    assert_eq!(applied(&events(&mut sim, counted)), (0, 10));
}

fn temp_db(tag: &str) -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("status-rs-sim-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("archive.db")
}

#[test]
fn filter_service_hang_crash_and_restart_is_backfilled_exactly_once() {
    let mut sim = new_sim(8);
    // The light node's filter service (relay, store on SQLite, filter); Alice's full node,
    // which also stores; the light node.
    let f_path = temp_db("filter-service");
    let f_store = |path: &PathBuf| -> Box<dyn MessageStore + Send> {
        Box::new(SqliteStore::open(path, &SqliteStoreConfig::default()).unwrap())
    };
    let service = add(
        &mut sim,
        config(Capabilities::FULL),
        Some(f_store(&f_path)),
        1,
    );
    let alice = add(&mut sim, config(Capabilities::FULL), None, 2);
    let light = add(&mut sim, config(Capabilities::LIGHT), None, 3);
    sim.connect(service, alice).unwrap();
    sim.connect(light, service).unwrap();
    sim.connect(light, alice).unwrap();
    sim.with_node(light, |n, now| n.subscribe(now, shard(), vec![chat()]))
        .unwrap()
        .unwrap();
    sim.run_for(Duration::from_secs(3)).unwrap();
    assert_eq!(
        sim.node(light).unwrap().filter_client().service_peer(),
        sim.peer_id(light, service)
    );

    // Alice sends one message a second for two minutes. At 30 s the service node hangs (a
    // partition: its connections stay up, nothing gets through); at 50 s it crashes, the
    // partition heals, and it restarts from its archive file and reconnects.
    let mut sent = Vec::new();
    for sec in 0..120 {
        if sec == 30 {
            sim.partition(&[service]).unwrap();
        }
        if sec == 50 {
            drop(sim.crash(service).unwrap());
            sim.heal();
            sim.restart(service, |now| {
                WakuNode::new(
                    config(Capabilities::FULL),
                    Some(f_store(&f_path)),
                    [9; 32],
                    now,
                )
                .unwrap()
            })
            .unwrap();
        }
        sent.push(relayed(publish(&mut sim, alice, &format!("tick {sec}"))));
        sim.run_for(Duration::from_secs(1)).unwrap();
    }
    sim.run_for(Duration::from_secs(70)).unwrap();
    let ev = events(&mut sim, light);
    let got = delivered(&ev);
    let hashes: Vec<MessageHash> = got.iter().map(|(h, _)| *h).collect();
    let unique: BTreeSet<MessageHash> = hashes.iter().copied().collect();
    assert_eq!(unique.len(), hashes.len(), "each message once");
    assert_eq!(
        unique,
        sent.iter().copied().collect::<BTreeSet<_>>(),
        "nothing missing"
    );
    // It noticed, moved to Alice's node, and the gap came from a store.
    let to_alice = sim.peer_id(light, alice).unwrap();
    assert!(ev.iter().any(|e| matches!(e, NodeEvent::Filter(FilterClientEvent::ServicePeerChanged { new: Some(p), .. }) if *p == to_alice)));
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
    assert_eq!(archived(&mut sim, service, &sent[..5]), 5);
    let _ = std::fs::remove_dir_all(f_path.parent().unwrap());
}

#[test]
fn peer_on_another_cluster_is_reported() {
    let mut sim = new_sim(9);
    let ours = add(&mut sim, config(Capabilities::FULL), None, 1);
    let theirs = add(
        &mut sim,
        WakuNodeConfig::new(Capabilities::FULL, 1, vec![0]),
        None,
        2,
    );
    sim.connect(ours, theirs).unwrap();
    sim.run_for(Duration::from_secs(1)).unwrap();
    let peer = sim.peer_id(ours, theirs).unwrap();
    let ev = events(&mut sim, ours);
    assert!(ev.contains(&NodeEvent::DisconnectPeer {
        peer,
        reason: DisconnectReason::ClusterMismatch { theirs: 1 }
    }));
}
