//! Small HTTP pieces shared by the account service's extractors, the
//! verifier's extractor and the todo example: the JSON content-type check,
//! `Authorization: Bearer` parsing and the product's JSON error body
//! (`{"error": {"type", "message", "invalidArgs"?}}`).

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Whether `Content-Type` is JSON: `application/json` or
/// `application/<anything>+json`, in any letter case, with any parameters.
pub fn is_json(headers: &HeaderMap) -> bool {
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

/// Why a request carries no usable bearer token. The messages are the ones
/// clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization` header at all.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    Malformed,
}

impl BearerError {
    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "missing Authorization: Bearer header",
            Self::Malformed => "Authorization header must be `Bearer <ID token>`",
        }
    }
}

impl std::fmt::Display for BearerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for BearerError {}

/// The token of `Authorization: Bearer <token>`: the scheme in any letter
/// case, one space, the token (surrounding whitespace removed, not empty).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(BearerError::Missing)?;
    value
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or(BearerError::Malformed)
}

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

/// The product's error body; `invalidArgs` only when there are any.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[InvalidArg]>::is_empty")]
    invalid_args: &'a [InvalidArg],
}

impl<'a> ErrorBody<'a> {
    /// `{"error": {"type": kind, "message": message}}`.
    pub fn new(kind: &'a str, message: &'a str) -> Self {
        Self::with_invalid_args(kind, message, &[])
    }

    /// `{"error": {"type": kind, "message": message, "invalidArgs": [...]}}`
    /// (`invalidArgs` left out when empty).
    pub fn with_invalid_args(
        kind: &'a str,
        message: &'a str,
        invalid_args: &'a [InvalidArg],
    ) -> Self {
        Self {
            error: ErrorDetail {
                kind,
                message,
                invalid_args,
            },
        }
    }

    /// A JSON response with this body.
    pub fn response(self, status: StatusCode) -> Response {
        (status, Json(self)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use http_body_util::BodyExt as _;
    use serde_json::{Value, json};

    use super::*;

    fn with(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn json_content_types_are_recognised() {
        for value in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ;charset=utf-8",
            "application/problem+json",
            "application/vnd.api+json",
        ] {
            assert!(is_json(&with(header::CONTENT_TYPE, value)), "{value}");
        }
        for value in [
            "text/plain",
            "text/json",
            "application/jsonp",
            "application/json-seq",
            "",
        ] {
            assert!(!is_json(&with(header::CONTENT_TYPE, value)), "{value}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn a_bearer_token_is_read_in_any_scheme_case_and_trimmed() {
        for (value, token) in [
            ("Bearer abc.def.ghi", "abc.def.ghi"),
            ("bearer abc", "abc"),
            ("BEARER abc", "abc"),
            ("Bearer   abc  ", "abc"),
        ] {
            assert_eq!(
                bearer_token(&with(header::AUTHORIZATION, value)),
                Ok(token),
                "{value}"
            );
        }
    }

    #[test]
    fn a_missing_header_and_a_malformed_one_are_told_apart() {
        assert_eq!(bearer_token(&HeaderMap::new()), Err(BearerError::Missing));
        for value in [
            "Basic dXNlcjpwdw==",
            "Bearer",
            "Bearer ",
            "Bearer    ",
            "token",
            "Bearerabc",
            " Bearer abc",
        ] {
            assert_eq!(
                bearer_token(&with(header::AUTHORIZATION, value)),
                Err(BearerError::Malformed),
                "{value:?}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(bearer_token(&headers), Err(BearerError::Malformed));
        for err in [BearerError::Missing, BearerError::Malformed] {
            assert_eq!(err.to_string(), err.message());
        }
    }

    async fn body_of(response: Response) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn the_error_body_lists_invalid_args_only_when_there_are_any() {
        let response = ErrorBody::new("NOT_FOUND", "no such todo").response(StatusCode::NOT_FOUND);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body_of(response).await,
            json!({"error": {"type": "NOT_FOUND", "message": "no such todo"}})
        );
        let args = [InvalidArg::new("title", "is required")];
        let response =
            ErrorBody::with_invalid_args("BAD_REQUEST", "invalid request parameters", &args)
                .response(StatusCode::BAD_REQUEST);
        assert_eq!(
            body_of(response).await,
            json!({"error": {
                "type": "BAD_REQUEST",
                "message": "invalid request parameters",
                "invalidArgs": [{"field": "title", "message": "is required"}],
            }})
        );
    }
}
