-- EMAIL_CONFIRMATION=required (docs/configuration.md): accounts that must
-- confirm their address before they may sign in.
--
-- `must_verify`: set at sign-up while the mode is `required`; rows from
-- before (and every sign-up in `optional` mode) keep FALSE, so switching the
-- mode on locks nobody out. Such an account signs in only once
-- `email_verified` is TRUE.
--
-- `pending_email`: an email change of a `must_verify` account waits here
-- until the link mailed to the new address is opened; `email` stays the
-- verified address it signs in with. Not unique: the unique index on
-- lower(email) decides when the change is confirmed (a link to an address
-- another account took meanwhile fails).
ALTER TABLE users ADD COLUMN must_verify BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN pending_email TEXT;
