#![no_main]
//! Feeds arbitrary bytes to an MVDS node as a payload: refused bytes change nothing, accepted
//! ones leave the node producing valid payloads.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mvds::fuzzing::payload(data);
});
