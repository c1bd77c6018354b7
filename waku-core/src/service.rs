//! Plumbing shared by the request/response machines (store, filter, lightpush, metadata, peer
//! exchange): bounded output queues, outstanding-request tables with deadlines, request-id
//! strings and a token-bucket rate limiter.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::Rng;

use crate::net::{FrameKind, PeerId, Protocol, Transmit};

/// A FIFO with a hard bound. Pushing onto a full queue drops the item and counts it, so a driver
/// that stops draining cannot make a machine grow without limit.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    items: VecDeque<T>,
    max: usize,
    dropped: u64,
}

impl<T> Queue<T> {
    pub(crate) fn new(max: usize) -> Self {
        Queue {
            items: VecDeque::new(),
            max,
            dropped: 0,
        }
    }

    /// Appends `item`; returns `false` (and drops it) when the queue is full.
    pub(crate) fn push(&mut self, item: T) -> bool {
        if self.items.len() >= self.max {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        self.items.push_back(item);
        true
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }
}

/// Builds a transmit.
pub(crate) fn transmit(
    to: PeerId,
    protocol: Protocol,
    kind: FrameKind,
    bytes: Vec<u8>,
) -> Transmit {
    Transmit {
        to,
        protocol,
        kind,
        bytes,
    }
}

/// A request id string in the UUID v4 format js-waku uses, drawn from the machine's seeded RNG.
pub(crate) fn request_id_string(rng: &mut ChaCha20Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    // 8-4-4-4-12
    let (a, rest) = h.split_at(8);
    let (b2, rest) = rest.split_at(4);
    let (c, rest) = rest.split_at(4);
    let (d, e) = rest.split_at(4);
    format!("{a}-{b2}-{c}-{d}-{e}")
}

/// Outstanding requests keyed by (peer, frame request id), each with a deadline.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    by_key: BTreeMap<(PeerId, u64), (Instant, T)>,
    deadlines: BTreeSet<(Instant, PeerId, u64)>,
    next_id: u64,
}

impl<T> Pending<T> {
    pub(crate) fn new() -> Self {
        Pending {
            by_key: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            next_id: 1,
        }
    }

    /// A fresh frame request id (unique for this machine, hence per peer).
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(crate) fn insert(&mut self, peer: PeerId, id: u64, deadline: Instant, value: T) {
        if let Some((old, _)) = self.by_key.insert((peer, id), (deadline, value)) {
            self.deadlines.remove(&(old, peer, id));
        }
        self.deadlines.insert((deadline, peer, id));
    }

    pub(crate) fn remove(&mut self, peer: PeerId, id: u64) -> Option<T> {
        let (deadline, value) = self.by_key.remove(&(peer, id))?;
        self.deadlines.remove(&(deadline, peer, id));
        Some(value)
    }

    /// Removes and returns every request to `peer`.
    pub(crate) fn remove_peer(&mut self, peer: PeerId) -> Vec<(u64, T)> {
        let ids: Vec<u64> = self
            .by_key
            .range((peer, 0)..=(peer, u64::MAX))
            .map(|((_, id), _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.remove(peer, id).map(|v| (id, v)))
            .collect()
    }

    /// Removes and returns the requests whose deadline is at or before `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(PeerId, u64, T)> {
        let mut out = Vec::new();
        while let Some(&(deadline, peer, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            if let Some(v) = self.remove(peer, id) {
                out.push((peer, id, v));
            } else {
                self.deadlines.remove(&(deadline, peer, id));
            }
        }
        out
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(d, _, _)| *d)
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> Vec<(PeerId, u64, T)> {
        let drop: Vec<(PeerId, u64)> = self
            .by_key
            .iter()
            .filter(|(_, (_, v))| !keep(v))
            .map(|(k, _)| *k)
            .collect();
        drop.into_iter()
            .filter_map(|(p, id)| self.remove(p, id).map(|v| (p, id, v)))
            .collect()
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests allowed in a burst.
    pub burst: u32,
    /// Sustained requests per second.
    pub per_second: f64,
}

/// Per-peer token buckets, bounded by `max_peers` entries (the oldest-refilled is forgotten
/// first, which only ever makes the limiter more lenient).
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: Option<RateLimit>,
    buckets: BTreeMap<PeerId, (f64, Instant)>,
    max_peers: usize,
}

impl Limiter {
    pub(crate) fn new(limit: Option<RateLimit>, max_peers: usize) -> Self {
        Limiter {
            limit,
            buckets: BTreeMap::new(),
            max_peers,
        }
    }

    /// Takes one token for `peer`; `false` when the peer is over its rate.
    pub(crate) fn allow(&mut self, now: Instant, peer: PeerId) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        let burst = f64::from(limit.burst);
        let (tokens, last) = self.buckets.get(&peer).copied().unwrap_or((burst, now));
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        let tokens = (tokens + elapsed * limit.per_second).min(burst);
        if self.buckets.len() >= self.max_peers && !self.buckets.contains_key(&peer) {
            let oldest = self
                .buckets
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(p, _)| *p);
            if let Some(p) = oldest {
                self.buckets.remove(&p);
            }
        }
        if tokens >= 1.0 {
            self.buckets.insert(peer, (tokens - 1.0, now));
            true
        } else {
            self.buckets.insert(peer, (tokens, now));
            false
        }
    }

    pub(crate) fn forget(&mut self, peer: PeerId) {
        self.buckets.remove(&peer);
    }
}

/// `a` + `d`, saturating instead of overflowing.
pub(crate) fn after(a: Instant, d: Duration) -> Instant {
    a.checked_add(d).unwrap_or(a)
}

/// The earliest of optional instants.
pub(crate) fn earliest(times: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    times.into_iter().flatten().min()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests play the driver, which owns the clock.
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn request_ids_look_like_uuid_v4() {
        let mut rng = ChaCha20Rng::from_seed([7; 32]);
        let id = request_id_string(&mut rng);
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(id, request_id_string(&mut rng));
    }

    #[test]
    fn pending_expires_in_deadline_order() {
        let t0 = Instant::now();
        let mut p = Pending::new();
        p.insert(PeerId(1), 1, t0 + Duration::from_secs(5), "a");
        p.insert(PeerId(2), 2, t0 + Duration::from_secs(1), "b");
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(1)));
        let gone = p.expire(t0 + Duration::from_secs(2));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].2, "b");
        assert_eq!(p.remove_peer(PeerId(1)), vec![(1, "a")]);
        assert_eq!(p.next_deadline(), None);
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn limiter_refills() {
        let t0 = Instant::now();
        let mut l = Limiter::new(
            Some(RateLimit {
                burst: 2,
                per_second: 1.0,
            }),
            4,
        );
        assert!(l.allow(t0, PeerId(1)));
        assert!(l.allow(t0, PeerId(1)));
        assert!(!l.allow(t0, PeerId(1)));
        assert!(l.allow(t0 + Duration::from_secs(1), PeerId(1)));
        assert!(l.allow(t0, PeerId(2)));
    }

    #[test]
    fn queue_is_bounded() {
        let mut q = Queue::new(2);
        assert!(q.push(1));
        assert!(q.push(2));
        assert!(!q.push(3));
        assert_eq!(q.dropped, 1);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), None);
    }
}
