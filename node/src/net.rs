//! The transport under `run` and `chat`: the devp2p-style TCP transport or, with the `libp2p`
//! feature, libp2p, behind one small interface so the commands do not care which.
//!
//! | | `--transport tcp` (default) | `--transport libp2p` |
//! |---|---|---|
//! | `--listen` | one `IP:PORT` (or `/ip4/IP/tcp/PORT`) | one or more multiaddrs, `/ip4/…/tcp/…[/ws]` (or `IP:PORT`) |
//! | `--peer` | `KEY@IP:PORT` or `IP:PORT` | a multiaddr, normally ending in `/p2p/<peer id>` |
//! | printed as `listening …` | `KEY@IP:PORT` | each listen multiaddr with `/p2p/<peer id>` |
//! | `--peer` may also be | | an ENR, `enr:…` (dialled at its first address) |
//! | node key file | `node.key` (X25519, Noise) | `libp2p.key` (secp256k1, as nwaku's `--nodekey`: the peer id, `16Uiu2…`, and the ENR key) |
//!
//! Both keep the `--peer` nodes connected, redialling them whenever they are down. The two key
//! files are separate so one secret is never used in two signature or key-agreement schemes.
//!
//! On libp2p a service node also signs its own ENR (EIP-778 "v4", [`waku_core::enr`]): `seq` is
//! the start time in seconds, so a restarted node's record supersedes the old one; `ip`/`tcp`
//! come from the first plain TCP listener bound to a concrete IPv4 address, `multiaddrs` lists
//! the WebSocket listeners, `waku2` and `rs` say what it serves and where.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use transports::tcp::{self, TcpConfig, TcpError, TcpHandle, TcpNode};
use waku_core::enr::{Enr, RelayShards, Waku2};
use waku_core::net::{Machine, Now, PeerId};
use zeroize::Zeroizing;

use crate::cli::Transport;
use crate::driver::{self, PeerAddr};

/// Longest wait between two redials of a `--peer` that is down: short, so a restarted peer is
/// found again within seconds.
pub(crate) const REDIAL_MAX: Duration = Duration::from_secs(5);

/// The software name sent to peers (TCP hello, libp2p identify).
const AGENT: &str = concat!("status-node/", env!("CARGO_PKG_VERSION"));

/// A `--listen` value: `IP:PORT`, or a multiaddr such as `/ip4/0.0.0.0/tcp/60000/ws`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenAddr {
    /// `IP:PORT`.
    Socket(SocketAddr),
    /// A multiaddr (checked by libp2p's parser when the `libp2p` feature is on).
    Multiaddr(String),
}

/// A `--peer` value: `KEY@IP:PORT`, `IP:PORT`, a multiaddr, or an ENR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerArg {
    /// A TCP-transport peer.
    Tcp(PeerAddr),
    /// A multiaddr (checked by libp2p's parser when the `libp2p` feature is on).
    Multiaddr(String),
    /// A signed node record (`enr:…`), its signature checked.
    Enr(Box<Enr>),
}

/// Why a `--listen` or `--peer` value did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AddrError {
    /// Not `IP:PORT` (nor `KEY@IP:PORT` for a peer).
    #[error(transparent)]
    Peer(#[from] driver::PeerAddrError),
    /// Not `IP:PORT`.
    #[error("the address must be IP:PORT or a multiaddr starting with '/'")]
    Socket,
    /// A malformed multiaddr.
    #[error("invalid multiaddr: {0}")]
    Multiaddr(String),
    /// A malformed or badly signed ENR.
    #[error("invalid ENR: {0}")]
    Enr(#[from] waku_core::enr::EnrError),
}

impl FromStr for ListenAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with('/') {
            check_multiaddr(s)?;
            return Ok(ListenAddr::Multiaddr(s.to_owned()));
        }
        s.parse()
            .map(ListenAddr::Socket)
            .map_err(|_| AddrError::Socket)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Socket(a) => write!(f, "{a}"),
            ListenAddr::Multiaddr(m) => f.write_str(m),
        }
    }
}

impl FromStr for PeerArg {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with('/') {
            check_multiaddr(s)?;
            return Ok(PeerArg::Multiaddr(s.to_owned()));
        }
        if s.starts_with("enr:") {
            return Ok(PeerArg::Enr(Box::new(Enr::from_text(s)?)));
        }
        Ok(PeerArg::Tcp(s.parse()?))
    }
}

impl fmt::Display for PeerArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerArg::Tcp(p) => write!(f, "{p}"),
            PeerArg::Multiaddr(m) => f.write_str(m),
            PeerArg::Enr(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(feature = "libp2p")]
fn check_multiaddr(s: &str) -> Result<(), AddrError> {
    s.parse::<transports::libp2p::Multiaddr>()
        .map(|_| ())
        .map_err(|e| AddrError::Multiaddr(e.to_string()))
}

#[cfg(not(feature = "libp2p"))]
fn check_multiaddr(s: &str) -> Result<(), AddrError> {
    // Without libp2p, waku-core's multiaddr codec (the protocols ENRs carry) checks the text;
    // the TCP transport then takes only `/ip4|ip6/IP/tcp/PORT` and refuses the rest when the
    // node starts, with a hint to use libp2p.
    waku_core::enr::Multiaddr::from_text(s)
        .map(|_| ())
        .map_err(|e| AddrError::Multiaddr(e.to_string()))
}

/// `/ip4/IP/tcp/PORT` or `/ip6/IP/tcp/PORT` as a socket address, else `None`.
fn plain_tcp_multiaddr(s: &str) -> Option<SocketAddr> {
    let parts: Vec<&str> = s.split('/').collect();
    let [empty, family, ip, "tcp", port] = parts.as_slice() else {
        return None;
    };
    if !empty.is_empty() {
        return None;
    }
    let ip: IpAddr = match *family {
        "ip4" => IpAddr::V4(ip.parse().ok()?),
        "ip6" => IpAddr::V6(ip.parse().ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port.parse().ok()?))
}

/// A socket address as a libp2p TCP multiaddr.
#[cfg(feature = "libp2p")]
fn socket_multiaddr(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V4(ip) => format!("/ip4/{ip}/tcp/{}", a.port()),
        IpAddr::V6(ip) => format!("/ip6/{ip}/tcp/{}", a.port()),
    }
}

/// Why the transport could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum NetError {
    /// The TCP transport failed.
    #[error(transparent)]
    Tcp(#[from] TcpError),
    /// The libp2p transport failed.
    #[cfg(feature = "libp2p")]
    #[error(transparent)]
    Libp2p(#[from] transports::libp2p::Libp2pError),
    /// An address does not fit the transport (e.g. `KEY@IP:PORT` with libp2p).
    #[error("{0}")]
    Address(String),
    /// The binary was built without the `libp2p` feature.
    #[cfg(not(feature = "libp2p"))]
    #[error(
        "this status-node was built without libp2p; build it with `cargo build --release -p node --features libp2p`"
    )]
    NoLibp2p,
    /// The OS random source failed.
    #[error("the operating system's random source failed: {0}")]
    Randomness(String),
    /// The node key cannot be used on this transport.
    #[cfg(feature = "libp2p")]
    #[error("node key: {0}")]
    Key(String),
}

/// What a service node says about itself in its ENR.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "libp2p"), allow(dead_code))] // only libp2p nodes sign a record
pub(crate) struct RecordInfo {
    /// The `waku2` bits.
    pub(crate) waku2: Waku2,
    /// The `rs` field.
    pub(crate) shards: RelayShards,
    /// The record's `seq`: the start time in seconds, so that a restart supersedes.
    pub(crate) seq: u64,
}

/// What [`start`] needs besides the machine.
pub(crate) struct NetConfig {
    /// Which transport.
    pub(crate) transport: Transport,
    /// Where to listen (at most one address with TCP; none: dial only).
    pub(crate) listen: Vec<ListenAddr>,
    /// Peers to keep connected.
    pub(crate) peers: Vec<PeerArg>,
    /// The node key's 32 secret bytes (from its file); `None` draws a fresh one.
    pub(crate) secret: Option<Zeroizing<[u8; 32]>>,
    /// Sign an ENR with this content (libp2p only).
    #[cfg_attr(not(feature = "libp2p"), allow(dead_code))]
    pub(crate) record: Option<RecordInfo>,
}

impl fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetConfig")
            .field("transport", &self.transport)
            .field("listen", &self.listen)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// A peer came up or went down, in terms both transports share.
#[derive(Debug)]
pub(crate) enum NetEvent<E> {
    /// An event of the machine.
    Machine(E),
    /// A peer is connected (and the machine was told).
    PeerUp {
        /// How to name it: `KEY@IP:PORT` (TCP) or its peer id (libp2p).
        peer: String,
        /// Its software.
        agent: String,
        /// The protocol ids it serves that the machine knows.
        protocols: Vec<&'static str>,
    },
    /// A peer is gone.
    PeerDown {
        /// Its node key in hex (TCP) or its peer id (libp2p).
        peer: String,
        /// Why, if known.
        reason: String,
    },
    /// A connection attempt failed.
    DialFailed {
        /// The address or peer.
        target: String,
        /// Why.
        error: String,
    },
}

/// A running transport with its machine.
pub(crate) enum Net<M: Machine> {
    /// TCP.
    Tcp(TcpNode<M>),
    /// libp2p, and the node's own ENR if it has one.
    #[cfg(feature = "libp2p")]
    Libp2p(transports::libp2p::Libp2pNode<M>, Option<Box<Enr>>),
}

/// Commands to a running transport. Cheap to clone.
pub(crate) enum NetHandle<M> {
    /// TCP.
    Tcp(TcpHandle<M>),
    /// libp2p.
    #[cfg(feature = "libp2p")]
    Libp2p(transports::libp2p::Libp2pHandle<M>),
}

impl<M> Clone for NetHandle<M> {
    fn clone(&self) -> Self {
        match self {
            NetHandle::Tcp(h) => NetHandle::Tcp(h.clone()),
            #[cfg(feature = "libp2p")]
            NetHandle::Libp2p(h) => NetHandle::Libp2p(h.clone()),
        }
    }
}

/// Starts `machine` on the configured transport. Must be called inside a tokio runtime.
pub(crate) async fn start<M>(config: NetConfig, machine: M) -> Result<Net<M>, NetError>
where
    M: Machine + Send + 'static,
    M::Event: Send + 'static,
{
    match config.transport {
        Transport::Tcp => start_tcp(config, machine).await,
        #[cfg(feature = "libp2p")]
        Transport::Libp2p => start_libp2p(config, machine).await,
        #[cfg(not(feature = "libp2p"))]
        Transport::Libp2p => {
            drop(machine);
            Err(NetError::NoLibp2p)
        }
    }
}

/// The TCP driver's settings for `listen` and `peers`.
fn tcp_config(
    key: tcp::NodeKey,
    listen: &[ListenAddr],
    peers: &[PeerArg],
) -> Result<TcpConfig, NetError> {
    let listen = match listen {
        [] => None,
        [ListenAddr::Socket(a)] => Some(*a),
        [ListenAddr::Multiaddr(m)] => Some(plain_tcp_multiaddr(m).ok_or_else(|| {
            NetError::Address(format!(
                "--listen {m}: the TCP transport listens on IP:PORT (or /ip4/IP/tcp/PORT); use --transport libp2p for other multiaddrs"
            ))
        })?),
        _ => {
            return Err(NetError::Address(
                "the TCP transport listens on one address; give --listen once".to_owned(),
            ));
        }
    };
    let mut cfg = TcpConfig::new(key, driver::os_seed().map_err(NetError::Randomness)?);
    cfg.listen = listen;
    for p in peers {
        let peer = match p {
            PeerArg::Tcp(p) => p.to_static_peer(),
            PeerArg::Multiaddr(m) => {
                let addr = plain_tcp_multiaddr(m).ok_or_else(|| {
                    NetError::Address(format!(
                        "--peer {m}: a multiaddr peer needs --transport libp2p (TCP peers are KEY@IP:PORT)"
                    ))
                })?;
                tcp::StaticPeer { addr, key: None }
            }
            PeerArg::Enr(_) => {
                return Err(NetError::Address(
                    "an ENR names a libp2p node; use --transport libp2p".to_owned(),
                ));
            }
        };
        cfg.static_peers.push(peer);
    }
    cfg.backoff_max = REDIAL_MAX;
    cfg.client = AGENT.to_owned();
    Ok(cfg)
}

async fn start_tcp<M>(config: NetConfig, machine: M) -> Result<Net<M>, NetError>
where
    M: Machine + Send + 'static,
    M::Event: Send + 'static,
{
    let key = match &config.secret {
        Some(s) => tcp::NodeKey::from_bytes(**s),
        None => {
            let mut rng = driver::os_rng().map_err(NetError::Randomness)?;
            tcp::NodeKey::generate(&mut rng)
        }
    };
    let cfg = tcp_config(key, &config.listen, &config.peers)?;
    Ok(Net::Tcp(tcp::start(cfg, machine).await?))
}

#[cfg(feature = "libp2p")]
async fn start_libp2p<M>(config: NetConfig, machine: M) -> Result<Net<M>, NetError>
where
    M: Machine + Send + 'static,
    M::Event: Send + 'static,
{
    use transports::libp2p::{self as lp, Libp2pConfig, Multiaddr};

    let secret = match config.secret {
        Some(s) => s,
        None => Zeroizing::new(driver::os_seed().map_err(NetError::Randomness)?),
    };
    let keypair = secp256k1_keypair(&secret)?;
    let parse = |s: &str, what: &str| {
        s.parse::<Multiaddr>()
            .map_err(|e| NetError::Address(format!("{what} {s}: {e}")))
    };
    let mut cfg = Libp2pConfig::new(keypair);
    for l in &config.listen {
        let text = match l {
            ListenAddr::Socket(a) => socket_multiaddr(*a),
            ListenAddr::Multiaddr(m) => m.clone(),
        };
        cfg.listen.push(parse(&text, "--listen")?);
    }
    for p in &config.peers {
        let text = match p {
            PeerArg::Multiaddr(m) => m.clone(),
            PeerArg::Tcp(PeerAddr { key: None, addr }) => socket_multiaddr(*addr),
            PeerArg::Tcp(p @ PeerAddr { key: Some(_), .. }) => {
                return Err(NetError::Address(format!(
                    "--peer {p}: KEY@IP:PORT names a TCP-transport node; a libp2p peer is a multiaddr like /ip4/IP/tcp/PORT/p2p/<peer id>"
                )));
            }
            PeerArg::Enr(e) => e.dial_addrs().into_iter().next().ok_or_else(|| {
                NetError::Address(format!("--peer {e}: the ENR has no address to dial"))
            })?,
        };
        cfg.dial.push(parse(&text, "--peer")?);
    }
    cfg.backoff_max = REDIAL_MAX;
    cfg.agent_version = AGENT.to_owned();
    let node = lp::start(cfg, machine).await?;
    let record = match &config.record {
        Some(info) => own_record(info, node.listen_addrs(), &secret).map(Box::new),
        None => None,
    };
    Ok(Net::Libp2p(node, record))
}

/// The libp2p identity of a node key: secp256k1, as nwaku's, so that the peer id and the ENR
/// share one key.
#[cfg(feature = "libp2p")]
fn secp256k1_keypair(
    secret: &Zeroizing<[u8; 32]>,
) -> Result<transports::libp2p::Keypair, NetError> {
    use transports::libp2p::upstream::identity::secp256k1;
    // The parser zeroizes the copy it is given.
    let mut copy = Zeroizing::new(**secret);
    let sk = secp256k1::SecretKey::try_from_bytes(copy.as_mut())
        .map_err(|e| NetError::Key(format!("not a secp256k1 secret key: {e}")))?;
    Ok(secp256k1::Keypair::from(sk).into())
}

/// The node's ENR for its bound listen addresses (`/…/p2p/<id>` already appended), or `None`
/// (logged) if it cannot be made.
#[cfg(feature = "libp2p")]
fn own_record(
    info: &RecordInfo,
    bound: &[transports::libp2p::Multiaddr],
    secret: &Zeroizing<[u8; 32]>,
) -> Option<Enr> {
    use waku_core::enr::{EnrBuilder, Multiaddr as EnrMultiaddr};

    let mut b = EnrBuilder::new().seq(info.seq).waku2(info.waku2);
    let mut have_ip = false;
    let mut extra = Vec::new();
    for a in bound {
        let text = a.to_string();
        let plain = text.split("/p2p/").next().unwrap_or_default();
        match plain_tcp_multiaddr(plain) {
            Some(SocketAddr::V4(v4)) if !have_ip && !v4.ip().is_unspecified() => {
                b = b.ip4(*v4.ip()).tcp(v4.port());
                have_ip = true;
            }
            Some(_) => {}
            // A wildcard listener has no address others could dial.
            None if plain.starts_with("/ip4/0.0.0.0/") || plain.starts_with("/ip6/::/") => {}
            None => match EnrMultiaddr::from_text(plain) {
                Ok(m) => extra.push(m),
                Err(e) => tracing::debug!(%plain, %e, "not advertised in the ENR"),
            },
        }
    }
    if !extra.is_empty() {
        b = b.multiaddrs(&extra);
    }
    let b = match b.relay_shards(&info.shards) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(%e, "no ENR: the shards do not fit one");
            return None;
        }
    };
    match b.sign(secret) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(%e, "no ENR");
            None
        }
    }
}

impl<M> Net<M>
where
    M: Machine + Send + 'static,
    M::Event: Send + 'static,
{
    /// A handle for commands.
    pub(crate) fn handle(&self) -> NetHandle<M> {
        match self {
            Net::Tcp(n) => NetHandle::Tcp(n.handle()),
            #[cfg(feature = "libp2p")]
            Net::Libp2p(n, _) => NetHandle::Libp2p(n.handle()),
        }
    }

    /// What peers pass to `--peer` to reach this node: `KEY@IP:PORT` with TCP, each listen
    /// multiaddr with `/p2p/<peer id>` with libp2p. Empty when not listening.
    pub(crate) fn addresses(&self) -> Vec<String> {
        match self {
            Net::Tcp(n) => n
                .local_addr()
                .map(|addr| {
                    PeerAddr {
                        key: Some(n.public_key()),
                        addr,
                    }
                    .to_string()
                })
                .into_iter()
                .collect(),
            #[cfg(feature = "libp2p")]
            Net::Libp2p(n, _) => n.listen_addrs().iter().map(ToString::to_string).collect(),
        }
    }

    /// The node's signed ENR, if it has one (libp2p service nodes).
    pub(crate) fn record(&self) -> Option<&Enr> {
        match self {
            Net::Tcp(_) => None,
            #[cfg(feature = "libp2p")]
            Net::Libp2p(_, r) => r.as_deref(),
        }
    }

    /// The node's identity on this transport: its node key in hex, or its peer id.
    pub(crate) fn identity(&self) -> String {
        match self {
            Net::Tcp(n) => driver::hex(&n.public_key()),
            #[cfg(feature = "libp2p")]
            Net::Libp2p(n, _) => n.peer_id().to_string(),
        }
    }

    /// The next event; `None` once the driver has stopped.
    pub(crate) async fn next_event(&mut self) -> Option<NetEvent<M::Event>> {
        loop {
            let e = match self {
                Net::Tcp(n) => tcp_event(n.next_event().await?),
                #[cfg(feature = "libp2p")]
                Net::Libp2p(n, _) => libp2p_event(n.next_event().await?),
            };
            if let Some(e) = e {
                return Some(e);
            }
        }
    }

    /// The next event if one is waiting.
    pub(crate) fn try_next_event(&mut self) -> Option<NetEvent<M::Event>> {
        loop {
            let e = match self {
                Net::Tcp(n) => tcp_event(n.try_next_event()?),
                #[cfg(feature = "libp2p")]
                Net::Libp2p(n, _) => libp2p_event(n.try_next_event()?),
            };
            if let Some(e) = e {
                return Some(e);
            }
        }
    }

    /// Stops the driver (every peer is told) and hands the machine back.
    pub(crate) async fn shutdown(self) -> Result<M, NetError> {
        Ok(match self {
            Net::Tcp(n) => n.shutdown().await?,
            #[cfg(feature = "libp2p")]
            Net::Libp2p(n, _) => n.shutdown().await?,
        })
    }
}

fn tcp_event<E>(e: tcp::DriverEvent<E>) -> Option<NetEvent<E>> {
    Some(match e {
        tcp::DriverEvent::Machine(e) => NetEvent::Machine(e),
        tcp::DriverEvent::Connected(info) => NetEvent::PeerUp {
            peer: PeerAddr {
                key: Some(info.key),
                addr: info.addr,
            }
            .to_string(),
            agent: info.client,
            protocols: info.protocols.iter().map(|p| p.id()).collect(),
        },
        tcp::DriverEvent::Disconnected { key, reason, .. } => NetEvent::PeerDown {
            peer: driver::hex(&key),
            reason: format!("{reason:?}"),
        },
        tcp::DriverEvent::ConnectFailed { addr, error, .. } => NetEvent::DialFailed {
            target: addr.to_string(),
            error: error.to_string(),
        },
        _ => return None,
    })
}

#[cfg(feature = "libp2p")]
fn libp2p_event<E>(e: transports::libp2p::DriverEvent<E>) -> Option<NetEvent<E>> {
    use transports::libp2p::DriverEvent;
    Some(match e {
        DriverEvent::Machine(e) => NetEvent::Machine(e),
        DriverEvent::Connected(info) => NetEvent::PeerUp {
            peer: info.libp2p_peer.to_string(),
            agent: info.agent_version,
            protocols: info.protocols.iter().map(|p| p.id()).collect(),
        },
        DriverEvent::Disconnected { libp2p_peer, .. } => NetEvent::PeerDown {
            peer: libp2p_peer.to_string(),
            reason: "connection closed".to_owned(),
        },
        DriverEvent::DialFailed { libp2p_peer, error } => NetEvent::DialFailed {
            target: libp2p_peer.map_or_else(|| "a peer".to_owned(), |p| p.to_string()),
            error,
        },
        _ => return None,
    })
}

impl<M> NetHandle<M>
where
    M: Machine + Send + 'static,
{
    /// Runs `f` on the machine inside the driver task and returns its result.
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut M, Now) -> R + Send + 'static,
    ) -> Result<R, NetError> {
        Ok(match self {
            NetHandle::Tcp(h) => h.call(f).await?,
            #[cfg(feature = "libp2p")]
            NetHandle::Libp2p(h) => h.call(f).await?,
        })
    }

    /// Dials a node from its ENR (libp2p, one-shot, at the record's first address). Returns
    /// whether a dial was started; the TCP transport cannot use ENRs.
    pub(crate) async fn dial_record(&self, record: &Enr) -> Result<bool, NetError> {
        #[cfg(not(feature = "libp2p"))]
        let _ = record;
        match self {
            NetHandle::Tcp(_) => Ok(false),
            #[cfg(feature = "libp2p")]
            NetHandle::Libp2p(h) => {
                let Some(addr) = record.dial_addrs().into_iter().next() else {
                    return Ok(false);
                };
                let addr = addr
                    .parse()
                    .map_err(|e| NetError::Address(format!("{addr}: {e}")))?;
                h.dial(addr).await?;
                Ok(true)
            }
        }
    }

    /// Closes the connection to `peer`.
    pub(crate) async fn disconnect(&self, peer: PeerId) -> Result<(), NetError> {
        match self {
            NetHandle::Tcp(h) => h.disconnect(peer).await?,
            #[cfg(feature = "libp2p")]
            NetHandle::Libp2p(h) => h.disconnect(peer).await?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_and_peer_values_parse() {
        assert_eq!(
            "127.0.0.1:60000".parse::<ListenAddr>(),
            Ok(ListenAddr::Socket("127.0.0.1:60000".parse().unwrap()))
        );
        assert_eq!(
            "/ip4/127.0.0.1/tcp/0/ws".parse::<ListenAddr>(),
            Ok(ListenAddr::Multiaddr("/ip4/127.0.0.1/tcp/0/ws".to_owned()))
        );
        assert_eq!("localhost".parse::<ListenAddr>(), Err(AddrError::Socket));
        assert!(matches!(
            "/ip4//tcp/1".parse::<ListenAddr>(),
            Err(AddrError::Multiaddr(_))
        ));
        let key = "ab".repeat(32);
        assert!(matches!(
            format!("{key}@127.0.0.1:1").parse::<PeerArg>(),
            Ok(PeerArg::Tcp(PeerAddr { key: Some(_), .. }))
        ));
        assert!(matches!(
            "abcd@127.0.0.1:1".parse::<PeerArg>(),
            Err(AddrError::Peer(driver::PeerAddrError::Key))
        ));
    }

    #[test]
    fn tcp_takes_plain_multiaddrs_and_refuses_others() {
        assert_eq!(
            plain_tcp_multiaddr("/ip4/10.0.0.1/tcp/30303"),
            Some("10.0.0.1:30303".parse().unwrap())
        );
        assert_eq!(
            plain_tcp_multiaddr("/ip6/::1/tcp/9"),
            Some("[::1]:9".parse().unwrap())
        );
        assert_eq!(plain_tcp_multiaddr("/ip4/10.0.0.1/tcp/30303/ws"), None);
        assert_eq!(plain_tcp_multiaddr("/dns4/example.org/tcp/1"), None);
        let key = tcp::NodeKey::from_bytes([7; 32]);
        let ws = [ListenAddr::Multiaddr("/ip4/127.0.0.1/tcp/0/ws".to_owned())];
        assert!(matches!(
            tcp_config(key.clone(), &ws, &[]),
            Err(NetError::Address(_))
        ));
        let two = [
            ListenAddr::Socket("127.0.0.1:1".parse().unwrap()),
            ListenAddr::Socket("127.0.0.1:2".parse().unwrap()),
        ];
        assert!(matches!(
            tcp_config(key.clone(), &two, &[]),
            Err(NetError::Address(_))
        ));
        let ok = tcp_config(
            key,
            &[ListenAddr::Multiaddr("/ip4/127.0.0.1/tcp/4000".to_owned())],
            &[PeerArg::Multiaddr("/ip4/127.0.0.1/tcp/4001".to_owned())],
        )
        .unwrap();
        assert_eq!(ok.listen, Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(ok.static_peers.len(), 1);
        assert_eq!(ok.backoff_max, REDIAL_MAX);
    }
}
