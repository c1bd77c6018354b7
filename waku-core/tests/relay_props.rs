//! Property tests of relay networks under duplication, reordering and loss of frames, and of a
//! single router fed arbitrary well-formed and malformed RPCs from arbitrary peers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod relay_rig;

use std::time::Duration;

use proptest::prelude::*;
use prost::Message as _;
use proto::gossipsub::{
    ControlGraft, ControlIDontWant, ControlIHave, ControlIWant, ControlMessage, ControlPrune,
    Message as PubsubMessage, Rpc, rpc::SubOpts,
};
use relay_rig::{LinkFaults, Net, WALL0, base_instant, message, topic};
use waku_core::net::{Now, PeerId, Protocol};
use waku_core::relay::{Relay, RelayConfig};

/// A small network: `nodes` relays, each dialling two others, 15 messages from random relays.
fn network(
    seed: u64,
    nodes: usize,
    faults: LinkFaults,
) -> (Net, Vec<(usize, waku_core::relay::MessageId)>) {
    let mut net = Net::new(nodes, RelayConfig::default(), seed);
    net.faults = faults;
    net.subscribe_all();
    net.random_graph(2);
    net.run_for(Duration::from_secs(3));
    let mut published = Vec::new();
    for n in 0..15u64 {
        use rand_core::Rng;
        let p = (net.rng.next_u64() % nodes as u64) as usize;
        published.push((p, net.publish(p, n, 600)));
        net.run_for(Duration::from_millis(150));
    }
    net.run_for(Duration::from_secs(8));
    (net, published)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Duplicated and reordered frames (none lost): every relay gets every message exactly
    /// once.
    #[test]
    fn duplication_and_reordering_keep_exactly_once(seed in any::<u64>(), dup in 0.0f64..0.5) {
        println!("seed {seed} dup {dup:.2}");
        let faults = LinkFaults { loss: 0.0, duplicate: dup, reorder: true };
        let (net, published) = network(seed, 8, faults);
        prop_assume!(net.connected_within(&(0..8).collect()));
        for (i, node) in net.nodes.iter().enumerate() {
            for (p, id) in &published {
                let want = u32::from(*p != i);
                prop_assert_eq!(node.received.get(id).copied().unwrap_or(0), want,
                    "seed {} relay {} message {}", seed, i, id);
            }
            prop_assert!(node.relay.sizes().over_limit().is_none());
        }
    }

    /// Lossy links (up to 30%): never a message twice, never over a limit.
    #[test]
    fn loss_never_duplicates(seed in any::<u64>(), loss in 0.0f64..0.3, dup in 0.0f64..0.3) {
        println!("seed {seed} loss {loss:.2} dup {dup:.2}");
        let faults = LinkFaults { loss, duplicate: dup, reorder: true };
        let (net, published) = network(seed, 8, faults);
        let mut delivered = 0;
        for node in &net.nodes {
            prop_assert!(node.received.values().all(|&c| c == 1));
            prop_assert!(node.relay.sizes().over_limit().is_none());
            delivered += node.received.len();
        }
        println!("delivered {delivered} of {}", published.len() * 7);
    }
}

// -------------------------------------------------------------------------------------------
// One router, arbitrary RPCs.

fn topic_name() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(Some(topic().as_str().to_owned())),
        1 => Just(Some("/waku/2/rs/1/5".to_owned())),
        1 => Just(None),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
}

fn id() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(0u8..4, 32),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Valid Waku messages, fresh or stale.
        3 => (any::<u16>(), -40i64..40).prop_map(|(n, skew)| {
            message(u64::from(n), WALL0 + skew * 1_000_000_000, 100).encode()
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

fn pubsub_message() -> impl Strategy<Value = PubsubMessage> {
    (data(), topic_name(), any::<u8>()).prop_map(|(data, topic, flags)| PubsubMessage {
        from: (flags & 1 != 0).then(|| vec![1; 8]),
        data: Some(data),
        seqno: (flags & 2 != 0).then(|| vec![2; 8]),
        topic,
        signature: (flags & 4 != 0).then(Vec::new),
        key: None,
    })
}

fn control() -> impl Strategy<Value = ControlMessage> {
    let ids = || proptest::collection::vec(id(), 0..6);
    (
        proptest::collection::vec((topic_name(), ids()), 0..3),
        proptest::collection::vec(ids(), 0..3),
        proptest::collection::vec(topic_name(), 0..3),
        proptest::collection::vec((topic_name(), proptest::option::of(any::<u64>())), 0..3),
        proptest::collection::vec(ids(), 0..3),
    )
        .prop_map(|(ihave, iwant, graft, prune, idontwant)| ControlMessage {
            ihave: ihave
                .into_iter()
                .map(|(topic_id, message_ids)| ControlIHave {
                    topic_id,
                    message_ids,
                })
                .collect(),
            iwant: iwant
                .into_iter()
                .map(|message_ids| ControlIWant { message_ids })
                .collect(),
            graft: graft
                .into_iter()
                .map(|topic_id| ControlGraft { topic_id })
                .collect(),
            prune: prune
                .into_iter()
                .map(|(topic_id, backoff)| ControlPrune {
                    topic_id,
                    peers: Vec::new(),
                    backoff,
                })
                .collect(),
            idontwant: idontwant
                .into_iter()
                .map(|message_ids| ControlIDontWant { message_ids })
                .collect(),
        })
}

fn rpc() -> impl Strategy<Value = Rpc> {
    (
        proptest::collection::vec((any::<bool>(), topic_name()), 0..3),
        proptest::collection::vec(pubsub_message(), 0..3),
        proptest::option::of(control()),
    )
        .prop_map(|(subs, publish, control)| Rpc {
            subscriptions: subs
                .into_iter()
                .map(|(subscribe, topic_id)| SubOpts {
                    subscribe: Some(subscribe),
                    topic_id,
                })
                .collect(),
            publish,
            control,
        })
}

#[derive(Debug, Clone)]
enum Input {
    Connect(u64),
    Disconnect(u64),
    Rpc(u64, Rpc),
    Garbage(u64, Vec<u8>),
    Wait(u16),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        1 => (0u64..6).prop_map(Input::Connect),
        1 => (0u64..6).prop_map(Input::Disconnect),
        8 => (0u64..6, rpc()).prop_map(|(p, r)| Input::Rpc(p, r)),
        1 => (0u64..6, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(p, b)| Input::Garbage(p, b)),
        2 => any::<u16>().prop_map(Input::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary frames from arbitrary peers in arbitrary order: no panic, every structure
    /// within its limit, every output a decodable RPC within the size limit, never an
    /// unsigned-message rule broken on the way out.
    #[test]
    fn arbitrary_inputs_keep_the_router_sound(inputs in proptest::collection::vec(input(), 0..80)) {
        let base = base_instant();
        let mut relay = Relay::new(RelayConfig::default(), [9; 32], base);
        let mut elapsed = Duration::ZERO;
        let now = |elapsed: Duration| Now {
            instant: base + elapsed,
            unix_nanos: WALL0 + elapsed.as_nanos() as i64,
        };
        relay.subscribe(now(elapsed), &topic()).unwrap();
        for input in inputs {
            match input {
                Input::Connect(p) => relay.handle_connected(now(elapsed), PeerId(p), &[Protocol::Relay]),
                Input::Disconnect(p) => relay.handle_disconnected(now(elapsed), PeerId(p)),
                Input::Rpc(p, rpc) => relay.handle_frame(now(elapsed), PeerId(p), &rpc.encode_to_vec()),
                Input::Garbage(p, b) => relay.handle_frame(now(elapsed), PeerId(p), &b),
                Input::Wait(ms) => {
                    elapsed += Duration::from_millis(u64::from(ms));
                    if relay.poll_timeout().is_some_and(|t| t <= base + elapsed) {
                        relay.handle_timeout(now(elapsed));
                    }
                }
            }
            prop_assert!(relay.sizes().over_limit().is_none(), "{:?}", relay.sizes().over_limit());
            let peers = relay.peers();
            while let Some(t) = relay.poll_transmit() {
                prop_assert!(t.bytes.len() <= relay.config().max_rpc_size);
                prop_assert!(peers.contains(&t.to), "sent to {} which is not connected", t.to);
                let rpc = Rpc::decode(t.bytes.as_slice()).unwrap();
                for m in rpc.publish {
                    prop_assert!(m.from.is_none() && m.seqno.is_none() && m.signature.is_none() && m.key.is_none());
                }
            }
            while relay.poll_event().is_some() {}
            for t in [topic().as_str(), "/waku/2/rs/1/5"] {
                let mesh = relay.mesh_peers(t);
                let members = relay.topic_peers(t);
                prop_assert!(mesh.iter().all(|p| members.contains(p)), "mesh outside the topic peers");
            }
        }
    }
}
