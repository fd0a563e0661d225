--- @include "jobs"
-- ARGV: run id. Returns {'ok'} | {'noop'} (finished already) | {'not_found'}.
-- Queued jobs end at once; a running job is marked cancelled and keeps its
-- lease, so its worker learns it from its heartbeat and its last logs are
-- still accepted, while complete/fail get 409.
local run = ARGV[1]
local now = now_ms()
local r = rkey(run)
local state, jobs = unpack(redis.call('HMGET', r, 'state', 'jobs'))
if not state then return { 'not_found' } end
if state ~= 'active' and state ~= 'delayed' then return { 'noop' } end
-- a delayed run is cancelled before it starts: it goes as any run does
redis.call('ZREM', P .. 'delayedruns', run)
redis.call('HSET', r, 'cancelled', 1, 'state', 'active')
for _, job in ipairs(split(jobs, ',')) do cancel_one(run, job, now, 'run cancelled') end
maybe_finish(run, now)
return { 'ok' }
