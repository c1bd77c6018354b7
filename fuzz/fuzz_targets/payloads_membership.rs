#![no_main]
//! Decode `MembershipUpdateMessage`s and signed events and merge them into a group; invariants hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    payloads::fuzzing::membership(data);
});
