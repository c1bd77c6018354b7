#![no_main]
//! Peer exchange: arbitrary requests to the service and answers to the client.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waku_core::node::fuzzing::peer_exchange(data);
});
