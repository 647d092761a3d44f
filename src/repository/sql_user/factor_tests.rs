//! Second factors and recovery codes on both databases (SQLite in memory and
//! a PostgreSQL database of the test's own, as `token_tests`).

use uuid::Uuid;

use super::token_tests::{pg_repo, sqlite_repo, user};
use crate::error::AppError;
use crate::model::{Factor, FactorKind, FactorRepository, User, UserRepository};

const NOW: u64 = 1_800_000_000;

trait Repo: UserRepository + FactorRepository {}
impl<T: UserRepository + FactorRepository> Repo for T {}

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
    a_pending_factor_is_confirmed_once_and_only_while_fresh,
    a_step_is_used_once_and_only_after_the_last,
    factors_are_renamed_and_deleted_only_by_their_user,
    stale_pending_factors_are_swept_and_confirmed_ones_kept,
    a_recovery_code_works_once_and_a_new_set_replaces_the_old,
    factors_and_codes_go_with_their_user,
    every_factor_and_code_of_one_user_is_removed_at_once,
);

async fn stored_user(repo: &impl Repo) -> User {
    let user = user(&format!("f-{}@example.com", Uuid::new_v4().simple()));
    repo.create(&user).await.unwrap();
    user
}

fn pending(uid: Uuid, created_at: u64) -> Factor {
    Factor {
        id: Uuid::new_v4(),
        uid,
        kind: FactorKind::Totp,
        name: None,
        secret: vec![1, 2, 3, 0, 255],
        created_at,
        confirmed_at: None,
        last_used_at: None,
        last_step: None,
        credential: None,
        credential_id: None,
    }
}

async fn a_pending_factor_is_confirmed_once_and_only_while_fresh(repo: &impl Repo) {
    let user = stored_user(repo).await;
    let factor = pending(user.uid, NOW);
    repo.create_factor(&factor).await.unwrap();
    assert_eq!(
        repo.factors(user.uid).await.unwrap(),
        std::slice::from_ref(&factor)
    );
    assert!(!repo.has_factor(user.uid).await.unwrap(), "pending only");

    // Created before the cut-off: too old to confirm.
    assert!(
        !repo
            .confirm_factor(user.uid, factor.id, NOW + 1, 7, NOW + 5)
            .await
            .unwrap()
    );
    // Another user's factor id.
    assert!(
        !repo
            .confirm_factor(Uuid::new_v4(), factor.id, NOW, 7, NOW + 5)
            .await
            .unwrap()
    );
    assert!(
        repo.confirm_factor(user.uid, factor.id, NOW, 7, NOW + 5)
            .await
            .unwrap()
    );
    assert!(
        !repo
            .confirm_factor(user.uid, factor.id, NOW, 8, NOW + 6)
            .await
            .unwrap(),
        "confirmed once"
    );
    assert!(repo.has_factor(user.uid).await.unwrap());
    let stored = &repo.factors(user.uid).await.unwrap()[0];
    assert_eq!(stored.confirmed_at, Some(NOW + 5));
    assert_eq!(stored.last_used_at, Some(NOW + 5));
    assert_eq!(stored.last_step, Some(7));
    assert_eq!(stored.secret, factor.secret);
}

async fn confirmed(repo: &impl Repo, user: &User, step: u64) -> Factor {
    let factor = pending(user.uid, NOW);
    repo.create_factor(&factor).await.unwrap();
    assert!(
        repo.confirm_factor(user.uid, factor.id, NOW, step, NOW)
            .await
            .unwrap()
    );
    factor
}

async fn a_step_is_used_once_and_only_after_the_last(repo: &impl Repo) {
    let user = stored_user(repo).await;
    let factor = confirmed(repo, &user, 100).await;
    for step in [99, 100] {
        assert!(
            !repo.use_step(user.uid, factor.id, step, NOW).await.unwrap(),
            "{step}"
        );
    }
    assert!(
        repo.use_step(user.uid, factor.id, 101, NOW + 30)
            .await
            .unwrap()
    );
    assert!(
        !repo
            .use_step(user.uid, factor.id, 101, NOW + 31)
            .await
            .unwrap()
    );
    // Of concurrent uses of one step, one wins.
    let uses = futures::future::join_all(
        (0..8).map(|_| repo.use_step(user.uid, factor.id, 102, NOW + 60)),
    )
    .await;
    let won = uses
        .into_iter()
        .filter(|used| *used.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
    let stored = &repo.factors(user.uid).await.unwrap()[0];
    assert_eq!(stored.last_step, Some(102));
    assert_eq!(stored.last_used_at, Some(NOW + 60));
    // A pending factor is never used.
    let other = pending(user.uid, NOW);
    repo.create_factor(&other).await.unwrap();
    assert!(!repo.use_step(user.uid, other.id, 500, NOW).await.unwrap());
}

async fn factors_are_renamed_and_deleted_only_by_their_user(repo: &impl Repo) {
    let user = stored_user(repo).await;
    let stranger = stored_user(repo).await;
    let factor = confirmed(repo, &user, 1).await;
    assert!(
        !repo
            .rename_factor(stranger.uid, factor.id, Some("mine".into()))
            .await
            .unwrap()
    );
    assert!(
        repo.rename_factor(user.uid, factor.id, Some("phone".into()))
            .await
            .unwrap()
    );
    assert_eq!(
        repo.factors(user.uid).await.unwrap()[0].name.as_deref(),
        Some("phone")
    );
    assert!(repo.rename_factor(user.uid, factor.id, None).await.unwrap());
    assert_eq!(repo.factors(user.uid).await.unwrap()[0].name, None);
    assert!(!repo.delete_factor(stranger.uid, factor.id).await.unwrap());
    assert!(repo.delete_factor(user.uid, factor.id).await.unwrap());
    assert!(!repo.delete_factor(user.uid, factor.id).await.unwrap());
    assert!(repo.factors(user.uid).await.unwrap().is_empty());
    assert!(!repo.has_factor(user.uid).await.unwrap());
}

async fn stale_pending_factors_are_swept_and_confirmed_ones_kept(repo: &impl Repo) {
    let user = stored_user(repo).await;
    let kept = confirmed(repo, &user, 1).await;
    let stale = pending(user.uid, NOW - 700);
    let fresh = pending(user.uid, NOW - 10);
    repo.create_factor(&stale).await.unwrap();
    repo.create_factor(&fresh).await.unwrap();
    repo.sweep_pending(user.uid, NOW - 600).await.unwrap();
    let mut left: Vec<Uuid> = repo
        .factors(user.uid)
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    left.sort();
    let mut expected = vec![kept.id, fresh.id];
    expected.sort();
    assert_eq!(left, expected);
}

async fn a_recovery_code_works_once_and_a_new_set_replaces_the_old(repo: &impl Repo) {
    let user = stored_user(repo).await;
    let first: Vec<String> = (0..10).map(|i| format!("{i:064x}")).collect();
    repo.replace_recovery_codes(user.uid, &first, NOW)
        .await
        .unwrap();
    assert_eq!(repo.recovery_codes_left(user.uid).await.unwrap(), 10);
    assert!(
        repo.redeem_recovery_code(user.uid, &first[3])
            .await
            .unwrap()
    );
    assert!(
        !repo
            .redeem_recovery_code(user.uid, &first[3])
            .await
            .unwrap()
    );
    let stranger = stored_user(repo).await;
    assert!(
        !repo
            .redeem_recovery_code(stranger.uid, &first[4])
            .await
            .unwrap()
    );
    assert_eq!(repo.recovery_codes_left(user.uid).await.unwrap(), 9);

    let second: Vec<String> = (100..110).map(|i| format!("{i:064x}")).collect();
    repo.replace_recovery_codes(user.uid, &second, NOW + 1)
        .await
        .unwrap();
    assert_eq!(repo.recovery_codes_left(user.uid).await.unwrap(), 10);
    assert!(
        !repo
            .redeem_recovery_code(user.uid, &first[4])
            .await
            .unwrap(),
        "the old set stopped working"
    );
    assert!(
        repo.redeem_recovery_code(user.uid, &second[0])
            .await
            .unwrap()
    );
    let redeemed =
        futures::future::join_all((0..6).map(|_| repo.redeem_recovery_code(user.uid, &second[1])))
            .await;
    assert_eq!(
        redeemed
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count(),
        1
    );
}

async fn factors_and_codes_go_with_their_user(repo: &impl Repo) {
    let user = stored_user(repo).await;
    confirmed(repo, &user, 1).await;
    repo.replace_recovery_codes(user.uid, &["a".repeat(64)], NOW)
        .await
        .unwrap();
    repo.delete(user.uid).await.unwrap();
    assert!(repo.factors(user.uid).await.unwrap().is_empty());
    assert_eq!(repo.recovery_codes_left(user.uid).await.unwrap(), 0);
    let err = repo
        .create_factor(&pending(Uuid::new_v4(), NOW))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::NotFound(_)), "{err:?}");
}

async fn every_factor_and_code_of_one_user_is_removed_at_once(repo: &impl Repo) {
    let user = stored_user(repo).await;
    let other = stored_user(repo).await;
    for owner in [&user, &other] {
        confirmed(repo, owner, 1).await;
        confirmed(repo, owner, 2).await;
        repo.create_factor(&pending(owner.uid, NOW)).await.unwrap();
        let digests: Vec<String> = (0..3).map(|i| format!("{i}").repeat(64)).collect();
        repo.replace_recovery_codes(owner.uid, &digests, NOW)
            .await
            .unwrap();
    }
    assert_eq!(repo.remove_all_factors(user.uid).await.unwrap(), (2, 3));
    assert!(repo.factors(user.uid).await.unwrap().is_empty());
    assert!(!repo.has_factor(user.uid).await.unwrap());
    assert_eq!(repo.recovery_codes_left(user.uid).await.unwrap(), 0);
    assert_eq!(
        repo.remove_all_factors(user.uid).await.unwrap(),
        (0, 0),
        "again: nothing left"
    );
    // Another user's are untouched.
    assert_eq!(repo.factors(other.uid).await.unwrap().len(), 3);
    assert_eq!(repo.recovery_codes_left(other.uid).await.unwrap(), 3);
}
