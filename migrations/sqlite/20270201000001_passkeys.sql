-- Passkeys (issue 29); as on PostgreSQL. SQLite cannot change a CHECK
-- constraint in place: the table is rebuilt with the new kind and columns,
-- its rows copied over (nothing else refers to it).
CREATE TABLE mfa_factors_new (
    id            BLOB PRIMARY KEY NOT NULL,
    uid           BLOB NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('totp', 'webauthn')),
    name          TEXT,
    secret        BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    confirmed_at  INTEGER,
    last_used_at  INTEGER,
    last_step     INTEGER,
    credential    TEXT,
    credential_id TEXT
);
INSERT INTO mfa_factors_new
    (id, uid, kind, name, secret, created_at, confirmed_at, last_used_at, last_step)
    SELECT id, uid, kind, name, secret, created_at, confirmed_at, last_used_at, last_step
    FROM mfa_factors;
DROP TABLE mfa_factors;
ALTER TABLE mfa_factors_new RENAME TO mfa_factors;
CREATE INDEX mfa_factors_uid ON mfa_factors (uid);
CREATE UNIQUE INDEX mfa_factors_credential_id ON mfa_factors (credential_id);
