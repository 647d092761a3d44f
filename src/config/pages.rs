//! `PUBLIC_URL` and the pages the mails link to: where people and browsers
//! reach this service, known for certain only once it listens.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;

use super::{Vars, defaults, limits};
use crate::service::{EmailConfirmation, FlowConfig};

/// The links' settings as configured; [`PageSettings::flows`] makes them
/// concrete once the address the service listens on is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSettings {
    /// `PUBLIC_URL` without a trailing `/`; unset: computed from the bound
    /// address ([`default_public_url`]).
    pub public_url: Option<String>,
    /// `VERIFY_EMAIL_URL`; unset: `<public URL>/verify-email`.
    pub verify_email_url: Option<String>,
    /// `RESET_PASSWORD_URL`; unset: `<public URL>/reset-password`.
    pub reset_password_url: Option<String>,
    /// `ACCOUNT_URL`; unset: `<public URL>/account`.
    pub account_url: Option<String>,
    /// `SECURITY_MAIL`: `on` (the default) or `off`.
    pub security_mail: bool,
    /// `VERIFY_TOKEN_EXP`
    pub verify_token_ttl: Duration,
    /// `RESET_TOKEN_EXP`
    pub reset_token_ttl: Duration,
    /// `EMAIL_CONFIRMATION`: whether a sign-up waits for its address to be
    /// confirmed (and hides whether the address was taken).
    pub email_confirmation: EmailConfirmation,
    /// `PAGES`: whether the service serves the pages for people at the root
    /// (`on`, the default) or leaves them to the team (`off`).
    pub serve_pages: bool,
    /// `PAGES_TITLE`: the product name in the pages' titles and headings.
    pub title: String,
    /// `REDIRECT_URLS`: where the pages may send people back to
    /// (`?redirect_to=`); empty: nowhere.
    pub redirect_urls: Vec<url::Url>,
}

impl PageSettings {
    /// The origin people reach the service at, for a service that listens
    /// on `bound` as `host` asked.
    pub fn public_url(&self, host: &str, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| default_public_url(host, bound))
    }

    /// The links of the mails, for a service that listens on `bound`.
    pub fn flows(&self, host: &str, bound: SocketAddr) -> FlowConfig {
        let public = self.public_url(host, bound);
        let page = |set: &Option<String>, path: &str| {
            set.clone().unwrap_or_else(|| format!("{public}{path}"))
        };
        FlowConfig {
            verify_email_url: page(&self.verify_email_url, defaults::VERIFY_EMAIL_PATH),
            reset_password_url: page(&self.reset_password_url, defaults::RESET_PASSWORD_PATH),
            verify_token_ttl: self.verify_token_ttl,
            reset_token_ttl: self.reset_token_ttl,
            email_confirmation: self.email_confirmation,
            account_url: page(&self.account_url, defaults::ACCOUNT_PATH),
            security_mail: self.security_mail,
        }
    }
}

/// `PUBLIC_URL` unset: `http://localhost:<port>` when the service listens on
/// a loopback or unspecified address (`0.0.0.0`, `::`), else
/// `http://<HOST>:<port>` (an IPv6 address in brackets). `localhost` and not
/// `127.0.0.1`: browsers refuse an IP address as a WebAuthn relying party.
pub fn default_public_url(host: &str, bound: SocketAddr) -> String {
    let ip = bound.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        return format!("http://localhost:{}", bound.port());
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) if host.is_empty() => ip.to_string(),
        Err(_) => host.to_owned(),
    };
    format!("http://{host}:{}", bound.port())
}

/// Whether mail links from the default `PUBLIC_URL` would name an address
/// only this machine reaches although the service listens on every
/// interface (a container, a server): worth a warning at start-up.
pub fn default_is_local_only(settings: &PageSettings, bound: SocketAddr) -> bool {
    settings.public_url.is_none() && bound.ip().is_unspecified()
}

/// `PUBLIC_URL`, the pages the mails link to and the lifetimes of their tokens.
pub(super) fn page_settings(env: &Vars) -> anyhow::Result<PageSettings> {
    let serve_pages = on_off(env, "PAGES")?;
    let public_url = match env.optional("PUBLIC_URL") {
        Some(raw) => {
            let url = http_url("PUBLIC_URL", &raw)?;
            if url.contains('?') {
                bail!("PUBLIC_URL: must not have a query (it is the base of the links)");
            }
            let url = url.trim_end_matches('/').to_owned();
            let has_path = url
                .split_once("://")
                .is_some_and(|(_, rest)| rest.contains('/'));
            if serve_pages && has_path {
                bail!(
                    "PUBLIC_URL: must be an origin without a path while PAGES=on (the pages \
                     are served at the root); with PAGES=off a path is kept for the mail links"
                );
            }
            Some(url)
        }
        None => None,
    };
    let page = |name: &str| {
        env.optional(name)
            .map(|url| http_url(name, &url))
            .transpose()
    };
    Ok(PageSettings {
        public_url,
        verify_email_url: page("VERIFY_EMAIL_URL")?,
        reset_password_url: page("RESET_PASSWORD_URL")?,
        account_url: page("ACCOUNT_URL")?,
        security_mail: on_off(env, "SECURITY_MAIL")?,
        verify_token_ttl: env.seconds(
            "VERIFY_TOKEN_EXP",
            defaults::VERIFY_TOKEN_EXP,
            limits::VERIFY_TOKEN_EXP,
        )?,
        reset_token_ttl: env.seconds(
            "RESET_TOKEN_EXP",
            defaults::RESET_TOKEN_EXP,
            limits::RESET_TOKEN_EXP,
        )?,
        email_confirmation: EmailConfirmation::parse(env.raw("EMAIL_CONFIRMATION").as_deref())
            .map_err(anyhow::Error::msg)?,
        serve_pages,
        title: pages_title(env)?,
        redirect_urls: redirect_urls(env)?,
    })
}

/// A switch: `on` (also when unset) or `off`, in any case.
fn on_off(env: &Vars, name: &str) -> anyhow::Result<bool> {
    match env.optional(name).as_deref().map(str::trim) {
        None => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("on") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("off") => Ok(false),
        Some(v) => bail!("{name}: must be on or off, not {v:?}"),
    }
}

/// `PAGES_TITLE`: trimmed, 1 to 60 characters, no control characters.
fn pages_title(env: &Vars) -> anyhow::Result<String> {
    let Some(raw) = env.optional("PAGES_TITLE") else {
        return Ok(defaults::PAGES_TITLE.to_owned());
    };
    let title = raw.trim();
    if title.is_empty() || title.chars().count() > 60 || title.chars().any(char::is_control) {
        bail!("PAGES_TITLE: must be 1 to 60 characters without control characters");
    }
    Ok(title.to_owned())
}

/// `REDIRECT_URLS`: comma-separated absolute `http(s)` URLs with a host, no
/// user info, query or fragment.
fn redirect_urls(env: &Vars) -> anyhow::Result<Vec<url::Url>> {
    let Some(raw) = env.optional("REDIRECT_URLS") else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let url = url::Url::parse(entry).ok().filter(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some_and(|host| !host.is_empty())
                    && url.username().is_empty()
                    && url.password().is_none()
                    && url.query().is_none()
                    && url.fragment().is_none()
            });
            url.ok_or_else(|| {
                anyhow::anyhow!(
                    "REDIRECT_URLS: {entry:?} is not an http:// or https:// URL with a host and \
                     no user info, query or fragment (like https://app.example/home)"
                )
            })
        })
        .collect()
}

/// An absolute `http(s)` URL with a host (no user info), no fragment (the
/// token is appended as a query parameter) and no whitespace.
fn http_url(name: &str, raw: &str) -> anyhow::Result<String> {
    let url = raw.trim();
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .map(|rest| rest.split(['/', '?']).next().unwrap_or_default());
    let valid = host
        .is_some_and(|host| !host.is_empty() && !host.starts_with(':') && !host.contains('@'))
        && !url.contains('#')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        bail!(
            "{name}: must be an http:// or https:// URL with a host and no #fragment, \
             like https://app.example/verify-email"
        );
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(address: &str) -> SocketAddr {
        address.parse().unwrap()
    }

    #[test]
    fn the_default_public_url_follows_the_listener() {
        for (host, bound, expected) in [
            ("127.0.0.1", "127.0.0.1:18555", "http://localhost:18555"),
            ("localhost", "127.0.0.1:41000", "http://localhost:41000"),
            ("::1", "[::1]:8080", "http://localhost:8080"),
            ("0.0.0.0", "0.0.0.0:8080", "http://localhost:8080"),
            ("::", "[::]:9000", "http://localhost:9000"),
            ("10.1.2.3", "10.1.2.3:8080", "http://10.1.2.3:8080"),
            (
                "2001:db8::5",
                "[2001:db8::5]:8443",
                "http://[2001:db8::5]:8443",
            ),
            (
                "account.internal",
                "10.1.2.3:8080",
                "http://account.internal:8080",
            ),
        ] {
            assert_eq!(
                default_public_url(host, at(bound)),
                expected,
                "{host} {bound}"
            );
        }
    }

    #[test]
    fn only_a_default_on_every_interface_is_local_only() {
        let settings = |public_url: Option<&str>| PageSettings {
            public_url: public_url.map(str::to_owned),
            verify_email_url: None,
            reset_password_url: None,
            account_url: None,
            security_mail: true,
            verify_token_ttl: Duration::from_secs(1),
            reset_token_ttl: Duration::from_secs(1),
            email_confirmation: EmailConfirmation::Optional,
            serve_pages: true,
            title: defaults::PAGES_TITLE.into(),
            redirect_urls: Vec::new(),
        };
        assert!(default_is_local_only(&settings(None), at("0.0.0.0:8080")));
        assert!(default_is_local_only(&settings(None), at("[::]:8080")));
        assert!(!default_is_local_only(
            &settings(None),
            at("127.0.0.1:8080")
        ));
        assert!(!default_is_local_only(
            &settings(Some("https://app.example")),
            at("0.0.0.0:8080")
        ));
    }
}
