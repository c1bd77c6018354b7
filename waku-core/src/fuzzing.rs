//! Fuzz bodies for the message decoder, the payload opener and the ENR codec, shared by the
//! cargo-fuzz targets in `fuzz/` (`waku_message_decode`, `waku_payload_open`, `waku_enr`) and by
//! tests.
//!
//! A fuzz body panics when it finds a bug; that is how the fuzzer learns of it.
#![allow(clippy::expect_used, clippy::panic)]

use ed25519_dalek::SigningKey;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use x25519_dalek::StaticSecret;

use crate::message::{MAX_MESSAGE_SIZE, WakuMessage};
use crate::payload::{
    RecipientKey, SymmetricKey, open_asymmetric, open_symmetric, seal_asymmetric, seal_symmetric,
};
use crate::topic::PubsubTopic;

/// Decodes `data` as a Waku message. If that works, the message must validate, and its encoding
/// must decode to the same message with the same hash. (The encoding can be a few bytes longer
/// than the input, since `version` and `ephemeral` are always written, hence the slack.)
pub fn message_decode(data: &[u8]) {
    let Ok(msg) = WakuMessage::decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_MESSAGE_SIZE);
    msg.validate_with_limit(MAX_MESSAGE_SIZE + 16)
        .expect("a decoded message validates");
    let bytes = msg.encode();
    assert_eq!(bytes.len(), msg.encoded_len());
    let again = WakuMessage::decode_with_limit(&bytes, MAX_MESSAGE_SIZE + 16)
        .expect("our own encoding decodes");
    assert_eq!(again, msg, "decode(encode(m)) != m");
    assert_eq!(again.encode(), bytes, "encoding is not stable");
    let topic = PubsubTopic::default_waku();
    assert_eq!(again.hash(&topic), msg.hash(&topic));
}

/// Opens `data` as an envelope of either mode under fixed keys (it must fail cleanly or
/// succeed), then seals the rest of `data` under the mode and signing choice given by its first
/// byte, checks that it opens to the same payload with the right signer, and checks that one
/// flipped bit, at a position chosen by the input, is refused.
pub fn payload_open(data: &[u8]) {
    let recipient = RecipientKey::new(StaticSecret::from([0x11; 32]));
    let key = SymmetricKey::from_bytes([0x22; 32]);
    let _ = open_asymmetric(&recipient, data);
    let _ = open_symmetric(&key, data);

    let Some((&ctl, payload)) = data.split_first() else {
        return;
    };
    let signer = SigningKey::from_bytes(&[0x33; 32]);
    let signer = (ctl & 1 != 0).then_some(&signer);
    let symmetric = ctl & 2 != 0;
    let mut rng = ChaCha20Rng::from_seed([ctl; 32]);
    let open = |env: &[u8]| {
        if symmetric {
            open_symmetric(&key, env)
        } else {
            open_asymmetric(&recipient, env)
        }
    };
    let mut env = if symmetric {
        seal_symmetric(&mut rng, &key, payload, signer)
    } else {
        seal_asymmetric(&mut rng, &recipient.public(), payload, signer)
    }
    .expect("sealing a fuzz-sized payload works");
    let opened = open(&env).expect("a sealed envelope opens");
    assert_eq!(&opened.payload[..], payload);
    assert_eq!(opened.signer, signer.map(SigningKey::verifying_key));

    let bits = env.len() * 8;
    let bit = (usize::from(ctl) * 7919 + payload.len() * 31) % bits;
    if let Some(byte) = env.get_mut(bit / 8) {
        *byte ^= 1 << (bit % 8);
    }
    assert!(
        open(&env).is_err(),
        "a flipped bit (bit {bit}) was accepted"
    );
}

/// Decodes `data` as a node record, binary and (if it is UTF-8) text. A record that decodes must
/// be within [`crate::enr::MAX_ENR_LEN`], re-encode to exactly `data`, survive the text form and
/// the peer-exchange trait, and answer every accessor without panicking. Then the first byte
/// picks builder fields, the rest becomes the value of key `x`, and the record signed with a
/// fixed key must decode to the same fields (or be refused as too large).
pub fn enr_decode(data: &[u8]) {
    use crate::enr::{Enr, EnrBuilder, EnrError, MAX_ENR_LEN, Waku2};
    use crate::peer_exchange::PeerRecord;

    if let Ok(enr) = Enr::decode(data) {
        assert!(data.len() <= MAX_ENR_LEN);
        assert_eq!(
            enr.as_bytes(),
            data,
            "a decoded record re-encodes to its input"
        );
        let again = Enr::from_text(&enr.to_text()).expect("the text form decodes");
        assert_eq!(again, enr);
        assert_eq!(
            <Enr as PeerRecord>::from_bytes(&enr.to_bytes()),
            Some(enr.clone())
        );
        let _ = (
            enr.ip4(),
            enr.ip6(),
            enr.tcp(),
            enr.udp(),
            enr.tcp6(),
            enr.udp6(),
        );
        let _ = (
            enr.waku2(),
            enr.shards(),
            enr.node_id(),
            enr.libp2p_peer_id(),
        );
        for m in enr.multiaddrs().unwrap_or_default() {
            let _ = m.to_text();
        }
        for a in enr.dial_addrs() {
            assert!(a.ends_with(&enr.libp2p_peer_id()));
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Enr::from_text(text);
        if let Ok(m) = crate::enr::Multiaddr::from_text(text) {
            let back = m.to_text().expect("a parsed text multiaddr prints");
            let again = crate::enr::Multiaddr::from_text(&back).expect("printed text parses");
            assert_eq!(again, m, "text form is not stable");
        }
    }
    if let Ok(m) = crate::enr::Multiaddr::from_bytes(data)
        && let Ok(text) = m.to_text()
    {
        let back = crate::enr::Multiaddr::from_text(&text).expect("printed text parses");
        assert_eq!(back.to_text().as_deref(), Ok(text.as_str()));
    }

    let Some((&ctl, value)) = data.split_first() else {
        return;
    };
    let mut b = EnrBuilder::new().seq(u64::from(ctl)).raw(b"x", value);
    if ctl & 1 != 0 {
        b = b.tcp(u16::from(ctl) * 257);
    }
    if ctl & 2 != 0 {
        b = b.waku2(Waku2::from_bits(ctl));
    }
    match b.sign(&[0x5a; 32]) {
        Ok(enr) => {
            assert_eq!(enr.get(b"x"), Some(value));
            assert_eq!(enr.seq(), u64::from(ctl));
            assert_eq!(Enr::decode(enr.as_bytes()).as_ref(), Ok(&enr));
        }
        Err(EnrError::TooLarge(n)) => assert!(n > MAX_ENR_LEN),
        Err(e) => panic!("signing failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_accept_simple_inputs() {
        for data in [&b""[..], b"\x00", b"\x03hello", &[0xff; 300]] {
            message_decode(data);
            payload_open(data);
        }
        let msg = WakuMessage::new("/a/1/b/proto".parse().expect("topic"), vec![1, 2, 3]);
        message_decode(&msg.encode());
    }

    #[test]
    fn enr_body_accepts_simple_and_real_records() {
        for data in [&b""[..], b"\x00", b"\x03hello", &[0xff; 300], &[0xc0; 301]] {
            enr_decode(data);
        }
        let enr = crate::enr::EnrBuilder::new()
            .seq(5)
            .tcp(30303)
            .sign(&[7; 32])
            .expect("signs");
        enr_decode(enr.as_bytes());
        enr_decode(enr.to_text().as_bytes());
    }
}
