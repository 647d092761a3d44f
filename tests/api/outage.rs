//! A Redis outage: the service starts without it, answers 503 for what needs it,
//! and recovers by itself. Uses a private redis-server on a free port, so the
//! shared one is never touched.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    Backend, PASSWORD, assert_error, function_name, notice, spawn_app, unique_email,
};
use crate::smtp_sink::free_port;

struct PrivateRedis {
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Self { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server_available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn wait_for_status(app: &crate::helpers::TestApp, path: &str, status: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        if response.status() == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn starts_while_redis_is_down_answers_503_and_recovers_after_restarts() {
    if !redis_server_available() {
        if crate::helpers::require_real_stores() {
            panic!("redis-server is not installed and REQUIRE_REAL_STORES=1");
        }
        notice(&format!(
            "SKIPPED {}: redis-server is not installed",
            function_name!()
        ));
        return;
    }
    let port = free_port();
    let redis_url = format!("redis://127.0.0.1:{port}");
    let app = spawn_app!(Backend::Real, &[("REDIS_URL", &redis_url)]);

    // Redis is down: the process is alive, not ready, and token work is a 503.
    assert!(wait_for_status(&app, "/healthz", 200).await);
    let body = assert_error(
        app.client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap(),
        503,
        "SERVICE_UNAVAILABLE",
    )
    .await;
    assert!(
        !body.to_string().contains("Connection refused"),
        "no internals: {body}"
    );
    let email = unique_email();
    assert_error(
        app.signup_response(&email, PASSWORD).await,
        503,
        "SERVICE_UNAVAILABLE",
    )
    .await;

    // Redis comes up: the service reconnects by itself.
    let redis = PrivateRedis::start(port).expect("start private redis-server");
    assert!(
        wait_for_status(&app, "/readyz", 200).await,
        "ready after Redis started"
    );
    // The failed sign-up left no account behind: the same sign-up succeeds now.
    let response = app
        .post_json("/signin", &json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), 401, "no half-created account");
    let response = app.signup_response(&email, PASSWORD).await;
    assert_eq!(response.status(), 201, "the retry is not a 409");
    let tokens = crate::helpers::Tokens::from_body(&response.json().await.unwrap());

    // Redis restarts (its data is gone with it): 503 while down, then back to normal.
    drop(redis);
    assert!(
        wait_for_status(&app, "/readyz", 503).await,
        "not ready while Redis is down"
    );
    assert_error(
        app.refresh(&tokens.refresh_token).await,
        503,
        "SERVICE_UNAVAILABLE",
    )
    .await;
    let _redis = PrivateRedis::start(port).expect("restart private redis-server");
    assert!(
        wait_for_status(&app, "/readyz", 200).await,
        "ready after Redis restarted"
    );
    let response = app
        .post_json("/signin", &json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), 200);
    let tokens = crate::helpers::Tokens::from_body(&response.json().await.unwrap());
    assert_eq!(app.refresh(&tokens.refresh_token).await.status(), 200);
}
