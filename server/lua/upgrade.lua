--- @include "ready"
-- Brings data kept by an older version up to this one's layout, once (every
-- server runs it before serving; `layout` says what is done). Returns
-- {layout, label keys indexed}.
--   2: the label-set trie (see _ready.lua) replaces the per-worker-label-
--      key index.
local LAYOUT = 2
local layout = tonumber(redis.call('GET', P .. 'layout') or 0)
if layout >= LAYOUT then return { layout, 0 } end
local indexed = reindex_labelsets()
redis.call('SET', P .. 'layout', LAYOUT)
return { LAYOUT, indexed }
