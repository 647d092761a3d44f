-- fail_pending_sign_in. KEYS: `<uid>:mfa:<id>`. ARGV: max_failures. Counts
-- one failure (INCR keeps the key's TTL) and removes the pending sign-in once
-- its failures reach the maximum. Returns the failures, or -1 (nothing
-- counted) if it does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local failures = redis.call('INCR', KEYS[1])
if failures >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
end
return failures
