//! The todo service's errors, in the product's JSON shape
//! (`{"error": {"type", "message", "invalidArgs"?}}`), and the JSON body
//! extractor whose rejections are those errors.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

pub use crate::http_util::InvalidArg;
use crate::http_util::{ErrorBody, is_json};

/// Every failure the todo service answers with (authentication failures are
/// the verifier's [`crate::verifier::AuthRejection`], in the same shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400, with field errors when there are any.
    BadRequest {
        message: String,
        invalid_args: Vec<InvalidArg>,
    },
    /// 404
    NotFound(&'static str),
    /// 405
    MethodNotAllowed,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            invalid_args: Vec::new(),
        }
    }

    pub fn invalid_args(invalid_args: Vec<InvalidArg>) -> Self {
        Self::BadRequest {
            message: "invalid request parameters".into(),
            invalid_args,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (kind, message, invalid_args): (_, &str, &[InvalidArg]) = match &self {
            Self::BadRequest {
                message,
                invalid_args,
            } => ("BAD_REQUEST", message, invalid_args),
            Self::NotFound(message) => ("NOT_FOUND", message, &[]),
            Self::MethodNotAllowed => ("METHOD_NOT_ALLOWED", "method not allowed", &[]),
            Self::PayloadTooLarge => ("PAYLOAD_TOO_LARGE", "request body is too large", &[]),
            Self::UnsupportedMediaType => (
                "UNSUPPORTED_MEDIA_TYPE",
                "expected a JSON body with Content-Type: application/json",
                &[],
            ),
        };
        ErrorBody::with_invalid_args(kind, message, invalid_args).response(self.status())
    }
}

/// A JSON object body: 415 unless `Content-Type` is JSON, 413 over the body
/// limit, 400 when it is not a JSON object. Fields are checked by the handler,
/// which reports each bad one in `invalidArgs`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(object)) => Ok(Self(object)),
            Ok(_) => Err(ApiError::bad_request("request body must be a JSON object")),
            Err(_) => Err(ApiError::bad_request("malformed JSON body")),
        }
    }
}
