//! Authenticator codes, RFC 6238: HMAC-SHA-1 over the 30-second step, six
//! digits (what every authenticator app speaks). A code is accepted for the
//! step before, the current one and the one after (clocks drift), and only
//! once: a step at or before the factor's last used one is refused, so a
//! code seen over a shoulder or in a log cannot be replayed.
//!
//! HOTP is the few lines of RFC 4226 §5.3 over aws-lc-rs's HMAC (the crypto
//! library the service already uses); the tests check RFC 6238's own test
//! vectors, and the HTTP tests compute their codes with an independent
//! implementation (`totp-rs`).

use aws_lc_rs::hmac;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds of a step.
pub const STEP_SECS: u64 = 30;
/// Steps accepted on either side of the current one.
pub const WINDOW: u64 = 1;
/// Bytes of a secret: 160 bits, RFC 4226's recommendation for SHA-1.
pub const SECRET_BYTES: usize = 20;

/// A factor's shared secret. Its `Debug` shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness"))?;
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as people type it into an app: RFC 4648 base32 without
    /// padding.
    pub fn base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    /// The code of `step` (RFC 4226 §5.3, dynamic truncation).
    pub fn code_at(&self, step: u64) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let mac = hmac::sign(&key, &step.to_be_bytes());
        let mac = mac.as_ref();
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let binary = u32::from_be_bytes([
            mac[offset] & 0x7f,
            mac[offset + 1],
            mac[offset + 2],
            mac[offset + 3],
        ]);
        format!("{:0width$}", binary % 1_000_000, width = DIGITS)
    }

    /// The step `code` belongs to, if it is within [`WINDOW`] steps of
    /// `now`'s and later than `last_used` (each step works once). `code` may
    /// hold spaces ("123 456").
    pub fn accepted_step(&self, code: &str, now: u64, last_used: Option<u64>) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = step_of(now);
        (current.saturating_sub(WINDOW)..=current + WINDOW)
            .filter(|step| last_used.is_none_or(|last| *step > last))
            .find(|step| {
                let expected = self.code_at(*step);
                // Equal length, compared whole: no early exit on the first
                // differing digit.
                expected
                    .bytes()
                    .zip(code.bytes())
                    .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                    == 0
            })
    }
}

/// The step of Unix time `now`.
pub fn step_of(now: u64) -> u64 {
    now / STEP_SECS
}

/// The `otpauth://` URI an authenticator app reads from the QR code (the
/// Key Uri Format of Google Authenticator, which every app follows):
/// `issuer:account` as the label, the issuer again as a parameter.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &TotpSecret) -> String {
    let issuer = utf8_percent_encode(issuer, NON_ALPHANUMERIC).to_string();
    let account = utf8_percent_encode(account, NON_ALPHANUMERIC).to_string();
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        secret.base32()
    )
}

/// `uri` as a QR code in SVG, to be inserted into a page (no `data:` URL).
pub fn qr_svg(uri: &str) -> anyhow::Result<String> {
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 seed and its 8-digit codes; the last
    /// six digits are the six-digit codes.
    #[test]
    fn the_codes_are_those_of_rfc_6238() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (time, eight_digits) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(secret.code_at(step_of(time)), eight_digits[2..], "{time}");
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_not_two() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_700_000_015; // mid-step
        let step = step_of(now);
        for offset in [-1i64, 0, 1] {
            let at = step.checked_add_signed(offset).unwrap();
            assert_eq!(
                secret.accepted_step(&secret.code_at(at), now, None),
                Some(at),
                "{offset}"
            );
        }
        for offset in [-2i64, 2, 3, -10] {
            let at = step.checked_add_signed(offset).unwrap();
            let code = secret.code_at(at);
            let near = [-1i64, 0, 1].map(|o| secret.code_at(step.checked_add_signed(o).unwrap()));
            if near.contains(&code) {
                continue; // one chance in 10^6: another step has the same code
            }
            assert_eq!(secret.accepted_step(&code, now, None), None, "{offset}");
        }
    }

    #[test]
    fn a_step_works_once() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_700_000_015;
        let step = step_of(now);
        let code = secret.code_at(step);
        assert_eq!(secret.accepted_step(&code, now, None), Some(step));
        assert_eq!(secret.accepted_step(&code, now, Some(step)), None);
        assert_eq!(secret.accepted_step(&code, now + 30, Some(step)), None);
        // The next step's code still works after this one was used.
        assert_eq!(
            secret.accepted_step(&secret.code_at(step + 1), now, Some(step)),
            Some(step + 1)
        );
        // An older step is refused after a later one was used.
        assert_eq!(
            secret.accepted_step(&secret.code_at(step - 1), now, Some(step)),
            None
        );
    }

    #[test]
    fn only_six_digits_are_a_code() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_700_000_015;
        let code = secret.code_at(step_of(now));
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(secret.accepted_step(&spaced, now, None).is_some());
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "١٢٣٤٥٦",
            &format!("{code}0"),
        ] {
            assert_eq!(secret.accepted_step(bad, now, None), None, "{bad}");
        }
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters_and_the_qr_code_is_svg() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let uri = otpauth_uri("Example Cloud", "ada@example.com", &secret);
        assert_eq!(
            uri,
            "otpauth://totp/Example%20Cloud:ada%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Cloud&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
        assert!(!svg.contains("data:") && !svg.contains("<script"));
        assert_eq!(format!("{secret:?}"), "TotpSecret(<redacted>)");
    }
}
