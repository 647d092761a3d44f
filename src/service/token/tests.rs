//! The token service against a mocked store: what the tokens say, what the
//! store is asked, and how its decisions become rotations.

use base64::Engine as _;
use mockall::predicate::eq;

use super::*;
use crate::model::interfaces::MockTokenRepository;
use crate::test_keys::test_key_set;

fn config() -> TokenConfig {
    TokenConfig {
        issuer: "test-issuer".into(),
        audience: "test-audience".into(),
        id_token_ttl: Duration::from_secs(900),
        refresh_token_ttl: Duration::from_secs(259_200),
        refresh_reuse_grace: Duration::from_secs(10),
        max_sessions: 10,
        session_max_age: Duration::from_secs(2_592_000),
        mfa_token_ttl: Duration::from_secs(300),
    }
}

fn service(repo: MockTokenRepository) -> TokenServiceImpl {
    service_with(repo, config())
}

fn service_with(repo: MockTokenRepository, config: TokenConfig) -> TokenServiceImpl {
    let keys = test_key_set();
    TokenServiceImpl::new(
        Arc::new(repo),
        Arc::new(SharedKeyRing::new(keys.ring)),
        &keys.refresh_secret,
        config,
    )
    .unwrap()
}

fn user() -> User {
    User {
        uid: Uuid::new_v4(),
        email: "ada@example.com".into(),
        password_hash: "$argon2id$…".into(),
        name: "Ada".into(),
        image_url: String::new(),
        website: String::new(),
        email_verified: false,
        must_verify: false,
        pending_email: None,
        has_factor: false,
    }
}

fn client() -> ClientInfo {
    ClientInfo::new("curl/8", "10.0.0.1")
}

fn decode_part(token: &str, index: usize) -> serde_json::Value {
    let part = token.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A pair issued by `svc` (its store accepting the session), with what the
/// store was asked.
async fn issued(user: &User) -> (TokenServiceImpl, TokenPair, SessionStart) {
    let started = Arc::new(std::sync::Mutex::new(None));
    let mut repo = MockTokenRepository::new();
    repo.expect_start_session().times(1).returning({
        let started = Arc::clone(&started);
        move |_, start| {
            *started.lock().unwrap() = Some(start.clone());
            Ok(true)
        }
    });
    let svc = service(repo);
    let pair = svc.issue(user, &client()).await.unwrap();
    let start = started.lock().unwrap().clone().unwrap();
    (svc, pair, start)
}

#[tokio::test]
async fn an_issued_pair_starts_a_session_both_tokens_name() {
    let user = user();
    let (svc, pair, start) = issued(&user).await;

    let header = decode_part(&pair.id_token, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], svc.keys.current().signer().kid());
    let id = svc.validate_id_token(&pair.id_token).unwrap();
    assert_eq!(id.sub, user.uid);
    assert_eq!(
        (id.email.as_str(), id.name.as_str()),
        ("ada@example.com", "Ada")
    );
    assert!(!id.email_verified);
    assert_eq!(decode_part(&pair.id_token, 1)["email_verified"], false);
    assert_eq!(id.iss, "test-issuer");
    assert_eq!(id.aud, Audience::One("test-audience".into()));
    assert_eq!(id.exp - id.iat, 900);
    assert_eq!(id.sid, Some(start.sid.to_string()));

    assert_eq!(decode_part(&pair.refresh_token, 0)["alg"], "HS256");
    let refresh = svc.validate_refresh_token(&pair.refresh_token).unwrap();
    assert_eq!(refresh.sub, user.uid);
    assert_eq!(refresh.jti, start.jti);
    assert_eq!(refresh.sid, Some(start.sid));
    assert_eq!(refresh.auth_time, Some(refresh.iat));
    assert_eq!(refresh.exp - refresh.iat, 259_200);

    assert_eq!(start.exp, refresh.exp);
    assert_eq!(start.now, refresh.iat);
    assert_eq!(start.ends_at, refresh.iat + 2_592_000);
    assert_eq!(start.client, client());
    assert_eq!(start.max_sessions, 10);
}

#[tokio::test]
async fn the_id_token_says_whether_the_users_email_is_verified() {
    let verified = User {
        email_verified: true,
        ..user()
    };
    let (svc, pair, _) = issued(&verified).await;
    assert!(
        svc.validate_id_token(&pair.id_token)
            .unwrap()
            .email_verified
    );
    assert_eq!(decode_part(&pair.id_token, 1)["email_verified"], true);
}

#[tokio::test]
async fn a_refresh_token_never_outlives_its_session() {
    let mut repo = MockTokenRepository::new();
    repo.expect_start_session().returning(|_, _| Ok(true));
    let svc = service_with(
        repo,
        TokenConfig {
            session_max_age: Duration::from_secs(3600),
            ..config()
        },
    );
    let pair = svc.issue(&user(), &client()).await.unwrap();
    let refresh = svc.validate_refresh_token(&pair.refresh_token).unwrap();
    assert_eq!(refresh.exp - refresh.iat, 3600, "capped by SESSION_MAX_AGE");
}

/// A rotation of a freshly issued refresh token whose store step answers
/// `outcome(step, presented token)`.
async fn rotation_with(
    outcome: impl FnOnce(&RefreshStep, &str) -> RefreshOutcome + Send + 'static,
) -> (Rotation, RefreshStep, TokenPair) {
    let user = user();
    let (svc, pair, start) = issued(&user).await;
    let previous = svc.validate_refresh_token(&pair.refresh_token).unwrap();
    let asked = Arc::new(std::sync::Mutex::new(None));
    let mut repo = MockTokenRepository::new();
    repo.expect_session_assurance().returning(|_, _| Ok(None));
    repo.expect_refresh()
        .with(eq(user.uid), mockall::predicate::always())
        .times(1)
        .return_once({
            let asked = Arc::clone(&asked);
            let presented = pair.refresh_token.clone();
            move |_, step| {
                *asked.lock().unwrap() = Some(step.clone());
                Ok(outcome(step, &presented))
            }
        });
    let svc = TokenServiceImpl {
        repo: Arc::new(repo),
        ..svc
    };
    let rotation = svc
        .rotate(&user, &previous, &pair.refresh_token, &client())
        .await
        .unwrap();
    let step = asked.lock().unwrap().clone().unwrap();
    assert_eq!(step.sid, start.sid);
    assert_eq!(step.jti, start.jti);
    assert_eq!(step.grace_secs, 10);
    (rotation, step, pair)
}

#[tokio::test]
async fn a_rotated_step_answers_the_successor_it_sealed_for_the_grace_window() {
    let (rotation, step, presented) = rotation_with(|_, _| RefreshOutcome::Rotated).await;
    let Rotation::Rotated(successor) = rotation else {
        panic!("{rotation:?}");
    };
    assert_ne!(successor, presented);
    assert_eq!(
        grace::open(&presented.refresh_token, &step.sealed_successor),
        Some(successor),
        "the sealed successor is the pair handed out, for the presented token only"
    );
}

#[tokio::test]
async fn a_grace_replay_answers_the_pair_the_first_rotation_sealed() {
    let first = TokenPair {
        id_token: "first.id.token".into(),
        refresh_token: "first.refresh.token".into(),
    };
    // The store hands back what the first rotation of the same token stored.
    let (rotation, _, _) = rotation_with({
        let first = first.clone();
        move |_, presented| RefreshOutcome::GraceReplay(grace::seal(presented, &first).unwrap())
    })
    .await;
    assert_eq!(rotation, Rotation::Replayed(first));
}

#[tokio::test]
async fn a_grace_replay_sealed_with_another_token_hands_out_nothing() {
    let (rotation, _, _) = rotation_with(|_, _| {
        let other = TokenPair {
            id_token: "x".into(),
            refresh_token: "y".into(),
        };
        RefreshOutcome::GraceReplay(grace::seal("another token", &other).unwrap())
    })
    .await;
    assert_eq!(rotation, Rotation::Ended);
}

#[tokio::test]
async fn reuse_unknown_and_expired_sessions_become_reused_or_ended() {
    let (rotation, _, _) = rotation_with(|_, _| RefreshOutcome::Reused).await;
    assert_eq!(rotation, Rotation::Reused);
    let (rotation, _, _) = rotation_with(|_, _| RefreshOutcome::Unknown).await;
    assert_eq!(rotation, Rotation::Ended);
    let (rotation, _, _) = rotation_with(|_, _| RefreshOutcome::Expired).await;
    assert_eq!(rotation, Rotation::Ended);
}

#[tokio::test]
async fn the_successor_keeps_the_session_and_its_start() {
    let (rotation, step, presented) = rotation_with(|_, _| RefreshOutcome::Rotated).await;
    let Rotation::Rotated(successor) = rotation else {
        panic!("{rotation:?}");
    };
    let svc = service(MockTokenRepository::new());
    let before = svc
        .validate_refresh_token(&presented.refresh_token)
        .unwrap();
    let after = svc
        .validate_refresh_token(&successor.refresh_token)
        .unwrap();
    assert_eq!(after.sid, before.sid);
    assert_eq!(after.auth_time, before.auth_time);
    assert_eq!(after.jti, step.new_jti);
    assert_eq!(after.exp, step.new_exp);
    let id = svc.validate_id_token(&successor.id_token).unwrap();
    assert_eq!(id.sid, before.sid.map(|s| s.to_string()));
    // The assurance of the sign-in travels with the session.
    assert_eq!(id.auth_time, before.auth_time);
    assert_eq!(id.acr(), "aal1");
    assert_eq!(id.amr(), ["pwd"]);
    assert_eq!(after.acr.as_deref(), Some("aal1"));
    assert_eq!(after.amr, Some(vec!["pwd".to_owned()]));
}

#[tokio::test]
async fn a_refresh_keeps_the_assurance_its_token_carries_and_reads_older_ones_as_a_password() {
    let svc = service(MockTokenRepository::new());
    let now = now_secs();
    let assurance = Assurance {
        acr: "aal2".into(),
        amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
    };
    let session = SessionClaims {
        sid: Uuid::new_v4(),
        auth_time: now - 100,
        assurance: &assurance,
    };
    let pair = svc
        .sign_pair(&user(), &session, Uuid::new_v4(), now, now + 60)
        .unwrap();
    let refresh = svc.validate_refresh_token(&pair.refresh_token).unwrap();
    assert_eq!(Assurance::of(&refresh), assurance);
    let id = svc.validate_id_token(&pair.id_token).unwrap();
    assert_eq!((id.acr(), id.amr()), ("aal2", &assurance.amr[..]));
    assert_eq!(id.auth_time(), Some(now - 100));

    let older = RefreshClaims {
        acr: None,
        amr: None,
        ..refresh
    };
    assert_eq!(Assurance::of(&older), Assurance::password());
}

#[tokio::test]
async fn a_token_from_before_sessions_rotates_once_into_a_new_session() {
    let user = user();
    let legacy = RefreshClaims {
        sub: user.uid,
        jti: Uuid::new_v4(),
        iat: now_secs(),
        exp: now_secs() + 60,
        sid: None,
        auth_time: None,
        acr: None,
        amr: None,
    };
    let mut repo = MockTokenRepository::new();
    repo.expect_refresh().never();
    let mut answers = vec![false, true];
    repo.expect_rotate_legacy()
        .withf(move |uid, jti, start| *uid == user.uid && *jti == legacy.jti && start.now > 0)
        .times(2)
        .returning(move |_, _, _| Ok(answers.pop().unwrap()));
    let svc = service(repo);
    let first = svc
        .rotate(&user, &legacy, "legacy-token", &client())
        .await
        .unwrap();
    let Rotation::Rotated(pair) = first else {
        panic!("{first:?}");
    };
    let claims = svc.validate_refresh_token(&pair.refresh_token).unwrap();
    assert!(
        claims.sid.is_some(),
        "the successor belongs to a new session"
    );
    let second = svc
        .rotate(&user, &legacy, "legacy-token", &client())
        .await
        .unwrap();
    assert_eq!(second, Rotation::Ended);
}

#[tokio::test]
async fn a_store_outage_is_passed_on_as_unavailable() {
    let mut repo = MockTokenRepository::new();
    repo.expect_start_session()
        .returning(|_, _| Err(AppError::unavailable("token store is unavailable")));
    let err = service(repo).issue(&user(), &client()).await.unwrap_err();
    assert!(matches!(err, AppError::ServiceUnavailable { .. }));
}

#[tokio::test]
async fn revoking_all_removes_every_key_of_the_user() {
    let uid = Uuid::new_v4();
    let mut repo = MockTokenRepository::new();
    repo.expect_delete_user_refresh_tokens()
        .with(eq(uid))
        .times(1)
        .returning(|_| Ok(3));
    assert_eq!(service(repo).revoke_all(uid).await.unwrap(), 3);
}

#[test]
fn tokens_of_the_wrong_kind_algorithm_or_audience_are_refused() {
    let svc = service(MockTokenRepository::new());
    let user = user();
    let now = now_secs();
    let assurance = Assurance::password();
    let session = SessionClaims {
        sid: Uuid::new_v4(),
        auth_time: now,
        assurance: &assurance,
    };
    let pair = svc
        .sign_pair(&user, &session, Uuid::new_v4(), now, now + 60)
        .unwrap();
    assert!(
        svc.validate_id_token(&pair.refresh_token).is_err(),
        "HS256 refresh token as ID token"
    );
    assert!(
        svc.validate_refresh_token(&pair.id_token).is_err(),
        "RS256 ID token as refresh token"
    );

    let other = service_with(
        MockTokenRepository::new(),
        TokenConfig {
            audience: "someone-else".into(),
            ..config()
        },
    );
    let foreign = other.sign_id_token(&user, &session, now).unwrap();
    assert!(svc.validate_id_token(&foreign).is_err(), "other audience");

    let expired = service_with(
        MockTokenRepository::new(),
        TokenConfig {
            id_token_ttl: Duration::from_secs(1),
            ..config()
        },
    )
    .sign_id_token(&user, &session, now - 60)
    .unwrap();
    assert!(svc.validate_id_token(&expired).is_err(), "expired");
}
