//! The simplest rig for multi-node Messenger tests: a virtual clock, links between nodes with
//! fixed latency and seeded loss, and two kinds of node: a [`Messenger`] and a full node (a relay
//! router and a store server over an in-memory archive, composed here until `waku-core` has its
//! `WakuNode`). The full simulated network (`transports::memory`) replaces this later.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

use payloads::account::{Account, WordCount};
use payloads::messenger::{Messenger, MessengerConfig, MessengerEvent};
use payloads::storage::MemoryStorage;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use waku_core::message::WakuMessage;
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
use waku_core::node::{NodeEvent, WakuNode, WakuNodeConfig};
use waku_core::roles::Capabilities;
use waku_core::topic::PubsubTopic;

/// Unix time at the rig's start, nanoseconds.
pub const BASE_UNIX_NANOS: i64 = 1_700_000_000_000_000_000;

/// A full node: a `WakuNode` with every capability (relay, store, filter and lightpush
/// service), recording every message it relays.
pub struct FullNode {
    node: WakuNode,
    /// Every Waku message this node relayed (for privacy checks).
    pub seen: Vec<(PubsubTopic, WakuMessage)>,
}

impl FullNode {
    pub fn new(seed: u64, config: &MessengerConfig, now: Now) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_be_bytes());
        let wc = WakuNodeConfig::new(
            Capabilities::FULL,
            config.waku.cluster_id,
            config.waku.shards.clone(),
        );
        let mut node = WakuNode::new(wc, None, s, now).unwrap();
        node.subscribe(now, config.pubsub_topic.clone(), vec![])
            .unwrap();
        FullNode {
            node,
            seen: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.node.poll_event() {
            if let NodeEvent::Message {
                pubsub_topic,
                message,
                ..
            } = e
            {
                self.seen.push((pubsub_topic, message));
            }
        }
    }
}

impl Machine for FullNode {
    type Event = ();

    fn handle_connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.node.handle_connected(now, peer, protocols);
        self.drain();
    }

    fn handle_disconnected(&mut self, now: Now, peer: PeerId) {
        self.node.handle_disconnected(now, peer);
        self.drain();
    }

    fn handle_frame(
        &mut self,
        now: Now,
        from: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        frame: &[u8],
    ) {
        self.node.handle_frame(now, from, protocol, kind, frame);
        self.drain();
    }

    fn handle_timeout(&mut self, now: Now) {
        self.node.handle_timeout(now);
        self.drain();
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.node.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<()> {
        self.drain();
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }

    fn protocols(&self) -> Vec<Protocol> {
        self.node.protocols()
    }
}

pub enum Node {
    Messenger(Box<Messenger>),
    Full(Box<FullNode>),
}

impl Node {
    fn machine(&mut self) -> &mut dyn MachineDyn {
        match self {
            Node::Messenger(m) => &mut **m,
            Node::Full(f) => &mut **f,
        }
    }
}

/// The `Machine` methods the rig calls, with events erased.
pub trait MachineDyn {
    fn connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]);
    fn disconnected(&mut self, now: Now, peer: PeerId);
    fn frame(&mut self, now: Now, from: PeerId, protocol: Protocol, kind: FrameKind, frame: &[u8]);
    fn timeout(&mut self, now: Now);
    fn transmit(&mut self) -> Option<Transmit>;
    fn next_timeout(&self) -> Option<Instant>;
    fn protos(&self) -> Vec<Protocol>;
}

impl<T: Machine> MachineDyn for T {
    fn connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.handle_connected(now, peer, protocols)
    }
    fn disconnected(&mut self, now: Now, peer: PeerId) {
        self.handle_disconnected(now, peer)
    }
    fn frame(&mut self, now: Now, from: PeerId, protocol: Protocol, kind: FrameKind, frame: &[u8]) {
        self.handle_frame(now, from, protocol, kind, frame)
    }
    fn timeout(&mut self, now: Now) {
        self.handle_timeout(now)
    }
    fn transmit(&mut self) -> Option<Transmit> {
        self.poll_transmit()
    }
    fn next_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn protos(&self) -> Vec<Protocol> {
        self.protocols()
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    from: usize,
    to: usize,
    protocol: Protocol,
    kind: FrameKindOrd,
    bytes: Vec<u8>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum FrameKindOrd {
    Stream,
    Request(u64),
    Response(u64),
}

impl From<FrameKind> for FrameKindOrd {
    fn from(k: FrameKind) -> Self {
        match k {
            FrameKind::Stream => FrameKindOrd::Stream,
            FrameKind::Request(i) => FrameKindOrd::Request(i),
            FrameKind::Response(i) => FrameKindOrd::Response(i),
        }
    }
}

impl From<FrameKindOrd> for FrameKind {
    fn from(k: FrameKindOrd) -> Self {
        match k {
            FrameKindOrd::Stream => FrameKind::Stream,
            FrameKindOrd::Request(i) => FrameKind::Request(i),
            FrameKindOrd::Response(i) => FrameKind::Response(i),
        }
    }
}

pub struct Net {
    start: Instant,
    offset: Duration,
    pub nodes: Vec<Node>,
    online: Vec<bool>,
    links: BTreeSet<(usize, usize)>,
    /// Loss probability per link direction (from, to), in parts per million.
    loss_ppm: BTreeMap<(usize, usize), u32>,
    pub default_loss_ppm: u32,
    latency: Duration,
    heap: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: ChaCha20Rng,
    /// Events each node reported, in order.
    pub events: Vec<Vec<MessengerEvent>>,
    /// Every Waku message any node relayed or published, as seen on relay frames (topic only).
    pub frames_sent: u64,
    pub frames_lost: u64,
    /// Frames on a protocol the serving side does not list (dropped, as drivers do).
    pub frames_refused: u64,
    /// Per node: relay message data it received (to tell what it originated).
    heard: Vec<BTreeSet<Vec<u8>>>,
    /// Per node: (time, content topic) of every Waku message it originated on the relay.
    pub originated: Vec<Vec<(Duration, String)>>,
    /// Per node: every distinct Waku message it received (relay or lightpush), in order.
    pub carried: Vec<Vec<WakuMessage>>,
    carried_set: Vec<BTreeSet<Vec<u8>>>,
}

impl Net {
    #[allow(clippy::disallowed_methods)] // the rig needs some origin; only offsets matter
    pub fn new(seed: u64) -> Self {
        println!("rig seed {seed}");
        Net {
            start: Instant::now(),
            offset: Duration::ZERO,
            nodes: Vec::new(),
            online: Vec::new(),
            links: BTreeSet::new(),
            loss_ppm: BTreeMap::new(),
            default_loss_ppm: 0,
            latency: Duration::from_millis(20),
            heap: BinaryHeap::new(),
            seq: 0,
            rng: ChaCha20Rng::seed_from_u64(seed),
            events: Vec::new(),
            frames_sent: 0,
            frames_lost: 0,
            frames_refused: 0,
            heard: Vec::new(),
            originated: Vec::new(),
            carried: Vec::new(),
            carried_set: Vec::new(),
        }
    }

    pub fn now(&self) -> Now {
        Now {
            instant: self.start + self.offset,
            unix_nanos: BASE_UNIX_NANOS + i64::try_from(self.offset.as_nanos()).unwrap(),
        }
    }

    pub fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.rng
    }

    pub fn add_full_node(&mut self, config: &MessengerConfig) -> usize {
        let seed = self.rng.next_u64();
        let node = FullNode::new(seed, config, self.now());
        self.nodes.push(Node::Full(Box::new(node)));
        self.online.push(true);
        self.events.push(Vec::new());
        self.heard.push(BTreeSet::new());
        self.originated.push(Vec::new());
        self.carried.push(Vec::new());
        self.carried_set.push(BTreeSet::new());
        self.nodes.len() - 1
    }

    /// A new account and its Messenger.
    pub fn add_messenger(&mut self, config: MessengerConfig) -> (usize, Account) {
        let account = Account::generate(&mut self.rng, WordCount::Twelve, "").unwrap();
        let i = self.add_messenger_for(config, &account, MemoryStorage::new());
        (i, account)
    }

    pub fn add_messenger_for(
        &mut self,
        config: MessengerConfig,
        account: &Account,
        storage: MemoryStorage,
    ) -> usize {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let m = Messenger::new(
            config,
            account,
            storage,
            mvds::MemoryStore::new(),
            seed,
            self.now(),
        )
        .unwrap();
        self.nodes.push(Node::Messenger(Box::new(m)));
        self.online.push(true);
        self.events.push(Vec::new());
        self.heard.push(BTreeSet::new());
        self.originated.push(Vec::new());
        self.carried.push(Vec::new());
        self.carried_set.push(BTreeSet::new());
        self.nodes.len() - 1
    }

    pub fn messenger(&mut self, i: usize) -> &mut Messenger {
        match &mut self.nodes[i] {
            Node::Messenger(m) => m,
            Node::Full(_) => panic!("node {i} is a full node"),
        }
    }

    pub fn messenger_ref(&self, i: usize) -> &Messenger {
        match &self.nodes[i] {
            Node::Messenger(m) => m,
            Node::Full(_) => panic!("node {i} is a full node"),
        }
    }

    pub fn full(&self, i: usize) -> &FullNode {
        match &self.nodes[i] {
            Node::Full(f) => f,
            Node::Messenger(_) => panic!("node {i} is a messenger"),
        }
    }

    /// Runs a command on messenger `i` at the current time, then lets it emit.
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut Messenger, Now) -> R) -> R {
        let now = self.now();
        let r = f(self.messenger(i), now);
        self.flush(i);
        r
    }

    /// Crashes messenger `i` and starts it again from its storage and MVDS store (with a new
    /// seed): its connections drop and come back, everything in flight to or from it is lost.
    pub fn restart(&mut self, i: usize, account: &Account, config: MessengerConfig) {
        self.set_online(i, false);
        let placeholder = Node::Full(Box::new(FullNode::new(0, &config, self.now())));
        let old = std::mem::replace(&mut self.nodes[i], placeholder);
        let Node::Messenger(m) = old else {
            panic!("node {i} is not a messenger")
        };
        let (storage, sync) = m.into_stores();
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let m = Messenger::new(config, account, storage, sync, seed, self.now()).unwrap();
        self.nodes[i] = Node::Messenger(Box::new(m));
        self.set_online(i, true);
    }

    pub fn link(&mut self, a: usize, b: usize) {
        let key = (a.min(b), a.max(b));
        if self.links.insert(key) && self.online[a] && self.online[b] {
            self.open(a, b);
        }
    }

    fn open(&mut self, a: usize, b: usize) {
        let now = self.now();
        let pa = self.nodes[a].machine().protos();
        let pb = self.nodes[b].machine().protos();
        self.nodes[a]
            .machine()
            .connected(now, PeerId(b as u64), &pb);
        self.flush(a);
        self.nodes[b]
            .machine()
            .connected(now, PeerId(a as u64), &pa);
        self.flush(b);
    }

    fn close(&mut self, a: usize, b: usize) {
        let now = self.now();
        self.nodes[a].machine().disconnected(now, PeerId(b as u64));
        self.flush(a);
        self.nodes[b].machine().disconnected(now, PeerId(a as u64));
        self.flush(b);
    }

    pub fn set_loss_everywhere(&mut self, ppm: u32) {
        self.default_loss_ppm = ppm;
    }

    pub fn set_online(&mut self, i: usize, up: bool) {
        if self.online[i] == up {
            return;
        }
        let links: Vec<(usize, usize)> = self
            .links
            .iter()
            .copied()
            .filter(|(a, b)| *a == i || *b == i)
            .collect();
        if !up {
            for (a, b) in &links {
                if self.online[*a] && self.online[*b] {
                    self.close(*a, *b);
                }
            }
            self.online[i] = false;
            let heap = std::mem::take(&mut self.heap);
            self.heap = heap
                .into_iter()
                .filter(|Reverse(f)| f.from != i && f.to != i)
                .collect();
        } else {
            self.online[i] = true;
            for (a, b) in links {
                if self.online[a] && self.online[b] {
                    self.open(a, b);
                }
            }
        }
    }

    /// Drains node `i`'s transmits into the network and its events into `events`.
    fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].machine().transmit() {
            let to = t.to.0 as usize;
            let key = (i.min(to), i.max(to));
            if !self.links.contains(&key)
                || !self.online[i]
                || !self.online.get(to).copied().unwrap_or(false)
            {
                continue;
            }
            // As the drivers do: a stream frame or request only to a node that serves the
            // protocol, a response only from one.
            let server = match t.kind {
                FrameKind::Response(_) => i,
                FrameKind::Stream | FrameKind::Request(_) => to,
            };
            if !self.nodes[server].machine().protos().contains(&t.protocol) {
                self.frames_refused += 1;
                continue;
            }
            self.frames_sent += 1;
            if t.protocol == Protocol::Relay {
                self.sniff(i, &t.bytes, true);
            }
            if t.protocol == Protocol::LightPush && matches!(t.kind, FrameKind::Request(_)) {
                use prost::Message as _;
                if let Ok(req) = proto::waku::LightPushRequest::decode(t.bytes.as_slice())
                    && let Some(w) = req.message
                {
                    self.originated[i].push((self.offset, w.content_topic.clone()));
                }
            }
            let loss = self
                .loss_ppm
                .get(&(i, to))
                .copied()
                .unwrap_or(self.default_loss_ppm);
            if loss > 0 && self.rng.next_u32() % 1_000_000 < loss {
                self.frames_lost += 1;
                continue;
            }
            self.seq += 1;
            let at = self.start + self.offset + self.latency;
            self.heap.push(Reverse(InFlight {
                at,
                seq: self.seq,
                from: i,
                to,
                protocol: t.protocol,
                kind: t.kind.into(),
                bytes: t.bytes,
            }));
        }
        if let Node::Messenger(m) = &mut self.nodes[i] {
            while let Some(e) = m.poll_event() {
                self.events[i].push(e);
            }
        }
        if let Node::Full(f) = &mut self.nodes[i] {
            while f.poll_event().is_some() {}
        }
    }

    fn carry(&mut self, node: usize, data: Vec<u8>) {
        if let Ok(w) = WakuMessage::decode(&data)
            && self.carried_set[node].insert(data)
        {
            self.carried[node].push(w);
        }
    }

    /// Notes the Waku messages in a relay frame: received by `node`, or sent by it (and then
    /// originated by it unless it received them before).
    fn sniff(&mut self, node: usize, frame: &[u8], sent: bool) {
        use prost::Message as _;
        let Ok(rpc) = proto::gossipsub::Rpc::decode(frame) else {
            return;
        };
        for m in rpc.publish {
            let Some(data) = m.data else { continue };
            if !sent {
                self.carry(node, data.clone());
                self.heard[node].insert(data);
            } else if !self.heard[node].contains(&data) {
                self.heard[node].insert(data.clone());
                if let Ok(w) = WakuMessage::decode(&data) {
                    self.originated[node].push((self.offset, w.content_topic.as_str().to_owned()));
                }
            }
        }
    }

    /// Runs the next input (a delivery or a timeout). Returns false if nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let next_frame = self.heap.peek().map(|Reverse(f)| f.at);
        let mut next_timer: Option<(Instant, usize)> = None;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if !self.online[i] {
                continue;
            }
            if let Some(t) = n.machine().next_timeout()
                && next_timer.is_none_or(|(best, _)| t < best)
            {
                next_timer = Some((t, i));
            }
        }
        let now_instant = self.start + self.offset;
        match (next_frame, next_timer) {
            (Some(f), timer) if timer.is_none_or(|(t, _)| f <= t) => {
                let Reverse(frame) = self.heap.pop().unwrap();
                if frame.at > now_instant {
                    self.offset = frame.at - self.start;
                }
                let now = self.now();
                let to = frame.to;
                if self.online[to] {
                    if frame.protocol == Protocol::Relay {
                        self.sniff(to, &frame.bytes, false);
                    }
                    if frame.protocol == Protocol::LightPush {
                        use prost::Message as _;
                        if let Ok(req) =
                            proto::waku::LightPushRequest::decode(frame.bytes.as_slice())
                            && let Some(w) = req.message
                        {
                            self.carry(to, w.encode_to_vec());
                        }
                    }
                    self.nodes[to].machine().frame(
                        now,
                        PeerId(frame.from as u64),
                        frame.protocol,
                        frame.kind.into(),
                        &frame.bytes,
                    );
                    self.flush(to);
                }
                true
            }
            (_, Some((t, i))) => {
                if t > now_instant {
                    self.offset = t - self.start;
                }
                let now = self.now();
                self.nodes[i].machine().timeout(now);
                self.flush(i);
                true
            }
            _ => false,
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.offset + d;
        loop {
            let next_frame = self.heap.peek().map(|Reverse(f)| f.at - self.start);
            let next_timer = self
                .nodes
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| self.online[*i])
                .filter_map(|(_, n)| n.machine().next_timeout())
                .min()
                .map(|t| t.saturating_duration_since(self.start));
            let next = [next_frame, next_timer].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => break,
            }
        }
        self.offset = end;
    }

    /// Runs until `done` holds, checking every virtual second, for at most `limit`. Returns
    /// whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Net) -> bool) -> bool {
        let end = self.offset + limit;
        while self.offset < end {
            if done(self) {
                return true;
            }
            self.run_for(Duration::from_secs(1));
        }
        done(self)
    }

    pub fn elapsed(&self) -> Duration {
        self.offset
    }
}
