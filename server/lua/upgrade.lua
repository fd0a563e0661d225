--- @include "leases"
-- Brings data kept by an older version up to this one's layout, once (every
-- server runs it before serving; `layout` says what is done). Returns
-- {layout, label keys indexed, workers counted, definitions repacked}.
--   2: the label-set trie (see _ready.lua) replaces the per-worker-label-
--      key index; every known worker id counts against its token's cap.
--   3: a definition keeps each job in one field j:<job> (see _keys.lua),
--      where it kept four (s: spec, m: static description, n: needs, d:
--      dependents).
local LAYOUT = 3
local layout = tonumber(redis.call('GET', P .. 'layout') or 0)
if layout >= LAYOUT then return { layout, 0, 0, 0 } end

local indexed, workers, repacked = 0, 0, 0
if layout < 2 then
  indexed = reindex_labelsets()
  for _, worker in ipairs(redis.call('ZRANGE', P .. 'workers', 0, -1)) do
    local wk = P .. 'worker:' .. worker
    if redis.call('EXISTS', wk) == 1 then
      redis.call('SADD', quota_key('workers', redis.call('HGET', wk, 'owner') or ''), worker)
      workers = workers + 1
    end
  end
end

if layout < 3 then
  local seen = {}
  local function repack(wf, ver)
    if not wf or not ver or seen[wf .. ':' .. ver] then return end
    seen[wf .. ':' .. ver] = true
    local d = dkey(wf, ver)
    local jobs = redis.call('HGET', d, 'jobs')
    if not jobs then return end
    local changed = false
    for _, job in ipairs(split(jobs, ',')) do
      local s, m, needs, deps = unpack(redis.call('HMGET', d, 's:' .. job, 'm:' .. job, 'n:' .. job, 'd:' .. job))
      if s then
        redis.call('HSET', d, 'j:' .. job, (m or '') .. '\n' .. (needs or '') .. '\n' .. (deps or '') .. '\n' .. s)
        redis.call('HDEL', d, 's:' .. job, 'm:' .. job, 'n:' .. job, 'd:' .. job)
        changed = true
      end
    end
    if changed then repacked = repacked + 1 end
  end
  -- every version is held by its workflow (the current one) or by a run
  -- (its own, and the one its per-run overrides were applied to)
  for _, wf in ipairs(redis.call('ZRANGE', P .. 'wfs', 0, -1)) do
    repack(wf, redis.call('HGET', wkey(wf), 'ver'))
  end
  for _, run in ipairs(redis.call('ZRANGE', P .. 'runs', 0, -1)) do
    local wf, ver, bver = unpack(redis.call('HMGET', rkey(run), 'wf', 'ver', 'bver'))
    repack(wf, ver)
    repack(wf, bver)
  end
end

redis.call('SET', P .. 'layout', LAYOUT)
return { LAYOUT, indexed, workers, repacked }
