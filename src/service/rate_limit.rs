//! The limits (issues 9 and 10) of sign-ins, sign-ups, password-reset
//! requests and the mails they send: which counters an attempt is counted
//! against, and their limits. The counting is the token store's
//! ([`RateLimitRepository`]: Redis, or the in-process store), so replicas
//! share it.
//!
//! Counter keys, one store key each (no email in clear: its hex SHA-256):
//!
//! - `ratelimit:signin:email-ip:<sha256(email)>:<source>`: one source
//!   guessing one account (`SIGNIN_RATE_LIMIT`);
//! - `ratelimit:signin:ip:<source>`: one source trying many accounts
//!   (`SIGNIN_IP_RATE_LIMIT`);
//! - `ratelimit:signin:email:<sha256(email)>`: many sources guessing one
//!   account (`SIGNIN_EMAIL_RATE_LIMIT`);
//! - `ratelimit:signup:ip:<source>`: sign-ups from one source
//!   (`SIGNUP_RATE_LIMIT`);
//! - `ratelimit:reset:ip:<source>`: password-reset requests from one source
//!   (`SIGNIN_IP_RATE_LIMIT`: like a sign-in, a request names an account);
//! - `ratelimit:reset:email:<sha256(email)>`: reset mails to one address
//!   (`MAIL_RATE_LIMIT`);
//! - `ratelimit:verify:user:<uid>`: verification mails a user asked to be
//!   sent again (`MAIL_RATE_LIMIT`);
//! - `ratelimit:client:id-ip:<sha256(client id)>:<source>`: one source
//!   guessing one client's secret (`CLIENT_AUTH_RATE_LIMIT`; client ids are
//!   not secret, so a counter per id alone would let anyone lock a client
//!   out);
//! - `ratelimit:client:ip:<source>`: one source trying many clients
//!   (`CLIENT_AUTH_IP_RATE_LIMIT`);
//! - `ratelimit:link:ip:<source>`: one source guessing verification or reset
//!   tokens (`LINK_TOKEN_RATE_LIMIT`).
//!
//! Client authentications and link tokens count their failures only: a
//! success gives its counts back.
//!
//! A password reset clears the email's sign-in counters: its own and its
//! (email, source) one for the source that confirmed the reset.
//!
//! A source is an IPv4 address, or an IPv6 address's /64 (one host, or one
//! customer, commonly holds a whole /64 and could otherwise pick a new
//! address per attempt).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::digest;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::model::{RateCounter, RateDecision, RateLimitRepository, RateLimitService};

/// The limits, per window; a very high limit is never reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_WINDOW`: how long a counter counts from its first attempt.
    pub window: Duration,
    /// `SIGNIN_RATE_LIMIT`: sign-in attempts per (email, source).
    pub signin_per_email_and_ip: u64,
    /// `SIGNIN_IP_RATE_LIMIT`: sign-in attempts per source.
    pub signin_per_ip: u64,
    /// `SIGNIN_EMAIL_RATE_LIMIT`: sign-in attempts per email.
    pub signin_per_email: u64,
    /// `SIGNUP_RATE_LIMIT`: sign-ups per source.
    pub signup_per_ip: u64,
    /// `SIGNIN_IP_RATE_LIMIT` too: password-reset requests per source.
    pub reset_per_ip: u64,
    /// `MAIL_RATE_LIMIT`: reset mails per email, and verification mails
    /// resent per user.
    pub mails_per_account: u64,
    /// `CLIENT_AUTH_RATE_LIMIT`: failed client authentications per
    /// (client id, source).
    pub client_auth_per_id_and_ip: u64,
    /// `CLIENT_AUTH_IP_RATE_LIMIT`: failed client authentications per source.
    pub client_auth_per_ip: u64,
    /// `LINK_TOKEN_RATE_LIMIT`: failed verification and reset tokens per
    /// source.
    pub link_tokens_per_ip: u64,
    /// `MFA_RATE_LIMIT`: failed second steps (and enrolment codes) per user.
    pub mfa_per_user: u64,
}

/// Every counter key starts with this.
pub const KEY_PREFIX: &str = "ratelimit:";

/// How counter keys name the source `ip`: an IPv4 address as it is (also
/// when it reached an IPv6 socket as `::ffff:a.b.c.d`), an IPv6 address by
/// its /64, `unknown` without one.
fn source(ip: &str) -> String {
    match ip.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => {
            let network = u128::from(v6) & !(u128::MAX >> 64);
            format!("{}/64", std::net::Ipv6Addr::from(network))
        }
        Err(_) => "unknown".to_owned(),
    }
}

/// How counter keys name an email: the hex SHA-256 of its lowercase form.
fn email_digest(email: &str) -> String {
    hex_sha256(&email.to_lowercase())
}

/// The hex SHA-256 of `text` (keys never hold what a client wrote, which
/// may be long or odd).
fn hex_sha256(text: &str) -> String {
    digest::digest(&digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// [`RateLimitService`] over a [`RateLimitRepository`].
pub struct RateLimitServiceImpl {
    store: Arc<dyn RateLimitRepository>,
    config: RateLimitConfig,
}

impl RateLimitServiceImpl {
    pub fn new(store: Arc<dyn RateLimitRepository>, config: RateLimitConfig) -> Self {
        Self { store, config }
    }

    fn email_and_ip_key(email: &str, ip: &str) -> String {
        format!(
            "{KEY_PREFIX}signin:email-ip:{}:{}",
            email_digest(email),
            source(ip)
        )
    }

    fn signin_ip_key(ip: &str) -> String {
        format!("{KEY_PREFIX}signin:ip:{}", source(ip))
    }

    fn signin_email_key(email: &str) -> String {
        format!("{KEY_PREFIX}signin:email:{}", email_digest(email))
    }

    fn client_id_and_ip_key(client_id: &str, ip: &str) -> String {
        format!(
            "{KEY_PREFIX}client:id-ip:{}:{}",
            hex_sha256(client_id),
            source(ip)
        )
    }

    fn client_ip_key(ip: &str) -> String {
        format!("{KEY_PREFIX}client:ip:{}", source(ip))
    }

    /// Wrong second-factor codes of a user.
    fn mfa_key(uid: Uuid) -> String {
        format!("{KEY_PREFIX}mfa:{uid}")
    }

    fn link_ip_key(ip: &str) -> String {
        format!("{KEY_PREFIX}link:ip:{}", source(ip))
    }

    /// Counts an attempt on `counters`, or refuses it with the whole seconds
    /// (at least 1, at most the window) after which it would be let in.
    async fn attempt(&self, counters: &[RateCounter]) -> AppResult<()> {
        match self.store.attempt(counters, self.config.window).await? {
            RateDecision::Allowed => Ok(()),
            RateDecision::Limited { retry_after } => {
                let secs = retry_after.as_millis().div_ceil(1000);
                let secs = u64::try_from(secs)
                    .unwrap_or(u64::MAX)
                    .clamp(1, self.config.window.as_secs().max(1));
                Err(AppError::TooManyRequests {
                    retry_after_secs: secs,
                })
            }
        }
    }
}

#[async_trait]
impl RateLimitService for RateLimitServiceImpl {
    async fn sign_in_attempt(&self, email: &str, ip: &str) -> AppResult<()> {
        let c = &self.config;
        self.attempt(&[
            RateCounter {
                key: Self::email_and_ip_key(email, ip),
                limit: c.signin_per_email_and_ip,
            },
            RateCounter {
                key: Self::signin_ip_key(ip),
                limit: c.signin_per_ip,
            },
            RateCounter {
                key: Self::signin_email_key(email),
                limit: c.signin_per_email,
            },
        ])
        .await
    }

    async fn sign_in_succeeded(&self, email: &str, ip: &str) -> AppResult<()> {
        self.store
            .refund(&[Self::email_and_ip_key(email, ip), Self::signin_ip_key(ip)])
            .await
    }

    async fn passkey_attempt(&self, ip: &str) -> AppResult<()> {
        self.attempt(&[RateCounter {
            key: Self::signin_ip_key(ip),
            limit: self.config.signin_per_ip,
        }])
        .await
    }

    async fn passkey_succeeded(&self, ip: &str) -> AppResult<()> {
        // Both counts of a sign-in that happened: its start's and its finish's.
        self.store.refund(&[Self::signin_ip_key(ip)]).await?;
        self.store.refund(&[Self::signin_ip_key(ip)]).await
    }

    async fn sign_up_attempt(&self, ip: &str) -> AppResult<()> {
        self.attempt(&[RateCounter {
            key: format!("{KEY_PREFIX}signup:ip:{}", source(ip)),
            limit: self.config.signup_per_ip,
        }])
        .await
    }

    async fn reset_request_attempt(&self, ip: &str) -> AppResult<()> {
        self.attempt(&[RateCounter {
            key: format!("{KEY_PREFIX}reset:ip:{}", source(ip)),
            limit: self.config.reset_per_ip,
        }])
        .await
    }

    async fn reset_mail_attempt(&self, email: &str) -> AppResult<()> {
        self.attempt(&[RateCounter {
            key: format!("{KEY_PREFIX}reset:email:{}", email_digest(email)),
            limit: self.config.mails_per_account,
        }])
        .await
    }

    async fn verification_mail_attempt(&self, uid: Uuid) -> AppResult<()> {
        self.attempt(&[RateCounter {
            key: format!("{KEY_PREFIX}verify:user:{uid}"),
            limit: self.config.mails_per_account,
        }])
        .await
    }

    async fn client_auth_attempt(&self, client_id: &str, ip: &str) -> AppResult<()> {
        let c = &self.config;
        self.attempt(&[
            RateCounter {
                key: Self::client_id_and_ip_key(client_id, ip),
                limit: c.client_auth_per_id_and_ip,
            },
            RateCounter {
                key: Self::client_ip_key(ip),
                limit: c.client_auth_per_ip,
            },
        ])
        .await
    }

    async fn client_auth_succeeded(&self, client_id: &str, ip: &str) -> AppResult<()> {
        self.store
            .refund(&[
                Self::client_id_and_ip_key(client_id, ip),
                Self::client_ip_key(ip),
            ])
            .await
    }

    async fn link_token_attempt(&self, ip: &str) -> AppResult<()> {
        self.attempt(&[RateCounter {
            key: Self::link_ip_key(ip),
            limit: self.config.link_tokens_per_ip,
        }])
        .await
    }

    async fn link_token_succeeded(&self, ip: &str) -> AppResult<()> {
        self.store.refund(&[Self::link_ip_key(ip)]).await
    }

    async fn mfa_attempt(&self, uid: Uuid) -> AppResult<()> {
        self.attempt(&[RateCounter {
            key: Self::mfa_key(uid),
            limit: self.config.mfa_per_user,
        }])
        .await
    }

    async fn mfa_succeeded(&self, uid: Uuid) -> AppResult<()> {
        self.store.refund(&[Self::mfa_key(uid)]).await
    }

    async fn clear_sign_in(&self, email: &str, ip: &str) -> AppResult<()> {
        self.store
            .clear(&[
                Self::signin_email_key(email),
                Self::email_and_ip_key(email, ip),
            ])
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::model::interfaces::MockRateLimitRepository;

    const WINDOW: Duration = Duration::from_secs(300);
    const EMAIL: &str = "ada@example.com";
    /// `printf %s ada@example.com | sha256sum`
    const EMAIL_SHA256: &str = "b5fc85e55755f9e0d030a10ab4429b6b2944855f9a0d60077fe832becbc41d72";

    fn config() -> RateLimitConfig {
        RateLimitConfig {
            window: WINDOW,
            signin_per_email_and_ip: 10,
            signin_per_ip: 30,
            signin_per_email: 100,
            signup_per_ip: 5,
            reset_per_ip: 30,
            mails_per_account: 3,
            client_auth_per_id_and_ip: 30,
            client_auth_per_ip: 40,
            link_tokens_per_ip: 50,
            mfa_per_user: 5,
        }
    }

    fn service(store: MockRateLimitRepository) -> RateLimitServiceImpl {
        RateLimitServiceImpl::new(Arc::new(store), config())
    }

    /// A store that lets everything in and records what it was asked to count.
    fn recording() -> (MockRateLimitRepository, Arc<Mutex<Vec<RateCounter>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut store = MockRateLimitRepository::new();
        let record = Arc::clone(&seen);
        store
            .expect_attempt()
            .times(1)
            .returning(move |counters, window| {
                assert_eq!(window, WINDOW);
                record.lock().unwrap().extend_from_slice(counters);
                Ok(RateDecision::Allowed)
            });
        (store, seen)
    }

    #[test]
    fn the_email_digest_is_sha256_of_the_lowercase_email() {
        assert_eq!(email_digest(EMAIL), EMAIL_SHA256);
        assert_eq!(email_digest("Ada@Example.COM"), EMAIL_SHA256);
    }

    #[test]
    fn a_source_is_an_ipv4_address_or_an_ipv6_64() {
        assert_eq!(source("192.0.2.7"), "192.0.2.7");
        assert_eq!(source("::ffff:192.0.2.7"), "192.0.2.7", "IPv4-mapped");
        assert_eq!(source("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(source("2001:db8:1:2::ffff"), "2001:db8:1:2::/64");
        assert_eq!(source("::1"), "::/64");
        assert_eq!(source(""), "unknown");
        assert_eq!(source("not an address"), "unknown");
    }

    #[tokio::test]
    async fn a_sign_in_is_counted_per_email_and_source_per_source_and_per_email() {
        let (store, seen) = recording();
        service(store)
            .sign_in_attempt("Ada@example.com", "2001:db8::9")
            .await
            .unwrap();
        let counters = seen.lock().unwrap().clone();
        assert_eq!(
            counters,
            [
                RateCounter {
                    key: format!("ratelimit:signin:email-ip:{EMAIL_SHA256}:2001:db8::/64"),
                    limit: 10,
                },
                RateCounter {
                    key: "ratelimit:signin:ip:2001:db8::/64".into(),
                    limit: 30,
                },
                RateCounter {
                    key: format!("ratelimit:signin:email:{EMAIL_SHA256}"),
                    limit: 100,
                },
            ]
        );
        assert!(counters.iter().all(|c| !c.key.contains("ada")));
    }

    #[tokio::test]
    async fn a_sign_up_is_counted_per_source() {
        let (store, seen) = recording();
        service(store).sign_up_attempt("192.0.2.7").await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [RateCounter {
                key: "ratelimit:signup:ip:192.0.2.7".into(),
                limit: 5,
            }]
        );
    }

    #[tokio::test]
    async fn a_reset_request_is_counted_per_source_and_its_mail_per_email() {
        let (store, seen) = recording();
        service(store)
            .reset_request_attempt("::ffff:192.0.2.7")
            .await
            .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [RateCounter {
                key: "ratelimit:reset:ip:192.0.2.7".into(),
                limit: 30,
            }]
        );
        let (store, seen) = recording();
        service(store)
            .reset_mail_attempt("Ada@Example.com")
            .await
            .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [RateCounter {
                key: format!("ratelimit:reset:email:{EMAIL_SHA256}"),
                limit: 3,
            }]
        );
    }

    #[tokio::test]
    async fn a_resent_verification_mail_is_counted_per_user() {
        let (store, seen) = recording();
        let uid = Uuid::from_u128(0x1234);
        service(store).verification_mail_attempt(uid).await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [RateCounter {
                key: format!("ratelimit:verify:user:{uid}"),
                limit: 3,
            }]
        );
    }

    #[tokio::test]
    async fn clearing_a_sign_in_removes_the_email_and_the_email_and_source_counters() {
        let mut store = MockRateLimitRepository::new();
        store
            .expect_clear()
            .withf(|keys| {
                keys == [
                    format!("ratelimit:signin:email:{EMAIL_SHA256}"),
                    format!("ratelimit:signin:email-ip:{EMAIL_SHA256}:192.0.2.7"),
                ]
            })
            .times(1)
            .returning(|_| Ok(()));
        service(store)
            .clear_sign_in(EMAIL, "192.0.2.7")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_refused_attempt_is_too_many_requests_with_whole_seconds_to_wait() {
        for (wait, secs) in [
            (Duration::from_millis(2_300), 2 + 1),
            (Duration::from_secs(7), 7),
            (Duration::ZERO, 1),
            (Duration::from_secs(10_000), WINDOW.as_secs()),
        ] {
            let mut store = MockRateLimitRepository::new();
            store
                .expect_attempt()
                .times(5)
                .returning(move |_, _| Ok(RateDecision::Limited { retry_after: wait }));
            let svc = service(store);
            for err in [
                svc.sign_in_attempt(EMAIL, "192.0.2.7").await.unwrap_err(),
                svc.sign_up_attempt("192.0.2.7").await.unwrap_err(),
                svc.reset_request_attempt("192.0.2.7").await.unwrap_err(),
                svc.reset_mail_attempt(EMAIL).await.unwrap_err(),
                svc.verification_mail_attempt(Uuid::nil())
                    .await
                    .unwrap_err(),
            ] {
                assert!(
                    matches!(err, AppError::TooManyRequests { retry_after_secs } if retry_after_secs == secs),
                    "{wait:?}: {err:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_success_gives_back_the_email_and_source_and_the_source_counts_only() {
        let mut store = MockRateLimitRepository::new();
        store
            .expect_refund()
            .withf(|keys| {
                keys == [
                    format!("ratelimit:signin:email-ip:{EMAIL_SHA256}:192.0.2.7"),
                    "ratelimit:signin:ip:192.0.2.7".to_owned(),
                ]
            })
            .times(1)
            .returning(|_| Ok(()));
        service(store)
            .sign_in_succeeded(EMAIL, "::ffff:192.0.2.7")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_client_authentication_is_counted_per_hashed_client_id_and_source_and_per_source() {
        let (store, seen) = recording();
        service(store)
            .client_auth_attempt("cl_abc", "192.0.2.7")
            .await
            .unwrap();
        let id_sha256 = hex_sha256("cl_abc");
        assert_eq!(
            *seen.lock().unwrap(),
            [
                RateCounter {
                    key: format!("ratelimit:client:id-ip:{id_sha256}:192.0.2.7"),
                    limit: 30,
                },
                RateCounter {
                    key: "ratelimit:client:ip:192.0.2.7".into(),
                    limit: 40,
                },
            ]
        );
        let mut store = MockRateLimitRepository::new();
        store
            .expect_refund()
            .withf(move |keys| {
                keys == [
                    format!("ratelimit:client:id-ip:{}:192.0.2.7", hex_sha256("cl_abc")),
                    "ratelimit:client:ip:192.0.2.7".to_owned(),
                ]
            })
            .times(1)
            .returning(|_| Ok(()));
        service(store)
            .client_auth_succeeded("cl_abc", "192.0.2.7")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_link_token_is_counted_per_source_and_given_back_when_it_works() {
        let (store, seen) = recording();
        service(store)
            .link_token_attempt("2001:db8::1")
            .await
            .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [RateCounter {
                key: "ratelimit:link:ip:2001:db8::/64".into(),
                limit: 50,
            }]
        );
        let mut store = MockRateLimitRepository::new();
        store
            .expect_refund()
            .withf(|keys| keys == ["ratelimit:link:ip:2001:db8::/64".to_owned()])
            .times(1)
            .returning(|_| Ok(()));
        service(store)
            .link_token_succeeded("2001:db8::1")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_store_that_does_not_answer_is_passed_on() {
        let mut store = MockRateLimitRepository::new();
        store
            .expect_attempt()
            .returning(|_, _| Err(AppError::unavailable("token store is unavailable")));
        let err = service(store)
            .sign_in_attempt(EMAIL, "192.0.2.7")
            .await
            .unwrap_err();
        assert!(
            matches!(err, AppError::ServiceUnavailable { .. }),
            "{err:?}"
        );
    }
}
