//! The single-use tokens of the account flows and the verified flag, on both
//! databases: each scenario runs on SQLite in memory and on a PostgreSQL
//! database of its own (`TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, used only to create and
//! drop it). An unreachable PostgreSQL prints `SKIPPED …` and passes, unless
//! `REQUIRE_REAL_STORES=1`.

use std::io::Write as _;
use std::time::Duration;

use sqlx::Connection as _;

use super::*;
use crate::model::{Email, Website};

const NOW: u64 = 1_800_000_000;

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn require_real_stores() -> bool {
    std::env::var("REQUIRE_REAL_STORES").is_ok_and(|v| v == "1" || v == "true")
}

/// `postgres://host/admin?x` → `postgres://host/<name>?x`
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host = base[scheme_end..]
        .find('/')
        .map_or(base, |i| &base[..scheme_end + i]);
    match query {
        Some(q) => format!("{host}/{name}?{q}"),
        None => format!("{host}/{name}"),
    }
}

/// A PostgreSQL database of the test's own, dropped when this is dropped
/// (also when the test fails).
pub(super) struct PgDatabase {
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join();
    }
}

/// A migrated repository on a fresh PostgreSQL database, or `None` (skipped,
/// visibly) when PostgreSQL is unreachable.
pub(super) async fn pg_repo(test: &str) -> Option<(PgUserRepository, PgDatabase)> {
    let admin = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::PgConnection::connect(&admin_url()),
    )
    .await;
    let mut admin = match admin {
        Ok(Ok(conn)) => conn,
        _ if require_real_stores() => panic!(
            "PostgreSQL at TEST_DATABASE_URL={} is unreachable and REQUIRE_REAL_STORES=1",
            admin_url()
        ),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED sql_user::token_tests::{test} on PostgreSQL: TEST_DATABASE_URL={} is unreachable",
                admin_url()
            );
            return None;
        }
    };
    let name = format!("account_unit_{}", Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let db = PgDatabase { name };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&with_database(&admin_url(), &db.name))
        .await
        .expect("connect to the test database");
    let repo = PgUserRepository::new(pool);
    repo.migrate().await.expect("migrations");
    Some((repo, db))
}

pub(super) async fn sqlite_repo() -> SqliteUserRepository {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let repo = SqliteUserRepository::new(pool);
    repo.migrate().await.unwrap();
    repo
}

/// Writes `#[tokio::test]`s `sqlite` and `postgres` running `scenario` on
/// each database.
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test]
                async fn sqlite() {
                    super::$scenario(&super::sqlite_repo().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some((repo, _db)) = super::pg_repo(stringify!($scenario)).await {
                        super::$scenario(&repo).await;
                    }
                }
            }
        )*
    };
}

on_both_databases!(
    a_stored_token_is_found_until_it_is_taken_and_taken_once,
    a_token_of_another_purpose_is_neither_found_nor_taken,
    an_expired_token_is_not_found_and_taking_it_deletes_it,
    a_newer_token_replaces_the_older_of_its_purpose_only,
    tokens_go_with_their_user_and_none_is_stored_for_a_missing_one,
    of_concurrent_takes_of_one_token_exactly_one_gets_it,
    an_address_is_verified_only_while_it_is_the_users,
    a_reset_sets_the_hash_and_verifies_only_while_the_address_is_the_users,
    a_password_change_deletes_the_users_reset_tokens_only,
    an_email_change_clears_the_verified_flag_and_an_unchanged_email_keeps_it,
    existing_rows_are_not_verified,
);

trait Repo: UserRepository + AccountTokenRepository + LegacyRows {}
impl<T: UserRepository + AccountTokenRepository + LegacyRows> Repo for T {}

/// Rows as the service wrote them before the verified flag.
#[async_trait]
trait LegacyRows {
    async fn insert_without_the_flag(&self, uid: Uuid, email: &str);
}

macro_rules! legacy_rows {
    ($repo:ty) => {
        #[async_trait]
        impl LegacyRows for $repo {
            async fn insert_without_the_flag(&self, uid: Uuid, email: &str) {
                sqlx::query("INSERT INTO users (uid, email, password) VALUES ($1, $2, 'x')")
                    .bind(uid)
                    .bind(email)
                    .execute(&self.pool)
                    .await
                    .unwrap();
            }
        }
    };
}
legacy_rows!(SqliteUserRepository);
legacy_rows!(PgUserRepository);

pub(super) fn user(email: &str) -> User {
    User {
        uid: Uuid::new_v4(),
        email: email.into(),
        password_hash: "$argon2id$old".into(),
        name: String::new(),
        image_url: String::new(),
        website: String::new(),
        email_verified: false,
        must_verify: false,
        pending_email: None,
        has_factor: false,
    }
}

async fn stored_user(repo: &impl Repo, email: &str) -> User {
    let user = user(email);
    repo.create(&user).await.unwrap();
    user
}

fn token(user: &User, hash: &[u8], purpose: TokenPurpose, expires_at: u64) -> AccountToken {
    AccountToken {
        token_hash: hash.to_vec(),
        uid: user.uid,
        purpose,
        email: user.email.clone(),
        expires_at,
        created_at: NOW,
    }
}

fn holder(user: &User) -> Option<TokenHolder> {
    Some(TokenHolder {
        uid: user.uid,
        email: user.email.clone(),
    })
}

async fn a_stored_token_is_found_until_it_is_taken_and_taken_once(repo: &impl Repo) {
    let ada = stored_user(repo, "ada@example.com").await;
    let hash = [1u8; 32];
    repo.store_token(&token(&ada, &hash, TokenPurpose::Reset, NOW + 60))
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            repo.find_token(&hash, TokenPurpose::Reset, NOW)
                .await
                .unwrap(),
            holder(&ada),
            "finding does not use it up"
        );
    }
    assert_eq!(
        repo.take_token(&hash, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        holder(&ada)
    );
    assert_eq!(
        repo.take_token(&hash, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        None,
        "a token works once"
    );
    assert_eq!(
        repo.find_token(&hash, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.take_token(&[9u8; 32], TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        None,
        "an unknown hash"
    );
}

async fn a_token_of_another_purpose_is_neither_found_nor_taken(repo: &impl Repo) {
    let ada = stored_user(repo, "ada@example.com").await;
    let hash = [2u8; 32];
    repo.store_token(&token(&ada, &hash, TokenPurpose::Verify, NOW + 60))
        .await
        .unwrap();
    assert_eq!(
        repo.find_token(&hash, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.take_token(&hash, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.take_token(&hash, TokenPurpose::Verify, NOW)
            .await
            .unwrap(),
        holder(&ada),
        "a verification token is still there for its purpose"
    );
}

async fn an_expired_token_is_not_found_and_taking_it_deletes_it(repo: &impl Repo) {
    let ada = stored_user(repo, "ada@example.com").await;
    let hash = [3u8; 32];
    repo.store_token(&token(&ada, &hash, TokenPurpose::Verify, NOW + 60))
        .await
        .unwrap();
    assert_eq!(
        repo.find_token(&hash, TokenPurpose::Verify, NOW + 59)
            .await
            .unwrap(),
        holder(&ada),
        "live until its expiry"
    );
    assert_eq!(
        repo.find_token(&hash, TokenPurpose::Verify, NOW + 60)
            .await
            .unwrap(),
        None,
        "not at its expiry"
    );
    assert_eq!(
        repo.take_token(&hash, TokenPurpose::Verify, NOW + 61)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.take_token(&hash, TokenPurpose::Verify, NOW)
            .await
            .unwrap(),
        None,
        "the expired token was deleted when presented"
    );
}

async fn a_newer_token_replaces_the_older_of_its_purpose_only(repo: &impl Repo) {
    let ada = stored_user(repo, "ada@example.com").await;
    let bob = stored_user(repo, "bob@example.com").await;
    let (old_reset, new_reset, verify, bobs) = ([4u8; 32], [5u8; 32], [6u8; 32], [7u8; 32]);
    repo.store_token(&token(&ada, &old_reset, TokenPurpose::Reset, NOW + 60))
        .await
        .unwrap();
    repo.store_token(&token(&ada, &verify, TokenPurpose::Verify, NOW + 60))
        .await
        .unwrap();
    repo.store_token(&token(&bob, &bobs, TokenPurpose::Reset, NOW + 60))
        .await
        .unwrap();
    repo.store_token(&token(&ada, &new_reset, TokenPurpose::Reset, NOW + 120))
        .await
        .unwrap();
    assert_eq!(
        repo.find_token(&old_reset, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        None,
        "the older reset token is gone"
    );
    assert_eq!(
        repo.find_token(&new_reset, TokenPurpose::Reset, NOW + 90)
            .await
            .unwrap(),
        holder(&ada),
        "the newer one works, with its own expiry"
    );
    assert_eq!(
        repo.find_token(&verify, TokenPurpose::Verify, NOW)
            .await
            .unwrap(),
        holder(&ada),
        "the other purpose is untouched"
    );
    assert_eq!(
        repo.find_token(&bobs, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        holder(&bob),
        "another user's is untouched"
    );
}

async fn tokens_go_with_their_user_and_none_is_stored_for_a_missing_one(repo: &impl Repo) {
    let ada = stored_user(repo, "ada@example.com").await;
    let hash = [8u8; 32];
    repo.store_token(&token(&ada, &hash, TokenPurpose::Reset, NOW + 60))
        .await
        .unwrap();
    repo.delete(ada.uid).await.unwrap();
    assert_eq!(
        repo.find_token(&hash, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        None
    );
    let err = repo
        .store_token(&token(&ada, &hash, TokenPurpose::Reset, NOW + 60))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::NotFound(_)), "{err:?}");
}

async fn of_concurrent_takes_of_one_token_exactly_one_gets_it(repo: &impl Repo) {
    let ada = stored_user(repo, "ada@example.com").await;
    let hash = [10u8; 32];
    repo.store_token(&token(&ada, &hash, TokenPurpose::Reset, NOW + 60))
        .await
        .unwrap();
    let takes = (0..8).map(|_| repo.take_token(&hash, TokenPurpose::Reset, NOW));
    let got: Vec<_> = futures::future::join_all(takes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got.iter().filter(|g| g.is_some()).count(), 1, "{got:?}");
}

async fn verified(repo: &impl Repo, uid: Uuid) -> bool {
    repo.find_by_id(uid).await.unwrap().email_verified
}

async fn an_address_is_verified_only_while_it_is_the_users(repo: &impl Repo) {
    let ada = stored_user(repo, "ada@example.com").await;
    assert!(!verified(repo, ada.uid).await, "a new user is not verified");
    assert!(
        !repo
            .mark_email_verified(ada.uid, "old@example.com")
            .await
            .unwrap()
    );
    assert!(!verified(repo, ada.uid).await);
    assert!(
        !repo
            .mark_email_verified(Uuid::new_v4(), "ada@example.com")
            .await
            .unwrap()
    );
    assert!(
        repo.mark_email_verified(ada.uid, "ada@example.com")
            .await
            .unwrap()
    );
    assert!(verified(repo, ada.uid).await);
    assert!(
        repo.mark_email_verified(ada.uid, "ada@example.com")
            .await
            .unwrap(),
        "verifying again is no error"
    );
}

async fn a_reset_sets_the_hash_and_verifies_only_while_the_address_is_the_users(repo: &impl Repo) {
    let ada = stored_user(repo, "ada@example.com").await;
    assert!(
        !repo
            .reset_password(ada.uid, "old@example.com", "$argon2id$new")
            .await
            .unwrap()
    );
    let unchanged = repo.find_by_id(ada.uid).await.unwrap();
    assert_eq!(
        (unchanged.password_hash.as_str(), unchanged.email_verified),
        ("$argon2id$old", false)
    );
    assert!(
        repo.reset_password(ada.uid, "ada@example.com", "$argon2id$new")
            .await
            .unwrap()
    );
    let reset = repo.find_by_id(ada.uid).await.unwrap();
    assert_eq!(
        (reset.password_hash.as_str(), reset.email_verified),
        ("$argon2id$new", true)
    );
}

async fn a_password_change_deletes_the_users_reset_tokens_only(repo: &impl Repo) {
    let ada = stored_user(repo, "ada@example.com").await;
    let bob = stored_user(repo, "bob@example.com").await;
    let (reset, verify, bobs) = ([11u8; 32], [12u8; 32], [13u8; 32]);
    repo.store_token(&token(&ada, &reset, TokenPurpose::Reset, NOW + 60))
        .await
        .unwrap();
    repo.store_token(&token(&ada, &verify, TokenPurpose::Verify, NOW + 60))
        .await
        .unwrap();
    repo.store_token(&token(&bob, &bobs, TokenPurpose::Reset, NOW + 60))
        .await
        .unwrap();
    repo.update_password_hash(ada.uid, "$argon2id$new")
        .await
        .unwrap();
    assert_eq!(
        repo.find_by_id(ada.uid).await.unwrap().password_hash,
        "$argon2id$new"
    );
    assert_eq!(
        repo.take_token(&reset, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        None,
        "the reset link mailed before the change is gone"
    );
    assert_eq!(
        repo.find_token(&verify, TokenPurpose::Verify, NOW)
            .await
            .unwrap(),
        holder(&ada),
        "a verification link still proves its address"
    );
    assert_eq!(
        repo.find_token(&bobs, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        holder(&bob),
        "another user's is untouched"
    );
    // A missing user: NotFound, and nothing else changes.
    let err = repo
        .update_password_hash(Uuid::new_v4(), "$argon2id$x")
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::NotFound(_)), "{err:?}");
    assert_eq!(
        repo.find_token(&bobs, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        holder(&bob)
    );
    // A reset asked for after the change works.
    let later = [14u8; 32];
    repo.store_token(&token(&ada, &later, TokenPurpose::Reset, NOW + 60))
        .await
        .unwrap();
    assert_eq!(
        repo.take_token(&later, TokenPurpose::Reset, NOW)
            .await
            .unwrap(),
        holder(&ada)
    );
}

fn details(email: &str, name: &str) -> UserDetails {
    UserDetails {
        email: Email::parse(email).unwrap(),
        name: name.into(),
        website: Website::default(),
    }
}

async fn an_email_change_clears_the_verified_flag_and_an_unchanged_email_keeps_it(
    repo: &impl Repo,
) {
    let ada = stored_user(repo, "ada@example.com").await;
    repo.mark_email_verified(ada.uid, "ada@example.com")
        .await
        .unwrap();
    let same = repo
        .update_details(ada.uid, &details("ada@example.com", "Ada"))
        .await
        .unwrap();
    assert!(same.email_verified, "the same address stays verified");
    let moved = repo
        .update_details(ada.uid, &details("ada@lovelace.example", "Ada"))
        .await
        .unwrap();
    assert!(!moved.email_verified, "a new address is not verified");
    assert!(!verified(repo, ada.uid).await);
    let back = repo
        .update_details(ada.uid, &details("ada@example.com", "Ada"))
        .await
        .unwrap();
    assert!(!back.email_verified, "nor is the old one again");
}

async fn existing_rows_are_not_verified(repo: &impl Repo) {
    let uid = Uuid::new_v4();
    repo.insert_without_the_flag(uid, "ada@example.com").await;
    assert!(!verified(repo, uid).await);
    let ada = stored_user(repo, "bob@example.com").await;
    assert_eq!(
        repo.find_by_email("bob@example.com").await.unwrap(),
        Some(ada),
        "a created user round-trips with its flag"
    );
}
