//! Fuzz bodies, shared by the cargo-fuzz targets in `fuzz/` and by tests that replay a corpus.
//!
//! A fuzz body panics when it finds a bug; that is how the fuzzer learns of it.
#![allow(clippy::expect_used, clippy::panic)]

use prost::Message;

/// Decodes `data` as `M`; if that works, re-encodes, decodes again and checks that nothing
/// changed (the decoded values are equal and the encoding is stable).
pub fn roundtrip<M: Message + Default + PartialEq + core::fmt::Debug>(data: &[u8]) {
    let Ok(first) = M::decode(data) else { return };
    let bytes = first.encode_to_vec();
    let second = M::decode(bytes.as_slice()).expect("re-decoding our own encoding failed");
    assert_eq!(first, second, "decode(encode(m)) != m");
    assert_eq!(second.encode_to_vec(), bytes, "encoding is not stable");
}
