#![no_main]
//! Store v3 service: arbitrary request frames against an archive.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::node::fuzzing::store_server(data);
});
