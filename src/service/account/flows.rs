//! The rest of an account's life (issue 10): email verification and password
//! reset. Each mail carries a link to the app's own page (`VERIFY_EMAIL_URL`,
//! `RESET_PASSWORD_URL`) with `?token=…`; the page reads the token and calls
//! the API. Tokens are single-use, expire, and are stored by their hash only
//! ([`AccountTokenService`](crate::model::AccountTokenService)).

use std::time::Duration;

use super::{AccountServiceImpl, Notice};
use crate::error::{AppError, AppResult, InvalidArg};
use crate::mail::Mail;
use crate::model::{ClientInfo, Email, IdClaims, Password, TokenPurpose, User};
use crate::secret::Secret;

/// Where the mails' links point and how long their tokens work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// `VERIFY_EMAIL_URL`: the page that verifies, `?token=…` appended.
    pub verify_email_url: String,
    /// `RESET_PASSWORD_URL`: the page that asks for the new password.
    pub reset_password_url: String,
    /// `VERIFY_TOKEN_EXP`
    pub verify_token_ttl: Duration,
    /// `RESET_TOKEN_EXP`
    pub reset_token_ttl: Duration,
    /// `EMAIL_CONFIRMATION`
    pub email_confirmation: EmailConfirmation,
    /// `ACCOUNT_URL`: the account page the security mails link to.
    pub account_url: String,
    /// `SECURITY_MAIL`: whether the owner is mailed about changes to how the
    /// account signs in and about sign-ins from new devices.
    pub security_mail: bool,
}

/// `EMAIL_CONFIRMATION`: whether a sign-up signs in at once or waits for
/// the address to be confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmailConfirmation {
    /// A sign-up answers 201 with a pair; a taken address is 409 (anyone can
    /// tell whether an address is registered). Verifying is optional.
    #[default]
    Optional,
    /// A sign-up answers the same 202 for every address, without a pair; the
    /// accounts created so (`must_verify`) sign in once verified.
    Required,
}

impl EmailConfirmation {
    /// The setting's value: `optional` or `required` (unset: `optional`).
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        match raw.map(str::trim) {
            None | Some("optional") => Ok(Self::Optional),
            Some("required") => Ok(Self::Required),
            Some(other) => Err(format!(
                "EMAIL_CONFIRMATION: must be optional or required, not {other:?}"
            )),
        }
    }

    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

/// The one answer to a token that cannot be used, whatever the reason.
pub const INVALID_TOKEN: &str = "the token is invalid, used or expired";
/// The answer to a resend for an address already verified.
pub const ALREADY_VERIFIED: &str = "the email is already verified";

fn invalid_token() -> AppError {
    AppError::invalid_args(vec![InvalidArg::new("token", INVALID_TOKEN)])
}

/// `base` with the token appended as the `token` query parameter (the
/// token is base64url: nothing to escape).
fn link(base: &str, token: &Secret) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}token={}", token.expose())
}

/// A lifetime for a mail's reader: `24 hours`, `1 hour`, `90 minutes`.
fn lifetime(ttl: Duration) -> String {
    let secs = ttl.as_secs();
    let (n, unit) = if secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn verification_mail(to: &str, link: &str, ttl: Duration) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: "Verify your email address".into(),
        body: format!(
            "Please confirm that {to} is your email address by opening this link:\n\n\
             {link}\n\n\
             The link works once, within {}. If you did not sign up or change your \
             email, ignore this mail.\n",
            lifetime(ttl)
        ),
    }
}

/// The subject of the mail to a registered address someone tried to sign up
/// with (`EMAIL_CONFIRMATION=required`).
pub const SIGNUP_ATTEMPT_SUBJECT: &str = "Someone tried to sign up with your email address";

fn signup_attempt_mail(to: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: SIGNUP_ATTEMPT_SUBJECT.into(),
        body: format!(
            "Someone tried to create a new account with {to}, which already has an account \
             with us. No new account was created and nothing of yours changed.\n\n\
             If it was you: sign in with your password, or ask for a password reset if you \
             forgot it. If it was not you, you can ignore this mail.\n"
        ),
    }
}

fn reset_mail(to: &str, link: &str, ttl: Duration) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: "Reset your password".into(),
        body: format!(
            "Someone asked to reset the password of the account {to}. To choose a new \
             password, open this link:\n\n\
             {link}\n\n\
             The link works once, within {}; a newer request replaces it. Setting the new \
             password signs the account out everywhere. If you did not ask for this, ignore \
             this mail: your password stays as it is.\n",
            lifetime(ttl)
        ),
    }
}

impl AccountServiceImpl {
    /// A verification token for the user's current email (the older one
    /// stops working) and the mail with its link.
    async fn send_verification(&self, user: &User) -> AppResult<()> {
        let token = self
            .account_tokens
            .issue(user, TokenPurpose::Verify)
            .await?;
        let link = link(&self.flows.verify_email_url, &token);
        self.mailer.send(verification_mail(
            &user.email,
            &link,
            self.flows.verify_token_ttl,
        ));
        Ok(())
    }

    /// [`Self::send_verification`] after a sign-up or an email change, which
    /// a failure here must not undo: logged (the user can ask again).
    pub(super) async fn send_verification_or_log(&self, user: &User) {
        if let Err(err) = self.send_verification(user).await {
            tracing::warn!(uid = %user.uid, error = ?err, "cannot send a verification mail");
        }
    }

    /// [`Self::send_verification_or_log`] to `address`, the pending email of
    /// a user that must verify: the token records that address, which is
    /// what redeeming it confirms.
    pub(super) async fn send_verification_to_or_log(&self, user: &User, address: &str) {
        let mut to = user.clone();
        to.email = address.to_owned();
        self.send_verification_or_log(&to).await;
    }

    /// A sign-up under `EMAIL_CONFIRMATION=required`, from the hash on: the
    /// same answer for a new and a taken address, after the same work on
    /// the request's path (one INSERT, which the unique index refuses for a
    /// taken one); what differs (the token, the lookup, the mails) runs on
    /// a task of its own, as for a reset request.
    pub(super) async fn sign_up_confirming(
        &self,
        email: Email,
        password_hash: String,
    ) -> AppResult<()> {
        match self.users.signup(email.clone(), password_hash, true).await {
            Ok(user) => {
                let this = self.clone();
                tokio::spawn(async move { this.send_verification_or_log(&user).await });
                Ok(())
            }
            Err(AppError::Conflict(_)) => {
                let this = self.clone();
                tokio::spawn(async move { this.tell_the_owner(&email).await });
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Someone signed up with a registered address: within the account's
    /// mail limit, its owner is told (verified), or gets a fresh link
    /// (unverified).
    async fn tell_the_owner(&self, email: &Email) {
        let user = match self.users.find_by_email(email).await {
            Ok(Some(user)) => user,
            // Deleted meanwhile: nobody to tell.
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = ?err, "cannot look up the owner of a taken address");
                return;
            }
        };
        if !self.may_mail(&user).await {
            return;
        }
        if user.email_verified {
            self.mailer.send(signup_attempt_mail(&user.email));
        } else {
            self.send_verification_or_log(&user).await;
        }
    }

    /// Counts a mail to `user` on its per-account limit; whether it may go.
    async fn may_mail(&self, user: &User) -> bool {
        match self.limits.verification_mail_attempt(user.uid).await {
            Ok(()) => true,
            Err(AppError::TooManyRequests { .. }) => false,
            Err(err) => {
                tracing::warn!(uid = %user.uid, error = ?err, "cannot count a mail");
                false
            }
        }
    }

    /// A reset token (older ones stop working) and the mail with its link.
    async fn send_reset(&self, user: &User) -> AppResult<()> {
        let token = self.account_tokens.issue(user, TokenPurpose::Reset).await?;
        let link = link(&self.flows.reset_password_url, &token);
        self.mailer
            .send(reset_mail(&user.email, &link, self.flows.reset_token_ttl));
        Ok(())
    }

    pub(super) async fn verify_email_flow(&self, token: &str, client: ClientInfo) -> AppResult<()> {
        // Counted before the look-up; given back when the token works.
        self.limits.link_token_attempt(&client.ip).await?;
        let holder = self
            .account_tokens
            .redeem(token, TokenPurpose::Verify)
            .await?
            .ok_or_else(invalid_token)?;
        // Only the address the token was sent to: after an email change it
        // proves nothing about the new one. A link mailed to the pending
        // email of an account that must verify makes it the account's
        // email, unless another account took it meanwhile.
        if !self
            .users
            .mark_email_verified(holder.uid, &holder.email)
            .await?
        {
            let previous = match self.users.get(holder.uid).await {
                Err(AppError::NotFound(_)) => return Err(invalid_token()),
                other => other?.email,
            };
            let moved = match self
                .users
                .confirm_pending_email(holder.uid, &holder.email)
                .await
            {
                Err(AppError::Conflict(_)) => false,
                other => other?,
            };
            if !moved {
                return Err(invalid_token());
            }
            // The account's email changed only now: its previous address is told.
            let notice = Notice::EmailChanged { to: &holder.email };
            self.notify(&previous, notice, &client);
        }
        self.link_token_worked(&client.ip).await;
        Ok(())
    }

    /// Gives back a link token's count (a failure to is only logged: the
    /// flow itself succeeded).
    async fn link_token_worked(&self, ip: &str) {
        if let Err(err) = self.limits.link_token_succeeded(ip).await {
            tracing::warn!(error = ?err, "cannot give back a link token's count");
        }
    }

    pub(super) async fn resend_verification_flow(&self, caller: &IdClaims) -> AppResult<()> {
        self.limits.verification_mail_attempt(caller.sub).await?;
        let user = self.users.get(caller.sub).await?;
        if user.email_verified {
            return Err(AppError::Conflict(ALREADY_VERIFIED.into()));
        }
        self.send_verification(&user).await
    }

    /// A resend asked for by address, without a session (an account that
    /// must verify cannot sign in to ask): counted as a reset request, the
    /// same answer for every address; the mail, for an unverified account
    /// only, goes on a task of its own within the account's mail limit.
    pub(super) async fn resend_verification_to_flow(
        &self,
        email: Email,
        client: ClientInfo,
    ) -> AppResult<()> {
        self.limits.reset_request_attempt(&client.ip).await?;
        if let Some(user) = self.users.find_by_email(&email).await?
            && !user.email_verified
        {
            let this = self.clone();
            tokio::spawn(async move {
                if this.may_mail(&user).await {
                    this.send_verification_or_log(&user).await;
                }
            });
        }
        Ok(())
    }

    pub(super) async fn request_password_reset_flow(
        &self,
        email: Email,
        client: ClientInfo,
    ) -> AppResult<()> {
        // Per source: a 429 says nothing about the address.
        self.limits.reset_request_attempt(&client.ip).await?;
        // Per address: past it, the same answer as ever, and no mail.
        match self.limits.reset_mail_attempt(email.as_str()).await {
            Ok(()) => {}
            Err(AppError::TooManyRequests { .. }) => return Ok(()),
            Err(err) => return Err(err),
        }
        // The lookup is the same work for every address; what only a known
        // one costs more (storing the token, handing the mail over) runs on
        // a task of its own, so the answer comes as soon either way.
        if let Some(user) = self.users.find_by_email(&email).await? {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(err) = this.send_reset(&user).await {
                    tracing::warn!(uid = %user.uid, error = ?err, "cannot send a reset mail");
                }
            });
        }
        Ok(())
    }

    pub(super) async fn confirm_password_reset_flow(
        &self,
        token: &str,
        new: Password,
        client: ClientInfo,
    ) -> AppResult<()> {
        // Counted before the look-up; given back when the reset is done.
        self.limits.link_token_attempt(&client.ip).await?;
        // A look first, so that a bad token costs no hash and a full hashing
        // queue (503) does not use a good one up.
        if self
            .account_tokens
            .peek(token, TokenPurpose::Reset)
            .await?
            .is_none()
        {
            return Err(invalid_token());
        }
        let hash = self.users.hash_password(&new, &client.ip).await?;
        let holder = self
            .account_tokens
            .redeem(token, TokenPurpose::Reset)
            .await?
            .ok_or_else(invalid_token)?;
        // The new hash, and the address verified (the person read its mail),
        // only while it is still the user's: a reset mailed to an address
        // the account has left takes nothing over.
        if !self
            .users
            .reset_password(holder.uid, &holder.email, &hash)
            .await?
        {
            return Err(invalid_token());
        }
        // Told as soon as it is stored, even if ending the sessions fails.
        self.notify(&holder.email, Notice::PasswordReset, &client);
        // Every session ends, and in the same store step any session a
        // sign-in that checked the previous password would still start is
        // refused (as for a password change, keeping none). Should the token
        // store be down here, the answer is 503 with the password set: a new
        // reset request finishes it.
        self.tokens
            .password_changed(holder.uid, None, &hash)
            .await?;
        if let Err(err) = self.limits.clear_sign_in(&holder.email, &client.ip).await {
            tracing::warn!(uid = %holder.uid, error = ?err, "cannot clear the sign-in limits after a reset");
        }
        self.link_token_worked(&client.ip).await;
        tracing::info!(uid = %holder.uid, "password reset");
        Ok(())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod confirmation_tests;
