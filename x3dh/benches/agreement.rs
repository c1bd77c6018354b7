//! Full X3DH agreement (initiator and responder, with bundle decoding and verification) against
//! the floor of its parts, measured in the same run.
//!
//! The floor is what any implementation of the profile must compute: one X25519 key generation
//! (the ephemeral key), six X25519 Diffie-Hellman operations (three per side), two strict Ed25519
//! verifications (bundle signature and prekey signature, public key already decoded) and two
//! HKDF-SHA256 derivations of SK. The full agreement adds what a real exchange needs on top:
//! protobuf decoding and encoding of bundle and header, decoding and checking the two Ed25519
//! identity points and mapping them to X25519, the canonical bundle encoding, the replay cache.
//!
//! After the criterion benchmarks, the two are timed again in alternating rounds and the median
//! ratio full / floor is printed (target: at most 1.2).
//!
//! Run: `cargo bench -p x3dh --bench agreement`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group};
use ed25519_dalek::{Signature, VerifyingKey};
use hkdf::Hkdf;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sha2::Sha256;
use x3dh::{
    Bundle, BundleConfig, IdentityKeyPair, InitialHeader, InstallationId, PreKeyStore,
    PreKeyStoreConfig, PublicIdentity,
};
use x25519_dalek::{PublicKey, StaticSecret};

const NOW: u64 = 1_700_000_000_000;

struct Fixture {
    alice: IdentityKeyPair,
    bob_seed: [u8; 32],
    bob_public: PublicIdentity,
    installation: InstallationId,
    bundle_bytes: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let bob_seed = [0xb0; 32];
        let store = bob_store(&bob_seed);
        Self {
            alice: IdentityKeyPair::from_seed(&[0xa1; 32]),
            bob_seed,
            bob_public: *store.identity().public(),
            installation: store.installation_id().clone(),
            bundle_bytes: store.bundle(NOW).encode(),
        }
    }

    /// One complete exchange: Alice decodes and verifies Bob's bundle, runs X3DH and encodes the
    /// header; Bob decodes the header and answers it from his store.
    fn full(&self, store: &mut PreKeyStore, rng: &mut ChaCha20Rng) -> [u8; 32] {
        let verified = Bundle::decode(&self.bundle_bytes)
            .unwrap()
            .verify(&self.bob_public, NOW, &BundleConfig::default())
            .unwrap();
        let alice = verified
            .initiate(&self.alice, &self.installation, rng)
            .unwrap();
        let header_bytes = alice.header.encode();
        let header = InitialHeader::decode(&header_bytes).unwrap();
        let bob = store.respond(&header, NOW).unwrap();
        *bob.shared_secret.as_bytes()
    }
}

fn bob_store(seed: &[u8; 32]) -> PreKeyStore {
    PreKeyStore::new(
        IdentityKeyPair::from_seed(seed),
        InstallationId::new("bench-device").unwrap(),
        PreKeyStoreConfig::default(),
        NOW,
        &mut ChaCha20Rng::seed_from_u64(1),
    )
}

/// The inputs of the floor: the same keys, messages and signatures as the full agreement.
struct Floor {
    alice_x: StaticSecret,
    alice_x_public: PublicKey,
    bob_x: StaticSecret,
    bob_x_public: PublicKey,
    spk: StaticSecret,
    spk_public: PublicKey,
    bob_ed: VerifyingKey,
    bundle_input: Vec<u8>,
    bundle_signature: Signature,
    spk_signature: Signature,
}

impl Floor {
    fn new(fixture: &Fixture) -> Self {
        let bundle = Bundle::decode(&fixture.bundle_bytes).unwrap();
        let pre_key = bundle.pre_key(&fixture.installation).unwrap();
        // Bob's signed prekey pair, as his store hands it to the ratchet.
        let header = bundle
            .verify(&fixture.bob_public, NOW, &BundleConfig::default())
            .unwrap()
            .initiate(
                &fixture.alice,
                &fixture.installation,
                &mut ChaCha20Rng::seed_from_u64(9),
            )
            .unwrap()
            .header;
        let pair = bob_store(&fixture.bob_seed)
            .respond(&header, NOW)
            .unwrap()
            .signed_pre_key;
        let bob = IdentityKeyPair::from_seed(&fixture.bob_seed);
        let alice_x = StaticSecret::from(*fixture.alice.x25519_secret_bytes());
        let bob_x = StaticSecret::from(*bob.x25519_secret_bytes());
        Self {
            alice_x_public: PublicKey::from(&alice_x),
            alice_x,
            bob_x_public: PublicKey::from(&bob_x),
            bob_x,
            spk: pair.to_static_secret(),
            spk_public: PublicKey::from(*pre_key.public_key().as_bytes()),
            bob_ed: VerifyingKey::from_bytes(fixture.bob_public.ed25519_bytes()).unwrap(),
            bundle_input: bundle.signing_input(),
            bundle_signature: Signature::from_bytes(bundle.signature()),
            spk_signature: Signature::from_bytes(pre_key.signature()),
        }
    }

    fn keygen(rng: &mut ChaCha20Rng) -> (StaticSecret, PublicKey) {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let secret = StaticSecret::from(bytes);
        let public = PublicKey::from(&secret);
        (secret, public)
    }

    fn hkdf(dh: [&[u8; 32]; 3]) -> [u8; 32] {
        let mut ikm = [0xffu8; 128];
        ikm[32..64].copy_from_slice(dh[0]);
        ikm[64..96].copy_from_slice(dh[1]);
        ikm[96..].copy_from_slice(dh[2]);
        let mut sk = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&[0u8; 32]), &ikm)
            .expand(b"status-rs X3DH", &mut sk)
            .unwrap();
        sk
    }

    /// Exactly the floor operations, in the order an agreement needs them.
    fn composite(&self, rng: &mut ChaCha20Rng) -> [u8; 32] {
        self.bob_ed
            .verify_strict(&self.bundle_input, &self.bundle_signature)
            .unwrap();
        self.bob_ed
            .verify_strict(self.spk_public.as_bytes(), &self.spk_signature)
            .unwrap();
        let (ek, ek_public) = Self::keygen(rng);
        let a1 = self.alice_x.diffie_hellman(&self.spk_public);
        let a2 = ek.diffie_hellman(&self.bob_x_public);
        let a3 = ek.diffie_hellman(&self.spk_public);
        let alice_sk = Self::hkdf([a1.as_bytes(), a2.as_bytes(), a3.as_bytes()]);
        let b1 = self.spk.diffie_hellman(&self.alice_x_public);
        let b2 = self.bob_x.diffie_hellman(&ek_public);
        let b3 = self.spk.diffie_hellman(&ek_public);
        let bob_sk = Self::hkdf([b1.as_bytes(), b2.as_bytes(), b3.as_bytes()]);
        assert_eq!(alice_sk, bob_sk);
        bob_sk
    }
}

fn benches(c: &mut Criterion) {
    let fixture = Fixture::new();
    let floor = Floor::new(&fixture);
    let mut rng = ChaCha20Rng::seed_from_u64(2);

    let mut group = c.benchmark_group("x3dh");
    group.bench_function("full_agreement", |b| {
        b.iter_batched_ref(
            || bob_store(&fixture.bob_seed),
            |store| black_box(fixture.full(store, &mut rng)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("floor/composite", |b| {
        b.iter(|| black_box(floor.composite(&mut rng)))
    });
    group.bench_function("floor/x25519_keygen", |b| {
        b.iter(|| black_box(Floor::keygen(&mut rng).1))
    });
    group.bench_function("floor/x25519_dh", |b| {
        b.iter(|| black_box(floor.alice_x.diffie_hellman(black_box(&floor.spk_public))))
    });
    group.bench_function("floor/ed25519_verify_strict_bundle", |b| {
        b.iter(|| {
            floor
                .bob_ed
                .verify_strict(black_box(&floor.bundle_input), &floor.bundle_signature)
                .unwrap()
        })
    });
    group.bench_function("floor/ed25519_verify_strict_prekey", |b| {
        b.iter(|| {
            floor
                .bob_ed
                .verify_strict(black_box(floor.spk_public.as_bytes()), &floor.spk_signature)
                .unwrap()
        })
    });
    group.bench_function("floor/hkdf_sha256_sk", |b| {
        let dh = [7u8; 32];
        b.iter(|| black_box(Floor::hkdf([&dh, &dh, black_box(&dh)])))
    });
    // The full agreement's own steps, for where the time above the floor goes.
    group.bench_function("parts/bundle_decode_verify", |b| {
        b.iter(|| {
            Bundle::decode(black_box(&fixture.bundle_bytes))
                .unwrap()
                .verify(&fixture.bob_public, NOW, &BundleConfig::default())
                .unwrap()
        })
    });
    let verified = Bundle::decode(&fixture.bundle_bytes)
        .unwrap()
        .verify(&fixture.bob_public, NOW, &BundleConfig::default())
        .unwrap();
    group.bench_function("parts/initiate", |b| {
        b.iter(|| {
            verified
                .initiate(&fixture.alice, &fixture.installation, &mut rng)
                .unwrap()
        })
    });
    group.bench_function("parts/header_decode_respond", |b| {
        b.iter_batched_ref(
            || {
                let header = verified
                    .initiate(&fixture.alice, &fixture.installation, &mut rng)
                    .unwrap()
                    .header
                    .encode();
                (bob_store(&fixture.bob_seed), header)
            },
            |(store, header)| {
                let header = InitialHeader::decode(header).unwrap();
                black_box(store.respond(&header, NOW).unwrap())
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("parts/identity_decode", |b| {
        b.iter(|| {
            PublicIdentity::from_bytes(black_box(fixture.bob_public.ed25519_bytes())).unwrap()
        })
    });
    group.finish();
}

/// Times the full agreement and the floor in alternating rounds and prints the median ratio.
#[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time by design
fn ratio() {
    use std::time::Instant;
    const ROUNDS: usize = 41;
    const PER_ROUND: u32 = 100;
    let fixture = Fixture::new();
    let floor = Floor::new(&fixture);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut full_ns = Vec::new();
    let mut floor_ns = Vec::new();
    let mut ratios = Vec::new();
    for _ in 0..ROUNDS {
        // One store per round, created outside the timing; it answers PER_ROUND fresh headers.
        let mut store = bob_store(&fixture.bob_seed);
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            black_box(fixture.full(&mut store, &mut rng));
        }
        let full = start.elapsed().as_nanos() as f64 / f64::from(PER_ROUND);
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            black_box(floor.composite(&mut rng));
        }
        let base = start.elapsed().as_nanos() as f64 / f64::from(PER_ROUND);
        full_ns.push(full);
        floor_ns.push(base);
        ratios.push(full / base);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let full = median(&mut full_ns);
    let base = median(&mut floor_ns);
    let ratio = median(&mut ratios);
    // Sorted by `median`: the first entries are the fastest rounds.
    let (full_min, base_min) = (full_ns[0], floor_ns[0]);
    println!();
    println!("x3dh agreement vs floor ({ROUNDS} alternating rounds of {PER_ROUND}):");
    println!(
        "  full agreement  median {:>8.1} us  fastest round {:>8.1} us  ({:.0} agreements/s)",
        full / 1e3,
        full_min / 1e3,
        1e9 / full_min
    );
    println!(
        "  floor of parts  median {:>8.1} us  fastest round {:>8.1} us  ({:.0} /s)",
        base / 1e3,
        base_min / 1e3,
        1e9 / base_min
    );
    println!(
        "  ratio full / floor: median of per-round ratios {ratio:.3}, fastest rounds {:.3}  \
         (target <= 1.2)",
        full_min / base_min
    );
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    ratio();
}
