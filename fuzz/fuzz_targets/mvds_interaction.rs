#![no_main]
//! Sends, ticks, drops, duplicates, delays, partitions, crashes and restarts MVDS nodes as the
//! bytes say; checks exactly-once delivery throughout and full delivery after healing.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mvds::fuzzing::interaction(data);
});
