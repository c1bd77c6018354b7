//! `status-node demo`: the design article's life of a message, run on a simulated network.
//!
//! Everything runs in this process on [`transports::memory`]: a bootstrap node, three full
//! nodes (relay, store, filter and lightpush service, peer exchange) and two phones, Alice and
//! Bob, each a light-node [`Messenger`] beside a peer-exchange client. The demo is the driver:
//! it feeds the machines frames and timeouts on a virtual clock, dials the peers the phones
//! learn, takes Bob's phone offline and back, and prints what happened. Every line it prints is
//! read from the machines' events and counters or decoded from the frames they exchanged
//! ([`machine::Wire`]); the only inputs are the seed and the commands an app would give (add a
//! contact, send a text).
//!
//! The same seed gives the same output, byte for byte: every random draw comes from the seed
//! and nothing reads the real clock.

mod machine;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::time::Duration;

use payloads::account::{Account, WordCount};
use payloads::messenger::{ChatId, Draft, Messenger, MessengerConfig, MessengerEvent, OpenError};
use payloads::storage::MemoryStorage;
use proto::Message as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use transports::memory::{LinkConfig, NodeId, Recorded, Sim, SimConfig, SimError};
use waku_core::net::{Machine, PeerId};
use waku_core::node::{NodeError, NodeEvent, WakuNode, WakuNodeConfig};
use waku_core::payload::{RecipientKey, SymmetricKey, open_asymmetric, open_symmetric};
use waku_core::peer_exchange::PeerExchangeClientEvent;
use waku_core::roles::Capabilities;
use waku_core::topic::status::{PARTITIONS, StatusTopic, WakuV1Topic};
use x3dh::PublicIdentity;

use machine::{Actor, Ev, SeenMessage, Wire, WireWhat};

/// Notes a node keeps before the demo reads them (a node of the demo receives a few thousand
/// frames in all; the bound stops a runaway run from growing without limit).
pub(crate) const MAX_PENDING_NOTES: usize = 65_536;

/// The cluster and shard every node of the demo network uses (the Status cluster's default).
const CLUSTER: u16 = 16;
const SHARD: u16 = 32;

/// Number of full nodes.
const FULL_NODES: usize = 3;

/// One-way latency of every link, and the jitter on top of it.
const LATENCY: Duration = Duration::from_millis(20);
const JITTER: Duration = Duration::from_millis(5);

/// How often the demo checks whether a step is done.
const SLICE: Duration = Duration::from_millis(50);

/// The most virtual time any step may take before the demo gives up.
const STEP_LIMIT: Duration = Duration::from_secs(300);

/// How long Bob stays offline.
const OFFLINE: Duration = Duration::from_secs(30);

/// What Alice writes while Bob is offline.
const OFFLINE_TEXTS: [&str; 3] = [
    "Are you there?",
    "I'll leave this with the full nodes.",
    "Read it when you're back.",
];

/// The peer records the bootstrap node hands out start with this tag.
const RECORD_TAG: &str = "status-rs-sim/1";

/// Options of `status-node demo`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DemoOptions {
    /// Seed of every random draw.
    pub(crate) seed: u64,
    /// Print the step headings and results only, not every frame.
    pub(crate) quiet: bool,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DemoError {
    /// The simulated network refused a call or detected a machine that does not settle.
    #[error("simulated network: {0}")]
    Sim(#[from] SimError),
    /// A Messenger could not be opened.
    #[error("cannot open a Messenger: {0}")]
    Open(#[from] OpenError),
    /// A Waku node could not be built or refused a command.
    #[error("Waku node: {0}")]
    Node(#[from] NodeError),
    /// An account could not be created.
    #[error("cannot create an account: {0}")]
    Account(String),
    /// A step did not finish in time.
    #[error("step \"{0}\" did not finish within {STEP_LIMIT:?} of virtual time")]
    Stuck(&'static str),
    /// A check of the journey failed (the output above it shows where).
    #[error("check failed: {0}")]
    Check(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Io(#[from] io::Error),
}

/// Runs the demo and writes its story to `out`.
pub(crate) fn run(options: DemoOptions, out: &mut impl Write) -> Result<(), DemoError> {
    let mut demo = Demo::new(options, out)?;
    demo.journey()
}

/// Who a node is, for printing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Bootstrap,
    Full(usize),
    Alice,
    Bob,
}

struct Demo<'o, W: Write> {
    out: &'o mut W,
    quiet: bool,
    seed: u64,
    rng: ChaCha20Rng,
    sim: Sim<Actor>,
    config: MessengerConfig,
    roles: BTreeMap<NodeId, Role>,
    bootstrap: NodeId,
    full: Vec<NodeId>,
    alice: NodeId,
    bob: NodeId,
    alice_account: Account,
    bob_account: Account,
    alice_key: PublicIdentity,
    bob_key: PublicIdentity,
    /// (node, handle) → the node behind the handle, for every connection ever made.
    handles: BTreeMap<(NodeId, PeerId), NodeId>,
    /// Every event taken from the network, per node.
    log: BTreeMap<NodeId, Vec<Recorded<Ev>>>,
    /// Events taken since the current step started, in (time, node) order.
    step_events: Vec<(NodeId, Recorded<Ev>)>,
    /// Content topic → what it is, for the topics the story involves.
    labels: BTreeMap<String, String>,
}

fn seed32(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}

fn short(key: &PublicIdentity) -> String {
    let s = key.to_string();
    format!("{}…", s.get(..14).unwrap_or(&s))
}

fn secs(d: Duration) -> String {
    format!("{:>8.3}s", d.as_secs_f64())
}

/// A peer record as the demo's bootstrap node serves it (there is no ENR codec yet: records are
/// opaque bytes to peer exchange, and these name a node of the simulated network).
fn record_for(node: NodeId, caps: Capabilities) -> Vec<u8> {
    format!("{RECORD_TAG} node={} caps={caps}", node.0).into_bytes()
}

fn parse_record(bytes: &[u8]) -> Option<NodeId> {
    let s = std::str::from_utf8(bytes).ok()?;
    let rest = s.strip_prefix(RECORD_TAG)?.trim_start();
    let n = rest.strip_prefix("node=")?.split(' ').next()?;
    n.parse().ok().map(NodeId)
}

impl<'o, W: Write> Demo<'o, W> {
    fn new(options: DemoOptions, out: &'o mut W) -> Result<Self, DemoError> {
        let mut rng = ChaCha20Rng::seed_from_u64(options.seed);
        let link = LinkConfig::new(LATENCY).with_jitter(JITTER);
        let mut sim: Sim<Actor> = Sim::new(SimConfig {
            seed: rng.next_u64(),
            default_link: link,
            ..SimConfig::default()
        })?;
        let config = MessengerConfig::default();
        let mut roles = BTreeMap::new();

        let now = sim.now();
        let bootstrap_node = WakuNode::new(
            WakuNodeConfig::new(Capabilities::BOOTSTRAP, CLUSTER, vec![SHARD]),
            None,
            seed32(&mut rng),
            now,
        )?;
        let bootstrap = sim.add_node(|_| Actor::server(bootstrap_node))?;
        roles.insert(bootstrap, Role::Bootstrap);

        let mut full = Vec::new();
        for i in 0..FULL_NODES {
            let mut node = WakuNode::new(
                WakuNodeConfig::new(Capabilities::FULL, CLUSTER, vec![SHARD]),
                None,
                seed32(&mut rng),
                now,
            )?;
            // Deliver every message of the shard to the node's operator (the observer's view).
            node.subscribe(now, config.pubsub_topic.clone(), Vec::new())?;
            let id = sim.add_node(|_| Actor::server(node))?;
            roles.insert(id, Role::Full(i + 1));
            full.push(id);
        }

        let account = |rng: &mut ChaCha20Rng| {
            Account::generate(rng, WordCount::Twelve, "")
                .map_err(|e| DemoError::Account(e.to_string()))
        };
        let alice_account = account(&mut rng)?;
        let bob_account = account(&mut rng)?;
        let alice_m = Messenger::new(
            config.clone(),
            &alice_account,
            MemoryStorage::new(),
            mvds::MemoryStore::new(),
            seed32(&mut rng),
            now,
        )?;
        let bob_m = Messenger::new(
            config.clone(),
            &bob_account,
            MemoryStorage::new(),
            mvds::MemoryStore::new(),
            seed32(&mut rng),
            now,
        )?;
        let alice_key = *alice_m.public_key();
        let bob_key = *bob_m.public_key();
        let alice = sim.add_node(|_| Actor::phone(alice_m))?;
        let bob = sim.add_node(|_| Actor::phone(bob_m))?;
        roles.insert(alice, Role::Alice);
        roles.insert(bob, Role::Bob);

        let mut labels = BTreeMap::new();
        for (who, key) in [("Alice", &alice_key), ("Bob", &bob_key)] {
            let cc = StatusTopic::contact_code(key.ed25519_bytes());
            labels.insert(
                cc.content_topic().as_str().to_owned(),
                format!("{who}'s contact-code topic"),
            );
            let part = StatusTopic::partitioned(key.ed25519_bytes());
            labels.insert(
                part.content_topic().as_str().to_owned(),
                format!("{who}'s partitioned topic \"{}\"", part.name()),
            );
        }
        if let Some(t) = alice_m_negotiated(&sim, alice, &bob_key) {
            labels.insert(t, "the negotiated topic of Alice and Bob".to_owned());
        }

        Ok(Demo {
            out,
            quiet: options.quiet,
            seed: options.seed,
            rng,
            sim,
            config,
            roles,
            bootstrap,
            full,
            alice,
            bob,
            alice_account,
            bob_account,
            alice_key,
            bob_key,
            handles: BTreeMap::new(),
            log: BTreeMap::new(),
            step_events: Vec::new(),
            labels,
        })
    }

    // ----- output -----

    fn line(&mut self, s: impl AsRef<str>) -> Result<(), DemoError> {
        writeln!(self.out, "{}", s.as_ref())?;
        Ok(())
    }

    /// A line printed unless `--quiet`.
    fn detail(&mut self, s: impl AsRef<str>) -> Result<(), DemoError> {
        if !self.quiet {
            self.line(s)?;
        }
        Ok(())
    }

    fn heading(&mut self, n: u32, title: &str, layer: &str) -> Result<(), DemoError> {
        self.line("")?;
        self.line(format!("== {n}. {title}  [{layer}]"))
    }

    fn name(&self, id: NodeId) -> String {
        match self.roles.get(&id) {
            Some(Role::Bootstrap) => format!("bootstrap({id})"),
            Some(Role::Full(i)) => format!("full-{i}({id})"),
            Some(Role::Alice) => "alice".to_owned(),
            Some(Role::Bob) => "bob".to_owned(),
            None => id.to_string(),
        }
    }

    fn peer_name(&self, node: NodeId, peer: PeerId) -> String {
        self.handles
            .get(&(node, peer))
            .map_or_else(|| format!("peer {}", peer.0), |n| self.name(*n))
    }

    fn label(&self, topic: &str) -> String {
        match self.labels.get(topic) {
            Some(l) => format!("{topic} ({l})"),
            None => topic.to_owned(),
        }
    }

    // ----- driving -----

    fn phone(&self, id: NodeId) -> Result<&Messenger, DemoError> {
        self.sim
            .node(id)
            .and_then(Actor::as_phone)
            .map(|p| &p.messenger)
            .ok_or(DemoError::Sim(SimError::NodeDown(id)))
    }

    /// Records the handles of every live connection.
    fn learn_handles(&mut self) {
        let links: Vec<(NodeId, NodeId)> = self.sim.links().collect();
        for (a, b) in links {
            if let Some(h) = self.sim.peer_id(a, b) {
                self.handles.insert((a, h), b);
            }
            if let Some(h) = self.sim.peer_id(b, a) {
                self.handles.insert((b, h), a);
            }
        }
    }

    /// Takes every node's new events into the step buffer and the log.
    fn collect(&mut self) {
        let ids: Vec<NodeId> = self.sim.node_ids().collect();
        let mut batch = Vec::new();
        for id in ids {
            for e in self.sim.take_events(id) {
                self.log.entry(id).or_default().push(e.clone());
                batch.push((id, e));
            }
        }
        batch.sort_by_key(|(id, e)| (e.at, *id));
        self.step_events.extend(batch);
    }

    /// Runs the network until `done` holds (checked every [`SLICE`]).
    fn run_until(
        &mut self,
        step: &'static str,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<(), DemoError> {
        let end = self.sim.elapsed() + STEP_LIMIT;
        loop {
            self.collect();
            if done(self) {
                return Ok(());
            }
            if self.sim.elapsed() >= end {
                return Err(DemoError::Stuck(step));
            }
            self.sim.run_for(SLICE)?;
        }
    }

    fn run_for(&mut self, d: Duration) -> Result<(), DemoError> {
        self.sim.run_for(d)?;
        self.collect();
        Ok(())
    }

    fn events_of(&self, id: NodeId) -> impl Iterator<Item = &Recorded<Ev>> {
        self.log.get(&id).into_iter().flatten()
    }

    fn messenger_events(&self, id: NodeId) -> impl Iterator<Item = &MessengerEvent> {
        self.events_of(id).filter_map(|r| match &r.event {
            Ev::Messenger(e) => Some(e),
            _ => None,
        })
    }

    /// Texts `id` received from `from`, in arrival order.
    fn received_texts(&self, id: NodeId, from: &PublicIdentity) -> Vec<String> {
        self.messenger_events(id)
            .filter_map(|e| match e {
                MessengerEvent::MessageReceived { chat, entry }
                    if *chat == ChatId::OneToOne(*from) =>
                {
                    Some(entry.message.text.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn delivered(&self, id: NodeId) -> BTreeSet<payloads::MessageId> {
        self.messenger_events(id)
            .filter_map(|e| match e {
                MessengerEvent::Delivered { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Prints the frames and events of the current step and clears the buffer.
    fn print_step(&mut self) -> Result<(), DemoError> {
        let events = std::mem::take(&mut self.step_events);
        for (node, rec) in &events {
            // `--quiet` keeps what the applications saw and leaves out the frames.
            if self.quiet && matches!(rec.event, Ev::Wire(_)) {
                continue;
            }
            if let Some(s) = self.describe(*node, &rec.event) {
                self.line(format!("  [{}] {s}", secs(rec.at)))?;
            }
        }
        Ok(())
    }

    fn describe(&self, node: NodeId, ev: &Ev) -> Option<String> {
        let me = self.name(node);
        match ev {
            Ev::Wire(w) => Some(self.describe_wire(node, w)),
            Ev::Px(PeerExchangeClientEvent::Records { peer, records, .. }) => Some(format!(
                "{me}: peer exchange from {} gave {} record(s)",
                self.peer_name(node, *peer),
                records.len()
            )),
            Ev::Px(PeerExchangeClientEvent::Failed { error, .. }) => {
                Some(format!("{me}: peer exchange failed: {error}"))
            }
            Ev::Messenger(e) => self.describe_messenger(&me, e),
            Ev::Node(NodeEvent::Backfill(b)) => Some(format!("{me}: store backfill {b:?}")),
            Ev::Node(_) => None,
        }
    }

    fn describe_messenger(&self, me: &str, e: &MessengerEvent) -> Option<String> {
        let who = |k: &PublicIdentity| {
            if *k == self.alice_key {
                "alice".to_owned()
            } else if *k == self.bob_key {
                "bob".to_owned()
            } else {
                short(k)
            }
        };
        Some(match e {
            MessengerEvent::BundleReceived { from } => {
                format!(
                    "{me}: Messenger event BundleReceived from {} (X3DH bundle verified)",
                    who(from)
                )
            }
            MessengerEvent::ContactRequest { from } => {
                format!(
                    "{me}: Messenger event ContactRequest from {} (a key not yet in contacts)",
                    who(from)
                )
            }
            MessengerEvent::SessionEstablished { with } => {
                format!(
                    "{me}: Messenger event SessionEstablished with {} (double ratchet)",
                    who(with)
                )
            }
            MessengerEvent::MessageReceived { entry, .. } => format!(
                "{me}: Messenger event MessageReceived from {} (signature verified), clock {}: {:?}",
                who(&entry.sender),
                entry.message.clock,
                entry.message.text
            ),
            MessengerEvent::Notification {
                sender, pseudonym, ..
            } => format!(
                "{me}: Messenger event Notification: new message from {} \"{pseudonym}\"",
                who(sender)
            ),
            MessengerEvent::Delivered { id, to, .. } => format!(
                "{me}: Messenger event Delivered: {} acknowledged {}… (MVDS ack)",
                who(to),
                id.to_string().get(..12).unwrap_or_default()
            ),
            MessengerEvent::BackfillFinished { messages, ok } => format!(
                "{me}: Messenger event BackfillFinished: the store returned {messages} message(s) (ok: {ok})"
            ),
            _ => return None,
        })
    }

    fn describe_wire(&self, node: NodeId, w: &Wire) -> String {
        let from = self.peer_name(node, w.from);
        let to = self.name(node);
        let msg = |m: &SeenMessage| {
            format!(
                "topic {}, Waku message {} B (encrypted payload {} B)",
                self.label(&m.content_topic),
                m.encoded_len,
                m.payload.len()
            )
        };
        match &w.what {
            WireWhat::PeerQuery { num_peers } => {
                format!(
                    "{from} -> {to}  peer-exchange query for {num_peers} peers ({} B)",
                    w.len
                )
            }
            WireWhat::PeerRecords { records } => {
                let shown: Vec<String> = records
                    .iter()
                    .map(|r| format!("\"{}\"", String::from_utf8_lossy(r)))
                    .collect();
                format!(
                    "{from} -> {to}  peer-exchange answer ({} B): {}",
                    w.len,
                    shown.join(", ")
                )
            }
            WireWhat::LightPush(m) => {
                format!("{from} -> {to}  lightpush ({} B frame): {}", w.len, msg(m))
            }
            WireWhat::FilterPush(m) => format!(
                "{from} -> {to}  filter push ({} B frame): {}",
                w.len,
                msg(m)
            ),
            WireWhat::Relay(ms) => {
                let parts: Vec<String> = ms.iter().map(msg).collect();
                format!(
                    "{from} -> {to}  relay ({} B frame): {}",
                    w.len,
                    parts.join("; ")
                )
            }
            WireWhat::StoreQuery { content_topics } => {
                let t: Vec<String> = content_topics.iter().map(|t| self.label(t)).collect();
                format!(
                    "{from} -> {to}  store query ({} B) for {}",
                    w.len,
                    t.join(", ")
                )
            }
            WireWhat::StoreAnswer(ms) => {
                let mut per_topic: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
                for m in ms {
                    let e = per_topic.entry(m.content_topic.as_str()).or_default();
                    e.0 += 1;
                    e.1 += m.encoded_len;
                }
                let parts: Vec<String> = per_topic
                    .iter()
                    .map(|(t, (n, b))| format!("{n} message(s), {b} B on {}", self.label(t)))
                    .collect();
                let body = if parts.is_empty() {
                    "no messages".to_owned()
                } else {
                    parts.join("; ")
                };
                format!("{from} -> {to}  store answer ({} B): {body}", w.len)
            }
        }
    }

    // ----- the journey -----

    fn journey(&mut self) -> Result<(), DemoError> {
        let seed = self.seed;
        self.line(format!(
            "status-node demo: the life of a message from Alice to Bob (seed {seed})"
        ))?;
        self.line(format!(
            "Simulated network (transports::memory): virtual clock, links {} ms one-way + up to {} ms jitter.",
            LATENCY.as_millis(),
            JITTER.as_millis()
        ))?;
        self.setup()?;
        self.discovery()?;
        self.contact()?;
        self.key_exchange()?;
        self.first_message()?;
        self.offline()?;
        self.observer()?;
        self.summary()
    }

    fn setup(&mut self) -> Result<(), DemoError> {
        self.heading(0, "The network and the accounts", "P2P overlay, accounts")?;
        let ids: Vec<NodeId> = self.sim.node_ids().collect();
        for id in ids {
            let caps = match self.sim.node(id) {
                Some(Actor::Server(s)) => s.node.capabilities(),
                Some(Actor::Phone(p)) => p.messenger.waku().capabilities(),
                None => continue,
            };
            let served: Vec<String> = self
                .sim
                .node(id)
                .map(Machine::protocols)
                .unwrap_or_default()
                .iter()
                .map(|p| format!("{p:?}"))
                .collect();
            let served = served.join(",");
            let name = self.name(id);
            self.line(format!(
                "  {name:<14} capabilities {caps:<34} serves {served}"
            ))?;
        }
        // The full nodes are static peers of one another.
        let full = self.full.clone();
        for (i, &a) in full.iter().enumerate() {
            for &b in full.iter().skip(i + 1) {
                self.sim.connect(a, b)?;
            }
        }
        // The phones start knowing only the bootstrap node.
        self.sim.connect(self.alice, self.bootstrap)?;
        self.sim.connect(self.bob, self.bootstrap)?;
        self.learn_handles();
        self.line(
            "  full nodes: static peers of one another; alice and bob know only the bootstrap node",
        )?;
        for (who, key) in [("alice", self.alice_key), ("bob", self.bob_key)] {
            self.line(format!(
                "  {who:<5} chat key {key}  (three words: \"{}\")",
                payloads::verification::pseudonym(&key)
            ))?;
        }
        self.run_for(Duration::from_millis(500))?;
        self.step_events.clear();
        Ok(())
    }

    fn discovery(&mut self) -> Result<(), DemoError> {
        self.heading(
            1,
            "Peer discovery through the bootstrap node",
            "P2P overlay: peer exchange",
        )?;
        // The full nodes' records reach the bootstrap node's peer-exchange cache (discv5 is not
        // implemented; the demo hands the records over as discovery would).
        let full: Vec<NodeId> = self.full.clone();
        for &f in &full {
            let record = record_for(f, Capabilities::FULL);
            self.sim
                .with_node(self.bootstrap, |m, now| match m.as_server_mut() {
                    Some(s) => s.node.add_peer_record(now, record),
                    None => Ok(()),
                })??;
        }
        self.detail(format!(
            "  bootstrap: {} full-node records in its peer-exchange cache",
            full.len()
        ))?;
        for phone in [self.alice, self.bob] {
            let bootstrap = self
                .sim
                .peer_id(phone, self.bootstrap)
                .ok_or(DemoError::Check(
                    "phone not connected to the bootstrap node".into(),
                ))?;
            let n = u64::try_from(FULL_NODES).unwrap_or(u64::MAX);
            self.sim
                .with_node(phone, |m, now| match m.as_phone_mut() {
                    Some(p) => p.px.request(now, bootstrap, n).map(|_| ()),
                    None => Ok(()),
                })?
                .map_err(|e| DemoError::Node(NodeError::PeerExchange(e)))?;
        }
        let (alice, bob) = (self.alice, self.bob);
        self.run_until("peer exchange", |d| {
            [alice, bob].iter().all(|p| d.px_records(*p).is_some())
        })?;
        self.print_step()?;
        // Each phone dials the first full node it learned.
        for phone in [alice, bob] {
            let records = self.px_records(phone).unwrap_or_default();
            let target = records
                .iter()
                .find_map(|r| parse_record(r))
                .ok_or_else(|| DemoError::Check("no usable peer record".into()))?;
            self.sim.connect(phone, target)?;
            self.learn_handles();
            let (p, t) = (self.name(phone), self.name(target));
            self.line(format!(
                "  {p} dials {t}: lightpush to send, filter to receive, store for history"
            ))?;
        }
        // Filter subscriptions, the bundles published at start.
        self.run_for(Duration::from_secs(2))?;
        self.print_step()?;
        let a = self
            .phone(alice)?
            .waku()
            .filter_client()
            .subscriptions()
            .count();
        let b = self
            .phone(bob)?
            .waku()
            .filter_client()
            .subscriptions()
            .count();
        self.line(format!(
            "  filter subscriptions: alice {a} content topic(s), bob {b} (each follows its own partitioned topic)"
        ))?;
        Ok(())
    }

    fn px_records(&self, phone: NodeId) -> Option<Vec<Vec<u8>>> {
        self.events_of(phone).find_map(|r| match &r.event {
            Ev::Px(PeerExchangeClientEvent::Records { records, .. }) => Some(records.clone()),
            _ => None,
        })
    }

    fn contact(&mut self) -> Result<(), DemoError> {
        self.heading(2, "Contact discovery and verification", "accounts")?;
        let (alice_key, bob_key) = (self.alice_key, self.bob_key);
        self.line(format!(
            "  Alice has Bob's chat key out of band (his QR code): {bob_key}"
        ))?;
        let on_alice = payloads::verification::pseudonym(&bob_key);
        let on_bob = payloads::verification::pseudonym(&bob_key);
        let sn_alice = self.phone(self.alice)?.safety_number(&bob_key);
        let sn_bob = self.phone(self.bob)?.safety_number(&alice_key);
        self.line(format!(
            "  alice's screen: Bob is \"{on_alice}\", safety number {sn_alice}"
        ))?;
        self.line(format!(
            "  bob's screen:   he is \"{on_bob}\", safety number with Alice {sn_bob}"
        ))?;
        let same = sn_alice == sn_bob && on_alice == on_bob;
        self.line(format!(
            "  they compare them in person: {}",
            if same { "they match" } else { "MISMATCH" }
        ))?;
        if !same {
            return Err(DemoError::Check("safety numbers differ".into()));
        }
        Ok(())
    }

    fn key_exchange(&mut self) -> Result<(), DemoError> {
        self.heading(
            3,
            "Bob's X3DH bundle from his contact-code topic",
            "transport privacy, secure transport",
        )?;
        let (alice, bob_key) = (self.alice, self.bob_key);
        let topic = StatusTopic::contact_code(bob_key.ed25519_bytes());
        self.line(format!(
            "  Bob's contact-code topic: name \"0x{}…-contact-code\" -> content topic {}",
            hex::encode(bob_key.ed25519_bytes().get(..6).unwrap_or_default()),
            topic.content_topic()
        ))?;
        self.sim.with_node(alice, |m, now| {
            if let Some(p) = m.as_phone_mut() {
                p.messenger.add_contact(now, bob_key);
            }
        })?;
        self.line("  alice adds Bob's key: she follows his contact-code topic and asks a store node for recent bundles")?;
        self.run_until("bundle", |d| {
            d.phone(alice).is_ok_and(|m| m.has_bundle(&bob_key))
        })?;
        self.print_step()?;
        // What the store answer carried, opened as Alice did.
        let key = SymmetricKey::from_topic_name(topic.name());
        let bundle_msg = self
            .events_of(alice)
            .filter_map(|r| match &r.event {
                Ev::Wire(Wire {
                    what: WireWhat::StoreAnswer(ms),
                    ..
                }) => Some(ms),
                _ => None,
            })
            .flatten()
            .find(|m| m.content_topic == topic.content_topic().as_str())
            .cloned();
        if let Some(m) = bundle_msg {
            match open_symmetric(&key, &m.payload) {
                Ok(opened) => {
                    let signer_ok = opened
                        .signer
                        .is_some_and(|s| s.to_bytes() == *bob_key.ed25519_bytes());
                    let pm = proto::secure::ProtocolMessage::decode(opened.payload.as_slice()).ok();
                    let bundles = pm.as_ref().map_or(0, |p| p.bundles.len());
                    let blen = pm
                        .as_ref()
                        .and_then(|p| p.bundles.first())
                        .map_or(0, |b| b.encoded_len());
                    self.line(format!(
                        "  opened with the key of the topic name (anyone who knows Bob's chat key can): {} B plaintext, signed by Bob: {signer_ok}, {bundles} bundle of {blen} B (identity key, signed prekey, signature)",
                        opened.payload.len()
                    ))?;
                }
                Err(e) => self.line(format!("  the bundle message did not open: {e}"))?,
            }
        }
        Ok(())
    }

    fn first_message(&mut self) -> Result<(), DemoError> {
        self.heading(
            4,
            "Secure channel: X3DH on the partitioned topic, then the negotiated topic",
            "data & payloads, data sync, secure transport, transport privacy",
        )?;
        let (alice, bob) = (self.alice, self.bob);
        let (alice_key, bob_key) = (self.alice_key, self.bob_key);
        let hello = "Hello Bob! It's Alice.";
        let hello_id = self
            .sim
            .with_node(alice, |m, now| {
                m.as_phone_mut().map(|p| {
                    p.messenger
                        .send(now, &ChatId::OneToOne(bob_key), Draft::text(hello))
                })
            })?
            .ok_or(DemoError::Check("alice is not a phone".into()))?
            .map_err(|e| DemoError::Check(format!("send failed: {e}")))?;
        let clock = self
            .phone(alice)?
            .messages(&ChatId::OneToOne(bob_key))
            .find(|e| e.id == hello_id)
            .map_or(0, |e| e.message.clock);
        self.line(format!(
            "  alice sends {hello:?}: a ChatMessage with Lamport clock {clock}, in an envelope she signs (message id {}…), wrapped in an MVDS message",
            hello_id.to_string().get(..12).unwrap_or_default()
        ))?;
        self.line("  she holds Bob's bundle, so she runs X3DH and encrypts with a new double-ratchet session")?;
        self.run_until("hello", |d| !d.received_texts(bob, &alice_key).is_empty())?;
        self.print_step()?;
        self.peel_first(bob)?;

        self.sim.with_node(bob, |m, now| {
            if let Some(p) = m.as_phone_mut() {
                p.messenger.add_contact(now, alice_key);
            }
        })?;
        let reply = "Hi Alice, got it.";
        self.sim
            .with_node(bob, |m, now| {
                m.as_phone_mut().map(|p| {
                    p.messenger.send(
                        now,
                        &ChatId::OneToOne(alice_key),
                        Draft::text(reply).reply_to(hello_id),
                    )
                })
            })?
            .ok_or(DemoError::Check("bob is not a phone".into()))?
            .map_err(|e| DemoError::Check(format!("send failed: {e}")))?;
        self.line(format!(
            "  bob accepts the contact request and replies {reply:?}: he answers the X3DH header, so both now use the negotiated topic"
        ))?;
        self.run_until("reply and ack", |d| {
            !d.received_texts(alice, &bob_key).is_empty() && d.delivered(alice).contains(&hello_id)
        })?;
        self.print_step()?;
        let na = self.phone(alice)?.negotiated_topic(&bob_key);
        let nb = self.phone(bob)?.negotiated_topic(&alice_key);
        let confirmed =
            self.phone(alice)?.is_confirmed(&bob_key) && self.phone(bob)?.is_confirmed(&alice_key);
        let same = na.is_some() && na == nb;
        self.line(format!(
            "  negotiated topic: alice {}, bob {} -> same: {same}; sessions confirmed on both sides: {confirmed}",
            na.as_ref().map_or("-".into(), |t| t.to_string()),
            nb.as_ref().map_or("-".into(), |t| t.to_string())
        ))?;
        if !same || !confirmed {
            return Err(DemoError::Check("no negotiated topic".into()));
        }
        Ok(())
    }

    /// Shows the layers of the first message with Bob's keys: what Bob can open.
    fn peel_first(&mut self, bob: NodeId) -> Result<(), DemoError> {
        let part = StatusTopic::partitioned(self.bob_key.ed25519_bytes());
        let first = self
            .events_of(bob)
            .filter_map(|r| match &r.event {
                Ev::Wire(Wire {
                    what: WireWhat::FilterPush(m),
                    ..
                }) if m.content_topic == part.content_topic().as_str() => Some(m.clone()),
                _ => None,
            })
            .next();
        let Some(m) = first else {
            return Ok(());
        };
        let signing = ed25519_dalek::SigningKey::from_bytes(&self.bob_account.chat_secret_key());
        let key = RecipientKey::from_signing_key(&signing);
        match open_asymmetric(&key, &m.payload) {
            Ok(opened) => {
                let from_alice = opened
                    .signer
                    .is_some_and(|s| s.to_bytes() == *self.alice_key.ed25519_bytes());
                self.line(format!(
                    "  layers, opened with Bob's key: Waku payload {} B -> sealed to Bob's X25519 key, signed by Alice: {from_alice} -> {} B ProtocolMessage",
                    m.payload.len(),
                    opened.payload.len()
                ))?;
                if let Ok(pm) = proto::secure::ProtocolMessage::decode(opened.payload.as_slice()) {
                    for (inst, emp) in &pm.encrypted_message {
                        let x3dh = emp.x3dh_header.as_ref().map_or(0, |h| h.encoded_len());
                        let dr = emp.dr_header.as_ref().map_or(0, |h| h.encoded_len());
                        let target = if inst.is_empty() {
                            "any installation"
                        } else {
                            "Bob's installation"
                        };
                        self.line(format!(
                            "     ProtocolMessage: Alice's bundle attached ({} B), for {target}: X3DH header {x3dh} B, ratchet header {dr} B, ciphertext {} B (the MVDS payload; only Bob's ratchet session decrypts it)",
                            pm.bundles.first().map_or(0, |b| b.encoded_len()),
                            emp.payload.len()
                        ))?;
                    }
                }
            }
            Err(e) => self.line(format!("  Bob's key did not open the first message: {e}"))?,
        }
        Ok(())
    }

    fn offline(&mut self) -> Result<(), DemoError> {
        self.heading(
            5,
            "Bob goes offline; Alice keeps writing",
            "P2P overlay: store",
        )?;
        let (alice, bob) = (self.alice, self.bob);
        let bob_key = self.bob_key;
        let alice_key = self.alice_key;
        let machine = self.sim.crash(bob)?;
        let Actor::Phone(phone) = machine else {
            return Err(DemoError::Check("bob is not a phone".into()));
        };
        let (storage, sync) = phone.messenger.into_stores();
        self.line("  bob's app stops: its connections close; his database (keys, sessions, MVDS state) stays on the phone")?;
        let mut sent = Vec::new();
        for text in OFFLINE_TEXTS {
            let id = self
                .sim
                .with_node(alice, |m, now| {
                    m.as_phone_mut().map(|p| {
                        p.messenger
                            .send(now, &ChatId::OneToOne(bob_key), Draft::text(text))
                    })
                })?
                .ok_or(DemoError::Check("alice is not a phone".into()))?
                .map_err(|e| DemoError::Check(format!("send failed: {e}")))?;
            self.line(format!(
                "  [{}] alice sends {text:?} (message id {}…)",
                secs(self.sim.elapsed()),
                id.to_string().get(..12).unwrap_or_default()
            ))?;
            sent.push((id, text.to_owned()));
            self.run_for(Duration::from_secs(1))?;
        }
        self.run_for(OFFLINE.saturating_sub(Duration::from_secs(3)))?;
        // Summarise what the full nodes did with them.
        let negotiated = self
            .phone(alice)?
            .negotiated_topic(&bob_key)
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default();
        let pushes = self
            .step_events
            .iter()
            .filter(|(_, r)| {
                matches!(&r.event, Ev::Wire(Wire { what: WireWhat::LightPush(m), .. }) if m.content_topic == negotiated)
            })
            .count();
        self.print_step()?;
        self.line(format!(
            "  alice lightpushed {pushes} Waku messages on the negotiated topic while Bob was away (MVDS retransmits until Bob acks)"
        ))?;
        let full = self.full.clone();
        for f in full {
            let archived = self
                .sim
                .with_node(f, |m, _| {
                    m.as_server_mut()
                        .and_then(|s| s.node.store_server_mut().map(|st| st.stats().archived))
                })?
                .unwrap_or(0);
            let n = self.name(f);
            self.line(format!("  {n} archive: {archived} messages in all"))?;
        }

        self.heading(
            6,
            "Bob comes back: history from the store, exactly once",
            "P2P overlay: store; data sync",
        )?;
        let now = self.sim.node_now(bob)?;
        let seed = seed32(&mut self.rng);
        let m = Messenger::new(
            self.config.clone(),
            &self.bob_account,
            storage,
            sync,
            seed,
            now,
        )?;
        let restarted_at = self.sim.elapsed();
        self.sim.restart(bob, |_| Actor::phone(m))?;
        self.learn_handles();
        self.line("  bob's app starts again from its database and reconnects to its full node")?;
        let before = self.received_texts(bob, &alice_key).len();
        let want = before + sent.len();
        self.run_until("backfill", |d| {
            d.received_texts(bob, &alice_key).len() >= want
        })?;
        self.print_step()?;
        self.heading(7, "Delivery receipts back to Alice", "data sync: MVDS acks")?;
        let ids: Vec<payloads::MessageId> = sent.iter().map(|(id, _)| *id).collect();
        self.run_until("acks", |d| {
            let acked = d.delivered(alice);
            ids.iter().all(|id| acked.contains(id))
        })?;
        self.print_step()?;
        // Settle: retransmissions in flight arrive and must not show twice.
        self.run_for(Duration::from_secs(10))?;
        self.print_step()?;
        let got = self.received_texts(bob, &alice_key);
        let after: Vec<String> = got
            .get(before..)
            .map(<[String]>::to_vec)
            .unwrap_or_default();
        let expected: Vec<String> = sent.iter().map(|(_, t)| t.clone()).collect();
        let log: Vec<String> = self
            .phone(bob)?
            .messages(&ChatId::OneToOne(alice_key))
            .filter(|e| !e.outgoing)
            .map(|e| e.message.text.clone())
            .collect();
        self.line(format!("  bob's chat with Alice, in clock order: {log:?}"))?;
        // How many copies of the 1:1 traffic reached Bob after his restart (store answers, filter
        // pushes of retransmissions): each message still shows once.
        let negotiated = self
            .phone(bob)?
            .negotiated_topic(&alice_key)
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default();
        let copies: usize = self
            .events_of(bob)
            .filter(|r| r.at >= restarted_at)
            .map(|r| match &r.event {
                Ev::Wire(Wire {
                    what: WireWhat::StoreAnswer(ms),
                    ..
                }) => ms.iter().filter(|m| m.content_topic == negotiated).count(),
                Ev::Wire(Wire {
                    what: WireWhat::FilterPush(m),
                    ..
                }) => usize::from(m.content_topic == negotiated),
                _ => 0,
            })
            .sum();
        let dropped = self.phone(bob)?.stats().waku_duplicates;
        self.line(format!(
            "  since his restart Bob received {copies} Waku messages on the negotiated topic (store answers and filter pushes, retransmissions included); his restarted Messenger dropped {dropped} Waku messages (all topics) as copies of ones it had already seen"
        ))?;
        let equal = after == expected;
        self.line(format!(
            "  check: Bob decrypted {} message(s) while catching up, equal to what Alice sent, each once: {equal}",
            after.len()
        ))?;
        let acked = self.delivered(alice);
        let all_acked = ids.iter().all(|id| acked.contains(id));
        self.line(format!(
            "  check: alice has a delivery receipt for each: {all_acked}"
        ))?;
        if !equal || !all_acked {
            return Err(DemoError::Check(
                "offline messages were not delivered exactly once".into(),
            ));
        }
        Ok(())
    }

    fn observer(&mut self) -> Result<(), DemoError> {
        self.heading(8, "What a relaying full node sees", "transport privacy")?;
        // A full node that serves neither phone: it only relays and stores.
        let serving: BTreeSet<NodeId> = [self.alice, self.bob]
            .iter()
            .flat_map(|p| {
                self.full
                    .iter()
                    .copied()
                    .filter(|f| self.sim.is_connected(*p, *f))
            })
            .collect();
        let observer = self
            .full
            .iter()
            .copied()
            .find(|f| !serving.contains(f))
            .or_else(|| self.full.first().copied())
            .ok_or(DemoError::Check("no full node".into()))?;
        let name = self.name(observer);
        self.line(format!(
            "  observer: {name}, which neither phone is connected to"
        ))?;
        self.line("  it knows Alice's and Bob's chat keys (chat keys are public: QR codes, profiles), and its operator has a chat key of its own")?;
        // Every Waku message it received, by content topic.
        let mut seen: BTreeMap<String, Vec<SeenMessage>> = BTreeMap::new();
        let mut hops: BTreeSet<String> = BTreeSet::new();
        for r in self.events_of(observer) {
            if let Ev::Wire(w) = &r.event {
                let ms: Vec<&SeenMessage> = match &w.what {
                    WireWhat::Relay(ms) => ms.iter().collect(),
                    WireWhat::LightPush(m) => vec![m],
                    _ => continue,
                };
                hops.insert(self.peer_name(observer, w.from));
                for m in ms {
                    let v = seen.entry(m.content_topic.clone()).or_default();
                    if !v.iter().any(|x| x.payload == m.payload) {
                        v.push(m.clone());
                    }
                }
            }
        }
        let hops: Vec<String> = hops.into_iter().collect();
        self.line(format!(
            "  it received messages from: {} (relays: never the phones that wrote them)",
            hops.join(", ")
        ))?;
        // The observer's own identity, and every key it could derive from a topic it recognises.
        let operator = Account::generate(&mut self.rng, WordCount::Twelve, "")
            .map_err(|e| DemoError::Account(e.to_string()))?;
        let own = RecipientKey::from_signing_key(&ed25519_dalek::SigningKey::from_bytes(
            &operator.chat_secret_key(),
        ));
        for (topic, msgs) in &seen {
            let total: usize = msgs.iter().map(|m| m.payload.len()).sum();
            let sizes: BTreeSet<usize> = msgs.iter().map(|m| m.payload.len()).collect();
            let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
            self.line(format!(
                "  topic {topic}: {} message(s), {total} B (payload sizes {} B, padded)",
                msgs.len(),
                sizes.join("/")
            ))?;
            // What the topic is, as far as the observer can work out by itself.
            let partition = (0..PARTITIONS).find(|n| {
                WakuV1Topic::from_name(&format!("contact-discovery-{n}"))
                    .content_topic()
                    .as_str()
                    == topic
            });
            let is_alice_cc = StatusTopic::contact_code(self.alice_key.ed25519_bytes())
                .content_topic()
                .as_str()
                == topic;
            let is_bob_cc = StatusTopic::contact_code(self.bob_key.ed25519_bytes())
                .content_topic()
                .as_str()
                == topic;
            let Some(sample) = msgs.first() else { continue };
            let own_try = open_asymmetric(&own, &sample.payload);
            if let Some(n) = partition {
                self.line(format!(
                    "    recognised by trying all {PARTITIONS} names: partitioned topic \"contact-discovery-{n}\", shared by 1 in {PARTITIONS} of all chat keys"
                ))?;
                let guess = SymmetricKey::from_topic_name(&format!("contact-discovery-{n}"));
                let r = open_symmetric(&guess, &sample.payload);
                self.line(format!(
                    "    decrypt with the topic-name key: {}",
                    r.map_or_else(|e| format!("fails: {e}"), |_| "OPENED".into())
                ))?;
            } else if is_alice_cc || is_bob_cc {
                let (who, key) = if is_alice_cc {
                    ("Alice", self.alice_key)
                } else {
                    ("Bob", self.bob_key)
                };
                let k = SymmetricKey::from_topic_name(
                    StatusTopic::contact_code(key.ed25519_bytes()).name(),
                );
                let r = open_symmetric(&k, &sample.payload);
                self.line(format!(
                    "    a contact-code topic: whoever knows {who}'s chat key derives it and opens it (public by design): {}",
                    r.map_or_else(|e| format!("fails: {e}"), |o| format!("opened, {} B, a prekey bundle", o.payload.len()))
                ))?;
            } else {
                self.line("    not one of the 5000 partitioned topics nor the contact-code topic of a key it knows: to the observer an unknown topic (it is the negotiated topic; its name comes from a secret only Alice and Bob hold)")?;
            }
            self.line(format!(
                "    decrypt with the node operator's own chat key: {}",
                own_try.map_or_else(|e| format!("fails: {e}"), |_| "OPENED".into())
            ))?;
        }
        // Plaintext never appears.
        let texts: Vec<String> = self
            .messenger_events(self.bob)
            .chain(self.messenger_events(self.alice))
            .filter_map(|e| match e {
                MessengerEvent::MessageReceived { entry, .. } => Some(entry.message.text.clone()),
                _ => None,
            })
            .collect();
        let leaked = seen.values().flatten().any(|m| {
            texts
                .iter()
                .any(|t| m.payload.windows(t.len().max(1)).any(|w| w == t.as_bytes()))
        });
        self.line(format!(
            "  any message text in any payload it relayed: {}",
            if leaked { "YES" } else { "no" }
        ))?;
        self.line("  it can see: content topics, sizes (padded), timestamps, which relay handed each message over")?;
        self.line("  it cannot see: sender, recipient, text, or which topic belongs to whom (without the chat keys)")?;
        if leaked {
            return Err(DemoError::Check("plaintext visible to a relay".into()));
        }
        Ok(())
    }

    fn summary(&mut self) -> Result<(), DemoError> {
        self.heading(9, "Totals", "all")?;
        let st = self.sim.stats().clone();
        self.line(format!(
            "  network: {} frames ({} B) sent, {} delivered, {} lost, {} dropped; {:.3}s of virtual time",
            st.frames_sent,
            st.bytes_sent,
            st.delivered,
            st.lost,
            st.dropped(),
            self.sim.elapsed().as_secs_f64()
        ))?;
        for (who, id) in [("alice", self.alice), ("bob (since his restart)", self.bob)] {
            let s = self.phone(id)?.stats().clone();
            self.line(format!(
                "  {who}: published {} Waku messages, received {} ({} duplicates dropped, {} not for her/him)",
                s.published, s.waku_received, s.waku_duplicates, s.waku_unopened
            ))?;
        }
        self.line(format!(
            "  trace digest (same seed, same run): {}",
            hex::encode(self.sim.trace_digest())
        ))?;
        let _ = (&self.alice_account, self.bootstrap);
        Ok(())
    }
}

fn alice_m_negotiated(sim: &Sim<Actor>, alice: NodeId, bob: &PublicIdentity) -> Option<String> {
    sim.node(alice)
        .and_then(Actor::as_phone)
        .and_then(|p| p.messenger.negotiated_topic(bob))
        .map(|t| t.as_str().to_owned())
}
