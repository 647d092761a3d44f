//! Users and the validated values they are made of.

use uuid::Uuid;

/// A registered user as stored in the user repository.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub uid: Uuid,
    /// Always lowercase.
    pub email: String,
    /// Argon2id PHC string; never serialized, never logged.
    pub password_hash: String,
    pub name: String,
    pub image_url: String,
    pub website: String,
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

/// A syntactically valid email address, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates and lowercases an address; the error is a message for the client.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("email is required".into());
        }
        if trimmed.len() > MAX_EMAIL_LEN {
            return Err(format!("email must be at most {MAX_EMAIL_LEN} characters"));
        }
        let lowered = trimmed.to_lowercase();
        let valid = email_address::EmailAddress::parse_with_options(
            &lowered,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        )
        .is_ok();
        // A domain needs a dot: `a@localhost` is valid per RFC 5322 but never a
        // deliverable address for our users.
        let domain_has_dot = lowered
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.contains('.') && !domain.ends_with('.'));
        if valid && domain_has_dot {
            Ok(Self(lowered))
        } else {
            Err("email must be a valid email address".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
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
