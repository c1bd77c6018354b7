//! Unsigned-varint length-prefixed frames on a libp2p stream (WIRE.md B.1, B.27).
//!
//! [`read_frame`] is a thin loop over the sans-IO [`FrameDecoder`] (the code the fuzz target
//! `transports_libp2p_frames` exercises): the length is checked against the protocol's cap
//! before any of the body is read; the body buffer grows with what actually arrives (first
//! [`FIRST_STEP`] bytes, then doubling, in steps of at most [`READ_CHUNK`]), so a peer that
//! announces a large frame and sends nothing costs [`FIRST_STEP`] bytes; nothing past the frame
//! is read from the stream.
//!
//! [`FIRST_STEP`]: crate::framing::FIRST_STEP

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::framing::{FrameDecodeError, FrameDecoder};

/// The most of a body read (and allocated) in one step.
pub const READ_CHUNK: usize = crate::framing::DEFAULT_STEP;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameIoError {
    /// The announced length is above the protocol's cap.
    #[error("frame of {len} bytes is over the cap of {max}")]
    TooLong {
        /// Announced length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// The length prefix is not a valid unsigned varint.
    #[error("malformed length prefix")]
    BadPrefix,
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The stream failed.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
}

impl From<FrameDecodeError> for FrameIoError {
    fn from(e: FrameDecodeError) -> Self {
        match e {
            FrameDecodeError::TooLong { len, max } => FrameIoError::TooLong { len, max },
            FrameDecodeError::Truncated => FrameIoError::Truncated,
            // `BadPrefix`, and any reason added later: the prefix cannot be trusted.
            _ => FrameIoError::BadPrefix,
        }
    }
}

/// Reads one frame of at most `max` bytes; `Ok(None)` when the stream ends cleanly between
/// frames.
pub async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameIoError> {
    let mut decoder = FrameDecoder::with_step(max, READ_CHUNK);
    loop {
        let got = stream.read(decoder.spare()).await?;
        if got == 0 {
            decoder.finish()?;
            return Ok(None);
        }
        if let Some(frame) = decoder.commit(got)? {
            return Ok(Some(frame));
        }
    }
}

/// Writes one frame (length prefix and body) and flushes.
pub async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    body: &[u8],
) -> std::io::Result<()> {
    let framed = proto::frame::encode_frame(body);
    stream.write_all(&framed).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn round_trip_and_clean_end() {
        let mut buf = Cursor::new(Vec::new());
        block_on(write_frame(&mut buf, b"hello")).unwrap();
        block_on(write_frame(&mut buf, &[7u8; 200_000])).unwrap();
        let mut r = Cursor::new(buf.into_inner());
        assert_eq!(
            block_on(read_frame(&mut r, 1 << 20)).unwrap().unwrap(),
            b"hello"
        );
        assert_eq!(
            block_on(read_frame(&mut r, 1 << 20)).unwrap().unwrap(),
            vec![7u8; 200_000]
        );
        assert!(block_on(read_frame(&mut r, 1 << 20)).unwrap().is_none());
    }

    #[test]
    fn over_cap_refused_before_body() {
        let mut buf = Cursor::new(Vec::new());
        block_on(write_frame(&mut buf, &[1u8; 100])).unwrap();
        let mut r = Cursor::new(buf.into_inner());
        assert!(matches!(
            block_on(read_frame(&mut r, 99)),
            Err(FrameIoError::TooLong { len: 100, max: 99 })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]

        /// Any sequence of frames reads back as written, each checked against the cap.
        #[test]
        fn frames_round_trip(bodies in proptest::collection::vec(
            proptest::collection::vec(proptest::num::u8::ANY, 0..3000), 0..8), cap in 0usize..4000) {
            let mut buf = Cursor::new(Vec::new());
            for b in &bodies {
                block_on(write_frame(&mut buf, b)).unwrap();
            }
            let mut r = Cursor::new(buf.into_inner());
            for b in &bodies {
                match block_on(read_frame(&mut r, cap)) {
                    Ok(Some(got)) => proptest::prop_assert_eq!(&got, b),
                    Err(FrameIoError::TooLong { len, .. }) => {
                        proptest::prop_assert!(b.len() > cap);
                        proptest::prop_assert_eq!(len, b.len() as u64);
                        return Ok(());
                    }
                    other => proptest::prop_assert!(false, "{:?}", other.map(|o| o.map(|v| v.len()))),
                }
            }
            proptest::prop_assert!(block_on(read_frame(&mut r, cap)).unwrap().is_none());
        }

        /// Arbitrary bytes never panic, and a frame read is never longer than the cap.
        #[test]
        fn garbage_is_refused_or_bounded(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512), cap in 0usize..600) {
            let mut r = Cursor::new(bytes);
            while let Ok(Some(f)) = block_on(read_frame(&mut r, cap)) {
                proptest::prop_assert!(f.len() <= cap);
            }
        }
    }

    #[test]
    fn truncated_and_bad_prefix() {
        let mut r = Cursor::new(vec![5u8, 1, 2]);
        assert!(matches!(
            block_on(read_frame(&mut r, 100)),
            Err(FrameIoError::Truncated)
        ));
        let mut r = Cursor::new(vec![0xffu8; 12]);
        assert!(matches!(
            block_on(read_frame(&mut r, 100)),
            Err(FrameIoError::BadPrefix)
        ));
        let mut r = Cursor::new(vec![0x80u8]);
        assert!(matches!(
            block_on(read_frame(&mut r, 100)),
            Err(FrameIoError::Truncated)
        ));
    }
}
