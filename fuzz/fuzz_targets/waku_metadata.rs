#![no_main]
//! Metadata: arbitrary requests and answers.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::node::fuzzing::metadata(data);
});
