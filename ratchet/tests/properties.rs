//! Property tests: random schedules over loss, duplication, reordering and tampering; every
//! rejected input leaves the pickled state byte for byte as it was; the skip limit holds at N,
//! N+1 and anything up to u32::MAX.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ratchet::fuzzing::{Action, Rig};
use ratchet::{DecryptError, MAX_SKIP, Message, PickleKey, RatchetKeyPair, Session, SessionConfig};

fn config(he: bool) -> SessionConfig {
    if he {
        SessionConfig::with_header_encryption()
    } else {
        SessionConfig::plain()
    }
}

fn snapshot(s: &Session) -> Vec<u8> {
    s.pickle(
        &mut ChaCha20Rng::seed_from_u64(0),
        &PickleKey::from([9; 32]),
    )
}

/// A pair that has exchanged a few messages, with `held` of Alice's messages still in flight
/// (so Bob has stored skipped keys when some later one arrives first).
fn warmed_up(seed: u64, he: bool) -> (Session, Session, Vec<Message>, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let prekey = RatchetKeyPair::generate(&mut rng);
    let mut alice = Session::initiator(
        &mut rng,
        &[5; 32],
        &[6; 64],
        prekey.public_key(),
        config(he),
    )
    .unwrap();
    let mut bob = Session::responder(&[5; 32], &[6; 64], prekey, config(he));
    let m = alice.encrypt(&mut rng, b"one").unwrap();
    bob.decrypt(&m).unwrap();
    let r = bob.encrypt(&mut rng, b"two").unwrap();
    alice.decrypt(&r).unwrap();
    let held: Vec<_> = (0..4)
        .map(|i| alice.encrypt(&mut rng, &[i]).unwrap())
        .collect();
    bob.decrypt(&held[3]).unwrap();
    (alice, bob, held, rng)
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize),
    SetN(u32),
    SetPn(u32),
    NewKey([u8; 32]),
    Truncate(usize),
    Replay,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::FlipBit),
        prop_oneof![
            Just(u32::MAX),
            Just(MAX_SKIP),
            Just(MAX_SKIP + 1),
            any::<u32>()
        ]
        .prop_map(Mutation::SetN),
        any::<u32>().prop_map(Mutation::SetPn),
        any::<[u8; 32]>().prop_map(Mutation::NewKey),
        any::<usize>().prop_map(Mutation::Truncate),
        Just(Mutation::Replay),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random schedules drive a real session pair; the rig checks exactly-once delivery,
    /// rejection of duplicates and tampering without change, and the limits.
    #[test]
    fn random_schedules(seed in any::<u64>(), he in any::<bool>(),
                        ops in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..300)) {
        println!("seed {seed} he {he}");
        let mut rig = Rig::new(seed, config(he));
        for (op, arg) in ops {
            rig.step(Action::from_bytes(op, arg));
        }
        rig.finish();
    }

    /// Whatever is wrong with a message, a rejection leaves the session byte for byte as it
    /// was, and the untouched message still decrypts afterwards.
    #[test]
    fn rejected_input_changes_nothing(seed in any::<u64>(), he in any::<bool>(),
                                      which in 0usize..3, m in mutation()) {
        println!("seed {seed} he {he}");
        let (_alice, mut bob, held, _) = warmed_up(seed, he);
        let original = &held[which];
        let mut wire = original.to_proto();
        let dr = wire.dr_header.as_mut().unwrap();
        let forged = match m {
            Mutation::FlipBit(bit) => {
                let mut bytes = original.encode();
                let bit = bit % (bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
                Message::decode(&bytes).ok()
            }
            Mutation::SetN(n) if !he => { dr.n = n; Message::from_proto(&wire).ok() }
            Mutation::SetPn(pn) if !he => { dr.pn = pn; Message::from_proto(&wire).ok() }
            Mutation::NewKey(k) if !he => { dr.key = k.to_vec(); Message::from_proto(&wire).ok() }
            Mutation::NewKey(k) => {
                // Replace the sealed header's body with random bytes (same length).
                dr.encrypted_header[24..56].copy_from_slice(&k);
                Message::from_proto(&wire).ok()
            }
            Mutation::Truncate(len) => {
                let len = len % wire.payload.len();
                wire.payload.truncate(len);
                Message::from_proto(&wire).ok()
            }
            Mutation::Replay => Some(held[3].clone()),
            _ => None,
        };
        if let Some(forged) = forged.filter(|f| f != original) {
            let before = snapshot(&bob);
            let result = bob.decrypt(&forged);
            prop_assert!(result.is_err(), "forged message accepted");
            prop_assert_eq!(&before, &snapshot(&bob));
        }
        prop_assert_eq!(&bob.decrypt(original).unwrap()[..], &[which as u8]);
    }

    /// The limit decides before anything else: `n` up to MAX_SKIP ahead passes the limit (and
    /// then fails authentication, the header having been changed), beyond it is rejected as
    /// TooManySkipped; the session is unchanged either way.
    #[test]
    fn skip_limit_boundary(seed in any::<u64>(),
                           ahead in prop_oneof![Just(MAX_SKIP), Just(MAX_SKIP + 1),
                                                Just(u32::MAX - 5), 0..=u32::MAX - 5]) {
        let (_alice, mut bob, held, _) = warmed_up(seed, false);
        // Bob's receiving chain expects n = 4 next.
        let mut wire = held[3].to_proto();
        let n = 4u32.saturating_add(ahead);
        wire.dr_header.as_mut().unwrap().n = n;
        let forged = Message::from_proto(&wire).unwrap();
        let before = snapshot(&bob);
        let err = bob.decrypt(&forged).unwrap_err();
        if ahead > MAX_SKIP {
            prop_assert_eq!(err, DecryptError::TooManySkipped { requested: u64::from(ahead) });
        } else {
            prop_assert_eq!(err, DecryptError::AuthenticationFailed);
        }
        prop_assert_eq!(before, snapshot(&bob));
    }
}
