//! Sign-up, sign-in and profile rules.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::PasswordHasher;
use crate::error::{AppError, AppResult};
use crate::model::{Email, Password, User, UserDetails, UserRepository, UserService};

/// The one answer for an unknown email and for a wrong password.
pub const BAD_CREDENTIALS: &str = "invalid email and password combination";
/// The answer to a failed re-authentication.
pub const WRONG_CURRENT_PASSWORD: &str = "the current password is wrong";

/// [`UserService`] over a [`UserRepository`].
pub struct UserServiceImpl {
    repo: Arc<dyn UserRepository>,
    hasher: PasswordHasher,
}

impl UserServiceImpl {
    pub fn new(repo: Arc<dyn UserRepository>, hasher: PasswordHasher) -> Self {
        Self { repo, hasher }
    }
}

#[async_trait]
impl UserService for UserServiceImpl {
    async fn get(&self, uid: Uuid) -> AppResult<User> {
        self.repo.find_by_id(uid).await
    }

    async fn profile(&self, uid: Uuid) -> AppResult<User> {
        self.repo.find_by_id(uid).await
    }

    async fn hash_password(&self, password: &Password, source: &str) -> AppResult<String> {
        self.hasher.hash(password, source).await
    }

    async fn signup(
        &self,
        email: Email,
        password_hash: String,
        must_verify: bool,
    ) -> AppResult<User> {
        let user = User {
            uid: Uuid::new_v4(),
            email: email.into_inner(),
            password_hash,
            name: String::new(),
            image_url: String::new(),
            website: String::new(),
            email_verified: false,
            must_verify,
            pending_email: None,
            has_factor: false,
        };
        // The database's unique index decides a duplicate, also under a race.
        self.repo.create(&user).await?;
        Ok(user)
    }

    async fn signin(&self, email: Email, password: Password, source: &str) -> AppResult<User> {
        // A place in the hashing queue before the lookup: a flood the queue
        // refuses never reaches the database.
        let turn = self.hasher.admit(source)?;
        let user = self.repo.find_by_email(email.as_str()).await?;
        let matches = turn
            .verify(&password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await?;
        match user {
            Some(user) if matches => Ok(user),
            _ => Err(AppError::unauthorized(BAD_CREDENTIALS)),
        }
    }

    /// The caller is signed in: its hashing takes turns as its user's.
    async fn check_password(&self, user: &User, password: Password) -> AppResult<()> {
        if self
            .hasher
            .verify(
                &password,
                Some(user.password_hash.as_str()),
                &user.uid.to_string(),
            )
            .await?
        {
            Ok(())
        } else {
            Err(AppError::Forbidden(WRONG_CURRENT_PASSWORD.into()))
        }
    }

    async fn set_password(&self, uid: Uuid, password: Password) -> AppResult<String> {
        let password_hash = self.hasher.hash(&password, &uid.to_string()).await?;
        self.repo.update_password_hash(uid, &password_hash).await?;
        Ok(password_hash)
    }

    async fn update_details(&self, uid: Uuid, details: UserDetails) -> AppResult<User> {
        self.repo.update_details(uid, &details).await
    }

    async fn update_details_pending(&self, uid: Uuid, details: UserDetails) -> AppResult<User> {
        self.repo.update_details_pending(uid, &details).await
    }

    async fn confirm_pending_email(&self, uid: Uuid, email: &str) -> AppResult<bool> {
        self.repo.confirm_pending_email(uid, email).await
    }

    async fn find_by_email(&self, email: &Email) -> AppResult<Option<User>> {
        self.repo.find_by_email(email.as_str()).await
    }

    async fn mark_email_verified(&self, uid: Uuid, email: &str) -> AppResult<bool> {
        self.repo.mark_email_verified(uid, email).await
    }

    async fn reset_password(&self, uid: Uuid, email: &str, password_hash: &str) -> AppResult<bool> {
        self.repo.reset_password(uid, email, password_hash).await
    }

    async fn delete(&self, uid: Uuid) -> AppResult<()> {
        self.repo.delete(uid).await
    }

    async fn ready(&self) -> AppResult<()> {
        self.repo.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Website;
    use crate::model::interfaces::MockUserRepository;
    use mockall::predicate::eq;

    fn service(repo: MockUserRepository) -> UserServiceImpl {
        UserServiceImpl::new(Arc::new(repo), PasswordHasher::new(1, 8))
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    fn password(s: &str) -> Password {
        Password::parse(s).unwrap()
    }

    async fn stored_user(pw: &str) -> User {
        User {
            uid: Uuid::new_v4(),
            email: "ada@example.com".into(),
            password_hash: PasswordHasher::new(1, 8)
                .hash(&password(pw), "test")
                .await
                .unwrap(),
            name: "Ada".into(),
            image_url: String::new(),
            website: String::new(),
            email_verified: false,
            must_verify: false,
            pending_email: None,
            has_factor: false,
        }
    }

    #[tokio::test]
    async fn signup_stores_a_lowercased_email_and_an_argon2id_hash() {
        let mut repo = MockUserRepository::new();
        repo.expect_create()
            .withf(|u| {
                u.email == "ada@example.com"
                    && u.password_hash.starts_with("$argon2id$")
                    && !u.password_hash.contains("correct horse")
                    && u.name.is_empty()
                    && !u.email_verified
            })
            .times(1)
            .returning(|_| Ok(()));
        let svc = service(repo);
        let hash = svc
            .hash_password(&password("correct horse"), "203.0.113.9")
            .await
            .unwrap();
        let user = svc
            .signup(email("Ada@Example.com"), hash, false)
            .await
            .unwrap();
        assert_eq!(user.email, "ada@example.com");
        assert_eq!(user.uid.get_version_num(), 4);
    }

    #[tokio::test]
    async fn signup_with_a_taken_email_is_a_conflict() {
        let mut repo = MockUserRepository::new();
        repo.expect_create()
            .returning(|_| Err(AppError::Conflict("email already registered".into())));
        let err = service(repo)
            .signup(email("ada@example.com"), "$argon2id$stored".into(), false)
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::Conflict(_)));
    }

    #[tokio::test]
    async fn signin_with_the_right_password_returns_the_user() {
        let user = stored_user("correct horse").await;
        let mut repo = MockUserRepository::new();
        let found = user.clone();
        repo.expect_find_by_email()
            .with(eq("ada@example.com"))
            .returning(move |_| Ok(Some(found.clone())));
        let got = service(repo)
            .signin(email("ADA@example.com"), password("correct horse"), "ip")
            .await
            .unwrap();
        assert_eq!(got, user);
    }

    #[tokio::test]
    async fn unknown_email_and_wrong_password_fail_the_same_way() {
        let user = stored_user("correct horse").await;
        let mut repo = MockUserRepository::new();
        repo.expect_find_by_email()
            .with(eq("ada@example.com"))
            .returning(move |_| Ok(Some(user.clone())));
        repo.expect_find_by_email()
            .with(eq("nobody@example.com"))
            .returning(|_| Ok(None));
        let svc = service(repo);
        let wrong = svc
            .signin(email("ada@example.com"), password("wrong horse"), "ip")
            .await
            .unwrap_err();
        let unknown = svc
            .signin(email("nobody@example.com"), password("correct horse"), "ip")
            .await
            .unwrap_err();
        assert_eq!(wrong.to_string(), BAD_CREDENTIALS);
        assert_eq!(unknown.to_string(), BAD_CREDENTIALS);
        assert!(matches!(wrong, AppError::Authorization { .. }));
        assert!(matches!(unknown, AppError::Authorization { .. }));
    }

    #[tokio::test]
    async fn update_details_passes_validated_details_to_the_store() {
        let uid = Uuid::new_v4();
        let details = UserDetails {
            email: email("new@example.com"),
            name: "Ada L.".into(),
            website: Website::parse("https://ada.example").unwrap(),
        };
        let mut repo = MockUserRepository::new();
        let expected = details.clone();
        repo.expect_update_details()
            .withf(move |u, d| *u == uid && *d == expected)
            .times(1)
            .returning(|uid, d| {
                Ok(User {
                    uid,
                    email: d.email.as_str().into(),
                    password_hash: String::new(),
                    name: d.name.clone(),
                    image_url: String::new(),
                    website: d.website.as_str().into(),
                    email_verified: false,
                    must_verify: false,
                    pending_email: None,
                    has_factor: false,
                })
            });
        let user = service(repo).update_details(uid, details).await.unwrap();
        assert_eq!(user.email, "new@example.com");
        assert_eq!(user.website, "https://ada.example");
    }

    #[tokio::test]
    async fn a_re_authentication_with_a_wrong_password_is_forbidden_not_unauthorized() {
        let user = stored_user("correct horse").await;
        let svc = service(MockUserRepository::new());
        svc.check_password(&user, password("correct horse"))
            .await
            .unwrap();
        let err = svc
            .check_password(&user, password("wrong horse"))
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_new_password_is_stored_as_a_fresh_argon2id_hash() {
        let uid = Uuid::new_v4();
        let mut repo = MockUserRepository::new();
        repo.expect_update_password_hash()
            .withf(move |u, hash| {
                *u == uid && hash.starts_with("$argon2id$") && !hash.contains("new horse")
            })
            .times(1)
            .returning(|_, _| Ok(()));
        service(repo)
            .set_password(uid, password("new horse battery"))
            .await
            .unwrap();
    }
}
