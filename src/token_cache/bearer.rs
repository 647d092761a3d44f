//! An HTTP client that calls an API with the cache's bearer token.

use super::TokenCache;
use super::error::TokenError;

/// A failed call through a [`BearerClient`].
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    /// No token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The API request itself failed (connection, timeout…).
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
}

/// A `reqwest::Client` that attaches `Authorization: Bearer <token>` from a
/// [`TokenCache`]. On a 401 it invalidates that token (only if it is still
/// the cached one), takes a fresh one and sends the request again, once: the
/// second answer is returned whatever it is.
#[derive(Debug, Clone)]
pub struct BearerClient {
    http: reqwest::Client,
    tokens: TokenCache,
}

impl BearerClient {
    pub fn new(http: reqwest::Client, tokens: TokenCache) -> Self {
        Self { http, tokens }
    }

    /// The token cache the client takes its tokens from.
    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    /// Sends the request `build` makes (called again for the retry, so the
    /// body must be buildable twice), e.g.
    /// `client.send(|http| http.get(url)).await?`.
    pub async fn send<F>(&self, build: F) -> Result<reqwest::Response, BearerError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let token = self.tokens.token().await?;
        let response = build(&self.http).bearer_auth(token.secret()).send().await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        tracing::debug!("the API answered 401: refetching the token and retrying once");
        drop(response);
        self.tokens.invalidate(token.secret()).await;
        let token = self.tokens.token().await?;
        Ok(build(&self.http).bearer_auth(token.secret()).send().await?)
    }
}
