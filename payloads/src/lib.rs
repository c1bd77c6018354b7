//! Status chat payloads and the sans-IO Messenger.
//!
//! This crate is part of the status-rs workspace; see ARCHITECTURE.md for where it sits. Its
//! contents arrive with the issue that builds it.
#![forbid(unsafe_code)]
