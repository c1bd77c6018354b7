#![no_main]
//! Feed a plaintext stream to the TCP transport's packet decoder in chunks; the buffer must stay
//! bounded and every decoded packet must survive a re-encoding.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    transports::fuzzing::tcp_packets(data);
});
