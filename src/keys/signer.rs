//! The ID-token signer: an RSA private key parsed once, signing RS256 tokens.

use anyhow::{Context as _, anyhow, bail};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;

use crate::jwks::Jwk;

/// Signs RS256 ID tokens with a private key parsed once.
pub struct IdTokenSigner {
    key_pair: RsaKeyPair,
    rng: SystemRandom,
    kid: String,
    jwk: Jwk,
    /// base64url of `{"alg":"RS256","typ":"JWT","kid":…}`, the same for every token.
    header_b64: String,
    /// base64url of `{"alg":"RS256","typ":"at+jwt","kid":…}`: client access
    /// tokens (RFC 9068), which never pass as ID tokens.
    access_header_b64: String,
}

impl std::fmt::Debug for IdTokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl IdTokenSigner {
    /// Parses a PEM private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    pub fn from_pem(pem_text: &[u8]) -> anyhow::Result<Self> {
        let block = pem::parse(pem_text).context("not a PEM file")?;
        let key_pair = match block.tag() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(block.contents()),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(block.contents()),
            other => bail!("expected an RSA private key, found a PEM block {other:?}"),
        }
        .map_err(|e| anyhow!("not a usable RSA private key: {e}"))?;
        if key_pair.public_modulus_len() < 256 {
            bail!("the RSA key must have at least 2048 bits");
        }
        let public = key_pair.public_key();
        let jwk = Jwk::rsa_from_components(
            public.modulus().big_endian_without_leading_zero(),
            public.exponent().big_endian_without_leading_zero(),
        );
        let kid = jwk.kid.clone().unwrap_or_default();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        let header_b64 = B64.encode(serde_json::to_vec(&header)?);
        let access_header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": kid});
        let access_header_b64 = B64.encode(serde_json::to_vec(&access_header)?);
        Ok(Self {
            key_pair,
            rng: SystemRandom::new(),
            kid,
            jwk,
            header_b64,
            access_header_b64,
        })
    }

    /// The public half, as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The public half, as SPKI PEM.
    pub fn public_pem(&self) -> anyhow::Result<String> {
        let der = self
            .key_pair
            .public_key()
            .as_der()
            .map_err(|_| anyhow!("cannot encode the public key"))?;
        Ok(pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_ref())))
    }

    /// The key id in every token header: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Serializes `claims` and signs them: `header.payload.signature`, the
    /// header typed `JWT` (an ID token).
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        self.sign_with(&self.header_b64, claims)
    }

    /// The same with the header typed `at+jwt`: a client's access token
    /// (RFC 9068).
    pub fn sign_access_token<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        self.sign_with(&self.access_header_b64, claims)
    }

    fn sign_with<T: Serialize>(&self, header_b64: &str, claims: &T) -> anyhow::Result<String> {
        let payload = B64.encode(serde_json::to_vec(claims)?);
        let mut token = String::with_capacity(header_b64.len() + payload.len() + 350);
        token.push_str(header_b64);
        token.push('.');
        token.push_str(&payload);
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|_| anyhow!("RSA signing failed"))?;
        token.push('.');
        B64.encode_string(&signature, &mut token);
        Ok(token)
    }
}
