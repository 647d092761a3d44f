-- raise_session. KEYS: index. ARGV: sid, now, acr, amr (a JSON array).
-- Stores the assurance a second factor raised the session to in its index
-- entry, where rotations and renames (which re-encode the entry) keep it and
-- ending the session removes it. Returns 1 if the session is live, else 0;
-- one past its token's exp or its absolute end is ended on the way, as
-- rename_session does.
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
entry.acr = ARGV[3]
-- cjson writes an empty array as `{}`: the reader takes either.
entry.amr = cjson.decode(ARGV[4])
redis.call('HSET', index, sid, cjson.encode(entry))
return 1
