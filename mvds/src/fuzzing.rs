//! Fuzz bodies, shared by the cargo-fuzz targets in `fuzz/` (`mvds_payload`,
//! `mvds_interaction`), by the property tests and by a test that replays the corpus committed
//! in `mvds/fuzz-corpus/`.
//!
//! A fuzz body panics when it finds a bug; that is how the fuzzer learns of it.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::sim::{NetConfig, Sim};
use crate::store::{Fault, MemoryStore, SyncStore};
use crate::{Config, GroupId, HandleError, MAX_PAYLOAD_BYTES, Mode, Node};

fn fixture() -> Node<u64> {
    let group = GroupId([1; 32]);
    let mut node = Node::open(Config::default(), [3; 32], MemoryStore::new()).unwrap();
    node.add_peer(group, 7).unwrap();
    node.add_peer(group, 8).unwrap();
    node.send(group, b"batch".to_vec(), Mode::Batch, 10)
        .unwrap();
    node.send(group, b"interactive".to_vec(), Mode::Interactive, 11)
        .unwrap();
    node.handle_tick().unwrap();
    while node.poll_transmit().is_some() {}
    node
}

/// Feeds `data` to a node with some state as a payload from a group peer. Bytes refused as
/// not MVDS must leave the node exactly as it was; accepted ones must leave it able to tick
/// and produce valid payloads.
pub fn payload(data: &[u8]) {
    let mut node = fixture();
    let before = node.stored_snapshot();
    let counts = (
        node.outstanding_total(),
        node.pending_events(),
        node.pending_acks(),
        node.epoch(),
    );
    match node.handle_payload(7, data) {
        Err(HandleError::NotMvds(_)) => {
            assert_eq!(
                node.stored_snapshot(),
                before,
                "a refused payload changed the store"
            );
            assert_eq!(
                (
                    node.outstanding_total(),
                    node.pending_events(),
                    node.pending_acks(),
                    node.epoch()
                ),
                counts,
                "a refused payload changed the node"
            );
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(()) => {
            node.handle_tick().unwrap();
            while let Some(t) = node.poll_transmit() {
                assert!(t.bytes.len() <= MAX_PAYLOAD_BYTES);
                crate::wire::decode(&t.bytes).expect("the node produced an invalid payload");
            }
            while node.poll_event().is_some() {}
        }
    }
}

impl Node<u64> {
    fn stored_snapshot(&mut self) -> crate::store::Snapshot<u64> {
        self.store_mut().load().unwrap()
    }
}

/// Reads bytes as a sequence of small numbers; zeros once the input runs out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The most operations one input runs.
const MAX_OPS: usize = 400;

/// The schedule the interaction target uses: fast, so that a heal converges quickly.
pub fn interaction_config() -> Config {
    Config {
        backoff_base: 1,
        backoff_cap: 8,
        backoff_jitter: 3,
        online_jitter: 2,
        max_send_count: None,
    }
}

/// Epochs allowed after the network heals for everything to be delivered and acked.
pub const HEAL_BOUND: u64 = 200;

/// Interprets `data` as operations on two (or three) nodes sharing a group: send (batch or
/// interactive), advance epochs, drop, duplicate or delay a payload in flight, partition or
/// heal, take a node offline or back, arm a crash at a persistence point, crash and restart a
/// node. After every operation no message may have been delivered twice or altered; at the end
/// the network heals and everything sent must be delivered and acked within [`HEAL_BOUND`]
/// epochs.
pub fn interaction(data: &[u8]) {
    let mut r = Reader(data);
    let seed = u64::from(r.byte()) | u64::from(r.byte()) << 8;
    let nodes = 2 + u64::from(r.byte() % 2);
    let net = NetConfig {
        notify: r.byte() % 2 == 1,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(seed, nodes, interaction_config(), net.clone());
    let group = GroupId([9; 32]);
    let all: Vec<u64> = (0..nodes).collect();
    sim.join(group, &all);
    let mut counter = 0u32;
    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        let node = u64::from(r.byte()) % nodes;
        match r.byte() % 12 {
            0 | 1 => {
                let mode = if r.byte().is_multiple_of(2) {
                    Mode::Batch
                } else {
                    Mode::Interactive
                };
                let mut body = counter.to_le_bytes().to_vec();
                body.resize(4 + usize::from(r.byte()), 0xa5);
                counter += 1;
                let _ = sim.send(node, group, body, mode);
            }
            2 | 3 => sim.step(),
            4 => sim.drop_packet(usize::from(r.byte())),
            5 => sim.duplicate_packet(usize::from(r.byte()), u64::from(r.byte() % 12)),
            6 => sim.delay_packet(usize::from(r.byte()), u64::from(r.byte() % 12)),
            7 => sim.set_partition(r.byte() % 2 == 1),
            8 => {
                let fault = if r.byte().is_multiple_of(2) {
                    Fault::BeforeApply
                } else {
                    Fault::AfterApply
                };
                sim.arm_crash(node, u64::from(r.byte() % 8), fault);
            }
            9 => sim.crash(node),
            10 => {
                let off = r.byte() % 2 == 1;
                sim.set_offline(node, off);
            }
            _ => {
                for _ in 0..r.byte() % 32 {
                    sim.step();
                }
            }
        }
        assert!(
            sim.ledger.violations.is_empty(),
            "seed {seed}: {:?}",
            sim.ledger.violations
        );
    }
    sim.disarm_all();
    sim.set_partition(false);
    for i in 0..nodes {
        sim.set_offline(i, false);
    }
    let took = sim.run_until_quiet(HEAL_BOUND);
    assert!(
        sim.ledger.violations.is_empty(),
        "seed {seed}: {:?}",
        sim.ledger.violations
    );
    assert!(
        took.is_some(),
        "seed {seed}: not settled {HEAL_BOUND} epochs after healing: {} deliveries missing, \
         outstanding {:?}",
        sim.ledger.missing(),
        (0..nodes)
            .map(|i| sim.node(i).map(|n| n.outstanding_total()))
            .collect::<Vec<_>>()
    );
    assert_eq!(sim.ledger.duplicates(), 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn payload_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            payload(&data);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn interaction_holds(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            interaction(&data);
        }
    }

    fn corpus(dir: &str) -> Vec<Vec<u8>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz-corpus")
            .join(dir);
        let mut files: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect()
    }

    /// Replays the committed corpus (inputs kept from cargo-fuzz runs of both targets).
    #[test]
    fn committed_corpus_replays() {
        let interaction_inputs = corpus("interaction");
        let payload_inputs = corpus("payload");
        assert!(interaction_inputs.len() >= 16 && payload_inputs.len() >= 8);
        for data in &interaction_inputs {
            interaction(data);
        }
        for data in &payload_inputs {
            payload(data);
        }
    }

    /// A crash-heavy input: sends, crashes armed on every node, steps.
    #[test]
    fn interaction_with_many_crashes() {
        for seed in 0u8..32 {
            let mut data = vec![seed, 0, 1, seed % 2];
            for k in 0..40u8 {
                data.extend_from_slice(&[k, 0, k % 2, 20]); // send
                data.extend_from_slice(&[k + 1, 8, k % 2, k % 5]); // arm a crash
                data.extend_from_slice(&[k, 2]); // step
                data.extend_from_slice(&[k, 5, k, 3]); // duplicate
                data.extend_from_slice(&[k, 4, k]); // drop
                data.extend_from_slice(&[k, 2]); // step
            }
            interaction(&data);
        }
    }
}
