#![no_main]
//! Decode `ChatMessage` and `EmojiReaction` payloads with validation; accepted ones round-trip.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    payloads::fuzzing::chat(data);
});
