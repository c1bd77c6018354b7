//! ENR codec: the EIP-778 example, real Waku records, refused inputs and round trips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::net::Ipv4Addr;

use k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use proptest::prelude::*;
use sha3::{Digest, Keccak256};
use waku_core::enr::{
    Enr, EnrBuilder, EnrError, MAX_ENR_LEN, Multiaddr, MultiaddrError, RelayShards, Waku2,
};
use waku_core::peer_exchange::PeerRecord;

/// EIP-778's example record and the private key it was signed with.
const EIP778_TEXT: &str = "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RRcy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8";
const EIP778_KEY: &str = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291";

/// The Waku Network (cluster 1) bootstrap records in nwaku `waku/factory/networks_config.nim`.
const TWN: [&str; 3] = [
    "enr:-QESuEB4Dchgjn7gfAvwB00CxTA-nGiyk-aALI-H4dYSZD3rUk7bZHmP8d2U6xDiQ2vZffpo45Jp7zKNdnwDUx6g4o6XAYJpZIJ2NIJpcIRA4VDAim11bHRpYWRkcnO4XAArNiZub2RlLTAxLmRvLWFtczMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQZ2XwAtNiZub2RlLTAxLmRvLWFtczMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQYfQN4DgnJzkwABCAAAAAEAAgADAAQABQAGAAeJc2VjcDI1NmsxoQOvD3S3jUNICsrOILlmhENiWAMmMVlAl6-Q8wRB7hidY4N0Y3CCdl-DdWRwgiMohXdha3UyDw",
    "enr:-QEkuEBIkb8q8_mrorHndoXH9t5N6ZfD-jehQCrYeoJDPHqT0l0wyaONa2-piRQsi3oVKAzDShDVeoQhy0uwN1xbZfPZAYJpZIJ2NIJpcIQiQlleim11bHRpYWRkcnO4bgA0Ni9ub2RlLTAxLmdjLXVzLWNlbnRyYWwxLWEud2FrdS5zYW5kYm94LnN0YXR1cy5pbQZ2XwA2Ni9ub2RlLTAxLmdjLXVzLWNlbnRyYWwxLWEud2FrdS5zYW5kYm94LnN0YXR1cy5pbQYfQN4DgnJzkwABCAAAAAEAAgADAAQABQAGAAeJc2VjcDI1NmsxoQKnGt-GSgqPSf3IAPM7bFgTlpczpMZZLF3geeoNNsxzSoN0Y3CCdl-DdWRwgiMohXdha3UyDw",
    "enr:-QEkuEB3WHNS-xA3RDpfu9A2Qycr3bN3u7VoArMEiDIFZJ66F1EB3d4wxZN1hcdcOX-RfuXB-MQauhJGQbpz3qUofOtLAYJpZIJ2NIJpcIQI2SVcim11bHRpYWRkcnO4bgA0Ni9ub2RlLTAxLmFjLWNuLWhvbmdrb25nLWMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQZ2XwA2Ni9ub2RlLTAxLmFjLWNuLWhvbmdrb25nLWMud2FrdS5zYW5kYm94LnN0YXR1cy5pbQYfQN4DgnJzkwABCAAAAAEAAgADAAQABQAGAAeJc2VjcDI1NmsxoQPK35Nnz0cWUtSAhBp7zvHEhyU_AqeQUlqzLiLxfP2L4oN0Y3CCdl-DdWRwgiMohXdha3UyDw",
];
const TWN_HOSTS: [&str; 3] = [
    "node-01.do-ams3.waku.sandbox.status.im",
    "node-01.gc-us-central1-a.waku.sandbox.status.im",
    "node-01.ac-cn-hongkong-c.waku.sandbox.status.im",
];

/// js-waku `packages/enr/src/enr.spec.ts`: a record with `tcp`, and its libp2p peer id.
const JS_TCP: &str = "enr:-IS4QAmC_o1PMi5DbR4Bh4oHVyQunZblg4bTaottPtBodAhJZvxVlWW-4rXITPNg4mwJ8cW__D9FBDc9N4mdhyMqB-EBgmlkgnY0gmlwhIbRi9KJc2VjcDI1NmsxoQOevTdO6jvv3fRruxguKR-3Ge4bcFsLeAIWEDjrfaigNoN0Y3CCdl8";
/// js-waku's shared vector with three `multiaddrs` entries (dns4, dns6, onion3).
const JS_MULTIADDRS: &str = "enr:-QEnuEBEAyErHEfhiQxAVQoWowGTCuEF9fKZtXSd7H_PymHFhGJA3rGAYDVSHKCyJDGRLBGsloNbS8AZF33IVuefjOO6BIJpZIJ2NIJpcIQS39tkim11bHRpYWRkcnO4lgAvNihub2RlLTAxLmRvLWFtczMud2FrdXYyLnRlc3Quc3RhdHVzaW0ubmV0BgG73gMAODcxbm9kZS0wMS5hYy1jbi1ob25na29uZy1jLndha3V2Mi50ZXN0LnN0YXR1c2ltLm5ldAYBu94DACm9A62t7AQL4Ef5ZYZosRpQTzFVAB8jGjf1TER2wH-0zBOe1-MDBNLeA4lzZWNwMjU2azGhAzfsxbxyCkgCqq8WwYsVWH7YkpMLnU2Bw5xJSimxKav-g3VkcIIjKA";
/// js-waku's Ethereum consensus-layer record (`attnets`, `eth2`).
const JS_ETH2: &str = "enr:-Ku4QMh15cIjmnq-co5S3tYaNXxDzKTgj0ufusA-QfZ66EWHNsULt2kb0eTHoo1Dkjvvf6CAHDS1Di-htjiPFZzaIPcLh2F0dG5ldHOIAAAAAAAAAACEZXRoMpD2d10HAAABE________x8AgmlkgnY0gmlwhHZFkMSJc2VjcDI1NmsxoQIWSDEWdHwdEA3Lw2B_byeFQOINTZ0GdtF9DBjes6JqtIN1ZHCCIyg";

fn key(hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

// ---- a test-side RLP writer, independent of the codec, to craft records ----

fn rlp_header(list: bool, len: usize) -> Vec<u8> {
    let (short, long) = if list { (0xc0u8, 0xf7u8) } else { (0x80, 0xb7) };
    if len < 56 {
        vec![short + len as u8]
    } else if len < 256 {
        vec![long + 1, len as u8]
    } else {
        vec![long + 2, (len >> 8) as u8, len as u8]
    }
}

fn rlp_str(b: &[u8]) -> Vec<u8> {
    if b.len() == 1 && b[0] < 0x80 {
        return b.to_vec();
    }
    let mut v = rlp_header(false, b.len());
    v.extend_from_slice(b);
    v
}

fn rlp_list(items: &[u8]) -> Vec<u8> {
    let mut v = rlp_header(true, items.len());
    v.extend_from_slice(items);
    v
}

/// Signs content items exactly as given (order, duplicates and all) with `secret`.
fn sign_items(secret: &[u8; 32], content: &[u8]) -> Vec<u8> {
    let sk = SigningKey::from_slice(secret).unwrap();
    let hash: [u8; 32] = Keccak256::digest(rlp_list(content)).into();
    let sig: Signature = sk.sign_prehash(&hash).unwrap();
    let mut items = rlp_str(&sig.to_bytes());
    items.extend_from_slice(content);
    rlp_list(&items)
}

fn compressed(secret: &[u8; 32]) -> Vec<u8> {
    let sk = SigningKey::from_slice(secret).unwrap();
    sk.verifying_key().to_sec1_point(true).as_bytes().to_vec()
}

/// Content of a minimal valid record with the given (key, value) pairs placed around `id`
/// and `secp256k1` as listed.
fn content(seq: u8, pairs: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut c = rlp_str(&[seq]);
    for (k, v) in pairs {
        c.extend(rlp_str(k));
        c.extend(rlp_str(v));
    }
    c
}

/// Verifies a record's signature independently of the codec.
fn independently_verifies(raw: &[u8], public_key: &[u8; 33]) -> bool {
    // The outer list header, then the 66-byte signature item.
    let header_len = if raw[0] < 0xf8 {
        1
    } else {
        1 + usize::from(raw[0] - 0xf7)
    };
    let sig_item = &raw[header_len..header_len + 66];
    assert_eq!(sig_item[..2], [0xb8, 0x40]);
    let content = &raw[header_len + 66..];
    let hash: [u8; 32] = Keccak256::digest(rlp_list(content)).into();
    let sig = Signature::from_slice(&sig_item[2..]).unwrap();
    let vk = VerifyingKey::from_sec1_bytes(public_key).unwrap();
    vk.verify_prehash(&hash, &sig).is_ok()
}

#[test]
fn eip778_example_record() {
    let enr = Enr::from_text(EIP778_TEXT).unwrap();
    assert_eq!(enr.seq(), 1);
    assert_eq!(enr.get(b"id"), Some(&b"v4"[..]));
    assert_eq!(enr.ip4(), Some(Ipv4Addr::new(127, 0, 0, 1)));
    assert_eq!(enr.udp(), Some(30303));
    assert_eq!(enr.tcp(), None);
    assert_eq!(enr.ip6(), None);
    assert_eq!(enr.waku2(), None);
    assert_eq!(enr.shards(), Ok(None));
    assert_eq!(enr.multiaddrs(), Ok(vec![]));
    assert_eq!(
        hex::encode(enr.public_key()),
        "03ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd3138"
    );
    assert_eq!(
        hex::encode(enr.node_id()),
        "a448f24c6d18e575453db13171562b71999873db5b286df957af199ec94617f7"
    );
    let keys: Vec<&[u8]> = enr.keys().collect();
    assert_eq!(keys, vec![&b"id"[..], b"ip", b"secp256k1", b"udp"]);
    assert_eq!(enr.to_text(), EIP778_TEXT);
    assert_eq!(enr.to_string(), EIP778_TEXT);
    assert_eq!(EIP778_TEXT.parse::<Enr>().unwrap(), enr);
    assert_eq!(Enr::decode(&enr.encode()).unwrap(), enr);
    // No TCP port: nothing to dial.
    assert!(enr.dial_addrs().is_empty());

    // Signing the same fields with the EIP's key reproduces the record byte for byte
    // (RFC 6979 nonces, low S).
    let signed = EnrBuilder::new()
        .seq(1)
        .ip4(Ipv4Addr::new(127, 0, 0, 1))
        .udp(30303)
        .sign(&key(EIP778_KEY))
        .unwrap();
    assert_eq!(signed.to_text(), EIP778_TEXT);
    assert_eq!(signed, enr);
}

#[test]
fn twn_bootstrap_records() {
    for (text, host) in TWN.iter().zip(TWN_HOSTS) {
        let enr = Enr::from_text(text).unwrap();
        println!("{host}: seq {} {:?}", enr.seq(), enr.dial_addrs());
        assert_eq!(enr.to_text(), *text, "re-encodes byte-identical");
        assert_eq!(enr.tcp(), Some(30303));
        assert_eq!(enr.udp(), Some(9000));
        let caps = enr.waku2().unwrap();
        assert_eq!(caps.bits(), 0x0f);
        assert!(caps.relay() && caps.store() && caps.filter() && caps.lightpush());
        assert!(!caps.sync());
        assert_eq!(
            enr.shards().unwrap(),
            Some(RelayShards {
                cluster: 1,
                shards: (0..8).collect()
            })
        );
        let addrs: Vec<String> = enr
            .multiaddrs()
            .unwrap()
            .iter()
            .map(|m| m.to_text().unwrap())
            .collect();
        assert_eq!(
            addrs,
            vec![
                format!("/dns4/{host}/tcp/30303"),
                format!("/dns4/{host}/tcp/8000/wss"),
            ]
        );
        let peer = enr.libp2p_peer_id();
        assert!(peer.starts_with("16Uiu2"), "{peer}");
        let ip = enr.ip4().unwrap();
        assert_eq!(
            enr.dial_addrs(),
            vec![
                format!("/ip4/{ip}/tcp/30303/p2p/{peer}"),
                format!("/dns4/{host}/tcp/30303/p2p/{peer}"),
                format!("/dns4/{host}/tcp/8000/wss/p2p/{peer}"),
            ]
        );
        // Through the peer-exchange record trait.
        let via_trait = <Enr as PeerRecord>::from_bytes(&enr.to_bytes()).unwrap();
        assert_eq!(via_trait, enr);
    }
    assert_eq!(
        Enr::from_text(TWN[0]).unwrap().ip4(),
        Some(Ipv4Addr::new(64, 225, 80, 192))
    );
}

#[test]
fn js_waku_records() {
    let enr = Enr::from_text(JS_TCP).unwrap();
    assert_eq!(enr.tcp(), Some(30303));
    assert_eq!(enr.ip4(), Some(Ipv4Addr::new(134, 209, 139, 210)));
    assert_eq!(
        enr.libp2p_peer_id(),
        "16Uiu2HAmPLe7Mzm8TsYUubgCAW1aJoeFScxrLj8ppHFivPo97bUZ"
    );
    assert_eq!(
        enr.dial_addrs(),
        vec![
            "/ip4/134.209.139.210/tcp/30303/p2p/16Uiu2HAmPLe7Mzm8TsYUubgCAW1aJoeFScxrLj8ppHFivPo97bUZ"
        ]
    );

    let enr = Enr::from_text(JS_MULTIADDRS).unwrap();
    let addrs: Vec<String> = enr
        .multiaddrs()
        .unwrap()
        .iter()
        .map(|m| m.to_text().unwrap())
        .collect();
    assert_eq!(
        addrs,
        vec![
            "/dns4/node-01.do-ams3.wakuv2.test.statusim.net/tcp/443/wss",
            "/dns6/node-01.ac-cn-hongkong-c.wakuv2.test.statusim.net/tcp/443/wss",
            "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234/wss",
        ]
    );
    assert_eq!(enr.to_text(), JS_MULTIADDRS);

    let enr = Enr::from_text(JS_ETH2).unwrap();
    assert_eq!(
        hex::encode(enr.get(b"eth2").unwrap()),
        "f6775d0700000113ffffffffffff1f00"
    );
    assert_eq!(enr.udp(), Some(9000));
    assert_eq!(enr.to_text(), JS_ETH2);
}

#[test]
fn crafted_records_are_refused_with_the_right_error() {
    let sk = [0x11; 32];
    let pk = compressed(&sk);
    let id: (&[u8], Vec<u8>) = (b"id", b"v4".to_vec());
    let spk: (&[u8], Vec<u8>) = (b"secp256k1", pk.clone());

    // Control: the same helper makes a valid record.
    let ok = sign_items(&sk, &content(1, &[id.clone(), spk.clone()]));
    assert!(Enr::decode(&ok).is_ok());

    let unsorted = sign_items(&sk, &content(1, &[spk.clone(), id.clone()]));
    assert_eq!(Enr::decode(&unsorted), Err(EnrError::UnsortedKeys));
    let dup = sign_items(&sk, &content(1, &[id.clone(), id.clone(), spk.clone()]));
    assert_eq!(Enr::decode(&dup), Err(EnrError::DuplicateKey));
    let no_id = sign_items(&sk, &content(1, std::slice::from_ref(&spk)));
    assert_eq!(Enr::decode(&no_id), Err(EnrError::MissingId));
    let v5 = sign_items(&sk, &content(1, &[(b"id", b"v5".to_vec()), spk.clone()]));
    assert_eq!(Enr::decode(&v5), Err(EnrError::UnsupportedId));
    let no_pk = sign_items(&sk, &content(1, std::slice::from_ref(&id)));
    assert_eq!(Enr::decode(&no_pk), Err(EnrError::MissingPublicKey));
    let mut bad_point = pk.clone();
    bad_point[0] = 0x04;
    let bad_pk = sign_items(&sk, &content(1, &[id.clone(), (b"secp256k1", bad_point)]));
    assert_eq!(Enr::decode(&bad_pk), Err(EnrError::BadPublicKey));
    // Signed by another key.
    let other = sign_items(&[0x22; 32], &content(1, &[id.clone(), spk.clone()]));
    assert_eq!(Enr::decode(&other), Err(EnrError::BadSignature));
    // Key without a value.
    let mut c = content(1, &[id.clone(), spk.clone()]);
    c.extend(rlp_str(b"zz"));
    assert_eq!(
        Enr::decode(&sign_items(&sk, &c)),
        Err(EnrError::MissingValue)
    );
    // seq with a leading zero.
    let mut c = rlp_str(&[0, 1]);
    c.extend_from_slice(&content(1, &[id.clone(), spk.clone()])[1..]);
    assert_eq!(Enr::decode(&sign_items(&sk, &c)), Err(EnrError::BadSeq));
    // A list as a key.
    let mut c = content(1, &[id.clone(), spk.clone()]);
    c.extend([0xc0, 0x80]);
    assert_eq!(Enr::decode(&sign_items(&sk, &c)), Err(EnrError::BadKey));
}

#[test]
fn signature_faults() {
    let enr = Enr::from_text(EIP778_TEXT).unwrap();
    let raw = enr.encode();
    // raw = f8 84 | b8 40 | r(32) s(32) | content
    let (r_at, s_at) = (4, 36);

    let mut flipped = raw.clone();
    flipped[r_at + 5] ^= 1;
    assert!(matches!(Enr::decode(&flipped), Err(EnrError::BadSignature)));
    let mut content_flipped = raw.clone();
    let last = content_flipped.len() - 1;
    content_flipped[last] ^= 1; // the udp port
    assert_eq!(Enr::decode(&content_flipped), Err(EnrError::BadSignature));

    // s -> n - s: the same signature in its high-S form.
    let n =
        hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141").unwrap();
    let s = &raw[s_at..s_at + 32];
    let mut high = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(n[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        high[i] = d.rem_euclid(256) as u8;
    }
    let mut malleated = raw.clone();
    malleated[s_at..s_at + 32].copy_from_slice(&high);
    assert_eq!(Enr::decode(&malleated), Err(EnrError::HighS));

    // r = 0 is not a signature.
    let mut zero_r = raw.clone();
    zero_r[r_at..r_at + 32].fill(0);
    assert_eq!(Enr::decode(&zero_r), Err(EnrError::BadSignature));
}

#[test]
fn framing_faults() {
    let raw = Enr::from_text(EIP778_TEXT).unwrap().encode();

    // Every strict prefix fails with a typed error, never a panic.
    for n in 0..raw.len() {
        assert!(Enr::decode(&raw[..n]).is_err(), "prefix {n}");
    }
    assert_eq!(Enr::decode(&raw[..raw.len() - 1]), Err(EnrError::Truncated));

    let mut trailing = raw.clone();
    trailing.push(0);
    assert_eq!(Enr::decode(&trailing), Err(EnrError::TrailingBytes));

    assert_eq!(
        Enr::decode(&vec![0xc0; MAX_ENR_LEN + 1]),
        Err(EnrError::TooLarge(MAX_ENR_LEN + 1))
    );
    assert_eq!(Enr::decode(&rlp_str(b"abc")), Err(EnrError::NotAList));

    // The outer list's length with a leading zero byte.
    let mut long_len = vec![0xf9, 0x00, raw[1]];
    long_len.extend_from_slice(&raw[2..]);
    assert_eq!(Enr::decode(&long_len), Err(EnrError::NonCanonicalRlp));

    // seq 1 written as 0x81 0x01 instead of 0x01.
    let payload = &raw[2..];
    let mut p = payload[..66].to_vec();
    p.extend([0x81, 0x01]);
    p.extend_from_slice(&payload[67..]);
    assert_eq!(Enr::decode(&rlp_list(&p)), Err(EnrError::NonCanonicalRlp));

    // The signature item as a list, or of 63 bytes.
    let mut p = payload.to_vec();
    p[0] = 0xf8;
    assert_eq!(Enr::decode(&rlp_list(&p)), Err(EnrError::BadSignatureField));
    let mut p = vec![0xb8, 0x3f];
    p.extend_from_slice(&payload[2..65]);
    p.extend_from_slice(&payload[66..]);
    assert_eq!(Enr::decode(&rlp_list(&p)), Err(EnrError::BadSignatureField));

    // Text form faults.
    assert_eq!(
        Enr::from_text(&EIP778_TEXT[4..]),
        Err(EnrError::MissingPrefix)
    );
    assert_eq!(
        Enr::from_text(&format!("{EIP778_TEXT}=")),
        Err(EnrError::BadBase64)
    );
    assert_eq!(
        Enr::from_text(&EIP778_TEXT.replace('_', "/")),
        Err(EnrError::BadBase64)
    );
    let long = format!("enr:{}", "A".repeat(1000));
    assert!(matches!(Enr::from_text(&long), Err(EnrError::TooLarge(_))));
}

#[test]
fn waku_field_faults_and_rs_over_rsv() {
    let sk = [0x33; 32];
    // rs with a wrong count; rsv of the wrong size.
    let enr = EnrBuilder::new()
        .raw(b"rs", &[0, 1, 2, 0, 1])
        .raw(b"multiaddrs", &[0, 9, 0x04])
        .raw(b"waku2", &[1, 2])
        .sign(&sk)
        .unwrap();
    assert_eq!(enr.shards(), Err(EnrError::BadField("rs")));
    assert_eq!(enr.multiaddrs(), Err(EnrError::BadField("multiaddrs")));
    assert_eq!(enr.waku2(), None);
    assert!(enr.dial_addrs().is_empty());
    let enr = EnrBuilder::new().raw(b"rsv", &[0, 1, 2]).sign(&sk).unwrap();
    assert_eq!(enr.shards(), Err(EnrError::BadField("rsv")));

    // Both present: rs wins.
    let mut rsv = vec![0, 16];
    let mut bits = [0u8; 128];
    bits[0] = 0b0000_0110; // shards 1 and 2 (nwaku bit order)
    bits[127] = 0x80; // shard 1023
    rsv.extend_from_slice(&bits);
    let both = EnrBuilder::new()
        .raw(b"rsv", &rsv)
        .raw(b"rs", &[0, 1, 1, 0, 5])
        .sign(&sk)
        .unwrap();
    assert_eq!(
        both.shards(),
        Ok(Some(RelayShards {
            cluster: 1,
            shards: vec![5]
        }))
    );
    let only_rsv = EnrBuilder::new().raw(b"rsv", &rsv).sign(&sk).unwrap();
    assert_eq!(
        only_rsv.shards(),
        Ok(Some(RelayShards {
            cluster: 16,
            shards: vec![1, 2, 1023]
        }))
    );

    // nwaku `tests/waku_enr/test_sharding.nim` ("Discovery Mechanisms for Shards"): cluster
    // 73, shards 1 and 10, as an index list and as a bit vector.
    let list = EnrBuilder::new()
        .raw(b"rs", &[0, 73, 2, 0, 1, 0, 10])
        .sign(&sk)
        .unwrap();
    let mut vector = vec![0, 73, 2, 4];
    vector.resize(130, 0);
    let bits = EnrBuilder::new().raw(b"rsv", &vector).sign(&sk).unwrap();
    let want = Some(RelayShards {
        cluster: 73,
        shards: vec![1, 10],
    });
    assert_eq!(list.shards().unwrap(), want);
    assert_eq!(bits.shards().unwrap(), want);

    // Unknown waku2 bits are kept.
    let enr = EnrBuilder::new()
        .waku2(Waku2::from_bits(0b1010_0001))
        .sign(&sk)
        .unwrap();
    assert_eq!(enr.waku2().unwrap().bits(), 0b1010_0001);
    assert!(enr.waku2().unwrap().relay());

    // Builder refusals.
    let bad = RelayShards {
        cluster: 1,
        shards: vec![1024],
    };
    assert!(matches!(
        EnrBuilder::new().relay_shards(&bad),
        Err(EnrError::BadShards)
    ));
    let empty = RelayShards {
        cluster: 1,
        shards: vec![],
    };
    assert!(matches!(
        EnrBuilder::new().relay_shards(&empty),
        Err(EnrError::BadShards)
    ));
}

#[test]
fn dial_addrs_cover_ip6_and_entries() {
    let sk = [0x44; 32];
    let ws = Multiaddr::from_bytes(
        &[
            &[0x36, 11][..],
            b"example.org",
            &[0x06, 0x01, 0xbb, 0xde, 0x03],
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(
        Multiaddr::from_text("/dns4/example.org/tcp/443/wss").unwrap(),
        ws
    );
    // A circuit address through a relay: this peer's id is appended after /p2p-circuit.
    let relay = "16Uiu2HAmPLe7Mzm8TsYUubgCAW1aJoeFScxrLj8ppHFivPo97bUZ";
    let circuit =
        Multiaddr::from_text(&format!("/ip4/192.0.2.7/tcp/60001/p2p/{relay}/p2p-circuit")).unwrap();
    // An address naming some other peer is not this peer's.
    let foreign = Multiaddr::from_text(&format!("/ip4/192.0.2.8/tcp/1/p2p/{relay}")).unwrap();
    let unknown = Multiaddr::from_bytes(&[0x99, 0x01]).unwrap();
    assert_eq!(
        unknown.to_text(),
        Err(MultiaddrError::UnknownProtocol(0x99))
    );
    let enr = EnrBuilder::new()
        .ip6("2001:db8::1".parse().unwrap())
        .tcp(60000)
        .multiaddrs(&[ws, unknown, circuit, foreign])
        .sign(&sk)
        .unwrap();
    let peer = enr.libp2p_peer_id();
    assert_eq!(
        enr.dial_addrs(),
        vec![
            format!("/ip6/2001:db8::1/tcp/60000/p2p/{peer}"),
            format!("/dns4/example.org/tcp/443/wss/p2p/{peer}"),
            format!("/ip4/192.0.2.7/tcp/60001/p2p/{relay}/p2p-circuit/p2p/{peer}"),
        ]
    );
}

fn arb_multiaddr() -> impl Strategy<Value = (Multiaddr, String)> {
    ("[a-z]{1,20}", any::<u16>(), any::<bool>()).prop_map(|(host, port, wss)| {
        let mut b = vec![0x36, host.len() as u8];
        b.extend_from_slice(host.as_bytes());
        b.push(0x06);
        b.extend_from_slice(&port.to_be_bytes());
        let mut t = format!("/dns4/{host}/tcp/{port}");
        if wss {
            b.extend([0xde, 0x03]);
            t.push_str("/wss");
        }
        (Multiaddr::from_bytes(&b).unwrap(), t)
    })
}

fn arb_builder() -> impl Strategy<Value = (EnrBuilder, Vec<String>, Option<RelayShards>)> {
    (
        any::<u64>(),
        proptest::option::of(any::<[u8; 4]>()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
        proptest::collection::vec(arb_multiaddr(), 0..3),
        proptest::option::of((any::<u16>(), proptest::collection::vec(0u16..=1023, 1..100))),
    )
        .prop_map(|(seq, ip, tcp, udp, caps, addrs, shards)| {
            let mut b = EnrBuilder::new().seq(seq);
            if let Some(ip) = ip {
                b = b.ip4(ip.into());
            }
            if let Some(p) = tcp {
                b = b.tcp(p);
            }
            if let Some(p) = udp {
                b = b.udp(p);
            }
            if let Some(c) = caps {
                b = b.waku2(Waku2::from_bits(c));
            }
            let texts = addrs.iter().map(|(_, t)| t.clone()).collect();
            let mas: Vec<Multiaddr> = addrs.into_iter().map(|(m, _)| m).collect();
            if !mas.is_empty() {
                b = b.multiaddrs(&mas);
            }
            let rs = shards.map(|(cluster, shards)| RelayShards { cluster, shards });
            if let Some(rs) = &rs {
                b = b.relay_shards(rs).unwrap();
            }
            (b, texts, rs)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// build -> sign -> encode -> decode gives back every field, or the build is refused as
    /// too large.
    #[test]
    fn build_sign_decode_round_trip(
        (b, texts, rs) in arb_builder(),
        secret in any::<[u8; 32]>(),
    ) {
        let Ok(enr) = b.sign(&secret) else {
            // Zero or over-order secret, or over 300 bytes: both typed.
            let err = b.sign(&secret).unwrap_err();
            prop_assert!(matches!(err, EnrError::BadSecretKey | EnrError::TooLarge(_)));
            return Ok(());
        };
        prop_assert!(enr.encode().len() <= MAX_ENR_LEN);
        let back = Enr::from_text(&enr.to_text()).unwrap();
        prop_assert_eq!(&back, &enr);
        prop_assert_eq!(back.encode(), enr.encode());
        prop_assert!(independently_verifies(back.as_bytes(), &back.public_key()));
        let got: Vec<String> = back.multiaddrs().unwrap().iter().map(|m| m.to_text().unwrap()).collect();
        prop_assert_eq!(got, texts);
        if let Some(rs) = rs {
            let mut want: Vec<u16> = Vec::new();
            for s in rs.shards { if !want.contains(&s) { want.push(s); } }
            let got = back.shards().unwrap().unwrap();
            prop_assert_eq!(got.cluster, rs.cluster);
            if want.len() >= 64 { want.sort_unstable(); }
            prop_assert_eq!(got.shards, want);
        }
    }

    /// Arbitrary bytes as a binary multiaddr: printing never panics, and whatever prints
    /// parses back to bytes that print the same.
    #[test]
    fn multiaddr_bytes_text_round_trip(bytes in proptest::collection::vec(any::<u8>(), 1..80)) {
        let m = Multiaddr::from_bytes(&bytes).unwrap();
        if let Ok(text) = m.to_text() {
            let back = Multiaddr::from_text(&text).unwrap();
            prop_assert_eq!(back.to_text().unwrap(), text);
        }
    }

    /// Random mutations of real records never panic; whatever decodes re-encodes to the same
    /// bytes and carries a signature that verifies.
    #[test]
    fn mutations_fail_typed_or_verify(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let texts = [EIP778_TEXT, TWN[0], TWN[1], JS_TCP, JS_MULTIADDRS];
        let mut raw = Enr::from_text(texts[which]).unwrap().encode();
        for (pos, byte, kind) in edits {
            let at = usize::from(pos) % (raw.len() + 1);
            match kind {
                0 if at < raw.len() => raw[at] = byte,
                1 => raw.insert(at, byte),
                _ if at < raw.len() => { raw.remove(at); }
                _ => raw.push(byte),
            }
        }
        match Enr::decode(&raw) {
            Ok(enr) => {
                prop_assert_eq!(enr.encode(), raw.clone());
                prop_assert!(independently_verifies(&raw, &enr.public_key()));
                let _ = (enr.dial_addrs(), enr.shards(), enr.waku2(), enr.multiaddrs());
            }
            Err(e) => { let _ = e.to_string(); }
        }
    }
}
