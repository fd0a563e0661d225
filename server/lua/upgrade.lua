--- @include "leases"
-- Brings data kept by an older version up to this one's layout, once (every
-- server runs it before serving; `layout` says what is done). Returns
-- {layout, label keys indexed, workers counted}.
--   2: the label-set trie (see _ready.lua) replaces the per-worker-label-
--      key index; every known worker id counts against its token's cap.
local LAYOUT = 2
local layout = tonumber(redis.call('GET', P .. 'layout') or 0)
if layout >= LAYOUT then return { layout, 0, 0 } end
local indexed = reindex_labelsets()
local workers = 0
for _, worker in ipairs(redis.call('ZRANGE', P .. 'workers', 0, -1)) do
  local wk = P .. 'worker:' .. worker
  if redis.call('EXISTS', wk) == 1 then
    redis.call('SADD', quota_key('workers', redis.call('HGET', wk, 'owner') or ''), worker)
    workers = workers + 1
  end
end
redis.call('SET', P .. 'layout', LAYOUT)
return { LAYOUT, indexed, workers }
