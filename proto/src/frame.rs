//! Unsigned-varint length-prefixed frames (WIRE.md B.1).
//!
//! Every Waku request/response protocol and the gossipsub stream carry one protobuf message per
//! frame: `uvarint(len) ‖ bytes`. The varint is the multiformats unsigned-varint: little-endian
//! base-128, at most 9 bytes, minimally encoded. The length is checked against the caller's limit
//! before the body is looked at, so a hostile prefix cannot make anyone allocate.

/// The longest unsigned-varint the multiformats spec allows (63 bits of value).
pub const MAX_VARINT_LEN: usize = 9;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The announced length exceeds the limit for this protocol.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// The announced length.
        len: u64,
        /// The limit that applied.
        max: usize,
    },
    /// The length prefix is longer than [`MAX_VARINT_LEN`] bytes or not minimally encoded.
    #[error("invalid unsigned-varint length prefix")]
    BadVarint,
}

/// A frame found at the start of an input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The frame's body (the protobuf message).
    pub body: &'a [u8],
    /// How many bytes of the input the frame used, prefix included.
    pub consumed: usize,
}

/// Appends `uvarint(value)` to `out`.
pub fn write_uvarint(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads an unsigned-varint from the start of `input`.
///
/// Returns `Ok(None)` when `input` ends before the varint does (read more bytes and retry).
pub fn read_uvarint(input: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate() {
        if i >= MAX_VARINT_LEN {
            return Err(FrameError::BadVarint);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // Minimal encoding: a trailing zero byte after the first is redundant.
            if byte == 0 && i > 0 {
                return Err(FrameError::BadVarint);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if input.len() >= MAX_VARINT_LEN {
        return Err(FrameError::BadVarint);
    }
    Ok(None)
}

/// Appends one frame holding `body` to `out`.
pub fn write_frame(body: &[u8], out: &mut Vec<u8>) {
    write_uvarint(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// Encodes `body` as one frame.
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + MAX_VARINT_LEN);
    write_frame(body, &mut out);
    out
}

/// Reads one frame from the start of `input`, whose body may be at most `max_len` bytes.
///
/// Returns `Ok(None)` when more input is needed. The length is checked against `max_len` as soon
/// as the prefix is complete, before waiting for (or allocating) the body.
///
/// ```
/// use proto::frame::{encode_frame, read_frame};
/// let bytes = encode_frame(b"hello");
/// let frame = read_frame(&bytes, 1024).unwrap().unwrap();
/// assert_eq!(frame.body, b"hello");
/// assert_eq!(frame.consumed, 6);
/// assert!(read_frame(&bytes[..3], 1024).unwrap().is_none());
/// assert!(read_frame(&bytes, 4).is_err());
/// ```
pub fn read_frame(input: &[u8], max_len: usize) -> Result<Option<Frame<'_>>, FrameError> {
    let Some((len, prefix)) = read_uvarint(input)? else {
        return Ok(None);
    };
    if len > max_len as u64 {
        return Err(FrameError::TooLong { len, max: max_len });
    }
    // `len <= max_len`, so it fits in usize.
    let len = len as usize;
    let end = prefix.saturating_add(len);
    match input.get(prefix..end) {
        Some(body) => Ok(Some(Frame {
            body,
            consumed: end,
        })),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_varints() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            write_uvarint(value, &mut out);
            assert_eq!(out, bytes);
            assert_eq!(read_uvarint(bytes), Ok(Some((value, bytes.len()))));
        }
    }

    #[test]
    fn rejects_non_minimal_and_overlong_varints() {
        assert_eq!(read_uvarint(&[0x80, 0x00]), Err(FrameError::BadVarint));
        assert_eq!(read_uvarint(&[0xff; 10]), Err(FrameError::BadVarint));
        assert_eq!(read_uvarint(&[0xff; 9]), Err(FrameError::BadVarint));
        assert_eq!(read_uvarint(&[0xff; 8]), Ok(None));
    }

    #[test]
    fn huge_prefix_is_rejected_before_the_body_arrives() {
        let mut bytes = Vec::new();
        write_uvarint(1 << 40, &mut bytes);
        assert_eq!(
            read_frame(&bytes, 150 * 1024),
            Err(FrameError::TooLong {
                len: 1 << 40,
                max: 150 * 1024
            })
        );
    }

    proptest! {
        #[test]
        fn frames_round_trip(body in proptest::collection::vec(any::<u8>(), 0..2000), tail in proptest::collection::vec(any::<u8>(), 0..20)) {
            let mut bytes = encode_frame(&body);
            let framed = bytes.len();
            bytes.extend_from_slice(&tail);
            let frame = read_frame(&bytes, 2000).unwrap().unwrap();
            prop_assert_eq!(frame.body, &body[..]);
            prop_assert_eq!(frame.consumed, framed);
            // Every strict prefix asks for more input.
            for cut in 0..framed {
                prop_assert_eq!(read_frame(&bytes[..cut], 2000).unwrap(), None);
            }
        }

        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..100) {
            if let Ok(Some(frame)) = read_frame(&bytes, max) {
                prop_assert!(frame.body.len() <= max);
                prop_assert!(frame.consumed <= bytes.len());
            }
        }
    }
}
