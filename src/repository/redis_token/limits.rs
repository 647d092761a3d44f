//! Attempt counters (issue 9): `ratelimit:…`, one string key per counter
//! holding its count, with the window as its TTL from the first count.
//!
//! On a single Redis an attempt is one script over all its counters
//! (`lua/rate_limit_attempt.lua`): it counts on every counter or, if one is
//! full, on none, atomically.
//!
//! On Redis Cluster an attempt's counters (per email and address, per
//! address, per email) hash to different slots, and a script cannot span
//! slots. There each counter is its own atomic step
//! (`lua/rate_limit_step.lua`: check and count one key), in order; when one
//! is full, the counts already taken for this attempt are given back and the
//! remaining counters are only looked at (for the longest wait). No counter
//! ever passes its limit (each step is atomic on its key). The race this
//! admits: between a refused attempt's count on an earlier counter and its
//! refund, a concurrent attempt sees that counter one higher, and may be
//! refused where the all-or-nothing script would have let it in. Refusals
//! can err on the strict side for that instant; admissions never do.
//! Refunds go key by key too; `clear` is one DEL, which the cluster client
//! splits by slot.

use std::time::Duration;

use async_trait::async_trait;

use super::RedisTokenRepository;
use super::scripts::{RATE_LIMIT_ATTEMPT, RATE_LIMIT_REFUND, RATE_LIMIT_STEP};
use crate::error::AppResult;
use crate::model::{RateCounter, RateDecision, RateLimitRepository};
use crate::redis_conn::RedisMode;

impl RedisTokenRepository {
    /// The all-or-nothing script over every counter (a single Redis).
    async fn attempt_at_once(&self, counters: &[RateCounter], window_ms: u64) -> AppResult<u64> {
        let mut invocation = RATE_LIMIT_ATTEMPT.prepare_invoke();
        invocation.arg(window_ms);
        for counter in counters {
            invocation.key(&counter.key).arg(counter.limit);
        }
        self.invoke(&invocation).await
    }

    /// One counter after the other (Redis Cluster), giving back what this
    /// attempt counted when one is full.
    async fn attempt_key_by_key(&self, counters: &[RateCounter], window_ms: u64) -> AppResult<u64> {
        let mut counted: Vec<String> = Vec::with_capacity(counters.len());
        let mut wait: u64 = 0;
        for counter in counters {
            let count = if wait == 0 { "1" } else { "0" };
            let mut invocation = RATE_LIMIT_STEP.key(&counter.key);
            invocation.arg(window_ms).arg(counter.limit).arg(count);
            let left: u64 = match self.invoke(&invocation).await {
                Ok(left) => left,
                Err(err) => {
                    // Best effort: what this attempt counted goes back.
                    let _ = self.refund(&counted).await;
                    return Err(err);
                }
            };
            if left > 0 {
                wait = wait.max(left);
            } else if wait == 0 {
                counted.push(counter.key.clone());
            }
        }
        if wait > 0 {
            self.refund(&counted).await?;
        }
        Ok(wait)
    }
}

#[async_trait]
impl RateLimitRepository for RedisTokenRepository {
    async fn attempt(&self, counters: &[RateCounter], window: Duration) -> AppResult<RateDecision> {
        if counters.is_empty() {
            return Ok(RateDecision::Allowed);
        }
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let wait_ms = match self.conn.mode() {
            RedisMode::Standalone => self.attempt_at_once(counters, window_ms).await?,
            RedisMode::Cluster => self.attempt_key_by_key(counters, window_ms).await?,
        };
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
        match self.conn.mode() {
            RedisMode::Standalone => {
                let mut invocation = RATE_LIMIT_REFUND.prepare_invoke();
                for key in keys {
                    invocation.key(key);
                }
                self.invoke::<i64>(&invocation).await.map(drop)
            }
            RedisMode::Cluster => {
                for key in keys {
                    self.invoke::<i64>(&RATE_LIMIT_REFUND.key(key)).await?;
                }
                Ok(())
            }
        }
    }

    async fn clear(&self, keys: &[String]) -> AppResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        // One command: every counter goes at once (on a cluster, the client
        // sends one DEL per slot).
        let mut cmd = redis::cmd("DEL");
        cmd.arg(keys);
        self.query::<i64>(&cmd).await.map(drop)
    }
}
