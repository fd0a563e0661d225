--- @include "control"
-- ARGV: workflow id, who asked (a token id, or ''). Resumes a paused
-- workflow: the runs that waited for it start, in the order they came
-- (each asking for its concurrency group's place, if it has one).
-- Returns {'ok', runs let go} | {'noop'} | {'not_found'}.
local wf, who = ARGV[1], ARGV[2]
local now = now_ms()
local w = wkey(wf)
local ver, paused = unpack(redis.call('HMGET', w, 'ver', 'paused'))
if not ver then return { 'not_found' } end
if not paused or paused == '' then return { 'noop' } end
redis.call('HDEL', w, 'paused', 'paused_ms')
redis.call('ZREM', P .. 'pwfs', wf)
local held = redis.call('ZRANGE', P .. 'wfheld:' .. wf, 0, -1)
redis.call('DEL', P .. 'wfheld:' .. wf)
local started = 0
for _, run in ipairs(held) do
  local r = rkey(run)
  local state, wait = unpack(redis.call('HMGET', r, 'state', 'wait'))
  if state == 'active' and wait == 'workflow' then
    event(run, '', 'pause', 'released', 0, now, 'workflow ' .. wf .. ' resumed')
    run_enters_group(run, now)
    started = started + 1
  end
end
control_event('workflow', wf, 'resumed', who, now, started .. ' waiting run(s) let go')
note(string.format('workflow %s resumed: %d waiting run(s) let go', wf, started))
return { 'ok', started }
