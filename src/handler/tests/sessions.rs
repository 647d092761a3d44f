//! Sessions: `POST /signout[?scope=]`, `GET /sessions`, `DELETE /sessions/{id}`,
//! `PUT /sessions/{id}`. The handlers parse the scope, the session id and the
//! name, pass the caller's claims on, and shape the list (`current` from the
//! ID token's `sid`); which sessions end or are named is the use case's
//! business, tested in `service::account`.

use super::*;
use crate::error::AppError;
use crate::model::{SessionInfo, SessionName, SignOutScope};

fn sign_out(query: &str) -> Request<Body> {
    // Sign-out needs no body at all.
    authorized(empty(Method::POST, &url(&format!("/signout{query}"))))
}

/// Use cases that authenticate alice and sign her out once, in `scope`.
fn signing_out(scope: SignOutScope) -> MockAccountService {
    let alice = user();
    let mut account = authenticating(&alice);
    account
        .expect_sign_out()
        .withf(move |caller: &IdClaims, s: &SignOutScope| {
            are_claims_of(caller, &alice) && *s == scope
        })
        .times(1)
        .returning(|_, _| Ok(()));
    account
}

// ---------------------------------------------------------------- POST /signout

#[tokio::test]
async fn sign_out_without_a_scope_signs_the_caller_out_everywhere_and_answers_200_with_a_message() {
    let (status, headers, body) = send(app(signing_out(SignOutScope::Global)), sign_out("")).await;

    assert_eq!(status, StatusCode::OK);
    assert_json_content_type(&headers);
    assert_eq!(body, json!({"message": "signed out on every device"}));
}

#[tokio::test]
async fn sign_out_passes_each_named_scope_to_the_use_case_and_answers_with_its_message() {
    for (query, scope, message) in [
        (
            "?scope=global",
            SignOutScope::Global,
            "signed out on every device",
        ),
        (
            "?scope=local",
            SignOutScope::Local,
            "signed out of this session",
        ),
        (
            "?scope=others",
            SignOutScope::Others,
            "signed out on every other device",
        ),
    ] {
        let (status, _, body) = send(app(signing_out(scope)), sign_out(query)).await;

        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(body, json!({"message": message}), "{query}");
    }
}

#[tokio::test]
async fn sign_out_with_an_unknown_scope_answers_400_naming_scope_and_never_reaches_the_use_case() {
    for query in [
        "?scope=everything",
        "?scope=LOCAL",
        "?scope=",
        "?scope=local&scope=global",
    ] {
        let mut account = authenticating(&user());
        account.expect_sign_out().never();

        let (status, _, body) = send(app(account), sign_out(query)).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            body,
            invalid_args_body(&[("scope", "scope must be global, local or others")]),
            "{query}"
        );
    }
}

#[tokio::test]
async fn sign_out_with_an_unknown_scope_and_no_credentials_answers_401_first() {
    let mut account = MockAccountService::new();
    account.expect_authenticate().never();
    account.expect_sign_out().never();

    let (status, headers, _) = send(
        app(account),
        empty(Method::POST, &url("/signout?scope=everything")),
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&headers), Some("Bearer"));
}

#[tokio::test]
async fn a_scoped_sign_out_the_use_case_refuses_passes_its_400_on() {
    let mut account = authenticating(&user());
    account.expect_sign_out().times(1).returning(|_, _| {
        Err(AppError::bad_request(
            "this ID token has no session; sign in again",
        ))
    });

    let (status, _, body) = send(app(account), sign_out("?scope=local")).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        error_body("BAD_REQUEST", "this ID token has no session; sign in again")
    );
}

// ---------------------------------------------------------------- GET /sessions

/// Another session of alice's, not the one of [`ID_TOKEN`].
const OTHER_SESSION: Uuid = Uuid::from_u128(0x07e4);

/// Two sessions, most recently used first: [`OTHER_SESSION`], then [`SESSION`].
fn two_sessions() -> Vec<SessionInfo> {
    vec![
        SessionInfo {
            id: OTHER_SESSION,
            created_at: 1_700_000_100,
            last_used_at: 1_700_000_800,
            user_agent: "curl/8.5.0".into(),
            ip: "2001:db8::7".into(),
            name: Some("work laptop".into()),
        },
        SessionInfo {
            id: SESSION,
            created_at: 1_700_000_000,
            last_used_at: 1_700_000_500,
            user_agent: USER_AGENT.into(),
            ip: "192.0.2.10".into(),
            name: None,
        },
    ]
}

#[tokio::test]
async fn the_session_list_answers_200_in_the_use_case_order_marking_only_the_session_of_the_id_token_current()
 {
    let alice = user();
    let mut account = authenticating(&alice);
    account
        .expect_sessions()
        .withf(move |caller: &IdClaims| are_claims_of(caller, &alice))
        .times(1)
        .returning(|_| Ok(two_sessions()));

    let (status, headers, body) = send(app(account), authorized(get(&url("/sessions")))).await;

    assert_eq!(status, StatusCode::OK);
    assert_json_content_type(&headers);
    assert_eq!(
        body,
        json!({"sessions": [
            {
                "id": "00000000-0000-0000-0000-0000000007e4",
                "createdAt": 1_700_000_100,
                "lastUsedAt": 1_700_000_800,
                "userAgent": "curl/8.5.0",
                "ip": "2001:db8::7",
                "name": "work laptop",
                "current": false,
            },
            {
                "id": SESSION.to_string(),
                "createdAt": 1_700_000_000,
                "lastUsedAt": 1_700_000_500,
                "userAgent": USER_AGENT,
                "ip": "192.0.2.10",
                "name": null,
                "current": true,
            },
        ]})
    );
}

#[tokio::test]
async fn with_an_id_token_from_before_sessions_no_session_is_current() {
    let alice = user();
    let mut account = MockAccountService::new();
    account.expect_authenticate().times(1).returning(move |_| {
        Ok(IdClaims {
            sid: None,
            ..claims_for(&alice)
        })
    });
    account
        .expect_sessions()
        .times(1)
        .returning(|_| Ok(two_sessions()));

    let (status, _, body) = send(app(account), authorized(get(&url("/sessions")))).await;

    assert_eq!(status, StatusCode::OK);
    let current: Vec<&Value> = body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| &s["current"])
        .collect();
    assert_eq!(current, [&json!(false), &json!(false)], "{body}");
}

#[tokio::test]
async fn no_live_sessions_answer_an_empty_list() {
    let mut account = authenticating(&user());
    account.expect_sessions().times(1).returning(|_| Ok(vec![]));

    let (status, _, body) = send(app(account), authorized(get(&url("/sessions")))).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"sessions": []}));
}

// ---------------------------------------------------------------- DELETE /sessions/{id}

fn end_session(id: &str) -> Request<Body> {
    authorized(empty(Method::DELETE, &url(&format!("/sessions/{id}"))))
}

#[tokio::test]
async fn ending_a_session_passes_the_caller_and_the_parsed_id_to_the_use_case_and_answers_204_without_a_body()
 {
    let alice = user();
    let mut account = authenticating(&alice);
    account
        .expect_end_session()
        .withf(move |caller: &IdClaims, sid: &Uuid| {
            are_claims_of(caller, &alice) && *sid == OTHER_SESSION
        })
        .times(1)
        .returning(|_, _| Ok(()));

    let (status, _, body) = send(
        app(account),
        end_session("00000000-0000-0000-0000-0000000007E4"),
    )
    .await;

    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
}

#[tokio::test]
async fn ending_a_session_the_use_case_does_not_find_answers_404_not_found() {
    let mut account = authenticating(&user());
    account
        .expect_end_session()
        .times(1)
        .returning(|_, _| Err(AppError::NotFound("no such session".into())));

    let (status, _, body) = send(app(account), end_session(&OTHER_SESSION.to_string())).await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, error_body("NOT_FOUND", "no such session"));
}

#[tokio::test]
async fn ending_a_session_whose_id_is_not_a_uuid_answers_404_and_never_reaches_the_use_case() {
    for id in [
        "current",
        "42",
        "00000000-0000-0000-0000-00000000zzzz",
        "%20",
    ] {
        let mut account = authenticating(&user());
        account.expect_end_session().never();

        let (status, _, body) = send(app(account), end_session(id)).await;

        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(body, error_body("NOT_FOUND", "no such session"), "{id}");
    }
}

// ---------------------------------------------------------------- PUT /sessions/{id}

fn rename_session(id: &str, body: impl Into<Body>) -> Request<Body> {
    authorized(json_request(
        Method::PUT,
        &url(&format!("/sessions/{id}")),
        body,
    ))
}

#[tokio::test]
async fn naming_a_session_passes_the_caller_the_parsed_id_and_the_trimmed_name_and_answers_204() {
    let alice = user();
    let mut account = authenticating(&alice);
    account
        .expect_rename_session()
        .withf(
            move |caller: &IdClaims, sid: &Uuid, name: &Option<SessionName>| {
                are_claims_of(caller, &alice)
                    && *sid == OTHER_SESSION
                    && name.as_ref().map(SessionName::as_str) == Some("work laptop")
            },
        )
        .times(1)
        .returning(|_, _, _| Ok(()));

    let (status, _, body) = send(
        app(account),
        rename_session(
            "00000000-0000-0000-0000-0000000007E4",
            json!({"name": "  work laptop\t"}).to_string(),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
}

#[tokio::test]
async fn a_null_name_clears_it() {
    let mut account = authenticating(&user());
    account
        .expect_rename_session()
        .withf(|_, sid, name| *sid == OTHER_SESSION && name.is_none())
        .times(1)
        .returning(|_, _, _| Ok(()));

    let (status, _, _) = send(
        app(account),
        rename_session(&OTHER_SESSION.to_string(), r#"{"name": null}"#),
    )
    .await;

    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_invalid_name_answers_400_naming_name_and_never_reaches_the_use_case() {
    let length = "name must be 1 to 64 characters (null clears it)";
    // Refused by the JSON body extractor already, naming the field.
    let control = crate::web::NOT_TEXT;
    for (body, message) in [
        (json!({"name": "x".repeat(65)}), length),
        (json!({"name": ""}), length),
        (json!({"name": " \t\n "}), length),
        (json!({"name": "work\u{7}laptop"}), control),
        (json!({"name": "work\nlaptop"}), control),
        (json!({}), "name is required (null clears it)"),
        (json!({"other": "x"}), "name is required (null clears it)"),
    ] {
        let mut account = authenticating(&user());
        account.expect_rename_session().never();

        let (status, _, answer) = send(
            app(account),
            rename_session(&OTHER_SESSION.to_string(), body.to_string()),
        )
        .await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer, invalid_args_body(&[("name", message)]), "{body}");
    }
}

#[tokio::test]
async fn sixty_four_characters_are_a_name() {
    let name = "é".repeat(63) + "📱";
    let expected = name.clone();
    let mut account = authenticating(&user());
    account
        .expect_rename_session()
        .withf(move |_, _, n| n.as_ref().map(SessionName::as_str) == Some(expected.as_str()))
        .times(1)
        .returning(|_, _, _| Ok(()));

    let (status, _, _) = send(
        app(account),
        rename_session(
            &OTHER_SESSION.to_string(),
            json!({ "name": name }).to_string(),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_name_that_is_not_a_string_or_a_body_that_is_not_json_never_reaches_the_use_case() {
    for body in [r#"{"name": 5}"#, r#"{"name": ["a"]}"#, "not json"] {
        let mut account = authenticating(&user());
        account.expect_rename_session().never();

        let (status, _, _) = send(
            app(account),
            rename_session(&OTHER_SESSION.to_string(), body),
        )
        .await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
}

#[tokio::test]
async fn naming_a_session_the_use_case_does_not_find_answers_404_not_found() {
    let mut account = authenticating(&user());
    account
        .expect_rename_session()
        .times(1)
        .returning(|_, _, _| Err(AppError::NotFound("no such session".into())));

    let (status, _, body) = send(
        app(account),
        rename_session(&OTHER_SESSION.to_string(), r#"{"name": "x"}"#),
    )
    .await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, error_body("NOT_FOUND", "no such session"));
}

#[tokio::test]
async fn naming_a_session_whose_id_is_not_a_uuid_answers_404_and_never_reaches_the_use_case() {
    for id in ["current", "42", "00000000-0000-0000-0000-00000000zzzz"] {
        let mut account = authenticating(&user());
        account.expect_rename_session().never();

        let (status, _, body) = send(app(account), rename_session(id, r#"{"name": "x"}"#)).await;

        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(body, error_body("NOT_FOUND", "no such session"), "{id}");
    }
}

#[tokio::test]
async fn naming_a_session_without_credentials_answers_401_first() {
    let mut account = MockAccountService::new();
    account.expect_authenticate().never();
    account.expect_rename_session().never();

    let request = json_request(
        Method::PUT,
        &url(&format!("/sessions/{OTHER_SESSION}")),
        r#"{"name": "x"}"#,
    );
    let (status, headers, _) = send(app(account), request).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&headers), Some("Bearer"));
}
