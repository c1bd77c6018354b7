//! Chat messages and emoji reactions: the typed payloads inside the signed envelope.
//!
//! A [`ChatMessage`] mirrors status-go's `ChatMessage` protobuf (WIRE.md B.23): a Lamport clock,
//! a timestamp, the chat id, an optional reply target, the message type (one-to-one, public
//! group, private group) and one content type: text, sticker, image or audio. An
//! [`EmojiReaction`] points at a message by id and can be retracted; [`Reactions`] keeps the
//! latest reaction state per (sender, message, emoji).
//!
//! Everything received is validated ([`ChatMessage::decode`], [`EmojiReaction::decode`]) and
//! everything sent is validated before encoding ([`ChatMessage::encode`]), with the same rules:
//!
//! | field | rule |
//! |---|---|
//! | `clock` | non-zero (the receiver also checks it against its wall clock, see [`crate::clock`]) |
//! | `chat_id` | 1..=[`MAX_CHAT_ID_LEN`] bytes |
//! | `text` | at most [`MAX_TEXT_LEN`] bytes; non-blank for text messages |
//! | `response_to` | empty or a message id (`0x` + 64 hex digits) |
//! | `message_type` | one-to-one, public group or private group |
//! | `content_type` | text, sticker, image or audio, with the matching payload present and no other |
//! | sticker | hash 1..=[`MAX_STICKER_HASH_LEN`] bytes |
//! | image | PNG, JPEG, WEBP or GIF; 1..=[`MAX_IMAGE_LEN`] bytes that start with the format's magic bytes |
//! | audio | AAC (ADTS or MP4 container) or AMR; 1..=[`MAX_AUDIO_LEN`] bytes with the format's magic; duration 1..=[`MAX_AUDIO_DURATION_MS`] |

use std::collections::BTreeMap;

use prost::Message;
use proto::status as pb;

use crate::id::{MessageId, MessageIdError};

/// Longest chat id, in bytes. The longest ids status-rs makes are private-group ids: a UUID
/// (36), a dash and a `0x`-prefixed chat key (66), 103 bytes; public chat names are far shorter.
pub const MAX_CHAT_ID_LEN: usize = 256;

/// Longest message text, in bytes: 4096 characters of up to four UTF-8 bytes each.
pub const MAX_TEXT_LEN: usize = 16 * 1024;

/// Longest sticker hash, in bytes (status-go uses IPFS content hashes of under 100 characters).
pub const MAX_STICKER_HASH_LEN: usize = 128;

/// Longest image, in bytes: 100 KiB. A 1:1 or group message travels as one MVDS message whose
/// body is limited to `mvds::MAX_BODY_BYTES` (128 KiB minus 64 bytes); 100 KiB of image plus
/// [`MAX_TEXT_LEN`] of caption and the envelope fit it. Applications compress larger pictures
/// first, as Status does.
pub const MAX_IMAGE_LEN: usize = 100 * 1024;

/// Longest audio clip, in bytes, for the same reason as [`MAX_IMAGE_LEN`].
pub const MAX_AUDIO_LEN: usize = 100 * 1024;

/// Longest audio clip, in milliseconds: two minutes, Status's limit for voice messages.
pub const MAX_AUDIO_DURATION_MS: u64 = 120_000;

/// Longest album id, in bytes (a UUID is 36).
pub const MAX_ALBUM_ID_LEN: usize = 64;

/// Most images in one album.
pub const MAX_ALBUM_IMAGES: u32 = 32;

/// Largest encoded chat message accepted: the largest content plus the largest text plus 4 KiB
/// for the other fields.
pub const MAX_CHAT_MESSAGE_LEN: usize = MAX_IMAGE_LEN + MAX_TEXT_LEN + 4096;

/// Largest encoded emoji reaction accepted.
pub const MAX_EMOJI_REACTION_LEN: usize = MAX_CHAT_ID_LEN + 256;

/// Most reactions [`Reactions`] remembers; beyond it the oldest by clock are forgotten.
pub const MAX_REACTIONS: usize = 65_536;

/// How a chat message is routed and encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageType {
    /// A 1:1 chat, over the secure transport.
    OneToOne,
    /// A public chat: a topic and key derived from the channel name; signed, not secret.
    PublicGroup,
    /// A private group: sent 1:1 to every member over the secure transport.
    PrivateGroup,
}

impl MessageType {
    fn to_proto(self) -> pb::MessageType {
        match self {
            MessageType::OneToOne => pb::MessageType::OneToOne,
            MessageType::PublicGroup => pb::MessageType::PublicGroup,
            MessageType::PrivateGroup => pb::MessageType::PrivateGroup,
        }
    }

    fn from_proto(value: i32) -> Result<Self, ValidationError> {
        match pb::MessageType::try_from(value) {
            Ok(pb::MessageType::OneToOne) => Ok(MessageType::OneToOne),
            Ok(pb::MessageType::PublicGroup) => Ok(MessageType::PublicGroup),
            Ok(pb::MessageType::PrivateGroup) => Ok(MessageType::PrivateGroup),
            _ => Err(ValidationError::MessageType(value)),
        }
    }
}

/// An image format Status shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// PNG: starts with `89 50 4E 47 0D 0A 1A 0A`.
    Png,
    /// JPEG: starts with `FF D8 FF`.
    Jpeg,
    /// WEBP: `RIFF`, a 4-byte length, `WEBP`.
    Webp,
    /// GIF: `GIF87a` or `GIF89a`.
    Gif,
}

impl ImageFormat {
    /// Whether `data` starts with this format's magic bytes.
    pub fn matches(self, data: &[u8]) -> bool {
        match self {
            ImageFormat::Png => data.starts_with(b"\x89PNG\r\n\x1a\n"),
            ImageFormat::Jpeg => data.starts_with(&[0xff, 0xd8, 0xff]),
            ImageFormat::Webp => data.starts_with(b"RIFF") && data.get(8..12) == Some(b"WEBP"),
            ImageFormat::Gif => data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a"),
        }
    }

    /// The format whose magic bytes `data` starts with, if any.
    pub fn sniff(data: &[u8]) -> Option<Self> {
        [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Webp,
            ImageFormat::Gif,
        ]
        .into_iter()
        .find(|f| f.matches(data))
    }

    fn to_proto(self) -> pb::ImageFormat {
        match self {
            ImageFormat::Png => pb::ImageFormat::Png,
            ImageFormat::Jpeg => pb::ImageFormat::Jpeg,
            ImageFormat::Webp => pb::ImageFormat::Webp,
            ImageFormat::Gif => pb::ImageFormat::Gif,
        }
    }

    fn from_proto(value: i32) -> Result<Self, ValidationError> {
        match pb::ImageFormat::try_from(value) {
            Ok(pb::ImageFormat::Png) => Ok(ImageFormat::Png),
            Ok(pb::ImageFormat::Jpeg) => Ok(ImageFormat::Jpeg),
            Ok(pb::ImageFormat::Webp) => Ok(ImageFormat::Webp),
            Ok(pb::ImageFormat::Gif) => Ok(ImageFormat::Gif),
            _ => Err(ValidationError::ImageFormat(value)),
        }
    }
}

/// An audio format Status records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// AAC, as an ADTS stream (sync word `FFF`) or in an MP4/M4A container (`ftyp` at offset 4).
    Aac,
    /// AMR: `#!AMR\n` (narrowband) or `#!AMR-WB\n` (wideband).
    Amr,
}

impl AudioFormat {
    /// Whether `data` starts with this format's magic bytes.
    pub fn matches(self, data: &[u8]) -> bool {
        match self {
            AudioFormat::Aac => {
                let adts = matches!(data, [0xff, second, ..] if second & 0xf6 == 0xf0);
                let mp4 = data.get(4..8) == Some(b"ftyp");
                adts || mp4
            }
            AudioFormat::Amr => data.starts_with(b"#!AMR\n") || data.starts_with(b"#!AMR-WB\n"),
        }
    }

    fn to_proto(self) -> pb::audio_message::AudioType {
        match self {
            AudioFormat::Aac => pb::audio_message::AudioType::Aac,
            AudioFormat::Amr => pb::audio_message::AudioType::Amr,
        }
    }

    fn from_proto(value: i32) -> Result<Self, ValidationError> {
        match pb::audio_message::AudioType::try_from(value) {
            Ok(pb::audio_message::AudioType::Aac) => Ok(AudioFormat::Aac),
            Ok(pb::audio_message::AudioType::Amr) => Ok(AudioFormat::Amr),
            _ => Err(ValidationError::AudioFormat(value)),
        }
    }
}

/// A sticker from a sticker pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticker {
    /// The sticker's content hash.
    pub hash: String,
    /// The pack it belongs to.
    pub pack: i32,
}

/// An image.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    /// The declared format; the bytes must start with its magic.
    pub format: ImageFormat,
    /// The encoded image.
    pub data: Vec<u8>,
    /// Width in pixels (informative, 0 if unknown).
    pub width: u32,
    /// Height in pixels (informative, 0 if unknown).
    pub height: u32,
    /// The album this image belongs to, if any.
    pub album_id: Option<String>,
    /// How many images the album has (0 outside albums).
    pub album_images_count: u32,
}

impl core::fmt::Debug for Image {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Image")
            .field("format", &self.format)
            .field("len", &self.data.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .field("album_id", &self.album_id)
            .finish_non_exhaustive()
    }
}

/// An audio clip.
#[derive(Clone, PartialEq, Eq)]
pub struct Audio {
    /// The declared format; the bytes must start with its magic.
    pub format: AudioFormat,
    /// The encoded audio.
    pub data: Vec<u8>,
    /// Its duration in milliseconds.
    pub duration_ms: u64,
}

impl core::fmt::Debug for Audio {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Audio")
            .field("format", &self.format)
            .field("len", &self.data.len())
            .field("duration_ms", &self.duration_ms)
            .finish()
    }
}

/// What a chat message carries besides its text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Content {
    /// Plain text (the message's `text`, which must not be blank).
    Text,
    /// A sticker.
    Sticker(Sticker),
    /// An image (the text is an optional caption).
    Image(Image),
    /// An audio clip.
    Audio(Audio),
}

/// A chat message (`ChatMessage`, WIRE.md B.23).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Lamport clock ([`crate::clock`]); messages are ordered by it.
    pub clock: u64,
    /// The sender's wall clock when sending, Unix milliseconds (informative only).
    pub timestamp_ms: u64,
    /// The chat this message belongs to.
    pub chat_id: String,
    /// How the message was routed.
    pub message_type: MessageType,
    /// The text (or caption).
    pub text: String,
    /// The message this one replies to.
    pub response_to: Option<MessageId>,
    /// What the message carries.
    pub content: Content,
}

/// Why a payload breaks the rules. The same errors are returned when sending (the caller's
/// mistake) and when receiving (the sender's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A clock of zero.
    #[error("the clock is zero")]
    ZeroClock,
    /// An empty chat id.
    #[error("empty chat id")]
    EmptyChatId,
    /// A chat id longer than [`MAX_CHAT_ID_LEN`].
    #[error("chat id of {len} bytes exceeds {MAX_CHAT_ID_LEN}")]
    ChatIdTooLong {
        /// Its length.
        len: usize,
    },
    /// Text longer than [`MAX_TEXT_LEN`].
    #[error("text of {len} bytes exceeds {MAX_TEXT_LEN}")]
    TextTooLong {
        /// Its length.
        len: usize,
    },
    /// A text message whose text is empty or only whitespace.
    #[error("a text message needs text")]
    EmptyText,
    /// `response_to` (or a reaction's `message_id`) is not a message id.
    #[error("not a message id: {0}")]
    BadMessageId(MessageIdError),
    /// A message type other than one-to-one, public group or private group.
    #[error("unsupported message type {0}")]
    MessageType(i32),
    /// A content type other than text, sticker, image or audio.
    #[error("unsupported content type {0}")]
    ContentType(i32),
    /// The content type and the payload present disagree (missing, or another kind).
    #[error("content type does not match the payload")]
    ContentMismatch,
    /// A sticker hash that is empty or longer than [`MAX_STICKER_HASH_LEN`].
    #[error("bad sticker hash length {len}")]
    StickerHash {
        /// Its length.
        len: usize,
    },
    /// An image format other than PNG, JPEG, WEBP or GIF.
    #[error("unsupported image format {0}")]
    ImageFormat(i32),
    /// An empty image, or one longer than [`MAX_IMAGE_LEN`].
    #[error("image of {len} bytes (allowed 1..={MAX_IMAGE_LEN})")]
    ImageSize {
        /// Its length.
        len: usize,
    },
    /// The image bytes do not start with the declared format's magic bytes.
    #[error("image bytes are not {0:?}")]
    ImageMagic(ImageFormat),
    /// An album id longer than [`MAX_ALBUM_ID_LEN`] or an album count above
    /// [`MAX_ALBUM_IMAGES`].
    #[error("bad album")]
    Album,
    /// An audio format other than AAC or AMR.
    #[error("unsupported audio format {0}")]
    AudioFormat(i32),
    /// An empty clip, or one longer than [`MAX_AUDIO_LEN`].
    #[error("audio of {len} bytes (allowed 1..={MAX_AUDIO_LEN})")]
    AudioSize {
        /// Its length.
        len: usize,
    },
    /// The audio bytes do not start with the declared format's magic bytes.
    #[error("audio bytes are not {0:?}")]
    AudioMagic(AudioFormat),
    /// A duration of zero or above [`MAX_AUDIO_DURATION_MS`].
    #[error("audio duration {0} ms (allowed 1..={MAX_AUDIO_DURATION_MS})")]
    AudioDuration(u64),
    /// An emoji reaction type other than the six Status defines.
    #[error("unsupported emoji {0}")]
    Emoji(i32),
}

/// Why received bytes are not a valid payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Longer than the payload's limit; nothing was parsed.
    #[error("payload of {len} bytes exceeds {max}")]
    TooLarge {
        /// The input's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a protobuf encoding of the payload.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// Well-formed but breaking a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

fn decode_proto<M: Message + Default>(bytes: &[u8], max: usize) -> Result<M, PayloadError> {
    proto::decode_bounded(bytes, max).map_err(|e| match e {
        proto::DecodeError::TooLarge { len, max } => PayloadError::TooLarge { len, max },
        other => PayloadError::Malformed(other.to_string()),
    })
}

fn check_chat_id(chat_id: &str) -> Result<(), ValidationError> {
    if chat_id.is_empty() {
        return Err(ValidationError::EmptyChatId);
    }
    if chat_id.len() > MAX_CHAT_ID_LEN {
        return Err(ValidationError::ChatIdTooLong { len: chat_id.len() });
    }
    Ok(())
}

impl ChatMessage {
    /// A text message; the clock and timestamp are filled in when it is sent.
    pub fn text(
        chat_id: impl Into<String>,
        message_type: MessageType,
        text: impl Into<String>,
    ) -> Self {
        ChatMessage {
            clock: 0,
            timestamp_ms: 0,
            chat_id: chat_id.into(),
            message_type,
            text: text.into(),
            response_to: None,
            content: Content::Text,
        }
    }

    /// Checks every rule of the module docs.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.clock == 0 {
            return Err(ValidationError::ZeroClock);
        }
        check_chat_id(&self.chat_id)?;
        if self.text.len() > MAX_TEXT_LEN {
            return Err(ValidationError::TextTooLong {
                len: self.text.len(),
            });
        }
        match &self.content {
            Content::Text => {
                if self.text.trim().is_empty() {
                    return Err(ValidationError::EmptyText);
                }
            }
            Content::Sticker(s) => {
                if s.hash.is_empty() || s.hash.len() > MAX_STICKER_HASH_LEN {
                    return Err(ValidationError::StickerHash { len: s.hash.len() });
                }
            }
            Content::Image(i) => {
                if i.data.is_empty() || i.data.len() > MAX_IMAGE_LEN {
                    return Err(ValidationError::ImageSize { len: i.data.len() });
                }
                if !i.format.matches(&i.data) {
                    return Err(ValidationError::ImageMagic(i.format));
                }
                let album_ok = i
                    .album_id
                    .as_ref()
                    .is_none_or(|a| !a.is_empty() && a.len() <= MAX_ALBUM_ID_LEN);
                if !album_ok || i.album_images_count > MAX_ALBUM_IMAGES {
                    return Err(ValidationError::Album);
                }
            }
            Content::Audio(a) => {
                if a.data.is_empty() || a.data.len() > MAX_AUDIO_LEN {
                    return Err(ValidationError::AudioSize { len: a.data.len() });
                }
                if !a.format.matches(&a.data) {
                    return Err(ValidationError::AudioMagic(a.format));
                }
                if a.duration_ms == 0 || a.duration_ms > MAX_AUDIO_DURATION_MS {
                    return Err(ValidationError::AudioDuration(a.duration_ms));
                }
            }
        }
        Ok(())
    }

    /// The protobuf form (not validated).
    pub fn to_proto(&self) -> pb::ChatMessage {
        use pb::chat_message::{ContentType, Payload};
        let (content_type, payload) = match &self.content {
            Content::Text => (ContentType::TextPlain, None),
            Content::Sticker(s) => (
                ContentType::Sticker,
                Some(Payload::Sticker(pb::StickerMessage {
                    hash: s.hash.clone(),
                    pack: s.pack,
                })),
            ),
            Content::Image(i) => (
                ContentType::Image,
                Some(Payload::Image(pb::ImageMessage {
                    payload: i.data.clone(),
                    format: i.format.to_proto() as i32,
                    album_id: i.album_id.clone().unwrap_or_default(),
                    width: i.width,
                    height: i.height,
                    album_images_count: i.album_images_count,
                })),
            ),
            Content::Audio(a) => (
                ContentType::Audio,
                Some(Payload::Audio(pb::AudioMessage {
                    payload: a.data.clone(),
                    r#type: a.format.to_proto() as i32,
                    duration_ms: a.duration_ms,
                })),
            ),
        };
        pb::ChatMessage {
            clock: self.clock,
            timestamp: self.timestamp_ms,
            text: self.text.clone(),
            response_to: self
                .response_to
                .map(|id| id.to_string())
                .unwrap_or_default(),
            chat_id: self.chat_id.clone(),
            message_type: self.message_type.to_proto() as i32,
            content_type: content_type as i32,
            payload,
            ..Default::default()
        }
    }

    /// Reads and validates the protobuf form.
    ///
    /// # Errors
    /// [`ValidationError`] for the first rule broken.
    pub fn from_proto(msg: pb::ChatMessage) -> Result<Self, ValidationError> {
        use pb::chat_message::{ContentType, Payload};
        let message_type = MessageType::from_proto(msg.message_type)?;
        let response_to = if msg.response_to.is_empty() {
            None
        } else {
            Some(
                msg.response_to
                    .parse::<MessageId>()
                    .map_err(ValidationError::BadMessageId)?,
            )
        };
        let content = match (ContentType::try_from(msg.content_type), msg.payload) {
            (Ok(ContentType::TextPlain), None) => Content::Text,
            (Ok(ContentType::Sticker), Some(Payload::Sticker(s))) => Content::Sticker(Sticker {
                hash: s.hash,
                pack: s.pack,
            }),
            (Ok(ContentType::Image), Some(Payload::Image(i))) => Content::Image(Image {
                format: ImageFormat::from_proto(i.format)?,
                data: i.payload,
                width: i.width,
                height: i.height,
                album_id: (!i.album_id.is_empty()).then_some(i.album_id),
                album_images_count: i.album_images_count,
            }),
            (Ok(ContentType::Audio), Some(Payload::Audio(a))) => Content::Audio(Audio {
                format: AudioFormat::from_proto(a.r#type)?,
                data: a.payload,
                duration_ms: a.duration_ms,
            }),
            (
                Ok(
                    ContentType::TextPlain
                    | ContentType::Sticker
                    | ContentType::Image
                    | ContentType::Audio,
                ),
                _,
            ) => {
                return Err(ValidationError::ContentMismatch);
            }
            _ => return Err(ValidationError::ContentType(msg.content_type)),
        };
        let message = ChatMessage {
            clock: msg.clock,
            timestamp_ms: msg.timestamp,
            chat_id: msg.chat_id,
            message_type,
            text: msg.text,
            response_to,
            content,
        };
        message.validate()?;
        Ok(message)
    }

    /// Validates and encodes.
    ///
    /// # Errors
    /// [`ValidationError`] for the first rule broken.
    pub fn encode(&self) -> Result<Vec<u8>, ValidationError> {
        self.validate()?;
        Ok(self.to_proto().encode_to_vec())
    }

    /// Decodes and validates received bytes.
    ///
    /// # Errors
    /// [`PayloadError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let msg: pb::ChatMessage = decode_proto(bytes, MAX_CHAT_MESSAGE_LEN)?;
        Ok(Self::from_proto(msg)?)
    }
}

/// The six reactions Status offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Emoji {
    /// ❤️
    Love,
    /// 👍
    ThumbsUp,
    /// 👎
    ThumbsDown,
    /// 😂
    Laugh,
    /// 😢
    Sad,
    /// 😡
    Angry,
}

impl Emoji {
    fn to_proto(self) -> pb::emoji_reaction::Type {
        use pb::emoji_reaction::Type;
        match self {
            Emoji::Love => Type::Love,
            Emoji::ThumbsUp => Type::ThumbsUp,
            Emoji::ThumbsDown => Type::ThumbsDown,
            Emoji::Laugh => Type::Laugh,
            Emoji::Sad => Type::Sad,
            Emoji::Angry => Type::Angry,
        }
    }

    fn from_proto(value: i32) -> Result<Self, ValidationError> {
        use pb::emoji_reaction::Type;
        match Type::try_from(value) {
            Ok(Type::Love) => Ok(Emoji::Love),
            Ok(Type::ThumbsUp) => Ok(Emoji::ThumbsUp),
            Ok(Type::ThumbsDown) => Ok(Emoji::ThumbsDown),
            Ok(Type::Laugh) => Ok(Emoji::Laugh),
            Ok(Type::Sad) => Ok(Emoji::Sad),
            Ok(Type::Angry) => Ok(Emoji::Angry),
            _ => Err(ValidationError::Emoji(value)),
        }
    }
}

/// A reaction to a message, or its retraction (`EmojiReaction`, WIRE.md B.23).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmojiReaction {
    /// Lamport clock of the chat; the latest reaction of a sender to a message with an emoji wins.
    pub clock: u64,
    /// The chat of the message reacted to.
    pub chat_id: String,
    /// The message reacted to.
    pub message_id: MessageId,
    /// How the reaction was routed.
    pub message_type: MessageType,
    /// Which emoji.
    pub emoji: Emoji,
    /// `true` withdraws an earlier reaction with the same emoji.
    pub retracted: bool,
}

impl EmojiReaction {
    /// The protobuf form.
    pub fn to_proto(&self) -> pb::EmojiReaction {
        pb::EmojiReaction {
            clock: self.clock,
            chat_id: self.chat_id.clone(),
            message_id: self.message_id.to_string(),
            message_type: self.message_type.to_proto() as i32,
            r#type: self.emoji.to_proto() as i32,
            retracted: self.retracted,
        }
    }

    /// Reads and validates the protobuf form.
    ///
    /// # Errors
    /// [`ValidationError`] for the first rule broken.
    pub fn from_proto(msg: pb::EmojiReaction) -> Result<Self, ValidationError> {
        if msg.clock == 0 {
            return Err(ValidationError::ZeroClock);
        }
        check_chat_id(&msg.chat_id)?;
        Ok(EmojiReaction {
            clock: msg.clock,
            message_id: msg
                .message_id
                .parse()
                .map_err(ValidationError::BadMessageId)?,
            message_type: MessageType::from_proto(msg.message_type)?,
            emoji: Emoji::from_proto(msg.r#type)?,
            retracted: msg.retracted,
            chat_id: msg.chat_id,
        })
    }

    /// Validates and encodes.
    ///
    /// # Errors
    /// [`ValidationError`] for the first rule broken.
    pub fn encode(&self) -> Result<Vec<u8>, ValidationError> {
        let msg = self.to_proto();
        Self::from_proto(msg.clone())?;
        Ok(msg.encode_to_vec())
    }

    /// Decodes and validates received bytes.
    ///
    /// # Errors
    /// [`PayloadError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let msg: pb::EmojiReaction = decode_proto(bytes, MAX_EMOJI_REACTION_LEN)?;
        Ok(Self::from_proto(msg)?)
    }
}

/// What [`Reactions::apply_evicting`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Whether the reaction changed the state.
    pub changed: bool,
    /// The (message, sender key, emoji) entry forgotten to stay within [`MAX_REACTIONS`]: the
    /// one with the oldest clock, which may be the reaction just applied.
    pub evicted: Option<(MessageId, [u8; 32], Emoji)>,
}

/// The current reactions of a set of chats: for each (message, sender, emoji) the reaction
/// with the highest clock wins (at equal clocks a retraction wins), so a retraction cancels
/// exactly the reactions it follows and
/// every member who has seen the same reactions shows the same counts, whatever the order
/// they arrived in. Bounded by [`MAX_REACTIONS`] (the oldest clocks are forgotten first).
#[derive(Debug, Clone, Default)]
pub struct Reactions {
    // (message, sender key, emoji) -> (clock, retracted)
    latest: BTreeMap<(MessageId, [u8; 32], Emoji), (u64, bool)>,
}

impl Reactions {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a reaction by `sender` (its 32-byte chat key). Returns `true` when it changed the
    /// state (it is newer than what was known for the same message, sender and emoji).
    pub fn apply(&mut self, sender: [u8; 32], reaction: &EmojiReaction) -> bool {
        self.apply_evicting(sender, reaction).changed
    }

    /// Like [`Reactions::apply`], and also says which entry, if any, was forgotten to stay
    /// within [`MAX_REACTIONS`], so that a copy on disk can be forgotten too.
    pub fn apply_evicting(&mut self, sender: [u8; 32], reaction: &EmojiReaction) -> Applied {
        let key = (reaction.message_id, sender, reaction.emoji);
        match self.latest.get(&key) {
            Some(&known) if known >= (reaction.clock, reaction.retracted) => {
                return Applied {
                    changed: false,
                    evicted: None,
                };
            }
            _ => {}
        }
        self.latest
            .insert(key, (reaction.clock, reaction.retracted));
        let mut evicted = None;
        if self.latest.len() > MAX_REACTIONS {
            evicted = self
                .latest
                .iter()
                .min_by_key(|(k, (clock, _))| (*clock, **k))
                .map(|(k, _)| *k);
            if let Some(oldest) = evicted {
                self.latest.remove(&oldest);
            }
        }
        Applied {
            changed: true,
            evicted,
        }
    }

    /// How many senders currently show each emoji on `message`.
    pub fn counts(&self, message: &MessageId) -> BTreeMap<Emoji, usize> {
        let mut out = BTreeMap::new();
        for ((_, _, emoji), (_, retracted)) in self
            .latest
            .range((*message, [0; 32], Emoji::Love)..=(*message, [0xff; 32], Emoji::Angry))
        {
            if !retracted {
                *out.entry(*emoji).or_insert(0) += 1;
            }
        }
        out
    }

    /// How many (message, sender, emoji) entries are remembered.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn png(len: usize) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        v.resize(len, 7);
        v
    }

    fn text_msg() -> ChatMessage {
        let mut m = ChatMessage::text("chat", MessageType::OneToOne, "hello");
        m.clock = 5;
        m.timestamp_ms = 6;
        m
    }

    #[test]
    fn text_round_trip() {
        let mut m = text_msg();
        m.response_to = Some(MessageId([3; 32]));
        let bytes = m.encode().unwrap();
        assert_eq!(ChatMessage::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn every_content_type_round_trips() {
        let contents = [
            Content::Sticker(Sticker {
                hash: "Qm123".into(),
                pack: 4,
            }),
            Content::Image(Image {
                format: ImageFormat::Png,
                data: png(100),
                width: 10,
                height: 20,
                album_id: Some("album".into()),
                album_images_count: 2,
            }),
            Content::Image(Image {
                format: ImageFormat::Jpeg,
                data: vec![0xff, 0xd8, 0xff, 0xe0, 1, 2],
                width: 0,
                height: 0,
                album_id: None,
                album_images_count: 0,
            }),
            Content::Image(Image {
                format: ImageFormat::Webp,
                data: b"RIFF\0\0\0\0WEBPVP8 ".to_vec(),
                width: 0,
                height: 0,
                album_id: None,
                album_images_count: 0,
            }),
            Content::Image(Image {
                format: ImageFormat::Gif,
                data: b"GIF89a....".to_vec(),
                width: 1,
                height: 1,
                album_id: None,
                album_images_count: 0,
            }),
            Content::Audio(Audio {
                format: AudioFormat::Amr,
                data: b"#!AMR\n\x3c\x48".to_vec(),
                duration_ms: 1500,
            }),
            Content::Audio(Audio {
                format: AudioFormat::Aac,
                data: vec![0xff, 0xf1, 0x50, 0x80],
                duration_ms: 10,
            }),
            Content::Audio(Audio {
                format: AudioFormat::Aac,
                data: b"\0\0\0\x18ftypM4A ".to_vec(),
                duration_ms: 10,
            }),
        ];
        for content in contents {
            let mut m = text_msg();
            m.text.clear();
            m.content = content;
            let bytes = m.encode().unwrap();
            assert_eq!(ChatMessage::decode(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn rules_are_enforced() {
        let mut m = text_msg();
        m.clock = 0;
        assert_eq!(m.encode(), Err(ValidationError::ZeroClock));
        let mut m = text_msg();
        m.text = "  ".into();
        assert_eq!(m.encode(), Err(ValidationError::EmptyText));
        let mut m = text_msg();
        m.text = "x".repeat(MAX_TEXT_LEN + 1);
        assert_eq!(
            m.encode(),
            Err(ValidationError::TextTooLong {
                len: MAX_TEXT_LEN + 1
            })
        );
        let mut m = text_msg();
        m.chat_id.clear();
        assert_eq!(m.encode(), Err(ValidationError::EmptyChatId));
        let mut m = text_msg();
        m.chat_id = "c".repeat(MAX_CHAT_ID_LEN + 1);
        assert!(matches!(
            m.encode(),
            Err(ValidationError::ChatIdTooLong { .. })
        ));

        let image = |format, data| {
            let mut m = text_msg();
            m.content = Content::Image(Image {
                format,
                data,
                width: 0,
                height: 0,
                album_id: None,
                album_images_count: 0,
            });
            m.encode()
        };
        assert_eq!(
            image(ImageFormat::Jpeg, png(10)),
            Err(ValidationError::ImageMagic(ImageFormat::Jpeg))
        );
        assert_eq!(
            image(ImageFormat::Png, png(MAX_IMAGE_LEN + 1)),
            Err(ValidationError::ImageSize {
                len: MAX_IMAGE_LEN + 1
            })
        );
        assert!(image(ImageFormat::Png, png(MAX_IMAGE_LEN)).is_ok());
        assert_eq!(
            image(ImageFormat::Gif, vec![]),
            Err(ValidationError::ImageSize { len: 0 })
        );

        let audio = |format, data, duration_ms| {
            let mut m = text_msg();
            m.content = Content::Audio(Audio {
                format,
                data,
                duration_ms,
            });
            m.encode()
        };
        assert_eq!(
            audio(AudioFormat::Amr, b"#!AMR\n".to_vec(), 0),
            Err(ValidationError::AudioDuration(0))
        );
        assert_eq!(
            audio(
                AudioFormat::Amr,
                b"#!AMR\n".to_vec(),
                MAX_AUDIO_DURATION_MS + 1
            ),
            Err(ValidationError::AudioDuration(MAX_AUDIO_DURATION_MS + 1))
        );
        assert_eq!(
            audio(AudioFormat::Aac, b"#!AMR\n".to_vec(), 10),
            Err(ValidationError::AudioMagic(AudioFormat::Aac))
        );
        assert_eq!(
            audio(AudioFormat::Amr, vec![0xff, 0xf1], 10),
            Err(ValidationError::AudioMagic(AudioFormat::Amr))
        );
    }

    #[test]
    fn received_mismatches_are_refused() {
        use pb::chat_message::{ContentType, Payload};
        let mut p = text_msg().to_proto();
        p.content_type = ContentType::Image as i32;
        assert_eq!(
            ChatMessage::decode(&p.encode_to_vec()),
            Err(PayloadError::Invalid(ValidationError::ContentMismatch))
        );
        let mut p = text_msg().to_proto();
        p.payload = Some(Payload::Sticker(pb::StickerMessage {
            hash: "h".into(),
            pack: 1,
        }));
        assert_eq!(
            ChatMessage::decode(&p.encode_to_vec()),
            Err(PayloadError::Invalid(ValidationError::ContentMismatch))
        );
        let mut p = text_msg().to_proto();
        p.content_type = ContentType::TransactionCommand as i32;
        assert_eq!(
            ChatMessage::decode(&p.encode_to_vec()),
            Err(PayloadError::Invalid(ValidationError::ContentType(5)))
        );
        let mut p = text_msg().to_proto();
        p.message_type = pb::MessageType::SystemMessagePrivateGroup as i32;
        assert_eq!(
            ChatMessage::decode(&p.encode_to_vec()),
            Err(PayloadError::Invalid(ValidationError::MessageType(4)))
        );
        let mut p = text_msg().to_proto();
        p.response_to = "nope".into();
        assert!(matches!(
            ChatMessage::decode(&p.encode_to_vec()),
            Err(PayloadError::Invalid(ValidationError::BadMessageId(_)))
        ));
        let big = vec![0u8; MAX_CHAT_MESSAGE_LEN + 1];
        assert!(matches!(
            ChatMessage::decode(&big),
            Err(PayloadError::TooLarge { .. })
        ));
    }

    #[test]
    fn reactions_follow_the_latest_clock() {
        let msg = MessageId([1; 32]);
        let r = |clock, emoji, retracted| EmojiReaction {
            clock,
            chat_id: "c".into(),
            message_id: msg,
            message_type: MessageType::PublicGroup,
            emoji,
            retracted,
        };
        for reaction in [r(1, Emoji::Love, false), r(2, Emoji::Love, true)] {
            let bytes = reaction.encode().unwrap();
            assert_eq!(EmojiReaction::decode(&bytes).unwrap(), reaction);
        }
        let mut set = Reactions::new();
        assert!(set.apply([1; 32], &r(1, Emoji::Love, false)));
        assert!(set.apply([2; 32], &r(1, Emoji::Love, false)));
        assert!(set.apply([2; 32], &r(1, Emoji::Sad, false)));
        assert_eq!(set.counts(&msg).get(&Emoji::Love), Some(&2));
        // A retraction from sender 1, then a late copy of its older reaction: stays retracted.
        assert!(set.apply([1; 32], &r(5, Emoji::Love, true)));
        assert!(!set.apply([1; 32], &r(1, Emoji::Love, false)));
        assert_eq!(set.counts(&msg).get(&Emoji::Love), Some(&1));
        assert_eq!(set.counts(&msg).get(&Emoji::Sad), Some(&1));
        assert!(set.counts(&MessageId([2; 32])).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn reactions_converge_in_any_order(
            ops in proptest::collection::vec((0u8..3, 0u8..3, 1u64..20, any::<bool>()), 0..40),
            seed in any::<u64>(),
        ) {
            let msg = MessageId([9; 32]);
            let reactions: Vec<([u8; 32], EmojiReaction)> = ops
                .iter()
                .map(|&(sender, emoji, clock, retracted)| {
                    ([sender; 32], EmojiReaction {
                        clock,
                        chat_id: "c".into(),
                        message_id: msg,
                        message_type: MessageType::PublicGroup,
                        emoji: [Emoji::Love, Emoji::Sad, Emoji::Laugh][emoji as usize],
                        retracted,
                    })
                })
                .collect();
            let mut a = Reactions::new();
            for (s, r) in &reactions {
                a.apply(*s, r);
            }
            // A deterministic shuffle of the same reactions.
            let mut shuffled = reactions.clone();
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            let mut b = Reactions::new();
            for (s, r) in &shuffled {
                b.apply(*s, r);
            }
            prop_assert_eq!(a.counts(&msg), b.counts(&msg));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = ChatMessage::decode(&bytes);
            let _ = EmojiReaction::decode(&bytes);
        }
    }
}
