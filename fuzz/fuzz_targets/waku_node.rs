#![no_main]
//! A whole full node: arbitrary frames on every protocol from several peers, with the clock moving.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::node::fuzzing::node(data);
});
