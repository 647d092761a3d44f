//! Sessions: what a sign-in starts and rotations keep, and the one store step
//! that decides a refresh.
//!
//! A session lives in the token store, never anywhere else: each whitelist
//! entry `<uid>:<jti>` records its session, and a per-user index
//! (`<uid>:sessions`) lists the user's sessions with their current and previous
//! refresh token, so listing, caps and scoped sign-out cost what the user's own
//! sessions cost. Both keys start with `<uid>:`, so sign-out everywhere (SCAN
//! `<uid>:*`) still removes everything. Times are Unix seconds.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TokenPair;

/// Who is calling, as recorded with a session; its address is also what
/// sign-in and sign-up limits count per source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The `User-Agent` header, truncated; empty when absent.
    pub user_agent: String,
    /// The client's address: the connection's peer, or behind a trusted
    /// proxy the address it forwarded (`TRUSTED_PROXIES`); empty when unknown.
    pub ip: String,
}

impl ClientInfo {
    /// Longest user agent kept, in bytes (cut at a character boundary).
    pub const MAX_USER_AGENT_BYTES: usize = 256;

    pub fn new(user_agent: &str, ip: &str) -> Self {
        let mut end = user_agent.len().min(Self::MAX_USER_AGENT_BYTES);
        while !user_agent.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            user_agent: user_agent[..end].to_owned(),
            ip: ip.to_owned(),
        }
    }
}

/// A session as the session list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: Uuid,
    /// When the session started (the sign-in).
    pub created_at: u64,
    /// When its refresh token was last rotated (or the sign-in, if never).
    pub last_used_at: u64,
    pub user_agent: String,
    pub ip: String,
    /// The name its user gave it (`PUT /sessions/{id}`), if any.
    pub name: Option<String>,
}

/// A session's name, as its user gives it (`PUT /sessions/{id}`): trimmed,
/// 1 to [`SessionName::MAX_CHARS`] characters, no control characters. Stored
/// with the session in the token store; a rotation keeps it, and it ends
/// with the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionName(String);

impl SessionName {
    /// Longest accepted name, in characters (after trimming).
    pub const MAX_CHARS: usize = 64;

    /// Validates a name; the error is a message for the client.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        // Bounds the count before it is made (a character is at most four bytes).
        let too_long =
            trimmed.len() > 4 * Self::MAX_CHARS || trimmed.chars().count() > Self::MAX_CHARS;
        if trimmed.is_empty() || too_long {
            return Err(format!(
                "name must be 1 to {} characters (null clears it)",
                Self::MAX_CHARS
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("name must not contain control characters".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A new session, as [`crate::model::TokenRepository::start_session`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    pub sid: Uuid,
    /// The first refresh token's id: the whitelist entry `<uid>:<jti>`.
    pub jti: Uuid,
    /// When that token expires (its entry's TTL runs to it).
    pub exp: u64,
    /// Now: the session's `created_at` and `last_used_at`.
    pub now: u64,
    /// The session's absolute end (start + `SESSION_MAX_AGE`).
    pub ends_at: u64,
    pub client: ClientInfo,
    /// After this session is added, the least recently used sessions beyond
    /// this many are ended (`MAX_SESSIONS_PER_USER`).
    pub max_sessions: u32,
    /// Fingerprint of the password hash the user authenticated against: a
    /// sign-in that read the hash before a password change must not start a
    /// session after it (see [`CredentialChange`]).
    pub credential: String,
}

/// What ends the other sessions of a user besides ending them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialChange {
    /// The new password hash's fingerprint: for [`CREDENTIAL_GUARD_SECS`],
    /// a session start carrying another fingerprint (a sign-in that read the
    /// old hash) is refused.
    pub credential: String,
}

/// How long a password change keeps refusing sessions authenticated with the
/// previous password: longer than any request can be in flight
/// (`HANDLER_TIMEOUT` is at most an hour).
pub const CREDENTIAL_GUARD_SECS: u64 = 3_600;

/// How long ending the other sessions keeps refusing refresh tokens from
/// before sessions (which no index lists): longer than any of them lives
/// (`REFRESH_TOKEN_EXP` is at most a year).
pub const LEGACY_GUARD_SECS: u64 = 31_536_000;

/// One refresh, decided by [`crate::model::TokenRepository::refresh`] in one
/// atomic store step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshStep {
    pub sid: Uuid,
    /// The presented refresh token's id.
    pub jti: Uuid,
    /// The successor's id, whitelisted if the step rotates.
    pub new_jti: Uuid,
    /// When the successor expires.
    pub new_exp: u64,
    pub now: u64,
    /// `REFRESH_REUSE_GRACE` in seconds (0: no grace window).
    pub grace_secs: u64,
    /// The successor pair, encrypted with a key only the presented token
    /// yields; stored for the grace window so that a concurrent refresh with
    /// the same token gets the same pair.
    pub sealed_successor: Vec<u8>,
    pub client: ClientInfo,
}

/// What the store decided about a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The presented token was the session's current one: its entry is taken
    /// and the successor whitelisted, the sealed successor kept for the grace
    /// window.
    Rotated,
    /// The presented token is the session's previous one, rotated less than
    /// the grace window ago, and its successor is still whitelisted: here is
    /// the sealed successor that rotation stored. Nothing changed.
    GraceReplay(Vec<u8>),
    /// The session is live but the token is neither its current one nor its
    /// predecessor within the grace window: treated as theft, the whole
    /// session (its current token too) has been ended.
    Reused,
    /// The session does not exist (never, or ended: signed out, evicted,
    /// revoked), or a sign-out is sweeping the user's keys.
    Unknown,
    /// The session has passed its absolute end; it has been ended.
    Expired,
}

/// Which sessions `POST /signout` ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignOutScope {
    /// Every session (and every other key of the user): the default.
    #[default]
    Global,
    /// Only the session of the presented ID token.
    Local,
    /// Every session but the one of the presented ID token.
    Others,
}

/// What a refresh came to, as the token service tells the use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// A new pair; the presented token no longer works.
    Rotated(TokenPair),
    /// The pair the first rotation of the presented token issued (a
    /// concurrent or retried refresh within the grace window).
    Replayed(TokenPair),
    /// The token was already rotated: the session has been ended.
    Reused,
    /// The session is over (signed out, evicted, revoked, expired).
    Ended,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_name_is_trimmed_and_counted_in_characters() {
        assert_eq!(
            SessionName::parse("  work laptop \t\n").unwrap().as_str(),
            "work laptop"
        );
        let longest = "é".repeat(63) + "📱";
        assert_eq!(SessionName::parse(&longest).unwrap().into_string(), longest);
        assert_eq!(SessionName::parse("x").unwrap().as_str(), "x");
    }

    #[test]
    fn empty_too_long_and_control_characters_are_refused() {
        for raw in ["", "   ", "\t\n", &"x".repeat(65), &"é".repeat(65)] {
            assert_eq!(
                SessionName::parse(raw),
                Err("name must be 1 to 64 characters (null clears it)".into()),
                "{raw:?}"
            );
        }
        for raw in [
            "work\nlaptop",
            "a\u{7}b",
            "\u{0}",
            "x\u{1b}[31m",
            "a\u{85}b",
        ] {
            assert_eq!(
                SessionName::parse(raw),
                Err("name must not contain control characters".into()),
                "{raw:?}"
            );
        }
    }
}
