//! Crash recovery: a crash at every persistence point, then a restart from the store, loses
//! nothing and delivers nothing twice. Seeded; each test prints its seeds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mvds::sim::{NetConfig, Sim};
use mvds::store::{Fault, FaultInjectingStore, MemoryStore, SqliteStore, SyncStore, Synchronous};
use mvds::{Config, Event, GroupId, MessageId, Mode, Node, SendError};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const G: GroupId = GroupId([5; 32]);

fn config() -> Config {
    Config {
        backoff_base: 1,
        backoff_cap: 8,
        backoff_jitter: 2,
        online_jitter: 1,
        max_send_count: None,
    }
}

fn mode(i: u32) -> Mode {
    if i.is_multiple_of(3) {
        Mode::Interactive
    } else {
        Mode::Batch
    }
}

/// Sends with retries, as an application does when `send` reports a store failure (the node
/// was reopened in between).
fn send(sim: &mut Sim, from: u64, i: u32) {
    for _ in 0..3 {
        match sim.send(from, G, format!("m{from}-{i}").into_bytes(), mode(i)) {
            Ok(_) | Err(SendError::Duplicate) => return,
            Err(_) => continue,
        }
    }
    panic!("send kept failing");
}

/// Two nodes, 8 messages each way (mixed modes) over a network with 20% loss, 10% duplication
/// and reordering over 3 epochs; the given node crashes at its `at`-th commit. Returns the sim
/// after it settled.
fn scenario(seed: u64, crash: Option<(u64, u64, Fault)>) -> Sim {
    let net = NetConfig {
        loss: 0.2,
        duplicate: 0.1,
        reorder_window: 3,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(seed, 2, config(), net);
    if let Some((node, at, fault)) = crash {
        sim.arm_crash(node, at, fault);
    }
    sim.join(G, &[0, 1]);
    for i in 0..8u32 {
        send(&mut sim, 0, i);
        send(&mut sim, 1, i);
        sim.step();
    }
    sim.run_until_quiet(3_000);
    sim
}

fn check(sim: &Sim, what: &str) {
    assert!(
        sim.ledger.violations.is_empty(),
        "{what}: {:?}",
        sim.ledger.violations
    );
    assert_eq!(sim.ledger.duplicates(), 0, "{what}: delivered twice");
    assert!(
        sim.ledger.all_delivered(),
        "{what}: {} deliveries lost",
        sim.ledger.missing()
    );
    assert_eq!(sim.ledger.expected(), 16, "{what}: a send was lost");
    assert!(sim.is_quiet(), "{what}: records still outstanding");
}

/// For 100 seeds: a dry run counts each node's commits (its persistence points); then, for
/// every commit of every node and for both kinds of crash (before the write, and right after
/// it with the outputs of that call lost), the scenario runs again with that crash and a
/// restart from the store. Nothing may be lost or delivered twice.
#[test]
fn crash_at_every_persistence_point_hundred_seeds() {
    let mut runs = 0u64;
    for seed in 0..100u64 {
        let dry = scenario(seed, None);
        check(&dry, &format!("seed {seed} without crash"));
        let commits = [dry.commits(0), dry.commits(1)];
        for node in 0..2u64 {
            for at in 0..commits[node as usize] {
                for fault in [Fault::BeforeApply, Fault::AfterApply] {
                    let what =
                        format!("seed {seed}, node {node} crashing at commit {at} ({fault:?})");
                    let sim = scenario(seed, Some((node, at, fault)));
                    assert!(sim.stats.crashes >= 1, "{what}: no crash happened");
                    check(&sim, &what);
                    runs += 1;
                }
            }
        }
        if seed.is_multiple_of(20) {
            println!(
                "seed {seed}: {} + {} persistence points, all recovered",
                commits[0], commits[1]
            );
        }
    }
    println!("{runs} crash runs, seeds 0..100: nothing lost, nothing delivered twice");
}

/// A node that crashes and restarts every few epochs, over a lossy network, still delivers
/// everything exactly once.
#[test]
fn repeated_crashes_under_load() {
    for seed in 500..505u64 {
        println!("seed {seed}");
        let net = NetConfig {
            loss: 0.3,
            duplicate: 0.2,
            reorder_window: 4,
            ..NetConfig::default()
        };
        let mut sim = Sim::new(seed, 3, config(), net);
        sim.join(G, &[0, 1, 2]);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        for i in 0..300u32 {
            send(&mut sim, u64::from(i % 3), i);
            if i.is_multiple_of(2) {
                let node = rng.next_u64() % 3;
                let fault = if rng.next_u64().is_multiple_of(2) {
                    Fault::BeforeApply
                } else {
                    Fault::AfterApply
                };
                sim.arm_crash(node, rng.next_u64() % 6, fault);
            }
            if i.is_multiple_of(5) {
                sim.crash(rng.next_u64() % 3);
            }
            sim.step();
        }
        sim.disarm_all();
        assert!(
            sim.run_until_quiet(3_000).is_some(),
            "seed {seed}: {} missing",
            sim.ledger.missing()
        );
        assert!(
            sim.ledger.violations.is_empty(),
            "seed {seed}: {:?}",
            sim.ledger.violations
        );
        assert_eq!(sim.ledger.duplicates(), 0);
        assert_eq!(sim.ledger.expected(), 600);
        println!(
            "seed {seed}: {} crashes, 600 deliveries exactly once",
            sim.stats.crashes
        );
    }
}

// ----- SQLite -----

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mvds-crash-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("sync.db")
}

type SqlNode = Node<u64, FaultInjectingStore<SqliteStore<u64>>>;

fn open_sql(path: &Path, seed: u8) -> SqlNode {
    let store = FaultInjectingStore::new(SqliteStore::open(path, Synchronous::Normal).unwrap());
    Node::open(config(), [seed; 32], store).unwrap()
}

/// Node 0 on SQLite (it really restarts: the connection is closed and the file reopened),
/// node 1 in memory; payloads are lost with probability 1/4. Node 0 crashes at its `crash`-th
/// commit. Returns node 0's commit count and checks exactly-once delivery both ways.
fn sqlite_scenario(seed: u64, crash: Option<(u64, Fault)>, path: &Path) -> u64 {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut a = Some(open_sql(path, 1));
    let mut b: Node<u64> = Node::open(config(), [2; 32], MemoryStore::new()).unwrap();
    b.add_peer(G, 0).unwrap();
    let mut commits_before_restart = 0;
    if let Some((at, fault)) = crash {
        a.as_mut().unwrap().store_mut().arm(at, fault);
    }
    let mut sent: BTreeMap<MessageId, u64> = BTreeMap::new();
    let mut got: BTreeMap<(u64, MessageId), u32> = BTreeMap::new();
    let mut to_a: Vec<Vec<u8>> = Vec::new();
    let mut to_b: Vec<Vec<u8>> = Vec::new();
    let mut member = false;

    // Kills node 0 if its store crashed, and restarts it from the file.
    let restart_if_crashed = |a: &mut Option<SqlNode>, commits: &mut u64| {
        let crashed = a
            .as_ref()
            .is_some_and(|n| n.store().crash_pending() || n.is_stopped());
        if crashed {
            *commits += a.as_ref().unwrap().store().commits();
            drop(a.take());
            *a = Some(open_sql(path, 3));
        }
    };

    for epoch in 0..400u32 {
        let na = a.as_mut().unwrap();
        if !member {
            member = na.add_peer(G, 1).is_ok();
        }
        restart_if_crashed(&mut a, &mut commits_before_restart);
        if epoch < 20 && member {
            let na = a.as_mut().unwrap();
            let body = format!("a{epoch}").into_bytes();
            if let Ok(id) = na.send(G, body, mode(epoch), 1) {
                sent.insert(id, 1);
            }
            restart_if_crashed(&mut a, &mut commits_before_restart);
            let id = b
                .send(G, format!("b{epoch}").into_bytes(), mode(epoch), 1)
                .unwrap();
            sent.insert(id, 0);
        }
        for bytes in std::mem::take(&mut to_a) {
            let _ = a.as_mut().unwrap().handle_payload(1, &bytes);
            restart_if_crashed(&mut a, &mut commits_before_restart);
        }
        for bytes in std::mem::take(&mut to_b) {
            b.handle_payload(0, &bytes).unwrap();
        }
        let na = a.as_mut().unwrap();
        let _ = na.handle_tick();
        let crashed = na.store().crash_pending() || na.is_stopped();
        if crashed {
            restart_if_crashed(&mut a, &mut commits_before_restart);
        } else {
            while let Some(t) = na.poll_transmit() {
                if rng.next_u64() % 4 != 0 {
                    to_b.push(t.bytes);
                }
            }
        }
        b.handle_tick().unwrap();
        while let Some(t) = b.poll_transmit() {
            if rng.next_u64() % 4 != 0 {
                to_a.push(t.bytes);
            }
        }
        loop {
            let na = a.as_mut().unwrap();
            let ev = na.poll_event();
            let crashed = na.store().crash_pending() || na.is_stopped();
            if let Some(Event::Delivered(d)) = &ev {
                *got.entry((0, d.id)).or_default() += 1;
            }
            if crashed {
                restart_if_crashed(&mut a, &mut commits_before_restart);
            }
            if ev.is_none() {
                break;
            }
        }
        while let Some(ev) = b.poll_event() {
            if let Event::Delivered(d) = ev {
                *got.entry((1, d.id)).or_default() += 1;
            }
        }
    }
    let what = format!("seed {seed}, crash {crash:?}");
    assert!(got.values().all(|n| *n == 1), "{what}: delivered twice");
    for (id, to) in &sent {
        assert_eq!(got.get(&(*to, *id)), Some(&1), "{what}: {id:?} lost");
    }
    assert_eq!(got.len(), sent.len(), "{what}: unexpected delivery");
    assert!(sent.len() >= 38, "{what}: {} sent", sent.len());
    assert_eq!(a.as_ref().unwrap().outstanding_total(), 0, "{what}");
    assert_eq!(b.outstanding_total(), 0, "{what}");
    commits_before_restart + a.as_ref().unwrap().store().commits()
}

/// The same guarantee on the SQLite backend, with real restarts (the database file is reopened
/// on a new connection): a crash at every one of node 0's commits, both kinds.
#[test]
fn sqlite_crash_at_every_persistence_point() {
    let seed = 7;
    println!("seed {seed}");
    let path = temp_db("dry");
    let n = sqlite_scenario(seed, None, &path);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    let mut runs = 0;
    for at in 0..n {
        for fault in [Fault::BeforeApply, Fault::AfterApply] {
            let path = temp_db(&format!("{at}-{fault:?}"));
            sqlite_scenario(seed, Some((at, fault)), &path);
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
            runs += 1;
        }
    }
    println!("{runs} SQLite crash runs over {n} persistence points: nothing lost or repeated");
}

/// A SQLite node closed at an arbitrary moment and reopened resumes its epoch, records, groups
/// and pending events.
#[test]
fn sqlite_restart_resumes() {
    let path = temp_db("resume");
    let mut a: Node<u64, SqliteStore<u64>> = Node::open(
        config(),
        [1; 32],
        SqliteStore::open(&path, Synchronous::Full).unwrap(),
    )
    .unwrap();
    a.add_peer(G, 1).unwrap();
    let id = a.send(G, b"persisted".to_vec(), Mode::Batch, 1).unwrap();
    for _ in 0..100 {
        a.handle_tick().unwrap();
    }
    // A message from peer 1, delivered into the event queue but not yet polled.
    let theirs = proto::mvds::Payload {
        messages: vec![proto::mvds::Message {
            group_id: G.0.to_vec(),
            timestamp: 2,
            body: b"theirs".to_vec(),
        }],
        ..Default::default()
    };
    use proto::Message as _;
    a.handle_payload(1, &theirs.encode_to_vec()).unwrap();
    let epoch = a.epoch();
    drop(a);

    let mut a: Node<u64, SqliteStore<u64>> = Node::open(
        config(),
        [2; 32],
        SqliteStore::open(&path, Synchronous::Full).unwrap(),
    )
    .unwrap();
    assert_eq!(a.epoch(), epoch, "the epoch is saved with every commit");
    assert_eq!(a.outstanding(&1), 1);
    assert_eq!(
        a.peers_of(&G).copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([1])
    );
    assert!(matches!(a.poll_event(), Some(Event::Delivered(d)) if d.body == b"theirs"));
    assert_eq!(a.poll_event(), None);
    // The message it owes peer 1 is still sent.
    let mut sent = false;
    for _ in 0..20 {
        a.handle_tick().unwrap();
        while let Some(t) = a.poll_transmit() {
            let p = <proto::mvds::Payload as proto::Message>::decode(t.bytes.as_slice()).unwrap();
            sent |= p.messages.iter().any(|m| m.body == b"persisted");
        }
    }
    assert!(sent);
    // The delivered id stays known: the same message again is only acked.
    a.handle_payload(1, &theirs.encode_to_vec()).unwrap();
    assert_eq!(a.poll_event(), None);
    assert_eq!(a.stats().messages_duplicate, 1);
    let mut store = a.into_store();
    assert!(store.is_known(&id).unwrap());
    drop(store);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
