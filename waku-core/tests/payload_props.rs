//! Property tests for payload encryption: seal/open round trips in both modes, signed or not,
//! and every single flipped bit of an envelope is refused. Keys and RNG seeds are generated
//! inputs, so a failing case prints everything needed to replay it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use waku_core::payload::{
    OpenError, RecipientKey, SymmetricKey, open_asymmetric, open_symmetric, seal_asymmetric,
    seal_symmetric, sealed_len_asymmetric, sealed_len_symmetric,
};
use x25519_dalek::StaticSecret;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn asymmetric_round_trip(
        secret in any::<[u8; 32]>(),
        seed in any::<[u8; 32]>(),
        signer in proptest::option::of(any::<[u8; 32]>()),
        payload in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        let bob = RecipientKey::new(StaticSecret::from(secret));
        let signer = signer.map(|s| SigningKey::from_bytes(&s));
        let mut rng = ChaCha20Rng::from_seed(seed);
        let env = seal_asymmetric(&mut rng, &bob.public(), &payload, signer.as_ref()).unwrap();
        prop_assert_eq!(env.len(), sealed_len_asymmetric(payload.len(), signer.is_some()));
        let opened = open_asymmetric(&bob, &env).unwrap();
        prop_assert_eq!(&opened.payload[..], &payload[..]);
        prop_assert_eq!(opened.signer, signer.as_ref().map(SigningKey::verifying_key));
    }

    #[test]
    fn symmetric_round_trip(
        key in any::<[u8; 32]>(),
        seed in any::<[u8; 32]>(),
        signer in proptest::option::of(any::<[u8; 32]>()),
        payload in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        let key = SymmetricKey::from_bytes(key);
        let signer = signer.map(|s| SigningKey::from_bytes(&s));
        let mut rng = ChaCha20Rng::from_seed(seed);
        let env = seal_symmetric(&mut rng, &key, &payload, signer.as_ref()).unwrap();
        prop_assert_eq!(env.len(), sealed_len_symmetric(payload.len(), signer.is_some()));
        let opened = open_symmetric(&key, &env).unwrap();
        prop_assert_eq!(&opened.payload[..], &payload[..]);
        prop_assert_eq!(opened.signer, signer.as_ref().map(SigningKey::verifying_key));
    }

    #[test]
    fn any_flipped_bit_is_refused(
        seed in any::<[u8; 32]>(),
        symmetric in any::<bool>(),
        signed in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..600),
        bit in any::<usize>(),
    ) {
        let bob = RecipientKey::new(StaticSecret::from([7; 32]));
        let key = SymmetricKey::from_bytes([8; 32]);
        let alice = SigningKey::from_bytes(&[9; 32]);
        let signer = signed.then_some(&alice);
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut env = if symmetric {
            seal_symmetric(&mut rng, &key, &payload, signer).unwrap()
        } else {
            seal_asymmetric(&mut rng, &bob.public(), &payload, signer).unwrap()
        };
        let bit = bit % (env.len() * 8);
        env[bit / 8] ^= 1 << (bit % 8);
        let result = if symmetric { open_symmetric(&key, &env) } else { open_asymmetric(&bob, &env) };
        let err = result.expect_err("a flipped bit must be refused");
        // The mode byte gives WrongMode; a flipped ephemeral key may land on a low-order point;
        // everything else fails authentication.
        prop_assert!(matches!(
            err,
            OpenError::Authentication | OpenError::WrongMode { .. } | OpenError::NonContributory
        ), "{:?}", err);
        if bit >= 8 && !matches!(err, OpenError::NonContributory) {
            prop_assert_eq!(err, OpenError::Authentication);
        }
    }

    #[test]
    fn open_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..1200),
        mode in 0u8..4,
        well_sized in any::<bool>(),
    ) {
        let bob = RecipientKey::new(StaticSecret::from([7; 32]));
        let key = SymmetricKey::from_bytes([8; 32]);
        let mut bytes = bytes;
        // Half the inputs get a length the framing accepts, so the AEAD check is reached.
        if well_sized {
            let blocks = bytes.len() / 256 + 1;
            let prefix = if mode == 2 { 25 } else { 33 };
            bytes.resize(prefix + 256 * blocks + 16, 0xa5);
        }
        // Start most inputs with a valid mode byte so the checks past it are reached.
        if let Some(first) = bytes.first_mut() && mode > 0 {
            *first = mode;
        }
        // Random bytes never authenticate; they must fail cleanly.
        prop_assert!(open_asymmetric(&bob, &bytes).is_err());
        prop_assert!(open_symmetric(&key, &bytes).is_err());
    }
}
