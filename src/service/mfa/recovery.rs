//! Recovery codes: ten single-use codes, shown once when the first factor is
//! confirmed (and when a new set is asked for), for the day the phone is
//! lost. Each is 80 random bits written as 16 Crockford base32 characters,
//! shown in groups of four (`7KQ2-M9XD-4HTA-PW3E`). Only their SHA-256 is
//! stored: 80 bits are out of reach of a brute force, so a slow hash (and
//! the hashing queue) would buy nothing.

use aws_lc_rs::digest;

/// Codes in a set.
pub const COUNT: usize = 10;
/// Characters of a code.
pub const CHARS: usize = 16;
/// Crockford's base32: no I, L, O or U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// One code, in its canonical form (16 upper-case characters of
/// [`ALPHABET`]). Its `Debug` shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

impl RecoveryCode {
    /// A new random code.
    fn generate() -> anyhow::Result<Self> {
        let mut bytes = [0u8; CHARS * 5 / 8];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness"))?;
        // 80 bits, five at a time.
        let mut bits: u128 = 0;
        for byte in bytes {
            bits = (bits << 8) | u128::from(byte);
        }
        let code = (0..CHARS)
            .rev()
            .map(|i| char::from(ALPHABET[((bits >> (5 * i)) & 0x1f) as usize]))
            .collect();
        Ok(Self(code))
    }

    /// What a person typed, read as Crockford does: any case, hyphens and
    /// spaces ignored, `I` and `L` as `1`, `O` as `0`; `None` unless that
    /// leaves 16 characters of the alphabet.
    pub fn parse(input: &str) -> Option<Self> {
        let code: String = input
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                c => c,
            })
            .collect();
        let valid = code.len() == CHARS && code.bytes().all(|b| ALPHABET.contains(&b));
        valid.then_some(Self(code))
    }

    /// In groups of four: `7KQ2-M9XD-4HTA-PW3E`.
    pub fn display(&self) -> String {
        self.0
            .as_bytes()
            .chunks(4)
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// What is stored: SHA-256 of the canonical form, in hex.
    pub fn digest(&self) -> String {
        digest::digest(&digest::SHA256, self.0.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A new set of [`COUNT`] different codes.
pub fn generate_set() -> anyhow::Result<Vec<RecoveryCode>> {
    let mut codes: Vec<RecoveryCode> = Vec::with_capacity(COUNT);
    while codes.len() < COUNT {
        let code = RecoveryCode::generate()?;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_different_codes_of_sixteen_crockford_characters() {
        let set = generate_set().unwrap();
        assert_eq!(set.len(), 10);
        for code in &set {
            assert_eq!(code.0.len(), 16);
            assert!(code.0.bytes().all(|b| ALPHABET.contains(&b)), "{}", code.0);
            let shown = code.display();
            assert_eq!(shown.len(), 19);
            assert_eq!(shown.matches('-').count(), 3);
            assert_eq!(RecoveryCode::parse(&shown).as_ref(), Some(code));
        }
        let digests: std::collections::HashSet<String> =
            set.iter().map(RecoveryCode::digest).collect();
        assert_eq!(digests.len(), 10);
        assert_ne!(generate_set().unwrap(), set);
    }

    #[test]
    fn typing_is_forgiven_as_crockford_says() {
        let code = RecoveryCode::parse("7KQ2-M9XD-4HTA-PW30").unwrap();
        for typed in [
            "7kq2-m9xd-4hta-pw30",
            "7KQ2 M9XD 4HTA PW3O",
            " 7KQ2M9XD4HTAPW30 ",
            "7kq2-m9xd-4hta-pw3o",
        ] {
            assert_eq!(RecoveryCode::parse(typed).as_ref(), Some(&code), "{typed}");
        }
        assert_eq!(
            RecoveryCode::parse("1111-1111-1111-1111"),
            RecoveryCode::parse("iIlL-1111-1111-1111")
        );
        for bad in [
            "",
            "7KQ2-M9XD-4HTA-PW3",
            "7KQ2-M9XD-4HTA-PW300",
            "7KQ2-M9XD-4HTA-PW3U",
            "7KQ2-M9XD-4HTA-PW3!",
        ] {
            assert_eq!(RecoveryCode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_digest_is_sha_256_of_the_canonical_form() {
        let code = RecoveryCode::parse("0000-0000-0000-0000").unwrap();
        assert_eq!(
            code.digest(),
            "fcdb4b423f4e5283afa249d762ef6aef150e91fccd810d43e5e719d14512dec7"
        );
        assert_eq!(
            RecoveryCode::parse("0000000000000000").unwrap().digest(),
            code.digest()
        );
        assert_eq!(code.digest().len(), 64);
        assert_eq!(format!("{code:?}"), "RecoveryCode(<redacted>)");
    }
}
