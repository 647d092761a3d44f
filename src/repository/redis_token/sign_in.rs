//! The two-step sign-in's keys and steps: pending sign-ins (`<uid>:mfa:<id>`,
//! the failures so far, with the mfa token's TTL) and the assurance a second
//! factor raises a session to (`"acr"` and `"amr"` in its index entry).
//!
//! A pending sign-in is one plain key per step (SET, EXISTS, DEL) but for a
//! failure, which counts and removes in one script; all of them are single-key
//! steps in the user's slot. Its name is `<uid>:mfa:<id>`, never a
//! whitelist entry's `<uid>:<jti>`, and no index lists it, so no session step
//! reads it; sign-out everywhere (SCAN `<uid>:*`) removes it.

use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use super::RedisTokenRepository;
use super::scripts::{FAIL_PENDING_SIGN_IN, RAISE_SESSION};
use crate::error::{AppError, AppResult};
use crate::model::Assurance;

/// What `session_assurance` reads of an index entry.
#[derive(Deserialize)]
struct RaisedEntry {
    #[serde(default)]
    acr: Option<String>,
    #[serde(default, deserialize_with = "amr_list")]
    amr: Vec<String>,
}

/// `amr` as the scripts leave it: a JSON array of strings, or `{}` where Lua's
/// cjson re-encoded an empty array.
fn amr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error as _;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(method) => Ok(method),
                other => Err(D::Error::custom(format!("amr holds {other}"))),
            })
            .collect(),
        serde_json::Value::Object(map) if map.is_empty() => Ok(Vec::new()),
        serde_json::Value::Null => Ok(Vec::new()),
        other => Err(D::Error::custom(format!("amr is {other}"))),
    }
}

/// The assurance stored in an index entry, if it was raised.
fn raised(sid: Uuid, entry: &str) -> AppResult<Option<Assurance>> {
    let entry: RaisedEntry = serde_json::from_str(entry)
        .with_context(|| format!("session index entry of {sid}: {entry}"))?;
    Ok(entry.acr.map(|acr| Assurance {
        acr,
        amr: entry.amr,
    }))
}

/// A TTL for `PX`: whole milliseconds, at least one (`PX 0` is refused).
pub(super) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisTokenRepository {
    pub(super) async fn raise(
        &self,
        uid: Uuid,
        sid: Uuid,
        assurance: &Assurance,
        now: u64,
    ) -> AppResult<bool> {
        let amr = serde_json::to_string(&assurance.amr).context("amr as JSON")?;
        let mut invocation = RAISE_SESSION.key(self.keys.index(uid));
        invocation
            .arg(sid.to_string())
            .arg(now)
            .arg(&assurance.acr)
            .arg(amr);
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    pub(super) async fn assurance(&self, uid: Uuid, sid: Uuid) -> AppResult<Option<Assurance>> {
        let mut hget = redis::cmd("HGET");
        hget.arg(self.keys.index(uid)).arg(sid.to_string());
        match self.query::<Option<String>>(&hget).await? {
            Some(entry) => raised(sid, &entry),
            None => Ok(None),
        }
    }

    pub(super) async fn put_pending(&self, uid: Uuid, id: Uuid, ttl: Duration) -> AppResult<()> {
        let mut set = redis::cmd("SET");
        set.arg(self.keys.pending_sign_in(uid, id))
            .arg(0)
            .arg("PX")
            .arg(ttl_ms(ttl));
        self.query::<()>(&set).await
    }

    pub(super) async fn pending(&self, uid: Uuid, id: Uuid) -> AppResult<bool> {
        let mut exists = redis::cmd("EXISTS");
        exists.arg(self.keys.pending_sign_in(uid, id));
        Ok(self.query::<i64>(&exists).await? == 1)
    }

    pub(super) async fn fail_pending(
        &self,
        uid: Uuid,
        id: Uuid,
        max_failures: u32,
    ) -> AppResult<Option<u32>> {
        let mut invocation = FAIL_PENDING_SIGN_IN.key(self.keys.pending_sign_in(uid, id));
        invocation.arg(max_failures);
        let failures: i64 = self.invoke(&invocation).await?;
        if failures < 0 {
            return Ok(None);
        }
        u32::try_from(failures).map(Some).map_err(|_| {
            AppError::Internal(anyhow::anyhow!(
                "pending sign-in {id} counts {failures} failures"
            ))
        })
    }

    pub(super) async fn take_pending(&self, uid: Uuid, id: Uuid) -> AppResult<bool> {
        let mut del = redis::cmd("DEL");
        del.arg(self.keys.pending_sign_in(uid, id));
        Ok(self.query::<i64>(&del).await? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_raised_or_not_and_cjsons_empty_array() {
        let sid = Uuid::new_v4();
        let plain = r#"{"jti":"x","exp":1,"created":1,"last":1,"ends":2,"ua":"","ip":""}"#;
        assert_eq!(raised(sid, plain).unwrap(), None);
        let entry = r#"{"exp":1,"acr":"aal2","amr":["pwd","otp","mfa"],"name":"a\/b"}"#;
        assert_eq!(
            raised(sid, entry).unwrap(),
            Some(Assurance {
                acr: "aal2".into(),
                amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
            })
        );
        let empty = r#"{"acr":"aal2","amr":{}}"#;
        assert_eq!(
            raised(sid, empty).unwrap().unwrap().amr,
            Vec::<String>::new()
        );
        assert!(raised(sid, r#"{"acr":"aal2","amr":{"a":1}}"#).is_err());
        assert!(raised(sid, r#"{"acr":"aal2","amr":[1]}"#).is_err());
    }

    #[test]
    fn a_ttl_is_whole_milliseconds_never_zero() {
        assert_eq!(ttl_ms(Duration::from_secs(300)), 300_000);
        assert_eq!(ttl_ms(Duration::from_micros(1500)), 1);
        assert_eq!(ttl_ms(Duration::ZERO), 1);
    }
}
