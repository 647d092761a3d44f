//! The Lua scripts: one per store step, each the shared prelude
//! (`lua/prelude.lua`: ending, pruning, starting a session, index TTL) followed
//! by its body. `redis::Script` runs them by EVALSHA (loading on NOSCRIPT).

use std::sync::LazyLock;

use redis::Script;

macro_rules! session_script {
    ($body:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/prelude.lua"),
                "\n",
                include_str!($body)
            ))
        })
    };
}

/// KEYS: index, `<uid>:<jti>`. ARGV: sid, jti, exp, now, ends, ua, ip, max.
pub(super) static START_SESSION: LazyLock<Script> = session_script!("lua/start_session.lua");

/// KEYS: index, marker, `<uid>:<jti>`, `<uid>:<new jti>`, `<uid>:grace:<jti>`.
/// ARGV: sid, jti, new_jti, new_exp, now, grace_secs, sealed, ua, ip.
pub(super) static REFRESH: LazyLock<Script> = session_script!("lua/refresh.lua");

/// KEYS: index, marker, `<uid>:<legacy jti>`, `<uid>:<new jti>`. ARGV: as
/// [`START_SESSION`].
pub(super) static ROTATE_LEGACY: LazyLock<Script> = session_script!("lua/rotate_legacy.lua");

/// KEYS: index. ARGV: now.
pub(super) static LIST_SESSIONS: LazyLock<Script> = session_script!("lua/list_sessions.lua");

/// KEYS: index. ARGV: sid.
pub(super) static END_SESSION: LazyLock<Script> = session_script!("lua/end_session.lua");

/// KEYS: index. ARGV: sid, now, name (`''` clears it).
pub(super) static RENAME_SESSION: LazyLock<Script> = session_script!("lua/rename_session.lua");

/// KEYS: index. ARGV: sid, now, acr, amr (a JSON array).
pub(super) static RAISE_SESSION: LazyLock<Script> = session_script!("lua/raise_session.lua");

/// Counts a failed second step of a pending sign-in. KEYS: `<uid>:mfa:<id>`.
/// ARGV: max failures. Returns the failures, or -1 if it does not exist.
pub(super) static FAIL_PENDING_SIGN_IN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/fail_pending_sign_in.lua")));

/// KEYS: index. ARGV: the sid to keep.
pub(super) static END_OTHER_SESSIONS: LazyLock<Script> =
    session_script!("lua/end_other_sessions.lua");

/// Opens a sign-out sweep. The marker counts the sweeps in progress, so that
/// two concurrent sign-outs of one user each stay protected until both have
/// finished. KEYS: marker. ARGV: its TTL.
pub(super) static SWEEP_BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('INCR', KEYS[1])
          redis.call('EXPIRE', KEYS[1], ARGV[1])
          return 1",
    )
});

/// Closes a sign-out sweep. KEYS: marker.
pub(super) static SWEEP_END: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local left = redis.call('DECR', KEYS[1])
          if left <= 0 then
            redis.call('DEL', KEYS[1])
          end
          return left",
    )
});

/// Counts one attempt on every counter, or on none (issue 9). KEYS: the
/// counters. ARGV: the window (ms), then each counter's limit. Returns 0
/// (counted) or the longest remaining window (ms) of a full counter.
pub(super) static RATE_LIMIT_ATTEMPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/rate_limit_attempt.lua")));

/// Takes one count back from each counter, never below zero. KEYS: the
/// counters.
pub(super) static RATE_LIMIT_REFUND: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/rate_limit_refund.lua")));

/// One counter of an attempt on Redis Cluster, where an attempt's counters
/// hash to different slots (see `limits.rs`). KEYS: the counter. ARGV: the
/// window (ms), its limit, `1` to count or `0` to look only. Returns 0
/// (below the limit; counted if asked) or its remaining window (ms).
pub(super) static RATE_LIMIT_STEP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/rate_limit_step.lua")));
