-- Passkeys (issue 29): a factor of kind `webauthn` keeps its credential as
-- webauthn-rs serialises it (public key, signature counter, backup flags; not
-- secret: `secret` is empty for it) and its credential id, base64url, unique
-- among all passkeys (a password-free sign-in finds the factor by it).
ALTER TABLE mfa_factors DROP CONSTRAINT mfa_factors_kind_check;
ALTER TABLE mfa_factors
    ADD CONSTRAINT mfa_factors_kind_check CHECK (kind IN ('totp', 'webauthn'));
ALTER TABLE mfa_factors ADD COLUMN credential TEXT;
ALTER TABLE mfa_factors ADD COLUMN credential_id TEXT;
CREATE UNIQUE INDEX mfa_factors_credential_id ON mfa_factors (credential_id);
