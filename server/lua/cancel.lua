--- @include "lib"
-- ARGV: workflow_id. Returns {'ok'} | {'noop'} | {'not_found'}.
-- Queued jobs end at once; a running job is marked cancelled and keeps its
-- lease, so its worker learns it from the next heartbeat and its last logs
-- are still accepted, while complete/fail get 409.
local wf = ARGV[1]
local now = now_ms()
local w = wkey(wf)
local state = redis.call('HGET', w, 'state')
if not state then return { 'not_found' } end
if state ~= 'active' then return { 'noop' } end
redis.call('HSET', w, 'cancelled', 1)
for _, job in ipairs(split(redis.call('HGET', w, 'jobs'), ',')) do
  local k = jkey(wf, job)
  local st, lk = unpack(redis.call('HMGET', k, 'st', 'lk'))
  if ACTIVE[st] then
    if st == 'ready' then unready(lk, wf .. ':' .. job) end
    if st == 'delayed' then redis.call('ZREM', P .. 'delayed', wf .. ':' .. job) end
    set_status(wf, job, st, 'cancelled')
    redis.call('HSET', k, 'end', now)
    event(wf, job, 'cancelled', 0, now, '')
    redis.call('PUBLISH', jobchan(wf, job), 'changed')
  end
end
maybe_finish(wf, now)
return { 'ok' }
