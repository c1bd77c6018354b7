#![no_main]
//! Reassemble arbitrary segments within bounds; split-then-reassemble returns the input.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    payloads::fuzzing::segments(data);
});
