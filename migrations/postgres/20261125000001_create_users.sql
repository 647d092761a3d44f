-- Users of the account service. Emails are stored lowercased by the service;
-- the unique index on lower(email) makes uniqueness case-insensitive in the
-- database itself, so a concurrent `A@x.io` / `a@x.io` race cannot win twice.
CREATE TABLE users (
    uid        UUID PRIMARY KEY,
    email      TEXT NOT NULL,
    password   TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    image_url  TEXT NOT NULL DEFAULT '',
    website    TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
