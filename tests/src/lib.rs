//! Multi-node scenarios for status-rs live in `tests/tests/`; this library holds shared rig code.
#![forbid(unsafe_code)]
