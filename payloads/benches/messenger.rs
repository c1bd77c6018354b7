//! The cost of one 1:1 chat message through the whole stack, against the floor of the
//! cryptography it cannot avoid, measured in the same run.
//!
//! **Pipeline**: two relaying Messengers connected directly; Alice sends a 100-byte text
//! message and the bench moves frames and fires timers (virtual clock) until Bob reports it.
//! That is: chat-message validation and encoding, the signed envelope, MVDS (send, the epoch
//! tick, the ack coming back), the Double Ratchet with header encryption, the `ProtocolMessage`
//! with the bundle attached, the sealed and signed Waku payload, gossipsub in both nodes, and
//! on Bob's side everything in reverse, plus the storage writes (ratchet pickles, the message)
//! on both sides.
//!
//! **Floor**: the cryptography of one message and its acknowledgement, done directly with the
//! same crates: the envelope signature and its strict verification; one ratchet encrypt and
//! decrypt (header encryption) of the MVDS payload and one asymmetric seal (signed) and open of
//! the protocol message; and the same two steps for the MVDS ack going back.
//!
//! After the criterion benchmarks the two are timed again in alternating rounds and the median
//! ratio is printed.
//!
//! Run: `cargo bench -p payloads --bench messenger`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use payloads::account::Account;
use payloads::messenger::{ChatId, Draft, Messenger, MessengerConfig, MessengerEvent};
use payloads::metadata::{PayloadType, SignedPayload};
use payloads::storage::MemoryStorage;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ratchet::{RatchetKeyPair, Session, SessionConfig};
use waku_core::net::{Machine, Now, PeerId};
use waku_core::roles::{Capabilities, Capability};
use x3dh::IdentityKeyPair;

const TEXT: &str = "the quick brown fox jumps over the lazy dog; the quick brown fox jumps over!!";

struct Pair {
    a: Messenger,
    b: Messenger,
    now: Now,
    bob_chat: ChatId,
    received: usize,
}

fn account(phrase_word: &str) -> Account {
    let phrase = format!("{phrase_word} ").repeat(11) + "about";
    Account::restore(phrase.trim(), "").unwrap()
}

impl Pair {
    #[allow(clippy::disallowed_methods)] // a bench needs some origin; only offsets matter
    fn new() -> Self {
        let now = Now {
            instant: Instant::now(),
            unix_nanos: 1_700_000_000_000_000_000,
        };
        let mut config = MessengerConfig::default();
        config.waku.capabilities = Capabilities::LIGHT.with(Capability::Relay);
        let alice = account("abandon");
        let bob = Account::restore(
            "legal winner thank year wave sausage worth useful legal winner thank yellow",
            "",
        )
        .unwrap();
        let mut a = Messenger::new(
            config.clone(),
            &alice,
            MemoryStorage::new(),
            mvds::MemoryStore::new(),
            [1; 32],
            now,
        )
        .unwrap();
        let mut b = Messenger::new(
            config,
            &bob,
            MemoryStorage::new(),
            mvds::MemoryStore::new(),
            [2; 32],
            now,
        )
        .unwrap();
        let pa = a.protocols();
        let pb = b.protocols();
        a.handle_connected(now, PeerId(2), &pb);
        b.handle_connected(now, PeerId(1), &pa);
        let bob_chat = ChatId::OneToOne(*b.public_key());
        let mut pair = Pair {
            a,
            b,
            now,
            bob_chat,
            received: 0,
        };
        pair.run(Duration::from_secs(5));
        // First contact (bundles, X3DH) out of the measured loop.
        pair.send_one();
        pair
    }

    fn shuttle(&mut self) -> bool {
        let mut moved = false;
        while let Some(t) = self.a.poll_transmit() {
            moved = true;
            self.b
                .handle_frame(self.now, PeerId(1), t.protocol, t.kind, &t.bytes);
        }
        while let Some(t) = self.b.poll_transmit() {
            moved = true;
            self.a
                .handle_frame(self.now, PeerId(2), t.protocol, t.kind, &t.bytes);
        }
        while self.a.poll_event().is_some() {}
        while let Some(e) = self.b.poll_event() {
            if matches!(e, MessengerEvent::MessageReceived { .. }) {
                self.received += 1;
            }
        }
        moved
    }

    /// Fires the earliest timer (moving the clock to it) and moves frames.
    fn step(&mut self) {
        while self.shuttle() {}
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        if let Some(t) = next {
            if t > self.now.instant {
                let d = t - self.now.instant;
                self.now.instant = t;
                self.now.unix_nanos += i64::try_from(d.as_nanos()).unwrap();
            }
            if self.a.poll_timeout() <= Some(self.now.instant) {
                self.a.handle_timeout(self.now);
            }
            if self.b.poll_timeout() <= Some(self.now.instant) {
                self.b.handle_timeout(self.now);
            }
        }
        while self.shuttle() {}
    }

    fn run(&mut self, d: Duration) {
        let end = self.now.instant + d;
        while self.now.instant < end {
            self.step();
        }
    }

    fn send_one(&mut self) {
        let want = self.received + 1;
        let chat = self.bob_chat.clone();
        self.a.send(self.now, &chat, Draft::text(TEXT)).unwrap();
        let mut guard = 0;
        while self.received < want {
            self.step();
            guard += 1;
            assert!(guard < 10_000, "message never arrived");
        }
    }
}

struct Floor {
    alice: IdentityKeyPair,
    a: Session,
    b: Session,
    rng: ChaCha20Rng,
    bob_x: x3dh::x25519_dalek::PublicKey,
    bob_recipient: waku_core::payload::RecipientKey,
    signing: ed25519_dalek::SigningKey,
    alice_x: x3dh::x25519_dalek::PublicKey,
    alice_recipient: waku_core::payload::RecipientKey,
    bob_signing: ed25519_dalek::SigningKey,
    body: Vec<u8>,
}

impl Floor {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let prekey = RatchetKeyPair::generate(&mut rng);
        let config = SessionConfig::with_header_encryption();
        let mut a =
            Session::initiator(&mut rng, &[1; 32], &[2; 64], prekey.public_key(), config).unwrap();
        let mut b = Session::responder(&[1; 32], &[2; 64], prekey, config);
        let m = a.encrypt(&mut rng, b"start").unwrap();
        b.decrypt(&m).unwrap();
        let bob_signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let bob_recipient = waku_core::payload::RecipientKey::from_signing_key(&bob_signing);
        let bob_signing = bob_signing.clone();
        let bob_x = bob_recipient.public();
        let alice_signing = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let alice_recipient = waku_core::payload::RecipientKey::from_signing_key(&alice_signing);
        Floor {
            alice_x: alice_recipient.public(),
            alice_recipient,
            bob_signing,
            alice: IdentityKeyPair::from_seed(&[3; 32]),
            a,
            b,
            rng,
            bob_x,
            bob_recipient,
            signing: ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
            body: vec![0x42; 120],
        }
    }

    fn one(&mut self) {
        // Envelope: sign and verify.
        let env =
            SignedPayload::sign(&self.alice, PayloadType::ChatMessage, self.body.clone()).unwrap();
        let opened = SignedPayload::decode(&env.encode()).unwrap();
        // Ratchet over the MVDS payload (the envelope plus about 80 bytes).
        let mut plain = opened.encode();
        plain.extend_from_slice(&[0; 80]);
        let m = self.a.encrypt(&mut self.rng, &plain).unwrap();
        let dec = self.b.decrypt(&m).unwrap();
        // Waku payload over the protocol message (the ratchet message plus a bundle).
        let mut pm = m.encode();
        pm.extend_from_slice(&[0; 220]);
        let sealed = waku_core::payload::seal_asymmetric(
            &mut self.rng,
            &self.bob_x,
            &pm,
            Some(&self.signing),
        )
        .unwrap();
        let open = waku_core::payload::open_asymmetric(&self.bob_recipient, &sealed).unwrap();
        // The acknowledgement: an MVDS payload of one id, ratcheted and sealed the other way.
        let ack = self.b.encrypt(&mut self.rng, &[0x11; 40]).unwrap();
        let ack_plain = self.a.decrypt(&ack).unwrap();
        let mut ack_pm = ack.encode();
        ack_pm.extend_from_slice(&[0; 220]);
        let ack_sealed = waku_core::payload::seal_asymmetric(
            &mut self.rng,
            &self.alice_x,
            &ack_pm,
            Some(&self.bob_signing),
        )
        .unwrap();
        let ack_open =
            waku_core::payload::open_asymmetric(&self.alice_recipient, &ack_sealed).unwrap();
        black_box((dec, open, ack_plain, ack_open));
    }
}

#[allow(clippy::disallowed_methods)] // a bench measures wall-clock time
fn bench(c: &mut Criterion) {
    let mut pair = Pair::new();
    let mut floor = Floor::new();
    let mut g = c.benchmark_group("one 1:1 message");
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("pipeline (two Messengers)", |bch| {
        bch.iter(|| pair.send_one())
    });
    g.bench_function("floor (crypto only)", |bch| bch.iter(|| floor.one()));
    g.finish();

    // Interleaved rounds: the median of per-round ratios.
    let mut ratios = Vec::new();
    let mut pipeline_times = Vec::new();
    let mut floor_times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        for _ in 0..20 {
            pair.send_one();
        }
        let p = t.elapsed() / 20;
        let t = Instant::now();
        for _ in 0..20 {
            floor.one();
        }
        let f = t.elapsed() / 20;
        pipeline_times.push(p);
        floor_times.push(f);
        ratios.push(p.as_secs_f64() / f.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    pipeline_times.sort();
    floor_times.sort();
    println!(
        "interleaved medians: pipeline {:?}/message, floor {:?}/message, ratio {:.2}",
        pipeline_times[10], floor_times[10], ratios[10]
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
