#![no_main]
//! Decode a Double Ratchet message; if it decodes, it must round-trip and real sessions must
//! reject it without changing (`ratchet::fuzzing::decode_message`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ratchet::fuzzing::decode_message(data);
});
