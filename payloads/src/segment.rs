//! Segmentation of payloads too large for one Waku message, and their bounded reassembly.
//!
//! A sender whose Waku payload is longer than its limit (a configurable share of the maximum
//! Waku message size, ¾ by default as in status-go, see WIRE.md B.14 and B.23) splits it with
//! [`split`] into `SegmentMessage`s:
//!
//! | field | content |
//! |---|---|
//! | `entire_message_hash = 1` | Keccak-256 of the whole payload |
//! | `index = 2` | 0-based position of this segment |
//! | `segments_count = 3` | how many segments there are, 2..=[`MAX_SEGMENTS`] |
//! | `payload = 4` | the segment's bytes (non-empty) |
//!
//! and sends each in its own Waku message. status-go adds Reed-Solomon parity segments
//! (fields 5 and 6); status-rs does not send them and refuses segments that carry them.
//!
//! A receiver recognises a segment with [`parse`] (a valid `SegmentMessage`; anything else is an
//! ordinary payload) and hands it to a [`Reassembler`], which returns the whole payload once every
//! segment is there and its hash checks. Reassembly is bounded: at most [`MAX_PENDING_MESSAGES`]
//! payloads and [`MAX_PENDING_BYTES`] bytes in progress, each complete within
//! [`SEGMENT_TIMEOUT`] of its first segment; beyond that the oldest is dropped. A segment that
//! contradicts the others of its payload (another count, another length for the same index) is
//! refused; a payload whose hash does not check is dropped whole.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message;
use proto::status::SegmentMessage;

use crate::id::{ID_LEN, keccak256};

/// Most segments of one payload (status-go's cap).
pub const MAX_SEGMENTS: u32 = 256;

/// Largest payload that may be split or reassembled: 4 MiB, far above anything the Messenger
/// sends (its largest message is an image chat message, about 120 KiB with its envelopes).
pub const MAX_SEGMENTED_LEN: usize = 4 * 1024 * 1024;

/// Bytes an encoded `SegmentMessage` adds around its payload, at most: the 32-byte hash with
/// its tag and length (34), the index and count with tags (6 each) and the payload's tag and
/// length (6).
pub const SEGMENT_OVERHEAD: usize = 52;

/// Smallest segment size [`split`] accepts, so a tiny limit cannot turn one payload into
/// thousands of Waku messages.
pub const MIN_SEGMENT_LEN: usize = 1024;

/// Most payloads being reassembled at once. An attacker can only make the receiver forget its
/// oldest partial payloads, which their senders' retransmissions (MVDS) bring back.
pub const MAX_PENDING_MESSAGES: usize = 64;

/// Most bytes held in partial payloads.
pub const MAX_PENDING_BYTES: usize = 2 * MAX_SEGMENTED_LEN;

/// How long a partial payload waits for its missing segments after its first one arrived.
/// Segments are published together, so they arrive together, from relay or from one store
/// query; five minutes leave room for a slow store backfill.
pub const SEGMENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Most hashes of recently completed payloads remembered, so that late duplicate segments do
/// not start a new reassembly.
pub const MAX_COMPLETED: usize = 1024;

/// Why a payload could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// The payload is longer than [`MAX_SEGMENTED_LEN`].
    #[error("payload of {len} bytes exceeds {MAX_SEGMENTED_LEN}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The limit is below [`MIN_SEGMENT_LEN`].
    #[error("segment limit {0} is below {MIN_SEGMENT_LEN}")]
    LimitTooSmall(usize),
    /// The payload would need more than [`MAX_SEGMENTS`] segments at this limit.
    #[error("{0} segments needed, at most {MAX_SEGMENTS} allowed")]
    TooManySegments(usize),
}

/// Why a segment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// Its count disagrees with earlier segments of the same payload.
    #[error("segment count disagrees with earlier segments")]
    CountMismatch,
    /// Another segment with the same index but different bytes arrived earlier.
    #[error("conflicting segment for the same index")]
    Conflict,
    /// The payload would exceed [`MAX_SEGMENTED_LEN`].
    #[error("reassembled payload would exceed {MAX_SEGMENTED_LEN}")]
    TooLarge,
    /// All segments arrived but their concatenation does not have the announced hash; the
    /// partial payload was dropped.
    #[error("reassembled payload does not match its hash")]
    HashMismatch,
}

/// Splits `payload` so that every encoded piece is at most `max_len` bytes. A payload that fits
/// is returned unchanged as the only piece; a larger one becomes encoded `SegmentMessage`s.
///
/// # Errors
/// [`SplitError`].
pub fn split(payload: &[u8], max_len: usize) -> Result<Vec<Vec<u8>>, SplitError> {
    if payload.len() > MAX_SEGMENTED_LEN {
        return Err(SplitError::TooLarge { len: payload.len() });
    }
    if max_len < MIN_SEGMENT_LEN {
        return Err(SplitError::LimitTooSmall(max_len));
    }
    if payload.len() <= max_len {
        return Ok(vec![payload.to_vec()]);
    }
    let chunk = max_len - SEGMENT_OVERHEAD;
    let count = payload.len().div_ceil(chunk);
    let count32 = u32::try_from(count)
        .ok()
        .filter(|c| *c <= MAX_SEGMENTS)
        .ok_or(SplitError::TooManySegments(count))?;
    let hash = keccak256(&[payload]).to_vec();
    Ok(payload
        .chunks(chunk)
        .zip(0u32..)
        .map(|(piece, index)| {
            SegmentMessage {
                entire_message_hash: hash.clone(),
                index,
                segments_count: count32,
                payload: piece.to_vec(),
                parity_segment_index: 0,
                parity_segments_count: 0,
            }
            .encode_to_vec()
        })
        .collect())
}

/// A received segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Keccak-256 of the whole payload.
    pub hash: [u8; ID_LEN],
    /// Position of this segment.
    pub index: u32,
    /// Number of segments.
    pub count: u32,
    /// The segment's bytes.
    pub payload: Vec<u8>,
}

/// Reads `bytes` as a segment: a `SegmentMessage` with a 32-byte hash, a count in
/// 2..=[`MAX_SEGMENTS`], an index below it, a non-empty payload and no parity fields. `None`
/// means the bytes are not a segment (an ordinary payload, or garbage for the next layer to
/// refuse).
pub fn parse(bytes: &[u8]) -> Option<Segment> {
    if bytes.len() > MAX_SEGMENTED_LEN {
        return None;
    }
    let msg = SegmentMessage::decode(bytes).ok()?;
    let hash: [u8; ID_LEN] = msg.entire_message_hash.as_slice().try_into().ok()?;
    let valid = (2..=MAX_SEGMENTS).contains(&msg.segments_count)
        && msg.index < msg.segments_count
        && !msg.payload.is_empty()
        && msg.parity_segment_index == 0
        && msg.parity_segments_count == 0;
    valid.then_some(Segment {
        hash,
        index: msg.index,
        count: msg.segments_count,
        payload: msg.payload,
    })
}

#[derive(Debug)]
struct Assembly {
    count: u32,
    parts: BTreeMap<u32, Vec<u8>>,
    bytes: usize,
    deadline: Instant,
}

/// Reassembles segmented payloads within the bounds of the module docs.
#[derive(Debug, Default)]
pub struct Reassembler {
    pending: BTreeMap<[u8; ID_LEN], Assembly>,
    bytes: usize,
    // hash -> when to forget it
    completed: BTreeMap<[u8; ID_LEN], Instant>,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one segment. Returns the whole payload when this segment completes it, `Ok(None)`
    /// while segments are missing (or for a duplicate of a completed payload's segment).
    ///
    /// # Errors
    /// [`SegmentError`]; a refused segment changes nothing, except that a hash mismatch drops
    /// the partial payload.
    pub fn handle(
        &mut self,
        now: Instant,
        segment: Segment,
    ) -> Result<Option<Vec<u8>>, SegmentError> {
        self.handle_timeout(now);
        if self.completed.contains_key(&segment.hash) {
            return Ok(None);
        }
        let len = segment.payload.len();
        if let Some(a) = self.pending.get(&segment.hash) {
            if a.count != segment.count {
                return Err(SegmentError::CountMismatch);
            }
            if let Some(existing) = a.parts.get(&segment.index) {
                return if *existing == segment.payload {
                    Ok(None)
                } else {
                    Err(SegmentError::Conflict)
                };
            }
            if a.bytes + len > MAX_SEGMENTED_LEN {
                return Err(SegmentError::TooLarge);
            }
        } else if len > MAX_SEGMENTED_LEN {
            return Err(SegmentError::TooLarge);
        }
        // Make room: the oldest partial payloads go first.
        while self.pending.len() >= MAX_PENDING_MESSAGES
            && !self.pending.contains_key(&segment.hash)
            || self.bytes + len > MAX_PENDING_BYTES
        {
            if !self.evict_oldest() {
                break;
            }
        }
        let entry = self
            .pending
            .entry(segment.hash)
            .or_insert_with(|| Assembly {
                count: segment.count,
                parts: BTreeMap::new(),
                bytes: 0,
                deadline: now + SEGMENT_TIMEOUT,
            });
        entry.bytes += len;
        entry.parts.insert(segment.index, segment.payload);
        self.bytes += len;
        if entry.parts.len() < entry.count as usize {
            return Ok(None);
        }
        let Some(done) = self.pending.remove(&segment.hash) else {
            return Ok(None);
        };
        self.bytes -= done.bytes;
        let mut whole = Vec::with_capacity(done.bytes);
        for part in done.parts.into_values() {
            whole.extend_from_slice(&part);
        }
        if keccak256(&[&whole]) != segment.hash {
            return Err(SegmentError::HashMismatch);
        }
        if self.completed.len() >= MAX_COMPLETED {
            let first = self
                .completed
                .iter()
                .min_by_key(|(h, t)| (**t, **h))
                .map(|(h, _)| *h);
            if let Some(first) = first {
                self.completed.remove(&first);
            }
        }
        self.completed.insert(segment.hash, now + SEGMENT_TIMEOUT);
        Ok(Some(whole))
    }

    fn evict_oldest(&mut self) -> bool {
        let oldest = self
            .pending
            .iter()
            .min_by_key(|(h, a)| (a.deadline, **h))
            .map(|(h, _)| *h);
        match oldest.and_then(|h| self.pending.remove(&h)) {
            Some(a) => {
                self.bytes -= a.bytes;
                true
            }
            None => false,
        }
    }

    /// Drops partial payloads whose time is up and forgets old completed hashes.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut freed = 0;
        self.pending.retain(|_, a| {
            let keep = a.deadline > now;
            if !keep {
                freed += a.bytes;
            }
            keep
        });
        self.bytes -= freed;
        self.completed.retain(|_, t| *t > now);
    }

    /// When the next partial payload or completed hash expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.pending.values().map(|a| a.deadline);
        pending.chain(self.completed.values().copied()).min()
    }

    /// How many payloads are being reassembled.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// How many bytes partial payloads hold.
    pub fn pending_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[allow(clippy::disallowed_methods)] // tests need some origin; only offsets matter
    fn t0() -> Instant {
        Instant::now()
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn small_payloads_pass_unchanged() {
        let d = data(2000);
        assert_eq!(split(&d, 4096).unwrap(), vec![d.clone()]);
        assert!(parse(&d).is_none());
    }

    #[test]
    fn split_and_reassemble() {
        let d = data(10_000);
        let pieces = split(&d, 2048).unwrap();
        assert_eq!(pieces.len(), 10_000usize.div_ceil(2048 - SEGMENT_OVERHEAD));
        assert!(pieces.iter().all(|p| p.len() <= 2048));
        let now = t0();
        let mut r = Reassembler::new();
        let mut out = None;
        for p in pieces.iter().rev() {
            assert!(out.is_none());
            out = r.handle(now, parse(p).unwrap()).unwrap();
        }
        assert_eq!(out.unwrap(), d);
        assert_eq!(r.pending(), 0);
        assert_eq!(r.pending_bytes(), 0);
        // A late duplicate changes nothing.
        assert_eq!(r.handle(now, parse(&pieces[0]).unwrap()), Ok(None));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn limits() {
        assert_eq!(split(&data(10), 100), Err(SplitError::LimitTooSmall(100)));
        assert_eq!(
            split(&data(MAX_SEGMENTED_LEN + 1), 4096),
            Err(SplitError::TooLarge {
                len: MAX_SEGMENTED_LEN + 1
            })
        );
        assert!(matches!(
            split(&data(300 * 1024), 1024),
            Err(SplitError::TooManySegments(_))
        ));
    }

    #[test]
    fn forged_and_conflicting_segments() {
        let d = data(5000);
        let pieces = split(&d, 2048).unwrap();
        let now = t0();
        let mut r = Reassembler::new();
        let first = parse(&pieces[0]).unwrap();
        r.handle(now, first.clone()).unwrap();
        let mut wrong_count = first.clone();
        wrong_count.count += 1;
        wrong_count.index = 1;
        assert_eq!(r.handle(now, wrong_count), Err(SegmentError::CountMismatch));
        let mut conflict = first.clone();
        conflict.payload[0] ^= 1;
        assert_eq!(r.handle(now, conflict), Err(SegmentError::Conflict));
        // A forged last segment: the hash fails, the payload is dropped.
        let mut forged = parse(&pieces[1]).unwrap();
        r.handle(now, forged.clone()).unwrap();
        forged = parse(&pieces[2]).unwrap();
        forged.payload[0] ^= 1;
        assert_eq!(r.handle(now, forged), Err(SegmentError::HashMismatch));
        assert_eq!(r.pending(), 0);
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn partial_payloads_time_out_and_are_bounded() {
        let now = t0();
        let mut r = Reassembler::new();
        for i in 0..(MAX_PENDING_MESSAGES + 10) {
            let mut d = data(3000);
            d[0] = i as u8;
            d[1] = (i >> 8) as u8;
            let first = split(&d, 2048).unwrap().remove(0);
            r.handle(
                now + Duration::from_millis(i as u64),
                parse(&first).unwrap(),
            )
            .unwrap();
            assert!(r.pending() <= MAX_PENDING_MESSAGES);
        }
        assert_eq!(r.pending(), MAX_PENDING_MESSAGES);
        let deadline = r.poll_timeout().unwrap();
        assert!(deadline > now);
        r.handle_timeout(now + SEGMENT_TIMEOUT + Duration::from_secs(1));
        assert_eq!(r.pending(), 0);
        assert_eq!(r.pending_bytes(), 0);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn parity_and_bad_fields_are_not_segments() {
        let mut m = SegmentMessage {
            entire_message_hash: vec![0; 32],
            index: 0,
            segments_count: 2,
            payload: vec![1],
            parity_segment_index: 0,
            parity_segments_count: 0,
        };
        assert!(parse(&m.encode_to_vec()).is_some());
        m.parity_segments_count = 1;
        assert!(parse(&m.encode_to_vec()).is_none());
        m.parity_segments_count = 0;
        m.segments_count = 1;
        assert!(parse(&m.encode_to_vec()).is_none());
        m.segments_count = MAX_SEGMENTS + 1;
        assert!(parse(&m.encode_to_vec()).is_none());
        m.segments_count = 2;
        m.index = 2;
        assert!(parse(&m.encode_to_vec()).is_none());
        m.index = 0;
        m.entire_message_hash = vec![0; 31];
        assert!(parse(&m.encode_to_vec()).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Loss, duplication and reordering: once every segment has arrived at least once the
        /// payload comes out exactly once, and never before.
        #[test]
        fn reassembles_under_duplication_and_reordering(
            len in 2049usize..20_000,
            limit in 1024usize..2048,
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..120),
        ) {
            let d = data(len);
            let pieces = split(&d, limit).unwrap();
            let n = pieces.len();
            let now = t0();
            let mut r = Reassembler::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut outputs = 0;
            // Random picks (duplicates, reordering, losses), then every piece once.
            let picks: Vec<usize> = order.iter().map(|i| i.index(n)).chain(0..n).collect();
            for i in picks {
                seen.insert(i);
                if let Some(whole) = r.handle(now, parse(&pieces[i]).unwrap()).unwrap() {
                    prop_assert_eq!(seen.len(), n);
                    prop_assert_eq!(&whole, &d);
                    outputs += 1;
                }
            }
            prop_assert_eq!(outputs, 1);
            prop_assert_eq!(r.pending_bytes(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some(s) = parse(&bytes) {
                let mut r = Reassembler::new();
                let _ = r.handle(t0(), s);
            }
        }
    }
}
