//! The in-memory archive: for light nodes, tests and as the model the SQLite backend is checked
//! against. Nothing survives a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::{
    ArchivedMessage, Criteria, Direction, MessageStore, PageRequest, Position, StoreError, is_past,
};
use crate::message::MessageHash;
use crate::topic::{ContentTopic, PubsubTopic};

/// An archive held in memory, indexed like the SQLite one: by position, by hash and by topic.
///
/// Memory grows with the messages held; bound it with a [`super::RetentionPolicy`] count (the
/// store server applies it) or with [`MemoryStore::with_capacity_limit`], which drops the
/// oldest messages on insert.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    by_position: BTreeMap<Position, ArchivedMessage>,
    by_hash: BTreeMap<MessageHash, i64>,
    by_topic: BTreeMap<(PubsubTopic, ContentTopic), BTreeSet<Position>>,
    cap: Option<u64>,
}

impl MemoryStore {
    /// An empty archive without a size limit.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// An empty archive that keeps at most `max` messages, dropping the oldest on insert.
    pub fn with_capacity_limit(max: u64) -> Self {
        MemoryStore {
            cap: Some(max),
            ..MemoryStore::default()
        }
    }

    fn remove(&mut self, pos: &Position) {
        if let Some(m) = self.by_position.remove(pos) {
            self.by_hash.remove(&m.hash);
            let key = (m.pubsub_topic, m.message.content_topic);
            if let Some(set) = self.by_topic.get_mut(&key) {
                set.remove(pos);
                if set.is_empty() {
                    self.by_topic.remove(&key);
                }
            }
        }
    }

    fn len(&self) -> u64 {
        u64::try_from(self.by_position.len()).unwrap_or(u64::MAX)
    }
}

/// The positions in `set`, in `direction`, at most `limit`.
fn walk<'a>(
    set: impl DoubleEndedIterator<Item = &'a Position>,
    direction: Direction,
    limit: usize,
) -> Vec<Position> {
    match direction {
        Direction::Forward => set.take(limit).copied().collect(),
        Direction::Backward => set.rev().take(limit).copied().collect(),
    }
}

/// The range of positions with a timestamp in `[lo, hi]` strictly past `after`; `None` when it is
/// empty (never a range `BTreeMap::range` would refuse).
fn range_of(
    lo: i64,
    hi: i64,
    after: Option<&Position>,
    direction: Direction,
) -> Option<(Bound<Position>, Bound<Position>)> {
    let mut lower = (
        Position {
            timestamp: lo,
            hash: MessageHash([0; 32]),
        },
        true,
    );
    let mut upper = (
        Position {
            timestamp: hi,
            hash: MessageHash([0xff; 32]),
        },
        true,
    );
    match (after, direction) {
        (Some(a), Direction::Forward) if *a >= lower.0 => lower = (*a, false),
        (Some(a), Direction::Backward) if *a <= upper.0 => upper = (*a, false),
        _ => {}
    }
    let valid = lower.0 < upper.0 || (lower.0 == upper.0 && lower.1 && upper.1);
    let bound = |(p, incl): (Position, bool)| {
        if incl {
            Bound::Included(p)
        } else {
            Bound::Excluded(p)
        }
    };
    valid.then(|| (bound(lower), bound(upper)))
}

impl MessageStore for MemoryStore {
    fn insert(&mut self, batch: &[ArchivedMessage]) -> Result<usize, StoreError> {
        let mut new = 0;
        for m in batch {
            if self.by_hash.contains_key(&m.hash) {
                continue;
            }
            let pos = m.position();
            self.by_hash.insert(m.hash, pos.timestamp);
            self.by_topic
                .entry((m.pubsub_topic.clone(), m.message.content_topic.clone()))
                .or_default()
                .insert(pos);
            self.by_position.insert(pos, m.clone());
            new += 1;
        }
        if let Some(cap) = self.cap {
            self.truncate(cap)?;
        }
        Ok(new)
    }

    fn position(&mut self, hash: &MessageHash) -> Result<Option<Position>, StoreError> {
        Ok(self.by_hash.get(hash).map(|&timestamp| Position {
            timestamp,
            hash: *hash,
        }))
    }

    fn page(&mut self, req: &PageRequest<'_>) -> Result<Vec<ArchivedMessage>, StoreError> {
        let after = req.after.as_ref();
        let positions: Vec<Position> = match req.criteria {
            Criteria::Hashes(hashes) => {
                let mut found: Vec<Position> = hashes
                    .iter()
                    .filter_map(|h| {
                        self.by_hash.get(h).map(|&timestamp| Position {
                            timestamp,
                            hash: *h,
                        })
                    })
                    .filter(|p| is_past(p, after, req.direction))
                    .collect();
                found.sort();
                walk(found.iter(), req.direction, req.limit)
            }
            Criteria::Content { topics, time } => {
                let Some((lo, hi)) = time.inclusive() else {
                    return Ok(Vec::new());
                };
                let Some(range) = range_of(lo, hi, after, req.direction) else {
                    return Ok(Vec::new());
                };
                match topics {
                    None => walk(
                        self.by_position.range(range).map(|(p, _)| p),
                        req.direction,
                        req.limit,
                    ),
                    Some(f) => {
                        // Each topic's own range, then a merge: cost proportional to the page.
                        let mut all = Vec::new();
                        for ct in &f.content_topics {
                            if let Some(set) =
                                self.by_topic.get(&(f.pubsub_topic.clone(), ct.clone()))
                            {
                                all.extend(walk(set.range(range), req.direction, req.limit));
                            }
                        }
                        all.sort();
                        if req.direction == Direction::Backward {
                            all.reverse();
                        }
                        all.truncate(req.limit);
                        all
                    }
                }
            }
        };
        Ok(positions
            .iter()
            .filter_map(|p| self.by_position.get(p).cloned())
            .collect())
    }

    fn delete_before(&mut self, cutoff: i64) -> Result<u64, StoreError> {
        let old: Vec<Position> = self
            .by_position
            .range(
                ..Position {
                    timestamp: cutoff,
                    hash: MessageHash([0; 32]),
                },
            )
            .map(|(p, _)| *p)
            .collect();
        for p in &old {
            self.remove(p);
        }
        Ok(u64::try_from(old.len()).unwrap_or(u64::MAX))
    }

    fn truncate(&mut self, max: u64) -> Result<u64, StoreError> {
        let excess = self.len().saturating_sub(max);
        let old: Vec<Position> = self
            .by_position
            .keys()
            .take(usize::try_from(excess).unwrap_or(usize::MAX))
            .copied()
            .collect();
        for p in &old {
            self.remove(p);
        }
        Ok(excess)
    }

    fn count(&mut self) -> Result<u64, StoreError> {
        Ok(self.len())
    }
}
