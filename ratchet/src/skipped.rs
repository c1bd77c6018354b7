//! The store of skipped message keys.

use crate::keys::{Key32, RatchetPublicKey};
use std::collections::{BTreeMap, VecDeque};

/// At most this many message keys are derived and stored for one message: a header whose
/// message number lies further ahead of its chain is rejected before any key is derived.
///
/// It bounds the work an attacker (or a badly lagging peer) can cause with one message, while
/// leaving room for a long burst of lost messages. 1000 is the value of status-go
/// (`MaxSkip`) and of Signal's reference profile discussion.
pub const MAX_SKIP: u32 = 1000;

/// At most this many skipped message keys are kept per session; when a new one would exceed
/// the bound, the oldest is evicted first (a message whose key was evicted can no longer be
/// decrypted).
///
/// It bounds the memory of a session (about 100 bytes per key) and the lifetime of keys for
/// messages that will never arrive. 2000 is status-go's `MaxMessageKeysPerSession` and
/// libsignal's `MAX_MESSAGE_KEYS`.
pub const MAX_STORED_SKIPPED_KEYS: usize = 2000;

/// At most this many receiving chains that the session has moved on from are remembered (by
/// ratchet key, and by header key with header encryption), so that a replayed message of such
/// a chain is reported as a duplicate at once instead of costing a DH ratchet attempt. Older
/// chains are forgotten; a replay from them fails authentication instead.
pub const MAX_RETIRED_CHAINS: usize = 32;

/// One stored key: the chain's ratchet key, the message number and the message key.
#[derive(Clone, Debug)]
pub(crate) struct SkippedKey {
    pub(crate) chain: RatchetPublicKey,
    pub(crate) n: u32,
    pub(crate) key: Key32,
}

/// Skipped message keys, indexed by (ratchet key, message number) and evicted oldest first.
#[derive(Clone, Debug, Default)]
pub(crate) struct SkippedKeys {
    /// (chain, n) -> (insertion sequence, message key).
    keys: BTreeMap<(RatchetPublicKey, u32), (u64, Key32)>,
    /// insertion sequence -> (chain, n), for oldest-first eviction.
    order: BTreeMap<u64, (RatchetPublicKey, u32)>,
    /// Header keys of the chains that have stored keys (header encryption only).
    header_keys: BTreeMap<RatchetPublicKey, Key32>,
    next_seq: u64,
}

impl SkippedKeys {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn get(&self, chain: &RatchetPublicKey, n: u32) -> Option<&Key32> {
        self.keys.get(&(*chain, n)).map(|(_, k)| k)
    }

    pub(crate) fn remove(&mut self, chain: &RatchetPublicKey, n: u32) {
        if let Some((seq, _)) = self.keys.remove(&(*chain, n)) {
            self.order.remove(&seq);
            self.forget_chain_if_empty(chain);
        }
    }

    /// The chains with stored keys and their header keys (header encryption only).
    pub(crate) fn header_keys(&self) -> impl Iterator<Item = (&RatchetPublicKey, &Key32)> {
        self.header_keys.iter()
    }

    /// Stored keys, oldest first, with the header key of their chain.
    pub(crate) fn iter_oldest_first(&self) -> impl Iterator<Item = SkippedEntry<'_>> {
        self.order.values().filter_map(|id| {
            self.keys.get(id).map(|(_, key)| SkippedEntry {
                chain: &id.0,
                n: id.1,
                key,
                header_key: self.header_keys.get(&id.0),
            })
        })
    }

    /// Stores `key` as the newest entry, evicting the oldest beyond [`MAX_STORED_SKIPPED_KEYS`].
    pub(crate) fn insert(&mut self, entry: SkippedKey, header_key: Option<&Key32>) {
        let id = (entry.chain, entry.n);
        if let Some(hk) = header_key {
            self.header_keys
                .entry(entry.chain)
                .or_insert_with(|| hk.clone());
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        if let Some((old_seq, _)) = self.keys.insert(id, (seq, entry.key.clone())) {
            self.order.remove(&old_seq);
        }
        self.order.insert(seq, id);
        while self.keys.len() > MAX_STORED_SKIPPED_KEYS {
            let Some((_, (chain, n))) = self.order.pop_first() else {
                break;
            };
            self.keys.remove(&(chain, n));
            self.forget_chain_if_empty(&chain);
        }
    }

    fn forget_chain_if_empty(&mut self, chain: &RatchetPublicKey) {
        let any = self
            .keys
            .range((*chain, 0)..=(*chain, u32::MAX))
            .next()
            .is_some();
        if !any {
            self.header_keys.remove(chain);
        }
    }
}

/// A view of one stored key.
pub(crate) struct SkippedEntry<'a> {
    pub(crate) chain: &'a RatchetPublicKey,
    pub(crate) n: u32,
    pub(crate) key: &'a Key32,
    pub(crate) header_key: Option<&'a Key32>,
}

/// A receiving chain the session has moved on from.
#[derive(Clone, Debug)]
pub(crate) struct RetiredChain {
    pub(crate) chain: RatchetPublicKey,
    pub(crate) header_key: Option<Key32>,
}

/// The most recent [`MAX_RETIRED_CHAINS`] retired chains, oldest first.
#[derive(Clone, Debug, Default)]
pub(crate) struct RetiredChains(pub(crate) VecDeque<RetiredChain>);

impl RetiredChains {
    pub(crate) fn push(&mut self, chain: RetiredChain) {
        self.0.push_back(chain);
        while self.0.len() > MAX_RETIRED_CHAINS {
            self.0.pop_front();
        }
    }

    pub(crate) fn contains_chain(&self, chain: &RatchetPublicKey) -> bool {
        self.0.iter().any(|c| c.chain == *chain)
    }
}
