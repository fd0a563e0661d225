--- @include "control"
-- ARGV: workflow id, what becomes of new runs ('queue' | 'skip'), who asked
-- (a token id, or ''). Pauses a workflow: its runs in progress go on; a new
-- run (started by anyone, or a schedule's tick) waits until it resumes
-- ('queue'), or is refused ('skip'). Pausing again with the other choice
-- changes it. Returns {'ok'} | {'noop', mode} | {'not_found'}.
local wf, mode, who = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local w = wkey(wf)
local ver, paused = unpack(redis.call('HMGET', w, 'ver', 'paused'))
if not ver then return { 'not_found' } end
if paused == mode then return { 'noop', mode } end
redis.call('HSET', w, 'paused', mode)
if not paused or paused == '' then
  redis.call('HSET', w, 'paused_ms', now)
  redis.call('ZADD', P .. 'pwfs', num(now), wf)
end
local detail = mode == 'skip' and 'new runs are refused' or 'new runs wait'
control_event('workflow', wf, 'paused', who, now, detail)
note(string.format('workflow %s paused: %s', wf, detail))
return { 'ok' }
