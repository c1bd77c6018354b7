#![no_main]
//! Store v3 client: arbitrary answers to a running query.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::node::fuzzing::store_client(data);
});
