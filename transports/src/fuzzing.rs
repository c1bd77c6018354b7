//! Fuzz bodies for the transports' decoders: the TCP transport's, and the libp2p stream framing
//! ([`crate::framing`]) (thin targets in `fuzz/fuzz_targets/`).

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

/// How one chunking of the input decoded: the frames, the bytes they used, how it ended.
type Decoded = (
    Vec<Vec<u8>>,
    usize,
    Result<(), crate::framing::FrameDecodeError>,
);

/// Feeds `input` to a [`FrameDecoder`](crate::framing::FrameDecoder) in pieces whose sizes
/// `next_piece` picks, checking the memory bounds after every call.
fn decode_frames(
    input: &[u8],
    max: usize,
    step: usize,
    mut next_piece: impl FnMut() -> usize,
) -> Decoded {
    use crate::framing::FrameDecoder;
    use proto::frame::MAX_VARINT_LEN;

    let mut d = FrameDecoder::with_step(max, step);
    let mut frames = Vec::new();
    let mut used = 0;
    let mut at = 0;
    while at < input.len() {
        let end = at.saturating_add(next_piece().max(1)).min(input.len());
        let mut piece = input.get(at..end).unwrap_or_default();
        at = end;
        while !piece.is_empty() {
            let r = d.push(piece);
            assert!(d.held() <= max + MAX_VARINT_LEN, "held over the cap");
            assert!(
                d.held() <= MAX_VARINT_LEN + d.received() + step,
                "allocated more than a step ahead of the input"
            );
            assert!(
                d.held() <= MAX_VARINT_LEN + 2 * d.received() + crate::framing::FIRST_STEP,
                "allocated more than twice the input"
            );
            match r {
                Ok((n, frame)) => {
                    assert!(n <= piece.len() && (n > 0 || frame.is_some()));
                    piece = piece.get(n..).unwrap_or_default();
                    if let Some(f) = frame {
                        assert!(f.len() <= max, "frame over the cap");
                        assert!(d.is_idle());
                        frames.push(f);
                        used = at - piece.len();
                    }
                }
                Err(e) => {
                    // Errors are final.
                    assert_eq!(d.push(b"x").err().as_ref(), Some(&e));
                    assert_eq!(d.finish().err().as_ref(), Some(&e));
                    return (frames, used, Err(e));
                }
            }
        }
    }
    (frames, used, d.finish())
}

/// The libp2p stream framing: the first two bytes pick the cap, the third the allocation step,
/// the fourth a chunking; the rest is the stream. Decoded whole, byte by byte and in the picked
/// chunking, it must give the same frames and the same end; every frame is within the cap, the
/// frames re-encode to exactly the input they used, the result agrees with the slice decoder of
/// `proto::frame`, and the decoder never holds more than the cap plus a prefix, nor more than a
/// step beyond what it received, nor more than twice that plus a first step.
pub fn libp2p_frames(data: &[u8]) {
    use crate::framing::FrameDecodeError;
    use proto::frame::{FrameError, read_frame, write_frame};

    let Some((head, stream)) = data.split_first_chunk::<4>() else {
        return;
    };
    let [c0, c1, step, seed] = *head;
    let max = usize::from(u16::from_le_bytes([c0, c1]));
    let step = usize::from(step) + 1;

    let whole = decode_frames(stream, max, step, || stream.len());
    let bytewise = decode_frames(stream, max, step, || 1);
    let mut state = u32::from(seed) | 0x100;
    let picked = decode_frames(stream, max, step, || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        usize::try_from(state % 97).unwrap_or(1)
    });
    assert_eq!(whole, bytewise, "chunking changed the result");
    assert_eq!(whole, picked, "chunking changed the result");

    let (frames, used, end) = whole;
    let mut again = Vec::new();
    for f in &frames {
        write_frame(f, &mut again);
    }
    assert_eq!(
        stream.get(..used),
        Some(again.as_slice()),
        "frames do not re-encode to the input they used"
    );

    // The slice decoder agrees on the frames and on how the rest of the input fails.
    let mut at = 0;
    let mut oracle = Vec::new();
    let oracle_end = loop {
        let rest = stream.get(at..).unwrap_or_default();
        match read_frame(rest, max) {
            Ok(Some(f)) => {
                oracle.push(f.body.to_vec());
                at += f.consumed;
            }
            Ok(None) if rest.is_empty() => break Ok(()),
            Ok(None) => break Err(FrameDecodeError::Truncated),
            Err(FrameError::TooLong { len, max }) => {
                break Err(FrameDecodeError::TooLong { len, max });
            }
            Err(_) => break Err(FrameDecodeError::BadPrefix),
        }
    };
    assert_eq!(frames, oracle, "disagrees with proto::frame::read_frame");
    assert_eq!(used, at);
    assert_eq!(end, oracle_end);
}
