//! Passkeys (issue 29): the WebAuthn relying party, from `WEBAUTHN_RP_ID`,
//! `WEBAUTHN_RP_NAME` and `WEBAUTHN_ORIGINS`, each defaulting to what
//! `PUBLIC_URL` and `PAGES_TITLE` say, and how long a ceremony waits.

use std::time::Duration;

use anyhow::bail;

use super::Vars;

/// Defaults and bounds of the settings below.
pub mod defaults {
    /// Seconds a ceremony waits between its start and its finish.
    pub const WEBAUTHN_CEREMONY_EXP: u64 = 300;
    pub const MAX_CEREMONY_EXP: u64 = 3_600;
}

/// The settings as configured; [`WebAuthnSettings::relying_party`] makes
/// them concrete once `PUBLIC_URL` is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnSettings {
    /// `WEBAUTHN_RP_ID`; unset: `PUBLIC_URL`'s host.
    pub rp_id: Option<String>,
    /// `WEBAUTHN_RP_NAME`; unset: `PAGES_TITLE`.
    pub rp_name: Option<String>,
    /// `WEBAUTHN_ORIGINS`; unset: `PUBLIC_URL`'s origin.
    pub origins: Option<Vec<url::Url>>,
    /// `WEBAUTHN_CEREMONY_EXP`
    pub ceremony_ttl: Duration,
}

/// The relying party passkeys are registered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// A registrable domain (`example.com`, `localhost`), never an address.
    pub id: String,
    /// What authenticators show.
    pub name: String,
    /// The origins whose pages may run the ceremonies.
    pub origins: Vec<url::Url>,
    pub ceremony_ttl: Duration,
}

impl WebAuthnSettings {
    /// The relying party of a service reached at `public_url` with pages
    /// titled `title`; `Err` says why passkeys are off (an IP address is
    /// not a valid relying-party id).
    pub fn relying_party(&self, public_url: &str, title: &str) -> Result<RelyingParty, String> {
        let public = url::Url::parse(public_url)
            .map_err(|e| format!("PUBLIC_URL {public_url:?} does not parse: {e}"))?;
        let id = match &self.rp_id {
            Some(id) => id.clone(),
            None => match public.host() {
                Some(url::Host::Domain(domain)) => domain.to_owned(),
                Some(_) => {
                    return Err(format!(
                        "PUBLIC_URL's host {} is an IP address, which browsers refuse as a \
                         WebAuthn relying party: use a name (http://localhost:<port> locally) \
                         or set WEBAUTHN_RP_ID",
                        public.host_str().unwrap_or_default()
                    ));
                }
                None => return Err("PUBLIC_URL has no host".to_owned()),
            },
        };
        let origins = match &self.origins {
            Some(origins) => origins.clone(),
            None => vec![
                url::Url::parse(&public.origin().ascii_serialization())
                    .map_err(|e| format!("PUBLIC_URL's origin: {e}"))?,
            ],
        };
        for origin in &origins {
            let host = origin.host_str().unwrap_or_default();
            if host != id && !host.ends_with(&format!(".{id}")) {
                return Err(format!(
                    "the origin {origin} is not on the relying party {id} (WEBAUTHN_ORIGINS \
                     must be {id} or its subdomains)"
                ));
            }
        }
        Ok(RelyingParty {
            id,
            name: self.rp_name.clone().unwrap_or_else(|| title.to_owned()),
            origins,
            ceremony_ttl: self.ceremony_ttl,
        })
    }
}

pub(super) fn webauthn_settings(env: &Vars) -> anyhow::Result<WebAuthnSettings> {
    let rp_id = match env.optional("WEBAUTHN_RP_ID") {
        Some(raw) => {
            let id = raw.trim().trim_end_matches('.').to_ascii_lowercase();
            if id.parse::<std::net::IpAddr>().is_ok()
                || id
                    .trim_matches(['[', ']'])
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok()
            {
                bail!("WEBAUTHN_RP_ID: must be a domain name, not an IP address");
            }
            let valid = !id.is_empty()
                && id.len() <= 253
                && id.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                });
            if !valid {
                bail!("WEBAUTHN_RP_ID: must be a domain name, like example.com or localhost");
            }
            Some(id)
        }
        None => None,
    };
    let rp_name = match env.optional("WEBAUTHN_RP_NAME") {
        Some(raw) => {
            let name = raw.trim();
            if name.chars().count() > 64 || name.chars().any(char::is_control) {
                bail!("WEBAUTHN_RP_NAME: must be 1 to 64 characters without control characters");
            }
            Some(name.to_owned())
        }
        None => None,
    };
    let origins = match env.optional("WEBAUTHN_ORIGINS") {
        Some(raw) => {
            let origins = raw
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(|entry| {
                    url::Url::parse(entry)
                        .ok()
                        .filter(|url| {
                            matches!(url.scheme(), "http" | "https")
                                && url.host_str().is_some()
                                && url.username().is_empty()
                                && url.password().is_none()
                                && url.path() == "/"
                                && url.query().is_none()
                                && url.fragment().is_none()
                        })
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "WEBAUTHN_ORIGINS: {entry:?} is not an origin (scheme, host and \
                                 port only, like https://app.example.com)"
                            )
                        })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if origins.is_empty() {
                bail!("WEBAUTHN_ORIGINS: name at least one origin");
            }
            Some(origins)
        }
        None => None,
    };
    Ok(WebAuthnSettings {
        rp_id,
        rp_name,
        origins,
        ceremony_ttl: env.seconds(
            "WEBAUTHN_CEREMONY_EXP",
            defaults::WEBAUTHN_CEREMONY_EXP,
            defaults::MAX_CEREMONY_EXP,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WebAuthnSettings {
        WebAuthnSettings {
            rp_id: None,
            rp_name: None,
            origins: None,
            ceremony_ttl: Duration::from_secs(300),
        }
    }

    #[test]
    fn the_relying_party_follows_public_url_and_the_title() {
        let rp = settings()
            .relying_party("https://id.example.com", "Example")
            .unwrap();
        assert_eq!(rp.id, "id.example.com");
        assert_eq!(rp.name, "Example");
        assert_eq!(rp.origins[0].as_str(), "https://id.example.com/");
        let rp = settings()
            .relying_party("http://localhost:8080", "Account")
            .unwrap();
        assert_eq!(
            (rp.id.as_str(), rp.origins[0].as_str()),
            ("localhost", "http://localhost:8080/")
        );
    }

    #[test]
    fn an_ip_address_leaves_passkeys_off_saying_why() {
        for url in [
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "https://10.0.0.5",
        ] {
            let why = settings().relying_party(url, "Account").unwrap_err();
            assert!(why.contains("IP address"), "{url}: {why}");
            assert!(why.contains("localhost"), "{url}: {why}");
        }
    }

    #[test]
    fn origins_must_be_on_the_relying_party() {
        let mut s = settings();
        s.rp_id = Some("example.com".into());
        s.origins = Some(vec![
            url::Url::parse("https://app.example.com").unwrap(),
            url::Url::parse("https://example.com").unwrap(),
        ]);
        assert!(s.relying_party("https://id.example.com", "A").is_ok());
        s.origins = Some(vec![url::Url::parse("https://badexample.com").unwrap()]);
        let why = s.relying_party("https://id.example.com", "A").unwrap_err();
        assert!(why.contains("not on the relying party"), "{why}");
    }
}
