//! The keyspace: keys with a value and an expiry, as Redis holds them.
//!
//! A key whose expiry has passed does not exist for any read or write (Redis
//! semantics: `GET` misses, `DEL` returns 0); it stays in memory only until a
//! sweep, or a write to it, reclaims it. An index by expiry lets a sweep touch
//! only what expired.
//!
//! Every method that may change a key records its name among the changed
//! keys; [`Keyspace::take_changed`] hands them over after each step, so the
//! durable copy (`durable.rs`) writes exactly what the step changed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

/// What a key holds; the key's name says which (see [`token_key`],
/// [`index_key`], [`grace_key`], [`pending_sign_in_key`],
/// `ceremony::ceremony_key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Value {
    /// `<uid>:<jti>`: a live refresh token and its session: id, start, last
    /// use and client as of this token (`sid: None` and the rest empty: an
    /// entry from before sessions, the value `1` in Redis).
    Token {
        sid: Option<Uuid>,
        #[serde(default)]
        created: u64,
        #[serde(default)]
        last: u64,
        #[serde(default)]
        ua: String,
        #[serde(default)]
        ip: String,
    },
    /// `<uid>:sessions`: the per-user index, sid → entry (a Redis hash).
    Index(BTreeMap<Uuid, SessionEntry>),
    /// `<uid>:grace:<jti>`: the sealed successor of the token `<jti>`.
    Grace(#[serde(with = "base64_bytes")] Vec<u8>),
    /// `<uid>:credential` (the fingerprint a password change guards session
    /// starts with) and `<uid>:nolegacy`.
    Guard(String),
    /// `ratelimit:…`: an attempt counter (see `limits.rs`); never saved in
    /// the durable copy.
    Counter(u64),
    /// `<uid>:mfa:<id>`: a pending two-step sign-in and its failed second
    /// steps so far (see `pending.rs`).
    PendingSignIn { failures: u32 },
    /// `<uid>:webauthn:<challenge>`, `webauthn:auth:<challenge>`: the state
    /// of a WebAuthn ceremony (see `ceremony.rs`).
    Ceremony(String),
}

impl Value {
    /// The whitelist entry of session `sid`'s current token: what its index
    /// `entry` says of it now.
    pub(super) fn token_of(sid: Uuid, entry: &SessionEntry) -> Self {
        Self::Token {
            sid: Some(sid),
            created: entry.created,
            last: entry.last,
            ua: entry.ua.clone(),
            ip: entry.ip.clone(),
        }
    }

    /// An entry from before sessions.
    pub(super) fn legacy_token() -> Self {
        Self::Token {
            sid: None,
            created: 0,
            last: 0,
            ua: String::new(),
            ip: String::new(),
        }
    }
}

/// One session in the index: the JSON value of a `<uid>:sessions` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SessionEntry {
    /// The current refresh token's id.
    pub jti: Uuid,
    /// When the current refresh token expires.
    pub exp: u64,
    /// The previous refresh token's id (the one a grace replay may present).
    pub prev: Option<Uuid>,
    /// When the last rotation happened (pins the grace window).
    pub rotated: Option<u64>,
    pub created: u64,
    pub last: u64,
    /// The session's absolute end.
    pub ends: u64,
    pub ua: String,
    pub ip: String,
    /// The name its user gave it (`PUT /sessions/{id}`); absent from the
    /// JSON when none, as in Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The assurance a second factor raised the session to (`acr`, `amr`);
    /// absent from the JSON when never raised, as in Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

pub(super) fn token_key(uid: Uuid, jti: Uuid) -> String {
    format!("{uid}:{jti}")
}

pub(super) fn index_key(uid: Uuid) -> String {
    format!("{uid}:sessions")
}

pub(super) fn grace_key(uid: Uuid, jti: Uuid) -> String {
    format!("{uid}:grace:{jti}")
}

/// The password-change guard.
pub(super) fn credential_key(uid: Uuid) -> String {
    format!("{uid}:credential")
}

pub(super) fn nolegacy_key(uid: Uuid) -> String {
    format!("{uid}:nolegacy")
}

/// A pending two-step sign-in; never a whitelist entry's name.
pub(super) fn pending_sign_in_key(uid: Uuid, id: Uuid) -> String {
    format!("{uid}:mfa:{id}")
}

/// Every key of a user starts with this.
pub(super) fn user_prefix(uid: Uuid) -> String {
    format!("{uid}:")
}

#[derive(Debug)]
struct Item {
    value: Value,
    expires: Instant,
}

/// Keys by name, plus an index by expiry, and the names changed since the
/// last [`Keyspace::take_changed`].
#[derive(Debug, Default)]
pub(super) struct Keyspace {
    items: BTreeMap<String, Item>,
    by_expiry: BTreeSet<(Instant, String)>,
    changed: BTreeSet<String>,
}

impl Keyspace {
    /// The names of the keys changed (set, edited, deleted, reclaimed or given
    /// a new expiry) since the last call, in name order.
    pub(super) fn take_changed(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.changed)
    }

    /// A key's value and expiry as held, expired or not (what a durable copy
    /// of `key` must now say; `None`: the key is gone).
    pub(super) fn stored(&self, key: &str) -> Option<(&Value, Instant)> {
        self.items.get(key).map(|item| (&item.value, item.expires))
    }

    /// `SET key value` with an absolute expiry (replaces any value and expiry).
    pub(super) fn set(&mut self, key: String, value: Value, expires: Instant) {
        self.changed.insert(key.clone());
        let item = Item { value, expires };
        if let Some(old) = self.items.insert(key.clone(), item) {
            self.by_expiry.remove(&(old.expires, key.clone()));
        }
        self.by_expiry.insert((expires, key));
    }

    /// The value of a live key.
    pub(super) fn get(&self, key: &str, now: Instant) -> Option<&Value> {
        self.items
            .get(key)
            .filter(|item| item.expires > now)
            .map(|item| &item.value)
    }

    /// The value of a live key and when it expires (`PTTL`).
    pub(super) fn get_with_expiry(&self, key: &str, now: Instant) -> Option<(&Value, Instant)> {
        self.items
            .get(key)
            .filter(|item| item.expires > now)
            .map(|item| (&item.value, item.expires))
    }

    pub(super) fn exists(&self, key: &str, now: Instant) -> bool {
        self.get(key, now).is_some()
    }

    /// The value of a live key, to change in place (its expiry stays).
    pub(super) fn get_mut(&mut self, key: &str, now: Instant) -> Option<&mut Value> {
        let item = self.items.get_mut(key).filter(|item| item.expires > now)?;
        // The caller may edit it: count it as changed.
        self.changed.insert(key.to_owned());
        Some(&mut item.value)
    }

    /// `DEL key`: whether it was live. An expired key is reclaimed too.
    pub(super) fn del(&mut self, key: &str, now: Instant) -> bool {
        match self.items.remove(key) {
            Some(item) => {
                self.changed.insert(key.to_owned());
                self.by_expiry.remove(&(item.expires, key.to_owned()));
                item.expires > now
            }
            None => false,
        }
    }

    /// Moves a live key's expiry to `at` if that is later (`TTL` then `EXPIRE`).
    pub(super) fn expire_at_least(&mut self, key: &str, at: Instant, now: Instant) {
        let Some(item) = self.items.get_mut(key).filter(|item| item.expires > now) else {
            return;
        };
        if at > item.expires {
            self.changed.insert(key.to_owned());
            let old = std::mem::replace(&mut item.expires, at);
            self.by_expiry.remove(&(old, key.to_owned()));
            self.by_expiry.insert((at, key.to_owned()));
        }
    }

    /// Removes every expired key; how many.
    pub(super) fn sweep(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some((expires, _)) = self.by_expiry.first() {
            if *expires > now {
                break;
            }
            if let Some((_, key)) = self.by_expiry.pop_first() {
                self.items.remove(&key);
                self.changed.insert(key);
                removed += 1;
            }
        }
        removed
    }

    /// How many keys are held, expired-but-not-yet-swept ones included.
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Live keys starting with `prefix`, in name order, with value and expiry.
    pub(super) fn live_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
        now: Instant,
    ) -> impl Iterator<Item = (&'a str, &'a Value, Instant)> + 'a {
        self.items
            .range(prefix.to_owned()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .filter(move |(_, item)| item.expires > now)
            .map(|(k, item)| (k.as_str(), &item.value, item.expires))
    }

    /// Removes every key starting with `prefix`; how many were live.
    pub(super) fn remove_prefix(&mut self, prefix: &str, now: Instant) -> u64 {
        let keys: Vec<String> = self
            .items
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter(|k| self.del(k, now)).count() as u64
    }

    /// The user's live index.
    pub(super) fn index(&self, uid: Uuid, now: Instant) -> Option<&BTreeMap<Uuid, SessionEntry>> {
        match self.get(&index_key(uid), now) {
            Some(Value::Index(index)) => Some(index),
            _ => None,
        }
    }

    /// `HSET <uid>:sessions sid entry`, then the index TTL raised to at least
    /// `expires` (the written token's): the index outlives every token.
    pub(super) fn hset(
        &mut self,
        uid: Uuid,
        sid: Uuid,
        entry: SessionEntry,
        expires: Instant,
        now: Instant,
    ) {
        let key = index_key(uid);
        if let Some(Value::Index(index)) = self.get_mut(&key, now) {
            index.insert(sid, entry);
            self.expire_at_least(&key, expires, now);
        } else {
            // Absent, expired (or, from a foreign row or snapshot, not an index): a new hash.
            self.set(key, Value::Index(BTreeMap::from([(sid, entry)])), expires);
        }
    }

    /// `HDEL <uid>:sessions sid`: the removed entry. An emptied index is
    /// removed, as Redis removes an empty hash.
    pub(super) fn hdel(&mut self, uid: Uuid, sid: Uuid, now: Instant) -> Option<SessionEntry> {
        let key = index_key(uid);
        let Some(Value::Index(index)) = self.get_mut(&key, now) else {
            return None;
        };
        let entry = index.remove(&sid)?;
        if index.is_empty() {
            self.del(&key, now);
        }
        Some(entry)
    }
}

/// Grace successors as stored (the table's JSON, a snapshot): base64, not a
/// JSON array of numbers.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
