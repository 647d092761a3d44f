-- end_other_sessions. KEYS: index. ARGV: the sid to keep. Returns how many
-- sessions were ended.
local flat = redis.call('HGETALL', index)
local ended = 0
for i = 1, #flat, 2 do
  if flat[i] ~= ARGV[1] then
    end_entry(flat[i], cjson.decode(flat[i + 1]))
    ended = ended + 1
  end
end
return ended
