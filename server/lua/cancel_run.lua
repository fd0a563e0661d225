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
if state ~= 'active' then return { 'noop' } end
redis.call('HSET', r, 'cancelled', 1)
for _, job in ipairs(split(jobs, ',')) do
  local k = jkey(run, job)
  local st, lk, att = unpack(redis.call('HMGET', k, 'st', 'lk', 'att'))
  if ACTIVE[st] then
    if st == 'ready' then unready(lk, member(run, job)) end
    if st == 'delayed' then redis.call('ZREM', P .. 'delayed', member(run, job)) end
    set_status(run, job, st, 'cancelled')
    redis.call('HSET', k, 'end', now)
    event(run, job, 'job', 'cancelled', tonumber(att), now, 'run cancelled')
    redis.call('PUBLISH', jobchan(run, job), 'changed')
  end
end
maybe_finish(run, now)
return { 'ok' }
