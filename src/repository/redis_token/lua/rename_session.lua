-- rename_session. KEYS: index. ARGV: sid, now, name ('' clears it: a name is
-- never empty). Sets the name in the session's index entry, where rotations
-- (which re-encode the entry) keep it and ending the session removes it.
-- Returns 1 if the session is live, else 0; one past its token's exp or its
-- absolute end is ended on the way, as list_sessions prunes it.
local sid, now = ARGV[1], tonumber(ARGV[2])
local raw = redis.call('HGET', index, sid)
if not raw then
  return 0
end
local entry = cjson.decode(raw)
if entry.exp <= now or entry.ends <= now then
  end_entry(sid, entry)
  return 0
end
if ARGV[3] == '' then
  entry.name = nil
else
  entry.name = ARGV[3]
end
redis.call('HSET', index, sid, cjson.encode(entry))
return 1
