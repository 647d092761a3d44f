//! The token endpoint: one client-credentials request (RFC 6749 §4.4), and
//! the retry loop around it.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value;

use super::error::{ClientSecret, TokenError};
use super::policy::{RetryPolicy, random_unit};

/// What a successful token response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub expires_in: Option<Duration>,
}

/// How one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttemptError {
    /// Worth another attempt (5xx, 408, 429, connection errors, timeouts).
    Retryable(String),
    /// Worth another attempt, but not before `after` (a 429 or 503 with
    /// `Retry-After` in seconds).
    RetryAfter { reason: String, after: Duration },
    /// Not worth another attempt.
    Fatal(TokenError),
}

/// One request at the token endpoint.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub(crate) trait TokenSource: Send + Sync {
    async fn request(&self) -> Result<TokenResponse, AttemptError>;
}

/// Attempts until one succeeds, one fails for good, or the policy's attempts
/// are spent; between attempts, the policy's jittered backoff.
pub(crate) async fn fetch_with_retries(
    source: &dyn TokenSource,
    policy: &RetryPolicy,
) -> Result<TokenResponse, TokenError> {
    let attempts = policy.max_attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        match source.request().await {
            Ok(response) => return Ok(response),
            Err(AttemptError::Fatal(err)) => return Err(err),
            Err(AttemptError::Retryable(reason)) => {
                // At debug: the caller gets the last reason in the error.
                tracing::debug!(attempt, attempts, reason = %reason, "token endpoint attempt failed");
                last = reason;
            }
            Err(AttemptError::RetryAfter { reason, after }) => {
                tracing::debug!(attempt, attempts, reason = %reason, retry_after_ms = after.as_millis() as u64, "token endpoint attempt failed");
                // Never sooner than the endpoint asked; a wait longer than
                // the policy's longest delay is the caller's to decide.
                if attempt == attempts || after > policy.max_delay {
                    return Err(TokenError::Unavailable {
                        attempts: attempt,
                        last: reason,
                    });
                }
                tokio::time::sleep(after.max(policy.backoff_delay(attempt - 1, random_unit())))
                    .await;
                last = reason;
                continue;
            }
        }
        if attempt < attempts {
            tokio::time::sleep(policy.backoff_delay(attempt - 1, random_unit())).await;
        }
    }
    Err(TokenError::Unavailable { attempts, last })
}

/// The client-credentials grant over HTTP, the client authenticated with
/// `Authorization: Basic` (`client_secret_basic`).
pub(crate) struct HttpTokenSource {
    pub client: reqwest::Client,
    pub url: reqwest::Url,
    pub client_id: String,
    pub secret: ClientSecret,
    pub scope: Option<String>,
    pub timeout: Duration,
}

/// The answer bodies read are bounded: a token response is small.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[async_trait]
impl TokenSource for HttpTokenSource {
    async fn request(&self) -> Result<TokenResponse, AttemptError> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::AUTHORIZATION, self.basic_auth())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|err| AttemptError::Retryable(describe(&err)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_body(response).await.map_err(AttemptError::Retryable)?;
        if status.is_success() {
            return parse_success(&body).map_err(AttemptError::Fatal);
        }
        let code = status.as_u16();
        if status.is_server_error() || code == 408 || code == 429 {
            return Err(match retry_after {
                Some(after) => AttemptError::RetryAfter {
                    reason: format!("answered {status}, retry after {} s", after.as_secs()),
                    after,
                },
                None => AttemptError::Retryable(format!("answered {status}")),
            });
        }
        let (error, description) = parse_error(&body);
        Err(AttemptError::Fatal(TokenError::Endpoint {
            status: code,
            error,
            description,
        }))
    }
}

impl HttpTokenSource {
    /// RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
    fn basic_auth(&self) -> String {
        let pair = format!(
            "{}:{}",
            form_encode(&self.client_id),
            form_encode(self.secret.expose())
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A reqwest error with its causes, without the URL.
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut message = kind.to_owned();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| format!("reading the answer: {}", describe(&err)))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("the answer is over {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse_success(body: &[u8]) -> Result<TokenResponse, TokenError> {
    let protocol = |message: &str| TokenError::Protocol(message.to_owned());
    let value: Value = serde_json::from_slice(body).map_err(|_| protocol("not JSON"))?;
    let access_token = value
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| protocol("no access_token"))?;
    if access_token
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii())
    {
        return Err(protocol("the access_token is not a header-safe token"));
    }
    match value.get("token_type").and_then(Value::as_str) {
        Some(kind) if !kind.eq_ignore_ascii_case("bearer") => {
            return Err(TokenError::Protocol(format!(
                "token_type is {kind:?}, not Bearer"
            )));
        }
        _ => {}
    }
    let expires_in = match value.get("expires_in") {
        None | Some(Value::Null) => None,
        // A number, or (some servers) a string of digits.
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Duration::from_secs),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok().map(Duration::from_secs),
        Some(_) => None,
    };
    if value.get("expires_in").is_some_and(|v| !v.is_null()) && expires_in.is_none() {
        return Err(protocol("expires_in is not a number of seconds"));
    }
    Ok(TokenResponse {
        access_token: access_token.to_owned(),
        expires_in,
    })
}

fn parse_error(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .map(|s| s.chars().take(200).collect())
    };
    (field("error"), field("error_description"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_bodies_are_parsed_leniently_but_must_be_bearer_tokens() {
        let parse = |body: &str| parse_success(body.as_bytes());
        assert_eq!(
            parse(r#"{"access_token":"a","token_type":"Bearer","expires_in":300}"#),
            Ok(TokenResponse {
                access_token: "a".into(),
                expires_in: Some(Duration::from_secs(300))
            })
        );
        assert_eq!(
            parse(r#"{"access_token":"a","token_type":"bearer","expires_in":"60"}"#)
                .unwrap()
                .expires_in,
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse(r#"{"access_token":"a"}"#).unwrap().expires_in, None);
        for bad in [
            "nope",
            r#"{"token_type":"Bearer"}"#,
            r#"{"access_token":""}"#,
            r#"{"access_token":"a b"}"#,
            r#"{"access_token":"a","token_type":"mac"}"#,
            r#"{"access_token":"a","expires_in":"soon"}"#,
        ] {
            assert!(matches!(parse(bad), Err(TokenError::Protocol(_))), "{bad}");
        }
    }

    #[test]
    fn error_bodies_give_the_oauth_code_and_description() {
        assert_eq!(
            parse_error(br#"{"error":"invalid_client","error_description":"bad secret"}"#),
            (Some("invalid_client".into()), Some("bad secret".into()))
        );
        assert_eq!(parse_error(b"<html>"), (None, None));
    }

    #[test]
    fn credentials_are_form_encoded_before_basic() {
        assert_eq!(form_encode("a b:c/é"), "a+b%3Ac%2F%C3%A9");
        assert_eq!(form_encode("Az09-._*"), "Az09-._*");
    }

    fn ok() -> Result<TokenResponse, AttemptError> {
        Ok(TokenResponse {
            access_token: "t".into(),
            expires_in: None,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_failures_are_retried_with_backoff_then_reported() {
        let policy = RetryPolicy::default();
        let mut source = MockTokenSource::new();
        source
            .expect_request()
            .times(4)
            .returning(|| Err(AttemptError::Retryable("answered 503".into())));
        let start = tokio::time::Instant::now();
        let err = fetch_with_retries(&source, &policy).await.unwrap_err();
        assert_eq!(
            err,
            TokenError::Unavailable {
                attempts: 4,
                last: "answered 503".into()
            }
        );
        // Three delays, each between half its cap and its cap (200, 400, 800 ms).
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(700), "{waited:?}");
        assert!(waited <= Duration::from_millis(1400), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_that_succeeds_returns_the_token() {
        let mut source = MockTokenSource::new();
        let mut seq = mockall::Sequence::new();
        source
            .expect_request()
            .times(2)
            .in_sequence(&mut seq)
            .returning(|| Err(AttemptError::Retryable("cannot connect".into())));
        source
            .expect_request()
            .times(1)
            .in_sequence(&mut seq)
            .returning(ok);
        let token = fetch_with_retries(&source, &RetryPolicy::default()).await;
        assert_eq!(token.unwrap().access_token, "t");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_not_retried() {
        let mut source = MockTokenSource::new();
        let refusal = TokenError::Endpoint {
            status: 401,
            error: Some("invalid_client".into()),
            description: None,
        };
        let returned = refusal.clone();
        source
            .expect_request()
            .times(1)
            .returning(move || Err(AttemptError::Fatal(returned.clone())));
        let start = tokio::time::Instant::now();
        let err = fetch_with_retries(&source, &RetryPolicy::default()).await;
        assert_eq!(err, Err(refusal));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_for_and_a_long_one_ends_the_retries() {
        let mut source = MockTokenSource::new();
        let mut seq = mockall::Sequence::new();
        source
            .expect_request()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|| {
                Err(AttemptError::RetryAfter {
                    reason: "answered 429, retry after 3 s".into(),
                    after: Duration::from_secs(3),
                })
            });
        source
            .expect_request()
            .times(1)
            .in_sequence(&mut seq)
            .returning(ok);
        let start = tokio::time::Instant::now();
        let token = fetch_with_retries(&source, &RetryPolicy::default()).await;
        assert_eq!(token.unwrap().access_token, "t");
        assert_eq!(start.elapsed(), Duration::from_secs(3), "not sooner");

        // Longer than the policy's longest delay: reported, not waited for.
        let mut source = MockTokenSource::new();
        source.expect_request().times(1).returning(|| {
            Err(AttemptError::RetryAfter {
                reason: "answered 429, retry after 120 s".into(),
                after: Duration::from_secs(120),
            })
        });
        let start = tokio::time::Instant::now();
        let err = fetch_with_retries(&source, &RetryPolicy::default()).await;
        assert_eq!(
            err,
            Err(TokenError::Unavailable {
                attempts: 1,
                last: "answered 429, retry after 120 s".into()
            })
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
