//! Replays the committed fuzz corpus (`fuzz/corpus/payloads_*`) through the fuzz bodies, so a
//! plain `cargo test` catches a regression on inputs the fuzzer once found interesting.
#![cfg(feature = "fuzzing")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        body(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "no corpus in {}", dir.display());
}

#[test]
fn corpus_replays() {
    replay("payloads_metadata", payloads::fuzzing::metadata);
    replay("payloads_chat", payloads::fuzzing::chat);
    replay("payloads_membership", payloads::fuzzing::membership);
    replay("payloads_segments", payloads::fuzzing::segments);
    replay("payloads_messenger", payloads::fuzzing::messenger_frames);
    replay("payloads_storage", payloads::fuzzing::storage_records);
}
