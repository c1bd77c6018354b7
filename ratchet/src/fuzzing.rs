//! Fuzz bodies and the two-party rig shared by the cargo-fuzz targets and the tests.
//!
//! A fuzz body panics when it finds a bug; that is how the fuzzer learns of it.
// Fuzz bodies assert and panic on purpose; indices are reduced modulo the queue lengths.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

use crate::{
    DecryptError, MAX_SKIP, MAX_STORED_SKIPPED_KEYS, Message, PickleKey, RatchetKeyPair, Session,
    SessionConfig,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A party never sends more than this many messages without hearing from its peer, so no
/// honest message can exceed [`MAX_SKIP`] (the rig checks exactly-once delivery, which a skip
/// beyond the limit would break on purpose).
pub const MAX_UNANSWERED: u32 = MAX_SKIP - 100;
/// Messages kept for later re-delivery as duplicates.
pub const MAX_HISTORY: usize = 64;
/// Messages in flight per direction; sends beyond it are skipped.
pub const MAX_IN_FLIGHT: usize = 256;

/// Which way a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Alice to Bob.
    AliceToBob,
    /// Bob to Alice.
    BobToAlice,
}

impl Dir {
    fn index(self) -> usize {
        match self {
            Dir::AliceToBob => 0,
            Dir::BobToAlice => 1,
        }
    }
}

/// One step of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The sender encrypts a new message and puts it on the network.
    Send(Dir),
    /// The network delivers the in-flight message at this index (modulo the queue length).
    Deliver(Dir, usize),
    /// The network loses the in-flight message at this index.
    Drop(Dir, usize),
    /// The network copies the in-flight message at this index (or, with none in flight, a
    /// delivered one from history).
    Duplicate(Dir, usize),
    /// The network swaps two in-flight messages.
    Reorder(Dir, usize, usize),
    /// An attacker delivers a copy of an in-flight or delivered message with one bit flipped.
    Tamper(Dir, usize, u16),
    /// The receiver persists its session and loads it again.
    Restart(Dir),
}

impl Action {
    /// Decodes an action from two bytes (as the interaction fuzz target does).
    pub fn from_bytes(op: u8, arg: u8) -> Self {
        let dir = if op & 1 == 0 {
            Dir::AliceToBob
        } else {
            Dir::BobToAlice
        };
        let arg = usize::from(arg);
        match (op >> 1) % 10 {
            0..=2 => Action::Send(dir),
            3..=5 => Action::Deliver(dir, arg),
            6 => Action::Drop(dir, arg),
            7 => Action::Duplicate(dir, arg),
            8 => Action::Reorder(dir, arg, arg / 7),
            _ => {
                if arg % 4 == 0 {
                    Action::Restart(dir)
                } else {
                    Action::Tamper(dir, arg, u16::from(op).wrapping_mul(31))
                }
            }
        }
    }
}

struct InFlight {
    id: u64,
    bytes: Vec<u8>,
    plaintext: Vec<u8>,
}

/// Counters of what happened in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages encrypted.
    pub sent: u64,
    /// Messages decrypted (each exactly once).
    pub delivered: u64,
    /// Messages the network lost.
    pub dropped: u64,
    /// Duplicates delivered (all rejected).
    pub duplicates_rejected: u64,
    /// Of those, rejected with the typed [`DecryptError::Duplicate`].
    pub duplicates_typed: u64,
    /// Tampered messages delivered (all rejected).
    pub tampered_rejected: u64,
    /// Restarts from a pickle.
    pub restarts: u64,
    /// Messages that could not be decrypted because their key was evicted (only possible
    /// once a store has been full).
    pub evicted_lost: u64,
    /// The largest number of stored skipped keys seen on either side.
    pub max_skipped: usize,
}

/// Alice and Bob with a lossy, duplicating, reordering network between them, checking after
/// every step that every delivered message decrypts exactly once to what was sent, every
/// duplicate or tampered message is rejected without changing the receiver, and the skipped
/// key store stays within its limit.
pub struct Rig {
    sessions: [Session; 2],
    rng: ChaCha20Rng,
    net: [Vec<InFlight>; 2],
    history: [VecDeque<InFlight>; 2],
    delivered: [BTreeSet<u64>; 2],
    unanswered: [u32; 2],
    /// id -> copies of it in flight.
    copies: BTreeMap<u64, u32>,
    /// Ids whose every copy the network lost before one was delivered.
    lost: BTreeSet<u64>,
    /// Ids that failed because their key had been evicted.
    evicted: BTreeSet<u64>,
    next_id: u64,
    pickle_key: PickleKey,
    /// What happened so far.
    pub stats: Stats,
}

impl Rig {
    /// A fresh session pair from `seed` (SK, AD and all randomness come from it).
    pub fn new(seed: u64, config: SessionConfig) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut sk = [0u8; 32];
        let mut ad = [0u8; 64];
        rng.fill_bytes(&mut sk);
        rng.fill_bytes(&mut ad);
        let prekey = RatchetKeyPair::generate(&mut rng);
        let alice = Session::initiator(&mut rng, &sk, &ad, prekey.public_key(), config)
            .expect("a generated prekey is valid");
        let bob = Session::responder(&sk, &ad, prekey, config);
        let mut pk = [0u8; 32];
        rng.fill_bytes(&mut pk);
        Self {
            sessions: [alice, bob],
            rng,
            net: [Vec::new(), Vec::new()],
            history: [VecDeque::new(), VecDeque::new()],
            delivered: [BTreeSet::new(), BTreeSet::new()],
            unanswered: [0, 0],
            copies: BTreeMap::new(),
            lost: BTreeSet::new(),
            evicted: BTreeSet::new(),
            next_id: 0,
            pickle_key: PickleKey::from(pk),
            stats: Stats::default(),
        }
    }

    /// Alice's (index 0) or Bob's (index 1) session.
    pub fn session(&self, index: usize) -> &Session {
        &self.sessions[index % 2]
    }

    /// Messages in flight in direction `dir`.
    pub fn in_flight(&self, dir: Dir) -> usize {
        self.net[dir.index()].len()
    }

    /// The receiver's state as a deterministic pickle (fixed nonce), for equality checks.
    fn snapshot(&self, receiver: usize) -> Vec<u8> {
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        self.sessions[receiver].pickle(&mut rng, &self.pickle_key)
    }

    /// Runs one action and checks the invariants.
    pub fn step(&mut self, action: Action) {
        match action {
            Action::Send(dir) => self.send(dir),
            Action::Deliver(dir, i) => self.deliver(dir, i),
            Action::Drop(dir, i) => {
                let q = &mut self.net[dir.index()];
                if !q.is_empty() {
                    let i = i % q.len();
                    let m = q.remove(i);
                    self.stats.dropped += 1;
                    let receiver = 1 - dir.index();
                    if self.release_copy(m.id) && !self.delivered[receiver].contains(&m.id) {
                        self.lost.insert(m.id);
                    }
                }
            }
            Action::Duplicate(dir, i) => {
                let d = dir.index();
                let copy = if self.net[d].is_empty() {
                    let h = &self.history[d];
                    (!h.is_empty()).then(|| &h[i % h.len()])
                } else {
                    Some(&self.net[d][i % self.net[d].len()])
                }
                .map(|m| InFlight {
                    id: m.id,
                    bytes: m.bytes.clone(),
                    plaintext: m.plaintext.clone(),
                });
                if let Some(copy) = copy
                    && self.net[d].len() < MAX_IN_FLIGHT
                {
                    *self.copies.entry(copy.id).or_default() += 1;
                    self.net[d].push(copy);
                }
            }
            Action::Reorder(dir, i, j) => {
                let q = &mut self.net[dir.index()];
                if !q.is_empty() {
                    let (i, j) = (i % q.len(), j % q.len());
                    q.swap(i, j);
                }
            }
            Action::Tamper(dir, i, bit) => self.tamper(dir, i, bit),
            Action::Restart(dir) => {
                let r = 1 - dir.index();
                let before = self.snapshot(r);
                let pickle = self.sessions[r].pickle(&mut self.rng, &self.pickle_key);
                self.sessions[r] =
                    Session::from_pickle(&pickle, &self.pickle_key).expect("own pickle loads");
                assert_eq!(
                    before,
                    self.snapshot(r),
                    "pickle round trip changed the session"
                );
                self.stats.restarts += 1;
            }
        }
        for s in &self.sessions {
            assert!(s.skipped_key_count() <= MAX_STORED_SKIPPED_KEYS);
            self.stats.max_skipped = self.stats.max_skipped.max(s.skipped_key_count());
        }
    }

    fn send(&mut self, dir: Dir) {
        let s = dir.index();
        if !self.sessions[s].can_encrypt()
            || self.unanswered[s] >= MAX_UNANSWERED
            || self.net[s].len() >= MAX_IN_FLIGHT
        {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let len = (self.rng.next_u32() % 64) as usize;
        let mut plaintext = id.to_be_bytes().to_vec();
        plaintext.resize(8 + len, (id % 251) as u8);
        let msg = self.sessions[s]
            .encrypt(&mut self.rng, &plaintext)
            .expect("encrypt on a ready session");
        self.unanswered[s] += 1;
        self.stats.sent += 1;
        self.copies.insert(id, 1);
        self.net[s].push(InFlight {
            id,
            bytes: msg.encode(),
            plaintext,
        });
    }

    fn deliver(&mut self, dir: Dir, i: usize) {
        let d = dir.index();
        if self.net[d].is_empty() {
            return;
        }
        let i = i % self.net[d].len();
        let m = self.net[d].remove(i);
        self.release_copy(m.id);
        let r = 1 - d;
        let msg = Message::decode(&m.bytes).expect("our own encoding decodes");
        let duplicate = self.delivered[r].contains(&m.id);
        let before = duplicate.then(|| self.snapshot(r));
        let result = self.sessions[r].decrypt(&msg);
        if duplicate {
            let err = result.expect_err("a duplicate was accepted");
            assert_eq!(
                before,
                Some(self.snapshot(r)),
                "a rejected duplicate changed the session ({err:?})"
            );
            self.stats.duplicates_rejected += 1;
            if err == DecryptError::Duplicate {
                self.stats.duplicates_typed += 1;
            }
        } else if result == Err(DecryptError::Duplicate)
            && self.stats.max_skipped >= MAX_STORED_SKIPPED_KEYS
        {
            // The store was full at some point, so this message's key may have been evicted
            // (oldest first), which the limit allows.
            if self.evicted.insert(m.id) {
                self.stats.evicted_lost += 1;
            }
        } else {
            let plaintext = result.unwrap_or_else(|e| {
                panic!(
                    "message {} failed to decrypt: {e:?} (max skipped so far {})",
                    m.id, self.stats.max_skipped
                )
            });
            assert_eq!(&plaintext[..], &m.plaintext[..], "wrong plaintext");
            self.delivered[r].insert(m.id);
            self.unanswered[r] = 0;
            self.stats.delivered += 1;
            self.history[d].push_back(m);
            if self.history[d].len() > MAX_HISTORY {
                self.history[d].pop_front();
            }
        }
    }

    /// Counts one copy of `id` as gone from the network; true if it was the last.
    fn release_copy(&mut self, id: u64) -> bool {
        match self.copies.get_mut(&id) {
            Some(c) if *c > 1 => {
                *c -= 1;
                false
            }
            _ => {
                self.copies.remove(&id);
                true
            }
        }
    }

    /// Delivers everything still in flight, then checks that every message sent was either
    /// decrypted exactly once or lost by the network (every copy dropped before delivery).
    pub fn finish(&mut self) {
        for dir in [Dir::AliceToBob, Dir::BobToAlice] {
            while !self.net[dir.index()].is_empty() {
                self.step(Action::Deliver(dir, 0));
            }
        }
        let delivered: BTreeSet<u64> = self.delivered[0]
            .union(&self.delivered[1])
            .copied()
            .collect();
        assert!(self.delivered[0].is_disjoint(&self.delivered[1]));
        assert!(
            delivered.is_disjoint(&self.lost),
            "a lost message was delivered"
        );
        assert!(
            delivered.is_disjoint(&self.evicted),
            "an evicted message was delivered"
        );
        let accounted = delivered.len() + self.lost.union(&self.evicted).count();
        assert_eq!(
            accounted as u64, self.stats.sent,
            "a message was neither delivered nor lost"
        );
    }

    fn tamper(&mut self, dir: Dir, i: usize, bit: u16) {
        let d = dir.index();
        let source = if self.net[d].is_empty() {
            let h = &self.history[d];
            (!h.is_empty()).then(|| &h[i % h.len()])
        } else {
            Some(&self.net[d][i % self.net[d].len()])
        };
        let Some(source) = source else { return };
        let mut bytes = source.bytes.clone();
        let bit = usize::from(bit) % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let r = 1 - d;
        let Ok(msg) = Message::decode(&bytes) else {
            return;
        };
        if msg == Message::decode(&source.bytes).expect("own encoding") {
            // The flipped bit was in a part of the encoding that decoding ignores.
            return;
        }
        let before = self.snapshot(r);
        let result = self.sessions[r].decrypt(&msg);
        assert!(result.is_err(), "a tampered message was accepted");
        assert_eq!(
            before,
            self.snapshot(r),
            "a rejected message changed the session"
        );
        self.stats.tampered_rejected += 1;
    }
}

/// Fuzz body: decodes `data` as a ratchet message; if it decodes, checks that its encoding
/// round-trips and feeds it to a real responder session (plain and header-encrypted) and a
/// real initiator, each of which must reject it and stay unchanged.
pub fn decode_message(data: &[u8]) {
    let Ok(msg) = Message::decode(data) else {
        return;
    };
    let again = Message::decode(&msg.encode()).expect("re-decoding our own encoding failed");
    assert_eq!(msg, again, "decode(encode(m)) != m");
    for config in [
        SessionConfig::plain(),
        SessionConfig::with_header_encryption(),
    ] {
        let mut rig = Rig::new(1, config);
        for receiver in 0..2 {
            let before = rig.snapshot(receiver);
            let result = rig.sessions[receiver].decrypt(&msg);
            assert!(result.is_err(), "a forged message decrypted");
            assert_eq!(
                before,
                rig.snapshot(receiver),
                "a rejected message changed the session"
            );
        }
    }
}

/// Fuzz body: a seed (8 bytes), a mode byte and a list of two-byte actions drive a [`Rig`].
pub fn interaction(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let (seed, rest) = data.split_at(8);
    let seed = u64::from_le_bytes(seed.try_into().expect("8 bytes"));
    let (mode, actions) = rest.split_at(1);
    let config = if mode[0] & 1 == 1 {
        SessionConfig::with_header_encryption()
    } else {
        SessionConfig::plain()
    };
    let mut rig = Rig::new(seed, config);
    for pair in actions.chunks_exact(2).take(4096) {
        rig.step(Action::from_bytes(pair[0], pair[1]));
    }
}
