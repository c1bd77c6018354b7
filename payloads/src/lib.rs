//! Status chat payloads and the sans-IO Messenger: the data & payloads layer of status-rs, and
//! the composition that carries a message through all five layers.
//!
//! # The life of a message, layer by layer
//!
//! Alice knows Bob's chat key and writes "hello". This is what happens to it, with the code that
//! does each step. The receiving side walks the same path backwards; every step drops what does
//! not check and counts it in [`messenger::MessengerStats`].
//!
//! **0. Accounts.** Both hold an [`account::Account`]: a BIP-39 phrase from which SLIP-0010
//! derives the Ed25519 chat key (the identity, `x3dh::IdentityKeyPair`) and the key of the local
//! database. Alice can check out of band that the key is Bob's with its three-word pseudonym and
//! the safety number of their conversation ([`verification`]).
//!
//! **1. P2P overlay.** Each [`messenger::Messenger`] owns a `waku_core::node::WakuNode`. By
//! default it is a *light node*, as the design article's phones are: it sends through lightpush
//! and receives through filter subscriptions and store queries served by full nodes; configured
//! with the relay capability it relays instead ([`messenger::MessengerConfig::waku`]). The driver
//! connects it to peers and feeds it frames and timeouts (`waku_core::net::Machine`).
//!
//! **2. Contact discovery and key bundles.** Every Messenger publishes its X3DH bundle on its
//! contact-code topic on start and every six hours ([`messenger::MessengerConfig::bundle_interval`])
//! and attaches it to its 1:1 messages. Alice calls [`messenger::Messenger::add_contact`]: she
//! follows Bob's contact-code topic and asks a store node for his recent bundles
//! ([`messenger::MessengerEvent::BundleReceived`]).
//!
//! **3. Data & payloads.** [`messenger::Messenger::send`] builds a [`chat::ChatMessage`] (text,
//! sticker, image or audio, validated) with the chat's Lamport clock ([`clock`]), and signs it in
//! the envelope of [`metadata`]; the envelope's signed bytes give the [`MessageId`]. Private-group
//! messages travel inside a `MembershipUpdateMessage` with the group's signed history
//! ([`group`]); public-chat messages skip steps 4 and 5 and are sealed with the channel's key
//! ([`public`]).
//!
//! **4. Data sync.** 1:1 and group messages go through an MVDS node (`mvds::Node`): the envelope
//! is an MVDS message of the 1:1 (or group) sync group, acknowledged by the peer
//! ([`messenger::MessengerEvent::Delivered`]) and retransmitted with backoff until it is.
//!
//! **5. Secure transport.** Each MVDS payload for Bob is encrypted by a Double Ratchet session
//! (`ratchet::Session`, header encryption on). The first time, Alice runs X3DH against Bob's
//! bundle (`x3dh::VerifiedBundle::initiate`) and repeats the X3DH header with every message until
//! Bob answers; Bob answers the header with his prekey store (`x3dh::PreKeyStore::respond`).
//! Without Bob's bundle Alice holds the payload and sends her own bundle so that Bob can start.
//! The result goes into a `ProtocolMessage` with Alice's bundle attached.
//!
//! **6. Transport privacy.** The `ProtocolMessage` is split into segments if it is too large for
//! one Waku message ([`segment`]), each sealed to Bob's X25519 key and signed by Alice
//! (`waku_core::payload`), and published on a topic: Bob's partitioned topic until Bob has
//! answered, then the negotiated topic both derive from their keys. Relays and store nodes see a
//! topic shared with many others and ciphertext.
//!
//! **7. Bob.** Bob's node receives the Waku message (filter push, relay, or a store query after
//! being offline: [`messenger::MessengerEvent::BackfillFinished`]), opens it, reassembles it,
//! decrypts it, hands it to MVDS (which acks it and drops duplicates), verifies the envelope and
//! the message, and reports [`messenger::MessengerEvent::MessageReceived`] with the verified
//! sender and a [`messenger::MessengerEvent::Notification`] hint. Everything is written through
//! the [`storage::Storage`] trait as it changes, so a restarted Messenger carries on.
//!
//! # Modules
//!
//! - [`account`]: the BIP-39 seed phrase and the chat and database keys derived from it.
//! - [`metadata`]: the signed envelope every payload travels in, and message ids ([`id`]).
//! - [`chat`]: chat messages (text, sticker, image, audio) and emoji reactions.
//! - [`clock`]: Lamport clocks that order a chat's messages.
//! - [`group`]: private groups, their signed membership events and the rules that apply them.
//! - [`public`]: public chats' topics and keys.
//! - [`segment`]: splitting payloads too large for one Waku message and reassembling them.
//! - [`verification`]: the three-word pseudonym and safety numbers of a chat key.
//! - [`messenger`]: the Messenger.
//! - [`storage`]: the storage trait and its in-memory backend.
//! - `fuzzing` (feature `fuzzing`): fuzz bodies for every decoder and for the Messenger.
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
