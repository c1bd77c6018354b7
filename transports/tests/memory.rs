//! The simulated network: timing, fates, topology, crashes, detectors, determinism.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "memory")]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Ev, TestNode};
use sha2::{Digest, Sha256};
use transports::memory::{
    DropReason, LinkConfig, NodeId, Recorded, Sim, SimConfig, SimError, TraceRecord,
};
use waku_core::net::{FrameKind, PeerId, Protocol};

const MS: Duration = Duration::from_millis(1);

fn sim(seed: u64) -> Sim<TestNode> {
    println!("seed {seed}");
    Sim::new(SimConfig {
        seed,
        trace_capacity: 1_000_000,
        ..SimConfig::default()
    })
    .unwrap()
}

fn relay_ids(events: &[Recorded<Ev>]) -> Vec<(u64, bool)> {
    events
        .iter()
        .filter_map(|r| match r.event {
            Ev::Relay { id, fresh, .. } => Some((id, fresh)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_frame_arrives_after_the_link_latency_and_a_request_is_answered() {
    let mut sim = sim(1);
    let a = sim.add_node(TestNode::new).unwrap();
    let b = sim.add_node(TestNode::new).unwrap();
    sim.connect_with(a, b, LinkConfig::new(30 * MS)).unwrap();
    let events = sim.take_events(a);
    let to_b = sim.peer_id(a, b).unwrap();
    assert_eq!(
        events[0].event,
        Ev::Connected(to_b, vec![Protocol::Relay, Protocol::StoreQuery])
    );
    assert_eq!(sim.peer_node(a, to_b), Some(b));

    sim.with_node(a, |m, _| m.publish(1, 100)).unwrap();
    sim.with_node(a, |m, _| {
        m.send(
            to_b,
            Protocol::StoreQuery,
            FrameKind::Request(42),
            b"abc".to_vec(),
        )
    })
    .unwrap();
    assert!(sim.step().unwrap());
    assert_eq!(sim.elapsed(), 30 * MS);
    sim.run_until_quiet(100).unwrap();
    assert_eq!(sim.elapsed(), 60 * MS);

    let at_b: Vec<_> = sim.take_events(b);
    assert!(matches!(
        at_b[1].event,
        Ev::Relay {
            id: 1,
            len: 100,
            fresh: true,
            ..
        }
    ));
    assert_eq!(at_b[1].at, 30 * MS);
    let at_a = sim.take_events(a);
    assert_eq!(
        at_a.last().unwrap().event,
        Ev::Response {
            from: to_b,
            id: 42,
            body: b"cba".to_vec()
        }
    );
    assert_eq!(at_a.last().unwrap().at, 60 * MS);

    // Byte counters per direction.
    let ab = sim.link_stats(a, b).unwrap();
    assert_eq!((ab.frames_sent, ab.bytes_sent, ab.delivered), (2, 103, 2));
    let ba = sim.link_stats(b, a).unwrap();
    assert_eq!(
        (ba.frames_sent, ba.bytes_sent),
        (1, 3),
        "b floods to nobody else, answers once"
    );
    assert_eq!(sim.node_stats(b).unwrap().bytes_received, 103);
    assert!(sim.stats().is_conserved(sim.in_flight()));
}

#[test]
fn a_flood_reaches_every_node_of_a_ring_once() {
    let mut sim = sim(2);
    let n = 12;
    let ids: Vec<NodeId> = (0..n)
        .map(|_| sim.add_node(TestNode::new).unwrap())
        .collect();
    for i in 0..n {
        let cfg = LinkConfig::new(10 * MS).with_jitter(15 * MS);
        sim.connect_with(ids[i], ids[(i + 1) % n], cfg).unwrap();
    }
    for id in &ids {
        sim.take_events(*id);
    }
    sim.with_node(ids[0], |m, _| m.publish(7, 1024)).unwrap();
    sim.run_until_quiet(10_000).unwrap();
    for &id in &ids[1..] {
        let fresh: Vec<_> = relay_ids(&sim.take_events(id))
            .into_iter()
            .filter(|x| x.1)
            .collect();
        assert_eq!(fresh, vec![(7, true)], "{id}");
    }
    // The origin sends two frames, every other node forwards once to its other neighbour.
    let s = sim.stats();
    assert_eq!(s.frames_sent, n as u64 + 1);
    assert_eq!(s.delivered, n as u64 + 1);
    assert_eq!(s.bytes_sent, 1024 * (n as u64 + 1));
}

#[test]
fn without_reordering_a_link_keeps_order_despite_jitter_and_with_it_frames_overtake() {
    for (reorder, expect_in_order) in [(0.0, true), (0.5, false)] {
        let mut sim = sim(3);
        let a = sim.add_node(TestNode::new).unwrap();
        let b = sim.add_node(TestNode::new).unwrap();
        let cfg = LinkConfig::new(10 * MS)
            .with_jitter(50 * MS)
            .with_reorder(reorder, 200 * MS);
        sim.connect_with(a, b, cfg).unwrap();
        for i in 0..200u64 {
            sim.with_node(a, |m, _| m.publish(i, 8)).unwrap();
            sim.run_for(MS).unwrap();
        }
        sim.run_until_quiet(10_000).unwrap();
        let got: Vec<u64> = relay_ids(&sim.take_events(b))
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(got.len(), 200);
        let sorted = got.windows(2).all(|w| w[0] < w[1]);
        assert_eq!(sorted, expect_in_order, "reorder {reorder}: {got:?}");
        let mut unique = got.clone();
        unique.sort_unstable();
        assert_eq!(unique, (0..200).collect::<Vec<_>>());
    }
}

#[test]
fn total_loss_delivers_nothing_and_total_duplication_delivers_everything_twice() {
    let mut sim = sim(4);
    let a = sim.add_node(TestNode::new).unwrap();
    let b = sim.add_node(TestNode::new).unwrap();
    let c = sim.add_node(TestNode::new).unwrap();
    sim.connect_with(a, b, LinkConfig::new(5 * MS).with_loss(1.0))
        .unwrap();
    sim.connect_with(a, c, LinkConfig::new(5 * MS).with_duplicate(1.0))
        .unwrap();
    sim.set_link_directed(c, a, LinkConfig::new(5 * MS))
        .unwrap();
    for i in 0..10 {
        sim.with_node(a, |m, _| m.publish(i, 16)).unwrap();
    }
    sim.run_until_quiet(1_000).unwrap();
    assert!(relay_ids(&sim.take_events(b)).is_empty());
    let at_c = relay_ids(&sim.take_events(c));
    assert_eq!(at_c.len(), 20);
    assert_eq!(at_c.iter().filter(|x| x.1).count(), 10);
    assert_eq!(sim.link_stats(a, b).unwrap().lost, 10);
    assert_eq!(sim.link_stats(a, c).unwrap().duplicates, 10);
    let s = sim.stats();
    assert_eq!((s.lost, s.duplicates, s.delivered), (10, 10, 20));
    assert!(s.is_conserved(0));
}

#[test]
fn a_partition_drops_frames_across_it_until_healed() {
    let mut sim = sim(5);
    let a = sim.add_node(TestNode::new).unwrap();
    let b = sim.add_node(TestNode::new).unwrap();
    sim.connect(a, b).unwrap();
    // A frame in flight when the partition starts is lost too.
    sim.with_node(a, |m, _| m.publish(1, 8)).unwrap();
    sim.partition(&[b]).unwrap();
    assert!(!sim.can_reach(a, b));
    sim.with_node(a, |m, _| m.publish(2, 8)).unwrap();
    sim.run_until_quiet(100).unwrap();
    assert!(relay_ids(&sim.take_events(b)).is_empty());
    assert_eq!(sim.stats().dropped_partition, 2);
    assert!(
        sim.is_connected(a, b),
        "a partition does not close connections"
    );
    sim.heal();
    sim.with_node(a, |m, _| m.publish(3, 8)).unwrap();
    sim.run_until_quiet(100).unwrap();
    assert_eq!(relay_ids(&sim.take_events(b)), vec![(3, true)]);
    let dropped: Vec<_> = sim
        .trace()
        .iter()
        .filter(|r| {
            matches!(
                r,
                TraceRecord::Dropped {
                    reason: DropReason::Partition,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(dropped.len(), 2);
}

#[test]
fn a_crash_drops_frames_in_flight_and_a_restart_reconnects_from_kept_state() {
    let mut sim = sim(6);
    let a = sim.add_node(TestNode::new).unwrap();
    let b = sim.add_node(TestNode::new).unwrap();
    let c = sim.add_node(TestNode::new).unwrap();
    sim.connect_with(a, b, LinkConfig::new(50 * MS)).unwrap();
    sim.connect_with(b, c, LinkConfig::new(50 * MS)).unwrap();
    let old_b_at_a = sim.peer_id(a, b).unwrap();
    sim.with_node(a, |m, _| m.publish(1, 8)).unwrap();
    sim.run_for(60 * MS).unwrap(); // b has it and forwarded it to c: in flight.
    assert_eq!(sim.in_flight(), 1);
    sim.with_node(a, |m, _| m.publish(2, 8)).unwrap(); // in flight to b.
    sim.take_events(a);
    sim.take_events(c);

    let dead = sim.crash(b).unwrap();
    assert!(!sim.is_up(b));
    assert_eq!(sim.in_flight(), 0);
    assert_eq!(sim.stats().dropped_disconnected, 2);
    assert_eq!(
        sim.take_events(a).last().unwrap().event,
        Ev::Disconnected(old_b_at_a)
    );
    assert!(matches!(sim.with_node(b, |_, _| ()), Err(SimError::NodeDown(n)) if n == b));

    let kept: BTreeSet<u64> = dead.seen.clone();
    assert_eq!(kept, BTreeSet::from([1]));
    sim.restart(b, |now| TestNode::restored(now, kept)).unwrap();
    assert!(sim.is_connected(a, b) && sim.is_connected(b, c));
    let new_b_at_a = sim.peer_id(a, b).unwrap();
    assert_ne!(new_b_at_a, old_b_at_a, "a reconnection gets a fresh handle");
    assert_eq!(sim.node(b).unwrap().seen, BTreeSet::from([1]));

    // The restarted node relays again, and ignores what it kept as seen.
    sim.with_node(a, |m, _| m.publish(3, 8)).unwrap();
    sim.run_until_quiet(100).unwrap();
    assert_eq!(relay_ids(&sim.take_events(c)), vec![(3, true)]);
    assert!(matches!(
        sim.restart(b, TestNode::new),
        Err(SimError::NodeUp(_))
    ));
    assert!(sim.stats().is_conserved(0));
}

#[test]
fn disconnect_and_reconnect_a_link() {
    let mut sim = sim(7);
    let a = sim.add_node(TestNode::new).unwrap();
    let b = sim.add_node(TestNode::new).unwrap();
    sim.connect(a, b).unwrap();
    assert!(matches!(
        sim.connect(b, a),
        Err(SimError::AlreadyLinked(..))
    ));
    assert!(matches!(sim.connect(a, a), Err(SimError::SelfLink(_))));
    sim.with_node(a, |m, _| m.publish(1, 8)).unwrap();
    sim.disconnect(a, b).unwrap();
    assert!(!sim.is_connected(a, b));
    assert_eq!(sim.links().count(), 0);
    sim.run_until_quiet(10).unwrap();
    assert!(relay_ids(&sim.take_events(b)).is_empty());
    assert!(sim.take_events(b).is_empty());
    sim.connect(a, b).unwrap();
    sim.with_node(a, |m, _| m.publish(2, 8)).unwrap();
    sim.run_until_quiet(10).unwrap();
    assert_eq!(relay_ids(&sim.take_events(b)), vec![(2, true)]);
}

#[test]
fn unsupported_oversized_and_unroutable_frames_are_dropped_and_counted() {
    let mut sim = sim(8);
    let a = sim.add_node(TestNode::new).unwrap();
    let b = sim
        .add_node(|now| TestNode::with_protocols(now, vec![Protocol::Relay]))
        .unwrap();
    sim.connect(a, b).unwrap();
    let to_b = sim.peer_id(a, b).unwrap();
    sim.with_node(a, |m, _| {
        m.send(to_b, Protocol::StoreQuery, FrameKind::Request(1), vec![1]);
        m.send(
            to_b,
            Protocol::Relay,
            FrameKind::Stream,
            vec![0; Protocol::Relay.max_frame_len() + 1],
        );
        m.send(PeerId(999), Protocol::Relay, FrameKind::Stream, vec![0; 8]);
    })
    .unwrap();
    sim.run_until_quiet(10).unwrap();
    let s = sim.stats();
    assert_eq!(
        (
            s.dropped_unsupported,
            s.dropped_oversized,
            s.dropped_unroutable
        ),
        (1, 1, 1)
    );
    assert_eq!(s.delivered, 0);
    assert!(s.is_conserved(0));
}

#[test]
fn frames_are_carried_only_towards_the_side_that_serves_the_protocol() {
    let mut sim = sim(18);
    // `server` serves relay and the store; `client` serves nothing and still queries the store.
    let server = sim.add_node(TestNode::new).unwrap();
    let client = sim
        .add_node(|now| TestNode::with_protocols(now, vec![]))
        .unwrap();
    sim.connect(server, client).unwrap();
    let told: Vec<Ev> = sim
        .take_events(client)
        .into_iter()
        .map(|r| r.event)
        .collect();
    let to_server = sim.peer_id(client, server).unwrap();
    assert_eq!(
        told,
        vec![Ev::Connected(
            to_server,
            vec![Protocol::Relay, Protocol::StoreQuery]
        )],
        "the client is told what the server serves"
    );
    let to_client = sim.peer_id(server, client).unwrap();
    assert_eq!(
        sim.take_events(server)
            .into_iter()
            .map(|r| r.event)
            .collect::<Vec<_>>(),
        vec![Ev::Connected(to_client, vec![])]
    );
    sim.with_node(client, |m, _| {
        m.send(
            to_server,
            Protocol::StoreQuery,
            FrameKind::Request(4),
            b"abc".to_vec(),
        );
        // Refused: the server does not serve lightpush, and responses come from servers.
        m.send(
            to_server,
            Protocol::LightPush,
            FrameKind::Request(5),
            vec![1],
        );
        m.send(to_server, Protocol::Relay, FrameKind::Response(6), vec![1]);
    })
    .unwrap();
    sim.with_node(server, |m, _| {
        // Refused: the client serves nothing to open.
        m.send(
            to_client,
            Protocol::Relay,
            FrameKind::Stream,
            common::body(1, 8),
        );
        m.send(
            to_client,
            Protocol::StoreQuery,
            FrameKind::Request(7),
            vec![1],
        );
    })
    .unwrap();
    sim.run_until_quiet(100).unwrap();
    let got: Vec<Ev> = sim
        .take_events(client)
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert_eq!(
        got,
        vec![Ev::Response {
            from: to_server,
            id: 4,
            body: b"cba".to_vec()
        }]
    );
    let s = sim.stats();
    assert_eq!((s.delivered, s.dropped_unsupported), (2, 4), "{s:?}");
    assert!(s.is_conserved(0));
}

#[test]
fn the_stuck_timer_detector_names_the_node() {
    let mut sim = sim(9);
    let a = sim.add_node(TestNode::new).unwrap();
    let stuck = sim
        .add_node(|now| {
            let mut n = TestNode::new(now);
            n.stuck_at = Some(now.instant + 5 * MS);
            n
        })
        .unwrap();
    sim.connect(a, stuck).unwrap();
    let err = sim.run_until_quiet(10_000).unwrap_err();
    println!("{err}");
    assert_eq!(
        err,
        SimError::StuckTimer {
            node: stuck,
            at: 5 * MS,
            wakeups: transports::memory::DEFAULT_MAX_WAKEUPS_PER_INSTANT + 1
        }
    );
    assert!(err.to_string().contains("node#1"));
    // A node that keeps ticking forward is not stuck.
    let mut sim = self::sim(9);
    sim.add_node(|now| TestNode::ticking(now, 100 * MS))
        .unwrap();
    assert_eq!(sim.run_until(Duration::from_secs(10)).unwrap(), 100);
}

#[test]
fn the_stall_detector_stops_a_zero_delay_loop() {
    let mut sim = Sim::new(SimConfig {
        max_steps_per_instant: 1_000,
        ..SimConfig::default()
    })
    .unwrap();
    let bouncing = |now| {
        let mut n = TestNode::new(now);
        n.bounce = true;
        n
    };
    let a = sim.add_node(bouncing).unwrap();
    let b = sim.add_node(bouncing).unwrap();
    sim.connect_with(a, b, LinkConfig::new(Duration::ZERO))
        .unwrap();
    sim.with_node(a, |m, _| m.publish(1, 8)).unwrap();
    let err = sim.run_until_quiet(1_000_000).unwrap_err();
    assert_eq!(
        err,
        SimError::Stalled {
            at: Duration::ZERO,
            steps: 1_001
        }
    );
}

#[test]
fn not_quiet_is_reported_and_time_advances_when_idle() {
    let mut sim = sim(10);
    let a = sim.add_node(|now| TestNode::ticking(now, 10 * MS)).unwrap();
    assert!(matches!(
        sim.run_until_quiet(5),
        Err(SimError::NotQuiet { steps: 5, .. })
    ));
    assert_eq!(sim.elapsed(), 50 * MS);
    let ticks: Vec<i64> = sim
        .take_events(a)
        .into_iter()
        .filter_map(|r| match r.event {
            Ev::Tick(ms) => Some(ms),
            _ => None,
        })
        .collect();
    let start = transports::memory::DEFAULT_START_UNIX_NANOS / 1_000_000;
    assert_eq!(ticks, (1..=5).map(|i| start + 10 * i).collect::<Vec<_>>());
    let mut idle = self::sim(10);
    idle.run_until(Duration::from_secs(3)).unwrap();
    assert_eq!(idle.elapsed(), Duration::from_secs(3));
}

#[test]
fn clock_skew_shifts_only_the_wall_clock_of_one_node() {
    let mut sim = sim(11);
    let a = sim.add_node(TestNode::new).unwrap();
    let b = sim.add_node(TestNode::new).unwrap();
    sim.set_clock_skew(b, -2_000_000_000).unwrap();
    let na = sim.node_now(a).unwrap();
    let nb = sim.node_now(b).unwrap();
    assert_eq!(na.instant, nb.instant);
    assert_eq!(na.unix_nanos - nb.unix_nanos, 2_000_000_000);
    assert!(matches!(
        sim.node_now(NodeId(9)),
        Err(SimError::UnknownNode(_))
    ));
}

#[test]
fn bad_link_probabilities_are_refused() {
    let mut sim = sim(12);
    let a = sim.add_node(TestNode::new).unwrap();
    let b = sim.add_node(TestNode::new).unwrap();
    for bad in [-0.1, 1.5, f64::NAN] {
        let err = sim
            .connect_with(a, b, LinkConfig::default().with_loss(bad))
            .unwrap_err();
        assert!(matches!(
            err,
            SimError::InvalidProbability { name: "loss", .. }
        ));
    }
    assert_eq!(sim.links().count(), 0);
}

/// A busy scenario: lossy, jittery, duplicating, reordering links, a partition, a crash and a
/// restart. Returns the simulation digest and a hash of every event every node saw.
fn busy_run(seed: u64) -> ([u8; 32], [u8; 32]) {
    let mut sim = Sim::new(SimConfig {
        seed,
        ..SimConfig::default()
    })
    .unwrap();
    let ids: Vec<NodeId> = (0..8)
        .map(|_| sim.add_node(TestNode::new).unwrap())
        .collect();
    let cfg = LinkConfig::new(20 * MS)
        .with_jitter(40 * MS)
        .with_loss(0.1)
        .with_duplicate(0.1)
        .with_reorder(0.2, 30 * MS);
    for i in 0..8 {
        sim.connect_with(ids[i], ids[(i + 1) % 8], cfg.clone())
            .unwrap();
        sim.connect_with(ids[i], ids[(i + 3) % 8], cfg.clone())
            .unwrap();
    }
    let mut events = Sha256::new();
    for round in 0..30u64 {
        let from = ids[(round % 8) as usize];
        if sim.is_up(from) {
            sim.with_node(from, |m, _| m.publish(round, 64 + round as usize))
                .unwrap();
        }
        match round {
            10 => sim.partition(&ids[..3]).unwrap(),
            15 => sim.heal(),
            18 => {
                sim.crash(ids[5]).unwrap();
            }
            24 => sim.restart(ids[5], TestNode::new).unwrap(),
            _ => {}
        }
        sim.run_for(15 * MS).unwrap();
    }
    sim.run_until_quiet(100_000).unwrap();
    for id in &ids {
        for r in sim.take_events(*id) {
            events.update(format!("{id} {:?} {:?}\n", r.at, r.event));
        }
    }
    assert!(sim.stats().is_conserved(0));
    (sim.trace_digest(), events.finalize().into())
}

#[test]
fn the_same_seed_gives_the_same_run_byte_for_byte() {
    let first = busy_run(77);
    let second = busy_run(77);
    println!("digest {}", hex::encode(first.0));
    assert_eq!(first, second);
    let other = busy_run(78);
    assert_ne!(first.0, other.0, "the seed matters");
    assert_ne!(first.1, other.1);
}
