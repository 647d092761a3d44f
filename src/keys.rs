//! Signing and verification keys: loading, holding parsed, and generating them.
//!
//! ID tokens are signed here with an RSA key parsed once (jsonwebtoken's
//! `encode` would parse the PEM again on every call); they are verified with
//! jsonwebtoken, algorithm pinned. Refresh tokens use an HMAC secret.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;

use crate::config::Secret;

/// Shortest accepted refresh-token secret, in bytes.
pub const MIN_REFRESH_SECRET_BYTES: usize = 32;

/// Signs RS256 ID tokens with a private key parsed once.
pub struct IdTokenSigner {
    key_pair: RsaKeyPair,
    rng: SystemRandom,
    kid: String,
    /// base64url of `{"alg":"RS256","typ":"JWT","kid":…}`, the same for every token.
    header_b64: String,
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
        let kid = rfc7638_thumbprint(&key_pair);
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        let header_b64 = B64.encode(serde_json::to_vec(&header)?);
        Ok(Self {
            key_pair,
            rng: SystemRandom::new(),
            kid,
            header_b64,
        })
    }

    /// The key id in every token header: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Serializes `claims` and signs them: `header.payload.signature`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        let payload = B64.encode(serde_json::to_vec(claims)?);
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() + 350);
        token.push_str(&self.header_b64);
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

/// RFC 7638: SHA-256 over the canonical JSON of the required public members.
fn rfc7638_thumbprint(key_pair: &RsaKeyPair) -> String {
    let public = key_pair.public_key();
    let n = B64.encode(public.modulus().big_endian_without_leading_zero());
    let e = B64.encode(public.exponent().big_endian_without_leading_zero());
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// Everything needed to issue and verify both kinds of token.
pub struct KeySet {
    pub signer: IdTokenSigner,
    /// The public key as PEM, for verification.
    pub public_pem: Vec<u8>,
    pub refresh_secret: Secret,
}

/// Where the key material comes from (see the configuration table).
#[derive(Debug, Clone)]
pub struct KeyPaths {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    /// Used when `refresh_secret` is `None`.
    pub refresh_secret_file: PathBuf,
    pub refresh_secret: Option<Secret>,
}

impl KeyPaths {
    /// Reads and checks all key material; errors name the variable to fix.
    pub fn load(&self) -> anyhow::Result<KeySet> {
        let hint = "(run `account keys generate` to create development keys)";
        let private_pem = fs::read(&self.private_key).with_context(|| {
            format!(
                "PRIV_KEY_FILE: cannot read {} {hint}",
                self.private_key.display()
            )
        })?;
        let signer = IdTokenSigner::from_pem(&private_pem)
            .with_context(|| format!("PRIV_KEY_FILE: {}", self.private_key.display()))?;
        let public_pem = fs::read(&self.public_key).with_context(|| {
            format!(
                "PUB_KEY_FILE: cannot read {} {hint}",
                self.public_key.display()
            )
        })?;
        check_public_key_matches(&signer, &public_pem)
            .with_context(|| format!("PUB_KEY_FILE: {}", self.public_key.display()))?;
        let refresh_secret = match &self.refresh_secret {
            Some(secret) => secret.clone(),
            None => {
                let text = fs::read_to_string(&self.refresh_secret_file).with_context(|| {
                    format!(
                        "REFRESH_SECRET is unset and {} cannot be read {hint}",
                        self.refresh_secret_file.display()
                    )
                })?;
                Secret::new(text.trim().to_owned())
            }
        };
        if refresh_secret.expose().len() < MIN_REFRESH_SECRET_BYTES {
            bail!("REFRESH_SECRET: must be at least {MIN_REFRESH_SECRET_BYTES} bytes");
        }
        Ok(KeySet {
            signer,
            public_pem,
            refresh_secret,
        })
    }
}

impl KeyPaths {
    /// For a single embedded instance: creates whatever development key
    /// material is missing (the RSA pair when neither file exists, the refresh
    /// secret when `REFRESH_SECRET` is unset and its file does not exist).
    /// Returns where the keys came from, for the start-up log.
    pub fn generate_missing(&self) -> anyhow::Result<String> {
        let mut generated = Vec::new();
        if !self.private_key.exists() && !self.public_key.exists() {
            generate_rsa_pair(&self.private_key, &self.public_key)?;
            generated.extend([&self.private_key, &self.public_key]);
        }
        if self.refresh_secret.is_none() && !self.refresh_secret_file.exists() {
            generate_refresh_secret(&self.refresh_secret_file)?;
            generated.push(&self.refresh_secret_file);
        }
        Ok(if generated.is_empty() {
            self.origin()
        } else {
            let files: Vec<String> = generated.iter().map(|p| p.display().to_string()).collect();
            format!("generated on first start: {}", files.join(", "))
        })
    }

    /// Where existing keys are read from, for the start-up log.
    pub fn origin(&self) -> String {
        let secret = if self.refresh_secret.is_some() {
            "REFRESH_SECRET".to_owned()
        } else {
            self.refresh_secret_file.display().to_string()
        };
        format!(
            "loaded from {}, {}, {secret}",
            self.private_key.display(),
            self.public_key.display()
        )
    }
}

/// Signs a probe token and verifies it with the public key, so a mismatched
/// pair stops start-up instead of issuing tokens nobody can verify.
fn check_public_key_matches(signer: &IdTokenSigner, public_pem: &[u8]) -> anyhow::Result<()> {
    let decoding = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem)
        .map_err(|e| anyhow!("not an RSA public key in PEM: {e}"))?;
    let probe = signer.sign(&serde_json::json!({"sub": "probe"}))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(&probe, &decoding, &validation)
        .map(drop)
        .map_err(|_| anyhow!("does not match the private key of PRIV_KEY_FILE"))
}

/// The files `account keys generate` writes into a directory.
pub struct GeneratedKeyFiles {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub refresh_secret: PathBuf,
}

impl GeneratedKeyFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            private_key: dir.join("private.pem"),
            public_key: dir.join("public.pem"),
            refresh_secret: dir.join("refresh.secret"),
        }
    }
}

/// Generates an RSA-2048 pair (PKCS#8 / SPKI PEM) and a 256-bit refresh secret,
/// written owner-only. Existing files are kept unless `overwrite`.
pub fn generate_keys(files: &GeneratedKeyFiles, overwrite: bool) -> anyhow::Result<()> {
    for path in [&files.private_key, &files.public_key, &files.refresh_secret] {
        if !overwrite && path.exists() {
            bail!(
                "{} already exists (use --force to replace it)",
                path.display()
            );
        }
    }
    generate_rsa_pair(&files.private_key, &files.public_key)?;
    generate_refresh_secret(&files.refresh_secret)
}

/// Writes a new RSA-2048 pair: PKCS#8 private key and SPKI public key, in PEM.
pub fn generate_rsa_pair(private_key: &Path, public_key: &Path) -> anyhow::Result<()> {
    let key_pair =
        RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow!("RSA key generation failed"))?;
    let private_der = key_pair
        .as_der()
        .map_err(|_| anyhow!("cannot encode the private key"))?;
    let public_der = key_pair
        .public_key()
        .as_der()
        .map_err(|_| anyhow!("cannot encode the public key"))?;
    write_private(
        private_key,
        pem::encode(&pem::Pem::new("PRIVATE KEY", private_der.as_ref())).as_bytes(),
    )?;
    write_private(
        public_key,
        pem::encode(&pem::Pem::new("PUBLIC KEY", public_der.as_ref())).as_bytes(),
    )
}

/// Writes a new 256-bit refresh-token secret, hex-encoded.
pub fn generate_refresh_secret(path: &Path) -> anyhow::Result<()> {
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| anyhow!("no randomness"))?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, format!("{hex}\n").as_bytes())
}

/// Writes a file readable by its owner only (mode 0600), replacing it if
/// present; a missing parent folder is created owner-only.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn generated_keys_load_sign_and_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let files = GeneratedKeyFiles::in_dir(&dir.path().join("keys"));
        generate_keys(&files, false).unwrap();
        for path in [&files.private_key, &files.public_key, &files.refresh_secret] {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let keys = KeyPaths {
            private_key: files.private_key.clone(),
            public_key: files.public_key.clone(),
            refresh_secret_file: files.refresh_secret.clone(),
            refresh_secret: None,
        }
        .load()
        .unwrap();
        assert_eq!(keys.refresh_secret.expose().len(), 64);
        assert_eq!(keys.signer.kid().len(), 43, "base64url of a SHA-256");
        // A second run refuses to overwrite.
        assert!(generate_keys(&files, false).is_err());
    }

    #[test]
    fn a_public_key_of_another_pair_stops_loading() {
        let dir = tempfile::tempdir().unwrap();
        let a = GeneratedKeyFiles::in_dir(&dir.path().join("a"));
        let b = GeneratedKeyFiles::in_dir(&dir.path().join("b"));
        generate_keys(&a, false).unwrap();
        generate_keys(&b, false).unwrap();
        let err = KeyPaths {
            private_key: a.private_key,
            public_key: b.public_key,
            refresh_secret_file: a.refresh_secret,
            refresh_secret: None,
        }
        .load()
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("PUB_KEY_FILE"), "{err:#}");
    }

    #[test]
    fn a_short_refresh_secret_stops_loading() {
        let dir = tempfile::tempdir().unwrap();
        let files = GeneratedKeyFiles::in_dir(dir.path());
        generate_keys(&files, false).unwrap();
        let err = KeyPaths {
            private_key: files.private_key,
            public_key: files.public_key,
            refresh_secret_file: files.refresh_secret,
            refresh_secret: Some(Secret::new("short".into())),
        }
        .load()
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("REFRESH_SECRET"), "{err:#}");
    }
}
