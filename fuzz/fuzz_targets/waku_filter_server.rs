#![no_main]
//! Filter v2 service: arbitrary subscribe requests, relayed messages and clock steps.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::node::fuzzing::filter_server(data);
});
