//! Extractors whose rejections are the app's own errors, so malformed bodies,
//! wrong content types, oversize bodies and bad credentials all answer in the
//! one JSON shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::AppState;
use crate::error::{AppError, InvalidArg};
use crate::http_util::{bearer_token, is_json};
use crate::model::IdTokenClaims;

/// A JSON body: 415 unless `Content-Type` is JSON, 413 over the body limit,
/// 400 for malformed JSON, 400 with `invalidArgs` for a field of the wrong type.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(AppError::UnsupportedMediaType(
                "expected a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge("request body is too large".into())
            } else {
                AppError::bad_request("could not read the request body")
            }
        })?;
        // Every body of this API is an object; serde would also take a struct
        // from a positional array, which no client should rely on.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(AppError::bad_request("request body must be a JSON object"));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let field = err.path().to_string();
            let inner = err.into_inner();
            match inner.classify() {
                Category::Data => {
                    // serde_json appends " at line L column C": not for clients.
                    let message = inner.to_string();
                    let message = message
                        .rsplit_once(" at line ")
                        .map_or(message.as_str(), |(m, _)| m)
                        .to_owned();
                    AppError::invalid_args(vec![InvalidArg::new(field, message)])
                }
                _ => AppError::bad_request("malformed JSON body"),
            }
        })?;
        deserializer
            .end()
            .map_err(|_| AppError::bad_request("malformed JSON body"))?;
        Ok(Self(value))
    }
}

/// The user of a request with a valid `Authorization: Bearer <ID token>`.
#[derive(Debug, Clone)]
pub struct AuthUser(pub IdTokenClaims);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token =
            bearer_token(&parts.headers).map_err(|e| AppError::unauthorized(e.message()))?;
        state.token_service.validate_id_token(token).map(AuthUser)
    }
}
