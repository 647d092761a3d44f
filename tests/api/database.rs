//! The PostgreSQL pool: connections the server closed while they sat idle in
//! the pool are found and replaced before a request uses them, so a request
//! does not fail for them.

use std::time::Duration;

use sqlx::Connection as _;

use crate::helpers::{Backend, PASSWORD, spawn_app, unique_email};

/// The backends serving the app's database (not `conn`'s own).
async fn app_backends(conn: &mut sqlx::PgConnection) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn connections_the_server_closed_while_idle_are_replaced_before_use() {
    let app = spawn_app!(Backend::Real);
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;

    // The server ends every connection of the app's pool, as a restart of
    // PostgreSQL or an idle-session timeout would.
    let mut admin = sqlx::PgConnection::connect(app.postgres_url())
        .await
        .unwrap();
    let before = app_backends(&mut admin).await;
    assert!(!before.is_empty(), "the app holds pooled connections");
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(ended.iter().all(|ok| *ok), "{ended:?}");

    // Idle for longer than a connection may go unchecked.
    tokio::time::sleep(account::testing::PING_IF_IDLE_FOR + Duration::from_millis(300)).await;

    // Each of these reads the user from PostgreSQL: every one succeeds.
    let refreshed = app.refresh(&tokens.refresh_token).await;
    assert_eq!(
        refreshed.status(),
        200,
        "refresh after the connections ended"
    );
    let signin = app.signin_response(&email, PASSWORD, "").await;
    assert_eq!(signin.status(), 200, "sign-in after the connections ended");

    let after = app_backends(&mut admin).await;
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|pid| !before.contains(pid)),
        "new connections replaced the ended ones: before {before:?}, after {after:?}"
    );
    let _ = admin.close().await;
}
