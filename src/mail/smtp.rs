//! Delivery over SMTP, off the request path.
//!
//! [`SmtpMailer::send`] only puts the mail on a bounded queue
//! ([`SmtpSettings::queue`] mails). A background task takes mails off it and
//! sends them with lettre, a few at once ([`SmtpSettings::concurrency`]), so
//! that one slow mail does not hold up the others. A failed send is retried
//! with exponential backoff ([`Retry`]); each failure is logged at warn, the
//! last one (or a permanent `5xx` refusal) at error. When the queue is full
//! (the mail server has been down or slow for a while) the new mail is
//! **dropped**, with an error naming its subject and recipient's domain.
//! Logs never carry a mail's body (it holds a single-use token) nor the SMTP
//! password.
//!
//! On shutdown, [`MailDrain::drain`] stops taking mail and gives what is
//! queued or being sent a bounded time to go out; what is still undelivered
//! then is logged at error, one line per mail.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Mail, Mailer};
use crate::secret::Secret;

/// How a failed send is tried again: `attempts` in all, waiting `base_delay`
/// after the first failure and twice as long after each next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    pub attempts: u32,
    pub base_delay: Duration,
}

impl Retry {
    /// 5 attempts, 1 s, 2 s, 4 s and 8 s apart.
    pub(crate) const DEFAULT: Self = Self {
        attempts: 5,
        base_delay: Duration::from_secs(1),
    };

    /// The wait after the `failed`-th failed attempt (1-based).
    fn delay(&self, failed: u32) -> Duration {
        self.base_delay
            .saturating_mul(2_u32.saturating_pow(failed.saturating_sub(1)))
    }
}

/// Everything the SMTP mailer needs.
#[derive(Debug, Clone)]
pub(crate) struct SmtpSettings {
    /// `SMTP_URL`: `smtp://` (plain, or STARTTLS with `?tls=required` or
    /// `?tls=opportunistic`) or `smtps://` (implicit TLS); credentials in it.
    pub url: Secret,
    /// `MAIL_FROM`: the `From` header, and its address the envelope sender.
    pub from: Mailbox,
    pub retry: Retry,
    /// Mails waiting to be sent; past it a new mail is dropped (and logged).
    pub queue: usize,
    /// Mails being sent at once (a mail waiting to be retried counts).
    pub concurrency: usize,
    /// For the TCP connection (lettre's own timeout, which in its async
    /// transport covers the connection only).
    pub timeout: Duration,
    /// For a whole attempt: connection, TLS and every command. Without it a
    /// server that accepts the connection and never answers would hold the
    /// mail, and its place among `concurrency`, forever.
    pub attempt_timeout: Duration,
}

impl SmtpSettings {
    pub(crate) fn new(url: Secret, from: Mailbox) -> Self {
        Self {
            url,
            from,
            retry: Retry::DEFAULT,
            queue: 1_000,
            concurrency: 4,
            timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

/// The lettre transport for an `SMTP_URL` (its errors never hold the URL).
pub(crate) fn transport(
    url: &Secret,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
    Ok(
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())?
            .timeout(Some(timeout))
            .build(),
    )
}

/// Queues mail for the background sender (see the module docs).
pub(crate) struct SmtpMailer {
    queue: mpsc::Sender<Mail>,
}

/// Stops the background sender, letting the pending mails go out first.
pub(crate) struct MailDrain {
    /// Set to the deadline of the drain.
    stop: watch::Sender<Option<Instant>>,
    sender: tokio::task::JoinHandle<()>,
}

impl SmtpMailer {
    /// Starts the background sender (on the current tokio runtime).
    pub(crate) fn start(settings: SmtpSettings) -> anyhow::Result<(Self, MailDrain)> {
        let transport =
            transport(&settings.url, settings.timeout).context("SMTP_URL: not a usable URL")?;
        let (queue, receiver) = mpsc::channel(settings.queue.max(1));
        let (stop, stopped) = watch::channel(None);
        let sender = tokio::spawn(run(
            receiver,
            Arc::new(Sender {
                transport,
                from: settings.from,
                retry: settings.retry,
                attempt_timeout: settings.attempt_timeout,
            }),
            Arc::new(Semaphore::new(settings.concurrency.max(1))),
            stopped,
        ));
        Ok((Self { queue }, MailDrain { stop, sender }))
    }
}

impl Mailer for SmtpMailer {
    fn send(&self, mail: Mail) {
        use mpsc::error::TrySendError;
        let (mail, why) = match self.queue.try_send(mail) {
            Ok(()) => return,
            Err(TrySendError::Full(mail)) => (
                mail,
                "mail dropped: the outgoing queue is full (is the mail server down?)",
            ),
            Err(TrySendError::Closed(mail)) => (mail, "mail dropped: the mailer has stopped"),
        };
        tracing::error!(
            subject = %mail.subject,
            to_domain = %domain_of(&mail.to),
            queue = self.queue.max_capacity(),
            "{why}"
        );
    }
}

impl MailDrain {
    /// Stops taking mail and waits, at most `within`, for the queued mails
    /// and those being sent; any left then are logged as undelivered.
    pub(crate) async fn drain(self, within: Duration) {
        self.stop.send_replace(Some(Instant::now() + within));
        if let Err(e) = self.sender.await {
            tracing::error!(error = %e, "the mail sender failed");
        }
    }
}

/// What each delivery shares.
struct Sender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    retry: Retry,
    attempt_timeout: Duration,
}

/// The background sender: takes a place among `concurrency`, then a mail,
/// and sends it on a task of its own; until stopped (or every
/// [`SmtpMailer`] is gone), then drains.
async fn run(
    mut queue: mpsc::Receiver<Mail>,
    sender: Arc<Sender>,
    places: Arc<Semaphore>,
    mut stop: watch::Receiver<Option<Instant>>,
) {
    let mut sending = JoinSet::new();
    let deadline = loop {
        let place = tokio::select! {
            deadline = stop_requested(&mut stop) => break Some(deadline),
            place = Arc::clone(&places).acquire_owned() => place,
        };
        let Ok(place) = place else { break None };
        let mail = tokio::select! {
            deadline = stop_requested(&mut stop) => break Some(deadline),
            mail = queue.recv() => mail,
        };
        let Some(mail) = mail else { break None };
        sending.spawn(deliver(Arc::clone(&sender), mail, place));
        while sending.try_join_next().is_some() {}
    };

    // Drain: no new mail; what is queued goes out as places free up.
    queue.close();
    // (A place first, then the mail: a mail is never held while waiting.)
    let rest = async {
        while let Ok(place) = Arc::clone(&places).acquire_owned().await {
            let Some(mail) = queue.recv().await else {
                break;
            };
            sending.spawn(deliver(Arc::clone(&sender), mail, place));
        }
        while sending.join_next().await.is_some() {}
    };
    // Every SmtpMailer gone (the app stopping) leaves no deadline yet: the
    // drain that follows sets it.
    let deadline_passed = async {
        let deadline = match deadline {
            Some(deadline) => deadline,
            None => stop_requested(&mut stop).await,
        };
        tokio::time::sleep_until(deadline).await;
    };
    let finished = tokio::select! {
        () = rest => true,
        () = deadline_passed => false,
    };
    if !finished {
        // Each aborted delivery logs its mail as undelivered (`Pending`).
        sending.shutdown().await;
        while let Ok(mail) = queue.try_recv() {
            drop(Pending::new(&mail));
        }
    }
}

/// The deadline, once a drain is asked for (never if the [`MailDrain`] is
/// dropped unused: then the sender stops when every [`SmtpMailer`] is gone).
async fn stop_requested(stop: &mut watch::Receiver<Option<Instant>>) -> Instant {
    if let Ok(deadline) = stop.wait_for(Option::is_some).await
        && let Some(deadline) = *deadline
    {
        return deadline;
    }
    std::future::pending().await
}

/// Sends one mail, retrying; holds its `place` until done.
async fn deliver(sender: Arc<Sender>, mail: Mail, place: tokio::sync::OwnedSemaphorePermit) {
    let _place = place;
    let mut pending = Pending::new(&mail);
    let message = match message(&sender.from, &mail) {
        Ok(message) => message,
        Err(e) => {
            tracing::error!(to = %mail.to, subject = %mail.subject, error = %e, "mail not sent: cannot build it");
            pending.settle();
            return;
        }
    };
    let (envelope, bytes) = (message.envelope().clone(), message.formatted());
    let attempts = sender.retry.attempts.max(1);
    for attempt in 1..=attempts {
        let sent = tokio::time::timeout(
            sender.attempt_timeout,
            sender.transport.send_raw(&envelope, &bytes),
        )
        .await;
        let e = match sent {
            Ok(Ok(_)) => {
                tracing::info!(to = %mail.to, subject = %mail.subject, attempt, "mail sent");
                pending.settle();
                return;
            }
            Ok(Err(e)) => AttemptError::Smtp(e),
            Err(_) => AttemptError::TimedOut(sender.attempt_timeout),
        };
        if e.is_permanent() {
            tracing::error!(
                to = %mail.to, subject = %mail.subject, attempt, error = %e,
                "mail not sent: the mail server refused it"
            );
            break;
        }
        if attempt == attempts {
            tracing::error!(
                to = %mail.to, subject = %mail.subject, attempts, error = %e,
                "mail not sent: giving up after {attempts} attempts"
            );
            break;
        }
        let retry_in = sender.retry.delay(attempt);
        tracing::warn!(
            to = %mail.to, subject = %mail.subject, attempt, ?retry_in, error = %e,
            "mail not sent yet: will retry"
        );
        tokio::time::sleep(retry_in).await;
    }
    pending.settle();
}

/// Why an attempt failed: the server's answer (or the connection), or no
/// end to the attempt within its time.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Smtp(lettre::transport::smtp::Error),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

impl AttemptError {
    fn is_permanent(&self) -> bool {
        matches!(self, Self::Smtp(e) if e.is_permanent())
    }
}

/// A plain-text message from `from` to `mail.to`; lettre picks the transfer
/// encoding (7bit, quoted-printable or base64).
fn message(from: &Mailbox, mail: &Mail) -> anyhow::Result<Message> {
    let to: Mailbox = mail.to.parse().context("not an address")?;
    let id = format!("<{}@{}>", uuid::Uuid::new_v4(), from.email.domain());
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .message_id(Some(id))
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .context("cannot build the message")
}

/// A mail whose outcome is not logged yet: if it is dropped so (its delivery
/// aborted at the end of a drain, or never started), it is logged as
/// undelivered, so that no mail is lost silently.
struct Pending<'a> {
    mail: &'a Mail,
    settled: bool,
}

impl<'a> Pending<'a> {
    fn new(mail: &'a Mail) -> Self {
        Self {
            mail,
            settled: false,
        }
    }

    fn settle(&mut self) {
        self.settled = true;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.settled {
            tracing::error!(
                to = %self.mail.to, subject = %self.mail.subject,
                "mail not sent: the service stopped before it went out"
            );
        }
    }
}

/// The domain of an address (what a dropped mail is logged with).
fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, domain)| domain)
}

#[cfg(test)]
mod tests;
