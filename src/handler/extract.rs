//! The bearer-token extractor of the account API. Its rejections, like those
//! of the JSON body extractor ([`crate::web::JsonBody`]), are the app's own
//! errors, so bad credentials answer in the one JSON shape.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use ipnet::IpNet;

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

/// The proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`): an
/// address in one of these networks is a proxy of ours, never a client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks.into())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that came from `peer`: the peer itself,
    /// unless it is a trusted proxy; then the right-most `X-Forwarded-For`
    /// entry that is not a trusted proxy (each proxy appends the address it
    /// was reached from, so entries left of it are whatever the client
    /// wrote), or the left-most if all are. An entry that is not an address
    /// (with or without a port), or a header that is not text, gives the
    /// peer. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut entries = Vec::new();
        for value in headers.get_all(X_FORWARDED_FOR) {
            let Ok(text) = value.to_str() else {
                return peer;
            };
            entries.extend(text.split(',').map(str::trim));
        }
        let mut client = peer;
        for entry in entries.into_iter().rev() {
            let Some(ip) = parse_forwarded(entry) else {
                return peer;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// An `X-Forwarded-For` entry: an address, or an address with a port
/// (`192.0.2.1:443`, `[2001:db8::1]:443`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Who is calling, recorded with the session a request starts or refreshes
/// and counted by the sign-in and sign-up limits: the `User-Agent` header and
/// the client's address, the connection's peer or, when the peer is one of
/// the [`TrustedProxies`] (an extension the router adds), the address it
/// forwarded (`X-Forwarded-For` from anyone else is ignored: any client can
/// write it).
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
            .map(|ConnectInfo(addr)| {
                let proxies = parts.extensions.get::<TrustedProxies>();
                let ip = match proxies {
                    Some(proxies) => proxies.client_ip(addr.ip(), &parts.headers),
                    None => addr.ip().to_canonical(),
                };
                ip.to_string()
            })
            .unwrap_or_default();
        Ok(Self(ClientInfo::new(user_agent, &ip)))
    }
}

/// The id of a path like `/sessions/{id}`: 404 `not_found` (as for an id
/// that is not the caller's) unless it is a UUID.
pub(super) fn uuid_in_path(
    id: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    not_found: &str,
) -> Result<uuid::Uuid, AppError> {
    id.ok()
        .and_then(|axum::extract::Path(id)| uuid::Uuid::parse_str(&id).ok())
        .ok_or_else(|| AppError::NotFound(not_found.to_owned()))
}
