//! X3DH key agreement without one-time prekeys, status-rs profile.
//!
//! This crate is part of the status-rs workspace; see ARCHITECTURE.md for where it sits. Its
//! contents arrive with the issue that builds it.
#![forbid(unsafe_code)]
