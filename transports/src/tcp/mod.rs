//! A devp2p-style TCP transport on tokio.
//!
//! Each connection runs a Noise `XX` handshake whose static key is the node's [`NodeKey`]
//! ([`noise`]), then both sides send a [`Hello`](wire::Hello) listing the protocols they
//! *serve* with versions (libp2p's identify; [`Machine::protocols`]). The machine is told the
//! protocols the peer serves. A stream frame or a request is carried to a peer that serves its
//! protocol, a response from a side that serves it; other frames are refused and counted
//! ([`TcpStats::dropped_refused`]), so a light node that serves almost nothing still queries,
//! subscribes and lightpushes through a full node. If the connection could carry nothing (the
//! peer serves nothing we speak and we serve nothing) the two part with
//! [`DisconnectReason::UselessPeer`]. After that the
//! connection carries frames tagged with the protocol and the request id, pings and pongs, and a
//! disconnect reason at the end ([`wire`] has the bytes). Lengths are checked against
//! [`Protocol::max_frame_len`](waku_core::net::Protocol::max_frame_len) before anything of a body
//! is buffered.
//!
//! # One task owns the machine
//!
//! [`start`] spawns the driver task, which owns the [`Machine`] and runs the loop every driver
//! shares (DESIGN.md, "The drivers"):
//!
//! 1. drain [`Machine::poll_transmit`] (each frame goes to its connection's bounded queue) and
//!    [`Machine::poll_event`] (each event goes to the application as
//!    [`DriverEvent::Machine`]);
//! 2. wait for whichever comes first: a frame or a connection change from a connection task,
//!    the instant of [`Machine::poll_timeout`], a static peer due for a redial, or a command
//!    from a [`TcpHandle`];
//! 3. feed it to the machine with the real clock as [`Now`], and go to 1.
//!
//! Connection tasks own their sockets and Noise state and talk to the driver over channels;
//! there is no lock around protocol state. Static peers are redialled with exponential backoff
//! whenever their connection is down. Two connections to the same node key are resolved the
//! same way on both ends (the one dialled by the lower key is kept).
//!
//! # Example
//!
//! ```
//! use std::collections::VecDeque;
//! use std::time::Instant;
//! use transports::tcp::{self, DriverEvent, NodeKey, StaticPeer, TcpConfig};
//! use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};
//!
//! /// Says hello to every new peer and reports what it hears.
//! #[derive(Default)]
//! struct Greeter { out: VecDeque<Transmit>, heard: VecDeque<Vec<u8>> }
//!
//! impl Machine for Greeter {
//!     type Event = Vec<u8>;
//!     fn handle_connected(&mut self, _: Now, peer: PeerId, _: &[Protocol]) {
//!         let t = Transmit { to: peer, protocol: Protocol::Relay, kind: FrameKind::Stream, bytes: b"hi".to_vec() };
//!         self.out.push_back(t);
//!     }
//!     fn handle_disconnected(&mut self, _: Now, _: PeerId) {}
//!     fn handle_frame(&mut self, _: Now, _: PeerId, _: Protocol, _: FrameKind, f: &[u8]) {
//!         self.heard.push_back(f.to_vec());
//!     }
//!     fn handle_timeout(&mut self, _: Now) {}
//!     fn poll_transmit(&mut self) -> Option<Transmit> { self.out.pop_front() }
//!     fn poll_event(&mut self) -> Option<Vec<u8>> { self.heard.pop_front() }
//!     fn poll_timeout(&self) -> Option<Instant> { None }
//!     fn protocols(&self) -> Vec<Protocol> { vec![Protocol::Relay] }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let loopback = "127.0.0.1:0".parse()?;
//! let mut bob_cfg = TcpConfig::new(NodeKey::from_bytes([2; 32]), [20; 32]);
//! bob_cfg.listen = Some(loopback);
//! let mut bob = tcp::start(bob_cfg, Greeter::default()).await?;
//!
//! let mut alice_cfg = TcpConfig::new(NodeKey::from_bytes([1; 32]), [10; 32]);
//! alice_cfg.static_peers.push(StaticPeer { addr: bob.local_addr().unwrap(), key: Some(bob.public_key()) });
//! let mut alice = tcp::start(alice_cfg, Greeter::default()).await?;
//!
//! // Alice's greeting reaches Bob's machine; Bob's events arrive on his node.
//! loop {
//!     match bob.next_event().await {
//!         Some(DriverEvent::Machine(bytes)) => { assert_eq!(bytes, b"hi"); break; }
//!         Some(_) => continue,
//!         None => panic!("driver stopped"),
//!     }
//! }
//! // Commands run on the machine inside the driver task, at the driver's clock.
//! let peers = alice.handle().call(|_m: &mut Greeter, now: Now| now.unix_millis() > 0).await?;
//! assert!(peers);
//! let _machine: Greeter = alice.shutdown().await?;
//! bob.shutdown().await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol};

mod conn;
pub mod noise;
#[cfg(test)]
mod tests;
pub mod wire;

use conn::{Close, ConnEvent, ConnId, Outbound, Setup, Timeouts};
pub use noise::NodeKey;
pub use wire::{DisconnectReason, WireError};

/// Frames queued for one connection's writer. A peer that lets this many pile up is not
/// reading; it is disconnected with [`DisconnectReason::Overloaded`] rather than buffered
/// without bound.
pub const MAX_OUTBOUND_QUEUE: usize = 1024;

/// Events waiting for the application. Past this the driver drops events (and counts them in
/// [`TcpStats::events_dropped`]) rather than stall the machine behind a slow reader.
pub const MAX_PENDING_EVENTS: usize = 4096;

/// Commands waiting for the driver; senders wait when it is full.
pub const MAX_PENDING_COMMANDS: usize = 256;

/// Connection events waiting for the driver; connection readers wait when it is full, which
/// pushes back on the peers.
pub const MAX_CONN_EVENTS: usize = 1024;

/// Connections being set up at once (handshake and Hello), beyond [`TcpConfig::max_peers`].
/// Further inbound sockets are closed at once.
pub const MAX_PENDING_CONNECTIONS: usize = 64;

/// A peer to keep connected: dialled at start and redialled with backoff whenever down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticPeer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its node key, if known; a different key fails the connection with
    /// [`DisconnectReason::UnexpectedIdentity`].
    pub key: Option<[u8; 32]>,
}

/// Settings of a TCP node.
#[derive(Clone)]
pub struct TcpConfig {
    /// The node key: the Noise static key and the node's identity.
    pub key: NodeKey,
    /// Seed of the RNG that seeds each handshake's ephemeral keys. Must be fresh for every
    /// process (take it from the OS RNG); reusing it reuses ephemeral keys.
    pub rng_seed: [u8; 32],
    /// Where to accept connections (`None`: dial only).
    pub listen: Option<SocketAddr>,
    /// Peers to keep connected.
    pub static_peers: Vec<StaticPeer>,
    /// The client name sent in the Hello.
    pub client: String,
    /// Time allowed for the handshake and the Hello.
    pub handshake_timeout: Duration,
    /// A ping is sent this often.
    pub ping_interval: Duration,
    /// A connection with nothing received for this long is closed with
    /// [`DisconnectReason::Timeout`].
    pub idle_timeout: Duration,
    /// First redial delay of a static peer; doubles per failure.
    pub backoff_initial: Duration,
    /// Largest redial delay.
    pub backoff_max: Duration,
    /// Connected peers at most; more are refused with [`DisconnectReason::TooManyPeers`].
    pub max_peers: usize,
}

impl TcpConfig {
    /// Defaults: no listener, no static peers, 10 s handshake, 15 s pings, 45 s idle timeout,
    /// redials from 500 ms up to 60 s, 64 peers.
    pub fn new(key: NodeKey, rng_seed: [u8; 32]) -> Self {
        TcpConfig {
            key,
            rng_seed,
            listen: None,
            static_peers: Vec::new(),
            client: concat!("status-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            max_peers: 64,
        }
    }
}

impl fmt::Debug for TcpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpConfig")
            .field("key", &self.key)
            .field("listen", &self.listen)
            .field("static_peers", &self.static_peers)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Why a connection failed before it reached the machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(std::io::ErrorKind),
    /// The handshake and Hello took longer than [`TcpConfig::handshake_timeout`].
    #[error("handshake timed out")]
    Timeout,
    /// The Noise handshake failed (wrong protocol, bad key, tampered bytes).
    #[error("Noise handshake failed")]
    Handshake,
    /// The peer's Hello or first packets were malformed.
    #[error("malformed packet: {0}")]
    Malformed(WireError),
    /// One side refused the connection with this reason.
    #[error("refused by {}: {reason:?}", if *by_remote { "the peer" } else { "us" })]
    Rejected {
        /// The reason.
        reason: DisconnectReason,
        /// Whether the peer sent it.
        by_remote: bool,
    },
}

/// Why the driver could not start or a command could not reach it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TcpError {
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {kind}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        kind: std::io::ErrorKind,
    },
    /// The machine's protocol list has more than [`wire::MAX_CAPABILITIES`] entries.
    #[error("too many protocols for the Hello")]
    TooManyProtocols,
    /// The driver task has stopped.
    #[error("the driver has stopped")]
    Stopped,
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The machine's handle for it.
    pub peer: PeerId,
    /// Its node key (from the handshake).
    pub key: [u8; 32],
    /// Its socket address.
    pub addr: SocketAddr,
    /// Whether we dialled it.
    pub outbound: bool,
    /// The protocols the peer serves, from its Hello (what the machine was told).
    pub protocols: Vec<Protocol>,
    /// The client name from its Hello.
    pub client: String,
    /// The port it listens on, from its Hello (0: none).
    pub listen_port: u16,
}

/// What the driver reports to the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum DriverEvent<E> {
    /// An event of the machine.
    Machine(E),
    /// A peer connected (after the machine's `handle_dialed` if we dialled it, else its
    /// `handle_connected`).
    Connected(PeerInfo),
    /// A peer disconnected (after the machine's `handle_disconnected`).
    Disconnected {
        /// The machine's handle.
        peer: PeerId,
        /// Its node key.
        key: [u8; 32],
        /// Why.
        reason: DisconnectReason,
        /// Whether the peer said so.
        by_remote: bool,
    },
    /// A connection failed before reaching the machine.
    ConnectFailed {
        /// The remote address.
        addr: SocketAddr,
        /// Whether we dialled.
        outbound: bool,
        /// Why.
        error: ConnectError,
    },
}

/// Counters of the driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Frames handed to connections.
    pub frames_sent: u64,
    /// Frames handed to the machine.
    pub frames_received: u64,
    /// Transmits for a peer handle with no connection.
    pub dropped_unroutable: u64,
    /// Transmits on a protocol the serving side does not list (the peer for stream frames and
    /// requests, this node for responses), or over its cap.
    pub dropped_refused: u64,
    /// Events the application did not take in time.
    pub events_dropped: u64,
    /// Connections that reached the machine.
    pub connections: u64,
    /// Connections that failed before.
    pub failed_connections: u64,
}

type Call<M> = Box<dyn FnOnce(&mut M, Now) + Send>;

enum Command<M> {
    Call(Call<M>),
    Dial(StaticPeer, bool),
    Disconnect(PeerId),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Stats(oneshot::Sender<TcpStats>),
    Shutdown,
}

/// Sends commands to a running driver. Cheap to clone.
pub struct TcpHandle<M> {
    commands: mpsc::Sender<Command<M>>,
}

impl<M> Clone for TcpHandle<M> {
    fn clone(&self) -> Self {
        TcpHandle {
            commands: self.commands.clone(),
        }
    }
}

impl<M> fmt::Debug for TcpHandle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpHandle").finish_non_exhaustive()
    }
}

impl<M: Machine + Send + 'static> TcpHandle<M> {
    /// Runs `f` on the machine inside the driver task (then the driver drains the machine) and
    /// returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut M, Now) -> R + Send + 'static,
    ) -> Result<R, TcpError> {
        let (tx, rx) = oneshot::channel();
        let call: Call<M> = Box::new(move |m, now| {
            let _ = tx.send(f(m, now));
        });
        self.send(Command::Call(call)).await?;
        rx.await.map_err(|_| TcpError::Stopped)
    }

    /// Dials `peer` once (no redial).
    pub async fn dial(&self, peer: StaticPeer) -> Result<(), TcpError> {
        self.send(Command::Dial(peer, false)).await
    }

    /// Adds a static peer: dialled now and redialled whenever down.
    pub async fn add_static_peer(&self, peer: StaticPeer) -> Result<(), TcpError> {
        self.send(Command::Dial(peer, true)).await
    }

    /// Disconnects a peer with [`DisconnectReason::Requested`].
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), TcpError> {
        self.send(Command::Disconnect(peer)).await
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, TcpError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Peers(tx)).await?;
        rx.await.map_err(|_| TcpError::Stopped)
    }

    /// The driver's counters.
    pub async fn stats(&self) -> Result<TcpStats, TcpError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx)).await?;
        rx.await.map_err(|_| TcpError::Stopped)
    }

    async fn send(&self, c: Command<M>) -> Result<(), TcpError> {
        self.commands.send(c).await.map_err(|_| TcpError::Stopped)
    }
}

/// A running TCP node: the handle, the event stream and the driver task.
pub struct TcpNode<M: Machine> {
    handle: TcpHandle<M>,
    events: mpsc::Receiver<DriverEvent<M::Event>>,
    task: JoinHandle<M>,
    local_addr: Option<SocketAddr>,
    public_key: [u8; 32],
}

impl<M: Machine> fmt::Debug for TcpNode<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpNode")
            .field("local_addr", &self.local_addr)
            .field("public_key", &noise::hex(&self.public_key))
            .finish_non_exhaustive()
    }
}

impl<M: Machine + Send + 'static> TcpNode<M> {
    /// A handle for commands.
    pub fn handle(&self) -> TcpHandle<M> {
        self.handle.clone()
    }

    /// The address the listener is bound to.
    pub const fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The node's public key.
    pub const fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The next event; `None` once the driver has stopped.
    pub async fn next_event(&mut self) -> Option<DriverEvent<M::Event>> {
        self.events.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_next_event(&mut self) -> Option<DriverEvent<M::Event>> {
        self.events.try_recv().ok()
    }

    /// Stops the driver: every connection is closed with [`DisconnectReason::Shutdown`] (the
    /// machine is told), and the machine is handed back.
    pub async fn shutdown(self) -> Result<M, TcpError> {
        let _ = self.handle.send(Command::Shutdown).await;
        self.task.await.map_err(|_| TcpError::Stopped)
    }
}

/// Binds the listener (if any), spawns the driver task with `machine` and dials the static
/// peers. Must be called inside a tokio runtime.
pub async fn start<M>(config: TcpConfig, machine: M) -> Result<TcpNode<M>, TcpError>
where
    M: Machine + Send + 'static,
    M::Event: Send + 'static,
{
    let protocols = machine.protocols();
    if protocols.len() > wire::MAX_CAPABILITIES {
        return Err(TcpError::TooManyProtocols);
    }
    let listener = match config.listen {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| TcpError::Bind {
            addr,
            kind: e.kind(),
        })?),
        None => None,
    };
    let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    let (cmd_tx, cmd_rx) = mpsc::channel(MAX_PENDING_COMMANDS);
    let (ev_tx, ev_rx) = mpsc::channel(MAX_PENDING_EVENTS);
    let (conn_tx, conn_rx) = mpsc::channel(MAX_CONN_EVENTS);
    let hello = wire::Hello::new(
        &config.client,
        local_addr.map_or(0, |a| a.port()),
        &protocols,
    );
    hello.encode().map_err(|_| TcpError::TooManyProtocols)?;
    let public_key = config.key.public();
    let accept = listener.map(|l| tokio::spawn(accept_loop(l, conn_tx.clone())));
    let now = clock();
    let dialers = config
        .static_peers
        .iter()
        .map(|&p| Dialer::new(p, true, config.backoff_initial, now.instant))
        .collect();
    let driver = Driver {
        rng: ChaCha20Rng::from_seed(config.rng_seed),
        config,
        machine,
        hello,
        protocols,
        events: ev_tx,
        conn_tx,
        next_conn: 1,
        next_peer: 1,
        pending: BTreeMap::new(),
        peers: BTreeMap::new(),
        by_conn: BTreeMap::new(),
        by_key: BTreeMap::new(),
        dialers,
        stats: TcpStats::default(),
        last: now.instant,
    };
    let task = tokio::spawn(driver.run(cmd_rx, conn_rx, accept));
    Ok(TcpNode {
        handle: TcpHandle { commands: cmd_tx },
        events: ev_rx,
        task,
        local_addr,
        public_key,
    })
}

async fn accept_loop(listener: TcpListener, tx: mpsc::Sender<ConnEvent>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if tx.send(ConnEvent::Accepted(stream, addr)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The real clock, the one place this driver reads it.
#[allow(clippy::disallowed_methods)]
fn clock() -> Now {
    let unix_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    Now {
        instant: Instant::now(),
        unix_nanos,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DialState {
    /// Waiting to dial at this instant.
    Idle(Instant),
    Dialing(ConnId),
    Connected(PeerId),
    /// A one-shot dial that is over.
    Done,
}

struct Dialer {
    peer: StaticPeer,
    persistent: bool,
    state: DialState,
    backoff: Duration,
}

impl Dialer {
    const fn new(peer: StaticPeer, persistent: bool, backoff: Duration, now: Instant) -> Self {
        Dialer {
            peer,
            persistent,
            state: DialState::Idle(now),
            backoff,
        }
    }
}

struct Pending {
    addr: SocketAddr,
    outbound: bool,
}

struct PeerSlot {
    info: PeerInfo,
    conn: ConnId,
    tx: mpsc::Sender<Outbound>,
    close: mpsc::Sender<Close>,
}

struct Driver<M: Machine> {
    config: TcpConfig,
    machine: M,
    hello: wire::Hello,
    protocols: Vec<Protocol>,
    rng: ChaCha20Rng,
    events: mpsc::Sender<DriverEvent<M::Event>>,
    conn_tx: mpsc::Sender<ConnEvent>,
    next_conn: ConnId,
    next_peer: u64,
    pending: BTreeMap<ConnId, Pending>,
    peers: BTreeMap<PeerId, PeerSlot>,
    by_conn: BTreeMap<ConnId, PeerId>,
    by_key: BTreeMap<[u8; 32], PeerId>,
    dialers: Vec<Dialer>,
    stats: TcpStats,
    last: Instant,
}

impl<M> Driver<M>
where
    M: Machine + Send + 'static,
    M::Event: Send + 'static,
{
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command<M>>,
        mut conns: mpsc::Receiver<ConnEvent>,
        accept: Option<JoinHandle<()>>,
    ) -> M {
        loop {
            self.drain();
            self.dial_due();
            let timeout = self.machine.poll_timeout();
            let redial = self.next_redial();
            let sleep_until = |t: Option<Instant>| async move {
                match t {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                c = commands.recv() => match c {
                    None | Some(Command::Shutdown) => break,
                    Some(c) => self.command(c),
                },
                e = conns.recv() => {
                    if let Some(e) = e {
                        self.conn_event(e);
                    }
                }
                () = sleep_until(timeout) => {
                    let now = self.now();
                    self.machine.handle_timeout(now);
                }
                () = sleep_until(redial) => {}
            }
        }
        if let Some(a) = accept {
            // Wait until the listener is really closed, so the address can be bound again.
            a.abort();
            let _ = a.await;
        }
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for p in peers {
            self.drop_peer(p, DisconnectReason::Shutdown, false, true);
        }
        self.drain();
        self.machine
    }

    fn now(&mut self) -> Now {
        let mut now = clock();
        // Monotonic for the machine even if two reads tie or the platform misbehaves.
        now.instant = now.instant.max(self.last);
        self.last = now.instant;
        now
    }

    fn drain(&mut self) {
        while let Some(t) = self.machine.poll_transmit() {
            let Some(slot) = self.peers.get(&t.to) else {
                self.stats.dropped_unroutable += 1;
                continue;
            };
            // Carried only to or from the side that serves the protocol (see `wire`).
            let served = match t.kind {
                FrameKind::Stream | FrameKind::Request(_) => &slot.info.protocols,
                FrameKind::Response(_) => &self.protocols,
            };
            if !served.contains(&t.protocol) || t.bytes.len() > t.protocol.max_frame_len() {
                self.stats.dropped_refused += 1;
                continue;
            }
            let out = Outbound::Frame {
                protocol: t.protocol,
                kind: t.kind,
                body: t.bytes,
            };
            match slot.tx.try_send(out) {
                Ok(()) => self.stats.frames_sent += 1,
                Err(_) => {
                    // Full (the peer is not reading) or closed (the connection is ending).
                    self.drop_peer(t.to, DisconnectReason::Overloaded, false, true);
                }
            }
        }
        while let Some(e) = self.machine.poll_event() {
            self.emit(DriverEvent::Machine(e));
        }
    }

    fn emit(&mut self, e: DriverEvent<M::Event>) {
        if self.events.try_send(e).is_err() {
            self.stats.events_dropped += 1;
        }
    }

    fn command(&mut self, c: Command<M>) {
        match c {
            Command::Call(f) => {
                let now = self.now();
                f(&mut self.machine, now);
            }
            Command::Dial(peer, persistent) => {
                let now = self.now().instant;
                self.dialers.push(Dialer::new(
                    peer,
                    persistent,
                    self.config.backoff_initial,
                    now,
                ));
            }
            Command::Disconnect(peer) => {
                self.drop_peer(peer, DisconnectReason::Requested, false, true);
            }
            Command::Peers(tx) => {
                let _ = tx.send(self.peers.values().map(|s| s.info.clone()).collect());
            }
            Command::Stats(tx) => {
                let _ = tx.send(self.stats.clone());
            }
            Command::Shutdown => {}
        }
    }

    fn next_redial(&self) -> Option<Instant> {
        self.dialers
            .iter()
            .filter_map(|d| match d.state {
                DialState::Idle(t) => Some(t),
                _ => None,
            })
            .min()
    }

    fn dial_due(&mut self) {
        let now = self.now().instant;
        for i in 0..self.dialers.len() {
            let Some(d) = self.dialers.get(i) else {
                continue;
            };
            if !matches!(d.state, DialState::Idle(t) if t <= now) {
                continue;
            }
            // Already connected to that key by another route (e.g. it dialled us).
            if let Some(&p) = d.peer.key.as_ref().and_then(|k| self.by_key.get(k)) {
                if let Some(d) = self.dialers.get_mut(i) {
                    d.state = DialState::Connected(p);
                }
                continue;
            }
            let peer = d.peer;
            let conn = self.spawn_conn(None, peer.addr, true, peer.key);
            if let Some(d) = self.dialers.get_mut(i) {
                d.state = DialState::Dialing(conn);
            }
        }
    }

    /// Starts a connection task (dialling first when `stream` is `None`).
    fn spawn_conn(
        &mut self,
        stream: Option<tokio::net::TcpStream>,
        addr: SocketAddr,
        outbound: bool,
        expected: Option<[u8; 32]>,
    ) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let setup = Setup {
            id,
            key: self.config.key.clone(),
            seed,
            hello: self.hello.clone(),
            expected,
            outbound,
            addr,
            timeouts: Timeouts {
                handshake: self.config.handshake_timeout,
                ping_interval: self.config.ping_interval,
                idle: self.config.idle_timeout,
            },
            events: self.conn_tx.clone(),
        };
        self.pending.insert(id, Pending { addr, outbound });
        let handshake = self.config.handshake_timeout;
        tokio::spawn(async move {
            let stream = match stream {
                Some(s) => s,
                None => {
                    let error =
                        match tokio::time::timeout(handshake, tokio::net::TcpStream::connect(addr))
                            .await
                        {
                            Ok(Ok(s)) => {
                                conn::run(s, setup).await;
                                return;
                            }
                            Ok(Err(e)) => ConnectError::Io(e.kind()),
                            Err(_) => ConnectError::Timeout,
                        };
                    let _ = setup
                        .events
                        .send(ConnEvent::Failed { conn: id, error })
                        .await;
                    return;
                }
            };
            conn::run(stream, setup).await;
        });
        id
    }

    fn conn_event(&mut self, e: ConnEvent) {
        match e {
            ConnEvent::Accepted(stream, addr) => {
                if self.pending.len() >= MAX_PENDING_CONNECTIONS {
                    drop(stream);
                    return;
                }
                self.spawn_conn(Some(stream), addr, false, None);
            }
            ConnEvent::Failed { conn, error } => {
                let Some(p) = self.pending.remove(&conn) else {
                    return;
                };
                self.stats.failed_connections += 1;
                self.dial_failed(conn);
                self.emit(DriverEvent::ConnectFailed {
                    addr: p.addr,
                    outbound: p.outbound,
                    error,
                });
            }
            ConnEvent::Up(up) => self.conn_up(*up),
            ConnEvent::Frame {
                conn,
                protocol,
                kind,
                body,
            } => {
                let Some(&peer) = self.by_conn.get(&conn) else {
                    return;
                };
                self.stats.frames_received += 1;
                let now = self.now();
                self.machine.handle_frame(now, peer, protocol, kind, &body);
            }
            ConnEvent::Down {
                conn,
                reason,
                by_remote,
            } => {
                if let Some(&peer) = self.by_conn.get(&conn) {
                    self.drop_peer(peer, reason, by_remote, false);
                }
            }
        }
    }

    fn conn_up(&mut self, up: conn::Up) {
        if self.pending.remove(&up.conn).is_none() {
            return;
        }
        let refuse = |reason| Close {
            reason,
            by_remote: false,
        };
        if let Some(&existing) = self.by_key.get(&up.remote_key) {
            let existing_outbound = self.peers.get(&existing).is_some_and(|s| s.info.outbound);
            // The connection dialled by the lower key wins; between two in the same direction
            // the newer wins (the older is most likely dead).
            let preferred_outbound = self.config.key.public() < up.remote_key;
            let keep_new = up.outbound == existing_outbound || up.outbound == preferred_outbound;
            if keep_new {
                self.drop_peer(existing, DisconnectReason::AlreadyConnected, false, true);
            } else {
                let _ = up
                    .close
                    .try_send(refuse(DisconnectReason::AlreadyConnected));
                self.dial_settled(up.conn, Some(existing));
                return;
            }
        }
        if self.peers.len() >= self.config.max_peers {
            let _ = up.close.try_send(refuse(DisconnectReason::TooManyPeers));
            self.dial_failed(up.conn);
            self.emit(DriverEvent::ConnectFailed {
                addr: up.addr,
                outbound: up.outbound,
                error: ConnectError::Rejected {
                    reason: DisconnectReason::TooManyPeers,
                    by_remote: false,
                },
            });
            return;
        }
        let peer = PeerId(self.next_peer);
        self.next_peer += 1;
        let info = PeerInfo {
            peer,
            key: up.remote_key,
            addr: up.addr,
            outbound: up.outbound,
            protocols: up.remote.clone(),
            client: up.hello.client.clone(),
            listen_port: up.hello.listen_port,
        };
        self.peers.insert(
            peer,
            PeerSlot {
                info: info.clone(),
                conn: up.conn,
                tx: up.tx,
                close: up.close,
            },
        );
        self.by_conn.insert(up.conn, peer);
        self.by_key.insert(up.remote_key, peer);
        self.stats.connections += 1;
        self.dial_settled(up.conn, Some(peer));
        // A static peer that reached us first counts as connected for its dialer.
        for d in &mut self.dialers {
            if d.peer.key == Some(up.remote_key) && matches!(d.state, DialState::Idle(_)) {
                d.state = DialState::Connected(peer);
            }
        }
        let now = self.now();
        if info.outbound {
            self.machine.handle_dialed(now, peer, &up.remote);
        } else {
            self.machine.handle_connected(now, peer, &up.remote);
        }
        self.emit(DriverEvent::Connected(info));
    }

    /// Removes a peer, tells the machine, and (if `close`) tells the connection to end.
    fn drop_peer(&mut self, peer: PeerId, reason: DisconnectReason, by_remote: bool, close: bool) {
        let Some(slot) = self.peers.remove(&peer) else {
            return;
        };
        self.by_conn.remove(&slot.conn);
        if self.by_key.get(&slot.info.key) == Some(&peer) {
            self.by_key.remove(&slot.info.key);
        }
        if close {
            let _ = slot.close.try_send(Close {
                reason,
                by_remote: false,
            });
        }
        let now = self.now();
        for d in &mut self.dialers {
            if d.state == DialState::Connected(peer) {
                d.state = if d.persistent {
                    DialState::Idle(now.instant + d.backoff)
                } else {
                    DialState::Done
                };
            }
        }
        self.dialers.retain(|d| d.state != DialState::Done);
        self.machine.handle_disconnected(now, peer);
        self.emit(DriverEvent::Disconnected {
            peer,
            key: slot.info.key,
            reason,
            by_remote,
        });
    }

    fn dial_failed(&mut self, conn: ConnId) {
        let now = self.now().instant;
        let max = self.config.backoff_max;
        for d in &mut self.dialers {
            if d.state == DialState::Dialing(conn) {
                if d.persistent {
                    d.state = DialState::Idle(now + d.backoff);
                    d.backoff = (d.backoff * 2).min(max);
                } else {
                    d.state = DialState::Done;
                }
            }
        }
        self.dialers.retain(|d| d.state != DialState::Done);
    }

    fn dial_settled(&mut self, conn: ConnId, peer: Option<PeerId>) {
        let initial = self.config.backoff_initial;
        for d in &mut self.dialers {
            if let (true, Some(p)) = (d.state == DialState::Dialing(conn), peer) {
                d.state = DialState::Connected(p);
                d.backoff = initial;
            }
        }
    }
}
