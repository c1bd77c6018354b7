//! Placeholder replaced by the agreement benchmark.
fn main() {}
