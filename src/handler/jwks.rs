//! The published verification keys, for domain services (RFC 7517).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// `GET /.well-known/jwks.json`: every published public key; cacheable for
/// five minutes (a new key is published before it signs, see `keys stage`).
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.token_service.jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
