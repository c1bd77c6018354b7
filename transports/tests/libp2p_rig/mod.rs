//! What the libp2p driver tests share: the real clock, the shard they use, full `WakuNode`s and
//! a wait for a driver event.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use transports::libp2p::{DriverEvent, Libp2pNode};
use waku_core::net::Now;
use waku_core::node::{NodeEvent, WakuNode, WakuNodeConfig};
use waku_core::roles::Capabilities;
use waku_core::topic::{ContentTopic, PubsubTopic};

/// The Waku Network's cluster, and the shard every test node relays.
pub const CLUSTER: u16 = 1;
pub const SHARD: u16 = 0;

/// The longest wait for one expected event (the machine is shared and slow at times).
pub const WAIT: Duration = Duration::from_secs(30);

/// The real clock, as the driver gives it to machines.
pub fn now() -> Now {
    Now {
        instant: Instant::now(),
        unix_nanos: i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        )
        .unwrap(),
    }
}

/// The static shard topic of [`CLUSTER`] and [`SHARD`].
pub fn topic() -> PubsubTopic {
    PubsubTopic::static_shard(CLUSTER, SHARD).unwrap()
}

/// A content topic `/status-rs/1/<name>/proto`.
pub fn content(name: &str) -> ContentTopic {
    ContentTopic::new(format!("/status-rs/1/{name}/proto")).unwrap()
}

/// A full node on [`SHARD`].
pub fn full_node(seed: u8) -> WakuNode {
    let config = WakuNodeConfig::new(Capabilities::FULL, CLUSTER, vec![SHARD]);
    WakuNode::new(config, None, [seed; 32], now()).unwrap()
}

/// Waits up to [`WAIT`] for an event `f` accepts, dropping the others.
pub async fn wait_for<T>(
    node: &mut Libp2pNode<WakuNode>,
    what: &str,
    mut f: impl FnMut(DriverEvent<NodeEvent>) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, node.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("driver stopped");
        if let Some(t) = f(ev) {
            return t;
        }
    }
}
