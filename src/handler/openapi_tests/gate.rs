//! The sign-in gate cannot be skipped by a new route: every operation whose
//! success hands out a token pair (or the browser session's cookie) is read
//! from the document and must be in [`PAIR_ROUTES`], which names either the
//! API test that shows it refusing a user with a second factor without the
//! code, or why it needs no gate. A route added without an entry fails here.

use super::*;

/// Why an operation that issues a pair is safe.
enum Gate {
    /// The scenario of `tests/api/mfa.rs` that shows the second factor asked.
    Test(&'static str),
    /// Why no second factor is asked.
    Exempt(&'static str),
}

/// Every operation that answers with a pair or sets the session cookie.
const PAIR_ROUTES: [(&str, &str, Gate); 10] = [
    (
        "POST",
        "/signin",
        Gate::Test("the_password_alone_never_yields_tokens_and_a_code_works_once"),
    ),
    (
        "POST",
        "/signin/mfa",
        Gate::Test("the_password_alone_never_yields_tokens_and_a_code_works_once"),
    ),
    (
        "POST",
        "/browser/signin",
        Gate::Test("a_browser_signs_in_in_two_steps_too"),
    ),
    (
        "POST",
        "/browser/signin/mfa",
        Gate::Test("a_browser_signs_in_in_two_steps_too"),
    ),
    (
        "POST",
        "/signin/passkey/finish",
        Gate::Exempt("a passkey with user verification is two factors in one (aal2)"),
    ),
    (
        "POST",
        "/browser/signin/passkey/finish",
        Gate::Exempt("a passkey with user verification is two factors in one (aal2)"),
    ),
    ("POST", "/signup", Gate::Exempt("a new user has no factor")),
    (
        "POST",
        "/browser/signup",
        Gate::Exempt("a new user has no factor"),
    ),
    (
        "POST",
        "/tokens",
        Gate::Exempt("a refresh keeps its session's assurance"),
    ),
    (
        "POST",
        "/browser/tokens",
        Gate::Exempt("a refresh keeps its session's assurance"),
    ),
];

/// The schemas of a pair, of a browser sign-in, and of what either answers.
const PAIR_SCHEMAS: [&str; 3] = [
    "#/components/schemas/TokensResponse",
    "#/components/schemas/IdTokenResponse",
    "#/components/schemas/SignInResponse",
];

/// Whether a 2xx response of `operation` (raw JSON) is a pair or sets a cookie.
fn issues_a_pair(operation: &Value) -> bool {
    let Some(responses) = operation["responses"].as_object() else {
        return false;
    };
    responses
        .iter()
        .filter(|(status, _)| status.starts_with('2'))
        .any(|(_, response)| {
            let text = response.to_string();
            PAIR_SCHEMAS.iter().any(|schema| text.contains(schema))
                || response["headers"].get("Set-Cookie").is_some()
        })
}

#[tokio::test]
async fn every_operation_that_issues_a_pair_names_its_gate_test_or_its_exemption() {
    let app = app(BASE);
    let (raw, _) = served_document(&app, BASE).await;
    let mut issuing = BTreeSet::new();
    for (path, item) in raw["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if issues_a_pair(operation) {
                issuing.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let listed: BTreeSet<(String, String)> = PAIR_ROUTES
        .iter()
        .map(|(method, path, _)| ((*method).to_owned(), format!("{BASE}{path}")))
        .collect();
    assert_eq!(
        issuing, listed,
        "an operation that issues a pair must pass the sign-in gate: add it to PAIR_ROUTES \
         with its gate test (or why it needs none)"
    );

    let scenarios = include_str!("../../../tests/api/mfa.rs");
    for (method, path, gate) in &PAIR_ROUTES {
        match gate {
            Gate::Test(test) => assert!(
                scenarios.contains(&format!("async fn {test}(backend: Backend)"))
                    && scenarios.contains(&format!("    {test},")),
                "{method} {path}: no scenario {test} on every backend in tests/api/mfa.rs"
            ),
            Gate::Exempt(why) => assert!(!why.is_empty()),
        }
    }
}
