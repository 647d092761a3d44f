//! End to end with real processes: the `account` binary issues ID tokens, the
//! `todo-service` binary (the example domain service) accepts them by
//! verifying offline against the account service's JWKS, and an independent
//! JWT implementation verifies them too.

mod agreement;
mod helpers;
mod interop;
mod todos;
