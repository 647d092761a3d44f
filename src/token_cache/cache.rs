//! What a [`TokenCache`] does: the in-process copy, the shared one in Redis
//! with its fetch lock, the fetch itself, and dropping a token.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::endpoint::{TokenResponse, fetch_with_retries};
use super::{
    AccessToken, Local, SharedCache, SharedCacheError, TokenCache, TokenError, cache_ttl, defaults,
};

impl TokenCache {
    /// The key the token is cached under (the lock is `<key>:lock`).
    pub fn cache_key(&self) -> &str {
        &self.inner.cache_key
    }

    /// A valid token: the in-process copy, else the shared one, else a
    /// fresh one from the token endpoint.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        if let Some(token) = self.local_token() {
            return Ok(token);
        }
        let ticket = self.inner.completed.load(Ordering::Acquire);
        let mut flight = self.inner.flight.lock().await;
        if let Some(token) = self.local_token() {
            return Ok(token);
        }
        if self.inner.completed.load(Ordering::Acquire) != ticket
            && let Some(err) = &flight.last_error
        {
            return Err(err.clone());
        }
        // On a task of its own: a caller that goes away mid-fetch (a dropped
        // request) must not leave the Redis lock held until it expires, with
        // every other replica waiting on it; the fetch finishes, stores the
        // token and releases the lock whether or not anybody still waits.
        let this = self.clone();
        let result = match tokio::spawn(async move { this.obtain().await }).await {
            Ok(result) => result,
            Err(err) => Err(TokenError::Protocol(format!(
                "the token fetch stopped: {err}"
            ))),
        };
        flight.last_error = result.as_ref().err().cloned();
        self.inner.completed.fetch_add(1, Ordering::AcqRel);
        result
    }

    /// Drops `token` from the caches if it is still the cached one (after
    /// the API answered 401 to it, say). Never fails: with Redis down, only
    /// the in-process copy is dropped.
    pub async fn invalidate(&self, token: &str) {
        {
            let mut local = self.lock_local();
            if local.as_ref().is_some_and(|l| l.token == token) {
                *local = None;
            }
        }
        if let Some(shared) = &self.inner.shared {
            match shared
                .compare_and_delete(&self.inner.cache_key, token)
                .await
            {
                Ok(_) => self.shared_up(),
                Err(err) => self.shared_failed(&err),
            }
        }
    }

    pub(super) fn lock_local(&self) -> std::sync::MutexGuard<'_, Option<Local>> {
        self.inner
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn local_token(&self) -> Option<AccessToken> {
        let local = self.lock_local();
        local
            .as_ref()
            .filter(|l| Instant::now() < l.until)
            .map(|l| AccessToken::new(l.token.clone()))
    }

    fn keep_locally(&self, token: &str, ttl: Duration) {
        *self.lock_local() = Some(Local {
            token: token.to_owned(),
            until: Instant::now() + ttl,
        });
    }

    async fn obtain(&self) -> Result<AccessToken, TokenError> {
        match &self.inner.shared {
            Some(shared) => self.obtain_shared(shared.as_ref()).await,
            None => self.fetch_for_this_process().await,
        }
    }

    /// The shared token, or the lock and a fetch, or a wait for the replica
    /// that holds the lock.
    async fn obtain_shared(&self, shared: &dyn SharedCache) -> Result<AccessToken, TokenError> {
        let inner = &*self.inner;
        let deadline = Instant::now() + inner.wait;
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let mut pause = defaults::POLL_INTERVAL;
        loop {
            match shared.get(&inner.cache_key).await {
                Ok(Some((token, ttl))) => {
                    self.shared_up();
                    self.keep_locally(&token, ttl);
                    return Ok(AccessToken::new(token));
                }
                Ok(None) => {}
                Err(err) => {
                    self.shared_failed(&err);
                    return self.fetch_for_this_process().await;
                }
            }
            match shared.lock(&inner.lock_key, &owner, inner.lock_ttl).await {
                Ok(true) => {
                    self.shared_up();
                    return self.fetch_holding_lock(shared, &owner).await;
                }
                Ok(false) => {}
                Err(err) => {
                    self.shared_failed(&err);
                    return self.fetch_for_this_process().await;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TokenError::Timeout { waited: inner.wait });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(defaults::MAX_POLL_INTERVAL);
        }
    }

    async fn fetch_holding_lock(
        &self,
        shared: &dyn SharedCache,
        owner: &str,
    ) -> Result<AccessToken, TokenError> {
        let inner = &*self.inner;
        // Another replica may have stored a token between our GET and our lock.
        let result = match shared.get(&inner.cache_key).await {
            Ok(Some((token, ttl))) => {
                self.keep_locally(&token, ttl);
                Ok(AccessToken::new(token))
            }
            _ => match self.fetch().await {
                Ok((token, Some(ttl))) => {
                    if let Err(err) = shared.set(&inner.cache_key, &token, ttl).await {
                        self.shared_failed(&err);
                    }
                    self.keep_locally(&token, ttl);
                    Ok(AccessToken::new(token))
                }
                Ok((token, None)) => Ok(AccessToken::new(token)),
                Err(err) => Err(err),
            },
        };
        if let Err(err) = shared.unlock(&inner.lock_key, owner).await {
            self.shared_failed(&err);
        }
        result
    }

    async fn fetch_for_this_process(&self) -> Result<AccessToken, TokenError> {
        let (token, ttl) = self.fetch().await?;
        if let Some(ttl) = ttl {
            self.keep_locally(&token, ttl);
        }
        Ok(AccessToken::new(token))
    }

    /// A fresh token and how long it may be cached (`None`: not at all).
    async fn fetch(&self) -> Result<(String, Option<Duration>), TokenError> {
        let inner = &*self.inner;
        let TokenResponse {
            access_token,
            expires_in,
        } = fetch_with_retries(inner.source.as_ref(), &inner.retry).await?;
        let expires_in = expires_in.unwrap_or(inner.default_expires_in);
        let ttl = cache_ttl(expires_in, &inner.margin);
        tracing::debug!(
            client_id = %inner.client_id,
            expires_in = expires_in.as_secs(),
            cached_for_ms = ttl.map(|t| t.as_millis() as u64),
            "fetched a token"
        );
        Ok((access_token, ttl))
    }

    fn shared_failed(&self, err: &SharedCacheError) {
        if !self.inner.shared_down.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                client_id = %self.inner.client_id,
                error = %err,
                "token cache: Redis is unavailable, this process fetches its own tokens until it is back"
            );
        }
    }

    fn shared_up(&self) {
        if self.inner.shared_down.load(Ordering::Acquire)
            && self.inner.shared_down.swap(false, Ordering::AcqRel)
        {
            tracing::info!(client_id = %self.inner.client_id, "token cache: Redis is back");
        }
    }
}
