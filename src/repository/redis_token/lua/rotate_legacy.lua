-- rotate_legacy. KEYS: index, `signout:<uid>`, `<uid>:<legacy jti>`,
-- `<uid>:<new jti>`. ARGV: as start_session. Returns 1 if the legacy entry
-- was there (and the session has been started), else 0.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
if redis.call('DEL', KEYS[3]) == 0 then
  return 0
end
start_session(KEYS[4])
return 1
