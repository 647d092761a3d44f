use std::sync::Mutex;

use super::*;
use crate::model::interfaces::{MockClientRepository, MockRateLimitService};
use crate::test_keys::test_key_set;
use crate::verifier::{
    ClientTokenValidator, IdTokenRules, IdTokenValidator, MAX_LEEWAY, VerifyError,
};

const TTL: Duration = Duration::from_secs(3600);
const IP: &str = "192.0.2.7";

fn config() -> ClientTokenConfig {
    ClientTokenConfig {
        issuer: "account-test".into(),
        audience: "services-test".into(),
        ttl: TTL,
    }
}

fn rules(max_lifetime: Duration) -> IdTokenRules {
    IdTokenRules {
        issuer: "account-test".into(),
        audience: "services-test".into(),
        leeway: MAX_LEEWAY,
        max_lifetime,
    }
}

/// A repository holding the clients `register` stored.
fn repo() -> (MockClientRepository, Arc<Mutex<Vec<OAuthClient>>>) {
    let stored = Arc::new(Mutex::new(Vec::<OAuthClient>::new()));
    let mut repo = MockClientRepository::new();
    let s = stored.clone();
    repo.expect_create_client().returning(move |client| {
        s.lock().unwrap().push(client.clone());
        Ok(())
    });
    let s = stored.clone();
    repo.expect_find_client().returning(move |id| {
        Ok(s.lock()
            .unwrap()
            .iter()
            .find(|c| c.client_id == id)
            .cloned())
    });
    (repo, stored)
}

/// Limits that let every client authentication in.
fn no_limits() -> MockRateLimitService {
    let mut limits = MockRateLimitService::new();
    limits.expect_client_auth_attempt().returning(|_, _| Ok(()));
    limits
        .expect_client_auth_succeeded()
        .returning(|_, _| Ok(()));
    limits
}

fn service(repo: MockClientRepository) -> (ClientServiceImpl, Arc<SharedKeyRing>) {
    let keys = Arc::new(SharedKeyRing::new(test_key_set().ring));
    (
        ClientServiceImpl::new(
            Arc::new(repo),
            keys.clone(),
            config(),
            Arc::new(no_limits()),
        ),
        keys,
    )
}

#[tokio::test]
async fn register_stores_only_the_secret_hash_and_ids_are_not_uuids() {
    let (repo, stored) = repo();
    let (service, _) = service(repo);
    let creds = service
        .register(" reporting ", "todos:read  todos:read reports")
        .await
        .unwrap();
    assert!(creds.client_id.starts_with("cl_"));
    assert_eq!(creds.client_id.len(), 3 + 22);
    assert!(Uuid::parse_str(&creds.client_id).is_err());
    assert!(creds.client_secret.expose().starts_with("cs_"));
    assert_eq!(creds.client_secret.expose().len(), 3 + 43);
    assert_eq!(creds.scope, "todos:read reports");
    let stored = stored.lock().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "reporting");
    assert_eq!(
        stored[0].secret_hash,
        secret_hash(creds.client_secret.expose())
    );
    assert_ne!(
        stored[0].secret_hash,
        creds.client_secret.expose().as_bytes()
    );
}

#[tokio::test]
async fn register_refuses_an_empty_name_and_a_malformed_scope() {
    let (repo, _) = repo();
    let (service, _) = service(repo);
    assert!(matches!(
        service.register("  ", "a").await,
        Err(AppError::BadRequest { .. })
    ));
    assert!(matches!(
        service.register("x", "a \"b\"").await,
        Err(AppError::BadRequest { .. })
    ));
}

#[tokio::test]
async fn a_token_is_an_at_jwt_for_the_client_that_only_the_client_validator_accepts() {
    let (repo, _) = repo();
    let (service, keys) = service(repo);
    let creds = service.register("r", "todos:read reports").await.unwrap();
    let token = service
        .issue_token(
            &creds.client_id,
            creds.client_secret.expose(),
            Some("todos:read".into()),
            IP,
        )
        .await
        .unwrap();
    assert_eq!(token.expires_in, 3600);
    assert_eq!(token.scope, "todos:read");
    let ring = keys.current();
    let claims = ClientTokenValidator::new(rules(TTL))
        .unwrap()
        .validate(token.access_token.expose(), |kid| ring.decoding_key(kid))
        .unwrap();
    assert_eq!(claims.sub, creds.client_id);
    assert_eq!(claims.client_id, creds.client_id);
    assert_eq!(claims.scope, "todos:read");
    assert_eq!(claims.exp - claims.iat, 3600);
    assert!(Uuid::parse_str(claims.jti.as_deref().unwrap()).is_ok());
    // The one ID-token validator refuses it (header typ).
    assert_eq!(
        IdTokenValidator::new(rules(Duration::from_secs(86_400)))
            .unwrap()
            .validate(token.access_token.expose(), |kid| ring.decoding_key(kid)),
        Err(VerifyError::TokenType)
    );
    // A client validator allowing shorter lives refuses it.
    assert_eq!(
        ClientTokenValidator::new(rules(Duration::from_secs(60)))
            .unwrap()
            .validate(token.access_token.expose(), |kid| ring.decoding_key(kid)),
        Err(VerifyError::LifetimeTooLong)
    );
    // Without a scope requested, every scope of the client.
    let all = service
        .issue_token(&creds.client_id, creds.client_secret.expose(), None, IP)
        .await
        .unwrap();
    assert_eq!(all.scope, "todos:read reports");
}

#[tokio::test]
async fn a_wrong_secret_an_unknown_client_and_an_extra_scope_are_refused() {
    let (repo, _) = repo();
    let (service, _) = service(repo);
    let creds = service.register("r", "todos:read").await.unwrap();
    let secret = creds.client_secret.expose();
    assert!(matches!(
        service
            .issue_token(&creds.client_id, "cs_wrong", None, IP)
            .await,
        Err(ClientTokenError::InvalidClient)
    ));
    assert!(matches!(
        service.issue_token("cl_unknown", secret, None, IP).await,
        Err(ClientTokenError::InvalidClient)
    ));
    // Not even looked up: not a client id.
    assert!(matches!(
        service
            .issue_token("6f1c1d8e-0000-4000-8000-000000000000", secret, None, IP)
            .await,
        Err(ClientTokenError::InvalidClient)
    ));
    assert!(matches!(
        service
            .issue_token(
                &creds.client_id,
                secret,
                Some("todos:read todos:write".into()),
                IP,
            )
            .await,
        Err(ClientTokenError::InvalidScope(_))
    ));
}

#[tokio::test]
async fn a_registry_without_keys_never_signs() {
    let (repo, _) = repo();
    let registry = ClientServiceImpl::registry(Arc::new(repo));
    let creds = registry.register("r", "").await.unwrap();
    assert!(matches!(
        registry
            .issue_token(&creds.client_id, creds.client_secret.expose(), None, IP)
            .await,
        Err(ClientTokenError::Failed(_))
    ));
}

#[tokio::test]
async fn failed_authentications_are_counted_first_and_a_success_gives_its_count_back() {
    let (repo, _) = repo();
    let keys = Arc::new(SharedKeyRing::new(test_key_set().ring));
    let mut limits = MockRateLimitService::new();
    limits
        .expect_client_auth_attempt()
        .withf(|id, ip| id.starts_with("cl_") && ip == IP)
        .times(2)
        .returning(|_, _| Ok(()));
    limits
        .expect_client_auth_succeeded()
        .withf(|id, ip| id.starts_with("cl_") && ip == IP)
        .times(1)
        .returning(|_, _| Ok(()));
    let service = ClientServiceImpl::new(Arc::new(repo), keys, config(), Arc::new(limits));
    let creds = service.register("reports", "todos:read").await.unwrap();
    assert!(matches!(
        service
            .issue_token(&creds.client_id, "cs_wrong", None, IP)
            .await,
        Err(ClientTokenError::InvalidClient)
    ));
    service
        .issue_token(&creds.client_id, creds.client_secret.expose(), None, IP)
        .await
        .unwrap();
}

#[tokio::test]
async fn past_the_limit_nothing_is_looked_up() {
    let mut repo = MockClientRepository::new();
    repo.expect_find_client().never();
    let keys = Arc::new(SharedKeyRing::new(test_key_set().ring));
    let mut limits = MockRateLimitService::new();
    limits.expect_client_auth_attempt().returning(|_, _| {
        Err(AppError::TooManyRequests {
            retry_after_secs: 7,
        })
    });
    limits.expect_client_auth_succeeded().never();
    let service = ClientServiceImpl::new(Arc::new(repo), keys, config(), Arc::new(limits));
    assert!(matches!(
        service.issue_token("cl_abc", "cs_x", None, IP).await,
        Err(ClientTokenError::Failed(AppError::TooManyRequests {
            retry_after_secs: 7
        }))
    ));
}
