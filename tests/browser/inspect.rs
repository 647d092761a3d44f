//! What the scenarios of the account pages read from Chromium besides a
//! page's text: script results, how many elements match, the cookies with
//! their attributes (through the DevTools protocol, which chromedriver
//! relays), and whole-page screenshots for the docs.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::{Browser, PAGE_WAIT};

impl Browser {
    /// Runs `script` (a function body; `return` gives the result) in the
    /// page; its result.
    pub async fn execute(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("cannot run {script:?}: {e}"))
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("cannot look for {css}: {e}"))
            .len()
    }

    /// Waits until exactly `n` elements match `css`.
    pub async fn wait_for_count(&mut self, css: &str, n: usize) {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            let found = self.count(css).await;
            if found == n {
                return;
            }
            if Instant::now() >= deadline {
                let log = self.read_log().await.to_vec();
                panic!(
                    "{found} elements match {css}, not {n}, after {PAGE_WAIT:?} (at {}); \
                     browser log: {log:#?}",
                    self.current_url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The cookies the browser would send to `url`, every attribute
    /// included (`httpOnly`, `sameSite`, `path`, …), as the DevTools
    /// protocol's `Network.getCookies` lists them: unlike WebDriver's
    /// cookies, not only those of the page shown.
    pub async fn cookies_for(&self, url: &str) -> Vec<Value> {
        let response = self
            .http
            .post(format!(
                "{}/session/{}/goog/cdp/execute",
                self.driver_url, self.session_id
            ))
            .json(&json!({"cmd": "Network.getCookies", "params": {"urls": [url]}}))
            .send()
            .await
            .expect("chromedriver answers goog/cdp/execute");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON cdp answer");
        assert!(
            status.is_success(),
            "Network.getCookies answered {status}: {body}"
        );
        body["value"]["cookies"]
            .as_array()
            .unwrap_or_else(|| panic!("Network.getCookies: no cookies list in {body}"))
            .clone()
    }

    /// [`Browser::screenshot`] of the whole page, however long: the window
    /// grows to the page's height for it, then shrinks back.
    pub async fn screenshot_whole_page(&self, name: &str) {
        if !std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1" || v == "true") {
            return;
        }
        let height = self
            .execute("window.scrollTo(0, 0); return document.documentElement.scrollHeight;")
            .await
            .as_u64()
            .expect("the page's height");
        let (width, before) = self.client.get_window_size().await.expect("window size");
        // The window's frame (none when headless) plus the page.
        let height = u32::try_from(height).unwrap_or(4000).min(4000) + 200;
        let width = u32::try_from(width).unwrap_or(1024);
        self.client
            .set_window_size(width, height.max(u32::try_from(before).unwrap_or(768)))
            .await
            .expect("a taller window");
        self.screenshot(name).await;
        self.client
            .set_window_size(width, u32::try_from(before).unwrap_or(768))
            .await
            .expect("the window as it was");
    }
}
