//! Response headers every service of ours sets.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Middleware: `X-Content-Type-Options: nosniff` on every response, and
/// `Cache-Control: no-store` on every response that does not set its own
/// (tokens and user data must never sit in a browser's or a proxy's cache;
/// a public key set says `public, max-age=…` itself).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    set_security_headers(response.headers_mut());
    response
}

/// What [`security_headers`] sets, for responses made outside the app (the
/// serving code's refusals).
pub fn set_security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}
