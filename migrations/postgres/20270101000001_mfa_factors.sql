-- Second factors (issue 27).
--
-- `mfa_factors`: a user's authenticator factors. `secret` is the shared
-- secret encrypted with the data key (AES-256-GCM: nonce, ciphertext, tag;
-- the factor's id is the associated data), never the secret itself. A row
-- with `confirmed_at` NULL is pending: enrolment started, no code shown yet;
-- it is ignored (and swept) after MFA_PENDING_EXP. `last_step` is the last
-- TOTP step used: a code is accepted only for a later step, by a conditional
-- UPDATE, so a code works once even across replicas. Times are Unix seconds.
CREATE TABLE mfa_factors (
    id           UUID PRIMARY KEY,
    uid          UUID NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('totp')),
    name         TEXT,
    secret       BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_used_at BIGINT,
    last_step    BIGINT
);

CREATE INDEX mfa_factors_uid ON mfa_factors (uid);

-- `recovery_codes`: the user's current set, as SHA-256 hex of the canonical
-- code (80 random bits each: a fast hash suffices). A code is redeemed by
-- DELETE … RETURNING, so it works once; a new set replaces the old one.
CREATE TABLE recovery_codes (
    uid        UUID NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    digest     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (uid, digest)
);
