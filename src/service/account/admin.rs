//! What an operator does to an account from the command line
//! (`account users …`), on the same stores as the service: the way back for
//! a user who lost both the authenticator and the recovery codes.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::FlowConfig;
use super::notices::{Actor, Notice, notify};
use crate::error::{AppError, AppResult};
use crate::mail::Mailer;
use crate::model::{Email, FactorRepository, TokenRepository, UserRepository};

/// The stores and the mailer an operator's commands work on.
pub struct UserAdmin {
    users: Arc<dyn UserRepository>,
    factors: Arc<dyn FactorRepository>,
    tokens: Arc<dyn TokenRepository>,
    mailer: Arc<dyn Mailer>,
    flows: FlowConfig,
}

/// What `mfa_reset` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorReset {
    pub uid: Uuid,
    /// The account's address, where the mail went.
    pub email: String,
    /// Confirmed factors removed (pending enrolments go too, uncounted).
    pub factors: u64,
    pub recovery_codes: u64,
    /// Live sessions ended.
    pub sessions: u64,
    /// Whether the owner was mailed (`SECURITY_MAIL`).
    pub mailed: bool,
}

impl UserAdmin {
    pub fn new(
        users: Arc<dyn UserRepository>,
        factors: Arc<dyn FactorRepository>,
        tokens: Arc<dyn TokenRepository>,
        mailer: Arc<dyn Mailer>,
        flows: FlowConfig,
    ) -> Self {
        Self {
            users,
            factors,
            tokens,
            mailer,
            flows,
        }
    }

    /// Ends the sessions of the account of `email` (and any pending two-step
    /// sign-in), then removes every factor and recovery code, then mails its
    /// owner: the next sign-in takes the password alone. Running it again
    /// finishes what a store outage interrupted (ending sessions again is
    /// harmless). `NotFound` for an unknown address, with nothing changed.
    pub async fn mfa_reset(&self, email: &Email) -> AppResult<FactorReset> {
        let user = self
            .users
            .find_by_email(email.as_str())
            .await?
            .ok_or_else(|| {
                AppError::NotFound(format!("no account has the email {}", email.as_str()))
            })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let sessions = self.tokens.list_sessions(user.uid, now).await?.len() as u64;
        self.tokens.delete_user_refresh_tokens(user.uid).await?;
        let (factors, recovery_codes) = self.factors.remove_all_factors(user.uid).await?;
        tracing::info!(uid = %user.uid, factors, recovery_codes, sessions, "second factors reset by an operator");
        let notice = Notice::FactorsReset { factors, sessions };
        notify(
            self.mailer.as_ref(),
            &self.flows,
            &user.email,
            &notice,
            Actor::Operator,
        );
        Ok(FactorReset {
            uid: user.uid,
            email: user.email,
            factors,
            recovery_codes,
            sessions,
            mailed: self.flows.security_mail,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::mail::{Mail, MockMailer};
    use crate::model::interfaces::{MockFactorRepository, MockTokenRepository, MockUserRepository};
    use crate::model::{ClientInfo, SessionInfo};
    use crate::service::account::tests::{flow_config, user};

    fn session() -> SessionInfo {
        let client = ClientInfo::new("", "");
        SessionInfo {
            id: Uuid::new_v4(),
            created_at: 1,
            last_used_at: 1,
            user_agent: client.user_agent,
            ip: client.ip,
            name: None,
        }
    }

    #[tokio::test]
    async fn an_unknown_address_changes_nothing() {
        let mut users = MockUserRepository::new();
        users.expect_find_by_email().returning(|_| Ok(None));
        let mut factors = MockFactorRepository::new();
        factors.expect_remove_all_factors().never();
        let mut tokens = MockTokenRepository::new();
        tokens.expect_delete_user_refresh_tokens().never();
        let mut mailer = MockMailer::new();
        mailer.expect_send().never();
        let admin = UserAdmin::new(
            Arc::new(users),
            Arc::new(factors),
            Arc::new(tokens),
            Arc::new(mailer),
            flow_config(),
        );
        let email = Email::parse("nobody@example.com").unwrap();
        let err = admin.mfa_reset(&email).await.unwrap_err();
        assert!(matches!(err, AppError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn sessions_end_then_factors_go_then_the_owner_is_mailed() {
        let ada = user();
        let uid = ada.uid;
        let found = ada.clone();
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_email()
            .withf(|email| email == "ada@example.com")
            .returning(move |_| Ok(Some(found.clone())));
        let mut seq = mockall::Sequence::new();
        let mut factors = MockFactorRepository::new();
        let mut tokens = MockTokenRepository::new();
        tokens
            .expect_list_sessions()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(vec![session(), session()]));
        tokens
            .expect_delete_user_refresh_tokens()
            .withf(move |u| *u == uid)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(5));
        factors
            .expect_remove_all_factors()
            .withf(move |u| *u == uid)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok((1, 10)));
        let sent = Arc::new(Mutex::new(Vec::<Mail>::new()));
        let record = Arc::clone(&sent);
        let mut mailer = MockMailer::new();
        mailer
            .expect_send()
            .times(1)
            .returning(move |mail| record.lock().unwrap().push(mail));
        let admin = UserAdmin::new(
            Arc::new(users),
            Arc::new(factors),
            Arc::new(tokens),
            Arc::new(mailer),
            FlowConfig {
                security_mail: true,
                ..flow_config()
            },
        );
        let email = Email::parse("Ada@Example.com").unwrap();
        let done = admin.mfa_reset(&email).await.unwrap();
        assert_eq!(
            done,
            FactorReset {
                uid,
                email: ada.email.clone(),
                factors: 1,
                recovery_codes: 10,
                sessions: 2,
                mailed: true,
            }
        );
        let sent = sent.lock().unwrap();
        assert_eq!(sent[0].to, ada.email);
        assert!(sent[0].body.contains("an operator"), "{}", sent[0].body);
    }
}
