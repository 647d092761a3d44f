//! The service's pages in a real browser: headless Chromium driven over
//! WebDriver (`chromedriver`, with fantoccini) against the real `account`
//! binary, on the embedded stores and on PostgreSQL + Redis, mailing through
//! the test SMTP sink so a scenario can open the mailed links.
//!
//! - `browser.rs`: chromedriver on a free port, the Chromium session, the
//!   browser log (every scenario asserts no console error and no Content
//!   Security Policy violation), screenshots for the docs
//!   (`UPDATE_SCREENSHOTS=1` only).
//! - `app.rs`: the `account` process, its stores and its mail.
//! - `smoke.rs`: the harness itself (`/healthz` in Chromium).
//! - `headers.rs`: the pages' security headers, over plain HTTP.
//! - `verify_email.rs`, `reset_password.rs`: the mailed links' pages.
//! - `signup_page.rs`, `account_sessions.rs`, `session_cookie.rs`,
//!   `redirect_to.rs`, `account_changes.rs`: sign-up, sign-in and the
//!   account page on the browser session (`people.rs`: their shared steps;
//!   `inspect.rs`: cookies, counts and whole-page screenshots).
//! - `two_step.rs`: adding an authenticator app on `/account`, and the
//!   second step of `/signin` (a code, then a recovery code).
//! - `step_up.rs`: `/account` when the API asks for a step-up: the password
//!   again for an old sign-in, a stale tab's ID token renewed.
//!
//! One scenario at a time ([`Stage`] holds a global turn): one Chromium and
//! one service on a small machine. Without `/usr/bin/chromium` and
//! `/usr/bin/chromedriver` the browser scenarios print `SKIPPED …` and pass,
//! unless `REQUIRE_BROWSER=1`; without PostgreSQL and Redis their
//! `postgres_redis` variants do, unless `REQUIRE_REAL_STORES=1`.

mod account_changes;
mod account_sessions;
mod app;
mod browser;
#[path = "../common/harness.rs"]
mod harness;
mod headers;
mod inspect;
mod passkeys;
mod people;
#[path = "../common/process.rs"]
mod process;
mod redirect_to;
mod reset_password;
mod session_cookie;
mod signup_page;
mod smoke;
#[allow(dead_code)]
#[path = "../common/smtp_sink.rs"]
mod smtp_sink;
mod step_up;
#[allow(dead_code)]
#[path = "../common/stores.rs"]
mod stores;
mod two_step;
mod verify_email;

use tokio::sync::{Mutex, MutexGuard};

use app::{App, Backend};
use browser::Browser;

/// The turn of one scenario: the others wait for it.
async fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::const_new(());
    TURN.lock().await
}

/// What a browser scenario runs against: the service and a Chromium
/// session, during its turn.
pub struct Stage {
    pub browser: Browser,
    pub app: App,
    // Dropped last: the next scenario starts once this one's browser and
    // service are gone.
    _turn: MutexGuard<'static, ()>,
}

impl Stage {
    /// Chromium and the service on `backend` for `test`; `None` (after a
    /// `SKIPPED` line) without a browser or without the real stores.
    pub async fn start(backend: Backend, test: &str) -> Option<Self> {
        Self::start_with(backend, test, &[]).await
    }

    /// [`Stage::start`] with `env` added to the service's environment.
    pub async fn start_with(
        backend: Backend,
        test: &str,
        env: &[(&'static str, String)],
    ) -> Option<Self> {
        let test = test.strip_prefix("browser::").unwrap_or(test);
        if !browser::browser_or_skip(test) {
            return None;
        }
        let turn = turn().await;
        let app = App::start_with(backend, test, env).await?;
        let browser = Browser::start().await;
        Some(Self {
            browser,
            app,
            _turn: turn,
        })
    }

    /// Asserts a clean console and closes the browser.
    pub async fn finish(self) {
        let Self {
            browser,
            app,
            _turn,
        } = self;
        browser.finish().await;
        drop(app);
    }
}

/// `stage!(backend, test)` (or `stage!(backend, test, &env)`, `env` added to
/// the service's environment): the [`Stage`] of the enclosing scenario, or a
/// return from it when it is skipped.
macro_rules! stage {
    ($backend:expr, $test:expr $(,)?) => {
        match $crate::Stage::start($backend, $test).await {
            ::std::option::Option::Some(stage) => stage,
            ::std::option::Option::None => return,
        }
    };
    ($backend:expr, $test:expr, $env:expr $(,)?) => {
        match $crate::Stage::start_with($backend, $test, $env).await {
            ::std::option::Option::Some(stage) => stage,
            ::std::option::Option::None => return,
        }
    };
}
pub(crate) use stage;

/// One `#[tokio::test]` per backend for each scenario
/// `async fn name(backend: Backend, test: &'static str)`.
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(
                        $crate::app::Backend::Embedded,
                        concat!(module_path!(), "::", stringify!($scenario)),
                    )
                    .await
                }
            )*
        }
        mod postgres_redis {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(
                        $crate::app::Backend::Real,
                        concat!(module_path!(), "::", stringify!($scenario)),
                    )
                    .await
                }
            )*
        }
    };
}
pub(crate) use on_every_backend;
