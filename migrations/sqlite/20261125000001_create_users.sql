-- Users of the account service (embedded SQLite store). Emails are stored
-- lowercased by the service; the unique index on lower(email) enforces
-- case-insensitive uniqueness in the database itself, as on PostgreSQL.
CREATE TABLE users (
    uid        BLOB PRIMARY KEY NOT NULL,
    email      TEXT NOT NULL,
    password   TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    image_url  TEXT NOT NULL DEFAULT '',
    website    TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
