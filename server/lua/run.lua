--- @include "lib"
-- ARGV: workflow_id. Returns {'ok'} | {'active'} | {'not_found'}.
local wf = ARGV[1]
local state = redis.call('HGET', wkey(wf), 'state')
if not state then return { 'not_found' } end
if state == 'active' then return { 'active' } end
local now = now_ms()
start_run(wf, now)
maybe_finish(wf, now)
return { 'ok' }
