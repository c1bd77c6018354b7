//! Gossipsub v1.1 peer scoring: P₁ (time in mesh), P₂ (first message deliveries), P₄ (invalid
//! messages) per topic and P₇ (behaviour penalty) per peer.
//!
//! `Score(p) = cap(Σ_topics w_t · (w₁·P₁ + w₂·P₂ + w₄·P₄²)) + w₇ · max(0, P₇ − threshold)²`.
//! P₃/P₃b (mesh delivery rate), P₅ (application) and P₆ (IP colocation) are not implemented:
//! Waku gives P₃/P₃b and P₅ zero weight, and a sans-IO router does not see addresses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::config::{MAX_SUBSCRIPTIONS, MAX_TOPICS_PER_PEER, ScoreParams};

/// The most topic counters one peer's score holds: the peer's topics plus ours.
const MAX_SCORED_TOPICS: usize = MAX_TOPICS_PER_PEER + MAX_SUBSCRIPTIONS;

#[derive(Debug, Clone, Default)]
struct TopicCounters {
    /// When the peer was grafted, while it is in our mesh.
    mesh_since: Option<Instant>,
    /// P₂ counter.
    first_deliveries: f64,
    /// P₄ counter.
    invalid_deliveries: f64,
}

impl TopicCounters {
    fn is_idle(&self) -> bool {
        self.mesh_since.is_none() && self.first_deliveries == 0.0 && self.invalid_deliveries == 0.0
    }
}

/// The score state of one peer.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerScore {
    topics: BTreeMap<Arc<str>, TopicCounters>,
    /// P₇ counter.
    behaviour_penalty: f64,
}

impl PeerScore {
    /// The current score.
    pub(crate) fn score(&self, p: &ScoreParams, now: Instant) -> f64 {
        let t = &p.topic;
        let mut topics = 0.0;
        for c in self.topics.values() {
            let mut s = 0.0;
            if let Some(since) = c.mesh_since {
                let quanta = now.saturating_duration_since(since).as_secs_f64()
                    / t.time_in_mesh_quantum.as_secs_f64();
                s += t.time_in_mesh_weight * quanta.floor().min(t.time_in_mesh_cap);
            }
            s += t.first_message_deliveries_weight * c.first_deliveries;
            s += t.invalid_message_deliveries_weight * c.invalid_deliveries * c.invalid_deliveries;
            topics += t.topic_weight * s;
        }
        if p.topic_score_cap > 0.0 && topics > p.topic_score_cap {
            topics = p.topic_score_cap;
        }
        let excess = self.behaviour_penalty - p.behaviour_penalty_threshold;
        let p7 = if excess > 0.0 { excess * excess } else { 0.0 };
        topics + p.behaviour_penalty_weight * p7
    }

    fn counters(&mut self, topic: &Arc<str>) -> Option<&mut TopicCounters> {
        if !self.topics.contains_key(topic) {
            if self.topics.len() >= MAX_SCORED_TOPICS {
                self.topics.retain(|_, c| !c.is_idle());
                if self.topics.len() >= MAX_SCORED_TOPICS {
                    return None;
                }
            }
            self.topics.insert(topic.clone(), TopicCounters::default());
        }
        self.topics.get_mut(topic)
    }

    /// The peer joined our mesh for `topic`.
    pub(crate) fn graft(&mut self, topic: &Arc<str>, now: Instant) {
        if let Some(c) = self.counters(topic) {
            c.mesh_since = Some(now);
        }
    }

    /// The peer left our mesh for `topic`.
    pub(crate) fn prune(&mut self, topic: &str) {
        if let Some(c) = self.topics.get_mut(topic) {
            c.mesh_since = None;
        }
    }

    /// The peer was first to deliver a valid message on `topic`.
    pub(crate) fn first_delivery(&mut self, topic: &Arc<str>, p: &ScoreParams) {
        let cap = p.topic.first_message_deliveries_cap;
        if let Some(c) = self.counters(topic) {
            c.first_deliveries = (c.first_deliveries + 1.0).min(cap);
        }
    }

    /// The peer delivered an invalid message on `topic`.
    pub(crate) fn invalid_delivery(&mut self, topic: &Arc<str>) {
        if let Some(c) = self.counters(topic) {
            // Uncapped in the spec; decay brings it down. Saturates at f64::MAX, never overflows.
            c.invalid_deliveries += 1.0;
        }
    }

    /// The peer misbehaved (`count` times).
    pub(crate) fn add_penalty(&mut self, count: f64) {
        self.behaviour_penalty += count;
    }

    /// One decay interval has passed.
    pub(crate) fn decay(&mut self, p: &ScoreParams) {
        let z = p.decay_to_zero;
        let t = &p.topic;
        for c in self.topics.values_mut() {
            c.first_deliveries *= t.first_message_deliveries_decay;
            if c.first_deliveries < z {
                c.first_deliveries = 0.0;
            }
            c.invalid_deliveries *= t.invalid_message_deliveries_decay;
            if c.invalid_deliveries < z {
                c.invalid_deliveries = 0.0;
            }
        }
        self.topics.retain(|_, c| !c.is_idle());
        self.behaviour_penalty *= p.behaviour_penalty_decay;
        if self.behaviour_penalty < z {
            self.behaviour_penalty = 0.0;
        }
    }

    /// Whether the score holds nothing worth retaining after a disconnect.
    pub(crate) fn is_neutral(&self) -> bool {
        self.behaviour_penalty == 0.0 && self.topics.values().all(TopicCounters::is_idle)
    }

    /// Ends every mesh membership (the peer disconnected).
    pub(crate) fn leave_all_meshes(&mut self) {
        for c in self.topics.values_mut() {
            c.mesh_since = None;
        }
        self.topics.retain(|_, c| !c.is_idle());
    }

    /// Number of topic counters (for the caps check).
    #[cfg(test)]
    pub(crate) fn topic_count(&self) -> usize {
        self.topics.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[allow(clippy::disallowed_methods)] // tests need some base instant
    fn base() -> Instant {
        Instant::now()
    }

    #[test]
    fn time_in_mesh_is_capped() {
        let p = ScoreParams::default();
        let t: Arc<str> = Arc::from("t");
        let now = base();
        let mut s = PeerScore::default();
        s.graft(&t, now);
        assert_eq!(s.score(&p, now), 0.0);
        let five = s.score(&p, now + Duration::from_millis(5500));
        assert!((five - 0.05).abs() < 1e-9, "{five}");
        let capped = s.score(&p, now + Duration::from_secs(100));
        assert!((capped - 0.1).abs() < 1e-9, "{capped}");
        s.prune("t");
        assert_eq!(s.score(&p, now + Duration::from_secs(100)), 0.0);
    }

    #[test]
    fn first_deliveries_capped_and_decay() {
        let p = ScoreParams::default();
        let t: Arc<str> = Arc::from("t");
        let now = base();
        let mut s = PeerScore::default();
        for _ in 0..20 {
            s.first_delivery(&t, &p);
        }
        assert_eq!(s.score(&p, now), 10.0);
        s.decay(&p);
        assert_eq!(s.score(&p, now), 5.0);
        for _ in 0..20 {
            s.decay(&p);
        }
        assert_eq!(s.score(&p, now), 0.0);
        assert!(s.is_neutral());
        assert_eq!(s.topic_count(), 0);
    }

    #[test]
    fn invalid_messages_square() {
        let p = ScoreParams::default();
        let t: Arc<str> = Arc::from("t");
        let now = base();
        let mut s = PeerScore::default();
        for _ in 0..11 {
            s.invalid_delivery(&t);
        }
        assert_eq!(s.score(&p, now), -12_100.0);
        assert!(s.score(&p, now) < p.graylist_threshold);
    }

    #[test]
    fn behaviour_penalty_squares_and_decays() {
        let p = ScoreParams::default();
        let now = base();
        let mut s = PeerScore::default();
        s.add_penalty(3.0);
        assert_eq!(s.score(&p, now), -90.0);
        s.decay(&p);
        let d = s.score(&p, now);
        assert!((d - (-10.0 * (3.0f64 * 0.986).powi(2))).abs() < 1e-9);
    }
}
