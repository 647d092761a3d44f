//! The session and whitelist steps, on a single Redis and on Redis Cluster.

use super::*;
use crate::repository::test_sessions::{name, names_follow_their_session, started};

impl Fixture {
    /// Starts `start` (refused or not): its (sid, jti).
    async fn started(&self, start: SessionStart) -> (Uuid, Uuid) {
        started(&self.repo, self.uid, &start).await
    }

    /// The whitelist entry of `jti`, parsed.
    pub(super) async fn token_value(&self, jti: Uuid) -> Value {
        serde_json::from_slice(&self.get(&self.key(jti)).await.unwrap()).unwrap()
    }

    /// Writes a whitelist entry from before sessions (`1`), for [`LIFE`].
    async fn set_legacy(&self, jti: Uuid) {
        let _: () = self
            .cmd(
                redis::cmd("SET")
                    .arg(self.key(jti))
                    .arg("1")
                    .arg("EX")
                    .arg(LIFE),
            )
            .await;
    }
}

on_both!(start_session_writes_the_entry_and_the_index);
async fn start_session_writes_the_entry_and_the_index(f: Fixture) {
    let (sid, jti) = f
        .started(SessionStart {
            client: ClientInfo::new("Mozilla/5.0 (X11) «é»", "192.0.2.7"),
            ..SHAPE.new_start(f.now, 5)
        })
        .await;

    let value = f.token_value(jti).await;
    assert_eq!(
        value,
        serde_json::json!({
            "sid": sid.to_string(), "created": f.now, "last": f.now,
            "ua": "Mozilla/5.0 (X11) «é»", "ip": "192.0.2.7",
        }),
        "the entry records its session"
    );
    assert_ttl_near(f.ttl(&f.key(jti)).await, LIFE);

    let entry = f.entry(sid).await.unwrap();
    assert_eq!(entry["jti"], jti.to_string());
    assert_eq!(entry["exp"], f.now + LIFE);
    assert_eq!(entry["prev"], Value::Null);
    assert_eq!(entry["rotated"], Value::Null);
    assert_eq!(entry["created"], f.now);
    assert_eq!(entry["last"], f.now);
    assert_eq!(entry["ends"], f.now + MAX_AGE);
    assert_eq!(entry["ua"], "Mozilla/5.0 (X11) «é»");
    assert_eq!(entry["ip"], "192.0.2.7");
    assert_ttl_near(f.ttl(&f.index()).await, LIFE);

    let sessions = f.repo.list_sessions(f.uid, f.now).await.unwrap();
    assert_eq!(
        sessions,
        vec![SessionInfo {
            id: sid,
            created_at: f.now,
            last_used_at: f.now,
            user_agent: "Mozilla/5.0 (X11) «é»".into(),
            ip: "192.0.2.7".into(),
            name: None,
        }]
    );
    f.finish().await;
}

on_both!(the_cap_ends_the_least_recently_used_session);
async fn the_cap_ends_the_least_recently_used_session(f: Fixture) {
    let (a, a_first) = f.session_at(f.now).await;
    let (b, b_jti) = f.session_at(f.now + 1).await;
    // `a` is the oldest but used since: `b` is the least recently used.
    let a_jti = f.rotate(a, a_first, f.now + 2).await;
    let (c, c_jti) = f.started(SHAPE.new_start(f.now + 3, 2)).await;

    assert_eq!(f.listed(f.now + 3).await, vec![c, a]);
    assert!(f.entry(b).await.is_none());
    assert!(!f.exists(&f.key(b_jti)).await);
    assert!(f.exists(&f.key(a_jti)).await);
    assert!(f.exists(&f.key(c_jti)).await);

    // A cap below one never ends the session just started.
    let (d, _) = f.started(SHAPE.new_start(f.now + 4, 0)).await;
    assert_eq!(f.listed(f.now + 4).await, vec![d]);
    assert!(!f.exists(&f.key(a_jti)).await);
    assert!(!f.exists(&f.grace(a_first)).await);
    assert!(!f.exists(&f.key(c_jti)).await);
    f.finish().await;
}

on_both!(refresh_with_the_current_token_rotates);
async fn refresh_with_the_current_token_rotates(f: Fixture) {
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = Uuid::new_v4();
    let mut step = f.step(sid, jti, new_jti, f.now + 5);
    step.new_exp = f.now + 5 + 2 * LIFE;
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Rotated);

    assert!(!f.exists(&f.key(jti)).await);
    let value = f.token_value(new_jti).await;
    assert_eq!(value["sid"], sid.to_string());
    assert_eq!(value["created"], f.now, "the session's start");
    assert_eq!(value["last"], f.now + 5, "this rotation");
    assert_ttl_near(f.ttl(&f.key(new_jti)).await, 2 * LIFE);
    assert_eq!(f.get(&f.grace(jti)).await, Some(sealed(new_jti)));
    assert_ttl_near(f.ttl(&f.grace(jti)).await, GRACE);

    let entry = f.entry(sid).await.unwrap();
    assert_eq!(entry["jti"], new_jti.to_string());
    assert_eq!(entry["exp"], f.now + 5 + 2 * LIFE);
    assert_eq!(entry["prev"], jti.to_string());
    assert_eq!(entry["rotated"], f.now + 5);
    assert_eq!(entry["last"], f.now + 5);
    assert_eq!(entry["created"], f.now);
    assert_eq!(entry["ua"], "agent/2");
    assert_eq!(entry["ip"], "10.0.0.2");
    assert_ttl_near(f.ttl(&f.index()).await, 2 * LIFE);

    // The next rotation drops the older grace successor.
    let third = f.rotate(sid, new_jti, f.now + 6).await;
    assert!(!f.exists(&f.grace(jti)).await);
    assert!(f.exists(&f.grace(new_jti)).await);
    assert!(f.exists(&f.key(third)).await);

    // No grace window: no successor is kept, and a replay is reuse.
    let mut step = f.step(sid, third, Uuid::new_v4(), f.now + 7);
    step.grace_secs = 0;
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Rotated);
    assert!(!f.exists(&f.grace(third)).await);
    assert!(!f.exists(&f.grace(new_jti)).await);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Reused);
    f.finish().await;
}

on_both!(the_predecessor_replays_the_sealed_successor_within_the_window);
async fn the_predecessor_replays_the_sealed_successor_within_the_window(f: Fixture) {
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = f.rotate(sid, jti, f.now + 1).await;
    let before = f.entry(sid).await.unwrap();

    // A retry carries its own successor id and client: neither is used.
    let mut retry = f.step(sid, jti, Uuid::new_v4(), f.now + 1 + GRACE);
    retry.sealed_successor = b"other".to_vec();
    let outcome = f.repo.refresh(f.uid, &retry).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::GraceReplay(sealed(new_jti)));

    assert_eq!(f.entry(sid).await.unwrap(), before);
    assert!(f.exists(&f.key(new_jti)).await);
    assert!(!f.exists(&f.key(retry.new_jti)).await);
    assert_eq!(f.get(&f.grace(jti)).await, Some(sealed(new_jti)));
    f.finish().await;
}

on_both!(the_predecessor_after_the_window_ends_the_session);
async fn the_predecessor_after_the_window_ends_the_session(f: Fixture) {
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = f.rotate(sid, jti, f.now + 1).await;
    let late = f.step(sid, jti, Uuid::new_v4(), f.now + 2 + GRACE);
    let outcome = f.repo.refresh(f.uid, &late).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Reused);

    assert!(!f.exists(&f.key(new_jti)).await);
    assert!(!f.exists(&f.grace(jti)).await);
    assert!(f.entry(sid).await.is_none());
    assert_eq!(f.listed(f.now + 2).await, Vec::<Uuid>::new());
    // The successor no longer works either.
    let step = f.step(sid, new_jti, Uuid::new_v4(), f.now + 3);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Unknown);
    f.finish().await;
}

on_both!(an_older_generation_or_a_gone_successor_is_reuse);
async fn an_older_generation_or_a_gone_successor_is_reuse(f: Fixture) {
    let (sid, first) = f.session_at(f.now).await;
    let second = f.rotate(sid, first, f.now).await;
    let third = f.rotate(sid, second, f.now).await;
    let outcome = f
        .repo
        .refresh(f.uid, &f.step(sid, first, Uuid::new_v4(), f.now))
        .await
        .unwrap();
    assert_eq!(outcome, RefreshOutcome::Reused);
    assert!(!f.exists(&f.key(third)).await);
    assert!(!f.exists(&f.grace(second)).await);
    assert!(f.entry(sid).await.is_none());

    // Within the window, but the successor's entry is gone.
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = f.rotate(sid, jti, f.now).await;
    let _: i64 = f.cmd(redis::cmd("DEL").arg(f.key(new_jti))).await;
    let outcome = f
        .repo
        .refresh(f.uid, &f.step(sid, jti, Uuid::new_v4(), f.now))
        .await
        .unwrap();
    assert_eq!(outcome, RefreshOutcome::Reused);
    assert!(!f.exists(&f.grace(jti)).await);
    assert!(f.entry(sid).await.is_none());
    f.finish().await;
}

on_both!(unknown_sessions_and_a_sign_out_in_progress_refuse);
async fn unknown_sessions_and_a_sign_out_in_progress_refuse(f: Fixture) {
    // A session that never was.
    let step = f.step(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), f.now);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Unknown);
    assert!(!f.exists(&f.key(step.new_jti)).await);

    // An ended session.
    let (sid, jti) = f.session_at(f.now).await;
    assert!(f.repo.end_session(f.uid, sid).await.unwrap());
    let step = f.step(sid, jti, Uuid::new_v4(), f.now);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Unknown);
    assert!(!f.exists(&f.key(step.new_jti)).await);

    // The current token's entry is gone: the session ends.
    let (sid, jti) = f.session_at(f.now).await;
    let _: i64 = f.cmd(redis::cmd("DEL").arg(f.key(jti))).await;
    let step = f.step(sid, jti, Uuid::new_v4(), f.now);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Unknown);
    assert!(f.entry(sid).await.is_none());

    // A sign-out sweep in progress: nothing is written.
    let (sid, jti) = f.session_at(f.now).await;
    let legacy = Uuid::new_v4();
    let _: () = f.cmd(redis::cmd("SET").arg(f.key(legacy)).arg("1")).await;
    let marker = f.repo.keys.signout_marker(f.uid);
    let _: () = f
        .cmd(redis::cmd("SET").arg(&marker).arg(1).arg("EX").arg(60))
        .await;
    let step = f.step(sid, jti, Uuid::new_v4(), f.now);
    let outcome = f.repo.refresh(f.uid, &step).await;
    let start = SHAPE.new_start(f.now, 10);
    let legacy_taken = f.repo.rotate_legacy(f.uid, legacy, &start).await;
    let _: i64 = f.cmd(redis::cmd("DEL").arg(&marker)).await;
    assert_eq!(outcome.unwrap(), RefreshOutcome::Unknown);
    assert!(!legacy_taken.unwrap());
    assert!(f.exists(&f.key(jti)).await);
    assert!(!f.exists(&f.key(step.new_jti)).await);
    assert!(f.exists(&f.key(legacy)).await);
    assert!(!f.exists(&f.key(start.jti)).await);
    assert!(f.entry(start.sid).await.is_none());
    assert_eq!(f.entry(sid).await.unwrap()["jti"], jti.to_string());
    f.finish().await;
}

on_both!(a_session_past_its_end_or_its_token_expiry_is_expired);
async fn a_session_past_its_end_or_its_token_expiry_is_expired(f: Fixture) {
    let (sid, jti) = f.session_at(f.now).await;
    let step = f.step(sid, jti, Uuid::new_v4(), f.now + MAX_AGE);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Expired);
    assert!(!f.exists(&f.key(jti)).await);
    assert!(!f.exists(&f.key(step.new_jti)).await);
    assert!(f.entry(sid).await.is_none());

    let (sid, jti) = f.session_at(f.now).await;
    let step = f.step(sid, jti, Uuid::new_v4(), f.now + LIFE);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Expired);
    assert!(f.entry(sid).await.is_none());
    f.finish().await;
}

on_both!(
    concurrent_refreshes_with_one_token_rotate_once,
    multi_thread
);
async fn concurrent_refreshes_with_one_token_rotate_once(f: Fixture) {
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = Uuid::new_v4();
    let step = f.step(sid, jti, new_jti, f.now + 1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (repo, uid, step) = (f.repo.clone(), f.uid, step.clone());
        tasks.spawn(async move { repo.refresh(uid, &step).await.unwrap() });
    }
    let outcomes = tasks.join_all().await;
    let rotated = outcomes
        .iter()
        .filter(|o| **o == RefreshOutcome::Rotated)
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    for outcome in &outcomes {
        assert!(
            *outcome == RefreshOutcome::Rotated
                || *outcome == RefreshOutcome::GraceReplay(sealed(new_jti)),
            "{outcome:?}"
        );
    }
    assert_eq!(f.entry(sid).await.unwrap()["jti"], new_jti.to_string());
    f.finish().await;
}

on_both!(a_legacy_token_starts_a_session_once);
async fn a_legacy_token_starts_a_session_once(f: Fixture) {
    let legacy = Uuid::new_v4();
    f.set_legacy(legacy).await;
    let start = SHAPE.new_start(f.now, 10);
    assert!(f.repo.rotate_legacy(f.uid, legacy, &start).await.unwrap());
    assert!(!f.exists(&f.key(legacy)).await);
    let value = f.token_value(start.jti).await;
    assert_eq!(value["sid"], start.sid.to_string());
    assert_eq!(f.listed(f.now).await, vec![start.sid]);

    let again = SHAPE.new_start(f.now, 10);
    assert!(!f.repo.rotate_legacy(f.uid, legacy, &again).await.unwrap());
    assert!(!f.exists(&f.key(again.jti)).await);
    assert_eq!(f.listed(f.now).await, vec![start.sid]);
    f.finish().await;
}

on_both!(list_sessions_orders_by_last_use_and_prunes);
async fn list_sessions_orders_by_last_use_and_prunes(f: Fixture) {
    let (a, a_jti) = f.session_at(f.now).await;
    let (b, _) = f.session_at(f.now + 1).await;
    let (c, _) = f.session_at(f.now + 1).await;
    let a_jti = f.rotate(a, a_jti, f.now + 2).await;
    // A short-lived token and a session at its absolute end.
    let (short, short_jti) = f
        .started(SessionStart {
            exp: f.now + 5,
            ..SHAPE.new_start(f.now + 3, 10)
        })
        .await;
    let (ending, ending_jti) = f
        .started(SessionStart {
            ends_at: f.now + 6,
            ..SHAPE.new_start(f.now + 3, 10)
        })
        .await;
    // Ties on last use are ordered by id.
    let ordered = |x: Uuid, y: Uuid| if x < y { [x, y] } else { [y, x] };
    let [b_first, c_first] = ordered(b, c);
    let [newest, next] = ordered(short, ending);
    assert_eq!(
        f.listed(f.now + 3).await,
        vec![newest, next, a, b_first, c_first]
    );

    assert_eq!(f.listed(f.now + 6).await, vec![a, b_first, c_first]);
    assert!(f.entry(short).await.is_none());
    assert!(f.entry(ending).await.is_none());
    assert!(!f.exists(&f.key(short_jti)).await);
    assert!(!f.exists(&f.key(ending_jti)).await);
    assert!(f.exists(&f.key(a_jti)).await);

    let sessions = f.repo.list_sessions(f.uid, f.now + 6).await.unwrap();
    assert_eq!(sessions[0].created_at, f.now);
    assert_eq!(sessions[0].last_used_at, f.now + 2);
    assert_eq!(sessions[0].user_agent, "agent/2");
    f.finish().await;
}

on_both!(end_session_and_end_other_sessions_count);
async fn end_session_and_end_other_sessions_count(f: Fixture) {
    let (a, a_jti) = f.session_at(f.now).await;
    let (b, b_jti) = f.session_at(f.now).await;
    let b_jti2 = f.rotate(b, b_jti, f.now).await;
    let (c, c_jti) = f.session_at(f.now).await;
    let (d, d_jti) = f.session_at(f.now).await;

    assert!(f.repo.end_session(f.uid, a).await.unwrap());
    assert!(!f.repo.end_session(f.uid, a).await.unwrap());
    assert!(!f.repo.end_session(f.uid, Uuid::new_v4()).await.unwrap());
    assert!(!f.exists(&f.key(a_jti)).await);

    assert_eq!(
        f.repo
            .end_other_sessions(f.uid, Some(c), None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(f.listed(f.now).await, vec![c]);
    for gone in [f.key(b_jti2), f.grace(b_jti), f.key(d_jti)] {
        assert!(!f.exists(&gone).await, "{gone}");
    }
    assert!(f.exists(&f.key(c_jti)).await);
    assert!(f.entry(d).await.is_none());
    assert_eq!(
        f.repo
            .end_other_sessions(f.uid, Some(c), None)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        f.repo
            .end_other_sessions(f.uid, Some(Uuid::new_v4()), None)
            .await
            .unwrap(),
        1
    );
    assert!(!f.exists(&f.index()).await);
    f.finish().await;
}

on_both!(names_follow_their_session_on_redis);
async fn names_follow_their_session_on_redis(f: Fixture) {
    names_follow_their_session(&SHAPE, &f.repo, f.uid, f.now).await;
    f.finish().await;
}

on_both!(a_name_is_kept_in_the_index_entry_only);
async fn a_name_is_kept_in_the_index_entry_only(f: Fixture) {
    let (sid, jti) = f.session_at(f.now).await;
    let before = f.entry(sid).await.unwrap();
    let token_before = f.token_value(jti).await;

    // Characters JSON escapes and Lua's cjson escapes differently.
    let given = "Ada’s \"work\" laptop / 📱 «é»";
    assert!(
        f.repo
            .rename_session(f.uid, sid, name(given), f.now)
            .await
            .unwrap()
    );

    let mut expected = before.clone();
    expected["name"] = Value::from(given);
    assert_eq!(
        f.entry(sid).await.unwrap(),
        expected,
        "only the name changed"
    );
    assert_eq!(
        f.token_value(jti).await,
        token_before,
        "the entry untouched"
    );
    assert_ttl_near(f.ttl(&f.index()).await, LIFE);
    let listed = f.repo.list_sessions(f.uid, f.now).await.unwrap();
    assert_eq!(listed[0].name.as_deref(), Some(given));

    // A rotation (which re-encodes the entry) keeps it.
    let next = f.rotate(sid, jti, f.now + 1).await;
    let rotated = f.entry(sid).await.unwrap();
    assert_eq!(rotated["jti"], next.to_string());
    assert_eq!(rotated["name"], given);

    // Cleared: absent from the entry, as before it was named.
    assert!(
        f.repo
            .rename_session(f.uid, sid, None, f.now + 1)
            .await
            .unwrap()
    );
    let cleared = f.entry(sid).await.unwrap();
    assert!(cleared.get("name").is_none(), "{cleared}");
    assert_eq!(cleared["jti"], next.to_string());
    f.finish().await;
}

on_both!(sign_out_everywhere_removes_the_index_and_grace_keys);
async fn sign_out_everywhere_removes_the_index_and_grace_keys(f: Fixture) {
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = f.rotate(sid, jti, f.now).await;
    let legacy = Uuid::new_v4();
    f.set_legacy(legacy).await;
    let mut expected = vec![f.key(new_jti), f.grace(jti), f.index(), f.key(legacy)];
    expected.sort();
    assert_eq!(f.user_keys().await, expected);

    assert_eq!(f.repo.delete_user_refresh_tokens(f.uid).await.unwrap(), 4);
    assert_eq!(f.user_keys().await, Vec::<String>::new());
    let step = f.step(sid, new_jti, Uuid::new_v4(), f.now);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Unknown);
    f.finish().await;
}

on_both!(the_index_outlives_the_longest_lived_token);
async fn the_index_outlives_the_longest_lived_token(f: Fixture) {
    let (_, long_jti) = f
        .started(SessionStart {
            exp: f.now + 3 * LIFE,
            ..SHAPE.new_start(f.now, 10)
        })
        .await;
    let (short, short_jti) = f.session_at(f.now).await;
    assert!(f.ttl(&f.index()).await >= f.ttl(&f.key(long_jti)).await);
    assert_ttl_near(f.ttl(&f.index()).await, 3 * LIFE);

    let mut step = f.step(short, short_jti, Uuid::new_v4(), f.now);
    step.new_exp = f.now + 5 * LIFE;
    assert_eq!(
        f.repo.refresh(f.uid, &step).await.unwrap(),
        RefreshOutcome::Rotated
    );
    assert!(f.ttl(&f.index()).await >= f.ttl(&f.key(step.new_jti)).await);
    assert_ttl_near(f.ttl(&f.index()).await, 5 * LIFE);

    // Never shortened by a shorter-lived write.
    f.session_at(f.now).await;
    assert_ttl_near(f.ttl(&f.index()).await, 5 * LIFE);
    f.finish().await;
}

on_both!(a_password_change_refuses_sessions_authenticated_with_the_previous_password);
async fn a_password_change_refuses_sessions_authenticated_with_the_previous_password(f: Fixture) {
    let (keep, _) = f.session_at(f.now).await;
    let (other, _) = f.session_at(f.now).await;
    let change = CredentialChange {
        credential: "c2".into(),
    };
    let ended = f
        .repo
        .end_other_sessions(f.uid, Some(keep), Some(change))
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert_eq!(f.listed(f.now).await, vec![keep]);
    assert!(f.entry(other).await.is_none());

    // A sign-in that read the previous hash (credential c1) starts nothing.
    let stale = SHAPE.new_start(f.now, 10);
    assert!(!f.repo.start_session(f.uid, &stale).await.unwrap());
    assert!(!f.exists(&f.key(stale.jti)).await);
    assert!(f.entry(stale.sid).await.is_none());
    // One with the new password does.
    let fresh = SessionStart {
        credential: "c2".into(),
        ..SHAPE.new_start(f.now, 10)
    };
    assert!(f.repo.start_session(f.uid, &fresh).await.unwrap());
    let guard = f.ttl(&f.repo.keys.credential_guard(f.uid)).await;
    assert!((1..=3_600).contains(&guard), "guard TTL {guard}");
    f.finish().await;
}

on_both!(ending_the_other_sessions_refuses_tokens_from_before_sessions_and_only_those_are_legacy);
async fn ending_the_other_sessions_refuses_tokens_from_before_sessions_and_only_those_are_legacy(
    f: Fixture,
) {
    // A session's own entry is not a legacy entry.
    let (_, jti) = f.session_at(f.now).await;
    let start = SHAPE.new_start(f.now, 10);
    assert!(!f.repo.rotate_legacy(f.uid, jti, &start).await.unwrap());
    assert!(f.exists(&f.key(jti)).await, "not taken");

    let legacy = Uuid::new_v4();
    f.set_legacy(legacy).await;
    f.repo.end_other_sessions(f.uid, None, None).await.unwrap();
    assert!(f.listed(f.now).await.is_empty());
    assert!(!f.repo.rotate_legacy(f.uid, legacy, &start).await.unwrap());
    assert!(f.entry(start.sid).await.is_none(), "no session started");
    f.finish().await;
}

// ------------------------------------------------------------ attempt counters
