//! JWKS and key rotation: publish, rotate, retire, reload without a restart.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use account::jwks::{Jwk, JwkSet};
use account::testing::{GeneratedKeyFiles, generate_keys, retire_key, rotate_keys, stage_next_key};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, Tokens, header, spawn_embedded_app, unique_email};

/// An embedded app whose key files live in a temp dir of the test's own.
async fn app_with_own_keys(dir: &tempfile::TempDir) -> TestApp {
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (private, public, secret, published, data_key) = (
        path("keys/private.pem"),
        path("keys/public.pem"),
        path("keys/refresh.secret"),
        path("keys/published"),
        path("keys/data.key"),
    );
    spawn_embedded_app(&[
        ("PRIV_KEY_FILE", &private),
        ("PUB_KEY_FILE", &public),
        ("REFRESH_SECRET_FILE", &secret),
        ("PUBLISHED_KEYS_DIR", &published),
        ("DATA_KEY_FILE", &data_key),
    ])
    .await
}

async fn jwks(app: &TestApp) -> JwkSet {
    let response = app
        .client
        .get(format!("{}/.well-known/jwks.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    response.json().await.unwrap()
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys.iter().map(|k| k.kid.clone().unwrap()).collect()
}

fn kid(token: &str) -> String {
    header(token)["kid"].as_str().unwrap().to_owned()
}

async fn signin(app: &TestApp, email: &str) -> Tokens {
    let response = app
        .post_json("/signin", &json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), 200);
    Tokens::from_body(&response.json().await.unwrap())
}

#[tokio::test]
async fn the_jwks_publishes_the_signing_key_with_the_kid_of_the_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_own_keys(&dir).await;
    let (_, tokens) = app.signup(&unique_email()).await;
    let set = jwks(&app).await;
    assert_eq!(set.keys.len(), 1);
    let served = &set.keys[0];
    let from_pem = Jwk::rsa_from_pem(&std::fs::read(&app.key_paths().public_key).unwrap()).unwrap();
    assert_eq!(served, &from_pem, "n and e match the PEM");
    assert_eq!(served.kty, "RSA");
    assert_eq!(served.alg.as_deref(), Some("RS256"));
    assert_eq!(served.use_.as_deref(), Some("sig"));
    assert_eq!(served.kid.as_deref(), Some(kid(&tokens.id_token).as_str()));
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_their_key_is_retired() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_own_keys(&dir).await;
    let email = unique_email();
    let (_, before) = app.signup(&email).await;
    let old_kid = kid(&before.id_token);

    let rotation = rotate_keys(app.key_paths()).unwrap();
    assert_eq!(rotation.previous_kid, old_kid);
    // Until the reload, the running service still signs with the old key.
    assert_eq!(kid(&signin(&app, &email).await.id_token), old_kid);
    let published = app.reload_keys().unwrap();
    assert_eq!(
        published,
        vec![rotation.active_kid.clone(), old_kid.clone()]
    );
    assert_eq!(kids(&jwks(&app).await), published, "active key first");

    // New tokens carry the new kid; the old token still verifies.
    let after = signin(&app, &email).await;
    assert_eq!(kid(&after.id_token), rotation.active_kid);
    assert_eq!(app.me(&before.id_token).await.status(), 200);
    assert_eq!(app.me(&after.id_token).await.status(), 200);

    // Retired: the old key is no longer published and its tokens are refused.
    assert!(
        retire_key(app.key_paths(), &rotation.active_kid).is_err(),
        "active key"
    );
    retire_key(app.key_paths(), &old_kid).unwrap();
    app.reload_keys().unwrap();
    assert_eq!(kids(&jwks(&app).await), vec![rotation.active_kid.clone()]);
    assert_eq!(app.me(&before.id_token).await.status(), 401);
    assert_eq!(app.me(&after.id_token).await.status(), 200);
}

#[tokio::test]
async fn a_staged_key_is_published_before_it_signs() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_own_keys(&dir).await;
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let active = kid(&tokens.id_token);

    let next = stage_next_key(app.key_paths()).unwrap();
    app.reload_keys().unwrap();
    assert_eq!(kids(&jwks(&app).await), vec![active.clone(), next.clone()]);
    assert_eq!(
        kid(&signin(&app, &email).await.id_token),
        active,
        "not signing yet"
    );

    let rotation = rotate_keys(app.key_paths()).unwrap();
    assert_eq!(rotation.active_kid, next, "the staged key becomes active");
    app.reload_keys().unwrap();
    assert_eq!(kid(&signin(&app, &email).await.id_token), next);
    assert_eq!(kids(&jwks(&app).await), vec![next, active]);
}

#[tokio::test]
async fn a_token_signed_with_an_unpublished_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_own_keys(&dir).await;
    let (uid, tokens) = app.signup(&unique_email()).await;
    let stranger = GeneratedKeyFiles::in_dir(&dir.path().join("stranger"));
    generate_keys(&stranger, false).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "sub": uid, "iss": "account", "aud": "domain-services", "iat": now,
        "exp": now + 600, "jti": uuid::Uuid::new_v4(), "email": "x@example.com", "name": ""
    });
    let key = EncodingKey::from_rsa_pem(&std::fs::read(&stranger.private_key).unwrap()).unwrap();
    // With its own kid, and with the kid of the real key.
    let own_kid = Jwk::rsa_from_pem(&std::fs::read(&stranger.public_key).unwrap())
        .unwrap()
        .kid;
    for kid in [own_kid, Some(kid(&tokens.id_token)), None] {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid;
        let forged = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        assert_eq!(app.me(&forged).await.status(), 401);
    }
}

#[tokio::test]
async fn a_broken_key_file_fails_the_reload_and_the_ring_in_force_stays() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_own_keys(&dir).await;
    let (_, tokens) = app.signup(&unique_email()).await;
    std::fs::create_dir_all(&app.key_paths().published_dir).unwrap();
    std::fs::write(
        app.key_paths().published_dir.join("garbage.pem"),
        "not a key",
    )
    .unwrap();
    let err = app.reload_keys().unwrap_err();
    assert!(format!("{err:#}").contains("PUBLISHED_KEYS_DIR"), "{err:#}");
    assert_eq!(app.me(&tokens.id_token).await.status(), 200);
    assert_eq!(jwks(&app).await.keys.len(), 1);
}

/// The account binary, run in its own working directory.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Starts the service on port 0 and reads the address it bound from its
    /// log (no port picked in advance, so no race with other tests for one).
    fn start(dir: &std::path::Path) -> (Self, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_account"))
            .current_dir(dir)
            .env_clear()
            .env("PORT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keep reading to the end, so the child never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, address)) = line.split_once("listening address=") {
                    let _ = tx.send(address.trim().to_owned());
                }
            }
        });
        let server = Self(child);
        let address = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("account service did not log its address");
        (server, format!("http://{address}"))
    }
}

fn account(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_account"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_documented_rotation_procedure_works_on_a_running_process_with_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first = rotate_and_retire_on_a_running_process(dir.path()).await;
    assert!(!first.is_empty());
}

/// The key id of `tests/fixtures/hyphen-kid`: it begins with `-`.
const HYPHEN_KID: &str = "-eEEfqLPjv06SNzskf02k0RKUKsvUYo_9-VKY34jkls";

#[tokio::test]
async fn a_key_whose_id_begins_with_a_hyphen_is_retired_by_the_documented_commands() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hyphen-kid");
    for file in ["private.pem", "public.pem"] {
        let to = keys.join(file);
        std::fs::copy(fixture.join(file), &to).unwrap();
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let first = rotate_and_retire_on_a_running_process(dir.path()).await;
    assert_eq!(
        first, HYPHEN_KID,
        "the service starts with the fixture's key"
    );
}

/// The rotation procedure of `docs/keys.md` against the `account` binary running in
/// `dir` (keys under `dir/keys`, generated when missing): `keys rotate`,
/// SIGHUP, `keys retire <previous kid>`, SIGHUP. Returns the retired kid.
async fn rotate_and_retire_on_a_running_process(dir: &std::path::Path) -> String {
    let (server, base) = Server::start(dir);
    let client = reqwest::Client::new();
    let fetch_kids = || async {
        let set: JwkSet = client
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        kids(&set)
    };
    let first = fetch_kids().await;
    assert_eq!(first.len(), 1);

    let out = account(dir, &["keys", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(account(dir, &["keys", "list"]).stdout).unwrap();
    assert!(
        listed.contains(&format!("{}  published", first[0])),
        "{listed}"
    );

    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut kids_now = fetch_kids().await;
    while kids_now.len() != 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        kids_now = fetch_kids().await;
    }
    assert_eq!(kids_now.len(), 2, "both keys published after SIGHUP");
    assert_eq!(kids_now[1], first[0], "the previous key stays published");

    let out = account(dir, &["keys", "retire", &first[0]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while fetch_kids().await.len() != 1 {
        assert!(Instant::now() < deadline, "retired key still published");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body: Value = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok", "still serving after two reloads");
    first[0].clone()
}
