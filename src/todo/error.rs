//! The todo service's errors, in the product's JSON shape
//! (`{"error": {"type", "message", "invalidArgs"?}}`), and the JSON body
//! extractor whose rejections are those errors.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// A field that failed validation, as listed in `invalidArgs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidArg {
    pub field: String,
    pub message: String,
}

impl InvalidArg {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[InvalidArg]>::is_empty")]
    invalid_args: &'a [InvalidArg],
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
        let detail = ErrorDetail {
            kind,
            message,
            invalid_args,
        };
        (self.status(), Json(serde_json::json!({ "error": detail }))).into_response()
    }
}

/// A JSON object body: 415 unless `Content-Type` is JSON, 413 over the body
/// limit, 400 when it is not a JSON object. Fields are checked by the handler,
/// which reports each bad one in `invalidArgs`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonObject(pub Map<String, Value>);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

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
