//! With `SMTP_URL` unset: each mail is written to the log instead of sent.

use super::{Mail, Mailer};

/// Logs each mail at info, body (and so its link) included: for development
/// only, where nobody runs a mail server. The start-up line says so.
pub(crate) struct LogMailer;

impl Mailer for LogMailer {
    fn send(&self, mail: Mail) {
        tracing::info!(
            to = %mail.to,
            subject = %mail.subject,
            body = %mail.body,
            "mail not sent (SMTP_URL is unset; development only)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_logs::logged_during;

    #[tokio::test]
    async fn each_mail_is_logged_at_info_with_its_link() {
        let ((), logs) = logged_during(async {
            LogMailer.send(Mail {
                to: "ada@example.com".into(),
                subject: "Verify your email".into(),
                body: "Open http://localhost/verify?token=abc_123 to verify.".into(),
            });
        })
        .await;
        let line = logs
            .lines()
            .find(|line| line.contains("mail not sent"))
            .unwrap_or_else(|| panic!("no mail line in {logs:?}"));
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("to=ada@example.com"), "{line}");
        assert!(line.contains("subject=Verify your email"), "{line}");
        assert!(
            line.contains("http://localhost/verify?token=abc_123"),
            "the link: {line}"
        );
    }
}
