//! The bearer extractor, on every route behind it, and `GET /me` and
//! `PUT /details`. The ID token is authenticated by the use case; the handlers
//! pass its claims on. Sign-out and sessions are in `sessions.rs`, the
//! password change and `currentPassword` in `password.rs`.

use super::*;
use crate::error::AppError;
use crate::model::{Password, UserDetails, Website};
use crate::verifier::VerifyError;

/// Every route that needs `Authorization: Bearer <ID token>`.
const PROTECTED: [(Method, &str); 6] = [
    (Method::GET, "/me"),
    (Method::POST, "/signout"),
    (Method::PUT, "/details"),
    (Method::PUT, "/password"),
    (Method::GET, "/sessions"),
    (
        Method::DELETE,
        "/sessions/00000000-0000-0000-0000-000000005e55",
    ),
];

/// Use cases none of which may be reached.
fn unreachable_use_cases() -> MockAccountService {
    let mut account = MockAccountService::new();
    account.expect_authenticate().never();
    account.expect_me().never();
    account.expect_sign_out().never();
    account.expect_update_details().never();
    account.expect_change_password().never();
    account.expect_sessions().never();
    account.expect_end_session().never();
    account
}

/// `PUT /details` with the bearer ID token and [`USER_AGENT`].
pub(super) fn put_details(body: Value) -> Request<Body> {
    with_user_agent(authorized(json_request(
        Method::PUT,
        &url("/details"),
        body.to_string(),
    )))
}

// ---------------------------------------------------------------- the bearer extractor

#[tokio::test]
async fn a_protected_route_without_an_authorization_header_answers_401_with_a_bearer_challenge() {
    for (method, path) in PROTECTED {
        let (status, headers, body) = send(
            app(unreachable_use_cases()),
            json_request(
                method.clone(),
                &url(path),
                json!({"email": "alice@example.com"}).to_string(),
            ),
        )
        .await;

        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(
            www_authenticate(&headers),
            Some("Bearer"),
            "{method} {path}"
        );
        assert_eq!(
            body,
            error_body("AUTHORIZATION", "missing Authorization: Bearer header"),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn a_non_bearer_authorization_header_answers_401_without_authenticating_anything() {
    for (method, path) in PROTECTED {
        let request = with_authorization(
            json_request(method.clone(), &url(path), "{}"),
            "Basic YWxpY2U6c2VjcmV0",
        );
        let (status, headers, body) = send(app(unreachable_use_cases()), request).await;

        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(
            www_authenticate(&headers),
            Some("Bearer"),
            "{method} {path}"
        );
        assert_eq!(
            body,
            error_body(
                "AUTHORIZATION",
                "Authorization header must be `Bearer <ID token>`"
            ),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn credentials_are_checked_before_the_body_so_a_bad_body_without_them_answers_401() {
    let request = Request::builder()
        .method(Method::PUT)
        .uri(url("/details"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("not json"))
        .expect("request");
    let (status, headers, _) = send(app(unreachable_use_cases()), request).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&headers), Some("Bearer"));
}

#[tokio::test]
async fn an_id_token_the_use_case_does_not_authenticate_answers_401_invalid_token() {
    let mut account = MockAccountService::new();
    account
        .expect_authenticate()
        .withf(|token: &str| token == ID_TOKEN)
        .times(1)
        .returning(|_| Err(AppError::from(VerifyError::Expired)));
    account.expect_me().never();

    let (status, headers, body) = send(app(account), authorized(get(&url("/me")))).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www_authenticate(&headers),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(body, error_body("AUTHORIZATION", "the token has expired"));
}

#[tokio::test]
async fn the_bearer_scheme_is_accepted_in_any_letter_case_and_the_token_is_passed_on_trimmed() {
    for authorization in [
        "bearer valid-id-token",
        "BEARER valid-id-token",
        "Bearer    valid-id-token",
    ] {
        let mut account = authenticating(&user());
        account.expect_me().times(1).returning(|_| Ok(user()));

        let request = with_authorization(get(&url("/me")), authorization);
        let (status, _, _) = send(app(account), request).await;

        assert_eq!(status, StatusCode::OK, "{authorization}");
    }
}

// ---------------------------------------------------------------- GET /me

#[tokio::test]
async fn me_answers_200_with_the_user_of_the_token_in_camel_case_with_empty_strings_for_unset_fields()
 {
    let alice = user();
    let uid = alice.uid;
    let mut account = authenticating(&alice);
    account
        .expect_me()
        .withf(move |sub: &Uuid| *sub == uid)
        .times(1)
        .returning(|_| Ok(user()));

    let (status, headers, body) = send(app(account), authorized(get(&url("/me")))).await;

    assert_eq!(status, StatusCode::OK);
    assert_json_content_type(&headers);
    assert_eq!(
        body,
        json!({"user": {
            "uid": "00000000-0000-0000-0000-000000001234",
            "email": "alice@example.com",
            "name": "",
            "imageUrl": "",
            "website": "",
            "emailVerified": false,
        }})
    );
    assert!(
        !body.to_string().contains("argon2"),
        "the password hash must never be returned"
    );
}

#[tokio::test]
async fn me_for_a_user_that_no_longer_exists_answers_404_not_found() {
    let mut account = authenticating(&user());
    account
        .expect_me()
        .times(1)
        .returning(|_| Err(AppError::NotFound("user not found".into())));

    let (status, _, body) = send(app(account), authorized(get(&url("/me")))).await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, error_body("NOT_FOUND", "user not found"));
}

// ---------------------------------------------------------------- PUT /details

#[tokio::test]
async fn details_without_an_email_report_it_as_required_and_never_reach_the_use_case() {
    let mut account = authenticating(&user());
    account.expect_update_details().never();

    let (status, _, body) = send(
        app(account),
        put_details(json!({"name": "Alice", "website": "https://alice.dev"})),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, invalid_args_body(&[("email", "email is required")]));
}

/// Control characters are refused before any field is read, by the JSON
/// body extractor, whatever the route.
#[tokio::test]
async fn details_with_a_control_character_are_refused_before_the_other_fields_are_read() {
    let mut account = authenticating(&user());
    account.expect_update_details().never();

    let (status, _, body) = send(
        app(account),
        put_details(json!({"email": "alice", "name": "a\u{7}b", "website": ""})),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, invalid_args_body(&[("name", crate::web::NOT_TEXT)]));
}

#[tokio::test]
async fn details_with_every_field_invalid_report_all_of_them_in_one_answer() {
    let mut account = authenticating(&user());
    account.expect_update_details().never();

    let (status, _, body) = send(
        app(account),
        put_details(json!({
            "email": "alice",
            "name": "a".repeat(101),
            "website": "javascript:alert(1)",
        })),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        invalid_args_body(&[
            ("email", "email must be a valid email address"),
            ("name", "name must be at most 100 characters"),
            ("website", "website must be an http:// or https:// URL"),
        ])
    );
}

#[tokio::test]
async fn valid_details_update_the_user_of_the_token_with_the_parsed_fields_and_answer_200_with_it()
{
    let alice = user();
    let mut account = authenticating(&alice);
    account
        .expect_update_details()
        .withf(
            move |caller: &IdClaims,
                  details: &UserDetails,
                  current: &Option<Password>,
                  _: &ClientInfo| {
                are_claims_of(caller, &alice)
                    && details.email.as_str() == "alice@new.example"
                    && details.name == "Alice Liddell"
                    && details.website == Website::parse("https://alice.dev").expect("website")
                    && current.is_none()
            },
        )
        .times(1)
        .returning(|caller, details, _, _| {
            Ok(User {
                email: details.email.into_inner(),
                name: details.name,
                website: details.website.as_str().to_owned(),
                uid: caller.sub,
                ..user()
            })
        });

    let (status, _, body) = send(
        app(account),
        put_details(json!({
            "email": "Alice@New.Example",
            "name": "  Alice Liddell ",
            "website": "https://alice.dev",
        })),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"user": {
            "uid": "00000000-0000-0000-0000-000000001234",
            "email": "alice@new.example",
            "name": "Alice Liddell",
            "imageUrl": "",
            "website": "https://alice.dev",
            "emailVerified": false,
        }})
    );
}

#[tokio::test]
async fn details_with_an_email_taken_by_another_user_answer_409_conflict() {
    let mut account = authenticating(&user());
    account
        .expect_update_details()
        .times(1)
        .returning(|_, _, _, _| Err(AppError::Conflict("email already registered".into())));

    let (status, _, body) = send(
        app(account),
        put_details(json!({"email": "bob@example.com"})),
    )
    .await;

    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body, error_body("CONFLICT", "email already registered"));
}
