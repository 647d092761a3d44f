//! Second factors (issue 27): authenticator codes and recovery codes.

pub mod passkey;
pub mod recovery;
pub mod totp;
