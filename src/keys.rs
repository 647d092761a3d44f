//! Signing and verification keys: loading, holding parsed, generating and rotating them.
//!
//! ID tokens are signed here with an RSA key parsed once (jsonwebtoken's
//! `encode` would parse the PEM again on every call); they are verified with
//! jsonwebtoken, algorithm pinned, with the published key their `kid` names.
//! Refresh tokens use an HMAC secret.
//!
//! The key ring on disk: the active pair (`PRIV_KEY_FILE`, `PUB_KEY_FILE`),
//! public keys that stay published (`PUBLISHED_KEYS_DIR/<kid>.pem`: previous
//! keys until retired, and a staged next key), and the staged next private key
//! (`next-private.pem` beside `PRIV_KEY_FILE`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context as _, anyhow, bail};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;

use crate::config::Secret;
use crate::fs_private::{rename_durably, write_private};
use crate::jwks::{Jwk, JwkSet};

/// Shortest accepted refresh-token secret, in bytes.
pub const MIN_REFRESH_SECRET_BYTES: usize = 32;

/// Signs RS256 ID tokens with a private key parsed once.
pub struct IdTokenSigner {
    key_pair: RsaKeyPair,
    rng: SystemRandom,
    kid: String,
    jwk: Jwk,
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
        let public = key_pair.public_key();
        let jwk = Jwk::rsa_from_components(
            public.modulus().big_endian_without_leading_zero(),
            public.exponent().big_endian_without_leading_zero(),
        );
        let kid = jwk.kid.clone().unwrap_or_default();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        let header_b64 = B64.encode(serde_json::to_vec(&header)?);
        Ok(Self {
            key_pair,
            rng: SystemRandom::new(),
            kid,
            jwk,
            header_b64,
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

/// Everything needed to issue and verify both kinds of token.
pub struct KeySet {
    pub ring: KeyRing,
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
    /// Public keys published besides the active one, as `<kid>.pem`.
    pub published_dir: PathBuf,
}

impl KeyPaths {
    /// Reads and checks all key material; errors name the variable to fix.
    pub fn load(&self) -> anyhow::Result<KeySet> {
        let ring = self.load_ring()?;
        let refresh_secret = match &self.refresh_secret {
            Some(secret) => secret.clone(),
            None => {
                let text = fs::read_to_string(&self.refresh_secret_file).with_context(|| {
                    format!(
                        "REFRESH_SECRET is unset and {} cannot be read {KEYS_HINT}",
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
            ring,
            refresh_secret,
        })
    }

    /// Reads the active pair and the published public keys.
    pub fn load_ring(&self) -> anyhow::Result<KeyRing> {
        let signer = self.load_signer()?;
        let public = self.read_public_key()?;
        if public.kid != signer.jwk().kid
            && staged_kid(self).ok().flatten().as_deref() == public.kid.as_deref()
        {
            // An interrupted `keys rotate`: the new public key is in place, its
            // private key still staged. Go on signing with the old key and
            // publish both; running `rotate` again finishes the rotation.
            tracing::warn!(
                "PUB_KEY_FILE holds the staged next key: a `keys rotate` was interrupted; \
                 run it again to finish"
            );
            let mut others = vec![public];
            others.extend(self.published_keys()?);
            return KeyRing::new(signer, others);
        }
        if public.kid != signer.jwk().kid {
            bail!(
                "PUB_KEY_FILE: {} does not match the private key of PRIV_KEY_FILE \
                 (after an interrupted `account keys rotate`, run it again)",
                self.public_key.display()
            );
        }
        KeyRing::new(signer, self.published_keys()?)
    }

    fn load_signer(&self) -> anyhow::Result<IdTokenSigner> {
        let private_pem = fs::read(&self.private_key).with_context(|| {
            format!(
                "PRIV_KEY_FILE: cannot read {} {KEYS_HINT}",
                self.private_key.display()
            )
        })?;
        IdTokenSigner::from_pem(&private_pem)
            .with_context(|| format!("PRIV_KEY_FILE: {}", self.private_key.display()))
    }

    fn read_public_key(&self) -> anyhow::Result<Jwk> {
        let public_pem = fs::read(&self.public_key).with_context(|| {
            format!(
                "PUB_KEY_FILE: cannot read {} {KEYS_HINT}",
                self.public_key.display()
            )
        })?;
        Jwk::rsa_from_pem(&public_pem)
            .with_context(|| format!("PUB_KEY_FILE: {}", self.public_key.display()))
    }

    /// The public keys in `PUBLISHED_KEYS_DIR` (none if it does not exist),
    /// sorted by file name.
    fn published_keys(&self) -> anyhow::Result<Vec<Jwk>> {
        let entries = match fs::read_dir(&self.published_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "PUBLISHED_KEYS_DIR: cannot read {}",
                        self.published_dir.display()
                    )
                });
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "pem"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|file| {
                let pem = fs::read(file).with_context(|| {
                    format!("PUBLISHED_KEYS_DIR: cannot read {}", file.display())
                })?;
                Jwk::rsa_from_pem(&pem)
                    .with_context(|| format!("PUBLISHED_KEYS_DIR: {}", file.display()))
            })
            .collect()
    }

    /// `next-private.pem` beside the active private key: the staged next key.
    pub fn next_private_key(&self) -> PathBuf {
        self.private_key.with_file_name("next-private.pem")
    }
}

const KEYS_HINT: &str = "(run `account keys generate` to create development keys)";

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
    let (private_pem, signer) = new_rsa_key()?;
    write_private(private_key, private_pem.as_bytes())?;
    write_private(public_key, signer.public_pem()?.as_bytes())
}

/// A new RSA-2048 key: its PKCS#8 PEM, and the signer parsed from it.
fn new_rsa_key() -> anyhow::Result<(String, IdTokenSigner)> {
    let key_pair =
        RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow!("RSA key generation failed"))?;
    let der = key_pair
        .as_der()
        .map_err(|_| anyhow!("cannot encode the private key"))?;
    let private_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref()));
    let signer = IdTokenSigner::from_pem(private_pem.as_bytes())?;
    Ok((private_pem, signer))
}

/// Writes a new 256-bit refresh-token secret, hex-encoded.
pub fn generate_refresh_secret(path: &Path) -> anyhow::Result<()> {
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| anyhow!("no randomness"))?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, format!("{hex}\n").as_bytes())
}

/// A key of the ring, as `account keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub kid: String,
    /// `active`, `next` (staged, published, not yet signing) or `published`.
    pub status: &'static str,
}

/// The keys of the ring and what each is for.
pub fn list_keys(paths: &KeyPaths) -> anyhow::Result<Vec<KeyStatus>> {
    let active = paths.read_public_key()?.kid.unwrap_or_default();
    let next = staged_kid(paths)?;
    let mut keys = vec![KeyStatus {
        kid: active.clone(),
        status: "active",
    }];
    for jwk in paths.published_keys()? {
        let kid = jwk.kid.unwrap_or_default();
        if kid == active || keys.iter().any(|k| k.kid == kid) {
            continue;
        }
        let status = if next.as_deref() == Some(kid.as_str()) {
            "next"
        } else {
            "published"
        };
        keys.push(KeyStatus { kid, status });
    }
    Ok(keys)
}

/// The kid of the staged next key, if one is staged.
fn staged_kid(paths: &KeyPaths) -> anyhow::Result<Option<String>> {
    Ok(read_staged(paths)?.map(|signer| signer.kid().to_owned()))
}

fn published_file(paths: &KeyPaths, kid: &str) -> anyhow::Result<PathBuf> {
    // A kid is base64url: refuse anything else, so it cannot name another path.
    if kid.is_empty()
        || !kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{kid:?} is not a key id");
    }
    Ok(paths.published_dir.join(format!("{kid}.pem")))
}

/// Generates the next key and publishes its public half, without signing
/// with it yet: domain services can fetch it before it becomes active.
pub fn stage_next_key(paths: &KeyPaths) -> anyhow::Result<String> {
    let next = paths.next_private_key();
    let signer = match read_staged(paths)? {
        // Already staged (perhaps by a run that stopped before publishing):
        // make sure it is published, and keep it.
        Some(signer) => signer,
        None => {
            // The private key first: a crash can then leave an unpublished
            // staged key (published by the next run), never a published key
            // whose private half is gone.
            let (private_pem, signer) = new_rsa_key()?;
            write_private(&next, private_pem.as_bytes())?;
            signer
        }
    };
    write_private(
        &published_file(paths, signer.kid())?,
        signer.public_pem()?.as_bytes(),
    )?;
    Ok(signer.kid().to_owned())
}

/// The staged next key, if one is staged.
fn read_staged(paths: &KeyPaths) -> anyhow::Result<Option<IdTokenSigner>> {
    let next = paths.next_private_key();
    if !next.exists() {
        return Ok(None);
    }
    let pem = fs::read(&next).with_context(|| format!("cannot read {}", next.display()))?;
    IdTokenSigner::from_pem(&pem)
        .with_context(|| format!("staged key {}", next.display()))
        .map(Some)
}

/// The outcome of a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub previous_kid: String,
    pub active_kid: String,
}

/// Makes a new key active: the staged next key if there is one, else a newly
/// staged one. The previous key stays published (tokens it signed keep
/// verifying until they expire) until [`retire_key`] removes it.
///
/// Every step writes a whole file atomically, in an order that a crash cannot
/// turn into a lost key: the new private key is staged before anything else
/// changes, and running `rotate` again finishes an interrupted rotation.
pub fn rotate_keys(paths: &KeyPaths) -> anyhow::Result<Rotation> {
    let previous = paths.load_signer()?;
    let previous_kid = previous.kid().to_owned();
    let next = paths.next_private_key();
    if read_staged(paths)?.is_some_and(|staged| staged.kid() == previous_kid) {
        // A leftover copy of the active key: not a new key to rotate to.
        fs::remove_file(&next).with_context(|| format!("cannot remove {}", next.display()))?;
    }
    stage_next_key(paths)?;
    let signer = read_staged(paths)?.context("the staged key vanished")?;
    write_private(
        &published_file(paths, &previous_kid)?,
        previous.public_pem()?.as_bytes(),
    )?;
    // A crash between these two steps leaves the new public key with the old
    // private one: the service still starts (see `load_ring`), and running
    // `rotate` again finishes the rotation.
    write_private(&paths.public_key, signer.public_pem()?.as_bytes())?;
    rename_durably(&next, &paths.private_key)?;
    let _ = fs::remove_file(published_file(paths, signer.kid())?);
    Ok(Rotation {
        previous_kid,
        active_kid: signer.kid().to_owned(),
    })
}

/// Stops publishing a key: tokens it signed are refused from the next reload.
/// The active key cannot be retired; retiring the staged next key unstages it.
pub fn retire_key(paths: &KeyPaths, kid: &str) -> anyhow::Result<()> {
    let file = published_file(paths, kid)?;
    if paths.read_public_key()?.kid.as_deref() == Some(kid) {
        bail!("{kid} is the active signing key: rotate first, then retire it");
    }
    if !file.exists() {
        bail!(
            "no published key {kid} in {}",
            paths.published_dir.display()
        );
    }
    if staged_kid(paths)?.as_deref() == Some(kid) {
        fs::remove_file(paths.next_private_key())?;
    }
    fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))
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
            published_dir: dir.path().join("keys/published"),
        }
        .load()
        .unwrap();
        assert_eq!(keys.refresh_secret.expose().len(), 64);
        assert_eq!(keys.ring.signer().kid().len(), 43, "base64url of a SHA-256");
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
            published_dir: dir.path().join("published"),
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
            published_dir: dir.path().join("published"),
        }
        .load()
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("REFRESH_SECRET"), "{err:#}");
    }

    fn ring_paths(dir: &Path) -> KeyPaths {
        let files = GeneratedKeyFiles::in_dir(dir);
        generate_keys(&files, false).unwrap();
        KeyPaths {
            private_key: files.private_key,
            public_key: files.public_key,
            refresh_secret_file: files.refresh_secret,
            refresh_secret: None,
            published_dir: dir.join("published"),
        }
    }

    fn kids(ring: &KeyRing) -> Vec<String> {
        ring.jwks().keys.into_iter().filter_map(|k| k.kid).collect()
    }

    #[test]
    fn an_interrupted_rotation_still_starts_and_running_rotate_again_finishes_it() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ring_paths(dir.path());
        let old = paths.load_ring().unwrap().signer().kid().to_owned();
        // What `rotate` leaves when it stops right after writing the public key.
        let next = stage_next_key(&paths).unwrap();
        let staged = read_staged(&paths).unwrap().unwrap();
        write_private(
            &published_file(&paths, &old).unwrap(),
            paths
                .load_signer()
                .unwrap()
                .public_pem()
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        write_private(&paths.public_key, staged.public_pem().unwrap().as_bytes()).unwrap();

        let ring = paths.load_ring().unwrap();
        assert_eq!(ring.signer().kid(), old, "still signs with the old key");
        assert!(kids(&ring).contains(&next) && kids(&ring).contains(&old));

        let rotation = rotate_keys(&paths).unwrap();
        assert_eq!(
            (rotation.previous_kid.as_str(), rotation.active_kid.as_str()),
            (old.as_str(), next.as_str())
        );
        let ring = paths.load_ring().unwrap();
        assert_eq!(ring.signer().kid(), next);
        assert_eq!(kids(&ring), vec![next, old]);
        assert!(!paths.next_private_key().exists());
    }

    #[test]
    fn staging_twice_keeps_the_staged_key_and_publishes_it() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ring_paths(dir.path());
        let first = stage_next_key(&paths).unwrap();
        fs::remove_file(published_file(&paths, &first).unwrap()).unwrap();
        assert_eq!(stage_next_key(&paths).unwrap(), first);
        assert!(published_file(&paths, &first).unwrap().exists());
    }

    #[test]
    fn a_leftover_copy_of_the_active_key_is_not_rotated_to() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ring_paths(dir.path());
        let active = paths.load_signer().unwrap().kid().to_owned();
        fs::copy(&paths.private_key, paths.next_private_key()).unwrap();
        let rotation = rotate_keys(&paths).unwrap();
        assert_eq!(rotation.previous_kid, active);
        assert_ne!(rotation.active_kid, active, "a new key became active");
        assert_eq!(
            paths.load_ring().unwrap().signer().kid(),
            rotation.active_kid
        );
    }

    #[test]
    fn key_ids_that_are_not_base64url_cannot_name_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ring_paths(dir.path());
        for kid in ["../private", "a/b", "", "x.pem"] {
            assert!(retire_key(&paths, kid).is_err(), "{kid:?}");
        }
        assert!(paths.private_key.exists());
    }
}
