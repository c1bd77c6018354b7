//! Node roles: the set of capabilities a node offers (the design article's "Node Types").
//!
//! A node is defined by what it does: send, receive, relay, store and bootstrap. Three presets
//! name the usual combinations:
//!
//! | preset | capabilities | typical node |
//! |---|---|---|
//! | [`Capabilities::LIGHT`] | send, receive | a mobile client; sends through lightpush, receives through filter and store |
//! | [`Capabilities::FULL`] | all five | relays and stores for others, helps others find peers |
//! | [`Capabilities::BOOTSTRAP`] | bootstrap | only helps new nodes discover peers |
//!
//! Capabilities can change at run time (a phone may act as a light node on cellular data and as a
//! full node on Wi-Fi); the set is a plain value the node consults when deciding which protocols
//! to mount and advertise ([`Capabilities::served_protocols`], [`Capabilities::enr_waku2_bits`]).
//!
//! ```
//! use waku_core::roles::{Capabilities, Capability};
//! let caps = Capabilities::LIGHT.with(Capability::Relay);
//! assert!(caps.contains(Capability::Relay) && caps.contains(Capability::Send));
//! assert!(!caps.contains(Capability::Store));
//! assert_eq!(caps.to_string(), "send,receive,relay");
//! ```

use std::fmt;
use std::str::FromStr;

use crate::net::Protocol;

/// One thing a node can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// Publish its own messages (through relay, or lightpush when not relaying).
    Send,
    /// Receive messages meant for it (through relay, or filter and store when not relaying).
    Receive,
    /// Relay other nodes' messages on the gossipsub mesh.
    Relay,
    /// Store historical messages for other nodes and serve store queries.
    Store,
    /// Help other nodes discover peers (peer exchange, discovery).
    Bootstrap,
}

impl Capability {
    /// Every capability, in a fixed order.
    pub const ALL: [Capability; 5] = [
        Capability::Send,
        Capability::Receive,
        Capability::Relay,
        Capability::Store,
        Capability::Bootstrap,
    ];

    const fn bit(self) -> u8 {
        match self {
            Capability::Send => 1,
            Capability::Receive => 1 << 1,
            Capability::Relay => 1 << 2,
            Capability::Store => 1 << 3,
            Capability::Bootstrap => 1 << 4,
        }
    }

    /// The lowercase name (`send`, `receive`, `relay`, `store`, `bootstrap`).
    pub const fn name(self) -> &'static str {
        match self {
            Capability::Send => "send",
            Capability::Receive => "receive",
            Capability::Relay => "relay",
            Capability::Store => "store",
            Capability::Bootstrap => "bootstrap",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a string is not a capability list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilitiesError {
    /// A name that is neither a capability nor a preset.
    #[error("unknown capability {0:?}")]
    Unknown(String),
}

impl FromStr for Capability {
    type Err = CapabilitiesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| CapabilitiesError::Unknown(s.to_owned()))
    }
}

/// A set of [`Capability`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u8);

impl Capabilities {
    /// No capabilities.
    pub const NONE: Capabilities = Capabilities(0);
    /// A light node: send and receive its own messages only.
    pub const LIGHT: Capabilities =
        Capabilities(Capability::Send.bit() | Capability::Receive.bit());
    /// A full node: send, receive, relay, store and bootstrap.
    pub const FULL: Capabilities = Capabilities(
        Capability::Send.bit()
            | Capability::Receive.bit()
            | Capability::Relay.bit()
            | Capability::Store.bit()
            | Capability::Bootstrap.bit(),
    );
    /// A bootstrap node: only helps others find peers.
    pub const BOOTSTRAP: Capabilities = Capabilities(Capability::Bootstrap.bit());

    /// The set with `c` added.
    #[must_use]
    pub const fn with(self, c: Capability) -> Self {
        Capabilities(self.0 | c.bit())
    }

    /// The set with `c` removed.
    #[must_use]
    pub const fn without(self, c: Capability) -> Self {
        Capabilities(self.0 & !c.bit())
    }

    /// Whether `c` is in the set.
    pub const fn contains(self, c: Capability) -> bool {
        self.0 & c.bit() != 0
    }

    /// Whether every capability of `other` is in the set.
    pub const fn contains_all(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The capabilities in the set, in [`Capability::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// Whether the node runs the gossipsub router (otherwise it sends and receives through
    /// lightpush, filter and store served by others).
    pub const fn is_relaying(self) -> bool {
        self.contains(Capability::Relay)
    }

    /// The protocols a node with these capabilities serves to others, in [`Protocol::ALL`] order.
    ///
    /// Relay and store are their own protocols. A relaying node also serves the light-client
    /// protocols (filter, lightpush), since it has the messages they need; a bootstrap node serves
    /// peer exchange. Every node that serves anything answers metadata.
    pub fn served_protocols(self) -> Vec<Protocol> {
        let relay = self.contains(Capability::Relay);
        let store = self.contains(Capability::Store);
        let bootstrap = self.contains(Capability::Bootstrap);
        let any = relay || store || bootstrap;
        Protocol::ALL
            .into_iter()
            .filter(|p| match p {
                Protocol::Relay => relay,
                Protocol::StoreQuery => store,
                Protocol::FilterSubscribe
                | Protocol::FilterPush
                | Protocol::LightPush
                | Protocol::LightPushLegacy => relay,
                Protocol::PeerExchange => bootstrap,
                Protocol::Metadata => any,
            })
            .collect()
    }

    /// The ENR `waku2` bit field (WIRE.md B.6): bit 0 relay, bit 1 store, bit 2 filter,
    /// bit 3 lightpush; filter and lightpush are set for relaying nodes, which serve them.
    pub const fn enr_waku2_bits(self) -> u8 {
        let mut bits = 0;
        if self.contains(Capability::Relay) {
            bits |= 0b0000_1101;
        }
        if self.contains(Capability::Store) {
            bits |= 0b0000_0010;
        }
        bits
    }
}

impl From<Capability> for Capabilities {
    fn from(c: Capability) -> Self {
        Capabilities(c.bit())
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        iter.into_iter()
            .fold(Capabilities::NONE, Capabilities::with)
    }
}

impl fmt::Display for Capabilities {
    /// Comma-separated names in [`Capability::ALL`] order; `none` for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, c) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(c.name())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Capabilities({self})")
    }
}

impl FromStr for Capabilities {
    type Err = CapabilitiesError;
    /// A preset name (`light`, `full`, `bootstrap` — `bootstrap` alone means the preset, which
    /// is also the single capability), `none`, or a comma-separated list of capability names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "light" => return Ok(Capabilities::LIGHT),
            "full" => return Ok(Capabilities::FULL),
            "none" | "" => return Ok(Capabilities::NONE),
            _ => {}
        }
        s.split(',')
            .map(|p| p.trim().parse::<Capability>())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_design_article() {
        assert_eq!(
            Capabilities::LIGHT.iter().collect::<Vec<_>>(),
            [Capability::Send, Capability::Receive]
        );
        assert_eq!(
            Capabilities::FULL.iter().collect::<Vec<_>>(),
            Capability::ALL
        );
        assert_eq!(
            Capabilities::BOOTSTRAP.iter().collect::<Vec<_>>(),
            [Capability::Bootstrap]
        );
        assert!(Capabilities::FULL.contains_all(Capabilities::LIGHT));
        assert!(Capabilities::FULL.contains_all(Capabilities::BOOTSTRAP));
        assert!(!Capabilities::LIGHT.contains_all(Capabilities::BOOTSTRAP));
        assert!(!Capabilities::LIGHT.is_relaying());
        assert!(Capabilities::FULL.is_relaying());
    }

    #[test]
    fn set_operations() {
        let c = Capabilities::NONE
            .with(Capability::Store)
            .with(Capability::Store);
        assert_eq!(c, Capabilities::from(Capability::Store));
        assert!(c.without(Capability::Store).is_empty());
        let all: Capabilities = Capability::ALL.into_iter().collect();
        assert_eq!(all, Capabilities::FULL);
    }

    #[test]
    fn parse_and_display() {
        for caps in [
            Capabilities::NONE,
            Capabilities::LIGHT,
            Capabilities::FULL,
            Capabilities::BOOTSTRAP,
            Capabilities::LIGHT.with(Capability::Relay),
        ] {
            assert_eq!(caps.to_string().parse::<Capabilities>().unwrap(), caps);
        }
        assert_eq!(
            "light".parse::<Capabilities>().unwrap(),
            Capabilities::LIGHT
        );
        assert_eq!("full".parse::<Capabilities>().unwrap(), Capabilities::FULL);
        assert_eq!(
            "bootstrap".parse::<Capabilities>().unwrap(),
            Capabilities::BOOTSTRAP
        );
        assert_eq!(
            " relay , store ".parse::<Capabilities>().unwrap(),
            Capabilities::NONE
                .with(Capability::Relay)
                .with(Capability::Store)
        );
        assert_eq!(
            "relay,fly".parse::<Capabilities>(),
            Err(CapabilitiesError::Unknown("fly".into()))
        );
    }

    #[test]
    fn protocols_and_enr_bits() {
        assert!(Capabilities::LIGHT.served_protocols().is_empty());
        assert_eq!(Capabilities::LIGHT.enr_waku2_bits(), 0);
        assert_eq!(
            Capabilities::BOOTSTRAP.served_protocols(),
            [Protocol::Metadata, Protocol::PeerExchange]
        );
        assert_eq!(Capabilities::FULL.served_protocols(), Protocol::ALL);
        assert_eq!(Capabilities::FULL.enr_waku2_bits(), 0b1111);
        let store_only = Capabilities::from(Capability::Store);
        assert_eq!(
            store_only.served_protocols(),
            [Protocol::StoreQuery, Protocol::Metadata]
        );
        assert_eq!(store_only.enr_waku2_bits(), 0b0010);
    }
}
