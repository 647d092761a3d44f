//! Users and the validated values they are made of.

use uuid::Uuid;

/// A registered user as stored in the user repository.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub uid: Uuid,
    /// In the normal form of [`Email`] (rows from before it was introduced
    /// are brought to it at start-up, see `repository::normalise_emails`).
    pub email: String,
    /// Argon2id PHC string; never serialized, never logged.
    pub password_hash: String,
    pub name: String,
    pub image_url: String,
    pub website: String,
    /// Whether the person proved they read mail at `email` (a verification
    /// link, or a password reset); an email change clears it.
    pub email_verified: bool,
    /// Signed up while `EMAIL_CONFIRMATION=required`: may sign in only once
    /// `email_verified`, and an email change waits in `pending_email` until
    /// the new address is confirmed.
    pub must_verify: bool,
    /// The address an email change of a `must_verify` account waits for:
    /// it replaces `email` when the link mailed to it is opened.
    pub pending_email: Option<String>,
    /// Whether the user has a confirmed second factor, as read with the row
    /// by the sign-in's lookup (`false` from every other read): the sign-in
    /// gate needs no query of its own after the password is hashed.
    pub has_factor: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("uid", &self.uid)
            .field("email", &self.email)
            .field("password_hash", &"<redacted>")
            .field("name", &self.name)
            .field("image_url", &self.image_url)
            .field("website", &self.website)
            .field("email_verified", &self.email_verified)
            .field("must_verify", &self.must_verify)
            .field("pending_email", &self.pending_email)
            .finish()
    }
}

/// The profile fields a user may change with `PUT /details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDetails {
    pub email: Email,
    pub name: String,
    pub website: Website,
}

/// Longest accepted email address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in bytes: bounds the cost of hashing it.
pub const MAX_PASSWORD_BYTES: usize = 256;
/// Longest accepted display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest accepted website URL, in bytes.
pub const MAX_WEBSITE_BYTES: usize = 2048;

/// A syntactically valid email address in its normal form, the one stored and
/// looked up, so that look-alike spellings are one address:
///
/// - the local part as RFC 8265's `UsernameCaseMapped` profile prepares and
///   enforces it: fullwidth and halfwidth forms mapped to their ordinary forms,
///   lowercased, Unicode NFC, only the characters of the PRECIS
///   `IdentifierClass` (letters, digits, printable ASCII);
/// - the domain in its IDNA ASCII form (UTS 46 ToASCII, punycode `xn--`
///   labels), which lowercases, composes and width-maps it too;
/// - invisible and control characters (zero-width characters, the soft
///   hyphen, bidi controls, other format and control characters, default
///   ignorable code points) are refused anywhere, never silently dropped.
///
/// The normal form of a normal form is itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// The message for an address with an invisible or control character.
pub const EMAIL_INVISIBLE: &str = "email must not contain invisible or control characters \
     (zero-width characters, soft hyphens, direction marks and the like)";
const EMAIL_INVALID: &str = "email must be a valid email address";

impl Email {
    /// Validates an address and returns it in its normal form (see [`Email`]);
    /// the error is a message for the client.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("email is required".into());
        }
        let too_long = || format!("email must be at most {MAX_EMAIL_LEN} characters");
        // Bounds the work before any Unicode processing (a character is at most
        // four bytes); the normal form is held to the limit below.
        if trimmed.len() > 4 * MAX_EMAIL_LEN {
            return Err(too_long());
        }
        if trimmed.chars().any(is_invisible_or_control) {
            return Err(EMAIL_INVISIBLE.into());
        }
        let normal = normal_form(trimmed).ok_or(EMAIL_INVALID)?;
        if normal.len() > MAX_EMAIL_LEN {
            return Err(too_long());
        }
        let valid = email_address::EmailAddress::parse_with_options(
            &normal,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        )
        .is_ok();
        // A domain needs a dot: `a@localhost` is valid per RFC 5322 but never a
        // deliverable address for our users.
        let domain_has_dot = normal
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.contains('.') && !domain.ends_with('.'));
        if valid && domain_has_dot {
            Ok(Self(normal))
        } else {
            Err(EMAIL_INVALID.into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Whether `c` is invisible or a control: general category Cc (controls), Cf
/// (format: zero-width characters, the soft hyphen, bidi controls, the byte
/// order mark), Zl, Zp, or a default ignorable code point (fillers, variation
/// selectors), which renders as nothing.
fn is_invisible_or_control(c: char) -> bool {
    use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
    use icu_properties::{CodePointMapData, CodePointSetData};
    matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// `local@domain` with the local part through RFC 8265 `UsernameCaseMapped`
/// and the domain through UTS 46 ToASCII; `None` if either refuses it.
fn normal_form(address: &str) -> Option<String> {
    use precis_profiles::UsernameCaseMapped;
    use precis_profiles::precis_core::profile::{Profile as _, Rules as _};

    let profile = UsernameCaseMapped::new();
    // Width-map the whole address first, so that a fullwidth `＠` or `．`
    // separates as the ordinary one does.
    let mapped = profile.width_mapping_rule(address).ok()?;
    let (local, domain) = mapped.rsplit_once('@')?;
    let local = profile.enforce(local).ok()?;
    let domain = idna::uts46::Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            // Host names: letters, digits and hyphens only.
            idna::uts46::AsciiDenyList::STD3,
            idna::uts46::Hyphens::Allow,
            idna::uts46::DnsLength::Verify,
        )
        .ok()?;
    Some(format!("{local}@{domain}"))
}

/// A password that meets the length rules. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// Checks the length rules; the error is a message for the client.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(format!(
                "password must be at least {MIN_PASSWORD_CHARS} characters"
            ));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(format!(
                "password must be at most {MAX_PASSWORD_BYTES} bytes"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Accepts any non-empty password within the byte bound: for sign-in,
    /// where a too-short password is simply a wrong one (401, not 400).
    pub fn parse_for_signin(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("password is required".into());
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(format!(
                "password must be at most {MAX_PASSWORD_BYTES} bytes"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// An empty string or an absolute `http(s)` URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Website(String);

impl Website {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(Self::default());
        }
        if trimmed.len() > MAX_WEBSITE_BYTES {
            return Err(format!("website must be at most {MAX_WEBSITE_BYTES} bytes"));
        }
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"));
        match rest {
            Some(rest)
                if !rest.is_empty()
                    && !rest.starts_with('/')
                    && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                Ok(Self(trimmed.to_owned()))
            }
            _ => Err("website must be an http:// or https:// URL".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates a display name: trimmed, at most `MAX_NAME_CHARS`, no control characters.
pub fn parse_name(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(format!("name must be at most {MAX_NAME_CHARS} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_lowercased_and_trimmed() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "plain",
            "a@",
            "@b.io",
            "a b@c.io",
            "a@localhost",
            "Bob <b@c.io>",
            "a@[1.2.3.4]",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    fn parsed(raw: &str) -> String {
        Email::parse(raw)
            .unwrap_or_else(|e| panic!("{raw:?} should be accepted: {e}"))
            .into_inner()
    }

    #[test]
    fn ordinary_addresses_are_unchanged() {
        for ok in [
            "ada@example.com",
            "first.last+tag@sub.example.co.uk",
            "o'brien@example.org",
            "x_y-z.0@example.io",
            "ada@xn--bcher-kva.example",
        ] {
            assert_eq!(parsed(ok), ok);
        }
    }

    #[test]
    fn decomposed_characters_are_composed() {
        // NFD `e` + U+0301 COMBINING ACUTE ACCENT → NFC U+00E9.
        assert_eq!(parsed("jose\u{301}@example.com"), "jos\u{e9}@example.com");
        assert_eq!(parsed("jos\u{e9}@example.com"), "jos\u{e9}@example.com");
    }

    #[test]
    fn fullwidth_and_halfwidth_forms_become_ordinary_ones() {
        assert_eq!(parsed("\u{ff41}da@example.com"), "ada@example.com");
        assert_eq!(
            parsed("\u{ff41}\u{ff44}\u{ff41}\u{ff20}\u{ff45}xample\u{ff0e}com"),
            "ada@example.com",
            "fullwidth at sign and full stop too"
        );
        assert_eq!(parsed("ada@\u{ff45}xample.com"), "ada@example.com");
        // U+FF76 HALFWIDTH KATAKANA LETTER KA → U+30AB.
        assert_eq!(parsed("\u{ff76}@example.com"), "\u{30ab}@example.com");
    }

    #[test]
    fn non_ascii_letters_are_lowercased() {
        assert_eq!(parsed("JOS\u{c9}@EXAMPLE.COM"), "jos\u{e9}@example.com");
        assert_eq!(
            parsed("\u{416}\u{41e}\u{420}\u{410}@example.com"),
            "\u{436}\u{43e}\u{440}\u{430}@example.com"
        );
    }

    #[test]
    fn an_international_domain_is_stored_in_its_ascii_form() {
        assert_eq!(
            parsed("ada@b\u{fc}cher.example"),
            "ada@xn--bcher-kva.example"
        );
        assert_eq!(
            parsed("ada@B\u{dc}CHER.example"),
            "ada@xn--bcher-kva.example"
        );
        assert_eq!(
            parsed("ada@bu\u{308}cher.example"),
            "ada@xn--bcher-kva.example",
            "decomposed in the domain too"
        );
    }

    #[test]
    fn the_normal_form_is_a_fixed_point() {
        for raw in [
            "Ada@Example.COM",
            "jose\u{301}@example.com",
            "\u{ff41}da@b\u{fc}cher.example",
            "\u{5e9}\u{5dc}\u{5d5}\u{5dd}@example.com",
        ] {
            let once = parsed(raw);
            assert_eq!(parsed(&once), once, "{raw:?}");
        }
    }

    #[test]
    fn invisible_and_control_characters_are_refused_with_a_clear_message() {
        for bad in [
            "ada\u{200b}@example.com", // zero-width space
            "ada@exa\u{200b}mple.com", // … in the domain
            "a\u{ad}da@example.com",   // soft hyphen
            "ada@ex\u{ad}ample.com",   // … in the domain
            "\u{202e}ada@example.com", // right-to-left override
            "ada\u{200f}@example.com", // right-to-left mark
            "a\u{200d}da@example.com", // zero-width joiner
            "\u{feff}ada@example.com", // byte order mark
            "a\u{2060}da@example.com", // word joiner
            "a\u{3164}da@example.com", // Hangul filler (default ignorable)
            "a\u{fe0f}da@example.com", // variation selector
            "a\u{7}da@example.com",    // BEL
            "a\tda@example.com",       // tab inside
            "a\u{2028}da@example.com", // line separator
        ] {
            let err = Email::parse(bad).expect_err(&format!("{bad:?} should be refused"));
            assert!(
                err.contains("invisible or control characters"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn other_characters_outside_the_profile_are_refused() {
        for bad in [
            "a\u{2603}@example.com",  // snowman: a symbol
            "\u{ff41} b@example.com", // a space inside
            "ada@exam_ple.com",       // not a host name
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn password_length_is_bounded_both_ways() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse("éééééééé").is_ok(), "counted in characters");
        assert!(Password::parse(&"x".repeat(256)).is_ok());
        assert!(Password::parse(&"x".repeat(257)).is_err());
    }

    #[test]
    fn password_debug_is_redacted() {
        let p = Password::parse("supersecret").unwrap();
        assert!(!format!("{p:?}").contains("supersecret"));
    }

    #[test]
    fn website_must_be_http_url_or_empty() {
        assert_eq!(Website::parse("").unwrap().as_str(), "");
        assert!(Website::parse("https://example.com/me").is_ok());
        assert!(Website::parse("javascript:alert(1)").is_err());
        assert!(Website::parse("https://").is_err());
        assert!(Website::parse("http://a b").is_err());
    }

    #[test]
    fn name_rejects_control_characters_and_overlong_names() {
        assert_eq!(parse_name("  Ada ").unwrap(), "Ada");
        assert!(parse_name("a\u{0}b").is_err());
        assert!(parse_name(&"n".repeat(101)).is_err());
    }
}
