//! Known-answer tests for the profile of WIRE.md Part A.
//!
//! The expected values come from `tests/kat/gen_kat.py`, an independent implementation written
//! from the profile text and the Signal spec's pseudocode with Python's `cryptography`, `hmac`
//! and `hashlib` (XChaCha20 via a hand-written HChaCha20 checked against the XChaCha draft's
//! vector). Inputs are byte ramps: `seq(s, n)` = bytes `s, s+1, …` (mod 256), `n` long (32 unless
//! said otherwise).
//!
//! * `KDF_RK(seq(0x00), seq(0x20))` with 64 and 96 bytes of output;
//! * three `KDF_CK` steps from `seq(0x40)`;
//! * the message-key expansion of `seq(0x60)`; the initial header keys of SK = `seq(0x80)`;
//! * a conversation with SK = `seq(0xA0)`, AD = `seq(0x10, 64)`, Bob's signed prekey secret
//!   `seq(0x01)`, Alice's first ratchet secret `seq(0x31)`, Bob's first ratchet secret
//!   `seq(0x51)`, and header nonces `seq(0x71, 24)`, `seq(0x91, 24)`, `seq(0xB1, 24)`: Alice
//!   sends "first message" and "second message", Bob replies "the reply". The Python side
//!   follows the spec literally (Bob's whole DH ratchet step on receipt), the crate defers the
//!   sending half to its next encrypt; the bytes must agree.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rand_core::{Infallible, TryCryptoRng, TryRng};
use ratchet::kdf;
use ratchet::{Message, MessageHeader, RatchetKeyPair, Session, SessionConfig};
use std::collections::VecDeque;

fn seq(start: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| start.wrapping_add(i as u8)).collect()
}

fn seq32(start: u8) -> [u8; 32] {
    seq(start, 32).try_into().unwrap()
}

/// An "RNG" that hands out scripted bytes, so the ratchet keys and nonces are the vectors'.
struct Scripted(VecDeque<u8>);

impl Scripted {
    fn new(chunks: &[Vec<u8>]) -> Self {
        Self(chunks.iter().flatten().copied().collect())
    }
}

impl TryRng for Scripted {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for d in dst {
            *d = self.0.pop_front().expect("script ran out of bytes");
        }
        Ok(())
    }
}
impl TryCryptoRng for Scripted {}

#[test]
fn kdf_rk_vectors() {
    let step = kdf::kdf_rk(&seq32(0x00), &seq32(0x20));
    assert_eq!(
        hex::encode(*step.root_key),
        "fd836f050d8a0e0629dbdc94d7891c8cae1b818509903d6c66e374a1a4bb6383"
    );
    assert_eq!(
        hex::encode(*step.chain_key),
        "7786b259aa3b1574d4d07650a5885bfaabab2f4d8f099fc7c092a0ef6687e73c"
    );
    let step = kdf::kdf_rk_he(&seq32(0x00), &seq32(0x20));
    assert_eq!(
        hex::encode(*step.root_key),
        "fd836f050d8a0e0629dbdc94d7891c8cae1b818509903d6c66e374a1a4bb6383"
    );
    assert_eq!(
        hex::encode(*step.chain_key),
        "7786b259aa3b1574d4d07650a5885bfaabab2f4d8f099fc7c092a0ef6687e73c"
    );
    assert_eq!(
        hex::encode(*step.next_header_key),
        "6cc21cd0bbc5af60e1bc71a75cff31da19740f9e71cc2edb92e115606f5be511"
    );
}

#[test]
fn kdf_ck_vectors() {
    let expected = [
        "01156abd78ef59f755f1e6945e5d1e2d7ddd1f1e5fe0a164b2f5fa8ad500bfba",
        "cc8aa93e9d19721c0c40f310be4d0383b891ee9f4b44bd608370dff83ed74819",
        "bb8124f922de66d1ca2d1de11076871f812e9e3ebf6672e0c511d5cbb331af09",
    ];
    let mut ck = seq32(0x40);
    for want in expected {
        let (next, mk) = kdf::kdf_ck(&ck);
        assert_eq!(hex::encode(*mk), want);
        ck = *next;
    }
    assert_eq!(
        hex::encode(ck),
        "060a465a37bf5c74f63b3030b95d77e55cd168a2256a36a2192aa458121e3d53"
    );
}

#[test]
fn message_key_and_header_key_vectors() {
    assert_eq!(
        hex::encode(*kdf::message_key_material(&seq32(0x60))),
        "6519f9b75aa79758afeaf29c5f2fa43e29f09df3c84e2388f50e8f940d49ce0e093b24361cac6573090068ce"
    );
    let (hka, nhkb) = kdf::initial_header_keys(&seq32(0x80));
    assert_eq!(
        hex::encode(*hka),
        "bbe1d75938326072aa4d4827008ee456c09a7b6952cf027e78f1b3b28ae626c8"
    );
    assert_eq!(
        hex::encode(*nhkb),
        "a68957e5b44ebc807b557e03a369a19e904f6cc1f361ecfb9aace320f5da0968"
    );
}

fn header_hex(m: &Message) -> String {
    match m.header() {
        MessageHeader::Plain(h) => hex::encode(h.to_bytes()),
        MessageHeader::Encrypted(sealed) => hex::encode(sealed),
    }
}

/// (header, payload) of alice0, alice1, bob0.
fn conversation(config: SessionConfig, expected: [(&str, &str); 3]) {
    let sk = seq32(0xA0);
    let ad: [u8; 64] = seq(0x10, 64).try_into().unwrap();
    let spk = RatchetKeyPair::from_secret_bytes(seq32(0x01));
    let he = config.header_encryption;
    let nonce = |s: u8| if he { seq(s, 24) } else { Vec::new() };

    let mut rng = Scripted::new(&[seq(0x31, 32), nonce(0x71), nonce(0x91)]);
    let mut alice = Session::initiator(&mut rng, &sk, &ad, spk.public_key(), config).unwrap();
    let a0 = alice.encrypt(&mut rng, b"first message").unwrap();
    let a1 = alice.encrypt(&mut rng, b"second message").unwrap();
    assert!(rng.0.is_empty());
    for (m, (h, p)) in [&a0, &a1].into_iter().zip(&expected[..2]) {
        assert_eq!(header_hex(m), *h);
        assert_eq!(hex::encode(m.ciphertext()), *p);
    }

    let mut bob = Session::responder(&sk, &ad, spk, config);
    assert_eq!(&bob.decrypt(&a1).unwrap()[..], b"second message");
    assert_eq!(&bob.decrypt(&a0).unwrap()[..], b"first message");
    let mut rng = Scripted::new(&[seq(0x51, 32), nonce(0xB1)]);
    let b0 = bob.encrypt(&mut rng, b"the reply").unwrap();
    assert!(rng.0.is_empty());
    assert_eq!(header_hex(&b0), expected[2].0);
    assert_eq!(hex::encode(b0.ciphertext()), expected[2].1);
    assert_eq!(&alice.decrypt(&b0).unwrap()[..], b"the reply");
}

#[test]
fn conversation_plain_headers() {
    conversation(
        SessionConfig::plain(),
        [
            (
                "5f09b7f97a40b50220697064b43b27411b07a4aa1fe05370b27519826983d30d0000000000000000",
                "e7831647ab32dcd90f15229eead597d30544aafae80164068ab15df658",
            ),
            (
                "5f09b7f97a40b50220697064b43b27411b07a4aa1fe05370b27519826983d30d0000000000000001",
                "f84558de8d112c40d6475e51f5fca714b6053cf1b3155dfca0dce70a7722",
            ),
            (
                "0233f006ef4bed144ea0a5bb46c7067c7c2acec5f8cc811f3df59fdcd5ac76140000000000000000",
                "da8a3a15235f0c6bd89f7170fd94d8c9d5cebc85ff493b5e73",
            ),
        ],
    );
}

#[test]
fn conversation_encrypted_headers() {
    conversation(
        SessionConfig::with_header_encryption(),
        [
            (
                "7172737475767778797a7b7c7d7e7f8081828384858687883aa78d6a05ec84db84d4fbc1a564c535eadca1c9d523bac99667d49bf6b1d86f9694ce85a0ec1a0588cfc5690a42524f1a270aa14505951f",
                "e7831647ab32dcd90f15229eeaedd8e5a534a921e954456a0d614d3a09",
            ),
            (
                "9192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a820c544f898894cdedd0bff11806ea944fb97598b2a9ed704559cdc063e0cd3fb341d16262756cc307a5f888adaece6172bbe113e2ef90f3e",
                "f84558de8d112c40d6475e51f5fc528d8be46cea1a0bc1feb8f5260b42ee",
            ),
            (
                "b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c808dddc3f146424cbfa9503940edfe40deed4a6d901c06100541423022d12e86a698ac4b1bf03be594a432df8c1b5856fa5c7cc41ba843804",
                "da8a3a15235f0c6bd8bcf2e8e017f532acc1591f501f08c685",
            ),
        ],
    );
}
