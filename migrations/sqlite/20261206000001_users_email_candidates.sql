-- Emails are stored in a normal form (src/model/user.rs, `Email`). Rows from
-- before it are brought to it by a pass at every start-up
-- (src/repository/email_pass.rs), which reads only the rows that may differ
-- from their normal form: those with an upper-case ASCII letter or any
-- character outside `!`..`~`. This partial index holds exactly those rows, so
-- the pass costs what they cost, not what the table does. The predicate must
-- stay word for word the pass's filter (GLOB: case-sensitive, code points).
CREATE INDEX users_email_candidates ON users (uid)
    WHERE email GLOB '*[^!-~]*' OR email GLOB '*[A-Z]*';
