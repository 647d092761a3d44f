//! Passkeys as a second factor over the API (issue 29), with a software
//! authenticator (1Password's `passkey` crate: discoverable credentials,
//! user verification, http://localhost allowed): registering, listing,
//! naming, the second step of a sign-in, and what is refused — a replayed
//! assertion, one for a challenge no ceremony has, one from another origin,
//! a passkey removed meanwhile, an expired ceremony — on both backends; a
//! ceremony started on one service process and finished on another over one
//! Redis; and no passkeys on an IP address.

use std::time::Duration;

use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::Passkey;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use serde_json::{Value, json};
use url::Url;

use crate::helpers::{Backend, PASSWORD, TestApp, Tokens, claims, spawn_app, unique_email};
use crate::mfa::{post, send};

/// The origin the relying party is configured with (`PUBLIC_URL`): the
/// tests call the service at its bound address, the authenticator signs
/// this origin.
pub(crate) const ORIGIN: &str = "http://localhost:8080";

/// A user who is there and verified: every check passes.
struct Present;

#[async_trait::async_trait]
impl UserValidationMethod for Present {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        _presence: bool,
        _verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }
}

/// A software authenticator holding one passkey, as a browser at `origin`.
pub(crate) struct SoftKey {
    /// What the authenticator stores: its one passkey, once made.
    pub(crate) store: Option<Passkey>,
    origin: Url,
}

/// A client over an authenticator that stores `store`.
macro_rules! client {
    ($store:expr) => {
        Client::new(Authenticator::new(
            Aaguid::new_empty(),
            $store,
            Present,
            RustCryptoBackend,
        ))
        .allows_insecure_localhost(true)
    };
}

impl SoftKey {
    pub(crate) fn at(origin: &str) -> Self {
        Self {
            store: None,
            origin: Url::parse(origin).unwrap(),
        }
    }

    /// `navigator.credentials.create(options)`, as `credential.toJSON()`.
    pub(crate) async fn create(&mut self, options: &Value) -> Value {
        let request: CredentialCreationOptions =
            serde_json::from_value(options.clone()).expect("creation options");
        let mut client = client!(self.store.take());
        let created = client
            .register(&self.origin, request, DefaultClientData)
            .await
            .expect("a new credential");
        self.store = client.authenticator().store().clone();
        serde_json::to_value(created).unwrap()
    }

    /// `navigator.credentials.get(options)`, as `credential.toJSON()`.
    pub(crate) async fn get(&mut self, options: &Value) -> Value {
        let origin = self.origin.clone();
        self.get_on(options, &origin).await
    }

    /// [`Self::get`] on a page of `origin`.
    async fn get_on(&mut self, options: &Value, origin: &Url) -> Value {
        let request: CredentialRequestOptions =
            serde_json::from_value(options.clone()).expect("request options");
        let mut client = client!(self.store.take());
        let asserted = client
            .authenticate(origin, request, DefaultClientData)
            .await
            .expect("an assertion");
        self.store = client.authenticator().store().clone();
        serde_json::to_value(asserted).unwrap()
    }
}

/// Registers a passkey of the signed-up user of `tokens` on `key`: the
/// finish's answer.
pub(crate) async fn register(
    app: &TestApp,
    tokens: &Tokens,
    key: &mut SoftKey,
    name: &str,
) -> Value {
    let (status, options, _) = post(
        app,
        "/mfa/webauthn/register/start",
        &tokens.id_token,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{options}");
    let credential = key.create(&options).await;
    let (status, body, _) = post(
        app,
        "/mfa/webauthn/register/finish",
        &tokens.id_token,
        json!({"name": name, "credential": credential}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Signs in with the password: the mfa answer.
async fn password_step(app: &TestApp, email: &str) -> Value {
    let response = app.signin_response(email, PASSWORD, "").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["mfa"].clone()
}

async fn step_start(app: &TestApp, mfa_token: &str) -> (u16, Value) {
    let (status, body, _) = send(
        app.client
            .post(app.url("/signin/mfa/webauthn/start"))
            .json(&json!({"mfaToken": mfa_token})),
    )
    .await;
    (status, body)
}

async fn step_finish(app: &TestApp, mfa_token: &str, credential: &Value) -> (u16, Value) {
    let (status, body, _) = send(
        app.client
            .post(app.url("/signin/mfa"))
            .json(&json!({"mfaToken": mfa_token, "method": "webauthn", "credential": credential})),
    )
    .await;
    (status, body)
}

async fn a_passkey_is_registered_named_and_signs_in_as_the_second_step(backend: Backend) {
    let app = spawn_app!(backend, &[("PUBLIC_URL", ORIGIN)]);
    let email = unique_email();
    let (uid, tokens) = app.signup(&email).await;
    let mut key = SoftKey::at(ORIGIN);

    let (status, options, _) = post(
        &app,
        "/mfa/webauthn/register/start",
        &tokens.id_token,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{options}");
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required");
    assert_eq!(selection["requireResidentKey"], true);
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    let credential = key.create(&options).await;
    let (status, body, _) = post(
        &app,
        "/mfa/webauthn/register/finish",
        &tokens.id_token,
        json!({"name": "laptop", "credential": credential}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["recoveryCodes"].as_array().unwrap().len(),
        10,
        "the first factor"
    );
    let id = body["id"].as_str().unwrap().to_owned();
    let raised = app.refreshed(&tokens.refresh_token).await;
    assert_eq!(claims(&raised.id_token)["acr"], "aal2");
    // The same credential again (from an aal2 session): its ceremony was used.
    let (status, again, _) = post(
        &app,
        "/mfa/webauthn/register/finish",
        &raised.id_token,
        json!({"credential": credential}),
    )
    .await;
    assert_eq!(status, 400, "{again}");
    assert_eq!(again["error"]["invalidArgs"][0]["field"], "credential");

    let (_, list, _) = send(
        app.client
            .get(app.url("/mfa"))
            .bearer_auth(&raised.id_token),
    )
    .await;
    assert_eq!(list["factors"][0]["type"], "webauthn", "{list}");
    assert_eq!(list["factors"][0]["name"], "laptop");
    let renamed = app
        .client
        .put(app.url(&format!("/mfa/{id}")))
        .bearer_auth(&raised.id_token)
        .json(&json!({"name": "work laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 204);

    // The password, then the passkey.
    let mfa = password_step(&app, &email).await;
    assert_eq!(
        mfa["methods"],
        json!(["webauthn", "recovery_code"]),
        "{mfa}"
    );
    let token = mfa["token"].as_str().unwrap();
    let (status, options) = step_start(&app, token).await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(options["publicKey"]["userVerification"], "required");
    let assertion = key.get(&options).await;
    let (status, body) = step_finish(&app, token, &assertion).await;
    assert_eq!(status, 200, "{body}");
    let signed_in = Tokens::from_body(&body);
    let id_claims = claims(&signed_in.id_token);
    assert_eq!(id_claims["acr"], "aal2");
    // The software authenticator's passkeys are backup eligible (synced).
    assert_eq!(id_claims["amr"], json!(["pwd", "swk", "mfa"]));
    let (_, list, _) = send(
        app.client
            .get(app.url("/mfa"))
            .bearer_auth(&signed_in.id_token),
    )
    .await;
    assert_eq!(list["factors"][0]["name"], "work laptop");
    assert!(list["factors"][0]["lastUsedAt"].is_u64(), "{list}");
    if backend == Backend::Real {
        let left = app.live_keys(&format!("{uid}:webauthn:")).await;
        assert!(left.is_empty(), "each ceremony is taken: {left:?}");
    }

    // The same assertion again, with a new mfa token: refused, and counted.
    let mfa = password_step(&app, &email).await;
    let token = mfa["token"].as_str().unwrap();
    let (status, body) = step_finish(&app, token, &assertion).await;
    assert_eq!(status, 401, "a replayed assertion: {body}");
    app.signout(&signed_in.id_token).await;
}

async fn foreign_stale_and_orphaned_assertions_are_refused(backend: Backend) {
    let app = spawn_app!(backend, &[("PUBLIC_URL", ORIGIN)]);
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let mut key = SoftKey::at(ORIGIN);
    register(&app, &tokens, &mut key, "key").await;
    let raised = app.refreshed(&tokens.refresh_token).await;

    let token = password_step(&app, &email).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // For a challenge no ceremony has.
    let (_, mut options) = step_start(&app, &token).await;
    options["publicKey"]["challenge"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let forged = key.get(&options).await;
    let (status, body) = step_finish(&app, &token, &forged).await;
    assert_eq!(status, 401, "another challenge: {body}");
    // From another origin (a page elsewhere relaying the ceremony).
    let (_, options) = step_start(&app, &token).await;
    let elsewhere = Url::parse("http://localhost:9999").unwrap();
    let relayed = key.get_on(&options, &elsewhere).await;
    let (status, body) = step_finish(&app, &token, &relayed).await;
    assert_eq!(status, 401, "a wrong origin: {body}");
    // Removed between the start and the finish.
    let (_, options) = step_start(&app, &token).await;
    let assertion = key.get(&options).await;
    let (_, list, _) = send(
        app.client
            .get(app.url("/mfa"))
            .bearer_auth(&raised.id_token),
    )
    .await;
    let id = list["factors"][0]["id"].as_str().unwrap();
    let removed = app
        .client
        .delete(app.url(&format!("/mfa/{id}")))
        .bearer_auth(&raised.id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let (status, body) = step_finish(&app, &token, &assertion).await;
    assert_eq!(status, 401, "a removed passkey: {body}");
    // Three wrong answers counted on the mfa token: two more end it.
    let (status, _) = step_finish(&app, &token, &assertion).await;
    assert_eq!(status, 401);
    let (status, body) = step_finish(&app, &token, &assertion).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "the fifth failure ends the two-step sign-in: {body}"
    );
    app.signout(&raised.id_token).await;
}

async fn an_expired_ceremony_is_refused(backend: Backend) {
    let app = spawn_app!(
        backend,
        &[("PUBLIC_URL", ORIGIN), ("WEBAUTHN_CEREMONY_EXP", "1")]
    );
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let mut key = SoftKey::at(ORIGIN);
    let (_, options, _) = post(
        &app,
        "/mfa/webauthn/register/start",
        &tokens.id_token,
        json!({}),
    )
    .await;
    let credential = key.create(&options).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (status, body, _) = post(
        &app,
        "/mfa/webauthn/register/finish",
        &tokens.id_token,
        json!({"credential": credential}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["invalidArgs"][0]["message"]
            .as_str()
            .unwrap()
            .contains("start again")
    );

    register(&app, &tokens, &mut key, "key").await;
    let raised = app.refreshed(&tokens.refresh_token).await;
    let token = password_step(&app, &email).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, options) = step_start(&app, &token).await;
    let assertion = key.get(&options).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (status, body) = step_finish(&app, &token, &assertion).await;
    assert_eq!(status, 401, "{body}");
    app.signout(&raised.id_token).await;
}

/// An authenticator with a signature counter: each sign-in must show a
/// higher one than the last; a copy that shows a lower one (a cloned
/// authenticator) is refused.
async fn a_signature_counter_that_goes_back_is_refused(backend: Backend) {
    let app = spawn_app!(backend, &[("PUBLIC_URL", ORIGIN)]);
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let mut key = SoftKey::at(ORIGIN);
    register(&app, &tokens, &mut key, "key").await;
    let raised = app.refreshed(&tokens.refresh_token).await;
    key.store.as_mut().expect("the passkey").counter = Some(10);
    let clone = key.store.clone();
    let sign_in = async |key: &mut SoftKey| {
        let token = password_step(&app, &email).await["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, options) = step_start(&app, &token).await;
        let assertion = key.get(&options).await;
        step_finish(&app, &token, &assertion).await
    };
    let (status, body) = sign_in(&mut key).await;
    assert_eq!(status, 200, "counter 11 after none: {body}");
    let (status, body) = sign_in(&mut key).await;
    assert_eq!(status, 200, "counter 12: {body}");
    app.signout(&Tokens::from_body(&body).id_token).await;
    // The copy taken at 10 signs 11 now: not above the 12 seen.
    key.store = clone;
    let (status, body) = sign_in(&mut key).await;
    assert_eq!(status, 401, "a counter that went back: {body}");
    app.signout(&raised.id_token).await;
}

/// A ceremony is the pending sign-in's user's: another user's mfa token
/// with it finds nothing (and the ceremony stays for its own).
async fn an_assertion_answers_only_its_own_users_second_step(backend: Backend) {
    let app = spawn_app!(backend, &[("PUBLIC_URL", ORIGIN)]);
    let (mine, theirs) = (unique_email(), unique_email());
    let mut key = SoftKey::at(ORIGIN);
    let mut their_key = SoftKey::at(ORIGIN);
    let (_, my_tokens) = app.signup(&mine).await;
    register(&app, &my_tokens, &mut key, "mine").await;
    let (_, their_tokens) = app.signup(&theirs).await;
    register(&app, &their_tokens, &mut their_key, "theirs").await;
    let my_token = password_step(&app, &mine).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let their_token = password_step(&app, &theirs).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, options) = step_start(&app, &my_token).await;
    let assertion = key.get(&options).await;
    let (status, body) = step_finish(&app, &their_token, &assertion).await;
    assert_eq!(status, 401, "with their mfa token: {body}");
    let (status, body) = step_finish(&app, &my_token, &assertion).await;
    assert_eq!(status, 200, "with mine: {body}");
    app.signout(&Tokens::from_body(&body).id_token).await;
    let theirs_raised = app.refreshed(&their_tokens.refresh_token).await;
    app.signout(&theirs_raised.id_token).await;
}

crate::on_every_backend!(
    an_assertion_answers_only_its_own_users_second_step,
    a_passkey_is_registered_named_and_signs_in_as_the_second_step,
    foreign_stale_and_orphaned_assertions_are_refused,
    an_expired_ceremony_is_refused,
    a_signature_counter_that_goes_back_is_refused,
);

/// A second service process on `app`'s stores and settings (PostgreSQL and
/// Redis): its address, and what stops it.
async fn replica_of(app: &TestApp) -> (String, tokio::sync::oneshot::Sender<()>) {
    let built = account::startup::Application::build(app.config().clone())
        .await
        .expect("a replica");
    let address = format!("http://{}", built.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(built.run_until(async {
        let _ = stopped.await;
    }));
    (address, stop)
}

#[tokio::test]
async fn a_ceremony_started_on_one_replica_finishes_on_another() {
    let app = spawn_app!(Backend::Real, &[("PUBLIC_URL", ORIGIN)]);
    let (other, stop) = replica_of(&app).await;
    let on_other = |path: &str| format!("{other}/api/account{path}");
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let mut key = SoftKey::at(ORIGIN);
    // Registration: started here, finished there.
    let (_, options, _) = post(
        &app,
        "/mfa/webauthn/register/start",
        &tokens.id_token,
        json!({}),
    )
    .await;
    let credential = key.create(&options).await;
    let response = app
        .client
        .post(on_other("/mfa/webauthn/register/finish"))
        .bearer_auth(&tokens.id_token)
        .json(&json!({"credential": credential}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let raised = app.refreshed(&tokens.refresh_token).await;
    // The second step: started there, finished here.
    let token = password_step(&app, &email).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .client
        .post(on_other("/signin/mfa/webauthn/start"))
        .json(&json!({"mfaToken": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let options: Value = response.json().await.unwrap();
    let assertion = key.get(&options).await;
    let (status, body) = step_finish(&app, &token, &assertion).await;
    assert_eq!(status, 200, "{body}");
    let signed_in = Tokens::from_body(&body);
    let _ = stop.send(());
    app.signout(&signed_in.id_token).await;
    app.signout(&raised.id_token).await;
}

#[tokio::test]
async fn an_ip_address_as_public_url_leaves_passkeys_off() {
    let app = spawn_app!(
        Backend::Embedded,
        &[("PUBLIC_URL", "http://127.0.0.1:8080")]
    );
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let (status, body, _) = post(
        &app,
        "/mfa/webauthn/register/start",
        &tokens.id_token,
        json!({}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("passkeys are off") && message.contains("IP address"),
        "{message}"
    );
    app.signout(&tokens.id_token).await;
}
