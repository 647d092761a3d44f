-- end_session. KEYS: index. ARGV: sid. Returns 1 if the index had it.
local raw = redis.call('HGET', index, ARGV[1])
if not raw then
  return 0
end
end_entry(ARGV[1], cjson.decode(raw))
return 1
