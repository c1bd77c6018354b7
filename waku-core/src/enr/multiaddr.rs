//! Binary multiaddrs, as the `multiaddrs` field of a Waku node record carries them, and their
//! text form for the protocols Waku records use.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::text::{base32_lower_decode, base32_lower_encode, base58btc_decode, base58btc_encode};

/// The longest binary multiaddr kept: one entry of a 300-byte record can be no longer.
pub const MAX_MULTIADDR_LEN: usize = super::MAX_ENR_LEN;

/// Why a binary multiaddr could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MultiaddrError {
    /// The address is empty.
    #[error("empty multiaddr")]
    Empty,
    /// The address is longer than [`MAX_MULTIADDR_LEN`].
    #[error("multiaddr of {0} bytes exceeds {MAX_MULTIADDR_LEN}")]
    TooLong(usize),
    /// A protocol code or a length is not a minimal unsigned varint, or does not fit.
    #[error("malformed varint")]
    BadVarint,
    /// The address ends inside a component.
    #[error("truncated multiaddr")]
    Truncated,
    /// A protocol code this decoder does not know.
    #[error("unknown multiaddr protocol code {0}")]
    UnknownProtocol(u64),
    /// A DNS name or SNI value is not UTF-8 text usable in a multiaddr (empty, or contains `/`).
    #[error("bad name in a {0} component")]
    BadName(&'static str),
    /// A text multiaddr is malformed or names a protocol this codec does not know; the
    /// string is the offending component.
    #[error("bad text multiaddr component {0:?}")]
    BadText(String),
}

/// Protocol codes from the multicodec table.
mod code {
    pub(super) const IP4: u64 = 0x04;
    pub(super) const TCP: u64 = 0x06;
    pub(super) const IP6: u64 = 0x29;
    pub(super) const DNS: u64 = 0x35;
    pub(super) const DNS4: u64 = 0x36;
    pub(super) const DNS6: u64 = 0x37;
    pub(super) const DNSADDR: u64 = 0x38;
    pub(super) const UDP: u64 = 0x0111;
    pub(super) const P2P_CIRCUIT: u64 = 0x0122;
    pub(super) const ONION3: u64 = 0x01bd;
    pub(super) const TLS: u64 = 0x01c0;
    pub(super) const SNI: u64 = 0x01c1;
    pub(super) const QUIC: u64 = 0x01cc;
    pub(super) const QUIC_V1: u64 = 0x01cd;
    pub(super) const WS: u64 = 0x01dd;
    pub(super) const WSS: u64 = 0x01de;
    pub(super) const P2P: u64 = 0x01a5;
}

/// Reads a minimal unsigned varint (at most 9 bytes, as multiformats allows).
pub(crate) fn read_varint(input: &[u8]) -> Result<(u64, &[u8]), MultiaddrError> {
    let mut value: u64 = 0;
    for (i, &b) in input.iter().enumerate().take(9) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                // A trailing zero group: not the shortest form.
                return Err(MultiaddrError::BadVarint);
            }
            let rest = input.get(i + 1..).ok_or(MultiaddrError::Truncated)?;
            return Ok((value, rest));
        }
    }
    if input.len() < 9 {
        Err(MultiaddrError::Truncated)
    } else {
        Err(MultiaddrError::BadVarint)
    }
}

fn take(input: &[u8], n: usize) -> Result<(&[u8], &[u8]), MultiaddrError> {
    if input.len() < n {
        return Err(MultiaddrError::Truncated);
    }
    Ok(input.split_at(n))
}

fn take_prefixed(input: &[u8]) -> Result<(&[u8], &[u8]), MultiaddrError> {
    let (len, rest) = read_varint(input)?;
    let len = usize::try_from(len).map_err(|_| MultiaddrError::Truncated)?;
    take(rest, len)
}

fn name<'a>(value: &'a [u8], proto: &'static str) -> Result<&'a str, MultiaddrError> {
    let s = std::str::from_utf8(value).map_err(|_| MultiaddrError::BadName(proto))?;
    if s.is_empty() || s.contains('/') {
        return Err(MultiaddrError::BadName(proto));
    }
    Ok(s)
}

fn port(value: &[u8]) -> u16 {
    value.iter().fold(0u16, |acc, &b| (acc << 8) | u16::from(b))
}

/// A binary multiaddr, unchecked until [`Multiaddr::to_text`] reads it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Multiaddr(Vec<u8>);

impl Multiaddr {
    /// Wraps binary multiaddr bytes (at most [`MAX_MULTIADDR_LEN`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MultiaddrError> {
        if bytes.is_empty() {
            return Err(MultiaddrError::Empty);
        }
        if bytes.len() > MAX_MULTIADDR_LEN {
            return Err(MultiaddrError::TooLong(bytes.len()));
        }
        Ok(Multiaddr(bytes.to_vec()))
    }

    /// Parses the text form for the protocols [`Multiaddr::to_text`] knows, so that
    /// `from_text(t)?.to_text()? == t` for canonical text.
    pub fn from_text(text: &str) -> Result<Self, MultiaddrError> {
        if text.len() > 4 * MAX_MULTIADDR_LEN {
            return Err(MultiaddrError::TooLong(text.len()));
        }
        let bad = |s: &str| MultiaddrError::BadText(s.chars().take(64).collect());
        let mut parts = text.split('/');
        if parts.next() != Some("") {
            return Err(bad(text));
        }
        let mut out = Vec::new();
        let push_code = |out: &mut Vec<u8>, mut c: u64| loop {
            let b = (c & 0x7f) as u8;
            c >>= 7;
            if c == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        };
        let push_len = |out: &mut Vec<u8>, v: &[u8]| {
            // Values here are short (bounded by the text length above); two varint bytes hold
            // up to 16383.
            let len = v.len() as u64;
            if len < 0x80 {
                out.push(len as u8);
            } else {
                out.push((len & 0x7f) as u8 | 0x80);
                out.push((len >> 7) as u8);
            }
            out.extend_from_slice(v);
        };
        while let Some(proto) = parts.next() {
            let mut value = || parts.next().ok_or_else(|| bad(proto));
            match proto {
                "ip4" => {
                    let v = value()?;
                    let ip: Ipv4Addr = v.parse().map_err(|_| bad(v))?;
                    push_code(&mut out, code::IP4);
                    out.extend_from_slice(&ip.octets());
                }
                "ip6" => {
                    let v = value()?;
                    let ip: Ipv6Addr = v.parse().map_err(|_| bad(v))?;
                    push_code(&mut out, code::IP6);
                    out.extend_from_slice(&ip.octets());
                }
                "tcp" | "udp" => {
                    let v = value()?;
                    let p: u16 = v.parse().map_err(|_| bad(v))?;
                    push_code(&mut out, if proto == "tcp" { code::TCP } else { code::UDP });
                    out.extend_from_slice(&p.to_be_bytes());
                }
                "dns" | "dns4" | "dns6" | "dnsaddr" | "sni" => {
                    let v = value()?;
                    if v.is_empty() {
                        return Err(bad(proto));
                    }
                    let c = match proto {
                        "dns" => code::DNS,
                        "dns4" => code::DNS4,
                        "dns6" => code::DNS6,
                        "dnsaddr" => code::DNSADDR,
                        _ => code::SNI,
                    };
                    push_code(&mut out, c);
                    push_len(&mut out, v.as_bytes());
                }
                "p2p" => {
                    let v = value()?;
                    let id = base58btc_decode(v, MAX_MULTIADDR_LEN).ok_or_else(|| bad(v))?;
                    if id.is_empty() {
                        return Err(bad(v));
                    }
                    push_code(&mut out, code::P2P);
                    push_len(&mut out, &id);
                }
                "onion3" => {
                    let v = value()?;
                    let (host, port) = v.split_once(':').ok_or_else(|| bad(v))?;
                    let host = base32_lower_decode(host).ok_or_else(|| bad(v))?;
                    let port: u16 = port.parse().map_err(|_| bad(v))?;
                    if host.len() != 35 {
                        return Err(bad(v));
                    }
                    push_code(&mut out, code::ONION3);
                    out.extend_from_slice(&host);
                    out.extend_from_slice(&port.to_be_bytes());
                }
                "p2p-circuit" => push_code(&mut out, code::P2P_CIRCUIT),
                "tls" => push_code(&mut out, code::TLS),
                "quic" => push_code(&mut out, code::QUIC),
                "quic-v1" => push_code(&mut out, code::QUIC_V1),
                "ws" => push_code(&mut out, code::WS),
                "wss" => push_code(&mut out, code::WSS),
                other => return Err(bad(other)),
            }
        }
        Multiaddr::from_bytes(&out)
    }

    /// The binary form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text form (`/dns4/example.org/tcp/443/wss`). Protocols outside the set Waku
    /// records use give [`MultiaddrError::UnknownProtocol`].
    pub fn to_text(&self) -> Result<String, MultiaddrError> {
        let mut out = String::new();
        let mut rest = self.0.as_slice();
        if rest.is_empty() {
            return Err(MultiaddrError::Empty);
        }
        while !rest.is_empty() {
            let (c, after) = read_varint(rest)?;
            rest = after;
            // `write!` into a String cannot fail.
            let _ = match c {
                code::IP4 => {
                    let (v, r) = take(rest, 4)?;
                    rest = r;
                    let a: [u8; 4] = v.try_into().map_err(|_| MultiaddrError::Truncated)?;
                    write!(out, "/ip4/{}", Ipv4Addr::from(a))
                }
                code::IP6 => {
                    let (v, r) = take(rest, 16)?;
                    rest = r;
                    let a: [u8; 16] = v.try_into().map_err(|_| MultiaddrError::Truncated)?;
                    write!(out, "/ip6/{}", Ipv6Addr::from(a))
                }
                code::TCP | code::UDP => {
                    let (v, r) = take(rest, 2)?;
                    rest = r;
                    let p = if c == code::TCP { "tcp" } else { "udp" };
                    write!(out, "/{p}/{}", port(v))
                }
                code::DNS | code::DNS4 | code::DNS6 | code::DNSADDR | code::SNI => {
                    let (v, r) = take_prefixed(rest)?;
                    rest = r;
                    let p = match c {
                        code::DNS => "dns",
                        code::DNS4 => "dns4",
                        code::DNS6 => "dns6",
                        code::DNSADDR => "dnsaddr",
                        _ => "sni",
                    };
                    write!(out, "/{p}/{}", name(v, p)?)
                }
                code::P2P => {
                    let (v, r) = take_prefixed(rest)?;
                    rest = r;
                    if v.is_empty() {
                        return Err(MultiaddrError::Truncated);
                    }
                    write!(out, "/p2p/{}", base58btc_encode(v))
                }
                code::ONION3 => {
                    let (v, r) = take(rest, 37)?;
                    rest = r;
                    let (host, p) = v.split_at(35);
                    write!(out, "/onion3/{}:{}", base32_lower_encode(host), port(p))
                }
                code::P2P_CIRCUIT => write!(out, "/p2p-circuit"),
                code::TLS => write!(out, "/tls"),
                code::QUIC => write!(out, "/quic"),
                code::QUIC_V1 => write!(out, "/quic-v1"),
                code::WS => write!(out, "/ws"),
                code::WSS => write!(out, "/wss"),
                other => return Err(MultiaddrError::UnknownProtocol(other)),
            };
        }
        Ok(out)
    }
}

impl std::fmt::Debug for Multiaddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_text() {
            Ok(t) => write!(f, "Multiaddr({t})"),
            Err(_) => write!(f, "Multiaddr(0x{})", hex::encode(&self.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(read_varint(&[0x01]).unwrap().0, 1);
        assert_eq!(read_varint(&[0xa5, 0x03]).unwrap().0, 0x01a5);
        assert_eq!(read_varint(&[0x81, 0x00]), Err(MultiaddrError::BadVarint));
        assert_eq!(read_varint(&[0x81]), Err(MultiaddrError::Truncated));
        assert_eq!(read_varint(&[0xff; 10]), Err(MultiaddrError::BadVarint));
    }

    #[test]
    fn text_forms() {
        let m = Multiaddr::from_bytes(&[0x04, 127, 0, 0, 1, 0x06, 0x1f, 0x90, 0xdd, 0x03]).unwrap();
        assert_eq!(m.to_text().unwrap(), "/ip4/127.0.0.1/tcp/8080/ws");
        let mut v = vec![0x29];
        v.extend([0u8; 15]);
        v.push(1);
        v.extend([0x91, 0x02, 0x23, 0x28, 0xcd, 0x03]);
        let m = Multiaddr::from_bytes(&v).unwrap();
        assert_eq!(m.to_text().unwrap(), "/ip6/::1/udp/9000/quic-v1");
        let m = Multiaddr::from_bytes(&[0x99, 0x01]).unwrap();
        assert_eq!(m.to_text(), Err(MultiaddrError::UnknownProtocol(0x99)));
        let m = Multiaddr::from_bytes(&[0x36, 0x02, b'a', b'/']).unwrap();
        assert_eq!(m.to_text(), Err(MultiaddrError::BadName("dns4")));
    }

    #[test]
    fn text_round_trips() {
        for t in [
            "/ip4/127.0.0.1/tcp/8080/ws",
            "/ip6/2001:db8::1/udp/9000/quic-v1",
            "/dns4/node-01.do-ams3.waku.sandbox.status.im/tcp/8000/wss",
            "/dnsaddr/example.org/p2p/16Uiu2HAmPLe7Mzm8TsYUubgCAW1aJoeFScxrLj8ppHFivPo97bUZ",
            "/ip4/1.2.3.4/tcp/1/p2p/16Uiu2HAmPLe7Mzm8TsYUubgCAW1aJoeFScxrLj8ppHFivPo97bUZ/p2p-circuit",
            "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234/wss",
            "/dns/example.org/tcp/443/tls/sni/example.org/ws",
        ] {
            let m = Multiaddr::from_text(t).unwrap();
            assert_eq!(m.to_text().unwrap(), t);
        }
        for t in [
            "",
            "ip4/1.2.3.4",
            "/ip4/1.2.3",
            "/tcp/70000",
            "/foo/1",
            "/dns4",
            "/p2p/0OIl",
        ] {
            assert!(
                matches!(
                    Multiaddr::from_text(t),
                    Err(MultiaddrError::BadText(_) | MultiaddrError::Empty)
                ),
                "{t}"
            );
        }
    }
}
