//! The cache against a mock of the user service below it: what is read
//! through, for how long, and which writes forget it.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use mockall::predicate::eq;
use uuid::Uuid;

use super::*;
use crate::error::AppError;
use crate::model::Website;
use crate::model::interfaces::MockUserService;

const UID: Uuid = Uuid::from_u128(0x1234);
const LONG: Duration = Duration::from_secs(60);

fn user(name: &str) -> User {
    User {
        uid: UID,
        email: "ada@example.com".into(),
        password_hash: "$argon2id$…".into(),
        name: name.into(),
        image_url: String::new(),
        website: String::new(),
        email_verified: false,
        must_verify: false,
        pending_email: None,
        has_factor: false,
    }
}

/// `user(name)` as the cache shows it: without the hash.
fn shown(name: &str) -> User {
    User {
        password_hash: String::new(),
        ..user(name)
    }
}

fn details() -> UserDetails {
    UserDetails {
        email: Email::parse("ada@example.com").unwrap(),
        name: "Ada".into(),
        website: Website::parse("").unwrap(),
    }
}

/// The store's profile answers "old" until a write, "new" after it.
fn profile_changing_on_write(users: &mut MockUserService) -> Arc<Mutex<&'static str>> {
    let name = Arc::new(Mutex::new("old"));
    let stored = name.clone();
    users
        .expect_profile()
        .with(eq(UID))
        .times(2)
        .returning(move |_| Ok(user(&stored.lock().unwrap())));
    name
}

#[tokio::test]
async fn a_second_profile_read_is_served_from_memory_without_the_hash() {
    let mut users = MockUserService::new();
    users
        .expect_profile()
        .with(eq(UID))
        .times(1)
        .returning(|_| Ok(user("Ada")));
    let cache = ProfileCache::with_limits(Arc::new(users), LONG, 100);
    assert_eq!(cache.profile(UID).await.unwrap(), shown("Ada"));
    assert_eq!(cache.profile(UID).await.unwrap(), shown("Ada"));
}

#[tokio::test]
async fn a_missing_user_is_not_cached() {
    let mut users = MockUserService::new();
    users
        .expect_profile()
        .times(2)
        .returning(|_| Err(AppError::NotFound("no such user".into())));
    let cache = ProfileCache::with_limits(Arc::new(users), LONG, 100);
    for _ in 0..2 {
        assert!(matches!(
            cache.profile(UID).await,
            Err(AppError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn a_store_error_is_passed_on_and_not_cached() {
    let mut users = MockUserService::new();
    let mut calls = 0;
    users.expect_profile().times(2).returning(move |_| {
        calls += 1;
        if calls == 1 {
            Err(AppError::unavailable("user store down"))
        } else {
            Ok(user("Ada"))
        }
    });
    let cache = ProfileCache::with_limits(Arc::new(users), LONG, 100);
    assert!(matches!(
        cache.profile(UID).await,
        Err(AppError::ServiceUnavailable { .. })
    ));
    assert_eq!(cache.profile(UID).await.unwrap(), shown("Ada"));
}

#[tokio::test]
async fn a_profile_is_read_again_once_its_time_to_live_is_over() {
    let mut users = MockUserService::new();
    let name = profile_changing_on_write(&mut users);
    let ttl = Duration::from_millis(500);
    let cache = ProfileCache::with_limits(Arc::new(users), ttl, 100);
    let read = Instant::now();
    assert_eq!(cache.profile(UID).await.unwrap().name, "old");
    // Changed behind this replica's back (another replica's write).
    *name.lock().unwrap() = "new";
    let second = cache.profile(UID).await.unwrap().name;
    // The copy is younger than `read.elapsed()`: only a reading taken within
    // the TTL says anything (a stalled machine may take longer to get here).
    if read.elapsed() < ttl {
        assert_eq!(second, "old", "within the TTL");
    }
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(
        cache.profile(UID).await.unwrap().name,
        "new",
        "after the TTL"
    );
}

#[test]
fn the_time_to_live_keeps_the_promised_freshness() {
    assert!(PROFILE_TTL <= Duration::from_secs(1));
}

#[tokio::test]
async fn decisions_always_read_the_store() {
    let mut users = MockUserService::new();
    users
        .expect_profile()
        .times(1)
        .returning(|_| Ok(user("Ada")));
    users.expect_get().times(2).returning(|_| Ok(user("Ada")));
    let cache = ProfileCache::with_limits(Arc::new(users), LONG, 100);
    cache.profile(UID).await.unwrap();
    for _ in 0..2 {
        let user = cache.get(UID).await.unwrap();
        assert_eq!(
            user.password_hash, "$argon2id$…",
            "the stored row, hash and all"
        );
    }
}

/// A cached "old" profile, then `$write` through the cache (the mock's
/// expectation `$expect` answering `$answer`): the next profile read is the
/// store's "new" one.
macro_rules! write_forgets {
    ($name:ident, $expect:ident($($arg:ident),*) => $answer:expr, |$cache:ident| $write:expr) => {
        #[tokio::test]
        async fn $name() {
            let mut users = MockUserService::new();
            let name = profile_changing_on_write(&mut users);
            let changed = name.clone();
            users.$expect().times(1).returning(move |$($arg),*| {
                *changed.lock().unwrap() = "new";
                $answer
            });
            let $cache = ProfileCache::with_limits(Arc::new(users), LONG, 100);
            assert_eq!($cache.profile(UID).await.unwrap().name, "old");
            let _ = $write;
            assert_eq!($cache.profile(UID).await.unwrap().name, "new");
        }
    };
}

write_forgets!(
    update_details_forgets_the_profile,
    expect_update_details(_uid, _details) => Ok(user("new")),
    |cache| cache.update_details(UID, details()).await
);
write_forgets!(
    a_failed_update_details_forgets_the_profile_too,
    expect_update_details(_uid, _details) => Err(AppError::unavailable("timed out after the commit")),
    |cache| cache.update_details(UID, details()).await
);
write_forgets!(
    set_password_forgets_the_profile,
    expect_set_password(_uid, _password) => Ok("$argon2id$new".into()),
    |cache| cache.set_password(UID, Password::parse("a new password!").unwrap()).await
);
write_forgets!(
    mark_email_verified_forgets_the_profile,
    expect_mark_email_verified(_uid, _email) => Ok(true),
    |cache| cache.mark_email_verified(UID, "ada@example.com").await
);
write_forgets!(
    reset_password_forgets_the_profile,
    expect_reset_password(_uid, _email, _hash) => Ok(true),
    |cache| cache.reset_password(UID, "ada@example.com", "$argon2id$new").await
);
write_forgets!(
    delete_forgets_the_profile,
    expect_delete(_uid) => Ok(()),
    |cache| cache.delete(UID).await
);
write_forgets!(
    signup_forgets_its_uid,
    expect_signup(_email, _hash, _must_verify) => Ok(user("new")),
    |cache| cache.signup(Email::parse("ada@example.com").unwrap(), "$argon2id$x".into(), true).await
);
write_forgets!(
    update_details_pending_forgets_the_profile,
    expect_update_details_pending(_uid, _details) => Ok(user("new")),
    |cache| cache.update_details_pending(UID, details()).await
);
write_forgets!(
    confirm_pending_email_forgets_the_profile,
    expect_confirm_pending_email(_uid, _email) => Ok(true),
    |cache| cache.confirm_pending_email(UID, "ada@lovelace.example").await
);

#[tokio::test]
async fn a_deleted_user_is_not_found_at_once() {
    let mut users = MockUserService::new();
    let mut calls = 0;
    users.expect_profile().times(2).returning(move |_| {
        calls += 1;
        if calls == 1 {
            Ok(user("Ada"))
        } else {
            Err(AppError::NotFound("no such user".into()))
        }
    });
    users.expect_delete().times(1).returning(|_| Ok(()));
    let cache = ProfileCache::with_limits(Arc::new(users), LONG, 100);
    cache.profile(UID).await.unwrap();
    cache.delete(UID).await.unwrap();
    assert!(matches!(
        cache.profile(UID).await,
        Err(AppError::NotFound(_))
    ));
}

/// A read whose fetch saw the row before a write that was stored and
/// forgotten while the fetch was under way must not leave that row cached.
#[tokio::test]
async fn a_read_racing_a_write_does_not_cache_what_it_read_before_it() {
    let cache_of_mock: Arc<OnceLock<Weak<ProfileCache>>> = Arc::new(OnceLock::new());
    let mut users = MockUserService::new();
    let mut calls = 0;
    let reach = cache_of_mock.clone();
    users.expect_profile().times(2).returning(move |_| {
        calls += 1;
        if calls == 1 {
            // The row is read ("old"), then, before the answer arrives, a
            // write on this replica is stored and forgets the profile.
            let cache = reach.get().unwrap().upgrade().unwrap();
            cache.forget(UID);
            Ok(user("old"))
        } else {
            Ok(user("new"))
        }
    });
    let cache = Arc::new(ProfileCache::with_limits(Arc::new(users), LONG, 100));
    cache_of_mock.set(Arc::downgrade(&cache)).unwrap();
    assert_eq!(
        cache.profile(UID).await.unwrap().name,
        "old",
        "read before the write"
    );
    assert_eq!(
        cache.profile(UID).await.unwrap().name,
        "new",
        "not the racing read's"
    );
}

#[tokio::test]
async fn the_cache_holds_at_most_its_capacity() {
    let mut users = MockUserService::new();
    users
        .expect_profile()
        .returning(|uid| Ok(User { uid, ..user("Ada") }));
    let cache = ProfileCache::with_limits(Arc::new(users), LONG, 10);
    for n in 0..200 {
        cache.profile(Uuid::from_u128(n)).await.unwrap();
    }
    assert!(cache.len() <= 10, "{} profiles held", cache.len());
}
