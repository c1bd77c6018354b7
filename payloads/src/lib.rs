//! Status chat payloads and the sans-IO Messenger: the data & payloads layer of status-rs.
//!
//! - [`account`]: the BIP-39 seed phrase and the chat and database keys derived from it.
//! - [`metadata`]: the signed envelope every payload travels in, and message ids.
//! - [`chat`]: chat messages (text, sticker, image, audio) and emoji reactions.
//! - [`clock`]: Lamport clocks that order a chat's messages.
//! - [`group`]: private groups, their signed membership events and the rules that apply them.
//! - [`segment`]: splitting payloads too large for one Waku message and reassembling them.
//! - [`verification`]: the three-word pseudonym and safety numbers of a chat key.
#![forbid(unsafe_code)]

pub mod account;
pub mod chat;
pub mod clock;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod group;
pub mod id;
pub mod messenger;
pub mod metadata;
pub mod public;
pub mod segment;
pub mod storage;
pub mod verification;

pub use id::MessageId;
