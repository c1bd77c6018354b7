//! Payload encryption of 1 KiB, both modes, beside its floor: the primitives alone, measured in
//! the same run.
//!
//! - asymmetric floor: an ephemeral X25519 key (secret and public), one X25519 DH, HKDF-SHA256
//!   to 44 bytes, and ChaCha20-Poly1305 over the padded plaintext (1280 bytes) in a fresh buffer;
//! - symmetric floor: a random 24-byte nonce and XChaCha20-Poly1305 over the padded plaintext in
//!   a fresh buffer.
//!
//! After the criterion groups, an interleaved timing loop (medians of alternating batches)
//! prints `seal / floor` for both modes; the target is at most 1.3.
//!
//! Run: `cargo bench -p waku-core --bench payload`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    // A bench reads the clock to time the interleaved ratio loop; the core crates never do.
    clippy::disallowed_methods
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use criterion::{Criterion, Throughput};
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sha2::Sha256;
use waku_core::payload::{
    RecipientKey, SymmetricKey, open_asymmetric, open_symmetric, padded_len, seal_asymmetric,
    seal_symmetric,
};
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};

const PAYLOAD_LEN: usize = 1024;

fn floor_asymmetric(rng: &mut ChaCha20Rng, recipient: &PublicKey, payload: &[u8]) -> Vec<u8> {
    let eph = EphemeralSecret::random_from_rng(rng);
    let eph_pub = PublicKey::from(&eph);
    let dh = eph.diffie_hellman(recipient);
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(eph_pub.as_bytes());
    salt[32..].copy_from_slice(recipient.as_bytes());
    let mut okm = [0u8; 44];
    Hkdf::<Sha256>::new(Some(&salt), dh.as_bytes())
        .expand(b"floor", &mut okm)
        .unwrap();
    let mut buf = vec![0u8; padded_len(payload.len(), false) + 16];
    buf[5..5 + payload.len()].copy_from_slice(payload);
    let n = buf.len() - 16;
    let key: [u8; 32] = okm[..32].try_into().unwrap();
    let nonce: [u8; 12] = okm[32..].try_into().unwrap();
    let tag = ChaCha20Poly1305::new((&key).into())
        .encrypt_inout_detached((&nonce).into(), &[1], (&mut buf[..n]).into())
        .unwrap();
    buf[n..].copy_from_slice(&tag);
    buf
}

fn floor_symmetric(rng: &mut ChaCha20Rng, cipher: &XChaCha20Poly1305, payload: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let mut buf = vec![0u8; padded_len(payload.len(), false) + 16];
    buf[5..5 + payload.len()].copy_from_slice(payload);
    let n = buf.len() - 16;
    let tag = cipher
        .encrypt_inout_detached((&nonce).into(), &[2], (&mut buf[..n]).into())
        .unwrap();
    buf[n..].copy_from_slice(&tag);
    buf
}

struct Fixture {
    bob: RecipientKey,
    key: SymmetricKey,
    cipher: XChaCha20Poly1305,
    alice: SigningKey,
    payload: Vec<u8>,
}

fn fixture() -> Fixture {
    let key_bytes = [0x22; 32];
    Fixture {
        bob: RecipientKey::new(StaticSecret::from([0x11; 32])),
        key: SymmetricKey::from_bytes(key_bytes),
        cipher: XChaCha20Poly1305::new((&key_bytes).into()),
        alice: SigningKey::from_bytes(&[0x33; 32]),
        payload: (0..PAYLOAD_LEN).map(|i| i as u8).collect(),
    }
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let bob_pub = f.bob.public();

    let mut g = c.benchmark_group("payload/asymmetric_1KiB");
    g.throughput(Throughput::Bytes(PAYLOAD_LEN as u64));
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    g.bench_function("seal", |b| {
        b.iter(|| seal_asymmetric(&mut rng, black_box(&bob_pub), black_box(&f.payload), None))
    });
    g.bench_function("floor", |b| {
        b.iter(|| floor_asymmetric(&mut rng, black_box(&bob_pub), black_box(&f.payload)))
    });
    g.bench_function("seal_signed", |b| {
        b.iter(|| seal_asymmetric(&mut rng, &bob_pub, black_box(&f.payload), Some(&f.alice)))
    });
    let env = seal_asymmetric(&mut rng, &bob_pub, &f.payload, None).unwrap();
    g.bench_function("open", |b| {
        b.iter(|| open_asymmetric(&f.bob, black_box(&env)).unwrap())
    });
    let env_signed = seal_asymmetric(&mut rng, &bob_pub, &f.payload, Some(&f.alice)).unwrap();
    g.bench_function("open_signed", |b| {
        b.iter(|| open_asymmetric(&f.bob, black_box(&env_signed)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("payload/symmetric_1KiB");
    g.throughput(Throughput::Bytes(PAYLOAD_LEN as u64));
    g.bench_function("seal", |b| {
        b.iter(|| seal_symmetric(&mut rng, black_box(&f.key), black_box(&f.payload), None))
    });
    g.bench_function("floor", |b| {
        b.iter(|| floor_symmetric(&mut rng, black_box(&f.cipher), black_box(&f.payload)))
    });
    let env = seal_symmetric(&mut rng, &f.key, &f.payload, None).unwrap();
    g.bench_function("open", |b| {
        b.iter(|| open_symmetric(&f.key, black_box(&env)).unwrap())
    });
    g.finish();
}

/// Median time per call of `a` and `b`, measured in alternating batches so that both see the
/// same machine load.
fn interleaved(
    batches: usize,
    per_batch: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (Duration, Duration) {
    let mut ta = Vec::with_capacity(batches);
    let mut tb = Vec::with_capacity(batches);
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..per_batch {
            a();
        }
        ta.push(t.elapsed() / per_batch as u32);
        let t = Instant::now();
        for _ in 0..per_batch {
            b();
        }
        tb.push(t.elapsed() / per_batch as u32);
    }
    ta.sort();
    tb.sort();
    (ta[batches / 2], tb[batches / 2])
}

fn ratios(quick: bool) {
    let f = fixture();
    let bob_pub = f.bob.public();
    let (batches, per) = if quick { (3, 3) } else { (101, 200) };
    let mut r1 = ChaCha20Rng::from_seed([2; 32]);
    let mut r2 = ChaCha20Rng::from_seed([3; 32]);
    let (seal, floor) = interleaved(
        batches,
        per,
        || {
            black_box(seal_asymmetric(&mut r1, &bob_pub, black_box(&f.payload), None).unwrap());
        },
        || {
            black_box(floor_asymmetric(&mut r2, &bob_pub, black_box(&f.payload)));
        },
    );
    println!(
        "payload ratio asymmetric 1KiB: seal {seal:?} / floor {floor:?} = {:.3} (target <= 1.3)",
        seal.as_secs_f64() / floor.as_secs_f64()
    );
    let (seal, floor) = interleaved(
        batches,
        per * 20,
        || {
            black_box(seal_symmetric(&mut r1, &f.key, black_box(&f.payload), None).unwrap());
        },
        || {
            black_box(floor_symmetric(&mut r2, &f.cipher, black_box(&f.payload)));
        },
    );
    println!(
        "payload ratio symmetric 1KiB: seal {seal:?} / floor {floor:?} = {:.3} (target <= 1.3)",
        seal.as_secs_f64() / floor.as_secs_f64()
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: only a smoke run then.
    let full = std::env::args().any(|a| a == "--bench");
    ratios(!full);
}
