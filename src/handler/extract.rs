//! The bearer-token extractor of the account API. Its rejections, like those
//! of the JSON body extractor ([`crate::web::JsonBody`]), are the app's own
//! errors, so bad credentials answer in the one JSON shape.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use crate::error::AppError;
use crate::model::{ClientInfo, IdClaims};
use crate::web::bearer_token;

/// The claims of a request with a valid `Authorization: Bearer <ID token>`:
/// checked by the one ID-token validator, as domain services check it.
#[derive(Debug, Clone)]
pub struct AuthUser(pub IdClaims);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token =
            bearer_token(&parts.headers).map_err(|e| AppError::unauthorized(e.message()))?;
        state.account.authenticate(token).map(AuthUser)
    }
}

/// Who is calling, recorded with the session a request starts or refreshes:
/// the `User-Agent` header and the connection's peer address (not a
/// forwarded-for header, which any client can write).
#[derive(Debug, Clone, Default)]
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
            .unwrap_or_default();
        Ok(Self(ClientInfo::new(user_agent, &ip)))
    }
}
