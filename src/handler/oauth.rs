//! `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4) for
//! machine clients registered with `account clients add`.
//!
//! This endpoint speaks OAuth, not the service's error shape: a refused
//! request is `{"error", "error_description"}` with an RFC 6749 §5.2 code
//! (`invalid_request`, `invalid_client` with 401 and `WWW-Authenticate:
//! Basic`, `unsupported_grant_type`, `invalid_scope`, and `too_many_requests`
//! with 429 and `Retry-After` past `CLIENT_AUTH_RATE_LIMIT` or
//! `CLIENT_AUTH_IP_RATE_LIMIT` failed authentications). Only 500 and 503 (a
//! bug, a store down) leave in the service's shape. Every answer carries
//! `Cache-Control: no-store` and `Pragma: no-cache`.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::{ServerErrors, tags};
use super::{AppState, Client};
use crate::error::AppError;
use crate::model::{ClientInfo, ClientTokenError};
use crate::web::{ApiError, holds_control_characters};

/// The form of a token request (`application/x-www-form-urlencoded`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    grant_type: Option<String>,
    /// Space-separated scopes, each one the client has; omitted: all of them.
    scope: Option<String>,
    /// With `client_secret`, instead of HTTP Basic authentication.
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// A token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// An RS256 JWT (RFC 9068, header `typ: at+jwt`), verifiable with the
    /// published keys (`/.well-known/jwks.json`).
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds (`CLIENT_TOKEN_EXP`).
    expires_in: u64,
    /// The granted scopes, space-separated.
    scope: String,
}

/// An OAuth error (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`,
    /// `invalid_scope` or `too_many_requests`.
    error: &'static str,
    error_description: String,
}

/// A refused token request.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// `Retry-After`, in seconds (a 429).
    retry_after_secs: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            retry_after_secs: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    }

    fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// Too many failed client authentications from this address (or for
    /// this client from it): nothing was checked.
    fn too_many_requests(retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many failed client authentications; retry after Retry-After seconds",
            )
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut response = (
            self.status,
            Json(OAuthErrorBody {
                error: self.error,
                error_description: self.description,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        no_store(headers);
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="account""#),
            );
        }
        response
    }
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Decodes one form-urlencoded value (RFC 6749 §2.3.1: Basic credentials
/// are form-encoded before base64).
fn form_decoded(raw: &str) -> String {
    url::form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The client id and secret of `Authorization: Basic …`: `None` without
/// that header, an error when it is malformed.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| OAuthError::invalid_client())?;
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Err(OAuthError::invalid_client());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client());
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(OAuthError::invalid_client)?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    Ok(Some((form_decoded(id), form_decoded(secret))))
}

/// `POST /oauth/token`
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = tags::OAUTH,
    summary = "An access token for a machine client (client-credentials grant)",
    description = "RFC 6749 §4.4. The client authenticates with HTTP Basic \
                   (`client_id:client_secret`) or with `client_id` and `client_secret` in \
                   the form, not both. The token is an RS256 JWT in the RFC 9068 profile \
                   (header `typ: at+jwt`; claims `sub` and `client_id` = the client id, \
                   `iss`, `aud`, `scope`, `iat`, `exp`, `jti`), signed with the active key \
                   of `/.well-known/jwks.json`. It is never accepted where a user's ID \
                   token is. Errors use OAuth's shape (RFC 6749 §5.2), not `ErrorBody`, \
                   except 500 and 503.",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The access token", body = TokenResponse,
         headers(("Cache-Control" = String, description = "`no-store`"),
                 ("Pragma" = String, description = "`no-cache`"))),
        (status = 400, description = "`invalid_request` (not a form, a parameter missing \
                                      or repeated, two authentication methods), \
                                      `unsupported_grant_type` or `invalid_scope`",
         body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`: no client authentication, an \
                                      unknown client or a wrong secret",
         body = OAuthErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Basic realm=\"account\"`"))),
        (status = 429, description = "`too_many_requests`: too many failed client \
                                      authentications from this address \
                                      (`CLIENT_AUTH_IP_RATE_LIMIT`), or for this client from \
                                      it (`CLIENT_AUTH_RATE_LIMIT`); nothing was checked",
         body = OAuthErrorBody,
         headers(("Retry-After" = u64, description = "Seconds until a new attempt is counted"))),
        ServerErrors,
    )
)]
pub async fn token(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    match issue(&state, &client, &headers, form).await {
        Ok(response) => response,
        Err(Issue::OAuth(err)) => err.into_response(),
        Err(Issue::Failed(err)) => {
            let mut response = err.into_response();
            no_store(response.headers_mut());
            response
        }
    }
}

enum Issue {
    OAuth(OAuthError),
    Failed(ApiError),
}

impl From<OAuthError> for Issue {
    fn from(err: OAuthError) -> Self {
        Self::OAuth(err)
    }
}

async fn issue(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Result<Response, Issue> {
    let Form(form) = form.map_err(|rejection| {
        OAuthError::invalid_request(format!(
            "expected an application/x-www-form-urlencoded body with each parameter once: {}",
            rejection.body_text()
        ))
    })?;
    let basic = basic_credentials(headers)?;
    let credentials = match (basic, form.client_id, form.client_secret) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: HTTP Basic or the form, not both",
            )
            .into());
        }
        (Some(credentials), None, None) => Some(credentials),
        (None, Some(id), Some(secret)) => Some((id, secret)),
        (None, Some(_), None) => {
            return Err(OAuthError::invalid_request("client_secret is missing").into());
        }
        (None, None, Some(_)) => {
            return Err(OAuthError::invalid_request("client_id is missing").into());
        }
        (None, None, None) => None,
    };
    match form.grant_type.as_deref() {
        None | Some("") => {
            return Err(OAuthError::invalid_request("grant_type is missing").into());
        }
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            )
            .into());
        }
    }
    let Some((client_id, client_secret)) = credentials else {
        return Err(OAuthError::invalid_client().into());
    };
    // Never a client of ours, and never to reach a store that cannot hold it.
    if holds_control_characters(&client_id, false)
        || holds_control_characters(&client_secret, false)
    {
        return Err(OAuthError::invalid_client().into());
    }
    let scope = form.scope.filter(|s| !s.trim().is_empty());
    if scope
        .as_deref()
        .is_some_and(|s| holds_control_characters(s, false))
    {
        return Err(OAuthError::invalid_scope("the scope holds control characters").into());
    }
    let token = state
        .clients
        .issue_token(&client_id, &client_secret, scope, &client.ip)
        .await
        .map_err(|err| match err {
            ClientTokenError::InvalidClient => Issue::OAuth(OAuthError::invalid_client()),
            ClientTokenError::Failed(AppError::TooManyRequests { retry_after_secs }) => {
                Issue::OAuth(OAuthError::too_many_requests(retry_after_secs))
            }
            ClientTokenError::InvalidScope(description) => {
                Issue::OAuth(OAuthError::invalid_scope(description))
            }
            ClientTokenError::Failed(err) => Issue::Failed(ApiError::from(err)),
        })?;
    let mut response = Json(TokenResponse {
        access_token: token.access_token.expose().to_owned(),
        token_type: "Bearer",
        expires_in: token.expires_in,
        scope: token.scope,
    })
    .into_response();
    no_store(response.headers_mut());
    Ok(response)
}
