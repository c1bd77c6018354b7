#![no_main]
//! ENR: arbitrary bytes as a node record (binary and text), and records signed from them.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::fuzzing::enr_decode(data);
});
