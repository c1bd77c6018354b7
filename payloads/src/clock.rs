//! Lamport clocks for chat ordering.
//!
//! Messages are ordered by their Lamport clock, never by their timestamp, and ties by message id
//! ([`order_key`]). Each chat keeps the largest clock it has sent or accepted. The rule for the
//! next clock follows status-go (WIRE.md B.23, `protocol/v1/clock.go`):
//!
//! - if the last clock is behind the wall clock, the next clock is `now_ms + CLOCK_BUMP_MS`
//!   (a "bid" a minute into the future, so that a message written after a period of silence or
//!   after being offline sorts after what others wrote meanwhile, even with small clock skew);
//! - otherwise it is `last + 1`.
//!
//! That is `max(last + 1, now_ms + CLOCK_BUMP_MS)` whenever `last < now_ms`. 62/payloads'
//! `max(now_ms, last + 1)` is the same rule without the bump.
//!
//! A received clock raises the chat's clock ([`LamportClock::observe`]) so replies sort after
//! what they answer. A sender could otherwise push every chat's clock to `u64::MAX` with one
//! message, so a clock more than [`MAX_CLOCK_AHEAD_MS`] ahead of the receiver's wall clock is
//! refused ([`ClockError::TooFarAhead`]).

use crate::id::MessageId;

/// How far into the future the next clock is bid when the chat's clock is behind wall time.
pub const CLOCK_BUMP_MS: u64 = 60_000;

/// Largest lead over the receiver's wall clock a received clock may have: one day. Honest
/// clocks lead by at most [`CLOCK_BUMP_MS`] plus one per message sent within the same
/// millisecond range and the sender's clock skew; a day leaves room for wildly wrong device
/// clocks while keeping a hostile clock from pushing a chat's order out of reach.
pub const MAX_CLOCK_AHEAD_MS: u64 = 24 * 60 * 60 * 1000;

/// Why a received clock was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The clock is more than [`MAX_CLOCK_AHEAD_MS`] ahead of the local wall clock.
    #[error("clock {clock} is too far ahead of local time {now_ms}")]
    TooFarAhead {
        /// The received clock.
        clock: u64,
        /// The local wall clock (Unix milliseconds).
        now_ms: u64,
    },
    /// A clock of zero; every sender's first clock is at least its wall clock.
    #[error("a clock of zero")]
    Zero,
}

/// One chat's Lamport clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LamportClock {
    last: u64,
}

impl LamportClock {
    /// A clock that has seen `last`.
    pub const fn starting_at(last: u64) -> Self {
        LamportClock { last }
    }

    /// The largest clock sent or observed.
    pub const fn last(&self) -> u64 {
        self.last
    }

    /// The clock of the next message sent at wall time `now_ms` (Unix milliseconds), which is
    /// then the clock's new value.
    pub fn tick(&mut self, now_ms: u64) -> u64 {
        self.last = next_clock(self.last, now_ms);
        self.last
    }

    /// The clock [`Self::tick`] would return, without changing this clock.
    pub fn tick_copy(mut self, now_ms: u64) -> u64 {
        self.tick(now_ms)
    }

    /// Checks a received clock against the local wall clock and, if acceptable, raises this
    /// clock to it.
    ///
    /// # Errors
    /// [`ClockError`]; the clock is then unchanged.
    pub fn observe(&mut self, clock: u64, now_ms: u64) -> Result<(), ClockError> {
        check_received(clock, now_ms)?;
        self.last = self.last.max(clock);
        Ok(())
    }
}

/// The next clock after `last` at wall time `now_ms` (see the module docs).
pub const fn next_clock(last: u64, now_ms: u64) -> u64 {
    if last < now_ms {
        now_ms.saturating_add(CLOCK_BUMP_MS)
    } else {
        last.saturating_add(1)
    }
}

/// Checks a received clock: non-zero and at most [`MAX_CLOCK_AHEAD_MS`] ahead of `now_ms`.
///
/// # Errors
/// [`ClockError`].
pub const fn check_received(clock: u64, now_ms: u64) -> Result<(), ClockError> {
    if clock == 0 {
        return Err(ClockError::Zero);
    }
    if clock > now_ms.saturating_add(MAX_CLOCK_AHEAD_MS) {
        return Err(ClockError::TooFarAhead { clock, now_ms });
    }
    Ok(())
}

/// The key messages of one chat are displayed in: clock first, ties by message id, so every
/// member orders the same messages the same way.
pub const fn order_key(clock: u64, id: MessageId) -> (u64, MessageId) {
    (clock, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bumps_when_behind_and_increments_when_ahead() {
        let mut c = LamportClock::default();
        assert_eq!(c.tick(1_000), 1_000 + CLOCK_BUMP_MS);
        // Still ahead of the wall clock: +1.
        assert_eq!(c.tick(2_000), 1_000 + CLOCK_BUMP_MS + 1);
        // Wall clock passed the last value: bump again.
        assert_eq!(c.tick(100_000), 100_000 + CLOCK_BUMP_MS);
        c.observe(500_000, 100_000).unwrap();
        assert_eq!(c.tick(100_001), 500_001);
    }

    #[test]
    fn refuses_hostile_clocks() {
        let mut c = LamportClock::starting_at(7);
        assert_eq!(
            c.observe(u64::MAX, 1_000),
            Err(ClockError::TooFarAhead {
                clock: u64::MAX,
                now_ms: 1_000
            })
        );
        assert_eq!(c.observe(0, 1_000), Err(ClockError::Zero));
        assert_eq!(c.last(), 7);
        c.observe(1_000 + MAX_CLOCK_AHEAD_MS, 1_000).unwrap();
        assert_eq!(c.last(), 1_000 + MAX_CLOCK_AHEAD_MS);
    }

    proptest! {
        #[test]
        fn a_reply_sorts_after_what_it_answers(
            theirs in 1u64..1 << 50, my_now in 0u64..1 << 50, mine in 0u64..1 << 50
        ) {
            let mut c = LamportClock::starting_at(mine);
            if c.observe(theirs, my_now).is_ok() {
                let reply = c.tick(my_now);
                prop_assert!(reply > theirs);
                prop_assert!(reply > mine);
            }
        }

        #[test]
        fn ticks_strictly_increase(nows in proptest::collection::vec(0u64..1 << 50, 1..50)) {
            let mut c = LamportClock::default();
            let mut prev = 0;
            for now in nows {
                let next = c.tick(now);
                prop_assert!(next > prev);
                prop_assert!(next > now);
                prev = next;
            }
        }
    }
}
