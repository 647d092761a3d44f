//! Integration tests: the real server on port 0, real PostgreSQL and Redis.

mod browser;
mod client_cache;
mod clients;
mod cluster;
mod connection_caps;
mod connections;
mod database;
mod deletion;
mod email_confirmation;
mod emails;
mod embedded;
mod errors;
mod flood;
mod guess_limits;
mod helpers;
mod keys;
mod lifecycle;
mod limits;
mod mail;
mod mfa;
mod mfa_reset;
mod outage;
mod pages;
mod passkey_sign_in;
mod passkeys;
mod profile;
#[path = "../common/raw_http.rs"]
mod raw_http;
mod reauth;
#[path = "../common/redis_cluster.rs"]
mod redis_cluster;
mod reset;
mod security_mail;
mod session_list;
mod session_names;
mod sessions;
mod signout_scopes;
mod smtp_sink_selftest;
// The test SMTP server; not every item is used here.
#[allow(dead_code)]
#[path = "../common/smtp_sink.rs"]
mod smtp_sink;
// Shared with the benchmark; not every item is used here.
#[allow(dead_code)]
#[path = "../common/stores.rs"]
mod stores;
mod tokens;
mod verification;
