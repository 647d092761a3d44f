//! The published verification keys, for domain services (RFC 7517).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::openapi::tags;
use crate::jwks::JwkSet;

/// `GET /.well-known/jwks.json`: every published public key; cacheable for
/// five minutes (a new key is published before it signs, see `keys stage`).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = tags::KEYS,
    summary = "The public keys of ID tokens",
    description = "Every published RS256 public key, as an RFC 7517 key set; an ID token's \
                   `kid` names its key (the RFC 7638 thumbprint). A new key is published \
                   before it signs.",
    responses(
        (status = 200, description = "The key set", body = JwkSet,
         headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
    )
)]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.account.jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
