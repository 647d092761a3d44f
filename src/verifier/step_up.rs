//! Step-up (RFC 9470): a route that needs more than a valid token asks for
//! a stronger sign-in (`acr`) or a recent one (`auth_time`), and a token that
//! falls short is answered 401 with `WWW-Authenticate: Bearer
//! error="insufficient_user_authentication"` and what would do
//! (`acr_values="aal2"` or `max_age=300`), so the client knows to send the
//! person through sign-in again rather than refresh.
//!
//! In a domain service, one line on top of [`super::AuthenticatedUser`]:
//!
//! ```
//! use account::verifier::{AAL2, AuthenticatedUser, StepUp};
//!
//! async fn delete_everything(AuthenticatedUser(user): AuthenticatedUser) -> Result<&'static str, StepUp> {
//!     user.require_acr(AAL2)?;
//!     Ok("deleted")
//! }
//! ```

use axum::response::{IntoResponse, Response};

use super::validator::{AAL1, AAL2, IdClaims};
use crate::web::{ApiError, ErrorKind};

/// What a token lacked; an axum response of its own (401 with the RFC 9470
/// challenge, in the product's error shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepUp {
    /// A sign-in of this assurance (`acr`) is needed.
    Acr(&'static str),
    /// A sign-in at most this many seconds ago is needed.
    MaxAge(u64),
}

impl StepUp {
    /// The `WWW-Authenticate` challenge.
    pub fn challenge(&self) -> String {
        match self {
            Self::Acr(acr) => format!(
                r#"Bearer error="insufficient_user_authentication", error_description="a sign-in with a second factor is required", acr_values="{acr}""#
            ),
            Self::MaxAge(secs) => format!(
                r#"Bearer error="insufficient_user_authentication", error_description="a more recent sign-in is required", max_age={secs}"#
            ),
        }
    }

    /// The message of the error body.
    pub fn message(&self) -> String {
        match self {
            Self::Acr(acr) => format!("this needs a sign-in with a second factor ({acr})"),
            Self::MaxAge(secs) => format!(
                "this needs a sign-in within the last {secs} seconds, or the current password"
            ),
        }
    }
}

/// The rank of an assurance level: `aal1` < `aal2`; anything unknown ranks
/// lowest.
fn rank(acr: &str) -> u8 {
    match acr {
        AAL2 => 2,
        AAL1 => 1,
        _ => 0,
    }
}

impl IdClaims {
    /// `Ok` if the token's sign-in is at least `acr` (`aal2`); a token
    /// without `acr` counts as `aal1`.
    pub fn require_acr(&self, acr: &'static str) -> Result<(), StepUp> {
        if rank(self.acr()) >= rank(acr) {
            Ok(())
        } else {
            Err(StepUp::Acr(acr))
        }
    }

    /// `Ok` if the token's sign-in (`auth_time`) was at most `max_age`
    /// seconds before `now`; a token without `auth_time` never is.
    pub fn require_auth_within(&self, max_age: u64, now: u64) -> Result<(), StepUp> {
        match self.auth_time {
            Some(at) if now.saturating_sub(at) <= max_age => Ok(()),
            _ => Err(StepUp::MaxAge(max_age)),
        }
    }
}

impl From<StepUp> for ApiError {
    fn from(step_up: StepUp) -> Self {
        ApiError::new(ErrorKind::InsufficientUserAuthentication, step_up.message())
            .with_challenge(step_up.challenge())
    }
}

impl IntoResponse for StepUp {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::verifier::Audience;

    fn claims(acr: Option<&str>, auth_time: Option<u64>) -> IdClaims {
        let mut claims = IdClaims::new(
            Uuid::new_v4(),
            "account".into(),
            Audience::One("x".into()),
            1,
            2,
        );
        claims.acr = acr.map(str::to_owned);
        claims.auth_time = auth_time;
        claims
    }

    #[test]
    fn aal2_is_needed_where_asked_and_a_missing_acr_is_aal1() {
        assert_eq!(claims(Some("aal2"), None).require_acr(AAL2), Ok(()));
        assert_eq!(
            claims(Some("aal1"), None).require_acr(AAL2),
            Err(StepUp::Acr(AAL2))
        );
        assert_eq!(claims(None, None).require_acr(AAL2), Err(StepUp::Acr(AAL2)));
        assert_eq!(claims(None, None).require_acr(AAL1), Ok(()));
        assert_eq!(
            claims(Some("weird"), None).require_acr(AAL1),
            Err(StepUp::Acr(AAL1))
        );
    }

    #[test]
    fn a_recent_sign_in_is_within_max_age() {
        assert_eq!(
            claims(None, Some(1_000)).require_auth_within(300, 1_300),
            Ok(())
        );
        assert_eq!(
            claims(None, Some(1_000)).require_auth_within(300, 1_301),
            Err(StepUp::MaxAge(300))
        );
        assert_eq!(
            claims(None, None).require_auth_within(300, 1),
            Err(StepUp::MaxAge(300))
        );
    }

    #[tokio::test]
    async fn a_refusal_is_401_with_the_rfc_9470_challenge() {
        let response = StepUp::Acr(AAL2).into_response();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="insufficient_user_authentication", error_description="a sign-in with a second factor is required", acr_values="aal2""#
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["type"], "INSUFFICIENT_USER_AUTHENTICATION");
        let response = StepUp::MaxAge(300).into_response();
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .ends_with("max_age=300")
        );
    }
}
