//! The axum extractor that turns `Authorization: Bearer <ID token>` into the
//! verified user, or into a 401 in the product's JSON error shape.

use axum::Json;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{VerifiedUser, Verifier, VerifyError};

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
        let token = bearer_token(&parts.headers)?;
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

fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthRejection> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthRejection::Missing(
            "missing Authorization: Bearer header",
        ))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or(AuthRejection::Missing(
            "Authorization header must be `Bearer <ID token>`",
        ))
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
        let body = json!({"error": {"type": kind, "message": message}});
        let mut response = (status, Json(body)).into_response();
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
