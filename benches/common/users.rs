//! The users a bench signs up over HTTP, and the removal of their `<uid>:*`
//! Redis keys, and nothing else, when the bench is done (also on an early
//! return; the bench's database is dropped whole).

use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::load::{ClientState, PASSWORD, Targets, tokens_of};
use crate::stores::delete_user_keys;

/// The subject (the user's uid) of an ID token, read without verifying it.
fn subject_of(id_token: &str) -> anyhow::Result<Uuid> {
    let payload = id_token.split('.').nth(1).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    let claims: Value = serde_json::from_slice(&bytes)?;
    Ok(claims["sub"].as_str().context("no sub")?.parse()?)
}

/// The users the bench created; their `<uid>:*` Redis keys, and nothing
/// else, are removed when its [`UsersCleanup`] drops (the database is dropped
/// whole).
#[derive(Clone, Default)]
pub struct Users(Arc<Mutex<Vec<Uuid>>>);

impl Users {
    fn add(&self, uid: Uuid) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(uid);
    }
}

/// Removes the created users' Redis keys when dropped.
pub struct UsersCleanup(pub Users);

impl Drop for UsersCleanup {
    fn drop(&mut self) {
        let users = std::mem::take(&mut *self.0.0.lock().unwrap_or_else(|e| e.into_inner()));
        match std::thread::spawn(move || delete_user_keys(&users).map(|n| (users.len(), n))).join()
        {
            Ok(Ok((users, keys))) => {
                eprintln!("  … removed {keys} Redis keys of {users} bench users")
            }
            Ok(Err(e)) => eprintln!("WARNING: Redis cleanup failed: {e}"),
            Err(_) => eprintln!("WARNING: Redis cleanup panicked"),
        }
    }
}

/// Signs up one new user; its state.
pub async fn sign_up(targets: &Targets, users: &Users) -> anyhow::Result<ClientState> {
    let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
    let response = targets
        .http
        .post(format!("{}/signup", targets.account))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if status != 201 {
        bail!("sign-up answered {status}: {body}");
    }
    let (id_token, refresh_token) = tokens_of(&body).context("no token pair")?;
    users.add(subject_of(&id_token)?);
    Ok(ClientState {
        email,
        id_token,
        refresh_token,
    })
}

/// Signs `state`'s user in once more (one more session); its new state.
pub async fn sign_in(targets: &Targets, state: &ClientState) -> anyhow::Result<ClientState> {
    let response = targets
        .http
        .post(format!("{}/signin", targets.account))
        .json(&json!({"email": state.email, "password": PASSWORD}))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if status != 200 {
        bail!("sign-in answered {status}: {body}");
    }
    let (id_token, refresh_token) = tokens_of(&body).context("no token pair")?;
    Ok(ClientState {
        email: state.email.clone(),
        id_token,
        refresh_token,
    })
}

/// `n` users signed up concurrently.
pub async fn sign_up_many(
    targets: &Targets,
    users: &Users,
    n: usize,
) -> anyhow::Result<Vec<ClientState>> {
    futures::future::join_all((0..n).map(|_| sign_up(targets, users)))
        .await
        .into_iter()
        .collect()
}

/// The uid an ID token was issued to.
pub fn uid_of(state: &ClientState) -> anyhow::Result<Uuid> {
    subject_of(&state.id_token)
}
