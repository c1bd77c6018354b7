//! Property tests of the simulated network over random topologies, link faults, partitions,
//! crashes and restarts: every frame copy has exactly one fate, the machines saw exactly the
//! delivered copies, FIFO links keep order, and the same seed replays byte for byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "memory")]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Ev, TestNode};
use proptest::prelude::*;
use transports::memory::{LinkConfig, NodeId, Sim, SimConfig, TraceRecord};
use waku_core::net::{FrameKind, Protocol};

#[derive(Debug, Clone)]
enum Op {
    Publish { node: usize, len: usize },
    Request { node: usize, peer: usize },
    Advance(u64),
    Partition(Vec<bool>),
    Heal,
    Crash(usize),
    Restart(usize),
    Unlink(usize, usize),
    Link(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..8usize, 8..2048usize).prop_map(|(node, len)| Op::Publish { node, len }),
        3 => (0..8usize, 0..8usize).prop_map(|(node, peer)| Op::Request { node, peer }),
        6 => (0..200u64).prop_map(Op::Advance),
        1 => prop::collection::vec(any::<bool>(), 8).prop_map(Op::Partition),
        1 => Just(Op::Heal),
        1 => (0..8usize).prop_map(Op::Crash),
        1 => (0..8usize).prop_map(Op::Restart),
        1 => (0..8usize, 0..8usize).prop_map(|(a, b)| Op::Unlink(a, b)),
        1 => (0..8usize, 0..8usize).prop_map(|(a, b)| Op::Link(a, b)),
    ]
}

fn link() -> impl Strategy<Value = LinkConfig> {
    (
        1..100u64,
        0..60u64,
        0.0..0.5f64,
        0.0..0.5f64,
        prop_oneof![Just(0.0), 0.0..0.5f64],
        0..80u64,
    )
        .prop_map(|(lat, jit, loss, dup, reorder, extra)| {
            LinkConfig::new(Duration::from_millis(lat))
                .with_jitter(Duration::from_millis(jit))
                .with_loss(loss)
                .with_duplicate(dup)
                .with_reorder(reorder, Duration::from_millis(extra))
        })
}

#[derive(Debug, Clone)]
struct Scenario {
    seed: u64,
    nodes: usize,
    /// A config per unordered pair that may be linked; a ring is linked at the start.
    links: Vec<LinkConfig>,
    extra: Vec<(usize, usize)>,
    ops: Vec<Op>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        3..8usize,
        prop::collection::vec(link(), 64),
        prop::collection::vec((0..8usize, 0..8usize), 0..6),
        prop::collection::vec(op(), 1..60),
    )
        .prop_map(|(seed, nodes, links, extra, ops)| Scenario {
            seed,
            nodes,
            links,
            extra,
            ops,
        })
}

fn pair_config(s: &Scenario, a: usize, b: usize) -> LinkConfig {
    let (a, b) = if a < b { (a, b) } else { (b, a) };
    s.links[(a * 8 + b) % s.links.len()].clone()
}

/// Runs the scenario to quiet and returns the simulation.
fn run(s: &Scenario) -> Sim<TestNode> {
    let config = SimConfig {
        seed: s.seed,
        trace_capacity: usize::MAX,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config).unwrap();
    let ids: Vec<NodeId> = (0..s.nodes)
        .map(|_| sim.add_node(TestNode::new).unwrap())
        .collect();
    let node = |i: usize| ids[i % s.nodes];
    for i in 0..s.nodes {
        let j = (i + 1) % s.nodes;
        let _ = sim.connect_with(node(i), node(j), pair_config(s, i, j));
    }
    for &(a, b) in &s.extra {
        let _ = sim.connect_with(node(a), node(b), pair_config(s, a % s.nodes, b % s.nodes));
    }
    let mut next_id = 0u64;
    for op in &s.ops {
        match op {
            Op::Publish { node: n, len } => {
                next_id += 1;
                let id = next_id;
                let _ = sim.with_node(node(*n), |m, _| m.publish(id, *len));
            }
            Op::Request { node: n, peer } => {
                if let Some(p) = sim.peer_id(node(*n), node(*peer)) {
                    next_id += 1;
                    let id = next_id;
                    let _ = sim.with_node(node(*n), |m, _| {
                        m.send(
                            p,
                            Protocol::StoreQuery,
                            FrameKind::Request(id),
                            vec![1, 2, 3],
                        )
                    });
                }
            }
            Op::Advance(ms) => {
                sim.run_for(Duration::from_millis(*ms)).unwrap();
            }
            Op::Partition(mask) => {
                let island: Vec<NodeId> = (0..s.nodes).filter(|&i| mask[i]).map(node).collect();
                sim.partition(&island).unwrap();
            }
            Op::Heal => sim.heal(),
            Op::Crash(n) => {
                let _ = sim.crash(node(*n));
            }
            Op::Restart(n) => {
                let _ = sim.restart(node(*n), TestNode::new);
            }
            Op::Unlink(a, b) => {
                let _ = sim.disconnect(node(*a), node(*b));
            }
            Op::Link(a, b) => {
                let cfg = pair_config(s, a % s.nodes, b % s.nodes);
                let _ = sim.connect_with(node(*a), node(*b), cfg);
            }
        }
        assert!(
            sim.stats().is_conserved(sim.in_flight()),
            "{:?}",
            sim.stats()
        );
    }
    sim.run_until_quiet(1_000_000).unwrap();
    sim
}

fn check(s: &Scenario) {
    println!("seed {}", s.seed);
    let mut sim = run(s);
    let stats = sim.stats().clone();
    println!("{stats:?}");
    assert_eq!(sim.in_flight(), 0);
    assert!(stats.is_conserved(0), "{stats:?}");

    // Every copy (a sent frame or a duplicate) has exactly one fate.
    let mut origin: BTreeMap<u64, (NodeId, Option<NodeId>)> = BTreeMap::new();
    let mut fates: BTreeMap<u64, u32> = BTreeMap::new();
    let mut delivered_to: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut delivered_on: BTreeMap<(NodeId, NodeId), Vec<u64>> = BTreeMap::new();
    for r in sim.trace() {
        match r {
            TraceRecord::Sent { seq, from, to, .. } => {
                assert!(origin.insert(*seq, (*from, *to)).is_none());
            }
            TraceRecord::Duplicated { seq, copy, .. } => {
                let o = *origin.get(seq).expect("duplicate of an unsent frame");
                assert!(origin.insert(*copy, o).is_none());
            }
            TraceRecord::Delivered { seq, to, .. } => {
                *fates.entry(*seq).or_default() += 1;
                *delivered_to.entry(*to).or_default() += 1;
                let (from, dest) = origin[seq];
                assert_eq!(dest, Some(*to));
                delivered_on.entry((from, *to)).or_default().push(*seq);
            }
            TraceRecord::Lost { seq, .. } | TraceRecord::Dropped { seq, .. } => {
                *fates.entry(*seq).or_default() += 1;
            }
            _ => {}
        }
    }
    assert_eq!(origin.len() as u64, stats.frames_sent + stats.duplicates);
    for seq in origin.keys() {
        assert_eq!(
            fates.get(seq),
            Some(&1),
            "copy {seq} has {:?} fates",
            fates.get(seq)
        );
    }
    assert_eq!(fates.len(), origin.len());

    // The machines saw exactly the delivered copies (events survive crashes).
    for id in sim.node_ids().collect::<Vec<_>>() {
        let seen = sim
            .take_events(id)
            .into_iter()
            .filter(|r| {
                matches!(
                    r.event,
                    Ev::Relay { .. } | Ev::Request { .. } | Ev::Response { .. }
                )
            })
            .count() as u64;
        let delivered = delivered_to.get(&id).copied().unwrap_or(0);
        assert_eq!(seen, delivered, "{id}");
        assert_eq!(
            sim.node_stats(id).unwrap().frames_received,
            delivered,
            "{id}"
        );
    }

    // Links without reordering deliver in the order frames were sent.
    for ((from, to), seqs) in &delivered_on {
        if pair_config(s, from.0 as usize, to.0 as usize).reorder == 0.0 {
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "{from}->{to}: {seqs:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_copy_has_one_fate_and_machines_see_exactly_the_delivered_ones(s in scenario()) {
        check(&s);
    }

    #[test]
    fn the_same_seed_replays_byte_for_byte(s in scenario()) {
        println!("seed {}", s.seed);
        let a = run(&s);
        let b = run(&s);
        prop_assert_eq!(a.trace_digest(), b.trace_digest());
        prop_assert_eq!(a.trace(), b.trace());
        prop_assert_eq!(a.stats(), b.stats());
    }
}
