-- rate_limit_step (Redis Cluster: one attempt's counters live in different
-- slots, so each is its own step). KEYS: one counter. ARGV: the window in
-- milliseconds, the counter's limit, '1' to count or '0' to only look.
--
-- Below its limit: counts one if asked (the window starts with the first
-- count) and returns 0. At its limit: counts nothing and returns its
-- remaining window (ms, at least 1).
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= limit then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then
    -- A counter without an expiry (not written by these scripts): give it
    -- one window, so that it cannot refuse for good.
    redis.call('PEXPIRE', KEYS[1], window)
    left = window
  end
  return math.max(left, 1)
end
if ARGV[3] == '1' then
  redis.call('INCR', KEYS[1])
  if redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], window)
  end
end
return 0
