//! The libp2p transport: the same sans-IO machines on the network real Waku nodes and clients
//! speak (nwaku, go-waku, js-waku).
//!
//! # Stack
//!
//! TCP and WebSocket (`/ip4/…/tcp/…` and `/ip4/…/tcp/…/ws`, names resolved through the system
//! resolver), Noise, then yamux or mplex (js-waku offers only mplex), identify and ping, and
//! connection limits ([`Libp2pConfig::limits`], with a per-IP cap on connections being set up)
//! so that a flood of connections can neither exhaust memory nor, from one host, lock newcomers
//! out (`tests/libp2p_flood.rs`).
//!
//! # How the machine's frames map onto streams
//!
//! The [`behaviour`] only opens and accepts streams; the driver task owns the [`Machine`] and
//! every stream task talks to it over channels. The rule is the one of the other drivers:
//! [`Machine::protocols`] lists the protocols the machine *serves*:
//!
//! - inbound streams are accepted only for those protocols, and identify lists exactly those
//!   (plus identify and ping themselves);
//! - the machine is told the protocols a peer serves, from the peer's identify (what it lists
//!   that status-rs knows); stream frames and requests go only to peers that serve their
//!   protocol, and are otherwise dropped and counted;
//! - [`FrameKind::Stream`] frames ([`Protocol::Relay`] gossipsub RPCs, WIRE.md B.27;
//!   [`Protocol::FilterPush`] pushes) go on one long-lived outbound stream per peer and
//!   protocol; inbound long-lived streams are read frame after frame;
//! - a [`FrameKind::Request`] opens a fresh stream, writes one frame, closes its write side and
//!   reads one response frame, handed to the machine as [`FrameKind::Response`] with the same
//!   id; an inbound request stream is read for one frame, handed to the machine as
//!   [`FrameKind::Request`] with a driver-chosen id, and the machine's response is written back
//!   before the stream is closed (WIRE.md B.1).
//!
//! Every frame is unsigned-varint length-prefixed; the length is checked against
//! [`Protocol::max_frame_len`] before the body is read, and the body buffer grows only with what
//! arrives ([`frames`], a loop over the sans-IO [`FrameDecoder`], which is fuzzed). Streams a
//! peer opened but
//! never used are left open (js-waku opens one per protocol right after identify and uses it
//! later), bounded by [`MAX_INBOUND_STREAMS_PER_PEER`].
//!
//! The addresses of [`Libp2pConfig::dial`] are static peers: the driver dials them at start and
//! again whenever the peer is down, with exponential backoff between failed dials
//! ([`Libp2pConfig::backoff_initial`] to [`Libp2pConfig::backoff_max`]), on its own clock;
//! [`Libp2pHandle::dial`] dials once.
//!
//! A libp2p peer gets a [`PeerId`] handle when its first connection is up; the machine hears of
//! it once identify has told what it serves (or after [`IDENTIFY_WAIT`] with nothing), through
//! `handle_dialed` if we dialled one of its connections, else `handle_connected`, and of its
//! end when its last connection closes. A peer that reconnects gets a fresh handle. What a peer
//! sends before the machine hears of it is kept for it within [`MAX_FRAMES_BEFORE_IDENTIFY`],
//! [`MAX_BYTES_BEFORE_IDENTIFY`] and, for all such peers together,
//! [`MAX_BYTES_BEFORE_IDENTIFY_TOTAL`].
//!
//! [`Machine`]: waku_core::net::Machine
//! [`Machine::protocols`]: waku_core::net::Machine::protocols
//! [`FrameKind::Stream`]: waku_core::net::FrameKind::Stream
//! [`FrameKind::Request`]: waku_core::net::FrameKind::Request
//! [`FrameKind::Response`]: waku_core::net::FrameKind::Response
//! [`Protocol::Relay`]: waku_core::net::Protocol::Relay
//! [`Protocol::FilterPush`]: waku_core::net::Protocol::FilterPush
//! [`Protocol::max_frame_len`]: waku_core::net::Protocol::max_frame_len
//! [`PeerId`]: waku_core::net::PeerId
//! [`FrameDecoder`]: crate::framing::FrameDecoder

pub mod behaviour;
mod driver;
pub mod frames;

use std::fmt;
use std::time::Duration;

pub use ::libp2p::identity::Keypair;
pub use ::libp2p::{Multiaddr, PeerId as Libp2pPeerId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use waku_core::net::{Machine, Now, PeerId, Protocol};

pub use driver::start;

/// The rust-libp2p crate this module is built on, for applications and tests that need its
/// types (with feature `interop-gossipsub`, its gossipsub too).
pub use ::libp2p as upstream;

/// How long a new peer may take to identify itself before the machine is told of it with no
/// protocols (it can still send us requests; we cannot send it any).
pub const IDENTIFY_WAIT: Duration = Duration::from_secs(10);

/// The most frames (and inbound requests) kept for a peer that has not identified yet; more are
/// dropped and counted. Bounds what a peer that never identifies can make us hold.
pub const MAX_FRAMES_BEFORE_IDENTIFY: usize = 64;

/// The most bytes of frames kept for a peer that has not identified yet (with
/// [`MAX_FRAMES_BEFORE_IDENTIFY`]); more are dropped and counted. Frame caps go up to
/// megabytes, so a count alone would let a peer that never identifies make us hold
/// [`MAX_FRAMES_BEFORE_IDENTIFY`] full-size frames.
pub const MAX_BYTES_BEFORE_IDENTIFY: usize = 2 * 1024 * 1024;

/// The most bytes of frames kept for all peers that have not identified yet together; more are
/// dropped and counted. Bounds what a crowd of fresh identities can make us hold however many
/// connections [`Limits`] admits.
pub const MAX_BYTES_BEFORE_IDENTIFY_TOTAL: usize = 16 * 1024 * 1024;

/// The most streams a peer may have open towards us at once (idle ones included); further ones
/// are reset. With [`READ_CHUNK`](frames::READ_CHUNK)-step reads, what a peer can make us buffer
/// is bounded by what it actually sends on these.
pub const MAX_INBOUND_STREAMS_PER_PEER: usize = 64;

/// The most frames queued for one long-lived outbound stream; further frames are dropped and
/// counted (gossipsub tolerates loss; a peer that stops reading must not grow our memory).
pub const MAX_QUEUED_STREAM_FRAMES: usize = 256;

/// The most outbound requests waiting for their stream at once; further ones are dropped and
/// counted (the machine's own timeouts report them).
pub const MAX_PENDING_REQUESTS: usize = 1024;

/// The most events queued for the application; further ones are dropped and counted.
pub const MAX_QUEUED_EVENTS: usize = 4096;

/// Time allowed for a request to be answered, on either side: an outbound request stream is
/// dropped after it, an inbound request waits this long for the machine's response once its
/// frame arrived.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections being set up (inbound) at once.
    pub max_pending_incoming: u32,
    /// Connections being set up (inbound) at once from one IP address: one host cannot hold
    /// all of [`max_pending_incoming`](Limits::max_pending_incoming) with silent sockets and
    /// lock newcomers out.
    pub max_pending_incoming_per_ip: u32,
    /// Connections being set up (outbound) at once.
    pub max_pending_outgoing: u32,
    /// Established connections in all.
    pub max_established: u32,
    /// Established connections per peer.
    pub max_established_per_peer: u32,
}

impl Default for Limits {
    /// 32 pending each way, 4 of them inbound from one IP, 128 established, 2 per peer.
    fn default() -> Self {
        Limits {
            max_pending_incoming: 32,
            max_pending_incoming_per_ip: 4,
            max_pending_outgoing: 32,
            max_established: 128,
            max_established_per_peer: 2,
        }
    }
}

/// Settings of a libp2p node.
#[derive(Clone)]
pub struct Libp2pConfig {
    /// The node's identity (its libp2p peer id) and Noise key.
    pub keypair: Keypair,
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/60000` or `/ip4/0.0.0.0/tcp/8000/ws`.
    pub listen: Vec<Multiaddr>,
    /// Static peers: addresses (with or without `/p2p/<peer id>`) dialled at start and
    /// redialled whenever the peer is down or the dial failed, after [`backoff_initial`],
    /// doubling per failed dial up to [`backoff_max`] (back to [`backoff_initial`] once
    /// connected). A peer that connects to us by itself counts as up.
    ///
    /// [`backoff_initial`]: Libp2pConfig::backoff_initial
    /// [`backoff_max`]: Libp2pConfig::backoff_max
    pub dial: Vec<Multiaddr>,
    /// First redial delay of a static peer ([`dial`](Libp2pConfig::dial)); doubles per failed
    /// dial. At least 10 ms is used.
    pub backoff_initial: Duration,
    /// Largest redial delay of a static peer.
    pub backoff_max: Duration,
    /// The agent version sent in identify.
    pub agent_version: String,
    /// Connection limits.
    pub limits: Limits,
    /// An idle connection (no stream open) is closed after this long.
    pub idle_timeout: Duration,
}

impl Libp2pConfig {
    /// Defaults: no listener, no static peers, redials from 1 s up to 30 s,
    /// [`Limits::default`], 10 minutes idle timeout.
    pub fn new(keypair: Keypair) -> Self {
        Libp2pConfig {
            keypair,
            listen: Vec::new(),
            dial: Vec::new(),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            agent_version: concat!("status-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

impl fmt::Debug for Libp2pConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Libp2pConfig")
            .field("peer_id", &self.keypair.public().to_peer_id())
            .field("listen", &self.listen)
            .field("dial", &self.dial)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("agent_version", &self.agent_version)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Why the node could not start or a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Libp2pError {
    /// The transport could not be built (Noise key, resolver).
    #[error("transport: {0}")]
    Transport(String),
    /// A listen address was refused.
    #[error("listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A dial was refused at once.
    #[error("dial: {0}")]
    Dial(String),
    /// The driver has stopped.
    #[error("the driver has stopped")]
    Stopped,
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The machine's handle.
    pub peer: PeerId,
    /// Its libp2p peer id.
    pub libp2p_peer: Libp2pPeerId,
    /// Whether we dialled one of its connections; the machine was then told through
    /// [`Machine::handle_dialed`] (outbound peers count
    /// toward the relay's outbound mesh quota).
    pub outbound: bool,
    /// Whether it has identified (and the machine was told of it).
    pub identified: bool,
    /// The protocols it serves that status-rs knows (what the machine was told).
    pub protocols: Vec<Protocol>,
    /// Its agent version, from identify.
    pub agent_version: String,
}

/// What the driver reports to the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum DriverEvent<E> {
    /// An event of the machine.
    Machine(E),
    /// The machine was told of a peer.
    Connected(PeerInfo),
    /// The machine was told a peer is gone.
    Disconnected {
        /// The machine's handle.
        peer: PeerId,
        /// Its libp2p peer id.
        libp2p_peer: Libp2pPeerId,
    },
    /// A dial failed.
    DialFailed {
        /// The peer, if known.
        libp2p_peer: Option<Libp2pPeerId>,
        /// Why.
        error: String,
    },
}

/// Counters of the driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Libp2pStats {
    /// Frames written to streams.
    pub frames_sent: u64,
    /// Frames handed to the machine.
    pub frames_received: u64,
    /// Transmits for a peer handle with no connection, or a response with no open request.
    pub dropped_unroutable: u64,
    /// Stream frames and requests to a peer that does not serve their protocol.
    pub dropped_refused: u64,
    /// Frames over a queue bound ([`MAX_QUEUED_STREAM_FRAMES`], [`MAX_PENDING_REQUESTS`],
    /// [`MAX_FRAMES_BEFORE_IDENTIFY`], [`MAX_BYTES_BEFORE_IDENTIFY`],
    /// [`MAX_BYTES_BEFORE_IDENTIFY_TOTAL`]).
    pub dropped_overflow: u64,
    /// Inbound frames refused by the framing (over the cap, malformed, truncated).
    pub bad_frames: u64,
    /// Inbound streams reset over [`MAX_INBOUND_STREAMS_PER_PEER`].
    pub streams_refused: u64,
    /// Outbound streams that could not be opened.
    pub open_failures: u64,
    /// Events the application did not take in time.
    pub events_dropped: u64,
    /// Dials of static peers ([`Libp2pConfig::dial`]) started, the first ones included.
    pub static_dials: u64,
    /// Inbound connections refused by the [`Limits`].
    pub incoming_denied: u64,
    /// Inbound connections that failed before being established otherwise (handshake failed or
    /// timed out, garbage instead of multistream-select or Noise).
    pub incoming_failed: u64,
}

type Call<M> = Box<dyn FnOnce(&mut M, Now) + Send>;

enum Command<M> {
    Call(Call<M>),
    Dial(Multiaddr, oneshot::Sender<Result<(), Libp2pError>>),
    Disconnect(PeerId),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Stats(oneshot::Sender<Libp2pStats>),
    Shutdown,
}

/// Sends commands to a running driver. Cheap to clone.
pub struct Libp2pHandle<M> {
    commands: mpsc::Sender<Command<M>>,
}

impl<M> Clone for Libp2pHandle<M> {
    fn clone(&self) -> Self {
        Libp2pHandle {
            commands: self.commands.clone(),
        }
    }
}

impl<M> fmt::Debug for Libp2pHandle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Libp2pHandle").finish_non_exhaustive()
    }
}

impl<M: Machine + Send + 'static> Libp2pHandle<M> {
    /// Runs `f` on the machine inside the driver task (then the driver drains the machine) and
    /// returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut M, Now) -> R + Send + 'static,
    ) -> Result<R, Libp2pError> {
        let (tx, rx) = oneshot::channel();
        let call: Call<M> = Box::new(move |m, now| {
            let _ = tx.send(f(m, now));
        });
        self.send(Command::Call(call)).await?;
        rx.await.map_err(|_| Libp2pError::Stopped)
    }

    /// Dials `addr` (with or without `/p2p/<peer id>`) once: unlike the static peers of
    /// [`Libp2pConfig::dial`], it is not redialled.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), Libp2pError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Dial(addr, tx)).await?;
        rx.await.map_err(|_| Libp2pError::Stopped)?
    }

    /// Closes every connection to `peer`.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), Libp2pError> {
        self.send(Command::Disconnect(peer)).await
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Libp2pError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Peers(tx)).await?;
        rx.await.map_err(|_| Libp2pError::Stopped)
    }

    /// The driver's counters.
    pub async fn stats(&self) -> Result<Libp2pStats, Libp2pError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx)).await?;
        rx.await.map_err(|_| Libp2pError::Stopped)
    }

    async fn send(&self, c: Command<M>) -> Result<(), Libp2pError> {
        self.commands
            .send(c)
            .await
            .map_err(|_| Libp2pError::Stopped)
    }
}

/// A running libp2p node: the handle, the event stream and the driver task.
pub struct Libp2pNode<M: Machine> {
    handle: Libp2pHandle<M>,
    events: mpsc::Receiver<DriverEvent<M::Event>>,
    task: JoinHandle<M>,
    peer_id: Libp2pPeerId,
    listen_addrs: Vec<Multiaddr>,
}

impl<M: Machine> fmt::Debug for Libp2pNode<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Libp2pNode")
            .field("peer_id", &self.peer_id)
            .field("listen_addrs", &self.listen_addrs)
            .finish_non_exhaustive()
    }
}

impl<M: Machine + Send + 'static> Libp2pNode<M> {
    /// A handle for commands.
    pub fn handle(&self) -> Libp2pHandle<M> {
        self.handle.clone()
    }

    /// The node's libp2p peer id.
    pub const fn peer_id(&self) -> Libp2pPeerId {
        self.peer_id
    }

    /// The addresses the listeners are bound to, each ending in `/p2p/<peer id>`.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// The next event; `None` once the driver has stopped.
    pub async fn next_event(&mut self) -> Option<DriverEvent<M::Event>> {
        self.events.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_next_event(&mut self) -> Option<DriverEvent<M::Event>> {
        self.events.try_recv().ok()
    }

    /// Stops the driver (connections close; the machine is told its peers are gone) and hands
    /// the machine back.
    pub async fn shutdown(self) -> Result<M, Libp2pError> {
        let _ = self.handle.send(Command::Shutdown).await;
        self.task.await.map_err(|_| Libp2pError::Stopped)
    }
}
