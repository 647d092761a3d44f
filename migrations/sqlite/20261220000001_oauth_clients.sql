-- Machine clients of the client-credentials grant (issue 11); as on PostgreSQL.
--
-- `client_id` is `cl_` and 22 base64url characters (never a UUID, so a
-- client can never pass for a user). The secret is never stored: only its
-- SHA-256 (`secret_hash`; 32 random bytes, so a fast hash suffices and
-- checking it costs no Argon2 run per token request). `scope` is the
-- space-separated scopes the client may ask for; `created_at` Unix seconds.
CREATE TABLE oauth_clients (
    client_id   TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    scope       TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
