//! The start-up pass that brings stored emails to their normal form
//! ([`Email`](crate::model::Email)): rows written before the normal form
//! existed (NFD, fullwidth, a Unicode domain) are updated, on PostgreSQL and
//! SQLite alike, in Rust (SQL can do neither width mapping nor IDNA, and
//! SQLite has no NFC).
//!
//! Only rows that may change are read: an address of printable ASCII without
//! upper-case letters is its own normal form (or has none), so the scan
//! selects rows with an upper-case ASCII letter or any character outside
//! `!`..`~` (non-ASCII, spaces, controls), through a partial index on exactly
//! that filter (migration `…_users_email_candidates`): when nothing needs
//! changing, the pass reads only the few non-ASCII addresses and writes
//! nothing.
//!
//! Where rows fold into one address, the oldest (by `created_at`, ties by
//! uid) keeps it; the others are left as stored and logged (`warn`, by uid:
//! emails are personal data). A row already holding the normal form is never
//! changed, so an older look-alike of it is left as stored too, and logged as
//! a case for an operator. Rows without a normal form (an invisible
//! character, say) are left as stored and logged. Replicas starting together
//! may run the pass at once: each update is conditional on the email read,
//! and the unique index on `lower(email)` keeps one holder per address.

use std::cmp::Ordering;

use uuid::Uuid;

use super::{PgUserRepository, SqliteUserRepository};
use crate::model::Email;

/// Rows read per query of the scan.
const BATCH: i64 = 500;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EmailPass {
    /// Rows the filter selected (see the module documentation).
    pub examined: u64,
    /// Rows updated to their normal form.
    pub normalised: u64,
    /// Rows left as stored: their normal form is another account's, or they
    /// have none.
    pub left: u64,
}

/// A row whose stored email is not its normal form.
struct Pending {
    uid: Uuid,
    stored: String,
    normal: String,
    /// A number that orders creation times (`None`: unreadable, newest).
    created: Option<f64>,
}

/// Oldest first; an unreadable creation time counts as the newest; ties by uid.
fn creation_order(a: (Option<f64>, Uuid), b: (Option<f64>, Uuid)) -> Ordering {
    let key = |t: Option<f64>| t.unwrap_or(f64::INFINITY);
    key(a.0).total_cmp(&key(b.0)).then(a.1.cmp(&b.1))
}

/// Sorts the scanned rows: those already normal are dropped, those without a
/// normal form counted and logged, the others returned oldest first.
fn classify(
    rows: Vec<(Uuid, String, Option<f64>)>,
    pass: &mut EmailPass,
    pending: &mut Vec<Pending>,
) {
    for (uid, stored, created) in rows {
        pass.examined += 1;
        match Email::parse(&stored) {
            Ok(normal) if normal.as_str() == stored => {}
            Ok(normal) => pending.push(Pending {
                uid,
                stored,
                normal: normal.into_inner(),
                created,
            }),
            Err(reason) => {
                pass.left += 1;
                tracing::warn!(%uid, %reason, "stored email has no normal form; left as stored");
            }
        }
    }
}

/// The start-up line of a pass (a debug line when it found nothing to do).
fn log_pass(pass: &EmailPass) {
    if pass.normalised > 0 || pass.left > 0 {
        tracing::info!(
            examined = pass.examined,
            normalised = pass.normalised,
            left_as_stored = pass.left,
            "stored emails brought to their normal form"
        );
    } else {
        tracing::debug!(
            examined = pass.examined,
            "stored emails are in their normal form"
        );
    }
}

/// Writes `normalise_emails` for a repository: `$created` is an SQL
/// expression ordering `created_at` as a number, `$candidates` the filter of
/// rows that may change (the predicate of the partial index, word for word).
macro_rules! email_pass {
    ($repo:ty, created = $created:literal, candidates = $candidates:literal) => {
        impl $repo {
            /// Brings stored emails to their normal form (see the module
            /// documentation); fails only when the database does.
            pub async fn normalise_emails(&self) -> Result<EmailPass, sqlx::Error> {
                let mut pass = EmailPass::default();
                let mut pending = Vec::new();
                let mut after: Option<Uuid> = None;
                loop {
                    let rows: Vec<(Uuid, String, Option<f64>)> = match after {
                        None => sqlx::query_as(concat!(
                            "SELECT uid, email, ", $created, " FROM users WHERE (",
                            $candidates, ") ORDER BY uid LIMIT $1"
                        ))
                        .bind(BATCH),
                        Some(after) => sqlx::query_as(concat!(
                            "SELECT uid, email, ", $created, " FROM users WHERE (",
                            $candidates, ") AND uid > $2 ORDER BY uid LIMIT $1"
                        ))
                        .bind(BATCH)
                        .bind(after),
                    }
                    .fetch_all(&self.pool)
                    .await?;
                    let full = rows.len() as i64 == BATCH;
                    after = rows.last().map(|row| row.0);
                    classify(rows, &mut pass, &mut pending);
                    if !full {
                        break;
                    }
                }
                pending.sort_by(|a, b| creation_order((a.created, a.uid), (b.created, b.uid)));
                for row in pending {
                    let holder: Option<(Uuid, Option<f64>)> = sqlx::query_as(concat!(
                        "SELECT uid, ", $created, " FROM users ",
                        "WHERE lower(email) = lower($1) AND uid <> $2"
                    ))
                    .bind(&row.normal)
                    .bind(row.uid)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some((holder, created)) = holder {
                        pass.left += 1;
                        if creation_order((created, holder), (row.created, row.uid)).is_lt() {
                            tracing::warn!(
                                uid = %row.uid, kept_by = %holder,
                                "stored email is a look-alike of an older account's; left as stored"
                            );
                        } else {
                            tracing::warn!(
                                uid = %row.uid, held_by = %holder,
                                "the normal form of a stored email is the address of a newer \
                                 account; both left as stored, for an operator to decide"
                            );
                        }
                        continue;
                    }
                    let updated = sqlx::query(
                        "UPDATE users SET email = $1, updated_at = CURRENT_TIMESTAMP \
                         WHERE uid = $2 AND email = $3",
                    )
                    .bind(&row.normal)
                    .bind(row.uid)
                    .bind(&row.stored)
                    .execute(&self.pool)
                    .await;
                    match updated {
                        Ok(done) if done.rows_affected() > 0 => pass.normalised += 1,
                        // Changed or removed since the scan (a details update,
                        // another replica's pass): nothing left to do here.
                        Ok(_) => {}
                        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                            pass.left += 1;
                            tracing::warn!(
                                uid = %row.uid,
                                "another account took the normal form of a stored email \
                                 meanwhile; left as stored"
                            );
                        }
                        Err(err) => return Err(err),
                    }
                }
                log_pass(&pass);
                Ok(pass)
            }
        }
    };
}

email_pass!(
    PgUserRepository,
    created = "CAST(EXTRACT(EPOCH FROM created_at) AS DOUBLE PRECISION)",
    candidates = "email ~ '[^!-~]' OR email ~ '[A-Z]'"
);

email_pass!(
    SqliteUserRepository,
    created = "julianday(created_at)",
    candidates = "email GLOB '*[^!-~]*' OR email GLOB '*[A-Z]*'"
);

#[cfg(test)]
mod tests;
