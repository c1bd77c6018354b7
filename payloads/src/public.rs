//! Public chats: a topic and a symmetric key derived from the channel name alone.
//!
//! Anyone who knows a channel's name can read and write it, so its messages are signed (in the
//! [`crate::metadata`] envelope) but not secret: the Waku payload is sealed with the symmetric
//! key of the channel's topic name only so that relays and store nodes that do not know the name
//! see ciphertext. Both derivations belong to `waku-core`:
//!
//! - the content topic is [`StatusTopic::public_chat`] (`/waku/1/0x{keccak256(name)[0..4]}/rfc26`);
//! - the key is [`SymmetricKey::from_topic_name`] of the same name.
//!
//! Channel names are what Status accepts: 1..=[`MAX_CHANNEL_NAME_LEN`] characters from
//! lowercase ASCII letters, digits and `-`.

use waku_core::payload::SymmetricKey;
use waku_core::topic::ContentTopic;
use waku_core::topic::status::StatusTopic;

/// Longest channel name, in characters.
pub const MAX_CHANNEL_NAME_LEN: usize = 64;

/// Why a name is not a channel name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelNameError {
    /// Empty, or longer than [`MAX_CHANNEL_NAME_LEN`].
    #[error("a channel name has 1..={MAX_CHANNEL_NAME_LEN} characters")]
    Length,
    /// A character other than `a-z`, `0-9` and `-`.
    #[error("a channel name uses a-z, 0-9 and -")]
    Character,
}

/// A public chat: its name, topic and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicChat {
    name: String,
    topic: StatusTopic,
    key: SymmetricKey,
}

/// Checks a channel name.
///
/// # Errors
/// [`ChannelNameError`].
pub fn check_channel_name(name: &str) -> Result<(), ChannelNameError> {
    if name.is_empty() || name.len() > MAX_CHANNEL_NAME_LEN {
        return Err(ChannelNameError::Length);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ChannelNameError::Character);
    }
    Ok(())
}

impl PublicChat {
    /// The public chat named `name`.
    ///
    /// # Errors
    /// [`ChannelNameError`].
    pub fn new(name: &str) -> Result<Self, ChannelNameError> {
        check_channel_name(name)?;
        let topic = StatusTopic::public_chat(name);
        let key = SymmetricKey::from_topic_name(topic.name());
        Ok(PublicChat {
            name: name.to_owned(),
            topic,
            key,
        })
    }

    /// The channel name (also the chat id of its messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Status topic.
    pub fn topic(&self) -> &StatusTopic {
        &self.topic
    }

    /// The Waku content topic.
    pub fn content_topic(&self) -> &ContentTopic {
        self.topic.content_topic()
    }

    /// The payload key.
    pub fn key(&self) -> &SymmetricKey {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_derivations() {
        let a = PublicChat::new("status").unwrap();
        assert_eq!(a, PublicChat::new("status").unwrap());
        assert_eq!(a.topic().name(), "status");
        assert_eq!(a.key(), &SymmetricKey::from_topic_name("status"));
        assert_ne!(
            a.content_topic(),
            PublicChat::new("other").unwrap().content_topic()
        );
        assert_eq!(PublicChat::new(""), Err(ChannelNameError::Length));
        assert_eq!(PublicChat::new("Status"), Err(ChannelNameError::Character));
        assert_eq!(PublicChat::new("a b"), Err(ChannelNameError::Character));
        assert_eq!(
            PublicChat::new(&"a".repeat(MAX_CHANNEL_NAME_LEN + 1)),
            Err(ChannelNameError::Length)
        );
    }
}
