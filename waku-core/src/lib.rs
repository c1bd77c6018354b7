//! Waku v2 as sans-IO state machines: messages, topics, payload encryption, relay and the service protocols.
//!
//! This crate is part of the status-rs workspace; see ARCHITECTURE.md for where it sits. Its
//! contents arrive with the issue that builds it.
#![forbid(unsafe_code)]
