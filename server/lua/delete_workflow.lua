--- @include "defs"
-- ARGV: wf, max runs to delete in this call. Deletes a workflow's
-- definition with its finished runs, a batch per call so Redis is never
-- blocked long; the workflow takes no new run meanwhile.
-- Returns {'ok'} (gone) | {'more'} (call again) | {'active'} | {'not_found'}.
local wf, batch = ARGV[1], tonumber(ARGV[2])
local w = wkey(wf)
local active = redis.call('HGET', w, 'active')
if not active then return { 'not_found' } end
if tonumber(active) > 0 then return { 'active' } end
redis.call('HSET', w, 'deleting', 1)
for _, run in ipairs(redis.call('ZRANGE', P .. 'wfruns:' .. wf, 0, batch - 1)) do
  purge_run(run)
end
if redis.call('ZCARD', P .. 'wfruns:' .. wf) > 0 then return { 'more' } end
drop_workflow(wf)
return { 'ok' }
