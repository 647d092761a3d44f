//! Outgoing mail: what the account flows (email verification, password reset)
//! send, and how it leaves the process.
//!
//! The flows build a [`Mail`] and hand it to a [`Mailer`], which never makes a
//! request wait on a mail server: delivery happens in the background (SMTP with
//! retries, or the log when `SMTP_URL` is unset).

mod log;
mod setup;
mod smtp;

pub(crate) use setup::{DRAIN_TIMEOUT, describe_smtp_url, mailer_from_config};
pub(crate) use smtp::MailDrain;

/// The test SMTP server the integration tests use too.
#[cfg(test)]
#[path = "../../tests/common/smtp_sink.rs"]
#[allow(dead_code)]
mod smtp_sink;

/// One plain-text message to one recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address (in the normal form of `model::Email`).
    pub to: String,
    pub subject: String,
    /// Plain text; may hold a single-use link with a token.
    pub body: String,
}

/// Never prints the body: it may hold a token.
impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Hands mail over for delivery. `send` returns at once: it never waits for
/// the mail server, and a failed delivery is retried and logged by the
/// implementation, never reported to the caller.
#[cfg_attr(test, mockall::automock)]
pub trait Mailer: Send + Sync {
    fn send(&self, mail: Mail);
}
