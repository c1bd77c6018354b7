//! Private group chats: signed membership events and the state every member derives from them.
//!
//! A private group has no topic of its own: every message goes 1:1 to each member over the secure
//! transport (the design article). Its membership is the result of a history of signed events
//! (`MembershipUpdateEvent`, WIRE.md B.23) that travels with every group message in a
//! `MembershipUpdateMessage` ([`MembershipUpdate`]), so a member who missed an event learns it from
//! the next message of anyone who has it.
//!
//! # Events on the wire
//!
//! Each entry of `MembershipUpdateMessage.events` is
//!
//! ```text
//! signer's Ed25519 chat key (32) ‖ Ed25519 signature (64) ‖ encoded MembershipUpdateEvent
//! ```
//!
//! (status-go puts a 65-byte recoverable secp256k1 signature first; Ed25519 needs the key next to
//! it). The signature covers
//!
//! ```text
//! EVENT_SIGNATURE_CONTEXT ‖ u32_be(len(chat_id)) ‖ chat_id ‖ encoded event
//! ```
//!
//! so an event cannot be moved to another group, nor replayed as any other kind of signature.
//! The chat id is `UUIDv4 ‖ "-" ‖ creator's chat key` (`0x` + hex), as in status-go, so the
//! creator is known from the id alone.
//!
//! # The rules
//!
//! Events are applied in the order of (clock, signer, Keccak-256 of the encoded event), a total
//! order every member computes alike. An event that breaks a rule at its place in that order is
//! skipped ([`RuleError`]):
//!
//! | event | who may sign it | condition |
//! |---|---|---|
//! | `CHAT_CREATED` (name) | the creator named in the chat id | first; makes the creator member, admin and joined |
//! | `NAME_CHANGED`, `COLOR_CHANGED` | an admin | |
//! | `MEMBERS_ADDED` (keys) | an admin | none already a member; at most [`MAX_MEMBERS`] members in all |
//! | `MEMBER_JOINED` | the joining member | invited (a member) and not joined yet |
//! | `MEMBER_REMOVED` (key) | that member (leaving), or an admin removing a non-admin | the key is a member |
//! | `ADMINS_ADDED` (keys) | an admin | each a member and not yet an admin |
//! | `ADMIN_REMOVED` (key) | that admin only (stepping down) | |
//!
//! Because the state is a function of the *set* of events alone ([`Group::merge`] refolds the
//! whole history after adding new events), every member that holds the same events has the same
//! membership, whatever order the events arrived in; events that are skipped now stay in the
//! history and apply if an earlier event that authorises them arrives later. A forged event
//! (bad signature, key not the signer's, another chat id) never enters a history; events signed
//! by someone who never was a member are refused, so strangers cannot fill a group's history,
//! which is bounded by [`MAX_EVENTS`].

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use proto::status as pb;
use rand_core::CryptoRng;
use x3dh::{IdentityKeyPair, PublicIdentity};

use crate::chat::{ChatMessage, EmojiReaction, MAX_CHAT_MESSAGE_LEN, ValidationError};
use crate::id::keccak256;
use crate::metadata::{PUBLIC_KEY_LEN, SIGNATURE_LEN};

/// The domain-separation prefix of membership-event signatures.
pub const EVENT_SIGNATURE_CONTEXT: &[u8] = b"status-rs membership event v1";

/// Most members of a private group (status-go's cap).
pub const MAX_MEMBERS: usize = 20;

/// Most events in a group's history; further events are refused. A group changes membership
/// rarely, and every group message carries the whole history, so this also bounds message size.
pub const MAX_EVENTS: usize = 256;

/// Longest group name, in bytes.
pub const MAX_GROUP_NAME_LEN: usize = 128;

/// Longest group color, in bytes (`#rrggbbaa` is 9).
pub const MAX_COLOR_LEN: usize = 32;

/// Longest signed event: key, signature and an event naming [`MAX_MEMBERS`] members
/// (66-character keys) with the longest name and color, with room to spare.
pub const MAX_EVENT_LEN: usize = 2048;

/// Largest encoded `MembershipUpdateMessage` accepted: a full history and the largest message.
pub const MAX_MEMBERSHIP_UPDATE_LEN: usize =
    MAX_EVENTS * (MAX_EVENT_LEN + 4) + MAX_CHAT_MESSAGE_LEN + 1024;

/// Length of a chat key written as `0x` + hex.
const CHAT_KEY_TEXT_LEN: usize = 2 + 2 * PUBLIC_KEY_LEN;

/// What a membership event does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupEventKind {
    /// `CHAT_CREATED`: the creator founds the group with a name.
    Created {
        /// The group's name.
        name: String,
    },
    /// `NAME_CHANGED`.
    NameChanged {
        /// The new name.
        name: String,
    },
    /// `MEMBERS_ADDED`: invites members.
    MembersAdded {
        /// Who is added.
        members: BTreeSet<PublicIdentity>,
    },
    /// `MEMBER_JOINED`: the signer accepts the invitation.
    MemberJoined,
    /// `MEMBER_REMOVED`: a member leaves, or an admin removes a non-admin.
    MemberRemoved {
        /// Who is removed.
        member: PublicIdentity,
    },
    /// `ADMINS_ADDED`.
    AdminsAdded {
        /// Members who become admins.
        admins: BTreeSet<PublicIdentity>,
    },
    /// `ADMIN_REMOVED`: an admin steps down.
    AdminRemoved {
        /// The admin stepping down (the signer).
        admin: PublicIdentity,
    },
    /// `COLOR_CHANGED`.
    ColorChanged {
        /// The new color.
        color: String,
    },
}

/// A membership event with its Lamport clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEvent {
    /// The group chat's Lamport clock when the event was made.
    pub clock: u64,
    /// What it does.
    pub kind: GroupEventKind,
}

/// Why bytes are not a valid signed event (or an event cannot be signed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Longer than [`MAX_EVENT_LEN`].
    #[error("event of {len} bytes exceeds {MAX_EVENT_LEN}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Shorter than a key and a signature.
    #[error("event shorter than its key and signature")]
    Short,
    /// The signer's key is not a valid Ed25519 public key.
    #[error("bad signer key")]
    BadKey,
    /// The signature does not verify for this chat id: forged, altered or from another group.
    #[error("the event's signature does not verify")]
    BadSignature,
    /// Not a protobuf `MembershipUpdateEvent`.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// A clock of zero.
    #[error("event clock is zero")]
    ZeroClock,
    /// An event type status-rs does not support (unknown, or `IMAGE_CHANGED`).
    #[error("unsupported event type {0}")]
    UnsupportedType(i32),
    /// A field that does not fit the event type (a name too long or missing, members where
    /// none belong, the wrong number of members, …).
    #[error("bad {0} for this event type")]
    BadField(&'static str),
    /// A member key that is not a chat key.
    #[error("bad member key")]
    BadMember,
}

/// Why an event does not apply at its place in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// A second `CHAT_CREATED`.
    #[error("the group already exists")]
    AlreadyCreated,
    /// An event before `CHAT_CREATED`.
    #[error("the group was not created yet")]
    NotCreated,
    /// `CHAT_CREATED` by someone other than the creator in the chat id.
    #[error("only the creator named in the chat id creates the group")]
    NotCreator,
    /// The signer is not an admin.
    #[error("the signer is not an admin")]
    NotAdmin,
    /// The signer (or the key named) is not a member.
    #[error("not a member")]
    NotMember,
    /// A key added is already a member.
    #[error("already a member")]
    AlreadyMember,
    /// The member joined already.
    #[error("already joined")]
    AlreadyJoined,
    /// A key made admin is already an admin.
    #[error("already an admin")]
    AlreadyAdmin,
    /// An admin cannot be removed by someone else; they step down first.
    #[error("an admin can only be removed by themselves")]
    CannotRemoveAdmin,
    /// Only an admin themselves may step down.
    #[error("only the admin themselves may step down")]
    OnlySelf,
    /// The group would exceed [`MAX_MEMBERS`].
    #[error("more than {MAX_MEMBERS} members")]
    TooManyMembers,
    /// The signer never was a member of this group.
    #[error("the signer never was a member")]
    Stranger,
    /// The history holds [`MAX_EVENTS`] events already.
    #[error("the group history is full")]
    TooManyEvents,
}

/// Why a group command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The chat id is not `UUID-0x<chat key>`.
    #[error("not a private group chat id")]
    BadChatId,
    /// The event is malformed.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The event would not apply.
    #[error(transparent)]
    Rule(#[from] RuleError),
}

/// A membership event signed by its author, as it travels.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedGroupEvent {
    signer: PublicIdentity,
    signature: [u8; SIGNATURE_LEN],
    event_bytes: Vec<u8>,
    event: GroupEvent,
    digest: [u8; 32],
}

impl core::fmt::Debug for SignedGroupEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SignedGroupEvent")
            .field("signer", &self.signer)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

type EventKey = (u64, [u8; PUBLIC_KEY_LEN], [u8; 32]);

fn event_signing_input(chat_id: &str, event_bytes: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(EVENT_SIGNATURE_CONTEXT.len() + 4 + chat_id.len() + event_bytes.len());
    out.extend_from_slice(EVENT_SIGNATURE_CONTEXT);
    out.extend_from_slice(&(chat_id.len() as u32).to_be_bytes());
    out.extend_from_slice(chat_id.as_bytes());
    out.extend_from_slice(event_bytes);
    out
}

fn parse_key(s: &str) -> Result<PublicIdentity, EventError> {
    PublicIdentity::from_chat_key(s).map_err(|_| EventError::BadMember)
}

fn check_text(value: &str, max: usize, field: &'static str) -> Result<(), EventError> {
    if value.is_empty() || value.len() > max {
        return Err(EventError::BadField(field));
    }
    Ok(())
}

impl GroupEvent {
    fn to_proto(&self) -> pb::MembershipUpdateEvent {
        use pb::membership_update_event::EventType;
        let keys = |set: &BTreeSet<PublicIdentity>| set.iter().map(|k| k.to_chat_key()).collect();
        let mut out = pb::MembershipUpdateEvent {
            clock: self.clock,
            ..Default::default()
        };
        let kind = match &self.kind {
            GroupEventKind::Created { name } => {
                out.name = name.clone();
                EventType::ChatCreated
            }
            GroupEventKind::NameChanged { name } => {
                out.name = name.clone();
                EventType::NameChanged
            }
            GroupEventKind::MembersAdded { members } => {
                out.members = keys(members);
                EventType::MembersAdded
            }
            GroupEventKind::MemberJoined => EventType::MemberJoined,
            GroupEventKind::MemberRemoved { member } => {
                out.members = vec![member.to_chat_key()];
                EventType::MemberRemoved
            }
            GroupEventKind::AdminsAdded { admins } => {
                out.members = keys(admins);
                EventType::AdminsAdded
            }
            GroupEventKind::AdminRemoved { admin } => {
                out.members = vec![admin.to_chat_key()];
                EventType::AdminRemoved
            }
            GroupEventKind::ColorChanged { color } => {
                out.color = color.clone();
                EventType::ColorChanged
            }
        };
        out.r#type = kind as i32;
        out
    }

    fn from_proto(msg: pb::MembershipUpdateEvent) -> Result<Self, EventError> {
        use pb::membership_update_event::EventType;
        if msg.clock == 0 {
            return Err(EventError::ZeroClock);
        }
        if !msg.image.is_empty() {
            return Err(EventError::BadField("image"));
        }
        let kind =
            EventType::try_from(msg.r#type).map_err(|_| EventError::UnsupportedType(msg.r#type))?;
        let uses_name = matches!(kind, EventType::ChatCreated | EventType::NameChanged);
        let uses_color = kind == EventType::ColorChanged;
        let uses_members = matches!(
            kind,
            EventType::MembersAdded
                | EventType::MemberRemoved
                | EventType::AdminsAdded
                | EventType::AdminRemoved
        );
        if !uses_name && !msg.name.is_empty() {
            return Err(EventError::BadField("name"));
        }
        if !uses_color && !msg.color.is_empty() {
            return Err(EventError::BadField("color"));
        }
        if !uses_members && !msg.members.is_empty() {
            return Err(EventError::BadField("members"));
        }
        let key_set = |members: &[String]| -> Result<BTreeSet<PublicIdentity>, EventError> {
            if members.is_empty() || members.len() > MAX_MEMBERS {
                return Err(EventError::BadField("members"));
            }
            let set = members
                .iter()
                .map(|m| parse_key(m))
                .collect::<Result<BTreeSet<_>, _>>()?;
            if set.len() != members.len() {
                return Err(EventError::BadField("members"));
            }
            Ok(set)
        };
        let single = |members: &[String]| -> Result<PublicIdentity, EventError> {
            match members {
                [one] => parse_key(one),
                _ => Err(EventError::BadField("members")),
            }
        };
        let kind = match kind {
            EventType::ChatCreated => {
                check_text(&msg.name, MAX_GROUP_NAME_LEN, "name")?;
                GroupEventKind::Created { name: msg.name }
            }
            EventType::NameChanged => {
                check_text(&msg.name, MAX_GROUP_NAME_LEN, "name")?;
                GroupEventKind::NameChanged { name: msg.name }
            }
            EventType::ColorChanged => {
                check_text(&msg.color, MAX_COLOR_LEN, "color")?;
                GroupEventKind::ColorChanged { color: msg.color }
            }
            EventType::MembersAdded => GroupEventKind::MembersAdded {
                members: key_set(&msg.members)?,
            },
            EventType::MemberJoined => GroupEventKind::MemberJoined,
            EventType::MemberRemoved => GroupEventKind::MemberRemoved {
                member: single(&msg.members)?,
            },
            EventType::AdminsAdded => GroupEventKind::AdminsAdded {
                admins: key_set(&msg.members)?,
            },
            EventType::AdminRemoved => GroupEventKind::AdminRemoved {
                admin: single(&msg.members)?,
            },
            EventType::Unknown | EventType::ImageChanged => {
                return Err(EventError::UnsupportedType(msg.r#type));
            }
        };
        Ok(GroupEvent {
            clock: msg.clock,
            kind,
        })
    }
}

impl SignedGroupEvent {
    /// Signs `event` for the group `chat_id`.
    ///
    /// # Errors
    /// [`EventError`] if the event breaks a format rule (it is checked exactly as a receiver
    /// would check it).
    pub fn sign(
        key: &IdentityKeyPair,
        chat_id: &str,
        event: GroupEvent,
    ) -> Result<Self, EventError> {
        let event_bytes = event.to_proto().encode_to_vec();
        if event_bytes.len() + PUBLIC_KEY_LEN + SIGNATURE_LEN > MAX_EVENT_LEN {
            return Err(EventError::TooLarge {
                len: event_bytes.len() + PUBLIC_KEY_LEN + SIGNATURE_LEN,
            });
        }
        // The receiver's checks, so that nothing unacceptable is ever signed.
        let checked = GroupEvent::from_proto(event.to_proto())?;
        let signature = key.sign(&event_signing_input(chat_id, &event_bytes));
        Ok(SignedGroupEvent {
            signer: *key.public(),
            signature,
            digest: keccak256(&[&event_bytes]),
            event_bytes,
            event: checked,
        })
    }

    /// Decodes and verifies one entry of `MembershipUpdateMessage.events` for group `chat_id`.
    ///
    /// # Errors
    /// [`EventError`].
    pub fn decode(chat_id: &str, bytes: &[u8]) -> Result<Self, EventError> {
        if bytes.len() > MAX_EVENT_LEN {
            return Err(EventError::TooLarge { len: bytes.len() });
        }
        let (key, rest) = bytes
            .split_at_checked(PUBLIC_KEY_LEN)
            .ok_or(EventError::Short)?;
        let (signature, event_bytes) = rest
            .split_at_checked(SIGNATURE_LEN)
            .ok_or(EventError::Short)?;
        let signer = PublicIdentity::from_bytes(key).map_err(|_| EventError::BadKey)?;
        if !signer.verify(&event_signing_input(chat_id, event_bytes), signature) {
            return Err(EventError::BadSignature);
        }
        let signature: [u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| EventError::Short)?;
        let msg = pb::MembershipUpdateEvent::decode(event_bytes)
            .map_err(|e| EventError::Malformed(e.to_string()))?;
        let event = GroupEvent::from_proto(msg)?;
        Ok(SignedGroupEvent {
            signer,
            signature,
            digest: keccak256(&[event_bytes]),
            event_bytes: event_bytes.to_vec(),
            event,
        })
    }

    /// The wire form: key ‖ signature ‖ encoded event.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PUBLIC_KEY_LEN + SIGNATURE_LEN + self.event_bytes.len());
        out.extend_from_slice(self.signer.ed25519_bytes());
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.event_bytes);
        out
    }

    /// Who signed it.
    pub fn signer(&self) -> &PublicIdentity {
        &self.signer
    }

    /// The event.
    pub fn event(&self) -> &GroupEvent {
        &self.event
    }

    fn key(&self) -> EventKey {
        (self.event.clock, *self.signer.ed25519_bytes(), self.digest)
    }
}

/// The membership a history of events leads to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    /// Whether `CHAT_CREATED` applied.
    pub created: bool,
    /// The group's name.
    pub name: String,
    /// The group's color (empty until set).
    pub color: String,
    /// Current members (invited or joined).
    pub members: BTreeSet<PublicIdentity>,
    /// Current admins (always members).
    pub admins: BTreeSet<PublicIdentity>,
    /// Members who joined (accepted the invitation).
    pub joined: BTreeSet<PublicIdentity>,
    /// Everyone who ever was a member, the creator included.
    pub ever_members: BTreeSet<PublicIdentity>,
    /// The largest clock among applied events.
    pub clock: u64,
}

impl GroupState {
    fn apply(&mut self, creator: &PublicIdentity, e: &SignedGroupEvent) -> Result<(), RuleError> {
        let signer = e.signer;
        let is_admin = self.admins.contains(&signer);
        match &e.event.kind {
            GroupEventKind::Created { name } => {
                if self.created {
                    return Err(RuleError::AlreadyCreated);
                }
                if signer != *creator {
                    return Err(RuleError::NotCreator);
                }
                self.created = true;
                self.name.clone_from(name);
                self.members.insert(signer);
                self.admins.insert(signer);
                self.joined.insert(signer);
                self.ever_members.insert(signer);
            }
            _ if !self.created => return Err(RuleError::NotCreated),
            GroupEventKind::NameChanged { name } => {
                if !is_admin {
                    return Err(RuleError::NotAdmin);
                }
                self.name.clone_from(name);
            }
            GroupEventKind::ColorChanged { color } => {
                if !is_admin {
                    return Err(RuleError::NotAdmin);
                }
                self.color.clone_from(color);
            }
            GroupEventKind::MembersAdded { members } => {
                if !is_admin {
                    return Err(RuleError::NotAdmin);
                }
                if members.iter().any(|m| self.members.contains(m)) {
                    return Err(RuleError::AlreadyMember);
                }
                if self.members.len() + members.len() > MAX_MEMBERS {
                    return Err(RuleError::TooManyMembers);
                }
                self.members.extend(members.iter().copied());
                self.ever_members.extend(members.iter().copied());
            }
            GroupEventKind::MemberJoined => {
                if !self.members.contains(&signer) {
                    return Err(RuleError::NotMember);
                }
                if !self.joined.insert(signer) {
                    return Err(RuleError::AlreadyJoined);
                }
            }
            GroupEventKind::MemberRemoved { member } => {
                if !self.members.contains(member) {
                    return Err(RuleError::NotMember);
                }
                if *member != signer {
                    if !is_admin {
                        return Err(RuleError::NotAdmin);
                    }
                    if self.admins.contains(member) {
                        return Err(RuleError::CannotRemoveAdmin);
                    }
                }
                self.members.remove(member);
                self.admins.remove(member);
                self.joined.remove(member);
            }
            GroupEventKind::AdminsAdded { admins } => {
                if !is_admin {
                    return Err(RuleError::NotAdmin);
                }
                if admins.iter().any(|a| !self.members.contains(a)) {
                    return Err(RuleError::NotMember);
                }
                if admins.iter().any(|a| self.admins.contains(a)) {
                    return Err(RuleError::AlreadyAdmin);
                }
                self.admins.extend(admins.iter().copied());
            }
            GroupEventKind::AdminRemoved { admin } => {
                if *admin != signer {
                    return Err(RuleError::OnlySelf);
                }
                if !is_admin {
                    return Err(RuleError::NotAdmin);
                }
                self.admins.remove(admin);
            }
        }
        self.clock = self.clock.max(e.event.clock);
        Ok(())
    }
}

/// What [`Group::merge`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Whether the membership state changed.
    pub changed: bool,
    /// Events newly added to the history.
    pub added: usize,
    /// Events refused or (for those kept in the history) not applying, by index in the input.
    pub rejected: Vec<(usize, RuleError)>,
}

/// A private group: its id, its event history and the state derived from it.
#[derive(Debug, Clone)]
pub struct Group {
    chat_id: String,
    creator: PublicIdentity,
    events: BTreeMap<EventKey, SignedGroupEvent>,
    // Why each event of the history is skipped, if it is.
    skipped: BTreeMap<EventKey, RuleError>,
    state: GroupState,
}

/// The creator's key from a chat id `UUID-0x<hex>`.
///
/// # Errors
/// [`GroupError::BadChatId`].
pub fn creator_of(chat_id: &str) -> Result<PublicIdentity, GroupError> {
    let (uuid, key) = chat_id.rsplit_once('-').ok_or(GroupError::BadChatId)?;
    if key.len() != CHAT_KEY_TEXT_LEN
        || uuid.len() != 36
        || chat_id.len() > crate::chat::MAX_CHAT_ID_LEN
    {
        return Err(GroupError::BadChatId);
    }
    PublicIdentity::from_chat_key(key).map_err(|_| GroupError::BadChatId)
}

/// A new private-group chat id: a random UUID v4, a dash and the creator's chat key.
pub fn new_chat_id(rng: &mut (impl CryptoRng + ?Sized), creator: &PublicIdentity) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32],
        creator.to_chat_key()
    )
}

impl Group {
    /// An empty group with this id, to merge received events into.
    ///
    /// # Errors
    /// [`GroupError::BadChatId`].
    pub fn new(chat_id: &str) -> Result<Self, GroupError> {
        let creator = creator_of(chat_id)?;
        Ok(Group {
            chat_id: chat_id.to_owned(),
            creator,
            events: BTreeMap::new(),
            skipped: BTreeMap::new(),
            state: GroupState::default(),
        })
    }

    /// Creates a group: `CHAT_CREATED` at `clock` and, if `members` is not empty,
    /// `MEMBERS_ADDED` at `clock + 1`, both signed by `key`.
    ///
    /// # Errors
    /// [`GroupError`] for a bad name or too many members.
    pub fn create(
        key: &IdentityKeyPair,
        rng: &mut (impl CryptoRng + ?Sized),
        name: &str,
        members: &[PublicIdentity],
        clock: u64,
    ) -> Result<Self, GroupError> {
        let chat_id = new_chat_id(rng, key.public());
        let mut group = Group::new(&chat_id)?;
        group.propose(
            key,
            GroupEvent {
                clock,
                kind: GroupEventKind::Created {
                    name: name.to_owned(),
                },
            },
        )?;
        let invited: BTreeSet<PublicIdentity> = members
            .iter()
            .copied()
            .filter(|m| m != key.public())
            .collect();
        if !invited.is_empty() {
            group.propose(
                key,
                GroupEvent {
                    clock: clock.saturating_add(1),
                    kind: GroupEventKind::MembersAdded { members: invited },
                },
            )?;
        }
        Ok(group)
    }

    /// Signs an event, checks that it applies after the current history, and adds it.
    ///
    /// # Errors
    /// [`GroupError`]; the group is then unchanged.
    pub fn propose(
        &mut self,
        key: &IdentityKeyPair,
        event: GroupEvent,
    ) -> Result<SignedGroupEvent, GroupError> {
        let signed = SignedGroupEvent::sign(key, &self.chat_id, event)?;
        let mut trial = self.clone();
        let report = trial.merge(vec![signed.clone()]);
        if let Some((_, reason)) = report.rejected.first() {
            return Err(GroupError::Rule(*reason));
        }
        *self = trial;
        Ok(signed)
    }

    /// Adds received events to the history and recomputes the state from the whole history.
    pub fn merge(&mut self, events: Vec<SignedGroupEvent>) -> MergeReport {
        let mut report = MergeReport::default();
        let mut new_keys = Vec::new();
        let before = self.state.clone();
        let mut waiting: Vec<(usize, SignedGroupEvent)> = events.into_iter().enumerate().collect();
        // Events by members that this very batch adds become acceptable once the batch's
        // earlier events are applied: repeat until a round accepts nothing new.
        loop {
            let mut progress = false;
            let mut strangers = Vec::new();
            for (index, e) in waiting {
                let key = e.key();
                if self.events.contains_key(&key) {
                    continue;
                }
                let known = e.signer == self.creator || self.state.ever_members.contains(&e.signer);
                if !known {
                    strangers.push((index, e));
                    continue;
                }
                if self.events.len() >= MAX_EVENTS {
                    report.rejected.push((index, RuleError::TooManyEvents));
                    continue;
                }
                self.events.insert(key, e);
                new_keys.push((index, key));
                report.added += 1;
                progress = true;
            }
            waiting = strangers;
            if !progress {
                break;
            }
            self.refold();
        }
        report.rejected.extend(
            waiting
                .into_iter()
                .map(|(index, _)| (index, RuleError::Stranger)),
        );
        if report.added == 0 {
            report.rejected.sort_by_key(|(i, _)| *i);
            return report;
        }
        for (index, key) in new_keys {
            if let Some(reason) = self.skipped.get(&key) {
                report.rejected.push((index, *reason));
            }
        }
        report.rejected.sort_by_key(|(i, _)| *i);
        report.changed = before != self.state;
        report
    }

    fn refold(&mut self) {
        let mut state = GroupState::default();
        let mut skipped = BTreeMap::new();
        for (key, e) in &self.events {
            if let Err(reason) = state.apply(&self.creator, e) {
                skipped.insert(*key, reason);
            }
        }
        self.state = state;
        self.skipped = skipped;
    }

    /// The chat id.
    pub fn chat_id(&self) -> &str {
        &self.chat_id
    }

    /// The creator (from the chat id).
    pub fn creator(&self) -> &PublicIdentity {
        &self.creator
    }

    /// The current state.
    pub fn state(&self) -> &GroupState {
        &self.state
    }

    /// Whether `key` is a current member.
    pub fn is_member(&self, key: &PublicIdentity) -> bool {
        self.state.members.contains(key)
    }

    /// The whole history in application order, as it travels.
    pub fn events(&self) -> impl Iterator<Item = &SignedGroupEvent> {
        self.events.values()
    }

    /// A `MembershipUpdateMessage` carrying the whole history and `entity`.
    pub fn update(&self, entity: Option<GroupEntity>) -> MembershipUpdate {
        MembershipUpdate {
            chat_id: self.chat_id.clone(),
            events: self.events.values().cloned().collect(),
            entity,
        }
    }
}

/// The message or reaction a `MembershipUpdateMessage` carries besides the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEntity {
    /// A chat message of the group.
    Message(ChatMessage),
    /// A reaction in the group.
    Reaction(EmojiReaction),
}

/// A decoded, verified `MembershipUpdateMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipUpdate {
    /// The group.
    pub chat_id: String,
    /// Its events (each signature verified against `chat_id`).
    pub events: Vec<SignedGroupEvent>,
    /// The message or reaction, if any.
    pub entity: Option<GroupEntity>,
}

/// Why received bytes are not a valid `MembershipUpdateMessage`. Any forged event rejects the
/// whole message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// Longer than [`MAX_MEMBERSHIP_UPDATE_LEN`].
    #[error("membership update of {len} bytes exceeds {MAX_MEMBERSHIP_UPDATE_LEN}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Not a protobuf `MembershipUpdateMessage`.
    #[error("malformed membership update: {0}")]
    Malformed(String),
    /// The chat id is not a private-group id.
    #[error("not a private group chat id")]
    BadChatId,
    /// More than [`MAX_EVENTS`] events.
    #[error("more than {MAX_EVENTS} events")]
    TooManyEvents,
    /// An event is forged or malformed.
    #[error("event {index}: {error}")]
    Event {
        /// Its position.
        index: usize,
        /// What is wrong with it.
        error: EventError,
    },
    /// The message or reaction breaks a rule.
    #[error(transparent)]
    Entity(#[from] ValidationError),
    /// The message or reaction names another chat, or is not a private-group one.
    #[error("the message does not belong to this group")]
    EntityChat,
}

impl MembershipUpdate {
    /// Encodes, validating the message or reaction.
    ///
    /// # Errors
    /// [`ValidationError`] from the message or reaction.
    pub fn encode(&self) -> Result<Vec<u8>, ValidationError> {
        use pb::membership_update_message::ChatEntity;
        let chat_entity = match &self.entity {
            None => None,
            Some(GroupEntity::Message(m)) => {
                m.validate()?;
                Some(ChatEntity::Message(m.to_proto()))
            }
            Some(GroupEntity::Reaction(r)) => {
                r.encode()?;
                Some(ChatEntity::EmojiReaction(r.to_proto()))
            }
        };
        Ok(pb::MembershipUpdateMessage {
            chat_id: self.chat_id.clone(),
            events: self.events.iter().map(SignedGroupEvent::encode).collect(),
            chat_entity,
        }
        .encode_to_vec())
    }

    /// Decodes and verifies received bytes.
    ///
    /// # Errors
    /// [`UpdateError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, UpdateError> {
        use pb::membership_update_message::ChatEntity;
        let msg: pb::MembershipUpdateMessage =
            proto::decode_bounded(bytes, MAX_MEMBERSHIP_UPDATE_LEN).map_err(|e| match e {
                proto::DecodeError::TooLarge { len, .. } => UpdateError::TooLarge { len },
                other => UpdateError::Malformed(other.to_string()),
            })?;
        creator_of(&msg.chat_id).map_err(|_| UpdateError::BadChatId)?;
        if msg.events.len() > MAX_EVENTS {
            return Err(UpdateError::TooManyEvents);
        }
        let events = msg
            .events
            .iter()
            .enumerate()
            .map(|(index, e)| {
                SignedGroupEvent::decode(&msg.chat_id, e)
                    .map_err(|error| UpdateError::Event { index, error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let entity = match msg.chat_entity {
            None => None,
            Some(ChatEntity::Message(m)) => Some(GroupEntity::Message(ChatMessage::from_proto(m)?)),
            Some(ChatEntity::EmojiReaction(r)) => {
                Some(GroupEntity::Reaction(EmojiReaction::from_proto(r)?))
            }
        };
        let belongs = match &entity {
            None => true,
            Some(GroupEntity::Message(m)) => {
                m.chat_id == msg.chat_id && m.message_type == crate::chat::MessageType::PrivateGroup
            }
            Some(GroupEntity::Reaction(r)) => {
                r.chat_id == msg.chat_id && r.message_type == crate::chat::MessageType::PrivateGroup
            }
        };
        if !belongs {
            return Err(UpdateError::EntityChat);
        }
        Ok(MembershipUpdate {
            chat_id: msg.chat_id,
            events,
            entity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::MessageType;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn id(n: u8) -> IdentityKeyPair {
        IdentityKeyPair::from_seed(&[n; 32])
    }

    fn ev(clock: u64, kind: GroupEventKind) -> GroupEvent {
        GroupEvent { clock, kind }
    }

    fn set(keys: &[&IdentityKeyPair]) -> BTreeSet<PublicIdentity> {
        keys.iter().map(|k| *k.public()).collect()
    }

    #[test]
    fn create_invite_join_and_converge() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (a, b, c) = (id(1), id(2), id(3));
        let mut ga =
            Group::create(&a, &mut rng, "friends", &[*b.public(), *c.public()], 10).unwrap();
        assert_eq!(creator_of(ga.chat_id()).unwrap(), *a.public());
        assert_eq!(ga.state().members, set(&[&a, &b, &c]));
        assert_eq!(ga.state().joined, set(&[&a]));

        // B receives the history through a message and joins.
        let bytes = ga.update(None).encode().unwrap();
        let update = MembershipUpdate::decode(&bytes).unwrap();
        let mut gb = Group::new(&update.chat_id).unwrap();
        let r = gb.merge(update.events);
        assert!(r.changed && r.rejected.is_empty());
        gb.propose(&b, ev(12, GroupEventKind::MemberJoined))
            .unwrap();
        // A makes B admin concurrently, B renames (only valid once B is admin).
        ga.propose(
            &a,
            ev(13, GroupEventKind::AdminsAdded { admins: set(&[&b]) }),
        )
        .unwrap();
        assert_eq!(
            gb.propose(&b, ev(14, GroupEventKind::NameChanged { name: "x".into() })),
            Err(GroupError::Rule(RuleError::NotAdmin))
        );
        // Exchange histories both ways: same state.
        gb.merge(ga.events().cloned().collect());
        ga.merge(gb.events().cloned().collect());
        assert_eq!(ga.state(), gb.state());
        assert_eq!(ga.state().admins, set(&[&a, &b]));
        assert_eq!(ga.state().joined, set(&[&a, &b]));
    }

    #[test]
    fn rules() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (a, b, c, d) = (id(1), id(2), id(3), id(4));
        let mut g = Group::create(&a, &mut rng, "g", &[*b.public(), *c.public()], 1).unwrap();
        let rule = |g: &mut Group, k: &IdentityKeyPair, e| match g.propose(k, e) {
            Err(GroupError::Rule(r)) => Some(r),
            Ok(_) => None,
            Err(other) => panic!("{other}"),
        };
        assert_eq!(
            rule(
                &mut g,
                &b,
                ev(
                    5,
                    GroupEventKind::MembersAdded {
                        members: set(&[&d])
                    }
                )
            ),
            Some(RuleError::NotAdmin)
        );
        assert_eq!(
            rule(&mut g, &d, ev(5, GroupEventKind::MemberJoined)),
            Some(RuleError::Stranger)
        );
        assert_eq!(
            rule(
                &mut g,
                &a,
                ev(
                    5,
                    GroupEventKind::MembersAdded {
                        members: set(&[&b])
                    }
                )
            ),
            Some(RuleError::AlreadyMember)
        );
        assert_eq!(
            rule(
                &mut g,
                &a,
                ev(
                    5,
                    GroupEventKind::Created {
                        name: "again".into()
                    }
                )
            ),
            Some(RuleError::AlreadyCreated)
        );
        assert_eq!(
            rule(
                &mut g,
                &b,
                ev(
                    5,
                    GroupEventKind::MemberRemoved {
                        member: *c.public()
                    }
                )
            ),
            Some(RuleError::NotAdmin)
        );
        assert_eq!(
            rule(
                &mut g,
                &b,
                ev(
                    5,
                    GroupEventKind::MemberRemoved {
                        member: *a.public()
                    }
                )
            ),
            Some(RuleError::NotAdmin)
        );
        assert_eq!(
            rule(
                &mut g,
                &a,
                ev(5, GroupEventKind::AdminRemoved { admin: *b.public() })
            ),
            Some(RuleError::OnlySelf)
        );
        assert_eq!(
            rule(
                &mut g,
                &a,
                ev(5, GroupEventKind::AdminsAdded { admins: set(&[&d]) })
            ),
            Some(RuleError::NotMember)
        );
        assert_eq!(
            rule(
                &mut g,
                &a,
                ev(6, GroupEventKind::AdminsAdded { admins: set(&[&b]) })
            ),
            None
        );
        assert_eq!(
            rule(
                &mut g,
                &a,
                ev(
                    7,
                    GroupEventKind::MemberRemoved {
                        member: *b.public()
                    }
                )
            ),
            Some(RuleError::CannotRemoveAdmin)
        );
        assert_eq!(
            rule(
                &mut g,
                &b,
                ev(8, GroupEventKind::AdminRemoved { admin: *b.public() })
            ),
            None
        );
        assert_eq!(
            rule(
                &mut g,
                &a,
                ev(
                    9,
                    GroupEventKind::MemberRemoved {
                        member: *b.public()
                    }
                )
            ),
            None
        );
        assert!(!g.is_member(b.public()));
        assert_eq!(
            rule(
                &mut g,
                &c,
                ev(
                    10,
                    GroupEventKind::MemberRemoved {
                        member: *c.public()
                    }
                )
            ),
            None
        );
        assert_eq!(g.state().members, set(&[&a]));
        // The cap.
        let many: Vec<IdentityKeyPair> = (10..30).map(id).collect();
        let keys: BTreeSet<_> = many.iter().map(|k| *k.public()).collect();
        assert_eq!(
            rule(
                &mut g,
                &a,
                ev(11, GroupEventKind::MembersAdded { members: keys })
            ),
            Some(RuleError::TooManyMembers)
        );
        // Events before creation do not apply.
        let mut fresh = Group::new(g.chat_id()).unwrap();
        let late = g.events().nth(1).cloned().unwrap();
        let r = fresh.merge(vec![late]);
        assert_eq!(r.rejected, vec![(0, RuleError::NotCreated)]);
        assert!(!fresh.state().created);
        // ...and apply once the creation arrives.
        let r = fresh.merge(g.events().cloned().collect());
        assert!(r.changed);
        assert_eq!(fresh.state(), g.state());
    }

    #[test]
    fn forged_events_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (a, b, m) = (id(1), id(2), id(9));
        let g = Group::create(&a, &mut rng, "g", &[*b.public()], 1).unwrap();
        let good = g.events().next().unwrap().encode();

        // Mallory claims A's key on her own event.
        let forged_event = SignedGroupEvent::sign(
            &m,
            g.chat_id(),
            ev(
                3,
                GroupEventKind::MembersAdded {
                    members: set(&[&m]),
                },
            ),
        )
        .unwrap();
        let mut forged = forged_event.encode();
        forged[..32].copy_from_slice(a.public().ed25519_bytes());
        assert_eq!(
            SignedGroupEvent::decode(g.chat_id(), &forged),
            Err(EventError::BadSignature)
        );
        // A tampered event body.
        let mut tampered = good.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            SignedGroupEvent::decode(g.chat_id(), &tampered),
            Err(EventError::BadSignature)
        );
        // A's genuine event moved to another group.
        let other = new_chat_id(&mut rng, a.public());
        assert_eq!(
            SignedGroupEvent::decode(&other, &good),
            Err(EventError::BadSignature)
        );
        assert_eq!(
            SignedGroupEvent::decode(g.chat_id(), &good[..50]),
            Err(EventError::Short)
        );

        // A whole update with one forged event is refused.
        let mut msg =
            pb::MembershipUpdateMessage::decode(&g.update(None).encode().unwrap()[..]).unwrap();
        msg.events.push(forged);
        assert!(matches!(
            MembershipUpdate::decode(&msg.encode_to_vec()),
            Err(UpdateError::Event {
                index: 2,
                error: EventError::BadSignature
            })
        ));

        // Mallory's correctly signed event: refused as a stranger's.
        let mut g2 = g.clone();
        let r = g2.merge(vec![forged_event]);
        assert_eq!(r.rejected, vec![(0, RuleError::Stranger)]);
        assert_eq!(g2.state(), g.state());
    }

    #[test]
    fn update_carries_messages_of_the_group_only() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let a = id(1);
        let g = Group::create(&a, &mut rng, "g", &[], 1).unwrap();
        let mut m = ChatMessage::text(g.chat_id(), MessageType::PrivateGroup, "hi");
        m.clock = 3;
        let u = g.update(Some(GroupEntity::Message(m.clone())));
        let back = MembershipUpdate::decode(&u.encode().unwrap()).unwrap();
        assert_eq!(back, u);
        m.chat_id = "elsewhere".into();
        let u = g.update(Some(GroupEntity::Message(m)));
        assert_eq!(
            MembershipUpdate::decode(&u.encode().unwrap()),
            Err(UpdateError::EntityChat)
        );
        let bad = pb::MembershipUpdateMessage {
            chat_id: "nope".into(),
            ..Default::default()
        };
        assert_eq!(
            MembershipUpdate::decode(&bad.encode_to_vec()),
            Err(UpdateError::BadChatId)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any subset of events, delivered to two members in different orders and in pieces:
        /// once both hold the same events they hold the same state.
        #[test]
        fn members_converge_whatever_the_order(
            ops in proptest::collection::vec((0u8..5, 0u8..7, 0u8..5, 1u64..30), 1..25),
            seed in any::<u64>(),
        ) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let keys: Vec<IdentityKeyPair> = (1..=5).map(id).collect();
            let others: Vec<PublicIdentity> = keys[1..3].iter().map(|k| *k.public()).collect();
            let origin = Group::create(&keys[0], &mut rng, "g", &others, 1).unwrap();
            // Every signer signs anything; rules sort it out.
            let mut events: Vec<SignedGroupEvent> = origin.events().cloned().collect();
            for (signer, kind, target, clock) in ops {
                let t = *keys[target as usize].public();
                let kind = match kind {
                    0 => GroupEventKind::MembersAdded { members: [t].into() },
                    1 => GroupEventKind::MemberJoined,
                    2 => GroupEventKind::MemberRemoved { member: t },
                    3 => GroupEventKind::AdminsAdded { admins: [t].into() },
                    4 => GroupEventKind::AdminRemoved { admin: t },
                    5 => GroupEventKind::NameChanged { name: format!("n{clock}") },
                    _ => GroupEventKind::ColorChanged { color: format!("c{clock}") },
                };
                events.push(SignedGroupEvent::sign(&keys[signer as usize], origin.chat_id(), ev(clock, kind)).unwrap());
            }
            let mut shuffled = events.clone();
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            let mut x = Group::new(origin.chat_id()).unwrap();
            x.merge(events.clone());
            let mut y = Group::new(origin.chat_id()).unwrap();
            for chunk in shuffled.chunks(3) {
                y.merge(chunk.to_vec());
            }
            // Stranger events may have been refused by one side before their signer was added:
            // exchanging histories (as messages do) settles it.
            for _ in 0..3 {
                y.merge(x.events().cloned().collect());
                x.merge(y.events().cloned().collect());
            }
            prop_assert_eq!(x.state(), y.state());
            prop_assert!(x.state().admins.is_subset(&x.state().members));
            prop_assert!(x.state().joined.is_subset(&x.state().members));
            prop_assert!(x.state().members.len() <= MAX_MEMBERS);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = MembershipUpdate::decode(&bytes);
            let _ = SignedGroupEvent::decode("c", &bytes);
        }
    }
}
