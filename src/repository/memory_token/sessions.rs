//! The session steps of the store contract (issue 8),
//! each one function on the [`Keyspace`], run under the store's one lock: the
//! same steps, in the same order, as the Redis store's Lua scripts.
//!
//! Two clocks: the caller's `now` (Unix seconds) decides everything about
//! sessions (`exp`, `ends`, the grace window), and `at` (the store's
//! monotonic clock) keeps TTLs, exactly as Redis keeps them by its own clock.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::keyspace::{
    Keyspace, SessionEntry, Value, credential_key, grace_key, index_key, nolegacy_key, token_key,
};
use crate::model::{
    Assurance, CREDENTIAL_GUARD_SECS, CredentialChange, LEGACY_GUARD_SECS, RefreshOutcome,
    RefreshStep, SessionInfo, SessionName, SessionStart,
};

/// A token's TTL: until its `exp`, at least a second (`EX` refuses 0).
fn ttl_until(exp: u64, now: u64) -> Duration {
    Duration::from_secs(exp.saturating_sub(now).max(1))
}

/// The session to evict: the smallest `last`, then the smallest `created`
/// (then the smallest sid, to be deterministic), never `new`.
fn least_recently_used(index: &BTreeMap<Uuid, SessionEntry>, new: Uuid) -> Option<Uuid> {
    index
        .iter()
        .filter(|(sid, _)| **sid != new)
        .min_by_key(|(sid, e)| (e.last, e.created, **sid))
        .map(|(sid, _)| *sid)
}

impl Keyspace {
    /// Ends a session: its current token, its grace successor, its index
    /// entry. Whether the index had it.
    pub(super) fn end_session(&mut self, uid: Uuid, sid: Uuid, at: Instant) -> bool {
        let Some(entry) = self.hdel(uid, sid, at) else {
            return false;
        };
        self.del(&token_key(uid, entry.jti), at);
        if let Some(prev) = entry.prev {
            self.del(&grace_key(uid, prev), at);
        }
        true
    }

    /// Ends every session whose token or absolute lifetime is over at `now`.
    fn prune(&mut self, uid: Uuid, now: u64, at: Instant) {
        let over: Vec<Uuid> = self
            .index(uid, at)
            .into_iter()
            .flatten()
            .filter(|(_, e)| e.exp <= now || e.ends <= now)
            .map(|(sid, _)| *sid)
            .collect();
        for sid in over {
            self.end_session(uid, sid, at);
        }
    }

    /// Whitelists the first token, indexes the session, prunes, then ends the
    /// least recently used sessions beyond the cap (never the new one).
    /// Whether a session authenticated with `credential` may start: not
    /// while a password change guards another fingerprint.
    fn credential_ok(&self, uid: Uuid, credential: &str, at: Instant) -> bool {
        match self.get(&credential_key(uid), at) {
            Some(Value::Guard(guard)) => guard == credential,
            _ => true,
        }
    }

    /// [`Self::start_session`] unless the credential guard refuses it.
    pub(super) fn start_guarded_session(
        &mut self,
        uid: Uuid,
        start: &SessionStart,
        at: Instant,
    ) -> bool {
        if !self.credential_ok(uid, &start.credential, at) {
            return false;
        }
        self.start_session(uid, start, at);
        true
    }

    fn start_session(&mut self, uid: Uuid, start: &SessionStart, at: Instant) {
        let expires = at + ttl_until(start.exp, start.now);
        let entry = SessionEntry {
            jti: start.jti,
            exp: start.exp,
            prev: None,
            rotated: None,
            created: start.now,
            last: start.now,
            ends: start.ends_at,
            ua: start.client.user_agent.clone(),
            ip: start.client.ip.clone(),
            name: None,
            acr: None,
            amr: Vec::new(),
        };
        let record = Value::token_of(start.sid, &entry);
        self.set(token_key(uid, start.jti), record, expires);
        self.hset(uid, start.sid, entry, expires, at);
        self.prune(uid, start.now, at);
        let cap = usize::try_from(start.max_sessions).unwrap_or(usize::MAX);
        while let Some(victim) = self
            .index(uid, at)
            .filter(|index| index.len() > cap)
            .and_then(|index| least_recently_used(index, start.sid))
        {
            self.end_session(uid, victim, at);
        }
    }

    /// Decides a refresh. The Redis script first refuses while the user's
    /// sign-out marker exists; here a sign-out
    /// ([`Keyspace::remove_prefix`]) runs under the same lock as this step,
    /// so no refresh ever sees one in progress: it runs wholly before (and
    /// what it writes is swept) or wholly after (and finds no session).
    pub(super) fn refresh(&mut self, uid: Uuid, step: &RefreshStep, at: Instant) -> RefreshOutcome {
        let Some(entry) = self
            .index(uid, at)
            .and_then(|index| index.get(&step.sid))
            .cloned()
        else {
            return RefreshOutcome::Unknown;
        };
        if entry.ends <= step.now || entry.exp <= step.now {
            self.end_session(uid, step.sid, at);
            return RefreshOutcome::Expired;
        }
        if entry.jti == step.jti {
            if !self.del(&token_key(uid, step.jti), at) {
                self.end_session(uid, step.sid, at);
                return RefreshOutcome::Unknown;
            }
            let expires = at + ttl_until(step.new_exp, step.now);
            let rotated = SessionEntry {
                jti: step.new_jti,
                exp: step.new_exp,
                prev: Some(step.jti),
                rotated: Some(step.now),
                last: step.now,
                ua: step.client.user_agent.clone(),
                ip: step.client.ip.clone(),
                ..entry.clone()
            };
            let record = Value::token_of(step.sid, &rotated);
            self.set(token_key(uid, step.new_jti), record, expires);
            self.hset(uid, step.sid, rotated, expires, at);
            if step.grace_secs > 0 {
                let sealed = Value::Grace(step.sealed_successor.clone());
                let until = at + Duration::from_secs(step.grace_secs);
                self.set(grace_key(uid, step.jti), sealed, until);
            }
            if let Some(older) = entry.prev {
                self.del(&grace_key(uid, older), at);
            }
            return RefreshOutcome::Rotated;
        }
        let in_window = entry.prev == Some(step.jti)
            && entry
                .rotated
                .is_some_and(|rotated| rotated.saturating_add(step.grace_secs) >= step.now);
        if in_window
            && self.exists(&token_key(uid, entry.jti), at)
            && let Some(Value::Grace(sealed)) = self.get(&grace_key(uid, step.jti), at)
        {
            return RefreshOutcome::GraceReplay(sealed.clone());
        }
        self.end_session(uid, step.sid, at);
        RefreshOutcome::Reused
    }

    /// Takes a legacy entry and, only if it was there, starts `start`.
    pub(super) fn rotate_legacy(
        &mut self,
        uid: Uuid,
        jti: Uuid,
        start: &SessionStart,
        at: Instant,
    ) -> bool {
        // Refused while the other sessions' end guards against tokens no
        // index lists, or the credential guard refuses; only an entry from
        // before sessions is taken here.
        if self.exists(&nolegacy_key(uid), at) || !self.credential_ok(uid, &start.credential, at) {
            return false;
        }
        let key = token_key(uid, jti);
        if !matches!(self.get(&key, at), Some(Value::Token { sid: None, .. })) {
            return false;
        }
        self.del(&key, at);
        self.start_session(uid, start, at);
        true
    }

    /// Prunes, then lists the sessions, most recently used first (ties by id).
    pub(super) fn list_sessions(&mut self, uid: Uuid, now: u64, at: Instant) -> Vec<SessionInfo> {
        self.prune(uid, now, at);
        let mut sessions: Vec<SessionInfo> = self
            .index(uid, at)
            .into_iter()
            .flatten()
            .map(|(sid, e)| SessionInfo {
                id: *sid,
                created_at: e.created,
                last_used_at: e.last,
                user_agent: e.ua.clone(),
                ip: e.ip.clone(),
                name: e.name.clone(),
            })
            .collect();
        sessions.sort_by(|a, b| b.last_used_at.cmp(&a.last_used_at).then(a.id.cmp(&b.id)));
        sessions
    }

    /// The index entry of a session live at `now`, to edit in place (a
    /// rotation keeps what is written there); one past its token's `exp` or
    /// its absolute end is ended on the way, as listing prunes it.
    fn live_entry_mut(
        &mut self,
        uid: Uuid,
        sid: Uuid,
        now: u64,
        at: Instant,
    ) -> Option<&mut SessionEntry> {
        let over = self
            .index(uid, at)
            .and_then(|index| index.get(&sid))
            .map(|e| e.exp <= now || e.ends <= now)?;
        if over {
            self.end_session(uid, sid, at);
            return None;
        }
        match self.get_mut(&index_key(uid), at) {
            Some(Value::Index(index)) => index.get_mut(&sid),
            _ => None,
        }
    }

    /// Sets (or with `None` clears) the name of a live session in its index
    /// entry; whether the session is live at `now`.
    pub(super) fn rename_session(
        &mut self,
        uid: Uuid,
        sid: Uuid,
        name: Option<SessionName>,
        now: u64,
        at: Instant,
    ) -> bool {
        self.live_entry_mut(uid, sid, now, at)
            .map(|entry| entry.name = name.map(SessionName::into_string))
            .is_some()
    }

    /// Stores the assurance a second factor raised a live session to in its
    /// index entry (rotations and renames keep it); whether the session is
    /// live at `now`.
    pub(super) fn raise_session(
        &mut self,
        uid: Uuid,
        sid: Uuid,
        assurance: &Assurance,
        now: u64,
        at: Instant,
    ) -> bool {
        self.live_entry_mut(uid, sid, now, at)
            .map(|entry| {
                entry.acr = Some(assurance.acr.clone());
                entry.amr = assurance.amr.clone();
            })
            .is_some()
    }

    /// The assurance stored with a session of the index, if it was raised.
    pub(super) fn session_assurance(&self, uid: Uuid, sid: Uuid, at: Instant) -> Option<Assurance> {
        let entry = self.index(uid, at)?.get(&sid)?;
        entry.acr.as_ref().map(|acr| Assurance {
            acr: acr.clone(),
            amr: entry.amr.clone(),
        })
    }

    /// Ends every session but `keep`; how many.
    pub(super) fn end_other_sessions(
        &mut self,
        uid: Uuid,
        keep: Option<Uuid>,
        change: Option<&CredentialChange>,
        at: Instant,
    ) -> u64 {
        let others: Vec<Uuid> = self
            .index(uid, at)
            .into_iter()
            .flatten()
            .map(|(sid, _)| *sid)
            .filter(|sid| Some(*sid) != keep)
            .collect();
        let ended = others
            .into_iter()
            .filter(|sid| self.end_session(uid, *sid, at))
            .count() as u64;
        let legacy_until = at + Duration::from_secs(LEGACY_GUARD_SECS);
        self.set(nolegacy_key(uid), Value::Guard("1".into()), legacy_until);
        if let Some(change) = change {
            let until = at + Duration::from_secs(CREDENTIAL_GUARD_SECS);
            self.set(
                credential_key(uid),
                Value::Guard(change.credential.clone()),
                until,
            );
        }
        ended
    }
}
