//! The key ring: the active signer and every published public key, swappable at run time.

use std::sync::{Arc, RwLock};

use super::IdTokenSigner;
use crate::jwks::{Jwk, JwkSet};

/// The keys ID tokens are signed and verified with: one active signing key
/// and every published public key (the active one first), by `kid`.
pub struct KeyRing {
    signer: IdTokenSigner,
    published: Vec<(Jwk, jsonwebtoken::DecodingKey)>,
}

impl KeyRing {
    /// A ring of the active key and further published public keys (duplicates
    /// of the active key are dropped).
    pub fn new(signer: IdTokenSigner, others: Vec<Jwk>) -> anyhow::Result<Self> {
        let mut published = Vec::new();
        for jwk in std::iter::once(signer.jwk().clone()).chain(others) {
            if published.iter().any(|(p, _): &(Jwk, _)| p.kid == jwk.kid) {
                continue;
            }
            let key = jwk.decoding_key()?;
            published.push((jwk, key));
        }
        Ok(Self { signer, published })
    }

    /// The active signing key.
    pub fn signer(&self) -> &IdTokenSigner {
        &self.signer
    }

    /// The published key with this `kid`.
    pub fn decoding_key(&self, kid: &str) -> Option<&jsonwebtoken::DecodingKey> {
        self.published
            .iter()
            .find(|(jwk, _)| jwk.kid.as_deref() == Some(kid))
            .map(|(_, key)| key)
    }

    /// Every published key, the active one first (RFC 7517).
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.published.iter().map(|(jwk, _)| jwk.clone()).collect(),
        }
    }
}

/// The current key ring, replaceable while the service runs (`SIGHUP`).
pub struct SharedKeyRing(RwLock<Arc<KeyRing>>);

impl SharedKeyRing {
    pub fn new(ring: KeyRing) -> Self {
        Self(RwLock::new(Arc::new(ring)))
    }

    /// The ring in force now; cheap (an `Arc` clone).
    pub fn current(&self) -> Arc<KeyRing> {
        match self.0.read() {
            Ok(ring) => Arc::clone(&ring),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts a new ring in force for every later request.
    pub fn replace(&self, ring: KeyRing) {
        let ring = Arc::new(ring);
        match self.0.write() {
            Ok(mut current) => *current = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
    }
}
