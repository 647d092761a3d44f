//! The axum extractor that turns `Authorization: Bearer <ID token>` into the
//! verified claims, or into a 401 in the product's JSON error shape.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::{IdClaims, Verifier, VerifyError};
use crate::web::{ApiError, ErrorKind, bearer_token};

/// The claims of a request whose bearer ID token verified (`sub` is the
/// user's uid).
///
/// Works with any router state `S` where `Verifier: FromRef<S>`: the
/// [`Verifier`] itself (it is a cheap clone), or a struct holding one with
/// `#[derive(FromRef)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser(pub IdClaims);

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
            Ok(claims) => Ok(Self(claims)),
            Err(err) => Err(AuthRejection::Invalid(err)),
        }
    }
}

impl AuthRejection {
    /// 401, or 503 when the keys are unavailable.
    pub fn status(&self) -> StatusCode {
        ApiError::from(self.clone()).kind().status()
    }
}

impl From<AuthRejection> for ApiError {
    fn from(rejection: AuthRejection) -> Self {
        match rejection {
            AuthRejection::Missing(message) => ApiError::unauthorized(message),
            AuthRejection::Invalid(VerifyError::KeysUnavailable) => ApiError::new(
                ErrorKind::ServiceUnavailable,
                VerifyError::KeysUnavailable.to_string(),
            ),
            AuthRejection::Invalid(err) => ApiError::invalid_token(err.to_string()),
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
