//! One TCP connection: the Noise handshake, the Hello exchange, then a reader task and a writer
//! loop that talk to the driver over channels. No protocol state is shared: the driver owns the
//! machine, a connection owns its socket and its Noise state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use snow::StatelessTransportState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::{Instant, interval_at, timeout};
use waku_core::net::{FrameKind, Protocol};

use super::noise::{self, NodeKey};
use super::wire::{
    self, DisconnectReason, Hello, MAX_NOISE_MESSAGE, MAX_NOISE_PLAINTEXT, NOISE_TAG_LEN, Packet,
    PacketDecoder, WireError,
};
use super::{ConnectError, MAX_OUTBOUND_QUEUE};

/// The driver's name for a connection (before and after it becomes a peer).
pub(crate) type ConnId = u64;

/// Timeouts of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) handshake: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) idle: Duration,
}

/// What a connection task needs to know.
pub(crate) struct Setup {
    pub(crate) id: ConnId,
    pub(crate) key: NodeKey,
    pub(crate) seed: [u8; 32],
    pub(crate) hello: Hello,
    pub(crate) expected: Option<[u8; 32]>,
    pub(crate) outbound: bool,
    pub(crate) addr: SocketAddr,
    pub(crate) timeouts: Timeouts,
    pub(crate) events: mpsc::Sender<ConnEvent>,
}

/// Connection to driver.
pub(crate) enum ConnEvent {
    /// The listener accepted a socket.
    Accepted(TcpStream, SocketAddr),
    /// Handshake and Hello done.
    Up(Box<Up>),
    /// A frame from the peer.
    Frame {
        conn: ConnId,
        protocol: Protocol,
        kind: FrameKind,
        body: Vec<u8>,
    },
    /// The connection ended after [`ConnEvent::Up`].
    Down {
        conn: ConnId,
        reason: DisconnectReason,
        by_remote: bool,
    },
    /// The connection ended before [`ConnEvent::Up`].
    Failed { conn: ConnId, error: ConnectError },
}

pub(crate) struct Up {
    pub(crate) conn: ConnId,
    pub(crate) remote_key: [u8; 32],
    pub(crate) addr: SocketAddr,
    pub(crate) outbound: bool,
    /// What the peer serves (the protocols of its Hello that we speak).
    pub(crate) remote: Vec<Protocol>,
    pub(crate) hello: Hello,
    pub(crate) tx: mpsc::Sender<Outbound>,
    pub(crate) close: mpsc::Sender<Close>,
}

/// Packet tags for what we send, per protocol in [`Protocol::ALL`] order (see `wire`'s docs).
struct Tags {
    /// For stream frames and requests: the index in the peer's Hello.
    to_peer: [Option<u8>; Protocol::ALL.len()],
    /// For responses: the index in our Hello.
    from_us: [Option<u8>; Protocol::ALL.len()],
}

impl Tags {
    fn of(&self, protocol: Protocol, kind: FrameKind) -> Option<u8> {
        let i = Protocol::ALL.iter().position(|p| *p == protocol)?;
        let table = match kind {
            FrameKind::Stream | FrameKind::Request(_) => &self.to_peer,
            FrameKind::Response(_) => &self.from_us,
        };
        table.get(i).copied().flatten()
    }
}

/// Driver (or reader) to writer.
pub(crate) enum Outbound {
    Frame {
        protocol: Protocol,
        kind: FrameKind,
        body: Vec<u8>,
    },
    Pong(u64),
}

/// Ends the connection: tell the peer `reason` unless it was the peer who closed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Close {
    pub(crate) reason: DisconnectReason,
    pub(crate) by_remote: bool,
}

/// Runs a connection to the end and reports to the driver.
pub(crate) async fn run(mut stream: TcpStream, s: Setup) {
    let _ = stream.set_nodelay(true);
    let events = s.events.clone();
    let id = s.id;
    let est = match timeout(s.timeouts.handshake, establish(&mut stream, &s)).await {
        Ok(Ok(est)) => est,
        Ok(Err(error)) => {
            let _ = events.send(ConnEvent::Failed { conn: id, error }).await;
            return;
        }
        Err(_) => {
            let _ = events
                .send(ConnEvent::Failed {
                    conn: id,
                    error: ConnectError::Timeout,
                })
                .await;
            return;
        }
    };
    serve(stream, s, est).await;
}

pub(crate) struct Established {
    pub(crate) remote_key: [u8; 32],
    pub(crate) writer: NoiseWriter,
    pub(crate) reader: NoiseReader,
    pub(crate) decoder: PacketDecoder,
    pub(crate) peer_hello: Hello,
    /// What the peer serves (the protocols of its Hello that we speak).
    pub(crate) remote: Vec<Protocol>,
}

/// The handshake and the Hello exchange on a fresh socket.
pub(crate) async fn establish(
    stream: &mut TcpStream,
    s: &Setup,
) -> Result<Established, ConnectError> {
    let mut hs =
        noise::builder_state(&s.key, s.seed, s.outbound).map_err(|_| ConnectError::Handshake)?;
    let mut buf = vec![0u8; MAX_NOISE_MESSAGE];
    let mut out = vec![0u8; MAX_NOISE_MESSAGE];
    // XX: -> e; <- e, ee, s, es; -> s, se. Empty payloads; each message `u16 BE len ‖ bytes`.
    for step in 0..3 {
        let ours = (step % 2 == 0) == s.outbound;
        if ours {
            let n = hs
                .write_message(&[], &mut out)
                .map_err(|_| ConnectError::Handshake)?;
            write_framed(stream, out.get(..n).unwrap_or_default()).await?;
        } else {
            let n = read_framed(stream, &mut buf).await?;
            hs.read_message(buf.get(..n).unwrap_or_default(), &mut out)
                .map_err(|_| ConnectError::Handshake)?;
        }
    }
    let remote_key: [u8; 32] = hs
        .get_remote_static()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or(ConnectError::Handshake)?;
    let state = Arc::new(
        hs.into_stateless_transport_mode()
            .map_err(|_| ConnectError::Handshake)?,
    );
    let mut writer = NoiseWriter {
        state: Arc::clone(&state),
        nonce: 0,
    };
    let mut reader = NoiseReader {
        state,
        nonce: 0,
        cipher: buf,
        plain: out,
    };

    let refusal = if remote_key == s.key.public() {
        Some(DisconnectReason::SelfConnection)
    } else if s.expected.is_some_and(|k| k != remote_key) {
        Some(DisconnectReason::UnexpectedIdentity)
    } else {
        None
    };
    if let Some(reason) = refusal {
        let _ = send_control(&mut writer, stream, &Packet::Disconnect(reason)).await;
        return Err(ConnectError::Rejected {
            reason,
            by_remote: false,
        });
    }
    send_control(&mut writer, stream, &Packet::Hello(s.hello.clone())).await?;
    let mut decoder = PacketDecoder::new();
    let peer_hello = loop {
        let plain = reader.read(stream).await?;
        decoder.push(plain).map_err(ConnectError::Malformed)?;
        let mut hello = None;
        while let Some(p) = decoder.next_packet().map_err(ConnectError::Malformed)? {
            match p {
                Packet::Hello(h) => {
                    hello = Some(h);
                    break;
                }
                Packet::Disconnect(reason) => {
                    return Err(ConnectError::Rejected {
                        reason,
                        by_remote: true,
                    });
                }
                Packet::Ping(_) | Packet::Pong(_) => {}
                // The decoder has no tags yet, so frames cannot decode before the Hello.
                Packet::Frame { .. } => {
                    return Err(ConnectError::Malformed(WireError::UnknownTag(1)));
                }
            }
        }
        if let Some(h) = hello {
            break h;
        }
    };
    if peer_hello.version != wire::WIRE_VERSION {
        let reason = DisconnectReason::IncompatibleVersion;
        let _ = send_control(&mut writer, stream, &Packet::Disconnect(reason)).await;
        return Err(ConnectError::Rejected {
            reason,
            by_remote: false,
        });
    }
    if s.hello.is_useless_with(&peer_hello) {
        let reason = DisconnectReason::UselessPeer;
        let _ = send_control(&mut writer, stream, &Packet::Disconnect(reason)).await;
        return Err(ConnectError::Rejected {
            reason,
            by_remote: false,
        });
    }
    decoder.set_hellos(&s.hello, &peer_hello);
    let remote = peer_hello.protocols();
    Ok(Established {
        remote_key,
        writer,
        reader,
        decoder,
        peer_hello,
        remote,
    })
}

async fn serve(stream: TcpStream, s: Setup, est: Established) {
    let Established {
        remote_key,
        writer,
        reader,
        decoder,
        peer_hello,
        remote,
    } = est;
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(MAX_OUTBOUND_QUEUE);
    let (close_tx, close_rx) = mpsc::channel(4);
    let up = Up {
        conn: s.id,
        remote_key,
        addr: s.addr,
        outbound: s.outbound,
        remote,
        hello: peer_hello.clone(),
        tx: tx.clone(),
        close: close_tx.clone(),
    };
    if s.events.send(ConnEvent::Up(Box::new(up))).await.is_err() {
        return;
    }
    // The tag of each protocol, in the Hello of the side that serves it: the peer's for stream
    // frames and requests we send, ours for our responses.
    let tags = Tags {
        to_peer: Protocol::ALL.map(|p| peer_hello.tag_of(p)),
        from_us: Protocol::ALL.map(|p| s.hello.tag_of(p)),
    };
    let reader = tokio::spawn(read_loop(
        rd,
        reader,
        decoder,
        s.id,
        s.events.clone(),
        tx,
        close_tx,
        s.timeouts.idle,
    ));
    let close = write_loop(wr, writer, rx, close_rx, &tags, s.timeouts.ping_interval).await;
    reader.abort();
    let _ = s
        .events
        .send(ConnEvent::Down {
            conn: s.id,
            reason: close.reason,
            by_remote: close.by_remote,
        })
        .await;
}

#[allow(clippy::too_many_arguments)]
async fn read_loop(
    mut rd: OwnedReadHalf,
    mut reader: NoiseReader,
    mut decoder: PacketDecoder,
    conn: ConnId,
    events: mpsc::Sender<ConnEvent>,
    tx: mpsc::Sender<Outbound>,
    close: mpsc::Sender<Close>,
    idle: Duration,
) {
    let local = |reason| Close {
        reason,
        by_remote: false,
    };
    let end = 'conn: loop {
        let plain = match timeout(idle, reader.read(&mut rd)).await {
            Err(_) => break local(DisconnectReason::Timeout),
            Ok(Err(ConnectError::Malformed(e))) => break local(e.disconnect_reason()),
            Ok(Err(ConnectError::Handshake)) => break local(DisconnectReason::ProtocolBreach),
            Ok(Err(_)) => break local(DisconnectReason::ConnectionLost),
            Ok(Ok(plain)) => plain,
        };
        if let Err(e) = decoder.push(plain) {
            break local(e.disconnect_reason());
        }
        loop {
            match decoder.next_packet() {
                Err(e) => break 'conn local(e.disconnect_reason()),
                Ok(None) => break,
                Ok(Some(Packet::Frame {
                    protocol,
                    kind,
                    body,
                })) => {
                    let ev = ConnEvent::Frame {
                        conn,
                        protocol,
                        kind,
                        body,
                    };
                    if events.send(ev).await.is_err() {
                        return;
                    }
                }
                Ok(Some(Packet::Ping(n))) => {
                    if tx.send(Outbound::Pong(n)).await.is_err() {
                        return;
                    }
                }
                Ok(Some(Packet::Pong(_))) => {}
                Ok(Some(Packet::Disconnect(reason))) => {
                    break 'conn Close {
                        reason,
                        by_remote: true,
                    };
                }
                Ok(Some(Packet::Hello(_))) => break 'conn local(DisconnectReason::ProtocolBreach),
            }
        }
    };
    let _ = close.send(end).await;
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut writer: NoiseWriter,
    mut rx: mpsc::Receiver<Outbound>,
    mut close_rx: mpsc::Receiver<Close>,
    tags: &Tags,
    ping_interval: Duration,
) -> Close {
    let mut ping = interval_at(Instant::now() + ping_interval, ping_interval);
    let mut ping_nonce = 0u64;
    let mut buf = Vec::new();
    let lost = Close {
        reason: DisconnectReason::ConnectionLost,
        by_remote: false,
    };
    loop {
        buf.clear();
        tokio::select! {
            biased;
            c = close_rx.recv() => {
                let c = c.unwrap_or(Close { reason: DisconnectReason::Shutdown, by_remote: false });
                if !c.by_remote && c.reason != DisconnectReason::ConnectionLost {
                    let _ = wire::encode_control(&Packet::Disconnect(c.reason), &mut buf);
                    let _ = writer.send(&mut wr, &buf).await;
                }
                let _ = wr.shutdown().await;
                return c;
            }
            m = rx.recv() => {
                let Some(mut m) = m else {
                    let _ = wire::encode_control(&Packet::Disconnect(DisconnectReason::Shutdown), &mut buf);
                    let _ = writer.send(&mut wr, &buf).await;
                    let _ = wr.shutdown().await;
                    return Close { reason: DisconnectReason::Shutdown, by_remote: false };
                };
                // Batch what is already queued into one write (bounded by one large frame).
                loop {
                    match m {
                        Outbound::Frame { protocol, kind, body } => {
                            if let Some(tag) = tags.of(protocol, kind) {
                                // The driver checked the cap; a frame over it is skipped.
                                let _ = wire::encode_frame(tag, protocol, kind, &body, &mut buf);
                            }
                        }
                        Outbound::Pong(n) => {
                            let _ = wire::encode_control(&Packet::Pong(n), &mut buf);
                        }
                    }
                    if buf.len() >= MAX_NOISE_PLAINTEXT {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(next) => m = next,
                        Err(_) => break,
                    }
                }
                if writer.send(&mut wr, &buf).await.is_err() {
                    return lost;
                }
            }
            _ = ping.tick() => {
                ping_nonce = ping_nonce.wrapping_add(1);
                let _ = wire::encode_control(&Packet::Ping(ping_nonce), &mut buf);
                if writer.send(&mut wr, &buf).await.is_err() {
                    return lost;
                }
            }
        }
    }
}

async fn send_control(
    writer: &mut NoiseWriter,
    stream: &mut TcpStream,
    p: &Packet,
) -> Result<(), ConnectError> {
    let mut buf = Vec::new();
    wire::encode_control(p, &mut buf).map_err(ConnectError::Malformed)?;
    writer.send(stream, &buf).await
}

async fn write_framed(stream: &mut TcpStream, msg: &[u8]) -> Result<(), ConnectError> {
    let len = u16::try_from(msg.len()).map_err(|_| ConnectError::Handshake)?;
    let mut b = Vec::with_capacity(2 + msg.len());
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(msg);
    stream.write_all(&b).await.map_err(io_error)
}

/// Reads one `u16 BE len ‖ bytes` message into `buf` (which holds [`MAX_NOISE_MESSAGE`]).
async fn read_framed(
    r: &mut (impl AsyncReadExt + Unpin),
    buf: &mut [u8],
) -> Result<usize, ConnectError> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await.map_err(io_error)?;
    let n = usize::from(u16::from_be_bytes(len));
    let dst = buf.get_mut(..n).ok_or(ConnectError::Handshake)?;
    r.read_exact(dst).await.map_err(io_error)?;
    Ok(n)
}

fn io_error(e: std::io::Error) -> ConnectError {
    ConnectError::Io(e.kind())
}

/// The sending half of a Noise session: a counter nonce over the shared stateless state.
pub(crate) struct NoiseWriter {
    state: Arc<StatelessTransportState>,
    nonce: u64,
}

impl NoiseWriter {
    /// Encrypts `plaintext` as one or more Noise messages (chunks of at most
    /// [`MAX_NOISE_PLAINTEXT`]) and writes them at once.
    pub(crate) async fn send(
        &mut self,
        w: &mut (impl AsyncWriteExt + Unpin),
        plaintext: &[u8],
    ) -> Result<(), ConnectError> {
        let chunks = plaintext.len().div_ceil(MAX_NOISE_PLAINTEXT).max(1);
        let mut out = Vec::with_capacity(plaintext.len() + chunks * (2 + NOISE_TAG_LEN));
        let mut cipher = vec![0u8; MAX_NOISE_MESSAGE];
        let mut pieces = plaintext.chunks(MAX_NOISE_PLAINTEXT).peekable();
        if pieces.peek().is_none() {
            return Ok(());
        }
        for piece in pieces {
            // The nonce never wraps: 2^64 messages will not be sent on one connection.
            let n = self
                .state
                .write_message(self.nonce, piece, &mut cipher)
                .map_err(|_| ConnectError::Handshake)?;
            self.nonce = self.nonce.checked_add(1).ok_or(ConnectError::Handshake)?;
            let len = u16::try_from(n).map_err(|_| ConnectError::Handshake)?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(cipher.get(..n).unwrap_or_default());
        }
        w.write_all(&out).await.map_err(io_error)
    }
}

/// The receiving half of a Noise session.
pub(crate) struct NoiseReader {
    state: Arc<StatelessTransportState>,
    nonce: u64,
    cipher: Vec<u8>,
    plain: Vec<u8>,
}

impl NoiseReader {
    /// Reads and decrypts one Noise message; a message that fails to decrypt is a breach
    /// (reported as [`ConnectError::Handshake`]).
    pub(crate) async fn read(
        &mut self,
        r: &mut (impl AsyncReadExt + Unpin),
    ) -> Result<&[u8], ConnectError> {
        let n = read_framed(r, &mut self.cipher).await?;
        let msg = self.cipher.get(..n).unwrap_or_default();
        let m = self
            .state
            .read_message(self.nonce, msg, &mut self.plain)
            .map_err(|_| ConnectError::Handshake)?;
        self.nonce = self.nonce.checked_add(1).ok_or(ConnectError::Handshake)?;
        Ok(self.plain.get(..m).unwrap_or_default())
    }
}
