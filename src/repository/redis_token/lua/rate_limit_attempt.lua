-- rate_limit_attempt. KEYS: the counters of one attempt, a key each.
-- ARGV: the window in milliseconds, then each counter's limit (KEYS order).
--
-- If no counter has reached its limit, counts one on every counter (a
-- counter's window starts with its first count) and returns 0. Otherwise
-- counts nothing, so a refused attempt burns nothing, and returns the
-- longest remaining window (ms, at least 1) of a full counter.
local window = tonumber(ARGV[1])
local limited, wait = false, 1
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[i + 1]) then
    limited = true
    local left = redis.call('PTTL', key)
    if left < 0 then
      -- A counter without an expiry (not written by this script): give it
      -- one window, so that it cannot refuse for good.
      redis.call('PEXPIRE', key, window)
      left = window
    end
    wait = math.max(wait, left)
  end
end
if limited then
  return wait
end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  if redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, window)
  end
end
return 0
