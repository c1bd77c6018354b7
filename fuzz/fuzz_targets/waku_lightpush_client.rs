#![no_main]
//! Lightpush v3 client: arbitrary answers to pushes in flight.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::node::fuzzing::lightpush_client(data);
});
