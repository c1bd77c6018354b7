#![no_main]
//! Open a Messenger on a storage holding arbitrary records; it errors or works, never panics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    payloads::fuzzing::storage_records(data);
});
