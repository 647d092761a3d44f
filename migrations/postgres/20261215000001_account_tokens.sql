-- Email verification and password reset (issue 10).
--
-- `email_verified`: whether the person proved they read mail at `email` (a
-- verification link or a password reset); existing rows are not verified,
-- and an email change clears it (src/repository/sql_user.rs).
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- The single-use tokens of verification and reset links, never stored
-- themselves: `token_hash` is the SHA-256 of the token (32 random bytes, so a
-- fast hash suffices). `email` is the address the token was sent to, what
-- redeeming it proves; `expires_at` and `created_at` are Unix seconds, the
-- service's clock. One token per user and purpose: a newer one replaces the
-- older (ON CONFLICT on the unique index). Redeeming is one
-- DELETE … RETURNING, so a token works once; tokens go with their user.
CREATE TABLE account_tokens (
    token_hash BYTEA PRIMARY KEY,
    uid        UUID NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    email      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX account_tokens_uid_purpose ON account_tokens (uid, purpose);
