-- start_session. KEYS: index, `<uid>:<jti>`.
-- ARGV: sid, jti, exp, now, ends, ua, ip, max_sessions.
start_session(KEYS[2])
return 1
