-- Shared by every session script; each script is this prelude followed by
-- its body, so every method stays ONE script (one atomic step).
--
-- KEYS[1] is always the user's index `<uid>:sessions` (on Redis Cluster
-- `{<uid>}:sessions`). The keys a script only learns from the index (the
-- current token `<uid>:<jti>` of a session, the grace successor
-- `<uid>:grace:<prev>`, the entries of sessions ended on the way, the
-- guards `<uid>:nolegacy` and `<uid>:credential`) are derived from that
-- key's prefix, `<uid>:` or `{<uid>}:`: on a cluster they share the index's
-- hash tag, so they live in its slot, on the master running the script.
local index = KEYS[1]
local prefix = string.sub(index, 1, #index - #'sessions')

local function is_set(v)
  return v ~= nil and v ~= cjson.null
end

-- Ends a session: its current token, its grace successor, its index entry.
local function end_entry(sid, entry)
  redis.call('DEL', prefix .. entry.jti)
  if is_set(entry.prev) then
    redis.call('DEL', prefix .. 'grace:' .. entry.prev)
  end
  redis.call('HDEL', index, sid)
end

-- Ends every session whose token or absolute lifetime has expired at `now`;
-- returns the others as {sid, entry, raw}.
local function prune(now)
  local flat = redis.call('HGETALL', index)
  local live = {}
  for i = 1, #flat, 2 do
    local sid, raw = flat[i], flat[i + 1]
    local entry = cjson.decode(raw)
    if entry.exp <= now or entry.ends <= now then
      end_entry(sid, entry)
    else
      live[#live + 1] = { sid = sid, entry = entry, raw = raw }
    end
  end
  return live
end

-- After a token is written with `ttl` seconds: the index lives at least as
-- long as the user's longest-lived entry (it never shrinks here). An index
-- without a TTL (-1) was just created by HSET in this script.
local function keep_index_ttl(ttl)
  local current = redis.call('PTTL', index)
  if current == -2 then
    return
  end
  if current == -1 or current < ttl * 1000 then
    redis.call('PEXPIRE', index, ttl * 1000)
  end
end

-- Whether a session authenticated with the credential fingerprint ARGV[9]
-- may start: not while a password change guards `<uid>:credential` with
-- another one (a sign-in that read the previous password hash).
local function credential_ok()
  local guard = redis.call('GET', prefix .. 'credential')
  return (not guard) or guard == ARGV[9]
end

-- Starts the session described by ARGV (shared by start_session and
-- rotate_legacy): sid, jti, exp, now, ends, ua, ip, max_sessions,
-- credential; its first token is `token_key` (`<uid>:<jti>`).
local function start_session(token_key)
  local sid, jti = ARGV[1], ARGV[2]
  local exp, now, ends = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  local max_sessions = tonumber(ARGV[8])
  local ttl = math.max(exp - now, 1)
  -- The entry records its session as of this token.
  redis.call('SET', token_key, cjson.encode({
    sid = sid, created = now, last = now, ua = ARGV[6], ip = ARGV[7],
  }), 'EX', ttl)
  redis.call('HSET', index, sid, cjson.encode({
    jti = jti, exp = exp, prev = cjson.null, rotated = cjson.null,
    created = now, last = now, ends = ends, ua = ARGV[6], ip = ARGV[7],
  }))
  local live = prune(now)
  local excess = #live - max_sessions
  if excess > 0 then
    -- Least recently used first (ties: oldest, then by sid); never the new one.
    local others = {}
    for _, s in ipairs(live) do
      if s.sid ~= sid then
        others[#others + 1] = s
      end
    end
    table.sort(others, function(a, b)
      if a.entry.last ~= b.entry.last then
        return a.entry.last < b.entry.last
      end
      if a.entry.created ~= b.entry.created then
        return a.entry.created < b.entry.created
      end
      return a.sid < b.sid
    end)
    for i = 1, math.min(excess, #others) do
      end_entry(others[i].sid, others[i].entry)
    end
  end
  keep_index_ttl(ttl)
end
