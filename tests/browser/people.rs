//! What the scenarios of `/signin`, `/signup` and `/account` share: signing
//! in as a person does, and reading the account page.

use crate::app::App;
use crate::browser::Browser;

/// The `User-Agent` of the sessions the scenarios start through the API.
pub const PROGRAM: &str = "backup-tool/2.1 (scenario)";

/// Signs `email` in on `/signin` (without `redirect_to`): the page goes on
/// to `/account`, which shows the address once it has its session.
pub async fn sign_in_on_page(browser: &mut Browser, app: &App, email: &str, password: &str) {
    browser.open(&app.url("/signin")).await;
    browser.type_into("#email", email).await;
    browser.type_into("#password", password).await;
    browser.screenshot("signin").await;
    browser.click("#submit").await;
    on_account_page(browser, app, email).await;
}

/// Waits for `/account` to show `email`'s profile.
pub async fn on_account_page(browser: &mut Browser, app: &App, email: &str) {
    let account = app.url("/account");
    browser
        .wait_for_url("/account", |url| url.starts_with(&account))
        .await;
    browser.wait_for_text("#profile-email", email).await;
}

/// The selector of the session `id`'s entry on `/account`, followed by `rest`.
pub fn session(id: &str, rest: &str) -> String {
    format!(r#"#sessions li[data-session="{id}"]{rest}"#)
}
