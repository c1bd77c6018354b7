#![no_main]
//! Lightpush v3 and legacy v2 service: arbitrary request frames.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::node::fuzzing::lightpush_server(data);
});
