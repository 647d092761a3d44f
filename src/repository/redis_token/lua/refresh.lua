-- refresh. KEYS: index, `signout:<uid>`, `<uid>:<jti>`, `<uid>:<new jti>`,
-- `<uid>:grace:<jti>`. ARGV: sid, jti, new_jti, new_exp, now, grace_secs,
-- sealed_successor, ua, ip. Returns {'rotated'}, {'replay', sealed},
-- {'reused'}, {'unknown'} or {'expired'}.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return { 'unknown' }
end
local sid, jti, new_jti = ARGV[1], ARGV[2], ARGV[3]
local new_exp, now, grace = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local raw = redis.call('HGET', index, sid)
if not raw then
  return { 'unknown' }
end
local entry = cjson.decode(raw)
if entry.ends <= now or entry.exp <= now then
  end_entry(sid, entry)
  return { 'expired' }
end
if entry.jti == jti then
  if redis.call('DEL', KEYS[3]) == 0 then
    -- The current token's entry is gone (expired or removed).
    end_entry(sid, entry)
    return { 'unknown' }
  end
  local ttl = math.max(new_exp - now, 1)
  redis.call('SET', KEYS[4], cjson.encode({
    sid = sid, created = entry.created, last = now, ua = ARGV[8], ip = ARGV[9],
  }), 'EX', ttl)
  local old_prev = entry.prev
  entry.prev = jti
  entry.rotated = now
  entry.jti = new_jti
  entry.exp = new_exp
  entry.last = now
  entry.ua = ARGV[8]
  entry.ip = ARGV[9]
  redis.call('HSET', index, sid, cjson.encode(entry))
  if grace > 0 then
    redis.call('SET', KEYS[5], ARGV[7], 'EX', grace)
  end
  -- Only the immediately previous token may replay.
  if is_set(old_prev) then
    redis.call('DEL', prefix .. 'grace:' .. old_prev)
  end
  keep_index_ttl(ttl)
  return { 'rotated' }
end
-- The window is pinned to the first rotation of `jti`: it never slides.
if entry.prev == jti and is_set(entry.rotated) and entry.rotated + grace >= now
    and redis.call('EXISTS', prefix .. entry.jti) == 1 then
  local sealed = redis.call('GET', KEYS[5])
  if sealed then
    return { 'replay', sealed }
  end
end
-- An older generation, the predecessor after the window, or a predecessor
-- whose successor is gone: theft, the whole session ends.
end_entry(sid, entry)
return { 'reused' }
