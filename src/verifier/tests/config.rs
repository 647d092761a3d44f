//! Building a verifier: its settings and the variables it reads.

use std::time::Duration;

use super::super::test_support::key;
use super::super::*;
use crate::jwks::JwkSet;

#[test]
fn a_leeway_over_five_seconds_is_a_configuration_error() {
    let mut config = VerifierConfig::default();
    config.rules.leeway = Duration::from_secs(6);
    let err = Verifier::from_jwks(key(0).jwks(), config).unwrap_err();
    assert!(err.to_string().contains("leeway"), "{err}");
}

#[test]
fn a_key_set_without_an_rs256_signing_key_is_a_configuration_error() {
    let mut jwk = key(0).jwk.clone();
    jwk.use_ = Some("enc".into());
    let err =
        Verifier::from_jwks(JwkSet { keys: vec![jwk] }, VerifierConfig::default()).unwrap_err();
    assert!(err.to_string().contains("RS256"), "{err}");
}

#[test]
fn configuration_from_the_environment_names_the_bad_variable() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[], "JWKS_URL"),
        (&[("JWKS_URL", "not a url")], "JWKS_URL"),
        (&[("JWKS_URL", "ftp://x/jwks.json")], "JWKS_URL"),
        (
            &[
                ("JWKS_URL", "http://127.0.0.1:1/jwks"),
                ("JWKS_REFETCH_INTERVAL", "soon"),
            ],
            "JWKS_REFETCH_INTERVAL",
        ),
        (
            &[
                ("JWKS_URL", "http://127.0.0.1:1/jwks"),
                ("ID_TOKEN_EXP", "0"),
            ],
            "ID_TOKEN_EXP",
        ),
        (
            &[
                ("JWKS_URL", "http://127.0.0.1:1/jwks"),
                ("ID_TOKEN_EXP", "86401"),
            ],
            "ID_TOKEN_EXP",
        ),
        (
            &[
                ("JWKS_URL", "http://127.0.0.1:1/jwks"),
                ("ID_TOKEN_EXP", "15m"),
            ],
            "ID_TOKEN_EXP",
        ),
    ];
    for (pairs, variable) in cases {
        let err = Verifier::from_vars(vars(pairs)).unwrap_err();
        assert!(err.to_string().starts_with(variable), "{err}");
    }
    let verifier = Verifier::from_vars(vars(&[
        ("JWKS_URL", "http://127.0.0.1:1/.well-known/jwks.json"),
        ("JWKS_REFETCH_INTERVAL", "7"),
    ]))
    .unwrap();
    assert_eq!(verifier.config().rules.issuer, "account");
    assert_eq!(verifier.config().rules.audience, "domain-services");
    assert_eq!(verifier.config().rules.leeway, Duration::from_secs(5));
    assert_eq!(
        verifier.config().rules.max_lifetime,
        Duration::from_secs(900)
    );
    assert_eq!(verifier.config().refetch_interval, Duration::from_secs(7));
}

#[test]
fn blank_variables_count_as_unset_as_in_the_account_service() {
    let pairs = [
        ("JWKS_URL", "http://127.0.0.1:1/.well-known/jwks.json"),
        ("ID_TOKEN_ISSUER", " "),
        ("ID_TOKEN_AUDIENCE", ""),
        ("ID_TOKEN_EXP", "  "),
        ("JWKS_REFETCH_INTERVAL", ""),
    ];
    let verifier = Verifier::from_vars(|name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    assert_eq!(verifier.config(), &VerifierConfig::default());
}

#[test]
fn id_token_exp_sets_the_longest_lifetime_accepted() {
    let verifier = Verifier::from_vars(|name: &str| match name {
        "JWKS_URL" => Some("http://127.0.0.1:1/.well-known/jwks.json".into()),
        "ID_TOKEN_EXP" => Some("3600".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        verifier.config().rules.max_lifetime,
        Duration::from_secs(3600)
    );
}
