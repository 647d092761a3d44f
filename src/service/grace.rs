//! Sealing the grace-window successor: the pair a rotation issued is kept in
//! the token store for a few seconds so that a concurrent refresh with the same
//! token gets it again — encrypted with a key only that token yields, so
//! reading the store gives no usable token.
//!
//! Key: HKDF-SHA256 over the presented refresh token (a MAC'd, high-entropy
//! string); cipher: AES-256-GCM with a random nonce, stored in front of the
//! ciphertext.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};

use crate::model::TokenPair;

const SALT: &[u8] = b"account/grace-successor/v1";

fn key_for(presented: &str) -> Option<LessSafeKey> {
    let prk = Salt::new(HKDF_SHA256, SALT).extract(presented.as_bytes());
    let okm = prk.expand(&[b"aes-256-gcm"], &AES_256_GCM).ok()?;
    Some(LessSafeKey::new(UnboundKey::from(okm)))
}

/// `pair`, encrypted with a key derived from `presented`.
pub(crate) fn seal(presented: &str, pair: &TokenPair) -> anyhow::Result<Vec<u8>> {
    let key = key_for(presented).ok_or_else(|| anyhow::anyhow!("cannot derive the grace key"))?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let mut data = serde_json::to_vec(pair)?;
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .map_err(|_| anyhow::anyhow!("cannot seal the grace successor"))?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&data);
    Ok(sealed)
}

/// The pair sealed with `presented`; `None` if `sealed` was not made with it.
pub(crate) fn open(presented: &str, sealed: &[u8]) -> Option<TokenPair> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let key = key_for(presented)?;
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut data = ciphertext.to_vec();
    let plain = key.open_in_place(nonce, Aad::empty(), &mut data).ok()?;
    serde_json::from_slice(plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> TokenPair {
        TokenPair {
            id_token: "id.token.sig".into(),
            refresh_token: "refresh.token.sig".into(),
        }
    }

    #[test]
    fn only_the_presented_token_opens_its_sealed_successor() {
        let sealed = seal("the-presented-token", &pair()).unwrap();
        assert_eq!(open("the-presented-token", &sealed), Some(pair()));
        assert_eq!(open("another-token", &sealed), None);
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("refresh.token.sig"), "stored in the clear");
    }

    #[test]
    fn tampered_or_short_ciphertexts_do_not_open() {
        let mut sealed = seal("t", &pair()).unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(open("t", &sealed), None);
        assert_eq!(open("t", &[1, 2, 3]), None);
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        assert_ne!(seal("t", &pair()).unwrap(), seal("t", &pair()).unwrap());
    }
}
