//! Unsigned-varint length-prefixed frames on a libp2p stream (WIRE.md B.1, B.27).
//!
//! The length is checked against the protocol's cap before any of the body is read, and the
//! body buffer grows with what actually arrives (in [`READ_CHUNK`] steps), so a peer that
//! announces a large frame and sends nothing costs nothing.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most bytes of a varint length prefix (a `u64` needs at most 10; lengths above
/// [`proto::frame::MAX_VARINT_LEN`] bytes are refused as too long anyway).
const MAX_PREFIX_LEN: usize = 10;

/// How much of a body is read (and allocated) at a time.
pub const READ_CHUNK: usize = 64 * 1024;

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

/// Reads one frame of at most `max` bytes; `Ok(None)` when the stream ends cleanly between
/// frames.
pub async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameIoError> {
    let mut prefix = [0u8; MAX_PREFIX_LEN];
    let mut n = 0;
    let len = loop {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 {
            return if n == 0 {
                Ok(None)
            } else {
                Err(FrameIoError::Truncated)
            };
        }
        let slot = prefix.get_mut(n).ok_or(FrameIoError::BadPrefix)?;
        *slot = byte[0];
        n += 1;
        if byte[0] & 0x80 == 0 {
            let head = prefix.get(..n).ok_or(FrameIoError::BadPrefix)?;
            match proto::frame::read_uvarint(head) {
                Ok(Some((len, _))) => break len,
                _ => return Err(FrameIoError::BadPrefix),
            }
        }
    };
    if len > max as u64 {
        return Err(FrameIoError::TooLong { len, max });
    }
    let len = usize::try_from(len).map_err(|_| FrameIoError::BadPrefix)?;
    let mut body = Vec::with_capacity(len.min(READ_CHUNK));
    while body.len() < len {
        let start = body.len();
        let step = (len - start).min(READ_CHUNK);
        body.resize(start + step, 0);
        let chunk = body.get_mut(start..).ok_or(FrameIoError::Truncated)?;
        let got = stream.read(chunk).await?;
        if got == 0 {
            return Err(FrameIoError::Truncated);
        }
        body.truncate(start + got);
    }
    Ok(Some(body))
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
