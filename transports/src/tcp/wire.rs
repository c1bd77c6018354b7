//! The bytes of the TCP transport after the Noise handshake: packets, the Hello, disconnect
//! reasons. Sans-IO and fuzzed (`fuzzing::tcp_packets`, `fuzzing::tcp_hello`).
//!
//! # Layers
//!
//! 1. **Noise transport messages** on the socket: `u16 BE length ‖ ciphertext`, at most
//!    [`MAX_NOISE_MESSAGE`] bytes of ciphertext (the Noise limit), so at most
//!    [`MAX_NOISE_PLAINTEXT`] bytes of plaintext each.
//! 2. **The plaintext stream**: the plaintexts of the messages, concatenated, carry packets. A
//!    packet longer than one message simply continues in the next; a message may end in the
//!    middle of a packet or hold several.
//! 3. **Packets**:
//!
//!    ```text
//!    u32 BE len ‖ u8 tag ‖ u8 kind ‖ [u64 BE request id] ‖ body
//!    ```
//!
//!    `len` counts every byte after itself. `tag` 0 is the control channel, whose `kind` is
//!    0 Hello (body: the [`Hello`] encoding), 1 Disconnect (body: one reason byte), 2 Ping and
//!    3 Pong (body: a `u64 BE` nonce). Tag `i ≥ 1` names a protocol by the index `i - 1` in the
//!    Hello of the side that *serves* it: a stream frame (`kind` 0) or a request (`kind` 1)
//!    goes to the server, so its tag indexes the *receiver's* Hello; a response (`kind` 2)
//!    comes from the server, so its tag indexes the *sender's* Hello. Requests and responses
//!    are followed by the request id. The receiver reads `kind` first, picks the Hello, and
//!    checks `len` against the cap of the tag ([`Protocol::max_frame_len`] plus the header, or
//!    [`MAX_HELLO_LEN`] for control) as soon as the six header bytes are in, before it buffers
//!    or allocates the body. A tag past either list, or naming a capability this side does not
//!    speak, is a breach.
//!
//! # The Hello
//!
//! Each side's first packet, devp2p's capability list in a small hand-rolled encoding (every
//! length one byte, every integer big-endian, strings UTF-8, nothing after the last capability):
//!
//! ```text
//! u8 version (= 1) ‖ u16 listen_port (0: not listening) ‖ u8 n ‖ client name (n bytes)
//!   ‖ u8 count ‖ count × ( u8 n ‖ name (n bytes) ‖ u8 m ‖ version (m bytes) )
//! ```
//!
//! A capability is a Waku protocol id split at its last `/`: `/vac/waku/relay/2.0.0` is the name
//! `/vac/waku/relay` at version `2.0.0`. A Hello lists what its sender *serves* (libp2p's
//! identify); a client opens a protocol the other side lists, and needs to list nothing itself
//! for that. So a connection is useless only when it could carry nothing at all: when the
//! peer's Hello lists no protocol this side speaks (nothing to open there) *and* this side's
//! Hello lists nothing (nothing for the peer to open here). Each side applies the rule to
//! itself ([`Hello::is_useless_with`]) and parts with [`DisconnectReason::UselessPeer`].

use std::collections::VecDeque;

use waku_core::net::{FrameKind, Protocol};

/// The version byte of this encoding, sent in the Hello.
pub const WIRE_VERSION: u8 = 1;

/// The largest Noise message (ciphertext) on the socket, fixed by the Noise specification.
pub const MAX_NOISE_MESSAGE: usize = 65_535;

/// The ChaCha20-Poly1305 tag added to every Noise message.
pub const NOISE_TAG_LEN: usize = 16;

/// The largest plaintext one Noise message carries.
pub const MAX_NOISE_PLAINTEXT: usize = MAX_NOISE_MESSAGE - NOISE_TAG_LEN;

/// The largest Hello body: 32 capabilities of two 255-byte strings would not fit, real ones (a
/// few dozen bytes each) do with room to spare; a longer Hello is a breach.
pub const MAX_HELLO_LEN: usize = 4096;

/// The most capabilities a Hello may list (the tag byte could address 255; eight are used).
pub const MAX_CAPABILITIES: usize = 32;

/// The longest client name in a Hello, in bytes.
pub const MAX_CLIENT_LEN: usize = 64;

/// Bytes of a packet header before the optional request id: `len`, `tag`, `kind`.
pub const HEADER_LEN: usize = 6;

/// Bytes of a request id.
const ID_LEN: usize = 8;

/// The largest packet on the control channel (counted from the tag).
const MAX_CONTROL_LEN: usize = 2 + MAX_HELLO_LEN;

/// The largest `len` of any packet: the largest frame any protocol allows, plus tag, kind and id.
pub const MAX_PACKET_LEN: usize = max_frame_len_of_all() + 2 + ID_LEN;

/// Bytes the decoder buffers at most: one whole packet plus one Noise message beyond it.
pub const MAX_DECODER_BUFFER: usize = 4 + MAX_PACKET_LEN + MAX_NOISE_PLAINTEXT;

const fn max_frame_len_of_all() -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < Protocol::ALL.len() {
        #[allow(clippy::indexing_slicing)] // i < len, checked by the loop.
        let l = Protocol::ALL[i].max_frame_len();
        if l > max {
            max = l;
        }
        i += 1;
    }
    max
}

/// Why a connection ends, sent in a Disconnect packet as one byte (devp2p-style codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The application asked to disconnect (code 0).
    Requested,
    /// The peer sent something malformed or out of place (code 1).
    ProtocolBreach,
    /// The two sides share no protocol (code 2).
    UselessPeer,
    /// The node has all the peers it wants (code 3).
    TooManyPeers,
    /// Another connection to the same node key is kept (code 4).
    AlreadyConnected,
    /// The peer's wire version is not spoken (code 5).
    IncompatibleVersion,
    /// The peer turned out to be this node (code 6).
    SelfConnection,
    /// Nothing arrived within the idle timeout, pings included (code 7).
    Timeout,
    /// A packet announced a length above the cap of its protocol (code 8).
    FrameTooLarge,
    /// The peer did not read fast enough and its send queue filled up (code 9).
    Overloaded,
    /// The peer's static key is not the one expected for that address (code 10).
    UnexpectedIdentity,
    /// The node is shutting down (code 11).
    Shutdown,
    /// The connection broke (end of stream or I/O error); never sent.
    ConnectionLost,
    /// A code this version does not know.
    Other(u8),
}

impl DisconnectReason {
    /// The byte on the wire.
    pub const fn code(self) -> u8 {
        match self {
            DisconnectReason::Requested => 0,
            DisconnectReason::ProtocolBreach => 1,
            DisconnectReason::UselessPeer => 2,
            DisconnectReason::TooManyPeers => 3,
            DisconnectReason::AlreadyConnected => 4,
            DisconnectReason::IncompatibleVersion => 5,
            DisconnectReason::SelfConnection => 6,
            DisconnectReason::Timeout => 7,
            DisconnectReason::FrameTooLarge => 8,
            DisconnectReason::Overloaded => 9,
            DisconnectReason::UnexpectedIdentity => 10,
            DisconnectReason::Shutdown => 11,
            DisconnectReason::ConnectionLost => 255,
            DisconnectReason::Other(c) => c,
        }
    }

    /// The reason for a byte from the wire (every byte decodes).
    pub const fn from_code(code: u8) -> Self {
        match code {
            0 => DisconnectReason::Requested,
            1 => DisconnectReason::ProtocolBreach,
            2 => DisconnectReason::UselessPeer,
            3 => DisconnectReason::TooManyPeers,
            4 => DisconnectReason::AlreadyConnected,
            5 => DisconnectReason::IncompatibleVersion,
            6 => DisconnectReason::SelfConnection,
            7 => DisconnectReason::Timeout,
            8 => DisconnectReason::FrameTooLarge,
            9 => DisconnectReason::Overloaded,
            10 => DisconnectReason::UnexpectedIdentity,
            11 => DisconnectReason::Shutdown,
            c => DisconnectReason::Other(c),
        }
    }
}

/// A protocol as the Hello lists it: name and version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability {
    /// The protocol id without its last segment, e.g. `/vac/waku/relay`.
    pub name: String,
    /// The last segment, e.g. `2.0.0`.
    pub version: String,
}

impl Capability {
    /// The capability of a protocol status-rs speaks.
    pub fn of(protocol: Protocol) -> Self {
        let id = protocol.id();
        let (name, version) = id.rsplit_once('/').unwrap_or((id, ""));
        Capability {
            name: name.to_owned(),
            version: version.to_owned(),
        }
    }

    /// The protocol this capability names, if status-rs speaks it.
    pub fn protocol(&self) -> Option<Protocol> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.id().rsplit_once('/') == Some((self.name.as_str(), self.version.as_str())))
    }
}

/// The first packet of each side (see the [module docs](self) for the encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's wire version.
    pub version: u8,
    /// The port the sender accepts connections on, 0 if none.
    pub listen_port: u16,
    /// A free-form client name, at most [`MAX_CLIENT_LEN`] bytes.
    pub client: String,
    /// What the sender speaks, at most [`MAX_CAPABILITIES`]; the packet tag `i + 1` means
    /// `capabilities[i]`.
    pub capabilities: Vec<Capability>,
}

impl Hello {
    /// The Hello of a node speaking `protocols`.
    pub fn new(client: &str, listen_port: u16, protocols: &[Protocol]) -> Self {
        Hello {
            version: WIRE_VERSION,
            listen_port,
            client: client.to_owned(),
            capabilities: protocols.iter().map(|&p| Capability::of(p)).collect(),
        }
    }

    /// The encoding; fails if a field is over its limit.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        if self.client.len() > MAX_CLIENT_LEN {
            return Err(WireError::HelloField("client"));
        }
        if self.capabilities.len() > MAX_CAPABILITIES {
            return Err(WireError::TooManyCapabilities(self.capabilities.len()));
        }
        let mut out = Vec::with_capacity(64);
        out.push(self.version);
        out.extend_from_slice(&self.listen_port.to_be_bytes());
        put_str(&mut out, &self.client, "client")?;
        out.push(
            u8::try_from(self.capabilities.len()).map_err(|_| WireError::HelloField("count"))?,
        );
        for c in &self.capabilities {
            put_str(&mut out, &c.name, "name")?;
            put_str(&mut out, &c.version, "version")?;
        }
        if out.len() > MAX_HELLO_LEN {
            return Err(WireError::HelloTooLong(out.len()));
        }
        Ok(out)
    }

    /// Decodes a Hello body.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_HELLO_LEN {
            return Err(WireError::HelloTooLong(bytes.len()));
        }
        let mut r = Reader(bytes);
        let version = r.u8()?;
        let listen_port = u16::from_be_bytes([r.u8()?, r.u8()?]);
        let client = r.string("client")?;
        if client.len() > MAX_CLIENT_LEN {
            return Err(WireError::HelloField("client"));
        }
        let count = usize::from(r.u8()?);
        if count > MAX_CAPABILITIES {
            return Err(WireError::TooManyCapabilities(count));
        }
        let mut capabilities = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.string("name")?;
            let version = r.string("version")?;
            capabilities.push(Capability { name, version });
        }
        if !r.0.is_empty() {
            return Err(WireError::TrailingBytes(r.0.len()));
        }
        Ok(Hello {
            version,
            listen_port,
            client,
            capabilities,
        })
    }

    /// The protocols this Hello lists that status-rs speaks, in its order (what its sender
    /// serves, as a machine is told in `handle_connected`).
    pub fn protocols(&self) -> Vec<Protocol> {
        let mut out: Vec<Protocol> = Vec::with_capacity(self.capabilities.len());
        for p in self.capabilities.iter().filter_map(Capability::protocol) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// The tag that names `protocol` in this Hello: 1 + the index of its first listing.
    pub fn tag_of(&self, protocol: Protocol) -> Option<u8> {
        let cap = Capability::of(protocol);
        let i = self.capabilities.iter().position(|c| *c == cap)?;
        u8::try_from(i + 1).ok()
    }

    /// Whether a connection between the sender of `self` (ours) and of `theirs` could carry
    /// nothing: the peer serves nothing we speak and we serve nothing (see the
    /// [module docs](self)).
    pub fn is_useless_with(&self, theirs: &Hello) -> bool {
        self.capabilities.is_empty() && theirs.protocols().is_empty()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str, field: &'static str) -> Result<(), WireError> {
    out.push(u8::try_from(s.len()).map_err(|_| WireError::HelloField(field))?);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, WireError> {
        let (&b, rest) = self.0.split_first().ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }

    fn string(&mut self, field: &'static str) -> Result<String, WireError> {
        let n = usize::from(self.u8()?);
        if self.0.len() < n {
            return Err(WireError::Truncated);
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8(s.to_vec()).map_err(|_| WireError::HelloField(field))
    }
}

/// One decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Packet {
    /// The peer's Hello.
    Hello(Hello),
    /// The peer is closing the connection.
    Disconnect(DisconnectReason),
    /// A keepalive to answer with [`Packet::Pong`].
    Ping(u64),
    /// The answer to a ping.
    Pong(u64),
    /// A frame for the machine.
    Frame {
        /// The protocol (mapped from the tag through the peer's Hello).
        protocol: Protocol,
        /// Stream, request or response.
        kind: FrameKind,
        /// The frame body.
        body: Vec<u8>,
    },
}

/// Why bytes from a peer were rejected. Every variant is the peer's fault and ends the
/// connection with the reason [`WireError::disconnect_reason`] gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended inside a field.
    #[error("truncated")]
    Truncated,
    /// Bytes followed the last field of a Hello.
    #[error("{0} bytes after the end of the Hello")]
    TrailingBytes(usize),
    /// A Hello is longer than [`MAX_HELLO_LEN`].
    #[error("Hello of {0} bytes is too long")]
    HelloTooLong(usize),
    /// A Hello lists more than [`MAX_CAPABILITIES`].
    #[error("Hello lists {0} capabilities")]
    TooManyCapabilities(usize),
    /// A Hello string is not UTF-8 or over its limit.
    #[error("bad Hello field {0}")]
    HelloField(&'static str),
    /// A packet announced a length over the cap of its tag.
    #[error("packet of {len} bytes exceeds the cap of {cap}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The cap.
        cap: usize,
    },
    /// A packet is too short for its header.
    #[error("packet of {0} bytes is too short")]
    TooShort(usize),
    /// A tag names no protocol the serving side lists and we speak (or a frame came before the
    /// Hellos).
    #[error("tag {0} names no protocol served on this connection")]
    UnknownTag(u8),
    /// An unknown kind byte.
    #[error("unknown kind {kind} on tag {tag}")]
    UnknownKind {
        /// The tag.
        tag: u8,
        /// The kind.
        kind: u8,
    },
    /// A control packet body has the wrong length.
    #[error("control packet {0} has a bad body")]
    BadControl(u8),
    /// More than [`MAX_DECODER_BUFFER`] bytes would be buffered.
    #[error("decoder buffer full")]
    BufferFull,
}

impl WireError {
    /// The reason sent to the peer before closing.
    pub const fn disconnect_reason(&self) -> DisconnectReason {
        match self {
            WireError::TooLarge { .. } | WireError::BufferFull => DisconnectReason::FrameTooLarge,
            _ => DisconnectReason::ProtocolBreach,
        }
    }
}

const CONTROL_HELLO: u8 = 0;
const CONTROL_DISCONNECT: u8 = 1;
const CONTROL_PING: u8 = 2;
const CONTROL_PONG: u8 = 3;
const KIND_STREAM: u8 = 0;
const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;

/// Encodes a control packet (appends to `out`).
pub fn encode_control(packet: &Packet, out: &mut Vec<u8>) -> Result<(), WireError> {
    let (kind, body): (u8, Vec<u8>) = match packet {
        Packet::Hello(h) => (CONTROL_HELLO, h.encode()?),
        Packet::Disconnect(r) => (CONTROL_DISCONNECT, vec![r.code()]),
        Packet::Ping(n) => (CONTROL_PING, n.to_be_bytes().to_vec()),
        Packet::Pong(n) => (CONTROL_PONG, n.to_be_bytes().to_vec()),
        Packet::Frame { .. } => return Err(WireError::UnknownTag(0)),
    };
    put_header(out, 2 + body.len(), 0, kind);
    out.extend_from_slice(&body);
    Ok(())
}

/// Encodes a frame on capability tag `tag` (1 + the protocol's index in the Hello of the side
/// that serves it: the receiver's for a stream frame or request, ours for a response); appends
/// to `out`.
/// Fails if the body is over the protocol's cap.
pub fn encode_frame(
    tag: u8,
    protocol: Protocol,
    kind: FrameKind,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let cap = protocol.max_frame_len();
    if body.len() > cap {
        return Err(WireError::TooLarge {
            len: body.len(),
            cap,
        });
    }
    let (k, id) = match kind {
        FrameKind::Stream => (KIND_STREAM, None),
        FrameKind::Request(id) => (KIND_REQUEST, Some(id)),
        FrameKind::Response(id) => (KIND_RESPONSE, Some(id)),
    };
    let len = 2 + id.map_or(0, |_| ID_LEN) + body.len();
    out.reserve(4 + len);
    put_header(out, len, tag, k);
    if let Some(id) = id {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(body);
    Ok(())
}

fn put_header(out: &mut Vec<u8>, len: usize, tag: u8, kind: u8) {
    // Every caller keeps `len` under MAX_PACKET_LEN, far below u32::MAX.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    out.push(tag);
    out.push(kind);
}

/// Reassembles packets from the plaintext stream, checking every length before buffering the
/// body. Memory is bounded by [`MAX_DECODER_BUFFER`].
#[derive(Debug, Clone, Default)]
pub struct PacketDecoder {
    buf: VecDeque<u8>,
    /// Tags of stream frames and requests, which name what *we* serve: tag `i + 1` maps to
    /// `ours[i]`.
    ours: Vec<Option<Protocol>>,
    /// Tags of responses, which name what the *peer* serves: tag `i + 1` maps to `theirs[i]`;
    /// `None` for a capability we do not speak.
    theirs: Vec<Option<Protocol>>,
    failed: bool,
}

impl PacketDecoder {
    /// A decoder that accepts control packets only, until [`PacketDecoder::set_hellos`].
    pub fn new() -> Self {
        PacketDecoder::default()
    }

    /// Learns the tags from both Hellos: `ours` (what we serve, named by stream frames and
    /// requests) and `theirs` (what the peer serves, named by responses).
    pub fn set_hellos(&mut self, ours: &Hello, theirs: &Hello) {
        self.ours = ours.capabilities.iter().map(Capability::protocol).collect();
        self.theirs = theirs
            .capabilities
            .iter()
            .map(Capability::protocol)
            .collect();
    }

    /// Bytes buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends plaintext. Fails (and stays failed) if the buffer would exceed its bound.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        if self.failed || self.buf.len() + bytes.len() > MAX_DECODER_BUFFER {
            self.failed = true;
            return Err(WireError::BufferFull);
        }
        self.buf.extend(bytes);
        Ok(())
    }

    /// The next whole packet, `None` if more bytes are needed. After an error the decoder is
    /// unusable (the connection must close).
    pub fn next_packet(&mut self) -> Result<Option<Packet>, WireError> {
        if self.failed {
            return Err(WireError::BufferFull);
        }
        let r = self.try_next();
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn try_next(&mut self) -> Result<Option<Packet>, WireError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut head = [0u8; HEADER_LEN];
        for (d, s) in head.iter_mut().zip(self.buf.iter()) {
            *d = *s;
        }
        let [l0, l1, l2, l3, tag, kind] = head;
        let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
        if len < 2 {
            return Err(WireError::TooShort(len));
        }
        // The cap, before anything of the body is awaited or allocated. The kind says whose
        // Hello the tag indexes.
        let protocol = if tag == 0 {
            None
        } else {
            let table = match kind {
                KIND_STREAM | KIND_REQUEST => &self.ours,
                KIND_RESPONSE => &self.theirs,
                other => return Err(WireError::UnknownKind { tag, kind: other }),
            };
            let p = table
                .get(usize::from(tag) - 1)
                .copied()
                .flatten()
                .ok_or(WireError::UnknownTag(tag))?;
            Some(p)
        };
        let cap = match protocol {
            None => MAX_CONTROL_LEN,
            Some(p) => 2 + ID_LEN + p.max_frame_len(),
        };
        if len > cap {
            return Err(WireError::TooLarge { len, cap });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        self.buf.drain(..HEADER_LEN);
        let rest = len - 2;
        let packet = match protocol {
            None => {
                let body: Vec<u8> = self.buf.drain(..rest).collect();
                decode_control(kind, &body)?
            }
            Some(protocol) => {
                let kind = match kind {
                    KIND_STREAM => FrameKind::Stream,
                    KIND_REQUEST | KIND_RESPONSE => {
                        if rest < ID_LEN {
                            return Err(WireError::TooShort(len));
                        }
                        let mut id = [0u8; ID_LEN];
                        for (d, s) in id.iter_mut().zip(self.buf.drain(..ID_LEN)) {
                            *d = s;
                        }
                        let id = u64::from_be_bytes(id);
                        if kind == KIND_REQUEST {
                            FrameKind::Request(id)
                        } else {
                            FrameKind::Response(id)
                        }
                    }
                    other => return Err(WireError::UnknownKind { tag, kind: other }),
                };
                let body_len = match kind {
                    FrameKind::Stream => rest,
                    _ => rest - ID_LEN,
                };
                let mut body = Vec::with_capacity(body_len);
                body.extend(self.buf.drain(..body_len));
                Packet::Frame {
                    protocol,
                    kind,
                    body,
                }
            }
        };
        Ok(Some(packet))
    }
}

fn decode_control(kind: u8, body: &[u8]) -> Result<Packet, WireError> {
    match kind {
        CONTROL_HELLO => Ok(Packet::Hello(Hello::decode(body)?)),
        CONTROL_DISCONNECT => match body {
            [code] => Ok(Packet::Disconnect(DisconnectReason::from_code(*code))),
            _ => Err(WireError::BadControl(kind)),
        },
        CONTROL_PING | CONTROL_PONG => {
            let n = <[u8; 8]>::try_from(body).map_err(|_| WireError::BadControl(kind))?;
            let n = u64::from_be_bytes(n);
            Ok(if kind == CONTROL_PING {
                Packet::Ping(n)
            } else {
                Packet::Pong(n)
            })
        }
        other => Err(WireError::UnknownKind {
            tag: 0,
            kind: other,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello::new(
            "status-rs/test",
            30303,
            &[Protocol::Relay, Protocol::StoreQuery],
        )
    }

    #[test]
    fn hello_round_trips_and_rejects_trailing_bytes() {
        let h = hello();
        let bytes = h.encode().unwrap();
        assert_eq!(Hello::decode(&bytes).unwrap(), h);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Hello::decode(&longer), Err(WireError::TrailingBytes(1)));
        for cut in 0..bytes.len() {
            assert!(
                Hello::decode(&bytes[..cut]).is_err(),
                "prefix {cut} decoded"
            );
        }
    }

    #[test]
    fn capabilities_split_protocol_ids() {
        let c = Capability::of(Protocol::Relay);
        assert_eq!(
            (c.name.as_str(), c.version.as_str()),
            ("/vac/waku/relay", "2.0.0")
        );
        for p in Protocol::ALL {
            assert_eq!(Capability::of(p).protocol(), Some(p));
        }
        let other = Capability {
            name: "/vac/waku/relay".into(),
            version: "2.1.0".into(),
        };
        assert_eq!(other.protocol(), None);
    }

    #[test]
    fn hello_protocols_and_tags_need_same_name_and_version() {
        let mut theirs = Hello::new("x", 0, &[Protocol::StoreQuery, Protocol::LightPush]);
        assert_eq!(
            theirs.protocols(),
            vec![Protocol::StoreQuery, Protocol::LightPush]
        );
        assert_eq!(theirs.tag_of(Protocol::LightPush), Some(2));
        assert_eq!(theirs.tag_of(Protocol::Relay), None);
        theirs.capabilities[0].version = "2.0.0".into();
        assert_eq!(theirs.protocols(), vec![Protocol::LightPush]);
        assert_eq!(theirs.tag_of(Protocol::StoreQuery), None);
        assert_eq!(theirs.tag_of(Protocol::LightPush), Some(2), "index kept");
    }

    #[test]
    fn useless_only_when_nothing_can_be_opened_either_way() {
        let nothing = Hello::new("client", 0, &[]);
        let store = Hello::new("server", 0, &[Protocol::StoreQuery]);
        let mut foreign = Hello::new("other", 0, &[Protocol::Relay]);
        foreign.capabilities[0].version = "9.9.9".into();
        // A pure client and a server: the client opens the store, the server answers.
        assert!(!nothing.is_useless_with(&store));
        assert!(!store.is_useless_with(&nothing));
        // Two pure clients, or a pure client and a node serving only what we do not speak.
        assert!(nothing.is_useless_with(&nothing));
        assert!(nothing.is_useless_with(&foreign));
    }

    #[test]
    fn packets_round_trip_across_arbitrary_splits() {
        let peer = hello();
        let mut out = Vec::new();
        encode_control(&Packet::Hello(peer.clone()), &mut out).unwrap();
        encode_control(&Packet::Ping(7), &mut out).unwrap();
        encode_frame(1, Protocol::Relay, FrameKind::Stream, b"gossip", &mut out).unwrap();
        encode_frame(
            2,
            Protocol::StoreQuery,
            FrameKind::Request(9),
            b"q",
            &mut out,
        )
        .unwrap();
        encode_frame(
            2,
            Protocol::StoreQuery,
            FrameKind::Response(9),
            &[],
            &mut out,
        )
        .unwrap();
        encode_control(&Packet::Disconnect(DisconnectReason::Timeout), &mut out).unwrap();
        for chunk in [1, 2, 5, 13, out.len()] {
            let mut d = PacketDecoder::new();
            let mut got = Vec::new();
            for piece in out.chunks(chunk) {
                d.push(piece).unwrap();
                while let Some(p) = d.next_packet().unwrap() {
                    if let Packet::Hello(h) = &p {
                        d.set_hellos(&hello(), h);
                    }
                    got.push(p);
                }
            }
            assert_eq!(
                got,
                vec![
                    Packet::Hello(peer.clone()),
                    Packet::Ping(7),
                    Packet::Frame {
                        protocol: Protocol::Relay,
                        kind: FrameKind::Stream,
                        body: b"gossip".to_vec()
                    },
                    Packet::Frame {
                        protocol: Protocol::StoreQuery,
                        kind: FrameKind::Request(9),
                        body: b"q".to_vec()
                    },
                    Packet::Frame {
                        protocol: Protocol::StoreQuery,
                        kind: FrameKind::Response(9),
                        body: vec![]
                    },
                    Packet::Disconnect(DisconnectReason::Timeout),
                ]
            );
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn oversized_length_is_rejected_from_the_header_alone() {
        let mut d = PacketDecoder::new();
        d.set_hellos(&hello(), &hello());
        let cap = 2 + ID_LEN + Protocol::Relay.max_frame_len();
        let mut header = u32::try_from(cap + 1).unwrap().to_be_bytes().to_vec();
        header.extend_from_slice(&[1, KIND_STREAM]);
        d.push(&header).unwrap();
        assert_eq!(
            d.next_packet(),
            Err(WireError::TooLarge { len: cap + 1, cap })
        );
        // Nothing of the announced body was reserved.
        assert!(d.buf.capacity() < 1024, "capacity {}", d.buf.capacity());
        // And a 4 GiB announcement on the control channel.
        let mut d = PacketDecoder::new();
        d.push(&[0xff, 0xff, 0xff, 0xff, 0, 0]).unwrap();
        assert!(matches!(d.next_packet(), Err(WireError::TooLarge { .. })));
        assert!(d.next_packet().is_err(), "a failed decoder stays failed");
    }

    #[test]
    fn tags_index_the_hello_of_the_serving_side() {
        let mut out = Vec::new();
        encode_frame(1, Protocol::Relay, FrameKind::Stream, b"x", &mut out).unwrap();
        let mut d = PacketDecoder::new();
        d.push(&out).unwrap();
        assert_eq!(
            d.next_packet(),
            Err(WireError::UnknownTag(1)),
            "before the Hellos"
        );
        // We serve only the store; the peer serves relay and store.
        let ours = Hello::new("us", 0, &[Protocol::StoreQuery]);
        let decode = |frame: &[u8]| {
            let mut d = PacketDecoder::new();
            d.set_hellos(&ours, &hello());
            d.push(frame).unwrap();
            d.next_packet()
        };
        // A stream frame or request names what the receiver (we) serves: tag 1 is the store.
        let mut req = Vec::new();
        encode_frame(
            1,
            Protocol::StoreQuery,
            FrameKind::Request(3),
            b"q",
            &mut req,
        )
        .unwrap();
        assert_eq!(
            decode(&req),
            Ok(Some(Packet::Frame {
                protocol: Protocol::StoreQuery,
                kind: FrameKind::Request(3),
                body: b"q".to_vec()
            }))
        );
        let mut stream = Vec::new();
        encode_frame(
            2,
            Protocol::StoreQuery,
            FrameKind::Stream,
            b"x",
            &mut stream,
        )
        .unwrap();
        assert_eq!(
            decode(&stream),
            Err(WireError::UnknownTag(2)),
            "we list one"
        );
        // A response names what the sender (the peer) serves: tag 1 is relay, 2 the store.
        let mut resp = Vec::new();
        encode_frame(
            2,
            Protocol::StoreQuery,
            FrameKind::Response(3),
            b"r",
            &mut resp,
        )
        .unwrap();
        assert_eq!(
            decode(&resp),
            Ok(Some(Packet::Frame {
                protocol: Protocol::StoreQuery,
                kind: FrameKind::Response(3),
                body: b"r".to_vec()
            }))
        );
        let mut past = Vec::new();
        encode_frame(
            3,
            Protocol::StoreQuery,
            FrameKind::Response(3),
            b"r",
            &mut past,
        )
        .unwrap();
        assert_eq!(decode(&past), Err(WireError::UnknownTag(3)));
        // A capability we do not speak names nothing.
        let mut odd = hello();
        odd.capabilities[0].version = "9.9.9".into();
        let mut d = PacketDecoder::new();
        d.set_hellos(&ours, &odd);
        let mut resp1 = Vec::new();
        encode_frame(1, Protocol::Relay, FrameKind::Response(1), b"r", &mut resp1).unwrap();
        d.push(&resp1).unwrap();
        assert_eq!(d.next_packet(), Err(WireError::UnknownTag(1)));
    }

    #[test]
    fn encoder_refuses_oversized_bodies() {
        let body = vec![0u8; Protocol::Metadata.max_frame_len() + 1];
        let mut out = Vec::new();
        assert!(matches!(
            encode_frame(1, Protocol::Metadata, FrameKind::Stream, &body, &mut out),
            Err(WireError::TooLarge { .. })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn every_reason_code_round_trips() {
        for c in 0..=254u8 {
            assert_eq!(DisconnectReason::from_code(c).code(), c);
        }
    }
}
