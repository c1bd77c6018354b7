//! The Messenger scenarios' network: full nodes (`WakuNode` with every capability) and
//! Messengers on the deterministic simulated network (`transports::memory`).
//!
//! `Sim` runs one machine type, so [`Node`] wraps both kinds. Full nodes record every Waku
//! message they receive (relay publishes and lightpush requests) for the privacy checks;
//! Messengers record the content topic of every message they hand to a lightpush node, with the
//! virtual time, so a test can tell which topics a phone wrote on.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use payloads::account::{Account, WordCount};
use payloads::messenger::{Messenger, MessengerConfig, MessengerEvent};
use payloads::storage::MemoryStorage;
use proto::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use transports::memory::{LinkConfig, NodeId, Sim, SimConfig};
use waku_core::message::WakuMessage;
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use waku_core::node::{WakuNode, WakuNodeConfig};
use waku_core::roles::Capabilities;

/// One-way latency of every link (the in-crate rig's value).
pub const LATENCY: Duration = Duration::from_millis(20);

/// A full node that remembers every distinct Waku message it received.
pub struct Full {
    node: WakuNode,
    /// Distinct Waku messages received (relay or lightpush), in order.
    pub carried: Vec<WakuMessage>,
    carried_set: BTreeSet<Vec<u8>>,
}

impl Full {
    fn carry(&mut self, data: Vec<u8>) {
        if let Ok(w) = WakuMessage::decode(&data)
            && self.carried_set.insert(data)
        {
            self.carried.push(w);
        }
    }

    fn sniff(&mut self, protocol: Protocol, kind: FrameKind, frame: &[u8]) {
        match (protocol, kind) {
            (Protocol::Relay, _) => {
                if let Ok(rpc) = proto::gossipsub::Rpc::decode(frame) {
                    for m in rpc.publish {
                        if let Some(d) = m.data {
                            self.carry(d);
                        }
                    }
                }
            }
            (Protocol::LightPush, FrameKind::Request(_)) => {
                if let Ok(req) = proto::waku::LightPushRequest::decode(frame)
                    && let Some(w) = req.message
                {
                    self.carry(w.encode_to_vec());
                }
            }
            _ => {}
        }
    }
}

/// A Messenger and the topics it wrote on.
pub struct Phone {
    pub messenger: Messenger,
    /// (time, content topic) of every lightpush request it sent.
    pub originated: Vec<(Instant, String)>,
    last: Option<Instant>,
    /// Relay message data received (to tell relayed messages from originated ones).
    heard: BTreeSet<Vec<u8>>,
}

impl Phone {
    fn hear(&mut self, frame: &[u8]) {
        if let Ok(rpc) = proto::gossipsub::Rpc::decode(frame) {
            for m in rpc.publish {
                if let Some(d) = m.data {
                    self.heard.insert(d);
                }
            }
        }
    }

    fn note_sent(&mut self, t: &Transmit) {
        let Some(at) = self.last else { return };
        match (t.protocol, t.kind) {
            (Protocol::LightPush, FrameKind::Request(_)) => {
                if let Ok(req) = proto::waku::LightPushRequest::decode(t.bytes.as_slice())
                    && let Some(w) = req.message
                {
                    self.originated.push((at, w.content_topic));
                }
            }
            (Protocol::Relay, _) => {
                if let Ok(rpc) = proto::gossipsub::Rpc::decode(t.bytes.as_slice()) {
                    for m in rpc.publish {
                        let Some(d) = m.data else { continue };
                        if self.heard.insert(d.clone())
                            && let Ok(w) = WakuMessage::decode(&d)
                        {
                            self.originated
                                .push((at, w.content_topic.as_str().to_owned()));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

pub enum Node {
    Phone(Box<Phone>),
    Full(Box<Full>),
}

impl Node {
    fn note_now(&mut self, now: Now) {
        if let Node::Phone(p) = self {
            p.last = Some(now.instant);
        }
    }
}

impl Machine for Node {
    type Event = MessengerEvent;

    fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.note_now(now);
        match self {
            Node::Phone(p) => p.messenger.handle_connected(now, peer, protocols),
            Node::Full(f) => f.node.handle_connected(now, peer, protocols),
        }
    }

    fn handle_disconnected(&mut self, now: Now, peer: PeerId) {
        self.note_now(now);
        match self {
            Node::Phone(p) => p.messenger.handle_disconnected(now, peer),
            Node::Full(f) => f.node.handle_disconnected(now, peer),
        }
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        self.note_now(now);
        match self {
            Node::Phone(p) => {
                if protocol == Protocol::Relay {
                    p.hear(frame);
                }
                p.messenger.handle_frame(now, from, protocol, kind, frame);
            }
            Node::Full(f) => {
                f.sniff(protocol, kind, frame);
                f.node.handle_frame(now, from, protocol, kind, frame);
            }
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        self.note_now(now);
        match self {
            Node::Phone(p) => p.messenger.handle_timeout(now),
            Node::Full(f) => f.node.handle_timeout(now),
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Node::Phone(p) => {
                let t = p.messenger.poll_transmit()?;
                p.note_sent(&t);
                Some(t)
            }
            Node::Full(f) => f.node.poll_transmit(),
        }
    }

    fn poll_event(&mut self) -> Option<MessengerEvent> {
        match self {
            Node::Phone(p) => p.messenger.poll_event(),
            Node::Full(f) => {
                // Full nodes' events (relayed messages, metadata, archive reports) are not
                // needed: drain them so they do not pile up.
                while f.node.poll_event().is_some() {}
                None
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Node::Phone(p) => p.messenger.poll_timeout(),
            Node::Full(f) => f.node.poll_timeout(),
        }
    }

    fn protocols(&self) -> Vec<Protocol> {
        match self {
            Node::Phone(p) => p.messenger.protocols(),
            Node::Full(f) => f.node.protocols(),
        }
    }
}

/// The network of a scenario.
pub struct Net {
    pub sim: Sim<Node>,
    rng: ChaCha20Rng,
    /// Events each Messenger reported, in order.
    pub events: BTreeMap<NodeId, Vec<MessengerEvent>>,
    link: LinkConfig,
}

impl Net {
    /// A network; prints the seed.
    pub fn new(seed: u64) -> Self {
        println!("scenario seed {seed:#x}");
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let link = LinkConfig::new(LATENCY);
        let sim = Sim::new(SimConfig {
            seed: rng.next_u64(),
            default_link: link.clone(),
            ..SimConfig::default()
        })
        .unwrap();
        Net {
            sim,
            rng,
            events: BTreeMap::new(),
            link,
        }
    }

    pub fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.rng
    }

    fn seed32(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.rng.fill_bytes(&mut s);
        s
    }

    /// A full node (relay, store, filter and lightpush service, bootstrap) on the Messengers'
    /// cluster and shard.
    pub fn add_full_node(&mut self, config: &MessengerConfig) -> NodeId {
        let seed = self.seed32();
        let now = self.sim.now();
        let wc = WakuNodeConfig::new(
            Capabilities::FULL,
            config.waku.cluster_id,
            config.waku.shards.clone(),
        );
        let mut node = WakuNode::new(wc, None, seed, now).unwrap();
        node.subscribe(now, config.pubsub_topic.clone(), vec![])
            .unwrap();
        self.sim
            .add_node(|_| {
                Node::Full(Box::new(Full {
                    node,
                    carried: Vec::new(),
                    carried_set: BTreeSet::new(),
                }))
            })
            .unwrap()
    }

    /// A new account and its Messenger.
    pub fn add_messenger(&mut self, config: MessengerConfig) -> (NodeId, Account) {
        let account = Account::generate(&mut self.rng, WordCount::Twelve, "").unwrap();
        let seed = self.seed32();
        let m = Messenger::new(
            config,
            &account,
            MemoryStorage::new(),
            mvds::MemoryStore::new(),
            seed,
            self.sim.now(),
        )
        .unwrap();
        let id = self
            .sim
            .add_node(|_| {
                Node::Phone(Box::new(Phone {
                    messenger: m,
                    originated: Vec::new(),
                    last: None,
                    heard: BTreeSet::new(),
                }))
            })
            .unwrap();
        (id, account)
    }

    pub fn link(&mut self, a: NodeId, b: NodeId) {
        self.sim.connect_with(a, b, self.link.clone()).unwrap();
        self.collect();
    }

    /// Cuts a node's links (its machine keeps running, with no connection).
    pub fn unlink_all(&mut self, n: NodeId) -> Vec<NodeId> {
        let peers: Vec<NodeId> = self
            .sim
            .links()
            .filter_map(|(a, b)| {
                if a == n {
                    Some(b)
                } else if b == n {
                    Some(a)
                } else {
                    None
                }
            })
            .collect();
        for &p in &peers {
            self.sim.disconnect(n, p).unwrap();
        }
        self.collect();
        peers
    }

    /// Every link gets this loss probability (both directions).
    pub fn set_loss_everywhere(&mut self, loss: f64) {
        self.set_link_everywhere(LinkConfig::new(LATENCY).with_loss(loss));
    }

    /// Every link, and every link made later, gets `link` (both directions).
    pub fn set_link_everywhere(&mut self, link: LinkConfig) {
        self.link = link;
        let links: Vec<(NodeId, NodeId)> = self.sim.links().collect();
        for (a, b) in links {
            self.sim.set_link(a, b, self.link.clone()).unwrap();
        }
    }

    pub fn messenger(&self, i: NodeId) -> &Messenger {
        match self.sim.node(i) {
            Some(Node::Phone(p)) => &p.messenger,
            _ => panic!("{i} is not a running messenger"),
        }
    }

    pub fn phone(&self, i: NodeId) -> &Phone {
        match self.sim.node(i) {
            Some(Node::Phone(p)) => p,
            _ => panic!("{i} is not a running messenger"),
        }
    }

    pub fn full(&self, i: NodeId) -> &Full {
        match self.sim.node(i) {
            Some(Node::Full(f)) => f,
            _ => panic!("{i} is not a running full node"),
        }
    }

    /// Makes full node `f` publish `messages` on `pubsub_topic` as if they were new (a rogue
    /// relay replaying or injecting traffic). Returns how many its relay accepted.
    pub fn rogue_publish(
        &mut self,
        f: NodeId,
        pubsub_topic: &waku_core::topic::PubsubTopic,
        messages: Vec<WakuMessage>,
    ) -> usize {
        let n = self
            .sim
            .with_node(f, |n, now| match n {
                Node::Full(full) => messages
                    .into_iter()
                    .filter(|m| {
                        full.node
                            .publish(now, Some(pubsub_topic.clone()), m.clone())
                            .is_ok()
                    })
                    .count(),
                Node::Phone(_) => panic!("{f} is not a full node"),
            })
            .unwrap();
        self.collect();
        n
    }

    /// Runs a command on the `WakuNode` of full node `i` at the current time.
    pub fn with_full<R>(&mut self, i: NodeId, f: impl FnOnce(&mut WakuNode, Now) -> R) -> R {
        let r = self
            .sim
            .with_node(i, |n, now| match n {
                Node::Full(full) => f(&mut full.node, now),
                Node::Phone(_) => panic!("{i} is not a full node"),
            })
            .unwrap();
        self.collect();
        r
    }

    /// Runs a command on Messenger `i` at the current time, then lets it emit.
    pub fn with<R>(&mut self, i: NodeId, f: impl FnOnce(&mut Messenger, Now) -> R) -> R {
        let r = self
            .sim
            .with_node(i, |n, now| match n {
                Node::Phone(p) => {
                    p.last = Some(now.instant);
                    f(&mut p.messenger, now)
                }
                Node::Full(_) => panic!("{i} is a full node"),
            })
            .unwrap();
        self.collect();
        r
    }

    fn collect(&mut self) {
        let ids: Vec<NodeId> = self.sim.node_ids().collect();
        for id in ids {
            for r in self.sim.take_events(id) {
                self.events.entry(id).or_default().push(r.event);
            }
        }
    }

    pub fn events(&self, i: NodeId) -> &[MessengerEvent] {
        self.events.get(&i).map_or(&[], Vec::as_slice)
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.sim.run_for(d).unwrap();
        self.collect();
    }

    /// Runs until `done` holds, checking every virtual second, for at most `limit`.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let end = self.sim.elapsed() + limit;
        while self.sim.elapsed() < end {
            if done(self) {
                return true;
            }
            self.run_for(Duration::from_secs(1));
        }
        done(self)
    }

    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    /// The instant the network's clock shows now.
    pub fn instant(&self) -> Instant {
        self.sim.now().instant
    }
}

/// The chat messages `node` received in `chat`, in arrival order: id, verified sender, text.
pub fn received(
    net: &Net,
    node: NodeId,
    chat: &payloads::messenger::ChatId,
) -> Vec<(payloads::MessageId, x3dh::PublicIdentity, String)> {
    net.events(node)
        .iter()
        .filter_map(|e| match e {
            MessengerEvent::MessageReceived { chat: c, entry } if c == chat => {
                Some((entry.id, entry.sender, entry.message.text.clone()))
            }
            _ => None,
        })
        .collect()
}
