#![no_main]
//! Feed a byte stream to the libp2p framing decoder in several chunkings: the same frames and
//! end every time, within the cap and bounded memory, agreeing with `proto::frame`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    transports::fuzzing::libp2p_frames(data);
});
