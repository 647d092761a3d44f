//! The axum extractor that turns `Authorization: Bearer <ID token>` into the
//! verified claims, or into a 401 in the product's JSON error shape.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ClientClaims, IdClaims, Verifier, VerifyError};
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

/// A scope a route requires of a client's token: a marker type per scope.
///
/// ```
/// struct TodosRead;
/// impl account::verifier::Scope for TodosRead {
///     const SCOPE: &'static str = "todos:read";
/// }
/// ```
pub trait Scope {
    /// The scope's name, as in the token's `scope` claim.
    const SCOPE: &'static str;
}

/// The claims of a request whose bearer token is a client's access token
/// (the client-credentials grant) that verified and grants scope `S`.
///
/// A user's ID token is refused (401, as any token that is not a client's),
/// and a client token without `S::SCOPE` is 403 `insufficient_scope`
/// (RFC 6750 §3.1). Works with any state where `Verifier: FromRef<S>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedClient<S: Scope> {
    pub claims: ClientClaims,
    scope: PhantomData<fn() -> S>,
}

/// Why [`AuthenticatedClient`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRejection {
    /// No usable bearer token, or one that is not a valid client token: as
    /// [`AuthRejection`] (401, or 503 when the keys are unavailable).
    Auth(AuthRejection),
    /// A valid client token without the scope: 403 with
    /// `WWW-Authenticate: Bearer error="insufficient_scope", scope="<scope>"`.
    InsufficientScope(&'static str),
}

impl<S, St> FromRequestParts<St> for AuthenticatedClient<S>
where
    S: Scope,
    Verifier: FromRef<St>,
    St: Send + Sync,
{
    type Rejection = ClientRejection;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ClientRejection> {
        let token = bearer_token(&parts.headers)
            .map_err(|e| ClientRejection::Auth(AuthRejection::Missing(e.message())))?;
        let verifier = Verifier::from_ref(state);
        let claims = verifier
            .verify_client(token)
            .await
            .map_err(|err| ClientRejection::Auth(AuthRejection::Invalid(err)))?;
        if !claims.has_scope(S::SCOPE) {
            return Err(ClientRejection::InsufficientScope(S::SCOPE));
        }
        Ok(Self {
            claims,
            scope: PhantomData,
        })
    }
}

impl ClientRejection {
    /// 401, 403, or 503 when the keys are unavailable.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Auth(auth) => auth.status(),
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
        }
    }
}

impl IntoResponse for ClientRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Auth(auth) => auth.into_response(),
            Self::InsufficientScope(scope) => {
                let mut response = ApiError::new(
                    ErrorKind::Forbidden,
                    format!("the token does not grant the scope {scope}"),
                )
                .into_response();
                let challenge = format!(r#"Bearer error="insufficient_scope", scope="{scope}""#);
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                response
            }
        }
    }
}
