//! The sessions on `/account`, in Chromium: the browser's and one a program
//! started through the API are listed (device, address, "this device");
//! naming one shows the name; ending the program's makes its refresh token
//! answer 401; "sign out all other devices" leaves only the browser's.

use reqwest::StatusCode;
use serde_json::json;

use crate::app::{Backend, unique_email};
use crate::harness::{self, PASSWORD};
use crate::people::{PROGRAM, on_account_page, session, sign_in_on_page};
use crate::{on_every_backend, stage};

on_every_backend!(sessions_are_listed_named_and_ended);

async fn sessions_are_listed_named_and_ended(backend: Backend, test: &'static str) {
    let mut stage = stage!(backend, test);
    let app = &stage.app;
    let email = unique_email();
    let signed_up = app.sign_up(&email, PASSWORD).await;
    // The sign-up's own session ends: the scenario's two are the only ones.
    let signed_out = harness::send(
        app.http
            .post(harness::api_url(&app.base, "/signout?scope=local"))
            .bearer_auth(&signed_up.id_token),
    )
    .await;
    assert_eq!(signed_out.status(), StatusCode::OK, "local sign-out");

    let browser = &mut stage.browser;
    sign_in_on_page(browser, app, &email, PASSWORD).await;
    let program = app.sign_in_as(&email, PASSWORD, PROGRAM).await;
    let sid = program.sid();
    let ours = app
        .sessions(&program.id_token)
        .await
        .into_iter()
        .map(|s| s["id"].as_str().expect("an id").to_owned())
        .find(|id| *id != sid)
        .expect("the browser's session");

    browser.open(&app.url("/account")).await;
    on_account_page(browser, app, &email).await;
    browser.wait_for_count("#sessions li.session", 2).await;
    let title = browser.text(&session(&ours, " h3")).await;
    assert!(
        title.contains("Chrome on Linux") && title.contains("This device"),
        "{title:?}"
    );
    assert!(
        !browser.is_displayed(&session(&ours, " .end-session")).await,
        "no \"End\" for this device"
    );
    assert_eq!(
        browser.text(&session(&sid, " .session-device")).await,
        "backup-tool"
    );
    assert!(
        !browser
            .text(&session(&sid, " h3"))
            .await
            .contains("This device"),
        "the program's is not this device"
    );
    let address = browser.text(&session(&sid, " .session-ip")).await;
    assert!(address.contains("127.0.0.1"), "{address:?}");

    // Naming the program's session.
    browser.click(&session(&sid, " .name-session")).await;
    browser
        .type_into(&session(&sid, " .name-form input"), "build server")
        .await;
    browser.click(&session(&sid, " .name-save")).await;
    browser
        .wait_for_text(&session(&sid, " .session-name"), "build server")
        .await;
    let named = app.sessions(&program.id_token).await;
    let named = named
        .iter()
        .find(|s| s["id"] == json!(sid))
        .expect("listed");
    assert_eq!(named["name"], json!("build server"));
    browser.screenshot_whole_page("account").await;

    // Ending it: gone from the list, its refresh token refused.
    browser.click(&session(&sid, " .end-session")).await;
    browser.wait_for_count(&session(&sid, ""), 0).await;
    browser.wait_for_count("#sessions li.session", 1).await;
    let refused = app.refresh(&program.refresh_token).await;
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "the ended session"
    );

    // Two more programs; "sign out all other devices".
    let others = [
        app.sign_in_as(&email, PASSWORD, PROGRAM).await,
        app.sign_in_as(&email, PASSWORD, "curl/8.5.0").await,
    ];
    browser.open(&app.url("/account")).await;
    on_account_page(browser, app, &email).await;
    browser.wait_for_count("#sessions li.session", 3).await;
    browser.click("#end-others").await;
    browser.wait_for_count("#sessions li.session", 1).await;
    assert_eq!(
        browser.count(&session(&ours, "")).await,
        1,
        "this device stays"
    );
    browser
        .wait_for_text("#sessions-outcome", "other device")
        .await;
    for other in &others {
        let refused = app.refresh(&other.refresh_token).await;
        assert_eq!(
            refused.status(),
            StatusCode::UNAUTHORIZED,
            "an ended session"
        );
    }
    stage.finish().await;
}
