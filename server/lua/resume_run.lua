--- @include "control"
-- ARGV: run id, who asked (a token id, or ''). Resumes a paused run: its
-- held jobs go back to their queues (unless the run still waits for its
-- workflow or its concurrency group). Returns {'ok'} | {'noop', 'running'
-- | 'finished'} | {'not_found'}.
local run, who = ARGV[1], ARGV[2]
local now = now_ms()
local r = rkey(run)
local state, paused = unpack(redis.call('HMGET', r, 'state', 'paused'))
if not state then return { 'not_found' } end
if state ~= 'active' and state ~= 'delayed' then return { 'noop', 'finished' } end
if paused ~= '1' then return { 'noop', 'running' } end
redis.call('HDEL', r, 'paused', 'paused_ms')
event(run, '', 'pause', 'resumed', 0, now, 'resumed' .. (who ~= '' and (' by ' .. who) or ''))
control_event('run', run, 'resumed', who, now, '')
note(string.format('run %s resumed', run))
release_run_holds(run, now)
return { 'ok' }
