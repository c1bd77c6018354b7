#![no_main]
//! Decode an X3DH initial-message header, re-encode it, and answer it with a fixed responder
//! store, checking replay refusal and that a refusal changes nothing (`x3dh::fuzzing::header`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    x3dh::fuzzing::header(data);
});
