#![no_main]
//! A seed, a header mode and a list of network actions drive two real Double Ratchet sessions
//! (`ratchet::fuzzing::interaction`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ratchet::fuzzing::interaction(data);
});
