-- rate_limit_refund. KEYS: counters. Takes one count back from each, never
-- below zero (DECR keeps the expiry); a counter whose window has ended stays
-- gone.
for _, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count > 0 then
    redis.call('DECR', key)
  end
end
return 0
