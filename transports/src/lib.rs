//! Drivers for the status-rs state machines: they own the sockets and the clock and run any
//! [`Machine`](waku_core::net::Machine) with one loop (DESIGN.md, "The drivers"):
//!
//! 1. drain the machine: [`poll_transmit`](waku_core::net::Machine::poll_transmit) until `None`
//!    (each frame goes to its peer), [`poll_event`](waku_core::net::Machine::poll_event) until
//!    `None` (each event goes to the application);
//! 2. wait for the next input: a frame from a peer, a connection change, the instant of
//!    [`poll_timeout`](waku_core::net::Machine::poll_timeout), or a command from the
//!    application;
//! 3. hand it to the machine with the current [`Now`](waku_core::net::Now) and go to 1.
//!
//! - `memory` (feature `memory`, default): a deterministic simulated network on a virtual
//!   clock, for tests, benchmarks and the demo.
//! - `tcp` (feature `tcp`): a devp2p-style transport on tokio with Noise, a Hello exchange,
//!   tagged length-prefixed frames, keepalive and reconnects.
//! - `libp2p` (feature `libp2p`, off by default): TCP/WebSocket, Noise, yamux/mplex, identify and
//!   ping, with the Waku protocols on their own stream protocol ids, as real Waku nodes and
//!   clients speak them (docs/interop.md).
//!
//! Both follow libp2p's model of who speaks what: [`Machine::protocols`] lists what a machine
//! *serves* (identify, or the TCP Hello), and a client opens a protocol the remote serves. On
//! connect a machine is told the protocols the *remote* serves. A stream frame or a request on
//! protocol `P` is carried only if its receiver lists `P`; a response only if its sender does
//! (the server answers). Other frames, and frames longer than [`Protocol::max_frame_len`], are
//! dropped and counted. So a light node lists only what it serves (metadata, the filter pushes
//! it receives) and still queries stores, subscribes and lightpushes through peers that list
//! those protocols, and no full node mistakes it for a server. A peer that reconnects gets a
//! fresh [`PeerId`].
//!
//! [`Machine::protocols`]: waku_core::net::Machine::protocols
//! [`Protocol::max_frame_len`]: waku_core::net::Protocol::max_frame_len
//! [`PeerId`]: waku_core::net::PeerId
#![forbid(unsafe_code)]

#[cfg(feature = "memory")]
pub mod memory;

#[cfg(feature = "tcp")]
pub mod tcp;

#[cfg(feature = "libp2p")]
pub mod libp2p;

#[cfg(any(feature = "libp2p", feature = "fuzzing"))]
pub mod framing;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
