//! The smallest useful program on `transports::libp2p`: a Waku full node (relay, store, filter,
//! lightpush) on cluster 1's eight autosharded shards, as on The Waku Network. It prints its
//! addresses, its peers and every message it receives until Ctrl-C.
//!
//! ```text
//! cargo run -p transports --features libp2p --example libp2p_node -- \
//!     /ip4/127.0.0.1/tcp/60000 [/ip4/…/tcp/…/p2p/<peer id> to dial …]
//! ```
//!
//! `status-node run --transport libp2p` is the full program (archive on disk, key file,
//! redials, logs, scripting).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use transports::libp2p::{self as lp, DriverEvent, Keypair, Libp2pConfig, Multiaddr};
use waku_core::net::Now;
use waku_core::node::{NodeEvent, WakuNode, WakuNodeConfig};
use waku_core::roles::Capabilities;
use waku_core::topic::PubsubTopic;

/// The Waku Network's cluster and shard count.
const CLUSTER: u16 = 1;
const SHARDS: u16 = 8;

/// The wall clock and a monotonic instant: the driver is the only other place that reads time.
fn now() -> Now {
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Now {
        instant: Instant::now(),
        unix_nanos: i64::try_from(unix.as_nanos()).unwrap(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let listen: Multiaddr = args
        .next()
        .unwrap_or_else(|| "/ip4/127.0.0.1/tcp/0".to_owned())
        .parse()
        .expect("a multiaddr to listen on");
    let mut config = Libp2pConfig::new(Keypair::generate_ed25519());
    config.listen = vec![listen];
    config.dial = args
        .map(|a| a.parse().expect("a multiaddr to dial"))
        .collect();

    let mut waku = WakuNodeConfig::new(Capabilities::FULL, CLUSTER, (0..SHARDS).collect());
    waku.autoshard_shards = Some(SHARDS);
    // A real program seeds from the OS; the example derives a seed from the clock.
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(&now().unix_nanos.to_le_bytes().repeat(2));
    let mut machine = WakuNode::new(waku, None, seed, now()).unwrap();
    // Hand every message of the shards to this program too.
    for shard in 0..SHARDS {
        let topic = PubsubTopic::static_shard(CLUSTER, shard).unwrap();
        machine.subscribe(now(), topic, Vec::new()).unwrap();
    }

    let mut node = lp::start(config, machine).await.unwrap();
    for a in node.listen_addrs() {
        println!("listening {a}");
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            ev = node.next_event() => match ev {
                Some(DriverEvent::Connected(p)) => {
                    println!("peer up {} ({}), serves {:?}", p.libp2p_peer, p.agent_version, p.protocols);
                }
                Some(DriverEvent::Disconnected { libp2p_peer, .. }) => println!("peer down {libp2p_peer}"),
                Some(DriverEvent::Machine(NodeEvent::Message { pubsub_topic, message, .. })) => {
                    println!(
                        "message on {pubsub_topic} / {}: {} bytes",
                        message.content_topic,
                        message.payload.len()
                    );
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    node.shutdown().await.unwrap();
}
