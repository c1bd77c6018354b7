//! The driver task: one loop owning the swarm and the machine; stream tasks move bytes.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::libp2p::core::Transport as _;
use ::libp2p::core::muxing::StreamMuxerBox;
use ::libp2p::core::transport::Boxed;
use ::libp2p::core::upgrade::{SelectUpgrade, Version};
use ::libp2p::multiaddr::Protocol as MaProtocol;
use ::libp2p::swarm::dial_opts::DialOpts;
use ::libp2p::swarm::{ConnectionId, NetworkBehaviour, Swarm, SwarmEvent};
use ::libp2p::{
    Stream, StreamProtocol, connection_limits, dns, identify, noise, ping, tcp, websocket, yamux,
};
use futures::{AsyncWriteExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol, Transmit};

use super::behaviour::{PendingPerIp, StreamEvent, WakuStreams};
use super::frames::{read_frame, write_frame};
use super::{
    Command, DriverEvent, IDENTIFY_WAIT, Keypair, Libp2pConfig, Libp2pError, Libp2pHandle,
    Libp2pNode, Libp2pPeerId, Libp2pStats, MAX_BYTES_BEFORE_IDENTIFY,
    MAX_BYTES_BEFORE_IDENTIFY_TOTAL, MAX_FRAMES_BEFORE_IDENTIFY, MAX_INBOUND_STREAMS_PER_PEER,
    MAX_PENDING_REQUESTS, MAX_QUEUED_EVENTS, MAX_QUEUED_STREAM_FRAMES, Multiaddr, PeerInfo,
    REQUEST_TIMEOUT,
};

/// Frames from stream tasks queued for the driver; a full queue makes readers wait
/// (backpressure onto the peers).
const STREAM_CHANNEL: usize = 1024;

/// Time allowed for a connection's Noise and muxer negotiation.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(20);

/// The shortest redial delay of a static peer, whatever the configuration says (a zero
/// backoff would redial a refused address in a busy loop).
const MIN_BACKOFF: Duration = Duration::from_millis(10);

/// How long [`start`] waits for the listeners to report their addresses.
const LISTEN_WAIT: Duration = Duration::from_secs(10);

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "::libp2p::swarm::derive_prelude")]
struct Behaviour {
    per_ip: PendingPerIp,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    streams: WakuStreams,
}

/// What stream tasks tell the driver.
enum FromStream {
    /// A long-lived stream frame or a response to our request.
    Frame {
        peer: PeerId,
        protocol: Protocol,
        kind: FrameKind,
        bytes: Vec<u8>,
    },
    /// An inbound request; the response goes back through `reply`.
    Request {
        peer: PeerId,
        protocol: Protocol,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// A frame was refused by the framing.
    BadFrame,
    /// An inbound stream of `peer` ended.
    InboundClosed { peer: PeerId },
}

/// What waits for an outbound stream.
enum PendingOpen {
    Writer {
        peer: PeerId,
        rx: mpsc::Receiver<Vec<u8>>,
    },
    Request {
        peer: PeerId,
        protocol: Protocol,
        id: u64,
        bytes: Vec<u8>,
    },
}

impl PendingOpen {
    const fn peer(&self) -> PeerId {
        match self {
            PendingOpen::Writer { peer, .. } | PendingOpen::Request { peer, .. } => *peer,
        }
    }
}

struct Peer {
    handle: PeerId,
    since: Instant,
    /// Whether one of its connections was dialled by us (the machine hears `handle_dialed`).
    outbound: bool,
    identified: bool,
    told: bool,
    protocols: Vec<Protocol>,
    agent_version: String,
    buffered: VecDeque<FromStream>,
    /// Bytes of the frames in `buffered`.
    buffered_bytes: usize,
    inbound_streams: usize,
    next_request_id: u64,
    replies: BTreeMap<u64, oneshot::Sender<Vec<u8>>>,
    writers: BTreeMap<Protocol, mpsc::Sender<Vec<u8>>>,
}

impl Peer {
    fn info(&self, libp2p_peer: Libp2pPeerId) -> PeerInfo {
        PeerInfo {
            peer: self.handle,
            libp2p_peer,
            outbound: self.outbound,
            identified: self.identified,
            protocols: self.protocols.clone(),
            agent_version: self.agent_version.clone(),
        }
    }
}

/// Where a static peer ([`Libp2pConfig::dial`]) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StaticState {
    /// Down: dial at this instant.
    Idle(Instant),
    /// A dial is under way.
    Dialing(ConnectionId),
    /// Connected (by our dial or its own).
    Up(Libp2pPeerId),
}

/// A peer to keep connected.
struct StaticPeer {
    addr: Multiaddr,
    /// From `/p2p/…`, or learnt when a dial succeeded.
    peer: Option<Libp2pPeerId>,
    state: StaticState,
    /// The delay before the next dial after a failure.
    backoff: Duration,
}

struct Driver<M: Machine> {
    machine: M,
    swarm: Swarm<Behaviour>,
    statics: Vec<StaticPeer>,
    backoff_initial: Duration,
    backoff_max: Duration,
    peers: BTreeMap<Libp2pPeerId, Peer>,
    /// Bytes buffered for peers not told yet, all together.
    buffered_total: usize,
    handles: BTreeMap<PeerId, Libp2pPeerId>,
    next_handle: u64,
    next_token: u64,
    pending: BTreeMap<u64, PendingOpen>,
    to_driver: mpsc::Sender<FromStream>,
    from_streams: mpsc::Receiver<FromStream>,
    commands: mpsc::Receiver<Command<M>>,
    events: mpsc::Sender<DriverEvent<M::Event>>,
    stats: super::Libp2pStats,
}

/// The real clock, read only here (drivers own the clock; the machines never read it).
#[allow(clippy::disallowed_methods)]
fn now() -> Now {
    let unix_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Now {
        instant: Instant::now(),
        unix_nanos,
    }
}

fn stream_protocol(p: Protocol) -> StreamProtocol {
    StreamProtocol::new(p.id())
}

/// Whether frames of `p` travel on long-lived streams (as opposed to one stream per request).
const fn long_lived(p: Protocol) -> bool {
    matches!(p, Protocol::Relay | Protocol::FilterPush)
}

fn build_transport(key: &Keypair) -> Result<Boxed<(Libp2pPeerId, StreamMuxerBox)>, Libp2pError> {
    let tcp = || tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    // WebSocket first: a `/tcp/…/ws` address must not be taken by plain TCP.
    let base = websocket::Config::new(tcp()).or_transport(tcp());
    let base = dns::tokio::Transport::system(base)
        .map_err(|e| Libp2pError::Transport(format!("resolver: {e}")))?;
    let noise = noise::Config::new(key).map_err(|e| Libp2pError::Transport(e.to_string()))?;
    Ok(base
        .upgrade(Version::V1)
        .authenticate(noise)
        .multiplex(SelectUpgrade::new(
            yamux::Config::default(),
            libp2p_mplex::Config::default(),
        ))
        .timeout(UPGRADE_TIMEOUT)
        .boxed())
}

/// Binds the listeners, waits for their addresses, dials the static peers of
/// [`Libp2pConfig::dial`] (an address the swarm refuses at once fails the start) and spawns the
/// driver task with `machine`. Must be called inside a tokio runtime.
pub async fn start<M>(config: Libp2pConfig, machine: M) -> Result<Libp2pNode<M>, Libp2pError>
where
    M: Machine + Send + 'static,
    M::Event: Send + 'static,
{
    let mut served = machine.protocols();
    served.sort();
    served.dedup();
    let key = config.keypair.clone();
    let local = key.public().to_peer_id();
    let transport = build_transport(&key)?;
    let l = config.limits;
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_pending_incoming(Some(l.max_pending_incoming))
        .with_max_pending_outgoing(Some(l.max_pending_outgoing))
        .with_max_established(Some(l.max_established))
        .with_max_established_per_peer(Some(l.max_established_per_peer));
    let behaviour = Behaviour {
        per_ip: PendingPerIp::new(l.max_pending_incoming_per_ip),
        limits: connection_limits::Behaviour::new(limits),
        identify: identify::Behaviour::new(
            identify::Config::new("/ipfs/id/1.0.0".to_owned(), key.public())
                .with_agent_version(config.agent_version.clone()),
        ),
        ping: ping::Behaviour::new(ping::Config::new()),
        streams: WakuStreams::new(served.iter().map(|p| stream_protocol(*p)).collect()),
    };
    let mut swarm = Swarm::new(
        transport,
        behaviour,
        local,
        ::libp2p::swarm::Config::with_tokio_executor()
            .with_idle_connection_timeout(config.idle_timeout),
    );
    let mut listeners = Vec::new();
    for addr in &config.listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| Libp2pError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        listeners.push((id, addr.clone()));
    }
    let mut listen_addrs = Vec::new();
    let mut bound = Vec::new();
    let wait = tokio::time::sleep(LISTEN_WAIT);
    tokio::pin!(wait);
    while bound.len() < listeners.len() {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::NewListenAddr { listener_id, address } => {
                    if !bound.contains(&listener_id) {
                        bound.push(listener_id);
                    }
                    listen_addrs.push(address.with(MaProtocol::P2p(local)));
                }
                SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                    let addr = listeners
                        .iter()
                        .find(|(id, _)| *id == listener_id)
                        .map(|(_, a)| a.clone())
                        .unwrap_or_else(Multiaddr::empty);
                    let reason = match reason {
                        Ok(()) => "closed".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    return Err(Libp2pError::Listen { addr, reason });
                }
                _ => {}
            },
            () = &mut wait => {
                return Err(Libp2pError::Listen {
                    addr: config.listen.first().cloned().unwrap_or_else(Multiaddr::empty),
                    reason: "no address reported in time".to_owned(),
                });
            }
        }
    }
    let backoff_initial = config.backoff_initial.max(MIN_BACKOFF);
    let mut statics = Vec::new();
    let mut stats = Libp2pStats::default();
    for addr in &config.dial {
        let peer = match addr.iter().last() {
            Some(MaProtocol::P2p(p)) => Some(p),
            _ => None,
        };
        let opts = DialOpts::from(addr.clone());
        let id = opts.connection_id();
        swarm
            .dial(opts)
            .map_err(|e| Libp2pError::Dial(format!("{addr}: {e}")))?;
        stats.static_dials += 1;
        statics.push(StaticPeer {
            addr: addr.clone(),
            peer,
            state: StaticState::Dialing(id),
            backoff: backoff_initial,
        });
    }
    let (commands_tx, commands) = mpsc::channel(64);
    let (events, events_rx) = mpsc::channel(MAX_QUEUED_EVENTS);
    let (to_driver, from_streams) = mpsc::channel(STREAM_CHANNEL);
    let driver = Driver {
        machine,
        swarm,
        statics,
        backoff_initial,
        backoff_max: config.backoff_max.max(backoff_initial),
        peers: BTreeMap::new(),
        buffered_total: 0,
        handles: BTreeMap::new(),
        next_handle: 0,
        next_token: 0,
        pending: BTreeMap::new(),
        to_driver,
        from_streams,
        commands,
        events,
        stats,
    };
    let task = tokio::spawn(driver.run());
    Ok(Libp2pNode {
        handle: Libp2pHandle {
            commands: commands_tx,
        },
        events: events_rx,
        task,
        peer_id: local,
        listen_addrs,
    })
}

impl<M> Driver<M>
where
    M: Machine + Send + 'static,
    M::Event: Send + 'static,
{
    async fn run(mut self) -> M {
        loop {
            self.drain();
            let deadline = self.deadline();
            let sleep = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                Some(msg) = self.from_streams.recv() => self.on_stream(msg),
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(c) => self.on_command(c),
                },
                () = sleep => self.on_timer(),
            }
        }
        let now = now();
        let told: Vec<PeerId> = self
            .peers
            .values()
            .filter(|p| p.told)
            .map(|p| p.handle)
            .collect();
        for peer in told {
            self.machine.handle_disconnected(now, peer);
        }
        self.machine
    }

    fn deadline(&self) -> Option<Instant> {
        let identify = self
            .peers
            .values()
            .filter(|p| !p.told)
            .map(|p| p.since + IDENTIFY_WAIT)
            .min();
        let redial = self
            .statics
            .iter()
            .filter_map(|s| match s.state {
                StaticState::Idle(at) => Some(at),
                _ => None,
            })
            .min();
        [self.machine.poll_timeout(), identify, redial]
            .into_iter()
            .flatten()
            .min()
    }

    fn drain(&mut self) {
        while let Some(t) = self.machine.poll_transmit() {
            self.route(t);
        }
        while let Some(e) = self.machine.poll_event() {
            self.emit(DriverEvent::Machine(e));
        }
    }

    fn emit(&mut self, ev: DriverEvent<M::Event>) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(ev) {
            self.stats.events_dropped += 1;
        }
    }

    fn on_timer(&mut self) {
        let now = now();
        let due: Vec<Libp2pPeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.told && p.since + IDENTIFY_WAIT <= now.instant)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.tell(id);
        }
        self.redial(now.instant);
        if self
            .machine
            .poll_timeout()
            .is_some_and(|t| t <= now.instant)
        {
            self.machine.handle_timeout(now);
        }
    }

    /// Dials the static peers whose redial time has come (or marks them up if they connected
    /// meanwhile).
    fn redial(&mut self, now: Instant) {
        for s in &mut self.statics {
            let StaticState::Idle(at) = s.state else {
                continue;
            };
            if at > now {
                continue;
            }
            if let Some(p) = s.peer.filter(|p| self.peers.contains_key(p)) {
                s.state = StaticState::Up(p);
                continue;
            }
            let opts = DialOpts::from(s.addr.clone());
            let id = opts.connection_id();
            self.stats.static_dials += 1;
            match self.swarm.dial(opts) {
                Ok(()) => s.state = StaticState::Dialing(id),
                Err(e) => {
                    tracing::debug!(addr = %s.addr, error = %e, "static peer dial refused");
                    s.state = StaticState::Idle(now + s.backoff);
                    s.backoff = (s.backoff * 2).min(self.backoff_max);
                }
            }
        }
    }

    /// A connection to `peer` is up: static peers dialled by it, or known to be `peer`, are up.
    fn static_up(&mut self, peer: Libp2pPeerId, conn: ConnectionId) {
        for s in &mut self.statics {
            let ours = s.state == StaticState::Dialing(conn);
            let known = s.peer == Some(peer) && matches!(s.state, StaticState::Idle(_));
            if ours || known {
                s.peer = Some(peer);
                s.state = StaticState::Up(peer);
                s.backoff = self.backoff_initial;
            }
        }
    }

    /// A dial failed: a static peer behind it waits its backoff, which doubles.
    fn static_failed(&mut self, conn: ConnectionId) {
        let now = now().instant;
        for s in &mut self.statics {
            if s.state == StaticState::Dialing(conn) {
                s.state = StaticState::Idle(now + s.backoff);
                s.backoff = (s.backoff * 2).min(self.backoff_max);
            }
        }
    }

    /// The last connection to `peer` closed: static peers that were up through it are redialled
    /// after their backoff.
    fn static_down(&mut self, peer: Libp2pPeerId) {
        let now = now().instant;
        for s in &mut self.statics {
            if s.state == StaticState::Up(peer) {
                s.state = StaticState::Idle(now + s.backoff);
            }
        }
    }

    fn ensure_peer(&mut self, id: Libp2pPeerId) -> PeerId {
        if let Some(p) = self.peers.get(&id) {
            return p.handle;
        }
        let handle = PeerId(self.next_handle);
        self.next_handle += 1;
        self.handles.insert(handle, id);
        self.peers.insert(
            id,
            Peer {
                handle,
                since: now().instant,
                outbound: false,
                identified: false,
                told: false,
                protocols: Vec::new(),
                agent_version: String::new(),
                buffered: VecDeque::new(),
                buffered_bytes: 0,
                inbound_streams: 0,
                next_request_id: 0,
                replies: BTreeMap::new(),
                writers: BTreeMap::new(),
            },
        );
        handle
    }

    /// Tells the machine of a peer and replays what it sent meanwhile.
    fn tell(&mut self, id: Libp2pPeerId) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        if p.told {
            return;
        }
        p.told = true;
        let handle = p.handle;
        let protocols = p.protocols.clone();
        let buffered = std::mem::take(&mut p.buffered);
        self.buffered_total = self
            .buffered_total
            .saturating_sub(std::mem::take(&mut p.buffered_bytes));
        let info = p.info(id);
        if info.outbound {
            self.machine.handle_dialed(now(), handle, &protocols);
        } else {
            self.machine.handle_connected(now(), handle, &protocols);
        }
        self.emit(DriverEvent::Connected(info));
        for msg in buffered {
            self.deliver(msg);
        }
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                self.ensure_peer(peer_id);
                if endpoint.is_dialer()
                    && let Some(p) = self.peers.get_mut(&peer_id)
                {
                    p.outbound = true;
                }
                self.static_up(peer_id, connection_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.remove_peer(peer_id);
                self.static_down(peer_id);
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                if matches!(error, ::libp2p::swarm::ListenError::Denied { .. }) {
                    self.stats.incoming_denied += 1;
                } else {
                    self.stats.incoming_failed += 1;
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => {
                self.static_failed(connection_id);
                self.emit(DriverEvent::DialFailed {
                    libp2p_peer: peer_id,
                    error: error.to_string(),
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                self.ensure_peer(peer_id);
                if let Some(p) = self.peers.get_mut(&peer_id) {
                    if !p.told {
                        let mut protocols: Vec<Protocol> = info
                            .protocols
                            .iter()
                            .filter_map(|s| Protocol::from_id(s.as_ref()))
                            .collect();
                        protocols.sort();
                        protocols.dedup();
                        p.protocols = protocols;
                    }
                    p.identified = true;
                    p.agent_version = info.agent_version;
                }
                self.tell(peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Pushed {
                peer_id,
                info,
                ..
            })) => {
                // The machine keeps what it was told at connect; routing learns protocols the
                // peer added since (a client that mounts a handler late), never drops any.
                if let Some(p) = self.peers.get_mut(&peer_id) {
                    for s in &info.protocols {
                        if let Some(proto) = Protocol::from_id(s.as_ref())
                            && !p.protocols.contains(&proto)
                        {
                            p.protocols.push(proto);
                        }
                    }
                    p.protocols.sort();
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Streams(ev)) => self.on_stream_event(ev),
            _ => {}
        }
    }

    fn remove_peer(&mut self, id: Libp2pPeerId) {
        let Some(p) = self.peers.remove(&id) else {
            return;
        };
        self.buffered_total = self.buffered_total.saturating_sub(p.buffered_bytes);
        self.handles.remove(&p.handle);
        self.pending.retain(|_, o| o.peer() != p.handle);
        if p.told {
            self.machine.handle_disconnected(now(), p.handle);
            self.emit(DriverEvent::Disconnected {
                peer: p.handle,
                libp2p_peer: id,
            });
        }
    }

    fn on_stream_event(&mut self, ev: StreamEvent) {
        match ev {
            StreamEvent::Inbound {
                peer,
                protocol,
                stream,
            } => {
                let Some(protocol) = Protocol::from_id(protocol.as_ref()) else {
                    return;
                };
                let handle = self.ensure_peer(peer);
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                if p.inbound_streams >= MAX_INBOUND_STREAMS_PER_PEER {
                    self.stats.streams_refused += 1;
                    drop(stream);
                    return;
                }
                p.inbound_streams += 1;
                let tx = self.to_driver.clone();
                if long_lived(protocol) {
                    tokio::spawn(read_long_lived(stream, handle, protocol, tx));
                } else {
                    tokio::spawn(serve_request(stream, handle, protocol, tx));
                }
            }
            StreamEvent::Outbound { token, stream, .. } => match self.pending.remove(&token) {
                Some(PendingOpen::Writer { rx, .. }) => {
                    tokio::spawn(write_long_lived(stream, rx));
                }
                Some(PendingOpen::Request {
                    peer,
                    protocol,
                    id,
                    bytes,
                }) => {
                    let tx = self.to_driver.clone();
                    tokio::spawn(send_request(stream, peer, protocol, id, bytes, tx));
                }
                None => drop(stream),
            },
            StreamEvent::OutboundFailed { token, .. } => {
                self.stats.open_failures += 1;
                // A writer's channel closes with its receiver: the next frame reopens.
                self.pending.remove(&token);
            }
        }
    }

    fn on_stream(&mut self, msg: FromStream) {
        match msg {
            FromStream::BadFrame => self.stats.bad_frames += 1,
            FromStream::InboundClosed { peer } => {
                if let Some(p) = self
                    .handles
                    .get(&peer)
                    .and_then(|id| self.peers.get_mut(id))
                {
                    p.inbound_streams = p.inbound_streams.saturating_sub(1);
                }
            }
            msg => {
                let peer = match &msg {
                    FromStream::Frame { peer, .. } | FromStream::Request { peer, .. } => *peer,
                    _ => return,
                };
                let Some(p) = self
                    .handles
                    .get(&peer)
                    .and_then(|id| self.peers.get_mut(id))
                else {
                    return;
                };
                let len = match &msg {
                    FromStream::Frame { bytes, .. } | FromStream::Request { bytes, .. } => {
                        bytes.len()
                    }
                    _ => 0,
                };
                if p.told {
                    self.deliver(msg);
                } else if p.buffered.len() < MAX_FRAMES_BEFORE_IDENTIFY
                    && p.buffered_bytes + len <= MAX_BYTES_BEFORE_IDENTIFY
                    && self.buffered_total + len <= MAX_BYTES_BEFORE_IDENTIFY_TOTAL
                {
                    p.buffered.push_back(msg);
                    p.buffered_bytes += len;
                    self.buffered_total += len;
                } else {
                    self.stats.dropped_overflow += 1;
                }
            }
        }
    }

    /// Hands a frame or request of a peer the machine knows to the machine.
    fn deliver(&mut self, msg: FromStream) {
        let now = now();
        match msg {
            FromStream::Frame {
                peer,
                protocol,
                kind,
                bytes,
            } => {
                self.stats.frames_received += 1;
                self.machine.handle_frame(now, peer, protocol, kind, &bytes);
            }
            FromStream::Request {
                peer,
                protocol,
                bytes,
                reply,
            } => {
                let Some(p) = self
                    .handles
                    .get(&peer)
                    .and_then(|id| self.peers.get_mut(id))
                else {
                    return;
                };
                if p.replies.len() >= MAX_INBOUND_STREAMS_PER_PEER {
                    p.replies.retain(|_, r| !r.is_closed());
                }
                let id = p.next_request_id;
                p.next_request_id += 1;
                p.replies.insert(id, reply);
                self.stats.frames_received += 1;
                self.machine
                    .handle_frame(now, peer, protocol, FrameKind::Request(id), &bytes);
            }
            FromStream::BadFrame | FromStream::InboundClosed { .. } => {}
        }
    }

    fn route(&mut self, t: Transmit) {
        let Some(id) = self.handles.get(&t.to).copied() else {
            self.stats.dropped_unroutable += 1;
            return;
        };
        let Some(p) = self.peers.get_mut(&id) else {
            self.stats.dropped_unroutable += 1;
            return;
        };
        match t.kind {
            FrameKind::Response(rid) => {
                let sent = p
                    .replies
                    .remove(&rid)
                    .is_some_and(|reply| reply.send(t.bytes).is_ok());
                if sent {
                    self.stats.frames_sent += 1;
                } else {
                    self.stats.dropped_unroutable += 1;
                }
            }
            FrameKind::Stream => {
                if !p.protocols.contains(&t.protocol) {
                    self.stats.dropped_refused += 1;
                    return;
                }
                let mut bytes = t.bytes;
                if let Some(w) = p.writers.get(&t.protocol) {
                    match w.try_send(bytes) {
                        Ok(()) => {
                            self.stats.frames_sent += 1;
                            return;
                        }
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            self.stats.dropped_overflow += 1;
                            return;
                        }
                        Err(mpsc::error::TrySendError::Closed(b)) => {
                            p.writers.remove(&t.protocol);
                            bytes = b;
                        }
                    }
                }
                let (tx, rx) = mpsc::channel(MAX_QUEUED_STREAM_FRAMES);
                if tx.try_send(bytes).is_ok() {
                    self.stats.frames_sent += 1;
                }
                p.writers.insert(t.protocol, tx);
                let token = self.next_token;
                self.next_token += 1;
                self.pending
                    .insert(token, PendingOpen::Writer { peer: t.to, rx });
                self.swarm
                    .behaviour_mut()
                    .streams
                    .open(id, stream_protocol(t.protocol), token);
            }
            FrameKind::Request(rid) => {
                if !p.protocols.contains(&t.protocol) {
                    self.stats.dropped_refused += 1;
                    return;
                }
                if self.pending.len() >= MAX_PENDING_REQUESTS {
                    self.stats.dropped_overflow += 1;
                    return;
                }
                let token = self.next_token;
                self.next_token += 1;
                self.pending.insert(
                    token,
                    PendingOpen::Request {
                        peer: t.to,
                        protocol: t.protocol,
                        id: rid,
                        bytes: t.bytes,
                    },
                );
                self.stats.frames_sent += 1;
                self.swarm
                    .behaviour_mut()
                    .streams
                    .open(id, stream_protocol(t.protocol), token);
            }
        }
    }

    fn on_command(&mut self, c: Command<M>) {
        match c {
            Command::Call(f) => f(&mut self.machine, now()),
            Command::Dial(addr, reply) => {
                let r = self
                    .swarm
                    .dial(addr)
                    .map_err(|e| Libp2pError::Dial(e.to_string()));
                let _ = reply.send(r);
            }
            Command::Disconnect(peer) => {
                if let Some(id) = self.handles.get(&peer) {
                    let _ = self.swarm.disconnect_peer_id(*id);
                }
            }
            Command::Peers(reply) => {
                let peers = self.peers.iter().map(|(id, p)| p.info(*id)).collect();
                let _ = reply.send(peers);
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats.clone());
            }
            Command::Shutdown => {}
        }
    }
}

/// Reads frames of a long-lived inbound stream until it ends.
async fn read_long_lived(
    mut stream: Stream,
    peer: PeerId,
    protocol: Protocol,
    tx: mpsc::Sender<FromStream>,
) {
    loop {
        match read_frame(&mut stream, protocol.max_frame_len()).await {
            Ok(Some(bytes)) => {
                let msg = FromStream::Frame {
                    peer,
                    protocol,
                    kind: FrameKind::Stream,
                    bytes,
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
            Ok(None) => break,
            Err(_) => {
                let _ = tx.send(FromStream::BadFrame).await;
                break;
            }
        }
    }
    let _ = tx.send(FromStream::InboundClosed { peer }).await;
}

/// Reads one request of an inbound stream (whenever the peer sends it), waits for the
/// machine's response, writes it and closes the stream.
async fn serve_request(
    mut stream: Stream,
    peer: PeerId,
    protocol: Protocol,
    tx: mpsc::Sender<FromStream>,
) {
    match read_frame(&mut stream, protocol.max_frame_len()).await {
        Ok(Some(bytes)) => {
            let (reply, response) = oneshot::channel();
            let msg = FromStream::Request {
                peer,
                protocol,
                bytes,
                reply,
            };
            if tx.send(msg).await.is_ok()
                && let Ok(Ok(body)) = tokio::time::timeout(REQUEST_TIMEOUT, response).await
                && write_frame(&mut stream, &body).await.is_ok()
            {
                let _ = stream.close().await;
            }
        }
        Ok(None) => {}
        Err(_) => {
            let _ = tx.send(FromStream::BadFrame).await;
        }
    }
    let _ = tx.send(FromStream::InboundClosed { peer }).await;
}

/// Writes the frames queued for a long-lived outbound stream until the queue closes or the
/// stream fails.
async fn write_long_lived(mut stream: Stream, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if write_frame(&mut stream, &bytes).await.is_err() {
            return;
        }
    }
    let _ = stream.close().await;
}

/// Writes one request, closes the write side and reads the response.
async fn send_request(
    mut stream: Stream,
    peer: PeerId,
    protocol: Protocol,
    id: u64,
    bytes: Vec<u8>,
    tx: mpsc::Sender<FromStream>,
) {
    let exchange = async {
        write_frame(&mut stream, &bytes).await?;
        stream.close().await?;
        read_frame(&mut stream, protocol.max_frame_len())
            .await
            .map_err(std::io::Error::other)
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Ok(Some(bytes))) => {
            let _ = tx
                .send(FromStream::Frame {
                    peer,
                    protocol,
                    kind: FrameKind::Response(id),
                    bytes,
                })
                .await;
        }
        Ok(Err(_)) => {
            let _ = tx.send(FromStream::BadFrame).await;
        }
        Ok(Ok(None)) | Err(_) => {}
    }
}
