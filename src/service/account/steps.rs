//! Steps several use cases share: giving back a sign-in's count, checking
//! the current password again, finishing a sign-up, ending the caller's
//! other sessions.

use super::{AccountServiceImpl, session_of};
use crate::error::AppResult;
use crate::model::{ClientInfo, Email, IdClaims, Password, TokenPair, User};

impl AccountServiceImpl {
    /// After the password of `email` checked out: gives back what the
    /// attempt counted for its source. A store that fails here fails nothing
    /// (the attempt stays counted).
    pub(super) async fn give_back(&self, email: &str, client: &ClientInfo) {
        if let Err(err) = self.limits.sign_in_succeeded(email, &client.ip).await {
            tracing::warn!(error = ?err, "cannot give back a successful sign-in's count");
        }
    }

    /// A re-authentication: the user's current password, counted as a
    /// sign-in attempt of the user's email from the caller's address (a
    /// stolen ID token must not guess it any faster than a sign-in could).
    pub(super) async fn reauthenticate(
        &self,
        user: &User,
        password: Password,
        client: &ClientInfo,
    ) -> AppResult<()> {
        self.limits.sign_in_attempt(&user.email, &client.ip).await?;
        self.users.check_password(user, password).await?;
        self.give_back(&user.email, client).await;
        Ok(())
    }

    /// Creates the user and its first session, and mails the verification
    /// link; without a pair the account is removed again, so a retry once
    /// the token store is back succeeds.
    pub(super) async fn sign_up_to_the_end(
        self,
        email: Email,
        password_hash: String,
        client: ClientInfo,
    ) -> AppResult<TokenPair> {
        let user = self.users.signup(email, password_hash, false).await?;
        match self.tokens.issue(&user, &client).await {
            Ok(pair) => {
                self.send_verification_or_log(&user).await;
                Ok(pair)
            }
            Err(err) => {
                if let Err(undo) = self.users.delete(user.uid).await {
                    tracing::error!(uid = %user.uid, error = ?undo, "cannot undo a failed sign-up");
                }
                Err(err)
            }
        }
    }

    /// Ends every session of the caller's user but the caller's own (after a
    /// change a stolen session must not outlive). A caller without a session
    /// ends them all.
    pub(super) async fn end_other_sessions(&self, caller: &IdClaims) -> AppResult<()> {
        match session_of(caller) {
            Ok(sid) => self.tokens.end_other_sessions(caller.sub, sid).await?,
            Err(_) => self.tokens.revoke_all(caller.sub).await?,
        };
        Ok(())
    }
}
