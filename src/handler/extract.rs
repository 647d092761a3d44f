//! The bearer-token extractor of the account API. Its rejections, like those
//! of the JSON body extractor ([`crate::web::JsonBody`]), are the app's own
//! errors, so bad credentials answer in the one JSON shape.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::AppState;
use crate::error::AppError;
use crate::model::IdClaims;
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
