#![no_main]
//! Decode a prekey bundle, re-encode it, verify it, and run X3DH against every installation of a
//! verified one (`x3dh::fuzzing::bundle`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    x3dh::fuzzing::bundle(data);
});
