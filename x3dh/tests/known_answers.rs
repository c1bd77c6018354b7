//! Known-answer tests.
//!
//! The X3DH values below were computed independently of this crate, with a short Python script
//! using the `cryptography` package (48.0): Ed25519 keys and signatures from
//! `Ed25519PrivateKey`, the X25519 secret as `clamp(SHA-512(seed)[0..32])` with `hashlib`, X25519
//! public keys and DH outputs from `X25519PrivateKey`, the Edwards-to-Montgomery map as
//! `u = (1 + y) / (1 - y) mod p` in plain integers (checked equal to the X25519 public key of the
//! clamped secret), SK from `HKDF(SHA256, length = 32, salt = 0×32, info = "status-rs X3DH")`
//! over `0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3`, the canonical bundle encoding with `struct.pack`, and the
//! protobuf bytes of the bundle and header by hand-written varint/length-delimited encoding.
//! Inputs: Alice's seed = bytes 0..32, Bob's seed = bytes 32..64, Bob's SPK secret = bytes
//! 64..96, Alice's ephemeral secret = bytes 96..128, SPK id 3, protocol version 1, prekey created
//! at 1 699 990 000 000 ms, bundle timestamp 1 700 000 000 000 ms, installation id
//! "7c9f8a1e-3b2d-4c5e-8f60-1a2b3c4d5e6f".
//!
//! The RFC 7748 (X25519) and RFC 8032 (Ed25519) vectors are copied from the RFCs; the X25519 forms
//! of the RFC 8032 keys were computed by the same script, two ways (the integer map and the
//! X25519 public key of the clamped SHA-512 half), which agree.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::BTreeMap;
use std::convert::Infallible;

use x3dh::{
    Bundle, BundleConfig, EphemeralKeyPair, IdentityKeyPair, InitialHeader, InstallationId,
    PreKeyId, PreKeyStore, PreKeyStoreConfig, PublicIdentity, SignedPreKey, SignedPreKeyPair,
    X25519PublicKey, initiate,
};

/// An "RNG" that hands out fixed bytes, so that keys drawn inside the crate are known.
struct FixedBytes {
    bytes: Vec<u8>,
    pos: usize,
}

impl FixedBytes {
    fn new(bytes: Vec<u8>) -> Self {
        Self { bytes, pos: 0 }
    }
}

impl rand_core::TryRng for FixedBytes {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let end = self.pos + dst.len();
        assert!(end <= self.bytes.len(), "FixedBytes ran out");
        dst.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FixedBytes {}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn h32(s: &str) -> [u8; 32] {
    h(s).try_into().unwrap()
}

fn range(start: u8) -> [u8; 32] {
    core::array::from_fn(|i| start + i as u8)
}

const ALICE_ED25519: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
const ALICE_X25519_SECRET: &str =
    "3894eea49c580aef816935762be049559d6d1440dede12e6a125f1841fff8e6f";
const ALICE_X25519: &str = "4701d08488451f545a409fb58ae3e58581ca40ac3f7f114698cd71deac73ca01";
const BOB_ED25519: &str = "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7";
const BOB_X25519_SECRET: &str = "887af58a36202e05c4c1cfec5bf6c61fad66bca851536004074b31f1b56e4a49";
const BOB_X25519: &str = "5730800ab340fcb18ce5111eda9d705f91388b41e4544cbd103ba5942db2233e";
const SPK: &str = "79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a";
const EK: &str = "675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f";
const SK: &str = "bde7efa6cd10a836d5c2c791c3fd697a95c94bf295bf2954de07dd4715dbc1ba";
const SPK_SIGNATURE: &str = "86f4fc67362f9ce9912fa285f3e21ce01c614e098ae83176eefdd65e5c692e7be8a2ee138f7a5ff334706a040733d2f14b31d6e4759baccc714c10ee2fe09504";
const CANONICAL: &str = "7374617475732d72732062756e646c6520763129acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd70000018bcfe5680000000001002437633966386131652d336232642d346335652d386636302d31613262336334643565366679a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a00000003000000010000018bcf4cd18086f4fc67362f9ce9912fa285f3e21ce01c614e098ae83176eefdd65e5c692e7be8a2ee138f7a5ff334706a040733d2f14b31d6e4759baccc714c10ee2fe09504";
const BUNDLE_SIGNATURE: &str = "d8f991cb79faab394d7cac1e26933790ce0978c6d92236cb7786390c20b831716caad42f4005b4c0e785023fbae4d4345eab8cce120bb11b4849e836985d3a07";
const BUNDLE: &str = "0a2029acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd71297010a2437633966386131652d336232642d346335652d386636302d316132623363346435653666126f0a2079a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a10031801224086f4fc67362f9ce9912fa285f3e21ce01c614e098ae83176eefdd65e5c692e7be8a2ee138f7a5ff334706a040733d2f14b31d6e4759baccc714c10ee2fe095042880a3b3fabc312240d8f991cb79faab394d7cac1e26933790ce0978c6d92236cb7786390c20b831716caad42f4005b4c0e785023fbae4d4345eab8cce120bb11b4849e836985d3a072880d095ffbc31";
const HEADER: &str = "0a20675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f222079a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a2a2003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b83003";
const INSTALLATION: &str = "7c9f8a1e-3b2d-4c5e-8f60-1a2b3c4d5e6f";
const CREATED_AT_MS: u64 = 1_699_990_000_000;
const TIMESTAMP_MS: u64 = 1_700_000_000_000;

#[test]
fn identity_keys_and_x25519_forms() {
    let alice = IdentityKeyPair::from_seed(&range(0));
    assert_eq!(hex::encode(alice.public().ed25519_bytes()), ALICE_ED25519);
    assert_eq!(
        hex::encode(*alice.x25519_secret_bytes()),
        ALICE_X25519_SECRET
    );
    assert_eq!(
        hex::encode(alice.public().x25519().as_bytes()),
        ALICE_X25519
    );
    let bob = IdentityKeyPair::from_seed(&range(32));
    assert_eq!(hex::encode(bob.public().ed25519_bytes()), BOB_ED25519);
    assert_eq!(hex::encode(*bob.x25519_secret_bytes()), BOB_X25519_SECRET);
    assert_eq!(hex::encode(bob.public().x25519().as_bytes()), BOB_X25519);
    // The chat key round-trips through its text form.
    let chat_key = format!("0x{ALICE_ED25519}");
    assert_eq!(alice.public().to_chat_key(), chat_key);
    assert_eq!(alice.public().to_string(), chat_key);
    assert_eq!(chat_key.parse::<PublicIdentity>().unwrap(), *alice.public());
    assert_eq!(
        PublicIdentity::from_chat_key(&chat_key.to_uppercase().replacen("0X", "0x", 1)).unwrap(),
        *alice.public()
    );
}

#[test]
fn signed_prekey_signature() {
    let bob = IdentityKeyPair::from_seed(&range(32));
    let pair = SignedPreKeyPair::from_secret_bytes(&range(64));
    assert_eq!(hex::encode(pair.public_key().as_bytes()), SPK);
    let signed = SignedPreKey::sign(&bob, &pair, PreKeyId::new(3).unwrap(), CREATED_AT_MS);
    assert_eq!(hex::encode(signed.signature()), SPK_SIGNATURE);
    assert!(signed.verify(bob.public()));
}

fn kat_bundle(bob: &IdentityKeyPair) -> Bundle {
    let pair = SignedPreKeyPair::from_secret_bytes(&range(64));
    let signed = SignedPreKey::sign(bob, &pair, PreKeyId::new(3).unwrap(), CREATED_AT_MS);
    let mut pre_keys = BTreeMap::new();
    pre_keys.insert(InstallationId::new(INSTALLATION).unwrap(), signed);
    Bundle::sign(bob, pre_keys, TIMESTAMP_MS).unwrap()
}

#[test]
fn bundle_canonical_encoding_signature_and_wire_bytes() {
    let bob = IdentityKeyPair::from_seed(&range(32));
    let bundle = kat_bundle(&bob);
    assert_eq!(hex::encode(bundle.signing_input()), CANONICAL);
    assert_eq!(hex::encode(bundle.signature()), BUNDLE_SIGNATURE);
    assert_eq!(hex::encode(bundle.encode()), BUNDLE);
    let decoded = Bundle::decode(&h(BUNDLE)).unwrap();
    assert_eq!(decoded, bundle);
    decoded
        .verify(bob.public(), TIMESTAMP_MS, &BundleConfig::default())
        .unwrap();
}

#[test]
fn agreement_matches_independent_computation() {
    let alice = IdentityKeyPair::from_seed(&range(0));
    let bob = IdentityKeyPair::from_seed(&range(32));
    let verified = Bundle::decode(&h(BUNDLE))
        .unwrap()
        .verify(bob.public(), TIMESTAMP_MS, &BundleConfig::default())
        .unwrap();
    let installation = InstallationId::new(INSTALLATION).unwrap();
    let ephemeral = EphemeralKeyPair::generate(&mut FixedBytes::new(range(96).to_vec()));
    assert_eq!(hex::encode(ephemeral.public_key().as_bytes()), EK);
    let out = initiate(&alice, &verified, &installation, ephemeral).unwrap();
    assert_eq!(hex::encode(out.shared_secret.as_bytes()), SK);
    assert_eq!(
        hex::encode(out.associated_data.as_bytes()),
        format!("{ALICE_ED25519}{BOB_ED25519}")
    );
    assert_eq!(hex::encode(out.header.encode()), HEADER);
    assert_eq!(hex::encode(out.remote_signed_pre_key.as_bytes()), SPK);

    // Bob, through the store: the first two prekeys use other secrets, the third (id 3) is the
    // KAT's, created at CREATED_AT_MS.
    let mut stream = vec![0x01; 32];
    stream.extend_from_slice(&[0x02; 32]);
    stream.extend_from_slice(&range(64));
    let mut rng = FixedBytes::new(stream);
    let mut store = PreKeyStore::new(
        bob,
        installation,
        PreKeyStoreConfig::default(),
        CREATED_AT_MS - 2,
        &mut rng,
    );
    store.rotate(CREATED_AT_MS - 1, &mut rng);
    store.rotate(CREATED_AT_MS, &mut rng);
    assert_eq!(store.current_pre_key().id(), PreKeyId::new(3).unwrap());
    assert_eq!(hex::encode(store.bundle(TIMESTAMP_MS).encode()), BUNDLE);
    let header = InitialHeader::decode(&h(HEADER)).unwrap();
    let bob_out = store.respond(&header, TIMESTAMP_MS).unwrap();
    assert_eq!(hex::encode(bob_out.shared_secret.as_bytes()), SK);
    assert_eq!(bob_out.associated_data, out.associated_data);
    assert_eq!(
        hex::encode(bob_out.signed_pre_key.public_key().as_bytes()),
        SPK
    );
    assert_eq!(*bob_out.signed_pre_key.secret_bytes(), range(64));
}

/// RFC 8032 section 7.1, tests 1 to 3: seed, public key, message, signature; plus the X25519 form
/// of each key (computed independently, see the file header).
const RFC8032: [(&str, &str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        "d85e07ec22b0ad881537c2f44d662d1a143cf830c57aca4305d85c7a90f6b62e",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        "25c704c594b88afc00a76b69d1ed2b984d7e22550f3ed0802d04fbcd07d38d47",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        "cbb22fc9f790bd3eba9b84680c157ca4950a9894362601701f89c3c4d9fda23a",
    ),
];

#[test]
fn rfc8032_vectors_and_montgomery_forms() {
    for (seed, public, message, signature, montgomery) in RFC8032 {
        let identity = IdentityKeyPair::from_seed(&h32(seed));
        assert_eq!(hex::encode(identity.public().ed25519_bytes()), public);
        assert_eq!(hex::encode(identity.sign(&h(message))), signature);
        let parsed = PublicIdentity::from_bytes(&h(public)).unwrap();
        assert!(parsed.verify(&h(message), &h(signature)));
        assert!(!parsed.verify(b"another message", &h(signature)));
        assert_eq!(hex::encode(parsed.x25519().as_bytes()), montgomery);
        // The X25519 public key of the clamped secret is the same point.
        let from_secret = x3dh::x25519_dalek::PublicKey::from(
            &x3dh::x25519_dalek::StaticSecret::from(*identity.x25519_secret_bytes()),
        );
        assert_eq!(hex::encode(from_secret.as_bytes()), montgomery);
    }
}

#[test]
fn rfc7748_section_5_2_vectors() {
    let vectors = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ];
    for (scalar, u, out) in vectors {
        assert_eq!(
            hex::encode(x3dh::x25519_dalek::x25519(h32(scalar), h32(u))),
            out
        );
    }
    // The first u is canonical and accepted; the second has its top bit set, which RFC 7748 says
    // to mask and this crate refuses, so that no two encodings name one key.
    assert!(X25519PublicKey::from_bytes(&h(vectors[0].1)).is_ok());
    assert_eq!(
        X25519PublicKey::from_bytes(&h(vectors[1].1)),
        Err(x3dh::PublicKeyError::NonCanonical)
    );
}

#[test]
fn rfc7748_iterated_vector() {
    let mut k = h32("0900000000000000000000000000000000000000000000000000000000000000");
    let mut u = k;
    for i in 1..=1000 {
        let r = x3dh::x25519_dalek::x25519(k, u);
        u = k;
        k = r;
        if i == 1 {
            assert_eq!(
                hex::encode(k),
                "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
            );
        }
    }
    assert_eq!(
        hex::encode(k),
        "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"
    );
}

#[test]
fn rfc7748_section_6_1_diffie_hellman() {
    let alice = SignedPreKeyPair::from_secret_bytes(&h32(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ));
    let bob = SignedPreKeyPair::from_secret_bytes(&h32(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    ));
    assert_eq!(
        hex::encode(alice.public_key().as_bytes()),
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    );
    assert_eq!(
        hex::encode(bob.public_key().as_bytes()),
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    );
    let shared = alice
        .to_static_secret()
        .diffie_hellman(&bob.public_key().into());
    assert_eq!(
        hex::encode(shared.as_bytes()),
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    );
}
