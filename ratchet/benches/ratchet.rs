//! Encrypt + decrypt of a 1 KiB message: this crate, vodozemac's Olm session, and the floor
//! (the AEAD and KDF work every Double Ratchet message needs, done with the same primitive
//! crates and nothing else), all in one run. Prints messages per second and the ratios.
//!
//! Run: `cargo bench -p ratchet --bench ratchet`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    // A benchmark measures wall-clock time.
    clippy::disallowed_methods
)]

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use criterion::{Criterion, Throughput, criterion_group};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ratchet::{RatchetKeyPair, Session, SessionConfig};
use sha2::Sha256;
use std::hint::black_box;
use std::time::Duration;
use vodozemac::olm::{Account, OlmMessage, SessionConfig as OlmConfig};
use x25519_dalek::{PublicKey, StaticSecret};

const LEN: usize = 1024;
const GROUP: &str = "ratchet_1KiB";

fn pair(config: SessionConfig) -> (Session, Session, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let prekey = RatchetKeyPair::generate(&mut rng);
    let mut a =
        Session::initiator(&mut rng, &[1; 32], &[2; 64], prekey.public_key(), config).unwrap();
    let mut b = Session::responder(&[1; 32], &[2; 64], prekey, config);
    let m = a.encrypt(&mut rng, b"hello").unwrap();
    b.decrypt(&m).unwrap();
    let m = b.encrypt(&mut rng, b"hello").unwrap();
    a.decrypt(&m).unwrap();
    (a, b, rng)
}

fn olm_pair() -> (vodozemac::olm::Session, vodozemac::olm::Session) {
    let alice = Account::new();
    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().unwrap();
    bob.mark_keys_as_published();
    let mut a = alice
        .create_outbound_session(OlmConfig::version_1(), bob.curve25519_key(), otk)
        .unwrap();
    let OlmMessage::PreKey(first) = a.encrypt(b"hello").unwrap() else {
        panic!("first message is a pre-key message")
    };
    let mut b = bob
        .create_inbound_session(OlmConfig::version_1(), alice.curve25519_key(), &first)
        .unwrap()
        .session;
    let m = b.encrypt(b"hello").unwrap();
    a.decrypt(&m).unwrap();
    (a, b)
}

/// `KDF_CK` with the same crates: two HMAC-SHA256 over one byte, keyed once.
fn floor_kdf_ck(ck: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(ck).unwrap();
    let mut m = keyed.clone();
    m.update(&[1]);
    let mut c = keyed;
    c.update(&[2]);
    (
        c.finalize().into_bytes().into(),
        m.finalize().into_bytes().into(),
    )
}

fn floor_material(mk: &[u8; 32]) -> [u8; 44] {
    let mut okm = [0u8; 44];
    Hkdf::<Sha256>::new(Some(&[0u8; 32]), mk)
        .expand(b"status-rs DR chacha", &mut okm)
        .unwrap();
    okm
}

fn floor_kdf_rk(rk: &[u8; 32], dh: &[u8; 32]) -> [u8; 64] {
    let mut okm = [0u8; 64];
    Hkdf::<Sha256>::new(Some(rk), dh)
        .expand(b"status-rs DR root", &mut okm)
        .unwrap();
    okm
}

/// One message's unavoidable work: KDF_CK and the key expansion on both sides, one seal and one
/// open of 1 KiB.
fn floor_message(ck_send: &mut [u8; 32], ck_recv: &mut [u8; 32], pt: &[u8], ad: &[u8]) -> usize {
    let (next, mk) = floor_kdf_ck(ck_send);
    *ck_send = next;
    let km = floor_material(&mk);
    let cipher = ChaCha20Poly1305::new_from_slice(&km[..32]).unwrap();
    let ct = cipher
        .encrypt(
            &chacha20poly1305::Nonce::try_from(&km[32..]).unwrap(),
            Payload { msg: pt, aad: ad },
        )
        .unwrap();
    let (next, mk) = floor_kdf_ck(ck_recv);
    *ck_recv = next;
    let km = floor_material(&mk);
    let cipher = ChaCha20Poly1305::new_from_slice(&km[..32]).unwrap();
    cipher
        .decrypt(
            &chacha20poly1305::Nonce::try_from(&km[32..]).unwrap(),
            Payload { msg: &ct, aad: ad },
        )
        .unwrap()
        .len()
}

fn bench(c: &mut Criterion) {
    let pt = vec![0x42u8; LEN];
    let ad = [7u8; 104];
    let mut g = c.benchmark_group(GROUP);
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));

    // --- The floor.
    let (mut cks, mut ckr) = ([3u8; 32], [3u8; 32]);
    g.bench_function("floor/no_dh", |b| {
        b.iter(|| black_box(floor_message(&mut cks, &mut ckr, &pt, &ad)))
    });
    // With a DH step: the sender draws a key pair and does DH + KDF_RK, the receiver DH + KDF_RK.
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let receiver = StaticSecret::random_from_rng(&mut rng);
    let receiver_pub = PublicKey::from(&receiver);
    let mut rk = [4u8; 32];
    g.bench_function("floor/dh_every_message", |b| {
        b.iter(|| {
            let sender = StaticSecret::random_from_rng(&mut rng);
            let sender_pub = PublicKey::from(&sender);
            let dh_s = sender.diffie_hellman(&receiver_pub);
            let s = floor_kdf_rk(&rk, dh_s.as_bytes());
            let dh_r = receiver.diffie_hellman(&sender_pub);
            let r = floor_kdf_rk(&rk, dh_r.as_bytes());
            rk.copy_from_slice(&s[..32]);
            let mut cks: [u8; 32] = s[32..].try_into().unwrap();
            let mut ckr: [u8; 32] = r[32..].try_into().unwrap();
            black_box(floor_message(&mut cks, &mut ckr, &pt, &ad))
        })
    });
    // Encrypt half of the floor.
    let mut cks = [3u8; 32];
    g.bench_function("floor/encrypt_only", |b| {
        b.iter(|| {
            let (next, mk) = floor_kdf_ck(&cks);
            cks = next;
            let km = floor_material(&mk);
            let cipher = ChaCha20Poly1305::new_from_slice(&km[..32]).unwrap();
            black_box(
                cipher
                    .encrypt(
                        &chacha20poly1305::Nonce::try_from(&km[32..]).unwrap(),
                        Payload { msg: &pt, aad: &ad },
                    )
                    .unwrap(),
            )
        })
    });

    // --- This crate.
    for (name, config) in [
        ("status-rs", SessionConfig::plain()),
        ("status-rs-he", SessionConfig::with_header_encryption()),
    ] {
        let (mut a, mut b, mut rng) = pair(config);
        g.bench_function(format!("{name}/no_dh"), |bch| {
            bch.iter(|| {
                let m = a.encrypt(&mut rng, &pt).unwrap();
                black_box(b.decrypt(&m).unwrap())
            })
        });
        let (mut a, mut b, mut rng) = pair(config);
        let mut turn = false;
        g.bench_function(format!("{name}/dh_every_message"), |bch| {
            bch.iter(|| {
                turn = !turn;
                let (s, r) = if turn {
                    (&mut a, &mut b)
                } else {
                    (&mut b, &mut a)
                };
                let m = s.encrypt(&mut rng, &pt).unwrap();
                black_box(r.decrypt(&m).unwrap())
            })
        });
        let (mut a, _, mut rng) = pair(config);
        g.bench_function(format!("{name}/encrypt_only"), |bch| {
            bch.iter(|| black_box(a.encrypt(&mut rng, &pt).unwrap()))
        });
    }

    // --- vodozemac (Olm v1).
    let (mut a, mut b) = olm_pair();
    g.bench_function("vodozemac/no_dh", |bch| {
        bch.iter(|| {
            let m = a.encrypt(&pt).unwrap();
            black_box(b.decrypt(&m).unwrap())
        })
    });
    let (mut a, mut b) = olm_pair();
    let mut turn = false;
    g.bench_function("vodozemac/dh_every_message", |bch| {
        bch.iter(|| {
            turn = !turn;
            let (s, r) = if turn {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            let m = s.encrypt(&pt).unwrap();
            black_box(r.decrypt(&m).unwrap())
        })
    });
    let (mut a, _) = olm_pair();
    g.bench_function("vodozemac/encrypt_only", |bch| {
        bch.iter(|| black_box(a.encrypt(&pt).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);

/// The median time in ns of one benchmark, read from criterion's `estimates.json`.
fn median_ns(name: &str) -> Option<f64> {
    let dir = std::env::var("CRITERION_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            let target = std::env::var("CARGO_TARGET_DIR")
                .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
            std::path::PathBuf::from(target).join("criterion")
        });
    let path = dir
        .join(GROUP)
        .join(name.replace('/', "_"))
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let at = text.find("\"median\"")?;
    let rest = &text[at..];
    let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let end = rest[p..].find([',', '}'])?;
    rest[p..p + end].trim().parse().ok()
}

fn report() {
    let names = [
        "floor/no_dh",
        "floor/dh_every_message",
        "floor/encrypt_only",
        "status-rs/no_dh",
        "status-rs/dh_every_message",
        "status-rs/encrypt_only",
        "status-rs-he/no_dh",
        "status-rs-he/dh_every_message",
        "status-rs-he/encrypt_only",
        "vodozemac/no_dh",
        "vodozemac/dh_every_message",
        "vodozemac/encrypt_only",
    ];
    println!("\n{GROUP}: median time and messages per second");
    for n in names {
        match median_ns(n) {
            Some(t) => println!("  {n:32} {:>10.2} µs {:>12.0} msg/s", t / 1e3, 1e9 / t),
            None => println!("  {n:32} (not measured in this run)"),
        }
    }
    let ratio = |a: &str, b: &str| match (median_ns(a), median_ns(b)) {
        (Some(x), Some(y)) => format!("{:.2}x", x / y),
        _ => "n/a".into(),
    };
    println!("ratios (time / time):");
    for (what, a, b) in [
        ("no DH: status-rs / floor", "status-rs/no_dh", "floor/no_dh"),
        (
            "no DH: vodozemac / status-rs",
            "vodozemac/no_dh",
            "status-rs/no_dh",
        ),
        (
            "encrypt: vodozemac / status-rs",
            "vodozemac/encrypt_only",
            "status-rs/encrypt_only",
        ),
        (
            "encrypt: status-rs / floor",
            "status-rs/encrypt_only",
            "floor/encrypt_only",
        ),
        (
            "DH every msg: status-rs / floor",
            "status-rs/dh_every_message",
            "floor/dh_every_message",
        ),
        (
            "DH every msg: vodozemac / status-rs",
            "vodozemac/dh_every_message",
            "status-rs/dh_every_message",
        ),
        (
            "DH every msg: vodozemac / floor",
            "vodozemac/dh_every_message",
            "floor/dh_every_message",
        ),
        (
            "no DH: status-rs-he / status-rs",
            "status-rs-he/no_dh",
            "status-rs/no_dh",
        ),
    ] {
        println!("  {what:40} {}", ratio(a, b));
    }
}

/// A named piece of work for [`interleaved`].
type Candidate<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Runs the candidates in turn, `batch` calls each per round, for `rounds` rounds, and returns
/// the fastest per-call time of each (ns). On a machine shared with other work, the minimum over
/// interleaved rounds compares like with like far better than medians taken minutes apart.
fn interleaved(rounds: u32, batch: u32, cands: &mut [Candidate<'_>]) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; cands.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in cands.iter_mut().enumerate() {
            let start = std::time::Instant::now();
            for _ in 0..batch {
                f();
            }
            let per = start.elapsed().as_nanos() as f64 / f64::from(batch);
            best[i] = best[i].min(per);
        }
    }
    best
}

fn interleaved_report() {
    let pt = vec![0x42u8; LEN];
    let ad = [7u8; 104];
    println!("\n{GROUP}: interleaved minimum per message (same run, alternating rounds)");

    // No DH step.
    let (mut cks, mut ckr) = ([3u8; 32], [3u8; 32]);
    let (mut a, mut b, mut rng) = pair(SessionConfig::plain());
    let (mut ha, mut hb, mut hrng) = pair(SessionConfig::with_header_encryption());
    let (mut oa, mut ob) = olm_pair();
    let mut cands: Vec<Candidate<'_>> = vec![
        (
            "floor",
            Box::new(|| {
                black_box(floor_message(&mut cks, &mut ckr, &pt, &ad));
            }),
        ),
        (
            "status-rs",
            Box::new(|| {
                let m = a.encrypt(&mut rng, &pt).unwrap();
                black_box(b.decrypt(&m).unwrap());
            }),
        ),
        (
            "status-rs-he",
            Box::new(|| {
                let m = ha.encrypt(&mut hrng, &pt).unwrap();
                black_box(hb.decrypt(&m).unwrap());
            }),
        ),
        (
            "vodozemac",
            Box::new(|| {
                let m = oa.encrypt(&pt).unwrap();
                black_box(ob.decrypt(&m).unwrap());
            }),
        ),
    ];
    let t = interleaved(60, 200, &mut cands);
    let names: Vec<_> = cands.iter().map(|c| c.0).collect();
    drop(cands);
    print_block("encrypt+decrypt, no DH step", &names, &t);

    // Encrypt only.
    let mut cks = [3u8; 32];
    let (mut a, _, mut rng) = pair(SessionConfig::plain());
    let (mut oa, _) = olm_pair();
    let mut cands: Vec<Candidate<'_>> = vec![
        (
            "floor",
            Box::new(|| {
                let (next, mk) = floor_kdf_ck(&cks);
                cks = next;
                let km = floor_material(&mk);
                let cipher = ChaCha20Poly1305::new_from_slice(&km[..32]).unwrap();
                let nonce = chacha20poly1305::Nonce::try_from(&km[32..]).unwrap();
                black_box(
                    cipher
                        .encrypt(&nonce, Payload { msg: &pt, aad: &ad })
                        .unwrap(),
                );
            }),
        ),
        (
            "status-rs",
            Box::new(|| {
                black_box(a.encrypt(&mut rng, &pt).unwrap());
            }),
        ),
        (
            "vodozemac",
            Box::new(|| {
                black_box(oa.encrypt(&pt).unwrap());
            }),
        ),
    ];
    let t = interleaved(60, 200, &mut cands);
    let names: Vec<_> = cands.iter().map(|c| c.0).collect();
    drop(cands);
    print_block("encrypt only", &names, &t);

    // A DH step on every message.
    let mut frng = ChaCha20Rng::seed_from_u64(5);
    let receiver = StaticSecret::random_from_rng(&mut frng);
    let receiver_pub = PublicKey::from(&receiver);
    let mut rk = [4u8; 32];
    let (mut a, mut b, mut rng) = pair(SessionConfig::plain());
    let (mut oa, mut ob) = olm_pair();
    let (mut turn, mut oturn) = (false, false);
    let mut cands: Vec<Candidate<'_>> = vec![
        (
            "floor",
            Box::new(|| {
                let sender = StaticSecret::random_from_rng(&mut frng);
                let sender_pub = PublicKey::from(&sender);
                let s = floor_kdf_rk(&rk, sender.diffie_hellman(&receiver_pub).as_bytes());
                let r = floor_kdf_rk(&rk, receiver.diffie_hellman(&sender_pub).as_bytes());
                rk.copy_from_slice(&s[..32]);
                let mut cks: [u8; 32] = s[32..].try_into().unwrap();
                let mut ckr: [u8; 32] = r[32..].try_into().unwrap();
                black_box(floor_message(&mut cks, &mut ckr, &pt, &ad));
            }),
        ),
        (
            "status-rs",
            Box::new(|| {
                turn = !turn;
                let (s, r) = if turn {
                    (&mut a, &mut b)
                } else {
                    (&mut b, &mut a)
                };
                let m = s.encrypt(&mut rng, &pt).unwrap();
                black_box(r.decrypt(&m).unwrap());
            }),
        ),
        (
            "vodozemac",
            Box::new(|| {
                oturn = !oturn;
                let (s, r) = if oturn {
                    (&mut oa, &mut ob)
                } else {
                    (&mut ob, &mut oa)
                };
                let m = s.encrypt(&pt).unwrap();
                black_box(r.decrypt(&m).unwrap());
            }),
        ),
    ];
    let t = interleaved(40, 20, &mut cands);
    let names: Vec<_> = cands.iter().map(|c| c.0).collect();
    drop(cands);
    print_block("encrypt+decrypt, DH step on every message", &names, &t);
}

fn print_block(title: &str, names: &[&str], t: &[f64]) {
    println!("  {title}:");
    let floor = t[0];
    let ours = t[1];
    for (n, x) in names.iter().zip(t) {
        println!(
            "    {n:14} {:>9.2} µs {:>10.0} msg/s   {:.2}x floor   {:.2}x status-rs",
            x / 1e3,
            1e9 / x,
            x / floor,
            x / ours
        );
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    report();
    interleaved_report();
}
