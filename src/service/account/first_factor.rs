//! What makes a factor count, whatever its kind (an authenticator's first
//! code, a passkey's registration): for the account's first factor the
//! other sessions end around it and recovery codes are made.

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::{AccountServiceImpl, Notice};
use crate::error::AppResult;
use crate::model::{Assurance, Factor, FactorConfirmed, FactorKind, IdClaims};
use crate::verifier::AAL2;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A factor that now counts: what the caller gets, and whether it was the
/// account's first.
pub(super) struct FactorAdded {
    pub(super) first: bool,
    pub(super) confirmed: FactorConfirmed,
}

impl FactorAdded {
    pub(super) fn notice(&self, kind: FactorKind) -> Notice<'static> {
        Notice::FactorAdded {
            kind,
            first: self.first,
        }
    }
}

impl AccountServiceImpl {
    /// Around `confirm`, the store step that makes the factor `id` count
    /// (`None` when it does not). For the account's first factor: every
    /// session but the caller's was started without it, and ends before the
    /// factor counts (a store outage then refuses it rather than leave them
    /// alive); the caller's, which proved it, is raised to aal2 (`amr`);
    /// then the sweep again, the other pending enrolments go, and recovery
    /// codes are made.
    pub(super) async fn factor_counts(
        &self,
        caller: &IdClaims,
        amr: Vec<String>,
        factors: &[Factor],
        id: Uuid,
        confirm: impl std::future::Future<Output = AppResult<bool>>,
    ) -> AppResult<Option<FactorAdded>> {
        let uid = caller.sub;
        let first = !factors.iter().any(|f| f.confirmed_at.is_some());
        let sid = caller.sid.as_deref().and_then(|s| Uuid::parse_str(s).ok());
        let mut sessions_ended = 0;
        if first {
            sessions_ended = match sid {
                Some(sid) => {
                    let assurance = Assurance {
                        acr: AAL2.to_owned(),
                        amr,
                    };
                    self.tokens.raise_session(uid, sid, &assurance).await?;
                    self.tokens.end_other_sessions(uid, sid).await?
                }
                // A token from before sessions names none to keep.
                None => self.tokens.revoke_all(uid).await?,
            };
        }
        if !confirm.await? {
            return Ok(None);
        }
        if !first {
            return Ok(Some(FactorAdded {
                first,
                confirmed: FactorConfirmed {
                    recovery_codes: None,
                    sessions_ended,
                },
            }));
        }
        // Again now that the factor counts: a sign-in that read "no factor"
        // just before may have started a session since the first sweep (one
        // that starts later sees the factor and ends its own).
        sessions_ended += match sid {
            Some(sid) => self.tokens.end_other_sessions(uid, sid).await?,
            None => 0,
        };
        // Other enrolments started before this one stop here.
        for other in factors
            .iter()
            .filter(|f| f.confirmed_at.is_none() && f.id != id)
        {
            self.mfa.factors.delete_factor(uid, other.id).await?;
        }
        let codes = self.replace_recovery_codes(uid, now_secs()).await?;
        Ok(Some(FactorAdded {
            first,
            confirmed: FactorConfirmed {
                recovery_codes: Some(codes),
                sessions_ended,
            },
        }))
    }
}
