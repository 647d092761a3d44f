//! Reading requests: the JSON content-type check, the JSON-body extractor
//! whose rejections are [`ApiError`]s, and `Authorization: Bearer` parsing.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::{ApiError, InvalidArg};

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

/// The message of a field refused for its characters (see [`JsonBody`]).
pub const NOT_TEXT: &str = "must not contain NUL or other control characters";

/// Whether `field` (a JSON field name) holds a password: the only values
/// that may hold control characters other than NUL (a tab, say), since they
/// are hashed, never stored or compared as they are.
fn is_password_field(field: &str) -> bool {
    field.to_ascii_lowercase().contains("password")
}

/// The characters no store of ours can hold, or that have no business in an
/// identifier, a token, an email or a name: NUL anywhere, and other control
/// characters (C0, DEL, C1) unless `password`, but for the whitespace around
/// the value (tabs, line ends), which every reader of such a value trims.
pub fn holds_control_characters(value: &str, password: bool) -> bool {
    value.contains('\0') || (!password && value.trim().chars().any(char::is_control))
}

/// The first string of `value` (an object's keys included) that
/// [`holds_control_characters`], as a field path (`user.email`, `items[0]`).
fn control_characters_in(value: &serde_json::Value, path: &str, password: bool) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => holds_control_characters(s, password).then(|| path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| control_characters_in(item, &format!("{path}[{i}]"), password)),
        Value::Object(fields) => fields.iter().find_map(|(name, item)| {
            let field = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if holds_control_characters(name, false) {
                return Some(field);
            }
            control_characters_in(item, &field, password || is_password_field(name))
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// A JSON object body, deserialized into `T`: 415 unless `Content-Type` is
/// JSON, 413 over the body limit, 400 when it is not one JSON object, 400 with
/// `invalidArgs` naming the field (as a path, e.g. `user.email`) whose value
/// has the wrong type, or holds NUL or another control character ([`NOT_TEXT`];
/// fields named like `password` may hold control characters but NUL). So no
/// store ever sees such input. All in the one error shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })?;
        // Every body of our APIs is an object; serde would also take a struct
        // from a positional array, which no client should rely on.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request("request body must be a JSON object"));
        }
        // First as a tree, for the characters of every string; then into `T`
        // from the bytes, which keeps serde's own errors (a duplicate field).
        let tree: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| ApiError::bad_request("malformed JSON body"))?;
        if let Some(field) = control_characters_in(&tree, "", false) {
            return Err(ApiError::invalid_args(vec![InvalidArg::new(
                field, NOT_TEXT,
            )]));
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
                    ApiError::invalid_args(vec![InvalidArg::new(field, message)])
                }
                _ => ApiError::bad_request("malformed JSON body"),
            }
        })?;
        deserializer
            .end()
            .map_err(|_| ApiError::bad_request("malformed JSON body"))?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    #[test]
    fn control_characters_are_found_in_any_string_but_a_passwords_may_hold_all_but_nul() {
        let found = |value: serde_json::Value| control_characters_in(&value, "", false);
        assert_eq!(found(json!({"email": "a@b.c", "name": "Ada"})), None);
        assert_eq!(found(json!({"name": "A\u{0}"})).as_deref(), Some("name"));
        assert_eq!(found(json!({"name": "A\u{7}da"})).as_deref(), Some("name"));
        assert_eq!(
            found(json!({"name": "A\u{9f}da"})).as_deref(),
            Some("name"),
            "C1"
        );
        assert_eq!(
            found(json!({"name": "A\u{7f}da"})).as_deref(),
            Some("name"),
            "DEL"
        );
        assert_eq!(
            found(json!({"name": " \tAda\r\n"})),
            None,
            "whitespace around"
        );
        assert_eq!(
            found(json!({"user": {"tags": ["ok", "b\u{1b}"]}})).as_deref(),
            Some("user.tags[1]")
        );
        assert_eq!(
            found(json!({"na\u{0}me": "x"})).as_deref(),
            Some("na\u{0}me"),
            "a key"
        );
        assert_eq!(found(json!({"newPassword": "tab\tinside"})), None);
        assert_eq!(
            found(json!({"currentPassword": "nul\u{0}"})).as_deref(),
            Some("currentPassword")
        );
        assert_eq!(found(json!({"n": 5, "b": true, "z": null})), None);
    }

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
}
