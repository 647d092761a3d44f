//! Look-alike emails are one address: the normal form (RFC 8265
//! UsernameCaseMapped local part, IDNA ASCII domain) on sign-up, sign-in and
//! `PUT /details`; invisible and control characters refused; rows from before
//! brought to the normal form by the start-up pass.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, PASSWORD, TestApp, Tokens, assert_error, claims, spawn_app};

/// A fresh suffix, so that addresses do not collide across tests and runs.
fn tag() -> String {
    Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// `josé-<tag>@example.com` with a precomposed `é` (NFC).
fn jose_nfc(tag: &str) -> String {
    format!("jos\u{e9}-{tag}@example.com")
}

/// The same address with `e` + U+0301 COMBINING ACUTE ACCENT (NFD).
fn jose_nfd(tag: &str) -> String {
    format!("jose\u{301}-{tag}@example.com")
}

/// The uid of the user a pair of tokens was issued to.
fn sub(tokens: &Tokens) -> Uuid {
    claims(&tokens.id_token)["sub"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Signs in and expects 200; the uid signed into.
async fn signs_into(app: &TestApp, email: &str) -> Uuid {
    let response = app.signin_response(email, PASSWORD, "").await;
    assert_eq!(response.status(), 200, "sign-in with {email:?}");
    let tokens = Tokens::from_body(&response.json().await.unwrap());
    app.signout(&tokens.id_token).await;
    sub(&tokens)
}

/// Asserts a 400 whose only field error is `email`, about invisible characters.
async fn assert_invisible_refused(response: reqwest::Response, what: &str) {
    let body = assert_error(response, 400, "BAD_REQUEST").await;
    let args = body["error"]["invalidArgs"]
        .as_array()
        .expect("invalidArgs");
    assert_eq!(args.len(), 1, "{what}: {body}");
    assert_eq!(args[0]["field"], "email", "{what}: {body}");
    assert!(
        args[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("invisible or control characters")),
        "{what}: {body}"
    );
}

async fn the_nfc_and_nfd_spellings_are_one_account(backend: Backend) {
    let app = spawn_app!(backend);
    let tag = tag();
    let (uid, tokens) = app.signup(&jose_nfc(&tag)).await;
    let body = assert_error(
        app.signup_response(&jose_nfd(&tag), PASSWORD).await,
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(body["error"]["message"], "email already registered");
    assert_eq!(app.count_users_with_email(&jose_nfc(&tag)).await, 1);
    assert_eq!(app.count_users_with_email(&jose_nfd(&tag)).await, 0);
    // And the other way round: NFD first is stored composed.
    let other = self::tag();
    let (uid2, tokens2) = app.signup(&jose_nfd(&other)).await;
    assert_eq!(app.stored_email(uid2).await, Some(jose_nfc(&other)));
    assert_error(
        app.signup_response(&jose_nfc(&other), PASSWORD).await,
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(app.stored_email(uid).await, Some(jose_nfc(&tag)));
    app.signout(&tokens.id_token).await;
    app.signout(&tokens2.id_token).await;
}

async fn fullwidth_and_case_variants_are_the_same_account(backend: Backend) {
    let app = spawn_app!(backend);
    let tag = tag();
    let email = format!("ada-{tag}@b\u{fc}cher.example");
    let (uid, tokens) = app.signup(&email).await;
    assert_eq!(
        app.stored_email(uid).await,
        Some(format!("ada-{tag}@xn--bcher-kva.example")),
        "the domain is stored in its IDNA ASCII form"
    );
    for variant in [
        // U+FF41 FULLWIDTH LATIN SMALL LETTER A, and a fullwidth at sign.
        format!("\u{ff41}da-{tag}\u{ff20}b\u{fc}cher.example"),
        format!("ADA-{tag}@B\u{dc}CHER.EXAMPLE"),
        format!("ada-{tag}@xn--bcher-kva.example"),
        format!("ada-{tag}@bu\u{308}cher.example"),
    ] {
        assert_error(
            app.signup_response(&variant, PASSWORD).await,
            409,
            "CONFLICT",
        )
        .await;
        assert_eq!(signs_into(&app, &variant).await, uid, "{variant:?}");
    }
    let me: Value = app.me(&tokens.id_token).await.json().await.unwrap();
    assert_eq!(
        me["user"]["email"],
        format!("ada-{tag}@xn--bcher-kva.example")
    );
    app.signout(&tokens.id_token).await;
}

async fn a_look_alike_signs_into_the_one_account(backend: Backend) {
    let app = spawn_app!(backend);
    let tag = tag();
    let (uid, tokens) = app.signup(&jose_nfc(&tag)).await;
    for variant in [
        jose_nfd(&tag),
        format!("JOS\u{c9}-{tag}@EXAMPLE.COM"),
        format!("jos\u{e9}-{tag}@\u{ff45}xample.com"),
    ] {
        assert_eq!(signs_into(&app, &variant).await, uid, "{variant:?}");
    }
    app.signout(&tokens.id_token).await;
}

async fn invisible_characters_are_refused_naming_the_email(backend: Backend) {
    let app = spawn_app!(backend);
    let tag = tag();
    let email = format!("ada-{tag}@example.com");
    let (uid, tokens) = app.signup(&email).await;
    for (what, look_alike) in [
        ("zero-width space", format!("ada\u{200b}-{tag}@example.com")),
        ("soft hyphen", format!("a\u{ad}da-{tag}@example.com")),
        (
            "soft hyphen in the domain",
            format!("ada-{tag}@exam\u{ad}ple.com"),
        ),
        (
            "right-to-left override",
            format!("\u{202e}ada-{tag}@example.com"),
        ),
    ] {
        assert_invisible_refused(app.signup_response(&look_alike, PASSWORD).await, what).await;
        assert_invisible_refused(app.signin_response(&look_alike, PASSWORD, "").await, what).await;
        assert_invisible_refused(
            app.put_details(
                &tokens.id_token,
                &json!({"name": "", "email": look_alike, "website": "", "currentPassword": PASSWORD}),
            )
            .await,
            what,
        )
        .await;
    }
    assert_eq!(app.count_users_with_email(&email).await, 1);
    assert_eq!(app.stored_email(uid).await, Some(email));
    app.signout(&tokens.id_token).await;
}

async fn details_take_the_normal_form_and_refuse_a_look_alike_of_another(backend: Backend) {
    let app = spawn_app!(backend);
    let tag = tag();
    let (_, other) = app.signup(&jose_nfc(&tag)).await;
    let mine = format!("ada-{tag}@example.com");
    let (uid, tokens) = app.signup(&mine).await;
    // The own address in another spelling is no change: no password needed.
    let response = app
        .put_details(
            &tokens.id_token,
            &json!({"name": "Ada", "email": format!("\u{ff41}DA-{tag}@example.com"), "website": ""}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], mine);
    // A look-alike of another user's address is that address: 409.
    let body = assert_error(
        app.put_details(
            &tokens.id_token,
            &json!({"name": "", "email": jose_nfd(&tag), "website": "", "currentPassword": PASSWORD}),
        )
        .await,
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(body["error"]["message"], "email already registered");
    // A new address is stored in its normal form.
    let response = app
        .put_details(
            &tokens.id_token,
            &json!({"name": "", "email": format!("Zo\u{eb}-{tag}@B\u{dc}cher.example"),
                    "website": "", "currentPassword": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.stored_email(uid).await,
        Some(format!("zo\u{eb}-{tag}@xn--bcher-kva.example"))
    );
    app.signout(&tokens.id_token).await;
    app.signout(&other.id_token).await;
}

async fn the_start_up_pass_brings_stored_emails_to_the_normal_form(backend: Backend) {
    let app = spawn_app!(backend);
    let tag = tag();
    // A real sign-up, for a valid password hash to copy into the rows below.
    let (_, seed) = app.signup(&format!("seed-{tag}@example.com")).await;
    let hash = app
        .stored_password_hash(&format!("seed-{tag}@example.com"))
        .await;
    app.signout(&seed.id_token).await;

    let (older, newer, lone, upper, first, second, invisible) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    // The real account, normal, and a newer look-alike of it (NFD).
    app.insert_user_row(older, &jose_nfc(&tag), &hash, "2020-01-01 00:00:00")
        .await;
    app.insert_user_row(newer, &jose_nfd(&tag), &hash, "2021-06-01 12:00:00")
        .await;
    // Alone: fullwidth, decomposed, with a Unicode domain.
    let lone_stored = format!("\u{ff5a}oe\u{308}-{tag}@b\u{fc}cher.example");
    let lone_normal = format!("zo\u{eb}-{tag}@xn--bcher-kva.example");
    app.insert_user_row(lone, &lone_stored, &hash, "2022-01-01 00:00:00")
        .await;
    // Alone, upper-case ASCII only.
    let upper_stored = format!("UPPER-{tag}@EXAMPLE.COM");
    app.insert_user_row(upper, &upper_stored, &hash, "2022-01-01 00:00:00")
        .await;
    // Two look-alikes, neither normal: the older takes the address even
    // though the newer was inserted (and scanned) first.
    let second_stored = format!("ma\u{ff58}-{tag}@example.com");
    let first_stored = format!("\u{ff4d}ax-{tag}@example.com");
    app.insert_user_row(second, &second_stored, &hash, "2023-03-03 03:03:03")
        .await;
    app.insert_user_row(first, &first_stored, &hash, "2019-09-09 09:09:09")
        .await;
    // No normal form at all: refused characters stay as stored.
    let invisible_stored = format!("ada\u{200b}-{tag}@example.com");
    app.insert_user_row(invisible, &invisible_stored, &hash, "2022-01-01 00:00:00")
        .await;

    let app = app.restart().await;

    assert_eq!(app.stored_email(older).await, Some(jose_nfc(&tag)));
    assert_eq!(
        app.stored_email(newer).await,
        Some(jose_nfd(&tag)),
        "the newer look-alike is left as stored"
    );
    assert_eq!(app.stored_email(lone).await, Some(lone_normal.clone()));
    assert_eq!(
        app.stored_email(upper).await,
        Some(format!("upper-{tag}@example.com"))
    );
    assert_eq!(
        app.stored_email(first).await,
        Some(format!("max-{tag}@example.com"))
    );
    assert_eq!(app.stored_email(second).await, Some(second_stored.clone()));
    assert_eq!(app.stored_email(invisible).await, Some(invisible_stored));

    // Sign-in: every spelling finds the account that holds the address.
    assert_eq!(signs_into(&app, &lone_normal).await, lone);
    assert_eq!(signs_into(&app, &lone_stored).await, lone);
    assert_eq!(signs_into(&app, &jose_nfd(&tag)).await, older);
    assert_eq!(signs_into(&app, &jose_nfc(&tag)).await, older);
    assert_eq!(signs_into(&app, &upper_stored).await, upper);
    assert_eq!(signs_into(&app, &second_stored).await, first);

    // A second start finds nothing more to do and changes nothing.
    let app = app.restart().await;
    assert_eq!(app.stored_email(newer).await, Some(jose_nfd(&tag)));
    assert_eq!(app.stored_email(second).await, Some(second_stored));
    assert_eq!(app.stored_email(lone).await, Some(lone_normal));
}

crate::on_every_backend!(
    the_nfc_and_nfd_spellings_are_one_account,
    fullwidth_and_case_variants_are_the_same_account,
    a_look_alike_signs_into_the_one_account,
    invisible_characters_are_refused_naming_the_email,
    details_take_the_normal_form_and_refuse_a_look_alike_of_another,
    the_start_up_pass_brings_stored_emails_to_the_normal_form
);
