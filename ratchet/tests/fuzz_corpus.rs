//! Replays the committed fuzz corpus (`fuzz/corpus/ratchet_*`) through the fuzz bodies, so the
//! targets' checks run in every `cargo test`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ratchet::fuzzing::{decode_message, interaction};
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn interaction_corpus() {
    let files = corpus("ratchet_interaction");
    assert!(files.len() >= 5);
    for (name, data) in files {
        println!("{name}");
        interaction(&data);
    }
}

#[test]
fn decode_message_corpus() {
    let files = corpus("ratchet_decode_message");
    assert!(files.len() >= 4);
    for (name, data) in files {
        println!("{name}");
        decode_message(&data);
    }
    // The decoder also sees the plain corpus entries truncated at every length.
    for (_, data) in corpus("ratchet_decode_message") {
        for len in 0..data.len() {
            decode_message(&data[..len]);
        }
    }
}
