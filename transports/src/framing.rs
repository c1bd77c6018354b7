//! A sans-IO decoder for unsigned-varint length-prefixed frames (WIRE.md B.1, B.27), fed byte
//! chunks as they arrive from a stream.
//!
//! [`proto::frame::read_frame`] reads a frame out of a buffer that already holds it. A stream
//! reader cannot hold a frame before knowing whether it is acceptable, so [`FrameDecoder`] keeps
//! the state between reads and decides as early as the bytes allow:
//!
//! - the length prefix is taken one byte at a time, and the announced length is checked against
//!   the cap as soon as the prefix is complete, before any byte of the body is buffered;
//! - the body buffer grows as the body arrives, never past the announced length: first by
//!   [`FIRST_STEP`] bytes, then by as much as has arrived (doubling), each step at most
//!   [`FrameDecoder::step`] bytes; so a peer that announces a large frame and sends little costs
//!   little (at most twice what it sent, plus [`FIRST_STEP`]);
//! - the decoder never takes a byte past the end of the current frame, so an unbuffered stream
//!   can be read frame by frame with nothing left over.
//!
//! The libp2p driver reads every stream through it (`transports::libp2p::frames::read_frame`),
//! and `transports::fuzzing::libp2p_frames` fuzzes it.

use proto::frame::{MAX_VARINT_LEN, read_uvarint};

/// How much of a body is allocated at a time by [`FrameDecoder::new`]: large enough that a big
/// frame is read in few steps, small enough that a peer announcing a frame and then stalling
/// holds at most this much of our memory per stream.
pub const DEFAULT_STEP: usize = 64 * 1024;

/// The first allocation for a body: small, so that a stream that announces a frame and then
/// stalls holds little (the driver may have hundreds of such streams open), large enough for
/// most requests to be read in one step.
pub const FIRST_STEP: usize = 1024;

/// Why a frame could not be decoded. Errors are final: once one is returned, the decoder returns
/// it again for any further input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameDecodeError {
    /// The announced length is above the cap (found before any of the body was buffered).
    #[error("frame of {len} bytes is over the cap of {max}")]
    TooLong {
        /// Announced length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// The length prefix is not a minimal unsigned varint of at most
    /// [`MAX_VARINT_LEN`] bytes.
    #[error("malformed length prefix")]
    BadPrefix,
    /// The input ended inside a frame (from [`FrameDecoder::finish`]).
    #[error("input ended inside a frame")]
    Truncated,
}

/// The body of the frame being read.
#[derive(Debug)]
struct Body {
    /// The announced length (at most the cap).
    len: usize,
    /// `buf[..filled]` is received; `buf[filled..]` is room handed out by `spare`.
    buf: Vec<u8>,
    filled: usize,
}

/// Decodes a byte stream into frames of at most a cap each. See the [module docs](self).
#[derive(Debug)]
pub struct FrameDecoder {
    max_len: usize,
    step: usize,
    prefix: [u8; MAX_VARINT_LEN],
    prefix_len: usize,
    body: Option<Body>,
    error: Option<FrameDecodeError>,
}

impl FrameDecoder {
    /// A decoder for frames of at most `max_len` bytes, growing bodies in [`DEFAULT_STEP`] steps.
    pub const fn new(max_len: usize) -> Self {
        Self::with_step(max_len, DEFAULT_STEP)
    }

    /// A decoder for frames of at most `max_len` bytes, growing bodies in steps of `step` bytes
    /// (at least 1).
    pub const fn with_step(max_len: usize, step: usize) -> Self {
        FrameDecoder {
            max_len,
            step: if step == 0 { 1 } else { step },
            prefix: [0; MAX_VARINT_LEN],
            prefix_len: 0,
            body: None,
            error: None,
        }
    }

    /// The cap on a frame's body.
    pub const fn max_len(&self) -> usize {
        self.max_len
    }

    /// The step bodies grow by.
    pub const fn step(&self) -> usize {
        self.step
    }

    /// Whether the decoder is between frames (nothing of a next frame received, no error).
    pub const fn is_idle(&self) -> bool {
        self.prefix_len == 0 && self.body.is_none() && self.error.is_none()
    }

    /// The bytes of memory the decoder holds for the frame being read: the prefix buffer and the
    /// body allocation. Never more than `max_len + MAX_VARINT_LEN`, nor more than a step beyond
    /// what was received, nor more than twice what was received plus [`FIRST_STEP`].
    pub fn held(&self) -> usize {
        MAX_VARINT_LEN + self.body.as_ref().map_or(0, |b| b.buf.capacity())
    }

    /// Bytes of the current frame received so far (prefix and body).
    pub fn received(&self) -> usize {
        self.prefix_len + self.body.as_ref().map_or(0, |b| b.filled)
    }

    /// Room for the next bytes of the stream: never past the end of the current frame, at most a
    /// step long, empty only after an error. Hand the number of bytes written to it to
    /// [`commit`](Self::commit). While a body is read, this is where its allocation grows (by at
    /// most a step, only once the room handed out before is filled).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.error.is_some() {
            return &mut [];
        }
        match &mut self.body {
            None => {
                let at = self.prefix_len;
                self.prefix.get_mut(at..at + 1).unwrap_or_default()
            }
            Some(body) => {
                if body.filled == body.buf.len() {
                    let grow = (body.len - body.filled)
                        .min(self.step)
                        .min(body.filled.max(FIRST_STEP));
                    // Exact, so the allocation never passes the announced length.
                    body.buf.reserve_exact(grow);
                    body.buf.resize(body.filled + grow, 0);
                }
                body.buf.get_mut(body.filled..).unwrap_or_default()
            }
        }
    }

    /// Takes `n` bytes written at the start of the last [`spare`](Self::spare) (capped at its
    /// length). Returns the frame they complete, if any.
    pub fn commit(&mut self, n: usize) -> Result<Option<Vec<u8>>, FrameDecodeError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if n == 0 {
            return Ok(None);
        }
        let done = match &mut self.body {
            None => {
                if self.prefix_len >= MAX_VARINT_LEN {
                    return Err(self.fail(FrameDecodeError::BadPrefix));
                }
                self.prefix_len += 1;
                let head = self.prefix.get(..self.prefix_len).unwrap_or_default();
                let len = match read_uvarint(head) {
                    Ok(None) => return Ok(None),
                    Ok(Some((len, _))) => len,
                    Err(_) => return Err(self.fail(FrameDecodeError::BadPrefix)),
                };
                if len > self.max_len as u64 {
                    return Err(self.fail(FrameDecodeError::TooLong {
                        len,
                        max: self.max_len,
                    }));
                }
                // At most `max_len`, so it fits.
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                self.prefix_len = 0;
                if len == 0 {
                    return Ok(Some(Vec::new()));
                }
                self.body = Some(Body {
                    len,
                    buf: Vec::new(),
                    filled: 0,
                });
                false
            }
            Some(body) => {
                body.filled = (body.filled + n).min(body.buf.len());
                body.filled == body.len
            }
        };
        if !done {
            return Ok(None);
        }
        Ok(self.body.take().map(|mut b| {
            b.buf.truncate(b.filled);
            b.buf
        }))
    }

    /// Feeds bytes: takes them up to the end of the current frame and returns how many it took
    /// and the frame they complete, if any. Call again with the rest.
    pub fn push(&mut self, input: &[u8]) -> Result<(usize, Option<Vec<u8>>), FrameDecodeError> {
        let mut taken = 0;
        loop {
            let rest = input.get(taken..).unwrap_or_default();
            if rest.is_empty() {
                return match &self.error {
                    Some(e) => Err(e.clone()),
                    None => Ok((taken, None)),
                };
            }
            let room = self.spare();
            let n = room.len().min(rest.len());
            if let (Some(dst), Some(src)) = (room.get_mut(..n), rest.get(..n)) {
                dst.copy_from_slice(src);
            }
            taken += n;
            if let Some(frame) = self.commit(n)? {
                return Ok((taken, Some(frame)));
            }
        }
    }

    /// The input has ended: `Ok` if it ended between frames, the error otherwise.
    pub fn finish(&self) -> Result<(), FrameDecodeError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None if self.prefix_len == 0 && self.body.is_none() => Ok(()),
            None => Err(FrameDecodeError::Truncated),
        }
    }

    fn fail(&mut self, e: FrameDecodeError) -> FrameDecodeError {
        self.body = None;
        self.error = Some(e.clone());
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `input` fed in pieces of the given sizes (cycled); returns the frames, the bytes
    /// they used and how the input ended.
    fn decode(
        input: &[u8],
        max: usize,
        step: usize,
        pieces: &[usize],
    ) -> (Vec<Vec<u8>>, usize, Result<(), FrameDecodeError>) {
        let mut d = FrameDecoder::with_step(max, step);
        let mut frames = Vec::new();
        let mut at = 0;
        let mut used = 0;
        let mut i = 0;
        while at < input.len() {
            let size = pieces
                .get(i % pieces.len().max(1))
                .copied()
                .unwrap_or(1)
                .max(1);
            i += 1;
            let mut piece = &input[at..(at + size).min(input.len())];
            at += piece.len();
            while !piece.is_empty() {
                match d.push(piece) {
                    Ok((n, f)) => {
                        piece = &piece[n..];
                        assert!(d.held() <= max + MAX_VARINT_LEN);
                        assert!(d.held() <= MAX_VARINT_LEN + 2 * d.received() + FIRST_STEP);
                        if let Some(f) = f {
                            used = at - piece.len();
                            frames.push(f);
                        }
                    }
                    Err(e) => return (frames, used, Err(e)),
                }
            }
        }
        (frames, used, d.finish())
    }

    #[test]
    fn frames_and_clean_end() {
        let mut bytes = proto::frame::encode_frame(b"hello");
        bytes.extend(proto::frame::encode_frame(b""));
        bytes.extend(proto::frame::encode_frame(&[7; 300]));
        let (frames, used, end) = decode(&bytes, 1000, 100, &[1]);
        assert_eq!(frames, vec![b"hello".to_vec(), Vec::new(), vec![7; 300]]);
        assert_eq!(used, bytes.len());
        assert_eq!(end, Ok(()));
    }

    #[test]
    fn cap_is_checked_before_the_body() {
        let mut d = FrameDecoder::new(99);
        // The prefix of a 100-byte frame, and no body at all.
        assert_eq!(
            d.push(&[100]),
            Err(FrameDecodeError::TooLong { len: 100, max: 99 })
        );
        assert_eq!(d.held(), MAX_VARINT_LEN);
        // Final: more input gives the same error.
        assert_eq!(
            d.push(&[0]),
            Err(FrameDecodeError::TooLong { len: 100, max: 99 })
        );
        assert!(d.spare().is_empty());
    }

    #[test]
    fn announced_length_allocates_only_as_bytes_arrive() {
        let mut d = FrameDecoder::with_step(1 << 20, 1024);
        let mut prefix = Vec::new();
        proto::frame::write_uvarint(1 << 20, &mut prefix);
        assert_eq!(d.push(&prefix), Ok((prefix.len(), None)));
        assert_eq!(d.held(), MAX_VARINT_LEN);
        assert_eq!(d.push(&[1]), Ok((1, None)));
        assert_eq!(d.held(), MAX_VARINT_LEN + FIRST_STEP);
        assert_eq!(d.push(&[1; 1500]), Ok((1500, None)));
        assert_eq!(d.held(), MAX_VARINT_LEN + 2 * 1024);
        assert_eq!(d.push(&[1; 5000]), Ok((5000, None)));
        // 2048, then steps of at most 1024 bytes.
        assert_eq!(d.held(), MAX_VARINT_LEN + 7 * 1024);
        assert_eq!(d.finish(), Err(FrameDecodeError::Truncated));
        // Doubling with a large step.
        let mut d = FrameDecoder::new(1 << 20);
        assert_eq!(d.push(&prefix), Ok((prefix.len(), None)));
        assert_eq!(d.push(&[1; 10_000]), Ok((10_000, None)));
        assert_eq!(d.held(), MAX_VARINT_LEN + 16 * 1024);
    }

    #[test]
    fn bad_prefixes() {
        // Not minimal.
        assert_eq!(
            FrameDecoder::new(100).push(&[0x80, 0x00]),
            Err(FrameDecodeError::BadPrefix)
        );
        // Too long.
        assert_eq!(
            FrameDecoder::new(usize::MAX).push(&[0xff; 12]),
            Err(FrameDecodeError::BadPrefix)
        );
        // Cut.
        let mut d = FrameDecoder::new(100);
        assert_eq!(d.push(&[0x80]), Ok((1, None)));
        assert_eq!(d.finish(), Err(FrameDecodeError::Truncated));
    }

    #[test]
    fn never_takes_past_the_frame() {
        let mut bytes = proto::frame::encode_frame(b"abc");
        bytes.extend_from_slice(b"tail");
        let mut d = FrameDecoder::new(10);
        assert_eq!(d.push(&bytes), Ok((4, Some(b"abc".to_vec()))));
        assert!(d.is_idle());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Well-formed streams decode to what was encoded, in any chunking, and an over-cap
        /// frame stops the decoding at its prefix.
        #[test]
        fn encoded_frames_decode_in_any_chunking(
            bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..6),
            max in 0usize..700,
            step in 1usize..300,
            pieces in prop::collection::vec(1usize..200, 1..8),
        ) {
            let mut bytes = Vec::new();
            for b in &bodies {
                proto::frame::write_frame(b, &mut bytes);
            }
            let (frames, used, end) = decode(&bytes, max, step, &pieces);
            let fitting: Vec<_> = bodies.iter().take_while(|b| b.len() <= max).cloned().collect();
            prop_assert_eq!(&frames, &fitting);
            let mut again = Vec::new();
            for f in &frames {
                proto::frame::write_frame(f, &mut again);
            }
            prop_assert_eq!(&bytes[..used], &again[..]);
            match bodies.get(fitting.len()) {
                None => prop_assert_eq!(end, Ok(())),
                Some(b) => prop_assert_eq!(end, Err(FrameDecodeError::TooLong { len: b.len() as u64, max })),
            }
        }

        /// Arbitrary bytes: the same result in any chunking, and what the slice decoder of
        /// `proto::frame` finds.
        #[test]
        fn garbage_agrees_across_chunkings_and_with_proto(
            bytes in prop::collection::vec(any::<u8>(), 0..400),
            max in 0usize..300,
            step in 1usize..64,
            pieces in prop::collection::vec(1usize..50, 1..8),
        ) {
            let whole = decode(&bytes, max, step, &[bytes.len().max(1)]);
            let cut = decode(&bytes, max, step, &pieces);
            prop_assert_eq!(&whole, &cut);
            for f in &whole.0 {
                prop_assert!(f.len() <= max);
            }
            let mut at = 0;
            let mut oracle = Vec::new();
            while let Ok(Some(f)) = proto::frame::read_frame(&bytes[at..], max) {
                oracle.push(f.body.to_vec());
                at += f.consumed;
            }
            prop_assert_eq!(&whole.0, &oracle);
            prop_assert_eq!(whole.1, at);
        }
    }
}
