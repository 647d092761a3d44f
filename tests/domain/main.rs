//! End to end with real processes: the `account` binary issues ID tokens, the
//! `todo-service` binary (the example domain service) accepts them by
//! verifying offline against the account service's JWKS, and an independent
//! JWT implementation verifies them too. The embedded default survives
//! `kill -9` with every answered change (`crash.rs`).

mod agreement;
mod clients;
mod crash;
mod helpers;
mod hostile_input;
mod interop;
mod memory;
mod open_files;
#[path = "../common/process.rs"]
mod process;
// Shared with the api tests; not every item is used here.
#[allow(dead_code)]
#[path = "../common/raw_http.rs"]
mod raw_http;
#[allow(dead_code)]
#[path = "../common/stores.rs"]
mod stores;
mod todos;
