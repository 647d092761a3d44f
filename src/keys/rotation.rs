//! Key rotation: staging the next key, making it active, retiring old keys, listing the ring.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use super::files::new_rsa_key;
use super::{IdTokenSigner, KeyPaths};
use crate::fs_private::{rename_durably, write_private};

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
pub(super) fn staged_kid(paths: &KeyPaths) -> anyhow::Result<Option<String>> {
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
    use std::path::Path;

    use super::*;
    use crate::keys::{GeneratedKeyFiles, KeyRing, generate_keys};

    fn ring_paths(dir: &Path) -> KeyPaths {
        let files = GeneratedKeyFiles::in_dir(dir);
        generate_keys(&files, false).unwrap();
        KeyPaths {
            private_key: files.private_key,
            public_key: files.public_key,
            refresh_secret_file: files.refresh_secret,
            refresh_secret: None,
            published_dir: dir.join("published"),
            data_key_file: files.data_key,
            data_key: None,
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
