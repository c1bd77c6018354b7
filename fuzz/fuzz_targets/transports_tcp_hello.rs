#![no_main]
//! Decode a TCP transport Hello; what decodes must re-encode to the same bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    transports::fuzzing::tcp_hello(data);
});
