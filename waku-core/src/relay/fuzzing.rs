//! Fuzz bodies for the relay, shared by the cargo-fuzz target `waku_relay_router` and by tests.
//!
//! [`router_interaction`] reads its input as a program of operations on one router: peers
//! connecting and leaving, raw frames, well-formed RPCs built from the input (messages fresh and
//! stale, valid and not, signed, GRAFT/PRUNE with any backoff, IHAVE/IWANT/IDONTWANT with ids the
//! router really uses), subscriptions, publishing and time passing. After every operation it
//! checks that every bounded structure is within its limit, and every frame the router emits is
//! one decodable RPC within the size limit. A fuzz body panics when it finds a bug; that is how
//! the fuzzer learns of it.
#![allow(clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use prost::Message as _;
use proto::gossipsub::{
    ControlGraft, ControlIDontWant, ControlIHave, ControlIWant, ControlMessage, ControlPrune,
    Message as PubsubMessage, PeerInfo, Rpc, rpc::SubOpts,
};

use super::{Relay, RelayConfig, RelayEvent, RelayStats, Validation};
use crate::message::WakuMessage;
use crate::net::{Now, PeerId, Protocol};
use crate::topic::{ContentTopic, PubsubTopic};

/// Topics the program can name (index 3 is never subscribed to by the router itself).
const TOPICS: [&str; 4] = [
    "/waku/2/rs/1/0",
    "/waku/2/rs/1/1",
    "/waku/2/default-waku/proto",
    "/waku/2/rs/16/32",
];

fn topic_at(i: usize) -> PubsubTopic {
    let name = TOPICS.get(i).copied().unwrap_or(TOPICS[0]);
    PubsubTopic::new(name).expect("valid pubsub topic")
}

/// The wall clock at the start of a program, Unix nanoseconds.
const WALL_START: i64 = 1_700_000_000_000_000_000;

/// Reads the input as small integers and byte strings; zeros once it runs out.
struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = usize::from(self.u16()) % (max + 1);
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head.to_vec()
    }
}

/// One router under test with its clocks and what it has revealed.
struct Harness {
    relay: Relay,
    instant: Instant,
    wall: i64,
    /// Message ids seen on the wire or returned by publish (fed back into IHAVE/IWANT).
    ids: Vec<Vec<u8>>,
    counter: u64,
}

impl Harness {
    fn now(&self) -> Now {
        Now {
            instant: self.instant,
            unix_nanos: self.wall,
        }
    }

    fn remember(&mut self, id: Vec<u8>) {
        if self.ids.len() >= 64 {
            self.ids.remove(0);
        }
        self.ids.push(id);
    }

    fn check(&self) {
        if let Some((name, size, max)) = self.relay.sizes().over_limit() {
            panic!("{name} = {size} exceeds its limit {max}");
        }
    }

    fn drain(&mut self) {
        let max = self.relay.config().max_rpc_size;
        while let Some(t) = self.relay.poll_transmit() {
            assert_eq!(t.protocol, Protocol::Relay);
            assert!(
                t.bytes.len() <= max,
                "transmit of {} > {max}",
                t.bytes.len()
            );
            let rpc = Rpc::decode(t.bytes.as_slice()).expect("the router sent an undecodable RPC");
            assert!(
                !t.bytes.is_empty(),
                "the router sent an empty RPC to {}",
                t.to
            );
            for m in &rpc.publish {
                assert!(m.from.is_none() && m.seqno.is_none());
                assert!(m.signature.is_none() && m.key.is_none());
                let id = crate::message::relay_message_id(m.data.as_deref().unwrap_or(&[]));
                self.remember(id.to_vec());
            }
            if let Some(c) = rpc.control {
                for ih in c.ihave {
                    for id in ih.message_ids {
                        self.remember(id);
                    }
                }
            }
        }
        while let Some(e) = self.relay.poll_event() {
            if let RelayEvent::Message { message, .. } = e {
                assert!(
                    message.timestamp.is_some_and(|t| t != 0),
                    "delivered without a timestamp"
                );
            }
        }
    }

    fn message_bytes(&mut self, r: &mut Reader<'_>) -> Vec<u8> {
        self.counter += 1;
        match r.u8() % 16 {
            // Garbage.
            0 => r.bytes(256),
            // Too large.
            1 => vec![0x0a; self.relay.config().max_message_size + 1],
            // Valid, mostly fresh; sometimes without a timestamp or up to 40 s off.
            kind => {
                let offset = match r.u8() % 4 {
                    0 => i64::from(r.u16() % 81) - 40,
                    _ => i64::from(r.u8() % 11) - 5,
                };
                let ts = match kind {
                    2 => None,
                    _ => Some(
                        self.wall
                            .saturating_add(offset.saturating_mul(1_000_000_000)),
                    ),
                };
                let mut payload = self.counter.to_le_bytes().to_vec();
                payload.extend(r.bytes(64));
                let topic = ContentTopic::new("/fuzz/1/chat/proto").expect("valid content topic");
                let mut m = WakuMessage::new(topic, payload);
                m.timestamp = ts;
                m.encode()
            }
        }
    }

    fn id(&mut self, r: &mut Reader<'_>) -> Vec<u8> {
        let pick = usize::from(r.u8());
        match self.ids.get(pick) {
            Some(id) if pick % 4 != 3 => id.clone(),
            _ => r.bytes(40),
        }
    }

    fn rpc(&mut self, r: &mut Reader<'_>) -> Rpc {
        let topic = |r: &mut Reader<'_>| -> Option<String> {
            match r.u8() % 8 {
                0..=3 => Some(TOPICS[0].to_owned()),
                4 => Some(TOPICS[1].to_owned()),
                5 => TOPICS
                    .get(usize::from(r.u8() % 2 + 2))
                    .map(|t| (*t).to_owned()),
                6 => None,
                _ => String::from_utf8(r.bytes(32)).ok(),
            }
        };
        let mut rpc = Rpc::default();
        for _ in 0..r.u8() % 3 {
            rpc.subscriptions.push(SubOpts {
                subscribe: Some(!r.u8().is_multiple_of(4)),
                topic_id: topic(r),
            });
        }
        for _ in 0..r.u8() % 3 {
            let flags = r.u8();
            let data = self.message_bytes(r);
            self.remember(crate::message::relay_message_id(&data).to_vec());
            rpc.publish.push(PubsubMessage {
                from: (flags % 16 == 1).then(|| vec![1]),
                seqno: (flags % 16 == 2).then(|| vec![2]),
                data: Some(data),
                topic: topic(r),
                signature: None,
                key: (flags % 16 == 3).then(Vec::new),
            });
        }
        if r.u8().is_multiple_of(2) {
            let mut c = ControlMessage::default();
            for _ in 0..r.u8() % 3 {
                let n = r.u8() % 8;
                let ids = (0..n).map(|_| self.id(r)).collect();
                c.ihave.push(ControlIHave {
                    topic_id: topic(r),
                    message_ids: ids,
                });
            }
            for _ in 0..r.u8() % 3 {
                let n = r.u8() % 8;
                let ids = (0..n).map(|_| self.id(r)).collect();
                c.iwant.push(ControlIWant { message_ids: ids });
            }
            for _ in 0..r.u8() % 3 {
                c.graft.push(ControlGraft { topic_id: topic(r) });
            }
            for _ in 0..r.u8() % 3 {
                let backoff = match r.u8() % 3 {
                    0 => None,
                    1 => Some(u64::from(r.u8())),
                    _ => Some(r.u64()),
                };
                c.prune.push(ControlPrune {
                    topic_id: topic(r),
                    peers: vec![PeerInfo {
                        peer_id: Some(r.bytes(8)),
                        signed_peer_record: None,
                    }],
                    backoff,
                });
            }
            for _ in 0..r.u8() % 3 {
                let n = r.u8() % 8;
                let ids = (0..n).map(|_| self.id(r)).collect();
                c.idontwant.push(ControlIDontWant { message_ids: ids });
            }
            rpc.control = Some(c);
        }
        rpc
    }
}

/// Runs the operation program `data` against one router. Panics if the router panics, exceeds a
/// limit, or emits a frame that is not one valid RPC within the size limit.
pub fn router_interaction(data: &[u8]) {
    run(data);
}

/// [`router_interaction`], returning the router's counters (tests check the programs reach deep
/// states).
fn run(data: &[u8]) -> RelayStats {
    // Only differences between instants matter; the fuzz harness needs one real instant to
    // start from.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut r = Reader { data };
    let config = RelayConfig {
        flood_publish: r.u8().is_multiple_of(2),
        batch_size: 1024 + usize::from(r.u16()),
        ..RelayConfig::default()
    };
    let mut seed = [0u8; 32];
    seed[0] = r.u8();
    let mut h = Harness {
        relay: Relay::new(config, seed, start),
        instant: start,
        wall: WALL_START,
        ids: Vec::new(),
        counter: 0,
    };
    let verdicts = r.u8();
    if !verdicts.is_multiple_of(3) {
        let mut n = 0u8;
        h.relay.set_validator(Some(Box::new(move |_, _| {
            n = n.wrapping_add(1);
            match n.wrapping_add(verdicts) % 5 {
                0 => Validation::Reject,
                1 => Validation::Ignore,
                _ => Validation::Accept,
            }
        })));
    }
    // Start subscribed with four peers (two dialled), so short programs reach the mesh.
    h.relay
        .subscribe(h.now(), &topic_at(0))
        .expect("the first subscription fits");
    for p in 0..4 {
        let relay = [Protocol::Relay];
        if p % 2 == 1 {
            h.relay.handle_dialed(h.now(), PeerId(p), &relay);
        } else {
            h.relay.handle_connected(h.now(), PeerId(p), &relay);
        }
    }
    while !r.is_empty() {
        let peer = |r: &mut Reader<'_>| PeerId(u64::from(r.u8() % 5));
        match r.u8() % 10 {
            0 => {
                let p = peer(&mut r);
                let protocols: &[Protocol] = if r.u8().is_multiple_of(8) {
                    &[Protocol::StoreQuery]
                } else {
                    &[Protocol::Relay, Protocol::StoreQuery]
                };
                if r.u8().is_multiple_of(2) {
                    h.relay.handle_connected(h.now(), p, protocols);
                } else {
                    h.relay.handle_dialed(h.now(), p, protocols);
                }
            }
            1 => {
                let p = peer(&mut r);
                h.relay.handle_disconnected(h.now(), p);
            }
            2 => {
                let p = peer(&mut r);
                let frame = r.bytes(256);
                h.relay.handle_frame(h.now(), p, &frame);
            }
            3 | 4 => {
                let p = peer(&mut r);
                let rpc = h.rpc(&mut r);
                h.relay.handle_frame(h.now(), p, &rpc.encode_to_vec());
            }
            5 => {
                let ms = u64::from(r.u16()) * u64::from(r.u8() % 4 + 1);
                h.instant += Duration::from_millis(ms);
                h.wall = h.wall.saturating_add((ms as i64) * 1_000_000);
                if let Some(at) = h.relay.poll_timeout() {
                    assert!(at >= start, "timeout before the start");
                    if at <= h.instant {
                        h.relay.handle_timeout(h.now());
                        let next = h.relay.poll_timeout().expect("always a heartbeat");
                        assert!(next > h.instant, "poll_timeout did not move forward");
                    }
                }
            }
            6 => {
                let i = usize::from(r.u8()) % (TOPICS.len() - 1);
                let topic = topic_at(i);
                if r.u8().is_multiple_of(3) {
                    h.relay.unsubscribe(h.now(), &topic);
                } else {
                    h.relay
                        .subscribe(h.now(), &topic)
                        .expect("a few topics always fit");
                }
            }
            7 => {
                let i = usize::from(r.u8()) % TOPICS.len();
                let topic = topic_at(i);
                let data = h.message_bytes(&mut r);
                if let Ok(id) = h.relay.publish_encoded(h.now(), &topic, data) {
                    h.remember(id.0.to_vec());
                }
            }
            8 => h.drain(),
            _ => {
                // The wall clock jumps (the driver's clock was corrected).
                let jump = i64::from(r.u16() as i16) * 100_000_000;
                h.wall = h.wall.saturating_add(jump);
            }
        }
        h.check();
    }
    h.drain();
    h.check();
    h.relay.stats().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_and_tiny_programs() {
        router_interaction(&[]);
        router_interaction(&[0]);
        router_interaction(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    /// Random programs get past the surface: messages accepted and forwarded, gossip asked and
    /// answered, GRAFTs refused, heartbeats run.
    #[test]
    fn random_programs_reach_deep_states() {
        use rand_chacha::ChaCha20Rng;
        use rand_core::{Rng, SeedableRng};
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut total = RelayStats::default();
        for _ in 0..300 {
            let mut data = vec![0u8; 2000];
            rng.fill_bytes(&mut data);
            let s = run(&data);
            total.messages_accepted += s.messages_accepted;
            total.messages_sent += s.messages_sent;
            total.iwant_ids_sent += s.iwant_ids_sent;
            total.iwant_ids_served += s.iwant_ids_served;
            total.grafts_refused += s.grafts_refused;
            total.heartbeats += s.heartbeats;
            total.rejected_timestamp += s.rejected_timestamp;
            total.messages_duplicate += s.messages_duplicate;
        }
        println!("{total:?}");
        assert!(total.messages_accepted > 0);
        assert!(total.messages_sent > 0);
        assert!(total.iwant_ids_sent > 0);
        assert!(total.iwant_ids_served > 0);
        assert!(total.grafts_refused > 0);
        assert!(total.heartbeats > 0);
        assert!(total.rejected_timestamp > 0);
        assert!(total.messages_duplicate > 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Arbitrary operation programs never panic, never exceed a limit and never make the
        /// router emit a bad frame.
        #[test]
        fn arbitrary_programs(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            router_interaction(&data);
        }
    }
}
