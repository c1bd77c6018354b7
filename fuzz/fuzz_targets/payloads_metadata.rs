#![no_main]
//! Decode and verify a signed `ApplicationMetadataMessage` envelope; accepted ones re-encode to the same content.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    payloads::fuzzing::metadata(data);
});
