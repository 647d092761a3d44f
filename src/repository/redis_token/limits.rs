//! Attempt counters (issue 9): `ratelimit:…`, one string key per counter
//! holding its count, with the window as its TTL from the first count. Each
//! step is one small script (`lua/rate_limit_*.lua`) over the attempt's
//! counters.
//!
//! Redis Cluster (a later issue): every counter is a single key, but one
//! attempt's counters hash to different slots, which a multi-key script
//! cannot span; there the check would go per key (or with hash tags).

use std::time::Duration;

use async_trait::async_trait;

use super::RedisTokenRepository;
use super::scripts::{RATE_LIMIT_ATTEMPT, RATE_LIMIT_REFUND};
use crate::error::AppResult;
use crate::model::{RateCounter, RateDecision, RateLimitRepository};

#[async_trait]
impl RateLimitRepository for RedisTokenRepository {
    async fn attempt(&self, counters: &[RateCounter], window: Duration) -> AppResult<RateDecision> {
        if counters.is_empty() {
            return Ok(RateDecision::Allowed);
        }
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = RATE_LIMIT_ATTEMPT.prepare_invoke();
        invocation.arg(window_ms);
        for counter in counters {
            invocation.key(&counter.key).arg(counter.limit);
        }
        let wait_ms: u64 = self.invoke(&invocation).await?;
        Ok(match wait_ms {
            0 => RateDecision::Allowed,
            ms => RateDecision::Limited {
                retry_after: Duration::from_millis(ms),
            },
        })
    }

    async fn refund(&self, keys: &[String]) -> AppResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut invocation = RATE_LIMIT_REFUND.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        self.invoke::<i64>(&invocation).await.map(drop)
    }

    async fn clear(&self, keys: &[String]) -> AppResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        // One command: every counter goes at once.
        let mut cmd = redis::cmd("DEL");
        cmd.arg(keys);
        self.query::<i64>(&cmd).await.map(drop)
    }
}
