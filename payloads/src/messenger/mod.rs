//! The Messenger: a sans-IO machine that carries a chat message through all five layers.
//!
//! It owns a Waku node (`waku_core::node::WakuNode`, a light node by default), the x3dh
//! prekey store, the ratchet sessions of every contact, an MVDS node and the chats, and routes
//! between them. A driver runs it like any other [`Machine`]: frames and timeouts in,
//! transmits and [`MessengerEvent`]s out; the application calls its commands
//! ([`Messenger::send`], [`Messenger::add_contact`], [`Messenger::create_group`], …).
//!
//! # Topics
//!
//! | topic | who listens | what travels | Waku payload encryption |
//! |---|---|---|---|
//! | own contact code | contacts | our bundle, on start and every [`MessengerConfig::bundle_interval`] | symmetric, key from the topic name |
//! | own partitioned | us | first contact: X3DH initial messages, or our bundle alone | asymmetric to our key |
//! | negotiated (per contact) | both parties | everything once each side has heard from the other | asymmetric to the recipient |
//! | public chat | members | signed chat messages | symmetric, key from the channel name |
//!
//! The negotiated topic's secret is the X25519 agreement of the two identity keys, so both
//! sides can compute it as soon as they know each other; a sender switches to it once it has
//! decrypted a message from the peer (proof that the peer knows it, and so listens there).
//!
//! # One private message
//!
//! `ChatMessage` → signed envelope ([`crate::metadata`]) → MVDS message (`mvds::Node::send`,
//! acknowledged and retransmitted) → MVDS payload → Double Ratchet message (with the X3DH header
//! until the peer answers) → `ProtocolMessage { installation_id, bundles: [our bundle],
//! encrypted_message: { their installation: … } }` → segments if too large ([`crate::segment`]) →
//! Waku payload sealed to the recipient's X25519 key and signed by us (so the recipient, and only
//! it, learns who sent it) → `WakuMessage` on the topic above → lightpush (or relay).
//! Receiving walks back up; every step drops what does not check and counts it in
//! [`MessengerStats`] (`undecryptable` also counts replays, such as a message pushed twice when
//! a lightpush answer was lost).
//!
//! # Storage
//!
//! State is written through [`Storage`] as it changes (see [`crate::storage::Table`] for what
//! goes where); the MVDS node keeps its own `mvds::SyncStore`. [`Messenger::new`] resumes from
//! whatever the storage holds.

mod codec;
mod secure;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use mvds::{GroupId, Mode, SyncStore};
use prost::Message as _;
use proto::secure::{EncryptedMessageProtocol, ProtocolMessage};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use ratchet::{RatchetKeyPair, RatchetPublicKey, Session, SessionConfig};
use waku_core::lightpush::{LightPushClientEvent, PushId};
use waku_core::message::{MessageHash, WakuMessage};
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use waku_core::node::{NodeError, NodeEvent, Published, WakuNode, WakuNodeConfig};
use waku_core::payload::{self as wp, RecipientKey, SymmetricKey};
use waku_core::peer_exchange::PeerExchangeClientEvent;
use waku_core::relay::PublishError;
use waku_core::roles::Capabilities;
use waku_core::store::{QueryLimits, StoreClientEvent, StoreQuery};
use waku_core::topic::status::StatusTopic;
use waku_core::topic::{ContentTopic, PubsubTopic};
use x3dh::{
    Bundle, BundleConfig, IdentityKeyPair, InitialHeader, InstallationId, PreKeyStore,
    PreKeyStoreConfig, PublicIdentity,
};
use zeroize::Zeroizing;

use self::codec::{Reader, Writer};
use self::secure::{Conversation, SessionEntry};
use crate::account::Account;
use crate::chat::{
    Audio, ChatMessage, Content, Emoji, EmojiReaction, Image, MessageType, Reactions, Sticker,
    ValidationError,
};
use crate::clock::{self, LamportClock};
use crate::group::{
    Group, GroupEntity, GroupError, GroupEvent, GroupEventKind, GroupState, MembershipUpdate,
};
use crate::id::{MessageId, keccak256};
use crate::metadata::{PayloadType, SignError, SignedPayload};
use crate::public::{ChannelNameError, PublicChat};
use crate::segment::{self, Reassembler};
use crate::storage::{Dump, MemoryStorage, Storage, StorageError, StorageOp, Table};
use crate::verification;

pub use self::secure::{MAX_OUTBOX_PER_CONTACT, MAX_SESSIONS_PER_CONTACT};

/// An MVDS peer: the 32-byte chat key.
pub type PeerKey = [u8; 32];

/// Most events waiting for [`Messenger::poll_event`]; beyond it the oldest are dropped (the
/// chat log still has every message).
pub const MAX_PENDING_EVENTS: usize = 65_536;

/// Most Waku messages waiting for relay peers (published while none were subscribed); the
/// oldest are dropped first (MVDS retransmits private messages).
pub const MAX_UNSENT: usize = 1024;

/// Most Waku message hashes remembered to skip duplicates (relay and store deliver the same
/// message more than once). Beyond it the oldest are forgotten; a duplicate is then caught by
/// the ratchet, MVDS or the chat log.
pub const MAX_SEEN_WAKU: usize = 65_536;

/// Most sent MVDS messages whose acknowledgement is tracked for [`MessengerEvent::Delivered`].
pub const MAX_TRACKED_SENDS: usize = 65_536;

/// Most messages kept per chat in memory (the storage keeps all); the oldest by clock go first.
pub const MAX_MESSAGES_PER_CHAT: usize = 100_000;

/// Most contacts (added or having written to us).
pub const MAX_CONTACTS: usize = 10_000;

/// Most chats (1:1, public and groups together).
pub const MAX_CHATS: usize = 10_000;

/// Largest `ProtocolMessage` accepted: an MVDS payload (`mvds::MAX_PAYLOAD_BYTES`) with the
/// ratchet, X3DH and bundle overhead, and room to spare.
pub const MAX_PROTOCOL_MESSAGE_LEN: usize = 512 * 1024;

/// Most bundles read from one `ProtocolMessage`.
pub const MAX_ATTACHED_BUNDLES: usize = 4;

/// Most content topics per store query (status-go's figure, WIRE.md B.8).
pub const STORE_TOPICS_PER_QUERY: usize = 10;

/// Bytes the Waku payload layer and the Waku message add around a piece at most: the sealing
/// (mode, key or nonce, tag, length header, signature and up to a padding block) and the
/// message's own fields. Subtracted from the segment size.
pub const ENVELOPE_OVERHEAD: usize = 1024;

/// How long a failed store query waits before it is asked again.
pub const BACKFILL_RETRY: Duration = Duration::from_secs(30);

/// Most store queries waiting to be sent (for want of a store peer, or to be retried).
pub const MAX_PENDING_BACKFILLS: usize = 256;

/// How often the time we were last online is written while online, so a crash loses at most
/// this much of the store window to query after restart.
pub const ONLINE_MARK_INTERVAL: Duration = Duration::from_secs(300);

/// Settings. `Default` gives the values documented on each field.
#[derive(Debug, Clone)]
pub struct MessengerConfig {
    /// The Waku node the Messenger runs on: its capabilities (a light node by default, as
    /// the design article's mobile clients: it sends with lightpush and receives with filter
    /// and store; with the relay capability it relays instead), cluster and shards. Default:
    /// a light node on the Status cluster 16, shard 32.
    pub waku: WakuNodeConfig,
    /// The pubsub topic (shard) everything is published on; a shard of `waku`'s cluster.
    /// Default: `/waku/2/rs/16/32`, the Status cluster's default shard (WIRE.md B.14).
    pub pubsub_topic: PubsubTopic,
    /// How often the bundle is republished on the contact-code topic. Default: 6 hours (WIRE.md
    /// B.18).
    pub bundle_interval: Duration,
    /// The largest Waku message on the network. Default: 150 KiB (WIRE.md B.1).
    pub max_message_size: usize,
    /// Payloads larger than this share (numerator, denominator) of `max_message_size` are
    /// segmented. Default: ¾, as status-go.
    pub segment_share: (usize, usize),
    /// How often the MVDS node ticks while it has work. Default: 300 ms (status-go).
    pub mvds_epoch: Duration,
    /// MVDS retransmission settings. Default: `mvds::Config::default()`.
    pub mvds: mvds::Config,
    /// How far back to fetch history when nothing says when we were last online (first start,
    /// a newly added contact's bundle, a newly joined public chat). Default: 1 day.
    pub initial_history: Duration,
    /// Extra time fetched before the moment we went offline, for clock skew and messages in
    /// flight. Default: 60 s (status-go's tolerance, WIRE.md B.8).
    pub backfill_margin: Duration,
    /// Least time between two bundle-only messages to the same contact while its bundle is
    /// unknown. Default: 60 s.
    pub bundle_request_interval: Duration,
    /// Prekey rotation.
    pub prekeys: PreKeyStoreConfig,
    /// Which received bundles are accepted.
    pub bundles: BundleConfig,
    /// Ratchet options; both sides must agree. Default: header encryption on.
    pub session: SessionConfig,
    /// Ask each newly connected peer-exchange server for up to this many peer records,
    /// reported as [`MessengerEvent::PeersDiscovered`] for the application to dial (a light
    /// node that knows only a bootstrap node finds its service nodes this way). Default: `None`,
    /// never ask.
    pub peer_exchange: Option<u64>,
}

impl Default for MessengerConfig {
    fn default() -> Self {
        MessengerConfig {
            waku: WakuNodeConfig::new(Capabilities::LIGHT, 16, vec![32]),
            pubsub_topic: PubsubTopic::static_shard(16, 32)
                .unwrap_or_else(|_| PubsubTopic::default_waku()),
            bundle_interval: Duration::from_secs(6 * 3600),
            max_message_size: waku_core::message::MAX_MESSAGE_SIZE,
            segment_share: (3, 4),
            mvds_epoch: mvds::STATUS_GO_EPOCH,
            mvds: mvds::Config::default(),
            initial_history: Duration::from_secs(24 * 3600),
            backfill_margin: Duration::from_secs(60),
            bundle_request_interval: Duration::from_secs(60),
            prekeys: PreKeyStoreConfig::default(),
            bundles: BundleConfig::default(),
            session: SessionConfig::with_header_encryption(),
            peer_exchange: None,
        }
    }
}

/// A chat.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChatId {
    /// The 1:1 chat with a contact.
    OneToOne(PublicIdentity),
    /// A public chat, by channel name.
    Public(String),
    /// A private group, by group chat id.
    Group(String),
}

impl ChatId {
    fn storage_key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            ChatId::OneToOne(k) => {
                out.push(1);
                out.extend_from_slice(k.ed25519_bytes());
            }
            ChatId::Public(n) => {
                out.push(2);
                out.extend_from_slice(n.as_bytes());
            }
            ChatId::Group(g) => {
                out.push(3);
                out.extend_from_slice(g.as_bytes());
            }
        }
        out
    }

    fn from_storage_key(bytes: &[u8]) -> Option<ChatId> {
        let (&kind, rest) = bytes.split_first()?;
        match kind {
            1 => Some(ChatId::OneToOne(PublicIdentity::from_bytes(rest).ok()?)),
            2 => Some(ChatId::Public(String::from_utf8(rest.to_vec()).ok()?)),
            3 => Some(ChatId::Group(String::from_utf8(rest.to_vec()).ok()?)),
            _ => None,
        }
    }
}

/// A message in a chat's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEntry {
    /// Its id.
    pub id: MessageId,
    /// Its verified sender.
    pub sender: PublicIdentity,
    /// The message.
    pub message: ChatMessage,
    /// Whether we sent it.
    pub outgoing: bool,
    /// Who acknowledged it (MVDS acks; 1:1 and groups only).
    pub delivered_to: BTreeSet<PublicIdentity>,
}

/// What a message to send carries; the clock, timestamp, chat id and type are filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The text, or a caption.
    pub text: String,
    /// The content.
    pub content: Content,
    /// The message replied to.
    pub response_to: Option<MessageId>,
}

impl Draft {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Draft {
            text: text.into(),
            content: Content::Text,
            response_to: None,
        }
    }

    /// A sticker.
    pub fn sticker(sticker: Sticker) -> Self {
        Draft {
            text: String::new(),
            content: Content::Sticker(sticker),
            response_to: None,
        }
    }

    /// An image with an optional caption.
    pub fn image(image: Image, caption: impl Into<String>) -> Self {
        Draft {
            text: caption.into(),
            content: Content::Image(image),
            response_to: None,
        }
    }

    /// An audio clip.
    pub fn audio(audio: Audio) -> Self {
        Draft {
            text: String::new(),
            content: Content::Audio(audio),
            response_to: None,
        }
    }

    /// Marks the draft as a reply.
    #[must_use]
    pub fn reply_to(mut self, id: MessageId) -> Self {
        self.response_to = Some(id);
        self
    }
}

/// What the Messenger reports to the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MessengerEvent {
    /// A new chat message, with its verified sender (each message once).
    MessageReceived {
        /// The chat.
        chat: ChatId,
        /// The message.
        entry: ChatEntry,
    },
    /// A reaction (or its retraction) that changed what a message shows.
    ReactionReceived {
        /// The chat.
        chat: ChatId,
        /// Its verified sender.
        sender: PublicIdentity,
        /// The reaction.
        reaction: EmojiReaction,
    },
    /// A contact acknowledged one of our messages (MVDS ack).
    Delivered {
        /// The chat.
        chat: ChatId,
        /// Our message.
        id: MessageId,
        /// Who acknowledged it.
        to: PublicIdentity,
    },
    /// MVDS gave up sending a message to a contact (only with a send limit configured).
    SendExpired {
        /// The chat.
        chat: ChatId,
        /// Our message.
        id: MessageId,
        /// The contact.
        to: PublicIdentity,
    },
    /// Someone we have not added wrote to us for the first time.
    ContactRequest {
        /// Their chat key.
        from: PublicIdentity,
    },
    /// A contact's bundle arrived (we can now start a session with them).
    BundleReceived {
        /// The contact.
        from: PublicIdentity,
    },
    /// A secure session with a contact carried its first message.
    SessionEstablished {
        /// The contact.
        with: PublicIdentity,
    },
    /// A private group's membership or name changed.
    GroupMembershipChanged {
        /// The group chat id.
        chat_id: String,
        /// The new state.
        state: GroupState,
    },
    /// A hint for the application to notify the user (the design article's step 7).
    Notification {
        /// The chat.
        chat: ChatId,
        /// The sender.
        sender: PublicIdentity,
        /// The sender's three-word pseudonym.
        pseudonym: String,
    },
    /// A store query for missed messages finished.
    BackfillFinished {
        /// Waku messages the store returned.
        messages: usize,
        /// Whether it ended well.
        ok: bool,
    },
    /// The relay asks the driver to hang up on a misbehaving peer.
    DisconnectPeer {
        /// The peer.
        peer: PeerId,
    },
    /// A peer-exchange server answered (see [`MessengerConfig::peer_exchange`]): peer records
    /// to dial, as it sent them (on the Waku network, RLP-encoded ENRs:
    /// `waku_core::enr::Enr::decode`).
    PeersDiscovered {
        /// The server.
        from: PeerId,
        /// The records, each non-empty and bounded by `waku_core::peer_exchange::MAX_RECORD_LEN`.
        records: Vec<Vec<u8>>,
    },
    /// The storage failed; the Messenger no longer writes to it. Reopen it.
    StorageFailed(StorageError),
}

/// Counters of what the Messenger dropped and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessengerStats {
    /// Waku messages received (relay and store).
    pub waku_received: u64,
    /// ... of which were duplicates.
    pub waku_duplicates: u64,
    /// ... on topics we do not follow.
    pub waku_unrouted: u64,
    /// ... that no key of ours opens.
    pub waku_unopened: u64,
    /// Segments refused by the reassembler.
    pub segments_rejected: u64,
    /// `ProtocolMessage`s that did not decode.
    pub protocol_malformed: u64,
    /// Encrypted messages no session decrypts.
    pub undecryptable: u64,
    /// Decrypted payloads that are not MVDS.
    pub not_mvds: u64,
    /// Envelopes that do not verify, or whose signer is not the sender.
    pub envelopes_rejected: u64,
    /// Typed payloads that are malformed or break a rule (clock, chat id, type, membership).
    pub payloads_rejected: u64,
    /// Bundles refused.
    pub bundles_rejected: u64,
    /// Waku messages published.
    pub published: u64,
    /// Waku messages that could not be published (dropped from the unsent queue, or refused).
    pub publish_failed: u64,
}

/// Why [`Messenger::new`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The storage belongs to another account.
    #[error("the storage belongs to another chat key")]
    WrongAccount,
    /// The MVDS store failed.
    #[error("mvds store: {0}")]
    Mvds(#[from] mvds::StoreError),
    /// The Waku node could not be built.
    #[error("waku node: {0}")]
    Waku(#[from] NodeError),
}

/// Why a message could not be sent. Nothing was sent or stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The chat does not exist (not joined, not created, not a group we belong to).
    #[error("unknown chat")]
    UnknownChat,
    /// We are not (or no longer) a member of the group.
    #[error("not a member of the group")]
    NotAMember,
    /// The message breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The message does not fit what the chat can carry.
    #[error("message of {len} bytes exceeds {max}")]
    TooLarge {
        /// Its encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// MVDS refused the message (backlog full, or its store failed).
    #[error("mvds: {0}")]
    Sync(String),
    /// The storage failed earlier.
    #[error("storage failed")]
    Storage,
}

/// Why a group command failed. Nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupCommandError {
    /// No such group.
    #[error("unknown group")]
    UnknownGroup,
    /// The event does not apply.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// Sending the update failed.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// Why a public chat could not be joined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// Not a channel name.
    #[error(transparent)]
    Name(#[from] ChannelNameError),
    /// [`MAX_CHATS`] chats exist.
    #[error("too many chats")]
    TooManyChats,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// Sealed to our key: our partitioned topic and negotiated topics.
    Private,
    /// A contact's contact-code topic.
    ContactCode(PublicIdentity),
    /// A public chat.
    Public(String),
}

#[derive(Default)]
struct Contact {
    added: bool,
    bundle: Option<Bundle>,
}

#[derive(Default)]
struct Chat {
    clock: LamportClock,
    by_id: BTreeMap<MessageId, u64>,
    log: BTreeMap<(u64, MessageId), ChatEntry>,
    reactions: Reactions,
}

/// The sans-IO Messenger (see the module docs).
///
/// Contract, as for every status-rs machine: `now` never goes backwards; inputs never panic
/// and never fail because of what a peer sent (bad input is counted in [`MessengerStats`]);
/// commands return typed errors; outputs queue until drained.
pub struct Messenger<S: Storage = MemoryStorage, M: SyncStore<PeerKey> = mvds::MemoryStore<PeerKey>>
{
    config: MessengerConfig,
    me: PublicIdentity,
    identity: IdentityKeyPair,
    signing: ed25519_dalek::SigningKey,
    recipient: RecipientKey,
    installation: InstallationId,
    prekeys: PreKeyStore,
    x3dh_key: x3dh::PickleKey,
    ratchet_key: ratchet::PickleKey,
    rng: ChaCha20Rng,
    waku: WakuNode,
    mvds: mvds::Node<PeerKey, M>,
    storage: S,
    storage_failed: bool,
    service_peers: BTreeSet<PeerId>,
    store_peers: BTreeSet<PeerId>,
    unsent: VecDeque<(ContentTopic, Vec<u8>)>,
    pushes: BTreeMap<PushId, (ContentTopic, Vec<u8>)>,
    conversations: BTreeMap<PublicIdentity, Conversation>,
    contacts: BTreeMap<PublicIdentity, Contact>,
    chats: BTreeMap<ChatId, Chat>,
    groups: BTreeMap<String, Group>,
    public: BTreeMap<String, PublicChat>,
    routes: BTreeMap<ContentTopic, Vec<Route>>,
    reassembler: Reassembler,
    seen_waku: BTreeSet<MessageHash>,
    seen_order: VecDeque<MessageHash>,
    tracked: BTreeMap<mvds::MessageId, (ChatId, MessageId)>,
    tracked_order: VecDeque<mvds::MessageId>,
    // Orders the persisted outbox, so a restart evicts the oldest first as before.
    tracked_seq: u64,
    backfills: Vec<(Vec<ContentTopic>, i64)>,
    running_backfills: BTreeMap<waku_core::store::QueryId, (Vec<ContentTopic>, i64, usize)>,
    next_backfill_retry: Option<Instant>,
    offline_since_ms: Option<u64>,
    own_bundle: Option<(u64, Bundle)>,
    events: VecDeque<MessengerEvent>,
    next_tick: Option<Instant>,
    next_bundle: Option<Instant>,
    next_online_mark: Option<Instant>,
    last_now: Now,
    stats: MessengerStats,
}

impl<S: Storage, M: SyncStore<PeerKey>> core::fmt::Debug for Messenger<S, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Messenger")
            .field("me", &self.me)
            .field("contacts", &self.contacts.len())
            .field("chats", &self.chats.len())
            .field("service_peers", &self.service_peers.len())
            .finish_non_exhaustive()
    }
}

fn now_ms(now: Now) -> u64 {
    u64::try_from(now.unix_millis()).unwrap_or(0)
}

fn sub_seed(seed: &[u8; 32], label: &[u8]) -> [u8; 32] {
    keccak256(&[b"status-rs messenger seed", label, seed])
}

fn group_sync_id(chat_id: &str) -> GroupId {
    GroupId(keccak256(&[b"status-rs private group", chat_id.as_bytes()]))
}

fn identity_of(peer: &PeerKey) -> Option<PublicIdentity> {
    PublicIdentity::from_bytes(peer).ok()
}

/// The negotiated topic between two identities: the Status scheme's topic of the X25519
/// agreement of their identity keys. `None` if the agreement is not contributory.
fn negotiated_topic(identity: &IdentityKeyPair, peer: &PublicIdentity) -> Option<StatusTopic> {
    use x3dh::x25519_dalek::{PublicKey, StaticSecret};
    let secret = StaticSecret::from(*identity.x25519_secret_bytes());
    let shared = secret.diffie_hellman(&PublicKey::from(peer.x25519().to_bytes()));
    if !shared.was_contributory() {
        return None;
    }
    Some(StatusTopic::negotiated(shared.as_bytes()))
}

impl<S: Storage, M: SyncStore<PeerKey>> Messenger<S, M> {
    /// Opens the Messenger of `account` on `storage` (empty for a new installation) and the
    /// MVDS store `sync_store`. `seed` seeds every random draw (use a fresh OS-random seed per
    /// start in an application; tests print theirs).
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn new(
        config: MessengerConfig,
        account: &Account,
        mut storage: S,
        sync_store: M,
        seed: [u8; 32],
        now: Now,
    ) -> Result<Self, OpenError> {
        let mut rng = ChaCha20Rng::from_seed(sub_seed(&seed, b"rng"));
        let chat_seed = account.chat_secret_key();
        let identity = IdentityKeyPair::from_seed(&chat_seed);
        let signing = ed25519_dalek::SigningKey::from_bytes(&chat_seed);
        let recipient = RecipientKey::from_signing_key(&signing);
        let me = *identity.public();
        let db = account.database_key();
        let x3dh_key = x3dh::PickleKey::new(keccak256(&[b"status-rs x3dh pickle", db.as_slice()]));
        let ratchet_key =
            ratchet::PickleKey::from(keccak256(&[b"status-rs ratchet pickle", db.as_slice()]));
        let dump = storage.load()?;
        let meta = dump.get(&Table::Meta);
        let meta_get = |k: &[u8]| meta.and_then(|m| m.get(k));
        let mut ops = Vec::new();
        if let Some(stored) = meta_get(b"chat_key") {
            if stored.as_slice() != me.ed25519_bytes() {
                return Err(OpenError::WrongAccount);
            }
        } else {
            ops.push(StorageOp::Put {
                table: Table::Meta,
                key: b"chat_key".to_vec(),
                value: me.ed25519_bytes().to_vec(),
            });
        }
        let installation = match meta_get(b"installation")
            .and_then(|v| String::from_utf8(v.clone()).ok())
            .and_then(|s| InstallationId::new(s).ok())
        {
            Some(i) => i,
            None => {
                let id = new_uuid(&mut rng);
                let i = InstallationId::new(id).map_err(|e| StorageError::Corrupt {
                    table: Table::Meta,
                    reason: e.to_string(),
                })?;
                ops.push(StorageOp::Put {
                    table: Table::Meta,
                    key: b"installation".to_vec(),
                    value: i.as_str().as_bytes().to_vec(),
                });
                i
            }
        };
        let offline_since_ms = meta_get(b"last_online_ms").and_then(|v| {
            let a: [u8; 8] = v.as_slice().try_into().ok()?;
            Some(u64::from_be_bytes(a))
        });
        let prekeys = match dump
            .get(&Table::PreKeys)
            .and_then(|t| t.get(b"store".as_slice()))
        {
            Some(p) => PreKeyStore::unpickle(p, &x3dh_key, config.prekeys).map_err(|e| {
                StorageError::Corrupt {
                    table: Table::PreKeys,
                    reason: e.to_string(),
                }
            })?,
            None => {
                let store = PreKeyStore::new(
                    IdentityKeyPair::from_seed(&chat_seed),
                    installation.clone(),
                    config.prekeys,
                    now_ms(now),
                    &mut rng,
                );
                ops.push(StorageOp::Put {
                    table: Table::PreKeys,
                    key: b"store".to_vec(),
                    value: store.pickle(&x3dh_key, &mut rng),
                });
                store
            }
        };
        if prekeys.identity().public() != &me {
            return Err(OpenError::WrongAccount);
        }
        let mvds = mvds::Node::open(config.mvds.clone(), sub_seed(&seed, b"mvds"), sync_store)?;
        let waku = WakuNode::new(config.waku.clone(), None, sub_seed(&seed, b"waku"), now)?;
        let mut m = Messenger {
            me,
            identity,
            signing,
            recipient,
            installation,
            prekeys,
            x3dh_key,
            ratchet_key,
            rng,
            waku,
            mvds,
            storage,
            storage_failed: false,
            service_peers: BTreeSet::new(),
            store_peers: BTreeSet::new(),
            unsent: VecDeque::new(),
            pushes: BTreeMap::new(),
            conversations: BTreeMap::new(),
            contacts: BTreeMap::new(),
            chats: BTreeMap::new(),
            groups: BTreeMap::new(),
            public: BTreeMap::new(),
            routes: BTreeMap::new(),
            reassembler: Reassembler::new(),
            seen_waku: BTreeSet::new(),
            seen_order: VecDeque::new(),
            tracked: BTreeMap::new(),
            tracked_order: VecDeque::new(),
            tracked_seq: 0,
            backfills: Vec::new(),
            running_backfills: BTreeMap::new(),
            next_backfill_retry: None,
            offline_since_ms,
            own_bundle: None,
            events: VecDeque::new(),
            next_tick: Some(now.instant),
            next_bundle: Some(now.instant),
            next_online_mark: None,
            last_now: now,
            stats: MessengerStats::default(),
            config,
        };
        m.restore(&dump);
        m.add_route(
            StatusTopic::partitioned(m.me.ed25519_bytes())
                .content_topic()
                .clone(),
            Route::Private,
        );
        // Catch up on what happened while we were away (or the initial window).
        let from = offline_since_ms
            .map(|t| t.saturating_sub(duration_ms(m.config.backfill_margin)))
            .unwrap_or_else(|| now_ms(now).saturating_sub(duration_ms(m.config.initial_history)));
        let topics: Vec<ContentTopic> = m.routes.keys().cloned().collect();
        m.backfills.push((topics, ms_to_nanos(from)));
        if !ops.is_empty() {
            m.commit(ops);
        }
        Ok(m)
    }

    fn restore(&mut self, dump: &Dump) {
        let empty = BTreeMap::new();
        let table = |t: Table| dump.get(&t).unwrap_or(&empty);
        for (k, v) in table(Table::Contacts) {
            let (Some(peer), Some(mut r)) = (identity_of_slice(k), Reader::new(v)) else {
                continue;
            };
            let added = r.u8().is_some_and(|a| a != 0);
            let bundle = r
                .bytes()
                .filter(|b| !b.is_empty())
                .and_then(|b| Bundle::decode(b).ok());
            self.contacts.insert(peer, Contact { added, bundle });
            if added {
                self.add_route(
                    StatusTopic::contact_code(peer.ed25519_bytes())
                        .content_topic()
                        .clone(),
                    Route::ContactCode(peer),
                );
            }
        }
        for (k, v) in table(Table::Sessions) {
            let Some(peer) = identity_of_slice(k) else {
                continue;
            };
            if let Some(conv) = Conversation::from_record(v, &self.ratchet_key) {
                self.conversations.insert(peer, conv);
                self.add_negotiated_route(&peer);
            }
        }
        for (k, v) in table(Table::Chats) {
            let (Some(chat), Some(mut r)) = (ChatId::from_storage_key(k), Reader::new(v)) else {
                continue;
            };
            let clock = r.u64().unwrap_or(0);
            if let ChatId::Public(name) = &chat {
                let Ok(p) = PublicChat::new(name) else {
                    continue;
                };
                self.add_route(p.content_topic().clone(), Route::Public(name.clone()));
                self.public.insert(name.clone(), p);
            }
            self.chats.insert(
                chat,
                Chat {
                    clock: LamportClock::starting_at(clock),
                    ..Chat::default()
                },
            );
        }
        for (k, v) in table(Table::Groups) {
            let Ok(chat_id) = String::from_utf8(k.clone()) else {
                continue;
            };
            let (Ok(mut group), Some(mut r)) = (Group::new(&chat_id), Reader::new(v)) else {
                continue;
            };
            let n = r.u64().unwrap_or(0);
            let mut events = Vec::new();
            for _ in 0..n {
                let Some(e) = r.bytes() else { break };
                if let Ok(e) = crate::group::SignedGroupEvent::decode(&chat_id, e) {
                    events.push(e);
                }
            }
            group.merge(events);
            self.groups.insert(chat_id, group);
        }
        for (k, v) in table(Table::Messages) {
            let Some((chat, clock, id)) = split_message_key(k) else {
                continue;
            };
            let Some(mut r) = Reader::new(v) else {
                continue;
            };
            let outgoing = r.u8().is_some_and(|o| o != 0);
            let Some(sender) = r.bytes().and_then(identity_of_slice) else {
                continue;
            };
            let Some(Ok(message)) = r.bytes().map(ChatMessage::decode) else {
                continue;
            };
            let mut delivered_to = BTreeSet::new();
            while let Some(d) = r.bytes() {
                if let Some(p) = identity_of_slice(d) {
                    delivered_to.insert(p);
                }
            }
            let c = self.chats.entry(chat).or_default();
            c.by_id.insert(id, clock);
            c.log.insert(
                (clock, id),
                ChatEntry {
                    id,
                    sender,
                    message,
                    outgoing,
                    delivered_to,
                },
            );
        }
        let mut forgotten = Vec::new();
        for (k, v) in table(Table::Reactions) {
            let Some(mut key) = Reader::new(k) else {
                continue;
            };
            let Some(chat) = key.bytes().and_then(ChatId::from_storage_key) else {
                continue;
            };
            let Some(mut r) = Reader::new(v) else {
                continue;
            };
            let Some(sender) = r.bytes().and_then(identity_of_slice) else {
                continue;
            };
            let Some(reaction) = r.bytes().and_then(|b| {
                proto::status::EmojiReaction::decode(b)
                    .ok()
                    .and_then(|pb| EmojiReaction::from_proto(pb).ok())
            }) else {
                continue;
            };
            if let Some(c) = self.chats.get_mut(&chat) {
                let applied = c
                    .reactions
                    .apply_evicting(*sender.ed25519_bytes(), &reaction);
                if let Some(gone) = applied.evicted {
                    forgotten.push(reaction_key(&chat, gone));
                }
            }
        }
        // Records over the bound (written before the bound was kept on disk) go now.
        if !forgotten.is_empty() {
            self.commit(
                forgotten
                    .into_iter()
                    .map(|key| StorageOp::Delete {
                        table: Table::Reactions,
                        key,
                    })
                    .collect(),
            );
        }
        let mut outbox: Vec<(u64, mvds::MessageId, ChatId, MessageId)> = Vec::new();
        for (k, v) in table(Table::Outbox) {
            let (Ok(mvds_id), Some(mut r)) = (<[u8; 32]>::try_from(k.as_slice()), Reader::new(v))
            else {
                continue;
            };
            let (Some(seq), Some(chat), Some(id)) = (
                r.u64(),
                r.bytes().and_then(ChatId::from_storage_key),
                r.bytes().and_then(|b| <[u8; 32]>::try_from(b).ok()),
            ) else {
                continue;
            };
            outbox.push((seq, mvds::MessageId(mvds_id), chat, MessageId(id)));
        }
        outbox.sort_by_key(|(seq, ..)| *seq);
        for (seq, mvds_id, chat, id) in outbox {
            self.tracked_seq = self.tracked_seq.max(seq);
            if self.tracked.insert(mvds_id, (chat, id)).is_none() {
                self.tracked_order.push_back(mvds_id);
            }
        }
    }

    // ----- accessors -----

    /// Our chat key.
    pub fn public_key(&self) -> &PublicIdentity {
        &self.me
    }

    /// Our installation id.
    pub fn installation_id(&self) -> &InstallationId {
        &self.installation
    }

    /// The three-word pseudonym of a chat key.
    pub fn pseudonym(key: &PublicIdentity) -> String {
        verification::pseudonym(key)
    }

    /// The safety number of our conversation with `peer` (compare it out of band).
    pub fn safety_number(&self, peer: &PublicIdentity) -> String {
        verification::pair_safety_number(&self.me, peer)
    }

    /// The chats we have, in id order.
    pub fn chats(&self) -> impl Iterator<Item = &ChatId> {
        self.chats.keys()
    }

    /// The messages of `chat` in display order (clock, then id).
    pub fn messages(&self, chat: &ChatId) -> impl Iterator<Item = &ChatEntry> {
        self.chats
            .get(chat)
            .into_iter()
            .flat_map(|c| c.log.values())
    }

    /// The reaction counts of a message.
    pub fn reactions(&self, chat: &ChatId, message: &MessageId) -> BTreeMap<Emoji, usize> {
        self.chats
            .get(chat)
            .map(|c| c.reactions.counts(message))
            .unwrap_or_default()
    }

    /// A private group.
    pub fn group(&self, chat_id: &str) -> Option<&Group> {
        self.groups.get(chat_id)
    }

    /// The contacts we added.
    pub fn contacts(&self) -> impl Iterator<Item = &PublicIdentity> {
        self.contacts
            .iter()
            .filter(|(_, c)| c.added)
            .map(|(k, _)| k)
    }

    /// Whether we hold a usable bundle of `peer`.
    pub fn has_bundle(&self, peer: &PublicIdentity) -> bool {
        self.contacts.get(peer).is_some_and(|c| c.bundle.is_some())
    }

    /// Whether a session with `peer` has carried a message from them (we then send on the
    /// negotiated topic).
    pub fn is_confirmed(&self, peer: &PublicIdentity) -> bool {
        self.conversations.get(peer).is_some_and(|c| c.confirmed)
    }

    /// The negotiated topic with `peer`.
    pub fn negotiated_topic(&self, peer: &PublicIdentity) -> Option<ContentTopic> {
        negotiated_topic(&self.identity, peer).map(|t| t.content_topic().clone())
    }

    /// The content topics we follow.
    pub fn content_topics(&self) -> impl Iterator<Item = &ContentTopic> {
        self.routes.keys()
    }

    /// Counters.
    pub fn stats(&self) -> &MessengerStats {
        &self.stats
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Consumes the Messenger, returning its storage and MVDS store (to reopen it later).
    pub fn into_stores(self) -> (S, M) {
        (self.storage, self.mvds.into_store())
    }

    /// The Waku node (for inspection).
    pub fn waku(&self) -> &WakuNode {
        &self.waku
    }

    // ----- commands -----

    /// Adds a contact by chat key: follows its contact-code topic (and fetches its recent
    /// bundles from a store node) so that a session can start.
    pub fn add_contact(&mut self, now: Now, peer: PublicIdentity) {
        self.enter(now);
        if peer == self.me {
            return;
        }
        if !self.contacts.contains_key(&peer) && self.contacts.len() >= MAX_CONTACTS {
            return;
        }
        let contact = self.contacts.entry(peer).or_default();
        if contact.added {
            return;
        }
        contact.added = true;
        let topic = StatusTopic::contact_code(peer.ed25519_bytes())
            .content_topic()
            .clone();
        self.add_route(topic.clone(), Route::ContactCode(peer));
        self.add_negotiated_route(&peer);
        let from = now_ms(now).saturating_sub(self.config.bundles.max_age_ms);
        self.queue_backfill(vec![topic], ms_to_nanos(from));
        self.persist_contact(&peer);
        self.pump(now);
    }

    /// Sends a message to a chat. 1:1 and group messages go through MVDS (acknowledged,
    /// retransmitted, [`MessengerEvent::Delivered`] when acked); public messages are published
    /// once.
    ///
    /// # Errors
    /// [`SendError`]; nothing was sent or stored.
    pub fn send(&mut self, now: Now, chat: &ChatId, draft: Draft) -> Result<MessageId, SendError> {
        self.enter(now);
        if self.storage_failed {
            return Err(SendError::Storage);
        }
        let message_type = match chat {
            ChatId::OneToOne(_) => MessageType::OneToOne,
            ChatId::Public(_) => MessageType::PublicGroup,
            ChatId::Group(_) => MessageType::PrivateGroup,
        };
        let chat_id = match chat {
            ChatId::OneToOne(peer) => {
                if *peer == self.me {
                    return Err(SendError::UnknownChat);
                }
                peer.to_chat_key()
            }
            ChatId::Public(name) => {
                if !self.public.contains_key(name) {
                    return Err(SendError::UnknownChat);
                }
                name.clone()
            }
            ChatId::Group(id) => {
                let group = self.groups.get(id).ok_or(SendError::UnknownChat)?;
                if !group.is_member(&self.me) {
                    return Err(SendError::NotAMember);
                }
                id.clone()
            }
        };
        if !self.chats.contains_key(chat) && self.chats.len() >= MAX_CHATS {
            return Err(SendError::UnknownChat);
        }
        let clock = self
            .chats
            .get(chat)
            .map_or(LamportClock::default(), |c| c.clock)
            .tick_copy(now_ms(now));
        let message = ChatMessage {
            clock,
            timestamp_ms: now_ms(now),
            chat_id,
            message_type,
            text: draft.text,
            response_to: draft.response_to,
            content: draft.content,
        };
        let chat_bytes = message.encode()?;
        let (kind, payload) = match chat {
            ChatId::Group(id) => {
                let group = self.groups.get(id).ok_or(SendError::UnknownChat)?;
                let update = group.update(Some(GroupEntity::Message(message.clone())));
                (PayloadType::MembershipUpdateMessage, update.encode()?)
            }
            _ => (PayloadType::ChatMessage, chat_bytes),
        };
        let envelope = SignedPayload::sign(&self.identity, kind, payload)?;
        let id = envelope.id();
        match chat {
            ChatId::OneToOne(peer) => {
                let group = GroupId::one_to_one(self.me.ed25519_bytes(), peer.ed25519_bytes());
                self.ensure_conversation(peer);
                let _ = self.mvds.add_peer(group, *peer.ed25519_bytes());
                self.sync_send(now, group, chat.clone(), id, envelope.encode())?;
            }
            ChatId::Group(chat_id) => {
                self.sync_group_peers(chat_id);
                self.sync_send(
                    now,
                    group_sync_id(chat_id),
                    chat.clone(),
                    id,
                    envelope.encode(),
                )?;
            }
            ChatId::Public(name) => {
                self.publish_public(now, name, &envelope.encode())?;
            }
        }
        self.record_message(chat, id, self.me, message, true);
        self.pump(now);
        Ok(id)
    }

    /// Sends a reaction to a message of a chat (or withdraws it with `retract`).
    ///
    /// # Errors
    /// [`SendError`].
    pub fn react(
        &mut self,
        now: Now,
        chat: &ChatId,
        message: MessageId,
        emoji: Emoji,
        retract: bool,
    ) -> Result<MessageId, SendError> {
        self.enter(now);
        let (message_type, chat_id) = match chat {
            ChatId::OneToOne(peer) => (MessageType::OneToOne, peer.to_chat_key()),
            ChatId::Public(name) if self.public.contains_key(name) => {
                (MessageType::PublicGroup, name.clone())
            }
            ChatId::Group(id) if self.groups.get(id).is_some_and(|g| g.is_member(&self.me)) => {
                (MessageType::PrivateGroup, id.clone())
            }
            _ => return Err(SendError::UnknownChat),
        };
        let clock = self
            .chats
            .get(chat)
            .map_or(LamportClock::default(), |c| c.clock)
            .tick_copy(now_ms(now));
        let reaction = EmojiReaction {
            clock,
            chat_id,
            message_id: message,
            message_type,
            emoji,
            retracted: retract,
        };
        let (kind, payload) = match chat {
            ChatId::Group(id) => {
                let group = self.groups.get(id).ok_or(SendError::UnknownChat)?;
                let update = group.update(Some(GroupEntity::Reaction(reaction.clone())));
                (PayloadType::MembershipUpdateMessage, update.encode()?)
            }
            _ => (PayloadType::EmojiReaction, reaction.encode()?),
        };
        let envelope = SignedPayload::sign(&self.identity, kind, payload)?;
        let id = envelope.id();
        match chat {
            ChatId::OneToOne(peer) => {
                let group = GroupId::one_to_one(self.me.ed25519_bytes(), peer.ed25519_bytes());
                self.ensure_conversation(peer);
                let _ = self.mvds.add_peer(group, *peer.ed25519_bytes());
                self.sync_send(now, group, chat.clone(), id, envelope.encode())?;
            }
            ChatId::Group(chat_id) => {
                self.sync_group_peers(chat_id);
                self.sync_send(
                    now,
                    group_sync_id(chat_id),
                    chat.clone(),
                    id,
                    envelope.encode(),
                )?;
            }
            ChatId::Public(name) => self.publish_public(now, name, &envelope.encode())?,
        }
        let c = self.chats.entry(chat.clone()).or_default();
        c.clock = LamportClock::starting_at(c.clock.last().max(clock));
        let me = self.me;
        self.remember_reaction(chat, &me, &reaction);
        self.persist_chat(chat);
        self.pump(now);
        Ok(id)
    }

    /// Joins a public chat: follows its topic and fetches its recent history from a store node.
    ///
    /// # Errors
    /// [`JoinError`].
    pub fn join_public_chat(&mut self, now: Now, name: &str) -> Result<ChatId, JoinError> {
        self.enter(now);
        let chat = PublicChat::new(name)?;
        let id = ChatId::Public(name.to_owned());
        if self.public.contains_key(name) {
            return Ok(id);
        }
        if self.chats.len() >= MAX_CHATS {
            return Err(JoinError::TooManyChats);
        }
        let topic = chat.content_topic().clone();
        self.add_route(topic.clone(), Route::Public(name.to_owned()));
        self.public.insert(name.to_owned(), chat);
        self.chats.entry(id.clone()).or_default();
        self.persist_chat(&id);
        let from = now_ms(now).saturating_sub(duration_ms(self.config.initial_history));
        self.queue_backfill(vec![topic], ms_to_nanos(from));
        self.pump(now);
        Ok(id)
    }

    /// Leaves a public chat (its log is kept).
    pub fn leave_public_chat(&mut self, now: Now, name: &str) {
        self.enter(now);
        if let Some(chat) = self.public.remove(name) {
            self.remove_route(chat.content_topic(), &Route::Public(name.to_owned()));
        }
    }

    /// Creates a private group with us as creator and admin and invites `members`.
    ///
    /// # Errors
    /// [`GroupCommandError`].
    pub fn create_group(
        &mut self,
        now: Now,
        name: &str,
        members: &[PublicIdentity],
    ) -> Result<ChatId, GroupCommandError> {
        self.enter(now);
        let clock = LamportClock::default().tick(now_ms(now));
        let group = Group::create(&self.identity, &mut self.rng, name, members, clock)?;
        let chat_id = group.chat_id().to_owned();
        let chat = ChatId::Group(chat_id.clone());
        let state = group.state().clone();
        self.groups.insert(chat_id.clone(), group);
        self.chats.entry(chat.clone()).or_default().clock = LamportClock::starting_at(state.clock);
        for m in &state.members {
            self.ensure_conversation(m);
        }
        self.persist_group(&chat_id);
        self.persist_chat(&chat);
        self.sync_group_peers(&chat_id);
        self.send_group_update(now, &chat_id, true, &[])?;
        self.events
            .push_back(MessengerEvent::GroupMembershipChanged {
                chat_id: chat_id.clone(),
                state,
            });
        self.pump(now);
        Ok(chat)
    }

    fn group_event(
        &mut self,
        now: Now,
        chat_id: &str,
        kind: GroupEventKind,
    ) -> Result<(), GroupCommandError> {
        self.enter(now);
        let chat = ChatId::Group(chat_id.to_owned());
        let clock = self
            .chats
            .get(&chat)
            .map_or(LamportClock::default(), |c| c.clock)
            .tick_copy(now_ms(now));
        let group = self
            .groups
            .get_mut(chat_id)
            .ok_or(GroupCommandError::UnknownGroup)?;
        let before: BTreeSet<PublicIdentity> = group.state().members.clone();
        group.propose(&self.identity, GroupEvent { clock, kind })?;
        let state = group.state().clone();
        let c = self.chats.entry(chat.clone()).or_default();
        c.clock = LamportClock::starting_at(c.clock.last().max(state.clock));
        self.persist_group(chat_id);
        self.persist_chat(&chat);
        for m in &state.members {
            self.ensure_conversation(m);
        }
        // Whoever left the group (or was removed, or we ourselves when leaving) learns it over
        // the 1:1 channel, since the group's MVDS peers no longer include them.
        let gone: Vec<PublicIdentity> = if state.members.contains(&self.me) {
            before.difference(&state.members).copied().collect()
        } else {
            before.iter().copied().filter(|m| *m != self.me).collect()
        };
        self.send_group_update(now, chat_id, true, &gone)?;
        self.sync_group_peers(chat_id);
        self.events
            .push_back(MessengerEvent::GroupMembershipChanged {
                chat_id: chat_id.to_owned(),
                state,
            });
        self.pump(now);
        Ok(())
    }

    /// Invites members (we must be an admin).
    ///
    /// # Errors
    /// [`GroupCommandError`].
    pub fn add_group_members(
        &mut self,
        now: Now,
        chat_id: &str,
        members: &[PublicIdentity],
    ) -> Result<(), GroupCommandError> {
        let kind = GroupEventKind::MembersAdded {
            members: members.iter().copied().collect(),
        };
        self.group_event(now, chat_id, kind)
    }

    /// Removes a member (we must be an admin, and they not).
    ///
    /// # Errors
    /// [`GroupCommandError`].
    pub fn remove_group_member(
        &mut self,
        now: Now,
        chat_id: &str,
        member: PublicIdentity,
    ) -> Result<(), GroupCommandError> {
        self.group_event(now, chat_id, GroupEventKind::MemberRemoved { member })
    }

    /// Accepts an invitation.
    ///
    /// # Errors
    /// [`GroupCommandError`].
    pub fn join_group(&mut self, now: Now, chat_id: &str) -> Result<(), GroupCommandError> {
        self.group_event(now, chat_id, GroupEventKind::MemberJoined)
    }

    /// Leaves a group.
    ///
    /// # Errors
    /// [`GroupCommandError`].
    pub fn leave_group(&mut self, now: Now, chat_id: &str) -> Result<(), GroupCommandError> {
        let me = self.me;
        self.group_event(now, chat_id, GroupEventKind::MemberRemoved { member: me })
    }

    /// Makes members admins (we must be an admin).
    ///
    /// # Errors
    /// [`GroupCommandError`].
    pub fn add_group_admins(
        &mut self,
        now: Now,
        chat_id: &str,
        admins: &[PublicIdentity],
    ) -> Result<(), GroupCommandError> {
        let kind = GroupEventKind::AdminsAdded {
            admins: admins.iter().copied().collect(),
        };
        self.group_event(now, chat_id, kind)
    }

    /// Renames a group (we must be an admin).
    ///
    /// # Errors
    /// [`GroupCommandError`].
    pub fn rename_group(
        &mut self,
        now: Now,
        chat_id: &str,
        name: &str,
    ) -> Result<(), GroupCommandError> {
        let kind = GroupEventKind::NameChanged {
            name: name.to_owned(),
        };
        self.group_event(now, chat_id, kind)
    }

    /// Publishes our bundle on our contact-code topic now (it is also published on start and
    /// every [`MessengerConfig::bundle_interval`]).
    pub fn publish_bundle(&mut self, now: Now) {
        self.enter(now);
        let bundle = self.own_bundle(now).to_proto();
        let pm = ProtocolMessage {
            installation_id: self.installation.as_str().to_owned(),
            bundles: vec![bundle],
            ..Default::default()
        };
        let topic = StatusTopic::contact_code(self.me.ed25519_bytes());
        let key = SymmetricKey::from_topic_name(topic.name());
        self.publish_symmetric(now, topic.content_topic(), &key, &pm.encode_to_vec(), true);
        self.pump(now);
    }

    // ----- internals: bookkeeping -----

    fn enter(&mut self, now: Now) {
        self.last_now = now;
    }

    fn push_event(&mut self, e: MessengerEvent) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn commit(&mut self, ops: Vec<StorageOp>) {
        if self.storage_failed || ops.is_empty() {
            return;
        }
        if let Err(e) = self.storage.commit(ops) {
            self.storage_failed = true;
            self.push_event(MessengerEvent::StorageFailed(e));
        }
    }

    fn add_route(&mut self, topic: ContentTopic, route: Route) {
        let new_topic = !self.routes.contains_key(&topic);
        let routes = self.routes.entry(topic.clone()).or_default();
        if !routes.contains(&route) {
            routes.push(route);
        }
        if new_topic {
            let (now, pubsub) = (self.last_now, self.config.pubsub_topic.clone());
            // Refused only beyond the filter's subscription limit; the topic then stays
            // reachable through store backfills.
            let _ = self.waku.subscribe(now, pubsub, vec![topic]);
        }
    }

    fn remove_route(&mut self, topic: &ContentTopic, route: &Route) {
        if let Some(routes) = self.routes.get_mut(topic) {
            routes.retain(|r| r != route);
            if routes.is_empty() {
                self.routes.remove(topic);
                let (now, pubsub) = (self.last_now, self.config.pubsub_topic.clone());
                self.waku.unsubscribe(now, &pubsub, vec![topic.clone()]);
            }
        }
    }

    fn add_negotiated_route(&mut self, peer: &PublicIdentity) {
        if let Some(t) = negotiated_topic(&self.identity, peer) {
            self.add_route(t.content_topic().clone(), Route::Private);
        }
    }

    fn ensure_conversation(&mut self, peer: &PublicIdentity) {
        if *peer == self.me || self.conversations.contains_key(peer) {
            return;
        }
        if self.conversations.len() >= MAX_CONTACTS {
            return;
        }
        self.conversations.insert(*peer, Conversation::default());
        self.add_negotiated_route(peer);
    }

    fn persist_contact(&mut self, peer: &PublicIdentity) {
        let Some(c) = self.contacts.get(peer) else {
            return;
        };
        let value = Writer::new()
            .u8(u8::from(c.added))
            .bytes(&c.bundle.as_ref().map(Bundle::encode).unwrap_or_default())
            .finish();
        self.commit(vec![StorageOp::Put {
            table: Table::Contacts,
            key: peer.ed25519_bytes().to_vec(),
            value,
        }]);
    }

    fn persist_conversation(&mut self, peer: &PublicIdentity) {
        let Some(c) = self.conversations.get(peer) else {
            return;
        };
        let value = c.to_record(&mut self.rng, &self.ratchet_key);
        self.commit(vec![StorageOp::Put {
            table: Table::Sessions,
            key: peer.ed25519_bytes().to_vec(),
            value,
        }]);
    }

    fn persist_prekeys(&mut self) {
        let value = self.prekeys.pickle(&self.x3dh_key, &mut self.rng);
        self.commit(vec![StorageOp::Put {
            table: Table::PreKeys,
            key: b"store".to_vec(),
            value,
        }]);
    }

    fn persist_chat(&mut self, chat: &ChatId) {
        let Some(c) = self.chats.get(chat) else {
            return;
        };
        let value = Writer::new().u64(c.clock.last()).finish();
        self.commit(vec![StorageOp::Put {
            table: Table::Chats,
            key: chat.storage_key(),
            value,
        }]);
    }

    fn persist_group(&mut self, chat_id: &str) {
        let Some(g) = self.groups.get(chat_id) else {
            return;
        };
        let mut w = Writer::new();
        let events: Vec<Vec<u8>> = g.events().map(|e| e.encode()).collect();
        w.u64(events.len() as u64);
        for e in &events {
            w.bytes(e);
        }
        let value = w.finish();
        self.commit(vec![StorageOp::Put {
            table: Table::Groups,
            key: chat_id.as_bytes().to_vec(),
            value,
        }]);
    }

    fn persist_message(&mut self, chat: &ChatId, clock: u64, id: MessageId) {
        let Some(e) = self.chats.get(chat).and_then(|c| c.log.get(&(clock, id))) else {
            return;
        };
        let Ok(body) = e.message.encode() else {
            return;
        };
        let mut w = Writer::new();
        w.u8(u8::from(e.outgoing))
            .bytes(e.sender.ed25519_bytes())
            .bytes(&body);
        for d in &e.delivered_to {
            w.bytes(d.ed25519_bytes());
        }
        let value = w.finish();
        self.commit(vec![StorageOp::Put {
            table: Table::Messages,
            key: message_key(chat, clock, id),
            value,
        }]);
    }

    fn record_message(
        &mut self,
        chat: &ChatId,
        id: MessageId,
        sender: PublicIdentity,
        message: ChatMessage,
        outgoing: bool,
    ) -> bool {
        let c = self.chats.entry(chat.clone()).or_default();
        if c.by_id.contains_key(&id) {
            return false;
        }
        let clock = message.clock;
        c.clock = LamportClock::starting_at(c.clock.last().max(clock));
        c.by_id.insert(id, clock);
        c.log.insert(
            (clock, id),
            ChatEntry {
                id,
                sender,
                message,
                outgoing,
                delivered_to: BTreeSet::new(),
            },
        );
        if c.log.len() > MAX_MESSAGES_PER_CHAT
            && let Some(((_, old), _)) = c.log.pop_first()
        {
            c.by_id.remove(&old);
        }
        self.persist_chat(chat);
        self.persist_message(chat, clock, id);
        true
    }

    fn own_bundle(&mut self, now: Now) -> Bundle {
        let now_ms = now_ms(now);
        let current = self.prekeys.current_pre_key().id();
        match &self.own_bundle {
            // Re-sign at most hourly, and whenever the prekey rotated.
            Some((at, b))
                if now_ms.saturating_sub(*at) < 3_600_000
                    && b.pre_key(&self.installation).map(|p| p.id()) == Some(current) =>
            {
                b.clone()
            }
            _ => {
                let b = self.prekeys.bundle(now_ms);
                self.own_bundle = Some((now_ms, b.clone()));
                b
            }
        }
    }

    fn track(&mut self, mvds_id: mvds::MessageId, chat: ChatId, id: MessageId) {
        let mut ops = Vec::new();
        if self.tracked.insert(mvds_id, (chat.clone(), id)).is_none() {
            self.tracked_order.push_back(mvds_id);
            self.tracked_seq += 1;
            ops.push(StorageOp::Put {
                table: Table::Outbox,
                key: mvds_id.as_bytes().to_vec(),
                value: Writer::new()
                    .u64(self.tracked_seq)
                    .bytes(&chat.storage_key())
                    .bytes(id.as_bytes())
                    .finish(),
            });
        }
        while self.tracked_order.len() > MAX_TRACKED_SENDS {
            if let Some(old) = self.tracked_order.pop_front() {
                self.tracked.remove(&old);
                ops.push(StorageOp::Delete {
                    table: Table::Outbox,
                    key: old.as_bytes().to_vec(),
                });
            }
        }
        if !ops.is_empty() {
            self.commit(ops);
        }
    }

    /// Applies a reaction to the chat's set and keeps the disk in step: the record is written
    /// if it changed the set, and the entry the set forgot to stay within
    /// [`MAX_REACTIONS`](crate::chat::MAX_REACTIONS) is deleted, so the table is bounded like
    /// the set. Returns whether the reaction changed the set.
    fn remember_reaction(
        &mut self,
        chat: &ChatId,
        sender: &PublicIdentity,
        r: &EmojiReaction,
    ) -> bool {
        let Some(c) = self.chats.get_mut(chat) else {
            return false;
        };
        let applied = c.reactions.apply_evicting(*sender.ed25519_bytes(), r);
        if !applied.changed {
            return false;
        }
        let this = (r.message_id, *sender.ed25519_bytes(), r.emoji);
        let mut ops = Vec::with_capacity(2);
        if applied.evicted != Some(this) {
            let value = Writer::new()
                .bytes(sender.ed25519_bytes())
                .bytes(&r.to_proto().encode_to_vec())
                .finish();
            ops.push(StorageOp::Put {
                table: Table::Reactions,
                key: reaction_key(chat, this),
                value,
            });
        }
        if let Some(gone) = applied.evicted {
            ops.push(StorageOp::Delete {
                table: Table::Reactions,
                key: reaction_key(chat, gone),
            });
        }
        self.commit(ops);
        true
    }

    fn sync_send(
        &mut self,
        now: Now,
        group: GroupId,
        chat: ChatId,
        id: MessageId,
        body: Vec<u8>,
    ) -> Result<(), SendError> {
        if body.len() > mvds::MAX_BODY_BYTES {
            return Err(SendError::TooLarge {
                len: body.len(),
                max: mvds::MAX_BODY_BYTES,
            });
        }
        let ts = now.unix_nanos / 1_000_000_000;
        let mvds_id = self
            .mvds
            .send(group, body, Mode::Batch, ts)
            .map_err(|e| SendError::Sync(e.to_string()))?;
        self.track(mvds_id, chat, id);
        self.schedule_tick(now);
        Ok(())
    }

    fn schedule_tick(&mut self, now: Now) {
        let soon = now.instant;
        self.next_tick = Some(self.next_tick.map_or(soon, |t| t.min(soon)));
    }

    /// Makes the group's MVDS peers the current members other than us (none if we left).
    fn sync_group_peers(&mut self, chat_id: &str) {
        let Some(g) = self.groups.get(chat_id) else {
            return;
        };
        let sync = group_sync_id(chat_id);
        let want: BTreeSet<PeerKey> = if g.is_member(&self.me) {
            g.state()
                .members
                .iter()
                .filter(|m| **m != self.me)
                .map(|m| *m.ed25519_bytes())
                .collect()
        } else {
            BTreeSet::new()
        };
        let have: BTreeSet<PeerKey> = self.mvds.peers_of(&sync).copied().collect();
        for p in have.difference(&want) {
            let _ = self.mvds.remove_peer(sync, p);
        }
        for p in want.difference(&have) {
            let _ = self.mvds.add_peer(sync, *p);
        }
    }

    /// Sends the group's history (no message) to its members, and to `also` over their 1:1
    /// channels.
    fn send_group_update(
        &mut self,
        now: Now,
        chat_id: &str,
        to_group: bool,
        also: &[PublicIdentity],
    ) -> Result<(), SendError> {
        let group = self.groups.get(chat_id).ok_or(SendError::UnknownChat)?;
        let update = group.update(None).encode()?;
        let envelope =
            SignedPayload::sign(&self.identity, PayloadType::MembershipUpdateMessage, update)?;
        let chat = ChatId::Group(chat_id.to_owned());
        let id = envelope.id();
        let body = envelope.encode();
        if to_group && group.is_member(&self.me) {
            self.sync_group_peers(chat_id);
            self.sync_send(now, group_sync_id(chat_id), chat.clone(), id, body.clone())?;
        }
        for peer in also {
            if *peer == self.me {
                continue;
            }
            self.ensure_conversation(peer);
            let one = GroupId::one_to_one(self.me.ed25519_bytes(), peer.ed25519_bytes());
            let _ = self.mvds.add_peer(one, *peer.ed25519_bytes());
            self.sync_send(now, one, chat.clone(), id, body.clone())?;
        }
        Ok(())
    }

    // ----- internals: the Waku side -----

    fn segment_limit(&self) -> usize {
        let (num, den) = self.config.segment_share;
        (self.config.max_message_size.saturating_mul(num) / den.max(1))
            .saturating_sub(ENVELOPE_OVERHEAD)
            .max(segment::MIN_SEGMENT_LEN)
    }

    fn publish(&mut self, now: Now, topic: &ContentTopic, payload: Vec<u8>) {
        if self.service_peers.is_empty() || !self.unsent.is_empty() {
            self.hold_unsent(topic.clone(), payload);
            return;
        }
        if let Some((topic, payload)) = self.try_publish(now, topic.clone(), payload) {
            self.hold_unsent(topic, payload);
        }
    }

    fn hold_unsent(&mut self, topic: ContentTopic, payload: Vec<u8>) {
        if self.unsent.len() >= MAX_UNSENT {
            self.unsent.pop_front();
            self.stats.publish_failed += 1;
        }
        self.unsent.push_back((topic, payload));
    }

    /// Hands a message to the Waku node; gives it back if no peer could take it now.
    fn try_publish(
        &mut self,
        now: Now,
        topic: ContentTopic,
        payload: Vec<u8>,
    ) -> Option<(ContentTopic, Vec<u8>)> {
        let msg = WakuMessage::new(topic.clone(), payload).with_timestamp(now.unix_nanos);
        self.remember_waku(msg.hash(&self.config.pubsub_topic));
        let pubsub = self.config.pubsub_topic.clone();
        match self.waku.publish(now, Some(pubsub), msg.clone()) {
            Ok(Published::Relayed { peers: 0, .. })
            | Err(NodeError::NoServicePeer(_) | NodeError::Publish(PublishError::NoPeers)) => {
                Some((topic, msg.payload))
            }
            Ok(Published::LightPushed { push, .. }) => {
                if self.pushes.len() < MAX_UNSENT {
                    self.pushes.insert(push, (topic, msg.payload));
                }
                None
            }
            Ok(_) => {
                self.stats.published += 1;
                None
            }
            Err(NodeError::Publish(PublishError::Duplicate)) => None,
            Err(_) => {
                self.stats.publish_failed += 1;
                None
            }
        }
    }

    fn flush_unsent(&mut self, now: Now) {
        if self.service_peers.is_empty() {
            return;
        }
        while let Some((topic, payload)) = self.unsent.pop_front() {
            // Stamped anew: the network refuses timestamps more than 20 s off.
            if let Some(back) = self.try_publish(now, topic, payload) {
                self.unsent.push_front(back);
                return;
            }
        }
    }

    fn on_lightpush(&mut self, e: LightPushClientEvent) {
        match e {
            LightPushClientEvent::Pushed { id, .. } => {
                if self.pushes.remove(&id).is_some() {
                    self.stats.published += 1;
                }
            }
            LightPushClientEvent::Failed { id, .. } => {
                if let Some((topic, payload)) = self.pushes.remove(&id) {
                    self.hold_unsent(topic, payload);
                }
            }
        }
    }

    fn publish_symmetric(
        &mut self,
        now: Now,
        topic: &ContentTopic,
        key: &SymmetricKey,
        bytes: &[u8],
        signed: bool,
    ) {
        let Ok(pieces) = segment::split(bytes, self.segment_limit()) else {
            self.stats.publish_failed += 1;
            return;
        };
        for piece in pieces {
            let signer = signed.then_some(&self.signing);
            match wp::seal_symmetric(&mut self.rng, key, &piece, signer) {
                Ok(sealed) => self.publish(now, topic, sealed),
                Err(_) => self.stats.publish_failed += 1,
            }
        }
    }

    fn publish_public(&mut self, now: Now, name: &str, envelope: &[u8]) -> Result<(), SendError> {
        let chat = self.public.get(name).ok_or(SendError::UnknownChat)?.clone();
        let pm = ProtocolMessage {
            installation_id: self.installation.as_str().to_owned(),
            public_message: envelope.to_vec(),
            ..Default::default()
        };
        let bytes = pm.encode_to_vec();
        if bytes.len() > segment::MAX_SEGMENTED_LEN {
            return Err(SendError::TooLarge {
                len: bytes.len(),
                max: segment::MAX_SEGMENTED_LEN,
            });
        }
        self.publish_symmetric(now, chat.content_topic(), chat.key(), &bytes, false);
        Ok(())
    }

    fn remember_waku(&mut self, hash: MessageHash) -> bool {
        if !self.seen_waku.insert(hash) {
            return false;
        }
        self.seen_order.push_back(hash);
        while self.seen_order.len() > MAX_SEEN_WAKU {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen_waku.remove(&old);
            }
        }
        true
    }

    fn start_backfills(&mut self, now: Now) {
        let Some(peer) = self.store_peers.iter().next().copied() else {
            return;
        };
        let end = now
            .unix_nanos
            .saturating_add(duration_nanos(self.config.backfill_margin));
        for (topics, from) in core::mem::take(&mut self.backfills) {
            for chunk in topics.chunks(STORE_TOPICS_PER_QUERY) {
                let q = StoreQuery::topics(self.config.pubsub_topic.clone(), chunk.iter().cloned())
                    .time_range(Some(from), Some(end))
                    .forward();
                match self
                    .waku
                    .query_store(now, Some(peer), q, QueryLimits::default())
                {
                    Ok(id) => {
                        self.running_backfills.insert(id, (chunk.to_vec(), from, 0));
                    }
                    Err(_) => self.retry_backfill(now, chunk.to_vec(), from),
                }
            }
        }
    }

    /// Queues a store query for `topics` since `from` (Unix ns). Beyond
    /// [`MAX_PENDING_BACKFILLS`] queries the queue collapses into one for every topic we follow
    /// since the earliest time asked for, so nothing is lost and memory stays bounded.
    fn queue_backfill(&mut self, topics: Vec<ContentTopic>, from: i64) {
        if self.backfills.len() < MAX_PENDING_BACKFILLS {
            self.backfills.push((topics, from));
            return;
        }
        let earliest = self
            .backfills
            .iter()
            .map(|(_, f)| *f)
            .chain([from])
            .min()
            .unwrap_or(from);
        let all: Vec<ContentTopic> = self.routes.keys().cloned().collect();
        self.backfills = vec![(all, earliest)];
    }

    fn retry_backfill(&mut self, now: Now, topics: Vec<ContentTopic>, from: i64) {
        self.queue_backfill(topics, from);
        if self.next_backfill_retry.is_none() {
            self.next_backfill_retry = Some(now.instant + BACKFILL_RETRY);
        }
    }

    fn on_store_event(&mut self, now: Now, e: StoreClientEvent) {
        match e {
            StoreClientEvent::Page { query, entries, .. } => {
                if let Some((_, _, n)) = self.running_backfills.get_mut(&query) {
                    *n += entries.len();
                }
                for entry in entries {
                    let (Some(message), Some(topic)) = (entry.message, entry.pubsub_topic) else {
                        continue;
                    };
                    self.on_waku_message(now, &topic, &message);
                }
            }
            StoreClientEvent::Finished { query, result, .. } => {
                let Some((topics, from, messages)) = self.running_backfills.remove(&query) else {
                    return;
                };
                if result.is_err() {
                    // Ask again later (another store node, or the same once it answers).
                    self.retry_backfill(now, topics, from);
                }
                self.push_event(MessengerEvent::BackfillFinished {
                    messages,
                    ok: result.is_ok(),
                });
            }
        }
    }

    // ----- internals: receiving -----

    fn on_waku_message(&mut self, now: Now, pubsub: &PubsubTopic, msg: &WakuMessage) {
        self.stats.waku_received += 1;
        if *pubsub != self.config.pubsub_topic {
            self.stats.waku_unrouted += 1;
            return;
        }
        let Some(routes) = self.routes.get(&msg.content_topic).cloned() else {
            self.stats.waku_unrouted += 1;
            return;
        };
        if !self.remember_waku(msg.hash(pubsub)) {
            self.stats.waku_duplicates += 1;
            return;
        }
        let mut opened_any = false;
        for route in routes {
            let opened = match &route {
                Route::Private => wp::open_asymmetric(&self.recipient, &msg.payload),
                Route::ContactCode(peer) => {
                    let topic = StatusTopic::contact_code(peer.ed25519_bytes());
                    wp::open_symmetric(&SymmetricKey::from_topic_name(topic.name()), &msg.payload)
                }
                Route::Public(name) => match self.public.get(name) {
                    Some(c) => wp::open_symmetric(c.key(), &msg.payload),
                    None => continue,
                },
            };
            let Ok(opened) = opened else {
                continue;
            };
            opened_any = true;
            let signer = opened
                .signer
                .and_then(|k| PublicIdentity::from_bytes(k.as_bytes()).ok());
            let Some(bytes) = self.reassemble(now, opened.payload) else {
                break;
            };
            match route {
                Route::Private => match signer {
                    Some(sender) if sender != self.me => self.on_private(now, sender, &bytes),
                    _ => self.stats.envelopes_rejected += 1,
                },
                Route::ContactCode(peer) => self.on_contact_code(now, peer, &bytes),
                Route::Public(name) => self.on_public(now, &name, &bytes),
            }
            break;
        }
        if !opened_any {
            self.stats.waku_unopened += 1;
        }
    }

    fn reassemble(&mut self, now: Now, payload: Zeroizing<Vec<u8>>) -> Option<Zeroizing<Vec<u8>>> {
        match segment::parse(&payload) {
            None => Some(payload),
            Some(seg) => match self.reassembler.handle(now.instant, seg) {
                Ok(Some(whole)) => Some(Zeroizing::new(whole)),
                Ok(None) => None,
                Err(_) => {
                    self.stats.segments_rejected += 1;
                    None
                }
            },
        }
    }

    fn decode_protocol(&mut self, bytes: &[u8]) -> Option<ProtocolMessage> {
        match proto::decode_bounded::<ProtocolMessage>(bytes, MAX_PROTOCOL_MESSAGE_LEN) {
            Ok(pm) => Some(pm),
            Err(_) => {
                self.stats.protocol_malformed += 1;
                None
            }
        }
    }

    fn on_contact_code(&mut self, now: Now, peer: PublicIdentity, bytes: &[u8]) {
        let Some(pm) = self.decode_protocol(bytes) else {
            return;
        };
        for b in pm.bundles.iter().take(MAX_ATTACHED_BUNDLES) {
            self.accept_bundle(now, &peer, b);
        }
    }

    /// Takes a bundle of `peer`; returns whether it verified.
    fn accept_bundle(
        &mut self,
        now: Now,
        peer: &PublicIdentity,
        b: &proto::secure::Bundle,
    ) -> bool {
        let parsed = Bundle::from_proto(b).ok();
        // The bundle every message of a contact carries is usually the one we hold already:
        // it was verified when it was stored (and is verified again before it is used).
        if parsed.is_some()
            && self.contacts.get(peer).and_then(|c| c.bundle.as_ref()) == parsed.as_ref()
        {
            return true;
        }
        let verified = parsed.and_then(|b| b.verify(peer, now_ms(now), &self.config.bundles).ok());
        let Some(verified) = verified else {
            self.stats.bundles_rejected += 1;
            return false;
        };
        let bundle = verified.into_bundle();
        if !self.contacts.contains_key(peer) && self.contacts.len() >= MAX_CONTACTS {
            return false;
        }
        let contact = self.contacts.entry(*peer).or_default();
        let newer = contact
            .bundle
            .as_ref()
            .is_none_or(|old| bundle.timestamp_ms() > old.timestamp_ms());
        if !newer {
            return true;
        }
        contact.bundle = Some(bundle);
        self.persist_contact(peer);
        self.push_event(MessengerEvent::BundleReceived { from: *peer });
        // Payloads held for want of a session can go now.
        let held: Vec<Vec<u8>> = self
            .conversations
            .get_mut(peer)
            .map(|c| c.outbox.drain(..).collect())
            .unwrap_or_default();
        for payload in held {
            self.secure_send(now, peer, payload);
        }
        true
    }

    fn on_public(&mut self, now: Now, name: &str, bytes: &[u8]) {
        let Some(pm) = self.decode_protocol(bytes) else {
            return;
        };
        let Ok(envelope) = SignedPayload::decode(&pm.public_message) else {
            self.stats.envelopes_rejected += 1;
            return;
        };
        let sender = *envelope.sender();
        let chat = ChatId::Public(name.to_owned());
        match envelope.kind() {
            PayloadType::ChatMessage => {
                let ok = ChatMessage::decode(envelope.payload())
                    .ok()
                    .filter(|m| m.message_type == MessageType::PublicGroup && m.chat_id == name);
                match ok {
                    Some(m) => self.accept_message(now, &chat, envelope.id(), sender, m),
                    None => self.stats.payloads_rejected += 1,
                }
            }
            PayloadType::EmojiReaction => {
                let ok = EmojiReaction::decode(envelope.payload())
                    .ok()
                    .filter(|r| r.message_type == MessageType::PublicGroup && r.chat_id == name);
                match ok {
                    Some(r) => self.accept_reaction(now, &chat, sender, r),
                    None => self.stats.payloads_rejected += 1,
                }
            }
            _ => self.stats.payloads_rejected += 1,
        }
    }

    fn on_private(&mut self, now: Now, sender: PublicIdentity, bytes: &[u8]) {
        let Some(pm) = self.decode_protocol(bytes) else {
            return;
        };
        if !self.contacts.contains_key(&sender) && self.contacts.len() >= MAX_CONTACTS {
            return;
        }
        let mut bundle_ok = false;
        for b in pm.bundles.iter().take(MAX_ATTACHED_BUNDLES) {
            bundle_ok |= self.accept_bundle(now, &sender, b);
        }
        let their_installation = InstallationId::new(pm.installation_id.clone()).ok();
        let Some(emp) = pm.encrypted_message.get(self.installation.as_str()) else {
            // The sender's bundle alone: it has none of ours and asks us to start a session.
            if bundle_ok
                && !self
                    .conversations
                    .get(&sender)
                    .is_some_and(Conversation::can_send)
            {
                self.ensure_conversation(&sender);
                self.secure_send(now, &sender, Vec::new());
            }
            return;
        };
        let Some(plain) = self.decrypt_from(now, sender, their_installation, emp) else {
            self.stats.undecryptable += 1;
            return;
        };
        if plain.is_empty() {
            return; // a session start
        }
        match self.mvds.handle_payload(*sender.ed25519_bytes(), &plain) {
            Ok(()) => self.schedule_tick(now),
            Err(e) if e.is_not_mvds() => self.stats.not_mvds += 1,
            Err(_) => {}
        }
    }

    fn decrypt_from(
        &mut self,
        now: Now,
        sender: PublicIdentity,
        their_installation: Option<InstallationId>,
        emp: &EncryptedMessageProtocol,
    ) -> Option<Zeroizing<Vec<u8>>> {
        let msg = ratchet::Message::from_proto(emp).ok()?;
        // Taken out while it is worked on; a new one is only kept if something decrypts.
        let known = self.conversations.contains_key(&sender);
        if !known && self.conversations.len() >= MAX_CONTACTS {
            return None;
        }
        let mut conv = self.conversations.remove(&sender).unwrap_or_default();
        let was_confirmed = conv.confirmed;
        let mut plain = conv.decrypt(&msg);
        let mut responded = false;
        if plain.is_none()
            && let Some(h) = emp.x3dh_header.as_ref()
            && let Ok(header) = InitialHeader::from_proto(h)
            && *header.identity() == sender
            && let Ok(out) = self.prekeys.respond(&header, now_ms(now))
        {
            responded = true;
            let mut session = Session::responder(
                out.shared_secret.as_bytes(),
                out.associated_data.as_bytes(),
                RatchetKeyPair::from(out.signed_pre_key.to_static_secret()),
                self.config.session,
            );
            if let Ok(p) = session.decrypt(&msg) {
                plain = Some(p);
                conv.push_session(SessionEntry {
                    session,
                    initial_header: None,
                    their_installation: their_installation.clone(),
                    received: true,
                });
            }
        }
        let ok = plain.is_some();
        if ok {
            conv.confirmed = true;
            if let (Some(front), Some(inst)) = (conv.sessions.front_mut(), their_installation)
                && front.their_installation.is_none()
            {
                front.their_installation = Some(inst);
            }
        }
        let held: Vec<Vec<u8>> = if ok && conv.can_send() {
            conv.outbox.drain(..).collect()
        } else {
            Vec::new()
        };
        if known || ok {
            self.conversations.insert(sender, conv);
            if !known {
                self.add_negotiated_route(&sender);
            }
        }
        if responded && ok {
            self.persist_prekeys();
        }
        if ok {
            self.persist_conversation(&sender);
            if !was_confirmed {
                self.push_event(MessengerEvent::SessionEstablished { with: sender });
            }
            for payload in held {
                self.secure_send(now, &sender, payload);
            }
        }
        plain
    }

    fn on_mvds_event(&mut self, now: Now, e: mvds::Event<PeerKey>) {
        match e {
            mvds::Event::Delivered(d) => {
                let Some(from) = identity_of(&d.from) else {
                    return;
                };
                self.on_delivery(now, from, d.group, &d.body);
            }
            mvds::Event::Acked { peer, id } => {
                let (Some(to), Some((chat, mid))) =
                    (identity_of(&peer), self.tracked.get(&id).cloned())
                else {
                    return;
                };
                let clock = self
                    .chats
                    .get(&chat)
                    .and_then(|c| c.by_id.get(&mid).copied());
                if let Some(clock) = clock {
                    if let Some(entry) = self
                        .chats
                        .get_mut(&chat)
                        .and_then(|c| c.log.get_mut(&(clock, mid)))
                    {
                        entry.delivered_to.insert(to);
                    }
                    self.persist_message(&chat, clock, mid);
                }
                self.push_event(MessengerEvent::Delivered { chat, id: mid, to });
            }
            mvds::Event::Expired { peer, id } => {
                if let (Some(to), Some((chat, mid))) =
                    (identity_of(&peer), self.tracked.get(&id).cloned())
                {
                    self.push_event(MessengerEvent::SendExpired { chat, id: mid, to });
                }
            }
            mvds::Event::StoreFailed(err) => {
                self.push_event(MessengerEvent::StorageFailed(StorageError::Backend(
                    err.to_string(),
                )));
            }
            _ => {}
        }
    }

    fn on_delivery(&mut self, now: Now, from: PublicIdentity, group: GroupId, body: &[u8]) {
        let Ok(envelope) = SignedPayload::decode(body) else {
            self.stats.envelopes_rejected += 1;
            return;
        };
        // MVDS does not relay: whoever delivered a message wrote it.
        if *envelope.sender() != from {
            self.stats.envelopes_rejected += 1;
            return;
        }
        let one_to_one = GroupId::one_to_one(self.me.ed25519_bytes(), from.ed25519_bytes());
        let me_text = self.me.to_chat_key();
        let chat = ChatId::OneToOne(from);
        match envelope.kind() {
            PayloadType::ChatMessage if group == one_to_one => {
                let ok = ChatMessage::decode(envelope.payload())
                    .ok()
                    .filter(|m| m.message_type == MessageType::OneToOne && m.chat_id == me_text);
                match ok {
                    Some(m) => self.accept_message(now, &chat, envelope.id(), from, m),
                    None => self.stats.payloads_rejected += 1,
                }
            }
            PayloadType::EmojiReaction if group == one_to_one => {
                let ok = EmojiReaction::decode(envelope.payload())
                    .ok()
                    .filter(|r| r.message_type == MessageType::OneToOne && r.chat_id == me_text);
                match ok {
                    Some(r) => self.accept_reaction(now, &chat, from, r),
                    None => self.stats.payloads_rejected += 1,
                }
            }
            PayloadType::MembershipUpdateMessage => {
                match MembershipUpdate::decode(envelope.payload()) {
                    Ok(u) => self.on_group_update(now, from, group, one_to_one, envelope.id(), u),
                    Err(_) => self.stats.payloads_rejected += 1,
                }
            }
            _ => self.stats.payloads_rejected += 1,
        }
    }

    fn on_group_update(
        &mut self,
        now: Now,
        from: PublicIdentity,
        group: GroupId,
        one_to_one: GroupId,
        id: MessageId,
        update: MembershipUpdate,
    ) {
        let chat_id = update.chat_id.clone();
        let sync = group_sync_id(&chat_id);
        // Bare updates may come over the 1:1 channel (to removed members); messages only over
        // the group's own.
        let channel_ok = group == sync || (group == one_to_one && update.entity.is_none());
        if !channel_ok {
            self.stats.payloads_rejected += 1;
            return;
        }
        let known = self.groups.contains_key(&chat_id);
        if !known && self.chats.len() >= MAX_CHATS {
            return;
        }
        let mut g = match self.groups.remove(&chat_id) {
            Some(g) => g,
            None => match Group::new(&chat_id) {
                Ok(g) => g,
                Err(_) => {
                    self.stats.payloads_rejected += 1;
                    return;
                }
            },
        };
        let theirs: BTreeSet<Vec<u8>> = update.events.iter().map(|e| e.encode()).collect();
        let report = g.merge(update.events);
        // Anti-entropy: a sender that lacks events we hold gets our history back over the 1:1
        // channel, so members who joined or were added concurrently converge without waiting
        // for the next message of whoever holds the events.
        let lacking = g.events().any(|e| !theirs.contains(&e.encode()));
        // A group we never belonged to stays unknown.
        if !known && !g.state().ever_members.contains(&self.me) {
            self.stats.payloads_rejected += 1;
            return;
        }
        let chat = ChatId::Group(chat_id.clone());
        let state = g.state().clone();
        self.groups.insert(chat_id.clone(), g);
        if report.changed || !known {
            let c = self.chats.entry(chat.clone()).or_default();
            c.clock = LamportClock::starting_at(c.clock.last().max(state.clock));
            for m in &state.members {
                self.ensure_conversation(m);
            }
            self.persist_group(&chat_id);
            self.persist_chat(&chat);
            self.sync_group_peers(&chat_id);
            self.push_event(MessengerEvent::GroupMembershipChanged {
                chat_id: chat_id.clone(),
                state: state.clone(),
            });
        }
        if lacking && state.ever_members.contains(&from) && state.members.contains(&self.me) {
            let _ = self.send_group_update(now, &chat_id, false, &[from]);
        }
        // Only current members write to the group.
        let member = state.members.contains(&from) && state.members.contains(&self.me);
        match update.entity {
            Some(GroupEntity::Message(m)) if member => self.accept_message(now, &chat, id, from, m),
            Some(GroupEntity::Reaction(r)) if member => self.accept_reaction(now, &chat, from, r),
            Some(_) => self.stats.payloads_rejected += 1,
            None => {}
        }
    }

    fn accept_message(
        &mut self,
        now: Now,
        chat: &ChatId,
        id: MessageId,
        sender: PublicIdentity,
        message: ChatMessage,
    ) {
        if clock::check_received(message.clock, now_ms(now)).is_err() {
            self.stats.payloads_rejected += 1;
            return;
        }
        if !self.chats.contains_key(chat) && self.chats.len() >= MAX_CHATS {
            return;
        }
        let outgoing = sender == self.me;
        if let ChatId::OneToOne(peer) = chat {
            let contact = self.contacts.entry(*peer).or_default();
            if !contact.added && !self.chats.contains_key(chat) {
                self.push_event(MessengerEvent::ContactRequest { from: *peer });
            }
        }
        if !self.record_message(chat, id, sender, message.clone(), outgoing) || outgoing {
            return;
        }
        let entry = ChatEntry {
            id,
            sender,
            message,
            outgoing,
            delivered_to: BTreeSet::new(),
        };
        self.push_event(MessengerEvent::MessageReceived {
            chat: chat.clone(),
            entry,
        });
        self.push_event(MessengerEvent::Notification {
            chat: chat.clone(),
            sender,
            pseudonym: verification::pseudonym(&sender),
        });
    }

    fn accept_reaction(
        &mut self,
        now: Now,
        chat: &ChatId,
        sender: PublicIdentity,
        reaction: EmojiReaction,
    ) {
        if clock::check_received(reaction.clock, now_ms(now)).is_err() {
            self.stats.payloads_rejected += 1;
            return;
        }
        if !self.chats.contains_key(chat) {
            self.stats.payloads_rejected += 1;
            return;
        }
        if self.remember_reaction(chat, &sender, &reaction) {
            if let Some(c) = self.chats.get_mut(chat) {
                c.clock = LamportClock::starting_at(c.clock.last().max(reaction.clock));
            }
            if sender != self.me {
                self.push_event(MessengerEvent::ReactionReceived {
                    chat: chat.clone(),
                    sender,
                    reaction,
                });
            }
        }
    }

    // ----- internals: sending over the secure transport -----

    /// Encrypts an MVDS payload (or an empty session start) for `peer` and publishes it.
    fn secure_send(&mut self, now: Now, peer: &PublicIdentity, payload: Vec<u8>) {
        self.ensure_conversation(peer);
        let mut conv = self.conversations.remove(peer).unwrap_or_default();
        if !conv.can_send() {
            let bundle = self
                .contacts
                .get(peer)
                .and_then(|c| c.bundle.as_ref())
                .and_then(|b| b.verify(peer, now_ms(now), &self.config.bundles).ok());
            let started = bundle.and_then(|b| {
                let installation = b.bundle().pre_keys().keys().next()?.clone();
                let out = b
                    .initiate(&self.identity, &installation, &mut self.rng)
                    .ok()?;
                let session = Session::initiator(
                    &mut self.rng,
                    out.shared_secret.as_bytes(),
                    out.associated_data.as_bytes(),
                    RatchetPublicKey::from(*out.remote_signed_pre_key.as_bytes()),
                    self.config.session,
                )
                .ok()?;
                Some(SessionEntry {
                    session,
                    initial_header: Some(out.header),
                    their_installation: Some(installation),
                    received: false,
                })
            });
            match started {
                Some(entry) => conv.push_session(entry),
                None => {
                    // No bundle: hold the payload and send ours so the peer can start.
                    if !payload.is_empty() {
                        conv.hold(payload);
                    }
                    let due = conv.bundle_sent_ms.is_none_or(|t| {
                        now_ms(now).saturating_sub(t)
                            >= duration_ms(self.config.bundle_request_interval)
                    });
                    if due {
                        conv.bundle_sent_ms = Some(now_ms(now));
                        let pm = ProtocolMessage {
                            installation_id: self.installation.as_str().to_owned(),
                            bundles: vec![self.own_bundle(now).to_proto()],
                            ..Default::default()
                        };
                        let confirmed = conv.confirmed;
                        self.conversations.insert(*peer, conv);
                        self.publish_private(now, peer, confirmed, &pm.encode_to_vec());
                        return;
                    }
                    self.conversations.insert(*peer, conv);
                    return;
                }
            }
        }
        let Some(entry) = conv.sessions.front_mut() else {
            self.conversations.insert(*peer, conv);
            return;
        };
        let Ok(message) = entry.session.encrypt(&mut self.rng, &payload) else {
            self.conversations.insert(*peer, conv);
            return;
        };
        let mut emp = message.to_proto();
        if let Some(h) = &entry.initial_header {
            emp.x3dh_header = Some(h.to_proto());
        }
        let key = entry
            .their_installation
            .as_ref()
            .map(|i| i.as_str().to_owned())
            .unwrap_or_default();
        let confirmed = conv.confirmed;
        self.conversations.insert(*peer, conv);
        self.persist_conversation(peer);
        let mut encrypted = BTreeMap::new();
        encrypted.insert(key, emp);
        let pm = ProtocolMessage {
            installation_id: self.installation.as_str().to_owned(),
            bundles: vec![self.own_bundle(now).to_proto()],
            encrypted_message: encrypted.into_iter().collect(),
            public_message: Vec::new(),
        };
        self.publish_private(now, peer, confirmed, &pm.encode_to_vec());
    }

    /// Seals `bytes` to `peer` (signed by us) and publishes it on the negotiated topic once the
    /// peer has answered, on its partitioned topic before.
    fn publish_private(&mut self, now: Now, peer: &PublicIdentity, confirmed: bool, bytes: &[u8]) {
        let topic = match (confirmed, negotiated_topic(&self.identity, peer)) {
            (true, Some(t)) => t,
            _ => StatusTopic::partitioned(peer.ed25519_bytes()),
        };
        let recipient = x3dh::x25519_dalek::PublicKey::from(peer.x25519().to_bytes());
        let Ok(pieces) = segment::split(bytes, self.segment_limit()) else {
            self.stats.publish_failed += 1;
            return;
        };
        for piece in pieces {
            match wp::seal_asymmetric(&mut self.rng, &recipient, &piece, Some(&self.signing)) {
                Ok(sealed) => self.publish(now, topic.content_topic(), sealed),
                Err(_) => self.stats.publish_failed += 1,
            }
        }
    }

    // ----- the run loop -----

    /// Drains what the parts produced and routes it, until nothing moves.
    fn pump(&mut self, now: Now) {
        loop {
            let mut moved = false;
            while let Some(e) = self.waku.poll_event() {
                moved = true;
                match e {
                    NodeEvent::Message {
                        pubsub_topic,
                        message,
                        ..
                    } => self.on_waku_message(now, &pubsub_topic, &message),
                    NodeEvent::Store(e) => self.on_store_event(now, e),
                    NodeEvent::LightPush(e) => self.on_lightpush(e),
                    NodeEvent::DisconnectPeer { peer, .. } => {
                        self.push_event(MessengerEvent::DisconnectPeer { peer });
                    }
                    NodeEvent::PeerExchange(PeerExchangeClientEvent::Records {
                        peer,
                        records,
                        ..
                    }) if !records.is_empty() => {
                        self.push_event(MessengerEvent::PeersDiscovered {
                            from: peer,
                            records,
                        });
                    }
                    _ => {}
                }
            }
            while let Some(e) = self.mvds.poll_event() {
                moved = true;
                self.on_mvds_event(now, e);
            }
            while let Some(t) = self.mvds.poll_transmit() {
                moved = true;
                if let Some(peer) = identity_of(&t.to) {
                    self.secure_send(now, &peer, t.bytes);
                }
            }
            if !moved {
                break;
            }
        }
        if !self.backfills.is_empty()
            && !self.store_peers.is_empty()
            && self.next_backfill_retry.is_none()
        {
            self.start_backfills(now);
        }
        self.flush_unsent(now);
    }

    fn mvds_has_work(&self) -> bool {
        self.mvds.outstanding_total() > 0 || self.mvds.pending_acks() > 0
    }
}

/// The storage key of a reaction record: chat, message, sender, emoji.
fn reaction_key(chat: &ChatId, (message, sender, emoji): (MessageId, [u8; 32], Emoji)) -> Vec<u8> {
    Writer::new()
        .bytes(&chat.storage_key())
        .bytes(message.as_bytes())
        .bytes(&sender)
        .u8(emoji as u8)
        .finish()
}

impl<S: Storage, M: SyncStore<PeerKey>> Messenger<S, M> {
    /// What a new connection changes for the Messenger, whichever side dialled.
    fn peer_up(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        // A peer that can carry our messages: a relay peer, or a lightpush service node.
        let carries = if self.waku.capabilities().is_relaying() {
            protocols.contains(&Protocol::Relay)
        } else {
            protocols.contains(&Protocol::LightPush)
        };
        if carries {
            let was_offline = self.service_peers.is_empty();
            self.service_peers.insert(peer);
            if was_offline {
                if let Some(since) = self.offline_since_ms.take() {
                    let from = since.saturating_sub(duration_ms(self.config.backfill_margin));
                    let topics: Vec<ContentTopic> = self.routes.keys().cloned().collect();
                    self.queue_backfill(topics, ms_to_nanos(from));
                }
                self.next_online_mark = Some(now.instant);
                let peers: Vec<PeerKey> = self
                    .conversations
                    .keys()
                    .map(|k| *k.ed25519_bytes())
                    .collect();
                for p in peers {
                    self.mvds.handle_peer_online(&p);
                }
                self.schedule_tick(now);
            }
        }
        if protocols.contains(&Protocol::StoreQuery) {
            self.store_peers.insert(peer);
        }
        if let Some(n) = self.config.peer_exchange
            && protocols.contains(&Protocol::PeerExchange)
        {
            // Refused only with too many requests in flight; the next server gets asked.
            let _ = self.waku.request_peers(now, Some(peer), n);
        }
        self.pump(now);
    }
}

impl<S: Storage, M: SyncStore<PeerKey>> Machine for Messenger<S, M> {
    type Event = MessengerEvent;

    fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.enter(now);
        self.waku.handle_connected(now, peer, protocols);
        self.peer_up(now, peer, protocols);
    }

    fn handle_dialed(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.enter(now);
        self.waku.handle_dialed(now, peer, protocols);
        self.peer_up(now, peer, protocols);
    }

    fn handle_disconnected(&mut self, now: Now, peer: PeerId) {
        self.enter(now);
        self.waku.handle_disconnected(now, peer);
        if self.service_peers.remove(&peer) && self.service_peers.is_empty() {
            let t = now_ms(now);
            self.offline_since_ms = Some(t);
            self.next_online_mark = None;
            self.commit(vec![StorageOp::Put {
                table: Table::Meta,
                key: b"last_online_ms".to_vec(),
                value: t.to_be_bytes().to_vec(),
            }]);
        }
        self.store_peers.remove(&peer);
        self.pump(now);
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        self.enter(now);
        self.waku.handle_frame(now, from, protocol, kind, frame);
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Now) {
        self.enter(now);
        if self.waku.poll_timeout().is_some_and(|t| t <= now.instant) {
            self.waku.handle_timeout(now);
        }
        self.reassembler.handle_timeout(now.instant);
        if self.next_tick.is_some_and(|t| t <= now.instant) {
            self.next_tick = None;
            let _ = self.mvds.handle_tick();
            self.pump(now);
            if self.mvds_has_work() {
                self.next_tick = Some(now.instant + self.config.mvds_epoch);
            }
        }
        if self.prekeys.poll_timeout() <= now_ms(now) {
            if self.prekeys.handle_timeout(now_ms(now), &mut self.rng) {
                self.own_bundle = None;
                self.next_bundle = Some(now.instant);
            }
            self.persist_prekeys();
        }
        if self.next_bundle.is_some_and(|t| t <= now.instant) {
            self.next_bundle = Some(now.instant + self.config.bundle_interval);
            self.publish_bundle(now);
        }
        if self.next_backfill_retry.is_some_and(|t| t <= now.instant) {
            self.next_backfill_retry = None;
        }
        if self.next_online_mark.is_some_and(|t| t <= now.instant) {
            self.next_online_mark = Some(now.instant + ONLINE_MARK_INTERVAL);
            self.commit(vec![StorageOp::Put {
                table: Table::Meta,
                key: b"last_online_ms".to_vec(),
                value: now_ms(now).to_be_bytes().to_vec(),
            }]);
        }
        self.pump(now);
        if self.next_tick.is_none() && self.mvds_has_work() {
            self.next_tick = Some(now.instant + self.config.mvds_epoch);
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.waku.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<MessengerEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let prekeys = {
            let due = self.prekeys.poll_timeout();
            let now = now_ms(self.last_now);
            Some(self.last_now.instant + Duration::from_millis(due.saturating_sub(now)))
        };
        [
            self.waku.poll_timeout(),
            self.reassembler.poll_timeout(),
            self.next_tick,
            self.next_bundle,
            self.next_online_mark,
            self.next_backfill_retry,
            prekeys,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What the Messenger's Waku node serves. Protocols it only uses as a client (store queries;
    /// lightpush and filter subscriptions on a light node) are not listed: drivers carry a
    /// request to any peer that serves its protocol.
    fn protocols(&self) -> Vec<Protocol> {
        self.waku.protocols()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn ms_to_nanos(ms: u64) -> i64 {
    i64::try_from(ms)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000)
}

fn identity_of_slice(bytes: &[u8]) -> Option<PublicIdentity> {
    PublicIdentity::from_bytes(bytes).ok()
}

fn message_key(chat: &ChatId, clock: u64, id: MessageId) -> Vec<u8> {
    let chat_key = chat.storage_key();
    let mut out = Vec::with_capacity(4 + chat_key.len() + 8 + 32);
    out.extend_from_slice(
        &u32::try_from(chat_key.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&chat_key);
    out.extend_from_slice(&clock.to_be_bytes());
    out.extend_from_slice(id.as_bytes());
    out
}

fn split_message_key(bytes: &[u8]) -> Option<(ChatId, u64, MessageId)> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let (chat, rest) = rest.split_at_checked(usize::try_from(u32::from_be_bytes(*len)).ok()?)?;
    let (clock, id) = rest.split_first_chunk::<8>()?;
    let id: [u8; 32] = id.try_into().ok()?;
    Some((
        ChatId::from_storage_key(chat)?,
        u64::from_be_bytes(*clock),
        MessageId(id),
    ))
}

fn new_uuid(rng: &mut impl Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..32).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests;
