//! The JSON body extractor, through `POST /signup` and `POST /signin`: a body
//! it refuses never reaches the use case, and every refusal is in the JSON
//! shape: 415 without a JSON content type, 413 over the limit, 400 for
//! anything but one JSON object, 400 with `invalidArgs` for a field of the
//! wrong type.

use super::*;

/// Use cases a refused body must not reach.
fn unreachable_sign_up() -> MockAccountService {
    let mut account = MockAccountService::new();
    account.expect_sign_up().never();
    account
}

fn signup_with_body(body: &'static str) -> Request<Body> {
    json_request(Method::POST, &url("/signup"), body)
}

#[tokio::test]
async fn a_body_without_a_json_content_type_answers_415_unsupported_media_type() {
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = Request::builder().method(Method::POST).uri(url("/signup"));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Body::from(
                json!({"email": "alice@example.com", "password": "correct horse"}).to_string(),
            ))
            .expect("request");

        let (status, headers, body) = send(app(unreachable_sign_up()), request).await;

        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_json_content_type(&headers);
        assert_eq!(
            body,
            error_body(
                "UNSUPPORTED_MEDIA_TYPE",
                "expected a JSON body with Content-Type: application/json"
            ),
            "{content_type:?}"
        );
    }
}

#[tokio::test]
async fn a_json_content_type_in_any_letter_case_and_with_parameters_is_accepted() {
    let mut account = MockAccountService::new();
    account
        .expect_sign_in()
        .times(1)
        .returning(|_, _, _| Ok(crate::model::SignIn::Tokens(pair())));

    let request = Request::builder()
        .method(Method::POST)
        .uri(url("/signin"))
        .header(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")
        .body(Body::from(
            json!({"email": "alice@example.com", "password": "correct horse"}).to_string(),
        ))
        .expect("request");
    let (status, _, body) = send(app(account), request).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, pair_json());
}

#[tokio::test]
async fn malformed_json_answers_400_bad_request() {
    let (status, _, body) = send(
        app(unreachable_sign_up()),
        signup_with_body(r#"{"email": "alice@example.com", "#),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, error_body("BAD_REQUEST", "malformed JSON body"));
}

#[tokio::test]
async fn trailing_data_after_the_json_object_answers_400_bad_request() {
    let (status, _, body) = send(
        app(unreachable_sign_up()),
        signup_with_body(r#"{"email": "alice@example.com", "password": "correct horse"} {}"#),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, error_body("BAD_REQUEST", "malformed JSON body"));
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_reported_in_invalid_args_without_parser_positions() {
    let (status, _, body) = send(
        app(unreachable_sign_up()),
        post_json(
            &url("/signup"),
            json!({"email": 42, "password": "correct horse"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        invalid_args_body(&[("email", "invalid type: integer `42`, expected a string")])
    );
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_answers_400_bad_request() {
    for body in [r#""alice@example.com""#, "42", "null", ""] {
        let (status, _, answer) = send(app(unreachable_sign_up()), signup_with_body(body)).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(
            answer,
            error_body("BAD_REQUEST", "request body must be a JSON object"),
            "{body:?}"
        );
    }
}

/// Serde's derived `Deserialize` would also read a struct from a JSON array,
/// field by field in declaration order: `JsonBody` must refuse `[email, password]`.
#[tokio::test]
async fn a_json_array_body_is_refused_rather_than_read_as_positional_fields() {
    let (status, _, body) = send(
        app(unreachable_sign_up()),
        post_json(
            &url("/signup"),
            json!(["alice@example.com", "correct horse"]),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        error_body("BAD_REQUEST", "request body must be a JSON object")
    );
}

#[tokio::test]
async fn a_body_over_the_limit_answers_413_payload_too_large() {
    let (status, headers, body) = send(
        app(unreachable_sign_up()),
        post_json(
            &url("/signup"),
            json!({"email": "alice@example.com", "password": "x".repeat(2 * MAX_BODY_BYTES)}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_json_content_type(&headers);
    assert_eq!(
        body,
        error_body("PAYLOAD_TOO_LARGE", "request body is too large")
    );
}
