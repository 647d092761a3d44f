use super::super::key_source::redact_url;
use super::super::*;
use super::fetching::JwksServer;

// ---- credentials in the JWKS URL -------------------------------------------

#[test]
fn credentials_in_a_url_are_redacted() {
    let cases = [
        (
            "https://user:pa55@keys.example.com/.well-known/jwks.json",
            "https://***@keys.example.com/.well-known/jwks.json",
        ),
        (
            "http://token@127.0.0.1:8080/jwks?x=1",
            "http://***@127.0.0.1:8080/jwks?x=1",
        ),
        (
            "https://:pa55@keys.example.com/jwks",
            "https://***@keys.example.com/jwks",
        ),
        (
            "https://keys.example.com/.well-known/jwks.json",
            "https://keys.example.com/.well-known/jwks.json",
        ),
        (
            "https://keys.example.com/users/@me/jwks",
            "https://keys.example.com/users/@me/jwks",
        ),
    ];
    for (url, redacted) in cases {
        assert_eq!(
            redact_url(&reqwest::Url::parse(url).unwrap()),
            redacted,
            "{url}"
        );
    }
}

#[test]
fn an_unparsable_url_with_credentials_is_not_repeated_in_the_error() {
    let err = Verifier::from_jwks_url(
        "https://user:pa55@keys example.com/jwks",
        VerifierConfig::default(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("JWKS URL: not a URL"), "{err}");
    assert!(!err.to_string().contains("pa55"), "{err}");
}

#[tokio::test]
async fn the_jwks_url_credentials_show_neither_in_debug_output_nor_in_fetch_errors() {
    let server = JwksServer::start(&[0]).await;
    let url = server.url.replace("http://", "http://jwks-user:s3cret-pw@");
    let verifier = Verifier::from_jwks_url(&url, VerifierConfig::default()).unwrap();
    // (The log lines use the same redacted URL; tests/domain reads them.)
    verifier.refresh_keys().await.unwrap();
    server.set_down(true);
    let err = verifier.refresh_keys().await.unwrap_err().to_string();
    let debug = format!("{verifier:?}");
    for text in [&debug, &err] {
        assert!(!text.contains("s3cret-pw"), "{text}");
        assert!(!text.contains("jwks-user"), "{text}");
        assert!(text.contains("http://***@127.0.0.1:"), "{text}");
    }
    server.stop().await;
}
