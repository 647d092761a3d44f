-- list_sessions. KEYS: index. ARGV: now. Prunes, then returns the live
-- entries as a flat list sid, entry JSON, sid, entry JSON, ...
local live = prune(tonumber(ARGV[1]))
local flat = {}
for _, s in ipairs(live) do
  flat[#flat + 1] = s.sid
  flat[#flat + 1] = s.raw
end
return flat
