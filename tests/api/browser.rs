//! The browser session routes, `POST {base}/browser/{signin,signup,tokens,signout}`:
//! the refresh token travels only in an `HttpOnly; SameSite=Strict` cookie
//! scoped to `{base}/browser`, the answers carry the ID token alone, and a
//! request from another origin is refused. The session is an ordinary one:
//! listed, rotated with the grace window, ended on reuse, whitelisted as
//! `<uid>:<jti>` with the token's lifetime.

use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, TestApp, Tokens, assert_error, claims, spawn_app, unique_email,
};

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36";

/// The origin browsers write for an app whose `PUBLIC_URL` is unset:
/// `http://localhost:<port>`.
fn origin_of(app: &TestApp) -> String {
    app.address.replace("127.0.0.1", "localhost")
}

/// What a browser request from `origin` (`None`: no `Origin` header)
/// carrying `cookie` answered.
struct Answer {
    status: u16,
    body: Value,
    /// The `Set-Cookie` header, if any.
    set_cookie: Option<String>,
}

impl Answer {
    /// The value the answer sets the cookie to.
    fn cookie(&self) -> String {
        let set = self.set_cookie.as_deref().expect("a Set-Cookie header");
        set.strip_prefix("refresh_token=")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("the refresh_token cookie in {set}"))
            .to_owned()
    }

    /// The attributes of the `Set-Cookie` header, after the value.
    fn attributes(&self) -> Vec<String> {
        let set = self.set_cookie.as_deref().expect("a Set-Cookie header");
        set.split(';')
            .skip(1)
            .map(|a| a.trim().to_owned())
            .collect()
    }

    fn max_age(&self) -> u64 {
        self.attributes()
            .iter()
            .find_map(|a| a.strip_prefix("Max-Age="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("Max-Age in {:?}", self.set_cookie))
    }

    fn id_token(&self) -> String {
        self.body["idToken"]
            .as_str()
            .unwrap_or_else(|| panic!("idToken in {}", self.body))
            .to_owned()
    }
}

/// `POST {base}/browser/{route}` as a page of `origin` would send it.
async fn browser(
    app: &TestApp,
    route: &str,
    origin: Option<&str>,
    cookie: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = app
        .client
        .post(app.url(&format!("/browser/{route}")))
        .header("user-agent", USER_AGENT);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("theme=dark; refresh_token={cookie}"));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("browser request");
    let status = response.status().as_u16();
    let set_cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        set_cookies.len() <= 1,
        "one Set-Cookie at most: {set_cookies:?}"
    );
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        set_cookie: set_cookies.into_iter().next(),
    }
}

/// Signs `email` up through the API (that session ended at once) and in
/// through the browser route; the browser's answer.
async fn browser_signin(app: &TestApp, email: &str) -> Answer {
    let (_, signup) = app.signup(email).await;
    let ended = app.signout_scope(&signup.id_token, "local").await;
    assert_eq!(ended.status(), 200);
    let origin = origin_of(app);
    let answer = browser(
        app,
        "signin",
        Some(&origin),
        None,
        Some(json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
}

/// The cookie was removed: empty, `Max-Age=0`, same path.
fn assert_cleared(answer: &Answer) {
    assert_eq!(answer.cookie(), "", "{:?}", answer.set_cookie);
    assert_eq!(answer.max_age(), 0, "{:?}", answer.set_cookie);
    assert!(
        answer
            .attributes()
            .contains(&"Path=/api/account/browser".to_owned()),
        "{:?}",
        answer.set_cookie
    );
}

async fn a_browser_sign_in_sets_an_http_only_strict_cookie_and_answers_the_id_token_alone(
    backend: Backend,
) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let answer = browser_signin(&app, &email).await;

    // The body: the ID token, nothing else.
    let fields: Vec<&String> = answer.body.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["idToken"], "{}", answer.body);
    let id = claims(&answer.id_token());
    assert_eq!(id["email"], email.as_str());

    // The cookie: the session's refresh token, out of script's reach, sent
    // only to the browser routes, living as long as the token.
    let mut attributes = answer.attributes();
    attributes.sort();
    let max_age = answer.max_age();
    assert_eq!(
        attributes,
        [
            "HttpOnly".to_owned(),
            format!("Max-Age={max_age}"),
            "Path=/api/account/browser".to_owned(),
            "SameSite=Strict".to_owned(),
        ],
        "no Secure on http://: {:?}",
        answer.set_cookie
    );
    let refresh = claims(&answer.cookie());
    let exp = refresh["exp"].as_u64().unwrap();
    let now = crate::helpers::unix_now();
    assert!(
        max_age <= exp - now + 1 && max_age + 5 >= exp - now && max_age > 259_000,
        "Max-Age {max_age} is the token's remaining lifetime ({})",
        exp - now
    );
    assert_eq!(refresh["sid"], id["sid"], "one session");

    // An ordinary session: whitelisted as <uid>:<jti>, listed with the
    // browser's user agent, and its refresh token works at the API too.
    let uid = Tokens {
        id_token: answer.id_token(),
        refresh_token: answer.cookie(),
    }
    .uid();
    let key = format!("{uid}:{}", refresh["jti"].as_str().unwrap());
    assert!(app.refresh_keys(uid).await.contains(&key), "{key}");
    if backend == Backend::Real {
        let ttl = app.ttl(&key).await;
        assert!(ttl > 259_000 && ttl <= 259_200, "TTL {ttl}");
    }
    let sessions = app.sessions(&answer.id_token()).await;
    let listed = sessions
        .iter()
        .find(|s| s["id"] == id["sid"])
        .unwrap_or_else(|| panic!("the browser session in {sessions:?}"));
    assert_eq!(listed["userAgent"], USER_AGENT);
    assert_eq!(listed["current"], true);
    app.signout(&answer.id_token()).await;
}

async fn only_pages_of_the_public_origin_are_answered(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let signed_in = browser_signin(&app, &email).await;
    let cookie = signed_in.cookie();
    let origin = origin_of(&app);

    // A valid cookie from a foreign page: refused before anything happens.
    for foreign in [
        "https://evil.example",
        "null",
        &app.address, // http://127.0.0.1:<port> is another origin than localhost
        &origin.replace("http://", "https://"),
        &format!("{origin}.evil.example"),
    ] {
        let answer = browser(&app, "tokens", Some(foreign), Some(&cookie), None).await;
        let body = assert_status(&answer, 403, "FORBIDDEN", foreign);
        assert!(
            body["error"]["message"].as_str().unwrap().contains(&origin),
            "{body}"
        );
        assert!(answer.set_cookie.is_none(), "{foreign}: nothing set");
        let signout = browser(
            &app,
            "signout?scope=global",
            Some(foreign),
            Some(&cookie),
            None,
        )
        .await;
        assert_status(&signout, 403, "FORBIDDEN", foreign);
        let signin = browser(
            &app,
            "signin",
            Some(foreign),
            None,
            Some(json!({"email": email, "password": PASSWORD})),
        )
        .await;
        assert_status(&signin, 403, "FORBIDDEN", foreign);
        assert!(signin.set_cookie.is_none());
    }
    // No Origin: only a browser's own same-origin fetch (Sec-Fetch-Site).
    let without = browser(&app, "tokens", None, Some(&cookie), None).await;
    assert_status(&without, 403, "FORBIDDEN", "no Origin, no Sec-Fetch-Site");
    for site in ["cross-site", "same-site", "none"] {
        let response = app
            .client
            .post(app.url("/browser/tokens"))
            .header("sec-fetch-site", site)
            .header("cookie", format!("refresh_token={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "Sec-Fetch-Site: {site}");
    }

    // Nothing was used up: the session is whole, one session only.
    assert_eq!(app.sessions(&signed_in.id_token()).await.len(), 1);
    let same_origin = app
        .client
        .post(app.url("/browser/tokens"))
        .header("sec-fetch-site", "same-origin")
        .header("cookie", format!("refresh_token={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200, "Sec-Fetch-Site: same-origin");
    app.signout(&signed_in.id_token()).await;
}

/// Asserts the status and error type of `answer`; its body.
fn assert_status(answer: &Answer, status: u16, kind: &str, what: &str) -> Value {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert_eq!(
        answer.body["error"]["type"], kind,
        "{what}: {}",
        answer.body
    );
    answer.body.clone()
}

async fn the_cookie_rotates_within_the_grace_window_and_a_reuse_ends_the_session(backend: Backend) {
    let app = spawn_app!(backend, &[("REFRESH_REUSE_GRACE", "2")]);
    let email = unique_email();
    let first = browser_signin(&app, &email).await;
    let origin = origin_of(&app);
    let uid = Tokens {
        id_token: first.id_token(),
        refresh_token: first.cookie(),
    }
    .uid();

    // A reload: the cookie is rotated, the page gets a new ID token.
    let rotated = browser(&app, "tokens", Some(&origin), Some(&first.cookie()), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_ne!(rotated.cookie(), first.cookie());
    assert_eq!(
        claims(&rotated.cookie())["sid"],
        claims(&first.cookie())["sid"]
    );
    assert_eq!(
        claims(&rotated.id_token())["sid"],
        claims(&first.id_token())["sid"]
    );
    assert!(rotated.max_age() > 259_000);
    let keys = app.refresh_keys(uid).await;
    let jti = claims(&rotated.cookie())["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        keys,
        [format!("{uid}:{jti}")],
        "only the rotated token is whitelisted"
    );

    // Two tabs reloading at once: the old cookie within the grace window
    // gets the same successor.
    let twin = browser(&app, "tokens", Some(&origin), Some(&first.cookie()), None).await;
    assert_eq!(twin.status, 200, "{}", twin.body);
    assert_eq!(twin.cookie(), rotated.cookie());

    // After the window the old cookie is a stolen token: the session ends,
    // and the answer removes the cookie.
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let reused = browser(&app, "tokens", Some(&origin), Some(&first.cookie()), None).await;
    assert_status(&reused, 401, "REFRESH_TOKEN_REUSED", "the old cookie");
    assert_cleared(&reused);
    let after = browser(&app, "tokens", Some(&origin), Some(&rotated.cookie()), None).await;
    assert_status(&after, 401, "AUTHORIZATION", "the session is over");
    assert_cleared(&after);
    assert!(app.refresh_keys(uid).await.is_empty());
}

async fn without_a_cookie_a_refresh_is_refused_and_a_bad_one_is_cleared(backend: Backend) {
    let app = spawn_app!(backend);
    let origin = origin_of(&app);
    let none = browser(&app, "tokens", Some(&origin), None, None).await;
    assert_status(&none, 401, "AUTHORIZATION", "no cookie");
    assert_cleared(&none);
    let bad = browser(&app, "tokens", Some(&origin), Some("not.a.token"), None).await;
    assert_status(&bad, 401, "AUTHORIZATION", "a bad cookie");
    assert_cleared(&bad);
    let signout = browser(&app, "signout", Some(&origin), None, None).await;
    assert_status(&signout, 401, "AUTHORIZATION", "sign-out without a cookie");
    assert_cleared(&signout);
    let scope = browser(&app, "signout?scope=everything", Some(&origin), None, None).await;
    assert_status(&scope, 400, "BAD_REQUEST", "an unknown scope");
}

async fn a_browser_sign_out_ends_the_sessions_its_scope_names(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let origin = origin_of(&app);
    let browser_session = browser_signin(&app, &email).await;
    let uid = claims(&browser_session.id_token())["sub"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // And one more through the API.
    let api = app.signin(&email).await;
    assert_eq!(app.sessions(&api.id_token).await.len(), 2);

    // others: the browser's session stays, its cookie too.
    let others = browser(
        &app,
        "signout?scope=others",
        Some(&origin),
        Some(&browser_session.cookie()),
        None,
    )
    .await;
    assert_eq!(others.status, 200, "{}", others.body);
    assert_eq!(others.body["message"], "signed out on every other device");
    assert!(others.set_cookie.is_none(), "the cookie stays");
    assert_eq!(app.refresh(&api.refresh_token).await.status(), 401);
    let sessions = app.sessions(&browser_session.id_token()).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);

    // local (the default): that session ends, the cookie goes.
    let local = browser(
        &app,
        "signout",
        Some(&origin),
        Some(&browser_session.cookie()),
        None,
    )
    .await;
    assert_eq!(local.status, 200, "{}", local.body);
    assert_eq!(local.body["message"], "signed out of this session");
    assert_cleared(&local);
    assert!(app.refresh_keys(uid).await.is_empty());
    let gone = browser(
        &app,
        "tokens",
        Some(&origin),
        Some(&browser_session.cookie()),
        None,
    )
    .await;
    assert_status(&gone, 401, "AUTHORIZATION", "after sign-out");
    // Signing out again is harmless; global needs a live session.
    let again = browser(
        &app,
        "signout",
        Some(&origin),
        Some(&browser_session.cookie()),
        None,
    )
    .await;
    assert_eq!(again.status, 200);
    assert_cleared(&again);
    let global = browser(
        &app,
        "signout?scope=global",
        Some(&origin),
        Some(&browser_session.cookie()),
        None,
    )
    .await;
    assert_status(&global, 401, "AUTHORIZATION", "global with a dead session");

    // global: every session of the user, the cookie goes.
    let second = browser(
        &app,
        "signin",
        Some(&origin),
        None,
        Some(json!({"email": email, "password": PASSWORD})),
    )
    .await;
    let api = app.signin(&email).await;
    let global = browser(
        &app,
        "signout?scope=global",
        Some(&origin),
        Some(&second.cookie()),
        None,
    )
    .await;
    assert_eq!(global.status, 200, "{}", global.body);
    assert_cleared(&global);
    assert_eq!(app.refresh(&api.refresh_token).await.status(), 401);
    assert!(app.user_keys(uid).await.is_empty());
}

async fn a_browser_sign_up_sets_the_cookie_or_waits_for_the_mail(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let origin = origin_of(&app);
    let body = json!({"email": email, "password": PASSWORD});
    let answer = browser(&app, "signup", Some(&origin), None, Some(body.clone())).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert!(answer.body.get("tokens").is_none());
    let tokens = Tokens {
        id_token: answer.id_token(),
        refresh_token: answer.cookie(),
    };
    app.track(tokens.uid());
    assert!(answer.attributes().contains(&"HttpOnly".to_owned()));
    let taken = browser(&app, "signup", Some(&origin), None, Some(body)).await;
    assert_status(&taken, 409, "CONFLICT", "a taken address");
    assert!(taken.set_cookie.is_none());
    let invalid = browser(
        &app,
        "signup",
        Some(&origin),
        None,
        Some(json!({"email": "nope", "password": "short"})),
    )
    .await;
    assert_status(&invalid, 400, "BAD_REQUEST", "field errors");
    app.signout(&tokens.id_token).await;

    let required = spawn_app!(backend, &[("EMAIL_CONFIRMATION", "required")]);
    let origin = origin_of(&required);
    let email = unique_email();
    let answer = browser(
        &required,
        "signup",
        Some(&origin),
        None,
        Some(json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert!(answer.body["message"].is_string());
    assert!(answer.set_cookie.is_none(), "no session before the mail");
    let signin = browser(
        &required,
        "signin",
        Some(&origin),
        None,
        Some(json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_status(&signin, 403, "EMAIL_NOT_VERIFIED", "not verified yet");
    assert!(signin.set_cookie.is_none());
}

async fn an_https_public_url_makes_the_cookie_secure_and_names_the_origin(backend: Backend) {
    let app = spawn_app!(backend, &[("PUBLIC_URL", "https://id.example.com")]);
    let email = unique_email();
    app.signup(&email).await;
    let body = json!({"email": email, "password": PASSWORD});
    let local = browser(
        &app,
        "signin",
        Some(&origin_of(&app)),
        None,
        Some(body.clone()),
    )
    .await;
    assert_status(&local, 403, "FORBIDDEN", "localhost is not PUBLIC_URL");
    let answer = browser(
        &app,
        "signin",
        Some("https://id.example.com"),
        None,
        Some(body),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.attributes().contains(&"Secure".to_owned()),
        "{:?}",
        answer.set_cookie
    );
    let signout = browser(
        &app,
        "signout?scope=global",
        Some("https://id.example.com"),
        Some(&answer.cookie()),
        None,
    )
    .await;
    assert_eq!(signout.status, 200);
    assert!(signout.attributes().contains(&"Secure".to_owned()));
}

async fn the_browser_routes_answer_wrong_input_in_the_json_shape(backend: Backend) {
    let app = spawn_app!(backend);
    let origin = origin_of(&app);
    let wrong = browser(
        &app,
        "signin",
        Some(&origin),
        None,
        Some(json!({"email": unique_email(), "password": PASSWORD})),
    )
    .await;
    assert_status(&wrong, 401, "AUTHORIZATION", "an unknown email");
    assert!(wrong.set_cookie.is_none());
    let response = app
        .client
        .post(app.url("/browser/signin"))
        .header("origin", &origin)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "BAD_REQUEST").await;
    let response = app
        .client
        .get(app.url("/browser/tokens"))
        .header("origin", &origin)
        .send()
        .await
        .unwrap();
    assert_error(response, 405, "METHOD_NOT_ALLOWED").await;
}

crate::on_every_backend!(
    a_browser_sign_in_sets_an_http_only_strict_cookie_and_answers_the_id_token_alone,
    only_pages_of_the_public_origin_are_answered,
    the_cookie_rotates_within_the_grace_window_and_a_reuse_ends_the_session,
    without_a_cookie_a_refresh_is_refused_and_a_bad_one_is_cleared,
    a_browser_sign_out_ends_the_sessions_its_scope_names,
    a_browser_sign_up_sets_the_cookie_or_waits_for_the_mail,
    an_https_public_url_makes_the_cookie_secure_and_names_the_origin,
    the_browser_routes_answer_wrong_input_in_the_json_shape,
);
