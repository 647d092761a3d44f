-- rotate_legacy. KEYS: index, `signout:<uid>`, `<uid>:<legacy jti>`,
-- `<uid>:<new jti>`. ARGV: as start_session. Returns 1 if the legacy entry
-- was there (and the session has been started), else 0. Refused, nothing
-- taken, while a sign-out sweeps, after the user's other sessions were ended
-- (`<uid>:nolegacy`: such tokens are in no index, so ending sessions cannot
-- reach them), or when the credential guard refuses.
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', prefix .. 'nolegacy') == 1 then
  return 0
end
if not credential_ok() then
  return 0
end
-- Only an entry from before sessions (value `1`) is taken here.
if redis.call('GET', KEYS[3]) ~= '1' then
  return 0
end
redis.call('DEL', KEYS[3])
start_session(KEYS[4])
return 1
