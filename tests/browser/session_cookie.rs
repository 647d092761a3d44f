//! The browser session in Chromium: its refresh token is in a cookie that
//! page script cannot read (`HttpOnly`, `SameSite=Strict`, sent only to the
//! `/browser` routes), and neither it nor any other token is in
//! `document.cookie`, `localStorage` or `sessionStorage`. A reload keeps the
//! person signed in (the cookie rotates); signing out removes the cookie and
//! ends the session.

use reqwest::StatusCode;
use serde_json::Value;

use crate::app::{App, Backend, unique_email};
use crate::browser::Browser;
use crate::harness::PASSWORD;
use crate::people::{on_account_page, sign_in_on_page};
use crate::{on_every_backend, stage};

on_every_backend!(the_session_cookie_is_out_of_scripts_reach);

/// The `refresh_token` cookie the browser sends to the `/browser` routes.
async fn session_cookie(browser: &Browser, app: &App) -> Option<Value> {
    browser
        .cookies_for(&app.url("/api/account/browser/tokens"))
        .await
        .into_iter()
        .find(|cookie| cookie["name"] == "refresh_token")
}

async fn the_session_cookie_is_out_of_scripts_reach(backend: Backend, test: &'static str) {
    let mut stage = stage!(backend, test);
    let app = &stage.app;
    let email = unique_email();
    app.sign_up(&email, PASSWORD).await;
    let browser = &mut stage.browser;
    sign_in_on_page(browser, app, &email, PASSWORD).await;

    let cookie = session_cookie(browser, app)
        .await
        .expect("a session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    assert_eq!(cookie["path"], "/api/account/browser", "{cookie}");
    assert_eq!(cookie["session"], false, "it has a lifetime: {cookie}");
    let token = cookie["value"].as_str().expect("a value").to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {cookie}");
    let on_pages = browser.cookies_for(&app.url("/account")).await;
    assert!(
        on_pages.is_empty(),
        "no cookie goes to the pages: {on_pages:?}"
    );

    // What page script can see: no token of any kind.
    let seen = browser
        .execute(
            "const all = (s) => JSON.stringify(Object.entries(s)); \
             return [document.cookie, all(localStorage), all(sessionStorage)];",
        )
        .await;
    let seen: Vec<String> = serde_json::from_value(seen).expect("three strings");
    for (place, text) in ["document.cookie", "localStorage", "sessionStorage"]
        .iter()
        .zip(&seen)
    {
        assert!(
            !text.contains(&token) && !text.contains("refresh_token") && !text.contains("eyJ"),
            "{place} holds a token: {text:?}"
        );
    }

    // A reload stays signed in, on a rotated cookie.
    browser.client.refresh().await.expect("reload");
    on_account_page(browser, app, &email).await;
    let rotated = session_cookie(browser, app).await.expect("still a cookie");
    let rotated = rotated["value"].as_str().expect("a value").to_owned();
    assert_ne!(rotated, token, "the reload rotated the refresh token");

    // Signing out: back to /signin, the cookie gone, its token refused.
    browser.click("#signout").await;
    let signin = app.url("/signin");
    browser
        .wait_for_url("/signin", |url| url.starts_with(&signin))
        .await;
    assert_eq!(
        session_cookie(browser, app).await,
        None,
        "the cookie is removed"
    );
    let refused = app.refresh(&rotated).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "after sign-out");

    // The account page, without a session, sends the person to sign in.
    browser.expect_failed_request("/api/account/browser/tokens", 401);
    browser.open(&app.url("/account")).await;
    browser
        .wait_for_url("/signin", |url| url.starts_with(&signin))
        .await;
    stage.finish().await;
}
