#![no_main]
//! Filter v2 client: arbitrary answers, pushes, connections and clock steps.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::node::fuzzing::filter_client(data);
});
