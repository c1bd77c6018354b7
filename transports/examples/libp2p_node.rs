//! A status-rs full node (relay, store, filter, lightpush, metadata) on the libp2p driver, with a
//! line protocol on stdin/stdout for test harnesses (the js-waku interop test in `interop/`).
//!
//! ```text
//! cargo run -p transports --features libp2p --example libp2p_node -- \
//!     --listen /ip4/127.0.0.1/tcp/0/ws [--dial <multiaddr>] [--seed 1]
//! ```
//!
//! Out (one line each): `LISTEN <multiaddr>`, `PEER <peer id> <agent> <protocols,...>`,
//! `GONE <peer id>`, `MSG <json>` for every message the node receives (relay, or its own
//! publishes are not echoed), `PUBLISHED <hash hex> <pubsub topic>`, `LIGHTPUSHED <json>` when a
//! light node's push was published, `ERROR <text>`.
//!
//! In: `publish <content topic> <payload hex>` (autosharded over 8 shards of cluster 1),
//! `stats`, `quit`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    missing_docs
)]

use std::io::BufRead;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use transports::libp2p::{self as lp, DriverEvent, Keypair, Libp2pConfig};
use waku_core::message::WakuMessage;
use waku_core::net::Now;
use waku_core::node::{NodeEvent, Published, WakuNode, WakuNodeConfig};
use waku_core::roles::Capabilities;
use waku_core::topic::{ContentTopic, PubsubTopic};

const CLUSTER: u16 = 1;
const SHARDS: u16 = 8;

fn now() -> Now {
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

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut listen = Vec::new();
    let mut dial = Vec::new();
    let mut seed = 1u8;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen.push(v.parse().expect("multiaddr")),
            "--dial" => dial.push(v.parse().expect("multiaddr")),
            "--seed" => seed = v.parse().expect("seed 0-255"),
            _ => panic!("unknown option {a}"),
        }
    }
    let mut config = Libp2pConfig::new(Keypair::ed25519_from_bytes([seed; 32]).unwrap());
    config.listen = listen;
    config.dial = dial;
    let mut waku = WakuNodeConfig::new(Capabilities::FULL, CLUSTER, (0..SHARDS).collect());
    waku.autoshard_shards = Some(SHARDS);
    let mut node_seed = [0u8; 32];
    node_seed[..8].copy_from_slice(&now().unix_nanos.to_le_bytes());
    node_seed[31] = seed;
    let mut machine = WakuNode::new(waku, None, node_seed, now()).unwrap();
    for shard in 0..SHARDS {
        let t = PubsubTopic::static_shard(CLUSTER, shard).unwrap();
        machine.subscribe(now(), t, Vec::new()).unwrap();
    }
    let mut node = lp::start(config, machine).await.unwrap();
    for a in node.listen_addrs() {
        println!("LISTEN {a}");
    }
    let handle = node.handle();

    let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });

    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                let parts: Vec<&str> = line.split_whitespace().collect();
                match parts.as_slice() {
                    ["publish", content, payload] => {
                        let content = match ContentTopic::new(*content) {
                            Ok(c) => c,
                            Err(e) => { println!("ERROR content topic: {e}"); continue; }
                        };
                        let Ok(payload) = hex::decode(payload) else {
                            println!("ERROR payload is not hex");
                            continue;
                        };
                        let r = handle
                            .call(move |n, now| {
                                let m = WakuMessage::new(content, payload).with_timestamp(now.unix_nanos);
                                n.publish(now, None, m.clone()).map(|p| (p, m))
                            })
                            .await
                            .unwrap();
                        match r {
                            Ok((Published::Relayed { hash, peers }, m)) => {
                                let topic = waku_core::topic::autoshard(&m.content_topic, CLUSTER, SHARDS).unwrap();
                                println!("PUBLISHED {} {} {}", hex::encode(hash.as_ref()), topic, peers);
                            }
                            Ok((other, _)) => println!("ERROR unexpected {other:?}"),
                            Err(e) => println!("ERROR publish: {e}"),
                        }
                    }
                    ["stats"] => println!("STATS {:?}", handle.stats().await.unwrap()),
                    ["quit"] => break,
                    _ => println!("ERROR unknown command {line:?}"),
                }
            }
            ev = node.next_event() => {
                let Some(ev) = ev else { break };
                match ev {
                    DriverEvent::Connected(info) => {
                        let ps: Vec<String> = info.protocols.iter().map(|p| p.id().to_owned()).collect();
                        println!("PEER {} {} {}", info.libp2p_peer, json_str(&info.agent_version), ps.join(","));
                    }
                    DriverEvent::Disconnected { libp2p_peer, .. } => println!("GONE {libp2p_peer}"),
                    DriverEvent::Machine(NodeEvent::Message { pubsub_topic, hash, message, source }) => {
                        println!(
                            "MSG {{\"hash\":\"{}\",\"pubsub_topic\":{},\"content_topic\":{},\"payload_hex\":\"{}\",\"timestamp\":{},\"source\":\"{:?}\"}}",
                            hex::encode(hash.as_ref()),
                            json_str(pubsub_topic.as_ref()),
                            json_str(message.content_topic.as_ref()),
                            hex::encode(&message.payload),
                            message.timestamp.unwrap_or(0),
                            source,
                        );
                    }
                    DriverEvent::Machine(NodeEvent::LightPushServed(e)) => {
                        println!("LIGHTPUSHED {}", json_str(&format!("{e:?}")));
                    }
                    DriverEvent::Machine(NodeEvent::DisconnectPeer { peer, reason }) => {
                        println!("ERROR node asks to drop {peer}: {reason:?}");
                        let _ = handle.disconnect(peer).await;
                    }
                    DriverEvent::DialFailed { error, .. } => println!("ERROR dial: {error}"),
                    _ => {}
                }
            }
        }
    }
    let _ = node.shutdown().await;
}
