//! What `run` and `chat` share: peer addresses (`KEY@HOST:PORT`), the node key file, the real
//! clock, OS randomness, logging and the shutdown signal.
//!
//! This is the binary's edge: it is the one place in `node` (with the TCP driver) that reads the
//! wall clock and the OS random source; the machines it starts get both as arguments.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::SysRng;
use rand_chacha::ChaCha20Rng;
use transports::tcp::StaticPeer;
use waku_core::net::Now;
use zeroize::Zeroizing;

/// The largest node key file read, in bytes (64 hex digits and a line break; the slack allows
/// for a CRLF or trailing spaces while refusing to slurp a wrong, large file).
pub(crate) const MAX_NODE_KEY_FILE_BYTES: u64 = 256;

/// A peer to dial: its address and, when given, its node key (`KEY@HOST:PORT`, or
/// `HOST:PORT` to accept whichever key answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerAddr {
    /// Its node key (X25519 public key), checked by the Noise handshake.
    pub(crate) key: Option<[u8; 32]>,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

impl PeerAddr {
    /// The driver's form.
    pub(crate) const fn to_static_peer(self) -> StaticPeer {
        StaticPeer {
            addr: self.addr,
            key: self.key,
        }
    }
}

/// Why a `--peer` value did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PeerAddrError {
    /// The part before `@` is not 64 hex digits.
    #[error("the node key before '@' must be 64 hex digits")]
    Key,
    /// The address is not `IP:PORT`.
    #[error("the address must be IP:PORT (e.g. 127.0.0.1:60000)")]
    Addr,
}

impl FromStr for PeerAddr {
    type Err = PeerAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (key, addr) = match s.split_once('@') {
            Some((k, a)) => (Some(parse_key_hex(k).ok_or(PeerAddrError::Key)?), a),
            None => (None, s),
        };
        let addr = addr.parse().map_err(|_| PeerAddrError::Addr)?;
        Ok(PeerAddr { key, addr })
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(k) = &self.key {
            write!(f, "{}@", hex(k))?;
        }
        write!(f, "{}", self.addr)
    }
}

fn parse_key_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let byte = s.get(2 * i..2 * i + 2)?;
        *o = u8::from_str_radix(byte, 16).ok()?;
    }
    Some(out)
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum NodeKeyError {
    /// Reading or writing the file failed.
    #[error("node key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error("node key file {path} must hold 64 hex digits")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// The OS random source failed.
    #[error("the operating system's random source failed: {0}")]
    Randomness(String),
}

/// Loads 32 secret bytes kept as 64 hex digits in `path`, or creates the file (owner-only
/// permissions, parent directories included) from OS randomness when it does not exist. Any 32
/// bytes are a valid X25519 node key and a valid Ed25519 seed (the libp2p identity). Returns the
/// bytes and whether the file was created.
pub(crate) fn load_or_create_secret(
    path: &Path,
) -> Result<(Zeroizing<[u8; 32]>, bool), NodeKeyError> {
    let io_err = |source| NodeKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            if meta.len() > MAX_NODE_KEY_FILE_BYTES {
                return Err(NodeKeyError::Malformed {
                    path: path.to_path_buf(),
                });
            }
            let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err)?);
            let bytes = parse_key_hex(text.trim()).ok_or_else(|| NodeKeyError::Malformed {
                path: path.to_path_buf(),
            })?;
            Ok((Zeroizing::new(bytes), false))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut secret = Zeroizing::new([0u8; 32]);
            {
                use rand::Rng;
                os_rng()
                    .map_err(NodeKeyError::Randomness)?
                    .fill_bytes(secret.as_mut());
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(io_err)?;
            }
            let text = Zeroizing::new(format!("{}\n", hex(secret.as_ref())));
            write_private(path, text.as_bytes()).map_err(io_err)?;
            Ok((secret, true))
        }
        Err(e) => Err(io_err(e)),
    }
}

/// Creates `path` (failing if it exists) readable by its owner only, and writes `bytes`.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A ChaCha20 stream seeded once from the OS (an error, not a panic, if the OS source fails).
pub(crate) fn os_rng() -> Result<ChaCha20Rng, String> {
    ChaCha20Rng::try_from_rng(&mut SysRng).map_err(|e| e.to_string())
}

/// 32 bytes from the OS random source.
pub(crate) fn os_seed() -> Result<[u8; 32], String> {
    use rand::Rng;
    let mut rng = os_rng()?;
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    Ok(seed)
}

/// The real clock as the machines see it.
#[allow(clippy::disallowed_methods)] // the binary owns the clock
pub(crate) fn clock() -> Now {
    let unix_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    Now {
        instant: Instant::now(),
        unix_nanos,
    }
}

/// Logs to standard error with `tracing`; the filter comes from `RUST_LOG` (default `info`).
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .try_init();
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or, on Unix, SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A single-threaded tokio runtime with I/O, timers and signals.
pub(crate) fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addr_round_trips() {
        let k = [0xab; 32];
        let p = PeerAddr {
            key: Some(k),
            addr: "127.0.0.1:4000".parse().unwrap(),
        };
        let s = p.to_string();
        assert_eq!(s, format!("{}@127.0.0.1:4000", "ab".repeat(32)));
        assert_eq!(s.parse::<PeerAddr>().unwrap(), p);
        let bare: PeerAddr = "[::1]:9".parse().unwrap();
        assert_eq!(bare.key, None);
        assert_eq!(
            "abcd@127.0.0.1:1".parse::<PeerAddr>(),
            Err(PeerAddrError::Key)
        );
        assert_eq!(
            format!("{}@nowhere", "00".repeat(32)).parse::<PeerAddr>(),
            Err(PeerAddrError::Addr)
        );
        assert_eq!(
            format!("{}@127.0.0.1:1", "zz".repeat(32)).parse::<PeerAddr>(),
            Err(PeerAddrError::Key)
        );
    }

    #[test]
    fn node_key_is_created_once_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("status-node-key-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("node.key");
        let (a, created) = load_or_create_secret(&path).unwrap();
        assert!(created);
        let (b, created) = load_or_create_secret(&path).unwrap();
        assert!(!created);
        assert_eq!(*a, *b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            load_or_create_secret(&path),
            Err(NodeKeyError::Malformed { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
