//! `account users mfa-reset EMAIL` (issue 28), the way back for a user who
//! lost both the authenticator and the recovery codes: on the service's own
//! stores it removes every factor and recovery code, ends every session and
//! mails the owner; the next sign-in takes the password alone. With the
//! in-process token store it refuses while the service runs (its sessions
//! live in that process) and works once it is stopped.

use serde_json::{Value, json};

use crate::helpers::{
    Backend, MAIL_WAIT, PASSWORD, PUBLIC_URL, TestApp, Tokens, claims, spawn_app,
};
use crate::mfa::{enrolled, mfa_token, second_step, send};
use crate::smtp_sink::SmtpSink;

const SUBJECT: &str = "Two-step sign-in was turned off for your account";

async fn factor_list(app: &TestApp, id_token: &str) -> Value {
    let (status, body, _) = send(app.client.get(app.url("/mfa")).bearer_auth(id_token)).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn an_operator_lets_a_locked_out_user_back_in(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &[("SMTP_URL", &smtp), ("PUBLIC_URL", PUBLIC_URL)]);
    let (email, secret, raised, codes, _) = enrolled(&app).await;
    // A second session, signed in with a recovery code.
    let token = mfa_token(&app, &email).await;
    let (status, body) = second_step(&app, &token, "recovery_code", &codes[0]).await;
    assert_eq!(status, 200, "{body}");
    let other = Tokens::from_body(&body);

    let app = match backend {
        Backend::Real => {
            unknown_address_changes_nothing(app.config()).await;
            let out = account::cli::users_mfa_reset(app.config(), &email.to_uppercase())
                .await
                .expect("mfa-reset");
            check_output(&out, &email);
            app
        }
        Backend::Embedded => {
            // While the service runs, its in-process token store is its own.
            let err = account::cli::users_mfa_reset(app.config(), &email)
                .await
                .unwrap_err();
            let err = format!("{err:#}");
            assert!(err.contains("another process uses"), "{err}");
            assert!(err.contains("stop it first"), "{err}");
            let list = factor_list(&app, &raised.id_token).await;
            assert_eq!(list["factors"].as_array().unwrap().len(), 1, "untouched");
            let email = email.clone();
            app.restart_after(|config| async move {
                unknown_address_changes_nothing(&config).await;
                let out = account::cli::users_mfa_reset(&config, &email)
                    .await
                    .expect("mfa-reset of a stopped service's stores");
                check_output(&out, &email);
            })
            .await
        }
    };

    // Sessions ended: their refresh tokens are refused.
    for ended in [&raised, &other] {
        assert_eq!(app.refresh(&ended.refresh_token).await.status(), 401);
    }
    if backend == Backend::Real {
        assert!(app.user_keys(raised.uid()).await.is_empty());
    }
    // The password alone signs in again, at aal1, with no factor left.
    let response = app.signin_response(&email, PASSWORD, "").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("mfa").is_none(), "{body}");
    let tokens = Tokens::from_body(&body);
    assert_eq!(claims(&tokens.id_token)["acr"], json!("aal1"));
    let list = factor_list(&app, &tokens.id_token).await;
    assert_eq!(list["factors"], json!([]));
    assert_eq!(list["recoveryCodesLeft"], 0);

    // The owner is told, and the mail holds no secret.
    let mails = sink.wait_for_mails_to(&email, 1, MAIL_WAIT).await;
    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    let mail = loop {
        let told = sink
            .mails()
            .into_iter()
            .find(|m| m.is_to(&email) && m.subject == SUBJECT);
        if let Some(mail) = told {
            break mail;
        }
        assert!(tokio::time::Instant::now() < deadline, "{mails:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        mail.body.contains("1 factor and every recovery code"),
        "{}",
        mail.body
    );
    assert!(mail.body.contains("2 sessions were ended"), "{}", mail.body);
    assert!(mail.body.contains("an operator"), "{}", mail.body);
    for secret in std::iter::once(&secret).chain(&codes) {
        assert!(!mail.raw.contains(secret.as_str()), "{}", mail.body);
    }
    app.signout(&tokens.id_token).await;
}

async fn unknown_address_changes_nothing(config: &account::config::Config) {
    let unknown = account::cli::users_mfa_reset(config, "nobody@example.com")
        .await
        .unwrap_err();
    assert!(
        format!("{unknown:#}").contains("no account has the email nobody@example.com"),
        "{unknown:#}"
    );
}

fn check_output(out: &str, email: &str) {
    for line in [
        format!("two-step sign-in of {email} ("),
        "removed 1 factor and 9 recovery codes".to_owned(),
        "ended 2 sessions".to_owned(),
        format!("mail to {email} handed to SMTP 127.0.0.1:"),
        "stores: users in ".to_owned(),
        "the next sign-in takes the password alone".to_owned(),
    ] {
        assert!(out.contains(&line), "{line:?} in {out}");
    }
}

crate::on_every_backend!(an_operator_lets_a_locked_out_user_back_in);
