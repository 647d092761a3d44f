//! The arithmetic, without I/O: how long a token is cached, how long to wait
//! between attempts at the token endpoint, and the default cache key.

use std::time::Duration;

/// How long before its end a token stops being handed out: the larger of
/// `min` and `fraction` of its lifetime. The default, 30 s or 10 %, keeps a
/// token from being sent that expires on its way or while the request runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Margin {
    /// The smallest margin, whatever the lifetime.
    pub min: Duration,
    /// The share of the lifetime, between 0 and 1.
    pub fraction: f64,
}

impl Default for Margin {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(30),
            fraction: 0.1,
        }
    }
}

impl Margin {
    /// The margin for a token that lives `expires_in`.
    pub fn for_lifetime(&self, expires_in: Duration) -> Duration {
        let share = expires_in.mul_f64(self.fraction.clamp(0.0, 1.0));
        self.min.max(share)
    }
}

/// How long a token that lives `expires_in` is cached: its lifetime less the
/// margin, or `None` when that leaves less than a millisecond (such a token is
/// handed to the caller that fetched it and not cached).
pub fn cache_ttl(expires_in: Duration, margin: &Margin) -> Option<Duration> {
    expires_in
        .checked_sub(margin.for_lifetime(expires_in))
        .filter(|ttl| *ttl >= Duration::from_millis(1))
}

/// How the token endpoint is retried: 5xx answers, 429, 408 and connection
/// errors (timeouts included) are retried, other 4xx are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The delay before the second attempt (before jitter); it doubles for
    /// each further attempt, up to `max_delay`.
    pub initial_delay: Duration,
    /// The cap of a delay.
    pub max_delay: Duration,
    /// The time one attempt may take, connecting included.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 200 ms doubling up to 5 s, 5 s per attempt: an endpoint
    /// that refuses connections is reported within about 1.5 s.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The cap of the delay after failed attempt `retry + 1` (0-based retry):
    /// `initial_delay · 2^retry`, at most `max_delay`.
    pub fn delay_cap(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        self.initial_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The delay after failed attempt `retry + 1`, jittered: between half the
    /// cap and the cap, placed by `unit` (in `[0, 1]`, random in use). Never
    /// zero unless the cap is, so a failing endpoint is never hot-looped.
    pub fn backoff_delay(&self, retry: u32, unit: f64) -> Duration {
        let cap = self.delay_cap(retry);
        let half = cap / 2;
        half + (cap - half).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The longest a fetch can take: every attempt timing out, every delay
    /// at its cap.
    pub fn worst_case(&self) -> Duration {
        let attempts = self.max_attempts.max(1);
        let delays: Duration = (0..attempts - 1).map(|retry| self.delay_cap(retry)).sum();
        self.request_timeout.saturating_mul(attempts) + delays
    }
}

/// `oauth-token:<client id>:<hex SHA-256 of "<token URL>\n<scope>">`: one key
/// per client, endpoint and scope (the scope empty when none is asked for).
pub fn default_cache_key(client_id: &str, token_url: &str, scope: Option<&str>) -> String {
    let mut input = Vec::with_capacity(token_url.len() + 1 + scope.map_or(0, str::len));
    input.extend_from_slice(token_url.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(scope.unwrap_or("").as_bytes());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    let hex: String = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("oauth-token:{client_id}:{hex}")
}

/// A random number in `[0, 1)` for the jitter.
pub(crate) fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_margin_is_the_larger_of_thirty_seconds_and_ten_percent() {
        let margin = Margin::default();
        assert_eq!(margin.for_lifetime(S(3600)), S(360));
        assert_eq!(margin.for_lifetime(S(300)), S(30));
        assert_eq!(margin.for_lifetime(S(100)), S(30));
        assert_eq!(cache_ttl(S(3600), &margin), Some(S(3240)));
        assert_eq!(cache_ttl(S(300), &margin), Some(S(270)));
        assert_eq!(cache_ttl(S(31), &margin), Some(S(1)));
    }

    #[test]
    fn a_token_that_lives_no_longer_than_the_margin_is_not_cached() {
        let margin = Margin::default();
        assert_eq!(cache_ttl(S(30), &margin), None);
        assert_eq!(cache_ttl(S(10), &margin), None);
        assert_eq!(cache_ttl(S(0), &margin), None);
        let tight = Margin {
            min: Duration::from_millis(1),
            fraction: 0.0,
        };
        assert_eq!(cache_ttl(Duration::from_micros(1500), &tight), None);
        assert_eq!(cache_ttl(S(2), &tight), Some(Duration::from_millis(1999)));
    }

    #[test]
    fn a_fraction_outside_zero_to_one_is_clamped() {
        let all = Margin {
            min: S(0),
            fraction: 7.0,
        };
        assert_eq!(cache_ttl(S(100), &all), None);
        let none = Margin {
            min: S(1),
            fraction: -3.0,
        };
        assert_eq!(cache_ttl(S(100), &none), Some(S(99)));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_between_half_and_whole() {
        let policy = RetryPolicy::default();
        let caps: Vec<_> = (0..7).map(|retry| policy.delay_cap(retry)).collect();
        let ms = Duration::from_millis;
        assert_eq!(
            caps,
            [ms(200), ms(400), ms(800), ms(1600), ms(3200), S(5), S(5)]
        );
        for retry in 0..40 {
            let cap = policy.delay_cap(retry);
            assert!(cap <= policy.max_delay);
            assert_eq!(policy.backoff_delay(retry, 0.0), cap / 2);
            assert_eq!(policy.backoff_delay(retry, 1.0), cap);
            for _ in 0..20 {
                let delay = policy.backoff_delay(retry, random_unit());
                assert!(
                    delay >= cap / 2 && delay <= cap,
                    "{delay:?} for cap {cap:?}"
                );
            }
        }
        // Out-of-range randomness stays within the bounds.
        assert_eq!(policy.backoff_delay(1, -1.0), ms(200));
        assert_eq!(policy.backoff_delay(1, 9.0), ms(400));
    }

    #[test]
    fn random_units_are_in_range_and_vary() {
        let values: Vec<f64> = (0..100).map(|_| random_unit()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(values.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn the_worst_case_counts_every_timeout_and_capped_delay() {
        let policy = RetryPolicy::default();
        // 4 × 5 s + 200 + 400 + 800 ms
        assert_eq!(policy.worst_case(), Duration::from_millis(21_400));
        let once = RetryPolicy {
            max_attempts: 1,
            ..policy
        };
        assert_eq!(once.worst_case(), S(5));
    }

    #[test]
    fn the_default_key_names_the_client_and_hashes_url_and_scope() {
        let key = default_cache_key("billing", "https://auth.example/oauth/token", None);
        let (prefix, hex) = key.rsplit_once(':').unwrap();
        assert_eq!(prefix, "oauth-token:billing");
        assert_eq!(hex.len(), 64);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // SHA-256("u\n"), computed independently (`printf 'u\n' | sha256sum`).
        assert_eq!(
            default_cache_key("c", "u", None),
            "oauth-token:c:ea46748e171abd2dd4dba5b86bb6589334d86bba2df8d50cbb16b36c83b0856a"
        );
        assert_ne!(
            default_cache_key("c", "https://a/t", Some("read")),
            default_cache_key("c", "https://a/t", Some("write"))
        );
        assert_ne!(
            default_cache_key("c", "https://a/t", None),
            default_cache_key("d", "https://a/t", None)
        );
    }
}
