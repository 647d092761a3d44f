//! The axum extractor that turns `Authorization: Bearer <ID token>` into the
//! verified user, or into a 401 in the product's JSON error shape.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{VerifiedUser, Verifier, VerifyError};
use crate::http_util::{ErrorBody, bearer_token};

/// The user of a request whose bearer ID token verified.
///
/// Works with any router state `S` where `Verifier: FromRef<S>`: the
/// [`Verifier`] itself (it is a cheap clone), or a struct holding one with
/// `#[derive(FromRef)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser(pub VerifiedUser);

/// Why [`AuthenticatedUser`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRejection {
    /// No `Authorization: Bearer <token>` header: 401 with
    /// `WWW-Authenticate: Bearer`.
    Missing(&'static str),
    /// The token does not verify: 401 with
    /// `WWW-Authenticate: Bearer error="invalid_token"`; or 503 when the keys
    /// could not be fetched ([`VerifyError::KeysUnavailable`]).
    Invalid(VerifyError),
}

impl<S> FromRequestParts<S> for AuthenticatedUser
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        let token =
            bearer_token(&parts.headers).map_err(|e| AuthRejection::Missing(e.message()))?;
        let verifier = Verifier::from_ref(state);
        match verifier.verify(token).await {
            Ok(user) => Ok(Self(user)),
            Err(err) => {
                // The reason only; never the token.
                tracing::debug!(reason = %err, "bearer token refused");
                Err(AuthRejection::Invalid(err))
            }
        }
    }
}

impl AuthRejection {
    /// 401, or 503 when the keys are unavailable.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(VerifyError::KeysUnavailable) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let (kind, message, challenge) = match &self {
            Self::Missing(message) => ("AUTHORIZATION", (*message).to_owned(), Some("Bearer")),
            Self::Invalid(VerifyError::KeysUnavailable) => (
                "SERVICE_UNAVAILABLE",
                VerifyError::KeysUnavailable.to_string(),
                None,
            ),
            Self::Invalid(err) => (
                "AUTHORIZATION",
                err.to_string(),
                Some(r#"Bearer error="invalid_token""#),
            ),
        };
        let mut response = ErrorBody::new(kind, &message).response(status);
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
