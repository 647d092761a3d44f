-- end_other_sessions. KEYS: index. ARGV: the sid to keep ('' for none), the
-- new credential fingerprint ('' for none), its guard TTL, the legacy guard
-- TTL. Ends every other session, refuses the user's refresh tokens from
-- before sessions from now on, and with a credential guards session starts.
-- Returns how many sessions were ended.
local flat = redis.call('HGETALL', index)
local ended = 0
for i = 1, #flat, 2 do
  if flat[i] ~= ARGV[1] then
    end_entry(flat[i], cjson.decode(flat[i + 1]))
    ended = ended + 1
  end
end
redis.call('SET', prefix .. 'nolegacy', '1', 'EX', ARGV[4])
if ARGV[2] ~= '' then
  redis.call('SET', prefix .. 'credential', ARGV[2], 'EX', ARGV[3])
end
return ended
