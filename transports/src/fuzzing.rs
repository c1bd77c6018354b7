//! Fuzz bodies for the TCP transport's decoders (thin targets in `fuzz/fuzz_targets/`).

use waku_core::net::Protocol;

use crate::tcp::wire::{
    self, Hello, MAX_DECODER_BUFFER, MAX_NOISE_PLAINTEXT, Packet, PacketDecoder,
};

/// Decodes a Hello; whatever decodes must re-encode to the same bytes (the encoding is
/// canonical).
pub fn tcp_hello(data: &[u8]) {
    if let Ok(h) = Hello::decode(data) {
        assert_eq!(
            h.encode().ok().as_deref(),
            Some(data),
            "Hello encoding is not canonical"
        );
    }
}

/// Feeds a plaintext stream to the packet decoder in chunks (the first byte picks the chunk
/// size), between two nodes serving every protocol. Checks that the buffer stays bounded
/// and that every decoded packet survives a re-encoding.
pub fn tcp_packets(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = (usize::from(chunk) + 1) * 97 % MAX_NOISE_PLAINTEXT + 1;
    let ours = Hello::new("fuzz", 0, &Protocol::ALL);
    let mut decoder = PacketDecoder::new();
    decoder.set_hellos(&ours, &ours);
    for piece in rest.chunks(chunk) {
        if decoder.push(piece).is_err() {
            return;
        }
        loop {
            assert!(decoder.buffered() <= MAX_DECODER_BUFFER);
            match decoder.next_packet() {
                Err(_) | Ok(None) => break,
                Ok(Some(p)) => round_trip(&ours, &p),
            }
        }
    }
}

fn round_trip(ours: &Hello, p: &Packet) {
    let mut out = Vec::new();
    let encoded = match p {
        Packet::Frame {
            protocol,
            kind,
            body,
        } => {
            let tag = Protocol::ALL
                .iter()
                .position(|q| q == protocol)
                .map(|i| i + 1);
            let Some(tag) = tag.and_then(|t| u8::try_from(t).ok()) else {
                return;
            };
            wire::encode_frame(tag, *protocol, *kind, body, &mut out)
        }
        other => wire::encode_control(other, &mut out),
    };
    if encoded.is_err() {
        return;
    }
    let mut d = PacketDecoder::new();
    d.set_hellos(ours, ours);
    assert!(d.push(&out).is_ok());
    assert_eq!(d.next_packet().ok().flatten().as_ref(), Some(p));
}
