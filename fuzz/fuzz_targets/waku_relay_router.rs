#![no_main]
//! Runs an operation program (peers, raw and well-formed RPC frames, subscriptions, publishing,
//! time) against one relay router; it must never panic, exceed a limit or emit a bad frame.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::relay::fuzzing::router_interaction(data);
});
