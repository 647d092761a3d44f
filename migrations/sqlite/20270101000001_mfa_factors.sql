-- Second factors (issue 27); as on PostgreSQL.
--
-- `mfa_factors`: a user's authenticator factors. `secret` is the shared
-- secret encrypted with the data key (AES-256-GCM: nonce, ciphertext, tag;
-- the factor's id is the associated data), never the secret itself. A row
-- with `confirmed_at` NULL is pending: enrolment started, no code shown yet;
-- it is ignored (and swept) after MFA_PENDING_EXP. `last_step` is the last
-- TOTP step used: a code is accepted only for a later step, by a conditional
-- UPDATE, so a code works once. Times are Unix seconds.
CREATE TABLE mfa_factors (
    id           BLOB PRIMARY KEY NOT NULL,
    uid          BLOB NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('totp')),
    name         TEXT,
    secret       BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    last_used_at INTEGER,
    last_step    INTEGER
);

CREATE INDEX mfa_factors_uid ON mfa_factors (uid);

-- `recovery_codes`: the user's current set, as SHA-256 hex of the canonical
-- code. A code is redeemed by DELETE … RETURNING, so it works once; a new set
-- replaces the old one.
CREATE TABLE recovery_codes (
    uid        BLOB NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    digest     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (uid, digest)
);
