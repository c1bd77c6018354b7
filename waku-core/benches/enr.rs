//! ENR decode and sign beside their cryptographic floor, measured in the same run.
//!
//! - decode floor: decompress the 33-byte secp256k1 key, keccak256 over the content list, one
//!   low-S ECDSA verification, and keccak256 of the uncompressed key (the node id): the work
//!   any checking decoder must do;
//! - sign floor: the signing key from its 32 bytes (which derives the public point) and one
//!   RFC 6979 ECDSA signature over a keccak256 hash of the content.
//!
//! After the criterion groups, an interleaved loop (medians of alternating batches) prints
//! `decode / floor` and `sign / floor`.
//!
//! Run: `cargo bench -p waku-core --bench enr`.
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

use criterion::Criterion;
use k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};
use waku_core::enr::{Enr, EnrBuilder, Multiaddr, RelayShards, Waku2};

/// A TWN bootstrap record from nwaku `waku/factory/networks_config.nim` (277 bytes).
const TWN: &str = "enr:-QESuEB4Dchgjn7gfAvwB00CxTA-nGiyk-aALI-H4dYSZD3rUk7bZHmP8d2U6xDiQ2vZffpo45Jp7zKNdnwDUx6g4o6XAYJpZIJ2NIJpcIRA4VDAim11bHRpYWRkcnO4XAArNiZub2RlLTAxLmRvLWFtczMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQZ2XwAtNiZub2RlLTAxLmRvLWFtczMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQYfQN4DgnJzkwABCAAAAAEAAgADAAQABQAGAAeJc2VjcDI1NmsxoQOvD3S3jUNICsrOILlmhENiWAMmMVlAl6-Q8wRB7hidY4N0Y3CCdl-DdWRwgiMohXdha3UyDw";

struct Fixture {
    raw: Vec<u8>,
    content: Vec<u8>,
    sig: Signature,
    pk: [u8; 33],
    builder: EnrBuilder,
    secret: [u8; 32],
}

fn fixture() -> Fixture {
    let enr = Enr::from_text(TWN).unwrap();
    let raw = enr.encode();
    // f9 01 12 | b8 40 | sig(64) | content items
    let sig = Signature::from_slice(&raw[5..69]).unwrap();
    let items = &raw[69..];
    let mut content = vec![0xf8, items.len() as u8];
    content.extend_from_slice(items);
    let builder = EnrBuilder::new()
        .seq(1)
        .ip4([64, 225, 80, 192].into())
        .tcp(30303)
        .udp(9000)
        .waku2(Waku2::from_bits(0x0f))
        .multiaddrs(&[
            Multiaddr::from_text("/dns4/node-01.do-ams3.waku.sandbox.status.im/tcp/30303").unwrap(),
            Multiaddr::from_text("/dns4/node-01.do-ams3.waku.sandbox.status.im/tcp/8000/wss")
                .unwrap(),
        ])
        .relay_shards(&RelayShards {
            cluster: 1,
            shards: (0..8).collect(),
        })
        .unwrap();
    Fixture {
        raw,
        content,
        sig,
        pk: enr.public_key(),
        builder,
        secret: [0x42; 32],
    }
}

fn decode_floor(f: &Fixture) -> [u8; 32] {
    let vk = VerifyingKey::from_sec1_bytes(&f.pk).unwrap();
    let hash: [u8; 32] = Keccak256::digest(&f.content).into();
    vk.verify_prehash(&hash, &f.sig).unwrap();
    let point = vk.to_sec1_point(false);
    Keccak256::digest(&point.as_bytes()[1..]).into()
}

fn sign_floor(f: &Fixture) -> Signature {
    // The key schedule (secret scalar and its public point) is part of the floor: the record
    // carries the public key.
    let sk = SigningKey::from_slice(black_box(&f.secret)).unwrap();
    let hash: [u8; 32] = Keccak256::digest(&f.content).into();
    sk.sign_prehash(&hash).unwrap()
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("enr");
    g.bench_function("decode TWN record", |b| {
        b.iter(|| Enr::decode(black_box(&f.raw)).unwrap())
    });
    g.bench_function("decode floor", |b| b.iter(|| decode_floor(black_box(&f))));
    g.bench_function("build+sign TWN-like record", |b| {
        b.iter(|| black_box(&f.builder).sign(&[0x42; 32]).unwrap())
    });
    g.bench_function("sign floor", |b| b.iter(|| sign_floor(black_box(&f))));
    g.bench_function("dial_addrs", |b| {
        let enr = Enr::decode(&f.raw).unwrap();
        b.iter(|| black_box(&enr).dial_addrs())
    });
    g.finish();
}

fn interleaved(
    batches: usize,
    per: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (Duration, Duration) {
    let mut ta = Vec::with_capacity(batches);
    let mut tb = Vec::with_capacity(batches);
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..per {
            a();
        }
        ta.push(t.elapsed() / per as u32);
        let t = Instant::now();
        for _ in 0..per {
            b();
        }
        tb.push(t.elapsed() / per as u32);
    }
    ta.sort();
    tb.sort();
    (ta[batches / 2], tb[batches / 2])
}

fn ratios(quick: bool) {
    let f = fixture();
    let (batches, per) = if quick { (3, 3) } else { (101, 50) };
    let (dec, floor) = interleaved(
        batches,
        per,
        || {
            black_box(Enr::decode(black_box(&f.raw)).unwrap());
        },
        || {
            black_box(decode_floor(black_box(&f)));
        },
    );
    println!(
        "enr ratio decode: {dec:?} / floor {floor:?} = {:.3}",
        dec.as_secs_f64() / floor.as_secs_f64()
    );
    let (sign, floor) = interleaved(
        batches,
        per,
        || {
            black_box(f.builder.sign(&[0x42; 32]).unwrap());
        },
        || {
            black_box(sign_floor(black_box(&f)));
        },
    );
    println!(
        "enr ratio build+sign: {sign:?} / sign floor {floor:?} = {:.3}",
        sign.as_secs_f64() / floor.as_secs_f64()
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
