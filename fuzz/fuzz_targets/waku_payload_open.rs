#![no_main]
//! Opens arbitrary bytes as sealed payloads of both modes, then seals and opens the input and
//! checks that one flipped bit is refused.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::fuzzing::payload_open(data);
});
