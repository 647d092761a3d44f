//! Keys generated once per test run and tokens signed with them, for the
//! verifier's and the todo service's unit tests.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Verifier, VerifierConfig};
use crate::jwks::{Jwk, JwkSet};

/// The verifier's clock in unit tests: real time until [`Clock::freeze`],
/// then standing still except when [`Clock::advance`]d. Only the verifier's
/// own bookkeeping (key age, refetch interval) reads it; HTTP timeouts run on
/// real time.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    frozen_at: Mutex<Option<Instant>>,
}

impl Clock {
    pub fn now(&self) -> Instant {
        self.frozen().unwrap_or_else(Instant::now)
    }

    /// Stops the clock at the present instant.
    pub fn freeze(&self) {
        let mut frozen = self.lock();
        frozen.get_or_insert_with(Instant::now);
    }

    /// Moves a frozen clock forward (freezing it first if needed).
    pub fn advance(&self, by: Duration) {
        let mut frozen = self.lock();
        let at = frozen.get_or_insert_with(Instant::now);
        *at += by;
    }

    fn frozen(&self) -> Option<Instant> {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.frozen_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// An RSA-2048 pair, its PEMs, its JWK and its `kid` (RFC 7638 thumbprint).
pub(crate) struct TestKey {
    pub kid: String,
    pub public_pem: String,
    pub jwk: Jwk,
    encoding: EncodingKey,
}

impl TestKey {
    fn generate() -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let private_der = pair.as_der().expect("PKCS#8");
        let public_der = pair.public_key().as_der().expect("SPKI");
        let private_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", private_der.as_ref()));
        let public_pem = pem::encode(&pem::Pem::new("PUBLIC KEY", public_der.as_ref()));
        let jwk = Jwk::rsa_from_pem(public_pem.as_bytes()).expect("JWK");
        Self {
            kid: jwk.kid.clone().expect("thumbprint"),
            encoding: EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("encoding key"),
            public_pem,
            jwk,
        }
    }

    /// An RS256 token with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_kid(Some(&self.kid), claims)
    }

    /// An RS256 token whose header names `kid` (or none).
    pub fn sign_with_kid(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    /// An RS256 token under `header` (its `alg` is kept as given).
    pub fn sign_with_header(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    /// An RS256 signature over exactly this header JSON and these claims.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let message = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, Algorithm::RS256)
                .expect("sign");
        format!("{message}.{signature}")
    }

    /// A key set holding this key only.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }
}

/// Three distinct keys, generated once per test run.
pub(crate) fn key(index: usize) -> &'static TestKey {
    static KEYS: [OnceLock<TestKey>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    KEYS[index].get_or_init(TestKey::generate)
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The claims the account service puts in an ID token, valid for 15 minutes.
pub(crate) fn claims_for(sub: Uuid) -> Value {
    let now = now();
    json!({
        "sub": sub,
        "iss": "account",
        "aud": "domain-services",
        "iat": now,
        "exp": now + 900,
        "jti": Uuid::new_v4(),
        "email": "ada@example.com",
        "name": "Ada",
    })
}

/// A verifier with the default settings that knows `key(0)` only.
pub(crate) fn static_verifier() -> Verifier {
    Verifier::from_jwks(key(0).jwks(), VerifierConfig::default()).expect("verifier")
}
