//! Exactly-once delivery over a hostile simulated network (seeded; each test prints its seeds).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mvds::sim::{NetConfig, Sim};
use mvds::{Config, GroupId, Mode};

const G: GroupId = GroupId([5; 32]);

/// A fast schedule for simulations: first retry after 2 epochs, doubling up to 32, 4 epochs of
/// jitter.
fn sim_config() -> Config {
    Config {
        backoff_base: 2,
        backoff_cap: 32,
        backoff_jitter: 4,
        online_jitter: 2,
        max_send_count: None,
    }
}

fn body(from: u64, i: u32) -> Vec<u8> {
    let mut b = format!("msg {from}/{i} ").into_bytes();
    b.resize(24, b'.');
    b
}

fn mode(i: u32) -> Mode {
    if i.is_multiple_of(2) {
        Mode::Batch
    } else {
        Mode::Interactive
    }
}

fn assert_clean(sim: &Sim, seed: u64) {
    assert!(
        sim.ledger.violations.is_empty(),
        "seed {seed}: {:?}",
        &sim.ledger.violations[..sim.ledger.violations.len().min(5)]
    );
    assert_eq!(sim.ledger.duplicates(), 0, "seed {seed}");
}

/// 10,000 messages between two peers (5,000 each way, alternating batch and interactive mode,
/// 100 per epoch per peer) with each payload lost with probability 1/2 in each direction: every
/// message is delivered exactly once, over 20 seeds.
#[test]
fn ten_thousand_messages_at_fifty_percent_loss_twenty_seeds() {
    for seed in 0..20u64 {
        println!("seed {seed}");
        let net = NetConfig {
            loss: 0.5,
            ..NetConfig::default()
        };
        let mut sim = Sim::new(seed, 2, sim_config(), net);
        sim.join(G, &[0, 1]);
        let mut i = 0u32;
        while i < 5_000 {
            for _ in 0..100 {
                for from in 0..2 {
                    sim.send(from, G, body(from, i), mode(i)).unwrap();
                }
                i += 1;
            }
            sim.step();
        }
        assert_eq!(sim.ledger.expected(), 10_000);
        let took = sim.run_until_quiet(20_000);
        assert_clean(&sim, seed);
        assert!(
            took.is_some(),
            "seed {seed}: {} of 10000 missing",
            sim.ledger.missing()
        );
        assert_eq!(sim.ledger.delivered_once(), 10_000, "seed {seed}");
        println!(
            "seed {seed}: all 10000 delivered once, quiet {} epochs after the last send, {} payloads, {} lost",
            took.unwrap_or(0),
            sim.stats.payloads_sent,
            sim.stats.payloads_lost
        );
    }
}

/// 30% of payloads duplicated and every copy delayed by 1 to 10 epochs (reordering over a
/// 10-epoch window): each message is delivered exactly once, in the order its first copy
/// arrived.
#[test]
fn duplication_and_reordering_deliver_once_in_arrival_order() {
    for seed in 100..110u64 {
        println!("seed {seed}");
        let net = NetConfig {
            duplicate: 0.3,
            reorder_window: 10,
            ..NetConfig::default()
        };
        let mut sim = Sim::new(seed, 2, sim_config(), net);
        sim.record_arrivals(true);
        sim.join(G, &[0, 1]);
        for i in 0..1_000u32 {
            for from in 0..2 {
                sim.send(from, G, body(from, i), mode(i)).unwrap();
            }
            if i % 20 == 19 {
                sim.step();
            }
        }
        let took = sim.run_until_quiet(5_000);
        assert_clean(&sim, seed);
        assert!(
            took.is_some(),
            "seed {seed}: {} missing",
            sim.ledger.missing()
        );
        assert!(sim.stats.payloads_duplicated > 0);
        for node in 0..2 {
            assert_eq!(
                sim.ledger.order[&node], sim.ledger.arrivals[&node],
                "seed {seed}: node {node} delivered out of arrival order"
            );
            assert_eq!(sim.ledger.order[&node].len(), 1_000);
        }
    }
}

/// The reference simulation's default: three peers sharing a group, each offline (sending and
/// receiving nothing) in 90% of epochs, drawn independently every epoch. Everything is
/// eventually delivered exactly once.
#[test]
fn peers_offline_ninety_percent_of_epochs_eventually_get_everything() {
    for (seed, notify) in [(200u64, false), (201, true), (202, false), (203, true)] {
        println!("seed {seed} (online/offline notifications: {notify})");
        let net = NetConfig {
            offline: 0.9,
            notify,
            ..NetConfig::default()
        };
        let config = Config {
            backoff_base: 1,
            backoff_cap: 4,
            backoff_jitter: 2,
            online_jitter: 1,
            max_send_count: None,
        };
        let mut sim = Sim::new(seed, 3, config, net);
        sim.join(G, &[0, 1, 2]);
        for i in 0..30u32 {
            for from in 0..3 {
                sim.send(from, G, body(from, i), mode(i)).unwrap();
            }
            sim.step();
        }
        let took = sim.run_until(200_000, |s| s.ledger.all_delivered());
        assert_clean(&sim, seed);
        assert!(
            took.is_some(),
            "seed {seed}: {} missing",
            sim.ledger.missing()
        );
        assert_eq!(sim.ledger.delivered_once(), 180);
        println!("seed {seed}: 180 deliveries after {} epochs", sim.epoch());
    }
}

/// A 1,000-epoch partition, then heal: everything is delivered within the backoff cap plus
/// jitter plus a few epochs, with or without being told that peers are back.
#[test]
fn partition_of_a_thousand_epochs_then_heal() {
    for seed in 300..306u64 {
        let notify = seed % 2 == 1;
        println!("seed {seed} (notify: {notify})");
        let config = Config {
            backoff_base: 2,
            backoff_cap: 64,
            backoff_jitter: 8,
            online_jitter: 2,
            max_send_count: None,
        };
        let net = NetConfig {
            notify,
            ..NetConfig::default()
        };
        let mut sim = Sim::new(seed, 2, config.clone(), net);
        sim.join(G, &[0, 1]);
        // Some traffic before, during and at the end of the partition.
        for i in 0..50u32 {
            sim.send(0, G, body(0, i), mode(i)).unwrap();
            sim.send(1, G, body(1, i), mode(i)).unwrap();
        }
        sim.step();
        sim.set_partition(true);
        for round in 0..1_000u32 {
            if round.is_multiple_of(100) {
                for i in 0..20u32 {
                    let i = 1_000 + round + i;
                    sim.send(0, G, body(0, i), mode(i)).unwrap();
                    sim.send(1, G, body(1, i), mode(i)).unwrap();
                }
            }
            sim.step();
        }
        let missing_at_heal = sim.ledger.missing();
        assert!(missing_at_heal > 0);
        sim.set_partition(false);
        // Interactive mode needs up to three trips after the first retransmission, each new
        // record going out on the next tick.
        let bound = if notify {
            config.online_jitter + 1 + 8
        } else {
            config.backoff_cap + config.backoff_jitter + 8
        };
        let delivered = sim.run_until(bound, |s| s.ledger.all_delivered());
        assert_clean(&sim, seed);
        assert!(
            delivered.is_some(),
            "seed {seed}: {} of {missing_at_heal} still missing {bound} epochs after heal",
            sim.ledger.missing()
        );
        println!(
            "seed {seed}: {missing_at_heal} pending deliveries done {} epochs after heal (bound {bound})",
            delivered.unwrap_or(0)
        );
        assert!(sim.run_until_quiet(bound).is_some(), "seed {seed}: acks");
    }
}

/// Four peers sharing a group, 30% loss: each message reaches the three others exactly once.
#[test]
fn group_messages_reach_every_peer_sharing_the_group() {
    for seed in 400..405u64 {
        println!("seed {seed}");
        let net = NetConfig {
            loss: 0.3,
            duplicate: 0.1,
            reorder_window: 3,
            ..NetConfig::default()
        };
        let mut sim = Sim::new(seed, 5, sim_config(), net);
        sim.join(G, &[0, 1, 2, 3]);
        // Node 4 shares another group with node 0 only.
        let other = GroupId([6; 32]);
        sim.join(other, &[0, 4]);
        for i in 0..100u32 {
            for from in 0..4 {
                sim.send(from, G, body(from, i), mode(i)).unwrap();
            }
            sim.send(4, other, body(4, i), mode(i)).unwrap();
            sim.step();
        }
        let took = sim.run_until_quiet(5_000);
        assert_clean(&sim, seed);
        assert!(
            took.is_some(),
            "seed {seed}: {} missing",
            sim.ledger.missing()
        );
        assert_eq!(sim.ledger.expected(), 4 * 100 * 3 + 100);
        let to_4 = sim.ledger.delivered.keys().filter(|(n, _)| *n == 4).count();
        assert_eq!(to_4, 0, "node 4 shares nothing in G");
    }
}
