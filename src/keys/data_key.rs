//! The data key: encrypts secrets the service must read back (the shared
//! secrets of authenticator factors) before they reach a database, so a
//! copy of the database (a backup, a replica, a dump) does not hold them in
//! the clear. AES-256-GCM with a random 96-bit nonce stored in front of the
//! ciphertext; the caller's associated data (the factor's id) binds each
//! ciphertext to its row, so one cannot be moved to another.
//!
//! `DATA_KEY` (32 bytes, base64) or the file `DATA_KEY_FILE` (the same, one
//! line; written owner-only by `account keys generate` and on the first
//! embedded start).

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::fs_private::write_private;

/// Bytes of the key.
pub const DATA_KEY_BYTES: usize = 32;

/// The key, ready to seal and open. Its `Debug` shows nothing.
pub struct DataKey(LessSafeKey);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// The key written as base64 (standard alphabet, padding optional).
    pub fn from_base64(text: &str) -> anyhow::Result<Self> {
        let text = text.trim().trim_end_matches('=');
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text)
            .map_err(|_| anyhow!("not base64"))?;
        if bytes.len() != DATA_KEY_BYTES {
            bail!("must be {DATA_KEY_BYTES} bytes, not {}", bytes.len());
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| anyhow!("not a key"))?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// The key of the file at `path`.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("DATA_KEY_FILE: cannot read {}", path.display()))?;
        Self::from_base64(&text).with_context(|| format!("DATA_KEY_FILE {}", path.display()))
    }

    /// `plain`, encrypted and bound to `context`: nonce, then ciphertext and tag.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| anyhow!("no randomness"))?;
        let mut data = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut data,
            )
            .map_err(|_| anyhow!("cannot seal"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&data);
        Ok(sealed)
    }

    /// What [`DataKey::seal`] sealed with this key and `context`; `None`
    /// for another key, another context or a changed byte.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context), &mut data)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// Writes a new random data key to `path`, base64, owner-only.
pub fn generate_data_key(path: &Path) -> anyhow::Result<()> {
    let mut key = [0u8; DATA_KEY_BYTES];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| anyhow!("no randomness"))?;
    write_private(path, format!("{}\n", STANDARD.encode(key)).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn only_the_same_key_and_context_open_what_was_sealed() {
        let sealed = key().seal(b"factor-1", b"the secret").unwrap();
        assert_eq!(
            key().open(b"factor-1", &sealed).as_deref(),
            Some(&b"the secret"[..])
        );
        assert_eq!(
            key().open(b"factor-2", &sealed),
            None,
            "moved to another row"
        );
        let other = DataKey::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert_eq!(other.open(b"factor-1", &sealed), None);
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(key().open(b"factor-1", &changed), None);
        assert_eq!(key().open(b"factor-1", &sealed[..5]), None);
        assert!(!sealed.windows(10).any(|w| w == b"the secret"));
        assert_ne!(
            sealed,
            key().seal(b"factor-1", b"the secret").unwrap(),
            "fresh nonce"
        );
        assert_eq!(format!("{:?}", key()), "DataKey(<redacted>)");
    }

    #[test]
    fn a_key_is_32_bytes_of_base64() {
        assert!(DataKey::from_base64(&format!("{}\n", STANDARD.encode([1u8; 32]))).is_ok());
        assert!(DataKey::from_base64(STANDARD_NO_PAD_ENCODED).is_ok());
        for bad in [
            "",
            "not base64!",
            &STANDARD.encode([1u8; 16]),
            &STANDARD.encode([1u8; 33]),
        ] {
            assert!(DataKey::from_base64(bad).is_err(), "{bad}");
        }
    }

    const STANDARD_NO_PAD_ENCODED: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE";

    #[test]
    fn a_generated_key_file_is_owner_only_and_reads_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        generate_data_key(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let key = DataKey::read(&path).unwrap();
        let sealed = key.seal(b"x", b"y").unwrap();
        assert_eq!(
            DataKey::read(&path).unwrap().open(b"x", &sealed).as_deref(),
            Some(&b"y"[..])
        );
    }
}
