//! A key set generated once per unit-test run.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::keys::{GeneratedKeyFiles, KeyPaths, KeySet, generate_keys};

fn key_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        generate_keys(&GeneratedKeyFiles::in_dir(&dir), false).expect("generate keys");
        dir
    })
}

/// A freshly parsed key set (the same keys on every call).
pub fn test_key_set() -> KeySet {
    let files = GeneratedKeyFiles::in_dir(key_dir());
    KeyPaths {
        private_key: files.private_key,
        public_key: files.public_key,
        refresh_secret_file: files.refresh_secret,
        refresh_secret: None,
        published_dir: key_dir().join("published"),
        data_key_file: files.data_key,
        data_key: None,
    }
    .load()
    .expect("load test keys")
}
