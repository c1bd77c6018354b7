//! A deterministic simulated network: any number of [`Machine`]s on a virtual clock.
//!
//! [`Sim`] owns the machines, the links between them and one seeded RNG. Frames a machine emits
//! with [`Machine::poll_transmit`] are given a fate when they are sent (lost, delivered once, or
//! delivered twice) and a delivery time from the link's latency, jitter and reordering, then wait
//! in a heap ordered by `(deliver_at, seq)`. [`Sim::step`] jumps the clock to whichever comes
//! first, the next delivery or the earliest timeout a node asked for, and runs exactly that
//! input. Nothing reads the real clock or the OS RNG, so the same seed and the same calls give the
//! same run, byte for byte ([`Sim::trace_digest`] hashes every step).
//!
//! # The model
//!
//! - **Links** are configured per pair of nodes ([`Sim::connect`]) with a [`LinkConfig`] per
//!   direction. A link carries a *connection* while both ends are up: each end gets a fresh
//!   [`PeerId`] for the other and [`Machine::handle_connected`] with the protocols the *other*
//!   end serves ([`Machine::protocols`]), as the TCP driver's Hello and libp2p's identify do.
//! - **Who serves what.** As in libp2p, a client opens a protocol the remote serves: a
//!   [`FrameKind::Stream`] or [`FrameKind::Request`] frame on protocol `P` is carried only if its
//!   receiver lists `P`, a [`FrameKind::Response`] only if its sender lists `P` (the server
//!   answers). Anything else is dropped ([`DropReason::Unsupported`]). So a light node lists
//!   only what it serves (metadata, filter pushes it receives) and still queries a store,
//!   lightpushes and subscribes through the peers that list those protocols. The simulated
//!   network never refuses a connection; the TCP driver's useless-peer rule is its own.
//! - **Order.** Without reordering a link is FIFO in each direction, like the streams of the real
//!   transports: jitter never lets a frame overtake an earlier one. A frame picked for reordering
//!   (probability [`LinkConfig::reorder`]) gets up to [`LinkConfig::reorder_delay`] extra and may
//!   be overtaken.
//! - **Partitions** ([`Sim::partition`], [`Sim::heal`]) silence links without closing them, like a
//!   black hole in the network: a frame is dropped if its ends are on different sides when it is
//!   sent or when it would arrive.
//! - **Crashes** ([`Sim::crash`]) take a node's machine out, close its connections (the peers get
//!   [`Machine::handle_disconnected`]) and drop every frame in flight to or from it.
//!   [`Sim::restart`] builds a new machine with a caller's factory (from whatever state the caller
//!   kept) and reconnects the node's links.
//! - **Time.** Each node sees [`Now`] with the virtual instant and a virtual Unix clock (plus an
//!   optional per-node skew, [`Sim::set_clock_skew`]). Machines must only use differences of
//!   instants; the base instant is arbitrary.
//!
//! Every frame ends in exactly one fate, so at any moment
//! `sent + duplicates == delivered + lost + dropped + in_flight` ([`NetStats::is_conserved`]).
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use transports::memory::{LinkConfig, Sim, SimConfig};
//! use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
//!
//! /// Answers every relay frame with the same bytes, once.
//! #[derive(Default)]
//! struct Echo { out: Vec<Transmit>, heard: Vec<Vec<u8>> }
//!
//! impl Machine for Echo {
//!     type Event = Vec<u8>;
//!     fn handle_connected(&mut self, _: Now, _: PeerId, _: &[Protocol]) {}
//!     fn handle_disconnected(&mut self, _: Now, _: PeerId) {}
//!     fn handle_frame(&mut self, _: Now, from: PeerId, p: Protocol, k: FrameKind, f: &[u8]) {
//!         self.heard.push(f.to_vec());
//!         if f.first() == Some(&b'?') {
//!             self.out.push(Transmit { to: from, protocol: p, kind: k, bytes: b"!".to_vec() });
//!         }
//!     }
//!     fn handle_timeout(&mut self, _: Now) {}
//!     fn poll_transmit(&mut self) -> Option<Transmit> { self.out.pop() }
//!     fn poll_event(&mut self) -> Option<Vec<u8>> { self.heard.pop() }
//!     fn poll_timeout(&self) -> Option<Instant> { None }
//!     fn protocols(&self) -> Vec<Protocol> { vec![Protocol::Relay] }
//! }
//!
//! # fn main() -> Result<(), transports::memory::SimError> {
//! let mut sim = Sim::new(SimConfig { seed: 7, ..SimConfig::default() })?;
//! let a = sim.add_node(|_now| Echo::default())?;
//! let b = sim.add_node(|_now| Echo::default())?;
//! sim.connect_with(a, b, LinkConfig::new(Duration::from_millis(30)))?;
//!
//! // A command: run a closure on the machine at the current virtual time, then drain it.
//! let to_b = sim.peer_id(a, b).expect("connected");
//! sim.with_node(a, |m, _now| {
//!     m.out.push(Transmit { to: to_b, protocol: Protocol::Relay, kind: FrameKind::Stream, bytes: b"?".to_vec() });
//! })?;
//!
//! // The driver loop: deliveries and timeouts in virtual-time order until nothing is left.
//! sim.run_until_quiet(1_000)?;
//! assert_eq!(sim.elapsed(), Duration::from_millis(60)); // there and back
//! assert_eq!(sim.take_events(a).len(), 1);
//! assert!(sim.stats().is_conserved(sim.in_flight()));
//! # Ok(()) }
//! ```

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};

/// A node of the simulated network, numbered in the order [`Sim::add_node`] created them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node#{}", self.0)
    }
}

/// Default one-way latency of a link: a typical wide-area hop.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(20);

/// Default bound of [`SimConfig::max_wakeups_per_instant`]: a machine with several timers due at
/// one instant handles them in one `handle_timeout`, so asking again and again is a busy loop.
pub const DEFAULT_MAX_WAKEUPS_PER_INSTANT: u32 = 64;

/// Default bound of [`SimConfig::max_steps_per_instant`]: a zero-latency ping-pong would otherwise
/// spin forever without the clock moving.
pub const DEFAULT_MAX_STEPS_PER_INSTANT: u64 = 1_000_000;

/// Default bound of [`SimConfig::max_outputs_per_input`]: far above what a bounded machine queues
/// for one input, low enough to stop a machine whose `poll_transmit` never returns `None`.
pub const DEFAULT_MAX_OUTPUTS_PER_INPUT: usize = 1_000_000;

/// Default bound of [`SimConfig::max_events_per_node`]: events kept for a test to inspect; the
/// oldest are dropped (and counted) past it so a long run cannot grow without bound.
pub const DEFAULT_MAX_EVENTS_PER_NODE: usize = 100_000;

/// The Unix time (nanoseconds) at which a simulation starts by default: 2024-01-01T00:00:00Z.
pub const DEFAULT_START_UNIX_NANOS: i64 = 1_704_067_200_000_000_000;

/// How one direction of a link treats frames.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Fixed one-way delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` per frame (order kept, see the module docs).
    pub jitter: Duration,
    /// Probability in `[0, 1]` that a frame is lost.
    pub loss: f64,
    /// Probability in `[0, 1]` that a frame that is not lost arrives twice.
    pub duplicate: f64,
    /// Probability in `[0, 1]` that a frame leaves the FIFO order and gets extra delay.
    pub reorder: f64,
    /// The extra delay of a reordered frame is drawn uniformly from `[0, reorder_delay]`.
    pub reorder_delay: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig::new(DEFAULT_LATENCY)
    }
}

impl LinkConfig {
    /// A perfect link with this one-way latency: no jitter, loss, duplication or reordering.
    pub const fn new(latency: Duration) -> Self {
        LinkConfig {
            latency,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
        }
    }

    /// The same link with this jitter.
    pub const fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// The same link with this loss probability.
    pub const fn with_loss(mut self, loss: f64) -> Self {
        self.loss = loss;
        self
    }

    /// The same link with this duplication probability.
    pub const fn with_duplicate(mut self, duplicate: f64) -> Self {
        self.duplicate = duplicate;
        self
    }

    /// The same link with this reordering probability and extra delay bound.
    pub const fn with_reorder(mut self, reorder: f64, reorder_delay: Duration) -> Self {
        self.reorder = reorder;
        self.reorder_delay = reorder_delay;
        self
    }

    /// Checks that every probability is a number in `[0, 1]`.
    pub fn validate(&self) -> Result<(), SimError> {
        for (name, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(SimError::InvalidProbability { name, value: p });
            }
        }
        Ok(())
    }
}

/// Settings of a simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of the one RNG that decides every fate and delay.
    pub seed: u64,
    /// Unix time in nanoseconds at virtual time zero.
    pub start_unix_nanos: i64,
    /// The link used by [`Sim::connect`].
    pub default_link: LinkConfig,
    /// A node that asks to be woken at the same instant more often than this, with no time
    /// passing, fails the run with [`SimError::StuckTimer`].
    pub max_wakeups_per_instant: u32,
    /// More steps than this at one virtual instant fail the run with [`SimError::Stalled`].
    pub max_steps_per_instant: u64,
    /// More transmits or events than this from one input fail the run with
    /// [`SimError::OutputFlood`].
    pub max_outputs_per_input: usize,
    /// Events kept per node; past it the oldest are dropped and counted.
    pub max_events_per_node: usize,
    /// Trace records kept for [`Sim::trace`] (0 keeps none; the digest covers all of them).
    pub trace_capacity: usize,
    /// Whether [`Sim::trace_digest`] is maintained (hashing costs time in very large runs).
    pub digest: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            start_unix_nanos: DEFAULT_START_UNIX_NANOS,
            default_link: LinkConfig::default(),
            max_wakeups_per_instant: DEFAULT_MAX_WAKEUPS_PER_INSTANT,
            max_steps_per_instant: DEFAULT_MAX_STEPS_PER_INSTANT,
            max_outputs_per_input: DEFAULT_MAX_OUTPUTS_PER_INPUT,
            max_events_per_node: DEFAULT_MAX_EVENTS_PER_NODE,
            trace_capacity: 0,
            digest: true,
        }
    }
}

/// Why a simulation call failed.
///
/// Caller mistakes (`UnknownNode` … `InvalidProbability`) leave the simulation unchanged. The
/// detectors (`StuckTimer`, `Stalled`, `OutputFlood`, `NotQuiet`) report a machine or a scenario
/// that does not settle; the simulation stays consistent and can be inspected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// No node has this id.
    #[error("{0} does not exist")]
    UnknownNode(NodeId),
    /// The node is crashed; restart it first.
    #[error("{0} is down")]
    NodeDown(NodeId),
    /// The node is running; crash it before restarting it.
    #[error("{0} is already up")]
    NodeUp(NodeId),
    /// A node cannot link to itself.
    #[error("{0} cannot be linked to itself")]
    SelfLink(NodeId),
    /// The two nodes are already linked.
    #[error("{0} and {1} are already linked")]
    AlreadyLinked(NodeId, NodeId),
    /// The two nodes are not linked.
    #[error("{0} and {1} are not linked")]
    NotLinked(NodeId, NodeId),
    /// A link probability is outside `[0, 1]`.
    #[error("link probability {name} = {value} is outside [0, 1]")]
    InvalidProbability {
        /// Which field.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// The node asked to be woken at the same instant more than
    /// [`SimConfig::max_wakeups_per_instant`] times in a row without time moving.
    #[error("{node} asked to be woken at {at:?} {wakeups} times in a row")]
    StuckTimer {
        /// The node.
        node: NodeId,
        /// The virtual time (since the start).
        at: Duration,
        /// How many times in a row.
        wakeups: u32,
    },
    /// More than [`SimConfig::max_steps_per_instant`] steps ran at one virtual instant.
    #[error("{steps} steps at virtual time {at:?} without the clock moving")]
    Stalled {
        /// The virtual time.
        at: Duration,
        /// The steps taken at it.
        steps: u64,
    },
    /// One input made the node emit more than [`SimConfig::max_outputs_per_input`] outputs.
    #[error("{0} emitted more outputs for one input than allowed")]
    OutputFlood(NodeId),
    /// [`Sim::run_until_quiet`] used its step budget with work still pending.
    #[error("still busy after {steps} steps ({in_flight} frames in flight)")]
    NotQuiet {
        /// Steps taken.
        steps: u64,
        /// Frames still in flight.
        in_flight: usize,
    },
}

/// Why the network dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The sender used a [`PeerId`] it has no connection for.
    Unroutable,
    /// The side that serves the frame's protocol (receiver of a stream frame or request,
    /// sender of a response) does not list it.
    Unsupported,
    /// The frame is longer than [`Protocol::max_frame_len`].
    Oversized,
    /// The ends were on different sides of a partition.
    Partition,
    /// The connection closed (disconnect or crash) while the frame was in flight.
    Disconnected,
}

/// One thing that happened in a simulation, for [`Sim::trace`]. Times are virtual, since the
/// start; `seq` numbers every copy of every frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceRecord {
    /// A connection came up on a link; `a` is the lower node.
    Connected {
        /// When.
        at: Duration,
        /// Lower node.
        a: NodeId,
        /// Higher node.
        b: NodeId,
        /// `a`'s handle for `b`.
        a_sees_b: PeerId,
        /// `b`'s handle for `a`.
        b_sees_a: PeerId,
    },
    /// A connection closed.
    Disconnected {
        /// When.
        at: Duration,
        /// Lower node.
        a: NodeId,
        /// Higher node.
        b: NodeId,
    },
    /// A machine emitted a frame (copy `seq`); `to` is `None` if it named no connected peer.
    Sent {
        /// When.
        at: Duration,
        /// Sequence number of this copy.
        seq: u64,
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: Option<NodeId>,
        /// Protocol.
        protocol: Protocol,
        /// Frame kind.
        kind: FrameKind,
        /// Body length.
        len: usize,
    },
    /// Frame `seq` will arrive twice; the second copy is `copy`.
    Duplicated {
        /// When.
        at: Duration,
        /// The original.
        seq: u64,
        /// The extra copy.
        copy: u64,
    },
    /// Copy `seq` was lost by the link.
    Lost {
        /// When.
        at: Duration,
        /// Which copy.
        seq: u64,
    },
    /// Copy `seq` was dropped by the network.
    Dropped {
        /// When.
        at: Duration,
        /// Which copy.
        seq: u64,
        /// Why.
        reason: DropReason,
    },
    /// Copy `seq` was handed to its receiver.
    Delivered {
        /// When.
        at: Duration,
        /// Which copy.
        seq: u64,
        /// Receiver.
        to: NodeId,
    },
    /// A node's timeout fired.
    Timeout {
        /// When.
        at: Duration,
        /// Which node.
        node: NodeId,
    },
    /// A node crashed.
    Crashed {
        /// When.
        at: Duration,
        /// Which node.
        node: NodeId,
    },
    /// A node was started (by [`Sim::add_node`] or [`Sim::restart`]).
    Started {
        /// When.
        at: Duration,
        /// Which node.
        node: NodeId,
    },
    /// A partition was added ([`Sim::partition`]) or removed ([`Sim::heal`], empty `island`).
    Partition {
        /// When.
        at: Duration,
        /// The nodes cut off from the rest.
        island: Vec<NodeId>,
    },
}

/// Totals over the whole network. Every frame copy ends in exactly one of `delivered`, `lost`
/// or one of the `dropped_*` counters, or is still in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames machines emitted.
    pub frames_sent: u64,
    /// Their body bytes.
    pub bytes_sent: u64,
    /// Extra copies made by duplication.
    pub duplicates: u64,
    /// Copies handed to a receiver.
    pub delivered: u64,
    /// Their body bytes.
    pub bytes_delivered: u64,
    /// Copies lost by a link.
    pub lost: u64,
    /// Dropped: no connection for the peer handle.
    pub dropped_unroutable: u64,
    /// Dropped: the side that would serve the protocol does not list it.
    pub dropped_unsupported: u64,
    /// Dropped: longer than the protocol allows.
    pub dropped_oversized: u64,
    /// Dropped: partition.
    pub dropped_partition: u64,
    /// Dropped: connection closed while in flight.
    pub dropped_disconnected: u64,
    /// Timeouts fired.
    pub timeouts: u64,
    /// Steps taken.
    pub steps: u64,
}

impl NetStats {
    /// All drops together.
    pub const fn dropped(&self) -> u64 {
        self.dropped_unroutable
            + self.dropped_unsupported
            + self.dropped_oversized
            + self.dropped_partition
            + self.dropped_disconnected
    }

    /// Whether every copy is accounted for, given the number still in flight.
    pub const fn is_conserved(&self, in_flight: usize) -> bool {
        self.frames_sent + self.duplicates
            == self.delivered + self.lost + self.dropped() + in_flight as u64
    }

    fn count_drop(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::Unroutable => &mut self.dropped_unroutable,
            DropReason::Unsupported => &mut self.dropped_unsupported,
            DropReason::Oversized => &mut self.dropped_oversized,
            DropReason::Partition => &mut self.dropped_partition,
            DropReason::Disconnected => &mut self.dropped_disconnected,
        };
        *c += 1;
    }
}

/// Counters of one direction of a link (kept when the link is removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames sent into this direction.
    pub frames_sent: u64,
    /// Their body bytes.
    pub bytes_sent: u64,
    /// Copies delivered at the far end.
    pub delivered: u64,
    /// Their body bytes.
    pub bytes_delivered: u64,
    /// Copies lost.
    pub lost: u64,
    /// Extra copies made.
    pub duplicates: u64,
    /// Copies dropped (partition, unsupported, oversized, disconnect).
    pub dropped: u64,
}

/// Counters of one node (kept across crashes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Frames the node emitted.
    pub frames_sent: u64,
    /// Their body bytes.
    pub bytes_sent: u64,
    /// Frames delivered to the node.
    pub frames_received: u64,
    /// Their body bytes.
    pub bytes_received: u64,
    /// Timeouts fired.
    pub timeouts: u64,
    /// Events the node emitted.
    pub events: u64,
    /// Events dropped because [`SimConfig::max_events_per_node`] were waiting.
    pub events_dropped: u64,
}

/// An event a node emitted, with the virtual time it was drained at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded<E> {
    /// Virtual time since the start.
    pub at: Duration,
    /// The event.
    pub event: E,
}

struct Node<M: Machine> {
    machine: Option<M>,
    /// Live connections: this node's handle for the peer, and the peer.
    peers: BTreeMap<PeerId, NodeId>,
    /// Configured links (whether or not connected).
    links: BTreeSet<NodeId>,
    next_peer: u64,
    /// The registered timeout and its generation in the timer heap.
    timer: Option<Duration>,
    timer_gen: u64,
    /// The stuck-timer detector: last instant woken and how many times in a row.
    woke_at: Option<Duration>,
    wakeups: u32,
    skew_nanos: i64,
    group: u32,
    events: VecDeque<Recorded<M::Event>>,
    stats: NodeStats,
}

struct Connection {
    id: u64,
    /// The lower node's handle for the higher one, and the reverse.
    lo_sees_hi: PeerId,
    hi_sees_lo: PeerId,
    /// What each end serves (its [`Machine::protocols`] when the connection came up): index 0
    /// the lower node, 1 the higher one.
    serves: [Vec<Protocol>; 2],
}

struct Link {
    /// Index 0: lower to higher node; 1: higher to lower.
    config: [LinkConfig; 2],
    stats: [LinkStats; 2],
    /// Latest delivery time scheduled in FIFO order, per direction.
    fifo: [Duration; 2],
    conn: Option<Connection>,
}

struct InFlight {
    at: Duration,
    seq: u64,
    from: NodeId,
    to: NodeId,
    conn: u64,
    /// The receiver's handle for the sender.
    from_handle: PeerId,
    protocol: Protocol,
    kind: FrameKind,
    bytes: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The simulated network. See the [module docs](self).
pub struct Sim<M: Machine> {
    config: SimConfig,
    base: Instant,
    now: Duration,
    rng: ChaCha20Rng,
    nodes: Vec<Node<M>>,
    links: BTreeMap<(NodeId, NodeId), Link>,
    frames: BinaryHeap<Reverse<InFlight>>,
    timers: BinaryHeap<Reverse<(Duration, NodeId, u64)>>,
    next_seq: u64,
    next_conn: u64,
    next_group: u32,
    steps_at_now: u64,
    stats: NetStats,
    trace: Vec<TraceRecord>,
    digest: Sha256,
}

impl<M: Machine> fmt::Debug for Sim<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("links", &self.links.len())
            .field("in_flight", &self.frames.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<M: Machine> Sim<M> {
    /// A simulation with no nodes, at virtual time zero. The base [`Instant`] is read once from
    /// the real clock; machines only ever see it plus virtual offsets.
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        // The one read of the real clock: an arbitrary origin for the virtual instants.
        #[allow(clippy::disallowed_methods)]
        let base = Instant::now();
        Sim::with_base(config, base)
    }

    /// A simulation whose virtual time zero is `base`.
    pub fn with_base(config: SimConfig, base: Instant) -> Result<Self, SimError> {
        config.default_link.validate()?;
        Ok(Sim {
            rng: ChaCha20Rng::seed_from_u64(config.seed),
            config,
            base,
            now: Duration::ZERO,
            nodes: Vec::new(),
            links: BTreeMap::new(),
            frames: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            next_seq: 0,
            next_conn: 0,
            next_group: 1,
            steps_at_now: 0,
            stats: NetStats::default(),
            trace: Vec::new(),
            digest: Sha256::new(),
        })
    }

    /// The settings.
    pub const fn config(&self) -> &SimConfig {
        &self.config
    }

    // ---- nodes ---------------------------------------------------------------------------

    /// Starts a new node with the machine `make` builds, and returns its id.
    pub fn add_node(&mut self, make: impl FnOnce(Now) -> M) -> Result<NodeId, SimError> {
        let id = NodeId(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX));
        self.nodes.push(Node {
            machine: None,
            peers: BTreeMap::new(),
            links: BTreeSet::new(),
            next_peer: 1,
            timer: None,
            timer_gen: 0,
            woke_at: None,
            wakeups: 0,
            skew_nanos: 0,
            group: 0,
            events: VecDeque::new(),
            stats: NodeStats::default(),
        });
        self.start(id, make)?;
        Ok(id)
    }

    /// How many nodes exist (up or down).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Every node id, in order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len()).map(|i| NodeId(u32::try_from(i).unwrap_or(u32::MAX)))
    }

    /// The node's machine, if the node exists and is up.
    pub fn node(&self, id: NodeId) -> Option<&M> {
        self.nodes.get(id.0 as usize)?.machine.as_ref()
    }

    /// Whether the node exists and is up.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }

    /// Runs a command on the node's machine at the current virtual time (the node's skewed
    /// [`Now`]), then drains its outputs into the network.
    pub fn with_node<R>(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut M, Now) -> R,
    ) -> Result<R, SimError> {
        let now = self.node_now(id)?;
        let m = self.machine_mut(id)?;
        let r = f(m, now);
        self.drain(id)?;
        Ok(r)
    }

    /// Crashes the node: its connections close (peers get `handle_disconnected`), frames in
    /// flight to or from it are dropped, and its machine is handed back so the caller can keep
    /// whatever a real node would have persisted. Its links stay configured for a restart.
    pub fn crash(&mut self, id: NodeId) -> Result<M, SimError> {
        let node = self.node_mut(id)?;
        let machine = node.machine.take().ok_or(SimError::NodeDown(id))?;
        node.timer = None;
        node.timer_gen += 1;
        node.woke_at = None;
        node.wakeups = 0;
        let peers: Vec<NodeId> = node.links.iter().copied().collect();
        let at = self.now;
        self.record(TraceRecord::Crashed { at, node: id }, &[]);
        for peer in peers {
            self.close(id, peer)?;
        }
        Ok(machine)
    }

    /// Restarts a crashed node with the machine `make` builds (typically from state the caller
    /// kept), and reconnects its links to the nodes that are up.
    pub fn restart(&mut self, id: NodeId, make: impl FnOnce(Now) -> M) -> Result<(), SimError> {
        if self.node_ref(id)?.machine.is_some() {
            return Err(SimError::NodeUp(id));
        }
        self.start(id, make)?;
        let peers: Vec<NodeId> = self.node_ref(id)?.links.iter().copied().collect();
        for peer in peers {
            if self.is_up(peer) {
                self.open(id, peer)?;
            }
        }
        Ok(())
    }

    /// Shifts the node's wall clock (the `unix_nanos` it sees) by `skew_nanos`.
    pub fn set_clock_skew(&mut self, id: NodeId, skew_nanos: i64) -> Result<(), SimError> {
        self.node_mut(id)?.skew_nanos = skew_nanos;
        Ok(())
    }

    // ---- links ---------------------------------------------------------------------------

    /// Links two nodes with [`SimConfig::default_link`] in both directions; if both are up, a
    /// connection comes up at once.
    pub fn connect(&mut self, a: NodeId, b: NodeId) -> Result<(), SimError> {
        let cfg = self.config.default_link.clone();
        self.connect_with(a, b, cfg)
    }

    /// Links two nodes with `config` in both directions.
    pub fn connect_with(
        &mut self,
        a: NodeId,
        b: NodeId,
        config: LinkConfig,
    ) -> Result<(), SimError> {
        config.validate()?;
        self.node_ref(a)?;
        self.node_ref(b)?;
        if a == b {
            return Err(SimError::SelfLink(a));
        }
        let key = link_key(a, b);
        if self.links.contains_key(&key) {
            return Err(SimError::AlreadyLinked(a, b));
        }
        self.links.insert(
            key,
            Link {
                config: [config.clone(), config],
                stats: [LinkStats::default(), LinkStats::default()],
                fifo: [Duration::ZERO; 2],
                conn: None,
            },
        );
        self.node_mut(a)?.links.insert(b);
        self.node_mut(b)?.links.insert(a);
        if self.is_up(a) && self.is_up(b) {
            self.open(a, b)?;
        }
        Ok(())
    }

    /// Changes both directions of an existing link (frames in flight keep their times).
    pub fn set_link(&mut self, a: NodeId, b: NodeId, config: LinkConfig) -> Result<(), SimError> {
        self.set_link_directed(a, b, config.clone())?;
        self.set_link_directed(b, a, config)
    }

    /// Changes the direction `from` → `to` of an existing link.
    pub fn set_link_directed(
        &mut self,
        from: NodeId,
        to: NodeId,
        config: LinkConfig,
    ) -> Result<(), SimError> {
        config.validate()?;
        let link = self
            .links
            .get_mut(&link_key(from, to))
            .ok_or(SimError::NotLinked(from, to))?;
        if let Some(slot) = link.config.get_mut(direction(from, to)) {
            *slot = config;
        }
        Ok(())
    }

    /// Removes the link: its connection closes and frames in flight on it are dropped.
    pub fn disconnect(&mut self, a: NodeId, b: NodeId) -> Result<(), SimError> {
        if !self.links.contains_key(&link_key(a, b)) {
            return Err(SimError::NotLinked(a, b));
        }
        self.close(a, b)?;
        self.links.remove(&link_key(a, b));
        self.node_mut(a)?.links.remove(&b);
        self.node_mut(b)?.links.remove(&a);
        Ok(())
    }

    /// Every configured link, lower node first.
    pub fn links(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.links.keys().copied()
    }

    /// Whether a connection is up between the two nodes.
    pub fn is_connected(&self, a: NodeId, b: NodeId) -> bool {
        self.links
            .get(&link_key(a, b))
            .is_some_and(|l| l.conn.is_some())
    }

    /// The handle `node` uses for `remote`, while they are connected.
    pub fn peer_id(&self, node: NodeId, remote: NodeId) -> Option<PeerId> {
        let conn = self.links.get(&link_key(node, remote))?.conn.as_ref()?;
        Some(if node < remote {
            conn.lo_sees_hi
        } else {
            conn.hi_sees_lo
        })
    }

    /// The node behind the handle `peer` of `node`, while they are connected.
    pub fn peer_node(&self, node: NodeId, peer: PeerId) -> Option<NodeId> {
        self.nodes.get(node.0 as usize)?.peers.get(&peer).copied()
    }

    /// Cuts `island` off from every other node (links stay up; frames across are dropped).
    /// Calling it again cuts another island off; [`Sim::heal`] removes every partition.
    pub fn partition(&mut self, island: &[NodeId]) -> Result<(), SimError> {
        for &n in island {
            self.node_ref(n)?;
        }
        let group = self.next_group;
        self.next_group = self.next_group.wrapping_add(1).max(1);
        for &n in island {
            self.node_mut(n)?.group = group;
        }
        let at = self.now;
        self.record(
            TraceRecord::Partition {
                at,
                island: island.to_vec(),
            },
            &[],
        );
        Ok(())
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
        }
        let at = self.now;
        self.record(
            TraceRecord::Partition {
                at,
                island: Vec::new(),
            },
            &[],
        );
    }

    /// Whether frames from `a` currently reach `b` (same side of every partition).
    pub fn can_reach(&self, a: NodeId, b: NodeId) -> bool {
        match (self.nodes.get(a.0 as usize), self.nodes.get(b.0 as usize)) {
            (Some(x), Some(y)) => x.group == y.group,
            _ => false,
        }
    }

    // ---- time ----------------------------------------------------------------------------

    /// Virtual time since the start.
    pub const fn elapsed(&self) -> Duration {
        self.now
    }

    /// The network's clock (without any node's skew).
    pub fn now(&self) -> Now {
        self.now_with_skew(0)
    }

    /// The clock as `id` sees it.
    pub fn node_now(&self, id: NodeId) -> Result<Now, SimError> {
        Ok(self.now_with_skew(self.node_ref(id)?.skew_nanos))
    }

    /// The instant at virtual time `at`.
    pub fn instant_at(&self, at: Duration) -> Instant {
        self.base + at
    }

    /// When the next delivery or timeout is due, if any.
    pub fn next_event_at(&mut self) -> Option<Duration> {
        self.discard_stale_timers();
        let f = self.frames.peek().map(|Reverse(f)| f.at);
        let t = self.timers.peek().map(|Reverse((t, _, _))| *t);
        match (f, t) {
            (Some(f), Some(t)) => Some(f.min(t)),
            (f, t) => f.or(t),
        }
    }

    /// Frames in flight.
    pub fn in_flight(&self) -> usize {
        self.frames.len()
    }

    /// Runs the earliest delivery or timeout (a delivery first when both are due at once).
    /// Returns `false` when there is nothing left to do.
    pub fn step(&mut self) -> Result<bool, SimError> {
        self.discard_stale_timers();
        let frame_at = self.frames.peek().map(|Reverse(f)| f.at);
        let timer = self.timers.peek().map(|Reverse(t)| *t);
        let deliver = match (frame_at, timer) {
            (None, None) => return Ok(false),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(f), Some((t, _, _))) => f <= t,
        };
        let at = if deliver {
            frame_at
        } else {
            timer.map(|t| t.0)
        }
        .unwrap_or(self.now);
        let steps = if at == self.now {
            self.steps_at_now + 1
        } else {
            1
        };
        if steps > self.config.max_steps_per_instant {
            return Err(SimError::Stalled { at, steps });
        }
        if deliver {
            if let Some(Reverse(frame)) = self.frames.pop() {
                self.advance(at, steps);
                self.deliver(frame)?;
            }
        } else if let Some((_, node, _)) = timer {
            self.fire(at, node, steps)?;
        }
        Ok(true)
    }

    /// Steps until the next event would be after `until` (virtual time since the start), then
    /// moves the clock to `until`. Returns the steps taken.
    pub fn run_until(&mut self, until: Duration) -> Result<u64, SimError> {
        let mut steps = 0;
        while self.next_event_at().is_some_and(|t| t <= until) {
            self.step()?;
            steps += 1;
        }
        if until > self.now {
            self.advance(until, 0);
        }
        Ok(steps)
    }

    /// [`Sim::run_until`] `d` from now.
    pub fn run_for(&mut self, d: Duration) -> Result<u64, SimError> {
        self.run_until(self.now + d)
    }

    /// Steps until no frame is in flight and no node wants a timeout; fails with
    /// [`SimError::NotQuiet`] after `max_steps`. (Machines with periodic timers never go quiet;
    /// use [`Sim::run_until`] for them.)
    pub fn run_until_quiet(&mut self, max_steps: u64) -> Result<u64, SimError> {
        let mut steps = 0;
        loop {
            if steps >= max_steps {
                self.discard_stale_timers();
                if self.frames.is_empty() && self.timers.is_empty() {
                    return Ok(steps);
                }
                return Err(SimError::NotQuiet {
                    steps,
                    in_flight: self.frames.len(),
                });
            }
            if !self.step()? {
                return Ok(steps);
            }
            steps += 1;
        }
    }

    // ---- observation ---------------------------------------------------------------------

    /// The events the node emitted and nobody took yet, oldest first.
    pub fn events(&self, id: NodeId) -> impl Iterator<Item = &Recorded<M::Event>> + '_ {
        self.nodes
            .get(id.0 as usize)
            .into_iter()
            .flat_map(|n| n.events.iter())
    }

    /// Takes the node's recorded events, oldest first.
    pub fn take_events(&mut self, id: NodeId) -> Vec<Recorded<M::Event>> {
        self.nodes
            .get_mut(id.0 as usize)
            .map(|n| n.events.drain(..).collect())
            .unwrap_or_default()
    }

    /// Network totals.
    pub const fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// One node's counters.
    pub fn node_stats(&self, id: NodeId) -> Option<&NodeStats> {
        self.nodes.get(id.0 as usize).map(|n| &n.stats)
    }

    /// The counters of the direction `from` → `to` of a link.
    pub fn link_stats(&self, from: NodeId, to: NodeId) -> Option<&LinkStats> {
        self.links
            .get(&link_key(from, to))?
            .stats
            .get(direction(from, to))
    }

    /// The first [`SimConfig::trace_capacity`] trace records.
    pub fn trace(&self) -> &[TraceRecord] {
        &self.trace
    }

    /// SHA-256 over every trace record so far, including every frame body (all zero when
    /// [`SimConfig::digest`] is off). Two runs with the same seed and calls give the same digest.
    pub fn trace_digest(&self) -> [u8; 32] {
        self.digest.clone().finalize().into()
    }

    // ---- internals -----------------------------------------------------------------------

    fn node_ref(&self, id: NodeId) -> Result<&Node<M>, SimError> {
        self.nodes
            .get(id.0 as usize)
            .ok_or(SimError::UnknownNode(id))
    }

    fn node_mut(&mut self, id: NodeId) -> Result<&mut Node<M>, SimError> {
        self.nodes
            .get_mut(id.0 as usize)
            .ok_or(SimError::UnknownNode(id))
    }

    fn machine_mut(&mut self, id: NodeId) -> Result<&mut M, SimError> {
        self.node_mut(id)?
            .machine
            .as_mut()
            .ok_or(SimError::NodeDown(id))
    }

    fn now_with_skew(&self, skew: i64) -> Now {
        let nanos = i64::try_from(self.now.as_nanos()).unwrap_or(i64::MAX);
        Now {
            instant: self.base + self.now,
            unix_nanos: self
                .config
                .start_unix_nanos
                .saturating_add(nanos)
                .saturating_add(skew),
        }
    }

    fn advance(&mut self, to: Duration, steps_at_now: u64) {
        if to > self.now {
            self.now = to;
        }
        self.steps_at_now = steps_at_now;
    }

    fn start(&mut self, id: NodeId, make: impl FnOnce(Now) -> M) -> Result<(), SimError> {
        let now = self.node_now(id)?;
        let machine = make(now);
        let node = self.node_mut(id)?;
        node.machine = Some(machine);
        node.timer = None;
        node.woke_at = None;
        node.wakeups = 0;
        let at = self.now;
        self.record(TraceRecord::Started { at, node: id }, &[]);
        self.drain(id)
    }

    /// Brings up a connection on the link between `a` and `b` (both up, none yet).
    fn open(&mut self, a: NodeId, b: NodeId) -> Result<(), SimError> {
        let (lo, hi) = link_key(a, b);
        let lo_protocols = self
            .node(lo)
            .map(Machine::protocols)
            .ok_or(SimError::NodeDown(lo))?;
        let hi_protocols = self
            .node(hi)
            .map(Machine::protocols)
            .ok_or(SimError::NodeDown(hi))?;
        let lo_sees_hi = self.new_handle(lo, hi)?;
        let hi_sees_lo = self.new_handle(hi, lo)?;
        let id = self.next_conn;
        self.next_conn += 1;
        if let Some(link) = self.links.get_mut(&(lo, hi)) {
            link.conn = Some(Connection {
                id,
                lo_sees_hi,
                hi_sees_lo,
                serves: [lo_protocols.clone(), hi_protocols.clone()],
            });
        }
        let at = self.now;
        self.record(
            TraceRecord::Connected {
                at,
                a: lo,
                b: hi,
                a_sees_b: lo_sees_hi,
                b_sees_a: hi_sees_lo,
            },
            &[],
        );
        let now = self.node_now(lo)?;
        self.machine_mut(lo)?
            .handle_connected(now, lo_sees_hi, &hi_protocols);
        self.drain(lo)?;
        let now = self.node_now(hi)?;
        self.machine_mut(hi)?
            .handle_connected(now, hi_sees_lo, &lo_protocols);
        self.drain(hi)
    }

    fn new_handle(&mut self, node: NodeId, remote: NodeId) -> Result<PeerId, SimError> {
        let n = self.node_mut(node)?;
        let handle = PeerId(n.next_peer);
        n.next_peer += 1;
        n.peers.insert(handle, remote);
        Ok(handle)
    }

    /// Closes the connection on the link between `a` and `b`, if any.
    fn close(&mut self, a: NodeId, b: NodeId) -> Result<(), SimError> {
        let (lo, hi) = link_key(a, b);
        let Some(conn) = self.links.get_mut(&(lo, hi)).and_then(|l| l.conn.take()) else {
            return Ok(());
        };
        self.node_mut(lo)?.peers.remove(&conn.lo_sees_hi);
        self.node_mut(hi)?.peers.remove(&conn.hi_sees_lo);
        // Drop every frame of this connection still in flight.
        let at = self.now;
        let frames = std::mem::take(&mut self.frames);
        let (gone, kept): (Vec<_>, Vec<_>) = frames
            .into_vec()
            .into_iter()
            .partition(|Reverse(f)| f.conn == conn.id);
        self.frames = BinaryHeap::from(kept);
        let mut gone: Vec<InFlight> = gone.into_iter().map(|Reverse(f)| f).collect();
        gone.sort();
        for f in gone {
            self.drop_copy(at, &f, DropReason::Disconnected);
        }
        self.record(TraceRecord::Disconnected { at, a: lo, b: hi }, &[]);
        for (node, handle) in [(lo, conn.lo_sees_hi), (hi, conn.hi_sees_lo)] {
            if self.is_up(node) {
                let now = self.node_now(node)?;
                self.machine_mut(node)?.handle_disconnected(now, handle);
                self.drain(node)?;
            }
        }
        Ok(())
    }

    fn drop_copy(&mut self, at: Duration, f: &InFlight, reason: DropReason) {
        self.stats.count_drop(reason);
        if let Some(s) = self.link_stats_mut(f.from, f.to) {
            s.dropped += 1;
        }
        self.record(
            TraceRecord::Dropped {
                at,
                seq: f.seq,
                reason,
            },
            &[],
        );
    }

    fn link_stats_mut(&mut self, from: NodeId, to: NodeId) -> Option<&mut LinkStats> {
        self.links
            .get_mut(&link_key(from, to))?
            .stats
            .get_mut(direction(from, to))
    }

    /// Drains the node's transmits and events and re-registers its timeout.
    fn drain(&mut self, id: NodeId) -> Result<(), SimError> {
        let max = self.config.max_outputs_per_input;
        let max_events = self.config.max_events_per_node;
        let at = self.now;
        let base = self.base;
        let node = self.node_mut(id)?;
        let Some(m) = node.machine.as_mut() else {
            return Ok(());
        };
        let mut out = Vec::new();
        while let Some(t) = m.poll_transmit() {
            if out.len() >= max {
                return Err(SimError::OutputFlood(id));
            }
            out.push(t);
        }
        let mut n_events = 0usize;
        while let Some(e) = m.poll_event() {
            n_events += 1;
            if n_events > max {
                return Err(SimError::OutputFlood(id));
            }
            node.stats.events += 1;
            if node.events.len() >= max_events {
                node.events.pop_front();
                node.stats.events_dropped += 1;
            }
            if max_events > 0 {
                node.events.push_back(Recorded { at, event: e });
            }
        }
        let timer = m
            .poll_timeout()
            .map(|t| t.saturating_duration_since(base).max(at));
        if timer != node.timer {
            node.timer = timer;
            node.timer_gen += 1;
            let generation = node.timer_gen;
            if let Some(t) = timer {
                self.timers.push(Reverse((t, id, generation)));
            }
        }
        for t in out {
            self.send(id, t);
        }
        Ok(())
    }

    fn discard_stale_timers(&mut self) {
        while let Some(Reverse((t, node, generation))) = self.timers.peek() {
            let live = self.nodes.get(node.0 as usize).is_some_and(|n| {
                n.machine.is_some() && n.timer_gen == *generation && n.timer == Some(*t)
            });
            if live {
                break;
            }
            self.timers.pop();
        }
    }

    fn fire(&mut self, at: Duration, id: NodeId, steps: u64) -> Result<(), SimError> {
        let max = self.config.max_wakeups_per_instant;
        let node = self.node_mut(id)?;
        let wakeups = if node.woke_at == Some(at) {
            node.wakeups.saturating_add(1)
        } else {
            1
        };
        if wakeups > max {
            return Err(SimError::StuckTimer {
                node: id,
                at,
                wakeups,
            });
        }
        node.woke_at = Some(at);
        node.wakeups = wakeups;
        node.timer = None;
        node.timer_gen += 1;
        node.stats.timeouts += 1;
        self.timers.pop();
        self.advance(at, steps);
        self.stats.timeouts += 1;
        self.stats.steps += 1;
        self.record(TraceRecord::Timeout { at, node: id }, &[]);
        let now = self.node_now(id)?;
        self.machine_mut(id)?.handle_timeout(now);
        self.drain(id)
    }

    fn deliver(&mut self, f: InFlight) -> Result<(), SimError> {
        let at = self.now;
        self.stats.steps += 1;
        let live = self
            .links
            .get(&link_key(f.from, f.to))
            .and_then(|l| l.conn.as_ref())
            .is_some_and(|c| c.id == f.conn)
            && self.is_up(f.to);
        if !live {
            self.drop_copy(at, &f, DropReason::Disconnected);
            return Ok(());
        }
        if !self.can_reach(f.from, f.to) {
            self.drop_copy(at, &f, DropReason::Partition);
            return Ok(());
        }
        let len = f.bytes.len() as u64;
        self.stats.delivered += 1;
        self.stats.bytes_delivered += len;
        if let Some(s) = self.link_stats_mut(f.from, f.to) {
            s.delivered += 1;
            s.bytes_delivered += len;
        }
        let node = self.node_mut(f.to)?;
        node.stats.frames_received += 1;
        node.stats.bytes_received += len;
        self.record(
            TraceRecord::Delivered {
                at,
                seq: f.seq,
                to: f.to,
            },
            &[],
        );
        let now = self.node_now(f.to)?;
        self.machine_mut(f.to)?
            .handle_frame(now, f.from_handle, f.protocol, f.kind, &f.bytes);
        self.drain(f.to)
    }

    /// Gives a transmit its fate and schedules the copies that will arrive.
    fn send(&mut self, from: NodeId, t: Transmit) {
        let at = self.now;
        let seq = self.take_seq();
        let len = t.bytes.len();
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += len as u64;
        if let Some(n) = self.nodes.get_mut(from.0 as usize) {
            n.stats.frames_sent += 1;
            n.stats.bytes_sent += len as u64;
        }
        let to = self.peer_node(from, t.to);
        self.record(
            TraceRecord::Sent {
                at,
                seq,
                from,
                to,
                protocol: t.protocol,
                kind: t.kind,
                len,
            },
            &t.bytes,
        );
        let Some(to) = to else {
            self.stats.count_drop(DropReason::Unroutable);
            self.record(
                TraceRecord::Dropped {
                    at,
                    seq,
                    reason: DropReason::Unroutable,
                },
                &[],
            );
            return;
        };
        let dir = direction(from, to);
        let groups_differ = self.nodes.get(from.0 as usize).map(|n| n.group)
            != self.nodes.get(to.0 as usize).map(|n| n.group);
        // Everything the link decides, with its borrow ending before anything is recorded.
        let decided = match self.links.get_mut(&link_key(from, to)) {
            // A peer handle always belongs to a live connection on a configured link.
            None => Err(DropReason::Unroutable),
            Some(link) => match link.conn.as_ref() {
                None => Err(DropReason::Unroutable),
                Some(conn) => {
                    let from_handle = if from < to {
                        conn.hi_sees_lo
                    } else {
                        conn.lo_sees_hi
                    };
                    // The side that serves the protocol: the receiver of a stream frame or a
                    // request, the sender of a response.
                    let server = match t.kind {
                        FrameKind::Response(_) => from,
                        FrameKind::Stream | FrameKind::Request(_) => to,
                    };
                    let served = conn
                        .serves
                        .get(usize::from(server > from.min(to)))
                        .is_some_and(|list| list.contains(&t.protocol));
                    let reason = if !served {
                        Some(DropReason::Unsupported)
                    } else if len > t.protocol.max_frame_len() {
                        Some(DropReason::Oversized)
                    } else if groups_differ {
                        Some(DropReason::Partition)
                    } else {
                        None
                    };
                    let conn_id = conn.id;
                    if let Some(s) = link.stats.get_mut(dir) {
                        s.frames_sent += 1;
                        s.bytes_sent += len as u64;
                        if reason.is_some() {
                            s.dropped += 1;
                        }
                    }
                    match (reason, link.config.get(dir)) {
                        (Some(reason), _) => Err(reason),
                        (None, None) => Err(DropReason::Unroutable),
                        (None, Some(cfg)) => Ok((cfg.clone(), conn_id, from_handle)),
                    }
                }
            },
        };
        let (cfg, conn_id, from_handle) = match decided {
            Ok(d) => d,
            Err(reason) => {
                self.stats.count_drop(reason);
                self.record(TraceRecord::Dropped { at, seq, reason }, &[]);
                return;
            }
        };
        if chance(&mut self.rng, cfg.loss) {
            self.stats.lost += 1;
            if let Some(s) = self.link_stats_mut(from, to) {
                s.lost += 1;
            }
            self.record(TraceRecord::Lost { at, seq }, &[]);
            return;
        }
        let duplicate = chance(&mut self.rng, cfg.duplicate);
        let first_at = self.delivery_time(from, to, &cfg);
        let copy = duplicate.then(|| (self.take_seq(), self.delivery_time(from, to, &cfg)));
        let frame = InFlight {
            at: first_at,
            seq,
            from,
            to,
            conn: conn_id,
            from_handle,
            protocol: t.protocol,
            kind: t.kind,
            bytes: t.bytes,
        };
        if let Some((copy_seq, copy_at)) = copy {
            self.stats.duplicates += 1;
            if let Some(s) = self.link_stats_mut(from, to) {
                s.duplicates += 1;
            }
            self.record(
                TraceRecord::Duplicated {
                    at,
                    seq,
                    copy: copy_seq,
                },
                &[],
            );
            let second = InFlight {
                at: copy_at,
                seq: copy_seq,
                bytes: frame.bytes.clone(),
                ..frame
            };
            self.frames.push(Reverse(second));
        }
        self.frames.push(Reverse(frame));
    }

    fn delivery_time(&mut self, from: NodeId, to: NodeId, cfg: &LinkConfig) -> Duration {
        let mut at = self.now + cfg.latency + uniform(&mut self.rng, cfg.jitter);
        let reordered = chance(&mut self.rng, cfg.reorder);
        let dir = direction(from, to);
        if let Some(slot) = self
            .links
            .get_mut(&link_key(from, to))
            .and_then(|l| l.fifo.get_mut(dir))
        {
            if reordered {
                at += uniform(&mut self.rng, cfg.reorder_delay);
            } else {
                at = at.max(*slot);
                *slot = at;
            }
        }
        at
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn record(&mut self, r: TraceRecord, body: &[u8]) {
        if self.config.digest {
            let mut buf = Vec::with_capacity(64);
            encode_record(&r, &mut buf);
            self.digest.update((buf.len() as u64).to_le_bytes());
            self.digest.update(&buf);
            self.digest.update((body.len() as u64).to_le_bytes());
            self.digest.update(body);
        }
        if self.trace.len() < self.config.trace_capacity {
            self.trace.push(r);
        }
    }
}

fn link_key(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Index of the direction `from` → `to` in a link's per-direction arrays.
fn direction(from: NodeId, to: NodeId) -> usize {
    usize::from(from > to)
}

/// True with probability `p` (no draw for 0, so perfect links use no randomness).
fn chance(rng: &mut ChaCha20Rng, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    if p >= 1.0 {
        return true;
    }
    // 53 random bits as a float in [0, 1).
    let x = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    x < p
}

/// A duration drawn uniformly from `[0, max]` at nanosecond resolution.
fn uniform(rng: &mut ChaCha20Rng, max: Duration) -> Duration {
    let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if max == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rng.next_u64() % max.saturating_add(1))
}

/// A canonical byte encoding of a record, for the digest.
fn encode_record(r: &TraceRecord, out: &mut Vec<u8>) {
    fn d(out: &mut Vec<u8>, at: Duration) {
        out.extend_from_slice(
            &u64::try_from(at.as_nanos())
                .unwrap_or(u64::MAX)
                .to_le_bytes(),
        );
    }
    fn n(out: &mut Vec<u8>, id: NodeId) {
        out.extend_from_slice(&id.0.to_le_bytes());
    }
    fn u(out: &mut Vec<u8>, x: u64) {
        out.extend_from_slice(&x.to_le_bytes());
    }
    match r {
        TraceRecord::Connected {
            at,
            a,
            b,
            a_sees_b,
            b_sees_a,
        } => {
            out.push(1);
            d(out, *at);
            n(out, *a);
            n(out, *b);
            u(out, a_sees_b.0);
            u(out, b_sees_a.0);
        }
        TraceRecord::Disconnected { at, a, b } => {
            out.push(2);
            d(out, *at);
            n(out, *a);
            n(out, *b);
        }
        TraceRecord::Sent {
            at,
            seq,
            from,
            to,
            protocol,
            kind,
            len,
        } => {
            out.push(3);
            d(out, *at);
            u(out, *seq);
            n(out, *from);
            n(out, to.unwrap_or(NodeId(u32::MAX)));
            out.extend_from_slice(protocol.id().as_bytes());
            match kind {
                FrameKind::Stream => out.push(0),
                FrameKind::Request(id) => {
                    out.push(1);
                    u(out, *id);
                }
                FrameKind::Response(id) => {
                    out.push(2);
                    u(out, *id);
                }
            }
            u(out, *len as u64);
        }
        TraceRecord::Duplicated { at, seq, copy } => {
            out.push(4);
            d(out, *at);
            u(out, *seq);
            u(out, *copy);
        }
        TraceRecord::Lost { at, seq } => {
            out.push(5);
            d(out, *at);
            u(out, *seq);
        }
        TraceRecord::Dropped { at, seq, reason } => {
            out.push(6);
            d(out, *at);
            u(out, *seq);
            out.push(*reason as u8);
        }
        TraceRecord::Delivered { at, seq, to } => {
            out.push(7);
            d(out, *at);
            u(out, *seq);
            n(out, *to);
        }
        TraceRecord::Timeout { at, node } => {
            out.push(8);
            d(out, *at);
            n(out, *node);
        }
        TraceRecord::Crashed { at, node } => {
            out.push(9);
            d(out, *at);
            n(out, *node);
        }
        TraceRecord::Started { at, node } => {
            out.push(10);
            d(out, *at);
            n(out, *node);
        }
        TraceRecord::Partition { at, island } => {
            out.push(11);
            d(out, *at);
            u(out, island.len() as u64);
            for i in island {
                n(out, *i);
            }
        }
    }
}
