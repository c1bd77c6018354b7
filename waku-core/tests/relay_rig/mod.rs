//! A virtual-clock network of relays for the relay tests: frames in flight sit in a heap ordered
//! by (delivery time, sequence number); per-link latency with FIFO links, optional loss,
//! duplication and reordering; one seeded RNG. `run_until` jumps from one delivery or timeout to
//! the next.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code,
    missing_docs,
    unreachable_pub
)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use waku_core::message::WakuMessage;
use waku_core::net::{Now, PeerId, Protocol};
use waku_core::relay::{MessageId, Relay, RelayConfig, RelayEvent};
use waku_core::topic::{ContentTopic, PubsubTopic};

/// The wall clock at virtual time zero, Unix nanoseconds.
pub const WALL0: i64 = 1_700_000_000_000_000_000;

/// One real instant to count virtual time from.
pub fn base_instant() -> Instant {
    // Tests need one real Instant to start from; only differences matter afterwards.
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

pub fn topic() -> PubsubTopic {
    PubsubTopic::static_shard(1, 0).unwrap()
}

/// A 1 KiB-ish Waku message with a unique payload, timestamped `wall`.
pub fn message(n: u64, wall: i64, size: usize) -> WakuMessage {
    let mut payload = n.to_le_bytes().to_vec();
    payload.resize(size.max(8), 0xab);
    WakuMessage::new(ContentTopic::new("/test/1/relay/proto").unwrap(), payload)
        .with_timestamp(wall)
}

/// How links misbehave.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkFaults {
    /// Chance a frame is lost.
    pub loss: f64,
    /// Chance a frame is delivered twice.
    pub duplicate: f64,
    /// Whether frames on one link may overtake each other.
    pub reorder: bool,
}

pub struct Node {
    pub relay: Relay,
    /// Message events: id → how many times delivered.
    pub received: BTreeMap<MessageId, u32>,
    pub graylisted: Vec<PeerId>,
    /// Drops every message it would send (forwards and IWANT answers), keeps the rest.
    pub dropper: bool,
}

/// A frame in flight: (delivery time, sequence number, from, to, bytes).
type InFlight = (Duration, u64, usize, usize, Vec<u8>);

pub struct Net {
    pub base: Instant,
    pub now: Duration,
    pub nodes: Vec<Node>,
    pub links: BTreeSet<(usize, usize)>,
    pub rng: ChaCha20Rng,
    pub faults: LinkFaults,
    pub min_latency_ms: u64,
    pub max_latency_ms: u64,
    heap: BinaryHeap<Reverse<InFlight>>,
    link_clear: BTreeMap<(usize, usize), Duration>,
    seq: u64,
    pub frames_delivered: u64,
    pub max_transmit: usize,
}

impl Net {
    /// `n` relays created at staggered instants within the first second (so heartbeats are not
    /// in lockstep); the network clock starts at 1 s.
    pub fn new(n: usize, config: RelayConfig, seed: u64) -> Net {
        let base = base_instant();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let nodes = (0..n)
            .map(|_| {
                let mut s = [0u8; 32];
                rng.fill_bytes(&mut s);
                let created = base + Duration::from_millis(rng.next_u64() % 1000);
                Node {
                    relay: Relay::new(config.clone(), s, created),
                    received: BTreeMap::new(),
                    graylisted: Vec::new(),
                    dropper: false,
                }
            })
            .collect();
        Net {
            base,
            now: Duration::from_secs(1),
            nodes,
            links: BTreeSet::new(),
            rng,
            faults: LinkFaults::default(),
            min_latency_ms: 5,
            max_latency_ms: 40,
            heap: BinaryHeap::new(),
            link_clear: BTreeMap::new(),
            seq: 0,
            frames_delivered: 0,
            max_transmit: 0,
        }
    }

    pub fn clock(&self) -> Now {
        Now {
            instant: self.base + self.now,
            unix_nanos: WALL0 + self.now.as_nanos() as i64,
        }
    }

    /// Node `a` dials node `b`. Node j is `PeerId(j)` to every other node.
    pub fn connect(&mut self, a: usize, b: usize) {
        if a == b || self.links.contains(&(a.min(b), a.max(b))) {
            return;
        }
        self.links.insert((a.min(b), a.max(b)));
        let now = self.clock();
        self.nodes[a]
            .relay
            .handle_dialed(now, PeerId(b as u64), &[Protocol::Relay]);
        self.nodes[b]
            .relay
            .handle_connected(now, PeerId(a as u64), &[Protocol::Relay]);
        self.flush(a);
        self.flush(b);
    }

    /// Each node dials `k` random others: a random graph of mean degree about `2k`.
    pub fn random_graph(&mut self, k: usize) {
        let n = self.nodes.len();
        for a in 0..n {
            let mut made = 0;
            let mut tries = 0;
            while made < k && tries < 100 {
                tries += 1;
                let b = (self.rng.next_u64() % n as u64) as usize;
                if b != a && !self.links.contains(&(a.min(b), a.max(b))) {
                    self.connect(a, b);
                    made += 1;
                }
            }
        }
    }

    pub fn neighbours(&self, a: usize) -> Vec<usize> {
        self.links
            .iter()
            .filter_map(|&(x, y)| {
                if x == a {
                    Some(y)
                } else if y == a {
                    Some(x)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Whether the nodes in `members` are connected using only links between members.
    pub fn connected_within(&self, members: &BTreeSet<usize>) -> bool {
        let Some(&start) = members.iter().next() else {
            return true;
        };
        let mut seen = BTreeSet::from([start]);
        let mut stack = vec![start];
        while let Some(a) = stack.pop() {
            for b in self.neighbours(a) {
                if members.contains(&b) && seen.insert(b) {
                    stack.push(b);
                }
            }
        }
        seen.len() == members.len()
    }

    pub fn subscribe_all(&mut self) {
        let t = topic();
        for i in 0..self.nodes.len() {
            let now = self.clock();
            self.nodes[i].relay.subscribe(now, &t).unwrap();
            self.flush(i);
        }
    }

    /// Drains node `i`'s outputs into the network.
    pub fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].relay.poll_transmit() {
            assert_eq!(t.protocol, Protocol::Relay);
            self.max_transmit = self.max_transmit.max(t.bytes.len());
            assert!(t.bytes.len() <= self.nodes[i].relay.config().max_rpc_size);
            let to = t.to.0 as usize;
            let mut bytes = t.bytes;
            if self.nodes[i].dropper {
                let mut rpc = proto::gossipsub::Rpc::decode(bytes.as_slice()).unwrap();
                if rpc.publish.is_empty() {
                    // Nothing to drop.
                } else {
                    rpc.publish.clear();
                    if rpc.subscriptions.is_empty() && rpc.control.is_none() {
                        continue;
                    }
                    bytes = rpc.encode_to_vec();
                }
            }
            if self.faults.loss > 0.0 && self.chance(self.faults.loss) {
                continue;
            }
            let copies = if self.faults.duplicate > 0.0 && self.chance(self.faults.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let spread = self.max_latency_ms - self.min_latency_ms + 1;
                let latency =
                    Duration::from_millis(self.min_latency_ms + self.rng.next_u64() % spread);
                let mut at = self.now + latency;
                if !self.faults.reorder {
                    let clear = self.link_clear.entry((i, to)).or_default();
                    at = at.max(*clear);
                    *clear = at;
                }
                self.seq += 1;
                self.heap
                    .push(Reverse((at, self.seq, i, to, bytes.clone())));
            }
        }
        while let Some(e) = self.nodes[i].relay.poll_event() {
            match e {
                RelayEvent::Message { id, .. } => {
                    *self.nodes[i].received.entry(id).or_insert(0) += 1;
                }
                RelayEvent::PeerGraylisted { peer, .. } => self.nodes[i].graylisted.push(peer),
                _ => {}
            }
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    /// Runs deliveries and timeouts in time order up to `until` (virtual time).
    pub fn run_until(&mut self, until: Duration) {
        loop {
            let next_frame = self.heap.peek().map(|Reverse((at, ..))| *at);
            let mut next_timer: Option<(Duration, usize)> = None;
            for (i, n) in self.nodes.iter().enumerate() {
                if let Some(t) = n.relay.poll_timeout() {
                    let d = t.saturating_duration_since(self.base);
                    if next_timer.is_none_or(|(best, _)| d < best) {
                        next_timer = Some((d, i));
                    }
                }
            }
            let frame_first = match (next_frame, next_timer) {
                (Some(f), Some((t, _))) => f <= t,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if frame_first {
                let Reverse((at, _, from, to, bytes)) = self.heap.peek().cloned().unwrap();
                if at > until {
                    break;
                }
                self.heap.pop();
                self.now = self.now.max(at);
                let now = self.clock();
                self.frames_delivered += 1;
                self.nodes[to]
                    .relay
                    .handle_frame(now, PeerId(from as u64), &bytes);
                self.flush(to);
            } else {
                let (at, i) = next_timer.unwrap();
                if at > until {
                    break;
                }
                self.now = self.now.max(at);
                let now = self.clock();
                self.nodes[i].relay.handle_timeout(now);
                self.flush(i);
            }
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Node `i` publishes message number `n` of `size` bytes now.
    pub fn publish(&mut self, i: usize, n: u64, size: usize) -> MessageId {
        let now = self.clock();
        let m = message(n, now.unix_nanos, size);
        let id = self.nodes[i].relay.publish(now, &topic(), &m).unwrap();
        self.flush(i);
        id
    }

    /// Injects a frame into node `to` as if `from` had sent it now.
    pub fn inject(&mut self, from: usize, to: usize, frame: &[u8]) {
        let now = self.clock();
        self.nodes[to]
            .relay
            .handle_frame(now, PeerId(from as u64), frame);
        self.flush(to);
    }
}
