//! Key material on disk: where it lives, loading it, generating development keys.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::RsaKeyPair;

use super::data_key::{DataKey, generate_data_key};
use super::rotation::staged_kid;
use super::{IdTokenSigner, KeyRing};
use crate::fs_private::write_private;
use crate::jwks::Jwk;
use crate::secret::Secret;

/// Shortest accepted refresh-token secret, in bytes.
pub(crate) const MIN_REFRESH_SECRET_BYTES: usize = 32;

/// Everything needed to issue and verify both kinds of token.
pub(crate) struct KeySet {
    pub ring: KeyRing,
    pub refresh_secret: Secret,
    /// `None` when neither `DATA_KEY` nor its file is there: nothing that
    /// needs it (authenticator enrolment) works then.
    pub data_key: Option<DataKey>,
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
    /// Used when `data_key` is `None`.
    pub data_key_file: PathBuf,
    pub data_key: Option<Secret>,
}

impl KeyPaths {
    /// Reads and checks all key material; errors name the variable to fix.
    pub(crate) fn load(&self) -> anyhow::Result<KeySet> {
        let ring = self.load_ring()?;
        let refresh_secret = match &self.refresh_secret {
            Some(secret) => secret.clone(),
            None => {
                warn_if_readable_by_others("REFRESH_SECRET_FILE", &self.refresh_secret_file);
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
            data_key: self.load_data_key()?,
        })
    }

    /// `DATA_KEY`, else the file `DATA_KEY_FILE` if it exists, else none.
    fn load_data_key(&self) -> anyhow::Result<Option<DataKey>> {
        if let Some(key) = &self.data_key {
            return DataKey::from_base64(key.expose())
                .map(Some)
                .context("DATA_KEY");
        }
        if !self.data_key_file.exists() {
            return Ok(None);
        }
        warn_if_readable_by_others("DATA_KEY_FILE", &self.data_key_file);
        DataKey::read(&self.data_key_file).map(Some)
    }

    /// Reads the active pair and the published public keys.
    pub(crate) fn load_ring(&self) -> anyhow::Result<KeyRing> {
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

    pub(super) fn load_signer(&self) -> anyhow::Result<IdTokenSigner> {
        warn_if_readable_by_others("PRIV_KEY_FILE", &self.private_key);
        let private_pem = fs::read(&self.private_key).with_context(|| {
            format!(
                "PRIV_KEY_FILE: cannot read {} {KEYS_HINT}",
                self.private_key.display()
            )
        })?;
        IdTokenSigner::from_pem(&private_pem)
            .with_context(|| format!("PRIV_KEY_FILE: {}", self.private_key.display()))
    }

    pub(super) fn read_public_key(&self) -> anyhow::Result<Jwk> {
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
    pub(super) fn published_keys(&self) -> anyhow::Result<Vec<Jwk>> {
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
    pub(crate) fn next_private_key(&self) -> PathBuf {
        self.private_key.with_file_name("next-private.pem")
    }
}

const KEYS_HINT: &str = "(run `account keys generate` to create development keys)";

impl KeyPaths {
    /// For a single embedded instance: creates whatever development key
    /// material is missing (the RSA pair when neither file exists, the refresh
    /// secret when `REFRESH_SECRET` is unset and its file does not exist).
    /// Returns where the keys came from, for the start-up log.
    pub(crate) fn generate_missing(&self) -> anyhow::Result<String> {
        let mut generated = Vec::new();
        if !self.private_key.exists() && !self.public_key.exists() {
            generate_rsa_pair(&self.private_key, &self.public_key)?;
            generated.extend([&self.private_key, &self.public_key]);
        }
        if self.refresh_secret.is_none() && !self.refresh_secret_file.exists() {
            generate_refresh_secret(&self.refresh_secret_file)?;
            generated.push(&self.refresh_secret_file);
        }
        if self.data_key.is_none() && !self.data_key_file.exists() {
            generate_data_key(&self.data_key_file)?;
            generated.push(&self.data_key_file);
        }
        Ok(if generated.is_empty() {
            self.origin()
        } else {
            let files: Vec<String> = generated.iter().map(|p| p.display().to_string()).collect();
            format!("generated on first start: {}", files.join(", "))
        })
    }

    /// Where existing keys are read from, for the start-up log.
    pub(crate) fn origin(&self) -> String {
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
    pub data_key: PathBuf,
}

impl GeneratedKeyFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            private_key: dir.join("private.pem"),
            public_key: dir.join("public.pem"),
            refresh_secret: dir.join("refresh.secret"),
            data_key: dir.join("data.key"),
        }
    }
}

/// Generates an RSA-2048 pair (PKCS#8 / SPKI PEM), a 256-bit refresh secret
/// and, if there is none yet, a data key, written owner-only. Existing key
/// and secret files are kept unless `overwrite`; an existing data key is
/// always kept (what it encrypted would be lost with it). Whether a data key
/// was written.
pub fn generate_keys(files: &GeneratedKeyFiles, overwrite: bool) -> anyhow::Result<bool> {
    for path in [&files.private_key, &files.public_key, &files.refresh_secret] {
        if !overwrite && path.exists() {
            bail!(
                "{} already exists (use --force to replace it)",
                path.display()
            );
        }
    }
    generate_rsa_pair(&files.private_key, &files.public_key)?;
    generate_refresh_secret(&files.refresh_secret)?;
    if files.data_key.exists() {
        return Ok(false);
    }
    generate_data_key(&files.data_key)?;
    Ok(true)
}

/// Writes a new RSA-2048 pair: PKCS#8 private key and SPKI public key, in PEM.
pub(crate) fn generate_rsa_pair(private_key: &Path, public_key: &Path) -> anyhow::Result<()> {
    let (private_pem, signer) = new_rsa_key()?;
    write_private(private_key, private_pem.as_bytes())?;
    write_private(public_key, signer.public_pem()?.as_bytes())
}

/// A new RSA-2048 key: its PKCS#8 PEM, and the signer parsed from it.
pub(super) fn new_rsa_key() -> anyhow::Result<(String, IdTokenSigner)> {
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
pub(crate) fn generate_refresh_secret(path: &Path) -> anyhow::Result<()> {
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| anyhow!("no randomness"))?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, format!("{hex}\n").as_bytes())
}

/// A warning naming the file when a secret (private key, refresh secret) can
/// be read by the file's group or by others: anyone on the machine who can
/// read it can sign ID tokens or refresh tokens. Not an error: a container
/// may mount it so on purpose, and refusing would stop a running service at
/// its next reload.
fn warn_if_readable_by_others(variable: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = %format!("{mode:o}"),
                "{variable}: the secret file is readable by group or others; \
                 make it owner-only (chmod 600)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[tokio::test]
    async fn secret_files_readable_by_others_are_named_in_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let files = GeneratedKeyFiles::in_dir(&dir.path().join("keys"));
        generate_keys(&files, false).unwrap();
        let paths = KeyPaths {
            private_key: files.private_key.clone(),
            public_key: files.public_key.clone(),
            refresh_secret_file: files.refresh_secret.clone(),
            refresh_secret: None,
            published_dir: dir.path().join("keys/published"),
            data_key_file: files.data_key.clone(),
            data_key: None,
        };
        let (loaded, logs) = crate::test_logs::logged_during(async { paths.load() }).await;
        loaded.unwrap();
        assert!(!logs.contains("WARN"), "owner-only files: {logs}");

        for (path, mode) in [(&files.private_key, 0o644), (&files.refresh_secret, 0o640)] {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        }
        let (loaded, logs) = crate::test_logs::logged_during(async { paths.load() }).await;
        loaded.unwrap();
        let warnings: Vec<_> = logs.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 2, "{logs}");
        assert!(warnings[0].contains("PRIV_KEY_FILE"), "{logs}");
        assert!(
            warnings[0].contains(&files.private_key.display().to_string()),
            "{logs}"
        );
        assert!(warnings[1].contains("REFRESH_SECRET_FILE"), "{logs}");
        assert!(warnings[1].contains("mode=640"), "{logs}");
    }

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
            data_key_file: files.data_key.clone(),
            data_key: None,
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
            data_key_file: dir.path().join("data.key"),
            data_key: None,
        }
        .load()
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("PUB_KEY_FILE"), "{err:#}");
    }

    #[test]
    fn the_data_key_comes_from_data_key_or_its_file_and_is_never_replaced() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let files = GeneratedKeyFiles::in_dir(dir.path());
        assert!(
            generate_keys(&files, false).unwrap(),
            "a data key was written"
        );
        let written = fs::read(&files.data_key).unwrap();
        assert_eq!(
            fs::metadata(&files.data_key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // --force replaces the keys, never the data key.
        assert!(!generate_keys(&files, true).unwrap());
        assert_eq!(fs::read(&files.data_key).unwrap(), written);

        let paths = |data_key: Option<&str>, file: PathBuf| KeyPaths {
            private_key: files.private_key.clone(),
            public_key: files.public_key.clone(),
            refresh_secret_file: files.refresh_secret.clone(),
            refresh_secret: None,
            published_dir: dir.path().join("published"),
            data_key_file: file,
            data_key: data_key.map(|k| Secret::new(k.to_owned())),
        };
        let from_file = paths(None, files.data_key.clone()).load().unwrap();
        let sealed = from_file.data_key.unwrap().seal(b"f", b"secret").unwrap();
        let again = paths(None, files.data_key.clone()).load().unwrap();
        assert_eq!(
            again.data_key.unwrap().open(b"f", &sealed).as_deref(),
            Some(&b"secret"[..])
        );
        let missing = paths(None, dir.path().join("none.key")).load().unwrap();
        assert!(missing.data_key.is_none(), "no key: enrolment is off");
        let value = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let from_value = paths(Some(&value), dir.path().join("none.key"))
            .load()
            .unwrap();
        assert!(from_value.data_key.is_some());
        let err = paths(Some("too short"), files.data_key.clone())
            .load()
            .err()
            .unwrap();
        assert!(format!("{err:#}").starts_with("DATA_KEY"), "{err:#}");

        // An embedded first start writes a missing one.
        let fresh = paths(None, dir.path().join("new/data.key"));
        let origin = fresh.generate_missing().unwrap();
        assert!(origin.contains("data.key"), "{origin}");
        assert!(fresh.load().unwrap().data_key.is_some());
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
            data_key_file: files.data_key,
            data_key: None,
        }
        .load()
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("REFRESH_SECRET"), "{err:#}");
    }
}
