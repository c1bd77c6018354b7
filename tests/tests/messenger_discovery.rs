//! Peer exchange from the Messenger's side, on the simulated network: a light node that knows
//! only a bootstrap node asks it for peers and reports the records it got, signed ENRs it can
//! dial; a Messenger with the default settings asks nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod messenger_rig;

use std::net::Ipv4Addr;
use std::time::Duration;

use messenger_rig::Net;
use payloads::messenger::{MessengerConfig, MessengerEvent};
use transports::memory::NodeId;
use waku_core::enr::{Enr, EnrBuilder, RelayShards, Waku2};

fn discovered(net: &Net, i: NodeId) -> Vec<Vec<Vec<u8>>> {
    net.events(i)
        .iter()
        .filter_map(|e| match e {
            MessengerEvent::PeersDiscovered { records, .. } => Some(records.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_light_node_learns_service_nodes_from_a_bootstrap_node() {
    let mut net = Net::new(0xd15c);
    let config = MessengerConfig {
        peer_exchange: Some(8),
        ..MessengerConfig::default()
    };
    let boot = net.add_full_node(&config);
    // The records the bootstrap node learned (from discovery, or its operator): two full nodes.
    let records: Vec<Vec<u8>> = (1..=2u8)
        .map(|i| {
            EnrBuilder::new()
                .seq(1)
                .ip4(Ipv4Addr::new(10, 0, 0, i))
                .tcp(60_000)
                .waku2(Waku2::RELAY | Waku2::STORE | Waku2::FILTER | Waku2::LIGHTPUSH)
                .relay_shards(&RelayShards {
                    cluster: 16,
                    shards: vec![32],
                })
                .unwrap()
                .sign(&[i; 32])
                .unwrap()
                .encode()
        })
        .collect();
    net.with_full(boot, |n, now| {
        for r in &records {
            n.add_peer_record(now, r.clone()).unwrap();
        }
    });

    let (alice, _) = net.add_messenger(config);
    net.link(alice, boot);
    // Bob keeps the default settings: no peer exchange.
    let (bob, _) = net.add_messenger(MessengerConfig::default());
    net.link(bob, boot);
    net.run_for(Duration::from_secs(5));

    let got = discovered(&net, alice);
    assert_eq!(got.len(), 1, "one answer from the one server");
    let mut got = got[0].clone();
    got.sort();
    let mut want = records.clone();
    want.sort();
    assert_eq!(got, want, "exactly the bootstrap node's records");
    for r in &got {
        let enr = Enr::decode(r).unwrap();
        assert_eq!(enr.dial_addrs().len(), 1, "{enr:?}");
        assert!(enr.waku2().unwrap().lightpush());
    }
    assert!(discovered(&net, bob).is_empty(), "Bob asked nothing");
}
