//! Machine clients (issue 11, the client-credentials grant of RFC 6749 §4.4):
//! registering them and issuing their access tokens.
//!
//! A client id is `cl_` and 16 random bytes in base64url (never a UUID, so a
//! client never passes for a user), a secret `cs_` and 32 random bytes in
//! base64url, shown once; the store keeps the secret's SHA-256 only (a fast
//! hash is right for a high-entropy secret: a token request costs no Argon2
//! run) and checking it compares the digests in constant time.
//!
//! An access token is an RS256 JWT in the RFC 9068 profile, signed with the
//! active key (the same JWKS as ID tokens): header `typ: at+jwt`, claims
//! `sub` = `client_id` = the client's id, `iss`, `aud`, `scope`, `iat`,
//! `exp`, `jti`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_lc_rs::{constant_time, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::keys::SharedKeyRing;
use crate::model::{
    Audience, ClientCredentials, ClientRepository, ClientService, ClientToken, ClientTokenError,
    OAuthClient, RateLimitService,
};
use crate::secret::Secret;
use crate::verifier::ClientClaims;

/// Prefix of client ids.
pub const CLIENT_ID_PREFIX: &str = "cl_";
/// Prefix of client secrets.
pub const CLIENT_SECRET_PREFIX: &str = "cs_";
const CLIENT_ID_BYTES: usize = 16;
const CLIENT_SECRET_BYTES: usize = 32;
/// Longest scope list a client may be registered with, in bytes.
pub const MAX_SCOPE_BYTES: usize = 1024;

/// What client access tokens say: `iss`, `aud` (`ID_TOKEN_ISSUER`,
/// `ID_TOKEN_AUDIENCE`) and their lifetime (`CLIENT_TOKEN_EXP`).
#[derive(Debug, Clone)]
pub struct ClientTokenConfig {
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
}

/// [`ClientService`] over a [`ClientRepository`] and the key ring.
pub struct ClientServiceImpl {
    repo: Arc<dyn ClientRepository>,
    /// `None` for the `account clients` commands, which never sign.
    signing: Option<Signing>,
}

/// What issuing tokens needs besides the clients.
struct Signing {
    keys: Arc<SharedKeyRing>,
    config: ClientTokenConfig,
    /// Failed client authentications are counted here.
    limits: Arc<dyn RateLimitService>,
}

impl ClientServiceImpl {
    /// Registers, lists, removes clients and issues their tokens.
    pub fn new(
        repo: Arc<dyn ClientRepository>,
        keys: Arc<SharedKeyRing>,
        config: ClientTokenConfig,
        limits: Arc<dyn RateLimitService>,
    ) -> Self {
        Self {
            repo,
            signing: Some(Signing {
                keys,
                config,
                limits,
            }),
        }
    }

    /// Registers, lists and removes clients only (no keys needed).
    pub fn registry(repo: Arc<dyn ClientRepository>) -> Self {
        Self {
            repo,
            signing: None,
        }
    }
}

/// `prefix` and `bytes` random bytes in base64url.
fn random_text(prefix: &str, bytes: usize) -> AppResult<String> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf)
        .map_err(|_| AppError::Internal(anyhow::anyhow!("no randomness for a client")))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(buf)))
}

/// What the store keeps of a secret: its SHA-256.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// A scope token of RFC 6749 §3.3: printable ASCII but space, `"` and `\`.
fn valid_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

/// A space-separated scope list in normal form (single spaces, no
/// duplicates, in the given order); `None` if a token is not a scope token.
pub fn normal_scope(scope: &str) -> Option<String> {
    let mut tokens: Vec<&str> = Vec::new();
    for token in scope.split_ascii_whitespace() {
        if !valid_scope_token(token) {
            return None;
        }
        if !tokens.contains(&token) {
            tokens.push(token);
        }
    }
    Some(tokens.join(" "))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl ClientService for ClientServiceImpl {
    async fn register(&self, name: &str, scope: &str) -> AppResult<ClientCredentials> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(AppError::bad_request(
                "a client's name is 1 to 200 characters",
            ));
        }
        let scope = normal_scope(scope)
            .filter(|scope| scope.len() <= MAX_SCOPE_BYTES)
            .ok_or_else(|| {
                AppError::bad_request(
                    "scope: space-separated names of printable ASCII without \" or \\",
                )
            })?;
        let client_id = random_text(CLIENT_ID_PREFIX, CLIENT_ID_BYTES)?;
        let secret = random_text(CLIENT_SECRET_PREFIX, CLIENT_SECRET_BYTES)?;
        self.repo
            .create_client(&OAuthClient {
                client_id: client_id.clone(),
                name: name.to_owned(),
                secret_hash: secret_hash(&secret),
                scope: scope.clone(),
                created_at: unix_now(),
            })
            .await?;
        Ok(ClientCredentials {
            client_id,
            client_secret: Secret::new(secret),
            scope,
        })
    }

    async fn list(&self) -> AppResult<Vec<OAuthClient>> {
        self.repo.list_clients().await
    }

    async fn remove(&self, client_id: &str) -> AppResult<bool> {
        self.repo.delete_client(client_id).await
    }

    async fn issue_token(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: Option<String>,
        ip: &str,
    ) -> Result<ClientToken, ClientTokenError> {
        let Some(Signing {
            keys,
            config,
            limits,
        }) = &self.signing
        else {
            return Err(AppError::Internal(anyhow::anyhow!("client registry cannot sign")).into());
        };
        // Counted before anything is checked; given back once it passed.
        limits.client_auth_attempt(client_id, ip).await?;
        if !client_id.starts_with(CLIENT_ID_PREFIX) || client_id.len() > 64 {
            return Err(ClientTokenError::InvalidClient);
        }
        let client = self
            .repo
            .find_client(client_id)
            .await?
            .ok_or(ClientTokenError::InvalidClient)?;
        let presented = secret_hash(client_secret);
        if constant_time::verify_slices_are_equal(&presented, &client.secret_hash).is_err() {
            return Err(ClientTokenError::InvalidClient);
        }
        if let Err(err) = limits.client_auth_succeeded(client_id, ip).await {
            tracing::warn!(error = ?err, "cannot give back a client authentication's count");
        }
        let granted = match scope {
            None => client.scope.clone(),
            Some(requested) => {
                let requested = normal_scope(&requested).ok_or_else(|| {
                    ClientTokenError::InvalidScope("the scope is malformed".into())
                })?;
                if let Some(extra) = requested
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .find(|s| !client.scopes().any(|own| own == *s))
                {
                    return Err(ClientTokenError::InvalidScope(format!(
                        "the client may not ask for the scope {extra}"
                    )));
                }
                requested
            }
        };
        let now = unix_now();
        let claims = ClientClaims {
            sub: client.client_id.clone(),
            client_id: client.client_id,
            iss: config.issuer.clone(),
            aud: Audience::One(config.audience.clone()),
            scope: granted.clone(),
            iat: now,
            exp: now.saturating_add(config.ttl.as_secs()),
            jti: Some(Uuid::new_v4().to_string()),
        };
        let token = keys
            .current()
            .signer()
            .sign_access_token(&claims)
            .map_err(AppError::Internal)?;
        Ok(ClientToken {
            access_token: Secret::new(token),
            expires_in: config.ttl.as_secs(),
            scope: granted,
        })
    }
}

#[cfg(test)]
mod tests;
