//! The mailer `SMTP_URL` and `MAIL_FROM` ask for (called by `startup.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::Mailer;
use super::log::LogMailer;
use super::smtp::{MailDrain, SmtpMailer, SmtpSettings, transport};
use crate::config::Config;
use crate::secret::Secret;

/// How long a graceful stop waits for the pending mails.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the start-up line says without `SMTP_URL`.
pub(crate) const LOG_DESCRIPTION: &str = "log (development only — set SMTP_URL)";

/// The mailer of this instance.
pub(crate) struct MailSetup {
    /// What the account flows send through.
    pub mailer: Arc<dyn Mailer>,
    /// For the start-up line: `SMTP host:port (TLS mode)`, or [`LOG_DESCRIPTION`].
    pub description: String,
    /// With SMTP: await [`MailDrain::drain`] on shutdown (with [`DRAIN_TIMEOUT`]).
    pub drain: Option<MailDrain>,
}

/// SMTP when `SMTP_URL` is set (its background sender started on the
/// current tokio runtime), else the log.
pub(crate) fn mailer_from_config(config: &Config) -> anyhow::Result<MailSetup> {
    let Some(url) = &config.mail.smtp_url else {
        return Ok(MailSetup {
            mailer: Arc::new(LogMailer),
            description: LOG_DESCRIPTION.to_owned(),
            drain: None,
        });
    };
    let description =
        describe_smtp_url(url.expose()).map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?;
    if description.ends_with("(no TLS)")
        && url::Url::parse(url.expose()).is_ok_and(|u| u.password().is_some())
    {
        tracing::warn!(
            "SMTP_URL: the SMTP password is sent without TLS (use smtps:// or ?tls=required)"
        );
    }
    let (mailer, drain) =
        SmtpMailer::start(SmtpSettings::new(url.clone(), config.mail.from.clone()))?;
    Ok(MailSetup {
        mailer: Arc::new(mailer),
        description,
        drain: Some(drain),
    })
}

/// `SMTP host:port (TLS mode)` for a usable `SMTP_URL`, with the ports and
/// TLS modes lettre picks; `Err` says what is wrong, never repeating the URL.
pub(crate) fn describe_smtp_url(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    let tls = parsed
        .query_pairs()
        .find(|(key, _)| key == "tls")
        .map(|(_, value)| value.into_owned());
    let (default_port, mode) = match (parsed.scheme(), tls.as_deref()) {
        ("smtps", _) => (465, "implicit TLS"),
        ("smtp", None) => (25, "no TLS"),
        ("smtp", Some("required")) => (587, "STARTTLS"),
        ("smtp", Some("opportunistic")) => (587, "STARTTLS if offered"),
        ("smtp", Some(_)) => return Err("tls= must be required or opportunistic".into()),
        _ => return Err("must be an smtp:// or smtps:// URL".into()),
    };
    let host = parsed
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or("no host")?;
    let port = parsed.port().unwrap_or(default_port);
    transport(&Secret::new(url.to_owned()), Duration::from_secs(1))
        .map_err(|e| format!("not a usable SMTP URL ({e})"))?;
    Ok(format!("SMTP {host}:{port} ({mode})"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::mail::Mail;
    use crate::mail::smtp_sink::SmtpSink;
    use crate::test_logs::logged_during;

    fn config(vars: &[(&str, &str)]) -> Config {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(vars).unwrap()
    }

    #[tokio::test]
    async fn without_smtp_url_mail_goes_to_the_log() {
        let setup = mailer_from_config(&config(&[])).unwrap();
        assert_eq!(setup.description, LOG_DESCRIPTION);
        assert!(setup.drain.is_none());
    }

    #[tokio::test]
    async fn with_smtp_url_mail_goes_to_that_server_from_mail_from() {
        let sink = SmtpSink::start().await;
        let url = format!("smtp://mailer:hunter2@127.0.0.1:{}", sink.port());
        let (setup, logs) = logged_during(async {
            mailer_from_config(&config(&[
                ("SMTP_URL", &url),
                ("MAIL_FROM", "Account <no-reply@example.com>"),
            ]))
            .unwrap()
        })
        .await;
        assert_eq!(
            setup.description,
            format!("SMTP 127.0.0.1:{} (no TLS)", sink.port())
        );
        assert!(
            logs.contains("WARN") && logs.contains("without TLS"),
            "{logs}"
        );
        assert!(!logs.contains("hunter2"), "{logs}");
        setup.mailer.send(Mail {
            to: "ada@example.com".into(),
            subject: "Verify your email".into(),
            body: "Open http://localhost/verify?token=t".into(),
        });
        let mail = sink
            .next_mail(Duration::from_secs(10))
            .await
            .expect("a mail");
        assert_eq!(mail.from, "no-reply@example.com");
        assert_eq!(mail.subject, "Verify your email");
        setup.drain.expect("a drain").drain(DRAIN_TIMEOUT).await;
    }

    #[test]
    fn smtp_urls_are_described_with_lettres_ports_and_tls_modes() {
        for (url, description) in [
            ("smtp://127.0.0.1:1025", "SMTP 127.0.0.1:1025 (no TLS)"),
            ("smtp://mail.example", "SMTP mail.example:25 (no TLS)"),
            (
                "smtp://u:p@mail.example?tls=required",
                "SMTP mail.example:587 (STARTTLS)",
            ),
            (
                "smtp://mail.example:2525?tls=opportunistic",
                "SMTP mail.example:2525 (STARTTLS if offered)",
            ),
            (
                "smtps://user:pass@mail.example",
                "SMTP mail.example:465 (implicit TLS)",
            ),
        ] {
            assert_eq!(describe_smtp_url(url).as_deref(), Ok(description), "{url}");
        }
        for url in [
            "http://mail.example",
            "smtp://",
            "smtp://mail.example?tls=sometimes",
            "mail.example:25",
            "smtp://u:hunter2@[::1",
        ] {
            let error = describe_smtp_url(url).expect_err(url);
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
