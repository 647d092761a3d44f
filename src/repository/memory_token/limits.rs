//! Attempt counters (issue 9) in the keyspace, as the Redis scripts keep
//! them: one key `ratelimit:…` per counter holding its count, expiring one
//! window after its first count. The background sweep reclaims them; they
//! are never written to the durable copy (`durable.rs`): a restart forgets
//! them.

use std::time::Duration;

use tokio::time::Instant;

use super::keyspace::{Keyspace, Value};
use crate::model::{RateCounter, RateDecision};

impl Keyspace {
    /// A live counter's count and expiry.
    fn counter(&self, key: &str, now: Instant) -> Option<(u64, Instant)> {
        match self.get_with_expiry(key, now) {
            Some((Value::Counter(count), expires)) => Some((*count, expires)),
            _ => None,
        }
    }

    /// Counts one attempt on every counter, or, if one is full, on none.
    pub(super) fn rate_attempt(
        &mut self,
        counters: &[RateCounter],
        window: Duration,
        now: Instant,
    ) -> RateDecision {
        let wait = counters
            .iter()
            .filter_map(|c| {
                self.counter(&c.key, now)
                    .filter(|(count, _)| *count >= c.limit)
                    .map(|(_, expires)| expires - now)
            })
            .max();
        if let Some(retry_after) = wait {
            return RateDecision::Limited { retry_after };
        }
        for c in counters {
            match self.get_mut(&c.key, now) {
                Some(Value::Counter(count)) => *count += 1,
                // Absent or expired: a new window starts with this count.
                _ => self.set(c.key.clone(), Value::Counter(1), now + window),
            }
        }
        RateDecision::Allowed
    }

    /// Takes one count back from each live counter, never below zero.
    pub(super) fn rate_refund(&mut self, keys: &[String], now: Instant) {
        for key in keys {
            if let Some(Value::Counter(count)) = self.get_mut(key, now) {
                *count = count.saturating_sub(1);
            }
        }
    }
}
