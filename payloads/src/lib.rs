//! Status chat payloads and the sans-IO Messenger: the data & payloads layer of status-rs.
//!
//! - [`account`]: the BIP-39 seed phrase and the chat and database keys derived from it.
//!
//! The chat payloads and the Messenger arrive with the payloads issue.
#![forbid(unsafe_code)]

pub mod account;
