-- start_session. KEYS: index, `<uid>:<jti>`.
-- ARGV: sid, jti, exp, now, ends, ua, ip, max_sessions, credential.
-- Returns 1, or 0 (nothing written) when the credential guard refuses.
if not credential_ok() then
  return 0
end
start_session(KEYS[2])
return 1
