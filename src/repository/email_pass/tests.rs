use super::*;
use crate::test_logs::logged_during;

async fn sqlite_repo() -> SqliteUserRepository {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let repo = SqliteUserRepository::new(pool);
    repo.migrate().await.unwrap();
    repo
}

/// Inserts a row as an older version of the service (or a hand) wrote it.
async fn insert(repo: &SqliteUserRepository, email: &str, created_at: &str) -> Uuid {
    let uid = Uuid::new_v4();
    sqlx::query("INSERT INTO users (uid, email, password, created_at) VALUES ($1, $2, 'x', $3)")
        .bind(uid)
        .bind(email)
        .bind(created_at)
        .execute(&repo.pool)
        .await
        .unwrap();
    uid
}

async fn email_of(repo: &SqliteUserRepository, uid: Uuid) -> String {
    sqlx::query_scalar("SELECT email FROM users WHERE uid = $1")
        .bind(uid)
        .fetch_one(&repo.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn rows_are_normalised_and_the_oldest_of_look_alikes_keeps_the_address() {
    let repo = sqlite_repo().await;
    let real = insert(&repo, "jos\u{e9}@example.com", "2020-01-01 00:00:00").await;
    let look_alike = insert(&repo, "jose\u{301}@example.com", "2021-01-01 00:00:00").await;
    let lone = insert(
        &repo,
        "\u{ff5a}o\u{eb}@b\u{fc}cher.example",
        "2022-01-01 00:00:00",
    )
    .await;
    let upper = insert(&repo, "UPPER@EXAMPLE.COM", "2022-01-01 00:00:00").await;
    // Neither normal; the newer inserted first: the older wins all the same.
    let newer = insert(&repo, "ma\u{ff58}@example.com", "2023-01-01 00:00:00").await;
    let older = insert(&repo, "\u{ff4d}ax@example.com", "2019-01-01 00:00:00").await;
    let invisible = insert(&repo, "ada\u{200b}@example.com", "2022-01-01 00:00:00").await;
    // An older look-alike of a normal row: the normal row is never changed.
    let held = insert(&repo, "bob@example.com", "2024-01-01 00:00:00").await;
    let unlucky = insert(&repo, "\u{ff42}ob@example.com", "2018-01-01 00:00:00").await;
    let plain = insert(&repo, "plain@example.com", "2022-01-01 00:00:00").await;

    let (pass, logs) = logged_during(repo.normalise_emails()).await;
    let pass = pass.unwrap();

    assert_eq!(email_of(&repo, real).await, "jos\u{e9}@example.com");
    assert_eq!(email_of(&repo, look_alike).await, "jose\u{301}@example.com");
    assert_eq!(
        email_of(&repo, lone).await,
        "zo\u{eb}@xn--bcher-kva.example"
    );
    assert_eq!(email_of(&repo, upper).await, "upper@example.com");
    assert_eq!(email_of(&repo, older).await, "max@example.com");
    assert_eq!(email_of(&repo, newer).await, "ma\u{ff58}@example.com");
    assert_eq!(email_of(&repo, invisible).await, "ada\u{200b}@example.com");
    assert_eq!(email_of(&repo, held).await, "bob@example.com");
    assert_eq!(email_of(&repo, unlucky).await, "\u{ff42}ob@example.com");
    assert_eq!(email_of(&repo, plain).await, "plain@example.com");
    // `plain` and `held` are printable lower-case ASCII: not even read.
    assert_eq!(
        pass,
        EmailPass {
            examined: 8,
            normalised: 3,
            left: 4
        }
    );

    // The log names the uids, never an address.
    for line in [
        format!("uid={look_alike} kept_by={real}"),
        format!("uid={newer} kept_by={older}"),
        format!("uid={unlucky} held_by={held}"),
        format!("uid={invisible}"),
    ] {
        assert!(logs.contains(&line), "{line} in {logs}");
    }
    // No address, nor a part of one. (Not bare local parts such as "ada":
    // the hex of a random uid may hold them.)
    assert!(!logs.contains('@'), "an address in {logs}");
    for part in [
        "jos",
        "max",
        "ma\u{ff58}",
        "ada",
        "bob",
        "zo\u{eb}",
        "b\u{fc}cher",
    ] {
        for written in [
            format!("{part}@"),
            format!("{part}\u{200b}@"),
            format!("={part}"),
        ] {
            assert!(!logs.contains(&written), "{written:?} in {logs}");
        }
    }
    assert!(!logs.contains("b\u{fc}cher"), "{logs}");
    assert!(logs.contains("WARN"), "{logs}");

    // A second pass changes nothing.
    // (`upper` and `older` are printable lower-case ASCII now: not read.)
    let again = repo.normalise_emails().await.unwrap();
    assert_eq!(
        again,
        EmailPass {
            examined: 6,
            normalised: 0,
            left: 4
        }
    );
    assert_eq!(email_of(&repo, look_alike).await, "jose\u{301}@example.com");
}

#[tokio::test]
async fn a_store_of_normal_ascii_addresses_is_not_read() {
    let repo = sqlite_repo().await;
    for i in 0..50 {
        insert(
            &repo,
            &format!("user-{i}@example.com"),
            "2022-01-01 00:00:00",
        )
        .await;
    }
    let (pass, logs) = logged_during(repo.normalise_emails()).await;
    assert_eq!(pass.unwrap(), EmailPass::default());
    assert!(!logs.contains("INFO") && !logs.contains("WARN"), "{logs}");
}

#[tokio::test]
async fn the_scan_goes_through_every_batch() {
    let repo = sqlite_repo().await;
    let count = 2 * BATCH as usize + 7;
    let mut uids = Vec::new();
    for i in 0..count {
        uids.push(
            insert(
                &repo,
                &format!("User-{i}@Example.com"),
                "2022-01-01 00:00:00",
            )
            .await,
        );
    }
    let pass = repo.normalise_emails().await.unwrap();
    assert_eq!(pass.normalised, count as u64);
    for (i, uid) in uids.into_iter().enumerate() {
        assert_eq!(email_of(&repo, uid).await, format!("user-{i}@example.com"));
    }
}

#[tokio::test]
async fn the_sqlite_filter_selects_what_may_change_and_uses_the_partial_index() {
    let repo = sqlite_repo().await;
    for (email, may_change) in [
        ("ada@example.com", false),
        ("o'brien+x_y{z}~!@example.com", false),
        ("Ada@example.com", true),
        ("ada@EXAMPLE.com", true),
        ("jos\u{e9}@example.com", true),
        ("\u{ff41}da@example.com", true),
        ("ada\u{200b}@example.com", true),
        ("a da@example.com", true),
        ("a\tda@example.com", true),
        (" ada@example.com", true),
    ] {
        let selected: bool = sqlx::query_scalar("SELECT $1 GLOB '*[^!-~]*' OR $1 GLOB '*[A-Z]*'")
            .bind(email)
            .fetch_one(&repo.pool)
            .await
            .unwrap();
        assert_eq!(selected, may_change, "{email:?}");
    }
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT uid, email, julianday(created_at) FROM users \
         WHERE (email GLOB '*[^!-~]*' OR email GLOB '*[A-Z]*') AND uid > $2 \
         ORDER BY uid LIMIT $1",
    )
    .bind(BATCH)
    .bind(Uuid::nil())
    .fetch_all(&repo.pool)
    .await
    .unwrap();
    assert!(
        plan.iter()
            .any(|row| row.3.contains("users_email_candidates")),
        "{plan:?}"
    );
}

/// What the filter leaves out must be its own normal form (or have none).
#[test]
fn printable_lower_case_ascii_is_its_own_normal_form() {
    let printable: Vec<char> = ('!'..='~').filter(|c| !c.is_ascii_uppercase()).collect();
    for (i, c) in printable.iter().enumerate() {
        let next = printable[(i * 7 + 3) % printable.len()];
        for candidate in [
            format!("a{c}b@example.com"),
            format!("{c}{next}@example.com"),
            format!("ab@ex{c}ample.com"),
            format!("ab@xn--bcher-kva.ex{c}ample"),
            format!("\"a{c}\"@example.com"),
        ] {
            if let Ok(normal) = Email::parse(&candidate) {
                assert_eq!(normal.as_str(), candidate);
            }
        }
    }
}
