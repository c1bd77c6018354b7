//! The fuzz bodies of the TCP decoders, run on random and on well-formed inputs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "fuzzing")]

use proptest::prelude::*;
use transports::fuzzing;
use transports::tcp::wire::{self, DisconnectReason, Hello, Packet};
use waku_core::net::{FrameKind, Protocol};

fn frame() -> impl Strategy<Value = (usize, u8, u64, Vec<u8>)> {
    (
        0..Protocol::ALL.len(),
        0..3u8,
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::tcp_packets(&data);
        fuzzing::tcp_hello(&data);
    }

    #[test]
    fn well_formed_streams(chunk in any::<u8>(), frames in prop::collection::vec(frame(), 0..20), flip in any::<Option<(usize, u8)>>()) {
        let mut stream = vec![chunk];
        let hello = Hello::new("prop", 1, &Protocol::ALL);
        wire::encode_control(&Packet::Hello(hello.clone()), &mut stream).unwrap();
        fuzzing::tcp_hello(&hello.encode().unwrap());
        for (p, k, id, body) in frames {
            let protocol = Protocol::ALL[p];
            let kind = match k { 0 => FrameKind::Stream, 1 => FrameKind::Request(id), _ => FrameKind::Response(id) };
            wire::encode_frame(u8::try_from(p + 1).unwrap(), protocol, kind, &body, &mut stream).unwrap();
        }
        wire::encode_control(&Packet::Ping(3), &mut stream).unwrap();
        wire::encode_control(&Packet::Disconnect(DisconnectReason::Requested), &mut stream).unwrap();
        if let Some((at, x)) = flip {
            let at = 1 + at % (stream.len() - 1);
            stream[at] ^= x;
        }
        fuzzing::tcp_packets(&stream);
    }
}

/// The libp2p framing fuzz body: a header (cap, step, chunking seed) and then a stream.
fn frames_input(max: u16, step: u8, seed: u8, stream: &[u8]) -> Vec<u8> {
    let mut data = max.to_le_bytes().to_vec();
    data.extend([step, seed]);
    data.extend_from_slice(stream);
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn libp2p_frames_random_bytes(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::libp2p_frames(&data);
    }

    /// Well-formed frames, some over the cap, with a byte flipped or the end cut.
    #[test]
    fn libp2p_frames_well_formed(
        max in any::<u16>(),
        step in any::<u8>(),
        seed in any::<u8>(),
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1500), 0..8),
        flip in any::<Option<(usize, u8)>>(),
        cut in any::<Option<usize>>(),
    ) {
        let mut stream = Vec::new();
        for b in &bodies {
            proto::frame::write_frame(b, &mut stream);
        }
        fuzzing::libp2p_frames(&frames_input(max, step, seed, &stream));
        if let Some((at, x)) = flip.filter(|_| !stream.is_empty()) {
            let at = at % stream.len();
            stream[at] ^= x;
        }
        if let Some(c) = cut.filter(|_| !stream.is_empty()) {
            stream.truncate(c % stream.len());
        }
        fuzzing::libp2p_frames(&frames_input(max, step, seed, &stream));
    }
}
