//! The long random session: three seeded schedules of 5,000 steps each over send, deliver, drop,
//! duplicate and reorder in both directions (plus tampering and restarts from a pickle), in both
//! header modes. The rig (`ratchet::fuzzing::Rig`) checks after every step that each delivered
//! message decrypts exactly once to what was sent, that duplicates and tampered messages are
//! rejected without changing the receiver, and that the skipped-key store stays within its
//! limit; at the end every message that was not dropped has been decrypted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use ratchet::SessionConfig;
use ratchet::fuzzing::{Action, Dir, Rig};

const STEPS: usize = 5_000;

/// A schedule: bursts of traffic in one direction, then the other, with the network misbehaving
/// throughout.
fn schedule(seed: u64) -> Vec<Action> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut dir = Dir::AliceToBob;
    let mut actions = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        let r = rng.next_u32() % 100;
        if r < 8 {
            dir = if dir == Dir::AliceToBob {
                Dir::BobToAlice
            } else {
                Dir::AliceToBob
            };
        }
        // Traffic goes both ways: deliveries pick either direction.
        let any = if rng.next_u32() % 2 == 0 {
            Dir::AliceToBob
        } else {
            Dir::BobToAlice
        };
        let i = rng.next_u32() as usize;
        let j = rng.next_u32() as usize;
        actions.push(match rng.next_u32() % 100 {
            0..=34 => Action::Send(dir),
            35..=69 => Action::Deliver(any, i),
            70..=74 => Action::Drop(any, i),
            75..=84 => Action::Duplicate(any, i),
            85..=94 => Action::Reorder(any, i, j),
            95..=98 => Action::Tamper(any, i, (j % 65536) as u16),
            _ => Action::Restart(any),
        });
    }
    actions
}

fn run(seed: u64, config: SessionConfig) {
    let mut rig = Rig::new(seed, config);
    for action in schedule(seed) {
        rig.step(action);
    }
    rig.finish();
    let s = &rig.stats;
    println!("seed {seed} {config:?}: {s:?}");
    // The schedule stays below the store limit, so no message may be lost to eviction: every
    // message the network did not drop was decrypted exactly once.
    assert_eq!(s.evicted_lost, 0);
    assert!(s.delivered > 1_000 && s.duplicates_rejected > 100 && s.dropped > 50);
    assert!(s.tampered_rejected > 20 && s.restarts > 5);
}

#[test]
fn seed_1() {
    run(1, SessionConfig::plain());
    run(1, SessionConfig::with_header_encryption());
}

#[test]
fn seed_2() {
    run(2, SessionConfig::plain());
    run(2, SessionConfig::with_header_encryption());
}

#[test]
fn seed_3() {
    run(3, SessionConfig::plain());
    run(3, SessionConfig::with_header_encryption());
}
