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
//!
//! - `signer`: the RSA signing key, parsed once;
//! - `ring`: the active key and the published ones, replaceable at run time;
//! - `files`: the key files, loading them, generating development keys;
//! - `rotation`: staging, rotating, retiring and listing keys (`account keys …`);
//! - `reload`: putting a re-read ring in force on demand or on `SIGHUP`.
//!
//! Everything is used as `crate::keys::…`; the submodules are private.

mod data_key;
mod files;
mod reload;
mod ring;
mod rotation;
mod signer;

pub use data_key::DataKey;
#[cfg(test)]
pub(crate) use files::KeySet;
pub use files::{GeneratedKeyFiles, KeyPaths, generate_keys};
pub use reload::KeyReloader;
pub use ring::{KeyRing, SharedKeyRing};
pub use rotation::{list_keys, retire_key, rotate_keys, stage_next_key};
pub use signer::IdTokenSigner;
