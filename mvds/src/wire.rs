//! Payload decoding with validation, and a size-aware payload builder.

use proto::Message as _;
use proto::mvds::{Message, Payload};

use crate::error::NotMvds;
use crate::id::{GroupId, MessageId};
use crate::{MAX_PAYLOAD_BYTES, MAX_RECORDS_PER_PAYLOAD};

/// Protobuf field numbers of `Payload` (WIRE.md B.21).
const ACKS: u64 = 5001;
const OFFERS: u64 = 5002;
const REQUESTS: u64 = 5003;
const MESSAGES: u64 = 5004;
/// Field numbers of `Message`.
const MSG_GROUP: u64 = 6001;
const MSG_TIMESTAMP: u64 = 6002;
const MSG_BODY: u64 = 6003;

/// Length of an unsigned varint.
pub(crate) const fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Length of the key of a length-delimited field (wire type 2).
const fn key_len(field: u64) -> usize {
    varint_len(field << 3 | 2)
}

/// Encoded size of one 32-byte id inside `acks`, `offers` or `requests`.
pub(crate) const ID_ENTRY_LEN: usize = key_len(ACKS) + 1 + 32;

/// Encoded size of `Message { group_id, timestamp, body }` without its enclosing key and length.
pub(crate) fn message_len(timestamp: i64, body_len: usize) -> usize {
    let ts = if timestamp == 0 {
        0
    } else {
        varint_len(MSG_TIMESTAMP << 3) + varint_len(timestamp as u64)
    };
    let body = if body_len == 0 {
        0
    } else {
        key_len(MSG_BODY) + varint_len(body_len as u64) + body_len
    };
    key_len(MSG_GROUP) + 1 + 32 + ts + body
}

/// Encoded size of one message inside `messages`, key and length prefix included.
pub(crate) fn message_entry_len(timestamp: i64, body_len: usize) -> usize {
    let inner = message_len(timestamp, body_len);
    key_len(MESSAGES) + varint_len(inner as u64) + inner
}

/// The records of a decoded, validated payload.
#[derive(Debug, Default)]
pub(crate) struct Records {
    pub(crate) acks: Vec<MessageId>,
    pub(crate) offers: Vec<(MessageId, Option<GroupId>)>,
    pub(crate) requests: Vec<MessageId>,
    pub(crate) messages: Vec<Message>,
}

/// Decodes and validates a payload. Every error means the bytes are not a usable MVDS payload;
/// nothing has been looked at beyond them.
pub(crate) fn decode(bytes: &[u8]) -> Result<Records, NotMvds> {
    if bytes.is_empty() {
        return Err(NotMvds::Empty);
    }
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(NotMvds::TooLarge {
            len: bytes.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    let p = Payload::decode(bytes).map_err(NotMvds::Malformed)?;
    let count = p.acks.len()
        + p.offers.len()
        + p.requests.len()
        + p.messages.len()
        + p.group_offers
            .iter()
            .map(|o| o.message_ids.len().max(1))
            .sum::<usize>();
    if count == 0 {
        return Err(NotMvds::Empty);
    }
    if count > MAX_RECORDS_PER_PAYLOAD {
        return Err(NotMvds::TooManyRecords {
            count,
            max: MAX_RECORDS_PER_PAYLOAD,
        });
    }
    let id = |b: &Vec<u8>| MessageId::from_slice(b).ok_or(NotMvds::BadIdLength { len: b.len() });
    let group =
        |b: &Vec<u8>| GroupId::from_slice(b).ok_or(NotMvds::BadGroupIdLength { len: b.len() });
    let mut r = Records {
        acks: p.acks.iter().map(id).collect::<Result<_, _>>()?,
        requests: p.requests.iter().map(id).collect::<Result<_, _>>()?,
        offers: Vec::with_capacity(count),
        messages: Vec::new(),
    };
    for o in &p.offers {
        r.offers.push((id(o)?, None));
    }
    for o in &p.group_offers {
        let g = group(&o.group_id)?;
        for m in &o.message_ids {
            r.offers.push((id(m)?, Some(g)));
        }
    }
    for m in &p.messages {
        group(&m.group_id)?;
    }
    r.messages = p.messages;
    Ok(r)
}

/// Builds one payload for one peer within [`MAX_PAYLOAD_BYTES`] and
/// [`MAX_RECORDS_PER_PAYLOAD`].
#[derive(Debug, Default)]
pub(crate) struct Builder {
    payload: Payload,
    len: usize,
    records: usize,
}

impl Builder {
    fn room_for(&self, entry_len: usize) -> bool {
        self.records < MAX_RECORDS_PER_PAYLOAD && self.len + entry_len <= MAX_PAYLOAD_BYTES
    }

    /// Whether one more id fits.
    pub(crate) fn has_room_for_id(&self) -> bool {
        self.room_for(ID_ENTRY_LEN)
    }

    fn push_id(&mut self, list: Lists, id: &MessageId) -> bool {
        if !self.has_room_for_id() {
            return false;
        }
        let v = id.0.to_vec();
        match list {
            Lists::Acks => self.payload.acks.push(v),
            Lists::Offers => self.payload.offers.push(v),
            Lists::Requests => self.payload.requests.push(v),
        }
        self.len += ID_ENTRY_LEN;
        self.records += 1;
        true
    }

    /// Adds an ack; false when the payload is full.
    pub(crate) fn ack(&mut self, id: &MessageId) -> bool {
        self.push_id(Lists::Acks, id)
    }

    /// Adds an offer; false when the payload is full.
    pub(crate) fn offer(&mut self, id: &MessageId) -> bool {
        self.push_id(Lists::Offers, id)
    }

    /// Adds a request; false when the payload is full.
    pub(crate) fn request(&mut self, id: &MessageId) -> bool {
        self.push_id(Lists::Requests, id)
    }

    /// Adds a message; false when the payload is full.
    pub(crate) fn message(&mut self, group: &GroupId, timestamp: i64, body: &[u8]) -> bool {
        let entry = message_entry_len(timestamp, body.len());
        if !self.room_for(entry) {
            return false;
        }
        self.payload.messages.push(Message {
            group_id: group.0.to_vec(),
            timestamp,
            body: body.to_vec(),
        });
        self.len += entry;
        self.records += 1;
        true
    }

    /// Whether nothing was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The encoded payload.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.payload.encode_to_vec()
    }

    /// The exact encoded length so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[derive(Clone, Copy)]
enum Lists {
    Acks,
    Offers,
    Requests,
}

const _: () = assert!(key_len(OFFERS) == key_len(ACKS) && key_len(REQUESTS) == key_len(ACKS));

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_lengths() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u64::MAX), 10);
        assert_eq!(ID_ENTRY_LEN, 36);
    }

    proptest! {
        #[test]
        fn builder_length_is_exact(
            acks in 0usize..5, offers in 0usize..5, requests in 0usize..5,
            msgs in proptest::collection::vec((any::<i64>(), 0usize..300), 0..5),
        ) {
            let mut b = Builder::default();
            let id = MessageId([9; 32]);
            for _ in 0..acks { prop_assert!(b.ack(&id)); }
            for _ in 0..offers { prop_assert!(b.offer(&id)); }
            for _ in 0..requests { prop_assert!(b.request(&id)); }
            for (ts, len) in &msgs {
                prop_assert!(b.message(&GroupId([1; 32]), *ts, &vec![5u8; *len]));
            }
            let expected = b.len();
            prop_assert_eq!(b.finish().len(), expected);
        }
    }

    #[test]
    fn builder_respects_caps() {
        let mut b = Builder::default();
        let id = MessageId([1; 32]);
        let mut n = 0;
        while b.ack(&id) {
            n += 1;
        }
        assert_eq!(n, MAX_RECORDS_PER_PAYLOAD);
        let bytes = b.finish();
        assert!(bytes.len() <= MAX_PAYLOAD_BYTES);
        assert_eq!(decode(&bytes).unwrap().acks.len(), MAX_RECORDS_PER_PAYLOAD);

        let mut b = Builder::default();
        let body = vec![0u8; 40_000];
        let mut n = 0;
        while b.message(&GroupId([1; 32]), 1, &body) {
            n += 1;
        }
        assert_eq!(n, 3);
        let len = b.len();
        assert!(len <= MAX_PAYLOAD_BYTES);
        assert_eq!(b.finish().len(), len);
    }

    #[test]
    fn largest_body_fits_alone() {
        let mut b = Builder::default();
        let body = vec![0u8; crate::MAX_BODY_BYTES];
        assert!(b.message(&GroupId([1; 32]), i64::MIN, &body));
        assert!(b.len() <= MAX_PAYLOAD_BYTES);
    }

    #[test]
    fn rejects_what_is_not_mvds() {
        assert!(matches!(decode(&[]), Err(NotMvds::Empty)));
        // A protobuf message with only unknown fields decodes to an empty payload.
        assert!(matches!(decode(&[0x08, 0x01]), Err(NotMvds::Empty)));
        assert!(matches!(decode(&[0xff; 4]), Err(NotMvds::Malformed(_))));
        let short = Payload {
            acks: vec![vec![1; 31]],
            ..Default::default()
        };
        assert!(matches!(
            decode(&short.encode_to_vec()),
            Err(NotMvds::BadIdLength { len: 31 })
        ));
        let bad_group = Payload {
            messages: vec![Message {
                group_id: vec![1; 33],
                timestamp: 1,
                body: vec![],
            }],
            ..Default::default()
        };
        assert!(matches!(
            decode(&bad_group.encode_to_vec()),
            Err(NotMvds::BadGroupIdLength { len: 33 })
        ));
        let many = Payload {
            acks: vec![vec![1; 32]; MAX_RECORDS_PER_PAYLOAD + 1],
            ..Default::default()
        };
        assert!(matches!(
            decode(&many.encode_to_vec()),
            Err(NotMvds::TooManyRecords { .. })
        ));
        assert!(matches!(
            decode(&vec![0u8; MAX_PAYLOAD_BYTES + 1]),
            Err(NotMvds::TooLarge { .. })
        ));
    }
}
