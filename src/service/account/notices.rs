//! Security mails (issue 28): the owner of an account is told of each change
//! to how it signs in, and of a sign-in from a device none of its live
//! sessions runs on.
//!
//! They leave through the mailer like every mail, but are never counted on,
//! nor dropped by, `MAIL_RATE_LIMIT`: each follows an action of a signed-in
//! user or of an operator, so a stranger cannot use the limit up to silence
//! them. `SECURITY_MAIL=off` turns them all off. A mail says what happened,
//! when, on which device (browser and operating-system family, never the raw
//! `User-Agent`) and from which address, and links to the account page; it
//! never carries a secret, a code or a token.

use std::time::SystemTime;

use uuid::Uuid;

use super::AccountServiceImpl;
use crate::error::AppResult;
use crate::mail::{Mail, Mailer};
use crate::model::{Assurance, ClientInfo, FactorKind, TokenPair, User};

/// What happened to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    /// Changed with the current password (`PUT /password`).
    PasswordChanged,
    /// Set through a mailed reset link.
    PasswordReset,
    /// Mailed to the previous address; `to` is the new one (shown masked).
    EmailChanged { to: &'a str },
    /// A factor was confirmed; `first`: the account's first (recovery codes
    /// were made with it).
    FactorAdded { kind: FactorKind, first: bool },
    /// A confirmed factor was removed; `last`: none is left (nor are the
    /// recovery codes).
    FactorRemoved {
        kind: FactorKind,
        name: Option<&'a str>,
        last: bool,
    },
    /// A sign-in used a recovery code; `left` remain (`None`: not known).
    RecoveryCodeUsed { left: Option<u64> },
    /// A new set of recovery codes replaced the earlier one.
    RecoveryCodesRenewed,
    /// A sign-in from a device none of the live sessions runs on.
    NewDevice,
    /// An operator removed every factor and recovery code
    /// (`account users mfa-reset`) and ended every session.
    FactorsReset { factors: u64, sessions: u64 },
}

/// Who did it.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A request, from this device and address.
    Client(&'a ClientInfo),
    /// An operator, on the service's command line.
    Operator,
}

/// A device as a person names it, from a `User-Agent`: `Chrome on Linux`,
/// `Safari on iPhone`; `an unknown device` when it tells nothing. Only
/// names of the parser's own tables appear, never text of the header.
pub fn device_of(user_agent: &str) -> String {
    const UNKNOWN: &str = "UNKNOWN";
    let known = |s: &str| !s.is_empty() && s != UNKNOWN;
    match woothee::parser::Parser::new().parse(user_agent) {
        Some(ua) if known(ua.name) && known(ua.os) => format!("{} on {}", ua.name, ua.os),
        Some(ua) if known(ua.name) => ua.name.to_owned(),
        Some(ua) if known(ua.os) => format!("a device on {}", ua.os),
        _ => "an unknown device".to_owned(),
    }
}

/// An address with most of its local part hidden: `a***@example.com`.
pub fn masked(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

fn factor_label(kind: FactorKind, name: Option<&str>) -> String {
    let kind = match kind {
        FactorKind::Totp => "an authenticator app",
        FactorKind::WebAuthn => "a passkey",
    };
    // The user's own name for it, without what could hide or reorder text
    // (format characters such as bidi controls are neither kept class).
    let name = name.map(|name| {
        name.chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || c.is_ascii_punctuation())
            .collect::<String>()
    });
    match name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind} (\u{201c}{name}\u{201d})"),
        None => kind.to_owned(),
    }
}

const SECURE_IT: &str = "change your password on your account page at once (or ask for a \
     reset from the sign-in page) and end the sessions you do not know";

impl Notice<'_> {
    fn subject(&self) -> &'static str {
        match self {
            Self::PasswordChanged | Self::PasswordReset => "Your password was changed",
            Self::EmailChanged { .. } => "The email address of your account was changed",
            Self::FactorAdded { .. } => "Two-step sign-in: a factor was added",
            Self::FactorRemoved { .. } => "Two-step sign-in: a factor was removed",
            Self::RecoveryCodeUsed { .. } => "A recovery code was used to sign in",
            Self::RecoveryCodesRenewed => "New recovery codes were made",
            Self::NewDevice => "A sign-in from a new device",
            Self::FactorsReset { .. } => "Two-step sign-in was turned off for your account",
        }
    }

    /// What happened, in sentences.
    fn what(&self, account: &str) -> String {
        match self {
            Self::PasswordChanged => format!(
                "The password of your account {account} was changed; every other session \
                 of the account ends with it."
            ),
            Self::PasswordReset => format!(
                "The password of your account {account} was set anew with a reset link \
                 mailed to this address; every session of the account ends with it."
            ),
            Self::EmailChanged { to } => format!(
                "The email address of your account was changed from {account} to {}. \
                 Mail about the account now goes to the new address.",
                masked(to)
            ),
            Self::FactorAdded { kind, first } => {
                let mut text = format!(
                    "{} was added to the two-step sign-in of your account {account}.",
                    capitalised(&factor_label(*kind, None))
                );
                if *first {
                    text.push_str(
                        " Signing in now takes a code after the password, a set of recovery \
                         codes was made with it, and every other session was ended.",
                    );
                }
                text
            }
            Self::FactorRemoved { kind, name, last } => {
                let mut text = format!(
                    "{} was removed from the two-step sign-in of your account {account}.",
                    capitalised(&factor_label(*kind, *name))
                );
                if *last {
                    text.push_str(
                        " It was the last one: signing in takes only the password again, and \
                         the recovery codes no longer work.",
                    );
                }
                text
            }
            Self::RecoveryCodeUsed { left } => {
                let mut text = format!(
                    "A recovery code was used to sign in to your account {account}; it works \
                     no more."
                );
                if let Some(left) = left {
                    let are = if *left == 1 { " is" } else { "s are" };
                    text.push_str(&format!(" {left} recovery code{are} left."));
                }
                text
            }
            Self::RecoveryCodesRenewed => format!(
                "A new set of recovery codes was made for your account {account}; the \
                 earlier codes no longer work."
            ),
            Self::NewDevice => format!(
                "Your account {account} was signed in to from a device that none of its \
                 other sessions runs on."
            ),
            Self::FactorsReset { factors, sessions } => format!(
                "An operator of this service removed the two-step sign-in of your account \
                 {account}: {factors} factor{} and every recovery code were removed, and \
                 {sessions} session{} ended. Signing in takes only the password now; you can \
                 add an authenticator again on your account page.",
                if *factors == 1 { "" } else { "s" },
                if *sessions == 1 { " was" } else { "s were" }
            ),
        }
    }

    /// What to do when it was not the owner.
    fn advice(&self) -> &'static str {
        match self {
            Self::EmailChanged { .. } => {
                "someone who knew your password took the account over: contact the people \
                 who run this service at once, from this address"
            }
            Self::FactorsReset { .. } => {
                "contact the people who run this service at once, and change your password"
            }
            Self::PasswordReset => {
                "someone can read your mail: secure your mailbox first, then ask for a \
                 reset again from the sign-in page"
            }
            _ => SECURE_IT,
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The mail of `notice` to `to` (the account's address, or its previous one).
pub fn security_mail(
    to: &str,
    notice: &Notice<'_>,
    actor: Actor<'_>,
    at: SystemTime,
    account_url: &str,
) -> Mail {
    let (device, address) = match actor {
        Actor::Client(client) => (
            device_of(&client.user_agent),
            if client.ip.is_empty() {
                "unknown".to_owned()
            } else {
                client.ip.clone()
            },
        ),
        Actor::Operator => (
            "the service's command line (an operator)".to_owned(),
            "the service's own machine".to_owned(),
        ),
    };
    Mail {
        to: to.to_owned(),
        subject: notice.subject().into(),
        body: format!(
            "{}\n\n\
             When:    {}\n\
             Device:  {device}\n\
             Address: {address}\n\n\
             If this was you, there is nothing to do. If it was not, {}.\n\n\
             Your account: {account_url}\n",
            notice.what(to),
            httpdate::fmt_http_date(at),
            notice.advice(),
        ),
    }
}

/// Sends the mail of `notice` through `mailer` when `SECURITY_MAIL` is on.
pub fn notify(
    mailer: &dyn Mailer,
    flows: &super::FlowConfig,
    to: &str,
    notice: &Notice<'_>,
    actor: Actor<'_>,
) {
    if flows.security_mail {
        mailer.send(security_mail(
            to,
            notice,
            actor,
            SystemTime::now(),
            &flows.account_url,
        ));
    }
}

impl AccountServiceImpl {
    /// Mails `notice` to `to` (`SECURITY_MAIL`), done by the request of `client`.
    pub(super) fn notify(&self, to: &str, notice: Notice<'_>, client: &ClientInfo) {
        notify(
            self.mailer.as_ref(),
            &self.flows,
            to,
            &notice,
            Actor::Client(client),
        );
    }

    /// [`Self::notify`] to the current address of `uid`, read for it (a
    /// store that cannot read it sends nothing: the change is done).
    pub(super) async fn notify_owner(&self, uid: Uuid, notice: Notice<'_>, client: &ClientInfo) {
        if !self.flows.security_mail {
            return;
        }
        match self.users.get(uid).await {
            Ok(user) => self.notify(&user.email, notice, client),
            Err(err) => tracing::warn!(%uid, error = ?err, "cannot read whom to tell of a change"),
        }
    }

    /// The session a sign-in ends in, with `assurance`; its owner is told
    /// when it runs on a device none of the account's live sessions runs on
    /// (read before it starts; a store that cannot list them sends nothing).
    pub(super) async fn start_signed_in(
        &self,
        user: &User,
        client: &ClientInfo,
        assurance: &Assurance,
    ) -> AppResult<TokenPair> {
        let known = if self.flows.security_mail {
            self.device_known(user.uid, client).await
        } else {
            true
        };
        let pair = self.tokens.issue_with(user, client, assurance).await?;
        if !known {
            self.notify(&user.email, Notice::NewDevice, client);
        }
        Ok(pair)
    }

    async fn device_known(&self, uid: Uuid, client: &ClientInfo) -> bool {
        match self.tokens.sessions(uid).await {
            Ok(sessions) => {
                let device = device_of(&client.user_agent);
                sessions
                    .iter()
                    .any(|session| device_of(&session.user_agent) == device)
            }
            Err(err) => {
                tracing::warn!(%uid, error = ?err, "cannot list sessions to tell a new device");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like \
        Gecko) Chrome/120.0.0.0 Safari/537.36";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) \
        AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

    #[test]
    fn a_device_is_a_browser_and_an_operating_system_family_never_the_raw_header() {
        assert_eq!(device_of(CHROME_LINUX), "Chrome on Linux");
        assert_eq!(device_of(SAFARI_IPHONE), "Safari on iPhone");
        // Versions do not make another device.
        assert_eq!(
            device_of(&CHROME_LINUX.replace("120.0.0.0", "121.0.1.2")),
            device_of(CHROME_LINUX)
        );
        assert_eq!(device_of(""), "an unknown device");
        let hostile = "evil\r\nBcc: x@evil.net <script>";
        assert_eq!(device_of(hostile), "an unknown device");
    }

    #[test]
    fn an_address_is_masked_but_for_its_first_character_and_domain() {
        assert_eq!(masked("ada.lovelace@example.com"), "a***@example.com");
        assert_eq!(masked("b@example.org"), "b***@example.org");
        assert_eq!(masked("no-at-sign"), "***");
    }

    #[test]
    fn each_mail_says_what_when_on_which_device_from_where_and_links_to_the_account() {
        let client = ClientInfo::new(CHROME_LINUX, "203.0.113.7");
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_000_000);
        let notices = [
            Notice::PasswordChanged,
            Notice::PasswordReset,
            Notice::EmailChanged {
                to: "mallory.new@evil.example",
            },
            Notice::FactorAdded {
                kind: FactorKind::Totp,
                first: true,
            },
            Notice::FactorRemoved {
                kind: FactorKind::Totp,
                name: Some("Phone"),
                last: true,
            },
            Notice::RecoveryCodeUsed { left: Some(9) },
            Notice::RecoveryCodesRenewed,
            Notice::NewDevice,
        ];
        for notice in notices {
            let mail = security_mail(
                "ada@example.com",
                &notice,
                Actor::Client(&client),
                at,
                "https://id.example.com/account",
            );
            assert_eq!(mail.to, "ada@example.com");
            assert!(!mail.subject.is_empty());
            for part in [
                "When:    Mon, 30 Nov 2026 00:53:20 GMT",
                "Device:  Chrome on Linux",
                "Address: 203.0.113.7",
                "Your account: https://id.example.com/account",
            ] {
                assert!(
                    mail.body.contains(part),
                    "{notice:?}: {part} in {}",
                    mail.body
                );
            }
            assert!(!mail.body.contains("Mozilla"), "{}", mail.body);
            assert!(!mail.body.contains("mallory.new"), "{}", mail.body);
        }
    }

    #[test]
    fn an_operators_reset_names_the_command_line_and_counts() {
        let mail = security_mail(
            "ada@example.com",
            &Notice::FactorsReset {
                factors: 2,
                sessions: 1,
            },
            Actor::Operator,
            SystemTime::now(),
            "https://id.example.com/account",
        );
        assert!(mail.body.contains("2 factors"), "{}", mail.body);
        assert!(mail.body.contains("1 session was ended"), "{}", mail.body);
        assert!(mail.body.contains("an operator"), "{}", mail.body);
    }

    #[test]
    fn the_counts_read_as_english() {
        let one = Notice::RecoveryCodeUsed { left: Some(1) }.what("a@b.c");
        assert!(one.contains("1 recovery code is left"), "{one}");
        let none = Notice::RecoveryCodeUsed { left: Some(0) }.what("a@b.c");
        assert!(none.contains("0 recovery codes are left"), "{none}");
        let unknown = Notice::RecoveryCodeUsed { left: None }.what("a@b.c");
        assert!(!unknown.contains("left"), "{unknown}");
        let hidden = Notice::FactorRemoved {
            kind: FactorKind::Totp,
            name: Some("Ph\u{202e}one\u{200b}"),
            last: false,
        }
        .what("a@b.c");
        assert!(hidden.contains("(\u{201c}Phone\u{201d})"), "{hidden}");
    }

    mod signing_in {
        use std::sync::{Arc, Mutex};

        use super::super::super::tests::{build_with, flow_config, no_limits, pair, user};
        use super::*;
        use crate::error::AppError;
        use crate::mail::MockMailer;
        use crate::model::SessionInfo;
        use crate::model::interfaces::{
            MockAccountTokenService, MockTokenService, MockUserService,
        };
        use crate::service::account::FlowConfig;

        fn session(user_agent: &str) -> SessionInfo {
            SessionInfo {
                id: Uuid::new_v4(),
                created_at: 1,
                last_used_at: 1,
                user_agent: user_agent.into(),
                ip: "10.0.0.9".into(),
                name: None,
            }
        }

        /// Signs `user()` in from Chrome on Linux over a token store whose
        /// sessions are `live`; the mails sent.
        async fn sign_in_with(live: AppResult<Vec<SessionInfo>>, security_mail: bool) -> Vec<Mail> {
            let mut tokens = MockTokenService::new();
            let listed = Mutex::new(Some(live));
            tokens
                .expect_sessions()
                .times(usize::from(security_mail))
                .returning(move |_| listed.lock().unwrap().take().unwrap());
            tokens
                .expect_issue_with()
                .times(1)
                .returning(|_, _, _| Ok(pair()));
            let sent = Arc::new(Mutex::new(Vec::new()));
            let record = Arc::clone(&sent);
            let mut mailer = MockMailer::new();
            mailer
                .expect_send()
                .returning(move |mail| record.lock().unwrap().push(mail));
            let service = build_with(
                MockUserService::new(),
                tokens,
                no_limits(),
                MockAccountTokenService::new(),
                mailer,
                FlowConfig {
                    security_mail,
                    ..flow_config()
                },
            );
            let client = ClientInfo::new(CHROME_LINUX, "203.0.113.7");
            let got = service
                .start_signed_in(&user(), &client, &Assurance::password())
                .await
                .unwrap();
            assert_eq!(got, pair());
            sent.lock().unwrap().clone()
        }

        #[tokio::test]
        async fn a_device_no_live_session_runs_on_is_mailed_after_the_session_starts() {
            let sent = sign_in_with(Ok(vec![session(SAFARI_IPHONE), session("")]), true).await;
            assert_eq!(sent.len(), 1, "{sent:?}");
            assert_eq!(sent[0].subject, "A sign-in from a new device");
            assert_eq!(sent[0].to, user().email);
        }

        #[tokio::test]
        async fn a_known_device_in_another_version_is_not() {
            let newer = CHROME_LINUX.replace("120.0.0.0", "131.0.6778.85");
            let sent = sign_in_with(Ok(vec![session(&newer)]), true).await;
            assert!(sent.is_empty(), "{sent:?}");
        }

        #[tokio::test]
        async fn sessions_that_cannot_be_listed_fail_nothing_and_mail_nothing() {
            let down = Err(AppError::unavailable("token store is unavailable"));
            let sent = sign_in_with(down, true).await;
            assert!(sent.is_empty(), "{sent:?}");
        }

        #[tokio::test]
        async fn with_security_mail_off_sessions_are_not_even_read() {
            let sent = sign_in_with(Ok(Vec::new()), false).await;
            assert!(sent.is_empty(), "{sent:?}");
        }
    }
}
