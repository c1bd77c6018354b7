//! Configuration: synchronisation mode and retransmission schedule.

use rand_core::Rng;

/// How a message reaches a peer (2/MVDS "Flow").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Offer the id first; send the message only when the peer requests it; the peer acks it.
    /// Cheaper when peers may already hold the message, slower (three trips).
    Interactive,
    /// Send the message at once; the peer acks it. What status-go uses.
    Batch,
}

/// Settings of a [`Node`](crate::Node). All durations are in epochs (ticks of
/// [`Node::handle_tick`](crate::Node::handle_tick); status-go ticks every 300 ms).
///
/// After the `n`-th send of a record (n ≥ 1) the next send is scheduled
/// `min(backoff_base · 2^(n−1), backoff_cap) + uniform[0, backoff_jitter)` epochs later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The first retransmission interval, in epochs (≥ 1; 0 is treated as 1).
    pub backoff_base: u64,
    /// The largest retransmission interval before jitter, in epochs. A record whose peer was
    /// unreachable for a long time is retried at most this long (plus jitter) after the
    /// network heals.
    pub backoff_cap: u64,
    /// Random jitter added to each interval: uniform in `[0, backoff_jitter)` epochs, drawn from
    /// the node's seeded RNG (0 disables it).
    pub backoff_jitter: u64,
    /// When a peer comes online ([`Node::handle_peer_online`](crate::Node::handle_peer_online))
    /// every pending record for it is rescheduled to within `1 + uniform[0, online_jitter]`
    /// epochs, unless already due sooner.
    pub online_jitter: u64,
    /// Give up on a record after this many sends ([`Event::Expired`](crate::Event::Expired));
    /// `None` retries forever (at most every `backoff_cap` epochs). status-go gives up after 14.
    pub max_send_count: Option<u32>,
}

impl Default for Config {
    /// Retransmission as status-go schedules it (first retry after 90 epochs, 27 s at 300 ms,
    /// doubling, with 30 epochs of jitter), capped at 12,000 epochs (1 h at 300 ms), never
    /// giving up, and a peer that comes online served within 10 epochs.
    fn default() -> Self {
        Config {
            backoff_base: 90,
            backoff_cap: 12_000,
            backoff_jitter: 30,
            online_jitter: 10,
            max_send_count: None,
        }
    }
}

impl Config {
    /// status-go's settings (WIRE.md B.21): interval `2^(n−1)·90 + rand[0, 30)` epochs without a
    /// cap, giving up after 14 sends, a peer that comes online served within 60 epochs.
    pub fn status_go() -> Config {
        Config {
            backoff_base: 90,
            backoff_cap: u64::MAX,
            backoff_jitter: 30,
            online_jitter: 60,
            max_send_count: Some(14),
        }
    }

    /// The number of epochs until the next send of a record that has now been sent
    /// `send_count` times (≥ 1).
    pub(crate) fn next_interval(&self, send_count: u32, rng: &mut impl Rng) -> u64 {
        let base = self.backoff_base.max(1);
        let exp = send_count.saturating_sub(1);
        let interval = if exp >= 63 {
            self.backoff_cap
        } else {
            base.saturating_mul(1u64 << exp).min(self.backoff_cap)
        }
        .max(1);
        interval.saturating_add(jitter(self.backoff_jitter, rng))
    }
}

/// Uniform in `[0, bound)`, 0 when `bound` is 0 (the modulo bias is below 2^-40 for any bound
/// a schedule uses).
pub(crate) fn jitter(bound: u64, rng: &mut impl Rng) -> u64 {
    if bound == 0 {
        0
    } else {
        rng.next_u64() % bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn intervals_double_and_cap() {
        let cfg = Config {
            backoff_base: 3,
            backoff_cap: 20,
            backoff_jitter: 0,
            online_jitter: 0,
            max_send_count: None,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let got: Vec<u64> = (1..=7).map(|n| cfg.next_interval(n, &mut rng)).collect();
        assert_eq!(got, vec![3, 6, 12, 20, 20, 20, 20]);
        assert_eq!(cfg.next_interval(u32::MAX, &mut rng), 20);
    }

    #[test]
    fn jitter_stays_in_range() {
        let cfg = Config {
            backoff_base: 10,
            backoff_cap: 10,
            backoff_jitter: 5,
            ..Config::default()
        };
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let i = cfg.next_interval(4, &mut rng);
            assert!((10..15).contains(&i), "{i}");
            seen[(i - 10) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn status_go_schedule_has_no_cap() {
        let cfg = Config::status_go();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let i = cfg.next_interval(14, &mut rng);
        assert!((90 << 13..(90 << 13) + 30).contains(&i));
    }
}
