//! Second factors: the authenticator issuer and the lifetimes of the
//! two-step sign-in (issue 27). `MFA_RATE_LIMIT` is with the other limits.

use std::time::Duration;

use anyhow::bail;

use super::Vars;

/// Defaults and bounds of the settings below.
pub mod defaults {
    /// Seconds an enrolment waits for its first code.
    pub const MFA_PENDING_EXP: u64 = 600;
    /// Seconds a right password waits for its second step.
    pub const MFA_TOKEN_EXP: u64 = 300;
    /// Seconds a sign-in counts as recent for enrolment.
    pub const REAUTH_MAX_AGE: u64 = 300;
    /// Failed second steps per user per window.
    pub const MFA_RATE_LIMIT: u64 = 5;
    pub const MAX_EXP: u64 = 3_600;
}

/// The settings of second factors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaSettings {
    /// `MFA_ISSUER`: the name authenticator apps show; unset, `PUBLIC_URL`'s host.
    pub issuer: Option<String>,
    /// `MFA_PENDING_EXP`
    pub pending_ttl: Duration,
    /// `MFA_TOKEN_EXP`
    pub token_ttl: Duration,
    /// `REAUTH_MAX_AGE`
    pub reauth_max_age: Duration,
}

impl MfaSettings {
    /// The issuer of a service reached at `public_url`.
    pub fn issuer(&self, public_url: &str) -> String {
        self.issuer.clone().unwrap_or_else(|| {
            url::Url::parse(public_url)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
                .unwrap_or_else(|| "account".to_owned())
        })
    }
}

pub(super) fn mfa_settings(env: &Vars) -> anyhow::Result<MfaSettings> {
    let issuer = match env.optional("MFA_ISSUER") {
        Some(raw) => {
            let issuer = raw.trim().to_owned();
            // A colon would split the otpauth label.
            if issuer.chars().count() > 60
                || issuer.contains(':')
                || issuer.chars().any(char::is_control)
            {
                bail!("MFA_ISSUER: must be 1 to 60 characters, without ':' or control characters");
            }
            Some(issuer)
        }
        None => None,
    };
    Ok(MfaSettings {
        issuer,
        pending_ttl: env.seconds(
            "MFA_PENDING_EXP",
            defaults::MFA_PENDING_EXP,
            defaults::MAX_EXP,
        )?,
        token_ttl: env.seconds("MFA_TOKEN_EXP", defaults::MFA_TOKEN_EXP, defaults::MAX_EXP)?,
        reauth_max_age: env.seconds(
            "REAUTH_MAX_AGE",
            defaults::REAUTH_MAX_AGE,
            defaults::MAX_EXP,
        )?,
    })
}
