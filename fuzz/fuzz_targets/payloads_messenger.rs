#![no_main]
//! Feed a Messenger arbitrary relay and store frames and arbitrary Waku messages on every topic it follows; nothing may change.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    payloads::fuzzing::messenger_frames(data);
});
