#![no_main]
//! Decodes arbitrary bytes as a validated Waku message; what decodes must re-encode to the same
//! message with the same hash.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::fuzzing::message_decode(data);
});
