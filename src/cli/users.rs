//! `account users …`: an operator's commands on one account, on the
//! service's own stores (its settings: `account serve --help`).

use std::time::Duration;

use clap::Subcommand;

use crate::config::Config;
use crate::model::Email;
use crate::startup::operator;

#[derive(Debug, Subcommand)]
pub(super) enum UsersCommand {
    /// Turn off two-step sign-in of an account whose owner lost both the
    /// authenticator and the recovery codes: removes every factor and
    /// recovery code, ends every session, mails the owner (SECURITY_MAIL)
    /// and prints what it did. The next sign-in takes the password alone.
    /// With the in-process token store (REDIS_URL unset), stop the service
    /// first: its sessions live in that process.
    MfaReset {
        /// The account's email address.
        #[arg(allow_hyphen_values = true)]
        email: String,
    },
}

/// How long the command waits for its mail to leave (the mailer retries a
/// server that is down after 1, 2, 4 and 8 s).
const MAIL_WAIT: Duration = Duration::from_secs(20);

pub(super) async fn users(command: UsersCommand) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let output = match command {
        UsersCommand::MfaReset { email } => users_mfa_reset(&config, &email).await?,
    };
    print!("{output}");
    Ok(())
}

/// `account users mfa-reset EMAIL` on the stores of `config`: what it did,
/// one line each. An unknown address is an error, with nothing changed.
pub async fn users_mfa_reset(config: &Config, email: &str) -> anyhow::Result<String> {
    let email = Email::parse(email).map_err(|why| anyhow::anyhow!("EMAIL: {why}"))?;
    let operator = operator(config).await?;
    let done = operator.admin.mfa_reset(&email).await.map_err(|err| {
        anyhow::Error::new(err).context(
            "mfa-reset stopped part way (sessions end first, then factors go): run it again",
        )
    })?;
    if let Some(drain) = operator.mail_drain {
        drain.drain(MAIL_WAIT).await;
    }
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mail = if done.mailed {
        format!(
            "mail to {} handed to {} (one not delivered is logged)",
            done.email, operator.mail
        )
    } else {
        format!("no mail to {} (SECURITY_MAIL=off)", done.email)
    };
    Ok(format!(
        "two-step sign-in of {} ({}) is off:\n\
         stores: {}\n\
         removed {} and {}\n\
         ended {} (and any pending two-step sign-in)\n\
         {mail}\n\
         the next sign-in takes the password alone\n",
        done.email,
        done.uid,
        operator.stores,
        plural(done.factors, "factor", "factors"),
        plural(done.recovery_codes, "recovery code", "recovery codes"),
        plural(done.sessions, "session", "sessions"),
    ))
}
