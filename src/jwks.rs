//! JSON Web Keys (RFC 7517) for RS256 public keys, and their RFC 7638 thumbprints.
//!
//! Shared by the account service, which publishes its keys at
//! `/.well-known/jwks.json`, and by [`crate::verifier`], which reads them.

use aws_lc_rs::signature::RsaSubjectPublicKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

/// A key set: `{"keys": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// One JSON Web Key. Parsing is lenient (other key types and members are
/// kept or ignored); the keys we publish always have every field set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// RSA modulus, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JwkError {
    #[error("not a PEM file: {0}")]
    Pem(String),
    #[error("expected a PEM block \"PUBLIC KEY\" or \"RSA PUBLIC KEY\", found {0:?}")]
    PemTag(String),
    #[error("not an RSA public key")]
    NotRsa,
    #[error("the JWK lacks {0}")]
    Missing(&'static str),
    #[error("unusable RSA key: {0}")]
    Unusable(String),
}

impl Jwk {
    /// The JWK of an RSA public key (SPKI or PKCS#1 DER), for signing with RS256.
    pub fn rsa_from_der(der: &[u8]) -> Result<Self, JwkError> {
        let key = RsaSubjectPublicKey::from_der(der).map_err(|_| JwkError::NotRsa)?;
        Ok(Self::rsa_from_components(
            key.modulus().big_endian_without_leading_zero(),
            key.exponent().big_endian_without_leading_zero(),
        ))
    }

    /// The JWK of an RSA public key in PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`).
    pub fn rsa_from_pem(pem_text: &[u8]) -> Result<Self, JwkError> {
        let block = pem::parse(pem_text).map_err(|e| JwkError::Pem(e.to_string()))?;
        match block.tag() {
            "PUBLIC KEY" | "RSA PUBLIC KEY" => Self::rsa_from_der(block.contents()),
            other => Err(JwkError::PemTag(other.to_owned())),
        }
    }

    /// The JWK of an RSA key from its big-endian modulus and exponent; `kid` is
    /// the RFC 7638 thumbprint.
    pub fn rsa_from_components(modulus: &[u8], exponent: &[u8]) -> Self {
        let n = B64.encode(modulus);
        let e = B64.encode(exponent);
        Self {
            kty: "RSA".into(),
            kid: Some(rsa_thumbprint(&n, &e)),
            alg: Some("RS256".into()),
            use_: Some("sig".into()),
            n: Some(n),
            e: Some(e),
        }
    }

    /// Whether this key can verify RS256 signatures (an RSA key not limited to
    /// another algorithm or use).
    pub fn is_rs256_signing_key(&self) -> bool {
        self.kty == "RSA"
            && self.alg.as_deref().is_none_or(|a| a == "RS256")
            && self.use_.as_deref().is_none_or(|u| u == "sig")
            && self.n.is_some()
            && self.e.is_some()
    }

    /// A jsonwebtoken key that verifies signatures made with this key.
    pub fn decoding_key(&self) -> Result<jsonwebtoken::DecodingKey, JwkError> {
        let n = self.n.as_deref().ok_or(JwkError::Missing("n"))?;
        let e = self.e.as_deref().ok_or(JwkError::Missing("e"))?;
        jsonwebtoken::DecodingKey::from_rsa_components(n, e)
            .map_err(|err| JwkError::Unusable(err.to_string()))
    }
}

/// RFC 7638: SHA-256 over `{"e":…,"kty":"RSA","n":…}`, base64url.
pub fn rsa_thumbprint(n_b64: &str, e_b64: &str) -> String {
    let canonical = format!(r#"{{"e":"{e_b64}","kty":"RSA","n":"{n_b64}"}}"#);
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7638_example_thumbprint_matches() {
        // RFC 7638, section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            rsa_thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn jwks_serialize_with_the_standard_member_names() {
        let jwk = Jwk::rsa_from_components(&[0xc0, 0xff, 0xee], &[1, 0, 1]);
        let json = serde_json::to_value(JwkSet { keys: vec![jwk] }).unwrap();
        assert_eq!(json["keys"][0]["use"], "sig");
        assert_eq!(json["keys"][0]["alg"], "RS256");
        assert_eq!(json["keys"][0]["kty"], "RSA");
        assert_eq!(json["keys"][0]["e"], "AQAB");
        assert_eq!(json["keys"][0]["n"], "wP_u");
    }

    #[test]
    fn foreign_key_types_parse_but_are_not_rs256_signing_keys() {
        let set: JwkSet = serde_json::from_str(
            r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","kid":"ec"},
                        {"kty":"RSA","use":"enc","n":"wP_u","e":"AQAB"}]}"#,
        )
        .unwrap();
        assert!(set.keys.iter().all(|k| !k.is_rs256_signing_key()));
    }
}
