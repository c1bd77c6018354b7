//! The message cache (IHAVE/IWANT), the seen cache and the keyed hasher behind their id maps.
//!
//! Message ids are `sha256(data)` and a peer chooses `data`, so a peer can grind ids that fall
//! into one hash-table bucket. The id maps therefore hash with a key drawn from the router's
//! seeded RNG, which no peer can see. Nothing here is iterated in hash order: the message cache
//! keeps its own insertion order per heartbeat window.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::MessageId;
use super::config::{MAX_MCACHE_BYTES, MAX_MCACHE_MESSAGES, MAX_SEEN};
use crate::net::PeerId;

/// Builds [`IdHasher`]s that share one secret key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyedHash {
    k0: u64,
    k1: u64,
}

impl KeyedHash {
    pub(crate) fn new(k0: u64, k1: u64) -> Self {
        KeyedHash { k0, k1: k1 | 1 }
    }
}

/// A keyed multiply-fold hash (the construction of wyhash and foldhash): every 8-byte word is
/// mixed into the state with a full 64×64→128-bit multiply by a secret, and the halves folded.
pub(crate) struct IdHasher {
    state: u64,
    key: u64,
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl BuildHasher for KeyedHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            state: self.k0,
            key: self.k1,
        }
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.state = fold_mul(self.state ^ u64::from_le_bytes(w), self.key);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            for (d, s) in w.iter_mut().zip(rest) {
                *d = *s;
            }
            self.state = fold_mul(
                self.state ^ u64::from_le_bytes(w),
                self.key ^ 0xa076_1d64_78bd_642f,
            );
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.state = fold_mul(self.state ^ n, self.key ^ 0xe703_7ed1_a0b4_28db);
    }

    #[inline]
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.state, self.key.rotate_left(29) ^ 0x8ebc_6af0_9c88_c6e3)
    }
}

impl Hash for MessageId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

/// One cached message, ready to be re-sent: the encoded `publish` field of an RPC.
#[derive(Debug)]
pub(crate) struct CachedMessage {
    /// The pubsub topic.
    pub(crate) topic: Arc<str>,
    /// `tag ‖ len ‖ Message{data, topic}`, appendable to any RPC.
    pub(crate) entry: Vec<u8>,
    /// How often each peer got this message in answer to IWANT (gossip retransmission cap).
    pub(crate) served: Vec<(PeerId, u32)>,
}

/// Messages of the last `history_length` heartbeats, by id; windows in arrival order.
#[derive(Debug)]
pub(crate) struct MessageCache {
    map: HashMap<MessageId, CachedMessage, KeyedHash>,
    /// `windows[0]` is the current heartbeat.
    windows: VecDeque<VecDeque<MessageId>>,
    history_length: usize,
    history_gossip: usize,
    bytes: usize,
}

impl MessageCache {
    pub(crate) fn new(history_length: usize, history_gossip: usize, hash: KeyedHash) -> Self {
        let mut windows = VecDeque::with_capacity(history_length);
        windows.push_back(VecDeque::new());
        MessageCache {
            map: HashMap::with_hasher(hash),
            windows,
            history_length: history_length.max(1),
            history_gossip,
            bytes: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a message; drops the oldest messages if a limit would be exceeded.
    pub(crate) fn put(&mut self, id: MessageId, topic: Arc<str>, entry: Vec<u8>) {
        let size = entry.len();
        // Make room first (if the id were already cached, one message goes early: harmless,
        // and callers only add ids that just entered the seen cache).
        while !self.map.is_empty()
            && (self.map.len() >= MAX_MCACHE_MESSAGES || self.bytes + size > MAX_MCACHE_BYTES)
        {
            self.evict_oldest();
        }
        if let std::collections::hash_map::Entry::Vacant(v) = self.map.entry(id) {
            v.insert(CachedMessage {
                topic,
                entry,
                served: Vec::new(),
            });
            self.bytes += size;
            if let Some(w) = self.windows.front_mut() {
                w.push_back(id);
            }
        }
    }

    fn evict_oldest(&mut self) {
        for w in self.windows.iter_mut().rev() {
            if let Some(id) = w.pop_front() {
                if let Some(m) = self.map.remove(&id) {
                    self.bytes -= m.entry.len();
                }
                return;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, id: &MessageId) -> Option<&CachedMessage> {
        self.map.get(id)
    }

    /// Counts one IWANT answer of `id` to `peer`; returns the entry to send if the peer has not
    /// had it `max` times yet.
    pub(crate) fn serve(&mut self, id: &MessageId, peer: PeerId, max: u32) -> Option<&[u8]> {
        let m = self.map.get_mut(id)?;
        let count = match m.served.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, c)) => c,
            None => {
                m.served.push((peer, 0));
                let (_, c) = m.served.last_mut()?;
                c
            }
        };
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(&m.entry)
    }

    /// Ids of `topic` from the gossip windows, newest first.
    pub(crate) fn gossip_ids(&self, topic: &str) -> Vec<MessageId> {
        let mut out = Vec::new();
        for w in self.windows.iter().take(self.history_gossip) {
            for id in w.iter().rev() {
                if self.map.get(id).is_some_and(|m| &*m.topic == topic) {
                    out.push(*id);
                }
            }
        }
        out
    }

    /// Starts a new heartbeat window, dropping the oldest when there are `history_length`.
    pub(crate) fn shift(&mut self) {
        if self.windows.len() >= self.history_length
            && let Some(old) = self.windows.pop_back()
        {
            for id in old {
                if let Some(m) = self.map.remove(&id) {
                    self.bytes -= m.entry.len();
                }
            }
        }
        self.windows.push_front(VecDeque::new());
    }
}

/// Ids of messages seen in the last `ttl`, so each is processed once.
///
/// Only the first 128 bits of each id are kept: ids are SHA-256 outputs, so two messages whose
/// ids agree in 128 bits cost about 2^64 hashes to find. That keeps the table (the router's
/// largest) compact, which matters because every message inserts one id and, at the cap or on
/// expiry, removes another.
#[derive(Debug)]
pub(crate) struct SeenCache {
    set: HashSet<u128, KeyedHash>,
    order: VecDeque<(Instant, u128)>,
    ttl: Duration,
}

fn seen_key(id: &MessageId) -> u128 {
    let mut k = [0u8; 16];
    for (d, s) in k.iter_mut().zip(id.0.iter()) {
        *d = *s;
    }
    u128::from_le_bytes(k)
}

impl SeenCache {
    pub(crate) fn new(ttl: Duration, hash: KeyedHash) -> Self {
        SeenCache {
            set: HashSet::with_hasher(hash),
            order: VecDeque::new(),
            ttl,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    pub(crate) fn contains(&self, id: &MessageId) -> bool {
        self.set.contains(&seen_key(id))
    }

    /// Records `id`; false if it was already there.
    pub(crate) fn insert(&mut self, id: MessageId, now: Instant) -> bool {
        let key = seen_key(&id);
        if !self.set.insert(key) {
            return false;
        }
        self.expire(now);
        while self.order.len() >= MAX_SEEN {
            self.pop_oldest();
        }
        self.order.push_back((now, key));
        true
    }

    fn pop_oldest(&mut self) {
        if let Some((_, old)) = self.order.pop_front() {
            self.set.remove(&old);
        }
    }

    /// Forgets ids older than the TTL.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < self.ttl {
                break;
            }
            self.pop_oldest();
        }
    }
}

/// A bounded first-in-first-out set of ids with arrival times (a peer's IDONTWANT list).
#[derive(Debug)]
pub(crate) struct IdFifo {
    set: HashSet<MessageId, KeyedHash>,
    order: VecDeque<(Instant, MessageId)>,
    cap: usize,
}

impl IdFifo {
    pub(crate) fn new(cap: usize, hash: KeyedHash) -> Self {
        IdFifo {
            set: HashSet::with_hasher(hash),
            order: VecDeque::new(),
            cap,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    pub(crate) fn contains(&self, id: &MessageId) -> bool {
        !self.set.is_empty() && self.set.contains(id)
    }

    pub(crate) fn insert(&mut self, id: MessageId, now: Instant) {
        if self.cap == 0 || !self.set.insert(id) {
            return;
        }
        while self.order.len() >= self.cap {
            if let Some((_, old)) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back((now, id));
    }

    /// Forgets ids recorded more than `ttl` ago.
    pub(crate) fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < ttl {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> MessageId {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        MessageId(b)
    }

    #[allow(clippy::disallowed_methods)] // tests need some base instant
    fn base() -> Instant {
        Instant::now()
    }

    fn key() -> KeyedHash {
        KeyedHash::new(1, 2)
    }

    #[test]
    fn mcache_windows_and_gossip() {
        let mut c = MessageCache::new(3, 2, key());
        let t: Arc<str> = Arc::from("t");
        let u: Arc<str> = Arc::from("u");
        c.put(id(1), t.clone(), vec![1]);
        c.put(id(2), u.clone(), vec![2]);
        c.shift();
        c.put(id(3), t.clone(), vec![3]);
        assert_eq!(c.gossip_ids("t"), vec![id(3), id(1)]);
        c.shift();
        assert_eq!(
            c.gossip_ids("t"),
            vec![id(3)],
            "window 3 is no longer gossiped"
        );
        assert!(c.get(&id(1)).is_some(), "but still served");
        c.shift();
        assert!(c.get(&id(1)).is_none());
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), 1);
    }

    #[test]
    fn mcache_serve_counts_per_peer() {
        let mut c = MessageCache::new(3, 2, key());
        c.put(id(1), Arc::from("t"), vec![9]);
        for _ in 0..3 {
            assert!(c.serve(&id(1), PeerId(1), 3).is_some());
        }
        assert!(c.serve(&id(1), PeerId(1), 3).is_none());
        assert!(c.serve(&id(1), PeerId(2), 3).is_some());
        assert!(c.serve(&id(2), PeerId(2), 3).is_none());
    }

    #[test]
    fn mcache_is_bounded() {
        let mut c = MessageCache::new(1, 1, key());
        for n in 0..(MAX_MCACHE_MESSAGES as u32 + 10) {
            c.put(id(n), Arc::from("t"), vec![0; 4]);
        }
        assert_eq!(c.len(), MAX_MCACHE_MESSAGES);
        assert!(c.get(&id(0)).is_none(), "oldest evicted first");
        assert!(c.get(&id(MAX_MCACHE_MESSAGES as u32 + 9)).is_some());
    }

    #[test]
    fn seen_expires_and_is_bounded() {
        let base = base();
        let mut s = SeenCache::new(Duration::from_secs(10), key());
        assert!(s.insert(id(1), base));
        assert!(!s.insert(id(1), base));
        assert!(s.insert(id(2), base + Duration::from_secs(5)));
        s.expire(base + Duration::from_secs(10));
        assert!(!s.contains(&id(1)));
        assert!(s.contains(&id(2)));
        for n in 0..(MAX_SEEN as u32 + 5) {
            s.insert(id(100 + n), base + Duration::from_secs(6));
        }
        assert_eq!(s.len(), MAX_SEEN);
    }

    #[test]
    fn id_fifo() {
        let base = base();
        let mut f = IdFifo::new(2, key());
        f.insert(id(1), base);
        f.insert(id(2), base);
        f.insert(id(3), base + Duration::from_secs(1));
        assert!(!f.contains(&id(1)));
        assert!(f.contains(&id(2)) && f.contains(&id(3)));
        f.expire(base + Duration::from_secs(1), Duration::from_secs(1));
        assert!(!f.contains(&id(2)));
        assert!(f.contains(&id(3)));
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn keyed_hash_depends_on_key() {
        let a = KeyedHash::new(1, 2).hash_one(id(7));
        let b = KeyedHash::new(3, 4).hash_one(id(7));
        assert_ne!(a, b);
        assert_eq!(a, KeyedHash::new(1, 2).hash_one(id(7)));
    }
}
