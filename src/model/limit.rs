//! Attempt limits (issue 9): fixed-window counters in the token store, so
//! that replicas share them. Which counters an attempt is counted against,
//! and their limits, is the service layer's policy; a store only counts.

use std::time::Duration;

/// One counter an attempt is counted against: a single store key
/// (`ratelimit:…`) that lives one window from its first count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCounter {
    pub key: String,
    /// Attempts allowed per window: an attempt that finds this many already
    /// counted is refused.
    pub limit: u64,
}

/// A store's answer to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Counted on every counter.
    Allowed,
    /// Refused and counted nowhere: `retry_after` is the longest wait until
    /// the window of a full counter ends.
    Limited { retry_after: Duration },
}
