//! `?redirect_to=` in Chromium, with `REDIRECT_URLS` set: an address it
//! allows gets a "Continue" link after sign-in, verification and reset (and
//! the links between the pages keep it); foreign look-alikes are ignored:
//! no Continue, no link to them, sign-in goes on to `/account`.

use serde_json::json;

use crate::app::{Backend, unique_email};
use crate::harness::{self, PASSWORD};
use crate::people::on_account_page;
use crate::{on_every_backend, stage};

on_every_backend!(only_an_allowed_redirect_is_offered);

const ALLOWED: &str = "https://app.example.com/home";
const TARGET: &str = "https://app.example.com/home/orders?id=7";
const FOREIGN: [&str; 2] = [
    "https://app.example.com.evil.net/home",
    "https://app.example.com@evil.net/home",
];
const NEW_PASSWORD: &str = "a brand new passphrase 42";

/// `text` for a query parameter's value (as `encodeURIComponent`).
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn only_an_allowed_redirect_is_offered(backend: Backend, test: &'static str) {
    let env = [("REDIRECT_URLS", ALLOWED.to_owned())];
    let mut stage = stage!(backend, test, &env);
    let app = &stage.app;
    let email = unique_email();
    app.sign_up(&email, PASSWORD).await;
    let browser = &mut stage.browser;

    let query = format!("?redirect_to={}", encoded(TARGET));
    browser.open(&app.url(&format!("/signin{query}"))).await;
    for (link, page) in [
        ("#forgot-link", "/forgot-password"),
        ("#signup-link", "/signup"),
    ] {
        let href = browser
            .element(link)
            .await
            .attr("href")
            .await
            .expect("href");
        assert_eq!(
            href.as_deref(),
            Some(format!("{page}{query}").as_str()),
            "{link}"
        );
    }
    browser.type_into("#email", &email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#submit").await;
    browser
        .wait_for_text("#done-message", "you are signed in")
        .await;
    let continue_to = browser
        .element("#continue")
        .await
        .attr("href")
        .await
        .expect("href");
    assert_eq!(continue_to.as_deref(), Some(TARGET));
    assert!(
        browser.is_displayed("#done-account a").await,
        "a link to /account"
    );
    browser.screenshot("signin-continue").await;
    assert!(browser.current_url().await.starts_with(&app.url("/signin")));

    for foreign in FOREIGN {
        browser
            .open(&app.url(&format!("/signin?redirect_to={}", encoded(foreign))))
            .await;
        let href = browser
            .element("#signup-link")
            .await
            .attr("href")
            .await
            .expect("href");
        assert_eq!(href.as_deref(), Some("/signup"), "{foreign}");
        browser.type_into("#email", &email).await;
        browser.type_into("#password", PASSWORD).await;
        browser.click("#submit").await;
        on_account_page(browser, app, &email).await;
        assert_eq!(browser.count("#continue").await, 0, "{foreign}");
        let links = browser
            .execute("return [...document.querySelectorAll('a')].map((a) => a.href);")
            .await;
        assert!(!links.to_string().contains("evil"), "{foreign}: {links}");
    }

    // A verification link with an allowed redirect_to: Continue once
    // verified; the address bar loses the token, keeps redirect_to.
    let link = app.mailed_link(&email, "/verify-email").await;
    browser
        .open(&format!("{link}&redirect_to={}", encoded(TARGET)))
        .await;
    browser
        .wait_for_url("redirect_to without the token", |url| {
            !url.contains("token=") && url.contains("redirect_to=")
        })
        .await;
    browser.click("#verify").await;
    browser.wait_for_text("#outcome", "is verified").await;
    let continue_to = browser
        .element("#continue")
        .await
        .attr("href")
        .await
        .expect("href");
    assert_eq!(continue_to.as_deref(), Some(TARGET), "after verification");

    // The same for a reset link.
    let asked = harness::post_json(
        &app.http,
        harness::api_url(&app.base, "/password-reset"),
        &json!({"email": email}),
    )
    .await;
    assert_eq!(asked.status(), reqwest::StatusCode::ACCEPTED);
    let link = app.mailed_link(&email, "/reset-password").await;
    browser
        .open(&format!("{link}&redirect_to={}", encoded(TARGET)))
        .await;
    browser.type_into("#password", NEW_PASSWORD).await;
    browser.type_into("#confirm", NEW_PASSWORD).await;
    browser.click("#submit").await;
    browser
        .wait_for_text("#outcome", "password has been changed")
        .await;
    let continue_to = browser
        .element("#continue")
        .await
        .attr("href")
        .await
        .expect("href");
    assert_eq!(continue_to.as_deref(), Some(TARGET), "after the reset");
    stage.finish().await;
}
