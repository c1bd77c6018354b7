//! A deterministic simulated network of MVDS nodes on virtual epochs, for tests, benchmarks and
//! the fuzz interaction target.
//!
//! Each [`Sim::step`] is one epoch: nodes may go offline or come back, payloads whose time has
//! come are delivered (unless their receiver is offline or the network is partitioned), every
//! node ticks, new payloads enter the network (lost, duplicated or delayed at random), and the
//! events each node emits are checked against a [`Ledger`] of what was sent. A node whose store
//! crashes (see [`FaultInjectingStore`]) loses everything in memory, including the payloads and
//! events it had not yet handed out, and is reopened from its store at once.
//!
//! All randomness comes from one seed, so every run replays.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::error::{HandleError, SendError};
use crate::store::{Fault, FaultInjectingStore, MemoryStore};
use crate::{Config, Event, GroupId, MessageId, Mode, Node};

/// The store of a simulated node: in memory, with crash injection.
pub type SimStore = FaultInjectingStore<MemoryStore<u64>>;
/// A simulated node; peers are numbered from 0.
pub type SimNode = Node<u64, SimStore>;

/// How the simulated network misbehaves. Probabilities are in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Each payload is lost with this probability, independently.
    pub loss: f64,
    /// Each payload that is not lost is delivered twice with this probability (each copy with
    /// its own delay).
    pub duplicate: f64,
    /// Each copy is delivered `1 + uniform[0, reorder_window)` epochs after it was sent.
    pub reorder_window: u64,
    /// In each epoch each node is offline with this probability: it ticks, but what it sends
    /// and what is delivered to it is lost.
    pub offline: f64,
    /// Whether nodes are told when a peer goes offline or comes back (and when a partition
    /// heals), through [`Node::handle_peer_offline`] and [`Node::handle_peer_online`].
    pub notify: bool,
}

impl Default for NetConfig {
    /// A perfect network: no loss, no duplication, one epoch of latency, nobody offline.
    fn default() -> Self {
        NetConfig {
            loss: 0.0,
            duplicate: 0.0,
            reorder_window: 1,
            offline: 0.0,
            notify: false,
        }
    }
}

/// What the network carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Payloads the nodes produced.
    pub payloads_sent: u64,
    /// Their bytes (what went on the wire, lost ones included).
    pub bytes_sent: u64,
    /// Payload copies lost (loss, offline nodes, partitions, crashes of the receiver).
    pub payloads_lost: u64,
    /// Extra copies made by duplication.
    pub payloads_duplicated: u64,
    /// Payload copies handed to a node.
    pub payloads_delivered: u64,
    /// Node crashes (injected or requested).
    pub crashes: u64,
}

/// One sent message as the ledger remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The sender.
    pub from: u64,
    /// Its group.
    pub group: GroupId,
    /// The body.
    pub body: Vec<u8>,
    /// The peers that must receive it (the group's peers at the sender when it was sent).
    pub recipients: BTreeSet<u64>,
}

/// What was sent and delivered, checked as events arrive.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Every message sent, by id.
    pub sent: BTreeMap<MessageId, Sent>,
    /// How many times each node received each message.
    pub delivered: BTreeMap<(u64, MessageId), u32>,
    /// Deliveries in the order each node saw them.
    pub order: BTreeMap<u64, Vec<MessageId>>,
    /// `(sender, peer, id)` acks reported to senders.
    pub acked: BTreeSet<(u64, u64, MessageId)>,
    /// With [`Sim::record_arrivals`], the messages each node received, in the order their
    /// first copies arrived (decoded by the sim from the payloads it delivered).
    pub arrivals: BTreeMap<u64, Vec<MessageId>>,
    arrived: BTreeSet<(u64, MessageId)>,
    /// Deliveries still expected (kept up to date as messages are sent and delivered).
    pending: usize,
    /// Anything that broke a guarantee: a second delivery, a delivery of something never
    /// sent, a wrong body, a payload the sim produced that a node refused.
    pub violations: Vec<String>,
}

impl Ledger {
    /// `(recipient, id)` pairs still awaiting delivery.
    pub fn missing(&self) -> usize {
        self.pending
    }

    /// Deliveries expected in total.
    pub fn expected(&self) -> usize {
        self.sent.values().map(|s| s.recipients.len()).sum()
    }

    /// Deliveries so far (first copies only).
    pub fn delivered_once(&self) -> usize {
        self.delivered.len()
    }

    /// Deliveries beyond the first of each `(node, id)`.
    pub fn duplicates(&self) -> u64 {
        self.delivered
            .values()
            .map(|n| u64::from(n.saturating_sub(1)))
            .sum()
    }

    /// Whether every sent message reached every recipient.
    pub fn all_delivered(&self) -> bool {
        self.missing() == 0
    }
}

#[derive(Debug)]
struct Packet {
    from: u64,
    to: u64,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct Slot {
    node: Option<SimNode>,
    offline: bool,
}

/// The simulated network.
#[derive(Debug)]
pub struct Sim {
    epoch: u64,
    config: Config,
    net: NetConfig,
    rng: ChaCha20Rng,
    slots: Vec<Slot>,
    in_flight: BTreeMap<(u64, u64), Packet>,
    next_packet: u64,
    partitioned: bool,
    record_arrivals: bool,
    /// What was sent, delivered and acked.
    pub ledger: Ledger,
    /// What the network carried.
    pub stats: NetStats,
}

fn seed_from(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}

fn chance(rng: &mut ChaCha20Rng, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    if p >= 1.0 {
        return true;
    }
    // 53 random bits as a uniform float in [0, 1).
    ((rng.next_u64() >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < p
}

impl Sim {
    /// `n` fresh nodes with `config`, on a network that misbehaves as `net` says; every random
    /// choice derives from `seed`.
    pub fn new(seed: u64, n: u64, config: Config, net: NetConfig) -> Sim {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut slots = Vec::new();
        for _ in 0..n {
            let store = FaultInjectingStore::new(MemoryStore::new());
            // Opening an empty in-memory store cannot fail.
            let node = Node::open(config.clone(), seed_from(&mut rng), store).ok();
            slots.push(Slot {
                node,
                offline: false,
            });
        }
        Sim {
            epoch: 0,
            config,
            net,
            rng,
            slots,
            in_flight: BTreeMap::new(),
            next_packet: 0,
            partitioned: false,
            record_arrivals: false,
            ledger: Ledger::default(),
            stats: NetStats::default(),
        }
    }

    /// The current epoch of the network.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of nodes.
    pub fn len(&self) -> u64 {
        self.slots.len() as u64
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Node `i`.
    pub fn node(&self, i: u64) -> Option<&SimNode> {
        self.slot(i).and_then(|s| s.node.as_ref())
    }

    /// Records the order in which messages first arrive at each node ([`Ledger::arrivals`]).
    pub fn record_arrivals(&mut self, on: bool) {
        self.record_arrivals = on;
    }

    fn note_arrivals(&mut self, to: u64, bytes: &[u8]) {
        use proto::Message as _;
        let Ok(p) = proto::mvds::Payload::decode(bytes) else {
            return;
        };
        for m in p.messages {
            if let Some(g) = GroupId::from_slice(&m.group_id) {
                let id = MessageId::compute(&g, m.timestamp, &m.body);
                if self.ledger.arrived.insert((to, id)) {
                    self.ledger.arrivals.entry(to).or_default().push(id);
                }
            }
        }
    }

    /// Changes how the network misbehaves from now on.
    pub fn set_net(&mut self, net: NetConfig) {
        self.net = net;
    }

    /// The network settings.
    pub fn net(&self) -> &NetConfig {
        &self.net
    }

    fn slot(&self, i: u64) -> Option<&Slot> {
        usize::try_from(i).ok().and_then(|i| self.slots.get(i))
    }

    fn slot_mut(&mut self, i: u64) -> Option<&mut Slot> {
        usize::try_from(i).ok().and_then(|i| self.slots.get_mut(i))
    }

    /// Makes every node in `members` share `group` with every other. A node that crashes while
    /// committing a membership is reopened and asked again (as an application would).
    pub fn join(&mut self, group: GroupId, members: &[u64]) {
        for &a in members {
            for &b in members {
                if a == b {
                    continue;
                }
                for attempt in 0..3 {
                    let r = self
                        .slot_mut(a)
                        .and_then(|s| s.node.as_mut())
                        .map(|n| n.add_peer(group, b));
                    self.check_crash(a);
                    match r {
                        Some(Err(e)) if attempt == 2 => self
                            .ledger
                            .violations
                            .push(format!("add_peer at node {a} failed: {e}")),
                        Some(Err(_)) => continue,
                        _ => break,
                    }
                }
            }
        }
    }

    /// Node `from` sends `body` to `group`, timestamped with the current epoch.
    pub fn send(
        &mut self,
        from: u64,
        group: GroupId,
        body: Vec<u8>,
        mode: Mode,
    ) -> Result<MessageId, SendError> {
        let ts = i64::try_from(self.epoch).unwrap_or(i64::MAX);
        let Some(node) = self.slot_mut(from).and_then(|s| s.node.as_mut()) else {
            return Err(SendError::NoPeers);
        };
        let recipients: BTreeSet<u64> = node.peers_of(&group).copied().collect();
        let r = node.send(group, body.clone(), mode, ts);
        if let Ok(id) = &r {
            self.ledger.pending += recipients.len();
            self.ledger.sent.insert(
                *id,
                Sent {
                    from,
                    group,
                    body,
                    recipients,
                },
            );
        }
        self.check_crash(from);
        r
    }

    /// Cuts (`true`) or heals (`false`) every link. When healing with
    /// [`NetConfig::notify`], every node is told that every other is online.
    pub fn set_partition(&mut self, on: bool) {
        let healed = self.partitioned && !on;
        self.partitioned = on;
        if healed && self.net.notify {
            for i in 0..self.len() {
                for j in 0..self.len() {
                    if i != j
                        && let Some(n) = self.slot_mut(i).and_then(|s| s.node.as_mut())
                    {
                        n.handle_peer_online(&j);
                    }
                }
            }
        }
    }

    /// Whether the network is partitioned.
    pub fn is_partitioned(&self) -> bool {
        self.partitioned
    }

    /// Arms node `i`'s store to crash at its `after`-th commit from now.
    pub fn arm_crash(&mut self, i: u64, after: u64, fault: Fault) {
        if let Some(n) = self.slot_mut(i).and_then(|s| s.node.as_mut()) {
            n.store_mut().arm(after, fault);
        }
    }

    /// Disarms every node's store.
    pub fn disarm_all(&mut self) {
        for s in &mut self.slots {
            if let Some(n) = s.node.as_mut() {
                n.store_mut().disarm();
            }
        }
    }

    /// Commits node `i`'s store has attempted so far.
    pub fn commits(&self, i: u64) -> u64 {
        self.node(i).map_or(0, |n| n.store().commits())
    }

    /// Kills node `i` now (everything in memory is lost) and reopens it from its store.
    pub fn crash(&mut self, i: u64) {
        let seed = seed_from(&mut self.rng);
        let config = self.config.clone();
        let Some(slot) = self.slot_mut(i) else {
            return;
        };
        let Some(node) = slot.node.take() else {
            return;
        };
        let mut store = node.into_store();
        store.recover();
        let reopened = Node::open(config, seed, store);
        let failed = reopened.is_err();
        slot.node = reopened.ok();
        self.stats.crashes += 1;
        if failed {
            self.ledger
                .violations
                .push(format!("node {i} could not reopen its store"));
        }
    }

    fn check_crash(&mut self, i: u64) {
        let crashed = self
            .node(i)
            .is_some_and(|n| n.store().crash_pending() || n.is_stopped());
        if crashed {
            self.crash(i);
        }
    }

    /// Payloads in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn nth_key(&self, n: usize) -> Option<(u64, u64)> {
        if self.in_flight.is_empty() {
            return None;
        }
        self.in_flight.keys().nth(n % self.in_flight.len()).copied()
    }

    /// Loses the `n`-th payload in flight (modulo their number).
    pub fn drop_packet(&mut self, n: usize) {
        if let Some(k) = self.nth_key(n) {
            self.in_flight.remove(&k);
            self.stats.payloads_lost += 1;
        }
    }

    /// Copies the `n`-th payload in flight; the copy arrives `delay` epochs after the original.
    pub fn duplicate_packet(&mut self, n: usize, delay: u64) {
        if let Some(k) = self.nth_key(n)
            && let Some(p) = self.in_flight.get(&k)
        {
            let copy = Packet {
                from: p.from,
                to: p.to,
                bytes: p.bytes.clone(),
            };
            self.schedule(k.0.saturating_add(delay), copy);
            self.stats.payloads_duplicated += 1;
        }
    }

    /// Delays the `n`-th payload in flight by `delay` epochs.
    pub fn delay_packet(&mut self, n: usize, delay: u64) {
        if let Some(k) = self.nth_key(n)
            && let Some(p) = self.in_flight.remove(&k)
        {
            self.schedule(k.0.saturating_add(delay), p);
        }
    }

    fn schedule(&mut self, at: u64, p: Packet) {
        self.in_flight.insert((at, self.next_packet), p);
        self.next_packet += 1;
    }

    /// Sets node `i` offline or online by hand (with [`NetConfig::notify`], peers are told).
    pub fn set_offline(&mut self, i: u64, offline: bool) {
        let was = self.slot(i).is_some_and(|s| s.offline);
        if let Some(s) = self.slot_mut(i) {
            s.offline = offline;
        }
        if was != offline && self.net.notify {
            self.notify(i, offline);
        }
    }

    fn notify(&mut self, i: u64, offline: bool) {
        for j in 0..self.len() {
            if j == i {
                continue;
            }
            if let Some(n) = self.slot_mut(j).and_then(|s| s.node.as_mut()) {
                if offline {
                    n.handle_peer_offline(&i);
                } else {
                    n.handle_peer_online(&i);
                }
            }
        }
    }

    /// One epoch.
    pub fn step(&mut self) {
        self.epoch += 1;
        let now = self.epoch;

        // Who is offline this epoch.
        if self.net.offline > 0.0 {
            for i in 0..self.len() {
                let off = chance(&mut self.rng, self.net.offline);
                self.set_offline(i, off);
            }
        }

        // Deliveries due.
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let p = entry.remove();
            let receiver_down = self
                .slot(p.to)
                .is_none_or(|s| s.offline || s.node.is_none());
            if self.partitioned || receiver_down {
                self.stats.payloads_lost += 1;
                continue;
            }
            self.stats.payloads_delivered += 1;
            if self.record_arrivals {
                self.note_arrivals(p.to, &p.bytes);
            }
            let r = self
                .slot_mut(p.to)
                .and_then(|s| s.node.as_mut())
                .map(|n| n.handle_payload(p.from, &p.bytes));
            if let Some(Err(HandleError::NotMvds(e))) = r {
                self.ledger.violations.push(format!(
                    "node {} refused a payload from {}: {e}",
                    p.to, p.from
                ));
            }
            self.check_crash(p.to);
        }

        // Ticks and new payloads.
        for i in 0..self.len() {
            let Some(node) = self.slot_mut(i).and_then(|s| s.node.as_mut()) else {
                continue;
            };
            let _ = node.handle_tick();
            let crashed = node.store().crash_pending() || node.is_stopped();
            if crashed {
                // The process died before anything it queued left.
                self.crash(i);
                continue;
            }
            let mut out = Vec::new();
            while let Some(t) = node.poll_transmit() {
                out.push(t);
            }
            let sender_offline = self.slot(i).is_some_and(|s| s.offline);
            for t in out {
                self.stats.payloads_sent += 1;
                self.stats.bytes_sent += t.bytes.len() as u64;
                if sender_offline || self.partitioned || chance(&mut self.rng, self.net.loss) {
                    self.stats.payloads_lost += 1;
                    continue;
                }
                let copies = if chance(&mut self.rng, self.net.duplicate) {
                    self.stats.payloads_duplicated += 1;
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let window = self.net.reorder_window.max(1);
                    let delay = 1 + self.rng.next_u64() % window;
                    self.schedule(
                        now + delay,
                        Packet {
                            from: i,
                            to: t.to,
                            bytes: t.bytes.clone(),
                        },
                    );
                }
            }
        }

        // Events to the application.
        for i in 0..self.len() {
            self.drain_events(i);
        }
    }

    fn drain_events(&mut self, i: u64) {
        loop {
            let Some(node) = self.slot_mut(i).and_then(|s| s.node.as_mut()) else {
                return;
            };
            let ev = node.poll_event();
            let crashed = node.store().crash_pending() || node.is_stopped();
            match ev {
                Some(Event::Delivered(d)) => {
                    let count = self.ledger.delivered.entry((i, d.id)).or_insert(0);
                    *count += 1;
                    let n = *count;
                    if n > 1 {
                        self.ledger
                            .violations
                            .push(format!("node {i} got {:?} {} times", d.id, n));
                    }
                    self.ledger.order.entry(i).or_default().push(d.id);
                    if n == 1
                        && self
                            .ledger
                            .sent
                            .get(&d.id)
                            .is_some_and(|s| s.recipients.contains(&i))
                    {
                        self.ledger.pending = self.ledger.pending.saturating_sub(1);
                    }
                    match self.ledger.sent.get(&d.id) {
                        None => self
                            .ledger
                            .violations
                            .push(format!("node {i} got {:?}, never sent", d.id)),
                        Some(s) if s.body != d.body || s.group != d.group => self
                            .ledger
                            .violations
                            .push(format!("node {i} got {:?} with the wrong content", d.id)),
                        Some(s) if s.from != d.from => self.ledger.violations.push(format!(
                            "node {i} got {:?} from {}, sent by {}",
                            d.id, d.from, s.from
                        )),
                        Some(_) => {}
                    }
                }
                Some(Event::Acked { peer, id }) => {
                    if !self.ledger.acked.insert((i, peer, id)) {
                        self.ledger
                            .violations
                            .push(format!("node {i} told twice that {peer} acked {id:?}"));
                    }
                }
                Some(Event::Expired { .. }) => {}
                Some(Event::StoreFailed(_)) => {
                    self.crash(i);
                    continue;
                }
                None => {
                    if crashed {
                        self.crash(i);
                    }
                    return;
                }
            }
            if crashed {
                // The event above was handed over; the process died right after.
                self.crash(i);
            }
        }
    }

    /// Steps until `done(self)` holds or `max_epochs` have passed; returns the epochs taken,
    /// or `None` if `done` never held.
    pub fn run_until(
        &mut self,
        max_epochs: u64,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<u64> {
        let start = self.epoch;
        while self.epoch - start < max_epochs {
            if done(self) {
                return Some(self.epoch - start);
            }
            self.step();
        }
        done(self).then_some(self.epoch - start)
    }

    /// Steps until every message reached every recipient and every record is acked (all nodes
    /// idle); returns the epochs taken.
    pub fn run_until_quiet(&mut self, max_epochs: u64) -> Option<u64> {
        self.run_until(max_epochs, Sim::is_quiet)
    }

    /// Whether everything sent was delivered everywhere and no node has records outstanding.
    pub fn is_quiet(&self) -> bool {
        self.ledger.all_delivered()
            && self
                .slots
                .iter()
                .all(|s| s.node.as_ref().is_some_and(|n| n.outstanding_total() == 0))
    }
}
