//! The single-use tokens of the account flows: 32 random bytes in base64url
//! (no padding, 43 characters) go into a link; the user store keeps their
//! SHA-256 only (a fast hash is right for a high-entropy token: nothing to
//! guess, and a leaked table holds no usable link).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{AppError, AppResult};
use crate::model::{
    AccountToken, AccountTokenRepository, AccountTokenService, TokenHolder, TokenPurpose, User,
};
use crate::secret::Secret;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// Characters of a token's text: 32 bytes in unpadded base64.
pub const TOKEN_CHARS: usize = 43;

/// [`AccountTokenService`] over an [`AccountTokenRepository`].
pub struct AccountTokenServiceImpl {
    repo: Arc<dyn AccountTokenRepository>,
    /// `VERIFY_TOKEN_EXP`
    verify_ttl: Duration,
    /// `RESET_TOKEN_EXP`
    reset_ttl: Duration,
}

impl AccountTokenServiceImpl {
    pub fn new(
        repo: Arc<dyn AccountTokenRepository>,
        verify_ttl: Duration,
        reset_ttl: Duration,
    ) -> Self {
        Self {
            repo,
            verify_ttl,
            reset_ttl,
        }
    }

    fn ttl(&self, purpose: TokenPurpose) -> Duration {
        match purpose {
            TokenPurpose::Verify => self.verify_ttl,
            TokenPurpose::Reset => self.reset_ttl,
        }
    }
}

/// What the store keeps of a token: its SHA-256.
fn token_hash(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// Whether `token` could be one of ours; anything else is refused without
/// asking the store.
fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl AccountTokenService for AccountTokenServiceImpl {
    async fn issue(&self, user: &User, purpose: TokenPurpose) -> AppResult<Secret> {
        let mut bytes = [0u8; TOKEN_BYTES];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| AppError::Internal(anyhow::anyhow!("no randomness for a token")))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = unix_now();
        self.repo
            .store_token(&AccountToken {
                token_hash: token_hash(&token),
                uid: user.uid,
                purpose,
                email: user.email.clone(),
                expires_at: now.saturating_add(self.ttl(purpose).as_secs()),
                created_at: now,
            })
            .await?;
        Ok(Secret::new(token))
    }

    async fn peek(&self, token: &str, purpose: TokenPurpose) -> AppResult<Option<TokenHolder>> {
        if !well_formed(token) {
            return Ok(None);
        }
        self.repo
            .find_token(&token_hash(token), purpose, unix_now())
            .await
    }

    async fn redeem(&self, token: &str, purpose: TokenPurpose) -> AppResult<Option<TokenHolder>> {
        if !well_formed(token) {
            return Ok(None);
        }
        self.repo
            .take_token(&token_hash(token), purpose, unix_now())
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use uuid::Uuid;

    use super::*;
    use crate::model::interfaces::MockAccountTokenRepository;

    const VERIFY_TTL: Duration = Duration::from_secs(86_400);
    const RESET_TTL: Duration = Duration::from_secs(3_600);

    fn service(repo: MockAccountTokenRepository) -> AccountTokenServiceImpl {
        AccountTokenServiceImpl::new(Arc::new(repo), VERIFY_TTL, RESET_TTL)
    }

    fn user() -> User {
        User {
            uid: Uuid::from_u128(0x1234),
            email: "ada@example.com".into(),
            password_hash: String::new(),
            name: String::new(),
            image_url: String::new(),
            website: String::new(),
            email_verified: false,
            must_verify: false,
            pending_email: None,
            has_factor: false,
        }
    }

    fn holder() -> TokenHolder {
        TokenHolder {
            uid: user().uid,
            email: user().email,
        }
    }

    #[test]
    fn the_stored_hash_is_the_sha256_of_the_text() {
        // printf %s abc | sha256sum
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let hex: String = token_hash("abc")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, expected);
    }

    #[tokio::test]
    async fn a_token_is_32_random_bytes_in_base64url_stored_by_its_hash_with_its_expiry() {
        let stored = Arc::new(Mutex::new(Vec::<AccountToken>::new()));
        let mut repo = MockAccountTokenRepository::new();
        let record = Arc::clone(&stored);
        repo.expect_store_token().times(3).returning(move |token| {
            record.lock().unwrap().push(token.clone());
            Ok(())
        });
        let svc = service(repo);
        let before = unix_now();
        let verify = svc.issue(&user(), TokenPurpose::Verify).await.unwrap();
        let reset = svc.issue(&user(), TokenPurpose::Reset).await.unwrap();
        let again = svc.issue(&user(), TokenPurpose::Reset).await.unwrap();
        let after = unix_now();
        let stored = stored.lock().unwrap().clone();
        for (text, token, ttl, purpose) in [
            (&verify, &stored[0], VERIFY_TTL, TokenPurpose::Verify),
            (&reset, &stored[1], RESET_TTL, TokenPurpose::Reset),
        ] {
            let text = text.expose();
            assert_eq!(text.len(), TOKEN_CHARS);
            assert_eq!(URL_SAFE_NO_PAD.decode(text).unwrap().len(), TOKEN_BYTES);
            assert!(well_formed(text), "{text}");
            assert_eq!(token.token_hash, token_hash(text), "stored by its hash");
            assert_eq!(
                (token.uid, token.email.as_str(), token.purpose),
                (user().uid, "ada@example.com", purpose)
            );
            assert!((before..=after).contains(&token.created_at));
            assert_eq!(token.expires_at - token.created_at, ttl.as_secs());
        }
        assert_ne!(reset.expose(), again.expose(), "random");
        assert!(!format!("{reset:?}").contains(reset.expose()), "redacted");
    }

    #[tokio::test]
    async fn peek_and_redeem_look_a_token_up_by_its_hash_for_its_purpose() {
        let token = URL_SAFE_NO_PAD.encode([7u8; TOKEN_BYTES]);
        let hash = token_hash(&token);
        let mut repo = MockAccountTokenRepository::new();
        let (h, now) = (hash.clone(), unix_now());
        repo.expect_find_token()
            .withf(move |hash, purpose, at| {
                *hash == h[..] && *purpose == TokenPurpose::Reset && *at >= now
            })
            .times(1)
            .returning(|_, _, _| Ok(Some(holder())));
        let h = hash.clone();
        repo.expect_take_token()
            .withf(move |hash, purpose, at| {
                *hash == h[..] && *purpose == TokenPurpose::Verify && *at >= now
            })
            .times(1)
            .returning(|_, _, _| Ok(Some(holder())));
        let svc = service(repo);
        assert_eq!(
            svc.peek(&token, TokenPurpose::Reset).await.unwrap(),
            Some(holder())
        );
        assert_eq!(
            svc.redeem(&token, TokenPurpose::Verify).await.unwrap(),
            Some(holder())
        );
    }

    #[tokio::test]
    async fn a_malformed_token_is_refused_without_asking_the_store() {
        let mut repo = MockAccountTokenRepository::new();
        repo.expect_find_token().never();
        repo.expect_take_token().never();
        let svc = service(repo);
        let good = URL_SAFE_NO_PAD.encode([7u8; TOKEN_BYTES]);
        for bad in [
            String::new(),
            "short".to_owned(),
            format!("{good}A"),
            good.replace(&good[..1], "+"),
            format!("{}=", &good[..42]),
            format!("{}é", &good[..41]),
        ] {
            assert_eq!(svc.peek(&bad, TokenPurpose::Reset).await.unwrap(), None);
            assert_eq!(
                svc.redeem(&bad, TokenPurpose::Verify).await.unwrap(),
                None,
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_store_that_does_not_answer_is_passed_on() {
        let mut repo = MockAccountTokenRepository::new();
        repo.expect_store_token()
            .returning(|_| Err(AppError::unavailable("database is unavailable")));
        let err = service(repo)
            .issue(&user(), TokenPurpose::Verify)
            .await
            .unwrap_err();
        assert!(
            matches!(err, AppError::ServiceUnavailable { .. }),
            "{err:?}"
        );
    }
}
