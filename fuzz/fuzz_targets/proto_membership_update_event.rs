#![no_main]
//! Decode, re-encode and decode again a `status::MembershipUpdateEvent`; the two decodings must agree.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proto::fuzzing::roundtrip::<proto::status::MembershipUpdateEvent>(data);
});
